//! Jepsen's three-valued `:valid?`: `true`, `false` or `:unknown`.
//!
//! It serialises to JSON `true`, `false` and `"unknown"`, the way Maelstrom's `results.edn` shows
//! `true`, `false` and `:unknown`. Composition keeps the worst value, ranked
//! false > unknown > true.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The outcome of a checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Validity {
    /// The property held.
    #[default]
    True,
    /// The property was violated.
    False,
    /// The checker could not decide, e.g. nothing was ever read, or the history was malformed.
    Unknown,
}

impl Validity {
    /// Badness rank: false > unknown > true.
    fn rank(self) -> u8 {
        match self {
            Validity::True => 0,
            Validity::Unknown => 1,
            Validity::False => 2,
        }
    }

    /// The worse of two validities (Jepsen's `merge-valid`).
    #[must_use]
    pub fn worst(self, other: Validity) -> Validity {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// The worst of many; true when there are none.
    pub fn worst_of(items: impl IntoIterator<Item = Validity>) -> Validity {
        items.into_iter().fold(Validity::True, Validity::worst)
    }

    /// The JSON form: `true`, `false` or `"unknown"`.
    #[must_use]
    pub fn to_json(self) -> serde_json::Value {
        match self {
            Validity::True => serde_json::Value::Bool(true),
            Validity::False => serde_json::Value::Bool(false),
            Validity::Unknown => serde_json::Value::String("unknown".to_owned()),
        }
    }

    /// True only for [`Validity::True`]; the exit-code decision.
    #[must_use]
    pub fn is_valid(self) -> bool {
        self == Validity::True
    }
}

impl From<bool> for Validity {
    fn from(b: bool) -> Self {
        if b {
            Validity::True
        } else {
            Validity::False
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Validity::True => "true",
            Validity::False => "false",
            Validity::Unknown => "unknown",
        })
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::True => s.serialize_bool(true),
            Validity::False => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Validity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"unknown\"")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Validity, E> {
                Ok(b.into())
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Validity, E> {
                if s == "unknown" {
                    Ok(Validity::Unknown)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(s), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Validity::{self, *};

    #[test]
    fn serialises_like_maelstrom() {
        assert_eq!(serde_json::to_value(True).unwrap(), json!(true));
        assert_eq!(serde_json::to_value(False).unwrap(), json!(false));
        assert_eq!(serde_json::to_value(Unknown).unwrap(), json!("unknown"));
        for v in [True, False, Unknown] {
            assert_eq!(v.to_json(), serde_json::to_value(v).unwrap());
        }
    }

    #[test]
    fn round_trips_and_rejects_other_values() {
        for v in [True, False, Unknown] {
            let s = serde_json::to_string(&v).unwrap();
            assert_eq!(serde_json::from_str::<Validity>(&s).unwrap(), v);
        }
        assert!(serde_json::from_str::<Validity>("\"maybe\"").is_err());
        assert!(serde_json::from_str::<Validity>("1").is_err());
    }

    #[test]
    fn worst_ranks_false_over_unknown_over_true() {
        assert_eq!(True.worst(True), True);
        assert_eq!(True.worst(Unknown), Unknown);
        assert_eq!(Unknown.worst(True), Unknown);
        assert_eq!(Unknown.worst(False), False);
        assert_eq!(False.worst(Unknown), False);
        assert_eq!(False.worst(True), False);
        assert_eq!(Validity::worst_of([]), True);
        assert_eq!(Validity::worst_of([True, Unknown, True]), Unknown);
        assert_eq!(Validity::worst_of([Unknown, False, True]), False);
    }

    #[test]
    fn only_true_is_valid() {
        assert!(True.is_valid());
        assert!(!False.is_valid());
        assert!(!Unknown.is_valid());
        assert_eq!(Validity::from(false), False);
    }
}

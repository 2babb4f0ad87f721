//! The read path: a `read_ok` shares one immutable snapshot of the durable set.
//!
//! A read returns the whole durable prefix of the log, so building its reply from the log (a copy
//! of every value, then serialising every value again in the writer) costs time and memory in the
//! size of the set, per read. Under load that multiplies: reads that wait for durability are
//! released together when a flush completes, each with its own copy.
//!
//! Instead, [`ReadCache`] keeps the JSON text of the durable prefix, extended incrementally (each
//! value is serialised once, the first time a snapshot covers it), and hands out an
//! `Arc<`[`Snapshot`]`>`: the finished array text, built at most once per change of the durable
//! prefix (on the first read after it) and shared by every read answered until the next change.
//! A reply then holds a reference, and the writer copies the text verbatim ([`RawValue`]).
//!
//! [`Messages`] is the `messages` field of a `read_ok`: either that shared snapshot (what nodes
//! send) or plain values (what deserialisation produces, and what tests and tools build). Both
//! serialise to the same JSON text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::Arc;

/// The `messages` of a `read_ok`: a JSON array of values.
#[derive(Debug, Clone)]
pub enum Messages {
    /// Values owned by the message: parsed from the wire, or built by hand.
    Values(Vec<Value>),
    /// A node's durable set, shared with every other reply built from the same snapshot.
    Shared(Arc<Snapshot>),
}

impl Messages {
    /// The values, in order (parses the text of a shared snapshot: meant for tests and tools).
    pub fn to_values(&self) -> Vec<Value> {
        match self {
            Messages::Values(v) => v.clone(),
            Messages::Shared(s) => s.values(),
        }
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        match self {
            Messages::Values(v) => v.len(),
            Messages::Shared(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Vec<Value>> for Messages {
    fn from(v: Vec<Value>) -> Self {
        Messages::Values(v)
    }
}

/// Equal when they hold the same values in the same order, whatever their representation.
impl PartialEq for Messages {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Messages::Values(a), Messages::Values(b)) => a == b,
            (Messages::Shared(a), Messages::Shared(b)) if Arc::ptr_eq(a, b) => true,
            _ => self.len() == other.len() && self.to_values() == other.to_values(),
        }
    }
}

impl Serialize for Messages {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Messages::Values(v) => v.serialize(s),
            Messages::Shared(snap) => snap.json.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Value>::deserialize(d).map(Messages::Values)
    }
}

/// An immutable JSON array of the first `len` values of a node's log, exactly as serde_json
/// serialises them (compact).
#[derive(Debug)]
pub struct Snapshot {
    len: usize,
    json: Box<RawValue>,
}

impl Snapshot {
    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The JSON text of the array.
    pub fn json(&self) -> &str {
        self.json.get()
    }

    /// The values, parsed back from the text.
    pub fn values(&self) -> Vec<Value> {
        // The text was checked to be a JSON array when the snapshot was built.
        serde_json::from_str(self.json.get()).unwrap_or_default()
    }
}

/// Builds [`Snapshot`]s of a log prefix that only grows (the durable prefix); see the module docs.
#[derive(Debug)]
pub struct ReadCache {
    /// `[` followed by the comma-separated JSON text of values `0..upto`; no closing bracket.
    text: String,
    /// Values already in `text`.
    upto: usize,
    /// The last snapshot built; reused while the prefix keeps its length.
    last: Option<Arc<Snapshot>>,
    /// Snapshots built so far (for tests and diagnostics).
    built: u64,
}

impl Default for ReadCache {
    fn default() -> Self {
        ReadCache {
            text: String::from("["),
            upto: 0,
            last: None,
            built: 0,
        }
    }
}

impl ReadCache {
    /// A snapshot of `prefix`. Every call must pass a prefix of the same log, never shorter than
    /// the one before: the values already serialised are not looked at again. Costs nothing but a
    /// reference count if `prefix` has the length of the last snapshot; otherwise serialises the
    /// new values and copies the text once.
    pub fn snapshot(&mut self, prefix: &[Value]) -> Arc<Snapshot> {
        if let Some(s) = &self.last {
            if s.len == prefix.len() {
                return Arc::clone(s);
            }
        }
        if prefix.len() < self.upto {
            // Not a growing prefix (a caller bug): start over rather than answer wrongly.
            tracing::error!(
                had = self.upto,
                now = prefix.len(),
                "read snapshot prefix shrank; rebuilding it"
            );
            *self = ReadCache {
                built: self.built,
                ..ReadCache::default()
            };
        }
        for v in &prefix[self.upto..] {
            if self.upto > 0 {
                self.text.push(',');
            }
            // `Value`'s `Display` is its compact JSON text; writing into a String cannot fail.
            let _ = write!(self.text, "{v}");
            self.upto += 1;
        }
        // Exact capacity: `RawValue::from_string` then keeps the buffer instead of copying it.
        let mut json = String::with_capacity(self.text.len() + 1);
        json.push_str(&self.text);
        json.push(']');
        let json = RawValue::from_string(json).unwrap_or_else(|e| {
            // Unreachable: the text is serde_json's own output. Fall back to serialising anew.
            tracing::error!("read snapshot text is not valid JSON ({e}); reserialising");
            serde_json::value::to_raw_value(prefix).unwrap_or_default()
        });
        let snap = Arc::new(Snapshot {
            len: prefix.len(),
            json,
        });
        self.built += 1;
        self.last = Some(Arc::clone(&snap));
        snap
    }

    /// Snapshots built so far: one per change of the prefix that a read saw.
    #[cfg(test)]
    pub fn built(&self) -> u64 {
        self.built
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Vec<Value> {
        vec![
            json!(1),
            json!(-7),
            json!(1.0),
            json!(2.5e300),
            json!(u64::MAX),
            json!("1"),
            json!("quote \" backslash \\ newline \n tab \t nul \u{0} é 😀 </script>"),
            json!(null),
            json!(true),
            json!([]),
            json!({}),
            json!({"b":[1,{"a":null}],"a":"x"}),
        ]
    }

    #[test]
    fn snapshots_serialise_exactly_like_the_values() {
        let values = sample();
        let mut cache = ReadCache::default();
        for n in [0, 1, 2, 5, values.len()] {
            let snap = cache.snapshot(&values[..n]);
            let want = serde_json::to_string(&values[..n]).unwrap();
            assert_eq!(snap.json(), want);
            assert_eq!(
                serde_json::to_string(&Messages::Shared(snap.clone())).unwrap(),
                want
            );
            assert_eq!(
                serde_json::to_value(Messages::Shared(snap.clone())).unwrap(),
                Value::Array(values[..n].to_vec())
            );
            assert_eq!(snap.values(), values[..n]);
            assert_eq!(snap.len(), n);
        }
    }

    #[test]
    fn a_snapshot_is_reused_until_the_prefix_grows() {
        let values = sample();
        let mut cache = ReadCache::default();
        let a = cache.snapshot(&values[..3]);
        let b = cache.snapshot(&values[..3]);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.built(), 1);
        let c = cache.snapshot(&values[..4]);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(cache.built(), 2);
        assert_eq!(a.len(), 3, "an older snapshot is immutable");
        assert_eq!(c.values(), values[..4]);
    }

    #[test]
    fn a_shrinking_prefix_is_rebuilt_not_misreported() {
        let values = sample();
        let mut cache = ReadCache::default();
        cache.snapshot(&values[..4]);
        let s = cache.snapshot(&values[..2]);
        assert_eq!(s.json(), serde_json::to_string(&values[..2]).unwrap());
    }

    #[test]
    fn messages_deserialise_as_values_and_compare_by_content() {
        let values = sample();
        let text = serde_json::to_string(&values).unwrap();
        let parsed: Messages = serde_json::from_str(&text).unwrap();
        assert!(matches!(parsed, Messages::Values(_)));
        let shared = Messages::Shared(ReadCache::default().snapshot(&values));
        assert_eq!(parsed, shared);
        assert_eq!(shared, parsed);
        assert_eq!(shared.len(), values.len());
        assert_ne!(Messages::from(values[..1].to_vec()), shared);
        assert_eq!(shared.to_values(), values);
    }
}

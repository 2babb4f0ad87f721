//! Jepsen's `unique-ids` checker, for the unique-ids workload
//! (<https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md>).
//!
//! `attempted-count` is the number of `generate` invocations, `acknowledged-count` the number of
//! `ok` completions, whose values are the ids. Valid iff no id was returned by more than one `ok`
//! op. `duplicated` lists up to 48 of the most repeated ids with their counts, as `[id, count]`
//! pairs sorted by id (a JSON object cannot have non-string keys). `range` is `[lowest, highest]`
//! when the ids are mutually comparable (all numbers, all strings or all booleans), else null;
//! where Jepsen would throw on such mixed ids, we still judge uniqueness.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::json::{cmp_values, key, JsonKey};
use super::{CheckResult, Validity};
use crate::history::{Op, OpType};

/// How many duplicated ids are listed.
const MAX_DUPLICATES: usize = 48;

/// The unique-ids workload result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UniqueIdsResult {
    #[serde(rename = "valid?")]
    pub valid: Validity,
    pub attempted_count: usize,
    pub acknowledged_count: usize,
    /// Number of distinct ids returned more than once.
    pub duplicated_count: usize,
    /// Up to 48 of the most repeated ids, as `(id, times returned)`, sorted by id.
    pub duplicated: Vec<(Value, usize)>,
    /// `[lowest, highest]`; null without acknowledged ids or when they are not comparable.
    pub range: Option<[Value; 2]>,
}

impl CheckResult for UniqueIdsResult {
    fn validity(&self) -> Validity {
        self.valid
    }
}

/// Checks that the acknowledged ids are distinct.
#[must_use]
pub fn check(history: &[Op]) -> UniqueIdsResult {
    let mut attempted_count = 0;
    let mut acknowledged_count = 0;
    // Key → (id, count); the first occurrence is kept for output.
    let mut acknowledged = Vec::new();
    for op in history {
        if !op.is_client() || op.f != "generate" {
            continue;
        }
        match op.kind {
            OpType::Invoke => attempted_count += 1,
            OpType::Ok => {
                acknowledged_count += 1;
                acknowledged.push(op.value.to_json());
            }
            _ => {}
        }
    }
    let mut counts: HashMap<JsonKey, (&Value, usize)> = HashMap::new();
    let mut range: Range = Range::Empty;
    for id in &acknowledged {
        counts.entry(key(id)).or_insert((id, 0)).1 += 1;
        range.include(id);
    }

    let mut dups: Vec<(&Value, usize)> = counts.into_values().filter(|(_, n)| *n > 1).collect();
    let duplicated_count = dups.len();
    // The most repeated first (ties by id, for determinism), then the kept ones sorted by id.
    dups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| cmp_values(a.0, b.0)));
    dups.truncate(MAX_DUPLICATES);
    dups.sort_by(|a, b| cmp_values(a.0, b.0));

    UniqueIdsResult {
        valid: (duplicated_count == 0).into(),
        attempted_count,
        acknowledged_count,
        duplicated_count,
        duplicated: dups.into_iter().map(|(v, n)| (v.clone(), n)).collect(),
        range: range.into_pair(),
    }
}

/// The running `[lowest, highest]` of comparable ids.
enum Range<'a> {
    Empty,
    Some(&'a Value, &'a Value),
    /// Ids of kinds that do not compare with one another (Jepsen would throw).
    Incomparable,
}

impl<'a> Range<'a> {
    fn include(&mut self, v: &'a Value) {
        fn kind(v: &Value) -> Option<u8> {
            match v {
                Value::Number(_) => Some(0),
                Value::String(_) => Some(1),
                Value::Bool(_) => Some(2),
                _ => None,
            }
        }
        *self = match *self {
            Range::Incomparable => Range::Incomparable,
            Range::Empty => match kind(v) {
                Some(_) => Range::Some(v, v),
                None => Range::Incomparable,
            },
            Range::Some(lo, hi) => {
                if kind(v).is_none() || kind(v) != kind(lo) {
                    Range::Incomparable
                } else {
                    let cmp = |a: &Value, b: &Value| match (a, b) {
                        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
                        _ => cmp_values(a, b),
                    };
                    let lo = if cmp(v, lo) == Ordering::Less { v } else { lo };
                    let hi = if cmp(v, hi) == Ordering::Greater {
                        v
                    } else {
                        hi
                    };
                    Range::Some(lo, hi)
                }
            }
        };
    }

    fn into_pair(self) -> Option<[Value; 2]> {
        match self {
            Range::Some(lo, hi) => Some([lo.clone(), hi.clone()]),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::checker::testkit::H;
    use crate::history::OpType::*;

    fn generate(h: &mut H, p: u64, id: Option<Value>) {
        let t = h.ops.len() as u64;
        h.c(t, Invoke, p, "generate", Value::Null);
        match id {
            Some(id) => h.c(t + 1, Ok, p, "generate", id),
            None => h.c(t + 1, Info, p, "generate", Value::Null),
        };
    }

    #[test]
    fn distinct_ids_are_valid() {
        let mut h = H::new();
        generate(&mut h, 0, Some(json!(10)));
        generate(&mut h, 1, Some(json!(-4)));
        generate(&mut h, 0, None);
        generate(&mut h, 1, Some(json!(7)));
        let r = check(&h.ops);
        assert_eq!(r.valid, Validity::True);
        assert_eq!((r.attempted_count, r.acknowledged_count), (4, 3));
        assert_eq!(r.range, Some([json!(-4), json!(10)]));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "valid?": true, "attempted-count": 4, "acknowledged-count": 3,
                "duplicated-count": 0, "duplicated": [], "range": [-4, 10]
            })
        );
    }

    #[test]
    fn a_repeated_id_is_invalid() {
        let mut h = H::new();
        generate(&mut h, 0, Some(json!("n1-1")));
        generate(&mut h, 1, Some(json!("n2-1")));
        generate(&mut h, 2, Some(json!("n1-1")));
        generate(&mut h, 0, Some(json!("n1-1")));
        generate(&mut h, 1, Some(json!("n2-1")));
        generate(&mut h, 1, Some(json!("n3-1")));
        let r = check(&h.ops);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.duplicated_count, 2);
        assert_eq!(r.duplicated, vec![(json!("n1-1"), 3), (json!("n2-1"), 2)]);
        assert_eq!(r.range, Some([json!("n1-1"), json!("n3-1")]));
        assert_eq!(
            serde_json::to_value(&r).unwrap()["duplicated"],
            json!([["n1-1", 3], ["n2-1", 2]])
        );
    }

    #[test]
    fn integer_and_float_ids_are_distinct() {
        let mut h = H::new();
        generate(&mut h, 0, Some(json!(1)));
        generate(&mut h, 0, Some(json!(1.0)));
        assert_eq!(check(&h.ops).valid, Validity::True);
    }

    #[test]
    fn lists_at_most_48_most_repeated() {
        let mut h = H::new();
        // Ids 0..60 each returned twice, and id 100 five times.
        for id in 0..60 {
            generate(&mut h, 0, Some(json!(id)));
            generate(&mut h, 0, Some(json!(id)));
        }
        for _ in 0..5 {
            generate(&mut h, 0, Some(json!(100)));
        }
        let r = check(&h.ops);
        assert_eq!(r.duplicated_count, 61);
        assert_eq!(r.duplicated.len(), 48);
        assert!(r.duplicated.contains(&(json!(100), 5)));
        assert_eq!(r.duplicated[0], (json!(0), 2));
    }

    #[test]
    fn mixed_ids_have_no_range_and_empty_has_none() {
        let mut h = H::new();
        generate(&mut h, 0, Some(json!(1)));
        generate(&mut h, 0, Some(json!("1")));
        let r = check(&h.ops);
        assert_eq!(r.range, None);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(check(&[]).range, None);
        let mut h = H::new();
        generate(&mut h, 0, Some(json!([1, 2])));
        assert_eq!(check(&h.ops).range, None);
    }
}

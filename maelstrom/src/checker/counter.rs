//! The g-counter and pn-counter checker (Maelstrom's `workload/pn_counter.clj`; the workloads are
//! described in <https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md>).
//!
//! Every `ok` final read (an `ok` `read` completion with `final?`) must be a value the counter
//! can have: the sum of the deltas of the `ok` adds, plus the deltas of any subset of the `info`
//! adds (each may or may not have happened). `fail` adds did not happen and are ignored. The set
//! of acceptable values is computed exactly, as a union of disjoint inclusive integer ranges
//! (Maelstrom uses a Guava range set), by adding each `info` delta in turn:
//! `A ← A ∪ (A + d)`.
//!
//! Keys: `valid?` (false if any final read is outside the acceptable set; true otherwise, so
//! also when no final read succeeded), `errors` (the offending final reads, `null` if none),
//! `final-reads` (the values of the `ok` final reads, in history order) and `acceptable`
//! (`[[lo, hi], …]`, inclusive, ascending).

use serde::Serialize;
use serde_json::Value;

use super::{in_index_order, CheckResult, Validity};
use crate::history::{Op, OpType, OpValue};

/// The workload result, with Maelstrom's keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterResult {
    #[serde(rename = "valid?")]
    pub valid: Validity,
    /// The final reads whose value is not acceptable; `None` (JSON `null`) when there are none.
    pub errors: Option<Vec<Op>>,
    #[serde(rename = "final-reads")]
    pub final_reads: Vec<Value>,
    /// Inclusive ranges, ascending, disjoint and not adjacent.
    pub acceptable: Vec<[i64; 2]>,
}

impl CheckResult for CounterResult {
    fn validity(&self) -> Validity {
        self.valid
    }
}

/// A union of disjoint, non-adjacent inclusive integer ranges, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(Vec<[i64; 2]>);

impl RangeSet {
    /// The set holding `v` alone.
    pub fn single(v: i64) -> RangeSet {
        RangeSet(vec![[v, v]])
    }

    /// `self ∪ (self + d)`: an add that may or may not have happened.
    pub fn maybe_add(&mut self, d: i64) {
        let mut all: Vec<[i64; 2]> = self.0.clone();
        all.extend(
            self.0
                .iter()
                .map(|[lo, hi]| [lo.saturating_add(d), hi.saturating_add(d)]),
        );
        all.sort_unstable();
        let mut merged: Vec<[i64; 2]> = Vec::with_capacity(all.len());
        for r in all {
            match merged.last_mut() {
                Some(last) if r[0] <= last[1].saturating_add(1) => last[1] = last[1].max(r[1]),
                _ => merged.push(r),
            }
        }
        self.0 = merged;
    }

    pub fn contains(&self, v: i64) -> bool {
        let i = self.0.partition_point(|r| r[1] < v);
        self.0.get(i).is_some_and(|r| r[0] <= v)
    }

    pub fn ranges(&self) -> &[[i64; 2]] {
        &self.0
    }
}

fn int(v: &OpValue) -> Option<i64> {
    v.as_json()?.as_i64()
}

/// Checks a g-counter or pn-counter history.
pub fn check(history: &[Op]) -> CounterResult {
    let history = in_index_order(history);
    let adds = history.iter().filter(|o| o.is_client() && o.f == "add");
    let definite: i64 = adds
        .clone()
        .filter(|o| o.kind == OpType::Ok)
        .filter_map(|o| int(&o.value))
        .fold(0i64, |a, d| a.saturating_add(d));
    let mut acceptable = RangeSet::single(definite);
    for d in adds
        .filter(|o| o.kind == OpType::Info)
        .filter_map(|o| int(&o.value))
    {
        acceptable.maybe_add(d);
    }
    let reads: Vec<&Op> = history
        .iter()
        .filter(|o| o.is_client() && o.final_ && o.kind == OpType::Ok && o.f == "read")
        .collect();
    let errors: Vec<Op> = reads
        .iter()
        .filter(|r| !int(&r.value).is_some_and(|v| acceptable.contains(v)))
        .map(|r| (*r).clone())
        .collect();
    CounterResult {
        valid: if errors.is_empty() {
            Validity::True
        } else {
            Validity::False
        },
        errors: (!errors.is_empty()).then_some(errors),
        final_reads: reads
            .iter()
            .map(|r| r.value.to_json().into_owned())
            .collect(),
        acceptable: acceptable.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::H;
    use proptest::prelude::*;
    use serde_json::json;
    use OpType::{Fail, Info, Invoke, Ok};

    /// An add of `d` by process `p` that ends as `kind`.
    fn add(h: &mut H, p: u64, d: i64, kind: OpType) {
        let t = h.ops.len() as u64;
        h.c(t, Invoke, p, "add", json!(d));
        h.c(t + 1, kind, p, "add", json!(d));
    }

    fn final_read(h: &mut H, p: u64, v: Value) {
        let t = h.ops.len() as u64;
        h.c(t, Invoke, p, "read", Value::Null).final_ = true;
        h.c(t + 1, Ok, p, "read", v).final_ = true;
    }

    #[test]
    fn range_sets_merge_overlapping_and_adjacent_ranges_only() {
        let mut s = RangeSet::single(10);
        s.maybe_add(1);
        assert_eq!(s.ranges(), &[[10, 11]]);
        s.maybe_add(5);
        assert_eq!(s.ranges(), &[[10, 11], [15, 16]]);
        s.maybe_add(2);
        assert_eq!(s.ranges(), &[[10, 13], [15, 18]]);
        s.maybe_add(-20);
        assert_eq!(s.ranges(), &[[-10, -7], [-5, -2], [10, 13], [15, 18]]);
        assert!(s.contains(-7) && s.contains(15) && !s.contains(14) && !s.contains(-6));
        s.maybe_add(0);
        assert_eq!(s.ranges().len(), 4, "a zero delta changes nothing");
    }

    #[test]
    fn a_correct_counter_passes() {
        let mut h = H::new();
        add(&mut h, 0, 3, Ok);
        add(&mut h, 1, 4, Ok);
        add(&mut h, 0, 2, Fail); // did not happen
        add(&mut h, 1, 5, Info); // may have happened
        final_read(&mut h, 0, json!(7));
        final_read(&mut h, 1, json!(12));
        let r = check(&h.ops);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(r.errors, None);
        assert_eq!(r.final_reads, vec![json!(7), json!(12)]);
        assert_eq!(r.acceptable, vec![[7, 7], [12, 12]]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"valid?": true, "errors": null, "final-reads": [7, 12], "acceptable": [[7, 7], [12, 12]]})
        );
    }

    #[test]
    fn a_counter_that_loses_an_add_is_invalid() {
        let mut h = H::new();
        add(&mut h, 0, 3, Ok);
        add(&mut h, 1, 4, Ok);
        final_read(&mut h, 0, json!(7));
        final_read(&mut h, 1, json!(3)); // lost the 4
        let r = check(&h.ops);
        assert_eq!(r.valid, Validity::False);
        let errors = r.errors.unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].value, json!(3));
    }

    #[test]
    fn a_counter_that_double_counts_is_invalid() {
        let mut h = H::new();
        add(&mut h, 0, 3, Ok);
        add(&mut h, 1, 4, Info);
        final_read(&mut h, 0, json!(11)); // 3 + 4 + 4
        let r = check(&h.ops);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.acceptable, vec![[3, 3], [7, 7]]);
    }

    #[test]
    fn only_ok_final_reads_count_and_none_is_valid() {
        let mut h = H::new();
        add(&mut h, 0, 3, Ok);
        // Not final: ignored, however wrong.
        h.c(10, Invoke, 0, "read", Value::Null);
        h.c(11, Ok, 0, "read", json!(99));
        // A final read that timed out: ignored.
        h.c(12, Invoke, 1, "read", Value::Null).final_ = true;
        h.c(13, Info, 1, "read", Value::Null).final_ = true;
        let r = check(&h.ops);
        assert_eq!(r.valid, Validity::True, "no final read succeeded");
        assert!(r.final_reads.is_empty());
        // A non-integer final read is never acceptable.
        final_read(&mut h, 2, json!("3"));
        assert_eq!(check(&h.ops).valid, Validity::False);
    }

    proptest! {
        /// A single-threaded reference counter (every add either happens or not, as its
        /// completion says; an `info` add may go either way) is always judged valid, and its
        /// value is always in the acceptable set.
        #[test]
        fn a_reference_counter_is_always_valid(
            ops in proptest::collection::vec((-5i64..5, 0u8..4, any::<bool>()), 0..60),
            readers in 1u64..5,
        ) {
            let mut h = H::new();
            let mut value = 0i64;
            for (i, (delta, outcome, applied)) in ops.into_iter().enumerate() {
                let p = i as u64 % readers;
                let kind = match outcome {
                    0 | 1 => { value += delta; Ok }
                    2 => Fail,
                    _ => { if applied { value += delta; } Info }
                };
                add(&mut h, p, delta, kind);
            }
            for p in 0..readers {
                final_read(&mut h, p, json!(value));
            }
            let r = check(&h.ops);
            prop_assert_eq!(r.valid, Validity::True, "{:?}", r);
            prop_assert_eq!(r.final_reads.len() as u64, readers);
        }
    }
}

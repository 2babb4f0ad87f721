//! Tests of the set-full checker.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::checker::testkit::H;
use crate::history::OpType::*;
use crate::history::{ChunkPool, IntList};

const MS: u64 = 1_000_000;

fn els(r: &SetFullResult) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    (r.lost.clone(), r.never_read.clone(), r.stale.clone())
}

/// A direct transcription of Jepsen's reduction: every ok read updates every tracked
/// element. The reference the fast path must agree with.
fn jepsen_states(history: &[Op]) -> Vec<ElementState> {
    let pairing = Pairing::new(history);
    let mut elements: HashMap<JsonKey, ElementState> = HashMap::new();
    for (pos, op) in history.iter().enumerate() {
        if !op.is_client() {
            continue;
        }
        if is_add(&op.f) {
            let value = op.value.to_json();
            if op.kind == Invoke {
                elements.insert(
                    key(&value),
                    ElementState {
                        value: value.into_owned(),
                        tracked_at: pos,
                        known: None,
                        last_present: None,
                        last_absent: None,
                    },
                );
            } else if op.kind == Ok {
                if let Some(el) = elements.get_mut(&key(&value)) {
                    el.known = el.known.or(Some(pos));
                }
            }
        } else if op.f == "read" && op.kind == Ok {
            let value = op.value.to_json();
            let (Some(inv), Some(vs)) = (pairing.invocation(pos), value.as_array()) else {
                continue;
            };
            let read: std::collections::HashSet<JsonKey> = vs.iter().map(key).collect();
            for el in elements.values_mut() {
                if read.contains(&key(&el.value)) {
                    el.known = el.known.or(Some(pos));
                    if el.last_present.is_none_or(|p| p < inv) {
                        el.last_present = Some(inv);
                    }
                } else if el.last_absent.is_none_or(|a| a < inv) {
                    el.last_absent = Some(inv);
                }
            }
        }
    }
    elements.into_values().collect()
}

fn sorted(mut v: Vec<ElementState>) -> Vec<ElementState> {
    v.sort_by(|a, b| cmp_values(&a.value, &b.value));
    v
}

#[test]
fn stable_lost_and_never_read() {
    let mut h = H::new();
    // 0: added and acked, then seen by the last read: stable.
    h.c(0, Invoke, 0, "broadcast", json!(0));
    h.c(MS, Ok, 0, "broadcast", json!(0));
    // 1: acked, seen once, then missing from a later read: lost.
    h.c(2 * MS, Invoke, 0, "broadcast", json!(1));
    h.c(3 * MS, Ok, 0, "broadcast", json!(1));
    // 2: invoked, info, never seen: never-read (absence without `known` means nothing).
    h.c(4 * MS, Invoke, 1, "broadcast", json!(2));
    h.c(5 * MS, Info, 1, "broadcast", json!(2));
    h.c(6 * MS, Invoke, 0, "read", Value::Null);
    h.c(7 * MS, Ok, 0, "read", json!([0, 1]));
    h.c(8 * MS, Invoke, 0, "read", Value::Null);
    h.c(9 * MS, Ok, 0, "read", json!([0]));
    // 3: acked after every read was invoked: never-read.
    h.c(10 * MS, Invoke, 2, "broadcast", json!(3));
    h.c(11 * MS, Ok, 2, "broadcast", json!(3));
    let r = check(&h.ops);
    assert_eq!(r.attempt_count, 4);
    assert_eq!(r.stable_count, 1);
    assert_eq!(r.lost_count, 1);
    assert_eq!(r.never_read_count, 2);
    assert_eq!(els(&r), (vec![json!(1)], vec![json!(2), json!(3)], vec![]));
    assert_eq!(r.valid, Validity::False);
    // Lost latency: last_present is the read invoked at 6 ms; known is the ack at 3 ms:
    // floor((6 ms + 1 − 3 ms) / 1 ms) = 3.
    let q = r.lost_latencies.unwrap();
    assert_eq!((q.q0, q.q100), (3, 3));
    // Stable latency of 0: never absent after it was known.
    assert_eq!(r.stable_latencies.unwrap().q0, 0);
}

#[test]
fn lost_without_any_present_read_has_latency_zero() {
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(7));
    h.c(MS, Ok, 0, "broadcast", json!(7));
    h.c(50 * MS, Invoke, 0, "read", Value::Null);
    h.c(51 * MS, Ok, 0, "read", json!([]));
    let r = check(&h.ops);
    assert_eq!(r.lost, vec![json!(7)]);
    assert_eq!(r.lost_latencies.unwrap().q100, 0);
    assert!(r.stable_latencies.is_none());
    let v = serde_json::to_value(&r).unwrap();
    assert!(v.get("stable-latencies").is_none());
    assert_eq!(
        v["lost-latencies"],
        json!({"0":0,"0.5":0,"0.95":0,"0.99":0,"1":0})
    );
}

#[test]
fn absence_concurrent_with_the_ack_is_never_read_not_lost() {
    // The read is invoked before the ack completes, so its absence is not a loss:
    // idx(known) < idx(last_absent) fails.
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1));
    h.c(1, Invoke, 1, "read", Value::Null);
    h.c(2, Ok, 0, "broadcast", json!(1));
    h.c(3, Ok, 1, "read", json!([]));
    let r = check(&h.ops);
    assert_eq!(r.never_read, vec![json!(1)]);
    assert_eq!(r.lost_count, 0);
    assert_eq!(r.valid, Validity::Unknown);
}

#[test]
fn stale_latency_uses_plus_one_and_floor() {
    let mut h = H::new();
    // Element 0: known at 1_000_000 ns; absent read invoked at 1_999_999 ns:
    // (1_999_999 + 1 − 1_000_000) / 10⁶ = 1 ms exactly: stale only thanks to the +1.
    h.c(0, Invoke, 0, "broadcast", json!(0));
    h.c(1_000_000, Ok, 0, "broadcast", json!(0));
    h.c(1_999_999, Invoke, 1, "read", Value::Null);
    h.c(2_000_000, Ok, 1, "read", json!([]));
    // Element 1: known at 3_000_000, absent read invoked at 5_999_998:
    // (5_999_998 + 1 − 3_000_000) = 2_999_999 ns → floor → 2 ms.
    h.c(2_500_000, Invoke, 0, "broadcast", json!(1));
    h.c(3_000_000, Ok, 0, "broadcast", json!(1));
    h.c(5_999_998, Invoke, 1, "read", Value::Null);
    h.c(6_000_000, Ok, 1, "read", json!([0]));
    // Element 2: known at 7_000_000, absent read invoked at 7_999_998:
    // 999_999 ns → 0 ms: stable but not stale.
    h.c(6_500_000, Invoke, 0, "broadcast", json!(2));
    h.c(7_000_000, Ok, 0, "broadcast", json!(2));
    h.c(7_999_998, Invoke, 1, "read", Value::Null);
    h.c(8_000_000, Ok, 1, "read", json!([0, 1]));
    h.c(9_000_000, Invoke, 1, "read", Value::Null);
    h.c(9_500_000, Ok, 1, "read", json!([0, 1, 2]));
    let r = check(&h.ops);
    assert_eq!(r.valid, Validity::True);
    assert_eq!(r.stable_count, 3);
    assert_eq!(r.stale, vec![json!(0), json!(1)]);
    assert_eq!(r.stale_count, 2);
    let lat: Vec<_> = r
        .worst_stale
        .iter()
        .map(|e| (e.element.clone(), e.stable_latency))
        .collect();
    assert_eq!(lat, vec![(json!(1), Some(2)), (json!(0), Some(1))]);
    let w = &r.worst_stale[0];
    assert_eq!(w.outcome, Outcome::Stable);
    assert_eq!(w.lost_latency, None);
    assert_eq!(w.known.as_ref().map(|o| o.time), Some(3_000_000));
    assert_eq!(w.last_absent.as_ref().map(|o| o.time), Some(5_999_998));
    // Stable latencies sorted [0, 1, 2]: n = 3 → indices 0, 1, 2, 2, 2.
    assert_eq!(
        r.stable_latencies,
        Some(Quantiles {
            q0: 0,
            q50: 1,
            q95: 2,
            q99: 2,
            q100: 2
        })
    );
}

#[test]
fn reads_invoked_before_the_add_but_completed_after_count() {
    // Both reads were outstanding when 9 was invoked, so both apply to it. The absent one
    // has the higher invocation index, so 9 is not stable; the ack completed after that
    // invocation, so it is not lost either.
    let mut h = H::new();
    h.c(0, Invoke, 1, "read", Value::Null); // 0: present read's invocation
    h.c(1, Invoke, 2, "read", Value::Null); // 1: absent read's invocation
    h.c(2, Invoke, 0, "broadcast", json!(9)); // 2
    h.c(3, Ok, 0, "broadcast", json!(9)); // 3
    h.c(4, Ok, 1, "read", json!([9])); // 4
    h.c(5, Ok, 2, "read", json!([])); // 5
    let states = element_states(&h.ops, &mut Errors::default());
    assert_eq!(
        (
            states[0].known,
            states[0].last_present,
            states[0].last_absent
        ),
        (Some(3), Some(0), Some(1))
    );
    assert_eq!(check(&h.ops).never_read, vec![json!(9)]);
    // A read completed before the add was invoked does not apply at all.
    let mut h = H::new();
    h.c(0, Invoke, 2, "read", Value::Null);
    h.c(1, Ok, 2, "read", json!([]));
    h.c(2, Invoke, 0, "broadcast", json!(9));
    h.c(3, Ok, 0, "broadcast", json!(9));
    h.c(4, Invoke, 1, "read", Value::Null);
    h.c(5, Ok, 1, "read", json!([9]));
    let states = element_states(&h.ops, &mut Errors::default());
    assert_eq!(states[0].last_absent, None);
}

#[test]
fn known_can_come_from_a_read_before_the_ack() {
    // The read completes (and sees v) before the ack: known is the read's completion.
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(5));
    h.c(2 * MS, Invoke, 1, "read", Value::Null);
    h.c(3 * MS, Ok, 1, "read", json!([5]));
    h.c(9 * MS, Ok, 0, "broadcast", json!(5));
    let r = check(&h.ops);
    assert_eq!(r.stable_count, 1);
    let states = element_states(&h.ops, &mut Errors::default());
    assert_eq!(states[0].known, Some(2));
    assert_eq!(states[0].last_present, Some(1));
}

#[test]
fn worst_stale_keeps_eight_highest_latencies_ties_by_descending_element() {
    let mut h = H::new();
    // Ten elements, each acked at t = 0 and absent from one read each; element k is absent
    // from a read invoked at (lat_k) ms, then all are present in a final read.
    let lats = [5u64, 1, 9, 3, 9, 7, 2, 8, 6, 4];
    for (k, _) in lats.iter().enumerate() {
        h.c(0, Invoke, 0, "broadcast", json!(k));
        h.c(0, Ok, 0, "broadcast", json!(k));
    }
    let all: Vec<usize> = (0..lats.len()).collect();
    for (k, lat) in lats.iter().enumerate() {
        let others: Vec<usize> = all.iter().copied().filter(|&j| j != k).collect();
        h.c(lat * MS, Invoke, 1, "read", Value::Null);
        h.c(lat * MS, Ok, 1, "read", json!(others));
    }
    h.c(100 * MS, Invoke, 1, "read", Value::Null);
    h.c(100 * MS, Ok, 1, "read", json!(all));
    let r = check(&h.ops);
    assert_eq!(r.stale_count, 10);
    let got: Vec<(Value, u64)> = r
        .worst_stale
        .iter()
        .map(|e| (e.element.clone(), e.stable_latency.unwrap_or(0)))
        .collect();
    // Latency 9 for elements 2 and 4: the higher element first.
    assert_eq!(
        got,
        vec![
            (json!(4), 9),
            (json!(2), 9),
            (json!(7), 8),
            (json!(5), 7),
            (json!(8), 6),
            (json!(0), 5),
            (json!(9), 4),
            (json!(3), 3),
        ]
    );
}

#[test]
fn quantile_formula_on_small_lists() {
    assert_eq!(quantiles(&[]), None);
    let one = quantiles(&[7]).unwrap();
    assert_eq!(
        (one.q0, one.q50, one.q95, one.q99, one.q100),
        (7, 7, 7, 7, 7)
    );
    // n = 2: floor(1) = 1 for 0.5; floor(1.9) = 1; floor(1.98) = 1; min(1, 2) = 1.
    let two = quantiles(&[20, 10]).unwrap();
    assert_eq!(
        (two.q0, two.q50, two.q95, two.q99, two.q100),
        (10, 20, 20, 20, 20)
    );
    // n = 4 over [1,2,3,4]: 0.5 → idx 2 (3); 0.95 → floor(3.8) = 3 (4).
    let four = quantiles(&[4, 3, 2, 1]).unwrap();
    assert_eq!(
        (four.q0, four.q50, four.q95, four.q99, four.q100),
        (1, 3, 4, 4, 4)
    );
    // n = 20: 0.95·20 = 19 exactly in doubles → idx 19; 0.5 → 10.
    let v: Vec<u64> = (0..20).collect();
    let q = quantiles(&v).unwrap();
    assert_eq!((q.q50, q.q95, q.q99, q.q100), (10, 19, 19, 19));
    // n = 101: 0.99·101 = 99.99 → 99; 0.95·101 = 95.95 → 95.
    let v: Vec<u64> = (0..101).collect();
    let q = quantiles(&v).unwrap();
    assert_eq!((q.q50, q.q95, q.q99, q.q100), (50, 95, 99, 100));
    assert_eq!(
        serde_json::to_value(q).unwrap(),
        json!({"0": 0, "0.5": 50, "0.95": 95, "0.99": 99, "1": 100})
    );
}

#[test]
fn later_invocation_with_same_value_resets_the_element() {
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1));
    h.c(MS, Ok, 0, "broadcast", json!(1));
    h.c(2 * MS, Invoke, 1, "read", Value::Null);
    h.c(3 * MS, Ok, 1, "read", json!([1])); // present, before the reset
    h.c(4 * MS, Invoke, 0, "broadcast", json!(1)); // reset
    h.c(5 * MS, Fail, 0, "broadcast", json!(1));
    let r = check(&h.ops);
    // Without the reset this would be stable; after it, nothing is known.
    assert_eq!(r.attempt_count, 1);
    assert_eq!(r.never_read, vec![json!(1)]);
    assert_eq!(r.valid, Validity::Unknown);

    // And absence recorded before the reset is forgotten too.
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1));
    h.c(MS, Ok, 0, "broadcast", json!(1));
    h.c(2 * MS, Invoke, 1, "read", Value::Null);
    h.c(3 * MS, Ok, 1, "read", json!([])); // would make it lost
    h.c(4 * MS, Invoke, 0, "broadcast", json!(1));
    h.c(5 * MS, Ok, 0, "broadcast", json!(1));
    h.c(6 * MS, Invoke, 1, "read", Value::Null);
    h.c(7 * MS, Ok, 1, "read", json!([1]));
    let r = check(&h.ops);
    assert_eq!(r.stable_count, 1);
    assert_eq!(r.stale_count, 0);
    assert_eq!(r.valid, Validity::True);
}

#[test]
fn only_the_latest_invoked_reads_matter() {
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1));
    h.c(MS, Ok, 0, "broadcast", json!(1));
    // Two final reads: n0's lacks 1 and is invoked first; n1's has it and is invoked later.
    h.c(10 * MS, Invoke, 0, "read", Value::Null).final_ = true;
    h.c(12 * MS, Invoke, 1, "read", Value::Null).final_ = true;
    h.c(13 * MS, Ok, 1, "read", json!([1])).final_ = true;
    h.c(14 * MS, Ok, 0, "read", json!([])).final_ = true;
    let r = check(&h.ops);
    assert_eq!(r.lost_count, 0);
    assert_eq!(r.stable_count, 1);
    // Stable and stale: (10 ms + 1 − 1 ms) → 9 ms.
    assert_eq!(r.stale, vec![json!(1)]);
    assert_eq!(r.worst_stale[0].stable_latency, Some(9));
    assert_eq!(r.valid, Validity::True);

    // Swap the invocation order: the later-invoked read lacks it, so it is lost.
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1));
    h.c(MS, Ok, 0, "broadcast", json!(1));
    h.c(10 * MS, Invoke, 1, "read", Value::Null).final_ = true;
    h.c(12 * MS, Invoke, 0, "read", Value::Null).final_ = true;
    h.c(13 * MS, Ok, 1, "read", json!([1])).final_ = true;
    h.c(14 * MS, Ok, 0, "read", json!([])).final_ = true;
    let r = check(&h.ops);
    assert_eq!(r.lost, vec![json!(1)]);
    assert_eq!(r.valid, Validity::False);
}

#[test]
fn failed_and_info_reads_are_ignored() {
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1));
    h.c(MS, Ok, 0, "broadcast", json!(1));
    h.c(2 * MS, Invoke, 1, "read", Value::Null);
    h.c(3 * MS, Ok, 1, "read", json!([1]));
    // Later reads that fail or are indeterminate, even if they carry a value, change nothing.
    h.c(4 * MS, Invoke, 1, "read", Value::Null);
    h.c(5 * MS, Fail, 1, "read", json!([]));
    h.c(6 * MS, Invoke, 2, "read", Value::Null);
    h.c(7 * MS, Info, 2, "read", json!([]));
    h.nemesis(8 * MS, "start-partition");
    let r = check(&h.ops);
    assert_eq!(r.stable_count, 1);
    assert_eq!(r.stale_count, 0);
    assert_eq!(r.valid, Validity::True);
}

#[test]
fn unknown_when_nothing_is_stable() {
    let r = check(&[]);
    assert_eq!(r.valid, Validity::Unknown);
    assert_eq!(r.attempt_count, 0);
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1));
    h.c(MS, Ok, 0, "broadcast", json!(1));
    let r = check(&h.ops);
    assert_eq!(r.never_read, vec![json!(1)]);
    assert_eq!(r.valid, Validity::Unknown);
}

#[test]
fn unbroadcast_values_and_duplicates_in_reads_are_ignored() {
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1));
    h.c(MS, Ok, 0, "broadcast", json!(1));
    h.c(2 * MS, Invoke, 1, "read", Value::Null);
    h.c(3 * MS, Ok, 1, "read", json!([1, 1, 99, "x", 1.0]));
    let r = check(&h.ops);
    assert_eq!(r.attempt_count, 1);
    assert_eq!(r.stable_count, 1);
    assert_eq!(r.duplicated_count, 0);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["duplicated"], json!({}));
    assert_eq!(v["valid?"], json!(true));
    assert!(v.get("errors").is_none());
}

#[test]
fn json_keys_match_maelstrom() {
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1));
    h.c(MS, Ok, 0, "broadcast", json!(1));
    h.c(2 * MS, Invoke, 1, "read", Value::Null);
    h.c(3 * MS, Ok, 1, "read", json!([]));
    h.c(4 * MS, Invoke, 1, "read", Value::Null);
    h.c(5 * MS, Ok, 1, "read", json!([1]));
    let v = serde_json::to_value(check(&h.ops)).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "valid?",
        "attempt-count",
        "stable-count",
        "lost-count",
        "lost",
        "never-read-count",
        "never-read",
        "stale-count",
        "stale",
        "worst-stale",
        "stable-latencies",
        "duplicated-count",
        "duplicated",
    ];
    let mut keys = keys;
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    let w = &v["worst-stale"][0];
    assert_eq!(w["element"], json!(1));
    assert_eq!(w["outcome"], json!("stable"));
    assert_eq!(w["stable-latency"], json!(1));
    assert_eq!(w["lost-latency"], Value::Null);
    assert_eq!(w["known"]["type"], json!("ok"));
    assert_eq!(w["last-absent"]["f"], json!("read"));
}

#[test]
fn malformed_reads_make_the_result_unknown_not_a_panic() {
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1));
    h.c(MS, Ok, 0, "broadcast", json!(1));
    h.c(2 * MS, Invoke, 1, "read", Value::Null);
    h.c(3 * MS, Ok, 1, "read", json!([1]));
    h.c(4 * MS, Invoke, 1, "read", Value::Null);
    h.c(5 * MS, Ok, 1, "read", json!({"not": "a list"}));
    h.c(6 * MS, Ok, 7, "read", json!([])); // no invocation
    let r = check(&h.ops);
    assert_eq!(r.stable_count, 1);
    assert_eq!(r.errors.len(), 2);
    assert_eq!(r.valid, Validity::Unknown);
}

#[test]
fn non_integer_elements_work_and_sort() {
    let mut h = H::new();
    for (p, v) in [json!("b"), json!("a"), json!(2.5), json!(-1)]
        .iter()
        .enumerate()
    {
        h.c(0, Invoke, p as u64, "add", v.clone());
        h.c(MS, Ok, p as u64, "add", v.clone());
    }
    h.c(2 * MS, Invoke, 9, "read", Value::Null);
    h.c(3 * MS, Ok, 9, "read", json!(["a", 2.5, -1]));
    let r = check(&h.ops);
    assert_eq!(r.lost, vec![json!("b")]);
    assert_eq!(r.stable_count, 3);
    // Sparse integers (no dense table) still match.
    let mut h = H::new();
    h.c(0, Invoke, 0, "broadcast", json!(1u64 << 40));
    h.c(MS, Ok, 0, "broadcast", json!(1u64 << 40));
    h.c(2 * MS, Invoke, 9, "read", Value::Null);
    h.c(3 * MS, Ok, 9, "read", json!([1u64 << 40, 5]));
    assert_eq!(check(&h.ops).stable_count, 1);
}

#[test]
fn large_history_is_fast() {
    // 10 000 elements, a read after every ack returning only the 10 newest values, and every
    // 500 elements a read returning everything so far. Jepsen's per-read loop over every
    // tracked element would cost ~5·10⁷ lookups; the sweep costs about the total read size.
    let mut h = H::new();
    let mut t = 0;
    let n = 10_000u64;
    for v in 0..n {
        h.c(t, Invoke, 0, "broadcast", json!(v));
        t += MS / 4;
        h.c(t, Ok, 0, "broadcast", json!(v));
        t += MS / 4;
        h.c(t, Invoke, 1, "read", Value::Null);
        t += MS / 4;
        let recent: Vec<u64> = (v.saturating_sub(9)..=v).collect();
        h.c(t, Ok, 1, "read", json!(recent));
        t += MS / 4;
        if v % 500 == 0 {
            h.c(t, Invoke, 2, "read", Value::Null);
            t += MS / 4;
            h.c(t, Ok, 2, "read", json!((0..=v).collect::<Vec<_>>()));
            t += MS / 4;
        }
    }
    h.c(t, Invoke, 1, "read", Value::Null);
    h.c(t + 1, Ok, 1, "read", json!((0..n).collect::<Vec<_>>()));
    let start = std::time::Instant::now();
    let r = check(&h.ops);
    let took = start.elapsed();
    assert_eq!(r.stable_count, n as usize);
    assert_eq!(r.valid, Validity::True);
    // Only the 10 newest were in the last small read; everything older is stale.
    assert_eq!(r.stale_count, n as usize - 10);
    assert!(took.as_secs() < 10, "took {took:?}");
}

/// A random, well-formed history: up to 4 client processes, small value space (so values
/// repeat and reset), reads of random subsets, every completion type, some nemesis noise.
fn history_strategy() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        (
            0u64..4,
            0u8..10,
            0u64..7,
            any::<u16>(),
            0u8..10,
            0u64..3_000_000,
        ),
        0..60,
    )
    .prop_map(|actions| {
        let mut h = H::new();
        let mut pending: HashMap<u64, (String, Value)> = HashMap::new();
        let mut t = 0;
        for (p, pick, value, bits, outcome, dt) in actions {
            t += dt;
            if pick == 9 {
                h.nemesis(t, "start-partition");
                continue;
            }
            if let Some((f, v)) = pending.remove(&p) {
                let kind = match outcome {
                    0 => Fail,
                    1 => Info,
                    _ => Ok,
                };
                let done = if f == "read" && kind == Ok {
                    let vs: Vec<u64> = (0..8).filter(|i| bits & (1 << i) != 0).collect();
                    json!(vs)
                } else {
                    v
                };
                h.c(t, kind, p, &f, done);
            } else if pick < 5 {
                h.c(t, Invoke, p, "broadcast", json!(value));
                pending.insert(p, ("broadcast".into(), json!(value)));
            } else {
                h.c(t, Invoke, p, "read", Value::Null);
                pending.insert(p, ("read".into(), Value::Null));
            }
        }
        h.ops
    })
}

/// `history` with every read result that can be an [`IntList`] held as one (whatever its
/// length), as the drivers hold large ones.
fn compacted(history: &[Op]) -> Vec<Op> {
    let mut pool = ChunkPool::new();
    let mut out = history.to_vec();
    for op in &mut out {
        if op.f == "read" {
            if let Some(list) = op
                .value
                .as_json()
                .and_then(|v| IntList::from_json(v, &mut pool))
            {
                op.value = OpValue::Ints(list);
            }
        }
    }
    out
}

/// `history` with every integer element `v` (in adds and reads) made `v · 1,000,003`, so the
/// elements are too sparse for the interner's direct table and go through its hash map.
fn sparse(history: &[Op]) -> Vec<Op> {
    let spread = |v: &Value| match v.as_u64() {
        Some(u) => json!(u * 1_000_003),
        None => v.clone(),
    };
    let mut out = history.to_vec();
    for op in &mut out {
        let v = op.value.to_json().into_owned();
        op.value = OpValue::Json(match v {
            Value::Array(items) => Value::Array(items.iter().map(spread).collect()),
            other => spread(&other),
        });
    }
    out
}

/// set-full's whole result (results.json's `workload`) over a history, as JSON text.
fn result_text(history: &[Op]) -> String {
    serde_json::to_string(&check(history)).unwrap()
}

#[test]
fn compact_reads_give_the_same_result() {
    // Reads of a growing log, some missing a value, with ids dense and sparse.
    let mut h = H::new();
    let mut t = 0;
    for v in 0..2_000u64 {
        h.c(t, Invoke, 0, "broadcast", json!(v));
        h.c(t + MS, Ok, 0, "broadcast", json!(v));
        if v % 7 == 0 {
            h.c(t + MS, Invoke, 1, "read", Value::Null);
            let seen: Vec<u64> = (0..=v).filter(|x| x % 301 != 5 || v < 1_500).collect();
            h.c(t + 2 * MS, Ok, 1, "read", json!(seen));
        }
        t += 3 * MS;
    }
    for history in [h.ops.clone(), sparse(&h.ops)] {
        let compact = compacted(&history);
        assert!(compact.iter().any(|o| matches!(o.value, OpValue::Ints(_))));
        assert_eq!(result_text(&compact), result_text(&history));
        assert!(check(&history).lost_count > 0);
    }
}

proptest! {
    #[test]
    fn compact_reads_agree_with_json_reads(history in history_strategy()) {
        for history in [history.clone(), sparse(&history)] {
            prop_assert_eq!(result_text(&compacted(&history)), result_text(&history));
        }
    }

    #[test]
    fn agrees_with_jepsens_algorithm(history in history_strategy()) {
        let fast = sorted(element_states(&history, &mut Errors::default()));
        let reference = sorted(jepsen_states(&history));
        prop_assert_eq!(&fast, &reference);
        let a = serde_json::to_value(check(&history)).unwrap();
        let b = serde_json::to_value(summarise(&history, reference, vec![])).unwrap();
        prop_assert_eq!(a, b);
    }
}

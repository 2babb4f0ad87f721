//! Jepsen's `set-full` checker with `:linearizable? false`: the broadcast and g-set workload
//! checker (`set-full` in Jepsen's `jepsen/src/jepsen/checker.clj`; Maelstrom's results are
//! described in <https://github.com/jepsen-io/maelstrom/blob/main/doc/results.md>).
//!
//! Client ops are processed in index order. An add (`f` = `broadcast`, or `add` for g-set)
//! invocation starts tracking its value, and a later invocation of the same value resets it. For
//! each element we keep:
//! - `known`: the first `ok` add completion, or the first `ok` read completion containing it;
//! - `last_present` / `last_absent`: the `ok` read *invocation* with the highest index whose result
//!   did / did not contain it (only reads completed after the element's tracking invocation).
//!
//! `fail` and `info` reads are ignored, and returned values that were never added are ignored.
//! Outcomes, with idx(∅) = −1: *stable* if `last_present` is set and idx(last_absent) <
//! idx(last_present); *lost* if `known` and `last_absent` are set, idx(last_present) <
//! idx(last_absent) and idx(known) < idx(last_absent); otherwise *never-read*. So only the
//! latest-invoked reads matter: nothing requires every final read to contain everything.
//!
//! Latencies are whole milliseconds: `floor(max(0, last_absent.time + 1 − known.time) / 10⁶)`
//! for stable elements (with `last_present` for lost ones), or 0 when that read is unset.
//! `valid?` is false if anything was lost, unknown if nothing is stable, true otherwise.
//! `duplicated` is always empty, as in Jepsen (its duplicate filter keeps counts below 1).
//!
//! # Cost
//! Jepsen applies every read to every tracked element: O(reads × elements). This module gives the
//! same answers in O(total read size + elements + reads·log reads):
//! - present updates touch only the values a read returned;
//! - `last_absent` is the highest-invoked read in an element's window that lacks it. Reads
//!   invoked after the element's invocation are swept in descending invocation order, keeping
//!   the set of undecided elements, which each read can only shrink; the few reads invoked before
//!   but completed after it (at most one per concurrent process) are checked while the history
//!   is scanned.
//!
//! Tests compare this against a direct transcription of Jepsen's algorithm on random histories.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::json::{cmp_values, key, JsonKey};
use super::pairing::Pairing;
use super::{in_index_order, CheckResult, Validity};
use crate::history::{Op, OpType};

/// How many stale elements `worst-stale` shows.
const WORST_STALE: usize = 8;
/// How many malformed-history messages are kept in `errors`.
const MAX_ERRORS: usize = 10;

/// The workload result, with Maelstrom's keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SetFullResult {
    #[serde(rename = "valid?")]
    pub valid: Validity,
    /// Number of distinct elements added (every add invocation, failed ones included).
    pub attempt_count: usize,
    pub stable_count: usize,
    pub lost_count: usize,
    /// Lost elements, sorted.
    pub lost: Vec<Value>,
    pub never_read_count: usize,
    /// Never-read elements, sorted.
    pub never_read: Vec<Value>,
    /// Number of stable elements with a latency above 0.
    pub stale_count: usize,
    /// Stale elements, sorted.
    pub stale: Vec<Value>,
    /// Up to 8 stale elements with the highest stable latency, highest first.
    pub worst_stale: Vec<ElementResult>,
    /// Quantiles of the stable elements' latencies (ms); absent when nothing is stable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_latencies: Option<Quantiles>,
    /// Quantiles of the lost elements' latencies (ms); absent when nothing is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_latencies: Option<Quantiles>,
    /// Always 0, as in Jepsen.
    pub duplicated_count: usize,
    /// Always `{}`, as in Jepsen.
    pub duplicated: BTreeMap<String, u64>,
    /// Our addition, present only for a malformed history (an `ok` read with no invocation or a
    /// non-array value): such reads are skipped and `valid?` is at best unknown, where Jepsen's
    /// checker would have thrown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl CheckResult for SetFullResult {
    fn validity(&self) -> Validity {
        self.valid
    }
}

/// One element's fate, as shown in `worst-stale`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ElementResult {
    pub element: Value,
    pub outcome: Outcome,
    /// Set for stable elements only.
    pub stable_latency: Option<u64>,
    /// Set for lost elements only.
    pub lost_latency: Option<u64>,
    /// The completion that first showed the element existed.
    pub known: Option<Op>,
    /// The highest-indexed read invocation that did not see it.
    pub last_absent: Option<Op>,
}

/// An element's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Stable,
    Lost,
    NeverRead,
}

/// Jepsen's `frequency-distribution` at the points 0, 0.5, 0.95, 0.99, 1: each is
/// `sorted[min(n−1, floor(n·q))]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quantiles {
    #[serde(rename = "0")]
    pub q0: u64,
    #[serde(rename = "0.5")]
    pub q50: u64,
    #[serde(rename = "0.95")]
    pub q95: u64,
    #[serde(rename = "0.99")]
    pub q99: u64,
    #[serde(rename = "1")]
    pub q100: u64,
}

/// The quantiles of `values`, or `None` when there are none.
///
/// Exact, by sorting, rather than from a histogram (`hdrhistogram` and the like): these are
/// results.json's `stable-latencies` and `lost-latencies`, which must be the very values Jepsen
/// reports, and a histogram gives a bucket's bound instead (and `hdrhistogram` counts ranks as
/// ⌈n·q⌉, not ⌊n·q⌋).
#[must_use]
pub fn quantiles(values: &[u64]) -> Option<Quantiles> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let at = |q: f64| -> Option<u64> {
        // Same double arithmetic as Jepsen's `(int (Math/floor (* n point)))`.
        let i = (n as f64 * q).floor() as usize;
        sorted.get(i.min(n.checked_sub(1)?)).copied()
    };
    Some(Quantiles {
        q0: at(0.0)?,
        q50: at(0.5)?,
        q95: at(0.95)?,
        q99: at(0.99)?,
        q100: at(1.0)?,
    })
}

/// Runs set-full over a history. Adds are ops with `f` = `broadcast` (Maelstrom maps it to `add`)
/// or `add` (g-set); reads have `f` = `read`.
#[must_use]
pub fn check(history: &[Op]) -> SetFullResult {
    let history = in_index_order(history);
    let mut errors = Errors::default();
    let states = element_states(&history, &mut errors);
    summarise(&history, states, errors.0)
}

fn is_add(f: &str) -> bool {
    f == "broadcast" || f == "add"
}

/// What the history tells us about one element. Positions index the (sorted) history slice, so
/// comparing them compares op indices.
#[derive(Debug, Clone, PartialEq)]
struct ElementState {
    value: Value,
    /// Position of the element's last add invocation (where tracking starts).
    tracked_at: usize,
    known: Option<usize>,
    last_present: Option<usize>,
    last_absent: Option<usize>,
}

#[derive(Default)]
struct Errors(Vec<String>);

impl Errors {
    fn push(&mut self, msg: impl FnOnce() -> String) {
        if self.0.len() < MAX_ERRORS {
            self.0.push(msg());
        }
    }
}

/// Value → element id, with a direct table for small non-negative integers (broadcast values are
/// 0, 1, 2, …) so the hot path does no hashing.
struct Interner {
    ids: HashMap<JsonKey, usize>,
    /// `dense[u]` is the id of integer `u`, or `usize::MAX`. When non-empty it holds every
    /// non-negative integer element, so an integer beyond it is not an element.
    dense: Vec<usize>,
}

impl Interner {
    fn build(ids: HashMap<JsonKey, usize>) -> Self {
        let mut max = 0u64;
        for k in ids.keys() {
            if let JsonKey::Pos(u) = k {
                max = max.max(*u);
            }
        }
        let limit = 4 * ids.len() as u64 + 1024;
        let mut dense = Vec::new();
        if max < limit {
            dense = vec![usize::MAX; max as usize + 1];
            for (k, &id) in &ids {
                if let JsonKey::Pos(u) = k {
                    dense[*u as usize] = id;
                }
            }
        }
        Interner { ids, dense }
    }

    fn get(&self, v: &Value) -> Option<usize> {
        if !self.dense.is_empty() {
            if let Some(u) = v.as_u64() {
                let id = *self.dense.get(usize::try_from(u).ok()?)?;
                return (id != usize::MAX).then_some(id);
            }
        }
        self.ids.get(&key(v)).copied()
    }
}

fn max_opt(a: Option<usize>, b: usize) -> Option<usize> {
    Some(a.map_or(b, |a| a.max(b)))
}

/// Computes every element's state (see the module docs for the algorithm).
fn element_states(history: &[Op], errors: &mut Errors) -> Vec<ElementState> {
    let pairing = Pairing::new(history);

    // 1. Elements, each tracked from its last add invocation (a re-invocation resets the state,
    //    so nothing before it matters).
    let mut ids: HashMap<JsonKey, usize> = HashMap::new();
    let mut elems: Vec<ElementState> = Vec::new();
    for (pos, op) in history.iter().enumerate() {
        if op.is_client() && op.kind == OpType::Invoke && is_add(&op.f) {
            let next = elems.len();
            let id = *ids.entry(key(&op.value)).or_insert(next);
            if id == next {
                elems.push(ElementState {
                    value: op.value.clone(),
                    tracked_at: pos,
                    known: None,
                    last_present: None,
                    last_absent: None,
                });
            } else {
                elems[id].tracked_at = pos;
            }
        }
    }
    let n = elems.len();
    let interner = Interner::build(ids);
    let mut by_tracking: Vec<usize> = (0..n).collect();
    by_tracking.sort_unstable_by_key(|&e| elems[e].tracked_at);
    let tracking: Vec<usize> = by_tracking.iter().map(|&e| elems[e].tracked_at).collect();

    // 2. Forward scan: `known`, `last_present`, and `last_absent` from reads that were already
    //    outstanding when the element was invoked.
    let mut stamps = vec![0u32; n];
    let mut stamp = 0u32;
    let mut absent_concurrent: Vec<Option<usize>> = vec![None; n];
    let mut reads: Vec<(usize, usize)> = Vec::new(); // (invocation, completion)
    for (pos, op) in history.iter().enumerate() {
        if !op.is_client() || op.kind != OpType::Ok {
            continue;
        }
        if is_add(&op.f) {
            if let Some(e) = interner.get(&op.value) {
                let el = &mut elems[e];
                if el.tracked_at < pos && el.known.is_none() {
                    el.known = Some(pos);
                }
            }
        } else if op.f == "read" {
            let Some(inv) = pairing.invocation(pos) else {
                errors.push(|| format!("ok read at index {} has no invocation", op.index));
                continue;
            };
            let Some(values) = op.value.as_array() else {
                errors.push(|| format!("ok read at index {} did not return a list", op.index));
                continue;
            };
            stamp += 1;
            for v in values {
                if let Some(e) = interner.get(v) {
                    let el = &mut elems[e];
                    if el.tracked_at < pos {
                        el.known.get_or_insert(pos);
                        el.last_present = max_opt(el.last_present, inv);
                        stamps[e] = stamp;
                    }
                }
            }
            let lo = tracking.partition_point(|&t| t <= inv);
            let hi = tracking.partition_point(|&t| t < pos);
            for &e in &by_tracking[lo..hi] {
                if stamps[e] != stamp {
                    absent_concurrent[e] = max_opt(absent_concurrent[e], inv);
                }
            }
            reads.push((inv, pos));
        }
    }

    // 3. Sweep reads by descending invocation. An element is undecided while the reads seen so
    //    far (all invoked after it, hence in its window) contained it; the first that lacks it
    //    is its highest-invoked absent read.
    reads.sort_unstable_by_key(|&(inv, _)| std::cmp::Reverse(inv));
    let mut absent_sweep: Vec<Option<usize>> = vec![None; n];
    let mut active = vec![true; n];
    let mut active_count = n;
    let mut undecided: Vec<usize> = (0..n).collect();
    let mut not_yet_invoked = n; // by_tracking[not_yet_invoked..] are invoked after this read
    for &(inv, pos) in &reads {
        while not_yet_invoked > 0 && tracking[not_yet_invoked - 1] > inv {
            not_yet_invoked -= 1;
            let e = by_tracking[not_yet_invoked];
            if active[e] {
                active[e] = false;
                active_count -= 1;
            }
        }
        if active_count == 0 {
            break;
        }
        let Some(values) = history[pos].value.as_array() else {
            continue;
        };
        stamp += 1;
        let mut hits = 0;
        for v in values {
            if let Some(e) = interner.get(v) {
                if active[e] && stamps[e] != stamp {
                    stamps[e] = stamp;
                    hits += 1;
                }
            }
        }
        if hits < active_count {
            undecided.retain(|&e| {
                if !active[e] {
                    false
                } else if stamps[e] == stamp {
                    true
                } else {
                    absent_sweep[e] = Some(inv);
                    active[e] = false;
                    active_count -= 1;
                    false
                }
            });
        }
    }

    for (e, el) in elems.iter_mut().enumerate() {
        el.last_absent = absent_sweep[e].max(absent_concurrent[e]);
    }
    elems
}

/// An element's outcome and latencies (Jepsen's `set-full-element-results`).
struct Judged {
    outcome: Outcome,
    stable_latency: Option<u64>,
    lost_latency: Option<u64>,
}

fn judge(history: &[Op], el: &ElementState) -> Judged {
    // `Option`'s order puts `None` first, which is exactly idx(∅) = −1.
    let stable = el.last_present.is_some() && el.last_absent < el.last_present;
    let lost = el.known.is_some()
        && el.last_absent.is_some()
        && el.last_present < el.last_absent
        && el.known < el.last_absent;
    // floor(max(0, read.time + 1 − known.time) / 10⁶), or 0 without that read.
    let latency = |read: Option<usize>| -> u64 {
        let (Some(read), Some(known)) = (read, el.known) else {
            return 0;
        };
        let ns = i128::from(history[read].time) + 1 - i128::from(history[known].time);
        u64::try_from(ns.max(0) / 1_000_000).unwrap_or(u64::MAX)
    };
    if stable {
        Judged {
            outcome: Outcome::Stable,
            stable_latency: Some(latency(el.last_absent)),
            lost_latency: None,
        }
    } else if lost {
        Judged {
            outcome: Outcome::Lost,
            stable_latency: None,
            lost_latency: Some(latency(el.last_present)),
        }
    } else {
        Judged {
            outcome: Outcome::NeverRead,
            stable_latency: None,
            lost_latency: None,
        }
    }
}

/// Jepsen's `set-full-results`, over elements in sorted order.
fn summarise(history: &[Op], mut elems: Vec<ElementState>, errors: Vec<String>) -> SetFullResult {
    elems.sort_by(|a, b| cmp_values(&a.value, &b.value));
    let judged: Vec<Judged> = elems.iter().map(|el| judge(history, el)).collect();

    let pick = |outcome: Outcome| -> Vec<Value> {
        elems
            .iter()
            .zip(&judged)
            .filter(|(_, j)| j.outcome == outcome)
            .map(|(el, _)| el.value.clone())
            .collect()
    };
    let lost = pick(Outcome::Lost);
    let never_read = pick(Outcome::NeverRead);
    let stable_count = judged
        .iter()
        .filter(|j| j.outcome == Outcome::Stable)
        .count();

    // Stale: stable with a positive latency, in element order.
    let stale_idx: Vec<usize> = (0..elems.len())
        .filter(|&i| judged[i].stable_latency.is_some_and(|l| l > 0))
        .collect();
    // Jepsen: (->> stale (sort-by :stable-latency) reverse (take 8)); the sort is stable, so
    // ties come out in descending element order.
    let mut worst = stale_idx.clone();
    worst.sort_by_key(|&i| judged[i].stable_latency);
    worst.reverse();
    worst.truncate(WORST_STALE);
    let op_at = |p: Option<usize>| p.and_then(|p| history.get(p)).cloned();
    let worst_stale = worst
        .into_iter()
        .map(|i| ElementResult {
            element: elems[i].value.clone(),
            outcome: judged[i].outcome,
            stable_latency: judged[i].stable_latency,
            lost_latency: judged[i].lost_latency,
            known: op_at(elems[i].known),
            last_absent: op_at(elems[i].last_absent),
        })
        .collect();

    let stable_latencies: Vec<u64> = judged.iter().filter_map(|j| j.stable_latency).collect();
    let lost_latencies: Vec<u64> = judged.iter().filter_map(|j| j.lost_latency).collect();

    let valid = if !lost.is_empty() {
        Validity::False
    } else if stable_count == 0 || !errors.is_empty() {
        Validity::Unknown
    } else {
        Validity::True
    };

    SetFullResult {
        valid,
        attempt_count: elems.len(),
        stable_count,
        lost_count: lost.len(),
        lost,
        never_read_count: never_read.len(),
        never_read,
        stale_count: stale_idx.len(),
        stale: stale_idx.iter().map(|&i| elems[i].value.clone()).collect(),
        worst_stale,
        stable_latencies: quantiles(&stable_latencies),
        lost_latencies: quantiles(&lost_latencies),
        duplicated_count: 0,
        duplicated: BTreeMap::new(),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::checker::testkit::H;
    use crate::history::OpType::*;

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
                if op.kind == Invoke {
                    elements.insert(
                        key(&op.value),
                        ElementState {
                            value: op.value.clone(),
                            tracked_at: pos,
                            known: None,
                            last_present: None,
                            last_absent: None,
                        },
                    );
                } else if op.kind == Ok {
                    if let Some(el) = elements.get_mut(&key(&op.value)) {
                        el.known = el.known.or(Some(pos));
                    }
                }
            } else if op.f == "read" && op.kind == Ok {
                let (Some(inv), Some(vs)) = (pairing.invocation(pos), op.value.as_array()) else {
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

    proptest! {
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
}

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
use crate::history::{Op, OpType, OpValue};

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
        match v.as_u64() {
            Some(u) => self.get_u64(u),
            None => self.ids.get(&key(v)).copied(),
        }
    }

    fn get_u64(&self, u: u64) -> Option<usize> {
        if self.dense.is_empty() {
            return self.ids.get(&JsonKey::Pos(u)).copied();
        }
        let id = *self.dense.get(usize::try_from(u).ok()?)?;
        (id != usize::MAX).then_some(id)
    }

    /// Calls `each` with the id of every element of a read's result that is an element, in
    /// order; `false` if the result is not a list.
    fn each_id(&self, result: &OpValue, each: impl FnMut(usize)) -> bool {
        match result {
            OpValue::Ints(list) => list.iter().filter_map(|u| self.get_u64(u)).for_each(each),
            OpValue::Json(Value::Array(items)) => {
                items.iter().filter_map(|v| self.get(v)).for_each(each);
            }
            OpValue::Json(_) => return false,
        }
        true
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
            let value = op.value.to_json();
            let id = *ids.entry(key(&value)).or_insert(next);
            if id == next {
                elems.push(ElementState {
                    value: value.into_owned(),
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
            if let Some(e) = interner.get(&op.value.to_json()) {
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
            if !op.value.is_list() {
                errors.push(|| format!("ok read at index {} did not return a list", op.index));
                continue;
            }
            stamp += 1;
            interner.each_id(&op.value, |e| {
                let el = &mut elems[e];
                if el.tracked_at < pos {
                    el.known.get_or_insert(pos);
                    el.last_present = max_opt(el.last_present, inv);
                    stamps[e] = stamp;
                }
            });
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
        stamp += 1;
        let mut hits = 0;
        let listed = interner.each_id(&history[pos].value, |e| {
            if active[e] && stamps[e] != stamp {
                stamps[e] = stamp;
                hits += 1;
            }
        });
        if !listed {
            continue;
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
mod tests;

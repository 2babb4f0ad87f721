//! Planted-bug fixtures (one hand-built history per anomaly type, flagged with Jepsen's name)
//! and a property test: histories of a single-threaded reference log are always valid.

use super::*;
use crate::checker::testkit::H;
use proptest::prelude::*;
use serde_json::json;
use OpType::{Fail, Info, Invoke, Ok};

/// Builds ops with increasing times, one per call.
struct B {
    h: H,
    t: u64,
}

impl B {
    fn new() -> B {
        B { h: H::new(), t: 0 }
    }

    fn tick(&mut self) -> u64 {
        self.t += 1_000_000;
        self.t
    }

    fn invoke(&mut self, p: u64, f: &str, v: Value) {
        let t = self.tick();
        self.h.c(t, Invoke, p, f, v);
    }

    fn done(&mut self, p: u64, kind: OpType, f: &str, v: Value) {
        let t = self.tick();
        self.h.c(t, kind, p, f, v);
    }

    /// A send of `msg` to `key` by `p`, ending as `kind` at `offset`.
    fn send(&mut self, p: u64, key: &str, msg: i64, offset: i64, kind: OpType) {
        self.invoke(p, "send", json!([["send", key, msg]]));
        let v = if kind == Ok {
            json!([["send", key, [offset, msg]]])
        } else {
            json!([["send", key, msg]])
        };
        self.done(p, kind, "send", v);
    }

    /// A poll by `p` returning `msgs` (`{key: [[offset, msg], …]}`).
    fn poll(&mut self, p: u64, msgs: Value) {
        self.invoke(p, "poll", json!([["poll"]]));
        self.done(p, Ok, "poll", json!([["poll", msgs]]));
    }

    fn assign(&mut self, p: u64, keys: Value) {
        self.invoke(p, "assign", keys.clone());
        self.done(p, Ok, "assign", keys);
    }

    fn check(&self) -> KafkaResult {
        check(&self.h.ops)
    }
}

/// Asserts that `r` reports `kind` and whether that makes it invalid.
fn flags(r: &KafkaResult, kind: &str, invalid: bool) {
    assert!(
        r.error_types.iter().any(|k| k == kind),
        "{kind} not reported: {}",
        serde_json::to_string(r).unwrap_or_default()
    );
    let want = if invalid {
        Validity::False
    } else {
        Validity::True
    };
    assert_eq!(
        r.valid,
        want,
        "{}",
        serde_json::to_string(r).unwrap_or_default()
    );
}

#[test]
fn a_correct_history_passes() {
    let mut b = B::new();
    b.send(0, "1", 1, 0, Ok);
    b.send(1, "1", 2, 1, Ok);
    b.send(0, "2", 1, 0, Info); // never took effect: no promise
    b.assign(2, json!(["1", "2"]));
    b.poll(2, json!({"1": [[0, 1]]}));
    b.poll(2, json!({"1": [[1, 2]]}));
    b.send(1, "1", 3, 2, Ok);
    b.poll(2, json!({"1": [[2, 3]]}));
    b.poll(3, json!({})); // a client with no assignment
    let r = b.check();
    assert_eq!(r.valid, Validity::True, "{r:?}");
    assert!(r.error_types.is_empty(), "{r:?}");
}

#[test]
fn two_messages_at_one_offset_are_inconsistent_offsets() {
    let mut b = B::new();
    b.send(0, "1", 1, 0, Ok);
    b.send(1, "1", 2, 0, Ok);
    b.poll(2, json!({"1": [[0, 1]]}));
    flags(&b.check(), "inconsistent-offsets", true);
}

#[test]
fn one_message_at_two_offsets_is_a_duplicate() {
    let mut b = B::new();
    b.send(0, "1", 1, 0, Ok);
    b.poll(2, json!({"1": [[0, 1], [1, 1]]}));
    flags(&b.check(), "duplicate", true);
}

#[test]
fn an_acknowledged_message_below_what_was_read_yet_never_read_is_lost() {
    let mut b = B::new();
    b.send(0, "1", 1, 0, Ok);
    b.send(0, "1", 2, 1, Ok);
    b.assign(1, json!(["1"]));
    b.poll(1, json!({"1": [[1, 2]]}));
    let r = b.check();
    flags(&r, "lost-write", true);
    // An `info` send whose message nobody read promised nothing.
    let mut b = B::new();
    b.send(0, "1", 1, 0, Info);
    b.send(0, "1", 2, 1, Ok);
    b.poll(1, json!({"1": [[1, 2]]}));
    assert!(!b.check().error_types.iter().any(|k| k == "lost-write"));
}

#[test]
fn an_acknowledged_message_never_polled_is_unseen() {
    let mut b = B::new();
    b.send(0, "7", 1, 0, Ok);
    let r = b.check();
    flags(&r, "unseen", true);
    assert_eq!(r.errors["unseen"]["unseen"]["7"], json!(1));
    assert_eq!(r.errors["unseen"]["messages"]["7"], json!([1]));
}

#[test]
fn a_process_polling_past_a_known_message_is_a_poll_skip() {
    let mut b = B::new();
    for (m, o) in [(1, 0), (2, 1), (3, 2)] {
        b.send(0, "1", m, o, Ok);
    }
    b.poll(9, json!({"1": [[0, 1], [1, 2], [2, 3]]}));
    b.poll(1, json!({"1": [[0, 1]]}));
    b.poll(1, json!({"1": [[2, 3]]}));
    let r = b.check();
    flags(&r, "poll-skip", true);
    assert_eq!(r.errors["poll-skip"]["errs"][0]["skipped"], json!([2]));
    // An assign in between that drops the key forgets the position: no skip.
    let mut b = B::new();
    for (m, o) in [(1, 0), (2, 1), (3, 2)] {
        b.send(0, "1", m, o, Ok);
    }
    b.poll(9, json!({"1": [[0, 1], [1, 2], [2, 3]]}));
    b.poll(1, json!({"1": [[0, 1]]}));
    b.assign(1, json!(["2"]));
    b.poll(1, json!({"1": [[2, 3]]}));
    assert!(b.check().error_types.is_empty(), "{:?}", b.check());
}

#[test]
fn a_process_polling_backwards_is_a_nonmonotonic_poll() {
    let mut b = B::new();
    b.send(0, "1", 1, 0, Ok);
    b.send(0, "1", 2, 1, Ok);
    b.poll(1, json!({"1": [[0, 1], [1, 2]]}));
    b.poll(1, json!({"1": [[0, 1]]}));
    flags(&b.check(), "nonmonotonic-poll", true);
}

#[test]
fn a_process_whose_later_send_lands_earlier_is_a_nonmonotonic_send() {
    let mut b = B::new();
    b.send(0, "1", 1, 1, Ok);
    b.send(0, "1", 2, 0, Ok);
    b.poll(1, json!({"1": [[0, 2], [1, 1]]}));
    flags(&b.check(), "nonmonotonic-send", true);
}

#[test]
fn skips_and_inversions_within_one_op_are_the_internal_variants() {
    let mut b = B::new();
    for (m, o) in [(1, 0), (2, 1), (3, 2)] {
        b.send(0, "1", m, o, Ok);
    }
    b.poll(9, json!({"1": [[0, 1], [1, 2], [2, 3]]}));
    b.poll(1, json!({"1": [[0, 1], [2, 3]]}));
    flags(&b.check(), "int-poll-skip", true);

    let mut b = B::new();
    b.send(0, "1", 1, 0, Ok);
    b.send(0, "1", 2, 1, Ok);
    b.poll(1, json!({"1": [[1, 2], [0, 1]]}));
    flags(&b.check(), "int-nonmonotonic-poll", true);

    // Sends within one transaction (never generated by Maelstrom; hand-built `txn` ops).
    let txn = |b: &mut B, sends: Value| {
        b.invoke(0, "txn", json!([]));
        b.done(0, Ok, "txn", sends);
    };
    let mut b = B::new();
    txn(
        &mut b,
        json!([["send", "1", [0, 1]], ["send", "1", [2, 3]]]),
    );
    b.send(1, "1", 2, 1, Ok);
    b.poll(2, json!({"1": [[0, 1], [1, 2], [2, 3]]}));
    // int-send-skip is allowed: reported, yet valid.
    flags(&b.check(), "int-send-skip", false);

    let mut b = B::new();
    txn(
        &mut b,
        json!([["send", "1", [1, 1]], ["send", "1", [0, 2]]]),
    );
    b.poll(2, json!({"1": [[0, 2], [1, 1]]}));
    flags(&b.check(), "int-nonmonotonic-send", true);
}

#[test]
fn reading_ones_own_uncommitted_send_is_a_precommitted_read() {
    let mut b = B::new();
    b.invoke(0, "txn", json!([]));
    b.done(
        0,
        Ok,
        "txn",
        json!([["send", "1", [0, 1]], ["poll", {"1": [[0, 1]]}]]),
    );
    flags(&b.check(), "precommitted-read", true);
}

#[test]
fn reading_a_failed_send_is_g1a() {
    let mut b = B::new();
    b.send(0, "1", 1, 0, Fail);
    b.poll(1, json!({"1": [[0, 1]]}));
    flags(&b.check(), "G1a", true);
}

#[test]
fn a_poll_that_ended_before_its_message_was_sent_is_a_realtime_cycle() {
    let mut b = B::new();
    b.poll(1, json!({"1": [[0, 1]]}));
    b.send(0, "1", 1, 0, Ok);
    flags(&b.check(), "G1c-realtime", true);
}

#[test]
fn a_poll_that_ended_before_an_info_send_of_its_message_began_is_a_realtime_cycle() {
    // Elle's realtime graph has edges into `info` ops too (they were invoked; they may have
    // taken effect), so the indeterminate send closes the cycle as an `ok` one would.
    let mut b = B::new();
    b.poll(1, json!({"1": [[0, 1]]}));
    b.send(0, "1", 1, 0, Info);
    flags(&b.check(), "G1c-realtime", true);
}

/// A `txn` op by `p`: invoked now, completed (`ok`) at the matching [`done_txn`].
fn begin_txn(b: &mut B, p: u64) {
    b.invoke(p, "txn", json!([]));
}

fn done_txn(b: &mut B, p: u64, mops: Value) {
    b.done(p, Ok, "txn", mops);
}

/// The steps' types of the only case of `kind`, sorted.
fn step_types(r: &KafkaResult, kind: &str) -> Vec<String> {
    let errs = &r.errors[kind]["errs"];
    assert_eq!(r.errors[kind]["count"], json!(1), "{errs}");
    let mut types: Vec<String> = errs[0]["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["type"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    types.sort();
    types
}

#[test]
fn a_chain_of_reads_through_a_txn_closed_by_realtime_is_a_realtime_cycle() {
    // A sends a:1; B (a txn) polls it and sends b:2; C polls b:2. C completed before A began,
    // so A -wr-> B -wr-> C -realtime-> A. No single poll ended before the send it read began
    // (B ended after A began, C after B began), so the two-op shortcut saw nothing here.
    let mut b = B::new();
    begin_txn(&mut b, 1); // B
    b.invoke(2, "poll", json!([["poll"]])); // C
    b.done(2, Ok, "poll", json!([["poll", {"b": [[0, 2]]}]]));
    b.send(0, "a", 1, 0, Ok); // A
    done_txn(
        &mut b,
        1,
        json!([["poll", {"a": [[0, 1]]}], ["send", "b", [0, 2]]]),
    );
    let r = b.check();
    flags(&r, "G1c-realtime", true);
    assert_eq!(r.error_types, ["G1c-realtime"], "{r:?}");
    assert_eq!(step_types(&r, "G1c-realtime"), ["realtime", "wr", "wr"]);
    let case = &r.errors["G1c-realtime"]["errs"][0];
    assert_eq!(case["cycle"].as_array().map(Vec::len), Some(3), "{case}");
}

#[test]
fn two_txns_reading_each_others_sends_are_g1c() {
    // Concurrent, so no realtime edge: T1 -wr-> T2 -wr-> T1 through the data alone.
    let mut b = B::new();
    begin_txn(&mut b, 0);
    begin_txn(&mut b, 1);
    done_txn(
        &mut b,
        0,
        json!([["send", "a", [0, 1]], ["poll", {"b": [[0, 2]]}]]),
    );
    done_txn(
        &mut b,
        1,
        json!([["send", "b", [0, 2]], ["poll", {"a": [[0, 1]]}]]),
    );
    let r = b.check();
    flags(&r, "G1c", true);
    assert_eq!(r.error_types, ["G1c"], "{r:?}");
    assert_eq!(step_types(&r, "G1c"), ["wr", "wr"]);
    // Each step names the message behind it.
    let case = &r.errors["G1c"]["errs"][0];
    let mut why: Vec<String> = case["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| format!("{}={}", s["key"], s["value"]))
                .collect()
        })
        .unwrap_or_default();
    why.sort();
    assert_eq!(why, ["\"a\"=1", "\"b\"=2"], "{case}");
}

#[test]
fn a_cycle_the_budget_cannot_reach_is_a_search_timeout() {
    let mut b = B::new();
    b.poll(1, json!({"1": [[0, 1]]}));
    b.send(0, "1", 1, 0, Ok);
    let r = check_within(&b.h.ops, 1);
    flags(&r, "cycle-search-timeout", true);
    assert!(!r.error_types.iter().any(|k| k.starts_with("G1c")), "{r:?}");
    assert_eq!(
        r.errors["cycle-search-timeout"]["errs"][0]["components-not-searched"],
        json!(1)
    );
}

#[test]
fn concurrent_txns_whose_reads_follow_their_sends_are_valid() {
    // T1 sends a:1; T2, overlapping T1, polls it and sends b:2; T3 begins after T1 ended and
    // before T2 did, polls b:2 and sends c:3; a last poll reads c:3. Edges T1 -wr-> T2 -wr-> T3,
    // T1 -realtime-> T3, T3 -> the last poll: no cycle.
    let mut b = B::new();
    begin_txn(&mut b, 0);
    begin_txn(&mut b, 1);
    done_txn(&mut b, 0, json!([["send", "a", [0, 1]]]));
    begin_txn(&mut b, 2);
    done_txn(
        &mut b,
        1,
        json!([["poll", {"a": [[0, 1]]}], ["send", "b", [0, 2]]]),
    );
    done_txn(
        &mut b,
        2,
        json!([["poll", {"b": [[0, 2]]}], ["send", "c", [0, 3]]]),
    );
    b.poll(3, json!({"c": [[0, 3]]}));
    let r = b.check();
    assert_eq!(r.valid, Validity::True, "{r:?}");
    assert!(r.error_types.is_empty(), "{r:?}");
}

#[test]
fn crashes_and_assigns_alone_are_valid_and_a_lagging_poll_is_measured() {
    let mut b = B::new();
    b.invoke(0, "crash", Value::Null);
    b.done(0, Info, "crash", Value::Null);
    b.assign(1, json!(["1"]));
    b.send(0, "1", 1, 0, Ok);
    b.send(0, "1", 2, 1, Ok);
    b.poll(1, json!({"1": [[0, 1]]}));
    b.poll(1, json!({"1": [[1, 2]]}));
    let r = b.check();
    assert_eq!(r.valid, Validity::True, "{r:?}");
    // The second poll began after message 2's send completed, having polled only up to 0.
    assert!(
        r.worst_realtime_lag["lag"].as_f64().unwrap_or(0.0) > 0.0,
        "{r:?}"
    );
}

#[test]
fn malformed_values_are_skipped_without_panicking() {
    let mut b = B::new();
    for v in [
        json!(null),
        json!("x"),
        json!([1, 2]),
        json!([["send"]]),
        json!([["send", 1, [null, 2]]]),
        json!([["poll", {"1": 5}]]),
        json!([["poll", {"1": [[null], [1e99, 2], "z"]}]]),
        json!([["send", "1", [-5, 1]]]),
        json!([["send", "1", [i64::MAX, 1]]]),
        json!([["poll", {"1": [[i64::MIN, 1]]}]]),
    ] {
        b.invoke(0, "poll", json!([["poll"]]));
        b.done(0, Ok, "poll", v.clone());
        b.invoke(0, "send", json!([["send", "1", 1]]));
        b.done(0, Ok, "send", v);
    }
    let _ = b.check();
}

/// One step of the reference run: process `p` (0..4) begins or ends an op.
#[derive(Debug, Clone)]
struct RefStep {
    p: u64,
    /// 0..5: send, poll, assign, crash; a send may fail with timeout (`info`).
    what: u8,
    key: u8,
    /// How many messages a poll returns per key at most (0: all).
    limit: u8,
    /// A send that ends `info`: whether it took effect.
    info: Option<bool>,
}

fn ref_step() -> impl Strategy<Value = RefStep> {
    (
        0u64..4,
        0u8..5,
        0u8..3,
        0u8..4,
        prop::option::weighted(0.1, any::<bool>()),
    )
        .prop_map(|(p, what, key, limit, info)| RefStep {
            p,
            what,
            key,
            limit,
            info,
        })
}

/// A kafka node done right: one lock around a map of logs and committed offsets, with
/// Maelstrom's client semantics; ops of several processes overlap, each taking effect at one
/// instant between its invocation and completion. Ends with a fresh process polling everything
/// from offset 0, as the final phase does.
fn reference_history(steps: &[RefStep]) -> H {
    let mut b = B::new();
    let mut logs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut committed: BTreeMap<String, i64> = BTreeMap::new();
    let mut next_msg = 0i64;
    // Per worker: its process, positions and the op in flight.
    let mut procs: Vec<u64> = (0..4).collect();
    let mut positions: Vec<BTreeMap<String, i64>> = vec![BTreeMap::new(); 4];
    let mut inflight: Vec<Option<(&'static str, Value)>> = vec![None; 4];
    let take = |log: &[i64], from: i64, limit: u8| -> Vec<Value> {
        let from = usize::try_from(from).unwrap_or(0).min(log.len());
        let end = if limit == 0 {
            log.len()
        } else {
            (from + limit as usize).min(log.len())
        };
        (from..end).map(|o| json!([o, log[o]])).collect()
    };
    for s in steps {
        let w = s.p as usize;
        let p = procs[w];
        let key = s.key.to_string();
        match inflight[w].take() {
            None => {
                let (f, v) = match s.what {
                    0 | 1 => {
                        next_msg += 1;
                        ("send", json!([["send", key, next_msg]]))
                    }
                    2 => ("poll", json!([["poll"]])),
                    3 => ("assign", json!([key])),
                    _ => ("crash", Value::Null),
                };
                b.invoke(p, f, v.clone());
                inflight[w] = Some((f, v));
            }
            Some((f, v)) => match f {
                "send" => {
                    let msg = v[0][2].as_i64().unwrap_or(0);
                    let k = v[0][1].as_str().unwrap_or("0").to_string();
                    match s.info {
                        Some(applied) => {
                            if applied {
                                logs.entry(k).or_default().push(msg);
                            }
                            b.done(p, Info, "send", v);
                            procs[w] += 4;
                            positions[w].clear();
                        }
                        None => {
                            let log = logs.entry(k.clone()).or_default();
                            log.push(msg);
                            let offset = log.len() as i64 - 1;
                            b.done(p, Ok, "send", json!([["send", k, [offset, msg]]]));
                        }
                    }
                }
                "poll" => {
                    let mut msgs = Map::new();
                    for (k, pos) in positions[w].iter_mut() {
                        let got = take(logs.get(k).map_or(&[][..], Vec::as_slice), *pos, s.limit);
                        if let Some(last) = got.last().and_then(|p| p[0].as_i64()) {
                            *pos = last + 1;
                            let c = committed.entry(k.clone()).or_insert(last);
                            *c = (*c).max(last);
                        }
                        if !got.is_empty() {
                            msgs.insert(k.clone(), Value::Array(got));
                        }
                    }
                    b.done(p, Ok, "poll", json!([["poll", msgs]]));
                }
                "assign" => {
                    let keys: Vec<String> = v
                        .as_array()
                        .map(|ks| {
                            ks.iter()
                                .filter_map(|k| k.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    let old = std::mem::take(&mut positions[w]);
                    for k in keys {
                        let pos = old
                            .get(&k)
                            .copied()
                            .or_else(|| committed.get(&k).copied())
                            .unwrap_or(0);
                        positions[w].insert(k, pos);
                    }
                    b.done(p, Ok, "assign", v);
                }
                _ => {
                    b.done(p, Info, "crash", v);
                    procs[w] += 4;
                    positions[w].clear();
                }
            },
        }
    }
    // In-flight ops end `info` (the client timed out), their effect undecided: none.
    for (w, op) in inflight.iter_mut().enumerate() {
        if let Some((f, v)) = op.take() {
            b.done(procs[w], Info, f, v);
        }
    }
    // The final phase: a fresh process assigns every key at offset 0 and polls it all.
    let keys: Vec<&String> = logs.keys().collect();
    b.assign(1000, json!(keys));
    let all: Map<String, Value> = logs
        .iter()
        .map(|(k, log)| (k.clone(), Value::Array(take(log, 0, 0))))
        .collect();
    b.poll(1000, Value::Object(all));
    b.h
}

/// Whether the reference's history has a dependency: an `ok` poll that returned a message (a
/// write-read edge from its sender, `ok` or an `info` send that took effect), or an `ok` send or
/// poll that completed before another send or poll (`ok` or `info`) was invoked (realtime).
fn has_dependency(ops: &[Op]) -> bool {
    let polled_something = ops
        .iter()
        .filter(|o| o.kind == OpType::Ok && o.f == "poll")
        .any(|o| {
            let v = o.value.to_json();
            v.pointer("/0/1")
                .and_then(Value::as_object)
                .is_some_and(|m| {
                    m.values()
                        .any(|msgs| msgs.as_array().is_some_and(|a| !a.is_empty()))
                })
        });
    polled_something || has_realtime_pair(ops)
}

/// Whether some `ok` send or poll completed before another send or poll (`ok` or `info`) was
/// invoked.
fn has_realtime_pair(ops: &[Op]) -> bool {
    let mut invoked: HashMap<u64, u64> = HashMap::new();
    let mut spans: Vec<(u64, Option<u64>)> = Vec::new();
    for o in ops.iter().filter(|o| o.f == "send" || o.f == "poll") {
        let Process::Client(p) = o.process else {
            continue;
        };
        match o.kind {
            OpType::Invoke => {
                invoked.insert(p, o.time);
            }
            OpType::Ok => spans.push((invoked.remove(&p).unwrap_or(o.time), Some(o.time))),
            OpType::Info => spans.push((invoked.remove(&p).unwrap_or(o.time), None)),
            OpType::Fail => {}
        }
    }
    spans
        .iter()
        .any(|&(_, done)| done.is_some_and(|d| spans.iter().any(|&(i, _)| d < i)))
}

/// The reference's degenerate histories, both ways: nothing but the final poll (no dependency:
/// empty-transaction-graph), and one `info` send that took effect, which the final poll returns
/// (a write-read edge from an op with no realtime edge out: valid).
#[test]
fn reference_edge_cases_of_the_empty_graph() {
    let r = check(&reference_history(&[]).ops);
    assert_eq!(r.error_types, vec!["empty-transaction-graph".to_string()]);
    assert_eq!(r.valid, Validity::False);
    let step = |info| RefStep {
        p: 0,
        what: 0,
        key: 0,
        limit: 0,
        info,
    };
    // The first step invokes a send, the second completes it.
    let h = reference_history(&[step(None), step(Some(true))]);
    assert!(has_dependency(&h.ops) && !has_realtime_pair(&h.ops));
    let r = check(&h.ops);
    assert_eq!(r.valid, Validity::True, "{:?}", r.error_types);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    /// Histories of the single-threaded reference are always valid, with no error type at all
    /// (not even an allowed one), unless nothing depends on anything (no poll returned a message,
    /// no send or poll completed before another began): the dependency graph is then empty,
    /// which Elle reports and Jepsen does not allow.
    #[test]
    fn a_reference_log_is_always_valid(steps in proptest::collection::vec(ref_step(), 0..200)) {
        let h = reference_history(&steps);
        let r = check(&h.ops);
        if has_dependency(&h.ops) {
            prop_assert_eq!(r.valid, Validity::True, "{}", serde_json::to_string(&r).unwrap_or_default());
            prop_assert!(r.error_types.is_empty(), "{:?}", r.error_types);
        } else {
            prop_assert_eq!(r.valid, Validity::False);
            prop_assert_eq!(&r.error_types, &["empty-transaction-graph".to_string()]);
        }
    }
}

//! Runs the checkers a workload needs over a finished test and composes Maelstrom's results map
//! (<https://github.com/jepsen-io/maelstrom/blob/main/doc/results.md>): `exceptions`, `stats`,
//! `availability`, `net` and `workload`, with the worst validity on top, plus `perf` and
//! `timeline` with the shape Maelstrom gives them (their graphs are in `report.html`).

use crate::checker::linearizable::{self, Budget};
use crate::checker::{
    self, availability, counter, echo, exceptions, net, set_full, stats, unique_ids,
    AvailabilityTarget,
};
use std::time::{Duration, Instant};

/// How long the lin-kv linearizability search may run over the whole history before the
/// undecided keys are reported `unknown` (Knossos has no such limit and may run for hours).
pub const LIN_KV_CHECK_BUDGET: Duration = Duration::from_secs(120);
use crate::history::{JournalEvent, Op};
use crate::workload::ClientWorkload;
use serde_json::Value;

/// The results map for one test.
pub fn analyse(
    workload: ClientWorkload,
    history: &[Op],
    journal: &[JournalEvent],
    target: Option<AvailabilityTarget>,
) -> Value {
    let op_count = checker::op_count(history);
    let workload_part = match workload {
        ClientWorkload::Echo => checker::part("workload", &echo::check(history)),
        ClientWorkload::UniqueIds => checker::part("workload", &unique_ids::check(history)),
        ClientWorkload::Broadcast | ClientWorkload::GSet => {
            checker::part("workload", &set_full::check(history))
        }
        ClientWorkload::GCounter | ClientWorkload::PnCounter => {
            checker::part("workload", &counter::check(history))
        }
        ClientWorkload::LinKv => {
            let budget = Budget::until(Instant::now() + LIN_KV_CHECK_BUDGET);
            checker::part("workload", &linearizable::check(history, budget))
        }
    };
    // Maelstrom's `perf` (latency and rate graphs) and `timeline` (timeline.html) checkers only
    // draw; they are always valid. Scripts read these keys, so they are here with that shape;
    // the drawings are report.html's.
    let perf = serde_json::json!({
        "latency-graph": {"valid?": true},
        "rate-graph": {"valid?": true},
        "valid?": true,
    });
    checker::compose(vec![
        ("perf", perf, checker::Validity::True),
        (
            "timeline",
            serde_json::json!({"valid?": true}),
            checker::Validity::True,
        ),
        checker::part("exceptions", &exceptions::check(history)),
        checker::part("stats", &stats::check(history)),
        checker::part("availability", &availability::check(history, target)),
        checker::part("net", &net::check(journal, op_count)),
        workload_part,
    ])
}

/// How long a restarted node took to catch up (issue "Durability and faults"): from the completion of
/// the `start` that restarted it to the completion of the first `ok` read served by it that contains
/// every value acknowledged before the `kill`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Recovery {
    pub node: String,
    #[serde(rename = "killed-at-ms")]
    pub killed_at_ms: u64,
    #[serde(rename = "restarted-at-ms")]
    pub restarted_at_ms: u64,
    /// Values acknowledged (to any client) before the kill, which the node must serve again.
    #[serde(rename = "acked-before-kill")]
    pub acked_before_kill: usize,
    /// `None`: no read served by the node after its restart contained them all.
    #[serde(rename = "recovered-after-ms")]
    pub recovered_after_ms: Option<u64>,
}

/// Nodes named by a nemesis completion value: `{node: word}` maps (ours) or `[word, [nodes]]`.
fn nodes_in(value: &Value, word: &str) -> Vec<String> {
    match value {
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| v.as_str() == Some(word))
            .map(|(k, _)| k.clone())
            .collect(),
        Value::Array(a) if a.first().and_then(Value::as_str) == Some(word) => a
            .get(1)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Recovery times of every killed-and-restarted node of a broadcast history. Client process `p`
/// talks to node `nodes[(p mod concurrency) mod n]`.
pub fn recoveries(history: &[Op], nodes: &[String], concurrency: usize) -> Vec<Recovery> {
    use crate::history::{OpType, Process};
    use std::collections::{HashMap, HashSet};
    let ms = |t: u64| t / 1_000_000;
    let mut acked: HashSet<String> = HashSet::new();
    let mut killed: HashMap<String, (u64, HashSet<String>)> = HashMap::new();
    let mut waiting: HashMap<String, (Recovery, HashSet<String>)> = HashMap::new();
    let mut done = Vec::new();
    if nodes.is_empty() || concurrency == 0 {
        return done;
    }
    for op in history {
        match (op.process, op.kind) {
            (Process::Nemesis, _) if op.f == "kill" => {
                for n in nodes_in(&op.value, "killed") {
                    killed.entry(n).or_insert_with(|| (op.time, acked.clone()));
                }
            }
            (Process::Nemesis, _) if op.f == "start" => {
                for n in nodes_in(&op.value, "started") {
                    if let Some((at, need)) = killed.remove(&n) {
                        if let Some((r, _)) = waiting.remove(&n) {
                            done.push(r); // killed again before it recovered
                        }
                        let r = Recovery {
                            node: n.clone(),
                            killed_at_ms: ms(at),
                            restarted_at_ms: ms(op.time),
                            acked_before_kill: need.len(),
                            recovered_after_ms: None,
                        };
                        waiting.insert(n, (r, need));
                    }
                }
            }
            (Process::Client(_), OpType::Ok) if op.f == "broadcast" => {
                acked.insert(op.value.to_string());
            }
            (Process::Client(p), OpType::Ok) if op.f == "read" => {
                let node = &nodes[(p as usize % concurrency) % nodes.len()];
                if let Some((_, need)) = waiting.get(node) {
                    let have: HashSet<String> = op
                        .value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(Value::to_string)
                        .collect();
                    if need.iter().all(|v| have.contains(v)) {
                        let (mut r, _) = waiting.remove(node).expect("present");
                        r.recovered_after_ms = Some(ms(op.time).saturating_sub(r.restarted_at_ms));
                        done.push(r);
                    }
                }
            }
            _ => {}
        }
    }
    done.extend(waiting.into_values().map(|(r, _)| r));
    done.sort_by_key(|r| (r.restarted_at_ms, r.node.clone()));
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process};
    use serde_json::json;

    fn op(index: usize, ms: u64, kind: OpType, process: Process, f: &str, value: Value) -> Op {
        Op {
            index,
            time: ms * 1_000_000,
            kind,
            process,
            f: f.into(),
            value,
            error: None,
            exception: None,
            final_: false,
        }
    }

    #[test]
    fn recovery_is_measured_from_restart_to_the_first_complete_read() {
        let nodes = vec!["n0".to_string(), "n1".to_string()];
        let c = |p| Process::Client(p);
        let h = vec![
            op(0, 10, OpType::Ok, c(0), "broadcast", json!(1)),
            op(1, 20, OpType::Ok, c(1), "broadcast", json!(2)),
            op(
                2,
                30,
                OpType::Info,
                Process::Nemesis,
                "kill",
                json!({"n1": "killed"}),
            ),
            op(3, 40, OpType::Ok, c(0), "broadcast", json!(3)), // after the kill: not required
            op(
                4,
                100,
                OpType::Info,
                Process::Nemesis,
                "start",
                json!({"n0": "started", "n1": "started"}),
            ),
            op(5, 150, OpType::Ok, c(1), "read", json!([2])), // n1, incomplete
            op(6, 160, OpType::Ok, c(0), "read", json!([1, 2])), // n0: not the restarted node
            op(7, 400, OpType::Ok, c(3), "read", json!([2, 1])), // process 3 → thread 1 → n1
        ];
        let r = recoveries(&h, &nodes, 2);
        assert_eq!(r.len(), 1, "n0 was never killed");
        assert_eq!(
            (
                r[0].node.as_str(),
                r[0].acked_before_kill,
                r[0].recovered_after_ms
            ),
            ("n1", 2, Some(300))
        );
    }

    #[test]
    fn unrecovered_nodes_are_reported() {
        let nodes = vec!["n0".to_string()];
        let h = vec![
            op(0, 10, OpType::Ok, Process::Client(0), "broadcast", json!(1)),
            op(
                1,
                30,
                OpType::Info,
                Process::Nemesis,
                "kill",
                json!(["killed", ["n0"]]),
            ),
            op(
                2,
                50,
                OpType::Info,
                Process::Nemesis,
                "start",
                json!(["started", ["n0"]]),
            ),
            op(3, 90, OpType::Ok, Process::Client(0), "read", json!([])),
        ];
        let r = recoveries(&h, &nodes, 1);
        assert_eq!(r[0].recovered_after_ms, None);
        assert!(recoveries(&h, &[], 1).is_empty());
    }

    /// An invoke and its completion by client `p`.
    fn pair(h: &mut Vec<Op>, p: u64, kind: OpType, f: &str, v: Value, final_: bool) {
        let invoked = if f == "add" { v.clone() } else { Value::Null };
        for (k, value) in [(OpType::Invoke, invoked), (kind, v)] {
            let mut o = op(h.len(), h.len() as u64, k, Process::Client(p), f, value);
            o.final_ = final_;
            h.push(o);
        }
    }

    #[test]
    fn a_g_set_that_loses_an_element_is_invalid() {
        let history = |last_read: Value| {
            let mut h = Vec::new();
            pair(&mut h, 0, OpType::Ok, "add", json!(0), false);
            pair(&mut h, 1, OpType::Ok, "add", json!(1), false);
            pair(&mut h, 0, OpType::Ok, "read", json!([0, 1]), false);
            // Final reads are not marked `final?` in g-set; set-full needs no mark.
            pair(&mut h, 1, OpType::Ok, "read", last_read, false);
            h
        };
        let good = analyse(ClientWorkload::GSet, &history(json!([1, 0])), &[], None);
        assert_eq!(good["workload"]["valid?"], json!(true), "{good}");
        assert_eq!(good["workload"]["stable-count"], json!(2));
        let bad = analyse(ClientWorkload::GSet, &history(json!([1])), &[], None);
        assert_eq!(bad["valid?"], json!(false));
        assert_eq!(bad["workload"]["lost"], json!([0]));
    }

    #[test]
    fn counters_are_judged_by_the_acceptable_set() {
        for w in [ClientWorkload::GCounter, ClientWorkload::PnCounter] {
            let history = |final_value: i64| {
                let mut h = Vec::new();
                pair(&mut h, 0, OpType::Ok, "add", json!(2), false);
                pair(&mut h, 1, OpType::Info, "add", json!(3), false);
                pair(&mut h, 0, OpType::Ok, "read", json!(final_value), true);
                h
            };
            let good = analyse(w, &history(5), &[], None);
            assert_eq!(good["valid?"], json!(true), "{good}");
            assert_eq!(good["workload"]["acceptable"], json!([[2, 2], [5, 5]]));
            assert_eq!(good["workload"]["final-reads"], json!([5]));
            for lost_or_doubled in [0, 8] {
                let bad = analyse(w, &history(lost_or_doubled), &[], None);
                assert_eq!(bad["workload"]["valid?"], json!(false), "{bad}");
                assert_eq!(
                    bad["workload"]["errors"][0]["value"],
                    json!(lost_or_doubled)
                );
            }
        }
    }
}

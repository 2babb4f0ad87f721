//! Runs the checkers a workload needs over a finished test and composes Maelstrom's results map
//! (<https://github.com/jepsen-io/maelstrom/blob/main/doc/results.md>): `exceptions`, `stats`,
//! `availability`, `net` and `workload`, with the worst validity on top, plus `perf` and
//! `timeline` with the shape Maelstrom gives them (their graphs are in `report.html`).

use crate::checker::linearizable::{self, Budget};
use crate::checker::{
    self, availability, counter, echo, elle, exceptions, kafka, net, set_full, stats, unique_ids,
    AvailabilityTarget,
};
use std::time::{Duration, Instant};

/// How long the lin-kv linearizability search may run over the whole history before the
/// undecided keys are reported `unknown` (Knossos has no such limit and may run for hours).
pub const LIN_KV_CHECK_BUDGET: Duration = Duration::from_secs(120);
use crate::history::{JournalEvent, Op};

mod recovery;
use crate::workload::{ClientWorkload, TxnKind, TxnOpts};
pub use recovery::{no_live_node_ms, recoveries, Recovery};
use serde_json::Value;

/// The results map for one test.
pub fn analyse(
    workload: ClientWorkload,
    history: &[Op],
    journal: &[JournalEvent],
    target: Option<AvailabilityTarget>,
    txn: &TxnOpts,
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
        ClientWorkload::Kafka => checker::part("workload", &kafka::check(history)),
        ClientWorkload::Txn(TxnKind::RwRegister) => checker::part(
            "workload",
            &elle::check_rw_register(history, txn.consistency_models),
        ),
        ClientWorkload::Txn(TxnKind::ListAppend) => checker::part(
            "workload",
            &elle::check_list_append(history, txn.consistency_models),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpType, Process};
    use serde_json::json;

    fn op(index: usize, ms: u64, kind: OpType, process: Process, f: &str, value: Value) -> Op {
        Op::new(index, ms * 1_000_000, kind, process, f, value)
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
        let good = analyse(
            ClientWorkload::GSet,
            &history(json!([1, 0])),
            &[],
            None,
            &TxnOpts::default(),
        );
        assert_eq!(good["workload"]["valid?"], json!(true), "{good}");
        assert_eq!(good["workload"]["stable-count"], json!(2));
        let bad = analyse(
            ClientWorkload::GSet,
            &history(json!([1])),
            &[],
            None,
            &TxnOpts::default(),
        );
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
            let good = analyse(w, &history(5), &[], None, &TxnOpts::default());
            assert_eq!(good["valid?"], json!(true), "{good}");
            assert_eq!(good["workload"]["acceptable"], json!([[2, 2], [5, 5]]));
            assert_eq!(good["workload"]["final-reads"], json!([5]));
            for lost_or_doubled in [0, 8] {
                let bad = analyse(w, &history(lost_or_doubled), &[], None, &TxnOpts::default());
                assert_eq!(bad["workload"]["valid?"], json!(false), "{bad}");
                assert_eq!(
                    bad["workload"]["errors"][0]["value"],
                    json!(lost_or_doubled)
                );
            }
        }
    }
}

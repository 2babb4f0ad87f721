//! Runs the checkers a workload needs over a finished test and composes Maelstrom's results map
//! (spec §7): `exceptions`, `stats`, `availability`, `net` and `workload`, with the worst
//! validity on top. `perf` and `timeline` (graphs) are not produced; see the runner's README.

use crate::checker::{
    self, availability, echo, exceptions, net, set_full, stats, unique_ids, AvailabilityTarget,
};
use crate::history::{JournalEvent, Op};
use crate::workload::Workload;
use serde_json::Value;

/// The results map for one test.
pub fn analyse(
    workload: Workload,
    history: &[Op],
    journal: &[JournalEvent],
    target: Option<AvailabilityTarget>,
) -> Value {
    let op_count = checker::op_count(history);
    let workload_part = match workload {
        Workload::Echo => checker::part("workload", &echo::check(history)),
        Workload::UniqueIds => checker::part("workload", &unique_ids::check(history)),
        Workload::Broadcast => checker::part("workload", &set_full::check(history)),
    };
    checker::compose(vec![
        checker::part("exceptions", &exceptions::check(history)),
        checker::part("stats", &stats::check(history)),
        checker::part("availability", &availability::check(history, target)),
        checker::part("net", &net::check(journal, op_count)),
        workload_part,
    ])
}

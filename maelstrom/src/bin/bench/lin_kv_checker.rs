//! The linearizability checker's speed (`bench --lin-kv-checker`): a 60 s `--rate 100` lin-kv
//! history at 5 nodes (`--concurrency 2n`) is made in the deterministic simulator (murmur's Raft
//! `lin-kv` node against Maelstrom's lin-kv client: reads, writes and cas over keys retired after
//! 20 processes), with partitions so that some ops end `info` and the search has concurrency to
//! explore; then [`maelstrom::checker::linearizable::check`] is timed on it `--repeats` times with
//! no budget. Prints the history's size and the median, minimum and maximum check time; the
//! issue's target is well under a second.
//!
//! The simulator rather than a real run, for the reason the kafka checker's benchmark gives: a
//! seed makes it the same history on every machine, so only the checker's time varies.

use maelstrom::checker::linearizable::{self, Budget};
use maelstrom::history::OpType;
use maelstrom::nemesis::Fault;
use maelstrom::sim::{self, SimConfig};
use murmur::workload::lin_kv::{LinKv, LinKvConfig};
use std::time::Instant;

pub fn run(seed: u64, secs: u64, rate: f64, repeats: usize) {
    let cfg = SimConfig {
        scenario: "lin-kv-checker".into(),
        rate,
        time_limit_ms: secs * 1000,
        faults: [Fault::Partition].into_iter().collect(),
        ..SimConfig::lin_kv(seed, 5)
    };
    let made = Instant::now();
    let out = sim::run::<LinKv>(&cfg, &LinKvConfig::default());
    let made = made.elapsed();
    let count = |kind: OpType| {
        out.history
            .iter()
            .filter(|o| o.is_client() && o.kind == kind)
            .count()
    };
    println!(
        "history: {} entries ({} ok, {} fail, {} info), {secs} s at --rate {rate}, 5 nodes, \
         partitions, seed {seed}, made in {:.1} s",
        out.history.len(),
        count(OpType::Ok),
        count(OpType::Fail),
        count(OpType::Info),
        made.as_secs_f64()
    );
    let mut verdict = String::new();
    let times = super::time_repeats(repeats, || {
        let r = linearizable::check(&out.history, Budget::UNLIMITED);
        verdict = format!(
            "valid? {:?}, {} keys, {} not linearizable",
            r.valid,
            r.results.len(),
            r.failures.len()
        );
    });
    println!("linearizability checker: {times}; {verdict}");
}

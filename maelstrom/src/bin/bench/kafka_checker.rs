//! The kafka checker's speed (`bench --kafka-checker`): a 30 s `--rate 1000` kafka history is made
//! in the deterministic simulator (murmur's kafka node, local design, 2 nodes as challenge 5b,
//! Maelstrom's client with crashes, assigns and the final catch-up polls), then
//! [`maelstrom::checker::kafka::check`] is timed on it `--repeats` times. Prints the history's
//! size and the median, minimum and maximum check time; the target is under 2 s.
//!
//! The simulator rather than a real run: the history is the same shape, and a seed makes it the
//! same history on every machine, so only the checker's time varies. Ten workers (not 2n) so that
//! the offered 1000 ops/s are completed despite each send waiting for its flush (1–2 ms here).

use maelstrom::checker::kafka;
use maelstrom::history::OpType;
use maelstrom::sim::{self, SimConfig};
use maelstrom::workload::ClientWorkload;
use murmur::workload::kafka::{Local, LocalConfig};
use std::time::Instant;

pub fn run(seed: u64, secs: u64, rate: f64, repeats: usize) {
    let cfg = SimConfig {
        scenario: "kafka-checker".into(),
        client: ClientWorkload::Kafka,
        concurrency: 10,
        rate,
        time_limit_ms: secs * 1000,
        flush_ms: (1, 2),
        idle_check_ms: 1_000,
        ..SimConfig::broadcast(seed, 2)
    };
    let made = Instant::now();
    let out = sim::run::<Local>(&cfg, &LocalConfig::default());
    let made = made.elapsed();
    let count = |f: &str, kind: OpType| {
        out.history
            .iter()
            .filter(|o| o.is_client() && o.f == f && o.kind == kind)
            .count()
    };
    let polled: usize = out
        .history
        .iter()
        .filter(|o| o.is_client() && o.f == "poll" && o.kind == OpType::Ok)
        .filter_map(|o| {
            o.value
                .as_json()
                .map(|v| v.to_string().matches("],[").count() + 1)
        })
        .sum();
    println!(
        "history: {} ops ({} sends ok, {} polls ok, ~{polled} polled pairs, {} crashes), \
         {} s at --rate {rate}, seed {seed}, made in {:.1} s",
        out.history.len(),
        count("send", OpType::Ok),
        count("poll", OpType::Ok),
        count("crash", OpType::Info),
        secs,
        made.as_secs_f64()
    );
    let mut verdict = String::new();
    let times = super::time_repeats(repeats, || {
        let r = kafka::check(&out.history);
        verdict = format!("valid? {:?}, error types {:?}", r.valid, r.error_types);
    });
    println!("kafka checker: {times}; {verdict}");
}

//! murmur's Raft `lin-kv` node (`murmur::workload::lin_kv`) in the deterministic simulator
//! ([`maelstrom::sim`]): Maelstrom's lin-kv client (`2n` workers, one key per group, 1 s client
//! timeout) against 5 nodes, with `partition` and with `kill,pause,partition`, judged by the
//! linearizability checker (every key decided within a fixed step budget, so a verdict does not
//! depend on the machine).
//!
//! - `raft_*_ci`: 40 seeds of each scenario, in every `cargo test`.
//! - `raft_thousand_seeds` (`#[ignore]`d): 1,000 seeds of each scenario (22 s in release on a
//!   loaded 2-core machine: `cargo test --release -p murmur-maelstrom --test sim_lin_kv --
//!   --ignored`);
//!   `SIM_SEEDS=<n>` changes the count.
//! - Planted bugs that must be caught: reads answered from any node's local state, and commits
//!   without a majority. (A node that does not persist its term, vote and log is caught by the
//!   handler test `a_restarted_majority_keeps_what_it_acknowledged` in `murmur`; 40 seeds of
//!   `kill-pause-partition` did not catch it, since lost memory only shows when the killed
//!   nodes were the only ones holding a write and a stale node is then elected.)
//!
//! Replay one seed: `SIM_SEED=<seed> SIM_SCENARIO=<scenario> cargo test -p murmur-maelstrom
//! --test sim_lin_kv replay -- --nocapture`.

use maelstrom::nemesis::{Fault, FaultSet};
use maelstrom::net::Latency;
use maelstrom::sim::{self, SimConfig, SimOutcome};
use murmur::workload::lin_kv::{LinKv, LinKvConfig, Mutant};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const REPLAY: &str =
    "SIM_SEED={seed} SIM_SCENARIO={scenario} cargo test -p murmur-maelstrom --test sim_lin_kv replay -- --nocapture";

/// The simulation of `seed` in `scenario` (`partition` or `kill-pause-partition`): 5 nodes,
/// latency, rate and nemesis interval drawn from a stream of their own.
fn config(seed: u64, scenario: &str) -> SimConfig {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x11_4e_4b_76);
    let faults: FaultSet = match scenario {
        "partition" => [Fault::Partition].into_iter().collect(),
        _ => [Fault::Partition, Fault::Kill, Fault::Pause]
            .into_iter()
            .collect(),
    };
    let base = SimConfig::lin_kv(seed, 5);
    SimConfig {
        scenario: scenario.to_string(),
        latency: Latency::constant([0, 1, 5, 20][r.random_range(0..4)]),
        rate: r.random_range(20.0..60.0),
        time_limit_ms: r.random_range(4_000..=8_000),
        nemesis_interval_ms: r.random_range(500..=2_000),
        faults,
        recovery_ms: 2_000,
        replay_command: REPLAY.into(),
        ..base
    }
}

fn simulate(seed: u64, scenario: &str, node: &LinKvConfig) -> SimOutcome {
    sim::run::<LinKv>(&config(seed, scenario), node)
}

fn seeds(default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..count).collect()
}

/// Runs `count` seeds of `scenario`; every one must pass. Returns (ok ops, faults).
fn sweep(scenario: &str, count: u64) -> (u64, u64) {
    let node = LinKvConfig::default();
    let (mut ok, mut faults, mut runs) = (0, 0, 0);
    for seed in seeds(count) {
        let out = simulate(seed, scenario, &node);
        if let Some(report) = out.failure_report() {
            panic!("{report}");
        }
        ok += out.stats.acked;
        faults += out.stats.faults();
        runs += 1;
        if seed % 50 == 0 {
            let again = simulate(seed, scenario, &node);
            assert_eq!(
                out.fingerprint(),
                again.fingerprint(),
                "seed {seed}: not deterministic"
            );
        }
    }
    eprintln!("{scenario}: {runs} seeds, {ok} ok ops, {faults} faults, all linearizable");
    (ok, faults)
}

#[test]
fn raft_partition_ci() {
    let (ok, faults) = sweep("partition", 40);
    assert!(ok > 1_000 && faults > 40, "{ok} ok ops, {faults} faults");
}

#[test]
fn raft_kill_pause_partition_ci() {
    let (ok, faults) = sweep("kill-pause-partition", 40);
    assert!(ok > 1_000 && faults > 40, "{ok} ok ops, {faults} faults");
}

#[test]
#[ignore = "1,000 seeds per scenario: run with --release --ignored"]
fn raft_thousand_seeds() {
    for scenario in ["partition", "kill-pause-partition"] {
        sweep(scenario, 1_000);
    }
}

/// A planted bug must make some seeds not linearizable. Returns (caught, runs).
fn catches(node: LinKvConfig, scenario: &str, count: u64) -> (u64, u64) {
    let (mut caught, mut runs) = (0, 0);
    for seed in seeds(count) {
        let out = simulate(seed, scenario, &node);
        runs += 1;
        if out
            .violations
            .iter()
            .any(|v| v.kind() == "not-linearizable")
        {
            caught += 1;
        }
    }
    eprintln!("{:?}: caught in {caught} of {runs} seeds", node.mutant);
    (caught, runs)
}

#[test]
fn local_reads_are_caught() {
    let node = LinKvConfig {
        mutant: Some(Mutant::LocalReads),
        ..LinKvConfig::default()
    };
    let (caught, runs) = catches(node, "partition", 20);
    assert!(
        runs == 1 || caught * 2 > runs,
        "caught in {caught} of {runs}"
    );
}

#[test]
fn commits_without_a_majority_are_caught() {
    let node = LinKvConfig {
        mutant: Some(Mutant::NoQuorumCommit),
        ..LinKvConfig::default()
    };
    // A lone leader's premature commit shows only when a partition cuts it off while it
    // accepts writes and the majority's new leader serves the key: about a third of the seeds.
    let (caught, runs) = catches(node, "partition", 20);
    assert!(runs == 1 || caught > 0, "caught in {caught} of {runs}");
}

/// One seed with the trace: `SIM_SEED=<seed> SIM_SCENARIO=<scenario>`.
#[test]
fn replay() {
    let seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let scenario = std::env::var("SIM_SCENARIO").unwrap_or_else(|_| "partition".into());
    let mut cfg = config(seed, &scenario);
    cfg.trace = sim::TraceLevel::Events;
    let out = sim::run::<LinKv>(&cfg, &LinKvConfig::default());
    eprintln!("{}\n{}", cfg.describe(), out.stats);
    if let Some(report) = out.failure_report() {
        for line in &out.trace {
            eprintln!("{line}");
        }
        panic!("{report}");
    }
}

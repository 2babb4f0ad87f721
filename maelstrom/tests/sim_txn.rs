//! murmur's `txn-rw-register` node (`murmur::workload::txn`) in the deterministic simulator,
//! judged by the runner's txn client and Elle-style checker (the simulator's `txn` violation):
//!
//! - read-committed with partitions (challenge 6c's models and faults), 1 to 5 nodes, over 100
//!   seeds, with every op answered (total availability), in both designs (batched, per-txn);
//! - read-committed with kills, pauses and partitions (torn flushes and a small compaction
//!   threshold, so recovery runs over snapshots too), both designs, 60 seeds each;
//! - a mutant that splits each transaction into one transaction per micro-op and has peers apply
//!   one update per message (so a transaction's intermediate writes are visible at other nodes
//!   for a round trip) must be caught reading them (G1b), so the sweep can fail.
//!
//! Replay one seed: `SIM_SEED=<seed> cargo test -p murmur-maelstrom --test sim_txn -- --nocapture`.

use maelstrom::checker::elle::Models;
use maelstrom::nemesis::{Fault, FaultSet};
use maelstrom::net::Latency;
use maelstrom::sim::{self, SimConfig, SimOutcome};
use maelstrom::workload::{ClientWorkload, TxnKind, TxnOpts};
use murmur::node::{Ctx, InitInfo, Message, Millis, Workload};
use murmur::workload::txn::{Design, Msg, TxnConfig, TxnRwRegister};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn config(seed: u64) -> SimConfig {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x7a_7a);
    let nodes = r.random_range(1..=5);
    SimConfig {
        scenario: "txn-rw-register".into(),
        client: ClientWorkload::Txn(TxnKind::RwRegister),
        concurrency: 2 * nodes,
        txn: TxnOpts {
            consistency_models: Models::parse("read-committed").unwrap(),
            ..TxnOpts::default()
        },
        latency: Latency::constant([0, 1, 5, 20][r.random_range(0..4)]),
        rate: r.random_range(50.0..300.0),
        time_limit_ms: r.random_range(2_000..=4_000),
        nemesis_interval_ms: r.random_range(300..=1_500),
        faults: [Fault::Partition].into_iter().collect::<FaultSet>(),
        recovery_ms: 1_000,
        idle_check_ms: 1_000,
        replay_command:
            "SIM_SEED={seed} cargo test -p murmur-maelstrom --test sim_txn -- --nocapture".into(),
        ..SimConfig::broadcast(seed, nodes)
    }
}

fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (0..count).collect(),
    }
}

/// (ok, not ok) client txn completions.
fn outcomes(out: &SimOutcome) -> (usize, usize) {
    let done = out
        .history
        .iter()
        .filter(|o| o.is_client() && o.f == "txn" && o.kind != maelstrom::history::OpType::Invoke);
    let (mut ok, mut other) = (0, 0);
    for o in done {
        if o.kind == maelstrom::history::OpType::Ok {
            ok += 1;
        } else {
            other += 1;
        }
    }
    (ok, other)
}

fn design(design: Design) -> TxnConfig {
    TxnConfig {
        design,
        ..TxnConfig::default()
    }
}

#[test]
fn the_txn_node_is_read_committed_and_totally_available_under_partitions() {
    for d in [Design::Batched, Design::PerTxn] {
        let (mut ok, mut partitions) = (0, 0);
        for seed in seeds(100) {
            let out = sim::run::<TxnRwRegister>(&config(seed), &design(d));
            if let Some(report) = out.failure_report() {
                panic!("{d:?}: {report}");
            }
            let (o, not_ok) = outcomes(&out);
            assert_eq!(
                not_ok, 0,
                "{d:?}, seed {seed}: every transaction is answered"
            );
            ok += o;
            partitions += out.stats.partitions;
        }
        if seeds(2).len() > 1 {
            assert!(
                ok > 10_000 && partitions > 50,
                "{d:?}: {ok} txns, {partitions} partitions"
            );
        }
    }
}

/// Kills (with torn flushes), pauses and partitions; a small compaction threshold, so that
/// restarts recover from snapshots too. Kill runs take 2 to 5 nodes, 8 workers and a 1 s client
/// timeout (Maelstrom's is 5 s), as the kafka sweep does: a worker whose request reached a dead
/// node waits out its timeout, and with few workers or one node a run can end with no
/// transaction answered, which the checker rejects as an empty history.
fn kill_config(seed: u64) -> SimConfig {
    let mut cfg = config(seed);
    cfg.nodes = cfg.nodes.max(2);
    cfg.concurrency = 8;
    cfg.faults = [Fault::Partition, Fault::Kill, Fault::Pause]
        .into_iter()
        .collect();
    cfg.torn_flushes = true;
    cfg.client_timeout_ms = 1_000;
    cfg.shell.compact_min_bytes = Some(4096);
    cfg.replay_command = "SIM_SEED={seed} cargo test -p murmur-maelstrom --test sim_txn \
                          kills -- --nocapture"
        .into();
    cfg
}

#[test]
fn the_durable_node_stays_read_committed_through_kills_pauses_and_partitions() {
    for d in [Design::Batched, Design::PerTxn] {
        let (mut ok, mut kills, mut idle, mut compactions, mut recovered) = (0, 0, 0, 0, 0);
        for seed in seeds(60) {
            let out = sim::run::<TxnRwRegister>(&kill_config(seed), &design(d));
            let answered = outcomes(&out).0;
            // A schedule that keeps the nodes down leaves no transaction answered, which the
            // checker calls an empty history; nothing was wrong, but nothing was tested either.
            let empty = answered == 0
                && out
                    .violations
                    .iter()
                    .all(|v| v.to_string().contains("empty-transaction-graph"));
            if empty {
                idle += 1;
                continue;
            }
            if let Some(report) = out.failure_report() {
                panic!("{d:?}: {report}");
            }
            ok += answered;
            kills += out.stats.kills;
            compactions += out.stats.compactions;
            recovered += out.stats.records_recovered;
        }
        if seeds(2).len() > 1 {
            assert!(
                ok > 5_000 && kills > 30 && idle <= 6 && compactions > 10 && recovered > 1000,
                "{d:?}: {ok} txns, {kills} kills, {idle} seeds with nothing answered, \
                 {compactions} compactions, {recovered} records recovered"
            );
        }
        eprintln!(
            "{d:?}: {ok} txns answered through {kills} kills ({recovered} records recovered, \
             {compactions} compactions); {idle} seeds answered none"
        );
    }
}

/// The mutant: each micro-op runs as a transaction of its own, and a peer applies one update
/// per `replicate`.
#[derive(Debug)]
struct Split(TxnRwRegister);

impl Workload for Split {
    type Msg = Msg;
    type Config = TxnConfig;

    fn init(info: &InitInfo, c: &TxnConfig, now: Millis) -> Self {
        Split(TxnRwRegister::init(info, c, now))
    }

    fn handle(&mut self, msg: Message<Msg>, now: Millis, ctx: &mut Ctx<Msg>) {
        match msg.body.payload {
            Msg::Txn { txn } => {
                let mut out = Vec::new();
                for mop in txn {
                    match self.0.run(vec![mop]) {
                        Ok(mut done) => out.append(&mut done),
                        Err(_) => return,
                    }
                }
                ctx.reply(&msg.src, msg.body.msg_id, Msg::TxnOk { txn: out });
            }
            // Peers take one update per message, so the others' intermediate writes show
            // for a round trip.
            Msg::Replicate { mut updates } => {
                updates.truncate(1);
                let msg = Message {
                    body: murmur::wire::Body {
                        payload: Msg::Replicate { updates },
                        ..msg.body
                    },
                    ..msg
                };
                self.0.handle(msg, now, ctx)
            }
            _ => self.0.handle(msg, now, ctx),
        }
    }

    fn tick(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        self.0.tick(now, ctx)
    }

    fn next_tick(&mut self, now: Millis) -> Option<Millis> {
        self.0.next_tick(now)
    }
}

#[test]
fn a_node_that_leaks_intermediate_writes_is_caught() {
    // Partition-free, so that the mutant's one-update-per-message backlog stays small.
    let caught = seeds(40).into_iter().find(|&seed| {
        let mut cfg = config(seed);
        cfg.nodes = 3;
        cfg.concurrency = 6;
        cfg.latency = Latency::constant(10);
        cfg.faults = FaultSet::default();
        // Without persistence: the mutant answers at once, as it always did.
        let cfg_node = TxnConfig {
            persist: false,
            ..TxnConfig::default()
        };
        let out = sim::run::<Split>(&cfg, &cfg_node);
        out.violations
            .iter()
            .any(|v| v.kind() == "txn" && v.to_string().contains("G1b"))
    });
    assert!(caught.is_some(), "the mutant was never caught");
}

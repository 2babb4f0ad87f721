//! A deterministic simulation: murmur's node logic (any [`murmur::node::Workload`]) driven
//! in-process under **virtual time**, on the runner's own network ([`Net`]), nemesis plan
//! ([`NemesisPlan`]), client side ([`crate::workload`]) and checker ([`set_full`](crate::checker::set_full)).
//!
//! One seed fixes everything: a run is a pure function of ([`SimConfig`], the node config), and two
//! runs of one seed produce identical histories and journals ([`SimOutcome::fingerprint`]). There
//! are no threads, no sleeps and no wall clock: a run costs only the node logic and the JSON
//! every message goes through, as on the wire, so a test can sweep a thousand seeds and print a
//! one-line replay command for any that fails.
//!
//! # Model
//!
//! Time is a virtual nanosecond count (the unit of [`Net`] and the history); nodes see it as
//! whole milliseconds. One loop pops, in time order, either the network's next delivery
//! ([`Net::next_deadline`], deliveries first on ties) or the next scheduled event
//! (timers, flushes, client ops, nemesis ops, phase changes; ties in scheduling order). Every
//! handler runs in zero virtual time.
//!
//! - **Randomness.** [`Seeds::derive`](crate::coordinator::Seeds::derive) turns [`SimConfig::seed`] into child streams, in a fixed
//!   order shared with the real-time runner: network latencies, client ops, nemesis plan, disk
//!   (flush delays, torn flushes), scheduling (process start-up delays, resume order), the
//!   nodes' boot clocks and the services. No hash map is
//!   iterated where order matters. The node config
//!   is the caller's: give it a seed derived from the sim seed if the workload uses one.
//! - **Run order**, as the real-time runner's ([`crate::coordinator`]) and Maelstrom's: register every
//!   node; each "process" starts after a seeded start-up delay and is sent `init` by its own
//!   client; after every `init_ok`, one setup client per node sends `topology` (if the client
//!   workload sends one); then the main phase (client ops at `rate`, the nemesis on its own
//!   schedule) runs until `time_limit`; in-flight ops finish or time out; the final nemesis ops
//!   heal, resume and restart everything; after `recovery`, one final read per worker; then an
//!   `idle_check` window in which nothing is asked of the nodes.
//! - **Nodes** are murmur's [`Host`](murmur::host::Host), the glue the tokio shell
//!   (`murmur::runtime`) runs around a workload, fed what the shell would feed it: every delivery
//!   is rendered as the stdin line Maelstrom writes and classified by
//!   [`murmur::node::parse_line`]. The host answers `init` (building the node with the recovered
//!   records), gives malformed requests their error, answers client requests before `init` with
//!   error 11 and drops peer traffic then, and passes client requests and replies through its
//!   [`ClientGuard`](murmur::host::ClientGuard) (configured by [`ShellModel`], told of each resume
//!   as the shell's SIGCONT flag tells it), which drops requests that waited out a pause and
//!   replies too late to be read. As in the shell, the sync timer is armed at the host's next tick
//!   after every call into it (re-armed if it moved), fires a seeded fraction of a millisecond
//!   late (`timer_late_us`), and then the host ticks the workload if it still says it is due.
//!   Outputs are serialised to JSON and sent through the [`Net`] at once.
//! - **Services** ([`crate::services`]) are registered before the nodes and answer every
//!   delivery addressed to them at once, through the network, as in the real-time runner.
//! - **Wedged output.** A node that sends to an unregistered id (typically a late reply to a client
//!   closed after a timeout) makes [`Net::send`] fail; as in Maelstrom, nothing that
//!   node incarnation prints afterwards is delivered. That is reported as a
//!   [`Violation::Wedged`].
//! - **Disk**, if [`Workload::persistent`], as the shell's flusher (group commit): after any call
//!   into the workload, an idle flusher takes the records ([`Workload::take_records`]) and writes
//!   them as one batch, which becomes durable after a seeded delay (`flush_ms`); then it calls
//!   [`Workload::persisted`] with the incarnation's cumulative durable count and takes whatever
//!   piled up during the write as the next batch. Durable records survive kills; the rest do not.
//!   This is the shell with `MURMUR_FSYNC` or a batching window. By default the shell appends
//!   inside the handler's critical section instead (durable at once, nothing can happen in
//!   between), which is the limit of a flush delay going to zero: the delayed model allows every
//!   interleaving that one does, and more. When the flusher finds nothing to write it asks the host
//!   for a compaction ([`Host::take_compaction`](murmur::host::Host::take_compaction), with
//!   [`ShellModel::compact_min_bytes`]) and writes the snapshot in its slot, durable after
//!   `compact_ms`; a kill meanwhile leaves the old records or (torn flushes on, a seeded coin) the
//!   snapshot, as the shell's rename would.
//! - **Clients** are Maelstrom's: `concurrency` workers, worker t talks to node t mod n,
//!   one request outstanding, ops from [`ClientWorkload::next_op`] staggered uniformly in
//!   [0, 2/rate) s, a 5 s timeout, completions by [`ClientWorkload::complete`] (closed reply
//!   schemas, error codes), and a fresh client id after an `info` op (broadcast's client is not
//!   reusable). Client traffic has 0 latency and is never partitioned ([`Net`]).
//!
//! # Faults
//!
//! The nemesis is [`NemesisPlan`] over [`SimConfig::faults`] with mean gap `nemesis_interval_ms`:
//! partitions are Jepsen's grudges ([`crate::nemesis::partition`]) installed with
//! [`Net::set_grudge`]; kill and pause target Jepsen's node specs; `start`/`resume` target all nodes
//! and are no-ops for running ones. A test may replace the plan's main-phase ops with a **script**
//! ([`SimConfig::script`]: ops at fixed offsets, e.g. faults aimed at one chosen node); the final
//! ops still follow [`SimConfig::faults`]. Each op is recorded in the history and mapped onto the
//! simulated nodes and network by [`apply_nemesis`](crate::coordinator::apply_nemesis), as in the runner.
//! - **Partition**: the grudge is checked when a receiver takes a message ([`Net`]).
//! - **Pause** (SIGSTOP): the node processes nothing — no deliveries, no ticks, no flush
//!   completions. The network keeps writing its messages into its stdin pipe (journaled as
//!   received, as in Maelstrom); once the pipe holds 64 KiB the receiver stops taking
//!   ([`Net::set_down`]) and the rest waits in the network queue. On resume the client guard is
//!   told first (the shell's SIGCONT flag is checked before anything is handled); then the node
//!   handles, at the resume time, its overdue tick, its piped messages (in order) and a flush that
//!   completed meanwhile, these three groups in a seeded order (the shell's tasks race after
//!   SIGCONT). Then its queue flows again.
//! - **Kill** (SIGKILL): the node's memory, pipe and records not yet durable are gone. A flush in
//!   flight is torn: a seeded prefix of its batch made it to disk (`torn_flushes`). Its messages
//!   pile up in the network ([`Net::set_down`]). **Start** discards the pile ([`Net::restart`]);
//!   the new process starts after a seeded delay (messages sent meanwhile wait in its pipe and reach
//!   it before `init`) and is sent `init`; the node is rebuilt by [`Workload::init`] with
//!   [`InitInfo::recovered`](murmur::node::InitInfo::recovered) = every record it made durable, across incarnations, in order. As in
//!   the runner, the nemesis waits for the restarted nodes' `init_ok` before its next op. Maelstrom
//!   does not resend `topology` to a restarted node, and neither does the simulation.
//!
//! # Checks ([`SimOutcome::violations`])
//!
//! For g-set the same checks as broadcast's below apply to its adds; for g-counter and
//! pn-counter, every final read must succeed and the counter checker must accept them.
//!
//! After the final phase (faults healed, no more client ops, `recovery` elapsed):
//! every worker's final read must succeed and contain every acknowledged value (a broadcast whose
//! client received `broadcast_ok`) — stronger than Maelstrom, which looks only at the latest-invoked
//! reads; [`set_full::check`](crate::checker::set_full::check) over the history must report `lost-count` 0; and during the
//! `idle_check` window after the final reads, nodes must send each other nothing. Wedged nodes,
//! failed `init`s and aborted runs are violations too. A failing outcome's
//! [`SimOutcome::failure_report`] names the seed and a one-line replay command.
//!
//! # Deviations from the real-time runner
//!
//! - Handlers take no time, so there is no CPU contention, no delivery lag and no overload; a
//!   simulated run is reproducible in its interleavings, not only in its inputs.
//! - The node's tokio shell is not run: the simulation drives the host the shell wraps and
//!   reproduces the shell's sync timer, flusher and stdin pipe around it. Bugs in
//!   the shell's I/O (the store's file format, stdout buffering) are out of reach; the node's JSON
//!   is produced by serde, so the runner's stdout-line validation is not exercised.
//! - Process start-up is a seeded delay (`restart_delay_ms`), not a real spawn; `boot_unix_micros`
//!   is a seeded epoch plus virtual time.
//! - The pipe is modelled by byte count only; a paused node's queued messages are journaled as
//!   received when they enter the pipe, as Maelstrom does.
//! - A flush completion is deferred while the node is paused (its flusher is stopped too). A disk
//!   write never fails (the shell retries failed appends; that path is not simulated).
//! - Nemesis ops other than `start` complete instantly.
//! - The checks are stricter than Maelstrom's: every final read (not only the latest-invoked ones)
//!   must hold every acknowledged value, and nodes must fall silent.
//!
//! # Layout
//!
//! One `Sim` holds the whole run's state; its methods are split by concern:
//! - `scheduler`: the virtual clock, the event queue and the main loop;
//! - `node`: a simulated node process around its [`Host`](murmur::host::Host): stdin pipe, sync
//!   timer, boot, kill, restart, pause and resume;
//! - `disk`: the shell's flusher and the durable records (delayed and torn flushes);
//! - `clients`: Maelstrom's clients and workers, op issue and completion, the history;
//! - `phases`: init, setup, main, drain, recovery and final reads, and the nemesis;
//! - `checks`: the verdict once the run is over;
//! - `outcome`: what a run returns ([`SimOutcome`], [`SimStats`], [`Violation`]).
//!
//! Maelstrom's documentation: <https://github.com/jepsen-io/maelstrom/tree/main/doc>.

mod checks;
mod clients;
mod disk;
mod node;
mod outcome;
mod phases;
mod scheduler;

use std::collections::{BTreeMap, HashMap, VecDeque};

use murmur::host::Host;
use murmur::node::{Millis, Workload};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::coordinator::{OpSchedule, Seeds, CLIENT_TIMEOUT_MS, RECOVERY_MS};
use crate::history::{ChunkPool, Op};
use crate::nemesis::{FaultSet, NemesisOp, NemesisPlan};
use crate::net::{Delivery, Latency, Net};
use crate::services::Services;
use crate::topology::TopologyKind;
use crate::workload::ClientWorkload;

use checks::FinalRead;
use clients::{SimClient, Worker};
use node::SimNode;
use phases::{NemesisMode, Phase, Starting};
use scheduler::Event;

pub use outcome::{SimOutcome, SimStats, Violation};

/// Nanoseconds per millisecond.
pub const MS: u64 = 1_000_000;
/// Bytes a node's stdin pipe holds before Maelstrom's writer blocks (Linux default).
pub const PIPE_CAPACITY: usize = 64 * 1024;
pub use crate::coordinator::INIT_TIMEOUT_MS;

/// How much the simulation records in [`SimOutcome::trace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TraceLevel {
    #[default]
    Off,
    /// Phases, nemesis ops, node lifecycle (kill, start, init, pause, resume), wedges.
    Events,
    /// Also every delivery to a node and every flush.
    Messages,
}

/// How each node's host configures its client guard (`murmur::host::ClientGuard`, which keeps late
/// replies from wedging a node's output). Defaults are the shell's (`murmur::host::ShellConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellModel {
    /// Run every client request and reply through a client guard, as the shell does. Off, a
    /// node answers requests that waited out a pause, and wedges.
    pub client_guard: bool,
    /// `MURMUR_STALL_MS`.
    pub stall_ms: Millis,
    /// `MURMUR_REPLY_DEADLINE_MS`.
    pub reply_deadline_ms: Millis,
    /// `MURMUR_COMPACT_MIN_BYTES` (`None`: never compact). The shell's default is 1 MiB, which a
    /// simulated run rarely reaches; test sweeps lower it so that nodes compact.
    pub compact_min_bytes: Option<u64>,
}

impl Default for ShellModel {
    fn default() -> Self {
        ShellModel {
            client_guard: true,
            stall_ms: 1000,
            reply_deadline_ms: 4000,
            compact_min_bytes: Some(murmur::host::DEFAULT_COMPACT_MIN_BYTES),
        }
    }
}

/// One simulated test. Durations are virtual milliseconds.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// A label for reports and the replay command (the test's scenario name).
    pub scenario: String,
    /// Node count: `n0` … `n{nodes-1}`.
    pub nodes: usize,
    pub latency: Latency,
    pub topology: TopologyKind,
    /// The client side: what ops are issued and how replies are judged.
    pub client: ClientWorkload,
    /// Client workers (Maelstrom's `--concurrency`; `1n` = `nodes`).
    pub concurrency: usize,
    /// The txn workloads' generator flags and consistency models.
    pub txn: crate::workload::TxnOpts,
    /// Client ops per second across all workers (`--rate`); 0 issues none.
    pub rate: f64,
    /// Length of the main phase (`--time-limit`).
    pub time_limit_ms: u64,
    pub faults: FaultSet,
    /// Mean gap between two ops of one nemesis stream (`--nemesis-interval`).
    pub nemesis_interval_ms: u64,
    /// Wait between the final nemesis ops and the final reads (Maelstrom: 10 s).
    pub recovery_ms: u64,
    /// After the final reads: how long nodes must stay silent with each other.
    pub idle_check_ms: u64,
    /// Client RPC timeout (Maelstrom: 5 s).
    pub client_timeout_ms: u64,
    /// A flush completes after a delay uniform in this inclusive range.
    pub flush_ms: (u64, u64),
    /// A compaction (the whole state written to a new file, synced, renamed) completes after a
    /// delay uniform in this inclusive range: longer than a flush, so kills strike during some.
    pub compact_ms: (u64, u64),
    /// A (re)started process gets `init` after a delay uniform in this inclusive range.
    pub restart_delay_ms: (u64, u64),
    /// A sync timer fires late by a delay uniform in this inclusive range (µs), as a real one
    /// does: the node's clock is then off its slot grid when it ticks, as in the shell, where a
    /// timer armed for a slot fires a fraction of a millisecond after it.
    pub timer_late_us: (u64, u64),
    /// A kill during a flush leaves a seeded prefix of the flushed batch on disk.
    pub torn_flushes: bool,
    /// The node shell's own behaviour around the workload.
    pub shell: ShellModel,
    pub trace: TraceLevel,
    /// Replay command for failure reports; `{seed}` and `{scenario}` are substituted.
    pub replay_command: String,
    /// Safety valve: a run processing more events than this is aborted (a runaway node).
    pub max_events: u64,
    /// When not empty, the main phase's nemesis ops instead of the plan's: each op at its offset
    /// (ms after the main phase began, or as soon as the nemesis is free), in order, while the main
    /// phase lasts. `faults` must name every kind used, so the final ops undo them. Default empty.
    pub script: Vec<(u64, NemesisOp)>,
}

/// The replay command the test suite understands (`maelstrom/tests/sim.rs`).
pub const DEFAULT_REPLAY: &str =
    "SIM_SEED={seed} SIM_SCENARIO={scenario} cargo test -p murmur-maelstrom --test sim replay -- --nocapture";

impl SimConfig {
    /// A broadcast test on `nodes` nodes with Maelstrom's defaults where they exist (grid topology,
    /// 0 ms latency, `1n` workers, 10 s recovery, 5 s client timeout) and: rate 10/s, a 10 s main
    /// phase, no faults, 10 s nemesis interval, a 5 s idle check, 1–10 ms flushes, 1–20 ms process
    /// start-up, torn flushes on.
    pub fn broadcast(seed: u64, nodes: usize) -> SimConfig {
        SimConfig {
            seed,
            scenario: "default".into(),
            nodes,
            latency: Latency::constant(0),
            topology: TopologyKind::Grid,
            client: ClientWorkload::Broadcast,
            concurrency: nodes,
            txn: crate::workload::TxnOpts::default(),
            rate: 10.0,
            time_limit_ms: 10_000,
            faults: FaultSet::default(),
            nemesis_interval_ms: 10_000,
            recovery_ms: RECOVERY_MS,
            idle_check_ms: 5_000,
            client_timeout_ms: CLIENT_TIMEOUT_MS,
            flush_ms: (1, 10),
            compact_ms: (10, 300),
            restart_delay_ms: (1, 20),
            timer_late_us: (0, 1_500),
            torn_flushes: true,
            shell: ShellModel::default(),
            trace: TraceLevel::Off,
            replay_command: DEFAULT_REPLAY.into(),
            max_events: 50_000_000,
            script: Vec::new(),
        }
    }

    /// A lin-kv test on `nodes` nodes: Maelstrom's lin-kv client (`2n` workers, one key per
    /// group, a client timeout of max(10 × latency, 1 s)), rate 20/s, and the rest as
    /// [`SimConfig::broadcast`], except the idle check, which is off (0 ms): a Raft leader
    /// sends heartbeats for as long as it leads.
    pub fn lin_kv(seed: u64, nodes: usize) -> SimConfig {
        let client = ClientWorkload::LinKv;
        let base = SimConfig::broadcast(seed, nodes);
        SimConfig {
            client,
            concurrency: 2 * nodes,
            rate: 20.0,
            idle_check_ms: 0,
            client_timeout_ms: client.client_timeout_ms(base.latency.mean_ms()),
            ..base
        }
    }

    /// One line describing the run, for reports.
    pub fn describe(&self) -> String {
        let faults = if self.faults.is_empty() {
            "none".to_string()
        } else {
            self.faults.to_string()
        };
        format!(
            "scenario `{}`, seed {}: {} nodes, {} workers, latency {} {} ms, topology {}, rate {:.1}/s, \
             {} ms main phase, faults {} every ~{} ms, recovery {} ms",
            self.scenario,
            self.seed,
            self.nodes,
            self.concurrency,
            self.latency.dist(),
            self.latency.mean_ms(),
            self.topology,
            self.rate,
            self.time_limit_ms,
            faults,
            self.nemesis_interval_ms,
            self.recovery_ms
        )
    }

    /// The replay command for this seed and scenario.
    pub fn replay(&self) -> String {
        self.replay_command
            .replace("{seed}", &self.seed.to_string())
            .replace("{scenario}", &self.scenario)
    }
}

/// One simulated run: all its state. Its methods live in the submodules, by concern.
struct Sim<'a, W: Workload> {
    cfg: &'a SimConfig,
    /// Told of every step and fault; sees, never changes.
    probe: &'a mut dyn Probe<W>,
    node_cfg: &'a W::Config,
    persistent: bool,
    now: u64,
    net: Net,
    events: BTreeMap<(u64, u64), Event>,
    seq: u64,
    nodes: Vec<SimNode<W>>,
    node_ids: Vec<String>,
    index: HashMap<String, usize>,
    clients: BTreeMap<String, SimClient>,
    next_client: u64,
    workers: Vec<Worker>,
    /// Staggered client ops, from the main phase on.
    ops: Option<OpSchedule>,
    /// An op fell due while every worker was busy: the next free worker takes it.
    op_waiting: bool,
    history: Vec<Op>,
    /// Shares the chunks of the set reads in `history`, as the real-time driver does.
    read_chunks: ChunkPool,
    op_rng: ChaCha8Rng,
    disk_rng: ChaCha8Rng,
    sched_rng: ChaCha8Rng,
    boot_epoch_us: u64,
    plan: NemesisPlan,
    nemesis_mode: NemesisMode,
    nemesis_queue: VecDeque<NemesisOp>,
    /// A `start` waiting for its restarted nodes' `init_ok`.
    nemesis_starting: Option<Starting>,
    /// The next op of [`SimConfig::script`].
    script_next: usize,
    phase: Phase,
    setup_left: usize,
    main_start: u64,
    cutoff: u64,
    idle_start: u64,
    /// How many journal events there were when the idle check began.
    idle_journal: usize,
    final_reads: Vec<FinalRead>,
    stats: SimStats,
    violations: Vec<Violation>,
    trace: Vec<String>,
    scratch: Vec<Delivery>,
    /// Maelstrom's services, answering at once when a message reaches them.
    services: Services,
}

/// A change of the run's faults, as a [`Probe`] is told of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeEvent {
    /// Node `i` was killed (it was running or starting).
    Killed(usize),
    /// Node `i` was paused (it was not paused already).
    Paused(usize),
    /// Node `i`, paused, was resumed.
    Resumed(usize),
    /// A partition was installed.
    Partitioned,
    /// The network healed.
    Healed,
}

/// Watches a run from inside, for what the history cannot show: the exact moment a node holds
/// something, say (the catch-up sweep in `tests/sim.rs`). It is told after every step of a running
/// node's host ([`Probe::step`]) and at every fault ([`Probe::event`]). It gets shared references
/// only, so a probed run is the same run as an unprobed one.
pub trait Probe<W: Workload> {
    /// Node `i`'s host (initialised or not) has just handled something at `at_ms`.
    fn step(&mut self, at_ms: Millis, i: usize, host: &Host<W>);
    /// A fault changed at `at_ms`.
    fn event(&mut self, at_ms: Millis, event: ProbeEvent) {
        let _ = (at_ms, event);
    }
}

/// The probe of an unprobed run.
struct NoProbe;

impl<W: Workload> Probe<W> for NoProbe {
    fn step(&mut self, _: Millis, _: usize, _: &Host<W>) {}
}

/// Runs one simulated test of node workload `W` with node config `node_cfg`.
pub fn run<W: Workload>(cfg: &SimConfig, node_cfg: &W::Config) -> SimOutcome {
    run_probed::<W>(cfg, node_cfg, &mut NoProbe)
}

/// [`run`], with `probe` watching.
pub fn run_probed<W: Workload>(
    cfg: &SimConfig,
    node_cfg: &W::Config,
    probe: &mut dyn Probe<W>,
) -> SimOutcome {
    let seeds = Seeds::derive(cfg.seed);

    let node_ids: Vec<String> = (0..cfg.nodes).map(|i| format!("n{i}")).collect();
    let interval_secs = cfg.nemesis_interval_ms.max(1) as f64 / 1000.0;
    let plan = NemesisPlan::new(cfg.faults, interval_secs, node_ids.clone(), seeds.nemesis)
        .expect("a positive nemesis interval");
    let mut sim = Sim::<W> {
        cfg,
        probe,
        node_cfg,
        persistent: W::persistent(node_cfg),
        now: 0,
        net: Net::new(cfg.latency, seeds.net),
        events: BTreeMap::new(),
        seq: 0,
        nodes: Vec::new(),
        index: node_ids
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect(),
        node_ids,
        clients: BTreeMap::new(),
        next_client: 0,
        workers: Vec::new(),
        ops: None,
        op_waiting: false,
        history: Vec::new(),
        read_chunks: ChunkPool::new(),
        op_rng: seeds.ops,
        disk_rng: seeds.disk,
        sched_rng: seeds.sched,
        boot_epoch_us: seeds.boot_epoch_us,
        plan,
        nemesis_mode: NemesisMode::Main,
        nemesis_queue: VecDeque::new(),
        nemesis_starting: None,
        script_next: 0,
        phase: Phase::Init,
        setup_left: 0,
        main_start: 0,
        cutoff: 0,
        idle_start: 0,
        idle_journal: 0,
        final_reads: Vec::new(),
        stats: SimStats::default(),
        violations: Vec::new(),
        trace: Vec::new(),
        scratch: Vec::new(),
        services: Services::new(seeds.services),
    };
    sim.start();
    sim.run_loop();
    sim.finish()
}

impl<W: Workload> Sim<'_, W> {
    fn now_ms(&self) -> Millis {
        self.now / MS
    }

    /// Uniform in the inclusive range of ms, in ns.
    fn uniform_ms(rng: &mut ChaCha8Rng, (lo, hi): (u64, u64)) -> u64 {
        let (lo, hi) = (lo.min(hi) * MS, lo.max(hi) * MS);
        rng.random_range(lo..=hi)
    }

    /// Appends a line to the trace if the run traces at `level`.
    fn note(&mut self, level: TraceLevel, what: impl FnOnce() -> String) {
        if self.cfg.trace != TraceLevel::Off && level <= self.cfg.trace {
            let line = format!("{:>10.3} ms  {}", self.now as f64 / MS as f64, what());
            self.trace.push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::JournalKind;
    use murmur::workload::broadcast::{Broadcast, BroadcastConfig};

    fn small(seed: u64) -> SimConfig {
        SimConfig {
            time_limit_ms: 2_000,
            recovery_ms: 3_000,
            idle_check_ms: 2_000,
            rate: 20.0,
            latency: Latency::constant(5),
            ..SimConfig::broadcast(seed, 3)
        }
    }

    #[test]
    fn a_quiet_run_passes_and_replays() {
        let cfg = small(1);
        let a = run::<Broadcast>(&cfg, &BroadcastConfig::default());
        assert!(a.passed(), "{}", a.failure_report().unwrap());
        assert!(a.stats.acked > 0);
        assert_eq!(a.stats.final_reads, 3);
        let b = run::<Broadcast>(&cfg, &BroadcastConfig::default());
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.history, b.history);
        assert_eq!(a.journal, b.journal);
        // Setup: 3 inits and 3 topologies, each a request and a reply.
        let setup = a
            .journal
            .iter()
            .filter(|e| {
                e.kind == JournalKind::Send
                    && matches!(
                        e.body_type.as_str(),
                        "init" | "init_ok" | "topology" | "topology_ok"
                    )
            })
            .count();
        assert_eq!(setup, 12);
    }

    #[test]
    fn shell_model_defaults_are_the_shells() {
        let shell = murmur::host::ShellConfig::default();
        let model = ShellModel::default();
        assert!(model.client_guard);
        assert_eq!(
            (model.stall_ms, model.reply_deadline_ms),
            (shell.stall_ms, shell.reply_deadline_ms)
        );
    }

    #[test]
    fn different_seeds_differ() {
        let a = run::<Broadcast>(&small(1), &BroadcastConfig::default());
        let b = run::<Broadcast>(&small(2), &BroadcastConfig::default());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn failure_report_names_seed_and_replay() {
        let mut cfg = small(77);
        cfg.scenario = "demo".into();
        let mut out = run::<Broadcast>(&cfg, &BroadcastConfig::default());
        out.violations.push(Violation::Aborted("made up".into()));
        let r = out.failure_report().unwrap();
        assert!(r.contains("seed 77"), "{r}");
        assert!(
            r.contains(
                "SIM_SEED=77 SIM_SCENARIO=demo cargo test -p murmur-maelstrom --test sim replay"
            ),
            "{r}"
        );
    }
}

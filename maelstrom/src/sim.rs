//! A deterministic simulation: murmur's node logic (any [`murmur::node::Workload`]) driven
//! in-process under **virtual time**, on the runner's own network ([`Net`]), nemesis plan
//! ([`NemesisPlan`]), client side ([`crate::workload`]) and checker ([`set_full`]).
//!
//! One seed fixes everything: a run is a pure function of ([`SimConfig`], the node config), and two
//! runs of one seed produce identical histories and journals ([`SimOutcome::fingerprint`]). There
//! are no threads, no sleeps and no wall clock: a 30 s run of 25 nodes at 100 ms latency takes
//! about 0.1–0.25 s in release (about 1 s in debug, every message going through JSON as on the
//! wire), a 5 s run of 3–7 nodes a few ms, so a test can sweep a thousand seeds and print a
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
//! - **Randomness.** One [`ChaCha8Rng`] seeded with [`SimConfig::seed`] seeds child streams, in a
//!   fixed order: network latencies, client ops, nemesis plan, disk (flush delays, torn flushes),
//!   scheduling (process start-up delays, resume order) and the nodes' boot clocks. No hash map is
//!   iterated where order matters. The node config
//!   is the caller's: give it a seed derived from the sim seed if the workload uses one.
//! - **Run order**, as the real-time runner ([`crate::run`]) and Maelstrom (spec §2): register every
//!   node; each "process" starts after a seeded start-up delay and is sent `init` by its own
//!   client; after every `init_ok`, one setup client per node sends `topology` (if the client
//!   workload sends one); then the main phase (client ops at `rate`, the nemesis on its own
//!   schedule) runs until `time_limit`; in-flight ops finish or time out; the final nemesis ops
//!   heal, resume and restart everything; after `recovery`, one final read per worker; then an
//!   `idle_check` window in which nothing is asked of the nodes.
//! - **Nodes** are fed exactly what murmur's tokio shell (`murmur::runtime`) would feed them, and
//!   the shell's own behaviour around the workload is modelled ([`ShellModel`]): every delivery is
//!   rendered as the stdin line Maelstrom writes and classified by [`murmur::node::parse_line`];
//!   workload messages go to [`Workload::handle`]; `init` builds the node ([`Workload::init`], with
//!   the recovered records) and is answered `init_ok`; malformed requests get the shell's error.
//!   Before `init`, client requests get error 11 and peer traffic is dropped. Client requests and
//!   replies pass the shell's [`ClientGuard`] (the real one, told of each resume as the shell's
//!   SIGCONT flag tells it), which drops requests that waited out a pause and replies too late to
//!   be read. As in the shell, the sync timer is armed at [`Workload::next_tick`] after every
//!   call into the workload (re-armed only if sooner), and when it fires [`Workload::tick`] runs if
//!   the workload still says it is due. Outputs are serialised to JSON and sent through the [`Net`]
//!   at once.
//! - **Wedged output.** A node that sends to an unregistered id (typically a late reply to a client
//!   closed after a timeout) makes [`Net::send`] fail; as in Maelstrom (spec §2 "Malformed
//!   output"), nothing that node incarnation prints afterwards is delivered. That is reported as a
//!   [`Violation::Wedged`].
//! - **Disk**, if [`Workload::persistent`], as the shell's flusher (group commit): after any call
//!   into the workload, an idle flusher takes the records ([`Workload::take_records`]) and writes
//!   them as one batch, which becomes durable after a seeded delay (`flush_ms`); then it calls
//!   [`Workload::persisted`] with the incarnation's cumulative durable count and takes whatever
//!   piled up during the write as the next batch. Durable records survive kills; the rest do not.
//!   This is the shell with `MURMUR_FSYNC` or a batching window. By default the shell appends
//!   inside the handler's critical section instead (durable at once, nothing can happen in
//!   between), which is the limit of a flush delay going to zero: the delayed model allows every
//!   interleaving that one does, and more.
//! - **Clients** are Maelstrom's (spec §5): `concurrency` workers, worker t talks to node t mod n,
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
//! and are no-ops for running ones. Each op is recorded in the history as in the runner.
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
//!   [`InitInfo::recovered`] = every record it made durable, across incarnations, in order. As in
//!   the runner, the nemesis waits for the restarted nodes' `init_ok` before its next op. Maelstrom
//!   does not resend `topology` to a restarted node, and neither does the simulation.
//!
//! # Checks ([`SimOutcome::violations`])
//!
//! After the final phase (faults healed, no more client ops, `recovery` elapsed):
//! every worker's final read must succeed and contain every acknowledged value (a broadcast whose
//! client received `broadcast_ok`) — stronger than Maelstrom, which looks only at the latest-invoked
//! reads; [`set_full::check`] over the history must report `lost-count` 0; and during the
//! `idle_check` window after the final reads, nodes must send each other nothing. Wedged nodes,
//! failed `init`s and aborted runs are violations too. A failing outcome's
//! [`SimOutcome::failure_report`] names the seed and a one-line replay command.
//!
//! # Deviations from the real-time runner
//!
//! - Handlers take no time, so there is no CPU contention, no delivery lag and no overload; a
//!   simulated run is reproducible in its interleavings, not only in its inputs.
//! - The node's tokio shell is not run: its contract (parse, pre-`init` rule, `init_ok`, ticks,
//!   client guard, flusher) is modelled here, with the real [`ClientGuard`]. Bugs in
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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::{self, Write as _};

use murmur::host::{Host, HostStats};
use murmur::node::{parse_line, Millis, Workload};
use murmur::wire::is_client;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::checker::set_full::{self, SetFullResult};
use crate::history::{JournalEvent, JournalKind, Op, OpType, Process};
use crate::nemesis::{FaultSet, NemesisOp, NemesisPlan};
use crate::net::{Delivery, Latency, Net, NetError, Packet};
use crate::topology::{self, TopologyKind};
use crate::workload::{ClientWorkload, Generator, OpSpec, Reply};

/// Nanoseconds per millisecond.
pub const MS: u64 = 1_000_000;
/// Bytes a node's stdin pipe holds before Maelstrom's writer blocks (Linux default).
pub const PIPE_CAPACITY: usize = 64 * 1024;
/// `init` must be answered within this (Maelstrom's db.clj), in ms.
pub const INIT_TIMEOUT_MS: u64 = 10_000;

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

/// The parts of murmur's tokio shell (`murmur::runtime`) the simulation reproduces besides the
/// workload calls: its [`ClientGuard`] (spec §10 "Late replies kill a node's output"), told of
/// every activity and every resume. Defaults are the shell's (`murmur::host::ShellConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellModel {
    /// Run every client request and reply through a [`ClientGuard`], as the shell does. Off, a
    /// node answers requests that waited out a pause, and wedges.
    pub client_guard: bool,
    /// `MURMUR_STALL_MS`.
    pub stall_ms: Millis,
    /// `MURMUR_REPLY_DEADLINE_MS`.
    pub reply_deadline_ms: Millis,
}

impl Default for ShellModel {
    fn default() -> Self {
        ShellModel {
            client_guard: true,
            stall_ms: 1000,
            reply_deadline_ms: 4000,
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
    /// A (re)started process gets `init` after a delay uniform in this inclusive range.
    pub restart_delay_ms: (u64, u64),
    /// A kill during a flush leaves a seeded prefix of the flushed batch on disk.
    pub torn_flushes: bool,
    /// The node shell's own behaviour around the workload.
    pub shell: ShellModel,
    pub trace: TraceLevel,
    /// Replay command for failure reports; `{seed}` and `{scenario}` are substituted.
    pub replay_command: String,
    /// Safety valve: a run processing more events than this is aborted (a runaway node).
    pub max_events: u64,
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
            rate: 10.0,
            time_limit_ms: 10_000,
            faults: FaultSet::default(),
            nemesis_interval_ms: 10_000,
            recovery_ms: 10_000,
            idle_check_ms: 5_000,
            client_timeout_ms: 5_000,
            flush_ms: (1, 10),
            restart_delay_ms: (1, 20),
            torn_flushes: true,
            shell: ShellModel::default(),
            trace: TraceLevel::Off,
            replay_command: DEFAULT_REPLAY.into(),
            max_events: 50_000_000,
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

/// Counts from one run (summed by test suites).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Virtual time at the end, ms.
    pub virtual_ms: u64,
    /// Events and delivery batches processed.
    pub steps: u64,
    /// Messages handed to nodes (pipe included).
    pub deliveries: u64,
    /// Node-to-node messages sent.
    pub node_msgs: u64,
    /// Client invocations (final reads included).
    pub client_ops: u64,
    /// Distinct values whose broadcast was acknowledged.
    pub acked: u64,
    /// Final reads checked against the acknowledged set.
    pub final_reads: u64,
    /// Σ over final reads of the acknowledged values each had to contain.
    pub values_checked: u64,
    pub partitions: u64,
    pub kills: u64,
    /// Node processes restarted (a `start` counts each node it actually restarts).
    pub restarts: u64,
    /// Nodes paused (a `pause` counts each node it actually pauses).
    pub pauses: u64,
    /// Messages dropped by partitions.
    pub partition_drops: u64,
    /// Messages discarded by restarts (they piled up for a killed node).
    pub discarded_at_restart: u64,
    /// Messages a node dropped because they arrived before `init`.
    pub dropped_before_init: u64,
    /// Client requests the shell's client guard dropped as too old to answer.
    pub stale_requests_dropped: u64,
    /// Client replies the shell's client guard dropped as too late.
    pub late_replies_dropped: u64,
    pub flushes: u64,
    /// Records made durable (torn prefixes included).
    pub records_durable: u64,
    /// Records lost to kills (pending or in a flush, not durable).
    pub records_lost: u64,
    /// Records handed back to restarted nodes.
    pub records_recovered: u64,
    /// Node-to-node messages sent during the idle check.
    pub idle_node_msgs: u64,
}

impl SimStats {
    /// Adds `other` into `self` (for suite totals; `virtual_ms` adds up too).
    pub fn add(&mut self, o: &SimStats) {
        self.virtual_ms += o.virtual_ms;
        self.steps += o.steps;
        self.deliveries += o.deliveries;
        self.node_msgs += o.node_msgs;
        self.client_ops += o.client_ops;
        self.acked += o.acked;
        self.final_reads += o.final_reads;
        self.values_checked += o.values_checked;
        self.partitions += o.partitions;
        self.kills += o.kills;
        self.restarts += o.restarts;
        self.pauses += o.pauses;
        self.partition_drops += o.partition_drops;
        self.discarded_at_restart += o.discarded_at_restart;
        self.dropped_before_init += o.dropped_before_init;
        self.stale_requests_dropped += o.stale_requests_dropped;
        self.late_replies_dropped += o.late_replies_dropped;
        self.flushes += o.flushes;
        self.records_durable += o.records_durable;
        self.records_lost += o.records_lost;
        self.records_recovered += o.records_recovered;
        self.idle_node_msgs += o.idle_node_msgs;
    }

    /// Faults injected: partitions started, nodes killed, nodes paused.
    /// Adds what one host dropped.
    fn add_host(&mut self, h: HostStats) {
        self.dropped_before_init += h.dropped_before_init;
        self.stale_requests_dropped += h.stale_requests_dropped;
        self.late_replies_dropped += h.late_replies_dropped;
    }

    pub fn faults(&self) -> u64 {
        self.partitions + self.kills + self.pauses
    }
}

impl fmt::Display for SimStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} virtual s, {} client ops, {} values acked, {} final reads checking {} values, \
             {} node msgs ({} dropped by partitions, {} discarded at restarts, {} before init), \
             faults: {} partitions, {} kills ({} restarts), {} pauses; client guard dropped {} stale \
             requests and {} late replies; disk: {} flushes, {} records durable, {} lost, {} recovered",
            self.virtual_ms / 1000,
            self.client_ops,
            self.acked,
            self.final_reads,
            self.values_checked,
            self.node_msgs,
            self.partition_drops,
            self.discarded_at_restart,
            self.dropped_before_init,
            self.partitions,
            self.kills,
            self.restarts,
            self.pauses,
            self.stale_requests_dropped,
            self.late_replies_dropped,
            self.flushes,
            self.records_durable,
            self.records_lost,
            self.records_recovered
        )
    }
}

/// Something the checks found wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    /// A final read lacked acknowledged values.
    Missing {
        node: String,
        missing: Vec<Value>,
        acked: usize,
    },
    /// A final read did not succeed.
    FinalReadFailed { node: String, outcome: String },
    /// `set-full` found lost values.
    Lost { lost: Vec<Value>, lost_count: usize },
    /// Nodes talked to each other during the idle check.
    Chatty {
        count: u64,
        by_type: Vec<(String, u64)>,
    },
    /// A node's output was cut off after it sent to an unregistered id.
    Wedged {
        node: String,
        at_ms: u64,
        error: String,
    },
    /// A (re)started node never answered `init`.
    InitFailed { node: String, at_ms: u64 },
    /// The run could not complete (setup failed, event budget exhausted).
    Aborted(String),
}

impl Violation {
    /// A short name for grouping failures: `missing`, `final-read-failed`, `lost`, `chatty`,
    /// `wedged`, `init-failed` or `aborted`.
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::Missing { .. } => "missing",
            Violation::FinalReadFailed { .. } => "final-read-failed",
            Violation::Lost { .. } => "lost",
            Violation::Chatty { .. } => "chatty",
            Violation::Wedged { .. } => "wedged",
            Violation::InitFailed { .. } => "init-failed",
            Violation::Aborted(_) => "aborted",
        }
    }
}

fn list(values: &[Value], max: usize) -> String {
    let shown: Vec<String> = values.iter().take(max).map(Value::to_string).collect();
    let more = if values.len() > max {
        format!(", … {} more", values.len() - max)
    } else {
        String::new()
    };
    format!("[{}{more}]", shown.join(", "))
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Missing {
                node,
                missing,
                acked,
            } => write!(
                f,
                "{node}'s final read lacks {} of {acked} acknowledged values: {}",
                missing.len(),
                list(missing, 12)
            ),
            Violation::FinalReadFailed { node, outcome } => {
                write!(f, "{node}'s final read did not succeed: {outcome}")
            }
            Violation::Lost { lost, lost_count } => {
                write!(f, "set-full: lost-count {lost_count}: {}", list(lost, 12))
            }
            Violation::Chatty { count, by_type } => {
                let types: Vec<String> = by_type.iter().map(|(t, c)| format!("{t}×{c}")).collect();
                write!(
                    f,
                    "not idle: {count} node-to-node messages after quiescence ({})",
                    types.join(", ")
                )
            }
            Violation::Wedged { node, at_ms, error } => write!(
                f,
                "{node} wedged at {at_ms} ms: {error}; Maelstrom stops reading its output (spec §2)"
            ),
            Violation::InitFailed { node, at_ms } => write!(
                f,
                "{node} did not answer init (sent at {at_ms} ms) within {INIT_TIMEOUT_MS} ms"
            ),
            Violation::Aborted(why) => write!(f, "run aborted: {why}"),
        }
    }
}

/// The result of one simulated run.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    pub config: SimConfig,
    pub history: Vec<Op>,
    pub journal: Vec<JournalEvent>,
    /// `None` for client workloads other than broadcast.
    pub set_full: Option<SetFullResult>,
    pub stats: SimStats,
    pub violations: Vec<Violation>,
    /// See [`TraceLevel`].
    pub trace: Vec<String>,
}

impl SimOutcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// FNV-1a over the history (as JSON lines) and every field of the journal: equal for two runs
    /// of one seed, and in practice different for two seeds.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        for op in &self.history {
            let _ = serde_json::to_writer(&mut h, op);
        }
        for e in &self.journal {
            h.bytes(&[u8::from(e.kind == JournalKind::Send)]);
            h.bytes(&e.time.to_le_bytes());
            h.bytes(&e.id.to_le_bytes());
            h.str(&e.src);
            h.str(&e.dest);
            h.str(&e.body_type);
        }
        h.0
    }

    /// Whether some violation is about acknowledged values missing or lost.
    pub fn lost_values(&self) -> bool {
        self.violations
            .iter()
            .any(|v| matches!(v, Violation::Missing { .. } | Violation::Lost { .. }))
    }

    /// The distinct kinds of its violations, sorted, joined by `+` (empty if it passed).
    pub fn violation_kinds(&self) -> String {
        let kinds: BTreeSet<&str> = self.violations.iter().map(Violation::kind).collect();
        kinds.into_iter().collect::<Vec<_>>().join("+")
    }

    /// `None` if the run passed; otherwise a report naming the seed, every violation, the run's
    /// counts and the replay command.
    pub fn failure_report(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        let mut s = format!("simulation failed: {}\n", self.config.describe());
        for v in &self.violations {
            let _ = writeln!(s, "  - {v}");
        }
        let _ = writeln!(s, "  counts: {}", self.stats);
        let _ = write!(s, "  replay: {}", self.config.replay());
        Some(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Internals

/// Something scheduled on the virtual clock.
#[derive(Debug)]
enum Event {
    /// A node's sync timer, set to the workload's [`Workload::next_tick`] (stale if the
    /// incarnation changed, or if the timer was re-armed sooner).
    Tick { node: usize, inc: u64 },
    /// A node's flush in flight completes.
    FlushDone { node: usize, inc: u64 },
    /// A (re)started process is up: it reads what is already in its pipe, and is sent `init`.
    Boot { node: usize, inc: u64 },
    /// A client's request times out unless answered.
    ClientTimeout { client: String, msg_id: u64 },
    /// The op generator's next scheduled op.
    NextOp,
    /// A nemesis op falls due.
    Nemesis(NemesisOp),
    /// The main phase's time limit.
    MainEnd,
    /// Recovery is over: final reads.
    FinalReads,
    /// The idle check is over: stop.
    IdleEnd,
}

enum Proc<W: Workload> {
    /// Killed, not restarted yet.
    Down,
    /// Restarted, process not running yet (its stdin pipe exists and fills).
    Spawning,
    /// The process runs: its host (before or after `init`).
    Running(Box<Host<W>>),
}

struct SimNode<W: Workload> {
    id: String,
    proc: Proc<W>,
    /// Bumped at each kill; events of an older incarnation are ignored.
    inc: u64,
    paused: bool,
    /// Messages written into the stdin pipe while the process was stopped or not yet running.
    pipe: VecDeque<Delivery>,
    pipe_bytes: usize,
    /// The pipe is full: the network receiver is down until resume.
    pipe_full: bool,
    tick_overdue: bool,
    /// When the sync timer is armed (virtual time), if it is.
    tick_at: Option<u64>,
    flush_overdue: bool,
    /// Durable records, across incarnations.
    disk: Vec<Vec<u8>>,
    /// A handler ran since the flusher last took records (the shell's `dirty` poke).
    dirty: bool,
    /// The batch being written.
    flushing: Vec<Vec<u8>>,
    flush_in_flight: bool,
    /// Records of this incarnation that are durable.
    persisted: u64,
    /// This incarnation's output is cut off.
    wedged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Init(usize),
    Topology(usize),
    Worker(usize),
}

struct SimClient {
    purpose: Purpose,
    next_msg_id: u64,
    /// The outstanding request's `msg_id`.
    waiting: Option<u64>,
}

struct Worker {
    node: usize,
    client: String,
    process: u64,
    /// The op in flight and whether it is a final read.
    busy: Option<(OpSpec, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Init,
    Setup,
    Main,
    /// Time limit reached: waiting for in-flight ops and the nemesis.
    Drain,
    /// Final nemesis ops and recovery wait.
    Recovery,
    Final,
    Idle,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NemesisMode {
    Main,
    Final,
}

/// What a final read found.
struct FinalRead {
    node: usize,
    outcome: Result<Vec<Value>, String>,
}

struct Sim<'a, W: Workload> {
    cfg: &'a SimConfig,
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
    rr: usize,
    op_waiting: bool,
    next_op_at: u64,
    generator: Generator,
    history: Vec<Op>,
    op_rng: ChaCha8Rng,
    disk_rng: ChaCha8Rng,
    sched_rng: ChaCha8Rng,
    boot_epoch_us: u64,
    plan: NemesisPlan,
    nemesis_mode: NemesisMode,
    nemesis_queue: VecDeque<NemesisOp>,
    /// A `start` waiting for these nodes' `init_ok`.
    /// A `start` waiting for these nodes' `init_ok`, and the nodes that answered so far.
    nemesis_starting: Option<(NemesisOp, BTreeSet<usize>, Vec<String>)>,
    phase: Phase,
    setup_left: usize,
    main_start: u64,
    cutoff: u64,
    idle_start: u64,
    final_reads: Vec<FinalRead>,
    stats: SimStats,
    violations: Vec<Violation>,
    trace: Vec<String>,
    scratch: Vec<Delivery>,
}

/// Runs one simulated test of node workload `W` with node config `node_cfg`.
pub fn run<W: Workload>(cfg: &SimConfig, node_cfg: &W::Config) -> SimOutcome {
    let mut root = ChaCha8Rng::seed_from_u64(cfg.seed);
    let net_rng = ChaCha8Rng::seed_from_u64(root.random());
    let op_rng = ChaCha8Rng::seed_from_u64(root.random());
    let nemesis_seed: u64 = root.random();
    let disk_rng = ChaCha8Rng::seed_from_u64(root.random());
    let sched_rng = ChaCha8Rng::seed_from_u64(root.random());
    // Some moment in 2023–2025, in µs since the Unix epoch.
    let boot_epoch_us = 1_680_000_000_000_000 + root.random_range(0..60_000_000_000_000u64);

    let node_ids: Vec<String> = (0..cfg.nodes).map(|i| format!("n{i}")).collect();
    let interval_secs = cfg.nemesis_interval_ms.max(1) as f64 / 1000.0;
    let plan = NemesisPlan::new(cfg.faults, interval_secs, node_ids.clone(), nemesis_seed)
        .expect("a positive nemesis interval");
    let mut sim = Sim::<W> {
        cfg,
        node_cfg,
        persistent: W::persistent(node_cfg),
        now: 0,
        net: Net::new(cfg.latency, net_rng),
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
        rr: 0,
        op_waiting: false,
        next_op_at: 0,
        generator: Generator::default(),
        history: Vec::new(),
        op_rng,
        disk_rng,
        sched_rng,
        boot_epoch_us,
        plan,
        nemesis_mode: NemesisMode::Main,
        nemesis_queue: VecDeque::new(),
        nemesis_starting: None,
        phase: Phase::Init,
        setup_left: 0,
        main_start: 0,
        cutoff: 0,
        idle_start: 0,
        final_reads: Vec::new(),
        stats: SimStats::default(),
        violations: Vec::new(),
        trace: Vec::new(),
        scratch: Vec::new(),
    };
    sim.start();
    sim.run_loop();
    sim.finish()
}

impl<W: Workload> Sim<'_, W> {
    // --- scheduling -------------------------------------------------------------------------

    fn at(&mut self, t: u64, ev: Event) {
        self.seq += 1;
        self.events.insert((t.max(self.now), self.seq), ev);
    }

    fn now_ms(&self) -> Millis {
        self.now / MS
    }

    fn uniform_ms(rng: &mut ChaCha8Rng, (lo, hi): (u64, u64)) -> u64 {
        let (lo, hi) = (lo.min(hi) * MS, lo.max(hi) * MS);
        rng.random_range(lo..=hi)
    }

    fn note(&mut self, level: TraceLevel, what: impl FnOnce() -> String) {
        if self.cfg.trace != TraceLevel::Off && level <= self.cfg.trace {
            let line = format!("{:>10.3} ms  {}", self.now as f64 / MS as f64, what());
            self.trace.push(line);
        }
    }

    fn start(&mut self) {
        for i in 0..self.cfg.nodes {
            let id = self.node_ids[i].clone();
            self.net.register_node(&id).expect("fresh node id");
            self.nodes.push(SimNode {
                id,
                proc: Proc::Spawning,
                inc: 0,
                paused: false,
                pipe: VecDeque::new(),
                pipe_bytes: 0,
                pipe_full: false,
                tick_overdue: false,
                tick_at: None,
                flush_overdue: false,
                disk: Vec::new(),
                dirty: false,
                flushing: Vec::new(),
                flush_in_flight: false,
                persisted: 0,
                wedged: false,
            });
            let delay = Self::uniform_ms(&mut self.sched_rng, self.cfg.restart_delay_ms);
            self.at(delay, Event::Boot { node: i, inc: 0 });
        }
        self.setup_left = self.cfg.nodes;
        if self.cfg.nodes == 0 {
            self.abort("no nodes".into());
        }
    }

    fn run_loop(&mut self) {
        while self.phase != Phase::Done {
            self.stats.steps += 1;
            if self.stats.steps > self.cfg.max_events {
                self.abort(format!(
                    "event budget of {} exhausted at {} ms (a node that never goes quiet?)",
                    self.cfg.max_events,
                    self.now_ms()
                ));
                break;
            }
            let t_net = self.net.next_deadline();
            let t_ev = self.events.first_key_value().map(|(k, _)| k.0);
            let deliver_first = match (t_net, t_ev) {
                (Some(a), Some(b)) => a <= b,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if let (true, Some(a)) = (deliver_first, t_net) {
                self.now = self.now.max(a);
                let mut due = std::mem::take(&mut self.scratch);
                self.net.deliver_due(self.now, &mut due);
                for d in due.drain(..) {
                    self.dispatch(d);
                }
                self.scratch = due;
                continue;
            }
            match self.events.pop_first() {
                Some(((t, _), ev)) => {
                    self.now = self.now.max(t);
                    self.event(ev);
                }
                None => {
                    self.abort(format!("nothing left to do in phase {:?}", self.phase));
                }
            }
        }
    }

    fn abort(&mut self, why: String) {
        self.note(TraceLevel::Events, || format!("abort: {why}"));
        self.violations.push(Violation::Aborted(why));
        self.phase = Phase::Done;
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Tick { node, inc } => self.timer(node, inc),
            Event::FlushDone { node, inc } => {
                if self.nodes[node].inc != inc || !self.nodes[node].flush_in_flight {
                    return;
                }
                if self.nodes[node].paused {
                    self.nodes[node].flush_overdue = true;
                } else {
                    self.complete_flush(node);
                }
            }
            Event::Boot { node, inc } => {
                if self.nodes[node].inc == inc && matches!(self.nodes[node].proc, Proc::Spawning) {
                    self.boot(node);
                }
            }
            Event::ClientTimeout { client, msg_id } => {
                let Some(c) = self.clients.get(&client) else {
                    return;
                };
                if c.waiting != Some(msg_id) {
                    return;
                }
                self.client_reply(&client, Reply::Timeout);
            }
            Event::NextOp => {
                if self.phase != Phase::Main || self.now >= self.cutoff {
                    return;
                }
                if !self.issue_op() {
                    self.op_waiting = true;
                }
            }
            Event::Nemesis(op) => {
                if self.phase != Phase::Main {
                    return;
                }
                self.nemesis_step(op);
            }
            Event::MainEnd => {
                self.note(TraceLevel::Events, || "main phase over".into());
                self.phase = Phase::Drain;
                self.op_waiting = false;
                self.maybe_begin_final();
            }
            Event::FinalReads => {
                self.note(TraceLevel::Events, || "final reads".into());
                self.phase = Phase::Final;
                let Some(op) = self.cfg.client.final_op() else {
                    self.begin_idle();
                    return;
                };
                for w in 0..self.workers.len() {
                    self.invoke(w, op.clone(), true);
                }
                if self.workers.is_empty() {
                    self.begin_idle();
                }
            }
            Event::IdleEnd => {
                self.note(TraceLevel::Events, || "idle check over".into());
                self.phase = Phase::Done;
            }
        }
    }

    // --- nodes ------------------------------------------------------------------------------

    /// Runs `f` on node `i`'s host (if its process runs), then sends its outputs, arms its sync
    /// timer sooner if [`Workload::next_tick`] moved sooner, and pokes its flusher: what the
    /// shell does around every call into the host.
    fn step(&mut self, i: usize, f: impl FnOnce(&mut Host<W>, Millis)) {
        let now_ms = self.now_ms();
        let node = &mut self.nodes[i];
        let Proc::Running(host) = &mut node.proc else {
            return;
        };
        let before = host.stats();
        f(host, now_ms);
        let out = host.drain();
        let dropped = host.stats();
        node.dirty = true;
        if let Some(t) = host.next_tick(now_ms) {
            let at = (t * MS).max(self.now);
            if node.tick_at.map_or(true, |armed| at < armed) {
                node.tick_at = Some(at);
                let inc = node.inc;
                self.at(at, Event::Tick { node: i, inc });
            }
        }
        if dropped != before {
            self.note(TraceLevel::Events, || {
                format!("n{i}: the host dropped traffic: {before:?} -> {dropped:?}")
            });
        }
        for m in out {
            let body = match m.body_json() {
                Ok(b) => b,
                Err(e) => {
                    self.note(TraceLevel::Events, || {
                        format!("n{i}: cannot serialise an output: {e}")
                    });
                    continue;
                }
            };
            let kind = body_type(&body).to_string();
            let (src, dest) = (m.src().to_string(), m.dest().to_string());
            self.node_send(i, Packet::new(src, dest, body, kind));
        }
        self.maybe_flush(i);
    }

    /// Sends one line printed by node `i`, unless its output is wedged; a send to an unregistered
    /// id wedges it.
    fn node_send(&mut self, i: usize, packet: Packet) {
        if self.nodes[i].wedged {
            return;
        }
        let between_nodes = !is_client(&packet.src) && !is_client(&packet.dest);
        match self.net.send(self.now, packet) {
            Ok(_) => {
                if between_nodes {
                    self.stats.node_msgs += 1;
                }
            }
            Err(e) => {
                let error = match &e {
                    NetError::UnknownDest { dest, .. } if is_client(dest) => {
                        format!("{e} (a reply to a client that was closed, e.g. after a timeout)")
                    }
                    _ => e.to_string(),
                };
                self.nodes[i].wedged = true;
                let node = self.nodes[i].id.clone();
                self.note(TraceLevel::Events, || format!("{node} wedged: {error}"));
                self.violations.push(Violation::Wedged {
                    node,
                    at_ms: self.now_ms(),
                    error,
                });
            }
        }
    }

    /// The shell's flusher: if it is idle and a handler ran, it takes the records and writes them.
    fn maybe_flush(&mut self, i: usize) {
        if !self.persistent {
            return;
        }
        let node = &mut self.nodes[i];
        if node.flush_in_flight || !node.dirty {
            return;
        }
        node.dirty = false;
        let Proc::Running(host) = &mut node.proc else {
            return;
        };
        let records = host.take_records();
        if records.is_empty() {
            return;
        }
        node.flushing = records;
        node.flush_in_flight = true;
        let inc = node.inc;
        let delay = Self::uniform_ms(&mut self.disk_rng, self.cfg.flush_ms);
        self.at(self.now + delay, Event::FlushDone { node: i, inc });
    }

    fn complete_flush(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.flush_in_flight = false;
        node.flush_overdue = false;
        let batch = std::mem::take(&mut node.flushing);
        let n = batch.len() as u64;
        node.disk.extend(batch);
        node.persisted += n;
        let count = node.persisted;
        self.stats.flushes += 1;
        self.stats.records_durable += n;
        self.note(TraceLevel::Messages, || {
            format!("n{i}: flush of {n} records done ({count} durable)")
        });
        // `call` pokes the flusher again, which takes what piled up during the write.
        self.step(i, |host, now| host.durable(count, now));
    }

    /// The sync timer fired: the shell's sync task wakes and ticks if the workload says it is due.
    fn timer(&mut self, i: usize, inc: u64) {
        let node = &mut self.nodes[i];
        if node.inc != inc || matches!(node.proc, Proc::Down) || node.tick_at != Some(self.now) {
            return;
        }
        node.tick_at = None;
        if node.paused {
            node.tick_overdue = true;
            return;
        }
        self.run_tick(i);
    }

    fn run_tick(&mut self, i: usize) {
        self.nodes[i].tick_overdue = false;
        self.step(i, |host, now| host.tick(now));
    }

    /// A delivery from the network.
    fn dispatch(&mut self, d: Delivery) {
        if is_client(&d.packet.dest) {
            self.client_delivery(d);
            return;
        }
        let Some(&i) = self.index.get(d.packet.dest.as_str()) else {
            return;
        };
        let node = &mut self.nodes[i];
        if matches!(node.proc, Proc::Down) {
            return;
        }
        self.stats.deliveries += 1;
        if node.paused || matches!(node.proc, Proc::Spawning) {
            node.pipe_bytes += d.packet.body.len() + d.packet.src.len() + d.packet.dest.len() + 40;
            node.pipe.push_back(d);
            if node.pipe_bytes >= PIPE_CAPACITY && !node.pipe_full {
                node.pipe_full = true;
                let id = node.id.clone();
                let _ = self.net.set_down(self.now, &id, true);
                self.note(TraceLevel::Events, || {
                    format!("{id}: stdin pipe full while stopped")
                });
            }
            return;
        }
        self.node_receive(i, d);
    }

    /// Node `i` reads everything in its pipe; then its network queue flows again.
    fn drain_pipe(&mut self, i: usize) {
        while let Some(d) = self.nodes[i].pipe.pop_front() {
            self.node_receive(i, d);
        }
        self.nodes[i].pipe_bytes = 0;
        if self.nodes[i].pipe_full {
            self.nodes[i].pipe_full = false;
            let id = self.nodes[i].id.clone();
            let _ = self.net.set_down(self.now, &id, false);
        }
    }

    /// Node `i`'s shell reads one stdin line.
    fn node_receive(&mut self, i: usize, d: Delivery) {
        let line = d.packet.line(d.id);
        self.note(TraceLevel::Messages, || format!("deliver {line}"));
        let inbound = match parse_line::<W::Msg>(&line) {
            Ok(x) => x,
            Err(e) => {
                self.note(TraceLevel::Events, || format!("n{i}: skipped: {e}"));
                return;
            }
        };
        let recovered = self.nodes[i].disk.clone();
        let boot_unix_micros = self.boot_epoch_us + self.now / 1_000;
        let mut initialised = None;
        self.step(i, |host, now| {
            if let Some(request) = host.receive(now, inbound) {
                let records = recovered.len();
                host.init(now, request, Ok(recovered), boot_unix_micros);
                initialised = Some(records);
            }
        });
        if let Some(n_rec) = initialised {
            self.stats.records_recovered += n_rec as u64;
            let node = &mut self.nodes[i];
            node.persisted = 0;
            let (inc, id) = (node.inc, node.id.clone());
            self.note(TraceLevel::Events, || {
                format!("{id}: init (incarnation {inc}, {n_rec} records recovered)")
            });
        }
    }

    /// A process starts: its shell's host begins (and with it the client guard), it reads what
    /// piled up in its pipe since the network restarted its queue, and it is sent `init`.
    fn boot(&mut self, i: usize) {
        let now_ms = self.now_ms();
        let shell = self.cfg.shell;
        let (stall_ms, deadline_ms) = if shell.client_guard {
            (shell.stall_ms, shell.reply_deadline_ms)
        } else {
            (0, 0)
        };
        let node = &mut self.nodes[i];
        node.proc = Proc::Running(Box::new(Host::new(
            self.node_cfg.clone(),
            stall_ms,
            deadline_ms,
            now_ms,
        )));
        if !node.paused {
            self.drain_pipe(i);
        }
        let client = self.open_client(Purpose::Init(i));
        let body = json!({
            "type": "init",
            "node_id": self.node_ids[i],
            "node_ids": self.node_ids,
        });
        self.client_send(&client, i, body, INIT_TIMEOUT_MS);
    }

    fn kill(&mut self, i: usize) {
        let torn = self.cfg.torn_flushes;
        let node = &mut self.nodes[i];
        if matches!(node.proc, Proc::Down) {
            return;
        }
        let mut kept = 0;
        if node.flush_in_flight && torn {
            kept = self.disk_rng.random_range(0..=node.flushing.len());
            node.disk.extend(node.flushing.drain(..kept));
        }
        let lost = node.flushing.len();
        self.stats.records_durable += kept as u64;
        self.stats.records_lost += lost as u64;
        node.flushing.clear();
        node.flush_in_flight = false;
        node.flush_overdue = false;
        node.tick_overdue = false;
        node.tick_at = None;
        node.dirty = false;
        if let Proc::Running(host) = &node.proc {
            self.stats.add_host(host.stats());
        }
        node.proc = Proc::Down;
        node.inc += 1;
        node.paused = false;
        node.pipe.clear();
        node.pipe_bytes = 0;
        node.pipe_full = false;
        node.wedged = false;
        node.persisted = 0;
        let id = node.id.clone();
        let _ = self.net.set_down(self.now, &id, true);
        self.stats.kills += 1;
        self.note(TraceLevel::Events, || {
            format!("{id}: killed ({lost} records of its flush in flight lost, {kept} kept)")
        });
    }

    /// Restarts node `i` if it is down; returns whether it did.
    fn restart(&mut self, i: usize) -> bool {
        if !matches!(self.nodes[i].proc, Proc::Down) {
            return false;
        }
        let id = self.nodes[i].id.clone();
        let discarded = self.net.restart(self.now, &id).unwrap_or(0);
        self.stats.discarded_at_restart += discarded as u64;
        self.stats.restarts += 1;
        self.nodes[i].proc = Proc::Spawning;
        let inc = self.nodes[i].inc;
        let delay = Self::uniform_ms(&mut self.sched_rng, self.cfg.restart_delay_ms);
        self.at(self.now + delay, Event::Boot { node: i, inc });
        self.note(TraceLevel::Events, || {
            format!("{id}: restarting ({discarded} piled-up messages discarded)")
        });
        true
    }

    fn pause(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if matches!(node.proc, Proc::Down) || node.paused {
            return;
        }
        node.paused = true;
        self.stats.pauses += 1;
        let id = node.id.clone();
        self.note(TraceLevel::Events, || format!("{id}: paused"));
    }

    fn resume(&mut self, i: usize) {
        if !self.nodes[i].paused {
            return;
        }
        self.nodes[i].paused = false;
        let id = self.nodes[i].id.clone();
        let piped = self.nodes[i].pipe.len();
        self.note(TraceLevel::Events, || {
            format!("{id}: resumed ({piped} messages in its pipe)")
        });
        // The shell sees the SIGCONT flag before it handles anything.
        let now_ms = self.now_ms();
        let Proc::Running(host) = &mut self.nodes[i].proc else {
            return; // the process is not running yet: its start reads the pipe
        };
        let stalled = host.resumed(now_ms);
        self.note(TraceLevel::Events, || {
            format!("{id}: client guard told of the resume (idle or stopped {stalled} ms)")
        });
        // Then its tasks race: overdue tick, piped lines, flush completion, in a seeded order.
        let mut order = [0u8, 2, 3];
        for k in (1..order.len()).rev() {
            let j = self.sched_rng.random_range(0..=k);
            order.swap(k, j);
        }
        for step in order {
            match step {
                0 if self.nodes[i].tick_overdue => self.run_tick(i),
                2 => self.drain_pipe(i),
                3 if self.nodes[i].flush_overdue => self.complete_flush(i),
                _ => {}
            }
        }
    }

    // --- clients ----------------------------------------------------------------------------

    fn open_client(&mut self, purpose: Purpose) -> String {
        let id = format!("c{}", self.next_client);
        self.next_client += 1;
        self.net.register_client(&id).expect("fresh client id");
        self.clients.insert(
            id.clone(),
            SimClient {
                purpose,
                next_msg_id: 1,
                waiting: None,
            },
        );
        id
    }

    fn close_client(&mut self, id: &str) {
        self.clients.remove(id);
        let _ = self.net.deregister(self.now, id);
    }

    fn client_send(&mut self, client: &str, node: usize, mut body: Value, timeout_ms: u64) {
        let c = self.clients.get_mut(client).expect("open client");
        let msg_id = c.next_msg_id;
        c.next_msg_id += 1;
        c.waiting = Some(msg_id);
        body["msg_id"] = json!(msg_id);
        let packet = Packet::from_value(client, &self.node_ids[node], &body);
        if self.net.send(self.now, packet).is_err() {
            return; // cannot happen: both ends are registered; the timeout fires
        }
        self.at(
            self.now + timeout_ms * MS,
            Event::ClientTimeout {
                client: client.to_string(),
                msg_id,
            },
        );
    }

    fn client_delivery(&mut self, d: Delivery) {
        let Some(c) = self.clients.get(&d.packet.dest) else {
            return;
        };
        let Some(waiting) = c.waiting else {
            return;
        };
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&d.packet.body) else {
            return;
        };
        let irt = body.get("in_reply_to");
        if irt.and_then(Value::as_u64) != Some(waiting) || irt.is_some_and(Value::is_f64) {
            return; // not the reply we wait for: consumed and discarded (spec §1)
        }
        self.client_reply(&d.packet.dest, Reply::Body(body));
    }

    fn client_reply(&mut self, client: &str, reply: Reply) {
        let c = self.clients.get_mut(client).expect("open client");
        c.waiting = None;
        match c.purpose {
            Purpose::Init(node) => {
                self.close_client(client);
                self.init_done(node, reply);
            }
            Purpose::Topology(node) => {
                self.close_client(client);
                let ok = match &reply {
                    Reply::Body(b) => crate::workload::check_topology_ok(b)
                        .map_err(|e| format!("{e}: {}", Value::Object(b.clone()))),
                    Reply::Timeout => Err("no answer within the client timeout".into()),
                };
                match ok {
                    Ok(()) => {
                        self.setup_left -= 1;
                        if self.setup_left == 0 {
                            self.begin_main();
                        }
                    }
                    Err(e) => self.abort(format!(
                        "{} answered topology badly: {e}",
                        self.node_ids[node]
                    )),
                }
            }
            Purpose::Worker(w) => self.worker_done(w, reply),
        }
    }

    fn init_done(&mut self, node: usize, reply: Reply) {
        let ok = matches!(&reply, Reply::Body(b) if b.get("type").and_then(Value::as_str) == Some("init_ok"));
        if !ok {
            let what = match reply {
                Reply::Body(b) => format!("answered init with {}", Value::Object(b)),
                Reply::Timeout => format!("did not answer init within {INIT_TIMEOUT_MS} ms"),
            };
            if self.phase == Phase::Init {
                self.abort(format!("init-failed: {} {what}", self.node_ids[node]));
                return;
            }
            self.violations.push(Violation::InitFailed {
                node: self.node_ids[node].clone(),
                at_ms: self.now_ms().saturating_sub(INIT_TIMEOUT_MS),
            });
        }
        if self.phase == Phase::Init {
            self.setup_left -= 1;
            if self.setup_left == 0 {
                self.begin_setup();
            }
            return;
        }
        if let Some((_, waiting, started)) = &mut self.nemesis_starting {
            waiting.remove(&node);
            if ok {
                started.push(self.node_ids[node].clone());
            }
            if waiting.is_empty() {
                let (op, _, mut started) = self.nemesis_starting.take().expect("present");
                started.sort_by_key(|id| self.index[id]);
                // As the runner records it: the nodes actually restarted.
                self.nemesis_complete(op, json!(["started", started]));
            }
        }
    }

    fn begin_setup(&mut self) {
        self.phase = Phase::Setup;
        self.note(TraceLevel::Events, || "all nodes initialised".into());
        if !self.cfg.client.sends_topology() {
            self.begin_main();
            return;
        }
        let topo = topology::to_json(&topology::build(self.cfg.topology, &self.node_ids));
        self.setup_left = self.cfg.nodes;
        for i in 0..self.cfg.nodes {
            let client = self.open_client(Purpose::Topology(i));
            let body = json!({"type": "topology", "topology": topo});
            self.client_send(&client, i, body, self.cfg.client_timeout_ms);
        }
    }

    fn begin_main(&mut self) {
        self.phase = Phase::Main;
        self.main_start = self.now;
        self.cutoff = self.now + self.cfg.time_limit_ms * MS;
        self.note(TraceLevel::Events, || "main phase".into());
        for t in 0..self.cfg.concurrency {
            let client = self.open_client(Purpose::Worker(t));
            self.workers.push(Worker {
                node: t % self.cfg.nodes,
                client,
                process: t as u64,
                busy: None,
            });
        }
        self.at(self.cutoff, Event::MainEnd);
        if self.cfg.rate > 0.0 && !self.workers.is_empty() {
            self.next_op_at = self.main_start + self.gap();
            if self.next_op_at < self.cutoff {
                self.at(self.next_op_at, Event::NextOp);
            }
        }
        self.nemesis_next();
    }

    /// `stagger(1/rate)`: uniform in [0, 2/rate) s, in ns.
    fn gap(&mut self) -> u64 {
        (self.op_rng.random_range(0.0..(2.0 / self.cfg.rate)) * 1e9) as u64
    }

    /// Issues the next op on a free worker (round robin); false if none is free.
    fn issue_op(&mut self) -> bool {
        let n = self.workers.len();
        let Some(t) = (0..n)
            .map(|k| (self.rr + k) % n)
            .find(|&t| self.workers[t].busy.is_none())
        else {
            return false;
        };
        self.rr = (t + 1) % n;
        let op = self
            .cfg
            .client
            .next_op(&mut self.generator, &mut self.op_rng);
        self.invoke(t, op, false);
        self.next_op_at = self.next_op_at.max(self.now) + self.gap();
        if self.next_op_at < self.cutoff {
            self.at(self.next_op_at, Event::NextOp);
        }
        true
    }

    fn invoke(&mut self, w: usize, op: OpSpec, final_: bool) {
        let process = self.workers[w].process;
        self.record(
            OpType::Invoke,
            Process::Client(process),
            op.f,
            op.value.clone(),
            None,
            final_,
        );
        self.stats.client_ops += 1;
        let body = self.cfg.client.request(&op);
        let (client, node) = (self.workers[w].client.clone(), self.workers[w].node);
        self.workers[w].busy = Some((op, final_));
        self.client_send(&client, node, body, self.cfg.client_timeout_ms);
    }

    fn worker_done(&mut self, w: usize, reply: Reply) {
        let (op, final_) = self.workers[w].busy.take().expect("busy worker");
        let completion = self.cfg.client.complete(&op, &reply);
        let process = self.workers[w].process;
        self.history.push(Op {
            index: self.history.len(),
            time: self.now,
            kind: completion.kind,
            process: Process::Client(process),
            f: op.f.to_string(),
            value: completion.value.clone(),
            error: completion.error.clone(),
            exception: completion.exception.clone(),
            final_,
        });
        if final_ {
            let outcome = match (&completion.kind, &completion.value) {
                (OpType::Ok, Value::Array(vs)) => Ok(vs.clone()),
                (kind, _) => Err(format!(
                    "{kind:?} {}",
                    completion
                        .error
                        .as_ref()
                        .map(Value::to_string)
                        .or(completion.exception.clone())
                        .unwrap_or_default()
                )),
            };
            self.final_reads.push(FinalRead {
                node: self.workers[w].node,
                outcome,
            });
        }
        if completion.kind == OpType::Info {
            self.workers[w].process += self.workers.len() as u64;
            if !self.cfg.client.reusable_client() {
                let old = self.workers[w].client.clone();
                self.close_client(&old);
                self.workers[w].client = self.open_client(Purpose::Worker(w));
            }
        }
        match self.phase {
            Phase::Main if self.op_waiting && self.now < self.cutoff => {
                self.op_waiting = false;
                self.issue_op();
            }
            Phase::Drain => self.maybe_begin_final(),
            Phase::Final if self.workers.iter().all(|w| w.busy.is_none()) => self.begin_idle(),
            _ => {}
        }
    }

    fn record(
        &mut self,
        kind: OpType,
        process: Process,
        f: &str,
        value: Value,
        error: Option<Value>,
        final_: bool,
    ) {
        self.history.push(Op {
            index: self.history.len(),
            time: self.now,
            kind,
            process,
            f: f.to_string(),
            value,
            error,
            exception: None,
            final_,
        });
    }

    // --- nemesis ----------------------------------------------------------------------------

    /// Asks the plan for the next main-phase op (the nemesis just became free).
    fn nemesis_next(&mut self) {
        if self.nemesis_mode != NemesisMode::Main || self.phase != Phase::Main {
            return;
        }
        if let Some((due, op)) = self.plan.next(self.now - self.main_start) {
            let at = self.main_start + due;
            if at < self.cutoff {
                self.at(at, Event::Nemesis(op));
            }
        }
    }

    fn nemesis_step(&mut self, op: NemesisOp) {
        self.record(
            OpType::Info,
            Process::Nemesis,
            op.f(),
            op.invoke_value(),
            None,
            false,
        );
        self.note(TraceLevel::Events, || {
            let what = match &op {
                NemesisOp::StartPartition(p) => p.description.to_string(),
                NemesisOp::StopPartition => String::new(),
                _ => format!("{:?}", op.nodes()),
            };
            format!("nemesis {} {} {what}", op.f(), op.invoke_value())
        });
        let targets: Vec<usize> = op
            .nodes()
            .iter()
            .filter_map(|n| self.index.get(n).copied())
            .collect();
        match &op {
            NemesisOp::StartPartition(p) => {
                self.net.set_grudge(self.now, p.grudge.clone());
                self.stats.partitions += 1;
            }
            NemesisOp::StopPartition => self.net.heal(self.now),
            NemesisOp::Kill { .. } => targets.iter().for_each(|&i| self.kill(i)),
            NemesisOp::Pause { .. } => targets.iter().for_each(|&i| self.pause(i)),
            NemesisOp::Resume { .. } => targets.iter().for_each(|&i| self.resume(i)),
            NemesisOp::Start { .. } => {
                let started: BTreeSet<usize> =
                    targets.into_iter().filter(|&i| self.restart(i)).collect();
                if !started.is_empty() {
                    self.nemesis_starting = Some((op, started, Vec::new()));
                    return; // completes when they answer init
                }
            }
        }
        let value = match op {
            NemesisOp::Start { .. } => json!(["started", []]),
            _ => op.completion_value(),
        };
        self.nemesis_complete(op, value);
    }

    fn nemesis_complete(&mut self, op: NemesisOp, value: Value) {
        self.record(OpType::Info, Process::Nemesis, op.f(), value, None, false);
        match self.nemesis_mode {
            NemesisMode::Main if self.phase == Phase::Main => self.nemesis_next(),
            NemesisMode::Main => self.maybe_begin_final(),
            NemesisMode::Final => self.nemesis_final_next(),
        }
    }

    /// Enters the final phase once the main phase is over, every worker is idle and the nemesis is
    /// free.
    fn maybe_begin_final(&mut self) {
        if self.phase != Phase::Drain
            || self.nemesis_starting.is_some()
            || self.workers.iter().any(|w| w.busy.is_some())
        {
            return;
        }
        self.phase = Phase::Recovery;
        self.nemesis_mode = NemesisMode::Final;
        self.nemesis_queue = self.plan.final_ops().into();
        self.note(TraceLevel::Events, || "final nemesis ops".into());
        self.nemesis_final_next();
    }

    fn nemesis_final_next(&mut self) {
        match self.nemesis_queue.pop_front() {
            Some(op) => self.nemesis_step(op),
            None => {
                if self.cfg.client.has_final_phase() {
                    self.at(self.now + self.cfg.recovery_ms * MS, Event::FinalReads);
                } else {
                    self.begin_idle();
                }
            }
        }
    }

    fn begin_idle(&mut self) {
        self.phase = Phase::Idle;
        self.idle_start = self.now;
        self.note(TraceLevel::Events, || "idle check".into());
        self.at(self.now + self.cfg.idle_check_ms * MS, Event::IdleEnd);
    }

    // --- verdict ----------------------------------------------------------------------------

    fn finish(mut self) -> SimOutcome {
        self.stats.virtual_ms = self.now_ms();
        for node in &self.nodes {
            if let Proc::Running(host) = &node.proc {
                self.stats.add_host(host.stats());
            }
        }
        self.stats.partition_drops = self.net.dropped_count();
        let journal = self.net.take_journal();
        let aborted = self
            .violations
            .iter()
            .any(|v| matches!(v, Violation::Aborted(_)));

        // Idle: no node-to-node sends once the final reads are done.
        if !aborted {
            let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
            for e in journal.iter().filter(|e| {
                e.kind == JournalKind::Send
                    && e.time >= self.idle_start
                    && !is_client(&e.src)
                    && !is_client(&e.dest)
            }) {
                *by_type.entry(e.body_type.clone()).or_default() += 1;
            }
            let count: u64 = by_type.values().sum();
            self.stats.idle_node_msgs = count;
            if count > 0 {
                self.violations.push(Violation::Chatty {
                    count,
                    by_type: by_type.into_iter().collect(),
                });
            }
        }

        let mut set_full_result = None;
        if self.cfg.client == ClientWorkload::Broadcast {
            // Acknowledged values, keyed by their JSON text (Clojure equality: 1 ≠ 1.0).
            let acked: BTreeMap<String, Value> = self
                .history
                .iter()
                .filter(|o| o.is_client() && o.kind == OpType::Ok && o.f == "broadcast")
                .map(|o| (o.value.to_string(), o.value.clone()))
                .collect();
            self.stats.acked = acked.len() as u64;
            if !aborted {
                for r in &self.final_reads {
                    let node = self.node_ids[r.node].clone();
                    self.stats.final_reads += 1;
                    match &r.outcome {
                        Ok(vs) => {
                            self.stats.values_checked += acked.len() as u64;
                            let have: BTreeSet<String> = vs.iter().map(Value::to_string).collect();
                            let missing: Vec<Value> = acked
                                .iter()
                                .filter(|(k, _)| !have.contains(*k))
                                .map(|(_, v)| v.clone())
                                .collect();
                            if !missing.is_empty() {
                                self.violations.push(Violation::Missing {
                                    node,
                                    missing,
                                    acked: acked.len(),
                                });
                            }
                        }
                        Err(outcome) => self.violations.push(Violation::FinalReadFailed {
                            node,
                            outcome: outcome.clone(),
                        }),
                    }
                }
            }
            let result = set_full::check(&self.history);
            if result.lost_count > 0 {
                self.violations.push(Violation::Lost {
                    lost: result.lost.clone(),
                    lost_count: result.lost_count,
                });
            }
            set_full_result = Some(result);
        }

        SimOutcome {
            config: self.cfg.clone(),
            history: self.history,
            journal,
            set_full: set_full_result,
            stats: self.stats,
            violations: self.violations,
            trace: self.trace,
        }
    }
}

/// The `type` of a compact body serialised by serde from a [`murmur::wire::Body`]: the first
/// `"type":"…"` in the text. A JSON string cannot contain an unescaped `"`, and the payload's tag
/// comes before any nested object (`msg_id` and `in_reply_to` are scalars), so the first match is
/// the body's own. Empty if there is none.
fn body_type(body: &str) -> &str {
    const KEY: &str = "\"type\":\"";
    body.find(KEY)
        .map(|at| &body[at + KEY.len()..])
        .and_then(|rest| rest.find('"').map(|end| &rest[..end]))
        .unwrap_or("")
}

/// FNV-1a, 64 bit.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, buf: &[u8]) {
        for &b in buf {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A string and a terminator, so that ("ab", "c") and ("a", "bc") differ.
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
        self.bytes(&[0xff]);
    }
}

impl std::io::Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn body_type_is_the_tag() {
        assert_eq!(
            body_type(r#"{"msg_id":3,"type":"gossip","values":[{"type":"x"}]}"#),
            "gossip"
        );
        assert_eq!(
            body_type(r#"{"in_reply_to":1,"type":"read_ok","messages":[]}"#),
            "read_ok"
        );
        assert_eq!(body_type(r#"{"msg_id":1}"#), "");
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

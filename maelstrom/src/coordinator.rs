//! The run order both drivers follow, as logic without I/O: the real-time driver
//! ([`crate::run`], threads and real processes) and the simulator ([`crate::sim`], virtual time)
//! each call these pieces instead of keeping their own copies, so that one test replays the same
//! ops, latencies and faults from one seed and applies a nemesis op the same way in both.
//!
//! The run order is Maelstrom's (<https://github.com/jepsen-io/maelstrom/tree/main/doc>):
//! 1. **Init.** Every node is sent `init` by its own client and must answer within
//!    [`INIT_TIMEOUT_MS`].
//! 2. **Setup.** One setup client per node sends `topology`, if the client workload sends one.
//! 3. **Main.** For `--time-limit`, client ops are staggered at `--rate` ([`OpSchedule`]) onto
//!    free workers, round robin, each with a [`CLIENT_TIMEOUT_MS`] timeout; the nemesis runs its
//!    plan on its own schedule ([`next_nemesis_op`], [`apply_nemesis`]).
//! 4. **Drain.** In-flight ops complete or time out.
//! 5. **Final.** The plan's final nemesis ops heal, resume and restart everything; after
//!    [`RECOVERY_MS`], every worker performs the workload's final op.
//!
//! What stays in each driver, because it is genuinely different there:
//! - *Waiting.* The real-time driver sleeps, polls channels and checks for crashed nodes; the
//!   simulator schedules events on its virtual clock. Neither shape fits the other, so each
//!   driver keeps its own loop and only asks [`OpSchedule`] and [`next_nemesis_op`] what is due.
//! - *Restarts.* A real `start` spawns each killed node and blocks on its `init_ok` before the
//!   next one ([`Started::Now`]); a simulated restart boots after a seeded delay, so its op
//!   completes later, when the last restarted node answers `init` ([`Started::Later`]).
//! - *The final phase's scope.* The real-time driver runs the final nemesis ops only for
//!   workloads with a final op; the simulator runs them for every workload, since its idle check
//!   needs a healed network.
//! - *Durations.* The simulator takes recovery and client timeouts from its config (defaulting to
//!   the constants here), since its tests shorten them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::nemesis::{NemesisOp, NemesisPlan, Partition};
use crate::workload::kafka::{self, FinalThread};
use crate::workload::{ClientWorkload, Completion, Generator, OpSpec, Slot, TxnOpts};

/// `init` must be answered within this (Maelstrom's `db.clj`), in ms.
pub const INIT_TIMEOUT_MS: u64 = 10_000;
/// Maelstrom's client RPC timeout (`client.clj`), in ms.
pub const CLIENT_TIMEOUT_MS: u64 = 5_000;
/// The quiet period between the final nemesis ops and the final ops (`core.clj`, "Waiting for
/// recovery..."), in ms.
pub const RECOVERY_MS: u64 = 10_000;

/// The random streams of one run, all derived from its seed in one fixed order: network
/// latencies, client ops, the nemesis plan, then (used by the simulator alone) the disk,
/// scheduling and the nodes' boot clock, then the services' randomness. Each stream is a [`ChaCha8Rng`] seeded by the next
/// `u64` of a root stream seeded with the run's seed, so adding a consumer at the end leaves the
/// earlier streams, and therefore replays of old seeds, unchanged.
pub struct Seeds {
    /// Message latencies ([`crate::net::Net`]).
    pub net: ChaCha8Rng,
    /// Client ops and the gaps between them ([`OpSchedule`]).
    pub ops: ChaCha8Rng,
    /// The seed of the [`NemesisPlan`].
    pub nemesis: u64,
    /// Simulated flush delays and torn flushes.
    pub disk: ChaCha8Rng,
    /// Simulated process start-up delays and resume orders.
    pub sched: ChaCha8Rng,
    /// The simulated nodes' boot clock: some moment in 2023–2025, in µs since the Unix epoch.
    pub boot_epoch_us: u64,
    /// `seq-kv`'s stale reads and `lww-kv`'s replica choice ([`crate::services::Services`]).
    pub services: ChaCha8Rng,
}

impl Seeds {
    pub fn derive(seed: u64) -> Seeds {
        let mut root = ChaCha8Rng::seed_from_u64(seed);
        let net = ChaCha8Rng::seed_from_u64(root.random());
        let ops = ChaCha8Rng::seed_from_u64(root.random());
        let nemesis = root.random();
        let disk = ChaCha8Rng::seed_from_u64(root.random());
        let sched = ChaCha8Rng::seed_from_u64(root.random());
        let boot_epoch_us = 1_680_000_000_000_000 + root.random_range(0..60_000_000_000_000u64);
        let services = ChaCha8Rng::seed_from_u64(root.random());
        Seeds {
            net,
            ops,
            nemesis,
            disk,
            sched,
            boot_epoch_us,
            services,
        }
    }
}

/// The gap before the next client op, in ns: Jepsen's `stagger(1/rate)`, uniform in
/// [0, 2/rate) s. `u64::MAX` (never) if `rate` is not positive; then nothing is drawn.
pub fn op_gap(rng: &mut ChaCha8Rng, rate: f64) -> u64 {
    if rate <= 0.0 {
        u64::MAX
    } else {
        (rng.random_range(0.0..(2.0 / rate)) * 1e9) as u64
    }
}

/// When the next client op is due and which worker gets it: ops staggered at `rate`
/// ([`op_gap`]), each handed to the first free worker after the last one used, round robin.
pub struct OpSchedule {
    rate: f64,
    next_at: u64,
    rr: usize,
    generator: Generator,
    main_start: u64,
    /// kafka: when the next client crash takes an op's place (drawn at the first op).
    crash_at: Option<u64>,
}

impl OpSchedule {
    /// The main phase starts at `main_start` (ns) with `workers` workers. With no workers or no
    /// rate, no op is ever due and nothing is drawn from `rng`.
    pub fn start(rate: f64, workers: usize, main_start: u64, rng: &mut ChaCha8Rng) -> OpSchedule {
        let rate = if workers == 0 { 0.0 } else { rate };
        OpSchedule {
            rate,
            next_at: main_start.saturating_add(op_gap(rng, rate)),
            rr: 0,
            generator: Generator::default(),
            main_start,
            crash_at: None,
        }
    }

    /// Tells the generator the node count (lin-kv groups its workers by it).
    #[must_use]
    pub fn for_nodes(mut self, nodes: usize) -> OpSchedule {
        self.generator = Generator::for_nodes(nodes);
        self
    }

    /// Tells the generator the txn workloads' flags.
    #[must_use]
    pub fn with_txn(mut self, opts: TxnOpts) -> OpSchedule {
        self.generator = std::mem::take(&mut self.generator).with_txn(opts);
        self
    }

    /// When the next op is due (ns); `u64::MAX` if never.
    pub fn next_at(&self) -> u64 {
        self.next_at
    }

    /// At `now` (an op is due): picks the first worker at or after the round-robin position for
    /// which `free` holds, generates its op (for that worker and its current `process`) and
    /// moves the next op's time on by a gap. `None` (nothing drawn, nothing moved) if every
    /// worker is busy: the op waits for one.
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &mut self,
        now: u64,
        workers: usize,
        free: impl Fn(usize) -> bool,
        process: impl Fn(usize) -> u64,
        workload: ClientWorkload,
        rng: &mut ChaCha8Rng,
    ) -> Option<(usize, OpSpec)> {
        let t = (0..workers)
            .map(|k| (self.rr + k) % workers)
            .find(|&t| free(t))?;
        self.rr = (t + 1) % workers;
        let slot = Slot {
            thread: t,
            threads: workers,
            process: process(t),
        };
        let crash_at = match (workload, self.crash_at) {
            (ClientWorkload::Kafka, None) => {
                Some(self.main_start + kafka::crash_gap_ns(rng, workers))
            }
            (_, at) => at,
        };
        self.crash_at = crash_at;
        let op = match crash_at {
            Some(at) if now >= at => {
                self.crash_at = Some(now + kafka::crash_gap_ns(rng, workers));
                OpSpec {
                    f: "crash",
                    value: Value::Null,
                }
            }
            _ => workload.next_op(&mut self.generator, rng, slot),
        };
        self.next_at = self.next_at.max(now).saturating_add(op_gap(rng, self.rate));
        Some((t, op))
    }
}

impl OpSchedule {
    /// Tells the generator of a completion (kafka's generator follows what was sent and polled).
    pub fn observe(&mut self, workload: ClientWorkload, f: &str, c: &Completion) {
        if workload == ClientWorkload::Kafka {
            self.generator.kafka.observe(f, c);
        }
    }

    /// One worker's final ops, for a final phase beginning at `start` (ns).
    pub fn final_ops(&self, workload: ClientWorkload, start: u64) -> FinalOps {
        match workload {
            ClientWorkload::Kafka => FinalOps::Kafka(FinalThread::new(
                self.generator.kafka.max_offsets.clone(),
                start,
            )),
            w => FinalOps::Once(w.final_op()),
        }
    }
}

/// What one worker does in the final phase: one final read, or kafka's crash, assign and polls
/// until caught up ([`FinalThread`]).
#[derive(Debug)]
pub enum FinalOps {
    Once(Option<OpSpec>),
    Kafka(FinalThread),
}

impl FinalOps {
    /// The worker is free at `now` (ns): how long to wait, then which op to invoke; `None` when
    /// the worker is done.
    pub fn next(&mut self, now: u64, rng: &mut ChaCha8Rng) -> Option<(u64, OpSpec)> {
        match self {
            FinalOps::Once(op) => op.take().map(|op| (0, op)),
            FinalOps::Kafka(t) => t.next(now, rng),
        }
    }

    /// Whether an op due at `now` may still be invoked (kafka's final polls stop after 10 s).
    pub fn open(&self, now: u64) -> bool {
        match self {
            FinalOps::Once(_) => true,
            FinalOps::Kafka(t) => t.open(now),
        }
    }

    /// Learns from this worker's completion.
    pub fn observe(&mut self, f: &str, c: &Completion) {
        if let FinalOps::Kafka(t) = self {
            t.observe(f, c);
        }
    }
}

/// A worker's process id after an `info` op: a fresh one, `concurrency` further on (Jepsen's
/// process numbering: thread t runs processes t, t + concurrency, …).
pub fn process_after_info(process: u64, concurrency: usize) -> u64 {
    process + concurrency as u64
}

/// The nemesis is free at `now` (ns): its plan's next op and the time it is due, if that is
/// before the main phase's `cutoff`. The plan counts time from `main_start`.
pub fn next_nemesis_op(
    plan: &mut NemesisPlan,
    now: u64,
    main_start: u64,
    cutoff: u64,
) -> Option<(u64, NemesisOp)> {
    let (due, op) = plan.next(now - main_start)?;
    let at = main_start + due;
    (at < cutoff).then_some((at, op))
}

/// What a `start` did.
pub enum Started {
    /// The nodes were restarted and answered `init` (or failed to); these answered, in order.
    Now(Vec<String>),
    /// Restarts are under way; the driver records the completion ([`started_value`]) once the
    /// restarted nodes have answered `init`.
    Later,
}

/// The actions a nemesis op maps onto, implemented by each driver on its network and nodes.
/// Targets are node ids; actions on nodes that are not in a state to take them (killing a dead
/// node, resuming a running one) do nothing.
pub trait NemesisActions {
    /// Appends a nemesis `info` op with `op`'s `f` and `value` to the history.
    fn record_nemesis(&mut self, op: &NemesisOp, value: Value);
    /// Told of each op once its invocation is recorded, before any action (for logs).
    fn announce(&mut self, _op: &NemesisOp) {}
    fn install_grudge(&mut self, partition: &Partition);
    fn heal(&mut self);
    fn kill_node(&mut self, node: &str);
    fn pause_node(&mut self, node: &str);
    fn resume_node(&mut self, node: &str);
    /// Restarts the killed nodes among `nodes` and sends them `init`.
    fn start_nodes(&mut self, nodes: &[String]) -> Started;
}

/// Performs one nemesis op: records its invocation, applies it, and returns its completion
/// value, which the driver records ([`NemesisActions::record_nemesis`]) when it has finished its
/// own bookkeeping; `None` if it completes later ([`Started::Later`]).
pub fn apply_nemesis<A: NemesisActions + ?Sized>(a: &mut A, op: &NemesisOp) -> Option<Value> {
    apply_nemesis_as(a, op, op.invoke_value())
}

/// [`apply_nemesis`] with the invocation recorded with `invocation` instead of the op's own
/// value: a fault injected by hand from the live dashboard records the nodes it chose
/// (`["n1"]`), where Jepsen's values name a spec (`"one"`, `"all"`) that would not say which.
pub fn apply_nemesis_as<A: NemesisActions + ?Sized>(
    a: &mut A,
    op: &NemesisOp,
    invocation: Value,
) -> Option<Value> {
    a.record_nemesis(op, invocation);
    a.announce(op);
    match op {
        NemesisOp::StartPartition(p) => a.install_grudge(p),
        NemesisOp::StopPartition => a.heal(),
        NemesisOp::Kill { nodes, .. } => nodes.iter().for_each(|n| a.kill_node(n)),
        NemesisOp::Pause { nodes, .. } => nodes.iter().for_each(|n| a.pause_node(n)),
        NemesisOp::Resume { nodes } => nodes.iter().for_each(|n| a.resume_node(n)),
        NemesisOp::Start { nodes } => {
            return match a.start_nodes(nodes) {
                Started::Now(started) => Some(started_value(&started)),
                Started::Later => None,
            }
        }
    }
    Some(op.completion_value())
}

/// A `start`'s completion value: the nodes actually restarted, `["started", [ids…]]`.
pub fn started_value(started: &[String]) -> Value {
    json!(["started", started])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_fixed_per_seed() {
        let (mut a, mut b) = (Seeds::derive(7), Seeds::derive(7));
        assert_eq!(a.nemesis, b.nemesis);
        assert_eq!(a.boot_epoch_us, b.boot_epoch_us);
        assert_eq!(a.ops.random::<u64>(), b.ops.random::<u64>());
        assert_ne!(Seeds::derive(8).nemesis, a.nemesis);
    }

    #[test]
    fn gaps_stay_below_two_periods() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..1000 {
            assert!(op_gap(&mut rng, 10.0) < 200_000_000);
        }
        assert_eq!(op_gap(&mut rng, 0.0), u64::MAX);
    }

    #[test]
    fn ops_go_round_robin_to_free_workers() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = OpSchedule::start(10.0, 3, 0, &mut rng);
        let w = ClientWorkload::Broadcast;
        let first = s.next_at();
        assert!(first < 200_000_000);
        assert_eq!(
            s.issue(first, 3, |_| true, |t| t as u64, w, &mut rng)
                .unwrap()
                .0,
            0
        );
        assert!(s.next_at() >= first);
        assert_eq!(
            s.issue(first, 3, |t| t != 1, |t| t as u64, w, &mut rng)
                .unwrap()
                .0,
            2
        );
        assert_eq!(
            s.issue(first, 3, |_| true, |t| t as u64, w, &mut rng)
                .unwrap()
                .0,
            0
        );
        let at = s.next_at();
        assert!(s
            .issue(at, 3, |_| false, |t| t as u64, w, &mut rng)
            .is_none());
        assert_eq!(s.next_at(), at);
        let none = OpSchedule::start(10.0, 0, 0, &mut rng);
        assert_eq!(none.next_at(), u64::MAX);
    }
}

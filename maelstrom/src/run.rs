//! The real-time driver: real node processes over pipes, in real time, in the run order of
//! [`crate::coordinator`] (Maelstrom's: <https://github.com/jepsen-io/maelstrom/tree/main/doc>).
//!
//! Threads (all plain `std` threads; the network is the clock-free [`Net`] behind one mutex):
//! - **router**: sleeps on a condvar until the network's next deadline (or a send wakes it), then
//!   hands due deliveries to node stdin writers and client inboxes.
//! - per node, from [`crate::process`]: a stdin writer, a stdout reader that validates each line
//!   and sends it into the network, and a stderr logger.
//! - **workers**: one per `--concurrency` slot, each owning a Maelstrom client (`c<k>`) that talks
//!   to node `t mod n` with at most one request outstanding.
//! - **driver** (the calling thread): staggers ops at `--rate` ([`OpSchedule`]), hands them to
//!   free workers, records the history, watches for crashed nodes, then runs the final phase.
//! - **nemesis**: applies the [`NemesisPlan`] (partitions, kills, pauses) on schedule, through
//!   [`apply_nemesis`]; a `start` spawns each killed node and waits for its `init_ok` before the
//!   next one.
//!
//! One seeded ChaCha8 stream per consumer (ops, latencies, nemesis), all derived from `--seed` by
//! [`Seeds::derive`], as in the simulator.
//!
//! **Nodes' directory.** Every node runs in `<run>/data/` (Maelstrom runs them all in its tmpdir),
//! which is also `MURMUR_DATA_DIR`; it is removed after the run unless `--keep-data`.
//!
//! **Crashes and aborts.** A node that exits on its own (not killed by the nemesis) is
//! Maelstrom's `:node-crashed`: the driver thread checks every 100 ms, setup RPCs (`init`,
//! `topology`) give up as soon as their node has exited, and the run aborts with the node's crash
//! report (its last stdout and stderr lines). On any abort, outstanding client calls give up at
//! once instead of waiting out their 5 s timeout.
//!
//! **Teardown**, whether the run ends in results or in an abort: every node is SIGKILLed and
//! reaped, the router stops, the history and the journal are written, and the `latest` links
//! point at the run (on a panic, the nodes are still killed and the router stopped). A node
//! found exited at teardown aborts the run too, and its report comes before whatever
//! error the run had already hit: a dead node is why nothing else answered.

use crate::analysis::{analyse, recoveries};
use crate::checker::AvailabilityTarget;
use crate::cli::{TestOpts, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};
use crate::coordinator::{
    apply_nemesis, next_nemesis_op, process_after_info, NemesisActions, OpSchedule, Seeds, Started,
    CLIENT_TIMEOUT_MS, INIT_TIMEOUT_MS, RECOVERY_MS,
};
use crate::history::{Op, OpType, Process};
use crate::nemesis::{Fault, FaultSet, NemesisOp, NemesisPlan, Partition};
use crate::net::{Delivery, Latency, Net, NetError, Packet};
use crate::process::{LineResult, NodeCommand, NodeProcess};
use crate::procstats::ProcStats;
use crate::results::{Progress, ProgressCounters, RunDir};
use crate::topology;
use crate::workload::{ClientWorkload, Completion, OpSpec, Reply};
use anyhow::{anyhow, bail, Context};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Maelstrom's client RPC timeout.
const RPC_TIMEOUT: Duration = Duration::from_millis(CLIENT_TIMEOUT_MS);
/// Set by SIGINT or SIGTERM once [`install_interrupt_handler`] ran. Nodes live in their own
/// process groups (so a Ctrl-C does not reach them) and a paused node never sees its stdin close,
/// so the runner must tear them down itself: the driver aborts at its next checkpoint.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Routes SIGINT and SIGTERM to [`INTERRUPTED`] (the binary calls it; library users may not want it).
pub fn install_interrupt_handler() {
    extern "C" fn on_signal(_: libc::c_int) {
        // Only an atomic store: async-signal-safe.
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installing a handler that only stores to a static atomic.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// How often a client waiting for a reply checks whether it should give up (the run is aborting,
/// or the node it waits on has crashed).
const GIVE_UP_POLL: Duration = Duration::from_millis(50);
/// `init` must be answered within this.
const INIT_TIMEOUT: Duration = Duration::from_millis(INIT_TIMEOUT_MS);
/// The quiet period before final reads.
const RECOVERY_WAIT: Duration = Duration::from_millis(RECOVERY_MS);
/// A run whose p99 delivery lag exceeds this is flagged as overloaded: its timings are not trusted.
pub const LAG_P99_LIMIT_US: u64 = 2_000;

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    pub exit_code: i32,
    pub results: Value,
    pub dir: Option<std::path::PathBuf>,
}

/// Lock a mutex, recovering the data if a thread panicked while holding it: every structure here
/// stays consistent between statements, and a runner that stops reporting is worse than one that
/// reports what it has.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// State every thread shares.
struct Switchboard {
    start: Instant,
    net: Mutex<Net>,
    /// Wakes the router: a send may have created an earlier deadline.
    wake: Condvar,
    routes: Mutex<Routes>,
    stop: AtomicBool,
    next_client: AtomicU64,
    /// Nodes whose output Maelstrom would stop reading (a malformed line or an invalid dest).
    wedged: Mutex<Vec<(String, String)>>,
    routed: AtomicU64,
    /// Set when the run is aborting: outstanding client calls give up at once instead of
    /// waiting out their timeout.
    aborting: AtomicBool,
}

#[derive(Default)]
struct Routes {
    nodes: HashMap<String, crate::process::NodeInput>,
    clients: HashMap<String, Sender<Delivery>>,
}

impl Switchboard {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn send(&self, packet: Packet) -> Result<u64, NetError> {
        let r = lock(&self.net).send(self.now(), packet);
        self.wake.notify_one();
        r
    }

    fn open_client(&self) -> RpcClient {
        let id = format!("c{}", self.next_client.fetch_add(1, Ordering::SeqCst));
        let (tx, rx) = mpsc::channel();
        lock(&self.routes).clients.insert(id.clone(), tx);
        if let Err(e) = lock(&self.net).register_client(&id) {
            tracing::error!("cannot register client {id}: {e}");
        }
        RpcClient {
            id,
            inbox: rx,
            next_msg_id: 1,
        }
    }

    fn close_client(&self, client: RpcClient) {
        lock(&self.routes).clients.remove(&client.id);
        let now = self.now();
        let _ = lock(&self.net).deregister(now, &client.id);
    }
}

/// A Maelstrom client: one id, one inbox, at most one request outstanding.
struct RpcClient {
    id: String,
    inbox: Receiver<Delivery>,
    next_msg_id: u64,
}

impl RpcClient {
    /// One RPC: sends `body` (a JSON object) to `dest` and waits for the reply whose
    /// `in_reply_to` equals its `msg_id`; any other message is consumed and discarded, as by
    /// Maelstrom's clients.
    /// `give_up` is polled every [`GIVE_UP_POLL`] while waiting: when it returns true the call
    /// ends as a timeout at once.
    fn call(
        &mut self,
        shared: &Switchboard,
        dest: &str,
        mut body: Value,
        timeout: Duration,
        give_up: &dyn Fn() -> bool,
    ) -> Reply {
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        body["msg_id"] = json!(msg_id);
        if let Err(e) = shared.send(Packet::from_value(&self.id, dest, &body)) {
            tracing::error!("client {} cannot send: {e}", self.id);
            return Reply::Timeout;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(left.min(GIVE_UP_POLL)) {
                Ok(d) => {
                    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&d.packet.body)
                    else {
                        continue;
                    };
                    // Clojure `=`: 5.0 does not answer 5.
                    if map.get("in_reply_to").and_then(Value::as_u64) == Some(msg_id)
                        && !map.get("in_reply_to").is_some_and(Value::is_f64)
                    {
                        return Reply::Body(map);
                    }
                }
                Err(RecvTimeoutError::Timeout) if !left.is_zero() && !give_up() => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return Reply::Timeout
                }
            }
        }
    }
}

fn router(shared: Arc<Switchboard>) {
    let mut due = Vec::with_capacity(1024);
    let mut line = String::with_capacity(4096);
    loop {
        {
            let mut net = lock(&shared.net);
            loop {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                net.deliver_due(shared.now(), &mut due);
                if !due.is_empty() {
                    break;
                }
                let wait = match net.next_deadline() {
                    Some(t) => Duration::from_nanos(t.saturating_sub(shared.now())),
                    None => Duration::from_millis(50),
                };
                net = shared
                    .wake
                    .wait_timeout(net, wait.min(Duration::from_millis(50)))
                    .map(|r| r.0)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        let routes = lock(&shared.routes);
        shared.routed.fetch_add(due.len() as u64, Ordering::Relaxed);
        for d in due.drain(..) {
            if let Some(input) = routes.nodes.get(&d.packet.dest) {
                line.clear();
                d.packet.write_line(d.id, &mut line);
                input.send(line.clone());
            } else if let Some(tx) = routes.clients.get(&d.packet.dest) {
                let _ = tx.send(d);
            }
        }
    }
}

/// Builds the sink a node's stdout reader feeds: valid lines go into the network; the first
/// malformed line or invalid destination wedges the node's output as in Maelstrom.
fn stdout_sink(shared: Arc<Switchboard>) -> impl FnMut(&Arc<str>, LineResult) + Send + 'static {
    let mut dead = false;
    move |node: &Arc<str>, line: LineResult| {
        if dead {
            return;
        }
        let err = match line {
            Ok(p) => match shared.send(Packet::new(
                p.src,
                p.dest,
                p.raw_body,
                p.body_type.unwrap_or_default(),
            )) {
                Ok(_) => return,
                Err(e) => e.to_string(),
            },
            Err(m) => format!(
                "printed a line to STDOUT which Maelstrom rejects ({}): {}",
                m.reason, m.line
            ),
        };
        dead = true;
        tracing::error!("node {node}: {err}. Maelstrom stops reading this node's output for the rest of the test.");
        lock(&shared.wedged).push((node.to_string(), err));
    }
}

/// The live node processes and which of them are down on purpose.
struct Nodes {
    procs: HashMap<String, NodeProcess>,
    killed: HashMap<String, bool>,
}

struct RunCtx<'a> {
    opts: &'a TestOpts,
    shared: Arc<Switchboard>,
    dir: &'a RunDir,
    nodes: Mutex<Nodes>,
    history: Mutex<Vec<Op>>,
    /// CPU and peak memory of every node incarnation, read from `/proc` just before it is killed.
    used: Mutex<ProcStats>,
}

impl RunCtx<'_> {
    fn record(
        &self,
        kind: OpType,
        process: Process,
        f: &str,
        value: Value,
        c: Option<&Completion>,
        final_: bool,
    ) {
        let mut h = lock(&self.history);
        let index = h.len();
        h.push(Op {
            index,
            time: self.shared.now(),
            kind,
            process,
            f: f.to_string(),
            value,
            error: c.and_then(|c| c.error.clone()),
            exception: c.and_then(|c| c.exception.clone()),
            final_,
        });
    }

    fn spawn_node(&self, id: &str) -> anyhow::Result<NodeProcess> {
        let cmd = NodeCommand {
            id: id.to_string(),
            bin: self.opts.bin.clone(),
            args: self.opts.args.clone(),
            // All nodes share one working directory, as in Maelstrom (its tmpdir): `<run>/data`.
            work_dir: self.dir.data_dir(),
            // Where murmur's nodes persist their state; other nodes ignore it. Absolute, since
            // the node runs in that very directory.
            env: vec![(
                "MURMUR_DATA_DIR".to_string(),
                std::path::absolute(self.dir.data_dir())
                    .unwrap_or_else(|_| self.dir.data_dir())
                    .to_string_lossy()
                    .into_owned(),
            )],
            log_path: self.dir.node_log_path(id),
            log_stderr: self.opts.log_stderr,
        };
        let p = NodeProcess::spawn(&cmd, stdout_sink(Arc::clone(&self.shared)))
            .with_context(|| format!("cannot start node {id} ({})", self.opts.bin.display()))?;
        let input = p.input();
        lock(&self.shared.routes)
            .nodes
            .insert(id.to_string(), input);
        Ok(p)
    }

    /// Sends `init` from a fresh client and waits for `init_ok`. A node that
    /// exits meanwhile fails the init at once, with its crash report.
    fn init_node(&self, id: &str) -> anyhow::Result<()> {
        let mut client = self.shared.open_client();
        let body = json!({"type": "init", "node_id": id, "node_ids": self.opts.nodes});
        let reply = client.call(&self.shared, id, body, INIT_TIMEOUT, &|| {
            self.node_exited(id) || self.shared.aborting.load(Ordering::Relaxed)
        });
        self.shared.close_client(client);
        if let Some(crash) = self.crash_of(id) {
            return Err(crash.into());
        }
        if reply == Reply::Timeout && self.shared.aborting.load(Ordering::Relaxed) {
            return Err(GaveUp.into());
        }
        match reply {
            Reply::Body(b) if b.get("type").and_then(Value::as_str) == Some("init_ok") => Ok(()),
            Reply::Body(b) if b.get("type").and_then(Value::as_str) == Some("error") => {
                bail!(
                    "node {id} answered init with an error: {}",
                    Value::Object(b)
                )
            }
            Reply::Body(b) => bail!(
                "init-failed: node {id} answered init with {}",
                Value::Object(b)
            ),
            Reply::Timeout => bail!(
                "init-failed: node {id} did not answer init within {} s",
                INIT_TIMEOUT.as_secs()
            ),
        }
    }

    /// The first node (in node-list order) that exited without being killed by the nemesis:
    /// Maelstrom's `:node-crashed`, as an error carrying the crash report.
    /// The driver's periodic check (every loop wakes at least every 100 ms): a crashed node or an
    /// interrupt (SIGINT/SIGTERM) aborts the run, which still tears down every node.
    fn checkpoint(&self) -> anyhow::Result<()> {
        self.check_crashes()?;
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted by a signal; every node was stopped");
        }
        Ok(())
    }

    fn check_crashes(&self) -> Result<(), NodeCrashed> {
        match self.opts.nodes.iter().find_map(|id| self.crash_of(id)) {
            Some(crash) => Err(crash),
            None => Ok(()),
        }
    }

    /// Node `id`'s crash if its current incarnation exited on its own.
    fn crash_of(&self, id: &str) -> Option<NodeCrashed> {
        let nodes = lock(&self.nodes);
        if nodes.killed.get(id).copied().unwrap_or(false) {
            return None;
        }
        let p = nodes.procs.get(id)?;
        p.try_exit_status()
            .map(|status| NodeCrashed::of(id, p, status))
    }

    /// Cheap check (no report) that node `id` exited on its own.
    fn node_exited(&self, id: &str) -> bool {
        let nodes = lock(&self.nodes);
        !nodes.killed.get(id).copied().unwrap_or(false)
            && nodes
                .procs
                .get(id)
                .is_some_and(|p| p.try_exit_status().is_some())
    }

    /// Adds a live node's CPU and peak memory (from `/proc`) to the run's totals.
    fn account(&self, p: &NodeProcess) {
        if let Some(s) = ProcStats::read(p.pid()) {
            lock(&self.used).add(s);
        }
    }

    /// Teardown: SIGKILL every node, in node-list order, and return the crashes of
    /// those that had exited on their own (not killed by the nemesis).
    fn stop_nodes(&self) -> Vec<NodeCrashed> {
        let mut procs: Vec<(String, NodeProcess)> = lock(&self.nodes).procs.drain().collect();
        let order = |id: &str| self.opts.nodes.iter().position(|n| n == id);
        procs.sort_by_key(|(id, _)| order(id));
        let mut crashes = Vec::new();
        for (id, p) in procs {
            lock(&self.shared.routes).nodes.remove(&id);
            self.account(&p);
            match p.stop() {
                Ok(stopped) if stopped.exited_on_its_own => {
                    crashes.push(NodeCrashed::of(&id, &p, stopped.status))
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("stopping {id}: {e}"),
            }
        }
        crashes
    }

    /// Performs one nemesis op ([`apply_nemesis`]) and records its completion. A `start` has
    /// completed when it returns: each restarted node has answered `init` (or failed to).
    fn nemesis_step(&self, op: NemesisOp) {
        let mut actions = RealNemesis(self);
        if let Some(value) = apply_nemesis(&mut actions, &op) {
            actions.record_nemesis(&op, value);
        }
    }
}

/// The nemesis's actions on real processes and the shared network.
struct RealNemesis<'c, 'a>(&'c RunCtx<'a>);

impl NemesisActions for RealNemesis<'_, '_> {
    fn record_nemesis(&mut self, op: &NemesisOp, value: Value) {
        self.0
            .record(OpType::Info, Process::Nemesis, op.f(), value, None, false);
    }

    fn announce(&mut self, op: &NemesisOp) {
        tracing::info!("nemesis: {} {}", op.f(), op.invoke_value());
    }

    fn install_grudge(&mut self, partition: &Partition) {
        let now = self.0.shared.now();
        lock(&self.0.shared.net).set_grudge(now, partition.grudge.clone());
    }

    fn heal(&mut self) {
        let now = self.0.shared.now();
        lock(&self.0.shared.net).heal(now);
    }

    fn kill_node(&mut self, id: &str) {
        let ctx = self.0;
        // Down first: from now on its messages pile up in its queue instead of being journaled
        // as received and then lost in a dead pipe.
        let _ = lock(&ctx.shared.net).set_down(ctx.shared.now(), id, true);
        let mut n = lock(&ctx.nodes);
        if let Some(p) = n.procs.get_mut(id) {
            ctx.account(p);
            match p.kill() {
                Ok(_) => {}
                // It had exited on its own: a crash, which must not be hidden by marking it
                // killed.
                Err(crate::process::ProcessError::Exited { .. }) => return,
                Err(e) => tracing::warn!("kill {id}: {e}"),
            }
        }
        n.killed.insert(id.to_string(), true);
    }

    fn pause_node(&mut self, id: &str) {
        if let Some(p) = lock(&self.0.nodes).procs.get_mut(id) {
            if let Err(e) = p.pause() {
                tracing::warn!("pause {id}: {e}");
            }
        }
    }

    fn resume_node(&mut self, id: &str) {
        if let Some(p) = lock(&self.0.nodes).procs.get_mut(id) {
            if let Err(e) = p.resume() {
                tracing::warn!("resume {id}: {e}");
            }
        }
    }

    /// Restarts the killed nodes one at a time: spawn, fresh queue, `init`, wait for `init_ok`.
    fn start_nodes(&mut self, nodes: &[String]) -> Started {
        let ctx = self.0;
        let mut started = Vec::new();
        for id in nodes {
            let was_killed = lock(&ctx.nodes).killed.get(id).copied().unwrap_or(false);
            if !was_killed {
                continue; // idempotent: starting a running node does nothing
            }
            // Spawn first (which points the route at the new stdin), then give the node its
            // fresh queue: nothing meant for the new incarnation reaches the old one.
            match ctx.spawn_node(id) {
                Ok(p) => {
                    let mut n = lock(&ctx.nodes);
                    n.procs.insert(id.clone(), p);
                    n.killed.insert(id.clone(), false);
                }
                Err(e) => {
                    tracing::error!("{e:#}");
                    continue;
                }
            }
            let _ = lock(&ctx.shared.net).restart(ctx.shared.now(), id);
            match ctx.init_node(id) {
                Ok(()) => started.push(id.clone()),
                Err(e) => tracing::error!("restart of {id}: {e:#}"),
            }
        }
        Started::Now(started)
    }
}

/// What a worker is asked to do.
struct Assignment {
    op: OpSpec,
    process: u64,
    final_: bool,
}

/// A worker's report.
struct Done {
    worker: usize,
    op: OpSpec,
    process: u64,
    completion: Completion,
    final_: bool,
}

fn worker(
    shared: Arc<Switchboard>,
    w: ClientWorkload,
    t: usize,
    node: String,
    rx: Receiver<Assignment>,
    done: Sender<Done>,
) {
    let mut client = shared.open_client();
    let aborting = || shared.aborting.load(Ordering::Relaxed);
    while let Ok(a) = rx.recv() {
        let reply = client.call(&shared, &node, w.request(&a.op), RPC_TIMEOUT, &aborting);
        let completion = w.complete(&a.op, &reply);
        if completion.kind == OpType::Info && !w.reusable_client() {
            // The thread's process is replaced: close this client, open a fresh `c<k>`.
            shared.close_client(client);
            client = shared.open_client();
        }
        let _ = done.send(Done {
            worker: t,
            op: a.op,
            process: a.process,
            completion,
            final_: a.final_,
        });
    }
    shared.close_client(client);
}

/// A node exited on its own (Maelstrom's `:node-crashed`); the message is the crash report.
#[derive(Debug, thiserror::Error)]
#[error("{report}")]
struct NodeCrashed {
    node: String,
    /// `Node n1 crashed with exit code 0`.
    summary: String,
    /// The summary, then the last stdout and stderr lines and the log's path.
    report: String,
}

impl NodeCrashed {
    fn of(node: &str, p: &NodeProcess, status: std::process::ExitStatus) -> NodeCrashed {
        NodeCrashed {
            node: node.to_string(),
            summary: p.crash_summary(status),
            report: p.crash_report(status),
        }
    }
}

/// Owns the router thread: stops and joins it when dropped, so the thread never outlives the
/// run, however the run ends (an error or a panic included).
struct RouterGuard {
    shared: Arc<Switchboard>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for RouterGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Runs one test end to end and writes its results. Errors are aborts (exit 255), except a
/// workload this runner does not implement, which is a [`crate::cli::CliError`] (exit 254).
///
/// Once the run folder exists, whatever happens, every node process is stopped before this
/// returns, the history and the journal are written, and the nodes' data directory
/// (`<run>/data`, their working directory) is removed unless `--keep-data`.
pub fn run(opts: &TestOpts) -> anyhow::Result<RunOutcome> {
    // Before anything touches the disk: an unimplemented workload is a bad argument.
    opts.workload.check_implemented()?;
    let workload: ClientWorkload = opts
        .workload
        .as_str()
        .parse()
        .map_err(|e: String| anyhow!(e))?;
    let latency = Latency::new(opts.latency_dist, opts.latency_ms)?;
    let started_at = std::time::SystemTime::now();
    let dir = RunDir::create(&opts.results_dir, workload.name(), started_at)?;
    eprintln!("{}", opts.seed_line());
    eprintln!("Results: {}", dir.path().display());
    dir.create_data_dir()?;

    let Seeds {
        net: net_rng,
        ops: mut op_rng,
        nemesis: nemesis_seed,
        ..
    } = Seeds::derive(opts.seed);

    let shared = Arc::new(Switchboard {
        start: Instant::now(),
        net: Mutex::new(Net::new(latency, net_rng)),
        wake: Condvar::new(),
        routes: Mutex::new(Routes::default()),
        stop: AtomicBool::new(false),
        next_client: AtomicU64::new(0),
        wedged: Mutex::new(Vec::new()),
        routed: AtomicU64::new(0),
        aborting: AtomicBool::new(false),
    });
    let router_guard = {
        let s = Arc::clone(&shared);
        RouterGuard {
            shared: Arc::clone(&shared),
            handle: Some(
                thread::Builder::new()
                    .name("router".into())
                    .spawn(move || router(s))?,
            ),
        }
    };
    // Declared after the router guard, so on a panic it is dropped first: dropping the nodes'
    // `NodeProcess`es kills them, then the router stops.
    let ctx = RunCtx {
        opts,
        shared: Arc::clone(&shared),
        dir: &dir,
        nodes: Mutex::new(Nodes {
            procs: HashMap::new(),
            killed: HashMap::new(),
        }),
        history: Mutex::new(Vec::new()),
        used: Mutex::new(ProcStats::default()),
    };

    let children_before = crate::procstats::reaped_children();
    let outcome = drive(&ctx, workload, &mut op_rng, nemesis_seed);

    // Teardown: kill every node (SIGKILL, as Maelstrom does), stop the router.
    shared.aborting.store(true, Ordering::SeqCst);
    let crashes = ctx.stop_nodes();
    // Every incarnation has been reaped by now: the kernel's exact account of their CPU and
    // wake-ups (all threads) replaces the sum of per-process `/proc` figures, which truncate CPU
    // to clock ticks and count the main thread's wake-ups only.
    if let (Some(before), Some(after)) = (children_before, crate::procstats::reaped_children()) {
        if after.cpu_micros > before.cpu_micros {
            let mut used = lock(&ctx.used);
            used.cpu_seconds = (after.cpu_micros - before.cpu_micros) as f64 / 1e6;
            used.wakeups = after.wakeups.saturating_sub(before.wakeups);
        }
    }
    drop(router_guard);
    if !opts.keep_data {
        if let Err(e) = dir.remove_data_dir() {
            tracing::warn!("{e}");
        }
    }

    let history = std::mem::take(&mut *lock(&ctx.history));
    let journal = lock(&shared.net).take_journal();
    let lag = lock(&shared.net).lag_stats();
    dir.write_history(&history)?;
    dir.write_journal(&journal)?;

    if let Err(e) = abort_error(outcome, crashes) {
        dir.update_latest_links()?;
        return Err(e);
    }

    let target = opts.availability.map(|a| match a {
        crate::cli::Availability::Total => AvailabilityTarget::Total,
        crate::cli::Availability::Fraction(x) => AvailabilityTarget::Fraction(x),
    });
    let mut results = analyse(workload, &history, &journal, target);
    let overloaded = lag.p99_us > LAG_P99_LIMIT_US;
    results["runner"] = json!({
        "seed": opts.seed,
        "routed": shared.routed.load(Ordering::Relaxed),
        "delivery-lag-us": {"count": lag.count, "p50": lag.p50_us, "p99": lag.p99_us, "max": lag.max_us},
        "overloaded": overloaded,
        "wedged-nodes": lock(&shared.wedged).iter().map(|(n, e)| json!({"node": n, "error": e})).collect::<Vec<_>>(),
        "nodes": *lock(&ctx.used),
    });
    if workload == ClientWorkload::Broadcast && opts.has_fault(Fault::Kill) {
        results["runner"]["recoveries"] =
            json!(recoveries(&history, &opts.nodes, opts.concurrency));
    }
    dir.write_results(&results)?;
    dir.update_latest_links()?;
    let exit_code = match results.get("valid?") {
        Some(Value::Bool(true)) => EXIT_VALID,
        Some(Value::Bool(false)) => EXIT_INVALID,
        _ => EXIT_UNKNOWN,
    };
    Ok(RunOutcome {
        exit_code,
        results,
        dir: Some(dir.path().to_path_buf()),
    })
}

/// Why a run aborts, if it does: the driver's error and the crashes found at teardown. A crash is
/// the root cause of whatever else went wrong (a node that died answers nothing), so its report
/// comes first; other crashed nodes are named after it.
fn abort_error(outcome: anyhow::Result<()>, crashes: Vec<NodeCrashed>) -> anyhow::Result<()> {
    let mut crashes = crashes.into_iter();
    let (message, first_node) = match outcome {
        Ok(()) => match crashes.next() {
            None => return Ok(()),
            Some(c) => (c.report, c.node),
        },
        Err(e) => match e.downcast::<NodeCrashed>() {
            // The driver saw the crash itself (teardown sees that node again, skipped below).
            Ok(c) => (c.report, c.node),
            Err(e) => match crashes.next() {
                None => return Err(e),
                Some(c) => (
                    format!("{}\n\n(The test had already failed: {e:#})", c.report),
                    c.node,
                ),
            },
        },
    };
    let others: Vec<String> = crashes
        .filter(|c| c.node != first_node)
        .map(|c| c.summary)
        .collect();
    if others.is_empty() {
        bail!("{message}");
    }
    bail!(
        "{message}\n\nOther nodes crashed too:\n{}",
        others.join("\n")
    )
}

/// A setup RPC that stopped waiting because another one had already failed.
#[derive(Debug, thiserror::Error)]
#[error("gave up: another node had already failed its setup")]
struct GaveUp;

/// Joins every setup thread (init or topology) and returns the error that explains the failure:
/// a crash report over any other error (a node that died is why the others failed), and any
/// error over a [`GaveUp`]; among equals, the first in node order.
fn join_setup(
    handles: Vec<thread::ScopedJoinHandle<'_, anyhow::Result<()>>>,
    what: &str,
) -> anyhow::Result<()> {
    let rank = |e: &anyhow::Error| {
        if e.is::<NodeCrashed>() {
            2
        } else if e.is::<GaveUp>() {
            0
        } else {
            1
        }
    };
    let mut worst: Option<anyhow::Error> = None;
    for h in handles {
        let r = h
            .join()
            .unwrap_or_else(|_| Err(anyhow!("a {what} thread panicked")));
        if let Err(e) = r {
            let explains_more = match &worst {
                None => true,
                Some(w) => rank(&e) > rank(w),
            };
            if explains_more {
                worst = Some(e);
            }
        }
    }
    worst.map_or(Ok(()), Err)
}

fn drive(
    ctx: &RunCtx<'_>,
    workload: ClientWorkload,
    op_rng: &mut ChaCha8Rng,
    nemesis_seed: u64,
) -> anyhow::Result<()> {
    let opts = ctx.opts;
    let shared = &ctx.shared;
    let n = opts.nodes.len();

    // DB setup: register and spawn every node, then init them all (in parallel, as Maelstrom).
    for id in &opts.nodes {
        lock(&shared.net).register_node(id)?;
        let p = ctx.spawn_node(id)?;
        let mut nodes = lock(&ctx.nodes);
        nodes.procs.insert(id.clone(), p);
        nodes.killed.insert(id.clone(), false);
    }
    thread::scope(|s| {
        let handles: Vec<_> = opts
            .nodes
            .iter()
            .map(|id| {
                s.spawn(move || {
                    let r = ctx.init_node(id);
                    if r.is_err() {
                        // The other inits need not wait out their timeouts.
                        shared.aborting.store(true, Ordering::SeqCst);
                    }
                    r
                })
            })
            .collect();
        join_setup(handles, "init")
    })?;
    ctx.checkpoint()?;

    // Client setup: one setup client per node; broadcast sends the topology.
    let topo = topology::build(opts.topology, &opts.nodes);
    let topo_json = topology::to_json(&topo);
    thread::scope(|s| {
        let handles: Vec<_> = opts
            .nodes
            .iter()
            .map(|id| {
                let topo_json = topo_json.clone();
                s.spawn(move || -> anyhow::Result<()> {
                    let mut client = shared.open_client();
                    let result = if workload.sends_topology() {
                        let reply = client.call(
                            shared,
                            id,
                            json!({"type": "topology", "topology": topo_json}),
                            RPC_TIMEOUT,
                            &|| ctx.node_exited(id) || shared.aborting.load(Ordering::Relaxed),
                        );
                        match reply {
                            _ if ctx.node_exited(id) => Err(ctx
                                .crash_of(id)
                                .map_or_else(|| anyhow!("node {id} crashed"), Into::into)),
                            Reply::Body(b) => crate::workload::check_topology_ok(&b).map_err(|e| {
                                anyhow!(
                                    "node {id} answered topology badly: {e}: {}",
                                    Value::Object(b)
                                )
                            }),
                            Reply::Timeout if shared.aborting.load(Ordering::Relaxed) => {
                                Err(GaveUp.into())
                            }
                            Reply::Timeout => {
                                Err(anyhow!("node {id} did not answer topology within 5 s"))
                            }
                        }
                    } else {
                        Ok(())
                    };
                    shared.close_client(client);
                    if result.is_err() {
                        shared.aborting.store(true, Ordering::SeqCst);
                    }
                    result
                })
            })
            .collect();
        join_setup(handles, "setup")
    })?;

    // Workers.
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let mut assign: Vec<Sender<Assignment>> = Vec::new();
    let mut worker_handles: Vec<JoinHandle<()>> = Vec::new();
    for t in 0..opts.concurrency {
        let (tx, rx) = mpsc::channel();
        assign.push(tx);
        let s = Arc::clone(shared);
        let node = opts.nodes[t % n].clone();
        let done = done_tx.clone();
        worker_handles.push(
            thread::Builder::new()
                .name(format!("worker-{t}"))
                .spawn(move || worker(s, workload, t, node, rx, done))?,
        );
    }
    drop(done_tx);
    let mut workers = Workers {
        assign,
        done_rx,
        busy: vec![false; opts.concurrency],
        process: (0..opts.concurrency as u64).collect(),
        counters: Arc::new(ProgressCounters::default()),
    };
    let result = phases(ctx, workload, op_rng, nemesis_seed, &mut workers);
    if result.is_err() {
        // Outstanding calls give up at once rather than after their 5 s timeout.
        shared.aborting.store(true, Ordering::SeqCst);
    }
    drop(workers);
    for h in worker_handles {
        let _ = h.join();
    }
    result
}

/// The driver thread's view of the worker threads: who is busy, each thread's current process id,
/// and the channels to and from them.
struct Workers {
    assign: Vec<Sender<Assignment>>,
    done_rx: Receiver<Done>,
    busy: Vec<bool>,
    /// Thread t's process; a fresh one after an `info` op ([`process_after_info`]).
    process: Vec<u64>,
    counters: Arc<ProgressCounters>,
}

impl Workers {
    fn any_busy(&self) -> bool {
        self.busy.iter().any(|b| *b)
    }

    /// Records the invocation and hands the op to thread `t`.
    fn invoke(
        &mut self,
        ctx: &RunCtx<'_>,
        t: usize,
        op: OpSpec,
        final_: bool,
    ) -> anyhow::Result<()> {
        ctx.record(
            OpType::Invoke,
            Process::Client(self.process[t]),
            op.f,
            op.value.clone(),
            None,
            final_,
        );
        self.busy[t] = true;
        let process = self.process[t];
        self.assign[t]
            .send(Assignment {
                op,
                process,
                final_,
            })
            .map_err(|_| anyhow!("worker {t} died"))
    }

    /// Records a completion and frees its thread.
    fn complete(&mut self, ctx: &RunCtx<'_>, d: Done) {
        self.busy[d.worker] = false;
        self.counters.record(d.completion.kind);
        ctx.record(
            d.completion.kind,
            Process::Client(d.process),
            d.op.f,
            d.completion.value.clone(),
            Some(&d.completion),
            d.final_,
        );
        if d.completion.kind == OpType::Info {
            self.process[d.worker] = process_after_info(d.process, self.busy.len());
        }
    }

    /// Waits until every thread is idle (each call ends within its timeout), checking for
    /// crashed nodes meanwhile so that a crash aborts the run at once.
    fn wait_idle(&mut self, ctx: &RunCtx<'_>, what: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + RPC_TIMEOUT + Duration::from_secs(1);
        while self.any_busy() {
            match self.done_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(d) => self.complete(ctx, d),
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => bail!("a worker did not finish its {what}"),
            }
            ctx.checkpoint()?;
        }
        Ok(())
    }
}

/// The generator's phases, in the order of [`crate::coordinator`]: the main phase (client ops at
/// `--rate`, the nemesis on its own thread, in-flight ops drained), then, for workloads that have
/// one, the final phase (final nemesis ops, the recovery wait, one final op per worker).
fn phases(
    ctx: &RunCtx<'_>,
    workload: ClientWorkload,
    op_rng: &mut ChaCha8Rng,
    nemesis_seed: u64,
    workers: &mut Workers,
) -> anyhow::Result<()> {
    let opts = ctx.opts;
    let shared = &ctx.shared;

    // Nemesis.
    let nemesis_stop = AtomicBool::new(false);
    let main_start = shared.now();
    let time_limit_ns = opts.time_limit_secs * 1_000_000_000;
    let cutoff = main_start + time_limit_ns;
    let faults: FaultSet = opts.nemesis.iter().copied().collect();
    let mut plan = NemesisPlan::new(
        faults,
        opts.nemesis_interval_secs,
        opts.nodes.clone(),
        nemesis_seed,
    )?;
    let final_nemesis_ops = plan.final_ops();
    let progress = Progress::start(
        opts.time_limit(),
        opts.show_progress(),
        Arc::clone(&workers.counters),
    );

    let main = thread::scope(|s| -> anyhow::Result<()> {
        let nemesis_handle = (!plan.is_empty()).then(|| {
            let stop = &nemesis_stop;
            let plan = &mut plan;
            s.spawn(move || {
                while let Some((at, op)) = next_nemesis_op(plan, shared.now(), main_start, cutoff) {
                    while shared.now() < at {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        thread::sleep(
                            Duration::from_nanos(at - shared.now()).min(Duration::from_millis(20)),
                        );
                    }
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    ctx.nemesis_step(op);
                }
            })
        });
        let main = main_phase(ctx, workload, op_rng, main_start, cutoff, workers);
        // Whatever the main phase's outcome, the nemesis stops before the final phase (or the
        // abort): from here on it must not kill, pause or partition anything.
        nemesis_stop.store(true, Ordering::SeqCst);
        if let Some(h) = nemesis_handle {
            let _ = h.join();
        }
        main
    });
    progress.finish();
    main?;

    // Final phase (broadcast): heal/resume/restart, wait for recovery, one final read per thread.
    if let Some(final_op) = workload.final_op() {
        for op in final_nemesis_ops {
            ctx.nemesis_step(op);
        }
        eprintln!("Waiting for recovery...");
        let wake = Instant::now() + RECOVERY_WAIT;
        loop {
            // A crash during the wait aborts now, not 10 s later.
            ctx.checkpoint()?;
            let left = wake.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(100)));
        }
        for t in 0..workers.busy.len() {
            workers.invoke(ctx, t, final_op.clone(), true)?;
        }
        workers.wait_idle(ctx, "final read")?;
    }
    Ok(())
}

/// Client ops staggered at `--rate` ([`OpSchedule`]) from `main_start` until `cutoff`, handed to free
/// threads round-robin; then the in-flight ops run to completion or time out. Checks for crashed
/// nodes every 100 ms.
fn main_phase(
    ctx: &RunCtx<'_>,
    workload: ClientWorkload,
    op_rng: &mut ChaCha8Rng,
    main_start: u64,
    cutoff: u64,
    workers: &mut Workers,
) -> anyhow::Result<()> {
    let opts = ctx.opts;
    let shared = &ctx.shared;
    let n = workers.busy.len();
    let mut ops = OpSchedule::start(opts.rate, n, main_start, op_rng);
    let mut last_crash_check = Instant::now();
    loop {
        let now = shared.now();
        if now >= cutoff {
            break;
        }
        if last_crash_check.elapsed() > Duration::from_millis(100) {
            last_crash_check = Instant::now();
            ctx.checkpoint()?;
            workers
                .counters
                .msgs
                .store(shared.routed.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let next_at = ops.next_at();
        if now >= next_at {
            let busy = &workers.busy;
            if let Some((t, op)) = ops.issue(now, n, |t| !busy[t], workload, op_rng) {
                workers.invoke(ctx, t, op, false)?;
                continue;
            }
        }
        let wait = if now >= next_at {
            cutoff - now
        } else {
            (next_at - now).min(cutoff - now)
        };
        match workers
            .done_rx
            .recv_timeout(Duration::from_nanos(wait).min(Duration::from_millis(100)))
        {
            Ok(d) => workers.complete(ctx, d),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => bail!("all workers died"),
        }
    }
    // In-flight ops run to completion or time out.
    workers.wait_idle(ctx, "op")
}

//! The real-time driver: real node processes over pipes, in real time (spec §2 "Run order").
//!
//! Threads (all plain `std` threads; the network is the clock-free [`Net`] behind one mutex):
//! - **router**: sleeps on a condvar until the network's next deadline (or a send wakes it), then
//!   hands due deliveries to node stdin writers and client inboxes.
//! - per node, from [`crate::process`]: a stdin writer, a stdout reader that validates each line
//!   and sends it into the network, and a stderr logger.
//! - **workers**: one per `--concurrency` slot, each owning a Maelstrom client (`c<k>`) that talks
//!   to node `t mod n` with at most one request outstanding.
//! - **coordinator** (the calling thread): staggers ops at `--rate`, hands them to free workers,
//!   records the history, watches for crashed nodes, then runs the final phase.
//! - **nemesis**: applies the [`NemesisPlan`] (partitions, kills, pauses) on schedule.
//!
//! One seeded ChaCha8 stream per consumer (ops, latencies, nemesis), all derived from `--seed`.

use crate::analysis::analyse;
use crate::checker::AvailabilityTarget;
use crate::cli::{TestOpts, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};
use crate::history::{Op, OpType, Process};
use crate::nemesis::{Fault, FaultSet, NemesisOp, NemesisPlan};
use crate::net::{Delivery, Latency, Net, NetError, Packet};
use crate::process::{LineResult, NodeCommand, NodeProcess};
use crate::results::{Progress, ProgressCounters, RunDir};
use crate::topology;
use crate::workload::{Completion, Generator, OpSpec, Reply, Workload};
use anyhow::{anyhow, bail, Context};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Maelstrom's client RPC timeout (client.clj).
const RPC_TIMEOUT: Duration = Duration::from_millis(5000);
/// `init` must be answered within this (db.clj).
const INIT_TIMEOUT: Duration = Duration::from_millis(10_000);
/// The quiet period before final reads (core.clj "Waiting for recovery...").
const RECOVERY_WAIT: Duration = Duration::from_secs(10);
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
struct Shared {
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
}

#[derive(Default)]
struct Routes {
    nodes: HashMap<String, crate::process::NodeInput>,
    clients: HashMap<String, Sender<Delivery>>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn send(&self, packet: Packet) -> Result<u64, NetError> {
        let r = lock(&self.net).send(self.now(), packet);
        self.wake.notify_one();
        r
    }

    fn open_client(&self) -> Client {
        let id = format!("c{}", self.next_client.fetch_add(1, Ordering::SeqCst));
        let (tx, rx) = mpsc::channel();
        lock(&self.routes).clients.insert(id.clone(), tx);
        if let Err(e) = lock(&self.net).register_client(&id) {
            tracing::error!("cannot register client {id}: {e}");
        }
        Client {
            id,
            inbox: rx,
            next_msg_id: 1,
        }
    }

    fn close_client(&self, client: Client) {
        lock(&self.routes).clients.remove(&client.id);
        let now = self.now();
        let _ = lock(&self.net).deregister(now, &client.id);
    }
}

/// A Maelstrom client: one id, one inbox, at most one request outstanding.
struct Client {
    id: String,
    inbox: Receiver<Delivery>,
    next_msg_id: u64,
}

impl Client {
    /// One RPC: sends `body` (a JSON object) to `dest` and waits for the reply whose
    /// `in_reply_to` equals its `msg_id`; any other message is consumed and discarded (spec §1).
    fn call(&mut self, shared: &Shared, dest: &str, mut body: Value, timeout: Duration) -> Reply {
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
            match self.inbox.recv_timeout(left) {
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
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return Reply::Timeout
                }
            }
        }
    }
}

fn router(shared: Arc<Shared>) {
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
/// malformed line or invalid destination wedges the node's output as in Maelstrom (spec §2).
fn stdout_sink(shared: Arc<Shared>) -> impl FnMut(&Arc<str>, LineResult) + Send + 'static {
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
                "printed a line to STDOUT which Maelstrom rejects ({:?}): {}",
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

struct Ctx<'a> {
    opts: &'a TestOpts,
    shared: Arc<Shared>,
    dir: &'a RunDir,
    nodes: Mutex<Nodes>,
    history: Mutex<Vec<Op>>,
}

impl Ctx<'_> {
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
            work_dir: self.dir.path().to_path_buf(),
            // Where murmur's nodes persist their state; other nodes ignore it.
            env: vec![(
                "MURMUR_DATA_DIR".to_string(),
                self.dir.data_dir().to_string_lossy().into_owned(),
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

    /// Sends `init` from a fresh client and waits for `init_ok` (spec §1 "init").
    fn init_node(&self, id: &str) -> anyhow::Result<()> {
        let mut client = self.shared.open_client();
        let body = json!({"type": "init", "node_id": id, "node_ids": self.opts.nodes});
        let reply = client.call(&self.shared, id, body, INIT_TIMEOUT);
        self.shared.close_client(client);
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

    /// A node that exited without being killed by the nemesis: Maelstrom's `:node-crashed`.
    fn crashed_node(&self) -> Option<String> {
        let mut nodes = lock(&self.nodes);
        let Nodes { procs, killed } = &mut *nodes;
        for (id, p) in procs.iter_mut() {
            if killed.get(id).copied().unwrap_or(false) {
                continue;
            }
            if let Some(status) = p.try_exit_status() {
                return Some(p.crash_report(status));
            }
        }
        None
    }

    fn apply_nemesis(&self, op: &NemesisOp) -> Value {
        let now = self.shared.now();
        match op {
            NemesisOp::StartPartition(p) => {
                lock(&self.shared.net).set_grudge(now, p.grudge.clone());
                op.completion_value()
            }
            NemesisOp::StopPartition => {
                lock(&self.shared.net).heal(now);
                op.completion_value()
            }
            NemesisOp::Kill { nodes, .. } => {
                for id in nodes {
                    let mut n = lock(&self.nodes);
                    n.killed.insert(id.clone(), true);
                    if let Some(p) = n.procs.get_mut(id) {
                        if let Err(e) = p.kill() {
                            tracing::warn!("kill {id}: {e}");
                        }
                    }
                    let _ = lock(&self.shared.net).set_down(now, id, true);
                }
                op.completion_value()
            }
            NemesisOp::Start { nodes } => {
                let mut started = Vec::new();
                for id in nodes {
                    let was_killed = lock(&self.nodes).killed.get(id).copied().unwrap_or(false);
                    if !was_killed {
                        continue; // idempotent: starting a running node does nothing
                    }
                    let now = self.shared.now();
                    let _ = lock(&self.shared.net).restart(now, id);
                    match self.spawn_node(id) {
                        Ok(p) => {
                            let mut n = lock(&self.nodes);
                            n.procs.insert(id.clone(), p);
                            n.killed.insert(id.clone(), false);
                        }
                        Err(e) => {
                            tracing::error!("{e:#}");
                            continue;
                        }
                    }
                    match self.init_node(id) {
                        Ok(()) => started.push(id.clone()),
                        Err(e) => tracing::error!("restart of {id}: {e:#}"),
                    }
                }
                json!(["started", started])
            }
            NemesisOp::Pause { nodes, .. } => {
                let mut n = lock(&self.nodes);
                for id in nodes {
                    if let Some(p) = n.procs.get_mut(id) {
                        if let Err(e) = p.pause() {
                            tracing::warn!("pause {id}: {e}");
                        }
                    }
                }
                op.completion_value()
            }
            NemesisOp::Resume { nodes } => {
                let mut n = lock(&self.nodes);
                for id in nodes {
                    if let Some(p) = n.procs.get_mut(id) {
                        if let Err(e) = p.resume() {
                            tracing::warn!("resume {id}: {e}");
                        }
                    }
                }
                op.completion_value()
            }
        }
    }

    fn nemesis_step(&self, op: NemesisOp) {
        self.record(
            OpType::Info,
            Process::Nemesis,
            op.f(),
            op.invoke_value(),
            None,
            false,
        );
        tracing::info!("nemesis: {} {}", op.f(), op.invoke_value());
        let value = self.apply_nemesis(&op);
        self.record(OpType::Info, Process::Nemesis, op.f(), value, None, false);
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
    shared: Arc<Shared>,
    w: Workload,
    t: usize,
    node: String,
    rx: Receiver<Assignment>,
    done: Sender<Done>,
) {
    let mut client = shared.open_client();
    while let Ok(a) = rx.recv() {
        let reply = client.call(&shared, &node, w.request(&a.op), RPC_TIMEOUT);
        let completion = w.complete(&a.op, &reply);
        if completion.kind == OpType::Info && !w.reusable_client() {
            // The thread's process is replaced: close this client, open a fresh `c<k>` (spec §5).
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

/// Runs one test end to end and writes its results. Errors are aborts (exit 255).
pub fn run(opts: &TestOpts) -> anyhow::Result<RunOutcome> {
    let workload: Workload = opts
        .workload
        .as_str()
        .parse()
        .map_err(|e: String| anyhow!(e))?;
    let started_at = std::time::SystemTime::now();
    let dir = RunDir::create(&opts.results_dir, workload.name(), started_at)?;
    eprintln!("Seed: {} (replay with --seed {})", opts.seed, opts.seed);
    eprintln!("Results: {}", dir.path().display());

    let mut seeds = ChaCha8Rng::seed_from_u64(opts.seed);
    let net_rng = ChaCha8Rng::seed_from_u64(seeds.random());
    let mut op_rng = ChaCha8Rng::seed_from_u64(seeds.random());
    let nemesis_seed: u64 = seeds.random();

    let latency = Latency::new(
        opts.latency_dist
            .as_str()
            .parse()
            .map_err(|e| anyhow!("{e}"))?,
        opts.latency_ms,
    )?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        net: Mutex::new(Net::new(latency, net_rng)),
        wake: Condvar::new(),
        routes: Mutex::new(Routes::default()),
        stop: AtomicBool::new(false),
        next_client: AtomicU64::new(0),
        wedged: Mutex::new(Vec::new()),
        routed: AtomicU64::new(0),
    });
    let router_handle = {
        let s = Arc::clone(&shared);
        thread::Builder::new()
            .name("router".into())
            .spawn(move || router(s))?
    };
    let ctx = Ctx {
        opts,
        shared: Arc::clone(&shared),
        dir: &dir,
        nodes: Mutex::new(Nodes {
            procs: HashMap::new(),
            killed: HashMap::new(),
        }),
        history: Mutex::new(Vec::new()),
    };

    let outcome = drive(&ctx, workload, &mut op_rng, nemesis_seed);

    // Teardown: kill every node (SIGKILL, as Maelstrom does), stop the router.
    let crash = ctx.crashed_node();
    for (id, p) in lock(&ctx.nodes).procs.drain() {
        if let Err(e) = p.stop() {
            tracing::warn!("stopping {id}: {e}");
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
    shared.wake.notify_all();
    let _ = router_handle.join();

    let history = std::mem::take(&mut *lock(&ctx.history));
    let journal = lock(&shared.net).take_journal();
    let lag = lock(&shared.net).lag_stats();
    dir.write_history(&history)?;
    dir.write_journal(&journal)?;

    if let Err(e) = outcome {
        dir.update_latest_links()?;
        return Err(e);
    }
    if let Some(report) = crash {
        dir.update_latest_links()?;
        bail!("{report}");
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
    });
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

fn drive(
    ctx: &Ctx<'_>,
    workload: Workload,
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
    thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = opts
            .nodes
            .iter()
            .map(|id| s.spawn(move || ctx.init_node(id)))
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow!("init thread panicked"))??;
        }
        Ok(())
    })?;
    if let Some(report) = ctx.crashed_node() {
        bail!("{report}");
    }

    // Client setup: one setup client per node; broadcast sends the topology (spec §5).
    let topo = topology::build(
        opts.topology.as_str().parse().map_err(|e| anyhow!("{e}"))?,
        &opts.nodes,
    );
    let topo_json = topology::to_json(&topo);
    thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = opts
            .nodes
            .iter()
            .map(|id| {
                let topo_json = topo_json.clone();
                s.spawn(move || -> anyhow::Result<()> {
                    let mut client = shared.open_client();
                    let result = if workload.sends_topology() {
                        match client.call(
                            shared,
                            id,
                            json!({"type": "topology", "topology": topo_json}),
                            RPC_TIMEOUT,
                        ) {
                            Reply::Body(b) => crate::workload::check_topology_ok(&b).map_err(|e| {
                                anyhow!(
                                    "node {id} answered topology badly: {e}: {}",
                                    Value::Object(b)
                                )
                            }),
                            Reply::Timeout => {
                                Err(anyhow!("node {id} did not answer topology within 5 s"))
                            }
                        }
                    } else {
                        Ok(())
                    };
                    shared.close_client(client);
                    result
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow!("setup thread panicked"))??;
        }
        Ok(())
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
    let mut process: Vec<u64> = (0..opts.concurrency as u64).collect();
    let mut busy = vec![false; opts.concurrency];

    // Nemesis.
    let nemesis_stop = Arc::new(AtomicBool::new(false));
    let main_start = shared.now();
    let time_limit_ns = opts.time_limit_secs * 1_000_000_000;
    let cutoff = main_start + time_limit_ns;
    let faults: FaultSet = opts
        .nemesis
        .iter()
        .map(|f| match f {
            crate::cli::Fault::Partition => Fault::Partition,
            crate::cli::Fault::Kill => Fault::Kill,
            crate::cli::Fault::Pause => Fault::Pause,
        })
        .collect();
    let mut plan = NemesisPlan::new(
        faults,
        opts.nemesis_interval_secs,
        opts.nodes.clone(),
        nemesis_seed,
    )?;
    let final_nemesis_ops = plan.final_ops();
    let counters = Arc::new(ProgressCounters::default());
    let progress = Progress::start(
        opts.time_limit(),
        opts.show_progress(),
        Arc::clone(&counters),
    );

    let result = thread::scope(|s| -> anyhow::Result<()> {
        let nemesis_handle = if plan.is_empty() {
            None
        } else {
            let stop = Arc::clone(&nemesis_stop);
            let plan = &mut plan;
            Some(s.spawn(move || {
                while let Some((due, op)) = plan.next(shared.now() - main_start) {
                    let at = main_start + due;
                    if at >= cutoff {
                        break;
                    }
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
            }))
        };

        // Main phase.
        let mut gen = Generator::default();
        let mut counts = [0u64; 3];
        let record_done =
            |d: Done, busy: &mut Vec<bool>, process: &mut Vec<u64>, counts: &mut [u64; 3]| {
                busy[d.worker] = false;
                let i = match d.completion.kind {
                    OpType::Ok => 0,
                    OpType::Fail => 1,
                    _ => 2,
                };
                counts[i] += 1;
                ctx.record(
                    d.completion.kind,
                    Process::Client(d.process),
                    d.op.f,
                    d.completion.value.clone(),
                    Some(&d.completion),
                    d.final_,
                );
                if d.completion.kind == OpType::Info {
                    process[d.worker] = d.process + opts.concurrency as u64;
                }
            };
        let gap = |rng: &mut ChaCha8Rng| -> u64 {
            if opts.rate <= 0.0 {
                u64::MAX
            } else {
                rng.random_range(0.0..(2.0 / opts.rate)).mul_add(1e9, 0.0) as u64
            }
        };
        let mut next_at = main_start.saturating_add(gap(op_rng));
        let mut rr = 0usize;
        let mut last_crash_check = Instant::now();
        loop {
            let now = shared.now();
            if now >= cutoff {
                break;
            }
            if last_crash_check.elapsed() > Duration::from_millis(100) {
                last_crash_check = Instant::now();
                if let Some(report) = ctx.crashed_node() {
                    nemesis_stop.store(true, Ordering::SeqCst);
                    bail!("{report}");
                }
                counters.set(
                    counts[0],
                    counts[1],
                    counts[2],
                    shared.routed.load(Ordering::Relaxed),
                );
            }
            if now >= next_at {
                if let Some(t) = (0..busy.len())
                    .map(|k| (rr + k) % busy.len())
                    .find(|&t| !busy[t])
                {
                    rr = (t + 1) % busy.len();
                    let op = workload.next_op(&mut gen, op_rng);
                    ctx.record(
                        OpType::Invoke,
                        Process::Client(process[t]),
                        op.f,
                        op.value.clone(),
                        None,
                        false,
                    );
                    busy[t] = true;
                    assign[t]
                        .send(Assignment {
                            op,
                            process: process[t],
                            final_: false,
                        })
                        .map_err(|_| anyhow!("worker {t} died"))?;
                    next_at = next_at.max(now).saturating_add(gap(op_rng));
                    continue;
                }
            }
            let wait = if now >= next_at {
                cutoff - now
            } else {
                (next_at - now).min(cutoff - now)
            };
            match done_rx.recv_timeout(Duration::from_nanos(wait).min(Duration::from_millis(100))) {
                Ok(d) => record_done(d, &mut busy, &mut process, &mut counts),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => bail!("all workers died"),
            }
        }
        // In-flight ops run to completion or time out.
        while busy.iter().any(|b| *b) {
            match done_rx.recv_timeout(RPC_TIMEOUT + Duration::from_secs(1)) {
                Ok(d) => record_done(d, &mut busy, &mut process, &mut counts),
                Err(_) => bail!("a worker did not finish its op"),
            }
        }
        nemesis_stop.store(true, Ordering::SeqCst);
        if let Some(h) = nemesis_handle {
            let _ = h.join();
        }
        progress.finish();

        // Final phase (broadcast): heal/resume/restart, wait for recovery, one final read per thread.
        if let Some(final_op) = workload.final_op() {
            for op in final_nemesis_ops {
                ctx.nemesis_step(op);
            }
            eprintln!("Waiting for recovery...");
            thread::sleep(RECOVERY_WAIT);
            if let Some(report) = ctx.crashed_node() {
                bail!("{report}");
            }
            for t in 0..busy.len() {
                ctx.record(
                    OpType::Invoke,
                    Process::Client(process[t]),
                    final_op.f,
                    final_op.value.clone(),
                    None,
                    true,
                );
                busy[t] = true;
                assign[t]
                    .send(Assignment {
                        op: final_op.clone(),
                        process: process[t],
                        final_: true,
                    })
                    .map_err(|_| anyhow!("worker {t} died"))?;
            }
            while busy.iter().any(|b| *b) {
                match done_rx.recv_timeout(RPC_TIMEOUT + Duration::from_secs(1)) {
                    Ok(d) => record_done(d, &mut busy, &mut process, &mut counts),
                    Err(_) => bail!("a worker did not finish its final read"),
                }
            }
        }
        Ok(())
    });
    drop(assign);
    for h in worker_handles {
        let _ = h.join();
    }
    result
}

//! The real-time driver: real node processes over pipes, in real time, in the run order of
//! [`crate::coordinator`] (Maelstrom's: <https://github.com/jepsen-io/maelstrom/tree/main/doc>).
//!
//! Threads (all plain `std` threads; the network is the clock-free [`Net`] behind one mutex):
//! - **router**: sleeps on a condvar until the network's next deadline (or a send wakes it), then
//!   hands due deliveries to node stdin writers and client inboxes, and those addressed to a
//!   service ([`crate::services`], which it owns) to the service, sending its reply back through
//!   the network.
//! - per node, from [`crate::process`]: a stdin writer, a stdout reader that validates each line
//!   and sends it into the network, and a stderr logger.
//! - **workers**: one per `--concurrency` slot, each owning a Maelstrom client (`c<k>`) that talks
//!   to node `t mod n` with at most one request outstanding.
//! - **driver** (the calling thread): staggers ops at `--rate` ([`OpSchedule`]), hands them to
//!   free workers, records the history, watches for crashed nodes, then runs the final phase.
//! - **nemesis**: applies the [`NemesisPlan`] (partitions, kills, pauses) on schedule, through
//!   [`apply_nemesis`]; a `start` spawns each killed node and waits for its `init_ok` before the
//!   next one.
//! - with `--web`, the **web server** ([`crate::web::live`], its own thread and tokio runtime)
//!   and, in the main phase, a **god** thread applying the live page's controls through the same
//!   path as the nemesis, taking turns with it ([`live`]).
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
//! reaped, then every process the nodes forked out of their process groups
//! ([`crate::process::kill_orphans`], when the binary made itself their reaper), the router stops,
//! the history and the journal are written (and `report.html`, after `results.json` when there are
//! results), and the `latest` links
//! point at the run (on a panic, the nodes are still killed and the router stopped). A node
//! found exited at teardown aborts the run too, and its report comes before whatever
//! error the run had already hit: a dead node is why nothing else answered.
//!
//! [`OpSchedule`]: crate::coordinator::OpSchedule
//! [`NemesisPlan`]: crate::nemesis::NemesisPlan
//! [`apply_nemesis`]: crate::coordinator::apply_nemesis

use crate::analysis::{analyse, no_live_node_ms, recoveries};
use crate::checker::AvailabilityTarget;
use crate::cli::{TestOpts, EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID};
use crate::coordinator::{Seeds, CLIENT_TIMEOUT_MS, INIT_TIMEOUT_MS, RECOVERY_MS};
use crate::nemesis::Fault;
use crate::net::{Latency, Net};
use crate::procstats::ProcStats;
use crate::results::{ProgressCounters, RunDir};
use crate::services::{ServiceId, Services};
use crate::topology;
use crate::workload::{ClientWorkload, Reply};
use anyhow::{anyhow, bail};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub mod live;
mod nodes;
mod switchboard;
mod workers;

use live::LiveHub;

use nodes::{History, NodeCrashed, Nodes, RunCtx};
use switchboard::{router, RouterGuard, Routes, Switchboard};
use workers::{phases, worker, Assignment, Done, Workers};

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

/// Runs one test end to end and writes its results. Errors are aborts (exit 255), except a
/// workload the options cannot drive (lin-kv's concurrency), which is a
/// [`crate::cli::CliError`] (exit 254).
///
/// Once the run folder exists, whatever happens, every node process is stopped before this
/// returns, the history and the journal are written, and the nodes' data directory
/// (`<run>/data`, their working directory) is removed unless `--keep-data`.
pub fn run(opts: &TestOpts) -> anyhow::Result<RunOutcome> {
    // Before anything touches the disk: options the workload cannot run with are bad arguments.
    opts.check_workload()?;
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
        services: services_rng,
        ..
    } = Seeds::derive(opts.seed);
    let mut net = Net::new(latency, net_rng);
    net.set_journal_bodies(opts.journal_bodies);
    // The services are up before any node, reachable by every node, never partitioned.
    for service in ServiceId::ALL {
        net.register_service(service.name())?;
    }
    let services = Services::new(services_rng);

    let shared = Arc::new(Switchboard {
        start: Instant::now(),
        net: Mutex::new(net),
        wake: Condvar::new(),
        routes: Mutex::new(Routes::default()),
        stop: AtomicBool::new(false),
        next_client: AtomicU64::new(0),
        wedged: Mutex::new(Vec::new()),
        routed: AtomicU64::new(0),
        aborting: AtomicBool::new(false),
    });
    // The live dashboard (`--web`): served from here to the end of the run.
    let counters = Arc::new(ProgressCounters::default());
    let live = opts.web.map(|_| {
        Arc::new(LiveHub::new(
            Arc::clone(&shared),
            opts,
            Arc::clone(&counters),
        ))
    });
    let server = match (opts.web, &live) {
        (Some(addr), Some(hub)) => {
            let server = crate::web::live::start(addr, Arc::clone(hub))?;
            eprintln!("Live dashboard: http://{}/", server.addr());
            Some(server)
        }
        _ => None,
    };
    let router_guard = {
        let s = Arc::clone(&shared);
        RouterGuard {
            shared: Arc::clone(&shared),
            handle: Some(
                thread::Builder::new()
                    .name("router".into())
                    .spawn(move || router(s, services))?,
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
        history: Mutex::new(History::default()),
        used: Mutex::new(ProcStats::default()),
        live: live.clone(),
        nemesis_lock: Mutex::new(()),
        main_end: AtomicU64::new(0),
    };

    let children_before = crate::procstats::reaped_children();
    let outcome = drive(&ctx, workload, &mut op_rng, nemesis_seed, counters);

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

    let history = std::mem::take(&mut lock(&ctx.history).ops);
    if let Some(hub) = &live {
        // The page's last counts cover every message before the journal goes.
        hub.catch_up();
        hub.set_phase("checking");
    }
    let journal = lock(&shared.net).take_journal();
    let lag = lock(&shared.net).lag_stats();
    let bodies_not_kept = lock(&shared.net).bodies_not_kept();
    dir.write_history(&history)?;
    dir.write_journal(&journal)?;

    let report_meta = |aborted: Option<String>| crate::results::html::ReportMeta {
        workload: workload.name().to_string(),
        run: dir.name().to_string(),
        command: opts.command.clone(),
        seed: Some(opts.seed),
        nodes: opts.nodes.clone(),
        aborted,
    };
    if let Err(e) = abort_error(outcome, crashes) {
        // An aborted run has no results, but its messages may show why: the page still helps.
        let meta = report_meta(Some(format!("{e:#}")));
        if let Err(e) =
            crate::results::html::write(dir.path(), &json!({}), &history, &journal, &meta)
        {
            tracing::warn!("{e}");
        }
        dir.update_latest_links()?;
        let verdict = json!({"aborted": format!("{e:#}"), "dir": dir.path()});
        finish_live(live.as_deref(), server, verdict);
        return Err(e);
    }

    let target = opts.availability.map(|a| match a {
        crate::cli::Availability::Total => AvailabilityTarget::Total,
        crate::cli::Availability::Fraction(x) => AvailabilityTarget::Fraction(x),
    });
    let mut results = analyse(workload, &history, &journal, target, &opts.txn);
    let overloaded = lag.p99_us > LAG_P99_LIMIT_US;
    results["runner"] = json!({
        "seed": opts.seed,
        "routed": shared.routed.load(Ordering::Relaxed),
        "delivery-lag-us": {"count": lag.count, "p50": lag.p50_us, "p99": lag.p99_us, "max": lag.max_us},
        "overloaded": overloaded,
        "wedged-nodes": lock(&shared.wedged).iter().map(|(n, e)| json!({"node": n, "error": e})).collect::<Vec<_>>(),
        "nodes": *lock(&ctx.used),
        "workload": workload.name(),
        "command": opts.command,
        "journal-bodies": opts.journal_bodies,
        "journal-bodies-not-kept": bodies_not_kept,
    });
    // A kill from the live dashboard counts as a kill fault.
    let killed_by_hand = live.as_ref().is_some_and(|h| h.faults_used().kill);
    if workload == ClientWorkload::Broadcast && (opts.has_fault(Fault::Kill) || killed_by_hand) {
        // The main phase's end: the time limit (counted from the test's start, as before), or
        // when Stop ended it sooner, or ended it at all with `--time-limit 0`.
        let ended_ms = ctx.main_end.load(Ordering::SeqCst) / 1_000_000;
        let main_end_ms = match opts.time_limit_secs {
            0 => ended_ms,
            secs => (secs * 1_000).min(ended_ms),
        };
        results["runner"]["recoveries"] = json!(recoveries(
            &history,
            &opts.nodes,
            opts.concurrency,
            main_end_ms
        ));
        results["runner"]["no-live-node-ms"] =
            json!(no_live_node_ms(&history, &opts.nodes, main_end_ms));
    }
    dir.write_results(&results)?;
    // The verdict stands without its page: a failure to write it is reported, not an abort.
    if let Err(e) =
        crate::results::html::write(dir.path(), &results, &history, &journal, &report_meta(None))
    {
        tracing::warn!("{e}");
    }
    dir.update_latest_links()?;
    let exit_code = match results.get("valid?") {
        Some(Value::Bool(true)) => EXIT_VALID,
        Some(Value::Bool(false)) => EXIT_INVALID,
        _ => EXIT_UNKNOWN,
    };
    let verdict =
        json!({"valid?": results.get("valid?"), "exit-code": exit_code, "dir": dir.path()});
    finish_live(live.as_deref(), server, verdict);
    Ok(RunOutcome {
        exit_code,
        results,
        dir: Some(dir.path().to_path_buf()),
    })
}

/// How long the dashboard stays up after the run when a page is open: a few snapshots' worth,
/// so the page shows the verdict.
const LIVE_LINGER: Duration = Duration::from_millis(1_500);

/// Shows the run's outcome on the live page, lets open pages fetch it, then stops the server.
fn finish_live(hub: Option<&LiveHub>, server: Option<crate::web::Server>, verdict: Value) {
    if let Some(hub) = hub {
        hub.finish(verdict);
        if hub.pages() > 0 {
            thread::sleep(LIVE_LINGER);
        }
    }
    drop(server);
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
    counters: Arc<ProgressCounters>,
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
    if let Some(hub) = &ctx.live {
        hub.set_phase("setup");
    }

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
    let timeout = Duration::from_millis(workload.client_timeout_ms(opts.latency_ms));
    for t in 0..opts.concurrency {
        let (tx, rx) = mpsc::channel();
        assign.push(tx);
        let s = Arc::clone(shared);
        let node = opts.nodes[t % n].clone();
        let done = done_tx.clone();
        worker_handles.push(
            thread::Builder::new()
                .name(format!("worker-{t}"))
                .spawn(move || worker(s, workload, t, node, timeout, rx, done))?,
        );
    }
    drop(done_tx);
    let mut workers = Workers {
        assign,
        done_rx,
        busy: vec![false; opts.concurrency],
        process: (0..opts.concurrency as u64).collect(),
        counters,
        timeout,
        schedule: None,
        workload,
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

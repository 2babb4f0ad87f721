//! The live dashboard's view of a running test (`maelstrom test --web`), and its controls.
//!
//! [`LiveHub`] is what the web server ([`crate::web::live`]) asks for snapshots and hands the
//! page's commands to. It never adds work to the run's hot paths: the router, the nodes' readers
//! and the workers do nothing for it. What it shows comes from three places:
//! - the network's journal, read from where the hub last stopped ([`Net::journal_from`]) when a
//!   page asks for a snapshot, at most [`CHUNK`] events per look under the network's lock (the
//!   lock released between looks), so the router is never held up for long: message
//!   counts per type and per node, the latest sends and deliveries for the event monitor, and the
//!   partition drop count and current grudge;
//! - the driver's own actions, reported by the nemesis path and the setup code as they happen
//!   (a node spawned, answering `init`, killed, paused, resumed), which is all the runner knows
//!   of a node's state: it does not guess the rest (see [`LiveHub::snapshot`]);
//! - the progress counters the driver keeps anyway.
//!
//! With no page open, nothing reads the journal and the hub costs nothing.
//!
//! **Controls.** A command from the page ([`GodCommand`]) becomes a [`NemesisOp`] and goes to the
//! run's god thread (see `workers::phases`), which applies it through the same
//! [`crate::coordinator::apply_nemesis_as`] as the scheduled nemesis, serialised with it, so it is
//! recorded in the history as a nemesis op and the checkers judge it as any fault. Commands are
//! taken during the main phase only. The faults used by hand are remembered, so the final phase
//! undoes them as it undoes `--nemesis` faults. Stop ends the main phase now (with
//! `--time-limit 0` it is the only way it ends).

use super::lock;
use super::switchboard::Switchboard;
use crate::history::JournalKind;
use crate::nemesis::{isolate, Fault, FaultSet, NemesisOp, NodeSpec};
use crate::net::Net;
use crate::results::ProgressCounters;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// The most journal events read per look under the network's lock: about 0.3 ms of work, so
/// the router's delivery lag stays far below its 2 ms budget even while a page catches up.
pub const CHUNK: usize = 5_000;
/// The most chunks read per snapshot: 100,000 events, two snapshots' worth of the runner's
/// measured capacity (50,000 messages/s, a send and a delivery each), so an open page keeps up.
const CHUNKS_PER_SNAPSHOT: usize = 20;
/// Events the monitor keeps for pages to fetch (older ones are dropped).
const MONITOR_KEEP: usize = 400;
/// Of each chunk of journal events, at most this many (the latest) go to the monitor: a page
/// shows a scrolling sample, not every message (the report has them all).
const MONITOR_PER_LOOK: usize = 60;
/// A node that is up but has sent nothing for this long is shown as silent: the runner cannot
/// tell whether it is idle or stuck.
const SILENT_NS: u64 = 2_000_000_000;

/// What the page can ask for.
#[derive(Debug, Clone, Deserialize)]
pub struct GodCommand {
    pub action: GodAction,
    /// The nodes to act on (kill, restart, pause, resume: each of them; partition: the side cut
    /// off from the rest).
    #[serde(default)]
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GodAction {
    Kill,
    Restart,
    Pause,
    Resume,
    Partition,
    Heal,
    Stop,
}

/// A command the hub accepted, for the god thread: the op and its invocation value.
pub(super) struct GodOp {
    pub(super) op: NemesisOp,
    pub(super) invocation: Value,
}

/// What the runner knows of one node.
#[derive(Debug, Clone)]
struct NodeLive {
    /// `starting` (spawned, `init` not answered yet), `up`, `paused`, `killed`, or `unknown`
    /// (a signal or a restart failed: the runner cannot tell what state the process is in).
    state: &'static str,
    /// 1 for the first process, +1 per restart.
    incarnation: u32,
    /// When the state was entered, ns since the test started.
    since: u64,
    sent: u64,
    received: u64,
    /// When it last sent a message, ns.
    last_sent: Option<u64>,
}

#[derive(Debug, Default)]
struct LiveState {
    phase: String,
    main_start: Option<u64>,
    main_end: Option<u64>,
    nodes: Vec<NodeLive>,
    /// The next journal index to read.
    cursor: usize,
    sends_by_type: BTreeMap<String, u64>,
    sends: u64,
    deliveries: u64,
    dropped: u64,
    partitioned_from: BTreeMap<String, Vec<String>>,
    lag_p99_us: u64,
    monitor: VecDeque<Value>,
    /// Sequence number of the next monitor event.
    next_seq: u64,
    verdict: Option<Value>,
}

/// The live state of a run, shared by the driver and the web server.
pub struct LiveHub {
    shared: Arc<Switchboard>,
    nodes: Vec<String>,
    index: HashMap<String, usize>,
    time_limit_secs: u64,
    workload: String,
    seed: u64,
    counters: Arc<ProgressCounters>,
    state: Mutex<LiveState>,
    god: Mutex<Option<Sender<GodOp>>>,
    stop: AtomicBool,
    used: Mutex<FaultSet>,
    pages: AtomicUsize,
}

impl LiveHub {
    pub(super) fn new(
        shared: Arc<Switchboard>,
        opts: &crate::cli::TestOpts,
        counters: Arc<ProgressCounters>,
    ) -> LiveHub {
        let nodes = opts.nodes.clone();
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let state = LiveState {
            phase: "starting nodes".into(),
            nodes: vec![
                NodeLive {
                    state: "starting",
                    incarnation: 0,
                    since: 0,
                    sent: 0,
                    received: 0,
                    last_sent: None,
                };
                nodes.len()
            ],
            ..LiveState::default()
        };
        LiveHub {
            shared,
            nodes,
            index,
            time_limit_secs: opts.time_limit_secs,
            workload: opts.workload.as_str().to_string(),
            seed: opts.seed,
            counters,
            state: Mutex::new(state),
            god: Mutex::new(None),
            stop: AtomicBool::new(false),
            used: Mutex::new(FaultSet::default()),
            pages: AtomicUsize::new(0),
        }
    }

    pub(super) fn set_phase(&self, phase: &str) {
        lock(&self.state).phase = phase.to_string();
    }

    pub(super) fn main_started(&self, at: u64) {
        let mut st = lock(&self.state);
        st.main_start = Some(at);
        st.phase = "main".into();
    }

    /// Node `id` entered `state` (see [`NodeLive::state`]); `spawned` counts a new process.
    pub(super) fn node(&self, id: &str, state: &'static str, spawned: bool) {
        let Some(&i) = self.index.get(id) else { return };
        let now = self.shared.now();
        let mut st = lock(&self.state);
        let n = &mut st.nodes[i];
        if spawned {
            n.incarnation += 1;
        }
        if n.state != state {
            n.state = state;
            n.since = now;
        }
    }

    /// Node `id`'s state as the runner last set it.
    pub(super) fn node_state(&self, id: &str) -> Option<&'static str> {
        let i = *self.index.get(id)?;
        Some(lock(&self.state).nodes[i].state)
    }

    /// A nemesis op (invocation or completion) for the monitor.
    pub(super) fn fault_event(&self, f: &str, value: &Value) {
        let t = self.shared.now();
        let mut st = lock(&self.state);
        push_event(
            &mut st,
            json!({"t": ms(t), "kind": "fault", "f": f, "value": value}),
        );
    }

    /// Opens the controls for the main phase: the god thread reads the returned channel.
    pub(super) fn open_controls(&self) -> Receiver<GodOp> {
        let (tx, rx) = mpsc::channel();
        *lock(&self.god) = Some(tx);
        rx
    }

    /// Closes the controls at the main phase's end: later commands are refused.
    pub(super) fn close_controls(&self) {
        *lock(&self.god) = None;
        let now = self.shared.now();
        lock(&self.state).main_end = Some(now);
    }

    /// Whether Stop was pressed.
    pub(super) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The faults injected by hand so far.
    pub(super) fn faults_used(&self) -> FaultSet {
        *lock(&self.used)
    }

    /// Reads the rest of the journal, so the last snapshot counts every message of the run
    /// (called before the driver takes the journal away).
    pub(super) fn catch_up(&self) {
        let mut st = lock(&self.state);
        while self.read_journal(&mut st) == CHUNK {}
    }

    /// The run's outcome, shown by the page.
    pub(super) fn finish(&self, verdict: Value) {
        let mut st = lock(&self.state);
        st.phase = "done".into();
        st.verdict = Some(verdict);
    }

    /// How many pages are following the run now.
    pub fn pages(&self) -> usize {
        self.pages.load(Ordering::SeqCst)
    }

    /// A page started (`true`) or stopped (`false`) following the run.
    pub fn page(&self, open: bool) {
        let now_open = if open {
            self.pages.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.pages.fetch_sub(1, Ordering::SeqCst).saturating_sub(1)
        };
        let what = if open { "opened" } else { "closed" };
        tracing::info!("live page {what} ({now_open} open)");
    }

    /// Reads up to [`CHUNK`] journal events from the cursor into the counts; returns how many.
    /// The network's lock is held for that chunk only.
    fn read_journal(&self, st: &mut LiveState) -> usize {
        let net = lock(&self.shared.net);
        let events = net.journal_from(st.cursor);
        let take = events.len().min(CHUNK);
        let chunk = &events[..take];
        for e in chunk {
            let node = self.index.get(e.src.as_str()).copied();
            match e.kind {
                JournalKind::Send => {
                    st.sends += 1;
                    match st.sends_by_type.get_mut(&e.body_type) {
                        Some(c) => *c += 1,
                        None => {
                            st.sends_by_type.insert(e.body_type.clone(), 1);
                        }
                    }
                    if let Some(i) = node {
                        st.nodes[i].sent += 1;
                        st.nodes[i].last_sent = Some(e.time);
                    }
                }
                JournalKind::Recv => {
                    st.deliveries += 1;
                    if let Some(&i) = self.index.get(e.dest.as_str()) {
                        st.nodes[i].received += 1;
                    }
                }
            }
        }
        let sample: Vec<Value> = chunk[take.saturating_sub(MONITOR_PER_LOOK)..]
            .iter()
            .map(|e| {
                json!({
                    "t": ms(e.time),
                    "kind": if e.kind == JournalKind::Send { "send" } else { "recv" },
                    "id": e.id,
                    "src": e.src,
                    "dest": e.dest,
                    "type": e.body_type,
                })
            })
            .collect();
        st.cursor += take;
        let dropped = net.dropped_count();
        let partitioned_from = grudge_by_node(&net, &self.nodes);
        st.lag_p99_us = net.lag_stats().p99_us;
        drop(net);
        for e in sample {
            push_event(st, e);
        }
        if dropped > st.dropped {
            let t = self.shared.now();
            let n = dropped - st.dropped;
            let e = json!({"t": ms(t), "kind": "drop", "count": n, "partition": partitioned_from});
            push_event(st, e);
            st.dropped = dropped;
        }
        st.partitioned_from = partitioned_from;
        take
    }

    /// The page's view: everything it shows, with the monitor events after `since` (a sequence
    /// number from an earlier snapshot; 0 for all that are kept).
    ///
    /// Node state is what the runner did to the node (spawned, answered `init`, killed,
    /// paused, resumed), never inferred from traffic. Whether an `up` node is doing anything is
    /// another matter: `responsive` is `yes` when it sent a message in the last 2 s, and
    /// `unknown` otherwise, since a silent node may be idle or stuck and the runner cannot tell.
    pub fn snapshot(&self, since: u64) -> Value {
        let mut st = lock(&self.state);
        // Chunk by chunk, the network's lock released between them, so the router gets its
        // turn; bounded, so a page opened late on a fast run catches up over a few snapshots.
        for _ in 0..CHUNKS_PER_SNAPSHOT {
            if self.read_journal(&mut st) < CHUNK {
                break;
            }
        }
        let now = self.shared.now();
        let wedged: HashMap<String, String> = lock(&self.shared.wedged).iter().cloned().collect();
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .zip(&st.nodes)
            .map(|(id, n)| {
                let responsive = match (n.state, n.last_sent) {
                    ("up", Some(t)) if now.saturating_sub(t) < SILENT_NS => "yes",
                    ("up", _) => "unknown",
                    _ => "no",
                };
                json!({
                    "id": id,
                    "state": n.state,
                    "since": ms(n.since),
                    "incarnation": n.incarnation,
                    "sent": n.sent,
                    "received": n.received,
                    "responsive": responsive,
                    "partitioned-from": st.partitioned_from.get(id).cloned().unwrap_or_default(),
                    "wedged": wedged.get(id),
                })
            })
            .collect();
        let events: Vec<&Value> = st
            .monitor
            .iter()
            .filter(|e| e["seq"].as_u64().is_some_and(|s| s >= since))
            .collect();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "workload": self.workload,
            "seed": self.seed,
            "phase": st.phase,
            "t": ms(now),
            "main-start": st.main_start.map(ms),
            "main-end": st.main_end.map(ms),
            "time-limit": self.time_limit_secs,
            "controls": lock(&self.god).is_some(),
            "ops": {"ok": load(&self.counters.ok), "fail": load(&self.counters.fail), "info": load(&self.counters.info)},
            "routed": self.shared.routed.load(Ordering::Relaxed),
            "sends": st.sends,
            "deliveries": st.deliveries,
            "dropped": st.dropped,
            "sends-by-type": st.sends_by_type,
            "lag-p99-us": st.lag_p99_us,
            "nodes": nodes,
            "events": events,
            "next-seq": st.next_seq,
            "verdict": st.verdict,
        })
    }

    /// Takes a command from the page. `Ok` says what was done or queued; `Err` why it was
    /// refused (bad nodes, or not in the main phase).
    pub fn command(&self, cmd: GodCommand) -> Result<String, String> {
        if cmd.action == GodAction::Stop {
            if lock(&self.god).is_none() {
                return Err("Stop works during the main phase only".into());
            }
            self.stop.store(true, Ordering::SeqCst);
            return Ok("stopping: the main phase ends now".into());
        }
        let mut chosen: Vec<String> = Vec::new();
        for id in &cmd.nodes {
            if !self.index.contains_key(id) {
                return Err(format!("no node {id:?}"));
            }
        }
        for n in &self.nodes {
            if cmd.nodes.contains(n) {
                chosen.push(n.clone());
            }
        }
        let needs_nodes = !matches!(cmd.action, GodAction::Heal);
        if needs_nodes && chosen.is_empty() {
            return Err("choose at least one node".into());
        }
        let invocation = json!(chosen);
        let target = if chosen.len() == 1 {
            NodeSpec::One
        } else {
            NodeSpec::Random
        };
        let mut ops = Vec::new();
        let fault = match cmd.action {
            GodAction::Kill => {
                ops.push((
                    NemesisOp::Kill {
                        target,
                        nodes: chosen,
                    },
                    invocation,
                ));
                Fault::Kill
            }
            GodAction::Restart => {
                ops.push((NemesisOp::Start { nodes: chosen }, invocation));
                Fault::Kill
            }
            GodAction::Pause => {
                ops.push((
                    NemesisOp::Pause {
                        target,
                        nodes: chosen,
                    },
                    invocation,
                ));
                Fault::Pause
            }
            GodAction::Resume => {
                ops.push((NemesisOp::Resume { nodes: chosen }, invocation));
                Fault::Pause
            }
            GodAction::Partition => {
                if chosen.len() == self.nodes.len() {
                    return Err("a partition needs nodes on both sides".into());
                }
                // One partition at a time, as the scheduled nemesis does: heal the last first.
                if !lock(&self.shared.net)
                    .grudge()
                    .values()
                    .all(|s| s.is_empty())
                {
                    ops.push((NemesisOp::StopPartition, Value::Null));
                }
                let p = isolate(&chosen, &self.nodes);
                ops.push((NemesisOp::StartPartition(p), invocation));
                Fault::Partition
            }
            GodAction::Heal => {
                ops.push((NemesisOp::StopPartition, Value::Null));
                Fault::Partition
            }
            GodAction::Stop => unreachable!("handled above"),
        };
        let god = lock(&self.god);
        let Some(tx) = god.as_ref() else {
            return Err("the controls work during the main phase only".into());
        };
        let what: Vec<String> = ops
            .iter()
            .map(|(op, v)| format!("{} {}", op.f(), v))
            .collect();
        for (op, invocation) in ops {
            tx.send(GodOp { op, invocation })
                .map_err(|_| "the run is ending".to_string())?;
        }
        lock(&self.used).insert(fault);
        Ok(format!("queued: {}", what.join(", ")))
    }
}

/// Appends a monitor event with the next sequence number, dropping the oldest past the limit.
fn push_event(st: &mut LiveState, mut e: Value) {
    e["seq"] = json!(st.next_seq);
    st.next_seq += 1;
    st.monitor.push_back(e);
    while st.monitor.len() > MONITOR_KEEP {
        st.monitor.pop_front();
    }
}

/// Each node that drops messages → the sources it drops, in node-list order (`nodes`).
fn grudge_by_node(net: &Net, nodes: &[String]) -> BTreeMap<String, Vec<String>> {
    net.grudge()
        .iter()
        .filter(|(_, srcs)| !srcs.is_empty())
        .map(|(node, srcs)| {
            let v: Vec<String> = nodes
                .iter()
                .filter(|n| srcs.contains(*n))
                .cloned()
                .collect();
            (node.clone(), v)
        })
        .collect()
}

/// ns → ms, for the page.
fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Latency, LatencyDist};
    use crate::run::switchboard::Routes;
    use clap::Parser;
    use rand::SeedableRng;
    use std::sync::atomic::AtomicU64;
    use std::sync::Condvar;
    use std::time::Instant;

    fn hub() -> LiveHub {
        let cli = crate::cli::Cli::try_parse_from([
            "maelstrom",
            "test",
            "-w",
            "broadcast",
            "--bin",
            "/bin/true",
            "--node-count",
            "5",
        ])
        .unwrap();
        let crate::cli::Command::Test(args) = cli.command else {
            panic!("not a test command")
        };
        let opts = args.resolve().unwrap();
        let latency = Latency::new(LatencyDist::Constant, 0).unwrap();
        let shared = Arc::new(Switchboard {
            start: Instant::now(),
            net: Mutex::new(Net::new(latency, rand_chacha::ChaCha8Rng::seed_from_u64(1))),
            wake: Condvar::new(),
            routes: Mutex::new(Routes::default()),
            stop: AtomicBool::new(false),
            next_client: AtomicU64::new(0),
            wedged: Mutex::new(Vec::new()),
            routed: AtomicU64::new(0),
            aborting: AtomicBool::new(false),
        });
        LiveHub::new(shared, &opts, Arc::new(ProgressCounters::default()))
    }

    fn cmd(action: GodAction, nodes: &[&str]) -> GodCommand {
        GodCommand {
            action,
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn controls_become_nemesis_ops_in_the_main_phase_only() {
        let hub = hub();
        assert!(
            hub.command(cmd(GodAction::Kill, &["n1"])).is_err(),
            "before the main phase"
        );
        assert!(hub.command(cmd(GodAction::Stop, &[])).is_err());
        let rx = hub.open_controls();
        // Refused: unknown nodes, no nodes, everyone on one side.
        assert!(hub.command(cmd(GodAction::Kill, &["n9"])).is_err());
        assert!(hub.command(cmd(GodAction::Pause, &[])).is_err());
        assert!(hub
            .command(cmd(GodAction::Partition, &["n0", "n1", "n2", "n3", "n4"]))
            .is_err());
        assert!(rx.try_recv().is_err());
        assert_eq!(hub.faults_used(), FaultSet::default());

        hub.command(cmd(GodAction::Kill, &["n3", "n1"])).unwrap();
        let g = rx.try_recv().unwrap();
        // Nodes in node-list order, named in the invocation.
        assert!(matches!(&g.op, NemesisOp::Kill { nodes, .. } if nodes == &["n1", "n3"]));
        assert_eq!(g.invocation, json!(["n1", "n3"]));
        hub.command(cmd(GodAction::Partition, &["n2"])).unwrap();
        let g = rx.try_recv().unwrap();
        let NemesisOp::StartPartition(p) = &g.op else {
            panic!("{:?}", g.op)
        };
        assert_eq!(p.grudge["n2"].len(), 4);
        hub.command(cmd(GodAction::Heal, &[])).unwrap();
        assert!(matches!(
            rx.try_recv().unwrap().op,
            NemesisOp::StopPartition
        ));
        let used = hub.faults_used();
        assert!(used.kill && used.partition && !used.pause);

        assert!(!hub.stop_requested());
        hub.command(cmd(GodAction::Stop, &[])).unwrap();
        assert!(hub.stop_requested());
        hub.close_controls();
        assert!(hub.command(cmd(GodAction::Resume, &["n1"])).is_err());
    }

    #[test]
    fn node_state_is_what_the_runner_did_and_unknown_otherwise() {
        let hub = hub();
        let state = |s: &Value, i: usize| {
            (
                s["nodes"][i]["state"].clone(),
                s["nodes"][i]["responsive"].clone(),
            )
        };
        let s = hub.snapshot(0);
        assert_eq!(s["nodes"].as_array().unwrap().len(), 5);
        assert_eq!(state(&s, 0), (json!("starting"), json!("no")));
        hub.node("n0", "up", true);
        hub.node("n1", "killed", false);
        hub.node("nobody", "up", true);
        let s = hub.snapshot(0);
        // Up but silent: the runner cannot tell idle from stuck.
        assert_eq!(state(&s, 0), (json!("up"), json!("unknown")));
        assert_eq!(s["nodes"][0]["incarnation"], 1);
        assert_eq!(state(&s, 1), (json!("killed"), json!("no")));
        hub.fault_event("kill", &json!(["n1"]));
        let s = hub.snapshot(0);
        let next = s["next-seq"].as_u64().unwrap();
        assert_eq!(s["events"][0]["kind"], "fault");
        assert!(hub.snapshot(next)["events"].as_array().unwrap().is_empty());
    }
}

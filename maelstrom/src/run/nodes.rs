//! Node processes: spawning, `init`, crash detection, teardown, and the nemesis's actions on
//! them.

use super::live::LiveHub;
use super::switchboard::{stdout_sink, Switchboard};
use super::{lock, GaveUp, INIT_TIMEOUT, INTERRUPTED};
use crate::cli::TestOpts;
use crate::coordinator::{apply_nemesis_as, NemesisActions, Started};
use crate::history::{ChunkPool, Op, OpType, OpValue, Process};
use crate::nemesis::{NemesisOp, Partition};
use crate::process::{kill_orphans, NodeCommand, NodeProcess, STOP_TIMEOUT};
use crate::procstats::ProcStats;
use crate::results::RunDir;
use crate::workload::{Completion, Reply};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The live node processes and which of them are down on purpose.
pub(super) struct Nodes {
    pub(super) procs: HashMap<String, NodeProcess>,
    pub(super) killed: HashMap<String, bool>,
}

pub(super) struct RunCtx<'a> {
    pub(super) opts: &'a TestOpts,
    pub(super) shared: Arc<Switchboard>,
    pub(super) dir: &'a RunDir,
    pub(super) nodes: Mutex<Nodes>,
    pub(super) history: Mutex<History>,
    /// CPU and peak memory of every node incarnation, read from `/proc` just before it is killed.
    pub(super) used: Mutex<ProcStats>,
    /// The live dashboard's hub (`--web`), told of every change the runner makes to a node.
    pub(super) live: Option<Arc<LiveHub>>,
    /// Held while a nemesis op is applied: the scheduled nemesis and the dashboard's controls
    /// take turns, as Jepsen's single nemesis worker would.
    pub(super) nemesis_lock: Mutex<()>,
    /// When the main phase ended (ns since the test started; 0 before).
    pub(super) main_end: AtomicU64,
}

/// The history as it is recorded, with the pool that set reads' chunks are shared through
/// ([`OpValue::recorded`]).
#[derive(Default)]
pub(super) struct History {
    pub(super) ops: Vec<Op>,
    pool: ChunkPool,
}

impl RunCtx<'_> {
    pub(super) fn record(
        &self,
        kind: OpType,
        process: Process,
        f: &str,
        value: Value,
        c: Option<&Completion>,
        final_: bool,
    ) {
        let mut h = lock(&self.history);
        let value = OpValue::recorded(kind, f, value, &mut h.pool);
        let index = h.ops.len();
        h.ops.push(Op {
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

    pub(super) fn spawn_node(&self, id: &str) -> anyhow::Result<NodeProcess> {
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
        self.live_node(id, "starting", true);
        let input = p.input();
        lock(&self.shared.routes)
            .nodes
            .insert(id.to_string(), input);
        Ok(p)
    }

    /// Sends `init` from a fresh client and waits for `init_ok`. A node that
    /// exits meanwhile fails the init at once, with its crash report.
    pub(super) fn init_node(&self, id: &str) -> anyhow::Result<()> {
        let mut client = self.shared.open_client();
        let body = json!({"type": "init", "node_id": id, "node_ids": self.opts.nodes});
        let reply = client.call(&self.shared, id, body, INIT_TIMEOUT, &|| {
            self.node_exited(id) || self.shared.aborting.load(Ordering::Relaxed)
        });
        self.shared.close_client(client);
        let answered = matches!(&reply, Reply::Body(b) if b.get("type").and_then(Value::as_str) == Some("init_ok"));
        self.live_node(id, if answered { "up" } else { "unknown" }, false);
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

    /// The driver's periodic check (every loop wakes at least every 100 ms): a crashed node or an
    /// interrupt (SIGINT/SIGTERM) aborts the run, which still tears down every node.
    pub(super) fn checkpoint(&self) -> anyhow::Result<()> {
        self.check_crashes()?;
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted by a signal; every node was stopped");
        }
        Ok(())
    }

    /// The first node (in node-list order) that exited without being killed by the nemesis:
    /// Maelstrom's `:node-crashed`, as an error carrying the crash report.
    pub(super) fn check_crashes(&self) -> Result<(), NodeCrashed> {
        match self.opts.nodes.iter().find_map(|id| self.crash_of(id)) {
            Some(crash) => Err(crash),
            None => Ok(()),
        }
    }

    /// Node `id`'s crash if its current incarnation exited on its own.
    pub(super) fn crash_of(&self, id: &str) -> Option<NodeCrashed> {
        let nodes = lock(&self.nodes);
        if nodes.killed.get(id).copied().unwrap_or(false) {
            return None;
        }
        let p = nodes.procs.get(id)?;
        p.try_exit_status()
            .map(|status| NodeCrashed::of(id, p, status))
    }

    /// Cheap check (no report) that node `id` exited on its own.
    pub(super) fn node_exited(&self, id: &str) -> bool {
        let nodes = lock(&self.nodes);
        !nodes.killed.get(id).copied().unwrap_or(false)
            && nodes
                .procs
                .get(id)
                .is_some_and(|p| p.try_exit_status().is_some())
    }

    /// Adds a live node's CPU and peak memory (from `/proc`) to the run's totals.
    pub(super) fn account(&self, p: &NodeProcess) {
        if let Some(s) = ProcStats::read(p.pid()) {
            lock(&self.used).add(s);
        }
    }

    /// Teardown: SIGKILL every node, in node-list order, kill whatever processes they left
    /// behind ([`kill_orphans`]), give the I/O threads the rest of [`STOP_TIMEOUT`] to drain, and
    /// return the crashes of those that had exited on their own (not killed by the nemesis).
    pub(super) fn stop_nodes(&self) -> Vec<NodeCrashed> {
        let start = std::time::Instant::now();
        let mut procs: Vec<(String, NodeProcess)> = lock(&self.nodes).procs.drain().collect();
        let order = |id: &str| self.opts.nodes.iter().position(|n| n == id);
        procs.sort_by_key(|(id, _)| order(id));
        let mut crashes = Vec::new();
        for (id, p) in &procs {
            lock(&self.shared.routes).nodes.remove(id);
            self.account(p);
            match p.terminate() {
                Ok(stopped) if stopped.exited_on_its_own => {
                    crashes.push(NodeCrashed::of(id, p, stopped.status))
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("stopping {id}: {e}"),
            }
        }
        let orphans = kill_orphans(STOP_TIMEOUT);
        let alive: Vec<String> = orphans
            .iter()
            .filter(|o| !o.dead)
            .map(ToString::to_string)
            .collect();
        if !alive.is_empty() {
            let list = alive;
            tracing::warn!(
                "killed {} processes the nodes left behind (forked out of their process groups): {}",
                list.len(),
                list.join(", ")
            );
        }
        for (id, p) in &procs {
            if !p.wait_for_io(STOP_TIMEOUT.saturating_sub(start.elapsed())) {
                tracing::warn!(
                    "node {id}: its pipes are still open after teardown (held by a process it left behind)"
                );
            }
        }
        crashes
    }

    /// Performs one nemesis op ([`apply_nemesis`]) and records its completion. A `start` has
    /// completed when it returns: each restarted node has answered `init` (or failed to).
    pub(super) fn nemesis_step(&self, op: NemesisOp) {
        let invocation = op.invoke_value();
        self.nemesis_step_as(op, invocation);
    }

    /// [`RunCtx::nemesis_step`] with the invocation recorded as `invocation` (an op from the
    /// live dashboard names the nodes chosen).
    pub(super) fn nemesis_step_as(&self, op: NemesisOp, invocation: Value) {
        let _turn = lock(&self.nemesis_lock);
        let mut actions = RealNemesis(self);
        if let Some(value) = apply_nemesis_as(&mut actions, &op, invocation) {
            actions.record_nemesis(&op, value);
        }
    }

    /// Tells the dashboard (if any) that node `id` is now in `state`.
    pub(super) fn live_node(&self, id: &str, state: &'static str, spawned: bool) {
        if let Some(hub) = &self.live {
            hub.node(id, state, spawned);
        }
    }

    /// Node `id`'s state on the dashboard, if there is one.
    fn live_state(&self, id: &str) -> Option<&'static str> {
        self.live.as_ref().and_then(|h| h.node_state(id))
    }
}

/// The nemesis's actions on real processes and the shared network.
pub(super) struct RealNemesis<'c, 'a>(&'c RunCtx<'a>);

impl NemesisActions for RealNemesis<'_, '_> {
    fn record_nemesis(&mut self, op: &NemesisOp, value: Value) {
        if let Some(hub) = &self.0.live {
            hub.fault_event(op.f(), &value);
        }
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
        drop(n);
        ctx.live_node(id, "killed", false);
    }

    fn pause_node(&mut self, id: &str) {
        let ctx = self.0;
        let Some(paused) = lock(&ctx.nodes).procs.get_mut(id).map(|p| p.pause()) else {
            return;
        };
        if let Err(e) = &paused {
            tracing::warn!("pause {id}: {e}");
        }
        // A killed node stays killed on the page, whatever a signal to it did.
        if ctx.live_state(id) != Some("killed") {
            ctx.live_node(id, if paused.is_ok() { "paused" } else { "unknown" }, false);
        }
    }

    fn resume_node(&mut self, id: &str) {
        let ctx = self.0;
        let Some(resumed) = lock(&ctx.nodes).procs.get_mut(id).map(|p| p.resume()) else {
            return;
        };
        if let Err(e) = &resumed {
            tracing::warn!("resume {id}: {e}");
        }
        match (ctx.live_state(id), resumed.is_ok()) {
            (Some("killed") | None, _) => {}
            (Some("paused" | "unknown"), true) => ctx.live_node(id, "up", false),
            (_, true) => {}
            (_, false) => ctx.live_node(id, "unknown", false),
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

/// A node exited on its own (Maelstrom's `:node-crashed`); the message is the crash report.
#[derive(Debug, thiserror::Error)]
#[error("{report}")]
pub(super) struct NodeCrashed {
    pub(super) node: String,
    /// `Node n1 crashed with exit code 0`.
    pub(super) summary: String,
    /// The summary, then the last stdout and stderr lines and the log's path.
    pub(super) report: String,
}

impl NodeCrashed {
    pub(super) fn of(node: &str, p: &NodeProcess, status: std::process::ExitStatus) -> NodeCrashed {
        NodeCrashed {
            node: node.to_string(),
            summary: p.crash_summary(status),
            report: p.crash_report(status),
        }
    }
}

//! The phase machine: init, setup, main, drain, final nemesis ops and recovery, final reads and
//! the idle check, in the order of [`crate::coordinator`], each phase beginning when the previous
//! one's last event is handled. The nemesis runs here too: its plan's ops during the main phase,
//! then its final ops, each applied through [`apply_nemesis`].

use std::collections::{BTreeSet, VecDeque};

use murmur::node::Workload;
use serde_json::{json, Value};

use super::clients::{Purpose, Worker};
use super::node::{Proc, SimNode};
use super::scheduler::Event;
use super::{ProbeEvent, Sim, TraceLevel, Violation, INIT_TIMEOUT_MS, MS};
use crate::coordinator::{
    apply_nemesis, next_nemesis_op, started_value, FinalOps, NemesisActions, OpSchedule, Started,
};
use crate::history::{OpType, Process};
use crate::nemesis::{NemesisOp, Partition};
use crate::services::ServiceId;
use crate::topology;
use crate::workload::{OpSpec, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Where the run is, in the order of [`crate::coordinator`].
pub(super) enum Phase {
    /// Processes start and are sent `init`.
    Init,
    /// `topology`, if the client workload sends one.
    Setup,
    /// Client ops and the nemesis until the time limit.
    Main,
    /// Time limit reached: waiting for in-flight ops and the nemesis.
    Drain,
    /// Final nemesis ops and recovery wait.
    Recovery,
    /// One final read per worker.
    Final,
    /// Nodes must stay silent with each other.
    Idle,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Which ops the nemesis performs: its plan's, or the final ones (heal, resume, restart).
pub(super) enum NemesisMode {
    Main,
    Final,
}

/// A nemesis `start` waiting for the nodes it restarted to answer `init`.
pub(super) struct Starting {
    /// The op's nodes.
    pub(super) nodes: Vec<String>,
    /// Restarted nodes that have not answered yet.
    pub(super) waiting: BTreeSet<usize>,
    /// Restarted nodes that answered `init_ok`.
    pub(super) started: Vec<String>,
}

impl<W: Workload> Sim<'_, W> {
    /// The init phase begins: the services are registered, every node is registered and its process starts after a seeded
    /// delay ([`Event::Boot`]).
    pub(super) fn start(&mut self) {
        for service in ServiceId::ALL {
            self.net
                .register_service(service.name())
                .expect("fresh service id");
        }
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
                compacting: false,
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

    /// A node answered `init` (or did not, in time). All of them: setup. A restarted one: the
    /// nemesis's `start` may be complete.
    pub(super) fn init_done(&mut self, node: usize, reply: Reply) {
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
        if let Some(s) = &mut self.nemesis_starting {
            s.waiting.remove(&node);
            if ok {
                s.started.push(self.node_ids[node].clone());
            }
            if s.waiting.is_empty() {
                let Starting {
                    nodes, mut started, ..
                } = self.nemesis_starting.take().expect("present");
                started.sort_by_key(|id| self.index[id]);
                // As the runner records it: the nodes actually restarted.
                self.nemesis_complete(NemesisOp::Start { nodes }, started_value(&started));
            }
        }
    }

    /// Every node is initialised: one setup client per node sends `topology`, if any.
    pub(super) fn begin_setup(&mut self) {
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

    /// Setup is done: workers open, ops and the nemesis start, the time limit runs.
    pub(super) fn begin_main(&mut self) {
        self.phase = Phase::Main;
        self.main_start = self.now;
        self.cutoff = self.now + self.cfg.time_limit_ms * MS;
        self.note(TraceLevel::Events, || "main phase".into());
        for t in 0..self.cfg.concurrency {
            let client = self.open_client(Purpose::Worker(t));
            self.workers
                .push(Worker::new(t % self.cfg.nodes, client, t as u64));
        }
        self.at(self.cutoff, Event::MainEnd);
        let ops = OpSchedule::start(
            self.cfg.rate,
            self.workers.len(),
            self.main_start,
            &mut self.op_rng,
        )
        .for_nodes(self.cfg.nodes)
        .with_txn(self.cfg.txn);
        if ops.next_at() < self.cutoff {
            self.at(ops.next_at(), Event::NextOp);
        }
        self.ops = Some(ops);
        self.nemesis_next();
    }

    /// Recovery is over: every worker performs its final ops ([`FinalOps`]).
    pub(super) fn begin_final_reads(&mut self) {
        self.note(TraceLevel::Events, || "final reads".into());
        self.phase = Phase::Final;
        for w in 0..self.workers.len() {
            let finals = match &self.ops {
                Some(ops) => ops.final_ops(self.cfg.client, self.now),
                None => FinalOps::Once(self.cfg.client.final_op()),
            };
            self.workers[w].finals = Some(finals);
        }
        for w in 0..self.workers.len() {
            self.final_next(w);
        }
        if self.workers.is_empty() {
            self.begin_idle();
        }
    }

    /// Worker `w` is free in the final phase: its next final op, now or after its wait; once
    /// every worker is done and idle, the idle check.
    pub(super) fn final_next(&mut self, w: usize) {
        if self.phase != Phase::Final {
            return;
        }
        let worker = &mut self.workers[w];
        let next = match worker.finals.as_mut() {
            Some(f) if !worker.finals_done => f.next(self.now, &mut self.op_rng),
            _ => None,
        };
        match next {
            Some((0, op)) => self.invoke(w, op, true),
            Some((gap, op)) => self.at(self.now + gap, Event::FinalOp { worker: w, op }),
            None => {
                self.workers[w].finals_done = true;
                if self
                    .workers
                    .iter()
                    .all(|w| w.finals_done && w.busy.is_none())
                {
                    self.begin_idle();
                }
            }
        }
    }

    /// Worker `w`'s delayed final op is due: invoked if the final phase still takes ops.
    pub(super) fn final_op_due(&mut self, w: usize, op: OpSpec) {
        if self.phase != Phase::Final {
            return;
        }
        let open = self.workers[w]
            .finals
            .as_ref()
            .is_some_and(|f| f.open(self.now));
        if open {
            self.invoke(w, op, true);
        } else {
            self.workers[w].finals = None;
            self.final_next(w);
        }
    }

    /// Asks the plan for the next main-phase op (the nemesis just became free).
    pub(super) fn nemesis_next(&mut self) {
        if self.nemesis_mode != NemesisMode::Main || self.phase != Phase::Main {
            return;
        }
        let next = if self.cfg.script.is_empty() {
            next_nemesis_op(&mut self.plan, self.now, self.main_start, self.cutoff)
        } else {
            self.cfg.script.get(self.script_next).and_then(|(off, op)| {
                let at = (self.main_start + off * MS).max(self.now);
                (at < self.cutoff).then(|| (at, op.clone()))
            })
        };
        if let Some((at, op)) = next {
            self.script_next += 1;
            self.at(at, Event::Nemesis(op));
        }
    }

    /// Performs a nemesis op ([`apply_nemesis`]); it completes now, or (a `start` that restarted
    /// nodes) once they answer `init`.
    pub(super) fn nemesis_step(&mut self, op: NemesisOp) {
        if let Some(value) = apply_nemesis(self, &op) {
            self.nemesis_complete(op, value);
        }
    }

    /// Records a nemesis op's completion; the nemesis is free for its next op.
    pub(super) fn nemesis_complete(&mut self, op: NemesisOp, value: Value) {
        self.record_nemesis(&op, value);
        match self.nemesis_mode {
            NemesisMode::Main if self.phase == Phase::Main => self.nemesis_next(),
            NemesisMode::Main => self.maybe_begin_final(),
            NemesisMode::Final => self.nemesis_final_next(),
        }
    }

    /// Enters the final phase once the main phase is over, every worker is idle and the nemesis is
    /// free.
    pub(super) fn maybe_begin_final(&mut self) {
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

    /// The next final nemesis op; after the last, the recovery wait (or the idle check).
    pub(super) fn nemesis_final_next(&mut self) {
        match self.nemesis_queue.pop_front() {
            Some(op) => self.nemesis_step(op),
            None => {
                // txn nodes replicate in the background and have no final reads: they get the
                // recovery wait too, to catch up after the last heal before the idle check.
                let catch_up = matches!(self.cfg.client, crate::workload::ClientWorkload::Txn(_));
                if self.cfg.client.has_final_phase() || catch_up {
                    self.at(self.now + self.cfg.recovery_ms * MS, Event::FinalReads);
                } else {
                    self.begin_idle();
                }
            }
        }
    }

    /// The idle check begins: nothing is asked of the nodes until it ends.
    pub(super) fn begin_idle(&mut self) {
        self.phase = Phase::Idle;
        self.idle_start = self.now;
        self.idle_journal = self.net.journal_len();
        self.note(TraceLevel::Events, || "idle check".into());
        self.at(self.now + self.cfg.idle_check_ms * MS, Event::IdleEnd);
    }
}

/// The nemesis's actions on simulated nodes and the simulated network. Unknown node ids are
/// ignored; the node-level actions are idempotent ([`Sim::kill`], [`Sim::restart`], …).
impl<W: Workload> NemesisActions for Sim<'_, W> {
    fn record_nemesis(&mut self, op: &NemesisOp, value: Value) {
        self.record(OpType::Info, Process::Nemesis, op.f(), value, None, false);
    }

    fn announce(&mut self, op: &NemesisOp) {
        self.note(TraceLevel::Events, || {
            let what = match op {
                NemesisOp::StartPartition(p) => p.description.to_string(),
                NemesisOp::StopPartition => String::new(),
                _ => format!("{:?}", op.nodes()),
            };
            format!("nemesis {} {} {what}", op.f(), op.invoke_value())
        });
    }

    fn install_grudge(&mut self, partition: &Partition) {
        self.net.set_grudge(self.now, partition.grudge.clone());
        self.stats.partitions += 1;
        self.probe.event(self.now / MS, ProbeEvent::Partitioned);
    }

    fn heal(&mut self) {
        self.net.heal(self.now);
        self.probe.event(self.now / MS, ProbeEvent::Healed);
    }

    fn kill_node(&mut self, node: &str) {
        if let Some(&i) = self.index.get(node) {
            self.kill(i);
        }
    }

    fn pause_node(&mut self, node: &str) {
        if let Some(&i) = self.index.get(node) {
            self.pause(i);
        }
    }

    fn resume_node(&mut self, node: &str) {
        if let Some(&i) = self.index.get(node) {
            self.resume(i);
        }
    }

    /// Restarts the nodes that are down; each boots after a seeded delay, so the op completes
    /// when the last of them has answered `init` ([`Sim::init_done`]).
    fn start_nodes(&mut self, nodes: &[String]) -> Started {
        let targets: Vec<usize> = nodes
            .iter()
            .filter_map(|n| self.index.get(n).copied())
            .collect();
        let waiting: BTreeSet<usize> = targets.into_iter().filter(|&i| self.restart(i)).collect();
        if waiting.is_empty() {
            return Started::Now(Vec::new());
        }
        self.nemesis_starting = Some(Starting {
            nodes: nodes.to_vec(),
            waiting,
            started: Vec::new(),
        });
        Started::Later
    }
}

//! The virtual clock and the event queue: one loop pops, in time order, either the network's
//! next delivery ([`Net::next_deadline`], deliveries first on ties) or the next scheduled
//! [`Event`] (ties in scheduling order), and hands it to its handler, which runs in zero virtual
//! time.
//!
//! [`Net::next_deadline`]: crate::net::Net::next_deadline

use murmur::node::Workload;

use super::node::Proc;
use super::phases::Phase;
use super::{Sim, TraceLevel, Violation};
use crate::nemesis::NemesisOp;
use crate::workload::{OpSpec, Reply};

/// Something scheduled on the virtual clock.
#[derive(Debug)]
pub(super) enum Event {
    /// A node's sync timer, set to the workload's [`Workload::next_tick`] (stale if the
    /// incarnation changed, or if the timer was re-armed since).
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
    /// A worker's op that needed no request completes.
    LocalDone { worker: usize },
    /// A worker's final op falls due (kafka's polls are spaced out).
    FinalOp { worker: usize, op: OpSpec },
    /// The idle check is over: stop.
    IdleEnd,
}

impl<W: Workload> Sim<'_, W> {
    /// Schedules `ev` at virtual time `t` (not before now).
    pub(super) fn at(&mut self, t: u64, ev: Event) {
        self.seq += 1;
        self.events.insert((t.max(self.now), self.seq), ev);
    }

    /// Runs until the run is done: each step pops, in time order, the network's next deliveries
    /// (first on ties) or the next event (ties in scheduling order).
    pub(super) fn run_loop(&mut self) {
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

    /// Ends the run with [`Violation::Aborted`].
    pub(super) fn abort(&mut self, why: String) {
        self.note(TraceLevel::Events, || format!("abort: {why}"));
        self.violations.push(Violation::Aborted(why));
        self.phase = Phase::Done;
    }

    /// Handles one event; each handler checks that it is still relevant (incarnation, phase).
    pub(super) fn event(&mut self, ev: Event) {
        match ev {
            Event::Tick { node, inc } => self.timer(node, inc),
            Event::FlushDone { node, inc } => self.flush_done(node, inc),
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
            Event::FinalReads => self.begin_final_reads(),
            Event::LocalDone { worker } => self.local_done(worker),
            Event::FinalOp { worker, op } => self.final_op_due(worker, op),
            Event::IdleEnd => {
                self.note(TraceLevel::Events, || "idle check over".into());
                self.phase = Phase::Done;
            }
        }
    }
}

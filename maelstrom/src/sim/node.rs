//! A simulated node process: murmur's shell around a [`Host`], reproduced without I/O. Every
//! delivery is rendered as the stdin line Maelstrom writes and fed to the host; its outputs are
//! serialised and sent through the network at once; its sync timer is an event. The process's
//! life cycle is modelled too: start-up after a seeded delay, SIGKILL, restart, SIGSTOP and
//! SIGCONT, with a stdin pipe that fills while the process is stopped or not yet running.

use std::collections::VecDeque;

use murmur::host::Host;
use murmur::node::{parse_line, Millis, Workload};
use murmur::wire::is_client;
use rand::Rng;
use serde_json::json;

use super::clients::Purpose;
use super::scheduler::Event;
use super::{ProbeEvent, Sim, TraceLevel, Violation, INIT_TIMEOUT_MS, MS, PIPE_CAPACITY};
use crate::net::{Delivery, NetError, Packet};

/// A node's process.
pub(super) enum Proc<W: Workload> {
    /// Killed, not restarted yet.
    Down,
    /// Restarted, process not running yet (its stdin pipe exists and fills).
    Spawning,
    /// The process runs: its host (before or after `init`).
    Running(Box<Host<W>>),
}

/// One simulated node: its process, its stdin pipe, its sync timer and its disk.
pub(super) struct SimNode<W: Workload> {
    pub(super) id: String,
    pub(super) proc: Proc<W>,
    /// Bumped at each kill; events of an older incarnation are ignored.
    pub(super) inc: u64,
    pub(super) paused: bool,
    /// Messages written into the stdin pipe while the process was stopped or not yet running.
    pub(super) pipe: VecDeque<Delivery>,
    pub(super) pipe_bytes: usize,
    /// The pipe is full: the network receiver is down until resume.
    pub(super) pipe_full: bool,
    pub(super) tick_overdue: bool,
    /// The sync timer, if armed: the time it was armed for and the time it fires (a little
    /// later, `timer_late_us`), in virtual time.
    pub(super) tick_at: Option<(u64, u64)>,
    pub(super) flush_overdue: bool,
    /// Durable records, across incarnations.
    pub(super) disk: Vec<Vec<u8>>,
    /// A handler ran since the flusher last took records (the shell's `dirty` poke).
    pub(super) dirty: bool,
    /// The batch being written (or, if `compacting`, the snapshot that is to replace `disk`).
    pub(super) flushing: Vec<Vec<u8>>,
    pub(super) flush_in_flight: bool,
    /// The write in flight is a compaction.
    pub(super) compacting: bool,
    /// Records of this incarnation that are durable.
    pub(super) persisted: u64,
    /// This incarnation's output is cut off.
    pub(super) wedged: bool,
}

impl<W: Workload> Sim<'_, W> {
    /// Runs `f` on node `i`'s host (if its process runs), then sends its outputs, re-arms its
    /// sync timer if [`Workload::next_tick`] moved, and pokes its flusher: what the shell does
    /// around every call into the host.
    pub(super) fn step(&mut self, i: usize, f: impl FnOnce(&mut Host<W>, Millis)) {
        let now_ms = self.now_ms();
        let node = &mut self.nodes[i];
        let Proc::Running(host) = &mut node.proc else {
            return;
        };
        let before = host.stats();
        f(host, now_ms);
        self.probe.step(now_ms, i, host);
        let out = host.drain();
        let dropped = host.stats();
        node.dirty = true;
        let due = host.next_tick(now_ms).map(|t| (t * MS).max(self.now));
        if let Some(due) = due.filter(|&d| node.tick_at.map_or(true, |(armed, _)| d != armed)) {
            let (lo, hi) = self.cfg.timer_late_us;
            let fires = due + self.sched_rng.random_range(lo..=hi.max(lo)) * 1_000;
            let node = &mut self.nodes[i];
            node.tick_at = Some((due, fires));
            let inc = node.inc;
            self.at(fires, Event::Tick { node: i, inc });
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
    pub(super) fn node_send(&mut self, i: usize, packet: Packet) {
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

    /// The sync timer fired: the shell's sync task wakes and ticks if the workload says it is due.
    pub(super) fn timer(&mut self, i: usize, inc: u64) {
        let node = &mut self.nodes[i];
        if node.inc != inc
            || matches!(node.proc, Proc::Down)
            || node.tick_at.map(|(_, fires)| fires) != Some(self.now)
        {
            return;
        }
        node.tick_at = None;
        if node.paused {
            node.tick_overdue = true;
            return;
        }
        self.run_tick(i);
    }

    /// Runs the node's tick.
    pub(super) fn run_tick(&mut self, i: usize) {
        self.nodes[i].tick_overdue = false;
        self.step(i, |host, now| host.tick(now));
    }

    /// A delivery from the network.
    pub(super) fn dispatch(&mut self, d: Delivery) {
        if is_client(&d.packet.dest) {
            self.client_delivery(d);
            return;
        }
        let Some(&i) = self.index.get(d.packet.dest.as_str()) else {
            // A service answers at once; an unknown request gets no reply.
            if let Some(reply) = self.services.reply_to(&d.packet) {
                let _ = self.net.send(self.now, reply);
            }
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
    pub(super) fn drain_pipe(&mut self, i: usize) {
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
    pub(super) fn node_receive(&mut self, i: usize, d: Delivery) {
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
    pub(super) fn boot(&mut self, i: usize) {
        let now_ms = self.now_ms();
        let shell = self.cfg.shell;
        let (stall_ms, deadline_ms) = if shell.client_guard {
            (shell.stall_ms, shell.reply_deadline_ms)
        } else {
            (0, 0)
        };
        let node = &mut self.nodes[i];
        let mut host = Host::new(self.node_cfg.clone(), stall_ms, deadline_ms, now_ms);
        host.set_compact_min(shell.compact_min_bytes);
        node.proc = Proc::Running(Box::new(host));
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

    /// SIGKILL: memory, pipe and records not yet durable are gone; a flush in flight may be torn.
    pub(super) fn kill(&mut self, i: usize) {
        if matches!(self.nodes[i].proc, Proc::Down) {
            return;
        }
        let (kept, lost) = self.disk_on_kill(i);
        let node = &mut self.nodes[i];
        node.tick_overdue = false;
        node.tick_at = None;
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
        let id = node.id.clone();
        let _ = self.net.set_down(self.now, &id, true);
        self.stats.kills += 1;
        self.probe.event(self.now / MS, ProbeEvent::Killed(i));
        self.note(TraceLevel::Events, || {
            format!("{id}: killed ({lost} records of its flush in flight lost, {kept} kept)")
        });
    }

    /// Restarts node `i` if it is down; returns whether it did.
    pub(super) fn restart(&mut self, i: usize) -> bool {
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

    /// SIGSTOP: the node processes nothing until resumed; deliveries go into its pipe.
    pub(super) fn pause(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if matches!(node.proc, Proc::Down) || node.paused {
            return;
        }
        node.paused = true;
        self.stats.pauses += 1;
        self.probe.event(self.now / MS, ProbeEvent::Paused(i));
        let id = self.nodes[i].id.clone();
        self.note(TraceLevel::Events, || format!("{id}: paused"));
    }

    /// SIGCONT: the client guard is told first, then the node's stalled work runs. A running node
    /// that was not paused gets the signal too (`resume` targets all nodes, as Maelstrom's does);
    /// the shell notices it at once (its sync task wakes on SIGCONT), so only the guard is told.
    pub(super) fn resume(&mut self, i: usize) {
        if !self.nodes[i].paused {
            let now_ms = self.now_ms();
            if let Proc::Running(host) = &mut self.nodes[i].proc {
                host.resumed(now_ms);
            }
            return;
        }
        self.nodes[i].paused = false;
        self.probe.event(self.now_ms(), ProbeEvent::Resumed(i));
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
}

/// The `type` of a compact body serialised by serde from a [`murmur::wire::Body`]: the first
/// `"type":"…"` in the text. A JSON string cannot contain an unescaped `"`, and the payload's tag
/// comes before any nested object (`msg_id` and `in_reply_to` are scalars), so the first match is
/// the body's own. Empty if there is none.
pub(super) fn body_type(body: &str) -> &str {
    const KEY: &str = "\"type\":\"";
    body.find(KEY)
        .map(|at| &body[at + KEY.len()..])
        .and_then(|rest| rest.find('"').map(|end| &rest[..end]))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::body_type;

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
}

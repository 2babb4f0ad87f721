//! The disk model: murmur's shell flushes a node's records as group commits, each durable after a
//! seeded delay ([`SimConfig::flush_ms`]); a kill during a flush may leave a seeded prefix of its
//! batch on disk ([`SimConfig::torn_flushes`]). Durable records survive kills and are handed back
//! to the node at its next `init`.
//!
//! [`SimConfig::flush_ms`]: super::SimConfig::flush_ms
//! [`SimConfig::torn_flushes`]: super::SimConfig::torn_flushes

use murmur::node::Workload;
use rand::Rng;

use super::node::Proc;
use super::scheduler::Event;
use super::{Sim, TraceLevel};

impl<W: Workload> Sim<'_, W> {
    /// The shell's flusher: if it is idle and a handler ran, it takes the records and writes them.
    pub(super) fn maybe_flush(&mut self, i: usize) {
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

    /// The flush in flight is durable: the workload is told its cumulative durable count.
    pub(super) fn complete_flush(&mut self, i: usize) {
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

    /// A flush's delay is over: it completes, or waits for a paused node to resume.
    pub(super) fn flush_done(&mut self, i: usize, inc: u64) {
        if self.nodes[i].inc != inc || !self.nodes[i].flush_in_flight {
            return;
        }
        if self.nodes[i].paused {
            self.nodes[i].flush_overdue = true;
        } else {
            self.complete_flush(i);
        }
    }

    /// Node `i` is killed: a flush in flight is torn (a seeded prefix of its batch kept, if
    /// torn flushes are on) and the records not yet durable are gone. Returns (kept, lost).
    pub(super) fn disk_on_kill(&mut self, i: usize) -> (usize, usize) {
        let torn = self.cfg.torn_flushes;
        let node = &mut self.nodes[i];
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
        node.dirty = false;
        node.persisted = 0;
        (kept, lost)
    }
}

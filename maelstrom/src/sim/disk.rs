//! The disk model: murmur's shell flushes a node's records as group commits, each durable after a
//! seeded delay ([`SimConfig::flush_ms`]); a kill during a flush may leave a seeded prefix of its
//! batch on disk ([`SimConfig::torn_flushes`]). Durable records survive kills and are handed back
//! to the node at its next `init`.
//!
//! Compaction: when the flusher finds nothing to write, it asks the host for a compaction
//! ([`Host::take_compaction`](murmur::host::Host::take_compaction)) and, if one is due, writes the
//! snapshot in the flusher's slot (nothing else is written meanwhile, as in the shell, where the
//! node's lock is held) with a seeded delay ([`SimConfig::compact_ms`](super::SimConfig::compact_ms)); when it completes the snapshot replaces the
//! node's durable records. A kill while it is in flight leaves the old records, or, with torn
//! flushes on, a seeded choice between the old records and the snapshot (the shell's rename
//! either happened or did not: a file system never shows less than one of the two).
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
        let compacting = records.is_empty();
        let records = if compacting {
            match host.take_compaction() {
                Some(snapshot) => snapshot,
                None => return,
            }
        } else {
            records
        };
        node.flushing = records;
        node.flush_in_flight = true;
        node.compacting = compacting;
        let inc = node.inc;
        let range = if compacting {
            self.cfg.compact_ms
        } else {
            self.cfg.flush_ms
        };
        let delay = Self::uniform_ms(&mut self.disk_rng, range);
        self.at(self.now + delay, Event::FlushDone { node: i, inc });
    }

    /// The flush in flight is durable: the workload is told its cumulative durable count.
    pub(super) fn complete_flush(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.flush_in_flight = false;
        node.flush_overdue = false;
        let batch = std::mem::take(&mut node.flushing);
        if std::mem::take(&mut node.compacting) {
            let (before, after) = (node.disk.len(), batch.len());
            node.disk = batch;
            node.dirty = true;
            self.stats.compactions += 1;
            self.note(TraceLevel::Events, || {
                format!("n{i}: compaction done ({before} records replaced by {after})")
            });
            self.step(i, |host, _| host.compacted(true));
            return;
        }
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
        if node.flush_in_flight && node.compacting {
            // Old log or new, never a mix: the rename is atomic.
            self.stats.kills_in_compaction += 1;
            if torn && self.disk_rng.random_bool(0.5) {
                node.disk = std::mem::take(&mut node.flushing);
            } else {
                self.stats.compactions_torn_old += 1;
            }
            node.flushing.clear();
        } else if node.flush_in_flight && torn {
            kept = self.disk_rng.random_range(0..=node.flushing.len());
            node.disk.extend(node.flushing.drain(..kept));
        }
        let lost = node.flushing.len();
        self.stats.records_durable += kept as u64;
        self.stats.records_lost += lost as u64;
        node.flushing.clear();
        node.flush_in_flight = false;
        node.compacting = false;
        node.flush_overdue = false;
        node.dirty = false;
        node.persisted = 0;
        (kept, lost)
    }
}

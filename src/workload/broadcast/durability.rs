//! Durability bookkeeping (see "Durability and the acknowledgement rule" in the
//! [module docs](super)): the records the node emits, the durable prefix they cover, the client
//! replies and acknowledgements waiting for it, and recovery from the records of earlier
//! incarnations.

use super::record::{self, Record};
use super::{Broadcast, Eager, Messages, Msg, Overlay, FROM_CLIENT};
use crate::node::{Ctx, Millis};
use rand::Rng;

/// The longest changed link cursors wait for another write to ride on before they are written on
/// their own (one wake-up and one small write per node per second at most, instead of one per
/// tick; a restart within that window only resends a little more).
pub(super) const CURSOR_RECORD_MS: Millis = 1000;

/// A client request answered once the log is durable up to `need`.
#[derive(Debug)]
pub(super) struct Waiting {
    need: usize,
    client: String,
    msg_id: Option<u64>,
    read: bool,
}

/// A reply owed to a client: who asked, and the request's `msg_id`.
#[derive(Debug)]
pub(super) struct ClientReply {
    pub(super) client: String,
    pub(super) msg_id: Option<u64>,
}

/// Once the driver reports `records` records persisted (counted over this incarnation), the log
/// is durable up to `log_len`.
#[derive(Debug, Clone, Copy)]
pub(super) struct DurableMark {
    pub(super) records: u64,
    pub(super) log_len: usize,
}

/// The cursors of one link that a cursor record holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LinkCursors {
    /// The peer's log id, or 0 if unknown.
    pub(super) peer_log: u64,
    pub(super) acked: usize,
    pub(super) reset_at: usize,
}

impl Broadcast {
    /// The log is durable up to `upto`: confirm acknowledgements, release client replies, and push
    /// new client values at once where [`Eager`] says so.
    pub(super) fn advance_durable(&mut self, upto: usize, now: Millis, ctx: &mut Ctx<Msg>) {
        let old = self.durable;
        self.durable = self.durable.max(upto);
        let durable = self.durable;
        // Cursors into peers' logs become reportable once what they cover is durable here (also
        // when a gossip brought only duplicates and the log did not grow). A newly reportable
        // cursor owes the peer an acknowledgement, on the same schedule as a received gossip.
        for p in 0..self.links.len() {
            let link = &mut self.links[p];
            while link
                .unconfirmed
                .front()
                .is_some_and(|u| u.needs_durable <= durable)
            {
                link.confirmed = link
                    .unconfirmed
                    .pop_front()
                    .map(|u| u.recv_upto)
                    .unwrap_or(link.confirmed);
            }
            if link.confirmed > link.acked_sent && link.ack_due.is_none() {
                let due = self.ack_due_at(p, now);
                self.links[p].ack_due = Some(due);
            }
        }
        self.release_waiting(ctx);
        let eager = match self.cfg.eager {
            Eager::Never => false,
            Eager::Leaves => self.route.len() == 1,
            Eager::Always => true,
        };
        if eager && (old..durable).any(|i| self.origin[i] == FROM_CLIENT) {
            for i in 0..self.route.len() {
                let p = self.route[i];
                if self.gossip_allowed_at(p) <= now {
                    self.send_gossip(p, now, ctx);
                }
            }
        }
    }

    fn release_waiting(&mut self, ctx: &mut Ctx<Msg>) {
        // Positions are not monotone (a duplicate of an old value needs less), so scan: the queue
        // holds only requests of the last flush interval.
        let durable = self.durable;
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].need <= durable {
                if let Some(w) = self.waiting.remove(i) {
                    self.reply_now(w, ctx);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Answers a client once the log is durable up to `need` (at once if it already is).
    pub(super) fn reply_when_durable(
        &mut self,
        need: usize,
        client: String,
        msg_id: Option<u64>,
        read: bool,
        ctx: &mut Ctx<Msg>,
    ) {
        let w = Waiting {
            need,
            client,
            msg_id,
            read,
        };
        if need <= self.durable {
            self.reply_now(w, ctx);
        } else {
            self.waiting.push_back(w);
        }
    }

    fn reply_now(&mut self, w: Waiting, ctx: &mut Ctx<Msg>) {
        let payload = if w.read {
            // Shared by every read answered until the durable prefix changes again.
            Msg::ReadOk {
                messages: Messages::Shared(self.reads.snapshot(&self.log[..self.durable])),
            }
        } else {
            Msg::BroadcastOk
        };
        ctx.reply(&w.client, w.msg_id, payload);
    }

    /// After the log changed: without persistence the whole log is durable at once; with it, only
    /// what [`Workload::persisted`](crate::node::Workload::persisted) reported, but outputs already
    /// covered by it are released.
    pub(super) fn sync_durable(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        let upto = if self.cfg.persist {
            self.durable
        } else {
            self.log.len()
        };
        self.advance_durable(upto, now, ctx);
    }

    /// Queues a record of the current neighbour list (overlay `given`).
    pub(super) fn queue_topology(&mut self) {
        self.queue.push(record::encode(&Record::Topology {
            peers: self.peers.iter().map(|&p| p as u32).collect(),
        }));
        self.topology_queued = true;
    }

    /// When changed link cursors must be written on their own (see [`CURSOR_RECORD_MS`]), if any
    /// changed since their last record.
    pub(super) fn cursors_due(&mut self, now: Millis) -> Option<Millis> {
        let changed = self.cfg.persist
            && (0..self.links.len()).any(|p| self.link_cursors(p) != self.link_recorded[p]);
        if !changed {
            self.cursors_dirty_since = None;
            return None;
        }
        Some(*self.cursors_dirty_since.get_or_insert(now) + CURSOR_RECORD_MS)
    }

    /// The cursors of link `p` a record would hold.
    fn link_cursors(&self, p: usize) -> LinkCursors {
        let l = &self.links[p];
        LinkCursors {
            peer_log: l.peer_log.unwrap_or(0),
            acked: l.acked,
            reset_at: l.reset_at,
        }
    }

    /// Appends a cursor record for every link whose persisted cursors changed. Called only when
    /// other records are written anyway: cursors are an optimisation (a restarted node resumes each
    /// link where it was instead of replaying the log), and any older recorded state is safe (a
    /// lower `acked` resends more; an older peer log id or `reset_at` rewinds again on contact).
    pub(super) fn record_links(&mut self, out: &mut Vec<Vec<u8>>) {
        for p in 0..self.links.len() {
            let cur = self.link_cursors(p);
            if cur != self.link_recorded[p] {
                self.link_recorded[p] = cur;
                out.push(record::encode(&Record::Link {
                    peer: p as u32,
                    peer_log: cur.peer_log,
                    acked: cur.acked as u64,
                    reset_at: cur.reset_at as u64,
                }));
            }
        }
    }

    /// Rebuilds the log, its id and the link cursors from the records of earlier incarnations
    /// (see "Recovery" in the [module docs](super)), and queues the start record of a fresh log.
    pub(super) fn recover(&mut self, records: &[Vec<u8>], cluster: u64) {
        let me = self.nodes[self.me].clone();
        let n = self.nodes.len();
        let start = |log_id| record::encode(&Record::Start { log_id, cluster });
        let (seg, used_ids) = record::recover(records, cluster, n, self.me);
        // A new log must not reuse an id a previous incarnation wrote (a simulator may boot two
        // incarnations with the same clock readings).
        while used_ids.contains(&self.log_id) {
            self.log_id = self.rng.random::<u64>() | 1;
        }
        // Whichever log continues, the others' ids stay retired (a compaction keeps them).
        let current = match &seg {
            Some(s) if s.complete => s.log_id,
            _ => self.log_id,
        };
        let mut retired: Vec<u64> = used_ids.into_iter().filter(|&id| id != current).collect();
        retired.sort_unstable();
        self.retired_ids = retired;
        let Some(seg) = seg else {
            if !records.is_empty() {
                tracing::warn!(node = %me, records = records.len(), "no usable log among the recovered records; starting a fresh log");
            }
            if self.cfg.persist {
                self.queue.push(start(self.log_id));
            }
            return;
        };
        // The log is empty before recovery: the segment's log and index become the node's.
        self.seen = seg.seen;
        self.log = seg.values;
        self.origin = seg.origins;
        let len = self.log.len();
        // Everything recovered is on disk: durable, and already recorded if the log continues.
        self.durable = len;
        // What the overlay neighbours sent the previous incarnation after its last durable
        // acknowledgement is gone, whether or not it had learned their log ids (a neighbour
        // whose gossip reached it only before its `init` was dropped unread): ask each to resend
        // from what we acknowledged (a request naming no log id, if we know none, see
        // `Msg::GossipOk`), rather than wait out its retransmission timeout.
        for &p in &self.peers {
            let link = &mut self.links[p];
            link.resync = true;
            link.ack_due = Some(0);
        }
        let recovered_topology = seg.topology.is_some();
        let seg_topology = seg.topology.clone();
        if let (Some(peers), Overlay::Given) = (seg.topology, self.cfg.overlay) {
            self.route = peers.clone();
            self.peers = peers;
        }
        if seg.complete {
            self.log_id = seg.log_id;
            self.recorded_upto = len;
            self.recorded_text = seg.text_bytes;
            if let Some(peers) = &seg_topology {
                self.topology_record = Some(record::encode(&Record::Topology {
                    peers: peers.iter().map(|&p| p as u32).collect(),
                }));
            }
            for (p, saved) in seg.links {
                let acked = (saved.acked.min(len as u64)) as usize;
                let reset_at = (saved.reset_at.min(len as u64)) as usize;
                let link = &mut self.links[p];
                link.peer_log = (saved.peer_log != 0).then_some(saved.peer_log);
                link.acked = acked;
                link.sent_upto = acked;
                link.reset_at = reset_at;
                if link.peer_log.is_some() {
                    // What the peer sent while we were down is gone: ask it to resend now (the
                    // first tick sends the request), not after its calls time out.
                    link.resync = true;
                    link.ack_due = Some(0);
                }
                self.link_recorded[p] = LinkCursors {
                    peer_log: saved.peer_log,
                    acked,
                    reset_at,
                };
            }
            tracing::info!(node = %me, values = len, log = seg.log_id, "recovered the log");
        } else {
            tracing::warn!(
                node = %me,
                values = len,
                "recovery stopped at an undecodable record; keeping the values before it under a new log id"
            );
            if self.cfg.persist {
                self.queue.push(start(self.log_id));
                if recovered_topology && self.cfg.overlay == Overlay::Given {
                    self.queue_topology();
                }
                self.recorded_upto = 0;
            }
        }
    }
}

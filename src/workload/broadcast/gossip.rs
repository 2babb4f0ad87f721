//! Gossip with peers: sending each peer the delta it lacks, taking in its acknowledgements, and
//! acknowledging its gossip directly (`gossip_ok`).

use super::link::Link;
use super::{Broadcast, Msg, Overlay, FROM_CLIENT};
use crate::node::{Ctx, Millis};

/// A gossip call in flight: sent to `peer`, covering the local log up to `upto`. If it times out
/// with the peer's acknowledgement still below `upto`, the link retransmits from `acked`.
#[derive(Debug, Clone, Copy)]
pub(super) struct GossipCall {
    pub(super) peer: usize,
    pub(super) upto: usize,
    /// When it was sent: its acknowledgement bounds the peer's round-trip time.
    pub(super) sent_at: Millis,
}

impl Broadcast {
    /// A peer whose log id changed has lost its state: rewind both directions of the link.
    pub(super) fn check_peer_log(&mut self, p: usize, log: u64) {
        let link = &mut self.links[p];
        if link.peer_log == Some(log) {
            return;
        }
        if link.peer_log.is_some() {
            tracing::info!(peer = %self.nodes[p], "peer restarted with a new log; rewinding the link");
            *link = Link {
                reset_at: self.log.len(),
                ..Link::default()
            };
        }
        link.peer_log = Some(log);
    }

    /// The common part of every stand-alone acknowledgement (`gossip_ok`, `ack_batch`,
    /// `relayed_acks`): the peer's own log id and cursor on ours. Returns the peer's index, `None`
    /// for an unknown sender.
    pub(super) fn ack_from(
        &mut self,
        src: &str,
        log: u64,
        to_log: u64,
        ack: u64,
        now: Millis,
    ) -> Option<usize> {
        let p = self.peer_index(src)?;
        self.check_peer_log(p, log);
        self.heard(p, to_log, now);
        if to_log == self.log_id {
            if let Some(t) = self.on_ack(p, ack) {
                self.rtt_bound(p, now.saturating_sub(t));
            }
        }
        Some(p)
    }

    /// Notes a message from peer `p` naming `to_log` as our log id (a sign of life, too).
    pub(super) fn heard(&mut self, p: usize, to_log: u64, now: Millis) {
        self.links[p].knows_us = to_log == self.log_id;
        self.heard_from(p, now);
    }

    /// Takes in `p`'s cumulative acknowledgement of our log; returns when the latest gossip call it
    /// covered was sent (an upper bound on the round-trip time, for the caller to use if the
    /// acknowledgement came straight from `p`).
    pub(super) fn on_ack(&mut self, p: usize, ack: u64) -> Option<Millis> {
        let ack = (ack as usize).min(self.durable);
        let link = &mut self.links[p];
        if ack > link.acked {
            link.acked = ack;
            link.silent = false;
            link.sent_upto = link.sent_upto.max(ack);
            // Calls this covers can no longer time out into a retransmission: forget them, so their
            // deadlines wake nobody (acks usually ride on gossip and never resolve a call by id).
            let mut latest = None;
            self.calls.retain(|c| {
                let keep = c.peer != p || c.upto > ack;
                if !keep {
                    latest = latest.max(Some(c.sent_at));
                }
                keep
            });
            return latest;
        }
        None
    }

    /// Whether log entry `i` is for peer `to`: never back to the peer it came from (unless that
    /// peer has since lost it), and, without forwarding, only values this node originated.
    pub(super) fn forwardable(&self, i: usize, to: usize) -> bool {
        let o = self.origin[i];
        if o == to as u32 {
            i < self.links[to].reset_at
        } else {
            self.forward_learned || o == FROM_CLIENT
        }
    }

    /// Sends peer `p` what it lacks: the delta since `sent_upto`, or everything since `acked` when
    /// a call timed out.
    pub(super) fn send_gossip(&mut self, p: usize, now: Millis, ctx: &mut Ctx<Msg>) {
        let durable = self.durable;
        let link = &self.links[p];
        let from = if link.retransmit {
            link.acked
        } else {
            link.sent_upto
        };
        let mut values = Vec::new();
        let mut upto = from;
        while upto < durable && values.len() < self.cfg.max_batch {
            if self.forwardable(upto, p) {
                values.push(self.log[upto].clone());
            }
            upto += 1;
        }
        let link = &mut self.links[p];
        let retry = std::mem::take(&mut link.retransmit);
        if values.is_empty() {
            // Nothing in range is for this peer. With nothing in flight, count it as held: the next
            // gossip's `base` tells the peer. The peer trusts `base` only if the gossip names its
            // log id, so this needs the peer's log id. Otherwise (something in flight, or a peer
            // not yet heard from, as every peer is at start-up) remember the range was scanned
            // and let the next gossip's range start at `sent_upto`, so that the peer's cursor
            // stays contiguous instead of waiting `rto_ms` for a retransmission to fill the gap.
            link.skip(from, upto);
            return;
        }
        let msg = Msg::Gossip {
            log: self.log_id,
            to_log: link.peer_log.unwrap_or(0),
            base: link.acked as u64,
            from: from as u64,
            upto: upto as u64,
            values,
            ack: link.confirmed,
            retry,
            // Acknowledgements held for the peer as its ack relay ride along.
            relayed: self.take_held(p),
        };
        let link = &mut self.links[p];
        link.sent_upto = link.sent_upto.max(upto);
        link.scanned = link.scanned.max(upto);
        link.ack_due = None;
        // On the slot grid (a tick may run a little late), so that a wait of whole slots ends on
        // a slot boundary.
        link.gossip_at = Some(now - now % self.cfg.sync_ms.max(1));
        link.note_direct_ack();
        let id = ctx.send(&self.nodes[p], msg);
        if retry {
            // The retransmission covers every earlier call to `p` that ended at or before its
            // `upto`: forget them, or each would time out in turn (they were sent a slot apart,
            // say all through a partition) and resend everything from `acked` once per slot.
            // If the retransmission is lost too, its own call times out.
            self.calls.retain(|c| c.peer != p || c.upto > upto);
        }
        self.calls.register(
            id,
            now + self.cfg.rto_ms,
            GossipCall {
                peer: p,
                upto,
                sent_at: now,
            },
        );
    }

    /// Peer `p` asks for a resend (`gossip_ok` with `resync`): what this node sent it past its
    /// acknowledgement was lost. Resend from `acked` at the next slot instead of waiting for the
    /// calls in flight to time out (they are dropped, so they cannot trigger a second resend).
    pub(super) fn resend_from_acked(&mut self, p: usize) {
        let link = &mut self.links[p];
        if link.acked < link.sent_upto {
            link.retransmit = true;
            self.calls.retain(|c| c.peer != p);
        }
    }

    /// When an acknowledgement owed to `p` from `now` is due: after `ack_delay_ms` for a peer
    /// gossip goes to (gossip going back may carry it first), and in the star for every peer (a
    /// successor hub gossips every `detour_ms` during an episode, and an ack per gossip would
    /// double its traffic; this leaf may route through it soon), at once otherwise; and at once
    /// after the peer resent (`direct_ack`): it has waited `rto_ms` for this acknowledgement
    /// already.
    pub(super) fn ack_due_at(&self, p: usize, now: Millis) -> Millis {
        let star = self.cfg.overlay == Overlay::Star;
        if self.cfg.ack_delay_ms == 0
            || self.links[p].direct_ack
            || !(star || self.route.contains(&p))
        {
            now
        } else {
            now + self.cfg.ack_delay_ms
        }
    }

    /// Acknowledges `p`'s log directly, in a `gossip_ok` of its own.
    pub(super) fn send_gossip_ok(&mut self, p: usize, ctx: &mut Ctx<Msg>) {
        let link = &mut self.links[p];
        link.ack_due = None;
        link.note_direct_ack();
        let msg = Msg::GossipOk {
            log: self.log_id,
            to_log: link.peer_log.unwrap_or(0),
            ack: link.confirmed,
            resync: std::mem::take(&mut link.resync),
        };
        ctx.notify(&self.nodes[p], msg);
    }

    /// If no durable entry past what peer `p` was sent or scanned is for it (a leaf's entries all
    /// came from its hub, say), settles that range now, exactly as the tick's `send_gossip` would
    /// with nothing to send, so the node does not wake up at the next slot just to find that out.
    pub(super) fn skip_unforwardable(&mut self, p: usize) {
        let l = &self.links[p];
        let start = l.sent_upto.max(l.scanned);
        if l.retransmit || start >= self.durable {
            return;
        }
        if (start..self.durable).any(|i| self.forwardable(i, p)) {
            return;
        }
        let durable = self.durable;
        let link = &mut self.links[p];
        link.skip(link.sent_upto, durable);
    }

    /// From when the tick may gossip to `p`: at once (0: not held back), or, for a silent peer
    /// (see `Link::silent`), `silent_peer_ms` after the last gossip to it. Gossip every slot to a
    /// peer that cannot answer is lost: the hub of a star sends ten messages a second to each
    /// cut-off leaf for nothing, the largest cost of a partition. One every `silent_peer_ms` still
    /// finds the peer soon after it can be reached again (its answer, or anything else heard from
    /// it, ends the silence), and each carries everything since `acked` once the timed-out call
    /// has asked for a retransmission.
    ///
    /// A successor hub's gossip to the leaves it serves off the overlay (see the `liveness`
    /// module) waits `detour_ms` after the last: that fan-out exists only while a hub is away, and
    /// under a partition it runs beside the hub's own; batched over a few slots it costs a
    /// fraction of the messages for a few hundred ms more latency.
    pub(super) fn gossip_allowed_at(&self, p: usize) -> Millis {
        let l = &self.links[p];
        let Some(t) = l.gossip_at else {
            return 0;
        };
        let mut at = 0;
        if l.silent {
            at = t.saturating_add(self.cfg.silent_peer_ms);
        }
        if self.detour_fanout(p) {
            at = at.max(t.saturating_add(self.cfg.detour_ms));
        }
        at
    }

    /// Whether the tick has gossip for neighbour `p`: a retransmission, or durable entries not
    /// yet sent or scanned.
    pub(super) fn gossip_pending(&self, p: usize) -> bool {
        let l = &self.links[p];
        l.retransmit || l.sent_upto.max(l.scanned) < self.durable
    }
}

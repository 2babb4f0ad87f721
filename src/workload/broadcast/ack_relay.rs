//! Sending acknowledgements that fell due, and the acknowledgement relay of overlay `total`: a node
//! batches the stand-alone acknowledgements it owes through one relay node, which holds them per
//! destination and passes them on together (see "Acknowledgement relay" in the
//! [module docs](super)).

use super::{AckFor, AckFrom, Broadcast, Msg};
use crate::node::{Ctx, Millis};

/// An acknowledgement held here as the ack relay for one destination: node `acker`, whose log is
/// `acker_log`, holds the destination's log `to_log` up to `ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HeldAck {
    pub(super) acker: usize,
    pub(super) acker_log: u64,
    pub(super) to_log: u64,
    pub(super) ack: u64,
}

/// This node's own acknowledgement of a peer's log, in the header of a message to it: our log id
/// (`log`), the peer's log id as we know it (`to_log`), and what we hold of it (`ack`).
#[derive(Debug, Clone, Copy)]
struct OwnAck {
    log: u64,
    to_log: u64,
    ack: u64,
}

impl Broadcast {
    /// Sends the acknowledgements that are due: through the ack relay where it applies (see the
    /// [module docs](super)), directly otherwise.
    pub(super) fn send_due_acks(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        let relay = self.ack_relay(now);
        let hold = self.relay_hold;
        let mut batch = false;
        for p in 0..self.links.len() {
            let link = &mut self.links[p];
            let Some(due) = link.ack_due.filter(|&d| d <= now) else {
                continue;
            };
            if link.resync {
                // A request to resend goes direct: the peer acts on it at once.
                self.send_gossip_ok(p, ctx);
                continue;
            }
            if link.waits_for_durability() {
                // Nothing new to confirm yet, but values are on their way to disk: the ack is
                // rescheduled when they are durable (`advance_durable`) instead of letting the
                // peer resend them after `rto_ms`.
                link.ack_due = None;
                continue;
            }
            match relay {
                // As the relay, our own acknowledgement waits with the relayed ones for the peer,
                // and leaves with them (or with gossip to the peer): `relay_due` now stands for it.
                Some(r) if r == self.me && self.batchable(p, r) => {
                    self.links[p].ack_due = None;
                    self.hold_until(p, due + hold);
                }
                Some(r) if self.batchable(p, r) => batch = true,
                _ => self.send_gossip_ok(p, ctx),
            }
        }
        if let Some(r) = relay.filter(|_| batch) {
            self.send_ack_batch(r, now, ctx);
        }
    }

    /// The ack relay, if stand-alone acknowledgements go through one: the lowest-numbered node
    /// among this one and the peers heard from within `rto_ms` (a relay that can reach us can
    /// likely be reached). Every node that hears from all others picks the same one.
    fn ack_relay(&self, now: Millis) -> Option<usize> {
        if !self.use_relay {
            return None;
        }
        let rto = self.cfg.rto_ms;
        (0..self.links.len()).find(|&p| {
            p == self.me
                || self.health[p]
                    .heard_at
                    .is_some_and(|t| t.saturating_add(rto) >= now)
        })
    }

    /// Whether an acknowledgement owed to `p` may go through `relay`: the relay's own rides in the
    /// batch's header; a relay keeps its own for the messages it sends anyway; any other needs a
    /// peer that can check it (it knows our log id, we know its) and no sign of a lost relayed
    /// acknowledgement.
    fn batchable(&self, p: usize, relay: usize) -> bool {
        let link = &self.links[p];
        if p == relay {
            true
        } else if relay == self.me {
            !link.direct_ack
        } else {
            !link.direct_ack && link.knows_us && link.peer_log.is_some()
        }
    }

    /// Sends `relay` every acknowledgement owed that may go through it, due or not: at the end
    /// of traffic all of them are, and one message carries them all. Each may be held there until
    /// `relay_hold` after it fell (or falls) due.
    fn send_ack_batch(&mut self, relay: usize, now: Millis, ctx: &mut Ctx<Msg>) {
        let hold = self.relay_hold;
        let mut acks = Vec::new();
        for p in 0..self.links.len() {
            if p == self.me || p == relay || !self.batchable(p, relay) {
                continue;
            }
            let link = &mut self.links[p];
            let Some(due) = link.ack_due.filter(|_| !link.waits_for_durability()) else {
                continue;
            };
            link.ack_due = None;
            link.acked_sent = link.confirmed;
            acks.push(AckFor {
                to: self.nodes[p].clone(),
                to_log: link.peer_log.unwrap_or(0),
                ack: link.confirmed,
                wait: (due + hold).saturating_sub(now),
            });
        }
        if acks.is_empty() {
            self.send_gossip_ok(relay, ctx);
            return;
        }
        let OwnAck { log, to_log, ack } = self.own_ack_to(relay);
        let msg = Msg::AckBatch {
            log,
            to_log,
            ack,
            acks,
        };
        ctx.notify(&self.nodes[relay], msg);
    }

    /// Our own acknowledgement of `p`'s log, riding on an `ack_batch` or `relayed_acks` we send
    /// it. It settles what is owed, unless values are still on their way to disk (their
    /// acknowledgement stays due).
    fn own_ack_to(&mut self, p: usize) -> OwnAck {
        let link = &mut self.links[p];
        if !link.waits_for_durability() {
            link.ack_due = None;
        }
        link.note_direct_ack();
        OwnAck {
            log: self.log_id,
            to_log: link.peer_log.unwrap_or(0),
            ack: link.confirmed,
        }
    }

    /// As a relay: holds the acknowledgements `acker` (log `log`) sent through us, one per
    /// destination and acker, each at most as long as its `wait` says (and never longer than
    /// `relay_hold`, whatever it says).
    pub(super) fn hold_for_relay(
        &mut self,
        acker: usize,
        log: u64,
        acks: Vec<AckFor>,
        now: Millis,
    ) {
        for a in acks {
            let Some(&to) = self.index.get(&a.to) else {
                continue;
            };
            if to == self.me || to == acker {
                continue;
            }
            let out = &mut self.relay_out[to];
            let entry = HeldAck {
                acker,
                acker_log: log,
                to_log: a.to_log,
                ack: a.ack,
            };
            match out.iter_mut().find(|e| e.acker == acker) {
                Some(e) if (e.acker_log, e.to_log) == (log, a.to_log) => e.ack = e.ack.max(a.ack),
                Some(e) => *e = entry,
                None => out.push(entry),
            }
            self.hold_until(to, now + a.wait.min(self.relay_hold));
        }
    }

    /// What is held for `p` must leave by `at`.
    fn hold_until(&mut self, p: usize, at: Millis) {
        let due = &mut self.relay_due[p];
        *due = Some(due.map_or(at, |d| d.min(at)));
    }

    /// The acknowledgements held for `p` as its relay, which leave now.
    pub(super) fn take_held(&mut self, p: usize) -> Vec<AckFrom> {
        self.relay_due[p] = None;
        std::mem::take(&mut self.relay_out[p])
            .into_iter()
            .map(|h| AckFrom {
                from: self.nodes[h.acker].clone(),
                log: h.acker_log,
                to_log: h.to_log,
                ack: h.ack,
            })
            .collect()
    }

    /// As a relay: sends each destination whose held acknowledgements are due one message with
    /// all of them, and our own acknowledgement (owed or not, it is free).
    pub(super) fn flush_relay(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        for p in 0..self.links.len() {
            if !self.relay_due[p].is_some_and(|t| t <= now) {
                continue;
            }
            let acks = self.take_held(p);
            let OwnAck { log, to_log, ack } = self.own_ack_to(p);
            let msg = Msg::RelayedAcks {
                log,
                to_log,
                ack,
                acks,
            };
            ctx.notify(&self.nodes[p], msg);
        }
    }

    /// Applies acknowledgements passed on by an ack relay. Both logs must be the ones the link is
    /// about: the acker's as known here (a relayed acknowledgement never announces a log id, so it
    /// never rewinds a link) and ours.
    pub(super) fn apply_relayed(&mut self, acks: Vec<AckFrom>) {
        for a in acks {
            let Some(&q) = self.index.get(&a.from) else {
                continue;
            };
            if q != self.me && a.to_log == self.log_id && self.links[q].peer_log == Some(a.log) {
                // Relayed: it says nothing of `q`'s round-trip time.
                let _ = self.on_ack(q, a.ack);
            }
        }
    }
}

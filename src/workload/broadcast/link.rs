//! The per-peer gossip state: a [`Link`] and the cursors it keeps into both logs.

use crate::node::Millis;
use std::collections::VecDeque;

/// Per-peer gossip state; see the [module docs](super).
#[derive(Debug, Default)]
pub(super) struct Link {
    /// The peer's log id, once heard.
    pub(super) peer_log: Option<u64>,
    /// Local log prefix the peer holds (or does not need).
    pub(super) acked: usize,
    /// Local log prefix sent at least once.
    pub(super) sent_upto: usize,
    /// Local log prefix already looked at for this peer (≥ `sent_upto` when it counts): entries
    /// in `sent_upto..scanned` were skipped as not for the peer while earlier gossip was in
    /// flight, or before the peer's log id was known. They are covered by the next gossip's range
    /// instead of being jumped over, which would leave a gap in the peer's contiguous cursor and
    /// force a retransmission.
    pub(super) scanned: usize,
    /// A gossip call timed out with values unacknowledged: resend from `acked`.
    pub(super) retransmit: bool,
    /// A gossip call timed out unacknowledged and nothing has been heard from the peer since: it
    /// is cut off, paused or down. Until it answers, gossip goes to it at most once per
    /// `silent_peer_ms` rather than every slot (see `Broadcast::gossip_allowed_at`).
    pub(super) silent: bool,
    /// When gossip last went to the peer.
    pub(super) gossip_at: Option<Millis>,
    /// Contiguous prefix of the peer's log held here.
    pub(super) recv_upto: u64,
    /// `recv_upto` values waiting for the local log to be durable, oldest first.
    pub(super) unconfirmed: VecDeque<Unconfirmed>,
    /// The part of `recv_upto` that is durable here: what acknowledgements report.
    pub(super) confirmed: u64,
    /// The last `confirmed` sent to the peer (stand-alone or piggybacked): a newer one is owed.
    pub(super) acked_sent: u64,
    /// An acknowledgement is owed, due at this time.
    pub(super) ack_due: Option<Millis>,
    /// The peer's last message named this node's log id, so it can check acknowledgements sent
    /// through the ack relay in this node's name (they carry log ids but cannot announce them).
    pub(super) knows_us: bool,
    /// The peer resent what this node had acknowledged: an acknowledgement sent through the ack
    /// relay may have been lost, so the next stand-alone one goes direct.
    pub(super) direct_ack: bool,
    /// Ask the peer, in the next direct acknowledgement (`gossip_ok` with `resync`), to resend
    /// from our acknowledged cursor at once rather than after `rto_ms`: set when this node
    /// restarts (what the peer sent while it was down is gone) and when a gossip from the peer
    /// opens a gap past `recv_upto` (something between was lost, e.g. to a partition).
    pub(super) resync: bool,
    /// `recv_upto` when a resync was last asked for because of a gap: asked once per gap, not on
    /// every gossip that arrives before the resend fills it.
    pub(super) resync_asked_at: Option<u64>,
    /// Local log length when the peer was last seen to lose its state: entries before it that
    /// came from the peer must be sent back, since the peer no longer has them.
    pub(super) reset_at: usize,
}

/// A value of [`Link::recv_upto`] that acknowledgements may report once the local log is durable
/// up to `needs_durable` (the log length once the gossip that advanced it had been taken in).
#[derive(Debug, Clone, Copy)]
pub(super) struct Unconfirmed {
    pub(super) needs_durable: usize,
    pub(super) recv_upto: u64,
}

impl Link {
    /// Log entries `from..upto` hold nothing for the peer (see `Broadcast::send_gossip`): counted
    /// as held if nothing before them is in flight and the peer will trust the next gossip's
    /// `base` (it names the peer's log id, so that must be known); otherwise only remembered as
    /// scanned, so the next gossip's range covers them and the peer's cursor stays contiguous.
    pub(super) fn skip(&mut self, from: usize, upto: usize) {
        if self.acked >= from && self.peer_log.is_some() {
            self.acked = self.acked.max(upto);
            self.sent_upto = self.sent_upto.max(upto);
        }
        self.scanned = self.scanned.max(upto);
    }

    /// An acknowledgement was owed for values not yet durable here: nothing new to confirm yet.
    pub(super) fn waits_for_durability(&self) -> bool {
        self.confirmed == self.acked_sent && !self.unconfirmed.is_empty()
    }

    /// `confirmed` went to the peer in a message of our own (not through the ack relay). That
    /// settles a resend only if it covered everything received: a retry's values may still be on
    /// their way to disk, and their acknowledgement is what the peer is waiting for.
    pub(super) fn note_direct_ack(&mut self) {
        self.acked_sent = self.confirmed;
        if self.unconfirmed.is_empty() {
            self.direct_ack = false;
        }
    }
}

//! Peer liveness: the network table, health checks (`ping`/`pong`), and routing around a hub
//! that stopped answering (overlay `star`).
//!
//! # Why
//! In the star, leaves hand their clients' values to the hub and the hub spreads them. When the
//! hub is killed, paused or cut off, values given to the leaves wait for it to come back, although
//! the leaves could reach each other in one hop. The table below tells a leaf that its hub stopped
//! answering; the leaves then agree on a successor hub and route through it until the hub answers
//! again.
//!
//! # The network table
//! Per node of the cluster, a [`Health`]: when the last message from it arrived (every message is a
//! sign of life, so a busy link needs no probe), how far apart its messages came lately, a smoothed
//! round-trip time, the health check in flight, and a [`PeerState`]:
//! - **alive**: answered, heard from, or never asked (nothing says otherwise);
//! - **suspect**: a `ping` has gone unanswered for the suspect threshold, and nothing else was heard
//!   from the peer since it was sent;
//! - **dead**: still nothing after the dead threshold.
//!
//! Hearing anything from the peer makes it alive again. State changes are logged (tracing, info).
//!
//! **Round-trip time.** Each matching `pong` that came before the suspect threshold is a sample
//! (smoothed: 7/8 old, 1/8 new; a later one, from a peer that was paused or cut off, says nothing
//! about the network and would inflate every threshold); an
//! acknowledgement of gossip is an upper bound (the peer may hold it up to `ack_delay_ms`), used
//! only where it is below the estimate. Before any sample the estimate is `2 × sync_ms`.
//!
//! **Thresholds**, per peer, from the node's config and the peer's RTT estimate `rtt`:
//! - *silence* before a health check: `max(3 × sync_ms, 2 × rtt)` on a busy link (the peer's
//!   messages came on average at most `2 × sync_ms` apart, as a hub's gossip does under load, or
//!   fewer than two messages came, so nothing says it is quiet), and `ack_delay_ms` more on a quiet
//!   one, where the peer may rightly hold its acknowledgement that long. (A link without history
//!   counts as busy: a hub paused or killed from the start, or before a leaf's restart, would
//!   otherwise go unasked for `ack_delay_ms` more, while a live hub under load is heard within a
//!   slot or two anyway.) Silence counts from the later of the last message heard and the moment
//!   something became outstanding with the peer;
//! - *suspect*: a ping unanswered for `max(2 × sync_ms, 2 × rtt + sync_ms / 2)`;
//! - *dead*: unanswered for `rto_ms` (at least the suspect threshold);
//! - *re-check*: a suspect peer is pinged again every silence threshold, a dead one every `rto_ms`
//!   (by then a gossip call would have been resent anyway).
//!
//! With the defaults and Maelstrom's 100 ms latency (rtt 200 ms), a leaf pings its hub after
//! 400 ms of silence with values outstanding and suspects it 450 ms later.
//!
//! # Health checks
//! A `ping` carries a fresh 128-bit nonce drawn from the node's seeded generator (so a simulation
//! stays deterministic); the peer answers at once with a `pong` carrying it back, and sends at
//! once any acknowledgement it owes the pinger instead of holding it for `ack_delay_ms`. (At the
//! end of a burst of traffic a leaf's hub falls silent while holding the leaf's acknowledgement,
//! so on a busy link a leaf may ping once; the early acknowledgement replaces the stand-alone one
//! the hub would have sent anyway, and ends the leaf's wait.) A pong whose nonce
//! is not the one in flight (stale: a newer ping replaced it, or wrong) is ignored altogether, not
//! even counted as a sign of life. Pings go only
//! - to peers this node routes its values through (a star leaf's hub, and its successor while it
//!   has one; a hub or a node of another overlay probes nobody),
//! - while something is outstanding with that peer: values not yet sent to it or not yet
//!   acknowledged by it,
//! - after the silence threshold, or at once when a node below this leaf gossips to it as a
//!   successor (its hub went silent for it: a hint that ours did too);
//!
//! and to the candidates for successor (below), once per episode. An idle cluster has nothing
//! outstanding and sends none.
//!
//! # Routing (overlay `star`)
//! A leaf whose hub is suspect or dead starts an **episode**: its successor is the lowest-id node
//! other than the hub that is alive in its own table, itself included. Every leaf applies the same
//! rule to the same facts, so leaves that can reach the same nodes pick the same one. A leaf pings
//! the lowest three candidates alive in its table (below itself) along with its hub's first
//! health check since it was last heard, so their answers are in when the hub becomes suspect
//! (if the hub answers after all, what those probes suspected is forgotten: a false alarm leaves
//! no trace in the table), and at the episode's start any not asked since; one that does not
//! answer becomes suspect and the next takes its place, whose answer is usually in by then. So a
//! leaf whose hub and lowest candidates went down together finds a live successor as soon as it
//! suspects the hub, and one suspect threshold after the first failed candidate otherwise, not
//! one per dead candidate. (Hub health checks are rare outside faults, since a live hub under
//! load is heard every slot or two, so the early probes cost little.)
//! - A leaf whose successor is another node gossips to it alone (`eager` as to a hub), and pings it
//!   like a hub. The successor's link cursors are the ordinary ones, so it gets what it lacks.
//! - The successor **adopts** every non-neighbour above it that gossips to it: it forwards to it as
//!   a hub would, but at most every `detour_ms` (default 400) rather than every slot, for `rto_ms`
//!   after its last gossip or until a `release`. (Under a partition the hub's side still runs its
//!   own star: a fan-out every slot on the other side would add about as many messages again.) (Gossip from below is a
//!   successor spreading values; adopting that back would keep both links busy after the
//!   episode.)
//! - A leaf that is its own successor gossips to every node but the hub that is alive in its table,
//!   every `detour_ms` too.
//!
//! Nothing about the hub changes meanwhile: the leaf's link to the hub keeps its cursors and every
//! value stays pending for it. When the hub answers again (a pong, an acknowledgement, its resync
//! after a restart), the episode ends: the leaf tells its successor `release`, forgets what it
//! suspected of other leaves (so the next episode starts from the same table everywhere), and
//! gossips with the hub again from its acknowledged cursor, including the values it learned through
//! the successor. So no value depends on the successor: it only shortens the wait. Values are held
//! in a set, so those that arrive by both ways are not duplicated.
//!
//! Other overlays keep their neighbours; their nodes keep the table (for the ack relay's choice and
//! for the logs) but route nothing around. With the knob `liveness` off a star leaf neither probes
//! nor routes around its hub (it still answers pings), which is the plain star to compare with.

use super::{Broadcast, Msg, Overlay};
use crate::node::{Ctx, Millis};
use rand::Rng;

/// How many candidates for successor a leaf asks at once (the lowest still alive in its table):
/// more finds a live one sooner when several low-id nodes are down, at two messages each per leaf
/// and episode.
const SUCCESSOR_PROBES: usize = 3;

/// What the table says about a peer; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerState {
    #[default]
    Alive,
    Suspect,
    Dead,
}

/// A health check in flight.
#[derive(Debug, Clone, Copy)]
struct Ping {
    nonce: u128,
    sent_at: Millis,
}

/// One row of the network table.
#[derive(Debug, Clone, Default)]
pub(super) struct Health {
    /// When the last message from the peer arrived.
    pub(super) heard_at: Option<Millis>,
    /// Smoothed gap between the peer's messages (busy link if small).
    gap: Option<Millis>,
    /// Smoothed round-trip time.
    rtt: Option<Millis>,
    /// The smallest round-trip sample (pong or acknowledgement): acknowledgements held up to
    /// `ack_delay_ms` inflate the smoothed estimate where no pong corrects it (a hub pings
    /// nobody), while the fastest acknowledgement is close to the network's own round trip.
    rtt_floor: Option<Millis>,
    /// The latest ping; a pong must carry its nonce.
    ping: Option<Ping>,
    /// The first ping sent since the peer was last heard from.
    unanswered_since: Option<Millis>,
    /// Since when something has been outstanding with the peer.
    want_since: Option<Millis>,
    /// The state last logged.
    logged: PeerState,
}

/// The nonce's text on the wire: 32 hex digits.
fn nonce_text(n: u128) -> String {
    format!("{n:032x}")
}

impl Broadcast {
    fn sync(&self) -> Millis {
        self.cfg.sync_ms.max(1)
    }

    fn rtt(&self, p: usize) -> Millis {
        self.health[p].rtt.unwrap_or(2 * self.sync())
    }

    /// Silence with something outstanding after which a relay is pinged (module docs).
    fn silence_ms(&self, p: usize) -> Millis {
        let s = self.sync();
        let base = (3 * s).max(2 * self.rtt(p));
        if self.health[p].gap.map_or(true, |g| g <= 2 * s) {
            base
        } else {
            base + self.cfg.ack_delay_ms
        }
    }

    /// How long a ping may go unanswered before the peer is suspect.
    fn suspect_ms(&self, p: usize) -> Millis {
        let s = self.sync();
        (2 * s).max(2 * self.rtt(p) + s / 2)
    }

    /// How long a ping may go unanswered before the peer is dead.
    fn dead_ms(&self, p: usize) -> Millis {
        self.cfg.rto_ms.max(self.suspect_ms(p))
    }

    /// Peer `p`'s state in the table at `now`.
    pub(super) fn peer_state(&self, p: usize, now: Millis) -> PeerState {
        match self.health[p].unanswered_since {
            Some(t) if now >= t.saturating_add(self.dead_ms(p)) => PeerState::Dead,
            Some(t) if now >= t.saturating_add(self.suspect_ms(p)) => PeerState::Suspect,
            _ => PeerState::Alive,
        }
    }

    /// A message from `p` arrived: a sign of life.
    pub(super) fn heard_from(&mut self, p: usize, now: Millis) {
        let h = &mut self.health[p];
        if let Some(t) = h.heard_at {
            let gap = now.saturating_sub(t);
            h.gap = Some(h.gap.map_or(gap, |g| (3 * g + gap) / 4));
        }
        h.heard_at = Some(now);
        h.unanswered_since = None;
        self.links[p].silent = false;
    }

    /// A message from `p` was just handled, so `p` can reach us again. If gossip to it is still
    /// unacknowledged well past the time an acknowledgement takes, that gossip was lost: to a
    /// partition now healed, a pause now over, or the peer's restart. Resend from `acked` at the
    /// next slot, rather than when the call times out (`rto_ms` after it was sent), so a peer
    /// that comes back catches up within a round or two of being heard. "Well past" is three
    /// round trips (the fastest seen with this peer, or `2 × sync_ms` before any) plus two slots
    /// when the message carried the peer's acknowledgement of our log (`acks_us`: it is up to
    /// date, so what it leaves out was not received), and `ack_delay_ms` more otherwise (the
    /// peer may rightly be holding its acknowledgement). The resend replaces the calls to `p`,
    /// so this fires at most once per such period. Under a latency distribution with a long
    /// tail (Maelstrom's `exponential`) a slow gossip can look lost; the premature resend costs
    /// messages, never correctness.
    pub(super) fn resend_if_overdue(&mut self, p: usize, acks_us: bool, now: Millis) {
        let link = &self.links[p];
        if link.retransmit || link.acked >= link.sent_upto {
            return;
        }
        let floor = self.health[p].rtt_floor.unwrap_or(2 * self.sync());
        let mut overdue = 3 * floor + 2 * self.sync();
        if !acks_us {
            overdue += self.cfg.ack_delay_ms;
        }
        if self
            .calls
            .any(|c| c.peer == p && c.sent_at.saturating_add(overdue) <= now)
        {
            tracing::debug!(peer = %self.nodes[p], "gossip overdue to a peer heard again: resending");
            self.resend_from_acked(p);
        }
    }

    /// An acknowledgement from `p` covered gossip sent `sample` ms ago: an upper bound on the RTT.
    pub(super) fn rtt_bound(&mut self, p: usize, sample: Millis) {
        let h = &mut self.health[p];
        h.rtt_floor = Some(h.rtt_floor.map_or(sample, |f| f.min(sample)));
        if h.rtt.map_or(true, |r| sample < r) {
            h.rtt = Some(h.rtt.map_or(sample, |r| (7 * r + sample) / 8));
        }
    }

    fn send_ping(&mut self, p: usize, now: Millis, ctx: &mut Ctx<Msg>) {
        let nonce: u128 = self.rng.random();
        let h = &mut self.health[p];
        h.ping = Some(Ping {
            nonce,
            sent_at: now,
        });
        h.unanswered_since.get_or_insert(now);
        ctx.notify(
            &self.nodes[p],
            Msg::Ping {
                nonce: nonce_text(nonce),
            },
        );
    }

    /// A `ping`: a sign of life, answered at once (a nonce longer than ours is not echoed).
    pub(super) fn on_ping(&mut self, src: &str, nonce: String, now: Millis, ctx: &mut Ctx<Msg>) {
        let Some(p) = self.peer_index(src) else {
            return;
        };
        self.heard_from(p, now);
        if nonce.len() <= 32 {
            ctx.notify(src, Msg::Pong { nonce });
        }
        // The pinger waits for what we owe it: the acknowledgement leaves now rather than after
        // `ack_delay_ms`, so it stops probing (at the end of a burst, a leaf whose hub holds its
        // acknowledgement would otherwise ping again every silence threshold).
        if let Some(d) = self.links[p].ack_due {
            self.links[p].ack_due = Some(d.min(now));
            self.send_due_acks(now, ctx);
        }
    }

    /// A `pong`: counts only if it carries the nonce of the ping in flight.
    pub(super) fn on_pong(&mut self, src: &str, nonce: &str, now: Millis) {
        let Some(p) = self.peer_index(src) else {
            return;
        };
        let suspect = self.suspect_ms(p);
        let h = &mut self.health[p];
        let Some(ping) = h.ping.filter(|g| nonce_text(g.nonce) == nonce) else {
            tracing::debug!(%src, "pong with a stale or wrong nonce ignored");
            return;
        };
        h.ping = None;
        let sample = now.saturating_sub(ping.sent_at);
        // A late answer (a paused peer resumed, a partition healed) proves life, not the RTT: one
        // such sample would otherwise raise every threshold for many round trips.
        if sample <= suspect {
            h.rtt = Some(h.rtt.map_or(sample, |r| (7 * r + sample) / 8));
            h.rtt_floor = Some(h.rtt_floor.map_or(sample, |f| f.min(sample)));
        }
        self.heard_from(p, now);
    }

    /// A `release`: `src` no longer routes through this node.
    pub(super) fn on_release(&mut self, src: &str, now: Millis) {
        let Some(p) = self.peer_index(src) else {
            return;
        };
        self.heard_from(p, now);
        if self.adopted_until[p].take().is_some() {
            tracing::info!(peer = %src, "released: no longer forwarding to it as its successor");
        }
    }

    /// A gossip from `p`, who is not an overlay neighbour, in the star: if `p` is above this node,
    /// it routes its values through this node (a successor is always below the leaves that chose
    /// it), which forwards to it until `rto_ms` after its last gossip. Gossip from below is a
    /// successor spreading values, and adopting it back would keep both links busy long after
    /// the episode ended.
    pub(super) fn adopt(&mut self, p: usize, now: Millis, ctx: &mut Ctx<Msg>) {
        if self.cfg.overlay != Overlay::Star || self.peers.contains(&p) {
            return;
        }
        if p < self.me {
            self.hub_hint(now, ctx);
            return;
        }
        let until = &mut self.adopted_until[p];
        if until.map_or(true, |u| u <= now) {
            tracing::info!(peer = %self.nodes[p], "acting as its successor hub");
        }
        *until = Some(now + self.cfg.rto_ms);
    }

    /// Gossip from a successor below this leaf says its hub, ours, stopped answering it: if we
    /// wait on the hub and have not heard from it lately, ask it now rather than after our own
    /// silence threshold (which, on a quiet link, includes `ack_delay_ms`), so this leaf's values
    /// do not wait for the hub alone while the others route around it.
    fn hub_hint(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        let h = &self.health[0];
        let quiet = h.heard_at.map_or(true, |t| t + 2 * self.sync() <= now);
        if self.star_leaf()
            && self.episode_since.is_none()
            && h.unanswered_since.is_none()
            && quiet
            && self.wants(0)
        {
            self.send_ping(0, now, ctx);
        }
    }

    /// Whether gossip to `p` is a successor's fan-out off the overlay: to a leaf it adopted, or,
    /// as its own successor, to any node but its neighbours.
    pub(super) fn detour_fanout(&self, p: usize) -> bool {
        !self.peers.contains(&p)
            && (self.successor == Some(self.me) || self.adopted_until[p].is_some())
    }

    /// A star leaf that routes around its hub (knob `liveness` on): it probes its relays and
    /// chooses successors. With the knob off it is a plain leaf that waits for its hub.
    fn star_leaf(&self) -> bool {
        self.cfg.liveness && self.cfg.overlay == Overlay::Star && self.me != 0
    }

    /// Whether something is outstanding with `p`: values not yet sent to it, or not acknowledged.
    fn wants(&self, p: usize) -> bool {
        let l = &self.links[p];
        l.acked < l.sent_upto || self.gossip_pending(p)
    }

    /// The peers this node routes its values through, which it probes: a star leaf's hub and its
    /// successor.
    fn relays(&self) -> impl Iterator<Item = usize> {
        let leaf = self.star_leaf();
        let succ = self.successor.filter(|&s| s != self.me && leaf);
        leaf.then_some(0).into_iter().chain(succ)
    }

    /// When relay `p` is next due a ping, if something is outstanding with it (notes since when).
    fn ping_due(&mut self, p: usize, now: Millis) -> Option<Millis> {
        if !self.wants(p) {
            self.health[p].want_since = None;
            return None;
        }
        let state = self.peer_state(p, now);
        let silence = self.silence_ms(p);
        let rto = self.cfg.rto_ms;
        let h = &mut self.health[p];
        let since = *h.want_since.get_or_insert(now);
        Some(match (h.unanswered_since, h.ping) {
            (Some(_), Some(ping)) if state == PeerState::Dead => ping.sent_at + rto,
            (Some(_), Some(ping)) => ping.sent_at + silence,
            _ => since.max(h.heard_at.unwrap_or(0)) + silence,
        })
    }

    /// The earliest time liveness has work: a ping due, or a ping in flight turning its peer
    /// suspect or dead. `None` when nothing is outstanding with any relay.
    pub(super) fn liveness_due(&mut self, now: Millis) -> Option<Millis> {
        let relays: Vec<usize> = self.relays().collect();
        let mut due: Option<Millis> = None;
        for p in relays {
            let Some(t) = self.ping_due(p, now) else {
                continue;
            };
            due = Some(due.map_or(t, |d| d.min(t)));
            if let Some(since) = self.health[p].unanswered_since {
                // A threshold ahead is due when it falls; one already crossed but not yet acted on
                // (a message, not the tick, came first since) is due at once. Either is given as
                // the threshold's own time, never as `now`: `next_tick` rounds up to the slot grid,
                // and a `now` between two slots would round to the next one at every call, so a
                // driver whose clock is not on the grid (any real one) would never find it due.
                let unacted = self.peer_state(p, now) != self.health[p].logged;
                for t in [since + self.suspect_ms(p), since + self.dead_ms(p)] {
                    if t > now || unacted {
                        due = Some(due.map_or(t, |d| d.min(t)));
                    }
                }
            }
        }
        due
    }

    /// The tick's liveness work: health checks that are due, then the route.
    pub(super) fn liveness_tick(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        let relays: Vec<usize> = self.relays().collect();
        for p in relays {
            if self.ping_due(p, now).is_some_and(|t| t <= now) {
                self.send_ping(p, now, ctx);
                if p == 0 && self.episode_since.is_none() {
                    // Ask the candidates for successor along with the hub, so that if the hub
                    // is down, whether they are too is known by the time it is suspected.
                    self.probe_candidates(now, ctx);
                    self.probed_early_at.get_or_insert(now);
                }
            }
        }
        self.refresh_route(now, ctx);
    }

    /// Logs the table's state changes, and recomputes whom gossip goes to: the overlay
    /// neighbours, or, for a star leaf whose hub is not alive, its successor (module docs); plus
    /// adopted nodes.
    pub(super) fn refresh_route(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        for p in 0..self.health.len() {
            if p == self.me {
                continue;
            }
            let state = self.peer_state(p, now);
            if state != self.health[p].logged {
                self.health[p].logged = state;
                tracing::info!(peer = %self.nodes[p], ?state, rtt = self.rtt(p), "peer state");
            }
        }
        let n = self.nodes.len();
        let mut route = if !self.star_leaf() {
            self.peers.clone()
        } else if self.peer_state(0, now) == PeerState::Alive {
            let ended = self.episode_since.take();
            if let Some(since) = ended {
                tracing::info!(
                    after_ms = now.saturating_sub(since),
                    "hub answers again: the star re-forms"
                );
                self.set_successor(None, now, ctx);
            }
            let heard = self.health[0].heard_at;
            let false_alarm = self
                .probed_early_at
                .is_some_and(|t| heard.is_some_and(|h| h >= t));
            if ended.is_some() || false_alarm {
                // Suspicions of other leaves belonged to this episode (or to the probes that
                // went with a hub that answered after all); the next starts afresh.
                self.probed_early_at = None;
                for p in 1..n {
                    let h = &mut self.health[p];
                    h.unanswered_since = None;
                    h.ping = None;
                }
            }
            vec![0]
        } else {
            if self.episode_since.is_none() {
                self.episode_since = Some(now);
                tracing::warn!("hub not answering: routing through a successor");
            }
            let me = self.me;
            let succ = (1..n).find(|&c| c == me || self.peer_state(c, now) == PeerState::Alive);
            self.set_successor(succ, now, ctx);
            self.probe_candidates(now, ctx);
            match succ {
                Some(s) if s == me => (1..n)
                    .filter(|&c| c != me && self.peer_state(c, now) == PeerState::Alive)
                    .collect(),
                Some(s) => vec![s],
                None => Vec::new(),
            }
        };
        for p in 0..n {
            match self.adopted_until[p] {
                Some(u) if u > now && !route.contains(&p) => route.push(p),
                Some(u) if u > now => {}
                Some(_) => self.adopted_until[p] = None,
                None => {}
            }
        }
        self.route = route;
    }

    /// Changes the successor: `release` to the old one (if it can hear it).
    fn set_successor(&mut self, s: Option<usize>, now: Millis, ctx: &mut Ctx<Msg>) {
        if s == self.successor {
            return;
        }
        let old = std::mem::replace(&mut self.successor, s);
        self.successor_changes += 1;
        tracing::info!(
            successor = s.map_or("none", |s| self.nodes[s].as_str()),
            "successor hub"
        );
        if let Some(o) = old.filter(|&o| o != self.me) {
            if self.peer_state(o, now) == PeerState::Alive {
                ctx.notify(&self.nodes[o], Msg::Release);
            }
        }
    }

    /// With the hub's first health check since it was last heard, and during an episode, makes
    /// sure the [`SUCCESSOR_PROBES`] lowest candidates for successor below this node that are
    /// still alive in the table have been asked since then (heard from, or pinged once), so that
    /// when the first does not answer, the next one's answer is already in: the successor moves on
    /// after one suspect threshold, not one per dead candidate.
    fn probe_candidates(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        // Asked since the episode began, or with the hub just before it.
        let since = self.probed_early_at.or(self.episode_since).unwrap_or(now);
        let mut asked = 0;
        for c in 1..self.me {
            if asked == SUCCESSOR_PROBES {
                break;
            }
            if self.peer_state(c, now) != PeerState::Alive {
                continue;
            }
            asked += 1;
            let h = &self.health[c];
            if !h.heard_at.is_some_and(|t| t >= since) && h.unanswered_since.is_none() {
                self.send_ping(c, now, ctx);
            }
        }
    }

    /// This node's successor hub while its hub is not answering (star leaves), by id.
    pub fn successor(&self) -> Option<&str> {
        self.successor.map(|s| self.nodes[s].as_str())
    }

    /// How many times this node's successor changed (an episode's start and end count one each).
    pub fn successor_changes(&self) -> u64 {
        self.successor_changes
    }

    /// Peer `id`'s state in this node's table at `now`.
    pub fn health_of(&self, id: &str, now: Millis) -> Option<PeerState> {
        let p = *self.index.get(id)?;
        (p != self.me).then(|| self.peer_state(p, now))
    }
}

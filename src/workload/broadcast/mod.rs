//! `broadcast`: `topology`, `broadcast` and `read` (Maelstrom's
//! [broadcast workload](https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md#workload-broadcast)),
//! and the gossip that spreads values.
//!
//! # Model
//! Every node keeps an append-only **log** of the values it holds, in arrival order, with a hash
//! index for set semantics (a duplicate is dropped). Positions in a node's log never change, so a
//! position is a compact way to say "everything up to here".
//!
//! For each peer a `Link` records two cursors into the *local* log: `acked` (the peer confirmed
//! it holds everything before it, or needs none of it) and `sent_upto` (sent at least once), and
//! one cursor into the *peer's* log: `recv_upto` (the contiguous prefix of the peer's log we hold).
//! The sync task sends each peer only the **delta** `log[sent_upto..]` (filtered by the overlay: a
//! value is never sent back to the peer it came from), and resends from `acked` when a gossip call
//! times out, so a value is retried until the peer confirms it: nothing acknowledged is lost to a
//! partition. A resend covers every earlier call to the peer, which is then forgotten (calls sent
//! a slot apart through a partition would otherwise time out, and resend everything, a slot
//! apart). A peer whose gossip timed out unacknowledged, and that has not been heard from since,
//! is **silent** (cut off, paused or down): it gets gossip at most every `silent_peer_ms` instead
//! of every slot until anything is heard from it, since each message to it is lost; a star's hub
//! would otherwise send ten a second to every cut-off leaf. Acknowledgements are cumulative (`recv_upto`), ride on gossip already going the other
//! way, and otherwise leave as a `gossip_ok` after `ack_delay_ms` (or, in overlay `total`, through
//! the ack relay below), or at once for a resend, whose sender has waited long enough. Nothing is
//! sent when nothing is pending.
//!
//! A range holding nothing for the peer (values it sent us, or, without forwarding, values learned
//! from others) is counted as acknowledged without a message, and the next gossip's `base` moves
//! the peer's cursor over it. The peer trusts `base` only from a gossip naming its log id, so this
//! waits until the peer's log id is known; until then the next gossip's range simply starts
//! earlier. Jumping over the range anyway would leave a gap in the peer's contiguous cursor, which
//! only a retransmission after `rto_ms` would fill (at start-up, before any peer is heard from,
//! that would happen on every link).
//!
//! **Resync.** A timeout is the slow way to learn that gossip was lost. Two events say so at
//! once, and the node then asks the peer to resend from the acknowledged cursor (a `gossip_ok`
//! with `resync`, sent directly at the next slot; the peer drops its calls in flight and resends
//! from `acked`): a **restart** (whatever the peers sent while the node was down is gone; the
//! request goes to every overlay neighbour and every peer whose log id it recovered, naming no
//! log id where it knows none), and a **gap** (a gossip whose `from` lies past `recv_upto`, from
//! a peer that names our log id or knows none yet: something in between was lost, typically to a partition that
//! has just healed; asked once per gap). A restarted node thus catches up within a slot and a
//! round trip of reaching its peers instead of up to `rto_ms` later. The sender needs no request
//! when it can tell for itself: any message from a peer with gossip to it long **overdue** (still
//! unacknowledged three of the fastest round trips plus two slots after it was sent, when the
//! message carries the peer's acknowledgement, or `ack_delay_ms` later otherwise) shows the peer is reachable again
//! and that gossip lost, so the node resends from `acked` at the next slot (`resend_if_overdue`).
//! That covers a healed partition or an ended pause where nothing new flows towards the peer to
//! reveal a gap.
//!
//! Each log has a random **log id**. Messages carry the sender's log id and the receiver's as the
//! sender knows it, so cursors are only trusted between the same two logs: a peer that restarted
//! with an empty log gets a new id, and its neighbours rewind their cursors for it. A node that
//! persists keeps its log id with its log, so its neighbours keep their cursors across its restarts.
//!
//! # Durability and the acknowledgement rule
//! With `persist` on (the default; [`BroadcastConfig`]), the node emits records through the sans-IO
//! durability contract of [`Workload`]: the log id (first record of a log), every new log entry
//! (value and origin, in log order), the neighbour list of a `topology` message (overlay `given`:
//! Maelstrom sends it only once, so a restarted node would otherwise have no neighbours), and the
//! per-peer cursors that changed (`acked`, the peer's log id, `reset_at`), riding on records written
//! anyway or, failing that, alone a second after they changed.
//! The driver (the tokio shell's flusher, or a simulator's virtual disk) makes them durable in
//! batches and reports [`Workload::persisted`]; `durable` is the log prefix covered by durable
//! records. **The rule: nothing that depends on a log entry (or on the neighbour list) leaves the
//! node before it is durable.**
//! - `broadcast_ok` is sent only once the value is durable here.
//! - Values are forwarded to peers only from the durable prefix (gossip never covers more).
//! - Acknowledgements to peers (`confirmed`, carried as `ack`) only cover what is durable here.
//! - Reads return only the durable prefix; a read waits until everything the node held when the read
//!   arrived is durable, so a client that pipelines `broadcast` then `read` sees its value.
//! - `topology_ok` (overlay `given`) is sent once the neighbour list is durable.
//!
//! **Why no acknowledged value is lost to a kill at any instant.** A kill erases exactly the
//! non-durable suffix of the log and the volatile state. By the rule, nobody outside the node has
//! observed that suffix: no client was acknowledged for it, no peer received it from this node or was
//! told this node holds it. So every value acknowledged to a client here is in the recovered log;
//! every peer cursor into this log points into the durable prefix, which comes back intact under the
//! same log id, so those cursors stay true; and every value this node acknowledged to a peer is in
//! the recovered log, so the peer may rightly stop resending it. What the kill did erase was never
//! promised to anyone, and is still held by whoever sent it: a client got no `broadcast_ok` (an
//! indeterminate op), a peer got no acknowledgement and resends after `rto_ms`. The recovered
//! `acked` cursors let the restarted node resume each peer where it had acknowledged instead of
//! replaying the whole log. The cost is one group commit (a write and an fsync) on the path of every
//! client reply and every hop.
//!
//! **Recovery.** [`Workload::init`] rebuilds the log, log id, neighbour list and cursors from
//! [`InitInfo::recovered`]. A record that does not decode ends recovery at that point with a warning:
//! the prefix before it is kept, but since what followed may have been shown to peers, the node takes
//! a new log id and writes a fresh copy (a new start record followed by the kept entries), which the
//! next recovery starts from. A log written for a different node list is ignored.
//!
//! **Compaction.** When the host finds the log has outgrown the state (see
//! [`crate::host::Host::take_compaction`]), the node's [`Workload::snapshot`] replaces it: the
//! start records of earlier logs (their ids stay retired, so a later fresh log never reuses one),
//! the current log's start record, the last neighbour-list record, the recorded log as values
//! records (tag 5 of the `record` codec: one JSON array per record, which recovery parses in one
//! call) and the link cursors as last recorded. Replayed, that is exactly the state the replaced
//! records described, so recovery is the same code over fewer, denser records; recovery also
//! builds the value index while it checks for duplicates, hashing each value once.
//! [`Workload::live_bytes`] estimates the snapshot's size from counters kept as records are taken.
//!
//! # Reads
//! A `read` returns the whole durable prefix `log[..durable]`, so its reply is as large as the set.
//! The node does not copy the set per read: it keeps the JSON text of the durable prefix, extended
//! as values become durable and a read asks for them (each value is serialised once), and answers
//! with an `Arc` of one immutable [`Snapshot`] of the array text, built on the first read after the
//! durable prefix changed and shared by every read answered until it changes again, e.g. a burst of
//! reads released by one flush. The writer copies the text verbatim into each line. Building a
//! snapshot copies the text once and has serde_json validate it (`RawValue` has no unchecked
//! constructor); reads that see no change cost a reference count. Memory: the text, the current
//! snapshot, and older snapshots only while replies still queued for the writer hold them. The
//! `messages` field is a [`Messages`]: that shared snapshot in a node's replies, plain values when
//! parsed or built by hand; both serialise to the same bytes. See the `reads` submodule.
//!
//! # Who talks to whom
//! [`Overlay`] chooses the neighbours: Maelstrom's topology, a star around one hub, a tree, or
//! everyone (origin-push, no forwarding). See [`BroadcastConfig`] for the knobs and their defaults.
//! In the star, a leaf whose hub stops answering routes through a successor hub until it answers
//! again (the `liveness` submodule); gossip goes to the current route, the overlay neighbours
//! otherwise. The successor's gossip to the leaves it serves leaves every `detour_ms` rather than
//! every slot: under a partition it runs beside the hub's own fan-out, and batching it keeps the
//! partition's message cost near the plain star's.
//!
//! # Acknowledgement relay (overlay `total`)
//! In overlay `total` every node gossips with every other, so when traffic stops every directed
//! pair that exchanged values since its last gossip owes one stand-alone acknowledgement: about
//! n(n−1)/2 to n(n−1) `gossip_ok`s (300–600 at 25 nodes), where the values themselves took
//! n−1 messages each. With the relay they take about 2(n−1) messages:
//! - When an acknowledgement to some peer falls due, a node sends the **ack relay** one
//!   `ack_batch` with *every* acknowledgement it owes (due or not: at the end of traffic they all
//!   are soon), plus its own to the relay. The relay is the lowest-numbered node among the node
//!   itself and the peers it heard from within `rto_ms`: `n0` while it is reachable, so every node
//!   picks the same one.
//! - The relay holds what it received per destination, and sends each destination one
//!   `relayed_acks` with everything held for it and its own acknowledgement, or attaches them to
//!   gossip it sends that destination first. Its own owed acknowledgements wait the same way.
//! - Each acknowledgement may be held until `relay_hold` (two thirds of `rto_ms − ack_delay_ms`)
//!   after it fell due; the batch tells the relay how long that leaves (`wait`, relative, so no
//!   clocks need agree). The last third covers the three network hops (gossip, batch, relay) and
//!   ticks, so the peer hears before it resends. The relay is used only where that third spans at
//!   least four sync periods (with the defaults it just does), and can be switched off
//!   (`ack_relay`).
//! - A relayed acknowledgement is applied only if both its log ids are the receiver's current view
//!   (its own, and the acker's as learned from the acker's own messages). It never changes that
//!   view, so a stale or forged one cannot rewind a link. So that it can be checked, a node
//!   sends an acknowledgement through the relay only for a peer whose last message named its log
//!   id (`knows_us`).
//!
//! Nothing depends on the relay for safety: an acknowledgement lost with it (relay partitioned
//! away, paused, killed, or simply slow) leaves the peer resending after `rto_ms`, exactly as a
//! lost `gossip_ok` would. A resend is flagged `retry`, and a gossip that starts below what we
//! already acknowledged reveals a lost acknowledgement; either makes the next stand-alone
//! acknowledgement to that peer go **direct** (`gossip_ok`), so a dead relay costs one resend per
//! link, and an acknowledgement already overdue is not held back further. Acknowledgements still
//! cover only durable values (the relay passes on the ackers' `confirmed` unchanged), and relayed
//! state is volatile: a relay that restarts has simply lost some acknowledgements.
//!
//! # Words
//! A node **forwards** values to its peers in gossip: its clients' values and, in every overlay but
//! `total`, values it learned from other peers. The **relay** is only ever the acknowledgement
//! relay above, which passes on other nodes' acknowledgements, never values.
//!
//! # Code
//! The module root holds the node's state ([`Broadcast`]) and its message dispatch (the
//! [`Workload`] impl). The rest, by concern:
//! - `messages`: the wire format ([`Msg`], [`AckFor`], [`AckFrom`]);
//! - `config`: the knobs ([`BroadcastConfig`], [`Overlay`], [`Eager`]) and their parsing;
//! - `link`: the per-peer state and its cursors;
//! - `gossip`: sending deltas, taking in acknowledgements, direct acknowledgements;
//! - `ack_relay`: acknowledgements that fell due, and the acknowledgement relay;
//! - `durability`: the durable prefix, the replies waiting for it, cursor records, recovery;
//! - `liveness`: the network table (per peer: last heard, RTT, alive/suspect/dead), `ping`/`pong`
//!   health checks, and star leaves routing through a successor hub while theirs is silent;
//! - `record`: the binary record codec;
//! - `index`: the value index (each value's log position);
//! - `reads`: the shared read snapshot ([`Messages`], [`Snapshot`]).

use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::rpc::Calls;
use crate::store;
use crate::wire::ErrorCode;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};

mod ack_relay;
mod config;
mod durability;
mod gossip;
mod index;
mod link;
mod liveness;
mod messages;
mod reads;
mod record;

pub use config::{BroadcastConfig, Eager, Overlay};
pub use liveness::PeerState;
pub use messages::{AckFor, AckFrom, Msg};
pub use reads::{Messages, Snapshot};

use ack_relay::HeldAck;
use durability::{ClientReply, DurableMark, LinkCursors, Waiting};
use gossip::GossipCall;
use link::{Link, Unconfirmed};
use record::Record;

/// A value as a hash key with JSON (Clojure) equality: `1` and `1.0` differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Int(i64),
    Json(String),
}

fn key(v: &Value) -> Key {
    match v.as_i64() {
        Some(i) if !v.is_f64() => Key::Int(i),
        _ => Key::Json(v.to_string()),
    }
}

/// Where a log entry came from: a client (or recovery) or a peer, by node index.
const FROM_CLIENT: u32 = u32::MAX;

/// The broadcast node.
#[derive(Debug)]
pub struct Broadcast {
    cfg: BroadcastConfig,
    me: usize,
    nodes: Vec<String>,
    index: HashMap<String, usize>,
    /// Overlay neighbours, by node index.
    peers: Vec<usize>,
    /// Whom gossip goes to: the overlay neighbours, or around a hub that stopped answering
    /// (see the `liveness` module); recomputed by `refresh_route`.
    route: Vec<usize>,
    /// The network table: one row per node (this node's own row unused).
    health: Vec<liveness::Health>,
    /// A star leaf whose hub is not alive: since when.
    episode_since: Option<Millis>,
    /// A star leaf that asked the candidates for successor along with a silent hub, before any
    /// episode: when (their answers are forgotten once the hub is heard from again).
    probed_early_at: Option<Millis>,
    /// A star leaf's successor hub during an episode (possibly itself).
    successor: Option<usize>,
    successor_changes: u64,
    /// Per node: until when this node forwards to it as its successor hub.
    adopted_until: Vec<Option<Millis>>,
    /// Forward values learned from peers (every overlay but `Total`).
    forward_learned: bool,
    links: Vec<Link>,
    log_id: u64,
    log: Vec<Value>,
    origin: Vec<u32>,
    /// Each value's position in `log` (set semantics).
    seen: index::ValueIndex,
    /// Log prefix that is durable. Without persistence, the whole log.
    durable: usize,
    /// The JSON text of the durable prefix and the snapshot reads share (see [`reads`]).
    reads: reads::ReadCache,
    /// Client replies waiting for the log to be durable up to a length.
    waiting: VecDeque<Waiting>,
    /// Records not yet taken by the driver (the start record, cursor records), in emission order;
    /// log entries are encoded lazily from `recorded_upto` when records are taken.
    queue: Vec<Vec<u8>>,
    /// Log prefix already emitted as entry records.
    recorded_upto: usize,
    /// Bytes of JSON text of `log[..recorded_upto]` (for [`Workload::live_bytes`]).
    recorded_text: u64,
    /// The node list's id, written in start records.
    cluster: u64,
    /// Log ids of earlier logs found in the records (not the current one), sorted: a snapshot
    /// keeps them so that a later fresh log never reuses one (see `durability::recover`).
    retired_ids: Vec<u64>,
    /// The last neighbour-list record taken (or recovered), which a snapshot repeats.
    topology_record: Option<Vec<u8>>,
    /// Records taken by the driver so far in this incarnation.
    taken: u64,
    /// How far the log will be durable once the driver reports so many records persisted, in
    /// emission order.
    marks: VecDeque<DurableMark>,
    /// Per peer, the cursors last emitted as a record.
    link_recorded: Vec<LinkCursors>,
    /// A topology record sits in `queue`, not yet taken.
    topology_queued: bool,
    /// Records that must be durable before waiting `topology_ok`s are sent.
    topology_needs: Option<u64>,
    /// `topology_ok`s waiting for the neighbour list to be durable.
    topology_waiting: Vec<ClientReply>,
    /// Gossip calls in flight.
    calls: Calls<GossipCall>,
    /// The `sync_ms` grid slot of the last tick: ticks fall on multiples of `sync_ms`, at most
    /// one per slot, so deltas are batched exactly as a fixed-period timer would batch them.
    last_slot: Option<Millis>,
    /// The slot promised to pending deltas: the first boundary after they became pending, as a
    /// fixed-period timer would have it. Cleared by the tick.
    pending_slot: Option<Millis>,
    /// Since when link cursors differ from their last record, noticed by `next_tick` (persistence
    /// only): they ride on other writes, or are written alone
    /// [`CURSOR_RECORD_MS`](durability::CURSOR_RECORD_MS) later.
    cursors_dirty_since: Option<Millis>,
    /// Stand-alone acknowledgements go through an ack relay (overlay `total`, `ack_relay`, and
    /// enough slack between `ack_delay_ms` and `rto_ms`; see the module docs).
    use_relay: bool,
    /// How long after it fell due an acknowledgement may be held for the relay: two thirds of
    /// `rto_ms − ack_delay_ms`, the last third being left for the network (gossip, batch, relay).
    relay_hold: Millis,
    /// Acknowledgements held here as the ack relay, per destination, at most one per acker.
    relay_out: Vec<Vec<HeldAck>>,
    /// Per destination, when what is held for it (relayed acknowledgements and our own) must
    /// leave: the earliest deadline among them.
    relay_due: Vec<Option<Millis>>,
    rng: SmallRng,
}

impl Workload for Broadcast {
    type Msg = Msg;
    type Config = BroadcastConfig;

    fn init(info: &InitInfo, cfg: &BroadcastConfig, now: Millis) -> Self {
        let mut nodes = info.node_ids.clone();
        if !nodes.contains(&info.node_id) {
            nodes.push(info.node_id.clone());
        }
        let index: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let me = index[&info.node_id];
        let n = nodes.len();
        let peers = match cfg.overlay {
            Overlay::Given => Vec::new(),
            Overlay::Star if me == 0 => (1..n).collect(),
            Overlay::Star => vec![0],
            Overlay::Total => (0..n).filter(|&i| i != me).collect(),
            Overlay::Tree(k) => {
                let mut p: Vec<usize> = if me == 0 { vec![] } else { vec![(me - 1) / k] };
                p.extend((1..=k).map(|c| me * k + c).filter(|&c| c < n));
                p
            }
        };
        let mut seed_rng =
            SmallRng::seed_from_u64(cfg.seed ^ (me as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // A fresh log id for a fresh log; `now` and the boot clock keep two incarnations apart even
        // with the same seed. Never 0, which means "unknown" on the wire.
        let log_id = seed_rng.random::<u64>() ^ info.boot_unix_micros ^ now.rotate_left(32) | 1;
        let cluster = record::cluster_id(&nodes);
        let relay_slack = cfg.rto_ms.saturating_sub(cfg.ack_delay_ms);
        let mut b = Broadcast {
            cfg: cfg.clone(),
            me,
            nodes,
            index,
            route: peers.clone(),
            peers,
            health: vec![liveness::Health::default(); n],
            episode_since: None,
            probed_early_at: None,
            successor: None,
            successor_changes: 0,
            adopted_until: vec![None; n],
            forward_learned: cfg.overlay != Overlay::Total,
            links: (0..n).map(|_| Link::default()).collect(),
            log_id,
            log: Vec::new(),
            origin: Vec::new(),
            seen: index::ValueIndex::default(),
            durable: 0,
            reads: reads::ReadCache::default(),
            waiting: VecDeque::new(),
            queue: Vec::new(),
            recorded_upto: 0,
            recorded_text: 0,
            cluster,
            retired_ids: Vec::new(),
            topology_record: None,
            taken: 0,
            marks: VecDeque::new(),
            link_recorded: vec![LinkCursors::default(); n],
            topology_queued: false,
            topology_needs: None,
            topology_waiting: Vec::new(),
            calls: Calls::default(),
            last_slot: None,
            pending_slot: None,
            cursors_dirty_since: None,
            use_relay: cfg.overlay == Overlay::Total
                && cfg.ack_relay
                && n >= 3
                && relay_slack / 3 >= 4 * cfg.sync_ms.max(1),
            relay_hold: relay_slack * 2 / 3,
            relay_out: vec![Vec::new(); n],
            relay_due: vec![None; n],
            rng: seed_rng,
        };
        b.recover(&info.recovered, cluster);
        b
    }

    fn handle(&mut self, msg: Message<Msg>, now: Millis, ctx: &mut Ctx<Msg>) {
        let src = msg.src;
        let msg_id = msg.body.msg_id;
        // (Not `peer_index`, which warns: clients send here too.)
        let peer = self.index.get(&src).copied().filter(|&p| p != self.me);
        let acks_us = match &msg.body.payload {
            Msg::Gossip { to_log, .. }
            | Msg::GossipOk { to_log, .. }
            | Msg::AckBatch { to_log, .. }
            | Msg::RelayedAcks { to_log, .. } => *to_log == self.log_id,
            _ => false,
        };
        match msg.body.payload {
            Msg::Topology { topology } => {
                if self.cfg.overlay == Overlay::Given {
                    let mine = topology
                        .get(&self.nodes[self.me])
                        .cloned()
                        .unwrap_or_default();
                    self.peers = mine
                        .iter()
                        .filter_map(|p| self.index.get(p).copied())
                        .filter(|&p| p != self.me)
                        .collect();
                    self.peers.dedup();
                    self.route = self.peers.clone();
                    if self.cfg.persist {
                        // Maelstrom sends the topology once: a restarted node only has it if it
                        // persisted it, so `topology_ok` waits for the record like any other ack.
                        self.queue_topology();
                        self.topology_waiting.push(ClientReply {
                            client: src,
                            msg_id,
                        });
                        return;
                    }
                }
                ctx.reply(&src, msg_id, Msg::TopologyOk);
            }
            Msg::Broadcast { message } => {
                let pos = self.insert(message, FROM_CLIENT);
                self.reply_when_durable(pos + 1, src, msg_id, false, ctx);
                self.sync_durable(now, ctx);
            }
            Msg::Read => {
                self.reply_when_durable(self.log.len(), src, msg_id, true, ctx);
            }
            Msg::Gossip {
                log,
                to_log,
                base,
                from,
                upto,
                values,
                ack,
                retry,
                relayed,
            } => {
                let Some(p) = self.peer_index(&src) else {
                    return;
                };
                self.check_peer_log(p, log);
                self.heard(p, to_log, now);
                for v in values {
                    self.insert(v, p as u32);
                }
                let trusted = to_log == self.log_id;
                let link = &mut self.links[p];
                if retry || from < link.acked_sent {
                    // A resend, maybe of what we acknowledged (that acknowledgement never
                    // arrived): the peer is already waiting past `rto_ms`.
                    link.direct_ack = true;
                }
                let before = link.recv_upto;
                if trusted && base > link.recv_upto {
                    // The peer only advances `base` on our acknowledgements, which cover durable values.
                    link.recv_upto = base;
                }
                if from <= link.recv_upto && upto > link.recv_upto {
                    link.recv_upto = upto;
                }
                if link.recv_upto != before {
                    link.unconfirmed.push_back(Unconfirmed {
                        needs_durable: self.log.len(),
                        recv_upto: link.recv_upto,
                    });
                }
                let mut due = self.ack_due_at(p, now);
                self.adopt(p, now, ctx);
                let link = &mut self.links[p];
                // A peer that does not know our log id yet (`to_log` 0: say, cut off from us since
                // the start) sends contiguous ranges (see `Link::skip`), so a gap is a gap there too.
                let gap_is_loss = trusted || to_log == 0;
                if gap_is_loss
                    && from > link.recv_upto
                    && link.resync_asked_at != Some(link.recv_upto)
                {
                    // A gap: gossip between `recv_upto` and `from` was lost (to a partition, or
                    // to our restart). Ask for it now rather than wait for the peer's timeout.
                    link.resync = true;
                    link.resync_asked_at = Some(link.recv_upto);
                    due = now;
                }
                link.ack_due = Some(link.ack_due.map_or(due, |d| d.min(due)));
                if trusted {
                    if let Some(t) = self.on_ack(p, ack) {
                        self.rtt_bound(p, now.saturating_sub(t));
                    }
                }
                self.apply_relayed(relayed);
                self.refresh_route(now, ctx);
                self.sync_durable(now, ctx);
                self.send_due_acks(now, ctx);
            }
            Msg::GossipOk {
                log,
                to_log,
                ack,
                resync,
            } => {
                if let Some(id) = msg.body.in_reply_to {
                    self.calls.resolve(id);
                }
                let p = self.ack_from(&src, log, to_log, ack, now);
                // A request naming no log id comes from a restarted peer that never learned ours:
                // whatever we had in flight to it is as lost as if it had named ours.
                if let Some(p) = p.filter(|_| resync && (to_log == self.log_id || to_log == 0)) {
                    self.resend_from_acked(p);
                }
                self.refresh_route(now, ctx);
            }
            Msg::AckBatch {
                log,
                to_log,
                ack,
                acks,
            } => {
                if let Some(p) = self.ack_from(&src, log, to_log, ack, now) {
                    self.hold_for_relay(p, log, acks, now);
                }
                self.refresh_route(now, ctx);
            }
            Msg::RelayedAcks {
                log,
                to_log,
                ack,
                acks,
            } => {
                if self.ack_from(&src, log, to_log, ack, now).is_some() {
                    self.apply_relayed(acks);
                }
                self.refresh_route(now, ctx);
            }
            Msg::Ping { nonce } => {
                self.on_ping(&src, nonce, now, ctx);
                self.refresh_route(now, ctx);
            }
            Msg::Pong { nonce } => {
                self.on_pong(&src, &nonce, now);
                self.refresh_route(now, ctx);
            }
            Msg::Release => {
                self.on_release(&src, now);
                self.refresh_route(now, ctx);
            }
            Msg::Error(e) => {
                tracing::debug!(%src, code = e.code, text = ?e.text, "error reply from a peer")
            }
            Msg::TopologyOk | Msg::BroadcastOk | Msg::ReadOk { .. } => {
                if msg_id.is_some() && msg.body.in_reply_to.is_none() {
                    ctx.reply_error(
                        &src,
                        msg_id,
                        ErrorCode::NotSupported,
                        "this is a reply type, not a request",
                    );
                }
            }
        }
        // Whatever it was, a message from a peer shows it can reach us (after its acknowledgement
        // was taken in above).
        if let Some(p) = peer {
            self.resend_if_overdue(p, acks_us, now);
        }
    }

    fn tick(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        let s = self.cfg.sync_ms.max(1);
        self.last_slot = Some(now - now % s);
        self.pending_slot = None;
        for (_, call) in self.calls.expire(now) {
            // Silent: nothing heard from the peer since the call left (a peer that spoke since
            // can be reached; its acknowledgement was lost or is slow).
            let heard_since = self.health[call.peer]
                .heard_at
                .is_some_and(|h| h > call.sent_at);
            let link = &mut self.links[call.peer];
            if link.acked < call.upto {
                link.retransmit = true;
                link.silent |= !heard_since;
            }
        }
        self.liveness_tick(now, ctx);
        self.send_due_acks(now, ctx);
        self.flush_relay(now, ctx);
        let mut candidates: Vec<usize> = self
            .route
            .iter()
            .copied()
            .filter(|&p| self.gossip_pending(p) && self.gossip_allowed_at(p) <= now)
            .collect();
        if self.cfg.fanout > 0 && candidates.len() > self.cfg.fanout {
            candidates.partial_shuffle(&mut self.rng, self.cfg.fanout);
            candidates.truncate(self.cfg.fanout);
        }
        for p in candidates {
            self.send_gossip(p, now, ctx);
        }
        if self.cursors_due(now).is_some_and(|t| t <= now) {
            let mut records = std::mem::take(&mut self.queue);
            self.record_links(&mut records);
            self.queue = records;
        }
    }

    /// The next `sync_ms` slot after the last tick in which something is due: deltas or a
    /// retransmission pending for a neighbour, changed cursors to record, an acknowledgement's
    /// delay running out, acknowledgements held as the ack relay falling due, a gossip call's
    /// deadline, a health check or a suspicion (see the `liveness` module). `None` when idle: no
    /// timer, no CPU.
    fn next_tick(&mut self, now: Millis) -> Option<Millis> {
        let s = self.cfg.sync_ms.max(1);
        for i in 0..self.route.len() {
            self.skip_unforwardable(self.route[i]);
        }
        // Gossip held back for a peer (silent, or a successor's fan-out) is due when its wait is
        // up, as a deadline; other pending gossip at the next slot.
        let mut pending = false;
        let mut held_due: Option<Millis> = None;
        for &p in &self.route {
            if self.gossip_pending(p) {
                match self.gossip_allowed_at(p) {
                    0 => pending = true,
                    at => held_due = Some(held_due.map_or(at, |d| d.min(at))),
                }
            }
        }
        let cursors_due = self.cursors_due(now);
        // Pending work is due at the first slot boundary after it became pending (remembered, so a
        // timer firing just after that boundary finds it due); deadlines at the first boundary at
        // or after them.
        if !pending {
            self.pending_slot = None;
        }
        let pending = pending.then(|| *self.pending_slot.get_or_insert(now - now % s + s));
        let due = [
            pending,
            cursors_due,
            self.links.iter().filter_map(|l| l.ack_due).min(),
            self.relay_due.iter().flatten().min().copied(),
            self.calls.next_deadline(),
            held_due,
            self.liveness_due(now),
        ]
        .into_iter()
        .flatten()
        .min()?;
        let slot = due.div_ceil(s).saturating_mul(s);
        Some(
            self.last_slot
                .map_or(slot, |last| slot.max(last.saturating_add(s))),
        )
    }

    fn persistent(cfg: &BroadcastConfig) -> bool {
        cfg.persist
    }

    fn take_records(&mut self) -> Vec<Vec<u8>> {
        if !self.cfg.persist {
            return Vec::new();
        }
        let mut out = std::mem::take(&mut self.queue);
        self.taken += out.len() as u64;
        if std::mem::take(&mut self.topology_queued) {
            self.topology_needs = Some(self.taken);
            // The queue's last topology record holds the current list.
            self.topology_record = Some(record::encode(&Record::Topology {
                peers: self.peers.iter().map(|&p| p as u32).collect(),
            }));
        }
        while self.recorded_upto < self.log.len() {
            let (rec, upto) = record::encode_entries(
                self.recorded_upto,
                &self.log,
                &self.origin,
                record::ENTRIES_BYTES,
            );
            self.recorded_text += record::value_text_bytes(&rec);
            out.push(rec);
            self.taken += 1;
            self.recorded_upto = upto;
            self.marks.push_back(DurableMark {
                records: self.taken,
                log_len: upto,
            });
        }
        if !out.is_empty() {
            // Changed cursors ride along with a write that happens anyway, never cause one.
            let before = out.len();
            self.record_links(&mut out);
            self.taken += (out.len() - before) as u64;
            self.cursors_dirty_since = None;
        }
        out
    }

    /// The size of [`Workload::snapshot`]'s records: start records, the neighbour list, the
    /// recorded values as values records, and the recorded link cursors.
    fn live_bytes(&self) -> Option<u64> {
        if !self.cfg.persist {
            return None;
        }
        let start = store::frame_len(17) * (1 + self.retired_ids.len() as u64);
        let topology = self
            .topology_record
            .as_ref()
            .map_or(0, |t| store::frame_len(t.len()));
        let links = self
            .link_recorded
            .iter()
            .filter(|c| **c != LinkCursors::default())
            .count() as u64
            * store::frame_len(29);
        let values = record::values_log_bytes(self.recorded_upto as u64, self.recorded_text);
        Some(start + topology + links + values)
    }

    /// Start records (retired ids, then the current log's), the neighbour list, the log as
    /// values records, and the link cursors as last recorded: replayed alone, the state every
    /// record taken so far describes. Declines while records wait in the queue (they may be a
    /// fresh log's start record, which must come first).
    fn snapshot(&mut self) -> Option<Vec<Vec<u8>>> {
        self.snapshot_records()
    }

    fn persisted(&mut self, count: u64, now: Millis, ctx: &mut Ctx<Msg>) {
        if self.topology_needs.is_some_and(|n| n <= count) {
            self.topology_needs = None;
            for r in self.topology_waiting.drain(..) {
                ctx.reply(&r.client, r.msg_id, Msg::TopologyOk);
            }
        }
        let mut upto = self.durable;
        while let Some(&mark) = self.marks.front() {
            if mark.records > count {
                break;
            }
            upto = upto.max(mark.log_len);
            self.marks.pop_front();
        }
        if upto > self.durable {
            self.advance_durable(upto, now, ctx);
            self.send_due_acks(now, ctx);
        }
    }
}

impl Broadcast {
    /// [`Workload::snapshot`] (it needs no `&mut`).
    fn snapshot_records(&self) -> Option<Vec<Vec<u8>>> {
        if !self.cfg.persist || !self.queue.is_empty() || self.topology_queued {
            return None;
        }
        let cluster = self.cluster;
        let mut out: Vec<Vec<u8>> = self
            .retired_ids
            .iter()
            .chain([&self.log_id])
            .map(|&log_id| record::encode(&Record::Start { log_id, cluster }))
            .collect();
        out.extend(self.topology_record.clone());
        let recorded = &self.log[..self.recorded_upto];
        let mut at = 0;
        while at < recorded.len() {
            let (rec, upto) =
                record::encode_values(at, recorded, &self.origin, record::ENTRIES_BYTES);
            out.push(rec);
            at = upto;
        }
        for (p, cur) in self.link_recorded.iter().enumerate() {
            if *cur != LinkCursors::default() {
                out.push(record::encode(&Record::Link {
                    peer: p as u32,
                    peer_log: cur.peer_log,
                    acked: cur.acked as u64,
                    reset_at: cur.reset_at as u64,
                }));
            }
        }
        Some(out)
    }
}

impl Broadcast {
    /// The values this node holds, in arrival order (durable ones only: what a read returns).
    pub fn values(&self) -> &[Value] {
        &self.log[..self.durable]
    }

    /// This node's overlay neighbours, by id.
    pub fn peers(&self) -> Vec<&str> {
        self.peers.iter().map(|&p| self.nodes[p].as_str()).collect()
    }

    pub(super) fn peer_index(&self, src: &str) -> Option<usize> {
        match self.index.get(src) {
            Some(&p) if p != self.me => Some(p),
            _ => {
                tracing::warn!(%src, "gossip from an unknown node ignored");
                None
            }
        }
    }

    /// Appends `v` unless already held; returns its log position either way.
    fn insert(&mut self, v: Value, from: u32) -> usize {
        let pos = self.log.len();
        if let Err(held) = self.seen.insert_new(&self.log, &v, pos) {
            return held;
        }
        self.log.push(v);
        self.origin.push(from);
        pos
    }
}

#[cfg(test)]
mod tests;

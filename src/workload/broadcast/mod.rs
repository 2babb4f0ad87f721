//! `broadcast`: `topology`, `broadcast` and `read` (spec §5), and the gossip that spreads values.
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
//! partition. Acknowledgements are cumulative (`recv_upto`), ride on gossip already going the other
//! way, and otherwise leave as a `gossip_ok` after `ack_delay_ms` (or, in overlay `total`, through
//! the ack relay below). Nothing is sent when nothing is pending.
//!
//! A range holding nothing for the peer (values it sent us, or, without relaying, values learned
//! from others) is counted as acknowledged without a message, and the next gossip's `base` moves
//! the peer's cursor over it. The peer trusts `base` only from a gossip naming its log id, so this
//! waits until the peer's log id is known; until then the next gossip's range simply starts
//! earlier. Jumping over the range anyway would leave a gap in the peer's contiguous cursor, which
//! only a retransmission after `rto_ms` would fill (at start-up, every link did this once).
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
//! # Reads
//! A `read` returns the whole durable prefix `log[..durable]`, so its reply is as large as the set.
//! The node does not copy the set per read: it keeps the JSON text of the durable prefix, extended
//! as values become durable and a read asks for them (each value is serialised once), and answers
//! with an `Arc` of one immutable [`Snapshot`] of the array text, built on the first read after the
//! durable prefix changed and shared by every read answered until it changes again, e.g. a burst of
//! reads released by one flush. The writer copies the text verbatim into each line. Building a
//! snapshot copies the text once and has serde_json validate it (`RawValue` has no unchecked
//! constructor): about 0.8 ms for 100k eight-digit integers (900 KB). Reads that see no change
//! cost a reference count. Memory: the text, the current snapshot, and older snapshots only while
//! replies still queued for the writer hold them. The `messages` field is a
//! [`Messages`]: that shared snapshot in a node's replies, plain values when parsed or built by
//! hand; both serialise to the same bytes. See the `reads` submodule.
//!
//! # Who talks to whom
//! [`Overlay`] chooses the neighbours: Maelstrom's topology, a star around one hub, a tree, or
//! everyone (origin-push, no relaying). See [`BroadcastConfig`] for the knobs and their defaults.
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
//!   relays an acknowledgement only to a peer whose last message named its log id (`knows_us`).
//!
//! Nothing depends on the relay for safety: an acknowledgement lost with it (relay partitioned
//! away, paused, killed, or simply slow) leaves the peer resending after `rto_ms`, exactly as a
//! lost `gossip_ok` would. A resend is flagged `retry`, and a gossip that starts below what we
//! already acknowledged reveals a lost acknowledgement; either makes the next stand-alone
//! acknowledgement to that peer go **direct** (`gossip_ok`), so a dead relay costs one resend per
//! link, and an acknowledgement already overdue is not held back further. Acknowledgements still
//! cover only durable values (the relay forwards the ackers' `confirmed` unchanged), and relayed
//! state is volatile: a relay that restarts has simply lost some acknowledgements.

use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::rpc::Calls;
use crate::wire::{ErrorBody, ErrorCode};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::str::FromStr;

mod reads;
pub use reads::{Messages, Snapshot};

/// Broadcast payloads. The first six are Maelstrom's; `gossip`, `gossip_ok`, `ack_batch` and
/// `relayed_acks` are ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    Topology {
        topology: HashMap<String, Vec<String>>,
    },
    TopologyOk,
    Broadcast {
        message: Value,
    },
    BroadcastOk,
    Read,
    /// `messages` is the node's durable set; a node's reply shares it with other reads
    /// ([`Messages`]), a parsed one owns its values.
    ReadOk {
        messages: Messages,
    },
    /// Values `log[from..upto]` of the sender's log `log` (filtered for the receiver), plus the
    /// sender's cursors: `base` (what it believes the receiver has of its log) and `ack` (what it
    /// holds of the receiver's log), both valid only if `to_log` is the receiver's log id.
    /// `retry`: a resend after `rto_ms`, whose acknowledgement is overdue and so goes direct
    /// rather than through the ack relay. `relayed`: from an ack relay, acknowledgements it held
    /// for the receiver (as in `relayed_acks`). Both are absent on the wire when empty.
    Gossip {
        log: u64,
        to_log: u64,
        base: u64,
        from: u64,
        upto: u64,
        values: Vec<Value>,
        ack: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        retry: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        relayed: Vec<AckFrom>,
    },
    /// A stand-alone cumulative acknowledgement, sent when no gossip goes back soon enough.
    GossipOk {
        log: u64,
        to_log: u64,
        ack: u64,
    },
    /// Stand-alone acknowledgements for several peers in one message to the ack relay (see
    /// "Acknowledgement relay" in the module docs): the sender's own acknowledgement of the
    /// relay's log (as in `gossip_ok`), plus `acks` for the relay to pass on.
    AckBatch {
        log: u64,
        to_log: u64,
        ack: u64,
        acks: Vec<AckFor>,
    },
    /// From the ack relay: its own acknowledgement of the receiver's log (as in `gossip_ok`), plus
    /// acknowledgements other nodes sent the receiver through it.
    RelayedAcks {
        log: u64,
        to_log: u64,
        ack: u64,
        acks: Vec<AckFrom>,
    },
    Error(ErrorBody),
}

/// An acknowledgement handed to the ack relay: the sender holds node `to`'s log `to_log` up to
/// `ack`; the relay may hold it `wait` ms before passing it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckFor {
    pub to: String,
    pub to_log: u64,
    pub ack: u64,
    pub wait: u64,
}

/// An acknowledgement passed on by the ack relay: node `from`, whose log is `log`, holds the
/// receiver's log `to_log` up to `ack`. Applied only if both log ids are the receiver's current
/// view; it never changes that view (only a node's own messages can announce its log id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckFrom {
    pub from: String,
    pub log: u64,
    pub to_log: u64,
    pub ack: u64,
}

impl From<ErrorBody> for Msg {
    fn from(e: ErrorBody) -> Self {
        Msg::Error(e)
    }
}

/// Which peers a node gossips with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    /// The neighbours from Maelstrom's `topology` message; values are relayed hop by hop.
    Given,
    /// The first node is the hub; every other node talks only to it. Two hops end to end.
    Star,
    /// A `k`-ary tree over the node list in order; values are relayed along it.
    Tree(usize),
    /// Everyone talks to everyone; only a value's origin sends it (no relaying), so one hop.
    Total,
}

impl FromStr for Overlay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "given" | "maelstrom" => Ok(Overlay::Given),
            "star" => Ok(Overlay::Star),
            "total" => Ok(Overlay::Total),
            _ => match s.strip_prefix("tree").map(str::parse::<usize>) {
                Some(Ok(k)) if k >= 1 => Ok(Overlay::Tree(k)),
                _ => Err(format!(
                    "unknown overlay `{s}`: expected given, star, total or tree<k> (k ≥ 1)"
                )),
            },
        }
    }
}

/// When a client's value leaves its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eager {
    /// Only on the next sync tick.
    Never,
    /// At once if the node has a single peer (a star or tree leaf), which costs one message per
    /// value but saves up to a tick of latency; otherwise on the next tick.
    Leaves,
    /// At once to every peer.
    Always,
}

impl FromStr for Eager {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" | "false" | "0" => Ok(Eager::Never),
            "leaves" => Ok(Eager::Leaves),
            "always" | "true" | "1" => Ok(Eager::Always),
            _ => Err(format!(
                "unknown eager mode `{s}`: expected never, leaves or always"
            )),
        }
    }
}

/// Broadcast knobs. Each can be set by an environment variable `MURMUR_<NAME>` or by an argument
/// `--<name> <value>` after `--bin` (arguments win). Defaults:
///
/// | knob | default | meaning |
/// |---|---|---|
/// | `overlay` | `star` | who gossips with whom ([`Overlay`]: given, star, total, `tree<k>`) |
/// | `sync_ms` | 100 | batching period: pending deltas leave on the next multiple of it (the node only wakes when something is pending) |
/// | `fanout` | 0 | peers served per tick, chosen at random among those with something pending (0 = all) |
/// | `eager` | `leaves` | when a client's value leaves its origin ([`Eager`]) |
/// | `ack_delay_ms` | 1000 | how long an acknowledgement may wait to ride on gossip going back (in the star, a leaf's forwards of its clients' values, about two a second at the 3d rate, so few leave alone) |
/// | `rto_ms` | 2500 | a gossip unacknowledged this long is resent (from the acked cursor): above `ack_delay_ms` plus a round trip and a slot, with room for a slow runner; a premature resend only costs messages |
/// | `max_batch` | 5000 | most values in one gossip message |
/// | `ack_relay` | `true` | overlay `total`: stand-alone acknowledgements leave as one batch per node through a relay node (see "Acknowledgement relay" in the module docs), where `(rto_ms − ack_delay_ms) / 3` ≥ 4 `sync_ms` |
/// | `seed` | 0 | mixed with the node id to seed the fan-out choice |
/// | `persist` | `true` | persist the log and acknowledge only durable values (see the module docs); `0`/`false` keeps everything in memory, so a killed node loses what it held |
///
/// The tokio shell's own knobs (`MURMUR_DATA_DIR`, `MURMUR_FLUSH_MS`, ...) are listed in
/// [`crate::host::ShellConfig`]; they are environment variables only.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastConfig {
    pub overlay: Overlay,
    pub sync_ms: Millis,
    pub fanout: usize,
    pub eager: Eager,
    pub ack_delay_ms: Millis,
    pub rto_ms: Millis,
    pub max_batch: usize,
    pub ack_relay: bool,
    pub seed: u64,
    pub persist: bool,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        BroadcastConfig {
            overlay: Overlay::Star,
            sync_ms: 100,
            fanout: 0,
            eager: Eager::Leaves,
            ack_delay_ms: 1000,
            rto_ms: 2500,
            max_batch: 5000,
            ack_relay: true,
            seed: 0,
            persist: true,
        }
    }
}

impl BroadcastConfig {
    /// Applies one knob by name (`overlay`, `sync-ms` or `sync_ms`, ...).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        fn num<T: FromStr>(name: &str, v: &str) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("knob `{name}`: `{v}` is not a valid number"))
        }
        fn flag(name: &str, v: &str) -> Result<bool, String> {
            crate::host::parse_bool(v).ok_or_else(|| {
                format!("knob `{name}`: `{v}` is not a boolean (1/0, true/false, on/off)")
            })
        }
        match name.replace('-', "_").to_ascii_lowercase().as_str() {
            "overlay" => self.overlay = value.parse()?,
            "sync_ms" => self.sync_ms = num(name, value)?,
            "fanout" => self.fanout = num(name, value)?,
            "eager" => self.eager = value.parse()?,
            "ack_delay_ms" => self.ack_delay_ms = num(name, value)?,
            "rto_ms" => self.rto_ms = num(name, value)?,
            "max_batch" => self.max_batch = num::<usize>(name, value)?.max(1),
            "ack_relay" => self.ack_relay = flag(name, value)?,
            "seed" => self.seed = num(name, value)?,
            "persist" => self.persist = flag(name, value)?,
            _ => return Err(format!("unknown knob `{name}`")),
        }
        Ok(())
    }

    /// Defaults, then `MURMUR_*` environment variables, then `--name value` arguments.
    pub fn from_env_and_args(
        env: impl IntoIterator<Item = (String, String)>,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Self, String> {
        let mut cfg = BroadcastConfig::default();
        for (k, v) in env {
            if let Some(name) = k.strip_prefix("MURMUR_") {
                if crate::host::SHELL_ENV.contains(&name) {
                    continue;
                }
                cfg.set(name, &v).map_err(|e| format!("{k}: {e}"))?;
            }
        }
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let Some(flag) = a.strip_prefix("--") else {
                return Err(format!(
                    "unexpected argument `{a}`: knobs are given as --name value"
                ));
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => (
                    flag.to_string(),
                    args.next()
                        .ok_or_else(|| format!("--{flag} needs a value"))?,
                ),
            };
            cfg.set(&name, &value)?;
        }
        Ok(cfg)
    }
}

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

/// Per-peer gossip state; see the module docs.
#[derive(Debug, Default)]
struct Link {
    /// The peer's log id, once heard.
    peer_log: Option<u64>,
    /// Local log prefix the peer holds (or does not need).
    acked: usize,
    /// Local log prefix sent at least once.
    sent_upto: usize,
    /// Local log prefix already looked at for this peer (≥ `sent_upto` when it counts): entries
    /// in `sent_upto..scanned` were skipped as not for the peer while earlier gossip was in
    /// flight, or before the peer's log id was known. They are covered by the next gossip's range
    /// instead of being jumped over, which would leave a gap in the peer's contiguous cursor and
    /// force a retransmission.
    scanned: usize,
    /// A gossip call timed out with values unacknowledged: resend from `acked`.
    retransmit: bool,
    /// Contiguous prefix of the peer's log held here.
    recv_upto: u64,
    /// `recv_upto` values waiting for the local log to be durable up to the given length.
    unconfirmed: VecDeque<(usize, u64)>,
    /// The part of `recv_upto` that is durable here: what acknowledgements report.
    confirmed: u64,
    /// The last `confirmed` sent to the peer (stand-alone or piggybacked): a newer one is owed.
    acked_sent: u64,
    /// An acknowledgement is owed, due at this time.
    ack_due: Option<Millis>,
    /// The peer's last message named this node's log id, so it can check acknowledgements relayed
    /// in this node's name (they carry log ids but cannot announce them).
    knows_us: bool,
    /// The peer resent what this node had acknowledged: an acknowledgement sent through the ack
    /// relay may have been lost, so the next stand-alone one goes direct.
    direct_ack: bool,
    /// When the last message from the peer arrived (to pick a reachable ack relay).
    heard_at: Option<Millis>,
    /// Local log length when the peer was last seen to lose its state: entries before it that
    /// came from the peer must be sent back, since the peer no longer has them.
    reset_at: usize,
}

impl Link {
    /// Log entries `from..upto` hold nothing for the peer (see `Broadcast::send_gossip`): counted
    /// as held if nothing before them is in flight and the peer will trust the next gossip's
    /// `base` (it names the peer's log id, so that must be known); otherwise only remembered as
    /// scanned, so the next gossip's range covers them and the peer's cursor stays contiguous.
    fn skip(&mut self, from: usize, upto: usize) {
        if self.acked >= from && self.peer_log.is_some() {
            self.acked = self.acked.max(upto);
            self.sent_upto = self.sent_upto.max(upto);
        }
        self.scanned = self.scanned.max(upto);
    }

    /// An acknowledgement was owed for values not yet durable here: nothing new to confirm yet.
    fn waits_for_durability(&self) -> bool {
        self.confirmed == self.acked_sent && !self.unconfirmed.is_empty()
    }

    /// `confirmed` went to the peer in a message of our own (not through the relay). That settles
    /// a resend only if it covered everything received: a retry's values may still be on their
    /// way to disk, and their acknowledgement is what the peer is waiting for.
    fn note_direct_ack(&mut self) {
        self.acked_sent = self.confirmed;
        if self.unconfirmed.is_empty() {
            self.direct_ack = false;
        }
    }
}

/// A client request answered once the log is durable up to `need`.
#[derive(Debug)]
struct Waiting {
    need: usize,
    client: String,
    msg_id: Option<u64>,
    read: bool,
}

/// The broadcast node.
#[derive(Debug)]
pub struct Broadcast {
    cfg: BroadcastConfig,
    me: usize,
    nodes: Vec<String>,
    index: HashMap<String, usize>,
    /// Overlay neighbours, by node index.
    peers: Vec<usize>,
    /// Forward values learned from peers (every overlay but `Total`).
    relay: bool,
    links: Vec<Link>,
    log_id: u64,
    log: Vec<Value>,
    origin: Vec<u32>,
    seen: HashMap<Key, usize>,
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
    /// Records taken by the driver so far in this incarnation.
    taken: u64,
    /// (records taken, log length they cover): the log is durable up to the length once the driver
    /// reports that many records persisted.
    marks: VecDeque<(u64, usize)>,
    /// Per peer, the cursors last emitted as a record: (peer log id or 0, acked, reset_at).
    link_recorded: Vec<(u64, usize, usize)>,
    /// A topology record sits in `queue`, not yet taken.
    topology_queued: bool,
    /// Records that must be durable before waiting `topology_ok`s are sent.
    topology_needs: Option<u64>,
    /// `topology_ok`s waiting for the neighbour list to be durable: (client, msg_id).
    topology_waiting: Vec<(String, Option<u64>)>,
    /// Gossip calls in flight: (peer, local log cursor the call covers).
    calls: Calls<(usize, usize)>,
    /// The `sync_ms` grid slot of the last tick: ticks fall on multiples of `sync_ms`, at most
    /// one per slot, so deltas are batched exactly as a fixed-period timer would batch them.
    last_slot: Option<Millis>,
    /// The slot promised to pending deltas: the first boundary after they became pending, as a
    /// fixed-period timer would have it. Cleared by the tick.
    pending_slot: Option<Millis>,
    /// Since when link cursors differ from their last record, noticed by `next_tick` (persistence
    /// only): they ride on other writes, or are written alone [`CURSOR_RECORD_MS`] later.
    cursors_dirty_since: Option<Millis>,
    /// Stand-alone acknowledgements go through an ack relay (overlay `total`, `ack_relay`, and
    /// enough slack between `ack_delay_ms` and `rto_ms`; see the module docs).
    use_relay: bool,
    /// How long after it fell due an acknowledgement may be held for the relay: two thirds of
    /// `rto_ms − ack_delay_ms`, the last third being left for the network (gossip, batch, relay).
    relay_hold: Millis,
    /// Acknowledgements held here as a relay, per destination: (acker, its log, the destination's
    /// log, ack), at most one per acker.
    relay_out: Vec<Vec<(usize, u64, u64, u64)>>,
    /// Per destination, when what is held for it (relayed acknowledgements and our own) must
    /// leave: the earliest deadline among them.
    relay_due: Vec<Option<Millis>>,
    rng: SmallRng,
}

/// The longest changed link cursors wait for another write to ride on before they are written on
/// their own (one wake-up and one small write per node per second at most, instead of one per
/// tick; a restart within that window only resends a little more).
const CURSOR_RECORD_MS: Millis = 1000;

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
            peers,
            relay: cfg.overlay != Overlay::Total,
            links: (0..n).map(|_| Link::default()).collect(),
            log_id,
            log: Vec::new(),
            origin: Vec::new(),
            seen: HashMap::new(),
            durable: 0,
            reads: reads::ReadCache::default(),
            waiting: VecDeque::new(),
            queue: Vec::new(),
            recorded_upto: 0,
            taken: 0,
            marks: VecDeque::new(),
            link_recorded: vec![(0, 0, 0); n],
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
                    if self.cfg.persist {
                        // Maelstrom sends the topology once: a restarted node only has it if it
                        // persisted it, so `topology_ok` waits for the record like any other ack.
                        self.queue_topology();
                        self.topology_waiting.push((src, msg_id));
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
                    link.unconfirmed.push_back((self.log.len(), link.recv_upto));
                }
                let due = self.ack_due_at(p, now);
                let link = &mut self.links[p];
                link.ack_due = Some(link.ack_due.map_or(due, |d| d.min(due)));
                if trusted {
                    self.on_ack(p, ack);
                }
                self.apply_relayed(relayed);
                self.sync_durable(now, ctx);
                self.send_due_acks(now, ctx);
            }
            Msg::GossipOk { log, to_log, ack } => {
                if let Some(id) = msg.body.in_reply_to {
                    self.calls.resolve(id);
                }
                self.ack_from(&src, log, to_log, ack, now);
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
    }

    fn tick(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        let s = self.cfg.sync_ms.max(1);
        self.last_slot = Some(now - now % s);
        self.pending_slot = None;
        for (_, (p, upto)) in self.calls.expire(now) {
            let link = &mut self.links[p];
            if link.acked < upto {
                link.retransmit = true;
            }
        }
        self.send_due_acks(now, ctx);
        self.flush_relay(now, ctx);
        let mut candidates: Vec<usize> = self
            .peers
            .iter()
            .copied()
            .filter(|&p| self.gossip_pending(p))
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
    /// deadline. `None` when idle: no timer, no CPU.
    fn next_tick(&mut self, now: Millis) -> Option<Millis> {
        let s = self.cfg.sync_ms.max(1);
        for i in 0..self.peers.len() {
            self.skip_unforwardable(self.peers[i]);
        }
        let pending = self.peers.iter().any(|&p| self.gossip_pending(p));
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
        ]
        .into_iter()
        .flatten()
        .min()?;
        let slot = due.div_ceil(s) * s;
        Some(self.last_slot.map_or(slot, |last| slot.max(last + s)))
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
        }
        while self.recorded_upto < self.log.len() {
            let (rec, upto) = record::encode_entries(
                self.recorded_upto,
                &self.log,
                &self.origin,
                record::ENTRIES_BYTES,
            );
            out.push(rec);
            self.taken += 1;
            self.recorded_upto = upto;
            self.marks.push_back((self.taken, upto));
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

    fn persisted(&mut self, count: u64, now: Millis, ctx: &mut Ctx<Msg>) {
        if self.topology_needs.is_some_and(|n| n <= count) {
            self.topology_needs = None;
            for (client, msg_id) in self.topology_waiting.drain(..) {
                ctx.reply(&client, msg_id, Msg::TopologyOk);
            }
        }
        let mut upto = self.durable;
        while let Some(&(n, covered)) = self.marks.front() {
            if n > count {
                break;
            }
            upto = upto.max(covered);
            self.marks.pop_front();
        }
        if upto > self.durable {
            self.advance_durable(upto, now, ctx);
            self.send_due_acks(now, ctx);
        }
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

    fn peer_index(&self, src: &str) -> Option<usize> {
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
        let k = key(&v);
        if let Some(&pos) = self.seen.get(&k) {
            return pos;
        }
        let pos = self.log.len();
        self.seen.insert(k, pos);
        self.log.push(v);
        self.origin.push(from);
        pos
    }

    /// A peer whose log id changed has lost its state: rewind both directions of the link.
    fn check_peer_log(&mut self, p: usize, log: u64) {
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
    fn ack_from(
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
            self.on_ack(p, ack);
        }
        Some(p)
    }

    /// Applies acknowledgements passed on by an ack relay. Both logs must be the ones the link is
    /// about: the acker's as known here (a relayed acknowledgement never announces a log id, so it
    /// never rewinds a link) and ours.
    fn apply_relayed(&mut self, acks: Vec<AckFrom>) {
        for a in acks {
            let Some(&q) = self.index.get(&a.from) else {
                continue;
            };
            if q != self.me && a.to_log == self.log_id && self.links[q].peer_log == Some(a.log) {
                self.on_ack(q, a.ack);
            }
        }
    }

    /// Notes a message from peer `p` naming `to_log` as our log id.
    fn heard(&mut self, p: usize, to_log: u64, now: Millis) {
        let link = &mut self.links[p];
        link.heard_at = Some(now);
        link.knows_us = to_log == self.log_id;
    }

    fn on_ack(&mut self, p: usize, ack: u64) {
        let ack = (ack as usize).min(self.durable);
        let link = &mut self.links[p];
        if ack > link.acked {
            link.acked = ack;
            link.sent_upto = link.sent_upto.max(ack);
            // Calls this covers can no longer time out into a retransmission: forget them, so their
            // deadlines wake nobody (acks usually ride on gossip and never resolve a call by id).
            self.calls.retain(|&(q, upto)| q != p || upto > ack);
        }
    }

    /// Whether log entry `i` is for peer `to`: never back to the peer it came from (unless that
    /// peer has since lost it), and, without relaying, only values this node originated.
    fn forwardable(&self, i: usize, to: usize) -> bool {
        let o = self.origin[i];
        if o == to as u32 {
            i < self.links[to].reset_at
        } else {
            self.relay || o == FROM_CLIENT
        }
    }

    /// Sends peer `p` what it lacks: the delta since `sent_upto`, or everything since `acked` when
    /// a call timed out.
    fn send_gossip(&mut self, p: usize, now: Millis, ctx: &mut Ctx<Msg>) {
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
            // Acknowledgements held for the peer as its relay ride along.
            relayed: self.take_held(p),
        };
        let link = &mut self.links[p];
        link.sent_upto = link.sent_upto.max(upto);
        link.scanned = link.scanned.max(upto);
        link.ack_due = None;
        link.note_direct_ack();
        let id = ctx.send(&self.nodes[p], msg);
        self.calls.register(id, now + self.cfg.rto_ms, (p, upto));
    }

    /// When an acknowledgement owed to `p` from `now` is due: after `ack_delay_ms` for an overlay
    /// neighbour (gossip going back may carry it first), at once otherwise.
    fn ack_due_at(&self, p: usize, now: Millis) -> Millis {
        if self.cfg.ack_delay_ms == 0 || !self.peers.contains(&p) {
            now
        } else {
            now + self.cfg.ack_delay_ms
        }
    }

    /// Sends the acknowledgements that are due: through the ack relay where it applies (see the
    /// module docs), directly otherwise.
    fn send_due_acks(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        let relay = self.ack_relay(now);
        let hold = self.relay_hold;
        let mut batch = false;
        for p in 0..self.links.len() {
            let link = &mut self.links[p];
            let Some(due) = link.ack_due.filter(|&d| d <= now) else {
                continue;
            };
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

    fn send_gossip_ok(&mut self, p: usize, ctx: &mut Ctx<Msg>) {
        let link = &mut self.links[p];
        link.ack_due = None;
        link.note_direct_ack();
        let msg = Msg::GossipOk {
            log: self.log_id,
            to_log: link.peer_log.unwrap_or(0),
            ack: link.confirmed,
        };
        ctx.notify(&self.nodes[p], msg);
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
                || self.links[p]
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
        let (log, to_log, ack) = self.own_ack_to(relay);
        let msg = Msg::AckBatch {
            log,
            to_log,
            ack,
            acks,
        };
        ctx.notify(&self.nodes[relay], msg);
    }

    /// Our own acknowledgement of `p`'s log, riding on an `ack_batch` or `relayed_acks` we send it:
    /// (our log id, its log id, `confirmed`). It settles what is owed, unless values are still on
    /// their way to disk (their acknowledgement stays due).
    fn own_ack_to(&mut self, p: usize) -> (u64, u64, u64) {
        let link = &mut self.links[p];
        if !link.waits_for_durability() {
            link.ack_due = None;
        }
        link.note_direct_ack();
        (self.log_id, link.peer_log.unwrap_or(0), link.confirmed)
    }

    /// As a relay: holds the acknowledgements `acker` (log `log`) sent through us, one per
    /// destination and acker, each at most as long as its `wait` says (and never longer than
    /// `relay_hold`, whatever it says).
    fn hold_for_relay(&mut self, acker: usize, log: u64, acks: Vec<AckFor>, now: Millis) {
        for a in acks {
            let Some(&to) = self.index.get(&a.to) else {
                continue;
            };
            if to == self.me || to == acker {
                continue;
            }
            let out = &mut self.relay_out[to];
            let entry = (acker, log, a.to_log, a.ack);
            match out.iter_mut().find(|e| e.0 == acker) {
                Some(e) if (e.1, e.2) == (log, a.to_log) => e.3 = e.3.max(a.ack),
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
    fn take_held(&mut self, p: usize) -> Vec<AckFrom> {
        self.relay_due[p] = None;
        std::mem::take(&mut self.relay_out[p])
            .into_iter()
            .map(|(q, log, to_log, ack)| AckFrom {
                from: self.nodes[q].clone(),
                log,
                to_log,
                ack,
            })
            .collect()
    }

    /// As a relay: sends each destination whose held acknowledgements are due one message with
    /// all of them, and our own acknowledgement (owed or not, it is free).
    fn flush_relay(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        for p in 0..self.links.len() {
            if !self.relay_due[p].is_some_and(|t| t <= now) {
                continue;
            }
            let acks = self.take_held(p);
            let (log, to_log, ack) = self.own_ack_to(p);
            let msg = Msg::RelayedAcks {
                log,
                to_log,
                ack,
                acks,
            };
            ctx.notify(&self.nodes[p], msg);
        }
    }

    /// The log is durable up to `upto`: confirm acknowledgements, release client replies, and push
    /// new client values at once where [`Eager`] says so.
    fn advance_durable(&mut self, upto: usize, now: Millis, ctx: &mut Ctx<Msg>) {
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
                .is_some_and(|(need, _)| *need <= durable)
            {
                link.confirmed = link
                    .unconfirmed
                    .pop_front()
                    .map(|(_, r)| r)
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
            Eager::Leaves => self.peers.len() == 1,
            Eager::Always => true,
        };
        if eager && (old..durable).any(|i| self.origin[i] == FROM_CLIENT) {
            for i in 0..self.peers.len() {
                let p = self.peers[i];
                self.send_gossip(p, now, ctx);
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
    fn reply_when_durable(
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
    /// what [`Workload::persisted`] reported, but outputs already covered by it are released.
    fn sync_durable(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        let upto = if self.cfg.persist {
            self.durable
        } else {
            self.log.len()
        };
        self.advance_durable(upto, now, ctx);
    }

    /// Queues a record of the current neighbour list (overlay `given`).
    fn queue_topology(&mut self) {
        self.queue.push(record::encode(&record::Record::Topology {
            peers: self.peers.iter().map(|&p| p as u32).collect(),
        }));
        self.topology_queued = true;
    }

    /// If no durable entry past what peer `p` was sent or scanned is for it (a leaf's entries all
    /// came from its hub, say), settles that range now, exactly as the tick's `send_gossip` would
    /// with nothing to send, so the node does not wake up at the next slot just to find that out.
    fn skip_unforwardable(&mut self, p: usize) {
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

    /// Whether the tick has gossip for neighbour `p`: a retransmission, or durable entries not
    /// yet sent or scanned.
    fn gossip_pending(&self, p: usize) -> bool {
        let l = &self.links[p];
        l.retransmit || l.sent_upto.max(l.scanned) < self.durable
    }

    /// When changed link cursors must be written on their own (see [`CURSOR_RECORD_MS`]), if any
    /// changed since their last record.
    fn cursors_due(&mut self, now: Millis) -> Option<Millis> {
        let changed = self.cfg.persist
            && (0..self.links.len()).any(|p| self.link_cursors(p) != self.link_recorded[p]);
        if !changed {
            self.cursors_dirty_since = None;
            return None;
        }
        Some(*self.cursors_dirty_since.get_or_insert(now) + CURSOR_RECORD_MS)
    }

    /// The cursors of link `p` a record would hold: (peer log id or 0, acked, reset_at).
    fn link_cursors(&self, p: usize) -> (u64, usize, usize) {
        let l = &self.links[p];
        (l.peer_log.unwrap_or(0), l.acked, l.reset_at)
    }

    /// Appends a cursor record for every link whose persisted cursors changed. Called only when
    /// other records are written anyway: cursors are an optimisation (a restarted node resumes each
    /// link where it was instead of replaying the log), and any older recorded state is safe (a
    /// lower `acked` resends more; an older peer log id or `reset_at` rewinds again on contact).
    fn record_links(&mut self, out: &mut Vec<Vec<u8>>) {
        for p in 0..self.links.len() {
            let cur = self.link_cursors(p);
            if cur != self.link_recorded[p] {
                self.link_recorded[p] = cur;
                out.push(record::encode(&record::Record::Link {
                    peer: p as u32,
                    peer_log: cur.0,
                    acked: cur.1 as u64,
                    reset_at: cur.2 as u64,
                }));
            }
        }
    }

    /// Rebuilds the log, its id and the link cursors from the records of earlier incarnations
    /// (see "Recovery" in the module docs), and queues the start record of a fresh log.
    fn recover(&mut self, records: &[Vec<u8>], cluster: u64) {
        let me = self.nodes[self.me].clone();
        let n = self.nodes.len();
        let start = |log_id| record::encode(&record::Record::Start { log_id, cluster });
        let (seg, used_ids) = record::recover(records, cluster, n, self.me);
        // A new log must not reuse an id a previous incarnation wrote (a simulator may boot two
        // incarnations with the same clock readings).
        while used_ids.contains(&self.log_id) {
            self.log_id = self.rng.random::<u64>() | 1;
        }
        let Some(seg) = seg else {
            if !records.is_empty() {
                tracing::warn!(node = %me, records = records.len(), "no usable log among the recovered records; starting a fresh log");
            }
            if self.cfg.persist {
                self.queue.push(start(self.log_id));
            }
            return;
        };
        for (origin, v) in seg.entries {
            self.seen.insert(key(&v), self.log.len());
            self.log.push(v);
            self.origin.push(origin);
        }
        let len = self.log.len();
        // Everything recovered is on disk: durable, and already recorded if the log continues.
        self.durable = len;
        let recovered_topology = seg.topology.is_some();
        if let (Some(peers), Overlay::Given) = (seg.topology, self.cfg.overlay) {
            self.peers = peers;
        }
        if seg.complete {
            self.log_id = seg.log_id;
            self.recorded_upto = len;
            for (p, (peer_log, acked, reset_at)) in seg.links {
                let acked = (acked.min(len as u64)) as usize;
                let reset_at = (reset_at.min(len as u64)) as usize;
                let link = &mut self.links[p];
                link.peer_log = (peer_log != 0).then_some(peer_log);
                link.acked = acked;
                link.sent_upto = acked;
                link.reset_at = reset_at;
                self.link_recorded[p] = (peer_log, acked, reset_at);
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

/// The records the broadcast node persists, in a compact binary form (all integers little-endian):
///
/// | tag | record | fields |
/// |---|---|---|
/// | 1 | start of a log | log id u64, cluster id u64 |
/// | 2 | log entries | first position u64, count u32, then per entry: origin u32, length u32, JSON text |
/// | 3 | link cursors | peer index u32, peer log id u64 (0 = unknown), acked u64, reset_at u64 |
/// | 4 | neighbour list (overlay `given`) | count u32, then each peer index u32 |
///
/// Decoding is total: any byte string yields a record or an error, never a panic.
mod record {
    use super::{key, Value, FROM_CLIENT};
    use std::collections::{HashMap, HashSet};

    /// Target size of one entries record, so a large backlog is written as several modest records.
    pub const ENTRIES_BYTES: usize = 256 * 1024;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Record {
        Start {
            log_id: u64,
            cluster: u64,
        },
        Entries {
            at: u64,
            entries: Vec<(u32, Value)>,
        },
        Link {
            peer: u32,
            peer_log: u64,
            acked: u64,
            reset_at: u64,
        },
        Topology {
            peers: Vec<u32>,
        },
    }

    const START: u8 = 1;
    const ENTRIES: u8 = 2;
    const LINK: u8 = 3;
    const TOPOLOGY: u8 = 4;

    /// Identifies the node list a log was written for (FNV-1a: stable across builds, unlike std's
    /// hasher).
    pub fn cluster_id(nodes: &[String]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for n in nodes {
            for b in n.bytes().chain([0xff]) {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }

    pub fn encode(r: &Record) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        match r {
            Record::Start { log_id, cluster } => {
                out.push(START);
                out.extend_from_slice(&log_id.to_le_bytes());
                out.extend_from_slice(&cluster.to_le_bytes());
            }
            Record::Entries { at, entries } => {
                let log: Vec<Value> = entries.iter().map(|(_, v)| v.clone()).collect();
                let origin: Vec<u32> = entries.iter().map(|(o, _)| *o).collect();
                let (mut rec, _) = encode_entries(0, &log, &origin, usize::MAX);
                rec[1..9].copy_from_slice(&at.to_le_bytes());
                return rec;
            }
            Record::Link {
                peer,
                peer_log,
                acked,
                reset_at,
            } => {
                out.push(LINK);
                out.extend_from_slice(&peer.to_le_bytes());
                out.extend_from_slice(&peer_log.to_le_bytes());
                out.extend_from_slice(&acked.to_le_bytes());
                out.extend_from_slice(&reset_at.to_le_bytes());
            }
            Record::Topology { peers } => {
                out.push(TOPOLOGY);
                out.extend_from_slice(&(peers.len() as u32).to_le_bytes());
                for p in peers {
                    out.extend_from_slice(&p.to_le_bytes());
                }
            }
        }
        out
    }

    /// Encodes entries `from..` of the log into one record of about `max_bytes` (at least one
    /// entry); returns it and the log position it ends at.
    pub fn encode_entries(
        from: usize,
        log: &[Value],
        origin: &[u32],
        max_bytes: usize,
    ) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(64);
        out.push(ENTRIES);
        out.extend_from_slice(&(from as u64).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let mut upto = from;
        let end = log.len().min(origin.len());
        while upto < end && (upto == from || out.len() < max_bytes) {
            out.extend_from_slice(&origin[upto].to_le_bytes());
            let len_at = out.len();
            out.extend_from_slice(&0u32.to_le_bytes());
            // Writing a `Value` into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, &log[upto]);
            let len = (out.len() - len_at - 4) as u32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            upto += 1;
        }
        let count = ((upto - from) as u32).to_le_bytes();
        out[9..13].copy_from_slice(&count);
        (out, upto)
    }

    struct Dec<'a>(&'a [u8]);

    impl<'a> Dec<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            if self.0.len() < n {
                return Err(format!(
                    "truncated: {n} bytes wanted, {} left",
                    self.0.len()
                ));
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }
        fn u32(&mut self) -> Result<u32, String> {
            let b = self.take(4)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        fn u64(&mut self) -> Result<u64, String> {
            let b = self.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(u64::from_le_bytes(a))
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        let Some((&tag, rest)) = bytes.split_first() else {
            return Err("empty record".into());
        };
        let mut d = Dec(rest);
        let r = match tag {
            START => Record::Start {
                log_id: d.u64()?,
                cluster: d.u64()?,
            },
            ENTRIES => {
                let at = d.u64()?;
                let count = d.u32()? as usize;
                // Each entry takes at least 9 bytes: never trust `count` for an allocation.
                let mut entries = Vec::with_capacity(count.min(d.0.len() / 9));
                for _ in 0..count {
                    let origin = d.u32()?;
                    let len = d.u32()? as usize;
                    let v: Value = serde_json::from_slice(d.take(len)?)
                        .map_err(|e| format!("entry {}: bad JSON: {e}", entries.len()))?;
                    entries.push((origin, v));
                }
                Record::Entries { at, entries }
            }
            LINK => Record::Link {
                peer: d.u32()?,
                peer_log: d.u64()?,
                acked: d.u64()?,
                reset_at: d.u64()?,
            },
            TOPOLOGY => {
                let count = d.u32()? as usize;
                let mut peers = Vec::with_capacity(count.min(d.0.len() / 4));
                for _ in 0..count {
                    peers.push(d.u32()?);
                }
                Record::Topology { peers }
            }
            t => return Err(format!("unknown record tag {t}")),
        };
        if !d.0.is_empty() {
            return Err(format!("{} trailing bytes", d.0.len()));
        }
        Ok(r)
    }

    /// The log rebuilt from records.
    #[derive(Debug, Default)]
    pub struct Segment {
        pub log_id: u64,
        /// (origin, value) in log order; origins are valid peer indices or `FROM_CLIENT`.
        pub entries: Vec<(u32, Value)>,
        /// Latest cursors per peer index: (peer log id, acked, reset_at).
        pub links: HashMap<usize, (u64, u64, u64)>,
        /// The latest neighbour list, as valid peer indices.
        pub topology: Option<Vec<usize>>,
        /// False if an undecodable or inconsistent record ended it early.
        pub complete: bool,
    }

    /// Replays `records`: each start record for this `cluster` begins a new segment (a fresh copy
    /// supersedes what came before); within a segment, the first record that does not decode or
    /// does not fit ends it. Returns the last segment, or `None` if there is none, and every log id
    /// found in a start record.
    pub fn recover(
        records: &[Vec<u8>],
        cluster: u64,
        n: usize,
        me: usize,
    ) -> (Option<Segment>, HashSet<u64>) {
        let mut seg: Option<Segment> = None;
        let mut ids = HashSet::new();
        let mut seen = HashSet::new();
        // Records are being skipped until the next start record.
        let mut skipping = false;
        for (i, raw) in records.iter().enumerate() {
            let r = decode(raw);
            if let Ok(Record::Start { log_id, cluster: c }) = r {
                ids.insert(log_id | 1);
                if c == cluster {
                    seg = Some(Segment {
                        log_id: log_id | 1,
                        complete: true,
                        ..Segment::default()
                    });
                    seen.clear();
                    skipping = false;
                } else {
                    tracing::warn!(record = i, "a log written for another node list; ignored");
                    seg = None;
                    skipping = true;
                }
                continue;
            }
            if skipping {
                continue;
            }
            let Some(s) = seg.as_mut() else {
                tracing::warn!(record = i, "records before any start record; ignored");
                skipping = true;
                continue;
            };
            let applied = r.and_then(|r| match r {
                Record::Entries { at, entries } => {
                    if at != s.entries.len() as u64 {
                        return Err(format!(
                            "entries at position {at}, but the log has {}",
                            s.entries.len()
                        ));
                    }
                    for (o, v) in entries {
                        if o != FROM_CLIENT && (o as usize >= n || o as usize == me) {
                            return Err(format!("bad origin {o}"));
                        }
                        if !seen.insert(key(&v)) {
                            return Err(format!("duplicate value {v}"));
                        }
                        s.entries.push((o, v));
                    }
                    Ok(())
                }
                Record::Link {
                    peer,
                    peer_log,
                    acked,
                    reset_at,
                } => {
                    let p = peer as usize;
                    if p >= n || p == me {
                        return Err(format!("bad peer {peer}"));
                    }
                    s.links.insert(p, (peer_log, acked, reset_at));
                    Ok(())
                }
                Record::Topology { peers } => {
                    let peers: Vec<usize> = peers.into_iter().map(|p| p as usize).collect();
                    if let Some(p) = peers.iter().find(|&&p| p >= n || p == me) {
                        return Err(format!("bad neighbour {p}"));
                    }
                    s.topology = Some(peers);
                    Ok(())
                }
                Record::Start { .. } => Ok(()),
            });
            if let Err(e) = applied {
                tracing::warn!(
                    record = i,
                    kept_values = s.entries.len(),
                    "recovery stops at an unusable record: {e}"
                );
                s.complete = false;
                skipping = true;
            }
        }
        (seg, ids)
    }
}

#[cfg(test)]
mod tests;

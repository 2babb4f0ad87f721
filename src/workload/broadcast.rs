//! `broadcast`: `topology`, `broadcast` and `read` (spec §5), and the gossip that spreads values.
//!
//! # Model
//! Every node keeps an append-only **log** of the values it holds, in arrival order, with a hash
//! index for set semantics (a duplicate is dropped). Positions in a node's log never change, so a
//! position is a compact way to say "everything up to here".
//!
//! For each peer a [`Link`] records two cursors into the *local* log: `acked` (the peer confirmed
//! it holds everything before it, or needs none of it) and `sent_upto` (sent at least once), and
//! one cursor into the *peer's* log: `recv_upto` (the contiguous prefix of the peer's log we hold).
//! The sync task sends each peer only the **delta** `log[sent_upto..]` (filtered by the overlay: a
//! value is never sent back to the peer it came from), and resends from `acked` when a gossip call
//! times out, so a value is retried until the peer confirms it: nothing acknowledged is lost to a
//! partition. Acknowledgements are cumulative (`recv_upto`), ride on gossip already going the other
//! way, and otherwise leave as a `gossip_ok` after `ack_delay_ms`. Nothing is sent when nothing is
//! pending.
//!
//! Each log has a random **log id**. Messages carry the sender's log id and the receiver's as the
//! sender knows it, so cursors are only trusted between the same two logs: a peer that restarted
//! with an empty log gets a new id, and its neighbours rewind their cursors for it.
//!
//! # Who talks to whom
//! [`Overlay`] chooses the neighbours: Maelstrom's topology, a star around one hub, a tree, or
//! everyone (origin-push, no relaying). See [`BroadcastConfig`] for the knobs and their defaults.

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

/// Broadcast payloads. The first six are Maelstrom's; `gossip` and `gossip_ok` are ours.
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
    ReadOk {
        messages: Vec<Value>,
    },
    /// Values `log[from..upto]` of the sender's log `log` (filtered for the receiver), plus the
    /// sender's cursors: `base` (what it believes the receiver has of its log) and `ack` (what it
    /// holds of the receiver's log), both valid only if `to_log` is the receiver's log id.
    Gossip {
        log: u64,
        to_log: u64,
        base: u64,
        from: u64,
        upto: u64,
        values: Vec<Value>,
        ack: u64,
    },
    /// A stand-alone cumulative acknowledgement, sent when no gossip goes back soon enough.
    GossipOk {
        log: u64,
        to_log: u64,
        ack: u64,
    },
    Error(ErrorBody),
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
/// | `overlay` | `star` | who gossips with whom ([`Overlay`]: given, star, total, tree<k>) |
/// | `sync_ms` | 100 | sync task period: how often pending deltas leave |
/// | `fanout` | 0 | peers served per tick, chosen at random among those with something pending (0 = all) |
/// | `eager` | `leaves` | when a client's value leaves its origin ([`Eager`]) |
/// | `ack_delay_ms` | 250 | how long an acknowledgement may wait to ride on gossip going back |
/// | `rto_ms` | 1000 | a gossip unacknowledged this long is resent (from the acked cursor) |
/// | `max_batch` | 5000 | most values in one gossip message |
/// | `seed` | 0 | mixed with the node id to seed the fan-out choice |
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastConfig {
    pub overlay: Overlay,
    pub sync_ms: Millis,
    pub fanout: usize,
    pub eager: Eager,
    pub ack_delay_ms: Millis,
    pub rto_ms: Millis,
    pub max_batch: usize,
    pub seed: u64,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        BroadcastConfig {
            overlay: Overlay::Star,
            sync_ms: 100,
            fanout: 0,
            eager: Eager::Leaves,
            ack_delay_ms: 250,
            rto_ms: 1000,
            max_batch: 5000,
            seed: 0,
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
        match name.replace('-', "_").to_ascii_lowercase().as_str() {
            "overlay" => self.overlay = value.parse()?,
            "sync_ms" => self.sync_ms = num(name, value)?,
            "fanout" => self.fanout = num(name, value)?,
            "eager" => self.eager = value.parse()?,
            "ack_delay_ms" => self.ack_delay_ms = num(name, value)?,
            "rto_ms" => self.rto_ms = num(name, value)?,
            "max_batch" => self.max_batch = num::<usize>(name, value)?.max(1),
            "seed" => self.seed = num(name, value)?,
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
                if matches!(name, "DATA_DIR" | "LOG") {
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
    /// A gossip call timed out with values unacknowledged: resend from `acked`.
    retransmit: bool,
    /// Contiguous prefix of the peer's log held here.
    recv_upto: u64,
    /// `recv_upto` values waiting for the local log to be durable up to the given length.
    unconfirmed: VecDeque<(usize, u64)>,
    /// The part of `recv_upto` that is durable here: what acknowledgements report.
    confirmed: u64,
    /// An acknowledgement is owed, due at this time.
    ack_due: Option<Millis>,
    /// Local log length when the peer was last seen to lose its state: entries before it that
    /// came from the peer must be sent back, since the peer no longer has them.
    reset_at: usize,
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
    /// Client `broadcast_ok`s waiting for their value to be durable: (log length needed, client, msg_id).
    waiting: VecDeque<(usize, String, Option<u64>)>,
    /// Gossip calls in flight: (peer, local log cursor the call covers).
    calls: Calls<(usize, usize)>,
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
        // A fresh log id per incarnation (in-memory log); `now` and the boot clock keep two
        // incarnations apart even with the same seed.
        let log_id = seed_rng.random::<u64>() ^ info.boot_unix_micros ^ now.rotate_left(32) | 1;
        Broadcast {
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
            waiting: VecDeque::new(),
            calls: Calls::default(),
            rng: seed_rng,
        }
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
                }
                ctx.reply(&src, msg_id, Msg::TopologyOk);
            }
            Msg::Broadcast { message } => {
                let pos = self.insert(message, FROM_CLIENT);
                self.waiting.push_back((pos + 1, src, msg_id));
                self.advance_durable(self.log.len(), now, ctx);
            }
            Msg::Read => {
                ctx.reply(
                    &src,
                    msg_id,
                    Msg::ReadOk {
                        messages: self.log[..self.durable].to_vec(),
                    },
                );
            }
            Msg::Gossip {
                log,
                to_log,
                base,
                from,
                upto,
                values,
                ack,
            } => {
                let Some(p) = self.peer_index(&src) else {
                    return;
                };
                self.check_peer_log(p, log);
                for v in values {
                    self.insert(v, p as u32);
                }
                let trusted = to_log == self.log_id;
                let link = &mut self.links[p];
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
                let due = if self.cfg.ack_delay_ms == 0 || !self.peers.contains(&p) {
                    now
                } else {
                    now + self.cfg.ack_delay_ms
                };
                let link = &mut self.links[p];
                link.ack_due = Some(link.ack_due.map_or(due, |d| d.min(due)));
                if trusted {
                    self.on_ack(p, ack);
                }
                self.advance_durable(self.log.len(), now, ctx);
                self.send_due_acks(now, ctx);
            }
            Msg::GossipOk { log, to_log, ack } => {
                let Some(p) = self.peer_index(&src) else {
                    return;
                };
                if let Some(id) = msg.body.in_reply_to {
                    self.calls.resolve(id);
                }
                self.check_peer_log(p, log);
                if to_log == self.log_id {
                    self.on_ack(p, ack);
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
        for (_, (p, upto)) in self.calls.expire(now) {
            let link = &mut self.links[p];
            if link.acked < upto {
                link.retransmit = true;
            }
        }
        self.send_due_acks(now, ctx);
        let durable = self.durable;
        let mut candidates: Vec<usize> = self
            .peers
            .iter()
            .copied()
            .filter(|&p| {
                let l = &self.links[p];
                l.retransmit || l.sent_upto < durable
            })
            .collect();
        if self.cfg.fanout > 0 && candidates.len() > self.cfg.fanout {
            candidates.partial_shuffle(&mut self.rng, self.cfg.fanout);
            candidates.truncate(self.cfg.fanout);
        }
        for p in candidates {
            self.send_gossip(p, now, ctx);
        }
    }

    fn tick_interval(cfg: &BroadcastConfig) -> Option<Millis> {
        Some(cfg.sync_ms.max(1))
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

    fn on_ack(&mut self, p: usize, ack: u64) {
        let ack = (ack as usize).min(self.durable);
        let link = &mut self.links[p];
        if ack > link.acked {
            link.acked = ack;
            link.sent_upto = link.sent_upto.max(ack);
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
        link.retransmit = false;
        if values.is_empty() {
            // Nothing in range is for this peer: skip it, and count it as held if nothing is in flight.
            if link.acked >= from {
                link.acked = upto;
            }
            link.sent_upto = link.sent_upto.max(upto);
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
        };
        link.sent_upto = link.sent_upto.max(upto);
        link.ack_due = None;
        let id = ctx.send(&self.nodes[p], msg);
        self.calls.register(id, now + self.cfg.rto_ms, (p, upto));
    }

    fn send_due_acks(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        for p in 0..self.links.len() {
            let link = &mut self.links[p];
            if link.ack_due.is_some_and(|d| d <= now) {
                link.ack_due = None;
                let msg = Msg::GossipOk {
                    log: self.log_id,
                    to_log: link.peer_log.unwrap_or(0),
                    ack: link.confirmed,
                };
                ctx.notify(&self.nodes[p], msg);
            }
        }
    }

    /// The log is durable up to `upto`: confirm acknowledgements, release client replies, and push
    /// new client values at once where [`Eager`] says so.
    fn advance_durable(&mut self, upto: usize, now: Millis, ctx: &mut Ctx<Msg>) {
        let old = self.durable;
        self.durable = self.durable.max(upto);
        let durable = self.durable;
        // Cursors into peers' logs become reportable once what they cover is durable here (also
        // when a gossip brought only duplicates and the log did not grow).
        for link in &mut self.links {
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
            if self.waiting[i].0 <= durable {
                let (_, client, msg_id) = self.waiting.remove(i).expect("in range");
                ctx.reply(&client, msg_id, Msg::BroadcastOk);
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;

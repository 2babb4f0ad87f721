//! `txn-rw-register`: `{"type":"txn","txn":[[f,k,v],...]}` → `{"type":"txn_ok","txn":[...]}`
//! with `["r",k,null]` answered as `["r",k,value]` and `["w",k,v]` echoed
//! ([workloads](https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md#workload-txn-rw-register);
//! Gossip Glomers challenges 6a–6c). Totally available, read-committed.
//!
//! **Design.** Every node holds a full replica: per key, the last value and the stamp of the
//! transaction that wrote it. A transaction runs at once against the local replica, in one
//! handler call (so nothing else interleaves with it): reads see the replica or the
//! transaction's own earlier writes, and at the end its *last* write to each key is applied
//! with the transaction's stamp and answered. No other node is consulted, so every
//! transaction that reaches a node succeeds, whatever the network does. Its final writes are
//! then sent, as one update, to every peer (`replicate`, retried every [`RETRY_MS`] until the
//! peer answers `replicate_ok`; see "Two designs" for how), which applies the whole update in one
//! handler call. A key keeps the write with the highest stamp (last writer wins), so replicas
//! agree once every update has arrived, in any order, any number of times.
//!
//! **Stamps** are Lamport clocks, `(counter, node index)`: a node's counter moves past every
//! stamp it applies, and each transaction takes the next one. So a transaction's stamp is
//! higher than the stamp of every version it could have read.
//!
//! **Why read-committed holds** (Adya's PL-2: no G0, G1a, G1b, G1c):
//! - G1a (aborted read): nothing aborts.
//! - G1b (intermediate read): only a transaction's last write to a key leaves it.
//! - G0 and G1c (cycles of write-write and write-read dependencies): if T2 read T1's write, or
//!   overwrote a version it had read from T1, T2's node had applied T1's write when T2 ran, so
//!   T2's stamp is higher than T1's. Every such edge goes up in stamp order: no cycle.
//!
//! **Why not more, while totally available.** Total availability means a node answers every
//! transaction from what it alone knows, even when cut off from every other node. Take two
//! nodes on either side of a partition: T1 on n1 reads `x` and writes `y`, T2 on n2 reads `y` and
//! writes `x`. Each must commit without hearing of the other, so each reads the initial value:
//! a write skew (G2, an anti-dependency cycle), which serializability forbids; the same split
//! lets both commit a read-modify-write of one key (a lost update), which snapshot isolation and
//! repeatable read forbid. Bailis et al., "Highly Available Transactions: Virtues and
//! Limitations" (VLDB 2014), prove this in general: read-committed (and read-uncommitted,
//! monotonic atomic view) can be totally available, snapshot isolation, repeatable read and
//! serializability cannot. Recency cannot hold either (a cut-off node serves stale reads), so
//! strict-serializable is twice out of reach.
//!
//! **Two designs** (knob `design`, [`TxnConfig`]), differing only in how updates travel:
//!
//! - **`batched`** (the default): per peer, one `replicate` in flight, carrying every update the
//!   peer has not acknowledged (at most [`MAX_BATCH`]); the peer answers with the highest
//!   sequence number in it, which acknowledges the whole prefix. Updates committed while a batch
//!   is in flight ride in the next one, so a busy node sends about one message per peer per
//!   round trip however many transactions it serves, and a peer coming back from a partition
//!   gets its backlog in a few large messages. The price: a transaction's writes wait for the
//!   batch in flight to be answered, so they reach peers up to a round trip later.
//! - **`per-txn`**: the straightforward Gossip Glomers 6b/6c answer. Every update goes to every
//!   peer as a message of its own, at once, each retried on its own timer until that message is
//!   acknowledged. Writes reach peers as early as possible, at two messages (update and
//!   acknowledgement) per peer per writing transaction; after a partition every update of the
//!   backlog is resent individually every [`RETRY_MS`] until it gets through.
//!
//! The receiving side is the same (a peer acknowledges the highest sequence number of what it
//! got), so the designs interoperate. `results/BENCHMARKS.md` ("txn-rw-register") measures both
//! on challenges 6a–6c.
//!
//! **Durability** (knob `persist`, default on). The node emits a record for each of its own
//! transactions that writes (its sequence number, stamp and final writes), and one for the
//! writes of peers' updates that changed its replica (each with its stamp); the driver makes them
//! durable in order. The rule, as in the broadcast node: nothing that depends on a record leaves
//! the node before the record is durable.
//! - `txn_ok` waits until every record emitted so far is durable, its own included: a
//!   transaction is answered only when its writes, and every write it could have read, would
//!   survive a kill. (A read-only transaction emits nothing but waits the same way.)
//! - An update goes to peers only once its record is durable, so a stamp or sequence number
//!   that a kill erased was never seen outside the node and may be issued again.
//! - `replicate_ok` waits until every record emitted so far is durable, the one for the
//!   update's writes included: a peer stops resending only what this node will still hold after
//!   a kill.
//!
//! Peers' acknowledgements are recorded too (`acked` cursors, riding along with a write that
//! happens anyway, never causing one), so a restarted node resends each peer only what it had not
//! acknowledged; an acknowledgement a kill erased costs a resend, never a loss (updates are
//! idempotent). On restart [`Workload::init`] replays the records: the replica and the Lamport
//! clock (past every recovered stamp), the sequence counter (past every recovered update and
//! cursor), and each peer's backlog (the recovered own updates past its cursor). A record that
//! does not decode is skipped with a warning: every record is self-contained (a write with its
//! stamp, an update, a cursor), so the others still mean what they meant.
//!
//! **Compaction.** The log grows with every transaction; the state is the replica, the updates
//! some peer still lacks, the cursors and the sequence counter. [`Workload::snapshot`] writes
//! exactly that (see [`crate::host::Host::take_compaction`] for when), and recovery is the same
//! code over it.

mod config;

pub use config::{Design, TxnConfig};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::wire::{ErrorBody, ErrorCode};

/// How long a node waits for `replicate_ok` before sending a peer its pending updates again, in
/// ms. Long enough not to resend under Maelstrom's default latencies, short enough that a healed
/// partition is caught up within a fraction of a second.
pub const RETRY_MS: Millis = 250;
/// At most this many updates go in one `replicate` message (batched design), so that a peer
/// coming back from a long partition gets its backlog in bounded messages.
pub const MAX_BATCH: usize = 512;
/// A snapshot writes the replica in records of at most this many versions, so that no record is
/// huge.
const SNAPSHOT_VERSIONS: usize = 4096;

/// A micro-op: `[f, key, value]`.
pub type MicroOp = (String, Value, Value);

/// A transaction's stamp: (Lamport counter, index of the node that ran it).
pub type Stamp = (u64, u64);

/// One committed transaction's final writes, as sent to peers (and recorded by its node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The origin's sequence number for this update (1, 2, ...).
    pub seq: u64,
    pub stamp: Stamp,
    /// `[key, value]` pairs, one per key.
    pub writes: Vec<(Value, Value)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    Txn {
        txn: Vec<MicroOp>,
    },
    TxnOk {
        txn: Vec<MicroOp>,
    },
    /// Some of the sender's updates, in sequence order.
    Replicate {
        updates: Vec<Update>,
    },
    /// The `replicate` whose highest sequence number is `upto` has been applied (and is durable).
    /// The batched design sends prefixes of its backlog, so for it this acknowledges every update
    /// up to `upto`; the per-txn design sends one update per message, so for it, that one.
    ReplicateOk {
        upto: u64,
    },
    Error(ErrorBody),
}

impl From<ErrorBody> for Msg {
    fn from(e: ErrorBody) -> Self {
        Msg::Error(e)
    }
}

/// [`Record::Own`] by reference: the same JSON, without cloning the update.
#[derive(Serialize)]
struct OwnRef<'a> {
    own: &'a Update,
}

/// One durable change (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    /// One of this node's own transactions.
    Own(Update),
    /// Writes that changed the replica, each `[key, stamp, value]`: from peers' updates, or (in a
    /// snapshot) the whole replica.
    Applied { writes: Vec<(Value, Stamp, Value)> },
    /// `peer` has every update of this node's numbered up to `upto`.
    Acked { peer: String, upto: u64 },
    /// This node's updates are numbered up to `upto` (a snapshot's, whose own updates may all
    /// have been acknowledged and left out).
    Seq { upto: u64 },
}

/// What one peer has not acknowledged yet.
#[derive(Debug)]
struct Peer {
    id: String,
    /// Durable updates the peer has not acknowledged, in sequence order.
    pending: VecDeque<Arc<Update>>,
    /// Batched: when the pending updates may be sent (again): now, or once a batch in flight is
    /// overdue.
    next_send: Millis,
    /// Per-txn: the pending updates never sent to this peer, by sequence number (due now).
    fresh: VecDeque<u64>,
    /// Per-txn: (when due, sequence number) of each sent update's resend, in due order (each is
    /// pushed at the current time plus [`RETRY_MS`], so pushing at the back keeps the order).
    /// Entries of updates acknowledged meanwhile are dropped when they reach the front.
    timers: VecDeque<(Millis, u64)>,
    /// The `acked` cursor last recorded for this peer.
    recorded: u64,
}

impl Peer {
    fn new(id: String) -> Self {
        Peer {
            id,
            pending: VecDeque::new(),
            next_send: 0,
            fresh: VecDeque::new(),
            timers: VecDeque::new(),
            recorded: 0,
        }
    }

    fn position(&self, seq: u64) -> Option<usize> {
        self.pending.binary_search_by_key(&seq, |u| u.seq).ok()
    }
}

/// One key's current version.
#[derive(Debug, Clone)]
struct Version {
    key: Value,
    stamp: Stamp,
    value: Value,
}

/// A reply held until the records emitted before it are durable.
#[derive(Debug)]
struct Held {
    /// How many records (of this incarnation) must be durable.
    after: u64,
    dest: String,
    in_reply_to: Option<u64>,
    reply: Msg,
}

/// The node: its replica, its clock, its peers' backlogs, and what waits for durability.
#[derive(Debug)]
pub struct TxnRwRegister {
    index: u64,
    design: Design,
    persist: bool,
    clock: u64,
    /// The highest sequence number this node has given an update.
    next_seq: u64,
    /// The highest sequence number handed to the peers' backlogs (durable updates): with an empty
    /// backlog, a peer has everything up to here.
    shared_upto: u64,
    /// Keyed by the key's JSON text, so that keys compare as Maelstrom compares them (`1` and
    /// `1.0` differ).
    replica: HashMap<String, Version>,
    peers: Vec<Peer>,
    /// Records emitted and not yet taken by the driver, and how many were emitted in all.
    records: Vec<Vec<u8>>,
    emitted: u64,
    /// How many records the driver reported durable.
    durable: u64,
    /// Own updates waiting for their record (the record count that must be durable).
    unsent: VecDeque<(u64, Arc<Update>)>,
    held: VecDeque<Held>,
    /// Bytes of JSON text of the replica's keys and values, and of the own updates' records, for
    /// [`Workload::live_bytes`].
    replica_bytes: u64,
    own_bytes: u64,
    own_count: u64,
}

/// Why a transaction was refused.
#[derive(Debug, PartialEq)]
pub struct Malformed(String);

/// The length of `v` as JSON text, without building the text.
fn json_len(v: &impl Serialize) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Bytes a version takes in a snapshot's `applied` record beyond its key's and value's text:
/// the brackets, commas and a stamp of typical width.
const VERSION_OVERHEAD: u64 = 16;

impl TxnRwRegister {
    /// Applies `value` to `key` if `stamp` is newer than what the replica holds; returns whether
    /// it did.
    fn apply(&mut self, text: String, key: &Value, stamp: Stamp, value: &Value) -> bool {
        self.clock = self.clock.max(stamp.0);
        match self.replica.get_mut(&text) {
            Some(v) if v.stamp >= stamp => false,
            Some(v) => {
                let (old, new) = (json_len(&v.value), json_len(value));
                self.replica_bytes = self.replica_bytes.saturating_sub(old) + new;
                v.stamp = stamp;
                v.value = value.clone();
                true
            }
            None => {
                self.replica_bytes += text.len() as u64 + json_len(value) + VERSION_OVERHEAD;
                self.replica.insert(
                    text,
                    Version {
                        key: key.clone(),
                        stamp,
                        value: value.clone(),
                    },
                );
                true
            }
        }
    }

    /// Emits a record (persisting only); returns whether it was emitted.
    fn emit(&mut self, record: &impl Serialize) -> bool {
        if !self.persist {
            return false;
        }
        match serde_json::to_vec(record) {
            Ok(bytes) => {
                self.records.push(bytes);
                self.emitted += 1;
                true
            }
            Err(e) => {
                // Cannot happen for these types (JSON values, strings, integers).
                tracing::error!(%e, "cannot encode a record");
                false
            }
        }
    }

    /// Counts an own update's record for [`Workload::live_bytes`].
    fn count_own(&mut self, record_len: usize) {
        self.own_bytes += store_frame(record_len);
        self.own_count += 1;
    }

    /// Hands a durable update to every peer's backlog.
    fn share(&mut self, update: Arc<Update>) {
        self.shared_upto = self.shared_upto.max(update.seq);
        for p in &mut self.peers {
            if p.pending.back().is_some_and(|u| u.seq >= update.seq) {
                continue; // never out of order (cannot happen: updates become durable in order)
            }
            if self.design == Design::PerTxn {
                p.fresh.push_back(update.seq);
            }
            p.pending.push_back(Arc::clone(&update));
        }
    }

    /// Sends `reply` once every record emitted so far is durable (at once if they are).
    fn reply_when_durable(
        &mut self,
        dest: &str,
        in_reply_to: Option<u64>,
        reply: Msg,
        ctx: &mut Ctx<Msg>,
    ) {
        if self.emitted <= self.durable {
            ctx.reply(dest, in_reply_to, reply);
        } else {
            self.held.push_back(Held {
                after: self.emitted,
                dest: dest.to_string(),
                in_reply_to,
                reply,
            });
        }
    }

    /// Runs a transaction against the replica: its reads filled in, its last writes applied and
    /// recorded (or, without persistence, queued for every peer at once). Refused, with nothing
    /// applied, if a micro-op is not `r` or `w`. The caller answers it (after durability).
    pub fn run(&mut self, txn: Vec<MicroOp>) -> Result<Vec<MicroOp>, Malformed> {
        if let Some((f, _, _)) = txn.iter().find(|(f, _, _)| f != "r" && f != "w") {
            return Err(Malformed(format!(
                "unknown micro-op {f:?}: expected \"r\" or \"w\""
            )));
        }
        self.clock = self.clock.saturating_add(1);
        let stamp = (self.clock, self.index);
        // The transaction's own writes, in first-write order: (key text, key, value), indexed
        // by key text (so a long transaction costs linear time).
        let mut own: Vec<(String, Value, Value)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::with_capacity(txn.len());
        for (f, k, v) in txn {
            let text = k.to_string();
            let at = index.get(&text).copied();
            let mine = at.and_then(|i| own.get_mut(i));
            if f == "r" {
                let value = match mine {
                    Some((_, _, v)) => v.clone(),
                    None => self
                        .replica
                        .get(&text)
                        .map_or(Value::Null, |x| x.value.clone()),
                };
                out.push((f, k, value));
            } else {
                match mine {
                    Some((_, _, old)) => *old = v.clone(),
                    None => {
                        index.insert(text.clone(), own.len());
                        own.push((text, k.clone(), v.clone()));
                    }
                }
                out.push((f, k, v));
            }
        }
        if !own.is_empty() {
            let mut writes = Vec::with_capacity(own.len());
            for (text, k, v) in own {
                self.apply(text, &k, stamp, &v);
                writes.push((k, v));
            }
            self.next_seq = self.next_seq.saturating_add(1);
            let update = Update {
                seq: self.next_seq,
                stamp,
                writes,
            };
            if self.emit(&OwnRef { own: &update }) {
                let len = self.records.last().map_or(0, Vec::len);
                self.count_own(len);
                self.unsent.push_back((self.emitted, Arc::new(update)));
            } else {
                self.share(Arc::new(update));
            }
        }
        Ok(out)
    }

    /// Applies a peer's updates and records the writes that changed the replica; returns the
    /// highest sequence number among them.
    fn receive(&mut self, updates: Vec<Update>) -> u64 {
        let mut upto = 0;
        let mut changed = Vec::new();
        for u in updates {
            upto = upto.max(u.seq);
            for (k, v) in u.writes {
                if self.apply(k.to_string(), &k, u.stamp, &v) && self.persist {
                    changed.push((k, u.stamp, v));
                }
            }
        }
        if !changed.is_empty() {
            self.emit(&Record::Applied { writes: changed });
        }
        upto
    }

    /// The highest sequence number `p` is known to have every update up to.
    fn cursor(&self, p: &Peer) -> u64 {
        p.pending
            .front()
            .map_or(self.shared_upto, |u| u.seq.saturating_sub(1))
    }

    /// Replays one recovered record; own updates are collected in `own`, cursors in `acked`.
    fn replay(
        &mut self,
        bytes: &[u8],
        own: &mut BTreeMap<u64, Arc<Update>>,
        acked: &mut HashMap<String, u64>,
    ) {
        match serde_json::from_slice::<Record>(bytes) {
            Ok(Record::Own(u)) => {
                self.count_own(bytes.len());
                for (k, v) in &u.writes {
                    self.apply(k.to_string(), k, u.stamp, v);
                }
                self.next_seq = self.next_seq.max(u.seq);
                own.insert(u.seq, Arc::new(u));
            }
            Ok(Record::Applied { writes }) => {
                for (k, stamp, v) in writes {
                    self.apply(k.to_string(), &k, stamp, &v);
                }
            }
            Ok(Record::Acked { peer, upto }) => {
                let a = acked.entry(peer).or_default();
                *a = (*a).max(upto);
            }
            Ok(Record::Seq { upto }) => self.next_seq = self.next_seq.max(upto),
            Err(e) => tracing::warn!(%e, "skipping a record that does not decode"),
        }
    }

    /// The value the replica holds for `key` (`null` if none), for tests and tools.
    pub fn value(&self, key: &Value) -> Value {
        self.replica
            .get(&key.to_string())
            .map_or(Value::Null, |v| v.value.clone())
    }

    /// How many of this node's updates `peer` has not acknowledged, for tests and tools.
    pub fn backlog(&self, peer: &str) -> usize {
        self.peers
            .iter()
            .find(|p| p.id == peer)
            .map_or(0, |p| p.pending.len())
    }
}

/// A record's size in the log (the store's frame header included).
fn store_frame(len: usize) -> u64 {
    crate::store::frame_len(len)
}

impl Workload for TxnRwRegister {
    type Msg = Msg;
    type Config = TxnConfig;

    fn init(info: &InitInfo, cfg: &TxnConfig, now: Millis) -> Self {
        let index = info
            .node_ids
            .iter()
            .position(|n| *n == info.node_id)
            .unwrap_or(info.node_ids.len()) as u64;
        let peers = info
            .node_ids
            .iter()
            .filter(|n| **n != info.node_id)
            .map(|id| Peer::new(id.clone()))
            .collect();
        let mut node = TxnRwRegister {
            index,
            design: cfg.design,
            persist: cfg.persist,
            clock: 0,
            next_seq: 0,
            shared_upto: 0,
            replica: HashMap::new(),
            peers,
            records: Vec::new(),
            emitted: 0,
            durable: 0,
            unsent: VecDeque::new(),
            held: VecDeque::new(),
            replica_bytes: 0,
            own_bytes: 0,
            own_count: 0,
        };
        let mut own = BTreeMap::new();
        let mut acked = HashMap::new();
        for r in &info.recovered {
            node.replay(r, &mut own, &mut acked);
        }
        // Numbering resumes past every recovered update and cursor.
        let top = acked.values().copied().max().unwrap_or(0);
        node.next_seq = node.next_seq.max(top);
        node.shared_upto = node.next_seq;
        for p in &mut node.peers {
            let from = acked.get(&p.id).copied().unwrap_or(0);
            p.recorded = from;
            p.next_send = now;
            for (&seq, u) in own.range(from.saturating_add(1)..) {
                p.pending.push_back(Arc::clone(u));
                if node.design == Design::PerTxn {
                    p.fresh.push_back(seq);
                }
            }
        }
        if !info.recovered.is_empty() {
            tracing::info!(
                keys = node.replica.len(),
                clock = node.clock,
                seq = node.next_seq,
                backlog = own.len(),
                "recovered"
            );
        }
        node
    }

    fn handle(&mut self, msg: Message<Msg>, now: Millis, ctx: &mut Ctx<Msg>) {
        let (src, msg_id) = (msg.src, msg.body.msg_id);
        match msg.body.payload {
            Msg::Txn { txn } => match self.run(txn) {
                Ok(txn) => self.reply_when_durable(&src, msg_id, Msg::TxnOk { txn }, ctx),
                Err(Malformed(why)) => {
                    ctx.reply_error(&src, msg_id, ErrorCode::MalformedRequest, why)
                }
            },
            Msg::Replicate { updates } => {
                let upto = self.receive(updates);
                self.reply_when_durable(&src, msg_id, Msg::ReplicateOk { upto }, ctx);
            }
            Msg::ReplicateOk { upto } => {
                let design = self.design;
                if let Some(p) = self.peers.iter_mut().find(|p| p.id == src) {
                    match design {
                        Design::Batched => {
                            while p.pending.front().is_some_and(|u| u.seq <= upto) {
                                p.pending.pop_front();
                            }
                            // The batch in flight is answered: the rest may go now.
                            p.next_send = now;
                        }
                        Design::PerTxn => {
                            if let Some(i) = p.position(upto) {
                                p.pending.remove(i);
                            }
                        }
                    }
                }
            }
            Msg::TxnOk { .. } | Msg::Error(_) => {
                tracing::debug!(%src, "ignoring a reply")
            }
        }
    }

    fn tick(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        for p in &mut self.peers {
            match self.design {
                Design::Batched => {
                    if p.pending.is_empty() || p.next_send > now {
                        continue;
                    }
                    let updates = p
                        .pending
                        .iter()
                        .take(MAX_BATCH)
                        .map(|u| (**u).clone())
                        .collect();
                    ctx.send(&p.id, Msg::Replicate { updates });
                    p.next_send = now.saturating_add(RETRY_MS);
                }
                Design::PerTxn => {
                    // Resends first: they are older.
                    let mut due = Vec::new();
                    while p.timers.front().is_some_and(|&(at, _)| at <= now) {
                        due.extend(p.timers.pop_front().map(|t| t.1));
                    }
                    due.extend(p.fresh.drain(..));
                    for seq in due {
                        let Some(i) = p.position(seq) else {
                            continue; // acknowledged meanwhile
                        };
                        let update = (*p.pending[i]).clone();
                        ctx.send(
                            &p.id,
                            Msg::Replicate {
                                updates: vec![update],
                            },
                        );
                        p.timers.push_back((now.saturating_add(RETRY_MS), seq));
                    }
                }
            }
        }
    }

    fn next_tick(&mut self, _now: Millis) -> Option<Millis> {
        match self.design {
            Design::Batched => self
                .peers
                .iter()
                .filter(|p| !p.pending.is_empty())
                .map(|p| p.next_send)
                .min(),
            Design::PerTxn => {
                for p in &mut self.peers {
                    while p
                        .timers
                        .front()
                        .is_some_and(|&(_, seq)| p.position(seq).is_none())
                    {
                        p.timers.pop_front();
                    }
                }
                self.peers
                    .iter()
                    .filter_map(|p| match p.fresh.is_empty() {
                        false => Some(0),
                        true => p.timers.front().map(|t| t.0),
                    })
                    .min()
            }
        }
    }

    fn persistent(cfg: &TxnConfig) -> bool {
        cfg.persist
    }

    /// The records emitted since the last call, and, riding along when there are any, the
    /// peers' `acked` cursors that changed since they were last recorded.
    fn take_records(&mut self) -> Vec<Vec<u8>> {
        let mut out = std::mem::take(&mut self.records);
        if out.is_empty() {
            return out;
        }
        let cursors: Vec<(usize, u64)> = self
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| (i, self.cursor(p)))
            .filter(|&(i, c)| c > self.peers[i].recorded)
            .collect();
        for (i, upto) in cursors {
            let peer = self.peers[i].id.clone();
            if let Ok(bytes) = serde_json::to_vec(&Record::Acked { peer, upto }) {
                out.push(bytes);
                self.emitted += 1;
                self.peers[i].recorded = upto;
            }
        }
        out
    }

    fn persisted(&mut self, count: u64, _now: Millis, ctx: &mut Ctx<Msg>) {
        self.durable = self.durable.max(count);
        while self
            .unsent
            .front()
            .is_some_and(|(after, _)| *after <= count)
        {
            if let Some((_, update)) = self.unsent.pop_front() {
                self.share(update);
            }
        }
        while self.held.front().is_some_and(|h| h.after <= count) {
            if let Some(h) = self.held.pop_front() {
                ctx.reply(&h.dest, h.in_reply_to, h.reply);
            }
        }
    }

    /// The replica's keys and values, plus the updates some peer lacks at their records' mean
    /// size, plus a cursor per peer: an estimate of [`Workload::snapshot`]'s size.
    fn live_bytes(&self) -> Option<u64> {
        if !self.persist {
            return None;
        }
        let backlog = self
            .peers
            .iter()
            .map(|p| p.pending.len())
            .max()
            .unwrap_or(0) as u64;
        let mean_own = self.own_bytes.checked_div(self.own_count).unwrap_or(64);
        let versions = self.replica.len() as u64;
        let applied_records = versions.div_ceil(SNAPSHOT_VERSIONS as u64);
        Some(
            self.replica_bytes
                + store_frame(16) * applied_records
                + backlog * mean_own
                + store_frame(48) * (self.peers.len() as u64 + 1),
        )
    }

    /// The replica as `applied` records, every update some peer has not acknowledged, each
    /// peer's cursor and the sequence counter: replayed alone, the state every record taken so
    /// far describes. Declines while records wait to be taken or own updates wait for theirs
    /// (the host asks only when everything taken is durable, so neither should happen).
    fn snapshot(&mut self) -> Option<Vec<Vec<u8>>> {
        if !self.persist || !self.records.is_empty() || !self.unsent.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        let mut versions: Vec<&Version> = self.replica.values().collect();
        // A fixed order, so that equal states write equal snapshots.
        versions.sort_by_key(|v| v.stamp);
        for chunk in versions.chunks(SNAPSHOT_VERSIONS) {
            let writes = chunk
                .iter()
                .map(|v| (v.key.clone(), v.stamp, v.value.clone()))
                .collect();
            out.push(serde_json::to_vec(&Record::Applied { writes }).ok()?);
        }
        let mut backlog: BTreeMap<u64, &Arc<Update>> = BTreeMap::new();
        for p in &self.peers {
            for u in &p.pending {
                backlog.insert(u.seq, u);
            }
        }
        let (mut own_bytes, mut own_count) = (0, 0);
        for u in backlog.values() {
            let r = serde_json::to_vec(&OwnRef { own: u }).ok()?;
            own_bytes += store_frame(r.len());
            own_count += 1;
            out.push(r);
        }
        let mut cursors = Vec::new();
        for p in &self.peers {
            let upto = self.cursor(p);
            let peer = p.id.clone();
            out.push(serde_json::to_vec(&Record::Acked { peer, upto }).ok()?);
            cursors.push(upto);
        }
        for (p, upto) in self.peers.iter_mut().zip(cursors) {
            p.recorded = upto;
        }
        out.push(
            serde_json::to_vec(&Record::Seq {
                upto: self.next_seq,
            })
            .ok()?,
        );
        (self.own_bytes, self.own_count) = (own_bytes, own_count);
        Some(out)
    }
}

/// The `main` of the `txn-rw-register` binary: knobs from the environment and arguments
/// ([`TxnConfig`]).
pub fn main() -> std::process::ExitCode {
    match TxnConfig::from_env_and_args(std::env::vars(), std::env::args().skip(1)) {
        Ok(cfg) => crate::runtime::main::<TxnRwRegister>(cfg),
        Err(e) => {
            eprintln!("txn-rw-register: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests;

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
//! then sent, as one update, to every peer (`replicate`, batched per peer, one batch in flight,
//! retried every [`RETRY_MS`] until the peer answers `replicate_ok`), which applies the whole
//! update in one handler call. A key keeps the write with the highest stamp (last writer wins),
//! so replicas agree once every update has arrived, in any order, any number of times.
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
//! **Not durable.** The replica lives in memory: a killed node forgets what it held (peers
//! resend only what they have not had acknowledged). Challenges 6a–6c have no kill fault.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::wire::{ErrorBody, ErrorCode};

/// How long a node waits for `replicate_ok` before sending a peer its pending updates again, in
/// ms. Long enough not to resend under Maelstrom's default latencies, short enough that a healed
/// partition is caught up within a fraction of a second.
pub const RETRY_MS: Millis = 250;
/// At most this many updates go in one `replicate` message, so that a peer coming back from a
/// long partition gets its backlog in bounded messages.
pub const MAX_BATCH: usize = 512;

/// A micro-op: `[f, key, value]`.
pub type MicroOp = (String, Value, Value);

/// A transaction's stamp: (Lamport counter, index of the node that ran it).
pub type Stamp = (u64, u64);

/// One committed transaction's final writes, as sent to peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The origin's sequence number for this update (1, 2, ...), acknowledged cumulatively.
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
    /// A batch of the sender's updates, in sequence order.
    Replicate {
        updates: Vec<Update>,
    },
    /// Every update of the receiver's numbered up to `upto` has been applied.
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

/// What one peer has not acknowledged yet.
#[derive(Debug)]
struct Peer {
    id: String,
    pending: VecDeque<Arc<Update>>,
    /// When the pending updates may be sent (again): now, or once a batch in flight is overdue.
    next_send: Millis,
}

/// One key's current version.
#[derive(Debug, Clone)]
struct Version {
    stamp: Stamp,
    value: Value,
}

/// The node: its replica, its clock, and its peers' backlogs.
#[derive(Debug)]
pub struct TxnRwRegister {
    index: u64,
    clock: u64,
    next_seq: u64,
    /// Keyed by the key's JSON text, so that keys compare as Maelstrom compares them (`1` and
    /// `1.0` differ).
    replica: HashMap<String, Version>,
    peers: Vec<Peer>,
}

/// Why a transaction was refused.
#[derive(Debug, PartialEq)]
pub struct Malformed(String);

impl TxnRwRegister {
    /// Applies `value` to `key` if `stamp` is newer than what the replica holds.
    fn apply(&mut self, key: String, stamp: Stamp, value: Value) {
        self.clock = self.clock.max(stamp.0);
        match self.replica.get_mut(&key) {
            Some(v) if v.stamp >= stamp => {}
            Some(v) => *v = Version { stamp, value },
            None => {
                self.replica.insert(key, Version { stamp, value });
            }
        }
    }

    /// Runs a transaction against the replica: its reads filled in, its last writes applied and
    /// queued for every peer. Refused, with nothing applied, if a micro-op is not `r` or `w`.
    pub fn run(&mut self, txn: Vec<MicroOp>) -> Result<Vec<MicroOp>, Malformed> {
        if let Some((f, _, _)) = txn.iter().find(|(f, _, _)| f != "r" && f != "w") {
            return Err(Malformed(format!(
                "unknown micro-op {f:?}: expected \"r\" or \"w\""
            )));
        }
        self.clock += 1;
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
                self.apply(text, stamp, v.clone());
                writes.push((k, v));
            }
            self.next_seq += 1;
            let update = Arc::new(Update {
                seq: self.next_seq,
                stamp,
                writes,
            });
            for p in &mut self.peers {
                p.pending.push_back(Arc::clone(&update));
            }
        }
        Ok(out)
    }

    /// Applies a peer's updates; returns the highest sequence number among them.
    fn receive(&mut self, updates: Vec<Update>) -> u64 {
        let mut upto = 0;
        for u in updates {
            upto = upto.max(u.seq);
            for (k, v) in u.writes {
                self.apply(k.to_string(), u.stamp, v);
            }
        }
        upto
    }

    /// The value the replica holds for `key` (`null` if none), for tests and tools.
    pub fn value(&self, key: &Value) -> Value {
        self.replica
            .get(&key.to_string())
            .map_or(Value::Null, |v| v.value.clone())
    }
}

impl Workload for TxnRwRegister {
    type Msg = Msg;
    type Config = ();

    fn init(info: &InitInfo, _: &(), now: Millis) -> Self {
        let index = info
            .node_ids
            .iter()
            .position(|n| *n == info.node_id)
            .unwrap_or(info.node_ids.len()) as u64;
        let peers = info
            .node_ids
            .iter()
            .filter(|n| **n != info.node_id)
            .map(|id| Peer {
                id: id.clone(),
                pending: VecDeque::new(),
                next_send: now,
            })
            .collect();
        TxnRwRegister {
            index,
            clock: 0,
            next_seq: 0,
            replica: HashMap::new(),
            peers,
        }
    }

    fn handle(&mut self, msg: Message<Msg>, now: Millis, ctx: &mut Ctx<Msg>) {
        let (src, msg_id) = (msg.src, msg.body.msg_id);
        match msg.body.payload {
            Msg::Txn { txn } => match self.run(txn) {
                Ok(txn) => ctx.reply(&src, msg_id, Msg::TxnOk { txn }),
                Err(Malformed(why)) => {
                    ctx.reply_error(&src, msg_id, ErrorCode::MalformedRequest, why)
                }
            },
            Msg::Replicate { updates } => {
                let upto = self.receive(updates);
                ctx.reply(&src, msg_id, Msg::ReplicateOk { upto });
            }
            Msg::ReplicateOk { upto } => {
                if let Some(p) = self.peers.iter_mut().find(|p| p.id == src) {
                    while p.pending.front().is_some_and(|u| u.seq <= upto) {
                        p.pending.pop_front();
                    }
                    // The batch in flight is answered: the rest may go now.
                    p.next_send = now;
                }
            }
            Msg::TxnOk { .. } | Msg::Error(_) => {
                tracing::debug!(%src, "ignoring a reply")
            }
        }
    }

    fn tick(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        for p in &mut self.peers {
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
    }

    fn next_tick(&mut self, _now: Millis) -> Option<Millis> {
        self.peers
            .iter()
            .filter(|p| !p.pending.is_empty())
            .map(|p| p.next_send)
            .min()
    }
}

#[cfg(test)]
mod tests;

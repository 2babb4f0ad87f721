//! The local design: one owner node holds every log and persists it (see the module docs of
//! [`crate::workload::kafka`]).
//!
//! **Durability.** A send appends to the key's log in memory and emits a record; its `send_ok`
//! waits until the driver reports the record durable ([`Workload::persisted`]). Polls return only
//! durable messages: a message a client could see must survive a kill, or a restarted owner
//! would hand its offset to another message (inconsistent offsets). Commits are records too,
//! acknowledged once durable. On restart the records are replayed in order, which rebuilds the
//! same offsets (each send's offset is its log's length when it was appended).
//!
//! **Forwarding.** A non-owner sends each client request to the owner as is and relays the
//! owner's reply (or error) to the client. It never retries: a request lost in a partition ends
//! as the client's timeout (`info`), and a retry could append a message twice.

use super::Msg;
use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::rpc::Calls;
use crate::wire::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// How long a forwarded request is remembered. Clients give up after 5 s; this only bounds
/// memory when the owner never answers.
pub const FORWARD_TIMEOUT_MS: Millis = 10_000;

/// The local design's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    /// Persist sends and commits before acknowledging them (default true). Without it a killed
    /// owner forgets acknowledged sends.
    pub persist: bool,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig { persist: true }
    }
}

/// One durable change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    /// `msg` appended to `key`'s log.
    Send { key: String, msg: Value },
    /// `key`'s committed offset raised to `offset`.
    Commit { key: String, offset: u64 },
}

/// One key's log.
#[derive(Debug, Default)]
struct Log {
    msgs: Vec<Value>,
    /// How many of `msgs` are durable (all of them without persistence).
    durable: usize,
    committed: Option<u64>,
}

/// A reply held until the record it depends on is durable.
#[derive(Debug)]
struct Held {
    /// The record count that must be durable.
    after: u64,
    /// The send this record appended, if it was one: the key becomes readable one further.
    key: Option<String>,
    dest: String,
    in_reply_to: Option<u64>,
    reply: Option<Msg>,
}

/// The local design's node (module docs).
#[derive(Debug)]
pub struct Local {
    owner: String,
    is_owner: bool,
    persist: bool,
    logs: HashMap<String, Log>,
    /// Records emitted and not yet taken by the driver, and how many were emitted in all.
    records: Vec<Vec<u8>>,
    emitted: u64,
    held: VecDeque<Held>,
    /// Forwarded requests: the client and its `msg_id`.
    forwards: Calls<(String, Option<u64>)>,
}

impl Local {
    fn log(&mut self, key: &str) -> &mut Log {
        self.logs.entry(key.to_string()).or_default()
    }

    /// Emits `record` (if persisting) and sends `reply` once it is durable, or at once.
    fn commit_then_reply(
        &mut self,
        record: Record,
        dest: &str,
        in_reply_to: Option<u64>,
        reply: Msg,
        ctx: &mut Ctx<Msg>,
    ) {
        let key = match &record {
            Record::Send { key, .. } => Some(key.clone()),
            Record::Commit { .. } => None,
        };
        if !self.persist {
            if let Some(k) = key {
                let log = self.log(&k);
                log.durable = log.msgs.len();
            }
            ctx.reply(dest, in_reply_to, reply);
            return;
        }
        match serde_json::to_vec(&record) {
            Ok(bytes) => self.records.push(bytes),
            Err(e) => {
                // Cannot happen for these types; refuse rather than acknowledge unpersisted.
                tracing::error!(%e, "cannot encode a record");
                ctx.reply_error(dest, in_reply_to, ErrorCode::Crash, "cannot persist");
                return;
            }
        }
        self.emitted += 1;
        self.held.push_back(Held {
            after: self.emitted,
            key,
            dest: dest.to_string(),
            in_reply_to,
            reply: Some(reply),
        });
    }

    /// Serves a request as the owner.
    fn serve(&mut self, src: &str, msg_id: Option<u64>, payload: Msg, ctx: &mut Ctx<Msg>) {
        match payload {
            Msg::Send { key, msg } => {
                let log = self.log(&key);
                log.msgs.push(msg.clone());
                let offset = (log.msgs.len() - 1) as u64;
                let record = Record::Send { key, msg };
                self.commit_then_reply(record, src, msg_id, Msg::SendOk { offset }, ctx);
            }
            Msg::Poll { offsets } => {
                let mut msgs = BTreeMap::new();
                for (key, from) in offsets {
                    let Some(log) = self.logs.get(&key) else {
                        continue;
                    };
                    let from = usize::try_from(from).unwrap_or(usize::MAX);
                    let durable = &log.msgs[..log.durable];
                    if from < durable.len() {
                        let pairs = (from..durable.len())
                            .map(|o| (o as u64, durable[o].clone()))
                            .collect();
                        msgs.insert(key, pairs);
                    }
                }
                ctx.reply(src, msg_id, Msg::PollOk { msgs });
            }
            Msg::CommitOffsets { offsets } => {
                let mut raised = Vec::new();
                for (key, offset) in offsets {
                    let log = self.log(&key);
                    if log.committed.map_or(true, |c| c < offset) {
                        log.committed = Some(offset);
                        raised.push(Record::Commit { key, offset });
                    }
                }
                // The reply waits for the last record (records are durable in order).
                let last = raised.pop();
                for r in raised {
                    self.commit_records_only(r);
                }
                match last {
                    Some(r) => self.commit_then_reply(r, src, msg_id, Msg::CommitOffsetsOk, ctx),
                    None => ctx.reply(src, msg_id, Msg::CommitOffsetsOk),
                }
            }
            Msg::ListCommittedOffsets { keys } => {
                let offsets = keys
                    .into_iter()
                    .filter_map(|k| Some((k.clone(), self.logs.get(&k)?.committed?)))
                    .collect();
                ctx.reply(src, msg_id, Msg::ListCommittedOffsetsOk { offsets });
            }
            _ => {
                if msg_id.is_some() {
                    ctx.reply_error(src, msg_id, ErrorCode::NotSupported, "not a kafka request");
                }
            }
        }
    }

    /// Emits a record whose durability no reply waits for on its own.
    fn commit_records_only(&mut self, record: Record) {
        if !self.persist {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(&record) {
            self.records.push(bytes);
            self.emitted += 1;
        }
    }

    /// Replays one recovered record.
    fn replay(&mut self, bytes: &[u8]) {
        match serde_json::from_slice::<Record>(bytes) {
            Ok(Record::Send { key, msg }) => {
                let log = self.log(&key);
                log.msgs.push(msg);
                log.durable = log.msgs.len();
            }
            Ok(Record::Commit { key, offset }) => {
                let log = self.log(&key);
                log.committed = Some(log.committed.map_or(offset, |c| c.max(offset)));
            }
            Err(e) => tracing::warn!(%e, "skipping a record that does not decode"),
        }
    }
}

impl Workload for Local {
    type Msg = Msg;
    type Config = LocalConfig;

    fn init(info: &InitInfo, cfg: &LocalConfig, _now: Millis) -> Self {
        let owner = info
            .node_ids
            .first()
            .cloned()
            .unwrap_or_else(|| info.node_id.clone());
        let mut node = Local {
            is_owner: owner == info.node_id,
            owner,
            persist: cfg.persist,
            logs: HashMap::new(),
            records: Vec::new(),
            emitted: 0,
            held: VecDeque::new(),
            forwards: Calls::default(),
        };
        for r in &info.recovered {
            node.replay(r);
        }
        node
    }

    fn handle(&mut self, msg: Message<Msg>, now: Millis, ctx: &mut Ctx<Msg>) {
        self.forwards.expire(now);
        if let Some(irt) = msg.body.in_reply_to {
            // The owner's reply to a forwarded request: relay it.
            if msg.src == self.owner {
                if let Some((client, msg_id)) = self.forwards.resolve(irt) {
                    ctx.reply(&client, msg_id, msg.body.payload);
                }
            }
            return;
        }
        if self.is_owner {
            return self.serve(&msg.src, msg.body.msg_id, msg.body.payload, ctx);
        }
        let client = msg.src.clone();
        let msg_id = msg.body.msg_id;
        match msg.body.payload {
            p @ (Msg::Send { .. }
            | Msg::Poll { .. }
            | Msg::CommitOffsets { .. }
            | Msg::ListCommittedOffsets { .. }) => {
                let owner = self.owner.clone();
                let id = ctx.send(&owner, p);
                self.forwards
                    .register(id, now + FORWARD_TIMEOUT_MS, (client, msg_id));
            }
            _ => {
                if msg_id.is_some() {
                    ctx.reply_error(
                        &client,
                        msg_id,
                        ErrorCode::NotSupported,
                        "not a kafka request",
                    );
                }
            }
        }
    }

    fn persistent(cfg: &LocalConfig) -> bool {
        cfg.persist
    }

    fn take_records(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.records)
    }

    fn persisted(&mut self, count: u64, _now: Millis, ctx: &mut Ctx<Msg>) {
        while self.held.front().is_some_and(|h| h.after <= count) {
            let Some(mut h) = self.held.pop_front() else {
                break;
            };
            if let Some(k) = h.key.take() {
                let log = self.log(&k);
                log.durable = (log.durable + 1).min(log.msgs.len());
            }
            if let Some(reply) = h.reply.take() {
                ctx.reply(&h.dest, h.in_reply_to, reply);
            }
        }
    }
}

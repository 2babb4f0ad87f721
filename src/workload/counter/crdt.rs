//! The CRDT design: a broadcast node underneath, whose grow-only set holds the adds.
//!
//! A g-set's elements are the broadcast values themselves. A counter's add becomes the value
//! `[id, delta]`, where `id` is unique across nodes and restarts (drawn as `unique-ids` draws them,
//! and kept above every id this node finds in its recovered log), so two adds of the same delta
//! stay two values; the counter is the sum of the deltas in the set. The set of adds is a
//! grow-only set, merged by union, so it converges whatever order gossip arrives in; and since a
//! read sums exactly the durable set, the broadcast node's acknowledgement rule carries over: an
//! `add_ok` leaves only once the add is durable here, so no acknowledged add is lost to a kill.
//!
//! [`Crdt`] owns a [`Broadcast`] and its own output context, translates the client messages into
//! the broadcast's (`add` → `broadcast`, `read` → `read`, same source and `msg_id`, so the host's
//! client guard sees one request and one reply), passes peer messages through unchanged, and
//! translates what the broadcast node sends back (`broadcast_ok` → `add_ok`, `read_ok` with the
//! set → `read_ok` with the set or its sum). Durability, ticks and recovery are the broadcast
//! node's: the wrapper forwards [`Workload::take_records`], [`Workload::persisted`] and the ticks.

use super::Kind;
use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::wire::{Body, Envelope, ErrorBody, ErrorCode};
use crate::workload::broadcast::{self, Broadcast, BroadcastConfig, Messages};
use crate::workload::unique_ids::UniqueIds;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The CRDT nodes' payloads: Maelstrom's `add`/`read` for g-set and the counters, and the
/// broadcast node's peer messages (`gossip`, `gossip_ok`, `ack_batch`, `relayed_acks`, the
/// health checks `ping`, `pong` and `release`, and `topology`, which only overlay `given` uses),
/// which pass through unchanged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    /// `element` for g-set, `delta` for the counters.
    Add {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        element: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delta: Option<i64>,
    },
    AddOk,
    Read,
    ReadOk {
        value: ReadValue,
    },
    Error(ErrorBody),
    /// A broadcast node's peer message (serialised as the broadcast node writes it).
    #[serde(untagged)]
    Peer(broadcast::Msg),
}

/// [`Msg`]'s own variants, for parsing.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Own {
    Add {
        #[serde(default)]
        element: Option<Value>,
        #[serde(default)]
        delta: Option<i64>,
    },
    AddOk,
    Read,
    ReadOk {
        value: ReadValue,
    },
    Error(ErrorBody),
}

/// The `type`s [`Msg::Peer`] carries.
const PEER_TYPES: [&str; 8] = [
    "gossip",
    "gossip_ok",
    "ack_batch",
    "relayed_acks",
    "ping",
    "pong",
    "release",
    "topology",
];

/// Parsing by `type`: ours, a peer type, or an unknown variant (so that
/// [`crate::node::parse_line`] answers error 10, not 12, as for any workload).
impl<'de> Deserialize<'de> for Msg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        const ALL: [&str; 13] = [
            "add",
            "add_ok",
            "read",
            "read_ok",
            "error",
            "gossip",
            "gossip_ok",
            "ack_batch",
            "relayed_acks",
            "ping",
            "pong",
            "release",
            "topology",
        ];
        let v = Value::deserialize(d)?;
        let kind = match v.get("type") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err(D::Error::missing_field("type")),
        };
        if PEER_TYPES.contains(&kind.as_str()) {
            return serde_json::from_value(v)
                .map(Msg::Peer)
                .map_err(D::Error::custom);
        }
        if !ALL.contains(&kind.as_str()) {
            return Err(D::Error::unknown_variant(&kind, &ALL));
        }
        Ok(match serde_json::from_value(v).map_err(D::Error::custom)? {
            Own::Add { element, delta } => Msg::Add { element, delta },
            Own::AddOk => Msg::AddOk,
            Own::Read => Msg::Read,
            Own::ReadOk { value } => Msg::ReadOk { value },
            Own::Error(e) => Msg::Error(e),
        })
    }
}

impl From<ErrorBody> for Msg {
    fn from(e: ErrorBody) -> Self {
        Msg::Error(e)
    }
}

/// A `read_ok`'s `value`: a counter's sum, or g-set's elements (the broadcast node's shared
/// snapshot of its durable set, so a g-set read costs what a broadcast read does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReadValue {
    Count(i64),
    Set(Messages),
}

/// The CRDT nodes' knobs: which workload, and the broadcast node's knobs (overlay, timers,
/// persistence: [`BroadcastConfig`], with its defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct CrdtConfig {
    pub kind: Kind,
    pub broadcast: BroadcastConfig,
}

/// A g-set, g-counter or pn-counter node over a broadcast node (module docs).
#[derive(Debug)]
pub struct Crdt {
    kind: Kind,
    inner: Broadcast,
    /// The broadcast node's outputs, translated into ours after every call into it. Kept for
    /// the node's life: it owns the `msg_id` counter the broadcast node's calls are registered by.
    inner_ctx: Ctx<broadcast::Msg>,
    /// Draws the adds' ids (counters only).
    ids: UniqueIds,
    /// The sum of the deltas in `inner.values()[..summed]` (counters only).
    sum: i64,
    summed: usize,
    /// Values in the set that are not a well-formed add (`[id, delta]` with integers), skipped.
    malformed: u64,
}

impl Crdt {
    /// The counter's value: the sum of the durable adds (what a read returns).
    pub fn count(&mut self) -> i64 {
        let values = self.inner.values();
        for v in &values[self.summed..] {
            match decode_add(v) {
                Some((_, delta)) => self.sum = self.sum.saturating_add(delta),
                None => {
                    self.malformed += 1;
                    tracing::warn!(value = %v, "not an add; left out of the count");
                }
            }
        }
        self.summed = values.len();
        self.sum
    }

    /// The broadcast node underneath.
    pub fn inner(&self) -> &Broadcast {
        &self.inner
    }

    /// Passes the broadcast node's outputs on, translating its client replies.
    fn pump(&mut self, ctx: &mut Ctx<Msg>) {
        for m in self.inner_ctx.drain() {
            let Envelope {
                id,
                src,
                dest,
                body,
            } = m;
            let payload = match body.payload {
                broadcast::Msg::BroadcastOk => Msg::AddOk,
                broadcast::Msg::ReadOk { messages } => Msg::ReadOk {
                    value: match self.kind {
                        Kind::GSet => ReadValue::Set(messages),
                        // The durable prefix now, which holds at least what the snapshot held.
                        Kind::GCounter | Kind::PnCounter => ReadValue::Count(self.count()),
                    },
                },
                broadcast::Msg::Error(e) => Msg::Error(e),
                other => Msg::Peer(other),
            };
            ctx.forward(Envelope {
                id,
                src,
                dest,
                body: Body {
                    msg_id: body.msg_id,
                    in_reply_to: body.in_reply_to,
                    payload,
                },
            });
        }
    }

    /// Hands the broadcast node a message from `src` with the same ids.
    fn deliver(
        &mut self,
        src: String,
        dest: String,
        body: Body<broadcast::Msg>,
        now: Millis,
        ctx: &mut Ctx<Msg>,
    ) {
        let msg = Envelope {
            id: None,
            src,
            dest,
            body,
        };
        self.inner.handle(msg, now, &mut self.inner_ctx);
        self.pump(ctx);
    }

    /// The broadcast value for an add, or the error to answer it with.
    fn value_of_add(
        &mut self,
        element: Option<Value>,
        delta: Option<i64>,
        now: Millis,
    ) -> Result<Value, (ErrorCode, &'static str)> {
        match self.kind {
            Kind::GSet => element.ok_or((ErrorCode::MalformedRequest, "add needs an `element`")),
            Kind::GCounter | Kind::PnCounter => {
                let delta = delta.ok_or((ErrorCode::MalformedRequest, "add needs a `delta`"))?;
                if self.kind == Kind::GCounter && delta < 0 {
                    return Err((
                        ErrorCode::MalformedRequest,
                        "a g-counter only grows: delta must not be negative",
                    ));
                }
                let id = self
                    .ids
                    .next_id(now)
                    .ok_or((ErrorCode::Abort, "add id space exhausted"))?;
                Ok(Value::from(vec![Value::from(id), Value::from(delta)]))
            }
        }
    }
}

/// An add's `(id, delta)` from its broadcast value.
fn decode_add(v: &Value) -> Option<(u64, i64)> {
    match v.as_array()?.as_slice() {
        [id, delta] => Some((id.as_u64()?, delta.as_i64()?)),
        _ => None,
    }
}

impl Workload for Crdt {
    type Msg = Msg;
    type Config = CrdtConfig;

    fn init(info: &InitInfo, cfg: &CrdtConfig, now: Millis) -> Self {
        let inner = Broadcast::init(info, &cfg.broadcast, now);
        let mut ids = UniqueIds::init(info, &(), now);
        for (id, _) in inner.values().iter().filter_map(decode_add) {
            ids.issued(id);
        }
        Crdt {
            kind: cfg.kind,
            inner,
            inner_ctx: Ctx::new(info.node_id.clone()),
            ids,
            sum: 0,
            summed: 0,
            malformed: 0,
        }
    }

    fn handle(&mut self, msg: Message<Msg>, now: Millis, ctx: &mut Ctx<Msg>) {
        let Envelope {
            src, dest, body, ..
        } = msg;
        let (msg_id, in_reply_to) = (body.msg_id, body.in_reply_to);
        let with = |payload| Body {
            msg_id,
            in_reply_to,
            payload,
        };
        match body.payload {
            Msg::Add { element, delta } => match self.value_of_add(element, delta, now) {
                Ok(message) => {
                    let body = with(broadcast::Msg::Broadcast { message });
                    self.deliver(src, dest, body, now, ctx);
                }
                Err((code, text)) => ctx.reply_error(&src, msg_id, code, text),
            },
            Msg::Read => self.deliver(src, dest, with(broadcast::Msg::Read), now, ctx),
            Msg::Error(e) => {
                self.deliver(src, dest, with(broadcast::Msg::Error(e)), now, ctx);
            }
            // Peer traffic; `topology` too, which only matters in overlay `given`.
            Msg::Peer(
                m @ (broadcast::Msg::Gossip { .. }
                | broadcast::Msg::GossipOk { .. }
                | broadcast::Msg::AckBatch { .. }
                | broadcast::Msg::RelayedAcks { .. }
                | broadcast::Msg::Ping { .. }
                | broadcast::Msg::Pong { .. }
                | broadcast::Msg::Release
                | broadcast::Msg::Topology { .. }),
            ) => self.deliver(src, dest, with(m), now, ctx),
            // Broadcast's client requests are not this workload's; replies are never answered.
            Msg::AddOk | Msg::ReadOk { .. } | Msg::Peer(_) => {
                if msg_id.is_some() && in_reply_to.is_none() {
                    ctx.reply_error(
                        &src,
                        msg_id,
                        ErrorCode::NotSupported,
                        format!("not a {} request", self.kind.name()),
                    );
                }
            }
        }
    }

    fn tick(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        self.inner.tick(now, &mut self.inner_ctx);
        self.pump(ctx);
    }

    fn next_tick(&mut self, now: Millis) -> Option<Millis> {
        self.inner.next_tick(now)
    }

    fn persistent(cfg: &CrdtConfig) -> bool {
        Broadcast::persistent(&cfg.broadcast)
    }

    fn take_records(&mut self) -> Vec<Vec<u8>> {
        self.inner.take_records()
    }

    fn persisted(&mut self, count: u64, now: Millis, ctx: &mut Ctx<Msg>) {
        self.inner.persisted(count, now, &mut self.inner_ctx);
        self.pump(ctx);
    }
}

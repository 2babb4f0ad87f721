//! Maelstrom's built-in services, as a clock-free, I/O-free state machine: `lin-kv`, `seq-kv`,
//! `lww-kv` and `lin-tso` (<https://github.com/jepsen-io/maelstrom/blob/main/doc/services.md>;
//! the behaviour below is that of Maelstrom's `src/maelstrom/service.clj`, which is sometimes
//! stranger than its docs).
//!
//! Both drivers register every service in the network at the start of a run and hand each message
//! delivered to one to [`Services::handle`]; the reply goes back through the network. Services
//! are network participants like nodes: their traffic gets the `--latency` of server traffic, is
//! counted under `servers` in the `net` results, and is never partitioned (grudges only apply
//! between two nodes; see [`crate::net`]).
//!
//! # Protocol
//! - KV services: `read {key}` → `read_ok {value}`, or error 20 (`key does not exist`);
//!   `write {key, value}` → `write_ok`; `cas {key, from, to}` → `cas_ok`, error 22
//!   (`current value X is not Y`) if the key holds something else, or error 20 if the key is
//!   missing, unless `create_if_not_exists` is truthy (anything but `null` and `false`), in which
//!   case the key is created with `to`. `lww-kv` ignores `create_if_not_exists`.
//! - `lin-tso`: `ts` → `ts_ok {ts}`, with `ts` = 0, 1, 2, …
//! - A missing `key`, `value`, `from` or `to` is JSON `null`, a key like any other.
//! - Keys and values compare as Clojure does, which for JSON is `Value`'s `==`: `1` and `1.0`
//!   differ, and so do `"1"` and `1`.
//! - A reply carries `in_reply_to` = the request's `msg_id` (`null` if it had none, whatever JSON
//!   value it had otherwise) and no `msg_id`.
//! - A request a service does not know (another service's type, no `type`, a body that is not an
//!   object) gets **no reply** and changes nothing: in Maelstrom it throws in the service's thread,
//!   which logs "Error in service worker!" and carries on.
//!
//! # Consistency
//! - `lin-kv`, `lin-tso`: one state, every request applied to it in delivery order:
//!   linearizable.
//! - `seq-kv`: the last [`SEQ_KV_STATES`] states, and per requesting node (the message's `src`)
//!   the index of the last state it saw (0 at first). A request picks an index uniformly in
//!   [its node's index, latest) (the latest itself only when the node is already there; this is
//!   Jepsen's `rand-int`) and runs against that state. If that leaves the state unchanged (reads,
//!   failed cas, missing keys, writing the value already there) the reply stands and the node's
//!   index moves to the picked one. Otherwise the request is run again on the latest state, whose
//!   result becomes a new state, and the node moves to it. A node more than [`SEQ_KV_STATES`]
//!   behind reads the buffer modulo its length, as Maelstrom's ring buffer does. So each node's
//!   view is monotonic and includes its own writes, but reads may be stale for ever: a node that
//!   wants the latest value must first write something (a unique value, say) or cas.
//! - `lww-kv`: two replicas, each a Lamport clock and a map of key → (timestamp, value). Each
//!   request goes to a random replica. Maelstrom also merges one random replica into another
//!   on every request, but drops the result (the new replica vector is built from the old one),
//!   so the replicas **never converge**: a read sees a given write with probability ½. Since the
//!   merge has no effect, it is not computed here; the timestamps are kept for fidelity only.

use std::collections::{HashMap, VecDeque};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::checker::json::{key, JsonKey};
use crate::net::Packet;

/// How many states `seq-kv` keeps (Maelstrom's `sequential` default).
pub const SEQ_KV_STATES: usize = 32;
/// How many replicas `lww-kv` has (Maelstrom's `eventual` default; its docs say 5).
pub const LWW_KV_REPLICAS: usize = 2;

/// The services, by the ids nodes address them with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceId {
    LinKv,
    SeqKv,
    LwwKv,
    LinTso,
}

impl ServiceId {
    /// Every service, in the order they are registered.
    pub const ALL: [ServiceId; 4] = [
        ServiceId::LinKv,
        ServiceId::SeqKv,
        ServiceId::LwwKv,
        ServiceId::LinTso,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServiceId::LinKv => "lin-kv",
            ServiceId::SeqKv => "seq-kv",
            ServiceId::LwwKv => "lww-kv",
            ServiceId::LinTso => "lin-tso",
        }
    }

    pub fn from_name(id: &str) -> Option<ServiceId> {
        ServiceId::ALL.into_iter().find(|s| s.name() == id)
    }
}

/// A request any service might get; which ones a service answers is up to it.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Request {
    Read {
        #[serde(default)]
        key: Value,
    },
    Write {
        #[serde(default)]
        key: Value,
        #[serde(default)]
        value: Value,
    },
    Cas {
        #[serde(default)]
        key: Value,
        #[serde(default)]
        from: Value,
        #[serde(default)]
        to: Value,
        #[serde(default)]
        create_if_not_exists: Value,
    },
    Ts,
}

/// Clojure truthiness: everything but `nil` and `false`.
fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

/// A reply body without `in_reply_to`.
type Reply = Map<String, Value>;

fn reply(v: Value) -> Reply {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn error(code: u64, text: String) -> Reply {
    reply(json!({"type": "error", "code": code, "text": text}))
}

fn missing_key() -> Reply {
    error(20, "key does not exist".into())
}

/// A value as Clojure's `pr-str` prints it (for error texts): `nil`, strings quoted, vectors
/// and maps with spaces.
pub fn pr_str(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(pr_str).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{} {}", pr_str(&Value::String(k.clone())), pr_str(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// A value as Clojure's `str` prints it: `pr-str`, except that `nil` is empty and strings are
/// bare.
fn clj_str(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => pr_str(other),
    }
}

/// One key-value state (`lin-kv`, one of `seq-kv`'s states).
#[derive(Debug, Clone, Default, PartialEq)]
struct Kv {
    m: HashMap<JsonKey, Value>,
}

impl Kv {
    /// Runs a KV request: its reply, and the new state if it changed.
    fn apply(&self, req: &Request) -> Option<(Reply, Option<Kv>)> {
        let with = |k: &Value, v: &Value| {
            let mut next = self.clone();
            next.m.insert(key(k), v.clone());
            (next != *self).then_some(next)
        };
        Some(match req {
            Request::Read { key: k } => match self.m.get(&key(k)) {
                Some(v) => (reply(json!({"type": "read_ok", "value": v})), None),
                None => (missing_key(), None),
            },
            Request::Write { key: k, value } => {
                (reply(json!({"type": "write_ok"})), with(k, value))
            }
            Request::Cas {
                key: k,
                from,
                to,
                create_if_not_exists,
            } => match self.m.get(&key(k)) {
                Some(cur) if cur == from => (reply(json!({"type": "cas_ok"})), with(k, to)),
                Some(cur) => (
                    error(
                        22,
                        format!("current value {} is not {}", pr_str(cur), pr_str(from)),
                    ),
                    None,
                ),
                None if truthy(create_if_not_exists) => {
                    (reply(json!({"type": "cas_ok"})), with(k, to))
                }
                None => (missing_key(), None),
            },
            Request::Ts => return None,
        })
    }
}

/// `seq-kv`'s state: the last states and each node's index.
#[derive(Debug)]
struct SeqKv {
    /// Oldest first; at most [`SEQ_KV_STATES`].
    states: VecDeque<Kv>,
    /// The index of the newest state (0 for the initial one).
    last: u64,
    seen: HashMap<String, u64>,
}

impl SeqKv {
    fn new() -> SeqKv {
        SeqKv {
            states: VecDeque::from([Kv::default()]),
            last: 0,
            seen: HashMap::new(),
        }
    }

    fn handle(&mut self, src: &str, req: &Request, rng: &mut ChaCha8Rng) -> Option<Reply> {
        let mine = self.seen.get(src).copied().unwrap_or(0).min(self.last);
        let index = if self.last > mine {
            mine + rng.random_range(0..self.last - mine)
        } else {
            mine
        };
        // Position from the back: the newest is len − 1; a node further behind than the buffer
        // wraps modulo its length, as Maelstrom's ring buffer does.
        let len = self.states.len() as i128;
        let pos = (len - 1 - (self.last - index) as i128).rem_euclid(len) as usize;
        let (res, changed) = self.states[pos].apply(req)?;
        if changed.is_none() {
            self.seen.insert(src.to_string(), index);
            return Some(res);
        }
        let latest = self.states.back().expect("never empty");
        let (res, next) = latest.apply(req)?;
        let next = next.unwrap_or_else(|| latest.clone());
        if self.states.len() == SEQ_KV_STATES {
            self.states.pop_front();
        }
        self.states.push_back(next);
        self.last += 1;
        self.seen.insert(src.to_string(), self.last);
        Some(res)
    }
}

/// One `lww-kv` replica: a Lamport clock and key → (timestamp, value).
#[derive(Debug, Clone, Default)]
struct LwwReplica {
    clock: u64,
    m: HashMap<JsonKey, (u64, Value)>,
}

impl LwwReplica {
    fn handle(&mut self, req: &Request) -> Option<Reply> {
        Some(match req {
            Request::Read { key: k } => match self.m.get(&key(k)) {
                Some((_, v)) => reply(json!({"type": "read_ok", "value": v})),
                None => missing_key(),
            },
            Request::Write { key: k, value } => {
                self.m.insert(key(k), (self.clock, value.clone()));
                self.clock += 1;
                reply(json!({"type": "write_ok"}))
            }
            // No `create_if_not_exists` here, as in Maelstrom; its error text prints `from`
            // with `str`, not `pr-str`.
            Request::Cas {
                key: k, from, to, ..
            } => match self.m.get(&key(k)) {
                Some((_, cur)) if cur == from => {
                    self.m.insert(key(k), (self.clock, to.clone()));
                    self.clock += 1;
                    reply(json!({"type": "cas_ok"}))
                }
                Some((_, cur)) => error(
                    22,
                    format!("current value {} is not {}", pr_str(cur), clj_str(from)),
                ),
                None => missing_key(),
            },
            Request::Ts => return None,
        })
    }
}

/// Every service's state, and the seeded randomness of `seq-kv` and `lww-kv`.
#[derive(Debug)]
pub struct Services {
    lin_kv: Kv,
    seq_kv: SeqKv,
    lww_kv: Vec<LwwReplica>,
    tso: u64,
    rng: ChaCha8Rng,
}

impl Services {
    /// Fresh services: empty stores, the timestamp oracle at 0.
    pub fn new(rng: ChaCha8Rng) -> Services {
        Services {
            lin_kv: Kv::default(),
            seq_kv: SeqKv::new(),
            lww_kv: vec![LwwReplica::default(); LWW_KV_REPLICAS],
            tso: 0,
            rng,
        }
    }

    /// Whether `id` names a service.
    pub fn is_service(id: &str) -> bool {
        ServiceId::from_name(id).is_some()
    }

    /// The reply to a message delivered to service `dest` from `src`, as a body object (with
    /// `in_reply_to`, without `msg_id`); `None` if `dest` is no service or the service does not
    /// answer this request (see the module docs).
    pub fn handle(&mut self, src: &str, dest: &str, body: &str) -> Option<Value> {
        let service = ServiceId::from_name(dest)?;
        let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(body) else {
            return None;
        };
        let in_reply_to = map.remove("msg_id").unwrap_or(Value::Null);
        let req: Request = serde_json::from_value(Value::Object(map)).ok()?;
        let mut res = match (service, &req) {
            (ServiceId::LinTso, Request::Ts) => {
                let ts = self.tso;
                self.tso += 1;
                reply(json!({"type": "ts_ok", "ts": ts}))
            }
            (ServiceId::LinTso, _) | (_, Request::Ts) => return None,
            (ServiceId::LinKv, _) => {
                let (res, next) = self.lin_kv.apply(&req)?;
                if let Some(next) = next {
                    self.lin_kv = next;
                }
                res
            }
            (ServiceId::SeqKv, _) => self.seq_kv.handle(src, &req, &mut self.rng)?,
            (ServiceId::LwwKv, _) => {
                let i = self.rng.random_range(0..self.lww_kv.len());
                self.lww_kv[i].handle(&req)?
            }
        };
        res.insert("in_reply_to".into(), in_reply_to);
        Some(Value::Object(res))
    }

    /// [`Services::handle`] for a delivered packet: the reply packet, from the service back to
    /// the sender.
    pub fn reply_to(&mut self, packet: &Packet) -> Option<Packet> {
        let body = self.handle(&packet.src, &packet.dest, &packet.body)?;
        Some(Packet::from_value(&packet.dest, &packet.src, &body))
    }
}

#[cfg(test)]
mod tests;

//! The client side of each workload: what ops it generates, the request each op sends, the closed
//! schema its reply must match, how a reply or an error becomes the op's completion, and which
//! checker judges the history.
//! Schemas: <https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md>;
//! errors: <https://github.com/jepsen-io/maelstrom/blob/main/doc/protocol.md>.
//!
//! Adding a workload means adding a variant here (or a module per workload once they grow) and its
//! checker in [`crate::checker`].

use crate::history::OpType;
use murmur::wire::describe_code;

pub mod kafka;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::str::FromStr;

pub mod txn;
pub use txn::{TxnKind, TxnOpts};

/// The workloads this runner implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientWorkload {
    Echo,
    UniqueIds,
    Broadcast,
    /// A grow-only set: `add {element}`, `read` → `read_ok {value: [...]}`; set-full.
    GSet,
    /// A grow-only counter: `add {delta}` (never negative), `read` → `read_ok {value}`.
    GCounter,
    /// A counter that also goes down: `add {delta}` with any sign.
    PnCounter,
    /// Maelstrom's default workload: a compare-and-set register per integer key, `read {key}`,
    /// `write {key, value}`, `cas {key, from, to}`; judged linearizable per key.
    LinKv,
    /// Append-only logs per key: `send`, `poll`, `commit_offsets`, `list_committed_offsets`,
    /// client crashes, final catch-up polls ([`kafka`]); judged by [`crate::checker::kafka`].
    Kafka,
    /// Transactions over registers (`txn-rw-register`) or lists (`txn-list-append`), judged by
    /// the Elle-style checker ([`txn`]).
    Txn(TxnKind),
}

impl FromStr for ClientWorkload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "echo" => Ok(ClientWorkload::Echo),
            "unique-ids" => Ok(ClientWorkload::UniqueIds),
            "broadcast" => Ok(ClientWorkload::Broadcast),
            "g-set" => Ok(ClientWorkload::GSet),
            "g-counter" => Ok(ClientWorkload::GCounter),
            "pn-counter" => Ok(ClientWorkload::PnCounter),
            "lin-kv" => Ok(ClientWorkload::LinKv),
            "kafka" => Ok(ClientWorkload::Kafka),
            "txn-rw-register" => Ok(ClientWorkload::Txn(TxnKind::RwRegister)),
            "txn-list-append" => Ok(ClientWorkload::Txn(TxnKind::ListAppend)),
            _ => Err(format!(
                "`{s}` is not a workload (workloads: echo, unique-ids, broadcast, g-set, \
                 g-counter, pn-counter, lin-kv, kafka, txn-rw-register, txn-list-append)"
            )),
        }
    }
}

/// One op to invoke: its `f` and its history value.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSpec {
    pub f: &'static str,
    pub value: Value,
}

/// Why a reply could not be accepted: Maelstrom's `:malformed-rpc-response`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed-rpc-response: {0}")]
pub struct SchemaError(pub String);

/// The outcome of one client RPC, before it becomes a history completion.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A reply body (a JSON object) with the matching `in_reply_to`.
    Body(Map<String, Value>),
    /// No reply within the client timeout.
    Timeout,
}

/// Per-workload op generator state.
#[derive(Debug, Default)]
pub struct Generator {
    next_broadcast: u64,
    next_element: u64,
    /// lin-kv: the node count (`None`: one group of all the workers, half of them readers).
    nodes: Option<usize>,
    /// lin-kv: the next key no group has used yet.
    next_key: u64,
    /// lin-kv: per group of 2n workers, its key and the processes that have used it.
    groups: std::collections::BTreeMap<usize, (u64, std::collections::BTreeSet<u64>)>,
    /// kafka: keys, messages, what has been seen.
    pub kafka: kafka::KafkaGen,
    /// The txn workloads' flags.
    txn_opts: TxnOpts,
    /// The txn workloads' generator, made from `txn_opts` at the first transaction.
    txn: Option<txn::TxnGen>,
}

/// lin-kv retires a key once this many distinct processes have used it (Jepsen's
/// `process-limit 20` in Maelstrom's `workload/lin_kv.clj`).
pub const LIN_KV_PROCESS_LIMIT: usize = 20;

impl Generator {
    /// A generator for a test with `nodes` server nodes (lin-kv groups workers by it).
    pub fn for_nodes(nodes: usize) -> Generator {
        Generator {
            nodes: Some(nodes),
            ..Generator::default()
        }
    }

    /// Sets the txn workloads' flags (before the first op); kafka's generator takes
    /// `--key-count` and `--max-writes-per-key` from them too.
    #[must_use]
    pub fn with_txn(mut self, opts: TxnOpts) -> Generator {
        self.kafka = kafka::KafkaGen::with_limits(opts.key_count, opts.max_writes_per_key);
        self.txn_opts = opts;
        self.txn = None;
        self
    }
}

/// Who the next op is for: worker `thread` of `threads`, currently running `process`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub thread: usize,
    pub threads: usize,
    pub process: u64,
}

impl ClientWorkload {
    pub fn name(self) -> &'static str {
        match self {
            ClientWorkload::Echo => "echo",
            ClientWorkload::UniqueIds => "unique-ids",
            ClientWorkload::Broadcast => "broadcast",
            ClientWorkload::GSet => "g-set",
            ClientWorkload::GCounter => "g-counter",
            ClientWorkload::PnCounter => "pn-counter",
            ClientWorkload::LinKv => "lin-kv",
            ClientWorkload::Kafka => "kafka",
            ClientWorkload::Txn(TxnKind::RwRegister) => "txn-rw-register",
            ClientWorkload::Txn(TxnKind::ListAppend) => "txn-list-append",
        }
    }

    /// Whether the workload runs a final phase (heal, 10 s recovery, one final read per
    /// thread): broadcast, g-set and the counters.
    pub fn has_final_phase(self) -> bool {
        !matches!(
            self,
            ClientWorkload::Echo
                | ClientWorkload::UniqueIds
                | ClientWorkload::LinKv
                | ClientWorkload::Txn(_)
        )
    }

    /// Whether final ops are recorded with `final?` set: g-set's and kafka's final generators
    /// do not mark them (Maelstrom's `g_set.clj`, `kafka.clj`); the others do.
    pub fn marks_final(self) -> bool {
        !matches!(self, ClientWorkload::GSet | ClientWorkload::Kafka)
    }

    /// Whether errors and timeouts follow Maelstrom's `with-errors` rules. g-set and the
    /// counters do without: any error reply or timeout makes the op `info`, with an exception.
    pub fn with_errors(self) -> bool {
        matches!(
            self,
            ClientWorkload::Echo
                | ClientWorkload::UniqueIds
                | ClientWorkload::Broadcast
                | ClientWorkload::LinKv
                | ClientWorkload::Txn(_)
        )
    }

    /// Whether the topology is sent during setup.
    pub fn sends_topology(self) -> bool {
        self == ClientWorkload::Broadcast
    }

    /// Idempotent ops fail (rather than become indeterminate) on timeouts and indefinite errors.
    /// Broadcast's and lin-kv's reads are.
    pub fn idempotent(self, f: &str) -> bool {
        matches!(self, ClientWorkload::Broadcast | ClientWorkload::LinKv) && f == "read"
    }

    /// The client RPC timeout in ms: Maelstrom's 5 s, except lin-kv's
    /// max(10 × mean latency, 1000 ms).
    pub fn client_timeout_ms(self, latency_ms: u64) -> u64 {
        match self {
            ClientWorkload::LinKv => latency_ms.saturating_mul(10).max(1000),
            _ => crate::coordinator::CLIENT_TIMEOUT_MS,
        }
    }

    /// lin-kv's workers come in groups of 2 × node count, one key per group; other workloads
    /// take any concurrency. The error says why.
    pub fn check_concurrency(self, concurrency: usize, nodes: usize) -> Result<(), String> {
        if self == ClientWorkload::LinKv && (nodes == 0 || concurrency % (2 * nodes) != 0) {
            return Err(format!(
                "lin-kv needs --concurrency to be a multiple of 2 x node count ({}), e.g. \
                 --concurrency 2n; got {concurrency} (Maelstrom's generator asserts and aborts)",
                2 * nodes
            ));
        }
        Ok(())
    }

    /// A reusable client keeps its id after an `info` op; others are closed and reopened with a
    /// fresh `c<k>`. unique-ids' and the txn workloads' clients are reusable.
    pub fn reusable_client(self) -> bool {
        matches!(self, ClientWorkload::UniqueIds | ClientWorkload::Txn(_))
    }

    /// The next main-phase op, for worker `slot`.
    pub fn next_op(self, gen: &mut Generator, rng: &mut impl Rng, slot: Slot) -> OpSpec {
        match self {
            ClientWorkload::Echo => OpSpec {
                f: "echo",
                value: json!(format!("Please echo {}", rng.random_range(0..128))),
            },
            ClientWorkload::UniqueIds => OpSpec {
                f: "generate",
                value: Value::Null,
            },
            ClientWorkload::Broadcast => {
                if rng.random_bool(0.5) {
                    let v = gen.next_broadcast;
                    gen.next_broadcast += 1;
                    OpSpec {
                        f: "broadcast",
                        value: json!(v),
                    }
                } else {
                    read_op()
                }
            }
            // The same 50/50 mix as broadcast, elements 0, 1, 2, … in emission order.
            ClientWorkload::GSet => {
                if rng.random_bool(0.5) {
                    let v = gen.next_element;
                    gen.next_element += 1;
                    OpSpec {
                        f: "add",
                        value: json!(v),
                    }
                } else {
                    read_op()
                }
            }
            // 50/50 reads and adds of a delta uniform in −5..=4; g-counter filters out the
            // negative adds and draws again, which leaves ⅔ reads and ⅓ adds of 0..=4.
            ClientWorkload::GCounter | ClientWorkload::PnCounter => loop {
                if rng.random_bool(0.5) {
                    break read_op();
                }
                let delta: i64 = rng.random_range(-5..5);
                if self == ClientWorkload::GCounter && delta < 0 {
                    continue;
                }
                break OpSpec {
                    f: "add",
                    value: json!(delta),
                };
            },
            ClientWorkload::LinKv => lin_kv_op(gen, rng, slot),
            ClientWorkload::Kafka => gen.kafka.next_op(rng),
            ClientWorkload::Txn(kind) => {
                let opts = gen.txn_opts;
                OpSpec {
                    f: "txn",
                    value: gen
                        .txn
                        .get_or_insert_with(|| txn::TxnGen::new(opts))
                        .next_txn(kind, rng),
                }
            }
        }
    }

    /// The final op each client thread performs once, if the workload has a final phase of
    /// one read (kafka's final polls are [`kafka::FinalThread`]).
    pub fn final_op(self) -> Option<OpSpec> {
        (self.has_final_phase() && self != ClientWorkload::Kafka).then(read_op)
    }

    /// Starts an op on a client whose state is `session`: the first request to send, or the
    /// completion if the op needs none (kafka's `crash`, final `assign`s). Every workload but
    /// kafka makes one request per op.
    pub fn begin(self, op: OpSpec, final_: bool, session: &mut Session) -> (Call, Step) {
        if self != ClientWorkload::Kafka {
            let body = self.request(&op);
            return (
                Call {
                    op,
                    final_,
                    stage: None,
                },
                Step::Send(body),
            );
        }
        let next = kafka::begin(&op, final_, &mut session.kafka);
        let mut call = Call {
            op,
            final_,
            stage: None,
        };
        let step = call.take(next);
        (call, step)
    }

    /// The reply to `call`'s last request (or its timeout): the next request, or the op's
    /// completion.
    pub fn advance(self, call: &mut Call, session: &mut Session, reply: &Reply) -> Step {
        match call.stage.take() {
            Some(stage) => {
                let next = kafka::step(&call.op, stage, reply, &mut session.kafka);
                call.take(next)
            }
            None => Step::Done(self.complete(&call.op, reply)),
        }
    }

    /// The request body (without `msg_id`) for an op.
    pub fn request(self, op: &OpSpec) -> Value {
        match (self, op.f) {
            (ClientWorkload::Echo, _) => json!({"type": "echo", "echo": op.value}),
            (ClientWorkload::UniqueIds, _) => json!({"type": "generate"}),
            (ClientWorkload::Broadcast, "broadcast") => {
                json!({"type": "broadcast", "message": op.value})
            }
            (ClientWorkload::GSet, "add") => json!({"type": "add", "element": op.value}),
            (ClientWorkload::GCounter | ClientWorkload::PnCounter, "add") => {
                json!({"type": "add", "delta": op.value})
            }
            (ClientWorkload::Txn(_), _) => json!({"type": "txn", "txn": op.value}),
            (ClientWorkload::LinKv, f) => {
                let key = op.value.get(0).cloned().unwrap_or(Value::Null);
                let arg = op.value.get(1).cloned().unwrap_or(Value::Null);
                match f {
                    "write" => json!({"type": "write", "key": key, "value": arg}),
                    "cas" => json!({
                        "type": "cas",
                        "key": key,
                        "from": arg.get(0).cloned().unwrap_or(Value::Null),
                        "to": arg.get(1).cloned().unwrap_or(Value::Null),
                    }),
                    _ => json!({"type": "read", "key": key}),
                }
            }
            (ClientWorkload::Kafka, _) => match kafka::begin(op, false, &mut Default::default()) {
                kafka::Next::Call(_, body) => body,
                kafka::Next::Done(_) => Value::Null,
            },
            _ => json!({"type": "read"}),
        }
    }

    /// The reply's required type and its fields beyond `type`, `msg_id` and `in_reply_to`.
    fn reply_schema(self, f: &str) -> (&'static str, &'static [(&'static str, FieldKind)]) {
        match (self, f) {
            (ClientWorkload::Echo, _) => ("echo_ok", &[("echo", FieldKind::Any)]),
            (ClientWorkload::UniqueIds, _) => ("generate_ok", &[("id", FieldKind::Any)]),
            (ClientWorkload::Broadcast, "broadcast") => ("broadcast_ok", &[]),
            (ClientWorkload::Broadcast, "topology") => ("topology_ok", &[]),
            (ClientWorkload::Broadcast, _) => ("read_ok", &[("messages", FieldKind::Array)]),
            (ClientWorkload::LinKv, "write") => ("write_ok", &[]),
            (ClientWorkload::LinKv, "cas") => ("cas_ok", &[]),
            (ClientWorkload::LinKv, _) => ("read_ok", &[("value", FieldKind::Any)]),
            (ClientWorkload::Kafka, "send") => ("send_ok", &[("offset", FieldKind::Int)]),
            (ClientWorkload::Kafka, "assign") => {
                ("list_committed_offsets_ok", &[("offsets", FieldKind::Any)])
            }
            (ClientWorkload::Kafka, _) => ("poll_ok", &[("msgs", FieldKind::Any)]),
            (ClientWorkload::Txn(TxnKind::RwRegister), _) => {
                ("txn_ok", &[("txn", FieldKind::Txn(TxnKind::RwRegister))])
            }
            (ClientWorkload::Txn(TxnKind::ListAppend), _) => {
                ("txn_ok", &[("txn", FieldKind::Txn(TxnKind::ListAppend))])
            }
            (_, "add") => ("add_ok", &[]),
            (ClientWorkload::GSet, _) => ("read_ok", &[("value", FieldKind::Array)]),
            (ClientWorkload::GCounter | ClientWorkload::PnCounter, _) => {
                ("read_ok", &[("value", FieldKind::Int)])
            }
        }
    }

    /// Turns an RPC outcome into the completion's (type, value, error, exception), with
    /// Maelstrom's `with-errors` rules (its `client.clj`).
    pub fn complete(self, op: &OpSpec, reply: &Reply) -> Completion {
        if !self.with_errors() {
            if let Some(c) = self.indeterminate(op, reply) {
                return c;
            }
        }
        let body = match reply {
            Reply::Timeout => {
                let kind = if self.idempotent(op.f) {
                    OpType::Fail
                } else {
                    OpType::Info
                };
                return Completion {
                    kind,
                    value: op.value.clone(),
                    error: Some(json!("net-timeout")),
                    exception: None,
                };
            }
            Reply::Body(b) => b,
        };
        if body.get("type").and_then(Value::as_str) == Some("error") {
            let code = body.get("code").and_then(Value::as_u64).unwrap_or(u64::MAX);
            let (name, definite) = describe_code(code);
            let kind = if definite || self.idempotent(op.f) {
                OpType::Fail
            } else {
                OpType::Info
            };
            let text = body.get("text").cloned().unwrap_or(Value::Null);
            return Completion {
                kind,
                value: op.value.clone(),
                error: Some(json!([name, text])),
                exception: None,
            };
        }
        if let Err(e) = self.check_schema(op.f, body) {
            return Completion {
                kind: OpType::Info,
                value: op.value.clone(),
                error: None,
                exception: Some(e.to_string()),
            };
        }
        let value = match (self, op.f) {
            (ClientWorkload::Echo, _) => Value::Object(body.clone()),
            (ClientWorkload::UniqueIds, _) => body.get("id").cloned().unwrap_or(Value::Null),
            (ClientWorkload::Broadcast, "read") => {
                body.get("messages").cloned().unwrap_or(Value::Null)
            }
            (ClientWorkload::GSet, "read") => body.get("value").cloned().unwrap_or(Value::Null),
            // Coerced to a whole number, as Maelstrom's `long` does (the schema let only
            // integral values through).
            (ClientWorkload::GCounter | ClientWorkload::PnCounter, "read") => body
                .get("value")
                .and_then(as_int)
                .map_or(Value::Null, |v| json!(v)),
            // `[key, value read]`, as Jepsen's independent ops carry it.
            (ClientWorkload::Txn(_), _) => body.get("txn").cloned().unwrap_or(Value::Null),
            (ClientWorkload::LinKv, "read") => json!([
                op.value.get(0).cloned().unwrap_or(Value::Null),
                body.get("value").cloned().unwrap_or(Value::Null)
            ]),
            _ => op.value.clone(),
        };
        Completion {
            kind: OpType::Ok,
            value,
            error: None,
            exception: None,
        }
    }

    /// Without `with-errors`, a timeout or an error reply is an exception in the client: the op
    /// is `info`, with Jepsen's `indeterminate: …` error and the exception. `None` for a reply
    /// body that is not an error.
    fn indeterminate(self, op: &OpSpec, reply: &Reply) -> Option<Completion> {
        match reply {
            Reply::Body(b) if b.get("type").and_then(Value::as_str) != Some("error") => None,
            _ => Some(indeterminate(op, reply)),
        }
    }

    /// Checks a reply against Maelstrom's closed response schema for `f`: the listed fields, an
    /// optional integer `msg_id`, a required integer `in_reply_to`, and nothing else.
    pub fn check_schema(self, f: &str, body: &Map<String, Value>) -> Result<(), SchemaError> {
        let (want_type, fields) = self.reply_schema(f);
        check_closed(body, want_type, fields)
    }
}

/// Without `with-errors`, a timeout or an error reply is an exception in the client: the op is
/// `info`, with Jepsen's `indeterminate: …` error and the exception.
pub(crate) fn indeterminate(op: &OpSpec, reply: &Reply) -> Completion {
    let what = match reply {
        Reply::Timeout => "client timed out waiting for a reply (net-timeout)".to_string(),
        Reply::Body(b) if b.get("type").and_then(Value::as_str) == Some("error") => {
            let code = b.get("code").and_then(Value::as_u64).unwrap_or(u64::MAX);
            let (name, _) = describe_code(code);
            let text = b.get("text").map_or(String::new(), |t| format!(": {t}"));
            format!("rpc-error {name} (code {code}){text}")
        }
        Reply::Body(_) => "reply".to_string(),
    };
    Completion {
        kind: OpType::Info,
        value: op.value.clone(),
        error: Some(json!(format!("indeterminate: {what}"))),
        exception: Some(what),
    }
}

/// What a field of a reply must be.
#[derive(Debug, Clone, Copy)]
enum FieldKind {
    Any,
    Array,
    /// A whole number: an integer, or a float with no fractional part (`5.0`).
    Int,
    /// A completed transaction ([`txn::check_txn_field`]).
    Txn(TxnKind),
}

/// A JSON number with an integral value, as an `i64`.
fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        let f = v.as_f64()?;
        (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
    })
}

/// lin-kv's generator (Maelstrom's `workload/lin_kv.clj` on Jepsen's independent concurrent
/// generator): workers form groups of 2n (n = node count), each group on its own key, keys
/// 0, 1, 2, … handed out as groups start or move on. Workers whose index is below n only read
/// (Jepsen's `reserve` does not re-base indices per group, so later groups never read); the others
/// write or cas, 1:2, values 0..=4. A group moves to a fresh key once
/// [`LIN_KV_PROCESS_LIMIT`] distinct processes have used its key and another one would.
/// History values are `[key, null]`, `[key, v]` and `[key, [from, to]]`.
fn lin_kv_op(gen: &mut Generator, rng: &mut impl Rng, slot: Slot) -> OpSpec {
    let n = gen.nodes.unwrap_or(slot.threads.div_ceil(2)).max(1);
    let group = slot.thread / (2 * n);
    let next_key = &mut gen.next_key;
    let (key, procs) = gen.groups.entry(group).or_insert_with(|| {
        let k = *next_key;
        *next_key += 1;
        (k, Default::default())
    });
    if !procs.contains(&slot.process) && procs.len() >= LIN_KV_PROCESS_LIMIT {
        *key = *next_key;
        *next_key += 1;
        procs.clear();
    }
    procs.insert(slot.process);
    let key = *key;
    if slot.thread < n {
        return OpSpec {
            f: "read",
            value: json!([key, null]),
        };
    }
    if rng.random_range(0..3) == 0 {
        OpSpec {
            f: "write",
            value: json!([key, rng.random_range(0..5)]),
        }
    } else {
        let from: u64 = rng.random_range(0..5);
        let to: u64 = rng.random_range(0..5);
        OpSpec {
            f: "cas",
            value: json!([key, [from, to]]),
        }
    }
}

fn read_op() -> OpSpec {
    OpSpec {
        f: "read",
        value: Value::Null,
    }
}

fn check_closed(
    body: &Map<String, Value>,
    want_type: &str,
    fields: &[(&str, FieldKind)],
) -> Result<(), SchemaError> {
    match body.get("type") {
        Some(Value::String(t)) if t == want_type => {}
        other => {
            return Err(SchemaError(format!(
                "expected type {want_type:?}, got {}",
                other.map_or("nothing".into(), Value::to_string)
            )))
        }
    }
    match body.get("in_reply_to") {
        Some(v) if v.is_u64() || v.is_i64() => {}
        _ => return Err(SchemaError("in_reply_to must be an integer".into())),
    }
    if let Some(v) = body.get("msg_id") {
        if !(v.is_u64() || v.is_i64()) {
            return Err(SchemaError("msg_id must be an integer".into()));
        }
    }
    for (name, kind) in fields {
        match (body.get(*name), kind) {
            (None, _) => return Err(SchemaError(format!("missing required key {name:?}"))),
            (Some(v), FieldKind::Array) if !v.is_array() => {
                return Err(SchemaError(format!("{name:?} must be an array, got {v}")))
            }
            (Some(v), FieldKind::Int) if as_int(v).is_none() => {
                return Err(SchemaError(format!("{name:?} must be an integer, got {v}")))
            }
            (Some(v), FieldKind::Txn(kind)) => {
                txn::check_txn_field(*kind, v).map_err(SchemaError)?
            }
            _ => {}
        }
    }
    let extra: Vec<&String> = body
        .keys()
        .filter(|k| {
            !matches!(k.as_str(), "type" | "msg_id" | "in_reply_to")
                && !fields.iter().any(|(n, _)| n == k)
        })
        .collect();
    if !extra.is_empty() {
        return Err(SchemaError(format!(
            "disallowed key(s) {extra:?} in {want_type}"
        )));
    }
    Ok(())
}

/// Checks the envelope of a reply and that it has exactly the fields `fields` (their contents
/// are the caller's to check).
pub(crate) fn check_envelope(
    body: &Map<String, Value>,
    want_type: &str,
    fields: &[&str],
) -> Result<(), SchemaError> {
    let fields: Vec<(&str, FieldKind)> = fields.iter().map(|f| (*f, FieldKind::Any)).collect();
    check_closed(body, want_type, &fields)
}

/// Checks a `topology_ok` during setup (a failure aborts the test).
pub fn check_topology_ok(body: &Map<String, Value>) -> Result<(), SchemaError> {
    check_closed(body, "topology_ok", &[])
}

/// A client's state between ops: kafka's positions (other workloads keep none). A fresh client
/// starts with a fresh session.
#[derive(Debug, Default, Clone)]
pub struct Session {
    kafka: kafka::Session,
}

/// An op in flight on a client ([`ClientWorkload::begin`]).
#[derive(Debug, Clone)]
pub struct Call {
    pub op: OpSpec,
    /// A final-phase op.
    pub final_: bool,
    /// kafka: the request in flight.
    stage: Option<kafka::Stage>,
}

impl Call {
    fn take(&mut self, next: kafka::Next) -> Step {
        match next {
            kafka::Next::Call(stage, body) => {
                self.stage = Some(stage);
                Step::Send(body)
            }
            kafka::Next::Done(c) => Step::Done(c),
        }
    }
}

/// What a client does next with its op.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send this request body (without `msg_id`) and wait for its reply.
    Send(Value),
    /// The op is complete.
    Done(Completion),
}

/// The completion of an op, ready to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub kind: OpType,
    pub value: Value,
    pub error: Option<Value>,
    pub exception: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn op(f: &'static str, value: Value) -> OpSpec {
        OpSpec { f, value }
    }

    const SLOT: Slot = Slot {
        thread: 0,
        threads: 1,
        process: 0,
    };

    #[test]
    fn closed_schemas_reject_extra_missing_and_mistyped_keys() {
        let w = ClientWorkload::Broadcast;
        assert!(w
            .check_schema(
                "broadcast",
                &obj(json!({"type":"broadcast_ok","in_reply_to":1}))
            )
            .is_ok());
        assert!(w
            .check_schema(
                "broadcast",
                &obj(json!({"type":"broadcast_ok","in_reply_to":1,"msg_id":9}))
            )
            .is_ok());
        for bad in [
            json!({"type":"broadcast_ok","in_reply_to":1,"message":5}),
            json!({"type":"broadcast_ok"}),
            json!({"type":"broadcast_ok","in_reply_to":"1"}),
            json!({"type":"broadcast_ok","in_reply_to":1.5}),
            json!({"type":"read_ok","in_reply_to":1}),
            json!({"type":"broadcast_ok","in_reply_to":1,"msg_id":"x"}),
        ] {
            assert!(
                w.check_schema("broadcast", &obj(bad.clone())).is_err(),
                "{bad}"
            );
        }
        assert!(w
            .check_schema(
                "read",
                &obj(json!({"type":"read_ok","in_reply_to":1,"messages":[1,"a",{}]}))
            )
            .is_ok());
        assert!(w
            .check_schema(
                "read",
                &obj(json!({"type":"read_ok","in_reply_to":1,"messages":{}}))
            )
            .is_err());
        assert!(w
            .check_schema("read", &obj(json!({"type":"read_ok","in_reply_to":1})))
            .is_err());
        assert!(ClientWorkload::Echo
            .check_schema(
                "echo",
                &obj(json!({"type":"echo_ok","echo":"x","in_reply_to":2}))
            )
            .is_ok());
        assert!(ClientWorkload::Echo
            .check_schema(
                "echo",
                &obj(json!({"type":"echo_ok","echo":"x","in_reply_to":2,"n":1}))
            )
            .is_err());
        assert!(check_topology_ok(&obj(
            json!({"type":"topology_ok","in_reply_to":1,"extra":0})
        ))
        .is_err());
    }

    #[test]
    fn with_errors_outcomes() {
        let w = ClientWorkload::Broadcast;
        let b = op("broadcast", json!(3));
        let r = op("read", Value::Null);
        assert_eq!(w.complete(&b, &Reply::Timeout).kind, OpType::Info);
        assert_eq!(w.complete(&r, &Reply::Timeout).kind, OpType::Fail);
        let definite = Reply::Body(obj(
            json!({"type":"error","code":11,"text":"busy","in_reply_to":1}),
        ));
        let c = w.complete(&b, &definite);
        assert_eq!(
            (c.kind, c.error),
            (
                OpType::Fail,
                Some(json!(["temporarily-unavailable", "busy"]))
            )
        );
        let indefinite = Reply::Body(obj(json!({"type":"error","code":13,"in_reply_to":1})));
        assert_eq!(w.complete(&b, &indefinite).kind, OpType::Info);
        assert_eq!(w.complete(&r, &indefinite).kind, OpType::Fail);
        let unknown = Reply::Body(obj(json!({"type":"error","code":1000,"in_reply_to":1})));
        assert_eq!(
            w.complete(&b, &unknown).error,
            Some(json!(["unknown", null]))
        );
        let extra = Reply::Body(obj(
            json!({"type":"broadcast_ok","message":3,"in_reply_to":1}),
        ));
        let c = w.complete(&b, &extra);
        assert_eq!(c.kind, OpType::Info);
        assert!(c.exception.unwrap().contains("disallowed"));
        let ok = Reply::Body(obj(
            json!({"type":"read_ok","messages":[1,2],"in_reply_to":1}),
        ));
        assert_eq!(w.complete(&r, &ok).value, json!([1, 2]));
    }

    #[test]
    fn generators_follow_the_spec() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut g = Generator::default();
        let ops: Vec<OpSpec> = (0..1000)
            .map(|_| ClientWorkload::Broadcast.next_op(&mut g, &mut rng, SLOT))
            .collect();
        let broadcasts: Vec<u64> = ops
            .iter()
            .filter(|o| o.f == "broadcast")
            .map(|o| o.value.as_u64().unwrap())
            .collect();
        assert!(
            (400..600).contains(&broadcasts.len()),
            "about half are broadcasts"
        );
        assert_eq!(
            broadcasts,
            (0..broadcasts.len() as u64).collect::<Vec<_>>(),
            "values 0, 1, 2, ... in order"
        );
        let e = ClientWorkload::Echo.next_op(&mut g, &mut rng, SLOT);
        assert!(e.value.as_str().unwrap().starts_with("Please echo "));
        assert_eq!(
            "unique-ids".parse::<ClientWorkload>(),
            Ok(ClientWorkload::UniqueIds)
        );
        assert_eq!("kafka".parse::<ClientWorkload>(), Ok(ClientWorkload::Kafka));
        assert_eq!(
            "txn-rw-register".parse::<ClientWorkload>(),
            Ok(ClientWorkload::Txn(TxnKind::RwRegister))
        );
        assert!("nope"
            .parse::<ClientWorkload>()
            .unwrap_err()
            .contains("not a workload"));
    }

    #[test]
    fn g_set_and_counter_generators() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut g = Generator::default();
        let ops: Vec<OpSpec> = (0..3000)
            .map(|_| ClientWorkload::GCounter.next_op(&mut g, &mut rng, SLOT))
            .collect();
        let adds: Vec<i64> = ops
            .iter()
            .filter(|o| o.f == "add")
            .map(|o| o.value.as_i64().unwrap())
            .collect();
        assert!(
            adds.iter().all(|d| (0..=4).contains(d)),
            "no negative deltas"
        );
        assert!(
            (850..1150).contains(&adds.len()),
            "a third are adds: {}",
            adds.len()
        );
        let ops: Vec<OpSpec> = (0..2000)
            .map(|_| ClientWorkload::PnCounter.next_op(&mut g, &mut rng, SLOT))
            .collect();
        let deltas: std::collections::BTreeSet<i64> = ops
            .iter()
            .filter(|o| o.f == "add")
            .map(|o| o.value.as_i64().unwrap())
            .collect();
        assert_eq!(deltas, (-5..=4).collect(), "deltas uniform in -5..=4");
        let elements: Vec<u64> = (0..1000)
            .map(|_| ClientWorkload::GSet.next_op(&mut g, &mut rng, SLOT))
            .filter(|o| o.f == "add")
            .map(|o| o.value.as_u64().unwrap())
            .collect();
        assert_eq!(elements, (0..elements.len() as u64).collect::<Vec<_>>());
        for w in [
            ClientWorkload::GSet,
            ClientWorkload::GCounter,
            ClientWorkload::PnCounter,
        ] {
            assert_eq!(w.name().parse::<ClientWorkload>(), Ok(w));
            assert!(w.has_final_phase() && !w.sends_topology() && !w.with_errors());
            assert_eq!(w.final_op(), Some(op("read", Value::Null)));
        }
        assert!(!ClientWorkload::GSet.marks_final() && ClientWorkload::GCounter.marks_final());
    }

    #[test]
    fn g_set_and_counter_requests_and_schemas() {
        let (g, c) = (ClientWorkload::GSet, ClientWorkload::PnCounter);
        assert_eq!(
            g.request(&op("add", json!(3))),
            json!({"type":"add","element":3})
        );
        assert_eq!(
            c.request(&op("add", json!(-2))),
            json!({"type":"add","delta":-2})
        );
        assert_eq!(c.request(&op("read", Value::Null)), json!({"type":"read"}));
        let ok = |w: ClientWorkload, f, b: Value| w.check_schema(f, &obj(b)).is_ok();
        assert!(ok(g, "add", json!({"type":"add_ok","in_reply_to":1})));
        assert!(!ok(
            g,
            "add",
            json!({"type":"add_ok","in_reply_to":1,"element":3})
        ));
        assert!(ok(
            g,
            "read",
            json!({"type":"read_ok","value":[1,"x"],"in_reply_to":1})
        ));
        assert!(!ok(
            g,
            "read",
            json!({"type":"read_ok","elements":[1],"in_reply_to":1})
        ));
        assert!(!ok(
            g,
            "read",
            json!({"type":"read_ok","value":7,"in_reply_to":1})
        ));
        assert!(ok(
            c,
            "read",
            json!({"type":"read_ok","value":7,"in_reply_to":1})
        ));
        assert!(ok(
            c,
            "read",
            json!({"type":"read_ok","value":-7.0,"in_reply_to":1})
        ));
        for bad in [json!(7.5), json!("7"), json!([7]), Value::Null] {
            assert!(!ok(
                c,
                "read",
                json!({"type":"read_ok","value":bad,"in_reply_to":1})
            ));
        }
        assert!(!ok(
            c,
            "read",
            json!({"type":"read_ok","value":1,"in_reply_to":1,"x":0})
        ));
        // Completions: the read's value, coerced to a whole number.
        let r = c.complete(
            &op("read", Value::Null),
            &Reply::Body(obj(json!({"type":"read_ok","value":5.0,"in_reply_to":1}))),
        );
        assert_eq!((r.kind, r.value), (OpType::Ok, json!(5)));
        let r = g.complete(
            &op("read", Value::Null),
            &Reply::Body(obj(json!({"type":"read_ok","value":[2,1],"in_reply_to":1}))),
        );
        assert_eq!((r.kind, r.value), (OpType::Ok, json!([2, 1])));
        let r = c.complete(
            &op("add", json!(3)),
            &Reply::Body(obj(json!({"type":"add_ok","in_reply_to":1}))),
        );
        assert_eq!((r.kind, r.value), (OpType::Ok, json!(3)));
    }

    #[test]
    fn without_with_errors_every_error_and_timeout_is_info() {
        for w in [ClientWorkload::GSet, ClientWorkload::GCounter] {
            for f in ["add", "read"] {
                let o = op(f, json!(1));
                let t = w.complete(&o, &Reply::Timeout);
                assert_eq!(t.kind, OpType::Info, "{f}: even reads");
                assert!(t.exception.is_some());
                assert!(t
                    .error
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .starts_with("indeterminate: "));
                // A definite error too.
                let e = w.complete(
                    &o,
                    &Reply::Body(obj(
                        json!({"type":"error","code":20,"text":"nope","in_reply_to":1}),
                    )),
                );
                assert_eq!((e.kind, e.value), (OpType::Info, json!(1)));
                assert!(e.exception.unwrap().contains("key-does-not-exist"));
            }
        }
    }

    #[test]
    fn lin_kv_generator_groups_keys_and_retires_them() {
        let w = ClientWorkload::LinKv;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // 2 nodes, concurrency 8: two groups of 4; threads 0 and 1 read, the rest write/cas.
        let mut g = Generator::for_nodes(2);
        let slot = |thread, process| Slot {
            thread,
            threads: 8,
            process,
        };
        let mut fs = std::collections::BTreeMap::new();
        for i in 0..4000u64 {
            let t = (i % 8) as usize;
            let o = w.next_op(&mut g, &mut rng, slot(t, t as u64));
            let key = o.value[0].as_u64().unwrap();
            assert_eq!(key, (t / 4) as u64, "group {} keeps its key", t / 4);
            match o.f {
                "read" => {
                    assert!(t < 2, "only the first n threads read");
                    assert_eq!(o.value[1], Value::Null);
                }
                "write" => assert!((0..5).contains(&o.value[1].as_u64().unwrap())),
                "cas" => {
                    let [from, to] = [0, 1].map(|k| o.value[1][k].as_u64().unwrap());
                    assert!(from < 5 && to < 5);
                }
                f => panic!("unexpected {f}"),
            }
            *fs.entry(o.f).or_insert(0) += 1;
        }
        assert_eq!(fs["read"], 1000);
        assert!(
            (1800..2200).contains(&fs["cas"]),
            "cas:write about 2:1: {fs:?}"
        );
        // A group moves to a fresh key once 20 processes have used its key.
        let mut g = Generator::for_nodes(2);
        let o = w.next_op(&mut g, &mut rng, slot(0, 0));
        assert_eq!(o.value[0], json!(0), "the first group to start takes key 0");
        for p in 0..LIN_KV_PROCESS_LIMIT as u64 {
            let o = w.next_op(&mut g, &mut rng, slot(4, 4 + 8 * p));
            assert_eq!(o.value[0], json!(1));
        }
        let o = w.next_op(&mut g, &mut rng, slot(5, 1000));
        assert_eq!(o.value[0], json!(2), "the 21st process starts key 2");
        let o = w.next_op(&mut g, &mut rng, slot(0, 0));
        assert_eq!(o.value[0], json!(0), "the other group keeps key 0");
        assert_eq!(w.check_concurrency(8, 2), Ok(()));
        assert!(w.check_concurrency(2, 2).unwrap_err().contains("2n"));
        assert_eq!(ClientWorkload::Echo.check_concurrency(1, 2), Ok(()));
        assert_eq!(w.client_timeout_ms(0), 1000);
        assert_eq!(w.client_timeout_ms(300), 3000);
        assert_eq!(ClientWorkload::Echo.client_timeout_ms(300), 5000);
        assert!(!w.has_final_phase() && w.final_op().is_none() && !w.reusable_client());
        assert_eq!(w.name().parse::<ClientWorkload>(), Ok(w));
    }

    #[test]
    fn lin_kv_requests_schemas_and_completions() {
        let w = ClientWorkload::LinKv;
        let (r, wr, c) = (
            op("read", json!([3, null])),
            op("write", json!([3, 4])),
            op("cas", json!([3, [4, 1]])),
        );
        assert_eq!(w.request(&r), json!({"type":"read","key":3}));
        assert_eq!(w.request(&wr), json!({"type":"write","key":3,"value":4}));
        assert_eq!(w.request(&c), json!({"type":"cas","key":3,"from":4,"to":1}));
        let reply = |b: Value| Reply::Body(obj(b));
        let done = w.complete(
            &r,
            &reply(json!({"type":"read_ok","value":4,"in_reply_to":1})),
        );
        assert_eq!((done.kind, done.value), (OpType::Ok, json!([3, 4])));
        let done = w.complete(&wr, &reply(json!({"type":"write_ok","in_reply_to":1})));
        assert_eq!((done.kind, done.value), (OpType::Ok, json!([3, 4])));
        let done = w.complete(
            &c,
            &reply(json!({"type":"cas_ok","in_reply_to":1,"msg_id":2})),
        );
        assert_eq!(done.kind, OpType::Ok);
        // Closed schemas.
        for (o, bad) in [
            (&r, json!({"type":"read_ok","in_reply_to":1})),
            (
                &r,
                json!({"type":"read_ok","value":1,"key":3,"in_reply_to":1}),
            ),
            (&wr, json!({"type":"write_ok","value":4,"in_reply_to":1})),
            (&c, json!({"type":"write_ok","in_reply_to":1})),
        ] {
            assert_eq!(w.complete(o, &reply(bad)).kind, OpType::Info);
        }
        // with-errors: reads are idempotent; 20 and 22 are definite.
        assert_eq!(w.complete(&r, &Reply::Timeout).kind, OpType::Fail);
        assert_eq!(w.complete(&wr, &Reply::Timeout).kind, OpType::Info);
        assert_eq!(w.complete(&c, &Reply::Timeout).kind, OpType::Info);
        let err = |code| reply(json!({"type":"error","code":code,"in_reply_to":1}));
        let done = w.complete(&c, &err(22));
        assert_eq!(
            (done.kind, done.error),
            (OpType::Fail, Some(json!(["precondition-failed", null])))
        );
        assert_eq!(w.complete(&r, &err(20)).kind, OpType::Fail);
        assert_eq!(w.complete(&c, &err(20)).kind, OpType::Fail);
        assert_eq!(w.complete(&c, &err(13)).kind, OpType::Info);
        assert_eq!(w.complete(&r, &err(13)).kind, OpType::Fail);
        assert_eq!(w.complete(&wr, &err(1000)).kind, OpType::Info);
    }
}

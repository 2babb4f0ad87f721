//! The recorded test: client and nemesis operations (the history) and the network journal.
//!
//! Both are plain data so every checker is a pure function over them, and both
//! are written to the run folder as JSON lines so a run can be re-analysed later.
//!
//! An op's value is JSON, except the result of a large set read, which the drivers record as an
//! [`IntList`] ([`OpValue`]): broadcast and g-set reads return the whole set, so held as JSON they
//! would make the runner's memory grow with the square of the run's length.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::sync::Arc;

mod int_list;
pub use int_list::{ChunkPool, IntList};

/// Jepsen's op types: an invocation, then exactly one completion (`ok`, `fail` or `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// Who performed an op: a client worker's *process* number (which changes after an `info` op)
/// or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    Client(u64),
    #[serde(with = "nemesis_tag")]
    Nemesis,
}

mod nemesis_tag {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("nemesis")
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        let s = String::deserialize(d)?;
        if s == "nemesis" {
            Ok(())
        } else {
            Err(serde::de::Error::custom("expected \"nemesis\""))
        }
    }
}

/// One history entry, with the fields of Jepsen's `history.edn`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, 0-based; checkers order events by it.
    pub index: usize,
    /// Nanoseconds since the test started.
    pub time: u64,
    #[serde(rename = "type")]
    pub kind: OpType,
    pub process: Process,
    /// The operation: `broadcast`, `read`, `echo`, `generate`, `start-partition`, `kill`, ...
    pub f: String,
    pub value: OpValue,
    /// For failed or indeterminate completions: `["timeout" | code name, text]` or `"net-timeout"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Set when the client's RPC itself broke (e.g. a reply that violates the closed schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// A final-phase read.
    #[serde(rename = "final?", default, skip_serializing_if = "std::ops::Not::not")]
    pub final_: bool,
}

impl Op {
    /// An op with no error, exception or final mark (what checkers' tests and tools build).
    pub fn new(
        index: usize,
        time: u64,
        kind: OpType,
        process: Process,
        f: &str,
        value: impl Into<OpValue>,
    ) -> Op {
        Op {
            index,
            time,
            kind,
            process,
            f: f.into(),
            value: value.into(),
            error: None,
            exception: None,
            final_: false,
        }
    }

    pub fn is_client(&self) -> bool {
        matches!(self.process, Process::Client(_))
    }
}

/// Reads returning at least this many elements are held as an [`IntList`] when recorded: below
/// it a `Value` array costs little, and lin-kv's `[key, value]` pairs stay plain JSON.
pub const MIN_INT_LIST: usize = 16;

/// An op's value: JSON, or the result of a set read held compactly ([`IntList`]), which
/// serialises, prints and compares exactly as the JSON array it stands for.
///
/// Set reads return the whole set each time, so their results add up to O(ops²) elements over
/// a run; [`OpValue::recorded`] is where the drivers store them compactly. Checkers of sets match on
/// the variants or call [`OpValue::elements`]; everything else can take [`OpValue::to_json`],
/// which borrows for JSON values.
#[derive(Clone)]
pub enum OpValue {
    Json(Value),
    Ints(IntList),
}

impl OpValue {
    /// How a driver records `value` as `f`'s completion: the result of an `ok` `read` that is an
    /// array of at least [`MIN_INT_LIST`] non-negative integers becomes an [`IntList`] (its chunks
    /// shared through `pool`), anything else stays JSON.
    pub fn recorded(kind: OpType, f: &str, value: Value, pool: &mut ChunkPool) -> Self {
        if kind == OpType::Ok
            && f == "read"
            && value.as_array().is_some_and(|a| a.len() >= MIN_INT_LIST)
        {
            if let Some(list) = IntList::from_json(&value, pool) {
                return OpValue::Ints(list);
            }
        }
        OpValue::Json(value)
    }

    /// The value as JSON: borrowed when it is JSON, built when it is an [`IntList`].
    pub fn to_json(&self) -> Cow<'_, Value> {
        match self {
            OpValue::Json(v) => Cow::Borrowed(v),
            OpValue::Ints(l) => Cow::Owned(l.to_json()),
        }
    }

    /// The JSON value, unless this is an [`IntList`].
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            OpValue::Json(v) => Some(v),
            OpValue::Ints(_) => None,
        }
    }

    /// Whether the value is a list (a JSON array or an [`IntList`]).
    pub fn is_list(&self) -> bool {
        matches!(self, OpValue::Ints(_) | OpValue::Json(Value::Array(_)))
    }

    /// Calls `each` with every element of a list, in order, as JSON (numbers only cost a
    /// copy; strings and the like in JSON arrays are cloned). `false`, without calling it, if
    /// the value is not a list.
    pub fn elements(&self, mut each: impl FnMut(Cow<'_, Value>)) -> bool {
        match self {
            OpValue::Ints(l) => l.iter().for_each(|u| each(Cow::Owned(Value::from(u)))),
            OpValue::Json(Value::Array(items)) => items.iter().for_each(|v| each(Cow::Borrowed(v))),
            OpValue::Json(_) => return false,
        }
        true
    }
}

impl From<Value> for OpValue {
    fn from(v: Value) -> Self {
        OpValue::Json(v)
    }
}

/// Equality of the JSON values they stand for, whatever their representation.
impl PartialEq for OpValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (OpValue::Json(a), OpValue::Json(b)) => a == b,
            (OpValue::Ints(a), OpValue::Ints(b)) => a.len() == b.len() && a.iter().eq(b.iter()),
            (OpValue::Ints(l), OpValue::Json(v)) | (OpValue::Json(v), OpValue::Ints(l)) => {
                l.eq_json(v)
            }
        }
    }
}

impl PartialEq<Value> for OpValue {
    fn eq(&self, other: &Value) -> bool {
        match self {
            OpValue::Json(v) => v == other,
            OpValue::Ints(l) => l.eq_json(other),
        }
    }
}

impl fmt::Debug for OpValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpValue::Json(v) => fmt::Debug::fmt(v, f),
            OpValue::Ints(l) => fmt::Debug::fmt(l, f),
        }
    }
}

/// Compact JSON text, as `Value`'s `Display` (history.txt's value column).
impl fmt::Display for OpValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpValue::Json(v) => fmt::Display::fmt(v, f),
            OpValue::Ints(l) => fmt::Display::fmt(l, f),
        }
    }
}

impl Serialize for OpValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OpValue::Json(v) => v.serialize(s),
            OpValue::Ints(l) => l.serialize(s),
        }
    }
}

/// Always JSON: compaction is the recording drivers' choice ([`OpValue::recorded`]).
impl<'de> Deserialize<'de> for OpValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(OpValue::Json)
    }
}

/// Whether a journal event records a message being sent or delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalKind {
    Send,
    Recv,
}

/// One network journal event (as in Maelstrom's `net/journal.clj`): every message accepted by the
/// network is journaled as `send` before any partition check, and as `recv` when it is delivered.
///
/// In `messages.jsonl` (written by [`crate::results::RunDir::write_journal`]) a `send` line carries
/// the message's `body` as a JSON object when bodies are journaled (the default; `--no-journal-bodies`
/// turns them off); a `recv` line never does, since it names the same message by `id` and the
/// body would only double the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEvent {
    pub kind: JournalKind,
    /// Nanoseconds since the test started.
    pub time: u64,
    /// The network's global message id (the `id` on stdin lines).
    pub id: u64,
    pub src: String,
    pub dest: String,
    /// The body's `type`, or empty when it has none; used for the per-type breakdown.
    pub body_type: String,
    /// The body's JSON text, on `send` events when the network journals bodies (shared, not
    /// copied, between clones). Serialised raw by the journal writer, hence skipped here.
    #[serde(skip)]
    pub body: Option<Arc<str>>,
}

//! The recorded test: client and nemesis operations (the history) and the network journal.
//!
//! Both are plain data so every checker is a pure function over them, and both
//! are written to the run folder as JSON lines so a run can be re-analysed later.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

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
    pub value: Value,
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
    pub fn is_client(&self) -> bool {
        matches!(self.process, Process::Client(_))
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

//! The Maelstrom wire format: one definition, shared by the node and the runner.
//!
//! A message is one JSON object per line: `{"id"?, "src", "dest", "body"}` (Maelstrom's
//! [protocol]). Maelstrom adds a global integer `id` to every line it writes to a node's stdin;
//! nodes may omit it. The body is tagged by `type`; `msg_id` and `in_reply_to` are the RPC
//! correlation fields.
//!
//! Replies must carry exactly the fields Maelstrom's closed schemas allow (the [workloads] page
//! lists them): the workload's own fields, an optional `msg_id` and the required `in_reply_to`. That is why [`Body`] skips `None`
//! fields when serialising, and why every payload variant lists its fields explicitly: an extra key
//! makes the real Maelstrom reject the reply.
//!
//! [protocol]: https://github.com/jepsen-io/maelstrom/blob/main/doc/protocol.md
//! [workloads]: https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md

use serde::{Deserialize, Serialize};
use std::fmt;

/// One protocol line. `B` is the body type: a typed [`Body`] for the node, or
/// `serde_json::Value` where the runner must inspect raw keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<B> {
    /// Maelstrom's global message id, present on lines it writes to stdin; never needed by a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub src: String,
    pub dest: String,
    pub body: B,
}

/// A message body: the RPC correlation fields plus a payload tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body<P> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<u64>,
    #[serde(flatten)]
    pub payload: P,
}

impl<P> Body<P> {
    pub fn new(payload: P) -> Self {
        Body {
            msg_id: None,
            in_reply_to: None,
            payload,
        }
    }
}

/// The payloads every workload shares: the `init` handshake and error replies.
///
/// A node parses stdin as this first while it waits for `init`; workloads embed
/// [`ErrorBody`] as an `Error` variant of their own payload enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Common {
    Init {
        node_id: String,
        node_ids: Vec<String>,
    },
    InitOk,
    Error(ErrorBody),
}

/// `{"type":"error","code":C,"text":"..."}`. `text` is optional on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        ErrorBody {
            code: code as u32,
            text: Some(text.into()),
        }
    }
}

/// Maelstrom's error codes ([protocol](https://github.com/jepsen-io/maelstrom/blob/main/doc/protocol.md#errors)). Codes 0–999 are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    Timeout = 0,
    NodeNotFound = 1,
    NotSupported = 10,
    TemporarilyUnavailable = 11,
    MalformedRequest = 12,
    Crash = 13,
    Abort = 14,
    KeyDoesNotExist = 20,
    KeyAlreadyExists = 21,
    PreconditionFailed = 22,
    TxnConflict = 30,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Timeout,
        ErrorCode::NodeNotFound,
        ErrorCode::NotSupported,
        ErrorCode::TemporarilyUnavailable,
        ErrorCode::MalformedRequest,
        ErrorCode::Crash,
        ErrorCode::Abort,
        ErrorCode::KeyDoesNotExist,
        ErrorCode::KeyAlreadyExists,
        ErrorCode::PreconditionFailed,
        ErrorCode::TxnConflict,
    ];

    pub fn from_code(code: u32) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| *c as u32 == code)
    }

    /// Maelstrom's keyword for the code, e.g. `temporarily-unavailable`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Timeout => "timeout",
            ErrorCode::NodeNotFound => "node-not-found",
            ErrorCode::NotSupported => "not-supported",
            ErrorCode::TemporarilyUnavailable => "temporarily-unavailable",
            ErrorCode::MalformedRequest => "malformed-request",
            ErrorCode::Crash => "crash",
            ErrorCode::Abort => "abort",
            ErrorCode::KeyDoesNotExist => "key-does-not-exist",
            ErrorCode::KeyAlreadyExists => "key-already-exists",
            ErrorCode::PreconditionFailed => "precondition-failed",
            ErrorCode::TxnConflict => "txn-conflict",
        }
    }

    /// Definite errors mean the operation certainly did not happen; the others (timeout, crash,
    /// and every unknown code) leave it indeterminate.
    pub fn definite(self) -> bool {
        !matches!(self, ErrorCode::Timeout | ErrorCode::Crash)
    }
}

/// Name and definiteness of any numeric code, unknown codes included (`unknown`, indefinite).
pub fn describe_code(code: u64) -> (&'static str, bool) {
    match u32::try_from(code).ok().and_then(ErrorCode::from_code) {
        Some(c) => (c.name(), c.definite()),
        None => ("unknown", false),
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", *self as u32, self.name())
    }
}

/// A node id is a client's purely because it starts with `c` (as Maelstrom's own `client?` test).
pub fn is_client(id: &str) -> bool {
    id.starts_with('c')
}

/// What a body says about itself before its payload is understood: enough to answer a request
/// whose `type` is unknown or whose fields are wrong with the right error code.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BodyHeader {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub msg_id: Option<u64>,
    #[serde(default)]
    pub in_reply_to: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn init_line_from_the_protocol_docs_parses() {
        let line = r#"{"id":3,"src":"c3","dest":"n0","body":{"type":"init","node_id":"n0","node_ids":["n0","n1","n2"],"msg_id":1}}"#;
        let env: Envelope<Body<Common>> = serde_json::from_str(line).unwrap();
        assert_eq!(env.id, Some(3));
        assert_eq!(env.body.msg_id, Some(1));
        assert_eq!(
            env.body.payload,
            Common::Init {
                node_id: "n0".into(),
                node_ids: vec!["n0".into(), "n1".into(), "n2".into()]
            }
        );
    }

    #[test]
    fn init_ok_serialises_with_only_allowed_keys() {
        let env = Envelope {
            id: None,
            src: "n0".into(),
            dest: "c3".into(),
            body: Body {
                msg_id: None,
                in_reply_to: Some(1),
                payload: Common::InitOk,
            },
        };
        assert_eq!(
            serde_json::to_value(&env).unwrap(),
            json!({"src":"n0","dest":"c3","body":{"type":"init_ok","in_reply_to":1}})
        );
    }

    #[test]
    fn error_body_round_trips_and_text_is_optional() {
        let v = json!({"type":"error","in_reply_to":5,"code":10});
        let b: Body<Common> = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            b.payload,
            Common::Error(ErrorBody {
                code: 10,
                text: None
            })
        );
        assert_eq!(serde_json::to_value(&b).unwrap(), v);
        let e = ErrorBody::new(ErrorCode::NotSupported, "no");
        let b = Body {
            msg_id: None,
            in_reply_to: Some(2),
            payload: Common::Error(e),
        };
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"type":"error","in_reply_to":2,"code":10,"text":"no"})
        );
    }

    #[test]
    fn error_codes_match_the_spec_table() {
        let table = [
            (0, "timeout", false),
            (1, "node-not-found", true),
            (10, "not-supported", true),
            (11, "temporarily-unavailable", true),
            (12, "malformed-request", true),
            (13, "crash", false),
            (14, "abort", true),
            (20, "key-does-not-exist", true),
            (21, "key-already-exists", true),
            (22, "precondition-failed", true),
            (30, "txn-conflict", true),
            (1000, "unknown", false),
            (7, "unknown", false),
        ];
        for (code, name, definite) in table {
            assert_eq!(describe_code(code), (name, definite), "code {code}");
        }
    }

    #[test]
    fn clients_are_ids_starting_with_c() {
        assert!(is_client("c12"));
        assert!(!is_client("n0"));
        assert!(!is_client("lin-kv"));
    }
}

//! The wire format: the broadcast payloads, Maelstrom's and ours.
//!
//! Maelstrom's messages and their envelope are described in its
//! [protocol](https://github.com/jepsen-io/maelstrom/blob/main/doc/protocol.md) and
//! [workload](https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md#workload-broadcast)
//! docs; `gossip`, `gossip_ok`, `ack_batch`, `relayed_acks`, `ping`, `pong` and `release` pass
//! only between nodes.

use super::Messages;
use crate::wire::ErrorBody;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Broadcast payloads. The first six are Maelstrom's; `gossip`, `gossip_ok`, `ack_batch`,
/// `relayed_acks`, `ping`, `pong` and `release` are ours.
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
    /// `messages` is the node's durable set; a node's reply shares it with other reads
    /// ([`Messages`]), a parsed one owns its values.
    ReadOk {
        messages: Messages,
    },
    /// Values `log[from..upto]` of the sender's log `log` (filtered for the receiver), plus the
    /// sender's cursors: `base` (what it believes the receiver has of its log) and `ack` (what it
    /// holds of the receiver's log), both valid only if `to_log` is the receiver's log id.
    /// `retry`: a resend after `rto_ms`, whose acknowledgement is overdue and so goes direct
    /// rather than through the ack relay. `relayed`: from an ack relay, acknowledgements it held
    /// for the receiver (as in `relayed_acks`). Both are absent on the wire when empty.
    Gossip {
        log: u64,
        to_log: u64,
        base: u64,
        from: u64,
        upto: u64,
        values: Vec<Value>,
        ack: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        retry: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        relayed: Vec<AckFrom>,
    },
    /// A stand-alone cumulative acknowledgement, sent when no gossip goes back soon enough.
    /// `resync`: the sender may have lost what the receiver sent past `ack` (it restarted, or saw
    /// a gap), so the receiver resends from `ack` at once; absent on the wire when false. A
    /// resync with `to_log` 0 (the sender knows no log id of the receiver: it restarted before
    /// learning it) is honoured too.
    GossipOk {
        log: u64,
        to_log: u64,
        ack: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resync: bool,
    },
    /// Stand-alone acknowledgements for several peers in one message to the ack relay (see
    /// "Acknowledgement relay" in the [module docs](super)): the sender's own acknowledgement of
    /// the relay's log (as in `gossip_ok`), plus `acks` for the relay to pass on.
    AckBatch {
        log: u64,
        to_log: u64,
        ack: u64,
        acks: Vec<AckFor>,
    },
    /// From the ack relay: its own acknowledgement of the receiver's log (as in `gossip_ok`), plus
    /// acknowledgements other nodes sent the receiver through it.
    RelayedAcks {
        log: u64,
        to_log: u64,
        ack: u64,
        acks: Vec<AckFrom>,
    },
    /// A health check (see the `liveness` module): answered at once with a `pong` carrying the
    /// same `nonce`, 128 random bits as 32 hex digits.
    Ping {
        nonce: String,
    },
    /// The answer to a `ping`. One whose nonce is not the sender's outstanding ping is ignored.
    Pong {
        nonce: String,
    },
    /// The sender no longer routes its values through the receiver (its hub is back, or it chose
    /// another successor): stop forwarding to it as a successor hub.
    Release,
    Error(ErrorBody),
}

/// An acknowledgement handed to the ack relay: the sender holds node `to`'s log `to_log` up to
/// `ack`; the relay may hold it `wait` ms before passing it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckFor {
    pub to: String,
    pub to_log: u64,
    pub ack: u64,
    pub wait: u64,
}

/// An acknowledgement passed on by the ack relay: node `from`, whose log is `log`, holds the
/// receiver's log `to_log` up to `ack`. Applied only if both log ids are the receiver's current
/// view; it never changes that view (only a node's own messages can announce its log id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckFrom {
    pub from: String,
    pub log: u64,
    pub to_log: u64,
    pub ack: u64,
}

impl From<ErrorBody> for Msg {
    fn from(e: ErrorBody) -> Self {
        Msg::Error(e)
    }
}

//! `kafka`: Maelstrom's [kafka workload](https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md#workload-kafka)
//! (Gossip Glomers challenge 5): append-only logs named by string keys. `send {key, msg}` →
//! `send_ok {offset}`; `poll {offsets: {key: from}}` → `poll_ok {msgs: {key: [[offset, msg], …]}}`
//! (contiguous from `from`, keys with nothing to return left out); `commit_offsets {offsets}` →
//! `commit_offsets_ok`; `list_committed_offsets {keys}` → `list_committed_offsets_ok {offsets}`
//! (keys never committed left out). Two designs:
//!
//! - **`local`** (the default; [`Local`], module `local`): one node, the *owner* (the first id in
//!   `init`'s `node_ids`), keeps every log in memory, assigns offsets densely (0, 1, 2, … per key)
//!   and persists each send and commit through murmur's store before acknowledging it; the other
//!   nodes forward client requests to it and relay its replies. On one node (challenge 5a) that
//!   is the whole story. On several (5b) it is correct because one node decides everything, and
//!   cheap (one round trip to the owner), but it is not available: while the owner is cut off,
//!   killed or paused, requests through other nodes time out (`info`, never wrong).
//! - **`lin-kv`** ([`Kv`], module `kv`): the straightforward challenge 5b design: nodes keep
//!   nothing; each key's log is one value in Maelstrom's `lin-kv` service, and a send appends by
//!   read-then-`cas` (the `cas` allocates the offset: the log's length), a poll reads the logs,
//!   commits are writes. Any node serves any request, and partitions between nodes do not matter
//!   (Maelstrom never partitions its services), at the price of two round trips to the service
//!   per send and every send to a key contending on one value.
//!
//! **Choosing.** `MURMUR_DESIGN=local|lin-kv` in the environment, or `--design local|lin-kv`
//! after the binary (arguments win); see [`options`]. `MURMUR_KAFKA_PERSIST=false` (or
//! `--no-persist`) turns the local design's persistence off (tests use it to show that kills are
//! then caught losing sends).

mod kv;
mod local;

pub use kv::{Kv, COMMIT_PREFIX, LOG_PREFIX, SERVICE};
pub use local::{Local, LocalConfig, FORWARD_TIMEOUT_MS};

use crate::wire::ErrorBody;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Client requests and replies, the owner forwarding of the local design, and the `lin-kv`
/// conversation of the kv design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    Send {
        key: String,
        msg: Value,
    },
    SendOk {
        offset: u64,
    },
    Poll {
        offsets: BTreeMap<String, u64>,
    },
    PollOk {
        msgs: BTreeMap<String, Vec<(u64, Value)>>,
    },
    CommitOffsets {
        offsets: BTreeMap<String, u64>,
    },
    CommitOffsetsOk,
    ListCommittedOffsets {
        keys: Vec<String>,
    },
    ListCommittedOffsetsOk {
        offsets: BTreeMap<String, u64>,
    },
    /// `lin-kv`.
    Read {
        key: String,
    },
    ReadOk {
        value: Value,
    },
    Write {
        key: String,
        value: Value,
    },
    WriteOk,
    Cas {
        key: String,
        from: Value,
        to: Value,
        create_if_not_exists: bool,
    },
    CasOk,
    Error(ErrorBody),
}

impl From<ErrorBody> for Msg {
    fn from(e: ErrorBody) -> Self {
        Msg::Error(e)
    }
}

/// How a node keeps the logs (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// One owner node holds and persists everything; the others forward. The default.
    Local,
    /// The logs in Maelstrom's `lin-kv` service.
    LinKv,
}

impl FromStr for Design {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "local" => Ok(Design::Local),
            "lin-kv" | "linkv" | "kv" => Ok(Design::LinKv),
            _ => Err(format!("unknown design `{s}`: expected local or lin-kv")),
        }
    }
}

/// The environment variable choosing the design.
pub const DESIGN_ENV: &str = "MURMUR_DESIGN";
/// The environment variable turning the local design's persistence off (`false`).
pub const PERSIST_ENV: &str = "MURMUR_KAFKA_PERSIST";

/// The design and the local design's knobs, from `MURMUR_DESIGN` / `MURMUR_KAFKA_PERSIST`, then
/// `--design X` / `--no-persist` (arguments win). Defaults: `local`, persisting.
pub fn options(
    env: impl IntoIterator<Item = (String, String)>,
    args: impl IntoIterator<Item = String>,
) -> Result<(Design, LocalConfig), String> {
    let mut design = Design::Local;
    let mut cfg = LocalConfig::default();
    for (k, v) in env {
        if k == DESIGN_ENV {
            design = v.parse().map_err(|e| format!("{k}: {e}"))?;
        } else if k == PERSIST_ENV {
            cfg.persist = crate::host::parse_bool(&v)
                .ok_or_else(|| format!("{k}: expected true or false, got `{v}`"))?;
        }
    }
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == "--design" {
            design = args.next().ok_or("--design needs a value")?.parse()?;
        } else if let Some(v) = a.strip_prefix("--design=") {
            design = v.parse()?;
        } else if a == "--no-persist" {
            cfg.persist = false;
        } else {
            return Err(format!("unknown argument `{a}`"));
        }
    }
    Ok((design, cfg))
}

/// The `main` of the `kafka` binary.
pub fn main() -> std::process::ExitCode {
    match options(std::env::vars(), std::env::args().skip(1)) {
        Ok((Design::Local, cfg)) => crate::runtime::main::<Local>(cfg),
        Ok((Design::LinKv, _)) => crate::runtime::main::<Kv>(()),
        Err(e) => {
            eprintln!("kafka: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests;

//! `g-counter`, `pn-counter` and `g-set`: Maelstrom's
//! [g-counter, pn-counter and g-set workloads](https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md),
//! `add` (`delta` or `element`) → `add_ok` and `read` → `read_ok {value}`, in two designs.
//!
//! - **`crdt`** (the default; [`Crdt`], module `crdt`): the adds are the elements of a grow-only
//!   set spread by the broadcast node ([`crate::workload::broadcast`]), which the node runs inside
//!   itself; a counter's value is the sum of the deltas it holds. It inherits everything the
//!   broadcast node does: deltas gossiped with cumulative acknowledgements and retried until
//!   confirmed (partition tolerant), durable before acknowledged (a killed node recovers every add
//!   it acknowledged), silence when idle, and the broadcast knobs (`MURMUR_OVERLAY`, ...).
//!   Every node answers from its own state, so adds and reads stay available under partitions,
//!   at the price of reads that may miss adds other nodes acknowledged recently (at most a gossip
//!   round behind when the network is whole, a partition's length behind during one).
//! - **`seq-kv`** ([`KvCounter`], module `kv`; counters only): the stateless node the Gossip
//!   Glomers challenge 4 intends: the count lives in Maelstrom's `seq-kv` service, adds are
//!   read-then-cas loops, and a read first writes a unique value so that `seq-kv` cannot serve
//!   it a stale state. Reads are fresh and nodes keep nothing, but every op takes two round trips
//!   to the service and at least four messages, every add from every node contends on one key,
//!   and nothing works without the service.
//!
//! `results/BENCHMARKS.md` ("Counters") measures both side by side: messages per op, latency,
//! read staleness and node CPU.
//!
//! **Choosing.** `MURMUR_DESIGN=crdt|seq-kv` in the environment, or `--design crdt|seq-kv` after
//! the binary (arguments win); see [`options`]. The other `MURMUR_*` knobs and arguments are the
//! broadcast node's ([`BroadcastConfig`]) and apply to the `crdt` design.

mod crdt;
mod kv;

pub use crdt::{Crdt, CrdtConfig, Msg as CrdtMsg, ReadValue};
pub use kv::{KvConfig, KvCounter, Msg as KvMsg, KEY, SERVICE, SYNC_KEY_PREFIX};

use crate::workload::broadcast::BroadcastConfig;
use std::str::FromStr;

/// Which workload a node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    GSet,
    GCounter,
    PnCounter,
}

impl Kind {
    /// Maelstrom's name of the workload (and the binary's).
    pub fn name(self) -> &'static str {
        match self {
            Kind::GSet => "g-set",
            Kind::GCounter => "g-counter",
            Kind::PnCounter => "pn-counter",
        }
    }
}

/// How a node keeps its state (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// A grow-only set of adds over the broadcast node. The default.
    Crdt,
    /// The count in Maelstrom's `seq-kv` service (counters only).
    SeqKv,
}

impl FromStr for Design {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "crdt" => Ok(Design::Crdt),
            "seq-kv" | "seqkv" | "kv" => Ok(Design::SeqKv),
            _ => Err(format!("unknown design `{s}`: expected crdt or seq-kv")),
        }
    }
}

/// The environment variable choosing the design.
pub const DESIGN_ENV: &str = "MURMUR_DESIGN";

/// The design (`MURMUR_DESIGN`, then `--design`; default `crdt`) and the broadcast knobs (every
/// other `MURMUR_*` variable and argument, as [`BroadcastConfig::from_env_and_args`] reads them).
/// g-set has only the `crdt` design.
pub fn options(
    kind: Kind,
    env: impl IntoIterator<Item = (String, String)>,
    args: impl IntoIterator<Item = String>,
) -> Result<(Design, BroadcastConfig), String> {
    let mut design = Design::Crdt;
    let mut rest_env = Vec::new();
    for (k, v) in env {
        if k == DESIGN_ENV {
            design = v.parse().map_err(|e| format!("{k}: {e}"))?;
        } else {
            rest_env.push((k, v));
        }
    }
    let mut rest_args = Vec::new();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == "--design" {
            let v = args.next().ok_or("--design needs a value")?;
            design = v.parse()?;
        } else if let Some(v) = a.strip_prefix("--design=") {
            design = v.parse()?;
        } else {
            rest_args.push(a);
        }
    }
    if kind == Kind::GSet && design == Design::SeqKv {
        return Err("g-set has no seq-kv design; use crdt".into());
    }
    let broadcast = BroadcastConfig::from_env_and_args(rest_env, rest_args)?;
    Ok((design, broadcast))
}

/// The `main` of the `g-set`, `g-counter` and `pn-counter` binaries.
pub fn main(kind: Kind) -> std::process::ExitCode {
    match options(kind, std::env::vars(), std::env::args().skip(1)) {
        Ok((Design::Crdt, broadcast)) => {
            crate::runtime::main::<Crdt>(CrdtConfig { kind, broadcast })
        }
        Ok((Design::SeqKv, _)) => crate::runtime::main::<KvCounter>(KvConfig { kind }),
        Err(e) => {
            eprintln!("{}: {e}", kind.name());
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests;

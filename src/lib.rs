//! murmur: Maelstrom nodes (echo, unique-ids, broadcast, g-set, g-counter, pn-counter) over one
//! shared library.
//!
//! Module map, in reading order:
//! - [`wire`]: the Maelstrom wire format (envelope, body, error codes), shared with the runner.
//! - [`node`]: the sans-IO core: the [`node::Workload`] trait, the output context, line parsing.
//! - [`host`]: the sans-IO host around a workload: refusals before `init`, `init` and recovery,
//!   the client guard, error replies, ticks, durability and the outbox. The tokio shell, the
//!   runner's simulator and the workloads' tests all drive it.
//! - [`rpc`]: outstanding node-to-node calls with deadlines.
//! - [`workload`]: one module per workload (echo, unique-ids, broadcast; `counter` for g-set,
//!   g-counter and pn-counter, over the broadcast node or `seq-kv`).
//! - [`store`]: the crash-safe append-only record log each node persists to (checksummed frames,
//!   group commit, torn-tail repair, compaction by an atomic swap of files) and where it lives.
//! - [`runtime`]: the thin tokio shell around the host (stdin reader, stdout writer, listen,
//!   demand-driven sync and flush tasks, the SIGCONT flag).
//!
//! Each binary in `src/bin/` is a few lines: parse knobs, call [`runtime::main`].

pub mod host;
pub mod node;
pub mod rpc;
pub mod runtime;
pub mod store;
pub mod wire;
pub mod workload;

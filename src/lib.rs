//! murmur: Maelstrom nodes (echo, unique-ids, broadcast) over one shared library.
//!
//! Module map, in reading order:
//! - [`wire`]: the Maelstrom wire format (envelope, body, error codes), shared with the runner.
//! - [`node`]: the sans-IO core: the [`node::Workload`] trait, the output context, line parsing.
//! - [`rpc`]: outstanding node-to-node calls with deadlines.
//! - [`workload`]: one module per workload (echo, unique-ids, broadcast).
//! - [`store`]: the crash-safe append-only record log each node persists to (checksummed frames,
//!   group commit, torn-tail repair) and where it lives.
//! - [`runtime`]: the thin tokio shell (stdin reader, stdout writer, listen, demand-driven sync and
//!   flush tasks, pause detection).
//!
//! Each binary in `src/bin/` is a few lines: parse knobs, call [`runtime::main`].

pub mod host;
pub mod node;
pub mod rpc;
pub mod runtime;
pub mod store;
pub mod wire;
pub mod workload;

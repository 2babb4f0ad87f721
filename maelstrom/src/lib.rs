//! A Maelstrom-compatible test runner: the same flags and semantics as Jepsen's Maelstrom
//! (<https://github.com/jepsen-io/maelstrom/tree/main/doc>), without the JVM.
//!
//! Module map, in the order a newcomer should read it:
//! - [`history`]: the recorded ops and the network journal (plain data).
//! - [`topology`]: Maelstrom's `--topology` shapes.
//! - [`net`]: the simulated network as a clock-free state machine: latency, per-receiver
//!   deadline queues with Maelstrom's head-of-line semantics, receive-time partition drops.
//! - [`services`]: Maelstrom's `lin-kv`, `seq-kv`, `lww-kv` and `lin-tso`, clock-free, answered
//!   by both drivers.
//! - [`nemesis`]: partition shapes (grudges) and the fault schedule.
//! - [`workload`]: the client side of each workload: ops, requests, closed reply schemas,
//!   Maelstrom's `with-errors` outcome rules.
//! - [`checker`]: pure functions from history and journal to Maelstrom's `results` keys.
//! - [`analysis`]: which checkers a workload runs, composed into `results.json`; recovery times
//!   of restarted nodes.
//! - [`coordinator`]: the run order both drivers share: seed derivation, op staggering, phase
//!   constants, and how a nemesis op maps onto actions on nodes and the network.
//! - [`run`]: the real-time driver: router, workers, op issue, nemesis, final phase, teardown.
//! - [`cli`]: Maelstrom's `test` flags (clap), resolved and validated into `TestOpts`; exit codes.
//! - [`process`]: real node processes over pipes: stdin writer, strict stdout line parsing,
//!   stderr logs, kill/pause/resume and crash detection.
//! - [`procstats`]: node CPU and peak memory from `/proc`, for the benchmarks.
//! - [`results`]: the run folder (`results/<workload>/<time>/`, `latest` links, JSON writers,
//!   Jepsen's `history.txt`), the terminal summary, the progress bar, and `report.html`.
//! - [`web`]: the web server (axum): `maelstrom serve` over the results folder, and the live
//!   dashboard of `maelstrom test --web` with its fault controls.
//! - [`sim`]: deterministic simulation: node logic in-process under virtual time on the same
//!   network, nemesis, coordinator and checkers, with crash-restart over a simulated disk; one seed
//!   replays a run.

pub mod analysis;
pub mod checker;
pub mod cli;
pub mod coordinator;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod process;
pub mod procstats;
pub mod results;
pub mod run;
pub mod services;
pub mod sim;
pub mod topology;
pub mod web;
pub mod workload;

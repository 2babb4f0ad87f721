//! A Maelstrom-compatible test runner: the same flags and semantics as Jepsen's Maelstrom
//! (`../shared/maelstrom-spec.md` is the authority), without the JVM.
//!
//! Module map, in the order a newcomer should read it:
//! - [`history`]: the recorded ops and the network journal (plain data).
//! - [`topology`]: Maelstrom's `--topology` shapes.
//! - [`net`]: the simulated network as a clock-free state machine: latency, per-receiver
//!   deadline queues with Maelstrom's head-of-line semantics, receive-time partition drops.
//! - [`nemesis`]: partition shapes (grudges) and the fault schedule.
//! - [`checker`]: pure functions from history and journal to Maelstrom's `results` keys.

pub mod checker;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod topology;

//! What a run leaves behind and what it prints: the run folder, the terminal summary, and the
//! progress bar.
//!
//! - [`RunDir`]: `results/<workload>/<yyyyMMddTHHmmss.mmm>/` (Jepsen's `store/` layout, with JSON
//!   instead of EDN) holding `results.json`, `history.jsonl` (+ Jepsen's `history.txt`),
//!   `messages.jsonl` (with message bodies), `report.html`, `node-logs/<id>.log`, and any extras. `results/current` points at the run
//!   while it is under way; `results/latest` and `results/<workload>/latest` are pointed at it
//!   when it ends. Links are relative and replaced atomically (temporary link + rename), so a
//!   reader never sees a missing or half-written link.
//! - [`summary`]: a compact, colour-free report of a results object (the keys described in
//!   <https://github.com/jepsen-io/maelstrom/blob/main/doc/results.md>), ending with
//!   Maelstrom's own verdict line. It reads the JSON, not the checker types, so it tolerates
//!   absent sections (they print nothing) and can render a stored `results.json` again.
//! - [`html`]: `report.html`, the run's self-contained page (verdict, checker tables, latency
//!   plot, message diagram, per-node table), written at the end of every run and by
//!   `maelstrom analyze`.
//! - [`node_logs`]: murmur nodes' liveness events (suspicions, successor hubs) from
//!   `node-logs/`, on the run's clock, for the report's per-node table.
//! - [`Progress`]: an indicatif bar on stderr for the main phase, fed by atomic
//!   [`ProgressCounters`]; hidden when stderr is not a terminal or when asked.

pub mod html;
pub mod node_logs;
mod progress;
mod report;
mod run_dir;

pub use progress::{Progress, ProgressCounters};
pub use report::{summary, verdict, SummaryInfo, VERDICT_INVALID, VERDICT_UNKNOWN, VERDICT_VALID};
pub use run_dir::{format_timestamp, jepsen_line, parse_journal_line, ResultsError, RunDir};

#[cfg(test)]
mod tests;

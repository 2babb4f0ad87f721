//! What a simulated run returns: its history and journal, its counts ([`SimStats`]), what the
//! checks found wrong ([`Violation`]), and a fingerprint that two runs of one seed share.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

use murmur::host::HostStats;
use serde_json::Value;

use super::{SimConfig, INIT_TIMEOUT_MS};
use crate::checker::set_full::SetFullResult;
use crate::history::{JournalEvent, JournalKind, Op};

/// Counts from one run (summed by test suites).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Virtual time at the end, ms.
    pub virtual_ms: u64,
    /// Events and delivery batches processed.
    pub steps: u64,
    /// Messages handed to nodes (pipe included).
    pub deliveries: u64,
    /// Node-to-node messages sent.
    pub node_msgs: u64,
    /// Client invocations (final reads included).
    pub client_ops: u64,
    /// Distinct values whose broadcast was acknowledged; for lin-kv, client ops that
    /// completed `ok` (reads, writes and cas).
    pub acked: u64,
    /// Final reads checked against the acknowledged set.
    pub final_reads: u64,
    /// Σ over final reads of the acknowledged values each had to contain.
    pub values_checked: u64,
    pub partitions: u64,
    pub kills: u64,
    /// Node processes restarted (a `start` counts each node it actually restarts).
    pub restarts: u64,
    /// Nodes paused (a `pause` counts each node it actually pauses).
    pub pauses: u64,
    /// Messages dropped by partitions.
    pub partition_drops: u64,
    /// Messages discarded by restarts (they piled up for a killed node).
    pub discarded_at_restart: u64,
    /// Messages a node dropped because they arrived before `init`.
    pub dropped_before_init: u64,
    /// Client requests the shell's client guard dropped as too old to answer.
    pub stale_requests_dropped: u64,
    /// Client replies the shell's client guard dropped as too late.
    pub late_replies_dropped: u64,
    pub flushes: u64,
    /// Records made durable (torn prefixes included).
    pub records_durable: u64,
    /// Records lost to kills (pending or in a flush, not durable).
    pub records_lost: u64,
    /// Records handed back to restarted nodes.
    pub records_recovered: u64,
    /// Log compactions completed (the snapshot replaced the log).
    pub compactions: u64,
    /// Kills that struck during a compaction, leaving the old log (`compactions_torn_old`) or
    /// the new one.
    pub kills_in_compaction: u64,
    pub compactions_torn_old: u64,
    /// Node-to-node messages sent during the idle check.
    pub idle_node_msgs: u64,
}

impl SimStats {
    /// Adds `other` into `self` (for suite totals; `virtual_ms` adds up too).
    pub fn add(&mut self, o: &SimStats) {
        self.virtual_ms += o.virtual_ms;
        self.steps += o.steps;
        self.deliveries += o.deliveries;
        self.node_msgs += o.node_msgs;
        self.client_ops += o.client_ops;
        self.acked += o.acked;
        self.final_reads += o.final_reads;
        self.values_checked += o.values_checked;
        self.partitions += o.partitions;
        self.kills += o.kills;
        self.restarts += o.restarts;
        self.pauses += o.pauses;
        self.partition_drops += o.partition_drops;
        self.discarded_at_restart += o.discarded_at_restart;
        self.dropped_before_init += o.dropped_before_init;
        self.stale_requests_dropped += o.stale_requests_dropped;
        self.late_replies_dropped += o.late_replies_dropped;
        self.flushes += o.flushes;
        self.records_durable += o.records_durable;
        self.records_lost += o.records_lost;
        self.records_recovered += o.records_recovered;
        self.compactions += o.compactions;
        self.kills_in_compaction += o.kills_in_compaction;
        self.compactions_torn_old += o.compactions_torn_old;
        self.idle_node_msgs += o.idle_node_msgs;
    }

    /// Adds what one host dropped.
    pub(super) fn add_host(&mut self, h: HostStats) {
        self.dropped_before_init += h.dropped_before_init;
        self.stale_requests_dropped += h.stale_requests_dropped;
        self.late_replies_dropped += h.late_replies_dropped;
    }

    /// Faults injected: partitions started, nodes killed, nodes paused.
    pub fn faults(&self) -> u64 {
        self.partitions + self.kills + self.pauses
    }
}

impl fmt::Display for SimStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} virtual s, {} client ops, {} values acked, {} final reads checking {} values, \
             {} node msgs ({} dropped by partitions, {} discarded at restarts, {} before init), \
             faults: {} partitions, {} kills ({} restarts), {} pauses; client guard dropped {} stale \
             requests and {} late replies; disk: {} flushes, {} records durable, {} lost, {} recovered, \
             {} compactions, {} kills during one ({} left the old log)",
            self.virtual_ms / 1000,
            self.client_ops,
            self.acked,
            self.final_reads,
            self.values_checked,
            self.node_msgs,
            self.partition_drops,
            self.discarded_at_restart,
            self.dropped_before_init,
            self.partitions,
            self.kills,
            self.restarts,
            self.pauses,
            self.stale_requests_dropped,
            self.late_replies_dropped,
            self.flushes,
            self.records_durable,
            self.records_lost,
            self.records_recovered,
            self.compactions,
            self.kills_in_compaction,
            self.compactions_torn_old
        )
    }
}

/// Something the checks found wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    /// A final read lacked acknowledged values.
    Missing {
        node: String,
        missing: Vec<Value>,
        acked: usize,
    },
    /// A final read did not succeed.
    FinalReadFailed { node: String, outcome: String },
    /// `set-full` found lost values.
    Lost { lost: Vec<Value>, lost_count: usize },
    /// Nodes talked to each other during the idle check.
    Chatty {
        count: u64,
        by_type: Vec<(String, u64)>,
    },
    /// A node's output was cut off after it sent to an unregistered id.
    Wedged {
        node: String,
        at_ms: u64,
        error: String,
    },
    /// A (re)started node never answered `init`.
    InitFailed { node: String, at_ms: u64 },
    /// The run could not complete (setup failed, event budget exhausted).
    Aborted(String),
    /// Counter final reads outside the acceptable set.
    Unacceptable {
        reads: Vec<Value>,
        acceptable: Vec<[i64; 2]>,
    },
    /// The kafka checker found anomalies that make the run invalid.
    Kafka {
        bad_error_types: Vec<String>,
        result: Value,
    },
    /// txn workloads: the Elle-style checker judged the history not valid under the run's
    /// consistency models.
    Txn { anomaly_types: Vec<String> },
    /// lin-kv: keys whose history is not linearizable (`failures`), or that the checker's
    /// budget left undecided (`unknown`).
    NotLinearizable {
        failures: Vec<String>,
        unknown: Vec<String>,
    },
}

impl Violation {
    /// A short name for grouping failures: `missing`, `final-read-failed`, `lost`, `chatty`,
    /// `wedged`, `init-failed`, `aborted`, `unacceptable`, `kafka`, `txn` or `not-linearizable`.
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::Missing { .. } => "missing",
            Violation::FinalReadFailed { .. } => "final-read-failed",
            Violation::Lost { .. } => "lost",
            Violation::Chatty { .. } => "chatty",
            Violation::Wedged { .. } => "wedged",
            Violation::InitFailed { .. } => "init-failed",
            Violation::Aborted(_) => "aborted",
            Violation::Unacceptable { .. } => "unacceptable",
            Violation::Kafka { .. } => "kafka",
            Violation::Txn { .. } => "txn",
            Violation::NotLinearizable { .. } => "not-linearizable",
        }
    }
}

fn list(values: &[Value], max: usize) -> String {
    let shown: Vec<String> = values.iter().take(max).map(Value::to_string).collect();
    let more = if values.len() > max {
        format!(", … {} more", values.len() - max)
    } else {
        String::new()
    };
    format!("[{}{more}]", shown.join(", "))
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Missing {
                node,
                missing,
                acked,
            } => write!(
                f,
                "{node}'s final read lacks {} of {acked} acknowledged values: {}",
                missing.len(),
                list(missing, 12)
            ),
            Violation::FinalReadFailed { node, outcome } => {
                write!(f, "{node}'s final read did not succeed: {outcome}")
            }
            Violation::Lost { lost, lost_count } => {
                write!(f, "set-full: lost-count {lost_count}: {}", list(lost, 12))
            }
            Violation::Chatty { count, by_type } => {
                let types: Vec<String> = by_type.iter().map(|(t, c)| format!("{t}×{c}")).collect();
                write!(
                    f,
                    "not idle: {count} node-to-node messages after quiescence ({})",
                    types.join(", ")
                )
            }
            Violation::Wedged { node, at_ms, error } => write!(
                f,
                "{node} wedged at {at_ms} ms: {error}; Maelstrom stops reading its output"
            ),
            Violation::InitFailed { node, at_ms } => write!(
                f,
                "{node} did not answer init (sent at {at_ms} ms) within {INIT_TIMEOUT_MS} ms"
            ),
            Violation::Aborted(why) => write!(f, "run aborted: {why}"),
            Violation::Unacceptable { reads, acceptable } => write!(
                f,
                "counter: final reads {} outside the acceptable set {acceptable:?}",
                list(reads, 12)
            ),
            Violation::Kafka {
                bad_error_types,
                result,
            } => {
                let text = result.to_string();
                let cut: String = text.chars().take(2000).collect();
                write!(f, "kafka: {bad_error_types:?} in {cut}")
            }
            Violation::Txn { anomaly_types } => write!(
                f,
                "txn: the history is not valid under the models: {}",
                anomaly_types.join(", ")
            ),
            Violation::NotLinearizable { failures, unknown } => write!(
                f,
                "lin-kv: keys not linearizable {failures:?}, keys undecided within the budget \
                 {unknown:?}"
            ),
        }
    }
}

/// The result of one simulated run.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    pub config: SimConfig,
    pub history: Vec<Op>,
    pub journal: Vec<JournalEvent>,
    /// `None` for client workloads other than broadcast and g-set.
    pub set_full: Option<SetFullResult>,
    pub stats: SimStats,
    pub violations: Vec<Violation>,
    /// See [`TraceLevel`](crate::sim::TraceLevel).
    pub trace: Vec<String>,
}

impl SimOutcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// FNV-1a over the history (as JSON lines) and every field of the journal: equal for two runs
    /// of one seed, and in practice different for two seeds.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        for op in &self.history {
            let _ = serde_json::to_writer(&mut h, op);
        }
        for e in &self.journal {
            h.bytes(&[u8::from(e.kind == JournalKind::Send)]);
            h.bytes(&e.time.to_le_bytes());
            h.bytes(&e.id.to_le_bytes());
            h.str(&e.src);
            h.str(&e.dest);
            h.str(&e.body_type);
        }
        h.0
    }

    /// Whether some violation is about acknowledged values missing or lost.
    pub fn lost_values(&self) -> bool {
        self.violations
            .iter()
            .any(|v| matches!(v, Violation::Missing { .. } | Violation::Lost { .. }))
    }

    /// The distinct kinds of its violations, sorted, joined by `+` (empty if it passed).
    pub fn violation_kinds(&self) -> String {
        let kinds: BTreeSet<&str> = self.violations.iter().map(Violation::kind).collect();
        kinds.into_iter().collect::<Vec<_>>().join("+")
    }

    /// `None` if the run passed; otherwise a report naming the seed, every violation, the run's
    /// counts and the replay command.
    pub fn failure_report(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        let mut s = format!("simulation failed: {}\n", self.config.describe());
        for v in &self.violations {
            let _ = writeln!(s, "  - {v}");
        }
        let _ = writeln!(s, "  counts: {}", self.stats);
        let _ = write!(s, "  replay: {}", self.config.replay());
        Some(s)
    }
}

/// FNV-1a, 64 bit.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, buf: &[u8]) {
        for &b in buf {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A string and a terminator, so that ("ab", "c") and ("a", "bc") differ.
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
        self.bytes(&[0xff]);
    }
}

impl std::io::Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

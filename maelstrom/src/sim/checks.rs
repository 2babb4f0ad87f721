//! The verdict once a simulated run is over: nodes silent during the idle check, every final read
//! holding every acknowledged value, and `set-full` reporting nothing lost. Violations found
//! during the run (wedged nodes, failed `init`s, aborts) are already in [`Sim::violations`].

use std::collections::{BTreeMap, BTreeSet};

use murmur::node::Workload;
use murmur::wire::is_client;
use serde_json::Value;

use super::node::Proc;
use super::{Sim, SimOutcome, Violation};
use crate::checker::set_full;
use crate::history::{JournalKind, OpType};
use crate::workload::ClientWorkload;

/// What a final read found.
pub(super) struct FinalRead {
    pub(super) node: usize,
    pub(super) outcome: Result<Vec<Value>, String>,
}

impl<W: Workload> Sim<'_, W> {
    /// The run is over: counts collected, the idle check, the final reads against every
    /// acknowledged value, and `set-full` over the history.
    pub(super) fn finish(mut self) -> SimOutcome {
        self.stats.virtual_ms = self.now_ms();
        for node in &self.nodes {
            if let Proc::Running(host) = &node.proc {
                self.stats.add_host(host.stats());
            }
        }
        self.stats.partition_drops = self.net.dropped_count();
        let journal = self.net.take_journal();
        let aborted = self
            .violations
            .iter()
            .any(|v| matches!(v, Violation::Aborted(_)));

        // Idle: no node-to-node sends once the final reads are done.
        if !aborted {
            let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
            for e in journal.iter().filter(|e| {
                e.kind == JournalKind::Send
                    && e.time >= self.idle_start
                    && !is_client(&e.src)
                    && !is_client(&e.dest)
            }) {
                *by_type.entry(e.body_type.clone()).or_default() += 1;
            }
            let count: u64 = by_type.values().sum();
            self.stats.idle_node_msgs = count;
            if count > 0 {
                self.violations.push(Violation::Chatty {
                    count,
                    by_type: by_type.into_iter().collect(),
                });
            }
        }

        let mut set_full_result = None;
        if self.cfg.client == ClientWorkload::Broadcast {
            // Acknowledged values, keyed by their JSON text (Clojure equality: 1 ≠ 1.0).
            let acked: BTreeMap<String, Value> = self
                .history
                .iter()
                .filter(|o| o.is_client() && o.kind == OpType::Ok && o.f == "broadcast")
                .map(|o| (o.value.to_string(), o.value.clone()))
                .collect();
            self.stats.acked = acked.len() as u64;
            if !aborted {
                for r in &self.final_reads {
                    let node = self.node_ids[r.node].clone();
                    self.stats.final_reads += 1;
                    match &r.outcome {
                        Ok(vs) => {
                            self.stats.values_checked += acked.len() as u64;
                            let have: BTreeSet<String> = vs.iter().map(Value::to_string).collect();
                            let missing: Vec<Value> = acked
                                .iter()
                                .filter(|(k, _)| !have.contains(*k))
                                .map(|(_, v)| v.clone())
                                .collect();
                            if !missing.is_empty() {
                                self.violations.push(Violation::Missing {
                                    node,
                                    missing,
                                    acked: acked.len(),
                                });
                            }
                        }
                        Err(outcome) => self.violations.push(Violation::FinalReadFailed {
                            node,
                            outcome: outcome.clone(),
                        }),
                    }
                }
            }
            let result = set_full::check(&self.history);
            if result.lost_count > 0 {
                self.violations.push(Violation::Lost {
                    lost: result.lost.clone(),
                    lost_count: result.lost_count,
                });
            }
            set_full_result = Some(result);
        }

        SimOutcome {
            config: self.cfg.clone(),
            history: self.history,
            journal,
            set_full: set_full_result,
            stats: self.stats,
            violations: self.violations,
            trace: self.trace,
        }
    }
}

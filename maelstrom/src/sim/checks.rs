//! The verdict once a simulated run is over: nodes silent during the idle check, and then per
//! workload: for broadcast and g-set, every final read holding every acknowledged value and
//! `set-full` reporting nothing lost; for the counters, every final read succeeding and the
//! counter checker accepting them; for kafka, the kafka checker finding nothing that
//! invalidates the run; for the txn workloads, the Elle-style checker's verdict under the
//! configured consistency models; for lin-kv, the linearizability checker accepting every key
//! within [`LIN_KV_SIM_BUDGET`] steps. Violations found
//! during the run (wedged nodes, failed `init`s, aborts) are already in [`Sim::violations`].

use std::collections::{BTreeMap, BTreeSet};

use murmur::node::Workload;
use murmur::wire::is_client;
use serde_json::Value;

use super::node::Proc;
use super::{Sim, SimOutcome, Violation};
use crate::checker::linearizable::{self, Budget};
use crate::checker::{counter, elle, kafka, set_full, CheckResult, Validity};
use crate::history::{JournalKind, OpType};
use crate::workload::{ClientWorkload, TxnKind};

/// The lin-kv check's search budget in steps (a deterministic budget, unlike the real-time
/// runner's deadline, so a seed's verdict does not depend on the machine). A 5-node, 10 s run
/// at 20 ops/s needs a few thousand steps; keys left undecided count as a violation.
pub const LIN_KV_SIM_BUDGET: u64 = 50_000_000;

/// What a final read found.
pub(super) struct FinalRead {
    pub(super) node: usize,
    /// The read's value, or why it did not succeed.
    pub(super) outcome: Result<Value, String>,
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

        // Idle: no node-to-node sends once the final reads are done (an `idle_check_ms` of 0
        // skips the check: a Raft leader's heartbeats never stop).
        if !aborted && self.cfg.idle_check_ms > 0 {
            let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
            // Sends journaled after the idle check began: not those made at the same instant
            // just before it (a chain of zero-latency requests that completed the final reads).
            for e in journal.iter().skip(self.idle_journal).filter(|e| {
                e.kind == JournalKind::Send && !is_client(&e.src) && !is_client(&e.dest)
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
        let client = self.cfg.client;
        if matches!(client, ClientWorkload::Broadcast | ClientWorkload::GSet) {
            let add = if client == ClientWorkload::GSet {
                "add"
            } else {
                "broadcast"
            };
            // Acknowledged values, keyed by their JSON text (Clojure equality: 1 ≠ 1.0).
            let acked: BTreeMap<String, Value> = self
                .history
                .iter()
                .filter(|o| o.is_client() && o.kind == OpType::Ok && o.f == add)
                .map(|o| (o.value.to_string(), o.value.to_json().into_owned()))
                .collect();
            self.stats.acked = acked.len() as u64;
            if !aborted {
                for r in &self.final_reads {
                    let node = self.node_ids[r.node].clone();
                    self.stats.final_reads += 1;
                    match &r.outcome {
                        Ok(v) => {
                            let vs = v.as_array().map_or(&[][..], Vec::as_slice);
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
        if matches!(client, ClientWorkload::GCounter | ClientWorkload::PnCounter) {
            self.check_counter(aborted);
        }
        if client == ClientWorkload::Kafka && !aborted {
            let result = kafka::check(&self.history);
            if result.valid != Validity::True {
                self.violations.push(Violation::Kafka {
                    bad_error_types: result.bad_error_types.clone(),
                    result: serde_json::to_value(&result).unwrap_or_default(),
                });
            }
        }
        if let ClientWorkload::Txn(kind) = client {
            let models = self.cfg.txn.consistency_models;
            let result = match kind {
                TxnKind::RwRegister => elle::check_rw_register(&self.history, models),
                TxnKind::ListAppend => elle::check_list_append(&self.history, models),
            };
            if result.validity() != Validity::True && !aborted {
                self.violations.push(Violation::Txn {
                    anomaly_types: result.anomaly_types(),
                });
            }
        }
        if client == ClientWorkload::LinKv && !aborted {
            self.check_lin_kv();
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

impl<W: Workload> Sim<'_, W> {
    /// Counters: every final read must succeed, and the counter checker must accept them all
    /// (Maelstrom's own verdict is valid when no final read succeeded; ours is stricter).
    fn check_counter(&mut self, aborted: bool) {
        if aborted {
            return;
        }
        for r in &self.final_reads {
            self.stats.final_reads += 1;
            if let Err(outcome) = &r.outcome {
                self.violations.push(Violation::FinalReadFailed {
                    node: self.node_ids[r.node].clone(),
                    outcome: outcome.clone(),
                });
            }
        }
        let result = counter::check(&self.history);
        if result.valid != Validity::True {
            self.violations.push(Violation::Unacceptable {
                reads: result
                    .errors
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| o.value.to_json().into_owned())
                    .collect(),
                acceptable: result.acceptable,
            });
        }
    }
}

impl<W: Workload> Sim<'_, W> {
    /// lin-kv: every key's history must be linearizable (and decided within the budget).
    fn check_lin_kv(&mut self) {
        self.stats.acked = self
            .history
            .iter()
            .filter(|o| o.is_client() && o.kind == OpType::Ok)
            .count() as u64;
        let result = linearizable::check(&self.history, Budget::steps(LIN_KV_SIM_BUDGET));
        if result.valid != Validity::True {
            self.violations.push(Violation::NotLinearizable {
                failures: result.failures,
                unknown: result.unknown,
            });
        }
    }
}

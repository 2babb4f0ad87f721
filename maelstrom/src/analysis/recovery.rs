//! What the history of a broadcast run under `--nemesis kill` says about restarted nodes: whether
//! they served what they had acknowledged, how soon they caught up with their peers, and how long
//! the cluster had no live node at all.
//!
//! Everything here is read from the history alone (nemesis completions and client ops), so it is
//! *sampled by the reads*: a node's state is only seen when a client reads from it. At the 3c and
//! 3d configurations a node serves a read every 0.5 to 1 s, so a catch-up time is an upper bound
//! that includes up to one read interval of waiting for the next read. The exact times (at every
//! step of the node) are measured by the simulator (`maelstrom/tests/sim.rs`).
//!
//! Client process `p` talks to node `nodes[(p mod concurrency) mod n]`, as the runner assigns them.

use crate::history::{Op, OpType, OpValue, Process};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// One restart of a killed node.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Recovery {
    pub node: String,
    #[serde(rename = "killed-at-ms")]
    pub killed_at_ms: u64,
    #[serde(rename = "restarted-at-ms")]
    pub restarted_at_ms: u64,
    /// Restarted by the final phase's `start` (after the main phase): its first reads are the final
    /// reads, which come only after the quiet period, so its catch-up time says nothing about the
    /// node; it is kept out of the catch-up figures.
    #[serde(rename = "final-phase?")]
    pub final_phase: bool,
    /// Values acknowledged (to any client, by any node) before the kill.
    #[serde(rename = "acked-before-kill")]
    pub acked_before_kill: usize,
    /// Values this node itself acknowledged before the kill: it promised them durable, so every
    /// read it serves after the restart must contain them.
    #[serde(rename = "own-acked-before-kill")]
    pub own_acked_before_kill: usize,
    /// `ok` reads the node served after the restart (until it was killed again).
    #[serde(rename = "reads-after-restart")]
    pub reads_after_restart: usize,
    /// Of those, reads missing a value the node itself acknowledged before the kill (must be 0).
    #[serde(rename = "reads-missing-own")]
    pub reads_missing_own: usize,
    /// From the restart to the first `ok` read the node served.
    #[serde(rename = "first-read-after-ms")]
    pub first_read_after_ms: Option<u64>,
    /// From the restart to the heal of the partition in force at the restart (0 if none was):
    /// until then the node may be cut off from the values it missed.
    #[serde(rename = "partitioned-for-ms")]
    pub partitioned_for_ms: u64,
    /// From the restart to the first `ok` read it served at or after that heal (the first read
    /// that can show whether it caught up).
    #[serde(rename = "first-read-after-heal-ms")]
    pub first_read_after_heal_ms: Option<u64>,
    /// From the restart to the first `ok` read it served containing every value acknowledged
    /// before the kill; `None` if none did.
    #[serde(rename = "recovered-after-ms")]
    pub recovered_after_ms: Option<u64>,
}

impl Recovery {
    /// The catch-up time once the node could reach its peers: from the later of the restart and
    /// the heal to the first complete read (0 if it was complete before the heal).
    pub fn catch_up_ms(&self) -> Option<u64> {
        self.recovered_after_ms
            .map(|r| r.saturating_sub(self.partitioned_for_ms))
    }
}

/// Nodes named by a nemesis completion value: `{node: word}` maps (ours) or `[word, [nodes]]`.
fn nodes_in(value: &OpValue, word: &str) -> Vec<String> {
    let Some(value) = value.as_json() else {
        return Vec::new();
    };
    match value {
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| v.as_str() == Some(word))
            .map(|(k, _)| k.clone())
            .collect(),
        Value::Array(a) if a.first().and_then(Value::as_str) == Some(word) => a
            .get(1)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

const fn ms(t: u64) -> u64 {
    t / 1_000_000
}

/// Every restart of a killed node in a broadcast history. A restart at or after `main_end_ms` (the
/// main phase's end, i.e. `--time-limit`) is a final-phase restart.
pub fn recoveries(
    history: &[Op],
    nodes: &[String],
    concurrency: usize,
    main_end_ms: u64,
) -> Vec<Recovery> {
    struct Waiting {
        r: Recovery,
        need: HashSet<String>,
        own: HashSet<String>,
        caught_up: bool,
        /// The partition in force at the restart has not healed yet.
        cut_off: bool,
    }
    let mut done = Vec::new();
    if nodes.is_empty() || concurrency == 0 {
        return done;
    }
    let node_of = |p: u64| &nodes[(p as usize % concurrency) % nodes.len()];
    let mut acked: HashSet<String> = HashSet::new();
    let mut own_acked: HashMap<&String, HashSet<String>> = HashMap::new();
    // Killed nodes: kill time, values acked anywhere and by the node itself before the kill.
    let mut killed: HashMap<String, (u64, HashSet<String>, HashSet<String>)> = HashMap::new();
    let mut watching: HashMap<String, Waiting> = HashMap::new();
    let mut partitioned = false;
    // Restarts waiting for the partition in force at their restart to heal.
    let mut awaiting_heal: Vec<String> = Vec::new();
    for op in history {
        match (op.process, op.kind) {
            (Process::Nemesis, OpType::Info)
                if op.f == "start-partition"
                    && !op.value.as_json().is_some_and(Value::is_string) =>
            {
                partitioned = true;
            }
            (Process::Nemesis, OpType::Info)
                if op.f == "stop-partition"
                    && op.value.as_json().and_then(Value::as_str) == Some("network-healed") =>
            {
                partitioned = false;
                for n in awaiting_heal.drain(..) {
                    if let Some(w) = watching.get_mut(&n) {
                        w.r.partitioned_for_ms = ms(op.time).saturating_sub(w.r.restarted_at_ms);
                        w.cut_off = false;
                    }
                }
            }
            (Process::Nemesis, _) if op.f == "kill" => {
                for n in nodes_in(&op.value, "killed") {
                    if let Some(w) = watching.remove(&n) {
                        done.push(w.r); // killed again
                    }
                    let own = own_acked.get(&n).cloned().unwrap_or_default();
                    killed
                        .entry(n)
                        .or_insert_with(|| (op.time, acked.clone(), own));
                }
            }
            (Process::Nemesis, _) if op.f == "start" => {
                for n in nodes_in(&op.value, "started") {
                    if let Some((at, need, own)) = killed.remove(&n) {
                        if partitioned {
                            awaiting_heal.push(n.clone());
                        }
                        let r = Recovery {
                            node: n.clone(),
                            killed_at_ms: ms(at),
                            restarted_at_ms: ms(op.time),
                            final_phase: ms(op.time) >= main_end_ms,
                            acked_before_kill: need.len(),
                            own_acked_before_kill: own.len(),
                            reads_after_restart: 0,
                            reads_missing_own: 0,
                            first_read_after_ms: None,
                            partitioned_for_ms: 0,
                            first_read_after_heal_ms: None,
                            recovered_after_ms: None,
                        };
                        let caught_up = need.is_empty();
                        let mut w = Waiting {
                            r,
                            need,
                            own,
                            caught_up,
                            cut_off: partitioned,
                        };
                        if caught_up {
                            w.r.recovered_after_ms = Some(0);
                        }
                        watching.insert(n, w);
                    }
                }
            }
            (Process::Client(p), OpType::Ok) if op.f == "broadcast" => {
                acked.insert(op.value.to_string());
                own_acked
                    .entry(node_of(p))
                    .or_default()
                    .insert(op.value.to_string());
            }
            (Process::Client(p), OpType::Ok) if op.f == "read" => {
                let Some(w) = watching.get_mut(node_of(p)) else {
                    continue;
                };
                let mut have: HashSet<String> = HashSet::new();
                op.value.elements(|v| {
                    have.insert(v.to_string());
                });
                let after = ms(op.time).saturating_sub(w.r.restarted_at_ms);
                w.r.reads_after_restart += 1;
                w.r.first_read_after_ms.get_or_insert(after);
                if !w.cut_off {
                    w.r.first_read_after_heal_ms.get_or_insert(after);
                }
                if !w.own.is_subset(&have) {
                    w.r.reads_missing_own += 1;
                }
                if !w.caught_up && w.need.is_subset(&have) {
                    w.caught_up = true;
                    w.r.recovered_after_ms = Some(after);
                }
            }
            _ => {}
        }
    }
    done.extend(watching.into_values().map(|w| w.r));
    done.sort_by_key(|r| (r.restarted_at_ms, r.node.clone()));
    done
}

/// Milliseconds of the main phase (`[0, main_end_ms)`) during which no node was live: every node
/// killed (and not yet restarted) or paused. No client op can succeed then; a schedule that keeps
/// every node down for (nearly) the whole main phase cannot give a valid broadcast run.
pub fn no_live_node_ms(history: &[Op], nodes: &[String], main_end_ms: u64) -> u64 {
    if nodes.is_empty() {
        return 0;
    }
    let mut killed: HashSet<String> = HashSet::new();
    let mut paused: HashSet<String> = HashSet::new();
    let mut down_since: Option<u64> = None;
    let mut total = 0;
    let all_down = |k: &HashSet<String>, p: &HashSet<String>| {
        nodes.iter().all(|n| k.contains(n) || p.contains(n))
    };
    for op in history.iter().filter(|o| o.process == Process::Nemesis) {
        let t = ms(op.time).min(main_end_ms);
        match op.f.as_str() {
            "kill" => killed.extend(nodes_in(&op.value, "killed")),
            "start" => nodes_in(&op.value, "started").iter().for_each(|n| {
                killed.remove(n);
            }),
            "pause" => paused.extend(nodes_in(&op.value, "paused")),
            "resume" => nodes_in(&op.value, "resumed").iter().for_each(|n| {
                paused.remove(n);
            }),
            _ => continue,
        }
        match (down_since, all_down(&killed, &paused)) {
            (None, true) => down_since = Some(t),
            (Some(since), false) => {
                total += t - since;
                down_since = None;
            }
            _ => {}
        }
    }
    total + down_since.map_or(0, |since| main_end_ms.saturating_sub(since))
}

#[cfg(test)]
mod tests;

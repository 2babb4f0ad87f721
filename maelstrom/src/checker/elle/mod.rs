//! The txn workloads' checker, after Elle (<https://github.com/jepsen-io/elle>), which Maelstrom
//! runs over `txn-rw-register` and `txn-list-append` histories: from what transactions read and
//! wrote, infer the order of each key's versions, build the dependency graph between
//! transactions, and look for cycles in it and for anomalies that need no cycle.
//!
//! **Transactions.** Every client `txn` op is one transaction. An `ok` one is judged by its
//! completion (the reads filled in); an `info` one (it may or may not have committed) counts
//! only by its writes, taken from the invocation; a `fail`ed one never committed, so reading
//! what it wrote is an aborted read (G1a).
//!
//! **Dependency graph** (Adya's): `ww` T1 → T2 when T2 wrote the version of a key right after
//! T1's; `wr` when T2 read what T1 wrote; `rw` when T1 read a version that T2 overwrote (the next
//! one). How versions are ordered is each workload's business ([`rw_register`],
//! [`list_append`]). With `strict-serializable`, two more kinds join: `process` (a process's
//! successive `ok` transactions) and `realtime` (`ok` T1 completed before T2, `ok` or `info`, was
//! invoked; only the edges from the transactions completed most recently are kept, which
//! preserves every path).
//!
//! **Cycles** ([`graph`]): Tarjan's algorithm splits the graph into strongly connected
//! components; each component is searched for a cycle of each kind, the most severe first, by
//! breadth-first search from an edge of the kind the cycle must contain back to the edge's
//! source, so the cycle found is the shortest through that edge. A cycle is named by its edges
//! (Adya's names, in Elle's `-item` forms, since these workloads have no predicates):
//! `G0` (`ww` only), `G1c` (`ww` and `wr`), `G-single-item` (exactly one `rw`),
//! `G-nonadjacent-item` (several `rw`, no two in a row), `G2-item` (the rest); a cycle that needs
//! a `realtime` edge gets the suffix `-realtime`, one that needs a `process` edge `-process`.
//! A kind implied by one found already in the same component is not searched for (Elle's rule:
//! a G0 is also a G1c; a G-single also a G2; a data cycle also its process and realtime forms).
//!
//! **Anomalies without a cycle**, as Elle 0.2.2 (the version Maelstrom's Jepsen pins) finds them:
//! `G1a` (a read of a failed transaction's write), `G1b` (of a transaction's intermediate
//! write), `internal` (a read at odds with the transaction's own earlier reads and writes), and
//! for list-append `duplicate-elements`, `incompatible-order`; for rw-register
//! `cyclic-versions`. Then three that need neither a cycle nor a complete version order:
//! - `lost-update`, both workloads ([`lost_update`], after
//!   [`elle.txn/lost-update-cases`](https://github.com/jepsen-io/elle/blob/v0.2.2/src/elle/txn.clj)):
//!   two `ok` transactions read the same value of a key, and both then write the key;
//! - `dirty-update`, list-append
//!   ([`elle.list-append/dirty-update-cases`](https://github.com/jepsen-io/elle/blob/v0.2.2/src/elle/list_append.clj)):
//!   in a key's order, a committed append right after a failed one (only `info` ones between);
//! - `future-read`, list-append (`op-future-read-case`, same file): a transaction reads an
//!   element it appends later itself.
//!
//! **Models** ([`Models`]): `--consistency-models` decides which anomalies make the history
//! invalid, with Elle's implication rules
//! ([`consistency_model.clj`](https://github.com/jepsen-io/elle/blob/v0.2.2/src/elle/consistency_model.clj)):
//! each model prohibits what the weaker ones do, and every anomaly that implies a prohibited one
//! (dirty-update implies G1a, future-read G1c, lost-update G2-item).
//! - `read-uncommitted`: G0, duplicate-elements, cyclic-versions;
//! - `read-committed`: also G1a, G1b, G1c, incompatible-order, dirty-update, future-read;
//! - `serializable`: also internal, lost-update, G-single-item, G-nonadjacent-item, G2-item;
//! - `strict-serializable`: also the `-process` and `-realtime` forms of the cycles.
//!
//! Only the prohibited anomalies are reported, plus `empty-transaction-graph` (no dependency
//! at all), `cycle-search-timeout` (the search ran out of its step budget, [`SEARCH_STEPS`]) and,
//! for list-append, `unwritten-element` (a read of an element nobody appended, on which Elle's
//! check fails; Jepsen then judges the history unknown).
//! **Result keys** (Elle's): `valid?`, and when something is reported, `anomaly-types` (sorted),
//! `anomalies` (type → cases, at most [`MAX_CASES`] each), `not` and `also-not` (the weakest of
//! the four models the anomalies rule out, and the stronger ones). `valid?` is false when a
//! prohibited anomaly is present, otherwise unknown when something is reported. Maelstrom's
//! rw-register wrapper then drops `cycle-search-timeout` and makes `valid?` false whenever any
//! type remains, so an empty graph is invalid there ([`check_rw_register`]); list-append keeps
//! Elle's verdict ([`check_list_append`]).

pub mod graph;
pub mod list_append;
pub mod rw_register;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::pairing::Pairing;
use super::{in_index_order, CheckResult, Validity};
use crate::history::{Op, OpType, Process};
use graph::{Graph, PROCESS};

/// At most this many cases are kept per anomaly type.
pub const MAX_CASES: usize = 64;
/// The cycle search's budget over the whole check, in graph steps (edges looked at); past it,
/// the components not searched yet are reported as `cycle-search-timeout`. Elle bounds each
/// component's search by time instead; steps keep the verdict the same on any machine.
pub const SEARCH_STEPS: u64 = 200_000_000;

/// A consistency model `--consistency-models` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    ReadUncommitted,
    ReadCommitted,
    Serializable,
    StrictSerializable,
}

impl Model {
    pub const ALL: [Model; 4] = [
        Model::ReadUncommitted,
        Model::ReadCommitted,
        Model::Serializable,
        Model::StrictSerializable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::ReadUncommitted => "read-uncommitted",
            Model::ReadCommitted => "read-committed",
            Model::Serializable => "serializable",
            Model::StrictSerializable => "strict-serializable",
        }
    }

    /// Whether this model prohibits `anomaly` (Elle's rules restricted to the anomalies this
    /// checker finds; see the module docs).
    pub fn prohibits(self, anomaly: &str) -> bool {
        const RU: [&str; 3] = ["G0", "duplicate-elements", "cyclic-versions"];
        // dirty-update implies G1a, future-read G1c (Elle's `implied-anomalies`).
        const RC: [&str; 6] = [
            "G1a",
            "G1b",
            "G1c",
            "incompatible-order",
            "dirty-update",
            "future-read",
        ];
        // lost-update implies write-skew and G2-item, write-skew G2.
        const SER: [&str; 5] = [
            "internal",
            "lost-update",
            "G-single-item",
            "G-nonadjacent-item",
            "G2-item",
        ];
        // The cycles, whose `-process` and `-realtime` forms strict-serializable prohibits.
        const CYCLES: [&str; 5] = [
            "G0",
            "G1c",
            "G-single-item",
            "G-nonadjacent-item",
            "G2-item",
        ];
        if RU.contains(&anomaly) {
            return true;
        }
        if RC.contains(&anomaly) {
            return self >= Model::ReadCommitted;
        }
        if SER.contains(&anomaly) {
            return self >= Model::Serializable;
        }
        let base = anomaly
            .strip_suffix("-realtime")
            .or_else(|| anomaly.strip_suffix("-process"));
        match base {
            Some(b) if CYCLES.contains(&b) => self == Model::StrictSerializable,
            _ => false,
        }
    }
}

impl FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Model, String> {
        match s {
            "read-uncommitted" | "PL-1" => Ok(Model::ReadUncommitted),
            "read-committed" | "PL-2" => Ok(Model::ReadCommitted),
            "serializable" | "PL-3" => Ok(Model::Serializable),
            "strict-serializable" | "strong-serializable" | "PL-SS" => {
                Ok(Model::StrictSerializable)
            }
            _ => Err(format!(
                "unknown consistency model {s:?}; this checker knows read-uncommitted, \
                 read-committed, serializable and strict-serializable"
            )),
        }
    }
}

/// The models a history must satisfy: a set of [`Model`]s (default `strict-serializable`,
/// Maelstrom's). The strongest decides, since each model implies the weaker ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Models(u8);

impl Default for Models {
    fn default() -> Self {
        Models::of(&[Model::StrictSerializable])
    }
}

impl Models {
    pub fn of(models: &[Model]) -> Models {
        Models(models.iter().fold(0, |m, &x| m | 1 << x as u8))
    }

    /// Parses `--consistency-models`: names separated by commas, spaces allowed around them.
    pub fn parse(s: &str) -> Result<Models, String> {
        let models = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Model::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        if models.is_empty() {
            return Err("--consistency-models names no model".into());
        }
        Ok(Models::of(&models))
    }

    pub fn iter(self) -> impl Iterator<Item = Model> {
        Model::ALL
            .into_iter()
            .filter(move |&m| self.0 & (1 << m as u8) != 0)
    }

    /// Whether any of the models prohibits `anomaly`.
    pub fn prohibits(self, anomaly: &str) -> bool {
        self.iter().any(|m| m.prohibits(anomaly))
    }

    /// Whether the models need `process` and `realtime` edges.
    pub fn needs_realtime(self) -> bool {
        self.iter().any(|m| m == Model::StrictSerializable)
    }
}

impl fmt::Display for Models {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Model::name).collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for Models {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Model::name))
    }
}

/// A key or a value, compared as Maelstrom compares them (Clojure equality: `1` and `1.0`
/// differ): integers as themselves, anything else by its JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    Int(i64),
    Other(String),
}

impl Atom {
    pub fn of(v: &Value) -> Atom {
        match v.as_i64() {
            Some(i) => Atom::Int(i),
            None => Atom::Other(v.to_string()),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Atom::Int(i) => json!(i),
            Atom::Other(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        }
    }
}

/// What a transaction's outcome says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Indeterminate: its writes may have taken effect.
    Info,
    Fail,
}

/// One micro-op. `value` is the raw JSON (a read's result, a write's argument).
#[derive(Debug, Clone)]
pub struct Mop {
    pub read: bool,
    pub key: Atom,
    pub value: Value,
}

impl Mop {
    pub fn to_json(&self, write_f: &str) -> Value {
        json!([
            if self.read { "r" } else { write_f },
            self.key.to_json(),
            self.value
        ])
    }
}

/// One transaction of the history.
#[derive(Debug, Clone)]
pub struct Txn {
    pub outcome: Outcome,
    pub process: u64,
    /// Invocation time (ns).
    pub invoked: u64,
    /// Completion time (ns) of an `ok` transaction; `None` for the others.
    pub completed: Option<u64>,
    /// The op that describes it in reports (the completion, or the invocation).
    pub op: usize,
    pub mops: Vec<Mop>,
}

/// The history's transactions, in invocation order, with the ops they came from.
pub struct Txns<'h> {
    pub txns: Vec<Txn>,
    pub ops: std::borrow::Cow<'h, [Op]>,
}

impl<'h> Txns<'h> {
    /// Collects the client `txn` ops of `history`. Micro-ops that are not `[f, key, value]`
    /// with `f` a read or `write_f` are skipped (the closed schema let none through).
    pub fn new(history: &'h [Op], write_f: &str) -> Txns<'h> {
        let ops = in_index_order(history);
        let pairing = Pairing::new(&ops);
        let mut txns = Vec::new();
        for (pos, op) in ops.iter().enumerate() {
            let Process::Client(process) = op.process else {
                continue;
            };
            if op.kind != OpType::Invoke || op.f != "txn" {
                continue;
            }
            let done = pairing.completion(pos).map(|c| &ops[c]);
            let outcome = match done.map(|d| d.kind) {
                Some(OpType::Ok) => Outcome::Ok,
                Some(OpType::Fail) => Outcome::Fail,
                _ => Outcome::Info,
            };
            let source = match (outcome, done) {
                (Outcome::Ok, Some(d)) => d,
                _ => op,
            };
            let value = source.value.to_json();
            let mops = value
                .as_array()
                .map(|a| a.iter().filter_map(|m| parse_mop(m, write_f)).collect())
                .unwrap_or_default();
            txns.push(Txn {
                outcome,
                process,
                invoked: op.time,
                completed: (outcome == Outcome::Ok).then(|| done.map_or(op.time, |d| d.time)),
                op: pairing.completion(pos).unwrap_or(pos),
                mops,
            });
        }
        Txns { txns, ops }
    }

    /// The op describing transaction `t`, as JSON.
    pub fn op_json(&self, t: usize) -> Value {
        serde_json::to_value(&self.ops[self.txns[t].op]).unwrap_or(Value::Null)
    }

    /// Adds the `process` edges between a process's `ok` transactions, and the `realtime` edges,
    /// to `g`. As in Elle's realtime graph, an `ok` transaction precedes every later invocation,
    /// `ok` or `info`: an `info` one never completed, so it gets edges in and none out.
    pub fn add_order_edges(&self, g: &mut Graph) {
        let mut last_of: HashMap<u64, usize> = HashMap::new();
        for (t, txn) in self.txns.iter().enumerate() {
            if txn.outcome != Outcome::Ok {
                continue;
            }
            if let Some(&prev) = last_of.get(&txn.process) {
                g.add(prev, t, PROCESS, None);
            }
            last_of.insert(txn.process, t);
        }
        graph::add_realtime_edges(
            g,
            self.txns
                .iter()
                .enumerate()
                .filter(|(_, txn)| txn.outcome != Outcome::Fail)
                .map(|(t, txn)| (t, txn.invoked, txn.completed)),
        );
    }
}

fn parse_mop(m: &Value, write_f: &str) -> Option<Mop> {
    let parts = m.as_array().filter(|p| p.len() == 3)?;
    let read = match parts[0].as_str()? {
        "r" => true,
        f if f == write_f => false,
        _ => return None,
    };
    Some(Mop {
        read,
        key: Atom::of(&parts[1]),
        value: parts[2].clone(),
    })
}

/// Elle's `lost-update` (`elle.txn/lost-update-cases`), for both workloads: in each `ok`
/// transaction, the value of a key's first read, if the transaction writes the key after it,
/// puts the transaction under (key, value); two or more transactions under one (key, value) are
/// a case. Values compare as a whole (a register's value, a list-append read's list; `null` is
/// a value). As in Elle, the first read counts even when the transaction wrote the key before
/// it, and only the first write after it.
pub fn lost_update(txns: &Txns<'_>, anomalies: &mut Anomalies) {
    // (key, value read) → (the value as JSON, the transactions).
    let mut under: BTreeMap<(Atom, Atom), (Value, Vec<usize>)> = BTreeMap::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        let mut first_read: HashMap<&Atom, &Value> = HashMap::new();
        let mut counted: HashSet<&Atom> = HashSet::new();
        for m in &txn.mops {
            if m.read {
                first_read.entry(&m.key).or_insert(&m.value);
            } else if !counted.contains(&m.key) {
                if let Some(v) = first_read.get(&m.key) {
                    counted.insert(&m.key);
                    under
                        .entry((m.key.clone(), Atom::of(v)))
                        .or_insert_with(|| ((*v).clone(), Vec::new()))
                        .1
                        .push(t);
                }
            }
        }
    }
    for ((k, _), (v, mut ts)) in under {
        if ts.len() < 2 {
            continue;
        }
        // History order, as Elle lists them.
        ts.sort_by_key(|&t| txns.txns[t].op);
        anomalies.add(
            "lost-update",
            json!({
                "key": k.to_json(),
                "value": v,
                "txns": ts.iter().map(|&t| txns.op_json(t)).collect::<Vec<_>>(),
            }),
        );
    }
}

/// The anomalies found, by type, before the models decide which matter.
#[derive(Default)]
pub struct Anomalies {
    pub cases: BTreeMap<String, Vec<Value>>,
}

impl Anomalies {
    pub fn add(&mut self, kind: &str, case: Value) {
        let v = self.cases.entry(kind.to_string()).or_default();
        if v.len() < MAX_CASES {
            v.push(case);
        }
    }
}

/// The checker's result: Elle's keys, and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ElleResult {
    #[serde(flatten)]
    pub map: Map<String, Value>,
    #[serde(skip)]
    pub validity: Validity,
}

impl CheckResult for ElleResult {
    fn validity(&self) -> Validity {
        self.validity
    }
}

impl ElleResult {
    /// The anomaly types reported.
    pub fn anomaly_types(&self) -> Vec<String> {
        self.map
            .get("anomaly-types")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Which of the four models the anomalies rule out: (`not`, `also-not`).
fn boundary<'a>(
    types: impl Iterator<Item = &'a String> + Clone,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let impossible: Vec<Model> = Model::ALL
        .into_iter()
        .filter(|m| types.clone().any(|t| m.prohibits(t)))
        .collect();
    let not = impossible
        .first()
        .map(|m| vec![m.name()])
        .unwrap_or_default();
    let also = impossible.iter().skip(1).map(|m| m.name()).collect();
    (not, also)
}

/// Elle's result map from the anomalies found: only the types the models prohibit, plus
/// `empty-transaction-graph` and `cycle-search-timeout`, are reported.
pub fn result_map(models: Models, anomalies: Anomalies) -> ElleResult {
    // Types that make the verdict unknown rather than invalid: Elle's two, and a list-append
    // read of an element no transaction appended, on which Elle's check fails (Jepsen then
    // reports `:valid? :unknown`; here the anomalies found besides still count).
    const UNKNOWN: [&str; 3] = [
        "empty-transaction-graph",
        "cycle-search-timeout",
        "unwritten-element",
    ];
    let (not, also_not) = boundary(anomalies.cases.keys());
    let reportable: BTreeMap<String, Vec<Value>> = anomalies
        .cases
        .into_iter()
        .filter(|(t, _)| models.prohibits(t) || UNKNOWN.contains(&t.as_str()))
        .collect();
    let mut map = Map::new();
    if reportable.is_empty() {
        map.insert("valid?".into(), json!(true));
        return ElleResult {
            map,
            validity: Validity::True,
        };
    }
    let validity = if reportable.keys().any(|t| models.prohibits(t)) {
        Validity::False
    } else {
        Validity::Unknown
    };
    map.insert("valid?".into(), validity.to_json());
    map.insert(
        "anomaly-types".into(),
        json!(reportable.keys().collect::<Vec<_>>()),
    );
    map.insert("anomalies".into(), json!(reportable));
    map.insert("not".into(), json!(not));
    map.insert("also-not".into(), json!(also_not));
    ElleResult { map, validity }
}

/// The cycle search over a finished graph, its anomalies added to `anomalies`; then the result.
fn finish(txns: &Txns<'_>, mut g: Graph, models: Models, mut anomalies: Anomalies) -> ElleResult {
    if g.edge_count() == 0 {
        anomalies.add("empty-transaction-graph", json!(true));
    }
    let realtime = models.needs_realtime();
    if realtime {
        txns.add_order_edges(&mut g);
    }
    let g = g.freeze();
    let wanted = |name: &str| models.prohibits(name);
    let found = graph::search(&g, realtime, &wanted, SEARCH_STEPS);
    for cycle in found.cycles {
        let steps: Vec<Value> = cycle
            .steps
            .iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("type".into(), json!(graph::kind_name(s.kind)));
                if let Some(k) = g.explain(s.from, s.to, s.kind) {
                    m.insert("key".into(), k.to_json());
                }
                Value::Object(m)
            })
            .collect();
        let mut ops: Vec<Value> = cycle.steps.iter().map(|s| txns.op_json(s.from)).collect();
        if let Some(first) = ops.first().cloned() {
            ops.push(first);
        }
        anomalies.add(
            &cycle.name,
            json!({"type": cycle.name, "cycle": ops, "steps": steps}),
        );
    }
    if found.timed_out > 0 {
        anomalies.add(
            "cycle-search-timeout",
            json!({"components-not-searched": found.timed_out}),
        );
    }
    result_map(models, anomalies)
}

/// `txn-rw-register`'s checker: Elle's rw-register analysis (versions ordered by the initial
/// `null` and writes-follow-reads within a transaction), then Maelstrom's wrapper:
/// `cycle-search-timeout` is dropped, and the result is valid exactly when no type remains.
pub fn check_rw_register(history: &[Op], models: Models) -> ElleResult {
    let txns = Txns::new(history, "w");
    let (g, mut anomalies) = rw_register::analyse(&txns);
    lost_update(&txns, &mut anomalies);
    let mut res = finish(&txns, g, models, anomalies);
    if let Some(Value::Object(a)) = res.map.get_mut("anomalies") {
        a.remove("cycle-search-timeout");
    }
    let mut types = res.anomaly_types();
    types.retain(|t| t != "cycle-search-timeout");
    if types.is_empty() {
        res.map = Map::new();
        res.map.insert("valid?".into(), json!(true));
        res.validity = Validity::True;
    } else {
        res.map.insert("anomaly-types".into(), json!(types));
        res.validity = Validity::False;
        res.map.insert("valid?".into(), json!(false));
    }
    res
}

/// `txn-list-append`'s checker: Elle's list-append analysis (each key's version order is its
/// longest read), with Elle's verdict.
pub fn check_list_append(history: &[Op], models: Models) -> ElleResult {
    let txns = Txns::new(history, "append");
    let (g, mut anomalies) = list_append::analyse(&txns);
    lost_update(&txns, &mut anomalies);
    finish(&txns, g, models, anomalies)
}

#[cfg(test)]
mod tests;

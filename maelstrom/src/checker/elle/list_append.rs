//! Elle's list-append analysis. Appends put unique elements at the end of a key's list, so
//! every read shows a prefix of the key's one history of appends, and the longest read shows the
//! most of it: that is the key's version order.
//!
//! - Reads of a key that are not prefixes of one another are `incompatible-order`; a read holding
//!   an element twice is `duplicate-elements`. Either way the key's order is unknown and gives no
//!   `ww` or `rw` edges.
//! - `ww` from the appender of each element to the appender of the next one in the order;
//!   `wr` from the appender of a read's last element to the reader; `rw` from a reader to the
//!   appender of the element right after what it read (for an empty read, the first element).
//!   Only each transaction's external reads (before its own appends to the key) count.
//! - A read holding an element of a failed append is `G1a`; a read ending in an element that its
//!   transaction followed with another append to the key is `G1b`; a read that disagrees with
//!   the transaction's own earlier read and appends is `internal`.
//! - A read holding an element that its own transaction appends later is `future-read`
//!   ([Elle's `op-future-read-case`](https://github.com/jepsen-io/elle/blob/v0.2.2/src/elle/list_append.clj)):
//!   `internal` does not catch it (the read comes before the append), and the `wr` edge it
//!   stands for would be a self-edge, which the graph has none of.
//! - Along each key's longest read (every key's, consistent or not), a committed append right
//!   after a failed one, with only `info` ones between, is `dirty-update` (Elle's
//!   `dirty-update-cases`): the committed transaction built on a state that was rolled back.
//! - Two `ok` transactions that read the same value of a key and then append to it are
//!   `lost-update` ([`super::lost_update`]).

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::graph::{Graph, RW, WR, WW};
use super::{Anomalies, Atom, Outcome, Txn, Txns};

/// A read's list (a `null` read is the empty list).
fn list(v: &Value) -> Vec<Atom> {
    v.as_array()
        .map(|a| a.iter().map(Atom::of).collect())
        .unwrap_or_default()
}

/// What a transaction knows of a key before reading it: the whole list, or only that the list
/// ends with its own appends.
enum Known {
    List(Vec<Atom>),
    Suffix(Vec<Atom>),
}

/// The dependency graph and the anomalies that need no cycle.
pub fn analyse(txns: &Txns<'_>) -> (Graph, Anomalies) {
    let mut anomalies = Anomalies::default();
    let mut appender: HashMap<(Atom, Atom), usize> = HashMap::new();
    let mut intermediate: HashMap<(Atom, Atom), usize> = HashMap::new();
    let mut failed: HashMap<(Atom, Atom), usize> = HashMap::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        let mut last: HashMap<&Atom, Atom> = HashMap::new();
        for m in txn.mops.iter().filter(|m| !m.read) {
            let e = Atom::of(&m.value);
            if txn.outcome == Outcome::Fail {
                failed.entry((m.key.clone(), e)).or_insert(t);
                continue;
            }
            appender.entry((m.key.clone(), e.clone())).or_insert(t);
            if let Some(prev) = last.insert(&m.key, e) {
                intermediate.insert((m.key.clone(), prev), t);
            }
        }
    }

    // Who appended each element, whatever the outcome (the last in history order, as in Elle's
    // write index): for dirty updates.
    let mut by_op: Vec<usize> = (0..txns.txns.len()).collect();
    by_op.sort_by_key(|&t| txns.txns[t].op);
    let mut written: HashMap<(Atom, Atom), usize> = HashMap::new();
    for t in by_op {
        for m in txns.txns[t].mops.iter().filter(|m| !m.read) {
            written.insert((m.key.clone(), Atom::of(&m.value)), t);
        }
    }

    // Every ok read, per key; the external ones kept for the edges.
    let mut reads: HashMap<Atom, Vec<Vec<Atom>>> = HashMap::new();
    let mut external: Vec<(usize, usize, Vec<Atom>)> = Vec::new();
    let mut bad_keys: std::collections::HashSet<Atom> = Default::default();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        if let Some((i, e)) = future_read(txn) {
            anomalies.add(
                "future-read",
                json!({"op": txns.op_json(t), "mop": txn.mops[i].to_json("append"), "element": e.to_json()}),
            );
        }
        let mut known: HashMap<&Atom, Known> = HashMap::new();
        for (i, m) in txn.mops.iter().enumerate() {
            if !m.read {
                let e = Atom::of(&m.value);
                match known
                    .entry(&m.key)
                    .or_insert_with(|| Known::Suffix(Vec::new()))
                {
                    Known::List(l) | Known::Suffix(l) => l.push(e),
                }
                continue;
            }
            let l = list(&m.value);
            let mop = || m.to_json("append");
            let mut counts: HashMap<&Atom, usize> = HashMap::new();
            for e in &l {
                *counts.entry(e).or_default() += 1;
            }
            let dups: Vec<Value> = counts
                .iter()
                .filter(|(_, &c)| c > 1)
                .map(|(e, c)| json!([e.to_json(), c]))
                .collect();
            if !dups.is_empty() {
                anomalies.add(
                    "duplicate-elements",
                    json!({"op": txns.op_json(t), "mop": mop(), "duplicates": dups}),
                );
                bad_keys.insert(m.key.clone());
            }
            for e in &l {
                let ke = (m.key.clone(), e.clone());
                if !appender.contains_key(&ke) {
                    if let Some(&w) = failed.get(&ke) {
                        anomalies.add(
                            "G1a",
                            json!({"op": txns.op_json(t), "mop": mop(), "writer": txns.op_json(w), "element": e.to_json()}),
                        );
                    }
                }
            }
            match known.get(&m.key) {
                Some(Known::List(k)) if *k != l => anomalies.add(
                    "internal",
                    json!({"op": txns.op_json(t), "mop": mop(), "expected": k.iter().map(Atom::to_json).collect::<Vec<_>>()}),
                ),
                Some(Known::Suffix(s)) if !l.ends_with(s) => anomalies.add(
                    "internal",
                    json!({"op": txns.op_json(t), "mop": mop(), "expected": ["...", s.iter().map(Atom::to_json).collect::<Vec<_>>()]}),
                ),
                Some(_) => {}
                None => {
                    if let Some(e) = l.last() {
                        if let Some(&w) = intermediate.get(&(m.key.clone(), e.clone())) {
                            if w != t {
                                anomalies.add(
                                    "G1b",
                                    json!({"op": txns.op_json(t), "mop": mop(), "writer": txns.op_json(w), "element": e.to_json()}),
                                );
                            }
                        }
                    }
                    external.push((t, i, l.clone()));
                }
            }
            reads.entry(m.key.clone()).or_default().push(l.clone());
            known.insert(&m.key, Known::List(l));
        }
    }

    // Each key's order: its longest read, which every other read must be a prefix of.
    let mut order: HashMap<Atom, Vec<Atom>> = HashMap::new();
    let mut keys: Vec<&Atom> = reads.keys().collect();
    keys.sort();
    for k in keys {
        let rs = &reads[k];
        let Some(longest) = rs.iter().max_by_key(|r| r.len()) else {
            continue;
        };
        dirty_update(txns, &written, k, longest, &mut anomalies);
        if let Some(bad) = rs.iter().find(|r| !longest.starts_with(r)) {
            anomalies.add(
                "incompatible-order",
                json!({"key": k.to_json(), "values": [
                    bad.iter().map(Atom::to_json).collect::<Vec<_>>(),
                    longest.iter().map(Atom::to_json).collect::<Vec<_>>(),
                ]}),
            );
            continue;
        }
        if !bad_keys.contains(k) {
            order.insert(k.clone(), longest.clone());
        }
    }

    let mut g = Graph::new(txns.txns.len());
    for (k, o) in &order {
        for pair in o.windows(2) {
            let a = appender.get(&(k.clone(), pair[0].clone()));
            let b = appender.get(&(k.clone(), pair[1].clone()));
            if let (Some(&a), Some(&b)) = (a, b) {
                g.add(a, b, WW, Some(k));
            }
        }
    }
    for (t, i, l) in external {
        let k = &txns.txns[t].mops[i].key;
        if let Some(e) = l.last() {
            if let Some(&w) = appender.get(&(k.clone(), e.clone())) {
                g.add(w, t, WR, Some(k));
            }
        }
        if let Some(o) = order.get(k) {
            if let Some(e) = o.get(l.len()) {
                if let Some(&w) = appender.get(&(k.clone(), e.clone())) {
                    g.add(t, w, RW, Some(k));
                }
            }
        }
    }
    (g, anomalies)
}

/// Elle's `future-read` (`op-future-read-case`): the first read of the transaction that holds
/// an element the transaction itself appends later (the mop's index, and the element).
fn future_read(txn: &Txn) -> Option<(usize, Atom)> {
    let mut seen: HashMap<(&Atom, Atom), usize> = HashMap::new();
    for (i, m) in txn.mops.iter().enumerate() {
        if m.read {
            for e in list(&m.value) {
                seen.entry((&m.key, e)).or_insert(i);
            }
        } else {
            let e = Atom::of(&m.value);
            if let Some(&r) = seen.get(&(&m.key, e.clone())) {
                return Some((r, e));
            }
        }
    }
    None
}

/// Elle's `dirty-update` (`dirty-update-cases`) on key `k`, whose longest read is `longest`:
/// along the elements (first occurrences), each with the transaction that appended it (of any
/// outcome), a committed append that follows a failed one, with only `info` appends between
/// them, is a case: the elements from the failed one to the committed one, and
/// `[failed, "...", committed]`. The state before the first element counts as committed. An
/// element no transaction appended tells nothing here, like an `info` one; it is reported as
/// `unwritten-element` (Elle's check stops on an assertion there, and Jepsen then judges the
/// history `:unknown`).
fn dirty_update(
    txns: &Txns<'_>,
    written: &HashMap<(Atom, Atom), usize>,
    k: &Atom,
    longest: &[Atom],
    anomalies: &mut Anomalies,
) {
    // The last transaction that mattered (`None`: the initial state) and the elements since.
    let mut last: Option<usize> = None;
    let mut since: Vec<&Atom> = Vec::new();
    let mut seen: HashSet<&Atom> = HashSet::new();
    for e in longest {
        if !seen.insert(e) {
            continue;
        }
        since.push(e);
        let Some(&t) = written.get(&(k.clone(), e.clone())) else {
            anomalies.add(
                "unwritten-element",
                json!({"key": k.to_json(), "element": e.to_json()}),
            );
            continue;
        };
        let before = last.map(|l| (l, txns.txns[l].outcome));
        match (before, txns.txns[t].outcome) {
            (_, Outcome::Info) | (Some((_, Outcome::Fail)), Outcome::Fail) => {}
            (Some((failed, Outcome::Fail)), Outcome::Ok) => {
                anomalies.add(
                    "dirty-update",
                    json!({
                        "key": k.to_json(),
                        "values": since.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
                        "txns": [txns.op_json(failed), "...", txns.op_json(t)],
                    }),
                );
                last = Some(t);
                since = vec![e];
            }
            _ => {
                last = Some(t);
                since = vec![e];
            }
        }
    }
}

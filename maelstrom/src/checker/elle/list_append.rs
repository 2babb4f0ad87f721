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

use std::collections::HashMap;

use serde_json::{json, Value};

use super::graph::{Graph, RW, WR, WW};
use super::{Anomalies, Atom, Outcome, Txns};

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

    // Every ok read, per key; the external ones kept for the edges.
    let mut reads: HashMap<Atom, Vec<Vec<Atom>>> = HashMap::new();
    let mut external: Vec<(usize, usize, Vec<Atom>)> = Vec::new();
    let mut bad_keys: std::collections::HashSet<Atom> = Default::default();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
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

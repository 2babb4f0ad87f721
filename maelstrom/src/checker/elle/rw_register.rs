//! Elle's rw-register analysis, as Maelstrom configures it (`wfr-keys?`: writes follow reads).
//!
//! A register's versions are the values written to it (unique per key, by the generator). Their
//! order is known only where the history shows it:
//! - the initial state, `null`, comes before every written value;
//! - within one transaction that read `v1` from a key (before writing it) and then wrote `v2` to
//!   it, `v1` comes before `v2` (the write follows the read).
//!
//! Each key's version graph has those edges. A cycle in it is `cyclic-versions` (the key's edges
//! are then left out). From it: `ww` from the writer of `v1` to the writer of `v2` for each
//! version edge; `wr` from the writer of a value to each transaction that read it; `rw` from each
//! transaction that read `v1` to the writer of each `v2` right after it. Only a transaction's
//! last write to a key is a version others can see; reading one of its earlier writes is `G1b`,
//! reading a failed transaction's write `G1a`, and a read inside a transaction that disagrees
//! with what the transaction itself read or wrote before is `internal`. Two `ok` transactions
//! that read the same value of a key and then write it are `lost-update`
//! ([`super::lost_update`]).

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::graph::{Graph, RW, WR, WW};
use super::{Anomalies, Atom, Outcome, Txns};

/// A version: `None` is the initial `null`.
type Version = Option<Atom>;

fn version(v: &Value) -> Version {
    (!v.is_null()).then(|| Atom::of(v))
}

/// The dependency graph and the anomalies that need no cycle.
pub fn analyse(txns: &Txns<'_>) -> (Graph, Anomalies) {
    let mut anomalies = Anomalies::default();
    // (key, value) → the transaction whose last write to key it is / an earlier write / failed.
    let mut writer: HashMap<(Atom, Atom), usize> = HashMap::new();
    let mut intermediate: HashMap<(Atom, Atom), usize> = HashMap::new();
    let mut failed: HashMap<(Atom, Atom), usize> = HashMap::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        let mut last: HashMap<&Atom, &Value> = HashMap::new();
        for m in txn.mops.iter().filter(|m| !m.read) {
            if let Some(prev) = last.insert(&m.key, &m.value) {
                if txn.outcome != Outcome::Fail {
                    intermediate.insert((m.key.clone(), Atom::of(prev)), t);
                }
            }
            if txn.outcome == Outcome::Fail {
                failed
                    .entry((m.key.clone(), Atom::of(&m.value)))
                    .or_insert(t);
            }
        }
        if txn.outcome != Outcome::Fail {
            for (k, v) in last {
                writer.entry((k.clone(), Atom::of(v))).or_insert(t);
            }
        }
    }

    // Each ok transaction's external reads (its first access to the key is a read), and the
    // version edges: null before every version, and writes following reads.
    let mut versions: HashMap<Atom, HashSet<(Version, Version)>> = HashMap::new();
    for (k, v) in writer.keys() {
        versions
            .entry(k.clone())
            .or_default()
            .insert((None, Some(v.clone())));
    }
    let mut external: Vec<(usize, Atom, Version, usize)> = Vec::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        // What the transaction knows of each key: the value it first read or last wrote.
        let mut known: HashMap<&Atom, Version> = HashMap::new();
        let mut first_read: HashMap<&Atom, Version> = HashMap::new();
        let mut wrote: HashMap<&Atom, Version> = HashMap::new();
        for (i, m) in txn.mops.iter().enumerate() {
            let v = version(&m.value);
            if m.read {
                match known.get(&m.key) {
                    Some(expected) if *expected != v => anomalies.add(
                        "internal",
                        json!({
                            "op": txns.op_json(t),
                            "mop": m.to_json("w"),
                            "expected": expected.as_ref().map_or(Value::Null, Atom::to_json),
                        }),
                    ),
                    Some(_) => {}
                    None => {
                        first_read.insert(&m.key, v.clone());
                        external.push((t, m.key.clone(), v.clone(), i));
                    }
                }
            } else {
                wrote.insert(&m.key, v.clone());
            }
            known.insert(&m.key, v);
        }
        for (k, w) in wrote {
            if let Some(r) = first_read.get(k) {
                // Only a read before the first write counts: `first_read` holds exactly those.
                versions
                    .entry(k.clone())
                    .or_default()
                    .insert((r.clone(), w));
            }
        }
    }

    // Version graphs: successors per key; keys whose versions form a cycle are dropped.
    let mut next: HashMap<Atom, HashMap<Version, Vec<Version>>> = HashMap::new();
    let mut keys: Vec<&Atom> = versions.keys().collect();
    keys.sort();
    for k in keys {
        let edges = &versions[k];
        let mut succ: HashMap<Version, Vec<Version>> = HashMap::new();
        for (a, b) in edges {
            if a != b {
                succ.entry(a.clone()).or_default().push(b.clone());
            }
        }
        if let Some(cycle) = version_cycle(&succ) {
            anomalies.add(
                "cyclic-versions",
                json!({
                    "key": k.to_json(),
                    "scc": cycle.iter().map(|v| v.as_ref().map_or(Value::Null, Atom::to_json)).collect::<Vec<_>>(),
                }),
            );
            continue;
        }
        next.insert(k.clone(), succ);
    }

    let mut g = Graph::new(txns.txns.len());
    for (k, succ) in &next {
        for (a, bs) in succ {
            for b in bs {
                let Some(b) = b else { continue };
                let wb = writer.get(&(k.clone(), b.clone()));
                if let (Some(a), Some(&wb)) = (a, wb) {
                    if let Some(&wa) = writer.get(&(k.clone(), a.clone())) {
                        g.add(wa, wb, WW, Some(k));
                    }
                }
            }
        }
    }
    for (t, k, v, i) in external {
        if let Some(v) = &v {
            let kv = (k.clone(), v.clone());
            if let Some(&w) = writer.get(&kv) {
                g.add(w, t, WR, Some(&k));
            } else if let Some(&w) = failed.get(&kv) {
                anomalies.add(
                    "G1a",
                    json!({"op": txns.op_json(t), "mop": txns.txns[t].mops[i].to_json("w"), "writer": txns.op_json(w)}),
                );
            }
            if let Some(&w) = intermediate.get(&kv) {
                if w != t {
                    anomalies.add(
                        "G1b",
                        json!({"op": txns.op_json(t), "mop": txns.txns[t].mops[i].to_json("w"), "writer": txns.op_json(w)}),
                    );
                }
            }
        }
        if let Some(bs) = next.get(&k).and_then(|s| s.get(&v)) {
            for b in bs.iter().flatten() {
                if let Some(&w) = writer.get(&(k.clone(), b.clone())) {
                    g.add(t, w, RW, Some(&k));
                }
            }
        }
    }
    (g, anomalies)
}

/// A cycle among one key's versions, if there is one (depth-first search).
fn version_cycle(succ: &HashMap<Version, Vec<Version>>) -> Option<Vec<Version>> {
    // 0 unvisited, 1 on the path, 2 done.
    let mut state: HashMap<&Version, u8> = HashMap::new();
    let mut roots: Vec<&Version> = succ.keys().collect();
    roots.sort();
    for root in roots {
        if state.get(root).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut path: Vec<(&Version, usize)> = vec![(root, 0)];
        state.insert(root, 1);
        while let Some(&mut (v, ref mut i)) = path.last_mut() {
            let out = succ.get(v).map_or(&[][..], Vec::as_slice);
            if *i < out.len() {
                let w = &out[*i];
                *i += 1;
                match state.get(w).copied().unwrap_or(0) {
                    0 => {
                        state.insert(w, 1);
                        path.push((w, 0));
                    }
                    1 => {
                        let from = path.iter().position(|(x, _)| *x == w).unwrap_or(0);
                        return Some(path[from..].iter().map(|(x, _)| (*x).clone()).collect());
                    }
                    _ => {}
                }
            } else {
                state.insert(v, 2);
                path.pop();
            }
        }
    }
    None
}

//! `bench --elle [--txns N]`: how long the txn workloads' checker (`maelstrom::checker::elle`)
//! takes over a history of N transactions (default 10,000), for each workload and for the
//! cheapest and the dearest consistency model (strict-serializable adds the process and realtime
//! edges); writes the "Elle checker" section of `BENCHMARKS.md` and prints the table.
//!
//! The histories come from a seeded in-process reference (10 clients against one map behind one
//! lock; each transaction takes effect at one instant between its invocation and its completion,
//! 5% fail, 5% are left indeterminate), with Maelstrom's generator at its defaults, so they are
//! valid and the checker does its whole work: every edge built, every component searched.
//! Each configuration is checked 5 times; the median and the fastest are reported.

use maelstrom::checker::elle::{self, Models};
use maelstrom::checker::{CheckResult, Validity};
use maelstrom::history::{Op, OpType, Process};
use maelstrom::workload::txn::{TxnGen, TxnKind, TxnOpts};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Where the section starts and ends in `BENCHMARKS.md`.
pub const BEGIN: &str = "<!-- elle: written by `bench --elle`; `bench` keeps it -->";
pub const END: &str = "<!-- /elle -->";

const CLIENTS: usize = 10;
const REPEATS: usize = 5;
const SEED: u64 = 1;

/// A strict-serializable history of `txns` transactions by [`CLIENTS`] concurrent clients.
pub fn reference_history(kind: TxnKind, txns: usize, seed: u64) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut gen = TxnGen::new(TxnOpts::default());
    let mut store: HashMap<String, Value> = HashMap::new();
    // Per client: (invocation value, completion value once applied, outcome).
    let mut open: Vec<Option<(Value, Option<Value>, OpType)>> = vec![None; CLIENTS];
    let mut process: Vec<u64> = (0..CLIENTS as u64).collect();
    let mut history = Vec::with_capacity(4 * txns);
    let (mut started, mut now) = (0, 0u64);
    while started < txns || open.iter().any(Option::is_some) {
        now += 100_000;
        let c = rng.random_range(0..CLIENTS);
        let p = Process::Client(process[c]);
        let at = history.len();
        match open[c].take() {
            None if started < txns => {
                let v = gen.next_txn(kind, &mut rng);
                let fate = match rng.random_range(0..20) {
                    0 => OpType::Fail,
                    1 => OpType::Info,
                    _ => OpType::Ok,
                };
                history.push(Op::new(at, now, OpType::Invoke, p, "txn", v.clone()));
                open[c] = Some((v, None, fate));
                started += 1;
            }
            None => {}
            Some((v, None, fate)) => {
                let applied = fate == OpType::Ok || (fate == OpType::Info && rng.random_bool(0.5));
                let done = if applied {
                    apply(&mut store, &v)
                } else {
                    Value::Null
                };
                open[c] = Some((v, Some(done), fate));
            }
            Some((v, Some(done), fate)) => {
                let value = if fate == OpType::Ok { done } else { v };
                history.push(Op::new(at, now, fate, p, "txn", value));
                if fate == OpType::Info {
                    process[c] += CLIENTS as u64;
                }
            }
        }
    }
    history
}

/// Runs a transaction against the store; returns it with its reads filled in.
fn apply(store: &mut HashMap<String, Value>, txn: &Value) -> Value {
    let mops = txn.as_array().map_or(&[][..], Vec::as_slice);
    let out: Vec<Value> = mops
        .iter()
        .map(|m| {
            let key = m[1].to_string();
            match m[0].as_str() {
                Some("r") => json!(["r", m[1], store.get(&key).cloned().unwrap_or(Value::Null)]),
                Some("w") => {
                    store.insert(key, m[2].clone());
                    m.clone()
                }
                _ => {
                    if let Value::Array(l) = store.entry(key).or_insert_with(|| json!([])) {
                        l.push(m[2].clone());
                    }
                    m.clone()
                }
            }
        })
        .collect();
    Value::Array(out)
}

/// Runs the benchmark and writes its section into `out/BENCHMARKS.md`.
pub fn run(out: &Path, txns: usize) {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}\n## Elle checker (txn workloads)\n");
    let _ = writeln!(
        s,
        "Produced by `target/release/bench --elle --txns {txns}`: the txn checker over a seeded, valid history of \
         {txns} transactions (10 concurrent clients against one lock-protected map, Maelstrom's generator at its \
         defaults; 5% failed, 5% indeterminate), checked {REPEATS} times per row in this process; wall time of \
         the whole check (parsing the history, versions, graph, cycle search, result), median and fastest.\n"
    );
    let _ = writeln!(
        s,
        "| workload | models | verdict | median ms | fastest ms |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|");
    for kind in [TxnKind::RwRegister, TxnKind::ListAppend] {
        let history = reference_history(kind, txns, SEED);
        for models in ["read-committed", "strict-serializable"] {
            let m = Models::parse(models).unwrap_or_default();
            let mut times = Vec::with_capacity(REPEATS);
            let mut verdict = Validity::Unknown;
            for _ in 0..REPEATS {
                let start = Instant::now();
                verdict = match kind {
                    TxnKind::RwRegister => elle::check_rw_register(&history, m).validity(),
                    TxnKind::ListAppend => elle::check_list_append(&history, m).validity(),
                };
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            let name = match kind {
                TxnKind::RwRegister => "txn-rw-register",
                TxnKind::ListAppend => "txn-list-append",
            };
            let line = format!(
                "| {name} | {models} | {} | {:.0} | {:.0} |",
                verdict.to_json(),
                times[REPEATS / 2],
                times[0]
            );
            println!("{line}");
            let _ = writeln!(s, "{line}");
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into());
    let _ = writeln!(
        s,
        "\nLoad average when the table was written: {load} (on {} cores).\n{END}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    super::write_marked_section(out, BEGIN, END, &s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{section_marked, splice_marked};

    #[test]
    fn reference_histories_are_valid_and_the_section_splices() {
        for kind in [TxnKind::RwRegister, TxnKind::ListAppend] {
            let h = reference_history(kind, 500, 3);
            let m = Models::default();
            let v = match kind {
                TxnKind::RwRegister => elle::check_rw_register(&h, m).validity(),
                TxnKind::ListAppend => elle::check_list_append(&h, m).validity(),
            };
            assert_eq!(v, Validity::True, "{kind:?}");
        }
        let doc = format!("# B\n\n{}\nhand\n", super::super::KEPT_MARKER);
        let with = splice_marked(&doc, BEGIN, END, &format!("{BEGIN}\nold\n{END}"));
        assert!(with.find(BEGIN) < with.find(super::super::KEPT_MARKER));
        let again = splice_marked(&with, BEGIN, END, &format!("{BEGIN}\nnew\n{END}"));
        assert_eq!(
            section_marked(&again, BEGIN, END),
            Some(&*format!("{BEGIN}\nnew\n{END}"))
        );
        assert!(!again.contains("old") && again.ends_with("hand\n"));
    }
}

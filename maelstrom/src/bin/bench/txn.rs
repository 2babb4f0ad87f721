//! The txn-rw-register benchmark (`just bench-txn`): murmur's `txn-rw-register` node in its two
//! designs (`batched`, the default: one batch of updates in flight per peer; `per-txn`, the
//! straightforward Gossip Glomers answer: every update to every peer as a message of its own),
//! each with and without persistence, on the Gossip Glomers 6a, 6b and 6c configurations. Seeds
//! are the outer loop and designs the inner one, so that the designs of one seed run back to back
//! (the machine's load drifts over minutes, not seconds). Writes its table as the
//! "txn-rw-register" section of `BENCHMARKS.md`, leaving the rest of the file as it is.
//!
//! 6a has one node: nothing is replicated, so only persistence differs and the per-txn rows are
//! left out.

use super::counters::quantile;
use super::{fmt, num, read_history, read_results, run_test_command, sibling};
use maelstrom::history::{Op, OpType, Process};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// Where the section starts and ends in `BENCHMARKS.md`.
pub const BEGIN: &str = "<!-- txn: written by `bench --txn`; `bench` keeps it -->";
pub const END: &str = "<!-- /txn -->";

/// The Gossip Glomers configurations (as `just challenges` runs them).
const CONFIGS: [(&str, &str, bool); 3] = [
    (
        "6a",
        "--node-count 1 --time-limit 20 --rate 1000 --concurrency 2n --consistency-models read-uncommitted --availability total",
        false,
    ),
    (
        "6b",
        "--node-count 2 --concurrency 2n --time-limit 20 --rate 1000 --consistency-models read-uncommitted --availability total --nemesis partition",
        true,
    ),
    (
        "6c",
        "--node-count 2 --concurrency 2n --time-limit 20 --rate 1000 --consistency-models read-committed --availability total --nemesis partition",
        true,
    ),
];

/// (name, node arguments, replicates: whether the row differs from `batched` only with peers).
const DESIGNS: [(&str, &str, bool); 4] = [
    ("batched, durable (default)", "", false),
    ("per-txn, durable", " -- --design per-txn", true),
    ("batched, in memory", " -- --persist false", false),
    (
        "per-txn, in memory (the Gossip Glomers answer)",
        " -- --design per-txn --persist false",
        true,
    ),
];

/// Latencies of `ok` transactions and how the transactions ended.
#[derive(Debug, Default, PartialEq)]
pub struct HistoryStats {
    pub ok_ms: Vec<f64>,
    pub ok: u64,
    pub not_ok: u64,
}

/// Pairs each client's invocation with its completion (one op outstanding per client).
pub fn history_stats(history: &[Op]) -> HistoryStats {
    let mut s = HistoryStats::default();
    let mut open: HashMap<u64, &Op> = HashMap::new();
    for op in history {
        let Process::Client(p) = op.process else {
            continue;
        };
        if op.kind == OpType::Invoke {
            open.insert(p, op);
            continue;
        }
        let Some(inv) = open.remove(&p) else { continue };
        if op.kind == OpType::Ok {
            s.ok += 1;
            s.ok_ms.push(op.time.saturating_sub(inv.time) as f64 / 1e6);
        } else {
            s.not_ok += 1;
        }
    }
    s
}

/// One run's figures.
#[derive(Debug, Default)]
struct Run {
    valid: bool,
    servers: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
    cpu: Option<f64>,
    ok: u64,
    not_ok: u64,
}

/// "median (min–max)" of the present values, `digits` decimals.
fn spread(xs: impl Iterator<Item = Option<f64>>, digits: usize) -> String {
    let mut v: Vec<f64> = xs.flatten().collect();
    if v.is_empty() {
        return "–".into();
    }
    v.sort_by(f64::total_cmp);
    let med = quantile(&v, 0.5);
    if v.len() == 1 {
        return fmt(med, digits);
    }
    format!(
        "{} ({}–{})",
        fmt(med, digits),
        fmt(v.first().copied(), digits),
        fmt(v.last().copied(), digits)
    )
}

/// Runs the benchmark and writes its section into `out/BENCHMARKS.md`.
pub fn run(runner: &str, node_dir_of: &str, out: &Path, scratch: &Path, seeds: u64) {
    let node = sibling(node_dir_of, "txn-rw-register");
    let command = |base: &str, seed: u64, args: &str| {
        format!("{runner} test -w txn-rw-register --bin {node} {base} --seed {seed}{args}")
    };
    // (config, design) -> runs, in seed order.
    let mut runs: HashMap<(usize, usize), Vec<Run>> = HashMap::new();
    for seed in 1..=seeds {
        for (ci, (cname, base, replicated)) in CONFIGS.iter().enumerate() {
            for (di, (dname, args, needs_peers)) in DESIGNS.iter().enumerate() {
                if *needs_peers && !replicated {
                    continue;
                }
                let command = command(base, seed, args);
                let dir = scratch.join(format!("txn-{ci}-{di}-{seed}"));
                eprintln!("txn: seed {seed}, {cname}, {dname}");
                run_test_command(runner, &command, &dir);
                let run_dir = dir.join("txn-rw-register").join("latest");
                let r = match read_results(&run_dir.join("results.json")) {
                    Some(v) => {
                        let h = history_stats(&read_history(&run_dir));
                        Run {
                            valid: v.get("valid?") == Some(&Value::Bool(true)),
                            servers: num(&v, &["net", "servers", "msgs-per-op"]),
                            p50: quantile(&h.ok_ms, 0.5),
                            p99: quantile(&h.ok_ms, 0.99),
                            max: quantile(&h.ok_ms, 1.0),
                            cpu: num(&v, &["runner", "nodes", "cpu-seconds"]),
                            ok: h.ok,
                            not_ok: h.not_ok,
                        }
                    }
                    None => Run::default(),
                };
                runs.entry((ci, di)).or_default().push(r);
            }
        }
    }
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}\n## txn-rw-register (Gossip Glomers 6a–6c)\n");
    let _ = writeln!(
        s,
        "Produced by `just bench-txn` (`target/release/bench --txn --seeds {seeds}`): murmur's `txn-rw-register` \
         node in its two designs (`--design batched`, the default: per peer one `replicate` in flight carrying every \
         update the peer lacks; `--design per-txn`, the straightforward answer: every transaction's writes to every \
         peer as a message of their own, each retried until acknowledged), each durable (the default: `txn_ok` and \
         `replicate_ok` wait for the records) and in memory (`--persist false`), on the challenges' configurations, \
         seeds 1–{seeds}, the designs of a seed run back to back. 6a has one node, so nothing is replicated and only \
         persistence differs. Each cell is the median over the seeds with the range in brackets. msgs-per-op is \
         Maelstrom's `servers` figure (node↔node messages per client op). Latencies are of `ok` transactions, in ms, \
         from each run's history. Node CPU is summed over the nodes (`getrusage` of the reaped processes). Every \
         transaction is answered `ok` or times out (`info`, e.g. a reply the client guard dropped after a stall); \
         the last column sums them over the seeds. Every run: `target/release/maelstrom test -w txn-rw-register \
         --bin target/release/txn-rw-register <configuration> --seed <seed> [-- <node arguments>]`.\n"
    );
    let _ = writeln!(
        s,
        "| challenge | design | valid | msgs-per-op servers | p50 ms | p99 ms | max ms | node CPU s | ok / not ok | configuration and node arguments |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for (ci, (cname, base, _)) in CONFIGS.iter().enumerate() {
        for (di, (dname, args, _)) in DESIGNS.iter().enumerate() {
            let Some(rs) = runs.get(&(ci, di)) else {
                continue;
            };
            let valid = rs.iter().filter(|r| r.valid).count();
            let _ = writeln!(
                s,
                "| {cname} | {dname} | {} | {} | {} | {} | {} | {} | {} / {} | `{base}{args}` |",
                if valid == rs.len() {
                    format!("{valid} of {}", rs.len())
                } else {
                    format!("**{valid} of {}**", rs.len())
                },
                spread(rs.iter().map(|r| r.servers), 2),
                spread(rs.iter().map(|r| r.p50), 1),
                spread(rs.iter().map(|r| r.p99), 1),
                spread(rs.iter().map(|r| r.max), 0),
                spread(rs.iter().map(|r| r.cpu), 2),
                rs.iter().map(|r| r.ok).sum::<u64>(),
                rs.iter().map(|r| r.not_ok).sum::<u64>(),
            );
        }
    }
    let _ = writeln!(s, "{END}");
    super::write_marked_section(out, BEGIN, END, &s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{section_marked, splice_marked};

    fn op(time: u64, kind: OpType, process: u64) -> Op {
        Op::new(
            0,
            time * 1_000_000,
            kind,
            Process::Client(process),
            "txn",
            Value::Null,
        )
    }

    #[test]
    fn latencies_are_of_ok_transactions_and_outcomes_are_counted() {
        use OpType::*;
        let h = vec![
            op(0, Invoke, 0),
            op(1, Invoke, 1),
            op(4, Ok, 1),
            op(10, Info, 0),
            op(11, Invoke, 0),
            op(13, Ok, 0),
        ];
        let s = history_stats(&h);
        assert_eq!(s.ok_ms, vec![3.0, 2.0]);
        assert_eq!((s.ok, s.not_ok), (2, 1));
    }

    #[test]
    fn spread_is_the_median_and_range_of_what_is_there() {
        assert_eq!(
            spread([Some(2.0), None, Some(1.0), Some(5.0)].into_iter(), 1),
            "2.0 (1.0–5.0)"
        );
        assert_eq!(spread([Some(2.0)].into_iter(), 2), "2.00");
        assert_eq!(spread([None].into_iter(), 2), "–");
    }

    #[test]
    fn the_section_is_replaced_and_the_others_kept() {
        let sec = format!("{BEGIN}\nnew\n{END}\n");
        let lin = format!(
            "{}\nl\n{}",
            super::super::lin_kv::BEGIN,
            super::super::lin_kv::END
        );
        let text = format!("# B\n\n{lin}\n\n{BEGIN}\nold\n{END}\n");
        assert_eq!(
            splice_marked(&text, BEGIN, END, &sec),
            format!("# B\n\n{lin}\n\n{BEGIN}\nnew\n{END}\n")
        );
        assert_eq!(
            section_marked(&text, BEGIN, END),
            Some(&*format!("{BEGIN}\nold\n{END}"))
        );
    }
}

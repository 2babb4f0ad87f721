//! The lin-kv benchmark (`just bench-lin-kv`): murmur's Raft `lin-kv` node beside the
//! straightforward design, `kv-proxy` (a node that stores nothing and passes every `read`,
//! `write` and `cas` to the runner's own `lin-kv` service), on 5 nodes at rate 100 for 20 s,
//! without faults, with partitions, and with kills, pauses and partitions; one run per row, same
//! seed. Writes its table as the "lin-kv" section of `BENCHMARKS.md`, leaving the rest of the
//! file as it is.
//!
//! The proxy is as available as the service, which Maelstrom never partitions, kills or pauses
//! (its nemesis acts on nodes only), so the comparison shows what running consensus among the
//! nodes themselves costs in messages, latency and availability.

use super::counters::quantiles;
use super::{fmt, num, read_history, read_results, run_test_command, sibling};
use maelstrom::history::{Op, OpType, Process};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// Where the section starts and ends in `BENCHMARKS.md`.
pub const BEGIN: &str = "<!-- lin-kv: written by `bench --lin-kv`; `bench` keeps it -->";
pub const END: &str = "<!-- /lin-kv -->";

const BASE: &str = "--node-count 5 --concurrency 2n --rate 100 --time-limit 20";
const VARIANTS: [(&str, &str); 3] = [
    ("no faults", ""),
    ("partition", " --nemesis partition"),
    ("kill, pause, partition", " --nemesis kill,pause,partition"),
];

/// Latencies of `ok` ops by kind, and how the ops ended.
#[derive(Debug, Default, PartialEq)]
pub struct HistoryStats {
    pub read_ms: Vec<f64>,
    pub write_ms: Vec<f64>,
    pub cas_ms: Vec<f64>,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
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
        match op.kind {
            OpType::Ok => s.ok += 1,
            OpType::Fail => {
                s.fail += 1;
                continue;
            }
            _ => {
                s.info += 1;
                continue;
            }
        }
        let ms = op.time.saturating_sub(inv.time) as f64 / 1e6;
        match op.f.as_str() {
            "read" => s.read_ms.push(ms),
            "write" => s.write_ms.push(ms),
            "cas" => s.cas_ms.push(ms),
            _ => {}
        }
    }
    s
}

/// Runs the benchmark and writes its section into `out/BENCHMARKS.md`.
pub fn run(runner: &str, node_dir_of: &str, out: &Path, scratch: &Path, seed: u64) {
    let designs = [
        ("raft (murmur lin-kv)", sibling(node_dir_of, "lin-kv")),
        ("kv-proxy over lin-kv service", sibling(runner, "kv-proxy")),
    ];
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}\n## lin-kv (Raft)\n");
    let _ = writeln!(
        s,
        "Produced by `just bench-lin-kv` (`target/release/bench --lin-kv --seed {seed}`): murmur's `lin-kv` node \
         (a Raft group of the 5 nodes: read-index reads, writes and cas through the log, requests on a follower \
         passed to the leader) beside the straightforward design, `kv-proxy`, which stores nothing and passes every \
         op to the runner's `lin-kv` service (never partitioned, killed or paused: Maelstrom's nemesis acts on \
         nodes only). `{BASE}`, plus the 10 s recovery wait, without faults, with partitions, and with kills, \
         pauses and partitions; one run per row, same seed. msgs-per-op is Maelstrom's (`servers` counts \
         node↔node and node↔service messages). Latencies are of `ok` ops, in ms (p50 / p99 / max); ok / fail / \
         info count every client op (fail: a definite error such as 11 temporarily-unavailable, 20 or 22, or a \
         read's timeout; info: a write or cas whose outcome is unknown). Node CPU is summed over the nodes \
         (`getrusage` of the reaped processes); the proxy's service runs inside the runner and is not in it.\n"
    );
    let _ = writeln!(s, "| faults | design | valid | msgs-per-op servers | msgs-per-op all | read ms | write ms | cas ms | ok / fail / info | node CPU s | command |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (vi, (vname, nemesis)) in VARIANTS.iter().enumerate() {
        for (di, (dname, node)) in designs.iter().enumerate() {
            let command =
                format!("{runner} test -w lin-kv --bin {node} {BASE}{nemesis} --seed {seed}");
            let dir = scratch.join(format!("lin-kv-{vi}-{di}"));
            eprintln!("lin-kv: {vname}, {dname}");
            let exit = run_test_command(runner, &command, &dir);
            let run_dir = dir.join("lin-kv").join("latest");
            let Some(v) = read_results(&run_dir.join("results.json")) else {
                let _ = writeln!(
                    s,
                    "| {vname} | {dname} | aborted (exit {exit}) | | | | | | | | `{command}` |"
                );
                continue;
            };
            let h = history_stats(&read_history(&run_dir));
            let _ = writeln!(
                s,
                "| {vname} | {dname} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} | `{command}` |",
                if v.get("valid?") == Some(&Value::Bool(true)) { "yes" } else { "**no**" },
                fmt(num(&v, &["net", "servers", "msgs-per-op"]), 2),
                fmt(num(&v, &["net", "all", "msgs-per-op"]), 2),
                quantiles(&h.read_ms),
                quantiles(&h.write_ms),
                quantiles(&h.cas_ms),
                h.ok,
                h.fail,
                h.info,
                fmt(num(&v, &["runner", "nodes", "cpu-seconds"]), 2),
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

    fn op(time: u64, kind: OpType, process: u64, f: &str) -> Op {
        Op::new(
            0,
            time * 1_000_000,
            kind,
            Process::Client(process),
            f,
            Value::Null,
        )
    }

    #[test]
    fn latencies_are_of_ok_ops_by_kind_and_outcomes_are_counted() {
        use OpType::*;
        let h = vec![
            op(0, Invoke, 0, "write"),
            op(1, Invoke, 1, "read"),
            op(4, Ok, 1, "read"),
            op(10, Ok, 0, "write"),
            op(11, Invoke, 0, "cas"),
            op(12, Fail, 0, "cas"),
            op(13, Invoke, 0, "cas"),
            op(20, Info, 0, "cas"),
            op(21, Invoke, 2, "cas"),
            op(29, Ok, 2, "cas"),
        ];
        let s = history_stats(&h);
        assert_eq!(s.read_ms, vec![3.0]);
        assert_eq!(s.write_ms, vec![10.0]);
        assert_eq!(s.cas_ms, vec![8.0]);
        assert_eq!((s.ok, s.fail, s.info), (3, 1, 1));
    }

    #[test]
    fn the_section_is_replaced_and_the_counters_section_kept() {
        let sec = format!("{BEGIN}\nnew\n{END}\n");
        let counters = format!(
            "{}\nc\n{}",
            super::super::counters::BEGIN,
            super::super::counters::END
        );
        let text = format!("# B\n\n{counters}\n\n{BEGIN}\nold\n{END}\n");
        assert_eq!(
            splice_marked(&text, BEGIN, END, &sec),
            format!("# B\n\n{counters}\n\n{BEGIN}\nnew\n{END}\n")
        );
        assert_eq!(
            section_marked(&text, BEGIN, END),
            Some(&*format!("{BEGIN}\nold\n{END}"))
        );
        assert_eq!(
            crate::counters::section_marked(&text, crate::counters::BEGIN, crate::counters::END),
            Some(&*counters)
        );
    }
}

//! The counter benchmark (`just bench-counters`): murmur's g-counter in its two designs (the CRDT
//! over the broadcast node, the stateless node over `seq-kv`) side by side on Gossip Glomers
//! challenge 4's configuration (3 nodes, rate 100, 20 s) without faults, with partitions, and with
//! kills, pauses and partitions, one run each with the same seed. Writes its table as the
//! "Counters" section of `BENCHMARKS.md`, leaving the rest of the file as it is.
//!
//! Read **staleness**, per `ok` read of the main phase: the sum of the deltas of the adds
//! acknowledged (`ok`) before the read was invoked, minus the value read, clipped at 0; that is,
//! how much of what was certainly added the read missed. A counter read can also include adds
//! still in flight, which the clipping hides, so it is a lower bound on what the read lacked.

use super::{fmt, num, read_history, read_results, run_test_command, sibling};
use maelstrom::history::{Op, OpType, Process};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// Where the section starts and ends in `BENCHMARKS.md`.
pub const BEGIN: &str = "<!-- counters: written by `bench --counters`; `bench` keeps it -->";
pub const END: &str = "<!-- /counters -->";

const BASE: &str = "--node-count 3 --rate 100 --time-limit 20";
const VARIANTS: [(&str, &str); 4] = [
    ("no faults", ""),
    ("no faults, latency 10 ms", " --latency 10"),
    ("partition (challenge 4)", " --nemesis partition"),
    ("kill, pause, partition", " --nemesis kill,pause,partition"),
];
/// The designs: the default CRDT, the CRDT tuned for fresh reads (every add pushed to every node
/// at once), and the seq-kv node.
const DESIGNS: [(&str, &str); 3] = [
    ("crdt (default)", ""),
    (
        "crdt, push to all",
        " -- --overlay total --eager always --ack-delay-ms 3000 --rto-ms 6000",
    ),
    ("seq-kv", " -- --design seq-kv"),
];

/// Latencies and staleness of one run, from its history.
#[derive(Debug, Default, PartialEq)]
pub struct HistoryStats {
    pub add_ms: Vec<f64>,
    pub read_ms: Vec<f64>,
    pub staleness: Vec<i64>,
}

/// Pairs each client's invocations with their completions (one op outstanding per client) and
/// measures `ok` ops: latencies of adds and reads, staleness of main-phase reads (module docs).
pub fn history_stats(history: &[Op]) -> HistoryStats {
    let mut s = HistoryStats::default();
    let mut open: HashMap<u64, &Op> = HashMap::new();
    // (completion time, delta) of the ok adds, in history order (completion times ascend).
    let mut acked: Vec<(u64, i64)> = Vec::new();
    let mut reads: Vec<(u64, i64)> = Vec::new();
    for op in history {
        let Process::Client(p) = op.process else {
            continue;
        };
        if op.kind == OpType::Invoke {
            open.insert(p, op);
            continue;
        }
        let Some(inv) = open.remove(&p) else { continue };
        if op.kind != OpType::Ok {
            continue;
        }
        let ms = op.time.saturating_sub(inv.time) as f64 / 1e6;
        match op.f.as_str() {
            "add" => {
                s.add_ms.push(ms);
                acked.push((op.time, inv.value.to_json().as_i64().unwrap_or(0)));
            }
            "read" => {
                s.read_ms.push(ms);
                if !op.final_ {
                    reads.push((inv.time, op.value.to_json().as_i64().unwrap_or(0)));
                }
            }
            _ => {}
        }
    }
    for (invoked, value) in reads {
        let before: i64 = acked
            .iter()
            .take_while(|(t, _)| *t < invoked)
            .map(|(_, d)| d)
            .sum();
        s.staleness.push((before - value).max(0));
    }
    s
}

/// The `q` quantile (nearest rank) of `v`.
pub fn quantile<T: Copy + PartialOrd + Into<f64>>(v: &[T], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().map(|&x| x.into()).collect();
    v.sort_by(f64::total_cmp);
    let last = v.len().checked_sub(1)?;
    Some(v[((last as f64) * q).round() as usize])
}

/// p50 / p99 / max of `v`, one decimal.
pub fn quantiles(v: &[f64]) -> String {
    format!(
        "{} / {} / {}",
        fmt(quantile(v, 0.5), 1),
        fmt(quantile(v, 0.99), 1),
        fmt(quantile(v, 1.0), 1)
    )
}

/// Runs the benchmark and writes its section into `out/BENCHMARKS.md`.
pub fn run(runner: &str, node_dir_of: &str, out: &Path, scratch: &Path, seed: u64) {
    let node = sibling(node_dir_of, "g-counter");
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}\n## Counters (g-counter, Gossip Glomers 4)\n");
    let _ = writeln!(
        s,
        "Produced by `just bench-counters` (`target/release/bench --counters --seed {seed}`): murmur's `g-counter` \
         in its two designs (`MURMUR_DESIGN`: the CRDT over the broadcast node, and the stateless node over `seq-kv`), \
         challenge 4's configuration (`{BASE}`, plus the 10 s recovery wait) without faults (and with 10 ms of network \
         latency), with partitions (the challenge's), and with kills, pauses and partitions; one run per row, same \
         seed. *crdt, push to all* is the CRDT with the broadcast node's low-latency setting (`--overlay total --eager \
         always`: an add goes to every other node at once), which trades messages for fresher reads. With kills and \
         pauses, Maelstrom's clients (one per node) spend most of the run waiting out 5 s timeouts on dead or \
         stopped nodes, so those rows have about a tenth of the ops. msgs-per-op is Maelstrom's \
         (`servers` counts node↔node and node↔service messages: the seq-kv design's are all service traffic). \
         Latencies are of `ok` ops, in ms (p50 / p99 / max). **Staleness** of a main-phase `ok` read: the sum of the \
         deltas of the adds acknowledged before the read was invoked, minus the value read, clipped at 0 (what the read \
         certainly missed, in delta units; g-counter's generator issues ⅔ reads and ⅓ adds of a delta uniform in 0..=4, mean 2); *stale* is the share of reads \
         with staleness > 0. Node CPU is summed over the nodes (`getrusage` of the reaped processes); the seq-kv \
         design's service runs inside the runner and is not in it.\n"
    );
    let _ = writeln!(s, "| faults | design | valid | msgs-per-op servers | msgs-per-op all | add ms | read ms | staleness p50 / p99 / max | stale | node CPU s | wake-ups | command |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (vi, (vname, nemesis)) in VARIANTS.iter().enumerate() {
        for (di, (dname, args)) in DESIGNS.iter().enumerate() {
            let command = format!(
                "{runner} test -w g-counter --bin {node} {BASE}{nemesis} --seed {seed}{args}"
            );
            let dir = scratch.join(format!("counters-{vi}-{di}"));
            eprintln!("counters: {vname}, {dname}");
            let exit = run_test_command(runner, &command, &dir);
            let run_dir = dir.join("g-counter").join("latest");
            let Some(v) = read_results(&run_dir.join("results.json")) else {
                let _ = writeln!(
                    s,
                    "| {vname} | {dname} | aborted (exit {exit}) | | | | | | | | | `{command}` |"
                );
                continue;
            };
            let h = history_stats(&read_history(&run_dir));
            let stale = h.staleness.iter().filter(|&&x| x > 0).count();
            let _ = writeln!(
                s,
                "| {vname} | {dname} | {} | {} | {} | {} | {} | {} / {} / {} | {} | {} | {} | `{command}` |",
                if v.get("valid?") == Some(&Value::Bool(true)) { "yes" } else { "**no**" },
                fmt(num(&v, &["net", "servers", "msgs-per-op"]), 2),
                fmt(num(&v, &["net", "all", "msgs-per-op"]), 2),
                quantiles(&h.add_ms),
                quantiles(&h.read_ms),
                fmt(quantile(&h.staleness_f64(), 0.5), 0),
                fmt(quantile(&h.staleness_f64(), 0.99), 0),
                fmt(quantile(&h.staleness_f64(), 1.0), 0),
                if h.staleness.is_empty() {
                    "–".to_string()
                } else {
                    format!("{:.0}%", 100.0 * stale as f64 / h.staleness.len() as f64)
                },
                fmt(num(&v, &["runner", "nodes", "cpu-seconds"]), 2),
                fmt(num(&v, &["runner", "nodes", "wake-ups"]), 0),
            );
        }
    }
    let _ = writeln!(s, "{END}");
    super::write_marked_section(out, BEGIN, END, &s);
}

impl HistoryStats {
    fn staleness_f64(&self) -> Vec<f64> {
        self.staleness.iter().map(|&x| x as f64).collect()
    }
}

/// `text` with the section between the markers `begin` and `end` replaced by `section`
/// (appended before the hand-measured part if it has none). Other modes' sections use it too.
pub fn splice_marked(text: &str, begin: &str, end: &str, section: &str) -> String {
    let section = section.trim_end();
    match (text.find(begin), text.find(end)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{section}{}", &text[..b], &text[e + end.len()..])
        }
        _ if text.trim().is_empty() => format!("{section}\n"),
        // Appended before the hand-measured part, which stays last.
        _ => match text.find(super::KEPT_MARKER) {
            Some(k) => format!("{}\n\n{section}\n\n{}", text[..k].trim_end(), &text[k..]),
            None => format!("{}\n\n{section}\n", text.trim_end()),
        },
    }
}

/// The section of `text` between the markers `begin` and `end`, markers included.
pub fn section_marked<'a>(text: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let b = text.find(begin)?;
    let e = text[b..].find(end)? + b;
    Some(&text[b..e + end.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(time: u64, kind: OpType, process: u64, f: &str, value: Value) -> Op {
        Op::new(
            0,
            time * 1_000_000,
            kind,
            Process::Client(process),
            f,
            value,
        )
    }

    #[test]
    fn staleness_counts_what_was_acknowledged_before_the_read_and_is_missing() {
        use OpType::*;
        let h = vec![
            op(0, Invoke, 0, "add", 3.into()),
            op(10, Ok, 0, "add", 3.into()),
            op(11, Invoke, 1, "add", 4.into()),
            op(12, Invoke, 2, "read", Value::Null),
            op(15, Ok, 2, "read", 0.into()), // missed the 3: stale by 3
            op(16, Ok, 1, "add", 4.into()),
            op(17, Invoke, 2, "read", Value::Null),
            op(20, Ok, 2, "read", 9.into()), // more than acknowledged: 0
            op(21, Invoke, 0, "add", 1.into()),
            op(22, Info, 0, "add", 1.into()), // not acknowledged: not counted
            op(23, Invoke, 2, "read", Value::Null),
            op(25, Ok, 2, "read", 6.into()), // 7 acknowledged: stale by 1
        ];
        let s = history_stats(&h);
        assert_eq!(s.staleness, vec![3, 0, 1]);
        assert_eq!(s.add_ms, vec![10.0, 5.0]);
        assert_eq!(s.read_ms, vec![3.0, 3.0, 2.0]);
        assert_eq!(quantile(&s.staleness_f64(), 1.0), Some(3.0));
        assert_eq!(quantile(&s.staleness_f64(), 0.5), Some(1.0));
    }

    #[test]
    fn the_section_is_replaced_or_appended_and_the_rest_kept() {
        let sec = format!("{BEGIN}\nnew\n{END}\n");
        assert_eq!(splice_marked("", BEGIN, END, &sec), sec);
        let text = format!("# Broadcast\nrows\n\n{BEGIN}\nold\n{END}\ntail\n");
        assert_eq!(
            splice_marked(&text, BEGIN, END, &sec),
            format!("# Broadcast\nrows\n\n{BEGIN}\nnew\n{END}\ntail\n")
        );
        assert_eq!(
            splice_marked("# Broadcast\nrows\n", BEGIN, END, &sec),
            format!("# Broadcast\nrows\n\n{BEGIN}\nnew\n{END}\n")
        );
        assert_eq!(
            section_marked(&text, BEGIN, END),
            Some(&*format!("{BEGIN}\nold\n{END}"))
        );
        assert_eq!(section_marked("# Broadcast", BEGIN, END), None);
    }
}

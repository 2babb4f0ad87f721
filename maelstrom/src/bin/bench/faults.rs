//! The durability matrix (`just faults`): N seeds (default 20) of `--nemesis kill,pause,partition`
//! at 5 nodes (3c configuration) and at 25 nodes (3d configuration), with the default node
//! settings; writes `FAULTS.md`: per seed the verdict, lost values, how long the schedule left no
//! node alive, and what restarted nodes served (their own acknowledged values, catch-up times),
//! each row with its command. The soak section (`just soak`) of an existing `FAULTS.md` is kept.

use super::{fmt, get, num, read_results, write_or_exit};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// A schedule that leaves no node alive for at least this fraction of the main phase is marked:
/// no broadcast can be acknowledged, so Maelstrom's `stats` checker must call the run invalid.
const DEAD_SCHEDULE_FRACTION: f64 = 0.9;
/// Main-phase length of both configurations, seconds.
const TIME_LIMIT_SECS: u64 = 20;

/// Per-configuration totals for the summary line.
#[derive(Default)]
struct Totals {
    runs: usize,
    valid: usize,
    dead: usize,
    valid_live: usize,
    lost: f64,
    restarts: usize,
    missing_own: u64,
    catch_ups: Vec<u64>,
    not_caught_up: usize,
}

/// The durability matrix; see the module docs.
///
/// With `reuse`, a run whose `results.json` is already in `scratch` is not run again, so the table
/// can be re-rendered (after a change to this file) from the runs it was made of.
pub fn run(runner: &str, node: &str, out: &Path, scratch: &Path, seeds: u64, reuse: bool) {
    let configs: [(&str, String); 2] = [
        (
            "5 nodes (3c)",
            format!("--node-count 5 --time-limit {TIME_LIMIT_SECS} --rate 10"),
        ),
        (
            "25 nodes (3d)",
            format!("--node-count 25 --time-limit {TIME_LIMIT_SECS} --rate 100 --latency 100"),
        ),
    ];
    let mut s = String::new();
    let _ = writeln!(s, "# Durability under kill, pause and partition\n");
    let _ = writeln!(
        s,
        "Produced by `just faults` (`target/release/bench --faults --seeds {seeds}`): every row is one run of \
         the built-in runner with `--nemesis kill,pause,partition` and the broadcast node's default settings; \
         reproduce a row with its command after `cargo build --release --workspace`. Columns, from \
         `results.json` (`runner.recoveries`, `runner.no-live-node-ms`):\n\n\
         - *no live node*: seconds of the main phase during which every node was killed or paused. A \
         schedule that leaves no node alive for ≥ {:.0} % of it is marked † (no broadcast can succeed, so \
         Maelstrom's checker must say invalid too); validity is also counted over the other runs.\n\
         - *restarts*: killed nodes restarted during the main phase + by the final phase's `start`.\n\
         - *reads missing own*: reads served by a restarted node that lacked a value the node itself \
         acknowledged before its kill (the durability promise: must be 0).\n\
         - *first read*: p50 over main-phase restarts of the time from the restart to the first read the \
         node served: the read sampling that bounds the catch-up figures below from beneath.\n\
         - *catch-up*: over main-phase restarts that the node served a read for during the main phase, \
         after the heal of the partition in force at the restart (their count in brackets), the time from the restart (or from the heal of the partition in \
         force at the restart) to the first read served by the node that held every value acknowledged \
         anywhere before its kill; p50 / max. An upper bound: a read only shows the state when one \
         arrives, and a client whose request went to the killed node waits out its 5 s timeout first. \
         Restarts first read by the final reads (after the 10 s quiet period), including those of the \
         final phase's `start`, are counted in *restarts* only.\n\
         - *not caught up*: of those, restarts after which no read served by the node held them all \
         (killed again first).\n",
        DEAD_SCHEDULE_FRACTION * 100.0
    );
    for (title, flags) in &configs {
        let _ = writeln!(s, "\n## {title}\n");
        let _ = writeln!(s, "| seed | valid | lost | stable / attempted | never-read | msgs-per-op | max latency ms | no live node s | restarts | reads missing own | first read p50 ms | catch-up p50 / max ms (restarts) | not caught up | lag p99 µs | command |");
        let _ = writeln!(
            s,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let mut t = Totals::default();
        for seed in 1..=seeds {
            let command = format!("{runner} test -w broadcast --bin {node} {flags} --nemesis kill,pause,partition --seed {seed}");
            let dir = scratch.join(format!(
                "faults-{}-{seed}",
                title.split_whitespace().next().unwrap_or("x")
            ));
            let results = dir.join("broadcast").join("latest").join("results.json");
            let exit = if reuse && results.exists() {
                0
            } else {
                eprintln!("faults: {title} seed {seed}");
                let _ = std::fs::remove_dir_all(&dir);
                Command::new(runner)
                    .args(command.split_whitespace().skip(1))
                    .args(["--results-dir", &dir.to_string_lossy(), "--no-progress"])
                    .stdout(std::process::Stdio::null())
                    .status()
                    .map(|s| s.code().unwrap_or(-1))
                    .unwrap_or(-1)
            };
            t.runs += 1;
            match read_results(&results) {
                Some(mut v) => {
                    // Recomputed from the history, so that a re-render (`--reuse`) uses this
                    // build's analysis even for runs made by an older runner.
                    let nodes = if flags.contains("--node-count 25") {
                        25
                    } else {
                        5
                    };
                    if let Some(r) = recompute_recoveries(&results, nodes) {
                        v["runner"]["recoveries"] = r;
                    }
                    row(&mut s, &mut t, seed, &v, &command)
                }
                None => {
                    let _ = writeln!(
                        s,
                        "| {seed} | aborted (exit {exit}) | | | | | | | | | | | | | `{command}` |"
                    );
                }
            }
        }
        summary(&mut s, title, &t);
    }
    // Keep the soak section `just soak` wrote, if any.
    let old = std::fs::read_to_string(out.join("FAULTS.md")).unwrap_or_default();
    if let Some(soak) = super::soak::soak_section(&old) {
        s = format!("{}\n\n{soak}", s.trim_end());
    }
    write_or_exit(out, "FAULTS.md", s);
}

/// `runner.recoveries` recomputed from the `history.jsonl` beside `results` (nodes `n0`… with one
/// client per node, as both configurations run), or `None` if it cannot be read.
fn recompute_recoveries(results: &Path, nodes: usize) -> Option<Value> {
    let text = std::fs::read_to_string(results.with_file_name("history.jsonl")).ok()?;
    let history: Vec<maelstrom::history::Op> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let names: Vec<String> = (0..nodes).map(|i| format!("n{i}")).collect();
    let r = maelstrom::analysis::recoveries(&history, &names, nodes, TIME_LIMIT_SECS * 1_000);
    serde_json::to_value(r).ok()
}

/// One run's row; adds it to the totals.
fn row(s: &mut String, t: &mut Totals, seed: u64, v: &Value, command: &str) {
    let valid = v.get("valid?") == Some(&Value::Bool(true));
    let lost = num(v, &["workload", "lost-count"]);
    let dead_ms = num(v, &["runner", "no-live-node-ms"]).unwrap_or(0.0);
    let dead = dead_ms >= DEAD_SCHEDULE_FRACTION * (TIME_LIMIT_SECS * 1_000) as f64;
    t.valid += usize::from(valid);
    t.dead += usize::from(dead);
    t.valid_live += usize::from(valid && !dead);
    t.lost += lost.unwrap_or(0.0);
    let recoveries = get(v, &["runner", "recoveries"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let field = |r: &Value, k: &str| r.get(k).and_then(Value::as_u64);
    let main_end_ms = TIME_LIMIT_SECS * 1_000;
    let main: Vec<&Value> = recoveries
        .iter()
        .filter(|r| r.get("final-phase?") != Some(&Value::Bool(true)))
        .collect();
    // Restarts read during the main phase: the others were first read by the final reads, after
    // the quiet period, so their catch-up cannot be seen.
    let read_in_main: Vec<&Value> = main
        .iter()
        .copied()
        .filter(|r| {
            let at = field(r, "restarted-at-ms").unwrap_or(0);
            field(r, "first-read-after-heal-ms").is_some_and(|f| at + f < main_end_ms)
        })
        .collect();
    let missing_own: u64 = recoveries
        .iter()
        .filter_map(|r| field(r, "reads-missing-own"))
        .sum();
    let mut first_reads: Vec<u64> = main
        .iter()
        .filter_map(|r| field(r, "first-read-after-ms"))
        .collect();
    let mut catch_ups: Vec<u64> = read_in_main
        .iter()
        .filter_map(|r| {
            let rec = field(r, "recovered-after-ms")?;
            Some(rec.saturating_sub(field(r, "partitioned-for-ms").unwrap_or(0)))
        })
        .collect();
    let not_caught_up = read_in_main.len() - catch_ups.len();
    t.restarts += recoveries.len();
    t.missing_own += missing_own;
    t.not_caught_up += not_caught_up;
    t.catch_ups.extend(&catch_ups);
    let _ = writeln!(
        s,
        "| {seed} | {}{} | {} | {} / {} | {} | {} | {} | {:.1} | {} + {} | {missing_own} | {} | {} / {} ({}) | {not_caught_up} | {} | `{command}` |",
        if valid { "yes" } else { "**no**" },
        if dead { " †" } else { "" },
        fmt(lost, 0),
        fmt(num(v, &["workload", "stable-count"]), 0),
        fmt(num(v, &["workload", "attempt-count"]), 0),
        fmt(num(v, &["workload", "never-read-count"]), 0),
        fmt(num(v, &["net", "servers", "msgs-per-op"]), 2),
        fmt(num(v, &["workload", "stable-latencies", "1"]), 0),
        dead_ms / 1_000.0,
        main.len(),
        recoveries.len() - main.len(),
        fmt(p50(&mut first_reads), 0),
        fmt(p50(&mut catch_ups), 0),
        fmt(catch_ups.iter().max().map(|&x| x as f64), 0),
        read_in_main.len(),
        fmt(num(v, &["runner", "delivery-lag-us", "p99"]), 0),
    );
}

fn summary(s: &mut String, title: &str, t: &Totals) {
    let mut all = t.catch_ups.clone();
    let live = t.runs - t.dead;
    let _ = writeln!(
        s,
        "\n**{title}: {} of {} runs valid; {} schedule(s) marked †; {} of {live} runs valid among the \
         others. {} values lost in total. {} restarts; reads missing the node's own acknowledged values: \
         {}. Catch-up over {} main-phase restarts: p50 {} ms, max {} ms; not caught up: {}.**",
        t.valid,
        t.runs,
        t.dead,
        t.valid_live,
        t.lost,
        t.restarts,
        t.missing_own,
        all.len(),
        fmt(p50(&mut all), 0),
        fmt(all.iter().max().map(|&x| x as f64), 0),
        t.not_caught_up,
    );
}

/// The median (lower middle) of `xs`, sorting it.
fn p50(xs: &mut [u64]) -> Option<f64> {
    xs.sort_unstable();
    xs.get(xs.len().saturating_sub(1) / 2).map(|&x| x as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_reads_the_recoveries_and_marks_dead_schedules() {
        let v = json!({
            "valid?": false,
            "workload": {"lost-count": 0, "stable-count": 0, "attempt-count": 10},
            "runner": {
                "no-live-node-ms": 19_500,
                "recoveries": [
                    {"final-phase?": false, "reads-missing-own": 0, "first-read-after-ms": 40,
                     "first-read-after-heal-ms": 600,
                     "recovered-after-ms": 900, "partitioned-for-ms": 500, "restarted-at-ms": 1000},
                    {"final-phase?": false, "reads-missing-own": 1, "first-read-after-ms": 60,
                     "first-read-after-heal-ms": 60, "restarted-at-ms": 2000},
                    {"final-phase?": false, "reads-missing-own": 0, "first-read-after-ms": 1_000,
                     "first-read-after-heal-ms": 10_000,
                     "recovered-after-ms": 10_000, "restarted-at-ms": 15_000},
                    {"final-phase?": true, "reads-missing-own": 0, "recovered-after-ms": 10_000},
                ]
            }
        });
        let (mut s, mut t) = (String::new(), Totals::default());
        t.runs = 1;
        row(&mut s, &mut t, 11, &v, "cmd");
        assert!(s.starts_with("| 11 | **no** † | 0 | 0 / 10 |"), "{s}");
        assert!(
            s.contains("| 19.5 | 3 + 1 | 1 | 60 | 400 / 400 (2) | 1 |"),
            "{s}"
        );
        assert_eq!(
            (t.dead, t.valid_live, t.missing_own, t.not_caught_up),
            (1, 0, 1, 1)
        );
        summary(&mut s, "x", &t);
        assert!(s.contains("0 of 0 runs valid among the others"), "{s}");
    }

    #[test]
    fn the_median_is_the_lower_middle() {
        assert_eq!(p50(&mut []), None);
        assert_eq!(p50(&mut [5]), Some(5.0));
        assert_eq!(p50(&mut [9, 1, 5, 7]), Some(5.0));
    }
}

//! The durability matrix (`just faults`): N seeds (default 20) of `--nemesis kill,pause,partition`
//! at 5 nodes (3c configuration) and at 25 nodes (3d configuration), with the default node
//! settings; writes `FAULTS.md` (verdict, lost values, recovery time of restarted nodes, per seed,
//! each with its command).

use super::{fmt, get, num, read_results, write_or_exit};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The durability matrix; see the module docs.
pub fn run(runner: &str, node: &str, out: &Path, scratch: &Path, seeds: u64) {
    let configs: [(&str, &str); 2] = [
        ("5 nodes (3c)", "--node-count 5 --time-limit 20 --rate 10"),
        (
            "25 nodes (3d)",
            "--node-count 25 --time-limit 20 --rate 100 --latency 100",
        ),
    ];
    let mut s = String::new();
    let _ = writeln!(s, "# Durability under kill, pause and partition\n");
    let _ = writeln!(
        s,
        "Produced by `just faults` (`target/release/bench --faults --seeds {seeds}`): every row is one run of the built-in \
         runner with `--nemesis kill,pause,partition` and the broadcast node's default settings; reproduce a row with its \
         command after `cargo build --release --workspace`. *Recovery* is, over the nodes killed and restarted during \
         the run, the longest time from a restart to the first read served by that node containing every value \
         acknowledged before its kill (`runner.recoveries` in results.json); *unrecovered* counts restarts after which no \
         such read happened.\n"
    );
    for (title, flags) in configs {
        let _ = writeln!(s, "\n## {title}\n");
        let _ = writeln!(s, "| seed | valid | lost | stable / attempted | never-read | msgs-per-op | max latency ms | restarts | recovery max ms | unrecovered | lag p99 µs | command |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        let (mut valid_runs, mut lost_total) = (0, 0.0);
        for seed in 1..=seeds {
            let command = format!("{runner} test -w broadcast --bin {node} {flags} --nemesis kill,pause,partition --seed {seed}");
            let dir = scratch.join(format!(
                "faults-{}-{seed}",
                title.split_whitespace().next().unwrap_or("x")
            ));
            eprintln!("faults: {title} seed {seed}");
            let exit = Command::new(runner)
                .args(command.split_whitespace().skip(1))
                .args(["--results-dir", &dir.to_string_lossy(), "--no-progress"])
                .stdout(std::process::Stdio::null())
                .status()
                .map(|s| s.code().unwrap_or(-1))
                .unwrap_or(-1);
            let Some(v) = read_results(&dir.join("broadcast").join("latest").join("results.json"))
            else {
                let _ = writeln!(
                    s,
                    "| {seed} | aborted (exit {exit}) | | | | | | | | | | `{command}` |"
                );
                continue;
            };
            let valid = v.get("valid?") == Some(&Value::Bool(true));
            valid_runs += usize::from(valid);
            let lost = num(&v, &["workload", "lost-count"]);
            lost_total += lost.unwrap_or(0.0);
            let recoveries = get(&v, &["runner", "recoveries"])
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let recovered: Vec<f64> = recoveries
                .iter()
                .filter_map(|r| r.get("recovered-after-ms").and_then(Value::as_f64))
                .collect();
            let unrecovered = recoveries.len() - recovered.len();
            let max_rec = recovered
                .iter()
                .cloned()
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
            let _ = writeln!(
                s,
                "| {seed} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {unrecovered} | {} | `{command}` |",
                if valid { "yes" } else { "**no**" },
                fmt(lost, 0),
                fmt(num(&v, &["workload", "stable-count"]), 0),
                fmt(num(&v, &["workload", "attempt-count"]), 0),
                fmt(num(&v, &["workload", "never-read-count"]), 0),
                fmt(num(&v, &["net", "servers", "msgs-per-op"]), 2),
                fmt(num(&v, &["workload", "stable-latencies", "1"]), 0),
                recoveries.len(),
                fmt(max_rec, 0),
                fmt(num(&v, &["runner", "delivery-lag-us", "p99"]), 0),
            );
        }
        let _ = writeln!(
            s,
            "\n**{title}: {valid_runs} of {seeds} runs valid, {lost_total} values lost in total.**"
        );
    }
    write_or_exit(out, "FAULTS.md", s);
}

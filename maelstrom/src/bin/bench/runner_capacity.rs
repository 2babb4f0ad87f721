//! The runner's own capacity (`just runner-capacity`): 25 `broken-node flood=K` nodes keep K
//! tokens each bouncing between random peers at `--latency L`, for offered loads of 25k to 100k
//! messages per second; reports messages routed per second, the runner's delivery lag and the CPU
//! the runner and nodes used, in `RUNNER.md`.

use super::{children_cpu, fmt, get, num, read_results, write_or_exit};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The runner's own throughput; see the module docs.
pub fn run(runner: &str, fixture: &str, out: &Path, scratch: &Path) {
    const LIMIT: u64 = 10;
    let mut s = String::new();
    let _ = writeln!(s, "# Runner capacity\n");
    let _ = writeln!(
        s,
        "Produced by `just runner-capacity` (`target/release/bench --runner-capacity`): 25 nodes of the load-generating \
         fixture `broken-node flood=K` keep K tokens each bouncing between random peers for {LIMIT} s with constant \
         latency L, an offered load of 25·K/L messages per ms. *Routed* is server messages delivered per second of \
         the main phase; *lag* is the runner's delivery lag (actual − intended delivery time); *CPU* is user + system \
         seconds of the runner and all nodes per second of run (2 cores = 200%). The target (issue 3) is at least \
         50,000 msgs/s with p99 lag under 2 ms on 2 cores.\n"
    );
    let _ = writeln!(s, "| K | L ms | offered msgs/s | routed msgs/s | lag p50 µs | lag p99 µs | lag max µs | overloaded | CPU | command |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for (k, l) in [(10u64, 10u64), (20, 10), (25, 10), (30, 10), (40, 10)] {
        let command = format!(
            "{runner} test -w echo --bin {fixture} --node-count 25 --rate 0 --time-limit {LIMIT} --latency {l} --seed 1 -- flood={k}"
        );
        let dir = scratch.join(format!("runner-{k}-{l}"));
        eprintln!("runner-capacity: K={k} L={l}");
        let cpu0 = children_cpu();
        let started = std::time::Instant::now();
        let _ = Command::new(runner)
            .args([
                "test",
                "--results-dir",
                &dir.to_string_lossy(),
                "--no-progress",
            ])
            .args(command.split_whitespace().skip(2))
            .stdout(std::process::Stdio::null())
            .status();
        let wall = started.elapsed().as_secs_f64();
        let cpu = children_cpu() - cpu0;
        let Some(v) = read_results(&dir.join("echo").join("latest").join("results.json")) else {
            let _ = writeln!(
                s,
                "| {k} | {l} | {} | aborted | | | | | | `{command}` |",
                25 * k * 1000 / l
            );
            continue;
        };
        let routed = num(&v, &["net", "servers", "recv-count"]).map(|n| n / LIMIT as f64);
        let overloaded = get(&v, &["runner", "overloaded"])
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let _ = writeln!(
            s,
            "| {k} | {l} | {} | {} | {} | {} | {} | {} | {:.0}% | `{command}` |",
            25 * k * 1000 / l,
            fmt(routed, 0),
            fmt(num(&v, &["runner", "delivery-lag-us", "p50"]), 0),
            fmt(num(&v, &["runner", "delivery-lag-us", "p99"]), 0),
            fmt(num(&v, &["runner", "delivery-lag-us", "max"]), 0),
            if overloaded { "**yes**" } else { "no" },
            cpu / wall * 100.0,
        );
    }
    write_or_exit(out, "RUNNER.md", s);
}

//! `just bench`: runs the broadcast 3d/3e configuration (25 nodes, 100 ms latency, rate 100, 20 s)
//! on the built-in runner for each node setting and fault variant, then writes
//! `results/BENCHMARKS.md` (one row per run, each naming the command that reproduces it) and
//! `results/frontier.svg` (msgs-per-op against stable latency, with the published and reference
//! points of the efficiency issue marked).
//!
//! Usage: `bench [--quick] [--seed N] [--runner PATH] [--node PATH] [--out DIR] [--cited PATH]`.
//! `--quick` runs only the fault-free settings. Runs are sequential: they share the machine's two
//! cores. `--cited PATH` adds a fault-free row for another broadcast binary, the solution the
//! efficiency issue uses as its CPU yardstick ("about 0.9 s at 4 msgs-per-op"), and a paragraph
//! that scales murmur's CPU to the issue's machine by it (README, "Benchmarks", says how to build
//! it; nothing of it is in this repository).
//!
//! `bench --faults [--seeds N]` instead runs the durability matrix: N seeds (default 20) of
//! `--nemesis kill,pause,partition` at 5 nodes (3c configuration) and at 25 nodes (3d configuration),
//! with the default node settings, and writes `results/FAULTS.md` (verdict, lost values, recovery
//! time of restarted nodes, per seed, each with its command).
//!
//! `bench --capacity` drives one broadcast node directly over its pipes (no runner, no network):
//! it grows the node's set with broadcasts, and at set sizes 1k, 10k and 100k measures read and
//! broadcast latency under a 50/50 mix at each rate of a sweep, plus the node's CPU and memory, and
//! writes `results/CAPACITY.md`.
//!
//! `bench --runner-capacity` measures the runner itself: 25 `broken-node flood=K` nodes keep K
//! tokens each bouncing between random peers at `--latency L`, for offered loads of 25k to 100k
//! messages per second; it reports messages routed per second, the runner's delivery lag and the CPU
//! the runner and nodes used, in `results/RUNNER.md`.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A named node configuration: knobs passed after `--` to the broadcast binary, and shell
/// variables (`MURMUR_FSYNC`, ...) in the environment the runner passes on to its nodes.
#[derive(Clone, Copy)]
struct Setting {
    name: &'static str,
    /// Another binary instead of the node under test ("" = the node): a name is looked up next
    /// to the runner, a path (with a `/`) is taken as it is.
    bin: &'static str,
    env: &'static str,
    knobs: &'static str,
    goal: &'static str,
}

const SETTINGS: &[Setting] = &[
    Setting {
        name: "default",
        bin: "",
        env: "",
        knobs: "",
        goal: "3d and 3e: < 20 msgs-per-op, median < 400 ms, max < 600 ms",
    },
    Setting {
        name: "low-latency",
        bin: "",
        env: "",
        knobs: "--overlay total --eager always --ack-delay-ms 3000 --rto-ms 6000",
        goal: "≤ 12.2 msgs-per-op, median ≤ 80 ms, max ≤ 100 ms",
    },
    Setting {
        name: "balanced",
        bin: "",
        env: "",
        knobs: "--sync-ms 200 --ack-delay-ms 2000 --rto-ms 5000",
        goal: "≤ 1.8 msgs-per-op, max ≤ 300 ms",
    },
    Setting {
        name: "low-message",
        bin: "",
        env: "",
        knobs: "--sync-ms 350 --ack-delay-ms 3000 --rto-ms 6000",
        goal: "≤ 1.2 msgs-per-op, max ≤ 450 ms",
    },
    Setting {
        name: "lowest-message",
        bin: "",
        env: "",
        knobs: "--sync-ms 600 --ack-delay-ms 4000 --rto-ms 8000",
        goal: "≤ 0.9 msgs-per-op, max ≤ 700 ms",
    },
    Setting {
        name: "default+fsync",
        bin: "",
        env: "MURMUR_FSYNC=1",
        knobs: "",
        goal: "the default with an fdatasync per group commit (survives machine crashes): its cost",
    },
    Setting {
        name: "default, no persistence",
        bin: "",
        env: "",
        knobs: "--persist 0",
        goal: "the default without a disk (a killed node forgets): what durability costs",
    },
    Setting {
        name: REFERENCE,
        bin: "reference-star",
        env: "",
        knobs: "",
        goal: "not murmur: the issue's reference star at T = 100 ms (`reference-star`: no acknowledgements, \
               retries or disk; valid without faults only), the simplest design with the default's latency. \
               Its CPU is the floor for that many wake-ups on this machine",
    },
];

/// The cost baseline's setting name.
const REFERENCE: &str = "reference star";

/// The `--cited` row's setting name.
const CITED: &str = "cited solution";

/// What the efficiency issue says the cited solution costs on its machine: node CPU seconds of a
/// 3d run, and the issue's CPU target for murmur there.
const CITED_ISSUE_CPU: f64 = 0.9;
const CPU_TARGET: f64 = 0.3;

/// Settings (by name) that are cost comparisons rather than targets: fault-free runs only, not
/// on the frontier plot.
fn comparison(name: &str) -> bool {
    name.starts_with("default+")
        || name.starts_with("default,")
        || name == REFERENCE
        || name == CITED
}

/// [`SETTINGS`], plus the `--cited` row if one was given.
fn settings(cited: Option<String>) -> Vec<Setting> {
    let mut all = SETTINGS.to_vec();
    if let Some(path) = cited {
        all.push(Setting {
            name: CITED,
            // Leaked once: settings live for the whole run.
            bin: Box::leak(path.into_boxed_str()),
            env: "",
            knobs: "",
            goal: "not murmur: the solution the efficiency issue cites for its CPU target (\"about 0.9 s at 4 \
                   msgs-per-op\"), built from its own repository (README, \"Benchmarks\"); its CPU here scales the target \
                   to this machine",
        });
    }
    all
}

const VARIANTS: &[(&str, &str)] = &[
    ("no faults", ""),
    ("partition", "partition"),
    ("kill,pause,partition", "kill,pause,partition"),
];

/// Published and reference points from the efficiency issue: (label, msgs-per-op, median, max).
const MARKS: &[(&str, f64, f64, f64)] = &[
    ("published A", 1.99, 339.0, 678.0),
    ("published B", 11.8, 175.0, 212.0),
    ("ref: origin push", 12.2, 79.0, 98.0),
    ("ref: star T=100", 2.84, 168.0, 201.0),
    ("ref: star T=200", 1.77, 254.0, 298.0),
    ("ref: star T=350", 1.20, 219.0, 447.0),
    ("ref: star T=600", 0.91, 375.0, 693.0),
];

struct Row {
    setting: String,
    variant: String,
    command: String,
    exit: i32,
    results: Option<Value>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = args.iter().any(|a| a == "--quick");
    let seed: u64 = flag("--seed").and_then(|s| s.parse().ok()).unwrap_or(1);
    let runner = flag("--runner").unwrap_or_else(|| "target/release/maelstrom".into());
    let node = flag("--node").unwrap_or_else(|| "target/release/broadcast".into());
    let out = PathBuf::from(flag("--out").unwrap_or_else(|| "results".into()));
    let scratch = out.join("bench-runs");
    if args.iter().any(|a| a == "--runner-capacity") {
        let fixture = flag("--fixture").unwrap_or_else(|| "target/release/broken-node".into());
        return runner_capacity(&runner, &fixture, &out, &scratch);
    }
    if args.iter().any(|a| a == "--capacity") {
        return capacity(&node, &out);
    }
    if args.iter().any(|a| a == "--faults") {
        let seeds: u64 = flag("--seeds").and_then(|s| s.parse().ok()).unwrap_or(20);
        return fault_matrix(&runner, &node, &out, &scratch, seeds);
    }

    eprintln!("bench: measuring what one request costs a node, and `cat`");
    let cost = request_cost(&node).map(|node| Costs {
        node,
        floor: request_cost(FLOOR),
    });
    let settings = settings(flag("--cited"));
    let mut rows = Vec::new();
    for (vname, nemesis) in VARIANTS.iter().take(if quick { 1 } else { VARIANTS.len() }) {
        for s in &settings {
            if comparison(s.name) && !nemesis.is_empty() {
                continue;
            }
            let label = format!(
                "{}-{}",
                s.name.replace([',', ' ', '+'], "-"),
                vname.replace([',', ' '], "-")
            );
            let bin = if s.bin.is_empty() {
                node.clone()
            } else if s.bin.contains('/') {
                s.bin.to_string()
            } else {
                sibling(&runner, s.bin)
            };
            let mut cmd = vec![
                runner.clone(),
                "test".into(),
                "-w".into(),
                "broadcast".into(),
                "--bin".into(),
                bin,
                "--node-count".into(),
                "25".into(),
                "--time-limit".into(),
                "20".into(),
                "--rate".into(),
                "100".into(),
                "--latency".into(),
                "100".into(),
            ];
            if !nemesis.is_empty() {
                cmd.extend(["--nemesis".into(), nemesis.to_string()]);
            }
            cmd.extend(["--seed".into(), seed.to_string()]);
            let printable = format!(
                "{}{}{}",
                if s.env.is_empty() {
                    String::new()
                } else {
                    format!("{} ", s.env)
                },
                cmd.join(" "),
                if s.knobs.is_empty() {
                    String::new()
                } else {
                    format!(" -- {}", s.knobs)
                }
            );
            let dir = scratch.join(&label);
            eprintln!("bench: {label}: {printable}");
            let status = Command::new(&cmd[0])
                .envs(s.env.split_whitespace().filter_map(|kv| kv.split_once('=')))
                .args(&cmd[1..])
                .args(["--results-dir", &dir.to_string_lossy(), "--no-progress"])
                .args(if s.knobs.is_empty() {
                    vec![]
                } else {
                    std::iter::once("--")
                        .chain(s.knobs.split_whitespace())
                        .collect()
                })
                .stdout(std::process::Stdio::null())
                .status();
            let exit = status.map(|s| s.code().unwrap_or(-1)).unwrap_or(-1);
            let results = read_results(&dir.join("broadcast").join("latest").join("results.json"));
            rows.push(Row {
                setting: s.name.into(),
                variant: vname.to_string(),
                command: printable,
                exit,
                results,
            });
        }
    }
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("bench: cannot create {}: {e}", out.display());
        std::process::exit(1);
    }
    let md = markdown(&rows, &settings, seed, cost);
    let svg = frontier_svg(&rows);
    for (name, text) in [("BENCHMARKS.md", md), ("frontier.svg", svg)] {
        let path = out.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("bench: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        eprintln!("bench: wrote {}", path.display());
    }
}

/// The durability matrix; see the module docs.
fn fault_matrix(runner: &str, node: &str, out: &Path, scratch: &Path, seeds: u64) {
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
    let path = out.join("FAULTS.md");
    if let Err(e) = std::fs::create_dir_all(out).and_then(|()| std::fs::write(&path, s)) {
        eprintln!("bench: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    eprintln!("bench: wrote {}", path.display());
}

/// The runner's own throughput; see the module docs.
fn runner_capacity(runner: &str, fixture: &str, out: &Path, scratch: &Path) {
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
    let path = out.join("RUNNER.md");
    if let Err(e) = std::fs::create_dir_all(out).and_then(|()| std::fs::write(&path, s)) {
        eprintln!("bench: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    eprintln!("bench: wrote {}", path.display());
}

/// User + system CPU seconds of every child process reaped so far (the runner, and through it
/// the nodes it reaped).
fn children_cpu() -> f64 {
    maelstrom::procstats::reaped_children().map_or(0.0, |u| u.cpu_micros as f64 / 1e6)
}

/// A broadcast node driven directly over its pipes (stderr discarded), persisting under `data`.
fn spawn_node(node: &str, data: &Path) -> std::io::Result<std::process::Child> {
    Command::new(node)
        .env("MURMUR_DATA_DIR", data)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
}

/// The reference for [`request_cost`]: a program that only copies each line back, so its cost per
/// line is what the kernel (and, on a virtual machine, the hypervisor) charges for one wake-up with a
/// read and a write; the node's figure above it is the node's own.
const FLOOR: &str = "cat";

/// Seconds of CPU per request, alone and in a burst, for the node and for [`FLOOR`].
struct Costs {
    node: (f64, f64),
    floor: Option<(f64, f64)>,
}

/// Requests per measurement of [`request_cost`].
const REQUESTS: usize = 400;

/// CPU seconds one `read` costs a fresh broadcast node when requests arrive 5 ms apart (the node
/// sleeps in between and is woken for each) and when they arrive back to back; start-up and
/// shutdown are measured separately and subtracted. `None` if the node cannot be run.
fn request_cost(node: &str) -> Option<(f64, f64)> {
    use std::io::{BufRead, BufReader, Write};
    use std::time::Duration;
    let run = |n: usize, gap: Option<Duration>| -> Option<f64> {
        let data = tempdir_for("request-cost");
        let cpu0 = children_cpu();
        let mut child = spawn_node(node, &data).ok()?;
        let mut stdin = child.stdin.take()?;
        let mut lines = BufReader::new(child.stdout.take()?).lines();
        let line = |id: usize, body: &str| {
            format!("{{\"src\":\"c1\",\"dest\":\"n0\",\"body\":{{\"msg_id\":{id},{body}}}}}\n")
        };
        stdin
            .write_all(line(1, r#""type":"init","node_id":"n0","node_ids":["n0"]"#).as_bytes())
            .ok()?;
        lines.next()?.ok()?;
        let reads: Vec<String> = (0..n).map(|i| line(i + 2, r#""type":"read""#)).collect();
        match gap {
            Some(gap) => {
                for r in &reads {
                    stdin.write_all(r.as_bytes()).ok()?;
                    std::thread::sleep(gap);
                }
            }
            None => stdin.write_all(reads.concat().as_bytes()).ok()?,
        }
        drop(stdin);
        lines.for_each(drop);
        child.wait().ok()?;
        let _ = std::fs::remove_dir_all(&data);
        Some(children_cpu() - cpu0)
    };
    let base = run(0, None)?;
    let alone = (run(REQUESTS, Some(Duration::from_millis(5)))? - base) / REQUESTS as f64;
    let burst = (run(REQUESTS, None)? - base) / REQUESTS as f64;
    Some((alone.max(0.0), burst.max(0.0)))
}

/// One node driven over pipes; see the module docs.
fn capacity(node: &str, out: &Path) {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
    const RATES: [u64; 4] = [100, 500, 1_000, 2_000];
    const WINDOW: Duration = Duration::from_secs(3);

    let data = tempdir_for("capacity");
    let mut child = match spawn_node(node, &data) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench: cannot start {node}: {e}");
            std::process::exit(1);
        }
    };
    let pid = child.id();
    let mut stdin = std::io::BufWriter::new(child.stdin.take().expect("piped"));
    let stdout = child.stdout.take().expect("piped");
    // Reader thread: (msg_id, arrival) for every reply.
    let (tx, rx) = mpsc::channel::<(u64, Instant)>();
    std::thread::spawn(move || {
        for line in BufReader::with_capacity(1 << 20, stdout).lines() {
            let Ok(line) = line else { break };
            // Only `in_reply_to` is needed; avoid parsing 100k-value arrays.
            if let Some(id) = line.rfind("\"in_reply_to\":").and_then(|i| {
                line[i + 14..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|d| d.parse::<u64>().ok())
            }) {
                let _ = tx.send((id, Instant::now()));
            }
        }
    });
    let mut next_id = 1u64;
    let mut send =
        |stdin: &mut std::io::BufWriter<std::process::ChildStdin>, body: String| -> u64 {
            let id = next_id;
            next_id += 1;
            let _ = writeln!(
                stdin,
                r#"{{"src":"c1","dest":"n0","body":{{"msg_id":{id},{body}}}}}"#
            );
            id
        };
    let init = send(
        &mut stdin,
        r#""type":"init","node_id":"n0","node_ids":["n0"]"#.into(),
    );
    let _ = stdin.flush();
    let wait_for = |rx: &mpsc::Receiver<(u64, Instant)>, id: u64| {
        while let Ok((got, _)) = rx.recv_timeout(Duration::from_secs(30)) {
            if got == id {
                return true;
            }
        }
        false
    };
    if !wait_for(&rx, init) {
        eprintln!("bench: node did not answer init");
        std::process::exit(1);
    }
    let mut value = 0u64;
    let mut rows = Vec::new();
    for size in SIZES {
        // Grow the set to `size` with a pipelined burst of broadcasts.
        let mut last = 0;
        while (value as usize) < size {
            last = send(
                &mut stdin,
                format!(r#""type":"broadcast","message":{value}"#),
            );
            value += 1;
        }
        let _ = stdin.flush();
        wait_for(&rx, last);
        for rate in RATES {
            let cpu0 = maelstrom::procstats::ProcStats::read(pid)
                .map(|s| s.cpu_seconds)
                .unwrap_or(0.0);
            let mut sent: HashMap<u64, (bool, Instant)> = HashMap::new();
            let mut lat: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            let start = Instant::now();
            let gap = Duration::from_secs_f64(1.0 / rate as f64);
            let mut k = 0u64;
            while start.elapsed() < WINDOW {
                let due = start + gap * k as u32;
                let now = Instant::now();
                if now < due {
                    std::thread::sleep(due - now);
                }
                let is_read = k % 2 == 0;
                let body = if is_read {
                    r#""type":"read""#.to_string()
                } else {
                    value += 1;
                    format!(r#""type":"broadcast","message":{}"#, value + 10_000_000)
                };
                let id = send(&mut stdin, body);
                let _ = stdin.flush();
                sent.insert(id, (is_read, Instant::now()));
                k += 1;
                while let Ok((id, at)) = rx.try_recv() {
                    if let Some((r, t0)) = sent.remove(&id) {
                        lat[usize::from(r)].push(at.duration_since(t0).as_secs_f64() * 1e3);
                    }
                }
            }
            let drain_until = Instant::now() + Duration::from_secs(10);
            while !sent.is_empty() && Instant::now() < drain_until {
                if let Ok((id, at)) = rx.recv_timeout(Duration::from_millis(100)) {
                    if let Some((r, t0)) = sent.remove(&id) {
                        lat[usize::from(r)].push(at.duration_since(t0).as_secs_f64() * 1e3);
                    }
                }
            }
            let cpu = maelstrom::procstats::ProcStats::read(pid)
                .map(|s| s.cpu_seconds)
                .unwrap_or(0.0)
                - cpu0;
            let rss = maelstrom::procstats::ProcStats::read(pid)
                .map(|s| s.peak_rss_kib)
                .unwrap_or(0);
            let q = |v: &mut Vec<f64>, q: f64| -> f64 {
                v.sort_by(|a, b| a.total_cmp(b));
                if v.is_empty() {
                    f64::NAN
                } else {
                    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
                }
            };
            let [mut b, mut r] = lat;
            let row = format!(
                "| {size} | {rate} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.0}% | {:.1} |",
                q(&mut b, 0.5),
                q(&mut b, 0.99),
                q(&mut r, 0.5),
                q(&mut r, 0.99),
                sent.len(),
                cpu / WINDOW.as_secs_f64() * 100.0,
                rss as f64 / 1024.0
            );
            eprintln!("capacity: {row}");
            rows.push(row);
        }
    }
    let _ = child.kill();
    let _ = std::fs::remove_dir_all(&data);
    let mut s = String::new();
    let _ = writeln!(s, "# Single-node capacity\n");
    let _ = writeln!(
        s,
        "Produced by `just capacity` (`target/release/bench --capacity`): one broadcast node (default settings) driven over \
         its pipes by an open-loop client. At each set size the set is first grown with broadcasts, then for {} s at each \
         rate the client alternates `read` (which returns the whole set) and `broadcast`. Latency is request write to \
         reply read, in ms. CPU is the node's CPU time over the window as a share of one core; RSS is its peak. \
         *Lost* counts replies not received within 10 s of the window's end.\n",
        WINDOW.as_secs()
    );
    let _ = writeln!(s, "| set size | ops/s | broadcast p50 | broadcast p99 | read p50 | read p99 | unanswered | node CPU | peak RSS MiB |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(s, "{r}");
    }
    let path = out.join("CAPACITY.md");
    if let Err(e) = std::fs::create_dir_all(out).and_then(|()| std::fs::write(&path, s)) {
        eprintln!("bench: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    eprintln!("bench: wrote {}", path.display());
}

/// `name` in the directory of the binary `of` (the release build's other binaries).
fn sibling(of: &str, name: &str) -> String {
    Path::new(of)
        .with_file_name(name)
        .to_string_lossy()
        .into_owned()
}

fn tempdir_for(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("murmur-bench-{what}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn read_results(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    get(v, path).and_then(Value::as_f64)
}

fn fmt(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |x| format!("{x:.digits$}"))
}

fn markdown(rows: &[Row], settings: &[Setting], seed: u64, cost: Option<Costs>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Broadcast benchmarks\n");
    let _ = writeln!(
        s,
        "Produced by `just bench` (seed {seed}) on the built-in runner: Gossip Glomers 3d/3e configuration \
         (25 nodes, `--latency 100`, `--rate 100`, `--time-limit 20`, plus the 10 s recovery wait), one run per row. \
         msgs-per-op is Maelstrom's (`net.servers` and `net.all`: messages over the whole run divided by client \
         invocations); latencies are set-full's stable latencies in ms. Node CPU and peak RSS are summed over the 25 \
         nodes (all incarnations). Lag is the runner's p99 delivery lag; a run over 2 ms is flagged overloaded and its \
         timings are not trusted. Re-run a row with its command (from the repository root, after \
         `cargo build --release --workspace`).\n"
    );
    if let Some(Costs {
        node: (alone, burst),
        floor,
    }) = cost
    {
        let floor = floor.map_or(String::new(), |(f_alone, f_burst)| {
            format!(
                " For reference, `{FLOOR}` (a process that only copies each line back: the kernel's and the \
                 hypervisor's price of one wake-up with a read and a write) spent {:.1} µs and {:.1} µs measured the \
                 same way.",
                f_alone * 1e6,
                f_burst * 1e6
            )
        });
        let _ = writeln!(
            s,
            "**Reading the CPU column.** On the machine that produced this file, a node spent {:.1} µs of CPU on a \
             request that arrived alone (the process asleep, woken for it) and {:.1} µs on one that arrived in a burst \
             (`bench` measures this first: one node, {REQUESTS} `read`s 5 ms apart vs. back to back, CPU from \
             `getrusage` of the reaped process, start-up subtracted).{floor} Node CPU is therefore close to \
             (wake-ups × the cost of one), and the wake-ups column counts them: the nodes' voluntary context switches \
             over the run (`getrusage`, every incarnation), one each time a node slept and was woken by a message or a \
             timer. The µs/wake-up column divides the two; in a run it is higher than alone, since 25 nodes and the \
             runner share two cores and each node wakes with cold caches. The 2,000 client requests of a run alone \
             account for about {:.2} s at the alone price.\n",
            alone * 1e6,
            burst * 1e6,
            2000.0 * alone
        );
    }
    let _ = writeln!(s, "Settings and their goals (from the efficiency issue):\n");
    for st in settings {
        let knobs = match (st.env, st.knobs) {
            _ if !st.bin.is_empty() => format!("(`{}`)", st.bin),
            ("", "") => "(defaults)".to_string(),
            ("", k) => format!("`{k}`"),
            (e, "") => format!("`{e}`"),
            (e, k) => format!("`{e}` `{k}`"),
        };
        let _ = writeln!(s, "- **{}** {knobs}: {}", st.name, st.goal);
    }
    let mut variant = "";
    for r in rows {
        if r.variant != variant {
            variant = &r.variant;
            let _ = writeln!(s, "\n## {variant}\n");
            let _ = writeln!(
                s,
                "| setting | valid | msgs-per-op servers | msgs-per-op all | median | p95 | p99 | max | lost | node CPU s | wake-ups | µs/wake-up | node RSS MiB | lag p99 µs | command |"
            );
            let _ = writeln!(
                s,
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
        }
        let Some(v) = &r.results else {
            let _ = writeln!(
                s,
                "| {} | aborted (exit {}) | | | | | | | | | | | | | `{}` |",
                r.setting, r.exit, r.command
            );
            continue;
        };
        let valid = match v.get("valid?") {
            Some(Value::Bool(true)) => "yes".to_string(),
            Some(Value::Bool(false)) => "**no**".to_string(),
            other => format!("{}", other.unwrap_or(&Value::Null)),
        };
        let lat = |q: &str| fmt(num(v, &["workload", "stable-latencies", q]), 0);
        let overloaded = get(v, &["runner", "overloaded"])
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let lag = format!(
            "{}{}",
            fmt(num(v, &["runner", "delivery-lag-us", "p99"]), 0),
            if overloaded { " (overloaded)" } else { "" }
        );
        let cpu = num(v, &["runner", "nodes", "cpu-seconds"]);
        let wakeups = num(v, &["runner", "nodes", "wake-ups"]);
        let _ = writeln!(
            s,
            "| {} | {valid} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {lag} | `{}` |",
            r.setting,
            fmt(num(v, &["net", "servers", "msgs-per-op"]), 2),
            fmt(num(v, &["net", "all", "msgs-per-op"]), 2),
            lat("0.5"),
            lat("0.95"),
            lat("0.99"),
            lat("1"),
            fmt(num(v, &["workload", "lost-count"]), 0),
            fmt(cpu, 2),
            fmt(wakeups, 0),
            fmt(cpu.zip(wakeups).map(|(c, w)| c / w.max(1.0) * 1e6), 1),
            fmt(
                num(v, &["runner", "nodes", "peak-rss-kib"]).map(|k| k / 1024.0),
                1
            ),
            r.command
        );
    }
    let fault_free_cpu = |name: &str| {
        rows.iter()
            .find(|r| r.setting == name && r.variant == VARIANTS[0].0)
            .and_then(|r| r.results.as_ref())
            .and_then(|v| num(v, &["runner", "nodes", "cpu-seconds"]))
    };
    if let (Some(node), Some(floor)) = (fault_free_cpu("default"), fault_free_cpu(REFERENCE)) {
        let _ = writeln!(
            s,
            "\n**Node CPU against the floor.** In this run the default setting's 25 nodes used {node:.2} s of CPU and the \
             {REFERENCE} {floor:.2} s: murmur costs {:.2}× the simplest design that delivers at the same rate, for its \
             acknowledgements, retries, catch-up and disk. Absolute CPU depends on the machine (its price per wake-up); \
             this ratio much less.",
            node / floor.max(1e-9)
        );
    }
    if let (Some(node), Some(cited)) = (fault_free_cpu("default"), fault_free_cpu(CITED)) {
        let ratio = node / cited.max(1e-9);
        let scaled = CITED_ISSUE_CPU * ratio;
        let _ = writeln!(
            s,
            "\n**Node CPU against the issue's yardstick.** The issue sets the target \"well under {CPU_TARGET} s\" beside a \
             solution that \"uses about {CITED_ISSUE_CPU} s\" on its machine. In this run that solution (the {CITED} row) \
             used {cited:.2} s, so this machine charges {:.2}× the issue's; murmur's default used {node:.2} s, {ratio:.2}× \
             the cited solution, which is {scaled:.2} s on the issue's machine: {}. One run of each: a run's CPU moves \
             by about ±10 % from one run to the next, so compare interleaved repeats before reading much into a few \
             percent.",
            cited / CITED_ISSUE_CPU,
            if scaled < CPU_TARGET {
                format!("{:.0} % under the target", 100.0 * (1.0 - scaled / CPU_TARGET))
            } else {
                "the target is not reached".to_string()
            }
        );
    }
    let _ = writeln!(s, "\n![msgs-per-op against stable latency](frontier.svg)\n");
    let _ = writeln!(
        s,
        "Frontier plot: each fault-free setting as a bar from median to max stable latency at its servers msgs-per-op; \
         the published solutions and the reference designs of the efficiency issue in grey."
    );
    s
}

/// A hand-written SVG: x = servers msgs-per-op (log scale), y = stable latency (ms).
fn frontier_svg(rows: &[Row]) -> String {
    let (w, h, left, bottom, top, right) = (760.0, 460.0, 70.0, 50.0, 20.0, 180.0);
    let (xmin, xmax, ymax) = (0.5f64.ln(), 40f64.ln(), 800.0);
    let px = |m: f64| left + (m.max(0.5).ln() - xmin) / (xmax - xmin) * (w - left - right);
    let py = |ms: f64| h - bottom - ms.min(ymax) / ymax * (h - bottom - top);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        h - bottom,
        w - right,
        h - bottom
    );
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>"#,
        h - bottom
    );
    for m in [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0] {
        let x = px(m);
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle">{m}</text>"##,
            h - bottom,
            h - bottom + 15.0
        );
    }
    for ms in (0..=800).step_by(100) {
        let y = py(ms as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{ms}</text>"##,
            w - right,
            left - 5.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">servers msgs-per-op (log scale)</text>"#,
        (left + w - right) / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="15" y="{}" transform="rotate(-90 15 {})" text-anchor="middle">stable latency, ms (median to max)</text>"#,
        h / 2.0,
        h / 2.0
    );
    for (label, m, med, max) in MARKS {
        let (x, y1, y2) = (px(*m), py(*med), py(*max));
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{y1}" x2="{x}" y2="{y2}" stroke="#999" stroke-width="2"/><circle cx="{x}" cy="{y2}" r="3" fill="#999"/><text x="{}" y="{}" fill="#777">{label}</text>"##,
            x + 5.0,
            y2 - 3.0
        );
    }
    for r in rows
        .iter()
        .filter(|r| r.variant == "no faults" && !comparison(&r.setting))
    {
        let Some(v) = &r.results else { continue };
        let (Some(m), Some(med), Some(max)) = (
            num(v, &["net", "servers", "msgs-per-op"]),
            num(v, &["workload", "stable-latencies", "0.5"]),
            num(v, &["workload", "stable-latencies", "1"]),
        ) else {
            continue;
        };
        let (x, y1, y2) = (px(m), py(med), py(max));
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{y1}" x2="{x}" y2="{y2}" stroke="#c33" stroke-width="3"/><circle cx="{x}" cy="{y2}" r="4" fill="#c33"/><text x="{}" y="{}" fill="#c33">{}</text>"##,
            x + 6.0,
            y2 + 12.0,
            r.setting
        );
    }
    s.push_str("</svg>\n");
    s
}

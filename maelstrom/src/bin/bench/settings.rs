//! The broadcast settings benchmark (`just bench`): runs the broadcast 3d/3e configuration (25
//! nodes, 100 ms latency, rate 100, 20 s) on the built-in runner for each node setting and fault
//! variant, then writes `BENCHMARKS.md` (one row per run, each naming the command that reproduces
//! it) and `frontier.svg` (msgs-per-op against stable latency, with the published and reference
//! points of the efficiency issue marked).
//!
//! `--quick` runs only the fault-free settings. `--cited PATH` adds a fault-free row for another
//! broadcast binary, the solution the efficiency issue uses as its CPU yardstick ("about 0.9 s at
//! 4 msgs-per-op"), and a paragraph that scales murmur's CPU to the issue's machine by it (README,
//! "Benchmarks", says how to build it; nothing of it is in this repository).

mod frontier;

use super::{children_cpu, fmt, get, num, read_results, sibling, spawn_node, tempdir_for};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
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

struct Row {
    setting: String,
    variant: String,
    command: String,
    exit: i32,
    results: Option<Value>,
}

/// The settings benchmark; see the module docs. `cited` is `--cited`'s binary.
pub fn run(
    runner: &str,
    node: &str,
    out: &Path,
    scratch: &Path,
    seed: u64,
    quick: bool,
    cited: Option<String>,
) {
    eprintln!("bench: measuring what one request costs a node, and `cat`");
    let cost = request_cost(node).map(|node| Costs {
        node,
        floor: request_cost(FLOOR),
    });
    let settings = settings(cited);
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
                node.to_string()
            } else if s.bin.contains('/') {
                s.bin.to_string()
            } else {
                sibling(runner, s.bin)
            };
            let mut cmd = vec![
                runner.to_string(),
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
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("bench: cannot create {}: {e}", out.display());
        std::process::exit(1);
    }
    // The sections of other modes are kept as they were: `bench --startup`'s,
    // `bench --counters`'s, `bench --elle`'s, `bench --lin-kv`'s and `bench --txn`'s.
    let kept = std::fs::read_to_string(out.join("BENCHMARKS.md")).unwrap_or_default();
    let (_, startup) = super::startup::take_section(&kept);
    let mut md = markdown(&rows, &settings, seed, cost);
    if !startup.is_empty() {
        md = super::startup::with_section(&md, &startup);
    }
    use super::{counters, elle, lin_kv, txn};
    for (begin, end) in [
        (counters::BEGIN, counters::END),
        (elle::BEGIN, elle::END),
        (lin_kv::BEGIN, lin_kv::END),
        (txn::BEGIN, txn::END),
    ] {
        if let Some(section) = counters::section_marked(&kept, begin, end) {
            md = counters::splice_marked(&md, begin, end, section);
        }
    }
    // The sections measured by hand (from the marker on) are kept too.
    super::write_or_exit(out, "BENCHMARKS.md", md);
    super::write_or_exit(out, "frontier.svg", frontier::frontier_svg(&rows));
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

//! `bench`: the repository's four measurement programs, each writing one markdown file under
//! `--out` (default `results/`). Run them through `just` (see README, "Benchmarks and evidence").
//!
//! - **`bench [--quick] [--seed N] [--cited PATH]`** ([`settings`], `just bench`): the broadcast
//!   3d/3e configuration (25 nodes, 100 ms latency, rate 100, 20 s) on the built-in runner for each
//!   node setting and fault variant; writes `BENCHMARKS.md` (one row per run, each naming the
//!   command that reproduces it) and `frontier.svg` (msgs-per-op against stable latency, with the
//!   published and reference points of the efficiency issue marked).
//! - **`bench --faults [--seeds N] [--reuse]`** ([`faults`], `just faults`): the durability matrix, N seeds of
//!   `--nemesis kill,pause,partition` at 5 and at 25 nodes; writes `FAULTS.md`.
//! - **`bench --soak [--soak-secs S]`** ([`soak`], `just soak`): one long kill, pause and partition
//!   run at 25 nodes with the memory of the runner and the nodes sampled; writes `SOAK.md` and the
//!   soak section of `FAULTS.md`.
//! - **`bench --capacity`** ([`capacity`], `just capacity`): one broadcast node driven directly over
//!   its pipes at growing set sizes and rates; writes `CAPACITY.md`.
//! - **`bench --counters [--seed N]`** ([`counters`], `just bench-counters`): murmur's g-counter in
//!   its CRDT and seq-kv designs side by side on challenge 4's configuration, without faults, with
//!   partitions, with kills, pauses and partitions: msgs-per-op, latencies, read staleness, node
//!   CPU; writes the "Counters" section of `BENCHMARKS.md` (the settings benchmark keeps it).
//! - **`bench --lin-kv [--seed N]`** ([`lin_kv`], `just bench-lin-kv`): murmur's Raft `lin-kv`
//!   node beside `kv-proxy` (every op passed to the runner's `lin-kv` service) at 5 nodes,
//!   without faults, with partitions, with kills, pauses and partitions: msgs-per-op, latencies,
//!   op outcomes, node CPU; writes the "lin-kv" section of `BENCHMARKS.md` (kept by `bench`).
//! - **`bench --txn [--seeds N]`** ([`txn`], `just bench-txn`): murmur's txn-rw-register node
//!   in its batched and per-txn designs, durable and in memory, on the Gossip Glomers 6a–6c
//!   configurations, seeds 1 to N (default 3) with the designs of a seed back to back:
//!   validity, msgs-per-op, latencies, node CPU; writes the "txn-rw-register" section of
//!   `BENCHMARKS.md` (kept by `bench`).
//! - **`bench --runner-capacity [--fixture PATH]`** ([`runner_capacity`], `just runner-capacity`):
//!   the runner's own throughput under flooding fixture nodes; writes `RUNNER.md`.
//! - **`bench --startup [--values N] [--repeats N]`** ([`startup`], `just startup`): a node's
//!   start-up (spawn to `init_ok`) over a log of N values, uncompacted and compacted; writes the
//!   "Start-up" section of `BENCHMARKS.md`, which the settings benchmark keeps when it rewrites
//!   the rest.
//!
//! - **`bench --kafka-checker [--seed N] [--repeats N]`** ([`kafka_checker`]): the kafka
//!   checker's time on a 30 s `--rate 1000` history made in the simulator; prints it.
//! - **`bench --lin-kv-checker [--seed N] [--repeats N]`** ([`lin_kv_checker`]): the
//!   linearizability checker's time on a 60 s `--rate 100` lin-kv history at 5 nodes made in the
//!   simulator; prints it.
//! - **`bench --elle [--txns N]`** ([`elle`]): the txn workloads' checker over a seeded history of N
//!   transactions (default 10,000); writes the "Elle checker" section of `BENCHMARKS.md`, which
//!   the settings benchmark keeps.
//!
//! Runs are sequential: they share the machine's cores with the nodes under test.

mod capacity;
mod counters;
mod elle;
mod faults;
mod kafka_checker;
mod lin_kv;
mod lin_kv_checker;
mod runner_capacity;
mod settings;
mod soak;
mod startup;
mod txn;

use clap::{ArgGroup, Parser};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Broadcast benchmarks, the durability matrix, single-node capacity and the runner's capacity.
/// Without a mode flag, runs the broadcast settings benchmark.
#[derive(Debug, Parser)]
#[command(name = "bench")]
#[command(group(ArgGroup::new("mode").args(["faults", "soak", "capacity", "runner_capacity", "startup", "counters", "kafka_checker", "lin_kv_checker", "elle", "lin_kv", "txn"])))]
#[command(group(ArgGroup::new("seeded").args(["faults", "txn"])))]
struct Cli {
    /// Run the durability matrix (kill, pause and partition at 5 and 25 nodes) → FAULTS.md.
    #[arg(long)]
    faults: bool,
    /// Run one long kill, pause and partition run at 25 nodes, sampling memory → SOAK.md.
    #[arg(long)]
    soak: bool,
    /// Soak run: its `--time-limit`, seconds.
    #[arg(long, value_name = "S", default_value_t = 600, requires = "soak")]
    soak_secs: u64,
    /// Drive one broadcast node over its pipes (latency against rate and set size) → CAPACITY.md.
    #[arg(long)]
    capacity: bool,
    /// Measure the runner itself under 25 flooding fixture nodes → RUNNER.md.
    #[arg(long)]
    runner_capacity: bool,
    /// Time a node's start-up over a large log, uncompacted and compacted → BENCHMARKS.md's
    /// "Start-up" section.
    #[arg(long)]
    startup: bool,
    /// murmur's g-counter, CRDT against seq-kv design, on challenge 4's configuration → the
    /// "Counters" section of BENCHMARKS.md (`--seed` applies).
    #[arg(long)]
    counters: bool,
    /// Time the kafka checker on a 30 s `--rate 1000` history made in the simulator (`--seed`
    /// and `--repeats` apply); prints the times.
    #[arg(long)]
    kafka_checker: bool,
    /// Time the linearizability checker on a 60 s `--rate 100` lin-kv history at 5 nodes made in
    /// the simulator (`--seed` and `--repeats` apply); prints the times.
    #[arg(long)]
    lin_kv_checker: bool,
    /// Time the txn workloads' checker over a seeded history → the "Elle checker" section of
    /// BENCHMARKS.md.
    #[arg(long)]
    elle: bool,
    /// Elle checker: transactions in the history.
    #[arg(long, value_name = "N", default_value_t = 10_000, requires = "elle")]
    txns: usize,
    /// murmur's Raft lin-kv node against kv-proxy over the lin-kv service, 5 nodes, without
    /// faults, with partitions, with kills, pauses and partitions → the "lin-kv" section of
    /// BENCHMARKS.md (`--seed` applies).
    #[arg(long)]
    lin_kv: bool,
    /// murmur's txn-rw-register node, batched against per-txn design, durable and in memory, on
    /// the Gossip Glomers 6a–6c configurations → the "txn-rw-register" section of BENCHMARKS.md
    /// (`--seeds` applies: seeds 1 to N, default 3).
    #[arg(long)]
    txn: bool,

    /// Settings benchmark: run only the fault-free variant.
    #[arg(long, conflicts_with = "mode")]
    quick: bool,
    /// Settings, counter and soak benchmarks: the runner's `--seed` for every run.
    #[arg(long, value_name = "N", default_value_t = 1, conflicts_with_all = ["faults", "capacity", "runner_capacity", "startup", "txn"])]
    seed: u64,
    /// Settings benchmark: also run this broadcast binary (the solution the efficiency issue cites
    /// for its CPU target) as a fault-free row, and scale murmur's CPU to the machine by it.
    #[arg(long, value_name = "PATH", conflicts_with = "mode")]
    cited: Option<String>,
    /// Durability matrix: seeds 1 to N for each configuration (default 20); txn benchmark: seeds
    /// 1 to N (default 3).
    #[arg(long, value_name = "N", requires = "seeded")]
    seeds: Option<u64>,
    /// Durability matrix: re-render from the run folders already under `<out>/bench-runs`, running
    /// only the missing ones.
    #[arg(long, requires = "faults")]
    reuse: bool,
    /// Runner capacity: the load-generating fixture binary.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "target/release/broken-node",
        requires = "runner_capacity"
    )]
    fixture: String,
    /// Start-up: values in the node's log.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1_000_000,
        requires = "startup"
    )]
    values: u64,
    /// Start-up: runs per log; kafka checker: checks of the history (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 7)]
    repeats: usize,

    /// The runner binary (its directory also holds `reference-star`).
    #[arg(long, value_name = "PATH", default_value = "target/release/maelstrom")]
    runner: String,
    /// The broadcast node binary under test.
    #[arg(long, value_name = "PATH", default_value = "target/release/broadcast")]
    node: String,
    /// Where the markdown (and scratch run folders, under `bench-runs/`) go.
    #[arg(long, value_name = "DIR", default_value = "results")]
    out: PathBuf,
}

fn main() {
    let cli = Cli::parse();
    let scratch = cli.out.join("bench-runs");
    if cli.kafka_checker {
        kafka_checker::run(cli.seed, 30, 1000.0, cli.repeats.max(1));
    } else if cli.lin_kv_checker {
        lin_kv_checker::run(cli.seed, 60, 100.0, cli.repeats.max(1));
    } else if cli.elle {
        elle::run(&cli.out, cli.txns);
    } else if cli.runner_capacity {
        runner_capacity::run(&cli.runner, &cli.fixture, &cli.out, &scratch);
    } else if cli.startup {
        startup::run(&cli.node, &cli.out, cli.values, cli.repeats.max(1));
    } else if cli.capacity {
        capacity::run(&cli.node, &cli.out);
    } else if cli.soak {
        soak::run(
            &cli.runner,
            &cli.node,
            &cli.out,
            &scratch,
            cli.soak_secs,
            cli.seed,
        );
    } else if cli.counters {
        counters::run(&cli.runner, &cli.node, &cli.out, &scratch, cli.seed);
    } else if cli.txn {
        txn::run(
            &cli.runner,
            &cli.node,
            &cli.out,
            &scratch,
            cli.seeds.unwrap_or(3),
        );
    } else if cli.lin_kv {
        lin_kv::run(&cli.runner, &cli.node, &cli.out, &scratch, cli.seed);
    } else if cli.faults {
        faults::run(
            &cli.runner,
            &cli.node,
            &cli.out,
            &scratch,
            cli.seeds.unwrap_or(20),
            cli.reuse,
        );
    } else {
        settings::run(
            &cli.runner,
            &cli.node,
            &cli.out,
            &scratch,
            cli.seed,
            cli.quick,
            cli.cited,
        );
    }
}

/// Sections measured by hand (not by this program) start at this line in a results file; writing
/// the file again keeps everything from it on, so the bench does not erase them.
const KEPT_MARKER: &str = "<!-- measured by hand, kept when the bench rewrites this file -->";

/// Writes `section` (from its `begin` marker to its `end` marker) into `out/BENCHMARKS.md`, in
/// place of the old one (appended if there is none), keeping the rest of the file.
fn write_marked_section(out: &Path, begin: &str, end: &str, section: &str) {
    let old = std::fs::read_to_string(out.join("BENCHMARKS.md")).unwrap_or_default();
    let text = counters::splice_marked(&old, begin, end, section);
    write_or_exit(out, "BENCHMARKS.md", text);
}

/// Writes `text` to `out/name` (creating `out`), or exits with status 1. The old file's part from
/// [`KEPT_MARKER`] on is appended, unless `text` already has it (rewritten from the old file).
fn write_or_exit(out: &Path, name: &str, mut text: String) {
    let path = out.join(name);
    if let Some(kept) = (!text.contains(KEPT_MARKER))
        .then(|| std::fs::read_to_string(&path).ok())
        .flatten()
        .and_then(|old| old.find(KEPT_MARKER).map(|at| old[at..].to_string()))
    {
        text.push('\n');
        text.push_str(&kept);
    }
    if let Err(e) = std::fs::create_dir_all(out).and_then(|()| std::fs::write(&path, text)) {
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

/// Runs `f` `repeats` times (at least once); "median X ms, min Y ms, max Z ms over N runs".
fn time_repeats(repeats: usize, mut f: impl FnMut()) -> String {
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    format!(
        "median {:.1} ms, min {:.1} ms, max {:.1} ms over {} runs",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len()
    )
}

/// Runs `command` (`<runner> test <flags>`, as printed in the tables) with its results under
/// `dir`, quietly; returns its exit code (-1 when it could not run or was killed).
fn run_test_command(runner: &str, command: &str, dir: &Path) -> i32 {
    // The runner's own flags go before the `--` that may start the node's arguments.
    Command::new(runner)
        .arg("test")
        .args(["--results-dir", &dir.to_string_lossy(), "--no-progress"])
        .args(command.split_whitespace().skip(2))
        .stdout(std::process::Stdio::null())
        .status()
        .map(|s| s.code().unwrap_or(-1))
        .unwrap_or(-1)
}

/// A run folder's `history.jsonl`, its unreadable lines skipped (empty when there is none).
fn read_history(run_dir: &Path) -> Vec<maelstrom::history::Op> {
    std::fs::read_to_string(run_dir.join("history.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn documented_invocations_parse() {
        let c = parse(&[]).unwrap();
        assert!(!c.quick && !c.faults && !c.capacity && !c.runner_capacity);
        assert_eq!(
            (c.seed, c.seeds, c.out.as_path()),
            (1, None, Path::new("results"))
        );
        assert!(parse(&["--quick"]).unwrap().quick);
        let c = parse(&["--cited", "/x/broadcast", "--seed", "3"]).unwrap();
        assert_eq!((c.cited.as_deref(), c.seed), (Some("/x/broadcast"), 3));
        let c = parse(&["--faults", "--seeds", "5"]).unwrap();
        assert!(c.faults && c.seeds == Some(5) && !c.reuse);
        let c = parse(&["--txn", "--seeds", "4"]).unwrap();
        assert!(c.txn && c.seeds == Some(4));
        assert!(parse(&["--faults", "--reuse"]).unwrap().reuse);
        assert!(parse(&["--capacity"]).unwrap().capacity);
        let c = parse(&["--soak", "--soak-secs", "60", "--seed", "2"]).unwrap();
        assert!(c.soak && c.soak_secs == 60 && c.seed == 2);
        assert_eq!(parse(&["--soak"]).unwrap().soak_secs, 600);
        let c = parse(&["--counters", "--seed", "4"]).unwrap();
        assert!(c.counters && c.seed == 4);
        let c = parse(&["--lin-kv", "--seed", "5"]).unwrap();
        assert!(c.lin_kv && c.seed == 5);
        let c = parse(&["--runner-capacity", "--fixture", "f"]).unwrap();
        assert!(c.runner_capacity && c.fixture == "f");
        let c = parse(&["--capacity", "--node", "n", "--out", "o"]).unwrap();
        assert_eq!((c.node.as_str(), c.out.as_path()), ("n", Path::new("o")));
        let c = parse(&["--kafka-checker", "--seed", "2", "--repeats", "3"]).unwrap();
        assert!(c.kafka_checker && c.seed == 2 && c.repeats == 3);
        let c = parse(&["--startup"]).unwrap();
        assert!(c.startup && c.values == 1_000_000 && c.repeats == 7);
        let c = parse(&["--startup", "--values", "1000", "--repeats", "3"]).unwrap();
        assert_eq!((c.values, c.repeats), (1000, 3));
    }

    #[test]
    fn the_startup_section_is_replaced_or_appended_and_the_rest_kept() {
        let doc = "# B\n\nintro\n\n## no faults\n\n| a |\n";
        let section = "## Start-up\n\n| s |";
        let with = startup::with_section(doc, section);
        assert_eq!(with, format!("{}\n\n{section}\n", doc.trim_end()));
        let (rest, taken) = startup::take_section(&with);
        assert_eq!((rest.trim_end(), taken.as_str()), (doc.trim_end(), section));
        // In the middle: replaced in place, the next section kept.
        let mid = "# B\n\n## Start-up\n\nold\n\n## partition\n\nx\n";
        let new = startup::with_section(mid, "## Start-up\n\nnew");
        assert_eq!(new, "# B\n\n## Start-up\n\nnew\n\n## partition\n\nx\n");
        assert_eq!(startup::take_section(mid).1, "## Start-up\n\nold");
        // Before the hand-measured part: the section stops at its marker.
        let kept = format!("# B\n\n## Start-up\n\nold\n\n{KEPT_MARKER}\n\n## by hand\n");
        let new = startup::with_section(&kept, "## Start-up\n\nnew");
        assert_eq!(
            new,
            format!("# B\n\n## Start-up\n\nnew\n\n{KEPT_MARKER}\n\n## by hand\n")
        );
        assert_eq!(startup::take_section(&kept).1, "## Start-up\n\nold");
    }

    /// Every mode writes through `write_or_exit`, which keeps the sections measured by hand.
    #[test]
    fn a_rewrite_keeps_what_was_measured_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let old = format!("# B\n\nold rows\n\n{KEPT_MARKER}\n\n## by hand\n");
        std::fs::write(dir.path().join("BENCHMARKS.md"), old).unwrap();
        write_or_exit(dir.path(), "BENCHMARKS.md", "# B\n\nnew rows\n".into());
        let new = std::fs::read_to_string(dir.path().join("BENCHMARKS.md")).unwrap();
        assert_eq!(
            new,
            format!("# B\n\nnew rows\n\n{KEPT_MARKER}\n\n## by hand\n")
        );
    }

    #[test]
    fn bad_arguments_are_errors() {
        for args in [
            &["--seed", "x"][..],
            &["--seeds"],
            &["--bogus"],
            &["extra"],
            &["--faults", "--capacity"],
            &["--faults", "--quick"],
            &["--counters", "--faults"],
            &["--counters", "--quick"],
            &["--lin-kv", "--counters"],
            &["--capacity", "--cited", "p"],
            &["--seeds", "3"],
            &["--soak-secs", "3"],
            &["--reuse"],
            &["--soak", "--faults"],
            &["--fixture", "f"],
            &["--values", "5"],
            &["--startup", "--capacity"],
            &["--kafka-checker", "--faults"],
            &["--txn", "--seed", "2"],
            &["--txn", "--lin-kv"],
        ] {
            assert!(parse(args).is_err(), "{args:?} parsed");
        }
    }
}

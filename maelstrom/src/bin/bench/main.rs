//! `bench`: the repository's four measurement programs, each writing one markdown file under
//! `--out` (default `results/`). Run them through `just` (see README, "Benchmarks and evidence").
//!
//! - **`bench [--quick] [--seed N] [--cited PATH]`** ([`settings`], `just bench`): the broadcast
//!   3d/3e configuration (25 nodes, 100 ms latency, rate 100, 20 s) on the built-in runner for each
//!   node setting and fault variant; writes `BENCHMARKS.md` (one row per run, each naming the
//!   command that reproduces it) and `frontier.svg` (msgs-per-op against stable latency, with the
//!   published and reference points of the efficiency issue marked).
//! - **`bench --faults [--seeds N]`** ([`faults`], `just faults`): the durability matrix, N seeds of
//!   `--nemesis kill,pause,partition` at 5 and at 25 nodes; writes `FAULTS.md`.
//! - **`bench --capacity`** ([`capacity`], `just capacity`): one broadcast node driven directly over
//!   its pipes at growing set sizes and rates; writes `CAPACITY.md`.
//! - **`bench --counters [--seed N]`** ([`counters`], `just bench-counters`): murmur's g-counter in
//!   its CRDT and seq-kv designs side by side on challenge 4's configuration, without faults, with
//!   partitions, with kills, pauses and partitions: msgs-per-op, latencies, read staleness, node
//!   CPU; writes the "Counters" section of `BENCHMARKS.md` (the settings benchmark keeps it).
//! - **`bench --runner-capacity [--fixture PATH]`** ([`runner_capacity`], `just runner-capacity`):
//!   the runner's own throughput under flooding fixture nodes; writes `RUNNER.md`.
//!
//! Runs are sequential: they share the machine's cores with the nodes under test.

mod capacity;
mod counters;
mod faults;
mod runner_capacity;
mod settings;

use clap::{ArgGroup, Parser};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Broadcast benchmarks, the durability matrix, single-node capacity and the runner's capacity.
/// Without a mode flag, runs the broadcast settings benchmark.
#[derive(Debug, Parser)]
#[command(name = "bench")]
#[command(group(ArgGroup::new("mode").args(["faults", "capacity", "runner_capacity", "counters"])))]
struct Cli {
    /// Run the durability matrix (kill, pause and partition at 5 and 25 nodes) → FAULTS.md.
    #[arg(long)]
    faults: bool,
    /// Drive one broadcast node over its pipes (latency against rate and set size) → CAPACITY.md.
    #[arg(long)]
    capacity: bool,
    /// Measure the runner itself under 25 flooding fixture nodes → RUNNER.md.
    #[arg(long)]
    runner_capacity: bool,
    /// murmur's g-counter, CRDT against seq-kv design, on challenge 4's configuration → the
    /// "Counters" section of BENCHMARKS.md (`--seed` applies).
    #[arg(long)]
    counters: bool,

    /// Settings benchmark: run only the fault-free variant.
    #[arg(long, conflicts_with = "mode")]
    quick: bool,
    /// Settings and counter benchmarks: the runner's `--seed` for every run.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Settings benchmark: also run this broadcast binary (the solution the efficiency issue cites
    /// for its CPU target) as a fault-free row, and scale murmur's CPU to the machine by it.
    #[arg(long, value_name = "PATH", conflicts_with = "mode")]
    cited: Option<String>,
    /// Durability matrix: seeds 1 to N for each configuration.
    #[arg(long, value_name = "N", default_value_t = 20, requires = "faults")]
    seeds: u64,
    /// Runner capacity: the load-generating fixture binary.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "target/release/broken-node",
        requires = "runner_capacity"
    )]
    fixture: String,

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
    if cli.runner_capacity {
        runner_capacity::run(&cli.runner, &cli.fixture, &cli.out, &scratch);
    } else if cli.capacity {
        capacity::run(&cli.node, &cli.out);
    } else if cli.counters {
        counters::run(&cli.runner, &cli.node, &cli.out, &scratch, cli.seed);
    } else if cli.faults {
        faults::run(&cli.runner, &cli.node, &cli.out, &scratch, cli.seeds);
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

/// Writes `text` to `out/name` (creating `out`), or exits with status 1.
fn write_or_exit(out: &Path, name: &str, text: String) {
    let path = out.join(name);
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
            (1, 20, Path::new("results"))
        );
        assert!(parse(&["--quick"]).unwrap().quick);
        let c = parse(&["--cited", "/x/broadcast", "--seed", "3"]).unwrap();
        assert_eq!((c.cited.as_deref(), c.seed), (Some("/x/broadcast"), 3));
        let c = parse(&["--faults", "--seeds", "5"]).unwrap();
        assert!(c.faults && c.seeds == 5);
        assert!(parse(&["--capacity"]).unwrap().capacity);
        let c = parse(&["--counters", "--seed", "4"]).unwrap();
        assert!(c.counters && c.seed == 4);
        let c = parse(&["--runner-capacity", "--fixture", "f"]).unwrap();
        assert!(c.runner_capacity && c.fixture == "f");
        let c = parse(&["--capacity", "--node", "n", "--out", "o"]).unwrap();
        assert_eq!((c.node.as_str(), c.out.as_path()), ("n", Path::new("o")));
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
            &["--capacity", "--cited", "p"],
            &["--seeds", "3"],
            &["--fixture", "f"],
        ] {
            assert!(parse(args).is_err(), "{args:?} parsed");
        }
    }
}

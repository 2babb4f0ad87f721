//! End-to-end tests of the runner: `maelstrom::run::run` on real node processes, in real time.
//!
//! - Deliberately broken nodes (`src/bin/broken-node.rs`) must be judged as Maelstrom would judge
//!   them: invalid (exit 1) or aborted (exit 255).
//! - The bench's cost baseline (`src/bin/reference-star.rs`) must be valid without faults and
//!   lose values under partition, as its docs say.
//! - murmur's own nodes (the root crate's `echo`, `unique-ids`, `broadcast`, `g-set`, `g-counter`,
//!   `pn-counter`) must pass the Gossip Glomers configurations, with shorter time limits, and the run folder must hold what
//!   Maelstrom's store does, with the message counts Maelstrom's `net` checker would report.
//! - The `maelstrom` binary maps outcomes to Maelstrom's exit codes (0, 1, 254, 255).
//!
//! Options are built the way the CLI builds them (`Cli::try_parse_from` then `resolve`), with a
//! fixed `--seed`, `--no-progress`, and `--results-dir` in a fresh temporary directory per test,
//! so the tests can run in parallel.
//!
//! Cost: every broadcast run takes its time limit plus Maelstrom's fixed 10 s recovery wait, so
//! the suite takes about a minute with two test threads.
//!
//! The node binaries are found next to this test's executable (`target/<profile>/`); they are
//! built with `cargo build -p murmur --bins` when missing or older than the root crate's sources.
//! Set `MURMUR_TEST_E2E_BIN_DIR` to use binaries from another directory instead (no build then).

use clap::Parser;
use maelstrom::cli::{Cli, Command, TestOpts};
use maelstrom::run::{run, RunOutcome};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The seed of every run unless a test passes its own `--seed` (a later flag wins).
const SEED: u64 = 7;

// ---------------------------------------------------------------------------------------------
// Harness

mod common;
use common::node_bin;

/// The deliberately broken test fixture.
fn broken_node() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_broken-node"))
}

/// `maelstrom test -w <workload> --bin <bin> <flags> -- <node_args>`, resolved as the CLI does.
fn test_opts(
    workload: &str,
    bin: &Path,
    flags: &[&str],
    node_args: &[&str],
    results: &Path,
) -> TestOpts {
    let seed = SEED.to_string();
    let mut argv: Vec<&str> = vec![
        "maelstrom",
        "test",
        "-w",
        workload,
        "--bin",
        bin.to_str().expect("UTF-8 path"),
        "--results-dir",
        results.to_str().expect("UTF-8 path"),
        "--no-progress",
        "--seed",
        &seed,
    ];
    argv.extend_from_slice(flags);
    if !node_args.is_empty() {
        argv.push("--");
        argv.extend_from_slice(node_args);
    }
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let Command::Test(args) = cli.command else {
        panic!("{argv:?}: not a test command");
    };
    args.resolve().unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

/// One run, with its results folder (kept alive as long as the value).
struct Run {
    outcome: anyhow::Result<RunOutcome>,
    results: TempDir,
    took: Duration,
}

fn run_test(workload: &str, bin: &Path, flags: &[&str], node_args: &[&str]) -> Run {
    let results = tempfile::tempdir().expect("tempdir");
    let opts = test_opts(workload, bin, flags, node_args, results.path());
    let start = Instant::now();
    let outcome = run(&opts);
    Run {
        outcome,
        results,
        took: start.elapsed(),
    }
}

impl Run {
    /// The outcome, which must have exit code `code`; on a mismatch, the panic shows the summary.
    fn expect_exit(&self, code: i32) -> &RunOutcome {
        match &self.outcome {
            Ok(o) if o.exit_code == code => o,
            Ok(o) => panic!(
                "expected exit code {code}, got {}:\n{}",
                o.exit_code,
                maelstrom::results::summary(
                    &o.results,
                    &maelstrom::results::SummaryInfo {
                        seed: None,
                        run_dir: o.dir.as_deref()
                    }
                )
            ),
            Err(e) => panic!("expected exit code {code}, the run aborted: {e:#}"),
        }
    }

    fn expect_valid(&self) -> &RunOutcome {
        let o = self.expect_exit(0);
        assert_eq!(o.results["valid?"], true);
        o
    }

    fn expect_invalid(&self) -> &RunOutcome {
        let o = self.expect_exit(1);
        assert_eq!(o.results["valid?"], false);
        o
    }

    /// The abort's message (`{:#}`); panics if the run did not abort.
    fn expect_abort(&self) -> String {
        match &self.outcome {
            Err(e) => format!("{e:#}"),
            Ok(o) => panic!(
                "expected an abort, got exit code {} with {}",
                o.exit_code, o.results
            ),
        }
    }

    /// The run folder: `<results>/latest` resolved (it exists for aborted runs too).
    fn run_dir(&self) -> PathBuf {
        let latest = self.results.path().join("latest");
        std::fs::canonicalize(&latest)
            .unwrap_or_else(|e| panic!("{} does not resolve: {e}", latest.display()))
    }
}

/// `results[pointer]` as an integer, with a clear panic if it is missing.
fn int(results: &Value, pointer: &str) -> u64 {
    results
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("results{pointer} is not an integer in {results}"))
}

/// Every line of a JSON-lines file, parsed.
fn jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

/// The keys every analysed run has in results.json.
fn assert_result_keys(results: &Value) {
    for key in [
        "valid?",
        "workload",
        "stats",
        "net",
        "availability",
        "exceptions",
        "runner",
    ] {
        assert!(results.get(key).is_some(), "results.json lacks {key:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Broken nodes: each must fail as it would under Maelstrom.

#[test]
fn a_broadcast_node_that_never_gossips_loses_values() {
    let r = run_test(
        "broadcast",
        &broken_node(),
        &["--node-count", "5", "--time-limit", "3", "--rate", "10"],
        &["never-gossip"],
    );
    let o = r.expect_invalid();
    assert_eq!(o.results["workload"]["valid?"], false);
    assert!(int(&o.results, "/workload/lost-count") > 0);
    // The nodes answer every request: only the workload checker can catch them.
    assert_eq!(o.results["stats"]["valid?"], true);
    assert_eq!(int(&o.results, "/net/servers/send-count"), 0);
}

#[test]
fn a_fire_and_forget_relay_loses_values_sent_into_a_partition() {
    // Seed 7: the first partition (t ≈ 0) lasts most of the 4 s main phase; relays into it are
    // dropped and never retried.
    let r = run_test(
        "broadcast",
        &broken_node(),
        &[
            "--node-count",
            "5",
            "--time-limit",
            "4",
            "--rate",
            "10",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "2",
        ],
        &["fire-and-forget"],
    );
    let o = r.expect_invalid();
    assert!(
        int(&o.results, "/workload/lost-count") > 0,
        "{}",
        o.results["workload"]
    );
    let history = jsonl(&r.run_dir().join("history.jsonl"));
    assert!(
        history
            .iter()
            .any(|op| op["process"] == "nemesis" && op["f"] == "start-partition"),
        "the partition never started"
    );
    // Without the partition nothing would be lost: the relays did go out.
    assert!(int(&o.results, "/net/servers/send-count") > 0);
}

/// `just bench`'s cost baseline (`src/bin/reference-star.rs`) must deliver everything without
/// faults, or its CPU figure would be the price of a node that does not work; and it has no fault
/// tolerance, so a partition must cost it values (the runner has to see that too).
#[test]
fn the_reference_star_is_valid_without_faults_and_loses_values_to_a_partition() {
    let star = PathBuf::from(env!("CARGO_BIN_EXE_reference-star"));
    let flags = ["--node-count", "5", "--time-limit", "4", "--rate", "10"];
    let clean = run_test("broadcast", &star, &flags, &[]);
    let o = clean.expect_valid();
    assert_eq!(int(&o.results, "/workload/lost-count"), 0);
    assert!(int(&o.results, "/net/servers/send-count") > 0);
    // Seed 7, as for the fire-and-forget relay above: the first partition lasts most of the run.
    let mut partitioned = flags.to_vec();
    partitioned.extend(["--nemesis", "partition", "--nemesis-interval", "2"]);
    let r = run_test("broadcast", &star, &partitioned, &[]);
    let o = r.expect_invalid();
    assert!(
        int(&o.results, "/workload/lost-count") > 0,
        "{}",
        o.results["workload"]
    );
}

#[test]
fn a_reply_with_an_extra_field_makes_ops_indeterminate() {
    let r = run_test(
        "broadcast",
        &broken_node(),
        &["--node-count", "3", "--time-limit", "3", "--rate", "10"],
        &["extra-field"],
    );
    let o = r.expect_invalid();
    let stats = &o.results["stats"];
    assert_eq!(stats["valid?"], false);
    assert_eq!(stats["by-f"]["broadcast"]["ok-count"], 0);
    assert!(int(&o.results, "/stats/by-f/broadcast/info-count") > 0);
    let exceptions = o.results["exceptions"]["exceptions"]
        .as_array()
        .expect("exceptions listed");
    assert!(
        exceptions.iter().any(|e| e["class"]
            .as_str()
            .is_some_and(|c| c.contains("malformed-rpc-response") && c.contains("message"))),
        "{exceptions:?}"
    );
}

#[test]
fn duplicate_ids_are_caught() {
    let r = run_test(
        "unique-ids",
        &broken_node(),
        &["--node-count", "3", "--time-limit", "2", "--rate", "100"],
        &["duplicate-ids"],
    );
    let o = r.expect_invalid();
    assert_eq!(o.results["workload"]["valid?"], false);
    assert!(int(&o.results, "/workload/duplicated-count") > 0);
}

#[test]
fn a_node_that_crashes_mid_run_aborts_the_test_with_its_last_words() {
    let r = run_test(
        "echo",
        &broken_node(),
        &["--node-count", "1", "--time-limit", "10", "--rate", "10"],
        &["crash-after=10"],
    );
    let err = r.expect_abort();
    assert!(err.contains("Node n0 crashed with exit code 0"), "{err}");
    // Its last stderr lines, in order, ending with the last thing it wrote.
    assert!(
        err.contains("got \"echo\" from c2\ncrashing on purpose after 10 lines"),
        "{err}"
    );
    assert!(err.contains("node-logs/n0.log"), "{err}");
    // As in Maelstrom: the history is saved, but there is no analysis.
    let dir = r.run_dir();
    assert!(dir.join("history.jsonl").is_file());
    // Detected as it happens, not at teardown: had the run gone on, requests to the dead node
    // would have completed with a 5 s client timeout. (A fact of the recorded run, not a
    // wall-clock bound, so a loaded machine cannot make it fail.)
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let timeouts = history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|op| op["error"] == "net-timeout")
        .count();
    assert_eq!(timeouts, 0, "no request waited for its timeout:\n{history}");
    assert!(dir.join("messages.jsonl").is_file());
    assert!(!dir.join("results.json").exists());
    assert!(
        !dir.join("data").exists(),
        "the data dir is removed after an abort too"
    );
}

#[test]
fn nodes_that_crash_at_init_abort_at_once() {
    let r = run_test(
        "broadcast",
        &broken_node(),
        &["--node-count", "3", "--time-limit", "5"],
        &["crash-after=0"],
    );
    let err = r.expect_abort();
    assert!(err.contains("crashed with exit code 0"), "{err}");
    assert!(err.contains("crashing on purpose after 0 lines"), "{err}");
    // One report in full; any other node that crashed before the teardown is only named.
    assert_eq!(err.matches("Before crashing").count(), 1, "{err}");
    assert!(!err.contains("did not answer init"), "{err}");
    // Not after init's 10 s timeout: the error text is the same either way (the crash report
    // wins), so only the run's duration tells; the bound is that timeout itself, not a speed.
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);
}

#[test]
fn a_bad_topology_ok_aborts_at_setup_and_every_node_is_stopped() {
    let r = run_test(
        "broadcast",
        &broken_node(),
        &["--node-count", "3", "--time-limit", "5", "--keep-data"],
        &["bad-topology"],
    );
    let err = r.expect_abort();
    assert!(err.contains("answered topology badly"), "{err}");
    assert!(err.contains("extra"), "{err}");
    // The nodes ran in <run>/data (kept here), each wrote its pid there, and none outlives the
    // aborted run (a zombie would still answer signal 0: stopped means killed and reaped).
    let data = r.run_dir().join("data");
    for n in ["n0", "n1", "n2"] {
        let pid_file = data.join(format!("{n}.pid"));
        let pid: libc::pid_t = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
            .trim()
            .parse()
            .unwrap();
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "{n} (pid {pid}) is still running after the run");
    }
}

#[test]
fn a_node_whose_output_maelstrom_rejects_is_cut_off() {
    let r = run_test(
        "echo",
        &broken_node(),
        &["--node-count", "1", "--time-limit", "1"],
        &["bad-envelope"],
    );
    let o = r.expect_invalid();
    assert_eq!(o.results["stats"]["valid?"], false);
    assert_eq!(int(&o.results, "/stats/ok-count"), 0);
    let wedged = o.results["runner"]["wedged-nodes"]
        .as_array()
        .expect("wedged-nodes");
    assert_eq!(wedged.len(), 1, "{wedged:?}");
    assert_eq!(wedged[0]["node"], "n0");
    assert!(
        wedged[0]["error"].as_str().unwrap_or("").contains("extra"),
        "{wedged:?}"
    );
}

#[test]
fn killed_and_paused_nodes_are_faults_not_crashes() {
    let r = run_test(
        "echo",
        &node_bin("echo"),
        &[
            "--node-count",
            "3",
            "--time-limit",
            "4",
            "--rate",
            "20",
            "--nemesis",
            "kill,pause",
            "--nemesis-interval",
            "0.5",
        ],
        &[],
    );
    // Echo ops sent to a dead or paused node time out, and Maelstrom's echo checker counts every
    // indeterminate echo as an error: invalid is fine, an abort is not.
    let o = match &r.outcome {
        Ok(o) if o.exit_code == 0 || o.exit_code == 1 => o,
        Ok(o) => panic!("exit code {}: {}", o.exit_code, o.results),
        Err(e) => panic!("a killed node was taken for a crash: {e:#}"),
    };
    let dir = o.dir.clone().unwrap();
    let history = jsonl(&dir.join("history.jsonl"));
    let nemesis = |f: &str| {
        history
            .iter()
            .filter(|op| op["process"] == "nemesis" && op["f"] == f)
            .count()
    };
    assert!(nemesis("kill") > 0 && nemesis("start") > 0 && nemesis("pause") > 0);
    // (time, node) of every restart, from the start completions `["started", [nodes]]`.
    let restarts: Vec<(u64, String)> = history
        .iter()
        .filter(|op| op["process"] == "nemesis" && op["f"] == "start")
        .filter_map(|op| Some((op["time"].as_u64()?, op["value"][1].as_array()?.clone())))
        .flat_map(|(t, nodes)| {
            nodes
                .into_iter()
                .filter_map(move |n| Some((t, n.as_str()?.to_string())))
        })
        .collect();
    assert!(!restarts.is_empty(), "no node was restarted");
    for (_, node) in &restarts {
        let log = std::fs::read_to_string(dir.join(format!("node-logs/{node}.log"))).unwrap();
        assert!(log.contains("--- restarted ---"), "{node}: {log}");
    }
    // Each incarnation was initialised: one init (and one init_ok back) per start, plus the first.
    let journal = jsonl(&dir.join("messages.jsonl"));
    for node in ["n0", "n1", "n2"] {
        let starts = restarts.iter().filter(|(_, n)| n == node).count();
        let count = |ty: &str, end: &str| {
            journal
                .iter()
                .filter(|e| e["kind"] == "recv" && e["body_type"] == ty && e[end] == node)
                .count()
        };
        assert_eq!(
            count("init", "dest"),
            1 + starts,
            "inits delivered to {node}"
        );
        assert_eq!(count("init_ok", "src"), 1 + starts, "init_oks from {node}");
    }
}

// ---------------------------------------------------------------------------------------------
// murmur's nodes on the challenge configurations, with short time limits.

#[test]
fn echo_is_valid_and_the_run_folder_is_complete() {
    let r = run_test(
        "echo",
        &node_bin("echo"),
        &["--node-count", "1", "--time-limit", "3"],
        &[],
    );
    let o = r.expect_valid();
    assert_result_keys(&o.results);
    assert_eq!(o.results["workload"]["valid?"], true);
    let dir = o.dir.clone().expect("a run folder");
    assert_eq!(r.run_dir(), std::fs::canonicalize(&dir).unwrap());
    assert!(r.results.path().join("echo/latest").exists());
    for f in [
        "results.json",
        "history.jsonl",
        "history.txt",
        "messages.jsonl",
        "node-logs/n0.log",
    ] {
        assert!(dir.join(f).is_file(), "{f} is missing");
    }
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(stored, o.results, "results.json is what run() returned");
    assert!(
        !dir.join("data").exists(),
        "the nodes' data dir is removed after the run"
    );
    assert_eq!(o.results["runner"]["seed"], SEED);
}

#[test]
fn keep_data_keeps_the_nodes_working_directory() {
    let r = run_test(
        "echo",
        &node_bin("echo"),
        &["--node-count", "1", "--time-limit", "1", "--keep-data"],
        &[],
    );
    let o = r.expect_valid();
    assert!(o.dir.as_ref().unwrap().join("data").is_dir());
}

#[test]
fn unique_ids_is_valid_and_totally_available_under_partitions() {
    let r = run_test(
        "unique-ids",
        &node_bin("unique-ids"),
        &[
            "--node-count",
            "3",
            "--time-limit",
            "5",
            "--rate",
            "1000",
            "--availability",
            "total",
            "--nemesis",
            "partition",
        ],
        &[],
    );
    let o = r.expect_valid();
    assert_result_keys(&o.results);
    assert_eq!(o.results["availability"]["valid?"], true);
    assert_eq!(o.results["availability"]["ok-fraction"], 1.0);
    assert_eq!(int(&o.results, "/workload/duplicated-count"), 0);
    // Hundreds of ops per second, not a trickle.
    assert!(
        int(&o.results, "/stats/ok-count") > 1000,
        "{}",
        o.results["stats"]
    );
}

#[test]
fn broadcast_single_node_is_valid() {
    let r = run_test(
        "broadcast",
        &node_bin("broadcast"),
        &["--node-count", "1", "--time-limit", "3", "--rate", "10"],
        &[],
    );
    let o = r.expect_valid();
    assert_eq!(int(&o.results, "/workload/lost-count"), 0);
    assert!(int(&o.results, "/workload/stable-count") > 0);
}

#[test]
fn broadcast_five_nodes_is_valid_and_its_numbers_add_up() {
    let n = 5u64;
    let r = run_test(
        "broadcast",
        &node_bin("broadcast"),
        &["--node-count", "5", "--time-limit", "5", "--rate", "10"],
        &[],
    );
    let o = r.expect_valid();
    let res = &o.results;
    assert_result_keys(res);
    assert_eq!(int(res, "/workload/lost-count"), 0);
    assert_eq!(int(res, "/workload/never-read-count"), 0);
    let dir = o.dir.clone().unwrap();
    for i in 0..n {
        assert!(dir.join(format!("node-logs/n{i}.log")).is_file());
    }
    assert!(r.results.path().join("broadcast/latest").exists());

    // History: client invocations, one final read per worker (1n = 5).
    let history = jsonl(&dir.join("history.jsonl"));
    let invokes: Vec<&Value> = history
        .iter()
        .filter(|op| op["type"] == "invoke" && op["process"] != "nemesis")
        .collect();
    let ops = invokes.len() as u64;
    assert_eq!(
        invokes.iter().filter(|op| op["final?"] == true).count() as u64,
        n
    );
    // Every op completed ok, so each was one request and one reply.
    assert_eq!(int(res, "/stats/count"), ops);
    assert_eq!(int(res, "/stats/ok-count"), ops);

    // Client messages = 2 × client ops + N init pairs + N topology pairs.
    assert_eq!(
        int(res, "/net/clients/send-count"),
        2 * ops + 2 * n + 2 * n,
        "{}",
        res["net"]
    );
    assert_eq!(
        int(res, "/net/all/send-count"),
        int(res, "/net/clients/send-count") + int(res, "/net/servers/send-count")
    );
    // No partition: everything sent was received.
    assert_eq!(
        int(res, "/net/all/recv-count"),
        int(res, "/net/all/send-count")
    );
    let journal = jsonl(&dir.join("messages.jsonl"));
    let sends = journal.iter().filter(|e| e["kind"] == "send").count() as u64;
    assert_eq!(sends, int(res, "/net/all/send-count"));
    let msgs_per_op = res["net"]["all"]["msgs-per-op"].as_f64().unwrap();
    let expected = int(res, "/net/all/msg-count") as f64 / ops as f64;
    assert!(
        (msgs_per_op - expected).abs() < 1e-3,
        "{msgs_per_op} vs {expected}"
    );

    // The runner section: every delivery's lag was measured.
    let lag = &res["runner"]["delivery-lag-us"];
    assert_eq!(int(res, "/runner/delivery-lag-us/count"), sends);
    let (p50, p99, max) = (
        int(res, "/runner/delivery-lag-us/p50"),
        int(res, "/runner/delivery-lag-us/p99"),
        int(res, "/runner/delivery-lag-us/max"),
    );
    assert!(p50 <= p99 && p99 <= max, "{lag}");
    assert_eq!(int(res, "/runner/routed"), sends);
    assert!(res["runner"]["overloaded"].is_boolean());
    assert_eq!(res["runner"]["wedged-nodes"], serde_json::json!([]));
}

#[test]
fn broadcast_five_nodes_under_partitions_is_valid() {
    let r = run_test(
        "broadcast",
        &node_bin("broadcast"),
        &[
            "--node-count",
            "5",
            "--time-limit",
            "5",
            "--rate",
            "10",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "2",
        ],
        &[],
    );
    let o = r.expect_valid();
    assert_eq!(int(&o.results, "/workload/lost-count"), 0);
    // The partition bit: some server messages were dropped.
    assert!(
        int(&o.results, "/net/servers/recv-count") < int(&o.results, "/net/servers/send-count"),
        "{}",
        o.results["net"]
    );
}

#[test]
fn broadcast_25_nodes_with_latency_is_valid() {
    let r = run_test(
        "broadcast",
        &node_bin("broadcast"),
        &[
            "--node-count",
            "25",
            "--time-limit",
            "5",
            "--rate",
            "100",
            "--latency",
            "100",
        ],
        &[],
    );
    let o = r.expect_valid();
    assert_eq!(int(&o.results, "/workload/lost-count"), 0);
    assert_eq!(int(&o.results, "/workload/never-read-count"), 0);
    // 100 ms per hop: nothing can be stable everywhere faster than one hop.
    assert!(int(&o.results, "/workload/stable-latencies/1") >= 100);
}

// ---------------------------------------------------------------------------------------------
// The binary: Maelstrom's exit codes.

/// `maelstrom test --no-progress --results-dir <results> <args>` (the runner's flags first: `args`
/// may end with `-- <node args>`).
fn maelstrom_bin(args: &[&str], results: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_maelstrom"))
        .args(["test", "--no-progress", "--results-dir"])
        .arg(results)
        .args(args)
        .output()
        .expect("run the maelstrom binary")
}

#[test]
fn bad_arguments_exit_254_without_running_anything() {
    let results = tempfile::tempdir().unwrap();
    let echo = node_bin("echo");
    let echo = echo.to_str().unwrap();
    for args in [
        &["-w", "lin-kv", "--bin", echo, "--concurrency", "3"][..],
        &[
            "-w",
            "echo",
            "--bin",
            echo,
            "--latency-dist",
            "uniform",
            "--latency",
            "0",
        ],
        &["-w", "echo", "--bin", echo, "--nemesis", "clock"],
        &["-w", "echo", "--bin", "/definitely/not/a/node"],
        &["-w", "echo", "--bin", echo, "--frobnicate"],
        &["-w", "echo", "--bin", echo, "--time-limit", "soon"],
    ] {
        let out = maelstrom_bin(args, results.path());
        assert_eq!(
            out.status.code(),
            Some(254),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let left: Vec<_> = std::fs::read_dir(results.path()).unwrap().collect();
    assert!(left.is_empty(), "a rejected command wrote {left:?}");
}

#[test]
fn the_binary_exits_0_valid_1_invalid_255_aborted() {
    let results = tempfile::tempdir().unwrap();
    let echo = node_bin("echo");
    let broken = broken_node();
    let broken = broken.to_str().unwrap();
    let seed = SEED.to_string();
    let common = ["--node-count", "1", "--time-limit", "1", "--seed", &seed];

    let mut valid = vec!["-w", "echo", "--bin", echo.to_str().unwrap()];
    valid.extend_from_slice(&common);
    let out = maelstrom_bin(&valid, results.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Everything looks good!"), "{stdout}");

    let mut invalid = vec!["-w", "unique-ids", "--bin", broken, "--rate", "50"];
    invalid.extend_from_slice(&["--node-count", "2", "--time-limit", "1", "--seed", &seed]);
    invalid.extend_from_slice(&["--", "duplicate-ids"]);
    let out = maelstrom_bin(&invalid, results.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Analysis invalid!"), "{stdout}");

    let mut aborted = vec!["-w", "echo", "--bin", broken, "--rate", "20"];
    aborted.extend_from_slice(&common);
    aborted.extend_from_slice(&["--", "crash-after=3"]);
    let out = maelstrom_bin(&aborted, results.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(stderr.contains("Test aborted: Node n0 crashed"), "{stderr}");

    // All three runs went where they were told.
    for workload in ["echo", "unique-ids"] {
        assert!(results.path().join(workload).join("latest").exists());
    }
    let echo_runs = std::fs::read_dir(results.path().join("echo"))
        .unwrap()
        .count();
    assert_eq!(echo_runs, 3, "two echo runs and the `latest` link");
}

// ---------------------------------------------------------------------------------------------
// Services and the counter workloads

/// The g-counter fixture over a KV service (`src/bin/counter-node.rs`).
fn counter_node() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_counter-node"))
}

/// Gossip Glomers challenge 4's shape, shorter: 3 nodes, partitions (which never touch the
/// services), and some latency so that service requests from different nodes interleave.
const COUNTER_FLAGS: [&str; 12] = [
    "--node-count",
    "3",
    "--time-limit",
    "3",
    "--rate",
    "60",
    "--latency",
    "5",
    "--nemesis",
    "partition",
    "--nemesis-interval",
    "1",
];

/// The sum of the deltas of the `ok` adds in a run's history, and how many there were.
fn ok_adds(r: &Run) -> (i64, usize) {
    let history = jsonl(&r.run_dir().join("history.jsonl"));
    let adds: Vec<i64> = history
        .iter()
        .filter(|op| op["type"] == "ok" && op["f"] == "add")
        .map(|op| op["value"].as_i64().expect("integer delta"))
        .collect();
    (adds.iter().sum(), adds.len())
}

/// A g-counter built the intended way over `seq-kv` (read, then cas from what was read; a unique
/// write before each read so that it is not stale) is valid, with every node's final read equal
/// to the sum of the acknowledged adds. The service traffic crosses the network as server
/// traffic.
#[test]
fn a_g_counter_over_seq_kv_with_cas_is_valid() {
    let r = run_test("g-counter", &counter_node(), &COUNTER_FLAGS, &["cas"]);
    let o = r.expect_valid();
    let w = &o.results["workload"];
    let (sum, count) = ok_adds(&r);
    assert!(
        count >= 10 && sum > 0,
        "too few adds to mean anything: {count}"
    );
    let reads = w["final-reads"].as_array().expect("final-reads");
    assert_eq!(reads.len(), 3, "one final read per node: {w}");
    assert!(
        reads.iter().all(|v| v.as_i64() == Some(sum)),
        "{w} vs {sum}"
    );
    assert_eq!(w["errors"], Value::Null);
    // Every node talks only to the service, never to another node: all server traffic is service
    // traffic, and there is a lot of it (reads, cas, writes and their replies).
    assert!(int(&o.results, "/net/servers/send-count") >= 4 * count as u64);
    let journal = jsonl(&r.run_dir().join("messages.jsonl"));
    assert!(journal
        .iter()
        .any(|e| e["src"] == "seq-kv" && e["body_type"] == "cas_ok"));
    let history = jsonl(&r.run_dir().join("history.jsonl"));
    assert!(history
        .iter()
        .any(|op| op["process"] == "nemesis" && op["f"] == "start-partition"));
}

/// The same node with a plain read-then-write instead of a cas loses concurrent adds (the
/// sum of the acknowledged adds exceeds what the final reads see), and the checker says so.
#[test]
fn a_g_counter_that_writes_blindly_over_seq_kv_is_invalid() {
    let r = run_test("g-counter", &counter_node(), &COUNTER_FLAGS, &["blind"]);
    let o = r.expect_invalid();
    let w = &o.results["workload"];
    let (sum, count) = ok_adds(&r);
    assert!(count >= 10, "too few adds to mean anything: {count}");
    let reads = w["final-reads"].as_array().expect("final-reads");
    assert_eq!(reads.len(), 3, "the final reads succeeded: {w}");
    assert!(
        reads.iter().all(|v| v.as_i64().unwrap() < sum),
        "adds were lost: {w} vs {sum}"
    );
    assert_eq!(w["errors"].as_array().map(Vec::len), Some(3), "{w}");
}

/// Over `lin-kv` the correct node is valid too (and pn-counter's negative deltas change nothing).
#[test]
fn a_pn_counter_over_lin_kv_with_cas_is_valid() {
    let flags = ["--node-count", "2", "--time-limit", "2", "--rate", "40"];
    let r = run_test("pn-counter", &counter_node(), &flags, &["cas", "lin-kv"]);
    let o = r.expect_valid();
    let (sum, count) = ok_adds(&r);
    assert!(count > 5, "{count}");
    let reads = o.results["workload"]["final-reads"].as_array().unwrap();
    assert_eq!(reads.len(), 2);
    assert!(reads.iter().all(|v| v.as_i64() == Some(sum)));
}

// ---------------------------------------------------------------------------------------------
// lin-kv

/// The lin-kv fixture (`src/bin/kv-proxy.rs`): forwards every request to a KV service.
fn kv_proxy() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kv-proxy"))
}

/// Two nodes, one group of 2n = 4 workers (2 readers, 2 writing or cas-ing) on key 0, some
/// latency so that requests from the two nodes interleave at the service.
const LIN_KV_FLAGS: [&str; 10] = [
    "--node-count",
    "2",
    "--concurrency",
    "2n",
    "--time-limit",
    "3",
    "--rate",
    "100",
    "--latency",
    "2",
];

/// How many `ok` completions each of read, write and cas had in a run's history; a test that
/// judges a run must see all three, or its verdict would be vacuous.
fn ok_counts(r: &Run) -> [usize; 3] {
    let history = jsonl(&r.run_dir().join("history.jsonl"));
    ["read", "write", "cas"].map(|f| {
        history
            .iter()
            .filter(|op| op["type"] == "ok" && op["f"] == f)
            .count()
    })
}

/// Proxying to the linearizable `lin-kv` service is linearizable: the checker searched every
/// key and found an order for each, over a history with successful reads, writes and cas.
#[test]
fn a_lin_kv_proxy_over_the_lin_kv_service_is_valid() {
    let r = run_test("lin-kv", &kv_proxy(), &LIN_KV_FLAGS, &["lin-kv"]);
    let o = r.expect_valid();
    let [reads, writes, cas] = ok_counts(&r);
    assert!(
        reads >= 10 && writes >= 5 && cas >= 2,
        "too few ok ops to mean anything: {reads} reads, {writes} writes, {cas} cas"
    );
    let w = &o.results["workload"];
    assert_eq!(w["failures"], serde_json::json!([]), "{w}");
    assert_eq!(w["unknown"], serde_json::json!([]), "{w}");
    let keys = w["results"].as_object().expect("per-key results");
    assert!(!keys.is_empty(), "{w}");
    assert!(keys
        .values()
        .all(|k| k["valid?"] == true && k["op-count"].as_u64() > Some(0)));
    // Failed cas (error 22) and reads of a missing key (error 20) are definite failures.
    let history = jsonl(&r.run_dir().join("history.jsonl"));
    assert!(history.iter().all(|op| op["type"] != "info"), "no timeouts");
    assert!(history
        .iter()
        .any(|op| op["type"] == "fail" && op["f"] == "cas"));
}

/// The same proxy over `lww-kv` (two replicas that never converge, so reads often miss the
/// latest write) is caught, with a key and the ops around the failure.
#[test]
fn a_lin_kv_proxy_over_lww_kv_is_not_linearizable() {
    let r = run_test("lin-kv", &kv_proxy(), &LIN_KV_FLAGS, &["lww-kv"]);
    let o = r.expect_invalid();
    let [reads, writes, cas] = ok_counts(&r);
    assert!(
        reads >= 10 && writes >= 5 && cas >= 1,
        "too few ok ops to mean anything: {reads} reads, {writes} writes, {cas} cas"
    );
    let w = &o.results["workload"];
    assert_eq!(w["valid?"], false, "{w}");
    let key = w["failures"][0].as_str().expect("a failing key");
    let k = &w["results"][key];
    assert_eq!(k["valid?"], false);
    assert!(k["op"]["f"].is_string(), "{k}");
    assert!(!k["window"].as_array().unwrap().is_empty(), "{k}");
}

/// Maelstrom's default concurrency (1n) cannot fill lin-kv's groups of 2n workers: refused as a
/// bad argument before anything runs.
#[test]
fn lin_kv_with_too_little_concurrency_is_a_bad_argument() {
    let results = tempfile::tempdir().unwrap();
    let proxy = kv_proxy();
    let out = maelstrom_bin(
        &[
            "-w",
            "lin-kv",
            "--bin",
            proxy.to_str().unwrap(),
            "--node-count",
            "2",
        ],
        results.path(),
    );
    assert_eq!(out.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--concurrency 2n"));
}

// ---------------------------------------------------------------------------------------------
// murmur's g-counter, pn-counter and g-set nodes

/// Runs murmur's `workload` node with `flags` and node arguments, expects it valid, and checks
/// that every final read is the sum of the acknowledged adds (every run here ends with every
/// fault healed, so a complete node converges). Returns the run and its server msgs-per-op.
fn murmur_counter(workload: &str, flags: &[&str], node_args: &[&str]) -> (Run, f64) {
    let r = run_test(workload, &node_bin(workload), flags, node_args);
    let o = r.expect_valid();
    let w = &o.results["workload"];
    let (sum, count) = ok_adds(&r);
    assert!(count >= 10, "too few adds to mean anything: {count}");
    let reads = w["final-reads"].as_array().expect("final-reads");
    assert!(!reads.is_empty(), "{w}");
    assert!(
        reads.iter().all(|v| v.as_i64() == Some(sum)),
        "{w} vs {sum}"
    );
    let per_op = o.results["net"]["servers"]["msgs-per-op"]
        .as_f64()
        .expect("msgs-per-op");
    (r, per_op)
}

/// Challenge 4's shape (shorter): both designs of the g-counter are valid under partitions, and
/// the CRDT, whose nodes talk only to each other, sends fewer messages per op than the seq-kv
/// design, whose every op is two round trips to the service.
#[test]
fn murmur_g_counter_is_valid_in_both_designs_and_the_crdt_sends_fewer_messages() {
    let (crdt, crdt_per_op) = murmur_counter("g-counter", &COUNTER_FLAGS, &[]);
    let (kv, kv_per_op) = murmur_counter("g-counter", &COUNTER_FLAGS, &["--design", "seq-kv"]);
    assert!(
        crdt_per_op < kv_per_op,
        "crdt {crdt_per_op} vs seq-kv {kv_per_op} msgs-per-op"
    );
    let journal = |r: &Run| jsonl(&r.run_dir().join("messages.jsonl"));
    assert!(
        journal(&crdt).iter().all(|e| e["src"] != "seq-kv"),
        "the crdt uses no service"
    );
    assert!(journal(&kv)
        .iter()
        .any(|e| e["src"] == "seq-kv" && e["body_type"] == "cas_ok"));
}

/// The CRDT promises durability: valid with kills and pauses as well as partitions.
#[test]
fn murmur_pn_counter_is_valid_under_kills_pauses_and_partitions() {
    let mut flags = COUNTER_FLAGS.to_vec();
    let n = flags.iter().position(|f| *f == "partition").unwrap();
    flags[n] = "kill,pause,partition";
    let (r, _) = murmur_counter("pn-counter", &flags, &[]);
    let history = jsonl(&r.run_dir().join("history.jsonl"));
    assert!(history
        .iter()
        .any(|op| op["process"] == "nemesis" && op["f"] == "kill"));
}

/// g-set's challenge configuration (shorter): valid under partitions, nothing lost.
#[test]
fn murmur_g_set_is_valid_under_partitions() {
    let flags = [
        "--node-count",
        "3",
        "--time-limit",
        "3",
        "--rate",
        "20",
        "--nemesis",
        "partition",
        "--nemesis-interval",
        "1",
    ];
    let r = run_test("g-set", &node_bin("g-set"), &flags, &[]);
    let o = r.expect_valid();
    let w = &o.results["workload"];
    assert_eq!(w["lost-count"], 0, "{w}");
    assert!(
        int(&o.results, "/stats/ok-count") >= 10,
        "{}",
        o.results["stats"]
    );
}

//! The txn workloads end to end, on real processes: murmur's `txn-rw-register` node
//! (`murmur::workload::txn`) on challenge 6a's and 6c's configurations (shorter time limits) must
//! be valid and totally available; and the `maelstrom` binary refuses the txn flags' zero values
//! with exit 254, as Maelstrom does.
//!
//! The node binary is found (and built when stale) as `runner_e2e` finds its nodes.

use std::path::Path;

use clap::Parser;
use maelstrom::cli::{Cli, Command};
use maelstrom::run::run;
use serde_json::Value;

mod common;
use common::node_bin;

/// `maelstrom test -w txn-rw-register --bin <node> <flags>` with a fixed seed; the results.
fn run_txn(flags: &[&str], results: &Path) -> (i32, Value) {
    let bin = node_bin("txn-rw-register");
    let mut argv = vec![
        "maelstrom",
        "test",
        "-w",
        "txn-rw-register",
        "--bin",
        bin.to_str().expect("UTF-8 path"),
        "--results-dir",
        results.to_str().expect("UTF-8 path"),
        "--no-progress",
        "--seed",
        "7",
    ];
    argv.extend_from_slice(flags);
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let Command::Test(args) = cli.command else {
        panic!("not a test command");
    };
    let opts = args.resolve().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let o = run(&opts).unwrap_or_else(|e| panic!("{argv:?}: the run aborted: {e:#}"));
    (o.exit_code, o.results)
}

#[test]
fn challenge_6a_single_node_read_uncommitted_is_valid() {
    let results = tempfile::tempdir().unwrap();
    let (code, r) = run_txn(
        &[
            "--node-count",
            "1",
            "--time-limit",
            "3",
            "--rate",
            "300",
            "--concurrency",
            "2n",
            "--consistency-models",
            "read-uncommitted",
            "--availability",
            "total",
        ],
        results.path(),
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["workload"], serde_json::json!({"valid?": true}));
    assert_eq!(
        r["availability"]["ok-fraction"], 1.0,
        "{}",
        r["availability"]
    );
}

#[test]
fn challenge_6c_read_committed_under_partitions_is_valid_and_totally_available() {
    let results = tempfile::tempdir().unwrap();
    let (code, r) = run_txn(
        &[
            "--node-count",
            "2",
            "--concurrency",
            "2n",
            "--time-limit",
            "5",
            "--rate",
            "300",
            "--consistency-models",
            "read-committed",
            "--availability",
            "total",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "1",
        ],
        results.path(),
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["workload"]["valid?"], true, "{}", r["workload"]);
    assert_eq!(
        r["availability"]["ok-fraction"], 1.0,
        "{}",
        r["availability"]
    );
    assert!(
        r["stats"]["ok-count"].as_u64().unwrap_or(0) > 500,
        "{}",
        r["stats"]
    );
    // The peers did replicate to each other.
    assert!(
        r["net"]["servers"]["msg-count"].as_u64().unwrap_or(0) > 0,
        "{}",
        r["net"]
    );
}

#[test]
fn zero_txn_flags_exit_254() {
    let results = tempfile::tempdir().unwrap();
    let bin = node_bin("txn-rw-register");
    for flag in [
        "--key-count",
        "--max-txn-length",
        "--max-writes-per-key",
        "--test-count",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_maelstrom"))
            .args(["test", "--no-progress", "--results-dir"])
            .arg(results.path())
            .args(["-w", "txn-rw-register", "--bin"])
            .arg(&bin)
            .args(["--time-limit", "1", flag, "0"])
            .output()
            .expect("run the maelstrom binary");
        assert_eq!(out.status.code(), Some(254), "{flag}: {out:?}");
    }
}

//! murmur's kafka node on the real runner (`maelstrom::run::run`, real processes, real time):
//! challenge 5a's configuration (one node) and 5b's (two nodes) with shorter time limits and
//! rates, in both designs, with partitions; the results carry the kafka checker's keys. The
//! simulator sweeps the same node over many seeds (`sim_kafka.rs`); here the point is the real
//! driver: processes, pipes, the store on disk, the `lin-kv` service, the final catch-up polls.
//!
//! Each run takes its time limit plus Maelstrom's fixed 10 s recovery wait and the final polls.

use clap::Parser;
use maelstrom::cli::{Cli, Command};
use maelstrom::run::{run, RunOutcome};

mod common;
use common::node_bin;

/// `maelstrom test -w kafka --bin kafka <flags> -- <node_args>` with a fixed seed, in a fresh
/// results folder; the outcome must be valid (exit 0), else the panic shows the summary.
fn valid_run(flags: &[&str], node_args: &[&str]) -> RunOutcome {
    let results = tempfile::tempdir().expect("tempdir");
    let bin = node_bin("kafka");
    let mut argv: Vec<&str> = vec![
        "maelstrom",
        "test",
        "-w",
        "kafka",
        "--bin",
        bin.to_str().expect("UTF-8 path"),
        "--results-dir",
        results.path().to_str().expect("UTF-8 path"),
        "--no-progress",
        "--seed",
        "11",
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
    let opts = args.resolve().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    match run(&opts) {
        Ok(o) if o.exit_code == 0 => o,
        Ok(o) => panic!(
            "{argv:?}: exit code {}:\n{}",
            o.exit_code,
            maelstrom::results::summary(
                &o.results,
                &maelstrom::results::SummaryInfo {
                    seed: None,
                    run_dir: o.dir.as_deref()
                }
            )
        ),
        Err(e) => panic!("{argv:?}: the run aborted: {e:#}"),
    }
}

/// How many ops with this `f` completed as `kind` (`ok`, `info`, `fail`): the stats checker's
/// counts.
fn count(o: &RunOutcome, f: &str, kind: &str) -> u64 {
    o.results["stats"]["by-f"][f][format!("{kind}-count")]
        .as_u64()
        .unwrap_or(0)
}

fn assert_kafka_results(o: &RunOutcome) {
    let w = &o.results["workload"];
    assert_eq!(w["valid?"], true, "{w}");
    for key in ["error-types", "bad-error-types", "worst-realtime-lag"] {
        assert!(w.get(key).is_some(), "workload result has no {key}: {w}");
    }
    let (sends, polls) = (count(o, "send", "ok"), count(o, "poll", "ok"));
    assert!(
        sends > 50 && polls > 50,
        "{sends} sends and {polls} polls acknowledged"
    );
}

const FIVE_A: [&str; 8] = [
    "--node-count",
    "1",
    "--concurrency",
    "2n",
    "--time-limit",
    "5",
    "--rate",
    "100",
];

#[test]
fn challenge_5a_single_node_is_valid() {
    let o = valid_run(&FIVE_A, &[]);
    assert_kafka_results(&o);
    assert!(
        count(&o, "crash", "info") > 0,
        "client crashes are generated"
    );
}

#[test]
fn challenge_5b_two_nodes_under_partitions_are_valid_in_both_designs() {
    let mut flags = FIVE_A.to_vec();
    flags[1] = "2";
    flags.extend(["--nemesis", "partition", "--nemesis-interval", "1"]);
    for design in ["local", "lin-kv"] {
        let o = valid_run(&flags, &["--design", design]);
        assert_kafka_results(&o);
    }
}

//! Tests of flag parsing, resolution and validation.

use super::*;

/// An executable file to pass as `--bin` (resolve() checks it exists and is executable).
fn exe() -> tempfile::TempPath {
    use std::os::unix::fs::PermissionsExt;
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    f.into_temp_path()
}

fn parse(args: &[&str]) -> Result<TestArgs, clap::Error> {
    let mut argv = vec!["maelstrom", "test"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).map(|cli| match cli.command {
        Command::Test(t) => t,
        Command::Analyze(a) => panic!("parsed `test` as {a:?}"),
        Command::Serve(a) => panic!("parsed `test` as {a:?}"),
    })
}

fn resolve(args: &[&str]) -> Result<TestOpts, CliError> {
    let bin = exe();
    let mut argv = vec!["--bin", bin.to_str().unwrap()];
    argv.extend_from_slice(args);
    parse(&argv).unwrap().resolve()
}

#[test]
fn clap_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn defaults_match_maelstrom() {
    let o = resolve(&[]).unwrap();
    assert_eq!(o.workload, WorkloadName::LinKv);
    assert_eq!(o.nodes, ["n1", "n2", "n3", "n4", "n5"]);
    assert_eq!(o.time_limit_secs, 60);
    assert_eq!(o.rate, 5.0);
    assert_eq!(o.concurrency, 5, "1n with five nodes");
    assert_eq!(o.latency_ms, 0);
    assert_eq!(o.latency_dist, LatencyDist::Constant);
    assert_eq!(o.topology, Topology::Grid);
    assert_eq!(o.availability, None);
    assert!(o.nemesis.is_empty());
    assert_eq!(o.nemesis_interval(), Duration::from_secs(10));
    assert!(!o.log_stderr && !o.keep_data && !o.no_progress && !o.seed_given);
    assert!(o.seed < 1 << 53);
    assert_eq!(o.results_dir, PathBuf::from("results"));
    assert!(o.args.is_empty() && o.warnings.is_empty());
    assert!(o.bin.is_absolute());
}

#[test]
fn gossip_glomers_3d_command_line() {
    let o = resolve(&[
        "-w",
        "broadcast",
        "--node-count",
        "25",
        "--time-limit",
        "20",
        "--rate",
        "100",
        "--latency",
        "100",
        "--seed",
        "42",
    ])
    .unwrap();
    assert_eq!(o.workload, WorkloadName::Broadcast);
    assert_eq!(o.nodes.len(), 25);
    assert_eq!(o.nodes[0], "n0");
    assert_eq!(o.nodes[24], "n24");
    assert_eq!(o.concurrency, 25);
    assert_eq!(o.rate, 100.0);
    assert_eq!(o.latency_ms, 100);
    assert_eq!((o.seed, o.seed_given), (42, true));
    assert_eq!(o.time_limit(), Duration::from_secs(20));
}

#[test]
fn concurrency_with_n_multiplies_by_node_count() {
    assert_eq!(
        resolve(&["--node-count", "3", "--concurrency", "4n"])
            .unwrap()
            .concurrency,
        12
    );
    assert_eq!(
        resolve(&["--node-count", "3", "--concurrency", "4"])
            .unwrap()
            .concurrency,
        4
    );
    assert_eq!(resolve(&["--concurrency", "2n"]).unwrap().concurrency, 10);
    assert_eq!(
        parse_concurrency("12n"),
        Ok(ConcurrencySpec {
            count: 12,
            per_node: true
        })
    );
    for bad in ["", "n", "x", "2x", "-1", "2nn", "1.5n", " 2"] {
        assert!(parse_concurrency(bad).is_err(), "{bad:?}");
    }
    assert!(matches!(
        resolve(&["--concurrency", "0n"]),
        Err(CliError::ZeroConcurrency { .. })
    ));
    assert!(parse(&["--bin", "x", "--concurrency", "abc"]).is_err());
}

#[test]
fn nemesis_is_a_comma_list_of_known_faults() {
    let o = resolve(&["--nemesis", "pause, partition,kill,partition"]).unwrap();
    assert_eq!(o.nemesis, [Fault::Partition, Fault::Kill, Fault::Pause]);
    assert!(o.has_fault(Fault::Kill));
    assert_eq!(
        resolve(&["--nemesis", "partition"]).unwrap().nemesis,
        [Fault::Partition]
    );
    let err = resolve(&["--nemesis", "partition,clock"]).unwrap_err();
    assert!(matches!(&err, CliError::UnknownFault(f) if f == "clock"));
    assert_eq!(err.exit_code(), EXIT_BAD_ARGS);
    assert!(err.to_string().contains("partition, kill, pause"));
}

#[test]
fn trailing_args_go_to_the_node() {
    let t = parse(&[
        "--bin",
        "x",
        "a",
        "--time-limit",
        "5",
        "b",
        "--",
        "--verbose",
        "-q",
    ])
    .unwrap();
    assert_eq!(t.args, ["a", "b", "--verbose", "-q"]);
    assert_eq!(t.time_limit, 5);
    let t = parse(&["--bin", "x", "--", "-w", "echo"]).unwrap();
    assert_eq!(t.args, ["-w", "echo"]);
    assert_eq!(t.workload, WorkloadName::LinKv);
}

#[test]
fn node_lists() {
    let o = resolve(&["--nodes", "a1, b2,d3"]).unwrap();
    assert_eq!(o.nodes, ["a1", "b2", "d3"]);
    let o = resolve(&["-n", "x1", "--node", "x2", "--nodes", "x0"]).unwrap();
    assert_eq!(o.nodes, ["x0", "x1", "x2"]);
    // --node-count wins over any list.
    let o = resolve(&["--nodes", "a,b", "--node-count", "2"]).unwrap();
    assert_eq!(o.nodes, ["n0", "n1"]);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, b"m1\n  m2 \n\n").unwrap();
    let o = resolve(&["--nodes-file", f.path().to_str().unwrap()]).unwrap();
    assert_eq!(o.nodes, ["m1", "m2"]);

    assert!(matches!(
        resolve(&["--nodes", ""]),
        Err(CliError::EmptyNodeList)
    ));
    assert!(matches!(
        resolve(&["--nodes", " , "]),
        Err(CliError::EmptyNodeList)
    ));
    assert!(matches!(
        resolve(&["--node-count", "0"]),
        Err(CliError::ZeroNodeCount)
    ));
    assert!(matches!(
        resolve(&["--nodes", "n1,n1"]),
        Err(CliError::DuplicateNode(_))
    ));
    assert!(matches!(
        resolve(&["--nodes", "n1,c2"]),
        Err(CliError::BadNodeId { .. })
    ));
    assert!(matches!(
        resolve(&["--nodes", "lin-kv"]),
        Err(CliError::BadNodeId { .. })
    ));
    assert!(matches!(
        resolve(&["--nodes", "a/b"]),
        Err(CliError::BadNodeId { .. })
    ));
}

#[test]
fn bad_combinations_are_rejected() {
    assert!(matches!(
        resolve(&["--rate", "-1"]),
        Err(CliError::BadRate(_))
    ));
    assert!(matches!(
        resolve(&["--rate", "NaN"]),
        Err(CliError::BadRate(_))
    ));
    assert_eq!(resolve(&["--rate", "0"]).unwrap().rate, 0.0);
    assert!(matches!(
        resolve(&["--latency-dist", "uniform"]),
        Err(CliError::LatencyDistNeedsMean(LatencyDist::Uniform))
    ));
    assert!(matches!(
        resolve(&["--latency-dist", "exponential", "--latency", "0"]),
        Err(CliError::LatencyDistNeedsMean(LatencyDist::Exponential))
    ));
    let o = resolve(&["--latency-dist", "exponential", "--latency", "5"]).unwrap();
    assert_eq!(o.latency_dist, LatencyDist::Exponential);
    assert!(matches!(
        resolve(&["--time-limit", "0"]),
        Err(CliError::ZeroTimeLimit)
    ));
    assert!(matches!(
        resolve(&["--nemesis-interval", "0"]),
        Err(CliError::BadNemesisInterval(_))
    ));
    assert_eq!(
        resolve(&["--nemesis-interval", "2.5"])
            .unwrap()
            .nemesis_interval(),
        Duration::from_millis(2500)
    );
}

#[test]
fn bin_must_exist_and_be_executable() {
    let t = parse(&["--bin", "/definitely/not/here"]).unwrap();
    assert!(matches!(t.resolve(), Err(CliError::BinNotFound { .. })));
    let dir = tempfile::tempdir().unwrap();
    let t = parse(&["--bin", dir.path().to_str().unwrap()]).unwrap();
    assert!(matches!(t.resolve(), Err(CliError::BinNotAFile(_))));
    let f = tempfile::NamedTempFile::new().unwrap();
    let t = parse(&["--bin", f.path().to_str().unwrap()]).unwrap();
    assert!(matches!(t.resolve(), Err(CliError::BinNotExecutable(_))));
}

#[test]
fn every_maelstrom_workload_parses() {
    for name in [
        "broadcast",
        "echo",
        "g-counter",
        "g-set",
        "kafka",
        "lin-kv",
        "pn-counter",
        "txn-list-append",
        "txn-rw-register",
        "unique-ids",
    ] {
        let t = parse(&["-w", name, "--bin", "x"]).unwrap();
        assert_eq!(t.workload.as_str(), name);
        assert_eq!(
            name.parse::<crate::workload::ClientWorkload>()
                .map(|w| w.name()),
            Ok(name)
        );
    }
    assert!(parse(&["-w", "nope", "--bin", "x"]).is_err());
}

#[test]
fn topology_availability_and_flags() {
    for name in ["line", "grid", "tree", "tree2", "tree3", "tree4", "total"] {
        let t = parse(&["--bin", "x", "--topology", name]).unwrap();
        assert_eq!(t.topology, name.parse().unwrap());
    }
    let t = parse(&[
        "--bin",
        "x",
        "--availability",
        "total",
        "--log-stderr",
        "--keep-data",
    ])
    .unwrap();
    assert_eq!(t.availability, Some(Availability::Total));
    assert!(t.log_stderr && t.keep_data);
    let t = parse(&["--bin", "x", "--availability", "0.99"]).unwrap();
    assert_eq!(t.availability, Some(Availability::Fraction(0.99)));
    assert!(parse(&["--bin", "x", "--availability", "1.5"]).is_err());
    assert!(parse(&["--bin", "x", "--availability", "most"]).is_err());
    assert!(parse(&["--bin", "x", "--latency-dist", "normal"]).is_err());
    assert!(parse(&["--bin", "x", "--topology", "ring"]).is_err());
}

#[test]
fn repeated_options_override_like_tools_cli() {
    let t = parse(&["--bin", "x", "--rate", "1", "--rate", "2"]).unwrap();
    assert_eq!(t.rate, 2.0);
}

#[test]
fn maelstrom_compat_flags_are_accepted() {
    let o = resolve(&[
        "--username",
        "admin",
        "--password",
        "pw",
        "--ssh-private-key",
        "/k",
        "--strict-host-key-checking",
        "--no-ssh",
        "--log-net-send",
        "--log-net-recv",
        "--test-count",
        "3",
        "--leave-db-running",
        "--logging-json",
        "--consistency-models",
        "read-committed",
        "--key-count",
        "3",
        "--max-txn-length",
        "4",
        "--max-writes-per-key",
        "16",
    ])
    .unwrap();
    assert!(o.warnings.iter().any(|w| w.contains("--test-count 3")));
    // The txn flags are honoured now, not ignored.
    assert!(!o
        .warnings
        .iter()
        .any(|w| w.contains("--consistency-models")));
    assert_eq!(o.txn.key_count, 3);
    assert_eq!(o.txn.consistency_models.to_string(), "read-committed");
}

#[test]
fn txn_flags_are_checked_like_maelstrom() {
    let o = resolve(&["-w", "txn-rw-register"]).unwrap();
    assert_eq!(o.txn, crate::workload::TxnOpts::default());
    assert_eq!(o.txn.consistency_models.to_string(), "strict-serializable");
    let o = resolve(&["--consistency-models", "read-uncommitted, serializable"]).unwrap();
    assert_eq!(
        o.txn.consistency_models.to_string(),
        "read-uncommitted,serializable"
    );
    for flags in [
        ["--key-count", "0"],
        ["--max-txn-length", "0"],
        ["--max-writes-per-key", "0"],
        ["--test-count", "0"],
        ["--consistency-models", "snapshot-isolation"],
        ["--key-count", "1000000000000"],
        ["--max-txn-length", "18446744073709551615"],
    ] {
        let err = resolve(&flags).unwrap_err();
        assert_eq!(err.exit_code(), EXIT_BAD_ARGS, "{flags:?}");
    }
}

#[test]
fn bad_arguments_exit_254_and_help_exits_0() {
    let err = parse(&["--bin", "x", "--time-limit", "soon"]).unwrap_err();
    assert_eq!(clap_exit_code(&err), EXIT_BAD_ARGS);
    let err = parse(&["--time-limit", "5"]).unwrap_err();
    assert_eq!(clap_exit_code(&err), EXIT_BAD_ARGS, "--bin is required");
    let err = parse(&["--bin", "x", "--frobnicate"]).unwrap_err();
    assert_eq!(clap_exit_code(&err), EXIT_BAD_ARGS);
    let err = parse(&["--help"]).unwrap_err();
    assert_eq!(clap_exit_code(&err), EXIT_VALID);
}

#[test]
fn opts_serialise_for_the_run_folder() {
    let o = resolve(&["-w", "echo", "--nemesis", "kill", "--availability", "0.5"]).unwrap();
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(v["workload"], "echo");
    assert_eq!(v["nemesis"], serde_json::json!(["kill"]));
    assert_eq!(v["availability"], 0.5);
    assert!(o.seed_line().contains(&o.seed.to_string()));
}

#[test]
fn lin_kv_needs_concurrency_in_multiples_of_2n() {
    // Maelstrom's defaults (lin-kv, 1n) are refused up front, as a bad argument.
    let o = resolve(&[]).unwrap();
    let err = o.check_workload().unwrap_err();
    assert!(matches!(
        err,
        CliError::LinKvConcurrency {
            concurrency: 5,
            groups: 10
        }
    ));
    assert!(err.to_string().contains("--concurrency 2n"));
    assert_eq!(err.exit_code(), EXIT_BAD_ARGS);
    for ok in ["2n", "4n", "6"] {
        let o = resolve(&["--node-count", "3", "--concurrency", ok]).unwrap();
        assert!(o.check_workload().is_ok(), "{ok}");
    }
    let o = resolve(&["--node-count", "3", "--concurrency", "3n"]).unwrap();
    assert!(o.check_workload().is_err());
    // Other workloads take any concurrency.
    let o = resolve(&["-w", "echo"]).unwrap();
    assert!(o.check_workload().is_ok());
}

#[test]
fn analyze_takes_a_run_folder() {
    let cli = Cli::try_parse_from(["maelstrom", "analyze", "results/echo/x"]).unwrap();
    assert!(
        matches!(cli.command, Command::Analyze(a) if a.run_folder == std::path::Path::new("results/echo/x"))
    );
    let cli = Cli::try_parse_from(["maelstrom", "analyze"]).unwrap();
    assert!(
        matches!(cli.command, Command::Analyze(a) if a.run_folder == std::path::Path::new("results/latest"))
    );
}

#[test]
fn journal_bodies_by_default() {
    assert!(resolve(&[]).unwrap().journal_bodies);
    assert!(!resolve(&["--no-journal-bodies"]).unwrap().journal_bodies);
}

#[test]
fn shell_line_quotes_what_a_shell_would_split() {
    use crate::cli::shell_line;
    assert_eq!(
        shell_line(["maelstrom", "test", "--bin", "a b", "--", "it's", ""]),
        r"maelstrom test --bin 'a b' -- 'it'\''s' ''"
    );
}

#[test]
fn web_binds_loopback_unless_told_otherwise() {
    let web = |args: &[&str]| resolve(args).map(|o| o.web);
    assert_eq!(web(&[]).unwrap(), None);
    assert_eq!(
        web(&["--web"]).unwrap(),
        Some("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(
        web(&["--web", "9000"]).unwrap(),
        Some("127.0.0.1:9000".parse().unwrap())
    );
    assert_eq!(
        web(&["--web", "[::1]:0"]).unwrap(),
        Some("[::1]:0".parse().unwrap())
    );
    assert!(matches!(
        web(&["--web", "0.0.0.0:8080"]),
        Err(CliError::WebNotLoopback {
            flag: "--web-public",
            ..
        })
    ));
    assert!(web(&["--web", "0.0.0.0:8080", "--web-public"]).is_ok());
    assert!(parse(&["--web", "localhost"]).is_err());
    // `--time-limit 0` means "until Stop", which only the live page can press.
    assert!(matches!(
        resolve(&["--time-limit", "0"]),
        Err(CliError::ZeroTimeLimit)
    ));
    assert_eq!(
        resolve(&["--time-limit", "0", "--web"])
            .unwrap()
            .time_limit_secs,
        0
    );

    let serve = |argv: &[&str]| {
        let mut all = vec!["maelstrom", "serve"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Serve(a) => a,
            other => panic!("parsed `serve` as {other:?}"),
        }
    };
    let a = serve(&[]);
    assert_eq!(a.addr().unwrap(), "127.0.0.1:8080".parse().unwrap());
    assert_eq!(a.results_dir, PathBuf::from("results"));
    let a = serve(&["--port", "9001", "elsewhere"]);
    assert_eq!(a.addr().unwrap(), "127.0.0.1:9001".parse().unwrap());
    assert_eq!(a.results_dir, PathBuf::from("elsewhere"));
    assert!(serve(&["--bind", "0.0.0.0"]).addr().is_err());
    assert!(serve(&["--bind", "0.0.0.0", "--public"]).addr().is_ok());
}

//! The command line: Maelstrom's `test` flags (its `core.clj`) parsed with clap, then resolved
//! into a validated [`TestOpts`].
//!
//! Two steps, so that each has one job:
//! 1. [`Cli`] is the clap derive. It accepts every flag real Maelstrom accepts, with the same
//!    spellings and defaults, so a Gossip Glomers command line works unchanged. Flags that only
//!    matter to SSH are accepted and ignored.
//! 2. [`TestArgs::resolve`] turns the raw flags into [`TestOpts`]: the node list is built
//!    (`--node-count` gives `n0..n(N-1)`, the default is Jepsen's `n1..n5`), `--concurrency 2n`
//!    is multiplied out, `--bin` is canonicalised, the seed is drawn, and the combinations that
//!    real Maelstrom would hang or crash on (uniform latency with mean 0, ...) are rejected with
//!    a clear message.
//!
//! Every argument error maps to exit code [`EXIT_BAD_ARGS`] (254), as in Jepsen's `cli/run!`;
//! clap's own errors too (clap would use 2, which Jepsen reserves for "unknown" results), see
//! [`Cli::parse_or_exit`] and [`clap_exit_code`].

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::checker::elle::Models;
use crate::workload::TxnOpts;

/// Exit code: the analysis found the test valid.
pub const EXIT_VALID: i32 = 0;
/// Exit code: the analysis found the test invalid.
pub const EXIT_INVALID: i32 = 1;
/// Exit code: the analysis could not decide (`valid?` is `unknown`: a checker failed).
pub const EXIT_UNKNOWN: i32 = 2;
/// Exit code: bad command-line arguments (Jepsen's `cli/run!`).
pub const EXIT_BAD_ARGS: i32 = 254;
/// Exit code: the test aborted (crash, init failure, internal error): no analysis.
pub const EXIT_ABORTED: i32 = 255;

/// Jepsen's default node list, used when neither `--node-count` nor a node list is given
/// (jepsen: cli.clj `default-nodes`). Note it starts at `n1`, unlike `--node-count`.
pub const DEFAULT_NODES: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];

/// Maelstrom's built-in service ids; a server node may not take one of these names.
pub const SERVICE_IDS: [&str; 4] = ["lin-kv", "seq-kv", "lww-kv", "lin-tso"];

/// `maelstrom <command>`.
#[derive(Debug, Parser)]
#[command(
    name = "maelstrom",
    version,
    about = "A Maelstrom-compatible test runner: same flags, same semantics, same numbers, no JVM",
    long_about = None,
    after_help = "Exit codes: 0 valid, 1 invalid, 2 unknown, 254 bad arguments, 255 aborted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands: `test`, `analyze` and `serve` (Maelstrom also has `demo`).
// Parsed once per process: the size of the `test` variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a test against a node binary.
    // tools.cli lets a repeated option override the earlier one; clap rejects it unless told.
    #[command(args_override_self = true)]
    Test(TestArgs),
    /// Write a finished run's report.html again, from its run folder.
    Analyze(AnalyzeArgs),
    /// Serve the results folder on a local web page: the runs, their reports, two side by side.
    Serve(ServeArgs),
}

/// `maelstrom serve [--port 8080] [RESULTS_DIR]`, as Maelstrom's `serve`: a web server over the
/// results folder (see [`crate::web::serve`]). It binds to loopback unless told otherwise.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The results folder (`--results-dir` of the runs).
    #[arg(value_name = "RESULTS_DIR", default_value = "results")]
    pub results_dir: PathBuf,
    /// The port to listen on (0: any free port; the address is printed).
    #[arg(short, long, default_value_t = 8080)]
    pub port: u16,
    /// The address to listen on. Anything but loopback needs `--public`.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub bind: std::net::IpAddr,
    /// Allow a non-loopback `--bind`: anyone who can reach it can read every run.
    #[arg(long)]
    pub public: bool,
}

impl ServeArgs {
    /// The address to listen on, refused when it is not loopback and `--public` was not given.
    pub fn addr(&self) -> Result<std::net::SocketAddr, CliError> {
        let addr = std::net::SocketAddr::new(self.bind, self.port);
        check_loopback(addr, self.public, "--public")?;
        Ok(addr)
    }
}

/// The default address of `--web` (and the port of `maelstrom serve`).
pub const DEFAULT_WEB_ADDR: &str = "127.0.0.1:8080";

/// A web server on a non-loopback address is readable (and, for `--web`, controllable) by
/// anyone who can reach it: it needs the explicit `flag`.
fn check_loopback(
    addr: std::net::SocketAddr,
    allowed: bool,
    flag: &'static str,
) -> Result<(), CliError> {
    if addr.ip().is_loopback() || allowed {
        Ok(())
    } else {
        Err(CliError::WebNotLoopback { addr, flag })
    }
}

/// Parses `--web`'s address: `HOST:PORT`, or a bare `PORT` on 127.0.0.1.
pub fn parse_web_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?}: expected PORT or IP:PORT (e.g. 127.0.0.1:8080)"))
}

/// `maelstrom analyze [RUN_FOLDER]`. Unlike Maelstrom's `analyze`, which re-runs the checkers on
/// the latest stored test, this re-creates `report.html` from the folder's `results.json`,
/// `history.jsonl` and `messages.jsonl` (e.g. after upgrading the runner, or for a run whose page
/// was deleted); the checkers' results are the stored ones.
#[derive(Debug, Clone, Args)]
pub struct AnalyzeArgs {
    /// The run folder (`results/<workload>/<timestamp>`, or a `latest` link).
    #[arg(value_name = "RUN_FOLDER", default_value = "results/latest")]
    pub run_folder: PathBuf,
}

/// A command line as one string a POSIX shell would split back into the same arguments: each
/// argument that holds anything but letters, digits and `-_./=:,+@%` goes in single quotes.
pub fn shell_line<I: IntoIterator<Item = S>, S: AsRef<str>>(args: I) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    args.into_iter()
        .map(|a| {
            let a = a.as_ref();
            if !a.is_empty() && a.chars().all(plain) {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Cli {
    /// Parses `std::env::args`, printing help/version (exit 0) or the error (exit
    /// [`EXIT_BAD_ARGS`]) and exiting the process when parsing does not succeed.
    pub fn parse_or_exit() -> Cli {
        match Cli::try_parse() {
            Ok(cli) => cli,
            Err(err) => {
                let code = clap_exit_code(&err);
                // If even printing fails there is nothing better to do than exit with the code.
                let _ = err.print();
                std::process::exit(code)
            }
        }
    }
}

/// The exit code for a clap error: 0 for `--help`/`--version` (which clap reports as errors),
/// [`EXIT_BAD_ARGS`] for everything else (clap itself would use 2).
pub fn clap_exit_code(err: &clap::Error) -> i32 {
    if err.use_stderr() {
        EXIT_BAD_ARGS
    } else {
        EXIT_VALID
    }
}

/// The raw flags of `maelstrom test`, as typed. Flags and defaults are Maelstrom's,
/// except those under the "Runner (murmur)" help heading, which are ours. Call
/// [`TestArgs::resolve`] to get validated [`TestOpts`].
#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// What workload to run. All of Maelstrom's names are accepted; this runner implements
    /// all but kafka.
    #[arg(
        short = 'w',
        long,
        value_enum,
        default_value = "lin-kv",
        value_name = "NAME"
    )]
    pub workload: WorkloadName,

    /// Path to the binary which runs a node (resolved against the current directory).
    #[arg(long, value_name = "FILE")]
    pub bin: PathBuf,

    /// Arguments passed to the node binary (use `--` before any that start with `-`).
    #[arg(value_name = "NODE_ARGS")]
    pub args: Vec<String>,

    /// Excluding setup, the final phase and teardown, how long the test runs, in seconds.
    /// 0 (only with `--web`): until Stop is pressed on the live page.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub time_limit: u64,

    /// Approximate number of client requests per second, over all clients; 0 = no client ops.
    #[arg(
        long,
        default_value_t = 5.0,
        value_name = "RATE",
        allow_negative_numbers = true
    )]
    pub rate: f64,

    /// How many client workers: an integer, optionally followed by `n` to multiply by the
    /// number of nodes (e.g. `2n`).
    #[arg(long, default_value = "1n", value_parser = parse_concurrency, value_name = "NUMBER")]
    pub concurrency: ConcurrencySpec,

    /// Mean network latency between servers, in ms (clients always get 0).
    #[arg(long, default_value_t = 0, value_name = "MILLIS")]
    pub latency: u64,

    /// Shape of the latency distribution around `--latency`.
    #[arg(long, value_parser = parse_latency_dist, default_value = "constant", value_name = "constant|uniform|exponential")]
    pub latency_dist: LatencyDist,

    /// Which topology to hand broadcast nodes.
    #[arg(long, value_parser = parse_topology, default_value = "grid", value_name = "line|grid|tree|tree2|tree3|tree4|total")]
    pub topology: Topology,

    /// Required fraction of ok client ops: `total` or a number in 0..1. Unset: no requirement.
    #[arg(long, value_parser = parse_availability, value_name = "total|FRACTION")]
    pub availability: Option<Availability>,

    /// Print each node's stderr on the console too (it always goes to `node-logs/<id>.log`).
    #[arg(long)]
    pub log_stderr: bool,

    /// How many nodes to run, named `n0..n(N-1)`. Overrides `--nodes`/`--node`.
    #[arg(long, value_name = "NUM", help_heading = "Nodes")]
    pub node_count: Option<usize>,

    /// Comma-separated list of node ids (default n1,n2,n3,n4,n5).
    #[arg(long, value_name = "NODE_LIST", help_heading = "Nodes")]
    pub nodes: Option<String>,

    /// A node id; may be given several times. Added to `--nodes`.
    #[arg(short = 'n', long = "node", value_name = "ID", help_heading = "Nodes")]
    pub node: Vec<String>,

    /// A file with node ids, one per line. Added to `--nodes`.
    #[arg(long, value_name = "FILENAME", help_heading = "Nodes")]
    pub nodes_file: Option<PathBuf>,

    /// Comma-separated list of faults to inject: partition, kill, pause.
    #[arg(long, value_name = "FAULTS", help_heading = "Faults")]
    pub nemesis: Option<String>,

    /// Mean seconds between nemesis operations.
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "SECONDS",
        allow_negative_numbers = true,
        help_heading = "Faults"
    )]
    pub nemesis_interval: f64,

    /// Seed for every random choice of the runner (latency, schedules, values).
    /// Default: drawn from OS entropy; the seed is always printed so a run can be replayed.
    #[arg(long, value_name = "U64", help_heading = "Runner (murmur)")]
    pub seed: Option<u64>,

    /// Where run folders go (`<results-dir>/<workload>/<timestamp>/`).
    #[arg(
        long,
        default_value = "results",
        value_name = "DIR",
        help_heading = "Runner (murmur)"
    )]
    pub results_dir: PathBuf,

    /// Keep the nodes' working directory (their persisted data) after the run.
    #[arg(long, help_heading = "Runner (murmur)")]
    pub keep_data: bool,

    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, help_heading = "Runner (murmur)")]
    pub no_progress: bool,

    /// Journal message types, not bodies, in `messages.jsonl` (and show no bodies in
    /// `report.html`). By default every sent message's body is journaled, as Maelstrom does;
    /// for very long or very busy runs this saves the runner's memory and the file's size.
    #[arg(long, help_heading = "Runner (murmur)")]
    pub no_journal_bodies: bool,

    /// txn workloads: the consistency models the history must satisfy, comma-separated:
    /// read-uncommitted, read-committed, serializable, strict-serializable.
    #[arg(
        long,
        default_value = "strict-serializable",
        value_name = "MODELS",
        help_heading = "Transactions"
    )]
    pub consistency_models: String,

    /// txn workloads: how many keys are active at any time (default 10, Elle's).
    #[arg(long, value_name = "INT", help_heading = "Transactions")]
    pub key_count: Option<u64>,

    /// txn workloads: the most micro-ops in one transaction.
    #[arg(
        long,
        default_value_t = 4,
        value_name = "INT",
        help_heading = "Transactions"
    )]
    pub max_txn_length: u64,

    /// txn workloads: how many writes (appends) a key gets before a fresh key replaces it.
    #[arg(
        long,
        default_value_t = 16,
        value_name = "INT",
        help_heading = "Transactions"
    )]
    pub max_writes_per_key: u64,

    /// Serve a live dashboard of the run at ADDR (default 127.0.0.1:8080; a bare PORT means
    /// 127.0.0.1:PORT; port 0 picks a free one): progress, nodes, message rates, events, and
    /// controls to kill, restart, pause, resume and partition nodes, recorded as nemesis ops.
    #[arg(
        long,
        num_args = 0..=1,
        default_missing_value = DEFAULT_WEB_ADDR,
        value_parser = parse_web_addr,
        value_name = "ADDR",
        help_heading = "Runner (murmur)"
    )]
    pub web: Option<std::net::SocketAddr>,

    /// Allow `--web` on a non-loopback address: anyone who can reach it can kill your nodes.
    #[arg(long, help_heading = "Runner (murmur)")]
    pub web_public: bool,

    #[command(flatten)]
    pub compat: CompatArgs,
}

/// Flags real Maelstrom accepts that this runner ignores: SSH settings (Maelstrom forces a
/// dummy SSH), logging switches and `--test-count` (which must still be positive). They are
/// parsed (with Maelstrom's value types) only so existing command lines keep working.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Accepted for compatibility (ignored)")]
pub struct CompatArgs {
    /// Ignored: no SSH (Maelstrom forces a dummy SSH too).
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,
    /// Ignored: no SSH.
    #[arg(long, value_name = "PASS")]
    pub password: Option<String>,
    /// Ignored: no SSH.
    #[arg(long, value_name = "FILE")]
    pub ssh_private_key: Option<PathBuf>,
    /// Ignored: no SSH.
    #[arg(long)]
    pub strict_host_key_checking: bool,
    /// Ignored: never SSH.
    #[arg(long)]
    pub no_ssh: bool,
    /// Ignored: never SSH.
    #[arg(long, hide = true)]
    pub dummy_ssh: bool,
    /// Ignored: every message is in messages.jsonl.
    #[arg(long)]
    pub log_net_send: bool,
    /// Ignored: every message is in messages.jsonl.
    #[arg(long)]
    pub log_net_recv: bool,
    /// Ignored: the test runs once.
    #[arg(long, value_name = "NUMBER")]
    pub test_count: Option<u64>,
    /// Ignored: nodes are always stopped.
    #[arg(long)]
    pub leave_db_running: bool,
    /// Ignored.
    #[arg(long)]
    pub logging_json: bool,
}

/// Maelstrom's workloads (`-w`), every one of which this runner drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadName {
    #[value(name = "broadcast")]
    Broadcast,
    #[value(name = "echo")]
    Echo,
    #[value(name = "g-counter")]
    GCounter,
    #[value(name = "g-set")]
    GSet,
    #[value(name = "kafka")]
    Kafka,
    #[value(name = "lin-kv")]
    LinKv,
    #[value(name = "pn-counter")]
    PnCounter,
    #[value(name = "txn-list-append")]
    TxnListAppend,
    #[value(name = "txn-rw-register")]
    TxnRwRegister,
    #[value(name = "unique-ids")]
    UniqueIds,
}

impl WorkloadName {
    /// Maelstrom's name for the workload, as used on the command line and in the results path.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadName::Broadcast => "broadcast",
            WorkloadName::Echo => "echo",
            WorkloadName::GCounter => "g-counter",
            WorkloadName::GSet => "g-set",
            WorkloadName::Kafka => "kafka",
            WorkloadName::LinKv => "lin-kv",
            WorkloadName::PnCounter => "pn-counter",
            WorkloadName::TxnListAppend => "txn-list-append",
            WorkloadName::TxnRwRegister => "txn-rw-register",
            WorkloadName::UniqueIds => "unique-ids",
        }
    }
}

impl fmt::Display for WorkloadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// The flags' value types are the domain types themselves (one definition each): the network's
// latency distributions, the topology shapes and the nemesis faults. clap parses them with their
// `FromStr`; `TestOpts` serialises them by name.
pub use crate::nemesis::Fault;
pub use crate::net::LatencyDist;
pub use crate::topology::TopologyKind as Topology;

fn parse_latency_dist(s: &str) -> Result<LatencyDist, String> {
    s.parse()
        .map_err(|e: crate::net::ParseLatencyDistError| e.to_string())
}

fn parse_topology(s: &str) -> Result<Topology, String> {
    s.parse()
        .map_err(|e: crate::topology::ParseTopologyError| e.to_string())
}

/// Serialises a value by its `Display` name (`"uniform"`, `"tree2"`, `["partition"]`).
fn by_name<S: serde::Serializer, T: fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn names<S: serde::Serializer, T: fmt::Display>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

/// `--concurrency` as typed: `count`, times the node count when `per_node` (`"2n"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencySpec {
    pub count: usize,
    pub per_node: bool,
}

impl ConcurrencySpec {
    /// The number of client workers for `node_count` nodes; `None` on overflow.
    pub fn resolve(self, node_count: usize) -> Option<usize> {
        if self.per_node {
            self.count.checked_mul(node_count)
        } else {
            Some(self.count)
        }
    }
}

impl fmt::Display for ConcurrencySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, if self.per_node { "n" } else { "" })
    }
}

/// Parses Jepsen's `^\d+n?$` (jepsen: cli.clj `--concurrency`).
pub fn parse_concurrency(s: &str) -> Result<ConcurrencySpec, String> {
    let (digits, per_node) = match s.strip_suffix('n') {
        Some(d) => (d, true),
        None => (s, false),
    };
    let bad = || format!("{s:?}: must be an integer, optionally followed by n (e.g. 2n)");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let count = digits.parse::<usize>().map_err(|_| bad())?;
    Ok(ConcurrencySpec { count, per_node })
}

/// `--availability`: the fraction of client ops that must succeed. Serialises as it is typed:
/// `"total"` or the number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Availability {
    /// `total`: every client op must succeed.
    Total,
    /// A number in 0..=1.
    Fraction(f64),
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Availability::Total => f.write_str("total"),
            Availability::Fraction(x) => write!(f, "{x}"),
        }
    }
}

impl Serialize for Availability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Availability::Total => s.serialize_str("total"),
            Availability::Fraction(x) => s.serialize_f64(*x),
        }
    }
}

/// Parses `total` or a number in 0..=1.
pub fn parse_availability(s: &str) -> Result<Availability, String> {
    if s == "total" {
        return Ok(Availability::Total);
    }
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(Availability::Fraction(x)),
        _ => Err(format!(
            "{s:?}: must be `total` or a number between 0 and 1"
        )),
    }
}

/// Why the flags do not make a runnable test. Every variant maps to [`EXIT_BAD_ARGS`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("--bin {path}: {source}")]
    BinNotFound {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--bin {0}: not a regular file")]
    BinNotAFile(PathBuf),
    #[error("--bin {0}: not executable (try chmod +x)")]
    BinNotExecutable(PathBuf),
    #[error("--nodes-file {path}: {source}")]
    NodesFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--node-count must be positive")]
    ZeroNodeCount,
    #[error("the node list is empty")]
    EmptyNodeList,
    #[error("invalid node id {id:?}: {why}")]
    BadNodeId { id: String, why: &'static str },
    #[error("node id {0:?} is listed twice")]
    DuplicateNode(String),
    #[error("--concurrency {spec} resolves to {resolved} workers; it must be at least 1")]
    ZeroConcurrency {
        spec: ConcurrencySpec,
        resolved: usize,
    },
    #[error("--concurrency {0} is too large")]
    ConcurrencyOverflow(ConcurrencySpec),
    #[error("--time-limit must be positive (0, run until stopped, needs --web)")]
    ZeroTimeLimit,
    #[error("{addr} is not a loopback address: anyone who can reach it could use the page; add {flag} to allow it")]
    WebNotLoopback {
        addr: std::net::SocketAddr,
        flag: &'static str,
    },
    #[error("--rate {0}: must be a finite number >= 0")]
    BadRate(f64),
    #[error(
        "--latency-dist {0} needs --latency > 0 (with mean 0 Maelstrom would hang or divide by zero)"
    )]
    LatencyDistNeedsMean(LatencyDist),
    #[error("--nemesis-interval {0}: must be a finite number of seconds > 0")]
    BadNemesisInterval(f64),
    #[error(
        "--nemesis: unknown fault {0:?}; must be a comma-separated list of partition, kill, pause"
    )]
    UnknownFault(String),
    #[error("{flag} must be positive")]
    NotPositive { flag: &'static str },
    #[error("{flag} {value} is more than this runner supports ({max})")]
    TooLarge {
        flag: &'static str,
        value: u64,
        max: u64,
    },
    #[error("--consistency-models: {0}")]
    BadConsistencyModels(String),
    #[error(
        "lin-kv needs --concurrency to be a multiple of 2 x the node count ({groups}): it gives \
         each key a group of 2n workers (use e.g. --concurrency 2n); got {concurrency} \
         (Maelstrom's generator would assert and abort)"
    )]
    LinKvConcurrency { concurrency: usize, groups: usize },
}

impl CliError {
    /// Always [`EXIT_BAD_ARGS`]; a method so callers need not know that.
    pub fn exit_code(&self) -> i32 {
        EXIT_BAD_ARGS
    }
}

impl TestOpts {
    /// Whether this runner can drive the workload with these options: lin-kv's concurrency must
    /// be a multiple of 2 × the node count (its generator gives each key a group of 2n workers).
    pub fn check_workload(&self) -> Result<(), CliError> {
        let groups = 2 * self.nodes.len();
        if self.workload == WorkloadName::LinKv && self.concurrency % groups != 0 {
            return Err(CliError::LinKvConcurrency {
                concurrency: self.concurrency,
                groups,
            });
        }
        Ok(())
    }
}

/// The largest `--key-count` and `--max-txn-length` accepted: far past any useful test (Maelstrom's
/// defaults are 10 and 4), small enough that the key pool and one transaction fit in memory.
pub const MAX_TXN_KNOB: u64 = 1 << 20;

/// A validated, resolved test configuration: what the driver runs.
///
/// Built by [`TestArgs::resolve`]. Serialisable so the run folder can record exactly what ran.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TestOpts {
    pub workload: WorkloadName,
    /// Canonical path of `--bin` (Maelstrom spawns the canonical path).
    pub bin: PathBuf,
    /// Extra arguments for the node binary.
    pub args: Vec<String>,
    /// Server node ids in order: `n0..` with `--node-count`, else the given list, else `n1..n5`.
    pub nodes: Vec<String>,
    /// Main-phase length in seconds (see [`TestOpts::time_limit`]); 0 (with `--web` only):
    /// until Stop is pressed on the live page.
    pub time_limit_secs: u64,
    /// Client ops per second over all workers; 0 means no client ops.
    pub rate: f64,
    /// Number of client workers (`--concurrency` multiplied out).
    pub concurrency: usize,
    /// Mean server latency in ms.
    pub latency_ms: u64,
    #[serde(serialize_with = "by_name")]
    pub latency_dist: LatencyDist,
    #[serde(serialize_with = "by_name")]
    pub topology: Topology,
    pub availability: Option<Availability>,
    /// Faults to inject, deduplicated, in [`Fault`] order; empty means no nemesis.
    #[serde(serialize_with = "names")]
    pub nemesis: Vec<Fault>,
    /// Mean seconds between nemesis ops (see [`TestOpts::nemesis_interval`]).
    pub nemesis_interval_secs: f64,
    pub log_stderr: bool,
    /// The seed for every random choice of the runner.
    pub seed: u64,
    /// Whether the seed came from `--seed` (false: drawn at random).
    pub seed_given: bool,
    pub results_dir: PathBuf,
    pub keep_data: bool,
    pub no_progress: bool,
    /// Whether `messages.jsonl` keeps message bodies (default yes; `--no-journal-bodies`).
    pub journal_bodies: bool,
    /// The command line as typed, recorded in `results.json` (`runner.command`) and shown by
    /// `report.html`; the binary sets it, library callers may leave it `None`.
    pub command: Option<String>,
    /// Notes for the user about flags that were given but have no effect here.
    pub warnings: Vec<String>,
    /// The txn workloads' flags (`--key-count`, `--max-txn-length`, `--max-writes-per-key`,
    /// `--consistency-models`).
    pub txn: TxnOpts,
    /// Where to serve the live dashboard (`--web`), checked to be loopback unless
    /// `--web-public`.
    #[serde(serialize_with = "display_opt")]
    pub web: Option<std::net::SocketAddr>,
}

fn display_opt<S: serde::Serializer, T: fmt::Display>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

impl TestOpts {
    pub fn time_limit(&self) -> Duration {
        Duration::from_secs(self.time_limit_secs)
    }

    pub fn nemesis_interval(&self) -> Duration {
        // resolve() guarantees a finite positive value; fall back to Maelstrom's 10 s anyway.
        Duration::try_from_secs_f64(self.nemesis_interval_secs).unwrap_or(Duration::from_secs(10))
    }

    pub fn has_fault(&self, fault: Fault) -> bool {
        self.nemesis.contains(&fault)
    }

    /// Whether to draw a progress bar: not with `--no-progress`, and not with `--log-stderr`,
    /// whose lines would tear it. (The bar also hides itself when stderr is not a terminal.)
    pub fn show_progress(&self) -> bool {
        !self.no_progress && !self.log_stderr
    }

    /// The line to print at start-up so any run can be replayed.
    pub fn seed_line(&self) -> String {
        let origin = if self.seed_given {
            "from --seed"
        } else {
            "random"
        };
        format!(
            "Seed: {} ({origin}; replay with --seed {})",
            self.seed, self.seed
        )
    }
}

impl TestArgs {
    /// Validates the flags and resolves them into [`TestOpts`]. Touches the filesystem only
    /// to canonicalise `--bin` and read `--nodes-file`; draws a random seed when none is given.
    pub fn resolve(&self) -> Result<TestOpts, CliError> {
        let nodes = self.resolve_nodes()?;
        let concurrency = self
            .concurrency
            .resolve(nodes.len())
            .ok_or(CliError::ConcurrencyOverflow(self.concurrency))?;
        if concurrency == 0 {
            return Err(CliError::ZeroConcurrency {
                spec: self.concurrency,
                resolved: 0,
            });
        }
        if self.time_limit == 0 && self.web.is_none() {
            return Err(CliError::ZeroTimeLimit);
        }
        if let Some(addr) = self.web {
            check_loopback(addr, self.web_public, "--web-public")?;
        }
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return Err(CliError::BadRate(self.rate));
        }
        if self.latency == 0 && self.latency_dist != LatencyDist::Constant {
            return Err(CliError::LatencyDistNeedsMean(self.latency_dist));
        }
        if !(self.nemesis_interval.is_finite() && self.nemesis_interval > 0.0) {
            return Err(CliError::BadNemesisInterval(self.nemesis_interval));
        }
        let nemesis = parse_nemesis(self.nemesis.as_deref().unwrap_or(""))?;
        let txn = self.txn_opts()?;
        let bin = canonical_bin(&self.bin)?;
        let (seed, seed_given) = match self.seed {
            Some(s) => (s, true),
            None => (random_seed(), false),
        };
        Ok(TestOpts {
            workload: self.workload,
            bin,
            args: self.args.clone(),
            nodes,
            time_limit_secs: self.time_limit,
            rate: self.rate,
            concurrency,
            latency_ms: self.latency,
            latency_dist: self.latency_dist,
            topology: self.topology,
            availability: self.availability,
            nemesis,
            nemesis_interval_secs: self.nemesis_interval,
            log_stderr: self.log_stderr,
            seed,
            seed_given,
            results_dir: self.results_dir.clone(),
            keep_data: self.keep_data,
            no_progress: self.no_progress,
            journal_bodies: !self.no_journal_bodies,
            command: None,
            warnings: self.compat.warnings(),
            txn,
            web: self.web,
        })
    }

    /// The txn flags, checked as Maelstrom checks them: `--key-count`, `--max-txn-length` and
    /// `--test-count` must be positive (Maelstrom exits 254 on 0). `--max-writes-per-key 0` is
    /// refused too: Elle's generator would retire every key before writing it, for ever.
    /// `--key-count` and `--max-txn-length` above [`MAX_TXN_KNOB`] are refused rather than
    /// allocated (the generator holds the key pool and each transaction in memory).
    fn txn_opts(&self) -> Result<TxnOpts, CliError> {
        let positive = |v: u64, flag: &'static str| {
            if v == 0 {
                Err(CliError::NotPositive { flag })
            } else if v > MAX_TXN_KNOB && flag != "--max-writes-per-key" && flag != "--test-count" {
                Err(CliError::TooLarge {
                    flag,
                    value: v,
                    max: MAX_TXN_KNOB,
                })
            } else {
                Ok(v)
            }
        };
        if let Some(n) = self.compat.test_count {
            positive(n, "--test-count")?;
        }
        let key_count = match self.key_count {
            Some(k) => positive(k, "--key-count")? as usize,
            None => crate::workload::txn::DEFAULT_KEY_COUNT,
        };
        Ok(TxnOpts {
            key_count,
            max_txn_length: positive(self.max_txn_length, "--max-txn-length")? as usize,
            max_writes_per_key: positive(self.max_writes_per_key, "--max-writes-per-key")?,
            consistency_models: Models::parse(&self.consistency_models)
                .map_err(CliError::BadConsistencyModels)?,
        })
    }

    /// Jepsen's node-list rules plus Maelstrom's `--node-count` override.
    fn resolve_nodes(&self) -> Result<Vec<String>, CliError> {
        if let Some(n) = self.node_count {
            if n == 0 {
                return Err(CliError::ZeroNodeCount);
            }
            return Ok((0..n).map(|i| format!("n{i}")).collect());
        }
        let given = self.nodes.is_some() || self.nodes_file.is_some() || !self.node.is_empty();
        if !given {
            return Ok(DEFAULT_NODES.iter().map(|s| s.to_string()).collect());
        }
        let mut nodes = Vec::new();
        if let Some(list) = &self.nodes {
            // Jepsen splits on `,\s*`; trimming both sides also forgives `a , b`.
            nodes.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        if let Some(path) = &self.nodes_file {
            let text = std::fs::read_to_string(path).map_err(|source| CliError::NodesFile {
                path: path.clone(),
                source,
            })?;
            nodes.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        nodes.extend(self.node.iter().map(|s| s.trim().to_string()));
        if nodes.is_empty() {
            return Err(CliError::EmptyNodeList);
        }
        let mut seen = std::collections::HashSet::new();
        for id in &nodes {
            validate_node_id(id)?;
            if !seen.insert(id.as_str()) {
                return Err(CliError::DuplicateNode(id.clone()));
            }
        }
        Ok(nodes)
    }
}

impl CompatArgs {
    /// Warnings for ignored flags whose absence of effect could surprise: the SSH ones are
    /// silent because Maelstrom ignores them too.
    fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(n) = self.test_count.filter(|&n| n > 1) {
            w.push(format!("--test-count {n} is ignored: the test runs once"));
        }
        if self.log_net_send || self.log_net_recv {
            w.push(
                "--log-net-send/--log-net-recv are ignored: see messages.jsonl in the run folder"
                    .into(),
            );
        }
        if self.leave_db_running {
            w.push("--leave-db-running is ignored: nodes are always stopped at teardown".into());
        }
        w
    }
}

/// Parses `--nemesis`: comma-separated (whitespace around commas allowed, as Maelstrom's
/// `\s*,\s*`), deduplicated, sorted in [`Fault`] order; empty pieces are skipped.
pub fn parse_nemesis(s: &str) -> Result<Vec<Fault>, CliError> {
    let mut faults = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|f| Fault::from_str(f).map_err(|e| CliError::UnknownFault(e.name)))
        .collect::<Result<Vec<_>, _>>()?;
    faults.sort();
    faults.dedup();
    Ok(faults)
}

/// Rejects ids the protocol would misread: Maelstrom treats any id starting with `c` as a
/// client (see <https://github.com/jepsen-io/maelstrom/blob/main/doc/protocol.md>), and service
/// names are taken.
fn validate_node_id(id: &str) -> Result<(), CliError> {
    let why = if id.is_empty() {
        Some("empty")
    } else if id.chars().any(char::is_whitespace) {
        Some("contains whitespace")
    } else if id.contains('/') || id == "." || id == ".." {
        Some("cannot name a log file (node-logs/<id>.log)")
    } else if id.starts_with('c') {
        Some("starts with 'c', which Maelstrom treats as a client")
    } else if SERVICE_IDS.contains(&id) {
        Some("is the name of a Maelstrom service")
    } else {
        None
    };
    match why {
        Some(why) => Err(CliError::BadNodeId {
            id: id.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// Canonicalises `--bin` and checks it is an executable regular file, so a typo fails here
/// with exit 254 instead of as a spawn error mid-setup.
fn canonical_bin(bin: &Path) -> Result<PathBuf, CliError> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::fs::canonicalize(bin).map_err(|source| CliError::BinNotFound {
        path: bin.to_path_buf(),
        source,
    })?;
    let meta = std::fs::metadata(&path).map_err(|source| CliError::BinNotFound {
        path: bin.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(CliError::BinNotAFile(bin.to_path_buf()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(CliError::BinNotExecutable(bin.to_path_buf()));
    }
    Ok(path)
}

/// A fresh seed from OS entropy, kept below 2^53 so it survives JSON tools that read numbers
/// as doubles (jq, JavaScript) when copied from results.json.
fn random_seed() -> u64 {
    rand::random::<u64>() >> 11
}

#[cfg(test)]
mod tests;

//! The runner against hostile nodes (`src/bin/hostile-node.rs`): the `maelstrom` binary runs
//! each attack as a child of this test, and every case must end with the right exit code and a
//! message naming the node and what happened, in bounded memory (the runner's peak RSS, from
//! `wait4`'s rusage), without hanging (a generous deadline; the runner is SIGKILLed and the test
//! fails past it), and with no process left behind (the fixture writes the pid of every process
//! it runs to a file; none may be alive after the runner exits).
//!
//! Each run is an echo test of one node with a 1 s time limit; a node whose output the runner
//! stops reading costs one more client timeout (5 s), so the suite takes about 20 s.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Far beyond any of these runs (the slowest takes about 7 s): a runner still running then hangs.
const DEADLINE: Duration = Duration::from_secs(60);

/// What one run of the runner left.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    /// The runner's peak resident memory (KiB), from `wait4`.
    peak_rss_kib: u64,
    /// Every process the fixture ran: the node and its offspring.
    pids: Vec<u32>,
    dir: TempDir,
}

impl Run {
    fn results_json(&self) -> serde_json::Value {
        let path = self.dir.path().join("results/latest/results.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.stderr));
        serde_json::from_str(&text).unwrap()
    }

    fn assert_stderr_has(&self, what: &str) {
        assert!(
            self.stderr.contains(what),
            "the runner's stderr lacks {what:?}:\n{}",
            self.stderr
        );
    }

    /// No process the fixture ran is alive (a zombie is on its way out: its parent is gone).
    fn assert_no_process_left(&self) {
        assert!(!self.pids.is_empty(), "the fixture recorded no pid");
        let deadline = Instant::now() + Duration::from_secs(5);
        for &pid in &self.pids {
            while alive(pid) {
                assert!(
                    Instant::now() < deadline,
                    "process {pid} outlived the runner: {}",
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A live process running the fixture (not a zombie; not a recycled pid running something else).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    stat.contains("(hostile-node)") && !state.starts_with('Z')
}

fn runner_command(mode: &str, time_limit: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maelstrom"));
    cmd.args([
        "test",
        "-w",
        "echo",
        "--bin",
        env!("CARGO_BIN_EXE_hostile-node"),
    ])
    .args([
        "--node-count",
        "1",
        "--rate",
        "10",
        "--seed",
        "1",
        "--no-progress",
    ])
    .args(["--time-limit", time_limit, "--results-dir"])
    .arg(dir.join("results"))
    .args(["--", mode])
    .env("HOSTILE_PIDS", dir.join("pids"))
    .env("RUST_LOG", "warn")
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
    .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
    cmd
}

/// Waits for the runner (up to [`DEADLINE`], then kills it and fails), and collects the run.
fn finish(mut child: Child, dir: TempDir, what: &str) -> Run {
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our unreaped child; both out-pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            break (status, usage);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: the runner hung (still running after {DEADLINE:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        libc::WIFEXITED(status),
        "{what}: the runner died: {status:#x}"
    );
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let pids = read("pids")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    Run {
        code: libc::WEXITSTATUS(status),
        stdout: read("stdout"),
        stderr: read("stderr"),
        peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        pids,
        dir,
    }
}

fn run_hostile(mode: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let child = runner_command(mode, "1", dir.path()).spawn().unwrap();
    finish(child, dir, mode)
}

/// The runner's exit codes (Maelstrom's).
const VALID: i32 = 0;
const INVALID: i32 = 1;
const ABORTED: i32 = 255;

/// A node whose output the runner stops reading: the run goes on, that node answers nothing
/// more, and its echo ops time out, so the run is invalid, as under Maelstrom. The results name
/// the node and the reason.
fn assert_wedged(run: &Run, reason: &str) {
    assert_eq!(run.code, INVALID, "{}", run.stderr);
    run.assert_stderr_has("node n0: ");
    run.assert_stderr_has(reason);
    let results = run.results_json();
    let wedged = &results["runner"]["wedged-nodes"];
    assert_eq!(wedged[0]["node"], "n0", "{results}");
    assert!(
        wedged[0]["error"].as_str().unwrap().contains(reason),
        "{wedged}"
    );
    assert!(run.stdout.contains("Analysis invalid"), "{}", run.stdout);
    run.assert_no_process_left();
}

#[test]
fn a_node_that_exits_before_init_aborts_the_run() {
    let run = run_hostile("exit-before-init");
    assert_eq!(run.code, ABORTED, "{}", run.stderr);
    run.assert_stderr_has("Test aborted: Node n0 crashed with exit code 3");
    run.assert_stderr_has("exiting before init, on purpose");
    run.assert_no_process_left();
}

#[test]
fn a_node_that_exits_after_init_aborts_the_run() {
    let run = run_hostile("exit-after-init");
    assert_eq!(run.code, ABORTED, "{}", run.stderr);
    run.assert_stderr_has("Test aborted: Node n0 crashed with exit code 0");
    run.assert_stderr_has("exiting after init, on purpose");
    run.assert_no_process_left();
}

#[test]
fn a_flood_of_junk_wedges_the_node() {
    let run = run_hostile("flood-junk");
    assert_wedged(&run, "not well-formed JSON");
    assert!(run.peak_rss_kib < 300 << 10, "{} KiB", run.peak_rss_kib);
}

#[test]
fn a_flood_of_valid_messages_to_a_node_that_never_reads_is_cut_off() {
    let run = run_hostile("flood-valid");
    assert_wedged(
        &run,
        "stopped reading its STDIN: 32 MiB of messages are waiting",
    );
    run.assert_stderr_has("The runner stops reading the output of nodes that send to it");
    assert!(run.peak_rss_kib < 300 << 10, "{} KiB", run.peak_rss_kib);
    // Back-pressure stopped the flood at its source: about 32 MiB of 32 KiB messages (1024) were
    // routed, plus what the pipe and the network held, not whatever the node could write for the
    // whole run (several thousand in a debug build, many more in release).
    let routed = run.results_json()["runner"]["routed"].as_u64().unwrap();
    assert!(routed < 2500, "{routed} messages routed");
}

#[test]
fn a_one_gigabyte_line_is_cut_in_bounded_memory() {
    let run = run_hostile("huge-line");
    assert!(
        run.peak_rss_kib < 300 << 10,
        "the runner held {} KiB for a 1 GiB line",
        run.peak_rss_kib
    );
    assert_wedged(&run, "a line longer than 16 MiB");
}

#[test]
fn a_line_that_never_ends_is_cut_in_bounded_memory() {
    let run = run_hostile("endless-line");
    assert_wedged(&run, "a line longer than 16 MiB");
    assert!(run.peak_rss_kib < 300 << 10, "{} KiB", run.peak_rss_kib);
}

#[test]
fn invalid_utf8_is_a_malformed_line() {
    let run = run_hostile("bad-utf8");
    // Decoded as Java's reader does (U+FFFD), then rejected as JSON.
    assert_wedged(&run, "not well-formed JSON");
    run.assert_stderr_has("\u{FFFD}");
}

#[test]
fn a_node_that_ignores_sigterm_is_still_stopped() {
    let run = run_hostile("ignore-sigterm");
    assert_eq!(run.code, VALID, "{}", run.stderr);
    run.assert_no_process_left();
}

#[test]
fn interrupting_the_runner_stops_a_node_that_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let child = runner_command("ignore-sigterm", "60", dir.path())
        .spawn()
        .unwrap();
    let pids = dir.path().join("pids");
    let start = Instant::now();
    while !std::fs::read_to_string(&pids).is_ok_and(|p| p.ends_with('\n')) {
        assert!(start.elapsed() < DEADLINE, "the node never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our unreaped child.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let run = finish(child, dir, "interrupted");
    assert_eq!(run.code, ABORTED, "{}", run.stderr);
    run.assert_stderr_has("interrupted by a signal; every node was stopped");
    run.assert_no_process_left();
}

#[test]
fn offspring_in_the_nodes_group_die_with_it() {
    let run = run_hostile("fork-child");
    assert_eq!(run.code, VALID, "{}", run.stderr);
    assert_eq!(run.pids.len(), 2, "node and child: {:?}", run.pids);
    run.assert_no_process_left();
}

#[test]
fn offspring_that_leave_the_nodes_group_are_killed_at_teardown() {
    let run = run_hostile("fork-escape");
    assert_eq!(run.code, VALID, "{}", run.stderr);
    assert_eq!(run.pids.len(), 2, "node and grandchild: {:?}", run.pids);
    run.assert_stderr_has("killed 1 processes the nodes left behind");
    run.assert_stderr_has(&format!("{} (hostile-node)", run.pids[1]));
    run.assert_no_process_left();
}

#[test]
fn a_crashed_node_whose_offspring_hold_its_pipes_still_aborts_the_run() {
    for mode in ["fork-child,exit-after-init", "fork-escape,exit-after-init"] {
        let run = run_hostile(mode);
        assert_eq!(run.code, ABORTED, "{mode}: {}", run.stderr);
        run.assert_stderr_has("Test aborted: Node n0 crashed with exit code 0");
        run.assert_stderr_has("exiting after init, on purpose");
        run.assert_no_process_left();
    }
}

/// A guard against a vacuous pass: the pid check does see a live fixture process.
#[test]
fn the_pid_check_sees_a_live_fixture() {
    let mut child = Command::new(PathBuf::from(env!("CARGO_BIN_EXE_hostile-node")))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(alive(child.id()));
    drop(child.stdin.take());
    child.wait().unwrap();
    assert!(!alive(child.id()));
}

//! Tests of node processes: real children (`/bin/sh` scripts and `cat`) over real pipes.

use super::*;
use std::sync::mpsc::Receiver;

type Lines = Receiver<(Arc<str>, LineResult)>;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, id: &str, script: &str) -> NodeCommand {
        NodeCommand {
            id: id.into(),
            bin: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            work_dir: self.dir.path().to_path_buf(),
            env: vec![("MURMUR_TEST_VAR".into(), "hello".into())],
            log_path: self.dir.path().join("node-logs").join(format!("{id}.log")),
            log_stderr: false,
        }
    }

    fn spawn(&self, id: &str, script: &str) -> (NodeProcess, Lines) {
        let (tx, rx) = mpsc::channel();
        (
            NodeProcess::spawn(&self.command(id, script), tx).unwrap(),
            rx,
        )
    }
}

const WAIT: Duration = Duration::from_secs(10);

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn lines_echo_through_cat_in_order() {
    let fx = Fixture::new();
    let (node, rx) = fx.spawn("n1", "exec cat");
    let input = node.input();
    for i in 0..1000 {
        assert!(input.send(format!(
            r#"{{"src":"n1","dest":"n2","body":{{"type":"t","i":{i}}}}}"#
        )));
    }
    node.send_line("not json".into());
    node.send_line(r#"{"src":"n1","dest":"n2","body":{},"x":0}"#.into());
    for i in 0..1000 {
        let (id, line) = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(&*id, "n1");
        let p = line.unwrap();
        assert_eq!(p.raw_body, format!(r#"{{"type":"t","i":{i}}}"#));
    }
    let (_, line) = rx.recv_timeout(WAIT).unwrap();
    assert!(matches!(line.unwrap_err().reason, LineError::NotJson(_)));
    let (_, line) = rx.recv_timeout(WAIT).unwrap();
    let m = line.unwrap_err();
    assert_eq!(m.reason, LineError::UnknownKey("x".into()));
    assert_eq!(m.line, r#"{"src":"n1","dest":"n2","body":{},"x":0}"#);
    let tail = node.last_stdout();
    assert_eq!(tail.len(), TAIL_LINES);
    assert_eq!(tail.last().unwrap(), &m.line);
    assert_eq!(node.try_exit_status(), None);
    let stopped = node.stop().unwrap();
    assert!(!stopped.exited_on_its_own);
    assert_eq!(stopped.status.signal(), Some(libc::SIGKILL));
    assert_eq!(node.dropped_writes(), 0);
}

#[test]
fn stderr_goes_to_the_log_and_the_tail_across_restarts() {
    let fx = Fixture::new();
    let script = "i=0; while [ $i -lt 40 ]; do echo \"err $i\" >&2; i=$((i+1)); done; exec cat";
    let (node, _rx) = fx.spawn("n2", script);
    let log = node.log_path().to_path_buf();
    eventually("40 stderr lines", || {
        node.last_stderr().last().map(String::as_str) == Some("err 39")
    });
    let tail = node.last_stderr();
    assert_eq!(tail.len(), TAIL_LINES);
    assert_eq!(tail[0], "err 8");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 40);
    assert!(text.starts_with("err 0\nerr 1\n"));
    node.kill().unwrap();
    let report = node.crash_report(node.try_exit_status().unwrap());
    assert!(report.contains("err 39") && report.contains("signal 9 (SIGKILL)"));

    // A restart appends to the same log after a marker.
    let (again, _rx) = fx.spawn("n2", "echo second >&2; exec cat");
    eventually("restart line", || again.last_stderr() == ["second"]);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 42);
    assert!(lines[40].starts_with(RESTART_MARKER));
    assert_eq!(lines[41], "second");
}

#[test]
fn kill_pause_resume() {
    let fx = Fixture::new();
    let (node, rx) = fx.spawn("n3", "exec cat");
    let line = r#"{"src":"a","dest":"b","body":{}}"#;
    node.pause().unwrap();
    node.pause().unwrap(); // idempotent
    node.send_line(line.into());
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a paused node answered"
    );
    node.resume().unwrap();
    assert!(rx.recv_timeout(WAIT).unwrap().1.is_ok());
    node.resume().unwrap(); // resuming a running node is harmless

    // Kill works on a paused process too.
    node.pause().unwrap();
    let status = node.kill().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(node.was_killed());
    assert_eq!(node.try_exit_status(), Some(status));
    assert_eq!(
        node.kill().unwrap(),
        status,
        "killing twice returns the same status"
    );
    node.pause().unwrap(); // a killed node: nothing to do
    node.resume().unwrap();
    let stopped = node.stop().unwrap();
    assert!(
        !stopped.exited_on_its_own,
        "the runner killed it: not a crash"
    );

    // Writes to the dead incarnation are counted and dropped, without blocking.
    for _ in 0..100 {
        node.send_line(line.into());
    }
    eventually("dropped writes", || node.dropped_writes() == 100);
}

#[test]
fn an_unexpected_exit_is_detected_even_with_code_0() {
    let fx = Fixture::new();
    let (node, _rx) = fx.spawn("n4", "echo bye $MURMUR_TEST_VAR; pwd >&2; exit 0");
    eventually("exit", || node.try_exit_status().is_some());
    let status = node.try_exit_status().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!node.was_killed());
    assert!(matches!(node.kill(), Err(ProcessError::Exited { .. })));
    assert!(matches!(node.resume(), Err(ProcessError::Exited { .. })));
    let stopped = node.stop().unwrap();
    assert!(stopped.exited_on_its_own);
    assert_eq!(stopped.status, status);
    assert_eq!(node.last_stdout(), ["bye hello"], "extra env is passed");
    let cwd = std::fs::canonicalize(fx.dir.path()).unwrap();
    eventually("stderr", || !node.last_stderr().is_empty());
    assert_eq!(
        node.last_stderr(),
        [cwd.to_str().unwrap()],
        "runs in work_dir"
    );
    // Writing to it never panics or blocks: every line is eventually counted as dropped.
    let input = node.input();
    for _ in 0..10_000 {
        input.send("x".repeat(100));
    }
    eventually("dropped writes", || input.dropped() == 10_000);
}

#[test]
fn a_crash_report_has_the_last_words_written_just_before_the_exit() {
    let fx = Fixture::new();
    // A burst of output (one buffered printf, well within the pipe's capacity) right before
    // exiting: the readers are still busy with it when the exit is seen.
    let script = "printf 'noise %d\\n' $(seq 0 2999) >&2; \
                  echo '{\"src\":\"n8\",\"dest\":\"c1\",\"body\":{\"last\":1}}'; \
                  echo 'last words' >&2; exit 0";
    let (node, _rx) = fx.spawn("n8", script);
    let status = loop {
        if let Some(status) = node.try_exit_status() {
            break status;
        }
        thread::sleep(Duration::from_micros(200));
    };
    let report = node.crash_report(status);
    assert!(
        report.contains("Node n8 crashed with exit code 0"),
        "{report}"
    );
    assert!(
        report.contains("noise 2999\nlast words"),
        "the report must end with the last stderr lines: {report}"
    );
    assert!(report.contains(r#"{"last":1}"#), "{report}");
    assert!(node.wait_for_readers(Duration::ZERO));
}

#[test]
fn writes_to_a_process_that_died_mid_stream_are_dropped() {
    let fx = Fixture::new();
    // Reads one line, then exits: the rest cannot be written.
    let (node, _rx) = fx.spawn("n5", "read x; exit 3");
    node.send_line("first".into());
    eventually("exit", || node.try_exit_status().is_some());
    assert_eq!(node.try_exit_status().unwrap().code(), Some(3));
    for _ in 0..1000 {
        node.send_line("more".into());
    }
    eventually("dropped writes", || node.dropped_writes() == 1000);
    assert!(node.stop().unwrap().exited_on_its_own);
}

#[test]
fn spawn_errors_are_reported() {
    let fx = Fixture::new();
    let mut cmd = fx.command("n6", "exit 0");
    cmd.bin = fx.dir.path().join("missing");
    let err = NodeProcess::spawn(&cmd, |_: &Arc<str>, _: LineResult| {}).unwrap_err();
    assert!(matches!(err, ProcessError::Spawn { .. }));
    let mut cmd = fx.command("n6", "exit 0");
    cmd.log_path = fx.dir.path().join("missing-dir-is-created").join("n6.log");
    let node = NodeProcess::spawn(&cmd, |_: &Arc<str>, _: LineResult| {}).unwrap();
    node.stop().unwrap();
    assert!(cmd.log_path.exists());
}

#[test]
fn dropping_a_node_kills_it() {
    let fx = Fixture::new();
    let (node, _rx) = fx.spawn("n7", "exec cat");
    let pid = node.pid() as libc::pid_t;
    drop(node);
    // SAFETY: signal 0 only checks for existence. The child was reaped by drop, so the pid
    // is no longer ours; ESRCH (or a recycled pid, vanishingly unlikely) is the outcome.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive);
}

/// Whether a process with this pid is alive (neither gone nor a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn a_node_that_exits_takes_the_helpers_in_its_group_with_it() {
    let fx = Fixture::new();
    // A helper in the node's process group holds the pipes open after the node exits.
    let (node, rx) = fx.spawn("n9", "sleep 1000 & echo $!; exit 0");
    let (_, line) = rx.recv_timeout(WAIT).expect("the helper's pid");
    let helper: u32 = line.unwrap_err().line.trim().parse().unwrap();
    eventually("exit", || node.try_exit_status().is_some());
    eventually("the helper's death", || !alive(helper));
    // Its pipes closed with it: the readers reach the end of the streams.
    assert!(node.wait_for_readers(WAIT));
    assert!(node.stop().unwrap().exited_on_its_own);
}

#[test]
fn a_node_that_never_reads_cannot_queue_more_than_the_limit() {
    let fx = Fixture::new();
    let (node, _rx) = fx.spawn("n10", "exec sleep 1000");
    let input = node.input();
    let line = "x".repeat(1 << 20);
    let lines = (STDIN_QUEUE_BYTES >> 20) + 16;
    let queued = (0..lines).filter(|_| input.send(line.clone())).count() as u64;
    // The pipe takes what fits in its buffer (under 1 MiB here), the queue the rest, up to
    // the limit: everything else is dropped and counted.
    assert!(queued < lines, "nothing was dropped: {queued} lines queued");
    assert!(
        queued <= (STDIN_QUEUE_BYTES >> 20) + 2,
        "{queued} lines queued"
    );
    assert_eq!(input.overflowed(), lines - queued);
    assert_eq!(input.dropped(), lines - queued);
    node.stop().unwrap();
}

#[test]
fn over_long_lines_are_cut_and_reported_in_bounded_memory() {
    use pipes::{LineReader, Read};
    let mut input = Vec::new();
    input.extend_from_slice(b"short\n");
    input.extend_from_slice(&[b'a'; 100]);
    input.extend_from_slice(b"\nok\r\n");
    input.extend_from_slice(&[b'b'; 50]);
    // Read through a tiny buffer, so lines span many reads.
    fn next<R: io::BufRead>(r: &mut LineReader<R>) -> (Read, String) {
        let read = r.next_line().unwrap();
        (read, String::from_utf8(r.line().to_vec()).unwrap())
    }
    let mut r = LineReader::new(io::BufReader::with_capacity(7, &input[..]), 10);
    assert_eq!(next(&mut r), (Read::Line, "short\n".into()));
    assert_eq!(next(&mut r), (Read::TooLong, "a".repeat(10)));
    assert_eq!(next(&mut r), (Read::Line, "ok\r\n".into()));
    // A last line that never ends is reported once, when it passes the limit.
    assert_eq!(next(&mut r), (Read::TooLong, "b".repeat(10)));
    assert_eq!(next(&mut r), (Read::End, String::new()));
    // An unterminated last line within the limit counts, as with Java's readLine.
    let mut r = LineReader::new(&b"x\nlast"[..], 10);
    assert_eq!(next(&mut r), (Read::Line, "x\n".into()));
    assert_eq!(next(&mut r), (Read::Line, "last".into()));
    assert_eq!(next(&mut r), (Read::End, String::new()));
    // Exactly the limit, with or without its newline, is not too long.
    let mut r = LineReader::new(&b"0123456789\n0123456789"[..], 10);
    assert_eq!(next(&mut r).0, Read::Line);
    assert_eq!(next(&mut r).0, Read::Line);
}

#[test]
fn a_line_that_never_ends_is_reported_while_the_node_runs() {
    let fx = Fixture::new();
    // 20 MiB without a newline, then the node stays alive.
    let (node, rx) = fx.spawn(
        "n11",
        "head -c 20971520 /dev/zero | tr '\\0' a; exec sleep 1000",
    );
    let (_, line) = rx
        .recv_timeout(WAIT)
        .expect("a report before the line ends");
    let bad = line.unwrap_err();
    assert_eq!(
        bad.reason,
        LineError::TooLong {
            limit: MAX_LINE_BYTES
        }
    );
    assert!(bad.line.len() < 10_000, "the report keeps an excerpt only");
    assert!(
        node.last_stdout()[0].contains("cut"),
        "{:?}",
        node.last_stdout()
    );
    assert!(node.last_stdout()[0].len() < 10_000);
    node.stop().unwrap();
    // The cut-off rest of the line is skipped, not reported again, and the killed node's
    // unterminated last line is not reported at all.
    assert!(rx.try_recv().is_err());
}

#[test]
fn the_last_line_a_sigkill_cut_short_is_not_reported() {
    let fx = Fixture::new();
    let (node, rx) = fx.spawn("n12", "printf '{\"src\":\"n12\"'; exec sleep 1000");
    // Give the partial line time to reach the reader, which holds it waiting for its end.
    eventually("the partial line read", || {
        std::fs::read_to_string(format!("/proc/{}/stat", node.pid()))
            .is_ok_and(|s| s.contains("(sleep)"))
    });
    thread::sleep(Duration::from_millis(50));
    node.stop().unwrap();
    assert!(node.wait_for_readers(WAIT));
    assert!(
        rx.try_recv().is_err(),
        "a line cut by the runner's SIGKILL was reported"
    );
    // The same unterminated line from a node that exits on its own is a malformed message.
    let (node, rx) = fx.spawn("n13", "printf '{\"src\":\"n13\"'; exit 0");
    let (_, line) = rx.recv_timeout(WAIT).unwrap();
    assert!(matches!(line.unwrap_err().reason, LineError::NotJson(_)));
    eventually("exit", || node.try_exit_status().is_some());
    assert!(node.stop().unwrap().exited_on_its_own);
}

//! End to end: the real `broadcast` binary persisting under a temporary `MURMUR_DATA_DIR`, killed
//! with SIGKILL (at quiet moments and in the middle of a stream of writes) and restarted; every
//! value it acknowledged must be in a read after the restart. Also SIGSTOP/SIGCONT pauses, and the
//! SIGCONT Maelstrom sends to nodes that were not stopped.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One incarnation of the node: its stdin, and its stdout lines arriving on a channel.
struct NodeProc {
    child: Child,
    stdin: ChildStdin,
    out: mpsc::Receiver<Value>,
}

impl NodeProc {
    fn start(data: &Path) -> NodeProc {
        NodeProc::start_with(data, &[])
    }

    /// [`NodeProc::start`] with extra environment variables.
    fn start_with(data: &Path, env: &[(&str, &str)]) -> NodeProc {
        let mut n = NodeProc::spawn_with(data, env);
        let ok = n.init();
        assert_eq!(ok["body"]["type"], "init_ok");
        n
    }

    /// Sends `init` (a cluster of three) and returns the node's answer.
    fn init(&mut self) -> Value {
        self.init_in(&["n0", "n1", "n2"])
    }

    /// Sends `init` for a cluster of `nodes` and returns the node's answer.
    fn init_in(&mut self, nodes: &[&str]) -> Value {
        self.send(json!({"src":"c0","dest":"n0","body":{"type":"init","node_id":"n0","node_ids":nodes,"msg_id":1}}));
        self.wait_for(|v| v["dest"] == "c0", Duration::from_secs(10))
    }

    fn spawn(data: &Path) -> NodeProc {
        NodeProc::spawn_with(data, &[])
    }

    fn spawn_with(data: &Path, env: &[(&str, &str)]) -> NodeProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_broadcast"))
            .envs(env.iter().copied())
            .env("MURMUR_DATA_DIR", data)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn broadcast");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, out) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                let v: Value = serde_json::from_str(&l).expect("stdout line is JSON");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        NodeProc { child, stdin, out }
    }

    fn send(&mut self, v: Value) {
        // The node may already be dead in the streaming test; a broken pipe is fine there.
        let _ = writeln!(self.stdin, "{v}");
        let _ = self.stdin.flush();
    }

    fn broadcast(&mut self, msg_id: u64, value: i64) {
        self.send(json!({"src":"c1","dest":"n0","body":{"type":"broadcast","message":value,"msg_id":msg_id}}));
    }

    fn wait_for(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(e) => panic!("no matching output: {e}"),
            }
        }
    }

    fn read(&mut self, msg_id: u64) -> BTreeSet<i64> {
        self.send(json!({"src":"c1","dest":"n0","body":{"type":"read","msg_id":msg_id}}));
        self.read_reply(msg_id, Duration::from_secs(10))
    }

    /// The reply to read `msg_id`, sent earlier.
    fn read_reply(&mut self, msg_id: u64, timeout: Duration) -> BTreeSet<i64> {
        let r = self.wait_for(
            |v| v["body"]["in_reply_to"] == msg_id && v["dest"] == "c1",
            timeout,
        );
        assert_eq!(r["body"]["type"], "read_ok", "{r}");
        r["body"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, sig) },
            0
        );
    }

    /// No line arrives within `d`.
    fn silent_for(&self, d: Duration) -> bool {
        self.out.recv_timeout(d).is_err()
    }

    /// SIGKILL, as Maelstrom's kill fault does.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[test]
fn acknowledged_values_survive_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let mut n = NodeProc::start(data.path());
    for v in 0..50 {
        n.broadcast(100 + v as u64, v);
        let ok = n.wait_for(
            |m| m["body"]["in_reply_to"] == 100 + v as u64,
            Duration::from_secs(10),
        );
        assert_eq!(ok["body"]["type"], "broadcast_ok");
    }
    n.kill();
    let mut n = NodeProc::start(data.path());
    let want: BTreeSet<i64> = (0..50).collect();
    assert_eq!(n.read(1000), want);
    // The restarted node keeps accepting and persisting.
    n.broadcast(1001, 50);
    n.wait_for(
        |m| m["body"]["in_reply_to"] == 1001,
        Duration::from_secs(10),
    );
    n.kill();
    let mut n = NodeProc::start(data.path());
    let want: BTreeSet<i64> = (0..=50).collect();
    assert_eq!(n.read(1002), want);
    n.kill();
}

#[test]
fn kills_in_the_middle_of_a_stream_lose_nothing_acknowledged() {
    kill_mid_stream(&[], 0);
}

/// The same with a compaction minimum so low that the node compacts its log again and again, so
/// that kills also strike between compactions and appends. Each round starts with values written
/// one at a time (one record each: a log several times its state, which a compaction shrinks).
#[test]
fn kills_while_the_log_is_compacted_lose_nothing_acknowledged() {
    let data = kill_mid_stream(&[("MURMUR_COMPACT_MIN_BYTES", "2048")], 60);
    // Only a compaction writes values records (tag 5): the log was compacted.
    let opened = murmur::store::Store::open(&data.path().join("n0"), false).unwrap();
    assert!(
        opened.records.iter().any(|r| r.first() == Some(&5)),
        "no compaction happened"
    );
    assert!(!data
        .path()
        .join("n0")
        .join(murmur::store::COMPACT_NAME)
        .exists());
}

/// Rounds of: restart, check, `one_by_one` broadcasts each awaited, a pipelined burst killed
/// partway, check after a restart.
fn kill_mid_stream(env: &[(&str, &str)], one_by_one: usize) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let mut acked = BTreeSet::new();
    let mut next = 0i64;
    for round in 0..6u64 {
        let mut n = NodeProc::start_with(data.path(), env);
        // Everything acknowledged by earlier incarnations is still here.
        let held = n.read(1_000_000 + round);
        let lost: Vec<_> = acked.difference(&held).collect();
        assert!(lost.is_empty(), "round {round}: lost {lost:?}");
        for _ in 0..one_by_one {
            n.broadcast(next as u64, next);
            let ok = n.wait_for(
                |m| m["body"]["in_reply_to"] == next,
                Duration::from_secs(10),
            );
            assert_eq!(ok["body"]["type"], "broadcast_ok");
            acked.insert(next);
            next += 1;
        }
        // Pipeline a burst of writes and kill the node partway through its acknowledgements.
        let burst = 400;
        for _ in 0..burst {
            n.broadcast(next as u64, next);
            next += 1;
        }
        let wanted = 50 + 60 * round as usize;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = 0;
        while seen < wanted && Instant::now() < deadline {
            if let Ok(v) = n.out.recv_timeout(Duration::from_millis(50)) {
                if v["body"]["type"] == "broadcast_ok" {
                    acked.insert(v["body"]["in_reply_to"].as_i64().unwrap());
                    seen += 1;
                }
            }
        }
        n.kill();
        // Acknowledgements the node wrote before it died count too.
        for v in n.out.iter() {
            if v["body"]["type"] == "broadcast_ok" {
                acked.insert(v["body"]["in_reply_to"].as_i64().unwrap());
            }
        }
        let mut n2 = NodeProc::start_with(data.path(), env);
        let held = n2.read(2_000_000 + round);
        let lost: Vec<_> = acked.difference(&held).collect();
        assert!(lost.is_empty(), "round {round}: lost {lost:?}");
        n2.kill();
    }
    assert!(
        acked.len() >= 50,
        "the test acknowledged too little to mean anything"
    );
    data
}

#[test]
fn a_second_process_on_the_same_data_directory_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let mut first = NodeProc::start(data.path());
    first.broadcast(1, 7);
    first.wait_for(|m| m["body"]["in_reply_to"] == 1, Duration::from_secs(10));
    let mut second = NodeProc::spawn(data.path());
    let refused = second.init();
    assert_eq!(refused["body"]["type"], "error", "{refused}");
    assert_eq!(refused["body"]["code"], 13, "crash: it cannot keep writes");
    let text = refused["body"]["text"].as_str().unwrap();
    assert!(text.contains("locked by another process"), "{text}");
    let status = second.child.wait().unwrap();
    assert!(!status.success(), "the refused node exits with an error");
    // The first node is untouched and keeps serving.
    assert_eq!(first.read(2), BTreeSet::from([7]));
    first.kill();
    // Once it is gone, a restart opens the log at once.
    let mut again = NodeProc::start(data.path());
    assert_eq!(again.read(3), BTreeSet::from([7]));
    again.kill();
}

/// Without `MURMUR_DATA_DIR` a node keeps its log under `<tmp>/murmur/<parent>/`; a node that
/// starts there removes the folders of runs whose parent process has ended, and keeps its own.
#[test]
fn the_default_location_is_cleaned_of_ended_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let init = r#"{"src":"c0","dest":"n0","body":{"type":"init","node_id":"n0","node_ids":["n0"],"msg_id":1}}"#;
    let bcast = r#"{"src":"c1","dest":"n0","body":{"type":"broadcast","message":1,"msg_id":2}}"#;
    // A run whose parent (this shell) ends right after its node.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '%s\\n%s\\n' '{init}' '{bcast}' | '{}'",
            env!("CARGO_BIN_EXE_broadcast")
        ))
        .env("TMPDIR", tmp.path())
        .env_remove("MURMUR_DATA_DIR")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let runs = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(tmp.path().join("murmur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let ended = runs();
    assert_eq!(ended.len(), 1, "{ended:?}");
    let log = tmp
        .path()
        .join("murmur")
        .join(&ended[0])
        .join("n0")
        .join("records.log");
    assert!(
        log.is_file(),
        "the first run persisted under the default location"
    );
    // A node of another run (this test process is its parent, and alive) starts there.
    let mut child = Command::new(env!("CARGO_BIN_EXE_broadcast"))
        .env("TMPDIR", tmp.path())
        .env_remove("MURMUR_DATA_DIR")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.as_mut().unwrap(), "{init}").unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("init_ok"), "{line}");
    let now = runs();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(
        now, ended,
        "the ended run's folder is gone, the new run's is there"
    );
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

/// Maelstrom's `resume` targets every node, so a node that was never stopped gets SIGCONT too. If it
/// then stays idle for longer than the reply deadline, the next client request is fresh and must be
/// answered (it was once dropped as if it had waited out a pause: the resume was only noticed with
/// that request, and the request dated back to before the idle spell).
#[test]
fn a_sigcont_to_a_running_idle_node_drops_nothing() {
    let data = tempfile::tempdir().unwrap();
    let env = [("MURMUR_REPLY_DEADLINE_MS", "300")];
    let mut n = NodeProc::spawn_with(data.path(), &env);
    // Alone, so that nothing is left to gossip and the node goes fully idle.
    assert_eq!(n.init_in(&["n0"])["body"]["type"], "init_ok");
    n.broadcast(1, 7);
    n.wait_for(|m| m["body"]["in_reply_to"] == 1, Duration::from_secs(10));
    n.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(1_500)); // idle: past the deadline and the stall window
    assert_eq!(n.read(2), BTreeSet::from([7]));
    n.kill();
}

/// A real pause still drops what waited out the deadline in the pipe (Maelstrom's client has given up
/// on it, and a late reply would cut the node's output off), and serves what comes after.
#[test]
fn requests_queued_during_a_long_pause_are_dropped_and_later_ones_served() {
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("MURMUR_REPLY_DEADLINE_MS", "300"),
        ("MURMUR_STALL_MS", "200"),
    ];
    let mut n = NodeProc::spawn_with(data.path(), &env);
    assert_eq!(n.init()["body"]["type"], "init_ok");
    n.signal(libc::SIGSTOP);
    n.send(json!({"src":"c1","dest":"n0","body":{"type":"read","msg_id":5}}));
    std::thread::sleep(Duration::from_millis(800));
    n.signal(libc::SIGCONT);
    assert!(
        n.silent_for(Duration::from_millis(600)),
        "the stale read was answered"
    );
    assert_eq!(n.read(6), BTreeSet::new());
    n.kill();
}

//! End to end: the real `broadcast` binary persisting under a temporary `MURMUR_DATA_DIR`, killed
//! with SIGKILL (at quiet moments and in the middle of a stream of writes) and restarted; every
//! value it acknowledged must be in a read after the restart.

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
        let mut child = Command::new(env!("CARGO_BIN_EXE_broadcast"))
            .env("MURMUR_DATA_DIR", data)
            .env("RUST_LOG", "warn")
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
        let mut n = NodeProc { child, stdin, out };
        n.send(json!({"src":"c0","dest":"n0","body":{"type":"init","node_id":"n0","node_ids":["n0","n1","n2"],"msg_id":1}}));
        let ok = n.wait_for(|v| v["dest"] == "c0", Duration::from_secs(10));
        assert_eq!(ok["body"]["type"], "init_ok");
        n
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
        let r = self.wait_for(
            |v| v["body"]["in_reply_to"] == msg_id && v["dest"] == "c1",
            Duration::from_secs(10),
        );
        assert_eq!(r["body"]["type"], "read_ok", "{r}");
        r["body"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
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
    let data = tempfile::tempdir().unwrap();
    let mut acked = BTreeSet::new();
    let mut next = 0i64;
    for round in 0..6u64 {
        let mut n = NodeProc::start(data.path());
        // Everything acknowledged by earlier incarnations is still here.
        let held = n.read(1_000_000 + round);
        let lost: Vec<_> = acked.difference(&held).collect();
        assert!(lost.is_empty(), "round {round}: lost {lost:?}");
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
        let mut n2 = NodeProc::start(data.path());
        let held = n2.read(2_000_000 + round);
        let lost: Vec<_> = acked.difference(&held).collect();
        assert!(lost.is_empty(), "round {round}: lost {lost:?}");
        n2.kill();
    }
    assert!(
        acked.len() >= 50,
        "the test acknowledged too little to mean anything"
    );
}

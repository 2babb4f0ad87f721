//! The efficiency issue's reference star, as a cost baseline for `just bench`: the simplest
//! broadcast design that reaches the default setting's latency, with none of murmur's fault
//! tolerance. It answers "what does a node cost on this machine at this many wake-ups?", so the
//! node's CPU figure can be read as a ratio measured in the same bench run rather than as an
//! absolute that depends on the machine.
//!
//! Design (the issue's "star whose leaves forward new values to a hub at once and whose hub
//! pushes each leaf what it lacks every T ms, only when something is pending"):
//! - the hub is the first node of `init`'s `node_ids`; the topology message is ignored;
//! - a leaf forwards each new client value to the hub at once, in one `fwd` message;
//! - every `REFERENCE_STAR_T_MS` milliseconds (default 100) the hub sends each leaf, in one
//!   `push` message, every value it has learned since its last push to that leaf and that did not
//!   come from that leaf; nothing when there is nothing new;
//! - no acknowledgements, retries, persistence or catch-up: a message lost to a partition is a
//!   value lost for good, and a restarted node forgets everything. Valid without faults only.
//!
//! Deliberately plain: one thread, `poll(2)` on stdin with the hub's tick as timeout, one write
//! per wake-up, `serde_json::Value` messages. Values are JSON integers (what Maelstrom's broadcast
//! workload sends); anything else, and any line that is not a Maelstrom message, is ignored.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

struct Star {
    me: String,
    nodes: Vec<String>,
    /// Every value known, in arrival order, with the index (in `nodes`) of the node it came from.
    log: Vec<(u64, usize)>,
    seen: HashSet<u64>,
    /// Per node: how much of `log` the hub has pushed to it.
    pushed: Vec<usize>,
    out: Vec<u8>,
}

impl Star {
    fn is_hub(&self) -> bool {
        self.nodes.first() == Some(&self.me)
    }

    fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n == name)
            .unwrap_or(usize::MAX)
    }

    fn send(&mut self, dest: &str, body: Value) {
        let line = json!({"src": self.me, "dest": dest, "body": body});
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, &line);
        self.out.push(b'\n');
    }

    /// Records `v` (from node index `from`); whether it was new.
    fn learn(&mut self, v: u64, from: usize) -> bool {
        let new = self.seen.insert(v);
        if new {
            self.log.push((v, from));
        }
        new
    }

    fn handle(&mut self, line: &[u8]) {
        let Ok(msg) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let src = msg["src"].as_str().unwrap_or_default().to_string();
        let body = &msg["body"];
        let reply = |mut b: Value| {
            b["in_reply_to"] = body["msg_id"].clone();
            b
        };
        match body["type"].as_str().unwrap_or_default() {
            "init" => {
                self.me = body["node_id"].as_str().unwrap_or_default().to_string();
                self.nodes = body["node_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect();
                self.pushed = vec![0; self.nodes.len()];
                self.send(&src, reply(json!({"type": "init_ok"})));
            }
            "topology" => self.send(&src, reply(json!({"type": "topology_ok"}))),
            "read" => {
                let values: Vec<u64> = self.log.iter().map(|&(v, _)| v).collect();
                self.send(&src, reply(json!({"type": "read_ok", "messages": values})));
            }
            "broadcast" => {
                if let Some(v) = body["message"].as_u64() {
                    let me = self.index(&self.me);
                    if self.learn(v, me) && !self.is_hub() {
                        if let Some(hub) = self.nodes.first().cloned() {
                            self.send(&hub, json!({"type": "fwd", "values": [v]}));
                        }
                    }
                }
                self.send(&src, reply(json!({"type": "broadcast_ok"})));
            }
            "fwd" | "push" => {
                let from = self.index(&src);
                for v in body["values"].as_array().into_iter().flatten() {
                    if let Some(v) = v.as_u64() {
                        self.learn(v, from);
                    }
                }
            }
            _ => {}
        }
    }

    /// The hub's tick: each leaf gets what it lacks, if anything.
    fn push(&mut self) {
        for p in 1..self.nodes.len() {
            let values: Vec<u64> = self.log[self.pushed[p]..]
                .iter()
                .filter(|&&(_, from)| from != p)
                .map(|&(v, _)| v)
                .collect();
            self.pushed[p] = self.log.len();
            if !values.is_empty() {
                let dest = self.nodes[p].clone();
                self.send(&dest, json!({"type": "push", "values": values}));
            }
        }
    }
}

/// Waits until stdin is readable or `timeout` has passed; whether it is readable (or closed).
fn wait_readable(timeout: Option<Duration>) -> bool {
    let ms = timeout.map_or(-1, |t| {
        // Round up: waking a little early would only spin until the tick is due.
        i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
    });
    let mut fd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    n > 0 || (n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted)
}

fn main() {
    let period = Duration::from_millis(
        std::env::var("REFERENCE_STAR_T_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&ms| ms > 0)
            .unwrap_or(100),
    );
    let mut star = Star {
        me: String::new(),
        nodes: vec![],
        log: vec![],
        seen: HashSet::new(),
        pushed: vec![],
        out: vec![],
    };
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut chunk = vec![0u8; 1 << 16];
    let mut pending: Vec<u8> = Vec::new();
    let mut next_push = Instant::now() + period;
    loop {
        let timeout = star
            .is_hub()
            .then(|| next_push.saturating_duration_since(Instant::now()));
        if wait_readable(timeout) {
            match stdin.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
            let mut start = 0;
            while let Some(len) = pending[start..].iter().position(|&b| b == b'\n') {
                star.handle(&pending[start..start + len]);
                start += len + 1;
            }
            pending.drain(..start);
        }
        if star.is_hub() && Instant::now() >= next_push {
            star.push();
            next_push += period;
        }
        if !star.out.is_empty() {
            if stdout
                .write_all(&star.out)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                break;
            }
            star.out.clear();
        }
    }
}

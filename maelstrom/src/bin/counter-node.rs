//! A g-counter node over a Maelstrom KV service, for the runner's own tests (the service and the
//! workload end to end). Plain synchronous code on purpose: a fixture, not an example.
//!
//! `counter-node <mode> [service]`, service `seq-kv` by default (any KV service works), mode one
//! of:
//! - `cas`: the intended way. The counter is one key. An `add` reads it and cas-es it from what it
//!   read to that plus the delta (creating it if missing), and reads again after a failed cas, so
//!   an add is counted exactly once. A `read` first writes a value unique to this node (its pid and
//!   a counter of its own, under a key of its own), which moves the node to the service's newest
//!   state, and only then reads the counter: `seq-kv` may otherwise serve a stale state for ever.
//! - `blind`: the same, except that an `add` writes what it read plus the delta, without a cas:
//!   concurrent adds overwrite each other (and `seq-kv`'s stale reads make it worse), so adds that
//!   were acknowledged are lost. Its reads are as fresh as `cas`'s, so lost adds are the only bug.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};

/// The key holding the counter.
const KEY: &str = "counter";

/// What a request to the service is for.
enum Step {
    /// An add read the counter (next: cas or write).
    AddRead { delta: i64 },
    /// An add's cas or blind write (next: acknowledge, or read again after a failed cas).
    AddWrite { delta: i64 },
    /// A read's unique write (next: read the counter).
    ReadSync,
    /// A read's read of the counter (next: answer the client).
    ReadValue,
}

/// A client request in progress.
struct Job {
    client: String,
    msg_id: Value,
    step: Step,
}

struct Node {
    me: String,
    blind: bool,
    service: String,
    next_msg_id: u64,
    syncs: u64,
    jobs: HashMap<u64, Job>,
    out: Vec<Value>,
}

impl Node {
    fn call(&mut self, body: Value, job: Job) {
        self.next_msg_id += 1;
        let mut body = body;
        body["msg_id"] = json!(self.next_msg_id);
        self.out
            .push(json!({"src": self.me, "dest": self.service, "body": body}));
        self.jobs.insert(self.next_msg_id, job);
    }

    fn answer(&mut self, job: &Job, mut body: Value) {
        body["in_reply_to"] = job.msg_id.clone();
        self.out
            .push(json!({"src": self.me, "dest": job.client, "body": body}));
    }

    fn read_counter(&mut self, job: Job) {
        self.call(json!({"type": "read", "key": KEY}), job);
    }

    /// A reply from the service to our request `irt`.
    fn on_reply(&mut self, irt: u64, body: &Value) {
        let Some(job) = self.jobs.remove(&irt) else {
            return;
        };
        let ok = body["type"] != "error";
        // A missing counter is 0.
        let value = if ok {
            body["value"].as_i64().unwrap_or(0)
        } else {
            0
        };
        match job.step {
            Step::AddRead { delta } => {
                let request = if self.blind {
                    json!({"type": "write", "key": KEY, "value": value + delta})
                } else {
                    json!({"type": "cas", "key": KEY, "from": value, "to": value + delta,
                           "create_if_not_exists": true})
                };
                self.call(
                    request,
                    Job {
                        step: Step::AddWrite { delta },
                        ..job
                    },
                );
            }
            Step::AddWrite { .. } if ok => self.answer(&job, json!({"type": "add_ok"})),
            // The cas failed: someone else moved the counter, or we read a stale state.
            Step::AddWrite { delta } => self.read_counter(Job {
                step: Step::AddRead { delta },
                ..job
            }),
            Step::ReadSync => self.read_counter(Job {
                step: Step::ReadValue,
                ..job
            }),
            Step::ReadValue => self.answer(&job, json!({"type": "read_ok", "value": value})),
        }
    }

    /// A client request.
    fn on_request(&mut self, src: &str, body: &Value) {
        let job = |step| Job {
            client: src.to_string(),
            msg_id: body["msg_id"].clone(),
            step,
        };
        match body["type"].as_str().unwrap_or_default() {
            "add" => {
                let delta = body["delta"].as_i64().unwrap_or(0);
                self.read_counter(job(Step::AddRead { delta }));
            }
            "read" => {
                // Unique across restarts too (the pid tells incarnations apart): rewriting the
                // value already there changes nothing, so it would not move the node forward.
                self.syncs += 1;
                let key = format!("sync-{}", self.me);
                let value = format!("{}-{}", std::process::id(), self.syncs);
                self.call(
                    json!({"type": "write", "key": key, "value": value}),
                    job(Step::ReadSync),
                );
            }
            _ => {}
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let service = args.next().unwrap_or_else(|| "seq-kv".to_string());
    if mode != "cas" && mode != "blind" {
        eprintln!("usage: counter-node cas|blind [service]");
        std::process::exit(2);
    }
    let mut node = Node {
        me: String::new(),
        blind: mode == "blind",
        service,
        next_msg_id: 0,
        syncs: 0,
        jobs: HashMap::new(),
        out: Vec::new(),
    };
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let src = msg["src"].as_str().unwrap_or_default().to_string();
        let body = &msg["body"];
        if body["type"] == "init" {
            node.me = body["node_id"].as_str().unwrap_or_default().to_string();
            node.out.push(json!({"src": node.me, "dest": src,
                "body": {"type": "init_ok", "in_reply_to": body["msg_id"]}}));
        } else if let Some(irt) = body["in_reply_to"].as_u64() {
            node.on_reply(irt, body);
        } else {
            node.on_request(&src, body);
        }
        for m in node.out.drain(..) {
            let _ = writeln!(stdout, "{m}");
        }
        let _ = stdout.flush();
    }
}

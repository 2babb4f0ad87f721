//! Deliberately broken Maelstrom nodes, for the runner's own tests: each must be judged invalid
//! (or aborted). Plain synchronous code on purpose: these are fixtures, not examples.
//!
//! `broken-node <mode>` where mode is one of:
//! - `never-gossip`: a broadcast node that keeps values to itself.
//! - `fire-and-forget`: a broadcast node that forwards each value once, with no retry, so values
//!   sent into a partition are lost.
//! - `extra-field`: a broadcast node whose `broadcast_ok` also carries `message` (Maelstrom's
//!   closed reply schema rejects it).
//! - `duplicate-ids`: a unique-ids node that counts from 0 on every node.
//! - `crash-after=N`: an echo/broadcast node that logs each message's type on stderr and exits
//!   (status 0) after N input lines.
//! - `bad-envelope`: an echo node whose replies carry an extra top-level key (`"extra"`), which
//!   Maelstrom's closed envelope schema rejects: the runner stops reading its output, so every
//!   echo times out.
//! - `bad-topology`: a broadcast node whose `topology_ok` carries an extra key, which aborts the
//!   test during setup. At `init` it writes its pid to `<id>.pid` in its working directory, so a
//!   test can check that the runner stopped it, and where it ran.
//! - `flood=K` (a load generator, not a broken node): after `init` it sends K `token` messages to
//!   other nodes and forwards every token it receives to another node at once, so K tokens per node
//!   circulate for the whole run. With latency L ms the network routes about K·N/L messages per
//!   millisecond: `bench --runner-capacity` uses it to measure the runner.

use serde_json::{json, Value};
use std::io::{BufRead, Write};

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let crash_after: Option<usize> = mode
        .strip_prefix("crash-after=")
        .and_then(|n| n.parse().ok());
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut me = String::new();
    let mut others: Vec<String> = vec![];
    let mut values: Vec<Value> = vec![];
    let mut counter = 0u64;
    let mut lcg = u64::from(std::process::id());
    for (i, line) in stdin.lock().lines().enumerate() {
        let Ok(line) = line else { break };
        if crash_after.is_some_and(|n| i >= n) {
            eprintln!("crashing on purpose after {i} lines");
            std::process::exit(0);
        }
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let src = msg["src"].as_str().unwrap_or_default().to_string();
        let body = &msg["body"];
        if crash_after.is_some() {
            eprintln!("got {} from {src}", body["type"]);
        }
        if body["type"] == "init" {
            me = body["node_id"].as_str().unwrap_or_default().to_string();
        }
        let reply = |extra: Value| {
            let mut b = extra;
            b["in_reply_to"] = body["msg_id"].clone();
            json!({"src": me, "dest": src, "body": b})
        };
        let mut send: Vec<Value> = vec![];
        let flood: Option<usize> = mode.strip_prefix("flood=").and_then(|k| k.parse().ok());
        let mut next_peer = |others: &Vec<String>| -> Option<String> {
            // A small LCG is plenty to spread tokens; no seed needed for a load generator.
            lcg = lcg
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (!others.is_empty()).then(|| others[(lcg >> 33) as usize % others.len()].clone())
        };
        match body["type"].as_str().unwrap_or_default() {
            "init" => {
                others = body["node_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|n| *n != me)
                    .map(String::from)
                    .collect();
                if mode == "bad-topology" {
                    let _ = std::fs::write(format!("{me}.pid"), std::process::id().to_string());
                }
                send.push(reply(json!({"type": "init_ok"})));
                for k in 0..flood.unwrap_or(0) {
                    if let Some(o) = next_peer(&others) {
                        send.push(json!({"src": me, "dest": o, "body": {"type": "token", "k": k}}));
                    }
                }
            }
            "token" => {
                if let Some(o) = next_peer(&others) {
                    send.push(json!({"src": me, "dest": o, "body": body}));
                }
            }
            "echo" => {
                let mut m = reply(json!({"type": "echo_ok", "echo": body["echo"]}));
                if mode == "bad-envelope" {
                    m["extra"] = json!(1);
                }
                send.push(m);
            }
            "generate" => {
                send.push(reply(json!({"type": "generate_ok", "id": counter})));
                counter += 1;
            }
            "topology" if mode == "bad-topology" => {
                send.push(reply(json!({"type": "topology_ok", "extra": true})))
            }
            "topology" => send.push(reply(json!({"type": "topology_ok"}))),
            "read" => send.push(reply(json!({"type": "read_ok", "messages": values}))),
            "broadcast" => {
                let v = body["message"].clone();
                if !values.contains(&v) {
                    values.push(v.clone());
                }
                if mode == "extra-field" {
                    send.push(reply(json!({"type": "broadcast_ok", "message": v})));
                } else {
                    send.push(reply(json!({"type": "broadcast_ok"})));
                }
                if mode == "fire-and-forget" || mode == "extra-field" {
                    for o in &others {
                        send.push(
                            json!({"src": me, "dest": o, "body": {"type": "relay", "message": v}}),
                        );
                    }
                }
            }
            "relay" => {
                let v = body["message"].clone();
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            _ => {}
        }
        for m in send {
            let _ = writeln!(out, "{m}");
        }
        let _ = out.flush();
    }
}

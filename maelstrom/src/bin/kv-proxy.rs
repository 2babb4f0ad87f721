//! A lin-kv node that stores nothing itself, for the runner's own tests of the lin-kv workload and
//! its linearizability checker end to end. `kv-proxy [service]` (`lin-kv` by default) forwards
//! every client `read`, `write` and `cas` to that Maelstrom KV service and relays the answer
//! (including error replies, such as 20 key-does-not-exist and 22 precondition-failed) back to
//! the client.
//!
//! Over `lin-kv` the node is exactly as linearizable as the service, so the checker must find it
//! valid; over `lww-kv`, whose replicas never converge, reads go stale, so it must not.
//! Plain synchronous code on purpose: a fixture, not an example.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};

fn main() {
    let service = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "lin-kv".to_string());
    let mut me = String::new();
    let mut next_msg_id: u64 = 0;
    // Our request id → (client, the client's msg_id).
    let mut pending: HashMap<u64, (String, Value)> = HashMap::new();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let src = msg["src"].as_str().unwrap_or_default().to_string();
        let body = msg["body"].as_object().cloned().unwrap_or_default();
        let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
        let out = if kind == "init" {
            me = body["node_id"].as_str().unwrap_or_default().to_string();
            json!({"src": me, "dest": src,
                   "body": {"type": "init_ok", "in_reply_to": body.get("msg_id")}})
        } else if let Some(irt) = body.get("in_reply_to").and_then(Value::as_u64) {
            // The service's answer: relay it with the client's msg_id, keeping only the fields
            // the client's closed schema allows.
            let Some((client, client_msg_id)) = pending.remove(&irt) else {
                continue;
            };
            let mut reply = Map::new();
            for field in ["type", "value", "code", "text"] {
                if let Some(v) = body.get(field) {
                    reply.insert(field.into(), v.clone());
                }
            }
            if kind != "read_ok" && kind != "error" {
                reply.remove("value");
            }
            reply.insert("in_reply_to".into(), client_msg_id);
            json!({"src": me, "dest": client, "body": reply})
        } else if matches!(kind, "read" | "write" | "cas") {
            next_msg_id += 1;
            pending.insert(
                next_msg_id,
                (src, body.get("msg_id").cloned().unwrap_or(Value::Null)),
            );
            let mut request = body.clone();
            request.insert("msg_id".into(), json!(next_msg_id));
            json!({"src": me, "dest": service, "body": request})
        } else {
            continue;
        };
        let _ = writeln!(stdout, "{out}");
        let _ = stdout.flush();
    }
}

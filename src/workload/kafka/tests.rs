//! The handlers of both designs, driven directly: the local design's durability and forwarding
//! rules, and the lin-kv design's conversation with a linearizable stand-in for `lin-kv`. The
//! runner's simulator and end-to-end tests (`maelstrom/tests/kafka.rs`) judge whole runs.

use super::*;
use crate::node::{Ctx, InitInfo, Message, Workload};
use serde_json::json;
use std::collections::HashMap;

fn info(me: &str, n: usize, recovered: Vec<Vec<u8>>) -> InitInfo {
    InitInfo {
        node_id: me.into(),
        node_ids: (0..n).map(|i| format!("n{i}")).collect(),
        boot_unix_micros: 0,
        recovered,
    }
}

fn m(src: &str, dest: &str, body: Value) -> Message<Msg> {
    serde_json::from_value(json!({"src": src, "dest": dest, "body": body})).expect("a message")
}

/// The bodies sent, as JSON.
fn out(ctx: &mut Ctx<Msg>) -> Vec<Value> {
    ctx.drain()
        .iter()
        .map(|m| {
            let mut v = serde_json::to_value(m).expect("json");
            v["body"]["dest"] = v["dest"].clone();
            v["body"].clone()
        })
        .collect()
}

#[test]
fn the_local_design_acknowledges_and_shows_sends_only_once_durable() {
    let mut n = Local::init(&info("n0", 1, vec![]), &LocalConfig::default(), 0);
    let mut ctx = Ctx::new("n0");
    let send = |v: i64, id: u64| {
        m(
            "c1",
            "n0",
            json!({"type": "send", "key": "k", "msg": v, "msg_id": id}),
        )
    };
    n.handle(send(10, 1), 0, &mut ctx);
    n.handle(send(11, 2), 0, &mut ctx);
    assert!(
        out(&mut ctx).is_empty(),
        "no send_ok before the records are durable"
    );
    let poll = m(
        "c2",
        "n0",
        json!({"type": "poll", "offsets": {"k": 0}, "msg_id": 3}),
    );
    n.handle(poll.clone(), 0, &mut ctx);
    assert_eq!(
        out(&mut ctx)[0]["msgs"],
        json!({}),
        "nothing durable to show"
    );
    let records = n.take_records();
    assert_eq!(records.len(), 2);
    n.persisted(1, 0, &mut ctx);
    let replies = out(&mut ctx);
    assert_eq!(replies.len(), 1);
    assert_eq!(
        (replies[0]["type"].clone(), replies[0]["offset"].clone()),
        (json!("send_ok"), json!(0))
    );
    n.handle(poll.clone(), 0, &mut ctx);
    assert_eq!(out(&mut ctx)[0]["msgs"], json!({"k": [[0, 10]]}));
    n.persisted(2, 0, &mut ctx);
    assert_eq!(out(&mut ctx)[0]["offset"], json!(1));

    // Commits: raised only, acknowledged once durable, listed.
    let commit = m(
        "c2",
        "n0",
        json!({"type": "commit_offsets", "offsets": {"k": 1}, "msg_id": 4}),
    );
    n.handle(commit, 0, &mut ctx);
    assert!(out(&mut ctx).is_empty());
    let mut records = records;
    records.extend(n.take_records());
    n.persisted(3, 0, &mut ctx);
    assert_eq!(out(&mut ctx)[0]["type"], json!("commit_offsets_ok"));
    let lower = m(
        "c2",
        "n0",
        json!({"type": "commit_offsets", "offsets": {"k": 0}, "msg_id": 5}),
    );
    n.handle(lower, 0, &mut ctx);
    assert_eq!(
        out(&mut ctx)[0]["type"],
        json!("commit_offsets_ok"),
        "nothing to persist"
    );
    let list = m(
        "c2",
        "n0",
        json!({"type": "list_committed_offsets", "keys": ["k", "x"], "msg_id": 6}),
    );
    n.handle(list.clone(), 0, &mut ctx);
    assert_eq!(out(&mut ctx)[0]["offsets"], json!({"k": 1}));

    // A restart from the records rebuilds the same offsets and commits.
    let mut r = Local::init(&info("n0", 1, records), &LocalConfig::default(), 0);
    r.handle(poll, 0, &mut ctx);
    assert_eq!(out(&mut ctx)[0]["msgs"], json!({"k": [[0, 10], [1, 11]]}));
    r.handle(list, 0, &mut ctx);
    assert_eq!(out(&mut ctx)[0]["offsets"], json!({"k": 1}));
    r.handle(send(12, 7), 0, &mut ctx);
    let _ = r.take_records();
    r.persisted(1, 0, &mut ctx);
    assert_eq!(out(&mut ctx)[0]["offset"], json!(2));
}

#[test]
fn without_persistence_the_local_design_answers_at_once() {
    let cfg = LocalConfig { persist: false };
    assert!(!Local::persistent(&cfg));
    let mut n = Local::init(&info("n0", 1, vec![]), &cfg, 0);
    let mut ctx = Ctx::new("n0");
    n.handle(
        m(
            "c1",
            "n0",
            json!({"type": "send", "key": "k", "msg": 1, "msg_id": 1}),
        ),
        0,
        &mut ctx,
    );
    assert_eq!(out(&mut ctx)[0]["offset"], json!(0));
    assert!(n.take_records().is_empty());
    n.handle(
        m(
            "c1",
            "n0",
            json!({"type": "poll", "offsets": {"k": 0, "z": 3}, "msg_id": 2}),
        ),
        0,
        &mut ctx,
    );
    assert_eq!(out(&mut ctx)[0]["msgs"], json!({"k": [[0, 1]]}));
}

#[test]
fn non_owners_forward_to_the_first_node_and_relay_its_reply() {
    let mut n1 = Local::init(&info("n1", 3, vec![]), &LocalConfig::default(), 0);
    let mut ctx = Ctx::new("n1");
    n1.handle(
        m(
            "c4",
            "n1",
            json!({"type": "send", "key": "k", "msg": 5, "msg_id": 9}),
        ),
        0,
        &mut ctx,
    );
    let fwd = out(&mut ctx);
    assert_eq!(fwd.len(), 1);
    assert_eq!(
        (fwd[0]["dest"].clone(), fwd[0]["type"].clone()),
        (json!("n0"), json!("send"))
    );
    let id = fwd[0]["msg_id"].clone();
    // A reply from anyone but the owner, or to nothing forwarded, is dropped.
    n1.handle(
        m(
            "n2",
            "n1",
            json!({"type": "send_ok", "offset": 3, "in_reply_to": id}),
        ),
        0,
        &mut ctx,
    );
    n1.handle(
        m(
            "n0",
            "n1",
            json!({"type": "send_ok", "offset": 3, "in_reply_to": 999}),
        ),
        0,
        &mut ctx,
    );
    assert!(out(&mut ctx).is_empty());
    n1.handle(
        m(
            "n0",
            "n1",
            json!({"type": "send_ok", "offset": 3, "in_reply_to": id}),
        ),
        0,
        &mut ctx,
    );
    let relayed = out(&mut ctx);
    assert_eq!(
        relayed,
        vec![json!({"type": "send_ok", "offset": 3, "in_reply_to": 9, "dest": "c4"})]
    );
    // Forwarded requests are forgotten after their timeout.
    n1.handle(
        m(
            "c4",
            "n1",
            json!({"type": "poll", "offsets": {}, "msg_id": 10}),
        ),
        0,
        &mut ctx,
    );
    let id = out(&mut ctx)[0]["msg_id"].clone();
    n1.handle(
        m(
            "c4",
            "n1",
            json!({"type": "read", "key": "x", "msg_id": 11}),
        ),
        FORWARD_TIMEOUT_MS,
        &mut ctx,
    );
    assert_eq!(out(&mut ctx)[0]["code"], json!(10));
    n1.handle(
        m(
            "n0",
            "n1",
            json!({"type": "poll_ok", "msgs": {}, "in_reply_to": id}),
        ),
        FORWARD_TIMEOUT_MS,
        &mut ctx,
    );
    assert!(out(&mut ctx).is_empty());
}

/// A linearizable `lin-kv` answering every request in `ctx` at once; returns the node's replies
/// to clients. `interfere` runs before each request is served (to make a cas lose).
fn run_kv(
    node: &mut Kv,
    ctx: &mut Ctx<Msg>,
    kv: &mut HashMap<String, Value>,
    mut interfere: impl FnMut(&mut HashMap<String, Value>),
) -> Vec<Value> {
    let mut to_clients = Vec::new();
    loop {
        let sent = out(ctx);
        if sent.is_empty() {
            return to_clients;
        }
        for b in sent {
            if b["dest"] != json!(SERVICE) {
                to_clients.push(b);
                continue;
            }
            interfere(kv);
            let key = b["key"].as_str().unwrap_or_default().to_string();
            let reply = match b["type"].as_str() {
                Some("read") => match kv.get(&key) {
                    Some(v) => json!({"type": "read_ok", "value": v}),
                    None => json!({"type": "error", "code": 20}),
                },
                Some("write") => {
                    kv.insert(key, b["value"].clone());
                    json!({"type": "write_ok"})
                }
                Some("cas") => match kv.get(&key) {
                    Some(v) if *v == b["from"] => {
                        kv.insert(key, b["to"].clone());
                        json!({"type": "cas_ok"})
                    }
                    None if b["create_if_not_exists"] == json!(true) => {
                        kv.insert(key, b["to"].clone());
                        json!({"type": "cas_ok"})
                    }
                    None => json!({"type": "error", "code": 20}),
                    Some(_) => json!({"type": "error", "code": 22}),
                },
                _ => continue,
            };
            let mut reply = reply;
            reply["in_reply_to"] = b["msg_id"].clone();
            node.handle(m(SERVICE, "n0", reply), 0, ctx);
        }
    }
}

#[test]
fn the_lin_kv_design_allocates_offsets_by_cas_and_polls_and_commits_through_the_service() {
    let mut n = Kv::init(&info("n0", 2, vec![]), &(), 0);
    let mut ctx = Ctx::new("n0");
    let mut kv = HashMap::new();
    for (i, msg) in [7, 8].into_iter().enumerate() {
        n.handle(
            m(
                "c1",
                "n0",
                json!({"type": "send", "key": "k", "msg": msg, "msg_id": i}),
            ),
            0,
            &mut ctx,
        );
        let r = run_kv(&mut n, &mut ctx, &mut kv, |_| {});
        assert_eq!(
            r,
            vec![json!({"type": "send_ok", "offset": i, "in_reply_to": i, "dest": "c1"})]
        );
    }
    assert_eq!(kv[&format!("{LOG_PREFIX}k")], json!([7, 8]));

    // Another node's append lands between this send's read and its cas: the cas fails, the
    // send reads again and gets the next offset.
    let mut once = true;
    n.handle(
        m(
            "c1",
            "n0",
            json!({"type": "send", "key": "k", "msg": 9, "msg_id": 5}),
        ),
        0,
        &mut ctx,
    );
    let r = run_kv(&mut n, &mut ctx, &mut kv, |kv| {
        if once && kv.contains_key("log-k") {
            once = false;
        } else if !once {
            if let Some(Value::Array(log)) = kv.get_mut("log-k") {
                if log.len() == 2 {
                    log.push(json!(100));
                }
            }
        }
    });
    assert_eq!(r[0]["offset"], json!(3), "{r:?}");
    assert_eq!(kv["log-k"], json!([7, 8, 100, 9]));

    n.handle(
        m(
            "c1",
            "n0",
            json!({"type": "poll", "offsets": {"k": 1, "none": 0}, "msg_id": 6}),
        ),
        0,
        &mut ctx,
    );
    let r = run_kv(&mut n, &mut ctx, &mut kv, |_| {});
    assert_eq!(r[0]["msgs"], json!({"k": [[1, 8], [2, 100], [3, 9]]}));

    n.handle(
        m(
            "c1",
            "n0",
            json!({"type": "commit_offsets", "offsets": {"k": 2}, "msg_id": 7}),
        ),
        0,
        &mut ctx,
    );
    assert_eq!(
        run_kv(&mut n, &mut ctx, &mut kv, |_| {})[0]["type"],
        json!("commit_offsets_ok")
    );
    n.handle(
        m(
            "c1",
            "n0",
            json!({"type": "commit_offsets", "offsets": {"k": 1}, "msg_id": 8}),
        ),
        0,
        &mut ctx,
    );
    assert_eq!(
        run_kv(&mut n, &mut ctx, &mut kv, |_| {})[0]["type"],
        json!("commit_offsets_ok")
    );
    assert_eq!(kv[&format!("{COMMIT_PREFIX}k")], json!(2), "never lowered");
    n.handle(
        m(
            "c1",
            "n0",
            json!({"type": "list_committed_offsets", "keys": ["k", "none"], "msg_id": 9}),
        ),
        0,
        &mut ctx,
    );
    assert_eq!(
        run_kv(&mut n, &mut ctx, &mut kv, |_| {})[0]["offsets"],
        json!({"k": 2})
    );
    // Empty requests need no service call.
    n.handle(
        m(
            "c1",
            "n0",
            json!({"type": "poll", "offsets": {}, "msg_id": 10}),
        ),
        0,
        &mut ctx,
    );
    assert_eq!(out(&mut ctx)[0]["msgs"], json!({}));
}

#[test]
fn designs_and_knobs_parse() {
    let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        options(vec![], vec![]),
        Ok((Design::Local, LocalConfig { persist: true }))
    );
    assert_eq!(
        options(env(DESIGN_ENV, "lin-kv"), vec![]).map(|o| o.0),
        Ok(Design::LinKv)
    );
    assert_eq!(
        options(env(DESIGN_ENV, "lin-kv"), args(&["--design", "local"])).map(|o| o.0),
        Ok(Design::Local)
    );
    assert_eq!(
        options(env(PERSIST_ENV, "false"), vec![]).map(|o| o.1.persist),
        Ok(false)
    );
    assert_eq!(
        options(vec![], args(&["--no-persist"])).map(|o| o.1.persist),
        Ok(false)
    );
    assert!(options(env(PERSIST_ENV, "maybe"), vec![]).is_err());
    assert!(options(vec![], args(&["--design"])).is_err());
    assert!(options(vec![], args(&["--bogus"])).is_err());
}

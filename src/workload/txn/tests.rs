use super::*;
use crate::wire::{Body, Envelope};
use serde_json::json;

fn info(me: &str, n: usize) -> InitInfo {
    InitInfo {
        node_id: me.into(),
        node_ids: (0..n).map(|i| format!("n{i}")).collect(),
        boot_unix_micros: 0,
        recovered: vec![],
    }
}

fn node(me: &str, n: usize) -> TxnRwRegister {
    TxnRwRegister::init(&info(me, n), &(), 0)
}

fn msg(src: &str, dest: &str, msg_id: u64, payload: Msg) -> Message<Msg> {
    Envelope {
        id: None,
        src: src.into(),
        dest: dest.into(),
        body: Body {
            msg_id: Some(msg_id),
            in_reply_to: None,
            payload,
        },
    }
}

fn txn(v: Value) -> Msg {
    serde_json::from_value(json!({"type": "txn", "txn": v})).unwrap()
}

/// Runs a client transaction on `n`; returns the reply's body as JSON.
fn client_txn(n: &mut TxnRwRegister, me: &str, v: Value, now: Millis) -> Value {
    let mut ctx = Ctx::new(me);
    n.handle(msg("c1", me, 7, txn(v)), now, &mut ctx);
    let out = ctx.drain();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].dest, "c1");
    serde_json::to_value(&out[0].body).unwrap()
}

/// Ticks `n` at `now`; returns what it sent.
fn tick(n: &mut TxnRwRegister, me: &str, now: Millis) -> Vec<Message<Msg>> {
    let mut ctx = Ctx::new(me);
    n.tick(now, &mut ctx);
    ctx.drain()
}

/// Delivers `m` to `n`; returns the replies.
fn deliver(n: &mut TxnRwRegister, m: Message<Msg>, now: Millis) -> Vec<Message<Msg>> {
    let mut ctx = Ctx::new(m.dest.clone());
    n.handle(m, now, &mut ctx);
    ctx.drain()
}

#[test]
fn a_transaction_reads_its_own_writes_and_replies_with_only_allowed_keys() {
    let mut n = node("n0", 1);
    let r = client_txn(
        &mut n,
        "n0",
        json!([["r", 1, null], ["w", 1, 5], ["r", 1, null]]),
        0,
    );
    assert_eq!(
        r,
        json!({"type": "txn_ok", "in_reply_to": 7, "txn": [["r", 1, null], ["w", 1, 5], ["r", 1, 5]]})
    );
    let r = client_txn(
        &mut n,
        "n0",
        json!([["w", 1, 6], ["w", 1, 7], ["r", 2, null], ["r", 1, null]]),
        0,
    );
    assert_eq!(
        r["txn"],
        json!([["w", 1, 6], ["w", 1, 7], ["r", 2, null], ["r", 1, 7]])
    );
    assert_eq!(n.value(&json!(1)), json!(7));
    // Keys compare as JSON: 1 and "1" are different keys.
    let r = client_txn(&mut n, "n0", json!([["r", "1", null]]), 0);
    assert_eq!(r["txn"], json!([["r", "1", null]]));
    // A single node has no peers: nothing to send, no tick wanted.
    assert_eq!(n.next_tick(0), None);
    assert!(tick(&mut n, "n0", 0).is_empty());
}

#[test]
fn an_unknown_micro_op_is_refused_and_changes_nothing() {
    let mut n = node("n0", 2);
    let r = client_txn(&mut n, "n0", json!([["w", 1, 5], ["append", 1, 6]]), 0);
    assert_eq!(r["type"], "error");
    assert_eq!(r["code"], 12);
    assert_eq!(n.value(&json!(1)), Value::Null);
    assert_eq!(n.next_tick(0), None, "nothing to replicate");
    // A micro-op that is not [f, k, v] does not parse: the runtime answers it, not us.
    assert!(serde_json::from_value::<Msg>(json!({"type": "txn", "txn": [["r", 1]]})).is_err());
}

#[test]
fn final_writes_reach_peers_and_are_acknowledged() {
    let mut a = node("n0", 3);
    let mut b = node("n1", 3);
    client_txn(
        &mut a,
        "n0",
        json!([["w", "x", 1], ["w", "x", 2], ["w", "y", 3]]),
        0,
    );
    assert_eq!(a.next_tick(0), Some(0), "due at once");
    let sent = tick(&mut a, "n0", 0);
    assert_eq!(sent.len(), 2, "one batch per peer");
    let to_b = sent.into_iter().find(|m| m.dest == "n1").unwrap();
    match &to_b.body.payload {
        Msg::Replicate { updates } => {
            assert_eq!(updates.len(), 1);
            // Only the last write to x leaves the transaction.
            assert_eq!(
                updates[0].writes,
                vec![(json!("x"), json!(2)), (json!("y"), json!(3))]
            );
        }
        other => panic!("{other:?}"),
    }
    let acks = deliver(&mut b, to_b, 1);
    assert_eq!(b.value(&json!("x")), json!(2));
    assert_eq!(b.value(&json!("y")), json!(3));
    assert_eq!(acks.len(), 1);
    assert!(matches!(acks[0].body.payload, Msg::ReplicateOk { upto: 1 }));
    // In flight, nothing is resent before RETRY_MS; n2 never answers, so it gets it again then.
    assert_eq!(a.next_tick(1), Some(RETRY_MS));
    assert!(tick(&mut a, "n0", 1).is_empty());
    for ack in acks {
        deliver(&mut a, ack, 2);
    }
    let again = tick(&mut a, "n0", RETRY_MS);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].dest, "n2");
}

#[test]
fn batches_wait_for_the_one_in_flight() {
    let mut a = node("n0", 2);
    let mut b = node("n1", 2);
    client_txn(&mut a, "n0", json!([["w", 1, 1]]), 0);
    let first = tick(&mut a, "n0", 0);
    for v in 2..5 {
        client_txn(&mut a, "n0", json!([["w", 1, v]]), 1);
    }
    assert!(tick(&mut a, "n0", 1).is_empty(), "one batch in flight");
    let ack = deliver(&mut b, first.into_iter().next().unwrap(), 2);
    deliver(&mut a, ack.into_iter().next().unwrap(), 3);
    let second = tick(&mut a, "n0", 3);
    match &second[0].body.payload {
        Msg::Replicate { updates } => {
            assert_eq!(updates.iter().map(|u| u.seq).collect::<Vec<_>>(), [2, 3, 4])
        }
        other => panic!("{other:?}"),
    }
    let ack = deliver(&mut b, second.into_iter().next().unwrap(), 4);
    assert_eq!(b.value(&json!(1)), json!(4));
    deliver(&mut a, ack.into_iter().next().unwrap(), 5);
    assert_eq!(a.next_tick(5), None, "idle once acknowledged");
}

#[test]
fn replicas_converge_on_the_highest_stamp_in_any_order() {
    let mut a = node("n0", 2);
    let mut b = node("n1", 2);
    // Concurrent writes to k: equal counters, so the node index breaks the tie (n1 wins).
    client_txn(&mut a, "n0", json!([["w", "k", "a"]]), 0);
    client_txn(&mut b, "n1", json!([["w", "k", "b"]]), 0);
    let from_a = tick(&mut a, "n0", 0).remove(0);
    let from_b = tick(&mut b, "n1", 0).remove(0);
    // Delivered twice, in both orders: the same outcome.
    deliver(&mut b, from_a.clone(), 1);
    deliver(&mut a, from_b.clone(), 1);
    deliver(&mut b, from_a, 2);
    deliver(&mut a, from_b, 2);
    assert_eq!(a.value(&json!("k")), json!("b"));
    assert_eq!(b.value(&json!("k")), json!("b"));
    // a has now seen b's stamp: its next write is newer than anything it read, and wins at b.
    let r = client_txn(&mut a, "n0", json!([["r", "k", null], ["w", "k", "c"]]), 3);
    assert_eq!(r["txn"][0], json!(["r", "k", "b"]));
    // (a never heard b acknowledge its first update, so that goes again too.)
    let m = tick(&mut a, "n0", RETRY_MS).remove(0);
    deliver(&mut b, m, 4);
    assert_eq!(b.value(&json!("k")), json!("c"));
}

#[test]
fn replies_and_strangers_are_ignored() {
    let mut a = node("n0", 2);
    assert!(deliver(&mut a, msg("n9", "n0", 1, Msg::ReplicateOk { upto: 5 }), 0).is_empty());
    assert!(deliver(&mut a, msg("c1", "n0", 1, Msg::TxnOk { txn: vec![] }), 0).is_empty());
    // An empty replicate is acknowledged with 0.
    let r = deliver(
        &mut a,
        msg("n1", "n0", 1, Msg::Replicate { updates: vec![] }),
        0,
    );
    assert!(matches!(r[0].body.payload, Msg::ReplicateOk { upto: 0 }));
}

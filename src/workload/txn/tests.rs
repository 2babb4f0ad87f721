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

/// Without persistence: replies and updates leave at once (the durability tests below persist).
fn node(me: &str, n: usize) -> TxnRwRegister {
    TxnRwRegister::init(&info(me, n), &volatile(Design::Batched), 0)
}

fn volatile(design: Design) -> TxnConfig {
    TxnConfig {
        design,
        persist: false,
    }
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

// Durability.

fn durable_node(me: &str, n: usize, recovered: Vec<Vec<u8>>) -> TxnRwRegister {
    let mut i = info(me, n);
    i.recovered = recovered;
    TxnRwRegister::init(&i, &TxnConfig::default(), 0)
}

/// Takes `n`'s records into `disk` and reports them all durable; returns what that released.
fn flush(
    n: &mut TxnRwRegister,
    me: &str,
    disk: &mut Vec<Vec<u8>>,
    now: Millis,
) -> Vec<Message<Msg>> {
    let taken = n.take_records();
    disk.extend(taken);
    let mut ctx = Ctx::new(me);
    let count = n.emitted;
    n.persisted(count, now, &mut ctx);
    ctx.drain()
}

fn updates_of(m: &Message<Msg>) -> Vec<u64> {
    match &m.body.payload {
        Msg::Replicate { updates } => updates.iter().map(|u| u.seq).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn txn_ok_waits_for_the_record_and_a_restart_keeps_acknowledged_writes() {
    let mut disk = Vec::new();
    let mut a = durable_node("n0", 2, vec![]);
    let mut ctx = Ctx::new("n0");
    a.handle(
        msg("c1", "n0", 7, txn(json!([["w", "x", 1], ["w", "y", 2]]))),
        0,
        &mut ctx,
    );
    assert!(
        ctx.drain().is_empty(),
        "no txn_ok before the record is durable"
    );
    assert_eq!(a.next_tick(0), None, "nor does the update go to peers");
    // A read-only transaction that read the write waits too.
    a.handle(
        msg("c2", "n0", 8, txn(json!([["r", "x", null]]))),
        0,
        &mut ctx,
    );
    assert!(ctx.drain().is_empty());
    let released = flush(&mut a, "n0", &mut disk, 1);
    assert_eq!(released.len(), 2);
    assert!(matches!(released[0].body.payload, Msg::TxnOk { .. }));
    assert_eq!(released[1].dest, "c2");
    assert!(
        a.next_tick(1).is_some_and(|t| t <= 1),
        "the durable update is due for n1"
    );
    // A second write is taken but never reported durable when the node is killed.
    client_txn_no_reply(&mut a, "n0", json!([["w", "x", 3]]), 2);
    disk_taken_not_durable(&mut a);

    let mut b = durable_node("n0", 2, disk.clone());
    assert_eq!(
        b.value(&json!("x")),
        json!(1),
        "the acknowledged write survives"
    );
    assert_eq!(b.value(&json!("y")), json!(2));
    assert_eq!(
        b.backlog("n1"),
        1,
        "n1 never acknowledged it: it still goes"
    );
    let sent = tick(&mut b, "n0", 0);
    assert_eq!(sent.len(), 1);
    assert_eq!(updates_of(&sent[0]), [1]);
    // New transactions continue the numbering and stamp past what was recovered.
    client_txn_no_reply(&mut b, "n0", json!([["r", "x", null], ["w", "x", 4]]), 1);
    let released = flush(&mut b, "n0", &mut disk, 2);
    assert_eq!(
        serde_json::to_value(&released[0].body).unwrap()["txn"],
        json!([["r", "x", 1], ["w", "x", 4]])
    );
    let mut peer = node("n1", 2);
    deliver(&mut peer, sent.into_iter().next().unwrap(), 3);
    let ack = deliver(&mut b, msg("n1", "n0", 9, Msg::ReplicateOk { upto: 1 }), 3);
    assert!(ack.is_empty());
    let next = tick(&mut b, "n0", 3);
    assert_eq!(updates_of(&next[0]), [2], "the new update is number 2");
    deliver(&mut peer, next.into_iter().next().unwrap(), 4);
    assert_eq!(
        peer.value(&json!("x")),
        json!(4),
        "and its stamp beats the recovered one"
    );
}

fn client_txn_no_reply(n: &mut TxnRwRegister, me: &str, v: Value, now: Millis) {
    let mut ctx = Ctx::new(me);
    n.handle(msg("c1", me, 7, txn(v)), now, &mut ctx);
    assert!(ctx.drain().is_empty());
}

/// The driver took the records, but the kill came before they were durable.
fn disk_taken_not_durable(n: &mut TxnRwRegister) {
    assert!(!n.take_records().is_empty());
}

#[test]
fn replicate_ok_waits_until_the_applied_writes_are_durable_and_survive_a_restart() {
    let mut disk = Vec::new();
    let mut b = durable_node("n1", 2, vec![]);
    let update = |seq, c, v| Update {
        seq,
        stamp: (c, 0),
        writes: vec![(json!("k"), json!(v))],
    };
    let r = deliver(
        &mut b,
        msg(
            "n0",
            "n1",
            1,
            Msg::Replicate {
                updates: vec![update(1, 5, "a")],
            },
        ),
        0,
    );
    assert!(
        r.is_empty(),
        "no replicate_ok before the writes are durable"
    );
    assert_eq!(b.value(&json!("k")), json!("a"));
    // An older update changes nothing, so it writes nothing, but its acknowledgement still
    // waits: what supersedes it is not durable yet.
    let r = deliver(
        &mut b,
        msg(
            "n0",
            "n1",
            2,
            Msg::Replicate {
                updates: vec![update(2, 4, "old")],
            },
        ),
        0,
    );
    assert!(r.is_empty());
    let released = flush(&mut b, "n1", &mut disk, 1);
    assert_eq!(released.len(), 2);
    assert!(matches!(
        released[0].body.payload,
        Msg::ReplicateOk { upto: 1 }
    ));
    assert_eq!(released[0].body.in_reply_to, Some(1));
    assert!(matches!(
        released[1].body.payload,
        Msg::ReplicateOk { upto: 2 }
    ));
    assert_eq!(
        disk.len(),
        1,
        "one record: the write that changed the replica"
    );
    // Durable now: a duplicate is answered at once.
    let r = deliver(
        &mut b,
        msg(
            "n0",
            "n1",
            3,
            Msg::Replicate {
                updates: vec![update(1, 5, "a")],
            },
        ),
        2,
    );
    assert_eq!(r.len(), 1);

    let c = durable_node("n1", 2, disk);
    assert_eq!(
        c.value(&json!("k")),
        json!("a"),
        "acknowledged to n0, so kept"
    );
    assert_eq!(c.backlog("n0"), 0, "n0's updates are not n1's to resend");
}

#[test]
fn peers_acknowledgements_are_recorded_with_the_next_write_and_limit_resends() {
    let mut disk = Vec::new();
    let mut a = durable_node("n0", 3, vec![]);
    for v in 1..=3 {
        client_txn_no_reply(&mut a, "n0", json!([["w", "k", v]]), 0);
    }
    flush(&mut a, "n0", &mut disk, 0);
    let sent = tick(&mut a, "n0", 0);
    assert_eq!(sent.len(), 2);
    deliver(&mut a, msg("n1", "n0", 1, Msg::ReplicateOk { upto: 3 }), 1);
    // The acknowledgement alone writes nothing.
    assert!(a.take_records().is_empty());
    client_txn_no_reply(&mut a, "n0", json!([["w", "k", 4]]), 2);
    flush(&mut a, "n0", &mut disk, 2);
    assert_eq!(
        disk.len(),
        5,
        "3 updates, the 4th, and n1's cursor riding along"
    );

    let mut b = durable_node("n0", 3, disk);
    assert_eq!(b.backlog("n1"), 1, "n1 has 1..=3: only 4 goes again");
    assert_eq!(b.backlog("n2"), 4, "n2 acknowledged nothing");
    let sent = tick(&mut b, "n0", 0);
    let to = |d: &str| sent.iter().find(|m| m.dest == d).map(updates_of).unwrap();
    assert_eq!(to("n1"), [4]);
    assert_eq!(to("n2"), [1, 2, 3, 4]);
    assert_eq!(b.value(&json!("k")), json!(4));
}

#[test]
fn a_snapshot_replays_to_the_same_state() {
    let mut disk = Vec::new();
    let mut a = durable_node("n0", 3, vec![]);
    let mut peer = durable_node("n1", 3, vec![]);
    for v in 1..=5 {
        client_txn_no_reply(&mut a, "n0", json!([["w", v % 3, v], ["w", "s", v]]), 0);
    }
    // A peer's update too, older than ours for "s" and alone on "p".
    deliver(
        &mut a,
        msg(
            "n1",
            "n0",
            1,
            Msg::Replicate {
                updates: vec![Update {
                    seq: 1,
                    stamp: (1, 1),
                    writes: vec![(json!("s"), json!("peer")), (json!("p"), json!(true))],
                }],
            },
        ),
        0,
    );
    flush(&mut a, "n0", &mut disk, 0);
    let sent = tick(&mut a, "n0", 0);
    let to_n1 = sent.into_iter().find(|m| m.dest == "n1").unwrap();
    let ack = deliver(&mut peer, to_n1, 1);
    assert!(ack.is_empty());
    let ack = flush(&mut peer, "n1", &mut Vec::new(), 1);
    deliver(&mut a, ack.into_iter().next().unwrap(), 1);
    let live = a.live_bytes().unwrap();
    let snap = a.snapshot().expect("everything is durable");
    let bytes: u64 = snap.iter().map(|r| crate::store::frame_len(r.len())).sum();
    assert!(
        live / 2 <= bytes && bytes <= live * 2,
        "estimate {live}, snapshot {bytes}"
    );
    let b = durable_node("n0", 3, snap.clone());
    for k in [json!(0), json!(1), json!(2), json!("s"), json!("p")] {
        assert_eq!(b.value(&k), a.value(&k), "{k}");
    }
    assert_eq!(b.value(&json!("s")), json!(5));
    assert_eq!((b.backlog("n1"), b.backlog("n2")), (0, 5));
    // The numbering continues even though n1 acknowledged everything.
    let mut b = b;
    client_txn_no_reply(&mut b, "n0", json!([["w", "z", 1]]), 2);
    flush(&mut b, "n0", &mut disk, 2);
    let sent = tick(&mut b, "n0", 2);
    let to_n1 = sent.iter().find(|m| m.dest == "n1").unwrap();
    assert_eq!(updates_of(to_n1), [6]);
    // Records not yet taken: no snapshot (the host would append them after it).
    client_txn_no_reply(&mut b, "n0", json!([["w", "z", 2]]), 3);
    assert_eq!(b.snapshot(), None);
}

#[test]
fn malformed_or_hostile_records_on_disk_do_not_panic() {
    let own = |seq: u64, c: u64| {
        serde_json::to_vec(&json!({"own": {"seq": seq, "stamp": [c, 0], "writes": [["k", c]]}}))
            .unwrap()
    };
    let recovered = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"{}".to_vec(),
        b"[1,2]".to_vec(),
        br#"{"own": {"seq": "x"}}"#.to_vec(),
        br#"{"applied": {"writes": [[1, [1], 2]]}}"#.to_vec(),
        br#"{"acked": {"peer": "n9", "upto": 5}}"#.to_vec(),
        br#"{"acked": {"peer": "n1", "upto": 18446744073709551615}}"#.to_vec(),
        br#"{"seq": {"upto": 18446744073709551615}}"#.to_vec(),
        own(3, 7),
        own(3, 7),
        own(0, 18446744073709551615),
        vec![0xff, 0xfe, 0x00],
    ];
    let mut n = durable_node("n0", 2, recovered);
    assert_eq!(n.value(&json!("k")), json!(18446744073709551615u64));
    // The clock and the sequence are at their limits: a transaction saturates, never panics.
    client_txn_no_reply(&mut n, "n0", json!([["w", "k", 1], ["r", "k", null]]), 0);
    let released = flush(&mut n, "n0", &mut Vec::new(), 0);
    assert_eq!(released.len(), 1);
    assert_eq!(n.next_tick(0), Some(0));
    tick(&mut n, "n0", 0);
    // A peer's hostile stamp does not overflow the clock either.
    let m = msg(
        "n1",
        "n0",
        1,
        Msg::Replicate {
            updates: vec![Update {
                seq: u64::MAX,
                stamp: (u64::MAX, u64::MAX),
                writes: vec![(json!("q"), json!(1))],
            }],
        },
    );
    deliver(&mut n, m, 1);
    client_txn_no_reply(&mut n, "n0", json!([["w", "q", 2]]), 2);
}

#[test]
fn without_persistence_nothing_is_recorded() {
    let mut a = node("n0", 2);
    client_txn(&mut a, "n0", json!([["w", 1, 1]]), 0);
    assert!(a.take_records().is_empty());
    assert_eq!(a.live_bytes(), None);
    assert_eq!(a.snapshot(), None);
    assert!(!TxnRwRegister::persistent(&volatile(Design::Batched)));
    assert!(TxnRwRegister::persistent(&TxnConfig::default()));
}

// The per-txn design.

#[test]
fn per_txn_sends_each_update_alone_and_retries_each_until_acknowledged() {
    let mut a = TxnRwRegister::init(&info("n0", 2), &volatile(Design::PerTxn), 0);
    let mut b = node("n1", 2);
    client_txn(&mut a, "n0", json!([["w", 1, 1]]), 0);
    let first = tick(&mut a, "n0", 0);
    assert_eq!(first.len(), 1);
    assert_eq!(updates_of(&first[0]), [1]);
    // Later transactions go at once, each in its own message, without waiting for the first.
    client_txn(&mut a, "n0", json!([["w", 1, 2]]), 1);
    client_txn(&mut a, "n0", json!([["w", 2, 3]]), 1);
    let more = tick(&mut a, "n0", 1);
    assert_eq!(more.iter().map(updates_of).collect::<Vec<_>>(), [[2], [3]]);
    // Only the third is acknowledged: it alone is not resent.
    let ack3 = deliver(&mut b, more[1].clone(), 2);
    assert!(matches!(ack3[0].body.payload, Msg::ReplicateOk { upto: 3 }));
    deliver(&mut a, ack3.into_iter().next().unwrap(), 2);
    assert_eq!(a.backlog("n1"), 2);
    assert_eq!(a.next_tick(2), Some(RETRY_MS));
    assert!(tick(&mut a, "n0", RETRY_MS - 1).is_empty());
    let again = tick(&mut a, "n0", RETRY_MS);
    assert_eq!(again.iter().map(updates_of).collect::<Vec<_>>(), [[1]]);
    let again = tick(&mut a, "n0", RETRY_MS + 1);
    assert_eq!(again.iter().map(updates_of).collect::<Vec<_>>(), [[2]]);
    for m in first.into_iter().chain(again) {
        let ack = deliver(&mut b, m, 3);
        deliver(&mut a, ack.into_iter().next().unwrap(), 3);
    }
    assert_eq!(a.backlog("n1"), 0);
    assert_eq!(a.next_tick(3), None, "idle once everything is acknowledged");
    assert_eq!(b.value(&json!(1)), json!(2));
    assert_eq!(b.value(&json!(2)), json!(3));
}

#[test]
fn per_txn_resumes_a_recovered_backlog_one_message_per_update() {
    let mut disk = Vec::new();
    let cfg = TxnConfig {
        design: Design::PerTxn,
        persist: true,
    };
    let mut a = TxnRwRegister::init(&info("n0", 2), &cfg, 0);
    for v in 1..=3 {
        client_txn_no_reply(&mut a, "n0", json!([["w", "k", v]]), 0);
    }
    assert_eq!(a.next_tick(0), None, "nothing goes before it is durable");
    flush(&mut a, "n0", &mut disk, 0);
    assert_eq!(tick(&mut a, "n0", 0).len(), 3);
    let mut i = info("n0", 2);
    i.recovered = disk;
    let mut b = TxnRwRegister::init(&i, &cfg, 10);
    let sent = tick(&mut b, "n0", 10);
    assert_eq!(
        sent.iter().map(updates_of).collect::<Vec<_>>(),
        [[1], [2], [3]]
    );
}

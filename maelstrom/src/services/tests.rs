use super::*;
use rand::SeedableRng;

fn services(seed: u64) -> Services {
    Services::new(ChaCha8Rng::seed_from_u64(seed))
}

/// Sends `body` from `src` to `dest` and returns the reply body.
fn call(s: &mut Services, src: &str, dest: &str, body: Value) -> Option<Value> {
    s.handle(src, dest, &body.to_string())
}

fn code(reply: &Value) -> Option<u64> {
    (reply["type"] == "error").then(|| reply["code"].as_u64().unwrap())
}

#[test]
fn lin_kv_reads_writes_and_cas_with_maelstrom_errors() {
    let mut s = services(1);
    let r = call(
        &mut s,
        "n0",
        "lin-kv",
        json!({"type":"read","key":"k","msg_id":1}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"type":"error","code":20,"text":"key does not exist","in_reply_to":1})
    );
    let r = call(
        &mut s,
        "n0",
        "lin-kv",
        json!({"type":"write","key":"k","value":1,"msg_id":2}),
    )
    .unwrap();
    assert_eq!(r, json!({"type":"write_ok","in_reply_to":2}));
    let r = call(
        &mut s,
        "n1",
        "lin-kv",
        json!({"type":"read","key":"k","msg_id":7}),
    )
    .unwrap();
    assert_eq!(r, json!({"type":"read_ok","value":1,"in_reply_to":7}));
    assert!(r.get("msg_id").is_none(), "replies carry no msg_id");
    // Wrong `from`: 22, with both values printed as Clojure's pr-str does.
    let r = call(
        &mut s,
        "n0",
        "lin-kv",
        json!({"type":"cas","key":"k","from":"1","to":3,"msg_id":3}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"type":"error","code":22,"text":"current value 1 is not \"1\"","in_reply_to":3})
    );
    // 1.0 is not 1 (Clojure equality).
    let r = call(
        &mut s,
        "n0",
        "lin-kv",
        json!({"type":"cas","key":"k","from":1.0,"to":3,"msg_id":4}),
    )
    .unwrap();
    assert_eq!(code(&r), Some(22));
    let r = call(
        &mut s,
        "n0",
        "lin-kv",
        json!({"type":"cas","key":"k","from":1,"to":3,"msg_id":5}),
    )
    .unwrap();
    assert_eq!(r, json!({"type":"cas_ok","in_reply_to":5}));
    let r = call(&mut s, "n0", "lin-kv", json!({"type":"read","key":"k"})).unwrap();
    assert_eq!(
        r,
        json!({"type":"read_ok","value":3,"in_reply_to":null}),
        "no msg_id: null"
    );
    // Keys compare as Clojure does too: "k" is not 1, nor is 1 the same key as 1.0.
    let r = call(
        &mut s,
        "n0",
        "lin-kv",
        json!({"type":"write","key":1,"value":[1,{"a":null}]}),
    )
    .unwrap();
    assert_eq!(r["type"], "write_ok");
    let r = call(&mut s, "n0", "lin-kv", json!({"type":"read","key":1.0})).unwrap();
    assert_eq!(code(&r), Some(20));
    let r = call(
        &mut s,
        "n0",
        "lin-kv",
        json!({"type":"cas","key":1,"from":[1],"to":0}),
    )
    .unwrap();
    assert_eq!(r["text"], "current value [1 {\"a\" nil}] is not [1]");
}

#[test]
fn cas_on_a_missing_key_and_create_if_not_exists() {
    for service in ["lin-kv", "seq-kv"] {
        let mut s = services(2);
        let r = call(
            &mut s,
            "n0",
            service,
            json!({"type":"cas","key":"x","from":0,"to":5,"msg_id":1}),
        )
        .unwrap();
        assert_eq!(code(&r), Some(20), "{service}");
        let r = call(
            &mut s,
            "n0",
            service,
            json!({"type":"cas","key":"x","from":0,"to":5,"create_if_not_exists":false,"msg_id":2}),
        )
        .unwrap();
        assert_eq!(code(&r), Some(20), "{service}: false is not truthy");
        // Created with `to`, whatever `from` says.
        let r = call(
            &mut s,
            "n0",
            service,
            json!({"type":"cas","key":"x","from":99,"to":5,"create_if_not_exists":true,"msg_id":3}),
        )
        .unwrap();
        assert_eq!(r, json!({"type":"cas_ok","in_reply_to":3}), "{service}");
        let r = call(&mut s, "n0", service, json!({"type":"read","key":"x"})).unwrap();
        assert_eq!(r["value"], 5, "{service}: a node sees its own writes");
        // Once the key exists, `from` matters again.
        let r = call(
            &mut s,
            "n0",
            service,
            json!({"type":"cas","key":"x","from":99,"to":6,"create_if_not_exists":true}),
        )
        .unwrap();
        assert_eq!(code(&r), Some(22), "{service}");
    }
    // lww-kv ignores create_if_not_exists.
    let mut s = services(3);
    for _ in 0..20 {
        let r = call(
            &mut s,
            "n0",
            "lww-kv",
            json!({"type":"cas","key":"x","from":0,"to":5,"create_if_not_exists":true}),
        )
        .unwrap();
        assert_eq!(code(&r), Some(20));
    }
}

#[test]
fn unknown_requests_get_no_reply_and_change_nothing() {
    let mut s = services(4);
    for (dest, body) in [
        ("lin-kv", json!({"type":"ts","msg_id":1})),
        ("lin-kv", json!({"type":"delete","key":"k","msg_id":1})),
        ("lin-kv", json!({"key":"k","msg_id":1})),
        ("seq-kv", json!({"type":"ts"})),
        ("lww-kv", json!({"type":"frobnicate"})),
        ("lin-tso", json!({"type":"read","key":"k"})),
        ("lin-tso", json!({"type":"write","key":"k","value":1})),
        ("n1", json!({"type":"read","key":"k"})),
    ] {
        assert_eq!(
            call(&mut s, "n0", dest, body.clone()),
            None,
            "{dest} {body}"
        );
    }
    assert_eq!(s.handle("n0", "lin-kv", "[1,2]"), None);
    assert_eq!(s.handle("n0", "lin-kv", "not json"), None);
    assert_eq!(s.handle("n0", "lin-kv", r#"{"type":7}"#), None);
    // The timestamp oracle was not advanced by the rejected requests.
    let r = call(&mut s, "n0", "lin-tso", json!({"type":"ts","msg_id":"x"})).unwrap();
    assert_eq!(r, json!({"type":"ts_ok","ts":0,"in_reply_to":"x"}));
}

#[test]
fn lin_tso_counts_from_zero() {
    let mut s = services(5);
    for want in 0..5u64 {
        let src = format!("n{}", want % 2);
        let r = call(&mut s, &src, "lin-tso", json!({"type":"ts","msg_id":want})).unwrap();
        assert_eq!(r, json!({"type":"ts_ok","ts":want,"in_reply_to":want}));
    }
}

#[test]
fn seq_kv_reads_go_stale_per_node_but_stay_monotonic() {
    let mut stale_seen = 0;
    for seed in 0..20 {
        let mut s = services(seed);
        // n1 writes 1..=10: each write moves n1 to the newest state.
        for v in 1..=10 {
            call(
                &mut s,
                "n1",
                "seq-kv",
                json!({"type":"write","key":"k","value":v}),
            )
            .unwrap();
            let r = call(&mut s, "n1", "seq-kv", json!({"type":"read","key":"k"})).unwrap();
            assert_eq!(r["value"], v, "a node reads its own writes");
        }
        // n0 has seen nothing: its reads may be stale (a missing key or an older value), but
        // never go backwards.
        let mut last = 0;
        for _ in 0..30 {
            let r = call(&mut s, "n0", "seq-kv", json!({"type":"read","key":"k"})).unwrap();
            let v = if code(&r) == Some(20) {
                0
            } else {
                r["value"].as_i64().unwrap()
            };
            assert!(v >= last, "seed {seed}: went back from {last} to {v}");
            if v < 10 {
                stale_seen += 1;
            }
            last = v;
        }
        // The cure: a write (here to another key) moves n0 to the newest state.
        call(
            &mut s,
            "n0",
            "seq-kv",
            json!({"type":"write","key":"n0-sync","value":seed}),
        )
        .unwrap();
        let r = call(&mut s, "n0", "seq-kv", json!({"type":"read","key":"k"})).unwrap();
        assert_eq!(r["value"], 10, "seed {seed}");
    }
    assert!(stale_seen > 50, "stale reads are common: {stale_seen}");
}

#[test]
fn seq_kv_cas_succeeds_only_against_the_newest_state() {
    let mut failed_stale = 0;
    for seed in 0..50 {
        let mut s = services(seed);
        for v in 1..=5 {
            call(
                &mut s,
                "n1",
                "seq-kv",
                json!({"type":"write","key":"k","value":v}),
            )
            .unwrap();
        }
        // n0 is behind: a cas from the newest value may still fail against a stale state (its
        // error is the reply), but a cas from an old value never succeeds.
        let r = call(
            &mut s,
            "n0",
            "seq-kv",
            json!({"type":"cas","key":"k","from":2,"to":9}),
        )
        .unwrap();
        assert_ne!(r["type"], "cas_ok", "seed {seed}");
        let r = call(
            &mut s,
            "n0",
            "seq-kv",
            json!({"type":"cas","key":"k","from":5,"to":6}),
        )
        .unwrap();
        if r["type"] == "cas_ok" {
            // n0 moved to the new state, so its next cas runs against it.
            let r = call(
                &mut s,
                "n0",
                "seq-kv",
                json!({"type":"cas","key":"k","from":6,"to":7}),
            )
            .unwrap();
            assert_eq!(
                r["type"], "cas_ok",
                "seed {seed}: n0 is at the newest state"
            );
        } else {
            failed_stale += 1;
        }
    }
    assert!(failed_stale > 0, "stale cas failures happen");
}

#[test]
fn seq_kv_keeps_32_states_and_a_far_behind_node_wraps() {
    let mut s = services(6);
    for v in 0..100 {
        call(
            &mut s,
            "n1",
            "seq-kv",
            json!({"type":"write","key":"k","value":v}),
        )
        .unwrap();
    }
    assert_eq!(s.seq_kv.states.len(), SEQ_KV_STATES);
    assert_eq!(s.seq_kv.last, 100);
    // Writing the value already there changes nothing: no new state.
    call(
        &mut s,
        "n1",
        "seq-kv",
        json!({"type":"write","key":"k","value":99}),
    )
    .unwrap();
    assert_eq!(s.seq_kv.last, 100);
    for _ in 0..50 {
        let r = call(&mut s, "n0", "seq-kv", json!({"type":"read","key":"k"})).unwrap();
        let v = r["value"].as_i64().unwrap();
        assert!((68..=99).contains(&v), "only the last 32 states exist: {v}");
    }
}

#[test]
fn lww_kv_replicas_never_converge() {
    let mut s = services(7);
    call(
        &mut s,
        "n0",
        "lww-kv",
        json!({"type":"write","key":"k","value":1}),
    )
    .unwrap();
    let (mut seen, mut missing) = (0, 0);
    for _ in 0..1000 {
        let r = call(&mut s, "n1", "lww-kv", json!({"type":"read","key":"k"})).unwrap();
        match code(&r) {
            Some(20) => missing += 1,
            None => {
                assert_eq!(r["value"], 1);
                seen += 1
            }
            other => panic!("{other:?}"),
        }
    }
    // About half each, and still both after a thousand requests.
    assert!(
        (400..600).contains(&seen) && seen + missing == 1000,
        "{seen} {missing}"
    );
    // Two writes may land on different replicas: reads then flip between them for ever.
    let mut s = services(8);
    for v in 0..10 {
        call(
            &mut s,
            "n0",
            "lww-kv",
            json!({"type":"write","key":"k","value":v}),
        )
        .unwrap();
    }
    let values: std::collections::BTreeSet<i64> = (0..200)
        .filter_map(|_| {
            let r = call(&mut s, "n0", "lww-kv", json!({"type":"read","key":"k"})).unwrap();
            r["value"].as_i64()
        })
        .collect();
    assert_eq!(values.len(), 2, "one value per replica: {values:?}");
    // The 22 text prints `from` with `str`: a bare string.
    let mut s = services(9);
    for _ in 0..2 {
        // Write to both replicas (with high probability after a few tries).
        for _ in 0..10 {
            call(
                &mut s,
                "n0",
                "lww-kv",
                json!({"type":"write","key":"s","value":"b"}),
            )
            .unwrap();
        }
    }
    let r = call(
        &mut s,
        "n0",
        "lww-kv",
        json!({"type":"cas","key":"s","from":"a","to":"c"}),
    )
    .unwrap();
    assert_eq!(r["text"], "current value \"b\" is not a");
}

#[test]
fn same_seed_same_answers() {
    let run = |seed| {
        let mut s = services(seed);
        (0..200)
            .map(|i| {
                let src = format!("n{}", i % 3);
                let body = if i % 3 == 0 {
                    json!({"type":"write","key":"k","value":i})
                } else {
                    json!({"type":"read","key":"k"})
                };
                let dest = if i % 2 == 0 { "seq-kv" } else { "lww-kv" };
                call(&mut s, &src, dest, body)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn replies_go_back_to_the_sender() {
    let mut s = services(10);
    let p = Packet::from_value("n3", "lin-tso", &json!({"type":"ts","msg_id":4}));
    let r = s.reply_to(&p).unwrap();
    assert_eq!(
        (r.src.as_str(), r.dest.as_str(), r.body_type.as_str()),
        ("lin-tso", "n3", "ts_ok")
    );
    assert!(Services::is_service("seq-kv") && !Services::is_service("n0"));
    assert_eq!(ServiceId::ALL.map(ServiceId::name), crate::cli::SERVICE_IDS);
}

//! Hostile input against the whole broadcast node (the tokio shell plus the workload, with
//! persistence on), in process over in-memory pipes: random and mutated lines, unknown senders,
//! very long lines, replies to requests nobody sent, duplicated and reordered gossip, damaged store
//! files. The node must never panic, must answer every well-formed client request, and must keep
//! every value it acknowledged.

use murmur::host::ShellConfig;
use murmur::runtime::run_io;
use murmur::store::{self, Store};
use murmur::workload::broadcast::{Broadcast, BroadcastConfig};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Feeds `lines` to an in-process node persisting under `data`, closes its stdin, and returns every
/// line it wrote, parsed. Fails if the node returns an error or writes anything but JSON.
fn run_node(lines: &[Vec<u8>], data: &Path, shell: ShellConfig) -> Vec<Value> {
    let shell = ShellConfig {
        data_root: data.to_path_buf(),
        ..shell
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let input: Vec<u8> = lines
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect();
    rt.block_on(async move {
        let (mut feed, node_in) = tokio::io::duplex(1 << 16);
        let (node_out, mut drain) = tokio::io::duplex(1 << 16);
        let node = tokio::spawn(run_io::<Broadcast, _, _>(
            BroadcastConfig::default(),
            shell,
            node_in,
            node_out,
        ));
        let writer = tokio::spawn(async move {
            // The node may stop reading early only by failing, which the test reports below.
            let _ = feed.write_all(&input).await;
            let _ = feed.shutdown().await;
        });
        let mut out = Vec::new();
        drain.read_to_end(&mut out).await.unwrap();
        node.await
            .expect("node task panicked")
            .expect("node failed");
        writer.await.unwrap();
        String::from_utf8(out)
            .expect("stdout is UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    })
}

fn line(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn init(node: &str, nodes: &[&str]) -> Vec<u8> {
    line(
        json!({"src":"c0","dest":node,"body":{"type":"init","node_id":node,"node_ids":nodes,"msg_id":1}}),
    )
}

fn req(src: &str, msg_id: u64, body: Value) -> Vec<u8> {
    let mut body = body;
    body["msg_id"] = json!(msg_id);
    line(json!({"src":src,"dest":"n0","body":body}))
}

/// Replies to `client`, by `in_reply_to`.
fn replies(out: &[Value], client: &str) -> HashMap<u64, Vec<Value>> {
    let mut m: HashMap<u64, Vec<Value>> = HashMap::new();
    for o in out.iter().filter(|o| o["dest"] == client) {
        if let Some(id) = o["body"]["in_reply_to"].as_u64() {
            m.entry(id).or_default().push(o["body"].clone());
        }
    }
    m
}

fn read_set(body: &Value) -> BTreeSet<i64> {
    body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("not a read_ok: {body}"))
        .iter()
        .filter_map(Value::as_i64)
        .collect()
}

/// One step of a hostile session.
#[derive(Debug, Clone)]
enum Step {
    Broadcast(i64),
    Read,
    Garbage(Vec<u8>),
    Mutated(usize, u8),
    PeerGossip {
        src: u8,
        from: u64,
        upto: u64,
        values: Vec<i64>,
        to_log: u64,
        ack: u64,
    },
    PeerAck {
        src: u8,
        in_reply_to: u64,
        ack: u64,
    },
    LongLine(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0i64..1000).prop_map(Step::Broadcast),
        2 => Just(Step::Read),
        2 => prop::collection::vec(any::<u8>(), 0..120).prop_map(Step::Garbage),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Step::Mutated(i, b)),
        3 => (0u8..4, 0u64..20, 0u64..30, prop::collection::vec(1000i64..1100, 0..5), prop_oneof![Just(0u64), any::<u64>()], any::<u64>())
            .prop_map(|(src, from, upto, values, to_log, ack)| Step::PeerGossip { src, from, upto, values, to_log, ack }),
        2 => (0u8..4, any::<u64>(), any::<u64>()).prop_map(|(src, in_reply_to, ack)| Step::PeerAck { src, in_reply_to, ack }),
        1 => (1usize..200_000).prop_map(Step::LongLine),
    ]
}

/// Peers as the node sees them: n1 and n2 are in the cluster, n7 and x3 are not.
const PEERS: [&str; 4] = ["n1", "n2", "n7", "x3"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn hostile_sessions_never_panic_and_answer_every_request(steps in prop::collection::vec(step(), 1..60)) {
        let data = tempfile::tempdir().unwrap();
        let mut lines = vec![init("n0", &["n0", "n1", "n2"])];
        // Well-formed client requests: (msg_id, expected reply type, broadcast value).
        let mut expected: Vec<(u64, &str, Option<i64>)> = Vec::new();
        let mut next_id = 1u64;
        let template = req("c1", 1, json!({"type":"broadcast","message":5}));
        for s in steps {
            match s {
                Step::Broadcast(v) => {
                    lines.push(req("c1", next_id, json!({"type":"broadcast","message":v})));
                    expected.push((next_id, "broadcast_ok", Some(v)));
                    next_id += 1;
                }
                Step::Read => {
                    lines.push(req("c1", next_id, json!({"type":"read"})));
                    expected.push((next_id, "read_ok", None));
                    next_id += 1;
                }
                Step::Garbage(mut g) => {
                    g.retain(|&b| b != b'\n');
                    lines.push(g);
                }
                Step::Mutated(i, b) => {
                    // Mutations are sent as client c9, whose replies are not checked.
                    let mut l = template.clone();
                    let l2 = String::from_utf8(l.clone()).unwrap().replace("c1", "c9");
                    l = l2.into_bytes();
                    let i = i % l.len();
                    match b % 3 {
                        0 => l[i] = if b == b'\n' { b' ' } else { b },
                        1 => { l.remove(i); }
                        _ => l.truncate(i),
                    }
                    lines.push(l);
                }
                Step::PeerGossip { src, from, upto, values, to_log, ack } => {
                    lines.push(line(json!({"src":PEERS[src as usize],"dest":"n0","body":{
                        "type":"gossip","msg_id":next_id + 1_000_000,"log":77,"to_log":to_log,"base":from,
                        "from":from,"upto":upto,"values":values,"ack":ack}})));
                }
                Step::PeerAck { src, in_reply_to, ack } => {
                    lines.push(line(json!({"src":PEERS[src as usize],"dest":"n0","body":{
                        "type":"gossip_ok","in_reply_to":in_reply_to,"log":77,"to_log":1,"ack":ack}})));
                }
                Step::LongLine(n) => {
                    let mut l = br#"{"src":"c1","dest":"n0","body":{"type":"broadcast","message":""#.to_vec();
                    l.extend(vec![b'x'; n]);
                    lines.push(l);
                }
            }
        }
        lines.push(req("c1", next_id, json!({"type":"read"})));
        expected.push((next_id, "read_ok", None));

        let out = run_node(&lines, data.path(), ShellConfig::default());
        let got = replies(&out, "c1");
        let mut acked = BTreeSet::new();
        for (id, ty, v) in &expected {
            let r = got.get(id).unwrap_or_else(|| panic!("request {id} unanswered"));
            prop_assert_eq!(r.len(), 1, "request {} answered {:?}", id, r);
            prop_assert_eq!(r[0]["type"].as_str(), Some(*ty), "request {}: {}", id, r[0]);
            if let Some(v) = v {
                acked.insert(*v);
            }
        }
        let last = read_set(&got[&next_id][0]);
        prop_assert!(acked.is_subset(&last), "acked {:?} not all in the final read {:?}", acked, last);
    }
}

#[test]
fn lines_over_the_limit_are_skipped_and_the_node_carries_on() {
    let data = tempfile::tempdir().unwrap();
    let mut long =
        br#"{"src":"c1","dest":"n0","body":{"type":"broadcast","msg_id":1,"message":""#.to_vec();
    long.extend(vec![b'7'; 10_000]);
    long.extend_from_slice(br#""}}"#);
    let lines = vec![
        init("n0", &["n0"]),
        long.clone(),
        req("c1", 2, json!({"type":"broadcast","message":2})),
        long,
        req("c1", 3, json!({"type":"read"})),
    ];
    let shell = ShellConfig {
        max_line_bytes: 1024,
        ..ShellConfig::default()
    };
    let out = run_node(&lines, data.path(), shell);
    let got = replies(&out, "c1");
    assert!(!got.contains_key(&1), "the long line was skipped");
    assert_eq!(got[&2][0]["type"], "broadcast_ok");
    assert_eq!(read_set(&got[&3][0]), BTreeSet::from([2]));
    // The same long line within the default limit is served.
    let data = tempfile::tempdir().unwrap();
    let mut long =
        br#"{"src":"c1","dest":"n0","body":{"type":"broadcast","msg_id":1,"message":""#.to_vec();
    long.extend(vec![b'7'; 3_000_000]);
    long.extend_from_slice(br#""}}"#);
    let out = run_node(
        &[init("n0", &["n0"]), long],
        data.path(),
        ShellConfig::default(),
    );
    assert_eq!(replies(&out, "c1")[&1][0]["type"], "broadcast_ok");
}

#[test]
fn duplicate_and_reordered_gossip_and_stray_replies() {
    let data = tempfile::tempdir().unwrap();
    let gossip = |msg_id: u64, from: u64, values: &[i64]| {
        line(
            json!({"src":"n1","dest":"n0","body":{"type":"gossip","msg_id":msg_id,"log":5,"to_log":0,
            "base":0,"from":from,"upto":from + values.len() as u64,"values":values,"ack":0}}),
        )
    };
    let lines = vec![
        // Peer traffic before init is dropped (peers retry).
        gossip(1, 0, &[1, 2]),
        init("n0", &["n0", "n1", "n2"]),
        gossip(2, 2, &[3, 4]), // out of order: arrives before 0..2
        gossip(3, 0, &[1, 2]),
        gossip(4, 0, &[1, 2]), // duplicate
        gossip(5, 2, &[3, 4]), // duplicate
        // Replies to requests the node never sent, or long expired.
        line(
            json!({"src":"n1","dest":"n0","body":{"type":"gossip_ok","in_reply_to":999,"log":5,"to_log":0,"ack":99}}),
        ),
        line(json!({"src":"n2","dest":"n0","body":{"type":"error","in_reply_to":3,"code":11}})),
        line(
            json!({"src":"c1","dest":"n0","body":{"type":"read_ok","in_reply_to":3,"messages":[]}}),
        ),
        // A peer that restarted with a new log.
        line(
            json!({"src":"n1","dest":"n0","body":{"type":"gossip","msg_id":6,"log":6,"to_log":0,
            "base":0,"from":0,"upto":1,"values":[5],"ack":0}}),
        ),
        // Unknown senders.
        line(
            json!({"src":"n9","dest":"n0","body":{"type":"gossip","msg_id":7,"log":1,"to_log":0,
            "base":0,"from":0,"upto":1,"values":[666],"ack":0}}),
        ),
        req("c1", 10, json!({"type":"read"})),
    ];
    let out = run_node(&lines, data.path(), ShellConfig::default());
    let got = replies(&out, "c1");
    assert_eq!(got.len(), 1, "only the read is answered: {got:?}");
    assert_eq!(read_set(&got[&10][0]), BTreeSet::from([1, 2, 3, 4, 5]));
    // The peer gets acknowledgements, never errors in reply to its replies.
    for o in out
        .iter()
        .filter(|o| o["dest"] == "n1" || o["dest"] == "n2")
    {
        assert_ne!(o["body"]["type"], "error", "{o}");
    }
}

#[test]
fn damaged_store_files_are_repaired_or_ignored() {
    // Pure garbage.
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join(store::dir_name("n0"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(store::FILE_NAME),
        b"\x07\x00\x00\x00garbage garbage",
    )
    .unwrap();
    let lines = [
        init("n0", &["n0"]),
        req("c1", 1, json!({"type":"broadcast","message":1})),
        req("c1", 2, json!({"type":"read"})),
    ];
    let out = run_node(&lines, data.path(), ShellConfig::default());
    assert_eq!(out[0]["body"]["type"], "init_ok");
    assert_eq!(read_set(&replies(&out, "c1")[&2][0]), BTreeSet::from([1]));

    // A good log with a torn tail, and one with frames that pass the checksum but do not decode.
    for tail in [&b"\xff\xff\x00\x00\x01\x02"[..], &b""[..]] {
        let data = tempfile::tempdir().unwrap();
        let lines = [
            init("n0", &["n0"]),
            req("c1", 1, json!({"type":"broadcast","message":1})),
            req("c1", 2, json!({"type":"broadcast","message":2})),
        ];
        let out = run_node(&lines, data.path(), ShellConfig::default());
        assert_eq!(replies(&out, "c1").len(), 2);
        let file = data.path().join("n0").join(store::FILE_NAME);
        let mut bytes = std::fs::read(&file).unwrap();
        // Drop the zero-filled space reserved for appends: the tail goes right after the log.
        bytes.truncate(store::scan(&bytes).valid_len);
        bytes.extend_from_slice(tail);
        if tail.is_empty() {
            store::encode(b"\x09not a record", &mut bytes);
        }
        std::fs::write(&file, &bytes).unwrap();
        let out = run_node(
            &[init("n0", &["n0"]), req("c1", 3, json!({"type":"read"}))],
            data.path(),
            ShellConfig::default(),
        );
        assert_eq!(
            read_set(&replies(&out, "c1")[&3][0]),
            BTreeSet::from([1, 2])
        );
        // The repaired log keeps working across another restart.
        let out = run_node(
            &[
                init("n0", &["n0"]),
                req("c1", 4, json!({"type":"broadcast","message":3})),
            ],
            data.path(),
            ShellConfig::default(),
        );
        assert_eq!(replies(&out, "c1")[&4][0]["type"], "broadcast_ok");
        let opened = Store::open(&data.path().join("n0"), true).unwrap();
        assert!(opened.repaired.is_none());
        drop(opened); // releases the log's lock for the next incarnation
        let out = run_node(
            &[init("n0", &["n0"]), req("c1", 5, json!({"type":"read"}))],
            data.path(),
            ShellConfig::default(),
        );
        assert_eq!(
            read_set(&replies(&out, "c1")[&5][0]),
            BTreeSet::from([1, 2, 3])
        );
    }
}

#[test]
fn an_unusable_data_directory_fails_init_loudly() {
    let data = tempfile::tempdir().unwrap();
    // The node's directory is a file: the store cannot be created.
    std::fs::write(data.path().join("n0"), b"in the way").unwrap();
    let shell = ShellConfig {
        data_root: data.path().to_path_buf(),
        ..ShellConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (out, result) = rt.block_on(async move {
        let (mut feed, node_in) = tokio::io::duplex(1 << 16);
        let (node_out, mut drain) = tokio::io::duplex(1 << 16);
        let node = tokio::spawn(run_io::<Broadcast, _, _>(
            BroadcastConfig::default(),
            shell,
            node_in,
            node_out,
        ));
        feed.write_all(&init("n0", &["n0"])).await.unwrap();
        feed.write_all(b"\n").await.unwrap();
        let mut out = Vec::new();
        drain.read_to_end(&mut out).await.unwrap();
        (out, node.await.unwrap())
    });
    assert!(result.is_err(), "the node exits with an error");
    let reply: Value = serde_json::from_slice(out.trim_ascii()).unwrap();
    assert_eq!(reply["body"]["type"], "error");
    assert_eq!(reply["body"]["code"], 13);
    assert_eq!(reply["body"]["in_reply_to"], 1);
}

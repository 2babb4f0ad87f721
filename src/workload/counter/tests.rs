//! Both designs driven through the same [`Host`] the shell runs, without tokio: a tiny cluster
//! with instant delivery, a virtual clock, cut links, a virtual disk per node, and (for the seq-kv
//! design) a linearizable stand-in for `seq-kv`. The runner's simulator sweeps the designs over
//! many seeded schedules with faults (`maelstrom/tests/sim_counter.rs`); these tests pin the
//! handlers' rules one by one.

use super::*;
use crate::host::{Host, Outbound};
use crate::node::{parse_line, Inbound, Millis, Workload};
use crate::wire::{is_client, Body, Common, Envelope, ErrorCode};
use crate::workload::broadcast;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};

/// A cluster of `W` nodes `n0…`, each in a [`Host`] (client guard off: tests reuse ids).
struct Cluster<W: Workload> {
    cfg: W::Config,
    n: usize,
    hosts: Vec<Host<W>>,
    /// Durable records per node, across incarnations.
    disks: Vec<Vec<Vec<u8>>>,
    /// Records made durable by each node's current incarnation.
    written: Vec<u64>,
    /// Make records durable right after every call (an instant disk).
    auto_flush: bool,
    /// Lines in flight, as JSON (every message goes through the wire format).
    in_flight: VecDeque<String>,
    replies: Vec<Value>,
    now: Millis,
    cut: HashSet<(usize, usize)>,
    node_msgs: usize,
    /// The stand-in for `seq-kv`: linearizable.
    kv: HashMap<String, Value>,
    boot: u64,
}

fn idx(id: &str) -> Option<usize> {
    id.strip_prefix('n')?.parse().ok()
}

impl<W: Workload> Cluster<W>
where
    W::Msg: Clone,
{
    fn new(n: usize, cfg: W::Config) -> Self {
        let mut c = Cluster {
            cfg,
            n,
            hosts: Vec::new(),
            disks: vec![vec![]; n],
            written: vec![0; n],
            auto_flush: true,
            in_flight: VecDeque::new(),
            replies: Vec::new(),
            now: 0,
            cut: HashSet::new(),
            node_msgs: 0,
            kv: HashMap::new(),
            boot: 1_000,
        };
        for i in 0..n {
            let h = c.boot_host(i);
            c.hosts.push(h);
            c.collect(i);
        }
        c.replies.clear();
        c
    }

    fn boot_host(&mut self, i: usize) -> Host<W> {
        let mut host = Host::new(self.cfg.clone(), 0, 0, self.now);
        let init = Envelope {
            id: None,
            src: "c0".to_string(),
            dest: format!("n{i}"),
            body: Body {
                msg_id: Some(1),
                in_reply_to: None,
                payload: Common::Init {
                    node_id: format!("n{i}"),
                    node_ids: (0..self.n).map(|k| format!("n{k}")).collect(),
                },
            },
        };
        let request = host.receive(self.now, Inbound::Common(init)).unwrap();
        host.init(self.now, request, Ok(self.disks[i].clone()), self.boot);
        host
    }

    /// A kill and a restart of node `i`: what was not durable is gone.
    fn restart(&mut self, i: usize) {
        self.boot += 1;
        self.written[i] = 0;
        self.hosts[i] = self.boot_host(i);
        self.in_flight
            .retain(|l| idx(l_dest(l).as_str()) != Some(i));
        self.collect(i);
    }

    /// Makes node `i`'s pending records durable.
    fn flush(&mut self, i: usize) {
        let (disk, written) = (&mut self.disks[i], &mut self.written[i]);
        self.hosts[i].persist_with(self.now, |records| {
            *written += records.len() as u64;
            disk.extend(records);
            Some(*written)
        });
        self.route_out(i);
    }

    /// Takes node `i`'s outputs into the network (after an instant flush if `auto_flush`).
    fn collect(&mut self, i: usize) {
        if self.auto_flush {
            self.flush(i);
        }
        self.route_out(i);
    }

    fn route_out(&mut self, i: usize) {
        for o in self.hosts[i].drain() {
            let line = match &o {
                Outbound::Msg(m) => serde_json::to_string(m).unwrap(),
                Outbound::Host(m) => serde_json::to_string(m).unwrap(),
            };
            self.in_flight.push_back(line);
        }
    }

    /// Delivers a client request to node `i`.
    fn request(&mut self, i: usize, client: &str, msg_id: u64, body: Value) {
        let mut body = body;
        body["msg_id"] = json!(msg_id);
        let line = json!({"src": client, "dest": format!("n{i}"), "body": body}).to_string();
        self.in_flight.push_back(line);
    }

    /// Delivers everything in flight (and what that sends) until nothing is left; ticks run as
    /// time moves on by `step` ms until the nodes are quiet or `until` passes.
    fn run(&mut self, step: Millis, until: Millis) {
        loop {
            while let Some(line) = self.in_flight.pop_front() {
                self.deliver(line);
            }
            let due = (0..self.n)
                .filter_map(|i| self.hosts[i].next_tick(self.now))
                .min();
            match due {
                Some(t) if t <= until => {
                    self.now = self.now.max(t).max(self.now + step.min(1));
                    for i in 0..self.n {
                        self.hosts[i].tick(self.now);
                        self.collect(i);
                    }
                }
                _ => break,
            }
        }
    }

    fn deliver(&mut self, line: String) {
        let v: Value = serde_json::from_str(&line).unwrap();
        let (src, dest) = (v["src"].as_str().unwrap(), v["dest"].as_str().unwrap());
        if is_client(dest) {
            self.replies.push(v);
            return;
        }
        if dest == SERVICE {
            let reply = self.kv_reply(&v["body"]);
            let line = json!({"src": SERVICE, "dest": src, "body": reply}).to_string();
            self.in_flight.push_back(line);
            return;
        }
        let Some(d) = idx(dest) else { return };
        if let Some(s) = idx(src) {
            self.node_msgs += 1;
            if self.cut.contains(&(s.min(d), s.max(d))) {
                return;
            }
        }
        let inbound = parse_line::<W::Msg>(&line).unwrap();
        assert!(self.hosts[d].receive(self.now, inbound).is_none());
        self.collect(d);
    }

    /// A linearizable KV answering as Maelstrom's services do.
    fn kv_reply(&mut self, body: &Value) -> Value {
        let irt = body["msg_id"].clone();
        let key = body["key"].as_str().unwrap().to_string();
        let mut r = match body["type"].as_str().unwrap() {
            "read" => match self.kv.get(&key) {
                Some(v) => json!({"type": "read_ok", "value": v}),
                None => json!({"type": "error", "code": 20}),
            },
            "write" => {
                self.kv.insert(key, body["value"].clone());
                json!({"type": "write_ok"})
            }
            "cas" => match self.kv.get(&key) {
                Some(cur) if *cur != body["from"] => json!({"type": "error", "code": 22}),
                None if body["create_if_not_exists"] != json!(true) => {
                    json!({"type": "error", "code": 20})
                }
                _ => {
                    self.kv.insert(key, body["to"].clone());
                    json!({"type": "cas_ok"})
                }
            },
            other => panic!("unexpected {other}"),
        };
        r["in_reply_to"] = irt;
        r
    }

    /// The reply to `client`'s request `msg_id`, if any.
    fn reply(&self, client: &str, msg_id: u64) -> Option<&Value> {
        self.replies
            .iter()
            .find(|r| r["dest"] == client && r["body"]["in_reply_to"] == msg_id)
            .map(|r| &r["body"])
    }

    /// Reads node `i` (fresh request id) and returns the `value` of its `read_ok`.
    fn read(&mut self, i: usize) -> Value {
        let id = 1_000_000 + self.replies.len() as u64 + self.in_flight.len() as u64;
        self.request(i, "c9", id, json!({"type": "read"}));
        self.run(10, self.now + 60_000);
        let r = self.reply("c9", id).expect("read answered").clone();
        assert_eq!(r["type"], "read_ok", "{r}");
        r["value"].clone()
    }
}

fn l_dest(line: &str) -> String {
    serde_json::from_str::<Value>(line).unwrap()["dest"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn crdt(kind: Kind) -> CrdtConfig {
    CrdtConfig {
        kind,
        broadcast: BroadcastConfig::default(),
    }
}

fn add(delta: i64) -> Value {
    json!({"type": "add", "delta": delta})
}

// ---------------------------------------------------------------------------------------------
// The CRDT design

#[test]
fn crdt_wire_format_parses_client_and_peer_messages() {
    let parse = |body: Value| {
        let line = json!({"src": "c1", "dest": "n0", "body": body}).to_string();
        parse_line::<CrdtMsg>(&line).unwrap()
    };
    let payload = |i: Inbound<CrdtMsg>| match i {
        Inbound::Msg(m) => m.body.payload,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        payload(parse(json!({"type": "add", "delta": 3, "msg_id": 1}))),
        CrdtMsg::Add {
            element: None,
            delta: Some(3)
        }
    );
    assert_eq!(
        payload(parse(
            json!({"type": "add", "element": [1, "x"], "msg_id": 1})
        )),
        CrdtMsg::Add {
            element: Some(json!([1, "x"])),
            delta: None
        }
    );
    assert_eq!(payload(parse(json!({"type": "read"}))), CrdtMsg::Read);
    let gossip = json!({"type": "gossip", "log": 5, "to_log": 0, "base": 0, "from": 0,
        "upto": 1, "values": [[7, 1]], "ack": 0, "msg_id": 4});
    assert!(matches!(
        payload(parse(gossip)),
        CrdtMsg::Peer(broadcast::Msg::Gossip { .. })
    ));
    // The broadcast node's health checks pass through too (a hub that answered them error 10
    // kept its leaves pinging it for ever).
    let nonce = "0123456789abcdef0123456789abcdef";
    assert!(matches!(
        payload(parse(json!({"type": "ping", "nonce": nonce}))),
        CrdtMsg::Peer(broadcast::Msg::Ping { .. })
    ));
    assert!(matches!(
        payload(parse(json!({"type": "pong", "nonce": nonce}))),
        CrdtMsg::Peer(broadcast::Msg::Pong { .. })
    ));
    assert!(matches!(
        payload(parse(json!({"type": "release"}))),
        CrdtMsg::Peer(broadcast::Msg::Release)
    ));
    // A delta that is not an integer is a malformed request, an unknown type is not supported.
    for (body, code) in [
        (
            json!({"type": "add", "delta": 1.5, "msg_id": 2}),
            ErrorCode::MalformedRequest,
        ),
        (
            json!({"type": "frobnicate", "msg_id": 2}),
            ErrorCode::NotSupported,
        ),
    ] {
        match parse(body.clone()) {
            Inbound::Reject { code: c, .. } => assert_eq!(c, code, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    // Replies serialise to Maelstrom's closed schemas.
    let ok = serde_json::to_value(CrdtMsg::ReadOk {
        value: ReadValue::Count(12),
    })
    .unwrap();
    assert_eq!(ok, json!({"type": "read_ok", "value": 12}));
    let ok = serde_json::to_value(CrdtMsg::ReadOk {
        value: ReadValue::Set(vec![json!(1), json!("a")].into()),
    })
    .unwrap();
    assert_eq!(ok, json!({"type": "read_ok", "value": [1, "a"]}));
}

#[test]
fn crdt_counters_converge_and_count_every_add_once() {
    for kind in [Kind::GCounter, Kind::PnCounter] {
        let mut c = Cluster::<Crdt>::new(3, crdt(kind));
        let mut expected = 0;
        for k in 0..30u64 {
            // The same delta many times: each add is its own element.
            let delta = match kind {
                Kind::PnCounter if k % 3 == 0 => -2,
                _ => 1,
            };
            expected += delta;
            c.request((k % 3) as usize, "c1", k + 1, add(delta));
        }
        c.run(10, 60_000);
        for k in 0..30 {
            assert_eq!(c.reply("c1", k + 1).unwrap()["type"], "add_ok");
        }
        for i in 0..3 {
            assert_eq!(c.read(i), json!(expected), "{kind:?} n{i}");
        }
    }
}

#[test]
fn crdt_g_set_reads_return_the_elements() {
    let mut c = Cluster::<Crdt>::new(3, crdt(Kind::GSet));
    for k in 0..10u64 {
        let el = json!({"type": "add", "element": k % 7});
        c.request((k % 3) as usize, "c1", k + 1, el);
    }
    c.run(10, 60_000);
    for i in 0..3 {
        let mut got: Vec<u64> = c
            .read(i)
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (0..7).collect::<Vec<_>>());
    }
}

#[test]
fn crdt_adds_on_both_sides_of_a_partition_meet_after_it_heals() {
    let mut c = Cluster::<Crdt>::new(3, crdt(Kind::GCounter));
    // n2 (a leaf of the default star around n0) is cut off.
    c.cut.extend([(0, 2), (1, 2)]);
    for k in 0..10u64 {
        c.request(if k % 2 == 0 { 1 } else { 2 }, "c1", k + 1, add(k as i64));
    }
    c.run(10, 5_000);
    assert_eq!(
        c.read(2),
        json!(1 + 3 + 5 + 7 + 9),
        "n2 sees only its own adds"
    );
    c.cut.clear();
    c.run(10, c.now + 60_000);
    for i in 0..3 {
        assert_eq!(c.read(i), json!(45));
    }
}

#[test]
fn crdt_add_ok_waits_for_the_add_to_be_durable() {
    let mut c = Cluster::<Crdt>::new(1, crdt(Kind::GCounter));
    c.auto_flush = false;
    c.request(0, "c1", 1, add(5));
    c.run(10, 100);
    assert!(c.reply("c1", 1).is_none(), "acknowledged before durable");
    c.flush(0);
    c.run(10, 100);
    assert_eq!(c.reply("c1", 1).unwrap()["type"], "add_ok");
}

#[test]
fn a_restarted_crdt_node_keeps_its_adds_and_never_reuses_an_add_id() {
    let mut c = Cluster::<Crdt>::new(2, crdt(Kind::GCounter));
    for k in 0..5u64 {
        c.request(1, "c1", k + 1, add(2));
    }
    c.run(10, 10_000);
    // The boot clock here is before 2025, where unique-ids' clock gives nothing: only the
    // recovered ids keep the new incarnation's ids fresh.
    c.restart(1);
    assert_eq!(c.read(1), json!(10), "recovered from its log");
    c.request(1, "c1", 100, add(2));
    c.run(10, c.now + 10_000);
    assert_eq!(c.reply("c1", 100).unwrap()["type"], "add_ok");
    for i in 0..2 {
        assert_eq!(
            c.read(i),
            json!(12),
            "n{i}: the new add counted, not merged with an old one"
        );
    }
}

#[test]
fn crdt_refuses_what_its_workload_does_not_have() {
    let mut c = Cluster::<Crdt>::new(1, crdt(Kind::GCounter));
    c.request(0, "c1", 1, add(-1));
    c.request(0, "c1", 2, json!({"type": "add", "element": 3}));
    c.request(0, "c1", 3, json!({"type": "broadcast", "message": 3}));
    c.run(10, 100);
    for (id, code) in [(1, 12), (2, 12), (3, 10)] {
        let r = c.reply("c1", id).unwrap();
        assert_eq!(
            (r["type"].clone(), r["code"].clone()),
            (json!("error"), json!(code))
        );
    }
    assert_eq!(c.read(0), json!(0));
    let mut c = Cluster::<Crdt>::new(1, crdt(Kind::PnCounter));
    c.request(0, "c1", 1, add(-4));
    c.run(10, 100);
    assert_eq!(c.read(0), json!(-4));
}

// ---------------------------------------------------------------------------------------------
// The seq-kv design

fn kv(kind: Kind) -> KvConfig {
    KvConfig { kind }
}

#[test]
fn seq_kv_counter_counts_concurrent_adds_from_every_node_once() {
    let mut c = Cluster::<KvCounter>::new(3, kv(Kind::PnCounter));
    for k in 0..30u64 {
        c.request((k % 3) as usize, "c1", k + 1, add(k as i64 - 10));
    }
    c.run(10, 60_000);
    for k in 0..30 {
        assert_eq!(c.reply("c1", k + 1).unwrap()["type"], "add_ok");
    }
    assert_eq!(c.kv[KEY], json!((0..30).map(|k| k - 10).sum::<i64>()));
    assert_eq!(c.node_msgs, 0, "nodes never talk to each other");
    for i in 0..3 {
        assert_eq!(c.read(i), json!(135));
    }
}

/// Drives one node by hand against a scripted service.
fn kv_node(boot: u64) -> Host<KvCounter> {
    let mut c = Cluster::<KvCounter>::new(1, kv(Kind::GCounter));
    c.boot = boot;
    let mut h = c.boot_host(0);
    h.drain(); // init_ok
    h
}

fn kv_deliver(h: &mut Host<KvCounter>, src: &str, body: Value) -> Vec<Value> {
    let line = json!({"src": src, "dest": "n0", "body": body}).to_string();
    assert!(h.receive(0, parse_line(&line).unwrap()).is_none());
    h.drain()
        .into_iter()
        .map(|o| serde_json::to_value(&o).unwrap())
        .collect()
}

#[test]
fn seq_kv_add_retries_a_failed_cas_from_a_fresh_read() {
    let mut h = kv_node(1);
    let out = kv_deliver(
        &mut h,
        "c1",
        json!({"type": "add", "delta": 3, "msg_id": 1}),
    );
    assert_eq!(out[0]["dest"], SERVICE);
    assert_eq!(out[0]["body"]["type"], "read");
    let id = out[0]["body"]["msg_id"].clone();
    // The counter does not exist yet: count from 0, creating it.
    let out = kv_deliver(
        &mut h,
        SERVICE,
        json!({"type": "error", "code": 20, "in_reply_to": id}),
    );
    let cas = &out[0]["body"];
    assert_eq!(
        (cas["type"].clone(), cas["from"].clone(), cas["to"].clone()),
        (json!("cas"), json!(0), json!(3))
    );
    assert_eq!(cas["create_if_not_exists"], true);
    // Someone else got in first: read again, then cas from what that read says.
    let out = kv_deliver(
        &mut h,
        SERVICE,
        json!({"type": "error", "code": 22, "in_reply_to": cas["msg_id"]}),
    );
    assert_eq!(out[0]["body"]["type"], "read");
    let out = kv_deliver(
        &mut h,
        SERVICE,
        json!({"type": "read_ok", "value": 7, "in_reply_to": out[0]["body"]["msg_id"]}),
    );
    let cas = &out[0]["body"];
    assert_eq!(
        (cas["from"].clone(), cas["to"].clone()),
        (json!(7), json!(10))
    );
    let out = kv_deliver(
        &mut h,
        SERVICE,
        json!({"type": "cas_ok", "in_reply_to": cas["msg_id"]}),
    );
    assert_eq!(out[0]["dest"], "c1");
    assert_eq!(out[0]["body"], json!({"type": "add_ok", "in_reply_to": 1}));
}

#[test]
fn seq_kv_read_first_writes_a_value_never_written_before() {
    let mut values = HashSet::new();
    for boot in [1, 2] {
        let mut h = kv_node(boot);
        for k in 0..3 {
            let out = kv_deliver(&mut h, "c1", json!({"type": "read", "msg_id": k}));
            let w = &out[0]["body"];
            assert_eq!(w["type"], "write");
            assert_eq!(w["key"], "sync-n0");
            assert!(values.insert(w["value"].to_string()), "{w} written before");
            let out = kv_deliver(
                &mut h,
                SERVICE,
                json!({"type": "write_ok", "in_reply_to": w["msg_id"]}),
            );
            let r = &out[0]["body"];
            assert_eq!(
                (r["type"].clone(), r["key"].clone()),
                (json!("read"), json!(KEY))
            );
            let out = kv_deliver(
                &mut h,
                SERVICE,
                json!({"type": "read_ok", "value": 4, "in_reply_to": r["msg_id"]}),
            );
            assert_eq!(
                out[0]["body"],
                json!({"type": "read_ok", "value": 4, "in_reply_to": k})
            );
        }
    }
}

#[test]
fn seq_kv_gives_up_after_max_attempts_with_a_definite_error() {
    let mut h = kv_node(1);
    let mut out = kv_deliver(
        &mut h,
        "c1",
        json!({"type": "add", "delta": 1, "msg_id": 1}),
    );
    for _ in 0..kv::MAX_ATTEMPTS {
        let r = out[0]["body"]["msg_id"].clone();
        out = kv_deliver(
            &mut h,
            SERVICE,
            json!({"type": "read_ok", "value": 0, "in_reply_to": r}),
        );
        let c = out[0]["body"]["msg_id"].clone();
        out = kv_deliver(
            &mut h,
            SERVICE,
            json!({"type": "error", "code": 22, "in_reply_to": c}),
        );
    }
    assert_eq!(out[0]["dest"], "c1");
    assert_eq!(out[0]["body"]["code"], 11);
}

#[test]
fn options_choose_the_design_and_pass_the_rest_to_the_broadcast_knobs() {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (d, b) = options(Kind::GCounter, env(&[]), args(&[])).unwrap();
    assert_eq!((d, b), (Design::Crdt, BroadcastConfig::default()));
    let (d, b) = options(
        Kind::GCounter,
        env(&[("MURMUR_DESIGN", "seq-kv"), ("MURMUR_SYNC_MS", "50")]),
        args(&[]),
    )
    .unwrap();
    assert_eq!((d, b.sync_ms), (Design::SeqKv, 50));
    let (d, _) = options(
        Kind::PnCounter,
        env(&[("MURMUR_DESIGN", "seq-kv")]),
        args(&["--design", "crdt"]),
    )
    .unwrap();
    assert_eq!(d, Design::Crdt, "arguments win");
    let (d, _) = options(Kind::PnCounter, env(&[]), args(&["--design=seq-kv"])).unwrap();
    assert_eq!(d, Design::SeqKv);
    assert!(options(Kind::GSet, env(&[("MURMUR_DESIGN", "seq-kv")]), args(&[])).is_err());
    assert!(options(
        Kind::GCounter,
        env(&[("MURMUR_DESIGN", "paxos")]),
        args(&[])
    )
    .is_err());
    assert!(options(Kind::GCounter, env(&[]), args(&["--design"])).is_err());
}

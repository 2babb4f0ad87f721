use super::*;
use crate::host::{Host, Outbound};
use crate::node::Inbound;
use crate::wire::{is_client, Body, Common, Envelope, ErrorBody};
use rand::rngs::StdRng;
use serde_json::json;
use std::collections::{BTreeSet, HashSet};

fn info(me: &str, n: usize) -> InitInfo {
    InitInfo {
        node_id: me.into(),
        node_ids: (0..n).map(|i| format!("n{i}")).collect(),
        boot_unix_micros: 42,
        recovered: vec![],
    }
}

fn req(src: &str, dest: &str, msg_id: u64, payload: Msg) -> Message<Msg> {
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

/// The clusters' compaction minimum: low, so that tests with a few dozen values compact.
const COMPACT_MIN: u64 = 512;

/// A tiny cluster with instant delivery, a seeded loss/partition filter, a virtual clock and a
/// virtual disk per node. Each node runs in the same [`Host`] the shell and the simulator drive
/// (with the client guard off: these tests reuse request ids freely). By default every node's
/// records are made durable right after each call (`auto_flush`), which behaves like an instant
/// disk; tests of the acknowledgement rule turn it off and call [`Cluster::flush`] themselves.
struct Cluster {
    cfg: BroadcastConfig,
    hosts: Vec<Host<Broadcast>>,
    /// Durable records per node, across incarnations.
    disks: Vec<Vec<Vec<u8>>>,
    /// Records made durable in each node's current incarnation.
    written: Vec<u64>,
    /// Snapshots that replaced a disk.
    compactions: usize,
    auto_flush: bool,
    in_flight: VecDeque<Message<Msg>>,
    client_out: Vec<Message<Msg>>,
    now: Millis,
    /// Pairs (a, b) whose messages are dropped, both directions.
    cut: HashSet<(usize, usize)>,
    sent_between_nodes: usize,
    /// Node-to-node messages sent, by body type.
    sent_by_type: std::collections::BTreeMap<String, usize>,
    rng: StdRng,
    loss: f64,
}

/// A host for node `i` of `n`, initialised at `now` with `recovered`.
fn boot(
    i: usize,
    n: usize,
    cfg: &BroadcastConfig,
    recovered: Vec<Vec<u8>>,
    now: Millis,
) -> Host<Broadcast> {
    let mut host = Host::new(cfg.clone(), 0, 0, now);
    // Low, so that the clusters' disks are compacted often (see `Cluster::flush`).
    host.set_compact_min(Some(COMPACT_MIN));
    let init = Envelope {
        id: None,
        src: "c0".to_string(),
        dest: format!("n{i}"),
        body: Body {
            msg_id: Some(1),
            in_reply_to: None,
            payload: Common::Init {
                node_id: format!("n{i}"),
                node_ids: (0..n).map(|k| format!("n{k}")).collect(),
            },
        },
    };
    let request = host
        .receive(now, Inbound::Common(init))
        .expect("init is handed to the driver");
    host.init(now, request, Ok(recovered), 42);
    host
}

impl Cluster {
    fn new(n: usize, cfg: &BroadcastConfig) -> Self {
        let mut c = Cluster {
            cfg: cfg.clone(),
            hosts: (0..n).map(|i| boot(i, n, cfg, vec![], 0)).collect(),
            disks: vec![vec![]; n],
            written: vec![0; n],
            compactions: 0,
            auto_flush: true,
            in_flight: VecDeque::new(),
            client_out: vec![],
            now: 0,
            cut: HashSet::new(),
            sent_between_nodes: 0,
            sent_by_type: Default::default(),
            rng: StdRng::seed_from_u64(7),
            loss: 0.0,
        };
        for i in 0..n {
            c.collect(i);
        }
        c.client_out.clear();
        c
    }

    fn idx(id: &str) -> usize {
        id[1..].parse().unwrap()
    }

    /// Node `i`'s workload.
    fn node(&self, i: usize) -> &Broadcast {
        self.hosts[i].node().expect("initialised")
    }

    /// Node `i`'s workload messages waiting in its host's outbox (not yet collected).
    fn outbox(&self, i: usize) -> Vec<&Message<Msg>> {
        self.hosts[i]
            .outbox()
            .iter()
            .filter_map(|o| match o {
                Outbound::Msg(m) => Some(m),
                Outbound::Host(_) => None,
            })
            .collect()
    }

    /// Every node's workload, in order.
    fn nodes(&self) -> impl Iterator<Item = &Broadcast> {
        self.hosts.iter().map(|h| h.node().expect("initialised"))
    }

    /// Takes node `i`'s outbox without routing it: its workload messages.
    fn take_out(&mut self, i: usize) -> Vec<Message<Msg>> {
        self.hosts[i]
            .drain()
            .into_iter()
            .filter_map(|o| match o {
                Outbound::Msg(m) => Some(m),
                Outbound::Host(_) => None,
            })
            .collect()
    }

    /// Makes node `i`'s pending records durable and tells it so, then compacts its disk if its
    /// host says so (as the shell does after a call).
    fn flush(&mut self, i: usize) {
        let (disk, written) = (&mut self.disks[i], &mut self.written[i]);
        self.hosts[i].persist_with(self.now, |records| {
            *written += records.len() as u64;
            disk.extend(records);
            Some(*written)
        });
        if let Some(snapshot) = self.hosts[i].take_compaction() {
            self.disks[i] = snapshot;
            self.hosts[i].compacted(true);
            self.compactions += 1;
        }
    }

    /// Kills node `i` (its unflushed records and queued outputs are lost, as are messages on their
    /// way to it) and restarts it from its disk.
    fn crash(&mut self, i: usize) {
        self.restart(i, self.disks[i].clone());
    }

    /// Restarts node `i` with `recovered` as its durable records.
    fn restart(&mut self, i: usize, recovered: Vec<Vec<u8>>) {
        self.hosts[i] = boot(i, self.hosts.len(), &self.cfg, recovered, self.now);
        self.written[i] = 0;
        let me = format!("n{i}");
        self.in_flight.retain(|m| m.dest != me);
        self.collect(i);
        self.client_out.retain(|m| m.dest != "c0");
    }

    /// What a driver does after every call into a host: hand off records (here, if
    /// `auto_flush`), ask when the next tick is due (the workload remembers when work became
    /// pending), and route the outputs.
    fn collect(&mut self, i: usize) {
        if self.auto_flush {
            self.flush(i);
        }
        let _ = self.hosts[i].next_tick(self.now);
        for out in self.hosts[i].drain() {
            let Outbound::Msg(m) = out else {
                continue; // the host's own lines: init_ok, errors
            };
            if is_client(&m.dest) {
                self.client_out.push(m);
            } else {
                self.sent_between_nodes += 1;
                *self
                    .sent_by_type
                    .entry(types(std::slice::from_ref(&m)).remove(0))
                    .or_default() += 1;
                if std::env::var("TRACE_CLUSTER").is_ok() {
                    eprintln!("t={} {m:?}", self.now);
                }
                self.in_flight.push_back(m);
            }
        }
    }

    /// Hands node `i` one message (as its shell would) and collects what it sent.
    fn receive(&mut self, i: usize, m: Message<Msg>) {
        let _ = self.hosts[i].receive(self.now, Inbound::Msg(m));
        self.collect(i);
    }

    /// Runs node `i`'s tick if it is due at `now`, without collecting.
    fn tick(&mut self, i: usize, now: Millis) {
        self.hosts[i].tick(now);
    }

    fn client(&mut self, node: usize, msg_id: u64, payload: Msg) {
        let m = req("c1", &format!("n{node}"), msg_id, payload);
        self.receive(node, m);
    }

    fn deliver_all(&mut self) {
        while let Some(m) = self.in_flight.pop_front() {
            let (a, b) = (Self::idx(&m.src), Self::idx(&m.dest));
            if self.cut.contains(&(a, b))
                || self.cut.contains(&(b, a))
                || self.rng.random_bool(self.loss)
            {
                continue;
            }
            self.receive(b, m);
        }
    }

    /// Advances virtual time in sync-interval steps, delivering everything instantly.
    fn run_for(&mut self, ms: Millis, step: Millis) {
        let end = self.now + ms;
        while self.now < end {
            self.now += step;
            for i in 0..self.hosts.len() {
                self.tick(i, self.now);
                self.collect(i);
            }
            self.deliver_all();
        }
    }

    fn partition(&mut self, side: &[usize]) {
        let n = self.hosts.len();
        for &a in side {
            for b in 0..n {
                if !side.contains(&b) {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    fn sets(&self) -> Vec<BTreeSet<i64>> {
        (0..self.hosts.len())
            .map(|i| {
                self.node(i)
                    .values()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect()
            })
            .collect()
    }
}

fn cfg(overlay: Overlay) -> BroadcastConfig {
    BroadcastConfig {
        overlay,
        ..BroadcastConfig::default()
    }
}

#[test]
fn broadcast_read_and_duplicates_on_one_node() {
    let mut c = Cluster::new(1, &cfg(Overlay::Star));
    c.client(0, 1, Msg::Broadcast { message: json!(5) });
    c.client(0, 2, Msg::Broadcast { message: json!(5) });
    c.client(0, 3, Msg::Broadcast { message: json!(6) });
    c.client(0, 4, Msg::Read);
    let bodies: Vec<Value> = c
        .client_out
        .iter()
        .map(|m| serde_json::to_value(&m.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec![
            json!({"type":"broadcast_ok","in_reply_to":1}),
            json!({"type":"broadcast_ok","in_reply_to":2}),
            json!({"type":"broadcast_ok","in_reply_to":3}),
            json!({"type":"read_ok","messages":[5,6],"in_reply_to":4}),
        ]
    );
    assert_eq!(c.sent_between_nodes, 0, "a single node sends nothing");
}

#[test]
fn values_are_any_json_with_json_equality() {
    let mut c = Cluster::new(1, &cfg(Overlay::Star));
    for (i, v) in [
        json!(1),
        json!(1.0),
        json!("1"),
        json!({"a":[1]}),
        json!({"a":[1]}),
        json!(null),
    ]
    .into_iter()
    .enumerate()
    {
        c.client(0, i as u64, Msg::Broadcast { message: v });
    }
    assert_eq!(
        c.node(0).values(),
        &[
            json!(1),
            json!(1.0),
            json!("1"),
            json!({"a":[1]}),
            json!(null)
        ]
    );
}

#[test]
fn topology_is_acknowledged_and_used_by_the_given_overlay() {
    let mut c = Cluster::new(3, &cfg(Overlay::Given));
    let topo: HashMap<String, Vec<String>> = [
        ("n0", vec!["n1"]),
        ("n1", vec!["n0", "n2", "nX"]),
        ("n2", vec!["n1"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    for i in 0..3 {
        c.client(
            i,
            10,
            Msg::Topology {
                topology: topo.clone(),
            },
        );
    }
    assert!(c
        .client_out
        .iter()
        .all(|m| m.body.payload == Msg::TopologyOk && m.body.in_reply_to == Some(10)));
    assert_eq!(
        c.node(1).peers(),
        vec!["n0", "n2"],
        "unknown names are ignored"
    );
    c.client(0, 1, Msg::Broadcast { message: json!(1) });
    c.run_for(1000, 100);
    assert!(
        c.sets().iter().all(|s| s.contains(&1)),
        "forwarded over two hops"
    );
}

fn converges(overlay: Overlay, n: usize) {
    let mut c = Cluster::new(n, &cfg(overlay));
    for v in 0..50i64 {
        c.client(
            (v as usize * 7) % n,
            v as u64,
            Msg::Broadcast { message: json!(v) },
        );
        if v % 10 == 0 {
            c.run_for(100, 100);
        }
    }
    c.run_for(3000, 100);
    let want: BTreeSet<i64> = (0..50).collect();
    for (i, s) in c.sets().iter().enumerate() {
        assert_eq!(s, &want, "{overlay:?}: node {i}");
    }
    // Quiescence: once everything is acknowledged, nothing more is sent.
    let before = c.sent_between_nodes;
    c.run_for(5000, 100);
    assert_eq!(
        c.sent_between_nodes, before,
        "{overlay:?}: idle nodes must not send"
    );
}

#[test]
fn every_overlay_converges_and_then_goes_quiet() {
    for overlay in [
        Overlay::Star,
        Overlay::Total,
        Overlay::Tree(2),
        Overlay::Tree(4),
    ] {
        converges(overlay, 7);
    }
}

#[test]
fn partitioned_values_arrive_after_heal() {
    for overlay in [Overlay::Star, Overlay::Total, Overlay::Tree(2)] {
        let mut c = Cluster::new(5, &cfg(overlay));
        c.partition(&[0, 1]);
        for v in 0..20i64 {
            c.client(
                v as usize % 5,
                v as u64,
                Msg::Broadcast { message: json!(v) },
            );
            c.run_for(100, 100);
        }
        c.run_for(3000, 100);
        assert!(
            c.sets().iter().any(|s| s.len() < 20),
            "{overlay:?}: the partition must bite"
        );
        c.cut.clear();
        c.run_for(5000, 100);
        let want: BTreeSet<i64> = (0..20).collect();
        assert!(
            c.sets().iter().all(|s| *s == want),
            "{overlay:?}: {:?}",
            c.sets()
        );
        let before = c.in_flight.len();
        let mark = c.sent_between_nodes;
        c.run_for(5000, 100);
        if c.sent_between_nodes != mark {
            eprintln!("{overlay:?} still sending: {before}");
            c.run_for(100, 100);
            for m in c.in_flight.iter() {
                eprintln!("{m:?}");
            }
        }
        assert_eq!(c.sent_between_nodes, mark, "{overlay:?}: quiet after heal");
    }
}

#[test]
fn random_loss_is_repaired_by_retransmission() {
    for seed in 0..20 {
        let mut c = Cluster::new(6, &cfg(Overlay::Tree(2)));
        c.rng = StdRng::seed_from_u64(seed);
        c.loss = 0.3;
        for v in 0..30i64 {
            c.client(
                v as usize % 6,
                v as u64,
                Msg::Broadcast { message: json!(v) },
            );
            c.run_for(50, 50);
        }
        c.run_for(20_000, 100);
        c.loss = 0.0;
        c.run_for(5_000, 100);
        let want: BTreeSet<i64> = (0..30).collect();
        assert!(
            c.sets().iter().all(|s| *s == want),
            "seed {seed}: {:?}",
            c.sets()
        );
    }
}

#[test]
fn a_restarted_node_is_caught_up_by_its_neighbours() {
    let mut c = Cluster::new(4, &cfg(Overlay::Star));
    for v in 0..10i64 {
        c.client(
            v as usize % 4,
            v as u64,
            Msg::Broadcast { message: json!(v) },
        );
    }
    c.run_for(2000, 100);
    // Leaf n2 loses its memory (a kill without persistence) and comes back with a new log id.
    c.restart(2, vec![]);
    assert!(c.node(2).values().is_empty());
    // It must speak first for the hub to notice (its next gossip or ack does); a new value does.
    c.client(
        2,
        100,
        Msg::Broadcast {
            message: json!(100),
        },
    );
    c.run_for(3000, 100);
    let want: BTreeSet<i64> = (0..10).chain([100]).collect();
    assert!(c.sets().iter().all(|s| *s == want), "{:?}", c.sets());
}

#[test]
fn nothing_is_sent_when_nothing_is_pending() {
    let mut c = Cluster::new(5, &cfg(Overlay::Star));
    c.run_for(5000, 100);
    assert_eq!(c.sent_between_nodes, 0);
}

#[test]
fn acknowledgements_ride_on_gossip_going_back() {
    // With a long ack delay and traffic both ways, stand-alone gossip_ok messages are rare.
    let mut c = Cluster::new(
        2,
        &BroadcastConfig {
            overlay: Overlay::Total,
            ack_delay_ms: 10_000,
            ..Default::default()
        },
    );
    for v in 0..40i64 {
        c.client(
            v as usize % 2,
            v as u64,
            Msg::Broadcast { message: json!(v) },
        );
        c.run_for(100, 100);
    }
    let oks = c
        .in_flight
        .iter()
        .filter(|m| matches!(m.body.payload, Msg::GossipOk { .. }))
        .count();
    assert_eq!(oks, 0);
    assert!(c.sets().iter().all(|s| s.len() == 40));
}

#[test]
fn fanout_limits_peers_per_tick() {
    let mut c = Cluster::new(
        6,
        &BroadcastConfig {
            overlay: Overlay::Total,
            fanout: 2,
            eager: Eager::Never,
            ..Default::default()
        },
    );
    c.client(0, 1, Msg::Broadcast { message: json!(1) });
    c.tick(0, 100);
    let gossips = c
        .outbox(0)
        .iter()
        .filter(|m| matches!(m.body.payload, Msg::Gossip { .. }))
        .count();
    assert_eq!(gossips, 2);
    c.collect(0);
    c.deliver_all();
    c.run_for(2000, 100);
    assert!(c.sets().iter().all(|s| s.contains(&1)));
}

#[test]
fn hostile_gossip_does_not_panic_or_corrupt() {
    let mut c = Cluster::new(3, &cfg(Overlay::Total));
    let hostile = [
        Msg::Gossip {
            log: 1,
            to_log: 0,
            base: u64::MAX,
            from: u64::MAX,
            upto: 0,
            values: vec![json!(1)],
            ack: u64::MAX,
            retry: true,
            relayed: vec![AckFrom {
                from: "n9".into(),
                log: 1,
                to_log: 1,
                ack: 1,
            }],
        },
        Msg::Gossip {
            log: 1,
            to_log: c.node(0).log_id,
            base: 5,
            from: 0,
            upto: u64::MAX,
            values: vec![],
            ack: 999,
            retry: false,
            relayed: vec![],
        },
        Msg::GossipOk {
            log: 2,
            to_log: c.node(0).log_id,
            ack: u64::MAX,
            resync: true,
        },
        Msg::BroadcastOk,
        Msg::ReadOk {
            messages: vec![json!(1)].into(),
        },
        Msg::Error(ErrorBody {
            code: 11,
            text: None,
        }),
    ];
    for (i, m) in hostile.into_iter().enumerate() {
        for src in ["n1", "n7", "n0", "c9"] {
            let m = req(src, "n0", i as u64, m.clone());
            let _ = c.hosts[0].receive(0, Inbound::Msg(m));
        }
    }
    c.tick(0, 5000);
    let _ = c.hosts[0].drain();
    c.client(0, 50, Msg::Broadcast { message: json!(2) });
    c.run_for(3000, 100);
    assert!(c.sets().iter().all(|s| s.contains(&2)), "{:?}", c.sets());
}

#[test]
fn config_from_env_and_args() {
    let env = vec![
        ("MURMUR_OVERLAY".to_string(), "tree3".to_string()),
        ("MURMUR_SYNC_MS".into(), "50".into()),
        ("PATH".into(), "x".into()),
        // The test suite's own variables are not knobs.
        ("MURMUR_TEST_FUZZ_CASES".into(), "4000".into()),
    ];
    let args = vec![
        "--sync-ms".to_string(),
        "20".into(),
        "--fanout=3".into(),
        "--eager".into(),
        "always".into(),
    ];
    let c = BroadcastConfig::from_env_and_args(env, args).unwrap();
    assert_eq!(c.overlay, Overlay::Tree(3));
    assert_eq!(c.sync_ms, 20, "arguments win over the environment");
    assert_eq!(c.fanout, 3);
    assert_eq!(c.eager, Eager::Always);
    for bad in [
        vec!["--bogus", "1"],
        vec!["--sync-ms"],
        vec!["--sync-ms", "x"],
        vec!["loose"],
        vec!["--overlay", "tree0"],
    ] {
        let args = bad.into_iter().map(String::from).collect::<Vec<_>>();
        assert!(
            BroadcastConfig::from_env_and_args(vec![], args.clone()).is_err(),
            "{args:?}"
        );
    }
}

#[test]
fn replies_carry_only_the_allowed_keys() {
    let mut c = Cluster::new(2, &cfg(Overlay::Star));
    c.client(0, 1, Msg::Broadcast { message: json!(3) });
    c.client(0, 2, Msg::Read);
    c.client(
        0,
        3,
        Msg::Topology {
            topology: HashMap::new(),
        },
    );
    for m in &c.client_out {
        let v = serde_json::to_value(&m.body).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let want: &[&str] = match v["type"].as_str().unwrap() {
            "read_ok" => &["in_reply_to", "messages", "type"],
            _ => &["in_reply_to", "type"],
        };
        assert_eq!(keys, want, "{v}");
    }
}

// ---- Durability: the acknowledgement rule, recovery, crashes ----

fn types<'a>(out: impl IntoIterator<Item = &'a Message<Msg>>) -> Vec<String> {
    out.into_iter()
        .map(|m| {
            serde_json::to_value(&m.body.payload).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn broadcast_ok_and_reads_wait_for_durability() {
    let mut c = Cluster::new(1, &cfg(Overlay::Star));
    c.auto_flush = false;
    c.client(0, 1, Msg::Broadcast { message: json!(5) });
    c.client(0, 2, Msg::Read);
    assert!(
        c.client_out.is_empty(),
        "nothing is acknowledged before the flush"
    );
    assert!(
        c.node(0).values().is_empty(),
        "reads see durable values only"
    );
    c.flush(0);
    c.collect(0);
    let bodies: Vec<Value> = c
        .client_out
        .iter()
        .map(|m| serde_json::to_value(&m.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec![
            json!({"type":"broadcast_ok","in_reply_to":1}),
            json!({"type":"read_ok","messages":[5],"in_reply_to":2}),
        ]
    );
    // A duplicate of a durable value and a read with nothing pending are answered at once.
    c.client(0, 3, Msg::Broadcast { message: json!(5) });
    c.client(0, 4, Msg::Read);
    assert_eq!(c.client_out.len(), 4);
}

#[test]
fn values_are_forwarded_only_once_durable() {
    let mut c = Cluster::new(
        2,
        &BroadcastConfig {
            overlay: Overlay::Total,
            eager: Eager::Always,
            ..Default::default()
        },
    );
    c.auto_flush = false;
    c.client(0, 1, Msg::Broadcast { message: json!(1) });
    c.tick(0, 100);
    assert!(c.outbox(0).is_empty(), "{:?}", c.outbox(0));
    c.flush(0);
    assert_eq!(types(c.outbox(0)), ["broadcast_ok", "gossip"]);
}

#[test]
fn acknowledgements_to_peers_cover_only_durable_entries() {
    let cfg = BroadcastConfig {
        overlay: Overlay::Total,
        ack_delay_ms: 0,
        ..Default::default()
    };
    let mut c = Cluster::new(2, &cfg);
    c.auto_flush = false;
    c.client(0, 1, Msg::Broadcast { message: json!(1) });
    c.flush(0);
    c.collect(0);
    let gossip = c.in_flight.pop_front().unwrap();
    assert!(matches!(gossip.body.payload, Msg::Gossip { .. }));
    let _ = c.hosts[1].receive(0, Inbound::Msg(gossip));
    assert!(
        c.outbox(1).is_empty(),
        "no acknowledgement before the value is durable: {:?}",
        c.outbox(1)
    );
    c.flush(1);
    let out = c.take_out(1);
    assert_eq!(types(&out), ["gossip_ok"]);
    assert!(matches!(out[0].body.payload, Msg::GossipOk { ack: 1, .. }));
}

#[test]
fn records_are_taken_in_order_and_persisted_counts_are_exact() {
    // The workload's own contract, without a host around it.
    let n = &mut Broadcast::init(&info("n0", 1), &cfg(Overlay::Star), 0);
    let ctx = &mut Ctx::new("n0");
    n.handle(
        req("c1", "n0", 1, Msg::Broadcast { message: json!(1) }),
        0,
        ctx,
    );
    let first = n.take_records();
    assert_eq!(first.len(), 2, "the start record, then the entry");
    n.handle(
        req("c1", "n0", 2, Msg::Broadcast { message: json!(2) }),
        0,
        ctx,
    );
    let second = n.take_records();
    assert_eq!(second.len(), 1);
    assert!(n.take_records().is_empty());
    n.persisted(1, 0, ctx);
    assert!(ctx.peek().is_empty(), "only the start record is durable");
    n.persisted(2, 0, ctx);
    assert_eq!(types(&ctx.drain()), ["broadcast_ok"]);
    assert_eq!(n.values(), &[json!(1)]);
    n.persisted(3, 0, ctx);
    assert_eq!(types(&ctx.drain()), ["broadcast_ok"]);
    n.persisted(2, 0, ctx);
    n.persisted(99, 0, ctx);
    assert!(
        ctx.drain().is_empty(),
        "stale or excessive counts are harmless"
    );
    assert_eq!(n.values(), &[json!(1), json!(2)]);
}

#[test]
fn persistence_off_emits_no_records_and_acknowledges_at_once() {
    let cfg = BroadcastConfig {
        persist: false,
        ..Default::default()
    };
    assert!(!Broadcast::persistent(&cfg));
    let mut n = Broadcast::init(&info("n0", 1), &cfg, 0);
    let mut ctx = Ctx::new("n0");
    n.handle(
        req("c1", "n0", 1, Msg::Broadcast { message: json!(1) }),
        0,
        &mut ctx,
    );
    assert_eq!(types(&ctx.drain()), ["broadcast_ok"]);
    assert!(n.take_records().is_empty());
}

#[test]
fn a_restart_recovers_values_log_id_and_cursors() {
    let mut c = Cluster::new(4, &cfg(Overlay::Star));
    for v in 0..20i64 {
        c.client(
            v as usize % 4,
            v as u64,
            Msg::Broadcast { message: json!(v) },
        );
        c.run_for(100, 100);
    }
    c.run_for(2000, 100);
    let want: BTreeSet<i64> = (0..20).collect();
    assert!(c.sets().iter().all(|s| *s == want));
    let hub_log = c.node(0).log_id;
    let hub_acked: Vec<usize> = c.node(0).links.iter().map(|l| l.acked).collect();
    let hub_values = c.node(0).values().to_vec();
    c.crash(0);
    assert_eq!(c.node(0).log_id, hub_log, "the log id persists");
    assert_eq!(
        c.node(0).values(),
        &hub_values[..],
        "same values, same order"
    );
    // Cursors resume where peers acknowledged. The restarted hub may settle at once a range that
    // holds nothing for a peer (its own values) which the old incarnation had only scanned.
    let hub = c.node(0);
    for (p, (link, &before)) in hub.links.iter().zip(&hub_acked).enumerate() {
        assert!(
            link.acked >= before && (before..link.acked).all(|e| !hub.forwardable(e, p)),
            "link to n{p}: acked {before} before the crash, {} after",
            link.acked
        );
    }
    // Nobody replays the log: the hub's peers keep their cursors, the hub keeps its own. The hub
    // asks each peer once to resend what it may have missed (nothing, here), and that is all.
    let before = c.sent_between_nodes;
    let resyncs = c.sent_by_type.get("gossip_ok").copied().unwrap_or(0);
    c.run_for(3000, 100);
    assert_eq!(
        c.sent_between_nodes,
        before + 3,
        "one resync request per peer, then quiet"
    );
    assert_eq!(c.sent_by_type["gossip_ok"], resyncs + 3);
    // And the restarted hub still forwards new values.
    c.client(
        1,
        100,
        Msg::Broadcast {
            message: json!(100),
        },
    );
    c.run_for(2000, 100);
    assert!(c.sets().iter().all(|s| s.contains(&100)), "{:?}", c.sets());
}

#[test]
fn a_restarted_leaf_gets_what_it_missed() {
    let mut c = Cluster::new(3, &cfg(Overlay::Star));
    c.client(1, 1, Msg::Broadcast { message: json!(1) });
    c.run_for(1000, 100);
    c.partition(&[2]);
    c.client(1, 2, Msg::Broadcast { message: json!(2) });
    c.run_for(1000, 100);
    c.crash(2);
    c.cut.clear();
    c.run_for(3000, 100);
    let want: BTreeSet<i64> = [1, 2].into();
    assert!(c.sets().iter().all(|s| *s == want), "{:?}", c.sets());
}

/// Star of 3 with 2.5 s retransmissions, everyone having spoken (log ids known): n1's value
/// reaches the hub while leaf n2 is cut off, so the hub's gossip to n2 is lost.
fn value_lost_on_the_way_to_n2() -> Cluster {
    let mut c = Cluster::new(3, &cfg(Overlay::Star));
    c.client(1, 1, Msg::Broadcast { message: json!(1) });
    c.client(2, 2, Msg::Broadcast { message: json!(0) });
    c.run_for(1000, 100);
    c.partition(&[2]);
    c.client(1, 2, Msg::Broadcast { message: json!(2) });
    c.run_for(300, 100);
    assert!(!c.sets()[2].contains(&2), "the cut must bite");
    c
}

#[test]
fn a_restarted_node_asks_its_peers_to_resend_at_once() {
    let mut c = value_lost_on_the_way_to_n2();
    c.crash(2);
    c.cut.clear();
    // Two sync slots, far below rto_ms (2500): the resync request went out with the first tick.
    c.run_for(200, 100);
    assert!(c.sets()[2].contains(&2), "{:?}", c.sets());
}

#[test]
fn a_gap_after_a_heal_is_filled_at_once() {
    let mut c = value_lost_on_the_way_to_n2();
    c.cut.clear();
    // A new value: the hub's next gossip to n2 starts past the lost one, n2 sees the gap and asks.
    c.client(1, 3, Msg::Broadcast { message: json!(3) });
    c.run_for(400, 100);
    let want: BTreeSet<i64> = [0, 1, 2, 3].into();
    assert_eq!(c.sets()[2], want);
    // One request per gap: once filled, the cluster goes quiet.
    c.run_for(3000, 100);
    let mark = c.sent_between_nodes;
    c.run_for(3000, 100);
    assert_eq!(c.sent_between_nodes, mark);
}

/// Gossip sent across a partition slot after slot is lost, one call per slot. When the calls
/// time out, the first brings a retransmission from `acked` that covers all the others: they must
/// not bring one each (slot after slot, while the peer's acknowledgement is still on its way or,
/// here, lost).
#[test]
fn calls_lost_to_a_partition_bring_one_retransmission_not_one_per_call() {
    let mut c = Cluster::new(3, &cfg(Overlay::Star));
    c.client(1, 1, Msg::Broadcast { message: json!(0) });
    c.client(2, 2, Msg::Broadcast { message: json!(1) });
    c.run_for(1000, 100);
    c.partition(&[2]);
    // A new value each slot: the hub sends n2 a gossip (and starts a call) each slot.
    for k in 0..10 {
        c.client(
            1,
            10 + k,
            Msg::Broadcast {
                message: json!(10 + k),
            },
        );
        c.run_for(100, 100);
    }
    c.cut.clear();
    // Past every call's timeout, with n2's acknowledgements lost: count the retransmissions.
    let mut to_n2 = Vec::new();
    for _ in 0..30 {
        c.now += 100;
        for i in 0..3 {
            c.tick(i, c.now);
            c.collect(i);
        }
        while let Some(m) = c.in_flight.pop_front() {
            if m.src == "n2" {
                continue;
            }
            if m.dest == "n2" && matches!(m.body.payload, Msg::Gossip { retry: true, .. }) {
                to_n2.push(c.now);
            }
            let to = Cluster::idx(&m.dest);
            c.receive(to, m);
        }
    }
    assert!(c.sets()[2].contains(&19), "{:?}", c.sets());
    assert_eq!(to_n2.len(), 1, "retransmissions to n2 at {to_n2:?}");
}

/// Gossip lost to a partition is resent as soon as the peer is heard from again, not when the
/// call times out: after the heal, n2's next message makes the hub resend what n2 lacks.
#[test]
fn gossip_lost_to_a_partition_is_resent_when_the_peer_is_heard_again() {
    let cfg = cfg(Overlay::Star);
    let mut c = Cluster::new(3, &cfg);
    // Traffic both ways, so the hub has seen n2 acknowledge its gossip promptly (on n2's own
    // gossip): that is the round trip it judges "overdue" by.
    for k in 0..5 {
        c.client(
            1,
            1 + 2 * k,
            Msg::Broadcast {
                message: json!(100 + 2 * k),
            },
        );
        c.run_for(100, 100);
        c.client(
            2,
            2 + 2 * k,
            Msg::Broadcast {
                message: json!(101 + 2 * k),
            },
        );
        c.run_for(100, 100);
    }
    c.run_for(1000, 100);
    c.partition(&[2]);
    c.client(1, 20, Msg::Broadcast { message: json!(2) });
    c.run_for(1200, 100);
    c.cut.clear();
    assert!(!c.sets()[2].contains(&2), "{:?}", c.sets());
    // Healed, about 1 s after the hub's gossip was lost (`rto_ms` is 1.5 s off): n2 speaks.
    c.client(2, 21, Msg::Broadcast { message: json!(3) });
    let healed = c.now;
    let mut got = None;
    for _ in 0..20 {
        c.run_for(100, 100);
        if got.is_none() && c.sets()[2].contains(&2) {
            got = Some(c.now - healed);
        }
    }
    let got = got.expect("n2 got the value lost to the partition");
    assert!(
        got <= 4 * cfg.sync_ms,
        "n2 got it {got} ms after it spoke (rto_ms {})",
        cfg.rto_ms
    );
    assert_eq!(c.sets()[0], c.sets()[2]);
}

/// A peer that retransmits has waited `rto_ms` for its acknowledgement: the acknowledgement
/// goes at once, not after `ack_delay_ms`.
#[test]
fn a_retransmission_is_acknowledged_at_once() {
    let mut c = Cluster::new(2, &cfg(Overlay::Star));
    c.client(0, 1, Msg::Broadcast { message: json!(0) });
    c.client(1, 2, Msg::Broadcast { message: json!(1) });
    c.run_for(1000, 100);
    c.partition(&[1]);
    c.client(0, 3, Msg::Broadcast { message: json!(2) });
    c.run_for(300, 100);
    c.cut.clear();
    // The hub's call times out and it retransmits; n1 must acknowledge within a slot of that.
    let mut retried_at = None;
    let mut acked_at = None;
    for _ in 0..40 {
        c.now += 100;
        for i in 0..2 {
            c.tick(i, c.now);
            c.collect(i);
        }
        while let Some(m) = c.in_flight.pop_front() {
            if let Msg::Gossip { retry: true, .. } = m.body.payload {
                retried_at.get_or_insert(c.now);
            }
            if let (Some(_), Msg::GossipOk { .. }) = (retried_at, &m.body.payload) {
                acked_at.get_or_insert(c.now);
            }
            let to = Cluster::idx(&m.dest);
            c.receive(to, m);
        }
    }
    let (retried, acked) = (
        retried_at.expect("a retransmission"),
        acked_at.expect("an ack"),
    );
    assert!(
        acked - retried <= 100,
        "retried at {retried}, acknowledged at {acked}"
    );
}

/// A node killed before it learned a peer's log id still asks it to resend: the peer's gossip
/// that reached it before (or while) it was down would otherwise wait out `rto_ms`.
#[test]
fn a_restarted_node_that_never_learned_a_log_id_still_asks_for_a_resend() {
    let mut c = Cluster::new(3, &cfg(Overlay::Star));
    // n2 has written its start record, but has heard from nobody.
    c.partition(&[2]);
    c.client(1, 1, Msg::Broadcast { message: json!(1) });
    c.run_for(300, 100);
    assert!(c.node(2).values().is_empty());
    c.crash(2);
    c.cut.clear();
    let resync = c
        .in_flight
        .iter()
        .chain(c.outbox(2))
        .filter(|m| m.src == "n2")
        .any(|m| {
            matches!(
                m.body.payload,
                Msg::GossipOk {
                    to_log: 0,
                    resync: true,
                    ..
                }
            )
        });
    c.run_for(300, 100);
    assert!(
        c.sets()[2].contains(&1),
        "{:?} (resync sent: {resync})",
        c.sets()
    );
}

/// Random crashes at random points, with flushes at random points: every value a client saw
/// acknowledged survives, and after the faults stop every node holds all of them.
#[test]
fn crashes_at_any_instant_never_lose_acknowledged_values() {
    for seed in 0..40u64 {
        for overlay in [Overlay::Star, Overlay::Total, Overlay::Tree(2)] {
            let mut c = Cluster::new(5, &cfg(overlay));
            c.auto_flush = false;
            let mut rng = StdRng::seed_from_u64(seed);
            c.loss = 0.1;
            c.rng = StdRng::seed_from_u64(seed + 1000);
            let mut next = 0i64;
            for _ in 0..300 {
                match rng.random_range(0..10) {
                    0..=3 => {
                        let node = rng.random_range(0..5);
                        c.client(
                            node,
                            next as u64,
                            Msg::Broadcast {
                                message: json!(next),
                            },
                        );
                        next += 1;
                    }
                    4..=6 => {
                        let node = rng.random_range(0..5);
                        c.flush(node);
                        c.collect(node);
                    }
                    7 => {
                        let node = rng.random_range(0..5);
                        c.crash(node);
                    }
                    _ => {
                        c.now += 50;
                        for i in 0..5 {
                            c.tick(i, c.now);
                            c.collect(i);
                        }
                        // Deliver some of what is in flight, in order.
                        let k = rng.random_range(0..=c.in_flight.len());
                        let rest = c.in_flight.split_off(k);
                        c.deliver_all();
                        c.in_flight.extend(rest);
                    }
                }
            }
            let acked: BTreeSet<i64> = c
                .client_out
                .iter()
                .filter(|m| m.body.payload == Msg::BroadcastOk)
                .map(|m| m.body.in_reply_to.unwrap() as i64)
                .collect();
            assert!(!acked.is_empty());
            // Heal: no loss, instant disks.
            c.loss = 0.0;
            c.auto_flush = true;
            for i in 0..5 {
                c.collect(i);
            }
            c.run_for(10_000, 100);
            for (i, s) in c.sets().iter().enumerate() {
                let lost: Vec<_> = acked.difference(s).collect();
                assert!(
                    lost.is_empty(),
                    "seed {seed} {overlay:?}: n{i} lost {lost:?}"
                );
            }
        }
    }
}

#[test]
fn an_undecodable_record_stops_recovery_and_a_new_log_is_written() {
    let mut c = Cluster::new(2, &cfg(Overlay::Total));
    for v in 0..3i64 {
        c.client(0, v as u64, Msg::Broadcast { message: json!(v) });
    }
    let good = c.disks[0].clone();
    let old_id = c.node(0).log_id;
    // Corrupt a record after the first three values, followed by one that is fine.
    c.disks[0].push(vec![2, 0xff, 0xff]);
    c.disks[0].push(record::encode(&record::Record::Entries {
        at: 3,
        entries: vec![(FROM_CLIENT, json!(99))],
    }));
    c.crash(0);
    assert_eq!(c.node(0).values(), &[json!(0), json!(1), json!(2)]);
    assert_ne!(c.node(0).log_id, old_id, "a new log id: peers must rewind");
    let new_id = c.node(0).log_id;
    // The fresh copy is written; the next recovery starts from it and is complete.
    c.flush(0);
    assert!(c.disks[0].len() > good.len() + 2);
    c.crash(0);
    assert_eq!(c.node(0).log_id, new_id);
    assert_eq!(c.node(0).values(), &[json!(0), json!(1), json!(2)]);
    assert!(c.node(0).queue.is_empty(), "complete: nothing to rewrite");
    c.run_for(3000, 100);
    let want: BTreeSet<i64> = (0..3).collect();
    assert!(c.sets().iter().all(|s| *s == want), "{:?}", c.sets());
}

#[test]
fn garbage_records_never_panic_recovery() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut base = Cluster::new(3, &cfg(Overlay::Star));
    for v in 0..10i64 {
        base.client(1, v as u64, Msg::Broadcast { message: json!(v) });
        base.run_for(100, 100);
    }
    let disk = base.disks[0].clone();
    for _ in 0..500 {
        let mut recs = disk.clone();
        match rng.random_range(0..4) {
            0 => {
                let i = rng.random_range(0..recs.len());
                let r = &mut recs[i];
                if !r.is_empty() {
                    let j = rng.random_range(0..r.len());
                    r[j] = rng.random();
                }
            }
            1 => {
                let i = rng.random_range(0..recs.len());
                let len = rng.random_range(0..=recs[i].len());
                recs[i].truncate(len);
            }
            2 => {
                let i = rng.random_range(0..=recs.len());
                let junk: Vec<u8> = (0..rng.random_range(0..40)).map(|_| rng.random()).collect();
                recs.insert(i, junk);
            }
            _ => {
                let i = rng.random_range(0..recs.len());
                let r = recs[i].clone();
                recs.insert(i, r);
            }
        }
        let mut inf = info("n0", 3);
        inf.recovered = recs;
        let mut n = Broadcast::init(&inf, &cfg(Overlay::Star), 0);
        let mut ctx = Ctx::new("n0");
        n.handle(req("c1", "n0", 1, Msg::Read), 0, &mut ctx);
        n.tick(100, &mut ctx);
        let _ = n.take_records();
        assert!(n.values().len() <= 10);
    }
}

#[test]
fn a_log_of_another_node_list_is_ignored() {
    let mut c = Cluster::new(2, &cfg(Overlay::Total));
    c.client(0, 1, Msg::Broadcast { message: json!(1) });
    let mut inf = info("n0", 3);
    inf.recovered = c.disks[0].clone();
    let n = Broadcast::init(&inf, &cfg(Overlay::Total), 0);
    assert!(n.values().is_empty());
}

#[test]
fn record_codec_round_trips_and_rejects_trailing_bytes() {
    let recs = [
        record::Record::Start {
            log_id: 7,
            cluster: u64::MAX,
        },
        record::Record::Entries {
            at: 3,
            entries: vec![(FROM_CLIENT, json!({"a":[1,2]})), (2, json!(1.5))],
        },
        record::Record::Entries {
            at: 0,
            entries: vec![],
        },
        record::Record::Link {
            peer: 4,
            peer_log: 9,
            acked: 10,
            reset_at: 2,
        },
        record::Record::Topology {
            peers: vec![1, 3, 2],
        },
        record::Record::Topology { peers: vec![] },
    ];
    for r in recs {
        let mut bytes = record::encode(&r);
        assert_eq!(record::decode(&bytes), Ok(r.clone()));
        bytes.push(0);
        assert!(record::decode(&bytes).is_err());
        for cut in 0..bytes.len() - 1 {
            assert!(record::decode(&bytes[..cut]).is_err(), "{r:?} cut at {cut}");
        }
    }
    // A count far larger than the bytes present is an error, not an allocation.
    let mut huge = vec![2u8];
    huge.extend_from_slice(&0u64.to_le_bytes());
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(record::decode(&huge).is_err());
}

#[test]
fn large_backlogs_are_split_into_modest_records() {
    let log: Vec<Value> = (0..100_000).map(|i| json!(i)).collect();
    let origin = vec![FROM_CLIENT; log.len()];
    let mut from = 0;
    let mut records = 0;
    while from < log.len() {
        let (rec, upto) = record::encode_entries(from, &log, &origin, record::ENTRIES_BYTES);
        assert!(rec.len() < record::ENTRIES_BYTES + 64);
        assert!(upto > from);
        from = upto;
        records += 1;
    }
    assert!(records > 1);
}

#[test]
fn the_given_topology_is_persisted_before_topology_ok() {
    let given = cfg(Overlay::Given);
    let mut c = Cluster::new(3, &given);
    c.auto_flush = false;
    let topo: HashMap<String, Vec<String>> = [
        ("n0", vec!["n1"]),
        ("n1", vec!["n0", "n2"]),
        ("n2", vec!["n1"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    for i in 0..3 {
        c.client(
            i,
            10,
            Msg::Topology {
                topology: topo.clone(),
            },
        );
    }
    assert!(
        c.client_out.is_empty(),
        "topology_ok waits for the neighbour list to be durable"
    );
    for i in 0..3 {
        c.flush(i);
        c.collect(i);
    }
    assert_eq!(c.client_out.len(), 3);
    assert!(c
        .client_out
        .iter()
        .all(|m| m.body.payload == Msg::TopologyOk));
    c.auto_flush = true;
    // Maelstrom sends the topology once: a restarted node must still know its neighbours.
    c.crash(1);
    assert_eq!(c.node(1).peers(), vec!["n0", "n2"]);
    c.client(1, 1, Msg::Broadcast { message: json!(1) });
    c.crash(0);
    c.client(0, 2, Msg::Broadcast { message: json!(2) });
    c.run_for(3000, 100);
    let want: BTreeSet<i64> = [1, 2].into();
    assert!(c.sets().iter().all(|s| *s == want), "{:?}", c.sets());
}

/// Ticks are demand-driven but keep the `sync_ms` grid of a fixed-period timer: an idle node asks
/// for none, pending deltas are due at the first boundary after they appeared (also when the timer
/// fires a little after it), at most one tick per slot, and deadlines (call timeouts) round up to a
/// boundary.
#[test]
fn next_tick_keeps_the_sync_grid_and_is_none_when_idle() {
    let c = BroadcastConfig {
        persist: false,
        ack_delay_ms: 250,
        rto_ms: 1000,
        ..BroadcastConfig::default()
    };
    let mut hub = Broadcast::init(&info("n0", 3), &c, 0);
    let mut ctx = Ctx::new("n0");
    assert_eq!(hub.next_tick(0), None, "idle: no timer");
    hub.handle(
        req("c1", "n0", 1, Msg::Broadcast { message: json!(1) }),
        5,
        &mut ctx,
    );
    assert_eq!(
        hub.next_tick(5),
        Some(100),
        "pending: due at the next boundary"
    );
    assert_eq!(hub.next_tick(60), Some(100), "still");
    // The timer fires late, at 101: still due.
    assert!(hub.next_tick(101).is_some_and(|t| t <= 101));
    ctx.drain();
    hub.tick(101, &mut ctx);
    assert_eq!(types(&ctx.drain()), ["gossip", "gossip"]);
    // Nothing pending; the gossip calls time out after rto_ms (1000), rounded up to a slot.
    assert_eq!(hub.next_tick(102), Some(1200));
    hub.handle(
        req("c1", "n0", 2, Msg::Broadcast { message: json!(2) }),
        150,
        &mut ctx,
    );
    assert_eq!(
        hub.next_tick(150),
        Some(200),
        "one tick per slot: the next slot"
    );
    hub.tick(201, &mut ctx);
    // Both peers acknowledge everything: once the calls' deadlines pass, nothing is left.
    for p in ["n1", "n2"] {
        let log = hub.log_id;
        let m = req(
            p,
            "n0",
            9,
            Msg::GossipOk {
                log: 7,
                to_log: log,
                ack: 2,
                resync: false,
            },
        );
        hub.handle(m, 300, &mut ctx);
    }
    hub.tick(1300, &mut ctx);
    assert_eq!(hub.next_tick(1300), None, "all acknowledged: idle again");
}

/// A node whose log starts with values not for a peer (here: `total`, which forwards no value
/// learned from another peer) must not jump over them before it knows the peer's log id: the
/// peer would not trust the gossip's `base`, its contiguous cursor would stall, and everything
/// would be resent after `rto_ms`. Seen at start-up, when no peer has been heard from.
#[test]
fn skipped_entries_do_not_open_a_gap_before_the_peer_is_known() {
    let cfg = BroadcastConfig {
        overlay: Overlay::Total,
        eager: Eager::Always,
        ..Default::default()
    };
    let mut c = Cluster::new(3, &cfg);
    // n0 learns 1 from n1 (its log position 0, not for n2), and looks at its link to n2 (where a
    // driver asks for the next tick, and in the tick) before hearing from n2.
    c.client(1, 1, Msg::Broadcast { message: json!(1) });
    let to_n2: Vec<_> = c
        .in_flight
        .iter()
        .filter(|m| m.dest == "n2")
        .cloned()
        .collect();
    c.in_flight.retain(|m| m.dest != "n2");
    c.deliver_all();
    let _ = c.hosts[0].next_tick(c.now);
    c.tick(0, c.now);
    c.collect(0);
    c.client(0, 2, Msg::Broadcast { message: json!(2) });
    c.in_flight.extend(to_n2);
    let sent = c.sent_between_nodes;
    // Well within `rto_ms`: the acknowledgements (due after `ack_delay_ms`) settle everything.
    c.run_for(cfg.ack_delay_ms + 2 * cfg.sync_ms, cfg.sync_ms);
    assert!(c.sets().iter().all(|s| s.len() == 2), "{:?}", c.sets());
    for (i, n) in c.nodes().enumerate() {
        for p in n.peers.clone() {
            let unacked = n.links[p].acked..n.log.len();
            assert!(
                unacked.clone().all(|e| !n.forwardable(e, p)),
                "n{i}'s link to n{p}: {unacked:?} unacknowledged"
            );
        }
    }
    // Nothing is resent later either.
    let oks = c.sent_between_nodes - sent;
    c.run_for(3 * cfg.rto_ms, cfg.sync_ms);
    assert_eq!(c.sent_between_nodes - sent, oks, "no retransmission");
}

// ---- The ack relay (overlay `total`) ----

/// Overlay `total` with timers that turn the ack relay on: of `rto − ack_delay` = 3000 ms, two
/// thirds (2000 ms) may be spent holding an acknowledgement, and the last third (1000 ms) spans at
/// least four sync periods.
fn relay_cfg() -> BroadcastConfig {
    BroadcastConfig {
        overlay: Overlay::Total,
        eager: Eager::Always,
        ack_delay_ms: 1000,
        rto_ms: 4000,
        ..Default::default()
    }
}

fn sent(c: &Cluster, t: &str) -> usize {
    c.sent_by_type.get(t).copied().unwrap_or(0)
}

/// Every link's acknowledged cursor covers everything for that peer.
fn all_acked(c: &Cluster) -> bool {
    c.nodes().all(|n| {
        n.peers
            .iter()
            .all(|&p| (n.links[p].acked..n.log.len()).all(|e| !n.forwardable(e, p)))
    })
}

#[test]
fn the_relay_is_on_only_for_total_with_room_in_rto() {
    let on = |cfg: &BroadcastConfig| Broadcast::init(&info("n1", 5), cfg, 0).use_relay;
    assert!(on(&relay_cfg()));
    assert!(!on(&BroadcastConfig {
        overlay: Overlay::Star,
        ..relay_cfg()
    }));
    assert!(!on(&BroadcastConfig {
        ack_relay: false,
        ..relay_cfg()
    }));
    // The defaults leave (2500 − 1000) / 3 = 500 ms: four 100 ms ticks fit.
    assert!(on(&cfg(Overlay::Total)));
    // (1000 − 250) / 3 = 250 ms: they do not.
    assert!(!on(&BroadcastConfig {
        ack_delay_ms: 250,
        rto_ms: 1000,
        ..cfg(Overlay::Total)
    }));
    assert!(!on(&BroadcastConfig {
        rto_ms: 1500,
        ..relay_cfg()
    }));
    assert!(!Broadcast::init(&info("n1", 2), &relay_cfg(), 0).use_relay);
}

/// When traffic stops, each node owes everyone an acknowledgement: one batch per node to the
/// relay (n0) and one message from the relay per node replace a `gossip_ok` per pair, and no
/// value is resent.
#[test]
fn stand_alone_acks_are_batched_through_the_relay() {
    let n = 6;
    let cfg = relay_cfg();
    let mut c = Cluster::new(n, &cfg);
    // Two rounds: in the second, every gossip names its receiver's log id (learned in the first),
    // which a relayed acknowledgement needs; the first round's acknowledgements ride on it.
    for round in 0..2 {
        for i in 0..n {
            let v = round * n + i;
            c.client(i, v as u64, Msg::Broadcast { message: json!(v) });
        }
        c.deliver_all();
    }
    c.run_for(3 * cfg.rto_ms, cfg.sync_ms);
    assert!(c.sets().iter().all(|s| s.len() == 2 * n), "{:?}", c.sets());
    assert!(all_acked(&c), "every value acknowledged");
    assert_eq!(
        sent(&c, "gossip"),
        2 * n * (n - 1),
        "no resend: {:?}",
        c.sent_by_type
    );
    assert_eq!(sent(&c, "gossip_ok"), 0, "{:?}", c.sent_by_type);
    assert_eq!(sent(&c, "ack_batch"), n - 1, "{:?}", c.sent_by_type);
    assert_eq!(sent(&c, "relayed_acks"), n - 1, "{:?}", c.sent_by_type);
    // And then silence.
    let mark = c.sent_between_nodes;
    c.run_for(3 * cfg.rto_ms, cfg.sync_ms);
    assert_eq!(c.sent_between_nodes, mark);
}

/// Builds n0 → n2 `relayed_acks` carrying an acknowledgement from n1.
fn relayed(c: &Cluster, from_log: u64, to_log: u64, ack: u64) -> Message<Msg> {
    let relay = c.node(0);
    req(
        "n0",
        "n2",
        1000,
        Msg::RelayedAcks {
            log: relay.log_id,
            to_log: relay.links[2].peer_log.unwrap_or(0),
            ack: 0,
            acks: vec![AckFrom {
                from: "n1".into(),
                log: from_log,
                to_log,
                ack,
            }],
        },
    )
}

#[test]
fn relayed_acks_apply_only_when_both_log_ids_match_and_never_rewind() {
    let mut c = Cluster::new(3, &relay_cfg());
    // Everyone hears from everyone; then n2's value reaches n1, whose acknowledgement is not
    // due yet.
    for i in 0..3 {
        c.client(i, i as u64, Msg::Broadcast { message: json!(i) });
    }
    c.deliver_all();
    c.client(2, 9, Msg::Broadcast { message: json!(9) });
    c.deliver_all();
    let n1_log = c.node(1).log_id;
    let n2_log = c.node(2).log_id;
    let before = c.node(2).links[1].acked;
    let len = c.node(2).log.len() as u64;
    assert!(before < len as usize);
    let now = c.now;
    for (from_log, to_log) in [(n1_log ^ 2, n2_log), (n1_log, n2_log ^ 2), (0, 0)] {
        let m = relayed(&c, from_log, to_log, len);
        let _ = c.hosts[2].receive(now, Inbound::Msg(m));
        assert_eq!(c.node(2).links[1].acked, before, "logs {from_log} {to_log}");
        assert_eq!(
            c.node(2).links[1].peer_log,
            Some(n1_log),
            "a relayed ack never changes the peer's log id (no rewind)"
        );
    }
    let m = relayed(&c, n1_log, n2_log, len);
    let _ = c.hosts[2].receive(now, Inbound::Msg(m));
    assert_eq!(c.node(2).links[1].acked, len as usize);
    // Not beyond the durable log, whatever the relay says.
    let m = relayed(&c, n1_log, n2_log, u64::MAX);
    let _ = c.hosts[2].receive(now, Inbound::Msg(m));
    assert_eq!(c.node(2).links[1].acked, len as usize);
}

/// The relay is cut off just as the acknowledgements are due: the batches are lost, the peers
/// resend after `rto_ms` (flagged `retry`), and those acknowledgements go direct. Nothing is
/// lost, every cursor catches up, and the cluster falls silent.
#[test]
fn a_lost_relay_falls_back_to_direct_acks() {
    let n = 5;
    let cfg = relay_cfg();
    let mut c = Cluster::new(n, &cfg);
    for i in 0..n {
        c.client(i, i as u64, Msg::Broadcast { message: json!(i) });
    }
    c.deliver_all();
    c.partition(&[0]);
    for i in 1..n {
        c.client(
            i,
            10 + i as u64,
            Msg::Broadcast {
                message: json!(10 + i),
            },
        );
    }
    c.run_for(3 * cfg.rto_ms, cfg.sync_ms);
    assert!(sent(&c, "ack_batch") > 0, "{:?}", c.sent_by_type);
    assert!(
        sent(&c, "gossip_ok") > 0,
        "direct fallback: {:?}",
        c.sent_by_type
    );
    let others: Vec<_> = c.nodes().skip(1).collect();
    for (i, node) in others.iter().enumerate() {
        for p in 1..n {
            let link = &node.links[p];
            assert!(
                p == i + 1 || (link.acked..node.log.len()).all(|e| !node.forwardable(e, p)),
                "n{} → n{p} acknowledged behind the partition",
                i + 1
            );
        }
    }
    c.cut.clear();
    c.run_for(4 * cfg.rto_ms, cfg.sync_ms);
    let want: BTreeSet<i64> = (0..n as i64).chain(11..10 + n as i64).collect();
    assert!(c.sets().iter().all(|s| *s == want), "{:?}", c.sets());
    assert!(all_acked(&c));
    let mark = c.sent_between_nodes;
    c.run_for(3 * cfg.rto_ms, cfg.sync_ms);
    assert_eq!(c.sent_between_nodes, mark, "quiet");
}

#[test]
fn a_relay_holds_at_most_one_ack_per_destination_and_acker() {
    let mut c = Cluster::new(3, &relay_cfg());
    let acks: Vec<AckFor> = (0..1000)
        .map(|k| AckFor {
            to: ["n2", "n0", "n1", "n7", ""][k % 5].into(),
            to_log: k as u64,
            ack: k as u64,
            wait: u64::MAX,
        })
        .collect();
    let m = req(
        "n1",
        "n0",
        1,
        Msg::AckBatch {
            log: 5,
            to_log: 0,
            ack: u64::MAX,
            acks,
        },
    );
    let _ = c.hosts[0].receive(0, Inbound::Msg(m));
    let held: Vec<usize> = c.node(0).relay_out.iter().map(Vec::len).collect();
    assert_eq!(
        held,
        [0, 0, 1],
        "only n2 is a destination other than relay and acker"
    );
    assert_eq!(
        c.node(0).relay_out[2][0],
        HeldAck {
            acker: 1,
            acker_log: 5,
            to_log: 995,
            ack: 995
        },
        "the latest"
    );
    c.tick(0, 10_000);
    let out = c.take_out(0);
    assert_eq!(types(&out), ["relayed_acks"]);
    assert!(c.node(0).relay_out.iter().all(Vec::is_empty));
}

// ---- Reads: one shared snapshot of the durable set ----

/// The snapshot a `read_ok` carries.
fn read_snapshot(m: &Message<Msg>) -> std::sync::Arc<Snapshot> {
    match &m.body.payload {
        Msg::ReadOk {
            messages: Messages::Shared(s),
        } => s.clone(),
        other => panic!("not a read_ok built by a node: {other:?}"),
    }
}

/// The reply with the durable values copied into the message instead of a shared snapshot, in the
/// same envelope.
fn as_owned_values(m: &Message<Msg>, durable: &[Value]) -> String {
    let mut owned = m.clone();
    owned.body.payload = Msg::ReadOk {
        messages: Messages::Values(durable.to_vec()),
    };
    serde_json::to_string(&owned).unwrap()
}

#[test]
fn read_ok_text_is_exactly_the_owned_values_text() {
    let values = [
        json!(5),
        json!(1.0),
        json!(1),
        json!(-3),
        json!(u64::MAX),
        json!(1e-7),
        json!("quote \" backslash \\ control \u{1} é 😀"),
        json!(null),
        json!({"z":[1,{"a":false}],"a":"b"}),
        json!([]),
    ];
    for persist in [true, false] {
        let mut c = Cluster::new(
            1,
            &BroadcastConfig {
                persist,
                ..cfg(Overlay::Star)
            },
        );
        c.client(0, 1, Msg::Read);
        for (i, v) in values.iter().enumerate() {
            c.client(0, 10 + i as u64, Msg::Broadcast { message: v.clone() });
            // A duplicate does not change the set.
            c.client(0, 100 + i as u64, Msg::Broadcast { message: v.clone() });
            c.client(0, 200 + i as u64, Msg::Read);
        }
        let mut sizes = vec![];
        for m in &c.client_out {
            if let Msg::ReadOk { .. } = m.body.payload {
                let n = read_snapshot(m).len();
                assert_eq!(
                    serde_json::to_string(m).unwrap(),
                    as_owned_values(m, &values[..n])
                );
                sizes.push(n);
            }
        }
        assert_eq!(sizes, (0..=values.len()).collect::<Vec<_>>());
        // After a restart from the disk, reads still answer the recovered set, byte for byte.
        if persist {
            c.crash(0);
            c.client(0, 999, Msg::Read);
            let m = c.client_out.last().unwrap();
            assert_eq!(
                serde_json::to_string(m).unwrap(),
                as_owned_values(m, &values)
            );
        }
    }
    // And the literal text, for a small set.
    let mut c = Cluster::new(1, &cfg(Overlay::Star));
    c.client(0, 1, Msg::Broadcast { message: json!(5) });
    c.client(
        0,
        2,
        Msg::Broadcast {
            message: json!("x"),
        },
    );
    c.client(0, 3, Msg::Read);
    assert_eq!(
        serde_json::to_string(c.client_out.last().unwrap()).unwrap(),
        r#"{"src":"n0","dest":"c1","body":{"in_reply_to":3,"type":"read_ok","messages":[5,"x"]}}"#
    );
}

#[test]
fn reads_share_one_snapshot_until_the_durable_prefix_changes() {
    let mut c = Cluster::new(1, &cfg(Overlay::Star));
    c.auto_flush = false;
    c.client(0, 1, Msg::Broadcast { message: json!(1) });
    c.flush(0);
    c.collect(0);
    c.client(0, 2, Msg::Read);
    c.client(0, 3, Msg::Read);
    // A duplicate of a durable value changes nothing.
    c.client(0, 4, Msg::Broadcast { message: json!(1) });
    c.client(0, 5, Msg::Read);
    assert_eq!(
        types(&c.client_out),
        [
            "broadcast_ok",
            "read_ok",
            "read_ok",
            "broadcast_ok",
            "read_ok"
        ]
    );
    let first = read_snapshot(&c.client_out[1]);
    for m in [&c.client_out[2], &c.client_out[4]] {
        assert!(
            std::sync::Arc::ptr_eq(&first, &read_snapshot(m)),
            "shared, not rebuilt"
        );
    }
    assert_eq!(c.node(0).reads.built(), 1);
    assert_eq!(first.values(), [json!(1)]);

    // A new value: reads wait for it to be durable, then are released together with one new
    // snapshot between them.
    c.client(0, 6, Msg::Broadcast { message: json!(2) });
    c.client(0, 7, Msg::Read);
    c.client(0, 8, Msg::Read);
    assert_eq!(c.client_out.len(), 5, "nothing before the flush");
    assert_eq!(c.node(0).reads.built(), 1);
    c.flush(0);
    c.collect(0);
    assert_eq!(
        types(&c.client_out[5..]),
        ["broadcast_ok", "read_ok", "read_ok"]
    );
    let second = read_snapshot(&c.client_out[6]);
    assert!(std::sync::Arc::ptr_eq(
        &second,
        &read_snapshot(&c.client_out[7])
    ));
    assert!(
        !std::sync::Arc::ptr_eq(&first, &second),
        "rebuilt after a durable change"
    );
    assert_eq!(c.node(0).reads.built(), 2);
    assert_eq!(second.values(), [json!(1), json!(2)]);
    assert_eq!(
        first.values(),
        [json!(1)],
        "earlier replies keep their snapshot"
    );

    // Durable changes that no read sees build nothing.
    for v in 3..6 {
        c.client(0, 10 + v, Msg::Broadcast { message: json!(v) });
        c.flush(0);
        c.collect(0);
    }
    assert_eq!(c.node(0).reads.built(), 2);
    c.client(0, 20, Msg::Read);
    let third = read_snapshot(c.client_out.last().unwrap());
    assert_eq!(c.node(0).reads.built(), 3);
    assert_eq!(third.values(), c.node(0).values());
}

#[test]
fn a_compacted_log_recovers_the_same_state() {
    for overlay in [Overlay::Star, Overlay::Given, Overlay::Total] {
        let mut c = Cluster::new(4, &cfg(overlay));
        if overlay == Overlay::Given {
            let topo: HashMap<String, Vec<String>> = (0..4)
                .map(|i| (format!("n{i}"), vec![format!("n{}", (i + 1) % 4)]))
                .collect();
            for i in 0..4 {
                c.receive(
                    i,
                    req(
                        "c0",
                        &format!("n{i}"),
                        1,
                        Msg::Topology {
                            topology: topo.clone(),
                        },
                    ),
                );
            }
        }
        for v in 0..60i64 {
            c.client(
                v as usize % 4,
                v as u64,
                Msg::Broadcast {
                    message: json!({"v": v, "pad": "x".repeat(v as usize % 7)}),
                },
            );
            c.run_for(100, 100);
        }
        c.run_for(3000, 100);
        // (A ring of given neighbours writes too few cursor records to reach twice its state.)
        assert!(
            overlay == Overlay::Given || c.compactions > 0,
            "{overlay:?}: no compaction"
        );
        for i in 0..4 {
            let before = c.node(i);
            let (values, log_id, peers) = (
                before.values().to_vec(),
                before.log_id,
                before.peers.clone(),
            );
            let cursors: Vec<(Option<u64>, usize, usize)> = before
                .links
                .iter()
                .map(|l| (l.peer_log, l.acked, l.reset_at))
                .collect();
            let live = c.hosts[i].node().unwrap().live_bytes().unwrap();
            let snapshot = before.snapshot_records().expect("nothing queued");
            let bytes: u64 = snapshot
                .iter()
                .map(|r| crate::store::frame_len(r.len()))
                .sum();
            assert!(
                bytes <= live + live / 8 && live <= bytes + bytes / 8,
                "{overlay:?} n{i}: estimate {live}, snapshot {bytes}"
            );
            c.restart(i, snapshot);
            let after = c.node(i);
            assert_eq!(after.values(), &values[..], "{overlay:?} n{i}");
            assert_eq!((after.log_id, &after.peers), (log_id, &peers));
            for (p, l) in after.links.iter().enumerate() {
                let (peer_log, acked, reset_at) = cursors[p];
                assert_eq!(l.peer_log, peer_log, "n{i} link {p}");
                assert!(l.acked >= acked.min(after.recorded_upto) && l.reset_at == reset_at);
            }
            assert!(after.queue.is_empty(), "complete: nothing to rewrite");
        }
        // Quiet but for each restarted node's resync requests, at most one to each node it talks
        // with (as after any restart): no values resent. And still working.
        let links = 4 * 3;
        let before = c.sent_between_nodes;
        let oks = c.sent_by_type.get("gossip_ok").copied().unwrap_or(0);
        c.run_for(3000, 100);
        let extra = c.sent_between_nodes - before;
        let extra_oks = c.sent_by_type.get("gossip_ok").copied().unwrap_or(0) - oks;
        assert!(
            extra <= links && extra_oks == extra,
            "{overlay:?}: {extra} messages ({extra_oks} gossip_ok) after restarts, {links} links"
        );
        c.client(
            1,
            500,
            Msg::Broadcast {
                message: json!(500),
            },
        );
        c.run_for(3000, 100);
        assert!(c.nodes().all(|n| n.values().contains(&json!(500))));
    }
}

#[test]
fn values_records_round_trip_and_reject_damage() {
    let log: Vec<Value> = (0..1000).map(|i| json!([i, "é"])).collect();
    let origin: Vec<u32> = (0..1000)
        .map(|i| if i % 3 == 0 { FROM_CLIENT } else { i % 4 })
        .collect();
    let mut from = 0;
    let mut back = Vec::new();
    while from < log.len() {
        let (rec, upto) = record::encode_values(from, &log, &origin, 4096);
        assert!(upto > from && rec.len() < 4096 + 64);
        let text = record::value_text_bytes(&rec);
        let want: usize = log[from..upto].iter().map(|v| v.to_string().len()).sum();
        assert_eq!(text, want as u64);
        match record::decode(&rec) {
            Ok(record::Record::Values {
                at,
                origins,
                values,
            }) => {
                assert_eq!(at as usize, from);
                back.extend(origins.into_iter().zip(values));
            }
            other => panic!("{other:?}"),
        }
        for cut in 0..rec.len() {
            assert!(record::decode(&rec[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = rec.clone();
        longer.insert(rec.len() - 1, b' ');
        longer.insert(rec.len() - 1, b'1');
        longer.insert(rec.len() - 1, b',');
        assert!(record::decode(&longer).is_err(), "one value too many");
        from = upto;
    }
    let want: Vec<(u32, Value)> = origin.into_iter().zip(log).collect();
    assert_eq!(back, want);
}

// ---------------------------------------------------------------------------------------------
// Liveness: the network table, health checks, successor hubs (see the `liveness` module)

/// The hub (and, on some seeds, the lowest leaves) cut off: every leaf that can reach the others
/// ends up with one and the same successor, the lowest-id leaf alive, and every value reaches
/// every live leaf while the hub is away; healed, the star re-forms (no successor anywhere), every
/// node holds every value once, and the cluster goes quiet.
#[test]
fn leaves_agree_on_one_successor_and_the_star_reforms() {
    for seed in 0..40u64 {
        let mut r = StdRng::seed_from_u64(seed);
        let n = r.random_range(4..=12);
        let mut c = Cluster::new(n, &cfg(Overlay::Star));
        c.rng = StdRng::seed_from_u64(seed);
        // A fault-free warm-up: values flow through the hub, and nobody probes anyone.
        for v in 0..5i64 {
            c.client(
                1 + v as usize % (n - 1),
                v as u64,
                Msg::Broadcast { message: json!(v) },
            );
            c.run_for(100, 100);
        }
        c.run_for(3000, 100);
        // At most one probe per leaf, at the end of the burst (the hub holds the last
        // acknowledgement for `ack_delay_ms`; the ping makes it leave at once).
        let pings = c.sent_by_type.get("ping").copied().unwrap_or(0);
        assert!(
            pings < n,
            "seed {seed}: {pings} fault-free probes at {n} nodes"
        );
        let down: Vec<usize> = (0..=r.random_range(0..=2usize).min(n - 3)).collect();
        for &d in &down {
            c.partition(&[d]);
        }
        let live: Vec<usize> = (0..n).filter(|i| !down.contains(i)).collect();
        for v in 5..40i64 {
            let at = live[r.random_range(0..live.len())];
            c.client(at, v as u64, Msg::Broadcast { message: json!(v) });
            c.run_for(r.random_range(0..=3) * 100, 100);
        }
        c.run_for(4000, 100);
        let acked: BTreeSet<i64> = (0..5)
            .chain((5..40).filter(|v| {
                c.client_out.iter().any(|m| {
                    m.body.in_reply_to == Some(*v as u64)
                        && matches!(m.body.payload, Msg::BroadcastOk)
                })
            }))
            .collect();
        let succ: Vec<Option<&str>> = live.iter().map(|&i| c.node(i).successor()).collect();
        let want = format!("n{}", live[0]);
        assert!(
            succ.iter().all(|s| *s == Some(want.as_str())),
            "seed {seed}: {n} nodes, {down:?} cut off, live leaves' successors {succ:?}"
        );
        let sets = c.sets();
        for &i in &live {
            assert!(
                acked.is_subset(&sets[i]),
                "seed {seed}: n{i} lacks values while the hub is away: {:?}",
                sets[i]
            );
        }
        c.cut.clear();
        c.run_for(8000, 100);
        let sets = c.sets();
        let all: BTreeSet<i64> = (0..40).collect();
        for (i, set) in sets.iter().enumerate() {
            assert!(
                set.is_superset(&acked) && set.is_subset(&all),
                "seed {seed}: n{i} after heal: {set:?}"
            );
            assert_eq!(
                c.node(i).values().len(),
                set.len(),
                "seed {seed}: n{i} holds a duplicate"
            );
            assert_eq!(
                c.node(i).successor(),
                None,
                "seed {seed}: n{i} keeps a successor after heal"
            );
        }
        let mark = c.sent_between_nodes;
        c.run_for(5000, 100);
        assert_eq!(c.sent_between_nodes, mark, "seed {seed}: quiet after heal");
    }
}

/// A `pong` counts only with the nonce of the ping in flight: a wrong or stale one leaves the hub
/// suspect; the right one makes it alive again.
#[test]
fn pongs_with_a_wrong_or_stale_nonce_are_ignored() {
    let mut c = Cluster::new(3, &cfg(Overlay::Star));
    c.partition(&[0]);
    c.client(1, 1, Msg::Broadcast { message: json!(1) });
    // Steps 100 ms, noting the nonces of n1's pings to n0 (which the cut then drops).
    let mut nonces: Vec<String> = Vec::new();
    let mut step = |c: &mut Cluster| {
        c.now += 100;
        for i in 0..3 {
            c.tick(i, c.now);
            c.collect(i);
        }
        for m in &c.in_flight {
            if let Msg::Ping { nonce } = &m.body.payload {
                if (m.src.as_str(), m.dest.as_str()) == ("n1", "n0") {
                    nonces.push(nonce.clone());
                }
            }
        }
        c.deliver_all();
    };
    while c.now < 10_000 && c.node(1).health_of("n0", c.now) != Some(PeerState::Dead) {
        step(&mut c);
    }
    assert!(
        nonces.len() >= 2,
        "n1 pings its silent hub, again while it stays silent: {nonces:?}"
    );
    assert!(
        nonces.iter().all(|n| n.len() == 32),
        "128 bits as 32 hex digits: {nonces:?}"
    );
    assert_ne!(nonces[0], nonces[1], "a fresh nonce per ping");
    let pong = |nonce: &str| {
        let mut m = req(
            "n0",
            "n1",
            99,
            Msg::Pong {
                nonce: nonce.into(),
            },
        );
        m.body.msg_id = None;
        m
    };
    let latest = nonces.last().cloned().unwrap_or_default();
    // The first ping was replaced by later ones: its nonce is stale.
    for wrong in [nonces[0].as_str(), "00000000000000000000000000000000", "x"] {
        c.receive(1, pong(wrong));
        assert_eq!(
            c.node(1).health_of("n0", c.now),
            Some(PeerState::Dead),
            "pong {wrong:?} must be ignored"
        );
    }
    c.receive(1, pong(&latest));
    assert_eq!(c.node(1).health_of("n0", c.now), Some(PeerState::Alive));
}

/// Knob `liveness` off: the plain star. With the hub cut off, leaves neither probe it nor route
/// around it (a value given to n1 stays off n2 until the heal), and after the heal every value
/// reaches every node through the hub.
#[test]
fn liveness_off_keeps_the_plain_star() {
    let off = BroadcastConfig {
        liveness: false,
        ..cfg(Overlay::Star)
    };
    let mut c = Cluster::new(5, &off);
    c.partition(&[0]);
    c.client(1, 1, Msg::Broadcast { message: json!(1) });
    c.client(2, 2, Msg::Broadcast { message: json!(2) });
    c.run_for(6000, 100);
    assert_eq!(c.sent_by_type.get("ping"), None, "no health checks");
    for i in 1..5 {
        assert_eq!(c.node(i).successor(), None, "n{i} routes around nothing");
    }
    let sets = c.sets();
    assert!(!sets[2].contains(&1) && !sets[1].contains(&2), "{sets:?}");
    c.cut.clear();
    c.run_for(8000, 100);
    let want: BTreeSet<i64> = [1, 2].into();
    for (i, set) in c.sets().iter().enumerate() {
        assert_eq!(set, &want, "n{i} after heal");
    }
    // The same schedule with the knob on routes n1's value to n2 before the heal.
    let mut c = Cluster::new(5, &cfg(Overlay::Star));
    c.partition(&[0]);
    c.client(1, 1, Msg::Broadcast { message: json!(1) });
    c.run_for(6000, 100);
    assert!(c.sets()[2].contains(&1));
}

/// A silent peer (gossip to it unacknowledged for `rto_ms`, nothing heard since) gets gossip once
/// per `silent_peer_ms` instead of every slot, and the cut-off peer still catches up within
/// `silent_peer_ms` and a few slots of the heal while values keep coming, though it says nothing
/// itself. `silent_peer_ms` 0 keeps every slot.
#[test]
fn a_silent_peer_gets_gossip_once_per_silent_peer_ms_and_catches_up_after_heal() {
    let run = |silent_peer_ms: Millis| {
        let cfg = BroadcastConfig {
            silent_peer_ms,
            liveness: false,
            ..cfg(Overlay::Star)
        };
        let mut c = Cluster::new(3, &cfg);
        c.partition(&[2]);
        let mut to_cut = 0;
        for v in 0..100i64 {
            c.client(1, v as u64, Msg::Broadcast { message: json!(v) });
            c.now += 100;
            for i in 0..3 {
                c.tick(i, c.now);
                c.collect(i);
            }
            to_cut += c
                .in_flight
                .iter()
                .filter(|m| (m.src.as_str(), m.dest.as_str()) == ("n0", "n2"))
                .count();
            c.deliver_all();
        }
        c.cut.clear();
        let healed = c.now;
        let all: BTreeSet<i64> = (0..100).collect();
        // Clients go on: the hub's next gossip to n2 shows it a gap, and it asks for a resend.
        let mut v = 100i64;
        while !c.sets()[2].is_superset(&all) && c.now < healed + 10_000 {
            c.client(1, v as u64, Msg::Broadcast { message: json!(v) });
            v += 1;
            c.run_for(100, 100);
        }
        (to_cut, c.now - healed)
    };
    let (every_slot, _) = run(0);
    let (silent, caught_up_ms) = run(500);
    assert!(
        every_slot >= 90,
        "silent_peer_ms 0: {every_slot} gossips in 10 s"
    );
    // Every slot until the first call times out (rto_ms 2500), then one per 500 ms.
    assert!(
        silent <= 25 + 7500 / 500 + 2,
        "silent_peer_ms 500: {silent} gossips in 10 s"
    );
    assert!(
        caught_up_ms <= 500 + 300,
        "caught up {caught_up_ms} ms after the heal"
    );
}

/// A successor hub's fan-out to the leaves it serves goes every `detour_ms`, not every slot, and
/// still brings every leaf every value while the hub is away.
#[test]
fn a_successor_fans_out_every_detour_ms() {
    let run = |detour_ms: Millis| {
        let cfg = BroadcastConfig {
            detour_ms,
            ..cfg(Overlay::Star)
        };
        let mut c = Cluster::new(6, &cfg);
        c.partition(&[0]);
        // (gossips from n1 to n2..n5 between 3 s and 8 s, when the episode has settled)
        let mut fanout = 0;
        for v in 0..80i64 {
            c.client(
                2 + v as usize % 4,
                v as u64,
                Msg::Broadcast { message: json!(v) },
            );
            c.now += 100;
            for i in 0..6 {
                c.tick(i, c.now);
                c.collect(i);
            }
            if (3000..8000).contains(&c.now) {
                fanout += c
                    .in_flight
                    .iter()
                    .filter(|m| m.src == "n1" && m.dest != "n0")
                    .filter(|m| matches!(m.body.payload, Msg::Gossip { .. }))
                    .count();
            }
            c.deliver_all();
        }
        c.run_for(2000, 100);
        let all: BTreeSet<i64> = (0..80).collect();
        for i in 1..6 {
            assert_eq!(c.sets()[i], all, "detour_ms {detour_ms}: n{i}");
        }
        fanout
    };
    let every_slot = run(100);
    let batched = run(400);
    // 5 s to 4 leaves: 200 gossips every slot, 50 every 400 ms.
    assert!(every_slot >= 150, "detour_ms 100: {every_slot}");
    assert!(batched <= 4 * (5000 / 400 + 1), "detour_ms 400: {batched}");
}

/// A leaf cut off from the start never told its hub its log id, so the hub's gossip names none
/// (`to_log` 0). After the heal, the first delta shows the leaf a gap; it asks for a resend at
/// once instead of waiting for the hub's calls to time out (`rto_ms` after the first was lost).
#[test]
fn a_gap_in_gossip_naming_no_log_id_asks_for_a_resend() {
    let cfg = BroadcastConfig {
        liveness: false,
        ..cfg(Overlay::Star)
    };
    let mut c = Cluster::new(3, &cfg);
    c.partition(&[2]);
    let mut v = 0i64;
    while c.now < 1000 {
        c.client(1, v as u64, Msg::Broadcast { message: json!(v) });
        v += 1;
        c.run_for(100, 100);
    }
    c.cut.clear();
    let lost: BTreeSet<i64> = (0..5).collect();
    while !c.sets()[2].is_superset(&lost) && c.now < 5000 {
        c.client(1, v as u64, Msg::Broadcast { message: json!(v) });
        v += 1;
        c.run_for(100, 100);
    }
    // The first lost call times out at 2600 ms; the resync brings everything well before.
    assert!(c.now <= 1500, "n2 caught up only at {} ms", c.now);
}

/// A leaf that never heard its hub (paused or cut off from the start) asks it after the busy
/// silence threshold (here 400 ms), not `ack_delay_ms` later: a link without history is not
/// known to be quiet.
#[test]
fn a_hub_never_heard_is_asked_without_waiting_for_a_held_ack() {
    let mut c = Cluster::new(3, &cfg(Overlay::Star));
    c.partition(&[0]);
    c.client(1, 1, Msg::Broadcast { message: json!(1) });
    let mut first_ping = None;
    while first_ping.is_none() && c.now < 5000 {
        c.now += 100;
        for i in 0..3 {
            c.tick(i, c.now);
            c.collect(i);
        }
        if c.in_flight.iter().any(|m| {
            (m.src.as_str(), m.dest.as_str()) == ("n1", "n0")
                && matches!(m.body.payload, Msg::Ping { .. })
        }) {
            first_ping = Some(c.now);
        }
        c.deliver_all();
    }
    assert!(
        first_ping.is_some_and(|t| t <= 600),
        "first ping to the silent hub at {first_ping:?} ms"
    );
}

/// Drives the cluster as the shell does: time jumps to the earliest tick any node asked for, plus
/// `late_ms` (a real timer fires a little late, so the clock is never on the slot grid), and only
/// that node ticks; `events` (time, node, value) are client broadcasts on the way. Returns when
/// `until` says so or at `end`.
fn run_like_a_shell(
    c: &mut Cluster,
    late_ms: Millis,
    mut events: VecDeque<(Millis, usize, i64)>,
    end: Millis,
    mut until: impl FnMut(&Cluster) -> bool,
) {
    let n = c.hosts.len();
    let mut id = 1_000;
    while c.now < end && !until(c) {
        let tick = (0..n)
            .filter_map(|i| c.hosts[i].next_tick(c.now).map(|t| (t + late_ms, i)))
            .min();
        let event_first = match (events.front(), tick) {
            (Some(e), Some((t, _))) => e.0 <= t,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if event_first {
            let (at, node, v) = events.pop_front().expect("an event is waiting");
            c.now = c.now.max(at);
            id += 1;
            c.client(node, id, Msg::Broadcast { message: json!(v) });
        } else if let Some((t, i)) = tick {
            c.now = c.now.max(t);
            c.tick(i, c.now);
            c.collect(i);
        } else {
            c.now = end;
        }
        c.deliver_all();
    }
}

#[test]
fn a_leaf_routes_around_a_silent_hub_on_time_with_a_clock_off_the_slot_grid() {
    // The leaf's ticks come 1 ms after the times it asks for, as a real timer's do. A crossed
    // suspicion threshold reported as due "now" would be pushed to the next slot by the slot
    // rounding at every call, and the leaf would notice only when its gossip call timed out.
    let cfg = cfg(Overlay::Star);
    let mut c = Cluster::new(3, &cfg);
    c.partition(&[0]);
    let events: VecDeque<_> = (0..40).map(|k| (601 + 150 * k, 1, k as i64)).collect();
    // The table's state is computed from the clock; what the leaf acted on is its route.
    run_like_a_shell(&mut c, 1, events, 5_000, |c| {
        c.node(1).successor().is_some()
    });
    // First value at 601: ping after the 400 ms silence threshold (at the next slot), suspect
    // 450 ms later, acted on at the next slot.
    assert!(
        c.now <= 601 + 400 + 450 + 2 * cfg.sync_ms + 2,
        "routed around the hub at {} ms",
        c.now
    );
    assert!(c.now < 601 + cfg.rto_ms, "not by the call's timeout");
}

#[test]
fn a_leaf_whose_hub_and_first_candidate_are_down_picks_the_next_as_it_suspects_the_hub() {
    // n0 (the hub) and n1 (the first candidate for successor) are cut off from the start. The
    // candidates were asked along with the hub, so when the hub becomes suspect n1's silence is
    // already known: the first successor is n2, with no detour through n1 and its own threshold.
    let cfg = cfg(Overlay::Star);
    let mut c = Cluster::new(6, &cfg);
    c.partition(&[0]);
    c.partition(&[1]);
    let events: VecDeque<_> = (0..40).map(|k| (601 + 150 * k, 5, k as i64)).collect();
    run_like_a_shell(&mut c, 1, events, 5_000, |c| {
        c.node(5).successor().is_some()
    });
    assert_eq!(c.node(5).successor(), Some("n2"), "at {} ms", c.now);
    assert_eq!(c.node(5).successor_changes(), 1);
    assert!(
        c.now <= 601 + 400 + 450 + 2 * cfg.sync_ms + 2,
        "routed around the hub at {} ms",
        c.now
    );
}

#[test]
fn candidates_probed_with_a_hub_that_answers_after_all_are_not_held_suspect() {
    // The hub is silent long enough to be asked, then answers; n1, asked along with it, never
    // does. Nothing of that early probe may stay in the table: a leaf that did not probe would
    // still count n1 alive, and at the next episode the two would pick different successors.
    let cfg = cfg(Overlay::Star);
    let mut c = Cluster::new(6, &cfg);
    c.partition(&[1]);
    c.cut.insert((0, 5));
    c.client(5, 1, Msg::Broadcast { message: json!(1) });
    let mut healed = false;
    while c.now < 3_000 {
        c.now += 10;
        for i in 0..6 {
            c.tick(i, c.now);
            c.collect(i);
        }
        let pinged = |c: &Cluster, dest: &str| {
            c.in_flight.iter().any(|m| {
                m.src == "n5" && m.dest == dest && matches!(m.body.payload, Msg::Ping { .. })
            })
        };
        if !healed && pinged(&c, "n0") {
            assert!(pinged(&c, "n1"), "n1 is asked along with the hub");
            c.cut.remove(&(0, 5));
            healed = true;
        }
        c.deliver_all();
    }
    assert!(healed, "the leaf never asked its hub");
    assert_eq!(c.node(5).successor(), None);
    assert_eq!(c.node(5).successor_changes(), 0);
    assert_eq!(c.node(5).health_of("n1", c.now), Some(PeerState::Alive));
}

use super::*;
use crate::wire::{is_client, Body, Envelope};
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

/// A tiny cluster with instant delivery, a seeded loss/partition filter and a virtual clock.
struct Cluster {
    nodes: Vec<Broadcast>,
    ctxs: Vec<Ctx<Msg>>,
    in_flight: VecDeque<Message<Msg>>,
    client_out: Vec<Message<Msg>>,
    now: Millis,
    /// Pairs (a, b) whose messages are dropped, both directions.
    cut: HashSet<(usize, usize)>,
    sent_between_nodes: usize,
    rng: StdRng,
    loss: f64,
}

impl Cluster {
    fn new(n: usize, cfg: &BroadcastConfig) -> Self {
        let nodes: Vec<_> = (0..n)
            .map(|i| Broadcast::init(&info(&format!("n{i}"), n), cfg, 0))
            .collect();
        let ctxs = (0..n).map(|i| Ctx::new(format!("n{i}"))).collect();
        Cluster {
            nodes,
            ctxs,
            in_flight: VecDeque::new(),
            client_out: vec![],
            now: 0,
            cut: HashSet::new(),
            sent_between_nodes: 0,
            rng: StdRng::seed_from_u64(7),
            loss: 0.0,
        }
    }

    fn idx(id: &str) -> usize {
        id[1..].parse().unwrap()
    }

    fn collect(&mut self, i: usize) {
        for m in self.ctxs[i].drain() {
            if is_client(&m.dest) {
                self.client_out.push(m);
            } else {
                self.sent_between_nodes += 1;
                if std::env::var("TRACE_CLUSTER").is_ok() {
                    eprintln!("t={} {m:?}", self.now);
                }
                self.in_flight.push_back(m);
            }
        }
    }

    fn client(&mut self, node: usize, msg_id: u64, payload: Msg) {
        let m = req("c1", &format!("n{node}"), msg_id, payload);
        self.nodes[node].handle(m, self.now, &mut self.ctxs[node]);
        self.collect(node);
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
            self.nodes[b].handle(m, self.now, &mut self.ctxs[b]);
            self.collect(b);
        }
    }

    /// Advances virtual time in sync-interval steps, delivering everything instantly.
    fn run_for(&mut self, ms: Millis, step: Millis) {
        let end = self.now + ms;
        while self.now < end {
            self.now += step;
            for i in 0..self.nodes.len() {
                self.nodes[i].tick(self.now, &mut self.ctxs[i]);
                self.collect(i);
            }
            self.deliver_all();
        }
    }

    fn partition(&mut self, side: &[usize]) {
        let n = self.nodes.len();
        for &a in side {
            for b in 0..n {
                if !side.contains(&b) {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    fn sets(&self) -> Vec<BTreeSet<i64>> {
        self.nodes
            .iter()
            .map(|n| n.values().iter().map(|v| v.as_i64().unwrap()).collect())
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
        c.nodes[0].values(),
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
        c.nodes[1].peers(),
        vec!["n0", "n2"],
        "unknown names are ignored"
    );
    c.client(0, 1, Msg::Broadcast { message: json!(1) });
    c.run_for(1000, 100);
    assert!(
        c.sets().iter().all(|s| s.contains(&1)),
        "relayed over two hops"
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
    c.nodes[2] = Broadcast::init(&info("n2", 4), &cfg(Overlay::Star), c.now);
    c.ctxs[2] = Ctx::new("n2");
    assert!(c.nodes[2].values().is_empty());
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
    c.nodes[0].tick(100, &mut c.ctxs[0]);
    let gossips = c.ctxs[0]
        .peek()
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
        },
        Msg::Gossip {
            log: 1,
            to_log: c.nodes[0].log_id,
            base: 5,
            from: 0,
            upto: u64::MAX,
            values: vec![],
            ack: 999,
        },
        Msg::GossipOk {
            log: 2,
            to_log: c.nodes[0].log_id,
            ack: u64::MAX,
        },
        Msg::BroadcastOk,
        Msg::ReadOk {
            messages: vec![json!(1)],
        },
        Msg::Error(ErrorBody {
            code: 11,
            text: None,
        }),
    ];
    for (i, m) in hostile.into_iter().enumerate() {
        for src in ["n1", "n7", "n0", "c9"] {
            let m = req(src, "n0", i as u64, m.clone());
            c.nodes[0].handle(m, 0, &mut c.ctxs[0]);
        }
    }
    c.nodes[0].tick(5000, &mut c.ctxs[0]);
    c.ctxs[0].drain();
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

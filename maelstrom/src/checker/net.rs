//! Network statistics from the journal (Maelstrom's `net/checker.clj`), plus our
//! breakdown by message type and by node.
//!
//! The whole journal counts: setup (`init`, `topology`) and post-test traffic included. Three
//! views:
//! - `all`: every event;
//! - `clients`: events whose `src` or `dest` starts with `c`;
//! - `servers`: the rest (node↔node and node↔service).
//!
//! Each view has `send-count`, `recv-count` and `msg-count` (distinct message ids). `all` and
//! `servers`, never `clients`, get `msgs-per-op` = msg-count / op-count as a 32-bit float,
//! omitted when op-count is 0 (op-count is [`super::op_count`]: every client invocation). Always
//! valid: this checker measures, it never fails a test.
//!
//! Our extension, for users cutting message counts: `by-type` gives, over the servers view,
//! send and recv counts per body `type`, most sent first; `by-node` gives, over the servers view,
//! each participant's `sent` (send events by `src`) and `received` (recv events by `dest`),
//! in natural name order (`n2` before `n10`). One linear pass over the journal.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::json::natural_cmp;
use super::{CheckResult, Validity};
use crate::history::{JournalEvent, JournalKind};

/// Counts for one view.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ViewStats {
    pub send_count: u64,
    pub recv_count: u64,
    /// Distinct message ids among the view's events.
    pub msg_count: u64,
    /// `msg-count / op-count`; only on `all` and `servers`, and only when op-count > 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgs_per_op: Option<f32>,
}

/// Server traffic of one message type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TypeCounts {
    /// The body's `type` (empty when it had none).
    #[serde(rename = "type")]
    pub body_type: String,
    pub send_count: u64,
    pub recv_count: u64,
}

/// Server traffic of one participant (node or service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeCounts {
    pub node: String,
    /// Send events with this `src`.
    pub sent: u64,
    /// Recv events with this `dest`.
    pub received: u64,
}

/// The `net` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NetStats {
    pub all: ViewStats,
    pub clients: ViewStats,
    pub servers: ViewStats,
    /// Servers view, per body type, most sent first (ties by type name).
    pub by_type: Vec<TypeCounts>,
    /// Servers view, per participant, in natural name order.
    pub by_node: Vec<NodeCounts>,
    #[serde(rename = "valid?")]
    pub valid: Validity,
}

impl CheckResult for NetStats {
    fn validity(&self) -> Validity {
        self.valid
    }
}

fn is_client(id: &str) -> bool {
    id.starts_with('c')
}

/// A set of message ids: a bitset when the ids are dense (the network numbers them 0, 1, 2, …),
/// a hash set otherwise.
enum IdSet {
    Dense { bits: Vec<u64>, count: u64 },
    Sparse(HashSet<u64>),
}

impl IdSet {
    fn new(max_id: u64, events: usize) -> Self {
        // Dense when the bitset is no bigger than ~8 bytes per event.
        if max_id <= 64 * (events as u64) + 4096 {
            IdSet::Dense {
                bits: vec![0; (max_id / 64) as usize + 1],
                count: 0,
            }
        } else {
            IdSet::Sparse(HashSet::with_capacity(events / 2))
        }
    }

    fn insert(&mut self, id: u64) {
        match self {
            IdSet::Dense { bits, count } => {
                let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
                if let Some(w) = bits.get_mut(word) {
                    if *w & bit == 0 {
                        *w |= bit;
                        *count += 1;
                    }
                }
            }
            IdSet::Sparse(set) => {
                set.insert(id);
            }
        }
    }

    fn len(&self) -> u64 {
        match self {
            IdSet::Dense { count, .. } => *count,
            IdSet::Sparse(set) => set.len() as u64,
        }
    }
}

/// A view being accumulated.
struct View {
    stats: ViewStats,
    ids: IdSet,
}

impl View {
    fn new(max_id: u64, events: usize) -> Self {
        View {
            stats: ViewStats::default(),
            ids: IdSet::new(max_id, events),
        }
    }

    fn add(&mut self, ev: &JournalEvent) {
        match ev.kind {
            JournalKind::Send => self.stats.send_count += 1,
            JournalKind::Recv => self.stats.recv_count += 1,
        }
        self.ids.insert(ev.id);
    }

    fn finish(self, op_count: Option<usize>) -> ViewStats {
        let msg_count = self.ids.len();
        ViewStats {
            msg_count,
            // Maelstrom: (float (/ msg-count op-count)).
            msgs_per_op: op_count
                .filter(|&n| n > 0)
                .map(|n| (msg_count as f64 / n as f64) as f32),
            ..self.stats
        }
    }
}

/// Computes the network statistics. `op_count` is the number of client invocations
/// ([`super::op_count`]).
#[must_use]
pub fn check(journal: &[JournalEvent], op_count: usize) -> NetStats {
    let max_id = journal.iter().map(|e| e.id).max().unwrap_or(0);
    let mut all = View::new(max_id, journal.len());
    let mut clients = View::new(max_id, journal.len());
    let mut servers = View::new(max_id, journal.len());
    let mut by_type: HashMap<&str, (u64, u64)> = HashMap::new();
    let mut by_node: HashMap<&str, (u64, u64)> = HashMap::new();

    for ev in journal {
        all.add(ev);
        if is_client(&ev.src) || is_client(&ev.dest) {
            clients.add(ev);
            continue;
        }
        servers.add(ev);
        let t = by_type.entry(ev.body_type.as_str()).or_default();
        match ev.kind {
            JournalKind::Send => {
                t.0 += 1;
                by_node.entry(ev.src.as_str()).or_default().0 += 1;
            }
            JournalKind::Recv => {
                t.1 += 1;
                by_node.entry(ev.dest.as_str()).or_default().1 += 1;
            }
        }
    }

    let mut by_type: Vec<TypeCounts> = by_type
        .into_iter()
        .map(|(t, (send_count, recv_count))| TypeCounts {
            body_type: t.to_owned(),
            send_count,
            recv_count,
        })
        .collect();
    by_type.sort_by(|a, b| {
        b.send_count
            .cmp(&a.send_count)
            .then_with(|| a.body_type.cmp(&b.body_type))
    });
    let mut by_node: Vec<NodeCounts> = by_node
        .into_iter()
        .map(|(node, (sent, received))| NodeCounts {
            node: node.to_owned(),
            sent,
            received,
        })
        .collect();
    by_node.sort_by(|a, b| natural_cmp(&a.node, &b.node));

    NetStats {
        all: all.finish(Some(op_count)),
        clients: clients.finish(None),
        servers: servers.finish(Some(op_count)),
        by_type,
        by_node,
        valid: Validity::True,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Builds journals with consecutive message ids.
    #[derive(Default)]
    struct J {
        events: Vec<JournalEvent>,
        next_id: u64,
    }

    impl J {
        /// One message: a send, and a recv unless `dropped`.
        fn msg(&mut self, src: &str, dest: &str, body_type: &str, dropped: bool) {
            let id = self.next_id;
            self.next_id += 1;
            let ev = |kind| JournalEvent {
                kind,
                time: id,
                id,
                src: src.to_owned(),
                dest: dest.to_owned(),
                body_type: body_type.to_owned(),
                body: None,
            };
            self.events.push(ev(JournalKind::Send));
            if !dropped {
                self.events.push(ev(JournalKind::Recv));
            }
        }

        /// A request and its reply.
        fn rpc(&mut self, client: &str, node: &str, t: &str) {
            self.msg(client, node, t, false);
            self.msg(node, client, &format!("{t}_ok"), false);
        }
    }

    /// The Fly.io 3d numbers: 25 nodes, 1990 ops, 129 592 messages of which 4080 are
    /// client traffic: 2 × 1990 ops + 25 × 2 init + 25 × 2 topology.
    #[test]
    fn reproduces_the_worked_example() {
        let mut j = J::default();
        let nodes: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        for (k, n) in nodes.iter().enumerate() {
            j.rpc(&format!("c{k}"), n, "init");
        }
        for (k, n) in nodes.iter().enumerate() {
            j.rpc(&format!("c{}", 25 + k), n, "topology");
        }
        for op in 0..1990 {
            let f = if op % 2 == 0 { "broadcast" } else { "read" };
            j.rpc(&format!("c{}", 50 + op % 25), &nodes[op % 25], f);
        }
        let servers = 129_592 - 4080;
        for m in 0..servers {
            let (t, a, b) = if m % 2 == 0 {
                ("gossip", m % 25, (m + 1) % 25)
            } else {
                ("gossip_ok", (m + 1) % 25, m % 25)
            };
            j.msg(&nodes[a], &nodes[b], t, false);
        }

        let r = check(&j.events, 1990);
        assert_eq!(
            (
                r.clients.send_count,
                r.clients.recv_count,
                r.clients.msg_count
            ),
            (4080, 4080, 4080)
        );
        assert_eq!(r.clients.msgs_per_op, None);
        assert_eq!(r.all.msg_count, 129_592);
        assert_eq!(r.servers.msg_count, 125_512);
        assert_eq!(r.all.msgs_per_op, Some((129_592.0f64 / 1990.0) as f32));
        assert!((f64::from(r.all.msgs_per_op.unwrap_or(0.0)) - 65.1216).abs() < 1e-4);
        assert!((f64::from(r.servers.msgs_per_op.unwrap_or(0.0)) - 63.071_36).abs() < 1e-4);
        assert_eq!(r.valid, Validity::True);

        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["clients"],
            json!({"send-count": 4080, "recv-count": 4080, "msg-count": 4080})
        );
        // Maelstrom prints 65.121605 and 63.071358: the same 32-bit floats.
        let f = |x: &serde_json::Value| x.as_f64().map(|x| x as f32);
        assert_eq!(f(&v["all"]["msgs-per-op"]), Some(65.121_605_f32));
        assert_eq!(f(&v["servers"]["msgs-per-op"]), Some(63.071_358_f32));
        assert_eq!(v["valid?"], json!(true));

        // By type: the servers view only, most sent first.
        assert_eq!(
            r.by_type,
            vec![
                TypeCounts {
                    body_type: "gossip".into(),
                    send_count: 62_756,
                    recv_count: 62_756
                },
                TypeCounts {
                    body_type: "gossip_ok".into(),
                    send_count: 62_756,
                    recv_count: 62_756
                },
            ]
        );
        let total_sent: u64 = r.by_node.iter().map(|n| n.sent).sum();
        assert_eq!(total_sent, 125_512);
        assert_eq!(r.by_node.len(), 25);
        assert_eq!(r.by_node[2].node, "n2");
        assert_eq!(r.by_node[10].node, "n10");
    }

    #[test]
    fn by_type_and_by_node_count_sends_and_receipts() {
        let mut j = J::default();
        j.rpc("c1", "n1", "broadcast"); // client traffic: not in the breakdowns
        j.msg("n1", "n2", "gossip", false);
        j.msg("n1", "n10", "gossip", true); // dropped by a partition
        j.msg("n1", "n2", "gossip", false);
        j.msg("n2", "n1", "gossip_ok", false);
        j.msg("n10", "seq-kv", "read", false);
        j.msg("seq-kv", "n10", "read_ok", false);
        j.msg("n2", "n1", "", true);

        let r = check(&j.events, 1);
        assert_eq!(
            (
                r.servers.send_count,
                r.servers.recv_count,
                r.servers.msg_count
            ),
            (7, 5, 7)
        );
        assert_eq!((r.all.send_count, r.all.recv_count), (9, 7));
        assert_eq!(r.servers.msgs_per_op, Some(7.0));
        let types: Vec<(&str, u64, u64)> = r
            .by_type
            .iter()
            .map(|t| (t.body_type.as_str(), t.send_count, t.recv_count))
            .collect();
        assert_eq!(
            types,
            vec![
                ("gossip", 3, 2),
                ("", 1, 0),
                ("gossip_ok", 1, 1),
                ("read", 1, 1),
                ("read_ok", 1, 1)
            ]
        );
        let nodes: Vec<(&str, u64, u64)> = r
            .by_node
            .iter()
            .map(|n| (n.node.as_str(), n.sent, n.received))
            .collect();
        assert_eq!(
            nodes,
            vec![("n1", 3, 1), ("n2", 2, 2), ("n10", 1, 1), ("seq-kv", 1, 1)]
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["by-type"][0],
            json!({"type": "gossip", "send-count": 3, "recv-count": 2})
        );
        assert_eq!(
            v["by-node"][0],
            json!({"node": "n1", "sent": 3, "received": 1})
        );
    }

    #[test]
    fn msg_count_counts_distinct_ids_even_when_sparse() {
        let ev = |kind, id| JournalEvent {
            kind,
            time: 0,
            id,
            src: "n1".into(),
            dest: "n2".into(),
            body_type: "x".into(),
            body: None,
        };
        let journal = vec![
            ev(JournalKind::Send, u64::MAX - 1),
            ev(JournalKind::Recv, u64::MAX - 1),
            ev(JournalKind::Send, 3),
            ev(JournalKind::Send, 3),
        ];
        let r = check(&journal, 0);
        assert_eq!(r.all.msg_count, 2);
        assert_eq!(r.all.send_count, 3);
        assert_eq!(r.all.msgs_per_op, None);
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["all"].get("msgs-per-op").is_none());
    }

    #[test]
    fn empty_journal() {
        let r = check(&[], 10);
        assert_eq!(r.all.msg_count, 0);
        assert_eq!(r.all.msgs_per_op, Some(0.0));
        assert!(r.by_type.is_empty() && r.by_node.is_empty());
    }

    #[test]
    fn a_million_events_is_linear() {
        let mut j = J::default();
        for m in 0..500_000u64 {
            let a = format!("n{}", m % 25);
            let b = format!("n{}", (m + 1) % 25);
            j.msg(&a, &b, "gossip", false);
        }
        let start = std::time::Instant::now();
        let r = check(&j.events, 1000);
        assert_eq!(r.all.msg_count, 500_000);
        assert!(start.elapsed().as_secs() < 10);
    }
}

//! Handler tests without tokio or the host: nodes driven directly, messages passed by hand,
//! records made durable when the test says so.

use super::*;
use crate::wire::Body;
use serde_json::json;

/// A cluster of `LinKv` nodes wired together by a queue the test controls.
struct Cluster {
    nodes: Vec<LinKv>,
    ids: Vec<String>,
    /// Every record each node made durable, across incarnations.
    disks: Vec<Vec<Vec<u8>>>,
    /// Messages sent and not yet delivered.
    wire: VecDeque<Message<Msg>>,
    /// Messages to clients.
    to_clients: Vec<Message<Msg>>,
    /// Nodes whose records are made durable at once after each call.
    auto_persist: Vec<bool>,
    /// Whether (from, to) may talk.
    cut: Vec<(String, String)>,
    now: Millis,
    cfg: LinKvConfig,
}

fn info(me: usize, n: usize, recovered: Vec<Vec<u8>>) -> InitInfo {
    InitInfo {
        node_id: format!("n{me}"),
        node_ids: (0..n).map(|i| format!("n{i}")).collect(),
        boot_unix_micros: 1_000 + me as u64,
        recovered,
    }
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        Cluster::with(n, LinKvConfig::default())
    }

    fn with(n: usize, cfg: LinKvConfig) -> Cluster {
        Cluster {
            nodes: (0..n)
                .map(|i| LinKv::init(&info(i, n, vec![]), &cfg, 0))
                .collect(),
            ids: (0..n).map(|i| format!("n{i}")).collect(),
            disks: vec![Vec::new(); n],
            wire: VecDeque::new(),
            to_clients: Vec::new(),
            auto_persist: vec![true; n],
            cut: Vec::new(),
            now: 0,
            cfg,
        }
    }

    fn idx(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|i| i == id)
    }

    /// Collects node `i`'s outputs (after making its records durable if it auto-persists).
    fn collect(&mut self, i: usize, mut ctx: Ctx<Msg>) {
        if self.auto_persist[i] {
            self.flush(i, &mut ctx);
        }
        for m in ctx.drain() {
            if is_client(&m.dest) {
                self.to_clients.push(m);
            } else {
                self.wire.push_back(m);
            }
        }
    }

    /// Makes every record node `i` emitted durable.
    fn flush(&mut self, i: usize, ctx: &mut Ctx<Msg>) {
        loop {
            let records = self.nodes[i].take_records();
            if records.is_empty() {
                return;
            }
            self.disks[i].extend(records);
            let count = self.nodes[i].emitted;
            self.nodes[i].persisted(count, self.now, ctx);
        }
    }

    fn persist(&mut self, i: usize) {
        let mut ctx = Ctx::new(self.ids[i].clone());
        self.flush(i, &mut ctx);
        self.collect(i, ctx);
    }

    fn tick(&mut self, i: usize) {
        let mut ctx = Ctx::new(self.ids[i].clone());
        self.nodes[i].tick(self.now, &mut ctx);
        self.collect(i, ctx);
    }

    /// Advances time to node `i`'s election deadline and ticks it.
    fn elect(&mut self, i: usize) {
        self.now = self.now.max(self.nodes[i].election_at);
        self.tick(i);
    }

    fn send(&mut self, to: usize, src: &str, msg_id: Option<u64>, payload: Msg) {
        let msg = Message {
            id: None,
            src: src.to_string(),
            dest: self.ids[to].clone(),
            body: Body {
                msg_id,
                in_reply_to: None,
                payload,
            },
        };
        self.deliver(msg);
    }

    fn deliver(&mut self, msg: Message<Msg>) {
        let Some(i) = self.idx(&msg.dest) else {
            return;
        };
        if self
            .cut
            .iter()
            .any(|(a, b)| *a == msg.src && *b == msg.dest)
        {
            return;
        }
        let mut ctx = Ctx::new(self.ids[i].clone());
        self.nodes[i].handle(msg, self.now, &mut ctx);
        self.collect(i, ctx);
    }

    /// Delivers until the wire is empty.
    fn settle(&mut self) {
        let mut steps = 0;
        while let Some(m) = self.wire.pop_front() {
            self.deliver(m);
            steps += 1;
            assert!(steps < 100_000, "the cluster does not settle");
        }
    }

    fn isolate(&mut self, i: usize) {
        for j in 0..self.ids.len() {
            if j != i {
                self.cut.push((self.ids[i].clone(), self.ids[j].clone()));
                self.cut.push((self.ids[j].clone(), self.ids[i].clone()));
            }
        }
    }

    fn restart(&mut self, i: usize) {
        let n = self.ids.len();
        self.nodes[i] = LinKv::init(&info(i, n, self.disks[i].clone()), &self.cfg, self.now);
    }

    fn client_replies(&mut self) -> Vec<(Option<u64>, Msg)> {
        self.to_clients
            .drain(..)
            .map(|m| (m.body.in_reply_to, m.body.payload))
            .collect()
    }
}

fn write(k: i64, v: i64) -> Msg {
    Msg::Write {
        key: json!(k),
        value: json!(v),
    }
}

fn read(k: i64) -> Msg {
    Msg::Read { key: json!(k) }
}

fn cas(k: i64, from: i64, to: i64) -> Msg {
    Msg::Cas {
        key: json!(k),
        from: json!(from),
        to: json!(to),
    }
}

fn entry(term: u64, v: i64) -> Entry {
    Entry {
        term,
        op: Op::Write {
            key: json!(0),
            value: json!(v),
        },
    }
}

#[test]
fn a_single_node_elects_itself_and_serves() {
    let mut c = Cluster::new(1);
    assert_eq!(c.nodes[0].next_tick(0), Some(c.nodes[0].election_at));
    assert!(c.nodes[0].election_at >= 300 && c.nodes[0].election_at < 600);
    c.elect(0);
    assert!(c.nodes[0].is_leader());
    c.send(0, "c1", Some(1), read(5));
    c.send(0, "c1", Some(2), write(5, 7));
    c.send(0, "c1", Some(3), cas(5, 7, 8));
    c.send(0, "c1", Some(4), cas(5, 7, 9));
    c.send(0, "c1", Some(5), read(5));
    let r = c.client_replies();
    assert!(
        matches!(&r[0], (Some(1), Msg::Error(e)) if e.code == 20),
        "{r:?}"
    );
    assert_eq!(r[1], (Some(2), Msg::WriteOk));
    assert_eq!(r[2], (Some(3), Msg::CasOk));
    assert!(
        matches!(&r[3], (Some(4), Msg::Error(e)) if e.code == 22),
        "{r:?}"
    );
    assert_eq!(r[4], (Some(5), Msg::ReadOk { value: json!(8) }));
}

#[test]
fn an_election_makes_one_leader_and_followers_know_it() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.settle();
    assert!(c.nodes[1].is_leader());
    assert_eq!(c.nodes[1].term(), 1);
    for i in [0, 2] {
        assert!(!c.nodes[i].is_leader());
        assert_eq!(c.nodes[i].leader(), Some("n1"));
        assert_eq!(c.nodes[i].term(), 1);
    }
    // The new leader's no-op is committed everywhere once the next heartbeat carries the commit.
    assert_eq!(c.nodes[1].commit_index(), 1);
    c.now += c.cfg.heartbeat_ms;
    c.tick(1);
    c.settle();
    assert_eq!(c.nodes[0].commit_index(), 1);
}

#[test]
fn a_node_votes_once_per_term_and_only_for_an_up_to_date_log() {
    let mut c = Cluster::new(3);
    let vote = |c: &mut Cluster, from: &str, term, last_log_index, last_log_term| {
        c.send(
            0,
            from,
            None,
            Msg::RequestVote {
                term,
                last_log_index,
                last_log_term,
            },
        );
        match c.wire.pop_back().map(|m| m.body.payload) {
            Some(Msg::RequestVoteOk { vote_granted, .. }) => vote_granted,
            other => panic!("{other:?}"),
        }
    };
    assert!(vote(&mut c, "n1", 1, 0, 0));
    assert!(vote(&mut c, "n1", 1, 0, 0), "the same candidate again");
    assert!(!vote(&mut c, "n2", 1, 0, 0), "one vote per term");
    // n0 gets entries of term 2; a candidate whose log ends in term 1 is behind, however long.
    c.nodes[0].write_log(1, vec![entry(2, 1)]);
    assert!(!vote(&mut c, "n2", 3, 5, 1));
    assert!(!vote(&mut c, "n1", 4, 0, 0));
    assert!(vote(&mut c, "n1", 5, 1, 2), "same last term, as long");
    // The vote is durable: a restart keeps it.
    c.restart(0);
    assert_eq!(c.nodes[0].term(), 5);
    assert!(!vote(&mut c, "n2", 5, 9, 9), "still voted for n1 in term 5");
}

#[test]
fn a_vote_and_an_acceptance_wait_until_durable() {
    let mut c = Cluster::new(3);
    c.auto_persist[0] = false;
    c.send(
        0,
        "n1",
        None,
        Msg::RequestVote {
            term: 1,
            last_log_index: 0,
            last_log_term: 0,
        },
    );
    assert!(
        c.wire.is_empty(),
        "no vote before the term and vote are durable"
    );
    c.persist(0);
    assert!(matches!(
        c.wire.pop_back().map(|m| m.body.payload),
        Some(Msg::RequestVoteOk {
            vote_granted: true,
            ..
        })
    ));
    c.send(
        0,
        "n1",
        None,
        Msg::AppendEntries {
            term: 1,
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![entry(1, 5)],
            leader_commit: 0,
            seq: 1,
        },
    );
    assert!(
        c.wire.is_empty(),
        "no success before the entries are durable"
    );
    c.persist(0);
    assert!(matches!(
        c.wire.pop_back().map(|m| m.body.payload),
        Some(Msg::AppendEntriesOk {
            success: true,
            index: 1,
            ..
        })
    ));
}

#[test]
fn a_conflicting_suffix_is_replaced_and_a_refusal_names_where_to_try() {
    let mut c = Cluster::new(3);
    let append = |c: &mut Cluster, prev: u64, prev_term: u64, entries: Vec<Entry>| {
        c.send(
            0,
            "n1",
            None,
            Msg::AppendEntries {
                term: 3,
                prev_log_index: prev,
                prev_log_term: prev_term,
                entries,
                leader_commit: 0,
                seq: 1,
            },
        );
        match c.wire.pop_back().map(|m| m.body.payload) {
            Some(Msg::AppendEntriesOk { success, index, .. }) => (success, index),
            other => panic!("{other:?}"),
        }
    };
    // n0 holds 1:t1, 2:t1, 3:t2, 4:t2 (from old leaders).
    c.nodes[0].write_log(1, vec![entry(1, 1), entry(1, 2), entry(2, 3), entry(2, 4)]);
    // Past its end: try right after it.
    assert_eq!(append(&mut c, 6, 3, vec![]), (false, 5));
    // Index 4 has term 2, not 3: back up to the first entry of term 2.
    assert_eq!(append(&mut c, 4, 3, vec![]), (false, 3));
    // Matching at 2: 3 and 4 are replaced by the leader's.
    assert_eq!(append(&mut c, 2, 1, vec![entry(3, 30)]), (true, 3));
    let terms: Vec<u64> = c.nodes[0].log().iter().map(|e| e.term).collect();
    assert_eq!(terms, [1, 1, 3]);
    // A stale, shorter copy of what it holds removes nothing.
    assert_eq!(append(&mut c, 1, 1, vec![entry(1, 2)]), (true, 2));
    assert_eq!(c.nodes[0].log().len(), 3);
    // The replaced log is what a restart finds.
    c.restart(0);
    let terms: Vec<u64> = c.nodes[0].log().iter().map(|e| e.term).collect();
    assert_eq!(terms, [1, 1, 3]);
    // A stale leader is refused with the current term.
    c.send(
        0,
        "n2",
        None,
        Msg::AppendEntries {
            term: 2,
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![],
            leader_commit: 0,
            seq: 1,
        },
    );
    assert!(matches!(
        c.wire.pop_back().map(|m| m.body.payload),
        Some(Msg::AppendEntriesOk {
            success: false,
            term: 3,
            ..
        })
    ));
}

#[test]
fn a_write_commits_only_with_a_majority() {
    let mut c = Cluster::new(5);
    c.elect(0);
    c.settle();
    assert!(c.nodes[0].is_leader());
    // Cut the leader off from three of four followers: one follower plus itself is no majority.
    for j in 2..5 {
        c.cut.push(("n0".into(), format!("n{j}")));
    }
    c.send(0, "c1", Some(1), write(1, 1));
    c.settle();
    assert!(c.client_replies().is_empty(), "answered without a majority");
    assert_eq!(c.nodes[0].commit_index(), 1);
    // One more follower: majority.
    c.cut.retain(|(_, b)| b != "n2");
    c.now += c.cfg.rpc_timeout_ms;
    c.tick(0);
    c.settle();
    assert_eq!(c.client_replies(), vec![(Some(1), Msg::WriteOk)]);
    assert_eq!(c.nodes[0].commit_index(), 2);
}

#[test]
fn the_leaders_own_copy_counts_only_once_durable() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.settle();
    c.auto_persist[0] = false;
    c.send(0, "c1", Some(1), write(1, 1));
    // Its append_entries wait for its own record too, so nothing moves until it is durable.
    assert!(c.wire.is_empty());
    c.persist(0);
    c.settle();
    assert_eq!(c.client_replies(), vec![(Some(1), Msg::WriteOk)]);
}

#[test]
fn entries_of_an_earlier_term_are_not_committed_by_counting() {
    // n0 led term 1 and got an entry to n1 only; n0 is then elected for term 3 with n1's vote.
    let mut c = Cluster::new(3);
    c.elect(0);
    c.settle();
    c.isolate(2);
    c.cut.push(("n1".into(), "n0".into()));
    c.send(0, "c1", Some(1), write(1, 1));
    c.settle();
    assert_eq!(c.nodes[0].log().len(), 2);
    // Elect n0 again in a later term while n2 is away; before its own no-op reaches n1,
    // index 2 (term 1) sits on a majority (n0, n1 after this heal) but must not commit alone.
    c.cut.clear();
    c.isolate(2);
    c.nodes[0].become_follower(None, c.now);
    c.nodes[0].term = 2;
    c.elect(0);
    // Deliver only the votes (not the entries yet).
    let mut entries = Vec::new();
    while let Some(m) = c.wire.pop_front() {
        if matches!(m.body.payload, Msg::AppendEntries { .. }) {
            entries.push(m);
        } else {
            c.deliver(m);
        }
    }
    assert!(c.nodes[0].is_leader());
    assert_eq!(c.nodes[0].term(), 3);
    // n1 acknowledges index 2 (from term 1) alone, as a stale answer might.
    c.deliver(Message {
        id: None,
        src: "n1".into(),
        dest: "n0".into(),
        body: Body::new(Msg::AppendEntriesOk {
            term: 3,
            success: true,
            index: 2,
            seq: 0,
        }),
    });
    assert_eq!(
        c.nodes[0].commit_index(),
        1,
        "a term-1 entry committed by counting"
    );
    // Once the term-3 no-op is on n1, both commit.
    for m in entries {
        c.deliver(m);
    }
    c.settle();
    assert_eq!(c.nodes[0].commit_index(), 3);
    assert_eq!(c.client_replies(), vec![(Some(1), Msg::WriteOk)]);
}

#[test]
fn followers_pass_requests_on_and_a_non_leader_refuses_other_nodes() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.settle();
    c.send(1, "c7", Some(3), write(2, 20));
    c.settle();
    c.send(2, "c8", Some(4), read(2));
    c.settle();
    assert_eq!(
        c.client_replies(),
        vec![
            (Some(3), Msg::WriteOk),
            (Some(4), Msg::ReadOk { value: json!(20) })
        ]
    );
    // A request from a node reaching a follower is not passed on again.
    c.send(1, "n2", Some(9), read(2));
    match c.wire.pop_back() {
        Some(m) => {
            assert_eq!(m.dest, "n2");
            assert!(matches!(m.body.payload, Msg::Error(ref e) if e.code == 11));
        }
        None => panic!("no answer"),
    }
    // A follower that knows no leader answers 11 (nothing was written).
    let mut c = Cluster::new(3);
    c.send(1, "c1", Some(1), write(1, 1));
    let r = c.client_replies();
    assert!(
        matches!(&r[..], [(Some(1), Msg::Error(e))] if e.code == 11),
        "{r:?}"
    );
}

#[test]
fn a_read_waits_for_a_majority_to_confirm_the_leader() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.settle();
    c.send(0, "c1", Some(1), write(1, 1));
    c.settle();
    c.client_replies();
    // The leader is cut off; a newer leader may exist, so it must not answer.
    c.isolate(0);
    c.send(0, "c1", Some(2), read(1));
    c.settle();
    assert!(
        c.client_replies().is_empty(),
        "a deposed leader's read answered"
    );
    c.cut.clear();
    c.now += c.cfg.rpc_timeout_ms;
    c.tick(0);
    c.settle();
    assert_eq!(
        c.client_replies(),
        vec![(Some(2), Msg::ReadOk { value: json!(1) })]
    );
}

#[test]
fn a_deposed_leaders_accepted_write_is_answered_if_it_commits() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.settle();
    // The write reaches n1 but n0 learns nothing back.
    c.cut.push(("n1".into(), "n0".into()));
    c.cut.push(("n2".into(), "n0".into()));
    c.cut.push(("n0".into(), "n2".into()));
    c.send(0, "c1", Some(1), write(3, 3));
    c.settle();
    assert!(c.client_replies().is_empty());
    // n1 (holding the entry) wins term 2 and commits it; n0 learns the commit as a follower.
    c.cut.clear();
    c.elect(1);
    c.settle();
    assert!(c.nodes[1].is_leader());
    c.now += c.cfg.heartbeat_ms;
    c.tick(1);
    c.settle();
    assert_eq!(c.client_replies(), vec![(Some(1), Msg::WriteOk)]);
}

#[test]
fn a_restarted_node_rebuilds_its_map_from_the_log() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.settle();
    for v in 0..5 {
        c.send(0, "c1", Some(v), write(1, v as i64));
        c.settle();
    }
    c.restart(0);
    assert!(!c.nodes[0].is_leader());
    assert_eq!(c.nodes[0].term(), 1);
    assert_eq!(c.nodes[0].log().len(), 6);
    assert!(
        c.nodes[0].kv().is_empty(),
        "nothing applied before commit is known"
    );
    c.elect(1);
    c.settle();
    c.now += c.cfg.heartbeat_ms;
    c.tick(1);
    c.settle();
    assert_eq!(
        c.nodes[0].kv().read(&json!(1)),
        Msg::ReadOk { value: json!(4) }
    );
}

#[test]
fn unreadable_or_misplaced_records_do_not_panic() {
    let good = serde_json::to_vec(&Record::Append {
        from: 1,
        entries: vec![entry(1, 1)],
    })
    .unwrap();
    let gap = serde_json::to_vec(&Record::Append {
        from: 9,
        entries: vec![entry(1, 1)],
    })
    .unwrap();
    let zero = serde_json::to_vec(&Record::Append {
        from: 0,
        entries: vec![entry(1, 1)],
    })
    .unwrap();
    let recovered = vec![b"garbage".to_vec(), good, gap, zero, vec![]];
    let node = LinKv::init(&info(0, 3, recovered), &LinKvConfig::default(), 0);
    assert_eq!(node.log().len(), 1);
}

/// Node 0 leads 5 nodes and commits a write with nodes 1 and 2 while 3 and 4 are cut off; then
/// 0, 1 and 2 are killed and restarted, the cut heals, and node 3 (whose log lacks the write)
/// stands for election. Returns whether node 3 won, and the cluster.
fn restart_the_majority_that_acknowledged(persist: bool) -> (bool, Cluster) {
    let cfg = LinKvConfig {
        persist,
        ..LinKvConfig::default()
    };
    let mut c = Cluster::with(5, cfg);
    c.elect(0);
    c.settle();
    c.isolate(3);
    c.isolate(4);
    c.send(0, "c1", Some(1), write(1, 7));
    c.settle();
    assert_eq!(c.client_replies(), vec![(Some(1), Msg::WriteOk)]);
    for i in 0..3 {
        c.restart(i);
    }
    c.cut.clear();
    c.wire.clear();
    c.elect(3);
    c.settle();
    (c.nodes[3].is_leader(), c)
}

#[test]
fn a_restarted_majority_keeps_what_it_acknowledged() {
    let (won, mut c) = restart_the_majority_that_acknowledged(true);
    assert!(!won, "a node without a committed write was elected");
    // A node that holds the write leads instead, and serves it.
    c.elect(1);
    c.settle();
    assert!(c.nodes[1].is_leader());
    c.send(1, "c2", Some(2), read(1));
    c.settle();
    assert_eq!(
        c.client_replies(),
        vec![(Some(2), Msg::ReadOk { value: json!(7) })]
    );
    // The planted bug this guards against: without persistence, the restarted nodes forget
    // the write and their votes, and elect node 3.
    let (won, _) = restart_the_majority_that_acknowledged(false);
    assert!(won, "the amnesiac cluster should have elected node 3");
}

#[test]
fn a_node_cut_off_from_the_leader_alone_cannot_depose_it() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.settle();
    assert!(c.nodes[0].is_leader());
    // n2 loses n0 but still reaches n1, which still hears n0.
    c.cut.push(("n0".into(), "n2".into()));
    c.cut.push(("n2".into(), "n0".into()));
    c.now = c.nodes[2].election_at;
    c.tick(0);
    c.settle();
    c.tick(2);
    c.settle();
    assert!(c.nodes[0].is_leader(), "the leader was deposed");
    assert_eq!((c.nodes[0].term(), c.nodes[1].term()), (1, 1));
    assert_eq!(
        c.nodes[2].term(),
        1,
        "stood for election without a majority's yes"
    );
    // Once n1 too has not heard from n0 for an election timeout, n2 may stand, and wins.
    c.cut.push(("n0".into(), "n1".into()));
    c.cut.push(("n1".into(), "n0".into()));
    c.now += 2 * c.cfg.election_ms;
    c.tick(2);
    c.settle();
    assert!(c.nodes[2].is_leader());
    assert_eq!(c.nodes[2].term(), 2);
}

//! `lin-kv`: Maelstrom's linearizable key-value workload
//! ([workloads](https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md#workload-lin-kv):
//! `read {key}` → `read_ok {value}`, `write {key, value}` → `write_ok`, `cas {key, from, to}` →
//! `cas_ok`, errors 20 key-does-not-exist and 22 precondition-failed) served by a Raft group of
//! all the nodes, sans-IO like every murmur workload: no clock (time comes in as `now`), no
//! I/O (records go to the host's store, messages to the output context), randomness from a
//! seeded generator. The design follows the Raft paper (Ongaro and Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", 2014) and the last chapter of Maelstrom's
//! [guide](https://github.com/jepsen-io/maelstrom/tree/main/doc/06-raft).
//!
//! **Why hand-written.** The Raft libraries for Rust that are kept up (`raft-rs` of TiKV,
//! `openraft`) either bring their own storage and message types built around protobuf and a
//! large dependency tree, or an async runtime with their own timers and tasks; neither is driven
//! by `handle(msg, now)` and `tick(now)` alone, which is what the simulator needs to run the node
//! deterministically. The protocol is small enough to write here and test against the simulator.
//!
//! # Protocol
//! - **Elections.** A follower that hears from no leader for a randomized timeout (uniform in
//!   [`election_ms`, 2 × `election_ms`), drawn from the node's seeded generator) first asks
//!   every peer whether it would vote for it in the next term (`pre_vote`, which changes no
//!   one's term; the thesis's §9.6). A peer says yes only to a log at least as up to date as its
//!   own and only if it has not heard from a leader within `election_ms` itself. Only with a
//!   majority of yeses does the node become a candidate for the next term, vote for itself and
//!   ask every peer (`request_vote`). Without that step, a node that a partition cuts off from
//!   the leader but not from the leader's followers (Jepsen's `majorities-ring`) would start
//!   election after election, each higher term deposing a working leader: in a 20 s run at 5
//!   nodes that made over a hundred elections and twenty leaders. A node
//!   grants at most one vote per term, and only to a candidate whose log is at least as up to date
//!   as its own (last entry's term, then length). A majority of votes makes a leader, which
//!   appends a no-op entry of its term at once, so it can commit (and serve reads) without
//!   waiting for a client write. Any message with a higher term turns its receiver into a
//!   follower of that term.
//! - **Replication.** The leader keeps one `append_entries` in flight per follower: the entries
//!   after what it believes the follower holds (at most `max_batch`), the index and term just
//!   before them, its commit index and a sequence number. Entries that arrive while one is in
//!   flight go in the next, sent when the answer comes (so a busy leader batches without a
//!   timer); an idle follower gets an empty one every `heartbeat_ms`; an unanswered one is sent
//!   again after `rpc_timeout_ms`. A follower whose log does not match at the previous index
//!   refuses and names where to try next (its log's end, or the first index of the conflicting
//!   term), so the leader backs up a term at a time rather than an entry at a time; a matching
//!   one drops any conflicting suffix and appends.
//! - **Commit.** The leader commits the highest index of its own term that a majority (itself
//!   included, counting only what it has made durable) holds; earlier entries commit with it
//!   (the paper's §5.4.2: entries of earlier terms are never committed by counting replicas).
//!   Committed entries are applied in order to the key-value map; the node that accepted the
//!   request answers it then.
//! - **Reads: read-index**, not through the log (the paper's §6.4 of Ongaro's thesis). The leader
//!   answers a read once (1) it has committed an entry of its own term, (2) a majority has
//!   answered an `append_entries` sent after the read arrived (so no other leader had been
//!   elected by then: that majority would have refused a stale term), and (3) it has applied
//!   everything committed when the read arrived. Why not through the log: a read then costs no
//!   log entry, no disk write on any node and no state in the log, only the round of heartbeats,
//!   which it shares with every other read and write waiting at the time. Why not a leader
//!   lease: a lease trusts clocks and bounded pauses, and Maelstrom pauses processes at will.
//! - **Requests on a follower** are passed on to the leader it knows for its term, unchanged
//!   (the same `read`, `write` or `cas`), and the leader's answer goes back to the client.
//!   A node that is not the leader answers a request from another node with error 11 (it
//!   never passes it on again, so requests cannot loop), and a client request with error 11
//!   when it knows no leader: in both cases nothing was written, so the error is definite and
//!   Maelstrom's client retries with its next op. A request whose entry was appended but not
//!   known to commit is never answered with an error (it may still commit): if it commits,
//!   whichever node accepted it answers; if not, the client times out (an indeterminate op).
//! - **Late answers are not sent.** Maelstrom's lin-kv client gives up after max(10 × latency,
//!   1 s) and closes its id, and a reply to a closed client makes Maelstrom stop reading the
//!   node's output for the rest of the test. So the node asks the host's client guard for a
//!   reply deadline of its own ([`LinKvConfig::reply_deadline_ms`], 800 ms, through
//!   [`Workload::reply_deadline_ms`]): a request that commits later still takes effect, but
//!   its client hears nothing (an indeterminate op, as if the reply were lost).
//!
//! # Durability
//! Term, vote and log are records in the node's store ([`crate::store`], the same log file as
//! broadcast's): a `hard` record whenever term or vote change, an `append` record for every
//! change to the log (its start index and the entries from there, which replaces any suffix).
//! Every message the node sends, to peers or clients, waits until every record emitted before
//! it is durable ([`crate::node::Workload::persisted`]): a vote, a success to the leader or an
//! answer after commit never leaves before the state it promises is on disk, so a node killed
//! at any instant restarts with a term, a vote and a log that are consistent with all it said.
//! The commit index and the map are not stored; a restarted node rebuilds the map by applying
//! its log again as the leader tells it what is committed. The log is not compacted (no
//! snapshots): a 20 s test at 100 ops/s writes a few thousand entries.

mod config;
mod kv;

#[cfg(test)]
mod tests;

pub use config::{LinKvConfig, Mutant};
pub use kv::Kv;

use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::rpc::Calls;
use crate::wire::{is_client, ErrorBody, ErrorCode};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// Client requests and the Raft conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    Read {
        key: Value,
    },
    ReadOk {
        value: Value,
    },
    Write {
        key: Value,
        value: Value,
    },
    WriteOk,
    Cas {
        key: Value,
        from: Value,
        to: Value,
    },
    CasOk,
    /// Before standing, a node asks whether it would be voted for in `term` (its own term + 1),
    /// without changing anyone's term (module docs, "Elections").
    PreVote {
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
    },
    /// `term`: the term asked about if granted, else the answerer's own term.
    PreVoteOk {
        term: u64,
        vote_granted: bool,
    },
    /// A candidate asks for a vote.
    RequestVote {
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
    },
    RequestVoteOk {
        term: u64,
        vote_granted: bool,
    },
    /// The leader's entries (or heartbeat) for a follower.
    AppendEntries {
        term: u64,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
        /// Echoed in the answer: the read-index rounds this answer confirms.
        seq: u64,
    },
    AppendEntriesOk {
        term: u64,
        success: bool,
        /// On success, the last index the follower now holds as the leader's; on a refusal, the
        /// index the leader should try next.
        index: u64,
        seq: u64,
    },
    Error(ErrorBody),
}

impl From<ErrorBody> for Msg {
    fn from(e: ErrorBody) -> Self {
        Msg::Error(e)
    }
}

/// What an entry does to the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A new leader's first entry.
    Noop,
    Write {
        key: Value,
        value: Value,
    },
    Cas {
        key: Value,
        from: Value,
        to: Value,
    },
}

/// One log entry: the term of the leader that created it and its op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub op: Op,
}

/// What the node stores (module docs, "Durability").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
enum Record {
    Hard {
        term: u64,
        vote: Option<String>,
    },
    /// The log from `from` on is `entries` (any longer suffix is gone).
    Append {
        from: u64,
        entries: Vec<Entry>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Follower,
    Candidate,
    Leader,
}

/// Who asked, for the answer: a client, or a follower passing a client's request on.
#[derive(Debug, Clone, PartialEq)]
struct Requester {
    src: String,
    msg_id: Option<u64>,
}

/// A write or cas appended at some index, waiting for it to commit.
#[derive(Debug)]
struct Pending {
    term: u64,
    who: Requester,
    deadline: Millis,
}

/// A read waiting for the leader's confirmation (module docs, "Reads").
#[derive(Debug)]
struct ReadWait {
    who: Requester,
    key: Value,
    /// The commit index when it arrived.
    index: u64,
    /// Answers to `append_entries` with at least this `seq` confirm it.
    round: u64,
    deadline: Millis,
}

/// The leader's view of one follower.
#[derive(Debug, Clone)]
struct Peer {
    id: String,
    /// The next index to send it.
    next: u64,
    /// The highest index known to match the leader's log.
    matched: u64,
    /// The highest `seq` it has answered in this term.
    acked: u64,
    /// An `append_entries` in flight, sent again if unanswered by then.
    inflight_until: Option<Millis>,
    last_sent: Millis,
}

/// A client request passed on to the leader.
#[derive(Debug)]
struct Proxied {
    client: String,
    msg_id: Option<u64>,
}

/// The Raft lin-kv node (module docs).
pub struct LinKv {
    cfg: LinKvConfig,
    me: String,
    /// Every other node.
    others: Vec<String>,
    cluster: usize,
    rng: SmallRng,

    term: u64,
    vote: Option<String>,
    /// `log[0]` is a sentinel of term 0; entry `i` is `log[i]`.
    log: Vec<Entry>,
    commit: u64,
    applied: u64,
    kv: Kv,

    role: Role,
    leader: Option<String>,
    election_at: Millis,
    votes: Vec<String>,
    /// During a pre-vote round: the nodes that would vote for this one in `term + 1`.
    prevotes: Option<Vec<String>>,
    /// When this node last accepted an `append_entries` from the leader of its term.
    leader_seen: Option<Millis>,
    peers: Vec<Peer>,
    seq: u64,

    pending: BTreeMap<u64, Pending>,
    reads: Vec<ReadWait>,
    proxied: Calls<Proxied>,

    /// Outputs are built here and move to the host's context once every record emitted before
    /// them is durable.
    out: Ctx<Msg>,
    held: VecDeque<(u64, Message<Msg>)>,
    records: Vec<Vec<u8>>,
    /// Records emitted in this incarnation, and how many of them are durable.
    emitted: u64,
    durable: u64,
    /// The last log index known durable, and the log's end as each record not yet durable
    /// leaves it: (record number, last index).
    durable_index: u64,
    unflushed: VecDeque<(u64, u64)>,
}

impl std::fmt::Debug for LinKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinKv")
            .field("me", &self.me)
            .field("term", &self.term)
            .field("role", &self.role)
            .field("log_len", &self.last_index())
            .field("commit", &self.commit)
            .finish_non_exhaustive()
    }
}

fn error(code: ErrorCode, text: &str) -> Msg {
    Msg::Error(ErrorBody::new(code, text))
}

impl LinKv {
    // ---- inspection (tests) ----

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn commit_index(&self) -> u64 {
        self.commit
    }

    pub fn log(&self) -> &[Entry] {
        &self.log[1..]
    }

    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    // ---- the log ----

    fn last_index(&self) -> u64 {
        (self.log.len() - 1) as u64
    }

    fn term_at(&self, index: u64) -> Option<u64> {
        self.log.get(usize::try_from(index).ok()?).map(|e| e.term)
    }

    fn last_term(&self) -> u64 {
        self.log.last().map_or(0, |e| e.term)
    }

    fn majority(&self) -> usize {
        self.cluster / 2 + 1
    }

    // ---- durability ----

    fn emit(&mut self, record: &Record) {
        if !self.cfg.persist {
            return;
        }
        match serde_json::to_vec(record) {
            Ok(bytes) => {
                self.records.push(bytes);
                self.emitted += 1;
                self.unflushed.push_back((self.emitted, self.last_index()));
            }
            Err(e) => tracing::error!("cannot encode a record: {e}"),
        }
    }

    fn save_hard(&mut self) {
        let r = Record::Hard {
            term: self.term,
            vote: self.vote.clone(),
        };
        self.emit(&r);
    }

    /// Replaces the log from `from` on (`from` ≤ last index + 1) by `entries`, and records it.
    fn write_log(&mut self, from: u64, entries: Vec<Entry>) {
        let from_usize = usize::try_from(from).unwrap_or(usize::MAX).max(1);
        if from_usize <= self.log.len() {
            self.log.truncate(from_usize);
        }
        // What is durable and still ours ends before the replaced part, whatever records
        // written before this one promised.
        let kept = from.saturating_sub(1);
        self.durable_index = self.durable_index.min(kept);
        for (_, last) in self.unflushed.iter_mut() {
            *last = (*last).min(kept);
        }
        if self.cfg.persist {
            let r = Record::Append {
                from,
                entries: entries.clone(),
            };
            self.log.extend(entries);
            self.emit(&r);
        } else {
            self.log.extend(entries);
            self.durable_index = self.last_index();
        }
    }

    /// Moves what handlers sent to the host's context, or holds it until the records emitted
    /// so far are durable.
    fn release(&mut self, ctx: &mut Ctx<Msg>) {
        for m in self.out.drain() {
            if self.held.is_empty() && self.durable >= self.emitted {
                ctx.forward(m);
            } else {
                self.held.push_back((self.emitted, m));
            }
        }
    }

    // ---- timers ----

    fn reset_election(&mut self, now: Millis) {
        let lo = self.cfg.election_ms;
        self.election_at = now + self.rng.random_range(lo..lo.saturating_mul(2).max(lo + 1));
    }

    // ---- roles ----

    /// A message carried `term`: a newer term makes this node a follower of it.
    fn observe(&mut self, term: u64, now: Millis) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.prevotes = None;
            self.save_hard();
            self.become_follower(None, now);
        }
    }

    fn become_follower(&mut self, leader: Option<String>, now: Millis) {
        if self.role == Role::Leader {
            // Reads cannot be confirmed any more: they fail (reads are idempotent, so the
            // error is safe); writes stay pending, since their entries may still commit.
            for r in std::mem::take(&mut self.reads) {
                self.out.reply(
                    &r.who.src,
                    r.who.msg_id,
                    error(ErrorCode::TemporarilyUnavailable, "leadership lost"),
                );
            }
            self.reset_election(now);
        }
        self.role = Role::Follower;
        self.leader = leader;
    }

    /// The election timeout fired: ask the others whether they would vote for this node in the
    /// next term, and stand only if a majority would.
    fn start_pre_vote(&mut self, now: Millis) {
        self.leader = None;
        self.prevotes = Some(vec![self.me.clone()]);
        self.reset_election(now);
        for peer in self.others.clone() {
            let m = Msg::PreVote {
                term: self.term + 1,
                last_log_index: self.last_index(),
                last_log_term: self.last_term(),
            };
            self.out.notify(&peer, m);
        }
        self.check_prevotes(now);
    }

    fn check_prevotes(&mut self, now: Millis) {
        if self
            .prevotes
            .as_ref()
            .is_some_and(|v| v.len() >= self.majority())
        {
            self.start_election(now);
        }
    }

    fn start_election(&mut self, now: Millis) {
        self.prevotes = None;
        self.term += 1;
        self.role = Role::Candidate;
        self.leader = None;
        self.vote = Some(self.me.clone());
        self.votes = vec![self.me.clone()];
        self.save_hard();
        self.reset_election(now);
        tracing::info!(term = self.term, "standing for election");
        for peer in self.others.clone() {
            let m = Msg::RequestVote {
                term: self.term,
                last_log_index: self.last_index(),
                last_log_term: self.last_term(),
            };
            self.out.notify(&peer, m);
        }
        self.check_votes(now);
    }

    fn check_votes(&mut self, now: Millis) {
        if self.role == Role::Candidate && self.votes.len() >= self.majority() {
            self.become_leader(now);
        }
    }

    fn become_leader(&mut self, now: Millis) {
        tracing::info!(term = self.term, "leader");
        self.role = Role::Leader;
        self.leader = Some(self.me.clone());
        let next = self.last_index() + 1;
        self.peers = self
            .others
            .iter()
            .map(|id| Peer {
                id: id.clone(),
                next,
                matched: 0,
                acked: 0,
                inflight_until: None,
                last_sent: 0,
            })
            .collect();
        let noop = Entry {
            term: self.term,
            op: Op::Noop,
        };
        self.write_log(next, vec![noop]);
        self.advance_commit();
        self.replicate(now);
    }

    // ---- leader ----

    /// Sends each follower what it needs now: new entries, a read round, or a heartbeat, unless
    /// an `append_entries` to it is still in flight.
    fn replicate(&mut self, now: Millis) {
        if self.role != Role::Leader {
            return;
        }
        let round = self.reads.iter().map(|r| r.round).max().unwrap_or(0);
        for i in 0..self.peers.len() {
            let p = &self.peers[i];
            let free = p.inflight_until.map_or(true, |t| now >= t);
            let want = p.next <= self.last_index()
                || p.acked < round
                || now >= p.last_sent + self.cfg.heartbeat_ms;
            if free && want {
                self.send_append(i, now);
            }
        }
    }

    fn send_append(&mut self, i: usize, now: Millis) {
        self.seq += 1;
        let last = self.last_index();
        let p = &mut self.peers[i];
        p.next = p.next.clamp(1, last + 1);
        let prev = p.next - 1;
        let end = last.min(prev + self.cfg.max_batch as u64);
        let entries = self.log[(prev + 1) as usize..=end as usize].to_vec();
        p.inflight_until = Some(now + self.cfg.rpc_timeout_ms);
        p.last_sent = now;
        let id = p.id.clone();
        let m = Msg::AppendEntries {
            term: self.term,
            prev_log_index: prev,
            prev_log_term: self.term_at(prev).unwrap_or(0),
            entries,
            leader_commit: self.commit,
            seq: self.seq,
        };
        self.out.notify(&id, m);
    }

    /// Commits the highest index of this term a majority holds (module docs, "Commit").
    fn advance_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let mut n = self.last_index();
        while n > self.commit && self.term_at(n) == Some(self.term) {
            let mut count = usize::from(self.durable_index >= n);
            count += self.peers.iter().filter(|p| p.matched >= n).count();
            if count >= self.majority() || self.cfg.mutant == Some(Mutant::NoQuorumCommit) {
                self.commit = n;
                break;
            }
            n -= 1;
        }
        self.apply();
        self.serve_reads();
    }

    /// Answers the reads the leader can now confirm (module docs, "Reads").
    fn serve_reads(&mut self) {
        if self.role != Role::Leader || self.reads.is_empty() {
            return;
        }
        if self.term_at(self.commit) != Some(self.term) {
            return;
        }
        // The highest round a majority (this node always included) has answered.
        let mut acked: Vec<u64> = self.peers.iter().map(|p| p.acked).collect();
        acked.push(u64::MAX);
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = acked[self.majority() - 1];
        let applied = self.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads)
            .into_iter()
            .partition(|r| r.round <= confirmed && r.index <= applied);
        self.reads = waiting;
        for r in ready {
            let answer = self.kv.read(&r.key);
            self.out.reply(&r.who.src, r.who.msg_id, answer);
        }
    }

    fn on_append_ok(
        &mut self,
        src: &str,
        term: u64,
        success: bool,
        index: u64,
        seq: u64,
        now: Millis,
    ) {
        self.observe(term, now);
        if self.role != Role::Leader || term != self.term {
            return;
        }
        let last = self.last_index();
        let Some(p) = self.peers.iter_mut().find(|p| p.id == src) else {
            return;
        };
        p.inflight_until = None;
        p.acked = p.acked.max(seq);
        if success {
            p.matched = p.matched.max(index.min(last));
            p.next = p.matched + 1;
        } else {
            p.next = index.clamp(p.matched + 1, last + 1);
        }
        self.advance_commit();
        self.replicate(now);
    }

    // ---- follower ----

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        src: &str,
        term: u64,
        prev: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
        seq: u64,
        now: Millis,
    ) {
        self.observe(term, now);
        let refuse = |me: &mut Self, index| {
            let m = Msg::AppendEntriesOk {
                term: me.term,
                success: false,
                index,
                seq,
            };
            me.out.notify(src, m);
        };
        if term < self.term {
            return refuse(self, 0);
        }
        // The leader of this term (there is one per term): a candidate steps back.
        if self.role != Role::Follower || self.leader.as_deref() != Some(src) {
            if self.role == Role::Leader {
                tracing::error!(term, %src, "two leaders in one term");
                return;
            }
            self.become_follower(Some(src.to_string()), now);
        }
        self.reset_election(now);
        self.leader_seen = Some(now);
        self.prevotes = None;
        match self.term_at(prev) {
            None => return refuse(self, self.last_index() + 1),
            Some(t) if t != prev_term => {
                // Back up to the first entry of the conflicting term.
                let mut i = prev;
                while i > self.commit + 1 && self.term_at(i - 1) == Some(t) {
                    i -= 1;
                }
                return refuse(self, i.max(1));
            }
            Some(_) => {}
        }
        // Skip what we already hold; replace from the first conflict.
        let count = entries.len() as u64;
        let mut first_new = None;
        for (k, e) in entries.iter().enumerate() {
            let idx = prev + 1 + k as u64;
            if self.term_at(idx) != Some(e.term) {
                first_new = Some(k);
                break;
            }
        }
        if let Some(k) = first_new {
            let from = prev + 1 + k as u64;
            // Requests accepted at the replaced indexes will not commit here.
            let _gone = self.pending.split_off(&from);
            let new: Vec<Entry> = entries.into_iter().skip(k).collect();
            self.write_log(from, new);
        }
        let matched = prev + count;
        let commit = leader_commit.min(matched);
        if commit > self.commit {
            self.commit = commit;
            self.apply();
        }
        let m = Msg::AppendEntriesOk {
            term: self.term,
            success: true,
            index: matched,
            seq,
        };
        self.out.notify(src, m);
    }

    fn on_request_vote(
        &mut self,
        src: &str,
        term: u64,
        last_index: u64,
        last_term: u64,
        now: Millis,
    ) {
        self.observe(term, now);
        let up_to_date = (last_term, last_index) >= (self.last_term(), self.last_index());
        let free = self.vote.is_none() || self.vote.as_deref() == Some(src);
        let granted = term == self.term && self.role == Role::Follower && free && up_to_date;
        if granted && self.vote.is_none() {
            self.vote = Some(src.to_string());
            self.save_hard();
        }
        if granted {
            self.reset_election(now);
        }
        let m = Msg::RequestVoteOk {
            term: self.term,
            vote_granted: granted,
        };
        self.out.notify(src, m);
    }

    /// Would this node vote for `src` in `term`? Only for a newer term and an up-to-date log,
    /// and not while it hears from a leader (it is one, or one has reached it within the lowest
    /// election timeout): a node cut off from the leader alone cannot depose it.
    fn on_pre_vote(&mut self, src: &str, term: u64, last_index: u64, last_term: u64, now: Millis) {
        let up_to_date = (last_term, last_index) >= (self.last_term(), self.last_index());
        let hears_leader = self.role == Role::Leader
            || self
                .leader_seen
                .is_some_and(|t| now < t.saturating_add(self.cfg.election_ms));
        let granted = term > self.term && up_to_date && !hears_leader;
        let m = Msg::PreVoteOk {
            term: if granted { term } else { self.term },
            vote_granted: granted,
        };
        self.out.notify(src, m);
    }

    fn on_pre_vote_ok(&mut self, src: &str, term: u64, granted: bool, now: Millis) {
        if !granted {
            // A refusal carries the answerer's term, which may be newer.
            return self.observe(term, now);
        }
        if term != self.term + 1 {
            return;
        }
        if let Some(v) = self.prevotes.as_mut() {
            if !v.iter().any(|n| n == src) {
                v.push(src.to_string());
            }
        }
        self.check_prevotes(now);
    }

    fn on_vote(&mut self, src: &str, term: u64, granted: bool, now: Millis) {
        self.observe(term, now);
        if self.role == Role::Candidate
            && term == self.term
            && granted
            && !self.votes.iter().any(|v| v == src)
        {
            self.votes.push(src.to_string());
            self.check_votes(now);
        }
    }

    // ---- the state machine ----

    /// Applies committed entries in order and answers the requests this node accepted for them.
    fn apply(&mut self) {
        while self.applied < self.commit {
            self.applied += 1;
            let i = self.applied as usize;
            let Some(entry) = self.log.get(i) else {
                // Commit never passes the log's end; stop rather than panic if it did.
                self.applied -= 1;
                return;
            };
            let answer = self.kv.apply(&entry.op);
            let term = entry.term;
            if let Some(p) = self.pending.remove(&self.applied) {
                if p.term == term {
                    if let Some(answer) = answer {
                        self.out.reply(&p.who.src, p.who.msg_id, answer);
                    }
                }
            }
        }
    }

    // ---- requests ----

    fn on_request(&mut self, src: String, msg_id: Option<u64>, req: Msg, now: Millis) {
        let who = Requester {
            src: src.clone(),
            msg_id,
        };
        if self.cfg.mutant == Some(Mutant::LocalReads) {
            if let Msg::Read { key } = &req {
                let answer = self.kv.read(key);
                self.out.reply(&src, msg_id, answer);
                return;
            }
        }
        if self.role == Role::Leader {
            return self.accept(who, req, now);
        }
        if !is_client(&src) {
            return self.out.reply(
                &src,
                msg_id,
                error(ErrorCode::TemporarilyUnavailable, "not the leader"),
            );
        }
        match self.leader.clone() {
            Some(leader) => {
                let id = self.out.send(&leader, req);
                self.proxied.register(
                    id,
                    now + self.cfg.proxy_timeout_ms,
                    Proxied {
                        client: src,
                        msg_id,
                    },
                );
            }
            None => self.out.reply(
                &src,
                msg_id,
                error(ErrorCode::TemporarilyUnavailable, "no leader known; retry"),
            ),
        }
    }

    /// The leader takes a request: a read waits for confirmation, a write or cas is appended.
    fn accept(&mut self, who: Requester, req: Msg, now: Millis) {
        let deadline = now + self.cfg.pending_timeout_ms;
        let op = match req {
            Msg::Read { key } => {
                self.reads.push(ReadWait {
                    who,
                    key,
                    index: self.commit,
                    round: self.seq + 1,
                    deadline,
                });
                if self.peers.is_empty() {
                    self.serve_reads();
                }
                self.replicate(now);
                return;
            }
            Msg::Write { key, value } => Op::Write { key, value },
            Msg::Cas { key, from, to } => Op::Cas { key, from, to },
            _ => return,
        };
        let index = self.last_index() + 1;
        self.pending.insert(
            index,
            Pending {
                term: self.term,
                who,
                deadline,
            },
        );
        self.write_log(
            index,
            vec![Entry {
                term: self.term,
                op,
            }],
        );
        self.advance_commit();
        self.replicate(now);
    }

    /// The leader's answer to a request this node passed on: back to the client.
    fn on_proxied_reply(&mut self, in_reply_to: u64, payload: Msg) {
        let Some(p) = self.proxied.resolve(in_reply_to) else {
            return;
        };
        match payload {
            Msg::ReadOk { .. } | Msg::WriteOk | Msg::CasOk | Msg::Error(_) => {
                self.out.reply(&p.client, p.msg_id, payload)
            }
            other => tracing::debug!(?other, "unexpected answer to a passed-on request"),
        }
    }

    /// Forgets requests that waited too long (their clients have given up).
    fn expire(&mut self, now: Millis) {
        self.proxied.expire(now);
        self.pending.retain(|_, p| p.deadline > now);
        self.reads.retain(|r| r.deadline > now);
    }

    /// Rebuilds term, vote and log from the records a previous incarnation made durable.
    fn recover(&mut self, records: &[Vec<u8>]) {
        for bytes in records {
            match serde_json::from_slice::<Record>(bytes) {
                Ok(Record::Hard { term, vote }) => {
                    self.term = term;
                    self.vote = vote;
                }
                Ok(Record::Append { from, entries }) => {
                    let Ok(at) = usize::try_from(from) else {
                        continue;
                    };
                    if at == 0 || at > self.log.len() {
                        tracing::error!(from, "an append record past the log's end; skipped");
                        continue;
                    }
                    self.log.truncate(at);
                    self.log.extend(entries);
                }
                Err(e) => tracing::error!("unreadable record skipped: {e}"),
            }
        }
        self.durable_index = self.last_index();
    }
}

impl Workload for LinKv {
    type Msg = Msg;
    type Config = LinKvConfig;

    fn init(info: &InitInfo, cfg: &LinKvConfig, now: Millis) -> Self {
        let seed = info
            .node_id
            .bytes()
            .fold(info.boot_unix_micros ^ now.rotate_left(32), |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let others: Vec<String> = info
            .node_ids
            .iter()
            .filter(|n| **n != info.node_id)
            .cloned()
            .collect();
        let mut node = LinKv {
            cfg: cfg.clone(),
            me: info.node_id.clone(),
            cluster: others.len() + 1,
            others,
            rng: SmallRng::seed_from_u64(seed),
            term: 0,
            vote: None,
            log: vec![Entry {
                term: 0,
                op: Op::Noop,
            }],
            commit: 0,
            applied: 0,
            kv: Kv::default(),
            role: Role::Follower,
            leader: None,
            election_at: 0,
            votes: Vec::new(),
            prevotes: None,
            leader_seen: None,
            peers: Vec::new(),
            seq: 0,
            pending: BTreeMap::new(),
            reads: Vec::new(),
            proxied: Calls::default(),
            out: Ctx::new(info.node_id.clone()),
            held: VecDeque::new(),
            records: Vec::new(),
            emitted: 0,
            durable: 0,
            durable_index: 0,
            unflushed: VecDeque::new(),
        };
        if cfg.persist {
            node.recover(&info.recovered);
        }
        node.reset_election(now);
        node
    }

    fn handle(&mut self, msg: Message<Msg>, now: Millis, ctx: &mut Ctx<Msg>) {
        self.expire(now);
        let src = msg.src;
        if let Some(irt) = msg.body.in_reply_to {
            self.on_proxied_reply(irt, msg.body.payload);
            return self.release(ctx);
        }
        let msg_id = msg.body.msg_id;
        match msg.body.payload {
            req @ (Msg::Read { .. } | Msg::Write { .. } | Msg::Cas { .. }) => {
                self.on_request(src, msg_id, req, now)
            }
            Msg::PreVote {
                term,
                last_log_index,
                last_log_term,
            } => self.on_pre_vote(&src, term, last_log_index, last_log_term, now),
            Msg::PreVoteOk { term, vote_granted } => {
                self.on_pre_vote_ok(&src, term, vote_granted, now)
            }
            Msg::RequestVote {
                term,
                last_log_index,
                last_log_term,
            } => self.on_request_vote(&src, term, last_log_index, last_log_term, now),
            Msg::RequestVoteOk { term, vote_granted } => {
                self.on_vote(&src, term, vote_granted, now)
            }
            Msg::AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                seq,
            } => self.on_append(
                &src,
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                seq,
                now,
            ),
            Msg::AppendEntriesOk {
                term,
                success,
                index,
                seq,
            } => self.on_append_ok(&src, term, success, index, seq, now),
            Msg::ReadOk { .. } | Msg::WriteOk | Msg::CasOk | Msg::Error(_) => {
                tracing::debug!(%src, "an answer without in_reply_to ignored")
            }
        }
        self.release(ctx);
    }

    fn tick(&mut self, now: Millis, ctx: &mut Ctx<Msg>) {
        self.expire(now);
        match self.role {
            Role::Leader => self.replicate(now),
            Role::Follower | Role::Candidate => {
                if now >= self.election_at {
                    self.start_pre_vote(now);
                }
            }
        }
        self.release(ctx);
    }

    fn next_tick(&mut self, _now: Millis) -> Option<Millis> {
        match self.role {
            Role::Leader => self
                .peers
                .iter()
                .map(|p| {
                    p.inflight_until
                        .unwrap_or(p.last_sent + self.cfg.heartbeat_ms)
                })
                .min(),
            Role::Follower | Role::Candidate => Some(self.election_at),
        }
    }

    fn reply_deadline_ms(config: &LinKvConfig) -> Option<Millis> {
        Some(config.reply_deadline_ms)
    }

    fn persistent(config: &LinKvConfig) -> bool {
        config.persist
    }

    fn take_records(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.records)
    }

    fn persisted(&mut self, count: u64, now: Millis, ctx: &mut Ctx<Msg>) {
        self.durable = self.durable.max(count);
        while let Some(&(n, last)) = self.unflushed.front() {
            if n > self.durable {
                break;
            }
            self.unflushed.pop_front();
            self.durable_index = last;
        }
        // What waited for these records.
        while let Some((need, _)) = self.held.front() {
            if *need > self.durable {
                break;
            }
            if let Some((_, m)) = self.held.pop_front() {
                ctx.forward(m);
            }
        }
        // The leader's own copy counts towards a majority once durable.
        self.advance_commit();
        self.replicate(now);
        self.release(ctx);
    }
}

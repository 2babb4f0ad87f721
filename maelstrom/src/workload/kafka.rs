//! The kafka workload's client side, as Maelstrom's `workload/kafka.clj` builds it on Jepsen's
//! `jepsen.tests.kafka` (with `txn?` false, client crashes on, subscriptions by `assign`).
//!
//! **Ops.** Jepsen's list-append transaction generator with transactions of one micro-op: half
//! reads, which become `poll`s, half appends, which become `send`s of the key's next message
//! (1, 2, 3, … per key). Keys come from a pool of `--key-count` ([`KEY_COUNT`] by default) active
//! keys drawn with an exponential distribution (key *i* of the pool twice as likely as key
//! *i − 1*); a key that has had `--max-writes-per-key` ([`MAX_WRITES_PER_KEY`] by default)
//! messages is replaced in the pool by a fresh one (the highest key
//! so far plus one), so a run touches many keys, each with a short log. On the wire and in the
//! history keys are strings (`"3"`). With probability 1/64 the generator emits, instead of its
//! next op (which stays next), an `assign` of that op's key; a third of those assigns also take
//! every key with messages acknowledged but not yet polled by anyone (Jepsen's `poll-unseen`).
//! Client crashes (`crash`, completed `info` at once, so the worker gets a new process and a
//! new client with no positions) take the place of the next op every U[0, 60 / concurrency) s.
//!
//! **Client.** Each client keeps a position per assigned key ([`Session`]).
//! - `assign [k…]`: `list_committed_offsets {keys}`; each assigned key's position is the one the
//!   client had, else the committed offset, else 0; keys not assigned are dropped. In the final
//!   phase assigns seek to the beginning instead: every position 0, no request.
//! - `poll`: `poll {offsets: positions}`; each key's position moves past the highest offset
//!   returned; then, if anything was returned, `commit_offsets {offsets}` with the highest offset
//!   polled per key. The op is `ok` once both are answered.
//! - `send`: `send {key, msg}` → `send_ok {offset}`.
//!
//! Replies have closed schemas. Any error reply or timeout, and a reply breaking its schema,
//! makes the op `info` (Maelstrom uses no `with-errors` here): the client is replaced.
//!
//! **Final phase** ([`FinalThread`]): each worker, on its own, crashes its client, assigns every
//! key any `ok` op has seen with positions 0, and polls every U[0, 0.4) s until it has polled up
//! to the highest offset seen per key during the main phase; all of this within 10 s.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use serde_json::{json, Map, Value};

use super::{Completion, OpSpec, Reply, SchemaError};
use crate::history::OpType;

/// Keys in the active pool (Elle's default for its exponential key distribution; Maelstrom
/// passes no `--key-count` by default).
pub const KEY_COUNT: usize = 10;
/// Messages per key before it is retired (Maelstrom's `--max-writes-per-key` default).
pub const MAX_WRITES_PER_KEY: u64 = 16;
/// The chance that an op is replaced by an `assign` of its keys (Jepsen's `sub-p`).
pub const ASSIGN_P: f64 = 1.0 / 64.0;
/// The chance that an `assign` also takes the keys with unpolled messages.
pub const UNSEEN_P: f64 = 1.0 / 3.0;
/// Mean seconds between client crashes, times the concurrency (Jepsen's
/// `crash-client-interval`, 30 s, staggered over the workers).
pub const CRASH_INTERVAL_SECS: f64 = 30.0;
/// How long the final polls may go on (Maelstrom clips its final generator to 10 s), in ns.
pub const FINAL_LIMIT_NS: u64 = 10_000_000_000;
/// Mean gap between a worker's final polls (Jepsen's `stagger 1/5`), in ns.
pub const FINAL_POLL_GAP_NS: u64 = 200_000_000;

/// The generator's state.
#[derive(Debug, Default)]
pub struct KafkaGen {
    /// `--key-count` and `--max-writes-per-key` (0: the defaults above).
    key_count: usize,
    max_writes_per_key: u64,
    active: Vec<u64>,
    next_msg: BTreeMap<u64, u64>,
    /// The op an `assign` was emitted in place of: it is the next one.
    pending: Option<(OpSpec, u64)>,
    /// Poll-unseen: per key, the highest offset acknowledged, and polled (`ok` ops).
    sent: BTreeMap<String, i64>,
    polled: BTreeMap<String, i64>,
    /// The highest offset any `ok` op sent or polled, per key: the final polls' targets.
    pub max_offsets: BTreeMap<String, i64>,
}

impl KafkaGen {
    /// A generator for `--key-count` keys in the pool, each retired after `--max-writes-per-key`
    /// messages (as Maelstrom passes both flags to its kafka generator).
    pub fn with_limits(key_count: usize, max_writes_per_key: u64) -> KafkaGen {
        KafkaGen {
            key_count,
            max_writes_per_key,
            ..KafkaGen::default()
        }
    }

    fn max_writes(&self) -> u64 {
        match self.max_writes_per_key {
            0 => MAX_WRITES_PER_KEY,
            n => n,
        }
    }

    /// Key `i` of the pool with probability ∝ 2^i (Elle's exponential key distribution).
    fn rand_key(&mut self, rng: &mut impl Rng) -> usize {
        let base: f64 = 2.0;
        let n = self.active.len() as i32;
        let scale = (base.powi(n) - 1.0) * base / (base - 1.0);
        let u: f64 = rng.random_range(0.0..1.0);
        let ki = ((u * scale + base).ln() / base.ln() - 1.0).floor();
        (ki.max(0.0) as usize).min(self.active.len() - 1)
    }

    /// The next main-phase op (not a crash; see [`crash_gap_ns`]).
    pub fn next_op(&mut self, rng: &mut impl Rng) -> OpSpec {
        if self.active.is_empty() {
            let keys = match self.key_count {
                0 => KEY_COUNT,
                n => n,
            };
            self.active = (0..keys as u64).collect();
        }
        let (op, key) = match self.pending.take() {
            Some(p) => p,
            None => self.draw(rng),
        };
        if rng.random_bool(ASSIGN_P) {
            let mut keys = vec![key.to_string()];
            if !self.sent.is_empty() && rng.random_bool(UNSEEN_P) {
                for k in self.sent.keys() {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
            self.pending = Some((op, key));
            return OpSpec {
                f: "assign",
                value: json!(keys),
            };
        }
        op
    }

    fn draw(&mut self, rng: &mut impl Rng) -> (OpSpec, u64) {
        loop {
            let write = rng.random_bool(0.5);
            let i = self.rand_key(rng);
            let k = self.active[i];
            if !write {
                return (
                    OpSpec {
                        f: "poll",
                        value: json!([["poll"]]),
                    },
                    k,
                );
            }
            let v = self.next_msg.get(&k).copied().unwrap_or(1);
            if v > self.max_writes() {
                let fresh = self.active.iter().max().copied().unwrap_or(0) + 1;
                self.active[i] = fresh;
                self.next_msg.remove(&k);
                continue;
            }
            self.next_msg.insert(k, v + 1);
            return (
                OpSpec {
                    f: "send",
                    value: json!([["send", k.to_string(), v]]),
                },
                k,
            );
        }
    }

    /// Learns from a completion: the offsets `ok` ops sent and polled.
    pub fn observe(&mut self, f: &str, c: &Completion) {
        if c.kind != OpType::Ok || !(f == "send" || f == "poll") {
            return;
        }
        let (sends, polls) = max_offsets(&c.value);
        for (k, o) in &sends {
            bump(&mut self.sent, k, *o);
            bump(&mut self.max_offsets, k, *o);
        }
        for (k, o) in &polls {
            bump(&mut self.polled, k, *o);
            bump(&mut self.max_offsets, k, *o);
        }
        // Keys whose sends have all been polled are caught up.
        let caught: Vec<String> = self
            .sent
            .iter()
            .filter(|(k, s)| self.polled.get(*k).is_some_and(|p| p >= s))
            .map(|(k, _)| k.clone())
            .collect();
        for k in caught {
            self.sent.remove(&k);
            self.polled.remove(&k);
        }
    }
}

fn bump(m: &mut BTreeMap<String, i64>, k: &str, o: i64) {
    let e = m.entry(k.to_string()).or_insert(o);
    *e = (*e).max(o);
}

/// The highest offsets an op's value sent and polled, per key.
pub fn max_offsets(value: &Value) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let (mut sends, mut polls) = (BTreeMap::new(), BTreeMap::new());
    for m in value.as_array().map_or(&[][..], Vec::as_slice) {
        match m.get(0).and_then(Value::as_str) {
            Some("send") => {
                if let (Some(k), Some(o)) = (
                    m.get(1).and_then(Value::as_str),
                    m.get(2).and_then(|p| p.get(0)).and_then(Value::as_i64),
                ) {
                    bump(&mut sends, k, o);
                }
            }
            Some("poll") => {
                if let Some(keys) = m.get(1).and_then(Value::as_object) {
                    for (k, pairs) in keys {
                        for p in pairs.as_array().map_or(&[][..], Vec::as_slice) {
                            if let Some(o) = p.get(0).and_then(Value::as_i64) {
                                bump(&mut polls, k, o);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (sends, polls)
}

/// The gap before the next client crash, in ns: U[0, 2 × 30 s / concurrency).
pub fn crash_gap_ns(rng: &mut impl Rng, concurrency: usize) -> u64 {
    let mean = CRASH_INTERVAL_SECS / concurrency.max(1) as f64;
    (rng.random_range(0.0..2.0 * mean) * 1e9) as u64
}

/// A client's positions: per assigned key, the next offset to poll.
#[derive(Debug, Default, Clone)]
pub struct Session {
    positions: BTreeMap<String, i64>,
}

/// Where an op is.
#[derive(Debug, Clone)]
pub enum Stage {
    Send,
    Poll,
    /// `commit_offsets` after a poll that returned this value.
    Commit(Value),
    ListCommitted,
}

/// What the client does next.
#[derive(Debug)]
pub enum Next {
    Call(Stage, Value),
    Done(Completion),
}

fn ok(value: Value) -> Completion {
    Completion {
        kind: OpType::Ok,
        value,
        error: None,
        exception: None,
    }
}

/// Starts an op: its first request, or its completion if it needs none.
pub fn begin(op: &OpSpec, final_: bool, s: &mut Session) -> Next {
    match op.f {
        "crash" => Next::Done(Completion {
            kind: OpType::Info,
            value: op.value.clone(),
            error: None,
            exception: None,
        }),
        "assign" => {
            let keys = assigned_keys(op);
            if final_ {
                s.positions = keys.into_iter().map(|k| (k, 0)).collect();
                return Next::Done(ok(op.value.clone()));
            }
            Next::Call(
                Stage::ListCommitted,
                json!({"type": "list_committed_offsets", "keys": keys}),
            )
        }
        "send" => {
            let (key, msg) = send_key_msg(op);
            Next::Call(Stage::Send, json!({"type": "send", "key": key, "msg": msg}))
        }
        _ => Next::Call(Stage::Poll, json!({"type": "poll", "offsets": s.positions})),
    }
}

/// An `assign` op's keys (its value is the list of key strings).
fn assigned_keys(op: &OpSpec) -> Vec<String> {
    op.value
        .as_array()
        .map(|ks| {
            ks.iter()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A `send` op's key and message (its value is `[["send", key, msg]]`).
fn send_key_msg(op: &OpSpec) -> (Value, Value) {
    let m = op.value.get(0);
    let part = |i| m.and_then(|m| m.get(i)).cloned().unwrap_or(Value::Null);
    (part(1), part(2))
}

/// Takes a reply body that passed its schema and moves the op on.
pub fn advance(op: &OpSpec, stage: Stage, body: &Map<String, Value>, s: &mut Session) -> Next {
    match stage {
        Stage::Send => {
            let (key, msg) = send_key_msg(op);
            let offset = body.get("offset").cloned().unwrap_or(Value::Null);
            Next::Done(ok(json!([["send", key, [offset, msg]]])))
        }
        Stage::ListCommitted => {
            let committed = body.get("offsets").and_then(Value::as_object);
            let keys = assigned_keys(op);
            let old = std::mem::take(&mut s.positions);
            s.positions = keys
                .into_iter()
                .map(|k| {
                    let p = old
                        .get(&k)
                        .copied()
                        .or_else(|| committed.and_then(|c| c.get(&k)).and_then(Value::as_i64))
                        .unwrap_or(0);
                    (k, p)
                })
                .collect();
            Next::Done(ok(op.value.clone()))
        }
        Stage::Poll => {
            let msgs = body.get("msgs").cloned().unwrap_or_else(|| json!({}));
            let mut commit = Map::new();
            for (k, pairs) in msgs.as_object().into_iter().flatten() {
                let highest = pairs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get(0).and_then(Value::as_i64))
                    .max();
                let next = highest.map_or(0, |h| h.saturating_add(1));
                let e = s.positions.entry(k.clone()).or_insert(next);
                *e = (*e).max(next);
                if let Some(h) = highest {
                    commit.insert(k.clone(), json!(h));
                }
            }
            let value = json!([["poll", msgs]]);
            if commit.is_empty() {
                Next::Done(ok(value))
            } else {
                Next::Call(
                    Stage::Commit(value),
                    json!({"type": "commit_offsets", "offsets": commit}),
                )
            }
        }
        Stage::Commit(value) => Next::Done(ok(value)),
    }
}

/// Checks a reply against the closed schema of `stage`'s response (beyond the envelope fields,
/// which the caller checks).
pub fn check_fields(stage: &Stage, body: &Map<String, Value>) -> Result<(), SchemaError> {
    let (want, fields): (&str, &[&str]) = match stage {
        Stage::Send => ("send_ok", &["offset"]),
        Stage::Poll => ("poll_ok", &["msgs"]),
        Stage::Commit(_) => ("commit_offsets_ok", &[]),
        Stage::ListCommitted => ("list_committed_offsets_ok", &["offsets"]),
    };
    super::check_envelope(body, want, fields)?;
    let bad = |what: String| Err(SchemaError(what));
    match stage {
        Stage::Send => {
            if !body.get("offset").is_some_and(is_int) {
                return bad(format!("offset must be an integer, got {}", body["offset"]));
            }
        }
        Stage::ListCommitted => {
            let Some(offsets) = body.get("offsets").and_then(Value::as_object) else {
                return bad("offsets must be a map of keys to offsets".into());
            };
            if let Some((k, v)) = offsets.iter().find(|(_, v)| !is_int(v)) {
                return bad(format!("offset of key {k:?} must be an integer, got {v}"));
            }
        }
        Stage::Poll => {
            let Some(msgs) = body.get("msgs").and_then(Value::as_object) else {
                return bad("msgs must be a map of keys to [offset, msg] pairs".into());
            };
            for (k, pairs) in msgs {
                let Some(pairs) = pairs.as_array() else {
                    return bad(format!("msgs of key {k:?} must be an array, got {pairs}"));
                };
                for p in pairs {
                    let good = p.as_array().is_some_and(|p| p.len() == 2 && is_int(&p[0]));
                    if !good {
                        return bad(format!(
                            "msgs of key {k:?}: {p} is not an [offset, msg] pair"
                        ));
                    }
                }
            }
        }
        Stage::Commit(_) => {}
    }
    Ok(())
}

fn is_int(v: &Value) -> bool {
    v.is_i64() || v.is_u64()
}

/// Turns a reply into the next step, with the workload's error rules.
pub fn step(op: &OpSpec, stage: Stage, reply: &Reply, s: &mut Session) -> Next {
    let body = match reply {
        Reply::Body(b) if b.get("type").and_then(Value::as_str) != Some("error") => b,
        _ => return Next::Done(super::indeterminate(op, reply)),
    };
    if let Err(e) = check_fields(&stage, body) {
        return Next::Done(Completion {
            kind: OpType::Info,
            value: op.value.clone(),
            error: None,
            exception: Some(e.to_string()),
        });
    }
    advance(op, stage, body, s)
}

/// One worker's final phase: crash, assign every key from offset 0, then poll until caught up
/// with `targets` or out of time.
#[derive(Debug)]
pub struct FinalThread {
    targets: BTreeMap<String, i64>,
    stage: u8,
    /// When the final phase began (ns).
    start: u64,
}

impl FinalThread {
    pub fn new(targets: BTreeMap<String, i64>, start: u64) -> FinalThread {
        FinalThread {
            targets,
            stage: 0,
            start,
        }
    }

    /// The next op and how long to wait before invoking it (ns), or `None`: done.
    pub fn next(&mut self, now: u64, rng: &mut impl Rng) -> Option<(u64, OpSpec)> {
        if self.targets.is_empty() || now >= self.start + FINAL_LIMIT_NS {
            return None;
        }
        let out = match self.stage {
            0 => (
                0,
                OpSpec {
                    f: "crash",
                    value: Value::Null,
                },
            ),
            1 => {
                let keys: BTreeSet<&String> = self.targets.keys().collect();
                (
                    0,
                    OpSpec {
                        f: "assign",
                        value: json!(keys),
                    },
                )
            }
            _ => {
                let gap = (rng.random_range(0.0..2.0 * FINAL_POLL_GAP_NS as f64)) as u64;
                (
                    gap,
                    OpSpec {
                        f: "poll",
                        value: json!([["poll"]]),
                    },
                )
            }
        };
        self.stage = self.stage.saturating_add(1).min(2);
        Some(out)
    }

    /// Whether an op due at `now` may still be invoked.
    pub fn open(&self, now: u64) -> bool {
        now < self.start + FINAL_LIMIT_NS
    }

    /// Learns from one of this worker's completions: keys polled up to their target are done.
    pub fn observe(&mut self, f: &str, c: &Completion) {
        if c.kind != OpType::Ok || f != "poll" {
            return;
        }
        let (_, polls) = max_offsets(&c.value);
        self.targets
            .retain(|k, t| polls.get(k).map_or(true, |seen| seen < t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn op(f: &'static str, value: Value) -> OpSpec {
        OpSpec { f, value }
    }

    /// A reply body with its `in_reply_to`, or a timeout for anything but an object.
    fn reply(v: Value) -> Reply {
        match v {
            Value::Object(mut m) => {
                m.insert("in_reply_to".into(), json!(1));
                Reply::Body(m)
            }
            _ => Reply::Timeout,
        }
    }

    #[test]
    fn the_generator_sends_each_keys_messages_in_order_and_retires_full_keys() {
        let seed = 7;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut g = KafkaGen::default();
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        let (mut sends, mut polls, mut assigns) = (0, 0, 0);
        for _ in 0..5000 {
            let o = g.next_op(&mut rng);
            match o.f {
                "send" => {
                    sends += 1;
                    let k = o.value[0][1].as_str().expect("string key").to_string();
                    let m = o.value[0][2].as_i64().expect("integer message");
                    let prev = last.insert(k.clone(), m).unwrap_or(0);
                    assert_eq!(m, prev + 1, "seed {seed}: key {k}");
                    assert!(m as u64 <= MAX_WRITES_PER_KEY, "seed {seed}");
                }
                "poll" => polls += 1,
                "assign" => {
                    assigns += 1;
                    assert!(o.value.as_array().is_some_and(|ks| !ks.is_empty()));
                }
                f => panic!("seed {seed}: unexpected op {f}"),
            }
        }
        assert!(
            sends > 2000 && polls > 2000,
            "seed {seed}: {sends} sends, {polls} polls"
        );
        assert!(
            (20..200).contains(&assigns),
            "seed {seed}: {assigns} assigns"
        );
        assert!(
            last.len() > KEY_COUNT,
            "seed {seed}: keys retire and fresh ones come"
        );
    }

    #[test]
    fn key_count_and_max_writes_per_key_shape_the_pool() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut g = KafkaGen::with_limits(3, 2);
        let mut keys = std::collections::BTreeSet::new();
        let mut per_key: BTreeMap<String, i64> = BTreeMap::new();
        for _ in 0..2000 {
            let o = g.next_op(&mut rng);
            if o.f == "send" {
                let k = o.value[0][1].as_str().unwrap().to_string();
                let m = o.value[0][2].as_i64().unwrap();
                assert!(
                    m <= 2,
                    "key {k} got message {m} past --max-writes-per-key 2"
                );
                per_key.insert(k.clone(), m);
                keys.insert(k.parse::<u64>().unwrap());
            }
            assert!(g.active.len() == 3, "pool of {}", g.active.len());
        }
        // Keys retire after two messages each, so the run goes through many fresh keys.
        assert!(keys.len() > 100, "{} keys", keys.len());
    }

    #[test]
    fn assign_then_poll_then_commit_as_maelstrom_s_client_does() {
        let mut s = Session::default();
        let a = op("assign", json!(["1", "2"]));
        let Next::Call(stage, body) = begin(&a, false, &mut s) else {
            panic!("assign asks for committed offsets")
        };
        assert_eq!(
            body,
            json!({"type": "list_committed_offsets", "keys": ["1", "2"]})
        );
        let r = reply(json!({"type": "list_committed_offsets_ok", "offsets": {"1": 4}}));
        assert!(matches!(step(&a, stage, &r, &mut s), Next::Done(c) if c.kind == OpType::Ok));
        assert_eq!(s.positions, [("1".into(), 4), ("2".into(), 0)].into());

        let p = op("poll", json!([["poll"]]));
        let Next::Call(stage, body) = begin(&p, false, &mut s) else {
            panic!("poll asks")
        };
        assert_eq!(body, json!({"type": "poll", "offsets": {"1": 4, "2": 0}}));
        let r = reply(json!({"type": "poll_ok", "msgs": {"1": [[4, 9], [6, 10]], "2": []}}));
        let Next::Call(stage, body) = step(&p, stage, &r, &mut s) else {
            panic!("a poll that returned messages commits them")
        };
        assert_eq!(body, json!({"type": "commit_offsets", "offsets": {"1": 6}}));
        assert_eq!(s.positions, [("1".into(), 7), ("2".into(), 0)].into());
        let r = reply(json!({"type": "commit_offsets_ok"}));
        let Next::Done(c) = step(&p, stage, &r, &mut s) else {
            panic!("done")
        };
        assert_eq!(c.kind, OpType::Ok);
        assert_eq!(
            c.value,
            json!([["poll", {"1": [[4, 9], [6, 10]], "2": []}]])
        );

        // A later assign keeps the positions the client has.
        let Next::Call(stage, _) = begin(&a, false, &mut s) else {
            panic!("assign asks")
        };
        let r = reply(json!({"type": "list_committed_offsets_ok", "offsets": {"1": 0}}));
        let _ = step(&a, stage, &r, &mut s);
        assert_eq!(s.positions["1"], 7);
        // The final phase's assign seeks to the beginning, with no request.
        assert!(matches!(begin(&a, true, &mut s), Next::Done(_)));
        assert_eq!(s.positions, [("1".into(), 0), ("2".into(), 0)].into());
    }

    #[test]
    fn sends_complete_with_their_offset_and_bad_replies_are_info() {
        let mut s = Session::default();
        let o = op("send", json!([["send", "3", 5]]));
        let Next::Call(stage, body) = begin(&o, false, &mut s) else {
            panic!("send asks")
        };
        assert_eq!(body, json!({"type": "send", "key": "3", "msg": 5}));
        let r = reply(json!({"type": "send_ok", "offset": 12}));
        let Next::Done(c) = step(&o, stage.clone(), &r, &mut s) else {
            panic!("done")
        };
        assert_eq!(
            (c.kind, c.value),
            (OpType::Ok, json!([["send", "3", [12, 5]]]))
        );
        for bad in [
            json!({"type": "send_ok"}),
            json!({"type": "send_ok", "offset": "12"}),
            json!({"type": "send_ok", "offset": 1, "extra": 2}),
            json!({"type": "poll_ok", "msgs": {}}),
            json!({"type": "error", "code": 11}),
            json!(null),
        ] {
            let Next::Done(c) = step(&o, stage.clone(), &reply(bad.clone()), &mut s) else {
                panic!("done")
            };
            assert_eq!(c.kind, OpType::Info, "{bad}");
        }
        let p = op("poll", json!([["poll"]]));
        for bad in [
            json!({"type": "poll_ok", "msgs": {"1": [[1]]}}),
            json!({"type": "poll_ok", "msgs": {"1": 3}}),
            json!({"type": "poll_ok", "msgs": []}),
        ] {
            let Next::Done(c) = step(&p, Stage::Poll, &reply(bad.clone()), &mut s) else {
                panic!("done")
            };
            assert_eq!(c.kind, OpType::Info, "{bad}");
        }
    }

    #[test]
    fn final_threads_crash_assign_and_poll_until_caught_up_or_out_of_time() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let targets: BTreeMap<String, i64> = [("1".into(), 3), ("2".into(), 0)].into();
        let mut t = FinalThread::new(targets.clone(), 0);
        assert_eq!(t.next(0, &mut rng).map(|(_, o)| o.f), Some("crash"));
        let (_, a) = t.next(0, &mut rng).expect("assign");
        assert_eq!((a.f, a.value), ("assign", json!(["1", "2"])));
        let (gap, p) = t.next(0, &mut rng).expect("poll");
        assert!(p.f == "poll" && gap < 2 * FINAL_POLL_GAP_NS);
        let polled = |v: Value| Completion {
            kind: OpType::Ok,
            value: json!([["poll", v]]),
            error: None,
            exception: None,
        };
        t.observe(
            "poll",
            &polled(json!({"1": [[0, 1], [1, 2]], "2": [[0, 1]]})),
        );
        assert!(t.next(1, &mut rng).is_some(), "key 1 is not caught up");
        t.observe("poll", &polled(json!({"1": [[3, 4]]})));
        assert!(t.next(2, &mut rng).is_none(), "caught up");
        let mut t = FinalThread::new(targets, 0);
        assert!(t.next(FINAL_LIMIT_NS, &mut rng).is_none(), "out of time");
        assert!(!t.open(FINAL_LIMIT_NS));
    }
}

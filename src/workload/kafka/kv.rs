//! The lin-kv design: stateless nodes over Maelstrom's `lin-kv` service (see the module docs of
//! [`crate::workload::kafka`]).
//!
//! Key `k`'s log is the value of [`LOG_PREFIX`]`k` in `lin-kv`: the array of its messages, the
//! message at offset `i` at index `i`. Its committed offset is the value of [`COMMIT_PREFIX`]`k`.
//! - **send**: read the log (missing: empty), then `cas` it from what was read to that plus the
//!   message (creating it if missing). The `cas` succeeding is what allocates the offset, the
//!   length read: `lin-kv` is linearizable, so no two sends get the same one, and a message once
//!   in a log stays at its offset. A failed `cas` (another send got in first) reads again, up to
//!   [`MAX_ATTEMPTS`] times; then the send is refused with error 11 (nothing was written:
//!   definite).
//! - **poll**: read each requested key's log (in parallel) and return it from the requested
//!   offset. Linearizable reads return every message acknowledged before the poll began.
//! - **commit_offsets**: raise each key's committed offset by read-then-`cas` (never lowering
//!   it), in parallel; **list_committed_offsets** reads them.
//!
//! Costs: a send is at least 4 messages to and from the service and 2 round trips; a poll 2 per
//! key. Each read returns the whole log, which suits Maelstrom's short logs (16 messages per key by
//! default) and would not suit long ones.

use super::Msg;
use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::rpc::Calls;
use crate::wire::{ErrorBody, ErrorCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// The service holding the logs.
pub const SERVICE: &str = "lin-kv";
/// A key's log lives at this prefix followed by the key.
pub const LOG_PREFIX: &str = "log-";
/// A key's committed offset lives at this prefix followed by the key.
pub const COMMIT_PREFIX: &str = "commit-";
/// Read-cas rounds a send or a commit may take before it is refused (error 11).
pub const MAX_ATTEMPTS: u32 = 100;
/// How long a call to the service is remembered. The service answers every request, so this
/// only bounds memory if a reply never comes (the node was paused); the client gave up by then.
pub const CALL_TIMEOUT_MS: Millis = 10_000;

/// A client request in progress.
#[derive(Debug)]
struct Job {
    client: String,
    msg_id: Option<u64>,
    kind: JobKind,
    /// Service calls still outstanding.
    left: usize,
}

#[derive(Debug)]
enum JobKind {
    Send {
        key: String,
        msg: Value,
        attempt: u32,
    },
    Poll {
        offsets: BTreeMap<String, u64>,
        msgs: BTreeMap<String, Vec<(u64, Value)>>,
    },
    Commit {
        offsets: BTreeMap<String, u64>,
    },
    List {
        offsets: BTreeMap<String, u64>,
    },
}

/// What an outstanding service call is for.
#[derive(Debug, Clone)]
enum Call {
    /// A send's read of the log, or its cas from `from`.
    SendRead,
    SendCas {
        len: usize,
    },
    /// A poll's read of `key`'s log.
    PollRead {
        key: String,
    },
    /// A commit's read of `key`'s committed offset, or its cas.
    CommitRead {
        key: String,
        attempt: u32,
    },
    CommitCas {
        key: String,
        attempt: u32,
    },
    /// A list's read of `key`'s committed offset.
    ListRead {
        key: String,
    },
}

/// The lin-kv design's node (module docs).
#[derive(Debug, Default)]
pub struct Kv {
    jobs: HashMap<u64, Job>,
    next_job: u64,
    calls: Calls<(u64, Call)>,
}

fn error(code: ErrorCode, text: &str) -> Msg {
    Msg::Error(ErrorBody::new(code, text))
}

impl Kv {
    fn call(&mut self, job: u64, call: Call, msg: Msg, now: Millis, ctx: &mut Ctx<Msg>) {
        let id = ctx.send(SERVICE, msg);
        self.calls.register(id, now + CALL_TIMEOUT_MS, (job, call));
    }

    fn read(&mut self, job: u64, call: Call, key: String, now: Millis, ctx: &mut Ctx<Msg>) {
        self.call(job, call, Msg::Read { key }, now, ctx);
    }

    /// Ends job `id` with `reply`.
    fn finish(&mut self, id: u64, reply: Msg, ctx: &mut Ctx<Msg>) {
        if let Some(job) = self.jobs.remove(&id) {
            ctx.reply(&job.client, job.msg_id, reply);
        }
    }

    fn on_reply(&mut self, id: u64, call: Call, reply: Msg, now: Millis, ctx: &mut Ctx<Msg>) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.left = job.left.saturating_sub(1);
        let missing =
            matches!(&reply, Msg::Error(e) if e.code == ErrorCode::KeyDoesNotExist as u32);
        match (call, &mut job.kind) {
            (Call::SendRead, JobKind::Send { key, msg, .. }) => {
                let log = match reply {
                    Msg::ReadOk {
                        value: Value::Array(log),
                    } => log,
                    _ if missing => Vec::new(),
                    _ => {
                        return self.finish(id, error(ErrorCode::Crash, "lin-kv holds no log"), ctx)
                    }
                };
                let mut to = log.clone();
                to.push(msg.clone());
                let cas = Msg::Cas {
                    key: format!("{LOG_PREFIX}{key}"),
                    from: Value::Array(log.clone()),
                    to: Value::Array(to),
                    create_if_not_exists: log.is_empty(),
                };
                job.left += 1;
                self.call(id, Call::SendCas { len: log.len() }, cas, now, ctx);
            }
            (Call::SendCas { len }, JobKind::Send { key, attempt, .. }) => match reply {
                Msg::CasOk => self.finish(id, Msg::SendOk { offset: len as u64 }, ctx),
                _ if *attempt + 1 < MAX_ATTEMPTS => {
                    *attempt += 1;
                    job.left += 1;
                    let key = format!("{LOG_PREFIX}{key}");
                    self.read(id, Call::SendRead, key, now, ctx);
                }
                _ => self.finish(
                    id,
                    error(
                        ErrorCode::TemporarilyUnavailable,
                        "every append lost its cas; nothing was sent",
                    ),
                    ctx,
                ),
            },
            (Call::PollRead { key }, JobKind::Poll { offsets, msgs }) => {
                if let Msg::ReadOk {
                    value: Value::Array(log),
                } = reply
                {
                    let from = offsets.get(&key).copied().unwrap_or(0);
                    let from = usize::try_from(from).unwrap_or(usize::MAX);
                    if from < log.len() {
                        let pairs = log
                            .into_iter()
                            .enumerate()
                            .skip(from)
                            .map(|(o, m)| (o as u64, m))
                            .collect();
                        msgs.insert(key, pairs);
                    }
                } else if !missing {
                    return self.finish(id, error(ErrorCode::Crash, "lin-kv holds no log"), ctx);
                }
                if job.left == 0 {
                    let msgs = std::mem::take(msgs);
                    self.finish(id, Msg::PollOk { msgs }, ctx);
                }
            }
            (Call::CommitRead { key, attempt }, JobKind::Commit { offsets }) => {
                let want = offsets.get(&key).copied().unwrap_or(0);
                let current = match &reply {
                    Msg::ReadOk { value } => value.as_u64(),
                    _ => None,
                };
                if current.is_some_and(|c| c >= want) {
                    // Already at or past it: nothing to raise.
                    if job.left == 0 {
                        self.finish(id, Msg::CommitOffsetsOk, ctx);
                    }
                    return;
                }
                let cas = Msg::Cas {
                    key: format!("{COMMIT_PREFIX}{key}"),
                    from: current.map_or(Value::Null, |c| json!(c)),
                    to: json!(want),
                    create_if_not_exists: current.is_none(),
                };
                job.left += 1;
                self.call(id, Call::CommitCas { key, attempt }, cas, now, ctx);
            }
            (Call::CommitCas { key, attempt }, JobKind::Commit { .. }) => match reply {
                Msg::CasOk => {
                    if job.left == 0 {
                        self.finish(id, Msg::CommitOffsetsOk, ctx);
                    }
                }
                _ if attempt + 1 < MAX_ATTEMPTS => {
                    job.left += 1;
                    let call = Call::CommitRead {
                        key: key.clone(),
                        attempt: attempt + 1,
                    };
                    self.read(id, call, format!("{COMMIT_PREFIX}{key}"), now, ctx);
                }
                _ => self.finish(
                    id,
                    error(
                        ErrorCode::TemporarilyUnavailable,
                        "a commit kept losing its cas",
                    ),
                    ctx,
                ),
            },
            (Call::ListRead { key }, JobKind::List { offsets }) => {
                if let Msg::ReadOk { value } = reply {
                    if let Some(o) = value.as_u64() {
                        offsets.insert(key, o);
                    }
                }
                if job.left == 0 {
                    let offsets = std::mem::take(offsets);
                    self.finish(id, Msg::ListCommittedOffsetsOk { offsets }, ctx);
                }
            }
            _ => {}
        }
    }

    /// Starts a client request.
    fn start(
        &mut self,
        client: String,
        msg_id: Option<u64>,
        payload: Msg,
        now: Millis,
        ctx: &mut Ctx<Msg>,
    ) {
        let id = self.next_job;
        self.next_job += 1;
        let (kind, reads): (JobKind, Vec<(Call, String)>) = match payload {
            Msg::Send { key, msg } => {
                let log = format!("{LOG_PREFIX}{key}");
                (
                    JobKind::Send {
                        key,
                        msg,
                        attempt: 0,
                    },
                    vec![(Call::SendRead, log)],
                )
            }
            Msg::Poll { offsets } => {
                let reads = offsets
                    .keys()
                    .map(|k| {
                        (
                            Call::PollRead { key: k.clone() },
                            format!("{LOG_PREFIX}{k}"),
                        )
                    })
                    .collect();
                (
                    JobKind::Poll {
                        offsets,
                        msgs: BTreeMap::new(),
                    },
                    reads,
                )
            }
            Msg::CommitOffsets { offsets } => {
                let reads = offsets
                    .keys()
                    .map(|k| {
                        let call = Call::CommitRead {
                            key: k.clone(),
                            attempt: 0,
                        };
                        (call, format!("{COMMIT_PREFIX}{k}"))
                    })
                    .collect();
                (JobKind::Commit { offsets }, reads)
            }
            Msg::ListCommittedOffsets { keys } => {
                let mut keys = keys;
                keys.sort();
                keys.dedup();
                let reads = keys
                    .into_iter()
                    .map(|k| {
                        let store = format!("{COMMIT_PREFIX}{k}");
                        (Call::ListRead { key: k }, store)
                    })
                    .collect();
                (
                    JobKind::List {
                        offsets: BTreeMap::new(),
                    },
                    reads,
                )
            }
            _ => {
                if msg_id.is_some() {
                    ctx.reply_error(
                        &client,
                        msg_id,
                        ErrorCode::NotSupported,
                        "not a kafka request",
                    );
                }
                return;
            }
        };
        if reads.is_empty() {
            // Nothing to ask the service: answer at once.
            let reply = match kind {
                JobKind::Poll { .. } => Msg::PollOk {
                    msgs: BTreeMap::new(),
                },
                JobKind::Commit { .. } => Msg::CommitOffsetsOk,
                _ => Msg::ListCommittedOffsetsOk {
                    offsets: BTreeMap::new(),
                },
            };
            return ctx.reply(&client, msg_id, reply);
        }
        self.jobs.insert(
            id,
            Job {
                client,
                msg_id,
                kind,
                left: reads.len(),
            },
        );
        for (call, key) in reads {
            self.read(id, call, key, now, ctx);
        }
    }
}

impl Workload for Kv {
    type Msg = Msg;
    type Config = ();

    fn init(_: &InitInfo, _: &(), _: Millis) -> Self {
        Kv::default()
    }

    fn handle(&mut self, msg: Message<Msg>, now: Millis, ctx: &mut Ctx<Msg>) {
        // Calls whose reply never came: their jobs are abandoned (the client has timed out).
        for (_, (job, _)) in self.calls.expire(now) {
            self.jobs.remove(&job);
        }
        if let Some(irt) = msg.body.in_reply_to {
            if msg.src != SERVICE {
                return;
            }
            if let Some((job, call)) = self.calls.resolve(irt) {
                self.on_reply(job, call, msg.body.payload, now, ctx);
            }
            return;
        }
        self.start(msg.src, msg.body.msg_id, msg.body.payload, now, ctx);
    }
}

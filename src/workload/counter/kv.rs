//! The seq-kv design: a stateless counter node keeping the count in Maelstrom's `seq-kv` service
//! (the design the Gossip Glomers challenge 4 intends).
//!
//! The count is one key, [`KEY`]. Nodes never talk to each other; every client request becomes a
//! short conversation with `seq-kv`:
//! - **add**: read the key (missing means 0), then `cas` it from what was read to that plus the
//!   delta (creating it if missing). A failed `cas` (code 22: another node's add got in first, or
//!   the read was stale) reads again and retries, so each add is counted exactly once. After
//!   [`MAX_ATTEMPTS`] failed rounds the add is refused with error 11: nothing was written, so the
//!   failure is definite. An add of 0 changes nothing and is answered at once.
//! - **read**: first write a value no one wrote before to a key of this node's own
//!   ([`SYNC_KEY_PREFIX`] + node id, value = this incarnation's boot time and a counter), then read
//!   the count. Why: `seq-kv` is sequentially consistent, not linearizable. It may answer a node
//!   from any state no older than the last one that node saw, so a plain read can stay stale for
//!   ever (Maelstrom's [services](https://github.com/jepsen-io/maelstrom/blob/main/doc/services.md)
//!   doc). A write that changes the store moves the node to the newest state, and its later
//!   requests are served from that state or newer, so the read sees every add whose `cas` came
//!   before the write, which includes every add acknowledged before the read arrived. The value
//!   must be new: rewriting a value already there leaves the store unchanged, and then the node
//!   is not moved (a restarted node counting from 1 again would hit that; the boot time keeps
//!   incarnations apart).
//!
//! Costs: an add is 4 messages to and from `seq-kv` at best (plus 2 per retry), a read 4, and
//! every request waits for 2 round trips to the service. There is no state to lose, so kills need
//! no care; partitions do not matter because Maelstrom never partitions its services. `seq-kv`
//! is also a single point that every op goes through, which is what the CRDT design avoids.

use super::Kind;
use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::rpc::Calls;
use crate::wire::{ErrorBody, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The service holding the count.
pub const SERVICE: &str = "seq-kv";
/// The key holding the count.
pub const KEY: &str = "counter";
/// Each node's freshness writes go to this prefix followed by its id.
pub const SYNC_KEY_PREFIX: &str = "sync-";
/// Read-cas rounds an add may take before it is refused (error 11).
pub const MAX_ATTEMPTS: u32 = 100;
/// How long a request to the service is waited for. The service answers every request it gets,
/// so this only bounds memory when a reply never comes (the node was paused past its client's
/// 5 s timeout, say); the client has given up by then.
pub const CALL_TIMEOUT_MS: Millis = 10_000;

/// Client requests and the `seq-kv` conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    Add {
        delta: i64,
    },
    AddOk,
    /// A client's read has no key; ours, to the service, has one.
    Read {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// The count to a client; whatever the key holds from the service.
    ReadOk {
        value: Value,
    },
    Write {
        key: String,
        value: Value,
    },
    WriteOk,
    Cas {
        key: String,
        from: i64,
        to: i64,
        create_if_not_exists: bool,
    },
    CasOk,
    Error(ErrorBody),
}

impl From<ErrorBody> for Msg {
    fn from(e: ErrorBody) -> Self {
        Msg::Error(e)
    }
}

/// The seq-kv design's knobs: only which counter it is.
#[derive(Debug, Clone, PartialEq)]
pub struct KvConfig {
    pub kind: Kind,
}

/// Where a client request stands: what the outstanding service call is for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// An add's read of the count.
    AddRead { delta: i64, attempt: u32 },
    /// An add's cas from `from`.
    AddCas { delta: i64, attempt: u32 },
    /// A read's freshness write.
    ReadSync,
    /// A read's read of the count.
    ReadValue,
}

#[derive(Debug)]
struct Job {
    client: String,
    msg_id: Option<u64>,
    step: Step,
}

/// The stateless counter over `seq-kv` (module docs).
#[derive(Debug)]
pub struct KvCounter {
    kind: Kind,
    /// This incarnation's boot time, part of every freshness write's value.
    boot: u64,
    syncs: u64,
    calls: Calls<Job>,
}

impl KvCounter {
    fn call(&mut self, msg: Msg, job: Job, now: Millis, ctx: &mut Ctx<Msg>) {
        let id = ctx.send(SERVICE, msg);
        self.calls.register(id, now + CALL_TIMEOUT_MS, job);
    }

    fn read_count(&mut self, job: Job, now: Millis, ctx: &mut Ctx<Msg>) {
        let key = Some(KEY.to_string());
        self.call(Msg::Read { key }, job, now, ctx);
    }

    /// A reply from the service to `job`'s call.
    fn on_reply(&mut self, job: Job, reply: Msg, now: Millis, ctx: &mut Ctx<Msg>) {
        let answer = |ctx: &mut Ctx<Msg>, payload| ctx.reply(&job.client, job.msg_id, payload);
        match (job.step, reply) {
            (Step::AddRead { delta, attempt }, reply) => {
                let from = match reply {
                    Msg::ReadOk { value } => value.as_i64(),
                    Msg::Error(e) if e.code == ErrorCode::KeyDoesNotExist as u32 => Some(0),
                    _ => None,
                };
                let Some(from) = from else {
                    return answer(
                        ctx,
                        error(ErrorCode::Crash, "seq-kv holds no integer count"),
                    );
                };
                let Some(to) = from.checked_add(delta) else {
                    return answer(ctx, error(ErrorCode::Abort, "the count would overflow"));
                };
                let cas = Msg::Cas {
                    key: KEY.into(),
                    from,
                    to,
                    create_if_not_exists: true,
                };
                let step = Step::AddCas { delta, attempt };
                self.call(cas, Job { step, ..job }, now, ctx);
            }
            (Step::AddCas { .. }, Msg::CasOk) => answer(ctx, Msg::AddOk),
            (Step::AddCas { delta, attempt }, _) if attempt + 1 < MAX_ATTEMPTS => {
                let step = Step::AddRead {
                    delta,
                    attempt: attempt + 1,
                };
                self.read_count(Job { step, ..job }, now, ctx);
            }
            (Step::AddCas { .. }, _) => answer(
                ctx,
                error(
                    ErrorCode::TemporarilyUnavailable,
                    "every cas of the count failed; nothing was added",
                ),
            ),
            (Step::ReadSync, Msg::WriteOk) => {
                self.read_count(
                    Job {
                        step: Step::ReadValue,
                        ..job
                    },
                    now,
                    ctx,
                );
            }
            (Step::ReadSync, _) => answer(
                ctx,
                error(ErrorCode::TemporarilyUnavailable, "seq-kv refused a write"),
            ),
            (Step::ReadValue, Msg::ReadOk { value }) if value.is_i64() => {
                answer(ctx, Msg::ReadOk { value })
            }
            (Step::ReadValue, Msg::Error(e)) if e.code == ErrorCode::KeyDoesNotExist as u32 => {
                answer(ctx, Msg::ReadOk { value: 0.into() })
            }
            (Step::ReadValue, _) => answer(
                ctx,
                error(ErrorCode::Crash, "seq-kv holds no integer count"),
            ),
        }
    }
}

fn error(code: ErrorCode, text: &str) -> Msg {
    Msg::Error(ErrorBody::new(code, text))
}

impl Workload for KvCounter {
    type Msg = Msg;
    type Config = KvConfig;

    fn init(info: &InitInfo, cfg: &KvConfig, now: Millis) -> Self {
        KvCounter {
            kind: cfg.kind,
            // Distinct per incarnation even if two start in the same microsecond of a seeded clock.
            boot: info.boot_unix_micros.wrapping_add(now),
            syncs: 0,
            calls: Calls::default(),
        }
    }

    fn handle(&mut self, msg: Message<Msg>, now: Millis, ctx: &mut Ctx<Msg>) {
        // Calls whose reply never came (see CALL_TIMEOUT_MS); no timer needed for that.
        self.calls.expire(now);
        if let Some(irt) = msg.body.in_reply_to {
            if msg.src != SERVICE {
                return;
            }
            match self.calls.resolve(irt) {
                Some(job) => self.on_reply(job, msg.body.payload, now, ctx),
                None => tracing::debug!(irt, "reply to no outstanding call"),
            }
            return;
        }
        let (src, msg_id) = (msg.src, msg.body.msg_id);
        let job = |step| Job {
            client: src.clone(),
            msg_id,
            step,
        };
        match msg.body.payload {
            Msg::Add { delta } if delta < 0 && self.kind == Kind::GCounter => ctx.reply_error(
                &src,
                msg_id,
                ErrorCode::MalformedRequest,
                "a g-counter only grows: delta must not be negative",
            ),
            Msg::Add { delta: 0 } => ctx.reply(&src, msg_id, Msg::AddOk),
            Msg::Add { delta } => {
                self.read_count(job(Step::AddRead { delta, attempt: 0 }), now, ctx);
            }
            Msg::Read { .. } => {
                self.syncs += 1;
                let write = Msg::Write {
                    key: format!("{SYNC_KEY_PREFIX}{}", ctx.me()),
                    value: format!("{}-{}", self.boot, self.syncs).into(),
                };
                self.call(write, job(Step::ReadSync), now, ctx);
            }
            _ => {
                if msg_id.is_some() {
                    ctx.reply_error(
                        &src,
                        msg_id,
                        ErrorCode::NotSupported,
                        format!("not a {} request", self.kind.name()),
                    );
                }
            }
        }
    }
}

//! The node host: everything between a line arriving and outputs leaving that is the same for
//! every workload, free of I/O and clocks. One [`Host`] wraps one [`Workload`]; the tokio shell
//! ([`crate::runtime`]), the runner's deterministic simulator and the workloads' test clusters all
//! drive the same host, so what the simulator checks is what the shell runs.
//!
//! What the host does, in the order a driver calls it:
//! - **Before `init`** ([`Host::receive`]): a client request gets error 11 (temporarily
//!   unavailable: definite, so Maelstrom records a clean failure) unless it is too old to answer;
//!   peer traffic and replies are dropped, since peers retry. The `init` itself is handed back to
//!   the driver as an [`InitRequest`], because recovering durable records is the driver's I/O; the
//!   driver then calls [`Host::init`] with what it recovered (or why it could not), and the host
//!   builds the workload and answers `init_ok` (or error 13, crash, and the driver exits: a node
//!   that cannot keep its writes must not acknowledge any).
//! - **After `init`**: workload messages go to [`Workload::handle`] once the client guard
//!   ([`ClientGuard`]) admits them; a second `init` is answered `init_ok` again; a line the
//!   workload cannot serve gets the error [`crate::node::parse_line`] chose (10 for an unknown type,
//!   12 for bad fields), unless it was a reply (replies are never answered, so two nodes cannot
//!   ping-pong errors) or a client request too old to answer.
//! - **Ticks** ([`Host::tick`]): the workload's timed work, run only if [`Workload::next_tick`]
//!   says it is due (drivers may wake early or late). [`Host::next_tick`] tells the driver when to
//!   wake next.
//! - **Durability**: the driver takes the records handlers emitted ([`Host::take_records`]),
//!   makes them durable, and reports the running count ([`Host::durable`]), which releases the
//!   outputs that waited for it. [`Host::persist_with`] runs that loop for a driver that appends
//!   at once.
//! - **Compaction** ([`Host::take_compaction`]): the host counts the log's bytes (recovered plus
//!   taken records, with their frame headers) and, once every record taken is durable and the log
//!   is at least [`DEFAULT_COMPACT_MIN_BYTES`] (or what [`Host::set_compact_min`] chose) and twice
//!   the workload's [`Workload::live_bytes`] (and twice the last snapshot), hands the driver the
//!   workload's [`Workload::snapshot`] to write in place of the log; the driver reports how that
//!   went ([`Host::compacted`]). The decision lives here, free of I/O, so the simulator's disk
//!   model exercises it as the shell does; writing the new log crash-safely is the driver's
//!   (the shell's [`crate::store::Store::compact`]).
//! - **Outputs** ([`Host::drain`]): every line to send, in order, past the client guard: a reply to
//!   a client request that was never admitted, was already answered or has grown too old is
//!   dropped (a late reply makes Maelstrom stop reading the node; see [`ClientGuard`]).
//! - **Pauses**: the driver tells the host when the process was resumed after a stop
//!   ([`Host::resumed`]), before it hands over anything read after the resume.

mod config;
mod guard;

pub use config::{parse_bool, ShellConfig, SHELL_ENV};
pub use guard::ClientGuard;

use crate::node::{Ctx, Inbound, InitInfo, Message, Millis, Workload};
use crate::store::frame_len;
use crate::wire::{is_client, Body, Common, Envelope, ErrorBody, ErrorCode};
use serde::{Serialize, Serializer};

/// One line the node sends: a workload message, or one of the host's own (`init_ok`, errors).
#[derive(Debug)]
pub enum Outbound<M> {
    Msg(Message<M>),
    Host(Envelope<Body<Common>>),
}

impl<M> Outbound<M> {
    pub fn src(&self) -> &str {
        match self {
            Outbound::Msg(m) => &m.src,
            Outbound::Host(m) => &m.src,
        }
    }

    pub fn dest(&self) -> &str {
        match self {
            Outbound::Msg(m) => &m.dest,
            Outbound::Host(m) => &m.dest,
        }
    }
}

impl<M: Serialize> Outbound<M> {
    /// The body alone as JSON (the simulator routes bodies; the shell writes whole lines).
    pub fn body_json(&self) -> serde_json::Result<String> {
        match self {
            Outbound::Msg(m) => serde_json::to_string(&m.body),
            Outbound::Host(m) => serde_json::to_string(&m.body),
        }
    }
}

impl<M: Serialize> Serialize for Outbound<M> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Outbound::Msg(m) => m.serialize(s),
            Outbound::Host(m) => m.serialize(s),
        }
    }
}

/// An `init` the host received before it was initialised: the driver recovers the node's durable
/// records (if [`Host::persistent`]) and calls [`Host::init`] with this.
#[derive(Debug, Clone, PartialEq)]
pub struct InitRequest {
    pub node_id: String,
    pub node_ids: Vec<String>,
    /// Who sent `init` and its `msg_id`, for the reply.
    client: String,
    msg_id: Option<u64>,
}

/// What the host dropped instead of passing on, by reason (for logs, tests and the simulator's
/// statistics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Client requests the guard judged too old to serve (queued during a pause).
    pub stale_requests_dropped: u64,
    /// Replies to clients the guard judged too late to send.
    pub late_replies_dropped: u64,
    /// Peer messages and replies received before `init` (peers retry).
    pub dropped_before_init: u64,
}

/// The workload once `init` built it, with its output context.
struct Running<W: Workload> {
    node: W,
    ctx: Ctx<W::Msg>,
}

/// The smallest log worth compacting (1 MiB): below it a node's start-up and disk use are small
/// whatever the garbage, and rewriting it would cost more than it saves. `MURMUR_COMPACT_MIN_BYTES`
/// sets it for the shell ([`ShellConfig`]).
pub const DEFAULT_COMPACT_MIN_BYTES: u64 = 1 << 20;

/// The log's size as the host counts it, for the compaction decision (module docs).
#[derive(Debug, Clone, Copy, Default)]
struct LogSize {
    /// Bytes of log: the recovered records and every record taken since, with frame headers (a
    /// finished compaction replaces what it covered by the snapshot's size).
    bytes: u64,
    /// Records taken in this incarnation, and how many of them the driver reported durable.
    taken: u64,
    durable: u64,
    /// The size of the last snapshot written (0 before the first): the log must reach twice
    /// that before the next, so an estimate of the live size that is too low cannot make the
    /// node compact over and over.
    last_snapshot: u64,
    /// No compaction is offered before the log reaches this (set after a failed one).
    retry_at: u64,
    /// A snapshot handed out and not yet reported: (log bytes then, snapshot bytes).
    compacting: Option<(u64, u64)>,
}

/// A [`Workload`] with everything around it that every Maelstrom node needs (module docs).
pub struct Host<W: Workload> {
    config: W::Config,
    guard: ClientGuard,
    running: Option<Running<W>>,
    /// Lines ready to leave, already past the client guard, in order.
    out: Vec<Outbound<W::Msg>>,
    stats: HostStats,
    /// Compact once the log reaches this many bytes (and twice the live size); `None` never.
    compact_min: Option<u64>,
    log: LogSize,
}

impl<W: Workload> Host<W> {
    /// A host for a process started at `now`, waiting for `init`. `stall_ms` and
    /// `reply_deadline_ms` configure the [`ClientGuard`] (0 turns each part off; defaults in
    /// [`ShellConfig`]); a workload whose clients give up sooner lowers the deadline
    /// ([`Workload::reply_deadline_ms`]).
    pub fn new(
        config: W::Config,
        stall_ms: Millis,
        reply_deadline_ms: Millis,
        now: Millis,
    ) -> Self {
        let reply_deadline_ms = match W::reply_deadline_ms(&config) {
            Some(own) if reply_deadline_ms > 0 => reply_deadline_ms.min(own.max(1)),
            _ => reply_deadline_ms,
        };
        Host {
            config,
            guard: ClientGuard::new(stall_ms, reply_deadline_ms, now),
            running: None,
            out: Vec::new(),
            stats: HostStats::default(),
            compact_min: Some(DEFAULT_COMPACT_MIN_BYTES),
            log: LogSize::default(),
        }
    }

    /// The smallest log the host compacts ([`DEFAULT_COMPACT_MIN_BYTES`] unless set; `None`:
    /// never). Tests and the simulator lower it so that short runs compact.
    pub fn set_compact_min(&mut self, min: Option<u64>) {
        self.compact_min = min;
    }

    /// Bytes of log as the host counts them (recovered records and records taken since, with
    /// their frame headers, a finished compaction counting as its snapshot's size).
    pub fn log_bytes(&self) -> u64 {
        self.log.bytes
    }

    /// Whether the workload persists records with this config (if not, there is nothing to open
    /// at `init` and nothing to flush).
    pub fn persistent(&self) -> bool {
        W::persistent(&self.config)
    }

    /// Whether `init` has built the workload.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The workload, once initialised (tests inspect its state).
    pub fn node(&self) -> Option<&W> {
        self.running.as_ref().map(|r| &r.node)
    }

    pub fn stats(&self) -> HostStats {
        self.stats
    }

    /// Client requests admitted and not answered yet.
    pub fn open_requests(&self) -> usize {
        self.guard.open_requests()
    }

    /// The process was resumed after a stop (SIGCONT): the guard dates what arrives next back to
    /// the last activity. Returns how long the node may have been stalled.
    pub fn resumed(&mut self, now: Millis) -> Millis {
        self.guard.resumed(now)
    }

    /// Handles one classified stdin line (see the module docs). Returns the `init` request the
    /// driver must complete with [`Host::init`] before handing over anything else.
    #[must_use = "an init request must be completed with Host::init"]
    pub fn receive(&mut self, now: Millis, inbound: Inbound<W::Msg>) -> Option<InitRequest> {
        match inbound {
            Inbound::Msg(msg) => {
                if self.running.is_none() {
                    let is_reply = msg.body.in_reply_to.is_some();
                    self.refuse_before_init(now, msg.src, msg.dest, msg.body.msg_id, is_reply);
                    return None;
                }
                if is_client(&msg.src)
                    && msg.body.in_reply_to.is_none()
                    && !self.guard.admit(&msg.src, msg.body.msg_id, now)
                {
                    self.stats.stale_requests_dropped += 1;
                    tracing::warn!(src = %msg.src, msg_id = ?msg.body.msg_id, "client request queued during a stall dropped unanswered");
                    return None;
                }
                self.call(now, |node, ctx| node.handle(msg, now, ctx));
                None
            }
            Inbound::Common(env) => match env.body.payload {
                Common::Init { node_id, node_ids } => {
                    if self.running.is_none() {
                        return Some(InitRequest {
                            node_id,
                            node_ids,
                            client: env.src,
                            msg_id: env.body.msg_id,
                        });
                    }
                    tracing::warn!(src = %env.src, "second init ignored; answering init_ok");
                    self.gather(now);
                    let me = self
                        .running
                        .as_ref()
                        .map_or(env.dest, |r| r.ctx.me().to_string());
                    let reply = reply(me, env.src, env.body.msg_id, Common::InitOk);
                    self.out.push(Outbound::Host(reply));
                    None
                }
                other => {
                    tracing::debug!(src = %env.src, body = ?other, "unsolicited message ignored");
                    None
                }
            },
            Inbound::Reject {
                src,
                dest,
                msg_id,
                is_reply,
                code,
                text,
            } => {
                if self.running.is_none() {
                    self.refuse_before_init(now, src, dest, msg_id, is_reply);
                    return None;
                }
                tracing::warn!(%src, %code, "{text}");
                if !is_reply && (!is_client(&src) || self.guard.fresh(now)) {
                    self.gather(now);
                    let body = Common::Error(ErrorBody::new(code, text));
                    self.out
                        .push(Outbound::Host(reply(dest, src, msg_id, body)));
                }
                None
            }
        }
    }

    /// Completes `init` with the records a previous incarnation made durable, in order (empty for
    /// a first start or a workload that does not persist), or with why they could not be read: the
    /// host then answers error 13 (crash) and stays uninitialised, and the driver should exit.
    /// `boot_unix_micros` is wall-clock time at start-up (see [`InitInfo`]).
    pub fn init(
        &mut self,
        now: Millis,
        request: InitRequest,
        recovered: Result<Vec<Vec<u8>>, String>,
        boot_unix_micros: u64,
    ) {
        let InitRequest {
            node_id,
            node_ids,
            client,
            msg_id,
        } = request;
        let recovered = match recovered {
            Ok(records) => {
                self.log = LogSize {
                    bytes: records.iter().map(|r| frame_len(r.len())).sum(),
                    ..LogSize::default()
                };
                records
            }
            Err(text) => {
                tracing::error!("{text}; refusing init");
                let body = Common::Error(ErrorBody::new(ErrorCode::Crash, text));
                self.out
                    .push(Outbound::Host(reply(node_id, client, msg_id, body)));
                return;
            }
        };
        let info = InitInfo {
            node_id: node_id.clone(),
            node_ids,
            boot_unix_micros,
            recovered,
        };
        tracing::info!(
            node = %node_id,
            nodes = info.node_ids.len(),
            recovered_records = info.recovered.len(),
            "init"
        );
        self.running = Some(Running {
            node: W::init(&info, &self.config, now),
            ctx: Ctx::new(node_id.clone()),
        });
        self.out.push(Outbound::Host(reply(
            node_id,
            client,
            msg_id,
            Common::InitOk,
        )));
        // What `init` itself emitted (a recovered node may resume gossip) follows `init_ok`.
        self.call(now, |_, _| {});
    }

    /// Runs the workload's timed work if it is due now.
    pub fn tick(&mut self, now: Millis) {
        self.call(now, |node, ctx| {
            if node.next_tick(now).is_some_and(|t| t <= now) {
                node.tick(now, ctx);
            }
        });
    }

    /// When the workload next has timed work ([`Workload::next_tick`]); `None` before `init`.
    pub fn next_tick(&mut self, now: Millis) -> Option<Millis> {
        self.running.as_mut().and_then(|r| r.node.next_tick(now))
    }

    /// The records emitted since the last call, in order, to be made durable.
    pub fn take_records(&mut self) -> Vec<Vec<u8>> {
        let records = match &mut self.running {
            Some(r) => r.node.take_records(),
            None => Vec::new(),
        };
        self.log.taken += records.len() as u64;
        self.log.bytes += records.iter().map(|r| frame_len(r.len())).sum::<u64>();
        records
    }

    /// The first `count` records of this incarnation are durable: outputs that waited for them
    /// are released.
    pub fn durable(&mut self, count: u64, now: Millis) {
        self.log.durable = self.log.durable.max(count);
        self.call(now, |node, ctx| node.persisted(count, now, ctx));
    }

    /// A snapshot to write in place of the whole log, if a compaction is due (module docs): the
    /// driver writes it crash-safely (old log or new, never less), then calls
    /// [`Host::compacted`]. Only offered when every record taken so far is durable, so the
    /// snapshot covers the whole log; records taken afterwards must be appended after it, and
    /// none is offered again until the driver has reported this one.
    pub fn take_compaction(&mut self) -> Option<Vec<Vec<u8>>> {
        let min = self.compact_min?;
        let log = &self.log;
        // Cheap checks first: this is asked after every call into the workload.
        if log.bytes < min.max(log.retry_at) || log.compacting.is_some() || log.taken != log.durable
        {
            return None;
        }
        let r = self.running.as_mut()?;
        let live = r.node.live_bytes()?;
        if log.bytes < min.max(live.max(log.last_snapshot).saturating_mul(2)) {
            return None;
        }
        let snapshot = r.node.snapshot()?;
        let bytes = snapshot.iter().map(|r| frame_len(r.len())).sum();
        tracing::info!(
            log_bytes = log.bytes,
            live_bytes = live,
            snapshot_bytes = bytes,
            "compacting the log"
        );
        self.log.compacting = Some((self.log.bytes, bytes));
        Some(snapshot)
    }

    /// The snapshot of [`Host::take_compaction`] replaced the log (`ok`), or the old log is still
    /// the log (the attempt failed: the next is offered once the log has grown by the minimum).
    pub fn compacted(&mut self, ok: bool) {
        let Some((from, to)) = self.log.compacting.take() else {
            return;
        };
        if ok {
            self.log.bytes = self.log.bytes.saturating_sub(from) + to;
            self.log.last_snapshot = to;
        } else {
            self.log.retry_at = self.log.bytes + self.compact_min.unwrap_or(0);
        }
    }

    /// Hands the pending records to `append` until none are left or it declines: `append`
    /// returns the new running count of durable records, or `None` if it only queued them (they
    /// are then reported later through [`Host::durable`]). Records emitted by what became durable
    /// go the same way.
    pub fn persist_with(
        &mut self,
        now: Millis,
        mut append: impl FnMut(Vec<Vec<u8>>) -> Option<u64>,
    ) {
        loop {
            let records = self.take_records();
            if records.is_empty() {
                return;
            }
            let Some(count) = append(records) else {
                return;
            };
            self.durable(count, now);
        }
    }

    /// The lines ready to leave, without taking them (tests look before they drain).
    pub fn outbox(&self) -> &[Outbound<W::Msg>] {
        &self.out
    }

    /// Every line ready to leave, in order.
    pub fn drain(&mut self) -> Vec<Outbound<W::Msg>> {
        std::mem::take(&mut self.out)
    }

    /// Calls into the workload (if it is running), then collects what it sent.
    fn call(&mut self, now: Millis, f: impl FnOnce(&mut W, &mut Ctx<W::Msg>)) {
        let Some(r) = &mut self.running else {
            return;
        };
        f(&mut r.node, &mut r.ctx);
        self.guard.active(now);
        self.gather(now);
    }

    /// Moves the workload's outputs to the outbox, dropping client replies the guard says are
    /// too late.
    fn gather(&mut self, now: Millis) {
        let Some(r) = &mut self.running else {
            return;
        };
        for m in r.ctx.drain() {
            if is_client(&m.dest) && !self.guard.release(&m.dest, m.body.in_reply_to, now) {
                self.stats.late_replies_dropped += 1;
                tracing::warn!(dest = %m.dest, in_reply_to = ?m.body.in_reply_to, "late reply to a client dropped");
                continue;
            }
            self.out.push(Outbound::Msg(m));
        }
    }

    /// The rule before `init`: a client request gets error 11 unless it is too old to answer;
    /// anything else is dropped.
    fn refuse_before_init(
        &mut self,
        now: Millis,
        src: String,
        dest: String,
        msg_id: Option<u64>,
        is_reply: bool,
    ) {
        if is_reply || !is_client(&src) || msg_id.is_none() {
            self.stats.dropped_before_init += 1;
            tracing::debug!(%src, "dropping peer message received before init");
            return;
        }
        if !self.guard.fresh(now) {
            self.stats.stale_requests_dropped += 1;
            tracing::warn!(%src, "request queued during a stall before init dropped");
            return;
        }
        tracing::warn!(%src, "request before init");
        let body = Common::Error(ErrorBody::new(
            ErrorCode::TemporarilyUnavailable,
            "node not initialised yet: waiting for init",
        ));
        self.out
            .push(Outbound::Host(reply(dest, src, msg_id, body)));
    }
}

/// A reply from `src` to `dest` (replies carry no `msg_id` of their own).
fn reply(
    src: String,
    dest: String,
    in_reply_to: Option<u64>,
    payload: Common,
) -> Envelope<Body<Common>> {
    Envelope {
        id: None,
        src,
        dest,
        body: Body {
            msg_id: None,
            in_reply_to,
            payload,
        },
    }
}

#[cfg(test)]
mod tests;

//! The simulated network: a clock-free, I/O-free state machine with Maelstrom's exact delivery
//! model (Maelstrom's `src/maelstrom/net.clj`; the message format is in
//! <https://github.com/jepsen-io/maelstrom/blob/main/doc/protocol.md>).
//!
//! Time is always passed in by the caller as nanoseconds since the test started, so the same code
//! runs under the real-time driver (wall clock, threads) and the deterministic virtual-time
//! simulator. All randomness (latency samples) comes from the caller-seeded [`ChaCha8Rng`].
//!
//! # Model
//!
//! - **Receivers.** Every id that can receive is registered with a [`PeerKind`]: a server node, a
//!   client (`c<k>`) or a service (`lin-kv`, …). [`Net::send`] rejects a packet whose `src` or `dest`
//!   is not registered ([`NetError::UnknownSrc`] / [`NetError::UnknownDest`]); the driver turns that
//!   into Maelstrom's "Invalid dest for message" handling. As in
//!   Maelstrom (`send!` numbers the message before `validate-msg`), a rejected send still consumes a
//!   message id.
//! - **Ids.** One global counter from 0, assigned at send, shared by every sender.
//! - **Journal.** Every accepted send is journaled as [`JournalKind::Send`] at send time, before any
//!   partition check; every delivery as [`JournalKind::Recv`] at its intended delivery time.
//!   Dropped messages get no `Recv`. With [`Net::set_journal_bodies`] the `Send` event also keeps
//!   a copy of the body text (off by default: the simulator's sweeps do not need it; the
//!   real-time driver turns it on unless `--no-journal-bodies`), up to [`JOURNAL_BODY_BUDGET`]
//!   bytes in all: past it, later sends are journaled without their body
//!   ([`Net::bodies_not_kept`]), so a long run's memory stays bounded (a broadcast `read_ok`
//!   carries the whole set, so bodies add up to the square of the run's length).
//! - **Latency.** 0 ms if `src` or `dest` is a client (`murmur::wire::is_client`: first character
//!   `c`); otherwise a sample from [`Latency`]. Service traffic gets latency.
//! - **Queues and head-of-line blocking.** Each receiver has a priority queue ordered by
//!   deadline = send time + latency, ties broken by message id. A receiver holds at most one *taken*
//!   message. Whenever it is free (idle when a message arrives, or just after a delivery) it takes
//!   its queue head at once, even if that head is not due yet:
//!   1. if a partition is active for (src → receiver) *at that moment* the message is dropped
//!      (counted in [`Net::dropped_count`], no `Recv`) and it takes the next head;
//!   2. otherwise it holds the message until max(deadline, take time) — its *intended* delivery
//!      time — then delivers it and immediately takes the next head.
//!
//!   So a later-sent message with an earlier deadline (a 0-latency client request, say) waits
//!   behind the held head: that is Maelstrom's receiver loop (`recv!` polls the head, checks
//!   partitions, then sleeps until the deadline), reproduced on purpose.
//! - **Partitions.** A grudge maps a receiver to the set of sources it drops ([`Grudge`], the shape
//!   Jepsen's `drop-all!` takes). It only ever applies when both ends are registered as
//!   [`PeerKind::Node`]: client and service traffic is never partitioned. A grudge change
//!   never affects a message already taken. [`Net::set_grudge`] replaces the grudge; Maelstrom's
//!   `drop!` accumulates pairs until a heal, but the nemesis always heals between two partitions,
//!   so the two agree.
//! - **Killed nodes.** [`Net::set_down`] makes a receiver stop taking: its messages pile
//!   up and senders see no error. A message it held (taken, not yet due) goes back into its queue
//!   un-journaled. [`Net::restart`] installs a fresh, empty queue and makes it take again. Paused
//!   nodes are *not* special here: Maelstrom keeps writing into their pipes. A driver may also use
//!   `set_down` to model a client that is not polling between RPCs.
//!
//! # Driving it
//!
//! Every mutating call takes `now`; the state machine first processes, in deadline order, every
//! delivery (and the takes that follow it) due at or before `now`, so grudge changes, kills and
//! sends interleave with deliveries exactly by time, whatever the order in which a real-time driver
//! notices them. `now` values going backwards (racing threads) are clamped to the latest one seen.
//! Deliveries processed that way are buffered until [`Net::deliver_due`] hands them out, with their
//! lag (`now` − intended time); [`Net::next_deadline`] tells a driver when to wake up next.
//!
//! Per message the work is O(log n): a push and a pop on the receiver's queue and on a global heap of
//! held messages' intended times; stale heap entries (after a kill, restart or deregister) are
//! recognised by message id and skipped. Bodies are moved, never cloned.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::history::{JournalEvent, JournalKind};

/// A partition: receiver id → the source ids whose messages it drops.
pub type Grudge = HashMap<String, HashSet<String>>;

const NANOS_PER_MS: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Latency

/// The shape of the latency distribution (`--latency-dist`, default `constant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LatencyDist {
    /// Exactly the mean.
    #[default]
    Constant,
    /// An integer uniform in [0, 2·mean) ms.
    Uniform,
    /// Exponential with rate 1/mean, truncated toward 0 to whole ms.
    Exponential,
}

impl LatencyDist {
    pub fn name(self) -> &'static str {
        match self {
            LatencyDist::Constant => "constant",
            LatencyDist::Uniform => "uniform",
            LatencyDist::Exponential => "exponential",
        }
    }
}

impl fmt::Display for LatencyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown `--latency-dist` name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown latency distribution {name:?}; expected one of: constant, uniform, exponential")]
pub struct ParseLatencyDistError {
    pub name: String,
}

impl FromStr for LatencyDist {
    type Err = ParseLatencyDistError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "constant" => Ok(LatencyDist::Constant),
            "uniform" => Ok(LatencyDist::Uniform),
            "exponential" => Ok(LatencyDist::Exponential),
            _ => Err(ParseLatencyDistError {
                name: s.to_string(),
            }),
        }
    }
}

/// The latency of server traffic: a distribution and its mean in ms (`--latency`, default 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    dist: LatencyDist,
    mean_ms: u64,
}

impl Latency {
    /// Validates the pair. **Deviation:** Maelstrom hangs (`uniform`: a rejection sampler over an
    /// empty range) or divides by zero (`exponential`) with mean 0; we reject those combinations
    /// with [`NetError::ZeroMeanLatency`] instead.
    pub fn new(dist: LatencyDist, mean_ms: u64) -> Result<Latency, NetError> {
        if mean_ms == 0 && dist != LatencyDist::Constant {
            return Err(NetError::ZeroMeanLatency { dist });
        }
        Ok(Latency { dist, mean_ms })
    }

    /// `constant` with mean `mean_ms`; always valid.
    pub fn constant(mean_ms: u64) -> Latency {
        Latency {
            dist: LatencyDist::Constant,
            mean_ms,
        }
    }

    pub fn dist(&self) -> LatencyDist {
        self.dist
    }

    pub fn mean_ms(&self) -> u64 {
        self.mean_ms
    }

    /// One latency sample in whole milliseconds.
    pub fn sample_ms<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match self.dist {
            LatencyDist::Constant => self.mean_ms,
            LatencyDist::Uniform => match self.mean_ms.checked_mul(2) {
                Some(0) => 0,
                Some(hi) => rng.random_range(0..hi),
                None => rng.random_range(0..=u64::MAX),
            },
            LatencyDist::Exponential => {
                // Inverse CDF: -ln(U)·mean with U in (0, 1]; `as` truncates toward 0 and saturates.
                let u: f64 = rng.random::<f64>();
                let x = -(1.0 - u).ln() * self.mean_ms as f64;
                if x > 0.0 {
                    x as u64
                } else {
                    0
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Packets and deliveries

/// A message in flight. `body` is the raw JSON text of the body object, inserted verbatim into the
/// stdin line: the driver must pass compact JSON it has already validated (no newlines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub src: String,
    pub dest: String,
    /// Raw JSON text of the body object, e.g. `{"type":"echo","echo":"hi","msg_id":1}`.
    pub body: String,
    /// The body's `type`, or empty when it has none (journaled for the per-type breakdown).
    pub body_type: String,
}

impl Packet {
    pub fn new(
        src: impl Into<String>,
        dest: impl Into<String>,
        body: impl Into<String>,
        body_type: impl Into<String>,
    ) -> Packet {
        Packet {
            src: src.into(),
            dest: dest.into(),
            body: body.into(),
            body_type: body_type.into(),
        }
    }

    /// Builds a packet from a parsed body, taking `body_type` from its `type` string (or empty).
    pub fn from_value(
        src: impl Into<String>,
        dest: impl Into<String>,
        body: &serde_json::Value,
    ) -> Packet {
        let body_type = body
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_string();
        Packet::new(src, dest, body.to_string(), body_type)
    }

    /// Appends the stdin line `{"id":N,"src":"..","dest":"..","body":<body>}` (compact JSON, fields
    /// in Maelstrom's order, no trailing newline) to `out`.
    pub fn write_line(&self, id: u64, out: &mut String) {
        out.reserve(self.body.len() + self.src.len() + self.dest.len() + 40);
        let _ = write!(out, "{{\"id\":{id},\"src\":");
        write_json_str(out, &self.src);
        out.push_str(",\"dest\":");
        write_json_str(out, &self.dest);
        out.push_str(",\"body\":");
        out.push_str(&self.body);
        out.push('}');
    }

    /// The stdin line for this packet with message id `id`; see [`Packet::write_line`].
    pub fn line(&self, id: u64) -> String {
        let mut out = String::new();
        self.write_line(id, &mut out);
        out
    }
}

/// Writes `s` as a JSON string literal, escaping exactly as serde_json's compact writer does.
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A message handed to a receiver by [`Net::deliver_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The global message id (the `id` on the stdin line).
    pub id: u64,
    pub packet: Packet,
    /// When the network meant to deliver it: max(deadline, time it was taken), ns.
    pub intended: u64,
    /// How late the driver collected it: `now` passed to `deliver_due` − `intended`, ns.
    pub lag: u64,
}

/// Delivery-lag summary in microseconds (quantiles from a log-linear histogram, ≤ 1.6 % error;
/// `max_us` is exact). Quantile q is the value at rank min(n−1, ⌊n·q⌋) in sorted order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LagStats {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// What a registered id is; partitions only ever apply between two `Node`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// A server node (`n0`, …): the only kind a grudge applies to.
    Node,
    /// A Maelstrom client (`c<k>`).
    Client,
    /// A built-in service (`lin-kv`, `seq-kv`, `lww-kv`, `lin-tso`).
    Service,
}

/// Errors from the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// `src` is not registered; message id `id` was consumed (as in Maelstrom).
    #[error("Invalid source for message {id}: {src:?} is not registered in the network")]
    UnknownSrc { id: u64, src: String },
    /// `dest` is not registered; message id `id` was consumed (as in Maelstrom).
    #[error("Invalid dest for message {id}: {dest:?} is not registered in the network")]
    UnknownDest { id: u64, dest: String },
    #[error("no such receiver in the network: {0:?}")]
    UnknownReceiver(String),
    #[error("{0:?} is already registered in the network")]
    AlreadyRegistered(String),
    #[error(
        "--latency-dist {dist} needs --latency above 0 ms (Maelstrom would hang or divide by zero)"
    )]
    ZeroMeanLatency { dist: LatencyDist },
}

// ---------------------------------------------------------------------------------------------
// The state machine

/// A queued message, ordered by (deadline, id).
#[derive(Debug)]
struct Queued {
    deadline: u64,
    id: u64,
    /// Whether `src` was registered as a node when sent (partitions apply only node → node).
    src_is_node: bool,
    packet: Packet,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.id) == (other.deadline, other.id)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.id).cmp(&(other.deadline, other.id))
    }
}

#[derive(Debug)]
struct Held {
    msg: Queued,
    intended: u64,
}

#[derive(Debug)]
struct Receiver {
    id: String,
    kind: PeerKind,
    queue: BinaryHeap<Reverse<Queued>>,
    held: Option<Held>,
    down: bool,
}

#[derive(Debug)]
struct Ready {
    id: u64,
    packet: Packet,
    intended: u64,
}

/// The simulated network. See the module docs for the model.
#[derive(Debug)]
pub struct Net {
    latency: Latency,
    rng: ChaCha8Rng,
    next_id: u64,
    index: HashMap<String, usize>,
    slots: Vec<Option<Receiver>>,
    free: Vec<usize>,
    grudge: Grudge,
    /// (intended delivery time, message id, slot) of every held message, plus stale entries.
    timers: BinaryHeap<Reverse<(u64, u64, usize)>>,
    ready: Vec<Ready>,
    journal: Vec<JournalEvent>,
    now: u64,
    dropped: u64,
    lag: LagHistogram,
    journal_bodies: bool,
    /// Body bytes the journal may still keep.
    body_budget: usize,
    /// Sends journaled without their body because the budget ran out.
    bodies_not_kept: u64,
}

/// The most body text the journal keeps over a run, bytes (256 MiB: a 25-node, 100 ops/s
/// broadcast run reaches it after about five minutes).
pub const JOURNAL_BODY_BUDGET: usize = 256 << 20;

impl Net {
    /// An empty network with no receivers and no partition.
    pub fn new(latency: Latency, rng: ChaCha8Rng) -> Net {
        Net {
            latency,
            rng,
            next_id: 0,
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            grudge: Grudge::new(),
            timers: BinaryHeap::new(),
            ready: Vec::new(),
            journal: Vec::new(),
            now: 0,
            dropped: 0,
            lag: LagHistogram::default(),
            journal_bodies: false,
            body_budget: JOURNAL_BODY_BUDGET,
            bodies_not_kept: 0,
        }
    }

    pub fn latency(&self) -> Latency {
        self.latency
    }

    /// Whether `Send` journal events keep a copy of the message body (default: no).
    pub fn set_journal_bodies(&mut self, on: bool) {
        self.journal_bodies = on;
    }

    /// Replaces [`JOURNAL_BODY_BUDGET`] for this network (tests use a small one).
    pub fn set_journal_body_budget(&mut self, bytes: usize) {
        self.body_budget = bytes;
    }

    /// Sends journaled without their body because [`JOURNAL_BODY_BUDGET`] was spent.
    pub fn bodies_not_kept(&self) -> u64 {
        self.bodies_not_kept
    }

    /// A copy of `body` for the journal, if bodies are journaled and the budget allows.
    fn journal_body(&mut self, body: &str) -> Option<std::sync::Arc<str>> {
        if !self.journal_bodies {
            return None;
        }
        if body.len() > self.body_budget {
            if self.bodies_not_kept == 0 {
                tracing::warn!(
                    "the journal has kept {} MiB of message bodies, its budget: later messages are \
                     journaled without their body (--no-journal-bodies keeps none)",
                    JOURNAL_BODY_BUDGET >> 20
                );
            }
            self.bodies_not_kept += 1;
            return None;
        }
        self.body_budget -= body.len();
        Some(std::sync::Arc::from(body))
    }

    /// Registers a receiver with an empty queue. Ids are never silently replaced: registering a
    /// registered id is an error (use [`Net::restart`] for a restarted node).
    pub fn register(&mut self, id: &str, kind: PeerKind) -> Result<(), NetError> {
        if self.index.contains_key(id) {
            return Err(NetError::AlreadyRegistered(id.to_string()));
        }
        let receiver = Receiver {
            id: id.to_string(),
            kind,
            queue: BinaryHeap::new(),
            held: None,
            down: false,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(receiver);
                slot
            }
            None => {
                self.slots.push(Some(receiver));
                self.slots.len() - 1
            }
        };
        self.index.insert(id.to_string(), slot);
        Ok(())
    }

    pub fn register_node(&mut self, id: &str) -> Result<(), NetError> {
        self.register(id, PeerKind::Node)
    }

    pub fn register_client(&mut self, id: &str) -> Result<(), NetError> {
        self.register(id, PeerKind::Client)
    }

    pub fn register_service(&mut self, id: &str) -> Result<(), NetError> {
        self.register(id, PeerKind::Service)
    }

    /// Removes a receiver (a closed client, a torn-down node). Deliveries due up to `now` are
    /// processed first; whatever it still queues or holds is discarded without a `Recv`.
    /// Returns how many messages were discarded.
    pub fn deregister(&mut self, now: u64, id: &str) -> Result<usize, NetError> {
        let now = self.clock(now);
        self.advance(now);
        let slot = self
            .index
            .remove(id)
            .ok_or_else(|| NetError::UnknownReceiver(id.to_string()))?;
        let receiver = self.slots[slot].take().expect("indexed slot is occupied");
        self.free.push(slot);
        Ok(receiver.queue.len() + usize::from(receiver.held.is_some()))
    }

    pub fn is_registered(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// The kind `id` was registered with.
    pub fn kind(&self, id: &str) -> Option<PeerKind> {
        self.receiver(id).map(|r| r.kind)
    }

    /// Whether `id` is down (see [`Net::set_down`]).
    pub fn is_down(&self, id: &str) -> Option<bool> {
        self.receiver(id).map(|r| r.down)
    }

    /// Messages waiting for `id`, the held one included.
    pub fn pending(&self, id: &str) -> Option<usize> {
        self.receiver(id)
            .map(|r| r.queue.len() + usize::from(r.held.is_some()))
    }

    /// The id the next send will get (= the number of sends attempted so far).
    pub fn next_message_id(&self) -> u64 {
        self.next_id
    }

    /// Messages dropped by partitions so far.
    pub fn dropped_count(&self) -> u64 {
        self.dropped
    }

    /// The current grudge.
    pub fn grudge(&self) -> &Grudge {
        &self.grudge
    }

    /// Sends a packet at `now`: assigns the next global id, journals the send, samples the latency
    /// and queues it for `dest`. Fails if `src` or `dest` is not registered (the id is consumed and
    /// nothing is journaled).
    pub fn send(&mut self, now: u64, packet: Packet) -> Result<u64, NetError> {
        let now = self.clock(now);
        self.advance(now);
        let id = self.next_id;
        self.next_id += 1;
        let Some(&src_slot) = self.index.get(packet.src.as_str()) else {
            return Err(NetError::UnknownSrc {
                id,
                src: packet.src,
            });
        };
        let Some(&dest_slot) = self.index.get(packet.dest.as_str()) else {
            return Err(NetError::UnknownDest {
                id,
                dest: packet.dest,
            });
        };
        let latency_ms =
            if murmur::wire::is_client(&packet.src) || murmur::wire::is_client(&packet.dest) {
                0
            } else {
                self.latency.sample_ms(&mut self.rng)
            };
        let body = self.journal_body(&packet.body);
        self.journal.push(JournalEvent {
            kind: JournalKind::Send,
            time: now,
            id,
            src: packet.src.clone(),
            dest: packet.dest.clone(),
            body_type: packet.body_type.clone(),
            body,
        });
        let src_is_node = self.slots[src_slot]
            .as_ref()
            .is_some_and(|r| r.kind == PeerKind::Node);
        let deadline = now.saturating_add(latency_ms.saturating_mul(NANOS_PER_MS));
        let receiver = self.slots[dest_slot]
            .as_mut()
            .expect("indexed slot is occupied");
        receiver.queue.push(Reverse(Queued {
            deadline,
            id,
            src_is_node,
            packet,
        }));
        if receiver.held.is_none() && !receiver.down {
            self.take(dest_slot, now);
        }
        Ok(id)
    }

    /// The earliest time at which something becomes deliverable: a buffered delivery (already due)
    /// or a held message's intended time. `None` when nothing is held.
    pub fn next_deadline(&mut self) -> Option<u64> {
        if let Some(first) = self.ready.first() {
            return Some(first.intended);
        }
        while let Some(&Reverse((t, id, slot))) = self.timers.peek() {
            if self.is_live_timer(t, id, slot) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// Appends to `out`, in (intended time, id) order, every delivery whose intended time is ≤ `now`
    /// (journaling each as `Recv` at its intended time), records their lags, and makes each
    /// receiver take its next message.
    pub fn deliver_due(&mut self, now: u64, out: &mut Vec<Delivery>) {
        let now = self.clock(now);
        self.advance(now);
        out.reserve(self.ready.len());
        for r in self.ready.drain(..) {
            let lag = now.saturating_sub(r.intended);
            self.lag.record(lag / 1_000);
            out.push(Delivery {
                id: r.id,
                packet: r.packet,
                intended: r.intended,
                lag,
            });
        }
    }

    /// Installs a partition from `now` on (replacing the previous one). Messages already taken are
    /// unaffected; the grudge is consulted each time a node takes a message from another node.
    pub fn set_grudge(&mut self, now: u64, grudge: Grudge) {
        let now = self.clock(now);
        self.advance(now);
        self.grudge = grudge;
    }

    /// Removes every partition from `now` on.
    pub fn heal(&mut self, now: u64) {
        let now = self.clock(now);
        self.advance(now);
        self.grudge.clear();
    }

    /// Marks a receiver down (it stops taking; its held message returns to its queue) or up again
    /// (it takes its queue head at `now`). Idempotent.
    pub fn set_down(&mut self, now: u64, id: &str, down: bool) -> Result<(), NetError> {
        let now = self.clock(now);
        self.advance(now);
        let slot = self.slot(id)?;
        let receiver = self.slots[slot].as_mut().expect("indexed slot is occupied");
        if down && !receiver.down {
            receiver.down = true;
            if let Some(held) = receiver.held.take() {
                receiver.queue.push(Reverse(held.msg));
            }
        } else if !down && receiver.down {
            receiver.down = false;
            self.take(slot, now);
        }
        Ok(())
    }

    /// Restarts a killed node: a fresh, empty queue, and the receiver takes again.
    /// Returns how many queued messages were discarded (never journaled as received).
    ///
    /// Jepsen's `start` targets every node and is a no-op for running ones: call this only for
    /// nodes that are actually down, or their pending messages are discarded too.
    pub fn restart(&mut self, now: u64, id: &str) -> Result<usize, NetError> {
        let now = self.clock(now);
        self.advance(now);
        let slot = self.slot(id)?;
        let receiver = self.slots[slot].as_mut().expect("indexed slot is occupied");
        let discarded = receiver.queue.len() + usize::from(receiver.held.is_some());
        receiver.queue = BinaryHeap::new();
        receiver.held = None;
        receiver.down = false;
        Ok(discarded)
    }

    /// How many journal events are held (recorded since the last [`Net::take_journal`]).
    pub fn journal_len(&self) -> usize {
        self.journal.len()
    }

    /// The journal events from index `from` on (empty past the end), for a reader that follows
    /// the run as it goes (the live dashboard) without copying what it has already seen.
    pub fn journal_from(&self, from: usize) -> &[JournalEvent] {
        self.journal.get(from..).unwrap_or(&[])
    }

    /// Returns and clears the journal events recorded so far, in the order they happened.
    pub fn take_journal(&mut self) -> Vec<JournalEvent> {
        std::mem::take(&mut self.journal)
    }

    /// Summary of every lag recorded by [`Net::deliver_due`].
    pub fn lag_stats(&self) -> LagStats {
        self.lag.stats()
    }

    // --- internals ---

    fn clock(&mut self, now: u64) -> u64 {
        self.now = self.now.max(now);
        self.now
    }

    fn slot(&self, id: &str) -> Result<usize, NetError> {
        self.index
            .get(id)
            .copied()
            .ok_or_else(|| NetError::UnknownReceiver(id.to_string()))
    }

    fn receiver(&self, id: &str) -> Option<&Receiver> {
        self.index
            .get(id)
            .and_then(|&slot| self.slots[slot].as_ref())
    }

    fn is_live_timer(&self, t: u64, id: u64, slot: usize) -> bool {
        self.slots
            .get(slot)
            .and_then(Option::as_ref)
            .and_then(|r| r.held.as_ref())
            .is_some_and(|h| h.msg.id == id && h.intended == t)
    }

    /// The receiver in `slot` is free at time `t`: it takes queue heads, dropping partitioned ones,
    /// until it holds one or its queue is empty.
    fn take(&mut self, slot: usize, t: u64) {
        let Some(receiver) = self.slots[slot].as_mut() else {
            return;
        };
        debug_assert!(receiver.held.is_none() && !receiver.down);
        let grudge = (receiver.kind == PeerKind::Node)
            .then(|| self.grudge.get(receiver.id.as_str()))
            .flatten()
            .filter(|srcs| !srcs.is_empty());
        while let Some(Reverse(msg)) = receiver.queue.pop() {
            if msg.src_is_node && grudge.is_some_and(|srcs| srcs.contains(msg.packet.src.as_str()))
            {
                self.dropped += 1;
                continue;
            }
            let intended = msg.deadline.max(t);
            self.timers.push(Reverse((intended, msg.id, slot)));
            receiver.held = Some(Held { msg, intended });
            return;
        }
    }

    /// Processes, in (intended time, id) order, every held message due at or before `now`:
    /// journal, buffer for `deliver_due`, then let its receiver take the next one at that time.
    fn advance(&mut self, now: u64) {
        while let Some(&Reverse((t, id, slot))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if !self.is_live_timer(t, id, slot) {
                continue;
            }
            let receiver = self.slots[slot]
                .as_mut()
                .expect("live timer has a receiver");
            let held = receiver.held.take().expect("live timer has a held message");
            let packet = held.msg.packet;
            self.journal.push(JournalEvent {
                kind: JournalKind::Recv,
                time: t,
                id,
                src: packet.src.clone(),
                dest: packet.dest.clone(),
                body_type: packet.body_type.clone(),
                body: None,
            });
            self.ready.push(Ready {
                id,
                packet,
                intended: t,
            });
            if !receiver.down {
                self.take(slot, t);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lag histogram

/// Log-linear histogram: exact below 128, then 64 sub-buckets per power of two (< 1/64 relative
/// error). 3,776 counters cover all of u64.
///
/// Kept rather than replaced by the `hdrhistogram` crate because its figures are part of
/// results.json (`runner.delivery-lag-us`, and `runner.overloaded`, drawn from its p99), and the
/// crate's would differ: `Histogram::value_at_quantile` takes the ⌈n·q⌉-th smallest value where
/// this takes the one at 0-based rank ⌊n·q⌋ (Jepsen's rule, also used by the checkers' exact
/// quantiles; the two differ whenever n·q is whole, e.g. the p50 of 100 values), reports the top
/// of that value's bucket without clamping it to the exact maximum, and lays its buckets out by
/// significant digits (2 digits: exact below 256, then 128 sub-buckets per power of two; 1 digit:
/// exact below 32, then 16), so no setting reproduces this layout.
#[derive(Debug, Clone)]
struct LagHistogram {
    counts: Vec<u64>,
    count: u64,
    max: u64,
}

const EXACT: u64 = 128;
const SUB_BITS: u32 = 6;

impl Default for LagHistogram {
    fn default() -> Self {
        let buckets = EXACT as usize + (64 - 7) * (1 << SUB_BITS);
        LagHistogram {
            counts: vec![0; buckets],
            count: 0,
            max: 0,
        }
    }
}

impl LagHistogram {
    fn bucket(v: u64) -> usize {
        if v < EXACT {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // 7..=63
        let mantissa = v >> (e - SUB_BITS); // in [64, 128)
        EXACT as usize + (e as usize - 7) * (1 << SUB_BITS) + (mantissa as usize - 64)
    }

    /// The largest value that falls into bucket `b`.
    fn upper(b: usize) -> u64 {
        if b < EXACT as usize {
            return b as u64;
        }
        let k = b - EXACT as usize;
        let e = (k >> SUB_BITS) as u32 + 7;
        let mantissa = (k & ((1 << SUB_BITS) - 1)) as u64 + 64;
        let shift = e - SUB_BITS;
        ((mantissa + 1) << shift).wrapping_sub(1)
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::bucket(v)] += 1;
        self.count += 1;
        self.max = self.max.max(v);
    }

    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64 * q) as u64).min(self.count - 1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Self::upper(b).min(self.max);
            }
        }
        self.max
    }

    fn stats(&self) -> LagStats {
        LagStats {
            count: self.count,
            p50_us: self.quantile(0.5),
            p99_us: self.quantile(0.99),
            max_us: self.max,
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;

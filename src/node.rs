//! The sans-IO protocol core: what a workload is, what a handler may emit, and how a stdin line is
//! classified before any handler sees it.
//!
//! A workload never touches stdin, stdout, files or clocks. It is built *from* `init` (so there are
//! no "maybe initialised" fields), then fed messages and ticks, each with the current time as a
//! plain millisecond count, and it records what it wants to send in a [`Ctx`]. The tokio shell
//! ([`crate::runtime`]) drains those outputs to stdout; unit tests and the runner's deterministic
//! simulator drain them directly.

use crate::wire::{Body, BodyHeader, Common, Envelope, ErrorBody, ErrorCode};
use serde::{de::DeserializeOwned, Serialize};

/// Milliseconds on a monotonic clock chosen by the driver (process start for the tokio shell,
/// virtual time in a simulation).
pub type Millis = u64;

/// A message as a workload sees it.
pub type Message<M> = Envelope<Body<M>>;

/// What `init` told the node, plus the facts the shell knows about its own start.
#[derive(Debug, Clone, PartialEq)]
pub struct InitInfo {
    pub node_id: String,
    pub node_ids: Vec<String>,
    /// Wall-clock microseconds since the Unix epoch at start-up; used where ids must stay unique
    /// across restarts without coordination (unique-ids). Simulations pass a seeded value.
    pub boot_unix_micros: u64,
    /// Records a previous incarnation of this node made durable, in the order it emitted them
    /// (empty on a first start, or for workloads that do not persist). See [`Workload::take_records`].
    pub recovered: Vec<Vec<u8>>,
}

/// A Maelstrom workload as a pure state machine.
pub trait Workload: Sized + Send + 'static {
    /// The workload's payload enum, tagged by `type`. It must have an error variant so the
    /// runtime can answer any request with a Maelstrom error body.
    type Msg: Serialize + DeserializeOwned + From<ErrorBody> + Send + std::fmt::Debug + 'static;
    /// Knobs, documented with their defaults where the struct is defined.
    type Config: Clone + Send + Sync + std::fmt::Debug + 'static;

    /// Builds the node from `init`. `now` is the driver's clock.
    fn init(info: &InitInfo, config: &Self::Config, now: Millis) -> Self;

    /// Handles one message from a client or a peer.
    fn handle(&mut self, msg: Message<Self::Msg>, now: Millis, ctx: &mut Ctx<Self::Msg>);

    /// Timed work (the sync task): batched sends, retransmissions, delayed acknowledgements. Runs
    /// when [`Workload::next_tick`] says it is due. Default: nothing to do.
    fn tick(&mut self, _now: Millis, _ctx: &mut Ctx<Self::Msg>) {}

    /// When [`Workload::tick`] next has work to do: `None` if it has none until a message arrives
    /// (the node then sleeps; an idle node costs no CPU), a time `<= now` if it is due now. The
    /// driver asks again after every handler, tick and [`Workload::persisted`], so the answer only
    /// has to be right for the current state. A tick run early must be harmless (drivers may wake
    /// late or early), but a workload that batches work on a schedule encodes the schedule here.
    /// Default: never.
    fn next_tick(&mut self, _now: Millis) -> Option<Millis> {
        None
    }

    // Durability, sans-IO: the workload emits opaque records; the driver (the tokio shell's flusher,
    // or a simulator's virtual disk) appends them to stable storage in order, in batches, and then
    // reports how many are durable. On restart the durable records come back in `InitInfo::recovered`.

    /// How long a client request may wait for its answer here, when the workload's client gives
    /// up sooner than the 5 s the shell's `reply_deadline_ms` is set for (lin-kv's client waits
    /// max(10 × latency, 1 s)): the host's client guard then uses the shorter of the two, so a
    /// late reply never reaches a closed client. `None` (the default): the shell's deadline.
    fn reply_deadline_ms(_config: &Self::Config) -> Option<Millis> {
        None
    }

    /// Whether this workload persists anything with this config (if not, no flusher runs).
    fn persistent(_config: &Self::Config) -> bool {
        false
    }

    /// Takes the records emitted since the last call, in order.
    fn take_records(&mut self) -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// The first `count` records this incarnation emitted are now durable. Outputs that waited for
    /// durability (acknowledgements) are released into `ctx`.
    fn persisted(&mut self, _count: u64, _now: Millis, _ctx: &mut Ctx<Self::Msg>) {}

    // Compaction: the log only grows, but much of it is superseded (older cursor records, say).
    // The host compares the log's size with `live_bytes` and, when the log has grown past twice
    // that, asks for a `snapshot` that replaces it (see `host::Host::take_compaction`).

    /// About how many bytes of log (records plus their frame headers) a [`Workload::snapshot`]
    /// taken now would write. `None`: this workload never compacts (the default).
    fn live_bytes(&self) -> Option<u64> {
        None
    }

    /// Records that, recovered alone (as [`InitInfo::recovered`]), rebuild the state that every
    /// record taken so far describes, so they can replace the whole log. Records emitted but not
    /// yet taken are not covered: they are taken later and appended after the snapshot. The host
    /// asks only when every record taken so far is durable. `None` declines (the default).
    fn snapshot(&mut self) -> Option<Vec<Vec<u8>>> {
        None
    }
}

/// The outputs of a handler: messages to send, in order. Owns the node's `msg_id` counter so every
/// request it sends is correlated.
#[derive(Debug)]
pub struct Ctx<M> {
    me: String,
    next_msg_id: u64,
    out: Vec<Message<M>>,
}

impl<M> Ctx<M> {
    pub fn new(me: impl Into<String>) -> Self {
        Ctx {
            me: me.into(),
            next_msg_id: 1,
            out: Vec::new(),
        }
    }

    /// This node's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Sends a request (it gets a fresh `msg_id`, which is returned).
    pub fn send(&mut self, dest: &str, payload: M) -> u64 {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        self.push(
            dest,
            Body {
                msg_id: Some(id),
                in_reply_to: None,
                payload,
            },
        );
        id
    }

    /// Sends a one-way message with no `msg_id` (nothing will answer it).
    pub fn notify(&mut self, dest: &str, payload: M) {
        self.push(dest, Body::new(payload));
    }

    /// Answers a request. Replies carry only `in_reply_to` besides the payload: Maelstrom's reply
    /// schemas allow an optional `msg_id`, but nothing needs one.
    pub fn reply(&mut self, dest: &str, in_reply_to: Option<u64>, payload: M) {
        self.push(
            dest,
            Body {
                msg_id: None,
                in_reply_to,
                payload,
            },
        );
    }

    /// Queues a message built elsewhere exactly as it is, `msg_id` included: for a workload that
    /// runs another one inside it and passes its outputs on (the counters run a broadcast node,
    /// whose requests must keep the ids its own calls are registered under).
    pub fn forward(&mut self, msg: Message<M>) {
        self.out.push(msg);
    }

    fn push(&mut self, dest: &str, body: Body<M>) {
        self.out.push(Envelope {
            id: None,
            src: self.me.clone(),
            dest: dest.to_string(),
            body,
        });
    }

    /// Takes every output recorded so far.
    pub fn drain(&mut self) -> Vec<Message<M>> {
        std::mem::take(&mut self.out)
    }

    /// Outputs recorded so far, for tests.
    pub fn peek(&self) -> &[Message<M>] {
        &self.out
    }
}

impl<M: From<ErrorBody>> Ctx<M> {
    /// Answers a request with a Maelstrom error body.
    pub fn reply_error(
        &mut self,
        dest: &str,
        in_reply_to: Option<u64>,
        code: ErrorCode,
        text: impl Into<String>,
    ) {
        self.reply(dest, in_reply_to, M::from(ErrorBody::new(code, text)));
    }
}

/// How one stdin line was understood.
#[derive(Debug)]
pub enum Inbound<M> {
    /// A message of the workload.
    Msg(Message<M>),
    /// The `init` handshake (or an error reply to something we sent before init).
    Common(Envelope<Body<Common>>),
    /// A well-formed envelope whose body cannot be served. If it was a request (`msg_id` set and
    /// no `in_reply_to`), it gets `reply` as an error body; replies are never answered, so two
    /// nodes cannot ping-pong errors.
    Reject {
        src: String,
        dest: String,
        msg_id: Option<u64>,
        is_reply: bool,
        code: ErrorCode,
        text: String,
    },
}

/// Why a line was skipped without an answer.
#[derive(Debug, thiserror::Error)]
#[error("malformed line ({reason}): {excerpt}")]
pub struct Malformed {
    pub reason: String,
    pub excerpt: String,
}

/// Classifies a stdin line. Fast path: one typed parse. Only lines that fail it are parsed again
/// to decide between `init`, not-supported (10) and malformed-request (12).
pub fn parse_line<M: DeserializeOwned>(line: &str) -> Result<Inbound<M>, Malformed> {
    let typed_err = match serde_json::from_str::<Message<M>>(line) {
        Ok(msg) => return Ok(Inbound::Msg(msg)),
        Err(e) => e,
    };
    let malformed = |reason: String| Malformed {
        reason,
        excerpt: excerpt(line),
    };
    let env: Envelope<serde_json::Value> = serde_json::from_str(line)
        .map_err(|e| malformed(format!("not a Maelstrom envelope: {e}")))?;
    if !env.body.is_object() {
        return Err(malformed("body is not a JSON object".into()));
    }
    let header: BodyHeader = serde_json::from_value(env.body.clone()).unwrap_or_default();
    let is_reply = header.in_reply_to.is_some();
    let kind = header.kind.clone().unwrap_or_default();
    if let Ok(common) = serde_json::from_value::<Body<Common>>(env.body.clone()) {
        if matches!(common.payload, Common::Init { .. }) || is_reply {
            return Ok(Inbound::Common(Envelope {
                id: env.id,
                src: env.src,
                dest: env.dest,
                body: common,
            }));
        }
    }
    let msg = typed_err.to_string();
    let (code, text) = if header.kind.is_none() {
        (
            ErrorCode::MalformedRequest,
            "body has no string `type`".to_string(),
        )
    } else if msg.contains("unknown variant") || kind == "init_ok" {
        (
            ErrorCode::NotSupported,
            format!("message type `{kind}` is not supported by this node"),
        )
    } else {
        (
            ErrorCode::MalformedRequest,
            format!("malformed `{kind}` request: {msg}"),
        )
    };
    Ok(Inbound::Reject {
        src: env.src,
        dest: env.dest,
        msg_id: header.msg_id,
        is_reply,
        code,
        text,
    })
}

fn excerpt(line: &str) -> String {
    const MAX: usize = 200;
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &line[..end], line.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Toy {
        Ping { n: u64 },
        Pong,
        Error(ErrorBody),
    }
    impl From<ErrorBody> for Toy {
        fn from(e: ErrorBody) -> Self {
            Toy::Error(e)
        }
    }

    fn classify(line: &str) -> Result<Inbound<Toy>, Malformed> {
        parse_line::<Toy>(line)
    }

    #[test]
    fn typed_messages_parse_on_the_fast_path() {
        let r =
            classify(r#"{"id":7,"src":"c1","dest":"n0","body":{"type":"ping","n":3,"msg_id":4}}"#)
                .unwrap();
        match r {
            Inbound::Msg(m) => {
                assert_eq!(m.body.payload, Toy::Ping { n: 3 });
                assert_eq!(m.body.msg_id, Some(4));
                assert_eq!(m.id, Some(7));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn init_is_recognised_even_though_the_workload_does_not_know_it() {
        let r = classify(
            r#"{"src":"c0","dest":"n1","body":{"type":"init","node_id":"n1","node_ids":["n1"],"msg_id":1}}"#,
        );
        assert!(matches!(r, Ok(Inbound::Common(_))));
    }

    #[test]
    fn unknown_type_is_not_supported_and_bad_fields_are_malformed() {
        let r = classify(r#"{"src":"c1","dest":"n0","body":{"type":"frobnicate","msg_id":2}}"#)
            .unwrap();
        match r {
            Inbound::Reject {
                code,
                msg_id,
                is_reply,
                ..
            } => {
                assert_eq!(code, ErrorCode::NotSupported);
                assert_eq!(msg_id, Some(2));
                assert!(!is_reply);
            }
            other => panic!("{other:?}"),
        }
        let r = classify(r#"{"src":"c1","dest":"n0","body":{"type":"ping","n":"x","msg_id":3}}"#)
            .unwrap();
        assert!(
            matches!(
                r,
                Inbound::Reject {
                    code: ErrorCode::MalformedRequest,
                    ..
                }
            ),
            "{r:?}"
        );
        let r = classify(r#"{"src":"c1","dest":"n0","body":{"msg_id":3}}"#).unwrap();
        assert!(
            matches!(
                r,
                Inbound::Reject {
                    code: ErrorCode::MalformedRequest,
                    ..
                }
            ),
            "{r:?}"
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for line in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"src":"a"}"#,
            r#"{"src":"a","dest":"b","body":3}"#,
            "{\"src\":\"\u{1F600}",
        ] {
            assert!(classify(line).is_err(), "{line:?}");
        }
        let long = format!("{{\"x\":\"{}\"}}", "é".repeat(500));
        let err = classify(&long).unwrap_err();
        assert!(err.excerpt.len() < 300);
    }

    #[test]
    fn error_replies_from_peers_are_common_not_rejected() {
        let r = classify(
            r#"{"src":"n2","dest":"n0","body":{"type":"error","code":11,"in_reply_to":9}}"#,
        )
        .unwrap();
        assert!(matches!(r, Inbound::Msg(_) | Inbound::Common(_)));
    }

    #[test]
    fn ctx_assigns_msg_ids_and_replies_carry_only_in_reply_to() {
        let mut ctx: Ctx<Toy> = Ctx::new("n0");
        assert_eq!(ctx.send("n1", Toy::Pong), 1);
        assert_eq!(ctx.send("n2", Toy::Pong), 2);
        ctx.reply("c1", Some(5), Toy::Pong);
        ctx.reply_error("c1", Some(6), ErrorCode::NotSupported, "nope");
        let out = ctx.drain();
        assert_eq!(out.len(), 4);
        assert_eq!(
            serde_json::to_string(&out[2]).unwrap(),
            r#"{"src":"n0","dest":"c1","body":{"in_reply_to":5,"type":"pong"}}"#
        );
        assert_eq!(
            serde_json::to_value(&out[3].body).unwrap(),
            serde_json::json!({"type":"error","code":10,"text":"nope","in_reply_to":6})
        );
        assert!(ctx.drain().is_empty());
    }
}

//! Property tests ("fuzzing" on stable Rust; cargo-fuzz needs nightly) of the node's stdin line
//! parser, [`murmur::node::parse_line`], over arbitrary bytes and over mutations of valid
//! protocol lines (the broadcast workload's messages and `init`):
//! - it never panics, whatever the line;
//! - a valid line is classified as what it is, and parses back to the message that was written;
//! - a well-formed envelope whose body the node cannot serve is a `Reject` with Maelstrom's code:
//!   10 (not-supported) for an unknown `type`, 12 (malformed-request) for a missing or ill-typed
//!   field or a missing `type`;
//! - a line that is not a JSON envelope with an object body is skipped (`Err(Malformed)`), never
//!   answered.
//!
//! Cases per property: `MURMUR_TEST_FUZZ_CASES` (default 500: a few seconds for the file in a debug build); the RNG seed is
//! fixed (`MURMUR_TEST_FUZZ_SEED`, default 12) so a run can be replayed, and printed when a property
//! fails. The maelstrom crate's `tests/line_fuzz.rs` does the same for the runner's scanner.

use murmur::node::{parse_line, Inbound, Message};
use murmur::wire::{Body, Common, Envelope, ErrorCode};
use murmur::workload::broadcast::Msg;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::{json, Value};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fuzz_config() -> Config {
    let (cases, seed) = (
        env_u64("MURMUR_TEST_FUZZ_CASES", 500),
        env_u64("MURMUR_TEST_FUZZ_SEED", 12),
    );
    // Shown (with the failing input) when a property fails.
    println!("MURMUR_TEST_FUZZ_SEED={seed} MURMUR_TEST_FUZZ_CASES={cases}");
    Config {
        cases: u32::try_from(cases).unwrap_or(u32::MAX),
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

/// A node id, sometimes with characters that need escaping.
fn node_id() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[nc][0-9]{1,3}", 1 => "[a-z\"\\\\é\u{1F600}]{1,6}"]
}

/// A small JSON value (a broadcast `message` may be anything).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z\"\\\\{}\\[\\]]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request or reply of the broadcast workload that a node parses as a workload message.
fn payload() -> impl Strategy<Value = Msg> {
    prop_oneof![
        json_value().prop_map(|message| Msg::Broadcast { message }),
        Just(Msg::BroadcastOk),
        Just(Msg::Read),
        Just(Msg::TopologyOk),
        prop::collection::hash_map(node_id(), prop::collection::vec(node_id(), 0..3), 0..3)
            .prop_map(|topology| Msg::Topology { topology }),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
            |(log, to_log, ack, resync)| Msg::GossipOk {
                log,
                to_log,
                ack,
                resync
            }
        ),
        (
            any::<u64>(),
            0u64..100,
            prop::collection::vec(json_value(), 0..4),
            any::<bool>()
        )
            .prop_map(|(log, from, values, retry)| Msg::Gossip {
                log,
                to_log: log.wrapping_add(1),
                base: from,
                from,
                upto: from + values.len() as u64,
                values,
                ack: 0,
                retry,
                relayed: vec![],
            }),
    ]
}

fn message() -> impl Strategy<Value = Message<Msg>> {
    (
        proptest::option::of(any::<u64>()),
        node_id(),
        node_id(),
        proptest::option::of(any::<u64>()),
        payload(),
    )
        .prop_map(|(id, src, dest, msg_id, payload)| Envelope {
            id,
            src,
            dest,
            body: Body {
                msg_id,
                in_reply_to: None,
                payload,
            },
        })
}

/// The message as the node would read it: a JSON value we can then damage.
fn to_value(m: &Message<Msg>) -> Value {
    serde_json::to_value(m).unwrap()
}

/// A few byte-level edits (replace, insert, delete) at random places.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, kind, byte) in edits {
        let at = if bytes.is_empty() {
            0
        } else {
            at % bytes.len()
        };
        match kind % 3 {
            0 if !bytes.is_empty() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ if !bytes.is_empty() => {
                bytes.remove(at);
            }
            _ => bytes.push(byte),
        }
    }
    bytes
}

/// What the node does with raw stdin bytes: lines that are not UTF-8 are skipped before
/// parsing, so the parser only ever sees `str`; here it gets the lossy decoding too.
fn parse_bytes(bytes: &[u8]) -> Result<Inbound<Msg>, murmur::node::Malformed> {
    parse_line::<Msg>(&String::from_utf8_lossy(bytes))
}

fn reject_code(r: Result<Inbound<Msg>, murmur::node::Malformed>) -> Option<ErrorCode> {
    match r {
        Ok(Inbound::Reject { code, is_reply, .. }) => {
            assert!(!is_reply, "a request was taken for a reply");
            Some(code)
        }
        _ => None,
    }
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_bytes(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(line in "\\PC{0,200}") {
        let _ = parse_line::<Msg>(&line);
    }

    #[test]
    fn valid_lines_parse_to_what_was_written(m in message()) {
        let line = serde_json::to_string(&m).unwrap();
        match parse_line::<Msg>(&line) {
            Ok(Inbound::Msg(parsed)) => prop_assert_eq!(parsed, m),
            other => prop_assert!(false, "{line} gave {other:?}"),
        }
    }

    #[test]
    fn init_is_the_handshake(src in node_id(), me in node_id(), others in prop::collection::vec(node_id(), 0..4)) {
        let line = json!({"id": 0, "src": src, "dest": me, "body": {"type": "init", "msg_id": 1, "node_id": me, "node_ids": others}}).to_string();
        match parse_line::<Msg>(&line) {
            Ok(Inbound::Common(env)) => {
                prop_assert_eq!(env.body.msg_id, Some(1));
                prop_assert_eq!(env.body.payload, Common::Init { node_id: me, node_ids: others });
            }
            other => prop_assert!(false, "{line} gave {other:?}"),
        }
    }

    #[test]
    fn an_unknown_type_is_not_supported(m in message(), kind in "[a-z_]{1,12}", msg_id in any::<u64>()) {
        let known = ["broadcast", "broadcast_ok", "read", "read_ok", "topology", "topology_ok",
            "gossip", "gossip_ok", "ack_batch", "relayed_acks", "error", "init", "init_ok"];
        prop_assume!(!known.contains(&kind.as_str()));
        let mut v = to_value(&m);
        v["body"]["type"] = json!(kind);
        v["body"]["msg_id"] = json!(msg_id);
        let line = v.to_string();
        let r = parse_line::<Msg>(&line);
        match &r {
            Ok(Inbound::Reject { msg_id: got, src, .. }) => {
                prop_assert_eq!(*got, Some(msg_id));
                prop_assert_eq!(src, &m.src);
            }
            other => prop_assert!(false, "{line} gave {other:?}"),
        }
        prop_assert_eq!(reject_code(r), Some(ErrorCode::NotSupported));
    }

    #[test]
    fn bad_fields_are_malformed_requests(m in message(), which in 0usize..4, junk in json_value()) {
        let mut v = to_value(&m);
        let body = v["body"].as_object_mut().unwrap();
        body.remove("in_reply_to");
        match which {
            // No `type`, or one that is not a string.
            0 => { body.remove("type"); }
            1 => { body.insert("type".into(), json!(5)); }
            // A required field of a known type missing, or of the wrong type.
            2 => { body.insert("type".into(), json!("gossip_ok")); body.insert("log".into(), json!("x")); }
            _ => {
                body.insert("type".into(), json!("topology"));
                body.insert("topology".into(), if junk.is_object() { json!(7) } else { junk });
            }
        }
        let line = v.to_string();
        let r = parse_line::<Msg>(&line);
        prop_assert!(matches!(r, Ok(Inbound::Reject { .. })), "{line} gave {r:?}");
        prop_assert_eq!(reject_code(r), Some(ErrorCode::MalformedRequest), "{}", line);
    }

    #[test]
    fn lines_that_are_not_envelopes_are_skipped(m in message(), cut in any::<prop::sample::Index>(), which in 0usize..5, junk in json_value()) {
        let line = serde_json::to_string(&m).unwrap();
        let damaged = match which {
            // Any proper prefix of a JSON object is not JSON.
            0 => String::from_utf8_lossy(&line.as_bytes()[..cut.index(line.len())]).into_owned(),
            // A body that is not an object.
            1 => {
                let mut v = to_value(&m);
                v["body"] = if junk.is_object() { json!([]) } else { junk };
                v.to_string()
            }
            // No src, or a dest that is not a string.
            2 => { let mut v = to_value(&m); v.as_object_mut().unwrap().remove("src"); v.to_string() }
            3 => { let mut v = to_value(&m); v["dest"] = json!(1); v.to_string() }
            // Not an object at all.
            _ => json!([line]).to_string(),
        };
        let r = parse_line::<Msg>(&damaged);
        prop_assert!(r.is_err(), "{damaged} gave {r:?}");
    }

    #[test]
    fn mutated_lines_never_panic_and_are_consistent(
        m in message(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let bytes = mutate(serde_json::to_vec(&m).unwrap(), &edits);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let r = parse_line::<Msg>(&text);
        let json = serde_json::from_str::<Value>(&text);
        // Not JSON (or not an object with an object body): skipped, never answered.
        let envelope = json.as_ref().ok().and_then(Value::as_object).filter(|o| {
            o.get("src").is_some_and(Value::is_string)
                && o.get("dest").is_some_and(Value::is_string)
                && o.get("body").is_some_and(Value::is_object)
        });
        if envelope.is_none() {
            prop_assert!(r.is_err(), "{text} gave {r:?}");
        }
        // Whatever was understood as a message means the same when written out again.
        if let Ok(Inbound::Msg(parsed)) = r {
            let again = serde_json::to_string(&parsed).unwrap();
            match parse_line::<Msg>(&again) {
                Ok(Inbound::Msg(p2)) => prop_assert_eq!(p2, parsed),
                other => prop_assert!(false, "{again} gave {other:?}"),
            }
        }
    }
}

//! Property tests ("fuzzing" on stable Rust; cargo-fuzz needs nightly) of the runner's stdout line
//! scanner, [`maelstrom::process::parse_stdout_line`], over arbitrary bytes and over mutations of
//! valid envelopes, decoded as the stdout reader decodes them (invalid UTF-8 becomes U+FFFD):
//! - it never panics, whatever the line;
//! - it accepts exactly the lines an independent oracle accepts (serde_json's `Value`, then
//!   Maelstrom's closed envelope schema checked on it: a JSON object with only `id`, `src`,
//!   `dest` and `body`, string `src` and `dest`, an object `body`, an integer `id`), and what
//!   it accepts reads back as the oracle reads it (src, dest, body);
//! - each kind of damage is rejected with its own [`LineError`].
//!
//! Cases per property: `MURMUR_TEST_FUZZ_CASES` (default 500); fixed RNG seed `MURMUR_TEST_FUZZ_SEED`
//! (default 12), printed when a property fails. The root crate's `tests/line_fuzz.rs` does the
//! same for the node's parser.

use maelstrom::process::{parse_stdout_line, LineError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::{json, Map, Value};

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

fn id_string() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[nc][0-9]{1,3}", 1 => "[a-z\"\\\\é\u{1F600}]{0,6}", 1 => Just("lin-kv".to_string())]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z\"\\\\{}\\[\\]:,]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,4}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid envelope: src, dest, an object body with a `type` and maybe `msg_id`/`in_reply_to`,
/// and maybe an integer `id`.
fn envelope() -> impl Strategy<Value = Value> {
    (
        id_string(),
        id_string(),
        "[a-z_]{1,10}",
        prop::collection::btree_map("[a-z_]{1,6}", json_value(), 0..4),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(src, dest, kind, fields, irt, id)| {
            let mut body: Map<String, Value> = fields.into_iter().collect();
            body.insert("type".into(), kind.into());
            if let Some(irt) = irt {
                body.insert("in_reply_to".into(), irt.into());
            }
            let mut env = json!({"src": src, "dest": dest, "body": body});
            if let Some(id) = id {
                env["id"] = id.into();
            }
            env
        })
}

/// The oracle: `Some((src, dest, body))` if the line is a valid envelope, `None` if not; panics
/// (skipping the case, see [`comparable`]) where serde_json's `Value` cannot tell.
fn oracle(line: &str) -> Option<(String, String, Value)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let obj = v.as_object()?;
    if obj
        .keys()
        .any(|k| !["id", "src", "dest", "body"].contains(&k.as_str()))
    {
        return None;
    }
    if obj.get("id").is_some_and(|id| !id.is_i64() && !id.is_u64()) {
        return None;
    }
    let src = obj.get("src")?.as_str()?.to_string();
    let dest = obj.get("dest")?.as_str()?.to_string();
    let body = obj.get("body").filter(|b| b.is_object())?.clone();
    Some((src, dest, body))
}

/// Lines where the oracle and the scanner may legitimately differ: an `id` that `Value` reads as
/// a float (the scanner takes any integer literal, of any size), more than one `id` (the scanner
/// checks each, `Value` keeps the last), `\u` escapes (lone surrogates are refused by `Value`
/// inside a body the scanner forwards as raw text), and numbers beyond `f64` in a body (`1e400`:
/// `Value` refuses them; the scanner forwards the body's text, as Maelstrom's JVM parser reads
/// them as infinities rather than failing).
fn comparable(line: &str) -> bool {
    let ids = line.matches("\"id\"").count();
    let parsed = serde_json::from_str::<Value>(line);
    let float_id = parsed
        .as_ref()
        .ok()
        .and_then(|v| v.get("id").map(Value::is_f64))
        .unwrap_or(false);
    let out_of_range = parsed
        .as_ref()
        .is_err_and(|e| e.to_string().contains("number out of range"));
    ids <= 1 && !float_id && !out_of_range && !line.contains("\\u")
}

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

/// The scanner agrees with the oracle on `line`.
fn agrees(line: &str) -> Result<(), TestCaseError> {
    let got = parse_stdout_line(line);
    if !comparable(line) {
        return Ok(());
    }
    match (got, oracle(line)) {
        (Ok(p), Some((src, dest, body))) => {
            prop_assert_eq!(p.src, src);
            prop_assert_eq!(p.dest, dest);
            let raw: Value = serde_json::from_str(&p.raw_body).unwrap();
            prop_assert_eq!(&raw, &body);
            prop_assert_eq!(p.body_type.as_deref(), body["type"].as_str());
        }
        (Err(_), None) => {}
        (got, want) => prop_assert!(false, "{line}: scanner {got:?}, oracle {want:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn arbitrary_bytes_never_panic_and_agree(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        agrees(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn valid_envelopes_are_accepted(env in envelope()) {
        let line = env.to_string();
        prop_assert!(parse_stdout_line(&line).is_ok(), "{}", line);
        agrees(&line)?;
        // Pretty-printed on one line (whitespace between tokens) is the same message.
        let spaced = line.replace(",\"", ", \"").replace(":", " : ");
        agrees(&spaced)?;
    }

    #[test]
    fn mutated_envelopes_agree_with_the_oracle(
        env in envelope(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let bytes = mutate(env.to_string().into_bytes(), &edits);
        agrees(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn each_kind_of_damage_has_its_error(env in envelope(), which in 0usize..9, cut in any::<prop::sample::Index>(), junk in json_value()) {
        let mut v = env.clone();
        let obj = v.as_object_mut().unwrap();
        let not_object = if junk.is_object() { json!(null) } else { junk.clone() };
        let not_string = if junk.is_string() { json!(0) } else { junk.clone() };
        let (line, want): (String, fn(&LineError) -> bool) = match which {
            0 => {
                obj.insert("extra".into(), junk);
                (v.to_string(), |e| matches!(e, LineError::UnknownKey(k) if k == "extra"))
            }
            1 => { obj.remove("src"); (v.to_string(), |e| *e == LineError::MissingKey("src")) }
            2 => { obj.remove("dest"); (v.to_string(), |e| *e == LineError::MissingKey("dest")) }
            3 => { obj.remove("body"); (v.to_string(), |e| *e == LineError::MissingKey("body")) }
            4 => {
                obj.insert("body".into(), not_object);
                (v.to_string(), |e| matches!(e, LineError::BodyNotObject(_)))
            }
            5 => {
                obj.insert("src".into(), not_string);
                (v.to_string(), |e| matches!(e, LineError::NotAString { key: "src", .. }))
            }
            6 => {
                obj.insert("id".into(), json!(1.5));
                (v.to_string(), |e| matches!(e, LineError::IdNotInteger(_)))
            }
            7 => {
                let line = env.to_string();
                let prefix = &line.as_bytes()[..cut.index(line.len())];
                let prefix = String::from_utf8_lossy(prefix).into_owned();
                let want: fn(&LineError) -> bool = if prefix.trim().is_empty() {
                    |e| *e == LineError::Empty
                } else {
                    |e| matches!(e, LineError::NotJson(_))
                };
                (prefix, want)
            }
            _ => (json!([env]).to_string(), |e| *e == LineError::NotAnObject("an array")),
        };
        match parse_stdout_line(&line) {
            Err(e) => prop_assert!(want(&e), "{line}: {e:?}"),
            Ok(p) => prop_assert!(false, "{line} accepted: {p:?}"),
        }
    }
}

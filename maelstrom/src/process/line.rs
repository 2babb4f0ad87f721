//! Validation of node stdout lines against Maelstrom's message envelope
//! (<https://github.com/jepsen-io/maelstrom/blob/main/doc/protocol.md>): a JSON object with
//! exactly `src` and `dest` (strings), `body` (an object) and optionally `id` (an integer).
//!
//! The envelope is checked member by member rather than deserialised into a struct, because the
//! semantics Maelstrom gives it are not serde's:
//! - **Duplicate keys: the last one wins**, as in the map Maelstrom's JSON parser builds; a derived
//!   `Deserialize` rejects a duplicate field instead.
//! - **The first offending member, in document order, is the reported reason** (an unknown key, or
//!   an `id` that is not an integer literal), so a node's author sees the first problem in the line.
//! - **`id` is any integer literal**, of any size (Clojure's `s/Int`): it is checked as text, never
//!   converted.
//! - **The body is forwarded as the node wrote it**: routing hands its exact text on, never a
//!   re-serialisation.
//!
//! serde_json does the parsing: [`Members`] collects an object's top-level members in document
//! order as raw JSON text ([`RawValue`], so nothing is decoded or copied), and the rules above are
//! applied to that list.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A well-formed stdout line: a message the network can route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    pub src: String,
    pub dest: String,
    /// The body object exactly as the node wrote it (JSON text), to be forwarded unchanged.
    pub raw_body: String,
    /// The body's top-level `type` when it is a string; used for the journal and per-type stats.
    pub body_type: Option<String>,
    /// The body's top-level `in_reply_to` when it is a non-negative integer literal. `5.0` gives
    /// `None`, which matches Maelstrom's clients: they compare with Clojure `=`, so `5.0` never
    /// answers request 5.
    pub in_reply_to: Option<u64>,
}

/// Why a stdout line is not a valid Maelstrom message (what Maelstrom's `parse-msg` in
/// `src/maelstrom/process.clj` rejects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// An empty (or all-whitespace) line: Maelstrom parses it to nothing, so src and dest are
    /// missing.
    Empty,
    /// Not well-formed JSON (the parser's message), including trailing text after the object.
    NotJson(String),
    /// Valid JSON, but not an object; the kind found (`array`, `string`, ...).
    NotAnObject(&'static str),
    /// A top-level key other than `id`, `src`, `dest`, `body`: the envelope is a closed schema.
    UnknownKey(String),
    /// `src`, `dest` or `body` is absent.
    MissingKey(&'static str),
    /// `src` or `dest` is not a string; the kind found.
    NotAString {
        key: &'static str,
        found: &'static str,
    },
    /// `body` is not an object; the kind found.
    BodyNotObject(&'static str),
    /// `id` is present but not an integer; its JSON text (shortened).
    IdNotInteger(String),
    /// The line is longer than the runner reads (`limit` bytes, [`crate::process::MAX_LINE_BYTES`]);
    /// Maelstrom has no limit, but no message of its protocol comes near it.
    TooLong { limit: usize },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Empty => f.write_str("empty line (a message needs src, dest and body)"),
            LineError::NotJson(e) => write!(f, "not well-formed JSON: {e}"),
            LineError::NotAnObject(kind) => write!(f, "a JSON {kind}, not an object"),
            LineError::UnknownKey(k) => write!(
                f,
                "unexpected top-level key {k:?} (the envelope allows only id, src, dest and body)"
            ),
            LineError::MissingKey(k) => write!(f, "missing {k:?}"),
            LineError::NotAString { key, found } => {
                write!(f, "{key:?} must be a string, not {found}")
            }
            LineError::BodyNotObject(kind) => write!(f, "\"body\" must be an object, not {kind}"),
            LineError::IdNotInteger(text) => write!(f, "\"id\" must be an integer, not {text}"),
            LineError::TooLong { limit } => write!(
                f,
                "a line longer than {} MiB, the most the runner reads",
                limit >> 20
            ),
        }
    }
}

/// A stdout line that failed validation, kept whole for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: String,
    pub reason: LineError,
}

impl BadLine {
    /// The line's first 200 characters, for messages (it may be megabytes long).
    pub fn excerpt(&self) -> String {
        shorten(&self.line, 200)
    }
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed message on STDOUT ({}): {}",
            self.reason,
            self.excerpt()
        )
    }
}

/// What the stdout reader hands on for each line.
pub type LineResult = Result<ParsedLine, BadLine>;

/// Validates one stdout line against Maelstrom's envelope schema (see the module docs).
///
/// Cost: one serde_json pass over the line that collects the top-level members as raw text, and
/// one over the body's top-level members for `type` and `in_reply_to`; values are not decoded
/// except `src`, `dest` and `type`. A line that is not a JSON object is parsed once more, to
/// report why.
pub fn parse_stdout_line(line: &str) -> Result<ParsedLine, LineError> {
    let text = line.trim_matches(is_json_ws);
    if text.is_empty() {
        return Err(LineError::Empty);
    }
    let Ok(Members(members)) = serde_json::from_str::<Members<'_>>(text) else {
        // Not an object, or not JSON: which one, with the JSON parser's message for the latter.
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Err(e) => LineError::NotJson(e.to_string()),
            Ok(_) => LineError::NotAnObject(json_kind(text)),
        });
    };
    let (mut src, mut dest, mut body) = (None, None, None);
    for (key, value) in members {
        let value = value.get();
        match decode_str(key.get()).as_deref() {
            Some("src") => src = Some(value),
            Some("dest") => dest = Some(value),
            Some("body") => body = Some(value),
            Some("id") => {
                if !is_integer_literal(value) {
                    return Err(LineError::IdNotInteger(shorten(value, 40)));
                }
            }
            Some(other) => return Err(LineError::UnknownKey(other.to_string())),
            // A key whose escapes do not decode (a lone surrogate): named as written.
            None => return Err(LineError::UnknownKey(key.get().to_string())),
        }
    }
    let src = string_field("src", src)?;
    let dest = string_field("dest", dest)?;
    let body = body.ok_or(LineError::MissingKey("body"))?;
    if !body.starts_with('{') {
        return Err(LineError::BodyNotObject(json_kind(body)));
    }
    let (mut body_type, mut in_reply_to) = (None, None);
    // The body is a valid JSON object (it was parsed as part of the line), so this cannot fail;
    // if it did, the body would simply have no `type` or `in_reply_to`.
    let body_members =
        serde_json::from_str::<Members<'_>>(body).map_or_else(|_| Vec::new(), |m| m.0);
    for (key, value) in body_members {
        let value = value.get();
        match decode_str(key.get()).as_deref() {
            Some("type") => body_type = value.starts_with('"').then(|| decode_str(value)).flatten(),
            Some("in_reply_to") => {
                in_reply_to = value.parse::<u64>().ok().filter(|_| is_digits(value))
            }
            _ => {}
        }
    }
    Ok(ParsedLine {
        src,
        dest,
        raw_body: body.to_string(),
        body_type: body_type.map(Cow::into_owned),
        in_reply_to,
    })
}

/// The top-level members of a JSON object, in document order, duplicates included: each key and
/// value as its JSON text (a key with its quotes), borrowed from the input. Deserialising
/// anything but an object fails.
struct Members<'a>(Vec<(&'a RawValue, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;

        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(4);
                while let Some(key) = map.next_key::<&'de RawValue>()? {
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor)
    }
}

fn string_field(key: &'static str, value: Option<&str>) -> Result<String, LineError> {
    let value = value.ok_or(LineError::MissingKey(key))?;
    if !value.starts_with('"') {
        return Err(LineError::NotAString {
            key,
            found: json_kind(value),
        });
    }
    decode_str(value)
        .map(Cow::into_owned)
        .ok_or(LineError::NotAString {
            key,
            found: "an undecodable string",
        })
}

fn is_json_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// JSON integer syntax: `-?digits` (no fraction, no exponent). Any size, as Clojure's `s/Int`.
fn is_integer_literal(s: &str) -> bool {
    is_digits(s.strip_prefix('-').unwrap_or(s))
}

/// The kind of a (valid) JSON value from its first character, for messages.
fn json_kind(value: &str) -> &'static str {
    match value.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Decodes a JSON string literal (with its quotes); borrows when there is no escape.
fn decode_str(quoted: &str) -> Option<Cow<'_, str>> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> ParsedLine {
        parse_stdout_line(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn bad(line: &str) -> LineError {
        match parse_stdout_line(line) {
            Ok(p) => panic!("{line} parsed: {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn well_formed_lines_parse() {
        let p =
            ok(r#"{"src":"n1","dest":"c2","body":{"type":"echo_ok","echo":"hi","in_reply_to":7}}"#);
        assert_eq!((p.src.as_str(), p.dest.as_str()), ("n1", "c2"));
        assert_eq!(
            p.raw_body,
            r#"{"type":"echo_ok","echo":"hi","in_reply_to":7}"#
        );
        assert_eq!(p.body_type.as_deref(), Some("echo_ok"));
        assert_eq!(p.in_reply_to, Some(7));

        // id is allowed (and ignored); whitespace, key order and escapes are the node's business.
        let p = ok(" { \"body\" : { \"x\" : {\"type\":\"inner\"} , \"type\" : \"g\\u006fssip\" } ,\"id\":-3, \"dest\":\"n\\u0032\", \"src\" : \"n1\" }\r");
        assert_eq!(p.dest, "n2");
        assert_eq!(p.body_type.as_deref(), Some("gossip"));
        assert_eq!(p.in_reply_to, None);
        assert_eq!(
            p.raw_body,
            "{ \"x\" : {\"type\":\"inner\"} , \"type\" : \"g\\u006fssip\" }"
        );

        // An escaped key is still the key it decodes to.
        assert_eq!(ok(r#"{"\u0073rc":"a","dest":"b","body":{}}"#).src, "a");
        // A body without type, strings containing braces and quotes.
        let p = ok(r#"{"src":"a","dest":"b","body":{"s":"}{\"]","type":1,"in_reply_to":5.0}}"#);
        assert_eq!((p.body_type, p.in_reply_to), (None, None));
        assert_eq!(p.raw_body, r#"{"s":"}{\"]","type":1,"in_reply_to":5.0}"#);
    }

    #[test]
    fn malformed_lines_are_classified() {
        assert_eq!(bad(""), LineError::Empty);
        assert_eq!(bad("   "), LineError::Empty);
        assert!(matches!(bad("hello"), LineError::NotJson(_)));
        assert!(matches!(
            bad(r#"{"src":"a","dest":"b","body":{}"#),
            LineError::NotJson(_)
        ));
        assert!(matches!(
            bad(r#"{"src":"a","dest":"b","body":{}} {}"#),
            LineError::NotJson(_)
        ));
        assert!(matches!(bad(r#"{"src":"a",}"#), LineError::NotJson(_)));
        assert_eq!(bad(r#"["src","dest"]"#), LineError::NotAnObject("an array"));
        assert_eq!(bad("42"), LineError::NotAnObject("a number"));
        assert_eq!(
            bad(r#"{"src":"a","dest":"b","body":{},"extra":1}"#),
            LineError::UnknownKey("extra".into())
        );
        assert_eq!(
            bad(r#"{"src":"a","dest":"b","body":[1]}"#),
            LineError::BodyNotObject("an array")
        );
        assert_eq!(
            bad(r#"{"src":"a","dest":"b","body":null}"#),
            LineError::BodyNotObject("null")
        );
        assert_eq!(
            bad(r#"{"src":"a","dest":"b","body":"x"}"#),
            LineError::BodyNotObject("a string")
        );
        assert_eq!(
            bad(r#"{"src":"a","body":{}}"#),
            LineError::MissingKey("dest")
        );
        assert_eq!(
            bad(r#"{"dest":"a","body":{}}"#),
            LineError::MissingKey("src")
        );
        assert_eq!(
            bad(r#"{"src":"a","dest":"b"}"#),
            LineError::MissingKey("body")
        );
        assert_eq!(bad("{}"), LineError::MissingKey("src"));
        assert_eq!(
            bad(r#"{"src":1,"dest":"b","body":{}}"#),
            LineError::NotAString {
                key: "src",
                found: "a number"
            }
        );
        assert_eq!(
            bad(r#"{"src":"a","dest":null,"body":{}}"#),
            LineError::NotAString {
                key: "dest",
                found: "null"
            }
        );
        assert_eq!(
            bad(r#"{"id":1.5,"src":"a","dest":"b","body":{}}"#),
            LineError::IdNotInteger("1.5".into())
        );
        assert_eq!(
            bad(r#"{"id":"1","src":"a","dest":"b","body":{}}"#),
            LineError::IdNotInteger("\"1\"".into())
        );
        assert!(matches!(
            bad(r#"{"id":1e3,"src":"a","dest":"b","body":{}}"#),
            LineError::IdNotInteger(_)
        ));
        let m = BadLine {
            line: "x".into(),
            reason: LineError::MissingKey("dest"),
        };
        assert!(m.to_string().contains("missing \"dest\""));
    }

    #[test]
    fn members_are_raw_text_in_document_order() {
        fn members(obj: &str) -> Option<Vec<(&str, &str)>> {
            let Members(m) = serde_json::from_str(obj).ok()?;
            Some(m.iter().map(|(k, v)| (k.get(), v.get())).collect())
        }
        let obj = r#"{"a":{"b":[1,{"c":"]}"}]},"d\"":"e\\","f":-1.5e3,"g":true}"#;
        assert_eq!(
            members(obj).unwrap(),
            [
                (r#""a""#, r#"{"b":[1,{"c":"]}"}]}"#),
                (r#""d\"""#, r#""e\\""#),
                (r#""f""#, "-1.5e3"),
                (r#""g""#, "true"),
            ]
        );
        // Whitespace around keys and values is not part of them; duplicates are all kept.
        assert_eq!(
            members("{ \"k\" :\t[ 1 ] , \"k\":2 }").unwrap(),
            [(r#""k""#, "[ 1 ]"), (r#""k""#, "2")]
        );
        assert_eq!(members("{}").unwrap(), []);
        assert_eq!(members("{ }").unwrap(), []);
        // Anything but a well-formed object is refused.
        for junk in [
            "{",
            "{\"",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":[",
            "{\"a\":\"\\",
            "{]",
            "[]",
            "1",
            "{\"a\":1} x",
        ] {
            assert_eq!(members(junk), None, "{junk}");
        }
    }

    #[test]
    fn duplicate_keys_the_last_one_wins() {
        let p = ok(
            r#"{"src":"a","dest":"b","body":{"type":"x"},"src":"c","body":{"type":"y","in_reply_to":1,"type":"z"}}"#,
        );
        assert_eq!((p.src.as_str(), p.dest.as_str()), ("c", "b"));
        assert_eq!(p.raw_body, r#"{"type":"y","in_reply_to":1,"type":"z"}"#);
        assert_eq!(
            (p.body_type.as_deref(), p.in_reply_to),
            (Some("z"), Some(1))
        );
        // A later duplicate of a bad value is still reported by it; of a good one, still read.
        assert_eq!(
            bad(r#"{"src":"a","dest":"b","body":{},"dest":1}"#),
            LineError::NotAString {
                key: "dest",
                found: "a number"
            }
        );
        let p = ok(r#"{"src":1,"dest":"b","body":[],"src":"a","body":{}}"#);
        assert_eq!((p.src.as_str(), p.raw_body.as_str()), ("a", "{}"));
        // The first offending member in document order is the reason.
        assert_eq!(
            bad(r#"{"x":1,"id":1.5,"src":"a","dest":"b","body":{}}"#),
            LineError::UnknownKey("x".into())
        );
        assert_eq!(
            bad(r#"{"id":1.5,"x":1,"src":"a","dest":"b","body":{}}"#),
            LineError::IdNotInteger("1.5".into())
        );
        // Any size of integer id.
        ok(r#"{"id":-123456789012345678901234567890,"src":"a","dest":"b","body":{}}"#);
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(line in ".{0,80}") {
            let _ = parse_stdout_line(&line);
        }

        #[test]
        fn valid_envelopes_round_trip(
            src in "[a-z0-9\"\\\\é]{1,6}",
            dest in "[a-z0-9]{1,6}",
            ty in proptest::option::of("[a-z_\"]{1,8}"),
            irt in proptest::option::of(0u64..u64::MAX),
            id in proptest::option::of(proptest::num::i64::ANY),
        ) {
            let mut body = serde_json::Map::new();
            body.insert("nested".into(), serde_json::json!({"type": "no", "x": ["}", "\""]}));
            if let Some(t) = &ty { body.insert("type".into(), t.clone().into()); }
            if let Some(r) = irt { body.insert("in_reply_to".into(), r.into()); }
            let mut env = serde_json::json!({"src": src, "dest": dest, "body": body});
            if let Some(id) = id { env["id"] = id.into(); }
            let line = env.to_string();
            let p = parse_stdout_line(&line).unwrap();
            proptest::prop_assert_eq!(&p.src, &src);
            proptest::prop_assert_eq!(&p.dest, &dest);
            proptest::prop_assert_eq!(&p.body_type, &ty);
            proptest::prop_assert_eq!(p.in_reply_to, irt);
            let reparsed: serde_json::Value = serde_json::from_str(&p.raw_body).unwrap();
            proptest::prop_assert_eq!(&reparsed, &env["body"]);
        }
    }
}

//! The echo workload checker (Maelstrom's `workload/echo.clj`).
//!
//! Every `echo` invocation is paired with its completion, whose value is the whole response body;
//! the body's `echo` must equal the invoked string. A `fail` or `info` completion, or none at all,
//! is therefore an error too, so any timeout makes the test invalid, as in Maelstrom. Errors use
//! Maelstrom's wording; only the first few are kept, with the total in `error-count`.

use serde::Serialize;
use serde_json::{json, Value};

use super::pairing::Pairing;
use super::{in_index_order, CheckResult, Validity};
use crate::history::{Op, OpType};

/// How many errors are listed.
const MAX_ERRORS: usize = 10;

/// The echo workload result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct EchoResult {
    #[serde(rename = "valid?")]
    pub valid: Validity,
    /// The first few errors, each a list like Maelstrom's
    /// `["Expected a message with :echo", sent, "But received", body]`.
    pub errors: Vec<Value>,
    /// All errors, including those not listed.
    pub error_count: usize,
}

impl CheckResult for EchoResult {
    fn validity(&self) -> Validity {
        self.valid
    }
}

/// Checks every echo invocation against its completion.
#[must_use]
pub fn check(history: &[Op]) -> EchoResult {
    let history = in_index_order(history);
    let pairing = Pairing::new(&history);
    let mut errors = Vec::new();
    let mut error_count = 0;
    for (pos, inv) in history.iter().enumerate() {
        if !inv.is_client() || inv.kind != OpType::Invoke || inv.f != "echo" {
            continue;
        }
        let expected = "Expected a message with :echo";
        let error = match pairing.completion(pos).and_then(|c| history.get(c)) {
            None => Some(json!([expected, inv.value, "But the op never completed"])),
            Some(done) if done.kind != OpType::Ok => Some(json!([
                expected,
                inv.value,
                "But the op completed as",
                done.kind,
                done.error
            ])),
            Some(done) if done.value.to_json().get("echo") != Some(&*inv.value.to_json()) => {
                Some(json!([expected, inv.value, "But received", done.value]))
            }
            Some(_) => None,
        };
        if let Some(error) = error {
            error_count += 1;
            if errors.len() < MAX_ERRORS {
                errors.push(error);
            }
        }
    }
    EchoResult {
        valid: (error_count == 0).into(),
        errors,
        error_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::H;
    use crate::history::OpType::*;

    #[test]
    fn matching_echoes_are_valid() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "echo", json!("Please echo 3"));
        h.c(1, Invoke, 1, "echo", json!("Please echo 9"));
        h.c(
            2,
            Ok,
            1,
            "echo",
            json!({"type": "echo_ok", "echo": "Please echo 9", "in_reply_to": 1}),
        );
        h.c(
            3,
            Ok,
            0,
            "echo",
            json!({"type": "echo_ok", "echo": "Please echo 3", "msg_id": 4}),
        );
        let r = check(&h.ops);
        assert_eq!(r.valid, Validity::True);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"valid?": true, "errors": [], "error-count": 0})
        );
    }

    #[test]
    fn a_mismatched_echo_is_an_error() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "echo", json!("Please echo 15"));
        h.c(
            1,
            Ok,
            0,
            "echo",
            json!({"type": "echo_ok", "echo": "not-right"}),
        );
        let r = check(&h.ops);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(
            r.errors,
            vec![json!([
                "Expected a message with :echo",
                "Please echo 15",
                "But received",
                {"type": "echo_ok", "echo": "not-right"}
            ])]
        );
    }

    #[test]
    fn a_missing_echo_key_or_a_non_object_body_is_an_error() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "echo", json!("x"));
        h.c(1, Ok, 0, "echo", json!({"type": "echo_ok"}));
        h.c(2, Invoke, 0, "echo", json!("y"));
        h.c(3, Ok, 0, "echo", json!("y"));
        assert_eq!(check(&h.ops).error_count, 2);
    }

    #[test]
    fn info_fail_and_unfinished_ops_are_errors() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "echo", json!("a"));
        h.c(1, Info, 0, "echo", json!("a")).error = Some(json!("net-timeout"));
        h.c(2, Invoke, 1, "echo", json!("b"));
        h.c(3, Fail, 1, "echo", json!("b"));
        h.c(4, Invoke, 2, "echo", json!("c"));
        h.nemesis(5, "start-partition");
        let r = check(&h.ops);
        assert_eq!(r.valid, Validity::False);
        assert_eq!(r.error_count, 3);
        assert_eq!(
            r.errors[0],
            json!([
                "Expected a message with :echo",
                "a",
                "But the op completed as",
                "info",
                "net-timeout"
            ])
        );
        assert_eq!(r.errors[1][3], json!("fail"));
        assert_eq!(
            r.errors[2],
            json!([
                "Expected a message with :echo",
                "c",
                "But the op never completed"
            ])
        );
    }

    #[test]
    fn only_the_first_errors_are_listed() {
        let mut h = H::new();
        for i in 0..25 {
            h.c(2 * i, Invoke, 0, "echo", json!(i));
            h.c(2 * i + 1, Ok, 0, "echo", json!({"echo": -1}));
        }
        let r = check(&h.ops);
        assert_eq!(r.error_count, 25);
        assert_eq!(r.errors.len(), MAX_ERRORS);
        assert_eq!(r.errors[0][1], json!(0));
    }
}

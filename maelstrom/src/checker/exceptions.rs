//! Jepsen's `unhandled-exceptions` checker (the `exceptions` key of Maelstrom's results).
//!
//! Groups the ops that carry an `exception` (e.g. a reply that broke the closed response schema)
//! by their message, most frequent first, with one example op each. Informational only: always
//! valid, as in Jepsen; the ops themselves already count as `info` or `fail` in `stats`.

use std::collections::HashMap;

use serde::Serialize;

use super::{CheckResult, Validity};
use crate::history::Op;

/// One group of identical exceptions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExceptionGroup {
    pub count: usize,
    /// The exception message (our ops carry a message, not a JVM class).
    pub class: String,
    /// The first op that raised it.
    pub example: Op,
}

/// The `exceptions` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exceptions {
    #[serde(rename = "valid?")]
    pub valid: Validity,
    /// Most frequent first; omitted when empty, as in Jepsen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionGroup>,
}

impl CheckResult for Exceptions {
    fn validity(&self) -> Validity {
        self.valid
    }
}

/// Groups the exceptions in `history`.
#[must_use]
pub fn check(history: &[Op]) -> Exceptions {
    let mut groups: Vec<ExceptionGroup> = Vec::new();
    let mut by_message: HashMap<&str, usize> = HashMap::new();
    for op in history {
        let Some(message) = op.exception.as_deref() else {
            continue;
        };
        if let Some(&i) = by_message.get(message) {
            groups[i].count += 1;
        } else {
            by_message.insert(message, groups.len());
            groups.push(ExceptionGroup {
                count: 1,
                class: message.to_owned(),
                example: op.clone(),
            });
        }
    }
    // Most frequent first; ties in order of first appearance (the sort is stable).
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    Exceptions {
        valid: Validity::True,
        exceptions: groups,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::checker::testkit::H;
    use crate::history::OpType::*;

    #[test]
    fn groups_by_message_most_frequent_first() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "read", Value::Null);
        h.c(1, Info, 0, "read", Value::Null).exception = Some("bad body".into());
        h.c(2, Invoke, 1, "read", Value::Null);
        h.c(3, Info, 1, "read", Value::Null).exception = Some("extra key".into());
        h.c(4, Invoke, 2, "read", Value::Null);
        h.c(5, Info, 2, "read", Value::Null).exception = Some("extra key".into());
        let e = check(&h.ops);
        assert_eq!(e.valid, Validity::True);
        let summary: Vec<(usize, &str, usize)> = e
            .exceptions
            .iter()
            .map(|g| (g.count, g.class.as_str(), g.example.index))
            .collect();
        assert_eq!(summary, vec![(2, "extra key", 3), (1, "bad body", 1)]);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["exceptions"][0]["count"], json!(2));
        assert_eq!(v["exceptions"][0]["example"]["type"], json!("info"));
    }

    #[test]
    fn no_exceptions_omits_the_list() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "read", Value::Null);
        h.c(1, Ok, 0, "read", json!([]));
        assert_eq!(
            serde_json::to_value(check(&h.ops)).unwrap(),
            json!({"valid?": true})
        );
    }
}

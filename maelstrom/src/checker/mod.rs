//! Checkers: pure functions from the recorded history and network journal to Maelstrom's
//! `results` keys, described in <https://github.com/jepsen-io/maelstrom/blob/main/doc/results.md>.
//!
//! Every checker takes plain data ([`Op`]s or [`JournalEvent`]s) and returns a serialisable
//! result whose JSON keys are Maelstrom's own (`valid?`, `stable-count`, `msgs-per-op`, …), so the
//! numbers compare directly with a real Maelstrom run. None of them does I/O or reads a clock,
//! except that [`linearizable`] checks its search budget's deadline, if it is given one.
//!
//! Reading order:
//! - [`Validity`]: Jepsen's three-valued `:valid?` and its "worst wins" combination.
//! - [`set_full`]: the broadcast and g-set workload checker.
//! - [`stats`], [`availability`], [`exceptions`]: the workload-independent checkers.
//! - [`echo`], [`unique_ids`], [`counter`] (g-counter and pn-counter), [`linearizable`] (lin-kv),
//!   [`kafka`], [`elle`] (txn-rw-register and txn-list-append): the other workloads' checkers.
//! - [`net`]: message counts from the network journal, plus our per-type and per-node
//!   breakdown.
//! - [`compose`] and [`part`]: assemble the top-level results object.
//!
//! Shared conventions: client ops are those with [`Process::Client`]; nemesis ops are ignored by
//! the client checkers. An invocation is paired with the next completion of the same process (each
//! process has at most one op outstanding). The history is processed in `index` order; a slice
//! that is not sorted is sorted first. JSON values compare with [`serde_json::Value`] equality,
//! which, like Clojure's, keeps `1` and `1.0` apart.

pub mod availability;
pub mod counter;
pub mod echo;
pub mod elle;
pub mod exceptions;
pub(crate) mod json;
pub mod kafka;
pub mod linearizable;
pub mod net;
mod pairing;
pub mod set_full;
pub mod stats;
pub mod unique_ids;
pub mod validity;

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

#[cfg(doc)]
use crate::history::{JournalEvent, Process};
use crate::history::{Op, OpType};

pub use availability::AvailabilityTarget;
pub use validity::Validity;

/// A checker result that knows its own `valid?`, so [`part`] can build a [`compose`] entry
/// without the caller repeating it.
pub trait CheckResult: Serialize {
    fn validity(&self) -> Validity;
}

/// Number of client invocations: every op with `type` invoke whose process is not the nemesis.
/// This is the denominator of `msgs-per-op`; ok, failed and indeterminate ops, final
/// reads and kafka `crash`/`assign` ops all count.
#[must_use]
pub fn op_count(history: &[Op]) -> usize {
    history
        .iter()
        .filter(|op| op.is_client() && op.kind == OpType::Invoke)
        .count()
}

/// Builds the top-level results object: `{"valid?": worst, name: part, …}`.
///
/// The overall `valid?` is the worst of the parts' validities, ranked false > unknown > true; with
/// no parts it is true. A part named `valid?` is ignored, since that key belongs to the
/// composition.
#[must_use]
pub fn compose(parts: Vec<(&str, Value, Validity)>) -> Value {
    let mut map = Map::new();
    let mut valid = Validity::True;
    for (name, value, validity) in parts {
        if name == "valid?" {
            continue;
        }
        valid = valid.worst(validity);
        map.insert(name.to_owned(), value);
    }
    map.insert("valid?".to_owned(), valid.to_json());
    Value::Object(map)
}

/// Turns a checker result into a [`compose`] entry. A result that cannot be serialised (which our
/// result types never are) becomes an [`error_result`], as a throwing Jepsen checker would.
pub fn part<'a, R: CheckResult>(name: &'a str, result: &R) -> (&'a str, Value, Validity) {
    match serde_json::to_value(result) {
        Ok(value) => (name, value, result.validity()),
        Err(e) => (name, error_result(e), Validity::Unknown),
    }
}

/// What Jepsen records for a checker that threw: `{"valid?": "unknown", "error": message}`.
/// For a caller whose checker could not run at all (e.g. an unreadable journal).
pub fn error_result(error: impl std::fmt::Display) -> Value {
    let mut map = Map::new();
    map.insert("valid?".to_owned(), Validity::Unknown.to_json());
    map.insert("error".to_owned(), Value::String(error.to_string()));
    Value::Object(map)
}

/// The history in `index` order. The driver records ops in order, so this borrows; an unsorted
/// slice (e.g. a hand-edited history) is copied and stably sorted rather than misjudged.
fn in_index_order(history: &[Op]) -> Cow<'_, [Op]> {
    if history.windows(2).all(|w| w[0].index <= w[1].index) {
        Cow::Borrowed(history)
    } else {
        let mut sorted = history.to_vec();
        sorted.sort_by_key(|op| op.index);
        Cow::Owned(sorted)
    }
}

/// Helpers for the checkers' unit tests: terse op builders.
#[cfg(test)]
pub(crate) mod testkit {
    use serde_json::Value;

    use crate::history::{Op, OpType, Process};

    /// Builds a history with consecutive indices; times are given explicitly (ns).
    #[derive(Default)]
    pub struct H {
        pub ops: Vec<Op>,
    }

    impl H {
        pub fn new() -> Self {
            Self::default()
        }

        pub fn op(
            &mut self,
            time: u64,
            kind: OpType,
            process: Process,
            f: &str,
            value: Value,
        ) -> &mut Op {
            let index = self.ops.len();
            self.ops.push(Op {
                index,
                time,
                kind,
                process,
                f: f.to_owned(),
                value: value.into(),
                error: None,
                exception: None,
                final_: false,
            });
            let last = self.ops.len() - 1;
            &mut self.ops[last]
        }

        /// A client op of process `p`.
        pub fn c(&mut self, time: u64, kind: OpType, p: u64, f: &str, value: Value) -> &mut Op {
            self.op(time, kind, Process::Client(p), f, value)
        }

        pub fn nemesis(&mut self, time: u64, f: &str) -> &mut Op {
            self.op(time, OpType::Info, Process::Nemesis, f, Value::Null)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testkit::H;
    use super::*;
    use crate::history::OpType::*;

    #[test]
    fn op_count_counts_client_invocations_only() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "read", Value::Null);
        h.nemesis(1, "start-partition");
        h.c(2, Fail, 0, "read", Value::Null);
        h.c(3, Invoke, 1, "broadcast", json!(1));
        h.c(4, Info, 1, "broadcast", json!(1));
        h.c(5, Invoke, 0, "read", Value::Null).final_ = true;
        h.op(
            6,
            Invoke,
            crate::history::Process::Nemesis,
            "kill",
            Value::Null,
        );
        assert_eq!(op_count(&h.ops), 3);
    }

    #[test]
    fn compose_takes_the_worst_validity() {
        let all_true = compose(vec![
            ("a", json!({"valid?": true}), Validity::True),
            ("b", json!({"valid?": true}), Validity::True),
        ]);
        assert_eq!(all_true["valid?"], json!(true));
        assert_eq!(all_true["a"], json!({"valid?": true}));

        let unknown = compose(vec![
            ("a", json!({}), Validity::True),
            ("b", json!({}), Validity::Unknown),
        ]);
        assert_eq!(unknown["valid?"], json!("unknown"));

        let invalid = compose(vec![
            ("a", json!({}), Validity::False),
            ("b", json!({}), Validity::Unknown),
            ("c", json!({}), Validity::True),
        ]);
        assert_eq!(invalid["valid?"], json!(false));

        assert_eq!(compose(vec![]), json!({"valid?": true}));
    }

    #[test]
    fn part_uses_the_results_own_validity() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "read", Value::Null);
        h.c(1, Fail, 0, "read", Value::Null);
        let stats = stats::check(&h.ops);
        let (name, value, valid) = part("stats", &stats);
        assert_eq!(name, "stats");
        assert_eq!(valid, Validity::False);
        assert_eq!(value["valid?"], json!(false));
        let top = compose(vec![(name, value, valid)]);
        assert_eq!(top["valid?"], json!(false));
    }

    #[test]
    fn error_result_is_unknown() {
        assert_eq!(
            error_result("journal unreadable"),
            json!({"valid?": "unknown", "error": "journal unreadable"})
        );
    }

    #[test]
    fn unsorted_history_is_sorted_by_index() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "read", Value::Null);
        h.c(1, Ok, 0, "read", json!([]));
        let mut ops = h.ops.clone();
        ops.reverse();
        assert!(matches!(in_index_order(&h.ops), Cow::Borrowed(_)));
        let sorted = in_index_order(&ops);
        assert_eq!(sorted.iter().map(|o| o.index).collect::<Vec<_>>(), [0, 1]);
    }
}

//! Jepsen's `stats` checker, as wrapped by Maelstrom's kafka stats checker (the `stats` key of
//! <https://github.com/jepsen-io/maelstrom/blob/main/doc/results.md>).
//!
//! Counts client *completions* (invocations and nemesis ops are skipped): `count`, `ok-count`,
//! `fail-count`, `info-count`, overall and per `f` in `by-f`. Each `f` is valid when it had at
//! least one `ok`; the whole is valid when every `f` is, except `crash` and
//! `debug-topic-partitions`, which are expected never to succeed. A test in which, say, every
//! broadcast timed out therefore fails here even if the workload checker is satisfied.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{CheckResult, Validity};
use crate::history::{Op, OpType};

/// The `f`s whose lack of `ok` completions does not invalidate the test.
const IGNORED_FS: [&str; 2] = ["crash", "debug-topic-partitions"];

/// Counts for one `f`, or for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Counts {
    /// At least one `ok` completion.
    #[serde(rename = "valid?")]
    pub valid: bool,
    pub count: usize,
    pub ok_count: usize,
    pub fail_count: usize,
    pub info_count: usize,
}

impl Counts {
    fn add(&mut self, kind: OpType) {
        self.count += 1;
        match kind {
            OpType::Ok => self.ok_count += 1,
            OpType::Fail => self.fail_count += 1,
            OpType::Info => self.info_count += 1,
            OpType::Invoke => {}
        }
        self.valid = self.ok_count > 0;
    }
}

/// The `stats` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Stats {
    #[serde(rename = "valid?")]
    pub valid: Validity,
    pub count: usize,
    pub ok_count: usize,
    pub fail_count: usize,
    pub info_count: usize,
    /// Per `f`, sorted by name.
    pub by_f: BTreeMap<String, Counts>,
}

impl CheckResult for Stats {
    fn validity(&self) -> Validity {
        self.valid
    }
}

/// Counts the client completions of `history`.
#[must_use]
pub fn check(history: &[Op]) -> Stats {
    let mut all = Counts::default();
    let mut by_f: BTreeMap<String, Counts> = BTreeMap::new();
    for op in history {
        if !op.is_client() || op.kind == OpType::Invoke {
            continue;
        }
        all.add(op.kind);
        if let Some(c) = by_f.get_mut(op.f.as_str()) {
            c.add(op.kind);
        } else {
            let mut c = Counts::default();
            c.add(op.kind);
            by_f.insert(op.f.clone(), c);
        }
    }
    let valid = by_f
        .iter()
        .filter(|(f, _)| !IGNORED_FS.contains(&f.as_str()))
        .all(|(_, c)| c.valid);
    Stats {
        valid: valid.into(),
        count: all.count,
        ok_count: all.ok_count,
        fail_count: all.fail_count,
        info_count: all.info_count,
        by_f,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::checker::testkit::H;
    use crate::history::OpType::*;

    #[test]
    fn counts_completions_per_f() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "broadcast", json!(0));
        h.c(1, Ok, 0, "broadcast", json!(0));
        h.c(2, Invoke, 0, "broadcast", json!(1));
        h.c(3, Info, 0, "broadcast", json!(1));
        h.c(4, Invoke, 1, "read", Value::Null);
        h.c(5, Fail, 1, "read", Value::Null);
        h.c(6, Invoke, 1, "read", Value::Null);
        h.c(7, Ok, 1, "read", json!([0]));
        h.nemesis(8, "start-partition");
        h.nemesis(9, "start-partition");
        let s = check(&h.ops);
        assert_eq!(s.valid, Validity::True);
        assert_eq!(
            (s.count, s.ok_count, s.fail_count, s.info_count),
            (4, 2, 1, 1)
        );
        assert_eq!(
            s.by_f["broadcast"],
            Counts {
                valid: true,
                count: 2,
                ok_count: 1,
                fail_count: 0,
                info_count: 1
            }
        );
        assert!(!s.by_f.contains_key("start-partition"));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["by-f"]["read"],
            json!({"valid?": true, "count": 2, "ok-count": 1, "fail-count": 1, "info-count": 0})
        );
        assert_eq!(v["valid?"], json!(true));
        assert_eq!(v["ok-count"], json!(2));
    }

    #[test]
    fn an_f_with_zero_oks_is_invalid() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "broadcast", json!(0));
        h.c(1, Info, 0, "broadcast", json!(0));
        h.c(2, Invoke, 1, "read", Value::Null);
        h.c(3, Ok, 1, "read", json!([]));
        let s = check(&h.ops);
        assert_eq!(s.valid, Validity::False);
        assert!(!s.by_f["broadcast"].valid);
        assert!(s.by_f["read"].valid);
    }

    #[test]
    fn crash_and_debug_ops_do_not_invalidate() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "crash", Value::Null);
        h.c(1, Info, 0, "crash", Value::Null);
        h.c(2, Invoke, 1, "debug-topic-partitions", Value::Null);
        h.c(3, Fail, 1, "debug-topic-partitions", Value::Null);
        h.c(4, Invoke, 2, "poll", Value::Null);
        h.c(5, Ok, 2, "poll", json!({}));
        let s = check(&h.ops);
        assert_eq!(s.valid, Validity::True);
        // The per-f entry still reports its own failure, as in Maelstrom's results.
        assert!(!s.by_f["crash"].valid);
    }

    #[test]
    fn empty_history_is_valid() {
        let s = check(&[]);
        assert_eq!(s.valid, Validity::True);
        assert_eq!(s.count, 0);
        assert_eq!(serde_json::to_value(&s).unwrap()["by-f"], json!({}));
    }
}

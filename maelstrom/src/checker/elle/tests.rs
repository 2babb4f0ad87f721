//! The checker against planted anomalies (one small history per anomaly type, each flagged with
//! its name and judged by the models), correct histories, and a property: whatever a
//! single-threaded reference store (one lock around a map) answers to concurrent clients is
//! strict-serializable, so the checker must always pass it.

use super::*;
use crate::history::OpType;
use crate::workload::txn::{TxnGen, TxnKind, TxnOpts};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MS: u64 = 1_000_000;

/// One transaction of a hand-written history: process, invocation and completion times (ms),
/// outcome, and its micro-ops as completed (reads filled in; the invocation has `null`s).
struct T {
    p: u64,
    at: (u64, u64),
    outcome: OpType,
    mops: Value,
}

fn t(p: u64, at: (u64, u64), mops: Value) -> T {
    T {
        p,
        at,
        outcome: OpType::Ok,
        mops,
    }
}

fn failed(p: u64, at: (u64, u64), mops: Value) -> T {
    T {
        outcome: OpType::Fail,
        ..t(p, at, mops)
    }
}

/// The invocation's micro-ops: the completion's with every read's value `null`.
fn invoked(mops: &Value) -> Value {
    let blank = |m: &Value| match m.get(0).and_then(Value::as_str) {
        Some("r") => json!(["r", m[1], null]),
        _ => m.clone(),
    };
    Value::Array(
        mops.as_array()
            .map_or(vec![], |a| a.iter().map(blank).collect()),
    )
}

/// The history of `txns`: invocations and completions in time order (an `info` completion is
/// left out, as for a client that never heard back).
fn history(txns: &[T]) -> Vec<Op> {
    let mut events: Vec<(u64, usize, OpType, u64, Value)> = Vec::new();
    for (i, x) in txns.iter().enumerate() {
        events.push((x.at.0 * MS, i, OpType::Invoke, x.p, invoked(&x.mops)));
        let done = match x.outcome {
            OpType::Ok => x.mops.clone(),
            OpType::Info => continue,
            _ => invoked(&x.mops),
        };
        events.push((x.at.1 * MS, i, x.outcome, x.p, done));
    }
    events.sort_by_key(|e| (e.0, e.2 != OpType::Invoke, e.1));
    events
        .into_iter()
        .enumerate()
        .map(|(i, (time, _, kind, p, v))| Op::new(i, time, kind, Process::Client(p), "txn", v))
        .collect()
}

fn models(s: &str) -> Models {
    Models::parse(s).unwrap()
}

fn rw(txns: &[T], m: &str) -> ElleResult {
    check_rw_register(&history(txns), models(m))
}

fn la(txns: &[T], m: &str) -> ElleResult {
    check_list_append(&history(txns), models(m))
}

/// Asserts `r` is invalid and reports `anomaly`.
#[track_caller]
fn flags(r: &ElleResult, anomaly: &str) {
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(r.validity, Validity::False, "{json}");
    assert!(
        r.anomaly_types().iter().any(|t| t == anomaly),
        "expected {anomaly}: {json}"
    );
    assert!(
        json["anomalies"][anomaly]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{json}"
    );
}

/// Asserts `r` does not report `anomaly` (it may report others, such as an empty graph).
#[track_caller]
fn allows(r: &ElleResult, anomaly: &str) {
    assert!(
        !r.anomaly_types().iter().any(|t| t == anomaly),
        "{anomaly} reported"
    );
}

#[track_caller]
fn passes(r: &ElleResult) {
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(r.validity, Validity::True, "{json}");
    assert_eq!(json, json!({"valid?": true}));
}

#[test]
fn models_parse_and_imply() {
    assert_eq!(
        models("read-committed , serializable").to_string(),
        "read-committed,serializable"
    );
    assert!(Models::parse("").is_err());
    assert!(Models::parse("snapshot-isolation").is_err());
    let ru = Model::ReadUncommitted;
    let ss = Model::StrictSerializable;
    assert!(ru.prohibits("G0") && !ru.prohibits("G1c") && !ru.prohibits("G0-realtime"));
    assert!(Model::ReadCommitted.prohibits("G1a") && !Model::ReadCommitted.prohibits("G2-item"));
    assert!(Model::Serializable.prohibits("internal"));
    assert!(!Model::Serializable.prohibits("G-single-item-realtime"));
    assert!(ss.prohibits("G-single-item-realtime") && ss.prohibits("G0-process"));
    assert!(!ss.prohibits("empty-transaction-graph"));
}

#[test]
fn rw_register_serial_history_passes() {
    let h = [
        t(0, (0, 1), json!([["w", 1, 1], ["r", 2, null]])),
        t(1, (2, 3), json!([["r", 1, 1], ["w", 1, 2], ["w", 2, 1]])),
        t(0, (4, 5), json!([["r", 1, 2], ["r", 2, 1]])),
    ];
    passes(&rw(&h, "strict-serializable"));
}

#[test]
fn rw_register_g0() {
    // T0 wrote x=1 then T1 read it and wrote 2 (x: 1 < 2, T0 ww T1); on y the other way round.
    let h = [
        t(
            0,
            (0, 10),
            json!([["r", "y", 2], ["w", "y", 1], ["w", "x", 1]]),
        ),
        t(
            1,
            (0, 10),
            json!([["r", "x", 1], ["w", "x", 2], ["w", "y", 2]]),
        ),
    ];
    let r = rw(&h, "read-uncommitted");
    flags(&r, "G0");
    assert_eq!(
        serde_json::to_value(&r).unwrap()["not"],
        json!(["read-uncommitted"])
    );
}

#[test]
fn rw_register_g1c_only_matters_from_read_committed() {
    // Each reads the other's write: wr both ways.
    let h = [
        t(0, (0, 10), json!([["w", "x", 1], ["r", "y", 1]])),
        t(1, (0, 10), json!([["w", "y", 1], ["r", "x", 1]])),
    ];
    passes(&rw(&h, "read-uncommitted"));
    flags(&rw(&h, "read-committed"), "G1c");
}

#[test]
fn rw_register_g_single_is_read_skew() {
    // T1 sees T0's y but not its x.
    let h = [
        t(0, (0, 10), json!([["w", "x", 1], ["w", "y", 1]])),
        t(1, (0, 10), json!([["r", "x", null], ["r", "y", 1]])),
    ];
    passes(&rw(&h, "read-committed"));
    flags(&rw(&h, "serializable"), "G-single-item");
}

#[test]
fn rw_register_g2_is_write_skew() {
    let h = [
        t(0, (0, 10), json!([["r", "x", null], ["w", "y", 1]])),
        t(1, (0, 10), json!([["r", "y", null], ["w", "x", 1]])),
    ];
    passes(&rw(&h, "read-committed"));
    flags(&rw(&h, "serializable"), "G2-item");
}

#[test]
fn rw_register_g_nonadjacent() {
    // T0 -rw(x)-> T1 -wr(y)-> T2 -rw(z)-> T3 -wr(v)-> T0.
    let h = [
        t(0, (0, 10), json!([["r", "x", null], ["r", "v", 1]])),
        t(1, (0, 10), json!([["w", "x", 1], ["w", "y", 1]])),
        t(2, (0, 10), json!([["r", "y", 1], ["r", "z", null]])),
        t(3, (0, 10), json!([["w", "z", 1], ["w", "v", 1]])),
    ];
    flags(&rw(&h, "serializable"), "G-nonadjacent-item");
}

#[test]
fn rw_register_stale_read_is_a_realtime_anomaly() {
    // T1 starts after T0 finished, and reads the state before T0's write.
    let h = [
        t(0, (0, 1), json!([["w", "x", 1]])),
        t(1, (2, 3), json!([["r", "x", null]])),
    ];
    passes(&rw(&h, "serializable"));
    flags(&rw(&h, "strict-serializable"), "G-single-item-realtime");
    // The same, concurrent: fine.
    let h = [
        t(0, (0, 3), json!([["w", "x", 1]])),
        t(1, (1, 2), json!([["r", "x", null]])),
    ];
    passes(&rw(&h, "strict-serializable"));
}

/// An `info` transaction (its client never heard back) that wrote what an earlier, completed
/// transaction read: that read came from the future. Elle's realtime graph has edges into `info`
/// transactions, so the cycle (wr, then realtime) is found.
#[test]
fn rw_register_read_from_a_later_info_write_is_a_realtime_cycle() {
    let h = [
        t(0, (0, 1), json!([["r", "x", 1]])),
        T {
            outcome: OpType::Info,
            ..t(1, (2, 3), json!([["w", "x", 1]]))
        },
    ];
    passes(&rw(&h, "serializable"));
    flags(&rw(&h, "strict-serializable"), "G1c-realtime");
    // Concurrent: the write may well have happened first.
    let h = [
        t(0, (1, 3), json!([["r", "x", 1]])),
        T {
            outcome: OpType::Info,
            ..t(1, (0, 2), json!([["w", "x", 1]]))
        },
    ];
    passes(&rw(&h, "strict-serializable"));
}

#[test]
fn rw_register_process_order() {
    // One process reads x=1, then (later txn) reads null: its own order forbids that.
    let h = [
        t(0, (0, 5), json!([["w", "x", 1]])),
        t(1, (1, 2), json!([["r", "x", 1]])),
        t(1, (3, 4), json!([["r", "x", null]])),
    ];
    passes(&rw(&h, "serializable"));
    let r = rw(&h, "strict-serializable");
    assert_eq!(r.validity, Validity::False);
    assert!(
        r.anomaly_types()
            .iter()
            .any(|t| t.ends_with("-process") || t.ends_with("-realtime")),
        "{:?}",
        r.anomaly_types()
    );
}

#[test]
fn rw_register_aborted_and_intermediate_reads() {
    let g1a = [
        failed(0, (0, 1), json!([["w", "x", 1]])),
        t(1, (2, 3), json!([["r", "x", 1]])),
    ];
    allows(&rw(&g1a, "read-uncommitted"), "G1a");
    flags(&rw(&g1a, "read-committed"), "G1a");
    let g1b = [
        t(0, (0, 10), json!([["w", "x", 1], ["w", "x", 2]])),
        t(1, (0, 10), json!([["r", "x", 1]])),
    ];
    flags(&rw(&g1b, "read-committed"), "G1b");
}

#[test]
fn rw_register_internal_and_cyclic_versions() {
    let internal = [t(0, (0, 1), json!([["w", "x", 1], ["r", "x", 2]]))];
    allows(&rw(&internal, "read-committed"), "internal");
    flags(&rw(&internal, "serializable"), "internal");
    let cyclic = [
        t(0, (0, 10), json!([["r", "x", 1], ["w", "x", 2]])),
        t(1, (0, 10), json!([["r", "x", 2], ["w", "x", 1]])),
    ];
    flags(&rw(&cyclic, "read-uncommitted"), "cyclic-versions");
}

#[test]
fn rw_register_empty_graph_is_invalid_as_in_maelstrom() {
    let r = rw(
        &[t(0, (0, 1), json!([["r", "x", null]]))],
        "read-uncommitted",
    );
    flags(&r, "empty-transaction-graph");
    // list-append keeps Elle's verdict: unknown.
    let r = la(
        &[t(0, (0, 1), json!([["r", "x", null]]))],
        "read-uncommitted",
    );
    assert_eq!(r.validity, Validity::Unknown);
}

#[test]
fn list_append_serial_history_passes() {
    let h = [
        t(0, (0, 1), json!([["append", 1, 1], ["r", 2, null]])),
        t(
            1,
            (2, 3),
            json!([["r", 1, [1]], ["append", 1, 2], ["append", 2, 1]]),
        ),
        t(
            0,
            (4, 5),
            json!([
                ["r", 1, [1, 2]],
                ["r", 2, [1]],
                ["append", 2, 2],
                ["r", 2, [1, 2]]
            ]),
        ),
    ];
    passes(&la(&h, "strict-serializable"));
}

#[test]
fn list_append_cycles() {
    // G0: x shows T0's append before T1's, y the reverse.
    let g0 = [
        t(0, (0, 10), json!([["append", "x", 1], ["append", "y", 2]])),
        t(1, (0, 10), json!([["append", "x", 2], ["append", "y", 1]])),
        t(2, (11, 12), json!([["r", "x", [1, 2]], ["r", "y", [1, 2]]])),
    ];
    flags(&la(&g0, "read-uncommitted"), "G0");
    // G1c: each reads the other's append.
    let g1c = [
        t(0, (0, 10), json!([["append", "x", 1], ["r", "y", [1]]])),
        t(1, (0, 10), json!([["append", "y", 1], ["r", "x", [1]]])),
    ];
    passes(&la(&g1c, "read-uncommitted"));
    flags(&la(&g1c, "read-committed"), "G1c");
    // Read skew and write skew.
    let single = [
        t(0, (0, 10), json!([["append", "x", 1], ["append", "y", 1]])),
        t(1, (0, 10), json!([["r", "x", null], ["r", "y", [1]]])),
        t(2, (11, 12), json!([["r", "x", [1]]])),
    ];
    flags(&la(&single, "serializable"), "G-single-item");
    let g2 = [
        t(0, (0, 10), json!([["r", "x", null], ["append", "y", 1]])),
        t(1, (0, 10), json!([["r", "y", null], ["append", "x", 1]])),
        t(2, (11, 12), json!([["r", "x", [1]], ["r", "y", [1]]])),
    ];
    passes(&la(&g2, "read-committed"));
    flags(&la(&g2, "serializable"), "G2-item");
    // A stale read after the append completed.
    let stale = [
        t(0, (0, 1), json!([["append", "x", 1]])),
        t(1, (2, 3), json!([["r", "x", null]])),
        t(1, (4, 5), json!([["r", "x", [1]]])),
    ];
    passes(&la(&stale, "serializable"));
    flags(&la(&stale, "strict-serializable"), "G-single-item-realtime");
}

#[test]
fn list_append_non_cycle_anomalies() {
    let dup = [
        t(0, (0, 1), json!([["append", "x", 1]])),
        t(1, (2, 3), json!([["r", "x", [1, 1]]])),
    ];
    flags(&la(&dup, "read-uncommitted"), "duplicate-elements");
    let incompatible = [
        t(0, (0, 1), json!([["append", "x", 1]])),
        t(1, (0, 1), json!([["append", "x", 2]])),
        t(2, (2, 3), json!([["r", "x", [1, 2]]])),
        t(3, (2, 3), json!([["r", "x", [2, 1]]])),
    ];
    passes(&la(&incompatible, "read-uncommitted"));
    flags(&la(&incompatible, "read-committed"), "incompatible-order");
    let g1a = [
        failed(0, (0, 1), json!([["append", "x", 1]])),
        t(1, (2, 3), json!([["r", "x", [1]]])),
    ];
    flags(&la(&g1a, "read-committed"), "G1a");
    let g1b = [
        t(0, (0, 10), json!([["append", "x", 1], ["append", "x", 2]])),
        t(1, (0, 10), json!([["r", "x", [1]]])),
        t(2, (11, 12), json!([["r", "x", [1, 2]]])),
    ];
    flags(&la(&g1b, "read-committed"), "G1b");
    let internal = [t(0, (0, 1), json!([["append", "x", 1], ["r", "x", [2]]]))];
    allows(&la(&internal, "read-committed"), "internal");
    flags(&la(&internal, "serializable"), "internal");
}

fn info(p: u64, at: (u64, u64), mops: Value) -> T {
    T {
        outcome: OpType::Info,
        ..t(p, at, mops)
    }
}

#[test]
fn new_anomalies_are_judged_by_elles_implications() {
    for m in Model::ALL {
        let rc = m >= Model::ReadCommitted;
        assert_eq!(m.prohibits("dirty-update"), rc, "{m:?}");
        assert_eq!(m.prohibits("future-read"), rc, "{m:?}");
        assert_eq!(
            m.prohibits("lost-update"),
            m >= Model::Serializable,
            "{m:?}"
        );
        assert!(!m.prohibits("lost-update-realtime"));
    }
}

#[test]
fn rw_register_lost_update() {
    // Both read x = 1 (T0's) and overwrote it.
    let h = [
        t(0, (0, 1), json!([["w", "x", 1]])),
        t(1, (2, 10), json!([["r", "x", 1], ["w", "x", 2]])),
        t(2, (2, 10), json!([["r", "x", 1], ["w", "x", 3]])),
    ];
    let r = rw(&h, "read-committed");
    allows(&r, "lost-update");
    let r = rw(&h, "serializable");
    flags(&r, "lost-update");
    let json = serde_json::to_value(&r).unwrap();
    let case = &json["anomalies"]["lost-update"][0];
    assert_eq!(case["key"], json!("x"));
    assert_eq!(case["value"], json!(1));
    assert_eq!(case["txns"].as_array().map(Vec::len), Some(2), "{case}");
    assert_eq!(json["not"], json!(["serializable"]));
    assert_eq!(json["also-not"], json!(["strict-serializable"]));
    // Near misses: both read x = 1 but only one writes x; and both read and wrote x, but one
    // of them did not commit.
    let one_writer = [
        t(0, (0, 1), json!([["w", "x", 1]])),
        t(1, (2, 10), json!([["r", "x", 1], ["w", "x", 2]])),
        t(2, (2, 10), json!([["r", "x", 1], ["w", "y", 1]])),
    ];
    passes(&rw(&one_writer, "strict-serializable"));
    let one_failed = [
        t(0, (0, 1), json!([["w", "x", 1]])),
        t(1, (2, 10), json!([["r", "x", 1], ["w", "x", 2]])),
        failed(2, (2, 10), json!([["r", "x", 1], ["w", "x", 3]])),
    ];
    passes(&rw(&one_failed, "strict-serializable"));
}

#[test]
fn list_append_lost_update() {
    // Both read [1] and appended to x; nothing read x after, so no order says which came first
    // and the graph has no cycle: lost-update alone makes it invalid.
    let h = [
        t(0, (0, 1), json!([["append", "x", 1]])),
        t(1, (2, 10), json!([["r", "x", [1]], ["append", "x", 2]])),
        t(2, (2, 10), json!([["r", "x", [1]], ["append", "x", 3]])),
    ];
    passes(&la(&h, "read-committed"));
    let r = la(&h, "serializable");
    flags(&r, "lost-update");
    assert_eq!(r.anomaly_types(), ["lost-update"]);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["anomalies"]["lost-update"][0]["value"], json!([1]));
    // Both saw the empty list (`null`): the same.
    let h = [
        t(0, (0, 10), json!([["r", "x", null], ["append", "x", 1]])),
        t(1, (0, 10), json!([["r", "x", null], ["append", "x", 2]])),
    ];
    flags(&la(&h, "serializable"), "lost-update");
    // Near misses: the same read, one appender; and a second appender left `info`.
    let one_appender = [
        t(0, (0, 1), json!([["append", "x", 1]])),
        t(1, (2, 10), json!([["r", "x", [1]], ["append", "x", 2]])),
        t(2, (2, 10), json!([["r", "x", [1]], ["append", "y", 1]])),
    ];
    passes(&la(&one_appender, "strict-serializable"));
    let one_info = [
        t(0, (0, 1), json!([["append", "x", 1]])),
        t(1, (2, 10), json!([["r", "x", [1]], ["append", "x", 2]])),
        info(2, (2, 10), json!([["r", "x", [1]], ["append", "x", 3]])),
    ];
    passes(&la(&one_info, "strict-serializable"));
}

/// A read of an element no transaction appended: Elle's check fails on it and Jepsen reports the
/// history unknown, so it is reported and the verdict is unknown, not valid.
#[test]
fn list_append_read_of_an_unwritten_element_is_unknown() {
    let h = [
        t(0, (0, 1), json!([["append", "x", 1]])),
        t(1, (2, 3), json!([["r", "x", [1, 7]]])),
    ];
    let r = la(&h, "strict-serializable");
    assert_eq!(r.validity, Validity::Unknown);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["anomalies"]["unwritten-element"],
        json!([{"key": "x", "element": 7}]),
        "{json}"
    );
}

#[test]
fn list_append_dirty_update() {
    // T1's append of 2 landed after T0's failed append of 1.
    let h = [
        failed(0, (0, 1), json!([["append", "x", 1]])),
        t(1, (2, 3), json!([["append", "x", 2]])),
        t(2, (4, 5), json!([["r", "x", [1, 2]]])),
    ];
    allows(&la(&h, "read-uncommitted"), "dirty-update");
    let r = la(&h, "read-committed");
    flags(&r, "dirty-update");
    let json = serde_json::to_value(&r).unwrap();
    let case = &json["anomalies"]["dirty-update"][0];
    assert_eq!(case["key"], json!("x"));
    assert_eq!(case["values"], json!([1, 2]));
    assert_eq!(case["txns"][1], json!("..."));
    assert_eq!(case["txns"][0]["type"], json!("fail"), "{case}");
    assert_eq!(case["txns"][2]["type"], json!("ok"), "{case}");
    // Failed, failed, info, then ok: one case covering all four elements, from the first failed.
    let h = [
        failed(0, (0, 1), json!([["append", "x", 1]])),
        failed(1, (0, 1), json!([["append", "x", 2]])),
        info(2, (0, 3), json!([["append", "x", 3]])),
        t(3, (4, 5), json!([["append", "x", 4]])),
        t(4, (6, 7), json!([["r", "x", [1, 2, 3, 4]]])),
    ];
    let json = serde_json::to_value(la(&h, "read-committed")).unwrap();
    let cases = &json["anomalies"]["dirty-update"];
    assert_eq!(cases.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(cases[0]["values"], json!([1, 2, 3, 4]));
    assert_eq!(cases[0]["txns"][0]["value"], json!([["append", "x", 1]]));
    // Near misses: a failed append followed by an info one, or by nothing; an ok one followed
    // by an info one and then an ok one. (The read of the failed element is G1a all the same.)
    let h = [
        failed(0, (0, 1), json!([["append", "x", 1]])),
        info(1, (2, 3), json!([["append", "x", 2]])),
        t(2, (4, 5), json!([["r", "x", [1, 2]]])),
    ];
    let r = la(&h, "read-committed");
    flags(&r, "G1a");
    allows(&r, "dirty-update");
    let h = [
        t(0, (0, 1), json!([["append", "x", 1]])),
        info(1, (2, 3), json!([["append", "x", 2]])),
        t(2, (4, 5), json!([["append", "x", 3]])),
        t(3, (6, 7), json!([["r", "x", [1, 2, 3]]])),
    ];
    passes(&la(&h, "strict-serializable"));
}

#[test]
fn list_append_future_read() {
    // T0 saw its own append before making it. `internal` has nothing to say (no earlier read or
    // append of x in T0), and the wr edge would be a self-edge: only future-read catches it.
    let h = [
        t(0, (0, 1), json!([["r", "x", [1]], ["append", "x", 1]])),
        t(1, (2, 3), json!([["r", "x", [1]]])),
    ];
    passes(&la(&h, "read-uncommitted"));
    let r = la(&h, "read-committed");
    flags(&r, "future-read");
    allows(&r, "internal");
    let json = serde_json::to_value(&r).unwrap();
    let case = &json["anomalies"]["future-read"][0];
    assert_eq!(case["mop"], json!(["r", "x", [1]]));
    assert_eq!(case["element"], json!(1));
    assert_eq!(json["not"], json!(["read-committed"]));
    // Near misses: reading one's own append after making it; reading another's element, then
    // appending a different one.
    let h = [
        t(0, (0, 1), json!([["append", "x", 1], ["r", "x", [1]]])),
        t(1, (2, 3), json!([["r", "x", [1]], ["append", "x", 2]])),
        t(2, (4, 5), json!([["r", "x", [1, 2]]])),
    ];
    passes(&la(&h, "strict-serializable"));
}

/// A history from `clients` concurrent processes against one map behind one lock: each
/// transaction takes effect at one instant between its invocation and its completion, so the
/// history is strict-serializable. Some transactions fail (not applied), some are left `info`
/// (applied or not, at random).
fn reference_history(kind: TxnKind, seed: u64, clients: usize, txns: usize) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut gen = TxnGen::new(TxnOpts {
        key_count: rng.random_range(1..6),
        max_txn_length: rng.random_range(1..6),
        max_writes_per_key: rng.random_range(1..10),
        ..TxnOpts::default()
    });
    let mut store: HashMap<Value, Value> = HashMap::new();
    // Per client: the open transaction (invocation value, result once applied, fate).
    let mut open: Vec<Option<(Value, Option<Value>, OpType)>> = vec![None; clients];
    let mut history = Vec::new();
    let mut started = 0;
    let mut now = 0u64;
    let mut process: Vec<u64> = (0..clients as u64).collect();
    while started < txns || open.iter().any(Option::is_some) {
        now += MS;
        let c = rng.random_range(0..clients);
        let p = Process::Client(process[c]);
        match open[c].take() {
            None if started < txns => {
                let v = gen.next_txn(kind, &mut rng);
                let fate = match rng.random_range(0..10) {
                    0 => OpType::Fail,
                    1 => OpType::Info,
                    _ => OpType::Ok,
                };
                history.push(Op::new(
                    history.len(),
                    now,
                    OpType::Invoke,
                    p,
                    "txn",
                    v.clone(),
                ));
                open[c] = Some((v, None, fate));
                started += 1;
            }
            None => {}
            Some((v, None, fate)) => {
                let apply = fate == OpType::Ok || (fate == OpType::Info && rng.random_bool(0.5));
                let done = apply.then(|| {
                    let mops = v.as_array().cloned().unwrap_or_default();
                    let out: Vec<Value> = mops
                        .into_iter()
                        .map(|m| {
                            let (f, k) = (m[0].as_str().unwrap_or(""), m[1].clone());
                            match f {
                                "r" => {
                                    json!(["r", k, store.get(&k).cloned().unwrap_or(Value::Null)])
                                }
                                "w" => {
                                    store.insert(k, m[2].clone());
                                    m
                                }
                                _ => {
                                    let l = store.entry(k).or_insert_with(|| json!([]));
                                    if let Value::Array(a) = l {
                                        a.push(m[2].clone());
                                    }
                                    m
                                }
                            }
                        })
                        .collect();
                    Value::Array(out)
                });
                open[c] = Some((v, Some(done.unwrap_or(Value::Null)), fate));
            }
            Some((v, Some(done), fate)) => {
                match fate {
                    OpType::Ok => history.push(Op::new(history.len(), now, fate, p, "txn", done)),
                    OpType::Fail => history.push(Op::new(history.len(), now, fate, p, "txn", v)),
                    _ => {
                        // Crashed: the client's next transaction comes from a fresh process.
                        history.push(Op::new(history.len(), now, OpType::Info, p, "txn", v));
                        process[c] += clients as u64;
                    }
                }
            }
        }
    }
    history
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The reference store's histories are valid under the strongest model. On failure
    /// proptest prints the (shrunk) seed, which replays the history.
    #[test]
    fn a_single_lock_store_is_strict_serializable(seed in any::<u64>(), clients in 1usize..6) {
        let strict = models("strict-serializable");
        let h = reference_history(TxnKind::RwRegister, seed, clients, 200);
        let r = check_rw_register(&h, strict);
        // A history whose reads all saw nothing has no edges, which Maelstrom calls invalid.
        let types = r.anomaly_types();
        prop_assert!(
            types.iter().all(|t| t == "empty-transaction-graph"),
            "{}",
            serde_json::to_value(&r).unwrap()
        );
        let h = reference_history(TxnKind::ListAppend, seed, clients, 200);
        let r = check_list_append(&h, strict);
        prop_assert!(r.validity != Validity::False, "{}", serde_json::to_value(&r).unwrap());
    }
}

#[test]
fn reference_histories_have_edges_and_a_planted_stale_read_is_caught() {
    let h = reference_history(TxnKind::ListAppend, 7, 4, 300);
    let r = check_list_append(&h, models("strict-serializable"));
    passes(&r);
    // Make the last ok read of a key that had been appended to see nothing: a stale read,
    // which (the appends before it having completed) breaks realtime order at least.
    let mut h = h;
    let pos = h
        .iter()
        .rposition(|o| {
            o.kind == OpType::Ok
                && o.value.to_json().as_array().is_some_and(|a| {
                    a.iter()
                        .any(|m| m[0] == "r" && m[2].as_array().is_some_and(|l| !l.is_empty()))
                })
        })
        .unwrap();
    let mut v = h[pos].value.to_json().into_owned();
    for m in v.as_array_mut().unwrap() {
        if m[0] == "r" && m[2].as_array().is_some_and(|l| !l.is_empty()) {
            m[2] = Value::Null;
        }
    }
    h[pos].value = v.into();
    let r = check_list_append(&h, models("strict-serializable"));
    assert_eq!(r.validity, Validity::False, "{:?}", r.anomaly_types());
}

use super::*;
use serde_json::json;

fn op(index: usize, ms: u64, kind: OpType, process: Process, f: &str, value: Value) -> Op {
    Op::new(index, ms * 1_000_000, kind, process, f, value)
}

fn nemesis(index: usize, ms: u64, f: &str, value: Value) -> Op {
    op(index, ms, OpType::Info, Process::Nemesis, f, value)
}

fn c(p: u64) -> Process {
    Process::Client(p)
}

#[test]
fn recovery_is_measured_from_restart_to_the_first_complete_read() {
    let nodes = vec!["n0".to_string(), "n1".to_string()];
    let h = vec![
        op(0, 10, OpType::Ok, c(0), "broadcast", json!(1)),
        op(1, 20, OpType::Ok, c(1), "broadcast", json!(2)), // n1's own
        nemesis(2, 30, "kill", json!({"n1": "killed"})),
        op(3, 40, OpType::Ok, c(0), "broadcast", json!(3)), // after the kill: not required
        nemesis(4, 100, "start", json!({"n0": "started", "n1": "started"})),
        op(5, 150, OpType::Ok, c(1), "read", json!([2])), // n1: own value, not yet 1
        op(6, 160, OpType::Ok, c(0), "read", json!([1, 2])), // n0: not the restarted node
        op(7, 400, OpType::Ok, c(3), "read", json!([2, 1])), // process 3 → thread 1 → n1
    ];
    let r = recoveries(&h, &nodes, 2, 1_000);
    assert_eq!(r.len(), 1, "n0 was never killed");
    let r = &r[0];
    assert_eq!(
        (
            r.node.as_str(),
            r.acked_before_kill,
            r.own_acked_before_kill
        ),
        ("n1", 2, 1)
    );
    assert_eq!((r.reads_after_restart, r.reads_missing_own), (2, 0));
    assert_eq!(r.first_read_after_ms, Some(50));
    assert_eq!(
        r.first_read_after_heal_ms,
        Some(50),
        "no partition at the restart"
    );
    assert_eq!(
        (r.recovered_after_ms, r.catch_up_ms()),
        (Some(300), Some(300))
    );
    assert!(!r.final_phase);
}

#[test]
fn a_read_missing_a_value_the_node_itself_acknowledged_is_counted() {
    let nodes = vec!["n0".to_string()];
    let h = vec![
        op(0, 10, OpType::Ok, c(0), "broadcast", json!(1)),
        nemesis(1, 30, "kill", json!(["killed", ["n0"]])),
        nemesis(2, 50, "start", json!(["started", ["n0"]])),
        op(3, 90, OpType::Ok, c(0), "read", json!([])),
        op(4, 95, OpType::Ok, c(0), "read", json!([1])),
    ];
    let r = recoveries(&h, &nodes, 1, 1_000);
    assert_eq!((r[0].reads_after_restart, r[0].reads_missing_own), (2, 1));
    assert_eq!(r[0].recovered_after_ms, Some(45));
    assert!(recoveries(&h, &[], 1, 1_000).is_empty());
}

#[test]
fn unrecovered_and_final_phase_restarts_are_reported() {
    let nodes = vec!["n0".to_string()];
    let h = vec![
        op(0, 10, OpType::Ok, c(0), "broadcast", json!(1)),
        nemesis(1, 30, "kill", json!(["killed", ["n0"]])),
        nemesis(2, 2_000, "start", json!(["started", ["n0"]])),
    ];
    let r = recoveries(&h, &nodes, 1, 1_000);
    assert_eq!(r[0].recovered_after_ms, None);
    assert_eq!(r[0].first_read_after_ms, None);
    assert!(r[0].final_phase, "restarted after the main phase");
}

#[test]
fn catch_up_counts_from_the_heal_of_the_partition_in_force_at_the_restart() {
    let nodes = vec!["n0".to_string(), "n1".to_string()];
    let h = vec![
        op(0, 10, OpType::Ok, c(1), "broadcast", json!(7)), // acknowledged by n1
        nemesis(1, 20, "kill", json!({"n0": "killed"})),
        nemesis(2, 30, "start-partition", json!("one")),
        nemesis(
            3,
            31,
            "start-partition",
            json!(["isolated", {"n0": ["n1"], "n1": ["n0"]}]),
        ),
        nemesis(4, 100, "start", json!({"n0": "started"})),
        op(5, 200, OpType::Ok, c(0), "read", json!([])), // cut off: expected
        nemesis(6, 1_000, "stop-partition", Value::Null),
        nemesis(7, 1_001, "stop-partition", json!("network-healed")),
        op(8, 1_300, OpType::Ok, c(0), "read", json!([7])),
    ];
    let r = &recoveries(&h, &nodes, 2, 5_000)[0];
    assert_eq!(r.partitioned_for_ms, 901);
    assert_eq!(r.first_read_after_ms, Some(100));
    assert_eq!(r.first_read_after_heal_ms, Some(1_200));
    assert_eq!(
        (r.recovered_after_ms, r.catch_up_ms()),
        (Some(1_200), Some(299))
    );
    assert_eq!(r.reads_missing_own, 0, "n0 acknowledged nothing itself");
}

#[test]
fn a_node_killed_again_before_recovering_is_reported_once_per_restart() {
    let nodes = vec!["n0".to_string()];
    let h = vec![
        op(0, 10, OpType::Ok, c(0), "broadcast", json!(1)),
        nemesis(1, 20, "kill", json!({"n0": "killed"})),
        nemesis(2, 30, "start", json!({"n0": "started"})),
        nemesis(3, 40, "kill", json!({"n0": "killed"})),
        nemesis(4, 50, "start", json!({"n0": "started"})),
        op(5, 60, OpType::Ok, c(0), "read", json!([1])),
    ];
    let r = recoveries(&h, &nodes, 1, 1_000);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].recovered_after_ms, r[1].recovered_after_ms),
        (None, Some(10))
    );
}

#[test]
fn time_with_no_live_node_counts_kills_and_pauses_together() {
    let nodes = vec!["n0".to_string(), "n1".to_string()];
    let h = vec![
        nemesis(0, 100, "kill", json!({"n0": "killed"})),
        nemesis(1, 300, "pause", json!({"n1": "paused"})), // all down from 300
        nemesis(2, 700, "resume", json!({"n0": "resumed", "n1": "resumed"})), // n0 still killed
        nemesis(3, 800, "start", json!(["started", ["n0"]])),
        nemesis(4, 900, "kill", json!({"n0": "killed", "n1": "killed"})), // down to the end
    ];
    assert_eq!(no_live_node_ms(&h, &nodes, 1_000), 400 + 100);
    assert_eq!(no_live_node_ms(&h, &[], 1_000), 0);
    // Ops after the main phase are clipped to its end.
    assert_eq!(no_live_node_ms(&h[..1], &nodes[..1], 50), 0);
}

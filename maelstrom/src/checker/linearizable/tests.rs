use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::checker::testkit::H;
use crate::history::OpType::*;

/// Shorthands: `inv`/`done` record an invocation or completion of process `p` on key `k`.
fn inv(h: &mut H, p: u64, f: &str, k: u64, arg: Value) {
    let t = h.ops.len() as u64;
    h.c(t, Invoke, p, f, json!([k, arg]));
}
fn done(h: &mut H, p: u64, kind: OpType, f: &str, k: u64, arg: Value) {
    let t = h.ops.len() as u64;
    h.c(t, kind, p, f, json!([k, arg]));
}
fn read(h: &mut H, p: u64, k: u64, v: Value) {
    inv(h, p, "read", k, Value::Null);
    done(h, p, Ok, "read", k, v);
}
fn write(h: &mut H, p: u64, k: u64, v: u64) {
    inv(h, p, "write", k, json!(v));
    done(h, p, Ok, "write", k, json!(v));
}
fn cas(h: &mut H, p: u64, k: u64, from: u64, to: u64, kind: OpType) {
    inv(h, p, "cas", k, json!([from, to]));
    done(h, p, kind, "cas", k, json!([from, to]));
}
fn run(h: &H) -> LinearizableResult {
    check(&h.ops, Budget::UNLIMITED)
}

#[test]
fn sequential_history_is_linearizable() {
    let mut h = H::new();
    read(&mut h, 0, 0, Value::Null);
    write(&mut h, 0, 0, 1);
    read(&mut h, 1, 0, json!(1));
    cas(&mut h, 1, 0, 1, 2, Ok);
    cas(&mut h, 0, 0, 1, 3, Fail);
    read(&mut h, 0, 0, json!(2));
    let r = run(&h);
    assert_eq!(r.valid, Validity::True, "{r:?}");
    assert_eq!(r.results["0"].op_count, 5, "the failed cas is dropped");
    assert!(r.failures.is_empty() && r.unknown.is_empty());
}

#[test]
fn concurrent_ops_may_take_effect_in_either_order() {
    // p0 writes 1 while p1 writes 2; both overlap two reads that see 2 then 1: the order
    // write 2, read 2, write 1, read 1 explains it.
    let mut h = H::new();
    inv(&mut h, 0, "write", 0, json!(1));
    inv(&mut h, 1, "write", 0, json!(2));
    inv(&mut h, 2, "read", 0, Value::Null);
    done(&mut h, 2, Ok, "read", 0, json!(2));
    inv(&mut h, 3, "read", 0, Value::Null);
    done(&mut h, 0, Ok, "write", 0, json!(1));
    done(&mut h, 1, Ok, "write", 0, json!(2));
    done(&mut h, 3, Ok, "read", 0, json!(1));
    assert_eq!(run(&h).valid, Validity::True);
}

#[test]
fn info_ops_may_take_effect_late_or_never() {
    let mut h = H::new();
    // An indeterminate write of 5 that a much later read observes: placed late.
    inv(&mut h, 0, "write", 0, json!(5));
    done(&mut h, 0, Info, "write", 0, json!(5));
    write(&mut h, 1, 0, 1);
    read(&mut h, 1, 0, json!(1));
    read(&mut h, 2, 0, json!(5));
    // An indeterminate cas on key 1 that no read saw: dropped.
    write(&mut h, 3, 1, 1);
    inv(&mut h, 4, "cas", 1, json!([1, 9]));
    done(&mut h, 4, Info, "cas", 1, json!([1, 9]));
    read(&mut h, 3, 1, json!(1));
    // An info read constrains nothing, nor does a never-completed write.
    inv(&mut h, 5, "read", 1, Value::Null);
    done(&mut h, 5, Info, "read", 1, Value::Null);
    inv(&mut h, 6, "write", 1, json!(7));
    let r = run(&h);
    assert_eq!(r.valid, Validity::True, "{r:?}");
    assert_eq!(r.results.len(), 2);
}

#[test]
fn stale_read_after_a_completed_write_is_caught() {
    let mut h = H::new();
    write(&mut h, 0, 3, 1);
    write(&mut h, 0, 7, 1);
    write(&mut h, 0, 7, 2);
    read(&mut h, 1, 7, json!(1)); // stale: 2 was written before this began
    read(&mut h, 1, 3, json!(1));
    let r = run(&h);
    assert_eq!(r.valid, Validity::False);
    assert_eq!(r.failures, ["7"]);
    assert_eq!(r.results["3"].valid, Validity::True);
    let k = &r.results["7"];
    assert_eq!(k.op.as_ref().unwrap().value, json!([7, 1]));
    assert_eq!(k.op.as_ref().unwrap().f, "read");
    assert_eq!(k.last_state, Some(json!(2)));
    assert_eq!(k.previous_ok.as_ref().unwrap().value, json!([7, 2]));
    assert!(
        !k.window.is_empty() && k.window.len() <= 2,
        "{:?}",
        k.window
    );
}

#[test]
fn cas_against_an_overwritten_value_is_caught() {
    let mut h = H::new();
    write(&mut h, 0, 0, 1);
    write(&mut h, 1, 0, 2);
    cas(&mut h, 2, 0, 1, 3, Ok); // 1 was overwritten by 2 before the cas began
    let r = run(&h);
    assert_eq!(r.failures, ["0"]);
    assert_eq!(r.results["0"].op.as_ref().unwrap().f, "cas");
}

#[test]
fn lost_write_is_caught() {
    // Write 1, then write 2 acknowledged, then reads see 1 again forever: write 2 was lost.
    let mut h = H::new();
    write(&mut h, 0, 2, 1);
    write(&mut h, 1, 2, 2);
    read(&mut h, 2, 2, json!(1));
    read(&mut h, 0, 2, json!(1));
    let r = run(&h);
    assert_eq!(r.valid, Validity::False);
    assert_eq!(r.failures, ["2"]);
}

#[test]
fn a_read_of_a_value_never_written_is_caught_even_with_info_writes() {
    let mut h = H::new();
    inv(&mut h, 0, "write", 0, json!(1));
    done(&mut h, 0, Info, "write", 0, json!(1));
    read(&mut h, 1, 0, json!(4));
    assert_eq!(run(&h).valid, Validity::False);
    // But a failed write must not be placed either.
    let mut h = H::new();
    inv(&mut h, 0, "write", 0, json!(4));
    done(&mut h, 0, Fail, "write", 0, json!(4));
    read(&mut h, 1, 0, json!(4));
    assert_eq!(run(&h).valid, Validity::False);
}

#[test]
fn a_zero_budget_is_unknown_and_empty_histories_are_valid() {
    let mut h = H::new();
    write(&mut h, 0, 0, 1);
    read(&mut h, 1, 0, json!(1));
    let r = check(&h.ops, Budget::steps(0));
    assert_eq!(r.valid, Validity::Unknown);
    assert_eq!(r.unknown, ["0"]);
    assert!(r.results["0"].error.is_some());
    let r = check(&h.ops, Budget::until(Instant::now()));
    assert_eq!(r.valid, Validity::Unknown);
    assert_eq!(check(&[], Budget::steps(0)).valid, Validity::True);
}

#[test]
fn malformed_ops_are_skipped_not_fatal() {
    let mut h = H::new();
    h.c(0, Invoke, 0, "read", json!("nonsense"));
    h.c(1, Ok, 0, "read", json!(null));
    h.c(2, Invoke, 1, "cas", json!([0, 3]));
    h.c(3, Ok, 1, "cas", json!([0, 3]));
    h.c(4, Invoke, 2, "read", json!([0, null]));
    h.c(5, Ok, 2, "read", json!({"x": 1}));
    h.nemesis(6, "start-partition");
    let r = run(&h);
    assert_eq!(r.valid, Validity::True);
    assert_eq!(r.op_count, 3);
}

#[test]
fn results_serialise_with_knossos_keys() {
    let mut h = H::new();
    write(&mut h, 0, 0, 1);
    read(&mut h, 1, 0, json!(2));
    let v = serde_json::to_value(run(&h)).unwrap();
    assert_eq!(v["valid?"], json!(false));
    assert_eq!(v["failures"], json!(["0"]));
    let k = &v["results"]["0"];
    assert_eq!(k["valid?"], json!(false));
    assert_eq!(k["op"]["value"], json!([0, 2]));
    assert_eq!(k["previous-ok"]["f"], json!("write"));
    assert_eq!(k["last-state"], json!(1));
    assert!(k["window"].is_array());
}

/// A many-op history with lots of concurrency still finishes quickly thanks to the memo.
#[test]
fn wide_concurrency_is_tractable() {
    let mut h = H::new();
    for p in 0..20 {
        inv(&mut h, p, "write", 0, json!(p));
    }
    for p in 0..20 {
        done(&mut h, p, Ok, "write", 0, json!(p));
    }
    read(&mut h, 30, 0, json!(7));
    let r = check(&h.ops, Budget::steps(5_000_000));
    assert_eq!(r.valid, Validity::True, "{r:?}");
}

/// One step of a process in the reference run.
#[derive(Debug, Clone)]
struct Step {
    process: usize,
    f: u8,
    key: u64,
    a: u64,
    b: u64,
    /// How an applied write/cas completes: false = ok, true = info (as after a timeout).
    info: bool,
    /// An indeterminate op that never reaches the register.
    lost: bool,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            0..4usize,
            0..3u8,
            0..2u64,
            0..3u64,
            0..3u64,
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(process, f, key, a, b, info, lost)| Step {
                process,
                f,
                key,
                a,
                b,
                info,
                lost,
            }),
        0..120,
    )
}

/// A single register per key behind one lock: each process's op is invoked at one step,
/// applied atomically at a later step, and completed at a later one still, so it takes effect
/// between its invocation and its completion. Info ops may be applied or lost.
fn reference_history(steps: &[Step]) -> H {
    #[derive(Clone)]
    enum Phase {
        Idle,
        Invoked(Step),
        Applied(Step, OpType, Value),
    }
    let mut h = H::new();
    let mut register: HashMap<u64, Value> = HashMap::new();
    let mut phase = vec![Phase::Idle; 4];
    let mut process_id: Vec<u64> = (0..4).collect();
    let f_name = |f: u8| ["read", "write", "cas"][f as usize];
    let arg = |s: &Step| match s.f {
        0 => Value::Null,
        1 => json!(s.a),
        _ => json!([s.a, s.b]),
    };
    for s in steps {
        let t = s.process;
        let p = process_id[t];
        phase[t] = match std::mem::replace(&mut phase[t], Phase::Idle) {
            Phase::Idle => {
                inv(&mut h, p, f_name(s.f), s.key, arg(s));
                Phase::Invoked(s.clone())
            }
            Phase::Invoked(op) => {
                let cur = register.get(&op.key).cloned().unwrap_or(Value::Null);
                let (kind, value) = if op.lost && op.f != 0 {
                    (Info, arg(&op))
                } else {
                    match op.f {
                        0 => (Ok, cur),
                        1 => {
                            register.insert(op.key, json!(op.a));
                            (if op.info { Info } else { Ok }, arg(&op))
                        }
                        _ if cur == json!(op.a) => {
                            register.insert(op.key, json!(op.b));
                            (if op.info { Info } else { Ok }, arg(&op))
                        }
                        _ => (Fail, arg(&op)),
                    }
                };
                Phase::Applied(op, kind, value)
            }
            Phase::Applied(op, kind, value) => {
                done(&mut h, p, kind, f_name(op.f), op.key, value);
                if kind == Info {
                    process_id[t] += 4;
                }
                Phase::Idle
            }
        };
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn reference_register_histories_are_linearizable(steps in steps()) {
        let h = reference_history(&steps);
        let r = check(&h.ops, Budget::steps(10_000_000));
        prop_assert_eq!(r.valid, Validity::True, "{:?}", r);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]
    /// The same histories with one ok read changed to a value nobody wrote are never valid, so
    /// the property above is not passing vacuously.
    #[test]
    fn a_corrupted_read_is_always_caught(steps in steps(), pick in 0..1000usize) {
        let mut h = reference_history(&steps);
        let reads: Vec<usize> = (0..h.ops.len())
            .filter(|&i| h.ops[i].kind == Ok && h.ops[i].f == "read")
            .collect();
        prop_assume!(!reads.is_empty());
        let i = reads[pick % reads.len()];
        let key = h.ops[i].value.to_json()[0].clone();
        h.ops[i].value = json!([key, 99]).into();
        let r = check(&h.ops, Budget::steps(10_000_000));
        prop_assert_eq!(r.valid, Validity::False);
        prop_assert_eq!(r.failures, vec![key.to_string()]);
    }
}

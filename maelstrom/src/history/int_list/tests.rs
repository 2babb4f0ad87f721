//! Tests of the compact integer list: it must stand for exactly the JSON array it was built from.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::*;
use crate::history::{OpType, OpValue, MIN_INT_LIST};

/// Every way the list must equal the JSON array of `values`: elements, JSON text, `Display`
/// text, equality both ways, and through [`OpValue`].
fn assert_stands_for(values: &[u64], pool: &mut ChunkPool) {
    let json = Value::Array(values.iter().map(|&v| Value::from(v)).collect());
    let list = IntList::from_json(&json, pool).expect("an array of u64s");
    assert_eq!(list.len(), values.len());
    assert_eq!(list.iter().collect::<Vec<_>>(), values);
    assert_eq!(
        serde_json::to_string(&list).unwrap(),
        serde_json::to_string(&json).unwrap()
    );
    assert_eq!(list.to_string(), json.to_string());
    assert_eq!(list.to_json(), json);
    assert!(list.eq_json(&json));
    let as_op = OpValue::Ints(list.clone());
    assert_eq!(as_op, OpValue::Json(json.clone()));
    assert_eq!(OpValue::Json(json.clone()), as_op);
    assert_eq!(as_op, json);
    assert_eq!(serde_json::to_string(&as_op).unwrap(), json.to_string());
    assert_eq!(as_op.to_string(), json.to_string());
    // Built again, it is equal and shares every chunk.
    let (chunks, bytes) = pool.footprint();
    let again = IntList::new(values.iter().copied(), pool);
    assert_eq!(again, list);
    assert_eq!(pool.footprint(), (chunks, bytes));
}

/// Lists of awkward shapes: ascending runs (a node's log), descents, jumps across the whole
/// `u64` range, and lengths around chunk boundaries.
fn random_list(rng: &mut ChaCha8Rng) -> Vec<u64> {
    let len = match rng.random_range(0..4) {
        0 => rng.random_range(0..4),
        1 => CHUNK * rng.random_range(1..4) + rng.random_range(0..3) - 1,
        _ => rng.random_range(0..3 * CHUNK),
    };
    let mut v: u64 = rng.random();
    (0..len)
        .map(|_| {
            v = match rng.random_range(0..10) {
                0 => rng.random(),
                1 => [0, 1, u64::MAX, u64::MAX - 1, i64::MAX as u64][rng.random_range(0..5)],
                2 => v.wrapping_sub(rng.random_range(0..1000)),
                _ => v.wrapping_add(1),
            };
            v
        })
        .collect()
}

#[test]
fn round_trips_to_the_same_json() {
    let mut pool = ChunkPool::new();
    for seed in 0..300u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let values = random_list(&mut rng);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_stands_for(&values, &mut pool);
        }));
        if outcome.is_err() {
            panic!(
                "seed {seed}: the list of {} values does not round-trip",
                values.len()
            );
        }
    }
}

proptest! {
    #[test]
    fn any_list_round_trips(values in prop::collection::vec(any::<u64>(), 0..600)) {
        assert_stands_for(&values, &mut ChunkPool::new());
    }
}

#[test]
fn only_arrays_of_non_negative_integers_are_taken() {
    let mut pool = ChunkPool::new();
    for v in [
        json!([1, -2, 3]),
        json!([1, 2.0]),
        json!([1, "2"]),
        json!([1, null]),
        json!([[1]]),
        json!(5),
        json!(null),
        json!({"a": 1}),
    ] {
        assert!(IntList::from_json(&v, &mut pool).is_none(), "{v}");
    }
    assert_eq!(
        IntList::from_json(&json!([]), &mut pool).map(|l| l.len()),
        Some(0)
    );
}

#[test]
fn unequal_lists_compare_unequal() {
    let mut pool = ChunkPool::new();
    let a = IntList::new([1, 2, 3], &mut pool);
    for other in [
        json!([1, 2]),
        json!([1, 2, 4]),
        json!([1, 3, 2]),
        json!([1, 2, 3, 4]),
        json!(3),
    ] {
        assert!(!a.eq_json(&other), "{other}");
        assert_ne!(OpValue::Ints(a.clone()), OpValue::Json(other.clone()));
        if let Some(b) = IntList::from_json(&other, &mut pool) {
            assert_ne!(a, b);
            assert_ne!(OpValue::Ints(a.clone()), OpValue::Ints(b));
        }
    }
}

/// Reads of a growing log share all their full chunks: a hundred reads of a 10,000-entry log
/// cost about one copy of it plus a tail chunk per read, not a hundred copies.
#[test]
fn growing_reads_share_chunks() {
    let mut pool = ChunkPool::new();
    let log: Vec<u64> = (0..10_000).collect();
    let reads: Vec<IntList> = (1..=100)
        .map(|i| IntList::new(log[..i * 100].iter().copied(), &mut pool))
        .collect();
    // The chunks actually held, by address.
    let mut held = std::collections::HashMap::new();
    for r in &reads {
        for c in r.chunks.iter() {
            held.insert(Arc::as_ptr(c).cast::<u8>(), c.len());
        }
    }
    let (chunks, bytes) = (held.len(), held.values().sum::<usize>());
    // One full chunk per CHUNK entries, plus at most one partial chunk per read.
    assert!(chunks <= 10_000 / CHUNK + 100, "{chunks} chunks");
    // Ascending runs cost a byte an element (up to three for the first of a chunk).
    assert!(bytes <= 10_000 + 100 * CHUNK, "{bytes} bytes");
    assert_eq!(pool.footprint(), (chunks, bytes));
    assert_eq!(reads[99], IntList::new(log.iter().copied(), &mut pool));
}

#[test]
fn only_large_ok_reads_are_recorded_compactly() {
    let mut pool = ChunkPool::new();
    let big = json!((0..MIN_INT_LIST as u64).collect::<Vec<_>>());
    let small = json!((0..MIN_INT_LIST as u64 - 1).collect::<Vec<_>>());
    let compact = |kind, f, v: &Value, pool: &mut ChunkPool| {
        matches!(
            OpValue::recorded(kind, f, v.clone(), pool),
            OpValue::Ints(_)
        )
    };
    assert!(compact(OpType::Ok, "read", &big, &mut pool));
    assert!(!compact(OpType::Ok, "read", &small, &mut pool));
    assert!(!compact(OpType::Invoke, "read", &big, &mut pool));
    assert!(!compact(OpType::Ok, "write", &big, &mut pool));
    let negative = json!(vec![-1; MIN_INT_LIST]);
    assert!(!compact(OpType::Ok, "read", &negative, &mut pool));
}

//! The two transactional workloads, `txn-rw-register` and `txn-list-append`
//! (<https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md>): the generator Maelstrom
//! takes from Elle, the `txn` request and the closed `txn_ok` schema.
//!
//! **Ops.** One op is one transaction, `f` = `txn`, whose value is a list of micro-ops
//! `[f, key, value]`: `["r", k, null]` reads `k`, `["w", k, v]` writes `v` (rw-register),
//! `["append", k, v]` appends `v` to `k`'s list (list-append). The request is
//! `{"type": "txn", "txn": [...]}` and the reply `{"type": "txn_ok", "txn": [...]}`, the same
//! micro-ops with the reads filled in: any value (or `null`) for a register, a list (or `null`
//! for a key never appended to) for list-append. Error 30 (`txn-conflict`) is definite, so the
//! op fails; nothing is idempotent, so a timeout or an indefinite error leaves it `info`
//! (Maelstrom's `with-errors` with an empty idempotent set). The clients are reusable: they keep
//! their id after an `info` op, while the process still changes, as in Jepsen.
//!
//! **Generator** (Elle's `wr-txns`, which list-append reuses with appends for writes, as
//! Maelstrom configures it): each transaction has a length uniform in
//! 1..=`--max-txn-length`; each micro-op is a read or a write with equal odds, on a key drawn
//! from a pool of `--key-count` active keys, where pool slot `i` is 2^i times as likely as slot
//! 0 (Elle's exponential key distribution, base 2). Writes to a key carry 1, 2, 3, … (unique per
//! key); once a key has had `--max-writes-per-key` writes, its slot gets a fresh key (one more
//! than the largest active key) and the draw is repeated. There is no final phase.

use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;

use crate::checker::elle::Models;

/// Which transactional workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TxnKind {
    /// `txn-rw-register`: reads and writes of registers.
    RwRegister,
    /// `txn-list-append`: reads and appends of lists.
    ListAppend,
}

impl TxnKind {
    /// The micro-op name of a write: `w` or `append`.
    pub fn write_f(self) -> &'static str {
        match self {
            TxnKind::RwRegister => "w",
            TxnKind::ListAppend => "append",
        }
    }
}

/// Elle's default key count for its exponential key distribution, which Maelstrom uses when
/// `--key-count` is not given.
pub const DEFAULT_KEY_COUNT: usize = 10;
/// Maelstrom's default `--max-txn-length`.
pub const DEFAULT_MAX_TXN_LENGTH: usize = 4;
/// Maelstrom's default `--max-writes-per-key`.
pub const DEFAULT_MAX_WRITES_PER_KEY: u64 = 16;

/// The txn workloads' flags: the generator's knobs and the models the checker holds the
/// history to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TxnOpts {
    /// `--key-count`: keys in the active pool at any time.
    pub key_count: usize,
    /// `--max-txn-length`: micro-ops per transaction at most (at least 1).
    pub max_txn_length: usize,
    /// `--max-writes-per-key`: writes a key gets before it is retired.
    pub max_writes_per_key: u64,
    /// `--consistency-models` (default strict-serializable).
    pub consistency_models: Models,
}

impl Default for TxnOpts {
    fn default() -> Self {
        TxnOpts {
            key_count: DEFAULT_KEY_COUNT,
            max_txn_length: DEFAULT_MAX_TXN_LENGTH,
            max_writes_per_key: DEFAULT_MAX_WRITES_PER_KEY,
            consistency_models: Models::default(),
        }
    }
}

/// The generator's state: the active key pool and each key's next write value.
#[derive(Debug)]
pub struct TxnGen {
    opts: TxnOpts,
    active: Vec<u64>,
    next_value: HashMap<u64, u64>,
}

impl TxnGen {
    pub fn new(opts: TxnOpts) -> TxnGen {
        TxnGen {
            opts,
            active: (0..opts.key_count.max(1) as u64).collect(),
            next_value: HashMap::new(),
        }
    }

    /// A pool slot: slot `i` is 2^i times as likely as slot 0 (Elle's `rand-key` with base 2).
    /// Pools too large for that weighting in an `f64` are drawn uniformly.
    fn slot(&self, rng: &mut impl Rng) -> usize {
        let n = self.active.len();
        let scale = 2.0 * (2f64.powi(n as i32) - 1.0);
        if !scale.is_finite() || n > 1000 {
            return rng.random_range(0..n);
        }
        let x: f64 = rng.random_range(0.0..scale);
        let i = ((x + 2.0).log2() - 1.0).floor();
        (i.max(0.0) as usize).min(n - 1)
    }

    /// The next transaction, as a history value.
    pub fn next_txn(&mut self, kind: TxnKind, rng: &mut impl Rng) -> Value {
        let len = rng.random_range(1..=self.opts.max_txn_length.max(1));
        let mut txn = Vec::with_capacity(len);
        while txn.len() < len {
            let write = rng.random_bool(0.5);
            let slot = self.slot(rng);
            let k = self.active[slot];
            if !write {
                txn.push(json!(["r", k, null]));
                continue;
            }
            let v = *self.next_value.get(&k).unwrap_or(&1);
            if v > self.opts.max_writes_per_key {
                // This key has had its writes: its slot gets a fresh key, and we draw again.
                let fresh = self.active.iter().max().map_or(0, |m| m + 1);
                self.active[slot] = fresh;
                continue;
            }
            self.next_value.insert(k, v + 1);
            txn.push(json!([kind.write_f(), k, v]));
        }
        Value::Array(txn)
    }
}

/// Checks a `txn_ok`'s `txn` field: a list of `[f, key, value]` micro-ops, `f` being `r` or
/// the workload's write; a list-append read's value a list or `null`.
pub fn check_txn_field(kind: TxnKind, v: &Value) -> Result<(), String> {
    let mops = v
        .as_array()
        .ok_or_else(|| format!("\"txn\" must be an array, got {v}"))?;
    for mop in mops {
        let parts = mop
            .as_array()
            .filter(|p| p.len() == 3)
            .ok_or_else(|| format!("a micro-op must be [f, key, value], got {mop}"))?;
        match parts[0].as_str() {
            Some("r") => {
                if kind == TxnKind::ListAppend && !(parts[2].is_array() || parts[2].is_null()) {
                    return Err(format!("a read's value must be a list or null, got {mop}"));
                }
            }
            Some(f) if f == kind.write_f() => {}
            _ => {
                return Err(format!(
                    "a micro-op's f must be \"r\" or {:?}, got {mop}",
                    kind.write_f()
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    #[test]
    fn generator_honours_the_flags() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let opts = TxnOpts {
            key_count: 3,
            max_txn_length: 2,
            max_writes_per_key: 5,
            ..TxnOpts::default()
        };
        let mut g = TxnGen::new(opts);
        let mut writes: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut lens = [0usize; 3];
        let mut reads = 0;
        for _ in 0..3000 {
            let t = g.next_txn(TxnKind::ListAppend, &mut rng);
            let mops = t.as_array().unwrap();
            lens[mops.len()] += 1;
            for m in mops {
                let k = m[1].as_u64().unwrap();
                match m[0].as_str().unwrap() {
                    "r" => {
                        reads += 1;
                        assert!(m[2].is_null());
                    }
                    "append" => writes.entry(k).or_default().push(m[2].as_u64().unwrap()),
                    f => panic!("{f}"),
                }
            }
            assert!(g.active.len() == 3);
        }
        assert_eq!(lens[0], 0, "never empty");
        assert!(
            lens[1] > 1300 && lens[2] > 1300,
            "lengths uniform: {lens:?}"
        );
        let total: usize = writes.values().map(Vec::len).sum();
        assert!((reads as f64 / (reads + total) as f64 - 0.5).abs() < 0.05);
        for (k, vs) in &writes {
            assert!(vs.len() <= 5, "key {k}: {vs:?}");
            assert_eq!(*vs, (1..=vs.len() as u64).collect::<Vec<_>>(), "key {k}");
        }
        assert!(writes.len() > 100, "keys are retired and replaced");
    }

    #[test]
    fn later_pool_slots_are_likelier() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let g = TxnGen::new(TxnOpts {
            key_count: 4,
            ..TxnOpts::default()
        });
        let mut counts = [0u32; 4];
        for _ in 0..30_000 {
            counts[g.slot(&mut rng)] += 1;
        }
        for i in 1..4 {
            let ratio = counts[i] as f64 / counts[i - 1] as f64;
            assert!((1.8..2.2).contains(&ratio), "{counts:?}");
        }
    }

    #[test]
    fn txn_field_schema() {
        let rw = TxnKind::RwRegister;
        let la = TxnKind::ListAppend;
        assert!(check_txn_field(rw, &json!([["r", 1, 3], ["w", 1, 4], ["r", "k", null]])).is_ok());
        assert!(check_txn_field(rw, &json!([["append", 1, 3]])).is_err());
        assert!(check_txn_field(rw, &json!([["r", 1]])).is_err());
        assert!(check_txn_field(rw, &json!({"r": 1})).is_err());
        assert!(check_txn_field(
            la,
            &json!([["r", 1, [1, 2]], ["append", 1, 3], ["r", 2, null]])
        )
        .is_ok());
        assert!(check_txn_field(la, &json!([["r", 1, 3]])).is_err());
        assert!(check_txn_field(la, &json!([["w", 1, 3]])).is_err());
    }
}

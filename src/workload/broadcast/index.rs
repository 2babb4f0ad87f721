//! The node's value index: for each value in the log, its position, so that a duplicate is
//! recognised (set semantics) and answered with the position it already has.
//!
//! It maps 32 bits of a keyed hash of each value's [`Key`] to its position (as a `u32`), checking
//! the log on a hit, with a second, exact map for the values whose hash another value already
//! took (about n²/2³³ of them: some hundred in a million) or whose position does not fit 32 bits.
//! That keeps an entry at 8 bytes (a `HashMap<Key, usize>` takes 40, the key alone 32), which
//! matters at start-up: recovering a million values builds the index in one go, and its size
//! (memory to fault in, cache misses per insert) is most of the time recovery takes
//! (`just startup`). The hash is std's `RandomState` (SipHash with a random key), so peers and
//! clients cannot choose values that collide.
//!
//! Non-negative integers, the values Maelstrom's broadcast workload sends (0, 1, 2, … shared by
//! every client), skip the hash: a dense array holds position + 1 at the value's own index. A
//! node that holds most values of a range fills it nearly in order, so recovering a million
//! values is a sequential write of 4 MB instead of a million random probes into an 18 MB table
//! (`just startup`: the probes were two thirds of start-up). The array covers `[0, len)` and
//! grows only while `len` stays within [`DENSE_FACTOR`] times the integers it holds plus
//! [`DENSE_SLACK`], so a sender of huge or sparse integers cannot make it large: those go to
//! the hash like any other value.

use super::{key, Key};
use serde_json::Value;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Hashes a `u32` that is already a hash by spreading it over 64 bits (a multiply by a large odd
/// constant), so the table's bucket bits and its tag bits (the top seven) both vary.
#[derive(Debug, Default)]
pub(super) struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u32` keys are hashed; fold anything else in rather than panic.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The dense array may cover `DENSE_FACTOR` slots per integer it holds (16 bytes per value)…
const DENSE_FACTOR: usize = 4;
/// …plus this many, so a node's first values (which need not start at 0) go dense too.
const DENSE_SLACK: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct ValueIndex {
    /// `dense[i]`: position + 1 of the integer value `i`, or 0 if it is not held there (it may
    /// still be in the hash maps, if it came before the array reached `i`).
    dense: Vec<u32>,
    /// How many values `dense` holds.
    dense_held: usize,
    /// Room to reserve in `by_hash` before its first insert (reserved lazily, so a node whose
    /// values all go dense allocates no table).
    hash_room: usize,
    state: RandomState,
    /// 32 bits of the hash of a value's key → its position.
    by_hash: HashMap<u32, u32, BuildHasherDefault<Passthrough>>,
    /// Values whose 32 hash bits were already taken by a different value, or whose position
    /// needs more than 32 bits.
    overflow: HashMap<Key, usize>,
}

impl ValueIndex {
    /// Room for `n` more values without growing (for the hash maps: taken when the first value
    /// goes there).
    pub(super) fn reserve(&mut self, n: usize) {
        self.hash_room = self.hash_room.saturating_add(n);
    }

    /// The dense slot of `v`, if `v` is a non-negative integer that the array covers or may grow
    /// to cover.
    fn dense_slot(&mut self, v: &Value) -> Option<usize> {
        let i = usize::try_from(v.as_u64()?).ok()?;
        if i < self.dense.len() {
            return Some(i);
        }
        let limit = self
            .dense_held
            .saturating_add(1)
            .saturating_mul(DENSE_FACTOR)
            .saturating_add(DENSE_SLACK);
        if i >= limit {
            return None;
        }
        let len = (i + 1).max(self.dense.len().saturating_mul(2)).min(limit);
        self.dense.resize(len, 0);
        Some(i)
    }

    /// Whether the hash maps hold anything (if not, a lookup need not hash).
    fn hashed_any(&self) -> bool {
        !self.by_hash.is_empty() || !self.overflow.is_empty()
    }

    /// The hash bits under which `k` is indexed.
    pub(super) fn hash(&self, k: &Key) -> u32 {
        (self.state.hash_one(k) >> 32) as u32
    }

    /// The position in `log` of the value with key `k` (hash bits `h`), if it is indexed.
    pub(super) fn get(&self, log: &[Value], h: u32, k: &Key) -> Option<usize> {
        let found = self.by_hash.get(&h).map(|&p| p as usize);
        match found {
            Some(p) if log.get(p).map(key).as_ref() == Some(k) => Some(p),
            // Nothing under these bits: the value can still be in the exact map if its position
            // did not fit.
            _ if self.overflow.is_empty() => None,
            _ => self.overflow.get(k).copied(),
        }
    }

    /// Indexes the value with key `k` (hash bits `h`), not indexed yet, at `pos`.
    pub(super) fn insert(&mut self, h: u32, k: Key, pos: usize) {
        if self.hash_room > 0 {
            self.by_hash.reserve(std::mem::take(&mut self.hash_room));
        }
        match (self.by_hash.entry(h), u32::try_from(pos)) {
            (Entry::Vacant(e), Ok(p)) => {
                e.insert(p);
            }
            _ => {
                self.overflow.insert(k, pos);
            }
        }
    }

    /// Indexes `v` at `pos` unless a value equal to it is indexed already; returns that
    /// value's position then.
    pub(super) fn insert_new(&mut self, log: &[Value], v: &Value, pos: usize) -> Result<(), usize> {
        // `as_u64` is `None` for floats, so `1.0` never shares the slot of `1`.
        if let Some(i) = self.dense_slot(v) {
            match self.dense[i] {
                0 => {}
                held => return Err(held as usize - 1),
            }
            if self.hashed_any() {
                let k = key(v);
                if let Some(p) = self.get(log, self.hash(&k), &k) {
                    return Err(p);
                }
            }
            if let Some(slot) = u32::try_from(pos).ok().and_then(|p| p.checked_add(1)) {
                self.dense[i] = slot;
                self.dense_held += 1;
                return Ok(());
            }
        }
        let k = key(v);
        let h = self.hash(&k);
        match self.get(log, h, &k) {
            Some(p) => Err(p),
            None => {
                self.insert(h, k, pos);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_what_it_holds_and_tells_json_equal_values_apart() {
        let mut idx = ValueIndex::default();
        let mut log = Vec::new();
        for v in [
            json!(1),
            json!(1.0),
            json!("1"),
            json!([1]),
            json!(u64::MAX),
        ] {
            let pos = log.len();
            log.push(v.clone());
            assert_eq!(idx.insert_new(&log, &v, pos), Ok(()), "{v}");
        }
        for (pos, v) in log.clone().iter().enumerate() {
            assert_eq!(idx.insert_new(&log, v, 99), Err(pos), "{v}");
        }
        assert_eq!(idx.insert_new(&log, &json!(2), 5), Ok(()));
    }

    #[test]
    fn an_integer_hashed_before_the_dense_array_covered_it_is_still_found() {
        let mut idx = ValueIndex::default();
        let mut log = Vec::new();
        // Beyond the slack with nothing held: hashed.
        let late = (DENSE_SLACK + 10) as u64;
        // Then the range below it, which makes the array grow over it.
        for v in std::iter::once(late).chain(0..late) {
            let pos = log.len();
            log.push(json!(v));
            assert_eq!(idx.insert_new(&log, &json!(v), pos), Ok(()), "{v}");
            if pos == 0 {
                assert!(idx.dense.is_empty() && idx.hashed_any());
            }
        }
        assert!(idx.dense.len() > late as usize, "{}", idx.dense.len());
        assert_eq!(idx.insert_new(&log, &json!(late), 99), Err(0));
        assert_eq!(idx.insert_new(&log, &json!(7), 99), Err(8));
        assert_eq!(idx.insert_new(&log, &json!(7.0), 99), Ok(()));
    }

    #[test]
    fn huge_and_sparse_integers_cannot_grow_the_dense_array() {
        let mut idx = ValueIndex::default();
        let mut log = Vec::new();
        for (n, v) in [u64::MAX, 1 << 40, 1 << 20]
            .into_iter()
            .chain((1..2000).map(|i| i * 1_000_000))
            .enumerate()
        {
            log.push(json!(v));
            assert_eq!(idx.insert_new(&log, &json!(v), n), Ok(()));
        }
        assert!(idx.dense.len() <= DENSE_SLACK, "{}", idx.dense.len());
        for (pos, v) in log.clone().iter().enumerate() {
            assert_eq!(idx.insert_new(&log, v, 0), Err(pos), "{v}");
        }
    }

    #[test]
    fn a_hash_taken_by_another_value_goes_to_the_exact_map() {
        let mut idx = ValueIndex::default();
        let log = vec![json!("a"), json!("b")];
        // Force "b" under the hash of "a", as a collision would.
        let ha = idx.hash(&key(&log[0]));
        idx.insert(ha, key(&log[0]), 0);
        idx.insert(ha, key(&log[1]), 1);
        assert_eq!(idx.get(&log, ha, &key(&log[0])), Some(0));
        assert_eq!(idx.get(&log, ha, &key(&log[1])), Some(1));
        assert_eq!(idx.get(&log, ha, &key(&json!("c"))), None);
    }
}

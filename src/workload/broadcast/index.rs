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

#[derive(Debug, Default)]
pub(super) struct ValueIndex {
    state: RandomState,
    /// 32 bits of the hash of a value's key → its position.
    by_hash: HashMap<u32, u32, BuildHasherDefault<Passthrough>>,
    /// Values whose 32 hash bits were already taken by a different value, or whose position
    /// needs more than 32 bits.
    overflow: HashMap<Key, usize>,
}

impl ValueIndex {
    /// Room for `n` more values without growing.
    pub(super) fn reserve(&mut self, n: usize) {
        self.by_hash.reserve(n);
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

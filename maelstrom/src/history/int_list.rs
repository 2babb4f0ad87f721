//! A compact, order-preserving list of non-negative integers: how the history holds the result
//! of a set read (broadcast's `messages`, g-set's `value`).
//!
//! # Why
//! Every broadcast `read` returns the whole set, so the reads of a run add up to O(ops²)
//! elements: a 600 s, 25-node run at 100 ops/s recorded about 220 million. As
//! `serde_json::Value`s (32 bytes each, plus the array) they took the runner to 7 GiB. Held here,
//! the same reads take a few tens of MiB, and they serialise to the very same JSON.
//!
//! # Layout
//! A list is cut into chunks of [`CHUNK`] elements (the last one possibly shorter). A chunk holds
//! its first element as a LEB128 varint, then each following element as the zigzag varint of its
//! difference to the previous one, so the ascending runs a node's log mostly consists of cost one
//! byte per element. Chunks are interned in a [`ChunkPool`]: a node answers reads with its log in
//! log order, so its successive reads are prefixes of one another and share every full chunk but
//! the last. A read thus costs one pointer per [`CHUNK`] elements plus its last chunk, and each
//! distinct chunk is stored once. Nothing depends on that sharing for correctness: a list that
//! shares nothing is simply stored whole, at about one or two bytes an element.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::Value;

/// Elements per chunk. Smaller chunks share more of a growing list (only the last chunk
/// differs) but cost a pointer (16 bytes) each; at 256, a 10,000-element read costs about
/// 0.6 KB of pointers plus at most one unshared chunk of ~256 bytes.
pub const CHUNK: usize = 256;

/// The set of distinct chunks of every [`IntList`] built with it, so equal chunks are stored
/// once. Dropping the pool frees nothing the lists still use; it only ends the sharing.
#[derive(Debug, Default)]
pub struct ChunkPool {
    chunks: HashSet<Arc<[u8]>>,
}

impl ChunkPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// The pooled copy of `bytes`, added if new.
    fn intern(&mut self, bytes: &[u8]) -> Arc<[u8]> {
        if let Some(c) = self.chunks.get(bytes) {
            return Arc::clone(c);
        }
        let c: Arc<[u8]> = Arc::from(bytes);
        self.chunks.insert(Arc::clone(&c));
        c
    }

    /// Distinct chunks held, and their total size in bytes (for tests and diagnostics).
    pub fn footprint(&self) -> (usize, usize) {
        (self.chunks.len(), self.chunks.iter().map(|c| c.len()).sum())
    }
}

/// An ordered list of `u64`s, in chunks (see the module docs). Cloning shares the chunks.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IntList {
    len: usize,
    chunks: Box<[Arc<[u8]>]>,
}

impl IntList {
    /// The list of `values`, in order, with its chunks interned in `pool`.
    pub fn new(values: impl IntoIterator<Item = u64>, pool: &mut ChunkPool) -> Self {
        let mut chunks = Vec::new();
        let mut buf = Vec::with_capacity(2 * CHUNK);
        let mut len = 0;
        let mut prev = 0u64;
        for v in values {
            if len % CHUNK == 0 {
                if !buf.is_empty() {
                    chunks.push(pool.intern(&buf));
                    buf.clear();
                }
                put_varint(&mut buf, v);
            } else {
                put_varint(&mut buf, zigzag(v.wrapping_sub(prev)));
            }
            prev = v;
            len += 1;
        }
        if !buf.is_empty() {
            chunks.push(pool.intern(&buf));
        }
        IntList {
            len,
            chunks: chunks.into_boxed_slice(),
        }
    }

    /// The list of `value`'s elements if it is an array of non-negative integers (each of which
    /// serde_json holds as a `u64`, so [`IntList::to_json`] gives back an equal `Value` and the
    /// same JSON text); `None` otherwise.
    pub fn from_json(value: &Value, pool: &mut ChunkPool) -> Option<Self> {
        let items = value.as_array()?;
        if !items.iter().all(Value::is_u64) {
            return None;
        }
        Some(Self::new(items.iter().filter_map(Value::as_u64), pool))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            chunks: self.chunks.iter(),
            bytes: &[],
            first: true,
            prev: 0,
        }
    }

    /// The list as a JSON array (allocates every element: for output and tests, not for
    /// checkers).
    pub fn to_json(&self) -> Value {
        Value::Array(self.iter().map(Value::from).collect())
    }

    /// Whether `value` is a JSON array of the same integers in the same order.
    pub fn eq_json(&self, value: &Value) -> bool {
        value.as_array().is_some_and(|items| {
            items.len() == self.len
                && items
                    .iter()
                    .zip(self.iter())
                    .all(|(a, b)| a.as_u64() == Some(b))
        })
    }
}

/// The elements of an [`IntList`].
pub struct Iter<'a> {
    chunks: std::slice::Iter<'a, Arc<[u8]>>,
    bytes: &'a [u8],
    /// The next element starts a chunk (absolute, not a difference).
    first: bool,
    prev: u64,
}

impl Iterator for Iter<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.bytes.is_empty() {
            self.bytes = self.chunks.next()?;
            self.first = true;
        }
        let raw = take_varint(&mut self.bytes);
        self.prev = if self.first {
            raw
        } else {
            self.prev.wrapping_add(unzigzag(raw))
        };
        self.first = false;
        Some(self.prev)
    }
}

impl fmt::Debug for IntList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The same text as the equal `Value`'s `Display`: `[1,2,3]`.
impl fmt::Display for IntList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{v}")?;
        }
        f.write_str("]")
    }
}

/// A JSON array of integers, as the equal `Value` serialises.
impl Serialize for IntList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for v in self.iter() {
            seq.serialize_element(&v)?;
        }
        seq.end()
    }
}

/// Maps a difference (as a wrapped `u64`) to a small number when it is small in either
/// direction: 0, −1, 1, −2, … → 0, 1, 2, 3, …
fn zigzag(d: u64) -> u64 {
    let d = d as i64;
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(z: u64) -> u64 {
    (z >> 1) ^ (z & 1).wrapping_neg()
}

/// LEB128: seven bits a byte, low bits first, the high bit set on all but the last byte.
fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads one varint written by [`put_varint`]. The bytes are only ever ours, so a truncated
/// varint cannot occur; it would end the number at the end of the chunk rather than panic.
fn take_varint(bytes: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some((&b, rest)) = bytes.split_first() {
        *bytes = rest;
        if shift < 64 {
            v |= u64::from(b & 0x7f) << shift;
        }
        shift += 7;
        if b < 0x80 {
            break;
        }
    }
    v
}

#[cfg(test)]
mod tests;

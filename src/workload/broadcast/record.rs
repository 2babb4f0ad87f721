//! The records the broadcast node persists, in a compact binary form (all integers little-endian):
//!
//! | tag | record | fields |
//! |---|---|---|
//! | 1 | start of a log | log id u64, cluster id u64 |
//! | 2 | log entries | first position u64, count u32, then per entry: origin u32, length u32, JSON text |
//! | 3 | link cursors | peer index u32, peer log id u64 (0 = unknown), acked u64, reset_at u64 |
//! | 4 | neighbour list (overlay `given`) | count u32, then each peer index u32 |
//! | 5 | log values (snapshots) | first position u64, count u32, origins u32 × count, then the values as one JSON array |
//!
//! Tag 5 is what a compaction writes ([`encode_values`]): the same content as tag 2, laid out so
//! that recovery decodes a whole record's values with one JSON parse (about 5 bytes per value
//! plus its text, against 8 plus its text and a parse each).
//!
//! Decoding is total: any byte string yields a record or an error, never a panic.

use super::index::ValueIndex;
use super::FROM_CLIENT;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Target size of one entries record, so a large backlog is written as several modest records.
pub const ENTRIES_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Start {
        log_id: u64,
        cluster: u64,
    },
    Entries {
        at: u64,
        entries: Vec<(u32, Value)>,
    },
    /// The same content as `Entries`, as a values record (tag 5) decodes: origins and values
    /// apart, so recovery moves them into the log without a copy.
    Values {
        at: u64,
        origins: Vec<u32>,
        values: Vec<Value>,
    },
    Link {
        peer: u32,
        peer_log: u64,
        acked: u64,
        reset_at: u64,
    },
    Topology {
        peers: Vec<u32>,
    },
}

const START: u8 = 1;
const ENTRIES: u8 = 2;
const LINK: u8 = 3;
const TOPOLOGY: u8 = 4;
const VALUES: u8 = 5;

/// The bytes of a values record (tag 5) before its origins: tag, position, count.
const VALUES_HEAD: usize = 13;

/// Identifies the node list a log was written for (FNV-1a: stable across builds, unlike std's
/// hasher).
pub fn cluster_id(nodes: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for n in nodes {
        for b in n.bytes().chain([0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

pub fn encode(r: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    match r {
        Record::Start { log_id, cluster } => {
            out.push(START);
            out.extend_from_slice(&log_id.to_le_bytes());
            out.extend_from_slice(&cluster.to_le_bytes());
        }
        Record::Entries { at, entries } => {
            let log: Vec<Value> = entries.iter().map(|(_, v)| v.clone()).collect();
            let origin: Vec<u32> = entries.iter().map(|(o, _)| *o).collect();
            let (mut rec, _) = encode_entries(0, &log, &origin, usize::MAX);
            rec[1..9].copy_from_slice(&at.to_le_bytes());
            return rec;
        }
        Record::Values {
            at,
            origins,
            values,
        } => {
            let (mut rec, _) = encode_values(0, values, origins, usize::MAX);
            rec[1..9].copy_from_slice(&at.to_le_bytes());
            return rec;
        }
        Record::Link {
            peer,
            peer_log,
            acked,
            reset_at,
        } => {
            out.push(LINK);
            out.extend_from_slice(&peer.to_le_bytes());
            out.extend_from_slice(&peer_log.to_le_bytes());
            out.extend_from_slice(&acked.to_le_bytes());
            out.extend_from_slice(&reset_at.to_le_bytes());
        }
        Record::Topology { peers } => {
            out.push(TOPOLOGY);
            out.extend_from_slice(&(peers.len() as u32).to_le_bytes());
            for p in peers {
                out.extend_from_slice(&p.to_le_bytes());
            }
        }
    }
    out
}

/// Encodes entries `from..` of the log into one record of about `max_bytes` (at least one
/// entry); returns it and the log position it ends at.
pub fn encode_entries(
    from: usize,
    log: &[Value],
    origin: &[u32],
    max_bytes: usize,
) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(64);
    out.push(ENTRIES);
    out.extend_from_slice(&(from as u64).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut upto = from;
    let end = log.len().min(origin.len());
    while upto < end && (upto == from || out.len() < max_bytes) {
        out.extend_from_slice(&origin[upto].to_le_bytes());
        let len_at = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
        // Writing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &log[upto]);
        let len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        upto += 1;
    }
    let count = ((upto - from) as u32).to_le_bytes();
    out[9..13].copy_from_slice(&count);
    (out, upto)
}

/// Encodes entries `from..` of the log as one values record (tag 5) of about `max_bytes` (at
/// least one entry); returns it and the log position it ends at.
pub fn encode_values(
    from: usize,
    log: &[Value],
    origin: &[u32],
    max_bytes: usize,
) -> (Vec<u8>, usize) {
    let end = log.len().min(origin.len());
    // The values' text first (its length decides how many fit), then the head and origins.
    let mut text = Vec::with_capacity(64);
    text.push(b'[');
    let mut upto = from;
    while upto < end && (upto == from || text.len() + 4 * (upto - from) < max_bytes) {
        if upto > from {
            text.push(b',');
        }
        // Writing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut text, &log[upto]);
        upto += 1;
    }
    text.push(b']');
    let count = upto - from;
    let mut out = Vec::with_capacity(VALUES_HEAD + 4 * count + text.len());
    out.push(VALUES);
    out.extend_from_slice(&(from as u64).to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for o in &origin[from..upto] {
        out.extend_from_slice(&o.to_le_bytes());
    }
    out.extend_from_slice(&text);
    (out, upto)
}

/// The bytes of JSON text of the values in an encoded entries or values record of `count`
/// entries (what is left once the fixed layout is taken away; 0 for other records). For the
/// live-size estimate of a recovered log.
pub fn value_text_bytes(raw: &[u8]) -> u64 {
    let Some(head) = raw.get(..VALUES_HEAD) else {
        return 0;
    };
    let count = u32::from_le_bytes([head[9], head[10], head[11], head[12]]) as u64;
    let raw = raw.len() as u64;
    match head[0] {
        ENTRIES => raw.saturating_sub(13 + 8 * count),
        // Brackets and commas: `count + 1` bytes.
        VALUES => raw.saturating_sub(13 + 4 * count + count + 1),
        _ => 0,
    }
}

/// About how many bytes of log (frame headers included) [`encode_values`] records holding
/// `count` values of `text` bytes of JSON take, in records of [`ENTRIES_BYTES`].
pub fn values_log_bytes(count: u64, text: u64) -> u64 {
    let body = 5 * count + text;
    let records = body.div_ceil(ENTRIES_BYTES as u64).max(1);
    body + records * (crate::store::frame_len(VALUES_HEAD + 1) - 1)
}

struct Dec<'a>(&'a [u8]);

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "truncated: {n} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    let Some((&tag, rest)) = bytes.split_first() else {
        return Err("empty record".into());
    };
    let mut d = Dec(rest);
    let r = match tag {
        START => Record::Start {
            log_id: d.u64()?,
            cluster: d.u64()?,
        },
        ENTRIES => {
            let at = d.u64()?;
            let count = d.u32()? as usize;
            // Each entry takes at least 9 bytes: never trust `count` for an allocation.
            let mut entries = Vec::with_capacity(count.min(d.0.len() / 9));
            for _ in 0..count {
                let origin = d.u32()?;
                let len = d.u32()? as usize;
                let v: Value = serde_json::from_slice(d.take(len)?)
                    .map_err(|e| format!("entry {}: bad JSON: {e}", entries.len()))?;
                entries.push((origin, v));
            }
            Record::Entries { at, entries }
        }
        VALUES => {
            let at = d.u64()?;
            let count = d.u32()? as usize;
            let origins = d.take(count.checked_mul(4).ok_or("count overflows")?)?;
            let values: Vec<Value> = serde_json::from_slice(std::mem::take(&mut d.0))
                .map_err(|e| format!("values: bad JSON: {e}"))?;
            if values.len() != count {
                return Err(format!("{} values for a count of {count}", values.len()));
            }
            let origins = origins
                .chunks_exact(4)
                .map(|o| u32::from_le_bytes([o[0], o[1], o[2], o[3]]))
                .collect();
            Record::Values {
                at,
                origins,
                values,
            }
        }
        LINK => Record::Link {
            peer: d.u32()?,
            peer_log: d.u64()?,
            acked: d.u64()?,
            reset_at: d.u64()?,
        },
        TOPOLOGY => {
            let count = d.u32()? as usize;
            let mut peers = Vec::with_capacity(count.min(d.0.len() / 4));
            for _ in 0..count {
                peers.push(d.u32()?);
            }
            Record::Topology { peers }
        }
        t => return Err(format!("unknown record tag {t}")),
    };
    if !d.0.is_empty() {
        return Err(format!("{} trailing bytes", d.0.len()));
    }
    Ok(r)
}

/// The log rebuilt from records.
#[derive(Debug, Default)]
pub struct Segment {
    pub log_id: u64,
    /// The values in log order, and each one's origin (a valid peer index or `FROM_CLIENT`).
    pub values: Vec<Value>,
    pub origins: Vec<u32>,
    /// Latest cursors per peer index.
    pub links: HashMap<usize, SavedCursors>,
    /// The latest neighbour list, as valid peer indices.
    pub topology: Option<Vec<usize>>,
    /// False if an undecodable or inconsistent record ended it early.
    pub complete: bool,
    /// Bytes of JSON text of `values` (for the live-size estimate).
    pub text_bytes: u64,
    /// Each value's position: built here, where duplicates must be caught anyway, and handed to
    /// the node as its index, so recovery hashes each value once.
    pub seen: ValueIndex,
}

impl Segment {
    /// Appends decoded entries at log position `at`; an error (a gap, a bad origin, a duplicate)
    /// ends the segment, keeping the entries before the offending one.
    fn append(
        &mut self,
        at: u64,
        origins: Vec<u32>,
        values: Vec<Value>,
        n: usize,
        me: usize,
    ) -> Result<(), String> {
        if at != self.values.len() as u64 {
            return Err(format!(
                "entries at position {at}, but the log has {}",
                self.values.len()
            ));
        }
        for (o, v) in origins.into_iter().zip(values) {
            if o != FROM_CLIENT && (o as usize >= n || o as usize == me) {
                return Err(format!("bad origin {o}"));
            }
            let pos = self.values.len();
            if self.seen.insert_new(&self.values, &v, pos).is_err() {
                return Err(format!("duplicate value {v}"));
            }
            self.values.push(v);
            self.origins.push(o);
        }
        Ok(())
    }
}

/// How many values the entries and values records among `records` hold, from their headers
/// (up to the next start record; capped so that a forged count cannot reserve much).
fn values_after(records: &[Vec<u8>]) -> usize {
    let mut total = 0usize;
    for raw in records {
        let Some(head) = raw.get(..VALUES_HEAD) else {
            continue;
        };
        match head[0] {
            ENTRIES | VALUES => {
                let count = u32::from_le_bytes([head[9], head[10], head[11], head[12]]) as usize;
                // Each value takes at least 5 bytes of its record.
                total += count.min(raw.len() / 5);
            }
            START => break,
            _ => {}
        }
    }
    total
}

/// The cursors of one link as the latest cursor record for it holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SavedCursors {
    /// The peer's log id, or 0 if unknown.
    pub peer_log: u64,
    pub acked: u64,
    pub reset_at: u64,
}

/// Replays `records`: each start record for this `cluster` begins a new segment (a fresh copy
/// supersedes what came before); within a segment, the first record that does not decode or
/// does not fit ends it. Returns the last segment, or `None` if there is none, and every log id
/// found in a start record.
pub fn recover(
    records: &[Vec<u8>],
    cluster: u64,
    n: usize,
    me: usize,
) -> (Option<Segment>, HashSet<u64>) {
    let mut seg: Option<Segment> = None;
    let mut ids = HashSet::new();
    // Records are being skipped until the next start record.
    let mut skipping = false;
    for (i, raw) in records.iter().enumerate() {
        let r = decode(raw);
        if let Ok(Record::Start { log_id, cluster: c }) = r {
            ids.insert(log_id | 1);
            if c == cluster {
                let mut fresh = Segment {
                    log_id: log_id | 1,
                    complete: true,
                    ..Segment::default()
                };
                // Room for every value the records after it hold, so that nothing is rehashed
                // or copied as the log grows (a million values: most of recovery's time).
                let room = values_after(&records[i + 1..]);
                fresh.values.reserve(room);
                fresh.origins.reserve(room);
                fresh.seen.reserve(room);
                seg = Some(fresh);
                skipping = false;
            } else {
                tracing::warn!(record = i, "a log written for another node list; ignored");
                seg = None;
                skipping = true;
            }
            continue;
        }
        if skipping {
            continue;
        }
        let Some(s) = seg.as_mut() else {
            tracing::warn!(record = i, "records before any start record; ignored");
            skipping = true;
            continue;
        };
        let applied = r.and_then(|r| match r {
            Record::Entries { at, entries } => {
                let (origins, values) = entries.into_iter().unzip();
                s.append(at, origins, values, n, me)?;
                s.text_bytes += value_text_bytes(raw);
                Ok(())
            }
            Record::Values {
                at,
                origins,
                values,
            } => {
                s.append(at, origins, values, n, me)?;
                s.text_bytes += value_text_bytes(raw);
                Ok(())
            }
            Record::Link {
                peer,
                peer_log,
                acked,
                reset_at,
            } => {
                let p = peer as usize;
                if p >= n || p == me {
                    return Err(format!("bad peer {peer}"));
                }
                s.links.insert(
                    p,
                    SavedCursors {
                        peer_log,
                        acked,
                        reset_at,
                    },
                );
                Ok(())
            }
            Record::Topology { peers } => {
                let peers: Vec<usize> = peers.into_iter().map(|p| p as usize).collect();
                if let Some(p) = peers.iter().find(|&&p| p >= n || p == me) {
                    return Err(format!("bad neighbour {p}"));
                }
                s.topology = Some(peers);
                Ok(())
            }
            Record::Start { .. } => Ok(()),
        });
        if let Err(e) = applied {
            tracing::warn!(
                record = i,
                kept_values = s.values.len(),
                "recovery stops at an unusable record: {e}"
            );
            s.complete = false;
            skipping = true;
        }
    }
    (seg, ids)
}

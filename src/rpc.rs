//! Outstanding node-to-node calls: `msg_id` correlation with deadlines.
//!
//! A call is registered when a request is sent, resolved when a reply with the matching
//! `in_reply_to` arrives, and expired when its deadline passes, so abandoned calls (the peer was
//! partitioned, killed or paused) never pile up. Pure data: the caller passes the time in.

use crate::node::Millis;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Calls in flight, each carrying the caller's context `T`.
#[derive(Debug)]
pub struct Calls<T> {
    pending: HashMap<u64, (Millis, T)>,
    /// Deadlines in order; entries for calls already resolved are skipped lazily.
    deadlines: BinaryHeap<Reverse<(Millis, u64)>>,
}

impl<T> Default for Calls<T> {
    fn default() -> Self {
        Calls {
            pending: HashMap::new(),
            deadlines: BinaryHeap::new(),
        }
    }
}

impl<T> Calls<T> {
    /// Remembers request `msg_id` until `deadline`.
    pub fn register(&mut self, msg_id: u64, deadline: Millis, ctx: T) {
        self.pending.insert(msg_id, (deadline, ctx));
        self.deadlines.push(Reverse((deadline, msg_id)));
    }

    /// The context of the call answered by `in_reply_to`, if it is still outstanding. A late reply
    /// to an expired call, or a reply to nothing we sent, yields `None`.
    pub fn resolve(&mut self, in_reply_to: u64) -> Option<T> {
        self.pending.remove(&in_reply_to).map(|(_, ctx)| ctx)
    }

    /// Removes and returns every call whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Millis) -> Vec<(u64, T)> {
        let mut out = Vec::new();
        while let Some(&Reverse((deadline, id))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if let Some((d, _)) = self.pending.get(&id) {
                if *d == deadline {
                    let (_, ctx) = self.pending.remove(&id).expect("present");
                    out.push((id, ctx));
                }
            }
        }
        // Resolved calls leave stale heap entries behind; rebuild when they dominate.
        if self.deadlines.len() > 64 && self.deadlines.len() > 4 * self.pending.len() {
            self.deadlines = self
                .pending
                .iter()
                .map(|(id, (d, _))| Reverse((*d, *id)))
                .collect();
        }
        out
    }

    /// The earliest deadline of a call still outstanding (stale entries of answered calls are
    /// dropped on the way), so a driver can sleep until then.
    pub fn next_deadline(&mut self) -> Option<Millis> {
        while let Some(&Reverse((deadline, id))) = self.deadlines.peek() {
            if self.pending.get(&id).is_some_and(|(d, _)| *d == deadline) {
                return Some(deadline);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Forgets the calls whose context fails `keep` (made moot by other means, e.g. a cumulative
    /// acknowledgement); they will neither resolve nor expire.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.pending.retain(|_, (_, ctx)| keep(ctx));
    }

    /// Whether some outstanding call's context passes `pred`.
    pub fn any(&self, mut pred: impl FnMut(&T) -> bool) -> bool {
        self.pending.values().any(|(_, ctx)| pred(ctx))
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_then_expire() {
        let mut c = Calls::default();
        c.register(1, 100, "a");
        c.register(2, 50, "b");
        c.register(3, 200, "c");
        assert_eq!(c.resolve(1), Some("a"));
        assert_eq!(c.resolve(1), None, "a reply is consumed once");
        assert_eq!(c.resolve(99), None, "replies to unknown ids are ignored");
        assert_eq!(c.next_deadline(), Some(50));
        assert_eq!(c.expire(49), vec![]);
        assert_eq!(c.expire(150), vec![(2, "b")]);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.next_deadline(),
            Some(200),
            "the answered call's 100 is skipped"
        );
        assert_eq!(c.expire(1000), vec![(3, "c")]);
        assert!(c.is_empty());
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.resolve(3), None, "late reply to an expired call");
    }

    #[test]
    fn forgotten_calls_neither_resolve_nor_expire() {
        let mut c = Calls::default();
        c.register(1, 100, ("p", 5));
        c.register(2, 200, ("p", 9));
        c.register(3, 150, ("q", 5));
        c.retain(|&(peer, upto)| peer != "p" || upto > 6);
        assert_eq!(c.resolve(1), None);
        assert_eq!(
            c.next_deadline(),
            Some(150),
            "the forgotten call's 100 is skipped"
        );
        assert_eq!(c.expire(1000), vec![(3, ("q", 5)), (2, ("p", 9))]);
    }

    #[test]
    fn abandoned_calls_do_not_accumulate() {
        let mut c = Calls::default();
        for i in 0..10_000u64 {
            c.register(i, i, ());
            if i % 2 == 0 {
                c.resolve(i);
            }
            c.expire(i.saturating_sub(10));
        }
        c.expire(u64::MAX);
        assert!(c.is_empty());
        assert!(c.deadlines.len() <= 64);
    }
}

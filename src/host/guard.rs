//! The client guard: which client requests are too old to serve and which replies too late to
//! send. Pure: fed with the driver's clock, so it is tested without real time.

use crate::node::Millis;
use std::collections::HashMap;

/// Decides which client traffic is too late to answer.
///
/// Maelstrom's client gives up on a request after 5 s and closes its client id, and a reply to a
/// closed client cuts this node's stdout off for the rest of the test. So the host answers no
/// client request it has held longer than `deadline_ms` (a dropped request is just a timeout to
/// Maelstrom, which it tolerates): a request is dropped before the workload sees it, and a reply is
/// dropped if its request has grown too old meanwhile (one handled just before a pause and answered
/// after it, or one stuck behind a slow disk).
///
/// **Pauses.** After a SIGSTOP/SIGCONT pause, the requests that piled up in the stdin pipe are read
/// within milliseconds of the resume and look fresh, so their age must be guessed. The shell tells
/// the guard when the process was resumed ([`ClientGuard::resumed`]: a SIGCONT handler sets a flag
/// that the shell checks before handling anything, on the thread that handles messages, so the flag
/// is always seen before the backlog). The pause began at the earliest right after the last thing
/// the shell did ([`ClientGuard::active`]), so every message handled within `stall_ms` after the
/// resume is dated back to that moment, the most conservative guess (the backlog drains in
/// milliseconds, well inside that window). A short pause of a busy node therefore drops nothing; a
/// long pause, or any pause of a node that had been idle for longer than the deadline, drops what was
/// queued during it plus the requests of the first `stall_ms` after it: availability, never safety.
///
/// Knowing about a pause from the signal rather than from a clock gap means no heartbeat timer: an
/// idle node does not wake up at all, except once per SIGCONT, which the shell takes as a wake-up so
/// that [`ClientGuard::resumed`] gets the resume's own time (a request arriving long after the
/// resume is then not dated back into the pause).
#[derive(Debug)]
pub struct ClientGuard {
    stall_ms: Millis,
    deadline_ms: Millis,
    /// When the shell last handled anything: a pause began after this.
    last_active: Millis,
    /// The last pause: (its earliest start, until when arrivals are dated back to it).
    stall: Option<(Millis, Millis)>,
    /// Client requests handed to the workload and not answered yet: (client, msg_id) → arrival.
    /// Entries older than the deadline are swept once per deadline: their replies are dropped anyway.
    open: HashMap<(String, u64), Millis>,
    next_sweep: Millis,
}

impl ClientGuard {
    /// `stall_ms` = 0 ignores pauses; `deadline_ms` = 0 never drops anything.
    pub fn new(stall_ms: Millis, deadline_ms: Millis, now: Millis) -> Self {
        ClientGuard {
            stall_ms,
            deadline_ms,
            last_active: now,
            stall: None,
            open: HashMap::new(),
            next_sweep: now.saturating_add(deadline_ms),
        }
    }

    /// The shell handled something at `now` (the process was running then).
    pub fn active(&mut self, now: Millis) {
        self.last_active = self.last_active.max(now);
        if self.deadline_ms > 0 && now >= self.next_sweep {
            let deadline = self.deadline_ms;
            self.open
                .retain(|_, at| now.saturating_sub(*at) <= deadline);
            self.next_sweep = now.saturating_add(deadline);
        }
    }

    /// The process was resumed after being stopped; returns how long it may have been stalled (since
    /// it was last active). Arrivals in the next `stall_ms` are dated back to the stall's start.
    pub fn resumed(&mut self, now: Millis) -> Millis {
        let gap = now.saturating_sub(self.last_active);
        if self.stall_ms == 0 {
            return gap;
        }
        self.stall = Some((self.last_active, now.saturating_add(self.stall_ms)));
        tracing::warn!(
            stalled_ms_at_most = gap,
            "resumed after a stop (SIGCONT); client requests older than {} ms are dropped, not answered late",
            self.deadline_ms
        );
        gap
    }

    /// When a message handled now (probably) arrived.
    pub fn arrival(&self, now: Millis) -> Millis {
        match self.stall {
            Some((start, until)) if now < until => start,
            _ => now,
        }
    }

    fn too_old(&self, arrival: Millis, now: Millis) -> bool {
        self.deadline_ms > 0 && now.saturating_sub(arrival) > self.deadline_ms
    }

    /// A client request is about to be handled: whether to handle it (else drop it unanswered).
    /// Admitted requests with a `msg_id` are remembered until answered.
    pub fn admit(&mut self, client: &str, msg_id: Option<u64>, now: Millis) -> bool {
        let at = self.arrival(now);
        if self.too_old(at, now) {
            return false;
        }
        if let (Some(id), true) = (msg_id, self.deadline_ms > 0) {
            self.open.insert((client.to_string(), id), at);
        }
        true
    }

    /// Whether a request handled now may be answered at once (the shell's own error replies).
    pub fn fresh(&self, now: Millis) -> bool {
        let at = self.arrival(now);
        !self.too_old(at, now)
    }

    /// Whether a message to a client may be sent now. A reply to a request that was never admitted,
    /// was already answered, or is older than the deadline is not.
    pub fn release(&mut self, client: &str, in_reply_to: Option<u64>, now: Millis) -> bool {
        let Some(id) = in_reply_to else {
            return true;
        };
        if self.deadline_ms == 0 {
            return true;
        }
        match self.open.remove(&(client.to_string(), id)) {
            Some(at) => !self.too_old(at, now),
            None => false,
        }
    }

    /// Requests admitted and not answered yet (for tests and logs).
    pub fn open_requests(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_stall_no_drops() {
        let mut g = ClientGuard::new(1000, 4000, 0);
        for t in (0..10_000).step_by(100) {
            assert!(g.admit("c1", Some(t), t + 5));
            g.active(t + 5);
            assert!(g.release("c1", Some(t), t + 50));
            g.active(t + 50);
        }
        assert_eq!(g.open_requests(), 0);
    }

    #[test]
    fn a_long_pause_drops_requests_queued_during_it_and_late_replies() {
        let mut g = ClientGuard::new(1000, 4000, 0);
        g.active(100);
        // Request 1 is handled just before the pause; its reply only comes after it.
        assert!(g.admit("c1", Some(1), 150));
        g.active(150);
        // Stopped from ~150 to 10_200; the shell sees the SIGCONT flag before the backlog.
        assert_eq!(g.resumed(10_200), 10_050);
        assert!(!g.admit("c2", Some(7), 10_201), "queued during the pause");
        assert_eq!(g.arrival(10_202), 150, "dated back to the last activity");
        assert!(!g.release("c1", Some(1), 10_204), "reply after the pause");
        g.active(10_204);
        // More backlog right after the resume: dropped too.
        assert!(!g.admit("c3", Some(1), 10_300));
        assert!(!g.fresh(10_300));
        // After the drain window, new requests are served normally.
        assert!(g.admit("c4", Some(1), 11_300));
        assert!(g.release("c4", Some(1), 11_310));
    }

    #[test]
    fn a_short_pause_of_a_busy_node_drops_nothing() {
        let mut g = ClientGuard::new(1000, 4000, 0);
        assert!(g.admit("c1", Some(1), 150));
        g.active(150);
        // A 2.5 s pause: queued requests are at most 2.5 s old, inside the 4 s deadline.
        g.resumed(2_650);
        assert!(g.admit("c2", Some(1), 2_650));
        assert!(g.release("c1", Some(1), 2_700));
        assert!(g.release("c2", Some(1), 2_700));
    }

    #[test]
    fn a_pause_after_a_long_idle_spell_is_dated_from_the_last_activity() {
        // The guard cannot tell when a pause began, only that the node did nothing after its last
        // activity: the cost is availability after a pause, never a late reply.
        let mut g = ClientGuard::new(1000, 4000, 0);
        g.active(1_000);
        g.resumed(6_000);
        assert!(!g.admit("c1", Some(1), 6_001));
        assert!(g.admit("c1", Some(2), 7_001), "after the drain window");
        // Without a pause, idleness alone drops nothing.
        let mut g = ClientGuard::new(1000, 4000, 0);
        g.active(1_000);
        assert!(g.admit("c1", Some(1), 60_000));
    }

    #[test]
    fn slow_replies_are_dropped_even_without_a_stall() {
        let mut g = ClientGuard::new(1000, 4000, 0);
        assert!(g.admit("c1", Some(1), 0));
        for t in (100..=4_100).step_by(100) {
            g.active(t);
        }
        assert!(
            !g.release("c1", Some(1), 4_150),
            "too old: dropped (and swept)"
        );
        assert!(g.admit("c1", Some(2), 4_150));
        assert!(!g.release("c1", Some(2), 8_200), "still open but too old");
        for t in (4_200..=9_000).step_by(100) {
            g.active(t);
        }
        assert_eq!(g.open_requests(), 0, "swept once past the deadline");
    }

    #[test]
    fn replies_to_unknown_or_answered_requests_are_not_sent() {
        let mut g = ClientGuard::new(1000, 4000, 0);
        assert!(!g.release("c1", Some(9), 10));
        assert!(g.admit("c1", Some(9), 10));
        assert!(g.release("c1", Some(9), 11));
        assert!(!g.release("c1", Some(9), 12), "answered twice");
        assert!(g.release("c1", None, 12), "not a reply");
        assert!(g.admit("c1", None, 12));
    }

    #[test]
    fn knobs_turn_the_guard_off() {
        let mut g = ClientGuard::new(0, 4000, 0);
        g.resumed(60_000);
        assert!(g.admit("c1", Some(1), 60_000), "pauses ignored");
        let mut g = ClientGuard::new(1000, 0, 0);
        assert!(g.admit("c1", Some(1), 60_000));
        assert!(g.release("c1", Some(1), 600_000), "no deadline");
        assert!(g.release("c1", Some(2), 600_000));
        assert_eq!(g.open_requests(), 0);
    }
}

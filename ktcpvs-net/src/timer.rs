//! Per-session deadlines without per-event allocation: a binary heap with
//! lazy cancellation.
//!
//! Each session owns a [`Deadline`]. Moving a deadline *later* (the common
//! case: an idle timeout refreshed on every relayed chunk) only writes the
//! new instant into the session; the heap keeps its earlier entry, and when
//! that entry comes due the worker sees the session's real deadline is
//! later and re-arms it once. Moving a deadline *earlier* pushes a new
//! entry, and the old one, no longer the session's armed tick, is ignored
//! when it pops.
//! The heap's capacity is reused, so steady state allocates nothing.
//! Deadlines are whole microseconds since the heap's epoch, two words a
//! session and two a heap entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Microseconds since the heap's epoch: deadlines are kept in this form so
/// that every session's [`Deadline`] and every heap entry stay two words
/// (an idle keep-alive connection is mostly its session slot and its heap
/// entry).
type Tick = u64;

/// "No deadline" in a [`Tick`] field.
const NEVER: Tick = Tick::MAX;

/// The deadline of one session, as the session sees it.
///
/// A heap entry is live for the session in its slot when its tick is the
/// session's `armed` tick. An entry left by an earlier session of the same
/// slot can only match if the new session armed that very microsecond,
/// and then firing it is exactly what the new session asked for; so no
/// generation count is needed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// When the session wants to be woken ([`NEVER`]: not at all).
    at: Tick,
    /// The tick of the heap entry that is live for this session
    /// ([`NEVER`]: none).
    armed: Tick,
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline {
            at: NEVER,
            armed: NEVER,
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Tick,
    key: usize,
}

/// What a due heap entry means for its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// The session's deadline has passed: run its timeout.
    Fire,
    /// The entry was stale or the deadline moved later (and was re-armed).
    Ignore,
}

/// The timer heap of one worker.
#[derive(Debug)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Tick 0: a second before the heap was made, so that instants taken
    /// just before it (a deadline computed from an earlier "now") keep
    /// their order.
    epoch: Instant,
}

impl Timers {
    /// An empty heap.
    pub fn new() -> Self {
        Timers {
            heap: BinaryHeap::with_capacity(1024),
            epoch: Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now),
        }
    }

    /// `at` as a tick.
    fn tick(&self, at: Instant) -> Tick {
        // Seconds and microseconds apart: no 128-bit arithmetic on a path
        // taken several times per request.
        let d = at.saturating_duration_since(self.epoch);
        d.as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(d.subsec_micros()))
            .min(NEVER - 1)
    }

    /// Sets (or clears, with `None`) the deadline of the session `key`.
    pub fn set(&mut self, key: usize, deadline: &mut Deadline, at: Option<Instant>) {
        deadline.at = at.map_or(NEVER, |at| self.tick(at));
        if deadline.at != NEVER && deadline.armed > deadline.at {
            self.arm(key, deadline, deadline.at);
        }
    }

    fn arm(&mut self, key: usize, deadline: &mut Deadline, at: Tick) {
        deadline.armed = at;
        self.heap.push(Reverse(Entry { at, key }));
    }

    /// How long until the earliest entry is due (zero if one is already due).
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        let now = self.tick(now);
        self.heap
            .peek()
            .map(|Reverse(e)| Duration::from_micros(e.at.saturating_sub(now)))
    }

    /// Pops the next entry due at `now`: its key and its tick.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, u64)> {
        let now = self.tick(now);
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => {
                let Reverse(e) = self.heap.pop()?;
                Some((e.key, e.at))
            }
            _ => None,
        }
    }

    /// Decides what a popped entry means for the session that owns
    /// `deadline` now (the slot may have been reused by another session).
    pub fn resolve(&mut self, key: usize, tick: u64, deadline: &mut Deadline, now: Instant) -> Due {
        if deadline.armed != tick || tick == NEVER {
            return Due::Ignore;
        }
        deadline.armed = NEVER;
        match deadline.at {
            NEVER => Due::Ignore,
            at if at > self.tick(now) => {
                self.arm(key, deadline, at);
                Due::Ignore
            }
            _ => {
                deadline.at = NEVER;
                Due::Fire
            }
        }
    }

    /// Entries in the heap, live or stale.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap is empty.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(t: &mut Timers, d: &mut Deadline, now: Instant) -> Vec<Due> {
        let mut out = Vec::new();
        while let Some((key, g)) = t.pop_due(now) {
            out.push(t.resolve(key, g, d, now));
        }
        out
    }

    #[test]
    fn later_deadline_does_not_push_and_rearms_once() {
        let base = Instant::now();
        let mut t = Timers::new();
        let mut d = Deadline::default();
        t.set(7, &mut d, Some(base + Duration::from_secs(1)));
        for i in 2..100 {
            t.set(7, &mut d, Some(base + Duration::from_secs(i)));
        }
        assert_eq!(t.len(), 1, "moving later never pushes");
        assert_eq!(
            drain(&mut t, &mut d, base + Duration::from_secs(2)),
            vec![Due::Ignore]
        );
        assert_eq!(t.len(), 1, "re-armed at the real deadline");
        assert_eq!(
            drain(&mut t, &mut d, base + Duration::from_secs(99)),
            vec![Due::Fire]
        );
        assert!(t.is_empty());
    }

    #[test]
    fn earlier_deadline_supersedes_and_clear_cancels() {
        let base = Instant::now();
        let mut t = Timers::new();
        let mut d = Deadline::default();
        t.set(1, &mut d, Some(base + Duration::from_secs(10)));
        t.set(1, &mut d, Some(base + Duration::from_secs(1)));
        assert_eq!(
            drain(&mut t, &mut d, base + Duration::from_secs(10)),
            vec![Due::Fire, Due::Ignore]
        );
        t.set(1, &mut d, Some(base + Duration::from_secs(20)));
        t.set(1, &mut d, None);
        assert_eq!(
            drain(&mut t, &mut d, base + Duration::from_secs(30)),
            vec![Due::Ignore]
        );
    }

    #[test]
    fn reused_slot_ignores_the_old_sessions_entry() {
        let base = Instant::now();
        let mut t = Timers::new();
        let mut old = Deadline::default();
        t.set(3, &mut old, Some(base));
        let mut new = Deadline::default();
        t.set(3, &mut new, Some(base + Duration::from_secs(5)));
        let (k, g) = t.pop_due(base).unwrap();
        assert_eq!(t.resolve(k, g, &mut new, base), Due::Ignore);
        assert_eq!(t.next_timeout(base), Some(Duration::from_secs(5)));
    }
}

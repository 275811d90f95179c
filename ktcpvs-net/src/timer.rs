//! Per-session deadlines without per-event allocation: a binary heap with
//! lazy cancellation by generation.
//!
//! Each session owns a [`Deadline`]. Moving a deadline *later* (the common
//! case: an idle timeout refreshed on every relayed chunk) only writes the
//! new instant into the session; the heap keeps its earlier entry, and when
//! that entry comes due the worker sees the session's real deadline is
//! later and re-arms it once. Moving a deadline *earlier* pushes a new
//! entry with a fresh generation, and the old entry is ignored when it pops.
//! The heap's capacity is reused, so steady state allocates nothing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// The deadline of one session, as the session sees it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Deadline {
    /// When the session wants to be woken, if at all.
    at: Option<Instant>,
    /// The instant of the heap entry that is live for this session, if any.
    armed: Option<Instant>,
    /// The generation of that live entry.
    generation: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Instant,
    generation: u64,
    key: usize,
}

/// What a due heap entry means for its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The session's deadline has passed: run its timeout.
    Fire,
    /// The entry was stale or the deadline moved later (and was re-armed).
    Ignore,
}

/// The timer heap of one worker.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    next_generation: u64,
}

impl Timers {
    /// An empty heap.
    pub fn new() -> Self {
        Timers {
            heap: BinaryHeap::with_capacity(1024),
            next_generation: 1,
        }
    }

    /// Sets (or clears, with `None`) the deadline of the session `key`.
    pub fn set(&mut self, key: usize, deadline: &mut Deadline, at: Option<Instant>) {
        deadline.at = at;
        if let Some(at) = at {
            if !matches!(deadline.armed, Some(armed) if armed <= at) {
                self.arm(key, deadline, at);
            }
        }
    }

    fn arm(&mut self, key: usize, deadline: &mut Deadline, at: Instant) {
        let generation = self.next_generation;
        self.next_generation += 1;
        deadline.armed = Some(at);
        deadline.generation = generation;
        self.heap.push(Reverse(Entry {
            at,
            generation,
            key,
        }));
    }

    /// How long until the earliest entry is due (zero if one is already due).
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse(e)| e.at.saturating_duration_since(now))
    }

    /// Pops the next entry due at `now`: its key and generation.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => {
                let Reverse(e) = self.heap.pop()?;
                Some((e.key, e.generation))
            }
            _ => None,
        }
    }

    /// Decides what a popped entry means for the session that owns
    /// `deadline` now (the slot may have been reused by another session).
    pub fn resolve(
        &mut self,
        key: usize,
        generation: u64,
        deadline: &mut Deadline,
        now: Instant,
    ) -> Due {
        if deadline.generation != generation || deadline.armed.is_none() {
            return Due::Ignore;
        }
        deadline.armed = None;
        match deadline.at {
            None => Due::Ignore,
            Some(at) if at > now => {
                self.arm(key, deadline, at);
                Due::Ignore
            }
            Some(_) => {
                deadline.at = None;
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

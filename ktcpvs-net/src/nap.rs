//! Napping before a poll: how a worker under load wakes once per batch of
//! events instead of once per event.
//!
//! A worker faster than its load finds nothing ready after most loop
//! iterations, sleeps in `epoll_wait`, and is woken by the next event
//! alone: a sleep, a wake-up and a context switch for every event or two,
//! and a write to each client for every response or two. On a busy machine
//! (on virtual CPUs above all) that costs more than the events' own work.
//! When many exchanges are in flight ([`MIN_BUSY`] backend connections or
//! more) and the worker's recent waits were shorter than the nap
//! (`poll_nap_us`), events are arriving faster than one per nap and
//! several will arrive during one: the worker then naps that long instead
//! of blocking, and polls once for everything that arrived meanwhile. With
//! few exchanges in flight (a client sending one request after another
//! gains nothing from a nap and would wait for each), or as soon as a wait
//! after a nap is long again (the load fell), it blocks at once as before:
//! an idle or lightly loaded worker adds no latency, and a loaded one adds
//! at most the nap to an event that arrives while it naps.

use std::time::Duration;

/// Fewest backend connections in use for a worker to nap: below, too few
/// events can arrive during a nap to be worth the wait.
pub(crate) const MIN_BUSY: usize = 16;

/// How long the worker's recent blocking waits lasted, which decides
/// whether it naps before its next poll.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nap {
    /// Moving average of the recent blocking waits, microseconds: each new
    /// wait counts for a quarter.
    recent_wait_us: u64,
}

impl Default for Nap {
    fn default() -> Self {
        // A new worker is taken for idle until its waits say otherwise.
        Nap {
            recent_wait_us: 1_000_000,
        }
    }
}

impl Nap {
    /// How long to nap before the next poll, given the configured nap, the
    /// poll's `timeout` (the next timer) and the backend connections in
    /// use: `None` to block at once (no nap configured, a timer due, few
    /// exchanges in flight, or events arriving slower than one per nap).
    pub fn before_poll(
        &self,
        nap: Duration,
        timeout: Option<Duration>,
        busy: usize,
    ) -> Option<Duration> {
        if busy < MIN_BUSY {
            return None;
        }
        let nap = timeout.map_or(nap, |t| t.min(nap));
        let nap_us = u64::try_from(nap.as_micros()).unwrap_or(u64::MAX);
        (nap_us > 0 && self.recent_wait_us < nap_us).then_some(nap)
    }

    /// Records how long a blocking poll waited before it returned.
    pub fn waited(&mut self, waited: Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.recent_wait_us = (self.recent_wait_us.saturating_mul(3) / 4).saturating_add(us / 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAP: Duration = Duration::from_micros(50);

    #[test]
    fn a_new_worker_blocks_and_naps_only_once_events_come_faster_than_the_nap() {
        let mut nap = Nap::default();
        assert_eq!(nap.before_poll(NAP, None, MIN_BUSY), None);
        // Short waits, one after another: the average falls below the nap.
        let mut polls = 0;
        while nap.before_poll(NAP, None, MIN_BUSY).is_none() {
            nap.waited(Duration::from_micros(5));
            polls += 1;
            assert!(polls < 100, "never napped");
        }
        assert_eq!(nap.before_poll(NAP, None, MIN_BUSY), Some(NAP));
    }

    #[test]
    fn one_long_wait_ends_the_napping() {
        let mut nap = Nap { recent_wait_us: 0 };
        assert_eq!(nap.before_poll(NAP, None, MIN_BUSY), Some(NAP));
        nap.waited(Duration::from_millis(2));
        assert_eq!(nap.before_poll(NAP, None, MIN_BUSY), None);
    }

    #[test]
    fn few_exchanges_in_flight_never_nap() {
        let nap = Nap { recent_wait_us: 0 };
        assert_eq!(nap.before_poll(NAP, None, MIN_BUSY - 1), None);
        assert_eq!(nap.before_poll(NAP, None, 1), None);
    }

    #[test]
    fn no_nap_past_the_next_timer_nor_when_disabled() {
        let nap = Nap { recent_wait_us: 0 };
        let soon = Duration::from_micros(20);
        assert_eq!(nap.before_poll(NAP, Some(soon), MIN_BUSY), Some(soon));
        assert_eq!(nap.before_poll(NAP, Some(Duration::ZERO), MIN_BUSY), None);
        assert_eq!(nap.before_poll(Duration::ZERO, None, MIN_BUSY), None);
    }
}

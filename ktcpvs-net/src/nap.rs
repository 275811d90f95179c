//! Napping before a poll: how a worker under load handles its events in
//! batches instead of one or two at a time.
//!
//! A worker faster than its load finds only an event or two ready after
//! each loop iteration: it polls, handles them and polls again, so every
//! event or two costs an `epoll_wait` and, when nothing was ready, a
//! sleep, a wake-up and a context switch. When many exchanges are in
//! flight ([`MIN_BUSY`] backend connections or more) and the worker's
//! recent waits were shorter than the nap (`poll_nap_us`), events are
//! arriving faster than one per nap, so the worker naps:
//!
//! - **when nothing is ready** ([`Napping::WhenIdle`]): it polls without
//!   waiting first and, finding nothing, naps instead of blocking, then
//!   polls once for everything that arrived meanwhile;
//! - **before every poll** ([`Napping::Always`]) when, besides, many of the
//!   exchanges share their client connection with another ([`MIN_BUSY`]
//!   HTTP/2 streams or more beyond their connections' first): there a
//!   batch also saves writes, since all the responses a client's streams
//!   received in one iteration leave in one write (one TLS record, one TCP
//!   segment for the client to read) instead of one write per response or
//!   two. It does not nap after an iteration whose work took longer than
//!   [`MAX_WORK_NAPS`] naps: a worker that busy gathers large batches by
//!   itself, and sleeping would only slow it down. HTTP/1.1 clients, one
//!   response in flight each, gain nothing from waiting when events are
//!   ready: each response is its own write anyway.
//!
//! With few exchanges in flight (a client sending one request after
//! another gains nothing from a nap and would wait for each), or as soon as
//! a wait after a nap is long again (the load fell), it polls and blocks at
//! once as before: an idle or lightly loaded worker adds no latency, and a
//! loaded one adds at most the nap to an event that arrives while it naps.

use std::time::Duration;

/// Fewest backend connections in use for a worker to nap, and fewest
/// HTTP/2 streams beside their connection's first for it to nap before
/// every poll: below, too few events can arrive during a nap to be worth
/// the wait.
pub(crate) const MIN_BUSY: usize = 16;

/// Longest iteration, in naps, after which the worker still naps before
/// a poll with events ready: an iteration that took longer gathered a
/// large batch for the next poll.
pub(crate) const MAX_WORK_NAPS: u32 = 8;

/// What the worker has in flight as it is about to poll.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Backend connections in use.
    pub busy: usize,
    /// Exchanges in flight beside another on the same client connection.
    pub multiplexed: usize,
    /// How long the loop iteration since the last poll worked.
    pub worked: Duration,
}

/// How the worker naps before its next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Napping {
    /// Poll first; nap this long only if nothing is ready.
    WhenIdle(Duration),
    /// Nap this long, then poll.
    Always(Duration),
}

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
    /// How to nap before the next poll, given the configured nap, the
    /// poll's `timeout` (the next timer) and the worker's `load`: `None`
    /// to poll and block at once (no nap configured, a timer due, few
    /// exchanges in flight, or events arriving slower than one per nap).
    pub fn before_poll(
        &self,
        nap: Duration,
        timeout: Option<Duration>,
        load: Load,
    ) -> Option<Napping> {
        if load.busy < MIN_BUSY {
            return None;
        }
        let nap = timeout.map_or(nap, |t| t.min(nap));
        let nap_us = u64::try_from(nap.as_micros()).unwrap_or(u64::MAX);
        if nap_us == 0 || self.recent_wait_us >= nap_us {
            return None;
        }
        let batches =
            load.multiplexed >= MIN_BUSY && load.worked <= nap.saturating_mul(MAX_WORK_NAPS);
        Some(if batches {
            Napping::Always(nap)
        } else {
            Napping::WhenIdle(nap)
        })
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

    /// Enough backend connections in use to nap, no HTTP/2 streams
    /// sharing a connection, and a short iteration.
    fn busy(busy: usize) -> Load {
        Load {
            busy,
            multiplexed: 0,
            worked: Duration::from_micros(20),
        }
    }

    #[test]
    fn a_new_worker_blocks_and_naps_only_once_events_come_faster_than_the_nap() {
        let mut nap = Nap::default();
        assert_eq!(nap.before_poll(NAP, None, busy(MIN_BUSY)), None);
        // Short waits, one after another: the average falls below the nap.
        let mut polls = 0;
        while nap.before_poll(NAP, None, busy(MIN_BUSY)).is_none() {
            nap.waited(Duration::from_micros(5));
            polls += 1;
            assert!(polls < 100, "never napped");
        }
        assert_eq!(
            nap.before_poll(NAP, None, busy(MIN_BUSY)),
            Some(Napping::WhenIdle(NAP))
        );
    }

    #[test]
    fn one_long_wait_ends_the_napping() {
        let mut nap = Nap { recent_wait_us: 0 };
        let shared = Load {
            multiplexed: MIN_BUSY,
            ..busy(MIN_BUSY)
        };
        assert_eq!(
            nap.before_poll(NAP, None, shared),
            Some(Napping::Always(NAP))
        );
        nap.waited(Duration::from_millis(2));
        assert_eq!(nap.before_poll(NAP, None, shared), None);
        assert_eq!(nap.before_poll(NAP, None, busy(MIN_BUSY)), None);
    }

    #[test]
    fn few_exchanges_in_flight_never_nap() {
        let nap = Nap { recent_wait_us: 0 };
        assert_eq!(nap.before_poll(NAP, None, busy(MIN_BUSY - 1)), None);
        assert_eq!(nap.before_poll(NAP, None, busy(1)), None);
        let streams_but_few_backends = Load {
            multiplexed: 100,
            ..busy(MIN_BUSY - 1)
        };
        assert_eq!(nap.before_poll(NAP, None, streams_but_few_backends), None);
    }

    #[test]
    fn no_nap_past_the_next_timer_nor_when_disabled() {
        let nap = Nap { recent_wait_us: 0 };
        let soon = Duration::from_micros(20);
        assert_eq!(
            nap.before_poll(NAP, Some(soon), busy(MIN_BUSY)),
            Some(Napping::WhenIdle(soon))
        );
        assert_eq!(
            nap.before_poll(NAP, Some(Duration::ZERO), busy(MIN_BUSY)),
            None
        );
        assert_eq!(nap.before_poll(Duration::ZERO, None, busy(MIN_BUSY)), None);
    }

    #[test]
    fn only_streams_sharing_connections_nap_with_events_ready() {
        let nap = Nap { recent_wait_us: 0 };
        let few = Load {
            multiplexed: MIN_BUSY - 1,
            ..busy(64)
        };
        assert_eq!(
            nap.before_poll(NAP, None, few),
            Some(Napping::WhenIdle(NAP))
        );
        let many = Load {
            multiplexed: MIN_BUSY,
            ..busy(64)
        };
        assert_eq!(nap.before_poll(NAP, None, many), Some(Napping::Always(NAP)));
    }

    #[test]
    fn a_long_iteration_polls_at_once_when_events_are_ready() {
        let nap = Nap { recent_wait_us: 0 };
        let at = |worked| Load {
            busy: MIN_BUSY,
            multiplexed: MIN_BUSY,
            worked,
        };
        let longest = NAP * MAX_WORK_NAPS;
        assert_eq!(
            nap.before_poll(NAP, None, at(longest)),
            Some(Napping::Always(NAP))
        );
        assert_eq!(
            nap.before_poll(NAP, None, at(longest + Duration::from_micros(1))),
            Some(Napping::WhenIdle(NAP))
        );
    }
}

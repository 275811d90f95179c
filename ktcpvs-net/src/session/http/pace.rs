//! The minimum transfer rate a client must keep while a body waits on it.
//!
//! An inactivity timeout (`read_timeout`) alone lets a client pin a buffer
//! and a backend connection for as long as it likes by reading a response
//! (or sending a request body) a few bytes at a time. So while an exchange
//! *waits on the client* (bytes are held for it that it does not take, or
//! its request body is awaited and nothing is held for the server), the
//! bytes it moves are counted over windows of `transfer_window` seconds,
//! and a window in which it moved fewer than `min_transfer_rate` bytes per
//! second ends the exchange. A slow *server* (a response that trickles, a
//! long poll) is not the client's doing and is bounded by the timeouts
//! only: while nothing waits on the client, the window starts afresh.
//!
//! Sans I/O: the time and the client's byte count come from the caller.

use std::time::{Duration, Instant};

/// The client's progress over the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pace {
    /// When the window began.
    start: Instant,
    /// The client's byte count (read and written) when it began.
    mark: u64,
}

/// A client that moved too few bytes over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooSlow {
    /// Bytes it moved in the window.
    pub moved: u64,
    /// Bytes it had to move.
    pub required: u64,
}

impl Pace {
    /// A window beginning at `now`, with the client at `bytes`.
    pub fn new(now: Instant, bytes: u64) -> Self {
        Pace {
            start: now,
            mark: bytes,
        }
    }

    /// Checks the client's progress at `now`, its byte count at `bytes`.
    ///
    /// `rate` is in bytes per second (0: no check) and `window` the
    /// measuring period. `Ok(Some(t))`: the window ends at `t` (wake up
    /// then); `Ok(None)`: nothing to check (nothing waits on the client, or
    /// no rate is set); `Err`: the window ended with too few bytes moved.
    pub fn check(
        &mut self,
        now: Instant,
        bytes: u64,
        waits_on_client: bool,
        rate: u64,
        window: Duration,
    ) -> Result<Option<Instant>, TooSlow> {
        if rate == 0 || !waits_on_client {
            *self = Pace::new(now, bytes);
            return Ok(None);
        }
        let end = self.start + window;
        if now >= end {
            let moved = bytes.saturating_sub(self.mark);
            let required = rate.saturating_mul(window.as_secs().max(1));
            if moved < required {
                return Err(TooSlow { moved, required });
            }
            *self = Pace::new(now, bytes);
        }
        Ok(Some(self.start + window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    #[test]
    fn a_client_keeping_the_rate_is_never_cut() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, 0);
        assert_eq!(pace.check(t0, 0, true, 100, W), Ok(Some(t0 + W)));
        // 1000 bytes over the first window: exactly the rate.
        assert_eq!(pace.check(t0 + W, 1000, true, 100, W), Ok(Some(t0 + W + W)));
    }

    #[test]
    fn a_slow_client_is_cut_at_the_end_of_a_window() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, 500);
        assert!(
            pace.check(t0 + W / 2, 600, true, 100, W).is_ok(),
            "not before the window ends"
        );
        assert_eq!(
            pace.check(t0 + W, 1499, true, 100, W),
            Err(TooSlow {
                moved: 999,
                required: 1000
            })
        );
    }

    #[test]
    fn nothing_is_measured_while_nothing_waits_on_the_client() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, 0);
        // A slow server: the window restarts whenever it is checked.
        assert_eq!(pace.check(t0 + W * 3, 1, false, 100, W), Ok(None));
        // The client then has a whole window from that moment.
        assert_eq!(
            pace.check(t0 + W * 3, 1, true, 100, W),
            Ok(Some(t0 + W * 4))
        );
        // No rate: never checked.
        assert_eq!(pace.check(t0 + W * 9, 1, true, 0, W), Ok(None));
    }
}

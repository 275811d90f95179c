//! Warnings an outsider can cause at will (exhausting descriptors, sending
//! garbage to a TLS port) are written at most once per interval per
//! process, each saying how many occurrences it stands for, so that an
//! attacker cannot also fill the disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One kind of throttled warning: its occurrences since the last one
/// written, and when that was (milliseconds since the process's first
/// throttled call, plus one; 0: never).
pub(crate) struct Throttle {
    every: Duration,
    suppressed: AtomicU64,
    last: AtomicU64,
}

impl Throttle {
    /// A throttle writing at most once per `every`.
    pub const fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            suppressed: AtomicU64::new(0),
            last: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence; `Some(n)` when a warning standing for the
    /// `n` occurrences since the last one is to be written now.
    pub fn admit(&self) -> Option<u64> {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(Instant::now);
        let now = u64::try_from(epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let count = self.suppressed.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.last.load(Ordering::Relaxed);
        let every = u64::try_from(self.every.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < every {
            return None;
        }
        // One thread wins the right to write this interval's warning.
        self.last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        self.suppressed.fetch_sub(count, Ordering::Relaxed);
        Some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_is_written_and_the_next_ones_are_counted() {
        let t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.admit(), Some(1));
        assert_eq!(t.admit(), None);
        assert_eq!(t.admit(), None);
        let quick = Throttle::new(Duration::ZERO);
        assert_eq!(quick.admit(), Some(1));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(quick.admit(), Some(1));
    }
}

//! Counters and latency histograms in atomics: what a Prometheus scrape,
//! the JSON stats and a host program's own exporter read.
//!
//! A [`Histogram`] has fixed buckets (the same for every histogram, so
//! they sum across servers and services) and counts with one relaxed
//! `fetch_add` per observation plus one for the sum: no lock, no
//! allocation on the data path. [`StatusClasses`] counts responses by
//! class, [`ProxyStatuses`] the error responses the proxy itself
//! produced, by status. [`RuleLoad`] holds one rule's counters; like the
//! servers' live state it is kept by the control path across rebuilds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (the last bucket,
/// `+Inf`, is implicit): 100 µs to 10 s.
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Buckets of a histogram: one per bound and `+Inf`.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// A latency histogram over [`LATENCY_BOUNDS_US`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative).
    counts: [AtomicU64; LATENCY_BUCKETS],
    /// Sum of the observations, microseconds.
    sum_us: AtomicU64,
}

/// A copy of a histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket, not cumulative; the last is `+Inf`.
    pub buckets: [u64; LATENCY_BUCKETS],
    /// Sum of the observations, microseconds.
    pub sum_us: u64,
}

impl HistogramSnapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
    /// Adds `other`'s observations to these.
    pub fn add(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }
    /// Counts one observation.
    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
    /// A copy of the counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = [0; LATENCY_BUCKETS];
        for (b, c) in buckets.iter_mut().zip(self.counts.iter()) {
            *b = c.load(Ordering::Relaxed);
        }
        HistogramSnapshot {
            buckets,
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// Responses by status class, 1xx to 5xx.
#[derive(Debug, Default)]
pub struct StatusClasses([AtomicU64; 5]);

impl StatusClasses {
    /// Counts a response of `status` (outside 100..=599: not counted).
    pub fn count(&self, status: u16) {
        if let Some(c) = (status / 100)
            .checked_sub(1)
            .and_then(|i| self.0.get(usize::from(i)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// The counts, 1xx first.
    pub fn snapshot(&self) -> [u64; 5] {
        let mut out = [0; 5];
        for (o, c) in out.iter_mut().zip(self.0.iter()) {
            *o = c.load(Ordering::Relaxed);
        }
        out
    }
}

/// The statuses the proxy itself answers with, in [`ProxyStatuses`] order.
pub const PROXY_STATUSES: [u16; 10] = [400, 408, 413, 414, 421, 431, 501, 502, 503, 504];

/// Error responses the proxy produced itself, by status (others, if any,
/// are counted as the nearest class's generic 400 or 502).
#[derive(Debug, Default)]
pub struct ProxyStatuses([AtomicU64; PROXY_STATUSES.len()]);

impl ProxyStatuses {
    /// Counts one response of `status`.
    pub fn count(&self, status: u16) {
        let index = PROXY_STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(if status < 500 { 0 } else { 7 });
        self.0[index].fetch_add(1, Ordering::Relaxed);
    }
    /// `(status, count)` for every status of [`PROXY_STATUSES`].
    pub fn snapshot(&self) -> [(u16, u64); PROXY_STATUSES.len()] {
        let mut out = [(0, 0); PROXY_STATUSES.len()];
        for ((o, c), s) in out.iter_mut().zip(self.0.iter()).zip(PROXY_STATUSES) {
            *o = (s, c.load(Ordering::Relaxed));
        }
        out
    }
}

/// The latency histograms of a service or a server.
#[derive(Debug, Default)]
pub struct Latencies {
    /// From starting a connect to a real server to its completion (and TLS
    /// handshake).
    pub connect: Histogram,
    /// From sending a request to reading its response head.
    pub first_byte: Histogram,
    /// From sending a request to the end of its response.
    pub total: Histogram,
}

/// Copies of [`Latencies`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Connect times.
    pub connect: HistogramSnapshot,
    /// Times to the response head.
    pub first_byte: HistogramSnapshot,
    /// Whole exchanges.
    pub total: HistogramSnapshot,
}

impl Latencies {
    /// Copies of the three histograms.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            connect: self.connect.snapshot(),
            first_byte: self.first_byte.snapshot(),
            total: self.total.snapshot(),
        }
    }
}

/// Counters of one rule of one service, kept across rebuilds while a rule
/// with that pattern exists.
#[derive(Debug, Default)]
pub struct RuleLoad {
    requests: AtomicU64,
    responses: StatusClasses,
}

impl RuleLoad {
    /// Zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }
    /// Counts a request the rule routed.
    pub fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a response to a request the rule routed.
    pub fn add_response(&self, status: u16) {
        self.responses.count(status);
    }
    /// Requests routed, and responses by class.
    pub fn snapshot(&self) -> (u64, [u64; 5]) {
        (
            self.requests.load(Ordering::Relaxed),
            self.responses.snapshot(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_holds_them() {
        let h = Histogram::new();
        for us in [0, 100, 101, 999_999, 10_000_000, 10_000_001, u64::MAX / 2] {
            h.observe(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 2, "0 and 100 µs are within 100 µs");
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[12], 1, "999,999 µs is within 1 s");
        assert_eq!(s.buckets[15], 1, "10 s is within the last bound");
        assert_eq!(s.buckets[16], 2, "beyond it: +Inf");
        assert_eq!(s.count(), 7);
    }

    #[test]
    fn statuses_are_counted_by_class_and_proxy_status() {
        let c = StatusClasses::default();
        for s in [101, 200, 204, 301, 404, 503, 99, 600] {
            c.count(s);
        }
        assert_eq!(c.snapshot(), [1, 2, 1, 1, 1]);
        let p = ProxyStatuses::default();
        for s in [400, 503, 503, 418, 599] {
            p.count(s);
        }
        let snap = p.snapshot();
        assert_eq!(snap[0], (400, 2), "418 counts as a generic 400");
        assert_eq!(snap[7], (502, 1), "599 as a generic 502");
        assert_eq!(snap[8], (503, 2));
    }
}

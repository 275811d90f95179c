//! Live state: per-server and per-service counters and health, in atomics.
//!
//! A [`ServerLoad`] belongs to one real server of one service and outlives
//! every configuration snapshot that mentions it: the control path keeps it
//! keyed by (service name, server address) and hands the same `Arc` to each
//! rebuilt snapshot, so reweighting or adding a rule never resets active
//! connection counts or health. Worker threads update it without locks.
//!
//! Active connections are counted through a [`Lease`]: taking one increments
//! the gauge and dropping it decrements, so no error path can leak a count.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Milliseconds since the first call in this process, from a monotonic clock.
///
/// Health back-off deadlines are stored as these values in atomics.
pub fn monotonic_millis() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Microseconds since the first call in this process, from a monotonic
/// clock (the response-time average's sample times).
fn monotonic_micros() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// How fast the response-time average forgets: the weight of a sample
/// falls to 1/e after this long (Finagle's peak EWMA uses 10 s too).
const RESPONSE_TIME_DECAY_US: f64 = 10_000_000.0;

/// A response time of `us` recorded at `at`, decayed towards zero until
/// `now` (both in `monotonic_micros()`).
fn decayed(us: u64, at: u64, now: u64) -> u64 {
    if us == 0 {
        return 0;
    }
    let w = (-(now.saturating_sub(at) as f64) / RESPONSE_TIME_DECAY_US).exp();
    (us as f64 * w) as u64
}

/// Most doublings of the back-off after repeated failures (64 × base).
const MAX_BACKOFF_SHIFT: u32 = 6;

/// Health and load of one real server, shared by all workers.
#[derive(Debug, Default)]
pub struct ServerLoad {
    /// Connections (or in-flight requests on pooled connections) currently
    /// leased to this server.
    active: AtomicU64,
    /// Leases ever taken.
    total: AtomicU64,
    /// Requests forwarded.
    requests: AtomicU64,
    /// Bytes sent to the server.
    bytes_out: AtomicU64,
    /// Bytes received from the server.
    bytes_in: AtomicU64,
    /// Failed connects, resets and malformed responses.
    errors: AtomicU64,
    /// Consecutive failures; 0 while healthy.
    failures: AtomicU32,
    /// `monotonic_millis()` before which the server is out of rotation.
    down_until: AtomicU64,
    /// Whether the last recorded state was "down" (for logging transitions).
    down: AtomicBool,
    /// Peak-EWMA time to a response head, microseconds; 0: no sample yet.
    response_us: AtomicU64,
    /// `monotonic_micros()` of the last response-time sample.
    response_at: AtomicU64,
}

/// What a health report changed, so the caller can log transitions once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    /// No transition.
    Unchanged,
    /// The server was taken out of rotation until the back-off passes.
    WentDown {
        /// How long it stays out.
        backoff: Duration,
    },
    /// The server answered again and is back in rotation.
    CameBack,
}

impl ServerLoad {
    /// A fresh, healthy server with zero counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leases one connection to this server: the active gauge counts it
    /// until the lease is dropped.
    pub fn lease(self: &Arc<Self>) -> Lease {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        Lease {
            load: Arc::clone(self),
        }
    }

    /// Connections currently leased.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether the server is in rotation now: not inside a failure back-off.
    /// When a back-off has passed the server is offered again (one trial);
    /// a success brings it back, another failure doubles the back-off.
    pub fn is_healthy(&self) -> bool {
        let until = self.down_until.load(Ordering::Relaxed);
        until == 0 || monotonic_millis() >= until
    }

    /// Records a failure (refused or timed-out connect, reset, garbage) and
    /// takes the server out of rotation for `base` × 2^(failures-1), capped.
    pub fn report_failure(&self, base: Duration) -> HealthChange {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let shift = (n - 1).min(MAX_BACKOFF_SHIFT);
        let backoff = base.saturating_mul(1 << shift);
        let until = monotonic_millis() + backoff.as_millis() as u64;
        self.down_until.store(until.max(1), Ordering::Relaxed);
        if self.down.swap(true, Ordering::Relaxed) {
            HealthChange::Unchanged
        } else {
            HealthChange::WentDown { backoff }
        }
    }

    /// Records a success (a completed connect or response): the server is in
    /// rotation again and its back-off resets.
    pub fn report_success(&self) -> HealthChange {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.down_until.load(Ordering::Relaxed) != 0 {
            self.down_until.store(0, Ordering::Relaxed);
        }
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            HealthChange::CameBack
        } else {
            HealthChange::Unchanged
        }
    }

    /// Counts one forwarded request.
    pub fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts bytes relayed to the server (`requests`: the request
    /// direction, counted as bytes out) and from it (`responses`: bytes
    /// in). Like [`ServiceLoad::add_bytes`], the request direction comes
    /// first.
    pub fn add_bytes(&self, requests: u64, responses: u64) {
        if requests != 0 {
            self.bytes_out.fetch_add(requests, Ordering::Relaxed);
        }
        if responses != 0 {
            self.bytes_in.fetch_add(responses, Ordering::Relaxed);
        }
    }

    /// Counts one error that is not a health failure (for example a
    /// response cut short).
    pub fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long the server took to start a response (its head
    /// after the request was sent). The average is a peak EWMA: a slower
    /// sample is taken at once, faster ones pull it down over about ten
    /// seconds, so a server that slows down loses traffic at once and wins
    /// it back gradually. Concurrent samples may overwrite each other; the
    /// average stays a sample-weighted estimate.
    pub fn record_response_time(&self, sample: Duration) {
        let now = monotonic_micros();
        let sample = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX).max(1);
        let last = self.response_at.swap(now, Ordering::Relaxed);
        let prev = decayed(self.response_us.load(Ordering::Relaxed), last, now);
        let next = if prev == 0 || sample >= prev {
            sample
        } else {
            let w = (-(now.saturating_sub(last) as f64) / RESPONSE_TIME_DECAY_US).exp();
            (prev as f64 * w + sample as f64 * (1.0 - w)) as u64
        };
        self.response_us.store(next.max(1), Ordering::Relaxed);
    }

    /// The server's response time (see
    /// [`record_response_time`](Self::record_response_time)), decayed by
    /// the time since its last sample, so that a server avoided for being
    /// slow is tried again after a while; `None` before any sample.
    pub fn response_time(&self) -> Option<Duration> {
        let us = self.response_us.load(Ordering::Relaxed);
        if us == 0 {
            return None;
        }
        let at = self.response_at.load(Ordering::Relaxed);
        Some(Duration::from_micros(
            decayed(us, at, monotonic_micros()).max(1),
        ))
    }

    /// A consistent-enough copy of the counters for listings.
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            active: self.active.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            healthy: self.is_healthy(),
        }
    }
}

/// A copy of a server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Active connections.
    pub active: u64,
    /// Connections ever leased.
    pub total: u64,
    /// Requests forwarded.
    pub requests: u64,
    /// Bytes sent to the server.
    pub bytes_out: u64,
    /// Bytes received from the server.
    pub bytes_in: u64,
    /// Errors.
    pub errors: u64,
    /// In rotation now.
    pub healthy: bool,
}

/// One active connection to a server. Dropping it decrements the server's
/// active gauge, so counts stay exact on every path.
#[derive(Debug)]
pub struct Lease {
    load: Arc<ServerLoad>,
}

impl Lease {
    /// The server's live state.
    pub fn load(&self) -> &Arc<ServerLoad> {
        &self.load
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.load.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters of one virtual service, shared by all workers.
#[derive(Debug, Default)]
pub struct ServiceLoad {
    active: AtomicU64,
    connections: AtomicU64,
    requests: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    errors: AtomicU64,
    tls_failures: AtomicU64,
}

/// A copy of a service's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Client connections open now.
    pub active: u64,
    /// Client connections accepted.
    pub connections: u64,
    /// Requests handled (HTTP) or connections relayed (layer 4).
    pub requests: u64,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
    /// Requests answered with an error by the proxy itself.
    pub errors: u64,
    /// Client connections of a TLS service that failed at the TLS level
    /// (a failed handshake, a bad record).
    pub tls_failures: u64,
}

impl ServiceLoad {
    /// Zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }
    /// Counts an accepted client connection.
    pub fn connection_opened(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a closed client connection.
    pub fn connection_closed(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
    /// Client connections open now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
    /// Counts one request.
    pub fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts bytes read from clients (`requests`: the request direction,
    /// counted as bytes in) and written to them (`responses`: bytes out).
    /// Like [`ServerLoad::add_bytes`], the request direction comes first.
    pub fn add_bytes(&self, requests: u64, responses: u64) {
        if requests != 0 {
            self.bytes_in.fetch_add(requests, Ordering::Relaxed);
        }
        if responses != 0 {
            self.bytes_out.fetch_add(responses, Ordering::Relaxed);
        }
    }
    /// Counts an error answered by the proxy.
    pub fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a client connection that failed at the TLS level.
    pub fn add_tls_failure(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }
    /// A copy of the counters.
    pub fn stats(&self) -> ServiceStats {
        ServiceStats {
            active: self.active.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            tls_failures: self.tls_failures.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_time_takes_peaks_at_once_and_forgets_them_slowly() {
        let load = ServerLoad::new();
        assert_eq!(load.response_time(), None);
        load.record_response_time(Duration::from_millis(2));
        let first = load.response_time().unwrap();
        assert!(first <= Duration::from_millis(2) && first > Duration::from_micros(1990));
        load.record_response_time(Duration::from_millis(20));
        assert!(
            load.response_time().unwrap() > Duration::from_micros(19_900),
            "a peak at once"
        );
        load.record_response_time(Duration::from_millis(1));
        assert!(
            load.response_time().unwrap() > Duration::from_millis(19),
            "one fast sample right after does not undo the peak"
        );
        // Ten seconds without a sample take a value to about 37 %, thirty
        // to about 5 %.
        assert_eq!(decayed(1_000_000, 0, 10_000_000), 367_879);
        assert!(decayed(1_000_000, 0, 30_000_000) < 50_000);
        assert_eq!(decayed(0, 0, 5), 0);
    }

    #[test]
    fn lease_counts_exactly_on_every_path() {
        let load = Arc::new(ServerLoad::new());
        {
            let _a = load.lease();
            let b = load.lease();
            assert_eq!(load.active(), 2);
            drop(b);
            assert_eq!(load.active(), 1);
        }
        assert_eq!(load.active(), 0);
        assert_eq!(load.stats().total, 2);
    }

    #[test]
    fn failure_takes_server_out_and_success_brings_it_back() {
        let load = ServerLoad::new();
        assert!(load.is_healthy());
        assert_eq!(
            load.report_failure(Duration::from_secs(60)),
            HealthChange::WentDown {
                backoff: Duration::from_secs(60)
            }
        );
        assert!(!load.is_healthy());
        assert_eq!(
            load.report_failure(Duration::from_secs(60)),
            HealthChange::Unchanged
        );
        assert_eq!(load.report_success(), HealthChange::CameBack);
        assert!(load.is_healthy());
        assert_eq!(load.report_success(), HealthChange::Unchanged);
    }

    #[test]
    fn backoff_expires() {
        let load = ServerLoad::new();
        load.report_failure(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(load.is_healthy(), "offered again once the back-off passed");
    }
}

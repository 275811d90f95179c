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

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::metrics::{Latencies, ProxyStatuses, StatusClasses};

/// Milliseconds since the first call in this process, from a monotonic clock.
///
/// Health back-off deadlines are stored as these values in atomics.
pub fn monotonic_millis() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Microseconds from the first call in this process to `at`, on the
/// monotonic clock (the response-time average's sample times).
fn monotonic_micros_at(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let since = at.saturating_duration_since(*EPOCH.get_or_init(Instant::now));
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

/// [`monotonic_micros_at`] now.
fn monotonic_micros() -> u64 {
    monotonic_micros_at(Instant::now())
}

/// How fast the response-time average forgets: the weight of a sample
/// falls to 1/e after this long (Finagle's peak EWMA uses 10 s too).
const RESPONSE_TIME_DECAY_US: f64 = 10_000_000.0;

/// A response time of `us` microseconds recorded at `at`, decayed towards
/// zero until `now` (both in microseconds of one clock): the value
/// [`ServerLoad::response_time`] reports. Public so that a simulator
/// running on a virtual clock keeps the very same average.
///
/// ```
/// use ktcpvs_core::live::response_time_decayed;
/// assert_eq!(response_time_decayed(1000, 5, 5), 1000);
/// // One time constant (10 s) later, about 1/e of it is left.
/// assert_eq!(response_time_decayed(1000, 0, 10_000_000), 367);
/// ```
pub fn response_time_decayed(us: u64, at: u64, now: u64) -> u64 {
    if us == 0 {
        return 0;
    }
    let w = (-(now.saturating_sub(at) as f64) / RESPONSE_TIME_DECAY_US).exp();
    (us as f64 * w) as u64
}

/// One step of the peak-EWMA response time: the average `prev` (µs, 0 for
/// none) last updated at `last`, given a new `sample` (µs) at `now`. A
/// sample slower than the decayed average replaces it; a faster one pulls
/// it down with a time constant of 10 s. The result is at least 1.
/// [`ServerLoad::record_response_time`] applies it on the monotonic clock.
///
/// ```
/// use ktcpvs_core::live::response_time_step;
/// assert_eq!(response_time_step(0, 0, 2000, 7), 2000); // first sample
/// assert_eq!(response_time_step(1000, 0, 5000, 1), 5000); // slower: at once
/// assert!(response_time_step(5000, 0, 1000, 1_000_000) > 1000); // faster: gradually
/// ```
pub fn response_time_step(prev: u64, last: u64, sample: u64, now: u64) -> u64 {
    let sample = sample.max(1);
    let prev = response_time_decayed(prev, last, now);
    let next = if prev == 0 || sample >= prev {
        sample
    } else {
        let w = (-(now.saturating_sub(last) as f64) / RESPONSE_TIME_DECAY_US).exp();
        (prev as f64 * w + sample as f64 * (1.0 - w)) as u64
    };
    next.max(1)
}

/// Adds one to `counter` unless it is at `max` already: exact under
/// concurrency (a compare-and-swap loop), so the count never passes `max`.
fn increment_below(counter: &AtomicU64, max: u64) -> bool {
    let mut current = counter.load(Ordering::Relaxed);
    loop {
        if current >= max {
            return false;
        }
        match counter.compare_exchange_weak(
            current,
            current + 1,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => return true,
            Err(now) => current = now,
        }
    }
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
    /// Whether the active checks say the server is down.
    check_down: AtomicBool,
    /// Whether a down server is let in anyway, because every server of a
    /// pool it belongs to is down and the service fails open.
    admitted: AtomicBool,
    /// Consecutive 5xx responses; 0 after any other.
    consecutive_5xx: AtomicU32,
    /// `monotonic_millis()` when a slow-start ramp began; 0: none.
    ramp_start: AtomicU64,
    /// Health state changes (active checks and ejections), ever.
    transitions: AtomicU64,
    /// Times the server was ejected by passive health.
    ejections: AtomicU64,
    /// `monotonic_millis()` of the last state change; 0: none yet.
    last_change: AtomicU64,
    /// Why the server last failed (a probe or an ejection), for listings.
    /// Written on state changes only; never read on the request path.
    reason: Mutex<String>,
    /// Responses relayed from the server, by class.
    responses: StatusClasses,
    /// Its connect, first-byte and exchange times.
    latency: Latencies,
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

    /// Whether the server is in rotation now: not inside a failure back-off
    /// (passive health), and not down by its active checks unless let in
    /// by a service failing open. When a back-off has passed the server is
    /// offered again (one trial); a success brings it back, another
    /// failure doubles the back-off.
    pub fn is_healthy(&self) -> bool {
        (!self.check_down.load(Ordering::Relaxed) || self.admitted.load(Ordering::Relaxed))
            && !self.is_ejected()
    }

    /// Whether passive health has the server out of rotation now.
    pub fn is_ejected(&self) -> bool {
        let until = self.down_until.load(Ordering::Relaxed);
        until != 0 && monotonic_millis() < until
    }

    /// Whether the active checks say the server is down.
    pub fn is_check_down(&self) -> bool {
        self.check_down.load(Ordering::Relaxed)
    }

    /// Records the active checks' verdict; `true` when it changed (then the
    /// change is counted and timed, `reason` kept when it went down, and a
    /// server coming up starts its slow-start ramp).
    pub fn set_check_down(&self, down: bool, reason: &str) -> bool {
        if self.check_down.swap(down, Ordering::Relaxed) == down {
            return false;
        }
        self.note_change(down.then_some(reason));
        if !down {
            self.start_ramp();
        }
        true
    }

    /// Lets a down server in (or stops letting it in) while every server of
    /// a pool is down and the service fails open.
    pub fn set_admitted(&self, admitted: bool) {
        if self.admitted.load(Ordering::Relaxed) != admitted {
            self.admitted.store(admitted, Ordering::Relaxed);
        }
    }

    /// Whether the server is let in although down (see
    /// [`set_admitted`](Self::set_admitted)).
    pub fn is_admitted(&self) -> bool {
        self.admitted.load(Ordering::Relaxed)
    }

    /// Counts and times a state change; `reason` is why it went down.
    fn note_change(&self, reason: Option<&str>) {
        self.transitions.fetch_add(1, Ordering::Relaxed);
        self.last_change
            .store(monotonic_millis().max(1), Ordering::Relaxed);
        if let Some(reason) = reason {
            let mut kept = self.reason.lock();
            kept.clear();
            kept.push_str(reason);
        }
    }

    /// Starts the slow-start ramp now (a server added, re-weighted from 0,
    /// or healthy again).
    pub fn start_ramp(&self) {
        self.ramp_start
            .store(monotonic_millis().max(1), Ordering::Relaxed);
    }

    /// Where the slow-start ramp is, in thousandths of the full weight
    /// (from 100 to 999), or `None` when the server is not ramping (the
    /// ramp ends `window` after it started). One atomic load when not
    /// ramping.
    pub fn ramp_permille(&self, window: Duration) -> Option<u64> {
        let start = self.ramp_start.load(Ordering::Relaxed);
        if start == 0 {
            return None;
        }
        let window = window.as_millis() as u64;
        let elapsed = monotonic_millis().saturating_sub(start);
        if window == 0 || elapsed >= window {
            let _ =
                self.ramp_start
                    .compare_exchange(start, 0, Ordering::Relaxed, Ordering::Relaxed);
            return None;
        }
        Some(100 + 900 * elapsed / window)
    }

    /// Takes one lease unless `max` are out already (`max` 0: no limit).
    /// Exact under concurrency: the count never goes past `max`.
    pub fn try_lease(self: &Arc<Self>, max: u32) -> Option<Lease> {
        if max == 0 {
            return Some(self.lease());
        }
        if !increment_below(&self.active, u64::from(max)) {
            return None;
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            load: Arc::clone(self),
        })
    }

    /// Counts a response status for outlier detection: the number of 5xx
    /// in a row including this one (0 after any other status).
    pub fn observe_status(&self, status: u16) -> u32 {
        if status >= 500 {
            self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            if self.consecutive_5xx.load(Ordering::Relaxed) != 0 {
                self.consecutive_5xx.store(0, Ordering::Relaxed);
            }
            0
        }
    }

    /// Counts a failure (refused or timed-out connect, reset, garbage)
    /// without taking the server out: the consecutive failures so far.
    pub fn count_failure(&self) -> u32 {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Takes the server out of rotation for `base` × 2^`shift` (the shift
    /// capped at 6), for `reason`.
    pub fn eject(&self, base: Duration, shift: u32, reason: &str) -> HealthChange {
        let backoff = base.saturating_mul(1 << shift.min(MAX_BACKOFF_SHIFT));
        let until = monotonic_millis() + backoff.as_millis() as u64;
        // A server whose last back-off ran out without a success since
        // (its traffic went over pooled connections) is ejected anew.
        let already = self.is_ejected();
        self.down_until.store(until.max(1), Ordering::Relaxed);
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.down.store(true, Ordering::Relaxed);
        if already {
            HealthChange::Unchanged
        } else {
            self.ejections.fetch_add(1, Ordering::Relaxed);
            self.note_change(Some(reason));
            HealthChange::WentDown { backoff }
        }
    }

    /// Responses relayed from it, by class.
    pub fn responses(&self) -> &StatusClasses {
        &self.responses
    }

    /// Its latency histograms.
    pub fn latency(&self) -> &Latencies {
        &self.latency
    }

    /// The health figures of listings.
    pub fn health(&self) -> HealthStats {
        let last = self.last_change.load(Ordering::Relaxed);
        HealthStats {
            check_down: self.is_check_down(),
            admitted: self.is_admitted(),
            ejected: self.is_ejected(),
            ramping: self.ramp_start.load(Ordering::Relaxed) != 0,
            transitions: self.transitions.load(Ordering::Relaxed),
            ejections: self.ejections.load(Ordering::Relaxed),
            since_change: (last != 0)
                .then(|| Duration::from_millis(monotonic_millis().saturating_sub(last))),
            reason: self.reason.lock().clone(),
        }
    }

    /// Records a failure (refused or timed-out connect, reset, garbage) and
    /// takes the server out of rotation for `base` × 2^(failures-1), capped
    /// (the service-level rules, thresholds and the ejection cap, are
    /// [`ServiceSnapshot::report_failure`](crate::ServiceSnapshot::report_failure)).
    pub fn report_failure(&self, base: Duration) -> HealthChange {
        let n = self.count_failure();
        self.eject(base, n - 1, "connect failed")
    }

    /// Records a success (a completed connect or response): the server is in
    /// rotation again and its back-off resets.
    pub fn report_success(&self) -> HealthChange {
        let until = self.down_until.load(Ordering::Relaxed);
        if until != 0 && monotonic_millis() < until {
            // Still inside its back-off (a request that was in flight when
            // it was ejected): it stays out until the back-off passes.
            return HealthChange::Unchanged;
        }
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.consecutive_5xx.load(Ordering::Relaxed) != 0 {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
        }
        if until != 0 {
            self.down_until.store(0, Ordering::Relaxed);
        }
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            self.note_change(None);
            self.start_ramp();
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
        self.record_response_time_at(sample, Instant::now());
    }

    /// [`record_response_time`](Self::record_response_time) for a response
    /// that came at `at`: a caller that has just read the clock saves
    /// reading it again.
    pub fn record_response_time_at(&self, sample: Duration, at: Instant) {
        let now = monotonic_micros_at(at);
        let sample = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX);
        let last = self.response_at.swap(now, Ordering::Relaxed);
        let prev = self.response_us.load(Ordering::Relaxed);
        let next = response_time_step(prev, last, sample, now);
        self.response_us.store(next, Ordering::Relaxed);
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
            response_time_decayed(us, at, monotonic_micros()).max(1),
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

/// The health of a server, for listings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthStats {
    /// Down by its active checks.
    pub check_down: bool,
    /// Let in although down, its service failing open.
    pub admitted: bool,
    /// Out of rotation by passive health (an ejection's back-off).
    pub ejected: bool,
    /// Ramping up its weight (slow start).
    pub ramping: bool,
    /// State changes ever.
    pub transitions: u64,
    /// Ejections ever.
    pub ejections: u64,
    /// Time since the last state change; `None`: none yet.
    pub since_change: Option<Duration>,
    /// Why it last failed (empty: never).
    pub reason: String,
}

impl HealthStats {
    /// The state as listings name it: `ejected` (passive health), `open`
    /// (down by its checks but let in: its pool is all down and the
    /// service fails open), `down` (by its checks) or `up`.
    pub fn state(&self) -> &'static str {
        if self.ejected {
            "ejected"
        } else if self.check_down && self.admitted {
            "open"
        } else if self.check_down {
            "down"
        } else {
            "up"
        }
    }
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

/// The HTTP/2 counters of one virtual service (see [`ServiceStats`] for
/// what each counts).
#[derive(Debug, Default)]
pub struct H2Load {
    connections: AtomicU64,
    requests: AtomicU64,
    refused: AtomicU64,
    resets: AtomicU64,
    errors: AtomicU64,
}

impl H2Load {
    /// Counts an HTTP/2 client connection.
    pub fn add_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request that came as an HTTP/2 stream.
    pub fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stream refused for its header list.
    pub fn add_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stream the client reset.
    pub fn add_reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed with an error.
    pub fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of one virtual service, shared by all workers.
#[derive(Debug)]
pub struct ServiceLoad {
    active: AtomicU64,
    connections: AtomicU64,
    requests: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    errors: AtomicU64,
    tls_failures: AtomicU64,
    proxy_refused: AtomicU64,
    /// HTTP/2 client connections, streams and refusals.
    h2: H2Load,
    /// Requests waiting in the queue now.
    queued: AtomicU64,
    /// Requests that ever waited.
    queued_total: AtomicU64,
    /// Queued requests answered 503 at the queue timeout (or refused with
    /// the queue full).
    queue_timeouts: AtomicU64,
    /// Total time queued requests waited, microseconds.
    queue_wait_us: AtomicU64,
    /// Retries the budget still allows, in thousandths.
    retry_tokens: AtomicI64,
    /// `monotonic_millis()` the floor of the budget was last added at.
    retry_refilled: AtomicU64,
    /// Retries made.
    retries: AtomicU64,
    /// Retries the budget refused.
    retries_refused: AtomicU64,
    /// Responses sent to clients, relayed or the proxy's own, by class.
    responses: StatusClasses,
    /// Error responses the proxy produced itself, by status.
    proxy_responses: ProxyStatuses,
    /// Connect, first-byte and exchange times over all its servers.
    latency: Latencies,
}

impl Default for ServiceLoad {
    fn default() -> Self {
        Self::new()
    }
}

/// Most retries a budget holds at once (its bucket's size).
const RETRY_BUCKET: i64 = 100 * 1000;

/// Retries a budget allows per second whatever the request rate, in
/// thousandths per millisecond (ten a second).
const RETRY_FLOOR_PER_MS: i64 = 10;

/// A request's place in its service's queue: the queue counts it until
/// this is dropped.
#[derive(Debug)]
pub struct QueueSlot {
    load: Arc<ServiceLoad>,
    since: Instant,
}

impl QueueSlot {
    /// When the request began to wait.
    pub fn since(&self) -> Instant {
        self.since
    }
    /// The request left the queue for a server, at `now`.
    pub fn served(self, now: Instant) {
        let waited = now.saturating_duration_since(self.since).as_micros();
        self.load
            .queue_wait_us
            .fetch_add(u64::try_from(waited).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
    /// The request waited past the queue timeout, at `now`.
    pub fn timed_out(self, now: Instant) {
        self.load.queue_timeouts.fetch_add(1, Ordering::Relaxed);
        let load = Arc::clone(&self.load);
        let waited = now.saturating_duration_since(self.since).as_micros();
        load.queue_wait_us
            .fetch_add(u64::try_from(waited).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.load.queued.fetch_sub(1, Ordering::Relaxed);
    }
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
    /// Client connections of a service that expects the PROXY protocol
    /// refused for it: from an untrusted source, or with a malformed,
    /// missing or late header.
    pub proxy_refused: u64,
    /// HTTP/2 client connections accepted.
    pub h2_connections: u64,
    /// Requests that came as HTTP/2 streams (also counted in `requests`).
    pub h2_requests: u64,
    /// HTTP/2 streams refused for their header list (malformed, or one
    /// that would smuggle when written as HTTP/1.1).
    pub h2_streams_refused: u64,
    /// HTTP/2 streams the client reset.
    pub h2_streams_reset: u64,
    /// HTTP/2 connections closed for a protocol error or abuse (GOAWAY
    /// with an error: floods, rapid reset, malformed frames).
    pub h2_connection_errors: u64,
    /// Requests waiting in the queue now.
    pub queued: u64,
    /// Requests that ever waited in the queue.
    pub queued_total: u64,
    /// Requests answered 503 by the queue (timed out, or the queue full).
    pub queue_timeouts: u64,
    /// Total time queued requests waited.
    pub queue_wait: Duration,
    /// Retries made.
    pub retries: u64,
    /// Retries the budget refused.
    pub retries_refused: u64,
}

impl ServiceLoad {
    /// Zeroed counters, and a retry budget holding ten retries.
    pub fn new() -> Self {
        ServiceLoad {
            active: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            tls_failures: AtomicU64::new(0),
            proxy_refused: AtomicU64::new(0),
            h2: H2Load::default(),
            queued: AtomicU64::new(0),
            queued_total: AtomicU64::new(0),
            queue_timeouts: AtomicU64::new(0),
            queue_wait_us: AtomicU64::new(0),
            retry_tokens: AtomicI64::new(10 * 1000),
            retry_refilled: AtomicU64::new(monotonic_millis()),
            retries: AtomicU64::new(0),
            retries_refused: AtomicU64::new(0),
            responses: StatusClasses::default(),
            proxy_responses: ProxyStatuses::default(),
            latency: Latencies::default(),
        }
    }
    /// Responses sent to clients, by class.
    pub fn responses(&self) -> &StatusClasses {
        &self.responses
    }
    /// Error responses the proxy produced itself, by status.
    pub fn proxy_responses(&self) -> &ProxyStatuses {
        &self.proxy_responses
    }
    /// Latency histograms over all the service's servers.
    pub fn latency(&self) -> &Latencies {
        &self.latency
    }
    /// Counts an error response the proxy produced itself.
    pub fn add_proxy_response(&self, status: u16) {
        self.proxy_responses.count(status);
        self.responses.count(status);
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

    /// Counts a client connection refused for the PROXY protocol.
    pub fn add_proxy_refused(&self) {
        self.proxy_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The HTTP/2 counters.
    pub fn h2(&self) -> &H2Load {
        &self.h2
    }
    /// A place in the queue for a request that found every server at its
    /// limit, unless `max` requests wait already (then the refusal is
    /// counted with the timeouts).
    pub fn try_enqueue(self: &Arc<Self>, max: u32, now: Instant) -> Option<QueueSlot> {
        if !increment_below(&self.queued, u64::from(max)) {
            self.queue_timeouts.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.queued_total.fetch_add(1, Ordering::Relaxed);
        Some(QueueSlot {
            load: Arc::clone(self),
            since: now,
        })
    }
    /// Adds one request's share to the retry budget: `percent` hundredths
    /// of a retry.
    pub fn deposit_retry(&self, percent: u32) {
        if percent == 0 {
            return;
        }
        let after = self
            .retry_tokens
            .fetch_add(i64::from(percent) * 10, Ordering::Relaxed);
        if after > RETRY_BUCKET {
            self.retry_tokens.store(RETRY_BUCKET, Ordering::Relaxed);
        }
    }
    /// Spends one retry from the budget: `false` (counted) when it is
    /// spent. The budget is what requests deposited plus a floor of ten
    /// retries a second, at most a hundred held.
    pub fn try_retry(&self) -> bool {
        let now = monotonic_millis();
        let last = self.retry_refilled.swap(now, Ordering::Relaxed);
        let floor = i64::try_from(now.saturating_sub(last))
            .unwrap_or(i64::MAX)
            .saturating_mul(RETRY_FLOOR_PER_MS)
            .min(RETRY_BUCKET);
        if floor > 0 {
            let after = self.retry_tokens.fetch_add(floor, Ordering::Relaxed) + floor;
            if after > RETRY_BUCKET {
                self.retry_tokens.store(RETRY_BUCKET, Ordering::Relaxed);
            }
        }
        let mut tokens = self.retry_tokens.load(Ordering::Relaxed);
        loop {
            if tokens < 1000 {
                self.retries_refused.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            match self.retry_tokens.compare_exchange_weak(
                tokens,
                tokens - 1000,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => tokens = now,
            }
        }
        self.retries.fetch_add(1, Ordering::Relaxed);
        true
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
            proxy_refused: self.proxy_refused.load(Ordering::Relaxed),
            h2_connections: self.h2.connections.load(Ordering::Relaxed),
            h2_requests: self.h2.requests.load(Ordering::Relaxed),
            h2_streams_refused: self.h2.refused.load(Ordering::Relaxed),
            h2_streams_reset: self.h2.resets.load(Ordering::Relaxed),
            h2_connection_errors: self.h2.errors.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            queued_total: self.queued_total.load(Ordering::Relaxed),
            queue_timeouts: self.queue_timeouts.load(Ordering::Relaxed),
            queue_wait: Duration::from_micros(self.queue_wait_us.load(Ordering::Relaxed)),
            retries: self.retries.load(Ordering::Relaxed),
            retries_refused: self.retries_refused.load(Ordering::Relaxed),
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
        assert_eq!(response_time_decayed(1_000_000, 0, 10_000_000), 367_879);
        assert!(response_time_decayed(1_000_000, 0, 30_000_000) < 50_000);
        assert_eq!(response_time_decayed(0, 0, 5), 0);
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
        // A success inside the back-off (a request in flight when the
        // server went out) does not cut the back-off short.
        assert_eq!(load.report_success(), HealthChange::Unchanged);
        assert!(!load.is_healthy());
        let load = ServerLoad::new();
        load.report_failure(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(load.report_success(), HealthChange::CameBack);
        assert!(load.is_healthy());
        assert_eq!(load.report_success(), HealthChange::Unchanged);
        assert_eq!(load.health().ejections, 1);
        // Ejected again after its back-off ran out without a success.
        load.report_failure(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(
            load.eject(Duration::from_secs(1), 0, "again"),
            HealthChange::WentDown { .. }
        ));
        assert_eq!(load.health().reason, "again");
    }

    #[test]
    fn backoff_expires() {
        let load = ServerLoad::new();
        load.report_failure(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(load.is_healthy(), "offered again once the back-off passed");
    }
}

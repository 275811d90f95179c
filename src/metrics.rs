//! Every figure of a running ktcpvs in one value, [`MetricsSnapshot`], and
//! its two renderings: the Prometheus text exposition format (version
//! 0.0.4) the admin listener serves at `/metrics`, and JSON (`/stats`).
//!
//! A host program that embeds the engine takes the same snapshot and
//! exports it its own way:
//!
//! ```
//! let control = ktcpvs::new_control();
//! let snapshot = ktcpvs::metrics::MetricsSnapshot::collect(&control, None);
//! assert!(snapshot.services.is_empty());
//! assert!(snapshot.to_prometheus().contains("ktcpvs_up"));
//! ```
//!
//! Collecting reads the live atomics of the published configuration: no
//! lock a worker takes, nothing on a request's path.

use std::fmt::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ktcpvs_core::metrics::{HistogramSnapshot, LatencySnapshot, LATENCY_BOUNDS_US};
use ktcpvs_core::Control;
use ktcpvs_net::{EngineObserver, WorkerSnapshot};
use serde::Serialize;

/// The response classes, as labelled.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Every figure at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MetricsSnapshot {
    /// The daemon's version.
    pub version: &'static str,
    /// Whether the engine drains or stopped (`/healthz` answers 503).
    pub draining: bool,
    /// Seconds since this process started serving (since its first
    /// [`new_control`](crate::new_control) or snapshot).
    pub uptime_seconds: f64,
    /// The configuration hash `tcpvsadm -L` prints: XXH3-64 of the
    /// numeric listing's lines joined with `\n`, 16 hex digits.
    pub config_hash: String,
    /// The upper bounds of the latency histograms' buckets, seconds (the
    /// last bucket, `+Inf`, is not listed).
    pub latency_bounds_seconds: Vec<f64>,
    /// Every service, in the order added.
    pub services: Vec<ServiceMetrics>,
    /// Each worker thread's figures.
    pub workers: Vec<WorkerMetrics>,
    /// Access-log lines written and dropped (queue full), when logging.
    pub access_log: Option<(u64, u64)>,
    /// The changes made through the admin listener's status page, oldest
    /// first (the last [`ACTIONS_KEPT`](crate::admin::ACTIONS_KEPT));
    /// empty unless its actions are enabled.
    pub admin_actions: Vec<AdminAction>,
}

/// One change asked for through the admin listener.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AdminAction {
    /// When, seconds since the Unix epoch.
    pub unix_time: u64,
    /// The control-protocol request it made, as `tcpvsadm` would send it.
    pub request: String,
    /// Whether the daemon applied it.
    pub ok: bool,
    /// The daemon's answer: empty when applied, else why not.
    pub message: String,
}

/// One service's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceMetrics {
    /// Its name.
    pub name: String,
    /// Started (its listener open).
    pub running: bool,
    /// Its scheduler.
    pub scheduler: String,
    /// The addresses it listens on (as configured).
    pub listen: Vec<String>,
    /// Client connections open now.
    pub active: u64,
    /// Client connections accepted.
    pub connections: u64,
    /// Requests (HTTP) or connections (layer 4) handled.
    pub requests: u64,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes to clients.
    pub bytes_out: u64,
    /// Errors answered by the proxy.
    pub errors: u64,
    /// Client connections that failed at the TLS level.
    pub tls_failures: u64,
    /// Client connections refused for the PROXY protocol (untrusted
    /// source, malformed, missing or late header).
    pub proxy_refused: u64,
    /// Requests by protocol: `(protocol, count)`, `http/1.x` and `h2` for
    /// an HTTP service, `tcp` for a layer-4 one.
    pub protocol_requests: Vec<(&'static str, u64)>,
    /// HTTP/2 client connections accepted.
    pub h2_connections: u64,
    /// HTTP/2 streams refused for their header list.
    pub h2_streams_refused: u64,
    /// HTTP/2 streams the client reset.
    pub h2_streams_reset: u64,
    /// HTTP/2 connections closed with an error (floods, rapid reset,
    /// protocol errors).
    pub h2_connection_errors: u64,
    /// Responses to clients by class, 1xx first.
    pub responses: [u64; 5],
    /// Error responses the proxy produced itself: `(status, count)`.
    pub proxy_responses: Vec<(u16, u64)>,
    /// Requests waiting in the queue now.
    pub queued: u64,
    /// Requests that ever waited.
    pub queued_total: u64,
    /// Requests the queue answered 503.
    pub queue_timeouts: u64,
    /// Total time spent waiting in the queue, seconds.
    pub queue_wait_seconds: f64,
    /// Retries made.
    pub retries: u64,
    /// Retries the budget refused.
    pub retries_refused: u64,
    /// Connect, first-byte and exchange times over all its servers.
    pub latency: Latency,
    /// Its servers, in the order added.
    pub servers: Vec<ServerMetrics>,
    /// Its rules, in evaluation order.
    pub rules: Vec<RuleMetrics>,
}

/// One real server's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerMetrics {
    /// Its address.
    pub address: String,
    /// Its configured weight.
    pub weight: u32,
    /// The weight schedulers use now, on the configured weight's scale:
    /// below `weight` while it ramps up (slow start), else `weight`.
    pub effective_weight: f64,
    /// Its `maxconn` (0: none).
    pub maxconn: u32,
    /// Connections or requests in flight now.
    pub active: u64,
    /// Connections or requests ever leased.
    pub total: u64,
    /// Requests forwarded.
    pub requests: u64,
    /// Bytes sent to it.
    pub bytes_out: u64,
    /// Bytes received from it.
    pub bytes_in: u64,
    /// Failures.
    pub errors: u64,
    /// Responses relayed from it, by class.
    pub responses: [u64; 5],
    /// Takes new work now.
    pub healthy: bool,
    /// `up`, `down` (by its checks), `open` (down, let in) or `ejected`.
    pub state: &'static str,
    /// Ramping up its weight (slow start).
    pub ramping: bool,
    /// Health state changes ever.
    pub health_changes: u64,
    /// Passive ejections ever.
    pub ejections: u64,
    /// Seconds since the last change, if any.
    pub since_change_seconds: Option<f64>,
    /// Why it last failed (empty: never).
    pub reason: String,
    /// Its latency histograms.
    pub latency: Latency,
}

/// One rule's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleMetrics {
    /// Its position in evaluation order.
    pub index: usize,
    /// Its pattern.
    pub pattern: String,
    /// Its further conditions as the configuration writes them (`host
    /// "…" method GET …`); empty: none.
    pub conditions: String,
    /// What it does besides choosing a server (a redirect or fixed
    /// response); empty: it forwards.
    pub action: String,
    /// The servers it sends to.
    pub servers: Vec<String>,
    /// Requests it routed.
    pub requests: u64,
    /// Responses to them, by class.
    pub responses: [u64; 5],
}

/// One worker thread's figures.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WorkerMetrics {
    /// Event-loop iterations.
    pub iterations: u64,
    /// Client connections held.
    pub sessions: u64,
    /// Idle backend connections pooled.
    pub pooled: u64,
    /// Buffers lent.
    pub buffers: u64,
}

/// Three latency histograms.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Connect (and TLS handshake) to a real server.
    pub connect: Histogram,
    /// Request sent to response head.
    pub first_byte: Histogram,
    /// Request sent to response end.
    pub exchange: Histogram,
}

/// A histogram: cumulative counts per upper bound (seconds; the last is
/// `+Inf`), the sum and the count.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Histogram {
    /// Cumulative counts, one per bound of
    /// [`LATENCY_BOUNDS_US`] then `+Inf`.
    pub cumulative: [u64; LATENCY_BOUNDS_US.len() + 1],
    /// Sum of the observations, seconds.
    pub sum_seconds: f64,
    /// Observations.
    pub count: u64,
}

impl From<HistogramSnapshot> for Histogram {
    fn from(h: HistogramSnapshot) -> Self {
        let mut cumulative = [0; LATENCY_BOUNDS_US.len() + 1];
        let mut running = 0;
        for (c, b) in cumulative.iter_mut().zip(h.buckets.iter()) {
            running += b;
            *c = running;
        }
        Histogram {
            cumulative,
            sum_seconds: h.sum_us as f64 / 1e6,
            count: running,
        }
    }
}

impl From<LatencySnapshot> for Latency {
    fn from(l: LatencySnapshot) -> Self {
        Latency {
            connect: l.connect.into(),
            first_byte: l.first_byte.into(),
            exchange: l.total.into(),
        }
    }
}

impl From<WorkerSnapshot> for WorkerMetrics {
    fn from(w: WorkerSnapshot) -> Self {
        WorkerMetrics {
            iterations: w.iterations,
            sessions: w.sessions,
            pooled: w.pooled,
            buffers: w.buffers,
        }
    }
}

impl MetricsSnapshot {
    /// Reads every figure of the configuration `control` publishes and,
    /// when given, of the engine's workers.
    pub fn collect(control: &Control, engine: Option<&EngineObserver>) -> MetricsSnapshot {
        let snapshot = control.snapshot();
        let services = snapshot
            .services()
            .iter()
            .map(|service| {
                let c = service.config();
                let s = service.load().stats();
                ServiceMetrics {
                    name: c.name.clone(),
                    running: service.is_running(),
                    scheduler: c.scheduler.clone(),
                    listen: vec![c.listen.to_string()],
                    active: s.active,
                    connections: s.connections,
                    requests: s.requests,
                    bytes_in: s.bytes_in,
                    bytes_out: s.bytes_out,
                    errors: s.errors,
                    tls_failures: s.tls_failures,
                    proxy_refused: s.proxy_refused,
                    protocol_requests: match service.dispatch() {
                        ktcpvs_core::Dispatch::Connection => vec![("tcp", s.requests)],
                        _ => vec![
                            ("http/1.x", s.requests.saturating_sub(s.h2_requests)),
                            ("h2", s.h2_requests),
                        ],
                    },
                    h2_connections: s.h2_connections,
                    h2_streams_refused: s.h2_streams_refused,
                    h2_streams_reset: s.h2_streams_reset,
                    h2_connection_errors: s.h2_connection_errors,
                    responses: service.load().responses().snapshot(),
                    proxy_responses: service.load().proxy_responses().snapshot().to_vec(),
                    queued: s.queued,
                    queued_total: s.queued_total,
                    queue_timeouts: s.queue_timeouts,
                    queue_wait_seconds: s.queue_wait.as_secs_f64(),
                    retries: s.retries,
                    retries_refused: s.retries_refused,
                    latency: service.load().latency().snapshot().into(),
                    servers: service
                        .server_entries()
                        .iter()
                        .map(|e| server(e, !c.health.slow_start.is_zero()))
                        .collect(),
                    rules: rules(service),
                }
            })
            .collect();
        MetricsSnapshot {
            version: env!("CARGO_PKG_VERSION"),
            draining: engine.is_some_and(EngineObserver::is_draining)
                || snapshot.settings().drain() > 0,
            uptime_seconds: started().elapsed().as_secs_f64(),
            config_hash: config_hash(control),
            latency_bounds_seconds: LATENCY_BOUNDS_US
                .iter()
                .map(|us| *us as f64 / 1e6)
                .collect(),
            services,
            workers: engine
                .map(|e| e.worker_stats().into_iter().map(Into::into).collect())
                .unwrap_or_default(),
            access_log: engine.and_then(EngineObserver::access_log),
            admin_actions: Vec::new(),
        }
    }

    /// Whether `/healthz` says the node serves: not draining and at least
    /// one service running.
    pub fn serving(&self) -> bool {
        !self.draining && self.services.iter().any(|s| s.running)
    }

    /// The snapshot as JSON (one object).
    pub fn to_json(&self) -> String {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The snapshot in the Prometheus text exposition format.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096 + 2048 * self.services.len());
        let mut p = Exposition { out: &mut out };
        p.family(
            "ktcpvs_up",
            "gauge",
            "1 while the node serves (not draining, a service running).",
        );
        p.sample(
            "ktcpvs_up",
            &[("version", self.version)],
            u64::from(self.serving()),
        );
        self.service_families(&mut p);
        self.server_families(&mut p);
        self.rule_families(&mut p);
        self.latency_families(&mut p);
        self.worker_families(&mut p);
        out
    }

    fn service_families(&self, p: &mut Exposition<'_>) {
        type Figure = fn(&ServiceMetrics) -> f64;
        let families: [(&str, &str, &str, Figure); 19] = [
            (
                "ktcpvs_service_running",
                "gauge",
                "1 while the service is started.",
                |s| f64::from(u8::from(s.running)),
            ),
            (
                "ktcpvs_service_connections_active",
                "gauge",
                "Client connections open now.",
                |s| s.active as f64,
            ),
            (
                "ktcpvs_service_connections_total",
                "counter",
                "Client connections accepted.",
                |s| s.connections as f64,
            ),
            (
                "ktcpvs_service_requests_total",
                "counter",
                "Requests (HTTP) or connections (layer 4) handled.",
                |s| s.requests as f64,
            ),
            (
                "ktcpvs_service_received_bytes_total",
                "counter",
                "Bytes read from clients.",
                |s| s.bytes_in as f64,
            ),
            (
                "ktcpvs_service_sent_bytes_total",
                "counter",
                "Bytes written to clients.",
                |s| s.bytes_out as f64,
            ),
            (
                "ktcpvs_service_errors_total",
                "counter",
                "Requests the proxy answered with an error or closed.",
                |s| s.errors as f64,
            ),
            (
                "ktcpvs_service_tls_failures_total",
                "counter",
                "Client connections that failed at the TLS level.",
                |s| s.tls_failures as f64,
            ),
            (
                "ktcpvs_service_proxy_refused_total",
                "counter",
                "Client connections refused for the PROXY protocol.",
                |s| s.proxy_refused as f64,
            ),
            (
                "ktcpvs_service_h2_connections_total",
                "counter",
                "HTTP/2 client connections (ALPN h2 or h2c prior knowledge).",
                |s| s.h2_connections as f64,
            ),
            (
                "ktcpvs_service_h2_streams_refused_total",
                "counter",
                "HTTP/2 streams refused for their header list (malformed, or smuggling as HTTP/1.1).",
                |s| s.h2_streams_refused as f64,
            ),
            (
                "ktcpvs_service_h2_streams_reset_total",
                "counter",
                "HTTP/2 streams the client reset.",
                |s| s.h2_streams_reset as f64,
            ),
            (
                "ktcpvs_service_h2_connection_errors_total",
                "counter",
                "HTTP/2 connections closed with an error (floods, rapid reset, protocol errors).",
                |s| s.h2_connection_errors as f64,
            ),
            (
                "ktcpvs_service_queue_length",
                "gauge",
                "Requests waiting for a server below its maxconn.",
                |s| s.queued as f64,
            ),
            (
                "ktcpvs_service_queued_total",
                "counter",
                "Requests that ever waited in the queue.",
                |s| s.queued_total as f64,
            ),
            (
                "ktcpvs_service_queue_timeouts_total",
                "counter",
                "Requests the queue answered 503 (timed out or full).",
                |s| s.queue_timeouts as f64,
            ),
            (
                "ktcpvs_service_queue_wait_seconds_total",
                "counter",
                "Time requests spent in the queue.",
                |s| s.queue_wait_seconds,
            ),
            (
                "ktcpvs_service_retries_total",
                "counter",
                "Retries on another server or a fresh connection.",
                |s| s.retries as f64,
            ),
            (
                "ktcpvs_service_retries_refused_total",
                "counter",
                "Retries the retry budget refused.",
                |s| s.retries_refused as f64,
            ),
        ];
        for (name, kind, help, figure) in families {
            p.family(name, kind, help);
            for s in &self.services {
                p.sample_f(name, &[("service", &s.name)], figure(s));
            }
        }
        let name = "ktcpvs_service_protocol_requests_total";
        p.family(
            name,
            "counter",
            "Requests by the protocol the client spoke (http/1.x or h2; tcp for layer-4 connections).",
        );
        for s in &self.services {
            for (protocol, n) in &s.protocol_requests {
                p.sample(name, &[("service", &s.name), ("protocol", protocol)], *n);
            }
        }
        let name = "ktcpvs_service_responses_total";
        p.family(
            name,
            "counter",
            "Responses sent to clients (relayed or the proxy's own), by status class.",
        );
        for s in &self.services {
            for (class, n) in CLASSES.iter().zip(s.responses) {
                p.sample(name, &[("service", &s.name), ("class", class)], n);
            }
        }
        let name = "ktcpvs_service_proxy_responses_total";
        p.family(name, "counter", "Error responses the proxy produced itself, by status (400 bad request, 408 head timeout, 414/431 too long, 421 misdirected, 502 bad gateway, 503 no server, 504 server timeout).");
        for s in &self.services {
            for (status, n) in &s.proxy_responses {
                p.sample(
                    name,
                    &[("service", &s.name), ("status", &status.to_string())],
                    *n,
                );
            }
        }
    }

    fn server_families(&self, p: &mut Exposition<'_>) {
        type Figure = fn(&ServerMetrics) -> f64;
        let families: [(&str, &str, &str, Figure); 12] = [
            (
                "ktcpvs_server_weight",
                "gauge",
                "Configured weight (0: quiesced).",
                |s| f64::from(s.weight),
            ),
            (
                "ktcpvs_server_maxconn",
                "gauge",
                "Most connections or requests in flight (0: no limit).",
                |s| f64::from(s.maxconn),
            ),
            (
                "ktcpvs_server_active",
                "gauge",
                "Connections or requests in flight now.",
                |s| s.active as f64,
            ),
            (
                "ktcpvs_server_connections_total",
                "counter",
                "Connections or requests ever leased.",
                |s| s.total as f64,
            ),
            (
                "ktcpvs_server_requests_total",
                "counter",
                "Requests forwarded.",
                |s| s.requests as f64,
            ),
            (
                "ktcpvs_server_sent_bytes_total",
                "counter",
                "Bytes sent to the server.",
                |s| s.bytes_out as f64,
            ),
            (
                "ktcpvs_server_received_bytes_total",
                "counter",
                "Bytes received from the server.",
                |s| s.bytes_in as f64,
            ),
            (
                "ktcpvs_server_errors_total",
                "counter",
                "Failed connects, resets, timeouts and bad responses.",
                |s| s.errors as f64,
            ),
            (
                "ktcpvs_server_healthy",
                "gauge",
                "1 while the server takes new work.",
                |s| f64::from(u8::from(s.healthy)),
            ),
            (
                "ktcpvs_server_ramping",
                "gauge",
                "1 while the server ramps up its weight (slow start).",
                |s| f64::from(u8::from(s.ramping)),
            ),
            (
                "ktcpvs_server_health_changes_total",
                "counter",
                "Health state changes (checks and ejections).",
                |s| s.health_changes as f64,
            ),
            (
                "ktcpvs_server_ejections_total",
                "counter",
                "Passive ejections (outlier detection).",
                |s| s.ejections as f64,
            ),
        ];
        for (name, kind, help, figure) in families {
            p.family(name, kind, help);
            for svc in &self.services {
                for s in &svc.servers {
                    p.sample_f(
                        name,
                        &[("service", &svc.name), ("server", &s.address)],
                        figure(s),
                    );
                }
            }
        }
        let name = "ktcpvs_server_state";
        p.family(name, "gauge", "1 for the server's health state: up, down (by its checks), open (down but let in: its pool is all down and the service fails open), ejected (passive health).");
        for svc in &self.services {
            for s in &svc.servers {
                for state in ["up", "down", "open", "ejected"] {
                    let labels = [
                        ("service", svc.name.as_str()),
                        ("server", &s.address),
                        ("state", state),
                    ];
                    p.sample(name, &labels, u64::from(s.state == state));
                }
            }
        }
        let name = "ktcpvs_server_responses_total";
        p.family(
            name,
            "counter",
            "Responses relayed from the server, by status class.",
        );
        for svc in &self.services {
            for s in &svc.servers {
                for (class, n) in CLASSES.iter().zip(s.responses) {
                    let labels = [
                        ("service", svc.name.as_str()),
                        ("server", &s.address),
                        ("class", class),
                    ];
                    p.sample(name, &labels, n);
                }
            }
        }
    }

    fn rule_families(&self, p: &mut Exposition<'_>) {
        let name = "ktcpvs_rule_requests_total";
        p.family(
            name,
            "counter",
            "Requests a rule routed (rule: its position in evaluation order).",
        );
        for svc in &self.services {
            for r in &svc.rules {
                let index = r.index.to_string();
                let labels = [
                    ("service", svc.name.as_str()),
                    ("rule", &index),
                    ("pattern", &r.pattern),
                ];
                p.sample(name, &labels, r.requests);
            }
        }
        let name = "ktcpvs_rule_responses_total";
        p.family(
            name,
            "counter",
            "Responses to the requests a rule routed, by status class.",
        );
        for svc in &self.services {
            for r in &svc.rules {
                let index = r.index.to_string();
                for (class, n) in CLASSES.iter().zip(r.responses) {
                    let labels = [
                        ("service", svc.name.as_str()),
                        ("rule", &index),
                        ("pattern", &r.pattern),
                        ("class", class),
                    ];
                    p.sample(name, &labels, n);
                }
            }
        }
    }

    fn latency_families(&self, p: &mut Exposition<'_>) {
        type Pick = fn(&Latency) -> &Histogram;
        let kinds: [(&str, &str, Pick); 3] = [
            (
                "connect",
                "Time to connect to a real server (and finish its TLS handshake).",
                |l| &l.connect,
            ),
            (
                "first_byte",
                "Time from sending a request to reading its response head.",
                |l| &l.first_byte,
            ),
            (
                "exchange",
                "Time from sending a request to the end of its response.",
                |l| &l.exchange,
            ),
        ];
        for (kind, help, pick) in kinds {
            let name = format!("ktcpvs_service_{kind}_seconds");
            p.family(&name, "histogram", help);
            for svc in &self.services {
                p.histogram(&name, &[("service", &svc.name)], pick(&svc.latency));
            }
            let name = format!("ktcpvs_server_{kind}_seconds");
            p.family(&name, "histogram", help);
            for svc in &self.services {
                for s in &svc.servers {
                    p.histogram(
                        &name,
                        &[("service", &svc.name), ("server", &s.address)],
                        pick(&s.latency),
                    );
                }
            }
        }
    }

    fn worker_families(&self, p: &mut Exposition<'_>) {
        type Figure = fn(&WorkerMetrics) -> u64;
        let families: [(&str, &str, &str, Figure); 4] = [
            (
                "ktcpvs_worker_loop_iterations_total",
                "counter",
                "Event-loop iterations of a worker thread.",
                |w| w.iterations,
            ),
            (
                "ktcpvs_worker_sessions",
                "gauge",
                "Client connections a worker holds.",
                |w| w.sessions,
            ),
            (
                "ktcpvs_worker_pooled_connections",
                "gauge",
                "Idle backend connections in a worker's pools.",
                |w| w.pooled,
            ),
            (
                "ktcpvs_worker_buffers_in_use",
                "gauge",
                "Buffers a worker has lent out.",
                |w| w.buffers,
            ),
        ];
        for (name, kind, help, figure) in families {
            p.family(name, kind, help);
            for (i, w) in self.workers.iter().enumerate() {
                p.sample(name, &[("worker", &i.to_string())], figure(w));
            }
        }
        if let Some((written, dropped)) = self.access_log {
            let name = "ktcpvs_access_log_lines_total";
            p.family(name, "counter", "Access-log lines written.");
            p.sample(name, &[], written);
            let name = "ktcpvs_access_log_dropped_total";
            p.family(
                name,
                "counter",
                "Access-log lines dropped because the writer fell behind (its queue was full).",
            );
            p.sample(name, &[], dropped);
        }
    }
}

/// When this process started, as far as the metrics know: the first call.
pub(crate) fn started() -> Instant {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// The configuration hash `tcpvsadm -L` prints: XXH3-64 of the numeric
/// listing of every service, its lines joined with `\n` (what the control
/// socket's `list -n` sends, line for line), as 16 hex digits.
pub fn config_hash(control: &Control) -> String {
    let options = ktcpvs_core::config::PrintOptions { numeric: true };
    let text = control.list(None, &options).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let hash = xxhash_rust::xxh3::xxh3_64(lines.join("\n").as_bytes());
    format!("{hash:016x}")
}

/// One service's rules with their figures, in evaluation order.
fn rules(service: &ktcpvs_core::snapshot::ServiceSnapshot) -> Vec<RuleMetrics> {
    service
        .def()
        .rules
        .iter()
        .zip(service.rule_loads())
        .enumerate()
        .map(|(index, (rule, load))| {
            let (requests, responses) = load.snapshot();
            let action = match rule.action {
                ktcpvs_core::condition::RuleAction::Forward => String::new(),
                ref other => other.to_string(),
            };
            RuleMetrics {
                index,
                pattern: rule.pattern.clone(),
                conditions: rule.conditions.to_string(),
                action,
                servers: rule.servers.iter().map(ToString::to_string).collect(),
                requests,
                responses,
            }
        })
        .collect()
}

/// One server's figures; `scaled`: its service ramps weights (slow
/// start), so schedulers see a hundred times the configured weight.
fn server(entry: &ktcpvs_core::snapshot::ServerEntry, scaled: bool) -> ServerMetrics {
    use ktcpvs_core::view::RealServer;
    let t = entry.load().stats();
    let h = entry.health();
    let state = h.state();
    let seen = f64::from(entry.weight());
    ServerMetrics {
        address: entry.config().addr.to_string(),
        weight: entry.config().weight,
        effective_weight: if scaled && entry.config().weight > 0 {
            seen / 100.0
        } else {
            seen
        },
        maxconn: entry.config().maxconn,
        active: t.active,
        total: t.total,
        requests: t.requests,
        bytes_out: t.bytes_out,
        bytes_in: t.bytes_in,
        errors: t.errors,
        responses: entry.load().responses().snapshot(),
        healthy: t.healthy,
        state,
        ramping: h.ramping,
        health_changes: h.transitions,
        ejections: h.ejections,
        since_change_seconds: h.since_change.map(|d: Duration| d.as_secs_f64()),
        reason: h.reason,
        latency: entry.load().latency().snapshot().into(),
    }
}

/// A text exposition being written.
struct Exposition<'a> {
    out: &'a mut String,
}

impl Exposition<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], extra: Option<(&str, &str)>) {
        if labels.is_empty() && extra.is_none() {
            return;
        }
        self.out.push('{');
        for (i, (k, v)) in labels.iter().chain(extra.iter()).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
        }
        self.out.push('}');
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    fn sample_f(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        for (i, count) in h.cumulative.iter().enumerate() {
            let le = match LATENCY_BOUNDS_US.get(i) {
                Some(us) => format!("{}", *us as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(("le", &le)));
            let _ = writeln!(self.out, " {count}");
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.sum_seconds);
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }
}

/// A label value as the exposition format wants it: `\\`, `\"` and `\n`
/// escaped.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A help text: `\\` and `\n` escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut out = String::new();
        Exposition { out: &mut out }.sample("m", &[("pattern", "^/a\"\\.*$")], 3);
        assert_eq!(out, "m{pattern=\"^/a\\\"\\\\.*$\"} 3\n");
    }

    #[test]
    fn histograms_are_cumulative_and_end_in_inf() {
        let mut snap = HistogramSnapshot::default();
        snap.buckets[0] = 2;
        snap.buckets[3] = 1;
        snap.buckets[16] = 1;
        snap.sum_us = 1_500_000;
        let h = Histogram::from(snap);
        assert_eq!(h.count, 4);
        assert_eq!(h.cumulative[2], 2);
        assert_eq!(h.cumulative[16], 4);
        let mut out = String::new();
        Exposition { out: &mut out }.histogram("x_seconds", &[("service", "w")], &h);
        assert!(
            out.contains("x_seconds_bucket{service=\"w\",le=\"0.0001\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{service=\"w\",le=\"+Inf\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_sum{service=\"w\"} 1.5\n"), "{out}");
        assert!(out.contains("x_seconds_count{service=\"w\"} 4\n"), "{out}");
    }
}

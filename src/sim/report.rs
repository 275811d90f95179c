//! What a simulation reports: requests, share, peak concurrency and
//! latency per server, hits per rule, refusals, and for a changed server
//! set the share of keys that moved; rendered as aligned text or JSON.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::view::first_matching_rule;
use ktcpvs_core::{Dispatch, RealServer, VirtualService};
use serde::Serialize;

use super::engine::{Refusal, Replay};
use super::{Change, SimError, SimOptions, Trace};

/// The whole report of one simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The service replayed into.
    pub service: String,
    /// Its scheduler.
    pub scheduler: String,
    /// The seed.
    pub seed: u64,
    /// Where the trace came from.
    pub trace: String,
    /// Requests in the trace.
    pub requests: u64,
    /// How arrivals were timed.
    pub arrivals: String,
    /// Virtual time from the first arrival to the last response, ms.
    pub simulated_ms: f64,
    /// Per server, in configuration order.
    pub servers: Vec<ServerReport>,
    /// Per rule, in evaluation order.
    pub rules: Vec<RuleReport>,
    /// Requests that got no server.
    pub refused: Refused,
    /// Requests that waited in the service's queue (all servers at `maxconn`).
    pub queued: u64,
    /// Time from arrival to response, over the requests that got one.
    pub latency: LatencySummary,
    /// The replay against a changed server set, if one was asked for.
    pub change: Option<ChangeReport>,
}

/// One server's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerReport {
    /// Its address.
    pub server: String,
    /// Its configured weight.
    pub weight: u32,
    /// Requests it got.
    pub requests: u64,
    /// Their share of all the trace's requests.
    pub share: f64,
    /// Most requests it held (leased) at once.
    pub peak: u64,
    /// Time from lease to response (its backlog wait included).
    pub latency: LatencySummary,
}

/// One rule's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleReport {
    /// Its position in evaluation order.
    pub rule: usize,
    /// Its pattern.
    pub pattern: String,
    /// Requests it routed.
    pub hits: u64,
    /// Their share of all the trace's requests.
    pub share: f64,
}

/// Requests that got no server, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The scheduler found none (no rule matched, or none available).
    pub no_server: u64,
    /// All candidates at `maxconn`, and the queue full or off.
    pub queue_full: u64,
    /// Waited in the queue for `queue_timeout`.
    pub queue_timeout: u64,
}

/// Mean and 99th percentile (nearest rank), ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// The mean.
    pub mean_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
}

/// The replay against a changed server set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeReport {
    /// What changed.
    pub change: String,
    /// Servers before and after.
    pub servers_before: usize,
    /// Servers after.
    pub servers_after: usize,
    /// Distinct keys in the trace.
    pub keys: u64,
    /// Keys whose first request went to another server (or to none).
    pub moved: u64,
    /// `moved / keys`.
    pub moved_share: f64,
    /// The share an ideal consistent hash moves: 1/n with n the larger
    /// server count.
    pub ideal_share: f64,
    /// The changed run's servers.
    pub servers: Vec<ServerReport>,
}

/// Rounds to `places` decimals, so reports stay readable.
fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// Share of `part` in `whole`, rounded.
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round(part as f64 / whole as f64, 6)
    }
}

impl LatencySummary {
    /// Of durations in ns.
    fn of(mut samples: Vec<u64>) -> Self {
        if samples.is_empty() {
            return LatencySummary::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        let rank = (n * 99).div_ceil(100).max(1);
        LatencySummary {
            mean_ms: round(sum as f64 / n as f64 / 1e6, 3),
            p99_ms: round(samples[rank - 1] as f64 / 1e6, 3),
        }
    }
}

/// Per-server figures of one replay.
fn servers(service: &ServiceSnapshot, replay: &Replay, total: u64) -> Vec<ServerReport> {
    (0..service.server_count())
        .map(|i| {
            let samples: Vec<u64> = replay
                .outcomes
                .iter()
                .filter(|o| o.selection.is_some_and(|s| s.server == i))
                .map(|o| o.done - o.dispatched)
                .collect();
            let server = service.server_entries()[i].config();
            ServerReport {
                server: server.addr.to_string(),
                weight: server.weight,
                requests: samples.len() as u64,
                share: share(samples.len() as u64, total),
                peak: replay.peak[i],
                latency: LatencySummary::of(samples),
            }
        })
        .collect()
}

impl Report {
    /// The report of the unchanged replay.
    pub(crate) fn of(
        service: &ServiceSnapshot,
        trace: &Trace,
        options: &SimOptions,
        replay: &Replay,
    ) -> Report {
        let total = trace.requests.len() as u64;
        let rules = service
            .rules()
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let hits = replay
                    .outcomes
                    .iter()
                    .filter(|o| o.selection.is_some_and(|s| s.rule == Some(i)))
                    .count() as u64;
                RuleReport {
                    rule: i,
                    pattern: rule.pattern().to_string(),
                    hits,
                    share: share(hits, total),
                }
            })
            .collect();
        let mut refused = Refused::default();
        for o in &replay.outcomes {
            match o.refused {
                Some(Refusal::NoServer) => refused.no_server += 1,
                Some(Refusal::QueueFull) => refused.queue_full += 1,
                Some(Refusal::QueueTimeout) => refused.queue_timeout += 1,
                None => {}
            }
        }
        let timed = trace.requests.iter().all(|r| r.time_us.is_some());
        let arrivals = match options.rate {
            None if timed => "the trace's times".to_string(),
            rate => format!("poisson {}/s", rate.unwrap_or(super::DEFAULT_RATE)),
        };
        Report {
            service: service.config().name.clone(),
            scheduler: service.config().scheduler.clone(),
            seed: options.seed,
            trace: trace.source.clone(),
            requests: total,
            arrivals,
            simulated_ms: round(replay.end as f64 / 1e6, 3),
            servers: servers(service, replay, total),
            rules,
            refused,
            queued: replay.queued,
            latency: LatencySummary::of(
                replay
                    .outcomes
                    .iter()
                    .filter(|o| o.selection.is_some())
                    .map(|o| o.done - o.arrived)
                    .collect(),
            ),
            change: None,
        }
    }

    /// The report as pretty-printed JSON (with a final newline).
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The report as aligned plain text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "service {} (scheduler {}), {} requests from {}, seed {}",
            self.service, self.scheduler, self.requests, self.trace, self.seed
        );
        let _ = writeln!(
            out,
            "arrivals: {}; simulated time {:.3} s\n",
            self.arrivals,
            self.simulated_ms / 1000.0
        );
        server_table(&mut out, &self.servers);
        out.push('\n');
        rule_table(&mut out, &self.rules);
        let r = &self.refused;
        let _ = writeln!(
            out,
            "\nno server: {}, queue full: {}, queue timeout: {}, waited in queue: {}",
            r.no_server, r.queue_full, r.queue_timeout, self.queued
        );
        let _ = writeln!(
            out,
            "latency (arrival to response): mean {:.3} ms, p99 {:.3} ms",
            self.latency.mean_ms, self.latency.p99_ms
        );
        if let Some(change) = &self.change {
            change.write_text(&mut out);
        }
        out
    }
}

/// The per-server table.
fn server_table(out: &mut String, servers: &[ServerReport]) {
    let width = servers
        .iter()
        .map(|s| s.server.len())
        .chain(["server".len()])
        .max()
        .unwrap_or(6);
    let _ = writeln!(
        out,
        "{:<width$}  {:>6}  {:>8}  {:>7}  {:>5}  {:>9}  {:>9}",
        "server", "weight", "requests", "share", "peak", "mean ms", "p99 ms"
    );
    for s in servers {
        let _ = writeln!(
            out,
            "{:<width$}  {:>6}  {:>8}  {:>6.2}%  {:>5}  {:>9.3}  {:>9.3}",
            s.server,
            s.weight,
            s.requests,
            s.share * 100.0,
            s.peak,
            s.latency.mean_ms,
            s.latency.p99_ms
        );
    }
}

/// The per-rule table.
fn rule_table(out: &mut String, rules: &[RuleReport]) {
    if rules.is_empty() {
        out.push_str("no rules\n");
        return;
    }
    let width = rules
        .iter()
        .map(|r| r.pattern.len())
        .chain(["pattern".len()])
        .max()
        .unwrap_or(7);
    let _ = writeln!(
        out,
        "{:>4}  {:<width$}  {:>8}  {:>7}",
        "rule", "pattern", "hits", "share"
    );
    for r in rules {
        let _ = writeln!(
            out,
            "{:>4}  {:<width$}  {:>8}  {:>6.2}%",
            r.rule,
            r.pattern,
            r.hits,
            r.share * 100.0
        );
    }
}

/// The key of each request for the remap measure: the capture of the
/// matching rule's `match N`, else the request's host and target; the
/// client's IP for a layer-4 line or a layer-4 scheduler.
pub(crate) fn keys(
    service: &ServiceSnapshot,
    trace: &Trace,
    clients: &[SocketAddr],
    host: &str,
) -> Result<Vec<String>, SimError> {
    let mut buf = Vec::new();
    trace
        .requests
        .iter()
        .zip(clients)
        .map(|(request, client)| {
            let layer4 = service.dispatch() == Dispatch::Connection;
            let Some(http) = request.http.as_ref().filter(|_| !layer4) else {
                return Ok(client.ip().to_string());
            };
            http.with_head(host, &mut buf, |head| {
                let rule = first_matching_rule(service.rules(), head.target);
                match rule {
                    Some((i, rule)) => match rule.match_group() {
                        Some(g) => format!("{i} {}", rule.capture(head.target, g).unwrap_or("")),
                        None => format!("{} {}", head.host.unwrap_or(""), head.target),
                    },
                    None => format!("{} {}", head.host.unwrap_or(""), head.target),
                }
            })
            .map_err(|reason| SimError::Request {
                line: request.line,
                reason,
            })
        })
        .collect()
}

/// The server address (or none) of each key's first request.
fn first_servers<'k>(
    service: &ServiceSnapshot,
    replay: &Replay,
    keys: &'k [String],
) -> HashMap<&'k str, Option<SocketAddr>> {
    let mut map = HashMap::new();
    for (key, outcome) in keys.iter().zip(&replay.outcomes) {
        map.entry(key.as_str()).or_insert_with(|| {
            outcome
                .selection
                .map(|s| service.server_entries()[s.server].addr())
        });
    }
    map
}

impl ChangeReport {
    /// Compares the changed replay with the unchanged one.
    pub(crate) fn of(
        change: Change,
        before: &ServiceSnapshot,
        base: &Replay,
        after: &ServiceSnapshot,
        replayed: &Replay,
        keys: &[String],
        trace: &Trace,
    ) -> ChangeReport {
        let first = first_servers(before, base, keys);
        let then = first_servers(after, replayed, keys);
        let moved = first
            .iter()
            .filter(|(k, s)| then.get(*k) != Some(s))
            .count() as u64;
        let n = before.server_count().max(after.server_count()).max(1);
        ChangeReport {
            change: change.to_string(),
            servers_before: before.server_count(),
            servers_after: after.server_count(),
            keys: first.len() as u64,
            moved,
            moved_share: share(moved, first.len() as u64),
            ideal_share: round(1.0 / n as f64, 6),
            servers: servers(after, replayed, trace.requests.len() as u64),
        }
    }

    fn write_text(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nafter {} ({} -> {} servers):\n",
            self.change, self.servers_before, self.servers_after
        );
        server_table(out, &self.servers);
        let _ = writeln!(
            out,
            "\nkeys moved: {} of {} ({:.2}%); 1/n = {:.2}%",
            self.moved,
            self.keys,
            self.moved_share * 100.0,
            self.ideal_share * 100.0
        );
    }
}

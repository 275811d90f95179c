//! Choosing and reaching a real server: a decision's targets and the
//! servers it already excluded, starting a connect (skipping servers that
//! refuse at once), confirming it, and passive health: a failed connect
//! takes its server out of rotation for a back-off, unless the failure was
//! this process's own (see [`crate::resource`]).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ktcpvs_core::live::HealthChange;
use ktcpvs_core::snapshot::{ServiceSnapshot, TimeoutKind};
use ktcpvs_core::{Lease, PickRequest, RequestHead, Selection, ServerLoad, Settings};
use mio::Registry;

use super::pool::{Backends, ConnectCheck, Destination};
use crate::proxy_protocol::Addresses;
use crate::resource::{is_local_exhaustion, warn_exhaustion};
use crate::tls::ClientTls;

/// What starting a connect needs from the worker: its poller, its backend
/// connections, the session that will own the connection, and how long a
/// failed server stays out of rotation.
pub(crate) struct Dialer<'a> {
    /// The poller the new socket registers with.
    pub registry: &'a Registry,
    /// The worker's backend connections.
    pub backends: &'a mut Backends,
    /// The session that will own the connection.
    pub owner: usize,
    /// `server_retry_backoff`: a server whose connect failed stays out of
    /// rotation this long (doubling on repeated failures).
    pub backoff: Duration,
    /// The owner's client connection, for a server that expects a PROXY
    /// protocol header.
    pub origin: Option<Addresses>,
}

impl Dialer<'_> {
    /// Starts a non-blocking connect to `to` for the owner.
    pub fn connect(&mut self, to: Destination<'_>) -> io::Result<usize> {
        self.backends
            .connect(self.registry, to, self.owner, self.origin)
    }
}

/// Where `target` of `service` leads: its address and, for a server
/// reached over TLS, its client configuration. An error when that
/// configuration was not made by this engine's loader.
pub(crate) fn destination(
    service: &ServiceSnapshot,
    target: Target,
) -> io::Result<Destination<'_>> {
    match target {
        Target::Server(index) => {
            let entry = service
                .server_entries()
                .get(index)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            let tls = match entry.tls() {
                None => None,
                Some(material) => Some(ClientTls::of(material).ok_or_else(|| {
                    io::Error::other("the server's TLS material was not made by this engine")
                })?),
            };
            Ok(Destination {
                addr: entry.config().addr,
                tls,
                send_proxy: entry.config().send_proxy,
            })
        }
        Target::Redirect => service
            .config()
            .redirect
            .map(Destination::plain)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound)),
    }
}

/// Logs a change of a server's health; `why` says what failed when it
/// went down.
pub(crate) fn log_health(
    service: &str,
    server: SocketAddr,
    change: HealthChange,
    why: Option<&io::Error>,
) {
    match change {
        HealthChange::Unchanged => {}
        HealthChange::WentDown { backoff } => match why {
            Some(e) => log::warn!(
                "[{service}] real server {server} failed ({e}); out of rotation for {}s",
                backoff.as_secs()
            ),
            None => log::warn!(
                "[{service}] real server {server} failed; out of rotation for {}s",
                backoff.as_secs()
            ),
        },
        HealthChange::CameBack => {
            log::info!("[{service}] real server {server} is back in rotation")
        }
    }
}

/// How long a connect took that had to finish by `deadline` (it began
/// `connect_timeout` before it) and finished `now`, counted in the
/// service's connect histogram and, when it went to a server, that
/// server's.
pub(crate) fn record_connect_time(
    service: &ServiceSnapshot,
    server: Option<&ServerLoad>,
    deadline: Instant,
    now: Instant,
    settings: &Settings,
) -> Duration {
    let timeout = service.timeout(TimeoutKind::Connect, settings);
    let took = timeout.saturating_sub(deadline.saturating_duration_since(now));
    service.load().latency().connect.observe(took);
    if let Some(server) = server {
        server.latency().connect.observe(took);
    }
    took
}

/// Where a backend connection leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A real server of the service, by index in the snapshot that picked it.
    Server(usize),
    /// The service's `redirect` address.
    Redirect,
}

/// A connect in progress to a picked server, with what is needed to retry
/// on another server of the same decision.
#[derive(Debug)]
pub(crate) struct Connecting {
    /// The backend connection.
    pub conn: usize,
    /// Where it leads.
    pub target: Target,
    /// The active-connection lease on the server (none for the redirect).
    pub lease: Option<Lease>,
    /// The address.
    pub addr: SocketAddr,
}

/// Servers that failed for the current decision, or were at their
/// `maxconn` (indices of the snapshot that picked them); allocates only
/// when a connect fails or a server is full.
#[derive(Debug, Default)]
pub(crate) struct Excluded {
    /// Failed or full server indices.
    pub servers: Vec<usize>,
    /// How many of them failed (the others were full): each further
    /// attempt is a retry, paid from the service's retry budget.
    pub failed: u32,
    /// Whether a picked server was at its `maxconn`.
    pub full: bool,
    /// Whether the redirect address was tried.
    pub redirect_tried: bool,
}

/// Why no backend connection could be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoBackend {
    /// The scheduler found no server and there is no redirect address.
    NoServer,
    /// Servers were picked but every connect failed.
    AllFailed,
    /// This process ran out of a local resource (descriptors, buffers,
    /// ports) before a connect could start: no server was blamed, the
    /// request is answered 503 (see [`crate::resource`]).
    LocalExhaustion,
    /// Every server the scheduler could pick is at its `maxconn`: the
    /// request may wait in the service's queue.
    Full,
    /// A connect failed and the service's retry budget allows no retry now.
    NoRetry,
}

/// Picks a server (or falls back to the redirect address) and starts a
/// connect to it, skipping servers whose connect fails at once.
pub(crate) fn start_connect(
    service: &ServiceSnapshot,
    pick: &mut dyn FnMut(&[usize]) -> Option<usize>,
    excluded: &mut Excluded,
    dialer: &mut Dialer<'_>,
) -> Result<Connecting, NoBackend> {
    loop {
        let (target, addr) = match pick(&excluded.servers) {
            Some(index) => (
                Target::Server(index),
                service.server_entries()[index].config().addr,
            ),
            // Schedulers skip servers at their maxconn: a request none
            // could take waits when that is why (a server that would be
            // available but for its limit).
            None if excluded.full || service.any_full() => return Err(NoBackend::Full),
            None => match service.config().redirect {
                Some(addr) if !excluded.redirect_tried => (Target::Redirect, addr),
                _ => {
                    return Err(if excluded.servers.is_empty() && !excluded.redirect_tried {
                        NoBackend::NoServer
                    } else {
                        NoBackend::AllFailed
                    })
                }
            },
        };
        let lease = match target {
            Target::Server(index) => match service.try_lease(index) {
                Some(lease) => Some(lease),
                None => {
                    // At its maxconn (another worker took the last slot
                    // since the pick): not a failure, try another.
                    excluded.servers.push(index);
                    excluded.full = true;
                    continue;
                }
            },
            Target::Redirect => None,
        };
        // Each connect after a failure of this decision is a retry, paid
        // from the service's budget (a skipped full server costs nothing).
        if excluded.failed > 0 && !service.load().try_retry() {
            return Err(NoBackend::NoRetry);
        }
        match destination(service, target).and_then(|to| dialer.connect(to)) {
            Ok(conn) => {
                log::debug!("[{}] connecting to {addr}", service.config().name);
                return Ok(Connecting {
                    conn,
                    target,
                    lease,
                    addr,
                });
            }
            Err(e) if is_local_exhaustion(&e) => {
                // Every other server would fail the same way: stop here.
                warn_exhaustion("connecting to a real server", &e);
                return Err(NoBackend::LocalExhaustion);
            }
            Err(e) => {
                fail_target(service, target, addr, &e, excluded, dialer.backoff);
            }
        }
    }
}

/// Records a failed connect (or a reset/timeout of a fresh connection):
/// passive health, logging, and exclusion from the current decision. A
/// local exhaustion error (see [`crate::resource`]) excludes the target
/// from the decision but leaves the server's health alone.
pub(crate) fn fail_target(
    service: &ServiceSnapshot,
    target: Target,
    addr: SocketAddr,
    error: &io::Error,
    excluded: &mut Excluded,
    backoff: Duration,
) {
    let name = &service.config().name;
    log::debug!("[{name}] connect to {addr} failed: {error}");
    if is_local_exhaustion(error) {
        warn_exhaustion("connecting to a real server", error);
        match target {
            Target::Server(index) => excluded.servers.push(index),
            Target::Redirect => excluded.redirect_tried = true,
        }
        return;
    }
    match target {
        Target::Server(index) => {
            let change = service.report_failure(index, backoff, &format!("connect: {error}"));
            log_health(name, addr, change, Some(error));
            excluded.servers.push(index);
            excluded.failed += 1;
        }
        Target::Redirect => {
            log::warn!("[{name}] redirect address {addr} failed: {error}");
            excluded.redirect_tried = true;
        }
    }
}

/// Checks connect `id` to `target` at `addr` after an event; on success
/// records the server healthy.
pub(crate) fn poll_connect(
    service: &ServiceSnapshot,
    target: Target,
    addr: SocketAddr,
    id: usize,
    backends: &mut Backends,
) -> ConnectCheck {
    let check = backends.check_connect(id);
    if let (ConnectCheck::Connected, Target::Server(index)) = (&check, target) {
        let change = service.server_entries()[index].load().report_success();
        log_health(&service.config().name, addr, change, None);
    }
    check
}

/// Picks servers for one decision and remembers the scheduler's whole
/// selection: the pick-and-record step of every connect. A server picked
/// ahead (to look for a pooled connection to it) is used by the first
/// [`pick`](Self::pick) unless excluded meanwhile.
pub(crate) struct Chooser<'a> {
    service: &'a ServiceSnapshot,
    client: SocketAddr,
    head: Option<&'a RequestHead<'a>>,
    server_name: Option<&'a str>,
    /// A server already picked, taken by the next pick.
    ahead: Option<usize>,
    /// The last selection the scheduler made.
    pub chosen: Option<Selection>,
}

impl<'a> Chooser<'a> {
    /// A decision for `client`'s request `head` (`None` at layer 4), on a
    /// connection whose TLS handshake named `server_name`.
    pub fn new(
        service: &'a ServiceSnapshot,
        client: SocketAddr,
        head: Option<&'a RequestHead<'a>>,
        server_name: Option<&'a str>,
    ) -> Self {
        Chooser {
            service,
            client,
            head,
            server_name,
            ahead: None,
            chosen: None,
        }
    }

    /// Picks a server that `exclude` does not name.
    pub fn pick(&mut self, exclude: &[usize]) -> Option<usize> {
        if let Some(i) = self.ahead.take().filter(|i| !exclude.contains(i)) {
            return Some(i);
        }
        let selection = self.service.pick(&PickRequest {
            client: self.client,
            head: self.head,
            exclude,
            server_name: self.server_name,
        });
        self.chosen = selection;
        selection.map(|s| s.server)
    }

    /// Picks a server now, to be used again by the next [`pick`](Self::pick).
    pub fn pick_ahead(&mut self) -> Option<usize> {
        self.ahead = self.pick(&[]);
        self.ahead
    }
}

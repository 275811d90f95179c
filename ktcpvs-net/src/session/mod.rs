//! Sessions: one accepted client connection and everything it owns (its
//! backend connection while in use, its buffers while they hold bytes, its
//! deadline).
//!
//! A session is either a layer-4 [`tunnel::Tunnel`] or an HTTP/1.x
//! [`http::HttpSession`] (which becomes a tunnel after `101 Switching
//! Protocols`). Both are driven the same way: the worker records what the
//! poller reported in each socket's [`Ready`] and calls `drive`, which does
//! all the I/O it can and returns a [`Flow`].
//!
//! # Edge-triggered readiness rules
//! Sockets are registered once, for reading and writing, edge-triggered. An
//! accepted client socket is registered lazily, the first time its session
//! waits for something the client must do: until then both readiness flags
//! stay set (an accepted socket may hold data), and registering later loses
//! no edge, since `EPOLL_CTL_ADD` reports a socket that is already ready.
//! The rules that keep that correct (those of mio's `Poll` documentation):
//! * **Readiness is a hint.** An event sets a flag in [`Ready`]; the flag is
//!   cleared only when an operation returns `WouldBlock`. A spurious event
//!   costs one syscall that returns `WouldBlock` and nothing else.
//! * **Drain until `WouldBlock`.** While a flag is set the session keeps
//!   reading or writing; it stops with the flag still set only when it has
//!   no room (buffer full, pool empty) — and then it is driven again when
//!   the obstacle goes (the peer became writable, a buffer came back), so no
//!   edge is ever lost.
//! * **`Interrupted` is retried**, never treated as an error.
//! * **Connect completion** is confirmed with `take_error` and `peer_addr`
//!   on the first event, since a writable event alone may be spurious.
//!
//! * **A short read drains.** A read that fills less than the space offered
//!   took everything the socket held, so the readable flag is cleared
//!   without a second read that would only return `WouldBlock`. This is
//!   safe with edge-triggered epoll because Linux queues a new event for
//!   every arrival of data (`sk_data_ready` wakes the epoll item on each
//!   segment, not only on the empty→non-empty transition), so bytes that
//!   arrive after the short read always bring a fresh event. The one
//!   exception is a FIN (or an error) that arrived *before* the event was
//!   reported, together with the data: it brings no further event, so once
//!   an event carried read-closed or error ([`Ready::hup`]) the connection
//!   is read until `0` or `WouldBlock`, as before. A short write likewise
//!   means the send buffer is full: the writable flag is cleared and the
//!   next `EPOLLOUT` edge sets it again.
//!
//! What the poller reported (readiness) is kept apart from what a session
//! wants (its state enums): a state decides which flags it acts on.

pub mod http;
pub mod tunnel;

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ktcpvs_core::live::HealthChange;
use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::{Lease, PickRequest, Snapshot};
use mio::event::Event;
use mio::net::TcpStream;
use mio::Registry;

use crate::backend_pool::{Backends, ConnectCheck};
use crate::buffer::{Buffer, BufferPool};
use crate::listener::ClientGate;
use crate::resource::{is_local_exhaustion, warn_exhaustion};
use crate::timer::Deadline;

/// What the poller last reported about one socket, cleared on `WouldBlock`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// A read may make progress.
    pub readable: bool,
    /// A write may make progress.
    pub writable: bool,
    /// An event carried read-closed, hang-up or error: a short read no
    /// longer proves the socket drained (the EOF brings no new event).
    pub hup: bool,
}

impl Ready {
    /// Records an event. Errors and hang-ups set both flags: the next read
    /// or write reports what happened.
    pub fn absorb(&mut self, event: &Event) {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable = true;
        }
        if event.is_read_closed() || event.is_error() {
            self.hup = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            self.writable = true;
        }
    }
}

/// Bytes moved through one socket since they were last flushed to the
/// shared counters (`ServiceLoad`/`ServerLoad::add_bytes`): counted with a
/// plain add per read or write, flushed once per request or relay batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes read from the socket.
    pub read: u64,
    /// Bytes written to the socket.
    pub written: u64,
}

impl Traffic {
    /// Whether nothing moved.
    pub fn is_empty(&self) -> bool {
        self.read == 0 && self.written == 0
    }
}

/// A socket with its readiness.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// What the poller reported.
    pub ready: Ready,
    /// Bytes moved and not yet flushed to the shared counters.
    pub traffic: Traffic,
}

/// The result of one read into a buffer.
#[derive(Debug)]
pub enum Fill {
    /// Bytes were read.
    Data(usize),
    /// Nothing to read now (the readable flag was cleared).
    WouldBlock,
    /// The peer closed its sending side.
    Eof,
    /// The buffer has no free space.
    NoRoom,
}

impl Conn {
    /// Wraps a socket; `ready` says whether to assume it is ready (an
    /// accepted socket may already hold data).
    pub fn new(stream: TcpStream, ready: bool) -> Self {
        Conn {
            stream,
            ready: Ready {
                readable: ready,
                writable: ready,
                hup: false,
            },
            traffic: Traffic::default(),
        }
    }

    /// Takes the bytes counted since the last call.
    pub fn take_traffic(&mut self) -> Traffic {
        std::mem::take(&mut self.traffic)
    }

    /// One read into the free space of `buf`. A short read clears the
    /// readable flag (see the module documentation: it drained the socket).
    pub fn fill(&mut self, buf: &mut Buffer) -> io::Result<Fill> {
        if !self.ready.readable {
            return Ok(Fill::WouldBlock);
        }
        let spare = buf.spare();
        if spare.is_empty() {
            return Ok(Fill::NoRoom);
        }
        let offered = spare.len();
        loop {
            match self.stream.read(spare) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(n) => {
                    buf.commit(n);
                    self.traffic.read += n as u64;
                    if n < offered && !self.ready.hup {
                        self.ready.readable = false;
                    }
                    return Ok(Fill::Data(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready.readable = false;
                    return Ok(Fill::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes as much of `bytes` as the socket takes; returns how much.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < bytes.len() && self.ready.writable {
            match self.stream.write(&bytes[done..]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    done += n;
                    self.traffic.written += n as u64;
                    if done < bytes.len() {
                        // A short write: the send buffer is full.
                        self.ready.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// One vectored write of `parts` (`writev`): as much as the socket
    /// takes; returns how many bytes went. A short write clears the
    /// writable flag, as in [`send`](Self::send).
    pub fn send_vectored(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 || !self.ready.writable {
            return Ok(0);
        }
        loop {
            match self.stream.write_vectored(parts) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    self.traffic.written += n as u64;
                    if n < total {
                        self.ready.writable = false;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready.writable = false;
                    return Ok(0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the filled bytes of `buf`, consuming what was written.
    pub fn send_buf(&mut self, buf: &mut Buffer) -> io::Result<usize> {
        let n = self.send(buf.filled())?;
        buf.consume(n);
        Ok(n)
    }
}

/// What a session asks of the worker after being driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going; wake me at this deadline (if any).
    Open(Option<Instant>),
    /// Keep going, but I could not get a buffer: drive me again when one
    /// is given back.
    Starved(Option<Instant>),
    /// Close the session.
    Done,
}

/// The worker state a session may use while it is driven.
pub struct Ctx<'a> {
    /// The poller's registry, for registering backend sockets.
    pub registry: &'a Registry,
    /// The worker's buffers.
    pub pool: &'a mut BufferPool,
    /// The worker's backend connections.
    pub backends: &'a mut Backends,
    /// The time at the top of this loop iteration.
    pub now: Instant,
    /// The session's own slab key.
    pub key: usize,
    /// The published configuration.
    pub snapshots: &'a ArcSwap<Snapshot>,
    /// Whether the engine is draining (finish requests, keep nothing alive).
    pub draining: bool,
}

/// One client connection.
pub struct Session {
    /// The client socket.
    pub client: Conn,
    /// The client's address.
    pub peer: SocketAddr,
    /// The service version the connection was accepted under.
    pub service: Arc<ServiceSnapshot>,
    /// The `maxclients` gate the connection holds a slot of.
    pub gate: Arc<ClientGate>,
    /// The session's wake-up time in the worker's timer heap.
    pub deadline: Deadline,
    /// What kind of relay it is.
    pub kind: Kind,
    /// Whether the client socket is registered with the poller. It is
    /// registered the first time the session waits and
    /// [`needs_client_events`](Self::needs_client_events): a connection
    /// served without its socket ever blocking is never registered.
    pub registered: bool,
}

/// The two kinds of session. Both are boxed so that a slab slot stays a
/// few words whatever the kind: every slot of the worker's session slab is
/// as large as its largest variant, and idle keep-alive connections are
/// the many.
pub enum Kind {
    /// Layer-4 byte relay.
    Tunnel(Box<tunnel::Tunnel>),
    /// HTTP/1.x content switching.
    Http(Box<http::HttpSession>),
}

impl Session {
    /// Does all the I/O the session can.
    pub fn drive(&mut self, ctx: &mut Ctx<'_>) -> Flow {
        match &mut self.kind {
            Kind::Tunnel(t) => t.drive(&mut self.client, &self.service, ctx),
            Kind::Http(h) => match h.drive(&mut self.client, self.peer, &self.service, ctx) {
                http::HttpFlow::Flow(flow) => flow,
                http::HttpFlow::Upgrade(tunnel) => {
                    self.kind = Kind::Tunnel(Box::new(tunnel));
                    self.drive(ctx)
                }
            },
        }
    }

    /// The session's deadline passed.
    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_>) -> Flow {
        match &mut self.kind {
            Kind::Tunnel(t) => t.on_timeout(&mut self.client, &self.service, ctx),
            Kind::Http(h) => match h.on_timeout(&mut self.client, self.peer, &self.service, ctx) {
                http::HttpFlow::Flow(flow) => flow,
                http::HttpFlow::Upgrade(tunnel) => {
                    self.kind = Kind::Tunnel(Box::new(tunnel));
                    self.drive(ctx)
                }
            },
        }
    }

    /// Whether the session may need the client socket's readiness events
    /// while it waits (a tunnel always does; an HTTP session not while it
    /// waits only for its backend).
    pub fn needs_client_events(&self) -> bool {
        match &self.kind {
            Kind::Tunnel(_) => true,
            Kind::Http(h) => h.needs_client_events(),
        }
    }

    /// Whether the session is between requests with nothing in flight, so
    /// a draining engine may close it now.
    pub fn is_idle(&self) -> bool {
        match &self.kind {
            Kind::Tunnel(_) => false,
            Kind::Http(h) => h.is_idle(),
        }
    }

    /// Releases everything the session holds. An HTTP session's box comes
    /// back emptied (see [`http::HttpSession::close`]) so that the worker
    /// can reuse the allocation for its next connection.
    pub fn close(mut self, ctx: &mut Ctx<'_>) -> Option<Box<http::HttpSession>> {
        let rest = self.client.take_traffic();
        if !rest.is_empty() {
            self.service.load().add_bytes(rest.read, rest.written);
        }
        let spare = match self.kind {
            Kind::Tunnel(t) => {
                t.close(ctx);
                None
            }
            Kind::Http(mut h) => {
                h.close(ctx);
                Some(h)
            }
        };
        self.gate.leave();
        self.service.load().connection_closed();
        spare
    }
}

/// Logs a change of a server's health.
pub fn log_health(service: &str, server: SocketAddr, change: HealthChange) {
    match change {
        HealthChange::Unchanged => {}
        HealthChange::WentDown { backoff } => log::warn!(
            "[{service}] real server {server} failed; out of rotation for {}s",
            backoff.as_secs()
        ),
        HealthChange::CameBack => {
            log::info!("[{service}] real server {server} is back in rotation")
        }
    }
}

/// Where a backend connection leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A real server of the service, by index in the snapshot that picked it.
    Server(usize),
    /// The service's `redirect` address.
    Redirect,
}

/// A connect in progress to a picked server, with what is needed to retry
/// on another server of the same decision.
#[derive(Debug)]
pub struct Connecting {
    /// The backend connection.
    pub conn: usize,
    /// Where it leads.
    pub target: Target,
    /// The active-connection lease on the server (none for the redirect).
    pub lease: Option<Lease>,
    /// The address.
    pub addr: SocketAddr,
}

/// Servers that failed for the current decision (indices of the snapshot
/// that picked them); allocates only when a connect fails.
#[derive(Debug, Default)]
pub struct Excluded {
    /// Failed server indices.
    pub servers: Vec<usize>,
    /// Whether the redirect address was tried.
    pub redirect_tried: bool,
}

impl Excluded {
    /// Forgets every failure (a new decision starts).
    pub fn clear(&mut self) {
        self.servers.clear();
        self.redirect_tried = false;
    }
}

/// Why no backend connection could be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBackend {
    /// The scheduler found no server and there is no redirect address.
    NoServer,
    /// Servers were picked but every connect failed.
    AllFailed,
    /// This process ran out of a local resource (descriptors, buffers,
    /// ports) before a connect could start: no server was blamed, the
    /// request is answered 503 (see [`crate::resource`]).
    LocalExhaustion,
}

/// Picks a server (or falls back to the redirect address) and starts a
/// connect to it, skipping servers whose connect fails at once.
pub fn start_connect(
    service: &ServiceSnapshot,
    pick: &mut dyn FnMut(&[usize]) -> Option<usize>,
    excluded: &mut Excluded,
    ctx: &mut Ctx<'_>,
) -> Result<Connecting, NoBackend> {
    loop {
        let (target, addr) = match pick(&excluded.servers) {
            Some(index) => (
                Target::Server(index),
                service.server_entries()[index].config().addr,
            ),
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
            Target::Server(index) => Some(service.lease(index)),
            Target::Redirect => None,
        };
        match ctx.backends.connect(ctx.registry, addr, ctx.key, ctx.now) {
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
                fail_target(service, target, addr, &e, excluded, ctx);
            }
        }
    }
}

/// Records a failed connect (or a reset/timeout of a fresh connection):
/// passive health, logging, and exclusion from the current decision. A
/// local exhaustion error (see [`crate::resource`]) excludes the target
/// from the decision but leaves the server's health alone.
pub fn fail_target(
    service: &ServiceSnapshot,
    target: Target,
    addr: SocketAddr,
    error: &io::Error,
    excluded: &mut Excluded,
    ctx: &Ctx<'_>,
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
            let backoff =
                Duration::from_secs(ctx.snapshots.load().settings().server_retry_backoff());
            let change = service.server_entries()[index]
                .load()
                .report_failure(backoff);
            log_health(name, addr, change);
            excluded.servers.push(index);
        }
        Target::Redirect => {
            log::warn!("[{name}] redirect address {addr} failed: {error}");
            excluded.redirect_tried = true;
        }
    }
}

/// Checks a connect after an event; on success records the server healthy.
pub fn poll_connect(
    service: &ServiceSnapshot,
    connecting: &Connecting,
    ctx: &mut Ctx<'_>,
) -> ConnectCheck {
    let check = ctx.backends.check_connect(connecting.conn);
    if let (ConnectCheck::Connected, Target::Server(index)) = (&check, connecting.target) {
        let change = service.server_entries()[index].load().report_success();
        log_health(&service.config().name, connecting.addr, change);
    }
    check
}

/// Builds the L4 pick closure input: layer-4 picks see no request head.
pub fn pick_l4(service: &ServiceSnapshot, client: SocketAddr, exclude: &[usize]) -> Option<usize> {
    service
        .pick(&PickRequest {
            client,
            head: None,
            exclude,
        })
        .map(|s| s.server)
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    /// An idle keep-alive connection costs its slab slot plus its boxed
    /// session: both are kept small (scenario 4 of the benchmark measures
    /// resident memory per idle connection). A slot must not grow back to
    /// the size of the largest session kind.
    #[test]
    fn idle_sessions_stay_small() {
        assert!(
            size_of::<super::Session>() <= 160,
            "{}",
            size_of::<super::Session>()
        );
        assert_eq!(size_of::<super::Kind>(), 16);
        let http = size_of::<super::http::HttpSession>();
        assert!(http <= 512, "HttpSession is {http} bytes");
    }
}

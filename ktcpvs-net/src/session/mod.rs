//! Sessions: one accepted client connection and everything it owns (its
//! backend connection while in use, its buffers while they hold bytes, its
//! deadline).
//!
//! A session is either a layer-4 [`tunnel::Tunnel`] or an HTTP/1.x
//! [`http::HttpSession`] (which becomes a tunnel after `101 Switching
//! Protocols`). Both are driven the same way: the worker records what the
//! poller reported in each socket's readiness and calls `drive`, which does
//! all the I/O it can and returns a [`Flow`].
//!
//! What the poller reported is kept apart from what a session wants (see
//! [`crate::io::conn`]): a state decides which readiness flags it acts on.

pub(crate) mod h2;
pub(crate) mod http;
pub(crate) mod relay;
pub(crate) mod tunnel;

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::{Dispatch, Snapshot};
use mio::net::TcpStream;
use mio::Registry;

use self::h2::H2Session;
use self::http::{HttpFlow, HttpSession, Keep};
use crate::access_log::{AccessLog, Format};
use crate::io::buffer::BufferPool;
use crate::io::conn::Conn;
use crate::io::memory::MemoryEnd;
use crate::listener::ClientGate;
use crate::proxy_protocol::{self, Addresses};
use crate::throttle::Throttle;
use crate::timer::Deadline;
use crate::tls::ServerTls;
use crate::upstream::connect::Dialer;
use crate::upstream::pool::Backends;

/// What a session asks of the worker after being driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep going; wake me at this deadline (if any).
    Open(Option<Instant>),
    /// Keep going, but I could not get a buffer: drive me again when one
    /// is given back.
    Starved(Option<Instant>),
    /// Keep going, and drive me again once the events of this loop
    /// iteration are handled: what I have to write waits to be batched
    /// with what the other events bring (an HTTP/2 connection's frames of
    /// several streams leave in one write). Wake me at this deadline.
    Deferred(Option<Instant>),
    /// My request waits in its service's queue for a server below its
    /// `maxconn`: drive me again soon (every server may free a slot at any
    /// time, from any worker); my queue timeout is this deadline.
    Queued(Instant),
    /// Close the session.
    Done,
}

/// The worker state a session may use while it is driven.
pub(crate) struct Ctx<'a> {
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
    /// The published configuration, as the worker took it at the top of
    /// this loop iteration (one load per iteration, not one per use).
    pub snapshot: &'a Snapshot,
    /// Whether the engine is draining (finish requests, keep nothing alive).
    pub draining: bool,
    /// Emptied HTTP session boxes for reuse.
    pub spares: &'a mut Spares,
    /// The access log, when the host gave the engine one.
    pub access_log: Option<&'a AccessLog>,
    /// The session's client connection (its client and the address it
    /// reached), named in the PROXY protocol header of a server that
    /// expects one; set by [`Session::drive`].
    pub origin: Option<Addresses>,
    /// Why the session is driven.
    pub cause: Cause,
    /// The worker's count of exchanges in flight beside another on the
    /// same client connection (an HTTP/2 connection's streams after its
    /// first): how many responses one write to a client can carry, which
    /// decides how the worker naps (see [`crate::nap`]).
    pub multiplexed: &'a mut usize,
}

impl Ctx<'_> {
    /// A session's share of [`Ctx::multiplexed`] went from `before` to
    /// `after`.
    pub fn multiplexed_moved(&mut self, before: usize, after: usize) {
        *self.multiplexed = self.multiplexed.saturating_sub(before) + after;
    }
}

/// Why a session is driven: a session with many parts (an HTTP/2
/// connection's streams) moves only the parts the cause concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Its client socket had an event.
    Client,
    /// Backend connection `id`, which it owns, had an event.
    Backend(usize),
    /// It returned [`Flow::Deferred`] and this loop iteration's events
    /// are handled: what it deferred is due.
    Deferred,
    /// Anything else (a timer, a retry, a drain, its start): every part.
    Other,
}

impl Ctx<'_> {
    /// The access log and its format, when one is on.
    pub fn logging(&self) -> Option<(&AccessLog, Format)> {
        let log = self.access_log?;
        let format = Format::of_setting(self.snapshot.settings().access_log())?;
        Some((log, format))
    }

    /// What starting a connect for this session needs.
    pub fn dialer(&mut self) -> Dialer<'_> {
        let backoff = self.backoff();
        Dialer {
            registry: self.registry,
            backends: self.backends,
            owner: self.key,
            backoff,
            origin: self.origin,
        }
    }

    /// How long a server whose connect failed stays out of rotation
    /// (`server_retry_backoff`).
    pub fn backoff(&self) -> Duration {
        Duration::from_secs(self.snapshot.settings().server_retry_backoff())
    }
}

/// Emptied HTTP session boxes of closed or parked connections, reused by
/// the next connection that needs an active session, so that neither a
/// connection per request nor a keep-alive connection waking up allocates
/// one; and the memory ends of ended HTTP/2 streams, reused by the next
/// stream of any connection, and the room for streams of HTTP/2
/// connections that have none open. Bounded: beyond [`Spares::MAX`] of each,
/// boxes are freed.
// The boxes themselves are what is kept: each moves into a session's
// `Kind::Http` (a stream's `Conn`) as is.
#[allow(clippy::vec_box)]
#[derive(Debug, Default)]
pub(crate) struct Spares {
    sessions: Vec<Box<HttpSession>>,
    ends: Vec<Box<MemoryEnd>>,
    rooms: Vec<h2::Room>,
}

impl Spares {
    /// Most boxes kept, of each kind.
    pub const MAX: usize = 256;

    /// A pool of spare boxes, none yet.
    pub fn new() -> Self {
        Spares {
            sessions: Vec::with_capacity(Self::MAX),
            ends: Vec::new(),
            rooms: Vec::new(),
        }
    }

    /// An HTTP/2 connection's room for streams, emptied, when one is kept.
    pub fn room(&mut self) -> Option<h2::Room> {
        self.rooms.pop()
    }

    /// Keeps an HTTP/2 connection's emptied room for streams for the next
    /// connection that opens a stream, or frees it.
    pub fn keep_room(&mut self, room: h2::Room) {
        if self.rooms.len() < Self::MAX && room.worth_keeping() {
            self.rooms.push(room);
        }
    }

    /// A memory end for a new HTTP/2 stream of a connection that runs TLS
    /// (or not) with this server name: a spare one emptied, or a new one.
    pub fn end(&mut self, tls: bool, server_name: Option<&str>) -> Box<MemoryEnd> {
        match self.ends.pop() {
            Some(end) => end.reuse(tls, server_name),
            None => Box::new(MemoryEnd::new(tls, server_name)),
        }
    }

    /// Keeps an ended stream's memory end for a later stream, or frees it.
    pub fn keep_end(&mut self, end: Box<MemoryEnd>) {
        if self.ends.len() < Self::MAX {
            self.ends.push(end);
        }
    }

    /// A session reading its first head, in a spare box when there is one
    /// (its buffers and scratch space are already empty: only the state is
    /// written, nothing is moved).
    pub fn start(&mut self, now: Instant) -> Box<HttpSession> {
        match self.sessions.pop() {
            Some(mut spare) => {
                spare.restart(now);
                spare
            }
            None => Box::new(HttpSession::start(now)),
        }
    }

    /// A parked session's `keep` resumed in a spare box, or in a new one.
    pub fn resume(&mut self, keep: Keep, now: Instant) -> Box<HttpSession> {
        let mut session = self.start(now);
        session.resume(keep, now);
        session
    }

    /// Keeps an emptied box for later, or frees it.
    pub fn keep(&mut self, spare: Box<HttpSession>) {
        if self.sessions.len() < Self::MAX {
            self.sessions.push(spare);
        }
    }
}

/// A client's address in compact form: an IPv6 address without its flow
/// label and scope, which nothing the engine does with a client's address
/// (forwarding it, hashing it) uses. 20 bytes where a `SocketAddr` takes
/// 32, in every session slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    ip: IpAddr,
    port: u16,
}

impl Peer {
    /// The compact form of `addr`.
    pub fn of(addr: SocketAddr) -> Peer {
        Peer {
            ip: addr.ip(),
            port: addr.port(),
        }
    }

    /// The address.
    pub fn addr(self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// The client side of a connection just accepted for `service`: the bare
/// socket, or for a TLS service the socket under a rustls server connection
/// made from the service's material. `None` (logged) when that cannot be
/// made: the connection is then closed.
pub(crate) fn client_conn(stream: TcpStream, service: &ServiceSnapshot) -> Option<Conn> {
    let Some(material) = service.tls() else {
        return Some(Conn::new(stream, true));
    };
    let name = &service.config().name;
    let Some(tls) = ServerTls::of(material) else {
        log::error!("[{name}] its TLS material was not made by this engine's loader");
        return None;
    };
    let config = tls.config_for(service.dispatch(), service.config().http2);
    match rustls::ServerConnection::new(Arc::clone(config)) {
        Ok(conn) => Some(Conn::with_tls(stream, conn)),
        Err(e) => {
            log::error!("[{name}] cannot start a TLS connection: {e}");
            None
        }
    }
}

/// What reading a PROXY protocol header came to.
enum ProxyRead {
    /// Read: the session's client is the one it named.
    Read,
    /// More bytes are needed.
    Wait,
    /// The connection is refused (and was counted and reported).
    Refused,
}

/// Reports of connections refused for the PROXY protocol: anyone who can
/// reach the listener can cause them, so at most one per ten seconds.
static PROXY_REFUSALS: Throttle = Throttle::new(Duration::from_secs(10));

/// Counts and reports (throttled) a connection from `peer` refused for the
/// PROXY protocol.
pub(crate) fn refuse_proxy(service: &ServiceSnapshot, peer: SocketAddr, why: &str) {
    service.load().add_proxy_refused();
    if let Some(count) = PROXY_REFUSALS.admit() {
        log::warn!(
            "[{}] connection from {peer} refused: {why} ({count} refusal(s) since the last report)",
            service.config().name,
        );
    }
}

/// What a connection to `service` from `peer` starts as: a layer-4 tunnel
/// (connecting now) or an HTTP session reading its first head. `None` when
/// a tunnel finds no server: the connection is closed.
pub(crate) fn start_kind(
    peer: SocketAddr,
    service: &ServiceSnapshot,
    ctx: &mut Ctx<'_>,
) -> Option<Kind> {
    match service.dispatch() {
        Dispatch::Connection => {
            tunnel::Tunnel::start(peer, service, ctx).map(|t| Kind::Tunnel(Box::new(t)))
        }
        Dispatch::FirstRequest | Dispatch::EachRequest => {
            Some(Kind::Http(ctx.spares.start(ctx.now)))
        }
    }
}

/// One client connection.
pub(crate) struct Session {
    /// The client socket.
    pub client: Conn,
    /// The client's address (the one a PROXY protocol header named, when
    /// the service expects one).
    pub peer: Peer,
    /// The address the client connected to, when known: the one a PROXY
    /// protocol header named, or the socket's own, read at accept for a
    /// service whose servers expect a header.
    pub destination: Option<Peer>,
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

/// What a session is. The active kinds are boxed so that a slab slot stays
/// a few words: every slot of the worker's session slab is as large as its
/// largest variant, and idle keep-alive connections are the many. Those
/// are parked: they keep only what they need to resume, inline.
pub(crate) enum Kind {
    /// A connection to a service that expects the PROXY protocol, waiting
    /// for the header its trusted balancer puts first, until the deadline.
    AwaitingProxy {
        /// When to give up on the header (the header timeout).
        until: Instant,
    },
    /// Layer-4 byte relay.
    Tunnel(Box<tunnel::Tunnel>),
    /// HTTP/1.x content switching, with a request in flight or a head
    /// being read.
    Http(Box<HttpSession>),
    /// An HTTP/2 connection (ALPN `h2`, or h2c with prior knowledge).
    H2(Box<H2Session>),
    /// An HTTP/1.x keep-alive connection waiting for its next request with
    /// nothing buffered.
    Parked(Keep),
    /// Done, but TLS records (the last response's, the `close_notify`)
    /// still wait for the client's socket: written as it drains, until the
    /// deadline.
    Closing {
        /// When to give up on the client.
        until: Instant,
    },
}

/// How long a closing TLS connection may take to drain its last records.
const CLOSING: Duration = Duration::from_secs(5);

/// Reports of client connections that failed at the TLS level: anyone can
/// cause them, so at most one per ten seconds.
static TLS_FAILURES: Throttle = Throttle::new(Duration::from_secs(10));

impl Session {
    /// Does all the I/O the session can.
    pub fn drive(&mut self, ctx: &mut Ctx<'_>) -> Flow {
        // TLS records a send accepted wait for the socket; any event may
        // be the one that lets them go.
        if self.client.wants_write() && self.client.flush().is_err() {
            return Flow::Done;
        }
        if let Kind::Closing { until } = self.kind {
            return if self.client.wants_write() {
                Flow::Open(Some(until))
            } else {
                Flow::Done
            };
        }
        ctx.origin = self.origin();
        if let Kind::AwaitingProxy { until } = self.kind {
            match self.read_proxy_header() {
                ProxyRead::Wait => return Flow::Open(Some(until)),
                ProxyRead::Refused => return Flow::Done,
                ProxyRead::Read => {}
            }
            ctx.origin = self.origin();
            let Some(kind) = start_kind(self.peer.addr(), &self.service, ctx) else {
                return Flow::Done;
            };
            self.kind = kind;
        }
        if let Kind::Parked(_) = self.kind {
            // Its client sent something (or closed): resume in a box.
            let Kind::Parked(keep) = std::mem::replace(&mut self.kind, Kind::Parked(Keep::Nothing))
            else {
                return Flow::Done;
            };
            self.kind = Kind::Http(ctx.spares.resume(keep, ctx.now));
        }
        let flow = match &mut self.kind {
            Kind::Tunnel(t) => {
                let flow = t.drive(&mut self.client, &self.service, ctx);
                return self.close_tls(flow, ctx);
            }
            Kind::Http(h) => h.drive(&mut self.client, self.peer.addr(), &self.service, ctx),
            Kind::H2(h) => {
                let before = h.multiplexed();
                let flow = h.drive(&mut self.client, self.peer.addr(), &self.service, ctx);
                ctx.multiplexed_moved(before, h.multiplexed());
                return self.close_tls(flow, ctx);
            }
            Kind::AwaitingProxy { .. } | Kind::Parked(_) | Kind::Closing { .. } => {
                return Flow::Done
            }
        };
        let flow = self.settle(flow, ctx);
        self.close_tls(flow, ctx)
    }

    /// A TLS session that is done says `close_notify`; when that or earlier
    /// records cannot all leave now, the session releases everything but
    /// its client socket and lingers as [`Kind::Closing`] until they have.
    /// One whose handshake failed or never finished is just closed.
    fn close_tls(&mut self, flow: Flow, ctx: &mut Ctx<'_>) -> Flow {
        let client = &self.client;
        if flow != Flow::Done
            || !client.is_tls()
            || client.is_handshaking()
            || client.tls_failure().is_some()
        {
            return flow;
        }
        match self.client.shutdown_write() {
            Ok(false) => {
                let until = ctx.now + CLOSING;
                self.release_kind(Kind::Closing { until }, ctx);
                Flow::Open(Some(until))
            }
            Ok(true) | Err(_) => Flow::Done,
        }
    }

    /// Replaces the session's kind with `kind`, releasing what the old one
    /// held.
    fn release_kind(&mut self, kind: Kind, ctx: &mut Ctx<'_>) {
        match std::mem::replace(&mut self.kind, kind) {
            Kind::Tunnel(t) => t.close(self.peer.addr(), &self.service, ctx),
            Kind::Http(mut h) => {
                h.close(ctx);
                ctx.spares.keep(h);
            }
            Kind::H2(mut h) => {
                ctx.multiplexed_moved(h.multiplexed(), 0);
                h.close(ctx);
            }
            Kind::Parked(keep) => keep.leave(ctx),
            Kind::AwaitingProxy { .. } | Kind::Closing { .. } => {}
        }
    }

    /// The session's deadline passed.
    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_>) -> Flow {
        ctx.origin = self.origin();
        let flow = match &mut self.kind {
            Kind::AwaitingProxy { .. } => {
                self.refuse_proxy("no PROXY protocol header in time");
                return Flow::Done;
            }
            Kind::Tunnel(t) => return t.on_timeout(&mut self.client, &self.service, ctx),
            Kind::Http(h) => h.on_timeout(&mut self.client, self.peer.addr(), &self.service, ctx),
            Kind::H2(h) => {
                let before = h.multiplexed();
                let flow = h.on_timeout(&mut self.client, self.peer.addr(), &self.service, ctx);
                ctx.multiplexed_moved(before, h.multiplexed());
                return self.close_tls(flow, ctx);
            }
            // A parked connection's keep-alive time is up; a closing one
            // had its time to drain.
            Kind::Parked(_) | Kind::Closing { .. } => return Flow::Done,
        };
        self.settle(flow, ctx)
    }

    /// Acts on what driving the HTTP session produced: a tunnel takes its
    /// place, and one that waits for its next request with nothing
    /// buffered is parked (its box goes back to the spares).
    fn settle(&mut self, flow: HttpFlow, ctx: &mut Ctx<'_>) -> Flow {
        match flow {
            HttpFlow::Upgrade(tunnel) => {
                let old = std::mem::replace(&mut self.kind, Kind::Tunnel(tunnel));
                if let Kind::Http(spare) = old {
                    ctx.spares.keep(spare);
                }
                self.drive(ctx)
            }
            HttpFlow::H2(read) => {
                let h2 = H2Session::start(read, &self.service, ctx);
                let old = std::mem::replace(&mut self.kind, Kind::H2(Box::new(h2)));
                if let Kind::Http(spare) = old {
                    ctx.spares.keep(spare);
                }
                self.drive(ctx)
            }
            HttpFlow::Flow(flow @ Flow::Open(_)) if !self.client.ready.readable => {
                if let Kind::Http(h) = &mut self.kind {
                    if let Some(keep) = h.park() {
                        if let Kind::Http(spare) =
                            std::mem::replace(&mut self.kind, Kind::Parked(keep))
                        {
                            ctx.spares.keep(spare);
                        }
                    }
                }
                flow
            }
            HttpFlow::Flow(flow) => flow,
        }
    }

    /// Whether the session may need the client socket's readiness events
    /// while it waits (a tunnel always does; an HTTP session not while it
    /// waits only for its backend).
    pub fn needs_client_events(&self) -> bool {
        match &self.kind {
            Kind::AwaitingProxy { .. }
            | Kind::Tunnel(_)
            | Kind::Parked(_)
            | Kind::Closing { .. }
            | Kind::H2(_) => true,
            Kind::Http(h) => h.needs_client_events() || self.client.wants_write(),
        }
    }

    /// Whether the session is an HTTP/2 connection (driven once when a
    /// drain begins, so that its GOAWAY goes out at once).
    pub fn is_h2(&self) -> bool {
        matches!(self.kind, Kind::H2(_))
    }

    /// Whether the session is between requests with nothing in flight, so
    /// a draining engine may close it now.
    pub fn is_idle(&self) -> bool {
        match &self.kind {
            Kind::Tunnel(_) => false,
            Kind::Http(h) => h.is_idle(),
            Kind::H2(h) => h.is_idle(),
            Kind::AwaitingProxy { .. } | Kind::Parked(_) | Kind::Closing { .. } => true,
        }
    }

    /// The client connection as a server expecting a PROXY protocol
    /// header is told of it: the client, and the address it reached; `None`
    /// when that address was not noted (the service's servers expected no
    /// header when the connection came, and it brought none), and such a
    /// server is then sent a header naming no client.
    fn origin(&self) -> Option<Addresses> {
        self.destination.map(|d| Addresses {
            source: self.peer.addr(),
            destination: d.addr(),
        })
    }

    /// Reads the PROXY protocol header at the start of the client's bytes,
    /// without reading past it: the socket is peeked, and only the
    /// header's own bytes are taken off, so what follows (a TLS handshake,
    /// a request) is read by the session that takes over.
    fn read_proxy_header(&mut self) -> ProxyRead {
        if !self.client.ready.readable {
            return ProxyRead::Wait;
        }
        let mut buf = [0u8; proxy_protocol::MAX_HEADER];
        let seen = match self.client.stream().and_then(|s| s.peek(&mut buf)) {
            Ok(0) => return ProxyRead::Refused,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.client.ready.readable = false;
                return ProxyRead::Wait;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return ProxyRead::Wait,
            Err(_) => return ProxyRead::Refused,
        };
        let header = match proxy_protocol::parse(&buf[..seen]) {
            Ok(Some(header)) => header,
            Ok(None) => {
                // Everything the socket held was peeked: wait for more.
                self.client.ready.readable = false;
                return ProxyRead::Wait;
            }
            Err(e) => {
                self.refuse_proxy(&e.to_string());
                return ProxyRead::Refused;
            }
        };
        // The header's bytes are in the socket: the read takes them whole.
        match self
            .client
            .stream()
            .and_then(|mut s| s.read(&mut buf[..header.len]))
        {
            Ok(n) if n == header.len => {}
            _ => return ProxyRead::Refused,
        }
        if let Some(a) = header.addresses {
            self.peer = Peer::of(a.source);
            self.destination = Some(Peer::of(a.destination));
        }
        ProxyRead::Read
    }

    /// Counts and reports a connection refused for the PROXY protocol.
    fn refuse_proxy(&self, why: &str) {
        refuse_proxy(&self.service, self.peer.addr(), why);
    }

    /// Releases everything the session holds. An HTTP session's box goes
    /// back to the spares emptied (see [`HttpSession::close`]).
    pub fn close(mut self, ctx: &mut Ctx<'_>) {
        let rest = self.client.take_traffic();
        if !rest.is_empty() {
            self.service.load().add_bytes(rest.read, rest.written);
        }
        if let Some(failure) = self.client.tls_failure() {
            self.service.load().add_tls_failure();
            if let Some(count) = TLS_FAILURES.admit() {
                log::info!(
                    "[{}] TLS failed with {}: {failure} ({count} TLS failure(s) since the last report)",
                    self.service.config().name,
                    self.peer.addr()
                );
            }
        }
        self.release_kind(Kind::Closing { until: ctx.now }, ctx);
        self.gate.leave();
        self.service.load().connection_closed();
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    /// An idle keep-alive connection is parked: it costs its slab slot and
    /// its timer entry (plus, for a per-connection route, its kept backend
    /// connection), and no boxed session. Scenario 4 of the benchmark
    /// measures resident memory per idle connection; the slot must not
    /// grow back to the size of an active session. (`Conn` is left out of
    /// the sum: mio's socket type carries a debugging field in debug
    /// builds.)
    #[test]
    fn idle_sessions_stay_small() {
        let conn = size_of::<crate::io::conn::Conn>();
        let slot = size_of::<super::Session>();
        assert!(slot - conn <= 128, "a session slot is {slot} bytes");
        assert!(size_of::<super::Kind>() <= 48);
        assert!(size_of::<crate::timer::Deadline>() <= 24);
        let backend = size_of::<crate::upstream::pool::BackendConn>();
        assert!(
            backend - conn <= 32,
            "a backend connection is {backend} bytes"
        );
        let http = size_of::<super::HttpSession>();
        assert!(http <= 512, "HttpSession is {http} bytes");
    }
}

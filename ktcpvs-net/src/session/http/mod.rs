//! The HTTP/1.x session: one client connection carrying requests in order,
//! each switched to a real server.
//!
//! ```text
//!            ┌────────────── keep-alive / pipelined next ──────────────┐
//!            ▼                                                         │
//!  Reading ─head─► pick ─pool/kept─► Exchange{up, down} ─response done─┘
//!   │  │            │  └─connect──► Connecting ──ok──┘   │   │
//!   │  │            │                 │ fail: retry other server (exclude)
//!   │  │            └─none: redirect → Tunnel  / 503     │   └─101 → Tunnel
//!   │  └─bad head: 400/414/431, header_timeout: 408 ─► Error ─► Linger ─► close
//!   └─keepalive_timeout / client EOF ─► close
//! ```
//!
//! Every state carries what it needs: `Reading` what the connection keeps
//! between requests ([`Keep`]: a per-connection route and its backend
//! connection, or the pooled connection a per-request session may take
//! back), `Connecting` and `Exchange` the request's [`Route`]. While a
//! request is in flight, two direction states run side by side: `Up`
//! (request head, then body, validated by [`BodyState`] and forwarded with
//! exact framing) and `Down` (waiting for a response head, interim 1xx
//! heads forwarded and waited past, then the body). The client is not read
//! beyond the current request while it is in flight, so pipelined requests
//! wait in the buffer and are answered in order.
//!
//! Between requests, with nothing buffered, a session is *parked*: the
//! worker keeps only what it [`Keep`]s, in the session slot, and reuses the
//! box of the active session for another connection.
//!
//! | file | what lives there |
//! |---|---|
//! | `mod.rs` | the states, the session, `drive`/`on_timeout` dispatch, parking, error answers |
//! | `request.rs` | reading and parsing the head, the scheduler's decision |
//! | `backend.rs` | connects, retries, replays, pooling and byte counts of backend connections |
//! | `exchange/` | one request/response exchange: the coordinator, the request side, the response side |
//! | `pace.rs` | the minimum transfer rate a client must keep while a body waits on it |
//! | `edge.rs` | rules that answer themselves: redirects and fixed responses |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ktcpvs_core::live::QueueSlot;
use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::{Lease, Selection};

use self::backend::pool_backend;
use self::exchange::Exchange;
use self::logging::PendingLog;
use super::relay::Direction;
use super::tunnel::Tunnel;
use super::{Cause, Ctx, Flow};
use crate::http::{write_error_response, write_fixed_response, Framing, Method};
use crate::io::buffer::release_if_empty;
use crate::io::conn::{Conn, Fill};
use crate::upstream::connect::{record_connect_time, Connecting, Excluded, Target};

mod backend;
mod edge;
mod exchange;
mod logging;
mod pace;
mod request;

/// Most header slots lent to the parser; `max_headers` above this is capped.
const HEADER_SLOTS: usize = 256;

/// What a head scratch `Vec` reserves on first use: one allocation that
/// fits a usual rewritten head, instead of a growth step per field.
const SCRATCH_HEAD: usize = 512;

/// How long a connection that got an error response may keep sending
/// before it is closed (so that the error is read, not reset away).
const LINGER: Duration = Duration::from_secs(2);

/// Who sends a session's requests: the client's address and, over TLS,
/// the server name its handshake asked for (SNI), which schedulers see and
/// `Host` is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientId<'a> {
    /// The client's address.
    pub addr: SocketAddr,
    /// Whether the client connection runs TLS.
    pub tls: bool,
    /// The server name of its TLS handshake.
    pub server_name: Option<&'a str>,
    /// How the connection may turn to HTTP/2.
    pub h2: H2Start,
}

/// How a client connection may turn to HTTP/2, on a service that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum H2Start {
    /// ALPN agreed on `h2`: the connection is HTTP/2 from its first byte.
    Alpn,
    /// A plain socket: HTTP/2 if it opens with the prior-knowledge preface.
    PriorKnowledge,
    /// HTTP/1.x only (TLS without ALPN `h2`).
    Never,
    /// The connection is one stream of an HTTP/2 connection.
    Stream,
}

impl<'a> ClientId<'a> {
    /// The client of connection `client`, from `addr`.
    pub fn of(client: &'a Conn, addr: SocketAddr) -> ClientId<'a> {
        ClientId {
            addr,
            tls: client.is_tls(),
            server_name: client.server_name(),
            h2: if client.alpn_protocol() == Some(b"h2") {
                H2Start::Alpn
            } else if client.socket().is_none() {
                H2Start::Stream
            } else if !client.is_tls() {
                H2Start::PriorKnowledge
            } else {
                H2Start::Never
            },
        }
    }
}

/// What driving an HTTP session produced.
pub(crate) enum HttpFlow {
    /// Continue, close or wait, as for any session.
    Flow(Flow),
    /// The connection became a byte tunnel (`101`, or the redirect
    /// fallback), boxed as the session's next kind.
    Upgrade(Box<Tunnel>),
    /// The connection speaks HTTP/2 (ALPN `h2`, or the prior-knowledge
    /// preface): what was read of it so far.
    H2(Option<crate::io::buffer::Buffer>),
}

/// Where a request goes: the service version that decided, the decision
/// and the active-connection lease. Three words and a [`Pick`], so that a
/// parked per-connection session keeps its route inline.
#[derive(Debug)]
pub(crate) struct Route {
    service: Arc<ServiceSnapshot>,
    /// The scheduler's choice; `None`: the redirect address (no server
    /// took the request).
    pick: Option<Pick>,
    /// Held while the request (per-request schedulers) or the connection
    /// (per-connection ones) lasts.
    lease: Option<Lease>,
}

/// A [`Selection`] in compact form (indices fit `u32`: a service has far
/// fewer servers and rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pick {
    server: u32,
    /// The matched rule, [`NO_RULE`] for none.
    rule: u32,
    stamp: bool,
}

/// [`Pick::rule`] when no rule was used.
const NO_RULE: u32 = u32::MAX;

impl Pick {
    fn of(selection: Selection) -> Option<Pick> {
        Some(Pick {
            server: u32::try_from(selection.server).ok()?,
            rule: match selection.rule {
                Some(r) => u32::try_from(r).ok().filter(|&r| r != NO_RULE)?,
                None => NO_RULE,
            },
            stamp: selection.stamp,
        })
    }

    fn selection(self) -> Selection {
        Selection {
            server: self.server as usize,
            rule: (self.rule != NO_RULE).then_some(self.rule as usize),
            stamp: self.stamp,
        }
    }
}

impl Route {
    /// The route to a connect `start_connect` began, with the selection
    /// that chose it.
    fn new(
        service: Arc<ServiceSnapshot>,
        selection: Option<Selection>,
        connecting: &mut Connecting,
    ) -> Route {
        let pick = match connecting.target {
            Target::Server(_) => selection.and_then(Pick::of),
            Target::Redirect => None,
        };
        Route {
            service,
            pick,
            lease: connecting.lease.take(),
        }
    }

    /// Where the route leads.
    fn target(&self) -> Target {
        match self.pick {
            Some(p) => Target::Server(p.server as usize),
            None => Target::Redirect,
        }
    }

    /// The address the route leads to.
    fn addr(&self) -> SocketAddr {
        let addr = match self.target() {
            Target::Server(i) => self
                .service
                .server_entries()
                .get(i)
                .map(|e| e.config().addr),
            Target::Redirect => self.service.config().redirect,
        };
        addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The server entry the route leads to, if a server.
    fn entry(&self) -> Option<&ktcpvs_core::snapshot::ServerEntry> {
        match self.target() {
            Target::Server(i) => self.service.server_entries().get(i),
            Target::Redirect => None,
        }
    }

    /// Records how long the connect to the route's server took (it had
    /// to finish by `deadline`).
    fn record_connect(&self, deadline: Instant, ctx: &Ctx<'_>) -> Duration {
        let server = self.entry().map(|e| &**e.load());
        let settings = ctx.snapshot;
        record_connect_time(
            &self.service,
            server,
            deadline,
            ctx.now,
            settings.settings(),
        )
    }

    /// Counts a request the route's rule routed.
    fn count_rule_request(&self) {
        if let Some(load) = self.rule_load() {
            load.add_request();
        }
    }

    /// The counters of the rule that chose the route, if one did.
    fn rule_load(&self) -> Option<&ktcpvs_core::metrics::RuleLoad> {
        let rule = self.pick.filter(|p| p.rule != NO_RULE)?.rule as usize;
        self.service.rule_loads().get(rule).map(|l| &**l)
    }

    /// Records a final response head of `status` that came at `at` and
    /// took `took`: the response-time average, the first-byte histograms,
    /// the status class (service, server, rule) and outlier detection.
    fn record_head(&self, status: u16, (at, took): (Instant, Duration), backoff: Duration) {
        let service = self.service.load();
        service.latency().first_byte.observe(took);
        service.responses().count(status);
        if let Some(load) = self.rule_load() {
            load.add_response(status);
        }
        if let Some(entry) = self.entry() {
            entry.load().record_response_time_at(took, at);
            entry.load().latency().first_byte.observe(took);
            entry.load().responses().count(status);
        }
        self.observe_status(status, backoff);
    }

    /// Records the time a whole exchange took.
    fn record_exchange(&self, took: Duration) {
        self.service.load().latency().total.observe(took);
        if let Some(entry) = self.entry() {
            entry.load().latency().total.observe(took);
        }
    }

    /// Records a response timeout against the server the route leads to
    /// (passive health: enough in a row eject it).
    fn report_timeout(&self, backoff: Duration) {
        if let Target::Server(i) = self.target() {
            let change = self
                .service
                .report_failure(i, backoff, "no response in time");
            crate::upstream::connect::log_health(
                &self.service.config().name,
                self.addr(),
                change,
                None,
            );
        }
    }

    /// Records the status of a final response from the server the route
    /// leads to (outlier detection on consecutive 5xx).
    fn observe_status(&self, status: u16, backoff: Duration) {
        if let Target::Server(i) = self.target() {
            let change = self.service.observe_status(i, status, backoff);
            crate::upstream::connect::log_health(
                &self.service.config().name,
                self.addr(),
                change,
                None,
            );
        }
    }

    /// Counts an error against the server the route leads to.
    fn server_error(&self) {
        if let Target::Server(i) = self.target() {
            if let Some(entry) = self.service.server_entries().get(i) {
                entry.load().add_error();
            }
        }
    }

    /// Whether the route was decided once for the whole connection.
    fn per_connection(&self) -> bool {
        self.service.dispatch() != ktcpvs_core::Dispatch::EachRequest
    }
}

/// What a connection keeps between requests.
#[derive(Debug, Default)]
pub(crate) enum Keep {
    /// Nothing: the next request is decided afresh.
    #[default]
    Nothing,
    /// Per-request schedulers: the backend connection returned to the pool
    /// after the last request. Only a hint: the pool may have handed it to
    /// another session or closed it since; when the next request picks the
    /// same server and the connection still idles, it is taken back
    /// without a pool lookup.
    Pooled(usize),
    /// Per-connection schedulers: the route decided on the first request,
    /// and its backend connection while it stays open (a `u32` id, so that
    /// a parked session stays five words).
    Connection { route: Route, backend: Option<u32> },
}

impl Keep {
    /// Lets go of what a parked connection kept, its client gone between
    /// requests (closed, timed out, or closed by a drain): a per-connection
    /// route's backend connection is idle and its last exchange ended
    /// whole, so it goes back to the pool for other clients, which closes
    /// it instead when the worker drains, when the pool is full, when the
    /// server sent anything since, or when the connection carried this
    /// client's PROXY header.
    pub fn leave(self, ctx: &mut Ctx<'_>) {
        if let Keep::Connection {
            backend: Some(b), ..
        } = self
        {
            // Bytes that arrived while the connection was kept went to its
            // owner's event, which read nothing: no later event reports
            // them, so a `peek` looks.
            let quiet = ctx.backends.is_quiet(b as usize);
            pool_backend(b as usize, quiet, ctx);
        }
    }

    /// Lets go of what is kept: a kept backend connection is closed.
    pub fn release(self, ctx: &mut Ctx<'_>) {
        if let Keep::Connection {
            backend: Some(b), ..
        } = self
        {
            ctx.backends.close(b as usize);
        }
    }
}

/// Whether the response may use the client connection afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persist {
    /// The connection stays open for the next request.
    KeepAlive,
    /// The connection closes after this response.
    Close,
}

/// The client's protocol version, where it changes the response: an
/// HTTP/1.0 client reads no chunked body and keeps its connection only
/// when the response says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Http10,
    Http11,
}

/// Where the request head is while the request is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// At the front of the client buffer, `len` bytes, forwarded as is.
    Verbatim(usize),
    /// At the front of the client buffer, `len` bytes; what goes up is its
    /// rewrite in the session's scratch.
    Rewritten(usize),
    /// Consumed from the buffer: its body follows there, or its response
    /// began.
    Consumed,
}

impl Head {
    /// Bytes of the received head still at the front of the client buffer.
    fn len(self) -> usize {
        match self {
            Head::Verbatim(n) | Head::Rewritten(n) => n,
            Head::Consumed => 0,
        }
    }
}

/// The request in flight.
#[derive(Debug)]
struct Request {
    method: Method,
    head: Head,
    framing: Framing,
    /// What the client asked of its connection (HTTP/1.1 keeps it by
    /// default, HTTP/1.0 with `Connection: keep-alive`); with `Close`, this
    /// request is its last and nothing may follow it.
    persist: Persist,
    version: Version,
    /// An upgrade the service allows was asked for: a `101` may answer.
    upgrade: bool,
}

impl Request {
    /// Whether the request may be sent again on a fresh connection: an
    /// idempotent request without a body whose head is still in the buffer
    /// (no response began).
    fn replayable(&self) -> bool {
        self.method.is_idempotent()
            && matches!(self.framing, Framing::None | Framing::Length(0))
            && self.head != Head::Consumed
    }
}

/// Bytes in flight each way, and the scratch rewritten heads are written
/// to: one struct, so the request side and the response side each borrow
/// what they need.
#[derive(Debug, Default)]
struct Io {
    /// Client to server; its buffer also collects request heads.
    up: Direction,
    /// Server to client.
    down: Direction,
    /// A rewritten request head, or an error response.
    scratch: Vec<u8>,
    /// A rewritten response head.
    rscratch: Vec<u8>,
    /// The access-log line of the request in flight, when logging.
    log: Option<PendingLog>,
}

/// Where the session is.
#[derive(Debug)]
enum State {
    /// Between requests, reading a head. `first_byte` is when the head's
    /// first byte was seen (header timeout), if any.
    Reading {
        since: Instant,
        first_byte: Option<Instant>,
        keep: Keep,
    },
    /// Connecting to the route's target for `req`.
    Connecting {
        route: Route,
        backend: usize,
        req: Request,
        /// The connect timeout's end; it began `connect_timeout` before
        /// (the connect-time histogram counts from there).
        deadline: Instant,
        /// Servers of this decision whose connect failed.
        excluded: Excluded,
    },
    /// Every server `req` could go to is at its `maxconn`: the request
    /// waits in the service's queue (its place is `slot`) until one frees
    /// a slot or `deadline` passes (503).
    Queued {
        service: Arc<ServiceSnapshot>,
        req: Request,
        slot: QueueSlot,
        deadline: Instant,
    },
    /// A request in flight.
    Exchange(Exchange),
    /// Sending the error response in the scratch buffer.
    Error { sent: usize },
    /// Error sent and write side shut: discard input until EOF or deadline.
    Linger { until: Instant },
    /// Finished.
    Closed,
}

/// An HTTP/1.x client connection.
#[derive(Debug)]
pub(crate) struct HttpSession {
    state: State,
    io: Io,
}

/// What one state's handler asks the driving loop to do next.
enum Step {
    /// State changed; run the loop again.
    Again,
    /// Nothing more to do until an event.
    Wait(Option<Instant>),
    /// Same, but a buffer was missing.
    Starved(Option<Instant>),
    /// Waiting in the queue until this deadline.
    Queued(Instant),
    /// Close the connection.
    Close,
    /// Become a tunnel.
    Tunnel(Box<Tunnel>),
    /// Become an HTTP/2 session.
    H2,
}

impl HttpSession {
    /// An HTTP session on an accepted connection, reading its first head.
    pub fn start(now: Instant) -> HttpSession {
        HttpSession {
            state: State::Reading {
                since: now,
                first_byte: Some(now),
                keep: Keep::Nothing,
            },
            // The scratch vectors grow on first use (a rewritten head or
            // an error), then are reused: a connection whose heads go
            // verbatim never holds one.
            io: Io::default(),
        }
    }

    /// Starts this emptied session over on a newly accepted connection.
    pub fn restart(&mut self, now: Instant) {
        self.state = State::Reading {
            since: now,
            first_byte: Some(now),
            keep: Keep::Nothing,
        };
    }

    /// Resumes a parked session (what it kept) in this emptied box, its
    /// client having sent something.
    pub fn resume(&mut self, keep: Keep, now: Instant) {
        self.state = State::Reading {
            since: now,
            first_byte: None,
            keep,
        };
    }

    /// Parks the session if it waits for a next request with nothing
    /// buffered: returns what it keeps and leaves this box emptied, for the
    /// worker to reuse. The worker holds the parked form in the session
    /// slot until the client sends again or the keep-alive deadline passes.
    pub fn park(&mut self) -> Option<Keep> {
        let parkable = matches!(
            self.state,
            State::Reading {
                first_byte: None,
                ..
            }
        ) && self.io.up.buf.is_none()
            && self.io.down.buf.is_none()
            && !self.io.up.holds_bytes()
            && !self.io.down.holds_bytes();
        if !parkable {
            return None;
        }
        // Only the kept part moves out (the state enum is far larger).
        let State::Reading { keep, .. } = &mut self.state else {
            return None;
        };
        let keep = std::mem::take(keep);
        self.state = State::Closed;
        self.io.up.clear();
        self.io.down.clear();
        Some(keep)
    }

    /// Whether the session may need the client socket's readiness events
    /// now. It does not while its request is entirely sent and it waits
    /// for a connect or a response head: the client is not read beyond the
    /// request in flight, and nothing is written to it before the response
    /// head comes (a backend event). A `Connection: close` exchange that
    /// goes through without the client socket ever blocking is then served
    /// without registering it with the poller.
    pub fn needs_client_events(&self) -> bool {
        match &self.state {
            State::Connecting { .. } | State::Queued { .. } => false,
            State::Exchange(ex) => !ex.waits_on_server_only(),
            _ => true,
        }
    }

    /// The backend connection the session uses now, if any (its events
    /// concern this session).
    pub fn backend(&self) -> Option<usize> {
        match &self.state {
            State::Connecting { backend, .. } => Some(*backend),
            State::Exchange(ex) => Some(ex.backend),
            _ => None,
        }
    }

    /// An event on backend connection `id`: when it is the one a
    /// per-connection route keeps between requests and the server wrote to
    /// it unasked or closed it, it is closed and forgotten (the next request
    /// connects anew), since whatever the server sent now would be read as
    /// the next request's response.
    fn check_kept(&mut self, id: usize, ctx: &mut Ctx<'_>) {
        if let State::Reading {
            keep: Keep::Connection { backend, .. },
            ..
        } = &mut self.state
        {
            if backend.is_some_and(|b| b as usize == id) && !ctx.backends.is_quiet(id) {
                ctx.backends.close(id);
                *backend = None;
            }
        }
    }

    /// Whether nothing is in flight (a draining engine may close it).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Reading { .. }) && !self.io.up.holds_bytes()
    }

    /// Does all the I/O it can.
    pub fn drive(
        &mut self,
        client: &mut Conn,
        peer: SocketAddr,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> HttpFlow {
        if let Cause::Backend(id) = ctx.cause {
            self.check_kept(id, ctx);
        }
        loop {
            let step = match &self.state {
                State::Reading { .. } => self.read_head(client, peer, service, ctx),
                State::Connecting { .. } => self.connecting(ClientId::of(client, peer), ctx),
                State::Queued { .. } => self.leave_queue(ClientId::of(client, peer), ctx),
                State::Exchange(_) => self.exchange(client, ctx),
                State::Error { .. } => self.send_error(client, ctx),
                State::Linger { until } => {
                    let until = *until;
                    linger(client, ctx, &mut self.io.up, until)
                }
                State::Closed => Step::Close,
            };
            match step {
                Step::Again => continue,
                Step::Wait(at) => return HttpFlow::Flow(Flow::Open(at)),
                Step::Starved(at) => return HttpFlow::Flow(Flow::Starved(at)),
                Step::Queued(at) => return HttpFlow::Flow(Flow::Queued(at)),
                Step::Close => {
                    self.release_backend(ctx);
                    return HttpFlow::Flow(Flow::Done);
                }
                Step::Tunnel(t) => {
                    self.state = State::Closed;
                    return HttpFlow::Upgrade(t);
                }
                Step::H2 => {
                    if let State::Reading { keep, .. } =
                        std::mem::replace(&mut self.state, State::Closed)
                    {
                        keep.release(ctx);
                    }
                    return HttpFlow::H2(self.io.up.buf.take());
                }
            }
        }
    }

    /// The session's deadline passed.
    pub fn on_timeout(
        &mut self,
        client: &mut Conn,
        peer: SocketAddr,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> HttpFlow {
        match &self.state {
            // A TLS handshake that did not finish in time: nothing to
            // answer in.
            State::Reading { .. } if client.is_handshaking() => {
                return HttpFlow::Flow(Flow::Done);
            }
            State::Reading {
                first_byte: Some(_),
                ..
            } => {
                log::debug!(
                    "[{}] {peer}: request head not complete in time",
                    service.config().name
                );
                self.fail(408, service, ctx);
            }
            State::Reading { .. } | State::Linger { .. } | State::Error { .. } | State::Closed => {
                return HttpFlow::Flow(Flow::Done)
            }
            State::Connecting { .. } => {
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                self.retry_connect(&e, ClientId::of(client, peer), ctx);
            }
            State::Queued { deadline, .. } if ctx.now >= *deadline => self.queue_timed_out(ctx),
            State::Queued { .. } => {}
            State::Exchange(ex) if ex.waits_for_response() => {
                log::warn!(
                    "[{}] {} did not answer in time",
                    ex.route.service.config().name,
                    ex.route.addr()
                );
                ex.route.report_timeout(ctx.backoff());
                self.drop_backend(ctx);
                self.fail(504, service, ctx);
            }
            // The exchange checks its own inactivity and rate deadlines.
            State::Exchange(_) => {}
        }
        self.drive(client, peer, service, ctx)
    }

    /// Releases everything: backend connection, buffers, kernel pipes and
    /// scratch space. What is left is a closed session holding nothing,
    /// whose allocation the worker may reuse for its next connection.
    pub fn close(&mut self, ctx: &mut Ctx<'_>) {
        self.release_backend(ctx);
        self.io = Io::default();
    }

    /// Releases everything at the end of an HTTP/2 stream: like
    /// [`close`](Self::close), except that a per-connection route's backend
    /// connection, idle between requests with nothing buffered, goes back
    /// to the pool (which refuses one whose framing or PROXY header is in
    /// doubt) rather than being closed: the stream was the route's whole
    /// "connection", and the next stream may use it.
    pub fn end_of_stream(&mut self, ctx: &mut Ctx<'_>) {
        let idle = !self.io.up.holds_bytes() && !self.io.down.holds_bytes();
        if let State::Reading {
            keep: Keep::Connection { backend, .. },
            ..
        } = &mut self.state
        {
            if idle {
                if let Some(id) = backend.take() {
                    pool_backend(id as usize, true, ctx);
                }
            }
        }
        self.close(ctx);
    }

    /// Closes the backend connection in use or being connected (never
    /// pooling it: whatever ended the session left its framing in doubt),
    /// lets go of a kept one between requests (its last exchange ended
    /// whole: see [`Keep::leave`]) unless the server sent more since, and
    /// leaves the session [`State::Closed`].
    fn release_backend(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(pending) = self.io.log.take() {
            // The request in flight was cut.
            let service = match &self.state {
                State::Exchange(ex) => Some(Arc::clone(&ex.route.service)),
                State::Connecting { route, .. } => Some(Arc::clone(&route.service)),
                State::Queued { service, .. } => Some(Arc::clone(service)),
                _ => None,
            };
            if let Some(service) = service {
                pending.finish(&service, (0, 0), "aborted", ctx);
            }
        }
        self.drop_backend(ctx);
        // Bytes from the server past its last response put its framing in
        // doubt: such a connection is closed, not left to others.
        let clean = !self.io.down.holds_bytes();
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Connecting { backend, .. } => ctx.backends.close(backend),
            State::Reading { keep, .. } if clean => keep.leave(ctx),
            State::Reading { keep, .. } => keep.release(ctx),
            _ => {}
        }
    }

    /// Answers `status` and closes after it (forwarding nothing more).
    fn fail(&mut self, status: u16, service: &ServiceSnapshot, ctx: &mut Ctx<'_>) {
        service.load().add_error();
        service.load().add_proxy_response(status);
        if let Some(mut pending) = self.io.log.take() {
            pending.status = status;
            pending.finish(service, (0, 0), "proxy", ctx);
        }
        match std::mem::replace(&mut self.state, State::Error { sent: 0 }) {
            State::Connecting { backend, .. } => ctx.backends.close(backend),
            State::Reading { keep, .. } => keep.release(ctx),
            _ => {}
        }
        self.io.scratch.clear();
        self.io.scratch.reserve(SCRATCH_HEAD);
        match service.config().error_pages.get(&status) {
            Some(page) => write_fixed_response(
                status,
                &page.content_type,
                page.body.as_bytes(),
                false,
                &mut self.io.scratch,
            ),
            None => write_error_response(status, &mut self.io.scratch),
        }
    }

    /// Answers the request at the edge with the response a rule wrote into
    /// the scratch (see [`edge`]), then closes like an error does.
    fn answer_at_edge(&mut self, status: u16, service: &ServiceSnapshot, ctx: &mut Ctx<'_>) {
        service.load().add_proxy_response(status);
        service.load().responses().count(status);
        if let Some(mut pending) = self.io.log.take() {
            pending.status = status;
            pending.finish(service, (0, 0), "edge", ctx);
        }
        match std::mem::replace(&mut self.state, State::Error { sent: 0 }) {
            State::Connecting { backend, .. } => ctx.backends.close(backend),
            State::Reading { keep, .. } => keep.release(ctx),
            _ => {}
        }
    }

    fn send_error(&mut self, client: &mut Conn, ctx: &mut Ctx<'_>) -> Step {
        let State::Error { sent } = &mut self.state else {
            return Step::Close;
        };
        match client.send(&self.io.scratch[*sent..]) {
            Ok(n) => *sent += n,
            Err(_) => return Step::Close,
        }
        if *sent < self.io.scratch.len() {
            return Step::Wait(Some(ctx.now + LINGER));
        }
        let _ = client.shutdown_write();
        self.state = State::Linger {
            until: ctx.now + LINGER,
        };
        Step::Again
    }
}

/// Discards client input until EOF or `until`, so an error response is read
/// rather than lost to a reset.
fn linger(client: &mut Conn, ctx: &mut Ctx<'_>, up: &mut Direction, until: Instant) -> Step {
    // Nothing arrived since the last short read: the client's FIN (or more
    // bytes) brings an event, so no read is spent on an empty socket.
    if !client.ready.readable {
        release_if_empty(&mut up.buf);
        return Step::Wait(Some(until));
    }
    if up.buf.is_none() {
        up.buf = ctx.pool.checkout();
    }
    let Some(b) = up.buf.as_mut() else {
        return Step::Close;
    };
    loop {
        b.consume(b.len());
        match client.fill(b) {
            Ok(Fill::Data) => continue,
            Ok(Fill::WouldBlock) => return Step::Wait(Some(until)),
            _ => return Step::Close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, head: Head, framing: Framing) -> Request {
        Request {
            method,
            head,
            framing,
            persist: Persist::KeepAlive,
            version: Version::Http11,
            upgrade: false,
        }
    }

    #[test]
    fn a_request_is_replayable_only_while_idempotent_bodiless_and_in_the_buffer() {
        assert!(request(Method::Get, Head::Verbatim(40), Framing::None).replayable());
        assert!(request(Method::Put, Head::Rewritten(40), Framing::Length(0)).replayable());
        assert!(!request(Method::Post, Head::Verbatim(40), Framing::None).replayable());
        assert!(!request(Method::Get, Head::Verbatim(40), Framing::Length(3)).replayable());
        assert!(!request(Method::Get, Head::Consumed, Framing::None).replayable());
        assert_eq!(Head::Consumed.len(), 0);
    }

    #[test]
    fn a_pick_keeps_the_whole_selection() {
        for selection in [
            Selection {
                server: 7,
                rule: Some(2),
                stamp: true,
            },
            Selection {
                server: 0,
                rule: None,
                stamp: false,
            },
        ] {
            assert_eq!(Pick::of(selection).map(Pick::selection), Some(selection));
        }
        let too_big = Selection {
            server: usize::MAX,
            rule: None,
            stamp: false,
        };
        assert_eq!(Pick::of(too_big), None);
    }

    #[test]
    fn a_session_parks_only_between_requests_with_nothing_buffered() {
        let now = Instant::now();
        let mut session = HttpSession::start(now);
        assert!(session.park().is_none(), "reading its first head");
        session.resume(Keep::Pooled(3), now);
        let kept = session.park();
        assert!(matches!(kept, Some(Keep::Pooled(3))), "{kept:?}");
        assert!(matches!(session.state, State::Closed));
    }
}

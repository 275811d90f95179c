//! The HTTP/1.x session: one client connection carrying requests in order,
//! each switched to a real server.
//!
//! ```text
//!            ┌────────────── keep-alive / pipelined next ──────────────┐
//!            ▼                                                         │
//!  Idle ──head──► pick ──pool/kept──► Exchange{up, down} ──response done┘
//!   │  │            │  └─connect──► Connecting ──ok──┘   │   │
//!   │  │            │                 │ fail: retry other server (exclude)
//!   │  │            └─none: redirect → Tunnel  / 503     │   └─101 → Tunnel
//!   │  └─bad head: 400/414/431, header_timeout: 408 ─► Error ─► Linger ─► close
//!   └─keepalive_timeout / client EOF ─► close
//! ```
//!
//! While a request is in flight, two direction states run side by side:
//! `Up` (request head, then body, validated by [`BodyState`] and
//! forwarded with exact framing) and `Down` (waiting for a response head
//! — interim 1xx heads are forwarded and waited past — then the body). The
//! client is not read beyond the current request while it is in flight, so
//! pipelined requests wait in the buffer and are answered in order.
//!
//! Head bytes are forwarded as received when nothing needs rewriting; only
//! then is no byte copied. A request without a body keeps its head in the
//! buffer until the response starts, so when a pooled backend connection
//! turns out dead, an idempotent request is replayed on a fresh one without
//! the client noticing.

use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ktcpvs_core::snapshot::{ServiceSnapshot, TimeoutKind};
use ktcpvs_core::{Dispatch, Lease, PickRequest, Selection};

use super::tunnel::Tunnel;
use super::{
    fail_target, poll_connect, start_connect, Conn, Connecting, Ctx, Excluded, Fill, Flow,
    NoBackend, Target,
};
use crate::backend_pool::ConnectCheck;
use crate::buffer::{Buffer, BufferPool};
use crate::http::{
    can_forward_request_verbatim, can_forward_response_verbatim, parse_request_uninit,
    parse_response_uninit, write_error_response, write_request_head, write_response_head,
    BodyState, ForwardOptions, Framing, Limits, Method,
};
use crate::splice::{self, KernelPipe};

/// Most header slots lent to the parser; `max_headers` above this is capped.
const HEADER_SLOTS: usize = 256;

/// How long a connection that got an error response may keep sending
/// before it is closed (so that the error is read, not reset away).
const LINGER: Duration = Duration::from_secs(2);

/// What driving an HTTP session produced.
// A tunnel is stored inline: boxing it would cost an allocation per
// connection, and the variant is rare on the paths that move these values.
#[allow(clippy::large_enum_variant)]
pub enum HttpFlow {
    /// Continue, close or wait, as for any session.
    Flow(Flow),
    /// The connection became a byte tunnel (`101`, or the redirect
    /// fallback).
    Upgrade(Tunnel),
}

/// Where a request goes: the service version that decided, the decision,
/// and the active-connection lease.
#[derive(Debug)]
struct Route {
    service: Arc<ServiceSnapshot>,
    selection: Option<Selection>,
    target: Target,
    addr: SocketAddr,
    _lease: Option<Lease>,
}

/// The request in flight.
#[derive(Debug)]
struct Request {
    method: Method,
    /// Bytes of its head at the front of the client buffer (until consumed).
    head_len: usize,
    /// Forward `inbuf[..head_len]` as is; otherwise the session's scratch.
    verbatim: bool,
    framing: Framing,
    client_keep: bool,
    upgrade: bool,
    /// Whether the head is still in the buffer and may be sent again.
    replayable: bool,
}

/// The request direction.
#[derive(Debug)]
enum Up {
    /// Sending the head; `sent` bytes of it are out.
    Head { sent: usize },
    /// Forwarding the body; `pending` validated bytes at the front of the
    /// client buffer are not yet sent.
    Body { body: BodyState, pending: usize },
    /// The whole request is out.
    Done,
}

/// The response direction.
#[derive(Debug)]
enum Down {
    /// Waiting for a (final) response head.
    Head,
    /// Forwarding: `scratch_sent` of a rewritten head (if any), then the
    /// body with `pending` validated bytes at the front of the buffer.
    Body {
        scratch: Option<usize>,
        body: BodyState,
        pending: usize,
        backend_keep: bool,
        client_keep: bool,
        /// A 1xx head: once it is out, wait for the final response.
        interim: bool,
    },
}

/// Where the session is.
#[derive(Debug)]
enum State {
    /// Between requests, reading a head. `first_byte` is when the head's
    /// first byte was seen (header timeout), if any.
    Idle {
        since: Instant,
        first_byte: Option<Instant>,
    },
    /// Connecting to the picked server.
    Connecting {
        conn: Connecting,
        req: Request,
        deadline: Instant,
    },
    /// A request in flight over `backend`.
    Exchange {
        backend: usize,
        reused: bool,
        req: Request,
        up: Up,
        down: Down,
        since: Instant,
    },
    /// Sending the error response in the scratch buffer.
    Error { sent: usize },
    /// Error sent and write side shut: discard input until EOF or deadline.
    Linger { until: Instant },
    /// Finished.
    Closed,
}

/// An HTTP/1.x client connection.
#[derive(Debug)]
pub struct HttpSession {
    state: State,
    inbuf: Option<Buffer>,
    outbuf: Option<Buffer>,
    /// A rewritten request head, or an error response.
    scratch: Vec<u8>,
    /// A rewritten response head.
    rscratch: Vec<u8>,
    /// `zerocopy_send` kernel pipes for request and response bodies, made
    /// on first use.
    up_pipe: Option<KernelPipe>,
    down_pipe: Option<KernelPipe>,
    /// The route of the request in flight; for per-connection schedulers,
    /// the route of the whole connection.
    route: Option<Route>,
    /// Per-connection schedulers: the backend connection kept between
    /// requests.
    kept: Option<usize>,
    excluded: Excluded,
    /// The client's address (for retries' picks).
    peer: SocketAddr,
}

// A tunnel is stored inline: boxing it would cost an allocation per
// connection, and the variant is rare on the paths that move these values.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// State changed; run the loop again.
    Again,
    /// Nothing more to do until an event.
    Wait(Option<Instant>),
    /// Same, but a buffer was missing.
    Starved(Option<Instant>),
    /// Close the connection.
    Close,
    /// Become a tunnel.
    Tunnel(Tunnel),
}

impl HttpSession {
    /// Starts an HTTP session on an accepted connection.
    pub fn start(peer: SocketAddr, ctx: &mut Ctx<'_>) -> Option<HttpSession> {
        Some(HttpSession {
            state: State::Idle {
                since: ctx.now,
                first_byte: Some(ctx.now),
            },
            inbuf: None,
            outbuf: None,
            scratch: Vec::with_capacity(512),
            rscratch: Vec::with_capacity(512),
            up_pipe: None,
            down_pipe: None,
            route: None,
            kept: None,
            excluded: Excluded::default(),
            peer,
        })
    }

    /// Whether nothing is in flight (a draining engine may close it).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle { .. })
            && self.inbuf.as_ref().map_or(true, Buffer::is_empty)
    }

    /// Does all the I/O it can.
    pub fn drive(
        &mut self,
        client: &mut Conn,
        peer: SocketAddr,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> HttpFlow {
        loop {
            let step = match &self.state {
                State::Idle { .. } => self.read_head(client, peer, service, ctx),
                State::Connecting { .. } => self.connecting(client, ctx),
                State::Exchange { .. } => self.exchange(client, ctx),
                State::Error { .. } => self.send_error(client, ctx),
                State::Linger { until } => {
                    let until = *until;
                    linger(client, ctx.pool, &mut self.inbuf, until)
                }
                State::Closed => Step::Close,
            };
            match step {
                Step::Again => continue,
                Step::Wait(at) => return HttpFlow::Flow(Flow::Open(at)),
                Step::Starved(at) => return HttpFlow::Flow(Flow::Starved(at)),
                Step::Close => {
                    self.state = State::Closed;
                    return HttpFlow::Flow(Flow::Done);
                }
                Step::Tunnel(t) => {
                    self.state = State::Closed;
                    return HttpFlow::Upgrade(t);
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
            State::Idle {
                first_byte: Some(_),
                ..
            } => {
                log::debug!(
                    "[{}] {peer}: request head not complete in time",
                    service.config().name
                );
                self.fail(408, service, ctx);
            }
            State::Idle { .. } | State::Linger { .. } | State::Error { .. } | State::Closed => {
                return HttpFlow::Flow(Flow::Done)
            }
            State::Connecting { .. } => {
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                self.retry_connect(&e, ctx);
            }
            State::Exchange {
                down: Down::Head, ..
            } => {
                if let Some(r) = &self.route {
                    log::warn!(
                        "[{}] {} did not answer in time",
                        r.service.config().name,
                        r.addr
                    );
                }
                self.drop_backend(ctx, false);
                self.fail(504, service, ctx);
            }
            State::Exchange { .. } => return HttpFlow::Flow(Flow::Done),
        }
        self.drive(client, peer, service, ctx)
    }

    /// Releases everything.
    pub fn close(mut self, ctx: &mut Ctx<'_>) {
        self.drop_backend(ctx, false);
        if let State::Connecting { conn, .. } = std::mem::replace(&mut self.state, State::Closed) {
            ctx.backends.close(conn.conn);
        }
        ctx.pool.release(&mut self.inbuf);
        ctx.pool.release(&mut self.outbuf);
    }

    /// Closes (or pools) the backend connection in use.
    fn drop_backend(&mut self, ctx: &mut Ctx<'_>, reusable: bool) {
        let backend = match &self.state {
            State::Exchange { backend, .. } => Some(*backend),
            _ => None,
        }
        .or(self.kept.take());
        if let Some(b) = backend {
            self.flush_backend_traffic(b, ctx);
            if reusable && !ctx.draining {
                let max = ctx.snapshots.load().settings().pool_max_idle();
                ctx.backends
                    .put_idle(b, usize::try_from(max).unwrap_or(usize::MAX), ctx.now);
            } else {
                ctx.backends.close(b);
            }
        }
    }

    /// Adds the bytes counted on backend connection `backend` to the
    /// counters of the server the route leads to (one add per direction).
    fn flush_backend_traffic(&self, backend: usize, ctx: &mut Ctx<'_>) {
        let Some(link) = ctx.backends.get_mut(backend) else {
            return;
        };
        let traffic = link.conn.take_traffic();
        if traffic.is_empty() {
            return;
        }
        if let Some(Route {
            service,
            target: Target::Server(i),
            ..
        }) = &self.route
        {
            if let Some(entry) = service.server_entries().get(*i) {
                entry.load().add_bytes(traffic.written, traffic.read);
            }
        }
    }

    /// Answers `status` and closes after it (forwarding nothing more).
    fn fail(&mut self, status: u16, service: &ServiceSnapshot, ctx: &mut Ctx<'_>) {
        service.load().add_error();
        if let State::Connecting { conn, .. } = &self.state {
            ctx.backends.close(conn.conn);
        }
        self.scratch.clear();
        write_error_response(status, &mut self.scratch);
        self.state = State::Error { sent: 0 };
    }

    fn read_head(
        &mut self,
        client: &mut Conn,
        peer: SocketAddr,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> Step {
        let State::Idle { since, first_byte } = self.state else {
            return Step::Close;
        };
        let settings = ctx.snapshots.load();
        let settings = settings.settings();
        let limits = Limits::from_settings(settings);
        loop {
            if let Some(buf) = self.inbuf.take_if(|b| !b.is_empty()) {
                let mut slots = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
                let n = limits.max_headers.min(HEADER_SLOTS);
                let parsed = parse_request_uninit(buf.filled(), &mut slots[..n], &limits);
                let exhausted = buf.is_exhausted();
                match parsed {
                    Err(e) => {
                        log::debug!("[{}] {peer}: bad request: {e}", service.config().name);
                        self.fail(e.status(), service, ctx);
                        self.inbuf = Some(buf);
                        return Step::Again;
                    }
                    Ok(Some((info, head))) => {
                        let step = self.route_request(peer, service, ctx, &info, &head);
                        self.inbuf = Some(buf);
                        return match step {
                            Step::Tunnel(t) => Step::Tunnel(t.with_client_bytes(self.inbuf.take())),
                            other => other,
                        };
                    }
                    Ok(None) if exhausted => {
                        self.fail(431, service, ctx);
                        self.inbuf = Some(buf);
                        return Step::Again;
                    }
                    Ok(None) => self.inbuf = Some(buf),
                }
            }
            if ctx.draining && self.inbuf.as_ref().map_or(true, Buffer::is_empty) {
                return Step::Close;
            }
            if !client.ready.readable {
                ctx.pool.release_if_empty(&mut self.inbuf);
                let at = match first_byte {
                    Some(t) => t + service.timeout(TimeoutKind::Header, settings),
                    None => since + service.timeout(TimeoutKind::Keepalive, settings),
                };
                return Step::Wait(Some(at));
            }
            if self.inbuf.is_none() {
                match ctx.pool.checkout() {
                    Some(b) => self.inbuf = Some(b),
                    None => return Step::Starved(None),
                }
            }
            let Some(buf) = self.inbuf.as_mut() else {
                return Step::Close;
            };
            buf.compact();
            match client.fill(buf) {
                Ok(Fill::Data(_)) => {
                    if first_byte.is_none() {
                        self.state = State::Idle {
                            since,
                            first_byte: Some(ctx.now),
                        };
                    }
                }
                Ok(Fill::WouldBlock) => {}
                Ok(Fill::NoRoom) => {
                    self.fail(431, service, ctx);
                    return Step::Again;
                }
                Ok(Fill::Eof) | Err(_) => return Step::Close,
            }
        }
    }

    /// A complete head: decide where it goes and start the exchange.
    fn route_request(
        &mut self,
        peer: SocketAddr,
        accepted: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
        info: &crate::http::RequestInfo,
        head: &ktcpvs_core::RequestHead<'_>,
    ) -> Step {
        let snapshot = ctx.snapshots.load();
        let current = snapshot.service_by_id(accepted.id()).cloned();
        let Some(service) = current else {
            self.fail(503, accepted, ctx);
            return Step::Again;
        };
        service.load().add_request();
        let per_connection = service.dispatch() != Dispatch::EachRequest;
        let opts = ForwardOptions {
            forwarded_for: service.config().forward_for.then_some(peer),
            close: false,
            extra: None,
        };
        let verbatim = can_forward_request_verbatim(info, &opts);
        if !verbatim {
            self.scratch.clear();
            write_request_head(head, info, &opts, &mut self.scratch);
        }
        let req = Request {
            method: info.method,
            head_len: info.head_len,
            verbatim,
            framing: info.framing,
            client_keep: info.keep_alive && info.version == 1,
            upgrade: info.upgrade,
            replayable: info.method.is_idempotent()
                && matches!(info.framing, Framing::None | Framing::Length(0)),
        };
        // A per-connection route decided on the first request is kept.
        if per_connection && self.route.is_some() {
            if let Some(b) = self.kept.take() {
                return self.begin_exchange(b, true, req, ctx);
            }
            let Some(route) = self.route.as_ref() else {
                return Step::Close;
            };
            return match ctx
                .backends
                .connect(ctx.registry, route.addr, ctx.key, ctx.now)
            {
                Ok(conn) => {
                    let deadline = ctx.now
                        + route
                            .service
                            .timeout(TimeoutKind::Connect, snapshot.settings());
                    let connecting = Connecting {
                        conn,
                        target: route.target,
                        lease: None,
                        addr: route.addr,
                    };
                    self.state = State::Connecting {
                        conn: connecting,
                        req,
                        deadline,
                    };
                    Step::Again
                }
                Err(e) => {
                    // The kept server refused at once: decide again
                    // without it, as for a connect that fails later.
                    let Some(route) = self.route.take() else {
                        return Step::Close;
                    };
                    let decided = Arc::clone(&route.service);
                    self.excluded.clear();
                    fail_target(
                        &decided,
                        route.target,
                        route.addr,
                        &e,
                        &mut self.excluded,
                        ctx,
                    );
                    drop(route);
                    let next = connect_again(&decided, head, peer, &mut self.excluded, ctx);
                    self.connect_or_fail(next, decided, req, ctx);
                    Step::Again
                }
            };
        }
        self.excluded.clear();
        let mut chosen: Option<Selection> = None;
        let mut pick = |exclude: &[usize]| {
            let s = service.pick(&PickRequest {
                client: peer,
                head: Some(head),
                exclude,
            });
            chosen = s;
            s.map(|s| s.server)
        };
        // A pooled connection to the chosen server first.
        let first = pick(&[]);
        if let Some(index) = first {
            let addr = service.server_entries()[index].config().addr;
            let keepalive = service.timeout(TimeoutKind::Keepalive, snapshot.settings());
            if let Some(b) = ctx.backends.take_idle(addr, ctx.key, ctx.now, keepalive) {
                self.route = Some(Route {
                    service: Arc::clone(&service),
                    selection: chosen,
                    target: Target::Server(index),
                    addr,
                    _lease: Some(service.lease(index)),
                });
                return self.begin_exchange(b, true, req, ctx);
            }
        }
        let mut once = first;
        let mut pick_again = |exclude: &[usize]| match once.take() {
            Some(i) if !exclude.contains(&i) => Some(i),
            _ => {
                let s = service.pick(&PickRequest {
                    client: peer,
                    head: Some(head),
                    exclude,
                });
                chosen = s;
                s.map(|s| s.server)
            }
        };
        match start_connect(&service, &mut pick_again, &mut self.excluded, ctx) {
            Ok(mut connecting) => {
                if connecting.target == Target::Redirect {
                    // Nothing takes the request: relay it untouched.
                    let deadline =
                        ctx.now + service.timeout(TimeoutKind::Connect, snapshot.settings());
                    return Step::Tunnel(Tunnel::connecting(connecting, deadline, ctx.now));
                }
                self.route = Some(Route {
                    service: Arc::clone(&service),
                    selection: chosen,
                    target: connecting.target,
                    addr: connecting.addr,
                    _lease: connecting.lease.take(),
                });
                let deadline = ctx.now + service.timeout(TimeoutKind::Connect, snapshot.settings());
                self.state = State::Connecting {
                    conn: connecting,
                    req,
                    deadline,
                };
                Step::Again
            }
            Err(NoBackend::NoServer) => {
                self.fail(503, &service, ctx);
                Step::Again
            }
            Err(NoBackend::AllFailed) => {
                self.fail(502, &service, ctx);
                Step::Again
            }
        }
    }

    fn begin_exchange(
        &mut self,
        backend: usize,
        reused: bool,
        req: Request,
        ctx: &mut Ctx<'_>,
    ) -> Step {
        if let Some(Route {
            service,
            target: Target::Server(i),
            ..
        }) = &self.route
        {
            if let Some(entry) = service.server_entries().get(*i) {
                entry.load().add_request();
            }
        }
        self.state = State::Exchange {
            backend,
            reused,
            req,
            up: Up::Head { sent: 0 },
            down: Down::Head,
            since: ctx.now,
        };
        Step::Again
    }

    fn connecting(&mut self, _client: &mut Conn, ctx: &mut Ctx<'_>) -> Step {
        let State::Connecting { conn, deadline, .. } = &self.state else {
            return Step::Close;
        };
        let deadline = *deadline;
        let Some(route) = self.route.as_ref() else {
            return Step::Close;
        };
        let service = Arc::clone(&route.service);
        match poll_connect(&service, conn, ctx) {
            ConnectCheck::Pending => Step::Wait(Some(deadline)),
            ConnectCheck::Connected => {
                let State::Connecting { conn, req, .. } =
                    std::mem::replace(&mut self.state, State::Closed)
                else {
                    return Step::Close;
                };
                self.begin_exchange(conn.conn, false, req, ctx)
            }
            ConnectCheck::Failed(e) => {
                self.retry_connect(&e, ctx);
                Step::Again
            }
        }
    }

    /// The connect failed: record it, and try another server of the same
    /// decision, else 502.
    fn retry_connect(&mut self, error: &std::io::Error, ctx: &mut Ctx<'_>) {
        let State::Connecting { conn, req, .. } = std::mem::replace(&mut self.state, State::Closed)
        else {
            return;
        };
        ctx.backends.close(conn.conn);
        let Some(route) = self.route.take() else {
            return;
        };
        let service = Arc::clone(&route.service);
        fail_target(
            &service,
            route.target,
            route.addr,
            error,
            &mut self.excluded,
            ctx,
        );
        drop(route);
        // Re-parse the head still in the buffer to pick again.
        let Some(buf) = self.inbuf.as_ref() else {
            self.fail(502, &service, ctx);
            return;
        };
        let limits = Limits::from_settings(ctx.snapshots.load().settings());
        let mut slots = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
        let n = limits.max_headers.min(HEADER_SLOTS);
        let parsed = parse_request_uninit(buf.filled(), &mut slots[..n], &limits);
        let Ok(Some((_, head))) = parsed else {
            self.fail(502, &service, ctx);
            return;
        };
        let next = connect_again(&service, &head, self.peer, &mut self.excluded, ctx);
        self.connect_or_fail(next, service, req, ctx);
    }

    /// Starts connecting for `req` with what [`connect_again`] found, or
    /// answers 502 when nothing was left.
    fn connect_or_fail(
        &mut self,
        next: Option<(Connecting, Option<Selection>)>,
        service: Arc<ServiceSnapshot>,
        req: Request,
        ctx: &mut Ctx<'_>,
    ) {
        let Some((mut connecting, selection)) = next else {
            self.fail(502, &service, ctx);
            return;
        };
        let deadline =
            ctx.now + service.timeout(TimeoutKind::Connect, ctx.snapshots.load().settings());
        self.route = Some(Route {
            target: connecting.target,
            addr: connecting.addr,
            _lease: connecting.lease.take(),
            selection,
            service,
        });
        self.state = State::Connecting {
            conn: connecting,
            req,
            deadline,
        };
    }

    fn exchange(&mut self, client: &mut Conn, ctx: &mut Ctx<'_>) -> Step {
        let State::Exchange {
            backend,
            req,
            up,
            down,
            since,
            ..
        } = &mut self.state
        else {
            return Step::Close;
        };
        let Some(route) = self.route.as_ref() else {
            return Step::Close;
        };
        let settings = ctx.snapshots.load();
        let settings = settings.settings();
        let limits = Limits::from_settings(settings);
        let zerocopy = settings.zerocopy_send() == 1;
        let Some(link) = ctx.backends.get_mut(*backend) else {
            return Step::Close;
        };
        let mut starved = false;
        let mut moved = false;

        // ---- request direction ----
        loop {
            match up {
                Up::Head { sent } => {
                    let bytes: &[u8] = if req.verbatim {
                        match self.inbuf.as_ref() {
                            Some(b) => &b.filled()[..req.head_len],
                            None => return Step::Close,
                        }
                    } else {
                        &self.scratch
                    };
                    match link.conn.send(&bytes[*sent..]) {
                        Ok(n) => *sent += n,
                        Err(e) => return self.backend_failed(e, ctx),
                    }
                    if *sent < bytes.len() {
                        break;
                    }
                    moved = true;
                    if matches!(req.framing, Framing::None | Framing::Length(0)) {
                        *up = Up::Done;
                    } else {
                        if let Some(b) = self.inbuf.as_mut() {
                            b.consume(req.head_len);
                        }
                        req.replayable = false;
                        *up = Up::Body {
                            body: BodyState::new(req.framing, &limits),
                            pending: 0,
                        };
                    }
                }
                Up::Body { body, pending } => {
                    match relay_body(
                        client,
                        &mut link.conn,
                        &mut self.inbuf,
                        &mut self.up_pipe,
                        zerocopy,
                        body,
                        pending,
                        ctx.pool,
                    ) {
                        Ok(BodyStep::Done) => *up = Up::Done,
                        Ok(BodyStep::Blocked) => break,
                        Ok(BodyStep::Starved) => {
                            starved = true;
                            break;
                        }
                        Err(BodyFail::Io) if matches!(down, Down::Head) => {
                            // A socket failed before any response: the
                            // request may have been partly processed, so it
                            // is not replayed; the client gets 502.
                            if let Target::Server(i) = route.target {
                                route.service.server_entries()[i].load().add_error();
                            }
                            return self.respond_error(502, ctx);
                        }
                        Ok(BodyStep::Eof) | Err(_) => return Step::Close,
                    }
                }
                Up::Done => break,
            }
        }

        // ---- response direction ----
        loop {
            match down {
                Down::Head => {
                    if self.outbuf.is_none() {
                        if !link.conn.ready.readable {
                            break;
                        }
                        match ctx.pool.checkout() {
                            Some(b) => self.outbuf = Some(b),
                            None => {
                                starved = true;
                                break;
                            }
                        }
                    }
                    let Some(obuf) = self.outbuf.as_mut() else {
                        return Step::Close;
                    };
                    let mut slots = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
                    let n = limits.max_headers.min(HEADER_SLOTS);
                    let parsed = if obuf.is_empty() {
                        Ok(None)
                    } else {
                        parse_response_uninit(obuf.filled(), &mut slots[..n], req.method, &limits)
                    };
                    match parsed {
                        Err(e) => {
                            log::warn!(
                                "[{}] bad response from {}: {e}",
                                route.service.config().name,
                                route.addr
                            );
                            if let Target::Server(i) = route.target {
                                route.service.server_entries()[i].load().add_error();
                            }
                            return self.respond_error(502, ctx);
                        }
                        Ok(None) => {
                            if obuf.is_exhausted() {
                                return self.respond_error(502, ctx);
                            }
                            obuf.compact();
                            match link.conn.fill(obuf) {
                                Ok(Fill::Data(_)) => continue,
                                Ok(Fill::WouldBlock) => {
                                    ctx.pool.release_if_empty(&mut self.outbuf);
                                    break;
                                }
                                Ok(Fill::NoRoom) => return self.respond_error(502, ctx),
                                Ok(Fill::Eof) => {
                                    let e = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                                    return self.backend_failed(e, ctx);
                                }
                                Err(e) => return self.backend_failed(e, ctx),
                            }
                        }
                        Ok(Some((info, head))) => {
                            moved = true;
                            if matches!(up, Up::Done)
                                && matches!(req.framing, Framing::None | Framing::Length(0))
                                && req.head_len > 0
                            {
                                // A body-less head stayed in the buffer for a replay;
                                // the response has started, so it is dropped now.
                                if let Some(b) = self.inbuf.as_mut() {
                                    b.consume(req.head_len.min(b.len()));
                                }
                                req.head_len = 0;
                                req.replayable = false;
                            }
                            if info.upgrade && !req.upgrade {
                                return self.respond_error(502, ctx);
                            }
                            let client_keep = req.client_keep
                                && !ctx.draining
                                && !info.upgrade
                                && info.framing != Framing::CloseDelimited;
                            let extra = match (route.selection, info.interim) {
                                (Some(sel), false) if sel.stamp => route
                                    .service
                                    .picker()
                                    .response_header(&sel, info.sets_cookie),
                                _ => None,
                            };
                            let opts = ForwardOptions {
                                forwarded_for: None,
                                close: !client_keep && !info.interim,
                                extra,
                            };
                            let scratch = if can_forward_response_verbatim(&info, &opts) {
                                None
                            } else {
                                self.rscratch.clear();
                                write_response_head(&head, &info, &opts, &mut self.rscratch);
                                Some(0)
                            };
                            let head_len = info.head_len;
                            let pending = if scratch.is_some() {
                                obuf.consume(head_len);
                                0
                            } else {
                                head_len
                            };
                            if info.upgrade {
                                // Hand the head (rewritten or not) and any bytes after it
                                // to the tunnel, which sends them first.
                                if scratch.is_some() {
                                    let Some(mut fresh) = ctx.pool.checkout() else {
                                        return Step::Close;
                                    };
                                    let rest = obuf.filled();
                                    let total = self.rscratch.len() + rest.len();
                                    if total > fresh.capacity() {
                                        ctx.pool.give_back(fresh);
                                        return self.respond_error(502, ctx);
                                    }
                                    fresh.spare()[..self.rscratch.len()]
                                        .copy_from_slice(&self.rscratch);
                                    fresh.spare()[self.rscratch.len()..total].copy_from_slice(rest);
                                    fresh.commit(total);
                                    let old = self.outbuf.replace(fresh);
                                    if let Some(old) = old {
                                        ctx.pool.give_back(old);
                                    }
                                }
                                let lease = self.route.take().and_then(|r| r._lease);
                                let backend = *backend;
                                let up_buf = self.inbuf.take();
                                let down_buf = self.outbuf.take();
                                self.state = State::Closed;
                                return Step::Tunnel(Tunnel::relaying(
                                    backend, lease, up_buf, down_buf, ctx.now,
                                ));
                            }
                            let body = if info.interim {
                                BodyState::Done
                            } else {
                                BodyState::new(info.framing, &limits)
                            };
                            *down = Down::Body {
                                scratch,
                                body,
                                pending,
                                backend_keep: info.keep_alive,
                                client_keep,
                                interim: info.interim,
                            };
                        }
                    }
                }
                Down::Body {
                    scratch,
                    body,
                    pending,
                    backend_keep,
                    client_keep,
                    interim,
                } => {
                    if let Some(sent) = scratch {
                        match client.send(&self.rscratch[*sent..]) {
                            Ok(n) => *sent += n,
                            Err(_) => return Step::Close,
                        }
                        if *sent < self.rscratch.len() {
                            break;
                        }
                        *scratch = None;
                    }
                    match relay_body(
                        &mut link.conn,
                        client,
                        &mut self.outbuf,
                        &mut self.down_pipe,
                        zerocopy,
                        body,
                        pending,
                        ctx.pool,
                    ) {
                        Ok(BodyStep::Done) if *interim => {
                            // The 1xx head is out; wait for the final response.
                            *down = Down::Head;
                            continue;
                        }
                        Ok(BodyStep::Done) | Ok(BodyStep::Eof) => {
                            let backend_keep = *backend_keep
                                && matches!(up, Up::Done)
                                && self.outbuf.as_ref().map_or(true, Buffer::is_empty);
                            let client_keep = *client_keep && matches!(up, Up::Done);
                            return self.finish_exchange(client, backend_keep, client_keep, ctx);
                        }
                        Ok(BodyStep::Blocked) => break,
                        Ok(BodyStep::Starved) => {
                            starved = true;
                            break;
                        }
                        Err(_) => {
                            if let Target::Server(i) = route.target {
                                route.service.server_entries()[i].load().add_error();
                            }
                            return Step::Close;
                        }
                    }
                }
            }
        }
        if moved {
            *since = ctx.now;
        }
        let at = match down {
            Down::Head if matches!(up, Up::Done) => {
                *since + route.service.timeout(TimeoutKind::Response, settings)
            }
            _ => *since + route.service.timeout(TimeoutKind::Read, settings),
        };
        if starved {
            Step::Starved(Some(at))
        } else {
            Step::Wait(Some(at))
        }
    }

    /// The response is complete: reuse or close the backend, then the next
    /// request (or close the client).
    fn finish_exchange(
        &mut self,
        client: &mut Conn,
        backend_keep: bool,
        client_keep: bool,
        ctx: &mut Ctx<'_>,
    ) -> Step {
        let per_connection = self
            .route
            .as_ref()
            .is_some_and(|r| r.service.dispatch() != Dispatch::EachRequest);
        if let Some(route) = &self.route {
            let traffic = client.take_traffic();
            route
                .service
                .load()
                .add_bytes(traffic.read, traffic.written);
        }
        ctx.pool.release_if_empty(&mut self.outbuf);
        if per_connection && backend_keep && client_keep {
            if let State::Exchange { backend, .. } = self.state {
                self.flush_backend_traffic(backend, ctx);
                self.kept = Some(backend);
            }
        } else {
            self.drop_backend(ctx, backend_keep);
            ctx.pool.release(&mut self.outbuf);
            if !per_connection || !client_keep {
                self.route = None;
            }
        }
        if !client_keep {
            let _ = client.stream.shutdown(Shutdown::Write);
            self.state = State::Linger {
                until: ctx.now + LINGER,
            };
            return Step::Again;
        }
        ctx.pool.release_if_empty(&mut self.inbuf);
        let pipelined = self.inbuf.as_ref().is_some_and(|b| !b.is_empty());
        self.state = State::Idle {
            since: ctx.now,
            first_byte: pipelined.then_some(ctx.now),
        };
        Step::Again
    }

    /// The backend failed before a response started: replay on a fresh
    /// connection when that is safe, else 502.
    fn backend_failed(&mut self, error: std::io::Error, ctx: &mut Ctx<'_>) -> Step {
        let State::Exchange {
            backend,
            reused,
            req,
            ..
        } = &self.state
        else {
            return Step::Close;
        };
        let (backend, reused, replayable) = (*backend, *reused, req.replayable);
        let Some(route) = self.route.as_ref() else {
            return Step::Close;
        };
        log::debug!(
            "[{}] backend {} failed: {error}",
            route.service.config().name,
            route.addr
        );
        if reused && replayable {
            self.flush_backend_traffic(backend, ctx);
            ctx.backends.close(backend);
            ctx.pool.release(&mut self.outbuf);
            let addr = route.addr;
            let target = route.target;
            match ctx.backends.connect(ctx.registry, addr, ctx.key, ctx.now) {
                Ok(conn) => {
                    let deadline = ctx.now
                        + route
                            .service
                            .timeout(TimeoutKind::Connect, ctx.snapshots.load().settings());
                    let State::Exchange { req, .. } =
                        std::mem::replace(&mut self.state, State::Closed)
                    else {
                        return Step::Close;
                    };
                    self.state = State::Connecting {
                        conn: Connecting {
                            conn,
                            target,
                            lease: None,
                            addr,
                        },
                        req,
                        deadline,
                    };
                    return Step::Again;
                }
                Err(_) => return self.respond_error(502, ctx),
            }
        }
        if let Target::Server(i) = route.target {
            route.service.server_entries()[i].load().add_error();
        }
        self.respond_error(502, ctx)
    }

    /// Answers an error for the request in flight when nothing of its
    /// response reached the client yet; otherwise just closes.
    fn respond_error(&mut self, status: u16, ctx: &mut Ctx<'_>) -> Step {
        let started = matches!(
            &self.state,
            State::Exchange {
                down: Down::Body { .. },
                ..
            }
        );
        self.drop_backend(ctx, false);
        ctx.pool.release(&mut self.outbuf);
        if started {
            return Step::Close;
        }
        let Some(route) = self.route.take() else {
            return Step::Close;
        };
        self.fail(status, &route.service, ctx);
        Step::Again
    }

    fn send_error(&mut self, client: &mut Conn, ctx: &mut Ctx<'_>) -> Step {
        let State::Error { sent } = &mut self.state else {
            return Step::Close;
        };
        match client.send(&self.scratch[*sent..]) {
            Ok(n) => *sent += n,
            Err(_) => return Step::Close,
        }
        if *sent < self.scratch.len() {
            return Step::Wait(Some(ctx.now + LINGER));
        }
        let _ = client.stream.shutdown(Shutdown::Write);
        self.state = State::Linger {
            until: ctx.now + LINGER,
        };
        Step::Again
    }
}

/// Picks again for `head` among the servers `excluded` does not name and
/// starts a connect (a failed server of the same decision is skipped). The
/// redirect address is not a retry target: `None` when no server is left.
fn connect_again(
    service: &ServiceSnapshot,
    head: &ktcpvs_core::RequestHead<'_>,
    client: SocketAddr,
    excluded: &mut Excluded,
    ctx: &mut Ctx<'_>,
) -> Option<(Connecting, Option<Selection>)> {
    let mut chosen = None;
    let mut pick = |exclude: &[usize]| {
        let s = service.pick(&PickRequest {
            client,
            head: Some(head),
            exclude,
        });
        chosen = s;
        s.map(|s| s.server)
    };
    match start_connect(service, &mut pick, excluded, ctx) {
        Ok(connecting) if connecting.target != Target::Redirect => Some((connecting, chosen)),
        Ok(connecting) => {
            ctx.backends.close(connecting.conn);
            None
        }
        Err(_) => None,
    }
}

/// What one body relay call reached.
enum BodyStep {
    /// The body is complete and sent.
    Done,
    /// A close-delimited body ended (the source closed) and all is sent.
    Eof,
    /// Waiting for a socket.
    Blocked,
    /// Waiting for a buffer.
    Starved,
}

/// Why a body relay failed.
#[derive(Debug)]
enum BodyFail {
    /// A socket error.
    Io,
    /// The source closed before the body was complete.
    Truncated,
    /// The body broke its framing.
    Framing,
}

/// Forwards a body from `src` to `dst` through `buf`: validated bytes only
/// (`pending` of them at the front of the buffer are counted, not sent).
///
/// With `zerocopy`, once the buffer holds nothing, a `Content-Length` or
/// close-delimited body moves through `kernel` with `splice` (at most the
/// bytes the body has left, so nothing of the next message is taken).
#[allow(clippy::too_many_arguments)]
fn relay_body(
    src: &mut Conn,
    dst: &mut Conn,
    buf: &mut Option<Buffer>,
    kernel: &mut Option<KernelPipe>,
    zerocopy: bool,
    body: &mut BodyState,
    pending: &mut usize,
    pool: &mut BufferPool,
) -> Result<BodyStep, BodyFail> {
    loop {
        let (_, empty) = splice::drain(kernel, dst).map_err(|_| BodyFail::Io)?;
        if !empty {
            return Ok(BodyStep::Blocked);
        }
        if let Some(b) = buf.as_mut() {
            if !body.is_done() && b.len() > *pending {
                let n = body
                    .advance(&b.filled()[*pending..])
                    .map_err(|_| BodyFail::Framing)?;
                *pending += n;
            }
            if *pending > 0 {
                let n = dst
                    .send(&b.filled()[..*pending])
                    .map_err(|_| BodyFail::Io)?;
                b.consume(n);
                *pending -= n;
                if *pending > 0 {
                    return Ok(BodyStep::Blocked);
                }
            }
        }
        if body.is_done() {
            return Ok(BodyStep::Done);
        }
        if !src.ready.readable {
            pool.release_if_empty(buf);
            return Ok(BodyStep::Blocked);
        }
        if zerocopy && buf.as_ref().map_or(true, Buffer::is_empty) {
            if let Some(limit) = body.opaque_limit() {
                pool.release(buf);
                if let Some(pipe) = splice::pipe_for(kernel) {
                    match pipe.fill_from(src, limit).map_err(|_| BodyFail::Io)? {
                        Fill::Data(n) => body.advance_opaque(n as u64),
                        Fill::NoRoom => {}
                        Fill::WouldBlock => return Ok(BodyStep::Blocked),
                        Fill::Eof => {
                            return if body.is_close_delimited() {
                                Ok(BodyStep::Eof)
                            } else {
                                Err(BodyFail::Truncated)
                            };
                        }
                    }
                    continue;
                }
            }
        }
        if buf.is_none() {
            match pool.checkout() {
                Some(b) => *buf = Some(b),
                None => return Ok(BodyStep::Starved),
            }
        }
        let Some(b) = buf.as_mut() else {
            return Ok(BodyStep::Starved);
        };
        match src.fill(b).map_err(|_| BodyFail::Io)? {
            Fill::Data(_) => {}
            Fill::WouldBlock => {
                pool.release_if_empty(buf);
                return Ok(BodyStep::Blocked);
            }
            Fill::NoRoom => return Ok(BodyStep::Blocked),
            Fill::Eof => {
                return if body.is_close_delimited() {
                    Ok(BodyStep::Eof)
                } else {
                    Err(BodyFail::Truncated)
                };
            }
        }
    }
}

/// Discards client input until EOF or `until`, so an error response is read
/// rather than lost to a reset.
fn linger(
    client: &mut Conn,
    pool: &mut BufferPool,
    inbuf: &mut Option<Buffer>,
    until: Instant,
) -> Step {
    if inbuf.is_none() {
        *inbuf = pool.checkout();
    }
    let Some(b) = inbuf.as_mut() else {
        return Step::Close;
    };
    loop {
        b.consume(b.len());
        match client.fill(b) {
            Ok(Fill::Data(_)) => continue,
            Ok(Fill::WouldBlock) => return Step::Wait(Some(until)),
            _ => return Step::Close,
        }
    }
}

//! Reading and routing a request: the head is read and parsed from the
//! client buffer (limits and the header deadline enforced), the scheduler
//! decides (kept per-connection route, pooled connection, fresh connect or
//! the redirect fallback), and the exchange begins.

use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;

use ktcpvs_core::snapshot::{ServiceSnapshot, TimeoutKind};
use ktcpvs_core::{Dispatch, PickRequest, Selection};

use super::backend::connect_again;
use super::pace::Pace;
use super::{Down, HttpSession, Request, Route, State, Step, Up, HEADER_SLOTS, SCRATCH_HEAD};
use crate::http::headers::upgrade_allowed;
use crate::http::{
    can_forward_request_verbatim, parse_request_uninit, write_request_head, ForwardOptions,
    Framing, Limits, RequestInfo,
};
use crate::io::buffer::release_if_empty;
use crate::io::buffer::Buffer;
use crate::io::conn::{Conn, Fill};
use crate::resource::{is_local_exhaustion, warn_exhaustion};
use crate::session::Ctx;
use crate::upstream::connect::{fail_target, start_connect, Connecting, NoBackend, Target};

impl HttpSession {
    /// Reads from the client until a complete head is parsed (then routes
    /// it), the head is refused (400/414/431), or the socket would block.
    pub(super) fn read_head(
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
                        return step;
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
                release_if_empty(&mut self.inbuf);
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
                Ok(Fill::Data) => {
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
    pub(super) fn route_request(
        &mut self,
        peer: SocketAddr,
        accepted: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
        info: &RequestInfo,
        head: &ktcpvs_core::RequestHead<'_>,
    ) -> Step {
        let snapshot = ctx.snapshots.load();
        let current = snapshot.service_by_id(accepted.id()).cloned();
        let Some(service) = current else {
            self.fail(503, accepted, ctx);
            return Step::Again;
        };
        service.load().add_request();
        // An upgrade only to a protocol the service allows; any other
        // request is served as HTTP/1.1, its `Upgrade` field dropped, so
        // switching protocols cannot escape the per-request rules.
        let upgrade = info.upgrade && upgrade_allowed(head.headers, &service.config().upgrades);
        let info = &RequestInfo { upgrade, ..*info };
        let per_connection = service.dispatch() != Dispatch::EachRequest;
        let opts = ForwardOptions {
            forwarded_for: service.config().forward_for.then_some(peer),
            close: false,
            // An HTTP/1.0 request says it, so that the real server keeps
            // the connection for the pool.
            keep_alive: info.version == 0,
            extra: None,
        };
        let verbatim = can_forward_request_verbatim(info, &opts);
        if !verbatim {
            self.scratch.clear();
            self.scratch.reserve(SCRATCH_HEAD);
            write_request_head(head, info, &opts, &mut self.scratch);
        }
        let req = Request {
            method: info.method,
            head_len: info.head_len,
            verbatim,
            framing: info.framing,
            client_keep: info.keep_alive,
            http10: info.version == 0,
            upgrade: info.upgrade,
            replayable: info.method.is_idempotent()
                && matches!(info.framing, Framing::None | Framing::Length(0)),
        };
        // A per-connection route decided on the first request is kept.
        if per_connection && self.route.is_some() {
            if let Some(b) = self.held.take_kept() {
                return self.begin_exchange(b, true, req, ctx);
            }
            let Some(route) = self.route.as_ref() else {
                return Step::Close;
            };
            return match ctx.dialer().connect(route.addr) {
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
                Err(e) if is_local_exhaustion(&e) => {
                    warn_exhaustion("connecting to a real server", &e);
                    self.fail(503, &service, ctx);
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
                        ctx.backoff(),
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
            // A request that can be replayed on a fresh connection skips
            // the `peek` that proves a pooled connection alive: a dead one
            // shows at the first read or write and the request is replayed.
            let probe = !req.replayable;
            let (key, now) = (ctx.key, ctx.now);
            let mut reused = None;
            if let Some(b) = self.held.take_pooled() {
                reused = ctx
                    .backends
                    .take_idle_by_id(b, addr, key, now, keepalive, probe);
            }
            if reused.is_none() {
                reused = ctx.backends.take_idle(addr, key, now, keepalive, probe);
            }
            if let Some(b) = reused {
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
        match start_connect(
            &service,
            &mut pick_again,
            &mut self.excluded,
            &mut ctx.dialer(),
        ) {
            Ok(mut connecting) => {
                // The redirect address (no server takes the request) is
                // connected like a server; once connected, the session
                // becomes a tunnel relaying the request untouched (see
                // `connecting`), and when it fails the client gets 502.
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
            Err(NoBackend::LocalExhaustion) => {
                self.fail(503, &service, ctx);
                Step::Again
            }
        }
    }

    /// Starts the exchange of `req` over `backend` and counts the request
    /// for its server.
    pub(super) fn begin_exchange(
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
            pace: Pace::new(ctx.now, 0),
        };
        Step::Again
    }
}

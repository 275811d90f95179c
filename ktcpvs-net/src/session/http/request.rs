//! Reading and routing a request: the head is read and parsed from the
//! client buffer (limits and the header deadline enforced), the scheduler
//! decides (a kept per-connection route, a pooled connection, a fresh
//! connect or the redirect fallback), and the exchange begins.

use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;

use ktcpvs_core::condition::HeaderEdit;
use ktcpvs_core::live::QueueSlot;
use ktcpvs_core::snapshot::{ServiceSnapshot, TimeoutKind};
use ktcpvs_core::{Dispatch, RequestHead};

use super::backend::{connect_again, pool_backend};
use super::exchange::{Exchange, Origin};
use super::logging::PendingLog;
use super::{
    ClientId, H2Start, Head, HttpSession, Keep, Persist, Pick, Request, Route, State, Step,
    Version, HEADER_SLOTS, SCRATCH_HEAD,
};
use crate::http::headers::upgrade_allowed;
use crate::http::{
    can_forward_request_verbatim, parse_request_uninit, write_request_head, ForwardOptions, Limits,
    RequestInfo,
};
use crate::io::buffer::release_if_empty;
use crate::io::conn::{Conn, Fill};
use crate::resource::{is_local_exhaustion, warn_exhaustion};
use crate::session::h2::PREFACE;
use crate::session::Ctx;
use crate::upstream::connect::{
    destination, fail_target, start_connect, Chooser, Excluded, NoBackend, Target,
};

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
        let State::Reading {
            since,
            mut first_byte,
            ..
        } = self.state
        else {
            return Step::Close;
        };
        let settings = ctx.snapshot;
        let settings = settings.settings();
        let limits = Limits::from_settings(settings);
        loop {
            if let Some(step) = self.parse_head(ClientId::of(client, peer), service, ctx, &limits) {
                return step;
            }
            if !client.ready.readable {
                release_if_empty(&mut self.io.up.buf);
                let at = match first_byte {
                    Some(t) => t + service.timeout(TimeoutKind::Header, settings),
                    // A TLS handshake has the header timeout from accept.
                    None if client.is_handshaking() => {
                        since + service.timeout(TimeoutKind::Header, settings)
                    }
                    None => since + service.timeout(TimeoutKind::Keepalive, settings),
                };
                return Step::Wait(Some(at));
            }
            if self.io.up.buf.is_none() {
                match ctx.pool.checkout() {
                    Some(b) => self.io.up.buf = Some(b),
                    None => return Step::Starved(None),
                }
            }
            let Some(buf) = self.io.up.buf.as_mut() else {
                return Step::Close;
            };
            buf.compact();
            match client.fill(buf) {
                Ok(Fill::Data) if first_byte.is_none() => {
                    first_byte = Some(ctx.now);
                    if let State::Reading { first_byte: f, .. } = &mut self.state {
                        *f = first_byte;
                    }
                }
                Ok(Fill::Data | Fill::WouldBlock) => {}
                Ok(Fill::NoRoom) => {
                    self.fail(431, service, ctx);
                    return Step::Again;
                }
                Ok(Fill::Eof) | Err(_) => return Step::Close,
            }
        }
    }

    /// Parses the bytes the client buffer holds: `Some` when a head was
    /// refused or routed, `None` when more bytes are needed.
    fn parse_head(
        &mut self,
        from: ClientId<'_>,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
        limits: &Limits,
    ) -> Option<Step> {
        // The buffer is taken out while the head borrows it, and put back.
        let buf = self.io.up.buf.take_if(|b| !b.is_empty())?;
        if service.config().http2 && matches!(from.h2, H2Start::Alpn | H2Start::PriorKnowledge) {
            let seen = buf.filled();
            let n = seen.len().min(PREFACE.len());
            let h2 = from.h2 == H2Start::Alpn || seen[..n] == PREFACE[..n];
            if h2 && (n == PREFACE.len() || from.h2 == H2Start::Alpn) {
                self.io.up.buf = Some(buf);
                return Some(Step::H2);
            }
            if h2 {
                // A part of the preface: wait for the rest.
                self.io.up.buf = Some(buf);
                return None;
            }
        }
        let mut slots = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
        let n = limits.max_headers.min(HEADER_SLOTS);
        let parsed = parse_request_uninit(buf.filled(), &mut slots[..n], limits);
        let step = match parsed {
            Err(e) => {
                log::debug!(
                    "[{}] {}: bad request: {e}",
                    service.config().name,
                    from.addr
                );
                self.fail(e.status(), service, ctx);
                Some(Step::Again)
            }
            Ok(Some((info, head))) => Some(self.route_request(from, service, ctx, &info, &head)),
            Ok(None) if buf.is_exhausted() => {
                self.fail(431, service, ctx);
                Some(Step::Again)
            }
            Ok(None) => None,
        };
        self.io.up.buf = Some(buf);
        step
    }

    /// A complete head: decide where it goes and start the exchange.
    fn route_request(
        &mut self,
        from: ClientId<'_>,
        accepted: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
        info: &RequestInfo,
        head: &RequestHead<'_>,
    ) -> Step {
        let snapshot = ctx.snapshot;
        let Some(service) = snapshot.service_by_id(accepted.id()).cloned() else {
            self.fail(503, accepted, ctx);
            return Step::Again;
        };
        service.load().add_request();
        if from.h2 == H2Start::Stream {
            service.load().h2().add_request();
        }
        service
            .load()
            .deposit_retry(service.config().health.retry_budget);
        if misdirected(&service, from, head) {
            self.fail(421, &service, ctx);
            return Step::Again;
        }
        let rule = if service.has_edge_actions() || service.has_header_edits() {
            super::edge::matching_rule(&service, from, head)
        } else {
            None
        };
        let edits = rule.map_or(&[][..], |r| r.edits());
        if let Some(stale) = self.io.log.take() {
            if let Some(log) = ctx.access_log {
                stale.discard(log);
            }
        }
        let version = if from.h2 == H2Start::Stream {
            2
        } else {
            info.version
        };
        self.io.log = PendingLog::start(head, version, from.addr, ctx);
        if let Some(status) = rule.and_then(|r| super::edge::answer(r, head, &mut self.io.scratch))
        {
            self.answer_at_edge(status, &service, ctx);
            return Step::Again;
        }
        // After the edge answer: a request answered there is not written
        // for a server.
        let req = self.request(&service, from, info, head, edits);
        let keep = match &mut self.state {
            State::Reading { keep, .. } => std::mem::take(keep),
            _ => Keep::Nothing,
        };
        self.state = State::Closed;
        let per_connection = service.dispatch() != Dispatch::EachRequest;
        match keep {
            // A per-connection route decided on the first request is kept.
            Keep::Connection { route, backend } if per_connection => {
                self.route_kept(route, backend.map(|b| b as usize), req, head, from, ctx)
            }
            Keep::Pooled(id) => self.decide(service, Some(id), req, head, from, ctx, None),
            other => {
                other.release(ctx);
                self.decide(service, None, req, head, from, ctx, None)
            }
        }
    }

    /// The request in flight for a parsed head: an upgrade only to a
    /// protocol the service allows (any other request is served as
    /// HTTP/1.1, its `Upgrade` field dropped, so switching protocols cannot
    /// escape the per-request rules), and the head to forward, as received
    /// or rewritten into the scratch.
    fn request(
        &mut self,
        service: &ServiceSnapshot,
        from: ClientId<'_>,
        info: &RequestInfo,
        head: &RequestHead<'_>,
        edits: &[HeaderEdit],
    ) -> Request {
        let upgrade = info.upgrade && upgrade_allowed(head.headers, &service.config().upgrades);
        let info = &RequestInfo { upgrade, ..*info };
        let opts = ForwardOptions {
            forwarded_for: service.config().forward_for.then_some(from.addr),
            client_tls: from.tls,
            close: false,
            // An HTTP/1.0 request says it, so that the real server keeps
            // the connection for the pool.
            keep_alive: info.version == 0,
            extra: None,
            edits,
        };
        let head_at = if can_forward_request_verbatim(info, &opts) {
            Head::Verbatim(info.head_len)
        } else {
            self.io.scratch.clear();
            self.io.scratch.reserve(SCRATCH_HEAD);
            write_request_head(head, info, &opts, &mut self.io.scratch);
            Head::Rewritten(info.head_len)
        };
        Request {
            method: info.method,
            head: head_at,
            framing: info.framing,
            persist: if info.keep_alive {
                Persist::KeepAlive
            } else {
                Persist::Close
            },
            version: if info.version == 0 {
                Version::Http10
            } else {
                Version::Http11
            },
            upgrade,
        }
    }

    /// The request follows the connection's kept route: over its kept
    /// backend connection, else over a new connect to the same server; a
    /// server that refuses at once is decided again without.
    fn route_kept(
        &mut self,
        route: Route,
        backend: Option<usize>,
        req: Request,
        head: &RequestHead<'_>,
        from: ClientId<'_>,
        ctx: &mut Ctx<'_>,
    ) -> Step {
        if let Some(b) = backend {
            return self.begin_exchange(route, b, Origin::Reused, req, ctx);
        }
        let service = Arc::clone(&route.service);
        match destination(&service, route.target()).and_then(|to| ctx.dialer().connect(to)) {
            Ok(conn) => {
                self.connect_to(route, conn, req, Excluded::default(), ctx);
                Step::Again
            }
            Err(e) if is_local_exhaustion(&e) => {
                warn_exhaustion("connecting to a real server", &e);
                self.fail(503, &service, ctx);
                Step::Again
            }
            Err(e) => {
                let mut excluded = Excluded::default();
                let backoff = ctx.backoff();
                fail_target(
                    &service,
                    route.target(),
                    route.addr(),
                    &e,
                    &mut excluded,
                    backoff,
                );
                drop(route);
                let next = connect_again(&service, head, from, &mut excluded, ctx);
                self.connect_or_fail(next, service, req, excluded, ctx);
                Step::Again
            }
        }
    }

    /// A fresh decision (see [`try_decide`](Self::try_decide)); when every
    /// server the request could go to is at its `maxconn`, the request
    /// waits in the service's queue (keeping its place, `waiting`, when it
    /// was queued already), or gets 503 when the queue is off or full.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decide(
        &mut self,
        service: Arc<ServiceSnapshot>,
        pooled: Option<usize>,
        req: Request,
        head: &RequestHead<'_>,
        from: ClientId<'_>,
        ctx: &mut Ctx<'_>,
        waiting: Option<QueueSlot>,
    ) -> Step {
        match self.try_decide(service, pooled, req, head, from, ctx) {
            Ok(step) => {
                if let Some(slot) = waiting {
                    slot.served(ctx.now);
                }
                step
            }
            Err((service, req)) => self.enqueue(service, req, waiting, ctx),
        }
    }

    /// Puts `req` in its service's queue (or keeps it there), or answers
    /// 503 when the queue is off, full, or its wait is over.
    fn enqueue(
        &mut self,
        service: Arc<ServiceSnapshot>,
        req: Request,
        waiting: Option<QueueSlot>,
        ctx: &mut Ctx<'_>,
    ) -> Step {
        let health = &service.config().health;
        let slot = match waiting {
            Some(slot) => Some(slot),
            None if health.queue > 0 => service.load().try_enqueue(health.queue, ctx.now),
            None => None,
        };
        let Some(slot) = slot else {
            log::debug!(
                "[{}] every server at its maxconn and no room in the queue: 503",
                service.config().name
            );
            self.fail(503, &service, ctx);
            return Step::Again;
        };
        let deadline = slot.since() + health.queue_timeout;
        if ctx.now >= deadline {
            slot.timed_out(ctx.now);
            self.fail(503, &service, ctx);
            return Step::Again;
        }
        self.state = State::Queued {
            service,
            req,
            slot,
            deadline,
        };
        Step::Queued(deadline)
    }

    /// A queued request tries again: the head still at the front of the
    /// client buffer is parsed again and decided afresh.
    pub(super) fn leave_queue(&mut self, from: ClientId<'_>, ctx: &mut Ctx<'_>) -> Step {
        if let State::Queued {
            service, deadline, ..
        } = &self.state
        {
            // Nothing freed since: stay queued without asking the
            // scheduler (a long queue costs a scan of the servers per
            // request per tick, no more).
            if !service.any_slot_free() {
                return Step::Queued(*deadline);
            }
        }
        let State::Queued {
            service, req, slot, ..
        } = std::mem::replace(&mut self.state, State::Closed)
        else {
            return Step::Close;
        };
        let kept = Arc::clone(&service);
        let decided = self.with_buffered_head(ctx, |session, head, ctx| {
            session.decide(service, None, req, head, from, ctx, Some(slot))
        });
        decided.unwrap_or_else(|| {
            self.fail(503, &kept, ctx);
            Step::Again
        })
    }

    /// Parses again the head still at the front of the client buffer (a
    /// request retried on another server, or leaving the queue) and hands
    /// it to `f`. The buffer is out of the session meanwhile, since the
    /// head borrows it (as in `parse_head`), and put back after. `None`
    /// when the buffer is gone or the head no longer parses.
    pub(super) fn with_buffered_head<R>(
        &mut self,
        ctx: &mut Ctx<'_>,
        f: impl FnOnce(&mut Self, &RequestHead<'_>, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let limits = Limits::from_settings(ctx.snapshot.settings());
        let mut slots = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
        let n = limits.max_headers.min(HEADER_SLOTS);
        let buf = self.io.up.buf.take()?;
        let out = match parse_request_uninit(buf.filled(), &mut slots[..n], &limits) {
            Ok(Some((_, head))) => Some(f(self, &head, ctx)),
            _ => None,
        };
        self.io.up.buf = Some(buf);
        out
    }

    /// A queued request waited its `queue_timeout`: 503.
    pub(super) fn queue_timed_out(&mut self, ctx: &mut Ctx<'_>) {
        if let State::Queued { service, slot, .. } =
            std::mem::replace(&mut self.state, State::Closed)
        {
            log::debug!(
                "[{}] a request waited its queue timeout: 503",
                service.config().name
            );
            slot.timed_out(ctx.now);
            self.fail(503, &service, ctx);
        }
    }

    /// A fresh decision: the scheduler picks, a pooled connection to that
    /// server is taken (the one this session pooled last, `pooled`, first),
    /// else a connect starts (retried on other servers of the decision, the
    /// redirect address last). `Err` gives the request back when every
    /// server it could go to is at its `maxconn`.
    fn try_decide(
        &mut self,
        service: Arc<ServiceSnapshot>,
        pooled: Option<usize>,
        req: Request,
        head: &RequestHead<'_>,
        from: ClientId<'_>,
        ctx: &mut Ctx<'_>,
    ) -> Result<Step, (Arc<ServiceSnapshot>, Request)> {
        let mut chooser = Chooser::new(&service, from.addr, Some(head), from.server_name);
        if let Some(index) = chooser.pick_ahead() {
            if let Some(b) = self.take_pooled(&service, index, pooled, &req, ctx) {
                match service.try_lease(index) {
                    Some(lease) => {
                        let route = Route {
                            pick: chooser.chosen.and_then(Pick::of),
                            lease: Some(lease),
                            service: Arc::clone(&service),
                        };
                        return Ok(self.begin_exchange(route, b, Origin::Reused, req, ctx));
                    }
                    // Another worker took the server's last slot since the
                    // pick: the connection goes back, and the connect below
                    // finds the server full and goes on without it.
                    None => {
                        let _ = pool_backend(b, true, ctx);
                    }
                }
            }
        }
        let mut excluded = Excluded::default();
        let mut pick = |exclude: &[usize]| chooser.pick(exclude);
        let started = start_connect(&service, &mut pick, &mut excluded, &mut ctx.dialer());
        match started {
            Ok(mut connecting) => {
                // The redirect address (no server takes the request) is
                // connected like a server; once connected, the session
                // becomes a tunnel relaying the request untouched, and when
                // it fails the client gets 502.
                let route = Route::new(Arc::clone(&service), chooser.chosen, &mut connecting);
                self.connect_to(route, connecting.conn, req, excluded, ctx);
            }
            Err(NoBackend::Full) => return Err((service, req)),
            Err(NoBackend::NoServer | NoBackend::LocalExhaustion) => self.fail(503, &service, ctx),
            Err(NoBackend::AllFailed | NoBackend::NoRetry) => self.fail(502, &service, ctx),
        }
        Ok(Step::Again)
    }

    /// A live idle connection to server `index`, if the worker's pool has
    /// one: the one this session pooled last when it still idles, else any.
    fn take_pooled(
        &mut self,
        service: &ServiceSnapshot,
        index: usize,
        pooled: Option<usize>,
        req: &Request,
        ctx: &mut Ctx<'_>,
    ) -> Option<usize> {
        let to = destination(service, Target::Server(index)).ok()?;
        let keepalive = service.timeout(TimeoutKind::Keepalive, ctx.snapshot.settings());
        // A request that can be replayed on a fresh connection skips the
        // `peek` that proves a pooled connection alive: a dead one shows at
        // the first read or write and the request is replayed.
        let probe = !req.replayable();
        let (key, now) = (ctx.key, ctx.now);
        pooled
            .and_then(|b| {
                ctx.backends
                    .take_idle_by_id(b, to, key, now, keepalive, probe)
            })
            .or_else(|| ctx.backends.take_idle(to, key, now, keepalive, probe))
    }

    /// Waits for connect `backend` of `route` for `req`.
    pub(super) fn connect_to(
        &mut self,
        route: Route,
        backend: usize,
        req: Request,
        excluded: Excluded,
        ctx: &Ctx<'_>,
    ) {
        let deadline = ctx.now
            + route
                .service
                .timeout(TimeoutKind::Connect, ctx.snapshot.settings());
        self.state = State::Connecting {
            route,
            backend,
            req,
            deadline,
            excluded,
        };
    }

    /// Starts the exchange of `req` over `backend` and counts the request
    /// for its server.
    pub(super) fn begin_exchange(
        &mut self,
        route: Route,
        backend: usize,
        origin: Origin,
        req: Request,
        ctx: &mut Ctx<'_>,
    ) -> Step {
        if let Target::Server(i) = route.target() {
            if let Some(entry) = route.service.server_entries().get(i) {
                entry.load().add_request();
            }
        }
        route.count_rule_request();
        if let Some(pending) = &mut self.io.log {
            if let Some(pick) = route.pick {
                (pending.rule, pending.server) = (pick.rule, pick.server);
            }
        }
        self.state = State::Exchange(Exchange::new(route, backend, origin, req, ctx.now));
        Step::Again
    }
}

/// Whether a request on a TLS connection names, in `Host`, another site
/// than the one its handshake asked for (SNI), where the service checks
/// that: one TLS connection, set up under one site's name and
/// certificate, must not reach another site. A request without `Host`, or
/// a handshake without a name, is not checked.
fn misdirected(service: &ServiceSnapshot, from: ClientId<'_>, head: &RequestHead<'_>) -> bool {
    let (Some(sni), Some(host)) = (from.server_name, head.host) else {
        return false;
    };
    if !service.config().tls.as_ref().is_some_and(|t| t.host_check) {
        return false;
    }
    !host_name(host).eq_ignore_ascii_case(sni)
}

/// The name part of a `Host` value: without its port, and for an IPv6
/// literal without its brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn the_host_name_drops_port_and_brackets() {
        assert_eq!(host_name("a.test"), "a.test");
        assert_eq!(host_name("a.test:8443"), "a.test");
        assert_eq!(host_name("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(host_name("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(host_name("a.test:"), "a.test");
    }
}

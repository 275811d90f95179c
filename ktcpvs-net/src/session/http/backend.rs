//! The backend side of a request: waiting for a connect, retrying another
//! server of the same decision when one fails, replaying an idempotent
//! request when a reused connection turns out dead, and handing the
//! connection back to the pool (or closing it) with its byte counts.

use std::sync::Arc;

use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::{RequestHead, Selection};

use super::exchange::{Exchange, Origin};
use super::{ClientId, HttpSession, Request, Route, State, Step};
use crate::resource::{is_local_exhaustion, warn_exhaustion};
use crate::session::tunnel::Tunnel;
use crate::session::Ctx;
use crate::upstream::connect::{
    destination, fail_target, poll_connect, start_connect, Chooser, Connecting, Excluded,
    NoBackend, Target,
};
use crate::upstream::pool::ConnectCheck;

impl HttpSession {
    /// Closes the backend connection of the exchange in flight, if any,
    /// with its byte counts.
    pub(super) fn drop_backend(&mut self, ctx: &mut Ctx<'_>) {
        if let State::Exchange(ex) = &self.state {
            self.flush_backend_traffic(ex.backend, &ex.route, ctx);
            ctx.backends.close(ex.backend);
        }
    }

    /// Adds the bytes counted on backend connection `backend` to the
    /// counters of the server `route` leads to (one add per direction).
    pub(super) fn flush_backend_traffic(&self, backend: usize, route: &Route, ctx: &mut Ctx<'_>) {
        let Some(link) = ctx.backends.get_mut(backend) else {
            return;
        };
        let traffic = link.conn.take_traffic();
        if traffic.is_empty() {
            return;
        }
        if let Target::Server(i) = route.target() {
            if let Some(entry) = route.service.server_entries().get(i) {
                entry.load().add_bytes(traffic.written, traffic.read);
            }
        }
    }

    /// Checks the connect in progress: exchange on success, another server
    /// on failure.
    pub(super) fn connecting(&mut self, from: ClientId<'_>, ctx: &mut Ctx<'_>) -> Step {
        let State::Connecting {
            route,
            backend,
            deadline,
            ..
        } = &self.state
        else {
            return Step::Close;
        };
        let (target, addr) = (route.target(), route.addr());
        match poll_connect(&route.service, target, addr, *backend, ctx.backends) {
            ConnectCheck::Pending => Step::Wait(Some(*deadline)),
            ConnectCheck::Connected => {
                let State::Connecting {
                    route,
                    backend,
                    req,
                    deadline,
                    excluded,
                } = std::mem::replace(&mut self.state, State::Closed)
                else {
                    return Step::Close;
                };
                let took = route.record_connect(deadline, ctx);
                if let Some(pending) = &mut self.io.log {
                    pending.connect_us = super::logging::micros(took);
                    pending.retries = u16::try_from(excluded.failed).unwrap_or(u16::MAX);
                }
                if target == Target::Redirect {
                    // No server takes the request: the redirect address
                    // gets the client's bytes untouched, from its head on.
                    let up = self.io.up.buf.take();
                    let tunnel = Tunnel::relaying(backend, None, up, None, ctx.now);
                    return Step::Tunnel(Box::new(tunnel));
                }
                self.begin_exchange(route, backend, Origin::Fresh, req, ctx)
            }
            ConnectCheck::Failed(e) => {
                self.retry_connect(&e, from, ctx);
                Step::Again
            }
        }
    }

    /// The connect failed: record it, and try another server of the same
    /// decision, else 502.
    pub(super) fn retry_connect(
        &mut self,
        error: &std::io::Error,
        from: ClientId<'_>,
        ctx: &mut Ctx<'_>,
    ) {
        let State::Connecting {
            route,
            backend,
            req,
            mut excluded,
            ..
        } = std::mem::replace(&mut self.state, State::Closed)
        else {
            return;
        };
        ctx.backends.close(backend);
        let service = Arc::clone(&route.service);
        let backoff = ctx.backoff();
        fail_target(
            &service,
            route.target(),
            route.addr(),
            error,
            &mut excluded,
            backoff,
        );
        drop(route);
        // The head still in the buffer decides again.
        let next = self
            .with_buffered_head(ctx, |_, head, ctx| {
                connect_again(&service, head, from, &mut excluded, ctx)
            })
            .unwrap_or(Err(NoBackend::AllFailed));
        self.connect_or_fail(next, service, req, excluded, ctx);
    }

    /// Starts connecting for `req` with what [`connect_again`] found, or
    /// answers 502 when nothing was left (503 when a local resource ran
    /// out).
    pub(super) fn connect_or_fail(
        &mut self,
        next: Result<(Connecting, Option<Selection>), NoBackend>,
        service: Arc<ServiceSnapshot>,
        req: Request,
        excluded: Excluded,
        ctx: &mut Ctx<'_>,
    ) {
        match next {
            Ok((mut connecting, selection)) => {
                let route = Route::new(service, selection, &mut connecting);
                self.connect_to(route, connecting.conn, req, excluded, ctx);
            }
            Err(NoBackend::LocalExhaustion | NoBackend::Full) => self.fail(503, &service, ctx),
            Err(NoBackend::NoServer | NoBackend::AllFailed | NoBackend::NoRetry) => {
                self.fail(502, &service, ctx)
            }
        }
    }

    /// The backend failed before a response started: replay on a fresh
    /// connection when that is safe, else 502.
    pub(super) fn backend_failed(&mut self, error: std::io::Error, ctx: &mut Ctx<'_>) -> Step {
        let State::Exchange(ex) = &self.state else {
            return Step::Close;
        };
        log::debug!(
            "[{}] backend {} failed: {error}",
            ex.route.service.config().name,
            ex.route.addr()
        );
        if ex.origin != Origin::Reused
            || !ex.req.replayable()
            || !ex.route.service.load().try_retry()
        {
            ex.route.server_error();
            return self.respond_error(502, ctx);
        }
        self.drop_backend(ctx);
        self.io.down.clear();
        let State::Exchange(Exchange { route, req, .. }) =
            std::mem::replace(&mut self.state, State::Closed)
        else {
            return Step::Close;
        };
        let service = Arc::clone(&route.service);
        match destination(&service, route.target()).and_then(|to| ctx.dialer().connect(to)) {
            Ok(conn) => {
                self.connect_to(route, conn, req, Excluded::default(), ctx);
                Step::Again
            }
            Err(e) => {
                let status = if is_local_exhaustion(&e) {
                    warn_exhaustion("connecting to a real server", &e);
                    503
                } else {
                    502
                };
                let service = Arc::clone(&route.service);
                drop(route);
                self.fail(status, &service, ctx);
                Step::Again
            }
        }
    }
}

/// Picks again for `head` among the servers `excluded` does not name and
/// starts a connect (a failed server of the same decision is skipped). The
/// redirect address is not a retry target: [`NoBackend::AllFailed`] when
/// no server is left.
pub(super) fn connect_again(
    service: &ServiceSnapshot,
    head: &RequestHead<'_>,
    from: ClientId<'_>,
    excluded: &mut Excluded,
    ctx: &mut Ctx<'_>,
) -> Result<(Connecting, Option<Selection>), NoBackend> {
    let mut chooser = Chooser::new(service, from.addr, Some(head), from.server_name);
    let mut pick = |exclude: &[usize]| chooser.pick(exclude);
    match start_connect(service, &mut pick, excluded, &mut ctx.dialer()) {
        Ok(connecting) if connecting.target != Target::Redirect => Ok((connecting, chooser.chosen)),
        Ok(connecting) => {
            ctx.backends.close(connecting.conn);
            Err(NoBackend::AllFailed)
        }
        Err(e) => Err(e),
    }
}

/// Puts backend connection `id` back in the worker's pool when it is
/// `reusable` and the engine is not draining, else closes it; the id when
/// it was pooled.
pub(super) fn pool_backend(id: usize, reusable: bool, ctx: &mut Ctx<'_>) -> Option<usize> {
    if reusable && !ctx.draining {
        let max = ctx.snapshot.settings().pool_max_idle();
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        if ctx.backends.put_idle(id, max, ctx.now) {
            return Some(id);
        }
        return None;
    }
    ctx.backends.close(id);
    None
}

//! The backend side of a request: waiting for a connect, retrying another
//! server of the same decision when one fails, replaying an idempotent
//! request when a reused connection turns out dead, and handing the
//! connection back to the pool (or closing it) with its byte counts.

use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;

use ktcpvs_core::snapshot::{ServiceSnapshot, TimeoutKind};
use ktcpvs_core::{PickRequest, Selection};

use super::{Held, HttpSession, Request, Route, State, Step, HEADER_SLOTS};
use crate::http::{parse_request_uninit, Limits};
use crate::resource::{is_local_exhaustion, warn_exhaustion};
use crate::session::tunnel::Tunnel;
use crate::session::Ctx;
use crate::upstream::connect::{
    fail_target, poll_connect, start_connect, Connecting, Excluded, NoBackend, Target,
};
use crate::upstream::pool::ConnectCheck;

impl HttpSession {
    /// Closes (or pools) the backend connection in use.
    pub(super) fn drop_backend(&mut self, ctx: &mut Ctx<'_>, reusable: bool) {
        let backend = match &self.state {
            State::Exchange { backend, .. } => Some(*backend),
            _ => None,
        }
        .or(self.held.take_kept());
        if let Some(b) = backend {
            self.flush_backend_traffic(b, ctx);
            if reusable && !ctx.draining {
                let max = ctx.snapshots.load().settings().pool_max_idle();
                let max = usize::try_from(max).unwrap_or(usize::MAX);
                if ctx.backends.put_idle(b, max, ctx.now) {
                    self.held = Held::Pooled(b);
                }
            } else {
                ctx.backends.close(b);
            }
        }
    }

    /// Adds the bytes counted on backend connection `backend` to the
    /// counters of the server the route leads to (one add per direction).
    pub(super) fn flush_backend_traffic(&self, backend: usize, ctx: &mut Ctx<'_>) {
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

    /// Checks the connect in progress: exchange on success, another server
    /// on failure.
    pub(super) fn connecting(&mut self, peer: SocketAddr, ctx: &mut Ctx<'_>) -> Step {
        let State::Connecting { conn, deadline, .. } = &self.state else {
            return Step::Close;
        };
        let deadline = *deadline;
        let Some(route) = self.route.as_ref() else {
            return Step::Close;
        };
        let service = Arc::clone(&route.service);
        match poll_connect(&service, conn, ctx.backends) {
            ConnectCheck::Pending => Step::Wait(Some(deadline)),
            ConnectCheck::Connected => {
                let State::Connecting { conn, req, .. } =
                    std::mem::replace(&mut self.state, State::Closed)
                else {
                    return Step::Close;
                };
                if conn.target == Target::Redirect {
                    // No server takes the request: the redirect address
                    // gets the client's bytes untouched, from its head on.
                    self.route = None;
                    let up = self.inbuf.take();
                    return Step::Tunnel(Tunnel::relaying(conn.conn, None, up, None, ctx.now));
                }
                self.begin_exchange(conn.conn, false, req, ctx)
            }
            ConnectCheck::Failed(e) => {
                self.retry_connect(&e, peer, ctx);
                Step::Again
            }
        }
    }

    /// The connect failed: record it, and try another server of the same
    /// decision, else 502.
    pub(super) fn retry_connect(
        &mut self,
        error: &std::io::Error,
        peer: SocketAddr,
        ctx: &mut Ctx<'_>,
    ) {
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
            ctx.backoff(),
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
        let next = connect_again(&service, &head, peer, &mut self.excluded, ctx);
        self.connect_or_fail(next, service, req, ctx);
    }

    /// Starts connecting for `req` with what [`connect_again`] found, or
    /// answers 502 when nothing was left (503 when a local resource ran
    /// out).
    pub(super) fn connect_or_fail(
        &mut self,
        next: Result<(Connecting, Option<Selection>), NoBackend>,
        service: Arc<ServiceSnapshot>,
        req: Request,
        ctx: &mut Ctx<'_>,
    ) {
        let (mut connecting, selection) = match next {
            Ok(next) => next,
            Err(NoBackend::LocalExhaustion) => return self.fail(503, &service, ctx),
            Err(NoBackend::NoServer | NoBackend::AllFailed) => {
                return self.fail(502, &service, ctx)
            }
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

    /// The backend failed before a response started: replay on a fresh
    /// connection when that is safe, else 502.
    pub(super) fn backend_failed(&mut self, error: std::io::Error, ctx: &mut Ctx<'_>) -> Step {
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
            self.outbuf = None;
            let addr = route.addr;
            let target = route.target;
            match ctx.dialer().connect(addr) {
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
                Err(e) if is_local_exhaustion(&e) => {
                    warn_exhaustion("connecting to a real server", &e);
                    return self.respond_error(503, ctx);
                }
                Err(_) => return self.respond_error(502, ctx),
            }
        }
        if let Target::Server(i) = route.target {
            route.service.server_entries()[i].load().add_error();
        }
        self.respond_error(502, ctx)
    }
}

/// Picks again for `head` among the servers `excluded` does not name and
/// starts a connect (a failed server of the same decision is skipped). The
/// redirect address is not a retry target: [`NoBackend::AllFailed`] when
/// no server is left.
pub(super) fn connect_again(
    service: &ServiceSnapshot,
    head: &ktcpvs_core::RequestHead<'_>,
    client: SocketAddr,
    excluded: &mut Excluded,
    ctx: &mut Ctx<'_>,
) -> Result<(Connecting, Option<Selection>), NoBackend> {
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
    match start_connect(service, &mut pick, excluded, &mut ctx.dialer()) {
        Ok(connecting) if connecting.target != Target::Redirect => Ok((connecting, chosen)),
        Ok(connecting) => {
            ctx.backends.close(connecting.conn);
            Err(NoBackend::AllFailed)
        }
        Err(e) => Err(e),
    }
}

//! One request/response exchange over a backend connection.
//!
//! `up.rs` sends the request (head, then body), `down.rs` takes the
//! response (head decision, `101`, body); this file holds the exchange's
//! state and runs the two sides in turn each time the session is driven,
//! then watches the deadlines (response timeout, inactivity, the client's
//! transfer rate) and ends the exchange: each connection kept, pooled or
//! closed.

mod down;
mod up;

use std::time::{Duration, Instant};

use ktcpvs_core::snapshot::TimeoutKind;
use mio::Registry;

pub(super) use self::down::{Down, HeadOut};
pub(super) use self::up::Up;
use super::backend::pool_backend;
use super::pace::Pace;
use super::{HttpSession, Io, Keep, Persist, Request, Route, State, Step, LINGER};
use crate::http::Limits;
use crate::io::buffer::{release_if_empty, BufferPool};
use crate::io::conn::Conn;
use crate::session::tunnel::Tunnel;
use crate::session::Ctx;
use crate::upstream::pool::BackendConn;

/// Whether the backend connection was taken from the pool (and may turn
/// out dead at its first use) or freshly connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Fresh,
    Reused,
}

/// A request in flight over a backend connection.
#[derive(Debug)]
pub(super) struct Exchange {
    pub route: Route,
    pub backend: usize,
    pub origin: Origin,
    pub req: Request,
    pub up: Up,
    pub down: Down,
    /// When a byte last moved either way (the inactivity timeout).
    pub since: Instant,
    /// When the exchange began: the server's response time runs from here.
    pub started: Instant,
    /// The client's progress over the current rate window.
    pub pace: Pace,
}

impl Exchange {
    /// A request about to go up `backend`.
    pub fn new(route: Route, backend: usize, origin: Origin, req: Request, now: Instant) -> Self {
        Exchange {
            route,
            backend,
            origin,
            req,
            up: Up::Head { sent: 0 },
            down: Down::Head,
            since: now,
            started: now,
            pace: Pace::new(now, 0),
        }
    }

    /// Whether the whole request is out and the response head is awaited:
    /// nothing to do but wait for the server (`response_timeout`).
    pub fn waits_for_response(&self) -> bool {
        matches!((&self.up, &self.down), (Up::Sent, Down::Head))
    }

    /// Whether only the server can move the exchange now (the client's
    /// readiness events are not needed).
    pub fn waits_on_server_only(&self) -> bool {
        self.waits_for_response()
    }

    /// Whether the exchange waits on the client: bytes are held for it that
    /// it has not taken (a response head or body, in the buffer or a pipe),
    /// or its request body is awaited while nothing is held for the server.
    fn waits_on_client(&self, io: &Io) -> bool {
        let held_for_client = match &self.down {
            Down::Body { head, .. } | Down::Interim { head } => {
                !matches!(head, HeadOut::InBuffer) || io.down.pending > 0 || io.down.piped() > 0
            }
            Down::Head => false,
        };
        let awaits_body =
            matches!(self.up, Up::Body { .. }) && io.up.pending == 0 && io.up.piped() == 0;
        held_for_client || awaits_body
    }
}

/// What both sides of an exchange work with, besides the exchange and its
/// buffers.
pub(super) struct Wire<'a> {
    pub client: &'a mut Conn,
    pub link: &'a mut BackendConn,
    pub registry: &'a Registry,
    pub pool: &'a mut BufferPool,
    pub limits: Limits,
    pub zerocopy: bool,
    pub draining: bool,
    pub now: Instant,
    /// `server_retry_backoff`, for a server ejected on its responses.
    pub backoff: Duration,
}

/// What a side did, when it did not end the exchange.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Went {
    /// A head went out or came in.
    pub moved: bool,
    /// A buffer was missing.
    pub starved: bool,
}

/// Why a side ended the exchange.
#[derive(Debug)]
pub(super) enum End {
    /// Answer this status if nothing of the response reached the client
    /// yet; otherwise just close.
    Respond(u16),
    /// The backend failed before the response began: replay on a fresh
    /// connection when that is safe, else 502.
    BackendFailed(std::io::Error),
    /// Close the session (the backend connection with it).
    Close,
    /// The response is complete: what happens to each connection.
    Finished { backend: Persist, client: Persist },
    /// The connection became a tunnel (after `101`).
    Tunnel(Box<Tunnel>),
}

impl HttpSession {
    /// Moves the request up and the response down as far as the sockets
    /// allow; ends the exchange, answers an error or becomes a tunnel.
    pub(super) fn exchange(&mut self, client: &mut Conn, ctx: &mut Ctx<'_>) -> Step {
        let State::Exchange(ex) = &mut self.state else {
            return Step::Close;
        };
        let snapshot = ctx.snapshot;
        let settings = snapshot.settings();
        let Some(link) = ctx.backends.get_mut(ex.backend) else {
            return Step::Close;
        };
        // TLS records to the server a send accepted earlier go first.
        if link.conn.wants_write() {
            if let Err(e) = link.conn.flush() {
                return self.end_exchange(End::BackendFailed(e), client, ctx);
            }
        }
        let bytes_before = moved_bytes(client, link);
        let mut wire = Wire {
            client: &mut *client,
            link,
            registry: ctx.registry,
            pool: &mut *ctx.pool,
            limits: Limits::from_settings(settings),
            zerocopy: settings.zerocopy_send() == 1,
            draining: ctx.draining,
            now: ctx.now,
            backoff: Duration::from_secs(settings.server_retry_backoff()),
        };
        let sides = ex
            .send_request(&mut self.io, &mut wire)
            .and_then(|up| Ok((up, ex.take_response(&mut self.io, &mut wire)?)));
        let (up, down) = match sides {
            Ok(went) => went,
            Err(end) => return self.end_exchange(end, client, ctx),
        };
        // Any byte moved either way is activity: a long body that keeps
        // moving is never cut by the inactivity timeout.
        let client_bytes = wire.client.traffic.read + wire.client.traffic.written;
        if up.moved || down.moved || moved_bytes(wire.client, wire.link) != bytes_before {
            ex.since = ctx.now;
        }
        let starved = up.starved || down.starved;
        match self.next_deadline(client_bytes, ctx) {
            Ok(at) if starved => Step::Starved(Some(at)),
            Ok(at) => Step::Wait(Some(at)),
            Err(status) => self.respond_error(status, ctx),
        }
    }

    /// When the exchange must be looked at again: the response timeout
    /// while the server is to answer; otherwise the inactivity timeout and,
    /// while it waits on the client, the end of the rate window. `Err`
    /// with the status to answer when one of them has passed.
    fn next_deadline(&mut self, client_bytes: u64, ctx: &Ctx<'_>) -> Result<Instant, u16> {
        let State::Exchange(ex) = &mut self.state else {
            return Err(502);
        };
        let snapshot = ctx.snapshot;
        let settings = snapshot.settings();
        if ex.waits_for_response() {
            return Ok(ex.since + ex.route.service.timeout(TimeoutKind::Response, settings));
        }
        let waits = ex.waits_on_client(&self.io);
        let idle_until = ex.since + ex.route.service.timeout(TimeoutKind::Read, settings);
        let window = Duration::from_secs(settings.transfer_window());
        let rate = settings.min_transfer_rate();
        let paced = ex.pace.check(ctx.now, client_bytes, waits, rate, window);
        let name = &ex.route.service.config().name;
        match paced {
            _ if ctx.now >= idle_until => {
                log::debug!("[{name}] exchange idle for the read timeout; closing");
            }
            Err(slow) => log::debug!(
                "[{name}] client moved {} of the {} bytes required over {}s; closing",
                slow.moved,
                slow.required,
                window.as_secs()
            ),
            Ok(window_end) => return Ok(window_end.map_or(idle_until, |w| w.min(idle_until))),
        }
        // A client that stalls its own request gets 408; a server that
        // takes no request bytes, 504; after the response began, the
        // connection is cut.
        Err(if waits { 408 } else { 504 })
    }

    /// Carries out how a side ended the exchange.
    fn end_exchange(&mut self, end: End, client: &mut Conn, ctx: &mut Ctx<'_>) -> Step {
        match end {
            End::Respond(status) => self.respond_error(status, ctx),
            End::BackendFailed(e) => self.backend_failed(e, ctx),
            End::Close => Step::Close,
            End::Finished {
                backend,
                client: persist,
            } => self.finish_exchange(backend, persist, client, ctx),
            End::Tunnel(t) => Step::Tunnel(t),
        }
    }

    /// The response is complete: reuse or close the backend, then the next
    /// request (or close the client).
    fn finish_exchange(
        &mut self,
        backend: Persist,
        persist: Persist,
        client: &mut Conn,
        ctx: &mut Ctx<'_>,
    ) -> Step {
        let State::Exchange(ex) = std::mem::replace(&mut self.state, State::Closed) else {
            return Step::Close;
        };
        ex.route
            .record_exchange(ctx.now.saturating_duration_since(ex.started));
        let traffic = client.take_traffic();
        if let Some(pending) = self.io.log.take() {
            let bytes = (traffic.read, traffic.written);
            pending.finish(&ex.route.service, bytes, "done", ctx);
        }
        ex.route
            .service
            .load()
            .add_bytes(traffic.read, traffic.written);
        // The client announced that this request was its last and all of
        // it has been read: nothing may follow, so the connection can close
        // at once (the FIN goes after the queued response) rather than shut
        // its write side and wait for the client's EOF.
        let client_done = ex.req.persist == Persist::Close && matches!(ex.up, Up::Sent);
        release_if_empty(&mut self.io.down.buf);
        self.flush_backend_traffic(ex.backend, &ex.route, ctx);
        let keep = if ex.route.per_connection() && persist == Persist::KeepAlive {
            let kept = match (backend, u32::try_from(ex.backend)) {
                (Persist::KeepAlive, Ok(id)) => Some(id),
                _ => {
                    ctx.backends.close(ex.backend);
                    None
                }
            };
            Keep::Connection {
                route: ex.route,
                backend: kept,
            }
        } else {
            self.io.down.clear();
            match pool_backend(ex.backend, backend == Persist::KeepAlive, ctx) {
                Some(id) => Keep::Pooled(id),
                None => Keep::Nothing,
            }
        };
        if persist == Persist::Close {
            keep.release(ctx);
            if client_done && !self.io.up.holds_bytes() {
                return Step::Close;
            }
            let _ = client.shutdown_write();
            self.state = State::Linger {
                until: ctx.now + LINGER,
            };
            return Step::Again;
        }
        release_if_empty(&mut self.io.up.buf);
        let pipelined = self.io.up.holds_bytes();
        self.state = State::Reading {
            since: ctx.now,
            first_byte: pipelined.then_some(ctx.now),
            keep,
        };
        Step::Again
    }

    /// Answers an error for the request in flight when nothing of its
    /// response reached the client yet; otherwise just closes.
    pub(super) fn respond_error(&mut self, status: u16, ctx: &mut Ctx<'_>) -> Step {
        let started = matches!(
            &self.state,
            State::Exchange(Exchange {
                down: Down::Body { .. } | Down::Interim { .. },
                ..
            })
        );
        let service = match &self.state {
            State::Exchange(ex) => Some(std::sync::Arc::clone(&ex.route.service)),
            State::Connecting { route, .. } => Some(std::sync::Arc::clone(&route.service)),
            _ => None,
        };
        self.drop_backend(ctx);
        self.io.down.clear();
        match service {
            Some(service) if !started => {
                self.fail(status, &service, ctx);
                Step::Again
            }
            _ => {
                self.state = State::Closed;
                Step::Close
            }
        }
    }
}

/// Bytes moved so far on the client socket and the backend connection.
fn moved_bytes(client: &Conn, link: &BackendConn) -> u64 {
    client.traffic.read
        + client.traffic.written
        + link.conn.traffic.read
        + link.conn.traffic.written
}

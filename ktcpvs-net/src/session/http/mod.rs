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
//!
//! | file | what lives there |
//! |---|---|
//! | `mod.rs` | the state enums, the session, `drive`/`on_timeout` dispatch, error answers |
//! | `request.rs` | reading and parsing the head, the scheduler's decision |
//! | `backend.rs` | connects, retries, replays, pooling and byte counts of backend connections |
//! | `exchange.rs` | one request/response exchange: head and body up, head and body down |
//! | `body.rs` | relaying a body (buffers or `splice`) |

use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::{Lease, Selection};

use self::pace::Pace;
use super::tunnel::Tunnel;
use super::{Ctx, Flow};
use crate::http::{write_error_response, BodyState, Framing, Method};
use crate::io::buffer::release_if_empty;
use crate::io::buffer::{Buffer, BufferPool};
use crate::io::conn::{Conn, Fill};
use crate::io::splice::KernelPipe;
use crate::upstream::connect::{Connecting, Excluded, Target};

mod backend;
mod body;
mod exchange;
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
    /// The client asked to keep the connection (HTTP/1.1 by default,
    /// HTTP/1.0 with `Connection: keep-alive`); if not, this request is its
    /// last and nothing may follow it.
    client_keep: bool,
    /// An HTTP/1.0 request: kept alive only with a response whose length is
    /// known, which then says `Connection: keep-alive`.
    http10: bool,
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
    /// Forwarding: what is left of the head ([`HeadOut`]), then the body
    /// with `pending` validated bytes at the front of the buffer.
    Body {
        head: HeadOut,
        body: BodyState,
        pending: usize,
        /// The backend connection may be pooled once the response is
        /// done: the server said so and the request was entirely sent
        /// before this (final) response began.
        backend_keep: bool,
        client_keep: bool,
        /// A 1xx head: once it is out, wait for the final response.
        interim: bool,
    },
}

/// How the response head leaves for the client, before the body relay.
#[derive(Debug, Clone, Copy)]
enum HeadOut {
    /// Nothing but the buffer's `pending` bytes: the head went (or goes
    /// with them) byte for byte.
    InBuffer,
    /// A head rewritten into `rscratch`, of which `sent` bytes are out.
    Rewritten { sent: usize },
    /// The received head, still at the front of the buffer, sent as
    /// `head[..at]`, [`CONNECTION_CLOSE_LINE`](crate::http::CONNECTION_CLOSE_LINE),
    /// `head[end..]` (a [`CloseSplice`](crate::http::CloseSplice)): `sent`
    /// bytes of the first two are out. `u32` keeps the session small; a
    /// head is far shorter.
    Spliced { at: u32, end: u32, sent: u32 },
}

/// The backend connection a session has between requests.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// None.
    Nothing,
    /// Per-connection schedulers: the connection kept for the next request.
    Kept(usize),
    /// Per-request schedulers: the connection this session returned to the
    /// pool after its last request. Only a hint: the pool may have handed
    /// it to another session or closed it since; when the next request
    /// picks the same server and the connection still idles, it is taken
    /// back without a pool lookup.
    Pooled(usize),
}

impl Held {
    /// Takes the kept connection, if any (a pooled hint is forgotten).
    fn take_kept(&mut self) -> Option<usize> {
        match std::mem::replace(self, Held::Nothing) {
            Held::Kept(b) => Some(b),
            _ => None,
        }
    }

    /// Takes the pooled hint, if any (a kept connection stays).
    fn take_pooled(&mut self) -> Option<usize> {
        match *self {
            Held::Pooled(b) => {
                *self = Held::Nothing;
                Some(b)
            }
            _ => None,
        }
    }
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
        /// When a byte last moved either way (the inactivity timeout).
        since: Instant,
        /// The client's progress over the current rate window.
        pace: Pace,
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
    /// The backend connection this session holds, or last pooled, between
    /// requests.
    held: Held,
    excluded: Excluded,
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
    pub fn start(ctx: &mut Ctx<'_>) -> Option<HttpSession> {
        Some(HttpSession {
            state: State::Idle {
                since: ctx.now,
                first_byte: Some(ctx.now),
            },
            inbuf: None,
            outbuf: None,
            // Grown on first use (a rewritten head or an error), then
            // reused: a connection whose heads go verbatim never holds one.
            scratch: Vec::new(),
            rscratch: Vec::new(),
            up_pipe: None,
            down_pipe: None,
            route: None,
            held: Held::Nothing,
            excluded: Excluded::default(),
        })
    }

    /// Whether the session may need the client socket's readiness events
    /// now. It does not while its request is entirely sent and it waits
    /// for a connect or a response head: the client is not read beyond the
    /// request in flight, and nothing is written to it before the response
    /// head comes (a backend event). A `Connection: close` exchange that
    /// goes through without the client socket ever blocking is then served
    /// without registering it with the poller.
    pub fn needs_client_events(&self) -> bool {
        !matches!(
            self.state,
            State::Connecting { .. }
                | State::Exchange {
                    up: Up::Done,
                    down: Down::Head,
                    ..
                }
        )
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
                State::Connecting { .. } => self.connecting(peer, ctx),
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
                    self.release_backend(ctx);
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
                self.retry_connect(&e, peer, ctx);
            }
            State::Exchange {
                up: Up::Done,
                down: Down::Head,
                ..
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
            // The exchange checks its own inactivity and rate deadlines.
            State::Exchange { .. } => {}
        }
        self.drive(client, peer, service, ctx)
    }

    /// Releases everything: backend connection, buffers, kernel pipes,
    /// route and scratch space. What is left is a closed session holding
    /// nothing, whose allocation the worker may reuse for its next
    /// connection.
    pub fn close(&mut self, ctx: &mut Ctx<'_>) {
        self.release_backend(ctx);
        self.inbuf = None;
        self.outbuf = None;
        self.scratch = Vec::new();
        self.rscratch = Vec::new();
        self.up_pipe = None;
        self.down_pipe = None;
        self.route = None;
        self.held = Held::Nothing;
        self.excluded = Excluded::default();
    }

    /// Closes the backend connection in use or being connected (never
    /// pooling it: whatever ended the session left its framing in doubt)
    /// and leaves the session [`State::Closed`].
    fn release_backend(&mut self, ctx: &mut Ctx<'_>) {
        self.drop_backend(ctx, false);
        if let State::Connecting { conn, .. } = std::mem::replace(&mut self.state, State::Closed) {
            ctx.backends.close(conn.conn);
        }
    }

    /// Answers `status` and closes after it (forwarding nothing more).
    fn fail(&mut self, status: u16, service: &ServiceSnapshot, ctx: &mut Ctx<'_>) {
        service.load().add_error();
        if let State::Connecting { conn, .. } = &self.state {
            ctx.backends.close(conn.conn);
        }
        self.scratch.clear();
        self.scratch.reserve(SCRATCH_HEAD);
        write_error_response(status, &mut self.scratch);
        self.state = State::Error { sent: 0 };
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

/// Discards client input until EOF or `until`, so an error response is read
/// rather than lost to a reset.
fn linger(
    client: &mut Conn,
    pool: &mut BufferPool,
    inbuf: &mut Option<Buffer>,
    until: Instant,
) -> Step {
    // Nothing arrived since the last short read: the client's FIN (or more
    // bytes) brings an event, so no read is spent on an empty socket.
    if !client.ready.readable {
        release_if_empty(inbuf);
        return Step::Wait(Some(until));
    }
    if inbuf.is_none() {
        *inbuf = pool.checkout();
    }
    let Some(b) = inbuf.as_mut() else {
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

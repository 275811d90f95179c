//! The HTTP/2 session: one client connection carrying many streams, each
//! switched on its own to HTTP/1.1 real servers.
//!
//! The frame layer, HPACK, flow control and the protocol's own defences
//! are hyperium's `h2` state machine, driven inside the worker's loop like
//! every other session: no runtime, no task. The session moves the client's
//! bytes between its [`Conn`] and the [`wire`] buffers `h2` reads and
//! writes, polls the connection (accepting streams, reading and writing
//! frames) and every [`stream`], and repeats while anything moved or `h2`
//! asked to be polled again.
//!
//! ```text
//!  Handshake ─preface+SETTINGS─► Open ─GOAWAY sent (drain, idle, calm)─► Closing
//!     │ bad preface / timeout       │ streams: open ► (session, response) ► done/reset
//!     └──────────────► closed ◄─────┴─ connection error / client gone
//! ```
//!
//! Limits (documented in docs/http2.md): [`MAX_STREAMS`] concurrent
//! streams, the header list bounded by the engine's `max_header_size`,
//! [`STREAM_WINDOW`]/[`CONNECTION_WINDOW`] receive windows, frames of at
//! most 16 KiB, [`MAX_RESETS`] client resets per [`RESET_WINDOW`].
//!
//! | file | what lives there |
//! |---|---|
//! | `mod.rs` | the session: the connection's phases, the drive loop, limits, timeouts, GOAWAY |
//! | `wire.rs` | the client's bytes behind the I/O traits `h2` polls, and its waker |
//! | `stream.rs` | one stream: request downgraded to HTTP/1.1, its session, the response back |

mod stream;
mod wire;

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::{Connection, Handshake};
use h2::Reason;
use ktcpvs_core::snapshot::{ServiceSnapshot, TimeoutKind};

use self::stream::{End, Origin, Stream};
use self::wire::{Moved, WakeFlag, Wire, WireIo};
use super::{Cause, Ctx, Flow};
use crate::http::Limits;
use crate::io::buffer::Buffer;
use crate::io::conn::Conn;
use crate::throttle::Throttle;

/// Most streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
pub(crate) const MAX_STREAMS: u32 = 100;

/// Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE).
pub(crate) const STREAM_WINDOW: u32 = 256 * 1024;

/// The connection's receive window.
pub(crate) const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Most streams the client may reset in one [`RESET_WINDOW`] before the
/// connection is closed with GOAWAY `ENHANCE_YOUR_CALM` (the rapid-reset
/// attack, CVE-2023-44487: each stream opened and reset at once would
/// otherwise cost a request to a server for next to nothing).
pub(crate) const MAX_RESETS: u32 = 100;

/// The interval [`MAX_RESETS`] counts over.
pub(crate) const RESET_WINDOW: Duration = Duration::from_secs(10);

/// Most passes of one drive: each pass moves bytes or answers a wake, so
/// a connection that keeps finding work gives the worker back after this
/// many and is driven again on the next loop iteration.
const MAX_PASSES: usize = 64;

/// How long a closed connection's last frames may take to leave.
const CLOSING: Duration = Duration::from_secs(5);

/// The connection preface a client speaking HTTP/2 with prior knowledge
/// opens with (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reports of HTTP/2 connections closed for misbehaving: anyone can cause
/// them, so at most one per ten seconds.
static CALM: Throttle = Throttle::new(Duration::from_secs(10));

/// Where the connection is.
enum Phase {
    /// Reading the client's preface and SETTINGS, until the deadline.
    Handshake(Pin<Box<Handshake<WireIo, Bytes>>>, Instant),
    /// Serving streams.
    Open(Box<Connection<WireIo, Bytes>>),
    /// Closed: what waits on the wire is written, then the connection
    /// is closed.
    Closed,
}

/// Client resets counted over [`RESET_WINDOW`].
#[derive(Debug, Clone, Copy)]
struct Resets {
    since: Instant,
    count: u32,
}

/// An HTTP/2 client connection.
pub(crate) struct H2Session {
    wire: Rc<RefCell<Wire>>,
    phase: Phase,
    streams: Vec<Stream>,
    waker: Waker,
    woken: Arc<WakeFlag>,
    /// When the connection last had no stream (the idle timeout's start).
    idle_since: Instant,
    resets: Resets,
    /// GOAWAY was sent: no new stream is taken.
    going_away: bool,
}

impl std::fmt::Debug for H2Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Session")
            .field("streams", &self.streams.len())
            .field("going_away", &self.going_away)
            .finish()
    }
}

/// The `h2` settings the proxy announces and enforces.
fn builder(limits: &Limits) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(16 * 1024)
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .max_send_buffer_size(64 * 1024);
    b
}

impl H2Session {
    /// A session on a connection whose first bytes (the preface, or part
    /// of it) are already in `read`.
    pub fn start(read: Option<Buffer>, service: &ServiceSnapshot, ctx: &Ctx<'_>) -> H2Session {
        let snapshot = ctx.snapshot;
        let settings = snapshot.settings();
        let limits = Limits::from_settings(settings);
        let wire = Rc::new(RefCell::new(Wire {
            inbound: read,
            ..Wire::default()
        }));
        let handshake = builder(&limits).handshake(WireIo(Rc::clone(&wire)));
        let until = ctx.now + service.timeout(TimeoutKind::Header, settings);
        let (waker, woken) = WakeFlag::waker();
        service.load().h2().add_connection();
        H2Session {
            wire,
            phase: Phase::Handshake(Box::pin(handshake), until),
            streams: Vec::new(),
            waker,
            woken,
            idle_since: ctx.now,
            resets: Resets {
                since: ctx.now,
                count: 0,
            },
            going_away: false,
        }
    }

    /// Whether a draining engine may close it now: no stream is open and
    /// no GOAWAY is under way (a graceful one ends the connection itself
    /// once the client saw the last stream taken, so streams the client
    /// sent meanwhile are never cut).
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty() && (!self.going_away || matches!(self.phase, Phase::Closed))
    }

    /// Does all the I/O it can.
    pub fn drive(
        &mut self,
        client: &mut Conn,
        peer: SocketAddr,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> Flow {
        let snapshot = ctx.snapshot;
        let limits = Limits::from_settings(snapshot.settings());
        let waker = self.waker.clone();
        let mut cx = Context::from_waker(&waker);
        let mut starved = false;
        for pass in 0..MAX_PASSES {
            let mut moved = false;
            match self.wire.borrow_mut().read_client(client, ctx.pool) {
                Ok(Moved::Some) => moved = true,
                Ok(Moved::Nothing) => {}
                Ok(Moved::Starved) => starved = true,
                Err(_) => return Flow::Done,
            }
            if self.wire.borrow_mut().ready_outbound(ctx.pool) == Moved::Starved {
                starved = true;
            }
            if ctx.draining && !self.going_away {
                self.go_away(None);
                moved = true;
            }
            // The cause concerns the first pass; later ones move what `h2`
            // woke (and what is new).
            let (all, backend) = match (pass, ctx.cause) {
                (0, Cause::Other) => (true, None),
                (0, Cause::Backend(id)) => (false, Some(id)),
                _ => (false, None),
            };
            // A backend's event brings a stream news before `h2` has any:
            // the stream goes first, so the poll that follows already
            // carries what it queued.
            // What it moves needs no pass of its own (the poll carries it);
            // a stream it leaves with work or that `h2` woke does.
            let streams_first = backend.is_some();
            if streams_first {
                self.drive_streams((all, backend), service, peer, &limits, ctx);
            }
            // Whatever woke the connection so far is this poll's to handle;
            // a wake from here on asks for another pass.
            self.woken.take();
            moved |= self.poll_connection(&mut cx, client, (peer, service), ctx);
            if streams_first {
                moved |= self.streams.iter().any(Stream::needs_drive);
            } else {
                moved |= self.drive_streams((all, backend), service, peer, &limits, ctx);
            }
            // Frames are written when the buffer `h2` writes into is half
            // full, or once this loop iteration's other events had their
            // say (so several streams' frames leave in one write).
            if ctx.cause == Cause::Deferred || self.wire.borrow().outbound_half_full() {
                match self.write_frames(client) {
                    Ok(wrote) => moved |= wrote,
                    Err(()) => return Flow::Done,
                }
            }
            if !moved && !self.woken.take() {
                let flow = self.settle(client, service, starved, ctx);
                return self.defer_writes(client, flow, ctx.cause == Cause::Deferred);
            }
        }
        // Still busy: come back on the next loop iteration.
        Flow::Queued(ctx.now)
    }

    /// Turns `flow` into [`Flow::Deferred`] when frames wait and this is
    /// not the deferred drive (which writes them); with any other flow,
    /// what waits is written now.
    fn defer_writes(&mut self, client: &mut Conn, flow: Flow, deferred_pass: bool) -> Flow {
        let waiting = self.wire.borrow().has_outbound();
        match flow {
            Flow::Open(at) if waiting && !deferred_pass => Flow::Deferred(at),
            Flow::Open(_) | Flow::Done => flow,
            flow => {
                if waiting && self.write_frames(client).is_err() {
                    return Flow::Done;
                }
                self.wire.borrow_mut().release();
                flow
            }
        }
    }

    /// Writes the frames that wait, as far as the client takes them:
    /// whether any left; `Err` when the connection failed.
    fn write_frames(&mut self, client: &mut Conn) -> Result<bool, ()> {
        match self.wire.borrow_mut().write_client(client) {
            Ok(moved) => Ok(moved == Moved::Some),
            Err(_) => Err(()),
        }
    }

    /// Some stream's deadline (or the connection's) passed.
    pub fn on_timeout(
        &mut self,
        client: &mut Conn,
        peer: SocketAddr,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> Flow {
        match &self.phase {
            Phase::Handshake(_, until) if ctx.now >= *until => return Flow::Done,
            Phase::Open(_)
                if self.streams.is_empty() && ctx.now >= self.idle_deadline(service, ctx) =>
            {
                self.go_away(Some(Reason::NO_ERROR));
            }
            _ => {}
        }
        let mut i = 0;
        while i < self.streams.len() {
            let due = self.streams[i].deadline.is_some_and(|d| d <= ctx.now);
            if due {
                if let Err(end) = self.streams[i].on_timeout(service, peer, ctx) {
                    self.finish(i, end, service, ctx);
                    continue;
                }
            }
            i += 1;
        }
        self.drive(client, peer, service, ctx)
    }

    /// When a connection with no stream open is closed (the service's
    /// keep-alive timeout after its last stream).
    fn idle_deadline(&self, service: &ServiceSnapshot, ctx: &Ctx<'_>) -> Instant {
        self.idle_since + service.timeout(TimeoutKind::Keepalive, ctx.snapshot.settings())
    }

    /// Releases everything: every stream's session, the buffers.
    pub fn close(&mut self, ctx: &mut Ctx<'_>) {
        for mut s in self.streams.drain(..) {
            s.close(ctx);
        }
        self.phase = Phase::Closed;
        let mut wire = self.wire.borrow_mut();
        wire.inbound = None;
        wire.outbound = None;
    }

    /// Sends GOAWAY: with a reason, at once (no stream after the last
    /// one taken); without, gracefully (streams in flight finish).
    fn go_away(&mut self, reason: Option<Reason>) {
        self.going_away = true;
        if let Phase::Open(conn) = &mut self.phase {
            match reason {
                Some(r) => conn.abrupt_shutdown(r),
                None => conn.graceful_shutdown(),
            }
        } else {
            self.phase = Phase::Closed;
        }
    }

    /// Polls the handshake or the connection: new streams are opened.
    fn poll_connection(
        &mut self,
        cx: &mut Context<'_>,
        client: &Conn,
        (peer, service): (SocketAddr, &ServiceSnapshot),
        ctx: &mut Ctx<'_>,
    ) -> bool {
        if let Phase::Handshake(handshake, _) = &mut self.phase {
            match handshake.as_mut().poll(cx) {
                Poll::Ready(Ok(conn)) => self.phase = Phase::Open(Box::new(conn)),
                Poll::Ready(Err(e)) => {
                    log::debug!("{peer}: HTTP/2 handshake failed: {e}");
                    self.phase = Phase::Closed;
                    return true;
                }
                Poll::Pending => return false,
            }
        }
        let Phase::Open(conn) = &mut self.phase else {
            return false;
        };
        let mut moved = false;
        loop {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    moved = true;
                    let origin = Origin {
                        tls: client.is_tls(),
                        server_name: client.server_name(),
                    };
                    match Stream::open(request, respond, origin, ctx) {
                        Ok(stream) => self.streams.push(stream),
                        Err(refused) => {
                            service.load().h2().add_refused();
                            log::debug!("{peer}: HTTP/2 {refused}");
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    service.load().h2().add_error();
                    if e.is_go_away() || e.reason() == Some(Reason::ENHANCE_YOUR_CALM) {
                        if let Some(count) = CALM.admit() {
                            log::info!("{peer}: HTTP/2 connection closed: {e} ({count} since the last report)");
                        }
                    } else {
                        log::debug!("{peer}: HTTP/2 connection error: {e}");
                    }
                    self.phase = Phase::Closed;
                    return true;
                }
                Poll::Ready(None) => {
                    self.phase = Phase::Closed;
                    return true;
                }
                Poll::Pending => return moved,
            }
        }
    }

    /// Drives the streams that are due (see [`Stream::due`]); ended ones
    /// are released.
    fn drive_streams(
        &mut self,
        (all, backend): (bool, Option<usize>),
        service: &ServiceSnapshot,
        peer: SocketAddr,
        limits: &Limits,
        ctx: &mut Ctx<'_>,
    ) -> bool {
        let mut moved = false;
        let mut i = 0;
        while i < self.streams.len() {
            if !self.streams[i].due(all, backend) {
                i += 1;
                continue;
            }
            match self.streams[i].drive(service, peer, limits, ctx) {
                Ok(m) => {
                    moved |= m;
                    i += 1;
                }
                Err(end) => {
                    moved = true;
                    self.finish(i, end, service, ctx);
                }
            }
        }
        moved
    }

    /// Releases stream `i`, which ended with `end`; client resets are
    /// counted, and past [`MAX_RESETS`] the connection goes away.
    fn finish(&mut self, i: usize, end: End, service: &ServiceSnapshot, ctx: &mut Ctx<'_>) {
        let mut stream = self.streams.swap_remove(i);
        log::trace!("HTTP/2 stream {} ended: {end:?}", stream.id);
        stream.close(ctx);
        if self.streams.is_empty() {
            self.idle_since = ctx.now;
            // An idle connection keeps no room for streams (the many
            // connections of a busy site are mostly idle).
            self.streams = Vec::new();
        }
        if end != End::ResetByClient {
            return;
        }
        service.load().h2().add_reset();
        if ctx.now.duration_since(self.resets.since) > RESET_WINDOW {
            self.resets = Resets {
                since: ctx.now,
                count: 0,
            };
        }
        self.resets.count += 1;
        if self.resets.count > MAX_RESETS && !self.going_away {
            if let Some(count) = CALM.admit() {
                log::info!(
                    "HTTP/2 connection reset more than {MAX_RESETS} streams in {RESET_WINDOW:?}: GOAWAY ENHANCE_YOUR_CALM ({count} since the last report)"
                );
            }
            service.load().h2().add_error();
            self.go_away(Some(Reason::ENHANCE_YOUR_CALM));
            for mut s in self.streams.drain(..) {
                s.reset(Reason::CANCEL);
                s.close(ctx);
            }
        }
    }

    /// What the worker does next: close once the connection is closed
    /// and its last frames left, else wake at the earliest deadline.
    fn settle(
        &mut self,
        client: &Conn,
        service: &ServiceSnapshot,
        starved: bool,
        ctx: &mut Ctx<'_>,
    ) -> Flow {
        let mut wire = self.wire.borrow_mut();
        if matches!(self.phase, Phase::Closed) {
            // The last frames (a GOAWAY) leave first, for a while.
            return if wire.has_outbound() && !client.ready.hup {
                Flow::Open(Some(ctx.now + CLOSING))
            } else {
                Flow::Done
            };
        }
        if wire.eof && self.streams.is_empty() {
            return Flow::Done;
        }
        wire.release();
        drop(wire);
        let mut at = match &self.phase {
            Phase::Handshake(_, until) => Some(*until),
            Phase::Open(_) if self.streams.is_empty() => Some(self.idle_deadline(service, ctx)),
            _ => None,
        };
        let mut waiting = None;
        for s in &self.streams {
            if let Some(d) = s.deadline {
                at = Some(at.map_or(d, |a: Instant| a.min(d)));
            }
            if let Some(w) = s.waiting {
                waiting = Some(w);
            }
        }
        match waiting {
            Some(Flow::Queued(_)) => Flow::Queued(at.unwrap_or(ctx.now)),
            _ if starved => Flow::Starved(at),
            Some(Flow::Starved(_)) => Flow::Starved(at),
            _ => Flow::Open(at),
        }
    }
}

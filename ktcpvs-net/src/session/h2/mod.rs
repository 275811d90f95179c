//! The HTTP/2 session: one client connection carrying many streams, each
//! switched on its own to HTTP/1.1 real servers.
//!
//! The frame layer is the engine's own, sans I/O and allocation-free on
//! its path: the session reads the client's bytes into a pooled buffer,
//! takes every whole frame from it ([`recv`]), drives the streams the
//! frames concern ([`stream`]), and writes the frames they and the
//! connection produce straight into a pooled outbound buffer ([`wire`]),
//! sent once the worker's batch of events is handled. Request header
//! blocks are decoded by [`crate::http2::hpack`] (the dynamic table
//! bounded at 4 KiB); responses are encoded without the dynamic table
//! ([`crate::http2::frame`]).
//!
//! ```text
//!  Preface ─preface, SETTINGS─► Open ─GOAWAY sent (drain, idle, error)─► Closed
//!     │ bad preface / timeout     │ streams: open ► (session, response) ► done/reset
//!     └──────────────► closed ◄───┴─ connection error / client gone
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
//! | `recv.rs` | the client's frames: checked, and applied to the connection and its streams |
//! | `wire.rs` | the client's bytes in pooled buffers, and the writer of outbound frames |
//! | `stream.rs` | one stream: request downgraded to HTTP/1.1, its session, the response back |

mod recv;
mod stream;
mod wire;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ktcpvs_core::snapshot::{ServiceSnapshot, TimeoutKind};

use self::stream::{End, Stream};
use self::wire::{Moved, Out, Wire};
use super::{Cause, Ctx, Flow};
use crate::http::Limits;
use crate::http2::downgrade::Field;
use crate::http2::frame::{self, kind, setting, FrameHead, Reason};
use crate::http2::hpack;
use crate::io::buffer::Buffer;
use crate::io::conn::Conn;
use crate::throttle::Throttle;

pub(crate) use crate::http2::frame::PREFACE;

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

/// Most passes of one drive: each pass moves bytes, so a connection that
/// keeps finding work gives the worker back after this many and is driven
/// again on the next loop iteration.
const MAX_PASSES: usize = 64;

/// How long a closed connection's last frames may take to leave.
const CLOSING: Duration = Duration::from_secs(5);

/// The opaque data of the PING that follows a graceful GOAWAY: its
/// acknowledgement tells that the client saw the GOAWAY.
const DRAIN_PING: [u8; 8] = *b"ktcpvs-d";

/// Reports of HTTP/2 connections closed for misbehaving: anyone can cause
/// them, so at most one per ten seconds.
static CALM: Throttle = Throttle::new(Duration::from_secs(10));

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the client's preface, until the deadline.
    Preface(Instant),
    /// The preface came; its SETTINGS frame must follow, by the same
    /// deadline.
    Settings(Instant),
    /// Serving streams.
    Open,
    /// Closed: what waits on the wire is written, then the connection
    /// is closed.
    Closed,
}

/// How far the proxy's GOAWAY went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoAway {
    /// None sent.
    No,
    /// A graceful one (last stream 2³¹ − 1) and a PING: streams the
    /// client sent meanwhile are still taken.
    Announced,
    /// The final one, naming the last stream taken: no new stream.
    Sent,
}

/// Client resets counted over [`RESET_WINDOW`].
#[derive(Debug, Clone, Copy)]
struct Resets {
    since: Instant,
    count: u32,
}

/// What the client announced in its SETTINGS.
#[derive(Debug, Clone, Copy)]
struct PeerSettings {
    /// The send window of each new stream.
    initial_window: u32,
    /// The largest frame it accepts.
    max_frame: u32,
}

/// A header block whose CONTINUATION frames are still coming.
#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    bytes: Vec<u8>,
    frames: u32,
}

/// An HTTP/2 client connection.
pub(crate) struct H2Session {
    wire: Wire,
    phase: Phase,
    /// The open streams and the space their header blocks are decoded in.
    room: Room,
    decoder: hpack::Decoder,
    block: Option<Block>,
    peer: PeerSettings,
    /// What the proxy may still send on the connection.
    send_window: i64,
    /// What the client may still send on the connection.
    recv_window: i64,
    /// Received bytes whose connection-level credit is not yet given back.
    owed: u32,
    /// The highest stream the client opened (taken or refused).
    last_stream: u32,
    go_away: GoAway,
    /// The client sent GOAWAY: it opens no more streams.
    client_gone: bool,
    /// When the connection last had no stream (the idle timeout's start).
    idle_since: Instant,
    resets: Resets,
    /// Empty DATA frames (no END_STREAM) counted over [`RESET_WINDOW`].
    empty_data: Resets,
}

impl std::fmt::Debug for H2Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Session")
            .field("phase", &self.phase)
            .field("streams", &self.room.streams.len())
            .field("go_away", &self.go_away)
            .finish()
    }
}

/// A connection's room for streams: the list of open streams and the
/// space header blocks are decoded in. A connection holds it while it has
/// streams; the worker's spares keep it in between, so neither an idle
/// connection holds it nor a busy one allocates it again for each batch
/// of streams.
#[derive(Default)]
pub(crate) struct Room {
    streams: Vec<Stream>,
    /// Header blocks decoded, field names and values one after another.
    scratch: Vec<u8>,
    /// Where each decoded field lies in `scratch`: (start, name length,
    /// value length).
    spans: Vec<(u32, u32, u32)>,
    /// The allocation of the list of a request's fields, kept empty.
    fields: Vec<Field<'static>>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("streams", &self.streams.capacity())
            .field("scratch", &self.scratch.capacity())
            .finish()
    }
}

impl Room {
    /// Most bytes of decoded header blocks a kept room holds on to.
    const MAX_SCRATCH: usize = 16 * 1024;

    /// Whether the room is worth keeping: it has space, and no more than
    /// a usual header block's (one large block does not stay pinned).
    pub fn worth_keeping(&self) -> bool {
        self.streams.capacity() > 0 && self.scratch.capacity() <= Self::MAX_SCRATCH
    }
}

/// A connection error: GOAWAY with this reason, then the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ConnError(pub Reason);

impl H2Session {
    /// The connection's room for streams, which it has no stream in (the
    /// session is left with none).
    fn lend_room(&mut self) -> Room {
        debug_assert!(self.room.streams.is_empty());
        self.room.scratch.clear();
        self.room.spans.clear();
        std::mem::take(&mut self.room)
    }

    /// Room for streams from the worker's spares, when the session has
    /// none (its first stream, or the first after an idle spell).
    pub(super) fn take_room(&mut self, ctx: &mut Ctx<'_>) {
        if self.room.streams.capacity() > 0 {
            return;
        }
        if let Some(room) = ctx.spares.room() {
            self.room = room;
        }
    }

    /// A session on a connection whose first bytes (the preface, or part
    /// of it) are already in `read`; its SETTINGS and window credit are
    /// written at once.
    pub fn start(read: Option<Buffer>, service: &ServiceSnapshot, ctx: &mut Ctx<'_>) -> H2Session {
        let settings = ctx.snapshot.settings();
        let limits = Limits::from_settings(settings);
        let until = ctx.now + service.timeout(TimeoutKind::Header, settings);
        service.load().h2().add_connection();
        let decoder = hpack::Decoder::new();
        let mut session = H2Session {
            wire: Wire {
                inbound: read,
                ..Wire::default()
            },
            phase: Phase::Preface(until),
            room: Room::default(),
            decoder,
            block: None,
            peer: PeerSettings {
                initial_window: frame::DEFAULT_WINDOW,
                max_frame: frame::DEFAULT_MAX_FRAME_SIZE,
            },
            send_window: i64::from(frame::DEFAULT_WINDOW),
            recv_window: i64::from(CONNECTION_WINDOW),
            owed: 0,
            last_stream: 0,
            go_away: GoAway::No,
            client_gone: false,
            idle_since: ctx.now,
            resets: Resets {
                since: ctx.now,
                count: 0,
            },
            empty_data: Resets {
                since: ctx.now,
                count: 0,
            },
        };
        if session.wire.ready_outbound(ctx.pool) == Moved::Some {
            let header_list = u32::try_from(limits.max_header_size).unwrap_or(u32::MAX);
            let mut payload = [0u8; 18];
            for (i, (id, value)) in [
                (setting::MAX_CONCURRENT_STREAMS, MAX_STREAMS),
                (setting::INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                (setting::MAX_HEADER_LIST_SIZE, header_list),
            ]
            .into_iter()
            .enumerate()
            {
                payload[i * 6..i * 6 + 2].copy_from_slice(&id.to_be_bytes());
                payload[i * 6 + 2..i * 6 + 6].copy_from_slice(&value.to_be_bytes());
            }
            session.control(kind::SETTINGS, 0, 0, &payload);
            let grow = CONNECTION_WINDOW - frame::DEFAULT_WINDOW;
            session.control(kind::WINDOW_UPDATE, 0, 0, &grow.to_be_bytes());
        } else {
            session.phase = Phase::Closed;
        }
        session
    }

    /// Whether a draining engine may close it now: no stream is open and
    /// no graceful GOAWAY is under way (it ends the connection itself once
    /// the client saw the last stream taken, so streams the client sent
    /// meanwhile are never cut).
    pub fn is_idle(&self) -> bool {
        self.room.streams.is_empty()
            && (self.go_away != GoAway::Announced || self.phase == Phase::Closed)
    }

    /// Its streams after the first: exchanges in flight whose responses
    /// can share a write to the client with another's.
    pub fn multiplexed(&self) -> usize {
        self.room.streams.len().saturating_sub(1)
    }

    /// Does all the I/O it can.
    pub fn drive(
        &mut self,
        client: &mut Conn,
        peer: SocketAddr,
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> Flow {
        let limits = Limits::from_settings(ctx.snapshot.settings());
        let mut starved = false;
        for pass in 0..MAX_PASSES {
            let mut moved = false;
            match self.wire.read_client(client, ctx.pool) {
                Ok(Moved::Some) => moved = true,
                Ok(Moved::Nothing) => {}
                Ok(Moved::Starved) => starved = true,
                Err(_) => return Flow::Done,
            }
            if self.wire.ready_outbound(ctx.pool) == Moved::Starved {
                starved = true;
            }
            if ctx.draining && self.go_away == GoAway::No && self.phase == Phase::Open {
                self.announce_go_away();
                moved = true;
            }
            // The cause concerns the first pass; later ones move what is
            // new.
            let (all, backend) = match (pass, ctx.cause) {
                (0, Cause::Other) => (true, None),
                (0, Cause::Backend(id)) => (false, Some(id)),
                _ => (false, None),
            };
            if let Err(ConnError(reason)) = self.receive(client, service, &limits, ctx) {
                self.fail(reason, peer, service);
            }
            moved |= self.drive_streams((all, backend), service, peer, &limits, ctx);
            self.give_credit();
            // Frames are written when the outbound buffer is half full, or
            // once this loop iteration's other events had their say (so
            // several streams' frames leave in one write).
            if ctx.cause == Cause::Deferred || self.wire.outbound_half_full() {
                match self.write_frames(client) {
                    Ok(wrote) => moved |= wrote,
                    Err(()) => return Flow::Done,
                }
            }
            moved |= self.room.streams.iter().any(|s| s.again) && self.phase != Phase::Closed;
            if !moved {
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
        let waiting = self.wire.has_outbound();
        match flow {
            Flow::Open(at) if waiting && !deferred_pass => Flow::Deferred(at),
            Flow::Open(_) | Flow::Done => flow,
            flow => {
                if waiting && self.write_frames(client).is_err() {
                    return Flow::Done;
                }
                self.wire.release();
                flow
            }
        }
    }

    /// Writes the frames that wait, as far as the client takes them:
    /// whether any left; `Err` when the connection failed. Streams that
    /// found no room for their frames are driven again.
    fn write_frames(&mut self, client: &mut Conn) -> Result<bool, ()> {
        match self.wire.write_client(client) {
            Ok(Moved::Some) => {
                for s in &mut self.room.streams {
                    s.again |= std::mem::take(&mut s.blocked);
                }
                Ok(true)
            }
            Ok(_) => Ok(false),
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
        // What a timeout writes (a GOAWAY, resets) needs the buffer.
        self.wire.ready_outbound(ctx.pool);
        match self.phase {
            Phase::Preface(until) | Phase::Settings(until) if ctx.now >= until => {
                return Flow::Done
            }
            Phase::Open
                if self.room.streams.is_empty() && ctx.now >= self.idle_deadline(service, ctx) =>
            {
                self.close_with(Reason::NO_ERROR);
            }
            _ => {}
        }
        let mut i = 0;
        while i < self.room.streams.len() {
            let due = self.room.streams[i].deadline.is_some_and(|d| d <= ctx.now);
            if due {
                if let Err(end) = self.room.streams[i].on_timeout(service, peer, ctx) {
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
        for mut s in self.room.streams.drain(..) {
            s.close(ctx);
        }
        self.phase = Phase::Closed;
        self.wire.inbound = None;
        self.wire.outbound = None;
    }

    /// Writes one of the connection's own frames.
    fn control(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> bool {
        let head = FrameHead {
            len: payload.len() as u32,
            kind,
            flags,
            stream,
        };
        self.wire.control(head, payload)
    }

    /// Writes RST_STREAM on `stream`.
    fn reset_stream(&mut self, stream: u32, reason: Reason) {
        self.control(kind::RST_STREAM, 0, stream, &reason.0.to_be_bytes());
    }

    /// Writes GOAWAY naming the last stream taken.
    fn write_go_away(&mut self, last: u32, reason: Reason) {
        let mut payload = [0u8; 8];
        payload[..4].copy_from_slice(&last.to_be_bytes());
        payload[4..].copy_from_slice(&reason.0.to_be_bytes());
        self.control(kind::GOAWAY, 0, 0, &payload);
    }

    /// The graceful GOAWAY of a drain: streams the client may have sent
    /// meanwhile are still taken until it acknowledges the PING.
    fn announce_go_away(&mut self) {
        self.write_go_away(frame::MAX_WINDOW, Reason::NO_ERROR);
        self.control(kind::PING, 0, 0, &DRAIN_PING);
        self.go_away = GoAway::Announced;
    }

    /// The final GOAWAY: no stream after the last one taken; the
    /// connection closes once the streams in flight are done.
    fn final_go_away(&mut self) {
        if self.go_away != GoAway::Sent {
            self.write_go_away(self.last_stream, Reason::NO_ERROR);
            self.go_away = GoAway::Sent;
        }
    }

    /// GOAWAY with `reason`, every stream dropped, and the close.
    fn close_with(&mut self, reason: Reason) {
        self.write_go_away(self.last_stream, reason);
        self.go_away = GoAway::Sent;
        self.phase = Phase::Closed;
    }

    /// A connection error: counted, logged, and the connection closed
    /// with GOAWAY.
    fn fail(&mut self, reason: Reason, peer: SocketAddr, service: &ServiceSnapshot) {
        service.load().h2().add_error();
        if reason == Reason::ENHANCE_YOUR_CALM {
            if let Some(count) = CALM.admit() {
                log::info!(
                    "{peer}: HTTP/2 connection closed: {reason} ({count} since the last report)"
                );
            }
        } else {
            log::debug!("{peer}: HTTP/2 connection error: {reason}");
        }
        self.close_with(reason);
    }

    /// Drives the streams that are due: every one (`all`), the one whose
    /// backend connection had the event, and those left with work; ended
    /// ones are released.
    fn drive_streams(
        &mut self,
        (all, backend): (bool, Option<usize>),
        service: &ServiceSnapshot,
        peer: SocketAddr,
        limits: &Limits,
        ctx: &mut Ctx<'_>,
    ) -> bool {
        if self.phase == Phase::Closed {
            return false;
        }
        let mut moved = false;
        let mut i = 0;
        while i < self.room.streams.len() {
            if !self.room.streams[i].due(all, backend) {
                i += 1;
                continue;
            }
            let mut out = Out {
                buf: self.wire.outbound.as_mut(),
                conn_window: &mut self.send_window,
                max_frame: self.peer.max_frame,
                scratch: &mut self.room.scratch,
            };
            match self.room.streams[i].drive(service, peer, limits, (ctx, &mut out)) {
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

    /// Gives the client back the window its streams' sessions made room
    /// for: each stream's when it reaches a quarter of the stream window,
    /// the connection's at a quarter of its own.
    fn give_credit(&mut self) {
        if !self.wire.control_room() {
            return;
        }
        for i in 0..self.room.streams.len() {
            let n = self.room.streams[i].credit(STREAM_WINDOW / 4);
            if n > 0 {
                self.owed += n;
                if self.room.streams[i].receiving() {
                    let id = self.room.streams[i].id;
                    self.control(kind::WINDOW_UPDATE, 0, id, &n.to_be_bytes());
                }
            }
        }
        if self.owed >= CONNECTION_WINDOW / 4 || (self.owed > 0 && self.room.streams.is_empty()) {
            let n = std::mem::take(&mut self.owed);
            self.recv_window += i64::from(n);
            self.control(kind::WINDOW_UPDATE, 0, 0, &n.to_be_bytes());
        }
    }

    /// Releases stream `i`, which ended with `end`; client resets are
    /// counted, and past [`MAX_RESETS`] the connection goes away.
    fn finish(&mut self, i: usize, end: End, service: &ServiceSnapshot, ctx: &mut Ctx<'_>) {
        let mut stream = self.room.streams.swap_remove(i);
        log::trace!("HTTP/2 stream {} ended: {end:?}", stream.id);
        stream.close(ctx);
        self.owed += stream.take_owed();
        match end {
            End::Complete if stream.receiving() => {
                // A request body still coming after a whole response is
                // not wanted: the client is told to stop, without error,
                // after the response's last frame (RFC 9113 §8.1).
                self.reset_stream(stream.id, Reason::NO_ERROR);
            }
            End::Complete | End::ResetByClient => {}
            End::Reset(reason) => self.reset_stream(stream.id, reason),
        }
        if let Some(end) = stream.into_end() {
            ctx.spares.keep_end(end);
        }
        if self.room.streams.is_empty() {
            self.idle_since = ctx.now;
            // An idle connection keeps no room for streams (the many
            // connections of a busy site are mostly idle): the worker
            // keeps it for the next connection that opens a stream.
            ctx.spares.keep_room(self.lend_room());
            self.decoder.release_scratch();
        }
        if end != End::ResetByClient {
            return;
        }
        service.load().h2().add_reset();
        if !count(&mut self.resets, ctx.now, MAX_RESETS) || self.phase == Phase::Closed {
            return;
        }
        if let Some(count) = CALM.admit() {
            log::info!(
                "HTTP/2 connection reset more than {MAX_RESETS} streams in {RESET_WINDOW:?}: GOAWAY ENHANCE_YOUR_CALM ({count} since the last report)"
            );
        }
        service.load().h2().add_error();
        for mut s in self.room.streams.drain(..) {
            s.close(ctx);
        }
        self.close_with(Reason::ENHANCE_YOUR_CALM);
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
        let done = self.phase == Phase::Closed
            || (self.go_away == GoAway::Sent || self.client_gone) && self.room.streams.is_empty();
        if done {
            self.phase = Phase::Closed;
            // A connection error leaves streams behind: their sessions
            // end now (a backend connection mid-exchange is closed).
            for mut s in self.room.streams.drain(..) {
                s.close(ctx);
            }
            // The last frames (a GOAWAY) leave first, for a while.
            return if self.wire.has_outbound() && !client.ready.hup {
                Flow::Open(Some(ctx.now + CLOSING))
            } else {
                Flow::Done
            };
        }
        if self.wire.eof && self.room.streams.is_empty() {
            return Flow::Done;
        }
        self.wire.release();
        let mut at = match self.phase {
            Phase::Preface(until) | Phase::Settings(until) => Some(until),
            Phase::Open if self.room.streams.is_empty() => Some(self.idle_deadline(service, ctx)),
            _ => None,
        };
        let mut waiting = None;
        for s in &self.room.streams {
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

/// Counts one event in `counter` (restarted every [`RESET_WINDOW`]):
/// whether the count passed `max`.
fn count(counter: &mut Resets, now: Instant, max: u32) -> bool {
    if now.duration_since(counter.since) > RESET_WINDOW {
        *counter = Resets {
            since: now,
            count: 0,
        };
    }
    counter.count += 1;
    counter.count > max
}

//! One HTTP/2 stream: its header list checked and written as an HTTP/1.1
//! request into a [`MemoryEnd`], an [`HttpSession`] that switches it like
//! any HTTP/1.1 request (rules, scheduler, pooled backend connections,
//! retries, error pages, timeouts, access log), and the HTTP/1.1 response
//! that session writes turned back into HEADERS and DATA frames.
//!
//! ```text
//!  request:  HEADERS ─downgrade─► memory end ◄─DATA (Content-Length
//!                                     │          checked, or chunked)
//!                               HttpSession ─► real server
//!  response: HEADERS/DATA ◄─split, dechunk── memory end
//! ```
//!
//! Each way is bounded: request DATA is bounded by the stream's receive
//! window, whose credit goes back to the client only while the session
//! keeps up (less than [`INBOUND_LIMIT`] unread); response bytes by the
//! memory end's limit and the client's window. A client that stops
//! reading stalls its own session, which its own timeouts end.

use std::io::Write as _;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::Instant;

use ktcpvs_core::snapshot::{ServiceSnapshot, TimeoutKind};

use super::wire::Out;
use crate::http::{parse_response_uninit, split_own_response_head, Framing, Limits, Method};
use crate::http2::dechunk::Dechunker;
use crate::http2::downgrade::{downgrade, Body, DowngradeError, Field};
use crate::http2::frame::{self, flag, Reason};
use crate::io::conn::Conn;
use crate::io::memory::{FieldSpan, MemoryEnd};
use crate::session::http::{HttpFlow, HttpSession};
use crate::session::{Ctx, Flow};

/// Request bytes a stream's end may hold unread before the stream's
/// window credit stops going back to the client.
pub(super) const INBOUND_LIMIT: usize = 64 * 1024;

/// Most rounds of one stream's drive (session, then response out) while
/// each moves something.
const MAX_ROUNDS: usize = 8;

/// Most header fields of one response head handled.
const FIELDS: usize = 128;

/// Whether a response field describes an HTTP/1.1 connection and so is
/// never sent in an HTTP/2 response (RFC 9113 §8.2.2): `Connection`,
/// `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`, `TE`.
/// Told apart by length first: one comparison at most for most fields.
fn is_connection_specific(name: &[u8]) -> bool {
    let is = |lit: &str| name.eq_ignore_ascii_case(lit.as_bytes());
    match name.len() {
        2 => is("te"),
        7 => is("upgrade"),
        10 => is("connection") || is("keep-alive"),
        16 => is("proxy-connection"),
        17 => is("transfer-encoding"),
        _ => false,
    }
}

/// How the request body is written to the session.
#[derive(Debug, Clone, Copy)]
enum UpFraming {
    /// `Content-Length` was declared: DATA must add up to it.
    Length { declared: u64, received: u64 },
    /// No length: each DATA frame becomes a chunk.
    Chunked,
}

/// The request side.
#[derive(Debug, Clone, Copy)]
enum Up {
    /// DATA frames still come.
    Body(UpFraming),
    /// The client ended the stream.
    Done,
}

/// How the response body is delimited in what the session wrote.
#[derive(Debug, Clone, Copy)]
enum DownBody {
    /// This many bytes are left.
    Length(u64),
    /// Chunked: the decoder's place.
    Chunked(Dechunker),
    /// Until the session shuts its write side.
    Close,
}

/// The response side.
#[derive(Debug, Clone, Copy)]
enum Down {
    /// Waiting for the response head the session writes.
    Head,
    /// Sending the body.
    Body(DownBody),
    /// The response ended (END_STREAM sent).
    Done,
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// Its response was sent whole.
    Complete,
    /// The client reset it.
    ResetByClient,
    /// The proxy resets it with this reason (the session writes the
    /// RST_STREAM).
    Reset(Reason),
}

/// What the connection knows that each of its streams' sessions need.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin<'a> {
    /// Whether the connection runs TLS.
    pub tls: bool,
    /// The server name of its TLS handshake.
    pub server_name: Option<&'a str>,
}

/// Why a stream's header list was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream refused: {0}")]
pub(super) struct Refused(#[source] pub DowngradeError);

/// One stream.
pub(super) struct Stream {
    /// The stream's identifier.
    pub id: u32,
    client: Conn,
    /// `None` once the session closed (what it wrote may still be sent).
    http: Option<Box<HttpSession>>,
    up: Up,
    down: Down,
    method: Method,
    /// When the session wants to be woken.
    pub deadline: Option<Instant>,
    /// The session waits for a buffer, or in its service's queue.
    pub waiting: Option<Flow>,
    /// To be driven on the next pass whatever its cause: opened and not
    /// driven yet, its window grew, or its last drive used all its rounds
    /// or found no room for its frames.
    pub again: bool,
    /// Its frames found no room in the outbound buffer: it is driven
    /// again once frames were written to the client.
    pub blocked: bool,
    /// What the stream may still send (the client's window for it).
    pub send_window: i64,
    /// What the client may still send on it.
    recv_window: i64,
    /// Request bytes received and not yet credited back to the client.
    owed: u32,
}

impl Stream {
    /// Stream `id` for the header list `fields` (`end_stream`: the
    /// HEADERS frame ended it), written as HTTP/1.1 for a new session in a
    /// memory end from the worker's spares. `Err` when the header list is
    /// refused: nothing of it goes further.
    pub fn open(
        id: u32,
        (fields, end_stream): (&[Field<'_>], bool),
        origin: Origin<'_>,
        (send_window, recv_window): (u32, u32),
        ctx: &mut Ctx<'_>,
    ) -> Result<Stream, Refused> {
        let mut end = ctx.spares.end(origin.tls, origin.server_name);
        let body = if end_stream {
            Body::None
        } else {
            Body::Unknown
        };
        let downgraded = match downgrade(fields, body, end.inbound_mut()) {
            Ok(d) => d,
            Err(e) => {
                ctx.spares.keep_end(end);
                return Err(Refused(e));
            }
        };
        let up = if end_stream {
            Up::Done
        } else if downgraded.chunked {
            Up::Body(UpFraming::Chunked)
        } else {
            Up::Body(UpFraming::Length {
                declared: downgraded.declared_length.unwrap_or(0),
                received: 0,
            })
        };
        Ok(Stream {
            id,
            client: Conn::memory(end),
            http: Some(ctx.spares.start(ctx.now)),
            up,
            down: Down::Head,
            method: downgraded.method,
            deadline: None,
            waiting: None,
            again: true,
            blocked: false,
            send_window: i64::from(send_window),
            recv_window: i64::from(recv_window),
            owed: 0,
        })
    }

    /// Whether the stream is to be driven now: it was left with work, or
    /// the event was its backend connection's (`all`: whatever the cause,
    /// every stream).
    pub fn due(&self, all: bool, backend: Option<usize>) -> bool {
        let ours = backend.is_some() && self.http.as_ref().and_then(|h| h.backend()) == backend;
        self.again || all || ours
    }

    /// Its memory end, for the next stream of the connection.
    pub fn into_end(self) -> Option<Box<MemoryEnd>> {
        self.client.into_memory_end()
    }

    /// Whether the client may still send on it.
    pub fn receiving(&self) -> bool {
        matches!(self.up, Up::Body(_))
    }

    /// Whether response bytes wait for window.
    pub fn sending_body(&self) -> bool {
        matches!(self.down, Down::Body(_))
    }

    /// Takes a DATA frame of `len` flow-controlled bytes carrying `data`
    /// (`len` counts the padding too): `Err` with the reason to reset the
    /// stream with.
    pub fn receive_data(&mut self, len: u32, data: &[u8], end_stream: bool) -> Result<(), Reason> {
        // Whatever becomes of the frame, its bytes are credited back to
        // the connection (padding with the data it came with).
        self.owed += len;
        let Up::Body(framing) = &mut self.up else {
            return Err(Reason::STREAM_CLOSED);
        };
        if i64::from(len) > self.recv_window {
            return Err(Reason::FLOW_CONTROL_ERROR);
        }
        self.recv_window -= i64::from(len);
        let Some(end) = self.client.memory_end() else {
            return Err(Reason::INTERNAL_ERROR);
        };
        let n = data.len();
        match framing {
            UpFraming::Length { declared, received } => {
                *received += n as u64;
                if *received > *declared {
                    return Err(Reason::PROTOCOL_ERROR);
                }
                end.push_inbound(data);
            }
            UpFraming::Chunked if n > 0 => {
                let out = end.inbound_mut();
                let _ = write!(out, "{n:x}\r\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            UpFraming::Chunked => {}
        }
        self.again = true;
        if end_stream {
            return self.receive_end();
        }
        Ok(())
    }

    /// The client ended the stream (END_STREAM on DATA or on trailers,
    /// which are not forwarded).
    pub fn receive_end(&mut self) -> Result<(), Reason> {
        let Up::Body(framing) = self.up else {
            return Err(Reason::STREAM_CLOSED);
        };
        let Some(end) = self.client.memory_end() else {
            return Err(Reason::INTERNAL_ERROR);
        };
        match framing {
            UpFraming::Length { declared, received } if declared != received => {
                return Err(Reason::PROTOCOL_ERROR);
            }
            UpFraming::Length { .. } => {}
            UpFraming::Chunked => end.push_inbound(b"0\r\n\r\n"),
        }
        self.up = Up::Done;
        self.again = true;
        Ok(())
    }

    /// Adds `increment` to the stream's send window: `Err` when it would
    /// pass 2³¹ − 1.
    pub fn grow_window(&mut self, increment: i64) -> Result<(), Reason> {
        self.send_window += increment;
        if self.send_window > i64::from(frame::MAX_WINDOW) {
            return Err(Reason::FLOW_CONTROL_ERROR);
        }
        self.again = true;
        Ok(())
    }

    /// The credit to give back to the client for request bytes the
    /// session took (none while it lags [`INBOUND_LIMIT`] behind), once it
    /// reaches `threshold` or the stream no longer receives.
    pub fn credit(&mut self, threshold: u32) -> u32 {
        if self.owed == 0 {
            return 0;
        }
        let unread = self.client.memory_end().map_or(0, |e| e.unread());
        if unread >= INBOUND_LIMIT || (self.owed < threshold && self.receiving()) {
            return 0;
        }
        let n = self.owed;
        self.owed = 0;
        self.recv_window += i64::from(n);
        n
    }

    /// Received bytes never credited back (the stream is closing): they
    /// still count against the connection's window.
    pub fn take_owed(&mut self) -> u32 {
        std::mem::take(&mut self.owed)
    }

    /// Moves the stream on: the session driven, the response out.
    /// `Ok(true)` when something moved; `Err` when it ended.
    pub fn drive(
        &mut self,
        service: &ServiceSnapshot,
        peer: SocketAddr,
        limits: &Limits,
        (ctx, out): (&mut Ctx<'_>, &mut Out<'_>),
    ) -> Result<bool, End> {
        self.again = false;
        let mut moved = false;
        for round_no in 1..=MAX_ROUNDS {
            let mut round = false;
            let before = self.levels();
            if let Some(http) = self.http.as_mut() {
                self.client.refresh();
                let flow = http.drive(&mut self.client, peer, service, ctx);
                // The session taking request bytes makes room for more
                // DATA, and its response bytes are for the client: either
                // is progress. Neither alone is a reason to drive the
                // session again at once: the DATA comes with a later
                // frame, and the response bytes are pumped below.
                moved |= self.levels() != before;
                round |= self.settle(flow, service, peer, ctx)?;
            }
            // Response bytes sent make room the session may be waiting
            // for: the round runs again.
            round |= self.pump_down(limits, out)?;
            if matches!(self.down, Down::Done) {
                return Err(End::Complete);
            }
            moved |= round;
            if !round {
                break;
            }
            // Still moving after the last round allowed: the next pass
            // drives it again.
            self.again |= round_no == MAX_ROUNDS;
        }
        if self.http.is_none() {
            // What is left waits for the client's window, no longer than
            // the service's read timeout without progress.
            if moved || self.deadline.is_none() {
                self.deadline =
                    Some(ctx.now + service.timeout(TimeoutKind::Read, ctx.snapshot.settings()));
            }
        }
        Ok(moved)
    }

    /// The stream's deadline passed: its session's timeout runs.
    pub fn on_timeout(
        &mut self,
        service: &ServiceSnapshot,
        peer: SocketAddr,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), End> {
        self.deadline = None;
        match self.http.as_mut() {
            Some(http) => {
                self.client.refresh();
                let flow = http.on_timeout(&mut self.client, peer, service, ctx);
                self.settle(flow, service, peer, ctx)?;
                self.again = true;
            }
            // The rest of a response waited too long for the client's
            // window.
            None => return Err(End::Reset(Reason::CANCEL)),
        }
        Ok(())
    }

    /// Releases what the stream holds: its session (a backend connection
    /// in the middle of an exchange is closed, never pooled).
    pub fn close(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(mut http) = self.http.take() {
            http.end_of_stream(ctx);
            ctx.spares.keep(http);
        }
        // Nothing more will be written: what is there is the whole
        // response (a response cut short resets the stream).
        if let Some(end) = self.client.memory_end() {
            end.write_shut = true;
        }
    }

    /// How many request bytes wait unread and response bytes unsent in
    /// the session's end.
    fn levels(&mut self) -> (usize, usize) {
        self.client
            .memory_end()
            .map_or((0, 0), |end| (end.unread(), end.outbound.len()))
    }

    /// Records what driving the session asked for.
    fn settle(
        &mut self,
        flow: HttpFlow,
        service: &ServiceSnapshot,
        peer: SocketAddr,
        ctx: &mut Ctx<'_>,
    ) -> Result<bool, End> {
        self.waiting = None;
        match flow {
            HttpFlow::Flow(Flow::Open(at) | Flow::Deferred(at)) => self.deadline = at,
            HttpFlow::Flow(f @ Flow::Starved(at)) => {
                self.deadline = at;
                self.waiting = Some(f);
            }
            HttpFlow::Flow(f @ Flow::Queued(at)) => {
                self.deadline = Some(at);
                self.waiting = Some(f);
            }
            HttpFlow::Flow(Flow::Done) => {
                self.deadline = None;
                self.close(ctx);
                return Ok(true);
            }
            // No request of a stream asks for an upgrade (the downgrade
            // refuses `upgrade`), but a request no server takes goes to
            // the service's redirect address as a byte tunnel, which a
            // stream cannot carry: it is reset.
            HttpFlow::Upgrade(tunnel) => {
                tunnel.close(peer, service, ctx);
                self.close(ctx);
                return Err(End::Reset(Reason::REFUSED_STREAM));
            }
            HttpFlow::H2(_) => {
                self.close(ctx);
                return Err(End::Reset(Reason::INTERNAL_ERROR));
            }
        }
        Ok(false)
    }

    /// Sends what the session wrote: the head once whole, then the body
    /// as the windows and the outbound buffer allow.
    fn pump_down(&mut self, limits: &Limits, out: &mut Out<'_>) -> Result<bool, End> {
        let mut moved = false;
        loop {
            let step = match self.down {
                Down::Head => self.send_head(limits, out),
                Down::Body(_) => self.send_body(out),
                Down::Done => return Ok(moved),
            };
            match step {
                Ok(true) => moved = true,
                Ok(false) => return Ok(moved),
                Err(reason) => return Err(End::Reset(reason)),
            }
        }
    }

    /// Sends the response head the session wrote as HEADERS (and
    /// CONTINUATION); `Ok(false)` while it is not whole or finds no room.
    fn send_head(&mut self, limits: &Limits, out: &mut Out<'_>) -> Result<bool, Reason> {
        let (id, method) = (self.id, self.method);
        let Some(end) = self.client.memory_end() else {
            return Err(Reason::INTERNAL_ERROR);
        };
        let mut slots = [const { MaybeUninit::uninit() }; FIELDS];
        let Some(head) = read_head(end, &mut slots, method, limits)? else {
            return Ok(false);
        };
        if head.status == 101 {
            return Err(Reason::INTERNAL_ERROR);
        }
        if head.status < 200 {
            // 1xx heads are not relayed: the final response follows.
            end.outbound.drain(..head.len);
            return Ok(true);
        }
        let body = match head.framing {
            Framing::None | Framing::Length(0) => None,
            Framing::Length(n) => Some(DownBody::Length(n)),
            Framing::Chunked => Some(DownBody::Chunked(Dechunker::new())),
            Framing::CloseDelimited => Some(DownBody::Close),
        };
        let block = out.scratch();
        frame::encode_status(head.status, block);
        if !head.fields.encode(block) {
            return Err(Reason::INTERNAL_ERROR);
        }
        let flags = if body.is_none() { flag::END_STREAM } else { 0 };
        match out.headers(id, flags) {
            Some(true) => {}
            Some(false) => {
                self.blocked = true;
                return Ok(false);
            }
            None => return Err(Reason::INTERNAL_ERROR),
        }
        let len = head.len;
        end.outbound.drain(..len);
        end.response_framing = None;
        end.forwarded.clear();
        self.down = match body {
            None => Down::Done,
            Some(body) => Down::Body(body),
        };
        Ok(true)
    }

    /// Sends as much of the body as the windows and the outbound buffer
    /// allow; `Ok(false)` when nothing could go.
    fn send_body(&mut self, out: &mut Out<'_>) -> Result<bool, Reason> {
        let id = self.id;
        let Some(end) = self.client.memory_end() else {
            return Err(Reason::INTERNAL_ERROR);
        };
        let Down::Body(body) = &mut self.down else {
            return Ok(false);
        };
        if let DownBody::Length(left) = body {
            if end.write_shut && (end.outbound.len() as u64) < *left {
                // The session ended before the whole body: it was cut
                // (a server that left, a timeout), and the client is told.
                return Err(Reason::INTERNAL_ERROR);
            }
        }
        let at_end = matches!(body, DownBody::Close) && end.write_shut;
        if end.outbound.is_empty() && !at_end {
            // A body the session left unfinished: the response was cut.
            return if end.write_shut {
                Err(Reason::INTERNAL_ERROR)
            } else {
                Ok(false)
            };
        }
        let cap = out.data_room(self.send_window);
        if cap == 0 && !end.outbound.is_empty() {
            // Waiting for the client's window (its WINDOW_UPDATE drives
            // the stream), or for room (the next write does).
            self.blocked |= !out.has_room();
            return Ok(false);
        }
        let (used, sent, eos) = match body {
            DownBody::Length(left) => {
                let n = end
                    .outbound
                    .len()
                    .min(cap)
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                let eos = *left == 0;
                if !out.data(id, &end.outbound[..n], eos) {
                    return Err(Reason::INTERNAL_ERROR);
                }
                (n, n, eos)
            }
            DownBody::Chunked(d) => {
                let payload = out.scratch();
                let used = d
                    .decode(&end.outbound, payload, cap)
                    .map_err(|_| Reason::INTERNAL_ERROR)?;
                let (n, eos) = (payload.len(), d.is_done());
                if n == 0 && !eos {
                    end.outbound.drain(..used);
                    return Ok(used > 0);
                }
                if !out.scratch_data(id, eos) {
                    return Err(Reason::INTERNAL_ERROR);
                }
                (used, n, eos)
            }
            DownBody::Close => {
                let n = end.outbound.len().min(cap);
                let eos = end.write_shut && n == end.outbound.len();
                if !out.data(id, &end.outbound[..n], eos) {
                    return Err(Reason::INTERNAL_ERROR);
                }
                (n, n, eos)
            }
        };
        end.outbound.drain(..used);
        self.send_window -= sent as i64;
        if eos {
            self.down = Down::Done;
        }
        Ok(true)
    }
}

/// A whole response head the session wrote.
struct WrittenHead<'a> {
    status: u16,
    /// Its length in the end's outbound bytes.
    len: usize,
    /// Its body's framing (meaningless for a 1xx head).
    framing: Framing,
    fields: HeadFields<'a>,
}

/// A response head's fields, as the HTTP/2 side found them.
enum HeadFields<'a> {
    /// Split from the head.
    Split(&'a [httparse::Header<'a>]),
    /// Noted by the session that forwarded the head (see
    /// [`crate::io::memory::ForwardedHead`]): ranges of `head`.
    Noted {
        head: &'a [u8],
        spans: &'a [FieldSpan],
    },
}

impl HeadFields<'_> {
    /// Encodes every field but the connection-specific ones into `block`
    /// (HPACK); `false` if a noted range lies outside the head.
    fn encode(&self, block: &mut Vec<u8>) -> bool {
        let mut put = |name: &[u8], value: &[u8]| {
            if !is_connection_specific(name) {
                frame::encode_field(name, value, block);
            }
        };
        match self {
            HeadFields::Split(fields) => {
                for field in *fields {
                    put(field.name.as_bytes(), field.value);
                }
            }
            HeadFields::Noted { head, spans } => {
                let range = |(start, end): (u32, u32)| head.get(start as usize..end as usize);
                for span in *spans {
                    let (Some(name), Some(value)) = (range(span.name), range(span.value)) else {
                        return false;
                    };
                    put(name, value);
                }
            }
        }
        true
    }
}

/// The response head at the front of `end`'s outbound bytes, once whole.
/// A head the session forwarded from a server comes with the framing the
/// session decided and, when it went unchanged, with its fields noted;
/// otherwise it is only split into fields (it passed the full checks when
/// it arrived). A head the session wrote itself gets the full parse.
fn read_head<'a>(
    end: &'a MemoryEnd,
    slots: &'a mut [MaybeUninit<httparse::Header<'a>>],
    method: Method,
    limits: &Limits,
) -> Result<Option<WrittenHead<'a>>, Reason> {
    let head = match (end.response_framing, end.forwarded.noted) {
        (Some(framing), Some((status, len))) => end.outbound.get(..len).map(|head| WrittenHead {
            status,
            len,
            framing,
            fields: HeadFields::Noted {
                head,
                spans: &end.forwarded.fields,
            },
        }),
        (Some(framing), None) => split_own_response_head(&end.outbound, slots)
            .map_err(|_| Reason::INTERNAL_ERROR)?
            .map(|own| WrittenHead {
                status: own.status,
                len: own.head_len,
                framing,
                fields: HeadFields::Split(own.headers),
            }),
        (None, _) => parse_response_uninit(&end.outbound, slots, method, limits)
            .map_err(|_| Reason::INTERNAL_ERROR)?
            .map(|(info, head)| WrittenHead {
                status: info.status,
                len: info.head_len,
                framing: info.framing,
                fields: HeadFields::Split(head.headers),
            }),
    };
    if head.is_none() && end.write_shut {
        // The session ended without a whole head.
        return Err(Reason::INTERNAL_ERROR);
    }
    Ok(head)
}

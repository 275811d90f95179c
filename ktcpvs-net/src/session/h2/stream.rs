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
//!  response: HEADERS/DATA ◄─parse, dechunk── memory end
//! ```
//!
//! Each way is bounded (the memory end's limits, the stream's flow-control
//! window): a client that stops reading stalls its own session, which its
//! own timeouts end; nothing grows.

use std::io::Write as _;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use ktcpvs_core::snapshot::{ServiceSnapshot, TimeoutKind};

use super::wire::WakeFlag;
use crate::http::{parse_response_uninit, split_own_response_head, Framing, Limits, Method};
use crate::http2::dechunk::Dechunker;
use crate::http2::downgrade::{downgrade, Body, Field};
use crate::io::conn::Conn;
use crate::io::memory::MemoryEnd;
use crate::session::http::{HttpFlow, HttpSession};
use crate::session::{Ctx, Flow};

/// Most request bytes a stream's end holds unread before the stream stops
/// taking DATA (and so stops opening the client's window).
const INBOUND_LIMIT: usize = 64 * 1024;

/// Most rounds of one stream's drive (request in, session, response out)
/// while each moves something.
const MAX_ROUNDS: usize = 8;

/// Most header fields of one request or response head handled.
const FIELDS: usize = 128;

/// Response fields that describe an HTTP/1.1 connection, never sent in an
/// HTTP/2 response (RFC 9113 §8.2.2).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// How the request body is written to the session.
#[derive(Debug, Clone, Copy)]
enum UpFraming {
    /// `Content-Length` was declared: DATA must add up to it.
    Length { declared: u64, received: u64 },
    /// No length: each DATA frame becomes a chunk.
    Chunked,
}

/// The request side.
enum Up {
    /// DATA frames still come.
    Body {
        recv: RecvStream,
        framing: UpFraming,
    },
    /// The whole request was written.
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
enum Down {
    /// Waiting for the response head the session writes.
    Head(SendResponse<Bytes>),
    /// Sending the body.
    Body {
        send: SendStream<Bytes>,
        body: DownBody,
    },
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
    /// The proxy reset it (with the reason, already sent).
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

/// One stream.
pub(super) struct Stream {
    /// The stream's identifier (for logs).
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
    /// Set when `h2` has news for the stream (its waker was woken).
    woken: Arc<WakeFlag>,
    /// The waker the stream's `h2` handles are polled with.
    waker: Waker,
    /// To be driven on the next pass whatever its cause: opened and not
    /// driven yet, or its last drive used all its rounds (its sockets may
    /// still hold work that no new event will announce).
    again: bool,
}

/// Why a stream's header list was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream refused: {0}")]
pub(super) struct Refused(#[source] pub crate::http2::downgrade::DowngradeError);

impl Stream {
    /// A stream for `request`: its head written as HTTP/1.1 for a new
    /// session. `Err` when the header list is refused: the stream was
    /// reset (PROTOCOL_ERROR) and nothing of it goes further.
    pub fn open(
        request: http::Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
        origin: Origin<'_>,
        ctx: &mut Ctx<'_>,
    ) -> Result<Stream, Refused> {
        let id = respond.stream_id().as_u32();
        let (waker, woken) = WakeFlag::waker();
        let (parts, recv) = request.into_parts();
        let mut end = MemoryEnd::new(origin.tls, origin.server_name);
        let body = if recv.is_end_stream() {
            Body::None
        } else {
            Body::Unknown
        };
        let written = write_request(&parts, body, origin.tls, end.inbound_mut());
        let downgraded = match written {
            Ok(d) => d,
            Err(e) => {
                respond.send_reset(Reason::PROTOCOL_ERROR);
                return Err(Refused(e));
            }
        };
        let up = match body {
            Body::None => Up::Done,
            _ => Up::Body {
                recv,
                framing: if downgraded.chunked {
                    UpFraming::Chunked
                } else {
                    UpFraming::Length {
                        declared: downgraded.declared_length.unwrap_or(0),
                        received: 0,
                    }
                },
            },
        };
        Ok(Stream {
            id,
            client: Conn::memory(end),
            http: Some(ctx.spares.start(ctx.now)),
            up,
            down: Down::Head(respond),
            method: Method::from_token(parts.method.as_str()),
            deadline: None,
            waiting: None,
            woken,
            waker,
            again: true,
        })
    }

    /// Moves the stream on: request body in, the session driven, the
    /// response out. `Ok(true)` when something moved; `Err` when it ended.
    pub fn drive(
        &mut self,
        service: &ServiceSnapshot,
        peer: SocketAddr,
        limits: &Limits,
        ctx: &mut Ctx<'_>,
    ) -> Result<bool, End> {
        self.again = false;
        let waker = self.waker.clone();
        let mut cx = Context::from_waker(&waker);
        let cx = &mut cx;
        if self.client_reset(cx) {
            return Err(End::ResetByClient);
        }
        let mut moved = false;
        for round_no in 1..=MAX_ROUNDS {
            let mut round = self.pump_up(cx)?;
            let before = self.levels();
            if let Some(http) = self.http.as_mut() {
                self.client.refresh();
                let flow = http.drive(&mut self.client, peer, service, ctx);
                // The session taking request bytes makes room for more
                // DATA, and its response bytes are for the client: either
                // is progress, and the round runs again.
                round |= self.levels() != before;
                round |= self.settle(flow, service, peer, ctx)?;
            }
            round |= self.pump_down(cx, limits)?;
            if matches!(self.down, Down::Done) {
                return Err(End::Complete);
            }
            moved |= round;
            if !round {
                break;
            }
            // Still moving after the last round allowed: the next pass
            // drives it again.
            self.again = round_no == MAX_ROUNDS;
        }
        if self.http.is_none() {
            // What is left waits for the client's window, no longer than
            // the service's read timeout without progress.
            if moved || self.deadline.is_none() {
                let settings = ctx.snapshot;
                self.deadline =
                    Some(ctx.now + service.timeout(TimeoutKind::Read, settings.settings()));
            }
        }
        Ok(moved)
    }

    /// Whether the stream is to be driven now: it is new or was left with
    /// work, `h2` has news for it, or the event was its backend
    /// connection's (`all`: whatever the cause, every stream).
    pub fn due(&mut self, all: bool, backend: Option<usize>) -> bool {
        let woken = self.woken.take();
        let ours = backend.is_some() && self.http.as_ref().and_then(|h| h.backend()) == backend;
        self.again || woken || all || ours
    }

    /// Whether the next pass must drive the stream whatever its cause: it
    /// was left with work, or `h2` has news for it.
    pub fn needs_drive(&self) -> bool {
        self.again || self.woken.is_set()
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
            }
            // The rest of a response waited too long for the client's
            // window.
            None => return Err(self.reset(Reason::CANCEL)),
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

    /// Resets the stream with `reason`.
    pub fn reset(&mut self, reason: Reason) -> End {
        match &mut self.down {
            Down::Head(respond) => respond.send_reset(reason),
            Down::Body { send, .. } => send.send_reset(reason),
            Down::Done => {}
        }
        End::Reset(reason)
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
                return Err(self.reset(Reason::REFUSED_STREAM));
            }
            HttpFlow::H2(_) => {
                self.close(ctx);
                return Err(self.reset(Reason::INTERNAL_ERROR));
            }
        }
        Ok(false)
    }

    /// Whether the client reset the stream.
    fn client_reset(&mut self, cx: &mut Context<'_>) -> bool {
        let polled = match &mut self.down {
            Down::Head(respond) => respond.poll_reset(cx),
            Down::Body { send, .. } => send.poll_reset(cx),
            Down::Done => return false,
        };
        matches!(polled, Poll::Ready(_))
    }

    /// Moves request DATA into the session's end while it has room.
    fn pump_up(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
        let mut moved = false;
        loop {
            let Up::Body { recv, framing } = &mut self.up else {
                return Ok(moved);
            };
            let Some(end) = self.client.memory_end() else {
                return Ok(moved);
            };
            if end.unread() >= INBOUND_LIMIT {
                return Ok(moved);
            }
            match recv.poll_data(cx) {
                Poll::Pending => return Ok(moved),
                Poll::Ready(Some(Ok(data))) => {
                    let n = data.len();
                    match framing {
                        UpFraming::Length { declared, received } => {
                            *received += n as u64;
                            if *received > *declared {
                                return Err(self.reset(Reason::PROTOCOL_ERROR));
                            }
                            end.push_inbound(&data);
                        }
                        UpFraming::Chunked if n > 0 => {
                            let out = end.inbound_mut();
                            let _ = write!(out, "{n:x}\r\n");
                            out.extend_from_slice(&data);
                            out.extend_from_slice(b"\r\n");
                        }
                        UpFraming::Chunked => {}
                    }
                    let _ = recv.flow_control().release_capacity(n);
                    moved = true;
                }
                Poll::Ready(None) => {
                    match *framing {
                        UpFraming::Length { declared, received } if declared != received => {
                            return Err(self.reset(Reason::PROTOCOL_ERROR));
                        }
                        UpFraming::Length { .. } => {}
                        UpFraming::Chunked => end.push_inbound(b"0\r\n\r\n"),
                    }
                    self.up = Up::Done;
                    return Ok(true);
                }
                Poll::Ready(Some(Err(e))) => {
                    return Err(if e.is_reset() && e.is_remote() {
                        End::ResetByClient
                    } else {
                        self.reset(Reason::PROTOCOL_ERROR)
                    });
                }
            }
        }
    }

    /// Sends what the session wrote: the head once whole, then the body
    /// as the stream's window allows.
    fn pump_down(&mut self, cx: &mut Context<'_>, limits: &Limits) -> Result<bool, End> {
        let mut moved = false;
        loop {
            let step = match &mut self.down {
                Down::Head(_) => self.send_head(limits),
                Down::Body { .. } => self.send_body(cx),
                Down::Done => return Ok(moved),
            };
            match step {
                Ok(true) => moved = true,
                Ok(false) => return Ok(moved),
                Err(reason) => return Err(self.reset(reason)),
            }
        }
    }

    /// Parses the response head the session wrote and sends it as
    /// HEADERS; `Ok(false)` while it is not whole.
    fn send_head(&mut self, limits: &Limits) -> Result<bool, Reason> {
        let method = self.method;
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
        let response = response_of(&head, &end.outbound)?;
        let body = match head.framing {
            Framing::None | Framing::Length(0) => None,
            Framing::Length(n) => Some(DownBody::Length(n)),
            Framing::Chunked => Some(DownBody::Chunked(Dechunker::new())),
            Framing::CloseDelimited => Some(DownBody::Close),
        };
        end.outbound.drain(..head.len);
        end.response_framing = None;
        let Down::Head(respond) = &mut self.down else {
            return Err(Reason::INTERNAL_ERROR);
        };
        let send = respond
            .send_response(response, body.is_none())
            .map_err(|_| Reason::INTERNAL_ERROR)?;
        // A request body still coming after a whole response is not
        // wanted: once the stream is dropped, `h2` tells the client to
        // stop sending it, without error and after the response's last
        // frame (RST_STREAM NO_ERROR, RFC 9113 §8.1).
        self.down = match body {
            None => Down::Done,
            Some(body) => Down::Body { send, body },
        };
        Ok(true)
    }

    /// Sends as much of the body as the window allows; `Ok(false)` when
    /// nothing could go.
    fn send_body(&mut self, cx: &mut Context<'_>) -> Result<bool, Reason> {
        let Some(end) = self.client.memory_end() else {
            return Err(Reason::INTERNAL_ERROR);
        };
        let Down::Body { send, body } = &mut self.down else {
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
        let mut cap = 0;
        if !end.outbound.is_empty() {
            send.reserve_capacity(end.outbound.len());
            cap = send.capacity();
            if cap == 0 {
                match send.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(n))) => cap = n,
                    Poll::Ready(Some(Err(_)) | None) => return Err(Reason::CANCEL),
                    Poll::Pending => return Ok(false),
                }
            }
            if cap == 0 && !at_end {
                return Ok(false);
            }
        }
        let (payload, used, eos) = match body {
            DownBody::Length(left) => {
                let n = end
                    .outbound
                    .len()
                    .min(cap)
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                (end.outbound[..n].to_vec(), n, *left == 0)
            }
            DownBody::Chunked(d) => {
                let mut out = Vec::with_capacity(cap.min(end.outbound.len()));
                let used = d
                    .decode(&end.outbound, &mut out, cap)
                    .map_err(|_| Reason::INTERNAL_ERROR)?;
                (out, used, d.is_done())
            }
            DownBody::Close => {
                let n = end.outbound.len().min(cap);
                (
                    end.outbound[..n].to_vec(),
                    n,
                    end.write_shut && n == end.outbound.len(),
                )
            }
        };
        end.outbound.drain(..used);
        if payload.is_empty() && !eos {
            return Ok(used > 0);
        }
        send.send_data(Bytes::from(payload), eos)
            .map_err(|_| Reason::INTERNAL_ERROR)?;
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
    fields: &'a [httparse::Header<'a>],
}

/// The response head at the front of `end`'s outbound bytes, once whole.
/// A head the session forwarded from a server comes with the framing the
/// session decided, and is only split into fields (it passed the full
/// checks when it arrived); a head the session wrote itself gets the full
/// parse.
fn read_head<'a>(
    end: &'a MemoryEnd,
    slots: &'a mut [MaybeUninit<httparse::Header<'a>>],
    method: Method,
    limits: &Limits,
) -> Result<Option<WrittenHead<'a>>, Reason> {
    let head = match end.response_framing {
        Some(framing) => split_own_response_head(&end.outbound, slots)
            .map_err(|_| Reason::INTERNAL_ERROR)?
            .map(|own| WrittenHead {
                status: own.status,
                len: own.head_len,
                framing,
                fields: own.headers,
            }),
        None => parse_response_uninit(&end.outbound, slots, method, limits)
            .map_err(|_| Reason::INTERNAL_ERROR)?
            .map(|(info, head)| WrittenHead {
                status: info.status,
                len: info.head_len,
                framing: info.framing,
                fields: head.headers,
            }),
    };
    if head.is_none() && end.write_shut {
        // The session ended without a whole head.
        return Err(Reason::INTERNAL_ERROR);
    }
    Ok(head)
}

/// The HTTP/2 response for `head`, which lies in `bytes`: its status and
/// its fields but the hop-by-hop ones. The map is made at its final size,
/// and every value is a slice of one copy of the head: one allocation for
/// the values instead of one each, and no growth step.
fn response_of(head: &WrittenHead<'_>, bytes: &[u8]) -> Result<http::Response<()>, Reason> {
    let mut response = http::Response::new(());
    *response.status_mut() =
        http::StatusCode::from_u16(head.status).map_err(|_| Reason::INTERNAL_ERROR)?;
    let mut headers = http::HeaderMap::with_capacity(head.fields.len());
    let base = bytes.as_ptr() as usize;
    let shared = Bytes::copy_from_slice(&bytes[..head.len.min(bytes.len())]);
    for field in head.fields {
        if HOP_BY_HOP
            .iter()
            .any(|h| field.name.eq_ignore_ascii_case(h))
        {
            continue;
        }
        let name = http::HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| Reason::INTERNAL_ERROR)?;
        // The value lies inside the head just copied.
        let at = (field.value.as_ptr() as usize).wrapping_sub(base);
        let range = at..at.saturating_add(field.value.len());
        if shared.get(range.clone()).is_none() {
            return Err(Reason::INTERNAL_ERROR);
        }
        let value = http::HeaderValue::from_maybe_shared(shared.slice(range))
            .map_err(|_| Reason::INTERNAL_ERROR)?;
        headers.append(name, value);
    }
    *response.headers_mut() = headers;
    Ok(response)
}

/// Checks a request's header list and writes its HTTP/1.1 head into
/// `out` (see [`downgrade`]).
fn write_request(
    parts: &http::request::Parts,
    body: Body,
    tls: bool,
    out: &mut Vec<u8>,
) -> Result<crate::http2::downgrade::Downgraded, crate::http2::downgrade::DowngradeError> {
    let method = parts.method.as_str();
    let uri = &parts.uri;
    let path = match uri.path_and_query() {
        Some(p) => p.as_str(),
        None => "",
    };
    let mut fields: Vec<Field<'_>> = Vec::with_capacity(parts.headers.len() + 4);
    fields.push(Field {
        name: b":method",
        value: method.as_bytes(),
    });
    // `h2` refuses a request without `:scheme`, but keeps it in the URI
    // only beside an authority: without one (a `host` field instead,
    // RFC 9113 §8.3.1) it is the connection's.
    let scheme = match uri.scheme_str() {
        Some(scheme) => scheme,
        None if tls => "https",
        None => "http",
    };
    fields.push(Field {
        name: b":scheme",
        value: scheme.as_bytes(),
    });
    if let Some(authority) = uri.authority() {
        fields.push(Field {
            name: b":authority",
            value: authority.as_str().as_bytes(),
        });
    }
    fields.push(Field {
        name: b":path",
        value: path.as_bytes(),
    });
    for (name, value) in &parts.headers {
        fields.push(Field {
            name: name.as_str().as_bytes(),
            value: value.as_bytes(),
        });
    }
    downgrade(&fields, body, out)
}

//! The response side of an exchange: the response head is read, checked
//! and planned once (forwarded as received, spliced with `Connection:
//! close`, or rewritten), interim 1xx heads are passed on and waited past,
//! a `101` hands both connections to a tunnel, and the body comes down
//! validated by its framing.

use std::io::IoSlice;
use std::mem::MaybeUninit;

use super::{End, Exchange, Went, Wire};
use crate::http::headers::upgrade_allowed;
use crate::http::{
    parse_response_uninit, plan_response_head, write_response_head, BodyState, ForwardOptions,
    Framing, ResponseHead, ResponseInfo, ResponsePlan, CONNECTION_CLOSE_LINE,
};
use crate::io::buffer::release_if_empty;
use crate::io::conn::Fill;
use crate::io::memory::{FieldSpan, MemoryEnd};
use crate::session::http::{Head, Io, Persist, Version, HEADER_SLOTS, SCRATCH_HEAD};
use crate::session::relay::Progress;
use crate::session::tunnel::Tunnel;

/// The response direction.
#[derive(Debug)]
pub(in crate::session::http) enum Down {
    /// Waiting for a (final) response head.
    Head,
    /// An interim 1xx head going out; then the final head is awaited.
    Interim { head: HeadOut },
    /// Forwarding the final response: what is left of its head, then the
    /// body (its validated, unsent bytes are the down direction's
    /// `pending`), and what each connection becomes once it is done.
    Body {
        head: HeadOut,
        body: BodyState,
        after: After,
    },
}

/// What each connection may become once the response is done.
#[derive(Debug, Clone, Copy)]
pub(in crate::session::http) struct After {
    /// The server said it keeps the connection, and the whole request went
    /// up before this response began.
    backend: Persist,
    /// The client keeps its connection for the next request.
    client: Persist,
}

/// How the response head leaves for the client, before the body relay.
#[derive(Debug, Clone, Copy)]
pub(in crate::session::http) enum HeadOut {
    /// Nothing but the buffer's `pending` bytes: the head went (or goes
    /// with them) byte for byte.
    InBuffer,
    /// A head rewritten into the response scratch, of which `sent` bytes
    /// are out.
    Rewritten { sent: usize },
    /// The received head, still at the front of the buffer, sent as
    /// `head[..at]`, [`CONNECTION_CLOSE_LINE`], `head[end..]` (a
    /// [`CloseSplice`](crate::http::CloseSplice)): `sent` bytes of the
    /// first two are out. `u32` keeps the session small; a head is far
    /// shorter.
    Spliced { at: u32, end: u32, sent: u32 },
}

/// What reading a response head came to.
enum HeadRead {
    /// The head was decided; `down` moved on.
    Decided,
    /// More bytes are needed.
    Waiting,
    /// A buffer was missing.
    Starved,
}

impl Exchange {
    /// Takes as much of the response as the sockets allow.
    pub(super) fn take_response(&mut self, io: &mut Io, w: &mut Wire<'_>) -> Result<Went, End> {
        let mut went = Went::default();
        loop {
            match &mut self.down {
                Down::Head => match self.read_response_head(io, w)? {
                    HeadRead::Decided => went.moved = true,
                    HeadRead::Waiting => return Ok(went),
                    HeadRead::Starved => {
                        went.starved = true;
                        return Ok(went);
                    }
                },
                Down::Interim { head } => {
                    if !send_head(head, io, w)? {
                        return Ok(went);
                    }
                    // A head that went as buffered bytes is the pending
                    // bytes themselves: out with them, then the final
                    // response is awaited.
                    let mut no_body = BodyState::Done;
                    match io.down.relay(
                        &mut w.link.conn,
                        w.client,
                        &mut no_body,
                        w.pool,
                        w.zerocopy,
                    ) {
                        Ok(Progress::Done | Progress::Eof) => self.down = Down::Head,
                        Ok(Progress::Blocked) => return Ok(went),
                        Ok(Progress::Starved) => {
                            went.starved = true;
                            return Ok(went);
                        }
                        Err(_) => return Err(End::Close),
                    }
                }
                Down::Body { .. } => return self.relay_response(io, w, went),
            }
        }
    }

    /// Reads the response head from the server, and decides it once it is
    /// complete.
    fn read_response_head(&mut self, io: &mut Io, w: &mut Wire<'_>) -> Result<HeadRead, End> {
        if io.down.buf.is_none() {
            if !w.link.conn.ready.readable {
                return Ok(HeadRead::Waiting);
            }
            match w.pool.checkout() {
                Some(b) => io.down.buf = Some(b),
                None => return Ok(HeadRead::Starved),
            }
        }
        loop {
            let Some(obuf) = io.down.buf.as_mut() else {
                return Err(End::Close);
            };
            let mut slots = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
            let n = w.limits.max_headers.min(HEADER_SLOTS);
            let base = obuf.filled().as_ptr() as usize;
            let parsed = if obuf.is_empty() {
                Ok(None)
            } else {
                parse_response_uninit(obuf.filled(), &mut slots[..n], self.req.method, &w.limits)
            };
            match parsed {
                Err(e) => {
                    log::warn!(
                        "[{}] bad response from {}: {e}",
                        self.route.service.config().name,
                        self.route.addr()
                    );
                    self.route.server_error();
                    return Err(End::Respond(502));
                }
                Ok(Some((info, head))) => {
                    if !info.interim {
                        let took = w.now.saturating_duration_since(self.started);
                        self.route
                            .record_head(info.status, (w.now, took), w.backoff);
                        if let Some(pending) = &mut io.log {
                            pending.status = info.status;
                            pending.first_byte_us = super::super::logging::micros(took);
                        }
                    }
                    let out = self.plan_head(&info, &head, &mut io.rscratch, w)?;
                    if let Some(end) = w.client.memory_end() {
                        let unchanged = matches!(out.0, HeadOut::InBuffer) && !info.interim;
                        note_forwarded(end, unchanged.then_some(&info), base, head.headers);
                    }
                    self.start_response(info, out, io, w)?;
                    return Ok(HeadRead::Decided);
                }
                Ok(None) if obuf.is_exhausted() => return Err(End::Respond(502)),
                Ok(None) => {}
            }
            obuf.compact();
            match w.link.conn.fill(obuf) {
                Ok(Fill::Data) => continue,
                Ok(Fill::WouldBlock) => {
                    release_if_empty(&mut io.down.buf);
                    return Ok(HeadRead::Waiting);
                }
                Ok(Fill::NoRoom) => return Err(End::Respond(502)),
                Ok(Fill::Eof) => {
                    let e = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                    return Err(End::BackendFailed(e));
                }
                Err(e) => return Err(End::BackendFailed(e)),
            }
        }
    }

    /// Checks a complete response head and decides how it leaves for the
    /// client; a rewritten head is written into `rscratch`.
    fn plan_head(
        &self,
        info: &ResponseInfo,
        head: &ResponseHead<'_>,
        rscratch: &mut Vec<u8>,
        w: &Wire<'_>,
    ) -> Result<(HeadOut, Persist), End> {
        // A 101 answers only an upgrade the service allowed, to a protocol
        // it allows.
        let upgrades = &self.route.service.config().upgrades;
        if info.upgrade && (!self.req.upgrade || !upgrade_allowed(head.headers, upgrades)) {
            log::warn!(
                "[{}] {} switched protocols unasked; refused",
                self.route.service.config().name,
                self.route.addr()
            );
            return Err(End::Respond(502));
        }
        let http10 = self.req.version == Version::Http10;
        let client_keep = self.req.persist == Persist::KeepAlive
            && !w.draining
            && !info.upgrade
            && match info.framing {
                Framing::CloseDelimited => false,
                // An HTTP/1.0 client cannot read chunked framing.
                Framing::Chunked => !http10,
                Framing::None | Framing::Length(_) => true,
            };
        let extra = match (self.route.pick, info.interim) {
            (Some(pick), false) if pick.stamp => self
                .route
                .service
                .picker()
                .response_header(&pick.selection(), info.sets_cookie),
            _ => None,
        };
        let service = &self.route.service;
        let edits = match self.route.pick {
            Some(pick) if service.has_header_edits() => pick
                .selection()
                .rule
                .and_then(|rule| service.compiled_rules().get(rule))
                .map_or(&[][..], |r| r.edits()),
            _ => &[],
        };
        let opts = ForwardOptions {
            forwarded_for: None,
            client_tls: false,
            close: !client_keep && !info.interim,
            keep_alive: client_keep && http10 && !info.interim,
            extra,
            edits,
        };
        let spliced = |at: usize, skip: usize| {
            Some(HeadOut::Spliced {
                at: u32::try_from(at).ok()?,
                end: u32::try_from(at + skip).ok()?,
                sent: 0,
            })
        };
        let out = match plan_response_head(info, &opts) {
            ResponsePlan::Verbatim => Some(HeadOut::InBuffer),
            ResponsePlan::Splice(cut) => spliced(cut.at, cut.skip),
            ResponsePlan::Rewrite => None,
        };
        let out = out.unwrap_or_else(|| {
            rscratch.clear();
            rscratch.reserve(SCRATCH_HEAD);
            write_response_head(head, info, &opts, rscratch);
            HeadOut::Rewritten { sent: 0 }
        });
        let persist = if client_keep {
            Persist::KeepAlive
        } else {
            Persist::Close
        };
        Ok((out, persist))
    }

    /// Moves the exchange past a decided response head: a body-less
    /// request's head leaves the client buffer, a `101` becomes a tunnel,
    /// anything else goes down with its body.
    fn start_response(
        &mut self,
        info: ResponseInfo,
        (out, client): (HeadOut, Persist),
        io: &mut Io,
        w: &mut Wire<'_>,
    ) -> Result<(), End> {
        if matches!(self.up, super::Up::Sent) && self.req.head != Head::Consumed {
            // A body-less head stayed in the buffer for a replay; the
            // response has started, so it is dropped now.
            if let Some(b) = io.up.buf.as_mut() {
                b.consume(self.req.head.len().min(b.len()));
            }
            self.req.head = Head::Consumed;
        }
        io.down.pending = match out {
            HeadOut::Rewritten { .. } => {
                if let Some(b) = io.down.buf.as_mut() {
                    b.consume(info.head_len);
                }
                0
            }
            HeadOut::InBuffer | HeadOut::Spliced { .. } => info.head_len,
        };
        if info.upgrade {
            return Err(self.hand_to_tunnel(out, io, w));
        }
        if info.interim {
            self.down = Down::Interim { head: out };
            return Ok(());
        }
        if let Some(end) = w.client.memory_end() {
            end.response_framing = Some(info.framing);
        }
        // A final response that began before the whole request went up
        // leaves the server's reading of the body in doubt: never pooled.
        let backend = if info.keep_alive && matches!(self.up, super::Up::Sent) {
            Persist::KeepAlive
        } else {
            Persist::Close
        };
        self.down = Down::Body {
            head: out,
            body: BodyState::new(info.framing, &w.limits),
            after: After { backend, client },
        };
        Ok(())
    }

    /// After a `101`: hands the backend connection, the lease and the bytes
    /// already read each way (the response head first) to a tunnel.
    fn hand_to_tunnel(&mut self, out: HeadOut, io: &mut Io, w: &mut Wire<'_>) -> End {
        if let HeadOut::Rewritten { .. } = out {
            // The tunnel sends its buffer first: the rewritten head, then
            // whatever the server sent after its head.
            let Some(mut fresh) = w.pool.checkout() else {
                return End::Close;
            };
            let rest = io.down.buf.as_ref().map_or(&[][..], |b| b.filled());
            let total = io.rscratch.len() + rest.len();
            if total > fresh.capacity() {
                return End::Respond(502);
            }
            fresh.spare()[..io.rscratch.len()].copy_from_slice(&io.rscratch);
            fresh.spare()[io.rscratch.len()..total].copy_from_slice(rest);
            fresh.commit(total);
            io.down.buf = Some(fresh);
        }
        let up = io.up.buf.take();
        let down = io.down.buf.take();
        io.up.clear();
        io.down.clear();
        let lease = self.route.lease.take();
        End::Tunnel(Box::new(Tunnel::relaying(
            self.backend,
            lease,
            up,
            down,
            w.now,
        )))
    }

    /// Sends what is left of the response head, then relays the body; ends
    /// the exchange when the response is complete.
    fn relay_response(
        &mut self,
        io: &mut Io,
        w: &mut Wire<'_>,
        mut went: Went,
    ) -> Result<Went, End> {
        let Down::Body { head, body, after } = &mut self.down else {
            return Ok(went);
        };
        if !matches!(head, HeadOut::InBuffer) && !body.is_done() {
            // The body bytes read with the head leave with it: validated
            // first.
            if let Some(b) = io.down.buf.as_ref().filter(|b| b.len() > io.down.pending) {
                match body.advance(&b.filled()[io.down.pending..]) {
                    Ok(n) => io.down.pending += n,
                    Err(_) => {
                        self.route.server_error();
                        return Err(End::Close);
                    }
                }
            }
        }
        if !send_head(head, io, w)? {
            return Ok(went);
        }
        // The client took bytes, or the pipe has room: a paused server
        // socket is watched and read again.
        if (w.client.ready.writable || !io.down.pipe_is_full())
            && w.link.resume_source(w.registry, self.backend).is_err()
        {
            return Err(End::Close);
        }
        match io
            .down
            .relay(&mut w.link.conn, w.client, body, w.pool, w.zerocopy)
        {
            Ok(Progress::Done | Progress::Eof) => {
                // Bytes after the body: the server sent more than it
                // framed, so its connection is closed.
                let backend = match io.down.buf.as_ref() {
                    Some(b) if !b.is_empty() => Persist::Close,
                    _ => after.backend,
                };
                let client = match self.up {
                    super::Up::Sent => after.client,
                    _ => Persist::Close,
                };
                Err(End::Finished { backend, client })
            }
            Ok(Progress::Blocked) => {
                // Spliced bytes fill the pipe and the client takes none:
                // the server's socket leaves the poller until the client
                // drains.
                if !w.client.ready.writable && !body.is_done() && io.down.pipe_is_full() {
                    w.link.pause_source(w.registry);
                }
                Ok(went)
            }
            Ok(Progress::Starved) => {
                went.starved = true;
                Ok(went)
            }
            Err(_) => {
                self.route.server_error();
                Err(End::Close)
            }
        }
    }
}

/// Sends what is left of a response head that does not go out as plain
/// buffered bytes, together with the validated body bytes already read
/// (`pending`), in one vectored write; `Ok(true)` once the head is out (it
/// is then [`HeadOut::InBuffer`]: what follows is plain buffered bytes).
fn send_head(head: &mut HeadOut, io: &mut Io, w: &mut Wire<'_>) -> Result<bool, End> {
    if let HeadOut::InBuffer = head {
        return Ok(true);
    }
    let pending = &mut io.down.pending;
    let held: &[u8] = match io.down.buf.as_ref() {
        Some(b) => &b.filled()[..*pending],
        // A spliced head is in the buffer, so it is there.
        None if matches!(head, HeadOut::Spliced { .. }) => return Err(End::Close),
        None => &[],
    };
    // `lead` and `line` go before `rest`; `skip`: received bytes at the
    // front of `held` not sent.
    let (lead, line, rest, skip) = match *head {
        HeadOut::Rewritten { sent } => (&io.rscratch[sent..], &[][..], held, 0),
        HeadOut::Spliced { at, end, sent } => {
            let (at, end, sent) = (at as usize, end as usize, sent as usize);
            let (lead, line) = match sent.checked_sub(at) {
                None => (&held[sent..at], CONNECTION_CLOSE_LINE),
                Some(of_line) => (&[][..], &CONNECTION_CLOSE_LINE[of_line..]),
            };
            (lead, line, &held[end..], end)
        }
        HeadOut::InBuffer => return Ok(true),
    };
    let before_rest = lead.len() + line.len();
    let parts = [IoSlice::new(lead), IoSlice::new(line), IoSlice::new(rest)];
    let n = w.client.send_vectored(&parts).map_err(|_| End::Close)?;
    if n < before_rest {
        match head {
            HeadOut::Rewritten { sent } => *sent += n,
            // `n` < `before_rest`, a head's length.
            HeadOut::Spliced { sent, .. } => *sent += n as u32,
            HeadOut::InBuffer => {}
        }
        return Ok(false);
    }
    let body_sent = n - before_rest;
    if let Some(b) = io.down.buf.as_mut() {
        b.consume(skip + body_sent);
    }
    *pending -= skip + body_sent;
    *head = HeadOut::InBuffer;
    Ok(true)
}

/// Notes in an HTTP/2 stream's end where the fields of a final response
/// head forwarded unchanged (`info`; `None` for any other head) lie within
/// it, from their places in the buffer the head was parsed in (starting at
/// address `base`), so that the HTTP/2 side encodes them without splitting
/// the head again (see [`ForwardedHead`](crate::io::memory::ForwardedHead)).
/// Only a head that will be the first of the end's outbound bytes, with
/// every field inside it, is noted; anything else leaves nothing noted.
fn note_forwarded(
    end: &mut MemoryEnd,
    info: Option<&ResponseInfo>,
    base: usize,
    fields: &[httparse::Header<'_>],
) {
    end.forwarded.clear();
    let Some(info) = info else {
        return;
    };
    if !end.outbound.is_empty() {
        return;
    }
    // Offsets within the head, which is shorter than any buffer and so
    // than 2³²: every range checked to lie in it fits a u32.
    let Ok(head_len) = u32::try_from(info.head_len) else {
        return;
    };
    let span = |bytes: &[u8]| {
        let start = (bytes.as_ptr() as usize).wrapping_sub(base);
        let stop = start.wrapping_add(bytes.len());
        (start <= stop && stop <= head_len as usize).then_some((start as u32, stop as u32))
    };
    end.forwarded.fields.reserve(fields.len());
    for field in fields {
        let (Some(name), Some(value)) = (span(field.name.as_bytes()), span(field.value)) else {
            end.forwarded.clear();
            return;
        };
        end.forwarded.fields.push(FieldSpan { name, value });
    }
    end.forwarded.noted = Some((info.status, info.head_len));
}

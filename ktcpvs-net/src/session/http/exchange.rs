//! The exchange of one request and its response over a backend
//! connection: the request head and body go up, the response head is
//! parsed, checked and forwarded (verbatim or rewritten; a `101` turns the
//! session into a tunnel), then the body comes down; at the end the
//! connections are kept, pooled or closed.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::time::Duration;

use ktcpvs_core::snapshot::TimeoutKind;
use ktcpvs_core::Dispatch;

use super::body::{relay_body, BodyFail, BodyStep};
use super::{
    Down, HeadOut, Held, HttpSession, State, Step, Up, HEADER_SLOTS, LINGER, SCRATCH_HEAD,
};
use crate::http::headers::upgrade_allowed;
use crate::http::{
    can_forward_response_verbatim, close_splice, parse_response_uninit, write_response_head,
    BodyState, ForwardOptions, Framing, Limits, CONNECTION_CLOSE_LINE,
};
use crate::io::buffer::release_if_empty;
use crate::io::buffer::Buffer;
use crate::io::conn::{Conn, Fill};
use crate::io::splice::KernelPipe;
use crate::session::tunnel::Tunnel;
use crate::session::Ctx;
use crate::upstream::connect::Target;

/// Whether the exchange waits on the client: bytes are held for it that it
/// has not taken (a response head or body, in the buffer or a pipe), or its
/// request body is awaited while nothing is held for the server.
fn waits_on_client(
    up: &Up,
    down: &Down,
    up_pipe: &Option<KernelPipe>,
    down_pipe: &Option<KernelPipe>,
) -> bool {
    let held = |pipe: &Option<KernelPipe>| pipe.as_ref().map_or(0, KernelPipe::held);
    let held_for_client = match down {
        Down::Body { head, pending, .. } => {
            !matches!(head, HeadOut::InBuffer) || *pending > 0 || held(down_pipe) > 0
        }
        Down::Head => false,
    };
    let awaits_body = matches!(up, Up::Body { pending: 0, .. }) && held(up_pipe) == 0;
    held_for_client || awaits_body
}

impl HttpSession {
    /// Moves the request up and the response down as far as the sockets
    /// allow; ends the exchange, answers an error or becomes a tunnel.
    pub(super) fn exchange(&mut self, client: &mut Conn, ctx: &mut Ctx<'_>) -> Step {
        let State::Exchange {
            backend,
            req,
            up,
            down,
            since,
            pace,
            ..
        } = &mut self.state
        else {
            return Step::Close;
        };
        let Some(route) = self.route.as_ref() else {
            return Step::Close;
        };
        let settings = ctx.snapshots.load();
        let settings = settings.settings();
        let limits = Limits::from_settings(settings);
        let zerocopy = settings.zerocopy_send() == 1;
        let Some(link) = ctx.backends.get_mut(*backend) else {
            return Step::Close;
        };
        let mut starved = false;
        let mut moved = false;
        let bytes_before = client.traffic.read
            + client.traffic.written
            + link.conn.traffic.read
            + link.conn.traffic.written;

        // ---- request direction ----
        loop {
            match up {
                Up::Head { sent } => {
                    let bytes: &[u8] = if req.verbatim {
                        match self.inbuf.as_ref() {
                            Some(b) => &b.filled()[..req.head_len],
                            None => return Step::Close,
                        }
                    } else {
                        &self.scratch
                    };
                    match link.conn.send(&bytes[*sent..]) {
                        Ok(n) => *sent += n,
                        Err(e) => return self.backend_failed(e, ctx),
                    }
                    if *sent < bytes.len() {
                        break;
                    }
                    moved = true;
                    if matches!(req.framing, Framing::None | Framing::Length(0)) {
                        *up = Up::Done;
                    } else {
                        if let Some(b) = self.inbuf.as_mut() {
                            b.consume(req.head_len);
                        }
                        req.replayable = false;
                        *up = Up::Body {
                            body: BodyState::new(req.framing, &limits),
                            pending: 0,
                        };
                    }
                }
                Up::Body { body, pending } => {
                    match relay_body(
                        client,
                        &mut link.conn,
                        &mut self.inbuf,
                        &mut self.up_pipe,
                        zerocopy,
                        body,
                        pending,
                        ctx.pool,
                    ) {
                        Ok(BodyStep::Done) => *up = Up::Done,
                        Ok(BodyStep::Blocked) => break,
                        Ok(BodyStep::Starved) => {
                            starved = true;
                            break;
                        }
                        Err(BodyFail::Io) if matches!(down, Down::Head) => {
                            // A socket failed before any response: the
                            // request may have been partly processed, so it
                            // is not replayed; the client gets 502.
                            if let Target::Server(i) = route.target {
                                route.service.server_entries()[i].load().add_error();
                            }
                            return self.respond_error(502, ctx);
                        }
                        Err(BodyFail::Framing) => {
                            // The client broke its body's framing: nothing
                            // past the last valid byte went up, the backend
                            // connection is closed, and the client gets 400
                            // if no response byte reached it yet.
                            log::debug!(
                                "[{}] malformed request body; closing the backend connection",
                                route.service.config().name
                            );
                            return self.respond_error(400, ctx);
                        }
                        Ok(BodyStep::Eof) | Err(_) => return Step::Close,
                    }
                }
                Up::Done => break,
            }
        }

        // ---- response direction ----
        loop {
            match down {
                Down::Head => {
                    if self.outbuf.is_none() {
                        if !link.conn.ready.readable {
                            break;
                        }
                        match ctx.pool.checkout() {
                            Some(b) => self.outbuf = Some(b),
                            None => {
                                starved = true;
                                break;
                            }
                        }
                    }
                    let Some(obuf) = self.outbuf.as_mut() else {
                        return Step::Close;
                    };
                    let mut slots = [const { MaybeUninit::uninit() }; HEADER_SLOTS];
                    let n = limits.max_headers.min(HEADER_SLOTS);
                    let parsed = if obuf.is_empty() {
                        Ok(None)
                    } else {
                        parse_response_uninit(obuf.filled(), &mut slots[..n], req.method, &limits)
                    };
                    match parsed {
                        Err(e) => {
                            log::warn!(
                                "[{}] bad response from {}: {e}",
                                route.service.config().name,
                                route.addr
                            );
                            if let Target::Server(i) = route.target {
                                route.service.server_entries()[i].load().add_error();
                            }
                            return self.respond_error(502, ctx);
                        }
                        Ok(None) => {
                            if obuf.is_exhausted() {
                                return self.respond_error(502, ctx);
                            }
                            obuf.compact();
                            match link.conn.fill(obuf) {
                                Ok(Fill::Data) => continue,
                                Ok(Fill::WouldBlock) => {
                                    release_if_empty(&mut self.outbuf);
                                    break;
                                }
                                Ok(Fill::NoRoom) => return self.respond_error(502, ctx),
                                Ok(Fill::Eof) => {
                                    let e = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                                    return self.backend_failed(e, ctx);
                                }
                                Err(e) => return self.backend_failed(e, ctx),
                            }
                        }
                        Ok(Some((info, head))) => {
                            moved = true;
                            if matches!(up, Up::Done)
                                && matches!(req.framing, Framing::None | Framing::Length(0))
                                && req.head_len > 0
                            {
                                // A body-less head stayed in the buffer for a replay;
                                // the response has started, so it is dropped now.
                                if let Some(b) = self.inbuf.as_mut() {
                                    b.consume(req.head_len.min(b.len()));
                                }
                                req.head_len = 0;
                                req.replayable = false;
                            }
                            // A 101 answers only an upgrade the service
                            // allowed, to a protocol it allows.
                            if info.upgrade
                                && (!req.upgrade
                                    || !upgrade_allowed(
                                        head.headers,
                                        &route.service.config().upgrades,
                                    ))
                            {
                                log::warn!(
                                    "[{}] {} switched protocols unasked; refused",
                                    route.service.config().name,
                                    route.addr
                                );
                                return self.respond_error(502, ctx);
                            }
                            let client_keep = req.client_keep
                                && !ctx.draining
                                && !info.upgrade
                                && match info.framing {
                                    Framing::CloseDelimited => false,
                                    // An HTTP/1.0 client cannot read chunked framing.
                                    Framing::Chunked => !req.http10,
                                    Framing::None | Framing::Length(_) => true,
                                };
                            let extra = match (route.selection, info.interim) {
                                (Some(sel), false) if sel.stamp => route
                                    .service
                                    .picker()
                                    .response_header(&sel, info.sets_cookie),
                                _ => None,
                            };
                            let opts = ForwardOptions {
                                forwarded_for: None,
                                close: !client_keep && !info.interim,
                                keep_alive: client_keep && req.http10 && !info.interim,
                                extra,
                            };
                            let head_out = if can_forward_response_verbatim(&info, &opts) {
                                HeadOut::InBuffer
                            } else if let Some((at, end)) =
                                close_splice(&info, &opts).and_then(|cut| {
                                    let at = u32::try_from(cut.at).ok()?;
                                    let end = u32::try_from(cut.at + cut.skip).ok()?;
                                    Some((at, end))
                                })
                            {
                                HeadOut::Spliced { at, end, sent: 0 }
                            } else {
                                self.rscratch.clear();
                                self.rscratch.reserve(SCRATCH_HEAD);
                                write_response_head(&head, &info, &opts, &mut self.rscratch);
                                HeadOut::Rewritten { sent: 0 }
                            };
                            let rewritten = matches!(head_out, HeadOut::Rewritten { .. });
                            let head_len = info.head_len;
                            let pending = if rewritten {
                                obuf.consume(head_len);
                                0
                            } else {
                                head_len
                            };
                            if info.upgrade {
                                // Hand the head (rewritten or not) and any bytes after it
                                // to the tunnel, which sends them first.
                                if rewritten {
                                    let Some(mut fresh) = ctx.pool.checkout() else {
                                        return Step::Close;
                                    };
                                    let rest = obuf.filled();
                                    let total = self.rscratch.len() + rest.len();
                                    if total > fresh.capacity() {
                                        drop(fresh);
                                        return self.respond_error(502, ctx);
                                    }
                                    fresh.spare()[..self.rscratch.len()]
                                        .copy_from_slice(&self.rscratch);
                                    fresh.spare()[self.rscratch.len()..total].copy_from_slice(rest);
                                    fresh.commit(total);
                                    let old = self.outbuf.replace(fresh);
                                    if let Some(old) = old {
                                        drop(old);
                                    }
                                }
                                let lease = self.route.take().and_then(|r| r._lease);
                                let backend = *backend;
                                let up_buf = self.inbuf.take();
                                let down_buf = self.outbuf.take();
                                self.state = State::Closed;
                                return Step::Tunnel(Tunnel::relaying(
                                    backend, lease, up_buf, down_buf, ctx.now,
                                ));
                            }
                            let body = if info.interim {
                                BodyState::Done
                            } else {
                                BodyState::new(info.framing, &limits)
                            };
                            *down = Down::Body {
                                head: head_out,
                                body,
                                pending,
                                // A final response that began before the
                                // whole request went up leaves the server's
                                // reading of the body in doubt: never pooled.
                                backend_keep: info.keep_alive
                                    && (info.interim || matches!(up, Up::Done)),
                                client_keep,
                                interim: info.interim,
                            };
                        }
                    }
                }
                Down::Body {
                    head,
                    body,
                    pending,
                    backend_keep,
                    client_keep,
                    interim,
                } => {
                    if !matches!(head, HeadOut::InBuffer) {
                        // The head (rewritten, or the received one with
                        // `Connection: close` put in) and the body bytes
                        // already read leave in one vectored write.
                        let held: &[u8] = match self.outbuf.as_mut() {
                            Some(b) => {
                                if !body.is_done() && b.len() > *pending {
                                    match body.advance(&b.filled()[*pending..]) {
                                        Ok(n) => *pending += n,
                                        Err(_) => {
                                            if let Target::Server(i) = route.target {
                                                route.service.server_entries()[i]
                                                    .load()
                                                    .add_error();
                                            }
                                            return Step::Close;
                                        }
                                    }
                                }
                                &b.filled()[..*pending]
                            }
                            // A spliced head is in the buffer, so it is there.
                            None if matches!(head, HeadOut::Spliced { .. }) => return Step::Close,
                            None => &[],
                        };
                        // `lead` and `line` go before `rest`; `skip`:
                        // received bytes at the front of `held` not sent.
                        let (lead, line, rest, skip) = match *head {
                            HeadOut::Rewritten { sent } => {
                                (&self.rscratch[sent..], &[][..], held, 0)
                            }
                            HeadOut::Spliced { at, end, sent } => {
                                let (at, end, sent) = (at as usize, end as usize, sent as usize);
                                let (lead, line) = match sent.checked_sub(at) {
                                    None => (&held[sent..at], CONNECTION_CLOSE_LINE),
                                    Some(of_line) => (&[][..], &CONNECTION_CLOSE_LINE[of_line..]),
                                };
                                (lead, line, &held[end..], end)
                            }
                            HeadOut::InBuffer => (&[][..], &[][..], &[][..], 0),
                        };
                        let before_rest = lead.len() + line.len();
                        let parts = [IoSlice::new(lead), IoSlice::new(line), IoSlice::new(rest)];
                        let n = match client.send_vectored(&parts) {
                            Ok(n) => n,
                            Err(_) => return Step::Close,
                        };
                        if n < before_rest {
                            match head {
                                HeadOut::Rewritten { sent } => *sent += n,
                                // `n` < `before_rest`, a head's length.
                                HeadOut::Spliced { sent, .. } => *sent += n as u32,
                                HeadOut::InBuffer => {}
                            }
                            break;
                        }
                        let body_sent = n - before_rest;
                        if let Some(b) = self.outbuf.as_mut() {
                            b.consume(skip + body_sent);
                        }
                        *pending -= skip + body_sent;
                        *head = HeadOut::InBuffer;
                    }
                    // The client took bytes, or the pipe has room: a paused
                    // server socket is watched and read again.
                    if (client.ready.writable
                        || !self.down_pipe.as_ref().is_some_and(KernelPipe::is_full))
                        && link.resume_source(ctx.registry, *backend).is_err()
                    {
                        return Step::Close;
                    }
                    match relay_body(
                        &mut link.conn,
                        client,
                        &mut self.outbuf,
                        &mut self.down_pipe,
                        zerocopy,
                        body,
                        pending,
                        ctx.pool,
                    ) {
                        Ok(BodyStep::Done) if *interim => {
                            // The 1xx head is out; wait for the final response.
                            *down = Down::Head;
                            continue;
                        }
                        Ok(BodyStep::Done) | Ok(BodyStep::Eof) => {
                            // Bytes after the body: the server sent more
                            // than it framed, so its connection is closed.
                            let backend_keep = *backend_keep
                                && self.outbuf.as_ref().map_or(true, Buffer::is_empty);
                            let client_keep = *client_keep && matches!(up, Up::Done);
                            return self.finish_exchange(client, backend_keep, client_keep, ctx);
                        }
                        Ok(BodyStep::Blocked) => {
                            // Spliced bytes fill the pipe and the client
                            // takes none: the server's socket leaves the
                            // poller until the client drains.
                            if !client.ready.writable
                                && !body.is_done()
                                && self.down_pipe.as_ref().is_some_and(KernelPipe::is_full)
                            {
                                link.pause_source(ctx.registry);
                            }
                            break;
                        }
                        Ok(BodyStep::Starved) => {
                            starved = true;
                            break;
                        }
                        Err(_) => {
                            if let Target::Server(i) = route.target {
                                route.service.server_entries()[i].load().add_error();
                            }
                            return Step::Close;
                        }
                    }
                }
            }
        }
        // Any byte moved either way is activity: a long body that keeps
        // moving is never cut by the inactivity timeout.
        let client_bytes = client.traffic.read + client.traffic.written;
        if moved
            || client_bytes + link.conn.traffic.read + link.conn.traffic.written != bytes_before
        {
            *since = ctx.now;
        }
        let at = if matches!((&*up, &*down), (Up::Done, Down::Head)) {
            // Waiting for the server to answer (504 when it does not).
            *since + route.service.timeout(TimeoutKind::Response, settings)
        } else {
            let waits = waits_on_client(up, down, &self.up_pipe, &self.down_pipe);
            let idle_until = *since + route.service.timeout(TimeoutKind::Read, settings);
            let window = Duration::from_secs(settings.transfer_window());
            let paced = pace.check(
                ctx.now,
                client_bytes,
                waits,
                settings.min_transfer_rate(),
                window,
            );
            let name = &route.service.config().name;
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
                Ok(window_end) => {
                    let at = window_end.map_or(idle_until, |w| w.min(idle_until));
                    return if starved {
                        Step::Starved(Some(at))
                    } else {
                        Step::Wait(Some(at))
                    };
                }
            }
            // A client that stalls its own request gets 408; a server that
            // takes no request bytes, 504; after the response began, the
            // connection is cut.
            return self.respond_error(if waits { 408 } else { 504 }, ctx);
        };
        if starved {
            Step::Starved(Some(at))
        } else {
            Step::Wait(Some(at))
        }
    }

    /// The response is complete: reuse or close the backend, then the next
    /// request (or close the client).
    pub(super) fn finish_exchange(
        &mut self,
        client: &mut Conn,
        backend_keep: bool,
        client_keep: bool,
        ctx: &mut Ctx<'_>,
    ) -> Step {
        let per_connection = self
            .route
            .as_ref()
            .is_some_and(|r| r.service.dispatch() != Dispatch::EachRequest);
        if let Some(route) = &self.route {
            let traffic = client.take_traffic();
            route
                .service
                .load()
                .add_bytes(traffic.read, traffic.written);
        }
        // The client announced that this request was its last and all of
        // it has been read: nothing may follow, so the connection can close
        // at once (the FIN goes after the queued response) rather than shut
        // its write side and wait for the client's EOF.
        let client_done = matches!(
            &self.state,
            State::Exchange { req, up: Up::Done, .. } if !req.client_keep
        );
        release_if_empty(&mut self.outbuf);
        if per_connection && backend_keep && client_keep {
            if let State::Exchange { backend, .. } = self.state {
                self.flush_backend_traffic(backend, ctx);
                self.held = Held::Kept(backend);
            }
        } else {
            self.drop_backend(ctx, backend_keep);
            self.outbuf = None;
            if !per_connection || !client_keep {
                self.route = None;
            }
        }
        if !client_keep {
            if client_done && self.inbuf.as_ref().map_or(true, Buffer::is_empty) {
                return Step::Close;
            }
            let _ = client.stream.shutdown(Shutdown::Write);
            self.state = State::Linger {
                until: ctx.now + LINGER,
            };
            return Step::Again;
        }
        release_if_empty(&mut self.inbuf);
        let pipelined = self.inbuf.as_ref().is_some_and(|b| !b.is_empty());
        self.state = State::Idle {
            since: ctx.now,
            first_byte: pipelined.then_some(ctx.now),
        };
        Step::Again
    }

    /// Answers an error for the request in flight when nothing of its
    /// response reached the client yet; otherwise just closes.
    pub(super) fn respond_error(&mut self, status: u16, ctx: &mut Ctx<'_>) -> Step {
        let started = matches!(
            &self.state,
            State::Exchange {
                down: Down::Body { .. },
                ..
            }
        );
        self.drop_backend(ctx, false);
        self.outbuf = None;
        if started {
            return Step::Close;
        }
        let Some(route) = self.route.take() else {
            return Step::Close;
        };
        self.fail(status, &route.service, ctx);
        Step::Again
    }
}

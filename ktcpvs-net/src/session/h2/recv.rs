//! The client's frames: each whole frame in the inbound buffer checked
//! against RFC 9113 and applied to the connection (settings, windows,
//! PING, GOAWAY) or to its stream (a new request, its body, a reset, a
//! window update).
//!
//! A frame that breaks the protocol in a way that leaves the connection's
//! state in doubt (its size, its stream, the order of a header block, the
//! HPACK state, flow control) is a connection error: GOAWAY and the
//! close. A request that is merely malformed resets its stream alone: the
//! header block was decoded whole, so the HPACK state stays in step.
//!
//! Bounds: a header block may take [`MAX_BLOCK_FRAMES`] frames and the
//! header list `max_header_size` bytes, more is `ENHANCE_YOUR_CALM`
//! (CONTINUATION flood, HPACK bomb). Control frames are answered only
//! while the outbound buffer has room for the answers, so a client that
//! sends them without reading stops being read. More than
//! [`MAX_EMPTY_DATA`] empty DATA frames in a window is `ENHANCE_YOUR_CALM`.

use ktcpvs_core::snapshot::ServiceSnapshot;

use super::stream::{End, Origin, Stream};
use super::{
    count, Block, ConnError, GoAway, H2Session, Phase, DRAIN_PING, MAX_STREAMS, STREAM_WINDOW,
};
use crate::http::Limits;
use crate::http2::downgrade::Field;
use crate::http2::frame::{self, flag, kind, setting, FrameHead, Reason, HEAD_LEN, PREFACE};
use crate::io::conn::Conn;
use crate::session::Ctx;

/// Most frames (HEADERS and its CONTINUATIONs) of one header block.
const MAX_BLOCK_FRAMES: u32 = 32;

/// Most empty DATA frames without END_STREAM per window.
const MAX_EMPTY_DATA: u32 = 1000;

/// Most fields of one request header list.
const MAX_FIELDS: usize = 256;

impl H2Session {
    /// Takes every whole frame the client sent, while the connection's
    /// answers have room.
    pub(super) fn receive(
        &mut self,
        client: &Conn,
        service: &ServiceSnapshot,
        limits: &Limits,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ConnError> {
        let Some(mut inbound) = self.wire.inbound.take() else {
            return Ok(());
        };
        let origin = Origin {
            tls: client.is_tls(),
            server_name: client.server_name(),
        };
        let result = loop {
            if self.phase == Phase::Closed || !self.wire.control_room() {
                break Ok(());
            }
            let bytes = inbound.filled();
            if let Phase::Preface(until) = self.phase {
                if bytes.len() < PREFACE.len() {
                    break if PREFACE.starts_with(bytes) {
                        Ok(())
                    } else {
                        Err(ConnError(Reason::PROTOCOL_ERROR))
                    };
                }
                if &bytes[..PREFACE.len()] != PREFACE {
                    break Err(ConnError(Reason::PROTOCOL_ERROR));
                }
                inbound.consume(PREFACE.len());
                self.phase = Phase::Settings(until);
                continue;
            }
            let Some(head) = FrameHead::parse(bytes) else {
                break Ok(());
            };
            if head.len > frame::DEFAULT_MAX_FRAME_SIZE {
                break Err(ConnError(Reason::FRAME_SIZE_ERROR));
            }
            let total = HEAD_LEN + head.len as usize;
            if bytes.len() < total {
                break Ok(());
            }
            let step = self.frame(
                head,
                &bytes[HEAD_LEN..total],
                (origin, service),
                limits,
                ctx,
            );
            inbound.consume(total);
            if let Err(e) = step {
                break Err(e);
            }
        };
        self.wire.inbound = Some(inbound);
        result
    }

    /// Applies one frame.
    fn frame(
        &mut self,
        head: FrameHead,
        payload: &[u8],
        (origin, service): (Origin<'_>, &ServiceSnapshot),
        limits: &Limits,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ConnError> {
        let protocol = Err(ConnError(Reason::PROTOCOL_ERROR));
        if let Some(block) = &self.block {
            if head.kind != kind::CONTINUATION || head.stream != block.stream {
                return protocol;
            }
        }
        if let Phase::Settings(_) = self.phase {
            // The client's first frame is its SETTINGS (RFC 9113 §3.4).
            if head.kind != kind::SETTINGS || head.flags & flag::ACK != 0 {
                return protocol;
            }
            self.phase = Phase::Open;
        }
        match head.kind {
            kind::DATA => self.data(head, payload, service, ctx),
            kind::HEADERS => {
                if head.stream == 0 || head.stream % 2 == 0 {
                    return protocol;
                }
                let fragment = frame::header_block(head.flags, payload).map_err(ConnError)?;
                let block = Block {
                    stream: head.stream,
                    end_stream: head.flags & flag::END_STREAM != 0,
                    bytes: Vec::new(),
                    frames: 1,
                };
                if head.flags & flag::END_HEADERS != 0 {
                    return self.header_block(&block, fragment, (origin, service), limits, ctx);
                }
                self.block = Some(Block {
                    bytes: fragment.to_vec(),
                    ..block
                });
                Ok(())
            }
            kind::CONTINUATION => {
                let Some(mut block) = self.block.take() else {
                    return protocol;
                };
                block.frames += 1;
                block.bytes.extend_from_slice(payload);
                if block.frames > MAX_BLOCK_FRAMES || block.bytes.len() > limits.max_header_size {
                    return Err(ConnError(Reason::ENHANCE_YOUR_CALM));
                }
                if head.flags & flag::END_HEADERS == 0 {
                    self.block = Some(block);
                    return Ok(());
                }
                let bytes = std::mem::take(&mut block.bytes);
                self.header_block(&block, &bytes, (origin, service), limits, ctx)
            }
            kind::PRIORITY => {
                if head.stream == 0 {
                    return protocol;
                }
                if payload.len() != 5 {
                    match self.find(head.stream) {
                        Some(i) => {
                            self.finish(i, End::Reset(Reason::FRAME_SIZE_ERROR), service, ctx)
                        }
                        None => self.reset_stream(head.stream, Reason::FRAME_SIZE_ERROR),
                    }
                }
                Ok(())
            }
            kind::RST_STREAM => {
                if head.stream == 0 || head.stream > self.last_stream {
                    return protocol;
                }
                if payload.len() != 4 {
                    return Err(ConnError(Reason::FRAME_SIZE_ERROR));
                }
                if let Some(i) = self.find(head.stream) {
                    self.finish(i, End::ResetByClient, service, ctx);
                }
                Ok(())
            }
            kind::SETTINGS => self.settings(head, payload),
            kind::PING => {
                if head.stream != 0 {
                    return protocol;
                }
                if payload.len() != 8 {
                    return Err(ConnError(Reason::FRAME_SIZE_ERROR));
                }
                if head.flags & flag::ACK == 0 {
                    self.control(kind::PING, flag::ACK, 0, payload);
                } else if payload == DRAIN_PING && self.go_away == GoAway::Announced {
                    self.final_go_away();
                }
                Ok(())
            }
            kind::GOAWAY => {
                if head.stream != 0 {
                    return protocol;
                }
                if payload.len() < 8 {
                    return Err(ConnError(Reason::FRAME_SIZE_ERROR));
                }
                self.client_gone = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.window_update(head, payload, service, ctx),
            kind::PUSH_PROMISE => protocol,
            // Unknown frame types are ignored (RFC 9113 §5.5).
            _ => Ok(()),
        }
    }

    /// A DATA frame: flow control, then its stream's body.
    fn data(
        &mut self,
        head: FrameHead,
        payload: &[u8],
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ConnError> {
        if head.stream == 0 || head.stream > self.last_stream {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        if i64::from(head.len) > self.recv_window {
            return Err(ConnError(Reason::FLOW_CONTROL_ERROR));
        }
        self.recv_window -= i64::from(head.len);
        let data = frame::unpad(head.flags, payload).map_err(ConnError)?;
        let end_stream = head.flags & flag::END_STREAM != 0;
        if data.is_empty() && !end_stream && count(&mut self.empty_data, ctx.now, MAX_EMPTY_DATA) {
            return Err(ConnError(Reason::ENHANCE_YOUR_CALM));
        }
        let Some(i) = self.find(head.stream) else {
            // A stream already closed (reset, or answered): its bytes still
            // counted against the connection's window.
            self.owed += head.len;
            return Ok(());
        };
        if let Err(reason) = self.room.streams[i].receive_data(head.len, data, end_stream) {
            self.finish(i, End::Reset(reason), service, ctx);
        }
        Ok(())
    }

    /// A SETTINGS frame: applied and acknowledged.
    fn settings(&mut self, head: FrameHead, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream != 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        if head.flags & flag::ACK != 0 {
            return if payload.is_empty() {
                Ok(())
            } else {
                Err(ConnError(Reason::FRAME_SIZE_ERROR))
            };
        }
        for (id, value) in frame::settings(payload).map_err(ConnError)? {
            match id {
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(ConnError(Reason::PROTOCOL_ERROR));
                }
                setting::INITIAL_WINDOW_SIZE => {
                    if value > frame::MAX_WINDOW {
                        return Err(ConnError(Reason::FLOW_CONTROL_ERROR));
                    }
                    let delta = i64::from(value) - i64::from(self.peer.initial_window);
                    self.peer.initial_window = value;
                    for s in &mut self.room.streams {
                        s.grow_window(delta).map_err(ConnError)?;
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME_SIZE..=0x00ff_ffff).contains(&value) {
                        return Err(ConnError(Reason::PROTOCOL_ERROR));
                    }
                    // Frames the proxy writes stay within what it accepts.
                    self.peer.max_frame = value.min(frame::DEFAULT_MAX_FRAME_SIZE);
                }
                // The response encoder uses no dynamic table, so any table
                // size is honoured; the rest does not concern a server.
                _ => {}
            }
        }
        self.control(kind::SETTINGS, flag::ACK, 0, &[]);
        Ok(())
    }

    /// A WINDOW_UPDATE frame: the connection's or a stream's send window.
    fn window_update(
        &mut self,
        head: FrameHead,
        payload: &[u8],
        service: &ServiceSnapshot,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ConnError> {
        let bytes: [u8; 4] = payload
            .try_into()
            .map_err(|_| ConnError(Reason::FRAME_SIZE_ERROR))?;
        let increment = i64::from(u32::from_be_bytes(bytes) & frame::MAX_WINDOW);
        if head.stream == 0 {
            if increment == 0 {
                return Err(ConnError(Reason::PROTOCOL_ERROR));
            }
            self.send_window += increment;
            if self.send_window > i64::from(frame::MAX_WINDOW) {
                return Err(ConnError(Reason::FLOW_CONTROL_ERROR));
            }
            for s in &mut self.room.streams {
                s.again |= s.sending_body();
            }
            return Ok(());
        }
        if head.stream > self.last_stream {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        let Some(i) = self.find(head.stream) else {
            return Ok(());
        };
        let grown = if increment == 0 {
            Err(Reason::PROTOCOL_ERROR)
        } else {
            self.room.streams[i].grow_window(increment)
        };
        if let Err(reason) = grown {
            // The stream alone: its session ends with it.
            self.finish(i, End::Reset(reason), service, ctx);
        }
        Ok(())
    }

    /// A whole header block: decoded (always, so the HPACK state stays in
    /// step), then a new stream, or the trailers of an open one.
    fn header_block(
        &mut self,
        block: &Block,
        bytes: &[u8],
        (origin, service): (Origin<'_>, &ServiceSnapshot),
        limits: &Limits,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ConnError> {
        self.take_room(ctx);
        let fits = self.decode(bytes, limits)?;
        let id = block.stream;
        if let Some(i) = self.find(id) {
            // Trailers: they end the stream, and are not forwarded.
            let ended = if block.end_stream {
                self.room.streams[i].receive_end()
            } else {
                Err(Reason::PROTOCOL_ERROR)
            };
            if let Err(reason) = ended {
                self.finish(i, End::Reset(reason), service, ctx);
            }
            return Ok(());
        }
        if id <= self.last_stream {
            // A stream already closed.
            return Ok(());
        }
        self.last_stream = id;
        if self.go_away == GoAway::Sent || self.phase == Phase::Closed {
            return Ok(());
        }
        if !fits || self.room.streams.len() >= MAX_STREAMS as usize {
            service.load().h2().add_refused();
            let reason = if fits {
                Reason::REFUSED_STREAM
            } else {
                Reason::PROTOCOL_ERROR
            };
            self.reset_stream(id, reason);
            return Ok(());
        }
        let scratch = std::mem::take(&mut self.room.scratch);
        let mut list = recycle(std::mem::take(&mut self.room.fields));
        list.extend(self.room.spans.iter().map(|&(at, name, value)| {
            let (at, name, value) = (at as usize, name as usize, value as usize);
            Field {
                name: &scratch[at..at + name],
                value: &scratch[at + name..at + name + value],
            }
        }));
        let windows = (self.peer.initial_window, STREAM_WINDOW);
        let opened = Stream::open(id, (&list, block.end_stream), origin, windows, ctx);
        self.room.fields = recycle(list);
        self.room.scratch = scratch;
        match opened {
            Ok(stream) => {
                self.room.streams.push(stream);
            }
            Err(refused) => {
                service.load().h2().add_refused();
                log::debug!("HTTP/2 {refused}");
                self.reset_stream(id, Reason::PROTOCOL_ERROR);
            }
        }
        Ok(())
    }

    /// Decodes a header block into the scratch space (each field's
    /// `(start, name length, value length)` in `spans`): whether the list
    /// fits the limits (`false`: its stream is refused). A block HPACK
    /// cannot decode is a connection error.
    fn decode(&mut self, bytes: &[u8], limits: &Limits) -> Result<bool, ConnError> {
        let limit = limits.max_header_size;
        let (mut size, mut fits) = (0usize, true);
        let scratch = &mut self.room.scratch;
        let spans = &mut self.room.spans;
        scratch.clear();
        spans.clear();
        let decoded = self.decoder.decode(bytes, |name, value| {
            size = size.saturating_add(name.len() + value.len() + 32);
            if size > limit || spans.len() == MAX_FIELDS {
                fits = false;
                return;
            }
            let at = scratch.len();
            scratch.extend_from_slice(name);
            scratch.extend_from_slice(value);
            spans.push((at as u32, name.len() as u32, value.len() as u32));
        });
        decoded.map_err(|_| ConnError(Reason::COMPRESSION_ERROR))?;
        // A list far past the limit (an HPACK bomb) closes the connection.
        if size > limit.saturating_mul(16) {
            return Err(ConnError(Reason::ENHANCE_YOUR_CALM));
        }
        Ok(fits)
    }

    /// The index of stream `id` among the open streams.
    fn find(&self, id: u32) -> Option<usize> {
        self.room.streams.iter().position(|s| s.id == id)
    }
}

/// An empty list of fields on `spare`'s allocation, whatever the
/// lifetime of the fields it held: the list of one request's fields is
/// built without an allocation of its own.
fn recycle<'b>(mut spare: Vec<Field<'_>>) -> Vec<Field<'b>> {
    spare.clear();
    spare
        .into_iter()
        .map(|_| Field {
            name: &[],
            value: &[],
        })
        .collect()
}

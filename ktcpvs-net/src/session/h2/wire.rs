//! The client connection's bytes on their way between the socket and the
//! frame layer: two pooled buffers, and the writer of outbound frames.
//!
//! The session moves bytes between the client's [`Conn`] and these
//! buffers itself (so TLS, readiness and byte counts stay the engine's).
//! Frames are written straight into the outbound buffer by [`Out`], which
//! keeps [`CONTROL_ROOM`] bytes free for the frames the connection owes
//! the client (acknowledgements, window credit, resets, GOAWAY): stream
//! data never takes that room, and the session reads no further frame
//! while it is short, so a client that stops reading stops being read.

use std::io;

use crate::http2::frame::{flag, kind, FrameHead, HEAD_LEN};
use crate::io::buffer::{release_if_empty, Buffer, BufferPool};
use crate::io::conn::{Conn, Fill};

/// Outbound bytes kept free for the connection's own frames.
pub(super) const CONTROL_ROOM: usize = 512;

/// The client connection's bytes between the socket and the frame layer.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    /// Read from the client, not yet taken by the frame layer.
    pub inbound: Option<Buffer>,
    /// The client sent its last byte.
    pub eof: bool,
    /// Frames written, not yet sent to the client.
    pub outbound: Option<Buffer>,
}

/// What moving bytes between the socket and the wire came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Bytes moved (or the end was seen).
    Some,
    /// Nothing could move.
    Nothing,
    /// No buffer could be had: drive again when one is given back.
    Starved,
}

impl Wire {
    /// Reads what the client sent into the inbound buffer, as far as it
    /// has room.
    pub fn read_client(&mut self, client: &mut Conn, pool: &mut BufferPool) -> io::Result<Moved> {
        if self.eof || !client.ready.readable {
            return Ok(Moved::Nothing);
        }
        if self.inbound.is_none() {
            match pool.checkout() {
                Some(b) => self.inbound = Some(b),
                None => return Ok(Moved::Starved),
            }
        }
        let Some(buf) = self.inbound.as_mut() else {
            return Ok(Moved::Nothing);
        };
        buf.compact();
        let mut moved = Moved::Nothing;
        loop {
            match client.fill(buf)? {
                Fill::Data => moved = Moved::Some,
                Fill::Eof => {
                    self.eof = true;
                    return Ok(Moved::Some);
                }
                Fill::WouldBlock | Fill::NoRoom => break,
            }
        }
        release_if_empty(&mut self.inbound);
        Ok(moved)
    }

    /// Sends the frames waiting to the client, as far as it takes them.
    pub fn write_client(&mut self, client: &mut Conn) -> io::Result<Moved> {
        let Some(buf) = self.outbound.as_mut() else {
            return Ok(Moved::Nothing);
        };
        let mut moved = Moved::Nothing;
        while !buf.is_empty() && client.ready.writable {
            let n = client.send(buf.filled())?;
            if n == 0 {
                break;
            }
            buf.consume(n);
            moved = Moved::Some;
        }
        release_if_empty(&mut self.outbound);
        Ok(moved)
    }

    /// Makes sure there is an outbound buffer to write frames into.
    pub fn ready_outbound(&mut self, pool: &mut BufferPool) -> Moved {
        if self.outbound.is_none() {
            match pool.checkout() {
                Some(b) => self.outbound = Some(b),
                None => return Moved::Starved,
            }
        }
        Moved::Some
    }

    /// Whether frames fill half the outbound buffer or more (they are
    /// written at once rather than batched).
    pub fn outbound_half_full(&self) -> bool {
        self.outbound
            .as_ref()
            .is_some_and(|b| b.len() * 2 >= b.capacity())
    }

    /// Whether frames wait for the client.
    pub fn has_outbound(&self) -> bool {
        self.outbound.as_ref().is_some_and(|b| !b.is_empty())
    }

    /// Whether the connection's own frames have their room.
    pub fn control_room(&mut self) -> bool {
        self.outbound
            .as_mut()
            .is_some_and(|b| room(b) >= CONTROL_ROOM)
    }

    /// Writes one of the connection's own frames (it fits in
    /// [`CONTROL_ROOM`]); `false` when there is no room even for it.
    pub fn control(&mut self, head: FrameHead, payload: &[u8]) -> bool {
        match self.outbound.as_mut() {
            Some(buf) => put(buf, head, payload),
            None => false,
        }
    }

    /// Gives back buffers that hold nothing.
    pub fn release(&mut self) {
        release_if_empty(&mut self.inbound);
        release_if_empty(&mut self.outbound);
    }
}

/// The free space of `buf`, compacted first when that makes more.
fn room(buf: &mut Buffer) -> usize {
    if buf.capacity() - buf.len() > buf.spare().len() {
        buf.compact();
    }
    buf.spare().len()
}

/// Appends a frame to `buf` when it fits whole.
fn put(buf: &mut Buffer, head: FrameHead, payload: &[u8]) -> bool {
    if room(buf) < HEAD_LEN + payload.len() {
        return false;
    }
    let spare = buf.spare();
    head.write(&mut spare[..HEAD_LEN]);
    spare[HEAD_LEN..HEAD_LEN + payload.len()].copy_from_slice(payload);
    buf.commit(HEAD_LEN + payload.len());
    true
}

/// Where a stream writes its response frames: the outbound buffer (none
/// when the pool had none), the connection's send window, the client's
/// frame size, and scratch space for a header block or decoded data.
pub(super) struct Out<'a> {
    pub buf: Option<&'a mut Buffer>,
    pub conn_window: &'a mut i64,
    pub max_frame: u32,
    pub scratch: &'a mut Vec<u8>,
}

impl Out<'_> {
    /// The scratch space, emptied.
    pub fn scratch(&mut self) -> &mut Vec<u8> {
        self.scratch.clear();
        self.scratch
    }

    /// Free space for stream frames (the control room kept aside).
    fn stream_room(&mut self) -> usize {
        self.buf
            .as_deref_mut()
            .map_or(0, |b| room(b).saturating_sub(CONTROL_ROOM))
    }

    /// Whether a frame with some payload would fit now.
    pub fn has_room(&mut self) -> bool {
        self.stream_room() > HEAD_LEN
    }

    /// How many DATA bytes may go now on a stream with `window`: the
    /// windows, the frame size and the room allow.
    pub fn data_room(&mut self, window: i64) -> usize {
        let room = self.stream_room().saturating_sub(HEAD_LEN);
        let window = window.min(*self.conn_window).max(0);
        let window = usize::try_from(window).unwrap_or(0);
        room.min(window).min(self.max_frame as usize)
    }

    /// Writes the header block in scratch as HEADERS (and CONTINUATION
    /// frames past the client's frame size) on stream `id` with `flags`;
    /// `Some(false)` when it does not fit yet, `None` when it never will
    /// (larger than the buffer).
    pub fn headers(&mut self, id: u32, flags: u8) -> Option<bool> {
        let max = self.max_frame as usize;
        let block = &self.scratch[..];
        let frames = block.len().div_ceil(max).max(1);
        let Some(buf) = self.buf.as_deref_mut() else {
            return Some(false);
        };
        let need = block.len() + frames * HEAD_LEN + CONTROL_ROOM;
        if need > buf.capacity() {
            // A head that can never fit (far past any usual size).
            return None;
        }
        if room(buf) < need {
            return Some(false);
        }
        let mut pieces = block.chunks(max);
        let first = pieces.next().unwrap_or(&[]);
        let last = frames == 1;
        let head = FrameHead {
            len: first.len() as u32,
            kind: kind::HEADERS,
            flags: flags | if last { flag::END_HEADERS } else { 0 },
            stream: id,
        };
        put(buf, head, first);
        let mut left = frames - 1;
        for piece in pieces {
            left -= 1;
            let head = FrameHead {
                len: piece.len() as u32,
                kind: kind::CONTINUATION,
                flags: if left == 0 { flag::END_HEADERS } else { 0 },
                stream: id,
            };
            put(buf, head, piece);
        }
        Some(true)
    }

    /// Writes `payload` as one DATA frame on stream `id` (it fits: the
    /// caller asked [`data_room`](Self::data_room)).
    pub fn data(&mut self, id: u32, payload: &[u8], end_stream: bool) -> bool {
        let Some(buf) = self.buf.as_deref_mut() else {
            return false;
        };
        let head = FrameHead {
            len: payload.len() as u32,
            kind: kind::DATA,
            flags: if end_stream { flag::END_STREAM } else { 0 },
            stream: id,
        };
        if !put(buf, head, payload) {
            return false;
        }
        *self.conn_window -= payload.len() as i64;
        true
    }

    /// Writes the scratch space as one DATA frame on stream `id`.
    pub fn scratch_data(&mut self, id: u32, end_stream: bool) -> bool {
        let Some(buf) = self.buf.as_deref_mut() else {
            return false;
        };
        let head = FrameHead {
            len: self.scratch.len() as u32,
            kind: kind::DATA,
            flags: if end_stream { flag::END_STREAM } else { 0 },
            stream: id,
        };
        if !put(buf, head, self.scratch) {
            return false;
        }
        *self.conn_window -= self.scratch.len() as i64;
        true
    }
}

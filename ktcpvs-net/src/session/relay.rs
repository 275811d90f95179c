//! One relay loop for every byte stream a session forwards: a message body
//! (framed by its [`BodyState`]) or one direction of a tunnel (a stream
//! that ends when its source closes, [`BodyState::CloseDelimited`]).
//!
//! A [`Direction`] holds what is in flight one way: the buffer bytes wait
//! in (`pending` of them validated and not yet sent) and, with
//! `zerocopy_send`, the kernel pipe of a `splice` relay. [`Direction::relay`]
//! moves bytes from the source to the destination until one of them would
//! block, the body ends, or the pool has no buffer:
//!
//! 1. bytes a pipe holds go out first, then validated buffered bytes;
//! 2. a body whose framing needs no inspection (a `Content-Length` or
//!    close-delimited one) moves through the pipe with `splice` once the
//!    buffer is empty, at most the bytes it has left;
//! 3. otherwise the source is read into the buffer, and the new bytes are
//!    validated by the body's framing before any of them is sent.

use std::io;

use crate::http::{BodyError, BodyState};
use crate::io::buffer::{release_if_empty, Buffer, BufferPool};
use crate::io::conn::{Conn, Fill};
use crate::io::splice::{self, KernelPipe, Relayed};

/// How far one [`Direction::relay`] call got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The body is complete and sent.
    Done,
    /// The stream ended (its source closed) and everything is sent.
    Eof,
    /// Waiting for a socket.
    Blocked,
    /// Waiting for a buffer.
    Starved,
}

/// Why a relay stopped for good.
#[derive(Debug)]
pub(crate) enum RelayError {
    /// A socket failed.
    Io(io::Error),
    /// The source closed before the body was complete.
    Truncated,
    /// The body broke its framing; nothing past its last valid byte went
    /// out.
    Framing(BodyError),
}

impl From<io::Error> for RelayError {
    fn from(e: io::Error) -> Self {
        RelayError::Io(e)
    }
}

/// What is in flight in one direction.
#[derive(Debug, Default)]
pub(crate) struct Direction {
    /// Bytes read from the source; the first `pending` are validated and
    /// wait to be sent, the rest wait to be validated (the next message,
    /// for a body that ended).
    pub buf: Option<Buffer>,
    /// Validated bytes at the front of `buf`, not yet sent.
    pub pending: usize,
    /// With `zerocopy_send`: the kernel pipe bytes go through instead,
    /// made on first use.
    pipe: Option<KernelPipe>,
}

impl Direction {
    /// A direction holding `buf`, if bytes already wait (none validated).
    pub fn new(buf: Option<Buffer>) -> Self {
        Direction {
            buf,
            pending: 0,
            pipe: None,
        }
    }

    /// Whether bytes wait here to be written on (buffered or in the pipe).
    pub fn holds_bytes(&self) -> bool {
        self.buf.as_ref().is_some_and(|b| !b.is_empty()) || self.piped() > 0
    }

    /// Bytes the kernel pipe holds.
    pub fn piped(&self) -> usize {
        self.pipe.as_ref().map_or(0, KernelPipe::held)
    }

    /// Whether the kernel pipe is full (its source can wait off the
    /// poller until the destination drains it).
    pub fn pipe_is_full(&self) -> bool {
        self.pipe.as_ref().is_some_and(KernelPipe::is_full)
    }

    /// Lets everything go: the buffer back to its pool, the pipe closed.
    pub fn clear(&mut self) {
        *self = Direction::default();
    }

    /// Moves `body`'s bytes from `src` to `dst` as far as the sockets and
    /// the pool allow; see the module documentation.
    pub fn relay(
        &mut self,
        src: &mut Conn,
        dst: &mut Conn,
        body: &mut BodyState,
        pool: &mut BufferPool,
        zerocopy: bool,
    ) -> Result<Progress, RelayError> {
        // TLS records and memory ends are read in user space: nothing to splice.
        let zerocopy = zerocopy && src.splice_fd().is_some() && dst.splice_fd().is_some();
        loop {
            if let Some(progress) = self.splice(src, dst, body, zerocopy)? {
                return Ok(progress);
            }
            // What a pipe still holds goes first (the setting may have been
            // switched off, or the body's last bytes are still in it).
            let (_, empty) = splice::drain(&mut self.pipe, dst)?;
            if !empty || !self.send_pending(dst, body)? {
                return Ok(Progress::Blocked);
            }
            if body.is_done() {
                return Ok(Progress::Done);
            }
            if !src.ready.readable {
                release_if_empty(&mut self.buf);
                return Ok(Progress::Blocked);
            }
            if self.spliceable(body, zerocopy) && splice::pipe_for(&mut self.pipe).is_some() {
                // The rest of the body goes through the pipe (above).
                continue;
            }
            if let Some(progress) = self.fill(src, body, pool)? {
                return Ok(progress);
            }
        }
    }

    /// Whether the next bytes may go through the kernel pipe: the buffer
    /// holds nothing, and the body's framing needs no inspection.
    fn spliceable(&self, body: &BodyState, zerocopy: bool) -> bool {
        zerocopy
            && self.buf.as_ref().map_or(true, Buffer::is_empty)
            && !body.is_done()
            && body.opaque_limit().is_some()
    }

    /// Relays through the kernel pipe when the body allows it and there is
    /// something to move; `Some` when the relay must stop.
    fn splice(
        &mut self,
        src: &mut Conn,
        dst: &mut Conn,
        body: &mut BodyState,
        zerocopy: bool,
    ) -> Result<Option<Progress>, RelayError> {
        if !self.spliceable(body, zerocopy) || (self.piped() == 0 && !src.ready.readable) {
            return Ok(None);
        }
        let Some(limit) = body.opaque_limit() else {
            return Ok(None);
        };
        self.buf = None;
        let Some(pipe) = splice::pipe_for(&mut self.pipe) else {
            return Ok(None);
        };
        let relay = pipe.relay(src, dst, limit)?;
        body.advance_opaque(relay.taken);
        match relay.end {
            Relayed::Blocked => Ok(Some(Progress::Blocked)),
            // The body's bytes are all taken; the pipe drains next.
            Relayed::Limit => Ok(None),
            Relayed::Eof => ended(body).map(Some),
        }
    }

    /// Validates what the buffer holds beyond `pending` and sends the
    /// validated bytes; whether all of them went.
    fn send_pending(&mut self, dst: &mut Conn, body: &mut BodyState) -> Result<bool, RelayError> {
        let Some(b) = self.buf.as_mut() else {
            return Ok(true);
        };
        if !body.is_done() && b.len() > self.pending {
            self.pending += body
                .advance(&b.filled()[self.pending..])
                .map_err(RelayError::Framing)?;
        }
        if self.pending > 0 {
            let n = dst.send(&b.filled()[..self.pending])?;
            b.consume(n);
            self.pending -= n;
        }
        Ok(self.pending == 0)
    }

    /// Reads from the source into the buffer (taking one from the pool
    /// first); `Some` when the relay must stop.
    fn fill(
        &mut self,
        src: &mut Conn,
        body: &BodyState,
        pool: &mut BufferPool,
    ) -> Result<Option<Progress>, RelayError> {
        if self.buf.is_none() {
            match pool.checkout() {
                Some(b) => self.buf = Some(b),
                None => return Ok(Some(Progress::Starved)),
            }
        }
        let Some(b) = self.buf.as_mut() else {
            return Ok(Some(Progress::Starved));
        };
        match src.fill(b)? {
            Fill::Data => Ok(None),
            Fill::WouldBlock => {
                release_if_empty(&mut self.buf);
                Ok(Some(Progress::Blocked))
            }
            Fill::NoRoom => Ok(Some(Progress::Blocked)),
            Fill::Eof => ended(body).map(Some),
        }
    }
}

/// The source closed: the end of a close-delimited body, else a truncated
/// one.
fn ended(body: &BodyState) -> Result<Progress, RelayError> {
    if body.is_close_delimited() {
        Ok(Progress::Eof)
    } else {
        Err(RelayError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream as StdStream};
    use std::time::Duration;

    use super::*;
    use crate::http::{Framing, Limits};

    /// A connected pair: the engine's end (non-blocking, as a `Conn`) and
    /// the peer's end (blocking, with a read timeout).
    fn pair() -> (Conn, StdStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (Conn::new(mio::net::TcpStream::from_std(ours), true), peer)
    }

    /// Relays until the body is done or nothing moves for a while.
    fn run(
        dir: &mut Direction,
        src: &mut Conn,
        dst: &mut Conn,
        body: &mut BodyState,
        pool: &mut BufferPool,
    ) -> Result<Progress, RelayError> {
        for _ in 0..200 {
            src.ready.readable = true;
            dst.ready.writable = true;
            match dir.relay(src, dst, body, pool, false)? {
                Progress::Blocked => std::thread::sleep(Duration::from_millis(5)),
                done => return Ok(done),
            }
        }
        Ok(Progress::Blocked)
    }

    fn read_exactly(peer: &mut StdStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        peer.read_exact(&mut got).unwrap();
        got
    }

    #[test]
    fn a_length_body_moves_exactly_its_bytes_and_leaves_the_next_message() {
        let (mut src, mut client) = pair();
        let (mut dst, mut server) = pair();
        let mut pool = BufferPool::new(1024, 4);
        client.write_all(b"hello world|GET /next").unwrap();
        let mut body = BodyState::new(Framing::Length(11), &Limits::default());
        let mut dir = Direction::default();
        assert_eq!(
            run(&mut dir, &mut src, &mut dst, &mut body, &mut pool).unwrap(),
            Progress::Done
        );
        assert_eq!(read_exactly(&mut server, 11), b"hello world");
        assert_eq!(dir.buf.as_ref().unwrap().filled(), b"|GET /next");
        assert_eq!(dir.pending, 0);
    }

    #[test]
    fn a_broken_chunked_body_sends_nothing_past_its_last_valid_byte() {
        let (mut src, mut client) = pair();
        let (mut dst, mut server) = pair();
        let mut pool = BufferPool::new(1024, 4);
        let mut body = BodyState::new(Framing::Chunked, &Limits::default());
        let mut dir = Direction::default();
        client.write_all(b"3\r\nabc\r\n").unwrap();
        assert_eq!(
            run(&mut dir, &mut src, &mut dst, &mut body, &mut pool).unwrap(),
            Progress::Blocked
        );
        assert_eq!(read_exactly(&mut server, 8), b"3\r\nabc\r\n");
        client.write_all(b"zz\r\nsmuggled").unwrap();
        let failed = run(&mut dir, &mut src, &mut dst, &mut body, &mut pool);
        assert!(matches!(failed, Err(RelayError::Framing(_))), "{failed:?}");
        server
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut more = [0u8; 16];
        assert!(
            server.read(&mut more).is_err(),
            "nothing after the valid bytes"
        );
    }

    #[test]
    fn a_stream_ends_when_its_source_closes_and_a_body_is_truncated() {
        let (mut src, client) = pair();
        let (mut dst, mut server) = pair();
        let mut pool = BufferPool::new(1024, 4);
        let mut stream = BodyState::CloseDelimited;
        let mut dir = Direction::default();
        (&client).write_all(b"last bytes").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(
            run(&mut dir, &mut src, &mut dst, &mut stream, &mut pool).unwrap(),
            Progress::Eof
        );
        assert_eq!(read_exactly(&mut server, 10), b"last bytes");

        let (mut src, client) = pair();
        let mut body = BodyState::new(Framing::Length(100), &Limits::default());
        let mut dir = Direction::default();
        (&client).write_all(b"short").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let cut = run(&mut dir, &mut src, &mut dst, &mut body, &mut pool);
        assert!(matches!(cut, Err(RelayError::Truncated)), "{cut:?}");
    }

    #[test]
    fn without_a_buffer_the_relay_waits_starved() {
        let (mut src, mut client) = pair();
        let (mut dst, _server) = pair();
        let mut pool = BufferPool::new(1024, 1);
        let held = pool.checkout();
        client.write_all(b"data").unwrap();
        let mut body = BodyState::new(Framing::Length(4), &Limits::default());
        let mut dir = Direction::default();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            dir.relay(&mut src, &mut dst, &mut body, &mut pool, false)
                .unwrap(),
            Progress::Starved
        );
        drop(held);
        assert_eq!(
            run(&mut dir, &mut src, &mut dst, &mut body, &mut pool).unwrap(),
            Progress::Done
        );
    }
}

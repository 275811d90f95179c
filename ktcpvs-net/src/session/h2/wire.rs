//! What the `h2` state machine reads from and writes to: the client
//! connection's bytes in two pooled buffers, behind the tokio I/O traits
//! the crate polls, and the waker it is polled with.
//!
//! The session moves bytes between the client's [`Conn`] and these
//! buffers itself (so TLS, readiness and byte counts stay the engine's),
//! then polls the connection: a read with nothing buffered is `Pending`
//! (the session reads the socket and polls again), a write into a full
//! buffer is `Pending` (the session writes to the socket and polls
//! again). No task is ever parked on a waker: the worker drives the
//! session on the socket's events, and the waker only records that the
//! crate asked to be polled again (a stream queued a frame).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::io::buffer::{release_if_empty, Buffer, BufferPool};
use crate::io::conn::{Conn, Fill};

/// The client connection's bytes between the socket and `h2`.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    /// Read from the client, not yet taken by `h2`.
    pub inbound: Option<Buffer>,
    /// The client sent its last byte.
    pub eof: bool,
    /// Frames `h2` wrote, not yet sent to the client.
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

    /// Makes sure `h2` has an outbound buffer to write frames into.
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

    /// Gives back buffers that hold nothing.
    pub fn release(&mut self) {
        release_if_empty(&mut self.inbound);
        release_if_empty(&mut self.outbound);
    }
}

/// The I/O object `h2` owns: a handle on the session's [`Wire`].
#[derive(Debug)]
pub(crate) struct WireIo(pub Rc<RefCell<Wire>>);

impl AsyncRead for WireIo {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut wire = self.0.borrow_mut();
        let eof = wire.eof;
        match wire.inbound.as_mut() {
            Some(buf) if !buf.is_empty() => {
                let n = buf.len().min(out.remaining());
                out.put_slice(&buf.filled()[..n]);
                buf.consume(n);
                Poll::Ready(Ok(()))
            }
            // Nothing put: the end of the stream.
            _ if eof => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    }
}

impl AsyncWrite for WireIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut wire = self.0.borrow_mut();
        let Some(buf) = wire.outbound.as_mut() else {
            return Poll::Pending;
        };
        buf.compact();
        let spare = buf.spare();
        if spare.is_empty() {
            return Poll::Pending;
        }
        let n = spare.len().min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        buf.commit(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The session sends the buffer to the socket after every poll.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Records that `h2` asked to be polled again.
#[derive(Debug, Default)]
pub(crate) struct WakeFlag(AtomicBool);

impl WakeFlag {
    /// A waker that sets the flag, and the flag.
    pub fn waker() -> (Waker, Arc<WakeFlag>) {
        let flag = Arc::new(WakeFlag::default());
        (Waker::from(Arc::clone(&flag)), flag)
    }

    /// Whether a wake came since the last call (and clears it).
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }

    /// Whether a wake came since the last [`take`](Self::take), leaving
    /// it set.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

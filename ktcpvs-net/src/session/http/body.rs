//! Relaying one message body between two sockets: validated bytes only,
//! through the session's buffer or, with `zerocopy_send`, through a kernel
//! pipe with `splice` when the framing needs no inspection.

use crate::buffer::{Buffer, BufferPool};
use crate::http::BodyState;
use crate::session::{Conn, Fill};
use crate::splice::{self, KernelPipe};

/// What one body relay call reached.
pub(super) enum BodyStep {
    /// The body is complete and sent.
    Done,
    /// A close-delimited body ended (the source closed) and all is sent.
    Eof,
    /// Waiting for a socket.
    Blocked,
    /// Waiting for a buffer.
    Starved,
}

/// Why a body relay failed.
#[derive(Debug)]
pub(super) enum BodyFail {
    /// A socket error.
    Io,
    /// The source closed before the body was complete.
    Truncated,
    /// The body broke its framing.
    Framing,
}

/// Forwards a body from `src` to `dst` through `buf`: validated bytes only
/// (`pending` of them at the front of the buffer are counted, not sent).
///
/// With `zerocopy`, once the buffer holds nothing, a `Content-Length` or
/// close-delimited body moves through `kernel` with `splice` (at most the
/// bytes the body has left, so nothing of the next message is taken).
#[allow(clippy::too_many_arguments)]
pub(super) fn relay_body(
    src: &mut Conn,
    dst: &mut Conn,
    buf: &mut Option<Buffer>,
    kernel: &mut Option<KernelPipe>,
    zerocopy: bool,
    body: &mut BodyState,
    pending: &mut usize,
    pool: &mut BufferPool,
) -> Result<BodyStep, BodyFail> {
    loop {
        let (_, empty) = splice::drain(kernel, dst).map_err(|_| BodyFail::Io)?;
        if !empty {
            return Ok(BodyStep::Blocked);
        }
        if let Some(b) = buf.as_mut() {
            if !body.is_done() && b.len() > *pending {
                let n = body
                    .advance(&b.filled()[*pending..])
                    .map_err(|_| BodyFail::Framing)?;
                *pending += n;
            }
            if *pending > 0 {
                let n = dst
                    .send(&b.filled()[..*pending])
                    .map_err(|_| BodyFail::Io)?;
                b.consume(n);
                *pending -= n;
                if *pending > 0 {
                    return Ok(BodyStep::Blocked);
                }
            }
        }
        if body.is_done() {
            return Ok(BodyStep::Done);
        }
        if !src.ready.readable {
            pool.release_if_empty(buf);
            return Ok(BodyStep::Blocked);
        }
        if zerocopy && buf.as_ref().map_or(true, Buffer::is_empty) {
            if let Some(limit) = body.opaque_limit() {
                pool.release(buf);
                if let Some(pipe) = splice::pipe_for(kernel) {
                    match pipe.fill_from(src, limit).map_err(|_| BodyFail::Io)? {
                        Fill::Data(n) => body.advance_opaque(n as u64),
                        Fill::NoRoom => {}
                        Fill::WouldBlock => return Ok(BodyStep::Blocked),
                        Fill::Eof => {
                            return if body.is_close_delimited() {
                                Ok(BodyStep::Eof)
                            } else {
                                Err(BodyFail::Truncated)
                            };
                        }
                    }
                    continue;
                }
            }
        }
        if buf.is_none() {
            match pool.checkout() {
                Some(b) => *buf = Some(b),
                None => return Ok(BodyStep::Starved),
            }
        }
        let Some(b) = buf.as_mut() else {
            return Ok(BodyStep::Starved);
        };
        match src.fill(b).map_err(|_| BodyFail::Io)? {
            Fill::Data(_) => {}
            Fill::WouldBlock => {
                pool.release_if_empty(buf);
                return Ok(BodyStep::Blocked);
            }
            Fill::NoRoom => return Ok(BodyStep::Blocked),
            Fill::Eof => {
                return if body.is_close_delimited() {
                    Ok(BodyStep::Eof)
                } else {
                    Err(BodyFail::Truncated)
                };
            }
        }
    }
}

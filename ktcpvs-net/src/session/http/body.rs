//! Relaying one message body between two sockets: validated bytes only,
//! through the session's buffer or, with `zerocopy_send`, through a kernel
//! pipe with `splice` when the framing needs no inspection.

use crate::http::BodyState;
use crate::io::buffer::release_if_empty;
use crate::io::buffer::{Buffer, BufferPool};
use crate::io::conn::{Conn, Fill};
use crate::io::splice::{self, KernelPipe, Relayed};

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
        let spliceable = zerocopy
            && buf.as_ref().map_or(true, Buffer::is_empty)
            && !body.is_done()
            && body.opaque_limit().is_some();
        let piped = kernel.as_ref().map_or(0, KernelPipe::held);
        if spliceable && (piped > 0 || src.ready.readable) {
            if let Some(limit) = body.opaque_limit() {
                *buf = None;
                if let Some(pipe) = splice::pipe_for(kernel) {
                    let relay = pipe.relay(src, dst, limit).map_err(|_| BodyFail::Io)?;
                    body.advance_opaque(relay.taken);
                    match relay.end {
                        Relayed::Blocked => return Ok(BodyStep::Blocked),
                        // The body's bytes are all taken; the pipe drains below.
                        Relayed::Limit => {}
                        Relayed::Eof => {
                            return if body.is_close_delimited() {
                                Ok(BodyStep::Eof)
                            } else {
                                Err(BodyFail::Truncated)
                            };
                        }
                    }
                }
            }
        }
        // What a pipe still holds goes first (the setting may have been
        // switched off, or the body's last bytes are still in it).
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
            release_if_empty(buf);
            return Ok(BodyStep::Blocked);
        }
        let spliceable = zerocopy
            && buf.as_ref().map_or(true, Buffer::is_empty)
            && body.opaque_limit().is_some();
        if spliceable && splice::pipe_for(kernel).is_some() {
            // The rest of the body goes through the pipe (above).
            continue;
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
            Fill::Data => {}
            Fill::WouldBlock => {
                release_if_empty(buf);
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

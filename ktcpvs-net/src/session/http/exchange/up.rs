//! The request side of an exchange: the head goes up (as received, or its
//! rewrite), then the body, validated by its framing as it streams, never
//! a byte past a framing error.

use super::{Down, End, Exchange, Went, Wire};
use crate::http::{BodyState, Framing};
use crate::session::http::{Head, Io};
use crate::session::relay::{Progress, RelayError};

/// The request direction.
#[derive(Debug)]
pub(in crate::session::http) enum Up {
    /// Sending the head; `sent` bytes of it are out.
    Head { sent: usize },
    /// Forwarding the body (its validated, unsent bytes are the up
    /// direction's `pending`).
    Body { body: BodyState },
    /// The whole request is out.
    Sent,
}

impl Exchange {
    /// Sends as much of the request as the backend takes.
    pub(super) fn send_request(&mut self, io: &mut Io, w: &mut Wire<'_>) -> Result<Went, End> {
        let mut went = Went::default();
        loop {
            match &mut self.up {
                Up::Head { sent } => {
                    let bytes: &[u8] = match self.req.head {
                        Head::Verbatim(len) => match io.up.buf.as_ref() {
                            Some(b) => &b.filled()[..len],
                            None => return Err(End::Close),
                        },
                        Head::Rewritten(_) => &io.scratch,
                        Head::Consumed => return Err(End::Close),
                    };
                    match w.link.conn.send(&bytes[*sent..]) {
                        Ok(n) => *sent += n,
                        Err(e) => return Err(End::BackendFailed(e)),
                    }
                    if *sent < bytes.len() {
                        return Ok(went);
                    }
                    went.moved = true;
                    self.up = self.after_head(io, w);
                }
                Up::Body { body } => {
                    match io
                        .up
                        .relay(w.client, &mut w.link.conn, body, w.pool, w.zerocopy)
                    {
                        Ok(Progress::Done) => self.up = Up::Sent,
                        Ok(Progress::Blocked) => return Ok(went),
                        // A request body is never close-delimited.
                        Ok(Progress::Eof) => return Err(End::Close),
                        Ok(Progress::Starved) => {
                            went.starved = true;
                            return Ok(went);
                        }
                        Err(e) => return Err(self.body_failed(e)),
                    }
                }
                Up::Sent => return Ok(went),
            }
        }
    }

    /// The head is out: a request without a body is sent (its head stays
    /// in the buffer, so it can be replayed until the response begins);
    /// one with a body has its head consumed and the body follows.
    fn after_head(&mut self, io: &mut Io, w: &Wire<'_>) -> Up {
        if matches!(self.req.framing, Framing::None | Framing::Length(0)) {
            return Up::Sent;
        }
        if let Some(b) = io.up.buf.as_mut() {
            b.consume(self.req.head.len().min(b.len()));
        }
        self.req.head = Head::Consumed;
        io.up.pending = 0;
        Up::Body {
            body: BodyState::new(self.req.framing, &w.limits),
        }
    }

    /// What a failed request body means for the exchange.
    fn body_failed(&self, e: RelayError) -> End {
        match e {
            RelayError::Io(_) if matches!(self.down, Down::Head) => {
                // A socket failed before any response: the request may have
                // been partly processed, so it is not replayed; the client
                // gets 502.
                self.route.server_error();
                End::Respond(502)
            }
            RelayError::Framing(e) => {
                // The client broke its body's framing: nothing past the
                // last valid byte went up, the backend connection is
                // closed, and the client gets 400 if no response byte
                // reached it yet.
                log::debug!(
                    "[{}] malformed request body ({e}); closing the backend connection",
                    self.route.service.config().name
                );
                End::Respond(400)
            }
            // The client left mid-body (or a socket failed after the
            // response began).
            RelayError::Io(_) | RelayError::Truncated => End::Close,
        }
    }
}

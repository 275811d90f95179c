//! TLS under a [`Conn`](super::conn::Conn): a rustls server connection
//! between the socket and the relays, so that every relay reads and writes
//! plaintext through the same `fill`/`send` as on a plain socket.
//!
//! # Readiness through the TLS layer
//! The layer keeps the socket's readiness as the poller reported it
//! ([`TlsLayer::socket`]); the `Conn`'s own flags become a view of the
//! plaintext side:
//! * **readable** while decrypted bytes wait in rustls or the socket may
//!   hold more. A `fill` hands out decrypted bytes first and reads the
//!   socket only when none wait, so a session that saw `WouldBlock` has
//!   nothing left in rustls (a request that arrived in the same record as
//!   the previous one is never stranded: the flag stays set while it
//!   waits).
//! * **writable** while rustls holds no ciphertext the socket did not take.
//!   A `send` first flushes what waits, then hands rustls at most
//!   [`SEND_LIMIT`] plaintext bytes and flushes again; bytes a `send`
//!   accepted may still wait in rustls, so the session's driver flushes on
//!   every event ([`TlsLayer::flush`]) and a closing connection lingers
//!   until its last record and `close_notify` left.
//!
//! Handshake messages are written while reading: a `fill` that processed
//! a client flight flushes the server's answer at once.

use std::io::{self, IoSlice, Read, Write};

use mio::net::TcpStream;
use rustls::Connection;

use super::buffer::Buffer;
use super::conn::{Fill, Ready, Traffic};

/// Most plaintext one `send` hands rustls: four full records. Bounds the
/// ciphertext a slow client leaves waiting in rustls.
pub(crate) const SEND_LIMIT: usize = 64 * 1024;

/// The socket as rustls reads it, noting whether a read took less than
/// the room rustls offered: such a read drained the socket.
struct Probe<'a> {
    stream: &'a mut TcpStream,
    drained: bool,
}

impl Read for Probe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.drained |= n < buf.len();
        Ok(n)
    }
}

/// The TLS state of one connection: a client's (the proxy is the TLS
/// server) or a real server's (the proxy is the TLS client).
pub(crate) struct TlsLayer {
    /// The rustls connection.
    pub conn: Connection,
    /// The socket's readiness, as the poller reported it.
    pub socket: Ready,
    /// Decrypted bytes waiting in rustls.
    plaintext: usize,
    /// The client sent `close_notify`: after the waiting plaintext, EOF.
    peer_closed: bool,
    /// The write side is to be shut once the ciphertext waiting has left.
    shutdown_pending: bool,
    /// Why the connection failed at the TLS level (a bad handshake, a bad
    /// record): counted and reported when the session closes.
    failure: Option<rustls::Error>,
}

impl std::fmt::Debug for TlsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsLayer")
            .field("socket", &self.socket)
            .field("plaintext", &self.plaintext)
            .field("handshaking", &self.conn.is_handshaking())
            .finish()
    }
}

impl TlsLayer {
    /// A layer over a connection that has not started its handshake.
    pub fn new(mut conn: Connection, socket: Ready) -> TlsLayer {
        conn.set_buffer_limit(Some(SEND_LIMIT));
        TlsLayer {
            conn,
            socket,
            plaintext: 0,
            peer_closed: false,
            shutdown_pending: false,
            failure: None,
        }
    }

    /// The plaintext view of readiness (see the module documentation).
    pub fn view(&self) -> Ready {
        Ready {
            readable: self.plaintext > 0 || self.socket.readable,
            writable: self.socket.writable && !self.conn.wants_write(),
            hup: self.socket.hup,
        }
    }

    /// Why the connection failed at the TLS level, if it did.
    pub fn failure(&self) -> Option<&rustls::Error> {
        self.failure.as_ref()
    }

    /// Whether ciphertext (or a pending shutdown) still waits for the
    /// socket.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write() || self.shutdown_pending
    }

    /// Decrypted bytes into the free space of `buf`, reading and
    /// processing records from `stream` when none wait.
    pub fn fill(
        &mut self,
        stream: &mut TcpStream,
        buf: &mut Buffer,
        traffic: &mut Traffic,
    ) -> io::Result<Fill> {
        loop {
            if self.plaintext > 0 {
                let spare = buf.spare();
                if spare.is_empty() {
                    return Ok(Fill::NoRoom);
                }
                let n = match self.conn.reader().read(spare) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                self.plaintext = self.plaintext.saturating_sub(n);
                if n > 0 {
                    buf.commit(n);
                    traffic.read += n as u64;
                    return Ok(Fill::Data);
                }
                self.plaintext = 0;
            }
            if self.peer_closed {
                return Ok(Fill::Eof);
            }
            if !self.socket.readable {
                return Ok(Fill::WouldBlock);
            }
            let mut probe = Probe {
                stream,
                drained: false,
            };
            match self.conn.read_tls(&mut probe) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(_) => {
                    // A short read drained the socket, as on a plain one
                    // (see the rules in `conn`): no read for `WouldBlock`.
                    if probe.drained && !self.socket.hup {
                        self.socket.readable = false;
                    }
                    self.process(stream)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.socket.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Processes the records read, then writes what the handshake (or an
    /// alert) has to say.
    fn process(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        match self.conn.process_new_packets() {
            Ok(state) => {
                self.plaintext = state.plaintext_bytes_to_read();
                self.peer_closed = state.peer_has_closed();
                self.flush(stream)?;
                Ok(())
            }
            Err(e) => {
                self.failure = Some(e.clone());
                // The alert rustls queued for the peer, if the socket takes
                // it now; the connection is closed either way.
                let _ = self.flush(stream);
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("TLS: {e}"),
                ))
            }
        }
    }

    /// Writes waiting ciphertext while the socket takes it, and shuts the
    /// write side when asked to and nothing waits any more. `Ok(true)`
    /// when nothing waits.
    pub fn flush(&mut self, stream: &mut TcpStream) -> io::Result<bool> {
        while self.conn.wants_write() && self.socket.writable {
            match self.conn.write_tls(stream) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.socket.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.conn.wants_write() {
            return Ok(false);
        }
        if self.shutdown_pending {
            self.shutdown_pending = false;
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        Ok(true)
    }

    /// Hands rustls as much of `parts` as fits (at most [`SEND_LIMIT`]
    /// bytes) once what waited has left, and flushes; returns how many
    /// plaintext bytes were taken.
    pub fn send(
        &mut self,
        stream: &mut TcpStream,
        parts: &[IoSlice<'_>],
        traffic: &mut Traffic,
    ) -> io::Result<usize> {
        if !self.flush(stream)? {
            return Ok(0);
        }
        let taken = match parts {
            [] => 0,
            [one] => self
                .conn
                .writer()
                .write(&one[..one.len().min(SEND_LIMIT)])?,
            many => self.conn.writer().write_vectored(many)?,
        };
        traffic.written += taken as u64;
        self.flush(stream)?;
        Ok(taken)
    }

    /// The server name the client asked for, on a client's connection.
    pub fn server_name(&self) -> Option<&str> {
        match &self.conn {
            Connection::Server(s) => s.server_name(),
            Connection::Client(_) => None,
        }
    }

    /// Moves a handshake the proxy began as TLS client as far as the
    /// socket allows: `Ok(true)` once it is done.
    pub fn advance_handshake(&mut self, stream: &mut TcpStream) -> io::Result<bool> {
        loop {
            self.flush(stream)?;
            if !self.conn.is_handshaking() {
                return Ok(true);
            }
            if !self.socket.readable {
                return Ok(false);
            }
            match self.conn.read_tls(stream) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(_) => self.process(stream)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.socket.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `close_notify` and shuts the socket's write side once every
    /// record before it left.
    pub fn shutdown_write(&mut self, stream: &mut TcpStream) -> io::Result<bool> {
        self.conn.send_close_notify();
        self.shutdown_pending = true;
        self.flush(stream)
    }
}

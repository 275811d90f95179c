//! A socket with its readiness: the one connection type every relay reads
//! and writes through (client sockets and backend connections alike), and
//! the byte counts it keeps for the shared counters.
//!
//! # Edge-triggered readiness rules
//! Sockets are registered once, for reading and writing, edge-triggered. An
//! accepted client socket is registered lazily, the first time its session
//! waits for something the client must do: until then both readiness flags
//! stay set (an accepted socket may hold data), and registering later loses
//! no edge, since `EPOLL_CTL_ADD` reports a socket that is already ready.
//! The rules that keep that correct (those of mio's `Poll` documentation):
//! * **Readiness is a hint.** An event sets a flag in [`Ready`]; the flag is
//!   cleared only when an operation returns `WouldBlock`. A spurious event
//!   costs one syscall that returns `WouldBlock` and nothing else.
//! * **Drain until `WouldBlock`.** While a flag is set the session keeps
//!   reading or writing; it stops with the flag still set only when it has
//!   no room (buffer full, pool empty) — and then it is driven again when
//!   the obstacle goes (the peer became writable, a buffer came back), so no
//!   edge is ever lost.
//! * **`Interrupted` is retried**, never treated as an error.
//! * **Connect completion** is confirmed with `take_error` and `peer_addr`
//!   on the first event, since a writable event alone may be spurious.
//!
//! * **A short read drains.** A read that fills less than the space offered
//!   took everything the socket held, so the readable flag is cleared
//!   without a second read that would only return `WouldBlock`. This is
//!   safe with edge-triggered epoll because Linux queues a new event for
//!   every arrival of data (`sk_data_ready` wakes the epoll item on each
//!   segment, not only on the empty→non-empty transition), so bytes that
//!   arrive after the short read always bring a fresh event. The one
//!   exception is a FIN (or an error) that arrived *before* the event was
//!   reported, together with the data: it brings no further event, so once
//!   an event carried read-closed or error ([`Ready::hup`]) the connection
//!   is read until `0` or `WouldBlock`, as before. A short write likewise
//!   means the send buffer is full: the writable flag is cleared and the
//!   next `EPOLLOUT` edge sets it again.
//!
//! What the poller reported (readiness) is kept apart from what a session
//! wants (its state enums): a state decides which flags it acts on.
//!
//! A client connection of a TLS service carries a [`TlsLayer`]: `fill` and
//! the sends then move plaintext, and the readiness flags are the plaintext
//! view the layer keeps (see [`super::tls`]).

use std::io::{self, IoSlice, Read, Write};

use mio::event::Event;
use mio::net::TcpStream;

use super::buffer::Buffer;
use super::memory::MemoryEnd;
use super::tls::TlsLayer;

/// What the poller last reported about one socket, cleared on `WouldBlock`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    /// A read may make progress.
    pub readable: bool,
    /// A write may make progress.
    pub writable: bool,
    /// An event carried read-closed, hang-up or error: a short read no
    /// longer proves the socket drained (the EOF brings no new event).
    pub hup: bool,
}

impl Ready {
    /// Records an event. Errors and hang-ups set both flags: the next read
    /// or write reports what happened.
    pub fn absorb(&mut self, event: &Event) {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable = true;
        }
        if event.is_read_closed() || event.is_error() {
            self.hup = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            self.writable = true;
        }
    }
}

/// Bytes moved through one socket since they were last flushed to the
/// shared counters (`ServiceLoad`/`ServerLoad::add_bytes`): counted with a
/// plain add per read or write, flushed once per request or relay batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Traffic {
    /// Bytes read from the socket.
    pub read: u64,
    /// Bytes written to the socket.
    pub written: u64,
}

impl Traffic {
    /// Whether nothing moved.
    pub fn is_empty(&self) -> bool {
        self.read == 0 && self.written == 0
    }
}

/// A socket with its readiness (or, for a stream of an HTTP/2
/// connection, the in-memory end the HTTP/1.1 session of that stream reads
/// and writes through: see [`super::memory`]).
#[derive(Debug)]
pub(crate) struct Conn {
    /// What the poller reported (through TLS: the plaintext view; for a
    /// memory end: whether it holds bytes, and room).
    pub ready: Ready,
    /// Bytes moved and not yet flushed to the shared counters.
    pub traffic: Traffic,
    /// Where the bytes go.
    io: Io,
}

/// What a [`Conn`] moves bytes through.
#[derive(Debug)]
enum Io {
    /// A socket, with TLS between it and the relays on a TLS service's
    /// client connections and on connections to servers reached over TLS.
    Socket {
        stream: TcpStream,
        tls: Option<Box<TlsLayer>>,
    },
    /// One HTTP/2 stream's request and response as HTTP/1.1 bytes.
    Memory(Box<MemoryEnd>),
}

/// The result of one read into a buffer.
#[derive(Debug)]
pub(crate) enum Fill {
    /// Bytes were read.
    Data,
    /// Nothing to read now (the readable flag was cleared).
    WouldBlock,
    /// The peer closed its sending side.
    Eof,
    /// The buffer has no free space.
    NoRoom,
}

impl Conn {
    /// Wraps a socket; `ready` says whether to assume it is ready (an
    /// accepted socket may already hold data).
    pub fn new(stream: TcpStream, ready: bool) -> Self {
        Conn {
            ready: Ready {
                readable: ready,
                writable: ready,
                hup: false,
            },
            traffic: Traffic::default(),
            io: Io::Socket { stream, tls: None },
        }
    }

    /// Wraps an accepted socket of a TLS service, its handshake not begun.
    pub fn with_tls(stream: TcpStream, tls: rustls::ServerConnection) -> Self {
        Conn::over_tls(Conn::new(stream, true), tls.into())
    }

    /// Wraps a socket connecting to a real server reached over TLS; the
    /// handshake is driven by [`handshake`](Self::handshake) once the
    /// connect completed.
    pub fn with_client_tls(stream: TcpStream, tls: rustls::ClientConnection) -> Self {
        Conn::over_tls(Conn::new(stream, false), tls.into())
    }

    /// The end an HTTP/2 stream's HTTP/1.1 session reads and writes.
    pub fn memory(end: Box<MemoryEnd>) -> Self {
        let mut conn = Conn {
            ready: Ready::default(),
            traffic: Traffic::default(),
            io: Io::Memory(end),
        };
        conn.refresh();
        conn
    }

    /// The memory end this connection was made from, for a new stream
    /// (`None` for a socket).
    pub fn into_memory_end(self) -> Option<Box<MemoryEnd>> {
        match self.io {
            Io::Memory(end) => Some(end),
            Io::Socket { .. } => None,
        }
    }

    fn over_tls(mut conn: Conn, tls: rustls::Connection) -> Conn {
        let layer = TlsLayer::new(tls, conn.ready);
        conn.ready = layer.view();
        if let Io::Socket { tls, .. } = &mut conn.io {
            *tls = Some(Box::new(layer));
        }
        conn
    }

    /// The socket, unless this is a memory end.
    pub fn socket(&self) -> Option<&TcpStream> {
        match &self.io {
            Io::Socket { stream, .. } => Some(stream),
            Io::Memory(_) => None,
        }
    }

    /// The socket, mutably, unless this is a memory end.
    pub fn socket_mut(&mut self) -> Option<&mut TcpStream> {
        match &mut self.io {
            Io::Socket { stream, .. } => Some(stream),
            Io::Memory(_) => None,
        }
    }

    /// The socket, or `NotConnected` for a memory end.
    pub fn stream(&self) -> io::Result<&TcpStream> {
        self.socket()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// The memory end, if this is one.
    pub fn memory_end(&mut self) -> Option<&mut MemoryEnd> {
        match &mut self.io {
            Io::Memory(end) => Some(end),
            Io::Socket { .. } => None,
        }
    }

    /// Sets a memory end's readiness from what it holds (readable: bytes
    /// or an end wait; writable: it has room). Nothing for a socket.
    pub fn refresh(&mut self) {
        if let Io::Memory(end) = &self.io {
            self.ready.readable = end.readable();
            self.ready.writable = end.writable();
        }
    }

    /// The descriptor `splice(2)` may move bytes through: a plain socket's
    /// (TLS records and memory ends are read and written in user space).
    pub fn splice_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match &self.io {
            Io::Socket { stream, tls: None } => Some(stream.as_raw_fd()),
            _ => None,
        }
    }

    fn tls(&self) -> Option<&TlsLayer> {
        match &self.io {
            Io::Socket { tls, .. } => tls.as_deref(),
            Io::Memory(_) => None,
        }
    }

    /// Moves the TLS handshake of a connection to a real server on;
    /// `Ok(true)` once it is done (at once on a plain connection).
    pub fn handshake(&mut self) -> io::Result<bool> {
        let Io::Socket {
            stream,
            tls: Some(tls),
        } = &mut self.io
        else {
            return Ok(true);
        };
        let done = tls.advance_handshake(stream);
        self.ready = tls.view();
        done
    }

    /// Records a readiness event (on the socket; through TLS, the view
    /// follows).
    pub fn absorb(&mut self, event: &Event) {
        match &mut self.io {
            Io::Socket { tls: Some(tls), .. } => {
                tls.socket.absorb(event);
                self.ready = tls.view();
            }
            _ => self.ready.absorb(event),
        }
    }

    /// Sets what the socket is assumed ready for where no event says it
    /// (a connect just confirmed, a pooled connection just proved quiet):
    /// through TLS, the socket's flags, the view following.
    pub fn assume_ready(&mut self, readable: bool, writable: bool) {
        match &mut self.io {
            Io::Socket { tls: Some(tls), .. } => {
                tls.socket.readable = readable;
                tls.socket.writable = writable;
                self.ready = tls.view();
            }
            _ => {
                self.ready.readable = readable;
                self.ready.writable = writable;
            }
        }
    }

    /// Whether the client reached the proxy over TLS (a memory end: whether
    /// its HTTP/2 connection runs TLS). Such bytes cannot be spliced.
    pub fn is_tls(&self) -> bool {
        match &self.io {
            Io::Socket { tls, .. } => tls.is_some(),
            Io::Memory(end) => end.tls,
        }
    }

    /// The server name the client sent in its TLS handshake, if any.
    pub fn server_name(&self) -> Option<&str> {
        match &self.io {
            Io::Socket { tls, .. } => tls.as_ref().and_then(|t| t.server_name()),
            Io::Memory(end) => end.server_name.as_deref(),
        }
    }

    /// The protocol ALPN agreed on, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.tls().and_then(|t| t.conn.alpn_protocol())
    }

    /// Whether a TLS handshake is still under way (the header timeout
    /// bounds it).
    pub fn is_handshaking(&self) -> bool {
        self.tls().is_some_and(|t| t.conn.is_handshaking())
    }

    /// Why the connection failed at the TLS level, if it did.
    pub fn tls_failure(&self) -> Option<&rustls::Error> {
        self.tls().and_then(|t| t.failure())
    }

    /// Whether bytes a send accepted still wait to be written (TLS
    /// records, or a `close_notify` and the shutdown after it).
    pub fn wants_write(&self) -> bool {
        self.tls().is_some_and(|t| t.wants_write())
    }

    /// Writes what waits (see [`wants_write`](Self::wants_write)) as far
    /// as the socket takes it; `Ok(true)` when nothing waits any more.
    pub fn flush(&mut self) -> io::Result<bool> {
        let Io::Socket {
            stream,
            tls: Some(tls),
        } = &mut self.io
        else {
            return Ok(true);
        };
        let flushed = tls.flush(stream);
        self.ready = tls.view();
        flushed
    }

    /// Shuts the write side: at once on a plain socket; through TLS after
    /// a `close_notify`, once every record before it left (`Ok(false)`:
    /// not yet, [`flush`](Self::flush) finishes it).
    pub fn shutdown_write(&mut self) -> io::Result<bool> {
        match &mut self.io {
            Io::Socket { stream, tls: None } => {
                stream.shutdown(std::net::Shutdown::Write).map(|()| true)
            }
            Io::Socket {
                stream,
                tls: Some(tls),
            } => {
                let done = tls.shutdown_write(stream);
                self.ready = tls.view();
                done
            }
            Io::Memory(end) => {
                end.write_shut = true;
                Ok(true)
            }
        }
    }

    /// Takes the bytes counted since the last call.
    pub fn take_traffic(&mut self) -> Traffic {
        std::mem::take(&mut self.traffic)
    }

    /// One read into the free space of `buf`. A short read clears the
    /// readable flag (see the module documentation: it drained the socket).
    pub fn fill(&mut self, buf: &mut Buffer) -> io::Result<Fill> {
        let stream = match &mut self.io {
            Io::Socket {
                stream,
                tls: Some(tls),
            } => {
                let filled = tls.fill(stream, buf, &mut self.traffic);
                self.ready = tls.view();
                return filled;
            }
            Io::Memory(end) => {
                let filled = end.fill(buf, &mut self.traffic);
                self.ready.readable = end.readable();
                return Ok(filled);
            }
            Io::Socket { stream, tls: None } => stream,
        };
        if !self.ready.readable {
            return Ok(Fill::WouldBlock);
        }
        let spare = buf.spare();
        if spare.is_empty() {
            return Ok(Fill::NoRoom);
        }
        let offered = spare.len();
        loop {
            match stream.read(spare) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(n) => {
                    buf.commit(n);
                    self.traffic.read += n as u64;
                    if n < offered && !self.ready.hup {
                        self.ready.readable = false;
                    }
                    return Ok(Fill::Data);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready.readable = false;
                    return Ok(Fill::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes as much of `bytes` as the socket takes; returns how much.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let stream = match &mut self.io {
            Io::Socket { stream, tls: None } => stream,
            _ => {
                let mut done = 0;
                while done < bytes.len() && self.ready.writable {
                    match self.send_vectored(&[IoSlice::new(&bytes[done..])])? {
                        0 => break,
                        n => done += n,
                    }
                }
                return Ok(done);
            }
        };
        let mut done = 0;
        while done < bytes.len() && self.ready.writable {
            match stream.write(&bytes[done..]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    done += n;
                    self.traffic.written += n as u64;
                    if done < bytes.len() {
                        // A short write: the send buffer is full.
                        self.ready.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// One vectored write of `parts` (`writev`): as much as the socket
    /// takes; returns how many bytes went. A short write clears the
    /// writable flag, as in [`send`](Self::send).
    pub fn send_vectored(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let stream = match &mut self.io {
            Io::Socket {
                stream,
                tls: Some(tls),
            } => {
                let sent = tls.send(stream, parts, &mut self.traffic);
                self.ready = tls.view();
                return sent;
            }
            Io::Memory(end) => {
                let sent = end.send(parts, &mut self.traffic);
                self.ready.writable = end.writable();
                return Ok(sent);
            }
            Io::Socket { stream, tls: None } => stream,
        };
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 || !self.ready.writable {
            return Ok(0);
        }
        loop {
            match stream.write_vectored(parts) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    self.traffic.written += n as u64;
                    if n < total {
                        self.ready.writable = false;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready.writable = false;
                    return Ok(0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

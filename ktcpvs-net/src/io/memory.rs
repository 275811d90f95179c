//! The in-memory end of one HTTP/2 stream: what the stream's HTTP/1.1
//! session reads (the request the HTTP/2 layer wrote as HTTP/1.1, then its
//! body) and writes (the HTTP/1.1 response the HTTP/2 layer turns into
//! HEADERS and DATA frames), through the same [`Conn`](super::conn::Conn)
//! calls as a socket. Each way is bounded: a full outbound side tells the
//! session to wait, exactly as a full socket does, so a client that opens
//! no flow-control window holds back its server through the session's own
//! timeouts and nothing grows.

use std::io::IoSlice;

use super::buffer::Buffer;
use super::conn::{Fill, Traffic};
use crate::http::Framing;

/// Most response bytes one stream's end holds before its session waits.
pub(crate) const OUTBOUND_LIMIT: usize = 64 * 1024;

/// What each side reserves when a stream opens.
const INITIAL_CAPACITY: usize = 1024;

/// Fields a forwarded head usually has room for without growing.
const FIELD_SPANS: usize = 16;

/// Where one field of a response head lies within the head: the byte
/// ranges (start, end) of its name and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldSpan {
    /// The name's range.
    pub name: (u32, u32),
    /// The value's range.
    pub value: (u32, u32),
}

/// The final response head a session forwarded unchanged (byte for byte,
/// at the front of the outbound bytes), as the session's parse of it found
/// it: its status, its length and its fields.
#[derive(Debug, Default)]
pub(crate) struct ForwardedHead {
    /// The head's status and length once one is noted; `None` while none
    /// is (the HTTP/2 side then splits the head itself).
    pub noted: Option<(u16, usize)>,
    /// The head's fields, in order (the room is kept from stream to
    /// stream).
    pub fields: Vec<FieldSpan>,
}

impl ForwardedHead {
    /// Forgets the noted head, keeping the room for the next.
    pub fn clear(&mut self) {
        self.noted = None;
        self.fields.clear();
    }
}

/// One HTTP/2 stream's bytes, as HTTP/1.1.
#[derive(Debug, Default)]
pub(crate) struct MemoryEnd {
    /// Request bytes for the session, from `read`.
    inbound: Vec<u8>,
    /// How much of `inbound` the session has read.
    read: usize,
    /// The HTTP/2 side wrote the whole request: after `inbound`, EOF.
    pub inbound_done: bool,
    /// Response bytes the session wrote, not yet taken by the HTTP/2 side.
    pub outbound: Vec<u8>,
    /// The session shut its write side (it closes the exchange).
    pub write_shut: bool,
    /// The body framing the session decided for the final response head
    /// it forwarded from a server, set when that response starts: the
    /// HTTP/2 side takes it rather than working it out again from the
    /// head. `None` for a response the session wrote itself (an error
    /// page, a redirect), which the HTTP/2 side parses in full.
    pub response_framing: Option<Framing>,
    /// The fields of the final response head the session forwarded byte
    /// for byte, as its parse found them, so the HTTP/2 side need not
    /// split the head again.
    pub forwarded: ForwardedHead,
    /// Whether the HTTP/2 connection runs TLS.
    pub tls: bool,
    /// The server name of its TLS handshake.
    pub server_name: Option<Box<str>>,
}

impl MemoryEnd {
    /// An end for a stream of a connection that runs TLS (or not) with
    /// this server name.
    pub fn new(tls: bool, server_name: Option<&str>) -> MemoryEnd {
        MemoryEnd {
            // One allocation each that fits a usual head (and a small
            // response), instead of a growth step per write.
            inbound: Vec::with_capacity(INITIAL_CAPACITY),
            outbound: Vec::with_capacity(INITIAL_CAPACITY),
            forwarded: ForwardedHead {
                noted: None,
                fields: Vec::with_capacity(FIELD_SPANS),
            },
            tls,
            server_name: server_name.map(Box::from),
            ..MemoryEnd::default()
        }
    }

    /// The end of a stream that ended, emptied for a new stream of a
    /// connection that runs TLS (or not) with this server name; it keeps
    /// the room its buffers had, up to [`OUTBOUND_LIMIT`] each.
    pub fn reuse(mut self: Box<Self>, tls: bool, server_name: Option<&str>) -> Box<MemoryEnd> {
        let (mut inbound, mut outbound) = (
            std::mem::take(&mut self.inbound),
            std::mem::take(&mut self.outbound),
        );
        for buf in [&mut inbound, &mut outbound] {
            buf.clear();
            if buf.capacity() > OUTBOUND_LIMIT {
                *buf = Vec::with_capacity(INITIAL_CAPACITY);
            }
        }
        let keep_name = self.server_name.as_deref() == server_name;
        let name = if keep_name {
            self.server_name.take()
        } else {
            server_name.map(Box::from)
        };
        let mut forwarded = std::mem::take(&mut self.forwarded);
        forwarded.clear();
        *self = MemoryEnd {
            inbound,
            outbound,
            forwarded,
            tls,
            server_name: name,
            ..MemoryEnd::default()
        };
        self
    }

    /// Request bytes the session has not read yet.
    pub fn unread(&self) -> usize {
        self.inbound.len() - self.read
    }

    /// Appends request bytes for the session.
    pub fn push_inbound(&mut self, bytes: &[u8]) {
        if self.read == self.inbound.len() {
            self.inbound.clear();
            self.read = 0;
        }
        self.inbound.extend_from_slice(bytes);
    }

    /// The request bytes' buffer, to write into directly (the HTTP/1.1
    /// head the downgrade builds); compacted first.
    pub fn inbound_mut(&mut self) -> &mut Vec<u8> {
        if self.read > 0 {
            self.inbound.drain(..self.read);
            self.read = 0;
        }
        &mut self.inbound
    }

    /// Whether a read would make progress (bytes, or the end).
    pub fn readable(&self) -> bool {
        self.unread() > 0 || self.inbound_done
    }

    /// Whether a write would make progress.
    pub fn writable(&self) -> bool {
        self.outbound.len() < OUTBOUND_LIMIT && !self.write_shut
    }

    /// Copies unread request bytes into `buf`.
    pub fn fill(&mut self, buf: &mut Buffer, traffic: &mut Traffic) -> Fill {
        if self.unread() == 0 {
            return if self.inbound_done {
                Fill::Eof
            } else {
                Fill::WouldBlock
            };
        }
        let spare = buf.spare();
        if spare.is_empty() {
            return Fill::NoRoom;
        }
        let n = spare.len().min(self.unread());
        spare[..n].copy_from_slice(&self.inbound[self.read..self.read + n]);
        buf.commit(n);
        self.read += n;
        traffic.read += n as u64;
        Fill::Data
    }

    /// Takes as much of `parts` as the outbound side has room for.
    pub fn send(&mut self, parts: &[IoSlice<'_>], traffic: &mut Traffic) -> usize {
        let mut taken = 0;
        for part in parts {
            let room = OUTBOUND_LIMIT.saturating_sub(self.outbound.len());
            if room == 0 || self.write_shut {
                break;
            }
            let n = part.len().min(room);
            self.outbound.extend_from_slice(&part[..n]);
            taken += n;
            if n < part.len() {
                break;
            }
        }
        traffic.written += taken as u64;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::buffer::BufferPool;

    #[test]
    fn an_end_reads_what_was_pushed_then_waits_then_ends() {
        let mut pool = BufferPool::new(8, 2);
        let mut buf = pool.checkout().expect("a buffer");
        let mut end = MemoryEnd::new(false, None);
        let mut traffic = Traffic::default();
        assert!(matches!(end.fill(&mut buf, &mut traffic), Fill::WouldBlock));
        end.push_inbound(b"0123456789");
        assert!(matches!(end.fill(&mut buf, &mut traffic), Fill::Data));
        assert_eq!(buf.filled(), b"01234567");
        assert!(matches!(end.fill(&mut buf, &mut traffic), Fill::NoRoom));
        buf.consume(8);
        assert!(matches!(end.fill(&mut buf, &mut traffic), Fill::Data));
        assert_eq!(buf.filled(), b"89");
        end.inbound_done = true;
        assert!(matches!(end.fill(&mut buf, &mut traffic), Fill::Eof));
        assert_eq!(traffic.read, 10);
    }

    #[test]
    fn an_end_takes_no_more_than_its_limit() {
        let mut end = MemoryEnd::new(true, Some("a.test"));
        let mut traffic = Traffic::default();
        let big = vec![7u8; OUTBOUND_LIMIT + 10];
        let n = end.send(&[IoSlice::new(b"head"), IoSlice::new(&big)], &mut traffic);
        assert_eq!(n, OUTBOUND_LIMIT);
        assert!(!end.writable());
        assert_eq!(end.send(&[IoSlice::new(b"x")], &mut traffic), 0);
        end.outbound.clear();
        assert!(end.writable());
    }
}

//! The access-log line of the request in flight: its start is captured
//! when the head is routed (the request line, in a buffer from the access
//! log's free list, since the head leaves the client buffer once sent), the
//! rest is filled in as the request goes (server, connect time, status,
//! first byte), and the line is written when it ends: completed, answered
//! by the proxy, or cut.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::RequestHead;

use crate::access_log::Record;
use crate::session::Ctx;

/// What is known of the request in flight, for its log line; kept small,
/// as every active session carries one while logging.
#[derive(Debug)]
pub(crate) struct PendingLog {
    /// `METHOD TARGET HTTP/1.x`.
    line: Vec<u8>,
    arrived: Instant,
    /// The client's address and port, apart so they pack with the rest.
    client_ip: IpAddr,
    client_port: u16,
    /// The routing rule's position, [`NONE`] for none.
    pub rule: u32,
    /// The server's index in the service, [`NONE`] for none.
    pub server: u32,
    /// Microseconds, [`NONE`] for unknown.
    pub connect_us: u32,
    pub first_byte_us: u32,
    pub status: u16,
    pub retries: u16,
}

/// An absent field of [`PendingLog`].
pub(crate) const NONE: u32 = u32::MAX;

/// A duration as [`PendingLog`] keeps it.
pub(crate) fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(NONE - 1)
}

fn known(v: u32) -> Option<u32> {
    (v != NONE).then_some(v)
}

impl PendingLog {
    /// The start of the line of `head` from `client`, when an access log
    /// is on; `version` is the request's protocol (0: HTTP/1.0, 1:
    /// HTTP/1.1, 2: an HTTP/2 stream).
    pub fn start(
        head: &RequestHead<'_>,
        version: u8,
        client: SocketAddr,
        ctx: &Ctx<'_>,
    ) -> Option<PendingLog> {
        let (log, _) = ctx.logging()?;
        let mut line = log.buffer();
        line.extend_from_slice(head.method.as_bytes());
        line.push(b' ');
        line.extend_from_slice(head.target.as_bytes());
        line.extend_from_slice(match version {
            0 => b" HTTP/1.0",
            2 => b" HTTP/2.0",
            _ => b" HTTP/1.1",
        });
        Some(PendingLog {
            line,
            arrived: ctx.now,
            client_ip: client.ip(),
            client_port: client.port(),
            rule: NONE,
            server: NONE,
            connect_us: NONE,
            first_byte_us: NONE,
            status: 0,
            retries: 0,
        })
    }

    /// Gives the buffers back without writing a line.
    pub fn discard(self, log: &crate::access_log::AccessLog) {
        log.recycle(self.line);
    }

    /// Writes the line for `service` (bytes from and to the client), how it
    /// `end`ed, and gives its buffers back.
    pub fn finish(self, service: &ServiceSnapshot, bytes: (u64, u64), end: &str, ctx: &Ctx<'_>) {
        let Some(log) = ctx.access_log else {
            return;
        };
        let Some((_, format)) = ctx.logging() else {
            log.recycle(self.line);
            return;
        };
        let total = ctx.now.saturating_duration_since(self.arrived);
        let us = |v: u32| known(v).map(|v| Duration::from_micros(u64::from(v)));
        let record = Record {
            time: SystemTime::now()
                .checked_sub(total)
                .unwrap_or_else(SystemTime::now),
            client: SocketAddr::new(self.client_ip, self.client_port),
            service: &service.config().name,
            rule: known(self.rule).map(|r| r as usize),
            server: known(self.server)
                .and_then(|i| service.server_entries().get(i as usize))
                .map(|e| e.config().addr),
            request_line: &self.line,
            status: self.status,
            bytes_in: bytes.0,
            bytes_out: bytes.1,
            connect: us(self.connect_us),
            first_byte: us(self.first_byte_us),
            total,
            retries: u32::from(self.retries),
            end,
        };
        let mut out = log.buffer();
        record.write(format, &mut out);
        log.submit(out);
        log.recycle(self.line);
    }
}

//! One active health probe of one real server: a connect (and TLS
//! handshake) through the same [`Backends`] code real traffic uses, then
//! for an HTTP check a request and its response, judged against the
//! service's expectations. A probe is a small state machine driven by
//! readiness events, as a session is; the checker owns many at once.

use std::io;
use std::mem::MaybeUninit;

use ktcpvs_core::health::{CheckKind, HealthConfig};

use super::pool::{Backends, ConnectCheck};
use crate::http::{parse_response_uninit, Limits, Method};
use crate::io::buffer::{Buffer, BufferPool};
use crate::io::conn::Fill;

/// Header slots lent to the response parser of a probe.
const PROBE_HEADER_SLOTS: usize = 64;

/// Where a probe is.
#[derive(Debug)]
pub(crate) enum Phase {
    /// The connect (and handshake) is in progress.
    Connecting,
    /// The request is being written; `sent` bytes of it went out.
    Sending { sent: usize },
    /// The response is being read into `buf`.
    Receiving { buf: Buffer },
}

/// What one step of a probe came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Nothing decided yet: wait for the next event.
    Pending,
    /// The server passed.
    Passed,
    /// The server failed, and why (for the log and the listing).
    Failed(String),
}

/// A probe in flight: its backend connection and the request it sends
/// (empty for a TCP check).
#[derive(Debug)]
pub(crate) struct Probe {
    pub conn: usize,
    pub phase: Phase,
    request: Vec<u8>,
}

/// The request an HTTP check sends to a server whose address (or the
/// configured `check_host`) is `host`: a `Connection: close` request so
/// the response ends with the connection.
pub(crate) fn check_request(health: &HealthConfig, host: &str) -> Vec<u8> {
    let host = health.host.as_deref().unwrap_or(host);
    format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ktcpvs-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        health.method, health.path
    )
    .into_bytes()
}

impl Probe {
    /// A probe over the connection `conn` being opened; `request` is what
    /// an HTTP check sends (empty for a TCP check).
    pub fn new(conn: usize, request: Vec<u8>) -> Probe {
        Probe {
            conn,
            phase: Phase::Connecting,
            request,
        }
    }

    /// Does all the I/O it can and judges what came back.
    pub fn step(
        &mut self,
        health: &HealthConfig,
        backends: &mut Backends,
        pool: &mut BufferPool,
    ) -> Outcome {
        loop {
            match &mut self.phase {
                Phase::Connecting => match backends.check_connect(self.conn) {
                    ConnectCheck::Pending => return Outcome::Pending,
                    ConnectCheck::Failed(e) => return Outcome::Failed(format!("connect: {e}")),
                    ConnectCheck::Connected => {
                        if health.check != Some(CheckKind::Http) {
                            return Outcome::Passed;
                        }
                        self.phase = Phase::Sending { sent: 0 };
                    }
                },
                Phase::Sending { sent } => {
                    let Some(b) = backends.get_mut(self.conn) else {
                        return Outcome::Failed("connection lost".into());
                    };
                    match b.conn.send(&self.request[*sent..]) {
                        Ok(n) => *sent += n,
                        Err(e) => return Outcome::Failed(format!("sending the check: {e}")),
                    }
                    match b.conn.flush() {
                        Ok(_) => {}
                        Err(e) => return Outcome::Failed(format!("sending the check: {e}")),
                    }
                    if *sent < self.request.len() {
                        return Outcome::Pending;
                    }
                    let Some(buf) = pool.checkout() else {
                        return Outcome::Failed("no buffer for the response".into());
                    };
                    self.phase = Phase::Receiving { buf };
                }
                Phase::Receiving { buf } => {
                    let Some(b) = backends.get_mut(self.conn) else {
                        return Outcome::Failed("connection lost".into());
                    };
                    let fill = b.conn.fill(buf);
                    let ended = match fill {
                        Ok(Fill::Data) => false,
                        Ok(Fill::WouldBlock) => {
                            return judge(health, buf.filled(), false);
                        }
                        Ok(Fill::NoRoom | Fill::Eof) => true,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                        Err(e) => return Outcome::Failed(format!("reading the response: {e}")),
                    };
                    match judge(health, buf.filled(), ended) {
                        Outcome::Pending if ended => {
                            return Outcome::Failed("the response ended early".into())
                        }
                        Outcome::Pending => {}
                        done => return done,
                    }
                }
            }
        }
    }
}

/// Judges the response bytes read so far: the status must be in the
/// expected range and, when a body text is expected, the body must hold
/// it. `ended`: no more bytes will come.
pub(crate) fn judge(health: &HealthConfig, bytes: &[u8], ended: bool) -> Outcome {
    let mut slots = [const { MaybeUninit::uninit() }; PROBE_HEADER_SLOTS];
    let limits = Limits::default();
    let head_len = match parse_response_uninit(bytes, &mut slots, Method::Get, &limits) {
        Err(e) => return Outcome::Failed(format!("bad response: {e}")),
        Ok(None) => return Outcome::Pending,
        Ok(Some((info, _))) if info.interim => {
            // A 1xx before the real response: judge what follows it.
            return judge(health, &bytes[info.head_len..], ended);
        }
        Ok(Some((info, _))) => {
            let (lo, hi) = health.status;
            if info.status < lo || info.status > hi {
                return Outcome::Failed(format!("status {}", info.status));
            }
            info.head_len
        }
    };
    let Some(want) = &health.body else {
        return Outcome::Passed;
    };
    let body = &bytes[head_len..];
    if body
        .windows(want.len().max(1))
        .any(|w| w == want.as_bytes())
    {
        Outcome::Passed
    } else if ended {
        Outcome::Failed(format!("body without {want:?}"))
    } else {
        Outcome::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(body: Option<&str>, status: &str) -> HealthConfig {
        let mut h = HealthConfig::default();
        h.set("check", "http").unwrap();
        h.set("check_status", status).unwrap();
        if let Some(b) = body {
            h.set("check_body", b).unwrap();
        }
        h
    }

    #[test]
    fn a_response_is_judged_on_its_status_and_body() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nall ok\n";
        assert_eq!(judge(&http(None, "200-399"), ok, false), Outcome::Passed);
        assert_eq!(judge(&http(Some("ok"), "200"), ok, false), Outcome::Passed);
        assert_eq!(
            judge(&http(Some("ready"), "200"), ok, true),
            Outcome::Failed("body without \"ready\"".into())
        );
        assert_eq!(
            judge(&http(Some("ready"), "200"), ok, false),
            Outcome::Pending
        );
        let bad = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";
        assert_eq!(
            judge(&http(None, "200-399"), bad, true),
            Outcome::Failed("status 503".into())
        );
        assert_eq!(
            judge(&http(None, "200"), b"HTTP/1.1 20", false),
            Outcome::Pending
        );
        assert!(matches!(
            judge(&http(None, "200"), b"SSH-2.0-OpenSSH\r\n\r\n", true),
            Outcome::Failed(_)
        ));
        let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(judge(&http(None, "204"), interim, true), Outcome::Passed);
    }

    #[test]
    fn the_check_request_names_the_host_and_closes() {
        let mut h = http(None, "200");
        h.set("check_path", "/healthz").unwrap();
        let req = String::from_utf8(check_request(&h, "10.0.0.1:80")).unwrap();
        assert!(req.starts_with("GET /healthz HTTP/1.1\r\nHost: 10.0.0.1:80\r\n"));
        assert!(req.ends_with("Connection: close\r\n\r\n"));
        h.set("check_host", "app.example").unwrap();
        let req = String::from_utf8(check_request(&h, "10.0.0.1:80")).unwrap();
        assert!(req.contains("Host: app.example\r\n"));
    }
}

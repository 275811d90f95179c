//! The admin listener: a small HTTP/1.1 endpoint, off the engine's request
//! path, for monitoring.
//!
//! | target | answer |
//! |---|---|
//! | `GET /metrics` | every figure in the Prometheus text format ([`MetricsSnapshot::to_prometheus`]) |
//! | `GET /healthz` | `200 ok` while the node serves, `503 draining` while it drains or runs no service, so an L4 tier takes it out first |
//! | `GET /stats` | the same figures as JSON ([`MetricsSnapshot::to_json`]) |
//! | `GET /` | the status page: one HTML document (its CSS and script inline, all embedded in the binary) that polls `/stats` |
//! | `POST /api/action` | with a token only: an action of the status page ([`actions`]) |
//!
//! It runs on threads of its own: one accepting, one per connection (at
//! most [`MAX_CONNECTIONS`] at once; more are closed at once). A request
//! head must arrive within [`READ_TIMEOUT`] and fit [`MAX_HEAD`] bytes; it
//! is parsed by the engine's own strict parser, and anything but `GET` or
//! `HEAD` of a known target gets 405 or 404. A body is read only for an
//! action, and only up to [`actions::MAX_BODY`] bytes. Every answer closes
//! the connection. The listener is read-only unless it was given
//! [`Actions`] (an operator's token): then the status page's actions go
//! through the same control API as `tcpvsadm`'s requests.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ktcpvs_core::scheduler::RequestHead;
use ktcpvs_core::Control;
use ktcpvs_net::http::{parse_request_uninit, Framing, Limits};
use ktcpvs_net::EngineObserver;

use crate::control_socket::Reply;
use crate::metrics::MetricsSnapshot;

pub mod actions;
mod page;

pub use actions::{ActionError, Actions, ACTIONS_KEPT};

/// Most admin connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// Time a client has to send its request head, and to read the answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// What the admin listener reads its figures from, and carries actions
/// out with.
#[derive(Clone)]
struct Source {
    control: Control,
    engine: Option<EngineObserver>,
    actions: Option<Arc<Actions>>,
}

/// A running admin listener; stopped (and its threads joined) when
/// dropped or [`stop`](Self::stop)ped.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    /// A descriptor on the listening socket, to hand to a next process.
    listener: TcpListener,
}

/// How often the acceptor looks at its stop flag. It waits for
/// connections with `poll`, not a blocking `accept`: a listening socket
/// handed to a next process is shared with it, so a connection made to
/// wake the acceptor could reach the other process instead.
const STOP_CHECK: u16 = 100;

impl AdminServer {
    /// Binds `addr` and serves the figures of `control`'s configuration and,
    /// when given, of the engine behind `engine`.
    ///
    /// ```
    /// let control = ktcpvs::new_control();
    /// let admin = ktcpvs::admin::AdminServer::start(
    ///     "127.0.0.1:0".parse().unwrap(), control, None)?;
    /// let mut s = std::net::TcpStream::connect(admin.local_addr())?;
    /// use std::io::{Read, Write};
    /// s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")?;
    /// let mut answer = String::new();
    /// s.read_to_string(&mut answer)?;
    /// assert!(answer.starts_with("HTTP/1.1 503"), "no service runs: {answer}");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn start(
        addr: SocketAddr,
        control: Control,
        engine: Option<EngineObserver>,
    ) -> io::Result<AdminServer> {
        Self::from_listener(TcpListener::bind(addr)?, control, engine)
    }

    /// Serves on a listening socket the host already holds (handed over by
    /// the process this one replaces), as [`start`](Self::start) does.
    pub fn from_listener(
        listener: TcpListener,
        control: Control,
        engine: Option<EngineObserver>,
    ) -> io::Result<AdminServer> {
        Self::with_actions(listener, control, engine, None)
    }

    /// Serves as [`from_listener`](Self::from_listener) does and, with
    /// `actions`, lets the status page change weights and start or stop
    /// services (see [`actions`]).
    pub fn with_actions(
        listener: TcpListener,
        control: Control,
        engine: Option<EngineObserver>,
        actions: Option<Arc<Actions>>,
    ) -> io::Result<AdminServer> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let kept = listener.try_clone()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let source = Source {
            control,
            engine,
            actions,
        };
        let stop = Arc::clone(&stopping);
        let acceptor = std::thread::Builder::new()
            .name("ktcpvs-admin".into())
            .spawn(move || accept_loop(&listener, &source, &stop))?;
        Ok(AdminServer {
            addr,
            stopping,
            acceptor: Some(acceptor),
            listener: kept,
        })
    }

    /// A new descriptor on the listening socket (for a binary upgrade).
    pub fn try_clone_listener(&self) -> io::Result<TcpListener> {
        self.listener.try_clone()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and joins the acceptor (connections in flight end
    /// on their own within [`READ_TIMEOUT`]).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // The acceptor sees the flag within STOP_CHECK milliseconds.
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Waits up to [`STOP_CHECK`] ms for a connection to accept.
fn wait_readable(listener: &TcpListener) {
    use nix::poll::{poll, PollFd, PollFlags};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, STOP_CHECK);
}

fn accept_loop(listener: &TcpListener, source: &Source, stopping: &AtomicBool) {
    let busy = Arc::new(AtomicUsize::new(0));
    while !stopping.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(listener);
                continue;
            }
            Err(_) => {
                // Out of descriptors, say: do not spin.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            busy.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (source, busy) = (source.clone(), Arc::clone(&busy));
        let spawned = std::thread::Builder::new()
            .name("ktcpvs-admin-conn".into())
            .spawn(move || {
                if let Err(e) = serve(stream, &source) {
                    log::debug!("admin connection: {e}");
                }
                busy.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            log::warn!("admin listener: cannot start a thread: {e}");
        }
    }
}

/// One answer: status, content type, extra header lines, body.
struct Answer {
    status: u16,
    content_type: &'static str,
    headers: String,
    body: String,
}

impl Answer {
    fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type,
            headers: String::new(),
            body: body.into(),
        }
    }

    fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer::new(status, "text/plain; charset=utf-8", body)
    }
}

/// Reads one request (its head, and a body of at most
/// [`actions::MAX_BODY`] bytes) and answers it.
fn serve(mut stream: TcpStream, source: &Source) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut filled = 0;
    let (answer, head_only) = loop {
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let mut slots = [const { MaybeUninit::uninit() }; 64];
        match parse_request_uninit(&buf[..filled], &mut slots, &Limits::default()) {
            Ok(Some((info, head))) => {
                let length = match info.framing {
                    Framing::None => Some(0),
                    Framing::Length(n) => usize::try_from(n).ok(),
                    _ => None,
                };
                let length = length.filter(|n| *n <= actions::MAX_BODY);
                let body = match length {
                    Some(n) => read_body(&mut stream, &buf[info.head_len..filled], n)?,
                    None => Vec::new(),
                };
                break (answer(&head, length, &body, source), head.method == "HEAD");
            }
            Ok(None) if filled < MAX_HEAD => continue,
            Ok(None) => break (Answer::text(431, "request head too large\n"), false),
            Err(e) => break (Answer::text(e.status(), format!("{e}\n")), false),
        }
    };
    write_answer(&mut stream, &answer, head_only)
}

/// A body of `len` bytes whose first bytes came with the head (`read`);
/// reads the rest (within the connection's read timeout).
fn read_body(stream: &mut TcpStream, read: &[u8], len: usize) -> io::Result<Vec<u8>> {
    let mut body = vec![0u8; len];
    let mut filled = read.len().min(len);
    body[..filled].copy_from_slice(&read[..filled]);
    while filled < len {
        let n = stream.read(&mut body[filled..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(body)
}

fn write_answer(stream: &mut TcpStream, answer: &Answer, head_only: bool) -> io::Result<()> {
    let status = answer.status;
    let reason = ktcpvs_net::http::reason_phrase(status);
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n{}Connection: close\r\n\r\n",
        answer.content_type,
        answer.body.len(),
        answer.headers,
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(answer.body.as_bytes())?;
    }
    stream.flush()
}

/// The answer to a request: `length` is its body's (`None`: too long or
/// not framed by a length), `body` the body read.
fn answer(head: &RequestHead<'_>, length: Option<usize>, body: &[u8], source: &Source) -> Answer {
    let path = head.target.split('?').next().unwrap_or(head.target);
    if path == "/api/action" {
        return action(head, length, body, source);
    }
    let known = matches!(path, "/" | "/metrics" | "/healthz" | "/stats");
    if !known {
        return Answer::text(404, "not found: try /, /metrics, /healthz or /stats\n");
    }
    if head.method != "GET" && head.method != "HEAD" {
        return Answer::text(405, "only GET and HEAD\n");
    }
    if path == "/" {
        let csrf = source.actions.as_deref().map(Actions::csrf);
        let (html, nonce) = page::render(csrf);
        let mut answer = Answer::new(200, "text/html; charset=utf-8", html);
        answer.headers = page::security_headers(&nonce);
        return answer;
    }
    let mut snapshot = MetricsSnapshot::collect(&source.control, source.engine.as_ref());
    match path {
        "/metrics" => Answer::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            snapshot.to_prometheus(),
        ),
        "/healthz" if snapshot.serving() => Answer::text(200, "ok\n"),
        "/healthz" => Answer::text(503, "draining\n"),
        _ => {
            if let Some(actions) = &source.actions {
                snapshot.admin_actions = actions.log();
            }
            Answer::new(200, "application/json", snapshot.to_json())
        }
    }
}

/// `POST /api/action`: checked, then carried out through the dispatcher.
fn action(head: &RequestHead<'_>, length: Option<usize>, body: &[u8], source: &Source) -> Answer {
    let Some(actions) = source.actions.as_deref() else {
        let e = ActionError::Disabled;
        return Answer::text(e.status(), format!("{e}\n"));
    };
    let outcome = actions
        .authorize(head, length)
        .and_then(|()| actions.run(body));
    match outcome {
        Ok(Reply::Ok(lines)) => Answer::text(200, format!("ok\n{}", lines.join("\n"))),
        Ok(Reply::Err { message, .. }) => Answer::text(409, format!("{message}\n")),
        Err(e) => {
            let mut answer = Answer::text(e.status(), format!("{e}\n"));
            if e == ActionError::Unauthorized {
                answer.headers = "WWW-Authenticate: Bearer realm=\"ktcpvs\"\r\n".into();
            }
            answer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn admin() -> AdminServer {
        AdminServer::start("127.0.0.1:0".parse().unwrap(), crate::new_control(), None).unwrap()
    }

    fn ask(addr: SocketAddr, bytes: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn hostile_requests_get_a_status_and_a_close() {
        let a = admin();
        let addr = a.local_addr();
        assert!(ask(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
        )
        .starts_with("HTTP/1.1 405"));
        assert!(
            ask(addr, b"GET /../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n")
                .starts_with("HTTP/1.1 404")
        );
        assert!(
            ask(addr, b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
                .starts_with("HTTP/1.1 400")
        );
        assert!(ask(
            addr,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"
        )
        .starts_with("HTTP/1.1 400"));
        let mut huge = b"GET /metrics HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        huge.extend(std::iter::repeat(b'a').take(MAX_HEAD));
        let answer = ask(addr, &huge);
        assert!(
            answer.starts_with("HTTP/1.1 431") || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
        // HEAD gets the head only.
        let head = ask(addr, b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 503") && head.ends_with("\r\n\r\n"),
            "{head:?}"
        );
    }

    #[test]
    fn read_only_by_default_and_the_page_is_served() {
        let a = admin();
        let addr = a.local_addr();
        let body = r#"{"action":"stop","service":"web"}"#;
        let post = format!(
            "POST /api/action HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nAuthorization: Bearer x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert!(ask(addr, post.as_bytes()).starts_with("HTTP/1.1 404"));
        let page = ask(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("Content-Security-Policy: default-src 'none'"));
        assert!(page.contains("name=\"ktcpvs-actions\" content=\"off\""));
        // A body longer than allowed is not read: refused.
        let big = "POST /api/action HTTP/1.1\r\nHost: a\r\nContent-Length: 999999\r\n\r\n";
        assert!(ask(addr, big.as_bytes()).starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn silent_clients_are_cut_and_cannot_hold_every_slot() {
        let a = admin();
        let addr = a.local_addr();
        // More silent connections than the listener serves at once.
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS + 4)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let start = Instant::now();
        // Within the read timeout (and a margin) the slots free again.
        loop {
            let answer = ask(addr, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
            if answer.starts_with("HTTP/1.1 503") {
                break;
            }
            assert!(
                start.elapsed() < READ_TIMEOUT * 3,
                "still refused: {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The silent ones were closed by the timeout, not answered.
        for mut s in idle {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            assert!(buf.is_empty(), "{:?}", String::from_utf8_lossy(&buf));
        }
    }
}

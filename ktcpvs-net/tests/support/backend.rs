//! Real test backends on 127.0.0.1:0, one thread per connection:
//! [`HttpBackend`], an HTTP/1.1 server (std::net + httparse) that names
//! itself in an `X-Server` header and its body, and [`EchoBackend`], a raw
//! TCP echo that answers `END` after the client's FIN (half-close).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{checksum, pattern};

struct Acceptor {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Acceptor {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handler = Arc::new(handler);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let h = Arc::clone(&handler);
                std::thread::spawn(move || h(stream));
            }
        });
        Acceptor {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr);
            let _ = t.join();
        }
    }
}

/// A backend whose every connection is handed to a test's own function on
/// a thread of its own: for answers no well-behaved server would send.
pub struct RawBackend {
    acceptor: Acceptor,
    pub connections: Arc<AtomicUsize>,
}

impl RawBackend {
    pub fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> RawBackend {
        let connections = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&connections);
        let acceptor = Acceptor::start(move |s| {
            c.fetch_add(1, Ordering::SeqCst);
            handler(s)
        });
        RawBackend {
            acceptor,
            connections,
        }
    }
    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.acceptor.stop();
    }
}

/// Reads one request head (through its empty line) from `r`; `None` at EOF.
pub fn read_request_head(r: &mut BufReader<TcpStream>) -> Option<String> {
    read_head(r)
        .ok()
        .flatten()
        .map(|h| String::from_utf8_lossy(&h).into_owned())
}

/// Raw TCP: echoes every byte; after the client's FIN, writes `END` and closes.
pub struct EchoBackend {
    acceptor: Acceptor,
    pub connections: Arc<AtomicUsize>,
}

impl EchoBackend {
    pub fn start() -> EchoBackend {
        let connections = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&connections);
        let acceptor = Acceptor::start(move |mut s| {
            c.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 16384];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        let _ = s.write_all(b"END");
                        break;
                    }
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        EchoBackend {
            acceptor,
            connections,
        }
    }
    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.acceptor.stop();
    }
}

/// What the HTTP backend saw.
#[derive(Default)]
pub struct Seen {
    /// Request heads, as received (lossy UTF-8).
    pub heads: Mutex<Vec<String>>,
    /// Connections accepted.
    pub connections: AtomicUsize,
    /// Requests answered.
    pub requests: AtomicUsize,
}

/// An HTTP/1.1 backend. Targets:
/// * `/echo` — answers the request body back with `X-Checksum` and `X-Length`;
/// * `/chunked/N` — N pattern bytes, chunked; `/close/N` — close-delimited;
///   `/length/N` — with `Content-Length`;
/// * `/status/S` — that status with no body (204, 304) or an empty body;
/// * `/slow/MS` — answers after MS milliseconds;
/// * `/die` — promises 1 MiB, sends a little, then closes;
/// * `/upgrade` — `101 Switching Protocols` to the protocol asked for
///   (websocket when none was), then echoes raw bytes;
/// * anything else — `NAME TARGET` as the body.
///
/// `HEAD` gets the head only; `Expect: 100-continue` gets `100 Continue`.
pub struct HttpBackend {
    acceptor: Acceptor,
    pub name: String,
    pub seen: Arc<Seen>,
}

impl HttpBackend {
    pub fn start(name: &str) -> HttpBackend {
        let seen = Arc::new(Seen::default());
        let s2 = Arc::clone(&seen);
        let n2 = name.to_string();
        let acceptor = Acceptor::start(move |stream| {
            s2.connections.fetch_add(1, Ordering::SeqCst);
            let _ = serve(stream, &n2, &s2);
        });
        HttpBackend {
            acceptor,
            name: name.to_string(),
            seen,
        }
    }
    pub fn addr(&self) -> SocketAddr {
        self.acceptor.addr
    }
    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }
    pub fn heads(&self) -> Vec<String> {
        self.seen.heads.lock().unwrap().clone()
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.acceptor.stop();
    }
}

fn read_head(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut head)?;
        if n == 0 {
            return Ok(None);
        }
        if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
            if head == b"\r\n" {
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
    }
}

fn read_body(r: &mut BufReader<TcpStream>, chunked: bool, len: usize) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
            if size == 0 {
                loop {
                    line.clear();
                    r.read_line(&mut line)?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                return Ok(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    }
    body.resize(len, 0);
    r.read_exact(&mut body)?;
    Ok(body)
}

fn serve(stream: TcpStream, name: &str, seen: &Seen) -> std::io::Result<()> {
    let mut r = BufReader::new(stream.try_clone()?);
    let mut w = stream;
    loop {
        let Some(head) = read_head(&mut r)? else {
            return Ok(());
        };
        seen.heads
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&head).into_owned());
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if req.parse(&head).is_err() {
            w.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
        let method = req.method.unwrap_or("GET").to_string();
        let target = req.path.unwrap_or("/").to_string();
        let version = req.version.unwrap_or(1);
        let get = |n: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(n))
                .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
        };
        let chunked = get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let len: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // HTTP/1.0 keeps the connection only when asked, as nginx does.
        let close = if version == 0 {
            !get("connection").is_some_and(|v| v.contains("keep-alive"))
        } else {
            get("connection").is_some_and(|v| v.contains("close"))
        };
        if get("expect").is_some_and(|v| v == "100-continue") {
            w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let body = read_body(&mut r, chunked, len)?;
        seen.requests.fetch_add(1, Ordering::SeqCst);
        let head_only = method == "HEAD";
        let conn = match (close, version) {
            (true, _) => "connection: close\r\n",
            (false, 0) => "connection: keep-alive\r\n",
            (false, _) => "",
        };
        let send =
            |w: &mut TcpStream, status: &str, extra: &str, body: &[u8]| -> std::io::Result<()> {
                let mut out = format!(
                "HTTP/1.1 {status}\r\nx-server: {name}\r\ncontent-length: {}\r\n{extra}{conn}\r\n",
                body.len()
            )
                .into_bytes();
                if !head_only {
                    out.extend_from_slice(body);
                }
                w.write_all(&out)
            };
        if target == "/echo" {
            let extra = format!(
                "x-checksum: {}\r\nx-length: {}\r\n",
                checksum(&body),
                body.len()
            );
            send(&mut w, "200 OK", &extra, &body)?;
        } else if let Some(n) = target.strip_prefix("/chunked/") {
            let data = pattern(n.parse().unwrap_or(0));
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nx-server: {name}\r\nx-checksum: {}\r\ntransfer-encoding: chunked\r\n{conn}\r\n",
                checksum(&data)
            )
            .into_bytes();
            if !head_only {
                for c in data.chunks(10_000) {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            w.write_all(&out)?;
        } else if let Some(n) = target.strip_prefix("/length/") {
            let data = pattern(n.parse().unwrap_or(0));
            let extra = format!("x-checksum: {}\r\n", checksum(&data));
            send(&mut w, "200 OK", &extra, &data)?;
        } else if let Some(n) = target.strip_prefix("/close/") {
            let data = pattern(n.parse().unwrap_or(0));
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nx-server: {name}\r\nx-checksum: {}\r\nconnection: close\r\n\r\n",
                checksum(&data)
            )
            .into_bytes();
            out.extend_from_slice(&data);
            w.write_all(&out)?;
            return Ok(());
        } else if let Some(s) = target.strip_prefix("/status/") {
            let status: u16 = s.parse().unwrap_or(200);
            if status == 204 || status == 304 {
                w.write_all(
                    format!("HTTP/1.1 {status} X\r\nx-server: {name}\r\n{conn}\r\n").as_bytes(),
                )?;
            } else {
                send(&mut w, &format!("{status} X"), "", b"")?;
            }
        } else if let Some(ms) = target.strip_prefix("/slow/") {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
            send(&mut w, "200 OK", "", format!("{name} {target}").as_bytes())?;
        } else if target == "/die" {
            w.write_all(
                format!("HTTP/1.1 200 OK\r\nx-server: {name}\r\ncontent-length: 1048576\r\n\r\n")
                    .as_bytes(),
            )?;
            w.write_all(&[b'x'; 1000])?;
            return Ok(());
        } else if target == "/upgrade" {
            // Switches to the protocol asked for, or (unasked) to websocket.
            let protocol = get("upgrade").unwrap_or_else(|| "websocket".into());
            w.write_all(
                format!("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {protocol}\r\n\r\n")
                    .as_bytes(),
            )?;
            let mut buf = [0u8; 4096];
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                w.write_all(&buf[..n])?;
            }
        } else {
            send(&mut w, "200 OK", "", format!("{name} {target}").as_bytes())?;
        }
        if close {
            return Ok(());
        }
    }
}

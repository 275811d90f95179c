//! Demonstration real servers: tiny HTTP/1.1 servers that answer every
//! request with their own name, so the routing of a virtual service can be
//! seen with `curl` (and checked in tests).
//!
//! `ktcpvsd --demo` starts three of them (r1, r2, r3); the end-to-end tests
//! use them as the real servers behind the balancer. They are deliberately
//! simple (a thread per connection) but speak real HTTP/1.1: keep-alive,
//! `Connection: close`, HTTP/1.0, and request bodies framed by
//! `Content-Length` or `chunked` encoding.
//!
//! ```
//! use std::io::{Read, Write};
//! let server = ktcpvs::demo::NamedHttpServer::start("r1", "127.0.0.1:0".parse().unwrap())?;
//! let mut c = std::net::TcpStream::connect(server.local_addr())?;
//! c.write_all(b"GET /images/a.png HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
//! let mut reply = String::new();
//! c.read_to_string(&mut reply)?;
//! assert!(reply.ends_with("r1 GET /images/a.png\n"));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

/// Largest request head accepted, in bytes.
const MAX_HEAD: usize = 64 * 1024;

struct Shared {
    name: String,
    stopping: AtomicBool,
    requests: AtomicU64,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, TcpStream>>,
}

/// A running name-answering HTTP server. Dropping it stops it and closes
/// its connections.
pub struct NamedHttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for NamedHttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedHttpServer")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl NamedHttpServer {
    /// Starts a server named `name` on `addr` (port 0 picks a free port).
    pub fn start(name: &str, addr: SocketAddr) -> std::io::Result<NamedHttpServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: name.to_string(),
            stopping: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name(format!("demo-{name}"))
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(NamedHttpServer {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its name, the body of every answer.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

impl Drop for NamedHttpServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for (_, c) in self.shared.connections.lock().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            shared.connections.lock().insert(id, clone);
        }
        let conn_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("demo-{}-conn", shared.name))
            .spawn(move || {
                let _ = serve(stream, &conn_shared);
                conn_shared.connections.lock().remove(&id);
            });
        if spawned.is_err() {
            shared.connections.lock().remove(&id);
        }
    }
}

/// The facts of one request head that the server acts on.
struct Head {
    method: String,
    target: String,
    keep_alive: bool,
    body: Body,
}

enum Body {
    None,
    Length(u64),
    Chunked,
}

fn parse_head(lines: &[String]) -> Option<Head> {
    let mut parts = lines.first()?.split_ascii_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let version = parts.next()?;
    let mut keep_alive = version == "HTTP/1.1";
    let mut body = Body::None;
    for line in &lines[1..] {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            body = Body::Length(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().ends_with("chunked")
        {
            body = Body::Chunked;
        }
    }
    Some(Head {
        method,
        target,
        keep_alive,
        body,
    })
}

fn read_head<R: BufRead>(reader: &mut R) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD - total + 1) as u64)
            .read_line(&mut line)?;
        if n == 0 {
            return Ok(None);
        }
        total += n;
        if total > MAX_HEAD {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate blank lines between requests
            }
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

fn skip_body<R: BufRead>(reader: &mut R, body: &Body) -> std::io::Result<()> {
    match body {
        Body::None => Ok(()),
        Body::Length(n) => {
            std::io::copy(&mut reader.by_ref().take(*n), &mut std::io::sink())?;
            Ok(())
        }
        Body::Chunked => loop {
            let mut size_line = String::new();
            reader.by_ref().take(1024).read_line(&mut size_line)?;
            let size_text = size_line.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size_text, 16).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad chunk size {size_text:?}: {e}"),
                )
            })?;
            if size == 0 {
                // Trailers up to the empty line.
                loop {
                    let mut t = String::new();
                    if reader.by_ref().take(8192).read_line(&mut t)? == 0 || t.trim().is_empty() {
                        return Ok(());
                    }
                }
            }
            // The chunk and its CRLF; a size near u64::MAX must not overflow.
            let chunk = size.saturating_add(2);
            std::io::copy(&mut reader.by_ref().take(chunk), &mut std::io::sink())?;
        },
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(lines) = read_head(&mut reader)? else {
            return Ok(());
        };
        let Some(head) = parse_head(&lines) else {
            writer.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        };
        skip_body(&mut reader, &head.body)?;
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let body = format!("{} {} {}\n", shared.name, head.method, head.target);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Server: {}\r\n{}\r\n{}",
            body.len(),
            shared.name,
            if head.keep_alive { "" } else { "Connection: close\r\n" },
            if head.method == "HEAD" { "" } else { &body },
        );
        writer.write_all(response.as_bytes())?;
        if !head.keep_alive {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_size_near_u64_max_is_refused_without_overflow() {
        // Regression: `size + 2` overflowed (a panic in debug builds) on a
        // chunk size of 16 hex digits of f.
        let mut body = std::io::Cursor::new(&b"ffffffffffffffff\r\nabc"[..]);
        let e = skip_body(&mut body, &Body::Chunked).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("bad chunk size"), "{e}");
    }

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn answers_with_its_name_and_closes_when_asked() {
        let s = NamedHttpServer::start("r2", "127.0.0.1:0".parse().unwrap()).unwrap();
        let out = get(
            s.local_addr(),
            "GET /html/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("X-Server: r2\r\n"));
        assert!(out.ends_with("r2 GET /html/x\n"));
        assert_eq!(s.requests(), 1);
    }

    #[test]
    fn keeps_alive_and_skips_bodies() {
        let s = NamedHttpServer::start("r3", "127.0.0.1:0".parse().unwrap()).unwrap();
        let out = get(
            s.local_addr(),
            "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /c HTTP/1.0\r\n\r\n",
        );
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 3, "{out}");
        assert!(out.contains("r3 POST /a\n"));
        assert!(out.contains("r3 POST /b\n"));
        assert!(out.ends_with("r3 GET /c\n"));
    }

    #[test]
    fn refuses_garbage() {
        let s = NamedHttpServer::start("r1", "127.0.0.1:0".parse().unwrap()).unwrap();
        let out = get(s.local_addr(), "NONSENSE\r\nno colon here\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    }
}

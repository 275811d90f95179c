//! Byte counters (`bytes_in`/`bytes_out` of services and servers) match
//! the bytes real clients and backends sent and received, on every path:
//! HTTP keep-alive and close, the layer-4 tunnel, the tunnel after `101`,
//! each with `zerocopy_send` off and on (buffers and `splice`).

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ktcpvs_core::live::{ServerStats, ServiceStats};
use ktcpvs_core::ServiceSpec;
use support::backend::{EchoBackend, HttpBackend};
use support::*;

/// An HTTP/1.1 backend that counts every byte it reads and writes. It
/// answers each request head `GET /N …` with `N` bytes (`Content-Length`);
/// requests carry no body.
struct CountingBackend {
    addr: SocketAddr,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CountingBackend {
    fn start() -> CountingBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let read = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, w, s) = (Arc::clone(&read), Arc::clone(&written), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (r, w) = (Arc::clone(&r), Arc::clone(&w));
                std::thread::spawn(move || serve_counted(stream, &r, &w));
            }
        });
        CountingBackend {
            addr,
            read,
            written,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for CountingBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_counted(mut s: TcpStream, read: &AtomicU64, written: &AtomicU64) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut held = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        read.fetch_add(n as u64, Ordering::SeqCst);
        held.extend_from_slice(&buf[..n]);
        while let Some(end) = held.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = held.drain(..end + 4).collect();
            let line = String::from_utf8_lossy(&head);
            let size: usize = line
                .split(' ')
                .nth(1)
                .and_then(|t| t.trim_start_matches('/').parse().ok())
                .unwrap_or(0);
            let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n").into_bytes();
            out.extend(pattern(size));
            if s.write_all(&out).is_err() {
                return;
            }
            written.fetch_add(out.len() as u64, Ordering::SeqCst);
        }
    }
}

fn service_stats(engine: &Running, name: &str) -> ServiceStats {
    engine
        .control
        .snapshot()
        .service(name)
        .unwrap()
        .load()
        .stats()
}

fn server_stats(engine: &Running, name: &str, addr: SocketAddr) -> ServerStats {
    engine.control.snapshot().server_stats()[&(name.to_string(), addr)]
}

/// Waits until the service's counters say `(bytes_in, bytes_out)`.
fn service_counts(engine: &Running, name: &str, want: (u64, u64)) {
    let mut seen = (0, 0);
    let ok = wait_for(|| {
        let s = service_stats(engine, name);
        seen = (s.bytes_in, s.bytes_out);
        seen == want
    });
    assert!(ok, "service {name}: (in, out) = {seen:?}, want {want:?}");
}

/// Waits until the server's counters say `(bytes_out, bytes_in)` as
/// `want` reports them (read again each time: a backend thread counts its
/// last write after the bytes left).
fn server_counts(
    engine: &Running,
    name: &str,
    addr: SocketAddr,
    mut want: impl FnMut() -> (u64, u64),
) {
    let mut seen = (0, 0);
    let mut wanted = (0, 0);
    let ok = wait_for(|| {
        let s = server_stats(engine, name, addr);
        seen = (s.bytes_out, s.bytes_in);
        wanted = want();
        seen == wanted
    });
    let want = wanted;
    assert!(ok, "server {addr}: (out, in) = {seen:?}, want {want:?}");
}

/// Polls `cond` every 10 ms for up to 5 s.
fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn http_counters_match_what_client_and_backend_moved() {
    for (scheduler, zerocopy) in [("phttp", "0"), ("phttp", "1"), ("http", "0"), ("http", "1")] {
        let backend = CountingBackend::start();
        let control = control();
        set(&control, "zerocopy_send", zerocopy);
        add_service(&control, "web", scheduler, ServiceSpec::default());
        add_server(&control, "web", backend.addr);
        start(&control, "web");
        let engine = run(control);

        // Keep-alive requests, then one that closes, all pipelined; the
        // client reads until the proxy closes.
        let mut request = Vec::new();
        for size in [0usize, 10, 70_000, 1 << 20] {
            request.extend(format!("GET /{size} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes());
        }
        request.extend_from_slice(b"GET /5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let mut c = TcpStream::connect(engine.addr("web")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(&request).unwrap();
        let mut received = Vec::new();
        c.read_to_end(&mut received).unwrap();
        assert!(received.len() > (1 << 20) + 70_000, "{scheduler}");
        drop(c);

        service_counts(
            &engine,
            "web",
            (request.len() as u64, received.len() as u64),
        );
        server_counts(&engine, "web", backend.addr, || {
            (
                backend.read.load(Ordering::SeqCst),
                backend.written.load(Ordering::SeqCst),
            )
        });
        assert!(backend.read.load(Ordering::SeqCst) > 0);
        assert!(backend.written.load(Ordering::SeqCst) > (1 << 20));
    }
}

#[test]
fn layer4_counters_match_what_client_and_backend_moved() {
    for zerocopy in ["0", "1"] {
        let backend = EchoBackend::start();
        let control = control();
        set(&control, "zerocopy_send", zerocopy);
        add_service(&control, "tcp", "wlc", ServiceSpec::default());
        add_server(&control, "tcp", backend.addr());
        start(&control, "tcp");
        let engine = run(control);

        let data = pattern(3 << 20);
        let mut c = TcpStream::connect(engine.addr("tcp")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut writer = c.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            writer.write_all(&data).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut received = Vec::new();
        c.read_to_end(&mut received).unwrap();
        sender.join().unwrap();
        // The echo, then `END` after the FIN.
        assert_eq!(received.len(), (3 << 20) + 3, "zerocopy_send={zerocopy}");

        let sent = 3u64 << 20;
        let got = received.len() as u64;
        service_counts(&engine, "tcp", (sent, got));
        server_counts(&engine, "tcp", backend.addr(), || (sent, got));
    }
}

#[test]
fn upgraded_tunnel_counters_match_what_the_client_moved() {
    for zerocopy in ["0", "1"] {
        let backend = HttpBackend::start("r1");
        let control = control();
        set(&control, "zerocopy_send", zerocopy);
        add_service(&control, "web", "phttp", ServiceSpec::default());
        add_server(&control, "web", backend.addr());
        start(&control, "web");
        let engine = run(control);

        let mut c = TcpStream::connect(engine.addr("web")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head =
            b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        c.write_all(head).unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the 101 head");
            received.extend_from_slice(&buf[..n]);
        }
        assert!(received.starts_with(b"HTTP/1.1 101"));
        let payload = pattern(200_000);
        let mut writer = c.try_clone().unwrap();
        let p2 = payload.clone();
        let sender = std::thread::spawn(move || {
            writer.write_all(&p2).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        c.read_to_end(&mut received).unwrap();
        sender.join().unwrap();
        let echoed = &received[received.len() - payload.len()..];
        assert_eq!(checksum(echoed), checksum(&payload));

        let sent = (head.len() + payload.len()) as u64;
        service_counts(&engine, "web", (sent, received.len() as u64));
        let server = server_stats(&engine, "web", backend.addr());
        assert!(server.bytes_out >= payload.len() as u64, "{server:?}");
        assert!(server.bytes_in >= payload.len() as u64, "{server:?}");
    }
}

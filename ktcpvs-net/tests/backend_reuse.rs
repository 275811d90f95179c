//! What happens when a backend connection the session counted on is gone:
//! a per-connection (`FirstRequest`) route whose server stops answering is
//! decided again without it; a pooled connection the server closed is
//! replaced for an idempotent request without the client noticing; a
//! request with a body is never silently replayed; an idle pooled
//! connection is closed once `keepalive_timeout` passes; and a client that
//! closes after a clean exchange leaves its backend connection to the next
//! client instead of closing it.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ktcpvs_core::ServiceSpec;
use support::client::Client;
use support::*;

/// How the test backend treats its connections.
#[derive(Clone, Copy)]
enum Mode {
    /// Answers one request with `Connection: close`, then closes.
    CloseAfterOne,
    /// Answers one request keeping the connection alive as far as the
    /// proxy can tell; then reads the next request's head and closes
    /// without an answer (its keep-alive timeout fired as the request
    /// arrived: the race every proxy must handle).
    DropIdleAfterOne,
}

/// A real HTTP/1.1 server naming itself in `X-Server` and its body, and
/// counting the requests it answered and those it dropped.
struct Backend {
    addr: SocketAddr,
    name: &'static str,
    requests: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    fn start(name: &'static str, mode: Mode) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, d, c, s) = (
            Arc::clone(&requests),
            Arc::clone(&dropped),
            Arc::clone(&connections),
            Arc::clone(&stop),
        );
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (r, d) = (Arc::clone(&r), Arc::clone(&d));
                std::thread::spawn(move || answer_one(stream, name, mode, &r, &d));
            }
        });
        Backend {
            addr,
            name,
            requests,
            dropped,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// Closes the listening socket: later connects are refused.
    fn stop_listening(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

/// Reads one request (head and `Content-Length` body), answers it, then
/// closes as `mode` says.
fn answer_one(
    stream: TcpStream,
    name: &str,
    mode: Mode,
    requests: &AtomicUsize,
    dropped: &AtomicUsize,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut target = String::new();
    let mut length = 0usize;
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    if let Some(t) = line.split(' ').nth(1) {
        target = t.to_string();
    }
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let text = format!("{name} {target} {length}");
    let close = match mode {
        Mode::CloseAfterOne => "connection: close\r\n",
        Mode::DropIdleAfterOne => "",
    };
    let _ = w.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nx-server: {name}\r\ncontent-length: {}\r\n{close}\r\n{text}",
            text.len()
        )
        .as_bytes(),
    );
    if let Mode::DropIdleAfterOne = mode {
        // The next head arrives; close without answering.
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                dropped.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

fn service(scheduler: &str, backends: &[&Backend]) -> Running {
    let control = control();
    add_service(&control, "web", scheduler, ServiceSpec::default());
    for b in backends {
        add_server(&control, "web", b.addr);
    }
    start(&control, "web");
    run(control)
}

#[test]
fn a_per_connection_route_whose_server_went_away_is_decided_again() {
    let mut a = Backend::start("a", Mode::CloseAfterOne);
    let mut b = Backend::start("b", Mode::CloseAfterOne);
    let engine = service("http", &[&a, &b]);
    let mut c = Client::connect(engine.addr("web"));

    let first = c.get("/one").unwrap();
    assert_eq!(first.status, 200);
    let pinned = first.header("x-server").unwrap().to_string();
    // The server closed its connection but the client keeps its own: the
    // next request reconnects to the pinned server, which is now gone.
    let (gone, other) = if pinned == a.name {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    gone.stop_listening();
    let second = c.get("/two").unwrap();
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.header("x-server"), Some(other.name));
    assert_eq!(second.text(), format!("{} /two 0", other.name));
    // And the connection stays with the new server.
    let third = c.get("/three").unwrap();
    assert_eq!(third.header("x-server"), Some(other.name));
}

#[test]
fn an_idempotent_request_is_replayed_when_the_kept_connection_is_dead() {
    for scheduler in ["phttp", "http"] {
        let backend = Backend::start("r1", Mode::DropIdleAfterOne);
        let engine = service(scheduler, &[&backend]);
        let mut c = Client::connect(engine.addr("web"));
        assert_eq!(c.get("/first").unwrap().text(), "r1 /first 0");
        // Each later request meets a backend connection that closes on it
        // without answering; the proxy replays it on a fresh one.
        for i in 0..5 {
            let r = c.get(&format!("/next{i}")).unwrap();
            assert_eq!(r.status, 200, "{scheduler}");
            assert_eq!(r.text(), format!("r1 /next{i} 0"), "{scheduler}");
        }
        assert_eq!(backend.requests(), 6, "{scheduler}: each answered once");
        assert_eq!(backend.dropped(), 5, "{scheduler}: each met a dead one");
        assert_eq!(backend.connections(), 6, "{scheduler}");
    }
}

#[test]
fn a_request_with_a_body_is_not_replayed_on_a_dead_kept_connection() {
    for scheduler in ["phttp", "http"] {
        let backend = Backend::start("r1", Mode::DropIdleAfterOne);
        let engine = service(scheduler, &[&backend]);
        let mut c = Client::connect(engine.addr("web"));
        assert_eq!(c.get("/first").unwrap().status, 200);
        // The POST meets the connection the backend drops: it may have
        // been partly processed, so it is not sent again; the client gets
        // a clean 502 and decides itself.
        let body = b"hello=world";
        let req = format!(
            "POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        c.send(req.as_bytes());
        c.send(body);
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 502, "{scheduler}");
        assert_eq!(backend.dropped(), 1, "{scheduler}");
        assert_eq!(backend.connections(), 1, "{scheduler}: no replay");
        assert_eq!(backend.requests(), 1, "{scheduler}");
        // Sent again by the client, on a fresh connection, it goes through.
        let mut c = Client::connect(engine.addr("web"));
        c.send(req.as_bytes());
        c.send(body);
        let r = c.read_response(false).unwrap();
        assert_eq!(r.text(), "r1 /form 11", "{scheduler}");
    }
}

/// A `scheduler` service in front of one backend (`r1`), run by one worker
/// (each worker pools its own backend connections).
fn one_worker_in_front_of_r1(scheduler: &str) -> (support::backend::HttpBackend, Running) {
    let backend = support::backend::HttpBackend::start("r1");
    let control = control();
    add_service(&control, "web", scheduler, ServiceSpec::default());
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    (backend, run_workers(control, 1))
}

/// A client that says `Connection: close` ends its own connection, not the
/// real server's: an exchange that ended cleanly (whole request sent, whole
/// response framed, the server keeping its connection) leaves the backend
/// connection to the worker's pool, so clients that each open a connection
/// for one request share one backend connection (the benchmark's scenario
/// 2). Each client still gets `Connection: close` and then an end of file.
#[test]
fn a_closing_client_leaves_its_clean_backend_connection_to_the_next() {
    for scheduler in ["http", "phttp"] {
        let (backend, engine) = one_worker_in_front_of_r1(scheduler);
        for i in 0..5 {
            let mut c = Client::connect(engine.addr("web"));
            c.send(
                format!("GET /n{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
            );
            let r = c.read_response(false).unwrap();
            assert_eq!(r.status, 200, "{scheduler}");
            assert_eq!(r.text(), format!("r1 /n{i}"), "{scheduler}");
            assert_eq!(r.header("connection"), Some("close"), "{scheduler}");
            assert!(c.read_to_close().unwrap().is_empty(), "{scheduler}");
        }
        assert_eq!(backend.requests(), 5, "{scheduler}");
        let connections = backend.seen.connections.load(Ordering::SeqCst);
        assert_eq!(
            connections, 1,
            "{scheduler}: one backend connection for five clients"
        );
    }
}

/// A client that keeps its connection alive and then goes away between
/// requests (closes it without `Connection: close`) leaves the backend
/// connection its route kept to the worker's pool, with a per-connection
/// scheduler too: the next client's requests go over it, not over a new
/// one.
#[test]
fn a_client_leaving_between_requests_leaves_its_kept_backend_connection_to_the_next() {
    for scheduler in ["http", "phttp"] {
        let (backend, engine) = one_worker_in_front_of_r1(scheduler);
        for i in 0..5 {
            let mut c = Client::connect(engine.addr("web"));
            for j in 0..2 {
                let r = c.get(&format!("/c{i}r{j}")).unwrap();
                assert_eq!(r.status, 200, "{scheduler}");
                assert_eq!(r.text(), format!("r1 /c{i}r{j}"), "{scheduler}");
            }
            drop(c);
            eventually("the client's backend connection is pooled", || {
                engine
                    .handle()
                    .worker_stats()
                    .iter()
                    .map(|w| w.pooled)
                    .sum::<u64>()
                    == 1
            });
        }
        assert_eq!(backend.requests(), 10, "{scheduler}");
        let connections = backend.seen.connections.load(Ordering::SeqCst);
        assert_eq!(
            connections, 1,
            "{scheduler}: one backend connection for five clients in turn"
        );
    }
}

/// A backend that answers once per connection; on the first, after its
/// answer, it writes a whole second response unasked, then waits for the
/// engine to close that connection. Sends `()` once the injection is out.
fn injecting_backend() -> (SocketAddr, std::sync::mpsc::Receiver<()>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (injected_tx, injected_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        for n in 1..=2 {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while line != "\r\n" {
                line.clear();
                reader.read_line(&mut line).unwrap();
            }
            let mut stream = stream;
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok{n}").unwrap();
            if n == 1 {
                // The client has its answer; then, unasked, another one.
                std::thread::sleep(Duration::from_millis(200));
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nevil!!")
                    .unwrap();
                injected_tx.send(()).unwrap();
                // Open until the engine closes it.
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest);
            }
        }
    });
    (addr, injected_rx, server)
}

/// An `http` (per-connection) service in front of [`injecting_backend`],
/// one worker, and a client that got its first answer (`ok1`) once the
/// server has written its unasked response.
fn first_answer_then_injection() -> (Running, Client, JoinHandle<()>) {
    let (addr, injected, server) = injecting_backend();
    let control = control();
    add_service(&control, "web", "http", ServiceSpec::default());
    add_server(&control, "web", addr);
    start(&control, "web");
    let engine = run_workers(control, 1);
    let mut client = Client::connect(engine.addr("web"));
    let r = client.get("/a").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok1"));
    injected.recv_timeout(Duration::from_secs(5)).unwrap();
    (engine, client, server)
}

/// A server that writes to the connection a per-connection route keeps
/// while its client idles (here a whole unsolicited response) has that
/// connection closed at once: the client's next request goes over a new
/// connection and gets its own answer, not the injected one.
#[test]
fn a_kept_connection_the_server_writes_to_unasked_is_closed() {
    let (_engine, mut client, server) = first_answer_then_injection();
    std::thread::sleep(Duration::from_millis(100));
    let r = client.get("/b").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok2"));
    drop(client);
    server.join().unwrap();
}

/// The same server, when the client leaves instead of asking again: the
/// kept connection is closed, never pooled, and the next client gets its
/// own answer from a new connection.
#[test]
fn a_kept_connection_the_server_wrote_to_meanwhile_is_not_pooled() {
    let (engine, first, server) = first_answer_then_injection();
    drop(first);
    eventually("the first client's session is gone", || {
        engine
            .handle()
            .worker_stats()
            .iter()
            .map(|w| w.sessions)
            .sum::<u64>()
            == 0
    });
    let mut second = Client::connect(engine.addr("web"));
    let r = second.get("/b").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok2"));
    drop(second);
    server.join().unwrap();
}

/// A pooled backend connection left idle is closed by the engine once it
/// has idled longer than `keepalive_timeout`, although nothing else happens
/// on the worker meanwhile (the worker sleeps until the pool's next sweep).
#[test]
fn an_idle_pooled_connection_is_closed_after_the_keepalive_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while line != "\r\n" {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
        let mut stream = reader.into_inner();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        let answered = Instant::now();
        let mut byte = [0u8; 1];
        let read = stream.read(&mut byte).ok();
        (read, answered.elapsed())
    });
    let control = control();
    set(&control, "keepalive_timeout", "1");
    add_service(&control, "web", "phttp", ServiceSpec::default());
    add_server(&control, "web", addr);
    start(&control, "web");
    let engine = run(control);
    let mut client = Client::connect(engine.addr("web"));
    let response = client.get("/").unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "ok"));
    drop(client);
    let (read, idle) = server.join().unwrap();
    assert_eq!(read, Some(0), "the engine closes the pooled connection");
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "closed after {idle:?} idle (keepalive_timeout 1 s)"
    );
    drop(engine);
}

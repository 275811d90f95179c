//! HTTP/1.1 content switching through real sockets: the seed's three-rule
//! switch, per-request switching on one keep-alive connection, large
//! chunked bodies both ways, pipelining, HEAD/204/304, close-delimited
//! responses, 100-continue and an upgrade to a tunnel.

mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ktcpvs_core::ServiceSpec;
use support::backend::HttpBackend;
use support::client::Client;
use support::*;

fn three_rules(scheduler: &str) -> (Running, [HttpBackend; 3]) {
    let backends = [
        HttpBackend::start("r1"),
        HttpBackend::start("r2"),
        HttpBackend::start("r3"),
    ];
    let control = control();
    add_service(&control, "web", scheduler, ServiceSpec::default());
    for b in &backends {
        add_server(&control, "web", b.addr());
    }
    add_rule(&control, "web", "/images/.*", backends[0].addr());
    add_rule(&control, "web", "/html/.*", backends[1].addr());
    add_rule(&control, "web", ".*", backends[2].addr());
    start(&control, "web");
    (run(control), backends)
}

/// An engine with one service whose every request goes to `backend`.
fn one_server(scheduler: &str, backend: std::net::SocketAddr) -> Running {
    one_server_with(scheduler, backend, &[])
}

#[test]
fn seed_three_rule_switch_routes_by_target() {
    let (engine, _b) = three_rules("http");
    for (target, server) in [
        ("/images/a.png", "r1"),
        ("/html/index.html", "r2"),
        ("/other", "r3"),
    ] {
        let mut c = Client::connect(engine.addr("web"));
        let r = c.get(target).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-server"), Some(server), "{target}");
        assert_eq!(r.text(), format!("{server} {target}"));
    }
}

#[test]
fn per_connection_scheduler_keeps_the_first_server() {
    let (engine, _b) = three_rules("http");
    let mut c = Client::connect(engine.addr("web"));
    assert_eq!(c.get("/images/1").unwrap().header("x-server"), Some("r1"));
    let r = c.get("/html/2").unwrap();
    assert_eq!(
        r.header("x-server"),
        Some("r1"),
        "decided once per connection"
    );
}

#[test]
fn per_request_switching_on_one_keep_alive_connection() {
    let (engine, backends) = three_rules("phttp");
    let mut c = Client::connect(engine.addr("web"));
    for round in 0..5 {
        for (target, server) in [("/images/x", "r1"), ("/html/y", "r2"), ("/z", "r3")] {
            let r = c.get(&format!("{target}{round}")).unwrap();
            assert_eq!(r.header("x-server"), Some(server));
        }
    }
    // Backend connections were pooled: far fewer connects than requests.
    for b in &backends {
        assert_eq!(b.requests(), 5);
        assert!(b.seen.connections.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    }
}

#[test]
fn chunked_request_and_response_bodies_of_megabytes_arrive_intact() {
    let (engine, _b) = three_rules("phttp");
    let mut c = Client::connect(engine.addr("web"));
    // Response: 5 MiB chunked.
    c.get("/chunked/5242880")
        .unwrap()
        .assert_pattern_body(5_242_880);
    // Request: 3 MiB chunked, echoed back.
    let body = pattern(3 << 20);
    let mut req = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in body.chunks(65_000) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let mut writer = c.stream().try_clone().unwrap();
    let t = std::thread::spawn(move || writer.write_all(&req));
    let r = c.read_response(false).unwrap();
    t.join().unwrap().unwrap();
    assert_eq!(r.header("x-checksum").unwrap(), checksum(&body).to_string());
    assert_eq!(r.body.len(), body.len());
    // Content-Length body on the same connection afterwards.
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.body, b"hello");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (engine, _b) = three_rules("phttp");
    let mut c = Client::connect(engine.addr("web"));
    c.send(b"GET /images/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /html/2 HTTP/1.1\r\nHost: t\r\n\r\nGET /3 HTTP/1.1\r\nHost: t\r\n\r\n");
    for (target, server) in [("/images/1", "r1"), ("/html/2", "r2"), ("/3", "r3")] {
        let r = c.read_response(false).unwrap();
        assert_eq!(r.text(), format!("{server} {target}"));
    }
}

#[test]
fn head_204_304_have_no_body_and_the_connection_stays_usable() {
    let (engine, _b) = three_rules("phttp");
    let mut c = Client::connect(engine.addr("web"));
    c.send(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(true).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_some());
    for status in [204, 304] {
        let r = c.get(&format!("/status/{status}")).unwrap();
        assert_eq!(r.status, status);
    }
    assert_eq!(c.get("/after").unwrap().text(), "r3 /after");
}

#[test]
fn close_delimited_response_is_relayed_whole_then_closed() {
    let (engine, _b) = three_rules("phttp");
    let mut c = Client::connect(engine.addr("web"));
    c.get("/close/300000").unwrap().assert_pattern_body(300_000);
}

#[test]
fn expect_100_continue_is_forwarded() {
    let (engine, _b) = three_rules("phttp");
    let mut c = Client::connect(engine.addr("web"));
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response(false).unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"ping");
    let r = c.read_response(false).unwrap();
    assert_eq!(r.body, b"ping");
}

#[test]
fn switching_protocols_turns_the_connection_into_a_tunnel() {
    let (engine, _b) = three_rules("phttp");
    let mut c = Client::connect(engine.addr("web"));
    c.send(
        b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    let r = c.read_response(true).unwrap();
    assert_eq!(r.status, 101);
    c.send(b"raw bytes after the upgrade");
    let mut buf = [0u8; 27];
    c.reader.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"raw bytes after the upgrade");
}

#[test]
fn stamped_selection_adds_the_pickers_response_header() {
    let backend = HttpBackend::start("r1");
    let control = control();
    add_service(
        &control,
        "web",
        "phttp",
        ServiceSpec {
            options: vec![("stamp".into(), Some("1".into()))],
            ..Default::default()
        },
    );
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    let engine = run(control);
    let mut c = Client::connect(engine.addr("web"));
    let r = c.get("/").unwrap();
    assert_eq!(r.header("x-stamped"), Some("yes"));
    assert_eq!(r.text(), "r1 /");
}

#[test]
fn forward_for_adds_the_client_address() {
    let backend = HttpBackend::start("r1");
    let control = control();
    add_service(
        &control,
        "web",
        "phttp",
        ServiceSpec {
            forward_for: Some(true),
            ..Default::default()
        },
    );
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    let engine = run(control);
    let mut c = Client::connect(engine.addr("web"));
    c.get("/").unwrap();
    let heads = backend.heads();
    assert!(
        heads[0].contains("X-Forwarded-For: 127.0.0.1"),
        "{}",
        heads[0]
    );
}

/// A client that asks to close gets the server's head with its
/// `Connection: keep-alive` line replaced by `Connection: close` (sent as
/// slices of the received head, not rewritten), then the whole body, then
/// the close; a head without hop-by-hop fields gets the line added.
#[test]
fn closing_client_gets_connection_close_in_place_of_keep_alive() {
    let body = pattern(100_000);
    for (server_head, want_head) in [
        (
            "HTTP/1.1 200 OK\r\nServer: raw\r\nConnection: keep-alive\r\nContent-Length: 100000\r\n\r\n",
            "HTTP/1.1 200 OK\r\nServer: raw\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n",
        ),
        (
            "HTTP/1.1 200 OK\r\nServer: raw\r\nContent-Length: 100000\r\n\r\n",
            "HTTP/1.1 200 OK\r\nServer: raw\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n",
        ),
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let backend_addr = listener.local_addr().unwrap();
        let reply = [server_head.as_bytes(), &body].concat();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            // Head and body in one write, so the proxy reads both at once.
            s.write_all(&reply).unwrap();
        });
        let engine = one_server("http", backend_addr);
        let mut c = Client::connect(engine.addr("web"));
        c.send(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let got = c.read_to_close().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got[..want_head.len().min(got.len())]),
            want_head
        );
        assert_eq!(got.len(), want_head.len() + body.len());
        assert_eq!(checksum(&got[want_head.len()..]), checksum(&body));
        server.join().unwrap();
    }
}

/// A backend on a raw listener that answers every request of every
/// connection after a delay, with a fixed body and keep-alive framing, each
/// connection on its own thread; dropping it stops the accept loop and
/// joins every thread.
struct SlowBackend {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl SlowBackend {
    fn start(delay: Duration, body: Vec<u8>) -> SlowBackend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let acceptor = std::thread::spawn(move || {
            let body = Arc::new(body);
            let mut served = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let Ok((s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let body = Arc::clone(&body);
                served.push(std::thread::spawn(move || answer_slowly(s, delay, &body)));
            }
            for t in served {
                let _ = t.join();
            }
        });
        SlowBackend {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for SlowBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn answer_slowly(mut s: std::net::TcpStream, delay: Duration, body: &[u8]) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        std::thread::sleep(delay);
        let reply = format!(
            "HTTP/1.1 200 OK\r\nServer: slow\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if s.write_all(reply.as_bytes()).is_err() || s.write_all(body).is_err() {
            return;
        }
    }
}

/// A `Connection: close` exchange whose client socket never blocks is
/// served without registering that socket with the poller; this checks the
/// case where it does block: the server answers late (the session waits on
/// the backend alone), then sends more than the socket buffers hold to a
/// client that starts reading only later. The first blocked write registers
/// the socket, its writable edges come, and the body arrives whole, then
/// the close.
#[test]
fn closing_client_that_reads_late_gets_a_large_late_response_whole() {
    let body = pattern(8 << 20);
    let slow = SlowBackend::start(Duration::from_millis(150), body.clone());
    let backend = slow.addr;
    let engine = one_server("http", backend);
    let mut c = Client::connect(engine.addr("web"));
    c.send(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    std::thread::sleep(Duration::from_millis(400));
    let got = c.read_to_close().unwrap();
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8_lossy(&got[..head_end]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert_eq!(got.len() - head_end, body.len());
    assert_eq!(checksum(&got[head_end..]), checksum(&body));
    drop(engine);
    drop(slow);
}

/// A client that goes away while its request waits for a slow server (its
/// socket not registered with the poller meanwhile) disturbs nobody: the
/// late response is dropped with the connection, and the next clients are
/// served by the same engine.
#[test]
fn client_gone_while_the_server_is_slow_disturbs_nobody() {
    let slow = SlowBackend::start(Duration::from_millis(200), b"late".to_vec());
    let backend = slow.addr;
    let engine = one_server("phttp", backend);
    let mut gone = Client::connect(engine.addr("web"));
    gone.send(b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50));
    drop(gone);
    for _ in 0..2 {
        let mut c = Client::connect(engine.addr("web"));
        c.send(b"GET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"late");
        assert_eq!(c.read_to_close().unwrap(), b"");
    }
    drop(engine);
    drop(slow);
}

/// An HTTP/1.0 client that asks for keep-alive (as `ab -k` does) keeps its
/// connection across requests: each response of known length says
/// `Connection: keep-alive`, and the real server gets the 1.0 request with
/// `Connection: keep-alive` so that its connection is pooled too. Without
/// keep-alive a 1.0 client is closed after its response, and a chunked
/// response (which a 1.0 client cannot frame) ends the connection.
#[test]
fn http10_keep_alive_client_keeps_its_connection() {
    let (engine, backends) = three_rules("phttp");
    let mut c = Client::connect(engine.addr("web"));
    for i in 0..3 {
        c.send(
            format!("GET /html/{i} HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        );
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert_eq!(r.text(), format!("r2 /html/{i}"));
    }
    let heads = backends[1].heads();
    assert_eq!(heads.len(), 3, "{heads:?}");
    for h in &heads {
        assert!(h.contains(" HTTP/1.0\r\n"), "{h}");
        assert!(h.contains("\r\nConnection: keep-alive\r\n"), "{h}");
    }
    assert_eq!(
        backends[1]
            .seen
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one pooled backend connection"
    );

    c.send(b"GET /chunked/100 HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n");
    let got = c.read_to_close().unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");

    let mut c = Client::connect(engine.addr("web"));
    c.send(b"GET /html/last HTTP/1.0\r\nHost: t\r\n\r\n");
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "r2 /html/last"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(c.read_to_close().unwrap(), b"");
}

//! `zerocopy_send`: bodies and tunnels moved with `splice(2)` arrive
//! intact (checksums), framing stays exact (keep-alive and pipelining after
//! a spliced body), half-close passes through a spliced layer-4 tunnel, and
//! the setting is read per decision (switched on a live connection).

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use ktcpvs_core::ServiceSpec;
use support::backend::{EchoBackend, HttpBackend};
use support::client::Client;
use support::*;

fn http_service(zerocopy: &str) -> (Running, HttpBackend) {
    let backend = HttpBackend::start("r1");
    let control = control();
    set(&control, "zerocopy_send", zerocopy);
    add_service(&control, "web", "phttp", ServiceSpec::default());
    add_server(&control, "web", backend.addr());
    add_rule(&control, "web", ".*", backend.addr());
    start(&control, "web");
    (run(control), backend)
}

/// Large bodies of every framing, both ways, on one keep-alive connection.
fn bodies_arrive_intact(c: &mut Client) {
    for n in [0usize, 1, 65_535, 8 << 20] {
        let r = c.get(&format!("/length/{n}")).unwrap();
        assert_eq!(r.status, 200);
        r.assert_pattern_body(n);
    }
    // A Content-Length request body, echoed with Content-Length, with the
    // next request pipelined right behind it: the splice must stop at the
    // body's end.
    let body = pattern(6 << 20);
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut writer = c.stream().try_clone().unwrap();
    let t = std::thread::spawn(move || writer.write_all(&req));
    let r = c.read_response(false).unwrap();
    assert_eq!(r.header("x-checksum").unwrap(), checksum(&body).to_string());
    assert_eq!(r.body.len(), body.len());
    let r = c.read_response(false).unwrap();
    assert_eq!(r.text(), "r1 /after");
    t.join().unwrap().unwrap();
    // Chunked stays on the validating path and still works.
    let r = c.get("/chunked/1000000").unwrap();
    assert_eq!(r.body.len(), 1_000_000);
}

#[test]
fn spliced_and_buffered_bodies_arrive_intact() {
    for zerocopy in ["1", "0"] {
        let (engine, _b) = http_service(zerocopy);
        let mut c = Client::connect(engine.addr("web"));
        bodies_arrive_intact(&mut c);
        // Close-delimited: relayed whole, then the connection closes.
        c.get("/close/3000000")
            .unwrap()
            .assert_pattern_body(3_000_000);
    }
}

#[test]
fn the_setting_is_read_per_decision_on_a_live_connection() {
    let (engine, _b) = http_service("0");
    let mut c = Client::connect(engine.addr("web"));
    bodies_arrive_intact(&mut c);
    set(&engine.control, "zerocopy_send", "1");
    bodies_arrive_intact(&mut c);
    set(&engine.control, "zerocopy_send", "0");
    bodies_arrive_intact(&mut c);
}

/// A spliced body larger than every buffer on its way, to a client that
/// starts reading late and then reads with pauses: the pipe fills and the
/// client blocks again and again, so the server's socket leaves the poller
/// and comes back each time. The body arrives whole, and the server
/// connection, watched again, is reused for the next request.
#[test]
fn spliced_body_to_a_client_that_pauses_arrives_whole() {
    let (engine, backend) = http_service("1");
    let n = 32 << 20;
    let mut c = Client::connect(engine.addr("web"));
    c.send(format!("GET /length/{n} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    std::thread::sleep(Duration::from_millis(300));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.reader.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let mut body = vec![0u8; n];
    for (i, chunk) in body.chunks_mut(1 << 20).enumerate() {
        c.reader.read_exact(chunk).unwrap();
        if i % 4 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(checksum(&body), checksum(&pattern(n)));
    assert_eq!(c.get("/next").unwrap().text(), "r1 /next");
    assert_eq!(
        backend
            .seen
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the server connection was reused, not replaced"
    );
}

#[test]
fn truncated_spliced_body_cuts_the_client() {
    let (engine, _b) = http_service("1");
    let mut c = Client::connect(engine.addr("web"));
    // The backend promises 1 MiB, sends 1000 bytes and closes.
    assert!(c.get("/die").is_err(), "a truncated body is not a response");
    let mut c = Client::connect(engine.addr("web"));
    assert_eq!(c.get("/ok").unwrap().text(), "r1 /ok");
}

fn l4_service(server: std::net::SocketAddr, zerocopy: &str) -> Running {
    let control = control();
    set(&control, "zerocopy_send", zerocopy);
    add_service(&control, "l4", "wlc", ServiceSpec::default());
    add_server(&control, "l4", server);
    start(&control, "l4");
    run(control)
}

#[test]
fn spliced_tunnel_relays_megabytes_and_passes_half_close_on() {
    let echo = EchoBackend::start();
    for zerocopy in ["1", "0"] {
        let engine = l4_service(echo.addr(), zerocopy);
        let payload = pattern(16 << 20);
        let mut s = TcpStream::connect(engine.addr("l4")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut reader = s.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map(|_| out)
        });
        s.write_all(&payload).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let got = t.join().unwrap().unwrap();
        assert_eq!(got.len(), payload.len() + 3, "zerocopy_send={zerocopy}");
        assert_eq!(checksum(&got[..payload.len()]), checksum(&payload));
        assert_eq!(
            &got[payload.len()..],
            b"END",
            "the backend wrote after our FIN and it came through"
        );
    }
}

/// A spliced layer-4 download to a client that starts reading late and then
/// pauses: the server's socket leaves the poller while the pipe is full and
/// comes back each time the client drains. All of it arrives, then the
/// client's own bytes and FIN still reach the server, whose answer and FIN
/// come back.
#[test]
fn spliced_tunnel_download_to_a_client_that_pauses_arrives_whole() {
    let n = 32 << 20;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut go = [0u8; 1];
        s.read_exact(&mut go).unwrap();
        s.write_all(&pattern(n)).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        s.write_all(b"BYE").unwrap();
        rest
    });
    let engine = l4_service(server_addr, "1");
    let mut s = TcpStream::connect(engine.addr("l4")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"g").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut got = vec![0u8; n];
    for (i, chunk) in got.chunks_mut(1 << 20).enumerate() {
        s.read_exact(chunk).unwrap();
        if i % 4 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(checksum(&got), checksum(&pattern(n)));
    s.write_all(b"after").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut tail = Vec::new();
    s.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, b"BYE");
    assert_eq!(server.join().unwrap(), b"after");
}

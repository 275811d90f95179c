//! Request smuggling, tried as an attacker would, through real sockets.
//! Each test is named after the attack and checks the difference between
//! what the proxy decided and what the backend actually received: the
//! backend must see exactly the requests the proxy framed, and a later
//! client on another connection must get its own response.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ktcpvs_core::ServiceSpec;
use support::backend::{read_request_head, HttpBackend, RawBackend};
use support::client::Client;
use support::*;

/// A per-request service whose every request goes to `backend`, running.
fn one_server(backend: SocketAddr) -> Running {
    one_server_with("phttp", backend, &[])
}

/// The request lines the backend received, in order.
fn request_lines(backend: &HttpBackend) -> Vec<String> {
    backend
        .heads()
        .iter()
        .map(|h| h.lines().next().unwrap_or("").to_string())
        .collect()
}

/// The body of an attack: a whole second request, which a backend that
/// lost the framing would parse as a request of its own.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn connection_header_naming_framing_fields_cannot_smuggle_a_request() {
    let backend = HttpBackend::start("r1");
    let engine = one_server(backend.addr());
    let chunked_body = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let attacks: Vec<(String, String)> = vec![
        (
            "Connection: Content-Length".into(),
            format!("Content-Length: {}\r\n\r\n{SMUGGLED}", SMUGGLED.len()),
        ),
        (
            "Connection: close, Content-Length".into(),
            format!("Content-Length: {}\r\n\r\n{SMUGGLED}", SMUGGLED.len()),
        ),
        (
            "Connection: Transfer-Encoding".into(),
            format!("Transfer-Encoding: chunked\r\n\r\n{chunked_body}"),
        ),
        (
            "Connection: keep-alive,transfer-encoding".into(),
            format!("Transfer-Encoding: chunked\r\n\r\n{chunked_body}"),
        ),
        (
            "Connection: Host".into(),
            format!("Content-Length: {}\r\n\r\n{SMUGGLED}", SMUGGLED.len()),
        ),
    ];
    for (connection, rest) in &attacks {
        let mut attacker = Client::connect(engine.addr("web"));
        attacker
            .send(format!("POST /attack HTTP/1.1\r\nHost: t\r\n{connection}\r\n{rest}").as_bytes());
        let r = attacker.read_response(false).unwrap();
        // Forwarded with its framing intact (or refused): never a second
        // request at the backend.
        assert!(
            r.status == 200 || r.status == 400,
            "{connection}: {}",
            r.status
        );
        // A later client on its own connection gets its own answer.
        let mut victim = Client::connect(engine.addr("web"));
        let v = victim.get("/victim").unwrap();
        assert_eq!(v.status, 200, "{connection}");
        assert_eq!(v.text(), "r1 /victim", "{connection}");
    }
    let lines = request_lines(&backend);
    assert!(
        !lines.iter().any(|l| l.contains("/smuggled")),
        "the backend parsed a smuggled request: {lines:?}"
    );
    for head in backend.heads() {
        if head.starts_with("POST /attack") {
            let lower = head.to_ascii_lowercase();
            assert!(
                lower.contains("\r\ncontent-length: ") || lower.contains("\r\ntransfer-encoding: "),
                "a forwarded body lost its framing: {head:?}"
            );
            assert!(lower.contains("\r\nhost: t\r\n"), "Host dropped: {head:?}");
        }
    }
}

#[test]
fn backend_naming_its_framing_in_connection_gets_502_and_is_not_pooled() {
    let backend = RawBackend::start(|s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        while read_request_head(&mut r).is_some() {
            let answer: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 40\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            if w.write_all(answer).is_err() {
                return;
            }
        }
    });
    let engine = one_server(backend.addr());
    for round in 0..2 {
        let mut c = Client::connect(engine.addr("web"));
        let r = c.get("/").unwrap();
        assert_eq!(r.status, 502, "round {round}");
    }
    assert_eq!(
        backend.connections(),
        2,
        "a refused response's connection is closed, never pooled"
    );
}

/// A backend that answers nothing and records every byte each connection
/// brought, once the proxy closes it.
fn recording_backend() -> (RawBackend, Arc<Mutex<Vec<Vec<u8>>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let r2 = Arc::clone(&received);
    let backend = RawBackend::start(move |mut s| {
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        r2.lock().unwrap().push(all);
    });
    (backend, received)
}

#[test]
fn malformed_chunked_body_gets_400_and_no_byte_past_the_last_valid_one() {
    let (backend, received) = recording_backend();
    let engine = one_server(backend.addr());
    // (valid part, what breaks the framing)
    let bodies: [(&str, &str); 10] = [
        ("", "zz\r\nabc\r\n0\r\n\r\n"),
        ("", "0x5\r\nabcde\r\n0\r\n\r\n"),
        ("", "+5\r\nabcde\r\n0\r\n\r\n"),
        ("", "-5\r\nabcde\r\n0\r\n\r\n"),
        ("1111111111111111", "1\r\n"),
        ("5;", "=x\r\nabcde\r\n0\r\n\r\n"),
        ("3\r\nabc", "def\r\n0\r\n\r\n"),
        ("5\r\nab\r\n0\r\n", "\r\n"),
        ("3\r\nabc\r\n0\r\nBadTrailer", "\r\n\r\n"),
        ("3 ", "\r\nabc\r\n0\r\n\r\n"),
    ];
    for (valid, bad) in bodies {
        let head = "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut c = Client::connect(engine.addr("web"));
        c.send(format!("{head}{valid}{bad}").as_bytes());
        let r = c
            .read_response(false)
            .unwrap_or_else(|e| panic!("{valid:?}{bad:?}: {e}"));
        assert_eq!(r.status, 400, "{valid:?}{bad:?}");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.read_to_close().is_ok());
        let allowed = format!("{head}{valid}");
        eventually("the backend connection is closed", || {
            received.lock().unwrap().len() == 1
        });
        let got = received.lock().unwrap().pop().unwrap();
        assert!(
            allowed.as_bytes().starts_with(&got),
            "the backend received bytes past the last valid one: {:?} (allowed {allowed:?})",
            String::from_utf8_lossy(&got)
        );
    }
}

#[test]
fn body_cut_short_by_the_client_closes_the_backend_connection() {
    let (backend, received) = recording_backend();
    let engine = one_server(backend.addr());
    for (framing, part) in [
        ("Content-Length: 100", "0123456789"),
        ("Transfer-Encoding: chunked", "a\r\n0123456789\r\n"),
    ] {
        let mut c = Client::connect(engine.addr("web"));
        c.send(format!("POST /upload HTTP/1.1\r\nHost: t\r\n{framing}\r\n\r\n{part}").as_bytes());
        std::thread::sleep(Duration::from_millis(50));
        c.stream().shutdown(std::net::Shutdown::Write).unwrap();
        eventually("the backend connection is closed", || {
            received.lock().unwrap().len() == 1
        });
        let got = received.lock().unwrap().pop().unwrap();
        assert!(String::from_utf8_lossy(&got).ends_with(part), "{framing}");
    }
}

#[test]
fn backend_answering_before_the_body_is_read_is_never_pooled() {
    // The backend answers as soon as it has the head, without reading the
    // body, and finishes its response after the body went up. Whatever it
    // then reads on that connection starts with the unread body: a pooled
    // connection would put the next client's request behind it.
    let heads = Arc::new(Mutex::new(Vec::new()));
    let h2 = Arc::clone(&heads);
    let ids = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let backend = RawBackend::start(move |s| {
        let id = ids.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut answered = 0;
        while let Some(head) = read_request_head(&mut r) {
            let line = head.lines().next().unwrap_or("").to_string();
            h2.lock().unwrap().push((id, line));
            // A later request on the connection is answered late, so that
            // the connection looks clean while it idles in a pool.
            if answered > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            answered += 1;
            if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nearly")
                .is_err()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
            if w.write_all(b"-resp").is_err() {
                return;
            }
        }
    });
    let engine = one_server(backend.addr());
    let mut c = Client::connect(engine.addr("web"));
    c.send(
        format!(
            "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            SMUGGLED.len()
        )
        .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(100));
    c.send(SMUGGLED.as_bytes());
    let r = c.read_response(false).unwrap();
    assert_eq!(r.text(), "early-resp");
    // The same client connection, so the same worker and backend pool.
    let r = c.get("/next").unwrap();
    assert_eq!(r.text(), "early-resp");
    let heads = heads.lock().unwrap().clone();
    let on = |target: &str| {
        heads
            .iter()
            .find(|(_, l)| l.contains(target))
            .map(|(id, _)| *id)
    };
    assert_ne!(
        on("/upload"),
        on("/next"),
        "the next request went over the connection holding an unread body: {heads:?}"
    );
}

#[test]
fn absolute_form_target_is_routed_on_its_path_and_its_authority_is_the_host() {
    let private = HttpBackend::start("private");
    let public = HttpBackend::start("public");
    let control = control();
    add_service(&control, "web", "phttp", ServiceSpec::default());
    add_server(&control, "web", private.addr());
    add_server(&control, "web", public.addr());
    // A rule used as an access control: only /images/ goes to `private`.
    add_rule(&control, "web", "^/images/", private.addr());
    add_rule(&control, "web", ".*", public.addr());
    start(&control, "web");
    let engine = run(control);
    let mut c = Client::connect(engine.addr("web"));
    for (target, server, path) in [
        ("http://t/images/x", "private", "/images/x"),
        ("HTTP://t:8080/images/y?q=1", "private", "/images/y?q=1"),
        ("https://other.example/html/z", "public", "/html/z"),
        ("http://t", "public", "/"),
        ("/images/plain", "private", "/images/plain"),
    ] {
        c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let r = c.read_response(false).unwrap();
        assert_eq!(r.header("x-server"), Some(server), "{target}");
        assert_eq!(r.text(), format!("{server} {path}"), "{target}");
    }
    let heads = private.heads();
    assert!(
        heads[0].starts_with("GET /images/x HTTP/1.1\r\n"),
        "{heads:?}"
    );
    assert!(heads[0].contains("\r\nHost: t\r\n"), "{heads:?}");
    assert!(heads[1].contains("\r\nHost: t:8080\r\n"), "{heads:?}");
    let heads = public.heads();
    assert!(
        heads[0].contains("\r\nHost: other.example\r\n") && !heads[0].contains("Host: t\r\n"),
        "the authority replaces Host: {heads:?}"
    );
    for bad in [
        "http://t?q=1",
        "ftp://t/images/x",
        "http://user@t/images/x",
        "http:///images/x",
        "urn:x:/images/",
    ] {
        let mut c = Client::connect(engine.addr("web"));
        c.send(format!("GET {bad} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert_eq!(c.read_response(false).unwrap().status, 400, "{bad}");
    }
    assert_eq!(private.requests() + public.requests(), 5);
}

#[test]
fn upgrade_to_h2c_or_an_unlisted_protocol_is_served_as_http11() {
    let backend = HttpBackend::start("r1");
    let engine = one_server(backend.addr());
    let mut c = Client::connect(engine.addr("web"));
    for (upgrade, extra) in [
        ("h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"),
        ("websocket, h2c", ""),
        ("echo", ""),
    ] {
        c.send(
            format!(
                "GET /plain HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: {upgrade}\r\n{extra}\r\n"
            )
            .as_bytes(),
        );
        let r = c.read_response(false).unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "r1 /plain"),
            "{upgrade}"
        );
    }
    // The connection stays an HTTP/1.1 one, switched per request.
    assert_eq!(c.get("/after").unwrap().text(), "r1 /after");
    for head in backend.heads() {
        let lower = head.to_ascii_lowercase();
        assert!(
            !lower.contains("upgrade") && !lower.contains("http2-settings"),
            "the backend was asked to switch protocols: {head:?}"
        );
    }
    // A server that switches protocols unasked is refused.
    let mut c = Client::connect(engine.addr("web"));
    c.send(b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n");
    assert_eq!(c.read_response(false).unwrap().status, 502);
}

#[test]
fn upgrade_to_a_protocol_the_service_lists_becomes_a_tunnel() {
    let backend = HttpBackend::start("r1");
    let control = control();
    add_service(
        &control,
        "web",
        "phttp",
        ServiceSpec {
            upgrades: Some(vec!["echo".into()]),
            ..Default::default()
        },
    );
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    let engine = run(control);
    let mut c = Client::connect(engine.addr("web"));
    c.send(b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: Echo/2\r\n\r\n");
    let r = c.read_response(true).unwrap();
    assert_eq!(r.status, 101);
    c.send(b"raw");
    let mut buf = [0u8; 3];
    c.reader.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"raw");
    // Websocket is no longer in this service's list.
    let mut c = Client::connect(engine.addr("web"));
    c.send(
        b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert_eq!(c.read_response(false).unwrap().status, 502);
}

//! HTTP/2 streams through the engine, beside what the attack suite
//! (`http2_attacks.rs`) refuses: the backend connections streams use are
//! reused across streams whatever the scheduler (a per-connection route's
//! connection goes back to the pool when its stream ends), each stream is
//! switched by the rules on its own, and every framing of an HTTP/1.1
//! response (length, chunked, close-delimited, 1xx first, 204, 304, HEAD)
//! reaches its stream whole and ended.

mod support;

use std::net::SocketAddr;

use ktcpvs_core::ServiceSpec;
use support::backend::HttpBackend;
use support::h2frames::*;
use support::*;

/// A service `web` with `http2 = on` and `scheduler`, rules sending
/// `/a/` to `a` and the rest to `b`, running.
fn two_servers(scheduler: &str, a: SocketAddr, b: SocketAddr) -> Running {
    let control = control();
    add_service(
        &control,
        "web",
        scheduler,
        ServiceSpec {
            http2: Some(true),
            ..ServiceSpec::default()
        },
    );
    add_server(&control, "web", a);
    add_server(&control, "web", b);
    add_rule(&control, "web", "^/a/", a);
    add_rule(&control, "web", ".*", b);
    start(&control, "web");
    run(control)
}

#[test]
fn streams_reuse_backend_connections_whatever_the_scheduler() {
    for scheduler in ["phttp", "http"] {
        let (a, b) = (HttpBackend::start("a"), HttpBackend::start("b"));
        let engine = two_servers(scheduler, a.addr(), b.addr());
        let mut c = H2Client::handshake(engine.addr("web"), &[]);
        for i in 0..30u32 {
            let (path, name) = if i % 3 == 0 {
                ("/a/x", "a")
            } else {
                ("/y", "b")
            };
            let outcome = c.get(2 * i + 1, path);
            let r = outcome.response(scheduler);
            assert_eq!(r.status(), Some(200), "{scheduler}: stream {i}");
            assert_eq!(
                r.text(),
                format!("{name} {path}"),
                "{scheduler}: stream {i}"
            );
        }
        assert_eq!((a.requests(), b.requests()), (10, 20), "{scheduler}");
        let opened = |s: &HttpBackend| s.seen.connections.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            opened(&a) <= 2 && opened(&b) <= 2,
            "{scheduler}: {} and {} backend connections for 30 streams",
            opened(&a),
            opened(&b)
        );
    }
}

/// What the backend of `every_response_shape_reaches_the_stream_whole`
/// answers to `method path`: each shape of HTTP/1.1 response framing.
fn shaped_response(method: &str, path: &str) -> (&'static [u8], bool) {
    let head_only = method == "HEAD";
    match path {
        "/length" if head_only => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Shape: length\r\n\r\n",
            false,
        ),
        "/length" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Shape: length\r\nKeep-Alive: timeout=5\r\n\r\nhello",
            false,
        ),
        "/chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Shape: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n",
            false,
        ),
        "/close" => (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Shape: close\r\n\r\nhello",
            true,
        ),
        "/interim" => (
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Shape: interim\r\n\r\nhello",
            false,
        ),
        "/204" => (b"HTTP/1.1 204 No Content\r\nX-Shape: 204\r\n\r\n", false),
        "/304" => (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nX-Shape: 304\r\n\r\n",
            false,
        ),
        _ => (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
    }
}

#[test]
fn every_response_shape_reaches_the_stream_whole() {
    use std::io::{BufReader, Write};
    use support::backend::{read_request_head, RawBackend};
    let backend = RawBackend::start(|conn| {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        while let Some(head) = read_request_head(&mut reader) {
            let mut words = head.split(' ');
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let (bytes, close) = shaped_response(method, path);
            if conn.write_all(bytes).is_err() || close {
                return;
            }
        }
    });
    let control = control();
    let spec = ServiceSpec {
        http2: Some(true),
        ..ServiceSpec::default()
    };
    add_service(&control, "web", "phttp", spec);
    add_server(&control, "web", backend.addr());
    add_rule(&control, "web", ".*", backend.addr());
    start(&control, "web");
    let engine = run(control);
    let mut c = H2Client::handshake(engine.addr("web"), &[]);
    // (method, path, status, body)
    let cases: [(&str, &str, u16, &str); 8] = [
        ("GET", "/length", 200, "hello"),
        ("HEAD", "/length", 200, ""),
        ("GET", "/chunked", 200, "hello"),
        ("GET", "/close", 200, "hello"),
        ("GET", "/interim", 200, "hello"),
        ("GET", "/204", 204, ""),
        ("GET", "/304", 304, ""),
        ("GET", "/length", 200, "hello"),
    ];
    for (i, (method, path, status, body)) in cases.into_iter().enumerate() {
        let what = format!("{method} {path}");
        let id = 2 * i as u32 + 1;
        let block = request_block(method, path, &[]);
        let r = c
            .request(id, &block, None, std::time::Duration::from_secs(5))
            .response(&what);
        assert_eq!(r.status(), Some(status), "{what}: status");
        assert_eq!(r.text(), body, "{what}: body");
        assert!(r.ended, "{what}: END_STREAM");
        assert_eq!(
            r.heads.len(),
            1,
            "{what}: one head (no 1xx relayed, no trailers)"
        );
        assert!(r.header("x-shape").is_some(), "{what}: fields kept");
        for hop in ["connection", "keep-alive", "transfer-encoding"] {
            assert_eq!(r.header(hop), None, "{what}: {hop} dropped");
        }
        if path == "/length" && method == "GET" {
            assert_eq!(r.header("content-length").as_deref(), Some("5"), "{what}");
        }
    }
}

//! HTTP/2 streams through the engine, beside what the attack suite
//! (`http2_attacks.rs`) refuses: the backend connections streams use are
//! reused across streams whatever the scheduler (a per-connection route's
//! connection goes back to the pool when its stream ends), each stream is
//! switched by the rules on its own, and every framing of an HTTP/1.1
//! response (length, chunked, close-delimited, 1xx first, 204, 304, HEAD)
//! reaches its stream whole and ended, with exactly the fields the server
//! sent (a differential test over made-up heads).

mod support;

use std::net::SocketAddr;

use ktcpvs_core::ServiceSpec;
use support::backend::{read_request_head, HttpBackend, RawBackend};
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

/// A backend answering each request `METHOD PATH` on a connection with
/// `answer(method, path)`: the bytes, and whether it closes after them;
/// and a running service `web` (`phttp`, `http2 = on`) sending every
/// request to it.
fn h2_service_answering(answer: fn(&str, &str) -> (Vec<u8>, bool)) -> (RawBackend, Running) {
    use std::io::{BufReader, Write};
    let backend = RawBackend::start(move |conn| {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        while let Some(head) = read_request_head(&mut reader) {
            let mut words = head.split(' ');
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let (bytes, close) = answer(method, path);
            if conn.write_all(&bytes).is_err() || close {
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
    (backend, run(control))
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
    let (_backend, engine) = h2_service_answering(|method, path| {
        let (bytes, close) = shaped_response(method, path);
        (bytes.to_vec(), close)
    });
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

/// Response head number `n` of `response_fields_reach_the_stream_as_sent`,
/// made up from `n` alone: its bytes (a 200 with a five-byte body), the
/// fields an HTTP/2 client must receive after `:status` (in order, names in
/// lower case, the connection-specific ones left out) and whether the
/// server closes after it.
fn random_head(n: u64) -> (Vec<u8>, Fields, bool) {
    let mut state = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    const NAMES: [&str; 10] = [
        "X-Shape",
        "server",
        "ETag",
        "Content-Type",
        "Set-Cookie",
        "VARY",
        "x-a-name-longer-than-thirty-two-bytes-in-all",
        "Cache-Control",
        "x",
        "Last-Modified",
    ];
    // (field line, connection-specific, the server closes after it)
    const HOPS: [(&str, bool); 4] = [
        ("Connection: keep-alive", false),
        ("Keep-Alive: timeout=5", false),
        ("Connection: close", true),
        ("", false),
    ];
    let mut fields: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for _ in 0..next(12) {
        let name = NAMES[next(NAMES.len() as u64) as usize].to_string();
        let len = next(40) as usize;
        let mut value: Vec<u8> = (0..len)
            .map(|_| match next(20) {
                0 => b' ',
                1 => b'\t',
                _ => b'!' + next(94) as u8,
            })
            .collect();
        while value.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            value.remove(0);
        }
        while value.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
            value.pop();
        }
        fields.push((name, value, false));
    }
    let at = next(fields.len() as u64 + 1) as usize;
    fields.insert(at, ("Content-Length".into(), b"5".to_vec(), false));
    let (hop, close) = HOPS[next(HOPS.len() as u64) as usize];
    if let Some((name, value)) = hop.split_once(": ") {
        let at = next(fields.len() as u64 + 1) as usize;
        fields.insert(at, (name.into(), value.as_bytes().to_vec(), true));
    }
    let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
    for (name, value, _) in &fields {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\nhello");
    let expected = fields
        .into_iter()
        .filter(|(_, _, hop)| !hop)
        .map(|(name, value, _)| (name.to_ascii_lowercase(), value))
        .collect();
    (bytes, expected, close)
}

/// Differential: for 48 made-up response heads (fields of every case, in
/// the static table or not, long names, empty values, inner blanks; with
/// `Connection: keep-alive`, which is forwarded unchanged, `Keep-Alive` or
/// `Connection: close`, which are cut or rewritten, or no hop-by-hop field)
/// the fields the HTTP/2 client decodes are exactly the fields the server
/// sent, in order, whichever way the engine took the head apart.
#[test]
fn response_fields_reach_the_stream_as_the_server_sent_them() {
    let (_backend, engine) = h2_service_answering(|_, path| {
        let n = path.trim_start_matches("/case/").parse().unwrap_or(0);
        let (bytes, _, close) = random_head(n);
        (bytes, close)
    });
    let mut c = H2Client::handshake(engine.addr("web"), &[]);
    for n in 0..48u64 {
        let path = format!("/case/{n}");
        let block = request_block("GET", &path, &[]);
        let r = c
            .request(
                2 * n as u32 + 1,
                &block,
                None,
                std::time::Duration::from_secs(5),
            )
            .response(&path);
        let (_, expected, _) = random_head(n);
        assert_eq!(r.status(), Some(200), "{path}");
        assert_eq!(r.text(), "hello", "{path}");
        let got: Fields = r.heads[0]
            .iter()
            .filter(|(name, _)| name != ":status")
            .cloned()
            .collect();
        assert_eq!(
            got,
            expected,
            "{path}: {:?}",
            String::from_utf8_lossy(&random_head(n).0)
        );
    }
}

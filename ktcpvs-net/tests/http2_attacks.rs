//! HTTP/2 attacks on the proxy's client side, sent as an attacker would:
//! frames built by hand (support/h2frames.rs), over real loopback sockets,
//! to a service with `http2 = on` in front of a real HTTP/1.1 backend.
//!
//! Each test checks three things: what the attacking client got (a
//! RST_STREAM or GOAWAY with its code, or a response); what the backend
//! received (differentially: nothing of a refused stream, or at least
//! never a whole request); and that the proxy still serves, on the same
//! connection when it survives and on a second client connection.
//!
//! Two layers refuse things here and the tests do not care which: the
//! `h2` crate (frame layer, HPACK, the header list's form, flow control,
//! its own flood limits) and the engine (the downgrade to HTTP/1.1 in
//! `http2/downgrade.rs`, the reset counter in `session/h2/mod.rs`). Where
//! RFC 9113 allows more than one answer the test pins the one observed
//! and says so.
//!
//! Run `cargo test -p ktcpvs-net --test http2_attacks -- --nocapture` to
//! see what each attack received.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use ktcpvs_core::ServiceSpec;
use support::backend::HttpBackend;
use support::h2frames::*;
use support::*;

/// How long a single answer may take.
const ANSWER: Duration = Duration::from_secs(5);

/// The proxy's stream limit (ktcpvs-net/src/session/h2/mod.rs).
const MAX_STREAMS: u32 = 100;

/// A service with `http2 = on` (and `spec`'s other fields) whose every
/// request goes to `backend`, running.
fn h2_engine_with(backend: SocketAddr, spec: ServiceSpec) -> Running {
    let control = control();
    add_service(
        &control,
        "web",
        "phttp",
        ServiceSpec {
            http2: Some(true),
            ..spec
        },
    );
    add_server(&control, "web", backend);
    add_rule(&control, "web", ".*", backend);
    start(&control, "web");
    run(control)
}

fn h2_engine(backend: SocketAddr) -> Running {
    h2_engine_with(backend, ServiceSpec::default())
}

/// Asserts that `outcome` is a whole response with `status` and `body`.
fn assert_served(what: &str, outcome: Outcome, status: u16, body: &str) -> StreamState {
    let r = outcome.response(what);
    assert_eq!(r.status(), Some(status), "{what}: status");
    assert_eq!(r.text(), body, "{what}: body");
    r
}

/// A second client, on its own connection, is served `path` by `name`.
fn assert_fresh_client_served(engine: &Running, name: &str, path: &str) {
    let mut c = H2Client::handshake(engine.addr("web"), &[]);
    let what = format!("a fresh client's GET {path}");
    assert_served(&what, c.get(1, path), 200, &format!("{name} {path}"));
}

// ---------------------------------------------------------------------
// The hand-built client itself.

#[test]
fn hpack_decoder_reads_the_rfc_7541_examples() {
    // C.4.1: a request with a Huffman-coded authority.
    let block = [
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
        0xf4, 0xff,
    ];
    let fields = Decoder::default().decode(&block).unwrap();
    let got: Vec<(String, String)> = fields
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8(v).unwrap()))
        .collect();
    let want = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(huffman_decode(&[0x07]).unwrap(), b"0");
    assert_eq!(huffman_decode(&[(0x21 << 2) + 3]).unwrap(), b"A");
    // A literal written by the client decodes to itself, any byte kept.
    let mut out = Vec::new();
    literal(b"X-Up", b"a\r\n\0b", &mut out);
    assert_eq!(
        Decoder::default().decode(&out).unwrap(),
        vec![("X-Up".to_string(), b"a\r\n\0b".to_vec())]
    );
    // An integer past its prefix (RFC 7541 C.1.2: 1337 in 5 bits).
    let mut n = Vec::new();
    hpack_int(0, 5, 1337, &mut n);
    assert_eq!(n, [31, 154, 10]);
}

#[test]
fn well_formed_requests_over_the_hand_built_client_are_answered() {
    let backend = HttpBackend::start("b1");
    let engine = h2_engine(backend.addr());
    let mut c = H2Client::handshake(engine.addr("web"), &[]);
    assert!(
        c.settings_received[0].contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS)),
        "the proxy announces its stream limit: {:?}",
        c.settings_received
    );
    // GET.
    assert_served("GET", c.get(1, "/hello"), 200, "b1 /hello");
    // POST with a declared length, the body in two DATA frames.
    let block = request_block("POST", "/echo", &[("content-length", "11")]);
    let mut out = headers(3, END_HEADERS, &block);
    out.extend_from_slice(&data(3, 0, b"hello"));
    out.extend_from_slice(&data(3, END_STREAM, b" world"));
    c.send(&out).unwrap();
    let r = assert_served("POST", c.outcome(3, ANSWER), 200, "hello world");
    assert_eq!(r.header("x-length").as_deref(), Some("11"));
    // POST without a length (chunked to the backend).
    let block = request_block("POST", "/echo", &[]);
    let mut out = headers(5, END_HEADERS, &block);
    out.extend_from_slice(&data(5, 0, b"abc"));
    out.extend_from_slice(&data(5, END_STREAM, b"def"));
    c.send(&out).unwrap();
    assert_served("chunked POST", c.outcome(5, ANSWER), 200, "abcdef");
    // A header block split over HEADERS and CONTINUATION.
    let block = request_block("GET", "/split", &[("x-a", "1"), ("x-b", "2")]);
    let (first, rest) = block.split_at(block.len() / 2);
    let mut out = headers(7, END_STREAM, first);
    out.extend_from_slice(&continuation(7, END_HEADERS, rest));
    c.send(&out).unwrap();
    assert_served(
        "HEADERS + CONTINUATION",
        c.outcome(7, ANSWER),
        200,
        "b1 /split",
    );
    // The `te: trailers` a gRPC client sends, and OPTIONS *.
    let block = request_block("GET", "/te", &[("te", "trailers")]);
    let outcome = c.request(9, &block, None, ANSWER);
    assert_served("te: trailers", outcome, 200, "b1 /te");
    let block = request_block("OPTIONS", "*", &[]);
    let outcome = c.request(11, &block, None, ANSWER);
    assert_served("OPTIONS *", outcome, 200, "b1 *");
    assert!(c.ping_roundtrip(ANSWER));
    assert!(c.goaway.is_none() && !c.closed);
    assert_fresh_client_served(&engine, "b1", "/fresh");

    let heads = backend.heads();
    let post = heads
        .iter()
        .find(|h| h.starts_with("POST /echo HTTP/1.1\r\n") && h.contains("Content-Length: 11"))
        .expect("the POST with its length");
    assert!(post.contains("\r\nHost: test\r\n"), "{post:?}");
    // `te` is hop-by-hop: the HTTP/1.1 side drops it as for any client.
    assert!(heads.iter().any(|h| h.starts_with("GET /te ")));
    let split = heads.iter().find(|h| h.starts_with("GET /split ")).unwrap();
    assert!(split.contains("\r\nx-a: 1\r\nx-b: 2\r\n"), "{split:?}");
    assert_eq!(backend.requests(), 7);
}

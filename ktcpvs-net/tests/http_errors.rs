//! Errors go to the one client concerned: malformed requests (the backend
//! receives nothing), no server (503), refused servers (retry, then 502),
//! a slowloris client (408) while others are served, a backend killed
//! mid-response.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use ktcpvs_core::ServiceSpec;
use support::backend::HttpBackend;
use support::client::Client;
use support::*;

fn one_backend(spec: ServiceSpec) -> (Running, HttpBackend) {
    let backend = HttpBackend::start("r1");
    let control = control();
    add_service(&control, "web", "phttp", spec);
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    (run(control), backend)
}

#[test]
fn smuggling_and_malformed_requests_get_their_status_and_reach_no_backend() {
    let (engine, backend) = one_backend(ServiceSpec::default());
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(17000)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("CL and TE", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        ("differing CLs", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(), 400),
        ("TE not chunked", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : t\r\n\r\n".to_vec(), 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n".to_vec(), 400),
        ("bare LF", b"GET / HTTP/1.1\nHost: t\n\n".to_vec(), 400),
        ("HTTP/2.0 version", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 400),
        ("fragment in target", b"GET /a#b HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        ("request line too long", long_target.into_bytes(), 414),
        ("header block too large", big_header.into_bytes(), 431),
    ];
    for (name, bytes, status) in cases {
        let mut c = Client::connect(engine.addr("web"));
        c.send(&bytes);
        let r = c
            .read_response(false)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status, status, "{name}");
        assert!(
            c.read_to_close().is_ok(),
            "{name}: connection closed after the error"
        );
    }
    assert_eq!(backend.requests(), 0, "the backend received nothing");
    assert!(backend.heads().is_empty());
}

#[test]
fn no_server_is_503() {
    let control = control();
    add_service(&control, "web", "phttp", ServiceSpec::default());
    start(&control, "web");
    let engine = run(control);
    let mut c = Client::connect(engine.addr("web"));
    assert_eq!(c.get("/").unwrap().status, 503);
}

#[test]
fn refused_servers_are_retried_then_502() {
    let backend = HttpBackend::start("r1");
    let control = control();
    add_service(&control, "web", "phttp", ServiceSpec::default());
    add_server(&control, "web", refused_addr());
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    let engine = run(control);
    for _ in 0..3 {
        let mut c = Client::connect(engine.addr("web"));
        assert_eq!(
            c.get("/").unwrap().header("x-server"),
            Some("r1"),
            "retried on the live server"
        );
    }
    // Only refused servers: 502.
    let control = support::control();
    add_service(&control, "dead", "phttp", ServiceSpec::default());
    add_server(&control, "dead", refused_addr());
    add_server(&control, "dead", refused_addr());
    start(&control, "dead");
    let dead = run(control);
    let mut c = Client::connect(dead.addr("dead"));
    assert_eq!(c.get("/").unwrap().status, 502);
}

/// A control with service "web" (`phttp`) whose redirect address is
/// `redirect`, not started.
fn redirecting_to(redirect: std::net::SocketAddr) -> ktcpvs_core::Control {
    let control = control();
    add_service(
        &control,
        "web",
        "phttp",
        ServiceSpec {
            redirect: Some(Some(ep(redirect))),
            ..Default::default()
        },
    );
    control
}

#[test]
fn redirect_receives_the_untouched_request_when_no_server_takes_it() {
    let fallback = HttpBackend::start("local");
    let control = redirecting_to(fallback.addr());
    start(&control, "web");
    let engine = run(control);
    let mut c = Client::connect(engine.addr("web"));
    let r = c.get("/anything").unwrap();
    assert_eq!(r.text(), "local /anything");
}

/// When the redirect address cannot be reached, the client whose request no
/// server takes gets 502: its request is not handed to a server that no
/// rule chose, and the service goes on serving what its rules match.
#[test]
fn unreachable_redirect_answers_502_and_sends_the_request_nowhere_else() {
    let a = HttpBackend::start("a");
    let control = redirecting_to(refused_addr());
    add_server(&control, "web", a.addr());
    add_rule(&control, "web", "^/a/", a.addr());
    start(&control, "web");
    let engine = run(control);
    let mut c = Client::connect(engine.addr("web"));
    assert_eq!(c.get("/elsewhere").unwrap().status, 502);
    assert_eq!(a.requests(), 0, "{:?}", a.heads());
    let mut c = Client::connect(engine.addr("web"));
    let r = c.get("/a/x").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "a /a/x"));
}

#[test]
fn slowloris_gets_408_while_others_are_served() {
    let (engine, _backend) = one_backend(ServiceSpec {
        header_timeout: Some(1),
        ..Default::default()
    });
    let mut slow = TcpStream::connect(engine.addr("web")).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap();
    // Others are served meanwhile.
    for _ in 0..5 {
        let mut c = Client::connect(engine.addr("web"));
        assert_eq!(c.get("/").unwrap().status, 200);
    }
    let mut c = Client::over(slow);
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 408);
}

#[test]
fn backend_killed_mid_response_cuts_that_client_only() {
    let (engine, _backend) = one_backend(ServiceSpec::default());
    let mut c = Client::connect(engine.addr("web"));
    let r = c.get("/die");
    assert!(
        r.is_err(),
        "the client sees a truncated response, not a complete one"
    );
    let mut other = Client::connect(engine.addr("web"));
    assert_eq!(other.get("/fine").unwrap().status, 200);
}

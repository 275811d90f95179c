//! Rules that see the whole request, through the engine on loopback: each
//! condition routes (host, method, header, cookie, query, src), the
//! normalised path closes `//admin` and `/%2e%2e/` bypasses with nothing
//! reaching a server, redirects fill in captures and the host, fixed
//! responses answer (HEAD without a body), and header edits change what
//! the server receives and what the client gets back. The original's rule
//! forms keep working beside them.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::backend::HttpBackend;
use support::client::Client;
use support::*;

/// A service "web" loaded from `rules` (the `rule =` lines), with servers
/// a and b, over the test `phttp` scheduler.
fn service(rules: &str, a: &HttpBackend, b: &HttpBackend) -> Running {
    let control = control();
    let text = format!(
        "Virtual web {{\n  listen = 127.0.0.1:0\n  scheduler = phttp\n  server = {} 1\n  server = {} 1\n{}\n}}\n",
        a.addr(),
        b.addr(),
        rules
            .replace("A_ADDR", &a.addr().to_string())
            .replace("B_ADDR", &b.addr().to_string())
    );
    control
        .load_config(&text, None)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    start(&control, "web");
    run(control)
}

/// Sends `request` (a whole head) on a fresh connection and returns the
/// response text.
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn get(addr: SocketAddr, target: &str, extra: &str) -> String {
    exchange(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n"),
    )
}

fn served_by(response: &str) -> &str {
    response
        .lines()
        .find_map(|l| l.strip_prefix("x-server: "))
        .unwrap_or("")
}

#[test]
fn each_condition_routes() {
    let (a, b) = (HttpBackend::start("a"), HttpBackend::start("b"));
    let running = service(
        r#"  rule = pattern "^/h" host "=a.test" use server A_ADDR
  rule = pattern "^/m" method POST,PUT use server A_ADDR
  rule = pattern "^/x" header X-Canary "^yes$" use server A_ADDR
  rule = pattern "^/c" cookie beta "^on$" use server A_ADDR
  rule = pattern "^/q" query "(^|&)v=2(&|$)" use server A_ADDR
  rule = pattern "^/s" src 10.0.0.0/8 use server A_ADDR
  rule = pattern ".*" use server B_ADDR"#,
        &a,
        &b,
    );
    let addr = running.addr("web");
    let host = |h: &str| {
        exchange(
            addr,
            &format!("GET /h HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n"),
        )
    };
    assert_eq!(served_by(&host("a.test")), "a");
    assert_eq!(served_by(&host("A.TEST:8080")), "a");
    assert_eq!(served_by(&host("b.test")), "b");
    let post = exchange(
        addr,
        "POST /m HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(served_by(&post), "a");
    assert_eq!(served_by(&get(addr, "/m", "")), "b");
    assert_eq!(served_by(&get(addr, "/x", "X-Canary: yes\r\n")), "a");
    assert_eq!(served_by(&get(addr, "/x", "X-Canary: no\r\n")), "b");
    assert_eq!(served_by(&get(addr, "/c", "Cookie: a=1; beta=on\r\n")), "a");
    assert_eq!(served_by(&get(addr, "/c", "Cookie: beta=off\r\n")), "b");
    assert_eq!(served_by(&get(addr, "/q?a=1&v=2", "")), "a");
    assert_eq!(served_by(&get(addr, "/q?v=22", "")), "b");
    // The test client is 127.0.0.1, outside 10.0.0.0/8.
    assert_eq!(served_by(&get(addr, "/s", "")), "b");
}

#[test]
fn a_normalised_deny_cannot_be_bypassed() {
    let (a, b) = (HttpBackend::start("a"), HttpBackend::start("b"));
    let running = service(
        r#"  rule = pattern "^/admin" normalize respond 403 "text/plain" "denied\n"
  rule = pattern ".*" use server A_ADDR"#,
        &a,
        &b,
    );
    let addr = running.addr("web");
    for target in [
        "/admin",
        "//admin",
        "/%2e%2e/admin",
        "/x/../admin/",
        "/%61dmin/users",
        "/./admin",
    ] {
        let r = get(addr, target, "");
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{target}: {r}");
        assert!(r.ends_with("\r\n\r\ndenied\n"), "{target}: {r}");
    }
    assert_eq!(a.requests(), 0, "a denied request reached the server");
    let r = get(addr, "/public/admin", "");
    assert_eq!(served_by(&r), "a", "{r}");
    // The target forwarded is the one sent, not its normalised form.
    let r = get(addr, "/public/./x", "");
    assert!(r.ends_with("a /public/./x"), "{r}");
}

#[test]
fn redirects_and_fixed_responses_answer_at_the_edge() {
    let (a, b) = (HttpBackend::start("a"), HttpBackend::start("b"));
    let running = service(
        r#"  rule = pattern "^/old/([^?]*)" redirect 301 "https://{host}/new/$1"
  rule = pattern "^/go$" redirect 302 "{path}/there"
  rule = pattern "^/robots.txt$" respond 200 "text/plain" "User-agent: *\nDisallow: /\n"
  rule = pattern ".*" host "=down.test" respond 503 "text/html" "<h1>back soon</h1>"
  rule = pattern ".*" use server A_ADDR"#,
        &a,
        &b,
    );
    let addr = running.addr("web");
    let r = exchange(addr, "GET /old/a/b?x=1 HTTP/1.1\r\nHost: shop.test\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 301 Moved Permanently\r\n"), "{r}");
    assert!(
        r.contains("\r\nLocation: https://shop.test/new/a/b\r\n"),
        "{r}"
    );
    assert!(r.contains("\r\nContent-Length: 0\r\n"), "{r}");
    let r = get(addr, "/go", "");
    assert!(r.contains("\r\nLocation: /go/there\r\n"), "{r}");
    let r = get(addr, "/robots.txt", "");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("Content-Type: text/plain\r\n"), "{r}");
    assert!(r.ends_with("\r\n\r\nUser-agent: *\nDisallow: /\n"), "{r}");
    let r = exchange(addr, "HEAD /robots.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        r.contains("Content-Length: 26\r\n") && r.ends_with("\r\n\r\n"),
        "{r}"
    );
    let r = exchange(addr, "GET /any HTTP/1.1\r\nHost: down.test\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.1 503 Service Unavailable\r\n") && r.ends_with("<h1>back soon</h1>"),
        "{r}"
    );
    assert_eq!(a.requests(), 0);
    assert_eq!(served_by(&get(addr, "/ok", "")), "a");
}

#[test]
fn header_edits_apply_both_ways() {
    let (a, b) = (HttpBackend::start("a"), HttpBackend::start("b"));
    let running = service(
        r#"  rule = pattern "^/edit" use server A_ADDR request_header set X-Tier "gold" request_header del X-Drop request_header add X-Via "ktcpvs" response_header del x-server response_header set X-Served "edge" response_header add X-Extra "1"
  rule = pattern ".*" use server B_ADDR"#,
        &a,
        &b,
    );
    let addr = running.addr("web");
    // Over one keep-alive connection: edits each time, plain after.
    let mut c = Client::connect(addr);
    for _ in 0..2 {
        c.send(b"GET /edit HTTP/1.1\r\nHost: t\r\nX-Tier: bronze\r\nX-Tier: silver\r\nX-Drop: secret\r\nX-Via: client\r\n\r\n");
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-server"), None, "{}", r.text());
        assert_eq!(r.header("X-Served"), Some("edge"));
        assert_eq!(r.header("X-Extra"), Some("1"));
    }
    let r = c.get("/plain").unwrap();
    assert_eq!(r.header("x-server"), Some("b"));
    assert_eq!(r.header("X-Served"), None);
    let heads = a.heads();
    assert_eq!(heads.len(), 2);
    for head in &heads {
        let lower = head.to_ascii_lowercase();
        assert_eq!(lower.matches("x-tier:").count(), 1, "{head}");
        assert!(lower.contains("x-tier: gold\r\n"), "{head}");
        assert!(!lower.contains("x-drop"), "{head}");
        assert!(
            lower.contains("x-via: client\r\n") && lower.contains("x-via: ktcpvs\r\n"),
            "{head}"
        );
    }
}

#[test]
fn error_pages_replace_the_proxys_own_answers() {
    let control = control();
    control
        .load_config(
            "Virtual web {\n  listen = 127.0.0.1:0\n  scheduler = phttp\n  error_page = 503 \"text/html\" \"<h1>busy</h1>\"\n  error_page = 400 \"text/plain\" \"bad\\n\"\n}\n",
            None,
        )
        .unwrap();
    start(&control, "web");
    let running = run(control);
    let addr = running.addr("web");
    // No server: the proxy's 503, with the page.
    let r = get(addr, "/", "");
    assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
    assert!(
        r.contains("Content-Type: text/html\r\n") && r.ends_with("\r\n\r\n<h1>busy</h1>"),
        "{r}"
    );
    let r = exchange(addr, "GET / HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.1 400 Bad Request\r\n") && r.ends_with("\r\n\r\nbad\n"),
        "{r}"
    );
}

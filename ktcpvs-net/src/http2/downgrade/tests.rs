//! The downgrade against every refusal of RFC 9113 §8.2-8.3 and the
//! smuggling forms, and a differential check: what it writes is parsed by
//! the engine's own HTTP/1.1 parser into the same method, target, host and
//! framing.

use super::*;
use crate::http::{parse_request, Framing, Limits};

fn f(name: &'static str, value: &'static str) -> Field<'static> {
    Field {
        name: name.as_bytes(),
        value: value.as_bytes(),
    }
}

/// A valid GET with `extra` fields after the pseudo-headers.
fn get(extra: &[Field<'static>]) -> Vec<Field<'static>> {
    let mut v = vec![
        f(":method", "GET"),
        f(":scheme", "https"),
        f(":authority", "a.test"),
        f(":path", "/x?y=1"),
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn every_refusal() {
    use DowngradeError::*;
    let cases: Vec<(Vec<Field<'static>>, Body, DowngradeError)> = vec![
        (get(&[f("Foo", "1")]), Body::None, BadName),
        (get(&[f("fo o", "1")]), Body::None, BadName),
        (get(&[f("foo", "a\r\nb: c")]), Body::None, BadValue),
        (get(&[f("foo", "a\nb")]), Body::None, BadValue),
        (get(&[f("foo", "a\0b")]), Body::None, BadValue),
        (get(&[f("foo", " a")]), Body::None, BadValue),
        (get(&[f("foo", "a\t")]), Body::None, BadValue),
        (
            get(&[f("connection", "close")]),
            Body::None,
            ConnectionSpecific,
        ),
        (get(&[f("keep-alive", "1")]), Body::None, ConnectionSpecific),
        (
            get(&[f("proxy-connection", "x")]),
            Body::None,
            ConnectionSpecific,
        ),
        (
            get(&[f("transfer-encoding", "chunked")]),
            Body::Unknown,
            ConnectionSpecific,
        ),
        (get(&[f("upgrade", "h2c")]), Body::None, ConnectionSpecific),
        (get(&[f("te", "gzip")]), Body::None, ConnectionSpecific),
        (get(&[f("host", "b.test")]), Body::None, Authority),
        (
            get(&[f("content-length", "5")]),
            Body::Known(4),
            ContentLength,
        ),
        (get(&[f("content-length", "5")]), Body::None, ContentLength),
        (
            get(&[f("content-length", "5"), f("content-length", "6")]),
            Body::Known(5),
            ContentLength,
        ),
        (
            get(&[f("content-length", "+5")]),
            Body::Known(5),
            ContentLength,
        ),
        (
            get(&[f("content-length", "5, 6")]),
            Body::Known(5),
            ContentLength,
        ),
        (get(&[f(":path", "/again")]), Body::None, BadPseudo),
        (
            vec![f(":method", "GET"), f(":status", "200")],
            Body::None,
            BadPseudo,
        ),
        (
            vec![f(":method", "GET"), f(":method", "GET")],
            Body::None,
            BadPseudo,
        ),
        (
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":authority", "a"),
            ],
            Body::None,
            MissingPseudo,
        ),
        (
            vec![f(":scheme", "http"), f(":authority", "a"), f(":path", "/")],
            Body::None,
            MissingPseudo,
        ),
        (
            vec![
                f(":method", "CONNECT"),
                f(":scheme", "http"),
                f(":authority", "a:443"),
                f(":path", "/"),
            ],
            Body::None,
            Connect,
        ),
        (
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":authority", "a"),
                f(":path", ""),
            ],
            Body::None,
            BadPath,
        ),
        (
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":authority", "a"),
                f(":path", "*"),
            ],
            Body::None,
            BadPath,
        ),
        (
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":authority", "a"),
                f(":path", "http://a/x"),
            ],
            Body::None,
            BadPath,
        ),
        (
            vec![
                f(":method", "G T"),
                f(":scheme", "http"),
                f(":authority", "a"),
                f(":path", "/"),
            ],
            Body::None,
            BadPath,
        ),
        (
            vec![f(":method", "GET"), f(":scheme", "http"), f(":path", "/")],
            Body::None,
            Authority,
        ),
        (
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":authority", "u@a"),
                f(":path", "/"),
            ],
            Body::None,
            Authority,
        ),
        (
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", "/"),
                f("host", "a"),
                f("host", "b"),
            ],
            Body::None,
            Authority,
        ),
        (
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":authority", "a"),
                f(":path", "/a b"),
            ],
            Body::None,
            BadPath,
        ),
        (
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":authority", "a/b"),
                f(":path", "/"),
            ],
            Body::None,
            Authority,
        ),
        (
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":authority", "a"),
                f(":path", "/#up"),
            ],
            Body::None,
            BadPath,
        ),
        (
            vec![
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":authority", "a,test"),
                f(":path", "/"),
            ],
            Body::None,
            Authority,
        ),
        (get(&[f("foo", "a\x0bb")]), Body::None, BadValue),
        (get(&[f("foo", "a\x7f")]), Body::None, BadValue),
    ];
    for (fields, body, want) in cases {
        let mut out = b"kept".to_vec();
        assert_eq!(downgrade(&fields, body, &mut out), Err(want), "{fields:?}");
        assert_eq!(out, b"kept", "nothing written for a refusal");
    }
}

#[test]
fn accepted_forms_and_their_framing() {
    let mut out = Vec::new();
    let d = downgrade(
        &get(&[f("te", "trailers"), f("accept", "*/*")]),
        Body::None,
        &mut out,
    )
    .unwrap();
    assert_eq!((d.declared_length, d.chunked), (None, false));
    assert_eq!(
        out,
        b"GET /x?y=1 HTTP/1.1\r\nHost: a.test\r\nte: trailers\r\naccept: */*\r\n\r\n"
    );
    out.clear();
    let d = downgrade(&get(&[]), Body::Unknown, &mut out).unwrap();
    assert!(d.chunked && out.ends_with(b"Transfer-Encoding: chunked\r\n\r\n"));
    out.clear();
    let d = downgrade(&get(&[f("content-length", "10")]), Body::Unknown, &mut out).unwrap();
    assert_eq!(d.declared_length, Some(10));
    assert!(!d.chunked && out.ends_with(b"Content-Length: 10\r\n\r\n"));
    out.clear();
    // `host` alone, and agreeing in another case.
    let fields = [
        f(":method", "OPTIONS"),
        f(":scheme", "http"),
        f(":path", "*"),
        f("host", "h.test"),
    ];
    downgrade(&fields, Body::None, &mut out).unwrap();
    assert!(out.starts_with(b"OPTIONS * HTTP/1.1\r\nHost: h.test\r\n"));
    out.clear();
    downgrade(&get(&[f("host", "A.TEST")]), Body::None, &mut out).unwrap();
    assert_eq!(
        out.windows(5)
            .filter(|w| w.eq_ignore_ascii_case(b"host:"))
            .count(),
        1
    );
}

/// What the engine's HTTP/1.1 parser reads from the written head.
fn reparsed(head: &[u8]) -> (String, String, Option<String>, Framing) {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let (info, h) = parse_request(head, &mut slots, &Limits::default())
        .expect("parses")
        .expect("complete");
    (
        h.method.to_string(),
        h.target.to_string(),
        h.host.map(str::to_string),
        info.framing,
    )
}

#[test]
fn the_written_head_means_the_same_to_an_http1_parser() {
    for (body, framing) in [
        (Body::None, Framing::None),
        (Body::Known(7), Framing::Length(7)),
        (Body::Unknown, Framing::Chunked),
    ] {
        let mut out = Vec::new();
        let fields = get(&[f("cookie", "a=1"), f("x-a", "b"), f("cookie", "c=2")]);
        downgrade(&fields, body, &mut out).unwrap();
        let (method, target, host, got) = reparsed(&out);
        assert_eq!(
            (method.as_str(), target.as_str(), host.as_deref()),
            ("GET", "/x?y=1", Some("a.test"))
        );
        assert_eq!(got, framing, "{body:?}");
    }
}

//! Tests of the framing module on raw bytes: a `req!`-style table, one test
//! per smuggling attack (named after it), every valid case fed split at
//! every byte offset, the chunked decoder fed byte by byte, head writers
//! round-tripped through the parsers, and property tests on random bytes.

use super::*;

const SLOTS: usize = 100;

/// Parses `buf` whole with default limits.
fn parse(buf: &[u8]) -> Result<Option<RequestInfo>, RequestError> {
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    parse_request(buf, &mut slots, &Limits::default()).map(|r| r.map(|(info, _)| info))
}

fn parse_with(buf: &[u8], limits: &Limits) -> Result<Option<RequestInfo>, RequestError> {
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    parse_request(buf, &mut slots, limits).map(|r| r.map(|(info, _)| info))
}

fn complete(buf: &[u8]) -> RequestInfo {
    match parse(buf) {
        Ok(Some(info)) => info,
        other => panic!(
            "expected a complete head for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn rejected(buf: &[u8]) -> RequestError {
    match parse(buf) {
        Err(e) => e,
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn response(buf: &[u8], method: Method) -> Result<Option<ResponseInfo>, ResponseError> {
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    parse_response(buf, &mut slots, method, &Limits::default()).map(|r| r.map(|(info, _)| info))
}

fn response_info(buf: &[u8], method: Method) -> ResponseInfo {
    match response(buf, method) {
        Ok(Some(info)) => info,
        other => panic!(
            "expected a complete response head for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

/// The table of valid requests: name, bytes, checks on the result.
macro_rules! req {
    ($name:ident, $buf:expr, |$info:ident, $head:ident| $body:expr) => {
        #[test]
        fn $name() {
            let buf: &[u8] = $buf;
            let mut slots = [httparse::EMPTY_HEADER; SLOTS];
            let ($info, $head) = parse_request(buf, &mut slots, &Limits::default())
                .expect("valid request")
                .expect("complete request");
            $body;
            assert_same_at_every_split(buf);
        }
    };
}

/// Feeding any strict prefix of the head gives "need more"; the whole
/// buffer gives the same facts whatever came before.
fn assert_same_at_every_split(buf: &[u8]) {
    let whole = complete(buf);
    for cut in 0..whole.head_len {
        match parse(&buf[..cut]) {
            Ok(None) => {}
            other => panic!("prefix of {cut} bytes gave {other:?}"),
        }
    }
    for cut in whole.head_len..=buf.len() {
        let info = complete(&buf[..cut]);
        assert_eq!(format!("{info:?}"), format!("{whole:?}"), "cut at {cut}");
    }
}

req!(
    simple_get,
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    |info, head| {
        assert_eq!(info.method, Method::Get);
        assert_eq!(info.version, 1);
        assert_eq!(info.framing, Framing::None);
        assert_eq!(info.head_len, 37);
        assert!(info.keep_alive && !info.needs_rewrite && !info.upgrade && !info.expect_continue);
        assert_eq!((head.method, head.target, head.version), ("GET", "/", 1));
        assert_eq!(head.header("host"), Some(&b"example.com"[..]));
    }
);

req!(
    post_with_content_length_and_pipelined_next,
    b"POST /f?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n",
    |info, head| {
        assert_eq!(info.framing, Framing::Length(5));
        assert_eq!(head.target, "/f?x=1");
    }
);

req!(
    chunked_post,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    |info, _head| {
        assert_eq!(info.framing, Framing::Chunked);
    }
);

req!(
    chunked_is_case_insensitive,
    b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n",
    |info, _head| {
        assert_eq!(info.framing, Framing::Chunked);
    }
);

req!(
    http10_closes_by_default,
    b"GET / HTTP/1.0\r\n\r\n",
    |info, _head| {
        assert_eq!(info.version, 0);
        assert!(!info.keep_alive);
    }
);

req!(
    http10_keep_alive_asked,
    b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    |info, _head| {
        assert!(info.keep_alive);
        assert!(info.needs_rewrite);
    }
);

req!(
    http11_connection_close,
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    |info, _head| {
        assert!(!info.keep_alive);
        assert!(info.needs_rewrite);
    }
);

req!(
    expect_continue,
    b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
    |info, _head| {
        assert!(info.expect_continue);
        assert_eq!(info.method, Method::Put);
    }
);

req!(
    expect_continue_ignored_on_http10,
    b"PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    |info, _head| {
        assert!(!info.expect_continue);
    }
);

req!(
    websocket_upgrade,
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    |info, _head| {
        assert!(info.upgrade && info.needs_rewrite);
    }
);

req!(
    upgrade_header_without_connection_option_is_no_upgrade,
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
    |info, _head| {
        assert!(!info.upgrade && info.needs_rewrite);
    }
);

req!(
    any_token_method,
    b"PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n",
    |info, head| {
        assert_eq!(info.method, Method::Other);
        assert_eq!(head.method, "PROPFIND");
    }
);

req!(
    options_asterisk,
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    |info, head| {
        assert_eq!(info.method, Method::Options);
        assert_eq!(head.target, "*");
    }
);

req!(
    absolute_form_target_routes_on_its_path,
    b"GET http://a.example/p?q=1 HTTP/1.1\r\nHost: b.example\r\n\r\n",
    |info, head| {
        assert_eq!(head.target, "/p?q=1");
        assert_eq!(head.host, Some("a.example"));
        assert_eq!(info.target_form, TargetForm::Absolute);
        assert!(info.needs_rewrite);
        assert_eq!(info.framing, Framing::None);
    }
);

req!(
    absolute_form_without_path_is_the_root,
    b"GET HTTPS://a.example:8443 HTTP/1.0\r\n\r\n",
    |info, head| {
        assert_eq!(head.target, "/");
        assert_eq!(head.host, Some("a.example:8443"));
        assert_eq!(info.target_form, TargetForm::Absolute);
    }
);

req!(
    origin_form_host_is_the_host_field,
    b"GET /p HTTP/1.1\r\nHost:  a.example:80 \r\n\r\n",
    |info, head| {
        assert_eq!(head.host, Some("a.example:80"));
        assert_eq!(info.target_form, TargetForm::Origin);
        assert!(!info.needs_rewrite);
    }
);

#[test]
fn smuggling_absolute_form_with_a_bad_scheme_or_authority() {
    for (target, error) in [
        ("ftp://a/p", RequestError::TargetScheme),
        ("urn:isbn:0451450523", RequestError::TargetScheme),
        ("http:/p", RequestError::TargetAuthority),
        ("http:///p", RequestError::TargetAuthority),
        ("http://user@a/p", RequestError::TargetAuthority),
        ("http://a,b/p", RequestError::TargetAuthority),
        ("http://a?q=1", RequestError::TargetWithoutPath),
    ] {
        let buf = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(assert_refused(buf.as_bytes(), 400), error, "{target}");
    }
}

#[test]
fn request_rewrite_sends_an_absolute_form_target_in_origin_form_with_its_authority() {
    let buf =
        b"GET http://a.example/images/x HTTP/1.1\r\nX-A: 1\r\nHost: evil\r\nHost-Ish: 2\r\n\r\n";
    let out = rewrite_request(buf, &ForwardOptions::default());
    assert_eq!(
        out,
        b"GET /images/x HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\nHost-Ish: 2\r\n\r\n"
    );
    let again = complete(&out);
    assert_eq!(again.target_form, TargetForm::Origin);
}

req!(
    repeated_identical_content_length,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
    |info, _head| {
        assert_eq!(info.framing, Framing::Length(3));
    }
);

req!(
    content_length_zero,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    |info, _head| {
        assert_eq!(info.framing, Framing::Length(0));
    }
);

req!(
    leading_empty_lines_are_skipped,
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    |info, head| {
        assert_eq!(info.head_len, 31);
        assert!(info.needs_rewrite);
        assert_eq!(head.target, "/");
    }
);

req!(
    obs_text_in_value_is_allowed,
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n",
    |info, head| {
        assert!(!info.needs_rewrite);
        assert_eq!(head.header("x-name"), Some(&b"caf\xc3\xa9"[..]));
    }
);

req!(
    tab_in_value_is_allowed,
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\t2\r\n\r\n",
    |_info, head| {
        assert_eq!(head.header("x-a"), Some(&b"1\t2"[..]));
    }
);

req!(
    http10_without_host,
    b"GET /old HTTP/1.0\r\nUser-Agent: x\r\n\r\n",
    |info, _head| {
        assert_eq!(info.version, 0);
    }
);

// One test per attack: each is refused with the right status, so the
// engine answers it and forwards nothing.

fn assert_refused(buf: &[u8], status: u16) -> RequestError {
    let e = rejected(buf);
    assert_eq!(e.status(), status, "{e}");
    e
}

#[test]
fn smuggling_cl_te_both_present() {
    let e = assert_refused(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400);
    assert_eq!(e, RequestError::ContentLengthWithTransferEncoding);
}

#[test]
fn smuggling_te_cl_both_present_te_first() {
    let e = assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        400,
    );
    assert_eq!(e, RequestError::ContentLengthWithTransferEncoding);
}

#[test]
fn smuggling_cl_cl_differing_values() {
    let e = assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\n",
        400,
    );
    assert_eq!(
        e,
        RequestError::ConflictingContentLength {
            first: 3,
            second: 30
        }
    );
}

#[test]
fn smuggling_content_length_list_in_one_field() {
    assert_eq!(
        assert_refused(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n",
            400
        ),
        RequestError::InvalidContentLength
    );
}

#[test]
fn smuggling_content_length_with_sign_or_garbage() {
    for cl in ["+3", "-1", "3a", "0x3", "", "3 3", "184467440737095516160"] {
        let buf = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n");
        assert_eq!(
            assert_refused(buf.as_bytes(), 400),
            RequestError::InvalidContentLength,
            "{cl:?}"
        );
    }
}

#[test]
fn smuggling_te_chunked_chunked() {
    let e = assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        400,
    );
    assert_eq!(e, RequestError::UnsupportedTransferEncoding);
}

#[test]
fn smuggling_te_chunked_in_two_fields() {
    let e = assert_refused(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    assert_eq!(e, RequestError::UnsupportedTransferEncoding);
}

#[test]
fn smuggling_te_chunked_not_final() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        400,
    );
}

#[test]
fn smuggling_te_other_coding_before_chunked() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        400,
    );
}

#[test]
fn smuggling_te_obfuscated_values() {
    for te in [
        "xchunked",
        "chunked-false",
        "\"chunked\"",
        "identity",
        "chunked;q=1x",
        "",
    ] {
        let buf = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
        assert_refused(buf.as_bytes(), 400);
    }
}

#[test]
fn smuggling_te_vertical_tab_in_value() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n",
        400,
    );
}

#[test]
fn smuggling_te_on_http10() {
    let e = assert_refused(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    );
    assert_eq!(e, RequestError::TransferEncodingOnHttp10);
}

#[test]
fn smuggling_whitespace_before_colon() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
        400,
    );
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 3\r\n\r\n",
        400,
    );
}

#[test]
fn smuggling_empty_header_name() {
    assert_refused(b"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400);
}

#[test]
fn smuggling_control_character_in_value() {
    for ctl in [0u8, 1, 0x0b, 0x0c, 0x1f, 0x7f] {
        let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1".to_vec();
        buf.push(ctl);
        buf.extend_from_slice(b"2\r\n\r\n");
        assert_refused(&buf, 400);
    }
}

#[test]
fn smuggling_bare_cr_in_value() {
    assert_refused(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n", 400);
}

#[test]
fn smuggling_obsolete_line_folding() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n",
        400,
    );
    assert_refused(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n", 400);
}

#[test]
fn smuggling_space_before_first_field() {
    assert_refused(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
}

#[test]
fn smuggling_bare_lf_line_ends() {
    for buf in [
        &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert!(matches!(
            assert_refused(buf, 400),
            RequestError::BareLf { .. }
        ));
    }
}

#[test]
fn smuggling_bare_lf_seen_before_the_head_is_complete() {
    assert!(matches!(
        parse(b"GET / HTTP/1.1\r\nHost: a\n"),
        Err(RequestError::BareLf { offset: 23 })
    ));
}

#[test]
fn smuggling_unsupported_versions() {
    for version in [
        "HTTP/1.2",
        "HTTP/2.0",
        "HTTP/0.9",
        "HTTP/1.10",
        "http/1.1",
        "HTTP/1",
        "HTTP/11",
    ] {
        let buf = format!("GET / {version}\r\nHost: a\r\n\r\n");
        assert_refused(buf.as_bytes(), 400);
    }
}

#[test]
fn smuggling_http09_request_without_version() {
    assert_refused(b"GET /\r\n\r\n", 400);
    assert_refused(b"GET /\r\nHost: a\r\n\r\n", 400);
}

#[test]
fn smuggling_target_with_control_characters_spaces_or_high_bytes() {
    for target in [
        &b"/a\x01b"[..],
        b"/a\x7fb",
        b"/caf\xc3\xa9",
        b"/a\x80",
        b"/a\tb",
    ] {
        let buf = [b"GET ".as_slice(), target, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        assert_refused(&buf, 400);
    }
    // Two spaces: the second would start a different version.
    assert_refused(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

#[test]
fn smuggling_target_with_fragment() {
    assert_eq!(
        assert_refused(b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        RequestError::TargetFragment
    );
}

#[test]
fn smuggling_target_in_no_form() {
    assert_eq!(
        assert_refused(b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        RequestError::TargetForm
    );
    assert_eq!(
        assert_refused(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        RequestError::TargetForm
    );
}

#[test]
fn smuggling_missing_host_on_http11() {
    assert_eq!(
        assert_refused(b"GET / HTTP/1.1\r\n\r\n", 400),
        RequestError::MissingHost
    );
}

#[test]
fn smuggling_multiple_host() {
    assert_eq!(
        assert_refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        RequestError::MultipleHost { count: 2 }
    );
    assert_eq!(
        assert_refused(b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", 400),
        RequestError::MultipleHost { count: 2 }
    );
}

#[test]
fn smuggling_host_with_delimiters() {
    for host in ["a b", "a,b", "a/b", "u@a", "a?b", "a#b"] {
        let buf = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(
            assert_refused(buf.as_bytes(), 400),
            RequestError::InvalidHost,
            "{host}"
        );
    }
}

#[test]
fn connect_is_refused_by_a_reverse_proxy() {
    assert_eq!(
        assert_refused(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400),
        RequestError::ConnectNotSupported
    );
    // Early: seen before the head is complete.
    assert_eq!(
        parse(b"CONNECT a:443 HTTP/1.1\r\n").unwrap_err(),
        RequestError::ConnectNotSupported
    );
}

#[test]
fn method_that_is_not_a_token() {
    assert_refused(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

#[test]
fn request_line_too_long_is_414() {
    let limits = Limits {
        max_request_line: 32,
        ..Limits::default()
    };
    let mut buf = b"GET /".to_vec();
    buf.resize(40, b'a');
    // Reported before the line is complete.
    assert_eq!(parse_with(&buf, &limits).unwrap_err().status(), 414);
    buf.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        parse_with(&buf, &limits).unwrap_err(),
        RequestError::RequestLineTooLong { limit: 32 }
    );
    // A line of exactly the limit is accepted.
    let mut ok = b"GET /".to_vec();
    ok.resize(32 - 9, b'a');
    ok.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(parse_with(&ok, &limits).unwrap().is_some());
}

#[test]
fn head_too_large_is_431() {
    let limits = Limits {
        max_header_size: 256,
        ..Limits::default()
    };
    let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    buf.resize(300, b'x');
    assert_eq!(
        parse_with(&buf, &limits).unwrap_err(),
        RequestError::HeadTooLarge { limit: 256 }
    );
    assert_eq!(parse_with(&buf, &limits).unwrap_err().status(), 431);
}

#[test]
fn too_many_headers_is_431() {
    let limits = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        parse_with(buf, &limits).unwrap_err(),
        RequestError::TooManyHeaders { limit: 3 }
    );
    // Fewer slots lent than fields also gives 431.
    let mut slots = [httparse::EMPTY_HEADER; 2];
    let e = parse_request(buf, &mut slots, &Limits::default()).unwrap_err();
    assert_eq!(e.status(), 431);
}

#[test]
fn bad_byte_is_reported_before_the_head_is_complete() {
    assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \x01").is_err());
    assert!(parse(b"GET /\x7f").is_err());
    assert!(parse(b"GET /a#").is_err() || parse(b"GET /a# ").is_err());
    assert_eq!(
        parse(b"GET /a# ").unwrap_err(),
        RequestError::TargetFragment
    );
    assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
}

#[test]
fn every_error_has_a_status_and_a_message() {
    let errors = [
        rejected(b"GET / HTTP/1.1\r\n\r\n"),
        rejected(b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
        rejected(b"GET / HTTP/3.0\r\nHost: a\r\n\r\n"),
    ];
    for e in errors {
        assert_eq!(e.status(), 400);
        assert!(!e.to_string().is_empty());
    }
}

// Responses.

#[test]
fn response_framing_by_status_and_method() {
    let with_cl = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    assert_eq!(
        response_info(with_cl, Method::Get).framing,
        Framing::Length(10)
    );
    assert_eq!(response_info(with_cl, Method::Head).framing, Framing::None);
    for status in [
        "204 No Content",
        "304 Not Modified",
        "100 Continue",
        "103 Early Hints",
    ] {
        let buf = format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\n");
        let info = response_info(buf.as_bytes(), Method::Get);
        assert_eq!(info.framing, Framing::None, "{status}");
        assert!(info.keep_alive);
    }
    let cont = response_info(b"HTTP/1.1 100 Continue\r\n\r\n", Method::Post);
    assert!(cont.interim && !cont.upgrade);
    let switching = response_info(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        Method::Get,
    );
    assert!(switching.upgrade && !switching.interim && !switching.keep_alive);
    assert_eq!(switching.framing, Framing::None);
    let chunked = response_info(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        Method::Get,
    );
    assert_eq!(chunked.framing, Framing::Chunked);
    let gzip_chunked = response_info(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        Method::Get,
    );
    assert_eq!(gzip_chunked.framing, Framing::Chunked);
    let gzip = response_info(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        Method::Get,
    );
    assert_eq!(gzip.framing, Framing::CloseDelimited);
    assert!(!gzip.keep_alive);
}

#[test]
fn response_close_delimited_without_length() {
    let info = response_info(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
        Method::Get,
    );
    assert_eq!(info.framing, Framing::CloseDelimited);
    assert!(!info.keep_alive);
    assert_eq!(info.head_len, 45);
}

#[test]
fn response_keep_alive_rules() {
    assert!(
        !response_info(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", Method::Get).keep_alive
    );
    assert!(
        response_info(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            Method::Get
        )
        .keep_alive
    );
    assert!(
        !response_info(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            Method::Get
        )
        .keep_alive
    );
    let info = response_info(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
    );
    assert!(info.sets_cookie && info.keep_alive && !info.needs_rewrite);
}

#[test]
fn keep_alive_only_responses_go_verbatim_to_kept_clients() {
    let keep = ForwardOptions::default();
    let close = ForwardOptions {
        close: true,
        ..ForwardOptions::default()
    };
    let info = response_info(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
    );
    assert!(info.needs_rewrite && info.keep_alive_only && info.keep_alive);
    assert!(can_forward_response_verbatim(&info, &keep));
    assert!(!can_forward_response_verbatim(&info, &close));
    let stamped = ForwardOptions {
        extra: Some(b"Set-Cookie: a=1"),
        ..ForwardOptions::default()
    };
    assert!(!can_forward_response_verbatim(&info, &stamped));
    // Any other connection-specific field still forces a rewrite.
    for buf in [
        &b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTrailer: X\r\nContent-Length: 0\r\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    ] {
        let info = response_info(buf, Method::Get);
        assert!(!info.keep_alive_only, "{:?}", String::from_utf8_lossy(buf));
        assert!(!can_forward_response_verbatim(&info, &keep));
    }
    let plain = response_info(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Method::Get);
    assert!(!plain.needs_rewrite && !plain.keep_alive_only);
    assert!(can_forward_response_verbatim(&plain, &keep));
}

/// An HTTP/1.0 client kept alive must be told `Connection: keep-alive`: a
/// head that already says exactly that goes verbatim, any other is
/// rewritten with the line; `close` wins over `keep_alive`.
#[test]
fn http10_keep_alive_is_said_in_the_response_head() {
    let keep10 = ForwardOptions {
        keep_alive: true,
        ..ForwardOptions::default()
    };
    let says = response_info(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
    );
    assert!(can_forward_response_verbatim(&says, &keep10));
    for buf in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    ] {
        let info = response_info(buf, Method::Get);
        assert!(!can_forward_response_verbatim(&info, &keep10));
        let mut slots = [httparse::EMPTY_HEADER; SLOTS];
        let (info, head) = parse_response(buf, &mut slots, Method::Get, &Limits::default())
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        write_response_head(&head, &info, &keep10, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
            "{:?}",
            String::from_utf8_lossy(buf)
        );
        let both = ForwardOptions {
            close: true,
            ..keep10
        };
        out.clear();
        write_response_head(&head, &info, &both, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
}

/// An HTTP/1.0 request is sent to the real server with `Connection:
/// keep-alive` (its own connection options dropped), so that the server
/// keeps the connection for the pool; such a head is never verbatim.
#[test]
fn http10_request_asks_the_server_to_keep_the_connection() {
    let keep10 = ForwardOptions {
        keep_alive: true,
        ..ForwardOptions::default()
    };
    for buf in [
        &b"GET /a HTTP/1.0\r\nHost: h\r\n\r\n"[..],
        b"GET /a HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
        b"GET /a HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive\r\nKeep-Alive: 300\r\n\r\n",
    ] {
        let mut slots = [httparse::EMPTY_HEADER; SLOTS];
        let (info, head) = parse_request(buf, &mut slots, &Limits::default())
            .unwrap()
            .unwrap();
        assert!(!can_forward_request_verbatim(&info, &keep10));
        let mut out = Vec::new();
        write_request_head(&head, &info, &keep10, &mut out);
        assert_eq!(
            out,
            b"GET /a HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

/// The fields of a complete response head, as (lower-case name, value),
/// sorted: the order a writer puts them in does not matter here.
fn sorted_fields(buf: &[u8]) -> (u16, Vec<(String, Vec<u8>)>) {
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    let (info, head) = parse_response(buf, &mut slots, Method::Get, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        info.head_len,
        buf.len(),
        "{:?}",
        String::from_utf8_lossy(buf)
    );
    let mut fields: Vec<_> = head
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    fields.sort();
    (info.status, fields)
}

#[test]
fn close_splice_sends_the_fields_the_rewrite_would() {
    let close = ForwardOptions {
        close: true,
        ..ForwardOptions::default()
    };
    // (head, expected spliced bytes)
    let cases: [(&[u8], &[u8]); 5] = [
        (
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            b"HTTP/1.1 200 OK\r\nServer: x\r\nconnection:  Keep-Alive \t\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
        (
            b"HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.0 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        ),
    ];
    for (buf, want) in cases {
        let mut slots = [httparse::EMPTY_HEADER; SLOTS];
        let (info, head) = parse_response(buf, &mut slots, Method::Get, &Limits::default())
            .unwrap()
            .unwrap();
        let cut = close_splice(&info, &close)
            .unwrap_or_else(|| panic!("no splice for {:?}", String::from_utf8_lossy(buf)));
        let spliced = [
            &buf[..cut.at],
            CONNECTION_CLOSE_LINE,
            &buf[cut.at + cut.skip..],
        ]
        .concat();
        assert_eq!(spliced, want, "{:?}", String::from_utf8_lossy(&spliced));
        let mut rewritten = Vec::new();
        write_response_head(&head, &info, &close, &mut rewritten);
        assert_eq!(sorted_fields(&spliced), sorted_fields(&rewritten));
        // Nothing to splice when the connection stays open or more is added.
        assert_eq!(close_splice(&info, &ForwardOptions::default()), None);
        let stamped = ForwardOptions {
            extra: Some(b"Set-Cookie: a=1"),
            ..close
        };
        assert_eq!(close_splice(&info, &stamped), None);
    }
    // Heads that must be rewritten: another hop-by-hop field, two
    // `Connection` fields, `Connection: close` from the server (already
    // says it, but is dropped and re-added by the rewrite), leading empty
    // lines, a 101.
    for buf in [
        &b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ] {
        let info = response_info(buf, Method::Get);
        assert_eq!(close_splice(&info, &close), None, "{:?}", String::from_utf8_lossy(buf));
    }
}

#[test]
fn response_malformations_are_errors() {
    let bad: [&[u8]; 10] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: \x01\r\n\r\n",
    ];
    for buf in bad {
        assert!(
            response(buf, Method::Get).is_err(),
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
    assert!(response(b"HTTP/1.1 200 OK\r\nX: 1\r\n", Method::Get)
        .unwrap()
        .is_none());
    assert!(response(b"HTTP/1.1 200 OK\r\nX:\x01", Method::Get).is_err());
}

#[test]
fn response_whose_connection_names_its_framing_is_refused() {
    for (buf, field) in [
        (&b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\n"[..], "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close,CONTENT-LENGTH\r\n\r\n", "Content-Length"),
    ] {
        assert_eq!(
            response(buf, Method::Get).unwrap_err(),
            ResponseError::ConnectionNamesFraming { field },
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
    // Naming another field is fine: that field is dropped on the way.
    let info = response_info(
        b"HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
    );
    assert_eq!(info.framing, Framing::Length(0));
}

#[test]
fn request_rewrite_keeps_framing_and_host_named_in_connection() {
    let buf = b"POST /p HTTP/1.1\r\nHost: a\r\nConnection: close, Content-Length, Host, X-Hop\r\nX-Hop: 1\r\nContent-Length: 3\r\n\r\nabc";
    let out = rewrite_request(buf, &ForwardOptions::default());
    assert_eq!(
        out,
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
    );
    assert_eq!(complete(&out).framing, Framing::Length(3));
}

#[test]
fn response_split_at_every_offset() {
    let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\nhello";
    let whole = response_info(buf, Method::Get);
    assert!(whole.needs_rewrite);
    for cut in 0..whole.head_len {
        assert!(
            response(&buf[..cut], Method::Get).unwrap().is_none(),
            "cut {cut}"
        );
    }
}

// Bodies.

/// Feeds `wire` to a fresh tracker in pieces of `step` bytes, as the engine
/// would, and returns (bytes of the body, final state).
fn feed(framing: Framing, wire: &[u8], step: usize) -> Result<(usize, BodyState), BodyError> {
    let mut body = BodyState::new(framing, &Limits::default());
    let mut at = 0;
    while at < wire.len() && !body.is_done() {
        let end = (at + step).min(wire.len());
        let n = body.advance(&wire[at..end])?;
        assert!(n <= end - at);
        at += n;
        if n < end - at + n {
            // Fewer bytes taken than offered: the body must be over.
            assert!(body.is_done());
        }
    }
    Ok((at, body))
}

const CHUNKED: &[u8] = b"5\r\nhello\r\n1A;a=b;c=\"q \\\" d\";e\r\nabcdefghijklmnopqrstuvwxyz\r\n000\r\nTrailer-A: 1\r\nB: two words\r\n\r\nNEXT";

#[test]
fn chunked_byte_by_byte_equals_whole() {
    let whole = feed(Framing::Chunked, CHUNKED, CHUNKED.len()).unwrap();
    assert_eq!(whole.0, CHUNKED.len() - 4);
    assert!(whole.1.is_done());
    for step in 1..CHUNKED.len() {
        let (n, state) = feed(Framing::Chunked, CHUNKED, step).unwrap();
        assert_eq!((n, state.is_done()), (whole.0, true), "step {step}");
    }
}

#[test]
fn chunked_split_at_every_offset() {
    for cut in 0..CHUNKED.len() {
        let mut body = BodyState::new(Framing::Chunked, &Limits::default());
        let a = body.advance(&CHUNKED[..cut]).unwrap();
        assert_eq!(a, cut.min(CHUNKED.len() - 4));
        let b = body.advance(&CHUNKED[a..]).unwrap();
        assert_eq!(a + b, CHUNKED.len() - 4, "cut {cut}");
        assert!(body.is_done());
    }
}

fn chunked_error(wire: &[u8]) -> BodyError {
    let whole = BodyState::new(Framing::Chunked, &Limits::default()).advance(wire);
    let bytewise = feed(Framing::Chunked, wire, 1).map(|(n, _)| n);
    assert_eq!(
        whole.is_err(),
        bytewise.is_err(),
        "{:?}",
        String::from_utf8_lossy(wire)
    );
    match whole {
        Err(e) => e,
        Ok(n) => panic!("accepted {n} bytes of {:?}", String::from_utf8_lossy(wire)),
    }
}

#[test]
fn chunked_malformed_size_is_rejected() {
    for wire in [
        &b"g\r\n"[..],
        b"\r\n",
        b" 5\r\n",
        b"5 \r\n",
        b"-5\r\n",
        b"+5\r\n",
        b"0x5\r\n",
        b"5\rX",
    ] {
        let e = chunked_error(wire);
        assert!(
            matches!(
                e,
                BodyError::ChunkSize { .. } | BodyError::MissingCrlf { .. }
            ),
            "{e:?}"
        );
    }
}

#[test]
fn chunked_size_overflow_is_rejected() {
    assert_eq!(
        chunked_error(b"10000000000000000\r\n"),
        BodyError::ChunkSizeTooLong
    );
    assert_eq!(
        chunked_error(b"00000000000000001\r\n"),
        BodyError::ChunkSizeTooLong
    );
    // 16 digits is the most, and fits.
    let mut body = BodyState::new(Framing::Chunked, &Limits::default());
    assert_eq!(body.advance(b"ffffffffffffffff\r\nabc").unwrap(), 21);
}

#[test]
fn chunked_malformed_extension_is_rejected() {
    for wire in [
        &b"5;\r\n"[..],
        b"5;=a\r\n",
        b"5;a=\r\n",
        b"5;a b\r\n",
        b"5; a\r\n",
        b"5;a=\"x\r\n",
        b"5;a=\"x\"y\r\n",
        b"5;a=\"\x01\"\r\n",
    ] {
        assert!(
            matches!(
                chunked_error(wire),
                BodyError::ChunkExtension { .. } | BodyError::BareLf
            ),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    let mut long = b"5;a=".to_vec();
    long.resize(MAX_CHUNK_EXTENSION + 10, b'x');
    assert_eq!(chunked_error(&long), BodyError::ChunkExtensionTooLong);
}

#[test]
fn chunked_missing_crlf_after_data() {
    assert!(matches!(
        chunked_error(b"3\r\nabcX"),
        BodyError::MissingCrlf { byte: b'X' }
    ));
    assert!(matches!(
        chunked_error(b"3\r\nabc\rX"),
        BodyError::MissingCrlf { byte: b'X' }
    ));
    // A chunk longer than its size: the size line after it is garbage.
    assert!(matches!(
        chunked_error(b"3\r\nabcd\r\n0\r\n\r\n"),
        BodyError::MissingCrlf { byte: b'd' }
    ));
}

#[test]
fn chunked_bare_lf_is_rejected() {
    for wire in [
        &b"3\nabc\r\n"[..],
        b"3\r\nabc\n",
        b"0\r\n\n",
        b"0\r\nA: 1\n\r\n",
        b"3;a=b\n",
    ] {
        let e = chunked_error(wire);
        assert!(
            matches!(
                e,
                BodyError::BareLf | BodyError::MissingCrlf { byte: b'\n' }
            ),
            "{e:?}"
        );
    }
}

#[test]
fn chunked_trailers_follow_field_rules() {
    assert!(matches!(
        chunked_error(b"0\r\nA : 1\r\n\r\n"),
        BodyError::TrailerField { byte: b' ' }
    ));
    assert!(matches!(
        chunked_error(b"0\r\n: 1\r\n\r\n"),
        BodyError::TrailerField { byte: b':' }
    ));
    assert!(matches!(
        chunked_error(b"0\r\nA: \x01\r\n\r\n"),
        BodyError::TrailerField { byte: 1 }
    ));
    assert_eq!(
        chunked_error(b"0\r\nA: 1\r\n 2\r\n\r\n"),
        BodyError::TrailerObsFold
    );
    let limits = Limits {
        max_header_size: 300,
        max_headers: 2,
        ..Limits::default()
    };
    let mut body = BodyState::new(Framing::Chunked, &limits);
    assert_eq!(
        body.advance(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n"),
        Err(BodyError::TooManyTrailers { limit: 2 })
    );
    assert_eq!(body.advance(b"\r\n"), Err(BodyError::AfterError));
    let mut body = BodyState::new(Framing::Chunked, &limits);
    let mut big = b"0\r\nA: ".to_vec();
    big.resize(400, b'x');
    assert_eq!(
        body.advance(&big),
        Err(BodyError::TrailerTooLarge { limit: 300 })
    );
}

#[test]
fn length_counts_down_and_close_delimited_never_ends() {
    let (n, state) = feed(Framing::Length(7), b"abcdefgGET", 3).unwrap();
    assert_eq!(n, 7);
    assert!(state.is_done());
    let mut body = BodyState::new(Framing::Length(0), &Limits::default());
    assert!(body.is_done());
    assert_eq!(body.advance(b"x").unwrap(), 0);
    let mut body = BodyState::new(Framing::None, &Limits::default());
    assert_eq!(body.advance(b"x").unwrap(), 0);
    let mut body = BodyState::new(Framing::CloseDelimited, &Limits::default());
    assert_eq!(body.advance(b"anything").unwrap(), 8);
    assert!(!body.is_done() && body.is_close_delimited());
    let mut body = BodyState::new(Framing::Length(u64::MAX), &Limits::default());
    assert_eq!(body.advance(&[0; 64]).unwrap(), 64);
    assert_eq!(
        body,
        BodyState::Length {
            remaining: u64::MAX - 64
        }
    );
}

// Writers.

fn rewrite_request(buf: &[u8], opts: &ForwardOptions<'_>) -> Vec<u8> {
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    let (info, head) = parse_request(buf, &mut slots, &Limits::default())
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    write_request_head(&head, &info, opts, &mut out);
    out
}

#[test]
fn request_rewrite_removes_hop_by_hop_and_named_fields() {
    let buf = b"POST /p?q HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\nX-Secret: s\r\nTransfer-Encoding: chunked\r\nX-Keep: k\r\n\r\n";
    let out = rewrite_request(buf, &ForwardOptions::default());
    assert_eq!(
        out,
        b"POST /p?q HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Keep: k\r\n\r\n"
    );
    let info = complete(&out);
    assert!(!info.needs_rewrite);
    assert_eq!(info.framing, Framing::Chunked);
}

#[test]
fn request_rewrite_keeps_upgrade_and_adds_connection_close() {
    let buf = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
    let out = rewrite_request(
        buf,
        &ForwardOptions {
            close: true,
            ..Default::default()
        },
    );
    assert_eq!(out, b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nConnection: upgrade, close\r\n\r\n");
    let info = complete(&out);
    assert!(info.upgrade && !info.keep_alive);
}

#[test]
fn request_rewrite_appends_to_forwarding_fields() {
    let buf = b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: a\r\nForwarded: for=1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\n\r\n";
    let opts = ForwardOptions {
        forwarded_for: Some("[2001:db8::1]:80".parse().unwrap()),
        extra: Some(b"X-Via: ktcpvs\r\n"),
        ..Default::default()
    };
    let out = rewrite_request(buf, &opts);
    assert_eq!(
        out,
        &b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 2001:db8::1\r\nForwarded: for=1.1.1.1, for=\"[2001:db8::1]\";proto=http\r\nX-Forwarded-Proto: http\r\nX-Via: ktcpvs\r\n\r\n"[..]
    );
    complete(&out);
}

#[test]
fn request_verbatim_forwarding_is_allowed_only_when_nothing_changes() {
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let (info, head) = parse_request(buf, &mut slots, &Limits::default())
        .unwrap()
        .unwrap();
    assert!(can_forward_request_verbatim(
        &info,
        &ForwardOptions::default()
    ));
    assert!(!can_forward_request_verbatim(
        &info,
        &ForwardOptions {
            close: true,
            ..Default::default()
        }
    ));
    let mut out = Vec::new();
    write_request_head(&head, &info, &ForwardOptions::default(), &mut out);
    assert_eq!(out, buf);
}

#[test]
fn response_rewrite_round_trips() {
    let buf = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nX-Internal: 1\r\nContent-Length: 3\r\nSet-Cookie: a=1\r\n\r\nabc";
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    let (info, head) = parse_response(buf, &mut slots, Method::Get, &Limits::default())
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    let opts = ForwardOptions {
        extra: Some(b"Set-Cookie: KTCPVS_SID=7; Path=/"),
        ..Default::default()
    };
    write_response_head(&head, &info, &opts, &mut out);
    assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nSet-Cookie: a=1\r\nSet-Cookie: KTCPVS_SID=7; Path=/\r\n\r\n");
    let again = response_info(&out, Method::Get);
    assert_eq!(again.framing, Framing::Length(3));
    assert!(!again.needs_rewrite && again.keep_alive);
}

#[test]
fn response_rewrite_of_101_keeps_the_upgrade() {
    let buf = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n";
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    let (info, head) = parse_response(buf, &mut slots, Method::Get, &Limits::default())
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    write_response_head(
        &head,
        &info,
        &ForwardOptions {
            close: true,
            ..Default::default()
        },
        &mut out,
    );
    assert_eq!(out, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\nConnection: upgrade\r\n\r\n");
    assert!(response_info(&out, Method::Get).upgrade);
}

#[test]
fn error_responses_are_complete_and_parse() {
    for status in [400, 408, 413, 414, 431, 500, 501, 502, 503, 504] {
        let mut out = Vec::new();
        write_error_response(status, &mut out);
        let info = response_info(&out, Method::Get);
        assert_eq!(info.status, status);
        assert!(!info.keep_alive);
        let Framing::Length(n) = info.framing else {
            panic!("{status}: {:?}", info.framing)
        };
        assert_eq!(info.head_len as u64 + n, out.len() as u64, "{status}");
        assert_ne!(reason_phrase(status), "Error");
    }
}

#[test]
fn continue_response_parses_as_interim() {
    assert!(response_info(CONTINUE_RESPONSE, Method::Post).interim);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Header lines the round-trip property combines.
    const FIELD_POOL: [&[u8]; 17] = [
        b"Content-Length: 4\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Connection: keep-alive, X-Hop\r\n",
        b"Connection: close\r\n",
        b"Connection: upgrade\r\n",
        b"Upgrade: websocket\r\n",
        b"X-Hop: 1\r\n",
        b"Keep-Alive: timeout=5\r\n",
        b"TE: trailers\r\n",
        b"X-Forwarded-For: 10.0.0.1\r\n",
        b"Expect: 100-continue\r\n",
        b"Accept: */*\r\n",
        // `Connection` naming the fields the proxy frames and routes by.
        b"Connection: Content-Length\r\n",
        b"Connection: close, Transfer-Encoding\r\n",
        b"Connection: Host, X-Hop\r\n",
        b"Connection: keep-alive, content-length, HOST\r\n",
        b"Connection: transfer-encoding,host,upgrade\r\n",
    ];

    /// Pool entries whose `Connection` field names `X-Hop`.
    const NAMES_X_HOP: [usize; 2] = [2, 14];

    /// Random bytes biased towards HTTP's own.
    fn http_bytes() -> impl Strategy<Value = Vec<u8>> {
        let pieces = prop_oneof![
            Just(b"GET / HTTP/1.1\r\n".to_vec()),
            Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
            Just(b"Host: a\r\n".to_vec()),
            Just(b"Content-Length: 3\r\n".to_vec()),
            Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"5;a=\"b\"\r\n".to_vec()),
            Just(b"0\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ];
        proptest::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
    }

    proptest! {
        /// The word-at-a-time value check answers exactly what a byte-by-byte
        /// scan against the table answers, for values of every length and
        /// bytes chosen to sit on the boundaries (controls, HTAB, SP, DEL,
        /// obs-text) as well as anywhere.
        #[test]
        fn value_check_matches_the_byte_table(
            value in proptest::collection::vec(
                prop_oneof![
                    Just(0x00u8), Just(0x09), Just(0x1f), Just(0x20), Just(0x7e),
                    Just(0x7f), Just(0x80), Just(0xff), b'a'..=b'z', any::<u8>(),
                ],
                0..40,
            ),
        ) {
            let expected = value.iter().copied().find(|&b| !headers::is_field_value_byte(b));
            prop_assert_eq!(headers::first_bad_value_byte(&value), expected);
        }

        /// Whatever head the parsers accept, every field name is a token
        /// and every value holds only field-value bytes: the grammar holds
        /// for any input, not only the bytes the exhaustive test places.
        #[test]
        fn accepted_fields_keep_the_grammar(buf in http_bytes()) {
            let mut slots = [httparse::EMPTY_HEADER; SLOTS];
            if let Ok(Some((_, head))) = parse_request(&buf, &mut slots, &Limits::default()) {
                for h in head.headers {
                    prop_assert!(!h.name.is_empty() && h.name.bytes().all(headers::is_tchar));
                    prop_assert_eq!(headers::first_bad_value_byte(h.value), None);
                }
            }
            let mut slots = [httparse::EMPTY_HEADER; SLOTS];
            if let Ok(Some((_, head))) = parse_response(&buf, &mut slots, Method::Get, &Limits::default()) {
                for h in head.headers {
                    prop_assert!(!h.name.is_empty() && h.name.bytes().all(headers::is_tchar));
                    prop_assert_eq!(headers::first_bad_value_byte(h.value), None);
                }
            }
        }

        #[test]
        fn parse_request_never_panics(buf in http_bytes()) {
            let limits = Limits { max_request_line: 64, max_header_size: 128, max_headers: 4 };
            let mut slots = [httparse::EMPTY_HEADER; 4];
            if let Ok(Some((info, _))) = parse_request(&buf, &mut slots, &limits) {
                prop_assert!(info.head_len <= buf.len());
            }
            let _ = parse(&buf);
        }

        #[test]
        fn parse_response_never_panics(buf in http_bytes()) {
            let limits = Limits { max_request_line: 64, max_header_size: 128, max_headers: 4 };
            let mut slots = [httparse::EMPTY_HEADER; 4];
            if let Ok(Some((info, _))) = parse_response(&buf, &mut slots, Method::Get, &limits) {
                prop_assert!(info.head_len <= buf.len());
            }
        }

        #[test]
        fn chunked_advance_never_panics_and_split_is_invisible(buf in http_bytes(), cut in any::<prop::sample::Index>()) {
            let whole = BodyState::new(Framing::Chunked, &Limits::default()).advance(&buf);
            let cut = cut.index(buf.len() + 1);
            let mut body = BodyState::new(Framing::Chunked, &Limits::default());
            let split = body.advance(&buf[..cut]).and_then(|a| {
                Ok(if a < cut { a } else { a + body.advance(&buf[cut..])? })
            });
            match (&whole, &split) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                _ => prop_assert!(false, "whole {:?} split {:?}", whole, split),
            }
        }

        #[test]
        fn random_bytes_to_every_body_kind(buf in proptest::collection::vec(any::<u8>(), 0..256), len in 0u64..300) {
            for framing in [Framing::None, Framing::Length(len), Framing::Chunked, Framing::CloseDelimited] {
                let mut body = BodyState::new(framing, &Limits::default());
                if let Ok(n) = body.advance(&buf) {
                    prop_assert!(n <= buf.len());
                }
            }
        }

        #[test]
        fn request_rewrite_round_trips_through_the_parser(
            picks in proptest::collection::vec(0usize..FIELD_POOL.len(), 0..8),
            version in 0u8..2,
            close in any::<bool>(),
            forwarded in any::<bool>(),
            keep_alive in any::<bool>(),
            absolute in any::<bool>(),
        ) {
            let target = if absolute { "http://b/r?x=1" } else { "/r?x=1" };
            let mut buf = format!("POST {target} HTTP/1.{version}\r\nHost: a\r\n").into_bytes();
            for &i in &picks {
                buf.extend_from_slice(FIELD_POOL[i]);
            }
            buf.extend_from_slice(b"\r\n");
            let Ok(Some(original)) = parse(&buf) else {
                // Some combinations are refused (e.g. CL with TE); fine.
                return Ok(());
            };
            let opts = ForwardOptions {
                forwarded_for: forwarded.then(|| "192.0.2.1:9".parse().unwrap()),
                client_tls: close,
                close,
                keep_alive,
                extra: None,
                edits: &[],
            };
            let out = rewrite_request(&buf, &opts);
            let mut slots = [httparse::EMPTY_HEADER; SLOTS];
            let (again, head) = parse_request(&out, &mut slots, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(again.head_len, out.len());
            prop_assert_eq!(again.framing, original.framing);
            prop_assert_eq!(again.method, original.method);
            prop_assert_eq!(again.upgrade, original.upgrade);
            prop_assert_eq!(again.expect_continue, original.expect_continue);
            prop_assert_eq!((head.method, head.target, head.version), ("POST", "/r?x=1", version));
            let host = if absolute { "b" } else { "a" };
            prop_assert_eq!(head.host, Some(host), "the routed host is unchanged");
            if close {
                prop_assert!(!again.keep_alive);
            } else if keep_alive && !original.upgrade {
                prop_assert!(again.keep_alive);
            }
            if !original.upgrade && !close && !keep_alive && !absolute {
                prop_assert!(!again.needs_rewrite);
            }
            let named_in_connection = picks.iter().any(|i| NAMES_X_HOP.contains(i));
            let hosts: Vec<&[u8]> = head.headers.iter()
                .filter(|h| h.name.eq_ignore_ascii_case("host"))
                .map(|h| h.value)
                .collect();
            prop_assert_eq!(hosts, vec![host.as_bytes()], "Host is forwarded whatever Connection names");
            for h in head.headers {
                prop_assert!(!(named_in_connection && h.name.eq_ignore_ascii_case("x-hop")));
                prop_assert!(!h.name.eq_ignore_ascii_case("keep-alive"));
            }
        }

        #[test]
        fn valid_chunked_bodies_are_accepted_at_any_split(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let cut = cut.index(wire.len() + 1);
            let mut body = BodyState::new(Framing::Chunked, &Limits::default());
            let a = body.advance(&wire[..cut]).unwrap();
            let b = body.advance(&wire[a..]).unwrap();
            prop_assert_eq!(a + b, wire.len());
            prop_assert!(body.is_done());
        }
    }
}

/// The field grammar is enforced by the tokeniser alone (no second pass
/// re-checks the bytes): every byte value that may not appear in a field
/// name, at its start or inside it, and every byte that may not appear in a
/// field value gets the head refused, in a request and in a response; every
/// byte that may appear is accepted and kept. A tokeniser made more lenient
/// (a new version, another configuration) fails here.
#[test]
fn httparse_refuses_every_byte_the_field_grammar_forbids() {
    let request =
        |field: &[u8]| [&b"GET / HTTP/1.1\r\nHost: a\r\n"[..], field, b"\r\n\r\n"].concat();
    let response = |field: &[u8]| {
        [
            &b"HTTP/1.1 200 OK\r\n"[..],
            field,
            b"\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat()
    };
    for b in 0..=255u8 {
        let mut fields = vec![(vec![b, b'x', b':', b' ', b'v'], headers::is_tchar(b))];
        if b != b':' {
            fields.push((vec![b'x', b, b'y', b':', b' ', b'v'], headers::is_tchar(b)));
        }
        fields.push((
            vec![b'x', b':', b' ', b'a', b, b'b'],
            headers::is_field_value_byte(b),
        ));
        for (field, allowed) in fields {
            let shown = String::from_utf8_lossy(&field).into_owned();
            let mut slots = [httparse::EMPTY_HEADER; SLOTS];
            let req = request(&field);
            let got = parse_request(&req, &mut slots, &Limits::default());
            assert_eq!(
                matches!(got, Ok(Some(_))),
                allowed,
                "request field {shown:?} (byte {b:#04x}): {got:?}"
            );
            let mut slots = [httparse::EMPTY_HEADER; SLOTS];
            let res = response(&field);
            let got = parse_response(&res, &mut slots, Method::Get, &Limits::default());
            assert_eq!(
                matches!(got, Ok(Some(_))),
                allowed,
                "response field {shown:?} (byte {b:#04x}): {got:?}"
            );
            if allowed && field.ends_with(b"b") {
                let mut slots = [httparse::EMPTY_HEADER; SLOTS];
                let Ok(Some((_, head))) = parse_request(&req, &mut slots, &Limits::default())
                else {
                    unreachable!("accepted above");
                };
                let value = head.headers.iter().find(|h| h.name == "x").map(|h| h.value);
                assert_eq!(value, Some(&[b'a', b, b'b'][..]), "byte {b:#04x} kept");
            }
        }
    }
}

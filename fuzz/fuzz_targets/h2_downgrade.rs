//! The HTTP/2 to HTTP/1.1 downgrade (`ktcpvs_net::http2::downgrade`) on an
//! arbitrary header list (fields separated by 0xff, name and value by the
//! first 0xfe; the first byte chooses what is known of the body): it never
//! panics; a refusal writes nothing; an accepted list gives a head the
//! engine's own HTTP/1.1 parser reads whole, with the request's method,
//! exactly one host, and the framing the body calls for, so no value can
//! smuggle a field or a message into the HTTP/1.1 stream.
#![no_main]

use ktcpvs_net::http::{parse_request, Framing, Limits};
use ktcpvs_net::http2::downgrade::{downgrade, Body, Field};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let body = match choice % 3 {
        0 => Body::None,
        1 => Body::Known(u64::from(choice)),
        _ => Body::Unknown,
    };
    let fields: Vec<Field<'_>> = rest
        .split(|&b| b == 0xff)
        .filter_map(|f| {
            let at = f.iter().position(|&b| b == 0xfe)?;
            Some(Field {
                name: &f[..at],
                value: &f[at + 1..],
            })
        })
        .collect();
    let mut out = b"kept".to_vec();
    let Ok(done) = downgrade(&fields, body, &mut out) else {
        assert_eq!(out, b"kept");
        return;
    };
    let head = &out[4..];
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let limits = Limits {
        max_request_line: 1 << 20,
        max_header_size: 1 << 20,
        max_headers: 256,
    };
    let parsed = parse_request(head, &mut slots, &limits);
    let Ok(Some((info, h))) = parsed else {
        // Only the slot count may refuse it.
        assert!(
            fields.len() > 250,
            "not an HTTP/1.1 head: {parsed:?}\n{:?}",
            String::from_utf8_lossy(head)
        );
        return;
    };
    assert_eq!(info.head_len, head.len(), "one head, nothing after it");
    let method = fields.iter().find(|f| f.name == b":method").map(|f| f.value);
    assert_eq!(Some(h.method.as_bytes()), method);
    let hosts = h.headers.iter().filter(|f| f.name.eq_ignore_ascii_case("host")).count();
    assert_eq!(hosts, 1);
    let want = match body {
        Body::None => Framing::None,
        Body::Known(n) => Framing::Length(n),
        Body::Unknown if done.chunked => Framing::Chunked,
        Body::Unknown => Framing::Length(done.declared_length.unwrap_or(0)),
    };
    assert_eq!(info.framing, want);
});

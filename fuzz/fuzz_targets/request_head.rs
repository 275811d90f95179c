//! Request heads: parse → rewrite → parse again.
//!
//! The first byte chooses the forwarding options, the rest is the head.
//! Invariants for every head the parser accepts:
//! * every strict prefix of it is "need more", never an error or another
//!   head (a streaming parser decides the same whatever the reads were);
//! * the rewritten head parses, whole, with the same framing (length,
//!   chunked, none), method, routed target, host and version, in origin
//!   form, and says `Connection: close` when asked;
//! and for every head it refuses: no bytes appended after it make it
//! acceptable (a refusal seen early is final).
#![no_main]

use ktcpvs_net::http::{
    parse_request, write_request_head, ForwardOptions, Limits, TargetForm,
};
use libfuzzer_sys::fuzz_target;

const SLOTS: usize = 100;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, buf)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    let first = parse_request(buf, &mut slots, &limits);
    let (info, head) = match first {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return,
        Err(refused) => {
            let mut more = buf.to_vec();
            more.extend_from_slice(b"\r\nHost: a\r\n\r\n");
            let mut slots = [httparse::EMPTY_HEADER; SLOTS];
            let again = parse_request(&more, &mut slots, &limits);
            assert!(
                again.is_err(),
                "refused ({refused}) but accepted with more bytes: {again:?}"
            );
            return;
        }
    };
    for cut in [info.head_len - 1, info.head_len / 2, usize::from(flags) % info.head_len] {
        let mut slots = [httparse::EMPTY_HEADER; SLOTS];
        let prefix = parse_request(&buf[..cut], &mut slots, &limits);
        assert!(
            matches!(prefix, Ok(None)),
            "prefix of {cut} bytes of an accepted head: {prefix:?}"
        );
    }
    let opts = ForwardOptions {
        forwarded_for: (flags & 1 != 0).then(|| "192.0.2.7:4000".parse().unwrap()),
        client_tls: flags & 16 != 0,
        close: flags & 2 != 0,
        keep_alive: flags & 4 != 0,
        extra: (flags & 8 != 0).then_some(&b"X-Stamp: 1"[..]),
        edits: &[],
    };
    let mut out = Vec::new();
    write_request_head(&head, &info, &opts, &mut out);
    // The rewrite may add up to six fields (Host, X-Forwarded-For,
    // Forwarded, X-Forwarded-Proto, Connection, the extra line) and their
    // bytes.
    let roomy = Limits {
        max_request_line: limits.max_request_line,
        max_header_size: limits.max_header_size + 1024,
        max_headers: SLOTS + 6,
    };
    let mut slots = [httparse::EMPTY_HEADER; SLOTS + 6];
    let (again, head2) = match parse_request(&out, &mut slots, &roomy) {
        Ok(Some(parsed)) => parsed,
        other => panic!(
            "the rewritten head does not parse: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(again.head_len, out.len());
    assert_eq!(again.framing, info.framing);
    assert_eq!(again.method, info.method);
    assert_eq!(again.version, info.version);
    assert_eq!(again.upgrade, info.upgrade);
    assert_eq!(head2.method, head.method);
    assert_eq!(head2.target, head.target, "the routed target changed");
    assert_eq!(head2.host, head.host, "the routed host changed");
    assert_ne!(again.target_form, TargetForm::Absolute);
    if opts.close {
        assert!(!again.keep_alive);
    }
});

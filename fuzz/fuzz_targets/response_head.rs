//! Response heads: parse → rewrite → parse again.
//!
//! The first byte chooses the request method (GET or HEAD) and the
//! forwarding options, the rest is the head. Invariants for every head the
//! parser accepts: every strict prefix is "need more"; the rewritten head
//! parses whole with the same status, version and framing, keeps an
//! upgrade, and says `Connection: close` when asked (a 101 aside). A head
//! it refuses stays refused with more bytes appended.
#![no_main]

use ktcpvs_net::http::{parse_response, write_response_head, ForwardOptions, Limits, Method};
use libfuzzer_sys::fuzz_target;

const SLOTS: usize = 100;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, buf)) = data.split_first() else {
        return;
    };
    let method = if flags & 1 != 0 { Method::Head } else { Method::Get };
    let limits = Limits::default();
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    let (info, head) = match parse_response(buf, &mut slots, method, &limits) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return,
        Err(refused) => {
            let mut more = buf.to_vec();
            more.extend_from_slice(b"\r\n\r\n");
            let mut slots = [httparse::EMPTY_HEADER; SLOTS];
            let again = parse_response(&more, &mut slots, method, &limits);
            assert!(
                again.is_err(),
                "refused ({refused}) but accepted with more bytes: {again:?}"
            );
            return;
        }
    };
    for cut in [info.head_len - 1, info.head_len / 2, usize::from(flags) % info.head_len] {
        let mut slots = [httparse::EMPTY_HEADER; SLOTS];
        let prefix = parse_response(&buf[..cut], &mut slots, method, &limits);
        assert!(
            matches!(prefix, Ok(None)),
            "prefix of {cut} bytes of an accepted head: {prefix:?}"
        );
    }
    let opts = ForwardOptions {
        forwarded_for: None,
        client_tls: false,
        close: flags & 2 != 0,
        keep_alive: flags & 4 != 0,
        extra: (flags & 8 != 0).then_some(&b"Set-Cookie: SID=1; Path=/"[..]),
        edits: &[],
    };
    let mut out = Vec::new();
    write_response_head(&head, &info, &opts, &mut out);
    let roomy = Limits {
        max_request_line: limits.max_request_line,
        max_header_size: limits.max_header_size + 1024,
        max_headers: SLOTS + 2,
    };
    let mut slots = [httparse::EMPTY_HEADER; SLOTS + 2];
    let (again, _) = match parse_response(&out, &mut slots, method, &roomy) {
        Ok(Some(parsed)) => parsed,
        other => panic!(
            "the rewritten head does not parse: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(again.head_len, out.len());
    assert_eq!(again.status, info.status);
    assert_eq!(again.version, info.version);
    assert_eq!(again.framing, info.framing);
    assert_eq!(again.upgrade, info.upgrade);
    assert_eq!(again.interim, info.interim);
    if opts.close && !info.upgrade {
        assert!(!again.keep_alive);
    }
});

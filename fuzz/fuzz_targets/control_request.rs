//! Control-socket request lines: never a panic, and every line the parser
//! accepts formats back to a line that parses to the same request (what
//! the daemon logs and `tcpvsadm` sends is what was meant).
#![no_main]

use ktcpvs::control_socket::{Reply, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = Request::parse(line) {
        let text = request.to_string();
        assert!(!text.contains('\n'), "a request formats to more than one line: {text:?}");
        let again = Request::parse(&text)
            .unwrap_or_else(|e| panic!("{line:?} formats to {text:?}, which does not parse: {e}"));
        assert_eq!(again, request, "{line:?} -> {text:?}");
    }
    // The client reads reply status lines from the daemon: never a panic.
    let _ = Reply::parse_status(line);
});

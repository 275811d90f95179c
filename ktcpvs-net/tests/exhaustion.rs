//! Resource exhaustion, tried as an attacker would: whatever a client
//! abandons or drags out must not pin a backend connection, a buffer or a
//! server's place in rotation.

mod support;

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ktcpvs_core::ServiceSpec;
use support::backend::{read_request_head, RawBackend};
use support::client::Client;
use support::*;

/// A per-request service whose every request goes to `backend`, running.
fn one_server(backend: SocketAddr) -> Running {
    let control = control();
    add_service(&control, "web", "phttp", ServiceSpec::default());
    add_server(&control, "web", backend);
    add_rule(&control, "web", ".*", backend);
    start(&control, "web");
    run(control)
}

#[test]
fn client_gone_mid_response_closes_the_backend_connection() {
    // The backend promises a large body and writes it until the proxy
    // closes the connection; it counts the connections that ended so.
    let ended = Arc::new(AtomicUsize::new(0));
    let e2 = Arc::clone(&ended);
    let backend = RawBackend::start(move |s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        if read_request_head(&mut r).is_none() {
            return;
        }
        let total = 1u64 << 30;
        let _ =
            w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n").as_bytes());
        let chunk = [b'x'; 16384];
        for _ in 0..(total / 16384) {
            if w.write_all(&chunk).is_err() {
                e2.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    });
    let engine = one_server(backend.addr());
    for _ in 0..3 {
        let mut c = Client::connect(engine.addr("web"));
        c.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut c.reader, &mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
        drop(c);
    }
    eventually("every abandoned backend connection is closed", || {
        ended.load(Ordering::SeqCst) == 3
    });
}

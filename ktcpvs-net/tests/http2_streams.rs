//! HTTP/2 streams through the engine, beside what the attack suite
//! (`http2_attacks.rs`) refuses: the backend connections streams use are
//! reused across streams whatever the scheduler (a per-connection route's
//! connection goes back to the pool when its stream ends), and each
//! stream is switched by the rules on its own.

mod support;

use std::net::SocketAddr;

use ktcpvs_core::ServiceSpec;
use support::backend::HttpBackend;
use support::h2frames::*;
use support::*;

/// A service `web` with `http2 = on` and `scheduler`, rules sending
/// `/a/` to `a` and the rest to `b`, running.
fn two_servers(scheduler: &str, a: SocketAddr, b: SocketAddr) -> Running {
    let control = control();
    add_service(
        &control,
        "web",
        scheduler,
        ServiceSpec {
            http2: Some(true),
            ..ServiceSpec::default()
        },
    );
    add_server(&control, "web", a);
    add_server(&control, "web", b);
    add_rule(&control, "web", "^/a/", a);
    add_rule(&control, "web", ".*", b);
    start(&control, "web");
    run(control)
}

#[test]
fn streams_reuse_backend_connections_whatever_the_scheduler() {
    for scheduler in ["phttp", "http"] {
        let (a, b) = (HttpBackend::start("a"), HttpBackend::start("b"));
        let engine = two_servers(scheduler, a.addr(), b.addr());
        let mut c = H2Client::handshake(engine.addr("web"), &[]);
        for i in 0..30u32 {
            let (path, name) = if i % 3 == 0 {
                ("/a/x", "a")
            } else {
                ("/y", "b")
            };
            let outcome = c.get(2 * i + 1, path);
            let r = outcome.response(scheduler);
            assert_eq!(r.status(), Some(200), "{scheduler}: stream {i}");
            assert_eq!(
                r.text(),
                format!("{name} {path}"),
                "{scheduler}: stream {i}"
            );
        }
        assert_eq!((a.requests(), b.requests()), (10, 20), "{scheduler}");
        let opened = |s: &HttpBackend| s.seen.connections.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            opened(&a) <= 2 && opened(&b) <= 2,
            "{scheduler}: {} and {} backend connections for 30 streams",
            opened(&a),
            opened(&b)
        );
    }
}

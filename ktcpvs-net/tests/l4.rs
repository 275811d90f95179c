//! Layer-4 relay through real sockets: both directions, half-close, retry
//! on a refused server, no server, exact active-connection counts.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use ktcpvs_core::ServiceSpec;
use support::backend::EchoBackend;
use support::*;

fn l4_service(servers: &[std::net::SocketAddr]) -> Running {
    let control = control();
    add_service(&control, "l4", "wlc", ServiceSpec::default());
    for s in servers {
        add_server(&control, "l4", *s);
    }
    start(&control, "l4");
    run(control)
}

fn roundtrip(addr: std::net::SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = s.try_clone().unwrap();
    let expected = payload.len() + 3;
    let t = std::thread::spawn(move || {
        let mut out = Vec::with_capacity(expected);
        reader.read_to_end(&mut out).map(|_| out)
    });
    s.write_all(payload).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    t.join().unwrap().unwrap()
}

#[test]
fn relays_megabytes_both_ways_and_passes_half_close_on() {
    let echo = EchoBackend::start();
    let engine = l4_service(&[echo.addr()]);
    let payload = pattern(4 << 20);
    let got = roundtrip(engine.addr("l4"), &payload);
    assert_eq!(got.len(), payload.len() + 3);
    assert_eq!(checksum(&got[..payload.len()]), checksum(&payload));
    assert_eq!(
        &got[payload.len()..],
        b"END",
        "backend wrote after our FIN and we got it"
    );
}

#[test]
fn retries_on_another_server_when_a_connect_is_refused() {
    let echo = EchoBackend::start();
    let dead = refused_addr();
    // The dead server comes first, so least-connection ties pick it.
    let engine = l4_service(&[dead, echo.addr()]);
    for i in 0..5 {
        let got = roundtrip(engine.addr("l4"), format!("hello {i}").as_bytes());
        assert_eq!(got, format!("hello {i}END").into_bytes());
    }
    let snap = engine.control.snapshot();
    let stats = snap.server_stats();
    let dead_stats = stats[&("l4".to_string(), dead)];
    assert!(
        dead_stats.errors >= 1,
        "the refused server was tried and failed"
    );
    assert!(
        !dead_stats.healthy,
        "and is out of rotation for the back-off"
    );
}

#[test]
fn client_is_closed_when_no_server_exists() {
    let engine = l4_service(&[]);
    let mut s = TcpStream::connect(engine.addr("l4")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
}

#[test]
fn active_counts_are_exact_while_open_and_zero_after() {
    let echo = EchoBackend::start();
    let engine = l4_service(&[echo.addr()]);
    let addr = engine.addr("l4");
    let mut open: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            s
        })
        .collect();
    let key = ("l4".to_string(), echo.addr());
    assert_eq!(engine.control.snapshot().server_stats()[&key].active, 10);
    assert_eq!(
        engine
            .control
            .snapshot()
            .service("l4")
            .unwrap()
            .load()
            .stats()
            .active,
        10
    );
    open.clear();
    eventually("active count back to zero", || {
        engine.control.snapshot().server_stats()[&key].active == 0
    });
    eventually("service active back to zero", || {
        engine
            .control
            .snapshot()
            .service("l4")
            .unwrap()
            .load()
            .stats()
            .active
            == 0
    });
}

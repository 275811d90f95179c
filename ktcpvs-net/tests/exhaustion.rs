//! Resource exhaustion, tried as an attacker would: whatever a client
//! abandons or drags out must not pin a backend connection, a buffer or a
//! server's place in rotation.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::backend::{read_request_head, HttpBackend, RawBackend};
use support::client::Client;
use support::*;

/// A per-request service whose every request goes to `backend`, running.
fn one_server(backend: SocketAddr) -> Running {
    one_server_with("phttp", backend, &[])
}

/// A backend that answers one request with a `total`-byte body written in
/// `chunk`-byte pieces as fast as it is taken, and counts the connections
/// that ended because the proxy closed them.
fn flooding_backend(total: usize, chunk: usize) -> (RawBackend, Arc<AtomicUsize>) {
    let ended = Arc::new(AtomicUsize::new(0));
    let e2 = Arc::clone(&ended);
    let backend = RawBackend::start(move |s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        if read_request_head(&mut r).is_none() {
            return;
        }
        let _ =
            w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n").as_bytes());
        let piece = vec![b'x'; chunk];
        for _ in 0..total / chunk {
            if w.write_all(&piece).is_err() {
                e2.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    });
    (backend, ended)
}

#[test]
fn client_gone_mid_response_closes_the_backend_connection() {
    // The backend promises a large body and writes it until the proxy
    // closes the connection.
    let (backend, ended) = flooding_backend(1 << 30, 16384);
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

/// A backend that answers every request with `pieces` pieces of 100 bytes,
/// one every `every`, framed by Content-Length.
fn trickling_backend(pieces: usize, every: Duration) -> RawBackend {
    RawBackend::start(move |s| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        while read_request_head(&mut r).is_some() {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                pieces * 100
            );
            if w.write_all(head.as_bytes()).is_err() {
                return;
            }
            for _ in 0..pieces {
                std::thread::sleep(every);
                if w.write_all(&[b'd'; 100]).is_err() {
                    return;
                }
            }
        }
    })
}

#[test]
fn a_download_that_keeps_moving_outlives_the_read_timeout() {
    let backend = trickling_backend(10, Duration::from_millis(300));
    let engine = one_server_with("phttp", backend.addr(), &[("read_timeout", "1")]);
    let mut c = Client::connect(engine.addr("web"));
    let started = Instant::now();
    let r = c.get("/trickle").unwrap();
    assert_eq!(r.body, vec![b'd'; 1000]);
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the body took its time"
    );
}

#[test]
fn an_upload_that_keeps_moving_outlives_the_read_timeout() {
    let backend = HttpBackend::start("r1");
    let engine = one_server_with(
        "phttp",
        backend.addr(),
        &[("read_timeout", "1"), ("min_transfer_rate", "0")],
    );
    let mut c = Client::connect(engine.addr("web"));
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        c.send(&[b'u'; 100]);
    }
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.body.len()), (200, 1000));
}

#[test]
fn a_client_reading_too_slowly_is_cut_and_frees_the_backend() {
    // The backend sends 64 MiB as fast as it is taken.
    let (backend, ended) = flooding_backend(64 << 20, 65536);
    let engine = one_server_with(
        "phttp",
        backend.addr(),
        &[("min_transfer_rate", "1000000"), ("transfer_window", "1")],
    );
    // A reader taking 10 kB/s, far below 1 MB/s, is cut within a few
    // windows: the backend connection is closed, and what the client can
    // still read (the bytes already queued towards it) ends short.
    let mut slow = Client::connect(engine.addr("web"));
    slow.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    let started = Instant::now();
    let mut buf = [0u8; 1000];
    let mut got = 0;
    while ended.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "never cut");
        got += slow.reader.read(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut rest = Vec::new();
    let _ = slow.reader.read_to_end(&mut rest);
    assert!(
        got + rest.len() < 64 << 20,
        "the slow client got the whole body"
    );
    // A client that reads at full speed gets the whole body.
    let mut fast = Client::connect(engine.addr("web"));
    fast.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = fast.read_response(false).unwrap();
    assert_eq!(r.body.len(), 64 << 20);
}

#[test]
fn a_client_sending_its_body_too_slowly_gets_408_and_frees_the_backend() {
    let (ended_tx, ended_rx) = std::sync::mpsc::channel();
    let ended_tx = std::sync::Mutex::new(ended_tx);
    let backend = RawBackend::start(move |mut s| {
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let _ = ended_tx.lock().unwrap().send(all.len());
    });
    let engine = one_server_with(
        "phttp",
        backend.addr(),
        &[("min_transfer_rate", "100000"), ("transfer_window", "1")],
    );
    let mut c = Client::connect(engine.addr("web"));
    c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
    let started = Instant::now();
    let status = loop {
        let _ = c.stream().write_all(&[b'u'; 100]);
        std::thread::sleep(Duration::from_millis(100));
        let mut peek = [0u8; 1];
        c.stream().set_nonblocking(true).unwrap();
        let ready = c.stream().peek(&mut peek).is_ok();
        c.stream().set_nonblocking(false).unwrap();
        if ready {
            break c.read_response(false).map(|r| r.status);
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never cut");
    };
    assert_eq!(status.unwrap(), 408);
    ended_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the backend connection is closed");
}

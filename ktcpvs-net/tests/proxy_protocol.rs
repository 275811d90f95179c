//! The PROXY protocol through the whole engine, on loopback: accepted only
//! from trusted networks, in either version, split across segments or
//! not; the client it names is what the real server sees in
//! `X-Forwarded-For`; refused (and nothing forwarded) for an untrusted
//! source, a malformed or missing header, or one that does not arrive in
//! time. Sent to real servers configured for it, at layer 4 and over HTTP,
//! where a differential test checks that every backend connection carries
//! requests of the one client its header names (never pooled across
//! clients).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ktcpvs_core::model::ProxyVersion;
use ktcpvs_core::{Command, ServiceSpec};
use support::backend::{read_request_head, HttpBackend, RawBackend};
use support::client::Client;
use support::*;

/// A v1 header naming `src` connecting to `dst`.
fn v1(src: &str, dst: &str) -> Vec<u8> {
    let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let fam = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {fam} {} {} {} {}\r\n",
        s.ip(),
        d.ip(),
        s.port(),
        d.port()
    )
    .into_bytes()
}

/// A v2 PROXY header for TCP over IPv4 or IPv6, built by hand.
fn v2(src: &str, dst: &str) -> Vec<u8> {
    let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut out = b"\r\n\r\n\0\r\nQUIT\n\x21".to_vec();
    match (s.ip(), d.ip()) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
            out.extend_from_slice(&[0x11, 0, 12]);
            out.extend_from_slice(&a.octets());
            out.extend_from_slice(&b.octets());
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
            out.extend_from_slice(&[0x21, 0, 36]);
            out.extend_from_slice(&a.octets());
            out.extend_from_slice(&b.octets());
        }
        _ => panic!("mixed families"),
    }
    out.extend_from_slice(&s.port().to_be_bytes());
    out.extend_from_slice(&d.port().to_be_bytes());
    out
}

/// An HTTP service with `forwardfor` that trusts `trusted`, in front of
/// one HTTP backend.
fn http_service(trusted: &str, backend: SocketAddr) -> Running {
    let control = control();
    add_service(
        &control,
        "web",
        "phttp",
        ServiceSpec {
            forward_for: Some(true),
            proxy_protocol: Some(trusted.parse().unwrap()),
            header_timeout: Some(1),
            ..Default::default()
        },
    );
    add_server(&control, "web", backend);
    start(&control, "web");
    run(control)
}

fn xff(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("X-Forwarded-For: "))
        .map(str::to_string)
}

#[test]
fn the_client_a_header_names_is_the_one_forwarded() {
    let backend = HttpBackend::start("b");
    let running = http_service("127.0.0.0/8", backend.addr());
    let addr = running.addr("web");
    let cases: [(Vec<u8>, &str); 3] = [
        (v1("203.0.113.7:4242", "198.51.100.1:80"), "203.0.113.7"),
        (v2("192.0.2.9:1", "198.51.100.1:80"), "192.0.2.9"),
        (v2("[2001:db8::5]:7", "[2001:db8::1]:80"), "2001:db8::5"),
    ];
    for (i, (header, client)) in cases.iter().enumerate() {
        let mut c = Client::connect(addr);
        c.send(header);
        let r = c.get(&format!("/case{i}")).expect("response");
        assert_eq!(r.status, 200);
        let heads = backend.heads();
        let head = heads.last().expect("the backend got the request");
        assert_eq!(xff(head).as_deref(), Some(*client), "{head}");
    }
    // A header split over several segments, the request in the same
    // segment as its end.
    let header = v1("203.0.113.8:5000", "198.51.100.1:80");
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&header[..9]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&header[9..20]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut rest = header[20..].to_vec();
    rest.extend_from_slice(b"GET /split HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(&rest).unwrap();
    let mut text = String::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        xff(&backend.heads().pop().unwrap()).as_deref(),
        Some("203.0.113.8")
    );
    // v2 LOCAL (the balancer's own health check): the connection's own
    // address stands.
    let mut c = Client::connect(addr);
    c.send(b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00");
    assert_eq!(c.get("/local").unwrap().status, 200);
    assert_eq!(
        xff(&backend.heads().pop().unwrap()).as_deref(),
        Some("127.0.0.1")
    );
}

/// Connects, sends `bytes`, and returns what came back before the close
/// and how long the close took.
fn refused(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (got, started.elapsed())
}

#[test]
fn untrusted_missing_malformed_and_late_headers_are_refused() {
    let backend = HttpBackend::start("b");
    // Loopback is not trusted here.
    let running = http_service("10.0.0.0/8,::1", backend.addr());
    let addr = running.addr("web");
    let mut header = v1("203.0.113.7:4242", "198.51.100.1:80");
    header.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let (got, _) = refused(addr, &header);
    assert!(got.is_empty(), "an untrusted source got {got:?}");
    let trusted = http_service("127.0.0.1", backend.addr());
    let addr = trusted.addr("web");
    for bytes in [
        &b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"PROXY TCP4 203.0.113.7 198.51.100.1 4242 80\nGET / HTTP/1.1\r\n\r\n",
        b"PROXY TCP4 203.0.113.7 198.51.100.1 99999 80\r\nGET / HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c",
        b"\x16\x03\x01\x00\x05hello",
    ] {
        let (got, took) = refused(addr, bytes);
        assert!(got.is_empty(), "{bytes:?} got {got:?}");
        assert!(took < Duration::from_millis(900), "{bytes:?} took {took:?}");
    }
    // A header that stops half-way is dropped at the header timeout (1 s).
    let (got, took) = refused(addr, b"PROXY TCP4 203.0.113.7 198.");
    assert!(got.is_empty());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(backend.requests(), 0, "nothing refused reached the server");
    let load = |r: &Running| {
        let snapshot = r.control.snapshot();
        let service = snapshot.service("web").expect("service");
        service.load().stats().proxy_refused
    };
    assert_eq!(load(&running), 1);
    assert_eq!(load(&trusted), 6);
}

/// Reads a PROXY header a backend received, by hand (v1 line or v2
/// block), as `(source, destination)`.
fn read_header(r: &mut BufReader<TcpStream>) -> Option<(SocketAddr, SocketAddr)> {
    let first = r.fill_buf().ok()?.first().copied()?;
    if first == b'P' {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let f: Vec<&str> = line.trim_end().split(' ').collect();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().ok();
        return Some((
            SocketAddr::new(ip(f[2])?, f[4].parse().ok()?),
            SocketAddr::new(ip(f[3])?, f[5].parse().ok()?),
        ));
    }
    let mut start = [0u8; 16];
    r.read_exact(&mut start).ok()?;
    assert_eq!(&start[..13], b"\r\n\r\n\0\r\nQUIT\n\x21");
    let mut block = vec![0u8; usize::from(u16::from_be_bytes([start[14], start[15]]))];
    r.read_exact(&mut block).ok()?;
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    match start[13] {
        0x11 => {
            let ip = |at: usize| -> std::net::IpAddr {
                [block[at], block[at + 1], block[at + 2], block[at + 3]].into()
            };
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        0x21 => {
            let ip = |at: usize| -> std::net::IpAddr {
                <[u8; 16]>::try_from(&block[at..at + 16]).unwrap().into()
            };
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        other => panic!("family {other:#x}"),
    }
}

/// A backend that reads the PROXY header, then answers each request with
/// the source the header named, keeping the connection alive.
fn header_echo_backend() -> RawBackend {
    RawBackend::start(|stream| {
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let Some((src, _)) = read_header(&mut r) else {
            return;
        };
        while read_request_head(&mut r).is_some() {
            let body = src.to_string();
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    })
}

fn send_proxy(control: &ktcpvs_core::Control, server: SocketAddr, version: ProxyVersion) {
    control
        .execute(Command::SetServerProxy {
            service: "web".into(),
            server: ep(server),
            version: Some(version),
        })
        .unwrap();
}

#[test]
fn each_backend_connection_carries_only_the_client_its_header_names() {
    for version in [ProxyVersion::V1, ProxyVersion::V2] {
        let backend = header_echo_backend();
        let control = control();
        add_service(
            &control,
            "web",
            "phttp",
            ServiceSpec {
                proxy_protocol: Some("127.0.0.1".parse().unwrap()),
                ..Default::default()
            },
        );
        add_server(&control, "web", backend.addr());
        send_proxy(&control, backend.addr(), version);
        start(&control, "web");
        let running = run_workers(control, 2);
        let addr = running.addr("web");
        // Sixteen clients, each with its own address, interleaving three
        // keep-alive requests each.
        let mut clients: Vec<(Client, String)> = (0..16)
            .map(|i| {
                let me = format!("203.0.113.{}:{}", i + 1, 1000 + i);
                let mut c = Client::connect(addr);
                c.send(&v1(&me, "198.51.100.1:80"));
                (c, me)
            })
            .collect();
        for round in 0..3 {
            for (c, me) in &mut clients {
                let r = c.get(&format!("/r{round}")).expect("response");
                assert_eq!(r.status, 200);
                assert_eq!(&r.text(), me, "{version:?}: a response for another client");
            }
        }
        assert!(
            backend.connections() >= 16,
            "{version:?}: {} backend connections for 16 clients",
            backend.connections()
        );
    }
}

#[test]
fn a_layer4_service_passes_the_client_on() {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let backend = RawBackend::start(move |stream| {
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let header = read_header(&mut r);
        let _ = tx.lock().unwrap().send(header);
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        let _ = w.write_all(&rest);
    });
    let control = control();
    add_service(
        &control,
        "web",
        "wlc",
        ServiceSpec {
            proxy_protocol: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        },
    );
    add_server(&control, "web", backend.addr());
    send_proxy(&control, backend.addr(), ProxyVersion::V2);
    start(&control, "web");
    let running = run(control);
    let mut s = TcpStream::connect(running.addr("web")).unwrap();
    let mut bytes = v1("[2001:db8::77]:6000", "[2001:db8::1]:443");
    bytes.extend_from_slice(b"opaque bytes");
    s.write_all(&bytes).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut echoed = Vec::new();
    s.read_to_end(&mut echoed).unwrap();
    assert_eq!(
        echoed, b"opaque bytes",
        "only the payload reaches the server"
    );
    let (src, dst) = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(src, "[2001:db8::77]:6000".parse().unwrap());
    assert_eq!(dst, "[2001:db8::1]:443".parse().unwrap());
}

#[test]
fn a_tls_service_reads_the_header_before_the_handshake() {
    use rustls::pki_types::ServerName;
    use rustls::{ClientConnection, StreamOwned};
    let pki = support::tls::Pki::new("proxy-tls");
    let certificate = pki.issue("a", &["a.test"]);
    let backend = HttpBackend::start("b");
    let control = control();
    control.set_tls_loader(std::sync::Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
    add_service(
        &control,
        "web",
        "phttp",
        ServiceSpec {
            certificates: Some(vec![certificate]),
            forward_for: Some(true),
            proxy_protocol: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        },
    );
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    let running = run(control);
    let mut tcp = support::client::connect_timed(running.addr("web"));
    tcp.write_all(&v2("198.51.100.23:999", "203.0.113.1:443"))
        .unwrap();
    let name = ServerName::try_from("a.test".to_string()).unwrap();
    let conn = ClientConnection::new(pki.client_config(&[b"http/1.1"]), name).unwrap();
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("handshake");
    }
    let mut client = Client::over(stream);
    client.host = "a.test".into();
    assert_eq!(client.get("/tls").expect("response").status, 200);
    let heads = backend.heads();
    assert_eq!(xff(heads.last().unwrap()).as_deref(), Some("198.51.100.23"));
}

#[test]
fn health_probes_to_a_server_expecting_a_header_send_one_naming_no_client() {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let tx = std::sync::Mutex::new(tx);
    let backend = RawBackend::start(move |stream| {
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let mut first = Vec::new();
        // The header line and the probe's request line.
        for _ in 0..2 {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                break;
            }
            first.extend_from_slice(&line);
        }
        let _ = tx.lock().unwrap().send(first);
        while read_request_head(&mut r).is_some() {}
        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    let control = control();
    add_service(
        &control,
        "web",
        "phttp",
        ServiceSpec {
            health: vec![
                ("check".into(), "http".into()),
                ("check_interval".into(), "100ms".into()),
            ],
            ..Default::default()
        },
    );
    add_server(&control, "web", backend.addr());
    send_proxy(&control, backend.addr(), ProxyVersion::V1);
    start(&control, "web");
    let _running = run(control);
    let first = rx.recv_timeout(Duration::from_secs(5)).expect("a probe");
    let text = String::from_utf8_lossy(&first);
    assert!(text.starts_with("PROXY UNKNOWN\r\nGET /"), "{text:?}");
}

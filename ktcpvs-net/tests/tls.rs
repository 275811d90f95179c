//! TLS termination end to end, on loopback with a real rustls client and
//! certificates made at run time: SNI picks the certificate (exact names,
//! wildcards, the default), ALPN says `http/1.1`, requests reach the real
//! server intact (keep-alive, pipelined, large bodies), sessions resume,
//! a closing exchange ends with `close_notify`, plain HTTP sent to the TLS
//! port is refused and counted, a certificate reload leaves connections
//! in flight alone, and bad certificate files are refused naming them.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;

use ktcpvs_core::{CertificateFiles, Command, ControlError, ServiceSpec};
use rustls::HandshakeKind;
use support::backend::HttpBackend;
use support::tls::Pki;
use support::*;

/// A running engine with service "web" over `backend`, serving
/// `certificates` with `scheduler`.
fn tls_service(
    scheduler: &str,
    certificates: Vec<CertificateFiles>,
    backend: std::net::SocketAddr,
) -> Running {
    let control = control();
    control.set_tls_loader(Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
    add_service(
        &control,
        "web",
        scheduler,
        ServiceSpec {
            certificates: Some(certificates),
            ..ServiceSpec::default()
        },
    );
    add_server(&control, "web", backend);
    add_rule(&control, "web", ".*", backend);
    start(&control, "web");
    run(control)
}

fn peer_certificate(client: &support::client::Client<support::tls::TlsStream>) -> Vec<u8> {
    client.reader.get_ref().conn.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn sni_picks_the_certificate_exact_then_wildcard_then_the_first() {
    let pki = Pki::new("sni");
    let a = pki.issue("a", &["a.test"]);
    let b = pki.issue("b", &["*.b.test", "b.test"]);
    let backend = HttpBackend::start("r1");
    let engine = tls_service("phttp", vec![a.clone(), b.clone()], backend.addr());
    let config = pki.client_config(&[b"http/1.1"]);
    for (name, want) in [
        ("a.test", &a),
        ("b.test", &b),
        ("www.b.test", &b),
        ("B.TEST", &b),
        ("unknown.test", &a),
    ] {
        let client = match Pki::connect(&config, engine.addr("web"), name) {
            Ok(c) => c,
            // The default certificate does not name `unknown.test`: the
            // client refuses it, as it should.
            Err(_) if name == "unknown.test" => continue,
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(peer_certificate(&client), Pki::der_of(want), "{name}");
    }
    // Whatever a client verifies: an unknown name, or none, gets the first.
    let addr = engine.addr("web");
    assert_eq!(
        support::tls::presented(addr, Some("unknown.test")),
        Pki::der_of(&a)
    );
    assert_eq!(support::tls::presented(addr, None), Pki::der_of(&a));
    assert_eq!(
        support::tls::presented(addr, Some("x.b.test")),
        Pki::der_of(&b)
    );
    // A wildcard covers one label only.
    assert_eq!(
        support::tls::presented(addr, Some("x.y.b.test")),
        Pki::der_of(&a)
    );
}

/// RSA and ECDSA certificates side by side: each name gets its own.
#[test]
fn rsa_and_ecdsa_certificates_are_served() {
    let pki = Pki::new("rsa");
    let rsa = pki.issue_rsa("rsa", &["rsa.test"]);
    let ec = pki.issue("ec", &["ec.test"]);
    let backend = HttpBackend::start("r1");
    let engine = tls_service("phttp", vec![rsa.clone(), ec.clone()], backend.addr());
    let config = pki.client_config(&[]);
    for (name, files) in [("rsa.test", &rsa), ("ec.test", &ec)] {
        let mut c = Pki::connect(&config, engine.addr("web"), name).unwrap();
        assert_eq!(peer_certificate(&c), Pki::der_of(files), "{name}");
        assert_eq!(c.get("/").unwrap().status, 200, "{name}");
    }
}

#[test]
fn requests_cross_tls_whole_keep_alive_pipelined_and_large() {
    let pki = Pki::new("relay");
    let cert = pki.issue("site", &["site.test"]);
    let backend = HttpBackend::start("r1");
    for scheduler in ["http", "phttp"] {
        let engine = tls_service(scheduler, vec![cert.clone()], backend.addr());
        let config = pki.client_config(&[b"h2", b"http/1.1"]);
        let mut c = Pki::connect(&config, engine.addr("web"), "site.test").unwrap();
        assert_eq!(
            c.reader.get_ref().conn.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "{scheduler}"
        );
        for i in 0..3 {
            let r = c.get(&format!("/k{i}")).unwrap();
            assert_eq!(
                (r.status, r.text()),
                (200, format!("r1 /k{i}")),
                "{scheduler}"
            );
        }
        // Two requests in one write (one TLS record): both answered.
        c.send(b"GET /p1 HTTP/1.1\r\nHost: site.test\r\n\r\nGET /p2 HTTP/1.1\r\nHost: site.test\r\n\r\n");
        assert_eq!(c.read_response(false).unwrap().text(), "r1 /p1");
        assert_eq!(c.read_response(false).unwrap().text(), "r1 /p2");
        // Four MiB down, chunked and with a length; one MiB up.
        c.get("/length/4194304")
            .unwrap()
            .assert_pattern_body(4 << 20);
        c.get("/chunked/4194304")
            .unwrap()
            .assert_pattern_body(4 << 20);
        let body = support::pattern(1 << 20);
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: site.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        c.send(head.as_bytes());
        c.send(&body);
        let r = c.read_response(false).unwrap();
        assert_eq!(r.body, body, "{scheduler}");
    }
}

#[test]
fn a_closing_exchange_ends_with_close_notify_and_nothing_is_cut() {
    let pki = Pki::new("close");
    let cert = pki.issue("site", &["site.test"]);
    let backend = HttpBackend::start("r1");
    let engine = tls_service("phttp", vec![cert], backend.addr());
    let config = pki.client_config(&[]);
    let mut c = Pki::connect(&config, engine.addr("web"), "site.test").unwrap();
    c.send(b"GET /length/2097152 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    let r = c.read_response(false).unwrap();
    r.assert_pattern_body(2 << 20);
    // A clean TLS end: rustls reports EOF only after `close_notify`
    // (an unclean one is an `UnexpectedEof` error).
    let mut rest = Vec::new();
    c.reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn sessions_resume() {
    let pki = Pki::new("resume");
    let cert = pki.issue("site", &["site.test"]);
    let backend = HttpBackend::start("r1");
    let engine = tls_service("phttp", vec![cert], backend.addr());
    let config = pki.client_config(&[b"http/1.1"]);
    for round in 0..3 {
        let mut c = Pki::connect(&config, engine.addr("web"), "site.test").unwrap();
        let kind = c.reader.get_ref().conn.handshake_kind();
        // Read a response so that the session ticket arrived.
        assert_eq!(c.get("/").unwrap().status, 200);
        let want = if round == 0 {
            HandshakeKind::Full
        } else {
            HandshakeKind::Resumed
        };
        assert_eq!(kind, Some(want), "round {round}");
    }
}

#[test]
fn plain_http_to_a_tls_port_is_closed_and_counted() {
    let pki = Pki::new("plain");
    let cert = pki.issue("site", &["site.test"]);
    let backend = HttpBackend::start("r1");
    let engine = tls_service("phttp", vec![cert], backend.addr());
    let mut s = support::client::connect_timed(engine.addr("web"));
    s.write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .unwrap();
    // Closed at once (a TLS alert at most), not left hanging.
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/"), "{got:?}");
    assert_eq!(backend.requests(), 0);
    eventually("the TLS failure is counted", || {
        engine
            .control
            .snapshot()
            .service("web")
            .unwrap()
            .load()
            .stats()
            .tls_failures
            == 1
    });
}

#[test]
fn a_reload_swaps_certificates_and_leaves_connections_in_flight_alone() {
    let pki = Pki::new("reload");
    let old = pki.issue("site", &["site.test"]);
    let old_der = Pki::der_of(&old);
    let backend = HttpBackend::start("r1");
    let engine = tls_service("phttp", vec![old.clone()], backend.addr());
    let config = pki.client_config(&[]);
    let mut in_flight = Pki::connect(&config, engine.addr("web"), "site.test").unwrap();
    assert_eq!(in_flight.get("/before").unwrap().status, 200);

    let new = pki.issue("site", &["site.test"]);
    let new_der = Pki::der_of(&new);
    assert_ne!(old_der, new_der);
    engine.control.execute(Command::ReloadCertificates).unwrap();
    // A new client (one resuming its session would see the certificate
    // of the session it resumes).
    let fresh_config = pki.client_config(&[]);
    let fresh = Pki::connect(&fresh_config, engine.addr("web"), "site.test").unwrap();
    assert_eq!(peer_certificate(&fresh), new_der);
    // The connection made before goes on with what it negotiated.
    assert_eq!(peer_certificate(&in_flight), old_der);
    assert_eq!(in_flight.get("/after").unwrap().text(), "r1 /after");

    // A reload meeting a broken key is refused, naming the file; the
    // certificate in use stays.
    std::fs::write(
        &new.key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = engine
        .control
        .execute(Command::ReloadCertificates)
        .unwrap_err();
    assert!(
        matches!(&err, ControlError::Certificate { error, .. } if error.file == new.key),
        "{err}"
    );
    let again = Pki::connect(&pki.client_config(&[]), engine.addr("web"), "site.test").unwrap();
    assert_eq!(peer_certificate(&again), new_der);
}

#[test]
fn bad_certificate_files_are_refused_naming_file_and_reason() {
    let pki = Pki::new("bad");
    let good = pki.issue("good", &["site.test"]);
    let other = pki.issue("other", &["other.test"]);
    let expired = pki.issue_with("expired", &["site.test"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let future = pki.issue_with("future", &["site.test"], |p| {
        p.not_before = rcgen::date_time_ymd(2100, 1, 1);
        p.not_after = rcgen::date_time_ymd(2101, 1, 1);
    });
    std::fs::write(pki.dir.join("garbage.pem"), "not a certificate\n").unwrap();
    let missing = pki.dir.join("missing.pem");
    let cases: Vec<(CertificateFiles, std::path::PathBuf, &str)> = vec![
        (
            CertificateFiles {
                chain: good.chain.clone(),
                key: other.key.clone(),
            },
            other.key.clone(),
            "does not belong to the certificate",
        ),
        (expired.clone(), expired.chain.clone(), "expired on"),
        (future.clone(), future.chain.clone(), "not valid before"),
        (
            CertificateFiles {
                chain: pki.dir.join("garbage.pem"),
                key: good.key.clone(),
            },
            pki.dir.join("garbage.pem"),
            "holds no certificate",
        ),
        (
            CertificateFiles {
                chain: missing.clone(),
                key: good.key.clone(),
            },
            missing,
            "cannot be read",
        ),
        (
            CertificateFiles {
                chain: good.chain.clone(),
                key: good.chain.clone(),
            },
            good.chain.clone(),
            "holds no PEM private key",
        ),
    ];
    let control = control();
    control.set_tls_loader(Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
    for (files, blamed, reason) in cases {
        let err = control
            .execute(Command::AddService {
                name: "web".into(),
                spec: ServiceSpec {
                    certificates: Some(vec![files]),
                    ..ServiceSpec::default()
                },
            })
            .unwrap_err();
        let ControlError::Certificate { error, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(error.file, blamed, "{err}");
        assert!(error.reason.contains(reason), "{err}");
        assert!(control.config().services.is_empty());
    }
}

/// A service with two backends, a `.*` rule over both, and `spec`.
fn two_backend_service(
    scheduler: &str,
    spec: ServiceSpec,
    backends: [std::net::SocketAddr; 2],
) -> Running {
    let control = control();
    control.set_tls_loader(Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
    add_service(&control, "web", scheduler, spec);
    for b in backends {
        add_server(&control, "web", b);
    }
    start(&control, "web");
    run(control)
}

#[test]
fn schedulers_see_the_server_name_and_a_host_naming_another_site_gets_421() {
    let pki = Pki::new("host");
    let cert = pki.issue("both", &["a.test", "b.test"]);
    let (r0, r1) = (HttpBackend::start("r0"), HttpBackend::start("r1"));
    let mut spec = ServiceSpec {
        certificates: Some(vec![cert]),
        ..ServiceSpec::default()
    };
    spec.options.push(("sni".into(), Some("a.test".into())));
    let engine = two_backend_service("sni", spec, [r0.addr(), r1.addr()]);
    let config = pki.client_config(&[]);
    let addr = engine.addr("web");
    let get = |c: &mut support::client::Client<support::tls::TlsStream>, host: &str| {
        c.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        c.read_response(false).unwrap()
    };
    // Routed by the handshake's name; Host agrees (any case, with a port).
    let mut a = Pki::connect(&config, addr, "a.test").unwrap();
    assert_eq!(get(&mut a, "a.test").text(), "r0 /");
    assert_eq!(get(&mut a, "A.Test:443").text(), "r0 /");
    let mut b = Pki::connect(&config, addr, "b.test").unwrap();
    assert_eq!(get(&mut b, "b.test").text(), "r1 /");
    // A connection set up for b.test asking for a.test: refused, nothing
    // forwarded, the connection closed.
    let before = r0.requests() + r1.requests();
    let r = get(&mut b, "a.test");
    assert_eq!(r.status, 421);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r0.requests() + r1.requests(), before);

    // With the check off, the same request goes through (to the server the
    // handshake's name picks).
    engine
        .control
        .execute(Command::EditService {
            name: "web".into(),
            spec: ServiceSpec {
                host_check: Some(false),
                ..ServiceSpec::default()
            },
        })
        .unwrap();
    let mut b = Pki::connect(&config, addr, "b.test").unwrap();
    assert_eq!(get(&mut b, "a.test").text(), "r1 /");
}

#[test]
fn the_real_server_learns_the_protocol_and_cannot_be_lied_to() {
    let pki = Pki::new("proto");
    let cert = pki.issue("site", &["site.test"]);
    let backend = HttpBackend::start("r1");
    let control = control();
    control.set_tls_loader(Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
    let spec = ServiceSpec {
        certificates: Some(vec![cert]),
        forward_for: Some(true),
        ..ServiceSpec::default()
    };
    add_service(&control, "web", "phttp", spec);
    add_server(&control, "web", backend.addr());
    add_service(
        &control,
        "plain",
        "phttp",
        ServiceSpec {
            forward_for: Some(true),
            ..ServiceSpec::default()
        },
    );
    add_server(&control, "plain", backend.addr());
    start(&control, "web");
    start(&control, "plain");
    let engine = run(control);
    let lie = "GET / HTTP/1.1\r\nHost: site.test\r\nX-Forwarded-Proto: https\r\n\r\n";
    let mut c = Pki::connect(&pki.client_config(&[]), engine.addr("web"), "site.test").unwrap();
    c.send(lie.as_bytes());
    assert_eq!(c.read_response(false).unwrap().status, 200);
    let mut p = support::client::Client::connect(engine.addr("plain"));
    p.send(lie.as_bytes());
    assert_eq!(p.read_response(false).unwrap().status, 200);
    let heads = backend.heads();
    assert_eq!(heads.len(), 2);
    let field = |head: &str, name: &str| -> Vec<String> {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    };
    assert_eq!(
        field(&heads[0], "x-forwarded-proto"),
        ["https"],
        "{}",
        heads[0]
    );
    assert_eq!(
        field(&heads[1], "x-forwarded-proto"),
        ["http"],
        "{}",
        heads[1]
    );
    assert!(
        field(&heads[0], "forwarded")[0].ends_with(";proto=https"),
        "{}",
        heads[0]
    );
}

#[test]
fn a_handshake_that_does_not_finish_is_closed_at_the_header_timeout() {
    let pki = Pki::new("slowhello");
    let cert = pki.issue("site", &["site.test"]);
    let backend = HttpBackend::start("r1");
    let control = control();
    control.set_tls_loader(Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
    set(&control, "header_timeout", "1");
    add_service(
        &control,
        "web",
        "phttp",
        ServiceSpec {
            certificates: Some(vec![cert]),
            ..ServiceSpec::default()
        },
    );
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    let engine = run(control);
    // Half a ClientHello record header, then nothing.
    let mut s = support::client::connect_timed(engine.addr("web"));
    s.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert_eq!(
        n,
        0,
        "the proxy answered {:?} after {:?}",
        &buf[..n],
        started.elapsed()
    );
    assert!(
        waited >= std::time::Duration::from_millis(800)
            && waited < std::time::Duration::from_secs(4),
        "closed after {waited:?}"
    );
}

/// A layer-4 service with certificates terminates TLS and relays the
/// plaintext both ways; the client's `close_notify` and FIN reach the
/// server as a FIN, and the server's answer after it still comes back,
/// then a clean TLS end.
#[test]
fn a_layer4_service_terminates_tls_and_relays_with_half_close() {
    let pki = Pki::new("l4");
    let cert = pki.issue("site", &["site.test"]);
    let echo = support::backend::EchoBackend::start();
    let control = control();
    control.set_tls_loader(Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
    add_service(
        &control,
        "tcp",
        "wlc",
        ServiceSpec {
            certificates: Some(vec![cert]),
            ..ServiceSpec::default()
        },
    );
    add_server(&control, "tcp", echo.addr());
    start(&control, "tcp");
    let engine = run(control);
    let config = pki.client_config(&[]);
    let c = Pki::connect(&config, engine.addr("tcp"), "site.test").unwrap();
    let mut stream = c.reader.into_inner();
    assert_eq!(stream.conn.alpn_protocol(), None);
    let data = support::pattern(1 << 20);
    for chunk in data.chunks(64 * 1024) {
        stream.write_all(chunk).unwrap();
        let mut back = vec![0u8; chunk.len()];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(back, chunk);
    }
    stream.conn.send_close_notify();
    stream.flush().unwrap();
    stream.sock.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"END");
}

/// A service "web" (phttp, one worker so that its pool is one) over one real
/// server reached over TLS with `tls`.
fn service_over_tls_backend(
    backend: std::net::SocketAddr,
    tls: ktcpvs_core::BackendTls,
) -> Result<Running, ControlError> {
    let control = control();
    control.set_tls_loader(Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
    add_service(&control, "web", "phttp", ServiceSpec::default());
    add_server(&control, "web", backend);
    control.execute(Command::SetServerTls {
        service: "web".into(),
        server: ep(backend),
        tls: Some(tls),
    })?;
    start(&control, "web");
    Ok(run_workers(control, 1))
}

#[test]
fn a_real_server_over_tls_is_verified_named_and_pooled() {
    let pki = Pki::new("backend");
    let cert = pki.issue("backend", &["backend.test", "127.0.0.1"]);
    let backend = support::tls::TlsBackend::start(&pki, &cert, "r1", false);
    let ca = Some(pki.ca_file());
    // By name (sent as SNI), then by the server's IP address (no SNI).
    for name in [Some("backend.test".to_string()), None] {
        let before = backend.connections();
        let tls = ktcpvs_core::BackendTls {
            name: name.clone(),
            ca: ca.clone(),
            certificate: None,
        };
        let engine = service_over_tls_backend(backend.addr, tls).unwrap();
        let mut c = support::client::Client::connect(engine.addr("web"));
        for i in 0..5 {
            assert_eq!(
                c.get(&format!("/p{i}")).unwrap().text(),
                format!("r1 /p{i}")
            );
        }
        // Another client reuses the pooled TLS connection.
        let mut c2 = support::client::Client::connect(engine.addr("web"));
        assert_eq!(c2.get("/again").unwrap().text(), "r1 /again");
        assert_eq!(
            backend.connections() - before,
            1,
            "{name:?}: one TLS connection"
        );
        assert_eq!(
            backend.seen.names.lock().unwrap().last().cloned().flatten(),
            name
        );
    }
}

#[test]
fn a_real_server_the_ca_does_not_vouch_for_gets_502_and_leaves_rotation() {
    let pki = Pki::new("badca");
    let other = Pki::new("otherca");
    let cert = pki.issue("backend", &["backend.test"]);
    let backend = support::tls::TlsBackend::start(&pki, &cert, "r1", false);
    let tls = ktcpvs_core::BackendTls {
        name: Some("backend.test".into()),
        ca: Some(other.ca_file()),
        certificate: None,
    };
    let engine = service_over_tls_backend(backend.addr, tls).unwrap();
    let mut c = support::client::Client::connect(engine.addr("web"));
    let r = c.get("/").unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(backend.connections(), 0);
    let snapshot = engine.control.snapshot();
    let entry = &snapshot.service("web").unwrap().server_entries()[0];
    assert!(!entry.load().is_healthy(), "the server left rotation");
    // The wrong name fails the same way.
    let tls = ktcpvs_core::BackendTls {
        name: Some("other.test".into()),
        ca: Some(pki.ca_file()),
        certificate: None,
    };
    let engine = service_over_tls_backend(backend.addr, tls).unwrap();
    let mut c = support::client::Client::connect(engine.addr("web"));
    assert_eq!(c.get("/").unwrap().status, 502);
    assert_eq!(backend.connections(), 0);
}

#[test]
fn a_client_certificate_is_presented_to_a_server_that_asks() {
    let pki = Pki::new("clientcert");
    let cert = pki.issue("backend", &["backend.test"]);
    let client = pki.issue("proxy", &["proxy.test"]);
    let backend = support::tls::TlsBackend::start(&pki, &cert, "r1", true);
    let ca = Some(pki.ca_file());
    let with = ktcpvs_core::BackendTls {
        name: Some("backend.test".into()),
        ca: ca.clone(),
        certificate: Some(client),
    };
    let engine = service_over_tls_backend(backend.addr, with).unwrap();
    let mut c = support::client::Client::connect(engine.addr("web"));
    assert_eq!(c.get("/").unwrap().text(), "r1 /");
    assert_eq!(*backend.seen.client_certs.lock().unwrap(), [true]);
    drop(engine);
    // Without one, the server refuses the handshake: 502.
    let without = ktcpvs_core::BackendTls {
        name: Some("backend.test".into()),
        ca,
        certificate: None,
    };
    let engine = service_over_tls_backend(backend.addr, without).unwrap();
    let mut c = support::client::Client::connect(engine.addr("web"));
    assert_eq!(c.get("/").unwrap().status, 502);
}

#[test]
fn bad_server_tls_files_are_refused_naming_them() {
    let pki = Pki::new("badservertls");
    std::fs::write(pki.dir.join("empty.pem"), "").unwrap();
    let cert = pki.issue("backend", &["backend.test"]);
    let other = pki.issue("other", &["other.test"]);
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let cases = [
        (
            ktcpvs_core::BackendTls {
                name: None,
                ca: Some(pki.dir.join("empty.pem")),
                certificate: None,
            },
            pki.dir.join("empty.pem"),
        ),
        (
            ktcpvs_core::BackendTls {
                name: None,
                ca: Some(pki.dir.join("missing.pem")),
                certificate: None,
            },
            pki.dir.join("missing.pem"),
        ),
        (
            ktcpvs_core::BackendTls {
                name: None,
                ca: Some(pki.ca_file()),
                certificate: Some(CertificateFiles {
                    chain: cert.chain.clone(),
                    key: other.key.clone(),
                }),
            },
            other.key.clone(),
        ),
    ];
    for (tls, blamed) in cases {
        let Err(err) = service_over_tls_backend(addr, tls) else {
            panic!("accepted");
        };
        assert!(
            matches!(&err, ControlError::Certificate { error, .. } if error.file == blamed),
            "{err}"
        );
    }
}

//! Live operation: `maxclients` pauses and resumes accepting without
//! dropping a connection, graceful shutdown, `unload`, and 1,000
//! configuration changes under concurrent load with zero failed requests.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ktcpvs_core::control::Command;
use ktcpvs_core::ServiceSpec;
use support::backend::HttpBackend;
use support::client::Client;
use support::*;

#[test]
fn maxclients_pauses_accepting_and_resumes_without_dropping() {
    let backend = HttpBackend::start("r1");
    let control = control();
    add_service(
        &control,
        "web",
        "phttp",
        ServiceSpec {
            maxclients: Some(2),
            ..Default::default()
        },
    );
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    let engine = run(control);
    let addr = engine.addr("web");
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    assert_eq!(a.get("/a").unwrap().status, 200);
    assert_eq!(b.get("/b").unwrap().status, 200);
    // A third client waits in the backlog: connected by the kernel, not
    // accepted by the engine.
    let mut c = Client::connect(addr);
    c.send(b"GET /c HTTP/1.1\r\nHost: t\r\n\r\n");
    let load = || {
        engine
            .control
            .snapshot()
            .service("web")
            .unwrap()
            .load()
            .stats()
    };
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(load().active, 2, "the cap holds");
    drop(a);
    let r = c.read_response(false).unwrap();
    assert_eq!(r.text(), "r1 /c", "served once a slot freed up");
    assert_eq!(b.get("/b2").unwrap().status, 200);
    assert_eq!(load().connections, 3);
}

#[test]
fn graceful_shutdown_finishes_in_flight_and_closes_idle() {
    let backend = HttpBackend::start("r1");
    let control = control();
    add_service(&control, "web", "phttp", ServiceSpec::default());
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    let mut engine = run(control);
    let addr = engine.addr("web");
    let mut idle = Client::connect(addr);
    assert_eq!(idle.get("/warm").unwrap().status, 200);
    let mut busy = Client::connect(addr);
    busy.send(b"GET /slow/300 HTTP/1.1\r\nHost: t\r\n\r\n");
    eventually("the slow request reached the backend", || {
        backend.heads().len() == 2
    });
    let handle = engine.take();
    handle.shutdown(Duration::from_secs(5));
    let r = busy.read_response(false).unwrap();
    assert_eq!(r.status, 200, "the in-flight request finished");
    assert!(
        idle.read_to_close().unwrap().is_empty(),
        "the idle connection was closed"
    );
    handle.wait().unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
}

#[test]
fn unload_setting_drains_and_wait_returns() {
    let control = control();
    add_service(&control, "web", "phttp", ServiceSpec::default());
    start(&control, "web");
    let mut engine = run(control.clone());
    let handle = engine.take();
    set(&control, "unload", "1");
    handle.wait().unwrap();
}

#[test]
fn stopping_and_starting_a_service_closes_and_reopens_its_listener() {
    let backend = HttpBackend::start("r1");
    let control = control();
    add_service(&control, "web", "phttp", ServiceSpec::default());
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    let engine = run(control.clone());
    assert!(engine.handle().local_addr("web").is_some());
    control
        .execute(Command::Stop {
            service: Some("web".into()),
        })
        .unwrap();
    assert!(engine.handle().local_addr("web").is_none());
    start(&control, "web");
    let mut c = Client::connect(engine.addr("web"));
    assert_eq!(c.get("/").unwrap().status, 200);
}

#[test]
fn a_thousand_configuration_changes_under_load_fail_no_request() {
    let backends = [
        HttpBackend::start("r1"),
        HttpBackend::start("r2"),
        HttpBackend::start("r3"),
    ];
    let control = control();
    add_service(&control, "web", "phttp", ServiceSpec::default());
    add_server(&control, "web", backends[0].addr());
    add_server(&control, "web", backends[1].addr());
    start(&control, "web");
    let engine = run(control.clone());
    let addr = engine.addr("web");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let stop = Arc::clone(&stop);
            let ok = Arc::clone(&ok);
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = Client::connect(addr);
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let r = c
                        .get(&format!("/c{i}/{n}"))
                        .map_err(|e| format!("client {i} request {n}: {e}"))?;
                    if r.status != 200 {
                        return Err(format!("client {i} request {n}: status {}", r.status));
                    }
                    ok.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
                Ok(())
            })
        })
        .collect();
    let r3 = ep(backends[2].addr());
    for i in 0..1000u32 {
        let cmd = match i % 4 {
            0 => Command::AddServer {
                service: "web".into(),
                server: r3.clone(),
                weight: Some(1),
            },
            1 => Command::EditServer {
                service: "web".into(),
                server: ep(backends[0].addr()),
                weight: Some(1 + i % 5),
            },
            2 => Command::DeleteServer {
                service: "web".into(),
                server: r3.clone(),
            },
            _ => Command::EditServer {
                service: "web".into(),
                server: ep(backends[1].addr()),
                weight: Some(1 + i % 3),
            },
        };
        control.execute(cmd).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap().unwrap();
    }
    assert!(ok.load(Ordering::SeqCst) > 0);
}

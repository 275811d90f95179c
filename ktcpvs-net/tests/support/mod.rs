//! Shared test support: test schedulers written against the core traits,
//! a real threaded HTTP/1.1 backend, a raw TCP backend, an HTTP/2 client
//! whose frames are built by hand (`h2frames`), and helpers that build a
//! `Control`, add a service on 127.0.0.1:0 and start the engine.
#![allow(dead_code)]

pub mod backend;
pub mod client;
pub mod h2frames;
pub mod schedulers;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ktcpvs_core::control::{Command, Control, ServiceSpec};
use ktcpvs_core::Endpoint;
use ktcpvs_net::{Engine, EngineHandle};

/// A control handle with the test schedulers registered.
pub fn control() -> Control {
    Control::new(Arc::new(schedulers::registry()))
}

/// An endpoint for `addr`.
pub fn ep(addr: SocketAddr) -> Endpoint {
    Endpoint {
        host: addr.ip().to_string(),
        port: Some(addr.port()),
    }
}

/// Adds service `name` with `scheduler`, listening on 127.0.0.1:0.
pub fn add_service(control: &Control, name: &str, scheduler: &str, spec: ServiceSpec) {
    control
        .execute(Command::AddService {
            name: name.into(),
            spec: ServiceSpec {
                listen: Some(Endpoint {
                    host: "127.0.0.1".into(),
                    port: Some(0),
                }),
                scheduler: Some(scheduler.into()),
                ..spec
            },
        })
        .unwrap();
}

/// Adds a real server with weight 1.
pub fn add_server(control: &Control, service: &str, addr: SocketAddr) {
    control
        .execute(Command::AddServer {
            service: service.into(),
            server: ep(addr),
            weight: Some(1),
        })
        .unwrap();
}

/// Adds a rule routing `pattern` to `addr`.
pub fn add_rule(control: &Control, service: &str, pattern: &str, addr: SocketAddr) {
    control
        .execute(Command::AddRule {
            service: service.into(),
            pattern: pattern.into(),
            match_group: None,
            server: ep(addr),
        })
        .unwrap();
}

/// Sets a runtime setting.
pub fn set(control: &Control, name: &str, value: &str) {
    control
        .execute(Command::Set {
            name: name.into(),
            value: value.into(),
        })
        .unwrap();
}

/// Starts service `name`.
pub fn start(control: &Control, name: &str) {
    control
        .execute(Command::Start {
            service: Some(name.into()),
        })
        .unwrap();
}

/// A running engine that is shut down and joined when dropped.
pub struct Running {
    pub control: Control,
    handle: Option<EngineHandle>,
}

impl Running {
    /// The bound address of `service`.
    pub fn addr(&self, service: &str) -> SocketAddr {
        self.handle
            .as_ref()
            .unwrap()
            .local_addr(service)
            .expect("service is listening")
    }

    /// The engine handle.
    pub fn handle(&self) -> &EngineHandle {
        self.handle.as_ref().unwrap()
    }

    /// Takes the handle out (the caller stops the engine).
    pub fn take(&mut self) -> EngineHandle {
        self.handle.take().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown(Duration::from_millis(200));
            let _ = h.wait();
        }
    }
}

/// Starts an engine with two workers over `control`.
pub fn run(control: Control) -> Running {
    run_workers(control, 2)
}

/// Starts an engine with `workers` workers over `control` (one, where a
/// test counts what a worker's own pools hold).
pub fn run_workers(control: Control, workers: usize) -> Running {
    let handle = Engine::builder(control.clone())
        .workers(workers)
        .start()
        .unwrap();
    Running {
        control,
        handle: Some(handle),
    }
}

/// Service "web" with `scheduler`, whose every request goes to `backend`
/// (its one server, a `.*` rule), with the runtime `settings` applied
/// first; running.
pub fn one_server_with(scheduler: &str, backend: SocketAddr, settings: &[(&str, &str)]) -> Running {
    let control = control();
    for (name, value) in settings {
        set(&control, name, value);
    }
    add_service(&control, "web", scheduler, ServiceSpec::default());
    add_server(&control, "web", backend);
    add_rule(&control, "web", ".*", backend);
    start(&control, "web");
    run(control)
}

/// A port on 127.0.0.1 where nothing listens (connects are refused): a
/// socket bound there that never listens, kept open for the rest of the
/// test process so that no test running beside it can take the port (a
/// listener bound and closed again would free it for anyone).
pub fn refused_addr() -> SocketAddr {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind 127.0.0.1:0");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("a bound address");
    // Kept open until the test process exits.
    std::mem::forget(socket);
    addr
}

/// Polls `cond` every 10 ms for up to 5 s.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for: {what}");
}

/// FNV-1a over `bytes`: a checksum to compare bodies.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `n` bytes of a deterministic pattern.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
        .collect()
}

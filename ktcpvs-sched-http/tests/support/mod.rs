//! Small test implementations of the core views ([`VirtualService`] and
//! [`RealServer`]) shared by this crate's integration tests, benchmarks
//! and allocation test. Load, weight and health live in atomics so a test
//! can change them through a shared reference, as the engine does.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ktcpvs_core::scheduler::{Header, PickRequest, RequestHead, Selection};
use ktcpvs_core::view::{RealServer, Rule, VirtualService};

/// A real server whose weight, load and health a test can change.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub weight: AtomicU32,
    pub active: AtomicU64,
    pub healthy: AtomicBool,
}

impl TestServer {
    pub fn new(addr: SocketAddr, weight: u32, active: u64) -> Self {
        TestServer {
            addr,
            weight: AtomicU32::new(weight),
            active: AtomicU64::new(active),
            healthy: AtomicBool::new(true),
        }
    }
}

impl RealServer for TestServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }
    fn active_connections(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// A virtual service made of [`TestServer`]s, rules and options.
#[derive(Debug, Default)]
pub struct TestService {
    pub name: String,
    pub servers: Vec<TestServer>,
    pub rules: Vec<Rule>,
    pub options: Vec<(String, String)>,
}

impl TestService {
    /// A service named `web` with one server per `(weight, active)` pair,
    /// at 10.0.0.1:80, 10.0.0.2:80 …
    pub fn with_servers(servers: &[(u32, u64)]) -> Self {
        TestService {
            name: "web".to_string(),
            servers: servers
                .iter()
                .enumerate()
                .map(|(i, &(w, a))| TestServer::new(addr(i), w, a))
                .collect(),
            ..TestService::default()
        }
    }

    pub fn set_weight(&self, index: usize, weight: u32) {
        self.servers[index].weight.store(weight, Ordering::Relaxed);
    }

    pub fn set_healthy(&self, index: usize, healthy: bool) {
        self.servers[index]
            .healthy
            .store(healthy, Ordering::Relaxed);
    }

    pub fn set_active(&self, index: usize, active: u64) {
        self.servers[index].active.store(active, Ordering::Relaxed);
    }

    pub fn active(&self, index: usize) -> u64 {
        self.servers[index].active.load(Ordering::Relaxed)
    }

    pub fn add_connection(&self, index: usize) {
        self.servers[index].active.fetch_add(1, Ordering::Relaxed);
    }
}

/// The address of the `i`-th test server: 10.0.(i / 250).(i % 250 + 1):80.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 80))
}

impl VirtualService for TestService {
    fn name(&self) -> &str {
        &self.name
    }
    fn server_count(&self) -> usize {
        self.servers.len()
    }
    fn server(&self, index: usize) -> &dyn RealServer {
        &self.servers[index]
    }
    fn rules(&self) -> &[Rule] {
        &self.rules
    }
    fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A layer-4 pick request from a fixed client.
pub fn l4_request(exclude: &[usize]) -> PickRequest<'_> {
    PickRequest {
        client: SocketAddr::from(([192, 0, 2, 7], 40000)),
        head: None,
        exclude,
    }
}

/// The picked server index, if any.
pub fn server_of(selection: Option<Selection>) -> Option<usize> {
    selection.map(|s| s.server)
}

impl TestService {
    /// Adds a rule (panics on a bad pattern: tests only).
    pub fn rule(mut self, pattern: &str, match_group: Option<u32>, servers: &[usize]) -> Self {
        self.rules
            .push(Rule::new(pattern, match_group, servers.to_vec()).expect("valid test rule"));
        self
    }

    /// Sets a scheduler option.
    pub fn option(mut self, name: &str, value: &str) -> Self {
        self.options.push((name.to_string(), value.to_string()));
        self
    }
}

/// A `GET target` request head with the given header fields.
pub fn head<'a>(target: &'a str, headers: &'a [Header<'a>]) -> RequestHead<'a> {
    RequestHead {
        method: "GET",
        target,
        version: 1,
        headers,
    }
}

/// A pick request for `head`, excluding `exclude`.
pub fn request<'a>(head: &'a RequestHead<'a>, exclude: &'a [usize]) -> PickRequest<'a> {
    PickRequest {
        client: SocketAddr::from(([192, 0, 2, 7], 40000)),
        head: Some(head),
        exclude,
    }
}

//! Test support for scheduler authors: small in-memory implementations of
//! [`VirtualService`] and [`RealServer`], and a conformance check every
//! scheduler should pass.
//!
//! A plug-in crate uses these in its own tests, exactly as the reference
//! schedulers could, without an engine or a socket:
//!
//! ```
//! use ktcpvs_core::testkit::{conformance, TestService};
//! # use ktcpvs_core::*;
//! # struct First;
//! # struct FirstPicker;
//! # impl Picker for FirstPicker {
//! #     fn pick(&self, s: &dyn VirtualService, r: &PickRequest<'_>) -> Option<Selection> {
//! #         (0..s.server_count()).find(|&i| s.server(i).is_available() && !r.is_excluded(i)).map(Selection::server)
//! #     }
//! # }
//! # impl Scheduler for First {
//! #     fn name(&self) -> &str { "first" }
//! #     fn dispatch(&self) -> Dispatch { Dispatch::Connection }
//! #     fn build(&self, _: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> { Ok(Box::new(FirstPicker)) }
//! # }
//! let service = TestService::new("web").server("10.0.0.1:80", 1).server("10.0.0.2:80", 0);
//! let picker = First.build(&service).unwrap();
//! let pick = picker.pick(&service, &TestService::request(None, &[])).unwrap();
//! assert_eq!(pick.server, 0);
//! conformance::check(&First).unwrap();
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::scheduler::{PickRequest, RequestHead};
use crate::view::{RealServer, Rule, VirtualService};

/// An in-memory real server whose load and health a test sets directly.
#[derive(Debug)]
pub struct TestServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its weight, as the scheduler will read it.
    pub weight: AtomicU32,
    /// Active connections, as the scheduler will read them.
    pub active: AtomicU64,
    /// Health, as the scheduler will read it.
    pub healthy: AtomicBool,
    /// Response time in microseconds (0: unknown), as the scheduler will
    /// read it.
    pub response_us: AtomicU64,
}

impl TestServer {
    /// A healthy server with `weight` and `active` connections.
    pub fn new(addr: SocketAddr, weight: u32, active: u64) -> Self {
        TestServer {
            addr,
            weight: AtomicU32::new(weight),
            active: AtomicU64::new(active),
            healthy: AtomicBool::new(true),
            response_us: AtomicU64::new(0),
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
    fn response_time(&self) -> Option<std::time::Duration> {
        match self.response_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(std::time::Duration::from_micros(us)),
        }
    }
}

/// An in-memory virtual service built with a fluent API.
#[derive(Debug, Default)]
pub struct TestService {
    /// Its name.
    pub name: String,
    /// Its servers, by index.
    pub servers: Vec<TestServer>,
    /// Its rules, in evaluation order.
    pub rules: Vec<Rule>,
    /// Its scheduler options.
    pub options: BTreeMap<String, String>,
    /// Whether clients reach it over TLS.
    pub tls: bool,
}

impl TestService {
    /// An empty service.
    pub fn new(name: &str) -> Self {
        TestService {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Adds a healthy server with no load.
    ///
    /// # Panics
    /// Panics when `addr` is not a socket address (test input).
    pub fn server(mut self, addr: &str, weight: u32) -> Self {
        let addr = addr.parse().expect("test server address");
        self.servers.push(TestServer::new(addr, weight, 0));
        self
    }

    /// A service named `web` with one server per `(weight, active)` pair,
    /// at [`addr(0)`](addr), [`addr(1)`](addr) …
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

    /// Adds a rule routing to the servers at `servers` (indices).
    ///
    /// # Panics
    /// Panics when the pattern does not compile (test input).
    pub fn rule(mut self, pattern: &str, match_group: Option<u32>, servers: &[usize]) -> Self {
        self.rules
            .push(Rule::new(pattern, match_group, servers.to_vec()).expect("test rule"));
        self
    }

    /// Makes it a service clients reach over TLS.
    pub fn over_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Sets a scheduler option.
    pub fn option(mut self, name: &str, value: &str) -> Self {
        self.options.insert(name.to_string(), value.to_string());
        self
    }

    /// Sets the response time of server `index` (`None`: unknown).
    ///
    /// # Panics
    /// Panics when `index` is out of range (test input).
    pub fn set_response_time(&self, index: usize, time: Option<std::time::Duration>) {
        let us = time.map_or(0, |t| {
            u64::try_from(t.as_micros()).unwrap_or(u64::MAX).max(1)
        });
        self.servers[index].response_us.store(us, Ordering::Relaxed);
    }

    /// Sets the active-connection count of server `index`.
    pub fn set_active(&self, index: usize, active: u64) {
        self.servers[index].active.store(active, Ordering::Relaxed);
    }

    /// The active-connection count of server `index`.
    pub fn active(&self, index: usize) -> u64 {
        self.servers[index].active.load(Ordering::Relaxed)
    }

    /// Counts one more connection on server `index` (as a lease would).
    pub fn add_connection(&self, index: usize) {
        self.servers[index].active.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes the weight of server `index` (as a reweight would).
    pub fn set_weight(&self, index: usize, weight: u32) {
        self.servers[index].weight.store(weight, Ordering::Relaxed);
    }

    /// Marks server `index` healthy or not.
    pub fn set_healthy(&self, index: usize, healthy: bool) {
        self.servers[index]
            .healthy
            .store(healthy, Ordering::Relaxed);
    }

    /// A pick request from 192.0.2.1:40000 for `head`, excluding `exclude`.
    pub fn request<'a>(head: Option<&'a RequestHead<'a>>, exclude: &'a [usize]) -> PickRequest<'a> {
        PickRequest {
            client: SocketAddr::from(([192, 0, 2, 1], 40000)),
            head,
            exclude,
            server_name: None,
        }
    }
}

/// The address of the `i`-th server of [`TestService::with_servers`]:
/// `10.0.(i / 250).(i % 250 + 1):80`.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 80))
}

/// A `GET` request head for `target` with `headers`.
pub fn head<'a>(target: &'a str, headers: &'a [crate::scheduler::Header<'a>]) -> RequestHead<'a> {
    RequestHead {
        method: "GET",
        target,
        host: None,
        version: 1,
        headers,
    }
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
        self.options.get(name).map(String::as_str)
    }
    fn is_tls(&self) -> bool {
        self.tls
    }
}

/// A global allocator that counts, per thread, the allocations made while
/// counting is on: the proof that a picker (or any hot path) allocates
/// nothing. Declare it in a test binary and measure with
/// [`allocations_during`]:
///
/// ```
/// use ktcpvs_core::testkit::{allocations_during, CountingAllocator};
///
/// #[global_allocator]
/// static GLOBAL: CountingAllocator = CountingAllocator;
///
/// fn main() {
///     assert_eq!(allocations_during(|| { let _ = 1 + 1; }), 0);
///     assert!(allocations_during(|| drop(vec![1u8; 64])) >= 1);
/// }
/// ```
///
/// Counters are per thread, so tests running in parallel do not disturb
/// each other.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

thread_local! {
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: thread-locals may already be gone while a thread exits.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards to the system allocator unchanged; the
// counting touches only const-initialised thread-locals, which never
// allocate.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        note_allocation();
        std::alloc::System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        note_allocation();
        std::alloc::System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        std::alloc::System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }
}

/// Runs `f` and returns how many allocations this thread made meanwhile.
/// Only meaningful when [`CountingAllocator`] is the global allocator.
pub fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|n| n.get())
}

/// The rules every scheduler must keep, checked on small services.
pub mod conformance {
    use super::{head, TestService};
    use crate::scheduler::{Header, Scheduler};
    use crate::view::VirtualService;

    /// Checks that `scheduler`:
    /// * returns no server for a service without servers (and does not panic);
    /// * never picks a quiesced (weight 0) or unhealthy server;
    /// * never picks an excluded server, and returns `None` when every
    ///   server is excluded;
    /// * returns indices in range.
    ///
    /// Services are built with a catch-all rule over every server so that
    /// rule-based schedulers have something to match. Returns a description
    /// of the first violation.
    pub fn check(scheduler: &dyn Scheduler) -> Result<(), String> {
        let name = scheduler.name().to_string();
        let headers = [Header {
            name: "Host",
            value: b"example",
        }];
        let h = head("/users/alice/index.html", &headers);
        let empty = TestService::new("empty").rule(".*", Some(0), &[]);
        if let Ok(picker) = scheduler.build(&empty) {
            if let Some(s) = picker.pick(&empty, &TestService::request(Some(&h), &[])) {
                return Err(format!(
                    "{name}: picked server {} of an empty service",
                    s.server
                ));
            }
        }
        let service = TestService::new("conf")
            .server("10.0.0.1:80", 1)
            .server("10.0.0.2:80", 0)
            .server("10.0.0.3:80", 3)
            .server("10.0.0.4:80", 2)
            .rule("^/users/([^/]+)/", Some(1), &[0, 1, 2, 3])
            .rule(".*", Some(0), &[0, 1, 2, 3]);
        service.set_healthy(3, false);
        let picker = scheduler
            .build(&service)
            .map_err(|e| format!("{name}: refused a plain service: {e}"))?;
        for round in 0..64u64 {
            service.set_active(0, round % 5);
            service.set_active(2, round % 7);
            for exclude in [&[][..], &[0][..], &[2][..]] {
                let req = TestService::request(Some(&h), exclude);
                if let Some(s) = picker.pick(&service, &req) {
                    if s.server >= service.server_count() {
                        return Err(format!("{name}: index {} out of range", s.server));
                    }
                    if s.server == 1 {
                        return Err(format!("{name}: picked a quiesced server"));
                    }
                    if s.server == 3 {
                        return Err(format!("{name}: picked an unhealthy server"));
                    }
                    if exclude.contains(&s.server) {
                        return Err(format!("{name}: picked excluded server {}", s.server));
                    }
                }
            }
        }
        let req = TestService::request(Some(&h), &[0, 1, 2, 3]);
        if let Some(s) = picker.pick(&service, &req) {
            return Err(format!(
                "{name}: picked {} with every server excluded",
                s.server
            ));
        }
        Ok(())
    }
}

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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::scheduler::{PickRequest, RequestHead};
use crate::view::{RealServer, Rule, VirtualService};

/// An in-memory real server whose load and health a test sets directly.
#[derive(Debug)]
pub struct TestServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its weight.
    pub weight: u32,
    /// Active connections, as the scheduler will read them.
    pub active: AtomicU64,
    /// Health, as the scheduler will read it.
    pub healthy: AtomicBool,
}

impl RealServer for TestServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn weight(&self) -> u32 {
        self.weight
    }
    fn active_connections(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
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
        self.servers.push(TestServer {
            addr,
            weight,
            active: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
        });
        self
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

    /// Sets a scheduler option.
    pub fn option(mut self, name: &str, value: &str) -> Self {
        self.options.insert(name.to_string(), value.to_string());
        self
    }

    /// Sets the active-connection count of server `index`.
    pub fn set_active(&self, index: usize, active: u64) {
        self.servers[index].active.store(active, Ordering::Relaxed);
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
        }
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
}

/// The rules every scheduler must keep, checked on small services.
pub mod conformance {
    use super::TestService;
    use crate::scheduler::{Header, RequestHead, Scheduler};
    use crate::view::VirtualService;

    fn head<'a>(target: &'a str, headers: &'a [Header<'a>]) -> RequestHead<'a> {
        RequestHead {
            method: "GET",
            target,
            version: 1,
            headers,
        }
    }

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

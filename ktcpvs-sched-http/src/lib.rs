//! # ktcpvs-sched-http
//!
//! The content-aware reference schedulers of ktcpvs, written against the
//! public plug-in contract of [`ktcpvs_core`] only, as a third-party
//! scheduler would be:
//!
//! | name | type | decides | how |
//! |---|---|---|---|
//! | `http` | [`Http`] | once per connection | first matching rule, then weighted least-connection |
//! | `phttp` | [`Phttp`] | per request | the same, for every request of a keep-alive connection |
//! | `hhttp` | [`Hhttp`] | once per connection | a capture group of the first matching rule, weighted rendezvous hashing |
//! | `chttp` | [`Chttp`] | per request | a keyed-hash persistence cookie, else rules and least-connection |
//!
//! [`register`] adds all four to a [`SchedulerRegistry`] so that services
//! (`tcpvsadm -s NAME`) find them.
//!
//! ```
//! use ktcpvs_core::scheduler::{Header, PickRequest, RequestHead, SchedulerRegistry};
//! use ktcpvs_core::view::{RealServer, Rule, VirtualService};
//!
//! struct Server(u16, u64);
//! impl RealServer for Server {
//!     fn addr(&self) -> std::net::SocketAddr { ([10, 0, 0, 1], self.0).into() }
//!     fn weight(&self) -> u32 { 1 }
//!     fn active_connections(&self) -> u64 { self.1 }
//!     fn is_healthy(&self) -> bool { true }
//! }
//! struct Service(Vec<Server>, Vec<Rule>);
//! impl VirtualService for Service {
//!     fn name(&self) -> &str { "web" }
//!     fn server_count(&self) -> usize { self.0.len() }
//!     fn server(&self, index: usize) -> &dyn RealServer { &self.0[index] }
//!     fn rules(&self) -> &[Rule] { &self.1 }
//!     fn option(&self, _name: &str) -> Option<&str> { None }
//! }
//!
//! let registry = SchedulerRegistry::new();
//! ktcpvs_sched_http::register(&registry)?;
//! let service = Service(
//!     vec![Server(8001, 0), Server(8002, 5), Server(8003, 2)],
//!     vec![Rule::new("^/images/", None, vec![0])?, Rule::new(".*", None, vec![1, 2])?],
//! );
//! let picker = registry.get("http")?.build(&service)?;
//!
//! let head = RequestHead { method: "GET", target: "/index.html", host: None, version: 1, headers: &[] };
//! let request = PickRequest { client: ([192, 0, 2, 1], 4000).into(), head: Some(&head), exclude: &[], server_name: None };
//! // The catch-all matches; of its servers, the third is less loaded.
//! let selection = picker.pick(&service, &request).map(|s| (s.server, s.rule));
//! assert_eq!(selection, Some((2, Some(1))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod balance;
mod cookie;
mod hash;
mod http;
mod lrt;
mod p2c;
mod rr;
mod rules;

use std::sync::Arc;

use ktcpvs_core::error::ControlError;
use ktcpvs_core::scheduler::SchedulerRegistry;

pub use cookie::{
    cookie_value, default_key, Chttp, ChttpPicker, CookieInsert, COOKIE_ATTRIBUTES,
    COOKIE_VALUE_LEN, DEFAULT_COOKIE_NAME, OPTION_COOKIE_INSERT, OPTION_COOKIE_KEY,
    OPTION_COOKIE_NAME, SECURE_ATTRIBUTE,
};
pub use hash::{rendezvous, server_seed, Hhttp, HhttpPicker, OPTION_HASH_BALANCE_FACTOR};
pub use http::{Http, Phttp, RulesPicker};
pub use lrt::{Lrt, LrtPicker};
pub use p2c::{P2c, P2cPicker};
pub use rr::{smooth_order, RoundRobinPicker, Rr, Wrr, MAX_SEQUENCE};

/// Registers `http`, `phttp`, `hhttp`, `chttp`, `rr`, `wrr`, `p2c` and
/// `lrt` in `registry`.
///
/// # Errors
/// Fails, at the first clash, when a scheduler of one of these names is
/// already registered; the ones before it stay registered.
pub fn register(registry: &SchedulerRegistry) -> Result<(), ControlError> {
    registry.register(Arc::new(Http))?;
    registry.register(Arc::new(Phttp))?;
    registry.register(Arc::new(Hhttp))?;
    registry.register(Arc::new(Chttp))?;
    registry.register(Arc::new(Rr))?;
    registry.register(Arc::new(Wrr))?;
    registry.register(Arc::new(P2c))?;
    registry.register(Arc::new(Lrt))
}

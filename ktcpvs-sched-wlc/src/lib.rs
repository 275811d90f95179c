//! # ktcpvs-sched-wlc
//!
//! The `wlc` (weighted least-connection) reference scheduler of ktcpvs,
//! written against the public plug-in contract of [`ktcpvs_core`] only, as
//! a third-party scheduler would be.
//!
//! `wlc` is a layer-4 scheduler ([`Dispatch::Connection`]): it reads nothing
//! of the stream, ignores the service's rules and picks, among all of the
//! service's available servers, the one with the lowest
//! active-connections / weight. See [`Wlc`] for the exact rules (quiesced
//! and unhealthy servers, ties, retries).
//!
//! ```
//! use ktcpvs_core::scheduler::{PickRequest, SchedulerRegistry};
//! use ktcpvs_core::view::{RealServer, Rule, VirtualService};
//!
//! struct Server(u32, u64);
//! impl RealServer for Server {
//!     fn addr(&self) -> std::net::SocketAddr { ([127, 0, 0, 1], 80).into() }
//!     fn weight(&self) -> u32 { self.0 }
//!     fn active_connections(&self) -> u64 { self.1 }
//!     fn is_healthy(&self) -> bool { true }
//! }
//! struct Service(Vec<Server>);
//! impl VirtualService for Service {
//!     fn name(&self) -> &str { "web" }
//!     fn server_count(&self) -> usize { self.0.len() }
//!     fn server(&self, index: usize) -> &dyn RealServer { &self.0[index] }
//!     fn rules(&self) -> &[Rule] { &[] }
//!     fn option(&self, _name: &str) -> Option<&str> { None }
//! }
//!
//! let registry = SchedulerRegistry::new();
//! ktcpvs_sched_wlc::register(&registry)?;
//! let wlc = registry.get("wlc")?;
//!
//! // 6/3 = 2 against 3/1 = 3: the first server is less loaded.
//! let service = Service(vec![Server(3, 6), Server(1, 3)]);
//! let picker = wlc.build(&service)?;
//! let request = PickRequest { client: ([192, 0, 2, 1], 4000).into(), head: None, exclude: &[], server_name: None };
//! let selection = picker.pick(&service, &request).map(|s| s.server);
//! assert_eq!(selection, Some(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod wlc;

use std::sync::Arc;

use ktcpvs_core::error::ControlError;
use ktcpvs_core::scheduler::SchedulerRegistry;

pub use wlc::{Wlc, WlcPicker};

#[cfg(doc)]
use ktcpvs_core::scheduler::Dispatch;

/// Registers the schedulers of this crate (`wlc`) in `registry`, so that
/// services can name them (`tcpvsadm -s wlc`).
///
/// # Errors
/// Fails when a scheduler of the same name is already registered.
pub fn register(registry: &SchedulerRegistry) -> Result<(), ControlError> {
    registry.register(Arc::new(Wlc))
}

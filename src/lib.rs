//! # ktcpvs
//!
//! A Layer-7 load balancer to embed in Rust servers: a user-space
//! re-creation of KTCPVS (Kernel TCP Virtual Server, from the Linux Virtual
//! Server project). A *virtual service* listens on an address, reads the
//! start of each request, and sends it to a *real server* chosen by its
//! *scheduler*: by content rules (`/images/.*` → r1, `/html/.*` → r2,
//! everything else → r3) and weighted least-connection balancing.
//!
//! This facade crate is what a host program depends on. It re-exports the
//! member crates and adds what a host needs around them:
//!
//! | item | what it is |
//! |---|---|
//! | [`core`] | the model, the [`Control`] handle, the configuration language |
//! | [`net`] | the relay engine that serves the published configuration |
//! | [`sched_wlc`], [`sched_http`] | the built-in schedulers |
//! | [`builtin_schedulers`] | a registry with `wlc`, `http`, `hhttp`, `phttp`, `chttp`, `rr`, `wrr`, `p2c` and `lrt` |
//! | [`control_socket`] | the control protocol, its Unix-socket server and client (what `tcpvsadm` speaks) |
//! | [`metrics`] | every figure as one snapshot, rendered for Prometheus and as JSON |
//! | [`admin`] | the admin HTTP listener: `/metrics`, `/healthz`, `/stats` |
//! | [`demo`] | name-answering HTTP servers for demonstrations and tests |
//! | [`sim`] | a scheduler simulator: replays a request trace through any scheduler, on a virtual clock |
//!
//! The example programs `ktcpvsd` (the host program, what `insmod ktcpvs`
//! was) and `tcpvsadm` (the admin tool) show the whole operator workflow.
//!
//! ## Configuring a balancer in-process
//!
//! Every change is a [`Command`] applied atomically through [`Control`];
//! the engine picks up each published snapshot without a lock on the data
//! path.
//!
//! ```
//! use ktcpvs::{builtin_schedulers, Command, Control, ServiceSpec};
//!
//! let control = Control::new(builtin_schedulers());
//! control.transaction(&[
//!     Command::AddService {
//!         name: "http".into(),
//!         spec: ServiceSpec {
//!             scheduler: Some("http".into()),
//!             listen: Some("127.0.0.1:0".parse()?),
//!             ..Default::default()
//!         },
//!     },
//!     Command::AddServer { service: "http".into(), server: "127.0.0.1:8001".parse()?, weight: None },
//!     Command::AddServer { service: "http".into(), server: "127.0.0.1:8002".parse()?, weight: None },
//!     Command::AddRule {
//!         service: "http".into(),
//!         pattern: "/images/.*".into(),
//!         match_group: None,
//!         server: "127.0.0.1:8001".parse()?,
//!     },
//!     Command::AddRule {
//!         service: "http".into(),
//!         pattern: ".*".into(),
//!         match_group: None,
//!         server: "127.0.0.1:8002".parse()?,
//!     },
//! ])?;
//! assert_eq!(control.config().service("http").unwrap().rules.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod admin;
pub mod control_socket;
pub mod demo;
pub mod discovery;
pub mod metrics;
pub mod sim;

use std::sync::Arc;

pub use ktcpvs_core as core;
pub use ktcpvs_net as net;
pub use ktcpvs_sched_http as sched_http;
pub use ktcpvs_sched_wlc as sched_wlc;

pub use ktcpvs_net::{Engine, EngineError, EngineHandle, EngineObserver};

pub use ktcpvs_core::{
    BackendTls, CertificateFiles, Command, Config, Control, ControlError, Endpoint, Scheduler,
    SchedulerRegistry, ServiceSpec, Settings, Snapshot, TlsConfig,
};

/// The names [`builtin_schedulers`] registers.
pub const BUILTIN_SCHEDULERS: &[&str] = &[
    "wlc", "http", "hhttp", "phttp", "chttp", "rr", "wrr", "p2c", "lrt",
];

/// A scheduler registry holding every built-in scheduler: `wlc` (layer 4
/// weighted least-connection), `http` (content rules on the first request),
/// `hhttp` (hash of a captured part of the request), `phttp` (per-request
/// switching over kept-alive server connections), `chttp` (cookie
/// persistence), `rr` and `wrr` (round-robin, plain and smooth weighted),
/// `p2c` (power of two random choices) and `lrt` (least response time).
///
/// ```
/// let registry = ktcpvs::builtin_schedulers();
/// for name in ktcpvs::BUILTIN_SCHEDULERS {
///     assert!(registry.get(name).is_ok(), "{name}");
/// }
/// ```
pub fn builtin_schedulers() -> Arc<SchedulerRegistry> {
    builtin_registry()
}

/// A control handle ready for a host program: every built-in scheduler
/// ([`builtin_schedulers`]) and TLS termination through rustls
/// ([`net::tls::RustlsLoader`]), so that services with certificates load.
///
/// ```
/// use ktcpvs::{Command, ServiceSpec};
/// let control = ktcpvs::new_control();
/// control.execute(Command::AddService { name: "web".into(), spec: ServiceSpec::default() })?;
/// # Ok::<(), ktcpvs::ControlError>(())
/// ```
pub fn new_control() -> Control {
    // Uptime, in the admin listener's figures, counts from here.
    metrics::started();
    let control = Control::new(builtin_schedulers());
    control.set_tls_loader(Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
    control
}

fn builtin_registry() -> Arc<SchedulerRegistry> {
    let registry = SchedulerRegistry::new();
    // Registering distinct built-in names into a fresh registry cannot
    // collide; a failure here is a bug in a scheduler crate.
    if let Err(e) = ktcpvs_sched_wlc::register(&registry) {
        panic!("built-in scheduler wlc failed to register: {e}");
    }
    if let Err(e) = ktcpvs_sched_http::register(&registry) {
        panic!("built-in HTTP schedulers failed to register: {e}");
    }
    Arc::new(registry)
}

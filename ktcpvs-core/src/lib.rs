//! # ktcpvs-core
//!
//! The model and the plug-in contract of **ktcpvs**, a user-space
//! re-creation of KTCPVS (Kernel TCP Virtual Server, from the Linux Virtual
//! Server project): a Layer-7 load balancer whose virtual services read the
//! start of each request before choosing a real server.
//!
//! This crate holds what every other part agrees on, and depends on no other
//! ktcpvs crate:
//!
//! | module | what lives there |
//! |---|---|
//! | [`model`] | virtual services, real servers and rules as validated values |
//! | [`endpoint`] | `HOST[:PORT]` addresses with service-name ports (`www`, `webcache`) |
//! | [`view`] | [`VirtualService`] and [`RealServer`], the read-only views a scheduler sees, and compiled [`Rule`]s |
//! | [`scheduler`] | the [`Scheduler`]/[`Picker`] plug-in contract and the [`SchedulerRegistry`] |
//! | [`health`] | health checks, ejection, slow start, queue and retry budget settings ([`HealthConfig`]) |
//! | [`metrics`] | latency histograms, status-class and per-rule counters in atomics |
//! | [`live`] | per-server and per-service counters and health in atomics, and the RAII [`Lease`] |
//! | [`settings`] | the runtime settings (the original's sysctls) |
//! | [`snapshot`] | the immutable [`Snapshot`] workers read through `arc-swap` |
//! | [`command`] | the control verbs ([`Command`], [`ServiceSpec`]) that files, sockets and host programs all build |
//! | [`control`] | the [`Control`] handle: every operation, atomic |
//! | [`config`] | the configuration language: parser and printer |
//! | [`tls`] | TLS on a listener: the certificate files ([`TlsConfig`]) and the [`TlsLoader`] contract a host's TLS implementation fulfils |
//! | [`testkit`] | in-memory services and a conformance check for scheduler authors |
//!
//! Scheduler authors start with `docs/plugins.md`; host programs use the
//! facade crate `ktcpvs`.

#![warn(missing_docs)]

pub mod command;
pub mod condition;
pub mod config;
pub mod control;
pub mod endpoint;
pub mod error;
pub mod health;
pub mod live;
pub mod metrics;
pub mod model;
pub mod network;
pub mod scheduler;
pub mod settings;
pub mod snapshot;
pub mod testkit;
pub mod tls;
pub mod view;

pub use command::{Command, RuleSpec, ServiceSpec};
pub use control::Control;
pub use endpoint::Endpoint;
pub use error::{AddrError, ConfigError, ConfigProblem, ControlError, Location, SchedulerError};
pub use health::HealthConfig;
pub use live::{Lease, ServerLoad, ServiceLoad};
pub use model::{Config, RuleConfig, ServerConfig, ServiceConfig, ServiceDef};
pub use scheduler::{
    Dispatch, PickRequest, Picker, RequestHead, Scheduler, SchedulerRegistry, Selection,
};
pub use settings::Settings;
pub use snapshot::{ServiceSnapshot, Snapshot};
pub use tls::{BackendTls, CertificateFiles, TlsConfig, TlsError, TlsLoader, TlsMaterial};
pub use view::{RealServer, Rule, VirtualService};

/// The scheduler author's guide (`docs/plugins.md`), compiled here so its
/// worked example is checked as a doc-test.
#[cfg(doctest)]
#[doc = include_str!("../../docs/plugins.md")]
pub struct PluginsGuide;

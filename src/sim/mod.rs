//! A scheduler simulator: replays a request trace through any scheduler,
//! against a configuration, with simulated server latencies and
//! capacities, and reports where the requests went.
//!
//! Nothing is sent anywhere. The configuration is loaded as `ktcpvsd`
//! loads it (a [`Control`] over a [`SchedulerRegistry`], so a host program
//! can register its own scheduler next to the built-in ones); each trace
//! request becomes the [`RequestHead`](ktcpvs_core::RequestHead) the
//! engine's parser makes of it and is put to the service's picker with the
//! [`PickRequest`](ktcpvs_core::PickRequest) the engine builds. The picked
//! server is leased for the simulated exchange, so least-connection and
//! `maxconn` see the load they would see live, and each simulated response
//! time feeds the peak-EWMA average `lrt` reads. Time is virtual: a
//! discrete-event loop, arrivals from the trace's own times or a Poisson
//! process, and every random draw from one ChaCha8 generator seeded with
//! [`SimOptions::seed`], so the same inputs and seed give the same report,
//! byte for byte.
//!
//! With [`SimOptions::change`] the same trace is replayed a second time
//! against the service with one server removed or added, and the report
//! says what share of the distinct keys (the `match N` capture of the rule
//! that matched, else the request target, or the client address at layer
//! 4) changed server: about 1/n or less for `hhttp`.
//!
//! ```
//! use ktcpvs::sim::{GenerateSpec, SimOptions, Simulator, Trace};
//!
//! let config = r#"
//! Virtual users {
//!     listen = 127.0.0.1:8080
//!     scheduler = hhttp
//!     server = 10.0.0.1:80 1
//!     server = 10.0.0.2:80 1
//!     rule = pattern "^/users/([^/]+)/" match 1 use server 10.0.0.1:80
//!     rule = pattern "^/users/([^/]+)/" match 1 use server 10.0.0.2:80
//! }
//! "#;
//! let sim = Simulator::new(ktcpvs::builtin_schedulers(), config, None)?;
//! let trace = Trace::generate(&GenerateSpec { requests: 1000, keys: 100, ..Default::default() })?;
//! let report = sim.run(&trace, &SimOptions::default())?;
//! assert_eq!(report.servers.iter().map(|s| s.requests).sum::<u64>(), 1000);
//! println!("{}", report.to_text());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Limits: each trace line is one scheduling decision (the trace does not
//! say which requests shared a client connection); servers never fail, so
//! health checks and ejection play no part; slow start, which runs on the
//! process's clock, is not simulated.

mod engine;
mod latency;
mod report;
mod trace;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::{Command, Control, ControlError, Endpoint, SchedulerRegistry};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use latency::{parse_duration, Latency};
pub use report::{ChangeReport, LatencySummary, Refused, Report, RuleReport, ServerReport};
pub use trace::{
    GenerateSpec, HttpRequest, Trace, TraceError, TraceFormat, TraceRequest, DEFAULT_HOST,
};

/// Requests per second of the Poisson arrivals when neither the trace's
/// times nor [`SimOptions::rate`] give them.
pub const DEFAULT_RATE: f64 = 1000.0;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration was refused (the message names file and line).
    #[error("{0}")]
    Config(#[from] ControlError),
    /// The trace could not be read.
    #[error("{0}")]
    Trace(#[from] TraceError),
    /// No service of that name, or several and none chosen.
    #[error("{0}")]
    Service(String),
    /// A `--remove`/`--add` change does not fit the service.
    #[error("cannot {what}: {reason}")]
    Change {
        /// The change.
        what: String,
        /// Why not.
        reason: String,
    },
    /// A trace request the engine would refuse (with the default host).
    #[error("trace line {line}: {reason}")]
    Request {
        /// Its line.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// A change to the server set, replayed after the unchanged run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Remove this server (and its rule entries).
    Remove(SocketAddr),
    /// Add this server with this weight, to every rule of the service.
    Add(SocketAddr, u32),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Remove(addr) => write!(f, "remove {addr}"),
            Change::Add(addr, weight) => write!(f, "add {addr} weight {weight}"),
        }
    }
}

/// How to run a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// Seeds every random draw (arrivals, latencies, client addresses).
    pub seed: u64,
    /// The service to replay into; `None`: the configuration's only one.
    pub service: Option<String>,
    /// Poisson arrivals at this many requests per second; `None`: the
    /// trace's own times when every line has one, else [`DEFAULT_RATE`].
    pub rate: Option<f64>,
    /// Latency of servers not in [`latency`](Self::latency).
    pub default_latency: Latency,
    /// Latency per server.
    pub latency: BTreeMap<SocketAddr, Latency>,
    /// Requests a server works on at once (absent or 0: no limit); more
    /// wait in that server's own backlog, first come first served, holding
    /// their lease meanwhile.
    pub capacity: BTreeMap<SocketAddr, u32>,
    /// The `Host` of HTTP/1.1 requests whose trace line names none.
    pub host: String,
    /// A server to remove or add for the remap measure.
    pub change: Option<Change>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 1,
            service: None,
            rate: None,
            default_latency: Latency::default(),
            latency: BTreeMap::new(),
            capacity: BTreeMap::new(),
            host: DEFAULT_HOST.to_string(),
            change: None,
        }
    }
}

impl SimOptions {
    /// The latency of the server at `addr`.
    pub fn latency_of(&self, addr: SocketAddr) -> Latency {
        self.latency
            .get(&addr)
            .copied()
            .unwrap_or(self.default_latency)
    }

    /// The generator of one independent stream of draws.
    fn rng_stream(&self, stream: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream);
        rng
    }

    /// The generator of arrivals and latencies.
    fn rng(&self) -> ChaCha8Rng {
        self.rng_stream(0)
    }
}

/// A configuration ready to replay traces through, with the schedulers of
/// a registry.
#[derive(Debug)]
pub struct Simulator {
    registry: Arc<SchedulerRegistry>,
    text: String,
    path: Option<PathBuf>,
}

impl Simulator {
    /// A simulator over the configuration `text` (from `path`, named in
    /// errors), checked by loading it once.
    pub fn new(
        registry: Arc<SchedulerRegistry>,
        text: &str,
        path: Option<&Path>,
    ) -> Result<Simulator, SimError> {
        let sim = Simulator {
            registry,
            text: text.to_string(),
            path: path.map(Path::to_path_buf),
        };
        sim.control()?;
        Ok(sim)
    }

    /// A simulator over the configuration file at `path`.
    pub fn from_file(registry: Arc<SchedulerRegistry>, path: &Path) -> Result<Simulator, SimError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SimError::Config(ControlError::Config(ktcpvs_core::ConfigError {
                location: ktcpvs_core::Location {
                    file: Some(path.to_path_buf()),
                    line: 0,
                    column: 0,
                },
                message: format!("config file {} opening error: {e}", path.display()),
                problem: ktcpvs_core::ConfigProblem::Unreadable,
            }))
        })?;
        Simulator::new(registry, &text, Some(path))
    }

    /// A fresh control handle (fresh live state) with the configuration
    /// loaded, as `ktcpvsd` loads it.
    fn control(&self) -> Result<Control, SimError> {
        let control = Control::new(Arc::clone(&self.registry));
        control.set_tls_loader(Arc::new(ktcpvs_net::tls::RustlsLoader::new()));
        control.load_config(&self.text, self.path.as_deref())?;
        Ok(control)
    }

    /// Replays `trace` and reports; with a [`Change`], replays it again
    /// against the changed server set and reports the keys that moved.
    pub fn run(&self, trace: &Trace, options: &SimOptions) -> Result<Report, SimError> {
        let control = self.control()?;
        let snapshot = control.snapshot();
        let service = choose_service(&snapshot, options.service.as_deref())?;
        let clients = clients(trace, options);
        let base = engine::replay(service, trace, &clients, options)?;
        let mut report = Report::of(service, trace, options, &base);
        if let Some(change) = options.change {
            let changed = self.control()?;
            apply(&changed, service, change)?;
            let after_snapshot = changed.snapshot();
            let after = choose_service(&after_snapshot, Some(&service.config().name))?;
            let replayed = engine::replay(after, trace, &clients, options)?;
            let keys = report::keys(service, trace, &clients, &options.host)?;
            report.change = Some(ChangeReport::of(
                change, service, &base, after, &replayed, &keys, trace,
            ));
        }
        Ok(report)
    }
}

/// The service named `name`, or the only one.
fn choose_service<'s>(
    snapshot: &'s ktcpvs_core::Snapshot,
    name: Option<&str>,
) -> Result<&'s ServiceSnapshot, SimError> {
    let names: Vec<&str> = snapshot
        .services()
        .iter()
        .map(|s| s.config().name.as_str())
        .collect();
    match (name, snapshot.services()) {
        (Some(name), _) => snapshot.service(name).map(|s| &**s).ok_or_else(|| {
            SimError::Service(format!(
                "no service {name:?} in the configuration (it has: {})",
                names.join(", ")
            ))
        }),
        (None, [only]) => Ok(only),
        (None, []) => Err(SimError::Service(
            "the configuration has no service".to_string(),
        )),
        (None, _) => Err(SimError::Service(format!(
            "the configuration has several services ({}): name one",
            names.join(", ")
        ))),
    }
}

/// The client of each request: the trace's, else drawn from the seeded
/// generator (10.x.y.z with a port).
fn clients(trace: &Trace, options: &SimOptions) -> Vec<SocketAddr> {
    use rand::Rng;
    let mut rng = options.rng_stream(1);
    trace
        .requests
        .iter()
        .map(|r| {
            r.client.unwrap_or_else(|| {
                let ip = std::net::Ipv4Addr::from(0x0a00_0000 | rng.gen_range(1..0x00ff_ffff_u32));
                SocketAddr::new(ip.into(), rng.gen_range(1024..=65535))
            })
        })
        .collect()
}

/// Applies `change` to `service` in `control`: a removed server leaves
/// every rule first; an added one joins every rule.
fn apply(control: &Control, service: &ServiceSnapshot, change: Change) -> Result<(), SimError> {
    let name = service.config().name.clone();
    let def = service.def();
    let refuse = |reason: String| SimError::Change {
        what: change.to_string(),
        reason,
    };
    let known = |addr: SocketAddr| def.servers.iter().any(|s| s.addr == addr);
    let mut commands = Vec::new();
    match change {
        Change::Remove(addr) => {
            if !known(addr) {
                return Err(refuse(format!("service {name} has no server {addr}")));
            }
            for rule in def.rules.iter().filter(|r| r.servers.contains(&addr)) {
                commands.push(Command::DeleteRule {
                    service: name.clone(),
                    pattern: rule.pattern.clone(),
                    server: Endpoint::from_addr(addr),
                });
            }
            commands.push(Command::DeleteServer {
                service: name.clone(),
                server: Endpoint::from_addr(addr),
            });
        }
        Change::Add(addr, weight) => {
            if known(addr) {
                return Err(refuse(format!("service {name} already has {addr}")));
            }
            commands.push(Command::AddServer {
                service: name.clone(),
                server: Endpoint::from_addr(addr),
                weight: Some(weight),
            });
            for rule in &def.rules {
                commands.push(Command::AddRule {
                    service: name.clone(),
                    pattern: rule.pattern.clone(),
                    match_group: rule.match_group,
                    server: Endpoint::from_addr(addr),
                });
            }
        }
    }
    control
        .transaction(&commands)
        .map_err(|e| refuse(e.to_string()))
}

//! Published snapshots: the immutable, whole view of the configuration that
//! worker threads read, one `arc-swap` load per decision.
//!
//! A [`Snapshot`] holds every service as an `Arc<ServiceSnapshot>`. A
//! control operation rebuilds only the services it changed (and their
//! pickers) and reuses the `Arc`s of the others, so a worker holding an old
//! snapshot keeps a consistent view until it loads the next one. Live state
//! ([`ServerLoad`], [`ServiceLoad`]) is shared between versions.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::condition::RuleAction;
use crate::error::ControlError;
use crate::live::{HealthChange, Lease, ServerLoad, ServiceLoad};
use crate::metrics::RuleLoad;
use crate::model::{Config, ServerConfig, ServiceConfig, ServiceDef};
use crate::scheduler::{Dispatch, PickRequest, Picker, Scheduler, Selection};
use crate::settings::Settings;
use crate::tls::TlsMaterial;
use crate::view::{RealServer, Rule, VirtualService};

/// A stable identifier of a service: it stays the same across every
/// rebuild while a service of that name exists, so the engine can keep its
/// listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub u64);

/// One real server inside a snapshot: its configuration, its live state,
/// and for a server reached over TLS what the host's loader made of its
/// settings.
#[derive(Debug)]
pub struct ServerEntry {
    config: ServerConfig,
    load: Arc<ServerLoad>,
    tls: Option<(TlsMaterial, u64)>,
    /// The service's slow-start window (zero: off).
    slow_start: Duration,
}

impl ServerEntry {
    /// A server entry over existing live state.
    pub fn new(config: ServerConfig, load: Arc<ServerLoad>) -> Self {
        ServerEntry {
            config,
            load,
            tls: None,
            slow_start: Duration::ZERO,
        }
    }
    /// What the host's [`TlsLoader`](crate::TlsLoader) made of the
    /// server's TLS settings; `None` for a server reached over plain TCP.
    pub fn tls(&self) -> Option<&TlsMaterial> {
        self.tls.as_ref().map(|(material, _)| material)
    }
    /// The TLS material with the reload epoch it was loaded at.
    pub(crate) fn tls_loaded(&self) -> Option<(&TlsMaterial, u64)> {
        self.tls
            .as_ref()
            .map(|(material, epoch)| (material, *epoch))
    }
    /// Its configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }
    /// Its live state.
    pub fn load(&self) -> &Arc<ServerLoad> {
        &self.load
    }
    /// Its health for listings, with `ramping` judged against the
    /// service's slow-start window.
    pub fn health(&self) -> crate::live::HealthStats {
        let ramping = self.load.ramp_permille(self.slow_start).is_some();
        crate::live::HealthStats {
            ramping,
            ..self.load.health()
        }
    }
}

impl RealServer for ServerEntry {
    fn addr(&self) -> SocketAddr {
        self.config.addr
    }
    /// The configured weight; in a service with `slow_start`, 100 times
    /// it (so that a weight-1 server can ramp too; schedulers compare
    /// weights, so the scale changes no share), scaled down while the
    /// server ramps up after coming back: from a tenth to all of it.
    fn weight(&self) -> u32 {
        let weight = self.config.weight;
        if self.slow_start.is_zero() || weight == 0 {
            return weight;
        }
        let permille = self.load.ramp_permille(self.slow_start).unwrap_or(1000);
        ((u64::from(weight) * permille / 10) as u32).max(1)
    }
    fn active_connections(&self) -> u64 {
        self.load.active()
    }
    fn is_healthy(&self) -> bool {
        self.load.is_healthy()
    }
    /// Weight above zero, healthy, and below its `maxconn` when it has one.
    fn is_available(&self) -> bool {
        self.config.weight > 0
            && self.load.is_healthy()
            && (self.config.maxconn == 0 || self.load.active() < u64::from(self.config.maxconn))
    }
    fn response_time(&self) -> Option<Duration> {
        self.load.response_time()
    }
}

/// One version of one service, with its compiled rules and its picker.
pub struct ServiceSnapshot {
    id: ServiceId,
    def: ServiceDef,
    running: bool,
    servers: Vec<ServerEntry>,
    rules: Vec<Rule>,
    /// The counters of each rule, by position.
    rule_loads: Vec<Arc<RuleLoad>>,
    /// Whether some rule answers at the edge (redirect, fixed response).
    edge: bool,
    /// Whether some rule edits headers.
    edits: bool,
    load: Arc<ServiceLoad>,
    dispatch: Dispatch,
    picker: Box<dyn Picker>,
    /// What the host's TLS loader made of the certificates, and the
    /// reload epoch it was made at.
    tls: Option<(TlsMaterial, u64)>,
}

impl fmt::Debug for ServiceSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceSnapshot")
            .field("id", &self.id)
            .field("name", &self.def.config.name)
            .field("running", &self.running)
            .field("dispatch", &self.dispatch)
            .field("servers", &self.servers)
            .field("rules", &self.rules)
            .finish()
    }
}

/// The picker a [`ServiceSnapshot`] holds only while its scheduler builds
/// the real one from it (see [`ServiceSnapshot::build`]).
struct Unbuilt;

impl Picker for Unbuilt {
    fn pick(&self, _: &dyn VirtualService, _: &PickRequest<'_>) -> Option<Selection> {
        None
    }
}

impl ServiceSnapshot {
    /// Compiles a service definition: maps rule servers to indices, compiles
    /// the patterns, and asks `scheduler` for a picker. `load_of` supplies
    /// (and keeps) the live state of each server address, `rule_load_of`
    /// the counters of each rule pattern.
    pub fn build(
        id: ServiceId,
        def: ServiceDef,
        running: bool,
        scheduler: &dyn Scheduler,
        service_load: Arc<ServiceLoad>,
        mut load_of: impl FnMut(SocketAddr) -> Arc<ServerLoad>,
        rule_load_of: impl FnMut(&str) -> Arc<RuleLoad>,
    ) -> Result<ServiceSnapshot, ControlError> {
        let servers: Vec<ServerEntry> = def
            .servers
            .iter()
            .map(|s| ServerEntry {
                slow_start: def.config.health.slow_start,
                ..ServerEntry::new(s.clone(), load_of(s.addr))
            })
            .collect();
        let mut rules = Vec::with_capacity(def.rules.len());
        for r in &def.rules {
            let mut indices = Vec::with_capacity(r.servers.len());
            for addr in &r.servers {
                let index = def.servers.iter().position(|s| s.addr == *addr).ok_or(
                    ControlError::NoSuchDestination {
                        service: def.config.name.clone(),
                        server: *addr,
                    },
                )?;
                indices.push(index);
            }
            rules.push(Rule::compile(r, indices)?);
        }
        let rule_loads = def
            .rules
            .iter()
            .map(|r| r.pattern.as_str())
            .map(rule_load_of)
            .collect();
        // The scheduler builds its picker from the very snapshot that will
        // hold it, so the picker sees the same servers at the same indices.
        let edge = rules.iter().any(|r| *r.action() != RuleAction::Forward);
        let edits = rules.iter().any(|r| !r.edits().is_empty());
        let mut snapshot = ServiceSnapshot {
            id,
            def,
            running,
            servers,
            rules,
            rule_loads,
            edge,
            edits,
            load: service_load,
            dispatch: scheduler.dispatch(),
            picker: Box::new(Unbuilt),
            tls: None,
        };
        snapshot.picker = scheduler.build(&snapshot)?;
        Ok(snapshot)
    }

    /// The stable id.
    pub fn id(&self) -> ServiceId {
        self.id
    }
    /// The service's settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.def.config
    }
    /// Whether some rule answers requests itself (a redirect or a fixed
    /// response): the engine then looks for the matching rule before
    /// asking the scheduler.
    pub fn has_edge_actions(&self) -> bool {
        self.edge
    }

    /// Whether some rule edits request or response headers.
    pub fn has_header_edits(&self) -> bool {
        self.edits
    }

    /// The compiled rules, in evaluation order.
    pub fn compiled_rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The whole definition (settings, servers, rules).
    pub fn def(&self) -> &ServiceDef {
        &self.def
    }
    /// Whether the service is started (its listeners should be open).
    pub fn is_running(&self) -> bool {
        self.running
    }
    /// When its scheduler decides.
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch
    }
    /// What the host's [`TlsLoader`](crate::TlsLoader) made of the
    /// service's certificates; `None` for a plain service.
    pub fn tls(&self) -> Option<&TlsMaterial> {
        self.tls.as_ref().map(|(material, _)| material)
    }
    /// Gives the service its TLS material, loaded at certificate reload
    /// `epoch` (control path).
    pub(crate) fn set_tls(&mut self, material: TlsMaterial, epoch: u64) {
        self.tls = Some((material, epoch));
    }
    /// The TLS material with the reload epoch it was loaded at.
    pub(crate) fn tls_loaded(&self) -> Option<(&TlsMaterial, u64)> {
        self.tls
            .as_ref()
            .map(|(material, epoch)| (material, *epoch))
    }
    /// Gives server `index` its TLS material, loaded at `epoch` (control
    /// path).
    pub(crate) fn set_server_tls(&mut self, index: usize, material: TlsMaterial, epoch: u64) {
        if let Some(entry) = self.servers.get_mut(index) {
            entry.tls = Some((material, epoch));
        }
    }
    /// Whether every TLS material of this version (the listener's and the
    /// servers') was loaded at reload `epoch`.
    pub(crate) fn tls_loaded_at(&self, epoch: u64) -> bool {
        let current = |t: Option<u64>| t.map_or(true, |e| e == epoch);
        current(self.tls.as_ref().map(|(_, e)| *e))
            && self
                .servers
                .iter()
                .all(|s| current(s.tls.as_ref().map(|(_, e)| *e)))
    }
    /// The picker built for this version.
    pub fn picker(&self) -> &dyn Picker {
        self.picker.as_ref()
    }
    /// The service's live counters.
    pub fn load(&self) -> &Arc<ServiceLoad> {
        &self.load
    }
    /// The server entries, by index.
    pub fn server_entries(&self) -> &[ServerEntry] {
        &self.servers
    }
    /// The counters of each rule, in evaluation order (as
    /// [`rules`](VirtualService::rules)).
    pub fn rule_loads(&self) -> &[Arc<RuleLoad>] {
        &self.rule_loads
    }
    /// Asks the picker for a server.
    pub fn pick(&self, request: &PickRequest<'_>) -> Option<Selection> {
        self.picker
            .pick(self, request)
            .filter(|s| s.server < self.servers.len())
    }
    /// Leases a connection to server `index`.
    ///
    /// # Panics
    /// Panics when `index` is out of range (indices come from [`pick`](Self::pick)).
    pub fn lease(&self, index: usize) -> Lease {
        self.servers[index].load.lease()
    }
    /// Leases a connection to server `index` unless it is at its
    /// `maxconn` (exact: concurrent callers never take it past).
    ///
    /// # Panics
    /// Panics when `index` is out of range (indices come from [`pick`](Self::pick)).
    pub fn try_lease(&self, index: usize) -> Option<Lease> {
        let entry = &self.servers[index];
        entry.load.try_lease(entry.config.maxconn)
    }
    /// Whether some server would take work but for its `maxconn` (weight
    /// above 0, healthy, at its limit): a request that found no server
    /// may then wait in the queue for one.
    pub fn any_full(&self) -> bool {
        self.servers.iter().any(|s| {
            s.config.maxconn != 0
                && s.config.weight > 0
                && s.load.active() >= u64::from(s.config.maxconn)
                && s.load.is_healthy()
        })
    }
    /// Whether some server expects a PROXY protocol header (`send_proxy`):
    /// the engine then notes the address each client reached.
    pub fn sends_proxy(&self) -> bool {
        self.servers.iter().any(|s| s.config.send_proxy.is_some())
    }

    /// Whether some server could take work now (weight above 0, healthy,
    /// below its `maxconn`): the cheap test a queued request makes before
    /// asking its scheduler again.
    pub fn any_slot_free(&self) -> bool {
        self.servers.iter().any(RealServer::is_available)
    }
    /// Records a failed connect, reset or response timeout of server
    /// `index` for `reason`: after `eject_failures` in a row the server is
    /// ejected for `base` × 2^(failures beyond), unless that would take
    /// the ejected share of the service past `max_ejection_percent` (one
    /// server may always be ejected). Out of range: nothing.
    pub fn report_failure(&self, index: usize, base: Duration, reason: &str) -> HealthChange {
        let Some(entry) = self.servers.get(index) else {
            return HealthChange::Unchanged;
        };
        let n = entry.load.count_failure();
        let threshold = self.def.config.health.eject_failures.max(1);
        if n < threshold || !self.may_eject(index) {
            return HealthChange::Unchanged;
        }
        entry.load.eject(base, n - threshold, reason)
    }
    /// Records the status of a response from server `index`: below 500 a
    /// success (failures in a row reset; a server back from an ejection is
    /// back in rotation); with `eject_5xx` set, that many 5xx in a row
    /// eject it (within the cap, as [`report_failure`](Self::report_failure)).
    pub fn observe_status(&self, index: usize, status: u16, base: Duration) -> HealthChange {
        let Some(entry) = self.servers.get(index) else {
            return HealthChange::Unchanged;
        };
        if status < 500 {
            return entry.load.report_success();
        }
        let threshold = self.def.config.health.eject_5xx;
        if threshold == 0 {
            return HealthChange::Unchanged;
        }
        if entry.load.observe_status(status) < threshold || !self.may_eject(index) {
            return HealthChange::Unchanged;
        }
        entry
            .load
            .eject(base, 0, &format!("{threshold} responses 5xx in a row"))
    }
    /// Whether server `index` may be ejected now: it already is, or one
    /// more ejected server keeps the service within
    /// `max_ejection_percent` (or none is ejected yet).
    fn may_eject(&self, index: usize) -> bool {
        if self.servers[index].load.is_ejected() {
            return true;
        }
        let ejected = self.servers.iter().filter(|s| s.load.is_ejected()).count();
        let cap = u64::from(self.def.config.health.max_ejection_percent);
        ejected == 0 || (ejected as u64 + 1) * 100 <= cap * self.servers.len() as u64
    }
    /// A timeout of this service: its own override or the global setting.
    pub fn timeout(&self, kind: TimeoutKind, settings: &Settings) -> Duration {
        let t = &self.def.config.timeouts;
        let (own, global) = match kind {
            TimeoutKind::Connect => (t.connect, settings.connect_timeout()),
            TimeoutKind::Read => (t.read, settings.read_timeout()),
            TimeoutKind::Keepalive => (t.keepalive, settings.keepalive_timeout()),
            TimeoutKind::Header => (t.header, settings.header_timeout()),
            TimeoutKind::Response => (t.response, settings.response_timeout()),
        };
        let secs = own.map_or(global, u64::from);
        Duration::from_secs(secs)
    }
}

/// Which timeout [`ServiceSnapshot::timeout`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Backend connect.
    Connect,
    /// Relay inactivity.
    Read,
    /// Idle between requests.
    Keepalive,
    /// Complete request head.
    Header,
    /// Start of the backend's response.
    Response,
}

impl VirtualService for ServiceSnapshot {
    fn name(&self) -> &str {
        &self.def.config.name
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
        self.def.config.options.get(name).map(String::as_str)
    }
    fn is_tls(&self) -> bool {
        self.def.config.tls.is_some()
    }
}

/// The whole published state: every service and the runtime settings.
#[derive(Debug, Default)]
pub struct Snapshot {
    generation: u64,
    services: Vec<Arc<ServiceSnapshot>>,
    settings: Settings,
    unloading: bool,
}

impl Snapshot {
    /// Assembles a snapshot (control path).
    pub fn new(
        generation: u64,
        services: Vec<Arc<ServiceSnapshot>>,
        settings: Settings,
        unloading: bool,
    ) -> Self {
        Snapshot {
            generation,
            services,
            settings,
            unloading,
        }
    }
    /// Increases by one with every published change.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// Every service, in the order added.
    pub fn services(&self) -> &[Arc<ServiceSnapshot>] {
        &self.services
    }
    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Arc<ServiceSnapshot>> {
        self.services.iter().find(|s| s.config().name == name)
    }
    /// The service with id `id`.
    pub fn service_by_id(&self, id: ServiceId) -> Option<&Arc<ServiceSnapshot>> {
        self.services.iter().find(|s| s.id == id)
    }
    /// The runtime settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
    /// Whether `unload` was set: the host should drain and stop.
    pub fn is_unloading(&self) -> bool {
        self.unloading
    }
    /// The services this snapshot was built from (the admin address is
    /// not part of a snapshot: see [`Control::config`](crate::Control::config)).
    pub fn config(&self) -> Config {
        Config {
            admin: None,
            services: self.services.iter().map(|s| s.def.clone()).collect(),
        }
    }
    /// Live counters of every server, by service name and address.
    pub fn server_stats(&self) -> BTreeMap<(String, SocketAddr), crate::live::ServerStats> {
        self.services
            .iter()
            .flat_map(|s| {
                s.servers
                    .iter()
                    .map(move |e| ((s.def.config.name.clone(), e.config.addr), e.load.stats()))
            })
            .collect()
    }
}

//! The control API: one in-process handle, [`Control`], with every KTCPVS
//! operation.
//!
//! Every change goes through [`Control::transaction`]: the commands are
//! applied to a private copy of the configuration, every changed service is
//! rebuilt (rules compiled, picker built by its scheduler), and only when all
//! of that succeeded is the new [`Snapshot`] published with one atomic
//! store. Readers (worker threads) never see half a change, and a refused
//! command changes nothing. Writers are serialised by one mutex; readers
//! take no lock.

mod apply;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

pub use crate::command::{Command, ServiceSpec};

use crate::config::{self, PrintOptions};
use crate::error::{ConfigError, ConfigProblem, ControlError};
use crate::live::{ServerLoad, ServiceLoad};
use crate::metrics::RuleLoad;
use crate::model::{Config, ServiceDef};
use crate::scheduler::SchedulerRegistry;
use crate::settings::Settings;
use crate::snapshot::{ServiceId, ServiceSnapshot, Snapshot};
use crate::tls::{BackendTls, TlsLoader, TlsMaterial};

/// The index of the command to blame for a failure to build `service`: the
/// command that added it, else the last one that named it, else the last.
fn blame(commands: &[Command], service: &str) -> usize {
    let names = |c: &Command| match c {
        Command::AddService { name, .. }
        | Command::EditService { name, .. }
        | Command::DeleteService { name } => name == service,
        Command::AddServer { service: s, .. }
        | Command::EditServer { service: s, .. }
        | Command::DeleteServer { service: s, .. }
        | Command::SetServerTls { service: s, .. }
        | Command::SetServerLimit { service: s, .. }
        | Command::SetServerProxy { service: s, .. }
        | Command::SyncDiscovered { service: s, .. }
        | Command::AddRule { service: s, .. }
        | Command::DeleteRule { service: s, .. }
        | Command::AddRuleWith { service: s, .. }
        | Command::DeleteRuleWith { service: s, .. } => s == service,
        Command::Start { service: s } | Command::Stop { service: s } => {
            s.as_deref() == Some(service)
        }
        Command::Flush
        | Command::Set { .. }
        | Command::ReloadCertificates
        | Command::SetAdmin { .. } => false,
    };
    commands
        .iter()
        .position(|c| matches!(c, Command::AddService { name, .. } if name == service))
        .or_else(|| commands.iter().rposition(names))
        .unwrap_or(commands.len().saturating_sub(1))
}

/// A callback run after every published change, with the new snapshot.
/// Keep it short: it runs while the control path is held.
pub type Watcher = Box<dyn Fn(&Arc<Snapshot>) + Send + Sync>;

/// A callback that puts a newly published snapshot into effect and may
/// refuse it — an engine that cannot bind a service's listen address, say.
/// A refusal rolls the whole transaction back: the previous configuration
/// is published again and the operation fails with
/// [`ControlError::Activation`]. Runs before the [`Watcher`]s.
pub type Activator = Box<dyn Fn(&Arc<Snapshot>) -> Result<(), String> + Send + Sync>;

/// The mutable control-path state, guarded by [`Inner::state`].
#[derive(Clone, Default)]
struct State {
    config: Config,
    aliases: Arc<HashMap<String, SocketAddr>>,
    running: BTreeSet<String>,
    settings: Settings,
    unloading: bool,
    /// Bumped by [`Command::ReloadCertificates`]: a service whose TLS
    /// material was loaded at an older epoch loads it again.
    certificate_epoch: u64,
}

/// Live state and identities that outlive configurations.
#[derive(Default)]
struct Registry {
    ids: HashMap<String, ServiceId>,
    next_id: u64,
    service_loads: HashMap<String, Arc<ServiceLoad>>,
    server_loads: HashMap<(String, SocketAddr), Arc<ServerLoad>>,
    rule_loads: HashMap<(String, String), Arc<RuleLoad>>,
}

struct Inner {
    schedulers: Arc<SchedulerRegistry>,
    tls_loader: Mutex<Option<Arc<dyn TlsLoader>>>,
    state: Mutex<(State, Registry)>,
    current: ArcSwap<Snapshot>,
    watchers: Mutex<Vec<Watcher>>,
    activators: Mutex<Vec<Activator>>,
}

/// The configuration before a checked transaction and the one it would
/// make.
struct Plan {
    before: Config,
    after: Config,
}

/// Whether a transaction takes effect or is only checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Apply,
    CheckOnly,
}

/// The control handle. Cheap to clone; every clone controls the same
/// balancer.
///
/// ```
/// use std::sync::Arc;
/// use ktcpvs_core::control::{Command, Control, ServiceSpec};
/// use ktcpvs_core::scheduler::SchedulerRegistry;
///
/// # struct First;
/// # struct FirstPicker;
/// # impl ktcpvs_core::Picker for FirstPicker {
/// #     fn pick(&self, s: &dyn ktcpvs_core::VirtualService, _: &ktcpvs_core::PickRequest<'_>) -> Option<ktcpvs_core::Selection> {
/// #         (s.server_count() > 0).then(|| ktcpvs_core::Selection::server(0))
/// #     }
/// # }
/// # impl ktcpvs_core::Scheduler for First {
/// #     fn name(&self) -> &str { "first" }
/// #     fn dispatch(&self) -> ktcpvs_core::Dispatch { ktcpvs_core::Dispatch::Connection }
/// #     fn build(&self, _: &dyn ktcpvs_core::VirtualService) -> Result<Box<dyn ktcpvs_core::Picker>, ktcpvs_core::SchedulerError> { Ok(Box::new(FirstPicker)) }
/// # }
/// let registry = Arc::new(SchedulerRegistry::new());
/// registry.register(Arc::new(First)).unwrap();
/// let control = Control::new(registry);
/// control.execute(Command::AddService {
///     name: "web".into(),
///     spec: ServiceSpec { scheduler: Some("first".into()), ..Default::default() },
/// }).unwrap();
/// control.execute(Command::AddServer {
///     service: "web".into(),
///     server: "127.0.0.1:8081".parse().unwrap(),
///     weight: None,
/// }).unwrap();
/// assert_eq!(control.snapshot().service("web").unwrap().server_entries().len(), 1);
/// ```
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("generation", &self.inner.current.load().generation())
            .finish()
    }
}

impl Control {
    /// A control handle with an empty configuration, using `schedulers` to
    /// resolve scheduler names.
    pub fn new(schedulers: Arc<SchedulerRegistry>) -> Control {
        Control {
            inner: Arc::new(Inner {
                schedulers,
                state: Mutex::new((State::default(), Registry::default())),
                current: ArcSwap::from_pointee(Snapshot::default()),
                watchers: Mutex::new(Vec::new()),
                activators: Mutex::new(Vec::new()),
                tls_loader: Mutex::new(None),
            }),
        }
    }

    /// Registers the host's TLS implementation: from now on a service with
    /// certificates has them loaded by `loader` whenever its certificate
    /// list changes or [`Command::ReloadCertificates`] is applied. Without
    /// a loader such a service is refused ([`ControlError::NoTls`]).
    pub fn set_tls_loader(&self, loader: Arc<dyn TlsLoader>) {
        *self.inner.tls_loader.lock() = Some(loader);
    }

    /// The scheduler registry.
    pub fn schedulers(&self) -> &Arc<SchedulerRegistry> {
        &self.inner.schedulers
    }

    /// The current snapshot (what workers see).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    /// The `ArcSwap` holding the current snapshot, for hot-path readers that
    /// want `load()` without cloning the `Arc`.
    pub fn snapshot_cell(&self) -> &ArcSwap<Snapshot> {
        &self.inner.current
    }

    /// Registers a callback run with each newly published snapshot.
    pub fn watch(&self, watcher: Watcher) {
        self.inner.watchers.lock().push(watcher);
    }

    /// Registers a callback that activates each newly published snapshot
    /// and may refuse it (see [`Activator`]). It is called once at once
    /// with the current snapshot, whose refusal is returned.
    pub fn activate_with(&self, activator: Activator) -> Result<(), ControlError> {
        let _guard = self.inner.state.lock();
        let result = activator(&self.inner.current.load_full()).map_err(ControlError::Activation);
        self.inner.activators.lock().push(activator);
        result
    }

    /// Applies one command atomically.
    pub fn execute(&self, command: Command) -> Result<(), ControlError> {
        self.transaction(std::slice::from_ref(&command))
    }

    /// Applies several commands as one transaction: all of them or none.
    pub fn transaction(&self, commands: &[Command]) -> Result<(), ControlError> {
        self.transaction_at(commands).map_err(|(_, e)| e)
    }

    /// Like [`transaction`](Self::transaction), but on failure also says
    /// which command (by index) was refused.
    pub fn transaction_at(&self, commands: &[Command]) -> Result<(), (usize, ControlError)> {
        self.run_transaction(commands, Effect::Apply)
    }

    /// Checks that `commands` would apply as one transaction, and changes
    /// nothing: every command is applied to a copy of the configuration and
    /// the copy is built as a snapshot would be (patterns compiled,
    /// schedulers asked, TLS files read). What only applying can find
    /// (a listener that cannot bind) is not foreseen. On failure, says
    /// which command was refused.
    ///
    /// ```
    /// use ktcpvs_core::{Command, Control, SchedulerRegistry, ServiceSpec};
    /// let control = Control::new(std::sync::Arc::new(SchedulerRegistry::new()));
    /// let add = Command::AddService { name: "web".into(), spec: ServiceSpec { scheduler: Some("none".into()), ..Default::default() } };
    /// assert!(control.check(&[add]).is_err()); // no scheduler "none"
    /// assert!(control.config().services.is_empty());
    /// ```
    pub fn check(&self, commands: &[Command]) -> Result<(), (usize, ControlError)> {
        self.run_transaction(commands, Effect::CheckOnly)
    }

    /// The configuration before `commands` and the one they would make,
    /// checked as [`check`](Self::check) does; nothing is applied. Both
    /// are read under the same lock.
    fn plan_transaction(&self, commands: &[Command]) -> Result<Plan, (usize, ControlError)> {
        let mut guard = self.inner.state.lock();
        let (state, registry) = &mut *guard;
        let (next, _) = self.stage(state, registry, commands)?;
        Ok(Plan {
            before: state.config.clone(),
            after: next.config,
        })
    }

    /// Applies `commands` to a copy of `state` and builds its snapshot;
    /// on failure says which command was refused.
    fn stage(
        &self,
        state: &State,
        registry: &mut Registry,
        commands: &[Command],
    ) -> Result<(State, Snapshot), (usize, ControlError)> {
        if state.unloading {
            return Err((0, ControlError::Unloaded));
        }
        let mut next = state.clone();
        for (i, command) in commands.iter().enumerate() {
            apply::apply(&mut next, command).map_err(|e| (i, e))?;
        }
        let snapshot = self
            .rebuild(&next, registry)
            .map_err(|(service, e)| (blame(commands, &service), e))?;
        Ok((next, snapshot))
    }

    fn run_transaction(
        &self,
        commands: &[Command],
        effect: Effect,
    ) -> Result<(), (usize, ControlError)> {
        let mut guard = self.inner.state.lock();
        let (state, registry) = &mut *guard;
        let (next, snapshot) = self.stage(state, registry, commands)?;
        if effect == Effect::CheckOnly {
            return Ok(());
        }
        let previous = std::mem::replace(state, next);
        if let Err(reason) = self.publish(snapshot, registry, state) {
            // Roll back: put the previous configuration into effect again.
            *state = previous;
            if let Ok(restored) = self.rebuild(state, registry) {
                if let Err(again) = self.publish(restored, registry, state) {
                    log::error!("rolling back a refused change was refused too: {again}");
                }
            }
            return Err((
                commands.len().saturating_sub(1),
                ControlError::Activation(reason),
            ));
        }
        Ok(())
    }

    /// Replaces the whole configuration with the text of a configuration
    /// file, as one transaction. Services that were running and still exist
    /// keep running (their listeners stay open); nothing is applied when any
    /// line is wrong, and the error names the line.
    pub fn load_config(&self, text: &str, file: Option<&Path>) -> Result<(), ControlError> {
        self.run_config(text, file, |c| self.run_transaction(c, Effect::Apply))
    }

    /// Checks that [`load_config`](Self::load_config) would accept `text`,
    /// and changes nothing (see [`check`](Self::check)).
    pub fn check_config(&self, text: &str, file: Option<&Path>) -> Result<(), ControlError> {
        self.run_config(text, file, |c| self.run_transaction(c, Effect::CheckOnly))
    }

    /// The configuration [`load_config`](Self::load_config) would make of
    /// `text`, built and checked as [`check_config`](Self::check_config)
    /// does, with this daemon's schedulers, host aliases and name
    /// resolution; nothing is applied.
    ///
    /// ```
    /// use ktcpvs_core::{Control, SchedulerRegistry};
    /// let control = Control::new(std::sync::Arc::new(SchedulerRegistry::new()));
    /// let planned = control.plan_config("admin = 127.0.0.1:9100\n", None)?;
    /// assert_eq!(planned.admin, Some("127.0.0.1:9100".parse().unwrap()));
    /// assert_eq!(control.config().admin, None);
    /// # Ok::<(), ktcpvs_core::ControlError>(())
    /// ```
    pub fn plan_config(&self, text: &str, file: Option<&Path>) -> Result<Config, ControlError> {
        self.planned(text, file).map(|plan| plan.after)
    }

    /// What loading `text` would change, as the commands that make the
    /// same change from the current configuration, in order
    /// ([`config::diff`]); empty when it would change nothing. Refused as
    /// [`load_config`](Self::load_config) would refuse it; nothing is
    /// applied.
    ///
    /// ```
    /// use ktcpvs_core::config::ConfigChange;
    /// use ktcpvs_core::{Command, Control, SchedulerRegistry};
    /// let control = Control::new(std::sync::Arc::new(SchedulerRegistry::new()));
    /// let changes = control.diff_config("admin = 127.0.0.1:9100\n", None)?;
    /// assert!(matches!(changes.as_slice(), [ConfigChange::Command(c)] if matches!(**c, Command::SetAdmin { .. })));
    /// assert!(control.diff_config("", None)?.is_empty());
    /// # Ok::<(), ktcpvs_core::ControlError>(())
    /// ```
    pub fn diff_config(
        &self,
        text: &str,
        file: Option<&Path>,
    ) -> Result<Vec<config::ConfigChange>, ControlError> {
        self.planned(text, file)
            .map(|plan| config::diff(&plan.before, &plan.after))
    }

    fn planned(&self, text: &str, file: Option<&Path>) -> Result<Plan, ControlError> {
        self.run_config(text, file, |c| self.plan_transaction(c))
    }

    /// Parses `text` into the commands of a load (a flush, the file's
    /// commands, and a start of each running service that remains) and
    /// hands them to `run`; a refusal names the file's line.
    fn run_config<T>(
        &self,
        text: &str,
        file: Option<&Path>,
        run: impl FnOnce(&[Command]) -> Result<T, (usize, ControlError)>,
    ) -> Result<T, ControlError> {
        let located = config::parse(text, file)?;
        let running: Vec<String> = self.inner.state.lock().0.running.iter().cloned().collect();
        let mut commands = Vec::with_capacity(located.len() + running.len() + 1);
        commands.push(Command::Flush);
        commands.extend(located.iter().map(|l| l.value.clone()));
        let names: BTreeSet<&str> = located
            .iter()
            .filter_map(|l| match &l.value {
                Command::AddService { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        for name in running.iter().filter(|n| names.contains(n.as_str())) {
            commands.push(Command::Start {
                service: Some(name.clone()),
            });
        }
        run(&commands).map_err(|(i, e)| {
            let location = i
                .checked_sub(1)
                .and_then(|i| located.get(i))
                .or(located.last())
                .map(|l| l.location.clone());
            match (location, e) {
                (_, e @ ControlError::Config(_)) => e,
                (Some(location), e) => ControlError::Config(ConfigError {
                    location,
                    message: e.to_string(),
                    problem: ConfigProblem::Refused,
                }),
                (None, e) => e,
            }
        })
    }

    /// Reads and loads a configuration file (see [`load_config`](Self::load_config)).
    ///
    /// ```no_run
    /// use ktcpvs_core::{Control, SchedulerRegistry};
    /// let control = Control::new(std::sync::Arc::new(SchedulerRegistry::new()));
    /// control.load_file("lb.conf")?;
    /// # Ok::<(), ktcpvs_core::ControlError>(())
    /// ```
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<(), ControlError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ControlError::Config(ConfigError {
                location: crate::error::Location {
                    file: Some(path.to_path_buf()),
                    line: 0,
                    column: 0,
                },
                message: format!("config file {} opening error: {e}", path.display()),
                problem: ConfigProblem::Unreadable,
            })
        })?;
        self.load_config(&text, Some(path))
    }

    /// Maps a host name to a fixed socket address for every later command:
    /// an endpoint whose host is `name` resolves to `addr`, whatever port
    /// it names. This lets the original's example commands (`-r r1:80`)
    /// run unchanged against real servers on loopback ports, without
    /// touching `/etc/hosts`.
    pub fn alias_host(&self, name: &str, addr: SocketAddr) {
        let mut guard = self.inner.state.lock();
        let mut aliases = (*guard.0.aliases).clone();
        aliases.insert(name.to_string(), addr);
        guard.0.aliases = Arc::new(aliases);
    }

    /// The current configuration.
    pub fn config(&self) -> Config {
        self.inner.state.lock().0.config.clone()
    }

    /// The current runtime settings.
    pub fn settings(&self) -> Settings {
        self.inner.state.lock().0.settings.clone()
    }

    /// Whether service `name` is started.
    pub fn is_running(&self, name: &str) -> bool {
        self.inner.state.lock().0.running.contains(name)
    }

    /// The configuration of one service (or all) in configuration-file
    /// syntax, as `tcpvsadm -L` prints it.
    pub fn list(
        &self,
        service: Option<&str>,
        options: &PrintOptions,
    ) -> Result<String, ControlError> {
        let config = self.config();
        match service {
            None => Ok(config::print(&config, options)),
            Some(name) => {
                let def = config
                    .service(name)
                    .ok_or_else(|| ControlError::NoSuchService(name.to_string()))?;
                Ok(config::print_service(def, options))
            }
        }
    }

    /// Builds the snapshot of `next`; on failure says which service failed.
    fn rebuild(
        &self,
        next: &State,
        registry: &mut Registry,
    ) -> Result<Snapshot, (String, ControlError)> {
        let previous = self.inner.current.load();
        let mut services = Vec::with_capacity(next.config.services.len());
        for def in &next.config.services {
            let name = &def.config.name;
            let running = next.running.contains(name);
            let id = match registry.ids.get(name) {
                Some(id) => *id,
                None => {
                    registry.next_id += 1;
                    ServiceId(registry.next_id)
                }
            };
            let old = previous.service(name).filter(|old| old.id() == id);
            let material = self
                .tls_material(def, old, next.certificate_epoch)
                .map_err(|e| (name.clone(), e))?;
            if let Some(old) = old {
                let same_tls = match (&material, old.tls()) {
                    (None, None) => true,
                    (Some(new), Some(kept)) => Arc::ptr_eq(new, kept),
                    _ => false,
                };
                if old.def() == def
                    && old.is_running() == running
                    && same_tls
                    && old.tls_loaded_at(next.certificate_epoch)
                {
                    services.push(Arc::clone(old));
                    continue;
                }
            }
            let scheduler = self
                .inner
                .schedulers
                .get(&def.config.scheduler)
                .map_err(|e| (name.clone(), e))?;
            let service_load = registry
                .service_loads
                .get(name)
                .cloned()
                .unwrap_or_else(|| Arc::new(ServiceLoad::new()));
            let built = ServiceSnapshot::build(
                id,
                def.clone(),
                running,
                scheduler.as_ref(),
                service_load,
                |addr| {
                    registry
                        .server_loads
                        .get(&(name.clone(), addr))
                        .cloned()
                        .unwrap_or_else(|| Arc::new(ServerLoad::new()))
                },
                |pattern| {
                    registry
                        .rule_loads
                        .get(&(name.clone(), pattern.to_string()))
                        .cloned()
                        .unwrap_or_else(|| Arc::new(RuleLoad::new()))
                },
            )
            .map_err(|e| (name.clone(), e))?;
            let mut built = built;
            if let Some(old) =
                old.filter(|o| o.is_running() && !def.config.health.slow_start.is_zero())
            {
                // A server added to a running service, or re-weighted from
                // 0, ramps up (slow start).
                for entry in built.server_entries() {
                    let before = old.def().server(entry.config().addr);
                    if before.map_or(true, |b| b.weight == 0) && entry.config().weight > 0 {
                        entry.load().start_ramp();
                    }
                }
            }
            if let Some(material) = material {
                built.set_tls(material, next.certificate_epoch);
            }
            self.load_server_tls(&mut built, old, next.certificate_epoch)
                .map_err(|e| (name.clone(), e))?;
            services.push(Arc::new(built));
        }
        Ok(Snapshot::new(
            previous.generation() + 1,
            services,
            next.settings.clone(),
            next.unloading,
        ))
    }

    /// The TLS material of service `def`: `old`'s when it was loaded from
    /// the same files at the current reload `epoch`, else freshly loaded by
    /// the registered loader; `None` for a plain service.
    fn tls_material(
        &self,
        def: &ServiceDef,
        old: Option<&Arc<ServiceSnapshot>>,
        epoch: u64,
    ) -> Result<Option<TlsMaterial>, ControlError> {
        let Some(tls) = &def.config.tls else {
            return Ok(None);
        };
        if let Some((material, loaded_at)) = old.and_then(|o| o.tls_loaded()) {
            let same_files = old
                .and_then(|o| o.config().tls.as_ref())
                .is_some_and(|t| t.certificates == tls.certificates);
            if same_files && loaded_at == epoch {
                return Ok(Some(Arc::clone(material)));
            }
        }
        let name = &def.config.name;
        let loader = self.inner.tls_loader.lock().clone();
        let loader = loader.ok_or_else(|| ControlError::NoTls(name.clone()))?;
        loader
            .load(name, tls)
            .map(Some)
            .map_err(|error| ControlError::Certificate {
                service: name.clone(),
                error,
            })
    }

    /// Gives every server of `built` reached over TLS its material: `old`'s
    /// for the same server when loaded from the same settings at the
    /// current reload `epoch`, else freshly loaded.
    fn load_server_tls(
        &self,
        built: &mut ServiceSnapshot,
        old: Option<&Arc<ServiceSnapshot>>,
        epoch: u64,
    ) -> Result<(), ControlError> {
        let name = built.config().name.clone();
        let wanted: Vec<(usize, SocketAddr, BackendTls)> = built
            .server_entries()
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.config().tls.clone().map(|t| (i, e.config().addr, t)))
            .collect();
        for (index, addr, tls) in wanted {
            let kept = old
                .and_then(|o| o.server_entries().iter().find(|e| e.config().addr == addr))
                .filter(|e| e.config().tls.as_ref() == Some(&tls))
                .and_then(|e| e.tls_loaded())
                .filter(|(_, at)| *at == epoch)
                .map(|(m, _)| Arc::clone(m));
            let material = match kept {
                Some(m) => m,
                None => {
                    let loader = self.inner.tls_loader.lock().clone();
                    let loader = loader.ok_or_else(|| ControlError::NoTls(name.clone()))?;
                    loader.load_backend(&name, addr, &tls).map_err(|error| {
                        ControlError::Certificate {
                            service: name.clone(),
                            error,
                        }
                    })?
                }
            };
            built.set_server_tls(index, material, epoch);
        }
        Ok(())
    }

    fn publish(
        &self,
        snapshot: Snapshot,
        registry: &mut Registry,
        state: &State,
    ) -> Result<(), String> {
        // Keep the identities and live state of what exists now; forget the rest.
        registry
            .ids
            .retain(|name, _| state.config.service(name).is_some());
        registry
            .service_loads
            .retain(|name, _| state.config.service(name).is_some());
        registry.server_loads.retain(|(name, addr), _| {
            state
                .config
                .service(name)
                .is_some_and(|s| s.server(*addr).is_some())
        });
        registry.rule_loads.retain(|(name, pattern), _| {
            state
                .config
                .service(name)
                .is_some_and(|s| s.rules.iter().any(|r| &r.pattern == pattern))
        });
        for service in snapshot.services() {
            let name = service.config().name.clone();
            registry.ids.insert(name.clone(), service.id());
            registry
                .service_loads
                .insert(name.clone(), Arc::clone(service.load()));
            for entry in service.server_entries() {
                registry.server_loads.insert(
                    (name.clone(), entry.config().addr),
                    Arc::clone(entry.load()),
                );
            }
            for (rule, load) in service.def().rules.iter().zip(service.rule_loads()) {
                registry
                    .rule_loads
                    .insert((name.clone(), rule.pattern.clone()), Arc::clone(load));
            }
        }
        let snapshot = Arc::new(snapshot);
        self.inner.current.store(Arc::clone(&snapshot));
        let mut refused = Ok(());
        for activator in self.inner.activators.lock().iter() {
            if let Err(reason) = activator(&snapshot) {
                refused = refused.and(Err(reason));
            }
        }
        for watcher in self.inner.watchers.lock().iter() {
            watcher(&snapshot);
        }
        refused
    }
}

//! `ktcpvsd`: the ktcpvs host program, what `insmod ktcpvs` was for the
//! kernel original. It runs in the foreground, serves the balancer with the
//! relay engine, and serves the control socket that `tcpvsadm` talks to.
//!
//! * logs go to stderr; the level follows the `debug_level` setting, live;
//! * SIGTERM and SIGINT stop gracefully; `tcpvsadm --sysctl unload=1`
//!   drains and exits 0;
//! * SIGHUP reloads the `-f` file as one transaction (a bad file changes
//!   nothing), then the certificate files of every TLS service;
//! * `--demo` starts three demo real servers and the README's example;
//! * `--upgrade-from PATH` takes over from the daemon serving PATH (binary
//!   upgrade without downtime; see `upgrade.rs`);
//! * the soft limit on open files is raised to the hard limit at start.

mod demo;
mod options;
mod upgrade;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ktcpvs::admin::{Actions, AdminServer};
use ktcpvs::control_socket::remote::{RemoteControl, Token};
use ktcpvs::control_socket::{BoundAddr, ControlServer, Dispatcher};
use ktcpvs::discovery::{Discoverer, Nameservers};
use ktcpvs::net::access_log::{AccessLog, Sink};
use ktcpvs::net::{Engine, EngineHandle};
use ktcpvs::{Command, Control};
use log::LevelFilter;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use options::Options;

/// Grace period for in-flight requests on SIGTERM/SIGINT.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What wakes the main thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
    /// SIGUSR1: reopen the access log.
    Reopen,
    /// The `unload` setting was set.
    Unload,
    /// The `drain` setting was set: announce, wait this long, then stop.
    Drain(Duration),
    /// A new daemon took over the listening sockets: stop accepting,
    /// finish within this grace (the default when `None`), exit.
    HandedOver(Option<Duration>),
}

/// The log level for a `debug_level` value (levels of the original:
/// 0 announcements and errors, 1 non-fatal errors, 2 configuration,
/// 3 listeners, 4-5 connections and scheduling, 8 and up relay traces).
fn level_for(debug_level: u64) -> LevelFilter {
    match debug_level {
        0 => LevelFilter::Warn,
        1..=2 => LevelFilter::Info,
        3..=5 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ktcpvsd: {message}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let options = Options::parse();
    init_logging(options.log_format == "json");
    let control = ktcpvs::new_control();
    let (events, wake) = mpsc::channel::<Event>();
    follow_settings(&control, events.clone());
    let demo = match configure(&options, &control) {
        Ok(demo) => demo,
        Err(e) => return fail(e),
    };
    let mut takeover = match &options.upgrade_from {
        Some(path) => match upgrade::take_over(path, &control, &options.sysctl) {
            Ok(t) => Some(t),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let access_log = match open_access_log(&options, &control) {
        Ok(log) => log,
        Err(e) => return fail(e),
    };
    let engine = match start_engine(&options, &control, access_log.as_ref(), takeover.as_mut()) {
        Ok(engine) => engine,
        Err(e) => return fail(e),
    };
    let bound: BoundAddr = {
        // Weak, so the engine can be unwrapped and waited for at exit even
        // while a control client thread still holds the dispatcher.
        let engine = Arc::downgrade(&engine);
        Arc::new(move |service: &str| engine.upgrade().and_then(|e| e.local_addr(service)))
    };
    let admin_socket = Arc::new(std::sync::Mutex::new(None));
    let handing = upgrade::Handing {
        engine: Arc::downgrade(&engine),
        admin: Arc::clone(&admin_socket),
        events: std::sync::Mutex::new(events.clone()),
    };
    let dispatcher =
        Dispatcher::new(control.clone(), Some(Arc::clone(&bound))).with_handover(Arc::new(handing));
    let socket_path = options.socket_path();
    let replace = options.upgrade_from.as_ref() == Some(&socket_path);
    let server = match serve_control(&socket_path, &dispatcher, demo.as_ref(), &bound, replace) {
        Ok(server) => server,
        Err(e) => {
            engine.shutdown(Duration::ZERO);
            return fail(e);
        }
    };
    let remote = match serve_remote(&options, &dispatcher) {
        Ok(remote) => remote,
        Err(e) => {
            engine.shutdown(Duration::ZERO);
            return fail(e);
        }
    };
    let actions = match admin_actions(&options, &dispatcher) {
        Ok(actions) => actions,
        Err(e) => {
            engine.shutdown(Duration::ZERO);
            return fail(e);
        }
    };
    let mut admin = Admin {
        fixed: options.admin,
        actions,
        fallback: options.demo.then(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        control: control.clone(),
        engine: engine.observer(),
        serving: None,
        handed: admin_socket,
    };
    let wanted = options.admin.or(control.config().admin).or(admin.fallback);
    let inherited = takeover.as_mut().and_then(|t| t.admin_for(wanted));
    if let Err(e) = admin.serve_on(wanted, inherited) {
        engine.shutdown(Duration::ZERO);
        return fail(e);
    }
    let nameservers = options
        .resolver
        .map_or(Nameservers::System, Nameservers::At);
    let discoverer = match Discoverer::start(control.clone(), nameservers) {
        Ok(d) => d,
        Err(e) => {
            engine.shutdown(Duration::ZERO);
            return fail(e);
        }
    };
    let signals = match forward_signals(events) {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot install signal handlers: {e}")),
    };
    if let Some(takeover) = takeover {
        confirm_takeover(takeover, &options);
    }
    run_until_stopped(
        &options,
        &control,
        &engine,
        &wake,
        access_log.as_ref(),
        &mut admin,
    );
    signals.0.close();
    let _ = signals.1.join();
    // The control server's dispatcher holds a clone of `bound`, which holds
    // the engine; release both before waiting for the engine.
    drop(discoverer);
    drop(remote);
    drop(server);
    drop(admin);
    drop(dispatcher);
    drop(bound);
    drop(demo);
    let result = match Arc::try_unwrap(engine) {
        Ok(engine) => engine.wait(),
        Err(_) => {
            log::error!("engine handle still shared at exit; not waiting for workers");
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Starts the engine: the access log, the sockets systemd passed or (on an
/// upgrade) the old daemon handed over, the worker count.
fn start_engine(
    options: &Options,
    control: &Control,
    access_log: Option<&AccessLog>,
    takeover: Option<&mut upgrade::Takeover>,
) -> Result<Arc<EngineHandle>, String> {
    let mut builder = Engine::builder(control.clone());
    if let Some(log) = access_log {
        builder = builder.access_log(log.clone());
    }
    for listener in systemd_listeners() {
        builder = builder.inherit(listener);
    }
    if let Some(takeover) = takeover {
        for listener in takeover.services.drain(..) {
            builder = builder.inherit(listener);
        }
    }
    if let Some(n) = options.workers {
        builder = builder.workers(usize::from(n));
    }
    builder.start().map(Arc::new).map_err(|e| e.to_string())
}

/// Everything serves: tell the old daemon to finish and exit. If it cannot
/// be told (it died meanwhile, or gave up waiting), this one serves on:
/// stopping now would leave nobody accepting.
fn confirm_takeover(takeover: upgrade::Takeover, options: &Options) {
    let grace = Duration::from_secs(options.upgrade_grace);
    match takeover.confirm(grace) {
        Ok(()) => eprintln!(
            "ktcpvsd: upgrade done; the old daemon finishes its exchanges (up to {}s) and exits",
            grace.as_secs()
        ),
        Err(e) => log::error!(
            "upgrade: the old daemon was not told to stop ({e}); this one serves, and the old one may too until stopped (SIGTERM)"
        ),
    }
}

/// Logs to stderr at the level `debug_level` asks for (warnings at first),
/// with the open-file limit raised: two descriptors per proxied
/// connection, and the soft default (often 1024) would be reached at a few
/// hundred clients.
fn init_logging(json: bool) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(LevelFilter::Trace).parse_default_env();
    if json {
        builder.format(|buf, record| {
            use std::io::Write;
            let line = serde_json::json!({
                "time": buf.timestamp_micros().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
    log::set_max_level(level_for(0));
    match ktcpvs::net::raise_open_file_limit() {
        Ok(limit) => log::info!("open file limit: {limit}"),
        Err(e) => log::warn!("cannot raise the open file limit: {e}"),
    }
}

/// Follows every published configuration: the log level changes live with
/// `debug_level`, and `unload` wakes the main thread.
fn follow_settings(control: &Control, events: mpsc::Sender<Event>) {
    let level = AtomicU64::new(0);
    let draining = AtomicU64::new(0);
    control.watch(Box::new(move |snapshot| {
        let wanted = snapshot.settings().debug_level();
        if level.swap(wanted, Ordering::Relaxed) != wanted {
            log::set_max_level(level_for(wanted));
        }
        if snapshot.is_unloading() {
            let _ = events.send(Event::Unload);
        }
        let drain = snapshot.settings().drain();
        if drain > 0 && draining.swap(drain, Ordering::Relaxed) == 0 {
            let _ = events.send(Event::Drain(Duration::from_secs(drain)));
        }
    }));
}

/// Applies the command line: `--sysctl` settings, the demo servers, host
/// aliases and the `-f` file.
fn configure(options: &Options, control: &Control) -> Result<Option<demo::Demo>, String> {
    for (name, value) in &options.sysctl {
        control
            .execute(Command::Set {
                name: name.clone(),
                value: value.clone(),
            })
            .map_err(|e| e.to_string())?;
    }
    let demo = if options.demo {
        Some(demo::start_servers(control, options.tls)?)
    } else {
        None
    };
    for alias in &options.host_alias {
        control.alias_host(&alias.name, alias.addr);
    }
    // On an upgrade the configuration comes from the old daemon (its live
    // state); the file is for SIGHUP.
    if let (Some(path), None) = (&options.config, &options.upgrade_from) {
        control.load_file(path).map_err(|e| e.to_string())?;
    }
    Ok(demo)
}

/// Opens the control socket, says where, and sets up the demo's service
/// (printing what to try) when there is one.
/// The remote control listener, when `--control-listen` asks for one.
fn serve_remote(
    options: &Options,
    dispatcher: &Dispatcher,
) -> Result<Option<RemoteControl>, String> {
    let (Some(addr), Some(file)) = (options.control_listen, &options.control_token_file) else {
        return Ok(None);
    };
    let token = Token::from_file(file).map_err(|e| e.to_string())?;
    let remote = RemoteControl::bind(addr, token, dispatcher.clone()).map_err(|e| e.to_string())?;
    eprintln!(
        "ktcpvsd {}: remote control on {} (token required)",
        env!("CARGO_PKG_VERSION"),
        remote.local_addr()
    );
    Ok(Some(remote))
}

fn serve_control(
    socket_path: &std::path::Path,
    dispatcher: &Dispatcher,
    demo: Option<&demo::Demo>,
    bound: &BoundAddr,
    replace: bool,
) -> Result<ControlServer, String> {
    let server = if replace {
        ControlServer::bind_replacing(socket_path, dispatcher.clone())
    } else {
        ControlServer::bind(socket_path, dispatcher.clone())
    }
    .map_err(|e| e.to_string())?;
    eprintln!(
        "ktcpvsd {}: control socket {}",
        env!("CARGO_PKG_VERSION"),
        socket_path.display()
    );
    if let Some(demo) = demo {
        let addr = demo
            .configure(dispatcher, || bound(demo::SERVICE))
            .map_err(|e| e.to_string())?;
        print!("{}", demo.banner(addr, socket_path));
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    Ok(server)
}

/// The listening sockets systemd passed (socket activation: `LISTEN_PID`
/// is this process, `LISTEN_FDS` sockets from descriptor 3 on). A service
/// whose `listen` address is one of them accepts on it instead of binding.
/// Descriptors that are not TCP listening sockets are left alone.
fn systemd_listeners() -> Vec<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    if !ours || !(1..=64).contains(&count) {
        return Vec::new();
    }
    let mut listeners = Vec::new();
    for fd in 3..3 + count {
        // SAFETY: systemd hands descriptors 3.. to this process (LISTEN_PID
        // says so) and nothing else in it owns them.
        let socket = unsafe { socket2::Socket::from_raw_fd(fd) };
        let listening = socket.is_listener().unwrap_or(false)
            && socket.r#type().is_ok_and(|t| t == socket2::Type::STREAM)
            && socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .is_some();
        if !listening {
            // Not ours to use: give the descriptor back untouched.
            std::mem::forget(socket);
            continue;
        }
        let _ = socket.set_cloexec(true);
        let listener: std::net::TcpListener = socket.into();
        if let Ok(addr) = listener.local_addr() {
            eprintln!("ktcpvsd: listening socket {addr} from systemd");
        }
        listeners.push(listener);
    }
    listeners
}

/// The status page's actions, with `--admin-token-file`: applied through
/// the control socket's dispatcher, as `tcpvsadm`'s requests are.
fn admin_actions(
    options: &Options,
    dispatcher: &Dispatcher,
) -> Result<Option<Arc<Actions>>, String> {
    let Some(path) = &options.admin_token_file else {
        return Ok(None);
    };
    let token = Token::from_file(path).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(Actions::new(dispatcher.clone(), token))))
}

/// The admin listener: at `--admin` when given (fixed), else where the
/// configuration's `admin =` says, moved when a reload changes it.
struct Admin {
    fixed: Option<SocketAddr>,
    /// The status page's actions, with `--admin-token-file`.
    actions: Option<Arc<Actions>>,
    /// With `--demo` and no address configured: loopback, a free port.
    fallback: Option<SocketAddr>,
    control: Control,
    engine: ktcpvs::EngineObserver,
    serving: Option<(SocketAddr, AdminServer)>,
    /// A descriptor on the listening socket while serving, for a handover.
    handed: Arc<std::sync::Mutex<Option<std::net::TcpListener>>>,
}

impl Admin {
    /// Serves on `addr` (stopping the listener on another address), or
    /// stops serving with `None`.
    fn serve(&mut self, addr: Option<SocketAddr>) -> Result<(), String> {
        self.serve_on(addr, None)
    }

    /// [`serve`](Self::serve), on `inherited` (the socket an old daemon
    /// handed over, bound to `addr`) when given.
    fn serve_on(
        &mut self,
        addr: Option<SocketAddr>,
        inherited: Option<std::net::TcpListener>,
    ) -> Result<(), String> {
        if self.serving.as_ref().map(|(a, _)| *a) == addr {
            return Ok(());
        }
        if let Some((_, old)) = self.serving.take() {
            if let Ok(mut handed) = self.handed.lock() {
                *handed = None;
            }
            old.stop();
        }
        let Some(addr) = addr else {
            return Ok(());
        };
        let (control, engine) = (self.control.clone(), Some(self.engine.clone()));
        let actions = self.actions.clone();
        let server = match inherited {
            Some(socket) => Ok(socket),
            None => std::net::TcpListener::bind(addr),
        }
        .and_then(|socket| AdminServer::with_actions(socket, control, engine, actions))
        .map_err(|e| format!("cannot open the admin listener on {addr}: {e}"))?;
        if let Ok(mut handed) = self.handed.lock() {
            *handed = server.try_clone_listener().ok();
        }
        eprintln!(
            "ktcpvsd {}: admin listener http://{}/ (status page{}) /metrics /healthz /stats",
            env!("CARGO_PKG_VERSION"),
            server.local_addr(),
            if self.actions.is_some() {
                ", actions on"
            } else {
                ""
            }
        );
        self.serving = Some((addr, server));
        Ok(())
    }

    /// After a reload: the configuration's `admin =`, unless `--admin`
    /// fixed the address.
    fn follow_config(&mut self) {
        if self.fixed.is_some() {
            return;
        }
        let wanted = self.control.config().admin.or(self.fallback);
        if let Err(e) = self.serve(wanted) {
            log::error!("{e}");
        }
    }
}

/// The access log `--access-log` asks for, with the `access_log` setting
/// turned to `common` unless `--sysctl` set it.
fn open_access_log(options: &Options, control: &Control) -> Result<Option<AccessLog>, String> {
    let Some(path) = &options.access_log else {
        return Ok(None);
    };
    let sink = if path.as_os_str() == "-" {
        Sink::Stderr
    } else {
        Sink::File(path.clone())
    };
    let log = AccessLog::start(sink, ACCESS_LOG_QUEUE)
        .map_err(|e| format!("cannot open the access log {}: {e}", path.display()))?;
    if !options.sysctl.iter().any(|(name, _)| name == "access_log") {
        control
            .execute(Command::Set {
                name: "access_log".into(),
                value: "1".into(),
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(Some(log))
}

/// Lines the access log holds in flight before it drops (and counts) more.
const ACCESS_LOG_QUEUE: usize = 16 * 1024;

/// Turns SIGHUP into [`Event::Reload`], SIGUSR1 into [`Event::Reopen`] and SIGTERM/SIGINT into
/// [`Event::Stop`], on a thread of their own.
fn forward_signals(
    events: mpsc::Sender<Event>,
) -> std::io::Result<(signal_hook::iterator::Handle, std::thread::JoinHandle<()>)> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])?;
    let handle = signals.handle();
    let thread = std::thread::spawn(move || {
        for signal in signals.forever() {
            let event = match signal {
                SIGHUP => Event::Reload,
                SIGUSR1 => Event::Reopen,
                _ => Event::Stop,
            };
            if events.send(event).is_err() {
                return;
            }
        }
    });
    Ok((handle, thread))
}

/// SIGHUP: the `-f` file again as one transaction (a bad file changes
/// nothing), then every TLS service's certificate files (a bad one changes
/// nothing either; the certificates in use stay).
fn reload(options: &Options, control: &Control) {
    if let Some(path) = &options.config {
        match control.load_file(path) {
            Ok(()) => log::warn!("reloaded {}", path.display()),
            Err(e) => log::error!("reload of {} refused, nothing changed: {e}", path.display()),
        }
    }
    let tls = control
        .config()
        .services
        .iter()
        .any(|s| s.config.tls.is_some());
    if tls {
        match control.execute(Command::ReloadCertificates) {
            Ok(()) => log::warn!("reloaded the certificates"),
            Err(e) => log::error!("certificate reload refused, those in use stay: {e}"),
        }
    }
}

/// Serves until stopped: SIGHUP reloads the `-f` file as one transaction,
/// SIGTERM/SIGINT drain gracefully, `unload` drains and exits.
fn run_until_stopped(
    options: &Options,
    control: &Control,
    engine: &EngineHandle,
    wake: &mpsc::Receiver<Event>,
    access_log: Option<&AccessLog>,
    admin: &mut Admin,
) {
    loop {
        match wake.recv() {
            Ok(Event::Reload) => {
                reload(options, control);
                admin.follow_config();
                if let Some(log) = access_log {
                    log.reopen();
                }
            }
            Ok(Event::Reopen) => {
                if let Some(log) = access_log {
                    log.reopen();
                }
            }
            Ok(Event::Stop) => {
                log::warn!("stopping: draining connections (up to {STOP_GRACE:?})");
                engine.shutdown(STOP_GRACE);
                return;
            }
            Ok(Event::Unload) => {
                log::warn!("unload requested: draining and exiting");
                return;
            }
            Ok(Event::HandedOver(grace)) => {
                let grace = grace.unwrap_or(STOP_GRACE);
                log::warn!(
                    "handed over to a new ktcpvsd: stopping accepts, finishing exchanges (up to {grace:?}), then exiting"
                );
                // The admin socket is the new daemon's now too: stop
                // answering on it (the socket stays open over there).
                let _ = admin.serve(None);
                engine.shutdown(grace);
                return;
            }
            Ok(Event::Drain(delay)) => {
                log::warn!(
                    "drain requested: /healthz fails now; serving {}s more, then draining and exiting",
                    delay.as_secs()
                );
                announce_then_stop(delay, engine, wake);
                return;
            }
            Err(_) => return,
        }
    }
}

/// The node announced it is leaving (`/healthz` fails): it keeps serving
/// for `delay` so the tier in front stops sending, then stops accepting
/// and finishes its requests. SIGTERM meanwhile cuts the wait short.
fn announce_then_stop(delay: Duration, engine: &EngineHandle, wake: &mpsc::Receiver<Event>) {
    let until = std::time::Instant::now() + delay;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match wake.recv_timeout(left) {
            Ok(Event::Stop | Event::Unload | Event::HandedOver(_)) => break,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    log::warn!("drain: stopping accepts, finishing requests (up to {STOP_GRACE:?})");
    engine.shutdown(STOP_GRACE);
}

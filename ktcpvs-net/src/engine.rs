//! The engine: builder, handle, and the coordination of listeners with the
//! configuration.
//!
//! [`EngineBuilder::start`] creates one worker per thread and registers
//! a watcher on the [`Control`]: after every published change the watcher
//! compares the running services with the listeners it has opened (by the
//! stable [`ServiceId`]) and opens, moves or closes listeners. Sockets are
//! bound here, on the control path, one per worker with `SO_REUSEPORT`
//! (the first bind resolves port 0), and handed to the workers through
//! their inboxes; a worker's waker makes it act at once. Workers read the
//! rest of the configuration themselves from the `arc-swap` snapshot.
//!
//! Stopping: [`EngineHandle::shutdown`] (or the `unload` setting) sends
//! every worker a drain message: close the listeners, close idle keep-alive
//! connections, finish in-flight requests until the grace deadline, then
//! close what is left and exit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ktcpvs_core::snapshot::ServiceId;
use ktcpvs_core::{Control, Snapshot};
use parking_lot::Mutex;

use crate::access_log::AccessLog;
use crate::error::EngineError;
use crate::listener::{bind_group, inherited_group, ClientGate, Group};
use crate::stats::{WorkerSnapshot, WorkerStats};
use crate::upstream::checker::Checker;
use crate::worker::{Inbox, Message, Worker};

/// The grace period given to in-flight requests when the `unload` setting
/// asks the engine to stop.
pub const UNLOAD_GRACE: Duration = Duration::from_secs(10);

/// The relay engine. Build one with [`Engine::builder`].
#[derive(Debug)]
pub struct Engine;

impl Engine {
    /// A builder for an engine serving the services of `control`.
    pub fn builder(control: Control) -> EngineBuilder {
        EngineBuilder {
            control,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            access_log: None,
            inherited: Vec::new(),
        }
    }
}

/// Chooses how the engine runs, then starts it.
#[derive(Debug)]
pub struct EngineBuilder {
    control: Control,
    workers: usize,
    access_log: Option<AccessLog>,
    inherited: Vec<std::net::TcpListener>,
}

/// One service's listeners, as opened.
#[derive(Debug)]
struct Listening {
    name: String,
    configured: SocketAddr,
    bound: SocketAddr,
    gate: Arc<ClientGate>,
    /// The service's distinct sockets (the workers hold handles on them):
    /// kept to hand over to a next process. Dropped with the entry, when
    /// the workers close theirs.
    sockets: Vec<std::net::TcpListener>,
}

/// One listening socket of a running service, duplicated for the host
/// (see [`EngineHandle::listeners`]).
#[derive(Debug)]
pub struct ListeningSocket {
    /// The service's name.
    pub service: String,
    /// The address the socket is bound to.
    pub addr: SocketAddr,
    /// A new descriptor on the socket (close-on-exec); the engine keeps
    /// its own.
    pub socket: std::net::TcpListener,
}

#[derive(Debug, Default)]
struct Table {
    generation: u64,
    services: HashMap<ServiceId, Listening>,
    stopped: bool,
}

/// What the engine's threads and the control watcher share.
struct Shared {
    /// Listening sockets the host handed over, by address (several for an
    /// address when a previous process bound one per worker).
    inherited: HashMap<SocketAddr, Vec<std::net::TcpListener>>,
    inboxes: Vec<Arc<Inbox>>,
    /// Each worker's figures.
    workers: Vec<Arc<WorkerStats>>,
    /// The access log the workers write, if any.
    access_log: Option<AccessLog>,
    table: Mutex<Table>,
    /// Tells the health-check thread to stop.
    stop_checks: Arc<AtomicBool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop_checks.store(true, Ordering::Relaxed);
    }
}

impl Shared {
    /// Opens and closes listeners to match `snapshot`. Returns the bind
    /// failures (they are also logged).
    fn sync(&self, snapshot: &Snapshot) -> Vec<EngineError> {
        let mut table = self.table.lock();
        let mut failures = Vec::new();
        if table.stopped || snapshot.generation() < table.generation {
            return failures;
        }
        table.generation = snapshot.generation();
        let backlog = u32::try_from(snapshot.settings().max_backlog()).unwrap_or(u32::MAX);
        // Close listeners of services gone, stopped or moved.
        let gone: Vec<ServiceId> = table
            .services
            .iter()
            .filter(|(id, l)| {
                snapshot.service_by_id(**id).map_or(true, |s| {
                    !s.is_running() || s.config().listen != l.configured
                })
            })
            .map(|(id, _)| *id)
            .collect();
        let mut moved_gates = HashMap::new();
        for id in gone {
            if let Some(l) = table.services.remove(&id) {
                log::info!("[{}] stopped listening on {}", l.name, l.bound);
                for inbox in &self.inboxes {
                    inbox.send(Message::Close { service: id });
                }
                moved_gates.insert(id, l.gate);
            }
        }
        for service in snapshot.services().iter().filter(|s| s.is_running()) {
            if table.services.contains_key(&service.id()) {
                continue;
            }
            let name = &service.config().name;
            let listen = service.config().listen;
            let opened = match self.inherited.get(&listen) {
                Some(sockets) => inherited_group(sockets, self.inboxes.len()),
                None => bind_group(listen, backlog, self.inboxes.len()),
            };
            match opened {
                Ok(Group {
                    sockets,
                    handles,
                    bound,
                }) => {
                    let gate = moved_gates
                        .remove(&service.id())
                        .unwrap_or_else(|| Arc::new(ClientGate::new()));
                    for (worker, listener) in handles {
                        if let Some(inbox) = self.inboxes.get(worker) {
                            inbox.send(Message::Open {
                                service: service.id(),
                                listener,
                                gate: Arc::clone(&gate),
                            });
                        }
                    }
                    log::info!("[{name}] listening on {bound}");
                    table.services.insert(
                        service.id(),
                        Listening {
                            name: name.clone(),
                            configured: listen,
                            bound,
                            gate,
                            sockets,
                        },
                    );
                }
                Err(source) => {
                    log::error!("[{name}] cannot listen on {listen}: {source}");
                    failures.push(EngineError::Bind {
                        service: name.clone(),
                        addr: listen,
                        source,
                    });
                }
            }
        }
        if snapshot.is_unloading() {
            log::info!("unload requested; draining");
            self.drain(&mut table, UNLOAD_GRACE);
        }
        failures
    }

    fn drain(&self, table: &mut Table, grace: Duration) {
        if table.stopped {
            return;
        }
        table.stopped = true;
        table.services.clear();
        let deadline = Instant::now() + grace;
        for inbox in &self.inboxes {
            inbox.send(Message::Drain { deadline });
        }
    }
}

/// Inherited sockets grouped by the address they are bound to (a socket
/// whose address cannot be read is dropped).
fn by_address(
    sockets: Vec<std::net::TcpListener>,
) -> HashMap<SocketAddr, Vec<std::net::TcpListener>> {
    let mut map: HashMap<SocketAddr, Vec<std::net::TcpListener>> = HashMap::new();
    for socket in sockets {
        match socket.local_addr() {
            Ok(addr) => map.entry(addr).or_default().push(socket),
            Err(e) => log::warn!("an inherited socket has no address ({e}); not used"),
        }
    }
    map
}

impl EngineBuilder {
    /// How many worker threads (default: the available parallelism).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Where the workers write the access log; its format (or off) is the
    /// runtime setting `access_log`. Without one, nothing is logged.
    pub fn access_log(mut self, log: AccessLog) -> Self {
        self.access_log = Some(log);
        self
    }

    /// A listening socket the host already holds (from systemd socket
    /// activation, or handed over by a previous process): a running service
    /// whose `listen` address is the socket's address accepts on it instead
    /// of binding its own, so no connection waiting in its queue is lost.
    /// The socket stays the engine's while the engine runs, even when no
    /// service uses it at the moment.
    ///
    /// Several sockets may be given for one address (a previous process
    /// bound one per worker with `SO_REUSEPORT`, each with its own accept
    /// queue): the service accepts from all of them, each socket from at
    /// least one worker.
    pub fn inherit(mut self, listener: std::net::TcpListener) -> Self {
        self.inherited.push(listener);
        self
    }

    /// Starts the workers and opens the listeners of every running service.
    /// Fails if a listener cannot be opened (nothing keeps running then).
    pub fn start(self) -> Result<EngineHandle, EngineError> {
        if self.workers == 0 {
            return Err(EngineError::NoWorkers);
        }
        let mut workers = Vec::with_capacity(self.workers);
        for index in 0..self.workers {
            let worker = Worker::new(index, self.control.clone(), self.access_log.clone())
                .map_err(|source| EngineError::Poll {
                    worker: index,
                    source,
                })?;
            workers.push(worker);
        }
        let stop_checks = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            inherited: by_address(self.inherited),
            inboxes: workers.iter().map(Worker::inbox).collect(),
            workers: workers.iter().map(Worker::stats).collect(),
            access_log: self.access_log.clone(),
            table: Mutex::new(Table::default()),
            stop_checks: Arc::clone(&stop_checks),
        });
        let checks = std::thread::Builder::new()
            .name("ktcpvs-health".into())
            .spawn({
                let (control, stop) = (self.control.clone(), Arc::clone(&stop_checks));
                // The checker's buffers belong to its thread: made there.
                move || match Checker::new(control, stop) {
                    Ok(checker) => checker.run(),
                    Err(e) => log::error!("health checks cannot run: {e}"),
                }
            })
            .map_err(|source| EngineError::Spawn { worker: 0, source })?;
        let mut threads = Vec::with_capacity(workers.len());
        for (index, worker) in workers.into_iter().enumerate() {
            let spawned = std::thread::Builder::new()
                .name(format!("ktcpvs-worker-{index}"))
                .spawn(move || worker.run());
            match spawned {
                Ok(t) => threads.push(t),
                Err(source) => {
                    let handle = EngineHandle {
                        shared,
                        threads,
                        checks,
                        stop_checks,
                    };
                    handle.shutdown(Duration::ZERO);
                    let _ = handle.wait();
                    return Err(EngineError::Spawn {
                        worker: index,
                        source,
                    });
                }
            }
        }
        let handle = EngineHandle {
            shared: Arc::clone(&shared),
            threads,
            checks,
            stop_checks,
        };
        // Bind the listeners of the current snapshot first, so a failure
        // comes back as its typed error.
        let failures = shared.sync(&self.control.snapshot());
        if let Some(first) = failures.into_iter().next() {
            handle.shutdown(Duration::ZERO);
            let _ = handle.wait();
            return Err(first);
        }
        // Then listeners open and close as each snapshot is published; a
        // bind failure refuses the change (the control API rolls it back),
        // so an operator's `--start` on a busy address fails instead of
        // pretending to succeed.
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let activated = self.control.activate_with(Box::new(move |snapshot| {
            let Some(shared) = weak.upgrade() else {
                return Ok(());
            };
            let failures = shared.sync(snapshot);
            if failures.is_empty() {
                Ok(())
            } else {
                let reasons: Vec<String> = failures.iter().map(ToString::to_string).collect();
                Err(reasons.join("; "))
            }
        }));
        if let Err(e) = activated {
            // Only possible if the configuration changed in between.
            log::error!("{e}");
        }
        Ok(handle)
    }
}

/// A running engine.
pub struct EngineHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<std::io::Result<()>>>,
    /// The health-check thread.
    checks: JoinHandle<()>,
    stop_checks: Arc<AtomicBool>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("workers", &self.threads.len())
            .finish()
    }
}

impl EngineHandle {
    /// The address a running service is bound to (port 0 in the
    /// configuration resolved to the real port), or `None` when the
    /// service is not listening.
    pub fn local_addr(&self, service: &str) -> Option<SocketAddr> {
        let table = self.shared.table.lock();
        table
            .services
            .values()
            .find(|l| l.name == service)
            .map(|l| l.bound)
    }

    /// Every listening socket of every running service, duplicated (for a
    /// binary upgrade: the next process accepts from the very sockets, so
    /// no connection waiting in an accept queue is lost when this engine
    /// closes its own). Each service has one socket per worker (each with
    /// its own accept queue), or the sockets it inherited. Empty once the
    /// engine drains.
    pub fn listeners(&self) -> std::io::Result<Vec<ListeningSocket>> {
        let table = self.shared.table.lock();
        let mut out = Vec::new();
        for l in table.services.values() {
            for socket in &l.sockets {
                out.push(ListeningSocket {
                    service: l.name.clone(),
                    addr: l.bound,
                    socket: socket.try_clone()?,
                });
            }
        }
        Ok(out)
    }

    /// Each worker's figures (event-loop iterations, sessions, pooled
    /// backend connections, buffers lent), in worker order.
    pub fn worker_stats(&self) -> Vec<WorkerSnapshot> {
        self.observer().worker_stats()
    }

    /// Whether the engine is draining or stopped (after
    /// [`shutdown`](Self::shutdown) or `unload`): it accepts nothing new.
    pub fn is_draining(&self) -> bool {
        self.observer().is_draining()
    }

    /// A handle another thread may keep to read the engine's figures (an
    /// admin listener, a host's exporter); it does not keep the engine
    /// alive.
    pub fn observer(&self) -> EngineObserver {
        EngineObserver {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// Stops gracefully, without blocking: stop accepting, close idle
    /// keep-alive connections, let in-flight requests finish within
    /// `grace`, then close everything. [`wait`](Self::wait) for the end.
    pub fn shutdown(&self, grace: Duration) {
        let mut table = self.shared.table.lock();
        self.shared.drain(&mut table, grace);
    }

    /// Waits for the workers to finish (after [`shutdown`](Self::shutdown)
    /// or the `unload` setting).
    pub fn wait(self) -> Result<(), EngineError> {
        let mut result = Ok(());
        for (worker, thread) in self.threads.into_iter().enumerate() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    if result.is_ok() {
                        result = Err(EngineError::Worker { worker, source });
                    }
                }
                Err(_) => {
                    if result.is_ok() {
                        result = Err(EngineError::WorkerPanicked { worker });
                    }
                }
            }
        }
        self.stop_checks.store(true, Ordering::Relaxed);
        if self.checks.join().is_err() {
            log::error!("the health-check thread panicked");
        }
        result
    }
}

/// A read-only view of a running engine, cheap to clone and to keep on
/// another thread (see [`EngineHandle::observer`]). Once the engine is
/// gone it reports no workers and "draining".
#[derive(Debug, Clone)]
pub struct EngineObserver {
    shared: Weak<Shared>,
}

impl EngineObserver {
    /// Each worker's figures, in worker order (none once the engine is gone).
    pub fn worker_stats(&self) -> Vec<WorkerSnapshot> {
        self.shared
            .upgrade()
            .map(|s| s.workers.iter().map(|w| w.snapshot()).collect())
            .unwrap_or_default()
    }

    /// The access log's lines written and dropped (its queue full), when
    /// the engine has one.
    pub fn access_log(&self) -> Option<(u64, u64)> {
        let shared = self.shared.upgrade()?;
        let log = shared.access_log.as_ref()?;
        Some((log.written(), log.dropped()))
    }

    /// Whether the engine drains, stopped or is gone.
    pub fn is_draining(&self) -> bool {
        self.shared
            .upgrade()
            .map_or(true, |s| s.table.lock().stopped)
    }
}

//! One worker thread: a `mio::Poll`, the listeners of every running service
//! (its own `SO_REUSEPORT` sockets), a slab of sessions, the backend
//! connections, a buffer pool and a timer heap. Nothing here is shared with
//! other workers except the configuration snapshot (read with `load()`),
//! the live counters (atomics) and a small inbox the control path fills.
//!
//! The loop: poll (timeout = the next deadline) → for each event, accept
//! until `WouldBlock` or drive the session that owns the token → fire due
//! timers → re-drive sessions starved of buffers → resume listeners paused
//! at `maxclients` → read the inbox when the waker fired.
//!
//! Tokens name what an event is about (see [`crate::token`]): a client
//! socket, a backend connection, a listener or the waker.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ktcpvs_core::snapshot::{ServiceId, ServiceSnapshot, TimeoutKind};
use ktcpvs_core::{Control, Snapshot};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Waker};
use parking_lot::Mutex;
use slab::Slab;

use crate::access_log::AccessLog;
use crate::io::buffer::{BufferPool, BUFFER_SIZE};
use crate::listener::ClientGate;
use crate::nap::{Load, Nap, Napping};
use crate::proxy_protocol::Addresses;
use crate::resource::{is_local_exhaustion, warn_exhaustion};
use crate::session::{self, Cause, Ctx, Flow, Kind, Peer, Session, Spares};
use crate::stats::WorkerStats;
use crate::timer::{Due, Timers};
use crate::token;
use crate::upstream::pool::Backends;

/// Most buffers one worker keeps out at once (backpressure above).
const MAX_BUFFERS: usize = 16 * 1024;

/// How often a paused listener, a starved session or a drain is looked at.
const TICK: Duration = Duration::from_millis(20);

/// How long a draining worker leaves idle keep-alive connections open: a
/// client that sends its next request meanwhile is served, with
/// `Connection: close` (closing an idle connection races with a request the
/// client may be sending on it, which the client would see fail: the
/// race HAProxy's `idle-close-on-response` avoids the same way). Busy
/// clients make a request well within it; only connections idle for this
/// long are closed without one.
const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// How often requests waiting in a service's queue look for a free slot.
const QUEUE_TICK: Duration = Duration::from_millis(1);

/// How often idle pooled backend connections are swept for expiry.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A message from the control path to a worker.
#[derive(Debug)]
pub enum Message {
    /// Start accepting on this socket for a service.
    Open {
        /// The service.
        service: ServiceId,
        /// This worker's socket.
        listener: TcpListener,
        /// The service's `maxclients` gate.
        gate: Arc<ClientGate>,
    },
    /// Stop accepting for a service (its connections go on).
    Close {
        /// The service.
        service: ServiceId,
    },
    /// Stop accepting everything, finish what is in flight before
    /// `deadline`, then exit.
    Drain {
        /// When to close whatever is left.
        deadline: Instant,
    },
}

/// The control path's side of a worker: a message queue and the waker.
#[derive(Debug)]
pub struct Inbox {
    messages: Mutex<Vec<Message>>,
    waker: Waker,
}

impl Inbox {
    /// Queues a message and wakes the worker.
    pub fn send(&self, message: Message) {
        self.messages.lock().push(message);
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake a worker: {e}");
        }
    }
}

/// Whether sockets accepted on a listener come with `TCP_NODELAY` (set on
/// the listener, which Linux copies to accepted sockets) or need it set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nodelay {
    /// Not known until the first accepted socket is looked at.
    Unknown,
    /// Accepted sockets have it: nothing to do per connection.
    Inherited,
    /// Each accepted socket gets a `setsockopt`.
    PerSocket,
}

impl Nodelay {
    /// Makes sure `stream` has `TCP_NODELAY`, learning on the first socket
    /// whether the listener passes it on.
    fn apply(&mut self, stream: &mio::net::TcpStream) {
        if *self == Nodelay::Unknown {
            *self = if stream.nodelay().unwrap_or(false) {
                Nodelay::Inherited
            } else {
                Nodelay::PerSocket
            };
        }
        if *self == Nodelay::PerSocket {
            let _ = stream.set_nodelay(true);
        }
    }
}

/// Whether a listener is accepting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    /// Yes: each readiness event accepts until `WouldBlock`.
    Open,
    /// Paused at `maxclients`: looked at every [`TICK`] until a slot frees.
    Full,
    /// Paused because `accept` failed, most often because the process ran
    /// out of descriptors: tried again at `retry`, the pause doubling from
    /// [`MIN_ACCEPT_PAUSE`] to [`MAX_ACCEPT_PAUSE`] while it keeps failing,
    /// so a process at its limit neither spins nor logs on every tick.
    Failing { retry: Instant, pause: Duration },
}

/// The first pause after `accept` fails.
const MIN_ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between two `accept` attempts that keep failing.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

struct WorkerListener {
    service: ServiceId,
    listener: TcpListener,
    gate: Arc<ClientGate>,
    nodelay: Nodelay,
    accepting: Accepting,
}

impl WorkerListener {
    /// Whether the loop should try `accept` on it now, without an event.
    fn due(&self, now: Instant) -> bool {
        match self.accepting {
            Accepting::Open => false,
            Accepting::Full => true,
            Accepting::Failing { retry, .. } => now >= retry,
        }
    }

    /// Accepts one connection for `service` within its `maxclients` slot;
    /// `None` when there is none now (`WouldBlock`), the service is full,
    /// or `accept` failed (the listener then pauses, see [`Accepting`]).
    fn accept_one(
        &mut self,
        service: &ServiceSnapshot,
        now: Instant,
    ) -> Option<(TcpStream, SocketAddr)> {
        let config = service.config();
        if !self.gate.try_enter(config.maxclients) {
            if self.accepting != Accepting::Full {
                log::debug!(
                    "[{}] at maxclients ({}); pausing accepts",
                    config.name,
                    config.maxclients
                );
            }
            self.accepting = Accepting::Full;
            return None;
        }
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if let Accepting::Failing { .. } = self.accepting {
                        log::info!("[{}] accepting again", config.name);
                    }
                    self.accepting = Accepting::Open;
                    self.nodelay.apply(&stream);
                    return Some((stream, peer));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accepting = Accepting::Open;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(e) => self.accept_failed(&config.name, &e, now),
            }
            self.gate.leave();
            return None;
        }
    }

    /// `accept` failed (most often: out of descriptors): pause, doubling
    /// the pause while it keeps failing; say so once.
    fn accept_failed(&mut self, service: &str, e: &io::Error, now: Instant) {
        let pause = match self.accepting {
            Accepting::Failing { pause, .. } => (pause * 2).min(MAX_ACCEPT_PAUSE),
            Accepting::Open | Accepting::Full => {
                let what = format!("accepting for {service}");
                if is_local_exhaustion(e) {
                    warn_exhaustion(&what, e);
                } else {
                    log::warn!("{what}: {e}; pausing accepts");
                }
                MIN_ACCEPT_PAUSE
            }
        };
        self.accepting = Accepting::Failing {
            retry: now + pause,
            pause,
        };
    }
}

/// A worker before its thread starts: its poller and its inbox (both may
/// move to the thread). The rest of its state is made on the thread
/// itself, since the buffer pool is the thread's alone.
pub(crate) struct Worker {
    index: usize,
    inbox: Arc<Inbox>,
    poll: Poll,
    control: Control,
    stats: Arc<WorkerStats>,
    access_log: Option<AccessLog>,
}

/// One running worker's whole state.
struct Loop {
    index: usize,
    inbox: Arc<Inbox>,
    stats: Arc<WorkerStats>,
    res: Resources,
    listeners: Slab<WorkerListener>,
    sessions: Slab<Session>,
    timers: Timers,
    starved: Vec<usize>,
    retry_starved: Vec<usize>,
    /// Sessions whose request waits in its service's queue, oldest first.
    queued: Vec<usize>,
    retry_queued: Vec<usize>,
    /// Sessions to drive again once this iteration's events are handled.
    deferred: Vec<usize>,
    redrive_deferred: Vec<usize>,
    last_sweep: Instant,
    nap: Nap,
    /// When the last poll returned: the iteration since began then.
    polled_at: Instant,
}

/// What sessions are driven with, apart from the sessions themselves: kept
/// in one field so a session can stay borrowed from the slab while its
/// [`Ctx`] borrows these.
struct Resources {
    poll: Poll,
    control: Control,
    backends: Backends,
    pool: BufferPool,
    /// Emptied HTTP session boxes, reused by the next connection that
    /// needs one (a new one, or a parked one whose client sent again).
    spares: Spares,
    /// Set when draining: finish requests, keep nothing alive.
    drain: Option<Drain>,
    /// Where requests are logged, if anywhere.
    access_log: Option<AccessLog>,
    /// The published configuration as of this loop iteration (see
    /// [`Resources::refresh_snapshot`]).
    snapshot: Arc<Snapshot>,
    /// Exchanges in flight beside another on the same client connection
    /// (see [`Ctx::multiplexed`]).
    multiplexed: usize,
}

/// A drain in progress.
#[derive(Debug, Clone, Copy)]
struct Drain {
    /// When whatever is still open is closed.
    deadline: Instant,
    /// From when idle connections are closed (see [`DRAIN_IDLE_GRACE`]).
    close_idle_from: Instant,
}

impl Resources {
    /// Takes the published configuration if it changed: once at each
    /// stage of a loop iteration, so sessions read it without a load of
    /// their own, and a change is seen from the next stage on.
    fn refresh_snapshot(&mut self) {
        let current = self.control.snapshot_cell().load();
        if !Arc::ptr_eq(&current, &self.snapshot) {
            self.snapshot = arc_swap::Guard::into_inner(current);
        }
    }

    /// The context for driving session `key` at `now`.
    fn ctx(&mut self, key: usize, now: Instant) -> Ctx<'_> {
        Ctx {
            registry: self.poll.registry(),
            pool: &mut self.pool,
            backends: &mut self.backends,
            now,
            key,
            snapshot: &self.snapshot,
            draining: self.drain.is_some(),
            spares: &mut self.spares,
            access_log: self.access_log.as_ref(),
            origin: None,
            cause: Cause::Other,
            multiplexed: &mut self.multiplexed,
        }
    }
}

impl Worker {
    /// A worker with its poller and inbox, not yet running.
    pub fn new(
        index: usize,
        control: Control,
        access_log: Option<AccessLog>,
    ) -> io::Result<Worker> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), token::WAKER)?;
        Ok(Worker {
            index,
            inbox: Arc::new(Inbox {
                messages: Mutex::new(Vec::new()),
                waker,
            }),
            poll,
            control,
            stats: Arc::new(WorkerStats::default()),
            access_log,
        })
    }

    /// This worker's figures, for metrics.
    pub fn stats(&self) -> Arc<WorkerStats> {
        Arc::clone(&self.stats)
    }

    /// The control path's handle on this worker.
    pub fn inbox(&self) -> Arc<Inbox> {
        Arc::clone(&self.inbox)
    }

    /// Runs the worker on the calling thread until a drain finishes.
    pub fn run(self) -> io::Result<()> {
        Loop {
            index: self.index,
            inbox: self.inbox,
            stats: self.stats,
            res: Resources {
                poll: self.poll,
                backends: Backends::new(),
                pool: BufferPool::new(BUFFER_SIZE, MAX_BUFFERS),
                spares: Spares::new(),
                drain: None,
                access_log: self.access_log,
                snapshot: self.control.snapshot_cell().load_full(),
                control: self.control,
                multiplexed: 0,
            },
            listeners: Slab::new(),
            sessions: Slab::with_capacity(1024),
            timers: Timers::new(),
            starved: Vec::with_capacity(64),
            retry_starved: Vec::with_capacity(64),
            queued: Vec::new(),
            retry_queued: Vec::new(),
            deferred: Vec::with_capacity(64),
            redrive_deferred: Vec::with_capacity(64),
            last_sweep: Instant::now(),
            nap: Nap::default(),
            polled_at: Instant::now(),
        }
        .run()
    }
}

impl Loop {
    /// Waits for events, up to `timeout`, from `now`: first napping when
    /// they have been arriving faster than the nap (see [`crate::nap`]);
    /// the time it returned, which the next loop iteration goes on with.
    fn poll(
        &mut self,
        events: &mut Events,
        mut timeout: Option<Duration>,
        now: Instant,
    ) -> io::Result<Instant> {
        let nap = Duration::from_micros(self.res.snapshot.settings().poll_nap_us());
        let mut start = now;
        let load = Load {
            busy: self.res.backends.busy_count(),
            multiplexed: self.res.multiplexed,
            worked: now.saturating_duration_since(self.polled_at),
        };
        if let Some(napping) = self.nap.before_poll(nap, timeout, load) {
            let nap = match napping {
                Napping::Always(nap) => nap,
                Napping::WhenIdle(nap) => {
                    self.res.poll.poll(events, Some(Duration::ZERO))?;
                    if !events.is_empty() {
                        self.polled_at = Instant::now();
                        return Ok(self.polled_at);
                    }
                    nap
                }
            };
            std::thread::sleep(nap);
            timeout = timeout.map(|t| t.saturating_sub(nap));
            start = Instant::now();
        }
        self.res.poll.poll(events, timeout)?;
        let polled = Instant::now();
        self.nap.waited(polled.saturating_duration_since(start));
        self.polled_at = polled;
        Ok(polled)
    }

    /// Runs the loop until a drain finishes.
    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut messages = Vec::with_capacity(8);
        loop {
            let now = Instant::now();
            self.res.refresh_snapshot();
            let mut timeout = self.timers.next_timeout(now);
            if let Some(tick) = self.tick(now) {
                timeout = Some(timeout.map_or(tick, |t| t.min(tick)));
            }
            let now = match self.poll(&mut events, timeout, now) {
                Ok(polled) => polled,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.res.refresh_snapshot();
            let mut woken = false;
            for event in events.iter() {
                match token::kind(event.token()) {
                    token::Kind::Waker => woken = true,
                    token::Kind::Listener(key) => self.accept(key, now),
                    token::Kind::Client(key) => {
                        if let Some(s) = self.sessions.get_mut(key) {
                            s.client.absorb(event);
                            self.drive_for(key, now, Cause::Client);
                        }
                    }
                    token::Kind::Backend(key) => {
                        let owner = match self.res.backends.get_mut(key) {
                            Some(b) => {
                                b.conn.absorb(event);
                                b.owner()
                            }
                            None => continue,
                        };
                        match owner {
                            Some(owner) => self.drive_for(owner, now, Cause::Backend(key)),
                            None => self.res.backends.on_idle_event(key),
                        }
                    }
                }
            }
            if woken {
                std::mem::swap(&mut messages, &mut *self.inbox.messages.lock());
                for message in messages.drain(..) {
                    self.handle(message, now);
                }
            }
            self.fire_timers(now);
            self.retry_starved(now);
            self.retry_queued(now);
            // Last: what the events, messages, timers and retries above
            // produced and deferred goes out in one write per session.
            self.drive_deferred(now);
            self.resume_listeners(now);
            self.sweep_pool(now);
            self.stats.update(
                self.sessions.len(),
                self.res.backends.idle_count(),
                self.res.pool.in_use(),
            );
            if let Some(Drain {
                deadline,
                close_idle_from,
            }) = self.res.drain
            {
                if now >= close_idle_from {
                    self.close_idle_sessions(now);
                }
                if self.sessions.is_empty() {
                    break;
                }
                if now >= deadline {
                    log::info!(
                        "worker {}: drain deadline passed; closing {} connection(s)",
                        self.index,
                        self.sessions.len()
                    );
                    let keys: Vec<usize> = self.sessions.iter().map(|(k, _)| k).collect();
                    for key in keys {
                        self.finish(key, now);
                    }
                    break;
                }
            }
        }
        self.res.backends.clear_idle();
        debug_assert!(
            !self.sessions.is_empty() || self.res.multiplexed == 0,
            "multiplexed exchanges counted with no session left: {}",
            self.res.multiplexed
        );
        Ok(())
    }

    /// How long the poller may sleep for the loop's own chores: [`TICK`]
    /// while something is retried by polling (a drain, starved sessions, a
    /// paused listener), the time to the next pool sweep while backend
    /// connections are pooled, and no limit otherwise, so an idle worker
    /// does not wake.
    fn tick(&self, now: Instant) -> Option<Duration> {
        let failing = self
            .listeners
            .iter()
            .filter_map(|(_, l)| match l.accepting {
                Accepting::Failing { retry, .. } => Some(retry.saturating_duration_since(now)),
                Accepting::Open | Accepting::Full => None,
            })
            .min();
        if !self.deferred.is_empty() {
            // Deferred writes are due now, not at the next event.
            return Some(Duration::ZERO);
        }
        if !self.queued.is_empty() {
            // A slot may free on any worker at any time: look often.
            return Some(QUEUE_TICK);
        }
        let tick = if self.res.drain.is_some()
            || !self.starved.is_empty()
            || self
                .listeners
                .iter()
                .any(|(_, l)| l.accepting == Accepting::Full)
        {
            Some(TICK)
        } else if self.res.backends.idle_count() > 0 {
            Some(SWEEP_EVERY.saturating_sub(now.duration_since(self.last_sweep)))
        } else {
            None
        };
        match (tick, failing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle(&mut self, message: Message, now: Instant) {
        match message {
            Message::Open {
                service,
                mut listener,
                gate,
            } => {
                if self.res.drain.is_some() {
                    return;
                }
                let entry = self.listeners.vacant_entry();
                let key = entry.key();
                if let Err(e) = self.res.poll.registry().register(
                    &mut listener,
                    token::listener(key),
                    Interest::READABLE,
                ) {
                    log::error!("worker {}: cannot register a listener: {e}", self.index);
                    return;
                }
                entry.insert(WorkerListener {
                    service,
                    listener,
                    gate,
                    nodelay: Nodelay::Unknown,
                    accepting: Accepting::Open,
                });
                // Connections may already wait in the backlog.
                self.accept(key, now);
            }
            Message::Close { service } => {
                self.listeners.retain(|_, l| l.service != service);
            }
            Message::Drain { deadline } => {
                self.listeners.clear();
                self.res.drain = Some(Drain {
                    deadline,
                    close_idle_from: (now + DRAIN_IDLE_GRACE).min(deadline),
                });
                // HTTP/2 clients are told at once (GOAWAY): they open no
                // new stream here, and the ones in flight finish.
                for key in self.session_keys(Session::is_h2) {
                    self.drive(key, now);
                }
            }
        }
    }

    /// Accepts until `WouldBlock`, or until the service is at `maxclients`.
    fn accept(&mut self, key: usize, now: Instant) {
        let control = self.res.control.clone();
        let snapshots = control.snapshot_cell();
        loop {
            let Some(l) = self.listeners.get_mut(key) else {
                return;
            };
            let snapshot = snapshots.load();
            let Some(service) = snapshot.service_by_id(l.service) else {
                return;
            };
            let Some((stream, peer)) = l.accept_one(service, now) else {
                return;
            };
            let gate = Arc::clone(&l.gate);
            let service = Arc::clone(service);
            drop(snapshot);
            self.open_session(stream, peer, service, gate, now);
        }
    }

    /// Starts the session of a connection just accepted and drives it.
    fn open_session(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        service: Arc<ServiceSnapshot>,
        gate: Arc<ClientGate>,
        now: Instant,
    ) {
        let trusted = &service.config().proxy_protocol;
        if !trusted.is_empty() && !trusted.contains(peer.ip()) {
            session::refuse_proxy(
                &service,
                peer,
                "not from a network trusted to send a PROXY protocol header",
            );
            gate.leave();
            return;
        }
        let Some(client) = session::client_conn(stream, &service) else {
            gate.leave();
            return;
        };
        service.load().connection_opened();
        let entry = self.sessions.vacant_entry();
        let skey = entry.key();
        let expects_proxy = !service.config().proxy_protocol.is_empty();
        // The address the client reached, for servers that expect a PROXY
        // protocol header (one `getsockname` per connection, only then).
        let destination = (!expects_proxy && service.sends_proxy())
            .then(|| {
                client
                    .stream()
                    .and_then(|s| s.local_addr())
                    .ok()
                    .map(Peer::of)
            })
            .flatten();
        let kind = if expects_proxy {
            let settings = self.res.control.snapshot_cell().load();
            let timeout = service.timeout(TimeoutKind::Header, settings.settings());
            Some(Kind::AwaitingProxy {
                until: now + timeout,
            })
        } else {
            let mut ctx = self.res.ctx(skey, now);
            ctx.origin = destination.map(|d| Addresses {
                source: peer,
                destination: d.addr(),
            });
            session::start_kind(peer, &service, &mut ctx)
        };
        let Some(kind) = kind else {
            gate.leave();
            service.load().connection_closed();
            return;
        };
        let session = Session {
            client,
            peer: Peer::of(peer),
            destination,
            service,
            gate,
            deadline: Default::default(),
            kind,
            registered: false,
        };
        entry.insert(session);
        self.drive(skey, now);
    }

    /// Drives one session and acts on its [`Flow`].
    fn drive(&mut self, key: usize, now: Instant) {
        self.drive_for(key, now, Cause::Other);
    }

    /// Drives one session for `cause` and acts on its [`Flow`].
    fn drive_for(&mut self, key: usize, now: Instant, cause: Cause) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        let mut ctx = self.res.ctx(key, now);
        ctx.cause = cause;
        let flow = session.drive(&mut ctx);
        self.settle(key, flow, now);
    }

    fn settle(&mut self, key: usize, flow: Flow, now: Instant) {
        if flow != Flow::Done && !self.register_client(key) {
            self.finish(key, now);
            return;
        }
        match flow {
            Flow::Open(at) => {
                if let Some(s) = self.sessions.get_mut(key) {
                    self.timers.set(key, &mut s.deadline, at);
                }
            }
            Flow::Starved(at) => {
                if let Some(s) = self.sessions.get_mut(key) {
                    self.timers.set(key, &mut s.deadline, at);
                }
                self.starved.push(key);
            }
            Flow::Deferred(at) => {
                if let Some(s) = self.sessions.get_mut(key) {
                    self.timers.set(key, &mut s.deadline, at);
                }
                if !self.deferred.contains(&key) {
                    self.deferred.push(key);
                }
            }
            Flow::Queued(at) => {
                if let Some(s) = self.sessions.get_mut(key) {
                    self.timers.set(key, &mut s.deadline, Some(at));
                }
                // Driven by an event while queued: it keeps its place.
                if !self.queued.contains(&key) {
                    self.queued.push(key);
                }
            }
            Flow::Done => self.finish(key, now),
        }
    }

    /// Registers session `key`'s client socket with the poller if it is
    /// waiting for the client and is not registered yet (see the lazy
    /// registration in the session module). `false` if that failed: the
    /// session cannot be woken and must close.
    fn register_client(&mut self, key: usize) -> bool {
        let Some(s) = self.sessions.get_mut(key) else {
            return true;
        };
        if s.registered || !s.needs_client_events() {
            return true;
        }
        let Some(stream) = s.client.socket_mut() else {
            return false;
        };
        match self.res.poll.registry().register(
            stream,
            token::client(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            Ok(()) => {
                s.registered = true;
                true
            }
            Err(e) => {
                log::warn!("worker {}: cannot register a client: {e}", self.index);
                false
            }
        }
    }

    /// Closes session `key` and releases what it holds.
    fn finish(&mut self, key: usize, now: Instant) {
        if !self.sessions.contains(key) {
            return;
        }
        let session = self.sessions.remove(key);
        let mut ctx = self.res.ctx(key, now);
        session.close(&mut ctx);
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some((key, tick)) = self.timers.pop_due(now) {
            let Some(session) = self.sessions.get_mut(key) else {
                continue;
            };
            if self.timers.resolve(key, tick, &mut session.deadline, now) != Due::Fire {
                continue;
            }
            let mut ctx = self.res.ctx(key, now);
            let flow = session.on_timeout(&mut ctx);
            self.settle(key, flow, now);
        }
    }

    /// Drives the sessions that deferred their writes to the end of this
    /// loop iteration's events (see [`Flow::Deferred`]).
    fn drive_deferred(&mut self, now: Instant) {
        if self.deferred.is_empty() {
            return;
        }
        std::mem::swap(&mut self.deferred, &mut self.redrive_deferred);
        let mut keys = std::mem::take(&mut self.redrive_deferred);
        for key in keys.drain(..) {
            let Some(session) = self.sessions.get_mut(key) else {
                continue;
            };
            let mut ctx = self.res.ctx(key, now);
            ctx.cause = Cause::Deferred;
            let flow = session.drive(&mut ctx);
            self.settle(key, flow, now);
        }
        self.redrive_deferred = keys;
    }

    fn retry_starved(&mut self, now: Instant) {
        if self.starved.is_empty() || !self.res.pool.has_available() {
            return;
        }
        std::mem::swap(&mut self.starved, &mut self.retry_starved);
        let mut keys = std::mem::take(&mut self.retry_starved);
        for key in keys.drain(..) {
            self.drive(key, now);
        }
        self.retry_starved = keys;
    }

    /// Drives every queued session again, oldest first, so each request
    /// takes a slot a server freed in the order it arrived; those still
    /// waiting queue again in the same order.
    fn retry_queued(&mut self, now: Instant) {
        if self.queued.is_empty() {
            return;
        }
        std::mem::swap(&mut self.queued, &mut self.retry_queued);
        let mut keys = std::mem::take(&mut self.retry_queued);
        for key in keys.drain(..) {
            self.drive(key, now);
        }
        self.retry_queued = keys;
    }

    fn resume_listeners(&mut self, now: Instant) {
        // Slab keys are below its capacity; this runs only while a
        // listener is paused, and allocates nothing.
        for key in 0..self.listeners.capacity() {
            if self.listeners.get(key).is_some_and(|l| l.due(now)) {
                self.accept(key, now);
            }
        }
    }

    fn sweep_pool(&mut self, now: Instant) {
        if self.res.backends.idle_count() == 0 || now.duration_since(self.last_sweep) < SWEEP_EVERY
        {
            return;
        }
        self.last_sweep = now;
        let keepalive = Duration::from_secs(
            self.res
                .control
                .snapshot_cell()
                .load()
                .settings()
                .keepalive_timeout(),
        );
        self.res.backends.sweep(now, keepalive);
    }

    /// The keys of the sessions `which` picks (taken out first, so that
    /// driving or closing them may change the slab).
    fn session_keys(&self, which: impl Fn(&Session) -> bool) -> Vec<usize> {
        self.sessions
            .iter()
            .filter(|(_, s)| which(s))
            .map(|(k, _)| k)
            .collect()
    }

    fn close_idle_sessions(&mut self, now: Instant) {
        for key in self.session_keys(Session::is_idle) {
            self.finish(key, now);
        }
    }
}

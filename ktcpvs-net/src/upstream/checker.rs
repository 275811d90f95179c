//! Active health checks: one thread of the engine, with its own poller,
//! that probes the real servers of every running service configured with
//! a `check` (see [`super::probe`]), off the request path: a slow or hung
//! server delays nobody's request, only its own next verdict.
//!
//! Each server is probed every `check_interval` (± `check_jitter` %, and
//! first at a random point of the interval, so probes of many services and
//! servers do not align), within `check_timeout`. `check_fall` failures in
//! a row take it down, `check_rise` passes in a row bring it back; each
//! change is logged once, counted and timed in the server's live state,
//! with the reason of the last failure. Quiesced servers are probed too,
//! so their state is known before they get weight again. When every
//! server of a pool (a rule's servers, or all of a service without rules)
//! is down and the service says `all_down = open`, its servers are let in
//! anyway; otherwise requests for that pool get "no server" (503).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ktcpvs_core::health::{AllDown, HealthConfig};
use ktcpvs_core::snapshot::{ServiceId, ServiceSnapshot};
use ktcpvs_core::{Control, ServerLoad, Snapshot};
use mio::{Events, Poll};
use slab::Slab;

use super::connect::{destination, Target};
use super::pool::Backends;
use super::probe::{check_request, Outcome, Probe};
use crate::io::buffer::{BufferPool, BUFFER_SIZE};
use crate::token;

/// Longest the checker sleeps, so that it notices a new configuration and
/// a stop request soon enough.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Most response buffers the checker holds at once (one per probe reading).
const MAX_BUFFERS: usize = 256;

/// One server of one service under watch.
struct Watched {
    load: Arc<ServerLoad>,
    /// When its next probe starts.
    next: Instant,
    /// Passes and failures in a row.
    passes: u32,
    fails: u32,
    /// The probe in flight, by its key in the probe slab.
    probe: Option<usize>,
}

/// A probe in flight and whom it is for.
struct InFlight {
    probe: Probe,
    of: (ServiceId, SocketAddr),
    deadline: Instant,
}

/// The checker's whole state.
pub(crate) struct Checker {
    control: Control,
    stop: Arc<AtomicBool>,
    poll: Poll,
    backends: Backends,
    pool: BufferPool,
    watched: HashMap<(ServiceId, SocketAddr), Watched>,
    probes: Slab<InFlight>,
    /// The snapshot generation the watch list was built from.
    generation: Option<u64>,
    random: u64,
}

impl Checker {
    /// A checker for the services `control` publishes, stopping when
    /// `stop` is set.
    pub fn new(control: Control, stop: Arc<AtomicBool>) -> io::Result<Checker> {
        let mut seed = RandomState::new().build_hasher();
        seed.write_u64(0x6b74_6370_7673);
        Ok(Checker {
            control,
            stop,
            poll: Poll::new()?,
            backends: Backends::new(),
            pool: BufferPool::new(BUFFER_SIZE, MAX_BUFFERS),
            watched: HashMap::new(),
            probes: Slab::new(),
            generation: None,
            random: seed.finish() | 1,
        })
    }

    /// Runs until stopped.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::Relaxed) {
            let snapshot = self.control.snapshot();
            let now = Instant::now();
            if self.generation != Some(snapshot.generation()) {
                self.generation = Some(snapshot.generation());
                self.reconcile(&snapshot, now);
            }
            self.start_due(&snapshot, now);
            let sleep = self.next_wake(now);
            if let Err(e) = self.poll.poll(&mut events, Some(sleep)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("health checker: poll failed: {e}");
                    std::thread::sleep(MAX_SLEEP);
                }
                continue;
            }
            for event in events.iter() {
                if let token::Kind::Backend(id) = token::kind(event.token()) {
                    let owner = match self.backends.get_mut(id) {
                        Some(b) => {
                            b.conn.absorb(event);
                            b.owner()
                        }
                        None => None,
                    };
                    if let Some(key) = owner {
                        self.drive(&snapshot, key);
                    }
                }
            }
            self.expire(Instant::now());
        }
        for p in self.probes.drain() {
            self.backends.close(p.probe.conn);
        }
    }

    /// Brings the watch list in line with `snapshot`: servers of running
    /// services with a check are watched (keeping the state of those
    /// watched already); servers no longer checked are up again as far as
    /// checks go.
    fn reconcile(&mut self, snapshot: &Snapshot, now: Instant) {
        let mut keep: HashMap<(ServiceId, SocketAddr), ()> = HashMap::new();
        for service in snapshot.services() {
            let health = &service.config().health;
            let checked = service.is_running() && health.check.is_some();
            for entry in service.server_entries() {
                let key = (service.id(), entry.config().addr);
                if !checked {
                    if entry.load().set_check_down(false, "") {
                        log::info!(
                            "[{}] real server {} is no longer checked",
                            service.config().name,
                            key.1
                        );
                    }
                    entry.load().set_admitted(false);
                    continue;
                }
                keep.insert(key, ());
                let first = self.jitter(health.interval, 100);
                let fresh = self
                    .watched
                    .get(&key)
                    .map_or(true, |w| !Arc::ptr_eq(&w.load, entry.load()));
                if fresh {
                    self.watched.insert(
                        key,
                        Watched {
                            load: Arc::clone(entry.load()),
                            next: now + first,
                            passes: 0,
                            fails: 0,
                            probe: None,
                        },
                    );
                }
            }
        }
        let gone: Vec<_> = self
            .watched
            .keys()
            .filter(|k| !keep.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            if let Some(w) = self.watched.remove(&key) {
                if let Some(p) = w.probe {
                    let p = self.probes.remove(p);
                    self.backends.close(p.probe.conn);
                }
            }
        }
        for service in snapshot.services() {
            admit(service);
        }
    }

    /// Starts the probes that are due.
    fn start_due(&mut self, snapshot: &Snapshot, now: Instant) {
        let due: Vec<_> = self
            .watched
            .iter()
            .filter(|(_, w)| w.probe.is_none() && w.next <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(service) = snapshot.service_by_id(key.0) else {
                continue;
            };
            let health = &service.config().health;
            let next = now + self.jitter(health.interval, health.jitter);
            let Some(index) = service
                .server_entries()
                .iter()
                .position(|e| e.config().addr == key.1)
            else {
                continue;
            };
            if let Some(w) = self.watched.get_mut(&key) {
                w.next = next;
            }
            let probe = self.probes.vacant_key();
            let started = destination(service, Target::Server(index))
                .and_then(|to| self.backends.connect(self.poll.registry(), to, probe, None));
            match started {
                Ok(conn) => {
                    let request = match health.check {
                        Some(ktcpvs_core::health::CheckKind::Http) => {
                            check_request(health, &key.1.to_string())
                        }
                        _ => Vec::new(),
                    };
                    self.probes.insert(InFlight {
                        probe: Probe::new(conn, request),
                        of: key,
                        deadline: now + health.timeout,
                    });
                    if let Some(w) = self.watched.get_mut(&key) {
                        w.probe = Some(probe);
                    }
                }
                Err(e) => self.verdict(service, key, Outcome::Failed(format!("connect: {e}"))),
            }
        }
    }

    /// Drives probe `key` after an event.
    fn drive(&mut self, snapshot: &Snapshot, key: usize) {
        let Some(p) = self.probes.get_mut(key) else {
            return;
        };
        let of = p.of;
        let Some(service) = snapshot.service_by_id(of.0) else {
            return;
        };
        let outcome = p
            .probe
            .step(&service.config().health, &mut self.backends, &mut self.pool);
        if outcome != Outcome::Pending {
            self.finish(key);
            self.verdict(service, of, outcome);
        }
    }

    /// Fails the probes whose timeout passed.
    fn expire(&mut self, now: Instant) {
        let late: Vec<usize> = self
            .probes
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k)
            .collect();
        if late.is_empty() {
            return;
        }
        let snapshot = self.control.snapshot();
        for key in late {
            let of = self.probes[key].of;
            self.finish(key);
            if let Some(service) = snapshot.service_by_id(of.0) {
                let health = &service.config().health;
                let why = format!("no answer within {} ms", health.timeout.as_millis());
                self.verdict(service, of, Outcome::Failed(why));
            }
        }
    }

    /// Ends probe `key` and closes its connection.
    fn finish(&mut self, key: usize) {
        let p = self.probes.remove(key);
        self.backends.close(p.probe.conn);
        if let Some(w) = self.watched.get_mut(&p.of) {
            w.probe = None;
        }
    }

    /// Counts a probe's outcome for server `of` and changes its state when
    /// `check_rise` passes or `check_fall` failures came in a row.
    fn verdict(
        &mut self,
        service: &ServiceSnapshot,
        of: (ServiceId, SocketAddr),
        outcome: Outcome,
    ) {
        let Some(w) = self.watched.get_mut(&of) else {
            return;
        };
        let health: &HealthConfig = &service.config().health;
        let name = &service.config().name;
        let changed = match outcome {
            Outcome::Pending => return,
            Outcome::Passed => {
                w.passes = w.passes.saturating_add(1);
                w.fails = 0;
                let up = w.load.is_check_down()
                    && w.passes >= health.rise
                    && w.load.set_check_down(false, "");
                if up {
                    log::info!(
                        "[{name}] real server {} is up: {} check(s) passed",
                        of.1,
                        w.passes
                    );
                }
                up
            }
            Outcome::Failed(why) => {
                w.fails = w.fails.saturating_add(1);
                w.passes = 0;
                log::debug!("[{name}] check of {} failed: {why}", of.1);
                let down = !w.load.is_check_down()
                    && w.fails >= health.fall
                    && w.load.set_check_down(true, &why);
                if down {
                    log::warn!(
                        "[{name}] real server {} is down: {} check(s) failed, last: {why}",
                        of.1,
                        w.fails
                    );
                }
                down
            }
        };
        if changed {
            admit(service);
        }
    }

    /// How long to sleep: until the next probe is due or times out, at
    /// most [`MAX_SLEEP`].
    fn next_wake(&self, now: Instant) -> Duration {
        let due = self
            .watched
            .values()
            .filter(|w| w.probe.is_none())
            .map(|w| w.next)
            .chain(self.probes.iter().map(|(_, p)| p.deadline))
            .min();
        due.map_or(MAX_SLEEP, |at| {
            at.saturating_duration_since(now).min(MAX_SLEEP)
        })
    }

    /// `interval` give or take `percent` % of it, at random.
    fn jitter(&mut self, interval: Duration, percent: u32) -> Duration {
        // xorshift64*
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        let r = self.random.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        let span = interval.as_micros() as u64 * u64::from(percent) / 100;
        if span == 0 {
            return interval;
        }
        let offset = r % (2 * span + 1);
        let base = interval.as_micros() as u64;
        Duration::from_micros((base + offset).saturating_sub(span).max(1))
    }
}

/// Lets the down servers of `service` in when it fails open and every
/// server of a pool they belong to is down; lets nobody in otherwise.
fn admit(service: &ServiceSnapshot) {
    let entries = service.server_entries();
    let open = service.config().health.all_down == AllDown::Open;
    let down = |i: &usize| entries.get(*i).map_or(true, |e| e.load().is_check_down());
    let rules = ktcpvs_core::VirtualService::rules(service);
    for (index, entry) in entries.iter().enumerate() {
        let admitted = open
            && entry.load().is_check_down()
            && if rules.is_empty() {
                (0..entries.len()).all(|i| down(&i))
            } else {
                rules
                    .iter()
                    .filter(|r| r.servers().contains(&index))
                    .any(|r| r.servers().iter().all(down))
            };
        if admitted != entry.load().is_admitted() {
            if admitted {
                log::warn!(
                    "[{}] every server of a pool of {} is down: failing open",
                    service.config().name,
                    entry.config().addr
                );
            }
            entry.load().set_admitted(admitted);
        }
    }
}

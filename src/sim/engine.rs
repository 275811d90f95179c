//! The discrete-event loop: one replay of a trace through one service.
//!
//! The clock is virtual (nanoseconds from the first arrival). Each trace
//! request arrives, is handed to the service's picker with the
//! [`PickRequest`] the engine would build, takes a lease on the server
//! picked ([`ServiceSnapshot::try_lease`], so least-connection counts and
//! `maxconn` behave as live), waits for a free slot of the simulated
//! server when it is at its capacity, and releases the lease when its
//! simulated response ends; its response time then feeds the server's
//! peak-EWMA average as the engine feeds `lrt`. A request that finds no
//! server because every candidate is at its `maxconn` waits in the
//! service's queue (`queue`, `queue_timeout`) as in the engine.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use ktcpvs_core::live::{response_time_decayed, response_time_step};
use ktcpvs_core::snapshot::{ServerEntry, ServiceSnapshot};
use ktcpvs_core::{
    Dispatch, Lease, PickRequest, RealServer, RequestHead, Rule, Selection, VirtualService,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::trace::{Trace, TraceRequest};
use super::{SimError, SimOptions};

/// A server as the picker sees it in the simulator: the snapshot's own
/// entry (weight, live leases, health, `maxconn`), with the response time
/// kept on the virtual clock instead of the process's monotonic one.
struct SimServer<'a> {
    entry: &'a ServerEntry,
    /// Peak-EWMA response time, µs (0: none), and when it was updated.
    ewma: Cell<(u64, u64)>,
    /// The virtual clock, µs.
    now: &'a Cell<u64>,
}

impl RealServer for SimServer<'_> {
    fn addr(&self) -> SocketAddr {
        self.entry.addr()
    }
    fn weight(&self) -> u32 {
        self.entry.weight()
    }
    fn active_connections(&self) -> u64 {
        self.entry.active_connections()
    }
    fn is_healthy(&self) -> bool {
        self.entry.is_healthy()
    }
    fn is_available(&self) -> bool {
        self.entry.is_available()
    }
    fn response_time(&self) -> Option<Duration> {
        let (us, at) = self.ewma.get();
        let now = response_time_decayed(us, at, self.now.get());
        (us != 0).then(|| Duration::from_micros(now.max(1)))
    }
}

/// The service as the picker sees it: the snapshot, whose servers are
/// [`SimServer`]s at the same indices.
struct SimService<'a> {
    snapshot: &'a ServiceSnapshot,
    servers: Vec<SimServer<'a>>,
}

impl VirtualService for SimService<'_> {
    fn name(&self) -> &str {
        self.snapshot.name()
    }
    fn server_count(&self) -> usize {
        self.servers.len()
    }
    fn server(&self, index: usize) -> &dyn RealServer {
        &self.servers[index]
    }
    fn rules(&self) -> &[Rule] {
        self.snapshot.rules()
    }
    fn option(&self, name: &str) -> Option<&str> {
        self.snapshot.option(name)
    }
    fn is_tls(&self) -> bool {
        self.snapshot.is_tls()
    }
}

/// What happens at an instant, ordered (with a sequence number) so that
/// equal instants resolve the same way on every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrive(usize),
    Done(usize),
    QueueTimeout(usize),
}

/// Why a request got no server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The scheduler found none (no rule, no available server): the
    /// engine relays to `redirect` or answers 503.
    NoServer,
    /// Every candidate was at its `maxconn` and the queue was full or off.
    QueueFull,
    /// It waited in the queue for `queue_timeout`.
    QueueTimeout,
}

/// The fate of one request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    /// The server and rule, once picked.
    pub selection: Option<Selection>,
    /// Why it got none.
    pub refused: Option<Refusal>,
    /// Arrival, dispatch (lease taken) and end, ns of the virtual clock.
    pub arrived: u64,
    pub dispatched: u64,
    pub done: u64,
}

/// Everything one replay measured.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub outcomes: Vec<Outcome>,
    /// Most leases each server held at once.
    pub peak: Vec<u64>,
    /// Requests that waited in the service's queue.
    pub queued: u64,
    /// The virtual time of the last event, ns.
    pub end: u64,
}

/// One replay in progress.
struct Sim<'a> {
    snapshot: &'a ServiceSnapshot,
    view: &'a SimService<'a>,
    now_us: &'a Cell<u64>,
    options: &'a SimOptions,
    rng: ChaCha8Rng,
    requests: &'a [TraceRequest],
    clients: &'a [SocketAddr],
    now: u64,
    seq: u64,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    leases: Vec<Option<Lease>>,
    capacity: Vec<u32>,
    busy: Vec<u32>,
    backlog: Vec<VecDeque<usize>>,
    queue: VecDeque<usize>,
    head_buf: Vec<u8>,
    out: Replay,
}

/// Replays `trace` through `snapshot` (fresh live state expected).
pub(crate) fn replay(
    snapshot: &ServiceSnapshot,
    trace: &Trace,
    clients: &[SocketAddr],
    options: &SimOptions,
) -> Result<Replay, SimError> {
    let now_us = Cell::new(0);
    let view = SimService {
        snapshot,
        servers: snapshot
            .server_entries()
            .iter()
            .map(|entry| SimServer {
                entry,
                ewma: Cell::new((0, 0)),
                now: &now_us,
            })
            .collect(),
    };
    let mut rng = options.rng();
    let arrivals = arrivals(trace, options, &mut rng);
    let n = snapshot.server_count();
    let mut sim = Sim {
        snapshot,
        view: &view,
        now_us: &now_us,
        options,
        rng,
        requests: &trace.requests,
        clients,
        now: 0,
        seq: 0,
        events: BinaryHeap::new(),
        leases: (0..trace.requests.len()).map(|_| None).collect(),
        capacity: snapshot
            .server_entries()
            .iter()
            .map(|e| options.capacity.get(&e.addr()).copied().unwrap_or(0))
            .collect(),
        busy: vec![0; n],
        backlog: vec![VecDeque::new(); n],
        queue: VecDeque::new(),
        head_buf: Vec::new(),
        out: Replay {
            outcomes: vec![Outcome::default(); trace.requests.len()],
            peak: vec![0; n],
            ..Replay::default()
        },
    };
    for (i, at) in arrivals.into_iter().enumerate() {
        sim.out.outcomes[i].arrived = at;
        sim.schedule(at, Event::Arrive(i));
    }
    sim.run()?;
    Ok(sim.out)
}

/// Arrival instants (ns from the first) in trace order: the trace's own
/// times when every request has one and no rate was asked for (requests
/// logged in one whole second spread evenly over it), else a Poisson
/// process at the rate.
fn arrivals(trace: &Trace, options: &SimOptions, rng: &mut ChaCha8Rng) -> Vec<u64> {
    let times: Option<Vec<u64>> = trace.requests.iter().map(|r| r.time_us).collect();
    match (options.rate, times) {
        (None, Some(times)) => spread(&times),
        (rate, _) => {
            let rate = rate.unwrap_or(super::DEFAULT_RATE);
            let mut t = 0.0_f64;
            (0..trace.requests.len())
                .map(|_| {
                    let u: f64 = rng.gen();
                    t += -(1.0 - u).ln() / rate * 1e9;
                    t as u64
                })
                .collect()
        }
    }
}

/// Trace times (µs) made relative to the earliest, with the requests of
/// one whole second (a common-format log) spread evenly over it.
fn spread(times: &[u64]) -> Vec<u64> {
    let whole = times.iter().all(|t| t % 1_000_000 == 0);
    let first = times.iter().copied().min().unwrap_or(0);
    let mut per_second = std::collections::BTreeMap::<u64, (u64, u64)>::new();
    if whole {
        for t in times {
            per_second.entry(*t).or_default().0 += 1;
        }
    }
    times
        .iter()
        .map(|&t| {
            let base = (t - first) * 1000;
            match per_second.get_mut(&t) {
                Some((count, seen)) => {
                    let offset = *seen * 1_000_000_000 / *count;
                    *seen += 1;
                    base + offset
                }
                None => base,
            }
        })
        .collect()
}

impl Sim<'_> {
    fn schedule(&mut self, at: u64, event: Event) {
        self.events.push(Reverse((at, self.seq, event)));
        self.seq += 1;
    }

    fn run(&mut self) -> Result<(), SimError> {
        while let Some(Reverse((at, _, event))) = self.events.pop() {
            self.now = at;
            self.now_us.set(at / 1000);
            match event {
                Event::Arrive(r) => self.arrive(r)?,
                Event::Done(r) => self.done(r)?,
                Event::QueueTimeout(r) => self.queue_timeout(r),
            }
            if !matches!(event, Event::QueueTimeout(_)) {
                self.out.end = at;
            }
        }
        Ok(())
    }

    /// Asks the picker for request `r`, as the engine's `Chooser` does.
    fn pick(&mut self, r: usize, exclude: &[usize]) -> Result<Option<Selection>, SimError> {
        let request = &self.requests[r];
        let client = self.clients[r];
        let (view, n) = (self.view, self.snapshot.server_count());
        let ask = |head: Option<&RequestHead<'_>>| {
            view.snapshot
                .picker()
                .pick(
                    view,
                    &PickRequest {
                        client,
                        head,
                        exclude,
                        server_name: None,
                    },
                )
                .filter(|s| s.server < n)
        };
        // At layer 4 the engine reads nothing before it picks.
        let layer4 = self.snapshot.dispatch() == Dispatch::Connection;
        match request.http.as_ref().filter(|_| !layer4) {
            None => Ok(ask(None)),
            Some(http) => http
                .with_head(&self.options.host, &mut self.head_buf, |h| ask(Some(h)))
                .map_err(|reason| SimError::Request {
                    line: request.line,
                    reason,
                }),
        }
    }

    /// Picks and leases a server for `r`, skipping servers at their
    /// `maxconn`: `Ok(true)` when dispatched, `Ok(false)` when the only
    /// obstacle is full servers, else the refusal.
    fn dispatch(&mut self, r: usize) -> Result<Result<bool, Refusal>, SimError> {
        let mut exclude = Vec::new();
        loop {
            let Some(selection) = self.pick(r, &exclude)? else {
                let full = !exclude.is_empty() || self.snapshot.any_full();
                return Ok(if full {
                    Ok(false)
                } else {
                    Err(Refusal::NoServer)
                });
            };
            match self.snapshot.try_lease(selection.server) {
                Some(lease) => {
                    self.start(r, selection, lease);
                    return Ok(Ok(true));
                }
                None => exclude.push(selection.server),
            }
        }
    }

    fn start(&mut self, r: usize, selection: Selection, lease: Lease) {
        let s = selection.server;
        self.leases[r] = Some(lease);
        let outcome = &mut self.out.outcomes[r];
        outcome.selection = Some(selection);
        outcome.dispatched = self.now;
        let active = self.view.servers[s].active_connections();
        self.out.peak[s] = self.out.peak[s].max(active);
        if self.capacity[s] == 0 || self.busy[s] < self.capacity[s] {
            self.serve(r, s);
        } else {
            self.backlog[s].push_back(r);
        }
    }

    /// Server `s` starts on request `r`.
    fn serve(&mut self, r: usize, s: usize) {
        self.busy[s] += 1;
        let addr = self.view.servers[s].addr();
        let took = self.options.latency_of(addr).sample(&mut self.rng);
        self.schedule(self.now.saturating_add(took), Event::Done(r));
    }

    fn arrive(&mut self, r: usize) -> Result<(), SimError> {
        match self.dispatch(r)? {
            Ok(true) => {}
            Ok(false) => self.enqueue(r),
            Err(refusal) => self.out.outcomes[r].refused = Some(refusal),
        }
        Ok(())
    }

    fn enqueue(&mut self, r: usize) {
        let health = &self.snapshot.config().health;
        if self.queue.len() >= health.queue as usize {
            self.out.outcomes[r].refused = Some(Refusal::QueueFull);
            return;
        }
        self.out.queued += 1;
        self.queue.push_back(r);
        let timeout = u64::try_from(health.queue_timeout.as_nanos()).unwrap_or(u64::MAX);
        self.schedule(self.now.saturating_add(timeout), Event::QueueTimeout(r));
    }

    fn done(&mut self, r: usize) -> Result<(), SimError> {
        let Some(selection) = self.out.outcomes[r].selection else {
            return Ok(());
        };
        let s = selection.server;
        let outcome = &mut self.out.outcomes[r];
        outcome.done = self.now;
        // The time from sending the request to its response, as the
        // engine records it for `lrt`.
        let took_us = (self.now - outcome.dispatched) / 1000;
        let server = &self.view.servers[s];
        let (prev, last) = server.ewma.get();
        let now_us = self.now_us.get();
        server
            .ewma
            .set((response_time_step(prev, last, took_us, now_us), now_us));
        self.leases[r] = None;
        self.busy[s] -= 1;
        if let Some(next) = self.backlog[s].pop_front() {
            self.serve(next, s);
        }
        self.drain_queue()
    }

    /// Offers the queued requests, oldest first, the slots freed since.
    fn drain_queue(&mut self) -> Result<(), SimError> {
        let waiting = std::mem::take(&mut self.queue);
        for r in waiting {
            if !self.snapshot.any_slot_free() || !matches!(self.dispatch(r)?, Ok(true)) {
                self.queue.push_back(r);
            }
        }
        Ok(())
    }

    fn queue_timeout(&mut self, r: usize) {
        if let Some(at) = self.queue.iter().position(|&q| q == r) {
            self.queue.remove(at);
            self.out.outcomes[r].refused = Some(Refusal::QueueTimeout);
        }
    }
}

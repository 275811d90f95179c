//! Health checks and overload protection end to end, on loopback: the
//! engine with the built-in schedulers in front of small real HTTP servers
//! whose behaviour a test switches while traffic flows (healthy, answering
//! 500, hanging, slow). Active checks, the all-down policy, outlier
//! ejection and its cap, slow start, maxconn with the queue, the retry
//! budget, and `lrt` moving traffic away from a slowed server.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;

use ktcpvs::{Command, Control, Endpoint, Engine, EngineHandle, ServiceSpec};

/// How a [`Backend`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// 200 with its name as the body.
    Ok = 0,
    /// 500 to everything.
    Fail = 1,
    /// Reads the request and never answers.
    Hang = 2,
    /// 200 to traffic, 503 to `/health` only.
    SickCheck = 3,
}

/// What a backend shares with its threads.
#[derive(Default)]
struct Shared {
    mode: AtomicU8,
    /// Extra delay before each answer, milliseconds.
    delay_ms: AtomicU64,
    /// Requests other than health checks answered.
    served: AtomicUsize,
    /// Health-check requests seen.
    checks: AtomicUsize,
    /// Requests being answered now, and the most ever at once.
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    stop: AtomicBool,
}

/// A real HTTP/1.1 server on a loopback port, one thread per connection,
/// keep-alive, whose behaviour a test switches.
struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Backend {
    fn start(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared::default());
        let (s, n) = (Arc::clone(&shared), name.to_string());
        let acceptor = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (s, n) = (Arc::clone(&s), n.clone());
                        conns.push(std::thread::spawn(move || serve(stream, &n, &s)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Backend {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }
    fn set(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }
    fn served(&self) -> usize {
        self.shared.served.load(Ordering::SeqCst)
    }
    fn checks(&self) -> usize {
        self.shared.checks.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn serve(stream: TcpStream, name: &str, s: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    let mut line = String::new();
    'conn: while !s.stop.load(Ordering::Relaxed) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) if line.is_empty() => continue,
            Err(_) => return,
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut close = false;
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) => return,
                Ok(_) if h == "\r\n" => break,
                Ok(_) => close |= h.to_ascii_lowercase().starts_with("connection: close"),
                Err(_) => continue,
            }
        }
        let check = target == "/health";
        let counter = if check { &s.checks } else { &s.served };
        let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.peak.fetch_max(now, Ordering::SeqCst);
        let delay = s.delay_ms.load(Ordering::SeqCst);
        if delay > 0 && !check {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let mode = s.mode.load(Ordering::SeqCst);
        let status = match (mode, check) {
            (m, _) if m == Mode::Fail as u8 => "500 Internal Server Error",
            (m, true) if m == Mode::SickCheck as u8 => "503 Service Unavailable",
            (m, _) if m == Mode::Hang as u8 => {
                s.in_flight.fetch_sub(1, Ordering::SeqCst);
                while !s.stop.load(Ordering::Relaxed)
                    && s.mode.load(Ordering::SeqCst) == Mode::Hang as u8
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                break 'conn;
            }
            _ => "200 OK",
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let body = format!("{name}\n");
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        s.in_flight.fetch_sub(1, Ordering::SeqCst);
        if out.write_all(head.as_bytes()).is_err() || out.write_all(body.as_bytes()).is_err() {
            return;
        }
        if close {
            return;
        }
    }
}

/// The engine over a control with every built-in scheduler; stopped on drop.
struct Proxy {
    control: Control,
    handle: Option<EngineHandle>,
}

impl Proxy {
    /// Service "web" with `scheduler` and `health` settings over
    /// `backends` (weight 1 each, no rules), running.
    fn start(scheduler: &str, health: &[(&str, &str)], backends: &[&Backend]) -> Proxy {
        let control = ktcpvs::new_control();
        control
            .execute(Command::AddService {
                name: "web".into(),
                spec: ServiceSpec {
                    listen: Some(Endpoint {
                        host: "127.0.0.1".into(),
                        port: Some(0),
                    }),
                    scheduler: Some(scheduler.into()),
                    health: pairs(health),
                    ..ServiceSpec::default()
                },
            })
            .unwrap();
        for b in backends {
            control
                .execute(Command::AddServer {
                    service: "web".into(),
                    server: Endpoint::from_addr(b.addr),
                    weight: Some(1),
                })
                .unwrap();
        }
        control
            .execute(Command::Start {
                service: Some("web".into()),
            })
            .unwrap();
        let handle = Engine::builder(control.clone()).workers(2).start().unwrap();
        Proxy {
            control,
            handle: Some(handle),
        }
    }
    fn addr(&self) -> SocketAddr {
        self.handle.as_ref().unwrap().local_addr("web").unwrap()
    }
    fn edit(&self, health: &[(&str, &str)]) {
        self.control
            .execute(Command::EditService {
                name: "web".into(),
                spec: ServiceSpec {
                    health: pairs(health),
                    ..ServiceSpec::default()
                },
            })
            .unwrap();
    }
    fn server(&self, b: &Backend) -> ktcpvs::core::live::HealthStats {
        let snapshot = self.control.snapshot();
        let service = snapshot.service("web").unwrap();
        let entry = service
            .server_entries()
            .iter()
            .find(|e| e.config().addr == b.addr)
            .unwrap();
        entry.health()
    }
    /// Sets `maxconn` of each of `backends`.
    fn limit(&self, backends: &[&Backend], maxconn: u32) {
        for b in backends {
            self.control
                .execute(Command::SetServerLimit {
                    service: "web".into(),
                    server: Endpoint::from_addr(b.addr),
                    maxconn,
                })
                .unwrap();
        }
    }
    /// `n` clients at once, one request each: their statuses.
    fn burst(&self, n: usize) -> Vec<u16> {
        let addr = self.addr();
        let threads: Vec<_> = (0..n)
            .map(|_| std::thread::spawn(move || get(addr, "/").0))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }
    fn stats(&self) -> ktcpvs::core::live::ServiceStats {
        self.control
            .snapshot()
            .service("web")
            .unwrap()
            .load()
            .stats()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown(Duration::from_millis(200));
            let _ = h.wait();
        }
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One request on a fresh connection: the status and body.
fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    common::get_status(addr, target)
}

/// Waits up to `limit` for `cond`; how long it took.
fn within(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{what}: not within {limit:?}");
}

const CHECKS: [(&str, &str); 6] = [
    ("check", "http"),
    ("check_path", "/health"),
    ("check_interval", "100ms"),
    ("check_timeout", "80ms"),
    ("check_fall", "3"),
    ("check_jitter", "0"),
];

#[test]
fn active_checks_take_a_sick_server_out_within_fall_intervals_and_back_within_rise() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start("wrr", &CHECKS, &[&a, &b]);
    within(Duration::from_secs(2), "first checks", || a.checks() >= 2);
    // 500 to the checks: out within fall × interval (plus one interval
    // for the phase of the first failing probe, and scheduling slack).
    a.set(Mode::SickCheck);
    let took = within(Duration::from_secs(2), "a down", || {
        proxy.server(&a).check_down
    });
    assert!(
        took <= Duration::from_millis(3 * 100 + 100 + 400),
        "{took:?}"
    );
    let h = proxy.server(&a);
    assert_eq!(h.reason, "status 503");
    assert_eq!(h.transitions, 1);
    let before = a.served();
    for _ in 0..40 {
        assert_eq!(get(proxy.addr(), "/"), (200, "b\n".to_string()));
    }
    assert_eq!(a.served(), before, "a down server got traffic");
    // Healthy again: back within rise × interval.
    a.set(Mode::Ok);
    let took = within(Duration::from_secs(2), "a up", || {
        !proxy.server(&a).check_down
    });
    assert!(
        took <= Duration::from_millis(2 * 100 + 100 + 400),
        "{took:?}"
    );
    within(Duration::from_secs(2), "a serves again", || {
        get(proxy.addr(), "/").1 == "a\n"
    });
    // A server that accepts and hangs: each probe times out.
    a.set(Mode::Hang);
    let took = within(Duration::from_secs(3), "hung a down", || {
        proxy.server(&a).check_down
    });
    assert!(
        took <= Duration::from_millis(3 * 100 + 100 + 500),
        "{took:?}"
    );
    assert!(
        proxy.server(&a).reason.starts_with("no answer within"),
        "{:?}",
        proxy.server(&a)
    );
    a.set(Mode::Ok);
    assert_eq!(proxy.server(&a).transitions, 3);
    drop(proxy);
}

#[test]
fn with_every_server_down_the_service_refuses_or_fails_open_as_configured() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start("p2c", &CHECKS, &[&a, &b]);
    a.set(Mode::SickCheck);
    b.set(Mode::SickCheck);
    within(Duration::from_secs(2), "both down", || {
        proxy.server(&a).check_down && proxy.server(&b).check_down
    });
    assert_eq!(get(proxy.addr(), "/").0, 503);
    proxy.edit(&[("all_down", "open")]);
    within(Duration::from_secs(2), "fail open", || {
        get(proxy.addr(), "/").0 == 200
    });
    let h = proxy.server(&a);
    assert!(h.check_down && h.admitted, "{h:?}");
    // One comes back: only it serves; the other is no longer let in.
    b.set(Mode::Ok);
    within(Duration::from_secs(2), "b up", || {
        !proxy.server(&b).check_down
    });
    within(Duration::from_secs(1), "a shut out", || {
        !proxy.server(&a).admitted
    });
    for _ in 0..20 {
        assert_eq!(get(proxy.addr(), "/"), (200, "b\n".to_string()));
    }
    // Checks turned off: every server is up as far as checks go.
    proxy.edit(&[("check", "none")]);
    within(Duration::from_secs(2), "a unchecked", || {
        !proxy.server(&a).check_down
    });
}

#[test]
fn quiesced_servers_are_still_checked() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::start("p2c", &CHECKS, &[&a, &b]);
    proxy
        .control
        .execute(Command::EditServer {
            service: "web".into(),
            server: Endpoint::from_addr(a.addr),
            weight: Some(0),
        })
        .unwrap();
    let seen = a.checks();
    within(
        Duration::from_secs(2),
        "probes of a quiesced server",
        || a.checks() >= seen + 3,
    );
    a.set(Mode::SickCheck);
    within(Duration::from_secs(2), "quiesced a down", || {
        proxy.server(&a).check_down
    });
    assert_eq!(a.served(), 0);
}

#[test]
fn outlier_ejection_never_ejects_more_than_the_cap() {
    let backends: Vec<Backend> = (0..4).map(|i| Backend::start(&format!("s{i}"))).collect();
    for b in &backends {
        b.set(Mode::Fail);
    }
    let refs: Vec<&Backend> = backends.iter().collect();
    let proxy = Proxy::start(
        "wrr",
        &[("eject_5xx", "2"), ("max_ejection_percent", "50")],
        &refs,
    );
    let mut most = 0;
    for _ in 0..120 {
        assert_eq!(get(proxy.addr(), "/").0, 500, "a 500 is relayed as is");
        let ejected = backends.iter().filter(|b| proxy.server(b).ejected).count();
        most = most.max(ejected);
        assert!(ejected <= 2, "{ejected} of 4 ejected with a 50 % cap");
    }
    assert_eq!(most, 2, "the cap is reached, not undershot");
    let total: u64 = backends.iter().map(|b| proxy.server(b).ejections).sum();
    assert!(total >= 2);
    // Which servers the cap lets go first depends on timing; each one
    // ejected says why.
    for b in &backends {
        let s = proxy.server(b);
        if s.ejections > 0 {
            assert!(s.reason.contains("5xx"), "{s:?}");
        }
    }
}

/// `clients` clients sending requests back to back for `run`: the share
/// of them that `b` served.
fn share_under_load(proxy: &Proxy, b: &Backend, clients: usize, run: Duration) -> f64 {
    let (addr, stop) = (proxy.addr(), Arc::new(AtomicBool::new(false)));
    let sent = Arc::new(AtomicUsize::new(0));
    let before = b.served();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if get(addr, "/").0 == 200 {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    (b.served() - before) as f64 / sent.load(Ordering::Relaxed).max(1) as f64
}

#[test]
fn a_server_added_to_a_running_service_ramps_up_its_share() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    for x in [&a, &b] {
        x.shared.delay_ms.store(10, Ordering::SeqCst);
    }
    let proxy = Proxy::start("p2c", &[("slow_start", "4s")], &[&a]);
    proxy
        .control
        .execute(Command::AddServer {
            service: "web".into(),
            server: Endpoint::from_addr(b.addr),
            weight: Some(1),
        })
        .unwrap();
    assert!(proxy.server(&b).ramping);
    // Its first second: from a tenth to a third of its weight.
    let early = share_under_load(&proxy, &b, 8, Duration::from_millis(900));
    std::thread::sleep(Duration::from_millis(3300));
    let late = share_under_load(&proxy, &b, 8, Duration::from_millis(900));
    assert!(!proxy.server(&b).ramping);
    assert!(early < 0.3, "early share {early}");
    assert!((0.35..=0.65).contains(&late), "late share {late}");
    assert!(late > early + 0.15, "{early} then {late}");
}

#[test]
fn maxconn_is_never_exceeded_and_the_queue_serves_in_time_or_answers_503() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    for x in [&a, &b] {
        x.shared.delay_ms.store(100, Ordering::SeqCst);
    }
    let proxy = Proxy::start(
        "p2c",
        &[("queue", "100"), ("queue_timeout", "10s")],
        &[&a, &b],
    );
    proxy.limit(&[&a, &b], 2);
    let burst = |n: usize| proxy.burst(n);
    let statuses = burst(24);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert!(a.shared.peak.load(Ordering::SeqCst) <= 2);
    assert!(b.shared.peak.load(Ordering::SeqCst) <= 2);
    let s = proxy.stats();
    assert!(s.queued_total >= 10, "{s:?}");
    assert_eq!((s.queued, s.queue_timeouts), (0, 0), "{s:?}");
    // A short queue timeout: what cannot be served in time gets 503.
    proxy.edit(&[("queue_timeout", "150ms")]);
    let statuses = burst(24);
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(ok + refused, 24, "{statuses:?}");
    assert!(ok >= 4 && refused >= 4, "{statuses:?}");
    assert!(proxy.stats().queue_timeouts >= refused as u64);
    // No queue: the excess is refused at once.
    proxy.edit(&[("queue", "0")]);
    let start = Instant::now();
    let statuses = burst(12);
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(a.shared.peak.load(Ordering::SeqCst) <= 2);
    assert!(b.shared.peak.load(Ordering::SeqCst) <= 2);
}

#[test]
fn the_retry_budget_bounds_retries_during_an_outage() {
    // Two servers refuse every connect and are never ejected; every
    // request that picks one first needs a retry.
    let dead: Vec<SocketAddr> = (0..2).map(|_| common::refused_addr()).collect();
    let live = Backend::start("live");
    let control_of = |budget: &str, dead: &[SocketAddr]| {
        let proxy = Proxy::start(
            "p2c",
            &[("eject_failures", "10000"), ("retry_budget", budget)],
            &[&live],
        );
        for d in dead {
            proxy
                .control
                .execute(Command::AddServer {
                    service: "web".into(),
                    server: Endpoint::from_addr(*d),
                    weight: Some(1),
                })
                .unwrap();
        }
        proxy
    };
    // No share of requests: only the floor (ten a second, ten banked).
    let proxy = control_of("0", &dead);
    let start = Instant::now();
    let mut failed = 0;
    for _ in 0..150 {
        if get(proxy.addr(), "/").0 != 200 {
            failed += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let s = proxy.stats();
    assert!(
        (s.retries as f64) <= 10.0 + 10.0 * secs + 1.0,
        "{} retries in {secs:.2} s: {s:?}",
        s.retries
    );
    assert!(s.retries_refused > 0 && failed > 0, "{s:?}");
    drop(proxy);
    // A full budget (one retry per request, plus the floor): with one
    // dead server of two, every failed connect is retried and every
    // request is served. (With two dead of three, p2c needs one retry per
    // request on average: exactly the budget, so a run of unlucky picks
    // may spend it.)
    let proxy = control_of("100", &dead[..1]);
    for i in 0..60 {
        let (status, body) = get(proxy.addr(), "/");
        assert_eq!(status, 200, "request {i}: {body:?} {:?}", proxy.stats());
    }
    assert_eq!(proxy.stats().retries_refused, 0);
}

#[test]
fn lrt_moves_traffic_away_from_a_server_made_slow() {
    let backends: Vec<Backend> = (0..3).map(|i| Backend::start(&format!("s{i}"))).collect();
    let refs: Vec<&Backend> = backends.iter().collect();
    let proxy = Proxy::start("lrt", &[], &refs);
    backends[1].shared.delay_ms.store(20, Ordering::SeqCst);
    let addr = proxy.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    get(addr, "/");
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let served: Vec<usize> = backends.iter().map(Backend::served).collect();
    let total: usize = served.iter().sum();
    assert!(total > 100, "{served:?}");
    assert!(
        (served[1] as f64) < 0.1 * total as f64,
        "the slow server kept {served:?}"
    );
}

#[test]
fn layer_4_connections_queue_for_maxconn_too() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    for x in [&a, &b] {
        x.shared.delay_ms.store(100, Ordering::SeqCst);
    }
    let proxy = Proxy::start(
        "wlc",
        &[("queue", "50"), ("queue_timeout", "10s")],
        &[&a, &b],
    );
    proxy.limit(&[&a, &b], 1);
    let burst = |n: usize| proxy.burst(n);
    let statuses = burst(8);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(a.shared.peak.load(Ordering::SeqCst), 1);
    assert_eq!(b.shared.peak.load(Ordering::SeqCst), 1);
    assert!(proxy.stats().queued_total >= 4, "{:?}", proxy.stats());
    // Without a queue the excess connections are closed at once.
    proxy.edit(&[("queue", "0")]);
    let statuses = burst(8);
    assert!(statuses.contains(&0), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
}

/// A server that accepts and answers every connection with `answer`'s
/// bytes, written until the peer goes (a hostile or broken server).
fn raw_server(answer: fn(&mut TcpStream)) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    std::thread::spawn(move || answer(&mut stream));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (addr, stop)
}

#[test]
fn hostile_servers_fail_their_checks_without_stalling_the_checker() {
    // A head that never ends, and a body that never holds the text.
    let (endless_head, stop1) = raw_server(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        while s
            .write_all(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
            .is_ok()
        {}
    });
    let (endless_body, stop2) = raw_server(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n");
        while s.write_all(&[b'z'; 4096]).is_ok() {}
    });
    let good = Backend::start("good");
    let mut checks = CHECKS.to_vec();
    // The good server's body is its name, "good": it holds "oo".
    checks.push(("check_body", "oo"));
    let proxy = Proxy::start("p2c", &checks, &[&good]);
    for addr in [endless_head, endless_body] {
        proxy
            .control
            .execute(Command::AddServer {
                service: "web".into(),
                server: Endpoint::from_addr(addr),
                weight: Some(1),
            })
            .unwrap();
    }
    let health_of = |addr: SocketAddr| {
        let snapshot = proxy.control.snapshot();
        let service = snapshot.service("web").unwrap();
        service
            .server_entries()
            .iter()
            .find(|e| e.config().addr == addr)
            .unwrap()
            .health()
    };
    within(Duration::from_secs(3), "both hostile servers down", || {
        health_of(endless_head).check_down && health_of(endless_body).check_down
    });
    let head = health_of(endless_head).reason;
    let body = health_of(endless_body).reason;
    assert!(!head.is_empty() && !body.is_empty(), "{head:?} / {body:?}");
    assert!(body.contains("without \"oo\""), "{body}");
    // Meanwhile the good server was checked and stays up, and serves.
    assert!(good.checks() > 0);
    assert!(!health_of(good.addr).check_down);
    for _ in 0..10 {
        assert_eq!(get(proxy.addr(), "/"), (200, "good\n".to_string()));
    }
    stop1.store(true, Ordering::Relaxed);
    stop2.store(true, Ordering::Relaxed);
}

//! Running out of file descriptors is this process's problem, not the
//! server's: a connect that fails with `EMFILE` answers 503 and leaves the
//! server in rotation, and `accept` failing with `EMFILE` neither spins nor
//! logs on every loop iteration. This test binary holds one test, because
//! it lowers the whole process's open-file limit and fills the table.

mod support;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ktcpvs_core::ServiceSpec;
use support::backend::HttpBackend;
use support::client::Client;
use support::*;

/// Counts the warnings about exhausted local resources.
struct CountingLogger {
    exhausted: AtomicUsize,
}

impl log::Log for CountingLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        let text = record.args().to_string();
        if record.level() <= log::Level::Warn
            && (text.contains("exhausted") || text.contains("accept"))
        {
            self.exhausted.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn flush(&self) {}
}

static LOGGER: CountingLogger = CountingLogger {
    exhausted: AtomicUsize::new(0),
};

/// Descriptors that fill the table, released by dropping.
struct Filler(Vec<OwnedFd>);

impl Filler {
    /// Duplicates `template` until the process is out of descriptors.
    fn fill(template: &File) -> Filler {
        let mut fds = Vec::new();
        loop {
            // SAFETY: dup has no memory-safety preconditions; a returned
            // descriptor is owned by nothing else.
            let fd = unsafe { libc::dup(template.as_raw_fd()) };
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
            // SAFETY: `fd` was just returned by dup and is owned here.
            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        Filler(fds)
    }

    /// Frees `n` descriptors.
    fn free(&mut self, n: usize) {
        for _ in 0..n {
            self.0.pop();
        }
    }
}

/// The number of descriptors open in this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits until no descriptor has been opened or closed for 300 ms: the
/// engine and the backend close theirs asynchronously after an exchange,
/// and a descriptor freed late would let a step succeed that must not.
fn settle_fds() {
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = open_fds();
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(300) {
        assert!(Instant::now() < end, "descriptors never settled");
        std::thread::sleep(Duration::from_millis(20));
        let now = open_fds();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
}

/// Lowers the soft open-file limit to 64 above the highest descriptor open.
fn lower_open_file_limit() {
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = (highest + 64).min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

#[test]
fn descriptor_exhaustion_answers_503_blames_no_server_and_does_not_spin() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let backend = HttpBackend::start("r1");
    let control = control();
    // No pooled backend connection: each request must connect afresh.
    set(&control, "pool_max_idle", "0");
    add_service(&control, "web", "phttp", ServiceSpec::default());
    add_server(&control, "web", backend.addr());
    start(&control, "web");
    let engine = run(control);
    let addr = engine.addr("web");
    let template = File::open("/dev/null").unwrap();
    let get_closing = |c: &mut Client, target: &str| {
        c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
        c.read_response(false).unwrap()
    };
    assert_eq!(get_closing(&mut Client::connect(addr), "/warm").status, 200);
    lower_open_file_limit();

    // 1. Room for the client socket and the accepted one, none for the
    //    connect to the server: 503, and the server stays in rotation.
    settle_fds();
    let mut filler = Filler::fill(&template);
    filler.free(2);
    let mut c = Client::connect(addr);
    assert_eq!(get_closing(&mut c, "/starved").status, 503);
    drop(c);
    drop(filler);
    assert_eq!(
        get_closing(&mut Client::connect(addr), "/after").status,
        200,
        "the server was not taken out of rotation"
    );
    assert_eq!(backend.requests(), 2);

    // 2. Room for the client socket only: accept fails for a while. The
    //    connection waits in the backlog and is served once descriptors
    //    free up; meanwhile the worker neither spins nor logs every tick.
    let before = LOGGER.exhausted.load(Ordering::SeqCst);
    settle_fds();
    let mut filler = Filler::fill(&template);
    filler.free(1);
    let mut c = Client::connect(addr);
    c.send(b"GET /queued HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let usage = || {
        // SAFETY: getrusage writes one rusage.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        Duration::from_secs((u.ru_utime.tv_sec + u.ru_stime.tv_sec) as u64)
            + Duration::from_micros((u.ru_utime.tv_usec + u.ru_stime.tv_usec) as u64)
    };
    let cpu = usage();
    let wall = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let (cpu, wall) = (usage() - cpu, wall.elapsed());
    let logged = LOGGER.exhausted.load(Ordering::SeqCst) - before;
    drop(filler);
    assert!(logged <= 1, "{logged} warnings in {wall:?}");
    assert!(
        cpu < wall / 4,
        "{cpu:?} of CPU in {wall:?}: the worker spins"
    );
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "r1 /queued"));
}

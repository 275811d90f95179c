//! The hot path allocates nothing per request in steady state: a counting
//! global allocator counts allocations made on the engine's worker threads
//! (named `ktcpvs-worker-N`) over 10,000 keep-alive requests.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use std::net::SocketAddr;

use ktcpvs_core::{Control, ServiceSpec};
use support::backend::HttpBackend;
use support::client::Client;
use support::*;

struct Counting;

static WORKER_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// 0 unknown, 1 a worker thread, 2 another thread.
    static KIND: Cell<u8> = const { Cell::new(0) };
}

fn on_worker_thread() -> bool {
    KIND.with(|k| {
        if k.get() == 0 {
            let mut name = [0u8; 32];
            // SAFETY: the buffer is valid for its length; the call does not allocate.
            let rc = unsafe {
                libc::pthread_getname_np(libc::pthread_self(), name.as_mut_ptr().cast(), name.len())
            };
            let is_worker = rc == 0 && name.starts_with(b"ktcpvs-worker");
            k.set(if is_worker { 1 } else { 2 });
        }
        k.get() == 1
    })
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on_worker_thread() {
            WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on_worker_thread() {
            WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn measure(scheduler: &str) -> u64 {
    measure_with(scheduler, |control, a, b| {
        add_rule(control, "web", "^/a", a);
        add_rule(control, "web", ".*", b);
    })
}

/// The same, with rules that have conditions, header edits both ways and
/// an edge answer (which these requests do not match): every request is
/// matched by the engine before the scheduler matches it again.
fn measure_conditional() -> u64 {
    measure_with("phttp", |control, a, b| {
        let rule = |statement: String| {
            let command = ktcpvs_core::config::parse_rule("web", &statement).unwrap();
            control.execute(command).unwrap();
        };
        rule(r#"pattern "^/deny" normalize respond 403 "text/plain" "no""#.to_string());
        rule(format!(
            r#"pattern "^/a" normalize host "=t" method GET header X-Missing ".*" use server {a}"#
        ));
        rule(format!(
            r#"pattern "^/a" normalize src 127.0.0.0/8 use server {a} request_header set X-Tier "gold" response_header del x-server"#
        ));
        rule(format!(r#"pattern ".*" query "never" use server {b}"#));
        add_rule(control, "web", ".*", b);
    })
}

fn measure_with(scheduler: &str, rules: impl Fn(&Control, SocketAddr, SocketAddr)) -> u64 {
    let backends = [HttpBackend::start("r1"), HttpBackend::start("r2")];
    let control = control();
    add_service(&control, "web", scheduler, ServiceSpec::default());
    for b in &backends {
        add_server(&control, "web", b.addr());
    }
    rules(&control, backends[0].addr(), backends[1].addr());
    start(&control, "web");
    let engine = run(control);
    let mut c = Client::connect(engine.addr("web"));
    let start = WORKER_ALLOCS.load(Ordering::SeqCst);
    let targets = ["/a/1", "/b/2"];
    for i in 0..1000 {
        assert_eq!(c.get(targets[i % 2]).unwrap().status, 200);
    }
    let before = WORKER_ALLOCS.load(Ordering::SeqCst);
    assert!(
        before > start,
        "the counter sees the workers' warm-up allocations"
    );
    for i in 0..10_000 {
        assert_eq!(c.get(targets[i % 2]).unwrap().status, 200);
    }
    WORKER_ALLOCS.load(Ordering::SeqCst) - before
}

#[test]
fn worker_threads_allocate_nothing_per_request_in_steady_state() {
    let per_request = measure("phttp");
    assert_eq!(
        per_request, 0,
        "phttp: allocations on worker threads over 10,000 requests"
    );
    let per_connection = measure("http");
    assert_eq!(
        per_connection, 0,
        "http: allocations on worker threads over 10,000 requests"
    );
    let conditional = measure_conditional();
    assert_eq!(
        conditional, 0,
        "rules with conditions, edits and an edge answer: allocations over 10,000 requests"
    );
}

//! Proof that `wlc`'s `pick` allocates nothing: a counting global
//! allocator counts the allocations made by the current thread while a
//! flag is set, and many picks (after one warm-up pick per thread) must
//! leave the count at zero. The counters are per thread so that other
//! tests running in parallel cannot disturb the result.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ktcpvs_core::scheduler::Scheduler;
use ktcpvs_core::view::Rule;
use ktcpvs_sched_wlc::Wlc;
use support::{l4_request, TestService};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the thread-locals may already be gone while a thread exits.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|n| n.get())
}

fn service() -> TestService {
    let spec: Vec<(u32, u64)> = (0..300)
        .map(|i| ((i % 4) as u32, (i % 17) as u64))
        .collect();
    let mut service = TestService::with_servers(&spec);
    service.rules = vec![Rule::new(".*", None, (0..300).collect()).unwrap()];
    service
}

#[test]
fn counting_allocator_sees_an_allocation() {
    let n = allocations_during(|| drop(std::hint::black_box(Box::new(7u64))));
    assert!(
        n >= 1,
        "the allocator must count, or the other tests prove nothing"
    );
}

#[test]
fn wlc_pick_allocates_nothing_on_any_thread() {
    let service = service();
    let picker = Wlc.build(&service).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let excluded = [1usize, 5];
                let _ = picker.pick(&service, &l4_request(&[])); // warm-up
                let n = allocations_during(|| {
                    for i in 0..10_000u64 {
                        let exclude: &[usize] = if i % 2 == 0 { &[] } else { &excluded };
                        let s = picker.pick(&service, &l4_request(exclude));
                        std::hint::black_box(s);
                        if let Some(s) = s {
                            service.add_connection(s.server);
                        }
                    }
                });
                assert_eq!(n, 0, "pick allocated {n} times");
            });
        }
    });
}

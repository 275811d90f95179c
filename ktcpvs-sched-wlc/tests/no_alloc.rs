//! Proof that `wlc`'s `pick` allocates nothing: the core test kit's
//! counting global allocator counts the allocations made by the current
//! thread during [`allocations_during`], and many picks (after one warm-up
//! pick per thread) must leave the count at zero. The counters are per
//! thread so that other tests running in parallel cannot disturb the
//! result.

use ktcpvs_core::scheduler::Scheduler;
use ktcpvs_core::testkit::{allocations_during, TestService};
use ktcpvs_core::view::Rule;
use ktcpvs_sched_wlc::Wlc;

#[global_allocator]
static GLOBAL: ktcpvs_core::testkit::CountingAllocator = ktcpvs_core::testkit::CountingAllocator;

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
                let _ = picker.pick(&service, &TestService::request(None, &[])); // warm-up
                let n = allocations_during(|| {
                    for i in 0..10_000u64 {
                        let exclude: &[usize] = if i % 2 == 0 { &[] } else { &excluded };
                        let s = picker.pick(&service, &TestService::request(None, exclude));
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

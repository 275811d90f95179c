//! Proof that `pick` allocates nothing, for every scheduler of this crate:
//! the core test kit's counting global allocator counts the allocations
//! made by the current thread during [`allocations_during`], and many picks
//! (after one warm-up pick per thread, which lets the regex engine create
//! its per-thread caches) must leave the count at zero. The counters are
//! per thread so that other tests running in parallel cannot disturb the
//! result.

use ktcpvs_core::scheduler::{Header, PickRequest, Picker, RequestHead, Scheduler};
use ktcpvs_core::testkit::{addr, allocations_during, head, TestService};
use ktcpvs_core::view::Rule;
use ktcpvs_sched_http::{cookie_value, default_key, Chttp, Hhttp, Http, Lrt, P2c, Phttp, Rr, Wrr};

#[global_allocator]
static GLOBAL: ktcpvs_core::testkit::CountingAllocator = ktcpvs_core::testkit::CountingAllocator;

/// 30 servers, 30 rules with a capture group; the last takes the rest.
fn service() -> TestService {
    let spec: Vec<(u32, u64)> = (0..30).map(|i| ((i % 4) as u32, (i % 7) as u64)).collect();
    let mut service = TestService::with_servers(&spec);
    service.rules = (0..30)
        .map(|r| {
            let pattern = if r == 29 {
                "^/([^/]*)".to_string()
            } else {
                format!("^/app{r}/([^/]+)/")
            };
            Rule::new(&pattern, Some(1), vec![r, (r + 1) % 30]).unwrap()
        })
        .collect();
    service
}

/// [`service`] with one scheduler option set.
fn service_with_option(name: &str, value: &str) -> TestService {
    service().option(name, value)
}

/// Picks `rounds` times over `requests` on this thread after one warm-up
/// pick per request, and returns the allocations made after the warm-up.
fn allocations_of_picks(
    picker: &dyn Picker,
    service: &TestService,
    requests: &[PickRequest<'_>],
) -> u64 {
    for r in requests {
        std::hint::black_box(picker.pick(service, r));
    }
    allocations_during(|| {
        for _ in 0..2_000 {
            for r in requests {
                let s = picker.pick(service, r);
                if let Some(s) = s {
                    std::hint::black_box(picker.response_header(&s, true));
                }
                std::hint::black_box(s);
            }
        }
    })
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
fn every_scheduler_picks_without_allocating_on_any_thread() {
    let service = service();
    let valid = format!(
        "KTCPVS_SID={:032x}; x=y",
        cookie_value(&default_key("web"), addr(29))
    );
    let forged = format!("KTCPVS_SID={}", "ab".repeat(16));
    let cookie_headers = [Header {
        name: "Cookie",
        value: valid.as_bytes(),
    }];
    let forged_headers = [Header {
        name: "Cookie",
        value: forged.as_bytes(),
    }];
    let heads: Vec<RequestHead<'_>> = vec![
        head("/app3/alice/x", &[]),
        head("/users/bob", &cookie_headers),
        head("/other", &forged_headers),
        head("no-slash", &[]),
    ];
    let excluded = [4usize, 29];
    service.set_response_time(3, Some(std::time::Duration::from_millis(3)));
    let bounded = service_with_option("hash_balance_factor", "125");
    let schedulers: [(&dyn Scheduler, &TestService); 9] = [
        (&Http, &service),
        (&Phttp, &service),
        (&Hhttp, &service),
        (&Hhttp, &bounded),
        (&Chttp, &service),
        (&Rr, &service),
        (&Wrr, &service),
        (&P2c, &service),
        (&Lrt, &service),
    ];
    for (scheduler, service) in schedulers {
        let picker = scheduler.build(service).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    let mut requests: Vec<PickRequest<'_>> = heads
                        .iter()
                        .map(|h| TestService::request(Some(h), &[]))
                        .collect();
                    requests.extend(
                        heads
                            .iter()
                            .map(|h| TestService::request(Some(h), &excluded)),
                    );
                    let n = allocations_of_picks(&*picker, service, &requests);
                    assert_eq!(n, 0, "{} pick allocated {n} times", scheduler.name());
                });
            }
        });
    }
}

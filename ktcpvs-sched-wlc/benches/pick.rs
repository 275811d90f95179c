//! Criterion micro-benchmarks of `wlc`'s `pick` with 3, 30 and 300 servers
//! and 3 and 30 rules (wlc ignores rules; they are there so the figures
//! line up with the rule-based schedulers'). Record results in
//! `docs/benchmarks.md`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use ktcpvs_core::scheduler::Scheduler;
use ktcpvs_core::testkit::TestService;
use ktcpvs_core::view::Rule;
use ktcpvs_sched_wlc::Wlc;

/// A service of `servers` servers with mixed weights and loads, and
/// `rules` rules (the last a catch-all) that share the servers out.
fn service(servers: usize, rules: usize) -> TestService {
    let spec: Vec<(u32, u64)> = (0..servers)
        .map(|i| ((i % 5 + 1) as u32, (i * 7 % 23) as u64))
        .collect();
    let mut service = TestService::with_servers(&spec);
    service.rules = (0..rules)
        .map(|r| {
            let pattern = if r + 1 == rules {
                ".*".to_string()
            } else {
                format!("^/app{r}/")
            };
            let members = (0..servers).filter(|s| s % rules == r).collect();
            Rule::new(&pattern, None, members).expect("valid rule")
        })
        .collect();
    service
}

fn bench_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("wlc/pick");
    for servers in [3, 30, 300] {
        for rules in [3, 30] {
            let service = service(servers, rules);
            let picker = Wlc.build(&service).expect("builds");
            let request = TestService::request(None, &[]);
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("{servers}s/{rules}r")),
                &(),
                |b, _| b.iter(|| black_box(picker.pick(black_box(&service), black_box(&request)))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_pick);
criterion_main!(benches);

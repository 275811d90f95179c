//! Criterion micro-benchmarks of `pick` for `http`, `phttp`, `hhttp` and
//! `chttp` (with and without a valid cookie), with 3, 30 and 300 servers
//! and 3 and 30 rules. The request matches the last rule, so every rule is
//! tried first: the worst case for rule matching. Record results in
//! `docs/benchmarks.md`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use ktcpvs_core::scheduler::{Header, Scheduler};
use ktcpvs_core::testkit::{addr, head, TestService};
use ktcpvs_core::view::Rule;
use ktcpvs_sched_http::{cookie_value, default_key, Chttp, Hhttp, Http, Phttp};

/// `servers` servers with mixed weights and loads, and `rules` rules
/// sharing them out: `^/appN/([^/]+)/` (group 1 is the hash key) and a
/// last rule `^/([^/]*)` that takes the remaining servers.
fn service(servers: usize, rules: usize) -> TestService {
    let spec: Vec<(u32, u64)> = (0..servers)
        .map(|i| ((i % 5 + 1) as u32, (i * 7 % 23) as u64))
        .collect();
    let mut service = TestService::with_servers(&spec);
    service.rules = (0..rules)
        .map(|r| {
            let pattern = if r + 1 == rules {
                "^/([^/]*)".to_string()
            } else {
                format!("^/app{r}/([^/]+)/")
            };
            let last = r + 1 == rules;
            // With fewer servers than rules the last rule takes them all.
            let members = (0..servers)
                .filter(|s| s % rules == r || (last && servers < rules))
                .collect();
            Rule::new(&pattern, Some(1), members).expect("valid rule")
        })
        .collect();
    service
}

fn bench_pick(c: &mut Criterion) {
    let schedulers: [(&str, &dyn Scheduler); 4] = [
        ("http", &Http),
        ("phttp", &Phttp),
        ("hhttp", &Hhttp),
        ("chttp", &Chttp),
    ];
    let mut group = c.benchmark_group("pick");
    for servers in [3, 30, 300] {
        for rules in [3, 30] {
            let service = service(servers, rules);
            // A server of the last rule, for the valid-cookie case.
            let pinned = service.rules[rules - 1].servers()[0];
            let value = cookie_value(&default_key("web"), addr(pinned));
            let cookie = format!("theme=dark; KTCPVS_SID={value:032x}; lang=en");
            let with_cookie = [Header {
                name: "Cookie",
                value: cookie.as_bytes(),
            }];
            let no_cookie = [Header {
                name: "Accept",
                value: b"*/*",
            }];
            for (name, scheduler) in schedulers {
                let picker = scheduler.build(&service).expect("builds");
                let cases: &[(&str, &[Header<'_>])] = if name == "chttp" {
                    &[("chttp/new", &no_cookie), ("chttp/cookie", &with_cookie)]
                } else {
                    &[(name, &no_cookie)]
                };
                for &(label, headers) in cases {
                    let head = head("/users/alice/profile", headers);
                    let req = TestService::request(Some(&head), &[]);
                    assert!(
                        picker.pick(&service, &req).is_some(),
                        "{label} picks a server"
                    );
                    group.bench_with_input(
                        BenchmarkId::new(label, format!("{servers}s/{rules}r")),
                        &(),
                        |b, _| {
                            b.iter(|| black_box(picker.pick(black_box(&service), black_box(&req))))
                        },
                    );
                }
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_pick);
criterion_main!(benches);

//! Behaviour of `http` and `phttp` through the core traits: rule order,
//! least-connection inside a rule, no-match, retries, and registration.

use ktcpvs_core::scheduler::{Dispatch, PickRequest, Picker, Scheduler, SchedulerRegistry};
use ktcpvs_core::testkit::{head, TestService};
use ktcpvs_sched_http::{Http, Phttp};

fn pick(
    picker: &dyn Picker,
    service: &TestService,
    target: &str,
    exclude: &[usize],
) -> Option<(usize, Option<usize>)> {
    let h = head(target, &[]);
    picker
        .pick(service, &TestService::request(Some(&h), exclude))
        .map(|s| {
            assert!(!s.stamp, "http never stamps");
            (s.server, s.rule)
        })
}

/// Servers 0, 1 serve `^/images/`; 2, 3 the catch-all.
fn two_rule_service() -> TestService {
    TestService::with_servers(&[(1, 4), (1, 2), (2, 2), (1, 0)])
        .rule("^/images/", None, &[0, 1])
        .rule(".*", None, &[2, 3])
}

#[test]
fn register_adds_all_eight_names() {
    let registry = SchedulerRegistry::new();
    ktcpvs_sched_http::register(&registry).unwrap();
    assert_eq!(
        registry.names(),
        ["chttp", "hhttp", "http", "lrt", "p2c", "phttp", "rr", "wrr"]
    );
    assert!(ktcpvs_sched_http::register(&registry).is_err());
}

#[test]
fn http_decides_per_connection_and_phttp_per_request() {
    assert_eq!(
        (Http.name(), Http.dispatch()),
        ("http", Dispatch::FirstRequest)
    );
    assert_eq!(
        (Phttp.name(), Phttp.dispatch()),
        ("phttp", Dispatch::EachRequest)
    );
    assert!(!Http.description().is_empty() && !Phttp.description().is_empty());
}

#[test]
fn first_matching_rule_then_least_connection_among_its_servers() {
    let service = two_rule_service();
    for scheduler in [&Http as &dyn Scheduler, &Phttp] {
        let p = scheduler.build(&service).unwrap();
        assert_eq!(
            pick(&*p, &service, "/images/a.png", &[]),
            Some((1, Some(0)))
        );
        // 2/2 = 1 against 0/1 = 0.
        assert_eq!(pick(&*p, &service, "/index.html", &[]), Some((3, Some(1))));
    }
}

#[test]
fn no_matching_rule_means_no_server() {
    let service = TestService::with_servers(&[(1, 0)]).rule("^/api/", None, &[0]);
    let p = Http.build(&service).unwrap();
    assert_eq!(pick(&*p, &service, "/index.html", &[]), None);
}

#[test]
fn service_without_rules_has_no_server() {
    let service = TestService::with_servers(&[(1, 0)]);
    let p = Http.build(&service).unwrap();
    assert_eq!(pick(&*p, &service, "/", &[]), None);
}

#[test]
fn first_match_decides_even_when_its_servers_are_all_down() {
    let service = two_rule_service();
    service.set_weight(0, 0);
    service.set_healthy(1, false);
    let p = Http.build(&service).unwrap();
    assert_eq!(
        pick(&*p, &service, "/images/a.png", &[]),
        None,
        "the catch-all is not tried"
    );
}

#[test]
fn quiesced_and_unhealthy_servers_of_the_rule_are_skipped() {
    let service = two_rule_service();
    service.set_weight(3, 0);
    let p = Http.build(&service).unwrap();
    assert_eq!(pick(&*p, &service, "/x", &[]), Some((2, Some(1))));
    service.set_weight(3, 1);
    service.set_healthy(3, false);
    assert_eq!(pick(&*p, &service, "/x", &[]), Some((2, Some(1))));
}

#[test]
fn retry_skips_excluded_servers_of_the_rule() {
    let service = two_rule_service();
    let p = Phttp.build(&service).unwrap();
    assert_eq!(pick(&*p, &service, "/x", &[3]), Some((2, Some(1))));
    assert_eq!(pick(&*p, &service, "/x", &[3, 2]), None);
}

#[test]
fn ties_go_to_the_server_listed_first_in_the_rule() {
    let service = TestService::with_servers(&[(1, 1), (1, 1), (1, 1)]).rule(".*", None, &[2, 0, 1]);
    let p = Http.build(&service).unwrap();
    assert_eq!(pick(&*p, &service, "/", &[]), Some((2, Some(0))));
}

#[test]
fn rules_match_the_raw_target_including_the_query() {
    let service = TestService::with_servers(&[(1, 0), (1, 0)])
        .rule(r"\?debug=1", None, &[0])
        .rule(".*", None, &[1]);
    let p = Http.build(&service).unwrap();
    assert_eq!(
        pick(&*p, &service, "/page?debug=1", &[]).map(|s| s.0),
        Some(0)
    );
    assert_eq!(
        pick(&*p, &service, "/page%3Fdebug=1", &[]).map(|s| s.0),
        Some(1)
    );
}

#[test]
fn a_request_without_a_head_gets_no_server() {
    let service = two_rule_service();
    let p = Http.build(&service).unwrap();
    let req = PickRequest {
        client: ([192, 0, 2, 1], 1).into(),
        head: None,
        exclude: &[],
        server_name: None,
    };
    assert_eq!(p.pick(&service, &req), None);
}

#[test]
fn build_refuses_a_rule_that_routes_to_a_missing_server() {
    let service = TestService::with_servers(&[(1, 0)]).rule(".*", None, &[0, 5]);
    let err = Http.build(&service).err().expect("refused");
    assert_eq!(err.scheduler, "http");
    assert_eq!(err.service, "web");
    assert!(err.reason.contains("#5"), "{}", err.reason);
}

#[test]
fn http_and_phttp_add_no_response_header() {
    let service = two_rule_service();
    let p = Phttp.build(&service).unwrap();
    let h = head("/x", &[]);
    let s = p
        .pick(&service, &TestService::request(Some(&h), &[]))
        .unwrap();
    assert_eq!(p.response_header(&s, true), None);
}

#[test]
fn http_passes_the_core_conformance_check() {
    ktcpvs_core::testkit::conformance::check(&Http).unwrap();
}

#[test]
fn phttp_passes_the_core_conformance_check() {
    ktcpvs_core::testkit::conformance::check(&Phttp).unwrap();
}

//! Behaviour of the `wlc` scheduler through the core traits: which server
//! it picks, what it skips, how it breaks ties and how it registers.

use ktcpvs_core::scheduler::{Dispatch, Picker, Scheduler, SchedulerRegistry};
use ktcpvs_core::testkit::TestService;
use ktcpvs_sched_wlc::Wlc;

fn picker(service: &TestService) -> Box<dyn Picker> {
    Wlc.build(service).expect("wlc builds for any service")
}

/// The server `picker` chooses for a layer-4 request excluding `exclude`.
fn pick(picker: &dyn Picker, service: &TestService, exclude: &[usize]) -> Option<usize> {
    picker
        .pick(service, &TestService::request(None, exclude))
        .map(|s| s.server)
}

#[test]
fn wlc_is_named_wlc_and_decides_on_connection() {
    assert_eq!(Wlc.name(), "wlc");
    assert_eq!(Wlc.dispatch(), Dispatch::Connection);
    assert!(!Wlc.description().is_empty());
}

#[test]
fn register_makes_wlc_findable_by_name_once() {
    let registry = SchedulerRegistry::new();
    ktcpvs_sched_wlc::register(&registry).unwrap();
    assert_eq!(registry.get("wlc").unwrap().name(), "wlc");
    assert!(
        ktcpvs_sched_wlc::register(&registry).is_err(),
        "a second registration is refused"
    );
}

#[test]
fn picks_lowest_active_per_weight() {
    // 10/5 = 2, 3/1 = 3, 9/3 = 3: the first is least loaded per weight.
    let service = TestService::with_servers(&[(5, 10), (1, 3), (3, 9)]);
    assert_eq!(pick(&*picker(&service), &service, &[]), Some(0));
}

#[test]
fn weight_scales_the_share_not_the_raw_count() {
    // The heavier server has more connections but less per weight.
    let service = TestService::with_servers(&[(1, 2), (10, 15)]);
    assert_eq!(pick(&*picker(&service), &service, &[]), Some(1));
}

#[test]
fn empty_service_returns_none_without_panic() {
    let service = TestService::with_servers(&[]);
    assert_eq!(pick(&*picker(&service), &service, &[]), None);
}

#[test]
fn quiesced_server_is_never_picked_even_when_idle() {
    let service = TestService::with_servers(&[(0, 0), (1, 100)]);
    assert_eq!(pick(&*picker(&service), &service, &[]), Some(1));
}

#[test]
fn all_weights_zero_means_no_server() {
    let service = TestService::with_servers(&[(0, 0), (0, 0), (0, 5)]);
    assert_eq!(pick(&*picker(&service), &service, &[]), None);
}

#[test]
fn unhealthy_server_is_skipped() {
    let service = TestService::with_servers(&[(1, 0), (1, 10)]);
    service.set_healthy(0, false);
    assert_eq!(pick(&*picker(&service), &service, &[]), Some(1));
    service.set_healthy(1, false);
    assert_eq!(pick(&*picker(&service), &service, &[]), None);
}

#[test]
fn retry_skips_excluded_servers() {
    let service = TestService::with_servers(&[(1, 0), (1, 1), (1, 2)]);
    let p = picker(&service);
    assert_eq!(pick(&*p, &service, &[0]), Some(1));
    assert_eq!(pick(&*p, &service, &[0, 1]), Some(2));
    assert_eq!(pick(&*p, &service, &[0, 1, 2]), None);
}

#[test]
fn ties_go_to_the_earliest_added_server() {
    // 2/1 = 4/2 = 6/3: all equal, so index 0 wins.
    let service = TestService::with_servers(&[(1, 2), (2, 4), (3, 6)]);
    assert_eq!(pick(&*picker(&service), &service, &[]), Some(0));
    // With the first quiesced, the next earliest wins.
    service.set_weight(0, 0);
    assert_eq!(pick(&*picker(&service), &service, &[]), Some(1));
}

#[test]
fn load_is_read_live_without_a_rebuild() {
    let service = TestService::with_servers(&[(1, 0), (1, 0)]);
    let p = picker(&service);
    assert_eq!(pick(&*p, &service, &[]), Some(0));
    service.set_active(0, 3);
    assert_eq!(pick(&*p, &service, &[]), Some(1));
}

#[test]
fn equal_weights_spread_connections_round_robin_like() {
    let service = TestService::with_servers(&[(1, 0), (1, 0), (1, 0)]);
    let p = picker(&service);
    let picks: Vec<_> = (0..6)
        .map(|_| {
            let s = pick(&*p, &service, &[]).unwrap();
            service.add_connection(s);
            s
        })
        .collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn huge_counts_and_weights_do_not_overflow() {
    let service = TestService::with_servers(&[(65_535, u64::MAX), (65_535, u64::MAX - 1)]);
    assert_eq!(pick(&*picker(&service), &service, &[]), Some(1));
}

#[test]
fn picker_built_for_more_servers_does_not_index_past_the_service() {
    let big = TestService::with_servers(&[(1, 5), (1, 5), (1, 0)]);
    let p = picker(&big);
    let small = TestService::with_servers(&[(1, 5), (1, 4)]);
    assert_eq!(pick(&*p, &small, &[]), Some(1));
}

#[test]
fn wlc_passes_the_core_conformance_check() {
    ktcpvs_core::testkit::conformance::check(&Wlc).unwrap();
}

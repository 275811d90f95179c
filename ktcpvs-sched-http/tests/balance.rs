//! The balancing schedulers (`rr`, `wrr`, `p2c`, `lrt`) and `hhttp`'s
//! bounded loads, through the core traits: the conformance checks, shares
//! by weight over 10,000 picks within stated tolerances, rules respected
//! (and a service without rules balanced over every server), `p2c`
//! favouring the lightly loaded, `lrt` moving traffic away from a slow
//! server and back, and bounded-load hashing keeping every server under its
//! bound while keys stay put when loads are even.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ktcpvs_core::scheduler::{Picker, Scheduler};
use ktcpvs_core::testkit::{conformance, head, TestService};
use ktcpvs_core::view::VirtualService;
use ktcpvs_sched_http::{smooth_order, Hhttp, Lrt, P2c, Rr, Wrr};

fn picks(picker: &dyn Picker, service: &TestService, target: &str, n: usize) -> Vec<usize> {
    let h = head(target, &[]);
    let mut count = vec![0; service.server_count()];
    for _ in 0..n {
        let s = picker
            .pick(service, &TestService::request(Some(&h), &[]))
            .unwrap();
        count[s.server] += 1;
    }
    count
}

#[test]
fn the_balancing_schedulers_pass_the_conformance_checks() {
    let schedulers: [&dyn Scheduler; 4] = [&Rr, &Wrr, &P2c, &Lrt];
    for s in schedulers {
        conformance::check(s).unwrap();
        assert_eq!(
            s.dispatch(),
            ktcpvs_core::Dispatch::EachRequest,
            "{}",
            s.name()
        );
    }
}

#[test]
fn wrr_gives_each_server_its_weight_share_and_rr_an_equal_one() {
    // No rules: every server; weights 5, 3, 2 and a quiesced one.
    let service = TestService::with_servers(&[(5, 0), (3, 0), (2, 0), (0, 0)]);
    let wrr = Wrr.build(&service).unwrap();
    assert_eq!(
        picks(&*wrr, &service, "/", 10_000),
        [5_000, 3_000, 2_000, 0]
    );
    let rr = Rr.build(&service).unwrap();
    let count = picks(&*rr, &service, "/", 9_999);
    assert_eq!(count, [3_333, 3_333, 3_333, 0]);
    // The smooth order never gives the heaviest server a long burst.
    let order = smooth_order(&[5, 3, 2]);
    assert!(
        order
            .windows(3)
            .all(|w| !(w[0] == 0 && w[1] == 0 && w[2] == 0)),
        "{order:?}"
    );
}

#[test]
fn the_balancers_stay_inside_the_matched_rule_and_skip_the_unavailable() {
    let service = TestService::with_servers(&[(1, 0), (1, 0), (1, 0), (1, 0)])
        .rule("^/a/", None, &[0, 1])
        .rule(".*", None, &[2, 3]);
    service.set_healthy(1, false);
    let schedulers: [&dyn Scheduler; 4] = [&Rr, &Wrr, &P2c, &Lrt];
    for s in schedulers {
        let picker = s.build(&service).unwrap();
        let a = picks(&*picker, &service, "/a/x", 1_000);
        assert_eq!(a, [1_000, 0, 0, 0], "{}", s.name());
        let rest = closed_loop(&*picker, &service, "/b", 1_000);
        assert_eq!(rest[0] + rest[1], 0, "{}", s.name());
        assert!(rest[2] > 0 && rest[3] > 0, "{}: {rest:?}", s.name());
    }
}

/// A closed loop of 32 requests always in flight: each step one request
/// completes, on a server drawn in proportion to its capacity (its weight)
/// among those with requests in flight, and the scheduler places a new one
/// (a request matching `target`). A scheduler that follows load then gives
/// each server its capacity's share; one that does not lets the slower
/// servers' queues grow. Returns the picks per server.
fn closed_loop(
    picker: &dyn Picker,
    service: &TestService,
    target: &str,
    steps: usize,
) -> Vec<usize> {
    let h = head(target, &[]);
    let n = service.server_count();
    let weight = |i: usize| u64::from(service.servers[i].weight.load(Ordering::Relaxed));
    let mut active = vec![0u64; n];
    let mut count = vec![0usize; n];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    (0..n).for_each(|i| service.set_active(i, 0));
    let place = |active: &mut Vec<u64>, count: &mut Vec<usize>| {
        let s = picker
            .pick(service, &TestService::request(Some(&h), &[]))
            .unwrap()
            .server;
        count[s] += 1;
        active[s] += 1;
        service.set_active(s, active[s]);
    };
    for _ in 0..32 {
        place(&mut active, &mut count);
    }
    count.iter_mut().for_each(|c| *c = 0);
    for _ in 0..steps {
        let capacity: Vec<u64> = (0..n)
            .map(|i| if active[i] > 0 { weight(i) } else { 0 })
            .collect();
        let total: u64 = capacity.iter().sum();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut r = seed % total.max(1);
        if let Some(i) = (0..n).find(|&i| {
            if r < capacity[i] {
                true
            } else {
                r -= capacity[i];
                false
            }
        }) {
            active[i] -= 1;
            service.set_active(i, active[i]);
        }
        place(&mut active, &mut count);
    }
    count
}

#[test]
fn p2c_and_lrt_follow_capacity_within_five_percent() {
    for s in [&P2c as &dyn Scheduler, &Lrt] {
        let service = TestService::with_servers(&[(3, 0), (1, 0)]);
        let picker = s.build(&service).unwrap();
        let count = closed_loop(&*picker, &service, "/", 10_000);
        let share = count[0] as f64 / 10_000.0;
        assert!((share - 0.75).abs() < 0.05, "{}: {count:?}", s.name());
    }
}

#[test]
fn p2c_prefers_the_lighter_of_two_draws() {
    // Fixed loads 0, 10, 20 at equal weights, two distinct servers drawn:
    // the lightest wins whenever it is drawn (2/3 of the picks), the middle
    // one the rest, the heaviest never.
    let service = TestService::with_servers(&[(1, 0), (1, 10), (1, 20)]);
    let picker = P2c.build(&service).unwrap();
    let count = picks(&*picker, &service, "/", 10_000);
    assert!((6_300..7_000).contains(&count[0]), "{count:?}");
    assert_eq!(count[2], 0, "{count:?}");
}

#[test]
fn lrt_moves_traffic_away_from_a_slow_server_and_back() {
    let service = TestService::with_servers(&[(1, 0), (1, 0), (1, 0)]);
    for i in 0..3 {
        service.set_response_time(i, Some(Duration::from_millis(2)));
    }
    service.set_response_time(1, Some(Duration::from_millis(40)));
    let picker = Lrt.build(&service).unwrap();
    let slow = closed_loop(&*picker, &service, "/", 10_000);
    assert!(slow[1] < 600, "the slow server kept {slow:?}");
    service.set_response_time(1, Some(Duration::from_millis(2)));
    let healed = closed_loop(&*picker, &service, "/", 10_000);
    assert!(healed[1] > 2_800, "the healed server got {healed:?}");
    // A server not measured yet counts as fast as the fastest known.
    service.set_response_time(2, None);
    let fresh = closed_loop(&*picker, &service, "/", 10_000);
    assert!(fresh[2] > 2_800, "the new server got {fresh:?}");
}

#[test]
fn bounded_load_hashing_keeps_servers_under_their_bound_and_keys_put_when_even() {
    let keys: Vec<String> = (0..300).map(|k| format!("/users/u{k}/")).collect();
    let plain = TestService::with_servers(&[(1, 0), (1, 0), (1, 0)]).rule(
        "^/users/([^/]+)/",
        Some(1),
        &[0, 1, 2],
    );
    let bounded = TestService::with_servers(&[(1, 0), (1, 0), (1, 0)])
        .rule("^/users/([^/]+)/", Some(1), &[0, 1, 2])
        .option("hash_balance_factor", "125");
    let (p, b) = (Hhttp.build(&plain).unwrap(), Hhttp.build(&bounded).unwrap());
    let pick = |picker: &dyn Picker, service: &TestService, key: &str| {
        let h = head(key, &[]);
        picker
            .pick(service, &TestService::request(Some(&h), &[]))
            .unwrap()
            .server
    };
    // Even loads: the bound changes nothing.
    for k in &keys {
        assert_eq!(pick(&*p, &plain, k), pick(&*b, &bounded, k), "{k}");
    }
    // Every key held in flight (none completes): no server goes past
    // ceil(1.25 × average), while without the bound the hash decides alone.
    for k in &keys {
        let s = pick(&*b, &bounded, k);
        let now = bounded.servers[s]
            .active
            .load(std::sync::atomic::Ordering::Relaxed);
        bounded.set_active(s, now + 1);
        let total: u64 = (0..3)
            .map(|i| {
                bounded.servers[i]
                    .active
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum();
        let bound = (125 * total).div_ceil(300);
        for i in 0..3 {
            let a = bounded.servers[i]
                .active
                .load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                a <= bound.max(1),
                "server {i} holds {a} of {total} (bound {bound})"
            );
        }
    }
    // A bad factor is refused.
    let bad = TestService::with_servers(&[(1, 0)])
        .rule(".*", None, &[0])
        .option("hash_balance_factor", "90");
    assert!(Hhttp.build(&bad).is_err());
}

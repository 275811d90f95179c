//! Property tests of `wlc`: over random weight vectors and steady-state
//! connection counts, its choices keep every server within one connection
//! of the weighted ideal, and each pick is exactly the least-loaded
//! available server (earliest on ties).

use ktcpvs_core::scheduler::Scheduler;
use ktcpvs_core::testkit::TestService;
use ktcpvs_sched_wlc::Wlc;
use proptest::prelude::*;

/// The reference answer: the available, non-excluded server with the
/// lowest active/weight (exact rational comparison), lowest index on ties.
fn oracle(service: &TestService, exclude: &[usize]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, s) in service.servers.iter().enumerate() {
        let w = s.weight.load(std::sync::atomic::Ordering::Relaxed);
        let healthy = s.healthy.load(std::sync::atomic::Ordering::Relaxed);
        if w == 0 || !healthy || exclude.contains(&i) {
            continue;
        }
        best = match best {
            None => Some(i),
            Some(b) => {
                let bw = service.servers[b]
                    .weight
                    .load(std::sync::atomic::Ordering::Relaxed);
                let lhs = service.active(i) as u128 * bw as u128;
                let rhs = service.active(b) as u128 * w as u128;
                if lhs < rhs {
                    Some(i)
                } else {
                    Some(b)
                }
            }
        };
    }
    best
}

/// "Within one connection": no available server `i` is more than one
/// connection ahead of any other available server `j`, relative to their
/// weights: `(a_i - 1) / w_i <= a_j / w_j`. Also, no server holds more
/// than one connection above its exact weighted share of the total.
fn assert_balanced(service: &TestService, weights: &[u32]) -> Result<(), TestCaseError> {
    let total: u64 = (0..weights.len()).map(|i| service.active(i)).sum();
    let weight_sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    for (i, &wi) in weights.iter().enumerate() {
        if wi == 0 {
            continue;
        }
        let ai = service.active(i);
        for (j, &wj) in weights.iter().enumerate() {
            if wj == 0 || ai == 0 {
                continue;
            }
            let aj = service.active(j);
            prop_assert!(
                u128::from(ai - 1) * u128::from(wj) <= u128::from(aj) * u128::from(wi),
                "server {i} ({ai}/{wi}) is more than one connection ahead of server {j} ({aj}/{wj})"
            );
        }
        // ai <= total * wi / W + 1, in integers.
        prop_assert!(
            u128::from(ai) * u128::from(weight_sum) <= u128::from(total) * u128::from(wi) + u128::from(weight_sum),
            "server {i} holds {ai} of {total} connections, more than one above its share {wi}/{weight_sum}"
        );
    }
    Ok(())
}

fn weights() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(prop_oneof![Just(0u32), 1u32..=10, 1u32..=1000], 1..=16)
        .prop_filter("at least one server in rotation", |w| {
            w.iter().any(|&x| x > 0)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Starting from a steady state that wlc itself produced (a random
    /// number of earlier arrivals), every further arrival keeps the
    /// service balanced within one connection of the ideal.
    #[test]
    fn arrivals_stay_within_one_connection_of_the_weighted_ideal(
        weights in weights(),
        warm_up in 0usize..2000,
        arrivals in 1usize..500,
    ) {
        let spec: Vec<(u32, u64)> = weights.iter().map(|&w| (w, 0)).collect();
        let service = TestService::with_servers(&spec);
        let picker = Wlc.build(&service).unwrap();
        for step in 0..warm_up + arrivals {
            let picked = picker.pick(&service, &TestService::request(None, &[])).map(|s| s.server);
            let picked = picked.expect("a server with weight > 0 exists");
            prop_assert!(weights[picked] > 0, "quiesced server {picked} was picked");
            service.add_connection(picked);
            if step >= warm_up {
                assert_balanced(&service, &weights)?;
            }
        }
    }

    /// With arbitrary counts, departures, quiesced and unhealthy servers
    /// and exclusions, each pick is exactly the reference answer.
    #[test]
    fn every_pick_is_the_least_loaded_available_server(
        servers in prop::collection::vec((0u32..=20, 0u64..1000, prop::bool::weighted(0.9)), 0..=16),
        events in prop::collection::vec((any::<bool>(), any::<prop::sample::Index>()), 1..200),
        exclude in prop::collection::vec(0usize..16, 0..3),
    ) {
        let spec: Vec<(u32, u64)> = servers.iter().map(|&(w, a, _)| (w, a)).collect();
        let service = TestService::with_servers(&spec);
        for (i, &(_, _, healthy)) in servers.iter().enumerate() {
            service.set_healthy(i, healthy);
        }
        let picker = Wlc.build(&service).unwrap();
        for (arrival, which) in events {
            if arrival || servers.is_empty() {
                let got = picker.pick(&service, &TestService::request(None, &exclude)).map(|s| s.server);
                prop_assert_eq!(got, oracle(&service, &exclude));
                if let Some(s) = got {
                    service.add_connection(s);
                }
            } else {
                let s = which.index(servers.len());
                let a = service.active(s);
                service.set_active(s, a.saturating_sub(1));
            }
        }
    }
}

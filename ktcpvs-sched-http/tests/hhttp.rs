//! Behaviour of `hhttp` through the core traits: the key is the rule's
//! capture group, the same key reaches the same server whatever the server
//! order, quiesced and down servers take no keys, retries move on.

use ktcpvs_core::scheduler::{Dispatch, Picker, Scheduler};
use ktcpvs_core::testkit::{addr, head, TestServer, TestService};
use ktcpvs_sched_http::{rendezvous, server_seed, Hhttp};

fn pick(
    picker: &dyn Picker,
    service: &TestService,
    target: &str,
    exclude: &[usize],
) -> Option<usize> {
    let h = head(target, &[]);
    picker
        .pick(service, &TestService::request(Some(&h), exclude))
        .map(|s| s.server)
}

fn users_service(n: usize) -> TestService {
    let spec = vec![(1, 0); n];
    let servers: Vec<usize> = (0..n).collect();
    TestService::with_servers(&spec).rule("^/users/([^/]+)(/x)?", Some(1), &servers)
}

#[test]
fn hhttp_is_named_hhttp_and_decides_per_connection() {
    assert_eq!(
        (Hhttp.name(), Hhttp.dispatch()),
        ("hhttp", Dispatch::FirstRequest)
    );
}

#[test]
fn same_capture_reaches_same_server_whatever_the_rest_of_the_target() {
    let service = users_service(8);
    let p = Hhttp.build(&service).unwrap();
    let first = pick(&*p, &service, "/users/alice/profile", &[]);
    assert!(first.is_some());
    for rest in ["/", "/photos?page=2", "/a/b/c"] {
        assert_eq!(
            pick(&*p, &service, &format!("/users/alice{rest}"), &[]),
            first
        );
    }
}

#[test]
fn load_does_not_move_a_key() {
    let service = users_service(4);
    let p = Hhttp.build(&service).unwrap();
    let s = pick(&*p, &service, "/users/bob/", &[]).unwrap();
    service.set_active(s, 1_000_000);
    assert_eq!(pick(&*p, &service, "/users/bob/", &[]), Some(s));
}

#[test]
fn different_keys_spread_over_servers() {
    let service = users_service(4);
    let p = Hhttp.build(&service).unwrap();
    let mut seen = [false; 4];
    for i in 0..200 {
        seen[pick(&*p, &service, &format!("/users/u{i}/"), &[]).unwrap()] = true;
    }
    assert_eq!(seen, [true; 4]);
}

#[test]
fn result_does_not_depend_on_server_order() {
    let forward = users_service(5);
    let mut reversed = TestService::with_servers(&[]);
    reversed.servers = (0..5)
        .rev()
        .map(|i| TestServer::new(addr(i), 1, 0))
        .collect();
    let reversed = reversed.rule("^/users/([^/]+)", Some(1), &[3, 1, 4, 0, 2]);
    let (pf, pr) = (
        Hhttp.build(&forward).unwrap(),
        Hhttp.build(&reversed).unwrap(),
    );
    for i in 0..100 {
        let target = format!("/users/k{i}/");
        let a = pick(&*pf, &forward, &target, &[]).map(|s| forward.servers[s].addr);
        let b = pick(&*pr, &reversed, &target, &[]).map(|s| reversed.servers[s].addr);
        assert_eq!(a, b, "key k{i}");
    }
}

#[test]
fn quiesced_server_takes_no_keys_and_others_keep_theirs() {
    let service = users_service(4);
    let p = Hhttp.build(&service).unwrap();
    let before: Vec<_> = (0..300)
        .map(|i| pick(&*p, &service, &format!("/users/{i}/"), &[]).unwrap())
        .collect();
    service.set_weight(2, 0);
    for (i, &b) in before.iter().enumerate() {
        let now = pick(&*p, &service, &format!("/users/{i}/"), &[]).unwrap();
        assert_ne!(now, 2);
        if b != 2 {
            assert_eq!(now, b, "key {i} moved although its server is still up");
        }
    }
}

#[test]
fn down_server_takes_no_keys() {
    let service = users_service(3);
    let p = Hhttp.build(&service).unwrap();
    service.set_healthy(0, false);
    for i in 0..100 {
        assert_ne!(pick(&*p, &service, &format!("/users/{i}/"), &[]), Some(0));
    }
}

#[test]
fn retry_moves_the_key_to_its_second_choice_only() {
    let service = users_service(4);
    let p = Hhttp.build(&service).unwrap();
    let first = pick(&*p, &service, "/users/carol/", &[]).unwrap();
    let second = pick(&*p, &service, "/users/carol/", &[first]).unwrap();
    assert_ne!(first, second);
    // The second choice is where the key goes if the first is removed.
    service.set_weight(first, 0);
    assert_eq!(pick(&*p, &service, "/users/carol/", &[]), Some(second));
    assert_eq!(pick(&*p, &service, "/users/carol/", &[0, 1, 2, 3]), None);
}

#[test]
fn all_servers_quiesced_means_no_server() {
    let service = users_service(2);
    service.set_weight(0, 0);
    service.set_weight(1, 0);
    let p = Hhttp.build(&service).unwrap();
    assert_eq!(pick(&*p, &service, "/users/a/", &[]), None);
}

#[test]
fn non_participating_group_hashes_the_empty_key_consistently() {
    let service = TestService::with_servers(&[(1, 0), (1, 0), (1, 0), (1, 0)]).rule(
        "^/(a)?",
        Some(1),
        &[0, 1, 2, 3],
    );
    let p = Hhttp.build(&service).unwrap();
    let expected = rendezvous(b"", (0..4).map(|i| (i, server_seed(addr(i)), 1)));
    for target in ["/", "/b", "/zzz", "/?q=1"] {
        assert_eq!(pick(&*p, &service, target, &[]), expected, "{target}");
    }
}

#[test]
fn rule_without_match_n_hashes_the_whole_match() {
    let service =
        TestService::with_servers(&[(1, 0), (1, 0), (1, 0)]).rule("^/[a-z]+", None, &[0, 1, 2]);
    let p = Hhttp.build(&service).unwrap();
    let expected = rendezvous(b"/abc", (0..3).map(|i| (i, server_seed(addr(i)), 1)));
    assert_eq!(pick(&*p, &service, "/abc/def", &[]), expected);
    assert_eq!(pick(&*p, &service, "/abc?x", &[]), expected);
}

#[test]
fn a_capture_at_offset_zero_still_finds_a_server() {
    // The original returned no server for a capture starting at offset 0.
    let service = TestService::with_servers(&[(1, 0), (1, 0)]).rule(".*", Some(0), &[0, 1]);
    let p = Hhttp.build(&service).unwrap();
    assert!(pick(&*p, &service, "/anything", &[]).is_some());
}

#[test]
fn non_ascii_keys_find_a_server() {
    let service = users_service(3);
    let p = Hhttp.build(&service).unwrap();
    assert!(pick(&*p, &service, "/users/\u{e9}l\u{e8}ve/", &[]).is_some());
}

#[test]
fn only_servers_of_the_matching_rule_take_its_keys() {
    let service = TestService::with_servers(&[(1, 0), (1, 0), (1, 0), (1, 0)])
        .rule("^/a/(.*)", Some(1), &[0, 1])
        .rule("^/(.*)", Some(1), &[2, 3]);
    let p = Hhttp.build(&service).unwrap();
    for i in 0..50 {
        assert!(pick(&*p, &service, &format!("/a/{i}"), &[]).unwrap() < 2);
        assert!(pick(&*p, &service, &format!("/b/{i}"), &[]).unwrap() >= 2);
    }
    assert_eq!(pick(&*p, &service, "nothing", &[]), None);
}

#[test]
fn heavier_server_takes_more_keys() {
    let service = TestService::with_servers(&[(1, 0), (3, 0)]).rule("^/(.*)", Some(1), &[0, 1]);
    let p = Hhttp.build(&service).unwrap();
    let heavy = (0..4000)
        .filter(|i| pick(&*p, &service, &format!("/{i}"), &[]) == Some(1))
        .count();
    assert!(
        (2700..3300).contains(&heavy),
        "weight 3 of 4 took {heavy} of 4000 keys"
    );
}

#[test]
fn build_refuses_a_rule_that_routes_to_a_missing_server() {
    let service = TestService::with_servers(&[(1, 0)]).rule("(.*)", Some(1), &[1]);
    assert!(Hhttp.build(&service).is_err());
}

#[test]
fn hhttp_passes_the_core_conformance_check() {
    ktcpvs_core::testkit::conformance::check(&Hhttp).unwrap();
}

#[test]
fn server_seeds_are_the_same_in_every_version() {
    // Known answers: a seed that changed would move keys between servers
    // on upgrade, and split them between instances of two versions.
    assert_eq!(
        server_seed("10.0.0.1:80".parse().unwrap()),
        0x5b65b29e8ab6801c
    );
    assert_eq!(
        server_seed("[2001:db8::1]:8080".parse().unwrap()),
        0x003ff547c38980d3
    );
}

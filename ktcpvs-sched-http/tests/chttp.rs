//! Behaviour of `chttp` through the core traits: cookies honoured,
//! forged ones ignored, re-pinning when the server goes, the options, and
//! the `Set-Cookie` line.

use ktcpvs_core::scheduler::{Dispatch, Header, Picker, Scheduler, Selection};
use ktcpvs_core::testkit::{addr, head, TestService};
use ktcpvs_sched_http::{cookie_value, default_key, Chttp, ChttpPicker, CookieInsert};

fn service() -> TestService {
    TestService::with_servers(&[(1, 0), (1, 5), (1, 9)]).rule(".*", None, &[0, 1, 2])
}

fn value_of(service_name: &str, server: usize) -> String {
    format!(
        "{:032x}",
        cookie_value(&default_key(service_name), addr(server))
    )
}

fn pick_with_cookie(
    p: &dyn Picker,
    service: &TestService,
    cookie: Option<&str>,
    exclude: &[usize],
) -> Option<Selection> {
    let headers: Vec<Header<'_>> = cookie
        .map(|c| Header {
            name: "Cookie",
            value: c.as_bytes(),
        })
        .into_iter()
        .collect();
    let h = head("/page", &headers);
    p.pick(service, &TestService::request(Some(&h), exclude))
}

#[test]
fn chttp_is_named_chttp_and_decides_per_request() {
    assert_eq!(
        (Chttp.name(), Chttp.dispatch()),
        ("chttp", Dispatch::EachRequest)
    );
}

#[test]
fn client_without_cookie_gets_least_loaded_server_and_a_stamp() {
    let s = service();
    let p = Chttp.build(&s).unwrap();
    let sel = pick_with_cookie(&*p, &s, None, &[]).unwrap();
    assert_eq!((sel.server, sel.rule, sel.stamp), (0, Some(0), true));
    let line = p.response_header(&sel, false).unwrap();
    assert_eq!(
        line,
        format!(
            "Set-Cookie: KTCPVS_SID={}; Path=/; HttpOnly; SameSite=Lax\r\n",
            value_of("web", 0)
        )
        .as_bytes()
    );
}

#[test]
fn valid_cookie_routes_to_its_server_without_a_stamp() {
    let s = service();
    let p = Chttp.build(&s).unwrap();
    let cookie = format!("a=1; KTCPVS_SID={}; b=2", value_of("web", 2));
    let sel = pick_with_cookie(&*p, &s, Some(&cookie), &[]).unwrap();
    assert_eq!(
        (sel.server, sel.stamp),
        (2, false),
        "the most loaded server, because the cookie says so"
    );
    assert_eq!(p.response_header(&sel, true), None);
}

#[test]
fn forged_and_malformed_cookies_are_ignored() {
    let s = service();
    let p = Chttp.build(&s).unwrap();
    let real = value_of("web", 2);
    let upper = real.to_uppercase();
    let flipped = format!(
        "{}{}",
        &real[..31],
        if real.ends_with('0') { '1' } else { '0' }
    );
    for bad in [
        "",
        "2",
        "10.0.0.3:80",
        &upper,
        &flipped,
        &format!("{real}0"),
        &real[1..],
        "zz",
    ] {
        let sel = pick_with_cookie(&*p, &s, Some(&format!("KTCPVS_SID={bad}")), &[]).unwrap();
        assert_eq!((sel.server, sel.stamp), (0, true), "cookie {bad:?}");
    }
}

#[test]
fn cookie_of_another_key_or_deleted_server_is_stale() {
    let s = service();
    let p = Chttp.build(&s).unwrap();
    let other_service = value_of("other", 2);
    let deleted = value_of("web", 7);
    for stale in [other_service, deleted] {
        let sel = pick_with_cookie(&*p, &s, Some(&format!("KTCPVS_SID={stale}")), &[]).unwrap();
        assert_eq!((sel.server, sel.stamp), (0, true));
    }
}

#[test]
fn quiesced_or_down_server_is_repicked_with_a_new_stamp() {
    let s = service();
    let p = Chttp.build(&s).unwrap();
    let cookie = format!("KTCPVS_SID={}", value_of("web", 0));
    s.set_weight(0, 0);
    let sel = pick_with_cookie(&*p, &s, Some(&cookie), &[]).unwrap();
    assert_eq!((sel.server, sel.stamp), (1, true));
    s.set_weight(0, 1);
    s.set_healthy(0, false);
    let sel = pick_with_cookie(&*p, &s, Some(&cookie), &[]).unwrap();
    assert_eq!((sel.server, sel.stamp), (1, true));
    s.set_healthy(0, true);
    let sel = pick_with_cookie(&*p, &s, Some(&cookie), &[]).unwrap();
    assert_eq!(
        (sel.server, sel.stamp),
        (0, false),
        "back in rotation: the cookie holds again"
    );
}

#[test]
fn retry_after_a_failed_connect_repins() {
    let s = service();
    let p = Chttp.build(&s).unwrap();
    let cookie = format!("KTCPVS_SID={}", value_of("web", 0));
    let sel = pick_with_cookie(&*p, &s, Some(&cookie), &[0]).unwrap();
    assert_eq!((sel.server, sel.stamp), (1, true));
}

#[test]
fn no_matching_rule_means_no_server_even_with_a_cookie() {
    let s = TestService::with_servers(&[(1, 0)]).rule("^/app/", None, &[0]);
    let p = Chttp.build(&s).unwrap();
    let cookie = format!("KTCPVS_SID={}", value_of("web", 0));
    assert_eq!(pick_with_cookie(&*p, &s, Some(&cookie), &[]), None);
}

#[test]
fn cookie_for_another_rule_is_kept_and_the_rule_is_obeyed() {
    let s = TestService::with_servers(&[(1, 0), (1, 0), (1, 0)])
        .rule("^/app/", None, &[0, 1])
        .rule(".*", None, &[2]);
    let p = Chttp.build(&s).unwrap();
    let cookie = format!("KTCPVS_SID={}", value_of("web", 1));
    let sel = pick_with_cookie(&*p, &s, Some(&cookie), &[]).unwrap();
    assert_eq!(
        (sel.server, sel.rule, sel.stamp),
        (2, Some(1), false),
        "/page is not an /app/ request"
    );
}

#[test]
fn backend_mode_stamps_only_when_the_backend_sets_a_cookie() {
    let s = service().option("cookie_insert", "backend");
    let p = Chttp.build(&s).unwrap();
    let sel = pick_with_cookie(&*p, &s, None, &[]).unwrap();
    assert!(sel.stamp);
    assert_eq!(p.response_header(&sel, false), None);
    assert!(p.response_header(&sel, true).is_some());
}

#[test]
fn cookie_name_and_key_options_change_the_cookie() {
    let s = service()
        .option("cookie_name", "LB")
        .option("cookie_key", "s3cret");
    let p = Chttp.build(&s).unwrap();
    let value = format!("{:032x}", cookie_value(b"s3cret", addr(1)));
    let sel = pick_with_cookie(&*p, &s, Some(&format!("LB={value}")), &[]).unwrap();
    assert_eq!((sel.server, sel.stamp), (1, false));
    // The default-named cookie means nothing now.
    let sel = pick_with_cookie(
        &*p,
        &s,
        Some(&format!("KTCPVS_SID={}", value_of("web", 1))),
        &[],
    )
    .unwrap();
    assert_eq!((sel.server, sel.stamp), (0, true));
    let line = p.response_header(&sel, false).unwrap();
    assert!(
        line.starts_with(b"Set-Cookie: LB=")
            && line.ends_with(b"; Path=/; HttpOnly; SameSite=Lax\r\n")
    );
}

#[test]
fn cookie_value_reveals_no_address_and_is_stable() {
    let s = service();
    let a = ChttpPicker::new(&s).unwrap();
    let b = ChttpPicker::new(&s).unwrap();
    for i in 0..3 {
        let line = std::str::from_utf8(a.cookie_line(i).unwrap()).unwrap();
        assert!(!line.contains("10.0.0") && !line.contains(":80"), "{line}");
        assert_eq!(a.cookie_line(i), b.cookie_line(i), "two instances agree");
    }
    assert_eq!(a.server_for(&value_of("web", 1)), Some(1));
    assert_eq!(
        (a.cookie_name(), a.insert()),
        ("KTCPVS_SID", CookieInsert::Always)
    );
}

#[test]
fn invalid_options_refuse_the_service() {
    for (name, value) in [
        ("cookie_insert", "sometimes"),
        ("cookie_name", ""),
        ("cookie_name", "bad name"),
        ("cookie_name", "a;b"),
        ("cookie_key", ""),
    ] {
        let s = service().option(name, value);
        let err = Chttp
            .build(&s)
            .err()
            .unwrap_or_else(|| panic!("{name} = {value:?} accepted"));
        assert_eq!(err.scheduler, "chttp");
        assert!(err.reason.contains(name), "{}", err.reason);
    }
    assert!(Chttp
        .build(&service().option("cookie_insert", "BACKEND"))
        .is_ok());
}

#[test]
fn unstamped_selection_adds_no_header() {
    let s = service();
    let p = Chttp.build(&s).unwrap();
    assert_eq!(p.response_header(&Selection::server(0), true), None);
}

#[test]
fn chttp_passes_the_core_conformance_check() {
    ktcpvs_core::testkit::conformance::check(&Chttp).unwrap();
}

#[test]
fn cookie_values_are_the_same_in_every_version() {
    // Known answers: instances of different versions sharing a key must
    // keep honouring each other's cookies.
    let v4 = cookie_value(b"s3cret", "10.0.0.1:80".parse().unwrap());
    let v6 = cookie_value(&default_key("web"), "[2001:db8::1]:8080".parse().unwrap());
    assert_eq!(format!("{v4:032x}"), "5acab9fce0424750ca8a25bb221904f0");
    assert_eq!(format!("{v6:032x}"), "50c663d7ec91a753498b58a0dc8e84bb");
}

/// With many servers (the lookup is a search over keyed-hash tags, not a
/// scan), every server is still found by its own value and only by it,
/// and two pickers of one service agree although their lookup keys differ.
#[test]
fn every_one_of_three_hundred_servers_is_found_by_its_value() {
    let servers: Vec<(u32, u64)> = (0..300).map(|_| (1, 0)).collect();
    let all: Vec<usize> = (0..300).collect();
    let s = TestService::with_servers(&servers).rule(".*", None, &all);
    let (a, b) = (ChttpPicker::new(&s).unwrap(), ChttpPicker::new(&s).unwrap());
    assert_eq!(a, b);
    for i in 0..300 {
        let value = value_of("web", i);
        assert_eq!(a.server_for(&value), Some(i));
        assert_eq!(b.server_for(&value), Some(i));
        let mut near = value.into_bytes();
        near[31] = if near[31] == b'0' { b'1' } else { b'0' };
        assert_eq!(a.server_for(std::str::from_utf8(&near).unwrap()), None);
    }
}

#[test]
fn every_server_is_found_by_its_value_and_no_near_miss_is() {
    let s = service();
    let p = ChttpPicker::new(&s).unwrap();
    for i in 0..3 {
        let value = value_of("web", i);
        assert_eq!(p.server_for(&value), Some(i));
        // Each single hex digit changed: no server.
        for at in 0..value.len() {
            let mut near = value.clone().into_bytes();
            near[at] = if near[at] == b'0' { b'1' } else { b'0' };
            let near = String::from_utf8(near).unwrap();
            assert_eq!(p.server_for(&near), None, "{near}");
        }
    }
    for bad in ["", "0", &"f".repeat(33), &"F".repeat(32), &"g".repeat(32)] {
        assert_eq!(p.server_for(bad), None, "{bad}");
    }
}

/// On a service clients reach over TLS the cookie is `Secure`: a browser
/// never sends it over plain HTTP, where it could be read on the way.
#[test]
fn the_cookie_is_secure_on_a_tls_service_only() {
    let plain = Chttp.build(&service()).unwrap();
    let tls = Chttp.build(&service().over_tls()).unwrap();
    let sel = Selection {
        server: 0,
        rule: Some(0),
        stamp: true,
    };
    let plain_line = plain.response_header(&sel, false).unwrap();
    let tls_line = tls.response_header(&sel, false).unwrap();
    assert!(plain_line.ends_with(b"; Path=/; HttpOnly; SameSite=Lax\r\n"));
    assert!(tls_line.ends_with(b"; Path=/; HttpOnly; SameSite=Lax; Secure\r\n"));
    assert_eq!(
        &tls_line[..tls_line.len() - 2],
        [&plain_line[..plain_line.len() - 2], b"; Secure"]
            .concat()
            .as_slice()
    );
}

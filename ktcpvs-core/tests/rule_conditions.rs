//! Rules that see the whole request: each condition on its own (host exact
//! and by pattern, port-insensitive; methods; a header's combined value; a
//! cookie; the query; the client's network; the normalised path against
//! `/%2e%2e/` and `//admin` bypasses), the edge actions and header edits
//! in the grammar, print → parse identity, and refusals that name the line.

mod support;

use std::net::SocketAddr;

use ktcpvs_core::condition::{CompiledConditions, Conditions, RuleAction};
use ktcpvs_core::config::{self, PrintOptions};
use ktcpvs_core::model::RuleConfig;
use ktcpvs_core::scheduler::{Header, PickRequest, RequestHead};
use ktcpvs_core::view::{first_rule_for, Rule};

fn head<'a>(
    method: &'a str,
    target: &'a str,
    host: Option<&'a str>,
    headers: &'a [Header<'a>],
) -> RequestHead<'a> {
    RequestHead {
        method,
        target,
        host,
        version: 1,
        headers,
    }
}

fn pick<'a>(client: &str, head: &'a RequestHead<'a>) -> PickRequest<'a> {
    PickRequest {
        client: client.parse::<SocketAddr>().unwrap(),
        head: Some(head),
        exclude: &[],
        server_name: None,
    }
}

fn rule(pattern: &str, conditions: Conditions) -> Rule {
    let config = RuleConfig {
        pattern: pattern.into(),
        match_group: None,
        servers: Vec::new(),
        conditions,
        action: RuleAction::Forward,
        edits: Vec::new(),
    };
    Rule::compile(&config, vec![0]).unwrap()
}

const NONE: &[Header<'static>] = &[];

#[test]
fn each_condition_decides_on_its_own() {
    let client = "192.0.2.7:4000";
    // host: exact (any case, any port) and by pattern.
    let exact = rule(
        ".*",
        Conditions {
            host: Some("=www.example.com".into()),
            ..Default::default()
        },
    );
    for (host, ok) in [
        (Some("www.example.com"), true),
        (Some("WWW.Example.COM:8080"), true),
        (Some("example.com"), false),
        (None, false),
    ] {
        let h = head("GET", "/", host, NONE);
        assert_eq!(exact.matches(&pick(client, &h)), ok, "{host:?}");
    }
    let re = rule(
        ".*",
        Conditions {
            host: Some(r"^api\.".into()),
            ..Default::default()
        },
    );
    let h = head("GET", "/", Some("API.example.com:443"), NONE);
    assert!(re.matches(&pick(client, &h)));
    let h = head("GET", "/", Some("[2001:db8::1]:80"), NONE);
    assert!(!re.matches(&pick(client, &h)));
    // method.
    let m = rule(
        ".*",
        Conditions {
            methods: vec!["GET".into(), "HEAD".into()],
            ..Default::default()
        },
    );
    assert!(m.matches(&pick(client, &head("HEAD", "/", None, NONE))));
    assert_eq!(
        m.explain(&pick(client, &head("POST", "/", None, NONE))),
        Err("method")
    );
    // header: the combined value of every field of the name.
    let hdr = rule(
        ".*",
        Conditions {
            headers: vec![("X-Tier".into(), "^gold, beta$".into())],
            ..Default::default()
        },
    );
    let two = [
        Header {
            name: "x-tier",
            value: b"gold",
        },
        Header {
            name: "X-Tier",
            value: b"beta",
        },
    ];
    assert!(hdr.matches(&pick(client, &head("GET", "/", None, &two))));
    assert_eq!(
        hdr.explain(&pick(client, &head("GET", "/", None, &two[..1]))),
        Err("header")
    );
    assert_eq!(
        hdr.explain(&pick(client, &head("GET", "/", None, NONE))),
        Err("header")
    );
    // cookie.
    let c = rule(
        ".*",
        Conditions {
            cookies: vec![("session".into(), "^[a-f0-9]{8}$".into())],
            ..Default::default()
        },
    );
    let with = [Header {
        name: "Cookie",
        value: b"a=1; session=deadbeef",
    }];
    let bad = [Header {
        name: "Cookie",
        value: b"session=nothex!!",
    }];
    assert!(c.matches(&pick(client, &head("GET", "/", None, &with))));
    assert_eq!(
        c.explain(&pick(client, &head("GET", "/", None, &bad))),
        Err("cookie")
    );
    // query.
    let q = rule(
        ".*",
        Conditions {
            query: Some("(^|&)debug=1(&|$)".into()),
            ..Default::default()
        },
    );
    assert!(q.matches(&pick(client, &head("GET", "/x?a=2&debug=1", None, NONE))));
    assert_eq!(
        q.explain(&pick(client, &head("GET", "/x?debug=10", None, NONE))),
        Err("query")
    );
    assert_eq!(
        q.explain(&pick(client, &head("GET", "/x", None, NONE))),
        Err("query")
    );
    // src, an IPv4 client over IPv6 too.
    let s = rule(
        ".*",
        Conditions {
            src: "192.0.2.0/24".parse().unwrap(),
            ..Default::default()
        },
    );
    let h = head("GET", "/", None, NONE);
    assert!(s.matches(&pick("192.0.2.99:1", &h)));
    assert!(s.matches(&pick("[::ffff:192.0.2.1]:1", &h)));
    assert_eq!(s.explain(&pick("198.51.100.1:1", &h)), Err("src"));
    // A layer-4 request (no head) fails conditions on the head only.
    let l4 = PickRequest {
        client: "192.0.2.1:1".parse().unwrap(),
        head: None,
        exclude: &[],
        server_name: None,
    };
    assert!(s.matches(&l4));
    assert_eq!(m.explain(&l4), Err("request head"));
}

#[test]
fn a_normalised_path_cannot_be_bypassed() {
    let admin = rule(
        "^/admin",
        Conditions {
            normalize: true,
            ..Default::default()
        },
    );
    let raw = rule("^/admin", Conditions::default());
    for target in [
        "/admin",
        "//admin",
        "/%2e%2e/admin",
        "/./admin/",
        "/x/../admin",
        "/%61dmin",
        "/%2E%2E/%2e/admin?x=1",
        "///admin",
    ] {
        let h = head("GET", target, None, NONE);
        assert!(admin.matches(&pick("192.0.2.1:1", &h)), "{target}");
    }
    // Without the option, the raw target decides (the bypasses miss).
    assert!(!raw.matches(&pick("192.0.2.1:1", &head("GET", "//admin", None, NONE))));
    // Escaped slashes and other reserved characters stay escaped.
    assert!(!admin.matches(&pick("192.0.2.1:1", &head("GET", "/%2fadmin", None, NONE))));
    assert!(!admin.matches(&pick(
        "192.0.2.1:1",
        &head("GET", "/public?next=/admin", None, NONE)
    )));
}

#[test]
fn the_first_rule_whose_conditions_hold_wins() {
    let rules = vec![
        rule(
            "^/api",
            Conditions {
                headers: vec![("X-Canary".into(), "^1$".into())],
                ..Default::default()
            },
        ),
        rule("^/api", Conditions::default()),
    ];
    let canary = [Header {
        name: "X-Canary",
        value: b"1",
    }];
    let h = head("GET", "/api/x", None, &canary);
    assert_eq!(
        first_rule_for(&rules, &pick("192.0.2.1:1", &h)).unwrap().0,
        0
    );
    let h = head("GET", "/api/x", None, NONE);
    assert_eq!(
        first_rule_for(&rules, &pick("192.0.2.1:1", &h)).unwrap().0,
        1
    );
}

const FULL: &str = r#"Virtual web {
    listen = 127.0.0.1:8080
    scheduler = http
    server = 10.0.0.1:80 1
    server = 10.0.0.2:80 1
    rule = pattern "^/admin" host "=admin.example.com" method GET,HEAD src 10.0.0.0/8 normalize use server 10.0.0.1:80 request_header set X-Admin "yes" response_header del Server
    rule = pattern "^/api" header X-Canary "^1$" cookie beta ".+" query "v=2" use server 10.0.0.2:80
    rule = pattern "^/old/(.*)" redirect 301 "https://{host}/new/$1"
    rule = pattern "^/robots.txt$" respond 200 "text/plain" "User-agent: *\nDisallow: /\n"
    rule = pattern ".*" host "=maintenance.example.com" respond 503 "text/html" "<h1>back soon</h1>"
    rule = pattern ".*" use server 10.0.0.1:80 response_header add X-Served-By "ktcpvs"
    rule = pattern ".*" use server 10.0.0.2:80 response_header add X-Served-By "ktcpvs"
}
"#;

#[test]
fn every_form_prints_back_to_itself() {
    let control = support::control();
    control.load_config(FULL, None).unwrap();
    let printed = control.list(None, &PrintOptions { numeric: true }).unwrap();
    let again = support::control();
    again.load_config(&printed, None).unwrap();
    assert_eq!(control.config(), again.config(), "{printed}");
    let def = &control.config().services[0];
    assert_eq!(def.rules.len(), 6, "{printed}");
    // The conditional catch-all is an ordinary rule, before the catch-all.
    assert!(def.rules[4].action != RuleAction::Forward);
    assert!(def.rules[5].is_catch_all());
    assert_eq!(def.rules[5].servers.len(), 2);
    assert!(
        printed.contains(r#"respond 200 "text/plain" "User-agent: *\nDisallow: /\n""#),
        "{printed}"
    );
    let _ = config::parse(&printed, None).unwrap();
}

#[test]
fn bad_rules_name_their_line_and_change_nothing() {
    let control = support::control();
    control.load_config(FULL, None).unwrap();
    let before = control.config();
    for (text, needle) in [
        (
            r#"rule = pattern "/a" header X-A "(" use server 10.0.0.1:80"#,
            "pattern compiling failed",
        ),
        (
            r#"rule = pattern "/a" method get use server 10.0.0.1:80"#,
            "method",
        ),
        (r#"rule = pattern "/a" redirect 200 "/b""#, "out of range"),
        (
            r#"rule = pattern "/a" redirect 305 "/b""#,
            "301, 302, 303, 307 or 308",
        ),
        (
            r#"rule = pattern "/a" respond 204 "text/plain" "x""#,
            "not 204 or 304",
        ),
        (
            r#"rule = pattern "/a" use server 10.0.0.1:80 request_header set Content-Length "1""#,
            "framing",
        ),
        (
            r#"rule = pattern "/a" use server 10.0.0.1:80 response_header set X-A "a\nb""#,
            "control characters",
        ),
        (
            r#"rule = pattern "/a" host "x" host "y" use server 10.0.0.1:80"#,
            "given twice",
        ),
        (
            r#"rule = pattern "/a" src 10.0.0.0/40 use server 10.0.0.1:80"#,
            "networks",
        ),
        (
            r#"rule = pattern "/a" bogus use server 10.0.0.1:80"#,
            "expected a condition",
        ),
    ] {
        let file = format!("Virtual web {{\n  server = 10.0.0.1:80\n  {text}\n}}\n");
        let e = control.load_config(&file, None).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{text}: {e}");
        assert!(e.contains(needle), "{text}: {e}");
        assert_eq!(control.config(), before);
    }
    // The same rule twice with other edits is refused; the same pattern
    // with other conditions is another rule.
    let twice = "Virtual web {\n  server = 10.0.0.1:80\n  server = 10.0.0.2:80\n  rule = pattern \"/a\" use server 10.0.0.1:80 request_header set X-A \"1\"\n  rule = pattern \"/a\" use server 10.0.0.2:80\n}\n";
    assert!(control
        .load_config(twice, None)
        .unwrap_err()
        .to_string()
        .contains("other header edits"));
    let other = twice.replace(
        "pattern \"/a\" use server 10.0.0.2:80",
        "pattern \"/a\" method GET use server 10.0.0.2:80",
    );
    control.load_config(&other, None).unwrap();
    assert_eq!(control.config().services[0].rules.len(), 2);
    assert!(CompiledConditions::new(&Conditions {
        methods: vec!["Get".into()],
        ..Default::default()
    })
    .is_err());
}

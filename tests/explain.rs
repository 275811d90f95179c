//! `tcpvsadm --explain` against a running `ktcpvsd`: the rule that matches,
//! the condition that failed in each earlier rule (a header condition
//! among them), edge answers with their expanded location, the candidates
//! with their live state and the pick, and nothing sent to any server.

mod common;

use common::{Daemon, TempDir};
use ktcpvs::demo::NamedHttpServer;

#[test]
fn explain_names_the_rule_the_failed_conditions_and_the_pick() {
    let r1 = NamedHttpServer::start("r1", "127.0.0.1:0".parse().unwrap()).unwrap();
    let r2 = NamedHttpServer::start("r2", "127.0.0.1:0".parse().unwrap()).unwrap();
    let (a, b) = (r1.local_addr(), r2.local_addr());
    let dir = TempDir::new("explain");
    let file = dir.join("explain.conf");
    std::fs::write(
        &file,
        format!(
            r#"Virtual web {{
    listen = 127.0.0.1:0
    scheduler = http
    server = {a} 1
    server = {b} 0
    rule = pattern "^/api" header X-Canary "^1$" use server {b}
    rule = pattern "^/old/(.*)" redirect 301 "https://{{host}}/new/$1"
    rule = pattern "^/api" use server {a}
    rule = pattern "^/api" use server {b}
    rule = pattern ".*" use server {a}
}}
"#
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&["-f", file.to_str().unwrap()]);
    let out = daemon.adm_ok(&["--explain", "GET /api/users", "-H", "X-Canary: 0"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("service web (scheduler http): GET /api/users from 127.0.0.1"),
        "{out}"
    );
    assert!(
        lines[1].starts_with(r#"rule 1 "^/api" header X-Canary "^1$": no (header does not match)"#),
        "{out}"
    );
    assert!(
        lines[2].starts_with(r#"rule 2 "^/old/(.*)": no (pattern does not match)"#),
        "{out}"
    );
    assert_eq!(lines[3], r#"rule 3 "^/api": matches"#, "{out}");
    assert!(
        out.contains(&format!(
            "  {a} weight=1 effective=1 active=0 healthy=yes: picked"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  {b} weight=0 effective=0 active=0 healthy=yes: not picked: quiesced (weight 0)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("picked: {a} (nothing was sent to it)")),
        "{out}"
    );
    // With the header, the first rule matches and its server is quiesced.
    let out = daemon.adm_ok(&[
        "--explain",
        "GET /api/users",
        "-H",
        "X-Canary: 1",
        "-i",
        "web",
    ]);
    assert!(
        out.contains(r#"rule 1 "^/api" header X-Canary "^1$": matches"#),
        "{out}"
    );
    assert!(
        out.contains("picked: none (no candidate can take it now)"),
        "{out}"
    );
    // An edge answer, its location expanded.
    let out = daemon.adm_ok(&["--explain", "GET /old/a/b", "-H", "Host: shop.test"]);
    assert!(
        out.contains("answered at the edge: 301 redirect to https://shop.test/new/a/b"),
        "{out}"
    );
    assert_eq!(r1.requests() + r2.requests(), 0, "explain sent a request");
    // A malformed request is a usage error; an unknown service is refused.
    assert_eq!(daemon.adm(&["--explain", "GET"]).status.code(), Some(2));
    assert_eq!(
        daemon
            .adm(&["--explain", "GET /", "-i", "nope"])
            .status
            .code(),
        Some(1)
    );
}

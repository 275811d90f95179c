//! Rules with conditions and actions changed live with `tcpvsadm --add-rule
//! --rule '…'` / `--del-rule --rule '…'` on a running `ktcpvsd`: applied at
//! once, listed in the file form, refused with the parser's message when
//! malformed, and removed again; the original's `-p`/`-r` form beside them.

mod common;

use std::net::SocketAddr;

use common::{get_status, Daemon};
use ktcpvs::demo::NamedHttpServer;

#[test]
fn conditional_rules_and_edge_actions_change_live() {
    let r1 = NamedHttpServer::start("r1", "127.0.0.1:0".parse().unwrap()).unwrap();
    let daemon = Daemon::start(&[]);
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = r1.local_addr().to_string();
    daemon.adm_ok(&["-A", "-i", "web", "-s", "http", "-l", &listen]);
    daemon.adm_ok(&["-a", "-i", "web", "-r", &server]);
    daemon.adm_ok(&["--add-rule", "-i", "web", "-p", ".*", "-r", &server]);
    daemon.adm_ok(&["--start", "-i", "web"]);
    let addr: SocketAddr = listen.parse().unwrap();
    assert!(common::eventually(200, || get_status(addr, "/old/x").0 == 200));

    let redirect = r#"pattern "^/old/(.*)" redirect 308 "/new/$1""#;
    daemon.adm_ok(&["--add-rule", "-i", "web", "--rule", redirect]);
    let deny = r#"pattern "^/admin" normalize method GET respond 403 "text/plain" "no""#;
    daemon.adm_ok(&["--add-rule", "-i", "web", "--rule", deny]);
    assert_eq!(get_status(addr, "/old/x").0, 308);
    assert_eq!(get_status(addr, "//admin"), (403, "no".to_string()));
    let listing = daemon.adm_ok(&["-L", "-n"]);
    assert!(listing.contains(&format!("rule = {redirect}")), "{listing}");
    assert!(
        listing.contains(r#"rule = pattern "^/admin" method GET normalize respond 403"#),
        "{listing}"
    );

    // A malformed statement is refused with the parser's words, and
    // changes nothing.
    let out = daemon.adm(&[
        "--add-rule",
        "-i",
        "web",
        "--rule",
        r#"pattern "^/x" hots "a" use server 10.0.0.1:80"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected a condition"),
        "{out:?}"
    );
    assert_eq!(daemon.adm_ok(&["-L", "-n"]), listing);

    daemon.adm_ok(&["--del-rule", "-i", "web", "--rule", redirect]);
    assert_eq!(get_status(addr, "/old/x").0, 200);
    assert!(!daemon.adm_ok(&["-L", "-n"]).contains("redirect"));
}

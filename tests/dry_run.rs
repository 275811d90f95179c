//! `tcpvsadm -f FILE --dry-run` against a real `ktcpvsd`: it prints what
//! loading the file would change, in tcpvsadm's form, and applies nothing
//! (the configuration hash is the same before and after); a file that
//! would not load gets the daemon's refusal naming its line; with several
//! `--socket`, one diff per node. Pasting the printed lines into a shell
//! makes the same configuration the load makes.

mod common;

use std::process::{Command, Stdio};

use common::{example, hash_line, output_text, Daemon, TempDir};

const BEFORE: &str = "Virtual web {
    listen = 127.0.0.1:0
    scheduler = http
    server = 127.0.0.1:8081 1
    server = 127.0.0.1:8082 2
    rule = pattern \"/img/.*\" use server 127.0.0.1:8081
    rule = pattern \"/api/\" use server 127.0.0.1:8082
    rule = pattern \".*\" use server 127.0.0.1:8082
}

Virtual old {
    listen = 127.0.0.1:0
    scheduler = wlc
    server = 127.0.0.1:8083 1
}
";

/// A weight changed, a server and a rule added, the rules reordered, a
/// setting tcpvsadm has no flag for, a health key, a service renamed.
const AFTER: &str = "Virtual web {
    listen = 127.0.0.1:0
    scheduler = http
    maxclients = 100
    check = tcp
    server = 127.0.0.1:8081 1
    server = 127.0.0.1:8082 5
    server = 127.0.0.1:8084 1 maxconn 10
    rule = pattern \"/api/\" use server 127.0.0.1:8082
    rule = pattern \"/img/.*\" use server 127.0.0.1:8081
    rule = pattern \"/img/.*\" use server 127.0.0.1:8084
    rule = pattern \".*\" use server 127.0.0.1:8082
}

Virtual new {
    listen = 127.0.0.1:0
    scheduler = wlc
    server = 127.0.0.1:8083 1
}
";

#[test]
fn dry_run_prints_the_difference_and_applies_nothing() {
    let node = Daemon::start(&[]);
    let dir = TempDir::new("dry-run");
    let before = dir.join("before.conf");
    let after = dir.join("after.conf");
    std::fs::write(&before, BEFORE).unwrap();
    std::fs::write(&after, AFTER).unwrap();
    node.adm_ok(&["-f", before.to_str().unwrap()]);
    node.adm_ok(&["--start", "-i", "web"]);

    // The same file: no change.
    let out = node.adm_ok(&["-f", before.to_str().unwrap(), "--dry-run"]);
    assert_eq!(out, "# no change\n");

    let hash_before = hash_line(&node);
    let out = node.adm_ok(&["-f", after.to_str().unwrap(), "--dry-run"]);
    assert_eq!(
        hash_line(&node),
        hash_before,
        "a dry run changed the configuration"
    );
    let expected = [
        "tcpvsadm -D -i old",
        "tcpvsadm --del-rule -i web '--rule=pattern \"/img/.*\" use server 127.0.0.1:8081'",
        "edit-service web maxclients=100 health.check=tcp",
        "tcpvsadm -e -i web -r 127.0.0.1:8082 -w 5",
        "tcpvsadm -a -i web -r 127.0.0.1:8084",
        "tcpvsadm --server-limit -i web -r 127.0.0.1:8084 -x 10",
        "tcpvsadm --add-rule -i web -r 127.0.0.1:8081 -p '/img/.*'",
        "tcpvsadm --add-rule -i web -r 127.0.0.1:8084 -p '/img/.*'",
        "tcpvsadm -A -i new -l 127.0.0.1:0 -s wlc",
        "tcpvsadm -a -i new -r 127.0.0.1:8083",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");

    // Pasted into a shell, with the request line sent over the socket,
    // the lines make what the load makes.
    let script: String = out
        .lines()
        .map(|l| match l.strip_prefix("tcpvsadm ") {
            Some(args) => format!("\"$TCPVSADM\" --socket \"$SOCK\" {args} || exit 1\n"),
            None => String::new(),
        })
        .collect();
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("TCPVSADM", example("tcpvsadm"))
        .env("SOCK", &node.socket)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
    let mut client = ktcpvs::control_socket::ControlClient::connect(&node.socket).unwrap();
    let line = "edit-service web maxclients=100 health.check=tcp";
    let request = ktcpvs::control_socket::Request::parse(line).unwrap();
    assert_eq!(
        client.request(&request).unwrap(),
        ktcpvs::control_socket::Reply::Ok(Vec::new())
    );
    let out = node.adm_ok(&["-f", after.to_str().unwrap(), "--dry-run"]);
    assert_eq!(out, "# no change\n");
    // The load itself changes nothing more: the same hash.
    let made = hash_line(&node);
    node.adm_ok(&["-f", after.to_str().unwrap()]);
    assert_eq!(hash_line(&node), made);
}

#[test]
fn a_file_that_would_not_load_is_refused_naming_its_line() {
    let (a, b) = (Daemon::start(&[]), Daemon::start(&[]));
    let dir = TempDir::new("dry-run-bad");
    let file = dir.join("bad.conf");
    std::fs::write(&file, "Virtual web {\n  scheduler = http\n  bogus = 1\n}\n").unwrap();
    let before = hash_line(&a);
    let out = a.adm(&["-f", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.conf:3"),
        "{}",
        output_text(&out)
    );
    assert!(out.stdout.is_empty(), "{}", output_text(&out));
    assert_eq!(hash_line(&a), before);

    // Several nodes: one diff per node; a node that would refuse the file
    // fails the run.
    std::fs::write(
        &file,
        "Virtual web {\n  listen = 127.0.0.1:0\n  scheduler = wlc\n  server = 127.0.0.1:8081 1\n}\n",
    )
    .unwrap();
    a.adm_ok(&["-f", file.to_str().unwrap()]);
    let (ha, hb) = (hash_line(&a), hash_line(&b));
    let out = Command::new(example("tcpvsadm"))
        .args(["--socket", a.socket.to_str().unwrap()])
        .args(["--socket", b.socket.to_str().unwrap()])
        .args(["-f", file.to_str().unwrap(), "--dry-run"])
        .env_remove("KTCPVS_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let expected = format!(
        "# node {}\n# no change\n# node {}\ntcpvsadm -A -i web -l 127.0.0.1:0 -s wlc\ntcpvsadm -a -i web -r 127.0.0.1:8081\n",
        a.socket.display(),
        b.socket.display()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert_eq!((hash_line(&a), hash_line(&b)), (ha, hb));
}

//! One change to several daemons, as one: `tcpvsadm` with several
//! `--socket` checks the change on every node (`check`), applies it only
//! when all accept it, and reports per node; and the remote control
//! listener (`ktcpvsd --control-listen` with a token), which a fleet
//! command reaches as `--socket tcp://HOST:PORT`. Real daemons, real
//! `tcpvsadm`, loopback only.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{example, free_port, hash_line, output_text, Daemon, TempDir};

const TOKEN: &str = "fleet-token-0123456789abcdef";

/// Runs `tcpvsadm` with `args` (its own `--socket`s among them).
fn tcpvsadm(args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = Command::new(example("tcpvsadm"));
    cmd.args(args)
        .env_remove("KTCPVS_SOCKET")
        .env_remove("KTCPVS_TOKEN")
        .stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("KTCPVS_TOKEN", t);
    }
    cmd.output().expect("run tcpvsadm")
}

fn sockets<'a>(nodes: &[&'a Daemon]) -> Vec<&'a str> {
    nodes
        .iter()
        .flat_map(|n| ["--socket", n.socket.to_str().unwrap()])
        .collect()
}

#[test]
fn a_change_applies_to_every_node_or_to_none() {
    let (a, b) = (Daemon::start(&[]), Daemon::start(&[]));
    let both = sockets(&[&a, &b]);
    let run = |extra: &[&str]| {
        let mut args = both.clone();
        args.extend_from_slice(extra);
        tcpvsadm(&args, None)
    };
    let out = run(&["-A", "-i", "web", "-s", "wlc", "-l", "127.0.0.1:0"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for n in [&a, &b] {
        let s = n.socket.display();
        assert!(stdout.contains(&format!("node {s}: check ok")), "{stdout}");
        assert!(stdout.contains(&format!("node {s}: applied")), "{stdout}");
    }
    assert_eq!(hash_line(&a), hash_line(&b));

    // A service only node a has: node b refuses the check, and node a
    // applies nothing either.
    a.adm_ok(&["-A", "-i", "only-a", "-s", "wlc"]);
    let before = (hash_line(&a), hash_line(&b));
    let out = run(&["-a", "-i", "only-a", "-r", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("node {}: check refused", b.socket.display())),
        "{stdout}"
    );
    assert!(!stdout.contains("applied"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was applied"));
    assert_eq!((hash_line(&a), hash_line(&b)), before);

    // A configuration file: checked on both, then loaded on both.
    let dir = TempDir::new("fleet");
    let file = dir.join("fleet.conf");
    std::fs::write(
        &file,
        "Virtual api {\n  scheduler = rr\n  listen = 127.0.0.1:0\n  server = 127.0.0.1:8081 2\n}\n",
    )
    .unwrap();
    let out = run(&["-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(hash_line(&a), hash_line(&b));
    assert!(a
        .adm_ok(&["-L", "-n"])
        .contains("server = 127.0.0.1:8081 2"));
    // A broken file changes no node, and says where it is wrong.
    std::fs::write(&file, "Virtual api {\n  scheduler = rr\n  bogus = 1\n}\n").unwrap();
    let before = (hash_line(&a), hash_line(&b));
    let out = run(&["-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fleet.conf:3"),
        "{}",
        output_text(&out)
    );
    assert_eq!((hash_line(&a), hash_line(&b)), before);
    // A request that is neither a change nor a listing stays one node's.
    let out = run(&["--sysctl", "debug_level"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
}

/// A token file only its owner may read.
fn token_file(dir: &TempDir, mode: u32) -> std::path::PathBuf {
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    file
}

fn remote_daemon(dir: &TempDir) -> (Daemon, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let file = token_file(dir, 0o600);
    let daemon = Daemon::start(&[
        "--control-listen",
        &addr.to_string(),
        "--control-token-file",
        file.to_str().unwrap(),
    ]);
    assert!(common::eventually(200, || TcpStream::connect(addr).is_ok()));
    (daemon, addr)
}

/// What the remote listener answers a client that sends `first` first.
fn raw_answer(addr: SocketAddr, first: &str) -> Vec<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{first}\nlist\n").as_bytes()).unwrap();
    BufReader::new(s).lines().map_while(Result::ok).collect()
}

#[test]
fn the_remote_control_listener_wants_its_token() {
    let dir = TempDir::new("remote");
    let (node, addr) = remote_daemon(&dir);
    let target = format!("tcp://{addr}");
    // Listing and changing over TCP with the token (from the environment
    // or from a file).
    let out = tcpvsadm(
        &["--socket", &target, "-A", "-i", "web", "-s", "wlc"],
        Some(TOKEN),
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let file = token_file(&dir, 0o600);
    let out = tcpvsadm(
        &[
            "--socket",
            &target,
            "--token-file",
            file.to_str().unwrap(),
            "-L",
        ],
        None,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Virtual web {"));
    assert!(node.adm_ok(&["-L"]).contains("Virtual web {"));
    // Without it, or with another, nothing is read or changed.
    let out = tcpvsadm(&["--socket", &target, "-L"], None);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    let out = tcpvsadm(
        &["--socket", &target, "-D", "-i", "web"],
        Some("another-token-0123456789"),
    );
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission"),
        "{}",
        output_text(&out)
    );
    assert!(node.adm_ok(&["-L"]).contains("Virtual web {"));
    // A raw client: a request before `auth`, a prefix of the token, and the
    // token with a byte more all get `ERR permission` and the close; the
    // `list` after them is never answered.
    for first in [
        "list".to_string(),
        format!("auth {}", &TOKEN[..TOKEN.len() - 1]),
        format!("auth {TOKEN}x"),
    ] {
        let lines = raw_answer(addr, &first);
        assert_eq!(lines.len(), 2, "{first}: {lines:?}");
        assert!(lines[1].starts_with("ERR permission"), "{first}: {lines:?}");
    }
    let lines = raw_answer(addr, &format!("auth {TOKEN}"));
    assert_eq!(lines[1], "OK", "{lines:?}");
    assert!(lines.iter().any(|l| l == "Virtual web {"), "{lines:?}");
    // handover passes descriptors: not over TCP.
    let lines = raw_answer(addr, &format!("auth {TOKEN}\nhandover"));
    assert!(
        lines.iter().any(|l| l.starts_with("ERR unavailable")),
        "{lines:?}"
    );

    // A fleet of a socket file and a remote listener.
    let local = Daemon::start(&[]);
    let socket = local.socket.to_str().unwrap();
    let out = tcpvsadm(
        &[
            "--socket", socket, "--socket", &target, "-A", "-i", "api", "-s", "rr",
        ],
        Some(TOKEN),
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(local.adm_ok(&["-L"]).contains("Virtual api {"));
    assert!(node.adm_ok(&["-L"]).contains("Virtual api {"));
}

#[test]
fn a_token_file_others_may_read_is_refused() {
    let dir = TempDir::new("remote-mode");
    let file = token_file(&dir, 0o644);
    let out = Command::new(example("ktcpvsd"))
        .args(["--socket", dir.join("ctl.sock").to_str().unwrap()])
        .args(["--control-listen", "127.0.0.1:0"])
        .args(["--control-token-file", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("may be read by others"), "{stderr}");
    assert!(!Path::new(&dir.join("ctl.sock")).exists());
}

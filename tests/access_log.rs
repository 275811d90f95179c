//! The access log end to end, with the real binaries: `ktcpvsd
//! --access-log FILE` in front of three real HTTP servers, driven by a
//! real client. One line per request with the right fields, in the common
//! format and, switched live with `tcpvsadm --sysctl access_log=2`, in
//! JSON; the proxy's own answers logged as such; the file reopened on
//! SIGUSR1 after a rotation.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

fn get(addr: SocketAddr, target: &str) -> u16 {
    get_status(addr, target).0
}

/// The file's lines once it holds at least `n`.
fn lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    assert!(
        eventually(200, || {
            got = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            got.len() >= n
        }),
        "{} lines of {n}: {got:?}",
        got.len()
    );
    got
}

#[test]
fn one_line_per_request_in_both_formats_and_reopened_on_sigusr1() {
    let servers = three_servers();
    let tmp = TempDir::new("access-log");
    let path = tmp.join("access.log");
    let mut args = vec!["--access-log".to_string(), path.display().to_string()];
    args.extend(alias_args(&servers));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let daemon = Daemon::start(&args);
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    daemon.adm_ok(&["-A", "-i", "web", "-s", "phttp", "-l", &listen.to_string()]);
    for r in ["r1:80", "r2:80"] {
        daemon.adm_ok(&["-a", "-i", "web", "-r", r]);
    }
    daemon.adm_ok(&[
        "--add-rule",
        "-i",
        "web",
        "--pattern=/images/.*",
        "-r",
        "r1:80",
    ]);
    daemon.adm_ok(&[
        "--add-rule",
        "-i",
        "web",
        "--pattern=/html/.*",
        "-r",
        "r2:80",
    ]);
    daemon.adm_ok(&["--start", "-i", "web"]);
    assert!(eventually(200, || TcpStream::connect(listen).is_ok()));

    assert_eq!(get(listen, "/images/a.png?x=1"), 200);
    assert_eq!(get(listen, "/nothing"), 503);
    let got = lines(&path, 2);
    let r1 = servers[0].local_addr();
    let first = &got[0];
    assert!(
        first.starts_with("127.0.0.1 - - [")
            && first.contains("] \"GET /images/a.png?x=1 HTTP/1.1\" 200 "),
        "{first}"
    );
    for want in [
        "service=web".to_string(),
        "rule=0".to_string(),
        format!("server={r1}"),
        "end=done".to_string(),
        "retries=0".to_string(),
    ] {
        assert!(first.contains(&want), "{want}: {first}");
    }
    assert!(
        got[1].contains("\"GET /nothing HTTP/1.1\" 503 ") && got[1].contains("end=proxy"),
        "{}",
        got[1]
    );

    // JSON, switched live.
    daemon.adm_ok(&["--sysctl", "access_log=2"]);
    assert_eq!(get(listen, "/html/index.html"), 200);
    let got = lines(&path, 3);
    let json: serde_json::Value = serde_json::from_str(&got[2]).expect("one JSON object");
    assert_eq!(json["method"], "GET");
    assert_eq!(json["target"], "/html/index.html");
    assert_eq!(json["status"], 200);
    assert_eq!(json["service"], "web");
    assert_eq!(json["rule"], 1);
    assert_eq!(json["server"], servers[1].local_addr().to_string());
    assert!(json["total_ms"].as_f64().unwrap() >= json["first_byte_ms"].as_f64().unwrap());
    assert!(json["bytes_out"].as_u64().unwrap() > 0);

    // Rotation: the file is moved away, SIGUSR1 opens a new one.
    let rotated = tmp.join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.pid() as i32, libc::SIGUSR1) };
    assert!(eventually(200, || {
        get(listen, "/images/b.png");
        std::fs::metadata(&path).is_ok_and(|m| m.len() > 0)
    }));
    let fresh = lines(&path, 1);
    assert!(fresh[0].contains("/images/b.png"), "{fresh:?}");
    daemon.adm_ok(&["--sysctl", "access_log=2"]);
    assert_eq!(lines(&rotated, 3).len(), 3, "the old file keeps its lines");

    // A layer-4 connection gets one line when it closes.
    let l4: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    daemon.adm_ok(&["-A", "-i", "raw", "-s", "wlc", "-l", &l4.to_string()]);
    daemon.adm_ok(&["-a", "-i", "raw", "-r", "r3:80"]);
    daemon.adm_ok(&["--start", "-i", "raw"]);
    assert!(eventually(200, || TcpStream::connect(l4).is_ok()));
    assert_eq!(get(l4, "/raw"), 200);
    // (The readiness probe above made a line of its own, with no bytes.)
    let mut raw = serde_json::Value::Null;
    assert!(
        eventually(200, || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            match text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|j| j["service"] == "raw" && j["bytes_in"].as_u64() > Some(0))
            {
                Some(j) => {
                    raw = j;
                    true
                }
                None => false,
            }
        }),
        "no line of the raw connection"
    );
    assert_eq!(raw["end"], "closed");
    assert_eq!(raw["server"], servers[2].local_addr().to_string());
    assert_eq!(raw["status"], 0);

    // Off: nothing more is written.
    daemon.adm_ok(&["--sysctl", "access_log=0"]);
    let before = std::fs::read_to_string(&path).unwrap().lines().count();
    assert_eq!(get(listen, "/images/c.png"), 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        before
    );
}

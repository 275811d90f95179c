//! The two-tier deployment on loopback, with real parts: HAProxy in
//! `mode tcp` (started by the test) in front of three `ktcpvsd` nodes,
//! sending each connection's client in a PROXY protocol v2 header and
//! checking each node's `/healthz`; three HTTP servers behind the nodes.
//!
//! The client connects from 127.0.0.2 (HAProxy reaches the nodes from
//! 127.0.0.1), so the address the servers see in `X-Forwarded-For` can only
//! have come through the PROXY protocol. Requests spread over the nodes; a
//! `chttp` cookie issued by one node is honoured by the others (a shared
//! `cookie_key`); one node drained under wrk load costs the client no
//! request. Skipped, saying so, where HAProxy or wrk is missing (`.ci/run`
//! installs both).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, free_port, wait_bounded, Daemon, TempDir};

/// An HTTP/1.1 server that answers every request with its name and the
/// `X-Forwarded-For` it received, and records that value.
struct XffServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl XffServer {
    fn start(name: &'static str) -> XffServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let seen = Arc::clone(&s2);
                std::thread::spawn(move || serve(stream, name, &seen));
            }
        });
        XffServer { addr, seen, stop }
    }
}

impl Drop for XffServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, name: &str, seen: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    loop {
        let mut xff = String::new();
        let mut close = false;
        let mut first = true;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() && !first {
                break;
            }
            first = false;
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("x-forwarded-for:") {
                xff = v.trim().to_string();
            }
            if lower == "connection: close" {
                close = true;
            }
        }
        seen.lock().unwrap().push(xff.clone());
        let body = format!("{name} xff={xff}\n");
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
            body.len()
        );
        if w.write_all(head.as_bytes()).is_err() || w.write_all(body.as_bytes()).is_err() {
            return;
        }
        if close {
            return;
        }
    }
}

/// HAProxy, stopped on drop.
struct Haproxy {
    child: Child,
    _dir: TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// One node: `ktcpvsd` with its service on `listen` (PROXY protocol from
/// loopback only) and its admin listener on `admin`.
fn node(listen: u16, admin: u16, servers: &[XffServer]) -> (Daemon, TempDir) {
    let dir = TempDir::new("node");
    let mut config = format!(
        "admin = 127.0.0.1:{admin}\n\
         Virtual web {{\n\
             listen = 127.0.0.1:{listen}\n\
             scheduler = chttp\n\
             forwardfor = on\n\
             proxy_protocol = 127.0.0.1\n\
             option cookie_key = \"one secret for the whole fleet\"\n"
    );
    for s in servers {
        config.push_str(&format!("    server = {} 1\n", s.addr));
    }
    for s in servers {
        config.push_str(&format!(
            "    rule = pattern \".*\" use server {}\n",
            s.addr
        ));
    }
    config.push_str("}\n");
    let file = dir.join("node.conf");
    std::fs::write(&file, config).unwrap();
    let daemon = Daemon::start(&["-f", file.to_str().unwrap()]);
    daemon.adm_ok(&["--start"]);
    (daemon, dir)
}

fn haproxy(front: u16, nodes: &[(u16, u16)]) -> Haproxy {
    let dir = TempDir::new("haproxy");
    let mut cfg = format!(
        "global\n  maxconn 4096\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  retries 3\n  option redispatch\n\
         frontend fe\n  bind 127.0.0.1:{front}\n  default_backend nodes\n\
         backend nodes\n  balance roundrobin\n  option httpchk GET /healthz\n  http-check expect status 200\n  default-server inter 100ms fall 1 rise 2\n"
    );
    for (i, (listen, admin)) in nodes.iter().enumerate() {
        cfg.push_str(&format!(
            "  server n{i} 127.0.0.1:{listen} send-proxy-v2 check port {admin}\n"
        ));
    }
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, cfg).unwrap();
    let child = Command::new("haproxy")
        .arg("-f")
        .arg(&file)
        .arg("-db")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    Haproxy { child, _dir: dir }
}

/// One GET through `addr` from 127.0.0.2, with `cookie` if any: the body
/// and the `Set-Cookie` value.
fn get_from_2(addr: SocketAddr, cookie: Option<&str>) -> (String, Option<String>) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())
        .unwrap();
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: t\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let set_cookie = text
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .map(|v| v.split(';').next().unwrap_or("").to_string());
    let body = text.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    (body, set_cookie)
}

/// Requests each node served, from its statistics.
fn served(node: &Daemon) -> u64 {
    let stats = node.adm_ok(&["-L", "--stats"]);
    stats
        .split_whitespace()
        .find_map(|w| w.strip_prefix("requests="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn haproxy_in_front_of_three_nodes() {
    if !have("haproxy") || !have("wrk") {
        eprintln!("skipped: haproxy or wrk is not installed (.ci/run installs them)");
        return;
    }
    let servers: Vec<XffServer> = ["s1", "s2", "s3"]
        .into_iter()
        .map(XffServer::start)
        .collect();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let (mut nodes, _dirs): (Vec<Daemon>, Vec<TempDir>) =
        ports.iter().map(|&(l, a)| node(l, a, &servers)).unzip();
    let front = free_port();
    let _haproxy = haproxy(front, &ports);
    let front: SocketAddr = ([127, 0, 0, 1], front).into();
    assert!(
        eventually(200, || TcpStream::connect(front).is_ok()),
        "haproxy did not start"
    );
    // Until every node's check passed, HAProxy may not use it.
    std::thread::sleep(Duration::from_millis(600));

    // The servers see the real client through both tiers.
    let (body, cookie) = get_from_2(front, None);
    assert!(body.ends_with("xff=127.0.0.2\n"), "{body}");
    let cookie = cookie.expect("chttp stamps a cookie");
    let pinned = body.split_whitespace().next().unwrap().to_string();
    // Round robin spreads fresh connections over the nodes; each honours
    // the cookie another issued.
    for _ in 0..9 {
        let (body, _) = get_from_2(front, Some(&cookie));
        assert!(body.starts_with(&pinned), "{body} is not from {pinned}");
        assert!(body.ends_with("xff=127.0.0.2\n"), "{body}");
    }
    let counts: Vec<u64> = nodes.iter().map(served).collect();
    assert!(
        counts.iter().all(|&c| c >= 3),
        "requests per node {counts:?}"
    );
    for s in &servers {
        assert!(s.seen.lock().unwrap().iter().all(|x| x == "127.0.0.2"));
    }

    // Drain node 0 under load: wrk sees no failed request.
    let wrk = Command::new("wrk")
        .args(["-t2", "-c16", "-d5s", "--timeout", "5s"])
        .arg(format!("http://{front}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wrk");
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    nodes[0].adm_ok(&["--drain", "1"]);
    let status = wait_bounded(nodes[0].child_mut(), Duration::from_secs(15)).expect("node 0 exits");
    assert!(status.success(), "{status:?}");
    let drained_in = started.elapsed();
    let out = wrk.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    let requests: u64 = report
        .lines()
        .find_map(|l| l.trim().split_once(" requests in"))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(requests > 1000, "{report}");
    eprintln!("wrk: {requests} requests, 0 errors; node 0 drained and exited in {drained_in:?}");
    // The other nodes took the rest.
    let after: Vec<u64> = nodes[1..].iter().map(served).collect();
    assert!(after.iter().all(|&c| c > 100), "{after:?}");
}

//! Backends from DNS with a real resolver on loopback: dnsmasq (started by
//! the test, `--local-ttl=1`) serves A records from a hosts file and an
//! SRV record; `ktcpvsd --resolver` follows them. Changing the records
//! (the file rewritten, dnsmasq sent SIGHUP) changes the servers within the
//! TTL, under a steady stream of requests none of which fails, and a server
//! that stays keeps its counters. Skipped, saying so, without dnsmasq
//! (`.ci/run` installs it).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, get_status, Daemon, TempDir};
use ktcpvs::demo::NamedHttpServer;

/// dnsmasq, stopped on drop.
struct Dnsmasq {
    child: Child,
}

impl Dnsmasq {
    fn start(port: u16, hosts: &std::path::Path, srv: &str) -> Dnsmasq {
        let child = Command::new("dnsmasq")
            .arg("--keep-in-foreground")
            .arg(format!("--port={port}"))
            .args(["--listen-address=127.0.0.1", "--bind-interfaces"])
            .args(["--no-resolv", "--no-hosts", "--local-ttl=1", "--user=root"])
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--srv-host={srv}"))
            .arg("--pid-file=")
            .arg("--log-facility=-")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        Dnsmasq { child }
    }

    /// Makes dnsmasq read its hosts file again.
    fn reload(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on a child this test spawned.
        unsafe {
            libc::kill(pid, libc::SIGHUP);
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two HTTP servers, named a and b, on 127.0.0.11 and 127.0.0.12 at one
/// port (what an A record with a fixed port can name).
fn two_servers() -> (NamedHttpServer, NamedHttpServer, u16) {
    for _ in 0..50 {
        let port = TcpListener::bind("127.0.0.11:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let a = NamedHttpServer::start("a", SocketAddr::from(([127, 0, 0, 11], port)));
        let b = NamedHttpServer::start("b", SocketAddr::from(([127, 0, 0, 12], port)));
        if let (Ok(a), Ok(b)) = (a, b) {
            return (a, b, port);
        }
    }
    panic!("no port free on both addresses");
}

/// Which servers answered, and how many requests failed, while it runs.
struct Load {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    recent: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicU64::new(0));
        let recent = Arc::new(Mutex::new(Vec::new()));
        let (s, f, r) = (Arc::clone(&stop), Arc::clone(&failed), Arc::clone(&recent));
        let thread = std::thread::spawn(move || {
            let mut done = 0;
            while !s.load(Ordering::SeqCst) {
                let (status, body) = get_status(addr, "/");
                if status == 200 {
                    let name = body.split_whitespace().next().unwrap_or("").to_string();
                    let mut recent = r.lock().unwrap();
                    recent.push(name);
                    let n = recent.len();
                    if n > 20 {
                        recent.drain(..n - 20);
                    }
                } else {
                    f.fetch_add(1, Ordering::SeqCst);
                }
                done += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            done
        });
        Load {
            stop,
            failed,
            recent,
            thread: Some(thread),
        }
    }

    /// Waits (at most `limit`) until the last 20 answers came from exactly
    /// the servers `names`; returns how long that took.
    fn until_served_by(&self, names: &[&str], limit: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            {
                let recent = self.recent.lock().unwrap();
                let all_known = recent.iter().all(|n| names.contains(&n.as_str()));
                let each_seen = names.iter().all(|n| recent.iter().any(|r| r == n));
                if recent.len() == 20 && all_known && each_seen {
                    return start.elapsed();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "not served by {names:?} within {limit:?}: {:?}",
            self.recent.lock().unwrap()
        );
    }

    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let done = self.thread.take().unwrap().join().unwrap();
        (done, self.failed.load(Ordering::SeqCst))
    }
}

/// The proxy's request count for one server, from `tcpvsadm -L --stats`.
fn server_requests(node: &Daemon, server: SocketAddr) -> u64 {
    let stats = node.adm_ok(&["-L", "--stats", "-n"]);
    stats
        .lines()
        .find(|l| l.starts_with("# server web ") && l.contains(&format!(" {server} ")))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("requests="))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn servers_follow_their_dns_records_without_a_failed_request() {
    if Command::new("dnsmasq").arg("--version").output().is_err() {
        eprintln!("skipped: dnsmasq is not installed (.ci/run installs dnsmasq-base)");
        return;
    }
    let (a, b, port) = two_servers();
    let dir = TempDir::new("dns");
    let hosts = dir.join("hosts");
    let write_hosts = |lines: &str| {
        let tmp = dir.join("hosts.new");
        std::fs::write(&tmp, format!("127.0.0.12 target.test\n{lines}")).unwrap();
        std::fs::rename(&tmp, &hosts).unwrap();
    };
    write_hosts("127.0.0.11 web.test\n");
    let dns_port = free_port();
    let dns = Dnsmasq::start(
        dns_port,
        &hosts,
        &format!("_http._tcp.web.test,target.test,{port}"),
    );
    let (web, srv) = (free_port(), free_port());
    let config = format!(
        "Virtual web {{\n    listen = 127.0.0.1:{web}\n    scheduler = rr\n    discover = dns web.test:{port} 1\n}}\n\
         Virtual viasrv {{\n    listen = 127.0.0.1:{srv}\n    scheduler = rr\n    discover = srv _http._tcp.web.test 2\n}}\n"
    );
    let file = dir.join("dns.conf");
    std::fs::write(&file, config).unwrap();
    let resolver = format!("127.0.0.1:{dns_port}");
    let node = Daemon::start(&["-f", file.to_str().unwrap(), "--resolver", &resolver]);
    node.adm_ok(&["--start"]);
    let web: SocketAddr = ([127, 0, 0, 1], web).into();
    let srv: SocketAddr = ([127, 0, 0, 1], srv).into();
    assert!(
        common::eventually(200, || get_status(web, "/").0 == 200),
        "the name was never resolved: {}",
        node.log_text()
    );
    // The SRV record's target, at the record's port.
    assert!(common::eventually(200, || get_status(srv, "/")
        .1
        .starts_with("b ")));
    let listing = node.adm_ok(&["-L", "-n"]);
    assert!(
        listing.contains(&format!("discover = dns web.test:{port} 1")),
        "{listing}"
    );
    assert!(
        listing.contains("discover = srv _http._tcp.web.test 2"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!(
            "# server = 127.0.0.12:{port} 2 (discovered: _http._tcp.web.test)"
        )),
        "{listing}"
    );

    let load = Load::start(web);
    load.until_served_by(&["a"], Duration::from_secs(5));
    let a_addr = SocketAddr::from(([127, 0, 0, 11], port));
    let before = server_requests(&node, a_addr);
    assert!(before > 0);
    // A second address joins within the TTL (1 s) and a lookup round.
    write_hosts("127.0.0.11 web.test\n127.0.0.12 web.test\n");
    dns.reload();
    let joined = load.until_served_by(&["a", "b"], Duration::from_secs(4));
    // The server that stayed kept its counters.
    assert!(server_requests(&node, a_addr) >= before);
    // The first address leaves.
    write_hosts("127.0.0.12 web.test\n");
    dns.reload();
    let left = load.until_served_by(&["b"], Duration::from_secs(4));
    std::thread::sleep(Duration::from_millis(300));
    let (done, failed) = load.stop();
    assert_eq!(failed, 0, "{failed} of {done} requests failed");
    assert!(done > 100, "{done} requests");
    // Discovery is edited live like any other setting: dropping the SRV
    // name drops its server; a name added through tcpvsadm is followed.
    node.adm_ok(&["-E", "-i", "viasrv", "--discover", "none"]);
    let listing = node.adm_ok(&["-L", "-n"]);
    assert!(!listing.contains("_http._tcp.web.test"), "{listing}");
    let added = format!("dns web.test:{port} 3");
    node.adm_ok(&["-E", "-i", "viasrv", "--discover", &added]);
    assert!(common::eventually(200, || get_status(srv, "/")
        .1
        .starts_with("b ")));
    assert!(node.adm_ok(&["-L", "-n"]).contains(&format!(
        "# server = 127.0.0.12:{port} 3 (discovered: web.test)"
    )));
    eprintln!(
        "dns: b joined in {joined:?}, a left in {left:?}; {done} requests, 0 failed; a served {}, b {}",
        a.requests(),
        b.requests()
    );
    drop(dns);
}

//! The admin listener end to end, with the real binaries: `ktcpvsd
//! --admin` in front of three real HTTP servers, configured with
//! `tcpvsadm`, driven by a real client. `/metrics` is checked against the
//! traffic sent (requests per rule, status classes, the proxy's own 400,
//! histogram counts) and by `promtool check metrics`; a real Prometheus
//! server scrapes it and answers a query; `/healthz` follows a drain.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// One GET on a fresh connection: status and body.
fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    get_status(addr, target)
}

/// The value of the sample whose line starts with `prefix` (metric name
/// and labels, exactly as exposed).
fn value(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in:\n{metrics}"))
}

/// `ktcpvsd --admin` with the README's content switch over three servers,
/// running; the admin and service addresses.
fn daemon_with_admin() -> (
    Daemon,
    SocketAddr,
    SocketAddr,
    Vec<ktcpvs::demo::NamedHttpServer>,
) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let servers = three_servers();
    let mut args = vec!["--admin".to_string(), admin.to_string()];
    args.extend(alias_args(&servers));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let daemon = Daemon::start(&args);
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    daemon.adm_ok(&["-A", "-i", "web", "-s", "phttp", "-l", &listen.to_string()]);
    for r in ["r1:80", "r2:80", "r3:80"] {
        daemon.adm_ok(&["-a", "-i", "web", "-r", r]);
    }
    for (pattern, r) in [
        ("/images/.*", "r1:80"),
        ("/html/.*", "r2:80"),
        (".*", "r3:80"),
    ] {
        daemon.adm_ok(&[
            "--add-rule",
            "-i",
            "web",
            &format!("--pattern={pattern}"),
            "-r",
            r,
        ]);
    }
    daemon.adm_ok(&["--start", "-i", "web"]);
    assert!(eventually(200, || TcpStream::connect(listen).is_ok()));
    (daemon, admin, listen, servers)
}

#[test]
fn metrics_count_the_traffic_sent_and_pass_promtool() {
    let (daemon, admin, listen, _servers) = daemon_with_admin();
    assert_eq!(get(admin, "/healthz"), (200, "ok\n".to_string()));
    for (target, n) in [("/images/a.png", 7), ("/html/index.html", 5), ("/other", 3)] {
        for _ in 0..n {
            assert_eq!(get(listen, target).0, 200);
        }
    }
    // A malformed request: the proxy's own 400.
    let mut s = TcpStream::connect(listen).unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let (status, metrics) = get(admin, "/metrics");
    assert_eq!(status, 200);
    let rule = |i: usize, pattern: &str| {
        value(
            &metrics,
            &format!(
                "ktcpvs_rule_requests_total{{service=\"web\",rule=\"{i}\",pattern=\"{pattern}\"}}"
            ),
        )
    };
    assert_eq!(rule(0, "/images/.*"), 7.0);
    assert_eq!(rule(1, "/html/.*"), 5.0);
    assert_eq!(rule(2, ".*"), 3.0);
    let class = |c: &str| {
        value(
            &metrics,
            &format!("ktcpvs_service_responses_total{{service=\"web\",class=\"{c}\"}}"),
        )
    };
    assert_eq!(class("2xx"), 15.0);
    assert_eq!(class("4xx"), 1.0);
    assert_eq!(
        value(
            &metrics,
            "ktcpvs_service_proxy_responses_total{service=\"web\",status=\"400\"}"
        ),
        1.0
    );
    // A request counts once its head parsed: the malformed one does not.
    assert_eq!(
        value(&metrics, "ktcpvs_service_requests_total{service=\"web\"}"),
        15.0
    );
    assert_eq!(
        value(
            &metrics,
            "ktcpvs_service_first_byte_seconds_count{service=\"web\"}"
        ),
        15.0
    );
    assert_eq!(
        value(
            &metrics,
            "ktcpvs_service_exchange_seconds_count{service=\"web\"}"
        ),
        15.0
    );
    assert_eq!(
        value(
            &metrics,
            "ktcpvs_service_first_byte_seconds_bucket{service=\"web\",le=\"+Inf\"}"
        ),
        15.0
    );
    assert!(metrics.contains("ktcpvs_worker_loop_iterations_total{worker=\"1\"}"));
    assert_eq!(value(&metrics, "ktcpvs_up{version=\"0.1.0\"}"), 1.0);

    // promtool, Prometheus's own checker, reads the exposition.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; .ci/run installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The same figures as JSON.
    let (status, json) = get(admin, "/stats");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(stats["services"][0]["name"], "web");
    assert_eq!(stats["services"][0]["rules"][0]["requests"], 7);
    assert_eq!(stats["services"][0]["responses"][1], 15);
    // tcpvsadm prints the same JSON.
    let adm: serde_json::Value = serde_json::from_str(
        daemon
            .adm_ok(&["-L", "--stats", "--json", "-i", "web"])
            .trim(),
    )
    .unwrap();
    assert_eq!(adm["services"][0]["rules"][1]["requests"], 5);
    // Unknown targets and methods are refused.
    assert_eq!(get(admin, "/nope").0, 404);
    drop(daemon);
}

#[test]
fn the_daemons_own_log_can_be_json() {
    let daemon = Daemon::start(&["--log-format", "json", "--sysctl", "debug_level=2"]);
    daemon.adm_ok(&["-A", "-i", "web", "-l", "127.0.0.1:0"]);
    let mut lines = Vec::new();
    assert!(eventually(200, || {
        lines = daemon
            .log_text()
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(str::to_string)
            .collect();
        !lines.is_empty()
    }));
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["time", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
    }
}

#[test]
fn healthz_fails_once_no_service_runs() {
    let (daemon, admin, _listen, _servers) = daemon_with_admin();
    assert_eq!(get(admin, "/healthz").0, 200);
    daemon.adm_ok(&["--stop", "-i", "web"]);
    assert_eq!(get(admin, "/healthz"), (503, "draining\n".to_string()));
    daemon.adm_ok(&["--start", "-i", "web"]);
    assert_eq!(get(admin, "/healthz").0, 200);
}

#[test]
fn a_real_prometheus_scrapes_ktcpvsd() {
    let (daemon, admin, listen, _servers) = daemon_with_admin();
    for _ in 0..10 {
        assert_eq!(get(listen, "/images/x").0, 200);
    }
    let dir = TempDir::new("prometheus");
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: ktcpvs\n    static_configs:\n      - targets: ['{admin}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian package prometheus; .ci/run installs it)");
    let query =
        "/api/v1/query?query=ktcpvs_rule_requests_total%7Bpattern%3D%22%2Fimages%2F.*%22%7D";
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    let found = loop {
        if Instant::now() > deadline {
            break false;
        }
        if let Ok(mut s) = TcpStream::connect(web) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "GET {query} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
            );
            last.clear();
            let _ = s.read_to_string(&mut last);
            if last.contains("\"value\"") && last.contains("\"10\"") {
                break true;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert!(
        found,
        "Prometheus never returned the rule's 10 requests; last answer:\n{last}\n--- prometheus log ---\n{}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
    drop(daemon);
}

#[test]
fn the_config_files_admin_address_is_served_and_moves_on_reload() {
    let dir = TempDir::new("admin-config");
    let (a, b) = (free_port(), free_port());
    let config = dir.join("lb.conf");
    std::fs::write(&config, format!("admin = 127.0.0.1:{a}\n")).unwrap();
    let mut daemon = Daemon::start(&["-f", config.to_str().unwrap()]);
    let first: SocketAddr = format!("127.0.0.1:{a}").parse().unwrap();
    let second: SocketAddr = format!("127.0.0.1:{b}").parse().unwrap();
    assert!(eventually(200, || TcpStream::connect(first).is_ok()));
    assert_eq!(get(first, "/healthz").0, 503, "no service runs");
    assert!(daemon
        .adm_ok(&["-L"])
        .contains(&format!("admin = 127.0.0.1:{a}")));
    std::fs::write(&config, format!("admin = 127.0.0.1:{b}\n")).unwrap();
    hangup(daemon.child_mut());
    assert!(eventually(200, || TcpStream::connect(second).is_ok()));
    assert!(eventually(200, || TcpStream::connect(first).is_err()));
    assert!(get(second, "/metrics").1.contains("ktcpvs_up"));
}

#[test]
fn a_drain_fails_healthz_first_keeps_serving_then_stops_and_exits() {
    let (mut daemon, admin, listen, _servers) = daemon_with_admin();
    assert_eq!(get(admin, "/healthz").0, 200);
    let start = Instant::now();
    daemon.adm_ok(&["--drain", "2"]);
    assert_eq!(get(admin, "/healthz"), (503, "draining\n".to_string()));
    // The node keeps serving while the tier in front notices.
    let mut served = 0;
    while TcpStream::connect(listen).is_ok() && start.elapsed() < Duration::from_secs(8) {
        if get(listen, "/images/x").0 == 200 {
            served += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = start.elapsed();
    assert!(served >= 10, "served {served}");
    assert!(
        stopped >= Duration::from_millis(1800) && stopped < Duration::from_secs(6),
        "stopped accepting after {stopped:?}"
    );
    let status = wait_bounded(daemon.child_mut(), Duration::from_secs(10)).expect("ktcpvsd exits");
    assert!(status.success(), "{status:?}");
}

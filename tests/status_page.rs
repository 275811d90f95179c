//! The admin listener's status page in a real browser: `ktcpvsd --admin
//! --admin-token-file` with a content switch over three real servers and
//! live traffic, the page opened in headless Chromium driven by Playwright
//! (`tests/browser/status_page.mjs`). The page must show every service,
//! rule and server, figures that move, a server taken down as down within
//! one refresh, a weight set from the page (then seen by `tcpvsadm -L`),
//! and no browser error. Actions without the token, or from another
//! origin, are refused. The screenshot is left at `target/status-page.png`.
//!
//! Skipped (and passing) when node or Chromium is missing; `.ci/run`
//! installs both.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const TOKEN: &str = "status-page-token-0123456789";
const INTERVAL_MS: u64 = 500;

/// Chromium, where Debian installs it (or `KTCPVS_CHROMIUM`).
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("KTCPVS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    path.exists().then_some(path)
}

fn node_works() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `tests/browser` with its `node_modules` installed (`npm ci` once).
fn browser_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("run npm ci in tests/browser");
        assert!(status.success(), "npm ci in tests/browser failed");
    }
    dir
}

/// A POST of an action with the given extra header lines: the status.
fn post_action(admin: SocketAddr, headers: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST /api/action HTTP/1.1\r\nHost: {admin}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The CSRF token the page carries.
fn csrf(admin: SocketAddr) -> String {
    let (status, page) = get_status(admin, "/");
    assert_eq!(status, 200);
    let start = page
        .find("name=\"ktcpvs-csrf\" content=\"")
        .expect("csrf meta")
        + 28;
    page[start..start + 32].to_string()
}

#[test]
fn the_status_page_in_a_real_browser() {
    let (Some(_), true) = (chromium(), node_works()) else {
        eprintln!("skipped: node or Chromium (/usr/bin/chromium) missing; .ci/run installs them");
        return;
    };
    let browser = browser_dir();
    let servers = three_servers();
    let addrs: Vec<String> = servers.iter().map(|s| s.local_addr().to_string()).collect();
    let listen = format!("127.0.0.1:{}", free_port());
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = TempDir::new("status-page");
    let config = dir.join("ktcpvs.conf");
    std::fs::write(
        &config,
        format!(
            "Virtual web {{\n  listen = {listen}\n  scheduler = http\n  check = tcp\n  check_interval = 100ms\n  check_timeout = 200ms\n  check_fall = 1\n  check_jitter = 0\n  server = {a} 1\n  server = {b} 1\n  server = {c} 1\n  rule = pattern \"^/images/.*\" use server {a}\n  rule = pattern \"^/api/\" method GET,HEAD use server {b}\n  rule = pattern \".*\" use server {c}\n}}\n",
            a = addrs[0],
            b = addrs[1],
            c = addrs[2]
        ),
    )
    .unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let daemon = Daemon::start(&[
        "-f",
        config.to_str().unwrap(),
        "--admin",
        &admin.to_string(),
        "--admin-token-file",
        token_file.to_str().unwrap(),
    ]);
    let listen: SocketAddr = listen.parse().unwrap();
    daemon.adm_ok(&["--start", "-i", "web"]);
    assert!(eventually(200, || TcpStream::connect(listen).is_ok()));
    let hash = daemon
        .adm_ok(&["-L"])
        .lines()
        .find_map(|l| l.strip_prefix("# configuration hash ").map(str::to_string))
        .expect("tcpvsadm -L prints the hash");

    // Refusals first: no token, a wrong CSRF token, another origin.
    let body = format!(
        "{{\"action\":\"weight\",\"service\":\"web\",\"server\":\"{}\",\"weight\":9}}",
        addrs[0]
    );
    let csrf = csrf(admin);
    let good = format!("X-CSRF-Token: {csrf}\r\nAuthorization: Bearer {TOKEN}\r\n");
    assert_eq!(
        post_action(admin, &format!("X-CSRF-Token: {csrf}\r\n"), &body),
        401
    );
    assert_eq!(
        post_action(
            admin,
            &format!("X-CSRF-Token: {csrf}\r\nAuthorization: Bearer wrong-token-0123456789\r\n"),
            &body
        ),
        401
    );
    assert_eq!(
        post_action(
            admin,
            &format!("X-CSRF-Token: 00\r\nAuthorization: Bearer {TOKEN}\r\n"),
            &body
        ),
        403
    );
    assert_eq!(
        post_action(
            admin,
            &format!("{good}Origin: http://evil.example\r\n"),
            &body
        ),
        403
    );
    assert_eq!(
        post_action(
            admin,
            &format!("{good}Sec-Fetch-Site: cross-site\r\n"),
            &body
        ),
        403
    );
    assert!(
        daemon
            .adm_ok(&["-L", "-n"])
            .contains(&format!("server = {} 1", addrs[0])),
        "a refused action changed the weight"
    );

    // Traffic while the browser looks.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for target in ["/images/a.png", "/api/x", "/index.html"] {
                    let _ = get_status(listen, target);
                }
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };

    let expect = serde_json::json!({
        "interval": INTERVAL_MS,
        "config_hash": hash,
        "services": [{
            "name": "web",
            "rules": ["^/images/.*", "^/api/", ".*"],
            "servers": addrs,
        }],
        "down": addrs[2],
        "token": TOKEN,
        "weight": { "server": addrs[0], "weight": 7 },
    });
    let expect_file = dir.join("expect.json");
    std::fs::write(&expect_file, expect.to_string()).unwrap();
    let shot = examples_dir()
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join("status-page.png");
    let mut node = Command::new("node")
        .arg(browser.join("status_page.mjs"))
        .arg(format!("http://{admin}/"))
        .arg(&expect_file)
        .arg(&shot)
        .current_dir(&browser)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node");
    let mut stdin = node.stdin.take().expect("stdin piped");
    let stdout = BufReader::new(node.stdout.take().expect("stdout piped"));
    let mut servers: Vec<_> = servers.into_iter().map(Some).collect();
    let mut output = Vec::new();
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        println!("browser: {line}");
        if line == "READY-FOR-DOWN" {
            // The third server stops: its checks fail within 100 ms.
            servers[2] = None;
            let _ = writeln!(stdin, "go");
        }
        output.push(line);
    }
    let status = wait_bounded(&mut node, Duration::from_secs(90));
    if status.is_none() {
        let _ = node.kill();
        let _ = node.wait();
    }
    stop.store(true, Ordering::Relaxed);
    let _ = traffic.join();
    assert!(
        status.is_some_and(|s| s.success()) && output.last().is_some_and(|l| l == "OK"),
        "the browser test failed:\n{}\n--- daemon log ---\n{}",
        output.join("\n"),
        daemon.log_text()
    );
    assert!(output.iter().any(|l| l.starts_with("WEIGHT-SET")));
    // The weight set from the page is the daemon's, as tcpvsadm lists it.
    let listing = daemon.adm_ok(&["-L", "-n"]);
    assert!(
        listing.contains(&format!("server = {} 7", addrs[0])),
        "{listing}"
    );
    println!("screenshot: {}", shot.display());
}

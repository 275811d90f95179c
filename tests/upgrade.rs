//! Binary upgrade of the real `ktcpvsd` (`--upgrade-from`): under `wrk`
//! load the old daemon hands its listening sockets and configuration to a
//! new one and exits once its last exchange is done, with no failed
//! request and no refused connection; and a handover that fails (a wrong
//! socket, a new daemon that cannot start, a peer that hangs up) leaves
//! the old daemon serving, unchanged.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ktcpvs::demo::NamedHttpServer;

/// An old daemon serving `web` on a fixed loopback port, in front of one
/// backend, with its admin listener.
fn old_daemon() -> (Daemon, SocketAddr, SocketAddr, NamedHttpServer) {
    let backend = NamedHttpServer::start("r1", "127.0.0.1:0".parse().unwrap()).unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = std::env::temp_dir().join(format!("ktcpvs-upgrade-{}.conf", listen.port()));
    std::fs::write(
        &config,
        format!(
            "admin = {admin}\n\nVirtual web {{\n    listen = {listen}\n    scheduler = phttp\n    server = {r1} 1\n    rule = pattern \".*\" use server {r1}\n}}\n",
            r1 = backend.local_addr()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&["-f", config.to_str().unwrap()]);
    let _ = std::fs::remove_file(&config);
    daemon.adm_ok(&["--start", "-i", "web"]);
    assert!(eventually(200, || http_get(listen, "/").is_ok()));
    (daemon, listen, admin, backend)
}

/// A `ktcpvsd --upgrade-from`, killed on drop if still running.
struct NewDaemon {
    child: Child,
    log: PathBuf,
}

impl NewDaemon {
    fn start(from: &Path, log: PathBuf, extra: &[&str]) -> NewDaemon {
        let child = Command::new(example("ktcpvsd"))
            .arg("--upgrade-from")
            .arg(from)
            .args(["--workers", "2", "--upgrade-grace", "5"])
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("KTCPVS_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn the new ktcpvsd");
        NewDaemon { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NewDaemon {
    fn drop(&mut self) {
        terminate(&self.child);
        if wait_bounded(&mut self.child, Duration::from_secs(15)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The request count of wrk's summary (`N requests in …`).
fn wrk_requests(summary: &str) -> u64 {
    summary
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn under_load_the_old_daemon_hands_over_and_exits_after_its_last_exchange() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("skipped: wrk is not installed (.ci/run installs it)");
        return;
    }
    let (mut old, listen, admin, _backend) = old_daemon();
    let hash_before = hash_line(&old);
    let wrk = Command::new("wrk")
        .args(["-t2", "-c16", "-d4s", "--timeout", "5s"])
        .arg(format!("http://{listen}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wrk");
    std::thread::sleep(Duration::from_secs(1));
    let new = NewDaemon::start(&old.socket, old.dir.join("new.log"), &[]);
    let started = Instant::now();
    let status = wait_bounded(old.child_mut(), Duration::from_secs(12));
    let took = started.elapsed();
    let old_log = old.log_text();
    let status = status.unwrap_or_else(|| {
        panic!(
            "the old daemon did not exit: {old_log}\n--- new ---\n{}",
            new.log_text()
        )
    });
    let _ = old.take_child().wait();
    assert!(status.success(), "old daemon: {status:?}\n{old_log}");
    assert!(
        old_log.contains("handed over to a new ktcpvsd"),
        "{old_log}"
    );
    // The grace period is 5 s; keep-alive connections leave within ~1 s.
    assert!(
        took < Duration::from_secs(8),
        "the old daemon took {took:?}"
    );
    let out = wrk.wait_with_output().expect("wrk ends");
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{summary}");
    eprintln!("old daemon exited {took:?} after the new one started");
    assert!(out.status.success(), "{summary}");
    assert!(!summary.contains("Socket errors"), "{summary}");
    assert!(!summary.contains("Non-2xx"), "{summary}");
    assert!(wrk_requests(&summary) > 100, "{summary}");
    // The new daemon serves, answers on the control socket with the same
    // configuration, and on the admin listener it took over.
    assert!(who_answers(listen, "/after").starts_with("r1"));
    assert_eq!(hash_line(&old), hash_before);
    assert_eq!(get_status(admin, "/healthz").0, 200, "{}", new.log_text());
    assert!(
        new.log_text().contains("upgrade done"),
        "{}",
        new.log_text()
    );
}

#[test]
fn a_failed_handover_leaves_the_old_daemon_serving_unchanged() {
    let (mut old, listen, admin, _backend) = old_daemon();
    let hash_before = hash_line(&old);
    // A wrong socket: the new daemon cannot even ask.
    let mut wrong = NewDaemon::start(
        &old.dir.join("nothing.sock"),
        old.dir.join("wrong.log"),
        &[],
    );
    let status = wait_bounded(&mut wrong.child, Duration::from_secs(10)).expect("exits");
    assert!(!status.success());
    assert!(
        wrong.log_text().contains("upgrade from"),
        "{}",
        wrong.log_text()
    );
    // A new daemon that receives everything, starts accepting, then cannot
    // open its control socket (its directory is a file): it exits before
    // confirming.
    let not_a_dir = old.dir.join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let socket = not_a_dir.join("ctl.sock");
    let mut broken = NewDaemon::start(
        &old.socket,
        old.dir.join("broken.log"),
        &["--socket", socket.to_str().unwrap()],
    );
    let status = wait_bounded(&mut broken.child, Duration::from_secs(10)).expect("exits");
    assert!(!status.success(), "{}", broken.log_text());
    assert!(
        broken.log_text().contains("took over"),
        "{}",
        broken.log_text()
    );
    // A peer that takes the sockets and hangs up.
    let mut client = ktcpvs::control_socket::ControlClient::connect(&old.socket).unwrap();
    let handed = client.handover().unwrap();
    assert_eq!(
        handed.listeners.len(),
        3,
        "two workers' sockets and the admin's"
    );
    drop(handed);
    drop(client);
    // The old daemon serves on, unchanged.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        old.child_mut().try_wait().unwrap().is_none(),
        "{}",
        old.log_text()
    );
    for _ in 0..20 {
        assert!(who_answers(listen, "/still").starts_with("r1"));
    }
    assert_eq!(get_status(admin, "/healthz").0, 200);
    assert_eq!(hash_line(&old), hash_before);
    let log = old.log_text();
    assert!(log.contains("handover abandoned"), "{log}");
    assert!(!log.contains("handed over to a new"), "{log}");
    // And a later handover still works.
    let new = NewDaemon::start(&old.socket, old.dir.join("new.log"), &[]);
    let status = wait_bounded(old.child_mut(), Duration::from_secs(12)).expect("old exits");
    let _ = old.take_child().wait();
    assert!(status.success());
    assert!(
        who_answers(listen, "/after").starts_with("r1"),
        "{}",
        new.log_text()
    );
}

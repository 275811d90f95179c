//! Listening sockets handed to ktcpvs instead of bound by it: systemd
//! socket activation of the real `ktcpvsd` (`LISTEN_PID`/`LISTEN_FDS`,
//! descriptor 3), and an embedding host's `EngineBuilder::inherit`. The
//! sockets are bound without `SO_REUSEPORT`, so a service that bound its
//! own socket on the same address would fail: being served proves the
//! handed socket is the one accepting.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use ktcpvs::{Endpoint, ServiceSpec};

#[test]
fn ktcpvsd_serves_on_a_socket_systemd_passed() {
    let servers = three_servers();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = TempDir::new("activation");
    let config = dir.join("lb.conf");
    std::fs::write(
        &config,
        format!(
            "Virtual web {{\n    listen = {addr}\n    scheduler = phttp\n    server = {r1} 1\n    rule = pattern \".*\" use server {r1}\n}}\n",
            r1 = servers[0].local_addr()
        ),
    )
    .unwrap();
    let socket = dir.join("ctl.sock");
    let log = std::fs::File::create(dir.join("ktcpvsd.log")).unwrap();
    let fd = listener.as_raw_fd();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        // `exec` keeps the shell's pid, which is what LISTEN_PID must name.
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(example("ktcpvsd"))
        .args(["--socket", socket.to_str().unwrap(), "--workers", "2"])
        .args(["-f", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: dup2 and fcntl are async-signal-safe; they only place the
    // listening socket at descriptor 3 for the child.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::fcntl(3, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let tcpvsadm = |args: &[&str]| {
        Command::new(example("tcpvsadm"))
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(eventually(200, || tcpvsadm(&["-L"]).status.success()));
    assert!(
        tcpvsadm(&["--start", "-i", "web"]).status.success(),
        "{}",
        std::fs::read_to_string(dir.join("ktcpvsd.log")).unwrap_or_default()
    );
    drop(listener);
    assert!(
        eventually(200, || http_get(addr, "/x")
            .is_ok_and(|b| b.starts_with("r1"))),
        "{}",
        std::fs::read_to_string(dir.join("ktcpvsd.log")).unwrap_or_default()
    );
    let log_text = std::fs::read_to_string(dir.join("ktcpvsd.log")).unwrap_or_default();
    assert!(
        log_text.contains(&format!("listening socket {addr} from systemd")),
        "{log_text}"
    );
    terminate(&child);
    assert!(wait_bounded(&mut child, Duration::from_secs(10)).is_some());
}

#[test]
fn an_embedding_host_hands_the_engine_its_socket() {
    let servers = three_servers();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let control = ktcpvs::new_control();
    control
        .execute(ktcpvs::Command::AddService {
            name: "web".into(),
            spec: ServiceSpec {
                listen: Some(Endpoint::from_addr(addr)),
                scheduler: Some("wlc".into()),
                ..ServiceSpec::default()
            },
        })
        .unwrap();
    control
        .execute(ktcpvs::Command::AddServer {
            service: "web".into(),
            server: Endpoint::from_addr(servers[1].local_addr()),
            weight: None,
        })
        .unwrap();
    control
        .execute(ktcpvs::Command::Start { service: None })
        .unwrap();
    let engine = ktcpvs::Engine::builder(control.clone())
        .workers(2)
        .inherit(listener)
        .start()
        .expect("no bind: the handed socket serves");
    assert_eq!(engine.local_addr("web"), Some(addr));
    for _ in 0..4 {
        assert_eq!(who_answers(addr, "/"), "r2");
    }
    engine.shutdown(Duration::from_millis(200));
    engine.wait().unwrap();
}

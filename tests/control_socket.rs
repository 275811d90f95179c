//! The control-socket server over a real Unix socket: file mode and stale
//! sockets, malformed and oversized requests, misbehaving clients, and
//! `load` transactions. Driven with raw socket I/O, as `socat` would.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::TempDir;
use ktcpvs::control_socket::protocol::{ListenerInfo, ListenerRole};
use ktcpvs::control_socket::{
    ControlClient, ControlServer, Dispatcher, ErrorKind, HandoverError, Reply, Request,
    ServerOptions, SocketError,
};
use ktcpvs::{builtin_schedulers, Control};

fn server(dir: &TempDir, options: ServerOptions) -> (Control, ControlServer) {
    let control = Control::new(builtin_schedulers());
    let server = ControlServer::bind_with(
        &dir.join("ctl.sock"),
        Dispatcher::new(control.clone(), None),
        options,
    )
    .expect("bind control socket");
    (control, server)
}

/// A raw line-level session, as a person with socat has.
struct Raw {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Raw {
    fn connect(server: &ControlServer) -> Raw {
        let stream = UnixStream::connect(server.path()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        let mut raw = Raw {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = raw.line();
        assert!(greeting.starts_with("KTCPVS 1 "), "{greeting}");
        raw
    }
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        l.trim_end_matches('\n').to_string()
    }
    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
    }
    fn ask(&mut self, line: &str) -> String {
        self.send(&format!("{line}\n"));
        self.line()
    }
}

#[test]
fn socket_is_private_and_removed_on_shutdown() {
    let dir = TempDir::new("mode");
    let (_, server) = server(&dir, ServerOptions::default());
    let mode = std::fs::metadata(server.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let path = server.path().to_path_buf();
    server.shutdown();
    assert!(!path.exists());
    // Nothing else was left in the directory (no staging directory).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn stale_socket_is_replaced_but_live_socket_and_plain_file_are_not() {
    let dir = TempDir::new("stale");
    let path = dir.join("ctl.sock");
    drop(UnixListener::bind(&path).unwrap()); // leaves a dead socket file
    assert!(path.exists());
    let (_, first) = server(&dir, ServerOptions::default());
    // A second server on the same path finds a live daemon.
    let second = ControlServer::bind(
        &path,
        Dispatcher::new(Control::new(builtin_schedulers()), None),
    );
    assert!(
        matches!(second, Err(SocketError::InUse { .. })),
        "{second:?}"
    );
    drop(first);
    let plain = dir.join("plain");
    std::fs::write(&plain, "keep me").unwrap();
    let third = ControlServer::bind(
        &plain,
        Dispatcher::new(Control::new(builtin_schedulers()), None),
    );
    assert!(
        matches!(third, Err(SocketError::NotASocket { .. })),
        "{third:?}"
    );
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep me");
}

#[test]
fn malformed_and_unknown_requests_get_err_and_change_nothing() {
    let dir = TempDir::new("malformed");
    let (control, server) = server(&dir, ServerOptions::default());
    let mut raw = Raw::connect(&server);
    assert_eq!(
        raw.ask("add-service web listen=127.0.0.1:7001 scheduler=wlc"),
        "OK"
    );
    let before = control.config();
    for (line, kind) in [
        ("frobnicate", "unknown-verb"),
        ("add-service", "usage"),
        ("add-service web2 colour=blue", "usage"),
        ("add-server web server=10.0.0.1:80 weight=lots", "usage"),
        ("add-rule web pattern=\"/unterminated server=r1", "usage"),
        ("add-service web scheduler=wlc", "exists"),
        ("add-service web3 scheduler=nosuch", "scheduler"),
        ("delete-service nosuch", "no-such-service"),
        ("sysctl nosuch=1", "no-such-setting"),
        ("sysctl debug_level=100", "invalid"),
    ] {
        let reply = raw.ask(line);
        assert!(
            reply.starts_with(&format!("ERR {kind} ")),
            "{line} -> {reply}"
        );
        assert_eq!(control.config(), before, "{line} changed the configuration");
    }
    // Blank lines and comments are ignored; the session is still usable.
    raw.send("\n# a comment\n");
    assert_eq!(raw.ask("ping"), "OK");
    let status = raw.ask("list -n");
    assert!(status.starts_with("OK "), "{status}");
    let n: usize = status[3..].parse().unwrap();
    let body: Vec<String> = (0..n).map(|_| raw.line()).collect();
    assert_eq!(body[0], "Virtual web {");
    assert_eq!(body[n - 1], "}");
    assert_eq!(raw.ask("quit"), "OK");
    assert_eq!(raw.line(), "", "connection closed after quit");
}

#[test]
fn an_overlong_line_is_refused_without_buffering_and_the_session_continues() {
    let dir = TempDir::new("long");
    let (_, server) = server(&dir, ServerOptions::default());
    let mut raw = Raw::connect(&server);
    let huge = format!("add-service {}\n", "x".repeat(1 << 20));
    raw.send(&huge);
    let reply = raw.line();
    assert!(reply.starts_with("ERR too-long "), "{reply}");
    assert_eq!(raw.ask("ping"), "OK");
}

#[test]
fn load_is_one_transaction() {
    let dir = TempDir::new("load");
    let (control, server) = server(&dir, ServerOptions::default());
    let mut client = ControlClient::connect(server.path()).unwrap();
    assert_eq!(
        client
            .request(
                &Request::parse("add-service keep listen=127.0.0.1:7001 scheduler=wlc").unwrap()
            )
            .unwrap(),
        Reply::Ok(vec![])
    );
    let before = control.config();
    let bad = "Virtual a {\n    listen = 127.0.0.1:7002\n    scheduler = wlc\n}\nVirtual b {\n    nonsense = 1\n}\n";
    match client.load(Some("bad.conf"), bad).unwrap() {
        Reply::Err { kind, message } => {
            assert_eq!(kind, ErrorKind::Config, "{message}");
            assert!(message.contains("bad.conf"), "{message}");
        }
        ok => panic!("bad config accepted: {ok:?}"),
    }
    assert_eq!(control.config(), before);
    let good = "Virtual a {\n    listen = 127.0.0.1:7002\n    scheduler = wlc\n}\n";
    let reply = client.load(Some("good.conf"), good).unwrap();
    assert_eq!(reply, Reply::Ok(vec![]));
    let names: Vec<String> = control
        .config()
        .services
        .iter()
        .map(|s| s.config.name.clone())
        .collect();
    assert_eq!(names, ["a"]);
}

#[test]
fn a_silent_client_does_not_stall_others_and_is_dropped_when_idle() {
    let dir = TempDir::new("idle");
    let (_, server) = server(
        &dir,
        ServerOptions {
            idle_timeout: Duration::from_millis(300),
            ..ServerOptions::default()
        },
    );
    // A client that sends half a line and stops.
    let mut silent = UnixStream::connect(server.path()).unwrap();
    silent.write_all(b"add-serv").unwrap();
    // Others are served meanwhile.
    for _ in 0..3 {
        let mut c = ControlClient::connect(server.path()).unwrap();
        assert_eq!(c.request(&Request::Ping).unwrap(), Reply::Ok(vec![]));
    }
    // The silent one is disconnected after its idle timeout.
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = String::new();
    let _ = silent.read_to_string(&mut rest);
    assert!(rest.starts_with("KTCPVS 1"), "{rest}");
    assert!(!rest.contains("OK"), "{rest}");
}

#[test]
fn clients_beyond_the_limit_are_told_to_come_back() {
    let dir = TempDir::new("limit");
    let (_, server) = server(
        &dir,
        ServerOptions {
            max_clients: 2,
            ..ServerOptions::default()
        },
    );
    let _a = Raw::connect(&server);
    let _b = Raw::connect(&server);
    let mut c = UnixStream::connect(server.path()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("ERR unavailable "), "{text}");
    drop(_a);
    // A slot frees up once a client leaves.
    assert!(common::eventually(200, || ControlClient::connect(
        server.path()
    )
    .and_then(|mut c| c.request(&Request::Ping))
    .is_ok_and(|r| r == Reply::Ok(vec![]))));
}

/// The unprivileged user the ownership tests hand files and processes to.
const NOBODY: u32 = 65534;

/// Whether this test process may change owners and run as another user
/// (it is root); the tests that need it say so and pass otherwise.
fn can_switch_users(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("{test}: skipped, needs root to act as uid {NOBODY}");
    }
    root
}

fn chown(path: &std::path::Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

#[test]
fn default_socket_lives_in_a_private_directory_and_a_foreign_one_is_refused() {
    let runtime = TempDir::new("xdg");
    let run = |runtime: &std::path::Path| {
        std::process::Command::new(common::example("ktcpvsd"))
            .args(["--workers", "1"])
            .env("XDG_RUNTIME_DIR", runtime)
            .env_remove("KTCPVS_SOCKET")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ktcpvsd")
    };
    let mut daemon = run(runtime.path());
    let socket = runtime.join("ktcpvs").join("control.sock");
    assert!(
        common::eventually(400, || ControlClient::connect(&socket).is_ok()),
        "no control socket at {}",
        socket.display()
    );
    let mode = std::fs::metadata(runtime.join("ktcpvs"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "the daemon's directory is private");
    let adm = std::process::Command::new(common::example("tcpvsadm"))
        .arg("-L")
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env_remove("KTCPVS_SOCKET")
        .output()
        .unwrap();
    assert!(
        adm.status.success(),
        "{}",
        String::from_utf8_lossy(&adm.stderr)
    );
    common::terminate(&daemon);
    assert!(common::wait_bounded(&mut daemon, Duration::from_secs(15)).is_some());

    if !can_switch_users("foreign directory") {
        return;
    }
    let squatted = TempDir::new("squat");
    let dir = squatted.join("ktcpvs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    chown(&dir, NOBODY);
    let mut daemon = run(squatted.path());
    let status = common::wait_bounded(&mut daemon, Duration::from_secs(15)).expect("refused");
    let mut stderr = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("belongs to uid {NOBODY}")),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing was put in it"
    );
}

#[test]
fn a_socket_of_another_user_is_neither_used_nor_replaced() {
    if !can_switch_users("foreign socket") {
        return;
    }
    let dir = TempDir::new("foreign");
    let path = dir.join("ctl.sock");
    drop(UnixListener::bind(&path).unwrap());
    chown(&path, NOBODY);
    let bound = ControlServer::bind(
        &path,
        Dispatcher::new(Control::new(builtin_schedulers()), None),
    );
    assert!(
        matches!(bound, Err(SocketError::ForeignSocket { owner: NOBODY, .. })),
        "{bound:?}"
    );
    assert!(path.exists(), "left alone");
}

#[test]
fn a_client_of_another_user_is_refused_by_its_credentials() {
    if !can_switch_users("foreign client") {
        return;
    }
    let dir = TempDir::new("peer");
    let (_, server) = server(&dir, ServerOptions::default());
    // Open the file itself to everyone: the credentials still refuse.
    std::fs::set_permissions(server.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new(common::example("tcpvsadm"))
        .arg("--socket")
        .arg(server.path())
        .arg("-L")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run tcpvsadm as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("permission") && stderr.contains(&format!("not uid {NOBODY}")),
        "{stderr}"
    );
}

#[test]
fn tcpvsadm_refuses_a_daemon_of_another_user() {
    if !can_switch_users("foreign daemon") {
        return;
    }
    let dir = TempDir::new("planted");
    let private = dir.join("sock");
    std::fs::create_dir(&private).unwrap();
    chown(&private, NOBODY);
    let socket = private.join("ctl.sock");
    let mut planted = std::process::Command::new(common::example("ktcpvsd"))
        .arg("--socket")
        .arg(&socket)
        .args(["--workers", "1"])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ktcpvsd as nobody");
    assert!(
        common::eventually(400, || socket.exists()),
        "the planted daemon did not start"
    );
    let out = std::process::Command::new(common::example("tcpvsadm"))
        .arg("--socket")
        .arg(&socket)
        .arg("-L")
        .output()
        .unwrap();
    common::terminate(&planted);
    let _ = common::wait_bounded(&mut planted, Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("served by uid {NOBODY}")),
        "{stderr}"
    );
}

/// A handover source for one listening socket that records confirmations.
struct OneSocket {
    socket: std::net::TcpListener,
    confirmed: std::sync::Mutex<Vec<Option<Duration>>>,
}

impl ktcpvs::control_socket::HandoverSource for OneSocket {
    fn listeners(&self) -> std::io::Result<Vec<ktcpvs::control_socket::HandedListener>> {
        Ok(vec![ktcpvs::control_socket::HandedListener {
            info: ListenerInfo {
                role: ListenerRole::Service("web".into()),
                addr: self.socket.local_addr()?,
            },
            socket: self.socket.try_clone()?,
        }])
    }
    fn confirmed(&self, grace: Option<Duration>) {
        self.confirmed.lock().unwrap().push(grace);
    }
}

fn handover_server(dir: &TempDir) -> (std::sync::Arc<OneSocket>, ControlServer) {
    let control = Control::new(builtin_schedulers());
    control
        .load_config("Virtual web {\n    listen = 127.0.0.1:1\n}\n", None)
        .unwrap();
    let source = std::sync::Arc::new(OneSocket {
        socket: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        confirmed: std::sync::Mutex::new(Vec::new()),
    });
    let dispatcher = Dispatcher::new(control, None).with_handover(source.clone());
    let server = ControlServer::bind(&dir.join("ctl.sock"), dispatcher).unwrap();
    (source, server)
}

#[test]
fn a_handover_passes_the_sockets_and_the_daemon_stops_only_when_confirmed() {
    let dir = TempDir::new("handover");
    let (source, server) = handover_server(&dir);
    // Abandoned twice: by closing, then by another request.
    let mut client = ControlClient::connect(server.path()).unwrap();
    let handed = client.handover().unwrap();
    assert_eq!(handed.listeners.len(), 1);
    drop(client);
    let mut client = ControlClient::connect(server.path()).unwrap();
    let handed = loop {
        match client.handover() {
            Err(HandoverError::Refused {
                kind: ErrorKind::Unavailable,
                ..
            }) => {
                // The first connection's end is noticed asynchronously.
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    let expected = source.socket.local_addr().unwrap();
    assert_eq!(handed.listeners[0].info.addr, expected);
    assert_eq!(handed.listeners[0].socket.local_addr().unwrap(), expected);
    assert!(handed.config.contains("Virtual web {"), "{}", handed.config);
    assert!(handed.running.is_empty());
    assert!(handed.settings.iter().any(|(n, _)| n == "max_backlog"));
    match client.request(&Request::Ping).unwrap() {
        Reply::Err { kind, .. } => assert_eq!(kind, ErrorKind::Usage),
        other => panic!("{other:?}"),
    }
    assert!(source.confirmed.lock().unwrap().is_empty());
    // The passed socket is the very one: a connection to it is accepted
    // from the received descriptor.
    let _peer = std::net::TcpStream::connect(expected).unwrap();
    assert!(handed.listeners[0].socket.accept().is_ok());
    // Out of turn, handover-done is refused.
    match client
        .request(&Request::HandoverDone { grace: None })
        .unwrap()
    {
        Reply::Err { kind, .. } => assert_eq!(kind, ErrorKind::Usage),
        other => panic!("{other:?}"),
    }
    let _again = client.handover().unwrap();
    client
        .confirm_handover(Some(Duration::from_secs(7)))
        .unwrap();
    assert_eq!(
        *source.confirmed.lock().unwrap(),
        [Some(Duration::from_secs(7))]
    );
    let mut late = ControlClient::connect(server.path()).unwrap();
    assert!(matches!(
        late.handover(),
        Err(HandoverError::Refused {
            kind: ErrorKind::Unavailable,
            ..
        })
    ));
}

/// A planted "old daemon": greets, reads the request, then answers with
/// `text` and `fds` attached.
fn fake_daemon(
    dir: &TempDir,
    text: &'static str,
    fds: Vec<std::os::fd::OwnedFd>,
) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    let path = dir.join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        writer.write_all(b"KTCPVS 1 fake 0\n").unwrap();
        let mut line = String::new();
        let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut line);
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let rights = [nix::sys::socket::ControlMessage::ScmRights(&raw)];
        let cmsgs: &[nix::sys::socket::ControlMessage] = if raw.is_empty() { &[] } else { &rights };
        let _ = nix::sys::socket::sendmsg::<()>(
            stream.as_raw_fd(),
            &[std::io::IoSlice::new(text.as_bytes())],
            cmsgs,
            nix::sys::socket::MsgFlags::empty(),
            None,
        );
        std::thread::sleep(Duration::from_millis(200));
    });
    path
}

#[test]
fn a_hostile_old_daemon_is_refused_without_crashing_or_hanging() {
    let tcp = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let try_with = |text: &'static str, fds: Vec<std::os::fd::OwnedFd>| {
        let dir = TempDir::new("hostile");
        let path = fake_daemon(&dir, text, fds);
        let mut client = ControlClient::connect(&path).unwrap();
        client.handover()
    };
    // Garbage instead of a reply.
    assert!(matches!(
        try_with("HELLO\n", Vec::new()),
        Err(HandoverError::Malformed(_))
    ));
    // A body cut short by the peer closing.
    assert!(try_with("OK 3\nlistener admin 127.0.0.1:1\n", Vec::new()).is_err());
    // A listener announced, no descriptor sent.
    assert!(matches!(
        try_with("OK 2\nlistener admin 127.0.0.1:1\nconfig\n", Vec::new()),
        Err(HandoverError::Count {
            announced: 1,
            received: 0
        })
    ));
    // A descriptor that is not a socket, or not a listening TCP socket, or
    // bound elsewhere than announced.
    let file: std::os::fd::OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let (unix, _other) = UnixStream::pair().unwrap();
    let idle = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    idle.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    for fd in [file, unix.into(), idle.into(), tcp().into()] {
        let result = try_with("OK 2\nlistener admin 127.0.0.1:1\nconfig\n", vec![fd]);
        assert!(
            matches!(result, Err(HandoverError::NotAListener { index: 0, .. })),
            "{result:?}"
        );
    }
    // The errors above closed what they received; a good one passes.
    assert!(try_with("OK 1\nconfig\n", Vec::new()).is_ok());
}

#[test]
fn a_handover_asked_by_another_user_is_refused_before_any_descriptor_moves() {
    if !can_switch_users("foreign handover") {
        return;
    }
    let dir = TempDir::new("foreign-handover");
    let (source, server) = handover_server(&dir);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(server.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new("socat")
        .args([
            "-t",
            "2",
            "-",
            &format!("UNIX-CONNECT:{}", server.path().display()),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .and_then(|mut child| {
            // After the refusal came: the daemon closes without reading,
            // and unread bytes would turn its close into a reset that can
            // overtake the refusal.
            std::thread::sleep(Duration::from_millis(300));
            let _ = child
                .stdin
                .take()
                .unwrap()
                .write_all(b"handover\nhandover-done\n");
            child.wait_with_output()
        })
        .expect("run socat as nobody");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.starts_with("ERR permission"), "{answer}");
    assert!(!answer.contains("listener"), "{answer}");
    assert!(source.confirmed.lock().unwrap().is_empty());
}

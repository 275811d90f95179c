//! Shared parts of the end-to-end tests: locating the example binaries,
//! temporary directories, a `ktcpvsd` process guard, a `tcpvsadm` runner,
//! and a raw-socket HTTP client. Every guard cleans up in `Drop`, so a
//! failing test leaves no process or file behind.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use ktcpvs::demo::NamedHttpServer;

/// The directory holding the example binaries of this build
/// (`target/<profile>/examples`), building them once if they are missing.
pub fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> -> target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps")
            .to_path_buf();
        let dir = profile_dir.join("examples");
        let missing = ["ktcpvsd", "tcpvsadm", "ktcpvs-sim", "sim_plugin"]
            .iter()
            .any(|name| !dir.join(name).exists());
        if missing {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let target_dir = profile_dir.parent().expect("target directory");
            let mut build = Command::new(cargo);
            build
                .args(["build", "--examples"])
                .env("CARGO_TARGET_DIR", target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build --examples");
            assert!(status.success(), "cargo build --examples failed");
        }
        dir
    })
}

/// The path of example binary `name`.
pub fn example(name: &str) -> PathBuf {
    examples_dir().join(name)
}

/// A temporary directory removed (with its contents) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "ktcpvs-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Three real HTTP servers named r1, r2, r3 on loopback.
pub fn three_servers() -> Vec<NamedHttpServer> {
    ["r1", "r2", "r3"]
        .iter()
        .map(|n| NamedHttpServer::start(n, "127.0.0.1:0".parse().unwrap()).unwrap())
        .collect()
}

/// A running `ktcpvsd`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Daemon {
    child: Option<Child>,
    pub dir: TempDir,
    pub socket: PathBuf,
    pub log: PathBuf,
}

/// Sends SIGTERM to a child process.
pub fn terminate(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) with a pid we spawned and own.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// Sends SIGHUP to a child process.
pub fn hangup(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) with a pid we spawned and own.
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }
}

/// Waits for a child to exit, at most `limit`.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let step = Duration::from_millis(20);
    for _ in 0..(limit.as_millis() / step.as_millis()).max(1) {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(step);
    }
    None
}

impl Daemon {
    /// Starts `ktcpvsd --socket DIR/ctl.sock` with `args`, with stdout piped,
    /// and waits until its control socket answers.
    pub fn start(args: &[&str]) -> Daemon {
        let dir = TempDir::new("daemon");
        let socket = dir.join("ctl.sock");
        let log = dir.join("ktcpvsd.log");
        let log_file = std::fs::File::create(&log).expect("create log file");
        let child = Command::new(example("ktcpvsd"))
            .arg("--socket")
            .arg(&socket)
            .args(["--workers", "2"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("KTCPVS_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn ktcpvsd");
        let mut daemon = Daemon {
            child: Some(child),
            dir,
            socket,
            log,
        };
        for _ in 0..500 {
            if ktcpvs::control_socket::ControlClient::connect(&daemon.socket).is_ok() {
                return daemon;
            }
            if let Some(status) = daemon.child_mut().try_wait().ok().flatten() {
                panic!("ktcpvsd exited early ({status}): {}", daemon.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "ktcpvsd did not open its control socket: {}",
            daemon.log_text()
        );
    }

    /// The child process.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("daemon running")
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// Takes the child out of the guard's cleanup (the caller waits for it).
    pub fn take_child(&mut self) -> Child {
        self.child.take().expect("daemon running")
    }

    /// What the daemon logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `tcpvsadm --socket <ours> args…`.
    pub fn adm(&self, args: &[&str]) -> Output {
        Command::new(example("tcpvsadm"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tcpvsadm")
    }

    /// Runs tcpvsadm and asserts it succeeded; returns its stdout.
    pub fn adm_ok(&self, args: &[&str]) -> String {
        let out = self.adm(args);
        assert!(
            out.status.success(),
            "tcpvsadm {args:?} failed ({}): {}\n--- daemon log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Reads stdout lines until `done` says stop (bounded by `max_lines`).
    pub fn stdout_lines(&mut self, max_lines: usize, done: impl Fn(&str) -> bool) -> Vec<String> {
        let stdout = self.child_mut().stdout.take().expect("stdout piped");
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        for _ in 0..max_lines {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let line = line.trim_end().to_string();
            let stop = done(&line);
            lines.push(line);
            if stop {
                break;
            }
        }
        lines
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            if wait_bounded(&mut child, Duration::from_secs(15)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The configuration lines of a listing: comments and blank lines dropped.
pub fn config_lines(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// `GET path` over a fresh connection with `Connection: close`; returns the
/// response body, or the I/O error (connection refused when nothing listens).
/// A port on 127.0.0.1 where nothing listens (connects are refused): a
/// socket bound there that never listens, kept open for the rest of the
/// test process so that no test running beside it can take the port (a
/// listener bound and closed again would free it for anyone).
pub fn refused_addr() -> SocketAddr {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind 127.0.0.1:0");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("a bound address");
    // Kept open until the test process exits.
    std::mem::forget(socket);
    addr
}

/// One GET on a fresh connection: the status (0 when no response came)
/// and the body.
pub fn get_status(addr: SocketAddr, target: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    (status, body)
}

pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ktcpvs-test\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    if !text.starts_with("HTTP/1.") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {text:?}"),
        ));
    }
    match text.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.to_string()),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("response without a complete head: {text:?}"),
        )),
    }
}

/// Which demo server answered `path` (the first word of the body).
pub fn who_answers(addr: SocketAddr, path: &str) -> String {
    let body = http_get(addr, path).unwrap_or_else(|e| panic!("GET {path} via {addr}: {e}"));
    body.split_whitespace().next().unwrap_or("").to_string()
}

/// Retries `probe` up to `tries` times, 25 ms apart, until it returns true
/// (listeners open and close asynchronously to the control reply).
pub fn eventually(tries: usize, mut probe: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if probe() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// The host aliases that map r1, r2, r3 to `servers`.
pub fn alias_args(servers: &[NamedHttpServer]) -> Vec<String> {
    servers
        .iter()
        .flat_map(|s| {
            [
                "--host-alias".to_string(),
                format!("{}={}", s.name(), s.local_addr()),
            ]
        })
        .collect()
}

/// The `# configuration hash` line of a daemon's `tcpvsadm -L`.
pub fn hash_line(daemon: &Daemon) -> String {
    let listing = daemon.adm_ok(&["-L"]);
    listing
        .lines()
        .find(|l| l.starts_with("# configuration hash"))
        .unwrap_or_else(|| panic!("no hash line in {listing}"))
        .to_string()
}

/// A finished command's status and output, for assertion messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

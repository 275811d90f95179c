//! The operator's workflow end to end, with the real binaries: `ktcpvsd`
//! with three real HTTP servers behind it, driven by `tcpvsadm` exactly as
//! the original README drives the kernel module, and checked with a real
//! HTTP client.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use ktcpvs::core::endpoint::format_addr;
use ktcpvs::demo::NamedHttpServer;

/// The `--list` output the README's configuration must produce.
fn expected_listing(listen: SocketAddr, servers: &[NamedHttpServer]) -> Vec<String> {
    let a = |i: usize| format_addr(servers[i].local_addr(), false);
    let mut lines = vec![
        "Virtual http {".to_string(),
        format!("    listen = {}", format_addr(listen, false)),
        "    scheduler = http".to_string(),
        "    startservers = 8".to_string(),
        "    maxclients = 256".to_string(),
        "    minspareservers = 6".to_string(),
        "    maxspareservers = 18".to_string(),
    ];
    for i in 0..3 {
        lines.push(format!("    server = {} 1", a(i)));
    }
    for (pattern, i) in [("/images/.*", 0), ("/html/.*", 1), (".*", 2)] {
        lines.push(format!(
            "    rule = pattern \"{pattern}\" use server {}",
            a(i)
        ));
    }
    lines.push("}".to_string());
    lines
}

/// Runs the README's configuration commands verbatim (plus a free loopback
/// listen address, since 8080 may be taken).
fn configure_like_the_readme(daemon: &Daemon, listen: SocketAddr) {
    let listen = listen.to_string();
    daemon.adm_ok(&["-A", "-i", "http", "-s", "http", "-l", &listen]);
    daemon.adm_ok(&["-a", "-i", "http", "-r", "r1:80"]);
    daemon.adm_ok(&["-a", "-i", "http", "-r", "r2:80"]);
    daemon.adm_ok(&["-a", "-i", "http", "-r", "r3:80"]);
    daemon.adm_ok(&[
        "--add-rule",
        "-i",
        "http",
        "--pattern=/images/.*",
        "-r",
        "r1:80",
    ]);
    daemon.adm_ok(&[
        "--add-rule",
        "-i",
        "http",
        "--pattern=/html/.*",
        "-r",
        "r2:80",
    ]);
    daemon.adm_ok(&["--add-rule", "-i", "http", "--pattern=.*", "-r", "r3:80"]);
}

fn assert_routes(listen: SocketAddr) {
    assert!(
        eventually(200, || http_get(listen, "/").is_ok()),
        "service never answered on {listen}"
    );
    assert_eq!(who_answers(listen, "/images/logo.png"), "r1");
    assert_eq!(who_answers(listen, "/html/index.html"), "r2");
    assert_eq!(who_answers(listen, "/"), "r3");
    assert_eq!(who_answers(listen, "/other/page?q=1"), "r3");
}

fn refused(listen: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&listen, Duration::from_secs(2)).is_err()
}

#[test]
fn readme_sequence_routes_lists_restores_flushes_stops_and_starts() {
    let servers = three_servers();
    let aliases = alias_args(&servers);
    let alias_refs: Vec<&str> = aliases.iter().map(String::as_str).collect();
    let mut daemon = Daemon::start(&alias_refs);
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();

    // echo 2 > /proc/sys/net/ktcpvs/debug_level
    daemon.adm_ok(&["--sysctl", "debug_level=2"]);
    assert_eq!(
        daemon.adm_ok(&["--sysctl", "debug_level"]).trim(),
        "debug_level = 2"
    );

    configure_like_the_readme(&daemon, listen);
    let listing = daemon.adm_ok(&["--list"]);
    assert_eq!(
        config_lines(&listing),
        expected_listing(listen, &servers),
        "{listing}"
    );

    daemon.adm_ok(&["--start", "-i", "http"]);
    assert_routes(listen);

    // Save the listing, flush, and restore it with -f.
    let saved = daemon.dir.join("saved.conf");
    std::fs::write(&saved, &listing).unwrap();
    daemon.adm_ok(&["-F"]);
    assert!(config_lines(&daemon.adm_ok(&["--list"])).is_empty());
    assert!(
        eventually(200, || refused(listen)),
        "flush left the listener open"
    );
    daemon.adm_ok(&["-f", saved.to_str().unwrap()]);
    assert_eq!(
        config_lines(&daemon.adm_ok(&["--list"])),
        expected_listing(listen, &servers)
    );

    // --start / --stop
    daemon.adm_ok(&["--start", "-i", "http"]);
    assert_routes(listen);
    daemon.adm_ok(&["--stop", "-i", "http"]);
    assert!(
        eventually(200, || refused(listen)),
        "--stop left the listener open"
    );
    daemon.adm_ok(&["--start", "-i", "http"]);
    assert_routes(listen);
    // --start on a running service keeps it running (the original stopped it).
    daemon.adm_ok(&["--start", "-i", "http"]);
    assert_routes(listen);

    // The debug level took effect: configuration is logged at level 2.
    assert!(
        daemon.log_text().contains("control: add-rule http"),
        "configuration changes not logged at debug_level 2:\n{}",
        daemon.log_text()
    );

    // echo 1 > /proc/sys/net/ktcpvs/unload: drain and exit 0.
    daemon.adm_ok(&["--sysctl", "unload=1"]);
    let mut child = daemon.take_child();
    let status =
        wait_bounded(&mut child, Duration::from_secs(20)).expect("ktcpvsd exits after unload");
    assert!(status.success(), "unload exit status {status}");
    assert!(!daemon.socket.exists(), "socket file left behind");
    assert!(refused(listen));
}

#[test]
fn debug_level_changes_logging_live() {
    let daemon = Daemon::start(&[]);
    // At the default level 0, configuration changes are not logged.
    daemon.adm_ok(&["-A", "-i", "quiet", "-l", "127.0.0.1:9"]);
    daemon.adm_ok(&["--sysctl", "debug_level=2"]);
    daemon.adm_ok(&["-A", "-i", "loud", "-l", "127.0.0.1:9"]);
    assert_eq!(
        daemon.adm_ok(&["--sysctl", "debug_level"]).trim(),
        "debug_level = 2"
    );
    let all = daemon.adm_ok(&["--sysctl"]);
    assert!(all.lines().any(|l| l == "debug_level = 2"), "{all}");
    assert!(all.lines().any(|l| l == "read_timeout = 180"), "{all}");
    let log = daemon.log_text();
    assert!(!log.contains("add-service quiet"), "{log}");
    assert!(log.contains("add-service loud"), "{log}");
}

#[test]
fn bad_commands_change_nothing_and_exit_nonzero() {
    let servers = three_servers();
    let aliases = alias_args(&servers);
    let alias_refs: Vec<&str> = aliases.iter().map(String::as_str).collect();
    let daemon = Daemon::start(&alias_refs);
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    configure_like_the_readme(&daemon, listen);
    let before = daemon.adm_ok(&["-L", "-n"]);

    let bad_file = daemon.dir.join("bad.conf");
    std::fs::write(
        &bad_file,
        "Virtual other {\n    listen = 127.0.0.1:1\n    scheduler = wlc\n    frobnicate = 3\n}\n",
    )
    .unwrap();
    let missing_file = daemon.dir.join("missing.conf");
    let bad_file = bad_file.to_str().unwrap().to_string();
    let missing_file = missing_file.to_str().unwrap().to_string();

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["-A", "-i", "http", "-s", "http"],
            1,
            "Service already exists",
        ),
        (
            vec!["-A", "-i", "x", "-s", "nosuch"],
            1,
            "Scheduler not found",
        ),
        (
            vec!["-E", "-i", "http", "-s", "nosuch"],
            1,
            "Scheduler not found",
        ),
        (
            vec!["-E", "-i", "nosuch", "-s", "wlc"],
            1,
            "No such service",
        ),
        (vec!["-D", "-i", "nosuch"], 1, "No such service"),
        (
            vec!["-a", "-i", "nosuch", "-r", "r1:80"],
            1,
            "No such service",
        ),
        (
            vec!["-a", "-i", "http", "-r", "r1:80"],
            1,
            "Destination already exists",
        ),
        (
            vec!["-e", "-i", "http", "-r", "127.0.0.2:1"],
            1,
            "No such destination",
        ),
        (
            vec!["-d", "-i", "http", "-r", "r1:80"],
            1,
            "Destination is busy",
        ),
        (
            vec!["--add-rule", "-i", "http", "--pattern=(", "-r", "r1:80"],
            1,
            "pattern",
        ),
        (
            vec!["--add-rule", "-i", "http", "-p", "/x", "-r", "127.0.0.2:1"],
            1,
            "No such destination",
        ),
        (
            vec!["--del-rule", "-i", "http", "-p", "/nope", "-r", "r1:80"],
            1,
            "No such rule",
        ),
        (vec!["--sysctl", "debug_level=99"], 1, "debug_level"),
        (vec!["--sysctl", "nosuch=1"], 1, "unknown setting"),
        (vec!["-f", &bad_file], 1, "frobnicate"),
        (vec!["-f", &missing_file], 1, "opening error"),
        (
            vec!["-A"],
            2,
            "You need to supply the '-i' option for the '-A' command",
        ),
        (
            vec!["-F", "-i", "http"],
            2,
            "Illegal '-i' option with the '-F' command",
        ),
        (
            vec!["-a", "-i", "http", "-r", "r1:80", "-w", "70000"],
            2,
            "illegal weight",
        ),
        (vec!["-A", "-D", "-i", "http"], 2, ""),
        (vec!["--frobnicate"], 2, ""),
    ];
    for (args, code, wording) in &cases {
        let out = daemon.adm(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "tcpvsadm {args:?}: {stderr}"
        );
        assert!(stderr.contains(wording), "tcpvsadm {args:?} said: {stderr}");
        assert!(
            !stderr.trim().is_empty(),
            "tcpvsadm {args:?} gave no message"
        );
        assert_eq!(
            daemon.adm_ok(&["-L", "-n"]),
            before,
            "tcpvsadm {args:?} changed the configuration"
        );
    }
}

#[test]
fn edit_changes_only_the_fields_given() {
    let daemon = Daemon::start(&[]);
    daemon.adm_ok(&["-A", "-i", "web", "-s", "http", "-l", "127.0.0.1:7001"]);
    daemon.adm_ok(&["-a", "-i", "web", "-r", "127.0.0.1:7100", "-w", "3"]);
    daemon.adm_ok(&["-E", "-i", "web", "-s", "wlc"]);
    let l = daemon.adm_ok(&["-L", "-n", "-i", "web"]);
    assert!(l.contains("listen = 127.0.0.1:7001"), "{l}");
    assert!(l.contains("scheduler = wlc"), "{l}");
    assert!(l.contains("server = 127.0.0.1:7100 3"), "{l}");
    daemon.adm_ok(&["-E", "-i", "web", "-P", "7002"]);
    let l = daemon.adm_ok(&["-L", "-n", "-i", "web"]);
    assert!(l.contains("listen = 127.0.0.1:7002"), "{l}");
    assert!(l.contains("scheduler = wlc"), "{l}");
    daemon.adm_ok(&["-e", "-i", "web", "-r", "127.0.0.1:7100", "--weight", "0"]);
    let l = daemon.adm_ok(&["-L", "-n", "-i", "web"]);
    assert!(l.contains("server = 127.0.0.1:7100 0"), "{l}");
    assert!(
        !l.contains("TCP Virtual Server"),
        "single-service listing has no header: {l}"
    );
    daemon.adm_ok(&["-d", "-i", "web", "-r", "127.0.0.1:7100"]);
    daemon.adm_ok(&["-D", "-i", "web"]);
    assert!(config_lines(&daemon.adm_ok(&[])).is_empty());
}

#[test]
fn both_original_example_configs_load_and_serve() {
    let servers = three_servers();
    let daemon = Daemon::start(&[]);
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let web1: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (r1, r2, r3) = (
        servers[0].local_addr(),
        servers[1].local_addr(),
        servers[2].local_addr(),
    );
    // EXAMPLES and `config` of the original, addresses replaced by loopback ones.
    let text = format!(
        "Virtual web {{\n\
         \x20   listen = {web}\n\
         \x20   scheduler = hhttp\n\
         \x20   startservers = 8\n\
         \x20   maxclients = 256\n\
         \x20   minspareservers = 6\n\
         \x20   maxspareservers = 18\n\
         \x20   server = {r1} 1\n\
         \x20   rule = pattern \"/users/([^/]+)/.*\" match 1 use server {r1}\n\
         }}\n\
         Virtual web1 {{\n\
         \x20   listen = {web1}\n\
         \x20   scheduler = chttp\n\
         \x20   startservers = 8\n\
         \x20   maxclients = 256\n\
         \x20   minspareservers = 6\n\
         \x20   maxspareservers = 18\n\
         \x20   redirect = {r3}\n\
         \x20   server = {r2} 100\n\
         \x20   rule = pattern \".*\" use server {r2}\n\
         }}\n"
    );
    let file = daemon.dir.join("examples.conf");
    std::fs::write(&file, text).unwrap();
    daemon.adm_ok(&["-f", file.to_str().unwrap()]);
    let listing = daemon.adm_ok(&["-L", "-n"]);
    assert!(listing.contains("scheduler = hhttp"), "{listing}");
    assert!(listing.contains("match 1 use server"), "{listing}");
    assert!(listing.contains(&format!("redirect = {r3}")), "{listing}");
    daemon.adm_ok(&["--start"]);
    assert!(eventually(200, || http_get(web, "/users/bob/x").is_ok()));
    assert_eq!(who_answers(web, "/users/bob/home.html"), "r1");
    assert!(eventually(200, || http_get(web1, "/").is_ok()));
    assert_eq!(who_answers(web1, "/index.html"), "r2");
}

#[test]
fn sighup_reloads_the_config_file_atomically() {
    let dir = TempDir::new("hup");
    let conf = dir.join("ktcpvs.conf");
    let block = |name: &str, port: u16| {
        format!("Virtual {name} {{\n    listen = 127.0.0.1:{port}\n    scheduler = wlc\n    server = 127.0.0.1:7999 1\n}}\n")
    };
    std::fs::write(&conf, block("first", 7001)).unwrap();
    let mut daemon = Daemon::start(&["-f", conf.to_str().unwrap()]);
    assert!(daemon.adm_ok(&["-L"]).contains("Virtual first {"));

    std::fs::write(&conf, block("second", 7002)).unwrap();
    hangup(daemon.child_mut());
    assert!(
        eventually(200, || daemon.adm_ok(&["-L"]).contains("Virtual second {")),
        "SIGHUP did not reload: {}",
        daemon.log_text()
    );
    assert!(!daemon.adm_ok(&["-L"]).contains("Virtual first {"));

    // A broken file is refused whole; the running configuration stays.
    std::fs::write(
        &conf,
        format!("{}Virtual broken {{\n  listen =\n", block("third", 7003)),
    )
    .unwrap();
    hangup(daemon.child_mut());
    assert!(
        eventually(200, || daemon.log_text().contains("reload of")),
        "no reload attempt logged: {}",
        daemon.log_text()
    );
    let listing = daemon.adm_ok(&["-L"]);
    assert!(listing.contains("Virtual second {"), "{listing}");
    assert!(!listing.contains("third"), "{listing}");
}

#[test]
fn sigterm_stops_gracefully_and_removes_the_socket() {
    let mut daemon = Daemon::start(&[]);
    let mut child = daemon.take_child();
    terminate(&child);
    let status =
        wait_bounded(&mut child, Duration::from_secs(20)).expect("ktcpvsd stops on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!daemon.socket.exists());
}

#[test]
fn demo_answers_from_three_different_servers() {
    let mut daemon = Daemon::start(&["--demo"]);
    let lines = daemon.stdout_lines(40, |l| l.starts_with("Stop with"));
    let urls: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("curl "))
        .collect();
    assert_eq!(urls.len(), 3, "demo banner: {lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l.contains("tcpvsadm") && l.contains(daemon.socket.to_str().unwrap())));
    let mut answered = Vec::new();
    for url in urls {
        let rest = url.strip_prefix("http://").expect("http URL");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr: SocketAddr = host.parse().expect("numeric address in demo URL");
        answered.push(who_answers(addr, if path.is_empty() { "/" } else { path }));
    }
    assert_eq!(answered, ["r1", "r2", "r3"]);
}

#[test]
fn no_daemon_gives_one_clear_line() {
    let dir = TempDir::new("nodaemon");
    let out = std::process::Command::new(example("tcpvsadm"))
        .arg("--socket")
        .arg(dir.join("none.sock"))
        .arg("-L")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no ktcpvsd is running"), "{stderr}");
    assert!(
        stderr.contains("cargo run --release --example ktcpvsd"),
        "{stderr}"
    );
}

#[test]
fn help_lists_every_command_and_option() {
    let out = std::process::Command::new(example("tcpvsadm"))
        .arg("-h")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--add-service",
        "--edit-service",
        "--delete-service",
        "--flush",
        "--list",
        "--add-server",
        "--edit-server",
        "--delete-server",
        "--add-rule",
        "--del-rule",
        "--start",
        "--stop",
        "--load-configfile",
        "--ident",
        "--scheduler",
        "--port",
        "--listen",
        "--real-server",
        "--weight",
        "--pattern",
        "--match",
        "--numeric",
        "--socket",
        "--stats",
        "--sysctl",
        "-A",
        "-E",
        "-D",
        "-F",
        "-L",
        "-a",
        "-e",
        "-d",
        "-f",
        "-i",
        "-s",
        "-P",
        "-l",
        "-r",
        "-w",
        "-p",
        "-m",
        "-n",
        "-h",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}

#[test]
fn start_on_a_busy_address_fails_and_changes_nothing() {
    let daemon = Daemon::start(&[]);
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = holder.local_addr().unwrap().to_string();
    daemon.adm_ok(&["-A", "-i", "busy", "-s", "wlc", "-l", &busy]);
    let out = daemon.adm(&["--start", "-i", "busy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
    // Once the address is free, the same command works.
    drop(holder);
    daemon.adm_ok(&["--start", "-i", "busy"]);
    let addr: SocketAddr = busy.parse().unwrap();
    assert!(!refused(addr), "the service should now accept on {addr}");
}

#[test]
fn the_daemon_raises_its_open_file_limit_to_the_hard_limit() {
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("nofile");
    let socket = dir.join("ctl.sock");
    let mut command = std::process::Command::new(example("ktcpvsd"));
    command
        .arg("--socket")
        .arg(&socket)
        .args(["--workers", "1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the closure only calls getrlimit/setrlimit, which are
    // async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = limit.rlim_max.min(256);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("spawn ktcpvsd");
    assert!(
        eventually(400, || ktcpvs::control_socket::ControlClient::connect(
            &socket
        )
        .is_ok()),
        "the daemon did not start"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    terminate(&child);
    let _ = wait_bounded(&mut child, Duration::from_secs(15));
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert_eq!(
        numbers[0], numbers[1],
        "soft limit raised to the hard one: {line}"
    );
}

#[test]
fn health_checks_set_with_tcpvsadm_show_a_dead_server_down_in_the_stats() {
    let daemon = Daemon::start(&[]);
    let live = NamedHttpServer::start("live", "127.0.0.1:0".parse().unwrap()).unwrap();
    let dead = refused_addr();
    let listen = format!("127.0.0.1:{}", free_port());
    daemon.adm_ok(&["-A", "-i", "web", "-s", "p2c", "-l", &listen]);
    for s in [live.local_addr(), dead] {
        daemon.adm_ok(&["-a", "-i", "web", "-r", &s.to_string()]);
    }
    daemon.adm_ok(&[
        "-E",
        "-i",
        "web",
        "--health",
        "check=tcp",
        "--health",
        "check_interval=100ms",
        "--health",
        "check_fall=2",
        "--health",
        "queue=8",
    ]);
    daemon.adm_ok(&[
        "--server-limit",
        "-i",
        "web",
        "-r",
        &live.local_addr().to_string(),
        "-x",
        "50",
    ]);
    daemon.adm_ok(&["--start", "-i", "web"]);
    let dead_line = |stats: &str| {
        stats
            .lines()
            .find(|l| l.contains(&format!("server web {dead}")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        eventually(100, || dead_line(&daemon.adm_ok(&["-L", "-n", "--stats"]))
            .contains("state=down")),
        "{}",
        daemon.adm_ok(&["-L", "-n", "--stats"])
    );
    let stats = daemon.adm_ok(&["-L", "-n", "--stats"]);
    let line = dead_line(&stats);
    assert!(
        line.contains("healthy=no") && line.contains("changes=1"),
        "{line}"
    );
    assert!(line.contains("reason=\"connect:"), "{line}");
    assert!(stats.contains("maxconn=50"), "{stats}");
    // The listing keeps the settings, loadable as they are.
    let l = daemon.adm_ok(&["-L", "-n", "-i", "web"]);
    for want in [
        "check = tcp",
        "check_interval = 100ms",
        "check_fall = 2",
        "queue = 8",
        "maxconn 50",
    ] {
        assert!(l.contains(want), "{want}: {l}");
    }
    // Every request reaches the live server.
    let addr: SocketAddr = listen.parse().unwrap();
    for _ in 0..10 {
        assert_eq!(who_answers(addr, "/"), "live");
    }
    // A bad value is refused by tcpvsadm itself, naming it.
    let out = daemon.adm(&["-E", "-i", "web", "--health", "check_fall=0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("check_fall"));
}

#[test]
fn listing_several_daemons_shows_each_configuration_hash_so_drift_shows() {
    let (a, b) = (Daemon::start(&[]), Daemon::start(&[]));
    for d in [&a, &b] {
        d.adm_ok(&["-A", "-i", "web", "-s", "p2c", "-l", "127.0.0.1:7001"]);
        d.adm_ok(&["-a", "-i", "web", "-r", "127.0.0.1:7100"]);
    }
    let hash = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("# configuration hash "))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no hash in {text}"))
    };
    let (sa, sb) = (a.socket.to_str().unwrap(), b.socket.to_str().unwrap());
    let fleet = |args: &[&str]| {
        std::process::Command::new(example("tcpvsadm"))
            .args(["--socket", sa, "--socket", sb])
            .args(args)
            .output()
            .expect("run tcpvsadm")
    };
    let out = fleet(&["-L"]);
    assert!(out.status.success());
    let both = String::from_utf8(out.stdout).unwrap();
    let nodes: Vec<&str> = both.split("# node ").filter(|s| !s.is_empty()).collect();
    assert_eq!(nodes.len(), 2, "{both}");
    assert!(
        nodes[0].starts_with(sa) && nodes[1].starts_with(sb),
        "{both}"
    );
    assert_eq!(
        hash(nodes[0]),
        hash(nodes[1]),
        "same configuration, same hash"
    );
    // -n prints ports as numbers but hashes the same.
    assert_eq!(hash(&a.adm_ok(&["-L", "-n"])), hash(nodes[0]));
    // Drift: one node's weight changes.
    b.adm_ok(&["-e", "-i", "web", "-r", "127.0.0.1:7100", "-w", "2"]);
    let both = String::from_utf8(fleet(&["-L"]).stdout).unwrap();
    let nodes: Vec<&str> = both.split("# node ").filter(|s| !s.is_empty()).collect();
    assert_ne!(hash(nodes[0]), hash(nodes[1]), "{both}");
    // A change goes to both (tests/fleet.rs covers the refusals), and the
    // drift is gone.
    let out = fleet(&["-e", "-i", "web", "-r", "127.0.0.1:7100", "-w", "3"]);
    assert!(out.status.success(), "{out:?}");
    let both = String::from_utf8(fleet(&["-L"]).stdout).unwrap();
    let nodes: Vec<&str> = both.split("# node ").filter(|s| !s.is_empty()).collect();
    assert_eq!(hash(nodes[0]), hash(nodes[1]), "{both}");
    // What is neither a listing nor a change stays one daemon's.
    let out = fleet(&["--sysctl", "debug_level"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("several --socket"));
}

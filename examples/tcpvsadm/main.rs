//! `tcpvsadm`: the admin tool of ktcpvs, with the command line of the
//! original KTCPVS `tcpvsadm`. It builds control-socket requests, sends them
//! to a running `ktcpvsd`, and prints the replies; it holds no state.
//!
//! Exit status: 0 success; 1 refused by the daemon (or an unreadable or
//! malformed config file); 2 usage error; 3 the daemon cannot be reached.
//! The manual is `docs/tcpvsadm.md`.

mod cli;
mod render;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use ktcpvs::control_socket::{ClientError, ControlClient, Reply, Request};

use cli::{Action, Cli};

/// Exit status of a request the daemon refused.
const EXIT_REFUSED: u8 = 1;
/// Exit status of a usage error.
const EXIT_USAGE: u8 = 2;
/// Exit status when the daemon cannot be reached.
const EXIT_UNREACHABLE: u8 = 3;

/// Why a run failed, and so which exit status it has.
enum Failure {
    Refused(String),
    Unreachable(ClientError),
    Usage(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Unreachable(e)
    }
}

fn body_or_refusal(reply: Reply) -> Result<Vec<String>, Failure> {
    match reply {
        Reply::Ok(body) => Ok(body),
        Reply::Err { message, .. } => Err(Failure::Refused(message)),
    }
}

fn print_lines(lines: &[String]) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in lines {
        // A closed stdout (`tcpvsadm -L | head`) is not an error of ours.
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}

/// One daemon's listing: the header and configuration hash (for the
/// whole configuration), the configuration, and the counters with
/// `stats`; every line but the configuration's is a comment, so the
/// listing stays a loadable file.
fn listing(
    client: &mut ControlClient,
    service: Option<&str>,
    numeric: bool,
    stats: bool,
) -> Result<Vec<String>, Failure> {
    let service = service.map(str::to_string);
    let listing = body_or_refusal(client.request(&Request::List {
        service: service.clone(),
        numeric,
    })?)?;
    let mut lines = Vec::with_capacity(listing.len() + 2);
    if service.is_none() {
        lines.push(format!(
            "# TCP Virtual Server version {} (ktcpvs)",
            env!("CARGO_PKG_VERSION")
        ));
        // The hash is of the numeric form, so -n does not change it, and
        // two daemons with the same configuration show the same hash.
        let canonical = if numeric {
            listing.clone()
        } else {
            body_or_refusal(client.request(&Request::List {
                service: None,
                numeric: true,
            })?)?
        };
        let hash = xxhash_rust::xxh3::xxh3_64(canonical.join("\n").as_bytes());
        lines.push(format!("# configuration hash {hash:016x}"));
    }
    lines.extend(listing);
    if stats {
        let counters = body_or_refusal(client.request(&Request::Stats { service })?)?;
        lines.push("# live counters".to_string());
        lines.extend(counters.into_iter().map(|l| format!("# {l}")));
    }
    Ok(lines)
}

/// Connects to one daemon: a socket file, or a remote control listener
/// (`tcp://HOST:PORT`) with the token.
fn connect(cli: &Cli, target: &Path) -> Result<ControlClient, Failure> {
    let token = cli.token().map_err(Failure::Usage)?;
    Ok(ControlClient::connect_to(target, token.as_ref())?)
}

/// A change for several daemons.
enum Change {
    Request(Box<Request>),
    Load { file: String, text: String },
}

impl Change {
    fn send(&self, client: &mut ControlClient, check: bool) -> Result<Reply, ClientError> {
        match (self, check) {
            (Change::Request(r), false) => client.request(r),
            (Change::Request(r), true) => client.request(&Request::Check(r.clone())),
            (Change::Load { file, text }, false) => client.load(Some(file), text),
            (Change::Load { file, text }, true) => client.check_load(Some(file), text),
        }
    }
}

/// Makes one change on every daemon of `--socket`, as one: every node
/// checks it first (`check`), and it is applied only when all accept it;
/// one line per node says what each did. A node that refuses it after its
/// check (its configuration changed in between, or a listener cannot bind)
/// is reported, and the run fails saying the nodes now differ.
fn fleet(cli: &Cli, change: &Change) -> Result<(), Failure> {
    let sockets = cli.sockets();
    let mut clients = Vec::with_capacity(sockets.len());
    for path in &sockets {
        clients.push((path, connect(cli, path)?));
    }
    let mut lines = Vec::new();
    let mut refused = 0;
    for (path, client) in &mut clients {
        match change.send(client, true)? {
            Reply::Ok(_) => lines.push(format!("node {}: check ok", path.display())),
            Reply::Err { message, .. } => {
                refused += 1;
                lines.push(format!("node {}: check refused: {message}", path.display()));
            }
        }
    }
    if refused > 0 {
        print_lines(&lines);
        return Err(Failure::Refused(format!(
            "{refused} of {} node(s) refused the change; nothing was applied",
            clients.len()
        )));
    }
    let mut failed = 0;
    for (path, client) in &mut clients {
        match change.send(client, false)? {
            Reply::Ok(_) => lines.push(format!("node {}: applied", path.display())),
            Reply::Err { message, .. } => {
                failed += 1;
                lines.push(format!("node {}: apply refused: {message}", path.display()));
            }
        }
    }
    print_lines(&lines);
    if failed > 0 {
        return Err(Failure::Refused(format!(
            "applied on {} of {} node(s): the nodes now differ",
            clients.len() - failed,
            clients.len()
        )));
    }
    Ok(())
}

/// Reads a configuration file to send.
fn read_config(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::Refused(format!("config file {} opening error: {e}", path.display())))
}

/// `-f FILE --dry-run`: each daemon of `--socket` says what loading the
/// file would change (`plan`), printed in tcpvsadm's form after a
/// `# node PATH` line when there are several, or `# no change`; nothing is
/// applied. A daemon that would refuse the file has its refusal (naming
/// the file's line) on stderr, and the run fails.
fn dry_run(cli: &Cli, path: &Path) -> Result<(), Failure> {
    let text = read_config(path)?;
    let file = path.display().to_string();
    let sockets = cli.sockets();
    let several = sockets.len() > 1;
    let mut refusals = Vec::new();
    for target in &sockets {
        let mut client = connect(cli, target)?;
        let mut lines = Vec::new();
        if several {
            lines.push(format!("# node {}", target.display()));
        }
        match client.plan(Some(&file), &text)? {
            Reply::Ok(body) if body.is_empty() => lines.push("# no change".to_string()),
            Reply::Ok(body) => lines.extend(body.iter().map(|l| render::plan_line(l))),
            Reply::Err { message, .. } if several => {
                refusals.push(format!("node {}: {message}", target.display()))
            }
            Reply::Err { message, .. } => refusals.push(message),
        }
        print_lines(&lines);
    }
    match refusals.len() {
        0 => Ok(()),
        n if several => Err(Failure::Refused(format!(
            "{}\n{n} of {} node(s) would refuse the file",
            refusals.join("\n"),
            sockets.len()
        ))),
        _ => Err(Failure::Refused(refusals.join("\n"))),
    }
}

fn run(cli: &Cli, action: Action) -> Result<(), Failure> {
    let socket = cli.socket();
    let several = cli.sockets().len() > 1;
    match action {
        Action::DryRun(path) => dry_run(cli, &path),
        Action::Load(path) if several => {
            let text = read_config(&path)?;
            let file = path.display().to_string();
            fleet(cli, &Change::Load { file, text })
        }
        Action::Request(request) if several => fleet(cli, &Change::Request(request)),
        Action::Load(path) => {
            let text = read_config(&path)?;
            let mut client = connect(cli, &socket)?;
            let file = path.display().to_string();
            body_or_refusal(client.load(Some(&file), &text)?)?;
            Ok(())
        }
        Action::List {
            service,
            numeric,
            stats,
            json,
        } => {
            let sockets = cli.sockets();
            for path in &sockets {
                let mut lines = Vec::new();
                if sockets.len() > 1 {
                    lines.push(format!("# node {}", path.display()));
                }
                let mut client = connect(cli, path)?;
                if json {
                    let body = body_or_refusal(client.request(&Request::StatsJson {
                        service: service.clone(),
                    })?)?;
                    lines.extend(body);
                    print_lines(&lines);
                    continue;
                }
                lines.extend(listing(&mut client, service.as_deref(), numeric, stats)?);
                print_lines(&lines);
            }
            Ok(())
        }
        Action::Request(request) => {
            let mut client = connect(cli, &socket)?;
            let body = body_or_refusal(client.request(&request)?)?;
            print_lines(&body);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let action = match cli.action() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tcpvsadm: {e}");
            eprintln!("Try `tcpvsadm -h' or `tcpvsadm --help' for more information.");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(&cli, action) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(message)) => {
            eprintln!("{message}");
            ExitCode::from(EXIT_REFUSED)
        }
        Err(Failure::Unreachable(e)) => {
            eprintln!("tcpvsadm: {e}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("tcpvsadm: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

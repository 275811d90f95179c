//! The `ktcpvsd` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// A `NAME=ADDR:PORT` host alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAlias {
    /// The host name commands use (`r1`).
    pub name: String,
    /// The address it stands for.
    pub addr: SocketAddr,
}

fn parse_alias(text: &str) -> Result<HostAlias, String> {
    let (name, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not NAME=ADDR:PORT"))?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(format!("'{name}' is not a host name"));
    }
    let addr = addr
        .parse::<SocketAddr>()
        .map_err(|e| format!("'{addr}' is not an IP address with a port: {e}"))?;
    Ok(HostAlias {
        name: name.to_string(),
        addr,
    })
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{text}' is not NAME=VALUE"))
}

/// The parsed command line.
#[derive(Debug, Parser)]
#[command(
    name = "ktcpvsd",
    version,
    about = "The ktcpvs host program: runs the Layer-7 load balancer in the foreground and serves its control socket",
    after_help = "Signals: SIGTERM/SIGINT stop gracefully; SIGHUP reloads the -f file as one transaction, then the certificate files.\n\
        `tcpvsadm --sysctl unload=1` drains and stops the daemon.\n\
        Upgrade without downtime: start the new binary with --upgrade-from SOCKET.\n\
        Try it: cargo run --release --example ktcpvsd -- --demo"
)]
pub struct Options {
    /// Control socket path [default: $KTCPVS_SOCKET, else $XDG_RUNTIME_DIR/ktcpvs/control.sock, else /run/ktcpvs/control.sock for root, else /tmp/ktcpvs-UID/control.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Configuration file to load at start (and again on SIGHUP).
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Worker threads [default: the available parallelism].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Map a host name used in commands (`-r r1:80`) to a fixed address; repeatable.
    #[arg(long = "host-alias", value_name = "NAME=ADDR:PORT", value_parser = parse_alias)]
    pub host_alias: Vec<HostAlias>,
    /// Set a runtime setting at start (as `tcpvsadm --sysctl`); repeatable.
    #[arg(long = "sysctl", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub sysctl: Vec<(String, String)>,
    /// Start three demo real servers and the README's example service, then print what to try.
    #[arg(long)]
    pub demo: bool,
    /// With --demo: serve the example over HTTPS, with a self-signed certificate made at start.
    #[arg(long, requires = "demo")]
    pub tls: bool,
    /// Serve the status page (/), /metrics (Prometheus), /healthz and /stats (JSON) over HTTP on this address [default with --demo: 127.0.0.1, a free port].
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin: Option<SocketAddr>,
    /// Turn on the status page's actions (set a weight, drain, start, stop) for operators presenting the token in FILE: a file only its owner may read, holding 16 or more printable characters. Without it the admin listener is read-only.
    #[arg(long = "admin-token-file", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Also serve the control protocol over TCP on this address (loopback or a management network: the token travels in clear), to clients presenting the token of --control-token-file.
    #[arg(
        long = "control-listen",
        value_name = "ADDR:PORT",
        requires = "control_token_file"
    )]
    pub control_listen: Option<SocketAddr>,
    /// The shared token of --control-listen: a file only its owner may read, holding 16 or more printable characters.
    #[arg(
        long = "control-token-file",
        value_name = "FILE",
        requires = "control_listen"
    )]
    pub control_token_file: Option<PathBuf>,
    /// The DNS server that answers the `discover` names of the configuration [default: the system's, from /etc/resolv.conf].
    #[arg(long, value_name = "ADDR:PORT")]
    pub resolver: Option<SocketAddr>,
    /// Write an access log, one line per request, to FILE (`-`: stderr); its format is the `access_log` setting (switchable live; 1 common at start unless --sysctl says otherwise). SIGUSR1 or SIGHUP reopens FILE.
    #[arg(long = "access-log", value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Binary upgrade: take over the listening sockets, configuration and control socket of the ktcpvsd serving the control socket PATH, then tell it to finish its exchanges and exit (docs/deployment.md). The control socket is PATH unless --socket says otherwise.
    #[arg(long = "upgrade-from", value_name = "PATH", conflicts_with = "demo")]
    pub upgrade_from: Option<PathBuf>,
    /// With --upgrade-from: the seconds the old ktcpvsd gives its exchanges in flight before it closes what is left.
    #[arg(
        long = "upgrade-grace",
        value_name = "SECONDS",
        default_value_t = 10,
        requires = "upgrade_from"
    )]
    pub upgrade_grace: u64,
    /// The daemon's own log lines: plain text, or one JSON object per line.
    #[arg(long = "log-format", value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Options {
    /// The control socket path to use.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .or_else(|| self.upgrade_from.clone())
            .unwrap_or_else(ktcpvs::control_socket::default_socket_path)
    }
}

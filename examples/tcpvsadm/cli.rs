//! The `tcpvsadm` command line: every command and option of the original
//! tool, parsed with clap, checked against the original's table of which
//! options each command requires and allows, and turned into one
//! [`Action`].

use std::path::PathBuf;

use clap::{ArgGroup, Parser};
use ktcpvs::control_socket::explain::ExplainRequest;
use ktcpvs::control_socket::remote::Token;
use ktcpvs::control_socket::{Request, ServiceArgs, SysctlRequest};
use ktcpvs::core::endpoint::Endpoint;
use ktcpvs::core::model::{Discovery, ProxyVersion, MAX_MATCH_GROUP, MAX_WEIGHT};
use ktcpvs::core::network::Networks;
use ktcpvs::{BackendTls, CertificateFiles, ServiceSpec};

fn parse_weight(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(w) if w <= MAX_WEIGHT => Ok(w),
        _ => Err(format!(
            "illegal weight specified: '{text}' (0..{MAX_WEIGHT})"
        )),
    }
}

fn parse_match(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(m) if m <= MAX_MATCH_GROUP => Ok(m),
        _ => Err(format!(
            "illegal match number specified: '{text}' (0..{MAX_MATCH_GROUP})"
        )),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match ktcpvs::core::endpoint::parse_port(text) {
        Some(p) if p != 0 => Ok(p),
        _ => Err(format!("illegal server port specified: '{text}'")),
    }
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("'{text}' is not on or off")),
    }
}

/// A `--send-proxy` value: a version, or `off` (`None`).
#[derive(Debug, Clone, Copy)]
struct SendProxy(Option<ProxyVersion>);

fn parse_send_proxy(text: &str) -> Result<SendProxy, String> {
    match text {
        "off" => Ok(SendProxy(None)),
        _ => text
            .parse()
            .map(|v| SendProxy(Some(v)))
            .map_err(|e: ktcpvs::ControlError| e.to_string()),
    }
}

fn parse_networks(text: &str) -> Result<Networks, String> {
    text.parse()
        .map_err(|e: ktcpvs::ControlError| e.to_string())
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    text.parse::<Endpoint>()
        .map_err(|e| format!("illegal address:port specified: {e}"))
}

/// The parsed command line.
#[derive(Debug, Parser)]
#[command(
    name = "tcpvsadm",
    version,
    about = "Administer the virtual services of a running ktcpvsd (the KTCPVS admin tool)",
    long_about = "Administer the virtual services of a running ktcpvsd, the user-space KTCPVS \
                  Layer-7 load balancer. With no arguments, list every service.",
    after_help = "Examples:\n  \
        tcpvsadm -A -i http -s http -l 0.0.0.0:8080\n  \
        tcpvsadm -a -i http -r r1:80\n  \
        tcpvsadm --add-rule -i http --pattern=/images/.* -r r1:80\n  \
        tcpvsadm --start -i http\n  \
        tcpvsadm -L -n --stats\n  \
        tcpvsadm --sysctl debug_level=2\n\n\
        Exit status: 0 success; 1 refused by ktcpvsd or bad config file; 2 usage error; \
        3 ktcpvsd not reachable.\n\
        The manual is docs/tcpvsadm.md.",
    group(ArgGroup::new("command").multiple(false))
)]
pub struct Cli {
    /// Add a virtual service (needs -i; takes -s, -P, -l).
    #[arg(short = 'A', long = "add-service", group = "command")]
    add_service: bool,
    /// Edit a virtual service: only the fields given change (needs -i; takes -s, -P, -l).
    #[arg(short = 'E', long = "edit-service", group = "command")]
    edit_service: bool,
    /// Delete a virtual service with its servers and rules (needs -i).
    #[arg(short = 'D', long = "delete-service", group = "command")]
    delete_service: bool,
    /// Delete every virtual service.
    #[arg(short = 'F', long = "flush", group = "command")]
    flush: bool,
    /// List the configuration, in config-file syntax (takes -i, -n, --stats).
    #[arg(short = 'L', long = "list", group = "command")]
    list: bool,
    /// Add a real server (needs -i, -r; takes -w).
    #[arg(short = 'a', long = "add-server", group = "command")]
    add_server: bool,
    /// Change a real server's weight (needs -i, -r; takes -w).
    #[arg(short = 'e', long = "edit-server", group = "command")]
    edit_server: bool,
    /// Delete a real server (needs -i, -r).
    #[arg(short = 'd', long = "delete-server", group = "command")]
    delete_server: bool,
    /// Add a rule: requests matching the pattern go to the server (needs -i, -p, -r; takes -m), or the rule --rule writes.
    #[arg(long = "add-rule", group = "command")]
    add_rule: bool,
    /// Delete a rule/server pair (needs -i, -p, -r), or the rule --rule writes.
    #[arg(long = "del-rule", group = "command")]
    del_rule: bool,
    /// Start one service (-i), or all.
    #[arg(long = "start", group = "command")]
    start: bool,
    /// Stop one service (-i), or all.
    #[arg(long = "stop", group = "command")]
    stop: bool,
    /// Replace the whole configuration by a config file, atomically.
    #[arg(
        short = 'f',
        long = "load-configfile",
        value_name = "FILE",
        group = "command"
    )]
    load_configfile: Option<PathBuf>,
    /// With -f: print what loading the file would change, as the commands that make the same change (tcpvsadm lines, or control-socket requests where tcpvsadm has no flag), and apply nothing.
    #[arg(long = "dry-run", requires = "load_configfile")]
    dry_run: bool,
    /// Print every runtime setting, print one (NAME), or set one (NAME=VALUE).
    #[arg(
        long = "sysctl",
        value_name = "NAME[=VALUE]",
        group = "command",
        num_args = 0..=1,
        default_missing_value = ""
    )]
    sysctl: Option<String>,
    /// Take the node out gracefully: /healthz fails at once, ktcpvsd serves SECONDS more (default 10), then stops accepting, finishes its requests and exits.
    #[arg(
        long = "drain",
        value_name = "SECONDS",
        group = "command",
        num_args = 0..=1,
        default_missing_value = "10",
        value_parser = clap::value_parser!(u32).range(1..=3600)
    )]
    drain: Option<u32>,
    /// Read every TLS service's certificate files again (all or nothing).
    #[arg(long = "reload-certificates", group = "command")]
    reload_certificates: bool,
    /// Reach a real server over TLS (needs -i, -r; takes --tls-name, --tls-ca, --client-certificate, --client-key, --tls-off).
    #[arg(long = "server-tls", group = "command")]
    server_tls: bool,
    /// Limit a real server's connections or requests in flight (needs -i, -r, -x).
    #[arg(long = "server-limit", group = "command")]
    server_limit: bool,
    /// Explain what the running configuration would do with a request, 'METHOD TARGET' (takes -i, -H, --src): the matching rule, the conditions of earlier rules that failed, the candidates and the scheduler's pick now; nothing is sent to a server.
    #[arg(long = "explain", value_name = "METHOD TARGET", group = "command")]
    explain: Option<String>,
    /// Send a PROXY protocol header first on each connection to a real server (needs -i, -r, --send-proxy).
    #[arg(long = "server-proxy", group = "command")]
    server_proxy: bool,

    /// Service name.
    #[arg(short = 'i', long = "ident", value_name = "NAME")]
    ident: Option<String>,
    /// Scheduler: wlc, http, hhttp, phttp, chttp, rr, wrr, p2c or lrt.
    #[arg(short = 's', long = "scheduler", value_name = "NAME")]
    scheduler: Option<String>,
    /// Listen port (number or service name).
    #[arg(short = 'P', long = "port", value_name = "PORT", value_parser = parse_port)]
    port: Option<u16>,
    /// Listen address; without :PORT the port stays as it is (8080 for a new service).
    #[arg(short = 'l', long = "listen", value_name = "ADDR[:PORT]", value_parser = parse_endpoint)]
    listen: Option<Endpoint>,
    /// Real server; without :PORT the service's listen port is used.
    #[arg(short = 'r', long = "real-server", value_name = "HOST[:PORT]", value_parser = parse_endpoint)]
    real_server: Option<Endpoint>,
    /// Server weight, 0..65535 (0: no new connections); default 1.
    #[arg(short = 'w', long = "weight", value_name = "N", value_parser = parse_weight)]
    weight: Option<u32>,
    /// Rule pattern: an extended regular expression on the request URI.
    #[arg(
        short = 'p',
        long = "pattern",
        value_name = "REGEX",
        allow_hyphen_values = true
    )]
    pattern: Option<String>,
    /// Capture group the hashing schedulers key on, 0..10.
    #[arg(short = 'm', long = "match", value_name = "N", value_parser = parse_match)]
    match_group: Option<u32>,
    /// With --server-limit: most connections or requests in flight at once, 0..1000000 (0: no limit).
    #[arg(short = 'x', long = "max-connections", value_name = "N")]
    max_connections: Option<u32>,
    /// A health, ejection, slow-start, queue or retry-budget setting, KEY=VALUE (repeatable; -A, -E; docs/configuration.md lists the keys).
    #[arg(long = "health", value_name = "KEY=VALUE")]
    health: Vec<String>,
    /// Numeric ports in listings.
    #[arg(short = 'n', long = "numeric")]
    numeric: bool,
    /// Add live counters to the listing.
    #[arg(long = "stats")]
    stats: bool,
    /// With -L --stats: print the live figures as one JSON object instead (what the admin listener's /stats serves).
    #[arg(long = "json", requires = "stats")]
    json: bool,
    /// TLS certificate chain (PEM) the service serves, paired in order with --key; repeatable, the first is the default (-A, -E).
    #[arg(long = "certificate", value_name = "FILE")]
    certificate: Vec<PathBuf>,
    /// The private key (PEM) of the --certificate at the same position.
    #[arg(long = "key", value_name = "FILE")]
    key: Vec<PathBuf>,
    /// Turn TLS off: the service serves no certificate any more (-E).
    #[arg(long = "no-certificates", conflicts_with = "certificate")]
    no_certificates: bool,
    /// With --server-tls: the name the server's certificate must carry, sent as SNI [default: check its IP address, no SNI].
    #[arg(long = "tls-name", value_name = "NAME")]
    tls_name: Option<String>,
    /// With --server-tls: PEM file of the CAs to trust [default: the system's roots].
    #[arg(long = "tls-ca", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// With --server-tls: a client certificate (PEM) to present when the server asks, with --client-key.
    #[arg(long = "client-certificate", value_name = "FILE")]
    client_certificate: Option<PathBuf>,
    /// With --server-tls: the key of --client-certificate.
    #[arg(long = "client-key", value_name = "FILE")]
    client_key: Option<PathBuf>,
    /// With --server-tls: reach the server over plain TCP again.
    #[arg(long = "tls-off", conflicts_with_all = ["tls_name", "tls_ca", "client_certificate", "client_key"])]
    tls_off: bool,
    /// With --explain: a request header field, 'Name: value' (repeatable; Host names the host).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    header: Vec<String>,
    /// With --explain: the client's address [default: 127.0.0.1].
    #[arg(long = "src", value_name = "ADDR")]
    src: Option<std::net::IpAddr>,
    /// With --add-rule/--del-rule (and -i): the whole rule as a configuration file writes it after 'rule =', with conditions, a redirect, a fixed response or header edits (docs/configuration.md).
    #[arg(long = "rule", value_name = "STATEMENT", allow_hyphen_values = true)]
    rule: Option<String>,
    /// With --server-proxy: the PROXY protocol version to send, v1 or v2, or off.
    #[arg(long = "send-proxy", value_name = "v1|v2|off", value_parser = parse_send_proxy)]
    send_proxy: Option<SendProxy>,
    /// A DNS name whose addresses are real servers: "dns NAME:PORT [WEIGHT]" or "srv NAME [WEIGHT]" (repeatable, replacing the list; "none" clears it; -A, -E).
    #[arg(long = "discover", value_name = "DISCOVERY")]
    discover: Vec<String>,
    /// Networks trusted to send a PROXY protocol header, CIDR blocks separated by commas, or none (-A, -E).
    #[arg(long = "proxy-protocol", value_name = "NETWORKS", value_parser = parse_networks)]
    proxy_protocol: Option<Networks>,
    /// Whether a request's Host must agree with the TLS server name (-A, -E).
    #[arg(long = "sni-host-check", value_name = "on|off", value_parser = parse_on_off)]
    sni_host_check: Option<bool>,
    /// Serve HTTP/2 to clients: ALPN h2 on a TLS listener, h2c with prior knowledge on a plain one (-A, -E; docs/http2.md).
    #[arg(long = "http2", value_name = "on|off", value_parser = parse_on_off)]
    http2: Option<bool>,
    /// The control socket of ktcpvsd [default: $KTCPVS_SOCKET, else $XDG_RUNTIME_DIR/ktcpvs/control.sock, else /run/ktcpvs/control.sock for root, else /tmp/ktcpvs-UID/control.sock]. Repeatable with -L: each daemon's listing in turn, with its configuration hash.
    #[arg(long = "socket", value_name = "PATH")]
    socket: Vec<PathBuf>,
    /// The token of the remote control listeners named by --socket tcp://HOST:PORT [default: $KTCPVS_TOKEN].
    #[arg(long = "token-file", value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// What the invocation asks for, after checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send one request and report its result.
    Request(Box<Request>),
    /// List (one service or all), with live counters when `stats` is set.
    List {
        /// The service, or all.
        service: Option<String>,
        /// Numeric ports.
        numeric: bool,
        /// Add live counters.
        stats: bool,
        /// Print the figures as JSON instead.
        json: bool,
    },
    /// Load a config file (read here, sent as text).
    Load(PathBuf),
    /// Show what loading a config file would change, loading nothing.
    DryRun(PathBuf),
}

/// A command line that is well-formed for clap but not for the command it
/// names. Reported with the original's wording; exit status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// A required option is missing.
    #[error("You need to supply the '{option}' option for the '{command}' command")]
    Missing {
        /// The option.
        option: &'static str,
        /// The command.
        command: &'static str,
    },
    /// An option the command does not take.
    #[error("Illegal '{option}' option with the '{command}' command")]
    Illegal {
        /// The option.
        option: &'static str,
        /// The command.
        command: &'static str,
    },
    /// A `--sysctl` argument that is not `NAME` or `NAME=VALUE`.
    #[error("illegal setting specified: '{0}' (use NAME or NAME=VALUE)")]
    Setting(String),
    /// `--certificate` and `--key` given a different number of times.
    #[error("each certificate needs its key: {certificates} certificate(s), {keys} key(s)")]
    Unpaired {
        /// How many `--certificate`.
        certificates: usize,
        /// How many `--key`.
        keys: usize,
    },
    /// A file name that cannot be made absolute.
    #[error("illegal file name '{0}'")]
    File(String),
    /// Several `--socket` with a command that is neither a listing nor a
    /// change.
    #[error(
        "several --socket take a listing (-L) or a change (applied to all of them, or to none)"
    )]
    SeveralSockets,
    /// An `--explain` request that does not parse.
    #[error("--explain: {0}")]
    Explain(String),
    /// A `--discover` entry that does not parse.
    #[error("--discover: {0}")]
    Discover(String),
    /// A `--health` setting that does not parse.
    #[error("--health {0}")]
    Health(String),
}

/// The command a [`Cli`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    AddService,
    EditService,
    DeleteService,
    Flush,
    AddServer,
    EditServer,
    DeleteServer,
    AddRule,
    DelRule,
    AddRuleStatement,
    DelRuleStatement,
    Start,
    Stop,
    Load,
    Sysctl,
    ReloadCertificates,
    ServerTls,
    ServerLimit,
    ServerProxy,
    Explain,
    Drain,
    List,
}

/// A command's option rules: the flag that names it, and the options it
/// requires and allows, by their short names.
struct CommandRule {
    name: &'static str,
    required: &'static [&'static str],
    allowed: &'static [&'static str],
}

impl Verb {
    /// The original's table of which options this command requires and
    /// allows.
    fn rule(self) -> CommandRule {
        let (name, required, allowed): (_, &'static [_], &'static [_]) = match self {
            Verb::AddService => (
                "-A",
                &["-i"],
                &[
                    "-s",
                    "-P",
                    "-l",
                    "--certificate",
                    "--sni-host-check",
                    "--http2",
                    "--proxy-protocol",
                    "--discover",
                    "--health",
                ],
            ),
            Verb::EditService => (
                "-E",
                &["-i"],
                &[
                    "-s",
                    "-P",
                    "-l",
                    "--certificate",
                    "--no-certificates",
                    "--sni-host-check",
                    "--http2",
                    "--proxy-protocol",
                    "--discover",
                    "--health",
                ],
            ),
            Verb::DeleteService => ("-D", &["-i"], &[]),
            Verb::Flush => ("-F", &[], &[]),
            Verb::AddServer => ("-a", &["-i", "-r"], &["-w"]),
            Verb::EditServer => ("-e", &["-i", "-r"], &["-w"]),
            Verb::DeleteServer => ("-d", &["-i", "-r"], &[]),
            Verb::AddRule => ("--add-rule", &["-i", "-p", "-r"], &["-m"]),
            Verb::DelRule => ("--del-rule", &["-i", "-p", "-r"], &[]),
            Verb::AddRuleStatement => ("--add-rule", &["-i", "--rule"], &[]),
            Verb::DelRuleStatement => ("--del-rule", &["-i", "--rule"], &[]),
            Verb::Start => ("--start", &[], &["-i"]),
            Verb::Stop => ("--stop", &[], &["-i"]),
            Verb::Load => ("-f", &[], &["--dry-run"]),
            Verb::Sysctl => ("--sysctl", &[], &[]),
            Verb::ReloadCertificates => ("--reload-certificates", &[], &[]),
            Verb::ServerTls => (
                "--server-tls",
                &["-i", "-r"],
                &[
                    "--tls-name",
                    "--tls-ca",
                    "--client-certificate",
                    "--tls-off",
                ],
            ),
            Verb::ServerLimit => ("--server-limit", &["-i", "-r", "-x"], &[]),
            Verb::ServerProxy => ("--server-proxy", &["-i", "-r", "--send-proxy"], &[]),
            Verb::Explain => ("--explain", &[], &["-i", "-H", "--src"]),
            Verb::Drain => ("--drain", &[], &[]),
            Verb::List => ("-L", &[], &["-i", "-n", "--stats", "--json"]),
        };
        CommandRule {
            name,
            required,
            allowed,
        }
    }
}

impl Cli {
    /// The control socket path to use.
    pub fn socket(&self) -> PathBuf {
        self.socket
            .first()
            .cloned()
            .unwrap_or_else(ktcpvs::control_socket::default_socket_path)
    }

    /// The token for remote control listeners: `--token-file`, else
    /// `$KTCPVS_TOKEN`, else none.
    pub fn token(&self) -> Result<Option<Token>, String> {
        if let Some(file) = &self.token_file {
            return Token::from_file(file).map(Some).map_err(|e| e.to_string());
        }
        match std::env::var("KTCPVS_TOKEN") {
            Ok(text) if !text.is_empty() => Token::new(&text)
                .map(Some)
                .map_err(|e| format!("$KTCPVS_TOKEN: {e}")),
            _ => Ok(None),
        }
    }

    /// Every control socket given (the default one when none was).
    pub fn sockets(&self) -> Vec<PathBuf> {
        if self.socket.is_empty() {
            vec![self.socket()]
        } else {
            self.socket.clone()
        }
    }

    fn verb(&self) -> Verb {
        if self.add_service {
            Verb::AddService
        } else if self.edit_service {
            Verb::EditService
        } else if self.delete_service {
            Verb::DeleteService
        } else if self.flush {
            Verb::Flush
        } else if self.add_server {
            Verb::AddServer
        } else if self.edit_server {
            Verb::EditServer
        } else if self.delete_server {
            Verb::DeleteServer
        } else if self.add_rule && self.rule.is_some() {
            Verb::AddRuleStatement
        } else if self.del_rule && self.rule.is_some() {
            Verb::DelRuleStatement
        } else if self.add_rule {
            Verb::AddRule
        } else if self.del_rule {
            Verb::DelRule
        } else if self.start {
            Verb::Start
        } else if self.stop {
            Verb::Stop
        } else if self.load_configfile.is_some() {
            Verb::Load
        } else if self.sysctl.is_some() {
            Verb::Sysctl
        } else if self.reload_certificates {
            Verb::ReloadCertificates
        } else if self.server_tls {
            Verb::ServerTls
        } else if self.server_limit {
            Verb::ServerLimit
        } else if self.server_proxy {
            Verb::ServerProxy
        } else if self.explain.is_some() {
            Verb::Explain
        } else if self.drain.is_some() {
            Verb::Drain
        } else {
            // -L, or no command at all: list.
            Verb::List
        }
    }

    /// The options given, by their short names.
    fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        for (set, name) in [
            (self.ident.is_some(), "-i"),
            (self.scheduler.is_some(), "-s"),
            (self.port.is_some(), "-P"),
            (self.listen.is_some(), "-l"),
            (self.real_server.is_some(), "-r"),
            (self.weight.is_some(), "-w"),
            (self.pattern.is_some(), "-p"),
            (self.match_group.is_some(), "-m"),
            (self.numeric, "-n"),
            (self.stats, "--stats"),
            (self.json, "--json"),
            (
                !self.certificate.is_empty() || !self.key.is_empty(),
                "--certificate",
            ),
            (self.no_certificates, "--no-certificates"),
            (self.sni_host_check.is_some(), "--sni-host-check"),
            (self.http2.is_some(), "--http2"),
            (self.proxy_protocol.is_some(), "--proxy-protocol"),
            (self.rule.is_some(), "--rule"),
            (!self.header.is_empty(), "-H"),
            (self.src.is_some(), "--src"),
            (!self.discover.is_empty(), "--discover"),
            (self.send_proxy.is_some(), "--send-proxy"),
            (self.tls_name.is_some(), "--tls-name"),
            (self.tls_ca.is_some(), "--tls-ca"),
            (
                self.client_certificate.is_some() || self.client_key.is_some(),
                "--client-certificate",
            ),
            (self.tls_off, "--tls-off"),
            (self.max_connections.is_some(), "-x"),
            (!self.health.is_empty(), "--health"),
            (self.dry_run, "--dry-run"),
        ] {
            if set {
                given.push(name);
            }
        }
        given
    }

    /// Checks the options against the command and builds the action.
    pub fn action(&self) -> Result<Action, UsageError> {
        let verb = self.verb();
        self.check_options(verb)?;
        let request = self.request(verb)?;
        let change = request.as_ref().is_some_and(Request::is_change);
        if self.socket.len() > 1 && !matches!(verb, Verb::List | Verb::Load) && !change {
            return Err(UsageError::SeveralSockets);
        }
        Ok(match (request, verb) {
            (Some(request), _) => Action::Request(Box::new(request)),
            (None, Verb::Load) => {
                let path = self.load_configfile.clone().unwrap_or_default();
                if self.dry_run {
                    Action::DryRun(path)
                } else {
                    Action::Load(path)
                }
            }
            (None, _) => Action::List {
                service: self.ident.clone(),
                numeric: self.numeric,
                stats: self.stats,
                json: self.json,
            },
        })
    }

    /// Refuses a missing required option or one the command does not take.
    fn check_options(&self, verb: Verb) -> Result<(), UsageError> {
        let rule = verb.rule();
        let given = self.given();
        for option in rule.required {
            if !given.contains(option) {
                return Err(UsageError::Missing {
                    option,
                    command: rule.name,
                });
            }
        }
        for option in &given {
            if !rule.required.contains(option) && !rule.allowed.contains(option) {
                return Err(UsageError::Illegal {
                    option,
                    command: rule.name,
                });
            }
        }
        Ok(())
    }

    /// The control request of a command that sends one as it is; `None`
    /// for `--load-configfile` and `--list`, which do more.
    fn request(&self, verb: Verb) -> Result<Option<Request>, UsageError> {
        // Every required option was checked, so these are present where
        // the command needs them.
        let ident = || self.ident.clone().unwrap_or_default();
        let server = || {
            self.real_server.clone().unwrap_or(Endpoint {
                host: String::new(),
                port: None,
            })
        };
        let pattern = || self.pattern.clone().unwrap_or_default();
        let certificates = self.certificates()?;
        let health = self.health_settings()?;
        let discover = self.discoveries()?;
        let service_args = || ServiceArgs {
            spec: ServiceSpec {
                listen: self.listen.clone(),
                scheduler: self.scheduler.clone(),
                certificates: certificates.clone(),
                host_check: self.sni_host_check,
                http2: self.http2,
                proxy_protocol: self.proxy_protocol.clone(),
                discover: discover.clone(),
                health: health.clone(),
                ..Default::default()
            },
            port: self.port,
        };
        Ok(Some(match verb {
            Verb::AddService => Request::AddService {
                name: ident(),
                args: service_args(),
            },
            Verb::EditService => Request::EditService {
                name: ident(),
                args: service_args(),
            },
            Verb::DeleteService => Request::DeleteService { name: ident() },
            Verb::Flush => Request::Flush,
            Verb::AddServer => Request::AddServer {
                service: ident(),
                server: server(),
                weight: self.weight,
            },
            Verb::EditServer => Request::EditServer {
                service: ident(),
                server: server(),
                weight: self.weight,
            },
            Verb::DeleteServer => Request::DeleteServer {
                service: ident(),
                server: server(),
            },
            Verb::AddRule => Request::AddRule {
                service: ident(),
                pattern: pattern(),
                match_group: self.match_group,
                server: server(),
            },
            Verb::DelRule => Request::DeleteRule {
                service: ident(),
                pattern: pattern(),
                server: server(),
            },
            Verb::Explain => self.explain_request()?,
            Verb::AddRuleStatement => Request::AddRuleStatement {
                service: ident(),
                statement: self.rule.clone().unwrap_or_default(),
            },
            Verb::DelRuleStatement => Request::DeleteRuleStatement {
                service: ident(),
                statement: self.rule.clone().unwrap_or_default(),
            },
            Verb::Start => Request::Start {
                service: self.ident.clone(),
            },
            Verb::Stop => Request::Stop {
                service: self.ident.clone(),
            },
            Verb::Sysctl => Request::Sysctl(sysctl_request(self.sysctl.as_deref().unwrap_or(""))?),
            Verb::ReloadCertificates => Request::ReloadCertificates,
            Verb::ServerTls => Request::SetServerTls {
                service: ident(),
                server: server(),
                tls: self.backend_tls()?,
            },
            Verb::Drain => Request::Sysctl(SysctlRequest::Set(
                "drain".into(),
                self.drain.unwrap_or(10).to_string(),
            )),
            Verb::ServerLimit => Request::SetServerLimit {
                service: ident(),
                server: server(),
                maxconn: self.max_connections.unwrap_or(0),
            },
            Verb::ServerProxy => Request::SetServerProxy {
                service: ident(),
                server: server(),
                version: self.send_proxy.and_then(|p| p.0),
            },
            Verb::Load | Verb::List => return Ok(None),
        }))
    }

    /// The `explain` request of `--explain 'METHOD TARGET'`, `-H` and
    /// `--src`.
    fn explain_request(&self) -> Result<Request, UsageError> {
        let text = self.explain.clone().unwrap_or_default();
        let mut words = text.split_whitespace();
        let (Some(method), Some(target), None) = (words.next(), words.next(), words.next()) else {
            return Err(UsageError::Explain(format!(
                "'{text}' is not 'METHOD TARGET'"
            )));
        };
        let mut headers = Vec::new();
        for field in &self.header {
            let Some((name, value)) = field.split_once(':') else {
                return Err(UsageError::Explain(format!(
                    "-H '{field}' is not 'Name: value'"
                )));
            };
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let ip = self.src.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        Ok(Request::Explain {
            service: self.ident.clone(),
            request: ExplainRequest {
                method: method.to_string(),
                target: target.to_string(),
                headers,
                client: std::net::SocketAddr::new(ip, 0),
            },
        })
    }

    /// The `--discover` entries: `None` when not given, an empty list for
    /// `none`.
    fn discoveries(&self) -> Result<Option<Vec<Discovery>>, UsageError> {
        if self.discover.is_empty() {
            return Ok(None);
        }
        if self.discover.iter().any(|d| d == "none") {
            return Ok(Some(Vec::new()));
        }
        self.discover
            .iter()
            .map(|d| {
                d.parse()
                    .map_err(|e: ktcpvs::ControlError| UsageError::Discover(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The `--health KEY=VALUE` settings, each checked here so a typo is a
    /// usage error before anything is sent.
    fn health_settings(&self) -> Result<Vec<(String, String)>, UsageError> {
        self.health
            .iter()
            .map(|text| {
                let (key, value) = text
                    .split_once('=')
                    .ok_or_else(|| UsageError::Health(format!("{text}: expected KEY=VALUE")))?;
                ktcpvs::core::health::HealthConfig::default()
                    .set(key, value)
                    .map_err(|e| UsageError::Health(e.to_string()))?;
                Ok((key.to_string(), value.to_string()))
            })
            .collect()
    }

    /// The TLS settings of `--server-tls`: `None` with `--tls-off`; files
    /// made absolute here.
    fn backend_tls(&self) -> Result<Option<BackendTls>, UsageError> {
        if self.tls_off {
            return Ok(None);
        }
        let absolute = |p: &PathBuf| {
            std::path::absolute(p).map_err(|_| UsageError::File(p.display().to_string()))
        };
        let certificate = match (&self.client_certificate, &self.client_key) {
            (Some(chain), Some(key)) => Some(CertificateFiles {
                chain: absolute(chain)?,
                key: absolute(key)?,
            }),
            (None, None) => None,
            (chain, key) => {
                return Err(UsageError::Unpaired {
                    certificates: usize::from(chain.is_some()),
                    keys: usize::from(key.is_some()),
                })
            }
        };
        Ok(Some(BackendTls {
            name: self.tls_name.clone(),
            ca: self.tls_ca.as_ref().map(absolute).transpose()?,
            certificate,
        }))
    }

    /// The certificate list of `-A`/`-E`: `--certificate` and `--key`
    /// paired in order, made absolute here (ktcpvsd runs elsewhere);
    /// `Some(empty)` for `--no-certificates`; `None` when not given.
    fn certificates(&self) -> Result<Option<Vec<CertificateFiles>>, UsageError> {
        if self.no_certificates {
            return Ok(Some(Vec::new()));
        }
        if self.certificate.len() != self.key.len() {
            return Err(UsageError::Unpaired {
                certificates: self.certificate.len(),
                keys: self.key.len(),
            });
        }
        if self.certificate.is_empty() {
            return Ok(None);
        }
        let absolute = |p: &PathBuf| {
            std::path::absolute(p).map_err(|_| UsageError::File(p.display().to_string()))
        };
        let mut list = Vec::with_capacity(self.certificate.len());
        for (chain, key) in self.certificate.iter().zip(&self.key) {
            list.push(CertificateFiles {
                chain: absolute(chain)?,
                key: absolute(key)?,
            });
        }
        Ok(Some(list))
    }
}

fn sysctl_request(text: &str) -> Result<SysctlRequest, UsageError> {
    let valid_name =
        |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if text.is_empty() {
        return Ok(SysctlRequest::All);
    }
    match text.split_once('=') {
        None if valid_name(text) => Ok(SysctlRequest::Get(text.to_string())),
        Some((name, value)) if valid_name(name) && !value.trim().is_empty() => Ok(
            SysctlRequest::Set(name.to_string(), value.trim().to_string()),
        ),
        _ => Err(UsageError::Setting(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(args: &[&str]) -> Result<Action, String> {
        let mut argv = vec!["tcpvsadm"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        cli.action().map_err(|e| e.to_string())
    }

    fn request(args: &[&str]) -> Request {
        match action(args) {
            Ok(Action::Request(r)) => *r,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn the_readme_commands_parse() {
        assert!(matches!(
            request(&["-A", "-i", "http", "-s", "http"]),
            Request::AddService { .. }
        ));
        assert!(matches!(
            request(&["-a", "-i", "http", "-r", "r1:80"]),
            Request::AddServer { weight: None, .. }
        ));
        match request(&[
            "--add-rule",
            "-i",
            "http",
            "--pattern=/images/.*",
            "-r",
            "r1:80",
        ]) {
            Request::AddRule { pattern, .. } => assert_eq!(pattern, "/images/.*"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            action(&["--list"]).unwrap(),
            Action::List { service: None, .. }
        ));
        assert!(matches!(action(&[]).unwrap(), Action::List { .. }));
        assert!(matches!(
            action(&["-f", "x.conf"]).unwrap(),
            Action::Load(_)
        ));
        assert_eq!(
            action(&["-f", "x.conf", "--dry-run"]).unwrap(),
            Action::DryRun("x.conf".into())
        );
        assert!(action(&["-L", "--dry-run"]).is_err());
        assert_eq!(request(&["-F"]), Request::Flush);
        assert_eq!(
            request(&["--start", "-i", "http"]),
            Request::Start {
                service: Some("http".into())
            }
        );
        assert_eq!(request(&["--stop"]), Request::Stop { service: None });
    }

    #[test]
    fn the_original_bugs_are_fixed() {
        // -w works, --listen takes a value, --start starts.
        assert!(matches!(
            request(&["-a", "-i", "h", "-r", "r1:80", "-w", "3"]),
            Request::AddServer {
                weight: Some(3),
                ..
            }
        ));
        match request(&["-A", "-i", "h", "--listen", "127.0.0.1:81"]) {
            Request::AddService { args, .. } => {
                assert_eq!(args.spec.listen.unwrap().port, Some(81))
            }
            other => panic!("{other:?}"),
        }
        // -l is legal with -E.
        assert!(action(&["-E", "-i", "h", "-l", "127.0.0.1"]).is_ok());
    }

    #[test]
    fn usage_errors_use_the_original_wording() {
        assert_eq!(
            action(&["-A"]).unwrap_err(),
            "You need to supply the '-i' option for the '-A' command"
        );
        assert_eq!(
            action(&["-F", "-i", "x"]).unwrap_err(),
            "Illegal '-i' option with the '-F' command"
        );
        assert_eq!(
            action(&["--add-rule", "-i", "x", "-r", "r1"]).unwrap_err(),
            "You need to supply the '-p' option for the '--add-rule' command"
        );
        assert!(action(&["-A", "-D", "-i", "x"])
            .unwrap_err()
            .contains("cannot be used"));
        assert!(action(&["-a", "-i", "x", "-r", "r1", "-w", "70000"])
            .unwrap_err()
            .contains("illegal weight specified"));
        assert!(
            action(&["--add-rule", "-i", "x", "-p", "a", "-r", "r", "-m", "11"])
                .unwrap_err()
                .contains("illegal match number specified")
        );
        assert!(action(&["-a", "-i", "x", "-r", "r1:nosuch"])
            .unwrap_err()
            .contains("illegal address:port specified"));
        assert!(action(&["--sysctl", "=1"]).is_err());
    }

    #[test]
    fn sysctl_forms() {
        assert_eq!(request(&["--sysctl"]), Request::Sysctl(SysctlRequest::All));
        assert_eq!(
            request(&["--sysctl", "debug_level"]),
            Request::Sysctl(SysctlRequest::Get("debug_level".into()))
        );
        assert_eq!(
            request(&["--sysctl", "debug_level=2"]),
            Request::Sysctl(SysctlRequest::Set("debug_level".into(), "2".into()))
        );
    }

    #[test]
    fn proxy_protocol_options() {
        assert_eq!(
            request(&[
                "--server-proxy",
                "-i",
                "web",
                "-r",
                "r1:80",
                "--send-proxy",
                "v2"
            ]),
            Request::SetServerProxy {
                service: "web".into(),
                server: "r1:80".parse().unwrap(),
                version: Some(ProxyVersion::V2),
            }
        );
        assert_eq!(
            request(&[
                "--server-proxy",
                "-i",
                "web",
                "-r",
                "r1:80",
                "--send-proxy",
                "off"
            ]),
            Request::SetServerProxy {
                service: "web".into(),
                server: "r1:80".parse().unwrap(),
                version: None,
            }
        );
        assert!(action(&["--server-proxy", "-i", "web", "-r", "r1:80"]).is_err());
        let Request::EditService { args, .. } = request(&[
            "-E",
            "-i",
            "web",
            "--proxy-protocol",
            "10.0.0.0/8,127.0.0.1",
        ]) else {
            panic!("not an edit");
        };
        assert_eq!(
            args.spec.proxy_protocol.unwrap().to_string(),
            "10.0.0.0/8,127.0.0.1/32"
        );
        let Request::EditService { args, .. } = request(&[
            "-E",
            "-i",
            "web",
            "--discover",
            "dns a.test:80 2",
            "--discover",
            "srv _http._tcp.b.test",
        ]) else {
            panic!("not an edit");
        };
        let list: Vec<String> = args
            .spec
            .discover
            .unwrap()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(list, ["dns a.test:80 2", "srv _http._tcp.b.test 1"]);
        assert!(action(&["-E", "-i", "web", "--discover", "dns a.test"]).is_err());
    }

    #[test]
    fn health_settings_and_server_limits() {
        match request(&[
            "-E",
            "-i",
            "web",
            "--health",
            "check=http",
            "--health",
            "check_interval=500ms",
        ]) {
            Request::EditService { args, .. } => assert_eq!(
                args.spec.health,
                [
                    ("check".to_string(), "http".to_string()),
                    ("check_interval".to_string(), "500ms".to_string())
                ]
            ),
            other => panic!("{other:?}"),
        }
        let bad = action(&["-E", "-i", "web", "--health", "check_interval=5"]).unwrap_err();
        assert!(bad.contains("check_interval"), "{bad}");
        assert!(action(&["-E", "-i", "web", "--health", "nokey"]).is_err());
        assert!(action(&["-a", "-i", "web", "-r", "r1:80", "--health", "queue=1"]).is_err());
        assert_eq!(
            request(&["--server-limit", "-i", "web", "-r", "r1:80", "-x", "100"]),
            Request::SetServerLimit {
                service: "web".into(),
                server: "r1:80".parse().unwrap(),
                maxconn: 100
            }
        );
        assert_eq!(
            action(&["--server-limit", "-i", "web", "-r", "r1:80"]).unwrap_err(),
            "You need to supply the '-x' option for the '--server-limit' command"
        );
    }

    #[test]
    fn server_tls_forms() {
        match request(&[
            "--server-tls",
            "-i",
            "web",
            "-r",
            "10.0.0.1:443",
            "--tls-name",
            "api.internal",
            "--tls-ca",
            "/etc/ca.pem",
        ]) {
            Request::SetServerTls { tls: Some(t), .. } => {
                assert_eq!(t.name.as_deref(), Some("api.internal"));
                assert_eq!(t.ca, Some("/etc/ca.pem".into()));
                assert!(t.certificate.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            request(&["--server-tls", "-i", "web", "-r", "r1:443", "--tls-off"]),
            Request::SetServerTls { tls: None, .. }
        ));
        let unpaired = action(&[
            "--server-tls",
            "-i",
            "web",
            "-r",
            "r1:443",
            "--client-certificate",
            "c.pem",
        ]);
        assert!(unpaired.unwrap_err().contains("needs its key"));
        assert!(action(&["--server-tls", "-i", "web"]).is_err());
        assert!(action(&["-a", "-i", "web", "-r", "r1", "--tls-name", "x"]).is_err());
    }
}

//! Requests: [`Request`] and its field types, parsed from one request line
//! and formatted back into one (`Display`), plus [`VERBS`], the list `help`
//! prints. Parsing reads the words through the private `Args` reader of
//! `words.rs`; formatting quotes values with its `quote_if_needed`.

use std::fmt::{self, Write as _};

use ktcpvs_core::control::{Command, ServiceSpec};
use ktcpvs_core::endpoint::Endpoint;
use ktcpvs_core::model::{format_upgrade_list, parse_upgrade_list, ErrorPage, ProxyVersion};
use ktcpvs_core::{BackendTls, CertificateFiles};

use super::words::{parse_value, quote_if_needed, split_words, Args};
use super::ProtocolError;
use crate::control_socket::explain::ExplainRequest;

/// What a `sysctl` request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlRequest {
    /// Every setting with its value.
    All,
    /// One setting's value.
    Get(String),
    /// Set one setting.
    Set(String, String),
}

/// The fields of an `add-service` or `edit-service` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceArgs {
    /// The service fields, as the control API takes them.
    pub spec: ServiceSpec,
    /// A listen port given on its own (`port=N`, `tcpvsadm -P`): it replaces
    /// the port of `listen`, or of the current listen address when `listen`
    /// is absent.
    pub port: Option<u16>,
}

/// One request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `explain [SERVICE] method=M target=T [header.N="Name: value"]…
    /// [src=ADDR]`: what the service would do with the request, nothing
    /// sent to a server (see [`explain`](crate::control_socket::explain)).
    Explain {
        /// The service; the only one when omitted.
        service: Option<String>,
        /// The request, as the explanation takes it.
        request: ExplainRequest,
    },
    /// `check REQUEST`: whether a change (or with `load`, a configuration
    /// text) would apply, applying nothing: the first phase of a change
    /// made to several daemons at once.
    Check(Box<Request>),
    /// `add-service NAME [key=value…]`.
    AddService {
        /// The service name.
        name: String,
        /// Its fields.
        args: ServiceArgs,
    },
    /// `edit-service NAME [key=value…]`: only the given fields change.
    EditService {
        /// The service name.
        name: String,
        /// The fields to change.
        args: ServiceArgs,
    },
    /// `delete-service NAME`.
    DeleteService {
        /// The service name.
        name: String,
    },
    /// `flush`: delete every service.
    Flush,
    /// `add-server SERVICE server=ADDR [weight=N]`.
    AddServer {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
        /// Its weight.
        weight: Option<u32>,
    },
    /// `edit-server SERVICE server=ADDR [weight=N]`.
    EditServer {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
        /// Its new weight.
        weight: Option<u32>,
    },
    /// `delete-server SERVICE server=ADDR`.
    DeleteServer {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
    },
    /// `add-rule SERVICE pattern=P server=ADDR [match=N]`.
    AddRule {
        /// The service.
        service: String,
        /// The pattern.
        pattern: String,
        /// The capture group hashing schedulers key on.
        match_group: Option<u32>,
        /// The server.
        server: Endpoint,
    },
    /// `add-rule SERVICE rule="STATEMENT"`: a rule in the form a
    /// configuration file writes after `rule =`, with conditions, a
    /// redirect or fixed response, or header edits.
    AddRuleStatement {
        /// The service.
        service: String,
        /// The rule statement.
        statement: String,
    },
    /// `delete-rule SERVICE rule="STATEMENT"`: removes the statement's
    /// server from its rule (the rule goes with its last server), or a
    /// redirect or fixed response rule.
    DeleteRuleStatement {
        /// The service.
        service: String,
        /// The rule statement.
        statement: String,
    },
    /// `delete-rule SERVICE pattern=P server=ADDR`.
    DeleteRule {
        /// The service.
        service: String,
        /// The pattern.
        pattern: String,
        /// The server.
        server: Endpoint,
    },
    /// `start [SERVICE]`.
    Start {
        /// The service, or all.
        service: Option<String>,
    },
    /// `stop [SERVICE]`.
    Stop {
        /// The service, or all.
        service: Option<String>,
    },
    /// `list [-n] [SERVICE]`: the configuration in config-file syntax.
    List {
        /// The service, or all.
        service: Option<String>,
        /// Numeric ports.
        numeric: bool,
    },
    /// `stats [SERVICE]`: live counters.
    Stats {
        /// The service, or all.
        service: Option<String>,
    },
    /// `stats-json [SERVICE]`: the live figures as one line of JSON (what
    /// the admin listener's `/stats` serves).
    StatsJson {
        /// The service, or all.
        service: Option<String>,
    },
    /// `sysctl [NAME[=VALUE]]`.
    Sysctl(SysctlRequest),
    /// `load [file=NAME]`, followed by configuration text and a `.` line.
    Load {
        /// The file name, for error messages only.
        file: Option<String>,
    },
    /// `plan [file=NAME]`, followed by configuration text and a `.` line:
    /// what loading the text would change, as request lines (one per
    /// change, in the order to make them), applying nothing.
    Plan {
        /// The file name, for error messages only.
        file: Option<String>,
    },
    /// `server-tls SERVICE server=ADDR [name=NAME] [ca=FILE]
    /// [client_certificate=FILE client_key=FILE]` or `… tls=off`: how the
    /// proxy reaches one real server over TLS, or plain TCP again.
    SetServerTls {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
        /// Its TLS settings; `None`: plain TCP.
        tls: Option<BackendTls>,
    },
    /// `server-limit SERVICE server=ADDR maxconn=N`: the most connections
    /// or requests in flight one real server takes (0: no limit).
    SetServerLimit {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
        /// The limit; 0 removes it.
        maxconn: u32,
    },
    /// `server-proxy SERVICE server=ADDR send_proxy=v1|v2|off`: whether a
    /// PROXY protocol header goes first on each connection to a server.
    SetServerProxy {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
        /// The version; `None`: no header.
        version: Option<ProxyVersion>,
    },
    /// `reload-certificates`: read every TLS service's certificate files
    /// again (all or nothing).
    ReloadCertificates,
    /// `handover`: a new `ktcpvsd` takes over this one's listening
    /// sockets (passed with the reply as `SCM_RIGHTS`) and configuration;
    /// see [`handover`](crate::control_socket::handover).
    Handover,
    /// `handover-done [grace=S]`: the new daemon serves; this one stops
    /// accepting, finishes its exchanges within `grace` seconds and exits.
    /// Only valid right after a `handover` reply on the same connection.
    HandoverDone {
        /// Seconds the old daemon gives its exchanges in flight (its own
        /// default when absent).
        grace: Option<u64>,
    },
    /// `ping`: answers `OK`.
    Ping,
    /// `help`: the list of verbs.
    Help,
    /// `quit`: the daemon answers `OK` and closes the connection.
    Quit,
}

/// Every verb, with its synopsis, in the order `help` lists them.
pub const VERBS: &[(&str, &str)] = &[
    ("add-service", "add-service NAME [listen=ADDR[:PORT]] [port=N] [scheduler=NAME] [startservers=N] [maxclients=N] [minspareservers=N] [maxspareservers=N] [redirect=ADDR[:PORT]|none] [connect_timeout=S] [read_timeout=S] [keepalive_timeout=S] [header_timeout=S] [response_timeout=S] [forwardfor=on|off] [http2=on|off] [upgrade=PROTO,...|none] [certificate.N=CHAIN certificate_key.N=KEY ...|certificate=none] [sni_host_check=on|off] [proxy_protocol=NETWORKS|none] [discover=\"dns NAME:PORT [W],srv NAME [W]\"|none] [option.NAME=VALUE] [health.KEY=VALUE]"),
    ("edit-service", "edit-service NAME [the keys of add-service; option.NAME=none removes an option]"),
    ("delete-service", "delete-service NAME"),
    ("flush", "flush"),
    ("add-server", "add-server SERVICE server=HOST[:PORT] [weight=N]"),
    ("edit-server", "edit-server SERVICE server=HOST[:PORT] [weight=N]"),
    ("delete-server", "delete-server SERVICE server=HOST[:PORT]"),
    ("add-rule", "add-rule SERVICE pattern=REGEX server=HOST[:PORT] [match=N] | rule=\"STATEMENT\" (as after 'rule =' in a file)"),
    ("delete-rule", "delete-rule SERVICE pattern=REGEX server=HOST[:PORT] | rule=\"STATEMENT\""),
    ("start", "start [SERVICE]"),
    ("stop", "stop [SERVICE]"),
    ("list", "list [-n] [SERVICE]"),
    ("stats", "stats [SERVICE]"),
    ("stats-json", "stats-json [SERVICE]"),
    ("sysctl", "sysctl [NAME[=VALUE]]"),
    ("load", "load [file=NAME]   (then the configuration text, then a line '.')"),
    ("server-tls", "server-tls SERVICE server=HOST[:PORT] [name=NAME] [ca=FILE] [client_certificate=FILE client_key=FILE] | tls=off"),
    ("server-limit", "server-limit SERVICE server=HOST[:PORT] maxconn=N (0: no limit)"),
    ("server-proxy", "server-proxy SERVICE server=HOST[:PORT] send_proxy=v1|v2|off"),
    ("reload-certificates", "reload-certificates"),
    ("handover", "handover   (binary upgrade: the listening sockets as SCM_RIGHTS, then 'handover-done')"),
    ("handover-done", "handover-done [grace=S]"),
    ("ping", "ping"),
    ("help", "help"),
    ("quit", "quit"),
    ("explain", "explain [SERVICE] method=M target=T [header.N=\"Name: value\" ...] [src=ADDR]"),
    ("check", "check REQUEST   (a change, or 'load' and its text: validated against this daemon, nothing applied)"),
    ("plan", "plan [file=NAME]   (then the configuration text, then a line '.'; replies what loading it would change, one request line per change, nothing applied)"),
];

impl Request {
    /// Parses one request line (without its newline). A line holding a
    /// control character other than a tab is refused
    /// ([`ProtocolError::ControlCharacter`]).
    pub fn parse(line: &str) -> Result<Request, ProtocolError> {
        check_one_line(line)?;
        if let Some(rest) = line.trim_start().strip_prefix("check") {
            if rest.starts_with([' ', '\t']) {
                let inner = Request::parse(rest)?;
                if !inner.is_change() {
                    return Err(ProtocolError::NotAChange(inner.verb()));
                }
                return Ok(Request::Check(Box::new(inner)));
            }
        }
        let mut words = split_words(line)?;
        if words.is_empty() {
            return Err(ProtocolError::Empty);
        }
        let first = words.remove(0);
        if first.key.is_some() {
            return Err(ProtocolError::UnknownVerb(line.trim().to_string()));
        }
        let verb = VERBS
            .iter()
            .map(|(v, _)| *v)
            .find(|v| *v == first.value)
            .ok_or_else(|| ProtocolError::UnknownVerb(first.value.clone()))?;
        let mut a = Args::new(verb, words)?;
        let request = match verb {
            "add-service" | "edit-service" | "delete-service" | "flush" => service_request(&mut a)?,
            "add-server" | "edit-server" | "delete-server" => server_request(&mut a)?,
            "add-rule" => {
                let service = a.name("a service name")?;
                match a.take("rule") {
                    Some(statement) => Request::AddRuleStatement { service, statement },
                    None => Request::AddRule {
                        service,
                        pattern: a.require("pattern")?,
                        match_group: a.take_parsed("match")?,
                        server: a.endpoint("server")?,
                    },
                }
            }
            "delete-rule" => {
                let service = a.name("a service name")?;
                match a.take("rule") {
                    Some(statement) => Request::DeleteRuleStatement { service, statement },
                    None => Request::DeleteRule {
                        service,
                        pattern: a.require("pattern")?,
                        server: a.endpoint("server")?,
                    },
                }
            }
            "start" => Request::Start {
                service: a.optional_name(),
            },
            "stop" => Request::Stop {
                service: a.optional_name(),
            },
            "list" => {
                let numeric = a.positional.first().is_some_and(|w| w == "-n");
                if numeric {
                    a.positional.remove(0);
                }
                Request::List {
                    service: a.optional_name(),
                    numeric,
                }
            }
            "stats" => Request::Stats {
                service: a.optional_name(),
            },
            "stats-json" => Request::StatsJson {
                service: a.optional_name(),
            },
            "sysctl" => Request::Sysctl(sysctl_request(&mut a)?),
            "load" => Request::Load {
                file: a.take("file"),
            },
            "plan" => Request::Plan {
                file: a.take("file"),
            },
            "server-tls" => server_tls_request(&mut a)?,
            "server-limit" => Request::SetServerLimit {
                service: a.name("a service name")?,
                server: a.endpoint("server")?,
                maxconn: parse_value("maxconn", a.require("maxconn")?)?,
            },
            "server-proxy" => Request::SetServerProxy {
                service: a.name("a service name")?,
                server: a.endpoint("server")?,
                version: match a.require("send_proxy")? {
                    text if text == "off" => None,
                    text => Some(parse_value("send_proxy", text)?),
                },
            },
            "explain" => explain_request(&mut a)?,
            "reload-certificates" => Request::ReloadCertificates,
            "handover" => Request::Handover,
            "handover-done" => Request::HandoverDone {
                grace: a.take_parsed("grace")?,
            },
            "ping" => Request::Ping,
            "help" => Request::Help,
            "quit" => Request::Quit,
            // `VERBS` is the only source of `verb`; every entry is matched above.
            other => return Err(ProtocolError::UnknownVerb(other.to_string())),
        };
        a.finish()?;
        Ok(request)
    }

    /// The verb of this request.
    pub fn verb(&self) -> &'static str {
        match self {
            Request::Check(_) => "check",
            Request::Explain { .. } => "explain",
            Request::AddService { .. } => "add-service",
            Request::EditService { .. } => "edit-service",
            Request::DeleteService { .. } => "delete-service",
            Request::Flush => "flush",
            Request::AddServer { .. } => "add-server",
            Request::EditServer { .. } => "edit-server",
            Request::DeleteServer { .. } => "delete-server",
            Request::AddRule { .. } => "add-rule",
            Request::DeleteRule { .. } | Request::DeleteRuleStatement { .. } => "delete-rule",
            Request::AddRuleStatement { .. } => "add-rule",
            Request::Start { .. } => "start",
            Request::Stop { .. } => "stop",
            Request::List { .. } => "list",
            Request::Stats { .. } => "stats",
            Request::StatsJson { .. } => "stats-json",
            Request::Sysctl(_) => "sysctl",
            Request::Load { .. } => "load",
            Request::Plan { .. } => "plan",
            Request::SetServerTls { .. } => "server-tls",
            Request::SetServerLimit { .. } => "server-limit",
            Request::SetServerProxy { .. } => "server-proxy",
            Request::ReloadCertificates => "reload-certificates",
            Request::Handover => "handover",
            Request::HandoverDone { .. } => "handover-done",
            Request::Ping => "ping",
            Request::Help => "help",
            Request::Quit => "quit",
        }
    }
}

/// Refuses a line holding a control character other than a tab.
fn check_one_line(line: &str) -> Result<(), ProtocolError> {
    match line
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\t')
    {
        Some((at, c)) => Err(ProtocolError::ControlCharacter {
            code: u32::from(c),
            at,
        }),
        None => Ok(()),
    }
}

impl Request {
    /// Whether the request changes the configuration or settings (what
    /// `check` may wrap): not listings, statistics, `ping`, `help`,
    /// `quit`, `handover` or `check` itself.
    pub fn is_change(&self) -> bool {
        !matches!(
            self,
            Request::Check(_)
                | Request::Explain { .. }
                | Request::List { .. }
                | Request::Stats { .. }
                | Request::StatsJson { .. }
                | Request::Sysctl(SysctlRequest::All | SysctlRequest::Get(_))
                | Request::Ping
                | Request::Help
                | Request::Quit
                | Request::Handover
                | Request::HandoverDone { .. }
                | Request::Plan { .. }
        )
    }

    /// The request's text with `load`'s configuration text after it: a
    /// `load`, or a `check` of one.
    pub fn takes_text(&self) -> bool {
        match self {
            Request::Load { .. } | Request::Plan { .. } => true,
            Request::Check(inner) => inner.takes_text(),
            _ => false,
        }
    }

    /// The request as the line to send (without its newline): its
    /// [`Display`](fmt::Display) form, refused when a value holds a
    /// control character, which could end the line early and smuggle a
    /// second request in (a rule pattern or a file name from user input).
    ///
    /// ```
    /// use ktcpvs::control_socket::Request;
    /// let ok = Request::Start { service: Some("web".into()) };
    /// assert_eq!(ok.to_line().unwrap(), "start web");
    /// let smuggling = Request::Load { file: Some("x\nunload".into()) };
    /// assert!(smuggling.to_line().is_err());
    /// ```
    pub fn to_line(&self) -> Result<String, ProtocolError> {
        let line = self.to_string();
        check_one_line(&line)?;
        Ok(line)
    }
}

impl Request {
    /// The request that makes `command`, the inverse of what the daemon
    /// does with a request; `None` for the commands no request carries
    /// (`admin =` is set by a load only, and discovered servers by the
    /// daemon's resolver).
    ///
    /// ```
    /// use ktcpvs::control_socket::Request;
    /// use ktcpvs::Command;
    /// let command = Command::EditServer {
    ///     service: "web".into(),
    ///     server: "10.0.0.1:80".parse().unwrap(),
    ///     weight: Some(3),
    /// };
    /// let request = Request::from_command(&command).unwrap();
    /// assert_eq!(request.to_string(), "edit-server web server=10.0.0.1:80 weight=3");
    /// assert!(Request::from_command(&Command::SetAdmin { addr: None }).is_none());
    /// ```
    pub fn from_command(command: &Command) -> Option<Request> {
        let args = |spec: &ServiceSpec| ServiceArgs {
            spec: spec.clone(),
            port: None,
        };
        Some(match command.clone() {
            Command::AddService { name, spec } => Request::AddService {
                args: args(&spec),
                name,
            },
            Command::EditService { name, spec } => Request::EditService {
                args: args(&spec),
                name,
            },
            Command::DeleteService { name } => Request::DeleteService { name },
            Command::Flush => Request::Flush,
            Command::AddServer {
                service,
                server,
                weight,
            } => Request::AddServer {
                service,
                server,
                weight,
            },
            Command::EditServer {
                service,
                server,
                weight,
            } => Request::EditServer {
                service,
                server,
                weight,
            },
            Command::DeleteServer { service, server } => Request::DeleteServer { service, server },
            Command::AddRule {
                service,
                pattern,
                match_group,
                server,
            } => Request::AddRule {
                service,
                pattern,
                match_group,
                server,
            },
            Command::DeleteRule {
                service,
                pattern,
                server,
            } => Request::DeleteRule {
                service,
                pattern,
                server,
            },
            Command::Start { service } => Request::Start { service },
            Command::Stop { service } => Request::Stop { service },
            Command::SetServerTls {
                service,
                server,
                tls,
            } => Request::SetServerTls {
                service,
                server,
                tls,
            },
            Command::SetServerLimit {
                service,
                server,
                maxconn,
            } => Request::SetServerLimit {
                service,
                server,
                maxconn,
            },
            Command::SetServerProxy {
                service,
                server,
                version,
            } => Request::SetServerProxy {
                service,
                server,
                version,
            },
            Command::ReloadCertificates => Request::ReloadCertificates,
            Command::Set { name, value } => Request::Sysctl(SysctlRequest::Set(name, value)),
            Command::AddRuleWith {
                service,
                rule,
                server,
            } => Request::AddRuleStatement {
                service,
                statement: ktcpvs_core::config::rule_statement(&rule, server.as_ref()),
            },
            Command::DeleteRuleWith {
                service,
                rule,
                server,
            } => Request::DeleteRuleStatement {
                service,
                statement: ktcpvs_core::config::rule_statement(&rule, server.as_ref()),
            },
            Command::SetAdmin { .. } | Command::SyncDiscovered { .. } => return None,
        })
    }
}

/// `add-service`, `edit-service`, `delete-service` and `flush`.
fn service_request(a: &mut Args) -> Result<Request, ProtocolError> {
    Ok(match a.verb {
        "flush" => Request::Flush,
        "delete-service" => Request::DeleteService {
            name: a.name("a service name")?,
        },
        verb => {
            let name = a.name("a service name")?;
            let args = service_args(a)?;
            if verb == "add-service" {
                Request::AddService { name, args }
            } else {
                Request::EditService { name, args }
            }
        }
    })
}

/// `add-server`, `edit-server` and `delete-server`.
fn server_request(a: &mut Args) -> Result<Request, ProtocolError> {
    let service = a.name("a service name")?;
    let server = a.endpoint("server")?;
    Ok(match a.verb {
        "delete-server" => Request::DeleteServer { service, server },
        verb => {
            let weight = a.take_parsed("weight")?;
            if verb == "add-server" {
                Request::AddServer {
                    service,
                    server,
                    weight,
                }
            } else {
                Request::EditServer {
                    service,
                    server,
                    weight,
                }
            }
        }
    })
}

/// `sysctl`, `sysctl NAME` or `sysctl NAME=VALUE`.
fn sysctl_request(a: &mut Args) -> Result<SysctlRequest, ProtocolError> {
    match (a.positional.len(), a.pairs.len()) {
        (0, 0) => Ok(SysctlRequest::All),
        (1, 0) => Ok(SysctlRequest::Get(a.positional.remove(0))),
        (0, 1) => {
            let (k, v) = a.pairs.remove(0);
            Ok(SysctlRequest::Set(k, v))
        }
        _ => Err(ProtocolError::UnexpectedWord {
            verb: a.verb,
            word: "more than one setting".to_string(),
        }),
    }
}

/// Reads the service keys of `add-service` / `edit-service`; `option.NAME`
/// pairs become options (`none` removes one).
fn service_args(a: &mut Args) -> Result<ServiceArgs, ProtocolError> {
    let mut spec = ServiceSpec {
        listen: a.take_parsed("listen")?,
        ..ServiceSpec::default()
    };
    let port = a.take_parsed::<u16>("port")?;
    spec.scheduler = a.take("scheduler");
    spec.startservers = a.take_parsed("startservers")?;
    spec.maxclients = a.take_parsed("maxclients")?;
    spec.minspareservers = a.take_parsed("minspareservers")?;
    spec.maxspareservers = a.take_parsed("maxspareservers")?;
    if let Some(text) = a.take("redirect") {
        spec.redirect = Some(if text == "none" {
            None
        } else {
            Some(parse_value("redirect", text)?)
        });
    }
    spec.connect_timeout = a.take_parsed("connect_timeout")?;
    spec.read_timeout = a.take_parsed("read_timeout")?;
    spec.keepalive_timeout = a.take_parsed("keepalive_timeout")?;
    spec.header_timeout = a.take_parsed("header_timeout")?;
    spec.response_timeout = a.take_parsed("response_timeout")?;
    if let Some(text) = a.take("forwardfor") {
        spec.forward_for = Some(on_off("forwardfor", text)?);
    }
    if let Some(text) = a.take("http2") {
        spec.http2 = Some(on_off("http2", text)?);
    }
    if let Some(text) = a.take("upgrade") {
        spec.upgrades = Some(parse_upgrade_list(&text));
    }
    spec.certificates = certificates(a)?;
    if let Some(text) = a.take("sni_host_check") {
        spec.host_check = Some(on_off("sni_host_check", text)?);
    }
    if let Some(text) = a.take("proxy_protocol") {
        spec.proxy_protocol = Some(parse_value("proxy_protocol", text)?);
    }
    if let Some(text) = a.take("discover") {
        spec.discover = Some(if text == "none" {
            Vec::new()
        } else {
            text.split(',')
                .map(|d| parse_value("discover", d.trim().to_string()))
                .collect::<Result<_, _>>()?
        });
    }
    let mut i = 0;
    while i < a.pairs.len() {
        if let Some(name) = a.pairs[i].0.strip_prefix("option.") {
            let name = name.to_string();
            let (_, value) = a.pairs.remove(i);
            spec.options
                .push((name, (value != "none").then_some(value)));
        } else if let Some(key) = a.pairs[i].0.strip_prefix("health.") {
            let key = key.to_string();
            let (_, value) = a.pairs.remove(i);
            spec.health.push((key, value));
        } else if a.pairs[i].0.starts_with("error_page.") {
            let (key, value) = a.pairs.remove(i);
            error_page(&key, value, a, &mut spec)?;
        } else {
            i += 1;
        }
    }
    Ok(ServiceArgs { spec, port })
}

/// One `error_page.STATUS=none`, or `error_page.STATUS.type=T` with its
/// `error_page.STATUS.body=B` (taken from `a` too), into `spec`.
fn error_page(
    key: &str,
    value: String,
    a: &mut Args,
    spec: &mut ServiceSpec,
) -> Result<(), ProtocolError> {
    let rest = key.trim_start_matches("error_page.");
    let bad = |reason: &str| ProtocolError::BadValue {
        key: key.to_string(),
        value: String::new(),
        reason: reason.to_string(),
    };
    let (status, part) = match rest.split_once('.') {
        Some((status, part)) => (status, Some(part)),
        None => (rest, None),
    };
    let status: u16 = status.parse().map_err(|_| bad("not a status"))?;
    let page = match (part, value.as_str()) {
        (None, "none") => None,
        (Some("type"), _) => {
            let body = a
                .take(&format!("error_page.{status}.body"))
                .ok_or_else(|| bad("needs its error_page.STATUS.body="))?;
            Some(ErrorPage {
                content_type: value,
                body,
            })
        }
        (Some("body"), _) => {
            let content_type = a
                .take(&format!("error_page.{status}.type"))
                .ok_or_else(|| bad("needs its error_page.STATUS.type="))?;
            Some(ErrorPage {
                content_type,
                body: value,
            })
        }
        _ => {
            return Err(bad(
                "must be error_page.STATUS=none or error_page.STATUS.type= with .body=",
            ))
        }
    };
    spec.error_pages.push((status, page));
    Ok(())
}

/// `server-tls SERVICE server=ADDR …`.
fn server_tls_request(a: &mut Args) -> Result<Request, ProtocolError> {
    let service = a.name("a service name")?;
    let server = a.endpoint("server")?;
    if let Some(text) = a.take("tls") {
        if text != "off" {
            return Err(ProtocolError::BadValue {
                key: "tls".into(),
                value: text,
                reason: "must be off (give name=, ca=, client_certificate= to turn it on)".into(),
            });
        }
        return Ok(Request::SetServerTls {
            service,
            server,
            tls: None,
        });
    }
    let certificate = match (a.take("client_certificate"), a.take("client_key")) {
        (Some(chain), Some(key)) => Some(CertificateFiles {
            chain: chain.into(),
            key: key.into(),
        }),
        (None, None) => None,
        (Some(_), None) => return Err(missing_pair("client_key", "client_certificate")),
        (None, Some(_)) => return Err(missing_pair("client_certificate", "client_key")),
    };
    Ok(Request::SetServerTls {
        service,
        server,
        tls: Some(BackendTls {
            name: a.take("name"),
            ca: a.take("ca").map(Into::into),
            certificate,
        }),
    })
}

fn on_off(key: &str, text: String) -> Result<bool, ProtocolError> {
    match text.as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(ProtocolError::BadValue {
            key: key.into(),
            value: text,
            reason: "must be on or off".into(),
        }),
    }
}

/// The certificate list: `certificate=none` (TLS off), or
/// `certificate.N=CHAIN certificate_key.N=KEY` for N = 1, 2, … without a
/// gap, the first the default; `None` when none of these keys is given.
fn certificates(a: &mut Args) -> Result<Option<Vec<CertificateFiles>>, ProtocolError> {
    if let Some(text) = a.take("certificate") {
        if text != "none" {
            return Err(ProtocolError::BadValue {
                key: "certificate".into(),
                value: text,
                reason: "must be none; name files with certificate.N= and certificate_key.N="
                    .into(),
            });
        }
        return Ok(Some(Vec::new()));
    }
    let mut list = Vec::new();
    for n in 1.. {
        let (chain_key, key_key) = (format!("certificate.{n}"), format!("certificate_key.{n}"));
        match (a.take(&chain_key), a.take(&key_key)) {
            (Some(chain), Some(key)) => list.push(CertificateFiles {
                chain: chain.into(),
                key: key.into(),
            }),
            (None, None) => break,
            (Some(_), None) => return Err(missing_pair(&key_key, &chain_key)),
            (None, Some(_)) => return Err(missing_pair(&chain_key, &key_key)),
        }
    }
    Ok((!list.is_empty()).then_some(list))
}

/// The client an `explain` without `src=` is taken to be.
pub const EXPLAIN_CLIENT: &str = "127.0.0.1:0";

/// `explain [SERVICE] method=M target=T [header.N="Name: value"]… [src=ADDR]`.
fn explain_request(a: &mut Args) -> Result<Request, ProtocolError> {
    let service = a.optional_name();
    let method = a.require("method")?;
    let target = a.require("target")?;
    let mut headers = Vec::new();
    for n in 1.. {
        let key = format!("header.{n}");
        let Some(field) = a.take(&key) else { break };
        let Some((name, value)) = field.split_once(':') else {
            return Err(ProtocolError::BadValue {
                key,
                value: field,
                reason: "must be 'Name: value'".into(),
            });
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let client = match a.take("src") {
        Some(text) => parse_value("src", text)?,
        None => parse_value("src", EXPLAIN_CLIENT.to_string())?,
    };
    Ok(Request::Explain {
        service,
        request: ExplainRequest {
            method,
            target,
            headers,
            client,
        },
    })
}

fn missing_pair(missing: &str, given: &str) -> ProtocolError {
    ProtocolError::BadValue {
        key: given.into(),
        value: String::new(),
        reason: format!("{missing}= must be given with it"),
    }
}

fn push_pair(out: &mut String, key: &str, value: &str) {
    let _ = write!(out, " {key}={}", quote_if_needed(value));
}

fn push_service_args(out: &mut String, args: &ServiceArgs) {
    let s = &args.spec;
    if let Some(l) = &s.listen {
        push_pair(out, "listen", &l.to_string());
    }
    if let Some(p) = args.port {
        push_pair(out, "port", &p.to_string());
    }
    if let Some(v) = &s.scheduler {
        push_pair(out, "scheduler", v);
    }
    for (key, value) in [
        ("startservers", s.startservers),
        ("maxclients", s.maxclients),
        ("minspareservers", s.minspareservers),
        ("maxspareservers", s.maxspareservers),
    ] {
        if let Some(v) = value {
            push_pair(out, key, &v.to_string());
        }
    }
    match &s.redirect {
        Some(Some(e)) => push_pair(out, "redirect", &e.to_string()),
        Some(None) => push_pair(out, "redirect", "none"),
        None => {}
    }
    for (key, value) in [
        ("connect_timeout", s.connect_timeout),
        ("read_timeout", s.read_timeout),
        ("keepalive_timeout", s.keepalive_timeout),
        ("header_timeout", s.header_timeout),
        ("response_timeout", s.response_timeout),
    ] {
        if let Some(v) = value {
            push_pair(out, key, &v.to_string());
        }
    }
    if let Some(f) = s.forward_for {
        push_pair(out, "forwardfor", if f { "on" } else { "off" });
    }
    if let Some(on) = s.http2 {
        push_pair(out, "http2", if on { "on" } else { "off" });
    }
    if let Some(upgrades) = &s.upgrades {
        push_pair(out, "upgrade", &format_upgrade_list(upgrades));
    }
    match &s.certificates {
        Some(list) if list.is_empty() => push_pair(out, "certificate", "none"),
        Some(list) => {
            for (n, files) in list.iter().enumerate() {
                let n = n + 1;
                push_pair(
                    out,
                    &format!("certificate.{n}"),
                    &files.chain.to_string_lossy(),
                );
                push_pair(
                    out,
                    &format!("certificate_key.{n}"),
                    &files.key.to_string_lossy(),
                );
            }
        }
        None => {}
    }
    if let Some(check) = s.host_check {
        push_pair(out, "sni_host_check", if check { "on" } else { "off" });
    }
    if let Some(networks) = &s.proxy_protocol {
        push_pair(out, "proxy_protocol", &networks.to_string());
    }
    if let Some(discover) = &s.discover {
        let list = if discover.is_empty() {
            "none".to_string()
        } else {
            discover
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        push_pair(out, "discover", &list);
    }
    for (name, value) in &s.options {
        push_pair(
            out,
            &format!("option.{name}"),
            value.as_deref().unwrap_or("none"),
        );
    }
    for (key, value) in &s.health {
        push_pair(out, &format!("health.{key}"), value);
    }
    for (status, page) in &s.error_pages {
        match page {
            None => push_pair(out, &format!("error_page.{status}"), "none"),
            Some(page) => {
                push_pair(
                    out,
                    &format!("error_page.{status}.type"),
                    &page.content_type,
                );
                push_pair(out, &format!("error_page.{status}.body"), &page.body);
            }
        }
    }
}

impl fmt::Display for Request {
    /// Formats the request as one line (no newline), the inverse of
    /// [`Request::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Request::Check(inner) = self {
            return write!(f, "check {inner}");
        }
        let mut out = String::from(self.verb());
        let name = |out: &mut String, n: &str| {
            out.push(' ');
            out.push_str(&quote_if_needed(n));
        };
        match self {
            Request::AddService { name: n, args } | Request::EditService { name: n, args } => {
                name(&mut out, n);
                push_service_args(&mut out, args);
            }
            Request::DeleteService { name: n } => name(&mut out, n),
            Request::SetServerTls {
                service,
                server,
                tls,
            } => {
                name(&mut out, service);
                push_pair(&mut out, "server", &server.to_string());
                match tls {
                    None => push_pair(&mut out, "tls", "off"),
                    Some(t) => {
                        if let Some(n) = &t.name {
                            push_pair(&mut out, "name", n);
                        }
                        if let Some(ca) = &t.ca {
                            push_pair(&mut out, "ca", &ca.to_string_lossy());
                        }
                        if let Some(c) = &t.certificate {
                            push_pair(&mut out, "client_certificate", &c.chain.to_string_lossy());
                            push_pair(&mut out, "client_key", &c.key.to_string_lossy());
                        }
                    }
                }
            }
            Request::SetServerLimit {
                service,
                server,
                maxconn,
            } => {
                name(&mut out, service);
                push_pair(&mut out, "server", &server.to_string());
                push_pair(&mut out, "maxconn", &maxconn.to_string());
            }
            Request::SetServerProxy {
                service,
                server,
                version,
            } => {
                name(&mut out, service);
                push_pair(&mut out, "server", &server.to_string());
                let version = version.map_or("off".to_string(), |v| v.to_string());
                push_pair(&mut out, "send_proxy", &version);
            }
            Request::HandoverDone { grace } => {
                if let Some(g) = grace {
                    push_pair(&mut out, "grace", &g.to_string());
                }
            }
            // Written above, whole.
            Request::Check(_) => {}
            Request::Explain { service, request } => {
                if let Some(s) = service {
                    name(&mut out, s);
                }
                push_pair(&mut out, "method", &request.method);
                push_pair(&mut out, "target", &request.target);
                for (i, (n, v)) in request.headers.iter().enumerate() {
                    push_pair(&mut out, &format!("header.{}", i + 1), &format!("{n}: {v}"));
                }
                push_pair(&mut out, "src", &request.client.to_string());
            }
            Request::Flush
            | Request::ReloadCertificates
            | Request::Handover
            | Request::Ping
            | Request::Help
            | Request::Quit => {}
            Request::AddServer {
                service,
                server,
                weight,
            }
            | Request::EditServer {
                service,
                server,
                weight,
            } => {
                name(&mut out, service);
                push_pair(&mut out, "server", &server.to_string());
                if let Some(w) = weight {
                    push_pair(&mut out, "weight", &w.to_string());
                }
            }
            Request::DeleteServer { service, server } => {
                name(&mut out, service);
                push_pair(&mut out, "server", &server.to_string());
            }
            Request::AddRule {
                service,
                pattern,
                match_group,
                server,
            } => {
                name(&mut out, service);
                push_pair(&mut out, "pattern", pattern);
                push_pair(&mut out, "server", &server.to_string());
                if let Some(m) = match_group {
                    push_pair(&mut out, "match", &m.to_string());
                }
            }
            Request::DeleteRule {
                service,
                pattern,
                server,
            } => {
                name(&mut out, service);
                push_pair(&mut out, "pattern", pattern);
                push_pair(&mut out, "server", &server.to_string());
            }
            Request::AddRuleStatement { service, statement }
            | Request::DeleteRuleStatement { service, statement } => {
                name(&mut out, service);
                push_pair(&mut out, "rule", statement);
            }
            Request::Start { service }
            | Request::Stop { service }
            | Request::Stats { service }
            | Request::StatsJson { service } => {
                if let Some(s) = service {
                    name(&mut out, s);
                }
            }
            Request::List { service, numeric } => {
                if *numeric {
                    out.push_str(" -n");
                }
                if let Some(s) = service {
                    name(&mut out, s);
                }
            }
            Request::Sysctl(SysctlRequest::All) => {}
            Request::Sysctl(SysctlRequest::Get(n)) => name(&mut out, n),
            Request::Sysctl(SysctlRequest::Set(n, v)) => push_pair(&mut out, n, v),
            Request::Load { file } | Request::Plan { file } => {
                if let Some(file) = file {
                    push_pair(&mut out, "file", file);
                }
            }
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(line: &str) -> Request {
        let r = Request::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let again = Request::parse(&r.to_string()).unwrap();
        assert_eq!(r, again, "{line} -> {r}");
        r
    }

    #[test]
    fn the_documented_examples_parse() {
        let r = round_trip("add-service web listen=0.0.0.0:8080 scheduler=http");
        match r {
            Request::AddService { name, args } => {
                assert_eq!(name, "web");
                assert_eq!(args.spec.scheduler.as_deref(), Some("http"));
                assert_eq!(args.spec.listen.unwrap().port, Some(8080));
            }
            other => panic!("{other:?}"),
        }
        let r = round_trip(r#"add-rule web pattern="/images/.*" server=r1:80"#);
        assert_eq!(
            r,
            Request::AddRule {
                service: "web".into(),
                pattern: "/images/.*".into(),
                match_group: None,
                server: "r1:80".parse().unwrap(),
            }
        );
        assert_eq!(
            round_trip("list -n web"),
            Request::List {
                service: Some("web".into()),
                numeric: true
            }
        );
        assert_eq!(
            round_trip("sysctl debug_level=2"),
            Request::Sysctl(SysctlRequest::Set("debug_level".into(), "2".into()))
        );
        assert_eq!(
            round_trip("sysctl debug_level"),
            Request::Sysctl(SysctlRequest::Get("debug_level".into()))
        );
        assert_eq!(round_trip("sysctl"), Request::Sysctl(SysctlRequest::All));
        assert_eq!(round_trip("start"), Request::Start { service: None });
        assert_eq!(
            round_trip("stop web"),
            Request::Stop {
                service: Some("web".into())
            }
        );
        assert_eq!(round_trip("flush"), Request::Flush);
        assert_eq!(
            round_trip("load file=/etc/ktcpvs.conf"),
            Request::Load {
                file: Some("/etc/ktcpvs.conf".into())
            }
        );
    }

    #[test]
    fn handover_requests_round_trip() {
        assert_eq!(round_trip("handover"), Request::Handover);
        assert_eq!(
            round_trip("handover-done"),
            Request::HandoverDone { grace: None }
        );
        assert_eq!(
            round_trip("handover-done grace=5"),
            Request::HandoverDone { grace: Some(5) }
        );
        assert!(Request::parse("handover web").is_err());
        assert!(Request::parse("handover-done grace=soon").is_err());
        assert!(Request::parse("handover-done grace=-1").is_err());
    }

    #[test]
    fn every_field_round_trips() {
        round_trip(
            "edit-service web listen=[::1]:81 port=82 scheduler=hhttp startservers=1 maxclients=2 \
             minspareservers=3 maxspareservers=4 redirect=none connect_timeout=5 read_timeout=6 \
             keepalive_timeout=7 header_timeout=8 response_timeout=9 forwardfor=on \
             option.cookie=\"KTCPVS SID\" option.key=none",
        );
        round_trip("add-service w redirect=localhost:www forwardfor=off");
        round_trip("add-service w upgrade=websocket,my-proto");
        round_trip("edit-service w upgrade=none");
        round_trip(
            "add-service w certificate.1=/etc/a.pem certificate_key.1=/etc/a.key \
             certificate.2=\"/etc/b c.pem\" certificate_key.2=/etc/b.key sni_host_check=off",
        );
        round_trip("edit-service w certificate=none");
        round_trip("edit-service w sni_host_check=on");
        round_trip("reload-certificates");
        round_trip(
            "server-tls web server=10.0.0.1:443 name=api.internal ca=\"/etc/ca dir/ca.pem\" \
             client_certificate=/etc/c.pem client_key=/etc/c.key",
        );
        round_trip("server-tls web server=r1:443");
        round_trip("server-tls web server=r1:443 tls=off");
        round_trip("server-limit web server=r1:80 maxconn=10");
        round_trip("server-proxy web server=r1:80 send_proxy=v2");
        round_trip("check add-server web server=10.0.0.1:80 weight=3");
        round_trip("check load file=a.conf");
        round_trip("check sysctl debug_level=2");
        round_trip("explain web method=GET target=/a?b=1 header.1=\"Host: x\" header.2=\"X-A: 1\" src=192.0.2.1:5");
        round_trip(
            r#"add-rule web rule="pattern \"^/a\" host \"=a.test\" use server 10.0.0.1:80""#,
        );
        round_trip(r#"delete-rule web rule="pattern \"^/old\" redirect 301 \"/new\"""#);
        round_trip("plan");
        round_trip("plan file=\"/etc/my lb.conf\"");
        assert!(Request::parse("plan file=a.conf").unwrap().takes_text());
        assert_eq!(
            Request::parse("check plan").unwrap_err(),
            ProtocolError::NotAChange("plan")
        );
        assert_eq!(
            Request::parse("check list").unwrap_err(),
            ProtocolError::NotAChange("list")
        );
        assert_eq!(
            Request::parse("check check flush").unwrap_err(),
            ProtocolError::NotAChange("check")
        );
        round_trip("server-proxy web server=r1:80 send_proxy=off");
        round_trip("edit-service web proxy_protocol=10.0.0.0/8,::1/128");
        round_trip("edit-service web proxy_protocol=none");
        round_trip("edit-service web discover=\"dns web.test:80 1,srv _http._tcp.web.test 2\"");
        round_trip("edit-service web discover=none");
        round_trip("edit-service web error_page.503.type=text/html error_page.503.body=\"<h1>busy</h1>\" error_page.400=none");
        // Found by the control_request fuzz target: `none` among empty
        // items is the empty list, so it prints back as `none`.
        round_trip("edit-service tw upgrade=\"\t\t,\"none");
        round_trip("edit-service web health.check=http health.check_path=/healthz health.check_interval=500ms");
        round_trip("add-server web server=10.0.0.1:80 weight=0");
        round_trip("edit-server web server=r2 weight=65535");
        round_trip("delete-server web server=r2:http");
        round_trip(r#"add-rule web pattern="/users/([^/]+)/.*" match=1 server=r1"#);
        round_trip(r#"delete-rule web pattern="a \"quoted\" \\ x=y" server=r1"#);
        round_trip("delete-service web");
        round_trip("stats");
        round_trip("stats web");
        round_trip("list");
        round_trip("load");
        round_trip("ping");
        round_trip("help");
        round_trip("quit");
    }

    #[test]
    fn quoted_values_keep_spaces_quotes_and_equals() {
        let r = round_trip(r#"add-rule web pattern="a b=\"c\"" server=r1"#);
        match r {
            Request::AddRule { pattern, .. } => assert_eq!(pattern, r#"a b="c""#),
            other => panic!("{other:?}"),
        }
        // An unquoted value may contain '=' after the first one.
        match Request::parse("add-rule web pattern=/a=b server=r1").unwrap() {
            Request::AddRule { pattern, .. } => assert_eq!(pattern, "/a=b"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_lines_are_refused_with_a_reason() {
        type Check = fn(&ProtocolError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| *e == ProtocolError::Empty),
            ("   ", |e| *e == ProtocolError::Empty),
            (
                "frobnicate",
                |e| matches!(e, ProtocolError::UnknownVerb(v) if v == "frobnicate"),
            ),
            ("ADD-SERVICE web", |e| {
                matches!(e, ProtocolError::UnknownVerb(_))
            }),
            ("add-service", |e| {
                matches!(e, ProtocolError::Missing { .. })
            }),
            ("add-server web", |e| {
                matches!(e, ProtocolError::Missing { .. })
            }),
            ("add-server web server=r1 weight=x", |e| {
                matches!(e, ProtocolError::BadValue { .. })
            }),
            ("add-server web server=r1 weight=-1", |e| {
                matches!(e, ProtocolError::BadValue { .. })
            }),
            ("add-server web server=h:99999", |e| {
                matches!(e, ProtocolError::BadValue { .. })
            }),
            ("add-rule web server=r1", |e| {
                matches!(e, ProtocolError::Missing { .. })
            }),
            ("add-rule web pattern=\"abc server=r1", |e| {
                matches!(e, ProtocolError::Unterminated(_))
            }),
            ("add-service web colour=blue", |e| {
                matches!(e, ProtocolError::UnexpectedWord { .. })
            }),
            ("add-service web extra", |e| {
                matches!(e, ProtocolError::UnexpectedWord { .. })
            }),
            ("add-service web port=1 port=2", |e| {
                matches!(e, ProtocolError::Duplicate { .. })
            }),
            ("add-service web forwardfor=maybe", |e| {
                matches!(e, ProtocolError::BadValue { .. })
            }),
            (
                "add-service web certificate.1=/a.pem",
                |e| matches!(e, ProtocolError::BadValue { key, .. } if key == "certificate.1"),
            ),
            (
                "add-service web certificate_key.1=/a.key",
                |e| matches!(e, ProtocolError::BadValue { key, .. } if key == "certificate_key.1"),
            ),
            (
                "add-service web certificate=/a.pem",
                |e| matches!(e, ProtocolError::BadValue { key, .. } if key == "certificate"),
            ),
            // A gap: certificate.2 without certificate.1 is not read.
            (
                "add-service web certificate.2=/a certificate_key.2=/b",
                |e| matches!(e, ProtocolError::UnexpectedWord { .. }),
            ),
            ("add-service web sni_host_check=yes", |e| {
                matches!(e, ProtocolError::BadValue { .. })
            }),
            (
                "server-tls web server=r1 tls=on",
                |e| matches!(e, ProtocolError::BadValue { key, .. } if key == "tls"),
            ),
            (
                "server-tls web server=r1 client_certificate=/c.pem",
                |e| matches!(e, ProtocolError::BadValue { key, .. } if key == "client_certificate"),
            ),
            ("server-tls web", |e| {
                matches!(e, ProtocolError::Missing { .. })
            }),
            ("reload-certificates now", |e| {
                matches!(e, ProtocolError::UnexpectedWord { .. })
            }),
            ("flush now", |e| {
                matches!(e, ProtocolError::UnexpectedWord { .. })
            }),
            ("sysctl a=1 b=2", |e| {
                matches!(e, ProtocolError::UnexpectedWord { .. })
            }),
            ("sysctl a b", |e| {
                matches!(e, ProtocolError::UnexpectedWord { .. })
            }),
            ("x=1", |e| matches!(e, ProtocolError::UnknownVerb(_))),
        ];
        for (line, check) in cases {
            let e = Request::parse(line).expect_err(line);
            assert!(check(&e), "{line:?} gave {e:?}");
            assert!(!e.to_string().is_empty());
        }
    }

    /// Found by the `control_request` fuzz target: a quoted value holding a
    /// line break parsed, and formatted back into two lines; sent by a
    /// client, the second line would have been a request of its own.
    #[test]
    fn a_line_break_inside_a_value_is_refused_both_ways() {
        for line in [
            "list \"nu\n\"",
            "add-rule web pattern=\"a\nunload\" server=r1",
            "start web\r",
            "stats \"a\u{0}b\"",
            "ping \u{7f}",
        ] {
            assert!(
                matches!(
                    Request::parse(line),
                    Err(ProtocolError::ControlCharacter { .. })
                ),
                "{line:?}"
            );
        }
        assert!(Request::parse("add-rule web pattern=\"a\tb\" server=r1").is_ok());
        let smuggling = Request::AddRule {
            service: "web".into(),
            pattern: "x\nsysctl unload=1".into(),
            match_group: None,
            server: "r1".parse().unwrap(),
        };
        assert!(matches!(
            smuggling.to_line(),
            Err(ProtocolError::ControlCharacter { code: 0x0a, .. })
        ));
    }
}

//! The configuration model: virtual services, real servers and rules as
//! plain, validated values.
//!
//! These are the objects of the original (`tcp_vs_service`, `tcp_vs_dest`,
//! `tcp_vs_rule`) minus their runtime state: a [`Config`] is what a
//! configuration file describes and what `tcpvsadm -L` prints. Live state
//! (active connections, health, counters) lives in [`crate::live`], keyed by
//! service name and server address, so rebuilding a configuration never
//! resets it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::condition::{Conditions, HeaderEdit, RuleAction};
use crate::error::ControlError;
use crate::health::HealthConfig;
use crate::network::Networks;
use crate::tls::{BackendTls, TlsConfig};

/// Longest accepted service name, in bytes.
///
/// The original truncated names to 15 bytes; we refuse longer names instead
/// of silently truncating them (see `docs/compat.md`).
pub const MAX_SERVICE_NAME: usize = 63;

/// Largest accepted real-server weight.
pub const MAX_WEIGHT: u32 = 65_535;

/// Longest accepted rule pattern, in bytes (the original's limit was 255).
pub const MAX_PATTERN_LEN: usize = 1024;

/// Highest capture-group index a rule may name with `match N`.
pub const MAX_MATCH_GROUP: u32 = 10;

/// Upper bound on `maxclients`.
pub const MAX_CLIENTS_LIMIT: u32 = 1_000_000;

/// Upper bound on the pre-fork knobs `startservers`, `minspareservers`
/// and `maxspareservers`.
pub const MAX_PREFORK: u32 = 65_535;

/// Largest per-service timeout, in seconds (one day).
pub const MAX_TIMEOUT_SECS: u32 = 86_400;

/// Default listen address of a service added without one (the original's).
pub const DEFAULT_LISTEN_PORT: u16 = 8080;

/// Default scheduler of a service added without one (the original's).
pub const DEFAULT_SCHEDULER: &str = "http";

/// Checks a service name: 1 to [`MAX_SERVICE_NAME`] bytes of ASCII letters,
/// digits, `_`, `-` and `.`, so it can be written unquoted in a
/// configuration file and on a command line.
pub fn validate_service_name(name: &str) -> Result<(), ControlError> {
    let bad = |reason: &str| ControlError::Invalid {
        what: "service name",
        value: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_SERVICE_NAME {
        return Err(bad(&format!("longer than {MAX_SERVICE_NAME} bytes")));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(bad(
            "only ASCII letters, digits, '_', '-' and '.' are allowed",
        ));
    }
    Ok(())
}

/// The protocols a service lets a client switch to with `Upgrade` unless
/// configured otherwise: WebSocket only.
pub const DEFAULT_UPGRADES: [&str; 1] = ["websocket"];

/// Most protocols in one service's upgrade list.
pub const MAX_UPGRADES: usize = 16;

/// Longest accepted upgrade protocol name, in bytes.
pub const MAX_UPGRADE_NAME: usize = 64;

/// Checks the upgrade protocol `name` (an RFC 9110 §7.8 `protocol-name`:
/// an HTTP token, without a `/version`) and returns it in lower case, the
/// form the engine compares. `none` is refused (it is the word for no
/// upgrade at all, so a protocol of that name could not be printed back),
/// and so is `h2c`: an upgrade to HTTP/2 would
/// carry every later request past the per-request rules, so the engine
/// always serves such a request as HTTP/1.1.
///
/// ```
/// use ktcpvs_core::model::validate_upgrade_protocol;
/// assert_eq!(validate_upgrade_protocol("WebSocket").unwrap(), "websocket");
/// assert!(validate_upgrade_protocol("h2c").is_err());
/// assert!(validate_upgrade_protocol("None").is_err());
/// assert!(validate_upgrade_protocol("a/1").is_err());
/// ```
pub fn validate_upgrade_protocol(name: &str) -> Result<String, ControlError> {
    let bad = |reason: &str| ControlError::Invalid {
        what: "upgrade protocol",
        value: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() || name.len() > MAX_UPGRADE_NAME {
        return Err(bad(&format!("must be 1..={MAX_UPGRADE_NAME} bytes")));
    }
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(tchar) {
        return Err(bad(
            "a protocol name is an HTTP token, without a '/version'",
        ));
    }
    if name.eq_ignore_ascii_case("none") {
        // `none` is the word for an empty list in a file and on the
        // control socket; a protocol of that name could not be printed.
        return Err(bad("'none' means no upgrade and is not a protocol name"));
    }
    if name.eq_ignore_ascii_case("h2c") {
        return Err(bad(
            "upgrades to HTTP/2 are never forwarded: such requests are served as HTTP/1.1",
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// Checks an upgrade protocol list: at most [`MAX_UPGRADES`] names, each
/// valid ([`validate_upgrade_protocol`]), none twice; returns it in lower
/// case, in the order given. An empty list allows no upgrade.
pub fn validate_upgrades(names: &[String]) -> Result<Vec<String>, ControlError> {
    if names.len() > MAX_UPGRADES {
        return Err(ControlError::Invalid {
            what: "upgrade list",
            value: names.join(","),
            reason: format!("at most {MAX_UPGRADES} protocols"),
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let name = validate_upgrade_protocol(name)?;
        if out.contains(&name) {
            return Err(ControlError::Invalid {
                what: "upgrade list",
                value: names.join(","),
                reason: format!("'{name}' is listed twice"),
            });
        }
        out.push(name);
    }
    Ok(out)
}

/// Reads an upgrade list as written in a configuration file or a control
/// request: `none`, or protocol names separated by commas (blanks around
/// them ignored). The names are not checked; see [`validate_upgrades`].
///
/// ```
/// use ktcpvs_core::model::{format_upgrade_list, parse_upgrade_list};
/// assert_eq!(parse_upgrade_list("websocket, my-proto"), ["websocket", "my-proto"]);
/// assert!(parse_upgrade_list("none").is_empty());
/// assert_eq!(format_upgrade_list(&parse_upgrade_list("a,b")), "a,b");
/// ```
pub fn parse_upgrade_list(text: &str) -> Vec<String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Writes an upgrade list the way [`parse_upgrade_list`] reads it: `none`
/// when empty, else the names joined by commas. A list of the one name
/// `none` (which no service accepts, but a request may carry) gets a
/// trailing comma, so it does not read back as the empty list.
///
/// ```
/// use ktcpvs_core::model::{format_upgrade_list, parse_upgrade_list};
/// let odd = vec!["none".to_string()];
/// assert_eq!(parse_upgrade_list(&format_upgrade_list(&odd)), odd);
/// ```
pub fn format_upgrade_list(names: &[String]) -> String {
    match names {
        [] => "none".to_string(),
        [only] if only.trim().eq_ignore_ascii_case("none") => format!("{only},"),
        _ => names.join(","),
    }
}

/// Checks a weight: 0 (quiesced) to [`MAX_WEIGHT`].
pub fn validate_weight(weight: u32) -> Result<(), ControlError> {
    if weight > MAX_WEIGHT {
        return Err(ControlError::Invalid {
            what: "weight",
            value: weight.to_string(),
            reason: format!("must be 0..={MAX_WEIGHT}"),
        });
    }
    Ok(())
}

/// Per-service timeouts, in seconds. `None` takes the global setting of the
/// same name (see [`crate::settings::Settings`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Backend connect timeout.
    pub connect: Option<u32>,
    /// Idle timeout of a relayed connection (the original's `read_timeout`).
    pub read: Option<u32>,
    /// Idle time allowed between requests on a keep-alive connection.
    pub keepalive: Option<u32>,
    /// Time allowed for a client to send a complete request head.
    pub header: Option<u32>,
    /// Time allowed for a backend to start its response.
    pub response: Option<u32>,
}

/// A virtual service: where it listens and how it schedules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The service's name (`-i NAME`, `Virtual NAME`).
    pub name: String,
    /// The listen address (IPv4 or IPv6).
    pub listen: SocketAddr,
    /// The scheduler's registered name.
    pub scheduler: String,
    /// Original pre-fork knob, kept for compatibility: the engine is
    /// event-driven and does not pre-fork, so this is recorded and listed only.
    pub startservers: u32,
    /// Cap on concurrent client connections of this service: at the cap the
    /// listener stops accepting and resumes below it.
    pub maxclients: u32,
    /// Original pre-fork knob, recorded and listed only.
    pub minspareservers: u32,
    /// Original pre-fork knob, recorded and listed only.
    pub maxspareservers: u32,
    /// Fallback server: a connection that no rule or server takes is relayed
    /// untouched to this address.
    pub redirect: Option<SocketAddr>,
    /// Per-service timeout overrides.
    pub timeouts: Timeouts,
    /// Add `X-Forwarded-For` and `Forwarded` to requests forwarded to real
    /// servers (HTTP schedulers only).
    pub forward_for: bool,
    /// The protocols a client may switch to with `Upgrade` (lower-case
    /// protocol names, [`DEFAULT_UPGRADES`] unless configured). A request
    /// asking for any other protocol is served as plain HTTP/1.1, its
    /// `Upgrade` field removed; a `101` naming another is refused (502).
    pub upgrades: Vec<String>,
    /// Scheduler options (`option NAME = "VALUE"`), for instance the cookie
    /// name and key of `chttp`. Unknown options are kept and listed.
    pub options: BTreeMap<String, String>,
    /// TLS on the listener: the certificates it serves. `None`: plain TCP.
    pub tls: Option<TlsConfig>,
    /// Health checks, ejection, slow start, queue and retry budget.
    pub health: HealthConfig,
    /// Networks trusted to open a connection with a PROXY protocol header
    /// (v1 or v2): with any, every connection must start with one, and a
    /// connection from elsewhere is refused. The address the header
    /// carries is the client's for everything that follows (forwarding
    /// headers, logs, hashing schedulers). Empty: no PROXY protocol.
    pub proxy_protocol: Networks,
    /// DNS names whose addresses are real servers of the service, kept up
    /// to date by a resolver outside the request path (`discover = dns
    /// NAME:PORT [WEIGHT]`, `discover = srv NAME [WEIGHT]`).
    pub discover: Vec<Discovery>,
    /// Pages the proxy sends in place of its own error responses, by
    /// status (`error_page = 503 "text/html" "BODY"`).
    pub error_pages: BTreeMap<u16, ErrorPage>,
    /// Serve HTTP/2 to clients (`http2 = on`): offered by ALPN (`h2`)
    /// on a TLS listener, and taken with prior knowledge (h2c) on a plain
    /// one; each stream is switched on its own to HTTP/1.1 real servers.
    /// HTTP schedulers only; off by default.
    pub http2: bool,
}

/// A page the proxy sends in place of one of its own error responses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorPage {
    /// The `Content-Type`.
    pub content_type: String,
    /// The body (at most 64 KiB).
    pub body: String,
}

/// The statuses the proxy answers itself, which `error_page` may replace.
pub const PROXY_STATUSES: [u16; 11] = [400, 408, 413, 414, 421, 431, 500, 501, 502, 503, 504];

/// A DNS name whose addresses are real servers (see
/// [`Command::SyncDiscovered`](crate::Command::SyncDiscovered)).
///
/// ```
/// use ktcpvs_core::model::{Discovery, DiscoveryKind};
/// let d = Discovery { kind: DiscoveryKind::Srv, name: "_http._tcp.web.service.consul".into(), weight: 1 };
/// assert_eq!(d.to_string(), "srv _http._tcp.web.service.consul 1");
/// let a = Discovery { kind: DiscoveryKind::Address { port: 80 }, name: "web.internal".into(), weight: 5 };
/// assert_eq!(a.to_string(), "dns web.internal:80 5");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Discovery {
    /// What is looked up.
    pub kind: DiscoveryKind,
    /// The name (without a trailing dot).
    pub name: String,
    /// The weight of each server found.
    pub weight: u32,
}

/// The records a [`Discovery`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscoveryKind {
    /// A and AAAA records: each address, at this port.
    Address {
        /// The servers' port.
        port: u16,
    },
    /// SRV records: each target's addresses, at the record's port.
    Srv,
}

impl fmt::Display for Discovery {
    /// The form a configuration file writes after `discover =`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DiscoveryKind::Address { port } => {
                write!(f, "dns {}:{port} {}", self.name, self.weight)
            }
            DiscoveryKind::Srv => write!(f, "srv {} {}", self.name, self.weight),
        }
    }
}

impl FromStr for Discovery {
    type Err = ControlError;

    /// Reads the form a configuration file writes after `discover =`:
    /// `dns NAME:PORT [WEIGHT]` or `srv NAME [WEIGHT]` (a trailing dot on
    /// the name is dropped).
    ///
    /// ```
    /// use ktcpvs_core::model::Discovery;
    /// let d: Discovery = "dns web.internal.:8080".parse().unwrap();
    /// assert_eq!(d.to_string(), "dns web.internal:8080 1");
    /// assert!("dns web.internal".parse::<Discovery>().is_err());
    /// assert!("mdns x 1".parse::<Discovery>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Discovery, ControlError> {
        let invalid = |reason: &str| ControlError::Invalid {
            what: "discover",
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let (kind, target, weight) = match words.as_slice() {
            [kind, target] => (*kind, *target, 1),
            [kind, target, weight] => {
                let weight = weight
                    .parse::<u32>()
                    .map_err(|_| invalid("the weight must be a number"))?;
                validate_weight(weight)?;
                (*kind, *target, weight)
            }
            _ => {
                return Err(invalid(
                    "expected 'dns NAME:PORT [WEIGHT]' or 'srv NAME [WEIGHT]'",
                ))
            }
        };
        let (kind, name) = match kind {
            "dns" => {
                let (name, port) = target
                    .rsplit_once(':')
                    .and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?)))
                    .ok_or_else(|| invalid("a dns name needs :PORT"))?;
                (DiscoveryKind::Address { port }, name)
            }
            "srv" => (DiscoveryKind::Srv, target),
            _ => return Err(invalid("expected dns or srv")),
        };
        let name = name.strip_suffix('.').unwrap_or(name).to_string();
        validate_dns_name(&name)?;
        Ok(Discovery { kind, name, weight })
    }
}

/// Checks a name to look up: 1..=253 bytes of letters, digits, `-`, `_`
/// and `.`, no empty label.
pub fn validate_dns_name(name: &str) -> Result<(), ControlError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63);
    if ok {
        Ok(())
    } else {
        Err(ControlError::Invalid {
            what: "DNS name",
            value: name.to_string(),
            reason: "must be labels of letters, digits, '-' and '_' separated by dots".into(),
        })
    }
}

impl ServiceConfig {
    /// A service with the original's defaults: listen `0.0.0.0:8080`,
    /// scheduler `http`, startservers 8, maxclients 256, minspareservers 6,
    /// maxspareservers 18, no redirect.
    pub fn new(name: &str) -> Self {
        ServiceConfig {
            name: name.to_string(),
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_LISTEN_PORT)),
            scheduler: DEFAULT_SCHEDULER.to_string(),
            startservers: 8,
            maxclients: 256,
            minspareservers: 6,
            maxspareservers: 18,
            redirect: None,
            timeouts: Timeouts::default(),
            forward_for: false,
            upgrades: DEFAULT_UPGRADES.iter().map(|p| p.to_string()).collect(),
            options: BTreeMap::new(),
            tls: None,
            health: HealthConfig::default(),
            proxy_protocol: Networks::none(),
            discover: Vec::new(),
            error_pages: BTreeMap::new(),
            http2: false,
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), ControlError> {
        validate_service_name(&self.name)?;
        let range = |what: &'static str, v: u32, lo: u32, hi: u32| {
            if v < lo || v > hi {
                Err(ControlError::Invalid {
                    what,
                    value: v.to_string(),
                    reason: format!("must be {lo}..={hi}"),
                })
            } else {
                Ok(())
            }
        };
        range("startservers", self.startservers, 1, MAX_PREFORK)?;
        range("maxclients", self.maxclients, 1, MAX_CLIENTS_LIMIT)?;
        range("minspareservers", self.minspareservers, 1, MAX_PREFORK)?;
        range("maxspareservers", self.maxspareservers, 1, MAX_PREFORK)?;
        if self.scheduler.is_empty() {
            return Err(ControlError::Invalid {
                what: "scheduler",
                value: String::new(),
                reason: "empty scheduler name".to_string(),
            });
        }
        for (what, t) in [
            ("connect timeout", self.timeouts.connect),
            ("read timeout", self.timeouts.read),
            ("keepalive timeout", self.timeouts.keepalive),
            ("header timeout", self.timeouts.header),
            ("response timeout", self.timeouts.response),
        ] {
            if let Some(t) = t {
                range(what, t, 1, MAX_TIMEOUT_SECS)?;
            }
        }
        if validate_upgrades(&self.upgrades)? != self.upgrades {
            return Err(ControlError::Invalid {
                what: "upgrade list",
                value: self.upgrades.join(","),
                reason: "protocol names are stored in lower case".to_string(),
            });
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        Ok(())
    }
}

/// A real server ("destination") of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Its address; unique within the service.
    pub addr: SocketAddr,
    /// Its weight, 0..=65535; 0 means quiesced: no new work.
    pub weight: u32,
    /// TLS to the server; `None`: plain TCP.
    pub tls: Option<BackendTls>,
    /// Most connections (layer 4) or requests in flight (HTTP) at once;
    /// 0: no limit. Excess work goes to another server or waits in the
    /// service's queue.
    pub maxconn: u32,
    /// A PROXY protocol header sent first on each connection to the server,
    /// carrying the client's address; `None`: none. Such connections serve
    /// one client only: they are never pooled for another.
    pub send_proxy: Option<ProxyVersion>,
    /// The DNS name (of the service's `discover` list) this server was
    /// found under; `None`: configured. Discovered servers come and go with
    /// the name's records and are listed as comments.
    pub discovered: Option<String>,
}

/// A version of the PROXY protocol (HAProxy's specification): `v1`, a text
/// line, or `v2`, a binary header.
///
/// ```
/// use ktcpvs_core::model::ProxyVersion;
/// assert_eq!("v2".parse::<ProxyVersion>().unwrap(), ProxyVersion::V2);
/// assert_eq!(ProxyVersion::V1.to_string(), "v1");
/// assert!("v3".parse::<ProxyVersion>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    /// The text form: `PROXY TCP4 SRC DST SPORT DPORT\r\n`.
    V1,
    /// The binary form.
    V2,
}

impl fmt::Display for ProxyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyVersion::V1 => "v1",
            ProxyVersion::V2 => "v2",
        })
    }
}

impl FromStr for ProxyVersion {
    type Err = ControlError;

    fn from_str(text: &str) -> Result<ProxyVersion, ControlError> {
        match text {
            "v1" | "V1" | "1" => Ok(ProxyVersion::V1),
            "v2" | "V2" | "2" => Ok(ProxyVersion::V2),
            _ => Err(ControlError::Invalid {
                what: "send_proxy",
                value: text.to_string(),
                reason: "must be v1 or v2".to_string(),
            }),
        }
    }
}

/// Largest accepted per-server `maxconn`.
pub const MAX_SERVER_CONNECTIONS: u32 = 1_000_000;

/// A content rule: requests whose target matches `pattern` (and that meet
/// its `conditions`) go to `servers`, or get the rule's redirect or fixed
/// response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConfig {
    /// The regular expression, matched unanchored against the raw request
    /// target (path and query, exactly as the client sent it), or its
    /// normalised form with the `normalize` condition.
    pub pattern: String,
    /// The capture group a hashing scheduler keys on (`match N`), if any.
    pub match_group: Option<u32>,
    /// The servers this rule routes to, in the order they were added
    /// (none for a redirect or fixed response).
    pub servers: Vec<SocketAddr>,
    /// Conditions besides the pattern; a rule is named by its pattern,
    /// match group and conditions.
    pub conditions: Conditions,
    /// What it does with a request it matches.
    pub action: RuleAction,
    /// Header edits of the requests it forwards and their responses.
    pub edits: Vec<HeaderEdit>,
}

impl RuleConfig {
    /// Whether the rule is a catch-all: the pattern `.*` or `^/.*` with no
    /// other condition. Catch-alls are always tried after every other rule,
    /// as in the original; a catch-all pattern with conditions is an
    /// ordinary rule.
    pub fn is_catch_all(&self) -> bool {
        is_catch_all_pattern(&self.pattern) && self.conditions.is_empty()
    }
}

/// Whether `pattern` is one of the catch-all patterns `.*` and `^/.*`.
pub fn is_catch_all_pattern(pattern: &str) -> bool {
    pattern == ".*" || pattern == "^/.*"
}

/// A service with its servers and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDef {
    /// The service's own settings.
    pub config: ServiceConfig,
    /// Its real servers, in the order they were added.
    pub servers: Vec<ServerConfig>,
    /// Its rules, in evaluation order: the order they were added, with the
    /// catch-all patterns after every other rule.
    pub rules: Vec<RuleConfig>,
}

impl ServiceDef {
    /// A service with no servers and no rules.
    pub fn new(config: ServiceConfig) -> Self {
        ServiceDef {
            config,
            servers: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// The server at `addr`, if the service has it.
    pub fn server(&self, addr: SocketAddr) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.addr == addr)
    }
}

/// A whole configuration: every service, in the order they were added,
/// and where the host program serves its admin listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The services.
    pub services: Vec<ServiceDef>,
    /// `admin = ADDR:PORT`: where the host program serves `/metrics`,
    /// `/healthz` and `/stats` (the engine itself does not read it).
    pub admin: Option<SocketAddr>,
}

impl Config {
    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceDef> {
        self.services.iter().find(|s| s.config.name == name)
    }

    /// The service named `name`, mutably.
    pub fn service_mut(&mut self, name: &str) -> Option<&mut ServiceDef> {
        self.services.iter_mut().find(|s| s.config.name == name)
    }
}

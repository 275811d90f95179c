//! The control-socket wire format: requests and replies as enums, and their
//! parsing and formatting.
//!
//! The protocol is line-oriented text that a person can type with
//! `socat - UNIX-CONNECT:/path` (the full description, with compatibility
//! rules, is `docs/control-protocol.md`):
//!
//! * on connect the daemon greets with `KTCPVS <version> …`
//!   ([`PROTOCOL_VERSION`]);
//! * each request is one line: a verb, then positional words and
//!   `key=value` words (values may be `"quoted"` with `\"` and `\\`);
//! * `load` is followed by configuration text, one line at a time, ending
//!   with a line holding only `.` (lines starting with `.` get one more `.`);
//! * each reply is `OK`, or `OK <n>` followed by exactly `n` body lines, or
//!   `ERR <kind> <message>`.
//!
//! Nothing here does I/O except the bounded line reader [`read_line`], so
//! every parse and format is unit-tested in isolation.

use std::fmt::{self, Write as _};
use std::io::BufRead;

use ktcpvs_core::control::ServiceSpec;
use ktcpvs_core::endpoint::Endpoint;
use ktcpvs_core::ControlError;
use thiserror::Error;

/// The protocol version this crate speaks. It changes only when an existing
/// verb changes meaning; adding verbs, keys or error kinds does not change it.
pub const PROTOCOL_VERSION: u32 = 1;

/// The first word of the greeting line.
pub const GREETING_WORD: &str = "KTCPVS";

/// Longest request or reply line accepted, in bytes (newline excluded).
/// Checked before the line is buffered further.
pub const MAX_LINE: usize = 16 * 1024;

/// Largest configuration text accepted by `load`, in bytes.
pub const MAX_LOAD_BYTES: usize = 4 * 1024 * 1024;

/// The line that ends the text following `load`.
pub const END_OF_TEXT: &str = ".";

/// The greeting the daemon sends on connect.
pub fn greeting() -> String {
    format!(
        "{GREETING_WORD} {PROTOCOL_VERSION} ktcpvs {}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Checks a greeting line and returns the protocol version it announces.
pub fn parse_greeting(line: &str) -> Result<u32, ProtocolError> {
    let mut words = line.split_ascii_whitespace();
    match (words.next(), words.next().map(str::parse::<u32>)) {
        (Some(GREETING_WORD), Some(Ok(v))) => Ok(v),
        _ => Err(ProtocolError::BadGreeting(line.to_string())),
    }
}

/// A line or request that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The first line from the daemon is not `KTCPVS <version> …`.
    #[error("not a ktcpvs control socket: greeting was {0:?}")]
    BadGreeting(String),
    /// A line exceeds [`MAX_LINE`].
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// A line is not UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// The verb is not one this daemon knows.
    #[error("unknown request '{0}' (try 'help')")]
    UnknownVerb(String),
    /// An empty request line.
    #[error("empty request")]
    Empty,
    /// A quoted value is not closed.
    #[error("unterminated quoted string in {0:?}")]
    Unterminated(String),
    /// A verb got a word it does not take.
    #[error("'{verb}' does not take '{word}'")]
    UnexpectedWord {
        /// The verb.
        verb: &'static str,
        /// The word it got.
        word: String,
    },
    /// A verb lacks a word it needs.
    #[error("'{verb}' needs {what}")]
    Missing {
        /// The verb.
        verb: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// A key was given twice.
    #[error("'{key}' given twice")]
    Duplicate {
        /// The key.
        key: String,
    },
    /// A value does not parse.
    #[error("bad value for '{key}': {value:?} ({reason})")]
    BadValue {
        /// The key (or positional role).
        key: String,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A reply line is neither `OK …` nor `ERR …`.
    #[error("malformed reply {0:?}")]
    BadReply(String),
}

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
    /// `sysctl [NAME[=VALUE]]`.
    Sysctl(SysctlRequest),
    /// `load [file=NAME]`, followed by configuration text and a `.` line.
    Load {
        /// The file name, for error messages only.
        file: Option<String>,
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
    ("add-service", "add-service NAME [listen=ADDR[:PORT]] [port=N] [scheduler=NAME] [startservers=N] [maxclients=N] [minspareservers=N] [maxspareservers=N] [redirect=ADDR[:PORT]|none] [connect_timeout=S] [read_timeout=S] [keepalive_timeout=S] [header_timeout=S] [response_timeout=S] [forwardfor=on|off] [option.NAME=VALUE]"),
    ("edit-service", "edit-service NAME [the keys of add-service; option.NAME=none removes an option]"),
    ("delete-service", "delete-service NAME"),
    ("flush", "flush"),
    ("add-server", "add-server SERVICE server=HOST[:PORT] [weight=N]"),
    ("edit-server", "edit-server SERVICE server=HOST[:PORT] [weight=N]"),
    ("delete-server", "delete-server SERVICE server=HOST[:PORT]"),
    ("add-rule", "add-rule SERVICE pattern=REGEX server=HOST[:PORT] [match=N]"),
    ("delete-rule", "delete-rule SERVICE pattern=REGEX server=HOST[:PORT]"),
    ("start", "start [SERVICE]"),
    ("stop", "stop [SERVICE]"),
    ("list", "list [-n] [SERVICE]"),
    ("stats", "stats [SERVICE]"),
    ("sysctl", "sysctl [NAME[=VALUE]]"),
    ("load", "load [file=NAME]   (then the configuration text, then a line '.')"),
    ("ping", "ping"),
    ("help", "help"),
    ("quit", "quit"),
];

/// One word of a request line: `value`, or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    key: Option<String>,
    value: String,
}

/// Splits a request line into words, honouring `"…"` quoting. A word is a
/// `key=value` pair when an `=` appears before any quote.
fn split_words(line: &str) -> Result<Vec<Word>, ProtocolError> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut key = None;
        let mut text = String::new();
        let mut quoted_seen = false;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' => {
                    quoted_seen = true;
                    loop {
                        match chars.next() {
                            None => return Err(ProtocolError::Unterminated(line.to_string())),
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some(e @ ('"' | '\\')) => text.push(e),
                                Some(other) => {
                                    text.push('\\');
                                    text.push(other);
                                }
                                None => return Err(ProtocolError::Unterminated(line.to_string())),
                            },
                            Some(other) => text.push(other),
                        }
                    }
                }
                '=' if key.is_none() && !quoted_seen => {
                    key = Some(std::mem::take(&mut text));
                }
                other => text.push(other),
            }
        }
        words.push(Word { key, value: text });
    }
}

/// Quotes `text` when it would not survive as a bare word.
fn quote_if_needed(text: &str) -> String {
    let bare = !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '=');
    if bare {
        return text.to_string();
    }
    let mut q = String::with_capacity(text.len() + 2);
    q.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// The words of one request after the verb, consumed by the parser.
struct Args {
    verb: &'static str,
    positional: Vec<String>,
    pairs: Vec<(String, String)>,
}

impl Args {
    fn new(verb: &'static str, words: Vec<Word>) -> Result<Args, ProtocolError> {
        let mut positional = Vec::new();
        let mut pairs: Vec<(String, String)> = Vec::new();
        for w in words {
            match w.key {
                Some(k) => {
                    if pairs.iter().any(|(seen, _)| *seen == k) {
                        return Err(ProtocolError::Duplicate { key: k });
                    }
                    pairs.push((k, w.value));
                }
                None => positional.push(w.value),
            }
        }
        Ok(Args {
            verb,
            positional,
            pairs,
        })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(k, _)| k == key)?;
        Some(self.pairs.remove(i).1)
    }

    fn take_parsed<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>, ProtocolError>
    where
        T::Err: fmt::Display,
    {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|e| ProtocolError::BadValue {
                    key: key.to_string(),
                    reason: e.to_string(),
                    value: v,
                }),
        }
    }

    fn require(&mut self, key: &'static str) -> Result<String, ProtocolError> {
        self.take(key).ok_or(ProtocolError::Missing {
            verb: self.verb,
            what: match key {
                "server" => "server=HOST[:PORT]",
                "pattern" => "pattern=REGEX",
                _ => "a required key",
            },
        })
    }

    fn endpoint(&mut self, key: &'static str) -> Result<Endpoint, ProtocolError> {
        let text = self.require(key)?;
        text.parse::<Endpoint>()
            .map_err(|e| ProtocolError::BadValue {
                key: key.to_string(),
                value: text.clone(),
                reason: e.to_string(),
            })
    }

    fn name(&mut self, what: &'static str) -> Result<String, ProtocolError> {
        if self.positional.is_empty() {
            return Err(ProtocolError::Missing {
                verb: self.verb,
                what,
            });
        }
        Ok(self.positional.remove(0))
    }

    fn optional_name(&mut self) -> Option<String> {
        (!self.positional.is_empty()).then(|| self.positional.remove(0))
    }

    /// Refuses anything left over.
    fn finish(self) -> Result<(), ProtocolError> {
        if let Some(word) = self.positional.into_iter().next() {
            return Err(ProtocolError::UnexpectedWord {
                verb: self.verb,
                word,
            });
        }
        if let Some((k, v)) = self.pairs.into_iter().next() {
            return Err(ProtocolError::UnexpectedWord {
                verb: self.verb,
                word: format!("{k}={v}"),
            });
        }
        Ok(())
    }

    fn service_args(&mut self) -> Result<ServiceArgs, ProtocolError> {
        let mut spec = ServiceSpec::default();
        if let Some(text) = self.take("listen") {
            spec.listen = Some(text.parse().map_err(|e: ktcpvs_core::AddrError| {
                ProtocolError::BadValue {
                    key: "listen".into(),
                    value: text.clone(),
                    reason: e.to_string(),
                }
            })?);
        }
        let port = self.take_parsed::<u16>("port")?;
        spec.scheduler = self.take("scheduler");
        spec.startservers = self.take_parsed("startservers")?;
        spec.maxclients = self.take_parsed("maxclients")?;
        spec.minspareservers = self.take_parsed("minspareservers")?;
        spec.maxspareservers = self.take_parsed("maxspareservers")?;
        if let Some(text) = self.take("redirect") {
            spec.redirect = Some(if text == "none" {
                None
            } else {
                Some(
                    text.parse()
                        .map_err(|e: ktcpvs_core::AddrError| ProtocolError::BadValue {
                            key: "redirect".into(),
                            value: text.clone(),
                            reason: e.to_string(),
                        })?,
                )
            });
        }
        spec.connect_timeout = self.take_parsed("connect_timeout")?;
        spec.read_timeout = self.take_parsed("read_timeout")?;
        spec.keepalive_timeout = self.take_parsed("keepalive_timeout")?;
        spec.header_timeout = self.take_parsed("header_timeout")?;
        spec.response_timeout = self.take_parsed("response_timeout")?;
        if let Some(text) = self.take("forwardfor") {
            spec.forward_for = Some(match text.as_str() {
                "on" => true,
                "off" => false,
                _ => {
                    return Err(ProtocolError::BadValue {
                        key: "forwardfor".into(),
                        value: text,
                        reason: "must be on or off".into(),
                    })
                }
            });
        }
        let mut i = 0;
        while i < self.pairs.len() {
            if let Some(name) = self.pairs[i].0.strip_prefix("option.") {
                let name = name.to_string();
                let (_, value) = self.pairs.remove(i);
                spec.options
                    .push((name, (value != "none").then_some(value)));
            } else {
                i += 1;
            }
        }
        Ok(ServiceArgs { spec, port })
    }
}

impl Request {
    /// Parses one request line (without its newline).
    pub fn parse(line: &str) -> Result<Request, ProtocolError> {
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
            "add-service" | "edit-service" => {
                let name = a.name("a service name")?;
                let args = a.service_args()?;
                if verb == "add-service" {
                    Request::AddService { name, args }
                } else {
                    Request::EditService { name, args }
                }
            }
            "delete-service" => Request::DeleteService {
                name: a.name("a service name")?,
            },
            "flush" => Request::Flush,
            "add-server" | "edit-server" => {
                let service = a.name("a service name")?;
                let server = a.endpoint("server")?;
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
            "delete-server" => Request::DeleteServer {
                service: a.name("a service name")?,
                server: a.endpoint("server")?,
            },
            "add-rule" => Request::AddRule {
                service: a.name("a service name")?,
                pattern: a.require("pattern")?,
                match_group: a.take_parsed("match")?,
                server: a.endpoint("server")?,
            },
            "delete-rule" => Request::DeleteRule {
                service: a.name("a service name")?,
                pattern: a.require("pattern")?,
                server: a.endpoint("server")?,
            },
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
            "sysctl" => {
                let request = match (a.positional.len(), a.pairs.len()) {
                    (0, 0) => SysctlRequest::All,
                    (1, 0) => SysctlRequest::Get(a.positional.remove(0)),
                    (0, 1) => {
                        let (k, v) = a.pairs.remove(0);
                        SysctlRequest::Set(k, v)
                    }
                    _ => {
                        return Err(ProtocolError::UnexpectedWord {
                            verb,
                            word: "more than one setting".to_string(),
                        })
                    }
                };
                Request::Sysctl(request)
            }
            "load" => Request::Load {
                file: a.take("file"),
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
            Request::AddService { .. } => "add-service",
            Request::EditService { .. } => "edit-service",
            Request::DeleteService { .. } => "delete-service",
            Request::Flush => "flush",
            Request::AddServer { .. } => "add-server",
            Request::EditServer { .. } => "edit-server",
            Request::DeleteServer { .. } => "delete-server",
            Request::AddRule { .. } => "add-rule",
            Request::DeleteRule { .. } => "delete-rule",
            Request::Start { .. } => "start",
            Request::Stop { .. } => "stop",
            Request::List { .. } => "list",
            Request::Stats { .. } => "stats",
            Request::Sysctl(_) => "sysctl",
            Request::Load { .. } => "load",
            Request::Ping => "ping",
            Request::Help => "help",
            Request::Quit => "quit",
        }
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
    for (name, value) in &s.options {
        push_pair(
            out,
            &format!("option.{name}"),
            value.as_deref().unwrap_or("none"),
        );
    }
}

impl fmt::Display for Request {
    /// Formats the request as one line (no newline), the inverse of
    /// [`Request::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            Request::Flush | Request::Ping | Request::Help | Request::Quit => {}
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
            Request::Start { service } | Request::Stop { service } | Request::Stats { service } => {
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
            Request::Load { file } => {
                if let Some(file) = file {
                    push_pair(&mut out, "file", file);
                }
            }
        }
        f.write_str(&out)
    }
}

/// The kind of an `ERR` reply: a stable token clients may match on. New
/// kinds may appear within a protocol version; clients treat unknown ones
/// as [`ErrorKind::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request line is malformed (missing or unexpected words, bad value).
    Usage,
    /// The verb is unknown.
    UnknownVerb,
    /// A line or a `load` text exceeded its limit.
    TooLong,
    /// A service, server or rule of that identity already exists.
    Exists,
    /// The service does not exist.
    NoSuchService,
    /// The server (or rule/server pair) does not exist.
    NoSuchServer,
    /// The server is used by a rule.
    Busy,
    /// A value is out of range or malformed.
    Invalid,
    /// An address did not parse or resolve.
    Address,
    /// The scheduler is unknown or refused the service.
    Scheduler,
    /// A configuration text did not load.
    Config,
    /// The setting does not exist.
    NoSuchSetting,
    /// The daemon is unloading and takes no changes.
    Unloading,
    /// The daemon cannot take this client now (too many clients).
    Unavailable,
    /// The engine could not put the change into effect (e.g. a listen
    /// address in use); it was rolled back.
    Activation,
    /// A kind this version does not know.
    Other(String),
}

impl ErrorKind {
    /// The token on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::UnknownVerb => "unknown-verb",
            ErrorKind::TooLong => "too-long",
            ErrorKind::Exists => "exists",
            ErrorKind::NoSuchService => "no-such-service",
            ErrorKind::NoSuchServer => "no-such-server",
            ErrorKind::Busy => "busy",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Address => "address",
            ErrorKind::Scheduler => "scheduler",
            ErrorKind::Config => "config",
            ErrorKind::NoSuchSetting => "no-such-setting",
            ErrorKind::Unloading => "unloading",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Activation => "activation",
            ErrorKind::Other(s) => s,
        }
    }

    /// The kind of a wire token.
    pub fn from_token(token: &str) -> ErrorKind {
        match token {
            "usage" => ErrorKind::Usage,
            "unknown-verb" => ErrorKind::UnknownVerb,
            "too-long" => ErrorKind::TooLong,
            "exists" => ErrorKind::Exists,
            "no-such-service" => ErrorKind::NoSuchService,
            "no-such-server" => ErrorKind::NoSuchServer,
            "busy" => ErrorKind::Busy,
            "invalid" => ErrorKind::Invalid,
            "address" => ErrorKind::Address,
            "scheduler" => ErrorKind::Scheduler,
            "config" => ErrorKind::Config,
            "no-such-setting" => ErrorKind::NoSuchSetting,
            "unloading" => ErrorKind::Unloading,
            "unavailable" => ErrorKind::Unavailable,
            "activation" => ErrorKind::Activation,
            other => ErrorKind::Other(other.to_string()),
        }
    }

    /// The kind that reports a refused control operation.
    pub fn of_control_error(e: &ControlError) -> ErrorKind {
        match e {
            ControlError::ServiceExists(_)
            | ControlError::DestinationExists { .. }
            | ControlError::RuleExists { .. } => ErrorKind::Exists,
            ControlError::NoSuchService(_) => ErrorKind::NoSuchService,
            ControlError::NoSuchDestination { .. } | ControlError::NoSuchRule { .. } => {
                ErrorKind::NoSuchServer
            }
            ControlError::DestinationBusy { .. } => ErrorKind::Busy,
            ControlError::BadPattern { .. } | ControlError::Invalid { .. } => ErrorKind::Invalid,
            ControlError::Addr(_) => ErrorKind::Address,
            ControlError::SchedulerNotFound(..) | ControlError::Scheduler(_) => {
                ErrorKind::Scheduler
            }
            ControlError::Config(_) => ErrorKind::Config,
            ControlError::UnknownSetting(..) => ErrorKind::NoSuchSetting,
            ControlError::Unloaded => ErrorKind::Unloading,
            ControlError::Activation(_) => ErrorKind::Activation,
        }
    }

    /// The kind that reports a malformed request.
    pub fn of_protocol_error(e: &ProtocolError) -> ErrorKind {
        match e {
            ProtocolError::UnknownVerb(_) => ErrorKind::UnknownVerb,
            ProtocolError::LineTooLong { .. } => ErrorKind::TooLong,
            _ => ErrorKind::Usage,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reply from the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success, with a body of zero or more lines (each without newline).
    Ok(Vec<String>),
    /// Failure: nothing was changed.
    Err {
        /// What kind of failure.
        kind: ErrorKind,
        /// What went wrong, with what (one line).
        message: String,
    },
}

impl Reply {
    /// A success whose body is `text`, split into lines.
    pub fn with_text(text: &str) -> Reply {
        Reply::Ok(text.lines().map(str::to_string).collect())
    }

    /// A failure; newlines in `message` become spaces so the reply stays
    /// one line.
    pub fn error(kind: ErrorKind, message: impl fmt::Display) -> Reply {
        let message = message.to_string().replace(['\r', '\n'], " ");
        Reply::Err { kind, message }
    }

    /// The reply as it goes on the wire, every line ending in `\n`.
    pub fn to_wire(&self) -> String {
        match self {
            Reply::Ok(body) if body.is_empty() => "OK\n".to_string(),
            Reply::Ok(body) => {
                let mut out = format!("OK {}\n", body.len());
                for line in body {
                    // Body lines are single lines by construction; a stray
                    // newline would break the framing, so it is replaced.
                    out.push_str(&line.replace(['\r', '\n'], " "));
                    out.push('\n');
                }
                out
            }
            Reply::Err { kind, message } => format!("ERR {kind} {message}\n"),
        }
    }

    /// Parses a status line: `Ok(n)` for `OK [n]` (n body lines follow),
    /// or the complete `Err` reply.
    pub fn parse_status(line: &str) -> Result<Result<usize, Reply>, ProtocolError> {
        let bad = || ProtocolError::BadReply(line.to_string());
        if line == "OK" {
            return Ok(Ok(0));
        }
        if let Some(count) = line.strip_prefix("OK ") {
            return count.trim().parse::<usize>().map(Ok).map_err(|_| bad());
        }
        if let Some(rest) = line.strip_prefix("ERR ") {
            let (kind, message) = rest.split_once(' ').unwrap_or((rest, ""));
            if kind.is_empty() {
                return Err(bad());
            }
            return Ok(Err(Reply::Err {
                kind: ErrorKind::from_token(kind),
                message: message.to_string(),
            }));
        }
        Err(bad())
    }
}

/// Escapes one line of `load` text for the wire (a leading `.` is doubled).
pub fn stuff_line(line: &str) -> String {
    if line.starts_with('.') {
        format!(".{line}")
    } else {
        line.to_string()
    }
}

/// What one line of `load` text means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextLine<'a> {
    /// A line of the text (unescaped).
    Line(&'a str),
    /// The terminating `.`.
    End,
}

/// Reads one wire line of `load` text.
pub fn unstuff_line(line: &str) -> TextLine<'_> {
    if line == END_OF_TEXT {
        TextLine::End
    } else if let Some(rest) = line.strip_prefix('.') {
        TextLine::Line(rest)
    } else {
        TextLine::Line(line)
    }
}

/// Outcome of [`read_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// A complete line (its `\n` and any `\r` before it removed).
    Line(String),
    /// End of stream before any byte of a new line.
    Eof,
}

/// Reads one `\n`-terminated line of at most `max` bytes. The limit is
/// checked against each buffered chunk before it is copied, so a peer that
/// never sends a newline costs at most `max` bytes of memory. A line that
/// exceeds the limit is consumed up to its newline (or end of stream) and
/// reported as [`ProtocolError::LineTooLong`], so the next line can be read.
pub fn read_line<R: BufRead>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Result<LineRead, ProtocolError>> {
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            if line.is_empty() && !too_long {
                return Ok(Ok(LineRead::Eof));
            }
            break;
        }
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long && line.len() + chunk.len() > max {
            too_long = true;
            line = Vec::new();
        }
        if !too_long {
            line.extend_from_slice(chunk);
        }
        let used = found.unwrap_or(available.len());
        reader.consume(used);
        if found.is_some() {
            break;
        }
    }
    if too_long {
        return Ok(Err(ProtocolError::LineTooLong { max }));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8(line)
        .map(LineRead::Line)
        .map_err(|_| ProtocolError::NotUtf8))
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
    fn every_field_round_trips() {
        round_trip(
            "edit-service web listen=[::1]:81 port=82 scheduler=hhttp startservers=1 maxclients=2 \
             minspareservers=3 maxspareservers=4 redirect=none connect_timeout=5 read_timeout=6 \
             keepalive_timeout=7 header_timeout=8 response_timeout=9 forwardfor=on \
             option.cookie=\"KTCPVS SID\" option.key=none",
        );
        round_trip("add-service w redirect=localhost:www forwardfor=off");
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

    #[test]
    fn replies_round_trip() {
        let ok = Reply::Ok(vec![]);
        assert_eq!(ok.to_wire(), "OK\n");
        assert_eq!(Reply::parse_status("OK").unwrap(), Ok(0));
        let body = Reply::with_text("Virtual web {\n    listen = 0.0.0.0:8080\n}\n");
        let wire = body.to_wire();
        assert!(wire.starts_with("OK 3\n"));
        assert_eq!(Reply::parse_status("OK 3").unwrap(), Ok(3));
        let err = Reply::error(ErrorKind::NoSuchService, "No such service: 'x'\nsecond");
        assert_eq!(
            err.to_wire(),
            "ERR no-such-service No such service: 'x' second\n"
        );
        assert_eq!(
            Reply::parse_status("ERR no-such-service No such service: 'x' second").unwrap(),
            Err(Reply::Err {
                kind: ErrorKind::NoSuchService,
                message: "No such service: 'x' second".into()
            })
        );
        assert_eq!(
            Reply::parse_status("ERR brand-new-kind text").unwrap(),
            Err(Reply::Err {
                kind: ErrorKind::Other("brand-new-kind".into()),
                message: "text".into()
            })
        );
        for bad in ["", "OK x", "ERR", "ERR ", "YES", "ok"] {
            assert!(Reply::parse_status(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_error_kind_token_round_trips() {
        for kind in [
            ErrorKind::Usage,
            ErrorKind::UnknownVerb,
            ErrorKind::TooLong,
            ErrorKind::Exists,
            ErrorKind::NoSuchService,
            ErrorKind::NoSuchServer,
            ErrorKind::Busy,
            ErrorKind::Invalid,
            ErrorKind::Address,
            ErrorKind::Scheduler,
            ErrorKind::Config,
            ErrorKind::NoSuchSetting,
            ErrorKind::Unloading,
            ErrorKind::Unavailable,
            ErrorKind::Activation,
        ] {
            assert_eq!(ErrorKind::from_token(kind.as_str()), kind);
        }
    }

    #[test]
    fn greeting_round_trips_and_strangers_are_refused() {
        assert_eq!(parse_greeting(&greeting()).unwrap(), PROTOCOL_VERSION);
        assert_eq!(parse_greeting("KTCPVS 2 future").unwrap(), 2);
        assert!(parse_greeting("SSH-2.0-OpenSSH").is_err());
        assert!(parse_greeting("KTCPVS x").is_err());
        assert!(parse_greeting("").is_err());
    }

    #[test]
    fn load_text_dot_stuffing_round_trips() {
        for line in ["", ".", "..", ".hidden", "Virtual web {", " . "] {
            let wire = stuff_line(line);
            assert_eq!(unstuff_line(&wire), TextLine::Line(line), "{line:?}");
        }
        assert_eq!(unstuff_line("."), TextLine::End);
    }

    #[test]
    fn bounded_reader_refuses_long_lines_and_recovers() {
        let long = "x".repeat(100);
        let input = format!("short\r\n{long}\nnext\nlast-without-newline");
        let mut r = std::io::BufReader::with_capacity(8, input.as_bytes());
        assert_eq!(
            read_line(&mut r, 50).unwrap(),
            Ok(LineRead::Line("short".into()))
        );
        assert_eq!(
            read_line(&mut r, 50).unwrap(),
            Err(ProtocolError::LineTooLong { max: 50 })
        );
        assert_eq!(
            read_line(&mut r, 50).unwrap(),
            Ok(LineRead::Line("next".into()))
        );
        assert_eq!(
            read_line(&mut r, 50).unwrap(),
            Ok(LineRead::Line("last-without-newline".into()))
        );
        assert_eq!(read_line(&mut r, 50).unwrap(), Ok(LineRead::Eof));
        let mut bad = std::io::BufReader::new(&b"\xff\xfe\n"[..]);
        assert_eq!(
            read_line(&mut bad, 50).unwrap(),
            Err(ProtocolError::NotUtf8)
        );
    }
}

//! What a rule asks of a request besides its target pattern, and what it
//! does with it besides choosing servers: the conditions (`host`,
//! `method`, `header`, `cookie`, `query`, `src`, and matching on the
//! normalised path), the edge actions (`redirect`, `respond`) and the
//! header edits, in their configuration form ([`Conditions`],
//! [`RuleAction`], [`HeaderEdit`]) and compiled ([`CompiledConditions`]).
//!
//! Matching allocates nothing: header values and cookies are read from the
//! parsed head, and the normalised path and a field's combined value are
//! built in per-thread scratch space kept between requests.

use std::cell::RefCell;
use std::fmt;

use regex::{Regex, RegexBuilder};
use thread_local::ThreadLocal;

use crate::config::quote;
use crate::error::ControlError;
use crate::network::Networks;
use crate::scheduler::PickRequest;

/// Longest accepted condition pattern, in bytes.
pub const MAX_CONDITION_PATTERN: usize = 1024;

/// Longest `respond` body, in bytes.
pub const MAX_RESPOND_BODY: usize = 64 * 1024;

/// The conditions of a rule besides its pattern; all must hold. Empty:
/// the pattern alone decides, as in the original.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Conditions {
    /// The request's host (without its port), matched case-insensitively:
    /// a regular expression, or with a leading `=` an exact name.
    pub host: Option<String>,
    /// The methods accepted (upper case, as sent); empty: any.
    pub methods: Vec<String>,
    /// `(NAME, RE)`: the combined value of the fields named NAME (joined
    /// with `", "`) must match RE; a missing field never matches.
    pub headers: Vec<(String, String)>,
    /// `(NAME, RE)`: the cookie NAME must be present and match RE.
    pub cookies: Vec<(String, String)>,
    /// The query string (after `?`, without it) must match this.
    pub query: Option<String>,
    /// The client (after the PROXY protocol) must be in these networks;
    /// empty: any client.
    pub src: Networks,
    /// Match the pattern against the normalised path (percent-encoded
    /// unreserved characters decoded, dot segments removed, repeated
    /// slashes merged), the query appended as sent; the target forwarded
    /// is unchanged.
    pub normalize: bool,
}

impl Conditions {
    /// Whether there is no condition.
    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }
}

impl fmt::Display for Conditions {
    /// The conditions as a rule statement writes them (each preceded by a
    /// blank).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.host {
            write!(f, " host {}", quote(h))?;
        }
        if !self.methods.is_empty() {
            write!(f, " method {}", self.methods.join(","))?;
        }
        for (name, re) in &self.headers {
            write!(f, " header {name} {}", quote(re))?;
        }
        for (name, re) in &self.cookies {
            write!(f, " cookie {name} {}", quote(re))?;
        }
        if let Some(q) = &self.query {
            write!(f, " query {}", quote(q))?;
        }
        if !self.src.is_empty() {
            write!(f, " src {}", self.src)?;
        }
        if self.normalize {
            f.write_str(" normalize")?;
        }
        Ok(())
    }
}

/// What a rule does with a request it matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// Forward it to one of the rule's servers (`use server`).
    #[default]
    Forward,
    /// Answer with a redirect (`redirect STATUS "LOCATION"`): `$1`…`$9`
    /// in the location are the pattern's capture groups, `{host}` the
    /// request's host and `{path}` its target.
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// The location template.
        location: String,
    },
    /// Answer with a fixed response (`respond STATUS "TYPE" "BODY"`).
    Respond {
        /// 200..=599.
        status: u16,
        /// The `Content-Type`.
        content_type: String,
        /// The body.
        body: String,
    },
}

impl RuleAction {
    /// Checks the status, location, type and body.
    pub fn validate(&self) -> Result<(), ControlError> {
        let invalid = |what: &'static str, value: String, reason: &str| {
            Err(ControlError::Invalid {
                what,
                value,
                reason: reason.to_string(),
            })
        };
        match self {
            RuleAction::Forward => Ok(()),
            RuleAction::Redirect { status, location } => {
                if ![301, 302, 303, 307, 308].contains(status) {
                    return invalid(
                        "redirect status",
                        status.to_string(),
                        "must be 301, 302, 303, 307 or 308",
                    );
                }
                if location.is_empty() || !is_field_value(location) {
                    return invalid(
                        "redirect location",
                        location.clone(),
                        "must be a non-empty field value (no control characters)",
                    );
                }
                Ok(())
            }
            RuleAction::Respond {
                status,
                content_type,
                body,
            } => {
                if !(200..=599).contains(status) || *status == 204 || *status == 304 {
                    return invalid(
                        "respond status",
                        status.to_string(),
                        "must be 200..=599, not 204 or 304",
                    );
                }
                if content_type.is_empty() || !is_field_value(content_type) {
                    return invalid(
                        "respond type",
                        content_type.clone(),
                        "must be a non-empty field value",
                    );
                }
                if body.len() > MAX_RESPOND_BODY {
                    return invalid(
                        "respond body",
                        format!("{} bytes", body.len()),
                        "at most 64 KiB",
                    );
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for RuleAction {
    /// The action as a rule statement writes it, without the servers of a
    /// forwarding rule (`use server` is written per server).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleAction::Forward => f.write_str("use server"),
            RuleAction::Redirect { status, location } => {
                write!(f, "redirect {status} {}", quote(location))
            }
            RuleAction::Respond {
                status,
                content_type,
                body,
            } => write!(
                f,
                "respond {status} {} {}",
                quote(content_type),
                quote(body)
            ),
        }
    }
}

/// Which head a [`HeaderEdit`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EditSide {
    /// The request forwarded to the server.
    Request,
    /// The response sent to the client.
    Response,
}

/// How a [`HeaderEdit`] changes a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EditOp {
    /// Remove every field of the name, then add one with the value.
    Set,
    /// Add a field, keeping those there.
    Add,
    /// Remove every field of the name.
    Del,
}

/// A header rewrite of a rule: `request_header set NAME "VALUE"`,
/// `response_header del NAME`, ….
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderEdit {
    /// Request or response.
    pub side: EditSide,
    /// Set, add or delete.
    pub op: EditOp,
    /// The field name (a token).
    pub name: String,
    /// The value (empty for `del`).
    pub value: String,
}

/// Fields no edit may touch: they frame the message or the connection,
/// which the proxy decides.
pub const PROTECTED_FIELDS: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "host",
];

impl HeaderEdit {
    /// Checks the name (a token, not a framing field) and the value.
    pub fn validate(&self) -> Result<(), ControlError> {
        check_name("header name", &self.name)?;
        if PROTECTED_FIELDS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&self.name))
        {
            return Err(ControlError::Invalid {
                what: "header name",
                value: self.name.clone(),
                reason: "framing and connection fields are the proxy's to write".into(),
            });
        }
        if !is_field_value(&self.value) || self.value.len() > 4096 {
            return Err(ControlError::Invalid {
                what: "header value",
                value: self.value.clone(),
                reason: "must be at most 4096 bytes without control characters".into(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for HeaderEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            EditSide::Request => "request_header",
            EditSide::Response => "response_header",
        };
        match self.op {
            EditOp::Set => write!(f, "{side} set {} {}", self.name, quote(&self.value)),
            EditOp::Add => write!(f, "{side} add {} {}", self.name, quote(&self.value)),
            EditOp::Del => write!(f, "{side} del {}", self.name),
        }
    }
}

/// Whether `v` may be a field value: visible ASCII, blanks and obs-text,
/// no control character.
fn is_field_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// A [`Conditions`] ready to match: its regular expressions compiled.
#[derive(Debug)]
pub struct CompiledConditions {
    host: Option<HostMatch>,
    methods: Vec<String>,
    headers: Vec<(String, Regex)>,
    cookies: Vec<(String, Regex)>,
    query: Option<Regex>,
    src: Networks,
    normalize: bool,
    scratch: ThreadLocal<RefCell<String>>,
}

#[derive(Debug)]
enum HostMatch {
    Exact(String),
    Pattern(Regex),
}

fn compile(re: &str, case_insensitive: bool) -> Result<Regex, ControlError> {
    if re.is_empty() || re.len() > MAX_CONDITION_PATTERN {
        return Err(ControlError::BadPattern {
            pattern: re.to_string(),
            reason: format!("a pattern must be 1..={MAX_CONDITION_PATTERN} bytes"),
        });
    }
    RegexBuilder::new(re)
        .case_insensitive(case_insensitive)
        .build()
        .map_err(|e| ControlError::BadPattern {
            pattern: re.to_string(),
            reason: e.to_string(),
        })
}

fn check_name(what: &'static str, name: &str) -> Result<(), ControlError> {
    let token = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        Ok(())
    } else {
        Err(ControlError::Invalid {
            what,
            value: name.to_string(),
            reason: "must be an HTTP token of 1..=64 characters".into(),
        })
    }
}

impl CompiledConditions {
    /// Compiles `c`, refusing a bad pattern, name or method.
    pub fn new(c: &Conditions) -> Result<CompiledConditions, ControlError> {
        let host = match c.host.as_deref() {
            None => None,
            Some(h) => Some(match h.strip_prefix('=') {
                Some(exact) if !exact.is_empty() => HostMatch::Exact(exact.to_ascii_lowercase()),
                _ => HostMatch::Pattern(compile(h, true)?),
            }),
        };
        for m in &c.methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) || m.len() > 32 {
                return Err(ControlError::Invalid {
                    what: "method",
                    value: m.clone(),
                    reason: "must be upper-case letters".into(),
                });
            }
        }
        let mut headers = Vec::with_capacity(c.headers.len());
        for (name, re) in &c.headers {
            check_name("header name", name)?;
            headers.push((name.clone(), compile(re, false)?));
        }
        let mut cookies = Vec::with_capacity(c.cookies.len());
        for (name, re) in &c.cookies {
            check_name("cookie name", name)?;
            cookies.push((name.clone(), compile(re, false)?));
        }
        Ok(CompiledConditions {
            host,
            methods: c.methods.clone(),
            headers,
            cookies,
            query: c.query.as_deref().map(|q| compile(q, false)).transpose()?,
            src: c.src.clone(),
            normalize: c.normalize,
            scratch: ThreadLocal::new(),
        })
    }

    /// Whether the rule matches by its pattern on the normalised path.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// Whether every condition but the pattern holds for `request`; the
    /// first that fails is named (for `--explain`). A request without a
    /// head (layer 4) fails any condition on it.
    pub fn check(&self, request: &PickRequest<'_>) -> Result<(), &'static str> {
        if !self.src.is_empty() && !self.src.contains(request.client.ip()) {
            return Err("src");
        }
        let needs_head = self.host.is_some()
            || !self.methods.is_empty()
            || !self.headers.is_empty()
            || !self.cookies.is_empty()
            || self.query.is_some();
        let Some(head) = request.head else {
            return if needs_head {
                Err("request head")
            } else {
                Ok(())
            };
        };
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == head.method) {
            return Err("method");
        }
        if let Some(h) = &self.host {
            let host = head.host.map(strip_port).unwrap_or("");
            let ok = match h {
                HostMatch::Exact(name) => host.eq_ignore_ascii_case(name),
                HostMatch::Pattern(re) => head.host.is_some() && re.is_match(host),
            };
            if !ok {
                return Err("host");
            }
        }
        if let Some(q) = &self.query {
            let query = head.target.split_once('?').map(|(_, q)| q);
            if !query.is_some_and(|query| q.is_match(query)) {
                return Err("query");
            }
        }
        for (name, re) in &self.cookies {
            if !head.cookie(name).is_some_and(|v| re.is_match(v)) {
                return Err("cookie");
            }
        }
        if !self.headers.is_empty() {
            let cell = self.scratch.get_or(|| RefCell::new(String::new()));
            let mut joined = cell.borrow_mut();
            for (name, re) in &self.headers {
                if !combined(head.headers, name, &mut joined) || !re.is_match(&joined) {
                    return Err("header");
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on the text the pattern is matched against: the target as
    /// sent, or its normalised form (built in per-thread scratch).
    pub fn with_target<R>(&self, target: &str, f: impl FnOnce(&str) -> R) -> R {
        if !self.normalize {
            return f(target);
        }
        let cell = self.scratch.get_or(|| RefCell::new(String::new()));
        let mut out = cell.borrow_mut();
        normalize_target(target, &mut out);
        f(&out)
    }
}

/// `host` without a `:port` (an IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// Joins the values of the fields named `name` with `", "` into `out`;
/// `false` when there is none.
fn combined(headers: &[crate::scheduler::Header<'_>], name: &str, out: &mut String) -> bool {
    out.clear();
    let mut found = false;
    for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)) {
        if found {
            out.push_str(", ");
        }
        out.push_str(&String::from_utf8_lossy(h.value));
        found = true;
    }
    found
}

/// Writes the normalised form of `target` into `out`: in the path,
/// percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
/// decoded (others stay encoded, hex digits upper-cased), repeated slashes
/// are merged, and `.` and `..` segments are removed (RFC 3986 §5.2.4,
/// never above the root); the query is kept as sent.
///
/// ```
/// use ktcpvs_core::condition::normalize_target;
/// let mut out = String::new();
/// for (raw, norm) in [
///     ("/%2e%2e/admin", "/admin"),
///     ("//admin", "/admin"),
///     ("/a/./b/../c", "/a/c"),
///     ("/a/%2E%2e/%61dmin?x=/../y", "/admin?x=/../y"),
///     ("/a%2fb", "/a%2Fb"),
///     ("/a/b/..", "/a/"),
/// ] {
///     normalize_target(raw, &mut out);
///     assert_eq!(out, norm, "{raw}");
/// }
/// ```
pub fn normalize_target(target: &str, out: &mut String) {
    out.clear();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let bytes = path.as_bytes();
    out.push('/');
    // `out` holds the normalised path so far, ending with `/` before each
    // segment; the segment being read runs from `start`.
    let mut start = out.len();
    let mut i = 0;
    loop {
        match bytes.get(i).copied() {
            end @ (None | Some(b'/')) => {
                match &out[start..] {
                    "" => {}
                    "." => out.truncate(start),
                    ".." => {
                        out.truncate(start);
                        if out.len() > 1 {
                            out.pop();
                            let cut = out.rfind('/').map_or(1, |at| at + 1);
                            out.truncate(cut);
                        }
                    }
                    _ if end.is_some() => out.push('/'),
                    _ => {}
                }
                if end.is_none() {
                    break;
                }
                start = out.len();
                i += 1;
            }
            Some(b'%') => {
                let hex = |at: usize| bytes.get(at).and_then(|&c| char::from(c).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(h), Some(l)) => {
                        // Two hex digits: below 256.
                        let c = (h * 16 + l) as u8;
                        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                            out.push(char::from(c));
                        } else {
                            out.push('%');
                            out.push(char::from(bytes[i + 1]).to_ascii_uppercase());
                            out.push(char::from(bytes[i + 2]).to_ascii_uppercase());
                        }
                        i += 3;
                    }
                    _ => {
                        out.push('%');
                        i += 1;
                    }
                }
            }
            Some(c) => {
                out.push(char::from(c));
                i += 1;
            }
        }
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
}

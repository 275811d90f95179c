//! The printer: a [`Config`] in configuration-file syntax, as `tcpvsadm -L`
//! shows it. Printing and then parsing gives back the identical
//! configuration.

use std::fmt::Write;

use crate::command::RuleSpec;
use crate::condition::RuleAction;
use crate::endpoint::{format_addr, Endpoint};
use crate::model::{format_upgrade_list, Config, ServiceDef, DEFAULT_UPGRADES};

/// How to print a configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// Print ports as numbers (`-n`); otherwise well-known ports are
    /// printed by service name (`http`, `webcache`).
    pub numeric: bool,
}

/// Prints every service, in the order they were added.
pub fn print(config: &Config, options: &PrintOptions) -> String {
    let mut out = String::new();
    if let Some(admin) = config.admin {
        let _ = writeln!(out, "admin = {}", format_addr(admin, true));
        if !config.services.is_empty() {
            out.push('\n');
        }
    }
    for (i, def) in config.services.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&print_service(def, options));
    }
    out
}

/// `text` in double quotes, with `"` and `\` escaped and line breaks and
/// tabs as `\n`, `\r`, `\t`, as the lexer reads them back.
///
/// ```
/// assert_eq!(ktcpvs_core::config::quote("a\"b\n"), r#""a\"b\n""#);
/// ```
pub fn quote(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 2);
    q.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            // The lexer decodes these escapes; a raw line break would end
            // the string.
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Prints one service block.
pub fn print_service(def: &ServiceDef, options: &PrintOptions) -> String {
    let n = options.numeric;
    let c = &def.config;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "Virtual {} {{", c.name);
    let _ = writeln!(out, "    listen = {}", format_addr(c.listen, n));
    let _ = writeln!(out, "    scheduler = {}", c.scheduler);
    let _ = writeln!(out, "    startservers = {}", c.startservers);
    let _ = writeln!(out, "    maxclients = {}", c.maxclients);
    let _ = writeln!(out, "    minspareservers = {}", c.minspareservers);
    let _ = writeln!(out, "    maxspareservers = {}", c.maxspareservers);
    if let Some(r) = c.redirect {
        let _ = writeln!(out, "    redirect = {}", format_addr(r, n));
    }
    for (key, value) in [
        ("connect_timeout", c.timeouts.connect),
        ("read_timeout", c.timeouts.read),
        ("keepalive_timeout", c.timeouts.keepalive),
        ("header_timeout", c.timeouts.header),
        ("response_timeout", c.timeouts.response),
    ] {
        if let Some(v) = value {
            let _ = writeln!(out, "    {key} = {v}");
        }
    }
    if c.forward_for {
        let _ = writeln!(out, "    forwardfor = on");
    }
    if c.http2 {
        let _ = writeln!(out, "    http2 = on");
    }
    if !c.proxy_protocol.is_empty() {
        let _ = writeln!(out, "    proxy_protocol = {}", c.proxy_protocol);
    }
    for d in &c.discover {
        let _ = writeln!(out, "    discover = {d}");
    }
    for (status, page) in &c.error_pages {
        let _ = writeln!(
            out,
            "    error_page = {status} {} {}",
            quote(&page.content_type),
            quote(&page.body)
        );
    }
    if c.upgrades.iter().map(String::as_str).ne(DEFAULT_UPGRADES) {
        // Protocol names are tokens, so the list is one bare word, unless
        // one holds a `#`, which would start a comment there.
        let list = format_upgrade_list(&c.upgrades);
        let list = if list.contains('#') {
            quote(&list)
        } else {
            list
        };
        let _ = writeln!(out, "    upgrade = {list}");
    }
    for (key, value) in &c.options {
        let _ = writeln!(out, "    option {key} = {}", quote(value));
    }
    for (key, value) in c.health.entries() {
        let bare = !value.is_empty()
            && !value
                .chars()
                .any(|c| c.is_whitespace() || "={};\"#\\".contains(c));
        let value = if bare { value } else { quote(&value) };
        let _ = writeln!(out, "    {key} = {value}");
    }
    if let Some(tls) = &c.tls {
        for files in &tls.certificates {
            let _ = writeln!(
                out,
                "    certificate = {} key {}",
                quote(&files.chain.to_string_lossy()),
                quote(&files.key.to_string_lossy())
            );
        }
        if !tls.host_check {
            let _ = writeln!(out, "    sni_host_check = off");
        }
    }
    for s in &def.servers {
        if let Some(name) = &s.discovered {
            // Found through DNS: listed for the operator, not configured.
            let _ = writeln!(
                out,
                "    # server = {} {} (discovered: {name})",
                format_addr(s.addr, n),
                s.weight
            );
            continue;
        }
        let _ = write!(out, "    server = {} {}", format_addr(s.addr, n), s.weight);
        if s.maxconn != 0 {
            let _ = write!(out, " maxconn {}", s.maxconn);
        }
        if let Some(version) = s.send_proxy {
            let _ = write!(out, " send_proxy {version}");
        }
        if let Some(tls) = &s.tls {
            out.push_str(" tls");
            if let Some(name) = &tls.name {
                let _ = write!(out, " name {name}");
            }
            if let Some(ca) = &tls.ca {
                let _ = write!(out, " ca {}", quote(&ca.to_string_lossy()));
            }
            if let Some(c) = &tls.certificate {
                let _ = write!(
                    out,
                    " client_certificate {} key {}",
                    quote(&c.chain.to_string_lossy()),
                    quote(&c.key.to_string_lossy())
                );
            }
        }
        out.push('\n');
    }
    for r in &def.rules {
        let mut head = format!("    rule = pattern {}", quote(&r.pattern));
        if let Some(m) = r.match_group {
            let _ = write!(head, " match {m}");
        }
        let _ = write!(head, "{}", r.conditions);
        let mut edits = String::new();
        for e in &r.edits {
            let _ = write!(edits, " {e}");
        }
        if r.action == RuleAction::Forward {
            for addr in &r.servers {
                let _ = writeln!(out, "{head} use server {}{edits}", format_addr(*addr, n));
            }
        } else {
            let _ = writeln!(out, "{head} {}{edits}", r.action);
        }
    }
    out.push_str("}\n");
    out
}

/// The text of a rule statement after `rule =`, as a file writes it and
/// [`parse_rule`](super::parse_rule) reads it: the rule `spec` routing to
/// `server` (a forwarding rule), or answering itself (`server` `None`).
///
/// ```
/// use ktcpvs_core::config::{parse_rule, rule_statement};
/// use ktcpvs_core::{Command, RuleSpec};
/// let text = r#"pattern "^/a" host "=a.test" use server 10.0.0.1:80 request_header set X-A "1""#;
/// let Command::AddRuleWith { rule, server, .. } = parse_rule("web", text)? else { panic!() };
/// assert_eq!(rule_statement(&rule, server.as_ref()), text);
/// # Ok::<(), ktcpvs_core::ConfigError>(())
/// ```
pub fn rule_statement(spec: &RuleSpec, server: Option<&Endpoint>) -> String {
    let mut out = format!("pattern {}", quote(&spec.pattern));
    if let Some(m) = spec.match_group {
        let _ = write!(out, " match {m}");
    }
    let _ = write!(out, "{}", spec.conditions);
    match (&spec.action, server) {
        (RuleAction::Forward, Some(server)) => {
            let _ = write!(out, " use server {server}");
        }
        (RuleAction::Forward, None) => out.push_str(" use server"),
        (action, _) => {
            let _ = write!(out, " {action}");
        }
    }
    for e in &spec.edits {
        let _ = write!(out, " {e}");
    }
    out
}

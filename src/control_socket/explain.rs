//! `explain`: what the running configuration would do with a request,
//! without sending anything to a server: which rule matches (and, for
//! each rule tried before it, which of its conditions failed), what the
//! rule does (a redirect with its location, a fixed response, or servers),
//! the candidate servers with their live load, weight and health, the
//! server the scheduler picks now, and why the others were not picked.
//!
//! It runs the same code a request runs: the snapshot's compiled rules
//! ([`Rule::explain`], the matching every rule-based scheduler uses) and
//! the service's picker. Asking the picker is asking the scheduler: a
//! round-robin scheduler's turn moves on by one.

use std::fmt::Write as _;
use std::net::SocketAddr;

use ktcpvs_core::condition::RuleAction;
use ktcpvs_core::scheduler::Header;
use ktcpvs_core::snapshot::ServiceSnapshot;
use ktcpvs_core::{PickRequest, RealServer, RequestHead, Rule};

/// A request to explain, as `tcpvsadm --explain` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainRequest {
    /// The method.
    pub method: String,
    /// The target (origin form).
    pub target: String,
    /// Header fields, `(name, value)`; a `Host` among them is the host.
    pub headers: Vec<(String, String)>,
    /// The client's address.
    pub client: SocketAddr,
}

/// The lines of the explanation of `request` for `service`.
pub fn explain(service: &ServiceSnapshot, request: &ExplainRequest) -> Vec<String> {
    let headers: Vec<Header<'_>> = request
        .headers
        .iter()
        .map(|(n, v)| Header {
            name: n,
            value: v.as_bytes(),
        })
        .collect();
    let host = request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.as_str());
    let head = RequestHead {
        method: &request.method,
        target: &request.target,
        host,
        version: 1,
        headers: &headers,
    };
    let pick = PickRequest {
        client: request.client,
        head: Some(&head),
        exclude: &[],
        server_name: None,
    };
    let c = service.config();
    let mut lines = vec![format!(
        "service {} (scheduler {}): {} {} from {}",
        c.name, c.scheduler, request.method, request.target, request.client
    )];
    let rules = service.compiled_rules();
    let mut matched: Option<&Rule> = None;
    for (i, rule) in rules.iter().enumerate() {
        let name = format!("rule {} {}", i + 1, describe(service, i));
        match rule.explain(&pick) {
            Ok(()) => {
                lines.push(format!("{name}: matches"));
                matched = Some(rule);
                break;
            }
            Err(what) => lines.push(format!("{name}: no ({what} does not match)")),
        }
    }
    if !rules.is_empty() && matched.is_none() {
        lines.push("no rule matches: the request goes to the redirect address, or gets 502".into());
        return lines;
    }
    match matched.map(Rule::action) {
        Some(RuleAction::Redirect { status, .. }) => {
            let mut location = Vec::new();
            if let Some(rule) = matched {
                rule.write_location(&head, &mut location);
            }
            lines.push(format!(
                "answered at the edge: {status} redirect to {}",
                String::from_utf8_lossy(&location)
            ));
            return lines;
        }
        Some(RuleAction::Respond {
            status,
            content_type,
            body,
        }) => {
            lines.push(format!(
                "answered at the edge: {status} {content_type}, {} byte(s)",
                body.len()
            ));
            return lines;
        }
        Some(RuleAction::Forward) | None => {}
    }
    let candidates: Vec<usize> = match matched {
        Some(rule) => rule.servers().to_vec(),
        None => (0..service.server_entries().len()).collect(),
    };
    let chosen = service.pick(&pick).map(|s| s.server);
    lines.push("candidates:".into());
    for &i in &candidates {
        lines.push(candidate_line(service, i, chosen));
    }
    match chosen {
        Some(i) => lines.push(format!(
            "picked: {} (nothing was sent to it)",
            service.server_entries()[i].config().addr
        )),
        None => lines.push("picked: none (no candidate can take it now)".into()),
    }
    lines
}

/// A rule as its `rule =` line writes it, without its servers.
fn describe(service: &ServiceSnapshot, index: usize) -> String {
    let Some(r) = service.def().rules.get(index) else {
        return String::new();
    };
    let mut out = ktcpvs_core::config::quote(&r.pattern);
    if let Some(m) = r.match_group {
        let _ = write!(out, " match {m}");
    }
    let _ = write!(out, "{}", r.conditions);
    out
}

/// One candidate: its live figures, and why it was or was not picked.
fn candidate_line(service: &ServiceSnapshot, index: usize, chosen: Option<usize>) -> String {
    let entry = &service.server_entries()[index];
    let config = entry.config();
    let active = entry.active_connections();
    let mut line = format!(
        "  {} weight={} effective={} active={} healthy={}",
        config.addr,
        config.weight,
        RealServer::weight(entry),
        active,
        if entry.is_healthy() { "yes" } else { "no" }
    );
    if config.maxconn != 0 {
        let _ = write!(line, " maxconn={}", config.maxconn);
    }
    let why = if chosen == Some(index) {
        "picked".to_string()
    } else if config.weight == 0 {
        "not picked: quiesced (weight 0)".to_string()
    } else if !entry.is_healthy() {
        let h = entry.health();
        let reason = if h.reason.is_empty() {
            "failed"
        } else {
            h.reason.as_str()
        };
        format!("not picked: {} ({reason})", h.state())
    } else if config.maxconn != 0 && active >= u64::from(config.maxconn) {
        "not picked: at its maxconn".to_string()
    } else {
        match chosen {
            Some(c) => format!(
                "not picked: the scheduler preferred {}",
                service.server_entries()[c].config().addr
            ),
            None => "not picked".to_string(),
        }
    };
    let _ = write!(line, ": {why}");
    line
}

//! How each [`Command`] changes the control state: validation, address
//! resolution and the rule semantics, in one function per verb.
//!
//! Functions here mutate a private copy of the state; the caller publishes
//! it only when every command of a transaction succeeded.

use std::net::SocketAddr;

use super::State;
use crate::command::{Command, RuleSpec, ServiceSpec};
use crate::condition::RuleAction;
use crate::endpoint::Endpoint;
use crate::error::ControlError;
use crate::model::{
    validate_dns_name, validate_service_name, validate_upgrades, validate_weight, RuleConfig,
    ServerConfig, ServiceConfig, ServiceDef, MAX_SERVER_CONNECTIONS, PROXY_STATUSES,
};
use crate::tls::{BackendTls, TlsConfig};
use crate::view::Rule;

/// Applies one command to `state`.
pub(super) fn apply(state: &mut State, command: &Command) -> Result<(), ControlError> {
    match command {
        Command::AddService { name, spec } => add_service(state, name, spec),
        Command::EditService { name, spec } => edit_service(state, name, spec),
        Command::DeleteService { name } => delete_service(state, name),
        Command::Flush => {
            state.config.services.clear();
            state.config.admin = None;
            state.running.clear();
            Ok(())
        }
        Command::SetAdmin { addr } => {
            state.config.admin = match addr {
                Some(e) => Some(resolve(state, e, 9100)?),
                None => None,
            };
            Ok(())
        }
        Command::AddServer {
            service,
            server,
            weight,
        } => add_server(state, service, server, *weight),
        Command::EditServer {
            service,
            server,
            weight,
        } => edit_server(state, service, server, *weight),
        Command::DeleteServer { service, server } => delete_server(state, service, server),
        Command::SetServerTls {
            service,
            server,
            tls,
        } => set_server_tls(state, service, server, tls.as_ref()),
        Command::SetServerLimit {
            service,
            server,
            maxconn,
        } => set_server_limit(state, service, server, *maxconn),
        Command::SyncDiscovered {
            service,
            name,
            addrs,
        } => sync_discovered(state, service, name, addrs),
        Command::SetServerProxy {
            service,
            server,
            version,
        } => {
            server_mut(state, service, server)?.send_proxy = *version;
            Ok(())
        }
        Command::AddRule {
            service,
            pattern,
            match_group,
            server,
        } => {
            let spec = RuleSpec {
                pattern: pattern.clone(),
                match_group: *match_group,
                ..RuleSpec::default()
            };
            add_rule(state, service, &spec, Some(server))
        }
        Command::AddRuleWith {
            service,
            rule,
            server,
        } => add_rule(state, service, rule, server.as_ref()),
        Command::DeleteRuleWith {
            service,
            rule,
            server,
        } => delete_rule_with(state, service, rule, server.as_ref()),
        Command::DeleteRule {
            service,
            pattern,
            server,
        } => delete_rule(state, service, pattern, server),
        Command::Start { service } => start_stop(state, service.as_deref(), true),
        Command::Stop { service } => start_stop(state, service.as_deref(), false),
        Command::ReloadCertificates => {
            state.certificate_epoch += 1;
            Ok(())
        }
        Command::Set { name, value } => {
            state.settings.set(name, value)?;
            if name == "unload" && state.settings.unload() != 0 {
                state.unloading = true;
                state.running.clear();
            }
            Ok(())
        }
    }
}

fn service_mut<'a>(state: &'a mut State, name: &str) -> Result<&'a mut ServiceDef, ControlError> {
    state
        .config
        .service_mut(name)
        .ok_or_else(|| ControlError::NoSuchService(name.to_string()))
}

/// Resolves an endpoint through the host aliases, then the system resolver.
fn resolve(
    state: &State,
    endpoint: &Endpoint,
    default_port: u16,
) -> Result<SocketAddr, ControlError> {
    if let Some(addr) = state.aliases.get(&endpoint.host) {
        return Ok(*addr);
    }
    Ok(endpoint.resolve(default_port)?)
}

fn apply_spec(
    state: &State,
    config: &mut ServiceConfig,
    spec: &ServiceSpec,
) -> Result<(), ControlError> {
    if let Some(listen) = &spec.listen {
        config.listen = resolve(state, listen, config.listen.port())?;
    }
    if let Some(port) = spec.listen_port {
        config.listen.set_port(port);
    }
    if let Some(s) = &spec.scheduler {
        config.scheduler = s.clone();
    }
    let set = |field: &mut u32, v: Option<u32>| {
        if let Some(v) = v {
            *field = v;
        }
    };
    set(&mut config.startservers, spec.startservers);
    set(&mut config.maxclients, spec.maxclients);
    set(&mut config.minspareservers, spec.minspareservers);
    set(&mut config.maxspareservers, spec.maxspareservers);
    if let Some(redirect) = &spec.redirect {
        config.redirect = match redirect {
            Some(e) => Some(resolve(state, e, 80)?),
            None => None,
        };
    }
    let timeout = |field: &mut Option<u32>, v: Option<u32>| {
        if let Some(v) = v {
            *field = (v != 0).then_some(v);
        }
    };
    timeout(&mut config.timeouts.connect, spec.connect_timeout);
    timeout(&mut config.timeouts.read, spec.read_timeout);
    timeout(&mut config.timeouts.keepalive, spec.keepalive_timeout);
    timeout(&mut config.timeouts.header, spec.header_timeout);
    timeout(&mut config.timeouts.response, spec.response_timeout);
    if let Some(f) = spec.forward_for {
        config.forward_for = f;
    }
    if let Some(on) = spec.http2 {
        config.http2 = on;
    }
    if let Some(networks) = &spec.proxy_protocol {
        config.proxy_protocol = networks.clone();
    }
    for (status, page) in &spec.error_pages {
        if !PROXY_STATUSES.contains(status) {
            return Err(ControlError::Invalid {
                what: "error_page status",
                value: status.to_string(),
                reason: format!("the proxy answers only {PROXY_STATUSES:?} itself"),
            });
        }
        match page {
            Some(page) => {
                RuleAction::Respond {
                    status: *status,
                    content_type: page.content_type.clone(),
                    body: page.body.clone(),
                }
                .validate()?;
                config.error_pages.insert(*status, page.clone());
            }
            None => {
                config.error_pages.remove(status);
            }
        }
    }
    if let Some(discover) = &spec.discover {
        for d in discover {
            validate_dns_name(&d.name)?;
            validate_weight(d.weight)?;
        }
        config.discover = discover.clone();
    }
    if let Some(upgrades) = &spec.upgrades {
        config.upgrades = validate_upgrades(upgrades)?;
    }
    for (key, value) in &spec.health {
        config.health.set(key, value)?;
    }
    for (key, value) in &spec.options {
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ControlError::Invalid {
                what: "option name",
                value: key.clone(),
                reason: "must be ASCII letters, digits, '_' or '-'".to_string(),
            });
        }
        match value {
            Some(v) => {
                if v.contains(['"', '\n', '\r']) {
                    return Err(ControlError::Invalid {
                        what: "option value",
                        value: v.clone(),
                        reason: "must not contain quotes or line breaks".to_string(),
                    });
                }
                config.options.insert(key.clone(), v.clone());
            }
            None => {
                config.options.remove(key);
            }
        }
    }
    apply_tls(config, spec)?;
    config.validate()
}

/// The certificate list replaces the old one (empty: TLS off); the
/// `Host`/SNI check is kept unless given, and exists only with TLS.
fn apply_tls(config: &mut ServiceConfig, spec: &ServiceSpec) -> Result<(), ControlError> {
    if let Some(certificates) = &spec.certificates {
        config.tls = match (certificates.is_empty(), config.tls.take()) {
            (true, _) => None,
            (false, Some(mut tls)) => {
                tls.certificates = certificates.clone();
                Some(tls)
            }
            (false, None) => Some(TlsConfig::new(certificates.clone())),
        };
    }
    if let Some(check) = spec.host_check {
        match &mut config.tls {
            Some(tls) => tls.host_check = check,
            None => {
                return Err(ControlError::Invalid {
                    what: "sni_host_check",
                    value: if check { "on" } else { "off" }.to_string(),
                    reason: "only a service with certificates has a TLS server name to check"
                        .to_string(),
                })
            }
        }
    }
    Ok(())
}

fn add_service(state: &mut State, name: &str, spec: &ServiceSpec) -> Result<(), ControlError> {
    validate_service_name(name)?;
    if state.config.service(name).is_some() {
        return Err(ControlError::ServiceExists(name.to_string()));
    }
    let mut config = ServiceConfig::new(name);
    apply_spec(state, &mut config, spec)?;
    state.config.services.push(ServiceDef::new(config));
    Ok(())
}

fn edit_service(state: &mut State, name: &str, spec: &ServiceSpec) -> Result<(), ControlError> {
    let mut config = service_mut(state, name)?.config.clone();
    apply_spec(state, &mut config, spec)?;
    let def = service_mut(state, name)?;
    // Servers found under a name no longer discovered leave with it
    // (unless a rule names them).
    let rules = def.rules.clone();
    def.servers.retain(|s| match &s.discovered {
        None => true,
        Some(n) => {
            config.discover.iter().any(|d| &d.name == n)
                || rules.iter().any(|r| r.servers.contains(&s.addr))
        }
    });
    def.config = config;
    Ok(())
}

fn delete_service(state: &mut State, name: &str) -> Result<(), ControlError> {
    let before = state.config.services.len();
    state.config.services.retain(|s| s.config.name != name);
    if state.config.services.len() == before {
        return Err(ControlError::NoSuchService(name.to_string()));
    }
    state.running.remove(name);
    Ok(())
}

/// Resolves a server endpoint; a missing port takes the service's listen port.
fn server_addr(
    state: &State,
    service: &str,
    server: &Endpoint,
) -> Result<SocketAddr, ControlError> {
    let def = state
        .config
        .service(service)
        .ok_or_else(|| ControlError::NoSuchService(service.to_string()))?;
    resolve(state, server, def.config.listen.port())
}

fn add_server(
    state: &mut State,
    service: &str,
    server: &Endpoint,
    weight: Option<u32>,
) -> Result<(), ControlError> {
    let addr = server_addr(state, service, server)?;
    let def = service_mut(state, service)?;
    let weight = weight.unwrap_or(1);
    validate_weight(weight)?;
    if def.server(addr).is_some() {
        return Err(ControlError::DestinationExists {
            service: service.to_string(),
            server: addr,
        });
    }
    def.servers.push(ServerConfig {
        addr,
        weight,
        tls: None,
        maxconn: 0,
        send_proxy: None,
        discovered: None,
    });
    Ok(())
}

/// The configuration of `server` in `service`, to change.
fn server_mut<'s>(
    state: &'s mut State,
    service: &str,
    server: &Endpoint,
) -> Result<&'s mut ServerConfig, ControlError> {
    let addr = server_addr(state, service, server)?;
    service_mut(state, service)?
        .servers
        .iter_mut()
        .find(|s| s.addr == addr)
        .ok_or_else(|| ControlError::NoSuchDestination {
            service: service.to_string(),
            server: addr,
        })
}

fn set_server_tls(
    state: &mut State,
    service: &str,
    server: &Endpoint,
    tls: Option<&BackendTls>,
) -> Result<(), ControlError> {
    let entry = server_mut(state, service, server)?;
    if let Some(tls) = tls {
        tls.validate()?;
    }
    entry.tls = tls.cloned();
    Ok(())
}

fn set_server_limit(
    state: &mut State,
    service: &str,
    server: &Endpoint,
    maxconn: u32,
) -> Result<(), ControlError> {
    let entry = server_mut(state, service, server)?;
    if maxconn > MAX_SERVER_CONNECTIONS {
        return Err(ControlError::Invalid {
            what: "maxconn",
            value: maxconn.to_string(),
            reason: format!("must be 0..={MAX_SERVER_CONNECTIONS}"),
        });
    }
    entry.maxconn = maxconn;
    Ok(())
}

fn edit_server(
    state: &mut State,
    service: &str,
    server: &Endpoint,
    weight: Option<u32>,
) -> Result<(), ControlError> {
    let entry = server_mut(state, service, server)?;
    if let Some(w) = weight {
        validate_weight(w)?;
        entry.weight = w;
    }
    Ok(())
}

fn sync_discovered(
    state: &mut State,
    service: &str,
    name: &str,
    addrs: &[SocketAddr],
) -> Result<(), ControlError> {
    let def = service_mut(state, service)?;
    let Some(weight) = def
        .config
        .discover
        .iter()
        .find(|d| d.name == name)
        .map(|d| d.weight)
    else {
        return Err(ControlError::Invalid {
            what: "discover name",
            value: name.to_string(),
            reason: format!("service '{service}' does not discover it"),
        });
    };
    let named = |s: &ServerConfig| s.discovered.as_deref() == Some(name);
    let in_rules =
        |addr: SocketAddr, rules: &[RuleConfig]| rules.iter().any(|r| r.servers.contains(&addr));
    let rules = def.rules.clone();
    def.servers
        .retain(|s| !named(s) || addrs.contains(&s.addr) || in_rules(s.addr, &rules));
    for &addr in addrs {
        if def.server(addr).is_none() {
            def.servers.push(ServerConfig {
                addr,
                weight,
                tls: None,
                maxconn: 0,
                send_proxy: None,
                discovered: Some(name.to_string()),
            });
        }
    }
    Ok(())
}

fn delete_server(state: &mut State, service: &str, server: &Endpoint) -> Result<(), ControlError> {
    let addr = server_addr(state, service, server)?;
    let def = service_mut(state, service)?;
    if def.server(addr).is_none() {
        return Err(ControlError::NoSuchDestination {
            service: service.to_string(),
            server: addr,
        });
    }
    if let Some(rule) = def.rules.iter().find(|r| r.servers.contains(&addr)) {
        return Err(ControlError::DestinationBusy {
            service: service.to_string(),
            server: addr,
            pattern: rule.pattern.clone(),
        });
    }
    def.servers.retain(|s| s.addr != addr);
    Ok(())
}

fn add_rule(
    state: &mut State,
    service: &str,
    spec: &RuleSpec,
    server: Option<&Endpoint>,
) -> Result<(), ControlError> {
    let addr = optional_addr(state, service, server)?;
    let def = service_mut(state, service)?;
    if let Some(addr) = addr.filter(|&a| def.server(a).is_none()) {
        return Err(ControlError::NoSuchDestination {
            service: service.to_string(),
            server: addr,
        });
    }
    let candidate = RuleConfig {
        pattern: spec.pattern.clone(),
        match_group: spec.match_group,
        servers: addr.into_iter().collect(),
        conditions: spec.conditions.clone(),
        action: spec.action.clone(),
        edits: spec.edits.clone(),
    };
    // Compile once here so a bad pattern, condition, match number, action
    // or edit names itself before anything else.
    Rule::compile(&candidate, Vec::new())?;
    match (&spec.action, addr) {
        (RuleAction::Forward, None) => {
            return Err(ControlError::Invalid {
                what: "rule",
                value: spec.pattern.clone(),
                reason: "a forwarding rule needs 'use server ADDR'".into(),
            })
        }
        (RuleAction::Redirect { .. } | RuleAction::Respond { .. }, Some(a)) => {
            return Err(ControlError::Invalid {
                what: "rule",
                value: spec.pattern.clone(),
                reason: format!("a redirect or fixed response routes to no server ({a})"),
            })
        }
        _ => {}
    }
    if let Some(rule) = def.rules.iter_mut().find(|r| same_rule(r, spec)) {
        let exists = || ControlError::RuleExists {
            service: service.to_string(),
            pattern: spec.pattern.clone(),
            server: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
        };
        let Some(addr) = addr else {
            return Err(exists());
        };
        if rule.action != spec.action || rule.edits != spec.edits {
            return Err(ControlError::Invalid {
                what: "rule",
                value: spec.pattern.clone(),
                reason: "the rule exists with another action or other header edits".into(),
            });
        }
        if rule.servers.contains(&addr) {
            return Err(exists());
        }
        rule.servers.push(addr);
        return Ok(());
    }
    if candidate.is_catch_all() {
        def.rules.push(candidate);
    } else {
        let at = def
            .rules
            .iter()
            .position(|r| r.is_catch_all())
            .unwrap_or(def.rules.len());
        def.rules.insert(at, candidate);
    }
    Ok(())
}

/// The address of `server` in `service`, when there is a server.
fn optional_addr(
    state: &State,
    service: &str,
    server: Option<&Endpoint>,
) -> Result<Option<SocketAddr>, ControlError> {
    server.map(|s| server_addr(state, service, s)).transpose()
}

/// Whether `rule` is the one `spec` names (pattern, match group,
/// conditions).
fn same_rule(rule: &RuleConfig, spec: &RuleSpec) -> bool {
    rule.pattern == spec.pattern
        && rule.match_group == spec.match_group
        && rule.conditions == spec.conditions
}

fn delete_rule_with(
    state: &mut State,
    service: &str,
    spec: &RuleSpec,
    server: Option<&Endpoint>,
) -> Result<(), ControlError> {
    let addr = optional_addr(state, service, server)?;
    let def = service_mut(state, service)?;
    let missing = || ControlError::NoSuchRule {
        service: service.to_string(),
        pattern: spec.pattern.clone(),
        server: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
    };
    let at = def
        .rules
        .iter()
        .position(|r| same_rule(r, spec))
        .ok_or_else(missing)?;
    match addr {
        None => {
            def.rules.remove(at);
        }
        Some(addr) => {
            let rule = &mut def.rules[at];
            let before = rule.servers.len();
            rule.servers.retain(|a| *a != addr);
            if rule.servers.len() == before {
                return Err(missing());
            }
            if rule.servers.is_empty() {
                def.rules.remove(at);
            }
        }
    }
    Ok(())
}

fn delete_rule(
    state: &mut State,
    service: &str,
    pattern: &str,
    server: &Endpoint,
) -> Result<(), ControlError> {
    let addr = server_addr(state, service, server)?;
    let def = service_mut(state, service)?;
    let mut found = false;
    for rule in def.rules.iter_mut().filter(|r| r.pattern == pattern) {
        let before = rule.servers.len();
        rule.servers.retain(|a| *a != addr);
        found |= rule.servers.len() != before;
    }
    if !found {
        return Err(ControlError::NoSuchRule {
            service: service.to_string(),
            pattern: pattern.to_string(),
            server: addr,
        });
    }
    def.rules
        .retain(|r| !r.servers.is_empty() || r.action != RuleAction::Forward);
    Ok(())
}

fn start_stop(state: &mut State, service: Option<&str>, start: bool) -> Result<(), ControlError> {
    let names: Vec<String> = match service {
        Some(name) => {
            if state.config.service(name).is_none() {
                return Err(ControlError::NoSuchService(name.to_string()));
            }
            vec![name.to_string()]
        }
        None => state
            .config
            .services
            .iter()
            .map(|s| s.config.name.clone())
            .collect(),
    };
    for name in names {
        if start {
            state.running.insert(name);
        } else {
            state.running.remove(&name);
        }
    }
    Ok(())
}

//! The difference between two configurations, as the [`Command`]s that
//! turn one into the other: what `tcpvsadm -f FILE --dry-run` shows before
//! a load replaces the running configuration.
//!
//! [`diff`] says what it promises: exactness, and an order in which every
//! command is accepted.
//!
//! Each field of [`ServiceConfig`], [`ServerConfig`] and [`RuleConfig`] is
//! named here without `..`, so a field added to the model does not compile
//! until the diff covers it.

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::command::{Command, RuleSpec, ServiceSpec};
use crate::condition::RuleAction;
use crate::endpoint::Endpoint;
use crate::model::{Config, RuleConfig, ServerConfig, ServiceConfig, ServiceDef, Timeouts};
use crate::tls::TlsConfig;

/// One difference between two configurations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// A change that one command makes (boxed: a command is large).
    Command(Box<Command>),
    /// The services are listed in another order (a load lists them in the
    /// file's order): the names, in the new order. No command moves a
    /// service; this is always the last change.
    ServiceOrder(Vec<String>),
}

/// The changes that turn `old` into `new`, in the order to apply them;
/// empty when they are the same.
///
/// The diff is exact: applying its commands one after the other to the
/// old configuration gives the new one, up to the order services are
/// listed in (reported as [`ConfigChange::ServiceOrder`], which no command
/// changes). It is also ordered so that every command is accepted when its
/// turn comes:
///
/// 1. services that are gone are deleted (freeing their listen addresses);
/// 2. a changed `admin =` address is set;
/// 3. per service that stays: the rule/server pairs that go are deleted,
///    then the servers that go (no rule names them any more), then one
///    [`Command::EditService`] with every changed setting, then the
///    servers that come and the changes of those that stay, then the
///    rule/server pairs that come;
/// 4. new services are added with their settings, servers and rules.
///
/// Servers and rules keep their order in a configuration (the order they
/// were added, catch-all rules last): a new one is always appended. So a
/// server or rule that the new configuration lists before one it keeps
/// but the old did not shows as deleted and added again, as do the rules
/// after it. Servers found through DNS (`discover`) are not configuration
/// and are left out on both sides.
///
/// ```
/// use ktcpvs_core::config::{diff, ConfigChange};
/// use ktcpvs_core::{Command, Config, ServerConfig, ServiceConfig, ServiceDef};
///
/// let mut old = Config::default();
/// let mut web = ServiceDef::new(ServiceConfig::new("web"));
/// web.servers.push(ServerConfig {
///     addr: "10.0.0.1:80".parse().unwrap(),
///     weight: 1,
///     tls: None,
///     maxconn: 0,
///     send_proxy: None,
///     discovered: None,
/// });
/// old.services.push(web);
/// let mut new = old.clone();
/// new.services[0].servers[0].weight = 3;
///
/// assert!(diff(&old, &old).is_empty());
/// let changes = diff(&old, &new);
/// assert!(matches!(
///     changes.as_slice(),
///     [ConfigChange::Command(c)] if matches!(**c, Command::EditServer { weight: Some(3), .. })
/// ));
/// ```
pub fn diff(old: &Config, new: &Config) -> Vec<ConfigChange> {
    let mut out = Vec::new();
    for def in &old.services {
        if new.service(&def.config.name).is_none() {
            out.push(Command::DeleteService {
                name: def.config.name.clone(),
            });
        }
    }
    if old.admin != new.admin {
        out.push(Command::SetAdmin {
            addr: new.admin.map(Endpoint::from_addr),
        });
    }
    for def in &new.services {
        match old.service(&def.config.name) {
            Some(before) => service_changes(before, def, &mut out),
            None => added_service(def, &mut out),
        }
    }
    let mut changes: Vec<ConfigChange> = out
        .into_iter()
        .map(|c| ConfigChange::Command(Box::new(c)))
        .collect();
    let name = |d: &ServiceDef| d.config.name.clone();
    let mut order: Vec<String> = old
        .services
        .iter()
        .filter(|d| new.service(&d.config.name).is_some())
        .map(name)
        .collect();
    order.extend(
        new.services
            .iter()
            .filter(|d| old.service(&d.config.name).is_none())
            .map(name),
    );
    let wanted: Vec<String> = new.services.iter().map(name).collect();
    if order != wanted {
        changes.push(ConfigChange::ServiceOrder(wanted));
    }
    changes
}

/// The servers of `def` that are configuration (not found through DNS).
fn configured(def: &ServiceDef) -> Vec<&ServerConfig> {
    def.servers
        .iter()
        .filter(|s| s.discovered.is_none())
        .collect()
}

/// How many of `new`'s first items are found in `old` in the same order:
/// those stay where they are, the rest are appended after them.
fn kept_prefix<T: PartialEq>(old: &[T], new: &[T]) -> usize {
    let mut from = 0;
    for (i, item) in new.iter().enumerate() {
        match old[from..].iter().position(|o| o == item) {
            Some(at) => from += at + 1,
            None => return i,
        }
    }
    new.len()
}

/// A new service: added with its settings, then its servers and rules.
fn added_service(def: &ServiceDef, out: &mut Vec<Command>) {
    let name = &def.config.name;
    out.push(Command::AddService {
        name: name.clone(),
        spec: spec_between(&ServiceConfig::new(name), &def.config),
    });
    for server in configured(def) {
        added_server(name, server, out);
    }
    for rule in &def.rules {
        for unit in units(rule) {
            out.push(add_rule(name, rule, unit));
        }
    }
}

/// A service in both configurations (see the module documentation for
/// the order of its changes).
fn service_changes(old: &ServiceDef, new: &ServiceDef, out: &mut Vec<Command>) {
    let name = &new.config.name;
    let old_servers = configured(old);
    let new_servers = configured(new);
    let old_addrs: Vec<SocketAddr> = old_servers.iter().map(|s| s.addr).collect();
    let new_addrs: Vec<SocketAddr> = new_servers.iter().map(|s| s.addr).collect();
    let kept = kept_prefix(&old_addrs, &new_addrs);
    let removed: HashSet<SocketAddr> = old_addrs
        .iter()
        .filter(|a| !new_addrs[..kept].contains(a))
        .copied()
        .collect();
    let rules = RulePlan::new(&old.rules, &new.rules, &removed);
    for (rule, unit) in &rules.deleted {
        out.push(Command::DeleteRuleWith {
            service: name.clone(),
            rule: spec_of(rule),
            server: unit.map(Endpoint::from_addr),
        });
    }
    for addr in old_addrs.iter().filter(|a| removed.contains(a)) {
        out.push(Command::DeleteServer {
            service: name.clone(),
            server: Endpoint::from_addr(*addr),
        });
    }
    let spec = spec_between(&old.config, &new.config);
    if spec != ServiceSpec::default() {
        out.push(Command::EditService {
            name: name.clone(),
            spec,
        });
    }
    for server in &new_servers[..kept] {
        if let Some(before) = old_servers.iter().find(|s| s.addr == server.addr) {
            server_changes(name, before, server, out);
        }
    }
    for server in &new_servers[kept..] {
        added_server(name, server, out);
    }
    for (rule, unit) in &rules.added {
        out.push(add_rule(name, rule, *unit));
    }
}

/// The command that adds one unit of `rule`: the original's plain
/// [`Command::AddRule`] for a rule with nothing but a pattern, a match
/// and servers, else [`Command::AddRuleWith`].
fn add_rule(service: &str, rule: &RuleConfig, unit: Option<SocketAddr>) -> Command {
    let plain =
        rule.conditions.is_empty() && rule.edits.is_empty() && rule.action == RuleAction::Forward;
    match unit {
        Some(addr) if plain => Command::AddRule {
            service: service.to_string(),
            pattern: rule.pattern.clone(),
            match_group: rule.match_group,
            server: Endpoint::from_addr(addr),
        },
        unit => Command::AddRuleWith {
            service: service.to_string(),
            rule: spec_of(rule),
            server: unit.map(Endpoint::from_addr),
        },
    }
}

/// A rule as the commands name it.
fn spec_of(rule: &RuleConfig) -> RuleSpec {
    let RuleConfig {
        pattern,
        match_group,
        servers: _,
        conditions,
        action,
        edits,
    } = rule;
    RuleSpec {
        pattern: pattern.clone(),
        match_group: *match_group,
        conditions: conditions.clone(),
        action: action.clone(),
        edits: edits.clone(),
    }
}

/// What a rule is added and deleted in: one unit per server of a
/// forwarding rule, one (`None`) for a rule that answers itself.
fn units(rule: &RuleConfig) -> Vec<Option<SocketAddr>> {
    if rule.action == RuleAction::Forward {
        rule.servers.iter().copied().map(Some).collect()
    } else {
        vec![None]
    }
}

/// Whether two rules are the same rule doing the same thing: the same
/// name (pattern, match, conditions), action and edits.
fn same_rule(a: &RuleConfig, b: &RuleConfig) -> bool {
    a.pattern == b.pattern
        && a.match_group == b.match_group
        && a.conditions == b.conditions
        && a.action == b.action
        && a.edits == b.edits
}

/// A new server: added with its weight, then its other settings.
fn added_server(service: &str, server: &ServerConfig, out: &mut Vec<Command>) {
    out.push(Command::AddServer {
        service: service.to_string(),
        server: Endpoint::from_addr(server.addr),
        weight: (server.weight != 1).then_some(server.weight),
    });
    let fresh = ServerConfig {
        addr: server.addr,
        weight: server.weight,
        tls: None,
        maxconn: 0,
        send_proxy: None,
        discovered: None,
    };
    server_changes(service, &fresh, server, out);
}

/// The commands that turn server `old` into `new` (the same address).
fn server_changes(service: &str, old: &ServerConfig, new: &ServerConfig, out: &mut Vec<Command>) {
    let ServerConfig {
        addr,
        weight,
        tls,
        maxconn,
        send_proxy,
        // Not configuration: only configured servers are compared.
        discovered: _,
    } = new;
    let service = service.to_string();
    let server = Endpoint::from_addr(*addr);
    if old.weight != *weight {
        out.push(Command::EditServer {
            service: service.clone(),
            server: server.clone(),
            weight: Some(*weight),
        });
    }
    if old.maxconn != *maxconn {
        out.push(Command::SetServerLimit {
            service: service.clone(),
            server: server.clone(),
            maxconn: *maxconn,
        });
    }
    if old.send_proxy != *send_proxy {
        out.push(Command::SetServerProxy {
            service: service.clone(),
            server: server.clone(),
            version: *send_proxy,
        });
    }
    if old.tls != *tls {
        out.push(Command::SetServerTls {
            service,
            server,
            tls: tls.clone(),
        });
    }
}

/// The fields of an edit that turns service settings `old` into `new`;
/// the default spec when they are the same. The name is not compared.
fn spec_between(old: &ServiceConfig, new: &ServiceConfig) -> ServiceSpec {
    let ServiceConfig {
        name: _,
        listen,
        scheduler,
        startservers,
        maxclients,
        minspareservers,
        maxspareservers,
        redirect,
        timeouts,
        forward_for,
        upgrades,
        options,
        tls,
        health,
        proxy_protocol,
        discover,
        error_pages,
        http2,
    } = new;
    let changed = |before: u32, after: u32| (before != after).then_some(after);
    let mut spec = ServiceSpec {
        listen: (old.listen != *listen).then(|| Endpoint::from_addr(*listen)),
        scheduler: (old.scheduler != *scheduler).then(|| scheduler.clone()),
        startservers: changed(old.startservers, *startservers),
        maxclients: changed(old.maxclients, *maxclients),
        minspareservers: changed(old.minspareservers, *minspareservers),
        maxspareservers: changed(old.maxspareservers, *maxspareservers),
        redirect: (old.redirect != *redirect).then(|| redirect.map(Endpoint::from_addr)),
        forward_for: (old.forward_for != *forward_for).then_some(*forward_for),
        http2: (old.http2 != *http2).then_some(*http2),
        upgrades: (old.upgrades != *upgrades).then(|| upgrades.clone()),
        proxy_protocol: (old.proxy_protocol != *proxy_protocol).then(|| proxy_protocol.clone()),
        discover: (old.discover != *discover).then(|| discover.clone()),
        ..ServiceSpec::default()
    };
    for status in old
        .error_pages
        .keys()
        .filter(|s| !error_pages.contains_key(*s))
    {
        spec.error_pages.push((*status, None));
    }
    for (status, page) in error_pages {
        if old.error_pages.get(status) != Some(page) {
            spec.error_pages.push((*status, Some(page.clone())));
        }
    }
    timeout_changes(&old.timeouts, timeouts, &mut spec);
    for key in old.options.keys().filter(|k| !options.contains_key(*k)) {
        spec.options.push((key.clone(), None));
    }
    for (key, value) in options {
        if old.options.get(key) != Some(value) {
            spec.options.push((key.clone(), Some(value.clone())));
        }
    }
    tls_changes(old.tls.as_ref(), tls.as_ref(), &mut spec);
    // The printer's own text of every setting: a setting back at its
    // default is written out too, which sets it back.
    for (before, after) in old
        .health
        .all_entries()
        .into_iter()
        .zip(health.all_entries())
    {
        if before.1 != after.1 {
            spec.health.push((after.0.to_string(), after.1));
        }
    }
    spec
}

/// The timeouts that changed; `0` takes a service back to the global one.
fn timeout_changes(old: &Timeouts, new: &Timeouts, spec: &mut ServiceSpec) {
    let Timeouts {
        connect,
        read,
        keepalive,
        header,
        response,
    } = new;
    let changed =
        |before: Option<u32>, after: Option<u32>| (before != after).then_some(after.unwrap_or(0));
    spec.connect_timeout = changed(old.connect, *connect);
    spec.read_timeout = changed(old.read, *read);
    spec.keepalive_timeout = changed(old.keepalive, *keepalive);
    spec.header_timeout = changed(old.header, *header);
    spec.response_timeout = changed(old.response, *response);
}

/// The listener's certificates and `Host`/SNI check: an empty list turns
/// TLS off; a new list keeps the check as it was.
fn tls_changes(old: Option<&TlsConfig>, new: Option<&TlsConfig>, spec: &mut ServiceSpec) {
    let Some(TlsConfig {
        certificates,
        host_check,
    }) = new
    else {
        if old.is_some() {
            spec.certificates = Some(Vec::new());
        }
        return;
    };
    let before = old.cloned().unwrap_or_else(|| TlsConfig::new(Vec::new()));
    if before.certificates != *certificates {
        spec.certificates = Some(certificates.clone());
    }
    if before.host_check != *host_check {
        spec.host_check = Some(*host_check);
    }
}

/// The rule/server pairs one service deletes and adds.
struct RulePlan<'a> {
    /// Units to delete (see [`units`]), each once.
    deleted: Vec<(RuleConfig, Option<SocketAddr>)>,
    /// Units to add, in order.
    added: Vec<(&'a RuleConfig, Option<SocketAddr>)>,
}

/// A rule of the new configuration that stays in place: its index there,
/// its index in the old one, and how many of its first servers stay.
#[derive(Clone, Copy)]
struct Kept {
    new: usize,
    old: usize,
    servers: usize,
}

impl<'a> RulePlan<'a> {
    /// Plans the ordinary rules and the catch-alls apart: each group keeps
    /// its own order, and a rule added to one goes to that group's end.
    /// Rule/server pairs naming a server in `removed` are deleted.
    fn new(
        old: &[RuleConfig],
        new: &'a [RuleConfig],
        removed: &HashSet<SocketAddr>,
    ) -> RulePlan<'a> {
        let mut plan = RulePlan {
            deleted: Vec::new(),
            added: Vec::new(),
        };
        for catch_all in [false, true] {
            let old: Vec<&RuleConfig> = old
                .iter()
                .filter(|r| r.is_catch_all() == catch_all)
                .collect();
            let new: Vec<&'a RuleConfig> = new
                .iter()
                .filter(|r| r.is_catch_all() == catch_all)
                .collect();
            plan.group(&old, &new, removed);
        }
        plan
    }

    /// Plans one group. The rules kept in place are the longest run of the
    /// new group's first rules found in the old group in the same order,
    /// each keeping the first of its servers it had; a deletion removes a
    /// server from every rule of that pattern (whatever its `match`), so a
    /// kept rule that would lose a server it keeps that way ends the run.
    fn group(
        &mut self,
        old: &[&RuleConfig],
        new: &[&'a RuleConfig],
        removed: &HashSet<SocketAddr>,
    ) {
        let kept = kept_rules(old, new, new.len(), removed);
        self.deleted.extend(deleted_units(old, new, &kept));
        for k in &kept {
            let rule = new[k.new];
            self.added
                .extend(units(rule)[k.servers..].iter().map(|u| (rule, *u)));
        }
        for rule in &new[kept.len()..] {
            self.added
                .extend(units(rule).into_iter().map(|u| (*rule, u)));
        }
    }
}

/// The rules among `new[..limit]` that stay in place (see
/// [`RulePlan::group`]); always a run from the first.
fn kept_rules(
    old: &[&RuleConfig],
    new: &[&RuleConfig],
    limit: usize,
    removed: &HashSet<SocketAddr>,
) -> Vec<Kept> {
    let mut kept = Vec::new();
    let mut from = 0;
    for (i, rule) in new[..limit].iter().enumerate() {
        let Some(at) = old[from..]
            .iter()
            .position(|o| same_rule(o, rule))
            .map(|p| p + from)
        else {
            break;
        };
        let usable: Vec<Option<SocketAddr>> = units(old[at])
            .into_iter()
            .filter(|u| !u.is_some_and(|a| removed.contains(&a)))
            .collect();
        let servers = kept_prefix(&usable, &units(rule));
        if servers == 0 {
            break;
        }
        kept.push(Kept {
            new: i,
            old: at,
            servers,
        });
        from = at + 1;
    }
    kept
}

/// The units of `old` that are not kept, each once, in the old order. A
/// deletion names its rule exactly (pattern, match and conditions), so it
/// never touches another rule.
fn deleted_units(
    old: &[&RuleConfig],
    new: &[&RuleConfig],
    kept: &[Kept],
) -> Vec<(RuleConfig, Option<SocketAddr>)> {
    let mut deleted = Vec::new();
    for (j, rule) in old.iter().enumerate() {
        let stays: Vec<Option<SocketAddr>> = match kept.iter().find(|k| k.old == j) {
            Some(k) => units(new[k.new])[..k.servers].to_vec(),
            None => Vec::new(),
        };
        for unit in units(rule).into_iter().filter(|u| !stays.contains(u)) {
            deleted.push(((*rule).clone(), unit));
        }
    }
    deleted
}

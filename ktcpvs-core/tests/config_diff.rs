//! `config::diff`: the commands between two configurations. For a table of
//! before/after configurations the diff is the expected one, and applying
//! its commands one at a time to the old configuration (through the
//! control API, as `tcpvsadm` would) gives the new one. A configuration
//! that differs from another in any one field of a service, server or rule
//! gives a non-empty diff that makes exactly that change.

mod support;

use ktcpvs_core::condition::{EditOp, EditSide, HeaderEdit, RuleAction};
use ktcpvs_core::config::{diff, ConfigChange};
use ktcpvs_core::health::HEALTH_KEYS;
use ktcpvs_core::model::{Discovery, DiscoveryKind, ProxyVersion};
use ktcpvs_core::{
    BackendTls, CertificateFiles, Command, Config, Control, RuleConfig, ServerConfig,
    ServiceConfig, TlsConfig,
};

/// A short text of one change, for the expectations of the table.
fn describe(change: &ConfigChange) -> String {
    let c = match change {
        ConfigChange::ServiceOrder(names) => return format!("order {}", names.join(",")),
        ConfigChange::Command(c) => &**c,
    };
    match c {
        Command::AddService { name, .. } => format!("add-service {name}"),
        Command::EditService { name, spec } => {
            let mut s = format!("edit-service {name}");
            if let Some(sched) = &spec.scheduler {
                s += &format!(" scheduler={sched}");
            }
            if let Some(m) = spec.maxclients {
                s += &format!(" maxclients={m}");
            }
            for (k, v) in &spec.health {
                s += &format!(" health.{k}={v}");
            }
            for (k, v) in &spec.options {
                s += &format!(" option.{k}={}", v.as_deref().unwrap_or("none"));
            }
            s
        }
        Command::DeleteService { name } => format!("delete-service {name}"),
        Command::AddServer {
            service,
            server,
            weight,
        } => format!("add-server {service} {server} {weight:?}"),
        Command::EditServer {
            service,
            server,
            weight,
        } => format!("edit-server {service} {server} {weight:?}"),
        Command::DeleteServer { service, server } => format!("delete-server {service} {server}"),
        Command::AddRule {
            service,
            pattern,
            server,
            ..
        } => format!("add-rule {service} {pattern} {server}"),
        Command::DeleteRule {
            service,
            pattern,
            server,
        } => format!("delete-rule {service} {pattern} {server}"),
        Command::DeleteRuleWith {
            service,
            rule,
            server: Some(server),
        } => match rule.match_group {
            None => format!("delete-rule {service} {} {server}", rule.pattern),
            Some(m) => format!("delete-rule {service} {} match {m} {server}", rule.pattern),
        },
        Command::SetAdmin { addr } => format!("admin {addr:?}"),
        other => format!("{other:?}"),
    }
}

fn loaded(text: &str) -> Control {
    let control = support::control();
    control
        .load_config(text, None)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    control
}

/// Applies `changes` one command at a time to `control`, as an operator
/// pasting them would.
fn apply(control: &Control, changes: &[ConfigChange]) {
    for change in changes {
        if let ConfigChange::Command(c) = change {
            control
                .execute((**c).clone())
                .unwrap_or_else(|e| panic!("{c:?} refused: {e}\nall: {changes:#?}"));
        }
    }
}

/// `new` with its services in the order `control` lists them.
fn in_order_of(config: &Config, new: &Config) -> Config {
    let mut sorted = new.clone();
    sorted.services.sort_by_key(|s| {
        config
            .services
            .iter()
            .position(|o| o.config.name == s.config.name)
    });
    sorted
}

/// Checks that the diff from `old` to `new` makes `new` when applied.
fn diff_applies(old: &Config, new: &Config) -> Vec<ConfigChange> {
    let control = support::control();
    control
        .load_config(&ktcpvs_core::config::print(old, &Default::default()), None)
        .expect("the old configuration loads");
    let changes = diff(old, new);
    apply(&control, &changes);
    let reached = control.config();
    let expected = in_order_of(&reached, new);
    assert_eq!(reached, expected, "changes: {changes:#?}");
    if reached
        .services
        .iter()
        .map(|s| &s.config.name)
        .ne(new.services.iter().map(|s| &s.config.name))
    {
        assert!(matches!(
            changes.last(),
            Some(ConfigChange::ServiceOrder(_))
        ));
    }
    assert!(diff(&reached, &expected).is_empty());
    changes
}

const BASE: &str = "
Virtual web {
    listen = 127.0.0.1:8080
    scheduler = http
    server = 10.0.0.1:80 1
    server = 10.0.0.2:80 2
    rule = pattern \"/a\" use server 10.0.0.1:80
    rule = pattern \"/b\" match 0 use server 10.0.0.2:80
    rule = pattern \"/b\" match 0 use server 10.0.0.1:80
    rule = pattern \".*\" use server 10.0.0.2:80
}

Virtual api {
    listen = 127.0.0.1:8081
    scheduler = wlc
    server = 10.0.0.3:80 1
}
";

#[test]
fn a_table_of_before_and_after_configurations() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("nothing changed", BASE, &[]),
        (
            "weight change",
            &BASE.replace("10.0.0.2:80 2", "10.0.0.2:80 5"),
            &["edit-server web 10.0.0.2:80 Some(5)"],
        ),
        (
            "server added and removed",
            &BASE.replace("server = 10.0.0.3:80 1", "server = 10.0.0.4:80 3"),
            &[
                "delete-server api 10.0.0.3:80",
                "add-server api 10.0.0.4:80 Some(3)",
            ],
        ),
        (
            "rule reorder",
            &BASE.replace(
                "    rule = pattern \"/a\" use server 10.0.0.1:80\n",
                "",
            )
            .replace(
                "    rule = pattern \".*\"",
                "    rule = pattern \"/a\" use server 10.0.0.1:80\n    rule = pattern \".*\"",
            ),
            &["delete-rule web /a 10.0.0.1:80", "add-rule web /a 10.0.0.1:80"],
        ),
        (
            "rule moved before the others",
            &BASE.replace(
                "    rule = pattern \"/a\" use server 10.0.0.1:80\n",
                "",
            )
            .replace(
                "    server = 10.0.0.2:80 2\n",
                "    server = 10.0.0.2:80 2\n    rule = pattern \"/c\" use server 10.0.0.1:80\n    rule = pattern \"/a\" use server 10.0.0.1:80\n",
            ),
            // A new first rule: every rule after it is added again after it.
            &[
                "delete-rule web /a 10.0.0.1:80",
                "delete-rule web /b match 0 10.0.0.2:80",
                "delete-rule web /b match 0 10.0.0.1:80",
                "add-rule web /c 10.0.0.1:80",
                "add-rule web /a 10.0.0.1:80",
                "add-rule web /b 10.0.0.2:80",
                "add-rule web /b 10.0.0.1:80",
            ],
        ),
        (
            "service renamed",
            &BASE.replace("Virtual api", "Virtual api2"),
            &[
                "delete-service api",
                "add-service api2",
                "add-server api2 10.0.0.3:80 None",
            ],
        ),
        (
            "a setting changed",
            &BASE.replace(
                "scheduler = wlc\n",
                "scheduler = wlc\n    maxclients = 512\n",
            ),
            &["edit-service api maxclients=512"],
        ),
        (
            "service deleted",
            "Virtual api {\n listen = 127.0.0.1:8081\n scheduler = wlc\n server = 10.0.0.3:80 1\n}\n",
            &["delete-service web"],
        ),
        (
            "admin address",
            &format!("admin = 127.0.0.1:9100\n{BASE}"),
            &["admin Some(Endpoint { host: \"127.0.0.1\", port: Some(9100) })"],
        ),
    ];
    for (name, after, expected) in cases {
        let old = loaded(BASE).config();
        let new = loaded(after).config();
        let changes = diff_applies(&old, &new);
        let got: Vec<String> = changes.iter().map(describe).collect();
        assert_eq!(&got, expected, "{name}");
    }
}

#[test]
fn settings_back_to_their_defaults_and_health_keys_removed() {
    let with = "Virtual api {\n listen = 127.0.0.1:8081\n scheduler = wlc\n maxclients = 512\n check = http\n check_host = h.example\n check_interval = 500ms\n option cookie = \"x\"\n}\n";
    let without = "Virtual api {\n listen = 127.0.0.1:8081\n scheduler = wlc\n}\n";
    let (old, new) = (loaded(with).config(), loaded(without).config());
    let got: Vec<String> = diff_applies(&old, &new).iter().map(describe).collect();
    assert_eq!(
        got,
        ["edit-service api maxclients=256 health.check=none health.check_host= health.check_interval=2s option.cookie=none"]
    );
    // And back.
    let got: Vec<String> = diff_applies(&new, &old).iter().map(describe).collect();
    assert_eq!(
        got,
        ["edit-service api maxclients=512 health.check=http health.check_host=h.example health.check_interval=500ms option.cookie=x"]
    );
}

#[test]
fn a_service_listed_in_another_order_is_reported_last() {
    let swapped = format!(
        "{}\n{}",
        &BASE[BASE.find("Virtual api").unwrap()..],
        &BASE[..BASE.find("Virtual api").unwrap()]
    );
    let changes = diff_applies(&loaded(BASE).config(), &loaded(&swapped).config());
    assert_eq!(
        changes,
        [ConfigChange::ServiceOrder(vec!["api".into(), "web".into()])]
    );
}

#[test]
fn discovered_servers_are_not_configuration() {
    let old = loaded(BASE).config();
    let mut new = old.clone();
    new.services[1].servers.push(ServerConfig {
        addr: "10.9.9.9:80".parse().unwrap(),
        weight: 1,
        tls: None,
        maxconn: 0,
        send_proxy: None,
        discovered: Some("a.test".into()),
    });
    assert!(diff(&old, &new).is_empty());
    assert!(diff(&new, &old).is_empty());
}

/// A field's name and a change of it.
type Mutation<T> = (&'static str, fn(&mut T));

fn files(name: &str) -> CertificateFiles {
    CertificateFiles {
        chain: format!("/etc/{name}.pem").into(),
        key: format!("/etc/{name}.key").into(),
    }
}

/// One change per field of a service's settings. The destructuring lists
/// every field: a field added to `ServiceConfig` does not compile here
/// until it has a row.
fn service_mutations() -> Vec<Mutation<ServiceConfig>> {
    let ServiceConfig {
        name: _,
        listen: _,
        scheduler: _,
        startservers: _,
        maxclients: _,
        minspareservers: _,
        maxspareservers: _,
        redirect: _,
        timeouts: _,
        forward_for: _,
        upgrades: _,
        options: _,
        tls: _,
        health: _,
        proxy_protocol: _,
        discover: _,
        error_pages: _,
        http2: _,
    } = ServiceConfig::new("x");
    vec![
        ("listen", |c| c.listen = "127.0.0.1:9090".parse().unwrap()),
        ("scheduler", |c| c.scheduler = "hhttp".into()),
        ("startservers", |c| c.startservers = 9),
        ("maxclients", |c| c.maxclients = 9),
        ("minspareservers", |c| c.minspareservers = 9),
        ("maxspareservers", |c| c.maxspareservers = 9),
        ("redirect", |c| {
            c.redirect = Some("127.0.0.1:81".parse().unwrap())
        }),
        ("timeouts.connect", |c| c.timeouts.connect = Some(5)),
        ("timeouts.read", |c| c.timeouts.read = Some(5)),
        ("timeouts.keepalive", |c| c.timeouts.keepalive = Some(5)),
        ("timeouts.header", |c| c.timeouts.header = Some(5)),
        ("timeouts.response", |c| c.timeouts.response = Some(5)),
        ("forward_for", |c| c.forward_for = true),
        ("http2", |c| c.http2 = true),
        ("upgrades", |c| c.upgrades = Vec::new()),
        ("options", |c| {
            c.options.insert("k".into(), "v w".into());
        }),
        ("tls", |c| c.tls = Some(TlsConfig::new(vec![files("a")]))),
        ("tls.host_check", |c| {
            let mut tls = TlsConfig::new(vec![files("a"), files("b")]);
            tls.host_check = false;
            c.tls = Some(tls);
        }),
        ("proxy_protocol", |c| {
            c.proxy_protocol = "10.0.0.0/8".parse().unwrap()
        }),
        ("discover", |c| {
            c.discover = vec![Discovery {
                kind: DiscoveryKind::Address { port: 80 },
                name: "a.test".into(),
                weight: 2,
            }]
        }),
        ("error_pages", |c| {
            c.error_pages.insert(
                503,
                ktcpvs_core::model::ErrorPage {
                    content_type: "text/html".into(),
                    body: "<h1>busy</h1>".into(),
                },
            );
        }),
        // `health`: one row per key, below.
    ]
}

/// A value other than the default for every health key.
const HEALTH_CHANGES: [(&str, &str); 19] = [
    ("check", "tcp"),
    ("check_method", "HEAD"),
    ("check_path", "/h"),
    ("check_host", "h.example"),
    ("check_status", "200"),
    ("check_body", "ok"),
    ("check_interval", "3s"),
    ("check_timeout", "2s"),
    ("check_rise", "3"),
    ("check_fall", "4"),
    ("check_jitter", "5"),
    ("all_down", "open"),
    ("eject_5xx", "2"),
    ("eject_failures", "2"),
    ("max_ejection_percent", "20"),
    ("slow_start", "5s"),
    ("queue", "8"),
    ("queue_timeout", "2s"),
    ("retry_budget", "10"),
];

/// One change per field of a server; every field listed as above.
fn server_mutations() -> Vec<Mutation<ServerConfig>> {
    let ServerConfig {
        addr: _,
        weight: _,
        tls: _,
        maxconn: _,
        send_proxy: _,
        // Not configuration: checked by `discovered_servers_are_not_configuration`.
        discovered: _,
    } = ServerConfig {
        addr: "1.1.1.1:1".parse().unwrap(),
        weight: 1,
        tls: None,
        maxconn: 0,
        send_proxy: None,
        discovered: None,
    };
    vec![
        ("addr", |s| s.addr = "10.0.0.9:80".parse().unwrap()),
        ("weight", |s| s.weight = 0),
        ("tls", |s| {
            s.tls = Some(BackendTls {
                name: Some("b.internal".into()),
                ca: Some("/etc/ca.pem".into()),
                certificate: Some(files("c")),
            })
        }),
        ("maxconn", |s| s.maxconn = 10),
        ("send_proxy", |s| s.send_proxy = Some(ProxyVersion::V2)),
    ]
}

/// One change per field of a rule; every field listed as above.
fn rule_mutations() -> Vec<Mutation<RuleConfig>> {
    let RuleConfig {
        pattern: _,
        match_group: _,
        servers: _,
        conditions: _,
        action: _,
        edits: _,
    } = RuleConfig {
        pattern: String::new(),
        match_group: None,
        servers: Vec::new(),
        conditions: Default::default(),
        action: Default::default(),
        edits: Vec::new(),
    };
    vec![
        ("pattern", |r| r.pattern = "/z".into()),
        ("match_group", |r| r.match_group = Some(0)),
        ("servers", |r| {
            r.servers.push("10.0.0.2:80".parse().unwrap())
        }),
        ("conditions", |r| r.conditions.host = Some("=a.test".into())),
        ("action", |r| {
            r.servers.clear();
            r.action = RuleAction::Redirect {
                status: 301,
                location: "/new".into(),
            };
        }),
        ("edits", |r| {
            r.edits.push(HeaderEdit {
                side: EditSide::Request,
                op: EditOp::Set,
                name: "X-A".into(),
                value: "1".into(),
            })
        }),
    ]
}

#[test]
fn a_change_of_any_one_field_is_found_and_made() {
    assert_eq!(HEALTH_CHANGES.len(), HEALTH_KEYS.len() + 1);
    let base = loaded(BASE).config();
    let check = |what: &str, new: Config| {
        let changes = diff_applies(&base, &new);
        assert!(!changes.is_empty(), "{what}: no change found");
        let back = diff_applies(&new, &base);
        assert!(!back.is_empty(), "{what}: no change found going back");
    };
    for (field, mutate) in service_mutations() {
        let mut new = base.clone();
        mutate(&mut new.services[0].config);
        check(field, new);
    }
    for (key, value) in HEALTH_CHANGES {
        let mut new = base.clone();
        new.services[0].config.health.set(key, value).unwrap();
        check(key, new);
    }
    for (field, mutate) in server_mutations() {
        let mut new = base.clone();
        mutate(&mut new.services[1].servers[0]);
        check(field, new);
    }
    for (field, mutate) in rule_mutations() {
        let mut new = base.clone();
        // The first rule, "/a" to 10.0.0.1:80.
        mutate(&mut new.services[0].rules[0]);
        check(field, new);
    }
}

#[test]
fn a_deleted_pair_names_its_rule_exactly() {
    // "/b" twice, with and without `match`, both to 10.0.0.1:80: deleting
    // the pair of one (named by pattern, match and conditions) leaves the
    // other alone.
    let two = BASE.replace(
        "    rule = pattern \".*\"",
        "    rule = pattern \"/b\" use server 10.0.0.1:80\n    rule = pattern \".*\"",
    );
    let got: Vec<String> = diff_applies(&loaded(&two).config(), &loaded(BASE).config())
        .iter()
        .map(describe)
        .collect();
    assert_eq!(got, ["delete-rule web /b 10.0.0.1:80"]);
    // A rule that gains a server keeps its place.
    let more = BASE.replace(
        "    rule = pattern \"/b\" match 0 use server 10.0.0.1:80\n",
        "",
    );
    let got: Vec<String> = diff_applies(&loaded(&more).config(), &loaded(BASE).config())
        .iter()
        .map(describe)
        .collect();
    assert_eq!(got, ["add-rule web /b 10.0.0.1:80"]);
}

//! Printing a configuration and loading the printed text gives back the
//! identical configuration, with service-name ports and with numeric ports
//! (`-n`). Configurations are built through the control API from random
//! services, servers and rules, so every one of them is a configuration a
//! user could really have.
//!
//! The same generators, drawing from small pools of names, addresses and
//! patterns so that two configurations share much, check `config::diff`:
//! its commands, applied one at a time to one configuration, give the
//! other.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ktcpvs_core::condition::{Conditions, EditOp, EditSide, HeaderEdit, RuleAction};
use ktcpvs_core::config::{self, PrintOptions};
use ktcpvs_core::model::{Discovery, DiscoveryKind, ProxyVersion};
use ktcpvs_core::RuleSpec;
use ktcpvs_core::{BackendTls, CertificateFiles, Command, Config, Control, Endpoint, ServiceSpec};
use proptest::prelude::*;

/// A server: address, weight, TLS, maxconn, PROXY protocol version.
type ServerGen = (
    SocketAddr,
    Option<u32>,
    Option<BackendTls>,
    u32,
    Option<ProxyVersion>,
);

/// One service as the generator describes it.
#[derive(Debug, Clone)]
struct ServiceGen {
    name: String,
    spec: ServiceSpec,
    servers: Vec<ServerGen>,
    /// (pattern, match group, index into `servers`)
    rules: Vec<(String, Option<u32>, usize)>,
    /// Whether rules get conditions, header edits and edge actions too.
    decorate: bool,
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        1 => any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s))),
        1 => Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]
}

fn port() -> impl Strategy<Value = u16> {
    // Well-known ports print as service names without `-n`.
    prop_oneof![
        2 => prop::sample::select(vec![21u16, 22, 25, 53, 80, 110, 143, 443, 993, 3306, 5432, 8080]),
        3 => any::<u16>(),
    ]
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    (ip(), port()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn service_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9_.-]{1,20}",
        1 => prop::sample::select(vec!["Virtual", "virtual", "listen", "server", "rule", "match", "use", "pattern", "on", "1"])
            .prop_map(str::to_string),
    ]
}

/// Patterns made of pieces that exercise the quoting: quotes, backslashes,
/// blanks, tabs, line breaks, `#`, braces, non-ASCII, and capture groups.
fn pattern() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "/", "images", r"\d+", r"\.html$", "(a|b)", "([^/]+)", "\"", r"\\", "é", "[a-z]*", "\t",
        "\n", "x y", "#", r"\{", r"\}", ";", "=", "^/", "?q=1",
    ]);
    prop_oneof![
        1 => Just(".*".to_string()),
        1 => Just("^/.*".to_string()),
        6 => prop::collection::vec(piece, 1..5).prop_map(|p| p.concat()),
    ]
}

fn option_value() -> impl Strategy<Value = String> {
    // Anything but quotes and line breaks, which options may not hold.
    "[ -!#-~\té\\\\]{0,12}"
}

/// Absolute file names (a relative one would be taken from the printed
/// file's directory), with the characters that need quoting: blanks,
/// quotes, backslashes and `#`.
fn file_name() -> impl Strategy<Value = String> {
    "(/[a-z0-9 ._#\"\\\\-]{1,8}){1,3}"
}

/// TLS settings of a real server: any mix of a name, a CA file and a
/// client certificate.
fn backend_tls() -> impl Strategy<Value = BackendTls> {
    (
        prop::option::of("[a-z0-9]{1,8}(\\.[a-z0-9-]{0,6}[a-z0-9]){0,2}"),
        prop::option::of(file_name()),
        prop::option::of((file_name(), file_name())),
    )
        .prop_map(|(name, ca, certificate)| BackendTls {
            name,
            ca: ca.map(Into::into),
            certificate: certificate.map(|(chain, key)| CertificateFiles {
                chain: chain.into(),
                key: key.into(),
            }),
        })
}

fn spec() -> impl Strategy<Value = ServiceSpec> {
    let timeout = || prop::option::of(1u32..=86_400);
    (
        (
            prop::option::of(socket_addr()),
            prop::option::of(prop::sample::select(support::SCHEDULER_NAMES.to_vec())),
            prop::option::of(1u32..=65_535),
            prop::option::of(1u32..=1_000_000),
            prop::option::of(1u32..=65_535),
            prop::option::of(1u32..=65_535),
            prop::option::of(socket_addr()),
        ),
        (timeout(), timeout(), timeout(), timeout(), timeout()),
        (
            prop::option::of(any::<bool>()),
            prop::option::of(prop::sample::subsequence(
                // `w#s`: a `#` in a bare word would start a comment (found
                // by the config fuzz target).
                vec!["websocket", "Echo", "my-proto", "x.y_z", "w#s"],
                0..=4,
            )),
            prop::option::of(any::<bool>()),
        ),
        prop::collection::btree_map("[A-Za-z0-9_-]{1,10}", option_value(), 0..3),
        (
            prop::option::of(prop::collection::vec((file_name(), file_name()), 0..3)),
            prop::option::of(any::<bool>()),
        ),
        (
            prop::sample::subsequence(HEALTH_VALUES.to_vec(), 0..6),
            prop::option::of(prop::sample::select(vec![
                "none",
                "127.0.0.1",
                "10.0.0.0/8,192.168.1.0/24",
                "::1,fd00::/8,172.16.0.0/12",
            ])),
            prop::sample::subsequence(
                vec![
                    (502u16, "text/html; charset=utf-8", "<h1>\"down\"</h1>\n#x"),
                    (400, "text/plain", "bad \\ req"),
                ],
                0..=2,
            ),
            prop::option::of(prop::sample::select(vec![
                "",
                "dns a.test:80 1",
                "srv _http._tcp.web.service.consul 2;dns b-1.test:8080 0",
            ])),
        ),
    )
        .prop_map(
            |(
                (listen, scheduler, ss, mc, mins, maxs, redirect),
                (ct, rt, kt, ht, rst),
                (ff, upgrades, http2),
                opts,
                (certificates, host_check),
                (health, proxy_protocol, error_pages, discover),
            )| {
                ServiceSpec {
                    listen: listen.map(Endpoint::from_addr),
                    listen_port: None,
                    scheduler: scheduler.map(str::to_string),
                    startservers: ss,
                    maxclients: mc,
                    minspareservers: mins,
                    maxspareservers: maxs,
                    redirect: redirect.map(|r| Some(Endpoint::from_addr(r))),
                    connect_timeout: ct,
                    read_timeout: rt,
                    keepalive_timeout: kt,
                    header_timeout: ht,
                    response_timeout: rst,
                    forward_for: ff,
                    http2,
                    upgrades: upgrades.map(|u| u.into_iter().map(str::to_string).collect()),
                    options: opts.into_iter().map(|(k, v)| (k, Some(v))).collect(),
                    certificates: certificates.map(|c| {
                        c.into_iter()
                            .map(|(chain, key)| CertificateFiles {
                                chain: chain.into(),
                                key: key.into(),
                            })
                            .collect()
                    }),
                    host_check,
                    proxy_protocol: proxy_protocol.map(|n| n.parse().unwrap()),
                    discover: discover.map(discoveries),
                    error_pages: error_pages
                        .into_iter()
                        .map(|(status, t, b)| {
                            (
                                status,
                                Some(ktcpvs_core::model::ErrorPage {
                                    content_type: t.into(),
                                    body: b.into(),
                                }),
                            )
                        })
                        .collect(),
                    health: health
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                }
            },
        )
}

/// `discover` entries from their configuration form, `;`-separated.
fn discoveries(text: &str) -> Vec<Discovery> {
    text.split(';')
        .filter(|d| !d.is_empty())
        .map(|d| {
            let f: Vec<&str> = d.split(' ').collect();
            let weight = f[2].parse().unwrap();
            match f[0] {
                "dns" => {
                    let (name, port) = f[1].rsplit_once(':').unwrap();
                    Discovery {
                        kind: DiscoveryKind::Address {
                            port: port.parse().unwrap(),
                        },
                        name: name.into(),
                        weight,
                    }
                }
                _ => Discovery {
                    kind: DiscoveryKind::Srv,
                    name: f[1].into(),
                    weight,
                },
            }
        })
        .collect()
}

/// Health settings the generator draws from: one value per key, texts
/// with blanks, quotes and `#` among them.
const HEALTH_VALUES: [(&str, &str); 12] = [
    ("check", "http"),
    ("check_path", "/health#x?a=\"b\""),
    ("check_host", "h.example"),
    ("check_body", "all \"good\" # here"),
    ("check_status", "200-204"),
    ("check_interval", "1500ms"),
    ("check_fall", "4"),
    ("all_down", "open"),
    ("eject_5xx", "3"),
    ("slow_start", "30s"),
    ("queue", "64"),
    ("retry_budget", "5"),
];

fn service() -> impl Strategy<Value = ServiceGen> {
    (
        service_name(),
        spec(),
        prop::collection::vec(
            (
                socket_addr(),
                prop::option::of(0u32..=65_535),
                prop::option::of(backend_tls()),
                0u32..3,
                prop::option::of(prop::sample::select(vec![
                    ProxyVersion::V1,
                    ProxyVersion::V2,
                ])),
            ),
            0..5,
        ),
        prop::collection::vec(
            (
                pattern(),
                prop::option::of(0u32..=2),
                any::<prop::sample::Index>(),
            ),
            0..7,
        ),
    )
        .prop_map(|(name, spec, servers, rules)| {
            let rules = if servers.is_empty() {
                Vec::new()
            } else {
                rules
                    .into_iter()
                    .map(|(p, m, i)| (p, m, i.index(servers.len())))
                    .collect()
            };
            ServiceGen {
                name,
                spec,
                servers,
                rules,
                decorate: true,
            }
        })
}

/// Builds a configuration through the control API. Commands the generator
/// got wrong (a duplicate name or server, a match group beyond the
/// pattern's groups) are refused and skipped, as a user's would be.
fn build(services: &[ServiceGen]) -> Control {
    let control = support::control();
    for s in services {
        let added = control.execute(Command::AddService {
            name: s.name.clone(),
            spec: s.spec.clone(),
        });
        if added.is_err() {
            continue;
        }
        for (addr, weight, tls, maxconn, send_proxy) in &s.servers {
            let _ = control.execute(Command::AddServer {
                service: s.name.clone(),
                server: Endpoint::from_addr(*addr),
                weight: *weight,
            });
            let _ = control.execute(Command::SetServerLimit {
                service: s.name.clone(),
                server: Endpoint::from_addr(*addr),
                maxconn: *maxconn,
            });
            let _ = control.execute(Command::SetServerProxy {
                service: s.name.clone(),
                server: Endpoint::from_addr(*addr),
                version: *send_proxy,
            });
            if let Some(tls) = tls {
                let _ = control.execute(Command::SetServerTls {
                    service: s.name.clone(),
                    server: Endpoint::from_addr(*addr),
                    tls: Some(tls.clone()),
                });
            }
        }
        for (j, (pattern, match_group, server)) in s.rules.iter().enumerate() {
            let server = Endpoint::from_addr(s.servers[*server].0);
            let (conditions, edits) = if s.decorate {
                (conditions_of(j), edits_of(j))
            } else {
                (Conditions::default(), Vec::new())
            };
            let _ = if conditions.is_empty() && edits.is_empty() {
                control.execute(Command::AddRule {
                    service: s.name.clone(),
                    pattern: pattern.clone(),
                    match_group: *match_group,
                    server,
                })
            } else {
                control.execute(Command::AddRuleWith {
                    service: s.name.clone(),
                    rule: RuleSpec {
                        pattern: pattern.clone(),
                        match_group: *match_group,
                        conditions,
                        action: RuleAction::Forward,
                        edits,
                    },
                    server: Some(server),
                })
            };
        }
        let edges = if s.decorate { s.rules.len() } else { 0 };
        for (j, action) in edge_actions().into_iter().enumerate().take(edges) {
            let _ = control.execute(Command::AddRuleWith {
                service: s.name.clone(),
                rule: RuleSpec {
                    pattern: format!("^/edge{j}/(.*)"),
                    conditions: conditions_of(j + 1),
                    action,
                    ..RuleSpec::default()
                },
                server: None,
            });
        }
    }
    control
}

/// The conditions of the `j`th generated rule: none for most, texts with
/// quotes, backslashes and `#` among the others.
fn conditions_of(j: usize) -> Conditions {
    match j % 4 {
        1 => Conditions {
            host: Some("=a.test".into()),
            ..Default::default()
        },
        2 => Conditions {
            methods: vec!["GET".into(), "HEAD".into()],
            headers: vec![("X-A".into(), r#"^"b\d#"$"#.into())],
            ..Default::default()
        },
        3 => Conditions {
            cookies: vec![("s".into(), ".+".into())],
            query: Some("v=1&x=#".into()),
            src: "10.0.0.0/8,::1".parse().unwrap(),
            normalize: true,
            ..Default::default()
        },
        _ => Conditions::default(),
    }
}

/// The header edits of the `j`th generated rule.
fn edits_of(j: usize) -> Vec<HeaderEdit> {
    let edit = |side, op, name: &str, value: &str| HeaderEdit {
        side,
        op,
        name: name.into(),
        value: value.into(),
    };
    match (j / 2) % 3 {
        1 => vec![edit(EditSide::Request, EditOp::Set, "X-T", "1")],
        2 => vec![
            edit(EditSide::Response, EditOp::Del, "Server", ""),
            edit(EditSide::Response, EditOp::Add, "X-A", r#"a "q" \ # b"#),
        ],
        _ => Vec::new(),
    }
}

/// Edge actions, with texts that need quoting.
fn edge_actions() -> Vec<RuleAction> {
    vec![
        RuleAction::Redirect {
            status: 301,
            location: "https://{host}/n/$1?a=\"b\"#".into(),
        },
        RuleAction::Respond {
            status: 503,
            content_type: "text/html; charset=utf-8".into(),
            body: "<h1>\"back\" soon</h1>\n\ttab \\ # end".into(),
        },
    ]
}

/// Prints `config`, loads the text into a fresh control handle, and checks
/// the result is identical and prints identically.
fn round_trip(config: &Config, options: &PrintOptions) -> Result<(), TestCaseError> {
    let text = config::print(config, options);
    let reloaded = support::control();
    if let Err(e) = reloaded.load_config(&text, None) {
        return Err(TestCaseError::fail(format!("{e}\n--- text ---\n{text}")));
    }
    let again = reloaded.config();
    prop_assert_eq!(&again, config, "text:\n{}", text);
    prop_assert_eq!(config::print(&again, options), text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn print_then_load_gives_the_identical_configuration(services in prop::collection::vec(service(), 0..4)) {
        let config = build(&services).config();
        round_trip(&config, &PrintOptions { numeric: false })?;
        round_trip(&config, &PrintOptions { numeric: true })?;
    }
}

/// A service whose name, servers and rules come from small pools, so two
/// such configurations share services, servers and rules.
fn pooled_service() -> impl Strategy<Value = ServiceGen> {
    let addrs: Vec<SocketAddr> = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "[::1]:81"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let patterns = vec!["/a", "/b", "/c/(x)", ".*", "^/.*"];
    (
        prop::sample::select(vec!["a", "b", "c"]),
        spec(),
        prop::collection::vec(
            (
                prop::sample::select(addrs),
                prop::option::of(0u32..=3),
                prop::option::of(backend_tls()),
                0u32..2,
                prop::option::of(Just(ProxyVersion::V1)),
            ),
            0..5,
        ),
        prop::collection::vec(
            (
                prop::sample::select(patterns),
                prop::option::of(0u32..=1),
                any::<prop::sample::Index>(),
            ),
            0..7,
        ),
    )
        .prop_map(|(name, spec, servers, rules)| {
            let rules = if servers.is_empty() {
                Vec::new()
            } else {
                rules
                    .into_iter()
                    .map(|(p, m, i)| (p.to_string(), m, i.index(servers.len())))
                    .collect()
            };
            ServiceGen {
                name: name.to_string(),
                spec,
                servers,
                rules,
                decorate: true,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_diff_applied_to_the_old_configuration_gives_the_new_one(
        old in prop::collection::vec(pooled_service(), 0..4),
        new in prop::collection::vec(pooled_service(), 0..4),
    ) {
        let control = build(&old);
        let (before, after) = (control.config(), build(&new).config());
        let changes = config::diff(&before, &after);
        for change in &changes {
            if let config::ConfigChange::Command(c) = change {
                if let Err(e) = control.execute((**c).clone()) {
                    return Err(TestCaseError::fail(format!("{c:?} refused: {e}\n{changes:#?}")));
                }
            }
        }
        let mut reached = control.config();
        let listed_as_new = reached.services.iter().map(|s| &s.config.name)
            .eq(after.services.iter().map(|s| &s.config.name));
        prop_assert_eq!(
            listed_as_new,
            !matches!(changes.last(), Some(config::ConfigChange::ServiceOrder(_)))
        );
        // Services are compared in the new order (no command moves one).
        reached.services.sort_by_key(|s| {
            after.services.iter().position(|d| d.config.name == s.config.name)
        });
        prop_assert_eq!(&reached, &after, "changes: {:#?}", changes);
        prop_assert!(config::diff(&after, &after).is_empty());
    }
}

#[test]
fn tricky_names_ports_and_patterns_round_trip() {
    let services = vec![ServiceGen {
        name: "Virtual".to_string(),
        spec: ServiceSpec {
            listen: Some("[::1]:0".parse().unwrap()),
            redirect: Some(Some("127.0.0.1:http-alt".parse().unwrap())),
            options: vec![("k".into(), Some("tab\there \\ back".into()))],
            ..Default::default()
        },
        servers: vec![
            ("[::]:80".parse().unwrap(), Some(0), None, 0, None),
            (
                "10.0.0.1:0".parse().unwrap(),
                None,
                Some(BackendTls {
                    name: Some("a-b.c".into()),
                    ca: Some("/a \"b\" #c".into()),
                    certificate: None,
                }),
                7,
                Some(ProxyVersion::V2),
            ),
        ],
        rules: vec![
            ("^/.*".into(), None, 0),
            (".*".into(), Some(0), 1),
            ("a\"b\\\\c\nd\te#f".into(), None, 1),
            ("/u/([^/]+)".into(), Some(1), 0),
            ("/u/([^/]+)".into(), Some(1), 1),
        ],
        decorate: false,
    }];
    let control = build(&services);
    let config = control.config();
    let def = config.service("Virtual").unwrap();
    assert_eq!(def.servers.len(), 2);
    assert_eq!(def.rules.len(), 4, "{:#?}", def.rules);
    // Catch-alls stay last, in the order they were added.
    assert_eq!(def.rules[2].pattern, "^/.*");
    assert_eq!(def.rules[3].pattern, ".*");
    round_trip(&config, &PrintOptions { numeric: false }).unwrap();
    round_trip(&config, &PrintOptions { numeric: true }).unwrap();
}

#[test]
fn listing_uses_service_names_unless_numeric() {
    let control = support::control();
    control
        .load_config(
            "Virtual web {\n  listen = 0.0.0.0:8080\n  server = 10.0.0.1:80 2\n}",
            None,
        )
        .unwrap();
    let named = control
        .list(None, &PrintOptions { numeric: false })
        .unwrap();
    let numeric = control
        .list(Some("web"), &PrintOptions { numeric: true })
        .unwrap();
    assert!(named.contains("listen = 0.0.0.0:webcache\n"), "{named}");
    assert!(named.contains("server = 10.0.0.1:http 2\n"), "{named}");
    assert!(numeric.contains("listen = 0.0.0.0:8080\n"), "{numeric}");
    assert!(numeric.contains("server = 10.0.0.1:80 2\n"), "{numeric}");
    assert!(named.starts_with("Virtual web {\n") && named.ends_with("}\n"));
}

/// The decorations the generator adds are accepted (not silently refused),
/// so the property above really covers conditions, edits and actions.
#[test]
fn decorated_rules_are_built() {
    let services = vec![ServiceGen {
        name: "d".into(),
        spec: ServiceSpec::default(),
        servers: vec![("10.0.0.1:80".parse().unwrap(), None, None, 0, None)],
        rules: (0..6).map(|i| (format!("^/r{i}"), None, 0)).collect(),
        decorate: true,
    }];
    let config = build(&services).config();
    let rules = &config.service("d").unwrap().rules;
    assert_eq!(rules.len(), 8, "{rules:#?}");
    assert_eq!(rules.iter().filter(|r| !r.conditions.is_empty()).count(), 6);
    assert_eq!(rules.iter().filter(|r| !r.edits.is_empty()).count(), 4);
    assert_eq!(
        rules
            .iter()
            .filter(|r| r.action != RuleAction::Forward)
            .count(),
        2
    );
    round_trip(&config, &PrintOptions { numeric: true }).unwrap();
}

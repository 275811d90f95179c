//! The control rules: every operation's refusals in the original's words,
//! the rule semantics (merging, order, a server in several rules, busy
//! servers), edits that change only what they name, start/stop, runtime
//! settings, reloads that keep running services and live state, and a
//! property test that random command sequences apply whole or not at all
//! while the configuration's invariants hold.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use ktcpvs_core::{Command, Config, Control, ControlError, Endpoint, ServiceSpec};
use proptest::prelude::*;

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn add_service(name: &str) -> Command {
    Command::AddService {
        name: name.into(),
        spec: ServiceSpec::default(),
    }
}

fn add_server(service: &str, server: &str, weight: Option<u32>) -> Command {
    Command::AddServer {
        service: service.into(),
        server: ep(server),
        weight,
    }
}

fn add_rule(service: &str, pattern: &str, match_group: Option<u32>, server: &str) -> Command {
    Command::AddRule {
        service: service.into(),
        pattern: pattern.into(),
        match_group,
        server: ep(server),
    }
}

fn delete_rule(service: &str, pattern: &str, server: &str) -> Command {
    Command::DeleteRule {
        service: service.into(),
        pattern: pattern.into(),
        server: ep(server),
    }
}

/// A control with service `web` and servers 10.0.0.1..=3 on port 80.
fn web() -> Control {
    let control = support::control();
    control
        .transaction(&[
            add_service("web"),
            add_server("web", "10.0.0.1:80", None),
            add_server("web", "10.0.0.2:80", Some(2)),
            add_server("web", "10.0.0.3:80", Some(3)),
        ])
        .unwrap();
    control
}

/// Runs `command` expecting a refusal, and checks nothing changed.
fn refused(control: &Control, command: Command) -> ControlError {
    let before = control.config();
    let generation = control.snapshot().generation();
    let err = control
        .execute(command.clone())
        .expect_err(&format!("{command:?} was accepted"));
    assert_eq!(
        control.config(),
        before,
        "{command:?} changed the configuration"
    );
    assert_eq!(control.snapshot().generation(), generation);
    err
}

#[test]
fn service_already_exists() {
    let control = web();
    let err = refused(&control, add_service("web"));
    assert_eq!(err, ControlError::ServiceExists("web".into()));
    assert!(
        err.to_string().starts_with("Service already exists"),
        "{err}"
    );
}

#[test]
fn no_such_service() {
    let control = web();
    for command in [
        Command::EditService {
            name: "nope".into(),
            spec: ServiceSpec::default(),
        },
        Command::DeleteService {
            name: "nope".into(),
        },
        add_server("nope", "10.0.0.1:80", None),
        add_rule("nope", "/x", None, "10.0.0.1:80"),
        Command::Start {
            service: Some("nope".into()),
        },
        Command::Stop {
            service: Some("nope".into()),
        },
    ] {
        let err = refused(&control, command);
        assert_eq!(err, ControlError::NoSuchService("nope".into()));
        assert!(err.to_string().starts_with("No such service: 'nope'"));
    }
}

#[test]
fn destination_already_exists_even_when_spelled_differently() {
    let control = web();
    let err = refused(&control, add_server("web", "10.0.0.2:http", Some(9)));
    assert_eq!(
        err,
        ControlError::DestinationExists {
            service: "web".into(),
            server: addr("10.0.0.2:80"),
        }
    );
    assert!(err.to_string().starts_with("Destination already exists"));
}

#[test]
fn no_such_destination() {
    let control = web();
    for command in [
        Command::EditServer {
            service: "web".into(),
            server: ep("10.0.0.9:80"),
            weight: Some(1),
        },
        Command::DeleteServer {
            service: "web".into(),
            server: ep("10.0.0.9:80"),
        },
        add_rule("web", "/x", None, "10.0.0.9:80"),
    ] {
        let err = refused(&control, command);
        assert_eq!(
            err,
            ControlError::NoSuchDestination {
                service: "web".into(),
                server: addr("10.0.0.9:80"),
            }
        );
        assert!(err.to_string().starts_with("No such destination"));
    }
}

#[test]
fn destination_is_busy_while_a_rule_uses_it() {
    let control = web();
    control
        .execute(add_rule("web", "/images/.*", None, "10.0.0.1:80"))
        .unwrap();
    let delete = Command::DeleteServer {
        service: "web".into(),
        server: ep("10.0.0.1:80"),
    };
    let err = refused(&control, delete.clone());
    assert_eq!(
        err,
        ControlError::DestinationBusy {
            service: "web".into(),
            server: addr("10.0.0.1:80"),
            pattern: "/images/.*".into(),
        }
    );
    assert!(err.to_string().starts_with("Destination is busy"));
    control
        .execute(delete_rule("web", "/images/.*", "10.0.0.1:80"))
        .unwrap();
    control.execute(delete).unwrap();
    assert!(control.config().services[0]
        .server(addr("10.0.0.1:80"))
        .is_none());
}

#[test]
fn same_pattern_and_match_merge_into_one_rule() {
    let control = web();
    control
        .transaction(&[
            add_rule("web", "/u/([^/]+)", Some(1), "10.0.0.1:80"),
            add_rule("web", "/u/([^/]+)", Some(1), "10.0.0.2:80"),
            // Same pattern, other match index: a rule of its own.
            add_rule("web", "/u/([^/]+)", None, "10.0.0.3:80"),
        ])
        .unwrap();
    let rules = control.config().services[0].rules.clone();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].match_group, Some(1));
    assert_eq!(
        rules[0].servers,
        vec![addr("10.0.0.1:80"), addr("10.0.0.2:80")],
        "servers in the order added"
    );
    assert_eq!(rules[1].match_group, None);
    let err = refused(
        &control,
        add_rule("web", "/u/([^/]+)", Some(1), "10.0.0.2:80"),
    );
    assert!(matches!(err, ControlError::RuleExists { .. }), "{err}");
}

#[test]
fn a_server_may_serve_several_rules() {
    let control = web();
    control
        .transaction(&[
            add_rule("web", "/images/.*", None, "10.0.0.1:80"),
            add_rule("web", "/html/.*", None, "10.0.0.1:80"),
        ])
        .unwrap();
    let snapshot = control.snapshot();
    let service = snapshot.service("web").unwrap();
    let rules = ktcpvs_core::VirtualService::rules(service.as_ref());
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].servers(), &[0]);
    assert_eq!(rules[1].servers(), &[0]);
    // Removing one pair leaves the other rule intact, and the server busy.
    control
        .execute(delete_rule("web", "/images/.*", "10.0.0.1:80"))
        .unwrap();
    assert_eq!(control.config().services[0].rules.len(), 1);
    let err = refused(
        &control,
        Command::DeleteServer {
            service: "web".into(),
            server: ep("10.0.0.1:80"),
        },
    );
    assert!(
        matches!(err, ControlError::DestinationBusy { ref pattern, .. } if pattern == "/html/.*")
    );
}

#[test]
fn rules_keep_the_order_added_with_catch_alls_last() {
    let control = web();
    control
        .transaction(&[
            add_rule("web", ".*", None, "10.0.0.3:80"),
            add_rule("web", "/images/.*", None, "10.0.0.1:80"),
            add_rule("web", "^/.*", None, "10.0.0.2:80"),
            add_rule("web", "/html/.*", None, "10.0.0.2:80"),
        ])
        .unwrap();
    let patterns: Vec<String> = control.config().services[0]
        .rules
        .iter()
        .map(|r| r.pattern.clone())
        .collect();
    assert_eq!(patterns, vec!["/images/.*", "/html/.*", ".*", "^/.*"]);
    // First match wins: /images/a goes to the first rule, not the catch-all.
    let snapshot = control.snapshot();
    let rules = ktcpvs_core::VirtualService::rules(snapshot.service("web").unwrap().as_ref());
    let (index, _) = ktcpvs_core::view::first_matching_rule(rules, "/images/a.png").unwrap();
    assert_eq!(index, 0);
    let (index, _) = ktcpvs_core::view::first_matching_rule(rules, "/other").unwrap();
    assert_eq!(index, 2);
}

#[test]
fn deleting_a_rule_pair_and_the_last_pair_removes_the_rule() {
    let control = web();
    control
        .transaction(&[
            add_rule("web", "/x", None, "10.0.0.1:80"),
            add_rule("web", "/x", None, "10.0.0.2:80"),
        ])
        .unwrap();
    control
        .execute(delete_rule("web", "/x", "10.0.0.1:80"))
        .unwrap();
    assert_eq!(
        control.config().services[0].rules[0].servers,
        vec![addr("10.0.0.2:80")]
    );
    let err = refused(&control, delete_rule("web", "/x", "10.0.0.1:80"));
    assert!(matches!(err, ControlError::NoSuchRule { .. }), "{err}");
    control
        .execute(delete_rule("web", "/x", "10.0.0.2:80"))
        .unwrap();
    assert!(control.config().services[0].rules.is_empty());
}

#[test]
fn edit_changes_only_the_given_fields() {
    let control = support::control();
    control
        .execute(Command::AddService {
            name: "web".into(),
            spec: ServiceSpec {
                listen: Some(ep("10.0.0.1:81")),
                scheduler: Some("hhttp".into()),
                startservers: Some(3),
                maxclients: Some(1000),
                redirect: Some(Some(ep("10.0.0.9:82"))),
                read_timeout: Some(50),
                forward_for: Some(true),
                options: vec![("cookie".into(), Some("SID".into()))],
                ..Default::default()
            },
        })
        .unwrap();
    let before = control.config().services[0].config.clone();
    control
        .execute(Command::EditService {
            name: "web".into(),
            spec: ServiceSpec {
                scheduler: Some("wlc".into()),
                ..Default::default()
            },
        })
        .unwrap();
    let after = control.config().services[0].config.clone();
    assert_eq!(after.scheduler, "wlc");
    assert_eq!(
        ktcpvs_core::ServiceConfig {
            scheduler: before.scheduler.clone(),
            ..after.clone()
        },
        before,
        "only the scheduler changed"
    );
    // A listen address without a port keeps the port; Some(None) removes
    // the redirect; timeout 0 returns to the global setting.
    control
        .execute(Command::EditService {
            name: "web".into(),
            spec: ServiceSpec {
                listen: Some(ep("10.0.0.2")),
                redirect: Some(None),
                read_timeout: Some(0),
                options: vec![("cookie".into(), None)],
                ..Default::default()
            },
        })
        .unwrap();
    let c = control.config().services[0].config.clone();
    assert_eq!(c.listen, addr("10.0.0.2:81"));
    assert_eq!(c.redirect, None);
    assert_eq!(c.timeouts.read, None);
    assert!(c.options.is_empty());
    assert_eq!(
        (c.startservers, c.maxclients, c.forward_for),
        (3, 1000, true)
    );
    // A bad field refuses the whole edit.
    let err = refused(
        &control,
        Command::EditService {
            name: "web".into(),
            spec: ServiceSpec {
                scheduler: Some("http".into()),
                maxclients: Some(0),
                ..Default::default()
            },
        },
    );
    assert!(err.to_string().contains("maxclients"), "{err}");
    // Editing a server's weight touches nothing else.
    let control = web();
    let before = control.config();
    control
        .execute(Command::EditServer {
            service: "web".into(),
            server: ep("10.0.0.2:80"),
            weight: Some(0),
        })
        .unwrap();
    let mut expected = before.clone();
    expected.services[0].servers[1].weight = 0;
    assert_eq!(control.config(), expected);
    let err = refused(
        &control,
        Command::EditServer {
            service: "web".into(),
            server: ep("10.0.0.2:80"),
            weight: Some(65_536),
        },
    );
    assert!(err.to_string().contains("weight"), "{err}");
}

#[test]
fn start_and_stop_one_or_all() {
    let control = support::control();
    control
        .transaction(&[add_service("a"), add_service("b"), add_service("c")])
        .unwrap();
    let running = |c: &Control| -> Vec<bool> {
        let snapshot = c.snapshot();
        ["a", "b", "c"]
            .iter()
            .map(|n| {
                let flag = c.is_running(n);
                assert_eq!(snapshot.service(n).unwrap().is_running(), flag, "{n}");
                flag
            })
            .collect()
    };
    assert_eq!(running(&control), vec![false, false, false]);
    control
        .execute(Command::Start {
            service: Some("b".into()),
        })
        .unwrap();
    assert_eq!(running(&control), vec![false, true, false]);
    // Starting a running service keeps it running (the original stopped it).
    control
        .execute(Command::Start {
            service: Some("b".into()),
        })
        .unwrap();
    assert_eq!(running(&control), vec![false, true, false]);
    control.execute(Command::Start { service: None }).unwrap();
    assert_eq!(running(&control), vec![true, true, true]);
    control
        .execute(Command::Stop {
            service: Some("a".into()),
        })
        .unwrap();
    assert_eq!(running(&control), vec![false, true, true]);
    control.execute(Command::Stop { service: None }).unwrap();
    assert_eq!(running(&control), vec![false, false, false]);
}

#[test]
fn settings_set_and_get_with_range_errors() {
    let control = support::control();
    assert_eq!(control.settings().read_timeout(), 180);
    control
        .execute(Command::Set {
            name: "read_timeout".into(),
            value: "60".into(),
        })
        .unwrap();
    assert_eq!(control.settings().get("read_timeout").unwrap(), 60);
    assert_eq!(control.snapshot().settings().read_timeout(), 60);
    for (name, value, what) in [
        ("debug_level", "13", "debug_level must be 0..=12"),
        ("max_backlog", "0", "max_backlog must be 1..=65535"),
        ("read_timeout", "sixty", "takes an unsigned integer"),
        ("no_such_setting", "1", "unknown setting 'no_such_setting'"),
    ] {
        let err = refused(
            &control,
            Command::Set {
                name: name.into(),
                value: value.into(),
            },
        );
        assert!(err.to_string().contains(what), "{name}={value}: {err}");
    }
    assert_eq!(control.settings().read_timeout(), 60);
    assert_eq!(control.settings().debug_level(), 0);
}

#[test]
fn unload_refuses_every_later_change() {
    let control = web();
    control.execute(Command::Start { service: None }).unwrap();
    control
        .execute(Command::Set {
            name: "unload".into(),
            value: "1".into(),
        })
        .unwrap();
    assert!(control.snapshot().is_unloading());
    assert!(!control.is_running("web"));
    let err = control.execute(add_service("more")).unwrap_err();
    assert_eq!(err, ControlError::Unloaded);
}

#[test]
fn a_transaction_applies_whole_or_not_at_all() {
    let control = web();
    let before = control.config();
    let generation = control.snapshot().generation();
    let commands = [
        add_service("second"),
        add_server("second", "10.0.1.1:80", None),
        add_rule("second", "(", None, "10.0.1.1:80"),
    ];
    let (index, err) = control.transaction_at(&commands).unwrap_err();
    assert_eq!(index, 2);
    assert!(matches!(err, ControlError::BadPattern { .. }), "{err}");
    assert_eq!(control.config(), before);
    assert_eq!(control.snapshot().generation(), generation);
    control.transaction(&commands[..2]).unwrap();
    assert_eq!(
        control.snapshot().generation(),
        generation + 1,
        "one publish per transaction"
    );
    assert!(control.config().service("second").is_some());
}

#[test]
fn load_config_keeps_running_services_running_with_their_identity() {
    let control = support::control();
    control
        .load_config(
            "Virtual a { server = 10.0.0.1:80 }\nVirtual b { }\nVirtual c { }",
            None,
        )
        .unwrap();
    control
        .execute(Command::Start {
            service: Some("a".into()),
        })
        .unwrap();
    control
        .execute(Command::Start {
            service: Some("b".into()),
        })
        .unwrap();
    let id_a = control.snapshot().service("a").unwrap().id();
    control
        .load_config(
            "Virtual a { server = 10.0.0.1:80 5 }\nVirtual c { }\nVirtual d { }",
            None,
        )
        .unwrap();
    assert!(control.is_running("a"));
    assert!(!control.is_running("b") && control.config().service("b").is_none());
    assert!(!control.is_running("c"), "a stopped service stays stopped");
    assert!(
        !control.is_running("d"),
        "loading does not start new services"
    );
    let snapshot = control.snapshot();
    let a = snapshot.service("a").unwrap();
    assert!(a.is_running());
    assert_eq!(
        a.id(),
        id_a,
        "same identity, so the engine keeps its listener"
    );
    assert_eq!(a.def().servers[0].weight, 5);
}

#[test]
fn live_server_state_survives_reweighting_and_reloading() {
    let control = web();
    let snapshot = control.snapshot();
    let service = Arc::clone(snapshot.service("web").unwrap());
    let lease = service.lease(1);
    let second = service.lease(1);
    let load = Arc::clone(lease.load());
    assert_eq!(load.active(), 2);
    control
        .execute(Command::EditServer {
            service: "web".into(),
            server: ep("10.0.0.2:80"),
            weight: Some(7),
        })
        .unwrap();
    let after = control.snapshot();
    let entry = &after.service("web").unwrap().server_entries()[1];
    assert_eq!(entry.config().weight, 7);
    assert!(
        Arc::ptr_eq(entry.load(), &load),
        "same live state after reweight"
    );
    assert_eq!(ktcpvs_core::RealServer::active_connections(entry), 2);
    // A reload that keeps the server keeps its live state too.
    let text = control.list(None, &Default::default()).unwrap();
    control.load_config(&text, None).unwrap();
    let reloaded = control.snapshot();
    let entry = &reloaded.service("web").unwrap().server_entries()[1];
    assert!(
        Arc::ptr_eq(entry.load(), &load),
        "same live state after reload"
    );
    drop(second);
    assert_eq!(ktcpvs_core::RealServer::active_connections(entry), 1);
    drop(lease);
    assert_eq!(ktcpvs_core::RealServer::active_connections(entry), 0);
    // The old snapshot still reads consistently.
    assert_eq!(service.server_entries()[1].config().weight, 2);
}

// ---------------------------------------------------------------------
// Property test: random command sequences.

const SERVICES: [&str; 3] = ["a", "b", "c"];
const SERVERS: [&str; 4] = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.2:http", "[::1]:81"];
const PATTERNS: [&str; 7] = [".*", "^/.*", "/x", "/y/(\\d+)", "/x", "(", ""];

fn command(schedulers: Vec<&'static str>) -> impl Strategy<Value = Command> {
    let service = prop::sample::select(SERVICES.to_vec()).prop_map(str::to_string);
    let server = prop::sample::select(SERVERS.to_vec()).prop_map(ep);
    let pattern = prop::sample::select(PATTERNS.to_vec()).prop_map(str::to_string);
    let weight = prop::option::of(prop_oneof![0u32..=3, Just(65_535), Just(65_536)]);
    let match_group = prop::option::of(prop_oneof![0u32..=1, Just(11)]);
    let spec = (
        prop::option::of(prop::sample::select(schedulers)),
        prop::option::of(prop_oneof![Just(0u32), 1u32..=10]),
        prop::option::of(prop::sample::select(vec!["10.1.0.1:80", "10.1.0.2"]).prop_map(ep)),
    )
        .prop_map(|(scheduler, maxclients, listen)| ServiceSpec {
            scheduler: scheduler.map(str::to_string),
            maxclients,
            listen,
            ..Default::default()
        });
    prop_oneof![
        3 => (service.clone(), spec.clone()).prop_map(|(name, spec)| Command::AddService { name, spec }),
        1 => (service.clone(), spec).prop_map(|(name, spec)| Command::EditService { name, spec }),
        1 => service.clone().prop_map(|name| Command::DeleteService { name }),
        4 => (service.clone(), server.clone(), weight.clone())
            .prop_map(|(service, server, weight)| Command::AddServer { service, server, weight }),
        1 => (service.clone(), server.clone(), weight)
            .prop_map(|(service, server, weight)| Command::EditServer { service, server, weight }),
        2 => (service.clone(), server.clone())
            .prop_map(|(service, server)| Command::DeleteServer { service, server }),
        5 => (service.clone(), pattern.clone(), match_group, server.clone()).prop_map(
            |(service, pattern, match_group, server)| Command::AddRule { service, pattern, match_group, server }
        ),
        2 => (service.clone(), pattern, server)
            .prop_map(|(service, pattern, server)| Command::DeleteRule { service, pattern, server }),
        1 => prop::option::of(service.clone()).prop_map(|service| Command::Start { service }),
        1 => prop::option::of(service).prop_map(|service| Command::Stop { service }),
        1 => Just(Command::Flush),
        1 => (prop::sample::select(vec!["debug_level", "read_timeout", "nope"]), prop::sample::select(vec!["0", "5", "13", "x"]))
            .prop_map(|(name, value)| Command::Set { name: name.into(), value: value.into() }),
    ]
}

/// One step: a single command (which may name an unregistered scheduler),
/// or a transaction of a few commands over registered schedulers only, so
/// that its success means each command would also succeed on its own.
fn step() -> impl Strategy<Value = Vec<Command>> {
    prop_oneof![
        2 => command(vec!["http", "wlc", "hhttp", "nosuch"]).prop_map(|c| vec![c]),
        1 => prop::collection::vec(command(vec!["http", "wlc", "chttp"]), 2..4),
    ]
}

/// The invariants of every configuration the control API can reach.
fn check_invariants(config: &Config) -> Result<(), TestCaseError> {
    let mut names = BTreeSet::new();
    for def in &config.services {
        prop_assert!(names.insert(def.config.name.clone()), "duplicate service");
        let mut addrs = BTreeSet::new();
        for s in &def.servers {
            prop_assert!(addrs.insert(s.addr), "duplicate server {}", s.addr);
            prop_assert!(s.weight <= 65_535);
        }
        let mut seen_catch_all = false;
        let mut keys = BTreeSet::new();
        for r in &def.rules {
            prop_assert!(!r.servers.is_empty(), "empty rule {}", r.pattern);
            prop_assert!(
                keys.insert((r.pattern.clone(), r.match_group)),
                "unmerged rule"
            );
            let mut in_rule = BTreeSet::new();
            for a in &r.servers {
                prop_assert!(addrs.contains(a), "rule {} uses missing {}", r.pattern, a);
                prop_assert!(in_rule.insert(*a), "server twice in rule");
            }
            if r.is_catch_all() {
                seen_catch_all = true;
            } else {
                prop_assert!(!seen_catch_all, "rule {} after a catch-all", r.pattern);
            }
        }
    }
    Ok(())
}

fn running_set(control: &Control) -> Vec<bool> {
    SERVICES.iter().map(|n| control.is_running(n)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_operation_applies_whole_or_changes_nothing(steps in prop::collection::vec(step(), 1..40)) {
        let control = support::control();
        // Mirrors `control` one command at a time.
        let twin = support::control();
        for commands in steps {
            let before = control.config();
            let generation = control.snapshot().generation();
            let running = running_set(&control);
            let settings = control.settings();
            match control.transaction(&commands) {
                Err(e) => {
                    prop_assert_eq!(&control.config(), &before, "{:?} refused ({}) but changed the configuration", commands, e);
                    prop_assert_eq!(control.snapshot().generation(), generation);
                    prop_assert_eq!(running_set(&control), running);
                    prop_assert_eq!(control.settings(), settings);
                }
                Ok(()) => {
                    prop_assert_eq!(control.snapshot().generation(), generation + 1);
                    for c in &commands {
                        if let Err(e) = twin.execute(c.clone()) {
                            return Err(TestCaseError::fail(format!("{c:?} applied in a transaction but not alone: {e}")));
                        }
                    }
                    prop_assert_eq!(&twin.config(), &control.config(), "{:?}", commands);
                    prop_assert_eq!(running_set(&twin), running_set(&control));
                }
            }
            let config = control.config();
            check_invariants(&config)?;
            let snapshot = control.snapshot();
            prop_assert_eq!(&snapshot.config(), &config, "published snapshot differs");
            for s in snapshot.services() {
                prop_assert_eq!(s.is_running(), control.is_running(&s.config().name));
            }
        }
    }
}

/// An activator (an engine that cannot bind, say) refusing a change rolls
/// the transaction back: the previous configuration is in effect again and
/// the operation reports why.
#[test]
fn refused_activation_rolls_the_change_back() {
    let control = support::control();
    control.execute(add_service("web")).unwrap();
    control
        .activate_with(Box::new(|snapshot| {
            match snapshot.services().iter().find(|s| s.is_running()) {
                Some(s) => Err(format!(
                    "[{}] cannot listen: address in use",
                    s.config().name
                )),
                None => Ok(()),
            }
        }))
        .unwrap();
    let before = control.config();
    let err = control
        .execute(Command::Start {
            service: Some("web".into()),
        })
        .unwrap_err();
    assert!(
        matches!(&err, ControlError::Activation(m) if m.contains("address in use")),
        "{err}"
    );
    assert!(!control.is_running("web"));
    assert!(!control.snapshot().service("web").unwrap().is_running());
    assert_eq!(control.config(), before);
    // Other changes still go through.
    control
        .execute(add_server("web", "10.0.0.1:80", Some(2)))
        .unwrap();
}

/// Certificate material is loaded when a service's certificate list is
/// set or changed and on `ReloadCertificates`, never on unrelated changes;
/// a reload that meets a bad file is refused whole and the material in use
/// stays; removing the certificates turns TLS off.
#[test]
fn certificates_are_loaded_on_change_and_reload_only_and_a_bad_reload_keeps_the_old() {
    use std::sync::atomic::Ordering;
    let dir = std::env::temp_dir().join(format!("ktcpvs-core-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
    let (chain, key) = (dir.join("site.pem"), dir.join("site.key"));
    std::fs::write(&chain, pem).unwrap();
    std::fs::write(&key, pem).unwrap();
    let control = Control::new(support::registry());
    let loader = Arc::new(support::PemFiles::default());
    control.set_tls_loader(loader.clone());
    let loads = || loader.loads.load(Ordering::SeqCst);
    let files = vec![ktcpvs_core::CertificateFiles {
        chain: chain.clone(),
        key: key.clone(),
    }];
    let spec = ServiceSpec {
        certificates: Some(files.clone()),
        ..ServiceSpec::default()
    };
    control
        .execute(Command::AddService {
            name: "site".into(),
            spec,
        })
        .unwrap();
    let material = |c: &Control| Arc::clone(c.snapshot().service("site").unwrap().tls().unwrap());
    let first = material(&control);
    assert_eq!(loads(), 1);
    assert!(
        control
            .snapshot()
            .service("site")
            .unwrap()
            .config()
            .tls
            .as_ref()
            .unwrap()
            .host_check
    );

    // Unrelated changes reuse the material.
    control
        .execute(add_server("site", "10.0.0.1:80", None))
        .unwrap();
    control
        .execute(Command::EditService {
            name: "site".into(),
            spec: ServiceSpec {
                host_check: Some(false),
                ..ServiceSpec::default()
            },
        })
        .unwrap();
    assert_eq!(loads(), 1);
    assert!(Arc::ptr_eq(&first, &material(&control)));

    // A reload reads the files again.
    control.execute(Command::ReloadCertificates).unwrap();
    assert_eq!(loads(), 2);
    let second = material(&control);
    assert!(!Arc::ptr_eq(&first, &second));

    // A reload meeting a bad file is refused whole.
    std::fs::write(&key, "garbage").unwrap();
    let generation = control.snapshot().generation();
    let err = control.execute(Command::ReloadCertificates).unwrap_err();
    assert!(
        matches!(&err, ControlError::Certificate { service, error } if service == "site" && error.file == key),
        "{err}"
    );
    assert_eq!(control.snapshot().generation(), generation);
    assert!(Arc::ptr_eq(&second, &material(&control)));

    // An empty list turns TLS off.
    control
        .execute(Command::EditService {
            name: "site".into(),
            spec: ServiceSpec {
                certificates: Some(Vec::new()),
                ..ServiceSpec::default()
            },
        })
        .unwrap();
    let snapshot = control.snapshot();
    let site = snapshot.service("site").unwrap();
    assert!(site.tls().is_none() && site.config().tls.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn discovered_servers_follow_their_name_and_nothing_else() {
    use ktcpvs_core::model::{Discovery, DiscoveryKind};
    let control = support::control();
    control
        .execute(Command::AddService {
            name: "web".into(),
            spec: ServiceSpec {
                discover: Some(vec![Discovery {
                    kind: DiscoveryKind::Address { port: 80 },
                    name: "web.test".into(),
                    weight: 3,
                }]),
                ..Default::default()
            },
        })
        .unwrap();
    control
        .execute(add_server("web", "10.0.0.1:80", None))
        .unwrap();
    let sync = |addrs: &[&str]| Command::SyncDiscovered {
        service: "web".into(),
        name: "web.test".into(),
        addrs: addrs.iter().map(|a| addr(a)).collect(),
    };
    let servers = |control: &Control| -> Vec<(SocketAddr, u32, Option<String>)> {
        control.config().services[0]
            .servers
            .iter()
            .map(|s| (s.addr, s.weight, s.discovered.clone()))
            .collect()
    };
    let found = Some("web.test".to_string());
    // A configured server at a found address stays configured.
    control
        .execute(sync(&["10.0.0.1:80", "10.0.0.2:80"]))
        .unwrap();
    assert_eq!(
        servers(&control),
        vec![
            (addr("10.0.0.1:80"), 1, None),
            (addr("10.0.0.2:80"), 3, found.clone())
        ]
    );
    control
        .execute(add_rule("web", "/a", None, "10.0.0.2:80"))
        .unwrap();
    control.execute(sync(&["10.0.0.3:80"])).unwrap();
    // 10.0.0.2 is named by a rule: it stays; 10.0.0.1 is not the name's.
    assert_eq!(
        servers(&control),
        vec![
            (addr("10.0.0.1:80"), 1, None),
            (addr("10.0.0.2:80"), 3, found.clone()),
            (addr("10.0.0.3:80"), 3, found.clone()),
        ]
    );
    // A name the service does not discover is refused.
    let other = Command::SyncDiscovered {
        service: "web".into(),
        name: "other.test".into(),
        addrs: vec![addr("10.0.0.9:80")],
    };
    assert!(control.execute(other).is_err());
    // Dropping the name from the service drops its servers (not the
    // rule's).
    control
        .execute(Command::EditService {
            name: "web".into(),
            spec: ServiceSpec {
                discover: Some(Vec::new()),
                ..Default::default()
            },
        })
        .unwrap();
    assert_eq!(
        servers(&control),
        vec![
            (addr("10.0.0.1:80"), 1, None),
            (addr("10.0.0.2:80"), 3, found)
        ]
    );
}

//! The configuration language end to end: the original's two example
//! configurations load and mean what they say, every accepted spelling
//! (no blanks, any case, comments, `;`) gives the same result, and every
//! malformed file is refused with its line, column and a clear message
//! while the running configuration stays exactly as it was.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ktcpvs_core::config::parse;
use ktcpvs_core::model::{Timeouts, DEFAULT_LISTEN_PORT, DEFAULT_SCHEDULER};
use ktcpvs_core::{
    Command, Config, ConfigProblem, ControlError, Endpoint, RuleConfig, ServerConfig,
};

/// The first example of the original (`EXAMPLES`, `config`), verbatim.
const EXAMPLE_WEB: &str = r#"Virtual web {
    listen = 0.0.0.0:webcache
    scheduler = hhttp
    startservers = 8
    maxclients = 256
    minspareservers = 6
    maxspareservers = 18
    server = 192.168.0.12:www 1
    rule = pattern "/users/([^/]+)/.*" match 1 use server 192.168.0.12:www
}
"#;

/// The second example of the original, written out in full.
const EXAMPLE_WEB1: &str = r#"# cookie persistence, everything to one local server
Virtual web1 {
    listen = 0.0.0.0:webcache
    scheduler = chttp
    startservers = 8
    maxclients = 256
    minspareservers = 6
    maxspareservers = 18
    redirect = localhost:80
    server = localhost:www 100
    rule = pattern ".*" use server localhost:www
}
"#;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn conf_path() -> PathBuf {
    PathBuf::from("/etc/ktcpvs.conf")
}

#[test]
fn first_example_loads_field_by_field() {
    let control = support::control();
    control
        .load_config(EXAMPLE_WEB, Some(&conf_path()))
        .unwrap();
    let config = control.config();
    assert_eq!(config.services.len(), 1);
    let web = config.service("web").unwrap();
    let c = &web.config;
    assert_eq!(c.name, "web");
    assert_eq!(c.listen, addr("0.0.0.0:8080"));
    assert_eq!(c.scheduler, "hhttp");
    assert_eq!(c.startservers, 8);
    assert_eq!(c.maxclients, 256);
    assert_eq!(c.minspareservers, 6);
    assert_eq!(c.maxspareservers, 18);
    assert_eq!(c.redirect, None);
    assert_eq!(c.timeouts, Timeouts::default());
    assert!(!c.forward_for);
    assert_eq!(c.upgrades, ["websocket"], "WebSocket upgrades by default");
    assert!(c.options.is_empty());
    assert_eq!(
        web.servers,
        vec![ServerConfig {
            addr: addr("192.168.0.12:80"),
            weight: 1,
            tls: None,
            maxconn: 0,
            send_proxy: None,
            discovered: None,
        }]
    );
    assert_eq!(
        web.rules,
        vec![RuleConfig {
            pattern: "/users/([^/]+)/.*".to_string(),
            match_group: Some(1),
            servers: vec![addr("192.168.0.12:80")],
            conditions: Default::default(),
            action: Default::default(),
            edits: Vec::new(),
        }]
    );
    // Loading does not start services, as in the original.
    assert!(!control.is_running("web"));
}

#[test]
fn second_example_loads_field_by_field() {
    let control = support::control();
    control.load_config(EXAMPLE_WEB1, None).unwrap();
    let config = control.config();
    let web1 = config.service("web1").unwrap();
    let c = &web1.config;
    assert_eq!(c.listen, addr("0.0.0.0:8080"));
    assert_eq!(c.scheduler, "chttp");
    assert_eq!(
        (
            c.startservers,
            c.maxclients,
            c.minspareservers,
            c.maxspareservers
        ),
        (8, 256, 6, 18)
    );
    let localhost = Endpoint::from_addr(addr("127.0.0.1:80"));
    let local = "localhost:80"
        .parse::<Endpoint>()
        .unwrap()
        .resolve(0)
        .unwrap();
    assert!(local.ip().is_loopback(), "{local} {localhost:?}");
    assert_eq!(c.redirect, Some(local));
    assert_eq!(
        web1.servers,
        vec![ServerConfig {
            addr: local,
            weight: 100,
            tls: None,
            maxconn: 0,
            send_proxy: None,
            discovered: None,
        }]
    );
    assert_eq!(web1.rules.len(), 1);
    assert_eq!(web1.rules[0].pattern, ".*");
    assert_eq!(web1.rules[0].match_group, None);
    assert_eq!(web1.rules[0].servers, vec![local]);
    assert!(web1.rules[0].is_catch_all());
}

#[test]
fn both_examples_load_together_and_in_the_original_one_line_form() {
    let control = support::control();
    let both = format!("{EXAMPLE_WEB}\n{EXAMPLE_WEB1}");
    control.load_config(&both, None).unwrap();
    let together = control.config();
    assert_eq!(
        together
            .services
            .iter()
            .map(|s| s.config.name.as_str())
            .collect::<Vec<_>>(),
        vec!["web", "web1"]
    );

    // The inventory's abbreviated spelling: several statements per line.
    let one_line = "Virtual web1 { listen = 0.0.0.0:webcache  scheduler = chttp  startservers = 8 \
        maxclients = 256 minspareservers = 6 maxspareservers = 18 redirect = localhost:80\n    \
        server = localhost:www 100   rule = pattern \".*\" use server localhost:www }";
    let other = support::control();
    other.load_config(one_line, None).unwrap();
    assert_eq!(other.config().service("web1"), together.service("web1"));
}

#[test]
fn punctuation_case_comments_and_semicolons_do_not_change_meaning() {
    let spaced = r#"
Virtual web {
    listen = 10.0.0.1:80
    scheduler = wlc
    server = 10.1.0.1:81 3
    server = 10.1.0.2:81
    rule = pattern "^/images/" use server 10.1.0.1:81
}
"#;
    let squeezed = r#"Virtual web{listen=10.0.0.1:80;scheduler=wlc;server=10.1.0.1:81 3;server=10.1.0.2:81;rule=pattern"^/images/"use server 10.1.0.1:81;}"#;
    let shouting = r#"VIRTUAL web {   # the same, louder
    LISTEN = 10.0.0.1:80#no space before the comment
    Scheduler = wlc ;
    SERVER = 10.1.0.1:81 3 # weight three
    Server = 10.1.0.2:81
    RULE = PATTERN "^/images/" USE SERVER 10.1.0.1:81
}"#;
    let load = |text: &str| {
        let control = support::control();
        control.load_config(text, None).unwrap();
        control.config()
    };
    let expected = load(spaced);
    assert_eq!(expected.services[0].servers[0].weight, 3);
    assert_eq!(expected.services[0].servers[1].weight, 1, "default weight");
    assert_eq!(load(squeezed), expected);
    assert_eq!(load(shouting), expected);
}

#[test]
fn omitted_fields_take_the_documented_defaults() {
    let control = support::control();
    control
        .load_config(
            "Virtual bare {\n}\nVirtual named { listen = 10.0.0.1 }",
            None,
        )
        .unwrap();
    let config = control.config();
    let bare = &config.service("bare").unwrap().config;
    assert_eq!(
        bare.listen,
        SocketAddr::from(([0, 0, 0, 0], DEFAULT_LISTEN_PORT))
    );
    assert_eq!(bare.scheduler, DEFAULT_SCHEDULER);
    assert_eq!(
        (
            bare.startservers,
            bare.maxclients,
            bare.minspareservers,
            bare.maxspareservers
        ),
        (8, 256, 6, 18)
    );
    assert_eq!(bare.redirect, None);
    assert_eq!(bare.timeouts, Timeouts::default());
    // A listen address without a port keeps the default port.
    assert_eq!(
        config.service("named").unwrap().config.listen,
        addr("10.0.0.1:8080")
    );
}

#[test]
fn extensions_ipv6_and_service_name_ports_load() {
    let text = r#"Virtual v6 {
    listen = [::1]:http-alt
    scheduler = chttp
    redirect = [::1]:81
    connect_timeout = 3
    read_timeout = 100
    keepalive_timeout = 15
    header_timeout = 7
    response_timeout = 30
    forwardfor = on
    upgrade = "WebSocket, my-proto"
    option cookie_name = "SID"
    option key = "c\\d"
    server = [::1]:8081 0
    server = 127.0.0.1:www 65535
    rule = pattern "^/a/(\d+)" match 1 use server [::1]:8081
    rule = pattern "^/a/(\d+)" match 1 use server 127.0.0.1:80
    rule = pattern "^/b\.html$" use server [::1]:8081
}"#;
    let located = parse(text, None).unwrap();
    // service, 2 servers, 3 rules; each located at its statement.
    assert_eq!(located.len(), 6);
    assert_eq!(
        located
            .iter()
            .map(|l| (l.location.line, l.location.column))
            .collect::<Vec<_>>(),
        vec![(1, 1), (14, 5), (15, 5), (16, 5), (17, 5), (18, 5)]
    );
    let Command::AddService { spec, .. } = &located[0].value else {
        panic!("first command is not AddService: {:?}", located[0].value);
    };
    assert_eq!(
        spec.options,
        vec![
            ("cookie_name".to_string(), Some("SID".to_string())),
            ("key".to_string(), Some("c\\d".to_string())),
        ]
    );

    let control = support::control();
    control.load_config(text, None).unwrap();
    let config = control.config();
    let v6 = config.service("v6").unwrap();
    let c = &v6.config;
    assert_eq!(c.listen, addr("[::1]:8080"));
    assert_eq!(c.redirect, Some(addr("[::1]:81")));
    assert_eq!(
        c.timeouts,
        Timeouts {
            connect: Some(3),
            read: Some(100),
            keepalive: Some(15),
            header: Some(7),
            response: Some(30),
        }
    );
    assert!(c.forward_for);
    assert_eq!(c.upgrades, ["websocket", "my-proto"]);
    assert_eq!(
        c.options.get("cookie_name").map(String::as_str),
        Some("SID")
    );
    assert_eq!(c.options.get("key").map(String::as_str), Some("c\\d"));
    assert_eq!(v6.servers[0].weight, 0, "weight 0 = quiesced is accepted");
    assert_eq!(v6.servers[1].addr, addr("127.0.0.1:80"));
    assert_eq!(v6.servers[1].weight, 65_535);
    assert_eq!(v6.rules.len(), 2, "same pattern and match merge");
    assert_eq!(
        v6.rules[0].pattern, r"^/a/(\d+)",
        "unknown escapes are kept"
    );
    assert_eq!(
        v6.rules[0].servers,
        vec![addr("[::1]:8081"), addr("127.0.0.1:80")]
    );
    assert_eq!(v6.rules[1].pattern, r"^/b\.html$");
}

#[test]
fn rules_may_precede_the_servers_they_use() {
    let control = support::control();
    control
        .load_config(
            "Virtual web {\n rule = pattern \"/x\" use server 10.0.0.9:80\n server = 10.0.0.9:80\n}",
            None,
        )
        .unwrap();
    assert_eq!(
        control.config().services[0].rules[0].servers,
        vec![addr("10.0.0.9:80")]
    );
}

#[test]
fn an_empty_file_or_one_of_comments_is_an_empty_configuration() {
    let control = support::control();
    control.load_config("Virtual gone {\n}", None).unwrap();
    control
        .load_config("# nothing here\n\n   # at all\n", None)
        .unwrap();
    assert_eq!(control.config(), Config::default());
    assert!(parse("", None).unwrap().is_empty());
}

/// One malformed file: its text, where the error is, and words the message
/// must contain.
struct Bad {
    name: &'static str,
    text: &'static str,
    line: usize,
    column: usize,
    message: &'static str,
}

#[rustfmt::skip]
const BAD: &[Bad] = &[
    Bad { name: "discover without a port", text: "Virtual web {\n  discover = dns web.test\n}", line: 2, column: 18, message: "expected NAME:PORT but found 'web.test'" },
    Bad { name: "discover of another kind", text: "Virtual web {\n  discover = mdns web.test:80\n}", line: 2, column: 14, message: "expected dns or srv but found 'mdns'" },
    Bad { name: "discover of a bad name", text: "Virtual web {\n  discover = srv web..test\n}", line: 2, column: 18, message: "invalid DNS name 'web..test'" },
    Bad { name: "discover twice", text: "Virtual web {\n  discover = srv a.test\n  discover = dns a.test:80\n}", line: 3, column: 18, message: "'a.test' is discovered twice" },
    Bad { name: "untrusted networks malformed", text: "Virtual web {\n  proxy_protocol = 10.0.0.0/33\n}", line: 2, column: 20, message: "invalid networks '10.0.0.0/33'" },
    Bad { name: "send_proxy of another version", text: "Virtual web {\n  server = 10.0.0.1:80 1 send_proxy v3\n}", line: 2, column: 37, message: "send_proxy takes v1 or v2" },
    Bad { name: "unknown keyword", text: "Virtual web {\n  bogus = 1\n}", line: 2, column: 3, message: "invalid command bogus" },
    Bad { name: "listing header", text: "TCP Virtual Server version 0.0.18\nVirtual web {\n}", line: 1, column: 1, message: "invalid command TCP" },
    Bad { name: "stray close", text: "}\n", line: 1, column: 1, message: "invalid command '}'" },
    Bad { name: "missing close at end", text: "Virtual web {\n  listen = 1.2.3.4:80\n", line: 3, column: 1, message: "missing '}': service 'web' opened at line 1" },
    Bad { name: "missing close before next block", text: "Virtual a {\n  listen = 1.2.3.4:80\nVirtual b {\n}", line: 3, column: 1, message: "missing '}': service 'a'" },
    Bad { name: "missing open", text: "Virtual web\n  listen = 1.2.3.4:80\n}", line: 2, column: 3, message: "expected '{' after 'Virtual web' but found 'listen'" },
    Bad { name: "bad service name", text: "Virtual we/b {\n}", line: 1, column: 9, message: "invalid service name 'we/b'" },
    Bad { name: "missing equals", text: "Virtual web {\n  scheduler http\n}", line: 2, column: 13, message: "parsing scheduler error: expected '=' after 'scheduler' but found 'http'" },
    Bad { name: "file ends mid statement", text: "Virtual web {\n  listen =", line: 2, column: 11, message: "parsing listen address error: expected an address HOST[:PORT] but the file ended" },
    Bad { name: "duplicate keyword", text: "Virtual web {\n listen = 1.2.3.4:80\n listen = 1.2.3.4:81\n}", line: 3, column: 2, message: "duplicate keyword 'listen' in service 'web' (first given at line 2)" },
    Bad { name: "duplicate option", text: "Virtual web {\n  option cookie = \"a\"\n  option cookie = \"b\"\n}", line: 3, column: 10, message: "duplicate option 'cookie'" },
    Bad { name: "not a number", text: "Virtual web {\n  startservers = eight\n}", line: 2, column: 18, message: "parsing startservers error: expected a number but found 'eight'" },
    Bad { name: "zero maxclients", text: "Virtual web {\n  maxclients = 0\n}", line: 2, column: 16, message: "parsing maxclients error: 0 is out of range: must be 1..=1000000" },
    Bad { name: "huge number", text: "Virtual web {\n  minspareservers = 99999999999\n}", line: 2, column: 21, message: "out of range" },
    Bad { name: "timeout too long", text: "Virtual web {\n  read_timeout = 86401\n}", line: 2, column: 18, message: "parsing read_timeout error: 86401 is out of range: must be 0..=86400" },
    Bad { name: "weight too large", text: "Virtual web {\n  server = 10.0.0.1:80 65536\n}", line: 2, column: 24, message: "parsing server error: 65536 is out of range: must be 0..=65535" },
    Bad { name: "negative weight", text: "Virtual web {\n  server = 10.0.0.1:80 -1\n}", line: 2, column: 24, message: "parsing server error: expected a weight but found '-1'" },
    Bad { name: "bad port", text: "Virtual web {\n  listen = 1.2.3.4:nosuchport\n}", line: 2, column: 12, message: "parsing listen address error: illegal port 'nosuchport'" },
    Bad { name: "port too large", text: "Virtual web {\n  server = 10.0.0.1:65536\n}", line: 2, column: 12, message: "parsing server error: illegal port '65536'" },
    Bad { name: "bad redirect", text: "Virtual web {\n  redirect = [::1\n}", line: 2, column: 14, message: "parsing redirect address error: illegal address '[::1'" },
    Bad { name: "unterminated string", text: "Virtual web {\n  server = 10.0.0.1:80\n  rule = pattern \"/a use server 10.0.0.1:80\n}", line: 3, column: 18, message: "unterminated string" },
    Bad { name: "rule without pattern keyword", text: "Virtual web {\n  rule = \"/a\" use server 10.0.0.1:80\n}", line: 2, column: 10, message: "parsing rule error: expected the keyword 'pattern' but found string \"/a\"" },
    Bad { name: "rule without use", text: "Virtual web {\n  server = 10.0.0.1:80\n  rule = pattern \"/a\" server 10.0.0.1:80\n}", line: 3, column: 23, message: "parsing rule error: expected a condition, 'use', 'redirect' or 'respond' but found 'server'" },
    Bad { name: "match out of range", text: "Virtual web {\n  server = 10.0.0.1:80\n  rule = pattern \"(a)\" match 11 use server 10.0.0.1:80\n}", line: 3, column: 30, message: "parsing rule error: 11 is out of range: must be 0..=10" },
    Bad { name: "upgrade to h2c", text: "Virtual web {\n  upgrade = websocket,h2c\n}", line: 2, column: 13, message: "parsing upgrade error: invalid upgrade protocol 'h2c': upgrades to HTTP/2 are never forwarded: such requests are served as HTTP/1.1" },
    Bad { name: "upgrade with a version", text: "Virtual web {\n  upgrade = \"websocket/13\"\n}", line: 2, column: 13, message: "parsing upgrade error: invalid upgrade protocol 'websocket/13': a protocol name is an HTTP token, without a '/version'" },
    // Found by the config fuzz target: `,none` named a protocol "none",
    // which printed as `upgrade = none` and loaded back as no upgrade.
    Bad { name: "upgrade naming a protocol none", text: "Virtual web {\n  upgrade = ,none\n}", line: 2, column: 13, message: "parsing upgrade error: invalid upgrade protocol 'none': 'none' means no upgrade and is not a protocol name" },
    Bad { name: "upgrade listed twice", text: "Virtual web {\n  upgrade = a,A\n}", line: 2, column: 13, message: "parsing upgrade error: invalid upgrade list 'a,A': 'a' is listed twice" },
    Bad { name: "forwardfor not on or off", text: "Virtual web {\n  forwardfor = maybe\n}", line: 2, column: 16, message: "parsing forwardfor error: expected 'on' or 'off' but found 'maybe'" },
    Bad { name: "unquoted option value", text: "Virtual web {\n  option cookie = a\n}", line: 2, column: 19, message: "parsing option error: expected a quoted value but found 'a'" },
    Bad { name: "quote in option value", text: "Virtual web {\n  option cookie = \"a\\\"b\"\n}", line: 2, column: 19, message: "parsing option error: an option value must not contain quotes or line breaks" },
    Bad { name: "bad option name", text: "Virtual web {\n  option a.b = \"x\"\n}", line: 2, column: 10, message: "option name 'a.b' must be ASCII letters" },
    Bad { name: "certificate without key", text: "Virtual web {\n  certificate = \"a.pem\"\n}", line: 3, column: 1, message: "parsing certificate error: expected the keyword 'key' but found '}'" },
    Bad { name: "certificate with an empty name", text: "Virtual web {\n  certificate = \"\" key \"k.pem\"\n}", line: 2, column: 17, message: "parsing certificate error: expected the certificate chain's file name but found string \"\"" },
    Bad { name: "certificate key missing", text: "Virtual web {\n  certificate = a.pem key\n}", line: 3, column: 1, message: "parsing certificate error: expected the private key's file name but found '}'" },
    Bad { name: "server tls name missing", text: "Virtual web {\n  server = 10.0.0.1:443 tls name\n}", line: 3, column: 1, message: "parsing server error: expected the server's TLS name but found '}'" },
    Bad { name: "server tls bad name", text: "Virtual web {\n  server = 10.0.0.1:443 tls name a_b\n}", line: 2, column: 34, message: "parsing server error: invalid server TLS name 'a_b'" },
    Bad { name: "server tls ca twice", text: "Virtual web {\n  server = 10.0.0.1:443 tls ca a.pem ca b.pem\n}", line: 2, column: 38, message: "parsing server error: 'ca' given twice" },
    Bad { name: "server client certificate without key", text: "Virtual web {\n  server = 10.0.0.1:443 tls client_certificate c.pem\n}", line: 3, column: 1, message: "parsing server error: expected the keyword 'key' but found '}'" },
    Bad { name: "sni_host_check not on or off", text: "Virtual web {\n  sni_host_check = yes\n}", line: 2, column: 20, message: "parsing sni_host_check error: expected 'on' or 'off' but found 'yes'" },
];

#[test]
fn malformed_files_are_refused_with_line_column_and_message() {
    let file = Path::new("conf/bad.conf");
    for bad in BAD {
        let err = match parse(bad.text, Some(file)) {
            Ok(commands) => panic!("{}: parsed as {commands:?}", bad.name),
            Err(e) => e,
        };
        assert_eq!(
            (err.location.line, err.location.column),
            (bad.line, bad.column),
            "{}: wrong location for {:?}",
            bad.name,
            err.message
        );
        assert!(
            err.message.contains(bad.message),
            "{}: message {:?} lacks {:?}",
            bad.name,
            err.message,
            bad.message
        );
        assert_eq!(err.location.file.as_deref(), Some(file), "{}", bad.name);
        let shown = err.to_string();
        assert!(
            shown.contains(&format!("conf/bad.conf:{}:{}", bad.line, bad.column)),
            "{}: {shown}",
            bad.name
        );
    }
}

/// Files that parse but cannot be applied: the error still names the
/// statement.
#[rustfmt::skip]
const BAD_SEMANTICS: &[Bad] = &[
    Bad { name: "rule uses an undeclared server", text: "Virtual web {\n  server = 10.0.0.1:80\n  rule = pattern \"/a\" use server 10.0.0.2:80\n}", line: 3, column: 3, message: "No such destination: 10.0.0.2:80 in service 'web'" },
    Bad { name: "bad regex", text: "Virtual web {\n  server = 10.0.0.1:80\n  rule = pattern \"(/a\" use server 10.0.0.1:80\n}", line: 3, column: 3, message: "pattern compiling failed: \"(/a\"" },
    Bad { name: "match beyond the groups", text: "Virtual web {\n  server = 10.0.0.1:80\n  rule = pattern \"/a\" match 1 use server 10.0.0.1:80\n}", line: 3, column: 3, message: "has only 0 capture group(s)" },
    Bad { name: "duplicate server", text: "Virtual web {\n  server = 10.0.0.1:80\n  server = 10.0.0.1:http 2\n}", line: 3, column: 3, message: "Destination already exists: 10.0.0.1:80 in service 'web'" },
    Bad { name: "duplicate service", text: "Virtual web {\n}\n\nVirtual web {\n}", line: 4, column: 1, message: "Service already exists: 'web'" },
    Bad { name: "unresolvable host", text: "Virtual web {\n  server = no-such-host.invalid:80\n}", line: 2, column: 3, message: "cannot resolve host 'no-such-host.invalid'" },
    Bad { name: "host check without certificates", text: "Virtual web {\n  sni_host_check = off\n}", line: 1, column: 1, message: "invalid sni_host_check 'off': only a service with certificates has a TLS server name to check" },
    Bad { name: "same rule twice", text: "Virtual web {\n  server = 10.0.0.1:80\n  rule = pattern \"/a\" use server 10.0.0.1:80\n  rule = pattern \"/a\" use server 10.0.0.1:80\n}", line: 4, column: 3, message: "Rule already exists" },
];

/// A configuration to fall back on, started, with live state.
const GOOD: &str = "Virtual keep {\n  scheduler = wlc\n  server = 10.9.9.9:80 5\n}";

#[test]
fn semantic_errors_name_the_statement_and_change_nothing() {
    let control = support::control();
    let file = Path::new("ktcpvs.conf");
    control.load_config(GOOD, Some(file)).unwrap();
    control
        .execute(Command::Start {
            service: Some("keep".into()),
        })
        .unwrap();
    let before = control.config();
    let generation = control.snapshot().generation();
    for bad in BAD_SEMANTICS {
        let err = match control.load_config(bad.text, Some(file)) {
            Ok(()) => panic!("{}: loaded", bad.name),
            Err(ControlError::Config(e)) => e,
            Err(e) => panic!("{}: not located: {e}", bad.name),
        };
        assert_eq!(
            (err.location.line, err.location.column),
            (bad.line, bad.column),
            "{}: {}",
            bad.name,
            err.message
        );
        assert!(
            err.message.contains(bad.message),
            "{}: message {:?} lacks {:?}",
            bad.name,
            err.message,
            bad.message
        );
        assert_eq!(err.location.file.as_deref(), Some(file));
        assert_eq!(
            control.config(),
            before,
            "{}: configuration changed",
            bad.name
        );
        assert_eq!(control.snapshot().generation(), generation, "{}", bad.name);
        assert!(control.is_running("keep"), "{}", bad.name);
    }
}

#[test]
fn a_syntax_error_anywhere_applies_nothing() {
    let control = support::control();
    control.load_config(GOOD, None).unwrap();
    let before = control.config();
    let generation = control.snapshot().generation();
    for bad in BAD {
        assert!(control.load_config(bad.text, None).is_err(), "{}", bad.name);
        assert_eq!(control.config(), before, "{}", bad.name);
        assert_eq!(control.snapshot().generation(), generation, "{}", bad.name);
    }
    // A good block before the bad one is not applied either.
    let text = format!("{EXAMPLE_WEB}\nVirtual broken {{\n  listen = x:y\n}}");
    let err = control.load_config(&text, None).unwrap_err();
    let ControlError::Config(err) = err else {
        panic!("not a config error: {err}");
    };
    assert_eq!((err.location.line, err.location.column), (13, 12));
    assert_eq!(control.config(), before);
}

#[test]
fn a_missing_file_is_an_opening_error() {
    let control = support::control();
    let dir = std::env::temp_dir().join(format!("ktcpvs-core-missing-{}", std::process::id()));
    let err = control.load_file(dir.join("nope.conf")).unwrap_err();
    assert!(err.to_string().contains("opening error"), "{err}");
}

#[test]
fn a_file_on_disk_loads_and_names_itself_in_errors() {
    let dir = std::env::temp_dir().join(format!("ktcpvs-core-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.conf");
    let bad = dir.join("bad.conf");
    std::fs::write(&good, EXAMPLE_WEB).unwrap();
    std::fs::write(&bad, "Virtual web {\n  maxclients = lots\n}\n").unwrap();
    let control = support::control();
    let loaded = control.load_file(&good);
    let refused = control.load_file(&bad);
    std::fs::remove_dir_all(&dir).unwrap();
    loaded.unwrap();
    let Err(ControlError::Config(err)) = refused else {
        panic!("bad file not refused as config error: {refused:?}");
    };
    assert_eq!(err.location.file.as_deref(), Some(bad.as_path()));
    assert_eq!((err.location.line, err.location.column), (2, 16));
    assert!(control.config().service("web").is_some());
}

/// `Control::load_config` reports a scheduler that is not registered at the
/// `Virtual` statement of the service that names it.
#[test]
fn unknown_scheduler_is_located_at_its_service() {
    let control = support::control();
    let text = "Virtual a {\n  scheduler = nosuch\n}\nVirtual b {\n  server = 10.0.0.1:80\n}\n";
    let Err(ControlError::Config(err)) = control.load_config(text, None) else {
        panic!("not refused as a located error");
    };
    assert!(
        err.message.contains("Scheduler not found: 'nosuch'"),
        "{}",
        err.message
    );
    assert_eq!(
        (err.location.line, err.location.column),
        (1, 1),
        "{}",
        err.message
    );
}

/// A scheduler refusing a service is reported at that service's block.
#[test]
fn scheduler_refusal_is_located_at_its_service() {
    let control = support::control();
    let text = "Virtual a {\n  scheduler = strict\n  server = 10.0.0.1:80\n  rule = pattern \"/x\" use server 10.0.0.1:80\n}\nVirtual b {\n}\n";
    let Err(ControlError::Config(err)) = control.load_config(text, None) else {
        panic!("not refused as a located error");
    };
    assert!(err.message.contains("has no 'match N'"), "{}", err.message);
    assert_eq!(
        (err.location.line, err.location.column),
        (1, 1),
        "{}",
        err.message
    );
}

/// A text that breaks the grammar says "Syntax error" (the original's
/// words); a well-formed command the model refuses says "Error"; a file
/// that cannot be read gives its message alone, without a line and column
/// it does not have.
#[test]
fn config_errors_say_which_kind_of_problem_they_are() {
    let control = support::control();
    let file = Path::new("k.conf");
    let Err(ControlError::Config(syntax)) =
        control.load_config("Virtual web {\n  maxclients = lots\n}\n", Some(file))
    else {
        panic!("a syntax error was not refused as a config error");
    };
    assert_eq!(syntax.problem, ConfigProblem::Syntax);
    assert!(
        syntax
            .to_string()
            .starts_with("Syntax error in the config file at k.conf:2:16: "),
        "{syntax}"
    );
    let Err(ControlError::Config(refused)) =
        control.load_config("Virtual web {\n}\n\nVirtual web {\n}\n", Some(file))
    else {
        panic!("a duplicate service was not refused as a config error");
    };
    assert_eq!(refused.problem, ConfigProblem::Refused);
    assert_eq!(
        refused.to_string(),
        format!(
            "Error in the config file at k.conf:4:1: {}",
            refused.message
        )
    );
    let dir = std::env::temp_dir().join(format!("ktcpvs-core-unread-{}", std::process::id()));
    let Err(ControlError::Config(unread)) = control.load_file(dir.join("nope.conf")) else {
        panic!("a missing file was not refused as a config error");
    };
    assert_eq!(unread.problem, ConfigProblem::Unreadable);
    assert_eq!(unread.to_string(), unread.message);
    assert!(unread.message.contains("opening error"), "{unread}");
}

/// A directory of its own for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ktcpvs-core-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PEM: &str = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";

/// `certificate` statements: relative names are the configuration file's
/// directory's, the first certificate is the default, the files are read
/// by the host's loader when the file loads, and a file the loader refuses
/// is named (file and reason) at its statement, changing nothing.
#[test]
fn certificates_load_from_the_files_directory_and_a_bad_one_changes_nothing() {
    let dir = TempDir::new("tls");
    for name in ["a.pem", "a.key", "b.pem", "b.key"] {
        std::fs::write(dir.0.join(name), PEM).unwrap();
    }
    std::fs::write(dir.0.join("empty.key"), "").unwrap();
    let conf = dir.0.join("tls.conf");
    std::fs::write(
        &conf,
        "Virtual site {\n  listen = 127.0.0.1:8443\n  certificate = a.pem key \"a.key\"\n  \
         certificate = \"b.pem\" key b.key\n  sni_host_check = off\n}\n",
    )
    .unwrap();
    let control = ktcpvs_core::Control::new(support::registry());
    let loader = std::sync::Arc::new(support::PemFiles::default());
    control.set_tls_loader(loader.clone());
    control.load_file(&conf).unwrap();
    let tls = control
        .config()
        .service("site")
        .unwrap()
        .config
        .tls
        .clone()
        .unwrap();
    assert_eq!(tls.certificates.len(), 2);
    assert_eq!(tls.certificates[0].chain, dir.0.join("a.pem"));
    assert_eq!(tls.certificates[1].key, dir.0.join("b.key"));
    assert!(!tls.host_check);
    assert!(control.snapshot().service("site").unwrap().tls().is_some());
    assert_eq!(loader.loads.load(std::sync::atomic::Ordering::SeqCst), 1);

    // An empty key file: refused at its statement, naming it; nothing changes.
    let before = control.config();
    let generation = control.snapshot().generation();
    std::fs::write(
        &conf,
        "Virtual site {\n  listen = 127.0.0.1:8443\n  certificate = a.pem key empty.key\n}\n",
    )
    .unwrap();
    let Err(ControlError::Config(err)) = control.load_file(&conf) else {
        panic!("an empty key file was not refused");
    };
    assert_eq!((err.location.line, err.location.column), (1, 1), "{err}");
    let named = dir.0.join("empty.key").display().to_string();
    assert!(
        err.message.contains(&named) && err.message.contains("no PEM block"),
        "{err}"
    );
    assert_eq!(control.config(), before);
    assert_eq!(control.snapshot().generation(), generation);
}

/// Without a TLS loader a service with certificates is refused: the host
/// cannot serve it.
#[test]
fn certificates_without_tls_support_are_refused() {
    let control = ktcpvs_core::Control::new(support::registry());
    let err = control
        .load_config(
            "Virtual site {\n  certificate = /a.pem key /a.key\n}\n",
            None,
        )
        .unwrap_err();
    assert!(err.to_string().contains("has no TLS support"), "{err}");
    assert!(control.config().services.is_empty());
}

/// `server = ADDR W tls …`: the server is reached over TLS with the name,
/// CA file and client certificate given (files relative to the
/// configuration file); printed back the same; `tls` alone trusts the
/// system's roots and checks the server's IP address.
#[test]
fn servers_reached_over_tls_load_and_print_back() {
    let dir = TempDir::new("servertls");
    let conf = dir.0.join("s.conf");
    std::fs::write(
        &conf,
        "Virtual web {\n  server = 10.0.0.1:443 2 tls name api.internal ca ca.pem \
         client_certificate \"c.pem\" key c.key\n  server = 10.0.0.2:443 tls\n  \
         server = 10.0.0.3:80\n}\n",
    )
    .unwrap();
    let control = support::control();
    control.load_file(&conf).unwrap();
    let config = control.config();
    let web = config.service("web").unwrap();
    let tls = web.servers[0].tls.clone().unwrap();
    assert_eq!(web.servers[0].weight, 2);
    assert_eq!(tls.name.as_deref(), Some("api.internal"));
    assert_eq!(tls.ca, Some(dir.0.join("ca.pem")));
    let client = tls.certificate.unwrap();
    assert_eq!(
        (client.chain, client.key),
        (dir.0.join("c.pem"), dir.0.join("c.key"))
    );
    assert_eq!(web.servers[1].tls, Some(ktcpvs_core::BackendTls::default()));
    assert_eq!(web.servers[2].tls, None);
    let snapshot = control.snapshot();
    let entries = snapshot.service("web").unwrap().server_entries();
    assert!(entries[0].tls().is_some() && entries[1].tls().is_some() && entries[2].tls().is_none());
    let printed = ktcpvs_core::config::print(&config, &Default::default());
    assert!(
        printed.contains(" tls name api.internal ca \""),
        "{printed}"
    );
    let again = support::control();
    again.load_config(&printed, None).unwrap();
    assert_eq!(again.config(), config);
}

#[test]
fn health_settings_and_server_limits_parse_print_and_point_at_bad_values() {
    let text = "Virtual web {\n    listen = 127.0.0.1:8080\n    check = http\n    check_path = \"/healthz\"\n    check_interval = 500ms\n    check_body = \"all good\"\n    all_down = open\n    queue = 10\n    server = 127.0.0.1:9000 2 maxconn 5\n}\n";
    let commands = ktcpvs_core::config::parse(text, None).unwrap();
    assert!(commands.iter().any(|c| matches!(
        &c.value,
        ktcpvs_core::Command::SetServerLimit { maxconn: 5, .. }
    )));
    let bad = "Virtual web {\n    check_interval = 2\n}\n";
    let e = ktcpvs_core::config::parse(bad, None).unwrap_err();
    assert_eq!(e.location.line, 2, "{e}");
    assert!(e.to_string().contains("check_interval"), "{e}");
    let dup = "Virtual web {\n    queue = 1\n    queue = 2\n}\n";
    let e = ktcpvs_core::config::parse(dup, None).unwrap_err();
    assert_eq!(e.location.line, 3, "{e}");
}

#[test]
fn the_admin_address_is_a_top_level_statement_that_prints_back() {
    let text = "admin = 127.0.0.1:9100\nVirtual web {\n    listen = 127.0.0.1:8080\n}\n";
    let control =
        ktcpvs_core::Control::new(std::sync::Arc::new(ktcpvs_core::SchedulerRegistry::new()));
    // The scheduler of "web" is not registered here: load only the admin line.
    control
        .load_config("admin = 127.0.0.1:9100\n", None)
        .unwrap();
    assert_eq!(
        control.config().admin,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    let printed = ktcpvs_core::config::print(
        &control.config(),
        &ktcpvs_core::config::PrintOptions::default(),
    );
    assert_eq!(printed, "admin = 127.0.0.1:9100\n");
    // A load without it clears it.
    control.load_config("", None).unwrap();
    assert_eq!(control.config().admin, None);
    assert!(ktcpvs_core::config::parse(text, None).is_ok());
    let dup = "admin = 127.0.0.1:1\nadmin = 127.0.0.1:2\n";
    let e = ktcpvs_core::config::parse(dup, None).unwrap_err();
    assert_eq!(e.location.line, 2, "{e}");
    let bad = "admin = nowhere:port\n";
    assert!(ktcpvs_core::config::parse(bad, None).is_err());
}

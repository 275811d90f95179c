//! Carrying out one control-socket [`Request`] against a [`Control`]: the
//! translation to core [`Command`]s and the text of each reply body.
//!
//! This is the only place where the socket protocol meets the control API,
//! so the socket server stays pure I/O and the protocol module stays pure
//! text.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ktcpvs_core::config::{ConfigChange, PrintOptions};
use ktcpvs_core::control::{Command, Control, ServiceSpec};
use ktcpvs_core::{ControlError, RuleSpec};

use super::handover::{HandoverGate, HandoverSource};
use super::protocol::{ErrorKind, HandoverBody, Reply, Request, ServiceArgs, SysctlRequest, VERBS};

/// Tells which address a started service actually listens on (the engine
/// knows it; with `listen=…:0` it differs from the configured one).
pub type BoundAddr = Arc<dyn Fn(&str) -> Option<SocketAddr> + Send + Sync>;

/// Carries out requests against one [`Control`].
#[derive(Clone)]
pub struct Dispatcher {
    control: Control,
    bound_addr: Option<BoundAddr>,
    handover: Option<Arc<HandoverGate>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("control", &self.control)
            .field("bound_addr", &self.bound_addr.is_some())
            .field("handover", &self.handover.is_some())
            .finish()
    }
}

fn refused(e: ControlError) -> Reply {
    Reply::error(ErrorKind::of_control_error(&e), e)
}

/// The command of a rule given as a statement (`add-rule SERVICE
/// rule="…"`, `delete-rule SERVICE rule="…"`), parsed as a configuration
/// file's `rule =` line; `None` for any other request.
fn statement_command(request: &Request) -> Option<Result<Command, ControlError>> {
    let (service, statement, delete) = match request {
        Request::AddRuleStatement { service, statement } => (service, statement, false),
        Request::DeleteRuleStatement { service, statement } => (service, statement, true),
        _ => return None,
    };
    let parsed = ktcpvs_core::config::parse_rule(service, statement).map_err(ControlError::Config);
    Some(parsed.map(|command| {
        if delete {
            deletion_of(command)
        } else {
            command
        }
    }))
}

/// The command that undoes a rule's addition.
fn deletion_of(add: Command) -> Command {
    match add {
        Command::AddRule {
            service,
            pattern,
            match_group,
            server,
        } => Command::DeleteRuleWith {
            service,
            rule: RuleSpec {
                pattern,
                match_group,
                ..RuleSpec::default()
            },
            server: Some(server),
        },
        Command::AddRuleWith {
            service,
            rule,
            server,
        } => Command::DeleteRuleWith {
            service,
            rule,
            server,
        },
        other => other,
    }
}

fn done(result: Result<(), ControlError>) -> Reply {
    match result {
        Ok(()) => Reply::Ok(Vec::new()),
        Err(e) => refused(e),
    }
}

impl Dispatcher {
    /// A dispatcher for `control`. `bound_addr`, when given, lets `stats`
    /// report the address each started service really listens on.
    pub fn new(control: Control, bound_addr: Option<BoundAddr>) -> Dispatcher {
        Dispatcher {
            control,
            bound_addr,
            handover: None,
        }
    }

    /// The same dispatcher, able to hand its listening sockets over to a
    /// new daemon (`handover`, served by the control socket server only):
    /// `source` says which sockets and learns when the new daemon took
    /// over. Without it, `handover` is refused (`ERR unavailable`).
    pub fn with_handover(mut self, source: Arc<dyn HandoverSource>) -> Dispatcher {
        self.handover = Some(Arc::new(HandoverGate::new(source)));
        self
    }

    /// The handover source with its one-at-a-time rule, if any.
    pub(crate) fn handover_gate(&self) -> Option<&HandoverGate> {
        self.handover.as_deref()
    }

    /// The text of a `handover` reply but its listeners: the started
    /// services, the settings and the numeric listing.
    pub(crate) fn handover_body(&self) -> HandoverBody {
        let snapshot = self.control.snapshot();
        let options = PrintOptions { numeric: true };
        HandoverBody {
            listeners: Vec::new(),
            running: snapshot
                .services()
                .iter()
                .filter(|s| s.is_running())
                .map(|s| s.config().name.clone())
                .collect(),
            settings: self
                .control
                .settings()
                .iter()
                .map(|(info, value)| (info.name.to_string(), value.to_string()))
                .collect(),
            config: self.control.list(None, &options).unwrap_or_default(),
        }
    }

    /// What `service` (the only one when `None`) would do with `request`.
    fn explain(&self, service: Option<&str>, request: &super::explain::ExplainRequest) -> Reply {
        let snapshot = self.control.snapshot();
        let found = match service {
            Some(name) => snapshot.service(name),
            None if snapshot.services().len() == 1 => snapshot.services().first(),
            None => {
                return Reply::error(
                    ErrorKind::Usage,
                    "several services (or none): name one with -i",
                )
            }
        };
        match found {
            Some(s) => Reply::Ok(super::explain::explain(s, request)),
            None => refused(ControlError::NoSuchService(
                service.unwrap_or("").to_string(),
            )),
        }
    }

    /// Whether `request` would apply (`check`), applying nothing.
    fn check(&self, request: &Request, text: Option<&str>) -> Reply {
        if let Request::Load { file } = request {
            return match text {
                Some(text) => done(
                    self.control
                        .check_config(text, file.as_deref().map(Path::new)),
                ),
                None => Reply::error(ErrorKind::Usage, "'load' needs the configuration text"),
            };
        }
        if let Some(command) = statement_command(request) {
            return done(command.and_then(|c| self.control.check(&[c]).map_err(|(_, e)| e)));
        }
        match self.command(request) {
            Some(command) => done(self.control.check(&[command]).map_err(|(_, e)| e)),
            None => Reply::error(
                ErrorKind::Unavailable,
                format!("'{}' cannot be checked in advance", request.verb()),
            ),
        }
    }

    /// What loading `text` would change (`plan`): one line per change, in
    /// the order to make them (see [`plan_lines`]); refused as the load
    /// would be. Nothing is applied.
    fn plan(&self, text: &str, file: Option<&str>) -> Reply {
        match self.control.diff_config(text, file.map(Path::new)) {
            Ok(changes) => Reply::Ok(plan_lines(&changes)),
            Err(e) => refused(e),
        }
    }

    /// The control handle requests are applied to.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Carries out `request`. `text` is the configuration text that follows
    /// a `load` request (ignored for every other verb). A refused request
    /// changes nothing.
    pub fn handle(&self, request: &Request, text: Option<&str>) -> Reply {
        if let Some(command) = self.command(request) {
            return done(self.control.execute(command));
        }
        if let Some(command) = statement_command(request) {
            return done(command.and_then(|c| self.control.execute(c)));
        }
        match request {
            Request::Check(inner) => self.check(inner, text),
            Request::Explain { service, request } => self.explain(service.as_deref(), request),
            Request::List { service, numeric } => {
                let options = PrintOptions { numeric: *numeric };
                match self.control.list(service.as_deref(), &options) {
                    Ok(text) => Reply::with_text(&text),
                    Err(e) => refused(e),
                }
            }
            Request::Stats { service } => self.stats(service.as_deref()),
            Request::StatsJson { service } => self.stats_json(service.as_deref()),
            Request::Sysctl(s) => self.sysctl(s),
            Request::Load { file } => match text {
                Some(text) => done(
                    self.control
                        .load_config(text, file.as_deref().map(Path::new)),
                ),
                None => Reply::error(ErrorKind::Usage, "'load' needs the configuration text"),
            },
            Request::Plan { file } => match text {
                Some(text) => self.plan(text, file.as_deref()),
                None => Reply::error(ErrorKind::Usage, "'plan' needs the configuration text"),
            },
            Request::Help => Reply::Ok(VERBS.iter().map(|(_, s)| s.to_string()).collect()),
            // The control socket server serves `handover` itself (it passes
            // descriptors); `handover-done` reaches here only out of turn.
            Request::Handover => Reply::error(
                ErrorKind::Unavailable,
                "'handover' is served over the control socket only",
            ),
            Request::HandoverDone { .. } => Reply::error(
                ErrorKind::Usage,
                "'handover-done' only follows a handover reply on the same connection",
            ),
            // Ping, Quit, and (above) every changing request.
            _ => Reply::Ok(Vec::new()),
        }
    }

    /// The control command a changing request carries out, or `None` for a
    /// request that only reads (or is answered by the protocol itself).
    fn command(&self, request: &Request) -> Option<Command> {
        Some(match request {
            Request::AddService { name, args } => Command::AddService {
                name: name.clone(),
                spec: self.spec_for(args),
            },
            Request::EditService { name, args } => Command::EditService {
                name: name.clone(),
                spec: self.spec_for(args),
            },
            Request::DeleteService { name } => Command::DeleteService { name: name.clone() },
            Request::Flush => Command::Flush,
            Request::AddServer {
                service,
                server,
                weight,
            } => Command::AddServer {
                service: service.clone(),
                server: server.clone(),
                weight: *weight,
            },
            Request::EditServer {
                service,
                server,
                weight,
            } => Command::EditServer {
                service: service.clone(),
                server: server.clone(),
                weight: *weight,
            },
            Request::DeleteServer { service, server } => Command::DeleteServer {
                service: service.clone(),
                server: server.clone(),
            },
            Request::AddRule {
                service,
                pattern,
                match_group,
                server,
            } => Command::AddRule {
                service: service.clone(),
                pattern: pattern.clone(),
                match_group: *match_group,
                server: server.clone(),
            },
            Request::DeleteRule {
                service,
                pattern,
                server,
            } => Command::DeleteRule {
                service: service.clone(),
                pattern: pattern.clone(),
                server: server.clone(),
            },
            Request::Start { service } => Command::Start {
                service: service.clone(),
            },
            Request::Stop { service } => Command::Stop {
                service: service.clone(),
            },
            Request::ReloadCertificates => Command::ReloadCertificates,
            Request::SetServerTls {
                service,
                server,
                tls,
            } => Command::SetServerTls {
                service: service.clone(),
                server: server.clone(),
                tls: tls.clone(),
            },
            Request::SetServerLimit {
                service,
                server,
                maxconn,
            } => Command::SetServerLimit {
                service: service.clone(),
                server: server.clone(),
                maxconn: *maxconn,
            },
            Request::SetServerProxy {
                service,
                server,
                version,
            } => Command::SetServerProxy {
                service: service.clone(),
                server: server.clone(),
                version: *version,
            },
            Request::List { .. }
            | Request::Stats { .. }
            | Request::StatsJson { .. }
            | Request::Sysctl(_)
            | Request::Load { .. }
            | Request::Plan { .. }
            | Request::Check(_)
            | Request::Explain { .. }
            | Request::AddRuleStatement { .. }
            | Request::DeleteRuleStatement { .. }
            | Request::Ping
            | Request::Help
            | Request::Handover
            | Request::HandoverDone { .. }
            | Request::Quit => return None,
        })
    }

    /// The [`ServiceSpec`] of an add or edit: a `port=` completes a listen
    /// address given without a port, and otherwise replaces the port of the
    /// service's listen address (atomically, inside the operation).
    fn spec_for(&self, args: &ServiceArgs) -> ServiceSpec {
        let mut spec = args.spec.clone();
        if let Some(port) = args.port {
            match &mut spec.listen {
                Some(listen) if listen.port.is_none() => listen.port = Some(port),
                Some(_) => {}
                None => spec.listen_port = Some(port),
            }
        }
        spec
    }

    fn stats_json(&self, only: Option<&str>) -> Reply {
        let mut snapshot = crate::metrics::MetricsSnapshot::collect(&self.control, None);
        if let Some(name) = only {
            snapshot.services.retain(|s| s.name == name);
            if snapshot.services.is_empty() {
                return refused(ControlError::NoSuchService(name.to_string()));
            }
        }
        Reply::Ok(vec![snapshot.to_json()])
    }

    fn stats(&self, only: Option<&str>) -> Reply {
        let snapshot = self.control.snapshot();
        if let Some(name) = only {
            if snapshot.service(name).is_none() {
                return refused(ControlError::NoSuchService(name.to_string()));
            }
        }
        let mut body = Vec::new();
        for service in snapshot.services() {
            let c = service.config();
            if only.is_some_and(|n| n != c.name) {
                continue;
            }
            let s = service.load().stats();
            let mut line = format!(
                "service {} state={} listen={}",
                c.name,
                if service.is_running() {
                    "running"
                } else {
                    "stopped"
                },
                c.listen
            );
            if service.is_running() {
                if let Some(addr) = self.bound_addr.as_ref().and_then(|f| f(&c.name)) {
                    let _ = write!(line, " bound={addr}");
                }
            }
            let _ = write!(
                line,
                " active={} connections={} requests={} bytes_in={} bytes_out={} errors={}",
                s.active, s.connections, s.requests, s.bytes_in, s.bytes_out, s.errors
            );
            if c.tls.is_some() {
                let _ = write!(line, " tls_failures={}", s.tls_failures);
            }
            if !c.proxy_protocol.is_empty() {
                let _ = write!(line, " proxy_refused={}", s.proxy_refused);
            }
            if c.http2 {
                let _ = write!(
                    line,
                    " h2_connections={} h2_requests={} h2_streams_refused={} h2_streams_reset={} h2_connection_errors={}",
                    s.h2_connections,
                    s.h2_requests,
                    s.h2_streams_refused,
                    s.h2_streams_reset,
                    s.h2_connection_errors
                );
            }
            let _ = write!(
                line,
                " queued={} queued_total={} queue_timeouts={} queue_wait_ms={} retries={} retries_refused={}",
                s.queued,
                s.queued_total,
                s.queue_timeouts,
                s.queue_wait.as_millis(),
                s.retries,
                s.retries_refused
            );
            body.push(line);
            for entry in service.server_entries() {
                body.push(server_stats_line(&c.name, entry));
            }
        }
        Reply::Ok(body)
    }

    fn sysctl(&self, request: &SysctlRequest) -> Reply {
        match request {
            SysctlRequest::All => Reply::Ok(
                self.control
                    .settings()
                    .iter()
                    .map(|(info, value)| format!("{} = {value}", info.name))
                    .collect(),
            ),
            SysctlRequest::Get(name) => match self.control.settings().get(name) {
                Ok(value) => Reply::Ok(vec![format!("{name} = {value}")]),
                Err(e) => refused(e),
            },
            SysctlRequest::Set(name, value) => done(self.control.execute(Command::Set {
                name: name.clone(),
                value: value.clone(),
            })),
        }
    }
}

/// The lines of a `plan` reply: per change the request line that makes
/// it, or, for a change no request makes, a line starting with `#` that
/// says what it is: the `admin =` address and the order services are
/// listed in (a load alone changes them), and a change whose values hold
/// a control character (no request line can carry it).
fn plan_lines(changes: &[ConfigChange]) -> Vec<String> {
    changes
        .iter()
        .map(|change| match change {
            ConfigChange::Command(command) => match Request::from_command(command) {
                Some(request) => request.to_line().unwrap_or_else(|_| {
                    format!(
                        "# {:?} (only a load makes this change)",
                        request.to_string()
                    )
                }),
                None => match &**command {
                    Command::SetAdmin { addr: Some(addr) } => {
                        format!("# admin = {addr} (only a load changes it)")
                    }
                    Command::SetAdmin { addr: None } => {
                        "# admin removed (only a load changes it)".to_string()
                    }
                    other => format!("# {other:?}"),
                },
            },
            ConfigChange::ServiceOrder(names) => format!(
                "# services listed in the order {} (only a load changes it)",
                names.join(" ")
            ),
        })
        .collect()
}

/// One server's line of `stats`: its counters, then its health: `state`
/// (`up`, `down` by its checks, `ejected` by passive health, `open` when
/// down but let in by a service failing open), `since` (seconds since the
/// last change, `-` for none), `changes`, `ejections`, and `reason` (why it
/// last failed, quoted; empty for never).
fn server_stats_line(service: &str, entry: &ktcpvs_core::snapshot::ServerEntry) -> String {
    let t = entry.load().stats();
    let h = entry.health();
    let state = h.state();
    let mut line = format!(
        "server {service} {} weight={} active={} total={} requests={} bytes_out={} bytes_in={} errors={} healthy={}",
        entry.config().addr,
        entry.config().weight,
        t.active,
        t.total,
        t.requests,
        t.bytes_out,
        t.bytes_in,
        t.errors,
        if t.healthy { "yes" } else { "no" }
    );
    let _ = write!(line, " state={state}");
    if entry.config().maxconn != 0 {
        let _ = write!(line, " maxconn={}", entry.config().maxconn);
    }
    if h.ramping && entry.config().weight > 0 {
        // In a slow-start service the effective weight is 100 times the
        // configured one at full ramp: this is the ramp in percent.
        let percent = ktcpvs_core::RealServer::weight(entry) / entry.config().weight;
        let _ = write!(line, " slow_start={}%", percent.min(100));
    }
    match h.since_change {
        Some(d) => {
            let _ = write!(line, " since={}", d.as_secs());
        }
        None => line.push_str(" since=-"),
    }
    let _ = write!(
        line,
        " changes={} ejections={} reason={}",
        h.transitions,
        h.ejections,
        crate::control_socket::protocol::quote_if_needed(
            &h.reason
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
        )
    );
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "Virtual web {\n  listen = 127.0.0.1:8080\n  scheduler = http\n  server = 10.0.0.1:80 1\n  server = 10.0.0.2:80 2\n  rule = pattern \"/img/.*\" use server 10.0.0.1:80\n  rule = pattern \".*\" use server 10.0.0.2:80\n}\n";

    fn dispatcher() -> Dispatcher {
        let control = Control::new(crate::builtin_schedulers());
        control.load_config(BEFORE, None).unwrap();
        Dispatcher::new(control, None)
    }

    fn plan(d: &Dispatcher, text: &str) -> Reply {
        d.handle(
            &Request::Plan {
                file: Some("lb.conf".into()),
            },
            Some(text),
        )
    }

    #[test]
    fn plan_replies_the_request_lines_of_a_load_and_applies_nothing() {
        let d = dispatcher();
        let before = d.control().config();
        assert_eq!(plan(&d, BEFORE), Reply::Ok(Vec::new()));
        let after = BEFORE
            .replace("10.0.0.2:80 2", "10.0.0.2:80 3")
            .replace("scheduler = http", "scheduler = wlc\n  maxclients = 100")
            .replace("  rule = pattern \"/img/.*\" use server 10.0.0.1:80\n", "")
            .replace("  rule = pattern \".*\" use server 10.0.0.2:80\n", "")
            + "admin = 127.0.0.1:9100\nVirtual api {\n  listen = 127.0.0.1:8081\n  scheduler = rr\n  server = 10.0.0.3:80 1 maxconn 5\n}\n";
        let Reply::Ok(lines) = plan(&d, &after) else {
            panic!("refused");
        };
        assert_eq!(
            lines,
            [
                "# admin = 127.0.0.1:9100 (only a load changes it)",
                r#"delete-rule web rule="pattern \"/img/.*\" use server 10.0.0.1:80""#,
                r#"delete-rule web rule="pattern \".*\" use server 10.0.0.2:80""#,
                "edit-service web scheduler=wlc maxclients=100",
                "edit-server web server=10.0.0.2:80 weight=3",
                "add-service api listen=127.0.0.1:8081 scheduler=rr",
                "add-server api server=10.0.0.3:80",
                "server-limit api server=10.0.0.3:80 maxconn=5",
            ]
        );
        assert_eq!(d.control().config(), before);
        // Each line read back is the request of the same command.
        let changes = d.control().diff_config(&after, None).unwrap();
        for (change, line) in changes.iter().zip(&lines) {
            let ConfigChange::Command(command) = change else {
                continue;
            };
            if line.starts_with('#') {
                continue;
            }
            let request = Request::parse(line).unwrap();
            let got = d
                .command(&request)
                .or_else(|| statement_command(&request).and_then(Result::ok));
            assert_eq!(got.as_ref(), Some(&**command), "{line}");
        }
        // Applied in order, they make the load's configuration.
        for line in lines.iter().filter(|l| !l.starts_with('#')) {
            assert_eq!(
                d.handle(&Request::parse(line).unwrap(), None),
                Reply::Ok(Vec::new()),
                "{line}"
            );
        }
        let reached = d.control().config();
        let control = Control::new(crate::builtin_schedulers());
        control.load_config(&after, None).unwrap();
        let wanted = control.config();
        assert_eq!(reached.services, wanted.services);
    }

    #[test]
    fn plan_refuses_what_a_load_refuses_naming_the_line() {
        let d = dispatcher();
        let reply = plan(&d, "Virtual web {\n  scheduler = nosuch\n}\n");
        let Reply::Err { message, .. } = reply else {
            panic!("accepted");
        };
        assert!(message.contains("lb.conf:1"), "{message}");
        assert!(d.control().config().service("web").is_some());
        assert!(matches!(
            d.handle(&Request::Plan { file: None }, None),
            Reply::Err { .. }
        ));
    }
}

//! The control verbs: one [`Command`] enum with every operation of the
//! original's control interface (add/edit/delete service, add/edit/delete
//! real server, add/delete rule, flush, start/stop) plus runtime settings.
//!
//! `tcpvsadm`, the control socket and configuration-file loading all build
//! these same values; [`Control::execute`](crate::Control::execute) and
//! [`Control::transaction`](crate::Control::transaction) are the single
//! place they take effect. They live apart from both, so that the
//! configuration language (which produces them) and the control API (which
//! applies them) import them without importing each other.

use std::net::SocketAddr;

use crate::condition::{Conditions, HeaderEdit, RuleAction};
use crate::endpoint::Endpoint;
use crate::model::{Discovery, ErrorPage, ProxyVersion};
use crate::network::Networks;
use crate::tls::{BackendTls, CertificateFiles};

/// Fields of a service to set. `None` leaves a field as it is (on edit) or
/// takes the default (on add).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Listen address; a missing port keeps the current one (8080 on add).
    pub listen: Option<Endpoint>,
    /// Listen port alone (`tcpvsadm -P`): replaces the port of the listen
    /// address (after `listen`, if both are given) and keeps its host.
    pub listen_port: Option<u16>,
    /// Scheduler name.
    pub scheduler: Option<String>,
    /// `startservers`.
    pub startservers: Option<u32>,
    /// `maxclients`.
    pub maxclients: Option<u32>,
    /// `minspareservers`.
    pub minspareservers: Option<u32>,
    /// `maxspareservers`.
    pub maxspareservers: Option<u32>,
    /// `Some(Some(addr))` sets the redirect address, `Some(None)` removes it.
    pub redirect: Option<Option<Endpoint>>,
    /// Backend connect timeout in seconds; `Some(0)` returns to the global setting.
    pub connect_timeout: Option<u32>,
    /// Relay idle timeout in seconds; `Some(0)` returns to the global setting.
    pub read_timeout: Option<u32>,
    /// Keep-alive idle timeout in seconds; `Some(0)` returns to the global setting.
    pub keepalive_timeout: Option<u32>,
    /// Request-head timeout in seconds; `Some(0)` returns to the global setting.
    pub header_timeout: Option<u32>,
    /// Backend response timeout in seconds; `Some(0)` returns to the global setting.
    pub response_timeout: Option<u32>,
    /// Add `X-Forwarded-For`/`Forwarded` to forwarded requests.
    pub forward_for: Option<bool>,
    /// Serve HTTP/2 to clients (ALPN `h2`, h2c with prior knowledge).
    pub http2: Option<bool>,
    /// The protocols clients may switch to with `Upgrade` (replacing the
    /// list; empty: none).
    pub upgrades: Option<Vec<String>>,
    /// Scheduler options to set (`Some(value)`) or remove (`None`).
    pub options: Vec<(String, Option<String>)>,
    /// The certificates the listener serves, the default first (replacing
    /// the list; empty: TLS off).
    pub certificates: Option<Vec<CertificateFiles>>,
    /// Whether a request's `Host` must agree with the TLS server name
    /// (SNI); only for a service with certificates.
    pub host_check: Option<bool>,
    /// Networks trusted to send a PROXY protocol header (replacing the
    /// list; empty: no PROXY protocol).
    pub proxy_protocol: Option<Networks>,
    /// The DNS names whose addresses are servers (replacing the list).
    pub discover: Option<Vec<Discovery>>,
    /// Error pages to set (`Some`) or remove (`None`), by status.
    pub error_pages: Vec<(u16, Option<ErrorPage>)>,
    /// Health and overload settings to set, `(key, value)` as
    /// [`HealthConfig::set`](crate::health::HealthConfig::set) reads them,
    /// applied in order.
    pub health: Vec<(String, String)>,
}

/// One control operation. Each is atomic: it applies whole or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Add a virtual service (`tcpvsadm -A`).
    AddService {
        /// Its name.
        name: String,
        /// Its fields; omitted ones take the defaults.
        spec: ServiceSpec,
    },
    /// Change the given fields of a service (`tcpvsadm -E`); others stay.
    EditService {
        /// The service.
        name: String,
        /// The fields to change.
        spec: ServiceSpec,
    },
    /// Delete a service with its servers and rules (`tcpvsadm -D`); a
    /// running service is stopped first.
    DeleteService {
        /// The service.
        name: String,
    },
    /// Delete every service (`tcpvsadm -F`).
    Flush,
    /// Add a real server (`tcpvsadm -a`).
    AddServer {
        /// The service.
        service: String,
        /// The server; a missing port takes the service's listen port.
        server: Endpoint,
        /// Its weight, default 1.
        weight: Option<u32>,
    },
    /// Change a real server's weight (`tcpvsadm -e`).
    EditServer {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
        /// The new weight; `None` changes nothing.
        weight: Option<u32>,
    },
    /// Delete a real server (`tcpvsadm -d`); refused while a rule uses it.
    DeleteServer {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
    },
    /// Add a rule/server pair (`tcpvsadm --add-rule`).
    AddRule {
        /// The service.
        service: String,
        /// The pattern.
        pattern: String,
        /// The capture group for hashing schedulers (`-m N`).
        match_group: Option<u32>,
        /// The server the rule routes to; it must exist in the service.
        server: Endpoint,
    },
    /// Add a rule with conditions, an edge action or header edits (a
    /// `rule =` statement that is more than `pattern … use server …`), or
    /// a server to such a rule. A forwarding rule needs `server`; a
    /// redirect or fixed response takes none. Rules are named by pattern,
    /// match group and conditions: adding a server to an existing one
    /// needs the same action and edits.
    AddRuleWith {
        /// The service.
        service: String,
        /// The rule.
        rule: RuleSpec,
        /// The server it routes to (forwarding rules).
        server: Option<Endpoint>,
    },
    /// Delete a server from the rule named by `rule`'s pattern, match group
    /// and conditions (the rule goes with its last server), or with no
    /// server the whole rule.
    DeleteRuleWith {
        /// The service.
        service: String,
        /// The rule (its pattern, match group and conditions name it).
        rule: RuleSpec,
        /// The server to remove, or `None` for the rule.
        server: Option<Endpoint>,
    },
    /// Delete a rule/server pair (`tcpvsadm --del-rule`); the rule goes
    /// when its last server does.
    DeleteRule {
        /// The service.
        service: String,
        /// The pattern.
        pattern: String,
        /// The server.
        server: Endpoint,
    },
    /// Start one service, or all with `None` (`tcpvsadm --start`).
    Start {
        /// The service, or every service.
        service: Option<String>,
    },
    /// Stop one service, or all with `None` (`tcpvsadm --stop`).
    Stop {
        /// The service, or every service.
        service: Option<String>,
    },
    /// Reach a real server over TLS with `tls`, or over plain TCP again
    /// with `None` (`tcpvsadm -e --server-tls`).
    SetServerTls {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
        /// How to reach it over TLS.
        tls: Option<BackendTls>,
    },
    /// Limit the connections or requests in flight of a real server
    /// (`tcpvsadm -a/-e -x N`); 0 removes the limit.
    SetServerLimit {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
        /// Most in flight at once; 0: no limit.
        maxconn: u32,
    },
    /// Makes the servers found under a `discover` name of a service exactly
    /// `addrs`: servers of that name not among them leave (unless a rule
    /// names them), new ones join with the discovery's weight, and those
    /// already there stay untouched (their counters and health kept). An
    /// address that is already a configured server is left to it. What a
    /// resolver applies each time a name's records change.
    SyncDiscovered {
        /// The service.
        service: String,
        /// The name, as its `discover` entry writes it.
        name: String,
        /// Every address the name resolves to now.
        addrs: Vec<SocketAddr>,
    },
    /// Send (or with `None` stop sending) a PROXY protocol header first on
    /// each connection to a server (`server ... send_proxy v2`).
    SetServerProxy {
        /// The service.
        service: String,
        /// The server.
        server: Endpoint,
        /// The version to send.
        version: Option<ProxyVersion>,
    },
    /// Set (or with `None` clear) the admin listener's address
    /// (`admin = ADDR:PORT` in a configuration file).
    SetAdmin {
        /// The address.
        addr: Option<Endpoint>,
    },
    /// Read every TLS service's certificate files again; new handshakes
    /// use them, connections in flight keep theirs. Refused, changing
    /// nothing, when any file is bad.
    ReloadCertificates,
    /// Set a runtime setting (`tcpvsadm --sysctl NAME=VALUE`).
    Set {
        /// The setting's name.
        name: String,
        /// Its new value, as text.
        value: String,
    },
}

/// A rule as [`Command::AddRuleWith`] adds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSpec {
    /// The target pattern.
    pub pattern: String,
    /// The capture group hashing schedulers key on.
    pub match_group: Option<u32>,
    /// The conditions besides the pattern.
    pub conditions: Conditions,
    /// What the rule does.
    pub action: RuleAction,
    /// Its header edits.
    pub edits: Vec<HeaderEdit>,
}

//! The error types of the core: what went wrong, and with what.
//!
//! Callers may rely on the variants and their fields; the `Display` wording
//! follows the original KTCPVS messages where it had one ("Service already
//! exists", "No such destination", "Destination is busy" …) followed by the
//! object it concerns, and may be refined between releases.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::tls::TlsError;

/// An address that could not be parsed or resolved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddrError {
    /// The text is not of the form `HOST[:PORT]`.
    #[error("illegal address '{text}': {reason}")]
    Syntax {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The port is neither a number in 0..=65535 nor a known service name.
    #[error("illegal port '{text}': not a number in 0..=65535 nor a known service name")]
    Port {
        /// The port text as given.
        text: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve host '{host}': {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
}

/// A scheduler refused to build a picker for a service.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("scheduler '{scheduler}' cannot serve service '{service}': {reason}")]
pub struct SchedulerError {
    /// The scheduler's name.
    pub scheduler: String,
    /// The service it was asked to serve.
    pub service: String,
    /// Why it refused.
    pub reason: String,
}

/// A control operation was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    /// `add service` of a name that is taken.
    #[error("Service already exists: '{0}'")]
    ServiceExists(String),
    /// An operation on a service that does not exist.
    #[error("No such service: '{0}'")]
    NoSuchService(String),
    /// The scheduler name is not registered.
    #[error("Scheduler not found: '{0}' (registered: {1})")]
    SchedulerNotFound(String, String),
    /// `add server` of an address the service already has.
    #[error("Destination already exists: {server} in service '{service}'")]
    DestinationExists {
        /// The service.
        service: String,
        /// The server's address.
        server: SocketAddr,
    },
    /// An operation on a server the service does not have.
    #[error("No such destination: {server} in service '{service}'")]
    NoSuchDestination {
        /// The service.
        service: String,
        /// The server's address.
        server: SocketAddr,
    },
    /// Deleting a server that a rule still routes to.
    #[error("Destination is busy: {server} in service '{service}' is used by rule pattern \"{pattern}\"; delete the rule first")]
    DestinationBusy {
        /// The service.
        service: String,
        /// The server's address.
        server: SocketAddr,
        /// The first rule that uses it.
        pattern: String,
    },
    /// Adding a rule/server pair that already exists.
    #[error("Rule already exists: pattern \"{pattern}\" already uses server {server} in service '{service}'")]
    RuleExists {
        /// The service.
        service: String,
        /// The rule's pattern.
        pattern: String,
        /// The server.
        server: SocketAddr,
    },
    /// Deleting a rule/server pair that does not exist.
    #[error("No such rule: pattern \"{pattern}\" with server {server} in service '{service}'")]
    NoSuchRule {
        /// The service.
        service: String,
        /// The rule's pattern.
        pattern: String,
        /// The server.
        server: SocketAddr,
    },
    /// A rule's pattern is not a valid regular expression.
    #[error("pattern compiling failed: \"{pattern}\": {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid {what} '{value}': {reason}")]
    Invalid {
        /// Which field or argument.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An address did not parse or resolve.
    #[error(transparent)]
    Addr(#[from] AddrError),
    /// The scheduler refused the resulting service.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// A configuration file was malformed; nothing was applied.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A runtime setting name that does not exist.
    #[error("unknown setting '{0}' (known: {1})")]
    UnknownSetting(String, String),
    /// The change was refused by the engine putting it into effect (for
    /// example a listen address already in use); it was rolled back.
    #[error("the change could not be put into effect and was rolled back: {0}")]
    Activation(String),
    /// The balancer was unloaded; it accepts no further changes.
    #[error("ktcpvs is unloading: no further changes are accepted")]
    Unloaded,
    /// A certificate file of a TLS service could not be used; nothing was
    /// applied.
    #[error("service '{service}': {error}")]
    Certificate {
        /// The service.
        service: String,
        /// The file and what is wrong with it.
        error: TlsError,
    },
    /// A service asks for TLS, but the host registered no TLS
    /// implementation ([`Control::set_tls_loader`](crate::Control::set_tls_loader)).
    #[error("service '{0}' uses TLS, but this program has no TLS support")]
    NoTls(String),
}

/// Where in a configuration text an error was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name, or `None` for text that came from elsewhere.
    pub file: Option<PathBuf>,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{}:{}", file.display(), self.line, self.column),
            None => write!(f, "line {}, column {}", self.line, self.column),
        }
    }
}

/// A configuration text that could not be loaded. Nothing was applied.
///
/// Displayed as the original's `Syntax error in the config file at …` for
/// a text that breaks the grammar, `Error in the config file at …` for a
/// well-formed command that was refused (an unknown scheduler, a server
/// given twice, …), and as the bare message for a file that could not be
/// read.
///
/// ```
/// use ktcpvs_core::{ConfigError, ConfigProblem, Location};
/// let e = ConfigError {
///     location: Location { file: None, line: 3, column: 5 },
///     message: "scheduler \"nope\" is not registered".into(),
///     problem: ConfigProblem::Refused,
/// };
/// assert_eq!(
///     e.to_string(),
///     "Error in the config file at line 3, column 5: scheduler \"nope\" is not registered"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigError {
    /// Where the error is.
    pub location: Location,
    /// What is wrong, in words.
    pub message: String,
    /// Which kind of problem it is.
    pub problem: ConfigProblem,
}

/// The kind of problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigProblem {
    /// The text does not follow the configuration grammar.
    Syntax,
    /// The text is well formed, but a command it makes was refused by the
    /// model (the location is that command's).
    Refused,
    /// The file could not be read.
    Unreadable,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.problem {
            ConfigProblem::Syntax => write!(
                f,
                "Syntax error in the config file at {}: {}",
                self.location, self.message
            ),
            ConfigProblem::Refused => write!(
                f,
                "Error in the config file at {}: {}",
                self.location, self.message
            ),
            ConfigProblem::Unreadable => f.write_str(&self.message),
        }
    }
}

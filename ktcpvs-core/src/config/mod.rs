//! The configuration language: the KTCPVS grammar
//! (`Virtual NAME { listen = …; scheduler = …; server = …; rule = … }`),
//! parsed into the same [`Command`]s that `tcpvsadm` sends, and printed back
//! from a [`Config`](crate::model::Config).
//!
//! The pipeline: text → tokens (with line and column) → statements →
//! located commands. Loading replays the commands in one transaction
//! ([`Control::load_config`](crate::control::Control::load_config)), so a
//! file means exactly what the equivalent `tcpvsadm` invocations mean.
//! [`diff`] turns two configurations back into the commands between them
//! (what a load would change).

mod diff;
mod lexer;
mod parse;
mod print;

use std::path::Path;

pub use crate::model::MAX_TIMEOUT_SECS;
pub use diff::{diff, ConfigChange};
pub use print::quote;
pub use print::{print, print_service, rule_statement, PrintOptions};

use crate::command::Command;
use crate::error::{ConfigError, Location};

/// A value with the place in the configuration text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// Where the statement that produced the value starts.
    pub location: Location,
    /// The value.
    pub value: T,
}

/// Parses a configuration text into commands, each with the location of
/// its statement: per `Virtual` block one `AddService`, then one
/// `AddServer` per `server` line and one `AddRule` per `rule` line.
///
/// Only the text is checked here (keywords, numbers and ranges, address
/// syntax, duplicates); scheduler names, patterns and rule servers are
/// checked when the commands are applied. `file` only names the text in
/// error locations. The language is described in `docs/configuration.md`.
///
/// ```
/// use ktcpvs_core::config::parse;
/// use ktcpvs_core::Command;
///
/// let commands = parse("Virtual web{listen=0.0.0.0:webcache\n server = 10.0.0.1:www 2}", None)?;
/// assert_eq!(commands.len(), 2);
/// assert!(matches!(&commands[0].value, Command::AddService { name, .. } if name == "web"));
/// assert_eq!(commands[1].location.line, 2);
///
/// let err = parse("Virtual web {\n  listen = 1.2.3.4:nosuchport\n}", None).unwrap_err();
/// assert_eq!((err.location.line, err.location.column), (2, 12));
/// assert!(err.message.starts_with("parsing listen address error"));
/// # Ok::<(), ktcpvs_core::ConfigError>(())
/// ```
pub fn parse(text: &str, file: Option<&Path>) -> Result<Vec<Located<Command>>, ConfigError> {
    parse::parse(text, file)
}

/// Parses one rule in the form a configuration file writes after `rule =`
/// (`pattern "RE" [match N] {condition} use server ADDR {edit}`, or with
/// `redirect`/`respond`), as the command that adds it to `service`: what
/// the control socket's `add-rule SERVICE rule="…"` and `tcpvsadm
/// --add-rule --rule` take.
///
/// ```
/// use ktcpvs_core::config::parse_rule;
/// use ktcpvs_core::Command;
/// let c = parse_rule("web", r#"pattern "^/a" host "=a.test" use server 10.0.0.1:80"#)?;
/// assert!(matches!(c, Command::AddRuleWith { .. }));
/// let plain = parse_rule("web", r#"pattern "^/a" use server 10.0.0.1:80"#)?;
/// assert!(matches!(plain, Command::AddRule { .. }));
/// assert!(parse_rule("web", r#"pattern "^/a" use server 10.0.0.1:80 rule"#).is_err());
/// # Ok::<(), ktcpvs_core::ConfigError>(())
/// ```
pub fn parse_rule(service: &str, text: &str) -> Result<Command, ConfigError> {
    parse::parse_rule(service, text)
}

//! Replies: [`Reply`] (`OK`, `OK <n>` with a body, `ERR <kind> <message>`)
//! with its wire format and status-line parser, and [`ErrorKind`], the
//! stable error tokens, with their mapping from control and protocol errors.

use std::fmt;

use ktcpvs_core::ControlError;

use super::ProtocolError;

/// The kind of an `ERR` reply: a stable token clients may match on. New
/// kinds may appear within a protocol version; clients treat unknown ones
/// as [`ErrorKind::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request line is malformed (missing or unexpected words, bad value).
    Usage,
    /// The verb is unknown.
    UnknownVerb,
    /// A line or a `load` text exceeded its limit.
    TooLong,
    /// A service, server or rule of that identity already exists.
    Exists,
    /// The service does not exist.
    NoSuchService,
    /// The server (or rule/server pair) does not exist.
    NoSuchServer,
    /// The server is used by a rule.
    Busy,
    /// A value is out of range or malformed.
    Invalid,
    /// An address did not parse or resolve.
    Address,
    /// The scheduler is unknown or refused the service.
    Scheduler,
    /// A configuration text did not load.
    Config,
    /// The setting does not exist.
    NoSuchSetting,
    /// The daemon is unloading and takes no changes.
    Unloading,
    /// The daemon cannot take this client now (too many clients).
    Unavailable,
    /// The engine could not put the change into effect (e.g. a listen
    /// address in use); it was rolled back.
    Activation,
    /// The peer may not use this daemon: it runs as another user than
    /// the daemon's, and not as root.
    Permission,
    /// A certificate file could not be used, or this daemon has no TLS.
    Certificate,
    /// A kind this version does not know.
    Other(String),
}

impl ErrorKind {
    /// Every kind this version knows, so that [`as_str`](Self::as_str) is
    /// the only table of tokens.
    const KNOWN: [ErrorKind; 17] = [
        ErrorKind::Usage,
        ErrorKind::UnknownVerb,
        ErrorKind::TooLong,
        ErrorKind::Exists,
        ErrorKind::NoSuchService,
        ErrorKind::NoSuchServer,
        ErrorKind::Busy,
        ErrorKind::Invalid,
        ErrorKind::Address,
        ErrorKind::Scheduler,
        ErrorKind::Config,
        ErrorKind::NoSuchSetting,
        ErrorKind::Unloading,
        ErrorKind::Unavailable,
        ErrorKind::Activation,
        ErrorKind::Permission,
        ErrorKind::Certificate,
    ];

    /// The token on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::UnknownVerb => "unknown-verb",
            ErrorKind::TooLong => "too-long",
            ErrorKind::Exists => "exists",
            ErrorKind::NoSuchService => "no-such-service",
            ErrorKind::NoSuchServer => "no-such-server",
            ErrorKind::Busy => "busy",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Address => "address",
            ErrorKind::Scheduler => "scheduler",
            ErrorKind::Config => "config",
            ErrorKind::NoSuchSetting => "no-such-setting",
            ErrorKind::Unloading => "unloading",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Activation => "activation",
            ErrorKind::Permission => "permission",
            ErrorKind::Certificate => "certificate",
            ErrorKind::Other(s) => s,
        }
    }

    /// The kind of a wire token.
    pub fn from_token(token: &str) -> ErrorKind {
        Self::KNOWN
            .iter()
            .find(|kind| kind.as_str() == token)
            .cloned()
            .unwrap_or_else(|| ErrorKind::Other(token.to_string()))
    }

    /// The kind that reports a refused control operation.
    pub fn of_control_error(e: &ControlError) -> ErrorKind {
        match e {
            ControlError::ServiceExists(_)
            | ControlError::DestinationExists { .. }
            | ControlError::RuleExists { .. } => ErrorKind::Exists,
            ControlError::NoSuchService(_) => ErrorKind::NoSuchService,
            ControlError::NoSuchDestination { .. } | ControlError::NoSuchRule { .. } => {
                ErrorKind::NoSuchServer
            }
            ControlError::DestinationBusy { .. } => ErrorKind::Busy,
            ControlError::BadPattern { .. } | ControlError::Invalid { .. } => ErrorKind::Invalid,
            ControlError::Addr(_) => ErrorKind::Address,
            ControlError::SchedulerNotFound(..) | ControlError::Scheduler(_) => {
                ErrorKind::Scheduler
            }
            ControlError::Config(_) => ErrorKind::Config,
            ControlError::UnknownSetting(..) => ErrorKind::NoSuchSetting,
            ControlError::Unloaded => ErrorKind::Unloading,
            ControlError::Activation(_) => ErrorKind::Activation,
            ControlError::Certificate { .. } | ControlError::NoTls(_) => ErrorKind::Certificate,
        }
    }

    /// The kind that reports a malformed request.
    pub fn of_protocol_error(e: &ProtocolError) -> ErrorKind {
        match e {
            ProtocolError::UnknownVerb(_) => ErrorKind::UnknownVerb,
            ProtocolError::LineTooLong { .. } => ErrorKind::TooLong,
            ProtocolError::BadGreeting(_)
            | ProtocolError::NotUtf8
            | ProtocolError::Empty
            | ProtocolError::NotAChange(_)
            | ProtocolError::Unterminated(_)
            | ProtocolError::UnexpectedWord { .. }
            | ProtocolError::Missing { .. }
            | ProtocolError::Duplicate { .. }
            | ProtocolError::BadValue { .. }
            | ProtocolError::ControlCharacter { .. }
            | ProtocolError::BadReply(_) => ErrorKind::Usage,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reply from the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success, with a body of zero or more lines (each without newline).
    Ok(Vec<String>),
    /// Failure: nothing was changed.
    Err {
        /// What kind of failure.
        kind: ErrorKind,
        /// What went wrong, with what (one line).
        message: String,
    },
}

impl Reply {
    /// A success whose body is `text`, split into lines.
    pub fn with_text(text: &str) -> Reply {
        Reply::Ok(text.lines().map(str::to_string).collect())
    }

    /// A failure; newlines in `message` become spaces so the reply stays
    /// one line.
    pub fn error(kind: ErrorKind, message: impl fmt::Display) -> Reply {
        let message = message.to_string().replace(['\r', '\n'], " ");
        Reply::Err { kind, message }
    }

    /// The reply as it goes on the wire, every line ending in `\n`.
    pub fn to_wire(&self) -> String {
        match self {
            Reply::Ok(body) if body.is_empty() => "OK\n".to_string(),
            Reply::Ok(body) => {
                let mut out = format!("OK {}\n", body.len());
                for line in body {
                    // Body lines are single lines by construction; a stray
                    // newline would break the framing, so it is replaced.
                    out.push_str(&line.replace(['\r', '\n'], " "));
                    out.push('\n');
                }
                out
            }
            Reply::Err { kind, message } => format!("ERR {kind} {message}\n"),
        }
    }

    /// Parses a status line: `Ok(n)` for `OK [n]` (n body lines follow),
    /// or the complete `Err` reply.
    pub fn parse_status(line: &str) -> Result<Result<usize, Reply>, ProtocolError> {
        let bad = || ProtocolError::BadReply(line.to_string());
        if line == "OK" {
            return Ok(Ok(0));
        }
        if let Some(count) = line.strip_prefix("OK ") {
            return count.trim().parse::<usize>().map(Ok).map_err(|_| bad());
        }
        if let Some(rest) = line.strip_prefix("ERR ") {
            let (kind, message) = rest.split_once(' ').unwrap_or((rest, ""));
            if kind.is_empty() {
                return Err(bad());
            }
            return Ok(Err(Reply::Err {
                kind: ErrorKind::from_token(kind),
                message: message.to_string(),
            }));
        }
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip() {
        let ok = Reply::Ok(vec![]);
        assert_eq!(ok.to_wire(), "OK\n");
        assert_eq!(Reply::parse_status("OK").unwrap(), Ok(0));
        let body = Reply::with_text("Virtual web {\n    listen = 0.0.0.0:8080\n}\n");
        let wire = body.to_wire();
        assert!(wire.starts_with("OK 3\n"));
        assert_eq!(Reply::parse_status("OK 3").unwrap(), Ok(3));
        let err = Reply::error(ErrorKind::NoSuchService, "No such service: 'x'\nsecond");
        assert_eq!(
            err.to_wire(),
            "ERR no-such-service No such service: 'x' second\n"
        );
        assert_eq!(
            Reply::parse_status("ERR no-such-service No such service: 'x' second").unwrap(),
            Err(Reply::Err {
                kind: ErrorKind::NoSuchService,
                message: "No such service: 'x' second".into()
            })
        );
        assert_eq!(
            Reply::parse_status("ERR brand-new-kind text").unwrap(),
            Err(Reply::Err {
                kind: ErrorKind::Other("brand-new-kind".into()),
                message: "text".into()
            })
        );
        for bad in ["", "OK x", "ERR", "ERR ", "YES", "ok"] {
            assert!(Reply::parse_status(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_error_kind_token_round_trips() {
        for kind in [
            ErrorKind::Usage,
            ErrorKind::UnknownVerb,
            ErrorKind::TooLong,
            ErrorKind::Exists,
            ErrorKind::NoSuchService,
            ErrorKind::NoSuchServer,
            ErrorKind::Busy,
            ErrorKind::Invalid,
            ErrorKind::Address,
            ErrorKind::Scheduler,
            ErrorKind::Config,
            ErrorKind::NoSuchSetting,
            ErrorKind::Unloading,
            ErrorKind::Unavailable,
            ErrorKind::Activation,
            ErrorKind::Permission,
            ErrorKind::Certificate,
        ] {
            assert_eq!(ErrorKind::from_token(kind.as_str()), kind);
        }
    }
}

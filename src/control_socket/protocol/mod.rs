//! The control-socket wire format: requests and replies as enums, and their
//! parsing and formatting.
//!
//! The protocol is line-oriented text that a person can type with
//! `socat - UNIX-CONNECT:/path` (the full description, with compatibility
//! rules, is `docs/control-protocol.md`):
//!
//! * on connect the daemon greets with `KTCPVS <version> …`
//!   ([`PROTOCOL_VERSION`]);
//! * each request is one line: a verb, then positional words and
//!   `key=value` words (values may be `"quoted"` with `\"` and `\\`);
//! * `load` is followed by configuration text, one line at a time, ending
//!   with a line holding only `.` (lines starting with `.` get one more `.`);
//! * each reply is `OK`, or `OK <n>` followed by exactly `n` body lines, or
//!   `ERR <kind> <message>`.
//!
//! Nothing here does I/O except the bounded line reader [`read_line`], so
//! every parse and format is unit-tested in isolation.
//!
//! | file | what lives there |
//! |---|---|
//! | `mod.rs` | the version, limits, greeting and [`ProtocolError`] |
//! | `words.rs` | splitting a request line into words, quoting, reading them |
//! | `request.rs` | [`Request`] and its fields: parse and format |
//! | `reply.rs` | [`Reply`] and [`ErrorKind`]: format and parse |
//! | `framing.rs` | line framing: the bounded reader and `load` dot-stuffing |
//! | `handover.rs` | the text of the `handover` reply (binary upgrade) |

mod framing;
mod handover;
mod reply;
mod request;
mod words;

use thiserror::Error;

pub use framing::{read_line, stuff_line, unstuff_line, LineRead, TextLine};
pub use handover::{HandoverBody, HandoverBodyError, ListenerInfo, ListenerRole, MAX_FDS};
pub use reply::{ErrorKind, Reply};
pub use request::{Request, ServiceArgs, SysctlRequest, VERBS};
pub(crate) use words::quote_if_needed;

/// The protocol version this crate speaks. It changes only when an existing
/// verb changes meaning; adding verbs, keys or error kinds does not change it.
pub const PROTOCOL_VERSION: u32 = 1;

/// The first word of the greeting line.
pub const GREETING_WORD: &str = "KTCPVS";

/// Longest request or reply line accepted, in bytes (newline excluded).
/// Checked before the line is buffered further.
pub const MAX_LINE: usize = 16 * 1024;

/// Largest configuration text accepted by `load`, in bytes.
pub const MAX_LOAD_BYTES: usize = 4 * 1024 * 1024;

/// The line that ends the text following `load`.
pub const END_OF_TEXT: &str = ".";

/// The greeting the daemon sends on connect.
pub fn greeting() -> String {
    format!(
        "{GREETING_WORD} {PROTOCOL_VERSION} ktcpvs {}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Checks a greeting line and returns the protocol version it announces.
pub fn parse_greeting(line: &str) -> Result<u32, ProtocolError> {
    let mut words = line.split_ascii_whitespace();
    match (words.next(), words.next().map(str::parse::<u32>)) {
        (Some(GREETING_WORD), Some(Ok(v))) => Ok(v),
        _ => Err(ProtocolError::BadGreeting(line.to_string())),
    }
}

/// A line or request that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The first line from the daemon is not `KTCPVS <version> …`.
    #[error("not a ktcpvs control socket: greeting was {0:?}")]
    BadGreeting(String),
    /// A line exceeds [`MAX_LINE`].
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// A line is not UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// The verb is not one this daemon knows.
    #[error("unknown request '{0}' (try 'help')")]
    UnknownVerb(String),
    /// An empty request line.
    #[error("empty request")]
    Empty,
    /// `check` wraps a request that changes nothing (a listing, `ping`,
    /// another `check`).
    #[error("'check' takes a change or 'load', not '{0}'")]
    NotAChange(&'static str),
    /// A quoted value is not closed.
    #[error("unterminated quoted string in {0:?}")]
    Unterminated(String),
    /// A verb got a word it does not take.
    #[error("'{verb}' does not take '{word}'")]
    UnexpectedWord {
        /// The verb.
        verb: &'static str,
        /// The word it got.
        word: String,
    },
    /// A verb lacks a word it needs.
    #[error("'{verb}' needs {what}")]
    Missing {
        /// The verb.
        verb: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// A key was given twice.
    #[error("'{key}' given twice")]
    Duplicate {
        /// The key.
        key: String,
    },
    /// A value does not parse.
    #[error("bad value for '{key}': {value:?} ({reason})")]
    BadValue {
        /// The key (or positional role).
        key: String,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A request holds a control character (a tab aside): a request is
    /// one line of text, and a line break inside a value would end it and
    /// start another request.
    #[error("control character U+{code:04X} at byte {at}: a request is one line of text")]
    ControlCharacter {
        /// The character's code point.
        code: u32,
        /// Its byte offset in the line.
        at: usize,
    },
    /// A reply line is neither `OK …` nor `ERR …`.
    #[error("malformed reply {0:?}")]
    BadReply(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_round_trips_and_strangers_are_refused() {
        assert_eq!(parse_greeting(&greeting()).unwrap(), PROTOCOL_VERSION);
        assert_eq!(parse_greeting("KTCPVS 2 future").unwrap(), 2);
        assert!(parse_greeting("SSH-2.0-OpenSSH").is_err());
        assert!(parse_greeting("KTCPVS x").is_err());
        assert!(parse_greeting("").is_err());
    }
}

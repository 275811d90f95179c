//! The body of the reply to `handover` (binary upgrade), as text: which
//! passed descriptor is which listening socket, which services run, the
//! runtime settings, and the configuration listing. The descriptors
//! themselves travel beside the text as `SCM_RIGHTS` (see
//! `control_socket::handover`); here is only the text, so that encoding
//! and decoding are unit-tested without sockets.
//!
//! ```text
//! listener service web 127.0.0.1:8080      (one line per passed descriptor, in order)
//! listener admin 127.0.0.1:9100
//! running web                               (a service that is started)
//! setting max_backlog 2048                  (a runtime setting and its value)
//! config                                    (the rest is the `list -n` text)
//! Virtual web {
//! ...
//! ```
//!
//! A decoder ignores lines of kinds it does not know before `config`
//! (protocol rule 2: later versions may add kinds), and refuses a body
//! without `config`, a malformed `listener` line, or more listeners than
//! one message can carry ([`MAX_FDS`]).

use std::net::SocketAddr;

use thiserror::Error;

use super::words::{quote_if_needed, split_words};

/// Most descriptors one `SCM_RIGHTS` message carries (Linux's
/// `SCM_MAX_FD`); a daemon with more listening sockets refuses `handover`.
pub const MAX_FDS: usize = 253;

/// What a passed listening socket is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerRole {
    /// One of a virtual service's sockets (a service has one per worker).
    Service(String),
    /// The admin listener (`/metrics`, `/healthz`, `/stats`).
    Admin,
}

/// The description of one passed descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// What it is for.
    pub role: ListenerRole,
    /// The address it is bound to.
    pub addr: SocketAddr,
}

/// The text of a `handover` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandoverBody {
    /// One entry per passed descriptor, in the order they were passed.
    pub listeners: Vec<ListenerInfo>,
    /// The services that are started.
    pub running: Vec<String>,
    /// Every runtime setting with its value.
    pub settings: Vec<(String, String)>,
    /// The configuration, as `list -n` prints it (it loads back as is).
    pub config: String,
}

/// A `handover` reply body that does not follow the format.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandoverBodyError {
    /// A line of a known kind is malformed.
    #[error("malformed handover line {line}: {reason}")]
    Malformed {
        /// The line's number in the body (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The body has no `config` line.
    #[error("handover reply without its configuration")]
    NoConfig,
    /// More listeners than one message can carry.
    #[error("{0} listening sockets announced, at most {MAX_FDS} can be passed")]
    TooMany(usize),
}

impl HandoverBody {
    /// The body lines of the reply.
    pub fn to_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for l in &self.listeners {
            lines.push(match &l.role {
                ListenerRole::Service(name) => {
                    format!("listener service {} {}", quote_if_needed(name), l.addr)
                }
                ListenerRole::Admin => format!("listener admin {}", l.addr),
            });
        }
        for name in &self.running {
            lines.push(format!("running {}", quote_if_needed(name)));
        }
        for (name, value) in &self.settings {
            lines.push(format!(
                "setting {} {}",
                quote_if_needed(name),
                quote_if_needed(value)
            ));
        }
        lines.push("config".to_string());
        lines.extend(self.config.lines().map(str::to_string));
        lines
    }

    /// Reads the body lines of a reply.
    pub fn from_lines<S: AsRef<str>>(lines: &[S]) -> Result<HandoverBody, HandoverBodyError> {
        let mut body = HandoverBody::default();
        for (i, line) in lines.iter().enumerate() {
            let line = line.as_ref();
            let malformed = |reason: &str| HandoverBodyError::Malformed {
                line: i + 1,
                reason: reason.to_string(),
            };
            let words: Vec<String> = split_words(line)
                .map_err(|e| malformed(&e.to_string()))?
                .into_iter()
                .map(|w| match w.key {
                    Some(k) => format!("{k}={}", w.value),
                    None => w.value,
                })
                .collect();
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            match words.as_slice() {
                ["config"] => {
                    let rest: Vec<&str> = lines[i + 1..].iter().map(AsRef::as_ref).collect();
                    body.config = rest.join("\n");
                    if !rest.is_empty() {
                        body.config.push('\n');
                    }
                    return Ok(body);
                }
                ["listener", rest @ ..] => {
                    let (role, addr) =
                        match rest {
                            ["service", name, addr] if !name.is_empty() => {
                                (ListenerRole::Service((*name).to_string()), addr)
                            }
                            ["admin", addr] => (ListenerRole::Admin, addr),
                            _ => return Err(malformed(
                                "expected 'listener service NAME ADDR' or 'listener admin ADDR'",
                            )),
                        };
                    let addr = addr
                        .parse::<SocketAddr>()
                        .map_err(|e| malformed(&format!("address {addr:?}: {e}")))?;
                    if body.listeners.len() == MAX_FDS {
                        return Err(HandoverBodyError::TooMany(MAX_FDS + 1));
                    }
                    body.listeners.push(ListenerInfo { role, addr });
                }
                ["running", name] => body.running.push((*name).to_string()),
                ["running", ..] => return Err(malformed("expected 'running NAME'")),
                ["setting", name, value] => body
                    .settings
                    .push(((*name).to_string(), (*value).to_string())),
                ["setting", ..] => return Err(malformed("expected 'setting NAME VALUE'")),
                // A kind a later version added: not ours to understand.
                _ => {}
            }
        }
        Err(HandoverBodyError::NoConfig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HandoverBody {
        HandoverBody {
            listeners: vec![
                ListenerInfo {
                    role: ListenerRole::Service("web".into()),
                    addr: "127.0.0.1:8080".parse().unwrap(),
                },
                ListenerInfo {
                    role: ListenerRole::Service("a b".into()),
                    addr: "[::1]:8081".parse().unwrap(),
                },
                ListenerInfo {
                    role: ListenerRole::Admin,
                    addr: "127.0.0.1:9100".parse().unwrap(),
                },
            ],
            running: vec!["web".into()],
            settings: vec![("max_backlog".into(), "2048".into())],
            config: "admin = 127.0.0.1:9100\n\nVirtual web {\n    listen = 127.0.0.1:8080\n}\n"
                .into(),
        }
    }

    #[test]
    fn a_body_round_trips() {
        let body = sample();
        let lines = body.to_lines();
        assert_eq!(lines[0], "listener service web 127.0.0.1:8080");
        assert_eq!(lines[1], "listener service \"a b\" [::1]:8081");
        assert_eq!(lines[2], "listener admin 127.0.0.1:9100");
        assert_eq!(lines[3], "running web");
        assert_eq!(lines[4], "setting max_backlog 2048");
        assert_eq!(lines[5], "config");
        assert_eq!(HandoverBody::from_lines(&lines).unwrap(), body);
    }

    #[test]
    fn an_empty_daemon_hands_over_nothing_but_the_config_line() {
        let body = HandoverBody::default();
        assert_eq!(body.to_lines(), ["config"]);
        assert_eq!(HandoverBody::from_lines(&body.to_lines()).unwrap(), body);
    }

    #[test]
    fn a_config_line_inside_the_config_is_text() {
        let mut body = sample();
        body.config = "config\nlistener admin 1.2.3.4:5\n".into();
        assert_eq!(HandoverBody::from_lines(&body.to_lines()).unwrap(), body);
    }

    #[test]
    fn unknown_kinds_before_the_config_are_skipped() {
        let lines = ["future-kind x y", "running web", "config", "x"];
        let body = HandoverBody::from_lines(&lines).unwrap();
        assert_eq!(body.running, ["web"]);
        assert_eq!(body.config, "x\n");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            &["listener service web"][..],
            &["listener service web 127.0.0.1"],
            &["listener service web not-an-address"],
            &["listener admin"],
            &["listener admin 1.2.3.4:5 extra"],
            &["listener tunnel x 1.2.3.4:5"],
            &["running"],
            &["running a b"],
            &["setting x"],
            &["listener service \"unterminated 1.2.3.4:5"],
        ] {
            let mut lines: Vec<&str> = bad.to_vec();
            lines.push("config");
            assert!(
                matches!(
                    HandoverBody::from_lines(&lines),
                    Err(HandoverBodyError::Malformed { line: 1, .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            HandoverBody::from_lines(&["running web"]),
            Err(HandoverBodyError::NoConfig)
        );
        assert_eq!(
            HandoverBody::from_lines::<&str>(&[]),
            Err(HandoverBodyError::NoConfig)
        );
    }

    #[test]
    fn more_listeners_than_one_message_carries_are_refused() {
        let mut lines = vec!["listener admin 127.0.0.1:1".to_string(); MAX_FDS + 1];
        lines.push("config".into());
        assert_eq!(
            HandoverBody::from_lines(&lines),
            Err(HandoverBodyError::TooMany(MAX_FDS + 1))
        );
        lines.remove(0);
        assert_eq!(
            HandoverBody::from_lines(&lines).unwrap().listeners.len(),
            MAX_FDS
        );
    }
}

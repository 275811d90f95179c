//! The status page's actions: set a server's weight, drain it (weight 0)
//! and enable it again, start or stop a service. Off unless the admin
//! listener was given a token (`ktcpvsd --admin-token-file FILE`).
//!
//! An action is a `POST /api/action` with a small JSON body. It is carried
//! out only when every check passes, in this order:
//!
//! 1. the body is at most [`MAX_BODY`] bytes of `application/json`;
//! 2. a browser's `Sec-Fetch-Site`, when sent, is `same-origin`, and its
//!    `Origin`, when sent, is `http://` and the request's `Host`;
//! 3. `X-CSRF-Token` is this process's random CSRF token (the page
//!    carries it; another site cannot read the page);
//! 4. `Authorization: Bearer TOKEN` is the operator's token (compared in
//!    constant time; a wrong one is answered after [`REFUSAL_PAUSE`]).
//!
//! The action then becomes the control-protocol [`Request`] `tcpvsadm`
//! would send, handled by the same [`Dispatcher`]; every attempt past the
//! checks is kept in a short log that `/stats` shows.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ktcpvs_core::scheduler::RequestHead;
use ktcpvs_core::Endpoint;
use parking_lot::Mutex;
use serde::Deserialize;
use thiserror::Error;

use crate::control_socket::remote::{constant_time_eq, Token, REFUSAL_PAUSE};
use crate::control_socket::{Dispatcher, Reply, Request};
use crate::metrics::AdminAction;

/// Largest action body accepted, in bytes.
pub const MAX_BODY: usize = 1024;

/// Actions kept in the log `/stats` shows.
pub const ACTIONS_KEPT: usize = 50;

/// Why an action was refused before it reached the control API.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ActionError {
    /// The listener has no token: actions are off.
    #[error("actions are off: start ktcpvsd with --admin-token-file")]
    Disabled,
    /// Not a `POST`.
    #[error("actions take POST only")]
    Method,
    /// The body is not `application/json`.
    #[error("the body must be application/json")]
    ContentType,
    /// The body is longer than [`MAX_BODY`] or not framed by a length.
    #[error("the body must be sent with Content-Length and be at most {MAX_BODY} bytes")]
    Body,
    /// A cross-site request (`Origin` or `Sec-Fetch-Site`).
    #[error("cross-site request refused")]
    CrossSite,
    /// The CSRF token is missing or wrong.
    #[error("missing or wrong X-CSRF-Token")]
    Csrf,
    /// The bearer token is missing or wrong.
    #[error("missing or wrong Authorization: Bearer token")]
    Unauthorized,
    /// The body is not an action.
    #[error("not an action: {0}")]
    Malformed(String),
}

impl ActionError {
    /// The HTTP status that answers it.
    pub fn status(&self) -> u16 {
        match self {
            ActionError::Disabled => 404,
            ActionError::Method => 405,
            ActionError::ContentType => 415,
            ActionError::Body => 413,
            ActionError::CrossSite | ActionError::Csrf => 403,
            ActionError::Unauthorized => 401,
            ActionError::Malformed(_) => 400,
        }
    }
}

/// One action, as the page sends it (`{"action":"weight",…}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum Action {
    /// Set a server's weight.
    Weight {
        /// The service.
        service: String,
        /// The server, `IP:PORT`.
        server: SocketAddr,
        /// The new weight.
        weight: u32,
    },
    /// Weight 0 (quiesce), remembering the weight it had.
    Drain {
        /// The service.
        service: String,
        /// The server, `IP:PORT`.
        server: SocketAddr,
    },
    /// The weight a drain remembered (1 when none was).
    Enable {
        /// The service.
        service: String,
        /// The server, `IP:PORT`.
        server: SocketAddr,
    },
    /// Start a service.
    Start {
        /// The service.
        service: String,
    },
    /// Stop a service.
    Stop {
        /// The service.
        service: String,
    },
}

/// What the admin listener needs to carry out actions: the daemon's
/// dispatcher and the operator's token.
pub struct Actions {
    dispatcher: Dispatcher,
    token: Token,
    csrf: String,
    log: Mutex<VecDeque<AdminAction>>,
    /// Weights of drained servers, to restore on `enable`.
    drained: Mutex<HashMap<(String, SocketAddr), u32>>,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actions").finish_non_exhaustive()
    }
}

impl Actions {
    /// Actions applied through `dispatcher` (as `tcpvsadm`'s requests
    /// are), for clients presenting `token`. A random CSRF token is drawn
    /// for the life of the process.
    pub fn new(dispatcher: Dispatcher, token: Token) -> Actions {
        Actions {
            dispatcher,
            token,
            csrf: random_hex(16),
            log: Mutex::new(VecDeque::new()),
            drained: Mutex::new(HashMap::new()),
        }
    }

    /// The CSRF token the page carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The actions made so far (the last [`ACTIONS_KEPT`]), oldest first.
    pub fn log(&self) -> Vec<AdminAction> {
        self.log.lock().iter().cloned().collect()
    }

    /// Checks a request's method, headers and body length (everything but
    /// the body's content) against the rules of this module.
    pub fn authorize(
        &self,
        head: &RequestHead<'_>,
        body_len: Option<usize>,
    ) -> Result<(), ActionError> {
        if head.method != "POST" {
            return Err(ActionError::Method);
        }
        let field = |name: &str| {
            head.header(name)
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
        };
        let json = field("content-type").is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err(ActionError::ContentType);
        }
        if !body_len.is_some_and(|n| n <= MAX_BODY) {
            return Err(ActionError::Body);
        }
        if field("sec-fetch-site").is_some_and(|s| s != "same-origin") {
            return Err(ActionError::CrossSite);
        }
        if let Some(origin) = field("origin") {
            let expected = head.host.map(|h| format!("http://{h}"));
            if expected.as_deref() != Some(origin.as_str()) {
                return Err(ActionError::CrossSite);
            }
        }
        if !field("x-csrf-token")
            .is_some_and(|t| constant_time_eq(t.as_bytes(), self.csrf.as_bytes()))
        {
            return Err(ActionError::Csrf);
        }
        let bearer = field("authorization")
            .and_then(|a| a.strip_prefix("Bearer ").map(|t| t.trim().to_string()));
        if !bearer.is_some_and(|t| self.token.matches(&t)) {
            std::thread::sleep(REFUSAL_PAUSE);
            return Err(ActionError::Unauthorized);
        }
        Ok(())
    }

    /// Parses an authorized body and carries the action out; the reply
    /// is the dispatcher's.
    pub fn run(&self, body: &[u8]) -> Result<Reply, ActionError> {
        let action: Action =
            serde_json::from_slice(body).map_err(|e| ActionError::Malformed(e.to_string()))?;
        let request = self.request(&action);
        let reply = self.dispatcher.handle(&request, None);
        self.record(&request, &reply);
        Ok(reply)
    }

    /// The control request an action makes.
    fn request(&self, action: &Action) -> Request {
        let edit = |service: &str, server: SocketAddr, weight: u32| Request::EditServer {
            service: service.to_string(),
            server: Endpoint::from_addr(server),
            weight: Some(weight),
        };
        match action {
            Action::Weight {
                service,
                server,
                weight,
            } => edit(service, *server, *weight),
            Action::Drain { service, server } => {
                // Remembered before the edit, as the weight it had.
                if let Some(w) = self.current_weight(service, *server).filter(|w| *w > 0) {
                    self.drained.lock().insert((service.clone(), *server), w);
                }
                edit(service, *server, 0)
            }
            Action::Enable { service, server } => {
                let kept = self.drained.lock().remove(&(service.clone(), *server));
                let now = self.current_weight(service, *server).unwrap_or(0);
                let weight = kept.unwrap_or(if now > 0 { now } else { 1 });
                edit(service, *server, weight)
            }
            Action::Start { service } => Request::Start {
                service: Some(service.clone()),
            },
            Action::Stop { service } => Request::Stop {
                service: Some(service.clone()),
            },
        }
    }

    /// A server's configured weight now.
    fn current_weight(&self, service: &str, server: SocketAddr) -> Option<u32> {
        let snapshot = self.dispatcher.control().snapshot();
        let service = snapshot.service(service)?;
        service
            .server_entries()
            .iter()
            .find(|e| e.config().addr == server)
            .map(|e| e.config().weight)
    }

    fn record(&self, request: &Request, reply: &Reply) {
        let (ok, message) = match reply {
            Reply::Ok(_) => (true, String::new()),
            Reply::Err { message, .. } => (false, message.clone()),
        };
        let entry = AdminAction {
            unix_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs(),
            request: request.to_string(),
            ok,
            message,
        };
        log::info!(
            "admin listener action: {} ({})",
            entry.request,
            if ok { "done" } else { &entry.message }
        );
        let mut log = self.log.lock();
        if log.len() == ACTIONS_KEPT {
            log.pop_front();
        }
        log.push_back(entry);
    }
}

/// `bytes` random bytes from the operating system, in hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

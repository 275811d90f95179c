//! The scheduler plug-in contract and the registry of schedulers by name.
//!
//! A scheduler has two halves, split by when they run:
//!
//! * [`Scheduler`] runs on the **control path**. Whenever a service changes
//!   (a server added, a weight changed, a rule deleted …) the control API
//!   calls [`Scheduler::build`] with a read-only [`VirtualService`] and gets
//!   back an immutable [`Picker`]. Building may allocate, sort, hash and
//!   precompute as much as it likes, and may refuse the service with a
//!   [`SchedulerError`] (then the change is refused as a whole).
//! * [`Picker`] runs on the **data path**, on every worker thread at once.
//!   [`Picker::pick`] must be cheap: it should allocate nothing and take no
//!   lock. It reads live load through [`RealServer::active_connections`],
//!   which comes from atomics that survive rebuilds.
//!
//! The engine publishes each new picker inside an `arc-swap` snapshot, so a
//! worker always sees one whole, consistent service. When a connect to the
//! picked server fails, the engine calls `pick` again with that server in
//! [`PickRequest::exclude`].
//!
//! This is the user-space counterpart of the original's
//! `register_tcp_vs_scheduler` and its `schedule()` callback; the engine does
//! the connecting and relaying that each original scheduler did itself.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{ControlError, SchedulerError};
use crate::view::{RealServer, VirtualService};

pub use httparse::Header;

/// When a scheduler decides, which tells the engine how much of the stream
/// it must read first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dispatch {
    /// Layer 4: decide on accept, read nothing; the engine relays raw bytes
    /// (`wlc`). [`PickRequest::head`] is `None`.
    Connection,
    /// Decide once per client connection, from its first request head;
    /// every later request on the connection goes to the same server
    /// (`http`, `hhttp`).
    FirstRequest,
    /// Decide for every request; one client connection may reach different
    /// servers request by request, over pooled backend connections
    /// (`phttp`, `chttp`).
    EachRequest,
}

/// A parsed HTTP/1.x request head, as the engine hands it to a picker. The
/// engine has validated it strictly before the picker sees it; nothing here
/// needs re-parsing.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The request target in origin form (path and query), exactly as
    /// sent: this is what rules match. For a request sent in absolute form
    /// (`GET http://host/path HTTP/1.1`) it is the path and query part
    /// (`/path`, or `/` when the URI has no path), which is also what the
    /// real server receives, so a rule matches the same target whatever
    /// form the client chose.
    pub target: &'a str,
    /// The request's host, as the real server receives it: the authority
    /// of an absolute-form target (which replaces `Host`, RFC 9112
    /// §3.2.2), else the `Host` field's value; `None` for an HTTP/1.0
    /// request without either. Read the host here, not from `headers`.
    pub host: Option<&'a str>,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The header fields in the order received.
    pub headers: &'a [Header<'a>],
}

impl<'a> RequestHead<'a> {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The value of the cookie `name` from the `Cookie` header fields, if
    /// the client sent one. Allocates nothing.
    ///
    /// The fields are split as bytes and only the value found is checked
    /// for UTF-8, so another cookie holding non-UTF-8 bytes (which
    /// `obs-text` allows) neither hides this one nor costs a second pass.
    ///
    /// ```
    /// use ktcpvs_core::scheduler::{Header, RequestHead};
    /// let headers = [Header { name: "Cookie", value: b"a=1; KTCPVS_SID=xyz; b=2" }];
    /// let head = RequestHead { method: "GET", target: "/", host: None, version: 1, headers: &headers };
    /// assert_eq!(head.cookie("KTCPVS_SID"), Some("xyz"));
    /// assert_eq!(head.cookie("c"), None);
    /// ```
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        let name = name.as_bytes();
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .flat_map(|h| h.value.split(|&b| b == b';'))
            .find_map(|pair| {
                let eq = pair.iter().position(|&b| b == b'=')?;
                if pair[..eq].trim_ascii() != name {
                    return None;
                }
                let value = std::str::from_utf8(&pair[eq + 1..]).ok()?;
                Some(value.trim().trim_matches('"'))
            })
    }
}

/// Everything a picker gets to decide one connection or request.
#[derive(Debug, Clone, Copy)]
pub struct PickRequest<'a> {
    /// The client's address.
    pub client: SocketAddr,
    /// The request head, for [`Dispatch::FirstRequest`] and
    /// [`Dispatch::EachRequest`] schedulers; `None` for layer 4.
    pub head: Option<&'a RequestHead<'a>>,
    /// Servers (indices) already tried for this request that failed: a
    /// retry must not pick them again.
    pub exclude: &'a [usize],
    /// The server name the client sent in its TLS handshake (SNI), lower
    /// or mixed case as sent; `None` on a plain listener or when the
    /// client sent none. A picker may route on it (one listener, several
    /// sites).
    pub server_name: Option<&'a str>,
}

impl PickRequest<'_> {
    /// Whether server `index` was already tried.
    pub fn is_excluded(&self, index: usize) -> bool {
        self.exclude.contains(&index)
    }
}

/// A picker's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// The chosen server, an index into [`VirtualService::server`].
    pub server: usize,
    /// The rule that matched, if rules were used (for statistics and for
    /// [`Picker::response_header`]).
    pub rule: Option<usize>,
    /// Whether the response must carry the picker's
    /// [`response_header`](Picker::response_header) (for example a
    /// persistence cookie the client does not have yet).
    pub stamp: bool,
}

impl Selection {
    /// A plain selection of `server`, with no rule and no stamp.
    pub fn server(server: usize) -> Self {
        Selection {
            server,
            rule: None,
            stamp: false,
        }
    }
}

/// The data-path half of a scheduler: an immutable decision structure built
/// for one version of one service.
pub trait Picker: Send + Sync {
    /// Chooses a server for a connection or request, or `None` for "no
    /// server" (the engine then relays to the service's `redirect` address,
    /// or answers 503 / closes).
    ///
    /// `service` is the same service the picker was built from (same
    /// servers at the same indices), with live load.
    ///
    /// Called on every worker thread concurrently: it must take no lock and
    /// should allocate nothing. (A regex match allocates its per-thread
    /// cache on a thread's first match; after that, [`Rule::is_match`] and
    /// [`Rule::capture`] allocate nothing.)
    ///
    /// [`Rule::is_match`]: crate::view::Rule::is_match
    /// [`Rule::capture`]: crate::view::Rule::capture
    fn pick(&self, service: &dyn VirtualService, request: &PickRequest<'_>) -> Option<Selection>;

    /// A complete header line (`Name: value\r\n`) that the engine adds to
    /// the response of a request whose selection has `stamp` set.
    /// `backend_sets_cookie` tells whether the backend's own response head
    /// carries `Set-Cookie`, for schedulers that stamp only then. The
    /// default adds nothing.
    fn response_header(&self, selection: &Selection, backend_sets_cookie: bool) -> Option<&[u8]> {
        let _ = (selection, backend_sets_cookie);
        None
    }
}

/// The control-path half of a scheduler: a named factory of pickers.
pub trait Scheduler: Send + Sync {
    /// The name services refer to (`wlc`, `http` …).
    fn name(&self) -> &str;

    /// When this scheduler decides.
    fn dispatch(&self) -> Dispatch;

    /// Builds the picker for one version of `service`, or refuses it (for
    /// example a hashing scheduler given a rule without `match N`). Called
    /// on the control path whenever the service changes.
    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError>;

    /// One line describing the scheduler, for `tcpvsadm -h` and listings.
    fn description(&self) -> &str {
        ""
    }
}

impl fmt::Debug for dyn Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("name", &self.name())
            .field("dispatch", &self.dispatch())
            .finish()
    }
}

/// Schedulers by name. Control path only: lookups happen when a service is
/// added or edited, never per request.
#[derive(Default)]
pub struct SchedulerRegistry {
    by_name: RwLock<BTreeMap<String, Arc<dyn Scheduler>>>,
}

impl fmt::Debug for SchedulerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl SchedulerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a scheduler under its [`name`](Scheduler::name). A name
    /// can be registered once; registering it again is refused.
    pub fn register(&self, scheduler: Arc<dyn Scheduler>) -> Result<(), ControlError> {
        let name = scheduler.name().to_string();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ControlError::Invalid {
                what: "scheduler name",
                value: name,
                reason: "must be non-empty ASCII letters, digits, '_' or '-'".to_string(),
            });
        }
        let mut map = self.by_name.write();
        if map.contains_key(&name) {
            return Err(ControlError::Invalid {
                what: "scheduler name",
                value: name,
                reason: "a scheduler of that name is already registered".to_string(),
            });
        }
        log::info!("[{name}] scheduler registered.");
        map.insert(name, scheduler);
        Ok(())
    }

    /// The scheduler registered as `name`.
    pub fn get(&self, name: &str) -> Result<Arc<dyn Scheduler>, ControlError> {
        self.by_name.read().get(name).cloned().ok_or_else(|| {
            ControlError::SchedulerNotFound(name.to_string(), self.names().join(", "))
        })
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.read().keys().cloned().collect()
    }
}

/// Weighted least-connection over `candidates`: the available server with
/// the lowest active/weight, compared by cross-multiplication as IPVS does
/// (no division, no floats). Ties go to the earliest candidate. Servers that
/// are excluded, quiesced (weight 0) or unhealthy are skipped. A helper for
/// schedulers; allocates nothing.
///
/// ```
/// # use ktcpvs_core::scheduler::least_connection;
/// # use ktcpvs_core::view::RealServer;
/// struct S(u32, u64);
/// impl RealServer for S {
///     fn addr(&self) -> std::net::SocketAddr { ([127, 0, 0, 1], 1).into() }
///     fn weight(&self) -> u32 { self.0 }
///     fn active_connections(&self) -> u64 { self.1 }
///     fn is_healthy(&self) -> bool { true }
/// }
/// let servers = [S(1, 3), S(2, 4), S(0, 0)];
/// // 3/1 vs 4/2: the second server is less loaded; the third is quiesced.
/// let pick = least_connection((0..3).map(|i| (i, &servers[i] as &dyn RealServer)), &[]);
/// assert_eq!(pick, Some(1));
/// ```
pub fn least_connection<'s>(
    candidates: impl Iterator<Item = (usize, &'s dyn RealServer)>,
    exclude: &[usize],
) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None; // (index, active, weight)
    for (index, server) in candidates {
        if exclude.contains(&index) || !server.is_available() {
            continue;
        }
        let weight = u64::from(server.weight());
        let active = server.active_connections();
        match best {
            None => best = Some((index, active, weight)),
            Some((_, b_active, b_weight)) => {
                // active/weight < b_active/b_weight  ⇔  active*b_weight < b_active*weight
                if u128::from(active) * u128::from(b_weight)
                    < u128::from(b_active) * u128::from(weight)
                {
                    best = Some((index, active, weight));
                }
            }
        }
    }
    best.map(|(index, _, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(headers: &'a [Header<'a>]) -> RequestHead<'a> {
        RequestHead {
            method: "GET",
            target: "/",
            host: None,
            version: 1,
            headers,
        }
    }

    #[test]
    fn cookie_is_found_beside_a_cookie_that_is_not_utf8() {
        // Regression: the whole field used to be skipped when any byte of it
        // was not UTF-8, so an unrelated Latin-1 cookie lost the client its
        // persistence cookie.
        let headers = [Header {
            name: "Cookie",
            value: b"lang=fran\xe7ais; KTCPVS_SID=\"xyz\" ; b=2",
        }];
        assert_eq!(head(&headers).cookie("KTCPVS_SID"), Some("xyz"));
        assert_eq!(head(&headers).cookie("lang"), None);
    }

    #[test]
    fn cookie_reads_every_cookie_field_and_takes_the_first_match() {
        let headers = [
            Header {
                name: "cookie",
                value: b"a=1",
            },
            Header {
                name: "Host",
                value: b"x",
            },
            Header {
                name: "COOKIE",
                value: b" b = 2 ;a=3",
            },
        ];
        let head = head(&headers);
        assert_eq!(head.cookie("a"), Some("1"));
        assert_eq!(head.cookie("b"), Some("2"));
        assert_eq!(head.cookie("Host"), None);
    }
}

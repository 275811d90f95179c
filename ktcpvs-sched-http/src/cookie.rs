//! The `chttp` scheduler: cookie persistence without a session table.
//!
//! A client without a valid persistence cookie is scheduled by the rules
//! with weighted least-connection, and its response is stamped with
//! `Set-Cookie: KTCPVS_SID=<value>; Path=/; HttpOnly; SameSite=Lax` (and
//! `; Secure` on a TLS listener). The
//! value is the first 128 bits, in lowercase hex, of
//!
//! ```text
//! HMAC-SHA256(key, "ktcpvs-sid-v1" 0x00 family-tag ip-octets port)
//! ```
//!
//! of the chosen server's address. It names the server without revealing
//! its address, a client cannot compute the value of a server it has not
//! been sent to without the key, and every ktcpvs instance configured with
//! the same key (option `cookie_key`) issues and honours the same values.
//! Nothing grows with the number of clients: all per-server values and
//! header lines are computed in [`Scheduler::build`]. Validating a cookie
//! looks its value up by a hash keyed with a per-picker random key and
//! compares it with the value found in constant time, so its cost does not
//! grow with the number of servers and its timing says nothing about the
//! valid values.
//!
//! The original (`tcp_vs_chttp.c`) kept a global table of sessions keyed by
//! a guessable counter, shared between services and reset on reload.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use ktcpvs_core::error::SchedulerError;
use ktcpvs_core::scheduler::{Dispatch, PickRequest, Picker, Scheduler, Selection};
use ktcpvs_core::view::VirtualService;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::hash::address_bytes;
use crate::rules::{check_rules, least_connection_in, matching_rule, refuse};

/// The default cookie name, as in the original.
pub const DEFAULT_COOKIE_NAME: &str = "KTCPVS_SID";

/// Service option naming the persistence cookie (default
/// [`DEFAULT_COOKIE_NAME`]); an HTTP token of at most 64 characters.
pub const OPTION_COOKIE_NAME: &str = "cookie_name";

/// Service option holding the secret key of the cookie values; any
/// non-empty text. Without it the key is derived from the service name
/// (see [`Chttp`]).
pub const OPTION_COOKIE_KEY: &str = "cookie_key";

/// Service option choosing when the cookie is inserted: `always` (the
/// default) or `backend`; see [`CookieInsert`].
pub const OPTION_COOKIE_INSERT: &str = "cookie_insert";

/// The attributes of the persistence cookie: the whole site, not readable
/// by scripts (`HttpOnly`), and not sent on cross-site subrequests
/// (`SameSite=Lax`). On a TLS listener [`SECURE_ATTRIBUTE`] follows.
pub const COOKIE_ATTRIBUTES: &str = "Path=/; HttpOnly; SameSite=Lax";

/// Added to [`COOKIE_ATTRIBUTES`] on a service clients reach over TLS
/// ([`VirtualService::is_tls`]): the browser never sends the cookie over
/// plain HTTP.
pub const SECURE_ATTRIBUTE: &str = "; Secure";

/// The length of a cookie value: 128 bits in lowercase hex.
pub const COOKIE_VALUE_LEN: usize = 32;

const MAX_COOKIE_NAME_LEN: usize = 64;

/// When a chttp picker adds its `Set-Cookie` line to a stamped response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieInsert {
    /// Whenever the client had no valid cookie for the server it reached
    /// (`cookie_insert = "always"`, the default).
    #[default]
    Always,
    /// Only when, in addition, the backend's response sets a cookie of its
    /// own (`cookie_insert = "backend"`): the original's behaviour, which
    /// keeps clients of stateless pages cookie-free.
    Backend,
}

impl CookieInsert {
    /// Parses the option value (`always` or `backend`, ASCII
    /// case-insensitive).
    pub fn parse(value: &str) -> Option<CookieInsert> {
        if value.eq_ignore_ascii_case("always") {
            Some(CookieInsert::Always)
        } else if value.eq_ignore_ascii_case("backend") {
            Some(CookieInsert::Backend)
        } else {
            None
        }
    }
}

/// `chttp`: cookie persistence over the rules of `http`, one decision per
/// request.
///
/// For each request, the first matching rule is found as in `http` (no
/// match: "no server"). Then:
///
/// 1. If the request carries a valid persistence cookie naming a server of
///    that rule which is available (weight > 0, healthy, not excluded by a
///    failed connect), the request goes there, unstamped.
/// 2. Otherwise weighted least-connection picks among the rule's servers,
///    and the selection is stamped so that the response carries the new
///    server's cookie, unless the cookie is valid but names a server of
///    *another* rule: then the client keeps it, so that persistence for
///    that other rule survives requests for this one (with a single
///    catch-all rule, the usual set-up, this case cannot happen).
///
/// A forged, malformed or stale cookie (a server since deleted, or a value
/// made with another key) is ignored. Options, read in `build` (an invalid
/// value refuses the service):
///
/// | option | default | meaning |
/// |---|---|---|
/// | `cookie_name` | `KTCPVS_SID` | the cookie's name (an HTTP token) |
/// | `cookie_key` | derived from the service name | the HMAC key of the values |
/// | `cookie_insert` | `always` | `always`, or `backend`: only when the backend sets a cookie too |
///
/// The default key is SHA-256 of `"ktcpvs chttp default cookie key v1"`,
/// a zero byte and the service name. Instances serving a service of the
/// same name therefore agree out of the box, but anyone who knows the name
/// and a server address can compute a value: **set `cookie_key` to a
/// secret** shared by the instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Chttp;

impl Chttp {
    /// The name services use to select this scheduler.
    pub const NAME: &'static str = "chttp";
}

impl Scheduler for Chttp {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::EachRequest
    }

    fn build(&self, service: &dyn VirtualService) -> Result<Box<dyn Picker>, SchedulerError> {
        check_rules(Self::NAME, service)?;
        Ok(Box::new(ChttpPicker::new(service)?))
    }

    fn description(&self) -> &str {
        "cookie persistence: a keyed-hash cookie names the server; rules and weighted least-connection otherwise"
    }
}

/// The picker built by [`Chttp`]: the cookie name and insertion mode, and
/// every server's cookie value and `Set-Cookie` line, precomputed. Two
/// pickers are equal when they issue and honour the same cookies (the
/// random key of their lookup table does not count).
#[derive(Debug, Clone)]
pub struct ChttpPicker {
    cookie_name: Box<str>,
    insert: CookieInsert,
    /// `values[i]` is server `i`'s cookie value (big-endian bytes); no two
    /// are equal.
    values: Vec<[u8; 16]>,
    /// `lines[i]` is the complete `Set-Cookie` header line for server `i`.
    lines: Vec<Box<[u8]>>,
    /// The lookup key: SipHash with random keys, drawn for this picker.
    tag_key: RandomState,
    /// `(tag of values[i], i)` for every server, sorted by tag.
    by_tag: Box<[(u64, usize)]>,
}

impl PartialEq for ChttpPicker {
    fn eq(&self, other: &ChttpPicker) -> bool {
        (&self.cookie_name, self.insert, &self.values, &self.lines)
            == (
                &other.cookie_name,
                other.insert,
                &other.values,
                &other.lines,
            )
    }
}

impl Eq for ChttpPicker {}

impl ChttpPicker {
    /// Reads the options of `service` and precomputes every server's
    /// cookie value and header line.
    ///
    /// # Errors
    /// An invalid `cookie_name`, `cookie_key` or `cookie_insert`.
    pub fn new(service: &dyn VirtualService) -> Result<ChttpPicker, SchedulerError> {
        let refuse = |reason: String| refuse(Chttp::NAME, service, reason);
        let cookie_name = service
            .option(OPTION_COOKIE_NAME)
            .unwrap_or(DEFAULT_COOKIE_NAME);
        if !is_cookie_name(cookie_name) {
            return Err(refuse(format!(
                "option {OPTION_COOKIE_NAME} = \"{cookie_name}\": a cookie name must be 1..={MAX_COOKIE_NAME_LEN} \
                 HTTP token characters (letters, digits and !#$%&'*+-.^_`|~)"
            )));
        }
        let insert = match service.option(OPTION_COOKIE_INSERT) {
            None => CookieInsert::default(),
            Some(v) => CookieInsert::parse(v).ok_or_else(|| {
                refuse(format!(
                    "option {OPTION_COOKIE_INSERT} = \"{v}\": must be \"always\" or \"backend\""
                ))
            })?,
        };
        let key: Vec<u8> = match service.option(OPTION_COOKIE_KEY) {
            Some("") => {
                return Err(refuse(format!(
                    "option {OPTION_COOKIE_KEY} must not be empty"
                )))
            }
            Some(k) => k.as_bytes().to_vec(),
            None => default_key(service.name()).to_vec(),
        };
        let values: Vec<u128> = (0..service.server_count())
            .map(|i| cookie_value(&key, service.server(i).addr()))
            .collect();
        let secure = if service.is_tls() {
            SECURE_ATTRIBUTE
        } else {
            ""
        };
        let lines = values
            .iter()
            .map(|v| {
                format!("Set-Cookie: {cookie_name}={v:032x}; {COOKIE_ATTRIBUTES}{secure}\r\n")
                    .into_bytes()
                    .into_boxed_slice()
            })
            .collect();
        let mut sorted = values.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(refuse(
                "two servers have the same cookie value (the same address?)".to_string(),
            ));
        }
        let values: Vec<[u8; 16]> = values.iter().map(|v| v.to_be_bytes()).collect();
        let tag_key = RandomState::new();
        let mut by_tag: Box<[(u64, usize)]> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (tag_key.hash_one(v), i))
            .collect();
        by_tag.sort_unstable();
        Ok(ChttpPicker {
            cookie_name: cookie_name.into(),
            insert,
            values,
            lines,
            tag_key,
            by_tag,
        })
    }

    /// The name of the persistence cookie.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// When the cookie is inserted.
    pub fn insert(&self) -> CookieInsert {
        self.insert
    }

    /// The `Set-Cookie` line for server `index`, if the service has it.
    pub fn cookie_line(&self, index: usize) -> Option<&[u8]> {
        self.lines.get(index).map(|l| &**l)
    }

    /// The server a cookie value names, or `None` for a malformed,
    /// forged or stale value. Allocates nothing.
    ///
    /// A well-formed value is looked up by its tag, a SipHash under this
    /// picker's random key, in the table of the servers' tags (a binary
    /// search); the values whose tag is equal, almost always none or one,
    /// are then compared with it in constant time (`subtle`). Where the
    /// search stops depends only on tags, which without the key say
    /// nothing about the valid values, so how long a check takes tells a
    /// client nothing about how close a guess came; and it costs
    /// logarithmically in the number of servers, not linearly. (Whether a
    /// value is well-formed, 32 lowercase hex digits, is no secret.)
    pub fn server_for(&self, value: &str) -> Option<usize> {
        let value = parse_value(value)?.to_be_bytes();
        let tag = self.tag_key.hash_one(value);
        find_by_tag(&self.by_tag, &self.values, tag, &value)
    }
}

impl Picker for ChttpPicker {
    fn pick(&self, service: &dyn VirtualService, request: &PickRequest<'_>) -> Option<Selection> {
        let (position, rule) = matching_rule(service, request)?;
        let pinned = request
            .head
            .and_then(|head| head.cookie(&self.cookie_name))
            .and_then(|value| self.server_for(value))
            .filter(|&i| i < service.server_count());
        let stamp = match pinned {
            Some(i) if rule.servers().contains(&i) => {
                if service.server(i).is_available() && !request.is_excluded(i) {
                    return Some(Selection {
                        server: i,
                        rule: Some(position),
                        stamp: false,
                    });
                }
                true // its server is gone for now: re-pin
            }
            Some(_) => false, // pinned for another rule: keep that pin
            None => true,
        };
        let server = least_connection_in(service, rule, request.exclude)?;
        Some(Selection {
            server,
            rule: Some(position),
            stamp,
        })
    }

    fn response_header(&self, selection: &Selection, backend_sets_cookie: bool) -> Option<&[u8]> {
        if !selection.stamp || (self.insert == CookieInsert::Backend && !backend_sets_cookie) {
            return None;
        }
        self.cookie_line(selection.server)
    }
}

/// The server whose value is `value`, among the entries of `by_tag` (sorted
/// by tag) whose tag is `tag`; each of those is compared in constant time.
fn find_by_tag(
    by_tag: &[(u64, usize)],
    values: &[[u8; 16]],
    tag: u64,
    value: &[u8; 16],
) -> Option<usize> {
    let start = by_tag.partition_point(|&(t, _)| t < tag);
    let mut found = 0u64;
    for &(_, i) in by_tag[start..].iter().take_while(|&&(t, _)| t == tag) {
        let Some(v) = values.get(i) else { continue };
        // Indices are below the server count, far below u64::MAX.
        let candidate = i as u64 + 1;
        found = u64::conditional_select(&found, &candidate, v.ct_eq(value));
    }
    usize::try_from(found).ok()?.checked_sub(1)
}

/// The key used when the service sets no `cookie_key`: SHA-256 of a fixed
/// label, a zero byte and the service name.
pub fn default_key(service_name: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(b"ktcpvs chttp default cookie key v1\0");
    digest.update(service_name.as_bytes());
    digest.finalize().into()
}

/// The cookie value of the server at `addr` under `key`: the first 128
/// bits of HMAC-SHA256 over a version label and the address bytes.
pub fn cookie_value(key: &[u8], addr: SocketAddr) -> u128 {
    // HMAC pads or hashes its key to the block size, so `new_from_slice`
    // accepts a key of any length, empty included, and never fails.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(b"ktcpvs-sid-v1\0");
    mac.update(address_bytes(addr, &mut [0; 19]));
    let tag = mac.finalize().into_bytes();
    let mut first = [0u8; 16];
    first.copy_from_slice(&tag[..16]);
    u128::from_be_bytes(first)
}

/// Parses a cookie value: exactly [`COOKIE_VALUE_LEN`] lowercase hex
/// digits, nothing else.
fn parse_value(value: &str) -> Option<u128> {
    if value.len() != COOKIE_VALUE_LEN {
        return None;
    }
    value.bytes().try_fold(0u128, |acc, b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u128::from(digit))
    })
}

/// Whether `name` is a valid cookie name: 1..=64 RFC 9110 token characters.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COOKIE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::find_by_tag;

    /// Tags that collide (64-bit SipHash outputs rarely do, but may) are
    /// all compared: the value decides, wherever it sits in the run.
    #[test]
    fn every_entry_of_a_colliding_tag_is_compared() {
        let values = [[1u8; 16], [2; 16], [3; 16], [4; 16]];
        let by_tag = [(5, 0), (7, 1), (7, 2), (7, 3)];
        assert_eq!(find_by_tag(&by_tag, &values, 5, &[1; 16]), Some(0));
        for i in 1..4 {
            assert_eq!(find_by_tag(&by_tag, &values, 7, &values[i]), Some(i));
        }
        // The right value under the wrong tag, a tag no server has, a
        // tag past the end: nothing.
        assert_eq!(find_by_tag(&by_tag, &values, 5, &[2; 16]), None);
        assert_eq!(find_by_tag(&by_tag, &values, 6, &[2; 16]), None);
        assert_eq!(find_by_tag(&by_tag, &values, 9, &[4; 16]), None);
        assert_eq!(find_by_tag(&[], &[], 0, &[0; 16]), None);
    }
}

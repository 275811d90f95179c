//! An HTTP/2 request's header list checked and written as the HTTP/1.1
//! head a real server receives, without the downgrade smuggling that
//! PortSwigger documented ("HTTP/2: The Sequel is Always Worse").
//!
//! Refused (RFC 9113 §8.1.2, §8.2, §8.3.1): a name with an upper-case
//! letter or a character outside the token set; a value holding CR, LF,
//! NUL or another control byte, or starting or ending with a blank; a pseudo-header after a
//! regular field, unknown, repeated or missing (`:method`, `:scheme`,
//! `:path`); a response pseudo-header; `CONNECT`; a `:path` that is empty,
//! not origin-form (`*` only for `OPTIONS`) or holds a blank or control
//! byte; an authority that is not a host and port; connection-specific fields
//! (`connection`, `keep-alive`, `proxy-connection`, `transfer-encoding`,
//! `upgrade`) and a `te` other than `trailers`; a `host` that disagrees
//! with `:authority`, or neither; a `content-length` that is not digits,
//! or disagrees with another, or with the body's length when known.
//!
//! The HTTP/1.1 head is built from the checked parts only: the request
//! line from `:method` and `:path`, `Host` from `:authority` (else
//! `host`), the regular fields as received (several `cookie` fields
//! joined with `"; "`, §8.2.3), and framing of its own: `Content-Length`
//! when the length is known, `Transfer-Encoding: chunked` when a body of
//! unknown length follows, none when there is no body. Allocation-free:
//! the caller's buffer is written, nothing else.

use std::io::Write as _;

use crate::http::headers::{first_bad_value_byte, is_tchar};
use crate::http::{is_host_delimiter, Method};

/// One field of an HTTP/2 header list, as HPACK decoded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name (pseudo-headers start with `:`).
    pub name: &'a [u8],
    /// The value.
    pub value: &'a [u8],
}

/// What is known of the request's body when its head is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// The HEADERS frame ended the stream: there is no body.
    None,
    /// The body's length is known (all of it arrived, or the declared
    /// `content-length` will be checked against the DATA frames).
    Known(u64),
    /// DATA frames follow and their total is not known yet.
    Unknown,
}

/// Why a header list cannot be downgraded (the stream is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DowngradeError {
    /// A name has an upper-case letter or a character outside the token set.
    #[error("malformed field name")]
    BadName,
    /// A value has CR, LF or NUL, or leading or trailing blanks.
    #[error("malformed field value")]
    BadValue,
    /// A pseudo-header after a regular field, unknown, repeated, or a
    /// response pseudo-header.
    #[error("malformed pseudo-header")]
    BadPseudo,
    /// `:method`, `:scheme` or `:path` is missing.
    #[error("missing pseudo-header")]
    MissingPseudo,
    /// `CONNECT` (not proxied).
    #[error("CONNECT is not served")]
    Connect,
    /// `:path` empty or not origin-form (`*` only with `OPTIONS`).
    #[error("malformed :path")]
    BadPath,
    /// A connection-specific field, or `te` other than `trailers`.
    #[error("connection-specific field")]
    ConnectionSpecific,
    /// `host` disagrees with `:authority`, or neither is present.
    #[error("missing or conflicting authority")]
    Authority,
    /// A `content-length` that is not digits, disagrees with another, or
    /// with the body.
    #[error("malformed or conflicting content-length")]
    ContentLength,
}

/// The facts of a downgraded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downgraded {
    /// The `content-length` the client declared, if any.
    pub declared_length: Option<u64>,
    /// Whether the written head frames the body with chunked encoding.
    pub chunked: bool,
    /// The request's method (what the response's framing depends on).
    pub method: Method,
}

/// The pseudo-headers of a request, each at most once.
#[derive(Default)]
struct Pseudo<'a> {
    method: Option<&'a [u8]>,
    scheme: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
}

/// Fields no HTTP/2 request may carry (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

/// Checks `fields` and appends the HTTP/1.1 head of the request to `out`;
/// on an error, `out` is left as it was.
///
/// ```
/// use ktcpvs_net::http2::downgrade::{downgrade, Body, Field};
/// let f = |n: &'static str, v: &'static str| Field { name: n.as_bytes(), value: v.as_bytes() };
/// let mut out = Vec::new();
/// let fields = [f(":method", "POST"), f(":scheme", "https"), f(":authority", "a.test"),
///               f(":path", "/up"), f("cookie", "a=1"), f("cookie", "b=2")];
/// downgrade(&fields, Body::Known(3), &mut out).unwrap();
/// assert_eq!(out, b"POST /up HTTP/1.1\r\nHost: a.test\r\ncookie: a=1; b=2\r\nContent-Length: 3\r\n\r\n");
/// let smuggle = [f(":method", "GET"), f(":scheme", "https"), f(":authority", "a.test"),
///                f(":path", "/"), f("foo", "bar\r\nTransfer-Encoding: chunked")];
/// assert!(downgrade(&smuggle, Body::None, &mut out).is_err());
/// ```
pub fn downgrade(
    fields: &[Field<'_>],
    body: Body,
    out: &mut Vec<u8>,
) -> Result<Downgraded, DowngradeError> {
    let start = out.len();
    let result = write_head(fields, body, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_head(
    fields: &[Field<'_>],
    body: Body,
    out: &mut Vec<u8>,
) -> Result<Downgraded, DowngradeError> {
    let (pseudo, regular) = split_pseudo(fields)?;
    let method = pseudo.method.ok_or(DowngradeError::MissingPseudo)?;
    let path = pseudo.path.ok_or(DowngradeError::MissingPseudo)?;
    pseudo.scheme.ok_or(DowngradeError::MissingPseudo)?;
    if method == b"CONNECT" {
        return Err(DowngradeError::Connect);
    }
    // Visible ASCII only: a blank or control byte would split the
    // request line. No fragment: `:path` is the path and query (found by
    // the h2_downgrade fuzz target: the HTTP/1.1 parser refused `/#up`).
    if !path.iter().all(|b| (0x21..=0x7e).contains(b) && *b != b'#') {
        return Err(DowngradeError::BadPath);
    }
    let origin_form = path.first() == Some(&b'/');
    let asterisk = path == b"*" && method == b"OPTIONS";
    if !(origin_form || asterisk) || !is_token(method) {
        return Err(DowngradeError::BadPath);
    }
    let host = authority(pseudo.authority, regular)?;
    let declared = declared_length(regular)?;
    if let (Some(d), Body::Known(n)) = (declared, body) {
        if d != n {
            return Err(DowngradeError::ContentLength);
        }
    }
    if declared.is_some_and(|d| d > 0) && body == Body::None {
        return Err(DowngradeError::ContentLength);
    }
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    write_fields(regular, out);
    let chunked = match (body, declared) {
        (Body::None, _) => false,
        (Body::Known(n), _) | (Body::Unknown, Some(n)) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
            false
        }
        (Body::Unknown, None) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            true
        }
    };
    out.extend_from_slice(b"\r\n");
    Ok(Downgraded {
        declared_length: declared,
        chunked,
        // A token, so ASCII.
        method: std::str::from_utf8(method).map_or(Method::Other, Method::from_token),
    })
}

/// The pseudo-headers and the regular fields, every field checked.
fn split_pseudo<'f, 'a>(
    fields: &'f [Field<'a>],
) -> Result<(Pseudo<'a>, &'f [Field<'a>]), DowngradeError> {
    let mut pseudo = Pseudo::default();
    let regular_at = fields
        .iter()
        .position(|f| f.name.first() != Some(&b':'))
        .unwrap_or(fields.len());
    for f in &fields[..regular_at] {
        check_value(f.value)?;
        let slot = match f.name {
            b":method" => &mut pseudo.method,
            b":scheme" => &mut pseudo.scheme,
            b":path" => &mut pseudo.path,
            b":authority" => &mut pseudo.authority,
            _ => return Err(DowngradeError::BadPseudo),
        };
        if slot.replace(f.value).is_some() {
            return Err(DowngradeError::BadPseudo);
        }
    }
    let regular = &fields[regular_at..];
    for f in regular {
        if f.name.first() == Some(&b':') {
            return Err(DowngradeError::BadPseudo);
        }
        if !is_lower_token(f.name) {
            return Err(DowngradeError::BadName);
        }
        check_value(f.value)?;
        if CONNECTION_SPECIFIC.contains(&f.name) || (f.name == b"te" && f.value != b"trailers") {
            return Err(DowngradeError::ConnectionSpecific);
        }
    }
    Ok((pseudo, regular))
}

/// The host: `:authority`, which a `host` field must agree with, else the
/// `host` field.
fn authority<'a>(
    pseudo: Option<&'a [u8]>,
    regular: &[Field<'a>],
) -> Result<&'a [u8], DowngradeError> {
    let mut hosts = regular
        .iter()
        .filter(|f| f.name == b"host")
        .map(|f| f.value);
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(DowngradeError::Authority);
    }
    let chosen = match (pseudo, host) {
        (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => return Err(DowngradeError::Authority),
        (Some(a), _) => a,
        (None, Some(h)) => h,
        (None, None) => return Err(DowngradeError::Authority),
    };
    // The host the HTTP/1.1 parser accepts (the same test): visible ASCII
    // without delimiters, so no userinfo, path or list (found by the
    // h2_downgrade fuzz target: `a,test`).
    let host_byte = |b: &u8| b.is_ascii_graphic() && !is_host_delimiter(b);
    if chosen.is_empty() || !chosen.iter().all(host_byte) {
        return Err(DowngradeError::Authority);
    }
    Ok(chosen)
}

/// The declared `content-length`: every field, and every comma-separated
/// element, the same run of digits.
fn declared_length(regular: &[Field<'_>]) -> Result<Option<u64>, DowngradeError> {
    let mut declared: Option<u64> = None;
    for f in regular.iter().filter(|f| f.name == b"content-length") {
        for part in f.value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(DowngradeError::ContentLength);
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            match declared {
                Some(d) if d != n => return Err(DowngradeError::ContentLength),
                _ => declared = Some(n),
            }
        }
    }
    Ok(declared)
}

/// Writes the regular fields but `host` and `content-length` (the proxy
/// writes those), joining `cookie` fields into one.
fn write_fields(regular: &[Field<'_>], out: &mut Vec<u8>) {
    let mut cookie_written = false;
    for f in regular {
        match f.name {
            b"host" | b"content-length" => continue,
            b"cookie" => {
                if cookie_written {
                    continue;
                }
                cookie_written = true;
                out.extend_from_slice(b"cookie: ");
                for (i, c) in regular.iter().filter(|c| c.name == b"cookie").enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b"; ");
                    }
                    out.extend_from_slice(c.value);
                }
                out.extend_from_slice(b"\r\n");
            }
            name => {
                out.extend_from_slice(name);
                out.extend_from_slice(b": ");
                out.extend_from_slice(f.value);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

fn is_lower_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b) && !b.is_ascii_uppercase())
}

/// No CR, LF or NUL anywhere (RFC 9113 §8.2.1), nor any other control
/// byte but HTAB (HTTP/1.1's field-value grammar, which the real server
/// parses); no blank at either end.
fn check_value(v: &[u8]) -> Result<(), DowngradeError> {
    let bad_byte = first_bad_value_byte(v).is_some();
    let padded = matches!(v.first(), Some(b' ' | b'\t')) || matches!(v.last(), Some(b' ' | b'\t'));
    if bad_byte || padded {
        Err(DowngradeError::BadValue)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! Head writers: the request head sent to a real server, the response head
//! sent back to the client, and the engine's own error responses.
//!
//! A head is rewritten only when it must be (see
//! [`can_forward_request_verbatim`]); then the writer removes the
//! hop-by-hop fields and those named in `Connection`, adds what the proxy
//! owes (`X-Forwarded-For`, `Forwarded`, `Connection`), and appends into a
//! caller-owned buffer, so a reused buffer means no allocation.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use httparse::Header;
use ktcpvs_core::condition::{EditOp, EditSide, HeaderEdit};
use ktcpvs_core::RequestHead;

use super::headers::is_connection_specific;
use super::request::{RequestInfo, TargetForm};
use super::response::{ResponseHead, ResponseInfo};

/// The interim response the engine may send itself to an
/// `Expect: 100-continue` request.
pub const CONTINUE_RESPONSE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the proxy adds to a forwarded head.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardOptions<'a> {
    /// The client's address: add `X-Forwarded-For: <ip>` (appended to the
    /// values of any received `X-Forwarded-For`, merged into one field) and
    /// `Forwarded: for=<ip>` (likewise). Requests only.
    pub forwarded_for: Option<SocketAddr>,
    /// The client's connection runs TLS. With `forwarded_for`, the
    /// request says so: `X-Forwarded-Proto: https` (`http` otherwise) in
    /// place of any received one, and `proto=https` in its `Forwarded`
    /// element.
    pub client_tls: bool,
    /// Send `Connection: close`.
    pub close: bool,
    /// Send `Connection: keep-alive`: what an HTTP/1.0 peer needs to keep
    /// the connection open (HTTP/1.1 keeps it by default). Ignored with
    /// `close`.
    pub keep_alive: bool,
    /// One complete extra header line (e.g. `Set-Cookie: KTCPVS_SID=1;
    /// Path=/`), written just before the empty line; a missing CRLF is
    /// added.
    pub extra: Option<&'a [u8]>,
    /// A rule's header edits: those of the request side apply to a request
    /// head, those of the response side to a response head (fields named
    /// by `set` or `del` are left out, then `set` and `add` fields are
    /// written before the proxy's own).
    pub edits: &'a [HeaderEdit],
}

impl ForwardOptions<'_> {
    fn adds_nothing(&self) -> bool {
        self.forwarded_for.is_none()
            && !self.close
            && !self.keep_alive
            && self.extra.is_none()
            && !self.edits_on(EditSide::Request)
    }

    /// Whether some edit applies to `side`.
    fn edits_on(&self, side: EditSide) -> bool {
        self.edits.iter().any(|e| e.side == side)
    }

    /// Whether an edit of `side` replaces or removes the field `name`.
    fn edits_away(&self, side: EditSide, name: &str) -> bool {
        self.edits
            .iter()
            .any(|e| e.side == side && e.op != EditOp::Add && e.name.eq_ignore_ascii_case(name))
    }

    /// Writes the `set` and `add` fields of `side`.
    fn write_edits(&self, side: EditSide, out: &mut Vec<u8>) {
        for e in self
            .edits
            .iter()
            .filter(|e| e.side == side && e.op != EditOp::Del)
        {
            write_field(out, e.name.as_bytes(), e.value.as_bytes());
        }
    }
}

/// Whether the received head (`buf[..info.head_len]`) may be forwarded
/// byte for byte instead of calling [`write_request_head`]: nothing in it
/// is connection-specific and nothing is to be added.
pub fn can_forward_request_verbatim(info: &RequestInfo, opts: &ForwardOptions<'_>) -> bool {
    !info.needs_rewrite && opts.adds_nothing()
}

/// Whether the received response head may be forwarded byte for byte
/// instead of calling [`write_response_head`]: nothing in it is
/// connection-specific, or its only connection-specific field is
/// `Connection: keep-alive` and the client connection stays open (so the
/// field says what the proxy would say itself); and nothing is to be added.
/// With `opts.keep_alive` the head must already hold that one
/// `Connection: keep-alive` line.
pub fn can_forward_response_verbatim(info: &ResponseInfo, opts: &ForwardOptions<'_>) -> bool {
    let connection_ok = if opts.keep_alive {
        info.keep_alive_only && info.keep_alive_line.is_some()
    } else {
        !info.needs_rewrite || info.keep_alive_only
    };
    connection_ok && !opts.close && opts.extra.is_none() && !opts.edits_on(EditSide::Response)
}

/// The field line [`close_splice`] puts into a received response head.
pub const CONNECTION_CLOSE_LINE: &[u8] = b"Connection: close\r\n";

/// Where to cut a received response head so that it goes to the client as
/// `head[..at]`, [`CONNECTION_CLOSE_LINE`], `head[at + skip..]`: the same
/// fields [`write_response_head`] would write, without copying the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseSplice {
    /// Bytes of the received head sent before the `Connection: close` line.
    pub at: usize,
    /// Received bytes left out after them (the replaced line; 0 to insert).
    pub skip: usize,
}

/// Whether the response head can be sent as slices of the received bytes
/// with `Connection: close` put in, and where: `opts` asks for `close` and
/// nothing else, the response is not a `101`, and the head either holds no
/// connection-specific field (the line is inserted before the empty line)
/// or holds just one `Connection: keep-alive` field (the line replaces it,
/// [`ResponseInfo::keep_alive_line`]). Otherwise `None`: forward verbatim
/// or call [`write_response_head`].
///
/// ```
/// use ktcpvs_net::http::{close_splice, parse_response, ForwardOptions, Limits, Method, CONNECTION_CLOSE_LINE};
/// let mut slots = [httparse::EMPTY_HEADER; 100];
/// let buf = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
/// let (info, _) = parse_response(buf, &mut slots, Method::Get, &Limits::default()).unwrap().unwrap();
/// let opts = ForwardOptions { close: true, ..Default::default() };
/// let cut = close_splice(&info, &opts).unwrap();
/// let sent = [&buf[..cut.at], CONNECTION_CLOSE_LINE, &buf[cut.at + cut.skip..]].concat();
/// assert_eq!(sent, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
/// ```
pub fn close_splice(info: &ResponseInfo, opts: &ForwardOptions<'_>) -> Option<CloseSplice> {
    if !opts.close || opts.extra.is_some() || info.upgrade {
        return None;
    }
    if !info.needs_rewrite {
        return Some(CloseSplice {
            at: info.head_len.checked_sub(2)?,
            skip: 0,
        });
    }
    let line = info.keep_alive_line.filter(|_| info.keep_alive_only)?;
    Some(CloseSplice {
        at: line.start,
        skip: line.end - line.start,
    })
}

/// How a received response head leaves for the client: the one decision
/// [`plan_response_head`] makes from the head's facts and what the proxy
/// must add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponsePlan {
    /// Byte for byte ([`can_forward_response_verbatim`]).
    Verbatim,
    /// As slices of the received bytes around [`CONNECTION_CLOSE_LINE`]
    /// ([`close_splice`]).
    Splice(CloseSplice),
    /// Rewritten by [`write_response_head`].
    Rewrite,
}

/// Chooses how the response head goes out: verbatim when nothing changes,
/// spliced when only `Connection: close` must be put in, rewritten
/// otherwise.
///
/// ```
/// use ktcpvs_net::http::{parse_response, plan_response_head, ForwardOptions, Limits, Method, ResponsePlan};
/// let mut slots = [httparse::EMPTY_HEADER; 100];
/// let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
/// let (info, _) = parse_response(buf, &mut slots, Method::Get, &Limits::default()).unwrap().unwrap();
/// assert_eq!(plan_response_head(&info, &ForwardOptions::default()), ResponsePlan::Verbatim);
/// let close = ForwardOptions { close: true, ..Default::default() };
/// assert!(matches!(plan_response_head(&info, &close), ResponsePlan::Splice(_)));
/// let stamp = ForwardOptions { extra: Some(b"X-A: 1"), ..Default::default() };
/// assert_eq!(plan_response_head(&info, &stamp), ResponsePlan::Rewrite);
/// ```
pub fn plan_response_head(info: &ResponseInfo, opts: &ForwardOptions<'_>) -> ResponsePlan {
    if opts.edits_on(EditSide::Response) {
        ResponsePlan::Rewrite
    } else if can_forward_response_verbatim(info, opts) {
        ResponsePlan::Verbatim
    } else if let Some(cut) = close_splice(info, opts) {
        ResponsePlan::Splice(cut)
    } else {
        ResponsePlan::Rewrite
    }
}

/// Appends to `out` the request head to send to a real server.
///
/// * The request line as received (method, target, version); an
///   absolute-form target in origin form (`head.target`), followed by
///   `Host: <authority>` in place of the received `Host`.
/// * Every field as received (`Name: value`), except hop-by-hop fields
///   (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
///   `Upgrade`) and those named in `Connection`. For an upgrade request
///   (`info.upgrade`) `Upgrade` is kept and `Connection: upgrade` sent.
///   `Transfer-Encoding`, `Content-Length` and `Host` are kept as they
///   are, even when `Connection` names them: the proxy framed and routed
///   the request by them ([`is_framing_or_routing`](super::headers::is_framing_or_routing)).
/// * With `opts.forwarded_for`, received `X-Forwarded-For` and `Forwarded`
///   fields are merged, each into one field ending with the client (and,
///   in `Forwarded`, the protocol it used); `X-Forwarded-Proto` says
///   `https` or `http` (`opts.client_tls`), replacing any received one: a
///   client cannot claim a protocol it did not use.
/// * `Connection: close` with `opts.close` (combined with `upgrade`), else
///   `Connection: keep-alive` with `opts.keep_alive` (an HTTP/1.0 request
///   whose connection to the real server should stay open).
/// * `opts.extra`, then the empty line.
///
/// ```
/// use ktcpvs_net::http::{parse_request, write_request_head, ForwardOptions, Limits};
/// let mut slots = [httparse::EMPTY_HEADER; 100];
/// let buf = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n";
/// let (info, head) = parse_request(buf, &mut slots, &Limits::default()).unwrap().unwrap();
/// let mut out = Vec::new();
/// let opts = ForwardOptions { forwarded_for: Some("10.0.0.7:5000".parse().unwrap()), ..Default::default() };
/// write_request_head(&head, &info, &opts, &mut out);
/// assert_eq!(out, b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.7\r\nForwarded: for=10.0.0.7;proto=http\r\nX-Forwarded-Proto: http\r\n\r\n");
/// ```
pub fn write_request_head(
    head: &RequestHead<'_>,
    info: &RequestInfo,
    opts: &ForwardOptions<'_>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(version_text(head.version));
    out.extend_from_slice(b"\r\n");
    // An absolute-form target went out in origin form: its authority is
    // the Host (RFC 9112 §3.2.2), in place of any received one.
    let authority = match (info.target_form, head.host) {
        (TargetForm::Absolute, Some(host)) => Some(host),
        _ => None,
    };
    if let Some(host) = authority {
        write_field(out, b"Host", host.as_bytes());
    }
    let replaced = |name: &str| {
        (opts.forwarded_for.is_some() && is_forwarding_field(name))
            || (authority.is_some() && name.eq_ignore_ascii_case("host"))
    };
    for h in head.headers {
        if keeps(h.name, head.headers, info.upgrade)
            && !replaced(h.name)
            && !opts.edits_away(EditSide::Request, h.name)
        {
            write_field(out, h.name.as_bytes(), h.value);
        }
    }
    opts.write_edits(EditSide::Request, out);
    if let Some(client) = opts.forwarded_for {
        let ip = client.ip();
        write_merged(out, "X-Forwarded-For", head.headers, |out| {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{ip}");
        });
        let proto = if opts.client_tls { "https" } else { "http" };
        write_merged(out, "Forwarded", head.headers, |out| match ip {
            IpAddr::V4(v4) => {
                let _ = write!(out, "for={v4};proto={proto}");
            }
            IpAddr::V6(v6) => {
                let _ = write!(out, "for=\"[{v6}]\";proto={proto}");
            }
        });
        write_field(out, b"X-Forwarded-Proto", proto.as_bytes());
    }
    write_connection(out, info.upgrade, opts.close, opts.keep_alive);
    finish(out, opts.extra);
}

/// Appends to `out` the response head to send to the client.
///
/// * The status line with the server's version, status and reason.
/// * Every field except hop-by-hop fields and those named in `Connection`;
///   for a 101, `Upgrade` is kept and `Connection: upgrade` sent.
/// * `Connection: close` with `opts.close` (ignored for a 101), else
///   `Connection: keep-alive` with `opts.keep_alive` (an HTTP/1.0 client
///   kept alive).
/// * `opts.extra`, then the empty line. `opts.forwarded_for` is ignored.
///
/// ```
/// use ktcpvs_net::http::{parse_response, write_response_head, ForwardOptions, Limits, Method};
/// let mut slots = [httparse::EMPTY_HEADER; 100];
/// let buf = b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n";
/// let (info, head) = parse_response(buf, &mut slots, Method::Get, &Limits::default()).unwrap().unwrap();
/// let mut out = Vec::new();
/// let opts = ForwardOptions { close: true, extra: Some(b"X-Server: r1"), ..Default::default() };
/// write_response_head(&head, &info, &opts, &mut out);
/// assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\nX-Server: r1\r\n\r\n");
/// ```
pub fn write_response_head(
    head: &ResponseHead<'_>,
    info: &ResponseInfo,
    opts: &ForwardOptions<'_>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&version_text(head.version)[1..]);
    let _ = write!(out, " {:03} ", head.status);
    out.extend_from_slice(head.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in head.headers {
        if keeps(h.name, head.headers, info.upgrade) && !opts.edits_away(EditSide::Response, h.name)
        {
            write_field(out, h.name.as_bytes(), h.value);
        }
    }
    opts.write_edits(EditSide::Response, out);
    write_connection(
        out,
        info.upgrade,
        opts.close && !info.upgrade,
        opts.keep_alive,
    );
    finish(out, opts.extra);
}

/// The reason phrase of `status` (RFC 9110 §15); for a code it does not
/// name, its class's (`"Redirect"`, `"Error"`, …).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        429 => "Too Many Requests",
        451 => "Unavailable For Legal Reasons",
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => match status / 100 {
            2 => "Success",
            3 => "Redirect",
            _ => "Error",
        },
    }
}

/// Appends a complete response the proxy writes itself: status line with
/// reason, `Content-Type`, `Content-Length`, `Connection: close`, and the
/// body unless `head_only` (the answer to a `HEAD`).
///
/// ```
/// use ktcpvs_net::http::write_fixed_response;
/// let mut out = Vec::new();
/// write_fixed_response(403, "text/plain", b"no", false, &mut out);
/// assert_eq!(out, b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno");
/// ```
pub fn write_fixed_response(
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    out: &mut Vec<u8>,
) {
    let _ = write!(
        out,
        "HTTP/1.1 {status:03} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    );
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// Appends a complete error response: status line with reason,
/// `Content-Type: text/plain`, `Content-Length`, `Connection: close`, and
/// a one-line body (`502 Bad Gateway`). Meant for 400, 408, 413, 414, 431,
/// 500, 501, 502, 503 and 504.
///
/// ```
/// let mut out = Vec::new();
/// ktcpvs_net::http::write_error_response(503, &mut out);
/// assert!(out.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
/// assert!(out.ends_with(b"\r\n\r\n503 Service Unavailable\n"));
/// ```
pub fn write_error_response(status: u16, out: &mut Vec<u8>) {
    let reason = reason_phrase(status);
    // Body: "NNN " + reason + "\n".
    let body_len = 3 + 1 + reason.len() + 1;
    let _ = write!(
        out,
        "HTTP/1.1 {status:03} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n{status:03} {reason}\n"
    );
}

/// `" HTTP/1.x"` for a minor version.
fn version_text(version: u8) -> &'static [u8] {
    if version == 0 {
        b" HTTP/1.0"
    } else {
        b" HTTP/1.1"
    }
}

/// Whether a field is forwarded: not connection-specific, except `Upgrade`
/// on an upgrade.
fn keeps(name: &str, headers: &[Header<'_>], upgrade: bool) -> bool {
    (upgrade && name.eq_ignore_ascii_case("upgrade")) || !is_connection_specific(name, headers)
}

fn is_forwarding_field(name: &str) -> bool {
    name.eq_ignore_ascii_case("x-forwarded-for")
        || name.eq_ignore_ascii_case("forwarded")
        || name.eq_ignore_ascii_case("x-forwarded-proto")
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes `name: <received values>, <own>` as one field.
fn write_merged(
    out: &mut Vec<u8>,
    name: &str,
    headers: &[Header<'_>],
    own: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)) {
        if !h.value.is_empty() {
            out.extend_from_slice(h.value);
            out.extend_from_slice(b", ");
        }
    }
    own(out);
    out.extend_from_slice(b"\r\n");
}

fn write_connection(out: &mut Vec<u8>, upgrade: bool, close: bool, keep_alive: bool) {
    match (upgrade, close, keep_alive) {
        (true, true, _) => out.extend_from_slice(b"Connection: upgrade, close\r\n"),
        (true, false, _) => out.extend_from_slice(b"Connection: upgrade\r\n"),
        (false, true, _) => out.extend_from_slice(b"Connection: close\r\n"),
        (false, false, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (false, false, false) => {}
    }
}

fn finish(out: &mut Vec<u8>, extra: Option<&[u8]>) {
    if let Some(line) = extra {
        out.extend_from_slice(line);
        if !line.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

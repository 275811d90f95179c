//! Request heads: strict validation against request smuggling (RFC 9112)
//! and the framing facts the engine needs to forward one request.
//!
//! [`parse_request`] runs in three steps over bytes the engine buffered:
//!
//! 1. the head scanner finds the end of the head, enforcing the size limits
//!    and rejecting bare LF line ends, which `httparse` would accept;
//! 2. `httparse` tokenises the request line and the fields into the
//!    caller's slots (no allocation);
//! 3. the rules `httparse` leaves to the caller are applied here: the
//!    request-target's bytes and form, `Host`, and the message-body length
//!    rules of RFC 9112 §6.
//!
//! Every refusal is a [`RequestError`] that names the rule broken and
//! carries the status to answer with ([`RequestError::status`]); the engine
//! then closes the connection and forwards nothing of the request.

use std::mem::MaybeUninit;

use httparse::Header;
use ktcpvs_core::RequestHead;

use super::body::Framing;
use super::headers::{
    self, content_length, has_connection_specific, transfer_coding, ConnectionOptions,
    ContentLength, TransferCoding,
};
use super::limits::Limits;
use super::scan::{scan_head, Scan, ScanError, ScanLimits};

/// A request method. Any token is accepted as a method; those the engine
/// treats specially (or reports in statistics) have their own variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: the response never has a body.
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`: the only method whose target may be `*`.
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// `CONNECT`: refused by [`parse_request`] (a reverse proxy does not
    /// open tunnels); listed so responses to it can still be framed.
    Connect,
    /// Any other token (`PROPFIND`, `MKCOL`, …).
    Other,
}

impl Method {
    /// The method named by `token` (methods are case-sensitive).
    ///
    /// ```
    /// use ktcpvs_net::http::Method;
    /// assert_eq!(Method::from_token("HEAD"), Method::Head);
    /// assert_eq!(Method::from_token("head"), Method::Other);
    /// ```
    pub fn from_token(token: &str) -> Self {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            "CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// Whether a request with this method may be sent again after a failed
    /// attempt (RFC 9110 §9.2.2: GET, HEAD, PUT, DELETE, OPTIONS, TRACE).
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// The form of a request target (RFC 9112 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query`: what a client sends to an origin server.
    Origin,
    /// `http://authority/path?query`: what a client sends to a proxy. The
    /// engine routes on its path (the [`RequestHead::target`] it hands
    /// schedulers) and forwards the request in origin form with the
    /// authority as `Host`.
    Absolute,
    /// `*`, with `OPTIONS` only.
    Asterisk,
}

/// The framing facts of a valid request head.
#[derive(Clone, Copy, Debug)]
pub struct RequestInfo {
    /// Bytes of the head, from the start of the buffer through the final
    /// CRLF CRLF (empty lines before the request line included). The body,
    /// or the next pipelined request, starts here.
    pub head_len: usize,
    /// The method.
    pub method: Method,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The body: [`Framing::None`], [`Framing::Length`] (possibly 0, from
    /// an explicit `Content-Length: 0`) or [`Framing::Chunked`]; never
    /// [`Framing::CloseDelimited`].
    pub framing: Framing,
    /// Whether the client wants the connection kept after this exchange:
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive` (and no `close`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (it is ignored on
    /// HTTP/1.0, as RFC 9110 §10.1.1 asks).
    pub expect_continue: bool,
    /// An HTTP/1.1 upgrade request: `Connection: upgrade` and an `Upgrade`
    /// field. If the server answers 101, the connection becomes a tunnel.
    pub upgrade: bool,
    /// The form the target was sent in. An absolute-form target is
    /// forwarded in origin form, with its authority as `Host`.
    pub target_form: TargetForm,
    /// The head cannot be forwarded byte for byte: it holds a hop-by-hop
    /// field (or one named in `Connection`), empty lines before the
    /// request line, or an absolute-form target. Use
    /// [`write_request_head`](super::write_request_head).
    pub needs_rewrite: bool,
}

/// Why a request head is refused. The `Display` text says which rule was
/// broken and with what; callers may rely on the variants and on
/// [`status`](Self::status), not on the wording.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The request line is longer than the limit (414).
    #[error("request line longer than {limit} bytes")]
    RequestLineTooLong {
        /// [`Limits::max_request_line`].
        limit: usize,
    },
    /// The head is larger than the limit (431).
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge {
        /// [`Limits::max_header_size`].
        limit: usize,
    },
    /// The head has more fields than the limit, or than the slots lent to
    /// the parser (431).
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The number of fields allowed.
        limit: usize,
    },
    /// A line ends in a bare LF (400).
    #[error("bare LF line end at byte {offset} of the head")]
    BareLf {
        /// Offset of the LF in the buffer.
        offset: usize,
    },
    /// The version is not `HTTP/1.0` or `HTTP/1.1` (HTTP/0.9's `GET /`
    /// without version included) (400).
    #[error("unsupported or malformed HTTP version")]
    UnsupportedVersion,
    /// The head breaks the HTTP/1.1 syntax where `httparse` checks it: a
    /// method that is not a token, a field name that is not a token (empty,
    /// or with whitespace before the colon, or an obsolete folded line), a
    /// control character in a field value, a stray CR (400).
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    /// The request target holds a byte other than visible ASCII (a control
    /// character, a space, a byte above 0x7E) (400).
    #[error("request target holds the forbidden byte {byte:#04x} at offset {offset}")]
    TargetByte {
        /// The offending byte.
        byte: u8,
        /// Its offset in the target.
        offset: usize,
    },
    /// The request target holds a `#` fragment (400).
    #[error("request target holds a fragment ('#')")]
    TargetFragment,
    /// The request target is neither origin form (`/…`), absolute form
    /// (`scheme:…`) nor `*` with `OPTIONS` (400).
    #[error("request target is not in origin, absolute or asterisk form")]
    TargetForm,
    /// An absolute-form target whose scheme is not `http` or `https`
    /// (400).
    #[error("absolute-form target with a scheme other than http or https")]
    TargetScheme,
    /// An absolute-form target whose authority is empty, carries user
    /// information (`user@`) or a byte `Host` may not hold (400).
    #[error("absolute-form target with an empty or malformed authority")]
    TargetAuthority,
    /// An absolute-form target with a query but no path
    /// (`http://host?q`), which has no origin form to forward (400).
    #[error("absolute-form target with a query but no path")]
    TargetWithoutPath,
    /// `CONNECT`: a reverse proxy does not open tunnels (400).
    #[error("CONNECT is not supported by a reverse proxy")]
    ConnectNotSupported,
    /// An HTTP/1.1 request without `Host` (400).
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    /// More than one `Host` field (400).
    #[error("{count} Host fields")]
    MultipleHost {
        /// How many there were.
        count: usize,
    },
    /// A `Host` value holding whitespace, `,`, `/`, `?`, `#`, `@` or a
    /// byte other than visible ASCII (400).
    #[error("malformed Host value")]
    InvalidHost,
    /// Both `Content-Length` and `Transfer-Encoding` (400).
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    /// A `Content-Length` that is not one decimal number fitting 64 bits
    /// (400).
    #[error("malformed Content-Length")]
    InvalidContentLength,
    /// `Content-Length` fields with different values (400).
    #[error("conflicting Content-Length values {first} and {second}")]
    ConflictingContentLength {
        /// The first value.
        first: u64,
        /// The first value that differs from it.
        second: u64,
    },
    /// A `Transfer-Encoding` other than exactly `chunked` (400).
    #[error("Transfer-Encoding other than exactly 'chunked'")]
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` on an HTTP/1.0 request (400).
    #[error("Transfer-Encoding on an HTTP/1.0 request")]
    TransferEncodingOnHttp10,
}

impl RequestError {
    /// The status to answer with: 414, 431 or 400.
    ///
    /// ```
    /// use ktcpvs_net::http::RequestError;
    /// assert_eq!(RequestError::MissingHost.status(), 400);
    /// assert_eq!(RequestError::HeadTooLarge { limit: 10 }.status(), 431);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            RequestError::RequestLineTooLong { .. } => 414,
            RequestError::HeadTooLarge { .. } | RequestError::TooManyHeaders { .. } => 431,
            RequestError::BareLf { .. }
            | RequestError::UnsupportedVersion
            | RequestError::Malformed(_)
            | RequestError::TargetByte { .. }
            | RequestError::TargetFragment
            | RequestError::TargetForm
            | RequestError::TargetScheme
            | RequestError::TargetAuthority
            | RequestError::TargetWithoutPath
            | RequestError::ConnectNotSupported
            | RequestError::MissingHost
            | RequestError::MultipleHost { .. }
            | RequestError::InvalidHost
            | RequestError::ContentLengthWithTransferEncoding
            | RequestError::InvalidContentLength
            | RequestError::ConflictingContentLength { .. }
            | RequestError::UnsupportedTransferEncoding
            | RequestError::TransferEncodingOnHttp10 => 400,
        }
    }

    fn from_scan(e: ScanError, limits: &Limits) -> Self {
        match e {
            ScanError::FirstLineTooLong => RequestError::RequestLineTooLong {
                limit: limits.max_request_line,
            },
            ScanError::HeadTooLarge => RequestError::HeadTooLarge {
                limit: limits.max_header_size,
            },
            ScanError::TooManyFields => RequestError::TooManyHeaders {
                limit: limits.max_headers,
            },
            ScanError::BareLf(offset) => RequestError::BareLf { offset },
        }
    }

    fn from_httparse(e: httparse::Error, slots: usize) -> Self {
        match e {
            httparse::Error::Version => RequestError::UnsupportedVersion,
            httparse::Error::TooManyHeaders => RequestError::TooManyHeaders { limit: slots },
            other => RequestError::Malformed(other),
        }
    }
}

/// Parses and validates the request head at the start of `buf`.
///
/// * `Ok(Some((info, head)))`: a valid head of `info.head_len` bytes;
///   `head` borrows `buf` and `headers` and is what the scheduler sees.
/// * `Ok(None)`: the head is not complete yet; call again with more bytes.
///   Errors visible in a partial head (a limit already exceeded, a bare LF,
///   a forbidden byte, a bad request line) are reported at once.
/// * `Err(e)`: answer `e.status()` and close.
///
/// `headers` must have at least [`Limits::max_headers`] slots
/// (`[httparse::EMPTY_HEADER; N]`); fewer slots lower the field limit.
/// Nothing is allocated.
///
/// Rules applied beyond `httparse` (RFC 9112 §2.2, §3, §6.1, §6.3):
/// bare LF anywhere → 400; the target must be visible ASCII without `#`, in
/// origin, absolute or asterisk (`OPTIONS` only) form; `CONNECT` → 400;
/// exactly one `Host` on HTTP/1.1, at most one on HTTP/1.0; framing:
///
/// > If a message is received with both a Transfer-Encoding and a
/// > Content-Length header field, [...] ought to be handled as an error.
///
/// → 400. `Transfer-Encoding` must be exactly `chunked`, alone (other
/// codings before it are refused too, since a backend may not know them;
/// `chunked, chunked` is refused), and is refused on HTTP/1.0:
///
/// > A server or client that receives an HTTP/1.0 message containing a
/// > Transfer-Encoding header field MUST treat the message as if the
/// > framing is faulty.
///
/// > If a message is received without Transfer-Encoding and with an
/// > invalid Content-Length header field, then the message framing is
/// > invalid and the recipient MUST treat it as an unrecoverable error.
///
/// Each `Content-Length` field must hold one `1*DIGIT` number; repeated
/// fields with the same number are accepted, a comma list (`5, 5`) is not.
///
/// ```
/// use ktcpvs_net::http::{parse_request, Framing, Limits, Method};
/// let mut slots = [httparse::EMPTY_HEADER; 100];
/// let buf = b"POST /upload HTTP/1.1\r\nHost: example\r\nContent-Length: 3\r\n\r\nabc";
/// let (info, head) = parse_request(buf, &mut slots, &Limits::default()).unwrap().unwrap();
/// assert_eq!((info.method, info.framing), (Method::Post, Framing::Length(3)));
/// assert_eq!(&buf[info.head_len..], b"abc");
/// assert_eq!(head.target, "/upload");
/// assert!(parse_request(&buf[..20], &mut slots, &Limits::default()).unwrap().is_none());
/// ```
pub fn parse_request<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    limits: &Limits,
) -> Result<Option<(RequestInfo, RequestHead<'h>)>, RequestError> {
    // SAFETY: `MaybeUninit<Header>` has the layout of `Header`, and the
    // tokeniser only ever writes complete `Header` values into the slots
    // (httparse's own `Request::parse` makes this same cast), so every slot
    // stays initialised.
    let slots = unsafe { &mut *(headers as *mut [Header<'b>] as *mut [MaybeUninit<Header<'b>>]) };
    parse_request_uninit(buf, slots, limits)
}

/// [`parse_request`] with header slots that need not be initialised, so a
/// caller can lend a large array without paying to fill it on every call
/// (`[const { MaybeUninit::uninit() }; N]` costs nothing).
///
/// ```
/// use std::mem::MaybeUninit;
/// use ktcpvs_net::http::{parse_request_uninit, Limits};
/// let mut slots = [const { MaybeUninit::uninit() }; 100];
/// let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
/// let (info, head) = parse_request_uninit(buf, &mut slots, &Limits::default()).unwrap().unwrap();
/// assert_eq!((info.head_len, head.headers.len()), (buf.len(), 1));
/// ```
pub fn parse_request_uninit<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<Header<'b>>],
    limits: &Limits,
) -> Result<Option<(RequestInfo, RequestHead<'h>)>, RequestError> {
    let scan_limits = ScanLimits {
        first_line: limits.max_request_line,
        head: limits.max_header_size,
        fields: limits.max_headers,
    };
    let slots = headers.len();
    let scan = scan_head(buf, scan_limits).map_err(|e| RequestError::from_scan(e, limits))?;
    let (head_len, leading) = match scan {
        Scan::Partial => {
            check_partial(buf, headers)?;
            return Ok(None);
        }
        Scan::Complete { head_len, leading } => (head_len, leading),
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(&buf[..head_len], headers) {
        Ok(httparse::Status::Complete(n)) if n == head_len => {}
        // The scanner found the empty line, so httparse must too.
        Ok(_) => return Err(RequestError::Malformed(httparse::Error::NewLine)),
        Err(e) => return Err(RequestError::from_httparse(e, slots)),
    }
    let httparse::Request {
        method,
        path,
        version,
        headers,
    } = req;
    let (Some(method_str), Some(target), Some(version)) = (method, path, version) else {
        return Err(RequestError::Malformed(httparse::Error::Token));
    };
    let (method, target_form) = check_request_line(method_str, target)?;
    let (target, authority) = match target_form {
        TargetForm::Absolute => {
            let (authority, path) = split_absolute(target)?;
            (path, Some(authority))
        }
        TargetForm::Origin | TargetForm::Asterisk => (target, None),
    };
    let headers: &'h [Header<'b>] = headers;
    let host = check_host(headers, version)?;
    let framing = request_framing(headers, version)?;
    let connection = ConnectionOptions::of(headers);
    let keep_alive = !connection.close && (version == 1 || connection.keep_alive);
    let expect_continue = version == 1
        && headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("expect")
                && headers::trim_ows(h.value).eq_ignore_ascii_case(b"100-continue")
        });
    let upgrade = version == 1 && connection.upgrade && headers::count(headers, "upgrade") > 0;
    let info = RequestInfo {
        head_len,
        method,
        version,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
        target_form,
        needs_rewrite: leading > 0
            || target_form == TargetForm::Absolute
            || has_connection_specific(headers),
    };
    let head = RequestHead {
        method: method_str,
        target,
        host: authority.or(host),
        version,
        headers,
    };
    Ok(Some((info, head)))
}

/// Reports errors already visible in an incomplete head.
fn check_partial<'b>(
    buf: &'b [u8],
    headers: &mut [MaybeUninit<Header<'b>>],
) -> Result<(), RequestError> {
    let slots = headers.len();
    let mut req = httparse::Request::new(&mut []);
    req.parse_with_uninit_headers(buf, headers)
        .map_err(|e| RequestError::from_httparse(e, slots))?;
    if let (Some(method), Some(target)) = (req.method, req.path) {
        check_request_line(method, target)?;
    }
    Ok(())
}

/// Applies the method and request-target rules.
fn check_request_line(method: &str, target: &str) -> Result<(Method, TargetForm), RequestError> {
    let method = Method::from_token(method);
    if method == Method::Connect {
        return Err(RequestError::ConnectNotSupported);
    }
    for (offset, byte) in target.bytes().enumerate() {
        if byte == b'#' {
            return Err(RequestError::TargetFragment);
        }
        if !(b'!'..=b'~').contains(&byte) {
            return Err(RequestError::TargetByte { byte, offset });
        }
    }
    let form = if target == "*" {
        (method == Method::Options).then_some(TargetForm::Asterisk)
    } else if target.starts_with('/') {
        Some(TargetForm::Origin)
    } else if is_absolute_form(target) {
        Some(TargetForm::Absolute)
    } else {
        None
    };
    form.map(|f| (method, f)).ok_or(RequestError::TargetForm)
}

/// `scheme ":" …` with `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_absolute_form(target: &str) -> bool {
    let Some((scheme, _)) = target.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Splits an absolute-form target (`is_absolute_form`) into its authority
/// and its origin-form part: `http://a:80/p?q` → (`a:80`, `/p?q`), and
/// `http://a` → (`a`, `/`). Only `http` and `https` URIs with a
/// non-empty authority free of user information are accepted (RFC 9110
/// §4.2: a sender must not put userinfo in an http URI).
fn split_absolute(target: &str) -> Result<(&str, &str), RequestError> {
    let (scheme, rest) = target.split_once(':').ok_or(RequestError::TargetForm)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(RequestError::TargetScheme);
    }
    let rest = rest
        .strip_prefix("//")
        .ok_or(RequestError::TargetAuthority)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.bytes().any(|b| is_host_delimiter(&b)) {
        return Err(RequestError::TargetAuthority);
    }
    match path.as_bytes().first() {
        None => Ok((authority, "/")),
        Some(b'/') => Ok((authority, path)),
        Some(_) => Err(RequestError::TargetWithoutPath),
    }
}

/// Bytes a host (a `Host` value or an authority) may not hold, so that two
/// hops cannot read different authorities: whitespace, `,`, `/`, `?`,
/// `#` and `@` (user information).
pub(crate) fn is_host_delimiter(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b',' | b'/' | b'?' | b'#' | b'@')
}

/// One `Host` (required on HTTP/1.1), holding no delimiter that could make
/// two hops read different authorities; its value, if present.
fn check_host<'a>(headers: &[Header<'a>], version: u8) -> Result<Option<&'a str>, RequestError> {
    let mut hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    match (hosts.next(), hosts.count()) {
        (None, _) if version == 1 => Err(RequestError::MissingHost),
        (None, _) => Ok(None),
        (Some(host), 0) => {
            let value = headers::trim_ows(host.value);
            // A host is ASCII (RFC 3986 `reg-name` percent-encodes the rest).
            if value
                .iter()
                .any(|b| is_host_delimiter(b) || !b.is_ascii_graphic())
            {
                return Err(RequestError::InvalidHost);
            }
            std::str::from_utf8(value)
                .map(Some)
                .map_err(|_| RequestError::InvalidHost)
        }
        (Some(_), more) => Err(RequestError::MultipleHost { count: more + 1 }),
    }
}

/// The message-body length of a request (RFC 9112 §6.3, strictly).
fn request_framing(headers: &[Header<'_>], version: u8) -> Result<Framing, RequestError> {
    let te = transfer_coding(headers);
    let cl = content_length(headers);
    if te != TransferCoding::Absent {
        if version == 0 {
            return Err(RequestError::TransferEncodingOnHttp10);
        }
        if cl != ContentLength::Absent {
            return Err(RequestError::ContentLengthWithTransferEncoding);
        }
        return match te {
            TransferCoding::ChunkedOnly => Ok(Framing::Chunked),
            _ => Err(RequestError::UnsupportedTransferEncoding),
        };
    }
    match cl {
        ContentLength::Absent => Ok(Framing::None),
        ContentLength::Value(n) => Ok(Framing::Length(n)),
        ContentLength::Malformed => Err(RequestError::InvalidContentLength),
        ContentLength::Conflicting(first, second) => {
            Err(RequestError::ConflictingContentLength { first, second })
        }
    }
}

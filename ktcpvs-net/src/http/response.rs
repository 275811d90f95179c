//! Response heads from real servers: validation and the body framing they
//! imply given the request they answer (RFC 9112 §6.3).
//!
//! Any malformation is a [`ResponseError`], and the engine answers the
//! client 502 (or cuts it, if part of the response was already sent).

use std::mem::MaybeUninit;

use httparse::Header;

use super::body::Framing;
use super::headers::{
    self, classify, content_length, transfer_coding, ConnectionOptions, ContentLength, FieldName,
    TransferCoding,
};
use super::limits::Limits;
use super::request::Method;
use super::scan::{scan_head, Scan, ScanError, ScanLimits};

/// The framing facts of a valid response head.
#[derive(Clone, Copy, Debug)]
pub struct ResponseInfo {
    /// Bytes of the head, through the final CRLF CRLF.
    pub head_len: usize,
    /// The status code (100–999).
    pub status: u16,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The body: [`Framing::None`] for a `HEAD` request and 1xx, 204, 304;
    /// [`Framing::Chunked`] when `chunked` is the final transfer coding;
    /// [`Framing::Length`] from `Content-Length`; otherwise
    /// [`Framing::CloseDelimited`].
    pub framing: Framing,
    /// Whether the server keeps the connection open after this response:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`; never for a close-delimited body or a 101.
    pub keep_alive: bool,
    /// A `Set-Cookie` or `Set-Cookie2` field is present.
    pub sets_cookie: bool,
    /// A 1xx response other than 101: the final response follows on the
    /// same connection, after this head.
    pub interim: bool,
    /// 101 Switching Protocols: after this head both directions are a
    /// tunnel.
    pub upgrade: bool,
    /// The head holds a hop-by-hop field (or empty lines before the status
    /// line), so it cannot be forwarded byte for byte.
    pub needs_rewrite: bool,
    /// The only hop-by-hop field is `Connection: keep-alive` (nothing
    /// before the status line): to a client whose connection stays open
    /// the head says what the proxy would say itself, so it may still be
    /// forwarded byte for byte (see
    /// [`can_forward_response_verbatim`](super::can_forward_response_verbatim)).
    pub keep_alive_only: bool,
    /// With [`keep_alive_only`](Self::keep_alive_only) and exactly one
    /// `Connection` field: where that field's line sits in the buffer, so
    /// the head can be sent with the line replaced instead of rewritten
    /// (see [`close_splice`](super::close_splice)).
    pub keep_alive_line: Option<FieldLine>,
}

/// Where one field line sits in the parsed buffer: `buf[start..end]`, from
/// the first byte of its name through its CRLF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldLine {
    /// Offset of the first byte of the field name.
    pub start: usize,
    /// Offset just past the line's LF.
    pub end: usize,
}

/// A parsed response head, borrowing the buffer and the header slots.
#[derive(Clone, Copy, Debug)]
pub struct ResponseHead<'a> {
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The status code.
    pub status: u16,
    /// The reason phrase (empty if absent or not UTF-8).
    pub reason: &'a str,
    /// The header fields in the order received.
    pub headers: &'a [Header<'a>],
}

/// Why a response head is refused; the engine answers 502. Callers may
/// rely on the variants, not on the `Display` wording.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// The head is larger than [`Limits::max_header_size`].
    #[error("response head larger than {limit} bytes")]
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// More fields than [`Limits::max_headers`] or than the slots lent.
    #[error("more than {limit} header fields in response")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// A line ends in a bare LF.
    #[error("bare LF line end at byte {offset} of the response head")]
    BareLf {
        /// Offset of the LF in the buffer.
        offset: usize,
    },
    /// The version is not `HTTP/1.0` or `HTTP/1.1`.
    #[error("unsupported or malformed HTTP version in response")]
    UnsupportedVersion,
    /// The status line or a field breaks the grammar.
    #[error("malformed response head: {0}")]
    Malformed(httparse::Error),
    /// A status code below 100.
    #[error("invalid status code {status}")]
    InvalidStatus {
        /// The code.
        status: u16,
    },
    /// Both `Content-Length` and `Transfer-Encoding`.
    #[error("both Content-Length and Transfer-Encoding in response")]
    ContentLengthWithTransferEncoding,
    /// A `Content-Length` that is not one decimal number fitting 64 bits.
    #[error("malformed Content-Length in response")]
    InvalidContentLength,
    /// `Content-Length` fields with different values.
    #[error("conflicting Content-Length values {first} and {second} in response")]
    ConflictingContentLength {
        /// The first value.
        first: u64,
        /// The first value that differs from it.
        second: u64,
    },
    /// `chunked` listed twice, or before another coding.
    #[error("chunked transfer coding repeated or not final")]
    ChunkedMisplaced,
    /// `Transfer-Encoding` on an HTTP/1.0 response (faulty framing, RFC
    /// 9112 §6.1).
    #[error("Transfer-Encoding on an HTTP/1.0 response")]
    TransferEncodingOnHttp10,
    /// A `Connection` field names `Content-Length` or `Transfer-Encoding`:
    /// a hop that honours it would drop the framing of the body the proxy
    /// forwards, so the response is refused rather than sent unframed.
    #[error("Connection names the framing field {field} in response")]
    ConnectionNamesFraming {
        /// Which field: `Content-Length` or `Transfer-Encoding`.
        field: &'static str,
    },
}

impl ResponseError {
    fn from_scan(e: ScanError, limits: &Limits) -> Self {
        match e {
            ScanError::FirstLineTooLong | ScanError::HeadTooLarge => ResponseError::HeadTooLarge {
                limit: limits.max_header_size,
            },
            ScanError::TooManyFields => ResponseError::TooManyHeaders {
                limit: limits.max_headers,
            },
            ScanError::BareLf(offset) => ResponseError::BareLf { offset },
        }
    }

    fn from_httparse(e: httparse::Error, slots: usize) -> Self {
        match e {
            httparse::Error::Version => ResponseError::UnsupportedVersion,
            httparse::Error::TooManyHeaders => ResponseError::TooManyHeaders { limit: slots },
            other => ResponseError::Malformed(other),
        }
    }
}

/// Parses the response head at the start of `buf`, answering a request
/// made with `request_method`.
///
/// `Ok(None)` means the head is incomplete (errors already visible are
/// reported at once). `headers` needs at least [`Limits::max_headers`]
/// slots. Nothing is allocated.
///
/// Framing, in RFC 9112 §6.3 order: a response to `HEAD`, any 1xx, 204 and
/// 304 have no body (their `Content-Length` is ignored); 101 turns the
/// connection into a tunnel ([`ResponseInfo::upgrade`]); a
/// `Transfer-Encoding` whose final coding is `chunked` means
/// [`Framing::Chunked`], any other `Transfer-Encoding`
/// [`Framing::CloseDelimited`]; else `Content-Length` (strict, like
/// requests: several differing values or a malformed one is an error);
/// else close-delimited. `Transfer-Encoding` with `Content-Length`, or on
/// an HTTP/1.0 response, is an error.
///
/// ```
/// use ktcpvs_net::http::{parse_response, Framing, Limits, Method};
/// let mut slots = [httparse::EMPTY_HEADER; 100];
/// let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
/// let (info, head) = parse_response(buf, &mut slots, Method::Get, &Limits::default()).unwrap().unwrap();
/// assert_eq!((info.status, info.framing, info.keep_alive), (200, Framing::Length(5), true));
/// assert_eq!(head.reason, "OK");
/// let (info, _) = parse_response(buf, &mut slots, Method::Head, &Limits::default()).unwrap().unwrap();
/// assert_eq!(info.framing, Framing::None);
/// ```
pub fn parse_response<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    request_method: Method,
    limits: &Limits,
) -> Result<Option<(ResponseInfo, ResponseHead<'h>)>, ResponseError> {
    // SAFETY: as in `parse_request`: same layout, and the tokeniser only
    // writes complete `Header` values (httparse's `Response::parse` makes
    // this same cast).
    let slots = unsafe { &mut *(headers as *mut [Header<'b>] as *mut [MaybeUninit<Header<'b>>]) };
    parse_response_uninit(buf, slots, request_method, limits)
}

/// [`parse_response`] with header slots that need not be initialised.
///
/// ```
/// use std::mem::MaybeUninit;
/// use ktcpvs_net::http::{parse_response_uninit, Limits, Method};
/// let mut slots = [const { MaybeUninit::uninit() }; 100];
/// let buf = b"HTTP/1.1 204 No Content\r\n\r\n";
/// let (info, _) = parse_response_uninit(buf, &mut slots, Method::Get, &Limits::default()).unwrap().unwrap();
/// assert_eq!(info.status, 204);
/// ```
pub fn parse_response_uninit<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<Header<'b>>],
    request_method: Method,
    limits: &Limits,
) -> Result<Option<(ResponseInfo, ResponseHead<'h>)>, ResponseError> {
    let scan_limits = ScanLimits {
        first_line: limits.max_header_size,
        head: limits.max_header_size,
        fields: limits.max_headers,
    };
    let slots = headers.len();
    let scan = scan_head(buf, scan_limits).map_err(|e| ResponseError::from_scan(e, limits))?;
    let (head_len, leading) = match scan {
        Scan::Partial => {
            httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(
                    &mut httparse::Response::new(&mut []),
                    buf,
                    headers,
                )
                .map_err(|e| ResponseError::from_httparse(e, slots))?;
            return Ok(None);
        }
        Scan::Complete { head_len, leading } => (head_len, leading),
    };
    let mut res = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        &buf[..head_len],
        headers,
    ) {
        Ok(httparse::Status::Complete(n)) if n == head_len => {}
        Ok(_) => return Err(ResponseError::Malformed(httparse::Error::NewLine)),
        Err(e) => return Err(ResponseError::from_httparse(e, slots)),
    }
    let httparse::Response {
        version,
        code,
        reason,
        headers,
    } = res;
    let (Some(version), Some(status)) = (version, code) else {
        return Err(ResponseError::Malformed(httparse::Error::Status));
    };
    if status < 100 {
        return Err(ResponseError::InvalidStatus { status });
    }
    let headers: &'h [Header<'b>] = headers;
    let facts = FieldFacts::of(headers)?;
    let framing = response_framing(headers, &facts, version, status, request_method)?;
    let info = response_info(
        &buf[..head_len],
        headers,
        &facts,
        leading,
        (version, status),
        framing,
    );
    let head = ResponseHead {
        version,
        status,
        reason: reason.unwrap_or(""),
        headers,
    };
    Ok(Some((info, head)))
}

/// What [`split_own_response_head`] finds.
#[derive(Debug)]
pub(crate) struct OwnHead<'b, 'h> {
    /// The status code (100–999).
    pub status: u16,
    /// Bytes of the head, through the final CRLF CRLF.
    pub head_len: usize,
    /// Its fields, in order.
    pub headers: &'h [Header<'b>],
}

/// The status, length and fields of a response head the engine wrote
/// itself, from a head [`parse_response_uninit`] accepted (the response an
/// HTTP/2 stream's session forwards): httparse's tokenising alone, without
/// the field checks and framing rules that head already passed (the caller
/// knows its framing). `Ok(None)` while the head is incomplete.
pub(crate) fn split_own_response_head<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<Header<'b>>],
) -> Result<Option<OwnHead<'b, 'h>>, ResponseError> {
    let slots = headers.len();
    let mut res = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, headers)
    {
        Ok(httparse::Status::Complete(head_len)) => {
            let status = res.code.unwrap_or(0);
            if status < 100 {
                return Err(ResponseError::InvalidStatus { status });
            }
            Ok(Some(OwnHead {
                status,
                head_len,
                headers: res.headers,
            }))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(ResponseError::from_httparse(e, slots)),
    }
}

/// The facts of a valid response head of `head.len()` bytes (`leading`
/// of them empty lines before the status line).
fn response_info(
    head: &[u8],
    headers: &[Header<'_>],
    facts: &FieldFacts,
    leading: usize,
    (version, status): (u8, u16),
    framing: Framing,
) -> ResponseInfo {
    let upgrade = status == 101;
    let connection = facts.connection;
    let keep_alive = !upgrade
        && framing != Framing::CloseDelimited
        && !connection.close
        && (version == 1 || connection.keep_alive);
    let keep_alive_only = leading == 0 && facts.keep_alive_only;
    // The one `Connection: keep-alive` line a close splice replaces.
    let keep_alive_line = match facts.connection_field {
        Some(i) if keep_alive_only && facts.connection_fields == 1 => field_line(head, &headers[i]),
        _ => None,
    };
    ResponseInfo {
        head_len: head.len(),
        status,
        version,
        framing,
        keep_alive,
        sets_cookie: facts.sets_cookie,
        interim: (100..200).contains(&status) && !upgrade,
        upgrade,
        needs_rewrite: leading > 0 || facts.hop_by_hop,
        keep_alive_only,
        keep_alive_line,
    }
}

/// What one pass over the fields of a response head found. The field
/// bytes themselves were checked by the tokeniser in its default (strict)
/// configuration: names are tokens, values hold no control byte but HTAB
/// (the test `httparse_refuses_every_byte_the_field_grammar_forbids` pins
/// this for every byte value, in requests and responses alike).
#[derive(Debug, Default)]
struct FieldFacts {
    connection: ConnectionOptions,
    /// A hop-by-hop field is present.
    hop_by_hop: bool,
    /// The only hop-by-hop fields are `Connection` fields listing nothing
    /// but `keep-alive`.
    keep_alive_only: bool,
    sets_cookie: bool,
    /// The index of the last `Connection` field, and how many there are.
    connection_field: Option<usize>,
    connection_fields: usize,
    content_length: bool,
    transfer_encoding: bool,
}

impl FieldFacts {
    fn of(headers: &[Header<'_>]) -> Result<FieldFacts, ResponseError> {
        let mut facts = FieldFacts {
            keep_alive_only: true,
            ..FieldFacts::default()
        };
        for (field, h) in headers.iter().enumerate() {
            match classify(h.name) {
                FieldName::Connection => {
                    facts.hop_by_hop = true;
                    facts.connection_field = Some(field);
                    facts.connection_fields += 1;
                    for token in headers::list_elements(h.value) {
                        if token.eq_ignore_ascii_case(b"keep-alive") {
                            facts.connection.keep_alive = true;
                            continue;
                        }
                        facts.keep_alive_only = false;
                        if let Some(field) = framing_field(token) {
                            return Err(ResponseError::ConnectionNamesFraming { field });
                        }
                        if token.eq_ignore_ascii_case(b"close") {
                            facts.connection.close = true;
                        } else if token.eq_ignore_ascii_case(b"upgrade") {
                            facts.connection.upgrade = true;
                        }
                    }
                }
                FieldName::OtherHopByHop | FieldName::Upgrade => {
                    facts.hop_by_hop = true;
                    facts.keep_alive_only = false;
                }
                FieldName::SetCookie => facts.sets_cookie = true,
                FieldName::ContentLength => facts.content_length = true,
                FieldName::TransferEncoding => facts.transfer_encoding = true,
                FieldName::Host | FieldName::Expect | FieldName::Other => {}
            }
        }
        facts.keep_alive_only &= facts.hop_by_hop;
        Ok(facts)
    }
}

/// The framing field a `Connection` token names, if it names one.
fn framing_field(token: &[u8]) -> Option<&'static str> {
    match std::str::from_utf8(token).map(classify) {
        Ok(FieldName::ContentLength) => Some("Content-Length"),
        Ok(FieldName::TransferEncoding) => Some("Transfer-Encoding"),
        _ => None,
    }
}

/// The line of `field` within `head` (which the field borrows from):
/// from its name through the LF that ends it. `None` only if the field
/// does not lie in `head`, which the parse rules out.
fn field_line(head: &[u8], field: &Header<'_>) -> Option<FieldLine> {
    let base = head.as_ptr() as usize;
    let start = (field.name.as_ptr() as usize).checked_sub(base)?;
    let value_end = (field.value.as_ptr() as usize + field.value.len()).checked_sub(base)?;
    if start >= head.len() || value_end > head.len() {
        return None;
    }
    // The scanner refused bare LFs, so the first LF after the value ends
    // the line (after any trailing whitespace httparse left out).
    let lf = head[value_end..].iter().position(|&b| b == b'\n')?;
    Some(FieldLine {
        start,
        end: value_end + lf + 1,
    })
}

/// The message-body length of a response (RFC 9112 §6.3).
fn response_framing(
    headers: &[Header<'_>],
    facts: &FieldFacts,
    version: u8,
    status: u16,
    request_method: Method,
) -> Result<Framing, ResponseError> {
    if request_method == Method::Head || status < 200 || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    let te = if facts.transfer_encoding {
        transfer_coding(headers)
    } else {
        TransferCoding::Absent
    };
    let cl = if facts.content_length {
        content_length(headers)
    } else {
        ContentLength::Absent
    };
    if te != TransferCoding::Absent {
        if version == 0 {
            return Err(ResponseError::TransferEncodingOnHttp10);
        }
        if cl != ContentLength::Absent {
            return Err(ResponseError::ContentLengthWithTransferEncoding);
        }
        return match te {
            TransferCoding::ChunkedOnly | TransferCoding::ChunkedAfterOthers => {
                Ok(Framing::Chunked)
            }
            TransferCoding::ChunkedMisplaced => Err(ResponseError::ChunkedMisplaced),
            // "If a Transfer-Encoding header field is present in a response
            // and the chunked transfer coding is not the final encoding, the
            // message body length is determined by reading the connection
            // until it is closed by the server."
            TransferCoding::NotChunked | TransferCoding::Absent => Ok(Framing::CloseDelimited),
        };
    }
    match cl {
        ContentLength::Absent => Ok(Framing::CloseDelimited),
        ContentLength::Value(n) => Ok(Framing::Length(n)),
        ContentLength::Malformed => Err(ResponseError::InvalidContentLength),
        ContentLength::Conflicting(first, second) => {
            Err(ResponseError::ConflictingContentLength { first, second })
        }
    }
}

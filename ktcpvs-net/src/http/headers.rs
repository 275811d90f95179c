//! Header-field helpers shared by requests and responses: the RFC 9110 token
//! grammar, comma-separated lists, `Connection` options, the hop-by-hop list,
//! and the framing headers (`Content-Length`, `Transfer-Encoding`).
//!
//! Everything here borrows; nothing allocates.

use httparse::Header;

/// The hop-by-hop header fields a proxy never forwards (RFC 9110 §7.6.1,
/// plus the non-standard `Proxy-Connection` and `Keep-Alive`, and
/// `HTTP2-Settings`, which only an `h2c` upgrade uses and RFC 9113 §3.2.1
/// calls connection-specific), lower-case.
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "http2-settings",
];

/// Whether `name` is one of [`HOP_BY_HOP`] (case-insensitive).
///
/// ```
/// use ktcpvs_net::http::headers::is_hop_by_hop;
/// assert!(is_hop_by_hop("Keep-Alive"));
/// assert!(!is_hop_by_hop("Content-Length"));
/// ```
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// The fields the engine acts on, told apart with one length switch and at
/// most two case-insensitive comparisons per field (instead of one pass
/// over the head per question asked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldName {
    /// `Connection`.
    Connection,
    /// Another hop-by-hop field (`Keep-Alive`, `Proxy-Connection`, `TE`,
    /// `Trailer`, `HTTP2-Settings`).
    OtherHopByHop,
    /// `Upgrade` (hop-by-hop, kept on an upgrade).
    Upgrade,
    /// `Content-Length`.
    ContentLength,
    /// `Transfer-Encoding`.
    TransferEncoding,
    /// `Set-Cookie` or `Set-Cookie2`.
    SetCookie,
    /// `Host`.
    Host,
    /// `Expect`.
    Expect,
    /// Anything else.
    Other,
}

/// What field `name` is, for the fields the engine acts on.
pub(crate) fn classify(name: &str) -> FieldName {
    let b = name.as_bytes();
    let is = |lit: &[u8]| b.eq_ignore_ascii_case(lit);
    match b.len() {
        2 if is(b"te") => FieldName::OtherHopByHop,
        4 if is(b"host") => FieldName::Host,
        6 if is(b"expect") => FieldName::Expect,
        7 if is(b"upgrade") => FieldName::Upgrade,
        7 if is(b"trailer") => FieldName::OtherHopByHop,
        10 if is(b"connection") => FieldName::Connection,
        10 if is(b"keep-alive") => FieldName::OtherHopByHop,
        10 if is(b"set-cookie") => FieldName::SetCookie,
        11 if is(b"set-cookie2") => FieldName::SetCookie,
        14 if is(b"content-length") => FieldName::ContentLength,
        14 if is(b"http2-settings") => FieldName::OtherHopByHop,
        16 if is(b"proxy-connection") => FieldName::OtherHopByHop,
        17 if is(b"transfer-encoding") => FieldName::TransferEncoding,
        _ => FieldName::Other,
    }
}

/// `tchar` membership for every byte value.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

/// Field-value byte membership for every byte value.
const FIELD_VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c == b'\t' || (c >= b' ' && c <= b'~') || c >= 0x80;
        b += 1;
    }
    t
};

/// Whether `b` is a `tchar` (RFC 9110 §5.6.2):
/// `"!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" /
/// "`" / "|" / "~" / DIGIT / ALPHA`.
pub fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// Whether `bytes` is a `token` (`1*tchar`).
///
/// ```
/// use ktcpvs_net::http::headers::is_token;
/// assert!(is_token(b"chunked"));
/// assert!(!is_token(b""));
/// assert!(!is_token(b"a b"));
/// ```
pub fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_tchar(b))
}

/// Whether `b` may appear in a field value (RFC 9110 §5.5): `HTAB`, `SP`,
/// `VCHAR` or `obs-text`; every other control character (and DEL) may not.
pub fn is_field_value_byte(b: u8) -> bool {
    FIELD_VALUE[usize::from(b)]
}

/// The first byte of `value` that may not appear in a field value (see
/// [`is_field_value_byte`]), if any.
///
/// Eight bytes at a time are first tested for any byte below `SP` or equal
/// to `DEL` with word arithmetic (the `hasless`/`haszero` tests: never a
/// miss, sometimes a false alarm, e.g. for `HTAB`); only a value that
/// raises the alarm is scanned byte by byte, which gives the exact answer.
///
/// ```
/// use ktcpvs_net::http::headers::first_bad_value_byte;
/// assert_eq!(first_bad_value_byte(b"text/html; charset=\xe9\tand more"), None);
/// assert_eq!(first_bad_value_byte(b"abcdefgh\x00"), Some(0));
/// assert_eq!(first_bad_value_byte(b"abc\x7fdefgh"), Some(0x7f));
/// ```
pub fn first_bad_value_byte(value: &[u8]) -> Option<u8> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = value.chunks_exact(8);
    let mut alarm = false;
    for chunk in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let x = u64::from_le_bytes(bytes);
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let del = x ^ (ONES * 0x7f);
        let has_del = del.wrapping_sub(ONES) & !del & HIGHS;
        alarm |= (below_space | has_del) != 0;
    }
    alarm |= words.remainder().iter().any(|&b| !is_field_value_byte(b));
    if !alarm {
        return None;
    }
    value.iter().copied().find(|&b| !is_field_value_byte(b))
}

/// `bytes` without leading and trailing optional whitespace (SP, HTAB).
pub fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |p| p + 1);
    &bytes[start..end]
}

/// The elements of a comma-separated list value (RFC 9110 §5.6.1), with
/// whitespace trimmed and empty elements skipped, as the RFC asks.
///
/// ```
/// use ktcpvs_net::http::headers::list_elements;
/// let v: Vec<&[u8]> = list_elements(b" close ,, Upgrade").collect();
/// assert_eq!(v, [&b"close"[..], &b"Upgrade"[..]]);
/// ```
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// The connection options of a head: the tokens of its `Connection` fields
/// that the proxy acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// `close` was listed.
    pub close: bool,
    /// `keep-alive` was listed.
    pub keep_alive: bool,
    /// `upgrade` was listed.
    pub upgrade: bool,
}

impl ConnectionOptions {
    /// The options listed across every `Connection` field of `headers`.
    ///
    /// ```
    /// use httparse::Header;
    /// use ktcpvs_net::http::headers::ConnectionOptions;
    /// let h = [Header { name: "connection", value: b"Keep-Alive, Upgrade" }];
    /// let o = ConnectionOptions::of(&h);
    /// assert!(o.keep_alive && o.upgrade && !o.close);
    /// ```
    pub fn of(headers: &[Header<'_>]) -> Self {
        let mut options = ConnectionOptions::default();
        for token in connection_tokens(headers) {
            if token.eq_ignore_ascii_case(b"close") {
                options.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                options.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                options.upgrade = true;
            }
        }
        options
    }
}

/// Every token listed in the `Connection` fields of `headers`, in order.
pub fn connection_tokens<'a>(headers: &'a [Header<'a>]) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| list_elements(h.value))
}

/// Whether `name` is a field the proxy itself reads to frame or route a
/// message: `Content-Length`, `Transfer-Encoding` and `Host`.
///
/// Such a field is never removed because a `Connection` field names it:
/// the proxy framed the body (or chose the server) from it, so the next
/// hop must read the same framing, or the bytes the proxy forwarded as a
/// body would reach it as a request of their own.
///
/// ```
/// use ktcpvs_net::http::headers::is_framing_or_routing;
/// assert!(is_framing_or_routing("content-length") && is_framing_or_routing("Host"));
/// assert!(!is_framing_or_routing("X-Hop"));
/// ```
pub fn is_framing_or_routing(name: &str) -> bool {
    matches!(
        classify(name),
        FieldName::ContentLength | FieldName::TransferEncoding | FieldName::Host
    )
}

/// Whether the field `name` must not be forwarded: it is hop-by-hop, or a
/// `Connection` field of `headers` names it and it is not a field the
/// proxy framed or routed the message by ([`is_framing_or_routing`]),
/// which is forwarded whatever `Connection` says.
pub fn is_connection_specific(name: &str, headers: &[Header<'_>]) -> bool {
    is_hop_by_hop(name)
        || (!is_framing_or_routing(name)
            && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
}

/// Whether any field of `headers` is connection-specific, i.e. the head
/// cannot be forwarded byte for byte. Since a field can only be named in
/// `Connection` when `Connection` itself is present, this is "any
/// hop-by-hop field present".
pub fn has_connection_specific(headers: &[Header<'_>]) -> bool {
    headers.iter().any(|h| is_hop_by_hop(h.name))
}

/// Whether every protocol the `Upgrade` fields of `headers` name is in
/// `allowed` (lower-case protocol names, compared without case and without
/// any `/version`), and they name at least one. A request naming another
/// protocol is not forwarded as an upgrade, and a `101` naming one is
/// refused: the choice the server makes among the offered protocols must
/// be one the service allows.
///
/// ```
/// use httparse::Header;
/// use ktcpvs_net::http::headers::upgrade_allowed;
/// let allowed = ["websocket".to_string()];
/// let h = |v: &'static [u8]| [Header { name: "Upgrade", value: v }];
/// assert!(upgrade_allowed(&h(b"WebSocket"), &allowed));
/// assert!(!upgrade_allowed(&h(b"websocket, h2c"), &allowed));
/// assert!(!upgrade_allowed(&h(b""), &allowed));
/// ```
pub fn upgrade_allowed(headers: &[Header<'_>], allowed: &[String]) -> bool {
    let mut named = 0usize;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("upgrade"))
    {
        for protocol in list_elements(h.value) {
            let name = protocol.split(|&b| b == b'/').next().unwrap_or(protocol);
            if !allowed
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(name))
            {
                return false;
            }
            named += 1;
        }
    }
    named > 0
}

/// What the `Content-Length` fields of a head say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContentLength {
    /// No `Content-Length` field.
    Absent,
    /// One value (possibly repeated identically in several fields).
    Value(u64),
    /// A value that is not `1*DIGIT` or does not fit in 64 bits.
    Malformed,
    /// Two fields with different values.
    Conflicting(u64, u64),
}

/// Reads the `Content-Length` fields. Each field must hold exactly one
/// `1*DIGIT` value (a comma list such as `5, 5` is malformed); several
/// fields are accepted only when they all hold the same number.
pub(crate) fn content_length(headers: &[Header<'_>]) -> ContentLength {
    let mut found: Option<u64> = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        let Some(n) = parse_decimal(trim_ows(h.value)) else {
            return ContentLength::Malformed;
        };
        match found {
            Some(first) if first != n => return ContentLength::Conflicting(first, n),
            _ => found = Some(n),
        }
    }
    found.map_or(ContentLength::Absent, ContentLength::Value)
}

/// `1*DIGIT` as a `u64`, or `None` if empty, not all digits, or too large.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// What the `Transfer-Encoding` fields of a head say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransferCoding {
    /// No `Transfer-Encoding` field.
    Absent,
    /// Exactly one coding in all, `chunked`.
    ChunkedOnly,
    /// `chunked` is the final coding, after others (e.g. `gzip, chunked`).
    ChunkedAfterOthers,
    /// `chunked` appears more than once, or before another coding.
    ChunkedMisplaced,
    /// Codings are listed but `chunked` is not one of them, or a field is
    /// present with no coding (empty), or an element is not a token
    /// (optionally with parameters), or `chunked` carries parameters.
    NotChunked,
}

/// Reads the `Transfer-Encoding` fields, concatenated in order as one list.
pub(crate) fn transfer_coding(headers: &[Header<'_>]) -> TransferCoding {
    let mut present = false;
    let mut codings = 0usize;
    let mut chunked_at: Option<usize> = None;
    let mut chunked_count = 0usize;
    let mut bad_element = false;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        present = true;
        for element in list_elements(h.value) {
            // A coding may carry parameters (`gzip;q=1` is not allowed in
            // TE but is in the grammar); only its name matters here.
            let name = trim_ows(element.split(|&b| b == b';').next().unwrap_or(element));
            if !is_token(name) {
                bad_element = true;
            }
            if name.eq_ignore_ascii_case(b"chunked") {
                // `chunked` takes no parameters.
                if name.len() != element.len() {
                    bad_element = true;
                }
                chunked_count += 1;
                chunked_at = Some(codings);
            }
            codings += 1;
        }
    }
    if !present {
        return TransferCoding::Absent;
    }
    if bad_element || chunked_count == 0 {
        return TransferCoding::NotChunked;
    }
    if chunked_count > 1 || chunked_at != Some(codings - 1) {
        return TransferCoding::ChunkedMisplaced;
    }
    if codings == 1 {
        TransferCoding::ChunkedOnly
    } else {
        TransferCoding::ChunkedAfterOthers
    }
}

/// The number of fields named `name` (case-insensitive).
pub(crate) fn count(headers: &[Header<'_>], name: &str) -> usize {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(name: &'a str, value: &'a [u8]) -> Header<'a> {
        Header { name, value }
    }

    #[test]
    fn content_length_rules() {
        assert_eq!(content_length(&[]), ContentLength::Absent);
        assert_eq!(
            content_length(&[h("Content-Length", b"42")]),
            ContentLength::Value(42)
        );
        assert_eq!(
            content_length(&[h("content-length", b"7"), h("Content-Length", b"7")]),
            ContentLength::Value(7)
        );
        assert_eq!(
            content_length(&[h("content-length", b"7"), h("Content-Length", b"8")]),
            ContentLength::Conflicting(7, 8)
        );
        for bad in [
            &b""[..],
            b"+5",
            b"-1",
            b"5, 5",
            b"0x10",
            b"1 2",
            b"99999999999999999999",
        ] {
            assert_eq!(
                content_length(&[h("Content-Length", bad)]),
                ContentLength::Malformed,
                "{bad:?}"
            );
        }
        assert_eq!(
            content_length(&[h("Content-Length", b"18446744073709551615")]),
            ContentLength::Value(u64::MAX)
        );
    }

    #[test]
    fn transfer_coding_rules() {
        let te = |v: &'static [u8]| transfer_coding(&[h("Transfer-Encoding", v)]);
        assert_eq!(transfer_coding(&[]), TransferCoding::Absent);
        assert_eq!(te(b"chunked"), TransferCoding::ChunkedOnly);
        assert_eq!(te(b"Chunked"), TransferCoding::ChunkedOnly);
        assert_eq!(te(b"gzip, chunked"), TransferCoding::ChunkedAfterOthers);
        assert_eq!(te(b"chunked, chunked"), TransferCoding::ChunkedMisplaced);
        assert_eq!(te(b"chunked, gzip"), TransferCoding::ChunkedMisplaced);
        assert_eq!(te(b"gzip"), TransferCoding::NotChunked);
        assert_eq!(te(b""), TransferCoding::NotChunked);
        assert_eq!(te(b"chunked\x0b"), TransferCoding::NotChunked);
        assert_eq!(te(b"\"chunked\""), TransferCoding::NotChunked);
        assert_eq!(te(b"chunked;q=1"), TransferCoding::NotChunked);
        assert_eq!(
            te(b"gzip;level=1, chunked"),
            TransferCoding::ChunkedAfterOthers
        );
        assert_eq!(
            transfer_coding(&[
                h("Transfer-Encoding", b"chunked"),
                h("transfer-encoding", b"chunked")
            ]),
            TransferCoding::ChunkedMisplaced
        );
    }

    #[test]
    fn connection_specific_fields() {
        let hs = [
            h("Connection", b"close, X-Secret"),
            h("X-Secret", b"1"),
            h("Host", b"a"),
        ];
        assert!(is_connection_specific("x-secret", &hs));
        assert!(is_connection_specific("TE", &hs));
        assert!(!is_connection_specific("Host", &hs));
        // Framing and routing fields survive being named in `Connection`.
        let named = [
            h(
                "Connection",
                b"close, Content-Length, transfer-encoding, HOST",
            ),
            h("Content-Length", b"3"),
        ];
        for name in ["Content-Length", "Transfer-Encoding", "Host"] {
            assert!(!is_connection_specific(name, &named), "{name}");
        }
        assert!(is_connection_specific("Connection", &named));
        assert!(has_connection_specific(&hs));
        assert!(!has_connection_specific(&hs[1..]));
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
    }
}

//! HTTP/2 frames (RFC 9113 §4 and §6) as the engine's own frame layer
//! reads and writes them, and the HPACK representation (RFC 7541) of the
//! response fields it sends.
//!
//! Reading is a push parser over borrowed bytes: [`FrameHead::parse`]
//! reads the 9-byte header, [`unpad`] and [`header_block`] take a frame's
//! payload apart, [`settings`] walks a SETTINGS payload. Nothing here
//! allocates or keeps state; the connection's state (streams, windows,
//! the HPACK decoder's table) is the session's.
//!
//! Response fields are written without the dynamic table and without
//! Huffman coding: a name of the static table by its index, any other
//! name as a lower-case literal, every value as a literal "without
//! indexing". Nothing is ever inserted in the client's table, so any
//! table size the client announces is honoured, and the encoder needs no
//! state.
//!
//! ```
//! use ktcpvs_net::http2::frame::{kind, flag, FrameHead};
//! let head = FrameHead { len: 8, kind: kind::PING, flags: flag::ACK, stream: 0 };
//! let mut bytes = [0u8; 9];
//! head.write(&mut bytes);
//! assert_eq!(FrameHead::parse(&bytes), Some(head));
//! ```

/// Bytes of a frame header.
pub const HEAD_LEN: usize = 9;

/// The frame size every endpoint must accept (SETTINGS_MAX_FRAME_SIZE's
/// initial value), and the largest this engine accepts.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// The initial flow-control window of a connection and of each stream.
pub const DEFAULT_WINDOW: u32 = 65_535;

/// The largest flow-control window (2³¹ − 1).
pub const MAX_WINDOW: u32 = 0x7fff_ffff;

/// The connection preface a client opens with (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY.
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE.
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING.
    pub const PING: u8 = 0x6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113 §6).
pub mod flag {
    /// END_STREAM (DATA, HEADERS).
    pub const END_STREAM: u8 = 0x1;
    /// ACK (SETTINGS, PING).
    pub const ACK: u8 = 0x1;
    /// END_HEADERS (HEADERS, CONTINUATION).
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED (DATA, HEADERS).
    pub const PADDED: u8 = 0x8;
    /// PRIORITY (HEADERS).
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (RFC 9113 §6.5.2).
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// An error code of RST_STREAM and GOAWAY (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason(pub u32);

impl Reason {
    /// NO_ERROR.
    pub const NO_ERROR: Reason = Reason(0x0);
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    /// FLOW_CONTROL_ERROR.
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    /// STREAM_CLOSED.
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    /// FRAME_SIZE_ERROR.
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    /// REFUSED_STREAM.
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    /// CANCEL.
    pub const CANCEL: Reason = Reason(0x8);
    /// COMPRESSION_ERROR.
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    /// ENHANCE_YOUR_CALM.
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);

    /// The code's name, for logs.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// The payload's length (24 bits).
    pub len: u32,
    /// The frame type (see [`kind`]).
    pub kind: u8,
    /// The flags (see [`flag`]).
    pub flags: u8,
    /// The stream identifier, the reserved bit cleared.
    pub stream: u32,
}

impl FrameHead {
    /// The header at the start of `bytes`, once 9 bytes are there.
    pub fn parse(bytes: &[u8]) -> Option<FrameHead> {
        let b: &[u8; HEAD_LEN] = bytes.get(..HEAD_LEN)?.try_into().ok()?;
        Some(FrameHead {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW,
        })
    }

    /// Writes the header into the first 9 bytes of `out` (which must hold
    /// them); the length keeps its low 24 bits.
    pub fn write(&self, out: &mut [u8]) {
        let len = self.len.to_be_bytes();
        out[..3].copy_from_slice(&len[1..]);
        out[3] = self.kind;
        out[4] = self.flags;
        out[5..HEAD_LEN].copy_from_slice(&(self.stream & MAX_WINDOW).to_be_bytes());
    }
}

/// A DATA or HEADERS payload without its padding (the PADDED flag):
/// `Err` when the pad length is not less than the payload (a
/// PROTOCOL_ERROR, RFC 9113 §6.1).
pub fn unpad(flags: u8, payload: &[u8]) -> Result<&[u8], Reason> {
    if flags & flag::PADDED == 0 {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or(Reason::PROTOCOL_ERROR)?;
    let keep = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(Reason::PROTOCOL_ERROR)?;
    Ok(&rest[..keep])
}

/// The header block fragment of a HEADERS payload: without padding and
/// without the priority fields (the PRIORITY flag), which the engine
/// does not use (RFC 9113 §5.3.2 deprecates them).
pub fn header_block(flags: u8, payload: &[u8]) -> Result<&[u8], Reason> {
    let rest = unpad(flags, payload)?;
    if flags & flag::PRIORITY == 0 {
        return Ok(rest);
    }
    rest.get(5..).ok_or(Reason::PROTOCOL_ERROR)
}

/// The (identifier, value) pairs of a SETTINGS payload; `Err` when its
/// length is not a multiple of 6 (a FRAME_SIZE_ERROR).
pub fn settings(payload: &[u8]) -> Result<impl Iterator<Item = (u16, u32)> + '_, Reason> {
    if payload.len() % 6 != 0 {
        return Err(Reason::FRAME_SIZE_ERROR);
    }
    Ok(payload.chunks_exact(6).map(|s| {
        (
            u16::from_be_bytes([s[0], s[1]]),
            u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
        )
    }))
}

/// The HPACK static table index (RFC 7541 Appendix A) of a response field
/// name, for the names a response commonly carries.
fn static_name_index(lower: &[u8]) -> Option<u8> {
    Some(match lower {
        b"accept-ranges" => 18,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"date" => 33,
        b"etag" => 34,
        b"expires" => 36,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"proxy-authenticate" => 48,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    })
}

/// Appends an HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); the
/// first byte's high bits are `first`.
#[inline]
pub fn encode_int(first: u8, n: u32, value: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// Appends an HPACK string literal, not Huffman-coded.
#[inline]
fn encode_str(bytes: &[u8], out: &mut Vec<u8>) {
    encode_int(0, 7, bytes.len(), out);
    out.extend_from_slice(bytes);
}

/// Appends the HPACK representation of `:status`.
///
/// ```
/// use ktcpvs_net::http2::frame::encode_status;
/// let mut out = Vec::new();
/// encode_status(200, &mut out);
/// assert_eq!(out, [0x88]); // static entry 8
/// out.clear();
/// encode_status(302, &mut out);
/// assert_eq!(out, [0x08, 3, b'3', b'0', b'2']);
/// ```
pub fn encode_status(status: u16, out: &mut Vec<u8>) {
    let indexed = match status {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => 0,
    };
    if indexed != 0 {
        out.push(0x80 | indexed);
        return;
    }
    // Literal without indexing, name `:status` (index 8).
    out.push(0x08);
    let digits = [
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ];
    encode_str(&digits, out);
}

/// Appends the HPACK representation of a response field: the name in
/// lower case (HTTP/2 field names are), by its static index when it has
/// one; the value as a literal without indexing.
///
/// ```
/// use ktcpvs_net::http2::frame::encode_field;
/// let mut out = Vec::new();
/// encode_field(b"Content-Length", b"5", &mut out);
/// assert_eq!(out, [0x0f, 0x0d, 1, b'5']); // index 28, then the value
/// out.clear();
/// encode_field(b"X-Up", b"a", &mut out);
/// assert_eq!(out, [0x00, 4, b'x', b'-', b'u', b'p', 1, b'a']);
/// ```
pub fn encode_field(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    // Room for both representations and their length prefixes at once.
    out.reserve(name.len() + value.len() + 12);
    let mut lower = [0u8; 32];
    let Some(lower) = lower.get_mut(..name.len()) else {
        out.push(0x00);
        encode_int(0, 7, name.len(), out);
        out.extend(name.iter().map(u8::to_ascii_lowercase));
        encode_str(value, out);
        return;
    };
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    match static_name_index(lower) {
        Some(index) => encode_int(0x00, 4, usize::from(index), out),
        None => {
            out.push(0x00);
            encode_int(0, 7, name.len(), out);
            out.extend_from_slice(lower);
        }
    }
    encode_str(value, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_heads_round_trip_and_drop_the_reserved_bit() {
        let h = FrameHead {
            len: 0x00ab_cdef,
            kind: kind::DATA,
            flags: flag::END_STREAM | flag::PADDED,
            stream: 0x7fff_fffe,
        };
        let mut b = [0u8; HEAD_LEN];
        h.write(&mut b);
        assert_eq!(FrameHead::parse(&b), Some(h));
        b[5] |= 0x80;
        assert_eq!(FrameHead::parse(&b).map(|h| h.stream), Some(0x7fff_fffe));
        assert_eq!(FrameHead::parse(&b[..8]), None);
    }

    #[test]
    fn padding_is_checked() {
        assert_eq!(unpad(0, b"abc"), Ok(&b"abc"[..]));
        assert_eq!(unpad(flag::PADDED, b"\x01ab"), Ok(&b"a"[..]));
        assert_eq!(unpad(flag::PADDED, b"\x02ab"), Ok(&b""[..]));
        assert_eq!(unpad(flag::PADDED, b"\x03ab"), Err(Reason::PROTOCOL_ERROR));
        assert_eq!(unpad(flag::PADDED, b""), Err(Reason::PROTOCOL_ERROR));
        assert_eq!(
            header_block(flag::PRIORITY, b"\0\0\0\x03\x10block"),
            Ok(&b"block"[..])
        );
        assert_eq!(
            header_block(flag::PRIORITY, b"\0\0"),
            Err(Reason::PROTOCOL_ERROR)
        );
    }

    #[test]
    fn settings_are_read_in_sixes() {
        let p = [0, 4, 0, 1, 0, 0, 0, 5, 0, 0, 0x40, 0];
        let got: Vec<_> = settings(&p).unwrap().collect();
        assert_eq!(got, [(4, 65536), (5, 16384)]);
        assert!(settings(&p[..7]).is_err());
    }

    #[test]
    fn integers_follow_rfc_7541() {
        let mut out = Vec::new();
        encode_int(0, 5, 10, &mut out);
        assert_eq!(out, [10]);
        out.clear();
        encode_int(0, 5, 1337, &mut out);
        assert_eq!(out, [31, 154, 10]);
        out.clear();
        encode_int(0x00, 4, 28, &mut out);
        assert_eq!(out, [0x0f, 0x0d]);
    }

    use proptest::prelude::*;

    proptest! {
        /// Whatever the name (short or long, any case, in the static table
        /// or not) and value, the encoded field decodes to the name in lower
        /// case and the value unchanged, after whatever the block held.
        #[test]
        fn encoded_fields_decode_to_the_lowercased_name_and_the_value(
            name in prop_oneof![
                prop::sample::select(vec![
                    "Content-Length", "content-type", "ETag", "Set-Cookie", "X-Backend",
                    "WWW-Authenticate", "Access-Control-Allow-Origin",
                ]).prop_map(String::from),
                "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,80}",
            ],
            value in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut block = vec![0x88]; // :status 200, indexed
            encode_field(name.as_bytes(), &value, &mut block);
            let mut seen = Vec::new();
            crate::http2::hpack::Decoder::new()
                .decode(&block, |n, v| seen.push((n.to_vec(), v.to_vec())))
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(seen.len(), 2);
            prop_assert_eq!(&seen[1].0, &name.to_ascii_lowercase().into_bytes());
            prop_assert_eq!(&seen[1].1, &value);
        }
    }
}

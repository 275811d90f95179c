//! HPACK decoding (RFC 7541) of the header blocks clients send: integers,
//! string literals (Huffman-coded or not), the static table and the
//! connection's dynamic table, bounded by [`TABLE_SIZE`] (the
//! SETTINGS_HEADER_TABLE_SIZE the proxy leaves at its default).
//!
//! Each field is handed to the caller's function as borrowed bytes; a
//! Huffman-coded string is decoded into a buffer the decoder keeps, so
//! decoding allocates only when the client enters a field in the dynamic
//! table. The Huffman code is canonical, so its code lengths (Appendix B)
//! define it: the tables are derived from them at compile time, and a
//! string is decoded a bit at a time against them. Every malformation is
//! an [`HpackError`], which the caller treats as a connection error
//! (COMPRESSION_ERROR): the table's state is then unknown.
//!
//! ```
//! use ktcpvs_net::http2::hpack::Decoder;
//! // RFC 7541 C.4.1: a request with a Huffman-coded authority.
//! let block = [0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2,
//!              0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff];
//! let mut fields = Vec::new();
//! Decoder::new()
//!     .decode(&block, |n, v| fields.push((n.to_vec(), v.to_vec())))
//!     .unwrap();
//! assert_eq!(fields[3], (b":authority".to_vec(), b"www.example.com".to_vec()));
//! ```

use std::collections::VecDeque;

/// The dynamic table's size limit (SETTINGS_HEADER_TABLE_SIZE's default).
pub const TABLE_SIZE: usize = 4096;

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// The block ends inside a representation.
    #[error("header block truncated")]
    Truncated,
    /// An integer past 2²⁸.
    #[error("integer too large")]
    Integer,
    /// An index that names no entry.
    #[error("no table entry {0}")]
    Index(usize),
    /// A Huffman code that decodes to no symbol, holds EOS, or ends with
    /// padding other than up to 7 one bits.
    #[error("invalid Huffman code")]
    Huffman,
    /// A dynamic table size update past the limit.
    #[error("table size update to {0}, past the limit")]
    TableSize(usize),
    /// A dynamic table size update after the block's first field.
    #[error("table size update after a field")]
    LateSizeUpdate,
}

/// The static table (RFC 7541 Appendix A).
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The Huffman code's length in bits of symbols 0 to 255 (RFC 7541
/// Appendix B); EOS (symbol 256) is 30 one bits.
const HUFFMAN_LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

/// The canonical code, derived from [`HUFFMAN_LENGTHS`]: for each length,
/// its first code, its symbol count and where its symbols start in the
/// symbols sorted by (length, value).
struct Canonical {
    first: [u32; 31],
    count: [u32; 31],
    start: [u16; 31],
    sorted: [u8; 256],
    /// Each symbol's code.
    codes: [u32; 256],
}

const fn canonical() -> Canonical {
    let mut count = [0u32; 31];
    let mut s = 0;
    while s < 256 {
        count[HUFFMAN_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut start = [0u16; 31];
    let mut first = [0u32; 31];
    let mut sorted = [0u8; 256];
    let mut codes = [0u32; 256];
    let (mut code, mut at, mut len) = (0u32, 0usize, 1usize);
    while len < 31 {
        first[len] = code;
        start[len] = at as u16;
        let mut s = 0;
        let mut next = code;
        while s < 256 {
            if HUFFMAN_LENGTHS[s] as usize == len {
                sorted[at] = s as u8;
                codes[s] = next;
                next += 1;
                at += 1;
            }
            s += 1;
        }
        // EOS is the last 30-bit code.
        let eos = if len == 30 { 1 } else { 0 };
        code = (code + count[len] + eos) << 1;
        len += 1;
    }
    Canonical {
        first,
        count,
        start,
        sorted,
        codes,
    }
}

static HUFFMAN: Canonical = canonical();

/// Decodes a Huffman-coded string into `out` (appended).
pub fn huffman_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let h = &HUFFMAN;
    let (mut code, mut len) = (0u32, 0usize);
    for &byte in input {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if len > 30 {
                return Err(HpackError::Huffman);
            }
            let offset = code.wrapping_sub(h.first[len]);
            if offset < h.count[len] {
                out.push(h.sorted[usize::from(h.start[len]) + offset as usize]);
                code = 0;
                len = 0;
            }
        }
    }
    // Padding: at most 7 bits, all ones (a prefix of EOS).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HpackError::Huffman);
    }
    Ok(())
}

/// Huffman-codes `input` (appended to `out`), padded with one bits: the
/// one encoding [`huffman_decode`] accepts for what it returns. The proxy
/// sends no Huffman-coded string; this is the decoder's reference, for
/// tests and fuzzing.
///
/// ```
/// use ktcpvs_net::http2::hpack::{huffman_decode, huffman_encode};
/// let mut coded = Vec::new();
/// huffman_encode(b"www.example.com", &mut coded);
/// assert_eq!(coded, [0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]);
/// let mut plain = Vec::new();
/// huffman_decode(&coded, &mut plain).unwrap();
/// assert_eq!(plain, b"www.example.com");
/// ```
pub fn huffman_encode(input: &[u8], out: &mut Vec<u8>) {
    let (mut bits, mut pending) = (0u64, 0u32);
    for &b in input {
        let len = u32::from(HUFFMAN_LENGTHS[usize::from(b)]);
        bits = (bits << len) | u64::from(HUFFMAN.codes[usize::from(b)]);
        pending += len;
        while pending >= 8 {
            pending -= 8;
            out.push((bits >> pending) as u8);
        }
        bits &= (1u64 << pending) - 1;
    }
    if pending > 0 {
        let pad = 8 - pending;
        out.push(((bits << pad) | ((1u64 << pad) - 1)) as u8);
    }
}

/// Reads an integer with an `n`-bit prefix at `*at`.
fn integer(block: &[u8], at: &mut usize, n: u32) -> Result<usize, HpackError> {
    let max = (1usize << n) - 1;
    let first = usize::from(*block.get(*at).ok_or(HpackError::Truncated)?) & max;
    *at += 1;
    if first < max {
        return Ok(first);
    }
    let (mut value, mut shift) = (max, 0u32);
    loop {
        let b = *block.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 21 {
            return Err(HpackError::Integer);
        }
    }
}

/// Reads a string literal at `*at`: its bytes, decoded into `buf` when
/// Huffman-coded.
fn string<'a>(
    block: &'a [u8],
    at: &mut usize,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], HpackError> {
    let huffman = *block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, at, 7)?;
    let end = at.checked_add(len).ok_or(HpackError::Truncated)?;
    let raw = block.get(*at..end).ok_or(HpackError::Truncated)?;
    *at = end;
    if !huffman {
        return Ok(raw);
    }
    buf.clear();
    huffman_decode(raw, buf)?;
    Ok(buf)
}

/// The dynamic table's entries (name, value), newest first.
type Table = VecDeque<(Box<[u8]>, Box<[u8]>)>;

/// An HPACK decoder: the connection's dynamic table and scratch space.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Newest first (index 62).
    table: Table,
    /// The table's size (RFC 7541 §4.1: each entry's lengths plus 32).
    size: usize,
    /// The size the client set (at most [`TABLE_SIZE`]).
    max: usize,
    /// A literal's name (copied: the table may change under it).
    name: Vec<u8>,
    /// Huffman-decoded strings.
    huffman: Vec<u8>,
}

impl Decoder {
    /// A decoder with an empty table of [`TABLE_SIZE`].
    pub fn new() -> Decoder {
        Decoder {
            max: TABLE_SIZE,
            ..Decoder::default()
        }
    }

    /// Lets go of the scratch space a large literal grew (a connection
    /// between requests keeps no more than it needs).
    pub fn release_scratch(&mut self) {
        if self.name.capacity() > 1024 {
            self.name = Vec::new();
        }
        if self.huffman.capacity() > 1024 {
            self.huffman = Vec::new();
        }
    }

    /// Decodes one whole header block, calling `field` with each field's
    /// name and value in order.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        let mut fields = false;
        while at < block.len() {
            let b = block[at];
            if b & 0x80 != 0 {
                let index = integer(block, &mut at, 7)?;
                let (name, value) = entry(&self.table, index)?;
                field(name, value);
            } else if b & 0xe0 == 0x20 {
                if fields {
                    return Err(HpackError::LateSizeUpdate);
                }
                let size = integer(block, &mut at, 5)?;
                if size > TABLE_SIZE {
                    return Err(HpackError::TableSize(size));
                }
                self.max = size;
                evict(&mut self.table, &mut self.size, self.max, 0);
            } else {
                // Literal: with incremental indexing (01, 6-bit index),
                // without indexing (0000) or never indexed (0001), 4-bit.
                let indexed = b & 0xc0 == 0x40;
                let index = integer(block, &mut at, if indexed { 6 } else { 4 })?;
                self.name.clear();
                if index == 0 {
                    let name = string(block, &mut at, &mut self.huffman)?;
                    self.name.extend_from_slice(name);
                } else {
                    self.name.extend_from_slice(entry(&self.table, index)?.0);
                }
                let value = string(block, &mut at, &mut self.huffman)?;
                field(&self.name, value);
                if indexed {
                    let size = self.name.len() + value.len() + 32;
                    evict(&mut self.table, &mut self.size, self.max, size);
                    if size <= self.max {
                        self.size += size;
                        self.table
                            .push_front((self.name.as_slice().into(), value.into()));
                    }
                }
            }
            fields = true;
        }
        Ok(())
    }
}

/// Evicts the oldest entries of `table` (of `size`, at most `max`) until
/// `room` more bytes fit (RFC 7541 §4.4: all of them when `room` alone
/// exceeds `max`).
fn evict(table: &mut Table, size: &mut usize, max: usize, room: usize) {
    while *size + room > max {
        let Some((n, v)) = table.pop_back() else {
            break;
        };
        *size -= n.len() + v.len() + 32;
    }
}

/// The entry at `index` (static 1-61, then dynamic, newest first).
fn entry(table: &Table, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
    match index {
        0 => Err(HpackError::Index(0)),
        1..=61 => Ok(STATIC_TABLE[index - 1]),
        _ => table
            .get(index - 62)
            .map(|(n, v)| (&n[..], &v[..]))
            .ok_or(HpackError::Index(index)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, HpackError> {
        let mut out = Vec::new();
        d.decode(block, |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })?;
        Ok(out)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rfc_7541_c4_requests_with_huffman_share_the_dynamic_table() {
        let mut d = Decoder::new();
        let c41 = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        let base = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ];
        assert_eq!(decode(&mut d, &c41).unwrap(), pairs(&base));
        assert_eq!(d.size, 57);
        let c42 = [
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
        ];
        let mut want = base.to_vec();
        want.push(("cache-control", "no-cache"));
        assert_eq!(decode(&mut d, &c42).unwrap(), pairs(&want));
        assert_eq!(d.size, 110);
        let c43 = [
            0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f,
            0x89, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
        ];
        assert_eq!(
            decode(&mut d, &c43).unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ])
        );
        assert_eq!(d.size, 164);
    }

    #[test]
    fn entries_are_evicted_past_the_size_the_client_set() {
        let mut d = Decoder::new();
        // Size update to 60, then a 42-byte entry, then another: the
        // first is evicted.
        let mut block = vec![0x3f, 0x1d];
        block.extend([0x40, 1, b'a', 9]);
        block.extend(b"123456789");
        decode(&mut d, &block).unwrap();
        assert_eq!((d.table.len(), d.size), (1, 42));
        decode(
            &mut d,
            &[
                0x40, 1, b'b', 9, b'9', b'8', b'7', b'6', b'5', b'4', b'3', b'2', b'1',
            ],
        )
        .unwrap();
        assert_eq!(d.table.len(), 1);
        assert_eq!(
            decode(&mut d, &[0xbe]).unwrap(),
            pairs(&[("b", "987654321")])
        );
        assert_eq!(decode(&mut d, &[0xbf]), Err(HpackError::Index(63)));
    }

    #[test]
    fn malformed_blocks_are_errors() {
        let mut d = Decoder::new();
        assert_eq!(decode(&mut d, &[0x80]), Err(HpackError::Index(0)));
        assert_eq!(decode(&mut d, &[0x40, 5, b'a']), Err(HpackError::Truncated));
        assert_eq!(decode(&mut d, &[0xff, 0xff]), Err(HpackError::Truncated));
        assert_eq!(
            decode(&mut d, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(HpackError::Integer)
        );
        // A table size update after a field, and one past the limit.
        assert_eq!(
            decode(&mut d, &[0x82, 0x20]),
            Err(HpackError::LateSizeUpdate)
        );
        assert_eq!(
            decode(&mut d, &[0x3f, 0xe2, 0x1f]),
            Err(HpackError::TableSize(4097))
        );
        // Huffman: 8 bits of padding, padding with a zero, EOS inside.
        let mut out = Vec::new();
        assert_eq!(huffman_decode(&[0xff], &mut out), Err(HpackError::Huffman));
        assert_eq!(huffman_decode(&[0x1e], &mut out), Err(HpackError::Huffman));
        assert_eq!(
            huffman_decode(&[0xff, 0xff, 0xff, 0xfc], &mut out),
            Err(HpackError::Huffman)
        );
        out.clear();
        // "0" is 00000 (5 bits), padded with 111.
        huffman_decode(&[0x07], &mut out).unwrap();
        assert_eq!(out, b"0");
    }
}

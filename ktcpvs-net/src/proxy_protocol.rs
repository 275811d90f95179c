//! The PROXY protocol (HAProxy's specification, versions 1 and 2): the
//! header an L4 balancer in front of ktcpvs puts first on a connection to
//! say whose connection it is, and the header ktcpvs sends a real server
//! configured with `send_proxy`.
//!
//! Sans-I/O and allocation-free, in httparse's manner: [`parse`] reads a
//! header from the start of a byte slice and says how long it is (or that
//! more bytes are needed); [`encode`] writes one into a caller's array.
//! Strict: a v1 line must be exactly as the specification writes it
//! (single spaces, `TCP4` with IPv4 addresses, `TCP6` with IPv6, decimal
//! ports without leading zeros, `\r\n` within 107 bytes); a v2 header must
//! carry version 2, a known command, and an address block as long as its
//! family needs; anything else is an error, never a guess.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ktcpvs_core::model::ProxyVersion;

/// The signature that starts a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 line, `\r\n` included.
pub const V1_MAX: usize = 107;

/// The longest header [`parse`] accepts: a version 2 header with up to
/// this many bytes of addresses and TLVs after its 16-byte start. Longer
/// ones (the format allows 64 KiB) are refused: no balancer sends that much.
pub const MAX_HEADER: usize = 1024;

/// The longest header [`encode`] writes (a version 1 `TCP6` line).
pub const MAX_ENCODED: usize = V1_MAX;

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// How many bytes of the input it takes: the connection's own data
    /// starts there.
    pub len: usize,
    /// The version it was sent in.
    pub version: ProxyVersion,
    /// The original connection's source (the client) and destination;
    /// `None` for a v1 `UNKNOWN`, a v2 `LOCAL` (the balancer's own health
    /// check) or a v2 address family other than TCP over IPv4 or IPv6:
    /// the connection's own addresses stand.
    pub addresses: Option<Addresses>,
}

/// The addresses of the original connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The client.
    pub source: SocketAddr,
    /// The address the client connected to.
    pub destination: SocketAddr,
}

/// Why bytes are not a PROXY protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// They start with neither `PROXY ` nor the version 2 signature.
    #[error("the connection does not start with a PROXY protocol header")]
    NotProxy,
    /// A version 1 line is malformed (the field is named).
    #[error("malformed PROXY v1 header: bad {0}")]
    V1(&'static str),
    /// A version 1 line has no `\r\n` within 107 bytes.
    #[error("PROXY v1 header longer than 107 bytes")]
    V1TooLong,
    /// A version 2 header names a version other than 2.
    #[error("PROXY v2 header with version {0}")]
    V2Version(u8),
    /// A version 2 header names a command other than LOCAL or PROXY.
    #[error("PROXY v2 header with unknown command {0}")]
    V2Command(u8),
    /// A version 2 header names an unknown family or transport, or UDP.
    #[error("PROXY v2 header with unsupported family/transport byte {0:#04x}")]
    V2Family(u8),
    /// A version 2 address block is shorter than its family needs.
    #[error("PROXY v2 header too short for its addresses ({0} bytes)")]
    V2Short(u16),
    /// A version 2 header is longer than [`MAX_HEADER`].
    #[error("PROXY v2 header of {0} bytes is longer than accepted")]
    V2TooLong(usize),
}

/// Reads a PROXY protocol header (either version) from the start of
/// `buf`: `Ok(Some(header))` when complete, `Ok(None)` when `buf` is a
/// valid beginning of one that needs more bytes, an error when it cannot
/// be one.
///
/// ```
/// use ktcpvs_net::proxy_protocol::parse;
/// let h = parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\nGET / HTTP/1.1\r\n")
///     .unwrap()
///     .unwrap();
/// assert_eq!(h.len, 43);
/// let a = h.addresses.unwrap();
/// assert_eq!(a.source.to_string(), "192.0.2.1:5000");
/// assert_eq!(a.destination.to_string(), "198.51.100.2:80");
/// assert_eq!(parse(b"PROXY TCP4 192.0").unwrap(), None);
/// assert!(parse(b"GET / HTTP/1.1\r\n").is_err());
/// ```
pub fn parse(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

/// Whether `buf` is a prefix of `of` or starts with it.
fn agrees(buf: &[u8], of: &[u8]) -> bool {
    let n = buf.len().min(of.len());
    buf[..n] == of[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    if !agrees(buf, b"PROXY ") {
        return Err(ProxyError::NotProxy);
    }
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(cr) = memchr::memchr(b'\r', window) else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::V1TooLong)
        } else if window.contains(&b'\n') {
            Err(ProxyError::V1("line end"))
        } else {
            Ok(None)
        };
    };
    // The LF must fit in the 107 bytes too (found by the proxy_header
    // fuzz target: a CR as the 107th byte made a 108-byte header).
    if cr + 2 > V1_MAX {
        return Err(ProxyError::V1TooLong);
    }
    match buf.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        _ => return Err(ProxyError::V1("line end")),
    }
    if cr < 6 {
        return Err(ProxyError::NotProxy);
    }
    // A bare LF before the CR is not a line end either (found by the
    // proxy_header fuzz target: a shorter prefix said so, the whole line
    // did not).
    if buf[..cr].contains(&b'\n') {
        return Err(ProxyError::V1("line end"));
    }
    let line = &buf[6..cr];
    let header = |addresses| Header {
        len: cr + 2,
        version: ProxyVersion::V1,
        addresses,
    };
    if line.starts_with(b"UNKNOWN") {
        // "UNKNOWN", optionally followed by anything up to the line end.
        return match line.get(7) {
            None | Some(b' ') => Ok(Some(header(None))),
            Some(_) => Err(ProxyError::V1("protocol")),
        };
    }
    let mut fields = line.split(|&b| b == b' ');
    let family = fields.next().ok_or(ProxyError::V1("protocol"))?;
    let v6 = match family {
        b"TCP4" => false,
        b"TCP6" => true,
        _ => return Err(ProxyError::V1("protocol")),
    };
    let src = v1_ip(fields.next(), v6, "source address")?;
    let dst = v1_ip(fields.next(), v6, "destination address")?;
    let sport = v1_port(fields.next(), "source port")?;
    let dport = v1_port(fields.next(), "destination port")?;
    if fields.next().is_some() {
        return Err(ProxyError::V1("trailing field"));
    }
    Ok(Some(header(Some(Addresses {
        source: SocketAddr::new(src, sport),
        destination: SocketAddr::new(dst, dport),
    }))))
}

fn v1_ip(field: Option<&[u8]>, v6: bool, what: &'static str) -> Result<IpAddr, ProxyError> {
    let text = field
        .and_then(|f| std::str::from_utf8(f).ok())
        .ok_or(ProxyError::V1(what))?;
    if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    }
    .map_err(|_| ProxyError::V1(what))
}

fn v1_port(field: Option<&[u8]>, what: &'static str) -> Result<u16, ProxyError> {
    let digits = field.ok_or(ProxyError::V1(what))?;
    let plain = !digits.is_empty()
        && digits.len() <= 5
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1);
    if !plain {
        return Err(ProxyError::V1(what));
    }
    digits
        .iter()
        .try_fold(0u32, |n, d| Some(n * 10 + u32::from(d - b'0')))
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(ProxyError::V1(what))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    if !agrees(buf, &V2_SIGNATURE) {
        return Err(ProxyError::NotProxy);
    }
    if buf.len() < 16 {
        return Ok(None);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2Version(ver_cmd >> 4));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        other => return Err(ProxyError::V2Command(other)),
    };
    let family = buf[13];
    let block_len = u16::from_be_bytes([buf[14], buf[15]]);
    let len = 16 + usize::from(block_len);
    if len > MAX_HEADER {
        return Err(ProxyError::V2TooLong(len));
    }
    // The family byte is checked before the block arrives.
    let needed = match family {
        0x00 => 0,       // UNSPEC
        0x11 => 12,      // TCP over IPv4
        0x21 => 36,      // TCP over IPv6
        0x31 => 216,     // UNIX stream
        _ if local => 0, // LOCAL: the family is ignored
        _ => return Err(ProxyError::V2Family(family)),
    };
    if usize::from(block_len) < needed {
        return Err(ProxyError::V2Short(block_len));
    }
    let Some(block) = buf.get(16..len) else {
        return Ok(None);
    };
    let addresses = match (local, family) {
        (false, 0x11) => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    block[at],
                    block[at + 1],
                    block[at + 2],
                    block[at + 3],
                ))
            };
            Some(addresses(ip(0), ip(4), &block[8..12]))
        }
        (false, 0x21) => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            Some(addresses(ip(0), ip(16), &block[32..36]))
        }
        _ => None,
    };
    Ok(Some(Header {
        len,
        version: ProxyVersion::V2,
        addresses,
    }))
}

fn addresses(src: IpAddr, dst: IpAddr, ports: &[u8]) -> Addresses {
    Addresses {
        source: SocketAddr::new(src, u16::from_be_bytes([ports[0], ports[1]])),
        destination: SocketAddr::new(dst, u16::from_be_bytes([ports[2], ports[3]])),
    }
}

/// Writes a header of `version` for a connection from `source` to
/// `destination` into `out` and returns its length. When one address is
/// IPv4 and the other IPv6, both are written as IPv6 (the IPv4 one
/// mapped), as the format needs one family.
///
/// ```
/// use ktcpvs_core::model::ProxyVersion;
/// use ktcpvs_net::proxy_protocol::{encode, parse, MAX_ENCODED};
/// let (src, dst) = ("192.0.2.1:5000".parse().unwrap(), "198.51.100.2:80".parse().unwrap());
/// let mut out = [0u8; MAX_ENCODED];
/// let n = encode(ProxyVersion::V1, src, dst, &mut out);
/// assert_eq!(&out[..n], b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\n");
/// let n = encode(ProxyVersion::V2, src, dst, &mut out);
/// let back = parse(&out[..n]).unwrap().unwrap();
/// assert_eq!((back.len, back.addresses.unwrap().source), (n, src));
/// ```
pub fn encode(
    version: ProxyVersion,
    source: SocketAddr,
    destination: SocketAddr,
    out: &mut [u8; MAX_ENCODED],
) -> usize {
    let (src, dst) = same_family(source.ip(), destination.ip());
    match version {
        ProxyVersion::V1 => {
            let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            let capacity = out.len();
            let mut cursor: &mut [u8] = &mut out[..];
            // The longest line (two full IPv6 addresses) is 104 bytes: it
            // always fits.
            let _ = write!(
                cursor,
                "PROXY {family} {src} {dst} {} {}\r\n",
                source.port(),
                destination.port()
            );
            capacity - cursor.len()
        }
        ProxyVersion::V2 => {
            out[..12].copy_from_slice(&V2_SIGNATURE);
            out[12] = 0x21;
            let at = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out[13] = 0x11;
                    out[14..16].copy_from_slice(&12u16.to_be_bytes());
                    out[16..20].copy_from_slice(&s.octets());
                    out[20..24].copy_from_slice(&d.octets());
                    24
                }
                (s, d) => {
                    out[13] = 0x21;
                    out[14..16].copy_from_slice(&36u16.to_be_bytes());
                    out[16..32].copy_from_slice(&v6(s).octets());
                    out[32..48].copy_from_slice(&v6(d).octets());
                    48
                }
            };
            out[at..at + 2].copy_from_slice(&source.port().to_be_bytes());
            out[at + 2..at + 4].copy_from_slice(&destination.port().to_be_bytes());
            at + 4
        }
    }
}

/// Writes a header of `version` that carries no client (v1 `UNKNOWN`, v2
/// `LOCAL`): what a health probe sends a server that expects a header, so
/// the server uses the probe connection's own addresses. Returns its
/// length.
///
/// ```
/// use ktcpvs_core::model::ProxyVersion;
/// use ktcpvs_net::proxy_protocol::{encode_local, parse, MAX_ENCODED};
/// let mut out = [0u8; MAX_ENCODED];
/// let n = encode_local(ProxyVersion::V1, &mut out);
/// assert_eq!(&out[..n], b"PROXY UNKNOWN\r\n");
/// let n = encode_local(ProxyVersion::V2, &mut out);
/// assert_eq!(parse(&out[..n]).unwrap().unwrap().addresses, None);
/// ```
pub fn encode_local(version: ProxyVersion, out: &mut [u8; MAX_ENCODED]) -> usize {
    match version {
        ProxyVersion::V1 => {
            let line = b"PROXY UNKNOWN\r\n";
            out[..line.len()].copy_from_slice(line);
            line.len()
        }
        ProxyVersion::V2 => {
            out[..12].copy_from_slice(&V2_SIGNATURE);
            out[12..16].copy_from_slice(&[0x20, 0x00, 0x00, 0x00]);
            16
        }
    }
}

/// Both addresses in one family: IPv4 when both are IPv4 (or IPv4-mapped),
/// else IPv6.
fn same_family(a: IpAddr, b: IpAddr) -> (IpAddr, IpAddr) {
    let plain = |ip: IpAddr| match ip {
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    match (plain(a), plain(b)) {
        (a @ IpAddr::V4(_), b @ IpAddr::V4(_)) => (a, b),
        (a, b) => (IpAddr::V6(v6(a)), IpAddr::V6(v6(b))),
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests;

//! Endpoints: the `HOST[:PORT]` addresses that services listen on and real
//! servers answer at.
//!
//! The original KTCPVS accepted dotted quads or host names and ports as
//! numbers or `/etc/services` names (`www`, `http`, `webcache`), so its
//! example configurations say `192.168.0.12:www` and `0.0.0.0:webcache`.
//! [`Endpoint`] keeps the text as written (so a listing can print it back) and
//! [`Endpoint::resolve`] turns it into a [`SocketAddr`] when a command is
//! applied. IPv6 literals are written in brackets: `[::1]:8080`.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use crate::error::AddrError;

/// Well-known TCP service names accepted in place of a port number.
///
/// This is the subset of `/etc/services` that load-balancer configurations
/// use; it is built in so that a configuration means the same thing on every
/// machine.
pub const SERVICE_NAMES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("www", 80),
    ("www-http", 80),
    ("pop3", 110),
    ("imap", 143),
    ("https", 443),
    ("imaps", 993),
    ("pop3s", 995),
    ("mysql", 3306),
    ("postgresql", 5432),
    ("webcache", 8080),
    ("http-alt", 8080),
];

/// Looks up a port by number or by service name (`"80"`, `"www"`, `"webcache"`).
///
/// ```
/// assert_eq!(ktcpvs_core::endpoint::parse_port("webcache"), Some(8080));
/// assert_eq!(ktcpvs_core::endpoint::parse_port("8081"), Some(8081));
/// assert_eq!(ktcpvs_core::endpoint::parse_port("nope"), None);
/// ```
pub fn parse_port(text: &str) -> Option<u16> {
    if let Ok(n) = text.parse::<u16>() {
        return Some(n);
    }
    SERVICE_NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|&(_, port)| port)
}

/// The service name of a well-known port, as listings print it (`80` → `http`).
pub fn port_name(port: u16) -> Option<&'static str> {
    SERVICE_NAMES
        .iter()
        .find(|&&(_, p)| p == port)
        .map(|&(name, _)| name)
}

/// A `HOST[:PORT]` address as an operator wrote it, not yet resolved.
///
/// `host` is an IP literal or a host name; `port` is `None` when omitted
/// (the caller picks the default: 8080 for a listen address, the
/// service's port for a real server, see `docs/configuration.md`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The host part: an IPv4 or IPv6 literal (without brackets) or a name.
    pub host: String,
    /// The port, if one was given.
    pub port: Option<u16>,
}

impl Endpoint {
    /// An endpoint for a known socket address.
    pub fn from_addr(addr: SocketAddr) -> Self {
        Endpoint {
            host: addr.ip().to_string(),
            port: Some(addr.port()),
        }
    }

    /// Resolves the endpoint to one socket address, using `default_port` when
    /// no port was written. IP literals never touch the resolver; names use
    /// the system resolver (`/etc/hosts`, DNS) and take its first answer,
    /// preferring IPv4 as the original did.
    pub fn resolve(&self, default_port: u16) -> Result<SocketAddr, AddrError> {
        let port = self.port.unwrap_or(default_port);
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let addrs: Vec<SocketAddr> = (self.host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| AddrError::Resolve {
                host: self.host.clone(),
                reason: e.to_string(),
            })?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| AddrError::Resolve {
                host: self.host.clone(),
                reason: "no address found".to_string(),
            })
    }
}

impl FromStr for Endpoint {
    type Err = AddrError;

    /// Parses `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 literal.
    fn from_str(text: &str) -> Result<Self, AddrError> {
        let bad = |reason: &str| AddrError::Syntax {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(bad("empty address"));
        }
        let (host, port_text) = if let Some(rest) = text.strip_prefix('[') {
            let close = rest.find(']').ok_or_else(|| bad("missing ']'"))?;
            let host = &rest[..close];
            let after = &rest[close + 1..];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside brackets"));
            }
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(bad("unexpected text after ']'")),
            }
        } else if text.matches(':').count() > 1 {
            // A bare IPv6 literal such as `::1`: no port possible.
            if text.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not a valid address"));
            }
            (text, None)
        } else {
            match text.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        {
            return Err(bad("host contains characters not allowed in a host name"));
        }
        let port = match port_text {
            None => None,
            Some(p) => Some(parse_port(p).ok_or_else(|| AddrError::Port {
                text: p.to_string(),
            })?),
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// Formats a socket address the way listings do: `[v6]:port` for IPv6, and
/// the port as a service name unless `numeric` is set.
pub fn format_addr(addr: SocketAddr, numeric: bool) -> String {
    let port = match (numeric, port_name(addr.port())) {
        (false, Some(name)) => name.to_string(),
        _ => addr.port().to_string(),
    };
    match addr.ip() {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_v6() {
        let e: Endpoint = "192.168.0.12:www".parse().unwrap();
        assert_eq!(e.port, Some(80));
        let e: Endpoint = "0.0.0.0:webcache".parse().unwrap();
        assert_eq!(e.resolve(0).unwrap(), "0.0.0.0:8080".parse().unwrap());
        let e: Endpoint = "[::1]:81".parse().unwrap();
        assert_eq!(e.resolve(0).unwrap(), "[::1]:81".parse().unwrap());
        let e: Endpoint = "::1".parse().unwrap();
        assert_eq!(e.port, None);
        let e: Endpoint = "r1".parse().unwrap();
        assert_eq!(e.port, None);
        assert_eq!(e.to_string(), "r1");
    }

    #[test]
    fn rejects_bad_ports_and_hosts() {
        assert!(matches!(
            "h:70000".parse::<Endpoint>(),
            Err(AddrError::Port { .. })
        ));
        assert!(matches!(
            "h:nosuch".parse::<Endpoint>(),
            Err(AddrError::Port { .. })
        ));
        assert!("".parse::<Endpoint>().is_err());
        assert!(":80".parse::<Endpoint>().is_err());
        assert!("a b:80".parse::<Endpoint>().is_err());
        assert!("[::1".parse::<Endpoint>().is_err());
    }

    #[test]
    fn localhost_resolves() {
        let e: Endpoint = "localhost:www".parse().unwrap();
        assert_eq!(e.resolve(0).unwrap().port(), 80);
    }

    #[test]
    fn formats_with_and_without_names() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert_eq!(format_addr(a, false), "10.0.0.1:http");
        assert_eq!(format_addr(a, true), "10.0.0.1:80");
        let b: SocketAddr = "[::1]:9999".parse().unwrap();
        assert_eq!(format_addr(b, false), "[::1]:9999");
    }
}

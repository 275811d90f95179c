//! Lists of client networks (CIDR blocks), as configuration names them: the
//! sources trusted to send a PROXY protocol header (`proxy_protocol =
//! 10.0.0.0/8,127.0.0.1`). Parsing and containment come from `ipnet`; this
//! module adds the list, its text form and the IPv4-mapped IPv6 rule.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::ControlError;

/// Most networks one list holds.
pub const MAX_NETWORKS: usize = 64;

/// A list of IP networks, in the order configured; empty means none.
///
/// A network is `ADDRESS/PREFIX` or a bare address (a single host: `/32` or
/// `/128`). Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`), so the
/// printed form is canonical. An IPv4 client reached over an IPv6 socket
/// (`::ffff:10.1.2.3`) matches the IPv4 networks.
///
/// ```
/// use ktcpvs_core::network::Networks;
/// let trusted: Networks = "10.0.0.0/8, 127.0.0.1 ,fd00::/8".parse().unwrap();
/// assert!(trusted.contains("10.9.8.7".parse().unwrap()));
/// assert!(trusted.contains("::ffff:127.0.0.1".parse().unwrap()));
/// assert!(!trusted.contains("127.0.0.2".parse().unwrap()));
/// assert_eq!(trusted.to_string(), "10.0.0.0/8,127.0.0.1/32,fd00::/8");
/// assert!("10.0.0.0/33".parse::<Networks>().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// No network.
    pub fn none() -> Networks {
        Networks(Vec::new())
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many networks the list holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `addr` is in one of the networks.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = unmapped(addr);
        self.0.iter().any(|net| net.contains(&addr))
    }
}

/// `addr`, or the IPv4 address an IPv4-mapped IPv6 address carries.
fn unmapped(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

impl FromStr for Networks {
    type Err = ControlError;

    /// Parses networks separated by commas (blanks around them are
    /// ignored); `none` or an empty text is the empty list.
    fn from_str(text: &str) -> Result<Networks, ControlError> {
        let invalid = |reason: String| ControlError::Invalid {
            what: "networks",
            value: text.to_string(),
            reason,
        };
        let text_trimmed = text.trim();
        if text_trimmed.is_empty() || text_trimmed.eq_ignore_ascii_case("none") {
            return Ok(Networks::none());
        }
        let mut nets = Vec::new();
        for item in text_trimmed.split(',').map(str::trim) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(addr) => IpNet::from(addr),
                    Err(_) => {
                        return Err(invalid(format!(
                            "'{item}' is not ADDRESS/PREFIX or an address"
                        )))
                    }
                },
            };
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        if nets.len() > MAX_NETWORKS {
            return Err(invalid(format!("more than {MAX_NETWORKS} networks")));
        }
        Ok(Networks(nets))
    }
}

impl fmt::Display for Networks {
    /// The networks separated by commas, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_matches() {
        let n: Networks = "192.168.0.0/16,::1".parse().unwrap();
        assert_eq!(n.to_string(), "192.168.0.0/16,::1/128");
        assert!(n.contains("192.168.255.1".parse().unwrap()));
        assert!(n.contains("::1".parse().unwrap()));
        assert!(!n.contains("192.169.0.1".parse().unwrap()));
        assert!(!n.contains("::2".parse().unwrap()));
        // Host bits are cleared; duplicates are dropped.
        let n: Networks = "10.1.2.3/8,10.0.0.0/8".parse().unwrap();
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert_eq!(n.to_string().parse::<Networks>().unwrap(), n);
        assert!("none".parse::<Networks>().unwrap().is_empty());
        assert_eq!(Networks::none().to_string(), "none");
    }

    #[test]
    fn refuses_what_is_not_a_network() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0",
            "host.example",
            "10.0.0.0/8,,",
            "1.2.3.4/-1",
        ] {
            assert!(bad.parse::<Networks>().is_err(), "{bad}");
        }
        let many = (0..65)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect::<Vec<_>>();
        assert!(many.join(",").parse::<Networks>().is_err());
    }

    #[test]
    fn mapped_ipv4_matches_ipv4_networks() {
        let n: Networks = "127.0.0.0/8".parse().unwrap();
        assert!(n.contains("::ffff:127.0.0.9".parse().unwrap()));
        assert!(!n.contains("::ffff:128.0.0.9".parse().unwrap()));
    }
}

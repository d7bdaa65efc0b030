//! IP networks in CIDR notation, for `--proxy-protocol-from` and ban files.
//!
//! A v4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack socket
//! reports for a v4 client) is matched as its v4 form, so an operator writes
//! `1.2.3.0/24` once whatever the listening socket's family.

use std::fmt;
use std::net::IpAddr;

/// One network: an address and a prefix length, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// `ip` with a v4-mapped IPv6 address turned into its v4 form.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

/// The `prefix` leading bits of a `width`-bit number, as a mask.
fn mask(prefix: u8, width: u8) -> u128 {
    let full = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if prefix == 0 {
        0
    } else {
        (u128::MAX << (width - prefix)) & full
    }
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare `ADDR` (a single host). Host bits set
    /// in `ADDR` are accepted and cleared (`10.1.2.3/8` is `10.0.0.0/8`).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("not an IP address: {addr:?}"))?;
        let written_width = bits(ip).1;
        let ip = canonical(ip);
        let width = bits(ip).1;
        let prefix = match prefix {
            None => width,
            Some(p) => {
                let n: u8 = p
                    .parse()
                    .ok()
                    .filter(|n| *n <= written_width && p.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("bad prefix length {p:?} (0..={written_width})"))?;
                // a v4-mapped network keeps meaning the same v4 addresses
                if written_width != width {
                    n.checked_sub(96)
                        .ok_or_else(|| format!("prefix {n} is wider than the v4-mapped range"))?
                } else {
                    n
                }
            }
        };
        Ok(Cidr::new(ip, prefix))
    }

    fn new(ip: IpAddr, prefix: u8) -> Cidr {
        let (value, width) = bits(ip);
        let net = value & mask(prefix, width);
        let network = if width == 32 {
            IpAddr::V4((net as u32).into())
        } else {
            IpAddr::V6(net.into())
        };
        Cidr { network, prefix }
    }

    /// Whether `ip` (v4-mapped or not) is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (value, width) = bits(canonical(ip));
        let (net, net_width) = bits(self.network);
        width == net_width && value & mask(self.prefix, width) == net
    }

    /// A single host (`/32` or `/128`).
    pub fn is_host(&self) -> bool {
        self.prefix == bits(self.network).1
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn masks() {
        assert_eq!(mask(0, 32), 0);
        assert_eq!(mask(8, 32), 0xff00_0000);
        assert_eq!(mask(32, 32), 0xffff_ffff);
        assert_eq!(mask(1, 128), 1u128 << 127);
        assert_eq!(mask(128, 128), u128::MAX);
        assert_eq!(mask(127, 128), u128::MAX - 1);
    }

    #[test]
    fn v4_networks() {
        let c = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.9.9.9")), "v4-mapped matches");
        assert!(!c.contains(ip("::a09:909")), "v4-compatible is not v4");
        let any = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(any.contains(ip("1.2.3.4")));
        assert!(!any.contains(ip("2001:db8::1")), "families never mix");
        let host = Cidr::parse("192.0.2.7").unwrap();
        assert!(host.is_host());
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
    }

    #[test]
    fn v6_networks() {
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("10.0.0.1")));
        let host = Cidr::parse("::1").unwrap();
        assert_eq!(host.to_string(), "::1/128");
        assert!(host.contains(ip("::1")));
        let all = Cidr::parse("::/0").unwrap();
        assert!(all.contains(ip("fe80::1")));
    }

    #[test]
    fn v4_mapped_networks_are_v4() {
        let c = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.2.3.4")));
        assert!(Cidr::parse("::ffff:10.0.0.0/64").is_err());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0/8",
            "example.org",
            "10.0.0.0/8/8",
            "1.2.3.4/-1",
            "01.2.3.4",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

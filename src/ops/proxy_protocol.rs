//! PROXY protocol v1 and v2 headers (HAProxy's `proxy-protocol.txt`), as
//! sent by a load balancer in front of the game port, and the list of
//! sources trusted to send them (`--proxy-protocol-from`).
//!
//! [`parse`] is incremental: the glue calls it with every byte received so
//! far on a connection from a trusted source and gets `NeedMore` until a
//! header is complete, `Done` with its length and the client's address, or
//! `Invalid` as soon as the bytes so far cannot start a valid header (so a
//! stray client talking the game protocol is refused on its first byte, not
//! after a timeout). It never reads more than [`MAX_V1_HEADER`] or
//! [`MAX_V2_HEADER`] bytes, whatever the buffer holds.
//!
//! Policy, per the spec: v1 `UNKNOWN`, v2 `LOCAL` (the balancer's own health
//! checks) and v2 `UNSPEC`/`AF_UNIX` addresses are valid headers with no
//! client address (`source: None`): the connection keeps its socket peer.
//! v2 TLVs are skipped. Datagram transports are refused (this is a TCP port).

use super::cidr::{canonical, Cidr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest v1 header, CRLF included (the spec's worst case:
/// `PROXY UNKNOWN` with two full IPv6 addresses and ports).
pub const MAX_V1_HEADER: usize = 107;
/// Longest v2 header accepted: the 16 fixed bytes and 2032 bytes of
/// addresses and TLVs. The format allows 64 KiB; balancers send a few
/// dozen bytes, and a per-connection buffer must stay small.
pub const MAX_V2_HEADER: usize = 2048;

/// The 12 bytes that open every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";

/// What the bytes received so far amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A valid header may still follow: read more.
    NeedMore,
    /// A complete header of `consumed` bytes; the client's bytes follow it.
    /// `source` is the client's address, or `None` when the header carries
    /// none (v1 UNKNOWN, v2 LOCAL or UNSPEC): keep the socket's peer.
    Done {
        consumed: usize,
        source: Option<SocketAddr>,
    },
    /// Not a valid header; close the connection (and log the reason).
    Invalid(&'static str),
}

/// Parses a PROXY header (v1 or v2) at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    match buf.first() {
        None => Parsed::NeedMore,
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Parsed::Invalid("no PROXY header"),
    }
}

/// `buf` is a prefix of `expected` (or the other way round).
fn prefix_matches(buf: &[u8], expected: &[u8]) -> bool {
    let n = buf.len().min(expected.len());
    buf[..n] == expected[..n]
}

// ---- v1: `PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n` -------------------------

fn parse_v1(buf: &[u8]) -> Parsed {
    if !prefix_matches(buf, V1_PREFIX) {
        return Parsed::Invalid("no PROXY header");
    }
    let window = &buf[..buf.len().min(MAX_V1_HEADER)];
    let end = window.windows(2).position(|w| w == b"\r\n");
    let line = match end {
        Some(end) => &window[..end],
        None => {
            // the line so far, less a '\r' that may be the start of CRLF
            let partial = window.strip_suffix(b"\r").unwrap_or(window);
            if let Some(reason) = v1_prefix_error(partial) {
                return Parsed::Invalid(reason);
            }
            return if window.len() >= MAX_V1_HEADER {
                Parsed::Invalid("v1 header longer than 107 bytes")
            } else {
                Parsed::NeedMore
            };
        }
    };
    if let Some(reason) = v1_prefix_error(line) {
        return Parsed::Invalid(reason);
    }
    let consumed = line.len() + 2;
    // v1_prefix_error checked that the line is ASCII
    let Ok(text) = std::str::from_utf8(&line[V1_PREFIX.len()..]) else {
        return Parsed::Invalid("v1 header not ASCII");
    };
    let mut fields = text.split(' ');
    let family = fields.next().unwrap_or("");
    if family == "UNKNOWN" {
        // the spec: ignore whatever follows UNKNOWN up to the CRLF
        return Parsed::Done {
            consumed,
            source: None,
        };
    }
    let fields: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Parsed::Invalid("v1 header needs 4 fields after the family");
    };
    // the destination is checked for form but not used: it is us
    let src: IpAddr = match family {
        "TCP4" => match (src.parse::<Ipv4Addr>(), dst.parse::<Ipv4Addr>()) {
            (Ok(s), Ok(_)) => s.into(),
            _ => return Parsed::Invalid("v1 TCP4 address is not IPv4"),
        },
        "TCP6" => match (src.parse::<Ipv6Addr>(), dst.parse::<Ipv6Addr>()) {
            (Ok(s), Ok(_)) => s.into(),
            _ => return Parsed::Invalid("v1 TCP6 address is not IPv6"),
        },
        _ => return Parsed::Invalid("v1 family is not TCP4, TCP6 or UNKNOWN"),
    };
    match (v1_port(sport), v1_port(dport)) {
        (Some(sport), Some(_)) => Parsed::Done {
            consumed,
            source: Some(SocketAddr::new(src, sport)),
        },
        _ => Parsed::Invalid("v1 port is not a number in 0..=65535"),
    }
}

/// Why the start of a v1 line (without CRLF) cannot be valid, if it cannot.
fn v1_prefix_error(line: &[u8]) -> Option<&'static str> {
    if line.iter().any(|b| !(b' '..=b'~').contains(b)) {
        return Some("v1 header has a control or non-ASCII byte");
    }
    let rest = line.get(V1_PREFIX.len()..).unwrap_or(&[]);
    let family_len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let family = &rest[..family_len];
    let known = [&b"TCP4"[..], b"TCP6", b"UNKNOWN"];
    let complete = family_len < rest.len();
    let fits = known.iter().any(|k| {
        if complete {
            family == *k
        } else {
            k.starts_with(family)
        }
    });
    if !fits {
        return Some("v1 family is not TCP4, TCP6 or UNKNOWN");
    }
    if family != b"UNKNOWN" && line.windows(2).any(|w| w == b"  ") {
        return Some("v1 header has an empty field");
    }
    None
}

/// A decimal port: 1 to 5 digits, at most 65535.
fn v1_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

// ---- v2: signature, ver/cmd, family, length, addresses, TLVs -----------------

const V2_FIXED: usize = 16;
const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
// family 0x0 is AF_UNSPEC: valid, no address
const FAMILY_INET: u8 = 0x1;
const FAMILY_INET6: u8 = 0x2;
const FAMILY_UNIX: u8 = 0x3;
const TRANSPORT_DGRAM: u8 = 0x2;

fn parse_v2(buf: &[u8]) -> Parsed {
    if !prefix_matches(buf, &V2_SIGNATURE) {
        return Parsed::Invalid("no PROXY header");
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Parsed::NeedMore;
    };
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid("v2 version is not 2");
    }
    let command = ver_cmd & 0x0f;
    if command != CMD_LOCAL && command != CMD_PROXY {
        return Parsed::Invalid("v2 command is not LOCAL or PROXY");
    }
    let Some(&fam) = buf.get(13) else {
        return Parsed::NeedMore;
    };
    let (family, transport) = (fam >> 4, fam & 0x0f);
    // LOCAL: the spec says the family is ignored
    if command == CMD_PROXY {
        if family > FAMILY_UNIX || transport > TRANSPORT_DGRAM {
            return Parsed::Invalid("v2 unknown address family or transport");
        }
        if transport == TRANSPORT_DGRAM {
            return Parsed::Invalid("v2 datagram transport on a TCP port");
        }
    }
    let (Some(&hi), Some(&lo)) = (buf.get(14), buf.get(15)) else {
        return Parsed::NeedMore;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let consumed = V2_FIXED + len;
    if consumed > MAX_V2_HEADER {
        return Parsed::Invalid("v2 header longer than accepted");
    }
    let needed = match (command, family) {
        (CMD_PROXY, FAMILY_INET) => 12,
        (CMD_PROXY, FAMILY_INET6) => 36,
        (CMD_PROXY, FAMILY_UNIX) => 216,
        _ => 0,
    };
    if len < needed {
        return Parsed::Invalid("v2 length too short for its address family");
    }
    let Some(body) = buf.get(V2_FIXED..consumed) else {
        return Parsed::NeedMore;
    };
    let source = match (command, family) {
        (CMD_PROXY, FAMILY_INET) => {
            let ip = [body[0], body[1], body[2], body[3]];
            let port = u16::from_be_bytes([body[8], body[9]]);
            Some(SocketAddr::new(Ipv4Addr::from(ip).into(), port))
        }
        (CMD_PROXY, FAMILY_INET6) => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&body[0..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Some(SocketAddr::new(Ipv6Addr::from(ip).into(), port))
        }
        _ => None,
    };
    Parsed::Done { consumed, source }
}

// ---- trusted sources -----------------------------------------------------------

/// The networks allowed to send PROXY headers (`--proxy-protocol-from`).
/// Connections from elsewhere are never parsed for one: a client cannot
/// claim another address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedSources {
    nets: Vec<Cidr>,
}

impl TrustedSources {
    /// Parses `CIDR[,CIDR...]` (v4 or v6, a bare address is one host).
    pub fn parse(list: &str) -> Result<TrustedSources, String> {
        let nets = list
            .split(',')
            .map(|item| Cidr::parse(item).map_err(|e| format!("--proxy-protocol-from: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedSources { nets })
    }

    /// Whether a connection from `ip` must start with a PROXY header.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn networks(&self) -> &[Cidr] {
        &self.nets
    }
}

#[cfg(test)]
#[path = "proxy_protocol_tests.rs"]
mod tests;

//! The few system calls std does not expose, for the many-connection modes (`idle`, `lobby`):
//! binding a socket to a chosen source address *before* its non-blocking connect (one source
//! address can hold only about 28k connections to one server port, so 50k connections need
//! several loopback sources): socket2, with libc only for the one socket option socket2 does
//! not wrap. The open-file limit is in limits.rs.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

/// Most source addresses `--sources` may list (a /16 of loopback is far beyond any real need).
const MAX_SOURCES: usize = 65_536;

/// Parses `--sources`: a comma-separated list of addresses and IPv4 ranges. A range is
/// `A-B` with B either a full address (`127.0.0.1-127.0.0.4`) or the last octet only
/// (`127.0.0.1-4`). Order is kept; connections use the sources round-robin.
pub fn parse_sources(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("--sources: empty entry in {text:?}"));
        }
        match item.split_once('-') {
            None => out.push(
                item.parse::<IpAddr>()
                    .map_err(|_| format!("--sources: {item:?} is not an IP address"))?,
            ),
            Some((a, b)) => {
                let first: Ipv4Addr = a.trim().parse().map_err(|_| {
                    format!("--sources: {a:?} is not an IPv4 address (ranges are IPv4 only)")
                })?;
                let b = b.trim();
                let last: Ipv4Addr = if let Ok(full) = b.parse::<Ipv4Addr>() {
                    full
                } else if let Ok(octet) = b.parse::<u8>() {
                    let o = first.octets();
                    Ipv4Addr::new(o[0], o[1], o[2], octet)
                } else {
                    return Err(format!(
                        "--sources: range end {b:?} is neither an IPv4 address nor a last octet"
                    ));
                };
                let (lo, hi) = (u32::from(first), u32::from(last));
                if hi < lo {
                    return Err(format!("--sources: range {item:?} ends before it starts"));
                }
                if (hi - lo) as usize >= MAX_SOURCES {
                    return Err(format!("--sources: range {item:?} is too large"));
                }
                out.extend((lo..=hi).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
            }
        }
        if out.len() > MAX_SOURCES {
            return Err(format!("--sources: more than {MAX_SOURCES} addresses"));
        }
    }
    Ok(out)
}

/// The source address of connection `i`: round-robin over `sources`, `None` when empty.
pub fn source_for(sources: &[IpAddr], i: usize) -> Option<IpAddr> {
    (!sources.is_empty()).then(|| sources[i % sources.len()])
}

/// Starts a non-blocking TCP connect to `addr`, from `source` when given (bound with port 0
/// before the connect; the kernel then picks the local port at connect time, per source address,
/// thanks to IP_BIND_ADDRESS_NO_PORT). Completion is signalled by WRITABLE, as with
/// `mio::net::TcpStream::connect`.
pub fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<mio::net::TcpStream> {
    let Some(source) = source else {
        return mio::net::TcpStream::connect(addr);
    };
    if source.is_ipv4() != addr.is_ipv4() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("source address {source} and server address {addr} are of different families"),
        ));
    }
    // socket2 opens the socket with CLOEXEC; it is closed on every error path (dropped).
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    // Best effort: without it, bind() reserves a port per (source, port) right away, which
    // still gives each source its own ~28k ports.
    bind_address_no_port(&socket);
    socket.bind(&SocketAddr::new(source, 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

/// Sets IP_BIND_ADDRESS_NO_PORT (Linux), which socket2 does not wrap; errors are ignored.
fn bind_address_no_port(socket: &Socket) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a c_int that outlives the call,
    // on a descriptor `socket` owns.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_lists_and_ranges() {
        assert_eq!(parse_sources("127.0.0.1").unwrap(), vec![v4("127.0.0.1")]);
        assert_eq!(
            parse_sources("127.0.0.1, 127.0.0.9").unwrap(),
            vec![v4("127.0.0.1"), v4("127.0.0.9")]
        );
        let r = parse_sources("127.0.0.1-127.0.0.4").unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[3], v4("127.0.0.4"));
        assert_eq!(parse_sources("127.0.0.1-4").unwrap(), r);
        // crossing an octet boundary
        let r = parse_sources("127.0.0.255-127.0.1.1").unwrap();
        assert_eq!(r, vec![v4("127.0.0.255"), v4("127.0.1.0"), v4("127.0.1.1")]);
        assert_eq!(parse_sources("::1").unwrap(), vec![v4("::1")]);
        for bad in [
            "",
            "127.0.0.1,",
            "nowhere",
            "127.0.0.4-1",
            "127.0.0.1-x",
            "::1-::2",
            "1.0.0.0-2.0.0.0",
        ] {
            assert!(parse_sources(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn connects_from_the_chosen_source() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for src in ["127.0.0.1", "127.0.0.2"] {
            let s = connect_from(addr, Some(v4(src))).unwrap();
            let (accepted, peer) = listener.accept().unwrap();
            assert_eq!(peer.ip(), v4(src));
            assert_eq!(s.local_addr().unwrap().ip(), v4(src));
            drop(accepted);
        }
        let _ = connect_from(addr, None).unwrap();
        listener.accept().unwrap();
        let e = connect_from(addr, Some(v4("::1"))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}

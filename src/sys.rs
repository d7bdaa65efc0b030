//! Socket options and process limits std does not expose: TCP keepalive
//! (socket2), the open-files limit (rlimit), memory figures and trimming.

use socket2::{SockRef, TcpKeepalive};
use std::time::Duration;

/// TCP keepalive with short probes: a peer that vanished without FIN or RST
/// (power cut, NAT timeout) is found after about `idle + 3 * interval`
/// without any application ping. VCMI 1.1 launchers cannot answer the
/// healthcheck and game pipes have no pings of their own, so this is how
/// their dead peers are noticed.
pub fn set_keepalive(
    sock: &mio::net::TcpStream,
    idle: Duration,
    interval: Duration,
) -> std::io::Result<()> {
    let keepalive = TcpKeepalive::new()
        .with_time(idle)
        .with_interval(interval)
        .with_retries(3);
    SockRef::from(sock).set_tcp_keepalive(&keepalive)
}

/// The soft limit on open files, raised to the hard limit first (a server
/// that may hold tens of thousands of sockets wants all it is allowed).
pub fn raise_nofile_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::Resource::NOFILE.get().map(|(soft, _)| soft))
        .unwrap_or(1024)
}

/// Resident set size of this process in bytes (Linux), for the statistics.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Gives memory freed by transient large buffers (user lists of a big lobby)
/// back to the system. glibc keeps freed heap otherwise, which made an idle
/// lobby that had seen a login storm hold ~3 KB per user instead of ~1 KB.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_is_set_as_asked() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let stream = mio::net::TcpStream::from_std(std_stream);
        set_keepalive(&stream, Duration::from_secs(30), Duration::from_secs(10)).unwrap();
        let sock = SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(30));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
    }

    #[test]
    fn the_nofile_limit_is_at_least_the_default() {
        assert!(raise_nofile_limit() >= 256);
    }
}

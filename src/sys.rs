//! The few system calls std does not expose.

use std::os::fd::AsRawFd;

/// TCP keepalive with short probes: a peer that vanished without FIN or RST
/// (power cut, NAT timeout) is found after about `idle + 3 * interval`
/// seconds without any application ping. VCMI 1.1 launchers cannot answer
/// the healthcheck and game pipes have no pings of their own, so this is how
/// their dead peers are noticed.
pub fn set_keepalive(
    sock: &impl AsRawFd,
    idle_secs: i32,
    interval_secs: i32,
) -> std::io::Result<()> {
    let fd = sock.as_raw_fd();
    let set = |level, name, value: i32| {
        // SAFETY: fd is an open socket owned by the caller; the option value
        // is a plain int of the size we pass.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle_secs)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, interval_secs)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3)
}

/// The soft limit on open files, raised to the hard limit first (a server
/// that may hold tens of thousands of sockets wants all it is allowed).
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
    let n = lim.rlim_cur as u64;
    n
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

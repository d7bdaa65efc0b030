//! Naming and explaining I/O errors: a short stable key per error for the `errors` JSON object,
//! whether it means this machine ran out of a resource, and the operator hint for it.

/// Short stable name for an I/O error, used as a key in the `errors` JSON object.
pub fn io_error_name(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(24) => "EMFILE",
        Some(23) => "ENFILE",
        Some(99) => "EADDRNOTAVAIL",
        Some(98) => "EADDRINUSE",
        Some(111) => "ECONNREFUSED",
        Some(104) => "ECONNRESET",
        Some(110) => "ETIMEDOUT",
        Some(32) => "EPIPE",
        Some(105) => "ENOBUFS",
        Some(12) => "ENOMEM",
        Some(113) => "EHOSTUNREACH",
        Some(101) => "ENETUNREACH",
        _ => match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timeout",
            std::io::ErrorKind::UnexpectedEof => "eof",
            _ => "io_error",
        },
    }
}

/// Whether the error means this machine ran out of something (descriptors, ports, memory), so
/// further connection attempts are pointless.
pub fn is_local_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(24 | 23 | 99 | 105 | 12))
}

/// Error text with an operator hint for the resource errors load tests typically hit.
pub fn io_error_text(e: &std::io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(24) => " - the per-process open-file limit (EMFILE) is reached: vcmi-load already raised its soft limit to the hard limit; raise the hard limit (`ulimit -Hn`, as root) or split the load over several processes",
        Some(23) => " - the system-wide file table is full (ENFILE): raise fs.file-max",
        Some(99) => " - no free local port (EADDRNOTAVAIL): one source address can only hold ~28k connections to one server port; add source addresses with --sources (e.g. 127.0.0.1-127.0.0.4) or widen net.ipv4.ip_local_port_range",
        _ => "",
    };
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut if hint.is_empty() => {
            format!("{e} (timed out; the global --timeout bounds every wait)")
        }
        _ => format!("{e}{hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_and_hints() {
        let e = std::io::Error::from_raw_os_error(24);
        assert_eq!(io_error_name(&e), "EMFILE");
        assert!(is_local_exhaustion(&e));
        assert!(io_error_text(&e).contains("ulimit -Hn"));
        let e = std::io::Error::from_raw_os_error(99);
        assert!(io_error_text(&e).contains("--sources"));
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(io_error_name(&e), "ECONNREFUSED");
        assert!(!is_local_exhaustion(&e));
    }
}

//! The open-file limit (RLIMIT_NOFILE): raised to the hard limit at start, read back from
//! `/proc/self/limits`, and checked against the sockets a mode is about to open.

use std::io;

use rlimit::Resource;

/// RLIMIT_NOFILE before and after raising the soft limit to the hard limit.
#[derive(Clone, Copy, Debug)]
pub struct NoFile {
    pub soft_before: u64,
    pub soft: u64,
    /// `None`: unlimited.
    pub hard: Option<u64>,
}

/// Raises the soft open-file limit to the hard limit (the most an unprivileged process may use;
/// raising the hard limit itself needs CAP_SYS_RESOURCE, i.e. `ulimit -Hn` as root).
pub fn raise_nofile() -> io::Result<NoFile> {
    let (soft_before, hard) = rlimit::getrlimit(Resource::NOFILE)?;
    if soft_before < hard {
        rlimit::setrlimit(Resource::NOFILE, hard, hard)?;
    }
    Ok(NoFile {
        soft_before,
        soft: soft_before.max(hard),
        hard: (hard != rlimit::INFINITY).then_some(hard),
    })
}

/// Soft and hard RLIMIT_NOFILE from `/proc/self/limits` (Linux).
/// `None` when unknown; a hard limit of `None` means unlimited.
pub fn nofile_limits() -> Option<(u64, Option<u64>)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_nofile(&text)
}

fn parse_nofile(limits: &str) -> Option<(u64, Option<u64>)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let soft = it.next()?;
    let hard = it.next()?;
    let num = |v: &str| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    };
    let soft = num(soft)?;
    let hard = num(hard)?;
    Some((soft, (hard != u64::MAX).then_some(hard)))
}

/// Warns up front when `sockets` will not fit under the open-file limit, so an operator learns
/// about `ulimit -n` before waiting for the run; returns the soft limit for the report.
pub fn check_nofile(sockets: usize) -> Option<u64> {
    let (soft, hard) = nofile_limits()?;
    let need = sockets as u64 + 32; // stdio, poll fd, listener, slack
    if need > soft {
        let hard = hard.map_or("unlimited".to_string(), |h| h.to_string());
        eprintln!(
            "vcmi-load: warning: {sockets} sockets need about {need} file descriptors but the limit is {soft} \
             (hard {hard}, already raised to it); raise the hard limit (`ulimit -Hn {need}` as root) - expect EMFILE"
        );
    }
    Some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile(text), Some((1024, Some(524288))));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile(text), Some((u64::MAX, None)));
        assert_eq!(parse_nofile("nothing"), None);
    }

    #[test]
    fn nofile_is_raised_to_the_hard_limit() {
        let n = raise_nofile().unwrap();
        assert!(n.soft >= n.soft_before);
        if let Some(h) = n.hard {
            assert_eq!(n.soft, h);
        }
    }
}

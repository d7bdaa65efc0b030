//! The ban file (`--ban-file PATH`), re-read on SIGHUP.
//!
//! One entry a line: an IP address (`192.0.2.7`, `2001:db8::7`), a network
//! (`198.51.100.0/24`, `2001:db8::/32`) or `name:USERNAME`. Names compare
//! case-insensitively. `#` starts a comment (whole line or after an entry);
//! blank lines are ignored. A line that is none of these fails the whole
//! file with its line number: the caller keeps the list it had, so a typo
//! never lifts every ban at once.

use super::cidr::{canonical, Cidr};
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

/// Largest ban file read; a bigger one is refused (kept list stays).
pub const MAX_BAN_FILE: u64 = 16 * 1024 * 1024;

/// The banned addresses, networks and names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BanList {
    /// Single addresses, looked up in O(1) (most ban lists are only these).
    hosts: HashSet<IpAddr>,
    networks: Vec<Cidr>,
    /// Lower-cased.
    names: HashSet<String>,
}

/// Why a ban file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanFileError {
    /// 1-based line of the first bad entry; 0 when the file itself failed
    /// (unreadable, too big, not UTF-8).
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for BanFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl std::error::Error for BanFileError {}

fn fold(name: &str) -> String {
    name.to_lowercase()
}

impl BanList {
    /// Parses a ban file's text.
    pub fn parse(text: &str) -> Result<BanList, BanFileError> {
        let mut list = BanList::default();
        for (index, raw) in text.lines().enumerate() {
            let entry = raw.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let error = |reason: String| BanFileError {
                line: index + 1,
                reason,
            };
            if let Some(name) = entry.strip_prefix("name:") {
                let name = name.trim();
                if name.is_empty() {
                    return Err(error("`name:` without a user name".into()));
                }
                list.names.insert(fold(name));
                continue;
            }
            let net = Cidr::parse(entry)
                .map_err(|e| error(format!("{e} (expected an IP, a CIDR or name:USERNAME)")))?;
            if net.is_host() {
                list.hosts.insert(net.network());
            } else {
                list.networks.push(net);
            }
        }
        Ok(list)
    }

    /// Reads and parses the file at `path` (at most [`MAX_BAN_FILE`] bytes).
    pub fn load(path: &Path) -> Result<BanList, BanFileError> {
        let text = super::motd::read_bounded(path, MAX_BAN_FILE)
            .map_err(|reason| BanFileError { line: 0, reason })?;
        BanList::parse(&text)
    }

    /// Whether a connection from `ip` is refused (v4-mapped IPv6 is matched
    /// as its v4 form).
    pub fn is_banned_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.hosts.contains(&ip) || self.networks.iter().any(|n| n.contains(ip))
    }

    /// Whether the user name `name` is refused, whatever its case.
    pub fn is_banned_name(&self, name: &str) -> bool {
        !self.names.is_empty() && self.names.contains(&fold(name))
    }

    /// Entries in the list, for the reload log line.
    pub fn len(&self) -> usize {
        self.hosts.len() + self.networks.len() + self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const SAMPLE: &str = "\
# abusers, 2026-11
192.0.2.7
198.51.100.0/24   # a whole range
2001:db8::/32

  ::ffff:203.0.113.9
name:Griefer
name: SpAmBoT  # trailing comment
";

    #[test]
    fn parses_every_kind_of_entry() {
        let bans = BanList::parse(SAMPLE).unwrap();
        assert_eq!(bans.len(), 6);
        for banned in [
            "192.0.2.7",
            "::ffff:192.0.2.7",
            "198.51.100.200",
            "2001:db8:1::1",
            "203.0.113.9",
            "::ffff:203.0.113.9",
        ] {
            assert!(bans.is_banned_ip(ip(banned)), "{banned}");
        }
        for free in [
            "192.0.2.8",
            "198.51.101.1",
            "2001:db9::1",
            "::1",
            "127.0.0.1",
        ] {
            assert!(!bans.is_banned_ip(ip(free)), "{free}");
        }
        for banned in ["Griefer", "griefer", "GRIEFER", "spambot", "SpamBot"] {
            assert!(bans.is_banned_name(banned), "{banned}");
        }
        for free in ["Griefer2", "", "spam", "192.0.2.7"] {
            assert!(!bans.is_banned_name(free), "{free}");
        }
    }

    #[test]
    fn non_ascii_names_fold_case() {
        let bans = BanList::parse("name:Ärger\r\n").unwrap();
        assert!(bans.is_banned_name("äRGER"));
    }

    #[test]
    fn an_empty_file_bans_nothing() {
        for text in ["", "\n\n", "# nothing yet\n"] {
            let bans = BanList::parse(text).unwrap();
            assert!(bans.is_empty());
            assert!(!bans.is_banned_ip(ip("192.0.2.7")));
            assert!(!bans.is_banned_name("anyone"));
        }
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("192.0.2.7\n\n192.0.2.300\n", 3),
            ("# ok\nname:\n", 2),
            ("10.0.0.0/33", 1),
            ("\n\n\nuser:bob\n", 4),
            ("192.0.2.7 192.0.2.8\n", 1),
        ];
        for (text, line) in cases {
            let e = BanList::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")));
        }
    }

    #[test]
    fn load_reads_the_file_and_reports_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("vcmi-bans-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bans.txt");
        std::fs::write(&path, SAMPLE).unwrap();
        assert_eq!(
            BanList::load(&path).unwrap(),
            BanList::parse(SAMPLE).unwrap()
        );
        std::fs::remove_file(&path).unwrap();
        let e = BanList::load(&path).unwrap_err();
        assert_eq!(e.line, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

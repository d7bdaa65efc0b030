//! The message of the day (`--motd-file PATH`), re-read on SIGHUP and sent
//! to every user after login as `System` chat lines.
//!
//! The text is bounded ([`MAX_MOTD`]), a UTF-8 BOM and trailing blank lines
//! are dropped, and it is split into lines (one chat message each: the
//! launcher shows one line per message). Control characters other than tab
//! become spaces. `:>>` is NOT neutralised here: the lobby's outbox does it
//! for every `MSG` it sends, as for user chat, and encodes per recipient.

use std::io::Read;
use std::path::Path;

/// Largest MOTD file accepted; a bigger one is refused (the previous
/// message stays), since every login would send it.
pub const MAX_MOTD: u64 = 4 * 1024;
/// Most lines sent; the rest of a file that long is dropped.
pub const MAX_MOTD_LINES: usize = 20;

/// A loaded message of the day: its chat lines, none empty at the ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Motd {
    lines: Vec<String>,
}

impl Motd {
    /// From the file's text.
    pub fn parse(text: &str) -> Motd {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| {
                l.chars()
                    .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let leading = lines.iter().take_while(|l| l.is_empty()).count();
        lines.drain(..leading);
        lines.truncate(MAX_MOTD_LINES);
        Motd { lines }
    }

    /// Reads the file at `path`; an error (missing, too big, not UTF-8) is
    /// for the log, and the caller keeps its previous message.
    pub fn load(path: &Path) -> Result<Motd, String> {
        read_bounded(path, MAX_MOTD).map(|text| Motd::parse(&text))
    }

    /// The lines to send, in order; empty lines inside are kept (as a
    /// single space would be, they separate paragraphs).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// The UTF-8 text of the file at `path`, refused beyond `limit` bytes.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{}: larger than {limit} bytes", path.display()));
    }
    String::from_utf8(bytes).map_err(|e| format!("{}: not UTF-8 ({e})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_splits() {
        let m = Motd::parse("\u{feff}\r\n\nWelcome!\r\nRules:\tbe nice  \n\n  no bots\n\n\n");
        assert_eq!(m.lines(), ["Welcome!", "Rules:\tbe nice", "", "  no bots"]);
        assert!(Motd::parse("\n \n").is_empty());
    }

    #[test]
    fn control_characters_become_spaces() {
        let m = Motd::parse("a\u{1}b\u{1b}[31mc\u{7f}");
        assert_eq!(m.lines(), ["a b [31mc"]);
    }

    #[test]
    fn keeps_server_markers_for_the_outbox_to_neutralise() {
        assert_eq!(Motd::parse("x:>>START:y").lines(), ["x:>>START:y"]);
    }

    #[test]
    fn line_count_is_bounded() {
        let text = (0..100).map(|i| format!("line {i}\n")).collect::<String>();
        let m = Motd::parse(&text);
        assert_eq!(m.lines().len(), MAX_MOTD_LINES);
        assert_eq!(
            m.lines()[MAX_MOTD_LINES - 1],
            format!("line {}", MAX_MOTD_LINES - 1)
        );
    }

    #[test]
    fn load_bounds_the_file() {
        let dir = std::env::temp_dir().join(format!("vcmi-motd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("motd.txt");
        std::fs::write(&path, "hello\n").unwrap();
        assert_eq!(Motd::load(&path).unwrap().lines(), ["hello"]);
        std::fs::write(&path, vec![b'x'; MAX_MOTD as usize]).unwrap();
        assert_eq!(
            Motd::load(&path).unwrap().lines()[0].len(),
            MAX_MOTD as usize
        );
        std::fs::write(&path, vec![b'x'; MAX_MOTD as usize + 1]).unwrap();
        assert!(Motd::load(&path).unwrap_err().contains("larger than"));
        std::fs::write(&path, b"\xff\xfe").unwrap();
        assert!(Motd::load(&path).unwrap_err().contains("not UTF-8"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(Motd::load(&path).is_err());
    }
}

//! Splitting a decoded frame into `<TAG>value` commands (PROTOCOL.md §5.1).
//!
//! Iterative on purpose: the reference recursed once per command and died at
//! about a thousand commands in one frame (D15); here a frame may hold as many
//! commands as the frame-size cap allows.

/// One command of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    pub tag: &'a str,
    pub value: &'a str,
}

/// Why the rest of a frame could not be read as commands. The reference logs
/// these as "Incorrect message" and drops the remainder of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// No `<`, or nothing after the last `<`.
    NoTag,
    /// A `<` without a closing `>`, or an empty tag `<>`.
    BadTag,
}

/// Iterator over the commands of one frame's text. Text before the first
/// `<` is ignored; a value runs up to the next `<`.
#[derive(Debug, Clone)]
pub struct Commands<'a> {
    rest: &'a str,
    first: bool,
    done: bool,
}

impl<'a> Commands<'a> {
    pub fn new(text: &'a str) -> Self {
        Commands {
            rest: text,
            first: true,
            done: false,
        }
    }
}

impl<'a> Iterator for Commands<'a> {
    type Item = Result<Command<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let first = std::mem::replace(&mut self.first, false);
        let start = match self.rest.find('<') {
            Some(i) => i,
            None => {
                self.done = true;
                // a frame that simply ended after its last value is fine;
                // only a frame without any tag at all is malformed
                return first.then_some(Err(Malformed::NoTag));
            }
        };
        let after = &self.rest[start + 1..];
        if after.is_empty() {
            self.done = true;
            return Some(Err(Malformed::NoTag));
        }
        let Some(close) = after.find('>') else {
            self.done = true;
            return Some(Err(Malformed::BadTag));
        };
        let tag = &after[..close];
        if tag.is_empty() {
            self.done = true;
            return Some(Err(Malformed::BadTag));
        }
        let body = &after[close + 1..];
        let end = body.find('<').unwrap_or(body.len());
        let value = &body[..end];
        self.rest = &body[end..];
        if self.rest.is_empty() {
            self.done = true;
        }
        Some(Ok(Command { tag, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Result<(String, String), Malformed>> {
        Commands::new(text)
            .map(|r| r.map(|c| (c.tag.to_string(), c.value.to_string())))
            .collect()
    }

    fn ok(t: &str, v: &str) -> Result<(String, String), Malformed> {
        Ok((t.to_string(), v.to_string()))
    }

    #[test]
    fn launcher_frames() {
        assert_eq!(
            parse("\u{5}\u{4}utf8<GREETINGS>alice<VER>VCMI 1.4.0"),
            vec![ok("GREETINGS", "alice"), ok("VER", "VCMI 1.4.0")]
        );
        assert_eq!(
            parse("<NEW>Room1<PSWD><COUNT>2<MODS>"),
            vec![
                ok("NEW", "Room1"),
                ok("PSWD", ""),
                ok("COUNT", "2"),
                ok("MODS", "")
            ]
        );
    }

    #[test]
    fn reference_edge_cases() {
        assert_eq!(parse("x<MSG>hi"), vec![ok("MSG", "hi")]);
        assert_eq!(
            parse("<MSG>a<"),
            vec![ok("MSG", "a"), Err(Malformed::NoTag)]
        );
        assert_eq!(parse("<<MSG>x"), vec![ok("<MSG", "x")]);
        assert_eq!(parse("<MSG>a:b>c"), vec![ok("MSG", "a:b>c")]);
        assert_eq!(parse("<MSG><HERE>"), vec![ok("MSG", ""), ok("HERE", "")]);
        assert_eq!(parse("no tag"), vec![Err(Malformed::NoTag)]);
        assert_eq!(parse(""), vec![Err(Malformed::NoTag)]);
        assert_eq!(parse("<>x"), vec![Err(Malformed::BadTag)]);
        assert_eq!(parse("<MSG"), vec![Err(Malformed::BadTag)]);
        assert_eq!(
            parse("<MSG>a<>b"),
            vec![ok("MSG", "a"), Err(Malformed::BadTag)]
        );
    }

    #[test]
    fn many_commands_do_not_recurse() {
        let text = "<HERE>".repeat(100_000);
        assert_eq!(Commands::new(&text).count(), 100_000);
    }
}

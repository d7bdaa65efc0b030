//! The command splitter (PROTOCOL.md §5.1) on arbitrary text: no panic,
//! well-formed pieces, and the same output as a literal reading of §5.1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcmi_proxy::legacy::lobby::{Commands, Malformed};

type Parsed<'a> = Vec<Result<(&'a str, &'a str), Malformed>>;

fn reference(text: &str) -> Parsed<'_> {
    let mut out = Vec::new();
    let mut t = text;
    loop {
        let Some((_, after)) = t.split_once('<') else {
            out.push(Err(Malformed::NoTag));
            return out;
        };
        if after.is_empty() {
            out.push(Err(Malformed::NoTag));
            return out;
        }
        let Some((tag, rest)) = after.split_once('>') else {
            out.push(Err(Malformed::BadTag));
            return out;
        };
        if tag.is_empty() {
            out.push(Err(Malformed::BadTag));
            return out;
        }
        let (value, remainder) = match rest.find('<') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        out.push(Ok((tag, value)));
        if remainder.is_empty() {
            return out;
        }
        t = remainder;
    }
}

fuzz_target!(|data: &[u8]| {
    // frames reach the splitter decoded (lossily for UTF-8 launchers)
    let text = String::from_utf8_lossy(data);
    let mut it = Commands::new(&text);
    let mut got: Parsed = Vec::new();
    for r in it.by_ref() {
        assert!(got.last().is_none_or(|l| l.is_ok()), "item after an error");
        match r {
            Ok(c) => {
                assert!(!c.tag.is_empty() && !c.tag.contains('>'));
                assert!(!c.value.contains('<'));
                got.push(Ok((c.tag, c.value)));
            }
            Err(e) => got.push(Err(e)),
        }
    }
    assert!(it.next().is_none());
    assert_eq!(got, reference(&text));

    // written back and parsed again: the same commands
    let again: String = got
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|(t, v)| format!("<{t}>{v}"))
        .collect();
    let start = text.find('<').unwrap_or(text.len());
    assert!(text[start..].starts_with(&again));
    if !again.is_empty() {
        let reparsed: Parsed = Commands::new(&again)
            .map(|r| r.map(|c| (c.tag, c.value)))
            .collect();
        let ok: Parsed = got.iter().filter(|r| r.is_ok()).cloned().collect();
        assert_eq!(reparsed, ok);
    }
});

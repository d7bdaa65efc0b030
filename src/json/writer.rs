//! Outgoing JSON: a message to one frame payload (LOBBY-JSON.md §1.2).
//!
//! VCMI's JSON parser never decodes `\uXXXX` (in its lenient client mode the
//! backslash is dropped and `uXXXX` stays in the text), so a payload must
//! never contain one. serde_json writes `\u00XX` only for the control
//! characters that have no short escape; [`VcmiFormatter`] writes those raw
//! instead, exactly like VCMI's own `JsonWriter`, which escapes only
//! `" \ \b \f \n \r \t`. Everything else, non-ASCII included, is raw UTF-8
//! already. Output is compact: VCMI pretty-prints, but its clients parse any
//! layout, and compact saves bandwidth on every broadcast.
//!
//! One difference from `JsonWriter` is deliberate: a backslash is always
//! written as `\\`. VCMI writes a backslash that is followed by one of
//! `"\bfnrt` unchanged, so the two characters `\n` typed in chat reach its
//! clients as a newline; here they arrive as typed.

use bytes::Bytes;
use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};
use std::io;

/// serde_json's compact formatter, except that control characters without a
/// short escape are written as the raw byte rather than as `\u00XX`.
#[derive(Debug, Default, Clone, Copy)]
pub struct VcmiFormatter;

impl Formatter for VcmiFormatter {
    fn write_char_escape<W>(&mut self, writer: &mut W, char_escape: CharEscape) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let escaped: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => return writer.write_all(&[byte]),
        };
        writer.write_all(escaped)
    }
}

/// Serializes a message into `buf` (appended).
pub fn write_into<T: Serialize + ?Sized>(buf: &mut Vec<u8>, msg: &T) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(buf, VcmiFormatter);
    msg.serialize(&mut ser)
}

/// One message as a frame payload. Our message types are plain structs of
/// strings, numbers and lists, which serde_json cannot fail to write; should
/// it ever fail, the error is logged and the payload is empty, which the
/// framing turns into a harmless heartbeat rather than a broken message.
pub fn to_payload<T: Serialize + ?Sized>(msg: &T) -> Bytes {
    let mut buf = Vec::with_capacity(128);
    match write_into(&mut buf, msg) {
        Ok(()) => Bytes::from(buf),
        Err(e) => {
            log::error!("cannot serialize an outgoing JSON message: {e}");
            Bytes::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct Msg<'a> {
        text: &'a str,
    }

    fn written(text: &str) -> Vec<u8> {
        to_payload(&Msg { text }).to_vec()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    /// Whether the JSON text has a `\uXXXX` escape (an escaping backslash
    /// followed by `u`; `\\u` is a backslash and a `u`).
    fn has_unicode_escape(out: &[u8]) -> bool {
        let mut bytes = out.iter();
        while let Some(&b) = bytes.next() {
            if b == b'\\' && bytes.next() == Some(&b'u') {
                return true;
            }
        }
        false
    }

    #[test]
    fn unicode_escape_detection() {
        assert!(has_unicode_escape(br#""a\u0001""#));
        assert!(!has_unicode_escape(br#""a\\u0001""#));
        assert!(has_unicode_escape(br#""a\\\u0001""#));
    }

    /// Controls serde_json would write as `\u00XX`; written raw here.
    fn is_raw_control(c: char) -> bool {
        (c as u32) < 0x20 && !matches!(c, '\u{8}' | '\u{c}' | '\n' | '\r' | '\t')
    }

    #[test]
    fn every_ascii_char_without_unicode_escape() {
        for byte in 0u8..=0x7f {
            let c = byte as char;
            let text = format!("a{c}b");
            let out = written(&text);
            assert!(!has_unicode_escape(&out), "{byte:#x}: {out:?}");
            if is_raw_control(c) {
                // serde_json (strict JSON) refuses raw controls in strings,
                // VCMI's parser reads them: check the exact bytes instead.
                assert_eq!(out, [b"{\"text\":\"a", &[byte][..], b"b\"}"].concat());
            } else {
                let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
                assert_eq!(back["text"], text.as_str(), "{byte:#x}");
            }
        }
    }

    #[test]
    fn short_escapes_are_used() {
        assert_eq!(
            written("\"\\\u{8}\u{c}\n\r\t/"),
            b"{\"text\":\"\\\"\\\\\\b\\f\\n\\r\\t/\"}".to_vec()
        );
    }

    #[test]
    fn non_ascii_and_emoji_are_raw_utf8() {
        let text = "Grüße, 勇者 😀 \u{7f} \u{2028}";
        let out = written(text);
        assert!(contains(&out, text.as_bytes()));
        let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back["text"], text);
    }

    proptest! {
        #[test]
        fn random_strings_round_trip_without_unicode_escape(
            text in "(\\PC|[\"\\\\\u{8}\u{c}\n\r\t]|😀|é){0,64}"
        ) {
            let out = written(&text);
            prop_assert!(!has_unicode_escape(&out));
            let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back["text"].as_str(), Some(text.as_str()));
        }

        #[test]
        fn random_strings_with_raw_controls_never_escape(text in "\\PC{0,16}[\u{0}-\u{1f}]{1,4}\\PC{0,16}") {
            let out = written(&text);
            prop_assert!(!has_unicode_escape(&out));
            // Undoing the raw controls gives what serde_json parses.
            let fixed: String = String::from_utf8(out).unwrap().chars().map(|c| {
                if is_raw_control(c) { format!("\\u{:04x}", c as u32) } else { c.to_string() }
            }).collect();
            let back: serde_json::Value = serde_json::from_str(&fixed).unwrap();
            prop_assert_eq!(back["text"].as_str(), Some(text.as_str()));
        }
    }
}

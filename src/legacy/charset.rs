//! Text encodings of lobby connections (PROTOCOL.md §4.4).
//!
//! A launcher names its encoding in the handshake header; every frame it
//! sends is decoded with it and every message sent to it is encoded with it.
//! Real launchers always say `utf8`, so UTF-8 is the fast path everywhere.

use encoding_rs::{EncoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1251};
use std::borrow::Cow;

/// A resolved connection encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charset(&'static Encoding);

impl Charset {
    pub const UTF8: Charset = Charset(UTF_8);

    /// Resolves an encoding name the way Python's codec registry would for
    /// the names launchers and scripts use: case-insensitive, `-`, `_` and
    /// space equivalent, with Python's aliases for UTF-8 and cp1251, then any
    /// WHATWG label encoding_rs knows (koi8-r, cp866, latin1, ...).
    pub fn from_name(name: &str) -> Option<Charset> {
        let norm: String = name
            .trim()
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        let enc = match norm.as_str() {
            "" => return None,
            "utf8" | "u8" | "utf" | "cp65001" => UTF_8,
            "cp1251" | "windows1251" | "1251" => WINDOWS_1251,
            "utf16" | "utf16le" | "u16" => UTF_16LE,
            "utf16be" => UTF_16BE,
            _ => Encoding::for_label(name.trim().as_bytes())
                .or_else(|| Encoding::for_label(name.trim().replace('_', "-").as_bytes()))?,
        };
        Some(Charset(enc))
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn is_utf8(self) -> bool {
        self.0 == UTF_8
    }

    /// Decodes a whole frame; malformed input becomes U+FFFD, as Python's
    /// `errors='replace'` does.
    pub fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        if self.is_utf8() {
            return String::from_utf8_lossy(bytes);
        }
        let text = self.0.decode_without_bom_handling(bytes).0;
        // WHATWG maps the Windows code pages' undefined bytes to C1 controls;
        // Python's codecs call them undefined, which `replace` makes U+FFFD.
        if self.0.name().starts_with("windows-")
            && text.contains(|c| ('\u{80}'..='\u{9f}').contains(&c))
        {
            return Cow::Owned(
                text.chars()
                    .map(|c| {
                        if ('\u{80}'..='\u{9f}').contains(&c) {
                            '\u{FFFD}'
                        } else {
                            c
                        }
                    })
                    .collect(),
            );
        }
        text
    }

    /// Encodes a message for the wire. Characters the encoding cannot
    /// represent become `?`, like Python's `errors='replace'` (encoding_rs
    /// on its own would emit HTML numeric references).
    pub fn encode<'a>(self, text: &'a str) -> Cow<'a, [u8]> {
        if self.is_utf8() {
            return Cow::Borrowed(text.as_bytes());
        }
        if self.0 == UTF_16LE || self.0 == UTF_16BE {
            let be = self.0 == UTF_16BE;
            let mut out = Vec::with_capacity(text.len() * 2);
            for unit in text.encode_utf16() {
                let b = if be {
                    unit.to_be_bytes()
                } else {
                    unit.to_le_bytes()
                };
                out.extend_from_slice(&b);
            }
            return Cow::Owned(out);
        }
        let mut encoder = self.0.new_encoder();
        let mut out = Vec::with_capacity(text.len() + 16);
        let mut rest = text;
        loop {
            let need = encoder
                .max_buffer_length_from_utf8_without_replacement(rest.len())
                .unwrap_or(rest.len() * 4 + 16);
            out.reserve(need);
            let (result, read) =
                encoder.encode_from_utf8_to_vec_without_replacement(rest, &mut out, true);
            rest = &rest[read..];
            match result {
                EncoderResult::InputEmpty => break,
                EncoderResult::OutputFull => continue,
                EncoderResult::Unmappable(_) => out.push(b'?'),
            }
        }
        Cow::Owned(out)
    }
}

/// A message as bytes for one recipient. UTF-8 recipients (all real
/// launchers) share one buffer per message through `utf8`, so a broadcast
/// allocates once however many receive it; others get their own encoding.
pub fn message_bytes(
    charset: Charset,
    text: &str,
    utf8: &mut Option<bytes::Bytes>,
) -> bytes::Bytes {
    if charset.is_utf8() {
        utf8.get_or_insert_with(|| bytes::Bytes::copy_from_slice(text.as_bytes()))
            .clone()
    } else {
        bytes::Bytes::from(charset.encode(text).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_style_names_resolve() {
        for n in ["utf8", "UTF-8", "utf_8", "u8", "utf", "cp65001", "Utf 8"] {
            assert_eq!(Charset::from_name(n), Some(Charset::UTF8), "{n}");
        }
        for n in ["cp1251", "windows-1251", "windows_1251", "1251", "CP1251"] {
            assert_eq!(
                Charset::from_name(n).map(|c| c.name()),
                Some("windows-1251"),
                "{n}"
            );
        }
        assert_eq!(
            Charset::from_name("koi8-r").map(|c| c.name()),
            Some("KOI8-R")
        );
        assert_eq!(Charset::from_name("klingon"), None);
        assert_eq!(Charset::from_name(""), None);
    }

    #[test]
    fn cp1251_round_trip_and_unmappable_becomes_question_mark() {
        let cs = Charset::from_name("cp1251").unwrap();
        let bytes = cs.encode("Привет 😀!");
        assert_eq!(&bytes[..], b"\xcf\xf0\xe8\xe2\xe5\xf2 ?!");
        assert_eq!(cs.decode(&bytes), "Привет ?!");
        // 0x98 is undefined in cp1251
        assert_eq!(cs.decode(b"a\x98b"), "a\u{FFFD}b");
    }

    #[test]
    fn invalid_utf8_is_replaced_like_python() {
        assert_eq!(
            Charset::UTF8.decode(b"a\xffb\xe2\x82"),
            "a\u{FFFD}b\u{FFFD}"
        );
    }
}

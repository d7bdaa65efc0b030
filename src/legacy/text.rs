//! Python-compatible text rules the reference applied with `re` and `int()`
//! (PROTOCOL.md §8.1, §16.3, §16.4). They decide which names and numbers a
//! launcher may use, so they must match Python exactly, not approximately.

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

/// Python's `\w` for `str` patterns: `_` or a letter or number of any script
/// (general category L* or N*). `char::is_alphanumeric` is close but also
/// accepts combining marks and circled letters, which Python refuses.
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
            | Gc::DecimalNumber
            | Gc::LetterNumber
            | Gc::OtherNumber
    )
}

/// `re.match(r'^[\w.%+-]+$', name)`: note that `$` also matches before one
/// final newline, so `"abc\n"` is a valid name (D36, replicated).
pub fn is_valid_username(name: &str) -> bool {
    let body = name.strip_suffix('\n').unwrap_or(name);
    !body.is_empty()
        && body
            .chars()
            .all(|c| is_word_char(c) || matches!(c, '.' | '%' | '+' | '-'))
}

/// Value of a decimal digit of any script (category Nd). Unicode keeps every
/// Nd digit in runs of ten ascending from zero, so the value is the offset
/// from the start of its run, modulo ten for runs that follow each other.
fn digit_value(c: char) -> Option<u32> {
    if let Some(d) = c.to_digit(10) {
        return Some(d);
    }
    if get_general_category(c) != Gc::DecimalNumber {
        return None;
    }
    let mut start = c as u32;
    while let Some(prev) = start.checked_sub(1).and_then(char::from_u32) {
        if get_general_category(prev) != Gc::DecimalNumber {
            break;
        }
        start -= 1;
    }
    Some((c as u32 - start) % 10)
}

/// An integer parsed as Python's `int(str)` does, kept in canonical decimal
/// form (`-12`, `0`, `10`) because Python integers have no size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyInt(String);

impl PyInt {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value if it fits an `i64`.
    pub fn to_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }
}

/// `int(text)`: surrounding whitespace, an optional sign, decimal digits of
/// any script with single underscores between digits. `None` where Python
/// raises ValueError.
pub fn parse_py_int(text: &str) -> Option<PyInt> {
    let t = text.trim_matches(char::is_whitespace);
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let mut value = String::with_capacity(digits.len());
    let mut prev_digit = false;
    for c in digits.chars() {
        if c == '_' {
            if !prev_digit {
                return None;
            }
            prev_digit = false;
            continue;
        }
        let d = digit_value(c)?;
        if !(value.is_empty() && d == 0) {
            value.push(char::from_digit(d, 10)?);
        }
        prev_digit = true;
    }
    if !prev_digit {
        return None; // empty, or a trailing underscore
    }
    if value.is_empty() {
        return Some(PyInt("0".into()));
    }
    if neg {
        value.insert(0, '-');
    }
    Some(PyInt(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_python_regex() {
        for ok in [
            "alice",
            "a.b%c+d-e_f",
            "Иван",
            "李小龙",
            "abc\n",
            "x²y",
            "١٢٣",
        ] {
            assert!(is_valid_username(ok), "{ok:?}");
        }
        for bad in [
            "a b", "a;b", "a/b", "", "\n", "abc\n\n", "a:b", "e\u{301}", "Ⓐbc",
        ] {
            assert!(!is_valid_username(bad), "{bad:?}");
        }
    }

    #[test]
    fn integers_parse_like_python_int() {
        let p = |s: &str| parse_py_int(s).map(|v| v.as_str().to_string());
        assert_eq!(p("2").as_deref(), Some("2"));
        assert_eq!(p(" +1_0 ").as_deref(), Some("10"));
        assert_eq!(p("-007").as_deref(), Some("-7"));
        assert_eq!(p("-0").as_deref(), Some("0"));
        assert_eq!(p("٣").as_deref(), Some("3"));
        assert_eq!(p("１２").as_deref(), Some("12"));
        assert_eq!(p("𝟗").as_deref(), Some("9")); // mathematical digits: runs back to back
        assert_eq!(
            p("99999999999999999999999").as_deref(),
            Some("99999999999999999999999")
        );
        for bad in [
            "", " ", "two", "1__0", "_1", "1_", "+", "1.0", "0x10", "--1", "²",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }
}

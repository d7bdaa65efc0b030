//! Small helpers for building server messages (PROTOCOL.md §2.2, §7).

/// Python's spelling of booleans; the launcher compares with `"True"`.
pub fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Replacement for `:>>` inside user-supplied text (D42 fix). The launcher
/// splits every received chunk on `:>>`, so chat containing it would inject
/// a fake server message (`x:>>START:...` starts other players' games). With
/// a space after the colon nothing is split; the launcher then drops the
/// colon like any other field separator and shows `x >>START...`.
pub const NEUTRAL_MARKER: &str = ": >>";

/// The text with every `:>>` neutralised, or `None` when there is none (the
/// common case, so callers can avoid a copy).
pub fn neutralise(text: &str) -> Option<String> {
    text.contains(":>>")
        .then(|| text.replace(":>>", NEUTRAL_MARKER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_is_defused_and_cannot_reform() {
        assert_eq!(neutralise("hello"), None);
        assert_eq!(
            neutralise("x:>>START:abc").as_deref(),
            Some("x: >>START:abc")
        );
        for evil in [":>>", "::>>>", ":>>:>>", "a:>>>>b", ":::>>>>"] {
            let fixed = neutralise(evil).unwrap();
            assert!(!fixed.contains(":>>"), "{evil} -> {fixed}");
        }
    }
}

//! Minimal hand-written JSON object builder.
//!
//! The tool prints exactly one JSON line so runs can be diffed and collected by scripts; serde is not a
//! dependency of this crate, and the output is a flat-ish object of numbers and strings, so a tiny
//! builder that preserves insertion order (stable, human-diffable output) is all that is needed.

/// An ordered JSON object under construction.
#[derive(Default, Clone, Debug)]
pub struct Obj {
    fields: Vec<(String, String)>,
}

impl Obj {
    pub fn new() -> Self {
        Obj::default()
    }

    /// Adds (or replaces, keeping the original position) a pre-rendered value.
    fn raw(&mut self, key: &str, rendered: String) -> &mut Self {
        if let Some(slot) = self.fields.iter_mut().find(|(k, _)| k == key) {
            slot.1 = rendered;
        } else {
            self.fields.push((key.to_string(), rendered));
        }
        self
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.raw(key, escape(value))
    }

    pub fn uint(&mut self, key: &str, value: u64) -> &mut Self {
        self.raw(key, value.to_string())
    }

    /// Floats are rendered with a fixed number of decimals so outputs of different runs line up;
    /// NaN/infinity are not valid JSON and become `null`.
    pub fn float(&mut self, key: &str, value: f64, decimals: usize) -> &mut Self {
        let rendered = if value.is_finite() {
            format!("{value:.decimals$}")
        } else {
            "null".to_string()
        };
        self.raw(key, rendered)
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.raw(key, value.to_string())
    }

    pub fn null(&mut self, key: &str) -> &mut Self {
        self.raw(key, "null".to_string())
    }

    pub fn obj(&mut self, key: &str, value: &Obj) -> &mut Self {
        self.raw(key, value.render())
    }

    /// The fields with their rendered values, for merging one object into another.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds an already rendered value (from [`Obj::fields`] of another object).
    pub fn raw_field(&mut self, key: &str, rendered: &str) -> &mut Self {
        self.raw(key, rendered.to_string())
    }

    pub fn has(&self, key: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == key)
    }

    /// Renders the object on one line (no newlines can appear: strings are escaped).
    pub fn render(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&escape(k));
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        out
    }
}

/// Renders a JSON string literal. Control characters are escaped so the result stays on one line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            // U+2028/2029 are valid JSON but break JavaScript consumers that eval lines.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_insertion_order() {
        let mut inner = Obj::new();
        inner.uint("p50", 12).uint("max", 99);
        let mut o = Obj::new();
        o.str("mode", "relay")
            .uint("pairs", 4)
            .float("mib_per_s", 123.456789, 3)
            .bool("verified", true)
            .null("error")
            .obj("lat", &inner);
        assert_eq!(
            o.render(),
            r#"{"mode":"relay","pairs":4,"mib_per_s":123.457,"verified":true,"error":null,"lat":{"p50":12,"max":99}}"#
        );
    }

    #[test]
    fn replacing_keeps_position() {
        let mut o = Obj::new();
        o.bool("ok", false).uint("n", 1).bool("ok", true);
        assert_eq!(o.render(), r#"{"ok":true,"n":1}"#);
        assert!(o.has("n"));
        assert!(!o.has("x"));
    }

    #[test]
    fn escapes_strings() {
        assert_eq!(escape("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(escape("l1\nl2\t\r"), r#""l1\nl2\t\r""#);
        assert_eq!(escape("\u{1}\u{7f}"), r#""\u0001\u007f""#);
        assert_eq!(escape("Иван"), "\"Иван\"");
    }

    #[test]
    fn non_finite_floats_are_null() {
        let mut o = Obj::new();
        o.float("a", f64::NAN, 2)
            .float("b", f64::INFINITY, 2)
            .float("c", 1.0, 0);
        assert_eq!(o.render(), r#"{"a":null,"b":null,"c":1}"#);
    }
}

//! The one JSON result line, built with serde_json.
//!
//! A thin builder over `serde_json::Map` so that modes write `o.uint("pairs", 4)`; keys come out
//! sorted (serde_json's default map), which keeps the lines of different runs diffable.

use serde_json::{Map, Number, Value};

/// A JSON object under construction.
#[derive(Default, Clone, Debug)]
pub struct Obj(Map<String, Value>);

impl Obj {
    pub fn new() -> Self {
        Obj::default()
    }

    fn set(&mut self, key: &str, value: Value) -> &mut Self {
        self.0.insert(key.to_string(), value);
        self
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.set(key, Value::from(value))
    }

    pub fn uint(&mut self, key: &str, value: u64) -> &mut Self {
        self.set(key, Value::from(value))
    }

    /// Rounded to `decimals` places so outputs of different runs line up; NaN/infinity are not
    /// valid JSON and become `null`.
    pub fn float(&mut self, key: &str, value: f64, decimals: usize) -> &mut Self {
        let scale = 10f64.powi(decimals.min(15) as i32);
        let rounded = (value * scale).round() / scale;
        let v = Number::from_f64(rounded).map_or(Value::Null, Value::Number);
        self.set(key, v)
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.set(key, Value::from(value))
    }

    pub fn null(&mut self, key: &str) -> &mut Self {
        self.set(key, Value::Null)
    }

    pub fn obj(&mut self, key: &str, value: &Obj) -> &mut Self {
        self.set(key, Value::Object(value.0.clone()))
    }

    /// Adds every field of `other` (replacing fields of the same name).
    pub fn merge(&mut self, other: Obj) -> &mut Self {
        self.0.extend(other.0);
        self
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The object on one line (serde_json escapes control characters, so no newline appears).
    pub fn render(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_line_with_nested_objects() {
        let mut inner = Obj::new();
        inner.uint("p50", 12).uint("max", 99);
        let mut o = Obj::new();
        o.str("mode", "re\nlay")
            .uint("pairs", 4)
            .float("mib_per_s", 123.456789, 3)
            .bool("verified", true)
            .null("error")
            .obj("lat", &inner);
        assert_eq!(
            o.render(),
            r#"{"error":null,"lat":{"max":99,"p50":12},"mib_per_s":123.457,"mode":"re\nlay","pairs":4,"verified":true}"#
        );
    }

    #[test]
    fn replacing_and_merging() {
        let mut o = Obj::new();
        o.bool("ok", false).uint("n", 1).bool("ok", true);
        assert_eq!(o.render(), r#"{"n":1,"ok":true}"#);
        assert!(o.has("n"));
        assert!(!o.has("x"));
        let mut more = Obj::new();
        more.uint("n", 2).str("x", "y");
        o.merge(more);
        assert_eq!(o.render(), r#"{"n":2,"ok":true,"x":"y"}"#);
    }

    #[test]
    fn non_finite_floats_are_null() {
        let mut o = Obj::new();
        o.float("a", f64::NAN, 2)
            .float("b", f64::INFINITY, 2)
            .float("c", 1.0, 0);
        assert_eq!(o.render(), r#"{"a":null,"b":null,"c":1.0}"#);
    }
}

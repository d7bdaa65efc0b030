//! VCMI's own JSON dialect: the value tree and the reader that builds it.
//!
//! Why not serde_json: the acceptance set is VCMI's `JsonParser` (strict
//! mode), not RFC 8259. They differ both ways: VCMI takes every byte <= 0x20
//! as whitespace, leading zeros (`007`), `.5`, `-.5`, a `#override` key
//! suffix, and it refuses `\uXXXX`, `1E5` (capital E), duplicate keys and
//! code points from U+40000 on. Its numbers are also computed its own way
//! (wrapping 64-bit integer part, digit-by-digit fraction, `pow(10, e)`),
//! which decides whether a `playerLimit` passes `minimum`/`maximum`. A scan
//! in front of serde_json would have to do all of this anyway, so the reader
//! builds the tree itself: about as much code as the scan alone.
//!
//! Bounded work: one pass, no backtracking; nesting is checked *before* a
//! container is entered, so recursion is at most `max_depth + 2` frames.
//! Memory: the tree is at most ~16 bytes per input byte (`[0,0,0,…]`: one
//! 32-byte `Value` per two bytes); the frame cap bounds the input.

use std::collections::BTreeMap;

/// A JSON value as VCMI's `JsonNode` sees it: integers and floats are
/// different types (`1` is not `1.0` for `const`/`enum`), objects are
/// ordered maps with unique keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
    Array(Vec<Value>),
    Object(BTreeMap<String, Value>),
}

impl Value {
    /// `JsonNode::Float()` in a release build: numbers as f64, anything
    /// else 0.
    pub fn as_f64(&self) -> f64 {
        match self {
            Value::Integer(i) => *i as f64,
            Value::Float(f) => *f,
            _ => 0.0,
        }
    }

    /// The member `key` of an object; `None` for a missing key or a
    /// non-object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(map) => map.get(key),
            _ => None,
        }
    }
}

/// The parser settings that matter (`JsonParsingSettings`).
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// `maxDepth`: a container is refused when this many containers
    /// already enclose it *plus one* (the check is `currentDepth > maxDepth`
    /// before the increment, and the root container is entered at 0).
    pub max_depth: usize,
    /// JSON5's trailing comma (`[1,]`, `{"a":1,}`); only our embedded
    /// schema files use it, as VCMI loads schemas in JSON5 mode.
    pub trailing_commas: bool,
}

/// How the lobby reads every message since 1.7.4 (LOBBY-JSON.md §1.2):
/// strict JSON, depth 4, so at most five nested containers.
pub const LOBBY_MESSAGE: Dialect = Dialect {
    max_depth: 4,
    trailing_commas: false,
};

/// How our embedded schema files are read (they contain trailing commas).
pub const SCHEMA_FILE: Dialect = Dialect {
    max_depth: 30,
    trailing_commas: true,
};

/// Parses `input` in `dialect`. The error says which rule failed (for the
/// log; the peer is never told).
pub fn read(input: &[u8], dialect: Dialect) -> Result<Value, String> {
    if input.is_empty() {
        return Err("empty payload".into());
    }
    check_encoding(input)?;
    let mut reader = Reader {
        input,
        pos: 0,
        dialect,
    };
    if input.starts_with(UTF8_BOM) {
        reader.pos = UTF8_BOM.len();
    }
    let value = reader.value(0)?;
    reader.skip_whitespace();
    if reader.pos < input.len() {
        return Err(format!("bytes after the value at offset {}", reader.pos));
    }
    Ok(value)
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The bytes that pass: well-formed UTF-8 (std's check) whose code points
/// are below U+40000.
///
/// The reference runs `TextOperations::isValidUnicodeString`, which is
/// looser in one direction and stricter in another:
/// - looser: it checks continuation bytes only for the high bit, so it
///   passes overlong forms, UTF-16 surrogates (ED A0 80) and "continuation"
///   bytes C0..FF. We refuse those: they are not text, a Rust `String`
///   cannot hold them, and no VCMI client produces them (its text input is
///   SDL's, always well-formed). A peer crafting them gets the same
///   silence/close as for any invalid message.
/// - stricter: it refuses lead bytes above 0xF0, i.e. every code point from
///   U+40000 on (planes 4..16: tag characters, variation selectors
///   supplement, private use). We refuse them too, exactly like it.
///
/// Both sides checked on the oracle: it accepts C0 AF, ED A0 80 and C3 C3
/// inside a string and U+3FFFF, and closes on U+40000.
fn check_encoding(input: &[u8]) -> Result<(), String> {
    if let Err(err) = std::str::from_utf8(input) {
        return Err(format!("not UTF-8: {err}"));
    }
    // In well-formed UTF-8 the lead bytes of U+40000..U+10FFFF are F1..F4.
    if let Some(at) = input.iter().position(|&b| (0xF1..=0xF4).contains(&b)) {
        return Err(format!("code point >= U+40000 at offset {at}"));
    }
    Ok(())
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    dialect: Dialect,
}

impl Reader<'_> {
    /// The byte at the cursor; `None` past the end. (The reference reads
    /// one byte past the end in a few places; whatever it finds there, the
    /// verdict is the same as treating it as "no byte": see the tests.)
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b) if b <= b' ') {
            self.pos += 1;
        }
    }

    /// Whitespace, then there must be a byte that is not a comment.
    fn skip_whitespace_to_token(&mut self) -> Result<u8, String> {
        self.skip_whitespace();
        match self.peek() {
            None => Err("unexpected end of payload".into()),
            Some(b'/') => Err(format!("comment at offset {}", self.pos)),
            Some(b) => Ok(b),
        }
    }

    /// `depth`: how many containers enclose this value.
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        match self.skip_whitespace_to_token()? {
            b'"' => self.string().map(Value::String),
            b'n' => self.literal("null", Value::Null),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'-' | b'+' | b'.' | b'0'..=b'9' => self.number(),
            other => Err(format!(
                "value expected at offset {}, found byte {other:#04x}",
                self.pos
            )),
        }
    }

    /// VCMI reads a run of ASCII letters and digits and compares it whole,
    /// so `nullx` and `true1` are errors, not `null` followed by junk.
    fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        let start = self.pos;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        if &self.input[start..self.pos] == word.as_bytes() {
            Ok(value)
        } else {
            Err(format!("unknown literal at offset {start}"))
        }
    }

    /// `extractFloat` in JSON mode: `-`? digits* (`.` digits+)? (`e` [+-]?
    /// digits+)?, where the integer digits may be empty only before a `.`;
    /// no `+` sign; lower-case `e` only (`1E5` ends the number at `E`).
    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let mut negative = false;
        match self.peek() {
            Some(b'+') => return Err(format!("plus sign at offset {start}")),
            Some(b'-') => {
                negative = true;
                self.pos += 1;
            }
            _ => {}
        }
        if !matches!(self.peek(), Some(b'0'..=b'9' | b'.')) {
            return Err(format!("number expected at offset {start}"));
        }
        // The reference accumulates in a signed 64-bit integer without an
        // overflow check; it wraps on the hardware it runs on.
        let mut integer: i64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            integer = integer
                .wrapping_mul(10)
                .wrapping_add(i64::from(digit - b'0'));
            self.pos += 1;
        }
        let mut is_float = false;
        let mut result = integer as f64;
        if self.peek() == Some(b'.') {
            is_float = true;
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(format!("decimal part expected at offset {}", self.pos));
            }
            let mut weight = 0.1;
            while let Some(digit @ b'0'..=b'9') = self.peek() {
                result += weight * f64::from(digit - b'0');
                weight /= 10.0;
                self.pos += 1;
            }
        }
        if self.peek() == Some(b'e') {
            is_float = true;
            self.pos += 1;
            let mut negative_power = false;
            match self.peek() {
                Some(b'-') => {
                    negative_power = true;
                    self.pos += 1;
                }
                Some(b'+') => self.pos += 1,
                _ => {}
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(format!("exponent expected at offset {}", self.pos));
            }
            let mut power = 0.0_f64;
            while let Some(digit @ b'0'..=b'9') = self.peek() {
                power = power * 10.0 + f64::from(digit - b'0');
                self.pos += 1;
            }
            if negative_power {
                power = -power;
            }
            result *= 10.0_f64.powf(power);
        }
        Ok(if is_float {
            Value::Float(if negative { -result } else { result })
        } else {
            Value::Integer(if negative {
                integer.wrapping_neg()
            } else {
                integer
            })
        })
    }

    /// A string at the cursor (which is on the opening quote). Only the
    /// eight escapes `\" \\ \b \f \n \r \t \/`; no `\uXXXX` (VCMI never
    /// supported it); no raw byte below 0x20 (a raw newline included).
    fn string(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err(format!("unterminated string from offset {start}"));
            };
            self.pos += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let unescaped = match self.peek() {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'/') => b'/',
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0C,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        None => return Err(format!("unterminated string from offset {start}")),
                        Some(_) => return Err(format!("unknown escape at offset {}", self.pos)),
                    };
                    out.push(unescaped);
                    self.pos += 1;
                }
                b if b < b' ' => {
                    return Err(format!(
                        "raw control byte {b:#04x} in a string at offset {}",
                        self.pos - 1
                    ));
                }
                b => out.push(b),
            }
        }
        // Cut only at ASCII bytes of already-checked UTF-8: still UTF-8.
        String::from_utf8(out).map_err(|_| format!("string at offset {start} is not UTF-8"))
    }

    fn enter(&self, depth: usize) -> Result<(), String> {
        if depth > self.dialect.max_depth {
            Err(format!(
                "nesting deeper than {} levels at offset {}",
                self.dialect.max_depth + 1,
                self.pos
            ))
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.enter(depth)?;
        self.pos += 1;
        let mut map = BTreeMap::new();
        if self.skip_whitespace_to_token()? == b'}' {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            if self.skip_whitespace_to_token()? != b'"' {
                return Err(format!("key expected at offset {}", self.pos));
            }
            let key = strip_key_flags(self.string()?)?;
            if map.contains_key(&key) {
                return Err(format!("duplicate key {key:?}"));
            }
            if self.skip_whitespace_to_token()? != b':' {
                return Err(format!("':' expected at offset {}", self.pos));
            }
            self.pos += 1;
            let value = self.element(depth + 1, b'}')?;
            map.insert(key, value);
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Value::Object(map));
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        self.enter(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        if self.skip_whitespace_to_token()? == b']' {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.element(depth + 1, b']')?);
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
        }
    }

    /// A value and what follows it: a comma, the container's terminator
    /// (left under the cursor), or both (a trailing comma).
    fn element(&mut self, depth: usize, terminator: u8) -> Result<Value, String> {
        let value = self.value(depth)?;
        let mut next = self.skip_whitespace_to_token()?;
        let comma = next == b',';
        if comma {
            self.pos += 1;
            next = self.skip_whitespace_to_token()?;
        }
        if next == terminator {
            if comma && !self.dialect.trailing_commas {
                return Err(format!("trailing comma before offset {}", self.pos));
            }
            return Ok(value);
        }
        if !comma {
            return Err(format!("',' expected at offset {}", self.pos));
        }
        Ok(value)
    }
}

/// VCMI's key meta-flags: `"key#flag#flag"`. `#override` is the only known
/// flag and is dropped (it only matters for mod config merging); any other
/// flag, the empty one (`"a#"`) included, is an error in strict mode.
fn strip_key_flags(key: String) -> Result<String, String> {
    let Some(hash) = key.find('#') else {
        return Ok(key);
    };
    if let Some(flag) = key[hash + 1..].split('#').find(|flag| *flag != "override") {
        return Err(format!("unknown key flag #{flag}"));
    }
    Ok(key[..hash].to_string())
}

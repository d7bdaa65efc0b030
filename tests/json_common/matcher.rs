//! Expected messages with placeholders (`$int`, `$name`, `$$literal`), variable binding, and the
//! payload helpers both the recorder and the replayer define the same way.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

/// Variables of one scenario run: `$name` in a transcript stands for the value bound here.
#[derive(Clone, Default, Debug)]
pub struct Vars {
    by_name: HashMap<String, String>,
    by_value: HashMap<String, String>,
}

impl Vars {
    pub fn bind(&mut self, name: &str, value: &str) -> Result<(), String> {
        if let Some(other) = self.by_value.get(value) {
            return Err(format!(
                "${name} would bind {value:?}, already the value of ${other}"
            ));
        }
        self.by_name.insert(name.to_owned(), value.to_owned());
        self.by_value.insert(value.to_owned(), name.to_owned());
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<&str, String> {
        self.by_name
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("variable ${name} used before it is bound"))
    }

    /// Replace whole-string `$name` values (`$$x` is the literal `$x`) in a message to send.
    pub fn substitute(&self, v: &Value) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) => match placeholder(s) {
                Placeholder::Literal(l) => Value::String(l.to_owned()),
                Placeholder::Var(name) => Value::String(self.get(name)?.to_owned()),
                Placeholder::Int => return Err("$int in a message to send".into()),
            },
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.substitute(x))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(o) => {
                let mut m = Map::new();
                for (k, x) in o {
                    m.insert(k.clone(), self.substitute(x)?);
                }
                Value::Object(m)
            }
            other => other.clone(),
        })
    }

    /// Replace `${name}` inside a verbatim text.
    pub fn substitute_text(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {text:?}"))?;
            out.push_str(self.get(&rest[start + 2..start + end])?);
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

pub enum Placeholder<'a> {
    Literal(&'a str),
    Var(&'a str),
    Int,
}

pub fn placeholder(s: &str) -> Placeholder<'_> {
    if let Some(rest) = s.strip_prefix('$') {
        if rest.starts_with('$') {
            Placeholder::Literal(rest)
        } else if rest == "int" {
            Placeholder::Int
        } else {
            Placeholder::Var(rest)
        }
    } else {
        Placeholder::Literal(s)
    }
}

/// Match a received value against an expected one, binding variables on first occurrence. Lists
/// under a key in `unordered` match as multisets (with backtracking over bindings).
pub fn match_value(
    expected: &Value,
    actual: &Value,
    vars: &mut Vars,
    unordered: &HashSet<String>,
    key: Option<&str>,
    path: &str,
) -> Result<(), String> {
    let here = || if path.is_empty() { "(top)" } else { path };
    match (expected, actual) {
        (Value::String(s), _) => match placeholder(s) {
            Placeholder::Int => match actual.as_u64() {
                Some(_) => Ok(()),
                None => Err(format!(
                    "{}: expected a non-negative integer, got {actual}",
                    here()
                )),
            },
            Placeholder::Var(name) => {
                let Some(a) = actual.as_str() else {
                    return Err(format!(
                        "{}: expected ${name} (a string), got {actual}",
                        here()
                    ));
                };
                match vars.by_name.get(name) {
                    Some(v) if v == a => Ok(()),
                    Some(v) => Err(format!("{}: expected ${name} = {v:?}, got {a:?}", here())),
                    None => vars.bind(name, a).map_err(|e| format!("{}: {e}", here())),
                }
            }
            Placeholder::Literal(l) => match actual.as_str() {
                Some(a) if a == l => Ok(()),
                _ => Err(format!("{}: expected {:?}, got {actual}", here(), l)),
            },
        },
        (Value::Object(e), Value::Object(a)) => {
            let missing: Vec<&String> = e.keys().filter(|k| !a.contains_key(*k)).collect();
            let extra: Vec<&String> = a.keys().filter(|k| !e.contains_key(*k)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Err(format!(
                    "{}: keys differ: missing {missing:?}, unexpected {extra:?}",
                    here()
                ));
            }
            for (k, ev) in e {
                match_value(ev, &a[k], vars, unordered, Some(k), &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "{}: expected {} elements, got {}",
                    here(),
                    e.len(),
                    a.len()
                ));
            }
            if key.is_some_and(|k| unordered.contains(k)) {
                let mut used = vec![false; a.len()];
                if match_unordered(e, a, &mut used, vars, unordered, path) {
                    Ok(())
                } else {
                    Err(format!(
                        "{}: no element-wise match in any order (compared as a multiset)",
                        here()
                    ))
                }
            } else {
                for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                    match_value(ev, av, vars, unordered, None, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{}: expected {expected}, got {actual}", here())),
    }
}

fn match_unordered(
    expected: &[Value],
    actual: &[Value],
    used: &mut [bool],
    vars: &mut Vars,
    unordered: &HashSet<String>,
    path: &str,
) -> bool {
    let Some((first, rest)) = expected.split_first() else {
        return true;
    };
    for j in 0..actual.len() {
        if used[j] {
            continue;
        }
        let mut trial = vars.clone();
        if match_value(first, &actual[j], &mut trial, unordered, None, path).is_ok() {
            used[j] = true;
            if match_unordered(rest, actual, used, &mut trial, unordered, path) {
                *vars = trial;
                return true;
            }
            used[j] = false;
        }
    }
    false
}

/// A real `\u` escape (a backslash that starts an escape, followed by `u`): VCMI cannot read it.
pub fn has_u_escape(payload: &[u8]) -> bool {
    let mut i = 0;
    while i + 1 < payload.len() {
        if payload[i] == b'\\' {
            if payload[i + 1] == b'u' {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The deterministic game payload of the recorder: splitmix64, little-endian, cut to `size`.
pub fn game_payload(seed: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 8);
    let mut x = seed;
    while out.len() < size {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(size);
    out
}

pub use vcmi_proxy::wire::frame as framed;

pub fn hex_decode(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {hex:?}"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| format!("hex {hex:?}: {e}")))
        .collect()
}

/// Continuation lines of a multi-line text, indented under a report line.
pub fn indent(s: &str) -> String {
    s.replace('\n', "\n  ")
}

/// A received payload for a report: pretty JSON, or the (cut) bytes.
pub fn show_payload(p: &[u8]) -> String {
    match serde_json::from_slice::<Value>(p) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) if p.len() > 200 => format!("{} bytes {:?}...", p.len(), &p[..200]),
        Err(_) => format!("{:?}", String::from_utf8_lossy(p)),
    }
}

// -- tests of the matcher (no server) ---------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_binds_checks_and_reorders() {
        let unordered: HashSet<String> = ["accounts".to_owned()].into_iter().collect();
        let expected = serde_json::json!({
            "type": "activeAccounts",
            "accounts": [{"accountID": "$acc1", "n": "$int"}, {"accountID": "$acc2", "n": "$$lit"}]
        });
        let actual = serde_json::json!({
            "type": "activeAccounts",
            "accounts": [{"accountID": "b", "n": "$lit"}, {"accountID": "a", "n": 3}]
        });
        let mut vars = Vars::default();
        match_value(&expected, &actual, &mut vars, &unordered, None, "").expect("matches");
        assert_eq!(vars.get("acc1"), Ok("a"));
        assert_eq!(vars.get("acc2"), Ok("b"));
        // Bound variables must keep their value; a second variable cannot take the same value.
        let again = serde_json::json!({"accountID": "$acc1"});
        assert!(match_value(
            &again,
            &serde_json::json!({"accountID": "b"}),
            &mut vars,
            &unordered,
            None,
            ""
        )
        .is_err());
        let other = serde_json::json!({"accountID": "$acc3"});
        assert!(match_value(
            &other,
            &serde_json::json!({"accountID": "a"}),
            &mut vars,
            &unordered,
            None,
            ""
        )
        .is_err());
        // Order matters outside the unordered keys; extra keys and negative $int fail.
        let ordered = serde_json::json!({"list": ["x", "y"]});
        assert!(match_value(
            &ordered,
            &serde_json::json!({"list": ["y", "x"]}),
            &mut vars,
            &unordered,
            None,
            ""
        )
        .is_err());
        assert!(match_value(
            &serde_json::json!({}),
            &serde_json::json!({"k": 1}),
            &mut vars,
            &unordered,
            None,
            ""
        )
        .is_err());
        assert!(match_value(
            &serde_json::json!("$int"),
            &serde_json::json!(-1),
            &mut vars,
            &unordered,
            None,
            ""
        )
        .is_err());
        assert_eq!(vars.substitute_text("id=${acc2}!"), Ok("id=b!".to_owned()));
    }

    #[test]
    fn u_escape_detection_and_game_payload() {
        assert!(has_u_escape(br#"{"a":"\u0041"}"#));
        assert!(!has_u_escape(br#"{"a":"x\\u0041"}"#));
        assert!(has_u_escape(br#"{"a":"\\\u0041"}"#));
        // The recorder's generator (tools/record_json_scenarios.py) gives these bytes for seed 1.
        assert_eq!(
            hex_decode("c15c0289ec2d0a9167ec8e65a18debbe").expect("hex"),
            game_payload(1, 16)
        );
        assert_eq!(game_payload(1, 10)[..], game_payload(1, 16)[..10]);
        assert_ne!(game_payload(2, 10), game_payload(1, 10));
    }
}

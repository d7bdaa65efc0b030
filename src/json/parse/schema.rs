//! The lobbyProtocol schemas and VCMI's validator semantics
//! (`lib/json/JsonValidator.cpp`, LOBBY-JSON.md §1.2).
//!
//! The schema files in `src/json/schemas/` are byte-identical copies of
//! vcmilobby's `config/schemas/lobbyProtocol/*.json` (GPL, like us). They
//! are embedded and read once, in JSON5 mode like VCMI reads them (two of
//! them have trailing commas).
//!
//! Validator semantics that differ from JSON Schema proper:
//! - keywords apply by the *data's* type: `minimum` only to numbers,
//!   `required`/`properties`/`additionalProperties` only to objects, `items`
//!   only to arrays; `type`, `const` and `enum` to everything;
//! - `null` passes every `type` check, so `"mods": null` and
//!   `"languageRooms": [null]` are valid;
//! - `required` treats a `null` member as missing;
//! - `"number"` accepts integers and floats; `minimum`/`maximum` compare as
//!   f64, so NaN (VCMI reads `0e999` as 0 × inf) passes both;
//! - a schema that is not an object has no rules and passes everything.

use std::sync::OnceLock;

use super::value::{self, Value};

macro_rules! schema_files {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../schemas/", $name, ".json")))),*]
    };
}

/// Every lobbyProtocol schema at HEAD: 26 message types.
const SCHEMA_FILES: [(&str, &str); 26] = schema_files![
    "accountCreated",
    "accountJoinsRoom",
    "activateGameRoom",
    "activeAccounts",
    "activeGameRooms",
    "changeRoomDescription",
    "chatHistory",
    "chatMessage",
    "clientLogin",
    "clientLoginSuccess",
    "clientProxyLogin",
    "clientRegister",
    "gameStarted",
    "inviteReceived",
    "joinGameRoom",
    "joinRoomSuccess",
    "leaveGameRoom",
    "matchesHistory",
    "operationFailed",
    "requestChatHistory",
    "sendChatMessage",
    "sendInvite",
    "serverLogin",
    "serverLoginSuccess",
    "serverProxyLogin",
    "updateGameRoom",
];

fn loaded() -> &'static [(&'static str, Value)] {
    static LOADED: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    LOADED.get_or_init(|| {
        SCHEMA_FILES
            .iter()
            .map(|(name, text)| {
                // Embedded at build time and covered by a unit test: a
                // failure here is a build defect, never peer input.
                let schema = value::read(text.as_bytes(), value::SCHEMA_FILE)
                    .unwrap_or_else(|err| panic!("embedded schema {name}.json: {err}"));
                (*name, schema)
            })
            .collect()
    })
}

/// The schema the reference applies to a message of type `type_name`.
///
/// It loads `"vcmi:lobbyProtocol/" + type`: the part before the first `#`
/// names the file (VCMI's resource names are case-insensitive, so
/// `CLIENTLOGIN` loads clientLogin.json and then fails its `const`), the
/// part after it is a JSON pointer into the file. A missing file or
/// pointer target yields the null schema, which passes everything.
///
/// `Err` where the reference throws (a malformed array index in the
/// pointer: the exception escapes and stops the reference server; we
/// refuse the message instead).
pub fn for_type(type_name: &str) -> Result<Option<&'static Value>, String> {
    let (file, pointer) = match type_name.find('#') {
        Some(hash) => (&type_name[..hash], Some(&type_name[hash + 1..])),
        None => (type_name, None),
    };
    let Some((_, schema)) = loaded()
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(file))
    else {
        return Ok(None);
    };
    match pointer {
        None | Some("") => Ok(Some(schema)),
        Some(pointer) => resolve_pointer(schema, pointer.as_bytes()),
    }
}

/// `JsonNode::resolvePointer`: the first byte of each step is skipped
/// (it should be `/`), arrays take decimal indices without leading zeros,
/// anything that leads nowhere is the null schema.
fn resolve_pointer<'a>(
    mut node: &'a Value,
    mut pointer: &[u8],
) -> Result<Option<&'a Value>, String> {
    while !pointer.is_empty() {
        let end = pointer[1..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(pointer.len(), |at| at + 1);
        let step = &pointer[1..end];
        pointer = &pointer[end..];
        let next = match node {
            Value::Array(items) => {
                if step.is_empty()
                    || !step.iter().all(u8::is_ascii_digit)
                    || (step.len() > 1 && step[0] == b'0')
                {
                    return Err("invalid JSON pointer index in the message type".into());
                }
                // Digits only: an index too large for usize cannot be in range.
                std::str::from_utf8(step)
                    .ok()
                    .and_then(|digits| digits.parse::<usize>().ok())
                    .and_then(|index| items.get(index))
            }
            Value::Object(map) => map
                .iter()
                .find(|(key, _)| key.as_bytes() == step)
                .map(|(_, v)| v),
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

/// Validates `data` against `schema`; the error names the first failure.
pub fn check(schema: &Value, data: &Value) -> Result<(), String> {
    check_at(schema, data, "")
}

fn check_at(schema: &Value, data: &Value, path: &str) -> Result<(), String> {
    let Value::Object(rules) = schema else {
        return Ok(());
    };
    let fail = |what: String| {
        Err(format!(
            "{}: {what}",
            if path.is_empty() { "<root>" } else { path }
        ))
    };
    for (keyword, rule) in rules {
        match (keyword.as_str(), data) {
            ("type", _) if !type_matches(rule, data) => {
                return fail(format!("type is not {rule:?}"));
            }
            ("const", _) if data != rule => {
                return fail("not the constant value".into());
            }
            ("enum", _) => {
                let allowed = match rule {
                    Value::Array(items) => items.as_slice(),
                    _ => &[],
                };
                if !allowed.contains(data) {
                    return fail("not one of the allowed values".into());
                }
            }
            ("minimum", Value::Integer(_) | Value::Float(_)) if data.as_f64() < rule.as_f64() => {
                return fail("below minimum".into());
            }
            ("maximum", Value::Integer(_) | Value::Float(_)) if data.as_f64() > rule.as_f64() => {
                return fail("above maximum".into());
            }
            ("items", Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    let item_schema = match rule {
                        Value::Array(per_index) => per_index.get(index),
                        other => Some(other),
                    };
                    if let Some(item_schema) = item_schema {
                        check_at(item_schema, item, &format!("{path}/{index}"))?;
                    }
                }
            }
            ("required", Value::Object(members)) => {
                if let Value::Array(names) = rule {
                    for name in names {
                        let name = match name {
                            Value::String(name) => name.as_str(),
                            _ => "",
                        };
                        if matches!(members.get(name), None | Some(Value::Null)) {
                            return fail(format!("required member {name:?} missing or null"));
                        }
                    }
                }
            }
            ("properties", Value::Object(members)) => {
                for (name, member) in members {
                    if let Some(member_schema) = rule.get(name) {
                        check_at(member_schema, member, &format!("{path}/{name}"))?;
                    }
                }
            }
            ("additionalProperties", Value::Object(members)) => {
                let declared = schema.get("properties");
                for (name, member) in members {
                    if declared.and_then(|d| d.get(name)).is_some() {
                        continue;
                    }
                    match rule {
                        Value::Object(_) => check_at(rule, member, &format!("{path}/{name}"))?,
                        Value::Null | Value::Bool(true) => {}
                        _ => return fail(format!("unknown member {name:?}")),
                    }
                }
            }
            // Annotations ($schema, title, description) and keywords for
            // other data types: no rule here.
            _ => {}
        }
    }
    Ok(())
}

/// `typeCheck`: `null` data passes any type; `"number"` takes both kinds of
/// number; an unknown type name in the schema fails.
fn type_matches(rule: &Value, data: &Value) -> bool {
    let Value::String(name) = rule else {
        return false;
    };
    match (name.as_str(), data) {
        (_, Value::Null) => matches!(
            name.as_str(),
            "null" | "boolean" | "number" | "integer" | "string" | "array" | "object"
        ),
        ("boolean", Value::Bool(_))
        | ("number", Value::Integer(_) | Value::Float(_))
        | ("integer", Value::Integer(_))
        | ("string", Value::String(_))
        | ("array", Value::Array(_))
        | ("object", Value::Object(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_loads_as_an_object_with_its_own_type_const() {
        assert_eq!(loaded().len(), 26);
        for (name, schema) in loaded() {
            let Some(Value::String(constant)) = schema
                .get("properties")
                .and_then(|p| p.get("type"))
                .and_then(|t| t.get("const"))
            else {
                panic!("{name}: no properties.type.const");
            };
            assert_eq!(constant, name);
        }
    }

    #[test]
    fn schemas_use_only_keywords_this_validator_implements() {
        fn walk(schema: &Value, name: &str) {
            let Value::Object(rules) = schema else { return };
            for (keyword, rule) in rules {
                match keyword.as_str() {
                    "$schema"
                    | "title"
                    | "description"
                    | "type"
                    | "const"
                    | "enum"
                    | "minimum"
                    | "maximum"
                    | "required"
                    | "additionalProperties" => {}
                    "items" => walk(rule, name),
                    "properties" => {
                        if let Value::Object(members) = rule {
                            members.values().for_each(|member| walk(member, name));
                        }
                    }
                    other => panic!("{name}: keyword {other} not implemented"),
                }
            }
        }
        for (name, schema) in loaded() {
            walk(schema, name);
        }
    }

    #[test]
    fn schema_lookup_is_case_insensitive_and_follows_json_pointers() {
        assert!(for_type("clientLogin").unwrap().is_some());
        assert!(for_type("CLIENTLOGIN").unwrap().is_some());
        assert!(for_type("noSuchType").unwrap().is_none());
        assert!(for_type("clientLogin#")
            .unwrap()
            .unwrap()
            .get("required")
            .is_some());
        let sub = for_type("clientLogin#/properties/type").unwrap().unwrap();
        assert_eq!(sub.get("const"), Some(&Value::String("clientLogin".into())));
        assert_eq!(
            for_type("clientLogin#/required/0").unwrap(),
            Some(&Value::String("type".into()))
        );
        assert_eq!(for_type("clientLogin#/required/99").unwrap(), None);
        assert_eq!(for_type("clientLogin#/nothing/here").unwrap(), None);
        assert!(for_type("clientLogin#/required/01").is_err());
        assert!(for_type("clientLogin#/required/x").is_err());
        assert!(for_type("clientLogin#/required/").is_err());
    }
}

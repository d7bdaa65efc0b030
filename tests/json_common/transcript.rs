//! The transcript files of `tests/json_conformance/` (format in that directory's README.md).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::matcher::{placeholder, Placeholder};

pub const TRANSCRIPT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/json_conformance");

const OPS: &[&str] = &[
    "connect",
    "close",
    "send",
    "send_raw",
    "send_game",
    "expect",
    "expect_game",
    "expect_closed",
    "check_no_forwarded_heartbeats",
];

pub struct Transcript {
    pub name: String,
    pub generate: Vec<String>,
    pub unordered: HashSet<String>,
    /// `Some(reason)`: the expectations deliberately differ from the reference; not replayed
    /// against a running oracle.
    pub differs_from_oracle: Option<String>,
    /// `Some(reason)`: the reference's behaviour that we deliberately do not reproduce (a newer
    /// transcript with `differs_from_oracle` holds ours); not replayed against vcmi-proxy.
    pub oracle_only: Option<String>,
    pub steps: Vec<Value>,
}

pub fn load_transcripts() -> Result<Vec<Transcript>, String> {
    // JSON_CONFORMANCE_DIR: replay other transcripts (e.g. fresh recordings, or a mutated copy to
    // see the replayer fail).
    let dir = std::env::var("JSON_CONFORMANCE_DIR").unwrap_or_else(|_| TRANSCRIPT_DIR.to_owned());
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read {dir}: {e}"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let only: HashSet<String> = std::env::var("JSON_CONFORMANCE_ONLY")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut out = Vec::new();
    for path in paths {
        let t = parse_transcript(&path)?;
        if only.is_empty() || only.contains(&t.name) {
            out.push(t);
        }
    }
    if out.is_empty() {
        return Err(format!("no transcripts selected in {dir}"));
    }
    Ok(out)
}

fn parse_transcript(path: &Path) -> Result<Transcript, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let err = |what: &str| format!("{}: {what}", path.display());
    let name = v["name"].as_str().ok_or_else(|| err("no name"))?.to_owned();
    if path.file_stem().and_then(|s| s.to_str()) != Some(name.as_str()) {
        return Err(err("name differs from the file name"));
    }
    if v["note"].as_str().is_none_or(str::is_empty) {
        return Err(err("no note"));
    }
    let strings = |key: &str| -> Result<Vec<String>, String> {
        match &v[key] {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_owned).ok_or_else(|| err(key)))
                .collect(),
            _ => Err(err(key)),
        }
    };
    let steps = v["steps"]
        .as_array()
        .ok_or_else(|| err("no steps"))?
        .clone();
    for (i, step) in steps.iter().enumerate() {
        let op = step["op"].as_str().unwrap_or("");
        if !OPS.contains(&op) {
            return Err(err(&format!("step {i}: unknown op {op:?}")));
        }
        if step["conn"].as_str().is_none() {
            return Err(err(&format!("step {i}: no conn")));
        }
    }
    Ok(Transcript {
        name,
        generate: strings("generate")?,
        unordered: strings("unordered")?.into_iter().collect(),
        differs_from_oracle: v["differs_from_oracle"].as_str().map(str::to_owned),
        oracle_only: v["oracle_only"].as_str().map(str::to_owned),
        steps,
    })
}

/// Every `$name` variable in an expected or sent value.
pub fn collect_vars(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Placeholder::Var(n) = placeholder(s) {
                out.push(n.to_owned());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_vars(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_vars(x, out)),
        _ => {}
    }
}

//! Every edit of a recorded scenario is accounted for. `tests/conformance/*.json` started as
//! copies of the recordings in `../shared/conformance/scenarios/` (same file names); where our
//! behaviour differs on purpose, steps were edited. This test diffs each scenario against its
//! recording and fails unless:
//!
//! * every step that differs (changed, added or removed; indices from 0, as the replay reports
//!   them) is listed in the scenario's `"edits"` object, `{"D<n>": [step, ...], ...}`, and every
//!   listed step does differ (no stale entries);
//! * every defect id there is one of PROTOCOL.md's defect table and is named in the scenario's
//!   `note`, which says what changed and why;
//! * nothing else differs but `note`, `description` and `edits`.
//!
//! So a scenario edited for a new reason cannot pass until its note names that reason.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level fields an edit may change without a step attribution.
const FREE_FIELDS: &[&str] = &["note", "description", "edits"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shared() -> PathBuf {
    repo().join("../shared")
}

fn load(path: &Path) -> Map<String, Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => panic!("{} is not a JSON object", path.display()),
        Err(e) => panic!("{} is not JSON: {e}", path.display()),
    }
}

/// The ids of PROTOCOL.md's defect table (`| D<n> | ...` rows).
fn defect_ids() -> BTreeSet<String> {
    let path = shared().join("PROTOCOL.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let ids: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("| D"))
        .filter_map(|rest| {
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!n.is_empty() && rest[n.len()..].starts_with(" |")).then(|| format!("D{n}"))
        })
        .collect();
    assert!(
        ids.len() > 30,
        "PROTOCOL.md's defect table not found ({} ids)",
        ids.len()
    );
    ids
}

/// Whether `note` names `id` as a word (D8 is not named by D80).
fn names(note: &str, id: &str) -> bool {
    note.match_indices(id).any(|(at, _)| {
        let before = note[..at].chars().next_back();
        let after = note[at + id.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// Indices of the steps that differ between the recording and ours.
fn changed_steps(recorded: &[Value], ours: &[Value]) -> BTreeSet<usize> {
    (0..recorded.len().max(ours.len()))
        .filter(|&i| recorded.get(i) != ours.get(i))
        .collect()
}

fn steps(scenario: &Map<String, Value>) -> &[Value] {
    scenario
        .get("steps")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The problems of one scenario (empty: accounted for).
fn check(
    name: &str,
    recorded: &Map<String, Value>,
    ours: &Map<String, Value>,
    ids: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let keys: BTreeSet<&String> = recorded.keys().chain(ours.keys()).collect();
    for key in keys {
        if !FREE_FIELDS.contains(&key.as_str())
            && key != "steps"
            && recorded.get(key) != ours.get(key)
        {
            problems.push(format!("{name}: field {key:?} differs from the recording"));
        }
    }
    let changed = changed_steps(steps(recorded), steps(ours));
    let note = ours.get("note").and_then(Value::as_str).unwrap_or("");
    let mut listed: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    match ours.get("edits") {
        None => {}
        Some(Value::Object(edits)) => {
            for (id, at) in edits {
                if !ids.contains(id) {
                    problems.push(format!(
                        "{name}: edits name {id:?}, which is not in PROTOCOL.md's defect table"
                    ));
                }
                if !names(note, id) {
                    problems.push(format!("{name}: edits name {id} but the note does not"));
                }
                for step in at.as_array().into_iter().flatten() {
                    match step.as_u64() {
                        Some(i) => listed.entry(i as usize).or_default().push(id),
                        None => problems.push(format!("{name}: edits.{id}: {step} is no index")),
                    }
                }
            }
        }
        Some(other) => problems.push(format!("{name}: edits is not an object: {other}")),
    }
    for i in &changed {
        if !listed.contains_key(i) {
            problems.push(format!(
                "{name}: step {i} differs from the recording, but no defect id in \"edits\" \
                 lists it (and the note must name it)"
            ));
        }
    }
    for (i, by) in &listed {
        if !changed.contains(i) {
            problems.push(format!(
                "{name}: edits list step {i} under {by:?}, but it is as recorded"
            ));
        }
    }
    problems
}

#[test]
fn every_edit_of_a_recorded_scenario_names_its_defect() {
    let ids = defect_ids();
    let recordings = shared().join("conformance/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/conformance"))
        .expect("tests/conformance")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in tests/conformance");
    let mut problems = Vec::new();
    let mut edited = 0;
    for ours_path in &files {
        let file = ours_path.file_name().expect("file name");
        let name = file.to_string_lossy();
        let recorded_path = recordings.join(file);
        if !recorded_path.exists() {
            problems.push(format!(
                "{name}: no recording of that name in {}",
                recordings.display()
            ));
            continue;
        }
        let (recorded, ours) = (load(&recorded_path), load(ours_path));
        if recorded != ours {
            edited += 1;
        }
        problems.extend(check(&name, &recorded, &ours, &ids));
    }
    eprintln!(
        "{} scenarios, {edited} differ from their recordings",
        files.len()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_check_catches_an_unexplained_edit() {
    let ids: BTreeSet<String> = ["D8", "D28"].iter().map(|s| s.to_string()).collect();
    let parse = |s: &str| match serde_json::from_str(s) {
        Ok(Value::Object(m)) => m,
        other => panic!("{other:?}"),
    };
    let recorded = parse(r#"{"note": "", "steps": [{"op": "a"}, {"op": "b"}]}"#);
    // step 1 changed for D8, but the note only names D28
    let ours = parse(
        r#"{"note": "Edited for D28.", "edits": {"D8": [1]},
            "steps": [{"op": "a"}, {"op": "c"}]}"#,
    );
    let p = check("x", &recorded, &ours, &ids);
    assert_eq!(p, vec!["x: edits name D8 but the note does not"], "{p:?}");
    // a changed step nobody lists, a listed step that did not change, an unknown id
    let ours = parse(
        r#"{"note": "D28 D99", "edits": {"D28": [0], "D99": []},
            "steps": [{"op": "a"}, {"op": "c"}, {"op": "d"}]}"#,
    );
    let p = check("x", &recorded, &ours, &ids);
    assert_eq!(p.len(), 4, "{p:?}");
    assert!(p.iter().any(|l| l.contains("\"D99\"")));
    assert!(p.iter().any(|l| l.contains("step 1 differs")));
    assert!(p.iter().any(|l| l.contains("step 2 differs")));
    assert!(p.iter().any(|l| l.contains("step 0 under")));
    // other fields may not change at all
    let ours = parse(r#"{"note": "", "server_args": ["x"], "steps": [{"op": "a"}, {"op": "b"}]}"#);
    assert_eq!(check("x", &recorded, &ours, &ids).len(), 1);
    assert!(names("for D8 (fix)", "D8") && !names("D80", "D8") && !names("XD8", "D8"));
}

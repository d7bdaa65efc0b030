//! JSON-lobby conformance: replays the transcripts of `tests/json_conformance/*.json` (recorded from
//! the reference vcmilobby by `tools/record_json_scenarios.py`; format in that directory's README)
//! over real TCP and fails on any difference, with a diff of the first mismatching step.
//!
//! * `replay_against_vcmi_proxy` starts our binary once per scenario (ephemeral port, temp log dir,
//!   fresh `--db`), scenarios in parallel.
//! * `replay_against_running_server` replays against `JSON_REPLAY_ADDR` (e.g. the oracle:
//!   `../shared/oracle/vcmilobby/run.sh env JSON_REPLAY_ADDR=127.0.0.1:3031 cargo test --test
//!   json_conformance`), one scenario at a time with a barrier in between; without the variable it
//!   only says so.
//! * `transcripts_are_well_formed` and the matcher tests need no server.
//!
//! `JSON_CONFORMANCE_ONLY=a,b` restricts the replay to the named scenarios;
//! `JSON_CONFORMANCE_DIR=PATH` reads the transcripts from elsewhere.
//!
//! Reading never sleeps: one reader thread per connection turns the byte stream into frames and
//! end-of-stream events on a channel, and each `expect` waits on that channel with a timeout.

mod common;
mod json_common;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::Server;
use json_common::conn::{Conn, Event, GAME_TIMEOUT, STEP_TIMEOUT};
use json_common::matcher::{
    framed, game_payload, has_u_escape, hex_decode, indent, match_value, show_payload, Vars,
};
use json_common::transcript::{collect_vars, load_transcripts, Transcript};

/// The server's own heartbeat period: a connection may receive one empty frame per period.
const HEARTBEAT_PERIOD: Duration = Duration::from_secs(10);
/// Scenarios replayed at the same time when each has its own server.
const PARALLEL: usize = 4;
/// A request with a known reply on a logged-in connection: the history of a channel nobody can
/// write to. Not the recorder's `fence` channel, so that a left-over reply to one of its fences is
/// told apart from the reply to this one.
const FENCE: &str =
    r#"{"type":"requestChatHistory","channelType":"global","channelName":"endfence"}"#;

// -- replay ------------------------------------------------------------------------------------

struct Run<'a> {
    t: &'a Transcript,
    addr: SocketAddr,
    vars: Vars,
    conns: HashMap<String, Conn>,
    /// Connections logged in as an account (a fence request gets a known reply there).
    accounts: HashSet<String>,
}

impl Run<'_> {
    fn conn(&mut self, name: &str) -> Result<&mut Conn, String> {
        self.conns
            .get_mut(name)
            .ok_or_else(|| format!("connection {name} is not open"))
    }

    fn step(&mut self, step: &Value) -> Result<(), String> {
        let op = step["op"].as_str().unwrap_or_default();
        let c = step["conn"].as_str().unwrap_or_default();
        match op {
            "connect" => {
                self.accounts.remove(c);
                let conn = Conn::open(self.addr)?;
                self.conns.insert(c.to_owned(), conn);
            }
            "close" => {
                self.accounts.remove(c);
                let conn = self
                    .conns
                    .remove(c)
                    .ok_or_else(|| format!("connection {c} is not open"))?;
                conn.shutdown();
            }
            "send" => {
                let payload = if let Some(j) = step.get("json") {
                    serde_json::to_vec(&self.vars.substitute(j)?).map_err(|e| e.to_string())?
                } else if let Some(t) = step["text"].as_str() {
                    self.vars.substitute_text(t)?.into_bytes()
                } else {
                    hex_decode(step["hex"].as_str().ok_or("send without json/text/hex")?)?
                };
                self.conn(c)?.write(framed(&payload))?;
            }
            "send_raw" => {
                let data = hex_decode(step["hex"].as_str().ok_or("send_raw without hex")?)?;
                self.conn(c)?.write(data)?;
            }
            "send_game" => {
                let (seed, size) = game_args(step)?;
                self.conn(c)?.write(framed(&game_payload(seed, size)))?;
            }
            "expect" => {
                let ev = self.conn(c)?.next(STEP_TIMEOUT)?;
                let payload = match ev {
                    Event::Frame(p) => p,
                    Event::Closed(why) => return Err(format!("connection closed ({why})")),
                    Event::Heartbeat => unreachable!("next() skips heartbeats"),
                };
                self.check_message(&step["msg"], &payload)?;
                if step["msg"]["type"] == "clientLoginSuccess" {
                    self.accounts.insert(c.to_owned());
                }
            }
            "expect_game" => {
                let want = if let Some(h) = step["hex"].as_str() {
                    hex_decode(h)?
                } else {
                    let (seed, size) = game_args(step)?;
                    game_payload(seed, size)
                };
                match self.conn(c)?.next(GAME_TIMEOUT)? {
                    Event::Frame(p) if p == want => {}
                    Event::Frame(p) => {
                        let first_diff = p.iter().zip(&want).position(|(a, b)| a != b);
                        return Err(format!(
                            "game frame differs: expected {} bytes, got {} (first difference at {:?})",
                            want.len(),
                            p.len(),
                            first_diff
                        ));
                    }
                    Event::Closed(why) => {
                        return Err(format!("connection closed ({why}) before a game frame"))
                    }
                    Event::Heartbeat => unreachable!("next() skips heartbeats"),
                }
            }
            "expect_closed" => {
                let mut optional: Vec<Value> = step["optional_before"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                optional.reverse();
                loop {
                    match self.conn(c)?.next(STEP_TIMEOUT)? {
                        Event::Closed(_) => break,
                        Event::Frame(p) => {
                            let Some(allowed) = optional.pop() else {
                                return Err(format!(
                                    "expected the connection to close, received:\n{}",
                                    show_payload(&p)
                                ));
                            };
                            self.check_message(&allowed, &p)?;
                        }
                        Event::Heartbeat => unreachable!("next() skips heartbeats"),
                    }
                }
                self.accounts.remove(c);
                if let Some(conn) = self.conns.remove(c) {
                    conn.shutdown();
                }
            }
            "check_no_forwarded_heartbeats" => {
                let conn = self.conn(c)?;
                let allowed = (conn.opened.elapsed().as_secs() / HEARTBEAT_PERIOD.as_secs()) + 1;
                if conn.heartbeats as u64 > allowed {
                    return Err(format!(
                        "{} empty frames received in {:?}: heartbeats were forwarded (at most {allowed} are the server's own)",
                        conn.heartbeats,
                        conn.opened.elapsed()
                    ));
                }
            }
            other => return Err(format!("unknown op {other}")),
        }
        Ok(())
    }

    /// The recorder consumed everything each connection received (it syncs every account
    /// connection at the end and checks the others for silence), so whatever has already arrived
    /// unconsumed is a message the reference did not send. Nothing waits here: what is still in
    /// flight goes unnoticed, which can only miss an error, never invent one.
    fn nothing_left(&mut self) -> Result<(), String> {
        let mut names: Vec<String> = self.conns.keys().cloned().collect();
        names.sort();
        // Logged-in account connections get one more fence: its reply must come next.
        let accounts: Vec<String> = names
            .iter()
            .filter(|n| self.accounts.contains(*n))
            .cloned()
            .collect();
        for name in &accounts {
            let conn = self.conn(name)?;
            conn.write(framed(FENCE.as_bytes()))?;
            match conn.next(STEP_TIMEOUT)? {
                Event::Frame(p)
                    if serde_json::from_slice::<Value>(&p).ok() == Some(fence_reply()) => {}
                Event::Frame(p) => {
                    return Err(format!(
                        "{name} received a message the transcript does not expect:\n  {}",
                        indent(&show_payload(&p))
                    ))
                }
                Event::Closed(why) => {
                    return Err(format!(
                        "{name} was closed ({why}); the transcript expects it open"
                    ))
                }
                Event::Heartbeat => unreachable!("next() skips heartbeats"),
            }
        }
        for name in &names {
            let conn = &self.conns[name];
            while let Ok(ev) = conn.events.try_recv() {
                match ev {
                    Event::Heartbeat => {}
                    Event::Frame(p) => {
                        return Err(format!(
                            "{name} received a message the transcript does not expect:\n  {}",
                            indent(&show_payload(&p))
                        ))
                    }
                    Event::Closed(why) => {
                        return Err(format!(
                            "{name} was closed ({why}); the transcript expects it open"
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    fn check_message(&mut self, expected: &Value, payload: &[u8]) -> Result<(), String> {
        let shown = || {
            format!(
                "\n  expected: {}\n  received: {}",
                indent(&serde_json::to_string_pretty(expected).unwrap_or_default()),
                indent(&show_payload(payload))
            )
        };
        if has_u_escape(payload) {
            return Err(format!("received JSON contains a \\u escape{}", shown()));
        }
        let actual: Value = match std::str::from_utf8(payload)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(s).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => return Err(format!("received payload is not JSON ({e}){}", shown())),
        };
        let mut trial = self.vars.clone();
        match match_value(expected, &actual, &mut trial, &self.t.unordered, None, "") {
            Ok(()) => {
                self.vars = trial;
                Ok(())
            }
            Err(e) => Err(format!("{e}{}", shown())),
        }
    }
}

fn fence_reply() -> Value {
    serde_json::json!({"type": "chatHistory", "channelType": "global", "channelName": "endfence", "messages": []})
}

fn game_args(step: &Value) -> Result<(u64, usize), String> {
    let seed = step["seed"].as_u64().ok_or("game step without seed")?;
    let size = step["size"].as_u64().ok_or("game step without size")? as usize;
    Ok((seed, size))
}

/// Replay one transcript; `Err` carries the report of the first failing step.
fn replay(t: &Transcript, addr: SocketAddr) -> Result<(), String> {
    let mut run = Run {
        t,
        addr,
        vars: Vars::default(),
        conns: HashMap::new(),
        accounts: HashSet::new(),
    };
    for name in &t.generate {
        run.vars.bind(name, &uuid::Uuid::new_v4().to_string())?;
    }
    let mut result = Ok(());
    for (i, step) in t.steps.iter().enumerate() {
        if let Err(e) = run.step(step) {
            let context: Vec<String> = t.steps[i.saturating_sub(3)..i]
                .iter()
                .map(|s| format!("    {}", compact(s)))
                .collect();
            result = Err(format!(
                "{}: step {i} failed: {}\n  preceding steps:\n{}\n  {}",
                t.name,
                compact(step),
                context.join("\n"),
                e
            ));
            break;
        }
    }
    if result.is_ok() {
        result = run
            .nothing_left()
            .map_err(|e| format!("{}: at the end: {e}", t.name));
    }
    for (_, conn) in run.conns.drain() {
        conn.shutdown();
    }
    result
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        format!(
            "{}...",
            &s[..s.char_indices().take_while(|(i, _)| *i < 300).count()]
        )
    } else {
        s
    }
}

/// Make sure a long-running server has handled the previous scenario's closes: an unknown message
/// type on a fresh connection is answered by a close, after everything that was pending before it.
fn barrier(addr: SocketAddr) -> Result<(), String> {
    let mut conn = Conn::open(addr)?;
    conn.write(framed(br#"{"type":"barrier"}"#))?;
    match conn.next(STEP_TIMEOUT)? {
        Event::Closed(_) => Ok(()),
        _ => Err("barrier: the server answered an invalid first frame".into()),
    }
}

fn report(results: &[(String, Result<(), String>)]) {
    let failed: Vec<&String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|_| n))
        .collect();
    for (name, r) in results {
        match r {
            Ok(()) => println!("ok   {name}"),
            Err(e) => println!("FAIL {e}\n"),
        }
    }
    println!(
        "{} passed, {} failed",
        results.len() - failed.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failing scenarios: {failed:?}");
}

#[test]
fn replay_against_running_server() {
    let Ok(addr) = std::env::var("JSON_REPLAY_ADDR") else {
        println!("JSON_REPLAY_ADDR not set: nothing to replay against (see the module docs)");
        return;
    };
    let addr = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("JSON_REPLAY_ADDR={addr} is not an address"));
    let transcripts = load_transcripts().unwrap_or_else(|e| panic!("{e}"));
    let mut results = Vec::new();
    for t in &transcripts {
        if let Some(why) = &t.differs_from_oracle {
            println!(
                "skip {} (differs from the reference on purpose: {why})",
                t.name
            );
            continue;
        }
        let r = barrier(addr).and_then(|()| replay(t, addr));
        results.push((t.name.clone(), r));
    }
    report(&results);
}

#[test]
fn replay_against_vcmi_proxy() {
    let transcripts = load_transcripts().unwrap_or_else(|e| panic!("{e}"));
    let mut selected = Vec::new();
    for t in transcripts {
        match &t.oracle_only {
            Some(why) => println!(
                "skip {} (the reference's behaviour, not ours: {why})",
                t.name
            ),
            None => selected.push(t),
        }
    }
    let queue = Arc::new(Mutex::new(selected));
    let results = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let results = Arc::clone(&results);
            thread::spawn(move || loop {
                let Some(t) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                    break;
                };
                let r = replay_on_fresh_server(&t);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((t.name.clone(), r));
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    results.sort_by(|a, b| a.0.cmp(&b.0));
    report(&results);
}

/// One scenario against a freshly started vcmi-proxy with its own empty database.
fn replay_on_fresh_server(t: &Transcript) -> Result<(), String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "vcmi-proxy-json-{}-{}-{nanos}",
        std::process::id(),
        t.name
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let db = dir.join("vcmiLobby.db");
    let db_arg = db.to_string_lossy().into_owned();
    // Flood control is ours (§1.7: the reference has no rate limit) and the replayer sends as
    // fast as the server answers, so it is off here; its own tests are in tests/json_lobby.rs.
    let result = Server::try_start(&["--db", &db_arg, "--flood-rate", "0"]).and_then(|server| {
        let r = replay(t, server.addr());
        if r.is_err() {
            let stderr = server.stderr_text();
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return r
                .map_err(|e| format!("{e}\n  server stderr (tail):\n    {}", tail.join("\n    ")));
        }
        r
    });
    let _ = std::fs::remove_dir_all(&dir);
    // A start failure does not name the scenario yet.
    result.map_err(|e| {
        if e.starts_with(&t.name) {
            e
        } else {
            format!("{}: {e}", t.name)
        }
    })
}

// -- tests of the replayer itself (no server) --------------------------------------------------

#[test]
fn transcripts_are_well_formed() {
    let transcripts = load_transcripts().unwrap_or_else(|e| panic!("{e}"));
    for t in &transcripts {
        // Every variable a send uses is generated or bound by an earlier expect.
        let mut bound: HashSet<String> = t.generate.iter().cloned().collect();
        let mut open: HashSet<&str> = HashSet::new();
        for (i, step) in t.steps.iter().enumerate() {
            let c = step["conn"].as_str().unwrap_or_default();
            let op = step["op"].as_str().unwrap_or_default();
            match op {
                "connect" => assert!(open.insert(c), "{} step {i}: {c} opened twice", t.name),
                "close" | "expect_closed" => {
                    assert!(open.remove(c), "{} step {i}: {c} not open", t.name)
                }
                _ => assert!(open.contains(c), "{} step {i}: {c} not open", t.name),
            }
            let mut names = Vec::new();
            collect_vars(step.get("msg").unwrap_or(&Value::Null), &mut names);
            for n in names {
                bound.insert(n);
            }
            let mut used = Vec::new();
            collect_vars(step.get("json").unwrap_or(&Value::Null), &mut used);
            if let Some(text) = step["text"].as_str() {
                let mut rest = text;
                while let Some(s) = rest.find("${") {
                    let e = rest[s..].find('}').expect("closed ${");
                    used.push(rest[s + 2..s + e].to_owned());
                    rest = &rest[s + e..];
                }
            }
            for n in used {
                assert!(
                    bound.contains(&n),
                    "{} step {i}: ${n} used before it is bound",
                    t.name
                );
            }
            if op == "send" {
                let kinds = ["json", "text", "hex"]
                    .iter()
                    .filter(|k| step.get(**k).is_some())
                    .count();
                assert_eq!(
                    kinds, 1,
                    "{} step {i}: send needs one of json/text/hex",
                    t.name
                );
            }
        }
    }
}

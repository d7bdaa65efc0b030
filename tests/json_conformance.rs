//! JSON-lobby conformance: replays the transcripts of `tests/json_conformance/*.json` (recorded from
//! the reference vcmilobby by `tools/record_json_scenarios.py`; format in that directory's README)
//! over real TCP and fails on any difference, with a diff of the first mismatching step.
//!
//! * `replay_against_vcmi_proxy` starts our binary once per scenario (ephemeral port, temp log dir,
//!   fresh `--db`), scenarios in parallel. Ignored until the JSON front-end lands.
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

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use common::Server;

/// Wait for one expected message (or end of stream).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait for one expected game frame (several MiB through a relay on a loaded machine).
const GAME_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of one blocking write of a small frame.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames at or above this size are written by a helper thread, so that a relay with
/// back-pressure can deliver them while the replayer reads the other side.
const BACKGROUND_WRITE: usize = 64 * 1024;
/// A received frame larger than this is an error (the protocol's own cap is 64 MiB).
const MAX_FRAME: usize = 80 * 1024 * 1024;
/// The server's own heartbeat period: a connection may receive one empty frame per period.
const HEARTBEAT_PERIOD: Duration = Duration::from_secs(10);
/// Scenarios replayed at the same time when each has its own server.
const PARALLEL: usize = 4;
/// A request with a known reply on a logged-in connection: the history of a channel nobody can
/// write to. Not the recorder's `fence` channel, so that a left-over reply to one of its fences is
/// told apart from the reply to this one.
const FENCE: &str =
    r#"{"type":"requestChatHistory","channelType":"global","channelName":"endfence"}"#;
const TRANSCRIPT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/json_conformance");

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

// -- transcripts -------------------------------------------------------------------------------

struct Transcript {
    name: String,
    generate: Vec<String>,
    unordered: HashSet<String>,
    /// `Some(reason)`: the expectations deliberately differ from the reference; not replayed
    /// against a running oracle.
    differs_from_oracle: Option<String>,
    steps: Vec<Value>,
}

fn load_transcripts() -> Result<Vec<Transcript>, String> {
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
        steps,
    })
}

// -- variables and matching --------------------------------------------------------------------

/// Variables of one scenario run: `$name` in a transcript stands for the value bound here.
#[derive(Clone, Default, Debug)]
struct Vars {
    by_name: HashMap<String, String>,
    by_value: HashMap<String, String>,
}

impl Vars {
    fn bind(&mut self, name: &str, value: &str) -> Result<(), String> {
        if let Some(other) = self.by_value.get(value) {
            return Err(format!(
                "${name} would bind {value:?}, already the value of ${other}"
            ));
        }
        self.by_name.insert(name.to_owned(), value.to_owned());
        self.by_value.insert(value.to_owned(), name.to_owned());
        Ok(())
    }

    fn get(&self, name: &str) -> Result<&str, String> {
        self.by_name
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("variable ${name} used before it is bound"))
    }

    /// Replace whole-string `$name` values (`$$x` is the literal `$x`) in a message to send.
    fn substitute(&self, v: &Value) -> Result<Value, String> {
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
    fn substitute_text(&self, text: &str) -> Result<String, String> {
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

enum Placeholder<'a> {
    Literal(&'a str),
    Var(&'a str),
    Int,
}

fn placeholder(s: &str) -> Placeholder<'_> {
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
fn match_value(
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
fn has_u_escape(payload: &[u8]) -> bool {
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
fn game_payload(seed: u64, size: usize) -> Vec<u8> {
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

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn hex_decode(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {hex:?}"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| format!("hex {hex:?}: {e}")))
        .collect()
}

fn show_payload(p: &[u8]) -> String {
    match serde_json::from_slice::<Value>(p) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) if p.len() > 200 => format!("{} bytes {:?}...", p.len(), &p[..200]),
        Err(_) => format!("{:?}", String::from_utf8_lossy(p)),
    }
}

// -- connections -------------------------------------------------------------------------------

enum Event {
    Frame(Vec<u8>),
    Heartbeat,
    Closed(String),
}

struct Conn {
    stream: TcpStream,
    events: Receiver<Event>,
    opened: Instant,
    heartbeats: usize,
    /// A large frame still being written by a helper thread.
    writer: Option<JoinHandle<std::io::Result<()>>>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect_timeout(&addr, STEP_TIMEOUT)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let mut reader = stream
            .try_clone()
            .map_err(|e| format!("cannot clone socket: {e}"))?;
        let (tx, events) = mpsc::channel();
        thread::spawn(move || loop {
            let mut header = [0u8; 4];
            let ev = match reader.read_exact(&mut header) {
                Err(e) => Event::Closed(end_reason(&e)),
                Ok(()) => {
                    let size = u32::from_le_bytes(header) as usize;
                    if size == 0 {
                        Event::Heartbeat
                    } else if size > MAX_FRAME {
                        Event::Closed(format!("frame of {size} bytes announced"))
                    } else {
                        let mut payload = vec![0u8; size];
                        match reader.read_exact(&mut payload) {
                            Ok(()) => Event::Frame(payload),
                            Err(e) => Event::Closed(format!("inside a frame: {}", end_reason(&e))),
                        }
                    }
                }
            };
            let last = matches!(ev, Event::Closed(_));
            if tx.send(ev).is_err() || last {
                break;
            }
        });
        Ok(Conn {
            stream,
            events,
            opened: Instant::now(),
            heartbeats: 0,
            writer: None,
        })
    }

    fn finish_write(&mut self) -> Result<(), String> {
        if let Some(w) = self.writer.take() {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("background write failed: {e}")),
                Err(_) => return Err("background writer panicked".into()),
            }
        }
        Ok(())
    }

    fn write(&mut self, data: Vec<u8>) -> Result<(), String> {
        self.finish_write()?;
        if data.len() >= BACKGROUND_WRITE {
            let mut s = self
                .stream
                .try_clone()
                .map_err(|e| format!("cannot clone socket: {e}"))?;
            let _ = s.set_write_timeout(Some(GAME_TIMEOUT));
            self.writer = Some(thread::spawn(move || s.write_all(&data)));
            Ok(())
        } else {
            self.stream
                .write_all(&data)
                .map_err(|e| format!("write failed: {e}"))
        }
    }

    /// The next event other than a heartbeat.
    fn next(&mut self, timeout: Duration) -> Result<Event, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Heartbeat) => self.heartbeats += 1,
                Ok(ev) => return Ok(ev),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("nothing received within {timeout:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Ok(Event::Closed("reader ended".into()))
                }
            }
        }
    }

    fn shutdown(mut self) {
        let _ = self.finish_write();
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn end_reason(e: &std::io::Error) -> String {
    if e.kind() == ErrorKind::UnexpectedEof {
        "end of stream".into()
    } else {
        format!("{e}")
    }
}

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

fn indent(s: &str) -> String {
    s.replace('\n', "\n  ")
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
                "{}: step {i} failed: {}\n  step: {}\n  preceding steps:\n{}\n  {}",
                t.name,
                compact(step),
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

/// Make sure a long-running server has handled the previous scenario's closes: an invalid frame
/// on a fresh connection is answered by a close, after everything that was pending before it.
fn barrier(addr: SocketAddr) -> Result<(), String> {
    let mut conn = Conn::open(addr)?;
    conn.write(framed(b"barrier"))?;
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
#[ignore = "enabled when the JSON front-end lands"]
fn replay_against_vcmi_proxy() {
    let transcripts = load_transcripts().unwrap_or_else(|e| panic!("{e}"));
    let queue = Arc::new(Mutex::new(transcripts.into_iter().collect::<Vec<_>>()));
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
    let result = Server::try_start(&["--db", &db_arg]).and_then(|server| {
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

fn collect_vars(v: &Value, out: &mut Vec<String>) {
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

//! Conformance suite: replays the recorded scenarios of `tests/conformance/*.json` against the
//! real `vcmi-proxy` binary.
//!
//! The replay has the semantics of the reference checker `check.py` (shared conformance material;
//! its README describes the scenario format): the same step operations, payload escaping,
//! normalisation (UUID placeholders, `<RUN>`, canonical list order, `numvar`), rendering of pipe
//! transcripts and step timing. Differences on purpose:
//!
//! * every scenario gets its OWN freshly started server (with the scenario's `server_args`), so
//!   scenarios run in parallel and never see each other's users or counters;
//! * scenarios marked `reference_defect` run too: in this repository their expectations describe
//!   our intended behaviour, not the reference's bug;
//! * an optional top-level `"skip": "reason"` skips a scenario (printed with the reason);
//! * an optional top-level `"edits": {"D<n>": [step, ...]}` says which steps differ from the
//!   recording in `../shared/conformance/scenarios` and for which defect; the replay ignores it,
//!   tests/conformance_notes.rs checks it;
//! * stricter on malformed files: an unknown connection `kind` or encoding is an error, and
//!   `numvar_regex` must have the form `^(PREFIX)(\d+)SUFFIX$` (no regex engine here; every
//!   scenario uses the default).
//!
//! The last line printed is `N passed, N failed` (`, N skipped` when some were skipped). A failing
//! scenario's server log directory is kept and its path printed with the failure.
//!
//! Run all: `cargo test --test conformance -- --nocapture`; restrict with
//! `CONFORMANCE_ONLY=room_kick,greet_v5_alone`; `CONFORMANCE_VERBOSE=1` shows every failing step
//! (default: the first 5 per scenario).
//!
//! Reading: one reader thread per connection blocks in `read()` (with a socket read timeout so it
//! notices a local close) and forwards data and end-of-stream over a channel; the step logic
//! waits on that channel with `recv_timeout`, which gives check.py's `select()` timing without
//! sleeping or busy polling.

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use common::{frame, lobby_hello_payload, pipe_hello, split_messages, Server};

// -- timing (the values of check.py) ---------------------------------------------------------

/// Silence that ends a step whose expectation is not met (yet).
const CHECK_QUIET: Duration = Duration::from_millis(150);
/// Silence that ends a step once its expectation is met.
const CHECK_GRACE: Duration = Duration::from_millis(30);
/// The last step of a scenario always waits this long, so trailing extra messages are caught.
const FINAL_QUIET: Duration = Duration::from_millis(150);
/// Cap of one step; `wait` steps use their own seconds.
const STEP_TIMEOUT: Duration = Duration::from_secs(3);
/// While waiting for `until`: silence and cap of one read round.
const UNTIL_QUIET: Duration = Duration::from_millis(50);
const UNTIL_SLICE: Duration = Duration::from_millis(250);
/// Bound of one blocking write (check.py gives `_sendall` the same 3 s).
const SEND_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a reader thread wakes up to notice that its connection was closed locally.
const READER_TICK: Duration = Duration::from_millis(100);

/// Pipe data longer than this is rendered as `<N bytes sha256:16hex>`.
const LONG_DATA: usize = 2048;
const RUN_TOKEN: &str = "<RUN>";
const DEFAULT_NUMVAR_RE: &str = r"^(:>>MSG:System:)(\d+)$";
const DEFAULT_VCMI_VERSION: &str = "1.4.5";
const OPS: &[&str] = &[
    "connect",
    "hello",
    "send",
    "raw",
    "pipe_hello",
    "wait",
    "close",
];

/// Scenarios replayed at the same time (each with its own server).
const PARALLEL: usize = 8;
/// Lines of the server's stderr quoted in a failure report.
const STDERR_TAIL: usize = 20;
/// Failing steps shown per scenario unless CONFORMANCE_VERBOSE is set.
const MAX_SHOWN_STEPS: usize = 5;

/// Anything that stops a scenario: a malformed file, an unknown placeholder, a server that does
/// not start or refuses a connection. Reported as the scenario's failure.
type ScenarioError = String;

// -- encodings -------------------------------------------------------------------------------

/// The text encodings scenarios use for lobby connections. check.py relies on Python codecs; the
/// scenarios only need UTF-8 and cp1251, so both are implemented here with Python's exact
/// behaviour (`errors="backslashreplace"` when decoding, strict when encoding).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Codec {
    Utf8,
    Cp1251,
}

/// cp1251 bytes 0x80..=0xFF as Unicode code points (Python's table); 0 marks 0x98, which
/// Python's codec leaves undefined.
const CP1251_HIGH: [u16; 128] = [
    0x0402, 0x0403, 0x201A, 0x0453, 0x201E, 0x2026, 0x2020, 0x2021, //
    0x20AC, 0x2030, 0x0409, 0x2039, 0x040A, 0x040C, 0x040B, 0x040F, //
    0x0452, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, //
    0, 0x2122, 0x0459, 0x203A, 0x045A, 0x045C, 0x045B, 0x045F, //
    0x00A0, 0x040E, 0x045E, 0x0408, 0x00A4, 0x0490, 0x00A6, 0x00A7, //
    0x0401, 0x00A9, 0x0404, 0x00AB, 0x00AC, 0x00AD, 0x00AE, 0x0407, //
    0x00B0, 0x00B1, 0x0406, 0x0456, 0x0491, 0x00B5, 0x00B6, 0x00B7, //
    0x0451, 0x2116, 0x0454, 0x00BB, 0x0458, 0x0405, 0x0455, 0x0457, //
    0x0410, 0x0411, 0x0412, 0x0413, 0x0414, 0x0415, 0x0416, 0x0417, //
    0x0418, 0x0419, 0x041A, 0x041B, 0x041C, 0x041D, 0x041E, 0x041F, //
    0x0420, 0x0421, 0x0422, 0x0423, 0x0424, 0x0425, 0x0426, 0x0427, //
    0x0428, 0x0429, 0x042A, 0x042B, 0x042C, 0x042D, 0x042E, 0x042F, //
    0x0430, 0x0431, 0x0432, 0x0433, 0x0434, 0x0435, 0x0436, 0x0437, //
    0x0438, 0x0439, 0x043A, 0x043B, 0x043C, 0x043D, 0x043E, 0x043F, //
    0x0440, 0x0441, 0x0442, 0x0443, 0x0444, 0x0445, 0x0446, 0x0447, //
    0x0448, 0x0449, 0x044A, 0x044B, 0x044C, 0x044D, 0x044E, 0x044F, //
];

impl Codec {
    /// Python-style codec lookup (case-insensitive, `-`/space same as `_`) for the names this
    /// replayer implements; `None` for anything else.
    fn lookup(name: &str) -> Option<Codec> {
        let norm = name.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        match norm.as_str() {
            "utf8" | "utf_8" | "u8" | "utf" => Some(Codec::Utf8),
            "cp1251" | "windows_1251" | "1251" => Some(Codec::Cp1251),
            _ => None,
        }
    }

    /// Decode like Python's `bytes.decode(codec, errors="backslashreplace")`.
    fn decode(self, data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len());
        match self {
            Codec::Utf8 => {
                let mut rest = data;
                loop {
                    match std::str::from_utf8(rest) {
                        Ok(s) => {
                            out.push_str(s);
                            break;
                        }
                        Err(e) => {
                            let (good, bad) = rest.split_at(e.valid_up_to());
                            out.push_str(std::str::from_utf8(good).unwrap_or_default());
                            // Rust's error length is the "maximal subpart" like CPython's; a
                            // sequence cut off by the end of the data is escaped whole.
                            let n = e.error_len().unwrap_or(bad.len());
                            for b in &bad[..n] {
                                let _ = write!(out, "\\x{b:02x}");
                            }
                            rest = &bad[n..];
                        }
                    }
                }
            }
            Codec::Cp1251 => {
                for &b in data {
                    if b < 0x80 {
                        out.push(char::from(b));
                    } else {
                        match char::from_u32(u32::from(CP1251_HIGH[usize::from(b - 0x80)])) {
                            Some(c) if c != '\0' => out.push(c),
                            _ => {
                                let _ = write!(out, "\\x{b:02x}");
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Encode like Python's strict `str.encode(codec)`.
    fn encode(self, text: &str) -> Result<Vec<u8>, ScenarioError> {
        match self {
            Codec::Utf8 => Ok(text.as_bytes().to_vec()),
            Codec::Cp1251 => text
                .chars()
                .map(|c| {
                    if u32::from(c) < 0x80 {
                        return Ok(c as u8);
                    }
                    CP1251_HIGH
                        .iter()
                        .position(|&u| u != 0 && u32::from(u) == u32::from(c))
                        .map(|i| 0x80 + i as u8)
                        .ok_or_else(|| format!("cp1251 cannot encode {c:?} in {text:?}"))
                })
                .collect(),
        }
    }
}

// -- escaped bytes ---------------------------------------------------------------------------

/// Readable, reversible text form of bytes: printable ASCII as is, backslash as `\\`, everything
/// else as `\xNN` (lower-case hex).
fn escape_bytes(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len());
    for &b in data {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7E => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// Inverse of [`escape_bytes`]; also accepts `\n`, `\r`, `\t`, `\0`. Other characters are
/// taken as their UTF-8 bytes.
fn unescape_bytes(text: &str) -> Result<Vec<u8>, ScenarioError> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let bad = || format!("bad escape at {i} in {text:?}");
        match chars.next().map(|(_, c)| c) {
            Some('x') => {
                let hex = text.get(i + 2..i + 4).ok_or_else(bad)?;
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return Err(bad());
                }
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                chars.next();
                chars.next();
            }
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Deterministic filler of `pattern: {"len": N, "seed": S}`: byte k is
/// `((k mod 1792) * 7 + S) mod 256`, as check.py's `pattern_bytes`.
fn pattern_bytes(len: usize, seed: i64) -> Vec<u8> {
    (0..len)
        .map(|k| ((((k % (256 * 7)) * 7) as i64 + seed).rem_euclid(256)) as u8)
        .collect()
}

// -- normalisation ---------------------------------------------------------------------------

/// What normalisation remembers across the steps of one scenario. Cloned for the tentative
/// renders made while a step is still in progress, so numbering is committed only by the final
/// render of each step (as check.py's `state.copy()`).
#[derive(Clone, Debug, Default)]
struct NormState {
    /// The random word `<RUN>` stands for in this run.
    run_token: String,
    /// Real uuids (lower case) in first-seen order: index n-1 is `<UUIDn>`.
    uuids: Vec<String>,
    /// numvar name -> first value seen.
    numbases: HashMap<String, i128>,
}

impl NormState {
    fn new(run_token: String) -> NormState {
        NormState {
            run_token,
            ..NormState::default()
        }
    }

    fn placeholder(&mut self, real: &str) -> String {
        let real = real.to_ascii_lowercase();
        let n = match self.uuids.iter().position(|u| *u == real) {
            Some(i) => i + 1,
            None => {
                self.uuids.push(real);
                self.uuids.len()
            }
        };
        format!("<UUID{n}>")
    }

    fn real_uuid(&self, n: usize) -> Option<&str> {
        n.checked_sub(1)
            .and_then(|i| self.uuids.get(i))
            .map(String::as_str)
    }
}

/// Whether a uuid (8-4-4-4-12 hex digits, any case) starts at byte `i`.
fn uuid_at(b: &[u8], i: usize) -> bool {
    const LEN: usize = 36;
    if b.len() < i + LEN {
        return false;
    }
    b[i..i + LEN].iter().enumerate().all(|(k, &c)| match k {
        8 | 13 | 18 | 23 => c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// Replace the run token by `<RUN>` and every uuid by its `<UUIDn>` placeholder (numbered in
/// first-seen order; leftmost, non-overlapping matches like Python's `re.sub`).
fn sub_uuids(text: &str, state: &mut NormState) -> String {
    let replaced;
    let text = if state.run_token.is_empty() {
        text
    } else {
        replaced = text.replace(&state.run_token, RUN_TOKEN);
        &replaced
    };
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        if uuid_at(b, i) {
            // Matches are pure ASCII, so both ends are char boundaries.
            out.push_str(&text[copied..i]);
            out.push_str(&state.placeholder(&text[i..i + 36]));
            i += 36;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The supported form of `numvar_regex`: `^(PREFIX)(\d+)SUFFIX$` with literal PREFIX/SUFFIX
/// (regex escapes like `\.` allowed). That covers the default and anything a scenario needs
/// without a regex engine; other shapes are rejected loudly rather than misread.
#[derive(Debug, PartialEq)]
struct NumvarRe {
    prefix: String,
    suffix: String,
}

impl NumvarRe {
    fn parse(re: &str) -> Result<NumvarRe, ScenarioError> {
        let unsupported =
            || format!("numvar_regex {re:?} is not of the form ^(PREFIX)(\\d+)SUFFIX$");
        let body = re
            .strip_prefix("^(")
            .and_then(|r| r.strip_suffix('$'))
            .ok_or_else(unsupported)?;
        let (prefix, suffix) = body.split_once(r")(\d+)").ok_or_else(unsupported)?;
        let literal = |s: &str| -> Result<String, ScenarioError> {
            let mut out = String::new();
            let mut chars = s.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e) if !e.is_ascii_alphanumeric() => out.push(e),
                        _ => return Err(unsupported()),
                    },
                    '.' | '^' | '$' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => {
                        return Err(unsupported())
                    }
                    c => out.push(c),
                }
            }
            Ok(out)
        };
        let suffix = literal(suffix)?;
        // `\d+` is greedy: a suffix starting with a digit would need backtracking.
        if suffix.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(unsupported());
        }
        Ok(NumvarRe {
            prefix: literal(prefix)?,
            suffix,
        })
    }
}

/// Write a cumulative counter relative to the first value seen: `<name>`, `<name+1>`, `<name-2>`.
fn sub_numvar(msg: &str, name: &str, re: &NumvarRe, state: &mut NormState) -> String {
    let Some(rest) = msg.strip_prefix(re.prefix.as_str()) else {
        return msg.to_string();
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let after = &rest[digits..];
    // Python's `$` also matches before one final newline.
    let Some(tail) = after.strip_prefix(re.suffix.as_str()) else {
        return msg.to_string();
    };
    if digits == 0 || !(tail.is_empty() || tail == "\n") {
        return msg.to_string();
    }
    let Ok(value) = rest[..digits].parse::<i128>() else {
        return msg.to_string();
    };
    let token = match state.numbases.get(name) {
        None => {
            state.numbases.insert(name.to_string(), value);
            format!("<{name}>")
        }
        Some(&base) if value == base => format!("<{name}>"),
        Some(&base) => format!("<{name}{:+}>", value - base),
    };
    format!("{}{token}{after}", re.prefix)
}

/// Put lists whose order is an accident of the server's containers into canonical order: names
/// in USERS, 4-field rooms in SESSIONS, mod/version pairs in MODS, name lines of
/// `MSG:System:People in lobby`. Messages whose count field does not fit are left alone.
fn canonical(msg: &str) -> String {
    fn grouped(head: &str, rest: &str, width: usize) -> Option<String> {
        let fields: Vec<&str> = rest.split(':').collect();
        let count = fields[0];
        if count.is_empty() || !count.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let n: usize = count.parse().ok()?;
        if fields.len() - 1 != n.checked_mul(width)? {
            return None;
        }
        let mut groups: Vec<&[&str]> = fields[1..].chunks(width).collect();
        groups.sort();
        let mut out = vec![head, count];
        out.extend(groups.into_iter().flatten().copied());
        Some(out.join(":"))
    }
    let sorted = if let Some(rest) = msg.strip_prefix(":>>USERS:") {
        grouped(":>>USERS", rest, 1)
    } else if let Some(rest) = msg.strip_prefix(":>>SESSIONS:") {
        grouped(":>>SESSIONS", rest, 4)
    } else if let Some(rest) = msg.strip_prefix(":>>MODS:") {
        grouped(":>>MODS", rest, 2)
    } else if msg.starts_with(":>>MSG:System:People in lobby\n") {
        let mut lines: Vec<&str> = msg.split('\n').collect();
        lines[1..].sort();
        Some(lines.join("\n"))
    } else {
        None
    };
    sorted.unwrap_or_else(|| msg.to_string())
}

// -- transcripts -----------------------------------------------------------------------------

/// What one connection received during a step (normalised) and whether it is still open.
#[derive(Clone, Debug, PartialEq)]
struct ConnObs {
    recv: Vec<String>,
    open: bool,
}

/// Per connection name; compared as a map because the interleaving of connections is not
/// recorded.
type Transcript = BTreeMap<String, ConnObs>;

/// Parse a step's `expect` (`recv` defaults to `[]`, `open` to true).
fn parse_expect(v: &Value) -> Result<Transcript, ScenarioError> {
    let map = v.as_object().ok_or("expect is not an object")?;
    let mut out = Transcript::new();
    for (name, e) in map {
        let recv = match e.get("recv") {
            None => Vec::new(),
            Some(list) => list
                .as_array()
                .ok_or_else(|| format!("expect.{name}.recv is not a list"))?
                .iter()
                .map(|m| m.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("expect.{name}.recv holds a non-string"))?,
        };
        let open = match e.get("open") {
            None => true,
            Some(o) => o
                .as_bool()
                .ok_or_else(|| format!("expect.{name}.open is not a bool"))?,
        };
        out.insert(name.clone(), ConnObs { recv, open });
    }
    Ok(out)
}

/// `<N bytes sha256:...>`: the expected length N, if `s` has that form.
fn long_len(s: &str) -> Option<usize> {
    let rest = s.strip_prefix('<')?.strip_suffix('>')?;
    let (n, digest) = rest.split_once(" bytes sha256:")?;
    let hex_ok = !digest.is_empty()
        && digest
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) || !hex_ok {
        return None;
    }
    n.parse().ok()
}

/// True when observed equals expected (open flags of `ignore_open` connections not compared).
fn expect_matches(expected: &Transcript, observed: &Transcript, ignore_open: &[String]) -> bool {
    expected.len() == observed.len()
        && expected.iter().all(|(name, exp)| {
            observed.get(name).is_some_and(|obs| {
                exp.recv == obs.recv && (ignore_open.contains(name) || exp.open == obs.open)
            })
        })
}

/// True while the observed transcript can still grow into the expected one: every connection
/// got a prefix of its expected messages (the last one possibly cut short) and none closed that
/// should stay open. `raw_len` gives the bytes received per connection (for long pipe data).
fn expect_possible(
    expected: &Transcript,
    observed: &Transcript,
    raw_len: &dyn Fn(&str) -> usize,
    ignore_open: &[String],
) -> bool {
    if expected.len() != observed.len() || !expected.keys().all(|k| observed.contains_key(k)) {
        return false;
    }
    for (name, exp) in expected {
        let obs = &observed[name];
        let (e, o) = (&exp.recv, &obs.recv);
        if let (1, Some(n)) = (e.len(), e.first().and_then(|m| long_len(m))) {
            if raw_len(name) >= n && e != o {
                return false;
            }
        } else if o.len() > e.len() {
            return false;
        } else {
            let last = o.len().saturating_sub(1);
            for (i, m) in o.iter().enumerate() {
                if *m != e[i] && !(i == last && e[i].starts_with(m.as_str())) {
                    return false;
                }
            }
        }
        if !ignore_open.contains(name) && exp.open && !obs.open {
            return false;
        }
    }
    true
}

/// Longest-common-subsequence diff of two message lists: `  ` kept, `- ` expected only, `+ `
/// observed only. Newlines inside messages are shown as `\n` so one message stays one line.
fn diff_lines(expected: &[String], observed: &[String]) -> Vec<String> {
    let (n, m) = (expected.len(), observed.len());
    // lcs[i][j]: LCS length of expected[i..] and observed[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == observed[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let show = |s: &str| s.replace('\n', "\\n");
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == observed[j] {
            out.push(format!("  {}", show(&expected[i])));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Expected-only lines first, like difflib's unified diff.
            out.push(format!("- {}", show(&expected[i])));
            i += 1;
        } else {
            out.push(format!("+ {}", show(&observed[j])));
            j += 1;
        }
    }
    out
}

// -- scenario steps --------------------------------------------------------------------------

fn step_str<'a>(step: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ScenarioError> {
    match step.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("field {key:?} must be a string, got {v}")),
    }
}

fn step_f64(step: &Map<String, Value>, key: &str) -> Result<Option<f64>, ScenarioError> {
    match step.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(Some)
            .ok_or_else(|| format!("field {key:?} must be a non-negative number, got {v}")),
    }
}

fn step_secs(
    step: &Map<String, Value>,
    key: &str,
    default: Duration,
) -> Result<Duration, ScenarioError> {
    Ok(step_f64(step, key)?.map_or(default, Duration::from_secs_f64))
}

/// A string or a list of strings (the payload fields `text` and `bytes`).
fn str_items(v: &Value) -> Result<Vec<&str>, ScenarioError> {
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| format!("payload item {i} is not a string"))
            })
            .collect(),
        other => Err(format!("payload must be a string or a list, got {other}")),
    }
}

/// A step as shown in failure reports: every field but `expect` and `comment`.
fn describe_step(step: &Map<String, Value>) -> String {
    let fields: Map<String, Value> = step
        .iter()
        .filter(|(k, _)| *k != "expect" && *k != "comment")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(fields).to_string()
}

/// A random word of 6 lower-case letters for `<RUN>`. std's `RandomState` is seeded randomly per
/// process; mixing in the clock and the scenario name varies it per run and scenario.
fn run_token(salt: &str) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(salt.as_bytes());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    let mut x = h.finish();
    (0..6)
        .map(|_| {
            let c = char::from(b'a' + (x % 26) as u8);
            x /= 26;
            c
        })
        .collect()
}

// -- connections -----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Lobby,
    Pipe,
}

/// What reader threads report.
enum Event {
    Data(usize, Vec<u8>),
    /// FIN or RST (or any read error): the connection is not open any more.
    End(usize),
}

struct Conn {
    /// Unique within a scenario run; events of connections closed meanwhile are ignored.
    id: usize,
    name: String,
    kind: Kind,
    /// The connection's encoding name as the scenario wrote it (sent by `hello`).
    encoding: String,
    codec: Codec,
    stream: TcpStream,
    /// No FIN/RST seen and no send failed.
    open: bool,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Conn {
    fn connect(
        addr: SocketAddr,
        id: usize,
        name: &str,
        kind: Kind,
        encoding: &str,
        tx: Sender<Event>,
    ) -> Result<Conn, ScenarioError> {
        let codec = Codec::lookup(encoding)
            .ok_or_else(|| format!("connection {name}: unsupported encoding {encoding:?}"))?;
        let io = |what: &str, e: std::io::Error| format!("connection {name}: {what}: {e}");
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| io("connect", e))?;
        // check.py sets TCP_NODELAY: small writes (byte-by-byte steps) must go out as written.
        stream.set_nodelay(true).map_err(|e| io("TCP_NODELAY", e))?;
        stream
            .set_write_timeout(Some(SEND_TIMEOUT))
            .map_err(|e| io("write timeout", e))?;
        stream
            .set_read_timeout(Some(READER_TICK))
            .map_err(|e| io("read timeout", e))?;
        let mut reader_stream = stream.try_clone().map_err(|e| io("clone", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_reader = Arc::clone(&stop);
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop_reader.load(Ordering::Relaxed) {
                match reader_stream.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Event::End(id));
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Event::Data(id, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    // ECONNRESET and friends: the server ended the connection.
                    Err(_) => {
                        let _ = tx.send(Event::End(id));
                        return;
                    }
                }
            }
        });
        Ok(Conn {
            id,
            name: name.to_string(),
            kind,
            encoding: encoding.to_string(),
            codec,
            stream,
            open: true,
            stop,
            reader: Some(reader),
        })
    }

    /// Write `data`, in pieces of `chunk` bytes with `delay` between them if asked. A failed
    /// write marks the connection as ended (like check.py) instead of failing the scenario.
    fn send(&mut self, data: &[u8], chunk: Option<usize>, delay: Duration) {
        let size = chunk.filter(|&c| c > 0).unwrap_or(data.len().max(1));
        for (n, piece) in data.chunks(size).enumerate() {
            if n > 0 && !delay.is_zero() {
                // The scenario asks for this gap between writes (e.g. byte-by-byte delivery).
                thread::sleep(delay);
            }
            if self.stream.write_all(piece).is_err() {
                self.open = false;
                return;
            }
        }
    }

    fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the reader (its read returns 0) and sends FIN.
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close();
    }
}

/// One failing step of a scenario.
struct StepFailure {
    idx: usize,
    description: String,
    expected: Transcript,
    observed: Transcript,
    ignore_open: Vec<String>,
}

impl StepFailure {
    fn report(&self) -> String {
        let mut out = format!("  step {}: {}\n", self.idx, self.description);
        let mut names: Vec<&String> = self.expected.keys().chain(self.observed.keys()).collect();
        names.sort_by_key(|n| (!self.expected.contains_key(*n), *n));
        names.dedup();
        for name in names {
            let (Some(exp), Some(obs)) = (self.expected.get(name), self.observed.get(name)) else {
                let what = if self.expected.contains_key(name) {
                    "connection missing from observed transcript"
                } else {
                    "unexpected connection in observed transcript"
                };
                let _ = writeln!(out, "    [{name}] {what}");
                continue;
            };
            if exp.recv != obs.recv {
                let _ = writeln!(
                    out,
                    "    [{name}] received messages differ (- expected, + observed):"
                );
                for line in diff_lines(&exp.recv, &obs.recv) {
                    let _ = writeln!(out, "      {line}");
                }
            }
            if !self.ignore_open.contains(name) && exp.open != obs.open {
                let word = |o: bool| if o { "open" } else { "closed" };
                let _ = writeln!(
                    out,
                    "    [{name}] expected connection {}, observed {}",
                    word(exp.open),
                    word(obs.open)
                );
            }
        }
        out
    }
}

/// How a step's expectation is checked.
struct StepSpec {
    expected: Option<Transcript>,
    ignore_open: Vec<String>,
    /// `"check": false`: the output is consumed but not compared.
    check: bool,
    /// The last step always waits for full silence (trailing extra messages).
    final_step: bool,
}

/// How a step waits for its output after its action.
struct StepWait {
    /// `wait ... until`: first wait for this connection to receive something or end.
    until: Option<String>,
    timeout: Duration,
}

/// "Is the step's expectation met by what arrived so far?"
type Predicate<'a> = &'a dyn Fn(&Runner, &Raw) -> bool;

/// Replays one scenario against one server.
struct Runner {
    addr: SocketAddr,
    /// Open connections in the order they were opened (the order of uuid numbering).
    conns: Vec<Conn>,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    next_id: usize,
    state: NormState,
}

/// Bytes each connection received during the current step, parallel to `Runner::conns`
/// (connections only change between steps).
type Raw = Vec<Vec<u8>>;

impl Runner {
    fn new(addr: SocketAddr, run_token: String) -> Runner {
        let (tx, rx) = mpsc::channel();
        Runner {
            addr,
            conns: Vec::new(),
            tx,
            rx,
            next_id: 0,
            state: NormState::new(run_token),
        }
    }

    fn run(&mut self, steps: &[Value]) -> Result<Vec<StepFailure>, ScenarioError> {
        let mut failures = Vec::new();
        for (idx, step) in steps.iter().enumerate() {
            let step = step
                .as_object()
                .ok_or_else(|| format!("step {idx} is not an object"))?;
            let op = step_str(step, "op")?.unwrap_or("");
            if !OPS.contains(&op) {
                return Err(format!("step {idx}: unknown op {op:?}"));
            }
            let context = |e: ScenarioError| format!("step {idx} ({op}): {e}");
            let wait = self.perform(step).map_err(context)?;
            let final_step = idx + 1 == steps.len();
            let expected = step
                .get("expect")
                .map(parse_expect)
                .transpose()
                .map_err(context)?;
            let ignore_open: Vec<String> = match step.get("ignore_open") {
                None => Vec::new(),
                Some(v) => str_items(v)
                    .map_err(context)?
                    .into_iter()
                    .map(String::from)
                    .collect(),
            };
            let spec = StepSpec {
                expected,
                ignore_open,
                check: step.get("check").and_then(Value::as_bool).unwrap_or(true),
                final_step,
            };
            let observed = self.collect(step, &spec, wait).map_err(context)?;
            if spec.check {
                let expected = spec
                    .expected
                    .ok_or_else(|| format!("step {idx} has no recorded expectation"))?;
                if !expect_matches(&expected, &observed, &spec.ignore_open) {
                    failures.push(StepFailure {
                        idx,
                        description: describe_step(step),
                        expected,
                        observed,
                        ignore_open: spec.ignore_open,
                    });
                }
            }
        }
        Ok(failures)
    }

    fn conn_index(&self, name: &str) -> Result<usize, ScenarioError> {
        self.conns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| format!("unknown connection {name:?}"))
    }

    /// Resolve `<RUN>` and `<UUIDn>` in text to send.
    fn resolve(&self, text: &str) -> Result<String, ScenarioError> {
        let text = text.replace(RUN_TOKEN, &self.state.run_token);
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(pos) = rest.find("<UUID") {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 5..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && after[digits..].starts_with('>') {
                let n: usize = after[..digits].parse().unwrap_or(0);
                let real = self
                    .state
                    .real_uuid(n)
                    .ok_or_else(|| format!("placeholder <UUID{n}> not seen yet"))?;
                out.push_str(real);
                rest = &after[digits + 1..];
            } else {
                out.push_str("<UUID");
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Payload items of a send/raw step: one frame (send) or piece (raw) each.
    fn payload(
        &self,
        step: &Map<String, Value>,
        conn: &Conn,
    ) -> Result<Vec<Vec<u8>>, ScenarioError> {
        if let Some(text) = step.get("text") {
            let codec = match step_str(step, "encoding")? {
                None => conn.codec,
                Some(name) => {
                    Codec::lookup(name).ok_or_else(|| format!("unsupported encoding {name:?}"))?
                }
            };
            return str_items(text)?
                .into_iter()
                .map(|t| codec.encode(&self.resolve(t)?))
                .collect();
        }
        if let Some(bytes) = step.get("bytes") {
            return str_items(bytes)?
                .into_iter()
                .map(|t| unescape_bytes(&self.resolve(t)?))
                .collect();
        }
        if let Some(spec) = step.get("pattern") {
            let len = spec
                .get("len")
                .and_then(Value::as_u64)
                .ok_or("pattern needs an integer len")?;
            let seed = spec.get("seed").and_then(Value::as_i64).unwrap_or(0);
            let len = usize::try_from(len).map_err(|e| e.to_string())?;
            return Ok(vec![pattern_bytes(len, seed)]);
        }
        Err("step has no text, bytes or pattern payload".to_string())
    }

    /// Perform a step's action; returns how the step then waits for its output.
    fn perform(&mut self, step: &Map<String, Value>) -> Result<StepWait, ScenarioError> {
        let op = step_str(step, "op")?.unwrap_or("");
        let name = step_str(step, "conn")?;
        let timeout = step_secs(step, "timeout", STEP_TIMEOUT)?;
        match op {
            "connect" => {
                let name = name.ok_or("connect needs conn")?;
                if self.conn_index(name).is_ok() {
                    return Err(format!("connection {name:?} already exists"));
                }
                let kind = match step_str(step, "kind")?.unwrap_or("lobby") {
                    "lobby" => Kind::Lobby,
                    "pipe" => Kind::Pipe,
                    other => return Err(format!("unknown connection kind {other:?}")),
                };
                let encoding = step_str(step, "encoding")?.unwrap_or("utf8");
                let conn = Conn::connect(
                    self.addr,
                    self.next_id,
                    name,
                    kind,
                    encoding,
                    self.tx.clone(),
                )?;
                self.next_id += 1;
                self.conns.push(conn);
                return Ok(StepWait {
                    until: None,
                    timeout,
                });
            }
            "wait" => {
                let seconds = step_secs(step, "seconds", Duration::ZERO)?;
                if let Some(until) = step_str(step, "until")? {
                    return Ok(StepWait {
                        until: Some(until.to_string()),
                        timeout: seconds.max(Duration::from_millis(10)),
                    });
                }
                // Plain pause: the scenario wants time to pass. Data arriving meanwhile is
                // collected by the step's reading as usual.
                thread::sleep(seconds);
                return Ok(StepWait {
                    until: None,
                    timeout,
                });
            }
            _ => {}
        }
        let idx = self.conn_index(name.ok_or("step needs conn")?)?;
        let data = match op {
            "close" => {
                self.conns.remove(idx).close();
                return Ok(StepWait {
                    until: None,
                    timeout,
                });
            }
            "hello" => self.hello_bytes(step, &self.conns[idx])?,
            "send" => self
                .payload(step, &self.conns[idx])?
                .iter()
                .flat_map(|p| frame(p))
                .collect(),
            "raw" => self.payload(step, &self.conns[idx])?.concat(),
            "pipe_hello" => self.pipe_hello_bytes(step)?,
            _ => unreachable!("ops are checked before perform"),
        };
        let chunk = step
            .get("chunk")
            .map(|c| c.as_u64().ok_or("chunk must be an integer"))
            .transpose()?
            .map(|c| usize::try_from(c).unwrap_or(usize::MAX));
        let delay = step_secs(step, "delay", Duration::ZERO)?;
        self.conns[idx].send(&data, chunk, delay);
        Ok(StepWait {
            until: None,
            timeout,
        })
    }

    /// `[protocol][len][encoding]<GREETINGS>user<VER>version` + tail, framed.
    fn hello_bytes(
        &self,
        step: &Map<String, Value>,
        conn: &Conn,
    ) -> Result<Vec<u8>, ScenarioError> {
        let rt = &self.state.run_token;
        let user = step_str(step, "user")?
            .ok_or("hello needs user")?
            .replace(RUN_TOKEN, rt);
        let protocol = match step.get("protocol") {
            None => 5,
            Some(v) => v
                .as_u64()
                .and_then(|p| u8::try_from(p).ok())
                .ok_or_else(|| format!("protocol must be 0..=255, got {v}"))?,
        };
        // `"encoding": null` sends a zero length byte and no name.
        let encoding = match step.get("encoding") {
            None => Some(conn.encoding.as_str()),
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(v) => return Err(format!("encoding must be a string or null, got {v}")),
        };
        let version = match step.get("version") {
            None => Some(DEFAULT_VCMI_VERSION),
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(v) => return Err(format!("version must be a string or null, got {v}")),
        };
        let tail = step_str(step, "tail")?.unwrap_or("").replace(RUN_TOKEN, rt);
        let mut text = format!("<GREETINGS>{user}");
        if let Some(v) = version {
            text.push_str("<VER>");
            text.push_str(v);
        }
        text.push_str(&tail);
        if encoding.is_some_and(|e| !e.is_ascii() || e.len() > 255) {
            return Err("encoding name must be ASCII and at most 255 bytes".to_string());
        }
        // Like vcmiproto: a name Python does not know (e.g. 'klingon') still goes out as the
        // name, with the text in UTF-8. Names this replayer does not implement count as unknown.
        let body = encoding
            .and_then(Codec::lookup)
            .unwrap_or(Codec::Utf8)
            .encode(&text)?;
        Ok(frame(&lobby_hello_payload(protocol, encoding, &body)))
    }

    /// The three handshake frames of a game process plus its endianness byte.
    fn pipe_hello_bytes(&self, step: &Map<String, Value>) -> Result<Vec<u8>, ScenarioError> {
        let role = step_str(step, "role")?.unwrap_or("client");
        let mut uuid = step_str(step, "uuid")?.unwrap_or("").to_string();
        // Only a whole-field placeholder is resolved (check.py uses fullmatch here).
        if let Some(n) = uuid
            .strip_prefix("<UUID")
            .and_then(|r| r.strip_suffix('>'))
            .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|d| d.parse::<usize>().ok())
        {
            uuid = self
                .state
                .real_uuid(n)
                .ok_or_else(|| format!("placeholder {uuid} not seen yet"))?
                .to_string();
        }
        let version = step_str(step, "version")?.unwrap_or(DEFAULT_VCMI_VERSION);
        let name = match step_str(step, "name")? {
            Some(n) => n.to_string(),
            None => format!("VCMI {version} ({role})"),
        };
        let endian = unescape_bytes(step_str(step, "endian")?.unwrap_or("\\x01"))?;
        Ok(pipe_hello(role, &uuid, Some(&name), &endian))
    }

    /// Apply one reader event to the step's data. Returns true if it changed anything (data
    /// for, or the end of, a connection still open).
    fn apply(&mut self, ev: Event, raw: &mut Raw) -> bool {
        let (id, data) = match ev {
            Event::Data(id, d) => (id, Some(d)),
            Event::End(id) => (id, None),
        };
        let Some(i) = self.conns.iter().position(|c| c.id == id) else {
            return false; // closed by the scenario meanwhile
        };
        // After an end (or a failed send) check.py reads no more from a connection.
        if !self.conns[i].open {
            return false;
        }
        match data {
            Some(d) => raw[i].extend_from_slice(&d),
            None => self.conns[i].open = false,
        }
        true
    }

    /// Wait up to `wait` for reader events and apply all that are there. True if any changed
    /// the step's data.
    fn pump(&mut self, raw: &mut Raw, wait: Duration) -> bool {
        let first = match self.rx.recv_timeout(wait) {
            Ok(ev) => ev,
            // Disconnected cannot happen (we hold a sender); treat it like silence.
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
        };
        let mut changed = self.apply(first, raw);
        while let Ok(ev) = self.rx.try_recv() {
            changed |= self.apply(ev, raw);
        }
        changed
    }

    fn any_open(&self) -> bool {
        self.conns.iter().any(|c| c.open)
    }

    /// Read until no byte arrived for `quiet` (`grace` once `satisfied` holds), `timeout`
    /// passed, or every connection ended: check.py's `read_until_quiet`.
    fn read_until_quiet(
        &mut self,
        raw: &mut Raw,
        quiet: Duration,
        timeout: Duration,
        satisfied: Option<Predicate>,
        grace: Option<Duration>,
    ) {
        let start = Instant::now();
        let mut last = start;
        // Re-evaluated only after new data: nothing else changes the answer.
        let mut is_satisfied = None;
        loop {
            let mut limit = quiet;
            if let Some(f) = satisfied {
                if *is_satisfied.get_or_insert_with(|| f(self, raw)) {
                    limit = grace.unwrap_or(quiet);
                }
            }
            let now = Instant::now();
            let (since_start, since_last) = (now - start, now - last);
            if since_start >= timeout || since_last >= limit || !self.any_open() {
                return;
            }
            let wait = (limit - since_last).min(timeout - since_start);
            if self.pump(raw, wait) {
                last = Instant::now();
                is_satisfied = None;
            }
        }
    }

    /// The normalised transcript of the step so far.
    fn render(
        &self,
        raw: &Raw,
        state: &mut NormState,
        numvar: Option<(&str, &NumvarRe)>,
    ) -> Transcript {
        let mut out = Transcript::new();
        for (conn, data) in self.conns.iter().zip(raw) {
            let recv = match conn.kind {
                Kind::Pipe if data.len() > LONG_DATA => {
                    let digest = Sha256::digest(data);
                    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                    vec![format!("<{} bytes sha256:{hex}>", data.len())]
                }
                Kind::Pipe if data.is_empty() => Vec::new(),
                Kind::Pipe => vec![sub_uuids(&escape_bytes(data), state)],
                Kind::Lobby => split_messages(&conn.codec.decode(data))
                    .into_iter()
                    .map(|m| {
                        let mut m = sub_uuids(&m, state);
                        if let Some((name, re)) = numvar {
                            m = sub_numvar(&m, name, re, state);
                        }
                        canonical(&m)
                    })
                    .collect(),
            };
            out.insert(
                conn.name.clone(),
                ConnObs {
                    recv,
                    open: conn.open,
                },
            );
        }
        out
    }

    /// Read every connection until the step is over (check.py's `_collect`) and render it,
    /// committing new uuid placeholders and numvar bases.
    fn collect(
        &mut self,
        step: &Map<String, Value>,
        spec: &StepSpec,
        wait: StepWait,
    ) -> Result<Transcript, ScenarioError> {
        let StepSpec {
            expected,
            ignore_open,
            check,
            final_step,
        } = spec;
        let (expected, check, final_step) = (expected.as_ref(), *check, *final_step);
        let mut timeout = wait.timeout;
        let mut raw: Raw = vec![Vec::new(); self.conns.len()];
        let mut quiet = step_secs(step, "quiet", CHECK_QUIET)?;
        if final_step {
            quiet = quiet.max(FINAL_QUIET);
        }
        let numvar_re = match step_str(step, "numvar_regex")? {
            Some(re) => NumvarRe::parse(re)?,
            None => NumvarRe::parse(DEFAULT_NUMVAR_RE)?,
        };
        let numvar = step_str(step, "numvar")?.map(|n| (n, &numvar_re));

        // Tentative renders work on a copy of the state so numbering is not committed early.
        let observe = |r: &Runner, raw: &Raw| r.render(raw, &mut r.state.clone(), numvar);
        let satisfied = |r: &Runner, raw: &Raw| {
            expected.is_some_and(|e| expect_matches(e, &observe(r, raw), ignore_open))
        };

        if let Some(target) = wait.until {
            // First wait (up to the step's seconds) for the named connection to get something
            // or end, then settle as usual.
            let t = self
                .conn_index(&target)
                .map_err(|_| format!("wait until unknown connection {target:?}"))?;
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if satisfied(self, &raw) || !self.any_open() {
                    break;
                }
                let slice = UNTIL_SLICE.min(deadline.saturating_duration_since(Instant::now()));
                self.read_until_quiet(&mut raw, UNTIL_QUIET, slice, None, None);
                if !raw[t].is_empty() || !self.conns[t].open {
                    break;
                }
            }
            timeout = STEP_TIMEOUT;
        }

        let grace = if final_step { None } else { Some(CHECK_GRACE) };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.read_until_quiet(&mut raw, quiet, left, Some(&satisfied), grace);
            if expected.is_none() || !check || satisfied(self, &raw) {
                break;
            }
            // Unmet expectation: a slow server may still be on its way, as long as what
            // arrived so far can grow into the expectation.
            if Instant::now() >= deadline || !self.any_open() {
                break;
            }
            let observed = observe(self, &raw);
            let raw_len = |name: &str| {
                self.conns
                    .iter()
                    .position(|c| c.name == name)
                    .map_or(0, |i| raw[i].len())
            };
            if let Some(e) = expected {
                if !expect_possible(e, &observed, &raw_len, ignore_open) {
                    break;
                }
            }
        }
        let mut state = std::mem::take(&mut self.state);
        let observed = self.render(&raw, &mut state, numvar);
        self.state = state;
        Ok(observed)
    }
}

// -- the suite -------------------------------------------------------------------------------

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

struct Scenario {
    name: String,
    path: PathBuf,
    json: Value,
}

impl Scenario {
    fn steps(&self) -> &[Value] {
        self.json["steps"].as_array().map_or(&[], Vec::as_slice)
    }

    fn server_args(&self) -> Vec<String> {
        match self.json.get("server_args").and_then(Value::as_array) {
            Some(args) => args
                .iter()
                .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Seconds the scenario spends in `wait` steps: the longest ones are started first so they
    /// overlap with everything else.
    fn wait_seconds(&self) -> f64 {
        self.steps()
            .iter()
            .filter(|s| s["op"] == "wait")
            .filter_map(|s| s["seconds"].as_f64())
            .sum()
    }
}

fn load_scenarios() -> Vec<Result<Scenario, String>> {
    let dir = scenario_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            let json: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
            let name = json
                .get("name")
                .and_then(Value::as_str)
                .filter(|_| json.get("steps").is_some_and(Value::is_array))
                .ok_or_else(|| {
                    format!("{}: not a scenario (needs name and steps)", path.display())
                })?
                .to_string();
            Ok(Scenario { name, path, json })
        })
        .collect()
}

enum Outcome {
    Pass,
    Fail(String),
}

/// Start the scenario's own server and replay it.
fn run_one(scen: &Scenario) -> Outcome {
    let args = scen.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = match Server::try_start(&args) {
        Ok(s) => s,
        Err(e) => return Outcome::Fail(format!("  error: {e}\n")),
    };
    let mut runner = Runner::new(server.addr(), run_token(&scen.name));
    let result = runner.run(scen.steps());
    drop(runner); // close every connection before the server goes
    let verbose = std::env::var_os("CONFORMANCE_VERBOSE").is_some();
    let mut report = match result {
        Ok(failures) if failures.is_empty() => return Outcome::Pass,
        Ok(failures) => {
            let shown = if verbose {
                failures.len()
            } else {
                MAX_SHOWN_STEPS
            };
            let mut out: String = failures
                .iter()
                .take(shown)
                .map(StepFailure::report)
                .collect();
            if failures.len() > shown {
                let _ = writeln!(
                    out,
                    "  ... {} more failing steps (CONFORMANCE_VERBOSE=1 shows all)",
                    failures.len() - shown
                );
            }
            out
        }
        Err(e) => format!("  error: {e}\n"),
    };
    server.keep_log_dir();
    let _ = writeln!(report, "  server logs: {}", server.log_dir().display());
    // The tail of stderr usually names the failing request; the full log is in the log dir.
    let stderr = server.stderr_text();
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = &lines[lines.len().saturating_sub(STDERR_TAIL)..];
    if !tail.is_empty() {
        let _ = writeln!(report, "  server stderr (last {} lines):", tail.len());
        for line in tail {
            let _ = writeln!(report, "    {line}");
        }
    }
    Outcome::Fail(report)
}

#[test]
fn conformance_scenarios() {
    let only: Vec<String> = std::env::var("CONFORMANCE_ONLY")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();

    let mut failed: Vec<(String, String)> = Vec::new(); // (name, report)
    let mut skipped: Vec<String> = Vec::new();
    let mut queue: Vec<Scenario> = Vec::new();
    for loaded in load_scenarios() {
        match loaded {
            Err(e) => failed.push((e.clone(), format!("  error: {e}\n"))),
            Ok(scen) => {
                if !only.is_empty() && !only.contains(&scen.name) {
                    continue;
                }
                if let Some(reason) = scen.json.get("skip") {
                    let reason = reason
                        .as_str()
                        .map_or_else(|| reason.to_string(), String::from);
                    skipped.push(format!("{} ({reason})", scen.name));
                    continue;
                }
                queue.push(scen);
            }
        }
    }
    for name in &only {
        if !queue.iter().any(|s| &s.name == name)
            && !skipped.iter().any(|s| s.starts_with(name.as_str()))
        {
            failed.push((
                name.clone(),
                "  error: no scenario of this name (CONFORMANCE_ONLY)\n".into(),
            ));
        }
    }
    // Longest waits first (hc_healthcheck takes ~30 s); stable sort keeps file order otherwise.
    queue.sort_by(|a, b| b.wait_seconds().total_cmp(&a.wait_seconds()));

    let started = Instant::now();
    let queue = Arc::new(Mutex::new(VecDeque::from(queue)));
    let results: Arc<Mutex<Vec<(String, Duration, Outcome)>>> = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<JoinHandle<()>> = (0..PARALLEL)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let results = Arc::clone(&results);
            thread::spawn(move || loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some(scen) = next else { return };
                let t0 = Instant::now();
                let outcome = run_one(&scen);
                let dt = t0.elapsed();
                let verdict = if matches!(outcome, Outcome::Pass) {
                    "PASS"
                } else {
                    "FAIL"
                };
                // Progress; failure details follow in one block at the end.
                println!("{verdict} {} ({:.2}s)", scen.name, dt.as_secs_f64());
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((scen.name, dt, outcome));
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a conformance worker thread panicked");
    }

    let mut results = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut passed = 0;
    for (name, dt, outcome) in results {
        match outcome {
            Outcome::Pass => passed += 1,
            Outcome::Fail(report) => {
                failed.push((format!("{name} ({:.2}s)", dt.as_secs_f64()), report))
            }
        }
    }
    for (name, report) in &failed {
        println!("FAIL {name}\n{report}");
    }
    if !skipped.is_empty() {
        println!("skipped {}: {}", skipped.len(), skipped.join(", "));
    }
    println!("total time {:.1}s", started.elapsed().as_secs_f64());
    let mut summary = format!("{passed} passed, {} failed", failed.len());
    if !skipped.is_empty() {
        let _ = write!(summary, ", {} skipped", skipped.len());
    }
    println!("{summary}");
    let names: Vec<&str> = failed
        .iter()
        .map(|(n, _)| n.split(" (").next().unwrap_or(n))
        .collect();
    assert!(failed.is_empty(), "failing scenarios: {}", names.join(", "));
}

// -- unit tests of the replayer itself (examples computed with check.py / vcmiproto.py) --------

#[test]
fn scenario_files_are_well_formed() {
    for loaded in load_scenarios() {
        let scen = loaded.expect("scenario loads");
        let file = scen.path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        assert_eq!(file, scen.name, "file name must be the scenario name");
        for (i, step) in scen.steps().iter().enumerate() {
            let op = step["op"].as_str().unwrap_or("");
            assert!(
                OPS.contains(&op),
                "{} step {i}: unknown op {op:?}",
                scen.name
            );
            if step.get("check").and_then(Value::as_bool).unwrap_or(true) {
                let exp = step.get("expect").unwrap_or_else(|| {
                    panic!("{} step {i}: checked step without expect", scen.name)
                });
                parse_expect(exp).unwrap_or_else(|e| panic!("{} step {i}: {e}", scen.name));
            }
            if let Some(re) = step.get("numvar_regex").and_then(Value::as_str) {
                NumvarRe::parse(re).unwrap_or_else(|e| panic!("{} step {i}: {e}", scen.name));
            }
        }
    }
}

#[test]
fn escaping_matches_vcmiproto() {
    assert_eq!(
        escape_bytes(b"\x00a\\b\xff\n ~\x7f"),
        r"\x00a\\b\xff\x0a ~\x7f"
    );
    assert_eq!(
        unescape_bytes(r"a\n\r\t\0\x7fé\\").expect("valid escapes"),
        b"a\n\r\t\x00\x7f\xc3\xa9\\"
    );
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(
        unescape_bytes(&escape_bytes(&all)).expect("round trip"),
        all
    );
    assert!(unescape_bytes(r"\q").is_err());
    assert!(unescape_bytes(r"\x4").is_err());
    assert!(unescape_bytes("trailing\\").is_err());
}

#[test]
fn pattern_matches_check_py() {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex(&pattern_bytes(20, 3)),
        "030a11181f262d343b424950575e656c737a8188"
    );
    assert_eq!(hex(&pattern_bytes(1795, 250)[1790..]), "ecf3fa0108");
}

#[test]
fn codecs_match_python() {
    assert_eq!(
        Codec::Utf8.decode(b"ok\xe2\x82a\xff\xed\xa0\x80z\xf0\x9f\x98\x80"),
        r"ok\xe2\x82a\xff\xed\xa0\x80z😀"
    );
    assert_eq!(
        Codec::Cp1251.decode(b"\xc2\xe0\xf1\xff\x98\x88"),
        r"Вася\x98€"
    );
    assert_eq!(
        Codec::Cp1251.encode("Вася!").expect("encodable"),
        b"\xc2\xe0\xf1\xff!"
    );
    assert!(Codec::Cp1251.encode("日本").is_err());
    assert_eq!(Codec::lookup("UTF-8"), Some(Codec::Utf8));
    assert_eq!(Codec::lookup("windows-1251"), Some(Codec::Cp1251));
    assert_eq!(Codec::lookup("klingon"), None);
}

#[test]
fn handshakes_match_vcmiproto() {
    let hello = |user: &str, proto: u8, enc: Option<&str>, ver: Option<&str>, tail: &str| {
        let mut text = format!("<GREETINGS>{user}");
        if let Some(v) = ver {
            text += &format!("<VER>{v}");
        }
        text += tail;
        let body = enc
            .and_then(Codec::lookup)
            .unwrap_or(Codec::Utf8)
            .encode(&text)
            .expect("encodable");
        lobby_hello_payload(proto, enc, &body)
    };
    assert_eq!(
        common::lobby_hello("alice", 5, Some("utf8"), Some("1.4.5")),
        b"\x05\x04utf8<GREETINGS>alice<VER>1.4.5"
    );
    assert_eq!(
        hello("Вася", 4, Some("cp1251"), Some("1.4.5"), "<MSG>x"),
        b"\x04\x06cp1251<GREETINGS>\xc2\xe0\xf1\xff<VER>1.4.5<MSG>x"
    );
    assert_eq!(hello("bob", 6, None, None, ""), b"\x06\x00<GREETINGS>bob");
    assert_eq!(
        hello("bob", 5, Some("klingon"), Some("1.4.5"), ""),
        b"\x05\x07klingon<GREETINGS>bob<VER>1.4.5"
    );
    assert_eq!(
        pipe_hello("server", "0e3a1c62-3b2f-4f5e-9a4b-1c2d3e4f5a6b", None, b"\x01"),
        b"\x06\x00\x00\x00Aiya!\n\x13\x00\x00\x00VCMI 1.4.5 (server)$\x00\x00\x000e3a1c62-3b2f-4f5e-9a4b-1c2d3e4f5a6b\x01"
    );
}

#[test]
fn uuids_and_run_token_are_normalised() {
    let mut s = NormState::new("abcdef".into());
    let text = ":>>HOST:0E3A1C62-3b2f-4f5e-9a4b-1c2d3e4f5a6b:1 abcdef \
                x1111111-1111-1111-1111-111111111111 22222222-2222-2222-2222-2222222222223 \
                0e3a1c62-3b2f-4f5e-9a4b-1c2d3e4f5a6b";
    assert_eq!(
        sub_uuids(text, &mut s),
        ":>>HOST:<UUID1>:1 <RUN> x1111111-1111-1111-1111-111111111111 <UUID2>3 <UUID1>"
    );
    assert_eq!(s.real_uuid(1), Some("0e3a1c62-3b2f-4f5e-9a4b-1c2d3e4f5a6b"));
    assert_eq!(s.real_uuid(2), Some("22222222-2222-2222-2222-222222222222"));
    assert_eq!(s.real_uuid(3), None);
    assert_eq!(s.real_uuid(0), None);
    // Non-ASCII text around uuids is kept intact.
    let mut s = NormState::default();
    assert_eq!(
        sub_uuids("é00000000-0000-0000-0000-000000000000ü", &mut s),
        "é<UUID1>ü"
    );
}

#[test]
fn placeholders_resolve_when_sending() {
    let mut r = Runner::new(SocketAddr::from(([127, 0, 0, 1], 9)), "qwerty".into());
    r.state.placeholder("0e3a1c62-3b2f-4f5e-9a4b-1c2d3e4f5a6b");
    assert_eq!(
        r.resolve("<JOIN><RUN><UUID1>:<UUID>:<UUIDx>")
            .expect("known placeholder"),
        "<JOIN>qwerty0e3a1c62-3b2f-4f5e-9a4b-1c2d3e4f5a6b:<UUID>:<UUIDx>"
    );
    assert!(r.resolve("<UUID2>").is_err());
}

#[test]
fn numvar_is_relative_to_first_value() {
    let re = NumvarRe::parse(DEFAULT_NUMVAR_RE).expect("default regex");
    assert_eq!(
        re,
        NumvarRe {
            prefix: ":>>MSG:System:".into(),
            suffix: String::new()
        }
    );
    let mut s = NormState::default();
    let seq = [
        (":>>MSG:System:17", ":>>MSG:System:<logins>"),
        (":>>MSG:System:18", ":>>MSG:System:<logins+1>"),
        (":>>MSG:System:16\n", ":>>MSG:System:<logins-1>\n"),
        (":>>MSG:System:17x", ":>>MSG:System:17x"),
        (":>>MSG:System:", ":>>MSG:System:"),
        (":>>MSG:System:17", ":>>MSG:System:<logins>"),
    ];
    for (input, want) in seq {
        assert_eq!(sub_numvar(input, "logins", &re, &mut s), want);
    }
    let re = NumvarRe::parse(r"^(:>>MSG:System:Users\: )(\d+) online$").expect("simple form");
    assert_eq!(
        sub_numvar(
            ":>>MSG:System:Users: 4 online",
            "u",
            &re,
            &mut NormState::default()
        ),
        ":>>MSG:System:Users: <u> online"
    );
    assert!(NumvarRe::parse(r"^(.*)(\d+)$").is_err());
}

#[test]
fn canonical_orders_like_check_py() {
    let cases = [
        (":>>USERS:3:carla:alice:bob", ":>>USERS:3:alice:bob:carla"),
        (":>>USERS:2:b:a:c", ":>>USERS:2:b:a:c"),
        (":>>USERS:x:b:a", ":>>USERS:x:b:a"),
        (
            ":>>SESSIONS:2:b:1:2:False:a:2:2:True",
            ":>>SESSIONS:2:a:2:2:True:b:1:2:False",
        ),
        (":>>MODS:2:z:1:a:2", ":>>MODS:2:a:2:z:1"),
        (
            ":>>MSG:System:People in lobby\nz\na [room X]\nb",
            ":>>MSG:System:People in lobby\na [room X]\nb\nz",
        ),
        (":>>STATUS:2:b:True:a:False", ":>>STATUS:2:b:True:a:False"),
        (":>>USERS:0", ":>>USERS:0"),
        (":>>MODS:1::", ":>>MODS:1::"),
    ];
    for (input, want) in cases {
        assert_eq!(canonical(input), want, "canonical({input:?})");
    }
}

#[test]
fn messages_split_on_prefix() {
    assert_eq!(
        split_messages("junk:>>A:1:>>B:x\n:>>"),
        ["junk", ":>>A:1", ":>>B:x\n", ":>>"]
    );
    assert!(split_messages("").is_empty());
}

#[test]
fn expectation_prefix_logic() {
    let t = |recv: &[&str], open: bool| {
        let mut m = Transcript::new();
        m.insert(
            "A".to_string(),
            ConnObs {
                recv: recv.iter().map(|s| s.to_string()).collect(),
                open,
            },
        );
        m
    };
    let none = |_: &str| 0;
    let exp = t(&[":>>USERS:1:alice", ":>>SESSIONS:0"], true);
    assert!(expect_possible(&exp, &t(&[], true), &none, &[]));
    assert!(expect_possible(
        &exp,
        &t(&[":>>USERS:1:alice", ":>>SESS"], true),
        &none,
        &[]
    ));
    assert!(!expect_possible(
        &exp,
        &t(&[":>>USERS:1:al", ":>>SESS"], true),
        &none,
        &[]
    ));
    assert!(!expect_possible(
        &exp,
        &t(&[":>>USERS:1:alice"], false),
        &none,
        &[]
    ));
    assert!(expect_possible(
        &exp,
        &t(&[":>>USERS:1:alice"], false),
        &none,
        &["A".into()]
    ));
    assert!(expect_matches(
        &exp,
        &t(&[":>>USERS:1:alice", ":>>SESSIONS:0"], true),
        &[]
    ));
    assert!(!expect_matches(
        &exp,
        &t(&[":>>USERS:1:alice", ":>>SESSIONS:0"], false),
        &[]
    ));
    let long = t(&["<300000 bytes sha256:0123456789abcdef>"], true);
    assert!(expect_possible(
        &long,
        &t(&["<4096 bytes sha256:ffff>"], true),
        &|_| 4096,
        &[]
    ));
    assert!(!expect_possible(
        &long,
        &t(&["<300000 bytes sha256:ffff>"], true),
        &|_| 300_000,
        &[]
    ));
    assert_eq!(
        long_len("<300000 bytes sha256:0123456789abcdef>"),
        Some(300_000)
    );
    assert_eq!(long_len("<UUID1>"), None);
}

#[test]
fn diff_marks_missing_and_extra() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        diff_lines(&v(&["a", "b\nc", "d"]), &v(&["a", "x", "d", "e"])),
        ["  a", "- b\\nc", "+ x", "  d", "+ e"]
    );
}

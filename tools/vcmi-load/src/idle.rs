//! `idle` mode: open many lobby connections, log each in, hold them, and report how many the
//! server accepted and how fast. One mio thread holds all sockets.
//!
//! The tool raises its soft RLIMIT_NOFILE to the hard limit at start; beyond that the caller must
//! raise the hard limit (`ulimit -Hn`, root). Hitting the limit is reported as EMFILE in the JSON
//! and stops opening further connections instead of failing them one by one. More than ~28k
//! connections to one server port need several source addresses (`--sources`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::errors::{io_error_name, io_error_text, is_local_exhaustion};
use crate::json::Obj;
use crate::mioconn::Conn;
use crate::proto::{self, Splitter};
use crate::{set_phase, Ctx, Report};

pub struct IdleOpts {
    pub conns: usize,
    pub hold: f64,
    pub window: usize,
    /// Source addresses used round-robin; empty: the kernel's choice.
    pub sources: Vec<std::net::IpAddr>,
    /// `storm`: hold until every user has seen the final `USERS` list (all `conns` names) and
    /// the server has been silent for a second, instead of for `hold` seconds.
    pub until_full_list: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    Connecting,
    LoggingIn,
    LoggedIn,
    Failed,
}

struct Slot {
    conn: Option<Conn>,
    /// Only needed until the login is confirmed; afterwards everything is read and discarded.
    split: Option<Splitter>,
    st: St,
    /// `until_full_list`: the final list was seen; `carry` holds the previous read's last bytes
    /// so a marker split across two reads is still found.
    full: bool,
    carry: Vec<u8>,
}

/// Whether `marker` occurs in `carry` + `data`; keeps the last bytes in `carry`. Lists are far
/// too big to buffer per user (16k users x 200 KB), so this scans the stream instead.
fn scan_marker(carry: &mut Vec<u8>, data: &[u8], marker: &[u8]) -> bool {
    let keep = marker.len() - 1;
    let head = data.len().min(keep);
    carry.extend_from_slice(&data[..head]);
    let found = carry.windows(marker.len()).any(|w| w == marker)
        || data.windows(marker.len()).any(|w| w == marker);
    let joined: Vec<u8> = if data.len() >= keep {
        data[data.len() - keep..].to_vec()
    } else {
        carry[carry.len().saturating_sub(keep)..].to_vec()
    };
    *carry = joined;
    found
}

fn keep(name: &[u8]) -> bool {
    matches!(name, b"MSG" | b"ERROR")
}

struct Counters {
    in_flight: usize,
    connected: usize,
    logged_in: usize,
    failed: usize,
    dropped: usize,
    bytes: u64,
    last_connect: Option<Instant>,
    last_login: Option<Instant>,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
    holding: bool,
    full: usize,
    last_byte: Option<Instant>,
}

impl Counters {
    fn fail(&mut self, slot: &mut Slot, kind: &str, text: String, registry: &mio::Registry) {
        if let Some(c) = slot.conn.take() {
            c.close(registry);
        }
        *self.errors.entry(kind.to_string()).or_insert(0) += 1;
        if self.first_error.is_none() {
            eprintln!("vcmi-load: {text}");
            self.first_error = Some(text);
        }
        match slot.st {
            St::Connecting | St::LoggingIn => {
                self.in_flight -= 1;
                self.failed += 1;
            }
            St::LoggedIn => {
                self.logged_in -= 1;
                self.dropped += 1;
            }
            St::Failed => {}
        }
        slot.st = St::Failed;
    }
}

pub fn run_idle(addr: std::net::SocketAddr, opts: &IdleOpts, ctx: &Ctx) -> Result<Report, String> {
    let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let mut events = Events::with_capacity(4096);
    let mut slots: Vec<Slot> = Vec::with_capacity(opts.conns);
    let mut rbuf = vec![0u8; 64 << 10];
    let mut k = Counters {
        in_flight: 0,
        connected: 0,
        logged_in: 0,
        failed: 0,
        dropped: 0,
        bytes: 0,
        last_connect: None,
        last_login: None,
        errors: BTreeMap::new(),
        first_error: None,
        holding: false,
        full: 0,
        last_byte: None,
    };
    let marker = format!(":>>USERS:{}:", opts.conns).into_bytes();
    let mut stop_opening = false;
    let mut exhausted = None;
    let t0 = Instant::now();
    let mut hold_start = None;
    let mut timed_out = false;
    let nofile = crate::limits::check_nofile(opts.conns);
    set_phase("idle: connecting and logging in");

    loop {
        let now = Instant::now();
        if now >= ctx.deadline {
            timed_out = true;
            break;
        }
        while !stop_opening && slots.len() < opts.conns && k.in_flight < opts.window {
            let i = slots.len();
            let source = crate::net::source_for(&opts.sources, i);
            match Conn::open(addr, source, poll.registry(), Token(i)) {
                Ok(mut c) => {
                    let name = format!("vl{}i{i}", ctx.run_id);
                    c.queue(&proto::login_frame(ctx.proto, &name, &ctx.vcmi_version));
                    slots.push(Slot {
                        conn: Some(c),
                        split: Some(Splitter::with_filter(keep)),
                        st: St::Connecting,
                        full: false,
                        carry: Vec::new(),
                    });
                    k.in_flight += 1;
                }
                Err(e) => {
                    let mut s = Slot {
                        conn: None,
                        split: None,
                        st: St::Connecting,
                        full: false,
                        carry: Vec::new(),
                    };
                    k.in_flight += 1;
                    k.fail(
                        &mut s,
                        io_error_name(&e),
                        format!("connection #{i}: {}", io_error_text(&e)),
                        poll.registry(),
                    );
                    slots.push(s);
                    if is_local_exhaustion(&e) {
                        stop_opening = true;
                        exhausted = Some(io_error_name(&e));
                        eprintln!(
                            "vcmi-load: stopped opening connections after {i}: {}",
                            io_error_text(&e)
                        );
                    }
                }
            }
        }
        if hold_start.is_none() && (slots.len() == opts.conns || stop_opening) && k.in_flight == 0 {
            eprintln!(
                "vcmi-load: {} of {} connections logged in ({} failed); holding for {} s",
                k.logged_in, opts.conns, k.failed, opts.hold
            );
            set_phase("idle: holding");
            hold_start = Some(now);
            k.holding = true;
        }
        if let Some(h) = hold_start {
            // nothing to hold when every connection failed
            let settled = if opts.until_full_list {
                k.full >= k.logged_in
                    && k.last_byte
                        .is_some_and(|t| now.duration_since(t) >= Duration::from_secs(1))
            } else {
                now.duration_since(h).as_secs_f64() >= opts.hold
            };
            if settled || k.logged_in == 0 {
                break;
            }
        }

        let timeout = ctx
            .deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(200));
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("poll: {e}"));
            }
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let slot = &mut slots[i];
            let Some(c) = slot.conn.as_mut() else {
                continue;
            };
            if !c.connected {
                match c.check_connected() {
                    Ok(true) => {
                        k.connected += 1;
                        k.last_connect = Some(Instant::now());
                        slot.st = St::LoggingIn;
                        if let Err(e) = c.flush(poll.registry(), Token(i)) {
                            k.fail(
                                slot,
                                io_error_name(&e),
                                format!("write: {e}"),
                                poll.registry(),
                            );
                            continue;
                        }
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        k.fail(
                            slot,
                            io_error_name(&e),
                            format!("connect: {}", io_error_text(&e)),
                            poll.registry(),
                        );
                        continue;
                    }
                }
            }
            if ev.is_writable() {
                if let Err(e) = c.flush(poll.registry(), Token(i)) {
                    k.fail(
                        slot,
                        io_error_name(&e),
                        format!("write: {e}"),
                        poll.registry(),
                    );
                    continue;
                }
            }
            if !(ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                continue;
            }
            // Keep reading everything: each login sends a USERS list to every user, and a client
            // that stops reading would only measure its own backpressure.
            let mut bytes = 0u64;
            let split = &mut slot.split;
            let (full, carry) = (&mut slot.full, &mut slot.carry);
            let res = c.read_all(&mut rbuf, |d| {
                bytes += d.len() as u64;
                if let Some(s) = split.as_mut() {
                    s.push(d);
                }
                if opts.until_full_list && !*full && scan_marker(carry, d, &marker) {
                    *full = true;
                    carry.clear();
                    k.full += 1;
                }
            });
            k.bytes += bytes;
            if bytes > 0 {
                k.last_byte = Some(Instant::now());
            }
            if let Some(s) = slot.split.as_mut() {
                let mut verdict: Option<Result<(), String>> = None;
                loop {
                    match s.next_complete() {
                        Ok(Some(m)) => {
                            if m.starts_with(b"ERROR:") {
                                verdict = Some(Err(String::from_utf8_lossy(m).into_owned()));
                                break;
                            }
                            if m.starts_with(b"MSG:System:Here available ") {
                                verdict = Some(Ok(()));
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            verdict = Some(Err(e.to_string()));
                            break;
                        }
                    }
                }
                if verdict.is_none() {
                    if let Some(t) = s.tail() {
                        if t.starts_with(b"ERROR:") {
                            verdict = Some(Err(String::from_utf8_lossy(t).into_owned()));
                        } else if t.starts_with(b"MSG:System:Here available ") {
                            verdict = Some(Ok(()));
                        }
                    }
                }
                match verdict {
                    Some(Ok(())) => {
                        slot.split = None;
                        slot.st = St::LoggedIn;
                        k.in_flight -= 1;
                        k.logged_in += 1;
                        k.last_login = Some(Instant::now());
                    }
                    Some(Err(text)) => {
                        k.fail(
                            slot,
                            "server_error",
                            format!("connection #{i}: {text}"),
                            poll.registry(),
                        );
                        continue;
                    }
                    None => {}
                }
            }
            match res {
                Ok(false) => {}
                Ok(true) => k.fail(
                    slot,
                    "closed_by_server",
                    format!("connection #{i} closed by the server"),
                    poll.registry(),
                ),
                Err(e) => k.fail(
                    slot,
                    io_error_name(&e),
                    format!("connection #{i}: read: {}", io_error_text(&e)),
                    poll.registry(),
                ),
            }
        }
    }

    let secs = |t: Option<Instant>| t.map(|t| t.duration_since(t0).as_secs_f64()).unwrap_or(0.0);
    let connect_secs = secs(k.last_connect);
    let login_secs = secs(k.last_login);
    let held = hold_start.map(|h| h.elapsed().as_secs_f64()).unwrap_or(0.0);
    let mut o = Obj::new();
    o.str("target", "proxy")
        .str("proxy", &addr.to_string())
        .uint("conns", opts.conns as u64)
        .uint("proto", ctx.proto as u64)
        .uint("attempted", slots.len() as u64)
        .uint("connected", k.connected as u64)
        .uint("logged_in_total", (k.logged_in + k.dropped) as u64)
        .uint("failed", k.failed as u64)
        .float("connect_seconds", connect_secs, 3)
        .float("connects_per_s", k.connected as f64 / connect_secs, 1)
        .float("login_seconds", login_secs, 3)
        .float(
            "logins_per_s",
            (k.logged_in + k.dropped) as f64 / login_secs,
            1,
        )
        .float("held_seconds", held, 3)
        .uint("dropped", k.dropped as u64)
        .uint("open_at_end", k.logged_in as u64)
        .uint("bytes_received", k.bytes);
    if opts.until_full_list {
        o.uint("saw_final_list", k.full as u64)
            .float("settle_seconds", held, 3);
    }
    match nofile {
        Some(n) => o.uint("nofile_soft_limit", n),
        None => o.null("nofile_soft_limit"),
    };
    match exhausted {
        Some(name) => o.str("resource_limit", name),
        None => o.null("resource_limit"),
    };
    if !k.errors.is_empty() {
        let mut e = Obj::new();
        for (name, n) in &k.errors {
            e.uint(name, *n);
        }
        o.obj("errors", &e);
    }
    let mut err = k.first_error.clone();
    if timed_out {
        err = Some(format!(
            "global --timeout expired {} ({} of {} logged in)",
            if k.holding {
                "while holding"
            } else {
                "before all logins finished"
            },
            k.logged_in,
            opts.conns
        ));
    }
    if let Some(e) = &err {
        o.str("error", e);
    }
    let mut hints = Vec::new();
    if k.failed > 0 && exhausted.is_none() {
        hints.push(crate::chat::HINT_LOGIN);
    }
    if k.dropped > 0 {
        hints.push(crate::chat::HINT_DROPPED);
    }
    if !hints.is_empty() {
        o.str("hint", &hints.join("; "));
    }
    let ok = !timed_out
        && (!opts.until_full_list || k.full >= k.logged_in)
        && k.logged_in == opts.conns
        && k.dropped == 0
        && k.failed == 0;
    // dropping `slots` closes every socket
    Ok(Report { json: o, ok })
}

#[cfg(test)]
mod tests {
    use super::scan_marker;

    #[test]
    fn marker_is_found_across_every_split_and_not_before_it_is_complete() {
        let stream = b":>>USERS:2:a:b:>>USERS:3:a:b:c";
        let marker = b":>>USERS:3:";
        let at = 14 + marker.len(); // the first byte count that holds the marker
        for split in 0..stream.len() {
            for step in 1..6 {
                let mut carry = Vec::new();
                let mut seen = None;
                let mut fed = 0;
                let (a, b) = stream.split_at(split);
                for part in [a, b] {
                    for chunk in part.chunks(step) {
                        fed += chunk.len();
                        if seen.is_none() && scan_marker(&mut carry, chunk, marker) {
                            seen = Some(fed);
                        }
                    }
                }
                let seen = seen.expect("marker found");
                assert!(
                    seen >= at,
                    "found after {seen} bytes, split {split} step {step}"
                );
                assert!(seen < at + step, "split {split} step {step}: {seen}");
            }
        }
        assert!(!scan_marker(
            &mut Vec::new(),
            b":>>USERS:30:",
            b":>>USERS:3:"
        ));
    }
}

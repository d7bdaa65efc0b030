//! `lobby` mode: many logged-in users, rooms, and timed chat traffic with end-to-end delivery
//! accounting, all on one mio thread so thousands of users cost only sockets.
//!
//! Every user stays in the default `global` chat channel (no `<CHANNEL>` is sent), so by §6.3
//! every logged-in user must receive every message, including its own. That makes the zero-loss
//! check exact: deliveries expected = messages sent × users logged in at the start of the chat.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::json::Obj;
use crate::mioconn::Conn;
use crate::proto::{self, Splitter};
use crate::stats::Histogram;
use crate::{io_error_name, set_phase, Ctx, Report};

pub struct LobbyOpts {
    pub users: usize,
    pub rooms: usize,
    pub rate: f64,
    pub duration: f64,
    pub window: usize,
    pub drain: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Connecting,
    LoggingIn,
    LoggedIn,
    Failed,
}

struct Info {
    name: String,
    st: St,
    room: Option<usize>,
    is_host: bool,
    /// NEW or JOIN sent and not answered yet.
    room_op_pending: bool,
    recv: u64,
}

struct User {
    conn: Option<Conn>,
    split: Splitter,
    info: Info,
}

struct Room {
    name: String,
    host: usize,
    joiners: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Login,
    Rooms,
    Chat,
    Drain,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Login => "login",
            Phase::Rooms => "rooms",
            Phase::Chat => "chat",
            Phase::Drain => "drain",
        }
    }
}

/// Everything but the users, so a user's splitter can be borrowed while state is updated.
struct World {
    run: String,
    base: Instant,
    phase: Phase,
    in_flight: usize,
    connected: usize,
    login_ok: usize,
    login_failed: usize,
    last_login: Option<Instant>,
    rooms: Vec<Room>,
    room_pending: usize,
    rooms_created: usize,
    joins_ok: usize,
    room_errors: usize,
    /// Rooms whose host got CREATED: their joiners may send JOIN now.
    ready_rooms: Vec<usize>,
    seq_counts: Vec<u32>,
    received: u64,
    hist: Histogram,
    dropped: usize,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
}

/// Replies the lobby mode looks at; everything else (USERS lists that grow with every login,
/// SESSIONS, STATUS, MODS…) is discarded while being scanned.
fn keep(name: &[u8]) -> bool {
    matches!(name, b"MSG" | b"MSGCH" | b"ERROR" | b"CREATED" | b"JOIN")
}

/// Whether a reply at the end of the buffer is already complete (see `proto::Splitter`).
fn tail_ready(m: &[u8]) -> bool {
    m.starts_with(b"ERROR:")
        || m.starts_with(b"MSG:System:Here available ")
        || ((m.starts_with(b"MSGCH:") || m.starts_with(b"MSG:")) && m.ends_with(b"#"))
}

impl World {
    fn note_error(&mut self, kind: &str, text: String) {
        *self.errors.entry(kind.to_string()).or_insert(0) += 1;
        if self.first_error.is_none() {
            eprintln!("vcmi-load: {text}");
            self.first_error = Some(text);
        }
    }

    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    fn handle(&mut self, info: &mut Info, m: &[u8]) {
        if m.starts_with(b"ERROR:") {
            let text = format!("{}: {}", info.name, String::from_utf8_lossy(m));
            self.note_error("server_error", text);
            self.user_failed(info);
            return;
        }
        if info.st == St::LoggingIn && m.starts_with(b"MSG:System:Here available ") {
            info.st = St::LoggedIn;
            self.login_ok += 1;
            self.in_flight -= 1;
            self.last_login = Some(Instant::now());
            return;
        }
        if let Some(rest) = m.strip_prefix(b"CREATED:") {
            if let (true, true, Some(r)) = (info.is_host, info.room_op_pending, info.room) {
                if rest == self.rooms[r].name.as_bytes() {
                    info.room_op_pending = false;
                    self.rooms_created += 1;
                    self.room_pending -= 1;
                    self.ready_rooms.push(r);
                }
            }
            return;
        }
        if let Some(rest) = m.strip_prefix(b"JOIN:") {
            if let (false, true, Some(r)) = (info.is_host, info.room_op_pending, info.room) {
                let me = format!("{}:{}", self.rooms[r].name, info.name);
                if rest == me.as_bytes() {
                    info.room_op_pending = false;
                    self.joins_ok += 1;
                    self.room_pending -= 1;
                }
            }
            return;
        }
        if let Some((_, text)) = proto::parse_chat(m) {
            if let Some((seq, ts)) = proto::parse_probe(text, &self.run) {
                if let Some(c) = self.seq_counts.get_mut(seq as usize) {
                    *c += 1;
                    self.received += 1;
                    info.recv += 1;
                    let now = self.now_us();
                    self.hist.record(now.saturating_sub(ts));
                }
            }
        }
    }

    /// Bookkeeping for a user that got an ERROR or lost its connection.
    fn user_failed(&mut self, info: &mut Info) {
        match info.st {
            St::Connecting | St::LoggingIn => {
                self.login_failed += 1;
                self.in_flight -= 1;
            }
            St::LoggedIn => {
                if info.room_op_pending {
                    info.room_op_pending = false;
                    self.room_errors += 1;
                    self.room_pending -= 1;
                    if info.is_host {
                        // its joiners can never join now: stop waiting for them
                        if let Some(r) = info.room {
                            let n = self.rooms[r].joiners.len();
                            self.room_errors += n;
                            self.room_pending -= n;
                        }
                    }
                }
                if self.phase == Phase::Chat || self.phase == Phase::Drain {
                    self.dropped += 1;
                }
            }
            St::Failed => {}
        }
        info.st = St::Failed;
    }
}

struct Sim {
    users: Vec<User>,
    w: World,
    rbuf: Vec<u8>,
}

impl Sim {
    fn fail(&mut self, i: usize, kind: &str, text: String, registry: &mio::Registry) {
        let User { conn, info, .. } = &mut self.users[i];
        if let Some(c) = conn.take() {
            c.close(registry);
        }
        if info.st != St::Failed {
            let text = format!("{}: {text}", info.name);
            self.w.note_error(kind, text);
            self.w.user_failed(info);
        }
    }

    fn send(&mut self, i: usize, text: &str, registry: &mio::Registry) {
        let Some(c) = self.users[i].conn.as_mut() else {
            return;
        };
        c.queue(&proto::frame(text.as_bytes()));
        if let Err(e) = c.flush(registry, Token(i)) {
            self.fail(i, io_error_name(&e), format!("write: {e}"), registry);
        }
    }

    fn on_event(&mut self, ev: &mio::event::Event, registry: &mio::Registry) {
        let i = ev.token().0;
        let User { conn, split, info } = &mut self.users[i];
        let Some(c) = conn.as_mut() else { return };
        if !c.connected {
            match c.check_connected() {
                Ok(true) => {
                    self.w.connected += 1;
                    info.st = St::LoggingIn;
                    if let Err(e) = c.flush(registry, Token(i)) {
                        return self.fail(i, io_error_name(&e), format!("write: {e}"), registry);
                    }
                }
                Ok(false) => return,
                Err(e) => {
                    return self.fail(i, io_error_name(&e), format!("connect: {e}"), registry)
                }
            }
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            let res = c.read_all(&mut self.rbuf, |d| split.push(d));
            loop {
                match split.next_complete() {
                    Ok(Some(m)) => self.w.handle(info, m),
                    Ok(None) => break,
                    Err(e) => return self.fail(i, "protocol_error", e.to_string(), registry),
                }
            }
            let eof = matches!(res, Ok(true));
            if let Some(t) = split.tail() {
                // at end of stream the tail is complete by definition
                if eof || tail_ready(t) {
                    self.w.handle(info, t);
                    split.consume_tail();
                }
            }
            match res {
                Ok(false) => {}
                Ok(true) => {
                    return self.fail(
                        i,
                        "closed_by_server",
                        "connection closed by the server".into(),
                        registry,
                    )
                }
                Err(e) => return self.fail(i, io_error_name(&e), format!("read: {e}"), registry),
            }
            if info.st == St::Failed {
                // got an ERROR: the server does not close the socket itself (D40)
                if let Some(c) = conn.take() {
                    c.close(registry);
                }
                return;
            }
        }
        if ev.is_writable() {
            if let Some(c) = conn.as_mut() {
                if let Err(e) = c.flush(registry, Token(i)) {
                    self.fail(i, io_error_name(&e), format!("write: {e}"), registry);
                }
            }
        }
    }
}

pub fn run_lobby(
    addr: std::net::SocketAddr,
    opts: &LobbyOpts,
    ctx: &Ctx,
) -> Result<Report, String> {
    let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let mut events = Events::with_capacity(4096);
    let users: Vec<User> = (0..opts.users)
        .map(|k| User {
            conn: None,
            split: Splitter::with_filter(keep),
            info: Info {
                name: format!("vl{}u{k}", ctx.run_id),
                st: St::Connecting,
                room: None,
                is_host: false,
                room_op_pending: false,
                recv: 0,
            },
        })
        .collect();
    let mut sim = Sim {
        users,
        rbuf: vec![0; 64 << 10],
        w: World {
            run: ctx.run_id.clone(),
            base: ctx.started,
            phase: Phase::Login,
            in_flight: 0,
            connected: 0,
            login_ok: 0,
            login_failed: 0,
            last_login: None,
            rooms: Vec::new(),
            room_pending: 0,
            rooms_created: 0,
            joins_ok: 0,
            room_errors: 0,
            ready_rooms: Vec::new(),
            seq_counts: Vec::new(),
            received: 0,
            hist: Histogram::new(),
            dropped: 0,
            errors: BTreeMap::new(),
            first_error: None,
        },
    };
    // Room size per the brief: U/R users per room (rounded up), 2..=8 (COUNT limits, §6.6).
    let room_size = opts.users.div_ceil(opts.rooms).clamp(2, 8);
    let total_msgs = ((opts.rate * opts.duration).round() as usize).max(1);

    set_phase("lobby: logging in");
    let t_login = Instant::now();
    let mut next_open = 0usize;
    let mut stop_opening = false;
    let mut login_secs = 0.0;
    let mut t_rooms = t_login;
    let mut rooms_secs = 0.0;
    let mut t_chat = t_login;
    let mut chat_send_secs = 0.0;
    let mut drain_end = t_login;
    let mut sent = 0usize;
    let mut senders: Vec<usize> = Vec::new();
    let mut receivers = 0usize;
    let mut timed_out = false;

    loop {
        let now = Instant::now();
        if now >= ctx.deadline {
            timed_out = true;
            break;
        }
        match sim.w.phase {
            Phase::Login => {
                while !stop_opening && next_open < opts.users && sim.w.in_flight < opts.window {
                    let i = next_open;
                    next_open += 1;
                    match Conn::open(addr, poll.registry(), Token(i)) {
                        Ok(mut c) => {
                            c.queue(&proto::login_frame(
                                ctx.proto,
                                &sim.users[i].info.name,
                                &ctx.vcmi_version,
                            ));
                            sim.users[i].conn = Some(c);
                            sim.w.in_flight += 1;
                        }
                        Err(e) => {
                            sim.w.in_flight += 1; // user_failed() decrements it
                            sim.fail(
                                i,
                                io_error_name(&e),
                                format!("connect: {}", crate::io_error_text(&e)),
                                poll.registry(),
                            );
                            if crate::is_local_exhaustion(&e) {
                                // out of descriptors/ports: opening more would fail the same way
                                stop_opening = true;
                            }
                        }
                    }
                }
                if (next_open == opts.users || stop_opening) && sim.w.in_flight == 0 {
                    let last = sim.w.last_login.unwrap_or(now);
                    login_secs = last.duration_since(t_login).as_secs_f64();
                    eprintln!(
                        "vcmi-load: {} of {} users logged in ({} failed) in {login_secs:.3} s",
                        sim.w.login_ok, opts.users, sim.w.login_failed
                    );
                    if sim.w.login_ok == 0 {
                        break;
                    }
                    set_phase("lobby: creating and joining rooms");
                    t_rooms = now;
                    sim.w.phase = Phase::Rooms;
                    let logged: Vec<usize> = (0..opts.users)
                        .filter(|&i| sim.users[i].info.st == St::LoggedIn)
                        .collect();
                    for (r, members) in logged.chunks(room_size).take(opts.rooms).enumerate() {
                        let name = format!("vl-{}-r{r}", ctx.run_id);
                        for (k, &u) in members.iter().enumerate() {
                            let info = &mut sim.users[u].info;
                            info.room = Some(r);
                            info.is_host = k == 0;
                        }
                        sim.w.rooms.push(Room {
                            name,
                            host: members[0],
                            joiners: members[1..].to_vec(),
                        });
                        sim.w.room_pending += members.len();
                    }
                    for r in 0..sim.w.rooms.len() {
                        let (host, name) = (sim.w.rooms[r].host, sim.w.rooms[r].name.clone());
                        sim.users[host].info.room_op_pending = true;
                        sim.send(
                            host,
                            &format!("<NEW>{name}<PSWD><COUNT>{room_size}<MODS>"),
                            poll.registry(),
                        );
                    }
                }
            }
            Phase::Rooms => {
                while let Some(r) = sim.w.ready_rooms.pop() {
                    let name = sim.w.rooms[r].name.clone();
                    for j in sim.w.rooms[r].joiners.clone() {
                        if sim.users[j].info.st == St::LoggedIn {
                            sim.users[j].info.room_op_pending = true;
                            sim.send(j, &format!("<JOIN>{name}<PSWD><MODS>"), poll.registry());
                        }
                    }
                }
                if sim.w.room_pending == 0 {
                    rooms_secs = now.duration_since(t_rooms).as_secs_f64();
                    eprintln!(
                        "vcmi-load: {} rooms created, {} joins in {rooms_secs:.3} s; chatting for {} s",
                        sim.w.rooms_created, sim.w.joins_ok, opts.duration
                    );
                    set_phase("lobby: chatting");
                    senders = (0..opts.users)
                        .filter(|&i| sim.users[i].info.st == St::LoggedIn)
                        .collect();
                    receivers = senders.len();
                    sim.w.seq_counts = vec![0; total_msgs];
                    sim.w.phase = Phase::Chat;
                    t_chat = now;
                }
            }
            Phase::Chat => {
                // Send every message that is due; `sent / rate` is the schedule, so a slow loop
                // catches up in a burst instead of lowering the offered rate.
                while sent < total_msgs
                    && now.duration_since(t_chat).as_secs_f64() >= sent as f64 / opts.rate
                {
                    let mut k = sent;
                    let mut tries = 0;
                    while sim.users[senders[k % senders.len()]].conn.is_none()
                        && tries < senders.len()
                    {
                        k += 1;
                        tries += 1;
                    }
                    if tries == senders.len() {
                        break; // everybody is gone; the report will show it
                    }
                    let u = senders[k % senders.len()];
                    let text = proto::probe_text(&ctx.run_id, sent as u64, sim.w.now_us());
                    sim.send(u, &format!("<MSG>{text}"), poll.registry());
                    sent += 1;
                }
                let all_gone = senders.iter().all(|&u| sim.users[u].conn.is_none());
                if sent == total_msgs || all_gone {
                    chat_send_secs = now.duration_since(t_chat).as_secs_f64();
                    set_phase("lobby: draining");
                    sim.w.phase = Phase::Drain;
                    drain_end = now + Duration::from_secs_f64(opts.drain);
                }
            }
            Phase::Drain => {
                if sim.w.received >= (sent * receivers) as u64 || now >= drain_end {
                    break;
                }
            }
        }

        let mut timeout = ctx
            .deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        if sim.w.phase == Phase::Chat && sent < total_msgs {
            let due = t_chat + Duration::from_secs_f64(sent as f64 / opts.rate);
            timeout = timeout.min(due.saturating_duration_since(now));
        }
        if sim.w.phase == Phase::Drain {
            timeout = timeout.min(drain_end.saturating_duration_since(now));
        }
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("poll: {e}"));
            }
        }
        for ev in events.iter() {
            sim.on_event(ev, poll.registry());
        }
    }

    // ---- report ----
    let w = &sim.w;
    let expected = (sent * receivers) as u64;
    let mut unique = 0u64;
    let mut duplicates = 0u64;
    let mut incomplete_msgs = 0u64;
    for &c in &w.seq_counts {
        let c = c as u64;
        unique += c.min(receivers as u64);
        duplicates += c.saturating_sub(receivers as u64);
        if c != receivers as u64 {
            incomplete_msgs += 1;
        }
    }
    let lost = expected - unique.min(expected);
    let short_users = senders
        .iter()
        .filter(|&&u| sim.users[u].info.recv != sent as u64)
        .count() as u64;

    let mut o = Obj::new();
    o.str("target", "proxy").str("proxy", &addr.to_string());
    o.uint("users", opts.users as u64)
        .uint("rooms", opts.rooms as u64)
        .uint("room_size", room_size as u64)
        .float("rate", opts.rate, 1)
        .float("duration", opts.duration, 1)
        .uint("proto", ctx.proto as u64);
    let mut logins = Obj::new();
    logins
        .uint("connected", w.connected as u64)
        .uint("ok", w.login_ok as u64)
        .uint("failed", w.login_failed as u64)
        .uint("not_attempted", (opts.users - next_open) as u64)
        .float("seconds", login_secs, 3)
        .float("per_s", w.login_ok as f64 / login_secs, 1);
    o.obj("logins", &logins);
    let mut rooms = Obj::new();
    rooms
        .uint("created", w.rooms_created as u64)
        .uint("joins", w.joins_ok as u64)
        .uint("errors", w.room_errors as u64)
        .float("seconds", rooms_secs, 3);
    o.obj("room_setup", &rooms);
    o.uint("messages_sent", sent as u64)
        .float("send_seconds", chat_send_secs, 3)
        .float(
            "send_rate_achieved",
            if chat_send_secs > 0.0 {
                sent as f64 / chat_send_secs
            } else {
                f64::NAN
            },
            1,
        )
        .uint("receivers", receivers as u64)
        .uint("deliveries_expected", expected)
        .uint("deliveries_received", w.received)
        .uint("lost", lost)
        .uint("duplicates", duplicates)
        .uint("messages_incomplete", incomplete_msgs)
        .uint("users_incomplete", short_users)
        .uint("users_dropped", w.dropped as u64);
    let zero_loss = w.phase == Phase::Drain && lost == 0 && duplicates == 0 && sent == total_msgs;
    o.bool("zero_loss", zero_loss);
    o.obj("latency_us", &w.hist.summary());
    if !w.errors.is_empty() {
        let mut e = Obj::new();
        for (k, v) in &w.errors {
            e.uint(k, *v);
        }
        o.obj("errors", &e);
    }
    let mut err = w.first_error.clone();
    if timed_out {
        err = Some(format!(
            "global --timeout expired during the {} phase",
            w.phase.name()
        ));
    } else if w.login_ok == 0 {
        err.get_or_insert_with(|| "no user could log in".to_string());
    }
    if let Some(e) = &err {
        o.str("error", e);
    }
    let ok = !timed_out
        && zero_loss
        && w.login_failed == 0
        && next_open == opts.users
        && w.room_errors == 0
        && w.errors.is_empty();
    Ok(Report { json: o, ok })
}

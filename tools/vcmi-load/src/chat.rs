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
    /// Source addresses used round-robin; empty: the kernel's choice.
    pub sources: Vec<std::net::IpAddr>,
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
    /// Logged-in users that lost their connection (any phase) / during the chat.
    dropped: usize,
    dropped_in_chat: usize,
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
            // During the chat an ERROR refuses one message (counted as loss); the user stays, so
            // one refusal does not turn into a disconnect the server never asked for.
            let chatting = matches!(self.phase, Phase::Chat | Phase::Drain);
            if !(chatting && info.st == St::LoggedIn) {
                self.user_failed(info);
            }
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
                self.dropped += 1;
                if self.phase == Phase::Chat || self.phase == Phase::Drain {
                    self.dropped_in_chat += 1;
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

/// Operator hints for the usual server-side limits a load test runs into (vcmi-proxy names).
pub const HINT_LOGIN: &str = "connections were refused or closed before login: check the server's \
     per-IP, total-connection and lobby-capacity limits (vcmi-proxy --max-per-ip, --max-connections, \
     --capacity)";
pub const HINT_DROPPED: &str = "logged-in users were disconnected by the server: every login/logout \
     sends the full USERS list to every protocol>=4 user and every room change sends SESSIONS to all, so \
     output grows quadratically; the server may drop them as slow consumers (vcmi-proxy --max-output); \
     try a smaller --window, --proto 3 (no USERS lists) or fewer users";
pub const HINT_FLOOD: &str = "messages were lost: the server may rate-limit chat per user \
     (vcmi-proxy --flood-rate/--flood-burst); use more --users or a lower --rate";

/// Spreads `users` over `rooms` rooms as evenly as possible (sizes differ by at most one), at most
/// `cap` (the COUNT) per room; users beyond `rooms * cap` stay in the lobby. Every room gets a
/// host as long as there are at least as many users as rooms.
fn room_members(users: &[usize], rooms: usize, cap: usize) -> Vec<&[usize]> {
    let rooms = rooms.min(users.len());
    let mut out = Vec::with_capacity(rooms);
    let mut at = 0;
    for r in 0..rooms {
        let size = (users.len() / rooms + usize::from(r < users.len() % rooms)).min(cap);
        out.push(&users[at..at + size]);
        at += size;
    }
    out
}

/// Why the main loop stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Done,
    TimedOut,
    NoLogins,
    NoChat,
}

/// The phases of one lobby run and their timings; `Sim` holds the per-user state.
struct Driver<'a> {
    addr: std::net::SocketAddr,
    opts: &'a LobbyOpts,
    ctx: &'a Ctx,
    poll: Poll,
    sim: Sim,
    room_size: usize,
    total_msgs: usize,
    next_open: usize,
    stop_opening: bool,
    t_login: Instant,
    login_secs: f64,
    t_rooms: Instant,
    rooms_secs: f64,
    t_chat: Instant,
    chat_send_secs: f64,
    drain_end: Instant,
    sent: usize,
    senders: Vec<usize>,
    receivers: usize,
    end: Option<End>,
}

impl Driver<'_> {
    /// Opens connections while fewer than `--window` logins are in flight.
    fn step_login(&mut self, now: Instant) {
        while !self.stop_opening
            && self.next_open < self.opts.users
            && self.sim.w.in_flight < self.opts.window
        {
            let i = self.next_open;
            self.next_open += 1;
            self.sim.w.in_flight += 1; // user_failed() or the welcome decrements it
            let source = crate::net::source_for(&self.opts.sources, i);
            match Conn::open(self.addr, source, self.poll.registry(), Token(i)) {
                Ok(mut c) => {
                    let name = &self.sim.users[i].info.name;
                    c.queue(&proto::login_frame(
                        self.ctx.proto,
                        name,
                        &self.ctx.vcmi_version,
                    ));
                    self.sim.users[i].conn = Some(c);
                }
                Err(e) => {
                    let text = format!("connect: {}", crate::io_error_text(&e));
                    self.sim
                        .fail(i, io_error_name(&e), text, self.poll.registry());
                    if crate::is_local_exhaustion(&e) {
                        // out of descriptors/ports: opening more would fail the same way
                        self.stop_opening = true;
                    }
                }
            }
        }
        let all_opened = self.next_open == self.opts.users || self.stop_opening;
        if all_opened && self.sim.w.in_flight == 0 {
            let w = &self.sim.w;
            self.login_secs = w
                .last_login
                .unwrap_or(now)
                .duration_since(self.t_login)
                .as_secs_f64();
            eprintln!(
                "vcmi-load: {} of {} users logged in ({} failed) in {:.3} s",
                w.login_ok, self.opts.users, w.login_failed, self.login_secs
            );
            if w.login_ok == 0 {
                self.end = Some(End::NoLogins);
            } else {
                self.start_rooms(now);
            }
        }
    }

    /// Splits the logged-in users into rooms of `room_size` (host first) and sends the hosts'
    /// NEW+PSWD+COUNT+MODS frame (§5.2). Users beyond R full rooms stay in the lobby.
    fn start_rooms(&mut self, now: Instant) {
        set_phase("lobby: creating and joining rooms");
        self.t_rooms = now;
        self.sim.w.phase = Phase::Rooms;
        let logged: Vec<usize> = (0..self.opts.users)
            .filter(|&i| self.sim.users[i].info.st == St::LoggedIn)
            .collect();
        for (r, members) in room_members(&logged, self.opts.rooms, self.room_size)
            .into_iter()
            .enumerate()
        {
            for (k, &u) in members.iter().enumerate() {
                let info = &mut self.sim.users[u].info;
                info.room = Some(r);
                info.is_host = k == 0;
            }
            self.sim.w.rooms.push(Room {
                name: format!("vl-{}-r{r}", self.ctx.run_id),
                host: members[0],
                joiners: members[1..].to_vec(),
            });
            self.sim.w.room_pending += members.len();
        }
        for r in 0..self.sim.w.rooms.len() {
            let host = self.sim.w.rooms[r].host;
            let frame = format!(
                "<NEW>{}<PSWD><COUNT>{}<MODS>",
                self.sim.w.rooms[r].name, self.room_size
            );
            self.sim.users[host].info.room_op_pending = true;
            self.sim.send(host, &frame, self.poll.registry());
        }
    }

    /// Joiners may only JOIN after their room's COUNT was accepted (before it, the room is "full",
    /// §6.4), so each room's joiners are released by the host's CREATED.
    fn step_rooms(&mut self, now: Instant) {
        while let Some(r) = self.sim.w.ready_rooms.pop() {
            let frame = format!("<JOIN>{}<PSWD><MODS>", self.sim.w.rooms[r].name);
            for j in self.sim.w.rooms[r].joiners.clone() {
                if self.sim.users[j].info.st == St::LoggedIn {
                    self.sim.users[j].info.room_op_pending = true;
                    self.sim.send(j, &frame, self.poll.registry());
                } else {
                    // lost before it could join: nobody else accounts for it
                    self.sim.w.room_errors += 1;
                    self.sim.w.room_pending -= 1;
                }
            }
        }
        if self.sim.w.room_pending == 0 {
            self.rooms_secs = now.duration_since(self.t_rooms).as_secs_f64();
            eprintln!(
                "vcmi-load: {} rooms created, {} joins in {:.3} s; chatting for {} s",
                self.sim.w.rooms_created, self.sim.w.joins_ok, self.rooms_secs, self.opts.duration
            );
            self.start_chat(now);
        }
    }

    fn start_chat(&mut self, now: Instant) {
        self.senders = (0..self.opts.users)
            .filter(|&i| self.sim.users[i].info.st == St::LoggedIn)
            .collect();
        self.receivers = self.senders.len();
        if self.senders.is_empty() {
            self.end = Some(End::NoChat);
            return;
        }
        set_phase("lobby: chatting");
        self.sim.w.seq_counts = vec![0; self.total_msgs];
        self.sim.w.phase = Phase::Chat;
        self.t_chat = now;
    }

    /// When message `sent` is due on the fixed schedule `sent / rate`.
    fn next_due(&self) -> Instant {
        self.t_chat + Duration::from_secs_f64(self.sent as f64 / self.opts.rate)
    }

    /// Sends every message that is due. A late loop catches up in a burst instead of lowering
    /// the offered rate; senders take turns, skipping users that were disconnected.
    fn step_chat(&mut self, now: Instant) {
        let n = self.senders.len();
        while self.sent < self.total_msgs && now >= self.next_due() {
            let Some(u) = (0..n)
                .map(|k| self.senders[(self.sent + k) % n])
                .find(|&u| self.sim.users[u].conn.is_some())
            else {
                break; // everybody is gone; the report shows it
            };
            let text = proto::probe_text(&self.ctx.run_id, self.sent as u64, self.sim.w.now_us());
            self.sim
                .send(u, &format!("<MSG>{text}"), self.poll.registry());
            self.sent += 1;
        }
        let all_gone = self
            .senders
            .iter()
            .all(|&u| self.sim.users[u].conn.is_none());
        if self.sent == self.total_msgs || all_gone {
            self.chat_send_secs = now.duration_since(self.t_chat).as_secs_f64();
            set_phase("lobby: draining");
            self.sim.w.phase = Phase::Drain;
            self.drain_end = now + Duration::from_secs_f64(self.opts.drain);
        }
    }

    fn step_drain(&mut self, now: Instant) {
        if self.sim.w.received >= (self.sent * self.receivers) as u64 || now >= self.drain_end {
            self.end = Some(End::Done);
        }
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        let mut t = self
            .ctx
            .deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        match self.sim.w.phase {
            Phase::Chat if self.sent < self.total_msgs => {
                t = t.min(self.next_due().saturating_duration_since(now));
            }
            Phase::Drain => t = t.min(self.drain_end.saturating_duration_since(now)),
            _ => {}
        }
        t
    }

    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(4096);
        while self.end.is_none() {
            let now = Instant::now();
            if now >= self.ctx.deadline {
                self.end = Some(End::TimedOut);
                break;
            }
            match self.sim.w.phase {
                Phase::Login => self.step_login(now),
                Phase::Rooms => self.step_rooms(now),
                Phase::Chat => self.step_chat(now),
                Phase::Drain => self.step_drain(now),
            }
            if self.end.is_some() {
                break;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(self.poll_timeout(now))) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("poll: {e}"));
                }
            }
            for ev in events.iter() {
                self.sim.on_event(ev, self.poll.registry());
            }
        }
        Ok(())
    }

    fn report(&self, nofile: Option<u64>) -> Report {
        let (w, opts) = (&self.sim.w, self.opts);
        let receivers = self.receivers as u64;
        let expected = self.sent as u64 * receivers;
        // Per message: at most `receivers` deliveries count, the rest are duplicates.
        let mut unique = 0u64;
        let mut duplicates = 0u64;
        let mut incomplete_msgs = 0u64;
        for &c in &w.seq_counts {
            let c = u64::from(c);
            unique += c.min(receivers);
            duplicates += c.saturating_sub(receivers);
            if c != receivers {
                incomplete_msgs += 1;
            }
        }
        let lost = expected - unique.min(expected);
        let short_users = self
            .senders
            .iter()
            .filter(|&&u| self.sim.users[u].info.recv != self.sent as u64)
            .count() as u64;

        let mut o = Obj::new();
        o.str("target", "proxy")
            .str("proxy", &self.addr.to_string());
        o.uint("users", opts.users as u64)
            .uint("rooms", opts.rooms as u64)
            .uint("room_size", self.room_size as u64)
            .float("rate", opts.rate, 1)
            .float("duration", opts.duration, 1)
            .uint("proto", u64::from(self.ctx.proto));
        let mut logins = Obj::new();
        logins
            .uint("connected", w.connected as u64)
            .uint("ok", w.login_ok as u64)
            .uint("failed", w.login_failed as u64)
            .uint("not_attempted", (opts.users - self.next_open) as u64)
            .float("seconds", self.login_secs, 3)
            .float("per_s", w.login_ok as f64 / self.login_secs, 1);
        o.obj("logins", &logins);
        match nofile {
            Some(n) => o.uint("nofile_soft_limit", n),
            None => o.null("nofile_soft_limit"),
        };
        let mut rooms = Obj::new();
        rooms
            .uint("used", w.rooms.len() as u64)
            .uint("created", w.rooms_created as u64)
            .uint("joins", w.joins_ok as u64)
            .uint("errors", w.room_errors as u64)
            .float("seconds", self.rooms_secs, 3);
        o.obj("room_setup", &rooms);
        let achieved = if self.chat_send_secs > 0.0 {
            self.sent as f64 / self.chat_send_secs
        } else {
            f64::NAN
        };
        o.uint("messages_sent", self.sent as u64)
            .float("send_seconds", self.chat_send_secs, 3)
            .float("send_rate_achieved", achieved, 1)
            .uint("receivers", receivers)
            .uint("deliveries_expected", expected)
            .uint("deliveries_received", w.received)
            .uint("lost", lost)
            .uint("duplicates", duplicates)
            .uint("messages_incomplete", incomplete_msgs)
            .uint("users_incomplete", short_users)
            .uint("users_dropped", w.dropped as u64)
            .uint("users_dropped_in_chat", w.dropped_in_chat as u64);
        let zero_loss = self.end == Some(End::Done)
            && lost == 0
            && duplicates == 0
            && self.sent == self.total_msgs;
        o.bool("zero_loss", zero_loss);
        o.obj("latency_us", &w.hist.summary());
        if !w.errors.is_empty() {
            let mut e = Obj::new();
            for (k, v) in &w.errors {
                e.uint(k, *v);
            }
            o.obj("errors", &e);
        }
        let err = match self.end {
            Some(End::TimedOut) => Some(format!(
                "global --timeout expired during the {} phase",
                w.phase.name()
            )),
            Some(End::NoLogins) => Some(
                w.first_error
                    .clone()
                    .unwrap_or_else(|| "no user could log in".to_string()),
            ),
            Some(End::NoChat) => Some(format!(
                "every logged-in user was disconnected before the chat phase (first cause: {})",
                w.first_error.as_deref().unwrap_or("unknown")
            )),
            _ => w.first_error.clone(),
        };
        if let Some(e) = &err {
            o.str("error", e);
        }
        let mut hints = Vec::new();
        if w.login_failed > 0 {
            hints.push(HINT_LOGIN);
        }
        if w.dropped > 0 {
            hints.push(HINT_DROPPED);
        }
        if lost > 0 && opts.rate / opts.users as f64 > 1.0 {
            hints.push(HINT_FLOOD);
        }
        if !hints.is_empty() {
            o.str("hint", &hints.join("; "));
        }
        let ok = zero_loss
            && w.login_failed == 0
            && self.next_open == opts.users
            && w.room_errors == 0
            && w.errors.is_empty();
        Report { json: o, ok }
    }
}

pub fn run_lobby(
    addr: std::net::SocketAddr,
    opts: &LobbyOpts,
    ctx: &Ctx,
) -> Result<Report, String> {
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
    let sim = Sim {
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
            dropped_in_chat: 0,
            errors: BTreeMap::new(),
            first_error: None,
        },
    };
    let nofile = crate::check_nofile(opts.users);
    let per_user = opts.rate / opts.users as f64;
    if per_user > 5.0 {
        eprintln!(
            "vcmi-load: note: {per_user:.1} messages/s per user; servers with a chat flood limit \
             (vcmi-proxy --flood-rate, default 5/s) will refuse some of them - use more --users"
        );
    }
    let now = Instant::now();
    let mut d = Driver {
        addr,
        opts,
        ctx,
        poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
        sim,
        // U/R users per room (rounded up) within the COUNT limits 2..=8 (§6.6)
        room_size: opts.users.div_ceil(opts.rooms).clamp(2, 8),
        total_msgs: ((opts.rate * opts.duration).round() as usize).max(1),
        next_open: 0,
        stop_opening: false,
        t_login: now,
        login_secs: 0.0,
        t_rooms: now,
        rooms_secs: 0.0,
        t_chat: now,
        chat_send_secs: 0.0,
        drain_end: now,
        sent: 0,
        senders: Vec::new(),
        receivers: 0,
        end: None,
    };
    set_phase("lobby: logging in");
    d.run()?;
    Ok(d.report(nofile))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(users: usize, rooms: usize, cap: usize) -> Vec<usize> {
        let u: Vec<usize> = (0..users).collect();
        let m = room_members(&u, rooms, cap);
        // members are disjoint, contiguous and in order
        let flat: Vec<usize> = m.iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(flat, (0..flat.len()).collect::<Vec<_>>());
        m.iter().map(|s| s.len()).collect()
    }

    #[test]
    fn rooms_are_filled_evenly_up_to_count() {
        assert_eq!(sizes(300, 40, 8), [[8; 20], [7; 20]].concat());
        assert_eq!(sizes(100, 10, 8), vec![8; 10]); // 20 users stay in the lobby
        assert_eq!(sizes(10, 4, 3), vec![3, 3, 2, 2]);
        assert_eq!(sizes(3, 5, 2), vec![1, 1, 1]); // host-only rooms, no empty rooms
        assert_eq!(sizes(0, 5, 8), Vec::<usize>::new());
    }

    #[test]
    fn tail_rules() {
        assert!(tail_ready(b"ERROR:Room x is full"));
        assert!(tail_ready(
            b"MSG:System:Here available 0 users, currently playing 0"
        ));
        assert!(tail_ready(b"MSGCH:u:global:lt.ab.1.2#"));
        assert!(!tail_ready(b"MSGCH:u:global:lt.ab.1.2"));
        assert!(!tail_ready(b"JOIN:room:u"));
        assert!(keep(b"MSGCH") && keep(b"CREATED") && !keep(b"USERS") && !keep(b"SESSIONS"));
    }
}

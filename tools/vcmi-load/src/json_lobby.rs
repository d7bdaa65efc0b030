//! `json-lobby` mode: U accounts register and log in to a VCMI 1.5+ JSON lobby, then chat at M
//! messages/s (aggregate) on one global channel; reports registration and login rates, delivery
//! latency, loss and duplicates. One mio thread drives every connection.
//!
//! LIFECYCLE of a user: Idle → Registering (connect, clientRegister, wait accountCreated, close)
//! → Registered → LoggingIn (new connection, clientLogin, wait clientLoginSuccess … matchesHistory,
//! LOBBY-JSON.md §1.5 item 2) → LoggedIn (chats, receives every global message of the channel,
//! its own included) ; any error or close → Failed. Registration and login are separate phases so
//! the login rate is not mixed with registration.
//!
//! Flood control: the reference has none (§1.7); vcmi-proxy drops (silently) a client's chat
//! beyond `--flood-rate` per second (default 5, burst `--flood-burst` 10), which shows up here as
//! loss. Keep M/U under the limit or start the server with `--flood-rate 0`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::errors::io_error_name;
use crate::json::Obj;
use crate::json_checks::{lists_account, probe_of, LoginSeq, Tally};
use crate::json_proto::{self as jp, Account, FrameBuf, Msg};
use crate::mioconn::Conn;
use crate::stats::{self, Histogram};
use crate::{proto, set_phase, Ctx, Report};

pub struct JsonLobbyOpts {
    pub users: usize,
    pub rate: f64,
    pub duration: f64,
    pub window: usize,
    pub drain: f64,
    pub channel: String,
    pub sources: Vec<std::net::IpAddr>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Idle,
    Registering,
    Registered,
    LoggingIn,
    LoggedIn,
    Failed,
}

struct User {
    conn: Option<Conn>,
    buf: FrameBuf,
    st: St,
    account: Option<Account>,
    login: LoginSeq,
    /// When the current request (register or login) was queued.
    asked: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Register,
    Login,
    Chat,
    Drain,
}

struct Driver<'a> {
    addr: std::net::SocketAddr,
    opts: &'a JsonLobbyOpts,
    ctx: &'a Ctx,
    poll: Poll,
    users: Vec<User>,
    rbuf: Vec<u8>,
    phase: Phase,
    next_open: usize,
    in_flight: usize,
    stop_opening: bool,
    phase_start: Instant,
    last_done: Option<Instant>,
    reg_ok: usize,
    reg_secs: f64,
    reg_lat: Vec<u64>,
    login_ok: usize,
    login_secs: f64,
    login_lat: Vec<u64>,
    failed: usize,
    dropped_in_chat: usize,
    /// Index in `receivers` per user, for the tally.
    receiver_of: Vec<Option<usize>>,
    receivers: Vec<usize>,
    tally: Tally,
    hist: Histogram,
    total_msgs: usize,
    sent: usize,
    refused: u64,
    t_chat: Instant,
    chat_send_secs: f64,
    drain_end: Instant,
    next_beat: Instant,
    heartbeats: u64,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
    timed_out: bool,
}

impl Driver<'_> {
    fn note_error(&mut self, kind: &str, text: String) {
        *self.errors.entry(kind.to_string()).or_insert(0) += 1;
        if self.first_error.is_none() {
            eprintln!("vcmi-load: {text}");
            self.first_error = Some(text);
        }
    }

    fn name(&self, i: usize) -> String {
        jp::account_name(&self.ctx.run_id, 'u', i)
    }

    fn fail(&mut self, i: usize, kind: &str, text: String) {
        if let Some(c) = self.users[i].conn.take() {
            c.close(self.poll.registry());
        }
        let st = self.users[i].st;
        if st == St::Failed {
            return;
        }
        self.note_error(kind, format!("{}: {text}", self.name(i)));
        match st {
            St::Registering | St::LoggingIn => self.in_flight -= 1,
            St::LoggedIn if matches!(self.phase, Phase::Chat | Phase::Drain) => {
                self.dropped_in_chat += 1
            }
            _ => {}
        }
        self.failed += 1;
        self.users[i].st = St::Failed;
    }

    fn send(&mut self, i: usize, frame: &[u8]) {
        let Some(c) = self.users[i].conn.as_mut() else {
            return;
        };
        c.queue(frame);
        if let Err(e) = c.flush(self.poll.registry(), Token(i)) {
            self.fail(i, io_error_name(&e), format!("write: {e}"));
        }
    }

    /// Opens connections while fewer than `--window` requests are in flight.
    fn open_more(&mut self, want: St, next: St) {
        while !self.stop_opening
            && self.next_open < self.users.len()
            && self.in_flight < self.opts.window
        {
            let i = self.next_open;
            self.next_open += 1;
            if self.users[i].st != want {
                continue;
            }
            let frame = match (&self.users[i].account, next) {
                (Some(a), St::LoggingIn) => {
                    jp::message_frame(&jp::client_login(a, &self.opts.channel))
                }
                _ => jp::message_frame(&jp::client_register(&self.name(i))),
            };
            let source = crate::net::source_for(&self.opts.sources, i);
            self.in_flight += 1;
            self.users[i].st = next;
            self.users[i].asked = Instant::now();
            match Conn::open(self.addr, source, self.poll.registry(), Token(i)) {
                Ok(mut c) => {
                    c.queue(&frame);
                    self.users[i].conn = Some(c);
                }
                Err(e) => {
                    if crate::errors::is_local_exhaustion(&e) {
                        self.stop_opening = true;
                    }
                    self.fail(
                        i,
                        io_error_name(&e),
                        format!("connect: {}", crate::errors::io_error_text(&e)),
                    );
                }
            }
        }
    }

    fn phase_done(&self) -> bool {
        (self.next_open == self.users.len() || self.stop_opening) && self.in_flight == 0
    }

    fn step(&mut self, now: Instant) {
        match self.phase {
            Phase::Register => {
                self.open_more(St::Idle, St::Registering);
                if self.phase_done() {
                    self.reg_secs = self.phase_secs(now);
                    eprintln!(
                        "vcmi-load: {} accounts registered in {:.3} s",
                        self.reg_ok, self.reg_secs
                    );
                    set_phase("json-lobby: logging in");
                    self.phase = Phase::Login;
                    (
                        self.next_open,
                        self.stop_opening,
                        self.phase_start,
                        self.last_done,
                    ) = (0, false, now, None);
                    // open the first logins now: with no connection open, the next poll would
                    // otherwise idle for its full timeout inside the measured login phase
                    self.open_more(St::Registered, St::LoggingIn);
                }
            }
            Phase::Login => {
                self.open_more(St::Registered, St::LoggingIn);
                if self.phase_done() {
                    self.login_secs = self.phase_secs(now);
                    eprintln!(
                        "vcmi-load: {} accounts logged in in {:.3} s",
                        self.login_ok, self.login_secs
                    );
                    self.start_chat(now);
                }
            }
            Phase::Chat => self.step_chat(now),
            Phase::Drain => {}
        }
        if now >= self.next_beat {
            self.next_beat += jp::HEARTBEAT_EVERY;
            for i in 0..self.users.len() {
                if self.users[i].conn.as_ref().is_some_and(|c| c.connected) {
                    self.send(i, &jp::HEARTBEAT);
                }
            }
        }
    }

    fn phase_secs(&self, now: Instant) -> f64 {
        self.last_done
            .unwrap_or(now)
            .duration_since(self.phase_start)
            .as_secs_f64()
    }

    fn start_chat(&mut self, now: Instant) {
        self.receivers = (0..self.users.len())
            .filter(|&i| self.users[i].st == St::LoggedIn)
            .collect();
        for (k, &u) in self.receivers.iter().enumerate() {
            self.receiver_of[u] = Some(k);
        }
        self.tally = Tally::new(self.receivers.len(), self.total_msgs);
        self.t_chat = now;
        if self.receivers.is_empty() {
            self.phase = Phase::Drain;
            self.drain_end = now;
            return;
        }
        set_phase("json-lobby: chatting");
        self.phase = Phase::Chat;
    }

    fn next_due(&self) -> Instant {
        self.t_chat + Duration::from_secs_f64(self.sent as f64 / self.opts.rate)
    }

    /// Sends every due message on the fixed schedule `seq / rate`, senders taking turns.
    fn step_chat(&mut self, now: Instant) {
        let n = self.receivers.len();
        while self.sent < self.total_msgs && now >= self.next_due() {
            let Some(u) = (0..n)
                .map(|k| self.receivers[(self.sent + k) % n])
                .find(|&u| self.users[u].conn.is_some())
            else {
                break;
            };
            let us = self.ctx.started.elapsed().as_micros() as u64;
            let text = proto::probe_text(&self.ctx.run_id, self.sent as u64, us);
            self.sent += 1;
            self.send(
                u,
                &jp::message_frame(&jp::send_chat(&self.opts.channel, &text)),
            );
        }
        let all_gone = self.receivers.iter().all(|&u| self.users[u].conn.is_none());
        if self.sent == self.total_msgs || all_gone {
            self.chat_send_secs = now.duration_since(self.t_chat).as_secs_f64();
            set_phase("json-lobby: draining");
            self.phase = Phase::Drain;
            self.drain_end = now + Duration::from_secs_f64(self.opts.drain);
        }
    }

    /// One reply to a pending clientLogin: checked against the sequence of §1.5 item 2. An
    /// out-of-order reply is reported (`login_order` error) but does not fail the login.
    fn login_reply(&mut self, i: usize, m: &Msg) {
        let step = self.users[i].login;
        if step == LoginSeq::WantHistory && m.str("channelName") != Some(&self.opts.channel) {
            let text = format!(
                "{}: chatHistory for {:?}, not the requested channel",
                self.name(i),
                m.str("channelName")
            );
            self.note_error("login_order", text);
        }
        if step == LoginSeq::WantAccounts && m.kind == "activeAccounts" {
            let me = self.users[i].account.as_ref().map_or("", |a| a.id.as_str());
            if !lists_account(m, me) {
                let text = format!(
                    "{}: the activeAccounts of its own login does not list it",
                    self.name(i)
                );
                self.note_error("presence", text);
            }
        }
        let next = match step.next(&m.kind) {
            Ok(n) => n,
            Err(e) => {
                self.note_error("login_order", format!("{}: {e}", self.name(i)));
                // resynchronise on the last reply so the run goes on
                if m.kind != "matchesHistory" {
                    return;
                }
                LoginSeq::Done
            }
        };
        self.users[i].login = next;
        if next == LoginSeq::Done {
            self.users[i].st = St::LoggedIn;
            self.login_lat
                .push(self.users[i].asked.elapsed().as_micros() as u64);
            self.login_ok += 1;
            self.in_flight -= 1;
            self.last_done = Some(Instant::now());
        }
    }

    fn handle(&mut self, i: usize, payload: &[u8]) {
        let st = self.users[i].st;
        // Broadcasts this mode does not need are recognised without a full parse (§1.5 item 2:
        // every login sends the whole activeAccounts list to everyone). During its own login a
        // user checks them, to verify the reply sequence.
        if st != St::LoggingIn {
            if let Some("activeAccounts" | "activeGameRooms" | "chatHistory") =
                jp::sniff_type(payload)
            {
                return;
            }
        }
        let m = match Msg::parse(payload) {
            Ok(m) => m,
            Err(e) => return self.fail(i, "protocol_error", e),
        };
        if let Some(f) = m.failure() {
            if st == St::LoggedIn {
                // a refused chat message: counted as loss, the user stays
                self.refused += 1;
                return self.note_error("operation_failed", format!("{}: {f}", self.name(i)));
            }
            return self.fail(i, "operation_failed", f);
        }
        if st == St::LoggingIn {
            return self.login_reply(i, &m);
        }
        match (st, m.kind.as_str()) {
            (St::Registering, "accountCreated") => match m.account() {
                Ok(a) => {
                    self.users[i].account = Some(a);
                    self.users[i].st = St::Registered;
                    self.reg_lat
                        .push(self.users[i].asked.elapsed().as_micros() as u64);
                    self.reg_ok += 1;
                    self.in_flight -= 1;
                    self.last_done = Some(Instant::now());
                    if let Some(c) = self.users[i].conn.take() {
                        c.close(self.poll.registry());
                    }
                }
                Err(e) => self.fail(i, "protocol_error", e),
            },
            (St::LoggedIn, "chatMessage") => {
                let Some((seq, ts)) = probe_of(&m, &self.ctx.run_id, &self.opts.channel) else {
                    return;
                };
                if let Some(r) = self.receiver_of[i] {
                    let before = self.tally.received;
                    self.tally.record(r, seq, self.sent as u64);
                    if self.tally.received > before {
                        let now = self.ctx.started.elapsed().as_micros() as u64;
                        self.hist.record(now.saturating_sub(ts));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_event(&mut self, ev: &mio::event::Event) {
        let i = ev.token().0;
        let registry = self.poll.registry();
        let User { conn, buf, .. } = &mut self.users[i];
        let Some(c) = conn.as_mut() else { return };
        let mut io = || -> std::io::Result<bool> {
            if !c.connected && !c.check_connected()? {
                return Ok(false);
            }
            if ev.is_writable() {
                c.flush(registry, Token(i))?;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                return c.read_all(&mut self.rbuf, |d| buf.push(d));
            }
            Ok(false)
        };
        let res = io();
        loop {
            let user = &mut self.users[i];
            if user.conn.is_none() {
                return; // closed while handling (registered, or failed)
            }
            let payload = match user.buf.next_payload() {
                Ok(Some(p)) => p.to_vec(),
                Ok(None) => break,
                Err(e) => return self.fail(i, "protocol_error", e),
            };
            self.handle(i, &payload);
        }
        self.heartbeats += std::mem::take(&mut self.users[i].buf.heartbeats);
        match res {
            Ok(false) => {}
            Ok(true) => self.fail(
                i,
                "closed_by_server",
                "connection closed by the server".into(),
            ),
            Err(e) => self.fail(i, io_error_name(&e), format!("io: {e}")),
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(4096);
        loop {
            let now = Instant::now();
            if now >= self.ctx.deadline {
                self.timed_out = true;
                return Ok(());
            }
            self.step(now);
            if self.phase == Phase::Drain {
                let all = self.sent as u64 * self.receivers.len() as u64;
                if self.tally.received >= all || now >= self.drain_end {
                    return Ok(());
                }
            }
            let mut t = self
                .ctx
                .deadline
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            match self.phase {
                Phase::Chat => t = t.min(self.next_due().saturating_duration_since(now)),
                Phase::Drain => t = t.min(self.drain_end.saturating_duration_since(now)),
                _ => {}
            }
            if let Err(e) = self.poll.poll(&mut events, Some(t)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("poll: {e}"));
                }
            }
            for ev in events.iter() {
                self.on_event(ev);
            }
        }
    }

    fn report(&mut self) -> Report {
        let users = self.users.len() as u64;
        let mut o = Obj::new();
        o.str("target", "proxy")
            .str("proxy", &self.addr.to_string())
            .uint("users", users)
            .str("channel", &self.opts.channel)
            .float("rate", self.opts.rate, 1)
            .float("duration", self.opts.duration, 1);
        let mut reg = Obj::new();
        reg.uint("ok", self.reg_ok as u64)
            .float("seconds", self.reg_secs, 3)
            .float("per_s", self.reg_ok as f64 / self.reg_secs, 1)
            .obj("latency_us", &stats::summarize_exact(&mut self.reg_lat));
        o.obj("registrations", &reg);
        let mut logins = Obj::new();
        logins
            .uint("ok", self.login_ok as u64)
            .float("seconds", self.login_secs, 3)
            .float("per_s", self.login_ok as f64 / self.login_secs, 1)
            .obj("latency_us", &stats::summarize_exact(&mut self.login_lat));
        o.obj("logins", &logins);
        let sent = self.sent as u64;
        let lost = self.tally.lost(sent);
        o.uint("users_failed", self.failed as u64)
            .uint("messages_sent", sent)
            .float("send_seconds", self.chat_send_secs, 3)
            .float("send_rate_achieved", sent as f64 / self.chat_send_secs, 1)
            .uint("receivers", self.receivers.len() as u64)
            .uint("deliveries_expected", sent * self.receivers.len() as u64)
            .uint("deliveries_received", self.tally.received)
            .uint("lost", lost)
            .uint("duplicates", self.tally.duplicates)
            .uint("unknown_probes", self.tally.unknown)
            .uint("refused", self.refused)
            .uint("receivers_incomplete", self.tally.receivers_short(sent))
            .uint("users_dropped_in_chat", self.dropped_in_chat as u64)
            .uint("heartbeats_received", self.heartbeats)
            .obj("latency_us", &self.hist.summary());
        let zero_loss = !self.timed_out
            && sent == self.total_msgs as u64
            && lost == 0
            && self.tally.duplicates == 0
            && self.tally.unknown == 0;
        o.bool("zero_loss", zero_loss);
        if !self.errors.is_empty() {
            let mut e = Obj::new();
            for (k, v) in &self.errors {
                e.uint(k, *v);
            }
            o.obj("errors", &e);
        }
        let err = if self.timed_out {
            Some(format!(
                "global --timeout expired during the {:?} phase",
                self.phase
            ))
        } else {
            self.first_error.clone()
        };
        if let Some(e) = &err {
            o.str("error", e);
        }
        if lost > 0 && self.opts.rate / users as f64 > 5.0 {
            o.str(
                "hint",
                "messages were lost: vcmi-proxy rate-limits JSON chat per client \
                (--flood-rate, default 5/s, burst --flood-burst 10) and drops the excess silently; \
                use more --users, a lower --rate, or start the server with --flood-rate 0",
            );
        }
        let ok = zero_loss
            && self.failed == 0
            && self.errors.is_empty()
            && self.login_ok == self.users.len();
        Report { json: o, ok }
    }
}

pub fn run_json_lobby(
    addr: std::net::SocketAddr,
    opts: &JsonLobbyOpts,
    ctx: &Ctx,
) -> Result<Report, String> {
    let longest = jp::account_name(&ctx.run_id, 'u', opts.users.saturating_sub(1));
    if !jp::valid_account_name(&longest) {
        return Err(format!(
            "generated account name {longest:?} breaks the lobby's name rules"
        ));
    }
    let now = Instant::now();
    let users = (0..opts.users)
        .map(|_| User {
            conn: None,
            buf: FrameBuf::default(),
            st: St::Idle,
            account: None,
            login: LoginSeq::default(),
            asked: now,
        })
        .collect();
    crate::limits::check_nofile(opts.users);
    let per_user = opts.rate / opts.users as f64;
    if per_user > 5.0 {
        eprintln!(
            "vcmi-load: note: {per_user:.1} messages/s per account; vcmi-proxy drops JSON chat beyond \
             --flood-rate (default 5/s) per client - use more --users or start it with --flood-rate 0"
        );
    }
    let mut d = Driver {
        addr,
        opts,
        ctx,
        poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
        users,
        rbuf: vec![0; 64 << 10],
        phase: Phase::Register,
        next_open: 0,
        in_flight: 0,
        stop_opening: false,
        phase_start: now,
        last_done: None,
        reg_ok: 0,
        reg_secs: 0.0,
        reg_lat: Vec::new(),
        login_ok: 0,
        login_secs: 0.0,
        login_lat: Vec::new(),
        failed: 0,
        dropped_in_chat: 0,
        receiver_of: vec![None; opts.users],
        receivers: Vec::new(),
        tally: Tally::new(0, 0),
        hist: Histogram::new(),
        total_msgs: ((opts.rate * opts.duration).round() as usize).max(1),
        sent: 0,
        refused: 0,
        t_chat: now,
        chat_send_secs: 0.0,
        drain_end: now,
        next_beat: now + jp::HEARTBEAT_EVERY,
        heartbeats: 0,
        errors: BTreeMap::new(),
        first_error: None,
        timed_out: false,
    };
    set_phase("json-lobby: registering");
    d.run()?;
    Ok(d.report())
}

//! The mio loop of the `json-lobby` mode: the per-user state, the phases register → login →
//! chat → drain on their deadlines, heartbeats, and socket events; the server's replies are
//! handled in `replies.rs`, the result in `report.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use super::JsonLobbyOpts;
use crate::errors::io_error_name;
use crate::json_checks::{LoginSeq, Tally};
use crate::json_proto::{self as jp, Account, FrameBuf};
use crate::mioconn::Conn;
use crate::stats::Histogram;
use crate::{proto, set_phase, Ctx};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum St {
    Idle,
    Registering,
    Registered,
    LoggingIn,
    LoggedIn,
    Failed,
}

pub(super) struct User {
    pub(super) conn: Option<Conn>,
    buf: FrameBuf,
    pub(super) st: St,
    pub(super) account: Option<Account>,
    pub(super) login: LoginSeq,
    /// When the current request (register or login) was queued.
    pub(super) asked: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    Register,
    Login,
    Chat,
    Drain,
}

pub(super) struct Driver<'a> {
    pub(super) addr: std::net::SocketAddr,
    pub(super) opts: &'a JsonLobbyOpts,
    pub(super) ctx: &'a Ctx,
    pub(super) poll: Poll,
    pub(super) users: Vec<User>,
    rbuf: Vec<u8>,
    pub(super) phase: Phase,
    next_open: usize,
    pub(super) in_flight: usize,
    stop_opening: bool,
    phase_start: Instant,
    pub(super) last_done: Option<Instant>,
    pub(super) reg_ok: usize,
    pub(super) reg_secs: f64,
    pub(super) reg_lat: Vec<u64>,
    pub(super) login_ok: usize,
    pub(super) login_secs: f64,
    pub(super) login_lat: Vec<u64>,
    pub(super) failed: usize,
    pub(super) dropped_in_chat: usize,
    /// Index in `receivers` per user, for the tally.
    pub(super) receiver_of: Vec<Option<usize>>,
    pub(super) receivers: Vec<usize>,
    pub(super) tally: Tally,
    pub(super) hist: Histogram,
    pub(super) total_msgs: usize,
    pub(super) sent: usize,
    pub(super) refused: u64,
    t_chat: Instant,
    pub(super) chat_send_secs: f64,
    drain_end: Instant,
    next_beat: Instant,
    pub(super) heartbeats: u64,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) first_error: Option<String>,
    pub(super) timed_out: bool,
}

impl<'a> Driver<'a> {
    /// A run about to start its registration phase: every user idle, no connection open.
    pub(super) fn new(
        addr: std::net::SocketAddr,
        opts: &'a JsonLobbyOpts,
        ctx: &'a Ctx,
    ) -> Result<Driver<'a>, String> {
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
        Ok(Driver {
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
        })
    }

    pub(super) fn note_error(&mut self, kind: &str, text: String) {
        *self.errors.entry(kind.to_string()).or_insert(0) += 1;
        if self.first_error.is_none() {
            eprintln!("vcmi-load: {text}");
            self.first_error = Some(text);
        }
    }

    pub(super) fn name(&self, i: usize) -> String {
        jp::account_name(&self.ctx.run_id, 'u', i)
    }

    pub(super) fn fail(&mut self, i: usize, kind: &str, text: String) {
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

    pub(super) fn run(&mut self) -> Result<(), String> {
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
}

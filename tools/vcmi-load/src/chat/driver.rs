//! The mio loop of the `lobby` mode: opens the connections and runs the phases login → rooms →
//! chat → drain on their deadlines; the per-user state lives in `world.rs`, the result in
//! `report.rs`.

use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use super::world::{room_members, Phase, Room, Sim, St};
use super::LobbyOpts;
use crate::errors::io_error_name;
use crate::mioconn::Conn;
use crate::proto;
use crate::{set_phase, Ctx};

/// Why the main loop stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Done,
    TimedOut,
    NoLogins,
    NoChat,
}

/// The phases of one lobby run and their timings; `Sim` holds the per-user state.
pub(super) struct Driver<'a> {
    pub(super) addr: std::net::SocketAddr,
    pub(super) opts: &'a LobbyOpts,
    pub(super) ctx: &'a Ctx,
    poll: Poll,
    pub(super) sim: Sim,
    pub(super) room_size: usize,
    pub(super) total_msgs: usize,
    pub(super) next_open: usize,
    stop_opening: bool,
    t_login: Instant,
    pub(super) login_secs: f64,
    t_rooms: Instant,
    pub(super) rooms_secs: f64,
    t_chat: Instant,
    pub(super) chat_send_secs: f64,
    drain_end: Instant,
    pub(super) sent: usize,
    pub(super) senders: Vec<usize>,
    pub(super) receivers: usize,
    pub(super) end: Option<End>,
}

impl<'a> Driver<'a> {
    /// A run about to start its login phase.
    pub(super) fn new(
        addr: std::net::SocketAddr,
        opts: &'a LobbyOpts,
        ctx: &'a Ctx,
        sim: Sim,
    ) -> Result<Driver<'a>, String> {
        let now = Instant::now();
        Ok(Driver {
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
        })
    }

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
                    let text = format!("connect: {}", crate::errors::io_error_text(&e));
                    self.sim
                        .fail(i, io_error_name(&e), text, self.poll.registry());
                    if crate::errors::is_local_exhaustion(&e) {
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

    pub(super) fn run(&mut self) -> Result<(), String> {
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
}

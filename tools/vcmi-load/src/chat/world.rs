//! The simulated side of the `lobby` mode: one `User` per connection (socket, reply splitter,
//! login/room state), the `Room`s they form, and the `World` that counts what the server
//! answered (logins, room setups, chat deliveries, errors). `Sim` feeds socket events into it;
//! the phases themselves are run by `driver.rs`.

use std::collections::BTreeMap;
use std::time::Instant;

use mio::Token;

use crate::errors::io_error_name;
use crate::mioconn::Conn;
use crate::proto::{self, Splitter};
use crate::stats::Histogram;
use crate::Ctx;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum St {
    Connecting,
    LoggingIn,
    LoggedIn,
    Failed,
}

pub(super) struct Info {
    pub(super) name: String,
    pub(super) st: St,
    pub(super) room: Option<usize>,
    pub(super) is_host: bool,
    /// NEW or JOIN sent and not answered yet.
    pub(super) room_op_pending: bool,
    pub(super) recv: u64,
}

pub(super) struct User {
    pub(super) conn: Option<Conn>,
    split: Splitter,
    pub(super) info: Info,
}

pub(super) struct Room {
    pub(super) name: String,
    pub(super) host: usize,
    pub(super) joiners: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    Login,
    Rooms,
    Chat,
    Drain,
}

impl Phase {
    pub(super) fn name(self) -> &'static str {
        match self {
            Phase::Login => "login",
            Phase::Rooms => "rooms",
            Phase::Chat => "chat",
            Phase::Drain => "drain",
        }
    }
}

/// Everything but the users, so a user's splitter can be borrowed while state is updated.
pub(super) struct World {
    run: String,
    base: Instant,
    pub(super) phase: Phase,
    pub(super) in_flight: usize,
    pub(super) connected: usize,
    pub(super) login_ok: usize,
    pub(super) login_failed: usize,
    pub(super) last_login: Option<Instant>,
    pub(super) rooms: Vec<Room>,
    pub(super) room_pending: usize,
    pub(super) rooms_created: usize,
    pub(super) joins_ok: usize,
    pub(super) room_errors: usize,
    /// Rooms whose host got CREATED: their joiners may send JOIN now.
    pub(super) ready_rooms: Vec<usize>,
    pub(super) seq_counts: Vec<u32>,
    pub(super) received: u64,
    pub(super) hist: Histogram,
    /// Logged-in users that lost their connection (any phase) / during the chat.
    pub(super) dropped: usize,
    pub(super) dropped_in_chat: usize,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) first_error: Option<String>,
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

    pub(super) fn now_us(&self) -> u64 {
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

pub(super) struct Sim {
    pub(super) users: Vec<User>,
    pub(super) w: World,
    rbuf: Vec<u8>,
}

impl Sim {
    /// `users` users, none connected yet, named after the run so runs can repeat on one server.
    pub(super) fn new(users: usize, ctx: &Ctx) -> Sim {
        let users: Vec<User> = (0..users)
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
        Sim {
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
        }
    }

    pub(super) fn fail(&mut self, i: usize, kind: &str, text: String, registry: &mio::Registry) {
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

    pub(super) fn send(&mut self, i: usize, text: &str, registry: &mio::Registry) {
        let Some(c) = self.users[i].conn.as_mut() else {
            return;
        };
        c.queue(&proto::frame(text.as_bytes()));
        if let Err(e) = c.flush(registry, Token(i)) {
            self.fail(i, io_error_name(&e), format!("write: {e}"), registry);
        }
    }

    pub(super) fn on_event(&mut self, ev: &mio::event::Event, registry: &mio::Registry) {
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

/// Spreads `users` over `rooms` rooms as evenly as possible (sizes differ by at most one), at most
/// `cap` (the COUNT) per room; users beyond `rooms * cap` stay in the lobby. Every room gets a
/// host as long as there are at least as many users as rooms.
pub(super) fn room_members(users: &[usize], rooms: usize, cap: usize) -> Vec<&[usize]> {
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

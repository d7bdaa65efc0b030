//! The lobby rules: users, chat, rooms, ready and start (PROTOCOL.md §6–§8).
//!
//! Pure state, no sockets: the event loop registers a connection once its
//! first frame shows it is a lobby client, feeds it each decoded frame, and
//! tells it when the connection is gone. Every call appends what must be sent
//! or closed to an [`Outbox`]. Message order per recipient is exactly the
//! reference's emission order, which the conformance scenarios pin down.
//!
//! Where the reference is buggy, the fixes chosen are (ids from PROTOCOL.md
//! §15): chat is formatted per recipient (D3), a guest's disconnect tells the
//! room with KICK (D6), all members' sockets close at start (D8), a PSWD
//! re-checks room capacity and membership (D10), room names with `:` are
//! refused (D11), frames are decoded once (D16), half-joined users cannot
//! crash or start rooms (D19), `:>>` in user text is neutralised (D42). The
//! rest, typos included, is the reference's behaviour.
//!
//! LIFECYCLE of a lobby client
//! ```text
//!   registered ──GREETINGS ok──▶ logged in ──JOIN──▶ half-joined ──PSWD ok──▶ in room (guest)
//!   (only GREETINGS acts; a     │  ▲   ▲                │ wrong PSWD,              │
//!    bad name is refused and    │  │   └────────────────┘ room full or gone       │
//!    it may try again)          │  └──── LEAVE / KICK / room destroyed ───────────┤
//!                               └──NEW──▶ in room (host) ──────────────────────────┤
//!                                                                    room starts   ▼
//!                                    started: HOST/START sent, forgotten, socket closed
//!   registered ──GREETINGS, lobby full──▶ refused: forgotten, socket closed
//!   any state ──EOF / error / dropped──▶ gone: forgotten, its room told, lists refreshed
//! ```
//! A host's LEAVE or disconnect destroys the room, which sends every guest
//! back to "logged in".
//! The room's own lifecycle is in `rooms.rs`.
//!
//! Layout: this file holds the [`Lobby`], its settings and counters, and the
//! dispatch of a frame's commands; each command family has its own file —
//! `login.rs` (GREETINGS, VER), `chat.rs` (MSG, `@name`, CHANNEL, HERE,
//! ROOT), `room_commands.rs` (NEW … KICK, HOSTMODE), `start.rs` (READY,
//! FORCESTART, the start), `lists.rs` (USERS, SESSIONS, STATUS, MODS),
//! `flood.rs` (token bucket). The state they share lives in two types that
//! keep their own invariants: `clients.rs` (the client directory) and
//! `rooms.rs` (the room table). What each protocol version understands is
//! [`Protocol`].

mod chat;
mod clients;
mod command;
mod flood;
mod lists;
mod login;
mod messages;
mod outbox;
mod protocol;
mod room_commands;
mod rooms;
mod start;
mod status;

pub use command::{Command, Commands, Malformed};
pub use outbox::{CloseReason, List, Outbox, StartedSession};
pub use protocol::Protocol;

use clients::Clients;
use rooms::Rooms;
use std::collections::HashSet;
use std::time::Instant;

/// The event loop's handle for a connection (its slab key).
pub type ClientId = usize;

/// Cumulative counters the lobby keeps; ROOT reports them (§6.16).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Hashes of every name that ever logged in (hashes: a stream of long
    /// random names must not grow memory by their length; capped).
    pub users: HashSet<u64>,
    /// Rooms ever created.
    pub rooms: u64,
    /// Rooms ever started (FORCESTART counts twice, D5).
    pub sessions: u64,
    /// Commands dropped by flood control.
    pub flood_drops: u64,
    /// Logins refused because the lobby was full.
    pub capacity_refusals: u64,
    /// Starts refused by the server's session caps.
    pub start_refusals: u64,
    /// Logins refused because the name is banned (`--ban-file`).
    pub banned_names: u64,
}

/// Counters the server keeps about connections, which the lobby reports
/// but cannot see: the welcome line names `pipes_open` ("currently
/// playing"), and ROOT reports `logins` and `uniques`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServerCounters {
    /// Game pipe connections open now.
    pub pipes_open: u64,
    /// Connections ever accepted (the reference's "logins").
    pub logins: u64,
    /// Distinct client addresses ever seen.
    pub uniques: u64,
}

impl ServerCounters {
    /// All zero: for callers without a server (tests, benches, fuzzing).
    pub const ZERO: ServerCounters = ServerCounters {
        pipes_open: 0,
        logins: 0,
        uniques: 0,
    };
}

/// From this many logged-in users on, the lobby counts as large: the event
/// loop coalesces and rate-limits USERS/SESSIONS refreshes (each one lists
/// everybody, so a login storm would cost O(N²) bytes), and the "X is here"
/// chat line for VCMI 1.1 users is no longer sent (in a lobby that size it
/// is only noise, and it too would cost O(N²)). Below it every message is
/// exactly the reference's, as the conformance transcripts record.
pub const LARGE_LOBBY: usize = 64;

/// Outcome of one command for the rest of its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The reference's ABORT: skip the rest of the frame.
    Abort,
    /// The sender is no longer a lobby client (started or dropped).
    Gone,
}

/// Lobby-wide settings.
#[derive(Debug, Clone)]
pub struct LobbyConfig {
    /// Most logged-in users at once; a login beyond it is refused.
    pub capacity: usize,
    /// Flood control: commands per second (0 = off) and burst.
    pub flood_rate: u32,
    pub flood_burst: u32,
}

impl Default for LobbyConfig {
    fn default() -> Self {
        LobbyConfig {
            capacity: 50,
            flood_rate: 5,
            flood_burst: 10,
        }
    }
}

#[derive(Debug, Default)]
pub struct Lobby {
    config: LobbyConfig,
    clients: Clients,
    rooms: Rooms,
    pub stats: Stats,
    /// Set by the server before a frame when no more games may start (its
    /// session caps): the text the players are told instead of a start.
    start_refusal: Option<String>,
    /// `--ban-file`: names refused at GREETINGS (the server sets it).
    pub bans: crate::ops::bans::BanList,
    /// `--motd-file`: System lines after each login (the server sets it).
    pub motd: crate::ops::motd::Motd,
}

impl Lobby {
    pub fn new(config: LobbyConfig) -> Self {
        Lobby {
            config,
            ..Default::default()
        }
    }

    /// Logged-in users.
    pub fn users(&self) -> usize {
        self.clients.authed_count()
    }

    /// Whether rooms may start during the next frames: `None` lets them,
    /// `Some(text)` refuses each start with `:>>ERROR:{text}` to its players.
    pub fn set_start_gate(&mut self, refusal: Option<String>) {
        self.start_refusal = refusal;
    }

    /// Lobby connections, logged in or not.
    pub fn connections(&self) -> usize {
        self.clients.len()
    }

    /// Rooms that have not started.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_registered(&self, id: ClientId) -> bool {
        self.clients.contains(id)
    }

    /// Protocol version of a registered client.
    pub fn protocol(&self, id: ClientId) -> Option<Protocol> {
        self.clients.protocol(id)
    }

    /// Whether the client has logged in.
    pub fn is_authed(&self, id: ClientId) -> bool {
        self.clients.get(id).is_some_and(|c| c.is_authed())
    }

    /// Whether the server should send this client HEALTH and drop it when
    /// it stops answering (§11): logged in, with a launcher that knows it.
    pub fn is_health_checked(&self, id: ClientId) -> bool {
        self.clients
            .get(id)
            .is_some_and(|c| c.is_authed() && c.protocol().has_healthcheck())
    }

    /// A connection whose first frame was a valid lobby header. A second
    /// registration of a registered id is ignored.
    pub fn register(&mut self, id: ClientId, protocol: impl Into<Protocol>) {
        self.clients.register(id, protocol.into());
    }

    /// Runs every command of one decoded frame, in order. `now` feeds the
    /// flood control; `counters` are the server's, for the welcome line and
    /// ROOT.
    pub fn handle_frame(
        &mut self,
        id: ClientId,
        text: &str,
        now: Instant,
        counters: &ServerCounters,
        out: &mut Outbox,
    ) {
        for cmd in Commands::new(text) {
            if !self.clients.contains(id) {
                return;
            }
            let cmd = match cmd {
                Ok(cmd) => cmd,
                Err(e) => {
                    log::debug!("incorrect message from client {id} ({e:?}): {text:?}");
                    return;
                }
            };
            if !self.flood_allows(id, cmd.tag, now, out) {
                return;
            }
            match self.dispatch(id, cmd, now, counters, out) {
                Flow::Continue => {}
                Flow::Abort | Flow::Gone => return,
            }
        }
    }

    fn dispatch(
        &mut self,
        id: ClientId,
        cmd: Command<'_>,
        now: Instant,
        counters: &ServerCounters,
        out: &mut Outbox,
    ) -> Flow {
        if cmd.tag == "GREETINGS" {
            return self.greetings(id, cmd.value, counters, out);
        }
        if !self.is_authed(id) {
            return Flow::Continue;
        }
        match cmd.tag {
            "VER" => self.version(id, cmd.value, now),
            "MSG" => self.chat(id, cmd.value, out),
            "NEW" => self.new_room(id, cmd.value, out),
            "PSWD" => self.password(id, cmd.value, out),
            "COUNT" => self.count(id, cmd.value, out),
            "JOIN" => self.join(id, cmd.value, out),
            "MODS" => self.mods(id, cmd.value, out),
            "LEAVE" => self.leave(id, cmd.value, out),
            "KICK" => self.kick(id, cmd.value, out),
            "READY" => self.ready(id, cmd.value, out),
            "FORCESTART" => self.force_start(id, cmd.value, out),
            "HOSTMODE" => self.host_mode(id, cmd.value, out),
            "CHANNEL" => self.channel(id, cmd.value, out),
            "HERE" => self.here(id, out),
            "ROOT" => self.root(id, cmd.value, now, counters, out),
            // ALIVE only proves liveness, which the event loop already noted
            // when the frame arrived; USER was never implemented anywhere.
            _ => Flow::Continue,
        }
    }

    /// Closes a client the way the reference's unhandled exceptions did
    /// (D12): normal disconnect cleanup, no error message.
    fn drop_client(&mut self, id: ClientId, why: String, out: &mut Outbox) -> Flow {
        log::warn!("[!] dropping client {id}: {why}");
        self.disconnect(id, out);
        out.close(id, CloseReason::Dropped(why));
        Flow::Gone
    }

    /// The connection is gone (EOF, error, or dropped by the server): §8.6
    /// cleanup. A client already forgotten (started) is ignored.
    pub fn disconnect(&mut self, id: ClientId, out: &mut Outbox) {
        let was_member = self.member_room(id);
        let Some(c) = self.clients.remove(id) else {
            return;
        };
        if let Some(key) = was_member {
            match self.rooms.get(key) {
                // the host is forgotten already: only the guests get KICK
                Some(room) if room.host() == id => self.destroy_room(key, out),
                Some(room) => {
                    let name = room.name().to_string();
                    let rest: Vec<_> = room.players().filter(|p| *p != id).collect();
                    // D6 fix: the reference meant to send this and failed
                    out.broadcast(rest, format!(":>>KICK:{name}:{}", c.name()));
                    self.remove_guest(key, id);
                    log::info!("[R {name}] {} left (disconnected)", c.name());
                    self.broadcast_status(key, out);
                }
                None => {}
            }
            self.broadcast_sessions(out);
        }
        self.broadcast_users(out);
    }
}

#[cfg(test)]
mod tests;

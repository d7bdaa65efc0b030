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

mod command;
mod messages;
mod outbox;

pub use command::{Command, Commands, Malformed};
pub use outbox::{CloseReason, List, Outbox, StartedSession};

use crate::text::{is_valid_username, parse_py_int};
use messages::py_bool;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

/// The event loop's handle for a connection (its slab key).
pub type ClientId = usize;

/// Chat channel of a protocol-5 client (§6.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Global,
    Room,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Global => "global",
            Channel::Room => "room",
        }
    }
}

/// One lobby connection's state (§16.2).
#[derive(Debug)]
struct Client {
    /// Registration order; USERS lists clients in this order.
    seq: u64,
    protocol: u8,
    authed: bool,
    name: String,
    version: String,
    /// Set by NEW and JOIN; a JOIN without PSWD leaves it set without
    /// membership ("half-joined").
    joined: bool,
    room: String,
    ready: bool,
    channel: Channel,
    flood: TokenBucket,
}

/// Flood control: each chat or room command takes a token; tokens come back
/// at `rate` per second up to `burst`. Generous enough that no human using a
/// launcher ever meets it.
#[derive(Debug, Clone)]
struct TokenBucket {
    tokens: f64,
    at: Option<Instant>,
    /// A drop was already reported in the current burst.
    warned: bool,
}

impl TokenBucket {
    fn take(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let elapsed = self.at.map_or(f64::INFINITY, |at| {
            now.saturating_duration_since(at).as_secs_f64()
        });
        self.tokens = (self.tokens + elapsed * rate as f64).min(burst as f64);
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.warned = false;
            true
        } else {
            false
        }
    }
}

/// Commands that cost a flood token: what a person does with a click or a
/// chat line, and MODS, whose answer lists every mod of the room. The values
/// that follow in the same frame (VER, PSWD, COUNT), ALIVE and ROOT (a
/// one-line answer, used by operators' scripts) are free.
fn costs_token(tag: &str) -> bool {
    matches!(
        tag,
        "GREETINGS"
            | "MSG"
            | "NEW"
            | "JOIN"
            | "LEAVE"
            | "READY"
            | "KICK"
            | "FORCESTART"
            | "HOSTMODE"
            | "CHANNEL"
            | "HERE"
            | "MODS"
    )
}

#[derive(Debug)]
struct Room {
    name: String,
    /// Members, host first.
    players: Vec<ClientId>,
    /// 1 until COUNT arrives, which makes the room look full.
    total: u32,
    password: String,
    protected: bool,
    /// Insertion-ordered; later values for a name overwrite in place.
    mods: Vec<(String, String)>,
    gamemode: String,
}

impl Room {
    fn host(&self) -> ClientId {
        self.players[0]
    }
}

/// Cumulative counters reported by ROOT (§6.16).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub uniques: u64,
    pub logins: u64,
    /// Hashes of every name that ever logged in (hashes: a stream of long
    /// random names must not grow memory by their length; capped).
    pub users: HashSet<u64>,
    pub rooms: u64,
    pub sessions: u64,
    /// Commands dropped by flood control.
    pub flood_drops: u64,
    /// Logins refused because the lobby was full.
    pub capacity_refusals: u64,
}

/// From this many logged-in users on, the lobby counts as large: the event
/// loop coalesces and rate-limits USERS/SESSIONS refreshes (each one lists
/// everybody, so a login storm would cost O(N²) bytes), and the "X is here"
/// chat line for VCMI 1.1 users is no longer sent (in a lobby that size it
/// is only noise, and it too would cost O(N²)). Below it every message is
/// exactly the reference's, as the conformance transcripts record.
pub const LARGE_LOBBY: usize = 64;

/// Distinct mods a room remembers; real mod lists are well below this.
const MAX_ROOM_MODS: usize = 512;
/// ... and their total text, which every MODS answer repeats.
const MAX_ROOM_MODS_BYTES: usize = 16 * 1024;

/// Names remembered for the `users` statistic before it stops growing.
const MAX_TRACKED_NAMES: usize = 1_000_000;

fn name_hash(name: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(name)
}

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
    clients: HashMap<ClientId, Client>,
    /// Registration order → client, for USERS.
    order: BTreeMap<u64, ClientId>,
    next_seq: u64,
    /// Logged-in names, for uniqueness and `@name` messages.
    names: HashMap<String, ClientId>,
    /// Creation order → room, for SESSIONS.
    rooms: BTreeMap<u64, Room>,
    room_names: HashMap<String, u64>,
    authed_count: usize,
    /// Open game pipe connections, kept by the relay ("currently playing").
    pub pipes_open: usize,
    pub stats: Stats,
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
        self.authed_count
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
        self.clients.contains_key(&id)
    }

    /// Protocol version of a registered client.
    pub fn protocol(&self, id: ClientId) -> Option<u8> {
        self.clients.get(&id).map(|c| c.protocol)
    }

    /// Whether the client has logged in.
    pub fn is_authed(&self, id: ClientId) -> bool {
        self.clients.get(&id).is_some_and(|c| c.authed)
    }

    /// A connection whose first frame was a valid lobby header.
    pub fn register(&mut self, id: ClientId, protocol: u8) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, id);
        self.clients.insert(
            id,
            Client {
                seq,
                protocol,
                authed: false,
                name: String::new(),
                version: String::new(),
                joined: false,
                room: String::new(),
                ready: false,
                channel: Channel::Global,
                flood: TokenBucket {
                    tokens: 0.0,
                    at: None,
                    warned: false,
                },
            },
        );
    }

    /// Runs every command of one decoded frame, in order. `now` feeds the
    /// flood control.
    pub fn handle_frame(&mut self, id: ClientId, text: &str, now: Instant, out: &mut Outbox) {
        for cmd in Commands::new(text) {
            let Some(c) = self.clients.get_mut(&id) else {
                return;
            };
            let cmd = match cmd {
                Ok(cmd) => cmd,
                Err(e) => {
                    log::debug!("incorrect message from client {id} ({e:?}): {text:?}");
                    return;
                }
            };
            if costs_token(cmd.tag)
                && !c
                    .flood
                    .take(now, self.config.flood_rate, self.config.flood_burst)
            {
                self.stats.flood_drops += 1;
                if !std::mem::replace(&mut c.flood.warned, true) {
                    log::warn!("[!] flood from client {id} ({}): commands dropped", c.name);
                    out.send(
                        id,
                        ":>>ERROR:You are sending too fast. Some of your messages were dropped"
                            .into(),
                    );
                }
                return;
            }
            match self.dispatch(id, cmd, out) {
                Flow::Continue => {}
                Flow::Abort | Flow::Gone => return,
            }
        }
    }

    fn dispatch(&mut self, id: ClientId, cmd: Command<'_>, out: &mut Outbox) -> Flow {
        if cmd.tag == "GREETINGS" {
            return self.greetings(id, cmd.value, out);
        }
        if !self.is_authed(id) {
            return Flow::Continue;
        }
        match cmd.tag {
            "VER" => {
                if let Some(c) = self.clients.get_mut(&id) {
                    c.version = cmd.value.to_string();
                    log::info!("[*] User {} has version {}", c.name, c.version);
                }
                Flow::Continue
            }
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
            "ROOT" => self.root(id, cmd.value, out),
            // ALIVE only proves liveness, which the event loop already noted
            // when the frame arrived; USER was never implemented anywhere.
            _ => Flow::Continue,
        }
    }

    // ---- recipients -------------------------------------------------------

    /// Every lobby connection, logged in or not, in registration order (the
    /// reference's S-filter; D33 replicated).
    fn all_ids(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.order.values().copied()
    }

    /// Logged-in lobby connections (the B-filter).
    fn authed_ids(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.all_ids().filter(|id| self.clients[id].authed)
    }

    fn name(&self, id: ClientId) -> &str {
        self.clients.get(&id).map_or("", |c| c.name.as_str())
    }

    fn room_of(&self, id: ClientId) -> Option<u64> {
        let c = self.clients.get(&id)?;
        if !c.joined {
            return None;
        }
        self.room_names.get(&c.room).copied()
    }

    /// The room the client is a member of (not merely half-joined). Found by
    /// name, whatever the joined flag says, so a member can never be left
    /// behind in a room when its connection goes.
    fn member_room(&self, id: ClientId) -> Option<u64> {
        let c = self.clients.get(&id)?;
        let key = *self.room_names.get(&c.room)?;
        self.rooms[&key].players.contains(&id).then_some(key)
    }

    // ---- list messages ----------------------------------------------------

    /// `:>>SESSIONS:…` for the current rooms.
    pub fn sessions_msg(&self) -> String {
        let mut m = format!(":>>SESSIONS:{}", self.rooms.len());
        for r in self.rooms.values() {
            m.push(':');
            m.push_str(&r.name);
            m.push_str(&format!(
                ":{}:{}:{}",
                r.players.len(),
                r.total,
                py_bool(r.protected)
            ));
        }
        m
    }

    /// `:>>USERS:…` for the current lobby connections.
    pub fn users_msg(&self) -> String {
        let mut m = format!(":>>USERS:{}", self.clients.len());
        for id in self.all_ids() {
            m.push(':');
            m.push_str(self.name(id));
        }
        m
    }

    fn status_msg(&self, room: &Room) -> String {
        let mut m = format!(":>>STATUS:{}", room.players.len());
        for p in &room.players {
            let c = &self.clients[p];
            m.push(':');
            m.push_str(&c.name);
            m.push(':');
            m.push_str(py_bool(c.ready));
        }
        m
    }

    fn mods_msg(room: &Room) -> String {
        let mut m = format!(":>>MODS:{}", room.mods.len());
        for (name, version) in &room.mods {
            m.push(':');
            m.push_str(name);
            m.push(':');
            m.push_str(version);
        }
        m
    }

    /// Sends a full list to `to`: at once and exactly as the reference in
    /// small lobbies; in large ones it is owed, and the event loop delivers
    /// the latest (without building it here once per event).
    fn send_list(&self, to: Vec<ClientId>, list: List, out: &mut Outbox) {
        if to.is_empty() {
            return;
        }
        if self.authed_count >= LARGE_LOBBY {
            return out.owe(to, list);
        }
        let text = match list {
            List::Users => self.users_msg(),
            List::Sessions => self.sessions_msg(),
        };
        out.broadcast(to, text);
    }

    fn broadcast_sessions(&self, out: &mut Outbox) {
        self.send_list(self.all_ids().collect(), List::Sessions, out);
    }

    fn broadcast_status(&self, key: u64, out: &mut Outbox) {
        let room = &self.rooms[&key];
        out.broadcast(room.players.clone(), self.status_msg(room));
    }

    /// USERS to logged-in protocol ≥ 4 clients.
    fn broadcast_users_authed(&self, out: &mut Outbox) {
        let to: Vec<_> = self
            .authed_ids()
            .filter(|id| self.clients[id].protocol >= 4)
            .collect();
        self.send_list(to, List::Users, out);
    }

    // ---- GREETINGS ---------------------------------------------------------

    fn greetings(&mut self, id: ClientId, name: &str, out: &mut Outbox) -> Flow {
        let c = &self.clients[&id];
        if c.authed {
            out.send(id, ":>>ERROR:User already authorized".into());
            log::error!("[!] greetings from authorised user {}", c.name);
            return Flow::Abort;
        }
        let error = if name.chars().count() < 3 {
            Some(format!("Too short username {name}"))
        } else if matches!(name, "System" | "all" | "room") {
            Some(format!("Username {name} is reserved by system"))
        } else if !is_valid_username(name) {
            Some("Invalid username".to_string())
        } else if self.names.contains_key(name) {
            Some(format!(
                "Can't connect with the name {name}. This login is already occpupied"
            ))
        } else {
            None
        };
        if let Some(e) = error {
            log::warn!("[!] client {id} refused as {name:?}: {e}");
            out.send(id, format!(":>>ERROR:{e}"));
            return Flow::Abort;
        }
        if self.authed_count >= self.config.capacity {
            self.stats.capacity_refusals += 1;
            log::warn!(
                "[!] client {id} refused as {name}: lobby full ({} users)",
                self.authed_count
            );
            out.send(
                id,
                format!(
                    ":>>ERROR:The lobby is full ({} players). Please try again later",
                    self.config.capacity
                ),
            );
            self.disconnect(id, out);
            out.close(id, CloseReason::Refused("lobby full".into()));
            return Flow::Gone;
        }

        let protocol = c.protocol;
        if let Some(c) = self.clients.get_mut(&id) {
            c.name = name.to_string();
        }
        if self.stats.users.len() < MAX_TRACKED_NAMES {
            self.stats.users.insert(name_hash(name));
        }
        if self.authed_count < LARGE_LOBBY {
            let old: Vec<_> = self
                .authed_ids()
                .filter(|i| self.clients[i].protocol < 4)
                .collect();
            out.broadcast(old, format!(":>>MSG:System:{name} is here"));
        }
        let new: Vec<_> = self
            .all_ids()
            .filter(|i| self.clients[i].protocol >= 4)
            .collect();
        self.send_list(new, List::Users, out);
        if let Some(c) = self.clients.get_mut(&id) {
            c.authed = true;
            c.channel = Channel::Global;
        }
        self.authed_count += 1;
        self.names.insert(name.to_string(), id);
        self.send_list(vec![id], List::Sessions, out);
        if protocol >= 4 {
            self.send_list(vec![id], List::Users, out);
        }
        let mut welcome = format!(
            ":>>MSG:System:Here available {} users, currently playing {}",
            self.authed_count - 1,
            self.pipes_open
        );
        if protocol < 4 {
            welcome.push_str("\n Send <HERE> to see people names in the chat");
        }
        out.send(id, welcome);
        log::info!("[*] client {id} autorized as {name} (protocol {protocol})");
        Flow::Continue
    }

    // ---- chat ---------------------------------------------------------------

    fn chat(&mut self, id: ClientId, text: &str, out: &mut Outbox) -> Flow {
        if let Some(rest) = text.strip_prefix('@') {
            let (target, body) = rest.split_once(' ').unwrap_or((rest, ""));
            if !target.is_empty() {
                return self.direct_message(id, target, body, out);
            }
        }
        let sender = &self.clients[&id];
        let ch = sender.channel;
        let to: Vec<ClientId> = match (ch, self.member_room(id)) {
            (Channel::Global, _) => self.authed_ids().collect(),
            (Channel::Room, Some(key)) => self.rooms[&key].players.clone(),
            // D22, replicated: outside a room the room channel reaches every
            // client in the room channel, whatever room they are in.
            (Channel::Room, None) => self
                .authed_ids()
                .filter(|i| self.clients[i].channel == Channel::Room)
                .collect(),
        };
        self.send_chat(id, &to, |_| ch, text, out);
        Flow::Continue
    }

    /// Delivers a chat line in each recipient's own format (D3 fix):
    /// `MSGCH:user:channel:text` to protocol 5, `MSG:user:text` to older.
    fn send_chat(
        &self,
        from: ClientId,
        to: &[ClientId],
        channel_for: impl Fn(ClientId) -> Channel,
        text: &str,
        out: &mut Outbox,
    ) {
        let user = self.name(from);
        let (new, old): (Vec<ClientId>, Vec<ClientId>) =
            to.iter().partition(|i| self.clients[i].protocol >= 5);
        out.broadcast(old, format!(":>>MSG:{user}:{text}"));
        // group protocol-5 recipients by channel so each line is built once
        for ch in [Channel::Global, Channel::Room] {
            let group: Vec<ClientId> = new
                .iter()
                .copied()
                .filter(|i| channel_for(*i) == ch)
                .collect();
            out.broadcast(group, format!(":>>MSGCH:{user}:{}:{text}", ch.as_str()));
        }
    }

    /// `@name text` (the 0.3.4–0.5.8 feature the seed README documents):
    /// only `name` and the sender see it; `@all` reaches everybody. Unlike the
    /// reference (D23) a message to oneself arrives once and an unknown name
    /// is an error to the sender rather than a public broadcast. Protocol-5
    /// recipients get it in the channel they are looking at, so it shows up
    /// in the 1.4 launcher's visible pane.
    fn direct_message(&mut self, id: ClientId, target: &str, body: &str, out: &mut Outbox) -> Flow {
        let own = |lobby: &Lobby, i: ClientId| lobby.clients[&i].channel;
        if target == "all" {
            let to: Vec<_> = self.authed_ids().collect();
            self.send_chat(id, &to, |_| Channel::Global, body, out);
            return Flow::Continue;
        }
        let Some(&peer) = self.names.get(target) else {
            out.send(
                id,
                format!(":>>ERROR:User {target} is not in the lobby, message not sent"),
            );
            return Flow::Continue;
        };
        let to: Vec<ClientId> = if peer == id { vec![id] } else { vec![peer, id] };
        self.send_chat(id, &to, |i| own(self, i), body, out);
        Flow::Continue
    }

    fn channel(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let ch = match value {
            "global" => Channel::Global,
            "room" => Channel::Room,
            _ => {
                // D4: the reference answers with NEW's text; replicated.
                out.send(
                    id,
                    format!(
                        ":>>ERROR:Cannot create session with name {}, session with this name already exists",
                        value
                    ),
                );
                return Flow::Abort;
            }
        };
        let Some(c) = self.clients.get_mut(&id) else {
            return Flow::Gone;
        };
        if c.channel == ch {
            return Flow::Abort;
        }
        c.channel = ch;
        out.send(id, format!(":>>CHANNEL:{value}"));
        Flow::Continue
    }

    fn here(&mut self, id: ClientId, out: &mut Outbox) -> Flow {
        let c = &self.clients[&id];
        if c.protocol >= 4 {
            out.send(id, self.users_msg());
            return Flow::Continue;
        }
        let ch = c.channel;
        let mut m = String::from(":>>MSG:System:People in lobby");
        for i in self.authed_ids() {
            let o = &self.clients[&i];
            if o.channel != ch {
                continue;
            }
            m.push('\n');
            m.push_str(&o.name);
            if o.joined {
                m.push_str("[room ");
                m.push_str(&o.room);
                m.push(']');
            }
        }
        out.send(id, m);
        Flow::Continue
    }

    fn root(&mut self, id: ClientId, key: &str, out: &mut Outbox) -> Flow {
        let s = &self.stats;
        let value = match key {
            "uniques" => s.uniques,
            "users" => s.users.len() as u64,
            "logins" => s.logins,
            // D5: never counted since the reference's rework; replicated.
            "clients" | "connections" => 0,
            "rooms" => s.rooms,
            "sessions" => s.sessions,
            _ => return Flow::Continue,
        };
        log::warn!("[!] ROOT {key} asked by {}", self.name(id));
        out.send(id, format!(":>>MSG:System:{value}"));
        Flow::Continue
    }

    // ---- rooms ----------------------------------------------------------------

    fn new_room(&mut self, id: ClientId, name: &str, out: &mut Outbox) -> Flow {
        if self.clients[&id].joined {
            return Flow::Continue; // D21: the PSWD/COUNT that follow still act
        }
        if self.room_names.contains_key(name) {
            out.send(
                id,
                format!(
                    ":>>ERROR:Cannot create session with name {name}, session with this name already exists"
                ),
            );
            return Flow::Abort;
        }
        // D11 fix: a ':' would shift every field of SESSIONS for everybody.
        if name.is_empty()
            || name.starts_with(' ')
            || name.chars().count() < 3
            || name.contains(':')
        {
            out.send(
                id,
                format!(":>>ERROR:Cannot create session with invalid name {}", name),
            );
            return Flow::Abort;
        }
        let key = self.next_seq;
        self.next_seq += 1;
        self.rooms.insert(
            key,
            Room {
                name: name.to_string(),
                players: vec![id],
                total: 1,
                password: String::new(),
                protected: false,
                mods: Vec::new(),
                gamemode: "0".into(),
            },
        );
        self.room_names.insert(name.to_string(), key);
        self.stats.rooms += 1;
        if let Some(c) = self.clients.get_mut(&id) {
            c.joined = true;
            c.ready = false;
            c.room = name.to_string();
        }
        log::info!("[R {name}]: room created by {}", self.name(id));
        Flow::Continue
    }

    /// Resets a half-joined client whose room is gone (D19 fix).
    fn forget_missing_room(&mut self, id: ClientId) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.joined = false;
        }
    }

    fn password(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        if !self.clients[&id].joined {
            return Flow::Continue;
        }
        let Some(key) = self.room_of(id) else {
            self.forget_missing_room(id);
            return Flow::Continue;
        };
        let room = self
            .rooms
            .get_mut(&key)
            .expect("room_of returns live rooms");
        if room.host() == id {
            room.password = value.to_string();
            room.protected = !value.is_empty();
            return Flow::Continue;
        }
        if room.players.contains(&id) {
            // D10 fix: a second join of the room one is in does nothing (and
            // a wrong password cannot leave a member flagged as not joined)
            return Flow::Abort;
        }
        if room.protected && value != room.password {
            if let Some(c) = self.clients.get_mut(&id) {
                c.joined = false;
            }
            out.send(id, ":>>ERROR:Incorrect password".into());
            return Flow::Abort;
        }
        if room.players.len() >= room.total as usize {
            // D10 fix: the room filled up between JOIN and PSWD
            let name = room.name.clone();
            if let Some(c) = self.clients.get_mut(&id) {
                c.joined = false;
            }
            out.send(id, format!(":>>ERROR:Room {name} is full"));
            return Flow::Abort;
        }
        room.players.push(id);
        let room_name = room.name.clone();
        let gamemode = room.gamemode.clone();
        let host = room.host();
        let user = self.name(id).to_string();
        log::info!("[R {room_name}] {user} joined");
        let players = self.rooms[&key].players.clone();
        out.broadcast(players, format!(":>>JOIN:{room_name}:{user}"));
        self.broadcast_status(key, out);
        self.broadcast_sessions(out);
        let c = &self.clients[&id];
        if c.protocol >= 4 {
            out.send(id, format!(":>>GAMEMODE:{gamemode}"));
        }
        if c.protocol <= 4 {
            out.send(id, ":>>MSG:System:You are in the room chat.".into());
        }
        let host_version = &self.clients[&host].version;
        if c.version != *host_version {
            let m = format!(
                "Your VCMI version {} differs from host version {}, which may cause problems",
                c.version, host_version
            );
            out.send(id, format!(":>>MSG:System:{m}"));
        }
        Flow::Continue
    }

    fn count(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let Some(key) = self.room_of(id) else {
            if self.clients[&id].joined {
                self.forget_missing_room(id);
            }
            return Flow::Continue;
        };
        let room = &self.rooms[&key];
        if room.host() != id {
            return Flow::Continue;
        }
        if room.total != 1 {
            out.send(
                id,
                ":>>ERROR:Changing amount of players is not possible for existing session".into(),
            );
            return Flow::Abort;
        }
        let Some(n) = parse_py_int(value) else {
            return self.drop_client(id, format!("COUNT is not an integer: {value:?}"), out);
        };
        let n = n.to_i64().unwrap_or(i64::MAX);
        if !(2..=8).contains(&n) {
            self.destroy_room(key, None, out);
            out.send(
                id,
                ":>>ERROR:Cannot create room with invalid amount of players".into(),
            );
            return Flow::Abort;
        }
        let room = self.rooms.get_mut(&key).expect("checked above");
        room.total = n as u32;
        let name = room.name.clone();
        let user = self.name(id).to_string();
        out.send(id, format!(":>>CREATED:{name}"));
        out.send(id, format!(":>>JOIN:{name}:{user}"));
        self.broadcast_status(key, out);
        self.broadcast_sessions(out);
        out.send(id, ":>>MSG:System:You are in the room chat.".into());
        Flow::Continue
    }

    fn join(&mut self, id: ClientId, name: &str, out: &mut Outbox) -> Flow {
        if self.clients[&id].joined {
            return Flow::Continue;
        }
        let Some(room) = self.room_names.get(name).map(|k| &self.rooms[k]) else {
            out.send(id, format!(":>>ERROR:Room with name {name} doesn't exist"));
            return Flow::Abort;
        };
        if room.players.len() >= room.total as usize {
            out.send(id, format!(":>>ERROR:Room {name} is full"));
            return Flow::Abort;
        }
        if let Some(c) = self.clients.get_mut(&id) {
            c.joined = true;
            c.ready = false;
            c.room = name.to_string();
        }
        Flow::Continue
    }

    fn mods(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let Some(key) = self.room_of(id) else {
            return Flow::Continue;
        };
        let items: Vec<&str> = value.split(';').collect();
        let room = self
            .rooms
            .get_mut(&key)
            .expect("room_of returns live rooms");
        let host = room.host();
        if host == id {
            for item in &items {
                let (name, version) = item.split_once('&').unwrap_or((item, ""));
                let full = room.mods.len() >= MAX_ROOM_MODS
                    || room
                        .mods
                        .iter()
                        .map(|(n, v)| n.len() + v.len())
                        .sum::<usize>()
                        + item.len()
                        > MAX_ROOM_MODS_BYTES;
                match room.mods.iter_mut().find(|(n, _)| n == name) {
                    Some(m) => m.1 = version.to_string(),
                    // mods are never cleared (D9): cap them so a host
                    // repeating MODS cannot grow the room without bound
                    None if full => {}
                    None => room.mods.push((name.to_string(), version.to_string())),
                }
            }
        }
        out.send(id, Self::mods_msg(&self.rooms[&key]));
        if self.clients[&host].protocol >= 3 {
            let payload = items.join(":").replace('&', ":");
            let m = format!("MODSOTHER:{}:{}:{payload}", self.name(id), items.len());
            out.send(host, format!(":>>{m}"));
        }
        Flow::Continue
    }

    /// Sends each member a KICK naming himself and removes the room. The
    /// caller decides whether SESSIONS follows (an invalid COUNT sends none).
    fn destroy_room(&mut self, key: u64, skip: Option<ClientId>, out: &mut Outbox) {
        let Some(room) = self.rooms.remove(&key) else {
            return;
        };
        self.room_names.remove(&room.name);
        log::info!("[R {}]: Destroying room", room.name);
        for p in room.players {
            if let Some(c) = self.clients.get_mut(&p) {
                c.joined = false;
                if Some(p) != skip {
                    out.send(p, format!(":>>KICK:{}:{}", room.name, c.name));
                }
            }
        }
    }

    /// Removes a guest from its room and tells the rest (shared by LEAVE,
    /// KICK and disconnects).
    fn remove_member(&mut self, key: u64, who: ClientId) {
        if let Some(room) = self.rooms.get_mut(&key) {
            room.players.retain(|p| *p != who);
        }
        if let Some(c) = self.clients.get_mut(&who) {
            c.joined = false;
        }
    }

    fn leave(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let c = &self.clients[&id];
        if !c.joined || c.room != value {
            return Flow::Continue;
        }
        let Some(key) = self.member_room(id) else {
            self.forget_missing_room(id); // D19: half-joined, nothing to leave
            return Flow::Continue;
        };
        let room = &self.rooms[&key];
        if room.host() == id {
            self.destroy_room(key, None, out);
            self.broadcast_sessions(out);
            return Flow::Continue;
        }
        let name = room.name.clone();
        let user = self.name(id).to_string();
        out.broadcast(room.players.clone(), format!(":>>KICK:{name}:{user}"));
        self.remove_member(key, id);
        for p in self.rooms[&key].players.clone() {
            if let Some(c) = self.clients.get_mut(&p) {
                c.ready = false;
            }
        }
        log::info!("[R {name}] {user} left");
        self.broadcast_status(key, out);
        self.broadcast_sessions(out);
        Flow::Continue
    }

    /// Host-only commands answer a guest with this error.
    fn require_host(&self, id: ClientId, key: u64, out: &mut Outbox) -> bool {
        if self.rooms[&key].host() == id {
            return true;
        }
        out.send(id, ":>>ERROR:Insuficcient permissions".into());
        false
    }

    fn kick(&mut self, id: ClientId, victim_name: &str, out: &mut Outbox) -> Flow {
        let Some(key) = self.member_room(id) else {
            return Flow::Continue;
        };
        if !self.require_host(id, key, out) {
            return Flow::Abort;
        }
        let room = &self.rooms[&key];
        let Some(victim) = room.players[1..]
            .iter()
            .copied()
            .find(|p| self.clients[p].name == victim_name)
        else {
            return Flow::Continue;
        };
        let name = room.name.clone();
        out.broadcast(
            room.players.clone(),
            format!(":>>KICK:{name}:{victim_name}"),
        );
        self.remove_member(key, victim);
        log::info!("[R {name}] {victim_name} was kicked");
        self.broadcast_status(key, out);
        if self.all_ready(key) {
            let flow = self.start_room(key, id, out);
            self.after_start(out);
            return flow;
        }
        self.broadcast_sessions(out);
        Flow::Continue
    }

    fn all_ready(&self, key: u64) -> bool {
        let room = &self.rooms[&key];
        room.players.len() >= 2 && room.players.iter().all(|p| self.clients[p].ready)
    }

    fn ready(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let c = &self.clients[&id];
        if !c.joined || c.room != value {
            return Flow::Continue;
        }
        let Some(key) = self.member_room(id) else {
            return Flow::Continue; // D19: half-joined users cannot start rooms
        };
        let protocol = c.protocol;
        if let Some(c) = self.clients.get_mut(&id) {
            c.ready = !c.ready;
        }
        self.broadcast_status(key, out);
        let host_start = protocol < 3 && self.rooms[&key].host() == id;
        if host_start || self.all_ready(key) {
            let flow = self.start_room(key, id, out);
            self.after_start(out);
            return flow;
        }
        Flow::Continue
    }

    fn force_start(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let c = &self.clients[&id];
        if !c.joined || c.room != value {
            return Flow::Continue;
        }
        let Some(key) = self.member_room(id) else {
            return Flow::Continue;
        };
        if !self.require_host(id, key, out) {
            return Flow::Abort;
        }
        let flow = self.start_room(key, id, out);
        self.stats.sessions += 1; // D5: counted twice, replicated
        self.after_start(out);
        flow
    }

    fn host_mode(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let Some(key) = self.room_of(id) else {
            return Flow::Continue;
        };
        if !self.require_host(id, key, out) {
            return Flow::Abort;
        }
        let Some(mode) = parse_py_int(value) else {
            return self.drop_client(id, format!("HOSTMODE is not an integer: {value:?}"), out);
        };
        let room = self
            .rooms
            .get_mut(&key)
            .expect("room_of returns live rooms");
        room.gamemode = mode.as_str().to_string();
        let m = format!(":>>GAMEMODE:{}", room.gamemode);
        out.broadcast(room.players.clone(), m);
        Flow::Continue
    }

    /// §8.3 start procedure, then D8 fix: every member's lobby socket is
    /// closed and the remaining users learn the new user list at once.
    fn start_room(&mut self, key: u64, actor: ClientId, out: &mut Outbox) -> Flow {
        let Some(room) = self.rooms.remove(&key) else {
            return Flow::Continue;
        };
        self.room_names.remove(&room.name);
        self.stats.sessions += 1;
        let host_uuid = uuid::Uuid::new_v4().to_string();
        out.send(
            room.host(),
            format!(":>>HOST:{host_uuid}:{}", room.players.len() - 1),
        );
        let mut client_uuids = Vec::with_capacity(room.players.len());
        for p in &room.players {
            let u = uuid::Uuid::new_v4().to_string();
            out.send(*p, format!(":>>START:{u}"));
            client_uuids.push(u);
        }
        log::info!(
            "[S {}] Starting for {} players",
            room.name,
            room.players.len()
        );
        log::debug!(
            "---- host: {host_uuid} connections {}",
            room.players.len() - 1
        );
        for p in &room.players {
            self.unregister(*p);
            out.close(*p, CloseReason::Started);
        }
        out.started(StartedSession {
            name: room.name,
            host_uuid,
            client_uuids,
        });
        // the caller follows up with after_start()
        if room.players.contains(&actor) {
            Flow::Gone
        } else {
            Flow::Continue
        }
    }

    // ---- leaving the lobby ----------------------------------------------------

    fn unregister(&mut self, id: ClientId) -> Option<Client> {
        let c = self.clients.remove(&id)?;
        self.order.remove(&c.seq);
        if c.authed {
            self.names.remove(&c.name);
            self.authed_count -= 1;
        }
        Some(c)
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
    /// cleanup. A client already unregistered (started) is ignored.
    pub fn disconnect(&mut self, id: ClientId, out: &mut Outbox) {
        let was_member = self.member_room(id);
        let Some(c) = self.unregister(id) else {
            return;
        };
        if let Some(key) = was_member {
            let room = &self.rooms[&key];
            if room.host() == id {
                self.destroy_room(key, Some(id), out);
            } else {
                let name = room.name.clone();
                let rest: Vec<_> = room.players.iter().copied().filter(|p| *p != id).collect();
                // D6 fix: the reference meant to send this and failed
                out.broadcast(rest, format!(":>>KICK:{name}:{}", c.name));
                self.remove_member(key, id);
                log::info!("[R {name}] {} left (disconnected)", c.name);
                self.broadcast_status(key, out);
            }
            self.broadcast_sessions(out);
        }
        self.broadcast_users_authed(out);
    }

    /// What the remaining users learn after a start (§8.5): the room is
    /// gone from SESSIONS, then the players are gone from USERS.
    fn after_start(&self, out: &mut Outbox) {
        self.broadcast_sessions(out);
        self.broadcast_users_authed(out);
    }
}

#[cfg(test)]
mod tests;

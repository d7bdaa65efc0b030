//! Room commands: NEW, PSWD, COUNT, JOIN, MODS, LEAVE, KICK, HOSTMODE
//! (§6.4–§6.9, §6.11, §6.12) and the destruction of a room. Starting one is
//! in `start.rs`; the room table itself in `rooms.rs`.

use super::rooms::{NameTaken, RoomKey};
use super::{ClientId, Flow, Lobby, Outbox};
use crate::legacy::text::parse_py_int;

impl Lobby {
    /// The room the client joined (or half-joined), if it still exists.
    pub(super) fn joined_room(&self, id: ClientId) -> Option<RoomKey> {
        let c = self.clients.get(id)?;
        if !c.joined {
            return None;
        }
        self.rooms.key_of(&c.room)
    }

    /// The room the client is a member of (not merely half-joined). Found by
    /// name, whatever the joined flag says, so a member can never be left
    /// behind in a room when its connection goes.
    pub(super) fn member_room(&self, id: ClientId) -> Option<RoomKey> {
        let c = self.clients.get(id)?;
        let key = self.rooms.key_of(&c.room)?;
        self.rooms.get(key)?.is_member(id).then_some(key)
    }

    /// NEW or JOIN: the client names its room (and is not ready in it);
    /// it is a member only once NEW or PSWD adds it to the room.
    fn mark_joined(&mut self, id: ClientId, room: &str) {
        if let Some(c) = self.clients.get_mut(id) {
            c.joined = true;
            c.ready = false;
            c.room = room.to_string();
        }
    }

    /// Clears the joined flag: the client left or lost its room, or, half
    /// joined, was refused or finds its room gone (D19 fix).
    fn clear_joined(&mut self, id: ClientId) {
        if let Some(c) = self.clients.get_mut(id) {
            c.joined = false;
        }
    }

    pub(super) fn new_room(&mut self, id: ClientId, name: &str, out: &mut Outbox) -> Flow {
        if self.clients.get(id).is_none_or(|c| c.joined) {
            return Flow::Continue; // D21: the PSWD/COUNT that follow still act
        }
        // D11 fix: a ':' would shift every field of SESSIONS for everybody.
        // (A name in use passed this check when it was created, so checking
        // it first answers exactly as the reference, which looked it up first.)
        let invalid = name.is_empty()
            || name.starts_with(' ')
            || name.chars().count() < 3
            || name.contains(':');
        if invalid {
            out.send(
                id,
                format!(":>>ERROR:Cannot create session with invalid name {}", name),
            );
            return Flow::Abort;
        }
        if let Err(NameTaken) = self.rooms.create(name, id) {
            out.send(
                id,
                format!(
                    ":>>ERROR:Cannot create session with name {name}, session with this name already exists"
                ),
            );
            return Flow::Abort;
        }
        self.stats.rooms += 1;
        self.mark_joined(id, name);
        log::info!("[R {name}]: room created by {}", self.clients.name(id));
        Flow::Continue
    }

    /// The host sets the room's password; a joiner gives it and, if right
    /// and there is room, becomes a member.
    pub(super) fn password(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        if self.clients.get(id).is_none_or(|c| !c.joined) {
            return Flow::Continue;
        }
        let Some((key, room)) = self
            .joined_room(id)
            .and_then(|key| Some((key, self.rooms.get_mut(key)?)))
        else {
            self.clear_joined(id);
            return Flow::Continue;
        };
        if room.host() == id {
            room.password = value.to_string();
            room.protected = !value.is_empty();
            return Flow::Continue;
        }
        if room.is_member(id) {
            // D10 fix: a second join of the room one is in does nothing (and
            // a wrong password cannot leave a member flagged as not joined)
            return Flow::Abort;
        }
        if room.protected && value != room.password {
            self.clear_joined(id);
            out.send(id, ":>>ERROR:Incorrect password".into());
            return Flow::Abort;
        }
        if room.is_full() {
            // D10 fix: the room filled up between JOIN and PSWD
            let error = format!(":>>ERROR:Room {} is full", room.name());
            self.clear_joined(id);
            out.send(id, error);
            return Flow::Abort;
        }
        room.add_guest(id);
        self.announce_guest(key, id, out);
        Flow::Continue
    }

    /// A guest just became a member: the room hears JOIN and STATUS, the
    /// lobby the new SESSIONS; the guest learns the game mode, that it is in
    /// the room chat, and whether its VCMI version differs from the host's.
    fn announce_guest(&self, key: RoomKey, id: ClientId, out: &mut Outbox) {
        let (Some(room), Some(c)) = (self.rooms.get(key), self.clients.get(id)) else {
            return;
        };
        log::info!("[R {}] {} joined", room.name(), c.name());
        let m = format!(":>>JOIN:{}:{}", room.name(), c.name());
        out.broadcast(room.players(), m);
        self.broadcast_status(key, out);
        self.broadcast_sessions(out);
        if c.protocol().gets_gamemode() {
            out.send(id, format!(":>>GAMEMODE:{}", room.gamemode));
        }
        if !c.protocol().has_channels() {
            out.send(id, ":>>MSG:System:You are in the room chat.".into());
        }
        let host_version = self.clients.get(room.host()).map(|h| h.version.as_str());
        if let Some(host_version) = host_version.filter(|v| *v != c.version) {
            let m = format!(
                "Your VCMI version {} differs from host version {host_version}, which may cause problems",
                c.version
            );
            out.send(id, format!(":>>MSG:System:{m}"));
        }
    }

    /// The host sets the number of players, which opens the room.
    pub(super) fn count(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let Some(key) = self.joined_room(id) else {
            self.clear_joined(id);
            return Flow::Continue;
        };
        let Some(room) = self.rooms.get(key) else {
            return Flow::Continue;
        };
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
            self.destroy_room(key, out);
            out.send(
                id,
                ":>>ERROR:Cannot create room with invalid amount of players".into(),
            );
            return Flow::Abort;
        }
        let Some(room) = self.rooms.get_mut(key) else {
            return Flow::Continue;
        };
        room.total = n as u32;
        let name = room.name().to_string();
        let user = self.clients.name(id);
        out.send(id, format!(":>>CREATED:{name}"));
        out.send(id, format!(":>>JOIN:{name}:{user}"));
        self.broadcast_status(key, out);
        self.broadcast_sessions(out);
        out.send(id, ":>>MSG:System:You are in the room chat.".into());
        Flow::Continue
    }

    /// Half-joins a room; the PSWD that follows makes the client a member.
    pub(super) fn join(&mut self, id: ClientId, name: &str, out: &mut Outbox) -> Flow {
        if self.clients.get(id).is_none_or(|c| c.joined) {
            return Flow::Continue;
        }
        let Some(room) = self.rooms.by_name(name) else {
            out.send(id, format!(":>>ERROR:Room with name {name} doesn't exist"));
            return Flow::Abort;
        };
        if room.is_full() {
            out.send(id, format!(":>>ERROR:Room {name} is full"));
            return Flow::Abort;
        }
        self.mark_joined(id, name);
        Flow::Continue
    }

    /// The host adds mods to the room; anyone joined gets the room's mods,
    /// and the host learns the sender's.
    pub(super) fn mods(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let Some(room) = self.joined_room(id).and_then(|key| self.rooms.get_mut(key)) else {
            return Flow::Continue;
        };
        let items: Vec<&str> = value.split(';').collect();
        let host = room.host();
        if host == id {
            room.merge_mods(&items);
        }
        out.send(id, Self::mods_msg(room));
        let host_gets_modsother = self
            .clients
            .protocol(host)
            .is_some_and(|p| p.gets_modsother());
        if host_gets_modsother {
            let payload = items.join(":").replace('&', ":");
            let m = format!(
                "MODSOTHER:{}:{}:{payload}",
                self.clients.name(id),
                items.len()
            );
            out.send(host, format!(":>>{m}"));
        }
        Flow::Continue
    }

    /// Sends each member still registered a KICK naming himself and removes
    /// the room. The caller decides whether SESSIONS follows (an invalid
    /// COUNT sends none).
    pub(super) fn destroy_room(&mut self, key: RoomKey, out: &mut Outbox) {
        let Some(room) = self.rooms.remove(key) else {
            return;
        };
        log::info!("[R {}]: Destroying room", room.name());
        for p in room.players() {
            if let Some(c) = self.clients.get_mut(p) {
                c.joined = false;
                out.send(p, format!(":>>KICK:{}:{}", room.name(), c.name()));
            }
        }
    }

    /// Takes a guest out of its room and clears its joined flag. Tells
    /// nobody: LEAVE, KICK and disconnects each send their own KICK first.
    pub(super) fn remove_guest(&mut self, key: RoomKey, who: ClientId) {
        if let Some(room) = self.rooms.get_mut(key) {
            room.remove_guest(who);
        }
        self.clear_joined(who);
    }

    pub(super) fn leave(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        if self.clients.get(id).is_none_or(|c| !c.is_joined_to(value)) {
            return Flow::Continue;
        }
        let Some((key, room)) = self
            .member_room(id)
            .and_then(|key| Some((key, self.rooms.get(key)?)))
        else {
            self.clear_joined(id); // D19: half-joined, nothing to leave
            return Flow::Continue;
        };
        if room.host() == id {
            self.destroy_room(key, out);
            self.broadcast_sessions(out);
            return Flow::Continue;
        }
        let name = room.name().to_string();
        let user = self.clients.name(id).to_string();
        out.broadcast(room.players(), format!(":>>KICK:{name}:{user}"));
        self.remove_guest(key, id);
        self.unready_all(key);
        log::info!("[R {name}] {user} left");
        self.broadcast_status(key, out);
        self.broadcast_sessions(out);
        Flow::Continue
    }

    /// Someone left: everybody who stays must confirm READY again.
    fn unready_all(&mut self, key: RoomKey) {
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        for p in room.players() {
            if let Some(c) = self.clients.get_mut(p) {
                c.ready = false;
            }
        }
    }

    /// Host-only commands answer a guest with this error.
    pub(super) fn require_host(&self, id: ClientId, key: RoomKey, out: &mut Outbox) -> bool {
        if self.rooms.get(key).is_some_and(|r| r.host() == id) {
            return true;
        }
        out.send(id, ":>>ERROR:Insuficcient permissions".into());
        false
    }

    pub(super) fn kick(&mut self, id: ClientId, victim_name: &str, out: &mut Outbox) -> Flow {
        let Some(key) = self.member_room(id) else {
            return Flow::Continue;
        };
        if !self.require_host(id, key, out) {
            return Flow::Abort;
        }
        let Some(room) = self.rooms.get(key) else {
            return Flow::Continue;
        };
        let victim = room.guests().iter().copied().find(|p| {
            self.clients
                .get(*p)
                .is_some_and(|c| c.name() == victim_name)
        });
        let Some(victim) = victim else {
            return Flow::Continue;
        };
        let name = room.name().to_string();
        out.broadcast(room.players(), format!(":>>KICK:{name}:{victim_name}"));
        self.remove_guest(key, victim);
        log::info!("[R {name}] {victim_name} was kicked");
        self.broadcast_status(key, out);
        if self.all_ready(key) {
            return self.start_room(key, id, out);
        }
        self.broadcast_sessions(out);
        Flow::Continue
    }

    pub(super) fn host_mode(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let Some(key) = self.joined_room(id) else {
            return Flow::Continue;
        };
        if !self.require_host(id, key, out) {
            return Flow::Abort;
        }
        let Some(mode) = parse_py_int(value) else {
            return self.drop_client(id, format!("HOSTMODE is not an integer: {value:?}"), out);
        };
        let Some(room) = self.rooms.get_mut(key) else {
            return Flow::Continue;
        };
        room.gamemode = mode.as_str().to_string();
        out.broadcast(room.players(), format!(":>>GAMEMODE:{}", room.gamemode));
        Flow::Continue
    }
}

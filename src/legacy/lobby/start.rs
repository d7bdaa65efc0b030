//! Getting a room going: READY (§6.13), FORCESTART (§6.14) and the start
//! procedure (§8.3, §8.5).

use super::rooms::RoomKey;
use super::{ClientId, CloseReason, Flow, Lobby, Outbox, StartedSession};

impl Lobby {
    /// At least two members, all ready.
    pub(super) fn all_ready(&self, key: RoomKey) -> bool {
        let Some(room) = self.rooms.get(key) else {
            return false;
        };
        room.player_count() >= 2
            && room
                .players()
                .all(|p| self.clients.get(p).is_some_and(|c| c.ready))
    }

    /// Toggles the member's ready flag; the room starts when all are ready
    /// (or, for launchers without the toggle, when the host says READY).
    pub(super) fn ready(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let Some(c) = self.clients.get(id) else {
            return Flow::Gone;
        };
        if !c.is_joined_to(value) {
            return Flow::Continue;
        }
        let protocol = c.protocol();
        let Some(key) = self.member_room(id) else {
            return Flow::Continue; // D19: half-joined users cannot start rooms
        };
        if let Some(c) = self.clients.get_mut(id) {
            c.ready = !c.ready;
        }
        self.broadcast_status(key, out);
        let host_start =
            !protocol.has_ready_toggle() && self.rooms.get(key).is_some_and(|r| r.host() == id);
        if host_start || self.all_ready(key) {
            return self.start_room(key, id, out);
        }
        Flow::Continue
    }

    pub(super) fn force_start(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        if self.clients.get(id).is_none_or(|c| !c.is_joined_to(value)) {
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
        flow
    }

    /// §8.3 start procedure, then the D8 fix: every member's lobby socket is
    /// closed. The remaining users learn at once (§8.5) that the room is
    /// gone from SESSIONS, then that the players are gone from USERS.
    /// `Gone` when the actor was one of the players.
    pub(super) fn start_room(&mut self, key: RoomKey, actor: ClientId, out: &mut Outbox) -> Flow {
        if let Some(why) = &self.start_refusal {
            // the server's session caps: the room stays, its players are told
            if let Some(room) = self.rooms.get(key) {
                log::warn!(
                    "[S {}] start refused for {}: {why}",
                    room.name(),
                    self.clients.name(actor)
                );
                out.broadcast(room.players(), format!(":>>ERROR:{why}"));
                self.stats.start_refusals += 1;
            }
            return Flow::Continue;
        }
        let Some(room) = self.rooms.remove(key) else {
            return Flow::Continue;
        };
        self.stats.sessions += 1;
        let connections = room.guests().len();
        let host_uuid = uuid::Uuid::new_v4().to_string();
        out.send(room.host(), format!(":>>HOST:{host_uuid}:{connections}"));
        let mut client_uuids = Vec::with_capacity(room.player_count());
        for p in room.players() {
            let u = uuid::Uuid::new_v4().to_string();
            out.send(p, format!(":>>START:{u}"));
            client_uuids.push(u);
        }
        log::info!(
            "[S {}] Starting for {} players",
            room.name(),
            room.player_count()
        );
        log::debug!("---- host: {host_uuid} connections {connections}");
        for p in room.players() {
            self.clients.remove(p);
            out.close(p, CloseReason::Started);
        }
        let actor_started = room.is_member(actor);
        out.started(StartedSession {
            name: room.name().to_string(),
            host_uuid,
            client_uuids,
        });
        self.broadcast_sessions(out);
        self.broadcast_users(out);
        if actor_started {
            Flow::Gone
        } else {
            Flow::Continue
        }
    }
}

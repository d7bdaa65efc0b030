//! The list messages — USERS, SESSIONS, STATUS, MODS (§7) — and how full
//! lists reach many clients: at once in a small lobby, owed and coalesced by
//! the event loop in a large one (see [`LARGE_LOBBY`]).

use super::messages::py_bool;
use super::rooms::{Room, RoomKey};
use super::{ClientId, List, Lobby, Outbox, LARGE_LOBBY};

impl Lobby {
    /// `:>>SESSIONS:…` for the current rooms.
    pub fn sessions_msg(&self) -> String {
        let mut m = format!(":>>SESSIONS:{}", self.rooms.len());
        for r in self.rooms.iter() {
            m.push(':');
            m.push_str(r.name());
            m.push_str(&format!(
                ":{}:{}:{}",
                r.player_count(),
                r.total,
                py_bool(r.protected)
            ));
        }
        m
    }

    /// `:>>USERS:…` for the current lobby connections (logged in or not:
    /// D33, replicated; one not logged in shows as an empty name).
    pub fn users_msg(&self) -> String {
        let mut m = format!(":>>USERS:{}", self.clients.len());
        for (_, c) in self.clients.all() {
            m.push(':');
            m.push_str(c.name());
        }
        m
    }

    fn status_msg(&self, room: &Room) -> String {
        let mut m = format!(":>>STATUS:{}", room.player_count());
        for c in room.players().filter_map(|p| self.clients.get(p)) {
            m.push(':');
            m.push_str(c.name());
            m.push(':');
            m.push_str(py_bool(c.ready));
        }
        m
    }

    pub(super) fn mods_msg(room: &Room) -> String {
        let mut m = format!(":>>MODS:{}", room.mods().len());
        for (name, version) in room.mods() {
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
    pub(super) fn send_list(&self, to: Vec<ClientId>, list: List, out: &mut Outbox) {
        if to.is_empty() {
            return;
        }
        // the cost is recipients x list length, and lists name every
        // connection, logged in or not
        if to.len() >= LARGE_LOBBY || self.clients.len() >= LARGE_LOBBY {
            return out.owe(to, list);
        }
        let text = match list {
            List::Users => self.users_msg(),
            List::Sessions => self.sessions_msg(),
        };
        out.broadcast(to, text);
    }

    /// In a large lobby full lists are owed, not sent at once. Lists name
    /// every connection, logged in or not, so all of them count (as in
    /// `send_list`).
    pub(super) fn is_large(&self) -> bool {
        self.clients.len() >= LARGE_LOBBY
    }

    /// Who receives `list` when it changes: SESSIONS every lobby connection,
    /// USERS the logged-in clients that understand it. The event loop walks
    /// this once per refresh round, never per event.
    pub fn list_recipients(&self, list: List) -> impl Iterator<Item = ClientId> + '_ {
        self.clients
            .all()
            .filter(move |(_, c)| match list {
                List::Sessions => true,
                List::Users => c.is_authed() && c.protocol().gets_user_list(),
            })
            .map(|(id, _)| id)
    }

    /// SESSIONS to every lobby connection.
    pub(super) fn broadcast_sessions(&self, out: &mut Outbox) {
        if self.is_large() {
            return out.owe_everyone(List::Sessions);
        }
        self.send_list(
            self.clients.all().map(|(id, _)| id).collect(),
            List::Sessions,
            out,
        );
    }

    /// STATUS to the room's members.
    pub(super) fn broadcast_status(&self, key: RoomKey, out: &mut Outbox) {
        if let Some(room) = self.rooms.get(key) {
            out.broadcast(room.players(), self.status_msg(room));
        }
    }

    /// USERS to the logged-in clients that understand it.
    pub(super) fn broadcast_users(&self, out: &mut Outbox) {
        if self.is_large() {
            return out.owe_everyone(List::Users);
        }
        let to: Vec<_> = self
            .clients
            .authed()
            .filter(|(_, c)| c.protocol().gets_user_list())
            .map(|(id, _)| id)
            .collect();
        self.send_list(to, List::Users, out);
    }
}

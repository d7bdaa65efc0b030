//! Match servers (vcmiserver) and proxy pairing (LOBBY-JSON.md §1.5 items
//! 3, 6, 7, 11–13, §1.10). A match server's control connection owns one
//! room; each guest's game traffic runs over a pair of connections (the
//! match server's serverProxyLogin one and the guest's clientProxyLogin one)
//! that the glue forwards between once paired.
//!
//! A real vcmiserver shuts down on any operationFailed, so a control
//! connection gets one only for a refused serverLogin (as in the reference).

use super::accounts::fail;
use super::messages::Outgoing;
use super::{CloseReason, ConnId, JsonLobby, JsonOutbox, Now, Role};
use crate::json::request::ModInfo;
use crate::json::store::RoomStatus;

/// A serverProxyLogin waiting for the guest's clientProxyLogin.
#[derive(Debug, Clone)]
pub(super) struct AwaitingProxy {
    /// The match server's proxy connection.
    pub(super) server: ConnId,
    guest: String,
    room_id: String,
}

/// The fields of a serverLogin.
pub(super) struct ServerLogin {
    pub game_room_id: String,
    pub account_id: String,
    pub account_cookie: String,
    pub version: String,
    pub mods: Vec<ModInfo>,
}

impl JsonLobby {
    fn cookie_valid(&self, account_id: &str, cookie: &str) -> bool {
        self.accounts
            .get(account_id)
            .is_some_and(|a| a.has_cookie(cookie))
    }

    /// serverLogin (§1.5 item 3): the room is created idle; no broadcast.
    pub(super) fn server_login(
        &mut self,
        conn: ConnId,
        login: ServerLogin,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        if !self.cookie_valid(&login.account_id, &login.account_cookie) {
            return fail(conn, "Invalid credentials", out);
        }
        if self.rooms.get(&login.game_room_id).is_some() {
            log::warn!(
                "JSON conn {conn}: serverLogin for live room {}",
                login.game_room_id
            );
            return fail(conn, "Invalid credentials", out);
        }
        self.store.insert_room(
            &login.game_room_id,
            &login.account_id,
            &login.version,
            &login.mods,
        );
        log::info!(
            "JSON conn {conn}: match server of {} for room {} ({} mods)",
            login.account_id,
            login.game_room_id,
            login.mods.len()
        );
        self.set_role(conn, Role::RoomControl(login.game_room_id.clone()));
        self.rooms.create(
            login.game_room_id,
            login.account_id,
            login.version,
            login.mods,
            conn,
            now,
        );
        self.stats.rooms_created += 1;
        out.send(
            conn,
            &Outgoing::ServerLoginSuccess {
                account_cookie: &login.account_cookie,
            },
        );
    }

    /// changeRoomDescription (§1.5 item 11; who gets what decided in the
    /// module doc, §1.14/§1.15).
    pub(super) fn change_description(
        &mut self,
        room_id: &str,
        description: String,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        self.store.set_room_description(room_id, &description);
        room.description = description;
        if room.status == RoomStatus::Idle {
            return;
        }
        let (mut updates, mut lists) = (Vec::new(), Vec::new());
        for &c in &self.logged_in {
            match self.conns.get(&c).map(|c| &c.role) {
                Some(Role::Account(s)) if s.room_updates => updates.push(c),
                _ => lists.push(c),
            }
        }
        if !updates.is_empty() {
            if let Some(room) = self.rooms.get(room_id) {
                let room = super::rooms::room_json(room, &self.accounts, now);
                out.broadcast(updates, &Outgoing::UpdateGameRoom { room });
            }
        }
        if !lists.is_empty() {
            out.send_shared(lists, &self.active_rooms_payload(now));
        }
    }

    /// gameStarted (§1.5 item 12).
    pub(super) fn game_started(&mut self, room_id: &str, now: Now, out: &mut JsonOutbox) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        room.status = RoomStatus::Busy;
        self.store.set_room_status(room_id, RoomStatus::Busy);
        log::info!("JSON room {room_id}: game started");
        self.broadcast_active_rooms(now, out);
    }

    /// leaveGameRoom (§1.5 item 13): a guest's proxy connection dropped
    /// while the match server was in its lobby. For an account not in the
    /// room the reference answers operationFailed, killing the match
    /// server; here it is only logged.
    pub(super) fn leave_room(
        &mut self,
        room_id: &str,
        account: &str,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(i) = room.participants.iter().position(|p| p == account) else {
            log::warn!(
                "JSON room {room_id}: leaveGameRoom for {account}, not in the room; ignored"
            );
            return;
        };
        room.participants.remove(i);
        self.store.delete_participant(room_id, account);
        log::info!("JSON room {room_id}: {account} left");
        self.broadcast_active_rooms(now, out);
    }

    /// serverProxyLogin (§1.5 item 6, room and participant checks added):
    /// tells the guest to connect and waits for it.
    pub(super) fn server_proxy_login(
        &mut self,
        conn: ConnId,
        room_id: String,
        guest: String,
        cookie: &str,
        out: &mut JsonOutbox,
    ) {
        let guest_conn = self.accounts.session_of(&guest);
        // The match server sends its host's cookie: only the room's own
        // match server may open a proxy into it.
        let allowed = self.rooms.get(&room_id).is_some_and(|r| {
            r.participants.contains(&guest) && self.cookie_valid(&r.host_account_id, cookie)
        });
        let Some(guest_conn) = guest_conn.filter(|_| allowed) else {
            log::info!("JSON conn {conn}: serverProxyLogin for {guest} in {room_id} refused");
            return fail(conn, "Invalid credentials", out);
        };
        out.send(
            guest_conn,
            &Outgoing::JoinRoomSuccess {
                game_room_id: &room_id,
                proxy_mode: true,
            },
        );
        // Registered so a later disconnect finds it. One entry per
        // connection (a real match server opens one per guest): a repeated
        // serverProxyLogin replaces the earlier one.
        self.conn_mut(conn);
        self.forget_awaiting(conn);
        self.awaiting.push(AwaitingProxy {
            server: conn,
            guest,
            room_id,
        });
    }

    /// clientProxyLogin (§1.5 item 7): pairs the guest's new connection with
    /// the waiting match-server connection; no reply.
    pub(super) fn client_proxy_login(
        &mut self,
        conn: ConnId,
        account_id: &str,
        cookie: &str,
        room_id: &str,
        out: &mut JsonOutbox,
    ) {
        let waiting = self
            .awaiting
            .iter()
            .position(|a| a.guest == account_id && a.room_id == room_id && a.server != conn);
        let (true, Some(i)) = (self.cookie_valid(account_id, cookie), waiting) else {
            log::info!("JSON conn {conn}: clientProxyLogin for {account_id} in {room_id} refused");
            fail(conn, "Invalid credentials", out);
            self.close(conn, CloseReason::ProxyLoginFailed, out);
            return;
        };
        let entry = self.awaiting.remove(i);
        self.set_role(entry.server, Role::Proxied(conn));
        self.set_role(conn, Role::Proxied(entry.server));
        self.proxies
            .insert(entry.server, (entry.guest.clone(), entry.room_id.clone()));
        self.stats.proxy_pairs += 1;
        log::info!(
            "JSON proxy: {account_id} in {room_id}: server conn {} <-> client conn {conn}",
            entry.server
        );
        out.pair(entry.server, conn);
    }

    /// Whether `guest` has a live proxy pair into `room_id`.
    pub(super) fn has_live_proxy(&self, guest: &str, room_id: &str) -> bool {
        self.proxies
            .values()
            .any(|(g, r)| g == guest && r == room_id)
    }

    /// Drops waiting proxy entries of a closed connection (§1.11 step 3).
    pub(super) fn forget_awaiting(&mut self, conn: ConnId) {
        self.awaiting.retain(|a| a.server != conn);
    }
}

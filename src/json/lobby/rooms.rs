//! Rooms as players see them: activation, joining, invites, the room lists
//! and match history (LOBBY-JSON.md §1.4 room object, §1.5 items 4, 5, 10).
//! A room is created by its match server (`servers`) and lives in memory
//! while its control connection does; the store records every change.

use super::accounts::{fail, Directory};
use super::messages::{AccountJson, ModJson, Outgoing, RoomJson};
use super::{ConnId, JsonLobby, JsonOutbox, Now};
use crate::json::request::{ModInfo, RoomType};
use crate::json::store::{MatchRecord, RoomStatus};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// A live room (idle, public, private or busy).
#[derive(Debug, Clone)]
pub struct Room {
    pub id: String,
    pub host_account_id: String,
    /// The match server's version, echoed to clients.
    pub version: String,
    pub mods: Vec<ModInfo>,
    pub description: String,
    pub status: RoomStatus,
    pub player_limit: i64,
    pub created_unix: i64,
    /// Account IDs in join order, host first once activated.
    pub participants: Vec<String>,
    pub invited: Vec<String>,
    /// The match server's control connection.
    pub control: ConnId,
    /// Creation order, for the newest-first lists.
    seq: u64,
}

impl Room {
    /// Listed in activeGameRooms and joinable in principle (§1.12 queries).
    pub fn is_active(&self) -> bool {
        matches!(
            self.status,
            RoomStatus::Public | RoomStatus::Private | RoomStatus::Busy
        )
    }

    fn has(&self, account: &str) -> bool {
        self.participants.iter().any(|p| p == account)
    }
}

/// Live rooms by ID.
#[derive(Debug, Default)]
pub(super) struct Rooms {
    by_id: HashMap<String, Room>,
    next_seq: u64,
}

impl Rooms {
    pub(super) fn get(&self, id: &str) -> Option<&Room> {
        self.by_id.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Room> {
        self.by_id.get_mut(id)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Room> {
        self.by_id.values()
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<Room> {
        self.by_id.remove(id)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn create(
        &mut self,
        id: String,
        host_account_id: String,
        version: String,
        mods: Vec<ModInfo>,
        control: ConnId,
        now: Now,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(
            id.clone(),
            Room {
                id,
                host_account_id,
                version,
                mods,
                description: String::new(),
                status: RoomStatus::Idle,
                player_limit: 8,
                created_unix: now.unix_secs,
                participants: Vec::new(),
                invited: Vec::new(),
                control,
                seq,
            },
        );
    }

    /// Active rooms, newest first.
    fn active(&self) -> Vec<&Room> {
        let mut rooms: Vec<&Room> = self.by_id.values().filter(|r| r.is_active()).collect();
        rooms.sort_by_key(|r| std::cmp::Reverse(r.seq));
        rooms
    }

    /// The first active room (newest first) the account takes part in.
    pub(super) fn active_room_of(&self, account: &str) -> Option<&Room> {
        self.active().into_iter().find(|r| r.has(account))
    }
}

/// Who took part in rooms that ended, for match chat access; oldest entries
/// are forgotten beyond the cap.
#[derive(Debug)]
pub(super) struct EndedRooms {
    by_id: HashMap<String, (RoomStatus, Vec<String>)>,
    order: VecDeque<String>,
    cap: usize,
}

impl EndedRooms {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            by_id: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub(super) fn remember(&mut self, id: &str, status: RoomStatus, participants: Vec<String>) {
        if participants.is_empty() || self.cap == 0 {
            return;
        }
        if self
            .by_id
            .insert(id.to_string(), (status, participants))
            .is_none()
        {
            self.order.push_back(id.to_string());
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    fn get(&self, id: &str) -> Option<&(RoomStatus, Vec<String>)> {
        self.by_id.get(id)
    }

    pub(super) fn participants(&self, id: &str) -> &[String] {
        self.by_id.get(id).map_or(&[], |(_, p)| p.as_slice())
    }
}

/// The parent of a submod: its ID before the last `.` (§1.12: the
/// reference's `substr(find('.'))` gave ".sub").
fn parent_of(m: &ModInfo) -> Option<&str> {
    m.parent
        .as_deref()
        .or_else(|| m.mod_id.rsplit_once('.').map(|(parent, _)| parent))
}

fn accounts_json<'a>(ids: &'a [String], dir: &'a Directory) -> Vec<AccountJson<'a>> {
    ids.iter()
        .map(|id| AccountJson {
            account_id: id,
            display_name: dir.name(id),
        })
        .collect()
}

/// The room object of a live room (`toJsonFull`).
pub(super) fn room_json<'a>(room: &'a Room, dir: &'a Directory, now: Now) -> RoomJson<'a> {
    RoomJson {
        game_room_id: &room.id,
        host_account_id: &room.host_account_id,
        host_account_display_name: dir.name(&room.host_account_id),
        description: &room.description,
        version: &room.version,
        status: room.status.as_str(),
        player_limit: room.player_limit,
        age_seconds: (now.unix_secs - room.created_unix).max(0),
        participants: accounts_json(&room.participants, dir),
        invited: accounts_json(&room.invited, dir),
        mods: room
            .mods
            .iter()
            .map(|m| ModJson {
                mod_id: &m.mod_id,
                name: &m.name,
                version: &m.version,
                parent: parent_of(m),
            })
            .collect(),
    }
}

/// A matchesHistory entry: no mods, no invited, version "" (§1.12).
fn match_json(m: &MatchRecord) -> RoomJson<'_> {
    RoomJson {
        game_room_id: &m.game_room_id,
        host_account_id: &m.host_account_id,
        host_account_display_name: &m.host_display_name,
        description: &m.description,
        version: "",
        status: RoomStatus::Closed.as_str(),
        player_limit: m.player_limit,
        age_seconds: m.age_seconds,
        participants: m
            .participants
            .iter()
            .map(|(id, name)| AccountJson {
                account_id: id,
                display_name: name,
            })
            .collect(),
        invited: Vec::new(),
        mods: Vec::new(),
    }
}

impl JsonLobby {
    /// activeGameRooms, written once.
    pub(super) fn active_rooms_payload(&self, now: Now) -> Bytes {
        let game_rooms = self
            .rooms
            .active()
            .into_iter()
            .map(|r| room_json(r, &self.accounts, now))
            .collect();
        crate::json::writer::to_payload(&Outgoing::ActiveGameRooms { game_rooms })
    }

    /// → everyone: activeGameRooms.
    pub(super) fn broadcast_active_rooms(&self, now: Now, out: &mut JsonOutbox) {
        if self.logged_in.is_empty() {
            return;
        }
        out.send_shared(
            self.logged_in.iter().copied(),
            &self.active_rooms_payload(now),
        );
    }

    /// → `conn`: matchesHistory of the account; remembers the rooms'
    /// participants for match chat.
    pub(super) fn send_matches_history(
        &mut self,
        conn: ConnId,
        account: &str,
        _now: Now,
        out: &mut JsonOutbox,
    ) {
        let records = self.store.matches_history(account);
        for m in &records {
            if self.ended.get(&m.game_room_id).is_none()
                && self.rooms.get(&m.game_room_id).is_none()
            {
                let ids = m.participants.iter().map(|(id, _)| id.clone()).collect();
                self.ended
                    .remember(&m.game_room_id, RoomStatus::Closed, ids);
            }
        }
        out.send(
            conn,
            &Outgoing::MatchesHistory {
                matches_history: records.iter().map(match_json).collect(),
            },
        );
    }

    /// The status of a room whose match channel `account` may use: it is a
    /// participant of the live or ended room.
    pub(super) fn match_channel_status(&self, account: &str, room_id: &str) -> Option<RoomStatus> {
        if let Some(room) = self.rooms.get(room_id) {
            return room.has(account).then_some(room.status);
        }
        let (status, participants) = self.ended.get(room_id)?;
        participants.iter().any(|p| p == account).then_some(*status)
    }

    /// activateGameRoom (§1.5 item 4; host check and default limit decided,
    /// see the module doc).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn activate_room(
        &mut self,
        conn: ConnId,
        me: &str,
        host_account_id: &str,
        room_type: RoomType,
        player_limit: Option<i64>,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        if self.rooms.active_room_of(me).is_some() {
            return fail(conn, "Player already in the room!", out);
        }
        let idle = self
            .rooms
            .by_id
            .values()
            .filter(|r| r.status == RoomStatus::Idle && r.host_account_id == host_account_id)
            .max_by_key(|r| r.seq)
            .map(|r| r.id.clone());
        let Some(room_id) = idle.filter(|_| host_account_id == me) else {
            return fail(conn, "Failed to find idle server to join!", out);
        };
        let status = match room_type {
            RoomType::Public => RoomStatus::Public,
            RoomType::Private => RoomStatus::Private,
        };
        let limit = player_limit.unwrap_or(8).clamp(1, 8);
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        room.status = status;
        room.player_limit = limit;
        room.participants.push(me.to_string());
        self.store.set_room_status(&room_id, status);
        self.store.set_room_player_limit(&room_id, limit);
        self.store.insert_participant(&room_id, me);
        log::info!(
            "JSON room {room_id}: activated {} by {me}, limit {limit}",
            status.as_str()
        );
        self.broadcast_active_rooms(now, out);
        out.send(
            conn,
            &Outgoing::JoinRoomSuccess {
                game_room_id: &room_id,
                proxy_mode: false,
            },
        );
    }

    /// joinGameRoom (§1.5 item 5): the reference's checks in its order; the
    /// joiner's reply comes later, from serverProxyLogin.
    pub(super) fn join_room(
        &mut self,
        conn: ConnId,
        me: &str,
        room_id: &str,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        let current = self.rooms.active_room_of(me);
        // Re-joining the room one is still a participant of (after a
        // reconnect) passes the first check; see the module doc.
        let rejoin = current.is_some_and(|r| {
            r.id == room_id && r.host_account_id != me && !self.has_live_proxy(me, room_id)
        });
        if current.is_some() && !rejoin {
            return fail(conn, "Player already in the room!", out);
        }
        let Some(room) = self.rooms.get_mut(room_id) else {
            return fail(conn, "Failed to find game room to join!", out);
        };
        if !matches!(room.status, RoomStatus::Public | RoomStatus::Private) {
            return fail(conn, "Room does not accepts new players!", out);
        }
        if room.status == RoomStatus::Private && !rejoin && !room.invited.iter().any(|i| i == me) {
            return fail(
                conn,
                "You are not permitted to join private room without invite!",
                out,
            );
        }
        if !rejoin {
            if room.participants.len() as i64 >= room.player_limit {
                return fail(conn, "Room is already full!", out);
            }
            room.participants.push(me.to_string());
            self.store.insert_participant(room_id, me);
        }
        let control = room.control;
        log::info!(
            "JSON room {room_id}: {me} joins{}",
            if rejoin { " again" } else { "" }
        );
        out.send(control, &Outgoing::AccountJoinsRoom { account_id: me });
        self.broadcast_active_rooms(now, out);
    }

    /// sendInvite (§1.5 item 10).
    pub(super) fn send_invite(
        &mut self,
        conn: ConnId,
        me: &str,
        target: &str,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        let Some(target_conn) = self.accounts.session_of(target) else {
            return fail(conn, "Player is offline or does not exists!", out);
        };
        let Some(room_id) = self.rooms.active_room_of(me).map(|r| r.id.clone()) else {
            return fail(conn, "You are not in the room!", out);
        };
        if self.rooms.active_room_of(target).is_some() {
            return fail(conn, "This player is already in a room!", out);
        }
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        if room.invited.iter().any(|i| i == target) {
            return fail(conn, "This player is already invited!", out);
        }
        room.invited.push(target.to_string());
        self.store.insert_invite(&room_id, target);
        log::info!("JSON room {room_id}: {me} invites {target}");
        out.send(
            target_conn,
            &Outgoing::InviteReceived {
                account_id: me,
                game_room_id: &room_id,
            },
        );
        self.broadcast_active_rooms(now, out);
    }

    /// The control connection is gone (§1.11 step 2): busy → closed, and
    /// each logged-in participant gets matchesHistory; else → cancelled.
    pub(super) fn end_room(&mut self, room_id: &str, now: Now, out: &mut JsonOutbox) {
        let Some(room) = self.rooms.remove(room_id) else {
            return;
        };
        let status = if room.status == RoomStatus::Busy {
            RoomStatus::Closed
        } else {
            RoomStatus::Cancelled
        };
        self.store.set_room_status(room_id, status);
        log::info!("JSON room {room_id}: {}", status.as_str());
        if status == RoomStatus::Closed {
            for p in &room.participants {
                if let Some(c) = self.accounts.session_of(p) {
                    self.send_matches_history(c, p, now, out);
                }
            }
        }
        self.ended.remember(room_id, status, room.participants);
    }
}

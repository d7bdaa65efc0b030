//! An in-memory [`LobbyStore`] for tests and benchmarks: the same answers
//! as the SQLite store on vcmilobby's schema, without a file. Clones share
//! their data, so a test keeps one clone to inspect what the rules wrote and
//! to move the store's clock.

use crate::json::request::{ChannelType, ModInfo};
use crate::json::store::{AccountRecord, ChatRecord, LobbyStore, MatchRecord, RoomStatus};
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemAccount {
    pub account_id: String,
    pub display_name: String,
    pub cookies: Vec<String>,
    pub online: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemChat {
    pub sender_id: String,
    pub channel: ChannelType,
    pub channel_name: String,
    pub text: String,
    pub at_unix: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemRoom {
    pub room_id: String,
    pub host_account_id: String,
    pub version: String,
    pub mods: Vec<ModInfo>,
    pub description: String,
    pub status: RoomStatus,
    pub player_limit: i64,
    pub created_unix: i64,
}

/// Everything stored, in insertion order (like SQLite row ids).
#[derive(Debug, Default)]
pub struct MemData {
    /// The store's clock (SQLite's `CURRENT_TIMESTAMP`), unix seconds.
    pub now_unix: i64,
    pub accounts: Vec<MemAccount>,
    pub chat: Vec<MemChat>,
    pub rooms: Vec<MemRoom>,
    /// (roomID, accountID)
    pub participants: Vec<(String, String)>,
    /// (roomID, accountID)
    pub invites: Vec<(String, String)>,
    /// Calls of `recent_chat`, `full_chat` and `matches_history`.
    pub reads: u64,
}

#[derive(Debug, Clone, Default)]
pub struct MemStore {
    pub data: Rc<RefCell<MemData>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn name_of(data: &MemData, id: &str) -> String {
        data.accounts
            .iter()
            .find(|a| a.account_id == id)
            .map_or_else(String::new, |a| a.display_name.clone())
    }

    fn chat(&self, channel: ChannelType, name: &str) -> Vec<ChatRecord> {
        let mut d = self.data.borrow_mut();
        d.reads += 1;
        d.chat
            .iter()
            .filter(|c| c.channel == channel && c.channel_name == name)
            .map(|c| ChatRecord {
                account_id: c.sender_id.clone(),
                display_name: Self::name_of(&d, &c.sender_id),
                message_text: c.text.clone(),
                age_seconds: d.now_unix - c.at_unix,
            })
            .collect()
    }

    fn room_mut(&self, room_id: &str, f: impl FnMut(&mut MemRoom)) {
        let mut d = self.data.borrow_mut();
        // Like SQL's UPDATE ... WHERE roomID = ?: every row with the ID.
        d.rooms
            .iter_mut()
            .filter(|r| r.room_id == room_id)
            .for_each(f);
    }
}

impl LobbyStore for MemStore {
    fn clear_stale_state(&mut self) {
        let mut d = self.data.borrow_mut();
        d.accounts.iter_mut().for_each(|a| a.online = false);
        for r in &mut d.rooms {
            r.status = match r.status {
                RoomStatus::Idle | RoomStatus::Public | RoomStatus::Private => {
                    RoomStatus::Cancelled
                }
                RoomStatus::Busy => RoomStatus::Closed,
                s => s,
            };
        }
    }

    fn load_accounts(&mut self) -> Vec<AccountRecord> {
        self.data
            .borrow()
            .accounts
            .iter()
            .map(|a| AccountRecord {
                account_id: a.account_id.clone(),
                display_name: a.display_name.clone(),
                cookies: a.cookies.clone(),
            })
            .collect()
    }

    fn insert_account(&mut self, account_id: &str, display_name: &str, cookie: &str) {
        self.data.borrow_mut().accounts.push(MemAccount {
            account_id: account_id.into(),
            display_name: display_name.into(),
            cookies: vec![cookie.into()],
            online: false,
        });
    }

    fn set_online(&mut self, account_id: &str, online: bool) {
        let mut d = self.data.borrow_mut();
        for a in d.accounts.iter_mut().filter(|a| a.account_id == account_id) {
            a.online = online;
        }
    }

    fn insert_chat(
        &mut self,
        sender_id: &str,
        channel: ChannelType,
        channel_name: &str,
        text: &str,
    ) {
        let mut d = self.data.borrow_mut();
        let at_unix = d.now_unix;
        d.chat.push(MemChat {
            sender_id: sender_id.into(),
            channel,
            channel_name: channel_name.into(),
            text: text.into(),
            at_unix,
        });
    }

    fn recent_chat(&mut self, channel: ChannelType, channel_name: &str) -> Vec<ChatRecord> {
        let mut all: Vec<ChatRecord> = self
            .chat(channel, channel_name)
            .into_iter()
            .filter(|c| c.age_seconds < 18 * 60 * 60)
            .collect();
        let skip = all.len().saturating_sub(100);
        all.drain(..skip);
        all
    }

    fn full_chat(&mut self, channel: ChannelType, channel_name: &str) -> Vec<ChatRecord> {
        self.chat(channel, channel_name)
    }

    fn insert_room(
        &mut self,
        room_id: &str,
        host_account_id: &str,
        version: &str,
        mods: &[ModInfo],
    ) {
        let mut d = self.data.borrow_mut();
        let created_unix = d.now_unix;
        d.rooms.push(MemRoom {
            room_id: room_id.into(),
            host_account_id: host_account_id.into(),
            version: version.into(),
            mods: mods.to_vec(),
            description: String::new(),
            status: RoomStatus::Idle,
            player_limit: 8,
            created_unix,
        });
    }

    fn set_room_status(&mut self, room_id: &str, status: RoomStatus) {
        self.room_mut(room_id, |r| r.status = status);
    }

    fn set_room_player_limit(&mut self, room_id: &str, player_limit: i64) {
        self.room_mut(room_id, |r| r.player_limit = player_limit);
    }

    fn set_room_description(&mut self, room_id: &str, description: &str) {
        self.room_mut(room_id, |r| r.description = description.into());
    }

    fn insert_participant(&mut self, room_id: &str, account_id: &str) {
        let mut d = self.data.borrow_mut();
        d.participants.push((room_id.into(), account_id.into()));
    }

    fn delete_participant(&mut self, room_id: &str, account_id: &str) {
        let mut d = self.data.borrow_mut();
        d.participants
            .retain(|(r, a)| !(r == room_id && a == account_id));
    }

    fn insert_invite(&mut self, room_id: &str, account_id: &str) {
        let mut d = self.data.borrow_mut();
        d.invites.push((room_id.into(), account_id.into()));
    }

    fn matches_history(&mut self, account_id: &str) -> Vec<MatchRecord> {
        let mut d = self.data.borrow_mut();
        d.reads += 1;
        let d = &*d;
        d.rooms
            .iter()
            .rev()
            .filter(|r| r.status == RoomStatus::Closed)
            .filter(|r| {
                d.participants
                    .iter()
                    .any(|(room, a)| *room == r.room_id && a == account_id)
            })
            .map(|r| MatchRecord {
                game_room_id: r.room_id.clone(),
                host_account_id: r.host_account_id.clone(),
                host_display_name: Self::name_of(d, &r.host_account_id),
                description: r.description.clone(),
                player_limit: r.player_limit,
                age_seconds: d.now_unix - r.created_unix,
                participants: d
                    .participants
                    .iter()
                    .filter(|(room, _)| *room == r.room_id)
                    .map(|(_, a)| (a.clone(), Self::name_of(d, a)))
                    .collect(),
            })
            .collect()
    }
}

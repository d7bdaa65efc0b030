//! What the JSON lobby rules need from persistent storage (LOBBY-JSON.md
//! §1.12). The rules keep everything a message needs in memory and call
//! this for writes and for the few reads that are not per chat line (login
//! history, full match/player chat history). `json::sqlite` implements it
//! on vcmilobby's own schema; tests may use an in-memory double.
//! This file is a contract shared by two modules: change it only together.
//!
//! Errors: a failing write is logged by the implementation and otherwise
//! ignored (the in-memory state stays authoritative for the session);
//! reads return empty results on error. So no method returns Result.

use super::request::{ChannelType, ModInfo};

/// An account as stored (`accounts` + its cookie in `accountCookies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub account_id: String,
    pub display_name: String,
    /// Every cookie of the account (the reference accepts any stored one).
    pub cookies: Vec<String>,
}

/// One stored chat line, as chatHistory needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRecord {
    /// Sender's account ID (`chatMessages.senderName` holds the ID).
    pub account_id: String,
    /// Sender's display name (joined from `accounts`).
    pub display_name: String,
    pub message_text: String,
    /// Seconds since it was stored (SQLite second resolution).
    pub age_seconds: i64,
}

/// Room states, stored as `gameRooms.status` 0..=5 (`LobbyRoomState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStatus {
    Idle = 0,
    Public = 1,
    Private = 2,
    Busy = 3,
    Cancelled = 4,
    Closed = 5,
}

impl RoomStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Idle => "idle",
            RoomStatus::Public => "public",
            RoomStatus::Private => "private",
            RoomStatus::Busy => "busy",
            RoomStatus::Cancelled => "cancelled",
            RoomStatus::Closed => "closed",
        }
    }
    pub fn from_i64(v: i64) -> Option<RoomStatus> {
        Some(match v {
            0 => RoomStatus::Idle,
            1 => RoomStatus::Public,
            2 => RoomStatus::Private,
            3 => RoomStatus::Busy,
            4 => RoomStatus::Cancelled,
            5 => RoomStatus::Closed,
            _ => return None,
        })
    }
}

/// A finished room for matchesHistory (status closed; no mods, no invited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRecord {
    pub game_room_id: String,
    pub host_account_id: String,
    pub host_display_name: String,
    pub description: String,
    pub player_limit: i64,
    pub age_seconds: i64,
    /// (accountID, displayName) of every participant.
    pub participants: Vec<(String, String)>,
}

pub trait LobbyStore {
    /// §1.12 startup: every account offline; rooms in status 0/1/2 -> 4, 3 -> 5.
    fn clear_stale_state(&mut self);
    /// Every account, for the in-memory directory built at start.
    fn load_accounts(&mut self) -> Vec<AccountRecord>;
    /// Registration: `accounts` row (online 0) + `accountCookies` row.
    fn insert_account(&mut self, account_id: &str, display_name: &str, cookie: &str);
    /// Login: `lastLoginTime = now`, `online = 1`. Logout: `online = 0`.
    fn set_online(&mut self, account_id: &str, online: bool);
    fn insert_chat(
        &mut self,
        sender_id: &str,
        channel: ChannelType,
        channel_name: &str,
        text: &str,
    );
    /// Last 100 messages of the last 18 h of a channel, oldest first.
    fn recent_chat(&mut self, channel: ChannelType, channel_name: &str) -> Vec<ChatRecord>;
    /// Whole history of a channel, oldest first (match and player channels).
    fn full_chat(&mut self, channel: ChannelType, channel_name: &str) -> Vec<ChatRecord>;
    /// serverLogin: `gameRooms` row (status idle, playerLimit 8) + mods rows.
    fn insert_room(
        &mut self,
        room_id: &str,
        host_account_id: &str,
        version: &str,
        mods: &[ModInfo],
    );
    fn set_room_status(&mut self, room_id: &str, status: RoomStatus);
    fn set_room_player_limit(&mut self, room_id: &str, player_limit: i64);
    fn set_room_description(&mut self, room_id: &str, description: &str);
    fn insert_participant(&mut self, room_id: &str, account_id: &str);
    fn delete_participant(&mut self, room_id: &str, account_id: &str);
    fn insert_invite(&mut self, room_id: &str, account_id: &str);
    /// Closed rooms the account took part in, newest first.
    fn matches_history(&mut self, account_id: &str) -> Vec<MatchRecord>;
}

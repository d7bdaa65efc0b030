//! Validated client-to-lobby requests of the VCMI 1.5+ JSON lobby protocol
//! (LOBBY-JSON.md §1.4). The parser (`json::parse`) turns a frame payload
//! into a [`Request`] only if it passes VCMI's strict JSON rules and the
//! message's schema; the lobby rules (`json::lobby`) consume it.
//! This file is a contract shared by two modules: change it only together.

/// `channelType` of chat messages and history requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelType {
    Global,
    Match,
    Player,
}

impl ChannelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Global => "global",
            ChannelType::Match => "match",
            ChannelType::Player => "player",
        }
    }
}

/// `roomType` of activateGameRoom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomType {
    Public,
    Private,
}

/// One entry of serverLogin's `mods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModInfo {
    pub mod_id: String,
    pub name: String,
    pub parent: Option<String>,
    pub version: String,
}

/// A request that passed parsing and schema validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    ClientRegister {
        display_name: String,
        language: String,
        version: String,
    },
    ClientLogin {
        account_id: String,
        account_cookie: String,
        language: String,
        version: String,
        /// Absent (or `null`) for clients before 1.6.4.
        language_rooms: Option<Vec<String>>,
    },
    ClientProxyLogin {
        account_id: String,
        account_cookie: String,
        game_room_id: String,
    },
    SendChatMessage {
        message_text: String,
        channel_type: ChannelType,
        channel_name: String,
    },
    RequestChatHistory {
        channel_type: ChannelType,
        channel_name: String,
    },
    ActivateGameRoom {
        host_account_id: String,
        room_type: RoomType,
        /// Absent or `null` -> None: the reference then uses 0 (§1.5 item 4),
        /// a room nobody can join; our rules use 8 (see `json::lobby`).
        /// Schema: number 1..=8; a float is truncated towards zero.
        player_limit: Option<i64>,
    },
    JoinGameRoom {
        game_room_id: String,
    },
    SendInvite {
        account_id: String,
    },
    ServerLogin {
        game_room_id: String,
        account_id: String,
        account_cookie: String,
        version: String,
        /// `null` or absent -> None (real match servers send null).
        mods: Option<Vec<ModInfo>>,
    },
    ServerProxyLogin {
        game_room_id: String,
        guest_account_id: String,
        account_cookie: String,
    },
    ChangeRoomDescription {
        description: String,
    },
    GameStarted,
    LeaveGameRoom {
        account_id: String,
    },
    /// A well-formed message whose non-empty `type` has no schema: it passes
    /// validation in the reference (release build) and is then handled by
    /// dispatch: an unauthenticated connection is closed, others ignore it.
    Unknown {
        type_name: String,
    },
}

impl Request {
    /// The wire `type` string.
    pub fn type_name(&self) -> &str {
        match self {
            Request::ClientRegister { .. } => "clientRegister",
            Request::ClientLogin { .. } => "clientLogin",
            Request::ClientProxyLogin { .. } => "clientProxyLogin",
            Request::SendChatMessage { .. } => "sendChatMessage",
            Request::RequestChatHistory { .. } => "requestChatHistory",
            Request::ActivateGameRoom { .. } => "activateGameRoom",
            Request::JoinGameRoom { .. } => "joinGameRoom",
            Request::SendInvite { .. } => "sendInvite",
            Request::ServerLogin { .. } => "serverLogin",
            Request::ServerProxyLogin { .. } => "serverProxyLogin",
            Request::ChangeRoomDescription { .. } => "changeRoomDescription",
            Request::GameStarted => "gameStarted",
            Request::LeaveGameRoom { .. } => "leaveGameRoom",
            Request::Unknown { type_name } => type_name,
        }
    }
}

/// Why a payload was rejected (for the log only: the peer gets no reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

//! Lobby-to-peer messages (LOBBY-JSON.md §1.4), field names exactly as on
//! the wire. They borrow from the lobby state: a message is built, written
//! once by [`crate::json::writer`] and dropped.

use serde::Serialize;

/// Every message the lobby sends, tagged with its wire `type`.
#[derive(Debug, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Outgoing<'a> {
    AccountCreated {
        #[serde(rename = "accountID")]
        account_id: &'a str,
        account_cookie: &'a str,
    },
    ClientLoginSuccess {
        account_cookie: &'a str,
        display_name: &'a str,
    },
    ChatHistory {
        channel_type: &'a str,
        channel_name: &'a str,
        /// Oldest first.
        messages: Vec<ChatLine<'a>>,
    },
    ChatMessage {
        message_text: &'a str,
        #[serde(rename = "accountID")]
        account_id: &'a str,
        display_name: &'a str,
        channel_type: &'a str,
        channel_name: &'a str,
    },
    ActiveAccounts {
        accounts: Vec<OnlineAccount<'a>>,
    },
    ActiveGameRooms {
        game_rooms: Vec<RoomJson<'a>>,
    },
    UpdateGameRoom {
        room: RoomJson<'a>,
    },
    JoinRoomSuccess {
        #[serde(rename = "gameRoomID")]
        game_room_id: &'a str,
        proxy_mode: bool,
    },
    InviteReceived {
        /// The inviter.
        #[serde(rename = "accountID")]
        account_id: &'a str,
        #[serde(rename = "gameRoomID")]
        game_room_id: &'a str,
    },
    MatchesHistory {
        matches_history: Vec<RoomJson<'a>>,
    },
    OperationFailed {
        reason: &'a str,
    },
    ServerLoginSuccess {
        account_cookie: &'a str,
    },
    AccountJoinsRoom {
        #[serde(rename = "accountID")]
        account_id: &'a str,
    },
}

/// One entry of chatHistory.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatLine<'a> {
    #[serde(rename = "accountID")]
    pub account_id: &'a str,
    pub display_name: &'a str,
    pub message_text: &'a str,
    pub age_seconds: i64,
}

/// One entry of activeAccounts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnlineAccount<'a> {
    #[serde(rename = "accountID")]
    pub account_id: &'a str,
    pub display_name: &'a str,
    /// Always "In Lobby" (the reference has no other status).
    pub status: &'a str,
}

/// An account in a room's `participants` or `invited`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountJson<'a> {
    #[serde(rename = "accountID")]
    pub account_id: &'a str,
    pub display_name: &'a str,
}

/// One mod of a room.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModJson<'a> {
    pub mod_id: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<&'a str>,
}

/// The room object (`LobbyGameRoom::toJsonFull`; matchesHistory entries
/// have no `mods`/`invited` and `version` ""). `participants`, `invited` and
/// `mods` are written only when non-empty, as the reference does (§1.4).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomJson<'a> {
    #[serde(rename = "gameRoomID")]
    pub game_room_id: &'a str,
    #[serde(rename = "hostAccountID")]
    pub host_account_id: &'a str,
    pub host_account_display_name: &'a str,
    pub description: &'a str,
    pub version: &'a str,
    pub status: &'a str,
    pub player_limit: i64,
    pub age_seconds: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<AccountJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invited: Vec<AccountJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mods: Vec<ModJson<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(msg: &Outgoing) -> serde_json::Value {
        serde_json::from_slice(&crate::json::writer::to_payload(msg)).unwrap()
    }

    #[test]
    fn field_names_are_the_wire_names() {
        assert_eq!(
            value(&Outgoing::AccountCreated {
                account_id: "a",
                account_cookie: "c"
            }),
            json!({"type": "accountCreated", "accountID": "a", "accountCookie": "c"})
        );
        assert_eq!(
            value(&Outgoing::JoinRoomSuccess {
                game_room_id: "r",
                proxy_mode: true
            }),
            json!({"type": "joinRoomSuccess", "gameRoomID": "r", "proxyMode": true})
        );
        let room = RoomJson {
            game_room_id: "r",
            host_account_id: "h",
            host_account_display_name: "Host",
            description: "d",
            version: "1.7.5",
            status: "public",
            player_limit: 8,
            age_seconds: 3,
            participants: vec![AccountJson {
                account_id: "h",
                display_name: "Host",
            }],
            invited: vec![],
            mods: vec![ModJson {
                mod_id: "hota.sub",
                name: "Sub",
                version: "1",
                parent: Some("hota"),
            }],
        };
        assert_eq!(
            value(&Outgoing::UpdateGameRoom { room }),
            json!({"type": "updateGameRoom", "room": {
                "gameRoomID": "r", "hostAccountID": "h", "hostAccountDisplayName": "Host",
                "description": "d", "version": "1.7.5", "status": "public", "playerLimit": 8,
                "ageSeconds": 3, "participants": [{"accountID": "h", "displayName": "Host"}],
                "mods": [{"modId": "hota.sub", "name": "Sub", "version": "1", "parent": "hota"}]}})
        );
        assert_eq!(
            value(&Outgoing::ChatHistory {
                channel_type: "global",
                channel_name: "english",
                messages: vec![ChatLine {
                    account_id: "a",
                    display_name: "n",
                    message_text: "t",
                    age_seconds: 1
                }]
            }),
            json!({"type": "chatHistory", "channelType": "global", "channelName": "english",
                "messages": [{"accountID": "a", "displayName": "n", "messageText": "t", "ageSeconds": 1}]})
        );
        assert_eq!(
            value(&Outgoing::ActiveGameRooms { game_rooms: vec![] }),
            json!({"type": "activeGameRooms", "gameRooms": []})
        );
        assert_eq!(
            value(&Outgoing::MatchesHistory {
                matches_history: vec![]
            }),
            json!({"type": "matchesHistory", "matchesHistory": []})
        );
    }
}

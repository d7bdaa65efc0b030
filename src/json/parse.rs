//! From a frame payload to a [`Request`]: the reference's acceptance set
//! (`LobbyServer::parseAndValidateMessage`, LOBBY-JSON.md §1.2).
//!
//! Three steps, each refusing with [`Invalid`]:
//! 1. `value::read`: VCMI's strict JSON (see that module for the exact
//!    grammar and the UTF-8 decision), at most five nested containers;
//! 2. `type` must be a non-empty string (any other value counts as "");
//! 3. the message is validated against the lobbyProtocol schema its type
//!    names (`schema`); a type without a schema passes, like in the
//!    reference's release build.
//!
//! Then the thirteen types a client or a match server sends become their
//! [`Request`] variant; every other type (one without a schema, or a
//! lobby-to-client type a peer echoes back) is [`Request::Unknown`], which
//! dispatch treats like the reference: close if unauthenticated, else
//! ignore.
//!
//! Never panics, whatever the bytes (property-tested); the work is one pass
//! over the payload plus a schema walk bounded by the nesting limit.

mod schema;
mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use super::request::{ChannelType, Invalid, ModInfo, Request, RoomType};
use value::Value;

/// Parses and validates one JSON lobby frame payload.
pub fn parse_request(payload: &[u8]) -> Result<Request, Invalid> {
    let root = value::read(payload, value::LOBBY_MESSAGE).map_err(Invalid)?;
    let Value::Object(members) = &root else {
        return Err(Invalid("message is not a JSON object".into()));
    };
    let type_name = match members.get("type") {
        Some(Value::String(name)) if !name.is_empty() => name.as_str(),
        _ => return Err(Invalid("message type not set".into())),
    };
    if let Some(schema) = schema::for_type(type_name).map_err(Invalid)? {
        schema::check(schema, &root).map_err(|err| Invalid(format!("{type_name}: {err}")))?;
    }
    to_request(type_name, members)
}

/// Builds the request from a validated message. Validation already
/// guarantees the member types; where a member is still not what we need
/// (only possible if a schema were edited), the message is refused rather
/// than guessed at.
fn to_request(type_name: &str, m: &BTreeMap<String, Value>) -> Result<Request, Invalid> {
    Ok(match type_name {
        "clientRegister" => Request::ClientRegister {
            display_name: text(m, "displayName")?,
            language: text(m, "language")?,
            version: text(m, "version")?,
        },
        "clientLogin" => Request::ClientLogin {
            account_id: text(m, "accountID")?,
            account_cookie: text(m, "accountCookie")?,
            language: text(m, "language")?,
            version: text(m, "version")?,
            language_rooms: optional_texts(m, "languageRooms")?,
        },
        "clientProxyLogin" => Request::ClientProxyLogin {
            account_id: text(m, "accountID")?,
            account_cookie: text(m, "accountCookie")?,
            game_room_id: text(m, "gameRoomID")?,
        },
        "sendChatMessage" => Request::SendChatMessage {
            message_text: text(m, "messageText")?,
            channel_type: channel_type(m)?,
            channel_name: text(m, "channelName")?,
        },
        "requestChatHistory" => Request::RequestChatHistory {
            channel_type: channel_type(m)?,
            channel_name: text(m, "channelName")?,
        },
        "activateGameRoom" => Request::ActivateGameRoom {
            host_account_id: text(m, "hostAccountID")?,
            room_type: match text(m, "roomType")?.as_str() {
                "public" => RoomType::Public,
                "private" => RoomType::Private,
                other => return Err(Invalid(format!("roomType {other:?}"))),
            },
            player_limit: player_limit(m)?,
        },
        "joinGameRoom" => Request::JoinGameRoom {
            game_room_id: text(m, "gameRoomID")?,
        },
        "sendInvite" => Request::SendInvite {
            account_id: text(m, "accountID")?,
        },
        "serverLogin" => Request::ServerLogin {
            game_room_id: text(m, "gameRoomID")?,
            account_id: text(m, "accountID")?,
            account_cookie: text(m, "accountCookie")?,
            version: text(m, "version")?,
            mods: mods(m)?,
        },
        "serverProxyLogin" => Request::ServerProxyLogin {
            game_room_id: text(m, "gameRoomID")?,
            guest_account_id: text(m, "guestAccountID")?,
            account_cookie: text(m, "accountCookie")?,
        },
        "changeRoomDescription" => Request::ChangeRoomDescription {
            description: text(m, "description")?,
        },
        "gameStarted" => Request::GameStarted,
        "leaveGameRoom" => Request::LeaveGameRoom {
            account_id: text(m, "accountID")?,
        },
        other => Request::Unknown {
            type_name: other.to_string(),
        },
    })
}

/// A string member. A missing or `null` one reads as "" like
/// `JsonNode::String()` (only reachable for items the schema lets be null).
fn text(m: &BTreeMap<String, Value>, key: &str) -> Result<String, Invalid> {
    string_of(m.get(key), key)
}

fn string_of(value: Option<&Value>, what: &str) -> Result<String, Invalid> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => Err(Invalid(format!("{what} is not a string"))),
    }
}

/// `languageRooms`: absent or `null` -> None; a `null` item reads as "".
fn optional_texts(m: &BTreeMap<String, Value>, key: &str) -> Result<Option<Vec<String>>, Invalid> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| string_of(Some(item), key))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(Invalid(format!("{key} is not an array"))),
    }
}

fn channel_type(m: &BTreeMap<String, Value>) -> Result<ChannelType, Invalid> {
    match text(m, "channelType")?.as_str() {
        "global" => Ok(ChannelType::Global),
        "match" => Ok(ChannelType::Match),
        "player" => Ok(ChannelType::Player),
        other => Err(Invalid(format!("channelType {other:?}"))),
    }
}

/// `playerLimit` as the reference ends up using it: an integer as is, a
/// float truncated towards zero (`JsonNode::Integer()`). NaN passes the
/// schema (`0e999` reads as 0 × inf); x86 converts it to i64::MIN, and the
/// reference then passes that through the 32-bit `int` parameter of
/// `updateRoomPlayerLimit`, which keeps the low half: 0. The oracle shows
/// exactly that (`"playerLimit":0e999` -> an active room with limit 0).
fn player_limit(m: &BTreeMap<String, Value>) -> Result<Option<i64>, Invalid> {
    match m.get("playerLimit") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Integer(limit)) => Ok(Some(*limit)),
        Some(Value::Float(limit)) if limit.is_nan() => Ok(Some(0)),
        Some(Value::Float(limit)) => Ok(Some(limit.trunc() as i64)),
        Some(_) => Err(Invalid("playerLimit is not a number".into())),
    }
}

/// `mods`: absent or `null` -> None. A `null` item passes the schema and
/// reads as a mod with empty fields, like the reference's `modJson[...]`.
fn mods(m: &BTreeMap<String, Value>) -> Result<Option<Vec<ModInfo>>, Invalid> {
    let items = match m.get("mods") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(Invalid("mods is not an array".into())),
    };
    let empty = BTreeMap::new();
    items
        .iter()
        .map(|item| {
            let fields = match item {
                Value::Object(fields) => fields,
                Value::Null => &empty,
                _ => return Err(Invalid("mods item is not an object".into())),
            };
            Ok(ModInfo {
                mod_id: text(fields, "modId")?,
                name: text(fields, "name")?,
                parent: match fields.get("parent") {
                    None | Some(Value::Null) => None,
                    parent => Some(string_of(parent, "parent")?),
                },
                version: text(fields, "version")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

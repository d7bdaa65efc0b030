//! Unit tests of the JSON lobby rules against the in-memory store: every
//! reply sequence of LOBBY-JSON.md §1.5 and every reason of §1.6 the rules
//! can produce, compared as parsed JSON values.

mod accounts;
mod chat;
mod presence;
mod rooms;
mod servers;

use super::memstore::MemStore;
use super::{Action, CloseReason, ConnId, JsonLobby, JsonLobbyConfig, JsonOutbox, Now};
use crate::json::request::{ChannelType, ModInfo, Request, RoomType};
use serde_json::{json, Value};

/// Wall clock at the start of every test.
const T0: i64 = 1_800_000_000;

/// A delivered message or another action, in emission order.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Out {
    Msg(ConnId, Value),
    Close(ConnId, CloseReason),
    Pair(ConnId, ConnId),
}

pub(super) struct Lobby {
    pub lobby: JsonLobby,
    pub store: MemStore,
    pub now: Now,
}

pub(super) fn msg(to: ConnId, v: Value) -> Out {
    Out::Msg(to, v)
}

impl Lobby {
    /// Default configuration without flood control (tests that send many
    /// requests would meet it); the flood test sets its own.
    pub fn new() -> Self {
        let cfg = JsonLobbyConfig {
            chat_rate: 0,
            ..Default::default()
        };
        Self::with(cfg, MemStore::new())
    }

    pub fn with(cfg: JsonLobbyConfig, store: MemStore) -> Self {
        store.data.borrow_mut().now_unix = T0;
        Self {
            lobby: JsonLobby::new(cfg, Box::new(store.clone())),
            store,
            now: Now::new(T0, 0),
        }
    }

    /// Moves both clocks (the lobby's and the store's) forward.
    pub fn advance(&mut self, secs: i64) {
        self.now.unix_secs += secs;
        self.now.mono_ms += secs as u64 * 1000;
        self.store.data.borrow_mut().now_unix = self.now.unix_secs;
    }

    fn collect(out: &mut JsonOutbox) -> Vec<Out> {
        out.drain()
            .map(|a| match a {
                Action::Send { to, payload } => match serde_json::from_slice(&payload) {
                    Ok(v) => Out::Msg(to, v),
                    Err(e) => panic!("unparsable payload {payload:?}: {e}"),
                },
                Action::Close { conn, reason } => Out::Close(conn, reason),
                Action::Pair { server, client } => Out::Pair(server, client),
            })
            .collect()
    }

    pub fn req(&mut self, conn: ConnId, req: Request) -> Vec<Out> {
        let mut out = JsonOutbox::new();
        self.lobby.on_request(conn, req, self.now, &mut out);
        Self::collect(&mut out)
    }

    pub fn invalid(&mut self, conn: ConnId) -> Vec<Out> {
        let mut out = JsonOutbox::new();
        self.lobby.on_invalid(conn, &mut out);
        Self::collect(&mut out)
    }

    pub fn disconnect(&mut self, conn: ConnId) -> Vec<Out> {
        let mut out = JsonOutbox::new();
        self.lobby.on_disconnect(conn, self.now, &mut out);
        Self::collect(&mut out)
    }

    /// Registers `name` on `conn`; returns (accountID, cookie).
    pub fn register(&mut self, conn: ConnId, name: &str) -> (String, String) {
        let out = self.req(conn, register(name));
        let [Out::Msg(to, v)] = &out[..] else {
            panic!("register {name}: {out:?}")
        };
        assert_eq!((*to, v["type"].as_str()), (conn, Some("accountCreated")));
        (
            v["accountID"].as_str().unwrap().to_string(),
            v["accountCookie"].as_str().unwrap().to_string(),
        )
    }

    /// Registers and logs in `name` on `conn` (version 1.7.5); returns the ID.
    pub fn user(&mut self, conn: ConnId, name: &str) -> String {
        self.user_version(conn, name, "1.7.5")
    }

    pub fn user_version(&mut self, conn: ConnId, name: &str, version: &str) -> String {
        let (id, cookie) = self.register(conn, name);
        let out = self.req(conn, login(&id, &cookie, "english", version, None));
        assert!(
            matches!(&out[0], Out::Msg(c, v) if *c == conn && v["type"] == "clientLoginSuccess"),
            "{out:?}"
        );
        id
    }

    /// The stored cookie of an account.
    pub fn cookie(&self, id: &str) -> String {
        let d = self.store.data.borrow();
        let a = d.accounts.iter().find(|a| a.account_id == id).unwrap();
        a.cookies[0].clone()
    }

    /// serverProxyLogin as the room's match server sends it (its host's
    /// cookie; "none" for a room that does not exist).
    pub fn proxy_server(&self, room: &str, guest: &str) -> Request {
        let cookie = self
            .lobby
            .rooms()
            .find(|r| r.id == room)
            .map_or_else(|| "none".to_string(), |r| self.cookie(&r.host_account_id));
        proxy_server_with(room, guest, &cookie)
    }

    /// A match server of `host` on `server` creates `room` (idle).
    pub fn server(&mut self, server: ConnId, host: &str, room: &str) -> Vec<Out> {
        let cookie = self.cookie(host);
        self.req(server, server_login(room, host, &cookie, None))
    }

    /// `host` (logged in on `host_conn`) hosts `room` through a match server
    /// on `server`, activated with `room_type`.
    pub fn hosted(
        &mut self,
        host_conn: ConnId,
        host: &str,
        server: ConnId,
        room: &str,
        t: RoomType,
    ) {
        self.server(server, host, room);
        let out = self.req(host_conn, activate(host, t, Some(8)));
        assert!(
            out.iter().any(
                |o| matches!(o, Out::Msg(c, v) if *c == host_conn && v["type"] == "joinRoomSuccess")
            ),
            "{out:?}"
        );
    }
}

pub(super) fn register(name: &str) -> Request {
    Request::ClientRegister {
        display_name: name.into(),
        language: "english".into(),
        version: "1.7.5".into(),
    }
}

pub(super) fn login(
    id: &str,
    cookie: &str,
    lang: &str,
    version: &str,
    rooms: Option<&[&str]>,
) -> Request {
    Request::ClientLogin {
        account_id: id.into(),
        account_cookie: cookie.into(),
        language: lang.into(),
        version: version.into(),
        language_rooms: rooms.map(|r| r.iter().map(|s| s.to_string()).collect()),
    }
}

pub(super) fn chat(text: &str, channel: ChannelType, name: &str) -> Request {
    Request::SendChatMessage {
        message_text: text.into(),
        channel_type: channel,
        channel_name: name.into(),
    }
}

pub(super) fn history(channel: ChannelType, name: &str) -> Request {
    Request::RequestChatHistory {
        channel_type: channel,
        channel_name: name.into(),
    }
}

pub(super) fn server_login(
    room: &str,
    host: &str,
    cookie: &str,
    mods: Option<Vec<ModInfo>>,
) -> Request {
    Request::ServerLogin {
        game_room_id: room.into(),
        account_id: host.into(),
        account_cookie: cookie.into(),
        version: "1.7.5".into(),
        mods,
    }
}

pub(super) fn activate(host: &str, t: RoomType, limit: Option<i64>) -> Request {
    Request::ActivateGameRoom {
        host_account_id: host.into(),
        room_type: t,
        player_limit: limit,
    }
}

pub(super) fn join(room: &str) -> Request {
    Request::JoinGameRoom {
        game_room_id: room.into(),
    }
}

pub(super) fn invite(id: &str) -> Request {
    Request::SendInvite {
        account_id: id.into(),
    }
}

pub(super) fn proxy_server_with(room: &str, guest: &str, cookie: &str) -> Request {
    Request::ServerProxyLogin {
        game_room_id: room.into(),
        guest_account_id: guest.into(),
        account_cookie: cookie.into(),
    }
}

pub(super) fn proxy_client(id: &str, cookie: &str, room: &str) -> Request {
    Request::ClientProxyLogin {
        account_id: id.into(),
        account_cookie: cookie.into(),
        game_room_id: room.into(),
    }
}

pub(super) fn failed(to: ConnId, reason: &str) -> Vec<Out> {
    vec![msg(
        to,
        json!({"type": "operationFailed", "reason": reason}),
    )]
}

/// `{accountID, displayName}`.
pub(super) fn acc(id: &str, name: &str) -> Value {
    json!({"accountID": id, "displayName": name})
}

/// activeAccounts listing these (id, name) pairs.
pub(super) fn active_accounts(list: &[(&str, &str)]) -> Value {
    let accounts: Vec<Value> = list
        .iter()
        .map(|(id, name)| json!({"accountID": id, "displayName": name, "status": "In Lobby"}))
        .collect();
    json!({"type": "activeAccounts", "accounts": accounts})
}

pub(super) fn active_rooms(rooms: Vec<Value>) -> Value {
    json!({"type": "activeGameRooms", "gameRooms": rooms})
}

/// The messages of `out` sent to `conn`, in order.
pub(super) fn to(out: &[Out], conn: ConnId) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Out::Msg(c, v) if *c == conn => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// The `type`s of `out`, in order, with recipients.
pub(super) fn types(out: &[Out]) -> Vec<(ConnId, String)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Msg(c, v) => Some((*c, v["type"].as_str().unwrap_or("").to_string())),
            _ => None,
        })
        .collect()
}

/// A room object as §1.4 writes it; empty lists are left out.
pub(super) struct RoomV<'a> {
    pub id: &'a str,
    pub host: &'a str,
    pub host_name: &'a str,
    pub description: &'a str,
    pub status: &'a str,
    pub limit: i64,
    pub age: i64,
    pub participants: Vec<Value>,
    pub invited: Vec<Value>,
}

impl RoomV<'_> {
    pub fn json(&self) -> Value {
        let mut v = json!({
            "gameRoomID": self.id, "hostAccountID": self.host,
            "hostAccountDisplayName": self.host_name, "description": self.description,
            "version": "1.7.5", "status": self.status, "playerLimit": self.limit,
            "ageSeconds": self.age,
        });
        if !self.participants.is_empty() {
            v["participants"] = Value::Array(self.participants.clone());
        }
        if !self.invited.is_empty() {
            v["invited"] = Value::Array(self.invited.clone());
        }
        v
    }
}

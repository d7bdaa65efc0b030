//! The JSON lobby rules' hot paths, socket-free, against the in-memory
//! store (so the figures are the rules' own cost, not SQLite's):
//!
//! 1. `json_chat_1k`: one global chat line from one of 1,000 logged-in
//!    accounts: sanitising, the ring, one store write, one payload shared by
//!    1,000 `Send`s.
//! 2. `json_login_logout_1k`: a clientLogin and its disconnect with 1,000
//!    accounts online and 50 public rooms (the full reply sequence and the
//!    activeAccounts/activeGameRooms broadcasts to everyone).
//! 3. `json_write_chat`: one chatMessage with a 200-character text through
//!    the escape-free writer.
//!
//! Run with `cargo bench --bench json_lobby`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use vcmi_proxy::json::lobby::memstore::MemStore;
use vcmi_proxy::json::lobby::messages::Outgoing;
use vcmi_proxy::json::lobby::{Action, JsonLobby, JsonLobbyConfig, JsonOutbox, Now};
use vcmi_proxy::json::request::{ChannelType, Request, RoomType};
use vcmi_proxy::json::writer;

const USERS: usize = 1_000;
const ROOMS: usize = 50;

/// A lobby with `USERS` accounts logged in on connections 0.., and `ROOMS`
/// public rooms hosted by the first accounts (control connections 100_000..).
fn populated() -> (JsonLobby, Vec<(String, String)>) {
    let cfg = JsonLobbyConfig {
        chat_rate: 0,
        ..Default::default()
    };
    let mut lobby = JsonLobby::new(cfg, Box::new(MemStore::new()));
    let now = Now::new(1_800_000_000, 0);
    let mut out = JsonOutbox::new();
    let mut creds = Vec::new();
    for i in 0..USERS {
        let reg = Request::ClientRegister {
            display_name: format!("player{i:05}"),
            language: "english".into(),
            version: "1.7.5".into(),
        };
        lobby.on_request(i, reg, now, &mut out);
        let (id, cookie) = match out.drain().next() {
            Some(Action::Send { payload, .. }) => {
                let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                (
                    v["accountID"].as_str().unwrap().to_string(),
                    v["accountCookie"].as_str().unwrap().to_string(),
                )
            }
            other => panic!("{other:?}"),
        };
        lobby.on_request(i, login(&id, &cookie), now, &mut out);
        out.clear();
        creds.push((id, cookie));
    }
    for (i, (id, cookie)) in creds.iter().take(ROOMS).enumerate() {
        let server = Request::ServerLogin {
            game_room_id: format!("room{i}"),
            account_id: id.clone(),
            account_cookie: cookie.clone(),
            version: "1.7.5".into(),
            mods: None,
        };
        lobby.on_request(100_000 + i, server, now, &mut out);
        let activate = Request::ActivateGameRoom {
            host_account_id: id.clone(),
            room_type: RoomType::Public,
            player_limit: Some(8),
        };
        lobby.on_request(i, activate, now, &mut out);
        out.clear();
    }
    (lobby, creds)
}

fn login(id: &str, cookie: &str) -> Request {
    Request::ClientLogin {
        account_id: id.into(),
        account_cookie: cookie.into(),
        language: "english".into(),
        version: "1.7.5".into(),
        language_rooms: Some(vec!["english".into()]),
    }
}

fn benches(c: &mut Criterion) {
    let (mut lobby, creds) = populated();
    let now = Now::new(1_800_000_000, 0);
    let mut out = JsonOutbox::new();
    let line = Request::SendChatMessage {
        message_text: "gl hf, anyone for a 2v2 on Jebus Cross?".into(),
        channel_type: ChannelType::Global,
        channel_name: "english".into(),
    };
    c.bench_function("json_chat_1k", |b| {
        b.iter(|| {
            lobby.on_request(7, line.clone(), now, &mut out);
            assert_eq!(out.actions().len(), USERS);
            out.clear();
        })
    });

    let (id, cookie) = &creds[USERS - 1];
    let conn = USERS - 1;
    c.bench_function("json_login_logout_1k", |b| {
        b.iter(|| {
            lobby.on_disconnect(conn, now, &mut out);
            lobby.on_request(conn, login(id, cookie), now, &mut out);
            black_box(out.actions().len());
            out.clear();
        })
    });

    let text = "ñ😀 ".repeat(50);
    c.bench_function("json_write_chat", |b| {
        b.iter(|| {
            black_box(writer::to_payload(&Outgoing::ChatMessage {
                message_text: black_box(&text),
                account_id: "0c7b8f2e-3a41-4a57-9a0e-5d3f0b3c9e11",
                display_name: "player00007",
                channel_type: "global",
                channel_name: "english",
            }))
        })
    });
}

criterion_group!(json_lobby, benches);
criterion_main!(json_lobby);

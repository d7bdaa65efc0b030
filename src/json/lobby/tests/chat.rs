//! sendChatMessage, requestChatHistory, chatHistory at login, flood control
//! (§1.5 items 8–9, §1.7).

use super::*;
use crate::json::lobby::memstore::MemChat;

fn chat_message(text: &str, id: &str, name: &str, channel: &str, channel_name: &str) -> Value {
    json!({"type": "chatMessage", "messageText": text, "accountID": id, "displayName": name,
        "channelType": channel, "channelName": channel_name})
}

fn line(id: &str, name: &str, text: &str, age: i64) -> Value {
    json!({"accountID": id, "displayName": name, "messageText": text, "ageSeconds": age})
}

fn chat_history(channel: &str, name: &str, lines: Vec<Value>) -> Value {
    json!({"type": "chatHistory", "channelType": channel, "channelName": name, "messages": lines})
}

#[test]
fn global_chat_goes_to_everyone_and_costs_one_write_no_read() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    l.user(2, "Bob1");
    let reads = l.store.data.borrow().reads;
    // The original text (not the sanitised one) is stored and broadcast.
    let text = " {hi}\tthere \\n 😀 ";
    let out = l.req(1, chat(text, ChannelType::Global, "english"));
    let m = chat_message(text, &a, "Alice", "global", "english");
    assert_eq!(out, vec![msg(1, m.clone()), msg(2, m)]);
    let d = l.store.data.borrow();
    assert_eq!(d.reads, reads, "a chat line reads nothing");
    assert_eq!(
        d.chat,
        vec![MemChat {
            sender_id: a.clone(),
            channel: ChannelType::Global,
            channel_name: "english".into(),
            text: text.into(),
            at_unix: T0
        }]
    );
}

#[test]
fn broadcast_shares_one_payload() {
    let mut l = Lobby::new();
    l.user(1, "Alice");
    l.user(2, "Bob1");
    let mut out = JsonOutbox::new();
    l.lobby.on_request(
        1,
        chat("x", ChannelType::Global, "english"),
        l.now,
        &mut out,
    );
    let payloads: Vec<&bytes::Bytes> = out
        .actions()
        .iter()
        .map(|a| match a {
            Action::Send { payload, .. } => payload,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(payloads.len(), 2);
    assert_eq!(payloads[0].as_ptr(), payloads[1].as_ptr());
}

#[test]
fn chat_refusals() {
    let mut l = Lobby::new();
    l.user(1, "Alice");
    for empty in ["", "   ", "{}", "{ }", "\n\t"] {
        assert_eq!(
            l.req(1, chat(empty, ChannelType::Global, "english")),
            failed(1, "No printable characters in sent message!"),
            "{empty:?}"
        );
    }
    assert_eq!(
        l.req(1, chat("a\u{40000}", ChannelType::Global, "english")),
        failed(1, "String contains invalid characters!")
    );
    for lang in ["klingon", "English", ""] {
        assert_eq!(
            l.req(1, chat("hi", ChannelType::Global, lang)),
            failed(1, "Unknown language!")
        );
    }
    assert_eq!(
        l.req(1, chat("hi", ChannelType::Match, "no-room")),
        failed(1, "Can not access room you are not part of!")
    );
    assert_eq!(
        l.req(1, chat("hi", ChannelType::Player, "nobody")),
        failed(1, "Such player does not exists!")
    );
    assert!(l.store.data.borrow().chat.is_empty());
}

#[test]
fn every_head_language_is_a_channel() {
    let mut l = Lobby::new();
    l.user(1, "Alice");
    for lang in [
        "czech",
        "vietnamese",
        "belarusian",
        "serbian",
        "tchinese",
        "lithuanian",
    ] {
        assert_eq!(
            types(&l.req(1, chat("hi", ChannelType::Global, lang))),
            vec![(1, "chatMessage".into())]
        );
    }
}

#[test]
fn player_chat_both_ways() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    let out = l.req(1, chat("psst", ChannelType::Player, &b));
    assert_eq!(
        out,
        vec![
            msg(1, chat_message("psst", &a, "Alice", "player", &b)),
            msg(2, chat_message("psst", &a, "Alice", "player", &a)),
        ]
    );
    // To oneself: one copy. To an offline account: stored, sender's copy only.
    let out = l.req(1, chat("me", ChannelType::Player, &a));
    assert_eq!(
        out,
        vec![msg(1, chat_message("me", &a, "Alice", "player", &a))]
    );
    l.disconnect(2);
    let out = l.req(1, chat("later", ChannelType::Player, &b));
    assert_eq!(
        out,
        vec![msg(1, chat_message("later", &a, "Alice", "player", &b))]
    );
    let key = if a < b {
        format!("{a}_{b}")
    } else {
        format!("{b}_{a}")
    };
    let d = l.store.data.borrow();
    assert_eq!(d.chat[0].channel_name, key);
    assert_eq!(d.chat[1].channel_name, format!("{a}_{a}"));
    drop(d);
    // History of the pair, named after the other account, from either side.
    l.advance(5);
    let out = l.req(1, history(ChannelType::Player, &b));
    assert_eq!(
        out,
        vec![msg(
            1,
            chat_history(
                "player",
                &b,
                vec![line(&a, "Alice", "psst", 5), line(&a, "Alice", "later", 5)]
            )
        )]
    );
    assert_eq!(
        l.req(1, history(ChannelType::Player, "nobody")),
        failed(1, "Such player does not exists!")
    );
}

#[test]
fn global_history_keeps_100_of_the_last_18_hours() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    l.req(1, chat("old", ChannelType::Global, "german"));
    l.advance(18 * 3600 - 10);
    for i in 0..100 {
        l.req(1, chat(&format!("m{i}"), ChannelType::Global, "german"));
    }
    l.advance(9);
    // 101 lines: the oldest is out of the ring (100 kept), all younger than 18 h.
    let out = l.req(1, history(ChannelType::Global, "german"));
    let lines: Vec<Value> = (0..100)
        .map(|i| line(&a, "Alice", &format!("m{i}"), 9))
        .collect();
    assert_eq!(out, vec![msg(1, chat_history("global", "german", lines))]);
    // An unaccepted name: empty, no store read.
    let reads = l.store.data.borrow().reads;
    assert_eq!(
        l.req(1, history(ChannelType::Global, "klingon")),
        vec![msg(1, chat_history("global", "klingon", vec![]))]
    );
    assert_eq!(l.store.data.borrow().reads, reads);
    // Age limit.
    l.advance(18 * 3600);
    assert_eq!(
        l.req(1, history(ChannelType::Global, "german")),
        vec![msg(1, chat_history("global", "german", vec![]))]
    );
}

#[test]
fn global_history_survives_a_restart_and_shows_at_login() {
    let store = MemStore::new();
    let (a, cookie) = {
        let mut l = Lobby::with(JsonLobbyConfig::default(), store.clone());
        let a = l.user(1, "Alice");
        l.req(1, chat("before", ChannelType::Global, "english"));
        (a.clone(), l.cookie(&a))
    };
    store.data.borrow_mut().now_unix = T0 + 60;
    let mut l = Lobby::with(JsonLobbyConfig::default(), store);
    l.advance(60);
    let out = l.req(1, login(&a, &cookie, "english", "1.7.5", None));
    assert_eq!(
        to(&out, 1)[1],
        chat_history("global", "english", vec![line(&a, "Alice", "before", 60)])
    );
}

#[test]
fn history_ring_is_bounded_in_bytes() {
    let cfg = JsonLobbyConfig {
        history_bytes: 1000,
        ..Default::default()
    };
    let mut l = Lobby::with(cfg, MemStore::new());
    l.user(1, "Alice");
    let big = "x".repeat(400);
    for _ in 0..5 {
        l.req(1, chat(&big, ChannelType::Global, "english"));
    }
    let out = l.req(1, history(ChannelType::Global, "english"));
    assert_eq!(to(&out, 1)[0]["messages"].as_array().unwrap().len(), 2);
}

#[test]
fn flood_drops_silently_and_refills() {
    let cfg = JsonLobbyConfig {
        chat_rate: 1,
        chat_burst: 3,
        ..Default::default()
    };
    let mut l = Lobby::with(cfg, MemStore::new());
    l.user(1, "Alice");
    // clientRegister took a token too.
    l.advance(3);
    for _ in 0..3 {
        assert_eq!(l.req(1, chat("x", ChannelType::Global, "english")).len(), 1);
    }
    assert_eq!(l.req(1, chat("x", ChannelType::Global, "english")), vec![]);
    assert_eq!(l.req(1, history(ChannelType::Global, "english")), vec![]);
    assert_eq!(l.lobby.stats().flood_drops, 2);
    assert_eq!(l.store.data.borrow().chat.len(), 3);
    l.advance(1);
    assert_eq!(l.req(1, chat("x", ChannelType::Global, "english")).len(), 1);
}

#[test]
fn match_chat_is_delivered_only_in_closed_rooms() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    let c = l.user(3, "Carol");
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    l.req(2, join("room1"));
    // Live room: stored, delivered to nobody (chat runs in the match server).
    assert_eq!(l.req(2, chat("gg", ChannelType::Match, "room1")), vec![]);
    assert_eq!(
        l.req(3, chat("hi", ChannelType::Match, "room1")),
        failed(3, "Can not access room you are not part of!")
    );
    assert_eq!(
        l.req(3, history(ChannelType::Match, "room1")),
        failed(3, "Can not access room you are not part of!")
    );
    l.req(10, Request::GameStarted);
    l.disconnect(10);
    // Closed: every logged-in participant gets it, the sender included.
    let out = l.req(2, chat("wp", ChannelType::Match, "room1"));
    let m = chat_message("wp", &b, "Bob1", "match", "room1");
    assert_eq!(out, vec![msg(1, m.clone()), msg(2, m)]);
    let out = l.req(1, history(ChannelType::Match, "room1"));
    assert_eq!(
        out,
        vec![msg(
            1,
            chat_history(
                "match",
                "room1",
                vec![line(&b, "Bob1", "gg", 0), line(&b, "Bob1", "wp", 0)]
            )
        )]
    );
    let _ = c;
}

#[test]
fn match_chat_of_a_room_closed_before_a_restart() {
    let store = MemStore::new();
    let (a, b, cookie_b) = {
        let mut l = Lobby::with(JsonLobbyConfig::default(), store.clone());
        let a = l.user(1, "Alice");
        let b = l.user(2, "Bob1");
        l.hosted(1, &a, 10, "room1", RoomType::Public);
        l.req(2, join("room1"));
        l.req(10, Request::GameStarted);
        l.disconnect(10);
        (a, b.clone(), l.cookie(&b))
    };
    let mut l = Lobby::with(JsonLobbyConfig::default(), store);
    let cookie_a = l.cookie(&a);
    l.req(1, login(&a, &cookie_a, "english", "1.7.5", None));
    l.req(2, login(&b, &cookie_b, "english", "1.7.5", None));
    let out = l.req(2, chat("rematch?", ChannelType::Match, "room1"));
    let m = chat_message("rematch?", &b, "Bob1", "match", "room1");
    assert_eq!(out, vec![msg(1, m.clone()), msg(2, m)]);
}

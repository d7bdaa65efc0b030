//! activateGameRoom, joinGameRoom, sendInvite and the room lists (§1.5
//! items 4, 5, 10; decisions (b) and (f) of the module doc).

use super::*;
use crate::json::store::RoomStatus;

fn join_success(room: &str, proxy: bool) -> Value {
    json!({"type": "joinRoomSuccess", "gameRoomID": room, "proxyMode": proxy})
}

#[test]
fn activate_reply_sequence() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    assert_eq!(
        l.server(10, &a, "room1"),
        vec![msg(
            10,
            json!({"type": "serverLoginSuccess", "accountCookie": l.cookie(&a)})
        )]
    );
    l.advance(7);
    let out = l.req(1, activate(&a, RoomType::Public, Some(4)));
    let room = RoomV {
        id: "room1",
        host: &a,
        host_name: "Alice",
        description: "",
        status: "public",
        limit: 4,
        age: 7,
        participants: vec![acc(&a, "Alice")],
        invited: vec![],
    }
    .json();
    assert_eq!(
        out,
        vec![
            msg(1, active_rooms(vec![room.clone()])),
            msg(2, active_rooms(vec![room])),
            msg(1, join_success("room1", false)),
        ]
    );
    let d = l.store.data.borrow();
    assert_eq!(
        (d.rooms[0].status, d.rooms[0].player_limit),
        (RoomStatus::Public, 4)
    );
    assert_eq!(d.participants, vec![("room1".to_string(), a.clone())]);
    let _ = b;
}

#[test]
fn activate_without_limit_means_8_and_private() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    l.server(10, &a, "room1");
    let out = l.req(1, activate(&a, RoomType::Private, None));
    assert_eq!(to(&out, 1)[0]["gameRooms"][0]["playerLimit"], 8);
    assert_eq!(to(&out, 1)[0]["gameRooms"][0]["status"], "private");
    assert_eq!(l.store.data.borrow().rooms[0].player_limit, 8);
}

#[test]
fn activate_refusals() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    // No idle room of that host.
    assert_eq!(
        l.req(1, activate(&a, RoomType::Public, None)),
        failed(1, "Failed to find idle server to join!")
    );
    // Decided (b): Bob may not activate Alice's idle room.
    l.server(10, &a, "room1");
    assert_eq!(
        l.req(2, activate(&a, RoomType::Public, None)),
        failed(2, "Failed to find idle server to join!")
    );
    assert_eq!(l.lobby.room_status("room1"), Some(RoomStatus::Idle));
    l.req(1, activate(&a, RoomType::Public, None));
    // Already in an active room (checked first).
    l.server(11, &a, "room2");
    assert_eq!(
        l.req(1, activate(&a, RoomType::Public, None)),
        failed(1, "Player already in the room!")
    );
    let _ = b;
}

#[test]
fn activate_takes_the_newest_idle_room_of_the_host() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    l.server(10, &a, "old");
    l.server(11, &a, "new");
    let out = l.req(1, activate(&a, RoomType::Public, None));
    assert_eq!(to(&out, 1)[1], join_success("new", false));
}

#[test]
fn join_reply_sequence_and_no_reply_to_the_joiner() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    let out = l.req(2, join("room1"));
    let room = RoomV {
        id: "room1",
        host: &a,
        host_name: "Alice",
        description: "",
        status: "public",
        limit: 8,
        age: 0,
        participants: vec![acc(&a, "Alice"), acc(&b, "Bob1")],
        invited: vec![],
    }
    .json();
    assert_eq!(
        out,
        vec![
            msg(10, json!({"type": "accountJoinsRoom", "accountID": b})),
            msg(1, active_rooms(vec![room.clone()])),
            msg(2, active_rooms(vec![room])),
        ]
    );
    assert_eq!(l.store.data.borrow().participants.len(), 2);
}

#[test]
fn join_checks_in_the_reference_order() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    let c = l.user(3, "Carol");
    let d = l.user(4, "Dave");
    // 2. no such room
    assert_eq!(
        l.req(2, join("nope")),
        failed(2, "Failed to find game room to join!")
    );
    // 3. idle room
    l.server(10, &a, "room1");
    assert_eq!(
        l.req(2, join("room1")),
        failed(2, "Room does not accepts new players!")
    );
    // 4. private without invite
    l.req(1, activate(&a, RoomType::Private, Some(2)));
    assert_eq!(
        l.req(2, join("room1")),
        failed(
            2,
            "You are not permitted to join private room without invite!"
        )
    );
    // invited: joins; 5. then full
    l.req(1, invite(&b));
    assert_eq!(
        types(&l.req(2, join("room1")))[0],
        (10, "accountJoinsRoom".into())
    );
    l.req(1, invite(&c));
    assert_eq!(l.req(3, join("room1")), failed(3, "Room is already full!"));
    // 1. already in an active room, checked before everything else
    l.server(11, &c, "room2");
    l.req(3, activate(&c, RoomType::Public, None));
    assert_eq!(
        l.req(2, join("room2")),
        failed(2, "Player already in the room!")
    );
    // 3. busy
    l.req(11, Request::GameStarted);
    assert_eq!(
        l.req(4, join("room2")),
        failed(4, "Room does not accepts new players!")
    );
    // A control connection that is gone: no room.
    l.disconnect(11);
    assert_eq!(
        l.req(4, join("room2")),
        failed(4, "Failed to find game room to join!")
    );
    let _ = d;
}

#[test]
fn rejoin_after_reconnect_repeats_the_join() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    l.hosted(1, &a, 10, "room1", RoomType::Private);
    l.req(1, invite(&b));
    l.req(2, join("room1"));
    // Bob's client drops and logs in again: still a participant.
    l.disconnect(2);
    let cookie = l.cookie(&b);
    l.req(3, login(&b, &cookie, "english", "1.7.5", None));
    let out = l.req(3, join("room1"));
    assert_eq!(
        types(&out),
        vec![
            (10, "accountJoinsRoom".into()),
            (1, "activeGameRooms".into()),
            (3, "activeGameRooms".into())
        ]
    );
    assert_eq!(
        to(&out, 1)[0]["gameRooms"][0]["participants"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(l.store.data.borrow().participants.len(), 2);
    // But not into another room.
    let c = l.user(4, "Carol");
    l.hosted(4, &c, 11, "room2", RoomType::Public);
    assert_eq!(
        l.req(3, join("room2")),
        failed(3, "Player already in the room!")
    );
}

#[test]
fn invite_reply_sequence() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    l.hosted(1, &a, 10, "room1", RoomType::Private);
    let out = l.req(1, invite(&b));
    let room = RoomV {
        id: "room1",
        host: &a,
        host_name: "Alice",
        description: "",
        status: "private",
        limit: 8,
        age: 0,
        participants: vec![acc(&a, "Alice")],
        invited: vec![acc(&b, "Bob1")],
    }
    .json();
    assert_eq!(
        out,
        vec![
            msg(
                2,
                json!({"type": "inviteReceived", "accountID": a, "gameRoomID": "room1"})
            ),
            msg(1, active_rooms(vec![room.clone()])),
            msg(2, active_rooms(vec![room])),
        ]
    );
    assert_eq!(
        l.store.data.borrow().invites,
        vec![("room1".to_string(), b.clone())]
    );
}

#[test]
fn invite_checks_in_the_reference_order() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    let c = l.user(3, "Carol");
    // 1. offline or nonexistent target (before "not in the room")
    assert_eq!(
        l.req(1, invite("nobody")),
        failed(1, "Player is offline or does not exists!")
    );
    // 2. sender in no room
    assert_eq!(l.req(1, invite(&b)), failed(1, "You are not in the room!"));
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    l.hosted(3, &c, 11, "room2", RoomType::Public);
    // 3. target in a room
    assert_eq!(
        l.req(1, invite(&c)),
        failed(1, "This player is already in a room!")
    );
    // 4. twice
    l.req(1, invite(&b));
    assert_eq!(
        l.req(1, invite(&b)),
        failed(1, "This player is already invited!")
    );
    l.disconnect(2);
    assert_eq!(
        l.req(1, invite(&b)),
        failed(1, "Player is offline or does not exists!")
    );
}

#[test]
fn room_lists_are_newest_first_and_hide_idle_rooms() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    l.hosted(1, &a, 10, "first", RoomType::Public);
    l.advance(1);
    l.hosted(2, &b, 11, "second", RoomType::Public);
    let c = l.user(3, "Carol");
    l.server(12, &c, "idle");
    let out = l.req(3, history(ChannelType::Global, "english"));
    assert_eq!(types(&out), vec![(3, "chatHistory".into())]);
    let cookie = l.cookie(&c);
    l.disconnect(3);
    let out = l.req(3, login(&c, &cookie, "english", "1.7.5", None));
    let rooms = to(&out, 3)
        .into_iter()
        .find(|v| v["type"] == "activeGameRooms")
        .unwrap();
    let ids: Vec<&str> = rooms["gameRooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["gameRoomID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["second", "first"]);
    assert_eq!(l.lobby.rooms().count(), 3);
}

#[test]
fn no_rejoin_for_the_host_or_with_a_live_proxy() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    assert_eq!(
        l.req(1, join("room1")),
        failed(1, "Player already in the room!")
    );
    l.req(2, join("room1"));
    l.req(20, l.proxy_server("room1", &b));
    let cookie = l.cookie(&b);
    l.req(21, proxy_client(&b, &cookie, "room1"));
    assert_eq!(
        l.req(2, join("room1")),
        failed(2, "Player already in the room!")
    );
    // Once the pair is gone (game connection lost), re-joining works.
    l.disconnect(21);
    l.disconnect(20);
    assert_eq!(
        types(&l.req(2, join("room1")))[0],
        (10, "accountJoinsRoom".into())
    );
}

//! Match servers and proxy pairing (§1.5 items 3, 6, 7, 11–13, §1.10;
//! decisions (c), (d), (e) and the mods of the module doc).

use super::*;

fn mod_info(id: &str, name: &str, parent: Option<&str>) -> ModInfo {
    ModInfo {
        mod_id: id.into(),
        name: name.into(),
        parent: parent.map(Into::into),
        version: "1.2".into(),
    }
}

#[test]
fn server_login_creates_an_idle_room_without_broadcast() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let cookie = l.cookie(&a);
    let out = l.req(10, server_login("room1", &a, &cookie, None));
    assert_eq!(
        out,
        vec![msg(
            10,
            json!({"type": "serverLoginSuccess", "accountCookie": cookie})
        )]
    );
    let room = l.lobby.rooms().next().unwrap();
    assert_eq!(
        (room.id.as_str(), room.control, room.player_limit),
        ("room1", 10, 8)
    );
    let d = l.store.data.borrow();
    assert_eq!(
        (d.rooms[0].room_id.as_str(), d.rooms[0].version.as_str()),
        ("room1", "1.7.5")
    );
}

#[test]
fn server_login_refusals() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let cookie = l.cookie(&a);
    assert_eq!(
        l.req(10, server_login("r", &a, "bad", None)),
        failed(10, "Invalid credentials")
    );
    assert_eq!(
        l.req(10, server_login("r", "nobody", &cookie, None)),
        failed(10, "Invalid credentials")
    );
    // Still unauthenticated after a refusal.
    assert_eq!(
        l.invalid(10),
        vec![Out::Close(10, CloseReason::Unauthenticated)]
    );
    l.server(11, &a, "r");
    assert_eq!(
        l.req(12, server_login("r", &a, &cookie, None)),
        failed(12, "Invalid credentials")
    );
    assert_eq!(l.lobby.rooms().next().unwrap().control, 11);
}

#[test]
fn room_control_ignores_invalid_and_foreign_requests() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    l.server(10, &a, "room1");
    assert_eq!(l.invalid(10), vec![]);
    assert_eq!(l.req(10, chat("x", ChannelType::Global, "english")), vec![]);
    assert_eq!(
        l.req(
            10,
            Request::Unknown {
                type_name: "x".into()
            }
        ),
        vec![]
    );
}

#[test]
fn mods_are_listed_with_name_and_parent() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let cookie = l.cookie(&a);
    let mods = vec![
        mod_info("hota", "Horn of the Abyss", None),
        mod_info("hota.sub", "Sub", None),
        mod_info("x.y.z", "Deep", Some("x.y")),
    ];
    l.req(10, server_login("room1", &a, &cookie, Some(mods.clone())));
    let out = l.req(1, activate(&a, RoomType::Public, None));
    assert_eq!(
        to(&out, 1)[0]["gameRooms"][0]["mods"],
        json!([
            {"modId": "hota", "name": "Horn of the Abyss", "version": "1.2"},
            {"modId": "hota.sub", "name": "Sub", "version": "1.2", "parent": "hota"},
            {"modId": "x.y.z", "name": "Deep", "version": "1.2", "parent": "x.y"},
        ])
    );
    assert_eq!(l.store.data.borrow().rooms[0].mods, mods);
}

#[test]
fn description_changes_by_client_version_and_not_for_idle_rooms() {
    let mut l = Lobby::new();
    let a = l.user_version(1, "Alice", "1.7.4");
    l.user_version(2, "Bob1", "1.6.8");
    l.server(10, &a, "room1");
    let describe = |d: &str| Request::ChangeRoomDescription {
        description: d.into(),
    };
    // Idle: stored, sent to nobody.
    assert_eq!(l.req(10, describe("Arena")), vec![]);
    assert_eq!(l.store.data.borrow().rooms[0].description, "Arena");
    l.req(1, activate(&a, RoomType::Public, None));
    let out = l.req(10, describe("Jebus Cross"));
    let room = RoomV {
        id: "room1",
        host: &a,
        host_name: "Alice",
        description: "Jebus Cross",
        status: "public",
        limit: 8,
        age: 0,
        participants: vec![acc(&a, "Alice")],
        invited: vec![],
    }
    .json();
    assert_eq!(
        out,
        vec![
            msg(1, json!({"type": "updateGameRoom", "room": room})),
            msg(2, active_rooms(vec![room.clone()])),
        ]
    );
}

#[test]
fn game_started_and_leave() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    l.req(2, join("room1"));
    let leave = |id: &str| Request::LeaveGameRoom {
        account_id: id.into(),
    };
    let out = l.req(10, leave(&b));
    assert_eq!(
        types(&out),
        vec![(1, "activeGameRooms".into()), (2, "activeGameRooms".into())]
    );
    assert_eq!(
        to(&out, 1)[0]["gameRooms"][0]["participants"],
        json!([acc(&a, "Alice")])
    );
    assert_eq!(l.store.data.borrow().participants.len(), 1);
    // Decided (d): not in the room -> no operationFailed to the match server.
    assert_eq!(l.req(10, leave(&b)), vec![]);
    assert_eq!(l.req(10, leave("nobody")), vec![]);
    let out = l.req(10, Request::GameStarted);
    assert_eq!(to(&out, 2)[0]["gameRooms"][0]["status"], "busy");
    assert_eq!(
        l.lobby.room_status("room1"),
        Some(crate::json::store::RoomStatus::Busy)
    );
}

/// Alice hosts room1 on control 10; Bob (conn 2) joined.
fn room_with_guest() -> (Lobby, String, String) {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    l.req(2, join("room1"));
    (l, a, b)
}

#[test]
fn proxy_mode_sequence() {
    let (mut l, _a, b) = room_with_guest();
    // The match server's new connection: the guest is told, no reply here.
    let out = l.req(20, l.proxy_server("room1", &b));
    assert_eq!(
        out,
        vec![msg(
            2,
            json!({"type": "joinRoomSuccess", "gameRoomID": "room1", "proxyMode": true})
        )]
    );
    // The guest's new connection: paired, no reply.
    let cookie = l.cookie(&b);
    assert_eq!(
        l.req(21, proxy_client(&b, &cookie, "room1")),
        vec![Out::Pair(20, 21)]
    );
    assert_eq!(l.lobby.stats().proxy_pairs, 1);
    // Both are proxied now: the rules ignore whatever reaches them.
    assert_eq!(l.invalid(20), vec![]);
    assert_eq!(l.req(21, register("Mallory")), vec![]);
    // Teardown from either side closes the other, once, no broadcast.
    assert_eq!(
        l.disconnect(21),
        vec![Out::Close(20, CloseReason::ProxyPeerGone)]
    );
    assert_eq!(l.disconnect(20), vec![]);
}

#[test]
fn proxy_teardown_from_the_server_side() {
    let (mut l, _a, b) = room_with_guest();
    l.req(20, l.proxy_server("room1", &b));
    let cookie = l.cookie(&b);
    l.req(21, proxy_client(&b, &cookie, "room1"));
    assert_eq!(
        l.disconnect(20),
        vec![Out::Close(21, CloseReason::ProxyPeerGone)]
    );
    assert_eq!(l.disconnect(21), vec![]);
    // The control connection and the room are independent of the pair.
    assert!(l.lobby.room_status("room1").is_some());
}

#[test]
fn server_proxy_login_refusals() {
    let (mut l, a, b) = room_with_guest();
    let c = l.user(3, "Carol");
    // Decided (c): no such room, or the guest is not its participant.
    assert_eq!(
        l.req(20, l.proxy_server("nope", &b)),
        failed(20, "Invalid credentials")
    );
    assert_eq!(
        l.req(20, l.proxy_server("room1", &c)),
        failed(20, "Invalid credentials")
    );
    // Not the host's cookie: the guest's own, another account's, none.
    let (cb, cc) = (l.cookie(&b), l.cookie(&c));
    for cookie in [cb.as_str(), cc.as_str(), "whatever"] {
        assert_eq!(
            l.req(20, proxy_server_with("room1", &b, cookie)),
            failed(20, "Invalid credentials")
        );
    }
    let _ = l.cookie(&a);
    // Guest not logged in (the reference's own check).
    l.disconnect(2);
    assert_eq!(
        l.req(20, l.proxy_server("room1", &b)),
        failed(20, "Invalid credentials")
    );
    assert_eq!(
        l.req(20, l.proxy_server("room1", "nobody")),
        failed(20, "Invalid credentials")
    );
    let _ = a;
}

#[test]
fn client_proxy_login_refusals_close() {
    let (mut l, _a, b) = room_with_guest();
    let cookie = l.cookie(&b);
    let refused = |c: ConnId| {
        let mut v = failed(c, "Invalid credentials");
        v.push(Out::Close(c, CloseReason::ProxyLoginFailed));
        v
    };
    // Nothing awaiting.
    assert_eq!(l.req(21, proxy_client(&b, &cookie, "room1")), refused(21));
    l.req(20, l.proxy_server("room1", &b));
    // Wrong cookie, wrong room.
    assert_eq!(l.req(22, proxy_client(&b, "bad", "room1")), refused(22));
    assert_eq!(l.req(23, proxy_client(&b, &cookie, "room2")), refused(23));
    // The entry is erased with the match server's connection.
    assert_eq!(l.disconnect(20), vec![]);
    assert_eq!(l.req(24, proxy_client(&b, &cookie, "room1")), refused(24));
}

#[test]
fn two_guests_pair_with_their_own_connections() {
    let (mut l, _a, b) = room_with_guest();
    let c = l.user(3, "Carol");
    l.req(3, join("room1"));
    l.req(20, l.proxy_server("room1", &b));
    l.req(30, l.proxy_server("room1", &c));
    let (cb, cc) = (l.cookie(&b), l.cookie(&c));
    assert_eq!(
        l.req(31, proxy_client(&c, &cc, "room1")),
        vec![Out::Pair(30, 31)]
    );
    assert_eq!(
        l.req(21, proxy_client(&b, &cb, "room1")),
        vec![Out::Pair(20, 21)]
    );
}

#[test]
fn a_waiting_connection_that_takes_another_role_stops_waiting() {
    let (mut l, a, b) = room_with_guest();
    let cb = l.cookie(&b);
    // The waiting connection logs in as an account instead.
    l.req(20, l.proxy_server("room1", &b));
    let ca = l.cookie(&a);
    l.req(20, login(&a, &ca, "english", "1.7.5", None));
    assert_eq!(
        l.req(21, proxy_client(&b, &cb, "room1")),
        vec![
            failed(21, "Invalid credentials").remove(0),
            Out::Close(21, CloseReason::ProxyLoginFailed)
        ]
    );
    // A waiting connection that pairs as a guest elsewhere stops waiting.
    let c = l.user(3, "Carol");
    l.req(3, join("room1"));
    l.req(30, l.proxy_server("room1", &c));
    l.req(31, l.proxy_server("room1", &b));
    let cc = l.cookie(&c);
    assert_eq!(
        l.req(31, proxy_client(&c, &cc, "room1")),
        vec![Out::Pair(30, 31)]
    );
    assert_eq!(
        l.req(32, proxy_client(&b, &cb, "room1")),
        vec![
            failed(32, "Invalid credentials").remove(0),
            Out::Close(32, CloseReason::ProxyLoginFailed)
        ]
    );
}

#[test]
fn repeated_server_proxy_login_keeps_one_entry() {
    let (mut l, _a, b) = room_with_guest();
    for _ in 0..3 {
        assert_eq!(l.req(20, l.proxy_server("room1", &b)).len(), 1);
    }
    let cb = l.cookie(&b);
    assert_eq!(
        l.req(21, proxy_client(&b, &cb, "room1")),
        vec![Out::Pair(20, 21)]
    );
    assert_eq!(
        l.req(22, proxy_client(&b, &cb, "room1")),
        vec![
            failed(22, "Invalid credentials").remove(0),
            Out::Close(22, CloseReason::ProxyLoginFailed)
        ]
    );
}

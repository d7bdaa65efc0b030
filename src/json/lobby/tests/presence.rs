//! Disconnect handling by role (§1.11) and matchesHistory (§1.12).

use super::*;
use crate::json::store::RoomStatus;

#[test]
fn account_disconnect_broadcasts_and_keeps_participation() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    l.req(2, join("room1"));
    let out = l.disconnect(2);
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
            msg(1, active_accounts(&[(&a, "Alice")])),
            msg(1, active_rooms(vec![room])),
        ]
    );
    let d = l.store.data.borrow();
    assert!(
        !d.accounts
            .iter()
            .find(|x| x.account_id == b)
            .unwrap()
            .online
    );
    assert_eq!(d.participants.len(), 2);
    drop(d);
    assert_eq!(l.disconnect(2), vec![], "a second disconnect is a no-op");
}

#[test]
fn connections_that_changed_nothing_broadcast_nothing() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    // Never sent anything, registered only, refused login, waiting proxy.
    assert_eq!(l.disconnect(5), vec![]);
    l.register(6, "Bob1");
    assert_eq!(l.disconnect(6), vec![]);
    l.req(7, login(&a, "bad", "english", "1.7.5", None));
    assert_eq!(l.disconnect(7), vec![]);
}

#[test]
fn busy_room_closes_and_participants_get_their_history() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    let c = l.user(3, "Carol");
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    l.req(2, join("room1"));
    l.req(
        10,
        Request::ChangeRoomDescription {
            description: "Arena".into(),
        },
    );
    l.req(10, Request::GameStarted);
    l.advance(600);
    let out = l.disconnect(10);
    let history = json!({"type": "matchesHistory", "matchesHistory": [{
        "gameRoomID": "room1", "hostAccountID": a, "hostAccountDisplayName": "Alice",
        "description": "Arena", "version": "", "status": "closed", "playerLimit": 8,
        "ageSeconds": 600, "participants": [acc(&a, "Alice"), acc(&b, "Bob1")]}]});
    let accounts = active_accounts(&[(&a, "Alice"), (&b, "Bob1"), (&c, "Carol")]);
    assert_eq!(
        out,
        vec![
            msg(1, history.clone()),
            msg(2, history.clone()),
            msg(1, accounts.clone()),
            msg(2, accounts.clone()),
            msg(3, accounts),
            msg(1, active_rooms(vec![])),
            msg(2, active_rooms(vec![])),
            msg(3, active_rooms(vec![])),
        ]
    );
    assert_eq!(l.store.data.borrow().rooms[0].status, RoomStatus::Closed);
    assert_eq!(l.lobby.rooms().count(), 0);
    // And at the next login.
    let cookie = l.cookie(&b);
    l.disconnect(2);
    let out = l.req(2, login(&b, &cookie, "english", "1.7.5", None));
    assert_eq!(to(&out, 2).last(), Some(&history));
    // A participant offline at the close gets nothing then.
    let _ = c;
}

#[test]
fn other_rooms_are_cancelled_without_history() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    l.server(11, &a, "idle");
    let out = l.disconnect(10);
    assert_eq!(
        types(&out),
        vec![(1, "activeAccounts".into()), (1, "activeGameRooms".into())]
    );
    assert_eq!(l.store.data.borrow().rooms[0].status, RoomStatus::Cancelled);
    let out = l.disconnect(11);
    assert_eq!(
        types(&out),
        vec![(1, "activeAccounts".into()), (1, "activeGameRooms".into())]
    );
    assert_eq!(l.store.data.borrow().rooms[1].status, RoomStatus::Cancelled);
    // Cancelled rooms are not in anyone's history.
    let cookie = l.cookie(&a);
    l.disconnect(1);
    let out = l.req(1, login(&a, &cookie, "english", "1.7.5", None));
    assert_eq!(
        to(&out, 1).last(),
        Some(&json!({"type": "matchesHistory", "matchesHistory": []}))
    );
}

#[test]
fn host_leaving_the_lobby_keeps_its_room() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    l.user(2, "Bob1");
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    l.disconnect(1);
    assert_eq!(l.lobby.room_status("room1"), Some(RoomStatus::Public));
    assert_eq!(
        types(&l.req(2, join("room1")))[0],
        (10, "accountJoinsRoom".into())
    );
}

#[test]
fn queries_for_the_status_api() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    l.hosted(1, &a, 10, "room1", RoomType::Public);
    assert_eq!(
        l.lobby.accounts_online().collect::<Vec<_>>(),
        vec![(a.as_str(), "Alice")]
    );
    let rooms: Vec<(&str, RoomStatus, usize)> = l
        .lobby
        .rooms()
        .map(|r| (r.id.as_str(), r.status, r.participants.len()))
        .collect();
    assert_eq!(rooms, vec![("room1", RoomStatus::Public, 1)]);
    assert_eq!(l.lobby.account(&a).map(|x| x.is_online()), Some(true));
}

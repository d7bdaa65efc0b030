use crate::json::request::ChannelType;
use crate::json::sqlite::tests::{hota_mods, insert_old_chat, store};
use crate::json::store::{LobbyStore, RoomStatus};

use super::with_offset;

#[test]
fn api_stats_counts_windows_and_room_states() {
    let mut store = store();
    for (id, name) in [("a1", "Alice"), ("a2", "Bob"), ("a3", "Carol")] {
        store.insert_account(id, name, "c");
    }
    store.set_online("a1", true);
    store.set_online("a2", true);
    store
        .conn
        .execute(
            "UPDATE accounts SET lastLoginTime = datetime('now','-2 hours') WHERE accountID='a2'",
            [],
        )
        .unwrap();
    store.conn.execute(
        "UPDATE accounts SET lastLoginTime = datetime('now','-400 days'), creationTime = datetime('now','-400 days') WHERE accountID='a3'",
        [],
    )
    .unwrap();
    for (room, status) in [
        ("p", RoomStatus::Public),
        ("q", RoomStatus::Private),
        ("b", RoomStatus::Busy),
        ("c1", RoomStatus::Closed),
        ("c2", RoomStatus::Closed),
    ] {
        store.insert_room(room, "a1", "1.7.5", &[]);
        store.set_room_status(room, status);
    }
    store
        .conn
        .execute(
            "UPDATE gameRooms SET creationTime = datetime('now','-3 days') WHERE roomID='c2'",
            [],
        )
        .unwrap();
    let stats = store.api_stats("2026-11-29T06:00:00+0000");
    let expected = serde_json::json!({
        "onlinePlayers": ["Alice", "Bob"],
        "onlinePlayersCount": {"current": 2, "lastHour": 1, "lastDay": 2, "lastWeek": 2, "lastMonth": 2, "lastYear": 2},
        "registeredPlayersCount": {"total": 3, "lastDay": 2, "lastWeek": 2, "lastMonth": 2, "lastYear": 2},
        "gameCount": {"current": 1, "total": 2, "lastDay": 1, "lastWeek": 2, "lastMonth": 2, "lastYear": 2},
        "lobbyCount": {"current": 2, "public": 1, "private": 1},
        "lobbyStartTime": "2026-11-29T06:00:00+0000",
        "server": "VCMI Lobby",
        "apiVersion": "1.0",
    });
    assert_eq!(stats, expected);
    // An empty database gives zeros, not nulls.
    let empty = self::store().api_stats("t");
    assert_eq!(empty["gameCount"]["lastDay"], 0);
    assert_eq!(empty["onlinePlayers"], serde_json::json!([]));
}

#[test]
fn api_chats_are_newest_first_with_timestamps() {
    let mut store = store();
    store.insert_account("a1", "Alice", "c1");
    insert_old_chat(&store, "english", "too old", 19 * 3600);
    insert_old_chat(&store, "english", "older", 600);
    store.insert_chat("a1", ChannelType::Global, "english", "newer");
    store.insert_chat("a1", ChannelType::Player, "english", "not global");
    let chats = store.api_chats("english");
    assert_eq!(chats["channelName"], "english");
    assert_eq!(chats["count"], 2);
    let messages = chats["messages"].as_array().unwrap();
    assert_eq!(messages[0]["messageText"], "newer");
    assert_eq!(messages[1]["messageText"], "older");
    assert_eq!(messages[1]["displayName"], "Alice");
    let age = messages[1]["ageSeconds"].as_i64().unwrap();
    assert!((598..603).contains(&age));
    // Same shape as the reference: 2026-11-29T07:05:09+0100.
    let stamp = messages[0]["timestamp"].as_str().unwrap();
    assert_eq!(stamp.len(), 24, "{stamp}");
    assert!(
        stamp.as_bytes()[10] == b'T' && matches!(stamp.as_bytes()[19], b'+' | b'-'),
        "{stamp}"
    );
}

#[test]
fn local_timestamps_have_the_reference_format() {
    let mut store = store();
    let offset: i64 = store
        .conn
        .query_row("SELECT CAST(round((julianday(0,'unixepoch','localtime') - julianday(0,'unixepoch'))*1440) AS INTEGER)", [], |r| r.get(0))
        .unwrap();
    let expected_local: String = store
        .conn
        .query_row(
            "SELECT strftime('%Y-%m-%dT%H:%M:%S', 0, 'unixepoch', 'localtime')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        store.local_timestamp(0),
        with_offset(&expected_local, offset)
    );
    if offset == 0 {
        assert_eq!(store.local_timestamp(0), "1970-01-01T00:00:00+0000");
    }
}

#[test]
fn api_rooms_lists_every_status_newest_first_with_mods() {
    let mut store = store();
    store.insert_account("a1", "Alice", "c1");
    let mods = hota_mods();
    store.insert_room("old", "a1", "1.6.8", &[]);
    store
        .conn
        .execute(
            "UPDATE gameRooms SET creationTime = datetime('now','-5 hours') WHERE roomID='old'",
            [],
        )
        .unwrap();
    store.set_room_status("old", RoomStatus::Closed);
    store.insert_room("new", "a1", "1.7.5", &mods);
    store.set_room_description("new", "Arrogance");

    let all = store.api_rooms(-1, 50);
    assert_eq!(
        (
            all["hours"].as_i64(),
            all["limit"].as_i64(),
            all["count"].as_i64()
        ),
        (Some(-1), Some(50), Some(2))
    );
    let rooms = all["rooms"].as_array().unwrap();
    assert_eq!(rooms[0]["description"], "Arrogance");
    assert_eq!(rooms[0]["status"], "idle");
    assert_eq!(rooms[0]["version"], "1.7.5");
    assert_eq!(rooms[0]["playerLimit"], 8);
    assert_eq!(
        rooms[0]["mods"],
        serde_json::json!([
            {"modId": "hota", "name": "HotA", "version": "1.7"},
            {"modId": "hota.sub", "name": "Sub", "version": "1", "parent": ".sub"},
        ])
    );
    assert_eq!(rooms[1]["status"], "closed");
    assert!(rooms[1].get("mods").is_none(), "mods only when non-empty");
    assert!(rooms[1].get("gameRoomID").is_none() && rooms[1].get("participants").is_none());
    assert!((17995..18005).contains(&rooms[1]["ageSeconds"].as_i64().unwrap()));
    assert_eq!(rooms[1]["createdAt"].as_str().unwrap().len(), 24);

    assert_eq!(store.api_rooms(5, 50)["count"], 1, "age < hours*3600 only");
    assert_eq!(store.api_rooms(6, 50)["count"], 2);
    assert_eq!(store.api_rooms(-1, 1)["count"], 1);
    assert_eq!(
        store.api_rooms(-1, 1)["rooms"][0]["description"],
        "Arrogance"
    );
}

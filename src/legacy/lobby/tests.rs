//! Lobby rules driven directly, without sockets.

use super::*;
use std::time::Duration;

/// The server's counters, which only the welcome line and ROOT show.
const COUNTERS: ServerCounters = ServerCounters::ZERO;

fn hello(lobby: &mut Lobby, id: ClientId, name: &str, protocol: u8, out: &mut Outbox) {
    lobby.register(id, protocol);
    lobby.handle_frame(
        id,
        &format!("\u{5}\u{4}utf8<GREETINGS>{name}<VER>VCMI 1.4.0"),
        Instant::now(),
        &COUNTERS,
        out,
    );
}

fn take(out: &mut Outbox, id: ClientId) -> Vec<String> {
    out.received_by(id).into_iter().map(String::from).collect()
}

#[test]
fn worked_example_section_9() {
    let mut l = Lobby::default();
    l.config.capacity = 10;
    let mut out = Outbox::new();
    hello(&mut l, 1, "alice", 5, &mut out);
    assert_eq!(
        take(&mut out, 1),
        [
            ":>>USERS:1:alice",
            ":>>SESSIONS:0",
            ":>>USERS:1:alice",
            ":>>MSG:System:Here available 0 users, currently playing 0"
        ]
    );
    out.clear();
    hello(&mut l, 2, "bob", 5, &mut out);
    assert_eq!(take(&mut out, 1), [":>>USERS:2:alice:bob"]);
    out.clear();
    l.handle_frame(
        1,
        "<NEW>Room1<PSWD><COUNT>2<MODS>",
        Instant::now(),
        &COUNTERS,
        &mut out,
    );
    assert_eq!(
        take(&mut out, 1),
        [
            ":>>CREATED:Room1",
            ":>>JOIN:Room1:alice",
            ":>>STATUS:1:alice:False",
            ":>>SESSIONS:1:Room1:1:2:False",
            ":>>MSG:System:You are in the room chat.",
            ":>>MODS:1::",
            ":>>MODSOTHER:alice:1:"
        ]
    );
    assert_eq!(take(&mut out, 2), [":>>SESSIONS:1:Room1:1:2:False"]);
    out.clear();
    l.handle_frame(
        2,
        "<JOIN>Room1<PSWD><MODS>",
        Instant::now(),
        &COUNTERS,
        &mut out,
    );
    assert_eq!(
        take(&mut out, 2),
        [
            ":>>JOIN:Room1:bob",
            ":>>STATUS:2:alice:False:bob:False",
            ":>>SESSIONS:1:Room1:2:2:False",
            ":>>GAMEMODE:0",
            ":>>MODS:1::"
        ]
    );
    out.clear();
    l.handle_frame(1, "<READY>Room1", Instant::now(), &COUNTERS, &mut out);
    out.clear();
    l.handle_frame(2, "<READY>Room1", Instant::now(), &COUNTERS, &mut out);
    let a = take(&mut out, 1);
    assert_eq!(a[0], ":>>STATUS:2:alice:True:bob:True");
    assert!(a[1].starts_with(":>>HOST:") && a[1].ends_with(":1"));
    assert!(a[2].starts_with(":>>START:"));
    let started = out.take_started();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].client_uuids.len(), 2);
    assert_eq!(a[1], format!(":>>HOST:{}:1", started[0].host_uuid));
    assert_eq!(out.closes().len(), 2);
    assert_eq!(l.users(), 0);
    assert_eq!(l.rooms(), 0);
}

#[test]
fn chat_is_formatted_per_recipient() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    hello(&mut l, 1, "new5", 5, &mut out);
    hello(&mut l, 2, "old3", 3, &mut out);
    out.clear();
    l.handle_frame(1, "<MSG>hi", Instant::now(), &COUNTERS, &mut out);
    assert_eq!(take(&mut out, 1), [":>>MSGCH:new5:global:hi"]);
    assert_eq!(take(&mut out, 2), [":>>MSG:new5:hi"]);
    out.clear();
    l.handle_frame(2, "<MSG>x:>>START:abc", Instant::now(), &COUNTERS, &mut out);
    assert_eq!(take(&mut out, 1), [":>>MSGCH:old3:global:x: >>START:abc"]);
    assert_eq!(take(&mut out, 2), [":>>MSG:old3:x: >>START:abc"]);
}

#[test]
fn direct_messages() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    hello(&mut l, 1, "alice", 4, &mut out);
    hello(&mut l, 2, "bruno", 5, &mut out);
    hello(&mut l, 3, "carla", 3, &mut out);
    out.clear();
    l.handle_frame(1, "<MSG>@bruno psst", Instant::now(), &COUNTERS, &mut out);
    assert_eq!(take(&mut out, 1), [":>>MSG:alice:psst"]);
    assert_eq!(take(&mut out, 2), [":>>MSGCH:alice:global:psst"]);
    assert!(take(&mut out, 3).is_empty());
    out.clear();
    l.handle_frame(1, "<MSG>@alice me", Instant::now(), &COUNTERS, &mut out);
    assert_eq!(take(&mut out, 1), [":>>MSG:alice:me"]);
    out.clear();
    l.handle_frame(1, "<MSG>@brunno typo", Instant::now(), &COUNTERS, &mut out);
    assert_eq!(
        take(&mut out, 1),
        [":>>ERROR:User brunno is not in the lobby, message not sent"]
    );
    assert!(take(&mut out, 2).is_empty() && take(&mut out, 3).is_empty());
    out.clear();
    l.handle_frame(3, "<MSG>@all hey", Instant::now(), &COUNTERS, &mut out);
    assert_eq!(take(&mut out, 2), [":>>MSGCH:carla:global:hey"]);
    assert_eq!(take(&mut out, 3), [":>>MSG:carla:hey"]);
    out.clear();
    l.handle_frame(3, "<MSG>@ lonely", Instant::now(), &COUNTERS, &mut out);
    assert_eq!(take(&mut out, 1), [":>>MSG:carla:@ lonely"]);
}

#[test]
fn guest_disconnect_tells_room_with_kick() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    hello(&mut l, 1, "alice", 5, &mut out);
    hello(&mut l, 2, "bruno", 5, &mut out);
    l.handle_frame(
        1,
        "<NEW>Den<PSWD><COUNT>3<MODS>",
        Instant::now(),
        &COUNTERS,
        &mut out,
    );
    l.handle_frame(
        2,
        "<JOIN>Den<PSWD><MODS>",
        Instant::now(),
        &COUNTERS,
        &mut out,
    );
    out.clear();
    l.disconnect(2, &mut out);
    assert_eq!(
        take(&mut out, 1),
        [
            ":>>KICK:Den:bruno",
            ":>>STATUS:1:alice:False",
            ":>>SESSIONS:1:Den:1:3:False",
            ":>>USERS:1:alice"
        ]
    );
}

#[test]
fn room_rules() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    hello(&mut l, 1, "alice", 5, &mut out);
    out.clear();
    l.handle_frame(
        1,
        "<NEW>a:b<PSWD><COUNT>2",
        Instant::now(),
        &COUNTERS,
        &mut out,
    );
    assert_eq!(
        take(&mut out, 1),
        [":>>ERROR:Cannot create session with invalid name a:b"]
    );
    assert_eq!(l.rooms(), 0);
    out.clear();
    l.handle_frame(
        1,
        "<NEW>abc<PSWD><COUNT>two",
        Instant::now(),
        &COUNTERS,
        &mut out,
    );
    assert_eq!(
        out.closes(),
        [(
            1,
            CloseReason::Dropped("COUNT is not an integer: \"two\"".into())
        )]
    );
    assert_eq!(l.rooms(), 0);
    assert!(!l.is_registered(1));
}

#[test]
fn large_lobby_events_owe_lists_to_everyone_without_listing_them() {
    let mut l = Lobby::new(LobbyConfig {
        capacity: 1000,
        flood_rate: 0,
        ..LobbyConfig::default()
    });
    let mut out = Outbox::new();
    for id in 0..LARGE_LOBBY {
        hello(&mut l, id, &format!("user{id:03}"), 5, &mut out);
        out.clear();
    }
    // a login: USERS owed to everyone by one flag, the newcomer's own lists
    // by id; nothing per other client
    let new = LARGE_LOBBY;
    hello(&mut l, new, "latecomer", 5, &mut out);
    assert!(out.owed_to_everyone().eq([List::Users]));
    assert!(
        out.owed().iter().all(|(to, _)| *to == new),
        "{:?}",
        out.owed()
    );
    assert!(out.received_by(0).is_empty());
    out.clear();
    // a logout: the same
    l.disconnect(3, &mut out);
    assert!(out.owed_to_everyone().eq([List::Users]));
    assert!(out.owed().is_empty() && out.deliveries().is_empty());
    // and the recipients a round walks: logged-in protocol-5 clients
    assert_eq!(l.list_recipients(List::Users).count(), LARGE_LOBBY);
    assert!(l.list_recipients(List::Users).all(|id| id != 3));
}

#[test]
fn capacity_refuses_extra_logins() {
    let mut l = Lobby::new(LobbyConfig {
        capacity: 1,
        ..LobbyConfig::default()
    });
    let mut out = Outbox::new();
    hello(&mut l, 1, "alice", 5, &mut out);
    out.clear();
    hello(&mut l, 2, "bruno", 5, &mut out);
    let b = take(&mut out, 2);
    assert_eq!(b.len(), 1);
    assert!(b[0].starts_with(":>>ERROR:The lobby is full"));
    assert!(matches!(out.closes(), [(2, CloseReason::Refused(_))]));
    assert_eq!(l.users(), 1);
    assert!(!l.is_registered(2));
}

#[test]
fn ten_thousand_commands_in_one_frame() {
    let mut l = Lobby::new(LobbyConfig {
        flood_rate: 0,
        ..LobbyConfig::default()
    });
    let mut out = Outbox::new();
    hello(&mut l, 1, "alice", 4, &mut out);
    out.clear();
    l.handle_frame(
        1,
        &"<HERE>".repeat(10_000),
        Instant::now(),
        &COUNTERS,
        &mut out,
    );
    assert_eq!(take(&mut out, 1).len(), 10_000);
}

#[test]
fn flood_control_drops_excess_with_one_notice_per_burst() {
    let mut l = Lobby::default(); // 5 per second, burst 10
    let mut out = Outbox::new();
    let t0 = Instant::now();
    hello(&mut l, 1, "alice", 5, &mut out);
    out.clear();
    for i in 0..30 {
        l.handle_frame(1, &format!("<MSG>{i}"), t0, &COUNTERS, &mut out);
    }
    let got = take(&mut out, 1);
    // the login took one token of the first burst
    assert_eq!(got.len(), 9 + 1, "{got:?}");
    assert!(got[9].starts_with(":>>ERROR:You are sending too fast"));
    out.clear();
    // a second later five tokens are back
    let t1 = t0 + Duration::from_secs(1);
    for i in 0..10 {
        l.handle_frame(1, &format!("<MSG>later {i}"), t1, &COUNTERS, &mut out);
    }
    let got = take(&mut out, 1);
    assert_eq!(got.len(), 5 + 1, "{got:?}");
    assert_eq!(l.stats.flood_drops, 21 + 5);
}

#[test]
fn a_frame_of_ver_and_root_writes_only_a_burst_of_log_lines() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    hello(&mut l, 1, "alice", 5, &mut out);
    out.clear();
    let now = Instant::now();
    let allowed = (0..1000).filter(|_| l.may_log(1, now)).count();
    assert_eq!(allowed, 19, "the burst, less VER's line at login");
    // the commands themselves are still answered
    l.handle_frame(
        1,
        &"<ROOT>rooms<VER>x".repeat(100),
        now,
        &COUNTERS,
        &mut out,
    );
    assert_eq!(take(&mut out, 1).len(), 100);
    assert!(!l.may_log(1, now));
}

#[test]
fn a_start_refused_by_the_session_caps_tells_the_players_and_keeps_the_room() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    hello(&mut l, 1, "alice", 2, &mut out);
    out.clear();
    l.set_start_gate(Some("Too many games".into()));
    // protocol 2 has no ready toggle: the host's READY starts the room
    l.handle_frame(
        1,
        "<NEW>solo<PSWD><COUNT>2<MODS>",
        Instant::now(),
        &COUNTERS,
        &mut out,
    );
    out.clear();
    l.handle_frame(1, "<READY>solo", Instant::now(), &COUNTERS, &mut out);
    let got = take(&mut out, 1);
    assert!(
        got.contains(&":>>ERROR:Too many games".to_string()),
        "{got:?}"
    );
    assert!(out.take_started().is_empty());
    assert_eq!((l.rooms(), l.stats.start_refusals), (1, 1));
    l.set_start_gate(None);
    out.clear();
    l.handle_frame(1, "<READY>solo", Instant::now(), &COUNTERS, &mut out);
    assert_eq!(out.take_started().len(), 1);
    assert_eq!(l.rooms(), 0);
}

#[test]
fn no_user_text_can_form_a_server_message() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    hello(&mut l, 1, "alice", 5, &mut out);
    hello(&mut l, 2, "bruno", 3, &mut out);
    out.clear();
    l.handle_frame(2, "<MSG>>>START:x", Instant::now(), &COUNTERS, &mut out);
    l.handle_frame(
        2,
        "<MSG>@alice >>HOST:y",
        Instant::now(),
        &COUNTERS,
        &mut out,
    );
    l.handle_frame(
        2,
        "<NEW>>>START<PSWD><COUNT>2",
        Instant::now(),
        &COUNTERS,
        &mut out,
    );
    l.handle_frame(1, "<JOIN>x:>>START:y", Instant::now(), &COUNTERS, &mut out);
    for text in out.texts() {
        assert!(!text[3..].contains(":>>"), "{text}");
    }
    assert_eq!(take(&mut out, 1)[0], ":>>MSGCH:bruno:global: >>START:x");
}

#[test]
fn welcome_and_root_report_the_servers_counters() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    let counters = ServerCounters {
        pipes_open: 3,
        logins: 11,
        uniques: 7,
    };
    l.register(1, 5);
    l.handle_frame(1, "<GREETINGS>alice", Instant::now(), &counters, &mut out);
    assert_eq!(
        take(&mut out, 1).last().map(String::as_str),
        Some(":>>MSG:System:Here available 0 users, currently playing 3")
    );
    out.clear();
    l.handle_frame(
        1,
        "<ROOT>logins<ROOT>uniques<ROOT>users<ROOT>nothing",
        Instant::now(),
        &counters,
        &mut out,
    );
    assert_eq!(
        take(&mut out, 1),
        [":>>MSG:System:11", ":>>MSG:System:7", ":>>MSG:System:1"]
    );
}

#[test]
fn health_checks_only_logged_in_clients_that_know_health() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    hello(&mut l, 1, "old3", 3, &mut out);
    hello(&mut l, 2, "new4", 4, &mut out);
    l.register(3, 5);
    assert!(!l.is_health_checked(1));
    assert!(l.is_health_checked(2));
    assert!(!l.is_health_checked(3), "not logged in yet");
    assert!(!l.is_health_checked(4), "unknown");
    assert_eq!(l.protocol(2), Some(Protocol::new(4)));
}

/// What the client directory and the room table must agree on: every member
/// of a room is a registered client that names that room and is joined to
/// it, and nobody is in two rooms.
fn assert_consistent(l: &Lobby) {
    let mut seen = std::collections::HashSet::new();
    for room in l.rooms.iter() {
        for p in room.players() {
            let c = l.clients.get(p).expect("a room member is registered");
            assert!(c.is_joined_to(room.name()), "{p} in {}", room.name());
            assert!(seen.insert(p), "{p} is in two rooms");
            assert_eq!(l.member_room(p), l.rooms.key_of(room.name()));
        }
    }
    assert!(l.users() <= l.connections());
}

#[test]
fn rooms_and_clients_stay_consistent_through_a_session() {
    let mut l = Lobby::new(LobbyConfig {
        flood_rate: 0,
        ..LobbyConfig::default()
    });
    let mut out = Outbox::new();
    for (id, name) in [(1, "alice"), (2, "bruno"), (3, "carla"), (4, "dario")] {
        hello(&mut l, id, name, if id == 4 { 3 } else { 5 }, &mut out);
    }
    let steps: &[(ClientId, &str)] = &[
        (1, "<NEW>Den<PSWD>pw<COUNT>3<MODS>a&1"),
        (2, "<JOIN>Den<PSWD>wrong"),
        (2, "<JOIN>Den<PSWD>pw<MODS>"),
        (3, "<JOIN>Den"), // half-joined
        (4, "<NEW>Loft<PSWD><COUNT>2"),
        (3, "<JOIN>Loft<PSWD>"), // still half-joined to Den: ignored
        (3, "<PSWD>pw"),
        (2, "<READY>Den"),
        (1, "<KICK>carla"),
        (2, "<LEAVE>Den"),
        (2, "<JOIN>Loft<PSWD>"),
        (1, "<LEAVE>Den"), // the host: Den is destroyed
        (3, "<NEW>Den<PSWD><COUNT>2"),
        (4, "<READY>Loft"), // a v3 host toggles; not everyone ready yet
        (2, "<READY>Loft"), // all ready: Loft starts
    ];
    for (id, frame) in steps {
        l.handle_frame(*id, frame, Instant::now(), &COUNTERS, &mut out);
        assert_consistent(&l);
    }
    assert_eq!(out.take_started().len(), 1);
    assert!(!l.is_registered(2) && !l.is_registered(4));
    assert_eq!(l.rooms(), 1, "carla's new Den");
    l.disconnect(3, &mut out);
    assert_consistent(&l);
    assert_eq!((l.rooms(), l.users()), (0, 1));
}

#[test]
fn lists_are_coalesced_by_the_number_of_connections_not_only_of_users() {
    let mut l = Lobby::default();
    l.config.capacity = 1000;
    let mut out = Outbox::new();
    // 70 connections that sent a header and never logged in: USERS lists name them all
    for id in 100..170 {
        l.register(id, 5);
    }
    hello(&mut l, 1, "alice", 5, &mut out);
    assert!(
        !take(&mut out, 1).iter().any(|m| m.starts_with(":>>USERS:")),
        "the list is owed, not built and sent at once"
    );
    assert!(out.owed().contains(&(1, List::Users)));
    out.clear();
    // HERE goes the same way
    l.handle_frame(1, "<HERE>", Instant::now(), &COUNTERS, &mut out);
    assert!(take(&mut out, 1).is_empty());
    assert_eq!(out.owed(), &[(1, List::Users)]);
}

//! Lobby behaviour over real TCP: what the conformance transcripts do not
//! pin down (our fixes, hostile input, mixed protocols, encodings).

mod common;

use common::{contains, frame, lobby_hello, lobby_hello_payload, Client, Server};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(150);

/// Logs `user` in with `protocol` and consumes its welcome messages.
fn login(server: &Server, user: &str, protocol: u8) -> Client {
    let mut c = server.client();
    c.send_frame(&lobby_hello(
        user,
        protocol,
        Some("utf8"),
        Some("VCMI 1.4.5"),
    ));
    // the welcome line comes last (no pipes run in these tests)
    let end: &[u8] = if protocol < 4 {
        b"in the chat"
    } else {
        b"currently playing 0"
    };
    let welcome = c.recv_until(|b| contains(b, end), T);
    let text = String::from_utf8_lossy(&welcome).to_string();
    assert!(text.contains(":>>SESSIONS:"), "{text}");
    c
}

fn quiet(c: &mut Client) -> String {
    String::from_utf8_lossy(&c.recv_quiet(QUIET, T)).to_string()
}

#[test]
fn protocols_3_4_5_side_by_side_get_their_own_chat_format() {
    let s = Server::start(&[]);
    let mut v3 = login(&s, "old3", 3);
    let mut v4 = login(&s, "mid4", 4);
    let mut v5 = login(&s, "new5", 5);
    quiet(&mut v3);
    quiet(&mut v4);
    quiet(&mut v5);
    v5.send_frame(b"<MSG>hello all");
    v3.expect_messages(&[":>>MSG:new5:hello all"], T);
    v4.expect_messages(&[":>>MSG:new5:hello all"], T);
    v5.expect_messages(&[":>>MSGCH:new5:global:hello all"], T);
    v3.send_frame(b"<MSG>from the past");
    v4.expect_messages(&[":>>MSG:old3:from the past"], T);
    v5.expect_messages(&[":>>MSGCH:old3:global:from the past"], T);
    v3.expect_messages(&[":>>MSG:old3:from the past"], T);
    // HERE: USERS for v4/v5, a text list for v3
    v4.send_frame(b"<HERE>");
    v4.expect_messages(&[":>>USERS:3:old3:mid4:new5"], T);
    v3.send_frame(b"<HERE>");
    v3.expect_messages(&[":>>MSG:System:People in lobby\nold3\nmid4\nnew5"], T);
}

#[test]
fn server_messages_cannot_be_injected_through_chat() {
    let s = Server::start(&[]);
    let mut a = login(&s, "alice", 5);
    let mut b = login(&s, "bruno", 4);
    quiet(&mut a);
    b.send_frame(b"<MSG>x:>>START:0f8fad5b-d9cb-469f-a165-70867728950e");
    a.expect_messages(
        &[":>>MSGCH:bruno:global:x: >>START:0f8fad5b-d9cb-469f-a165-70867728950e"],
        T,
    );
    let got = quiet(&mut b);
    assert_eq!(
        got,
        ":>>MSG:bruno:x: >>START:0f8fad5b-d9cb-469f-a165-70867728950e"
    );
}

#[test]
fn cp1251_client_chats_with_utf8_clients() {
    let s = Server::start(&[]);
    let mut u = login(&s, "utfuser", 5);
    let mut w = s.client();
    // "Иван" in cp1251
    let name = b"\xc8\xe2\xe0\xed";
    let mut body = b"<GREETINGS>".to_vec();
    body.extend_from_slice(name);
    body.extend_from_slice(b"<VER>VCMI 1.4.5");
    w.send_frame(&lobby_hello_payload(5, Some("cp1251"), &body));
    let welcome = w.recv_until(|b| contains(b, b"Here available"), T);
    // the list comes back in cp1251 too
    assert!(
        contains(&welcome, b":>>USERS:2:utfuser:\xc8\xe2\xe0\xed"),
        "{welcome:?}"
    );
    u.expect_messages(&[":>>USERS:2:utfuser:Иван"], T);
    // two commands in one frame, both decoded as cp1251 (D16 fix)
    w.send_frame(b"<MSG>\xef\xf0\xe8\xe2\xe5\xf2<MSG>\xe4\xe2\xe0");
    u.expect_messages(
        &[":>>MSGCH:Иван:global:привет", ":>>MSGCH:Иван:global:два"],
        T,
    );
    // what cp1251 cannot carry arrives as '?'
    u.send_frame("<MSG>ok 😀".as_bytes());
    let got = w.recv_until(|b| contains(b, b"ok ?"), T);
    assert!(contains(&got, b":>>MSGCH:utfuser:global:ok ?"), "{got:?}");
}

#[test]
fn frames_split_byte_by_byte_and_many_commands_in_one_frame() {
    // 10 000 chat commands take ~89 KB, over the default 64 KiB frame cap;
    // flood control would drop all but the first few (tests/hostile.rs)
    let s = Server::start(&["--max-frame", "200000", "--flood-rate", "0"]);
    let mut a = login(&s, "alice", 4);
    let mut b = s.client();
    let hello = frame(&lobby_hello("bruno", 4, Some("utf8"), Some("v")));
    for byte in &hello {
        b.send_raw(std::slice::from_ref(byte));
    }
    b.recv_until(|buf| contains(buf, b"Here available 1 users"), T);
    a.expect_messages(&[":>>USERS:2:alice:bruno"], T);
    // 10 000 commands in one frame: processed iteratively, in order
    let mut many = String::new();
    for i in 0..10_000 {
        many.push_str(&format!("<MSG>{i}"));
    }
    b.send_frame(many.as_bytes());
    let got = a.recv_until(|buf| contains(buf, b":>>MSG:bruno:9999"), T);
    let msgs = common::split_messages(&String::from_utf8_lossy(&got));
    assert_eq!(msgs.len(), 10_000);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m, &format!(":>>MSG:bruno:{i}"));
    }
}

#[test]
fn four_gib_length_prefix_closes_only_the_offender() {
    let s = Server::start(&[]);
    let mut a = login(&s, "alice", 5);
    let mut evil = login(&s, "mallory", 5);
    quiet(&mut a);
    evil.send_raw(&[0xFF, 0xFF, 0xFF, 0xFF, b'<']);
    let got = evil.recv_until(|b| contains(b, b"ERROR"), T);
    assert!(contains(
        &got,
        b":>>ERROR:Frame too large (4294967295 bytes)"
    ));
    assert!(evil.wait_closed(T), "offender must be disconnected");
    a.expect_messages(&[":>>USERS:1:alice"], T);
    a.send_frame(b"<MSG>still here");
    a.expect_messages(&[":>>MSGCH:alice:global:still here"], T);
    // a frame at the limit still passes; one byte more does not
    let s2 = Server::start(&["--max-frame", "1024"]);
    let mut c = login(&s2, "carla", 5);
    let text = format!("<MSG>{}", "x".repeat(1024 - 5));
    c.send_frame(text.as_bytes());
    c.recv_until(|b| contains(b, b"xxxx"), T);
    c.send_frame(format!("{text}y").as_bytes());
    c.recv_until(|b| contains(b, b":>>ERROR:Frame too large (1025 bytes)"), T);
    assert!(c.wait_closed(T));
}

#[test]
fn header_errors_are_reported_and_close() {
    let s = Server::start(&[]);
    for (payload, text) in [
        (
            vec![6u8, 4, b'u', b't', b'f', b'8', b'<'],
            "Cannot connect to remote server due to protocol incompatibility",
        ),
        (
            vec![0u8, 0, b'<'],
            "Cannot connect to remote server due to protocol incompatibility",
        ),
        (vec![5u8], "Too short username"),
        (
            vec![5u8, 50, b'u', b't', b'f'],
            "Protocol error or incorrect encoding",
        ),
        (
            lobby_hello("kor", 5, Some("klingon"), None),
            "Unsupported encoding klingon",
        ),
    ] {
        let mut c = s.client();
        c.send_frame(&payload);
        c.expect_messages(&[&format!(":>>ERROR:{text}")], T);
        assert!(c.wait_closed(T), "{text}");
    }
    // the server is still fine
    login(&s, "afterwards", 5);
}

#[test]
fn direct_messages_reach_only_the_target() {
    let s = Server::start(&[]);
    let mut a = login(&s, "alice", 4);
    let mut b = login(&s, "bruno", 5);
    let mut c = login(&s, "carla", 3);
    quiet(&mut a);
    quiet(&mut b);
    quiet(&mut c);
    a.send_frame(b"<MSG>@bruno psst");
    b.expect_messages(&[":>>MSGCH:alice:global:psst"], T);
    a.expect_messages(&[":>>MSG:alice:psst"], T);
    assert_eq!(quiet(&mut c), "");
    a.send_frame(b"<MSG>@nobody hello?");
    a.expect_messages(
        &[":>>ERROR:User nobody is not in the lobby, message not sent"],
        T,
    );
    assert_eq!(quiet(&mut b), "");
    c.send_frame(b"<MSG>@all hi");
    a.expect_messages(&[":>>MSG:carla:hi"], T);
    b.expect_messages(&[":>>MSGCH:carla:global:hi"], T);
    c.expect_messages(&[":>>MSG:carla:hi"], T);
}

#[test]
fn room_names_with_colons_are_refused() {
    let s = Server::start(&[]);
    let mut a = login(&s, "alice", 5);
    a.send_frame(b"<NEW>evil:room<PSWD><COUNT>2<MODS>");
    a.expect_messages(
        &[":>>ERROR:Cannot create session with invalid name evil:room"],
        T,
    );
    a.send_frame(b"<NEW>fine room<PSWD><COUNT>2<MODS>");
    let got = a.recv_until(|b| contains(b, b"MODSOTHER"), T);
    assert!(contains(&got, b":>>CREATED:fine room"));
}

#[test]
fn capacity_limits_logged_in_users() {
    let s = Server::start(&["capacity=2"]);
    let _a = login(&s, "alice", 5);
    let _b = login(&s, "bruno", 5);
    let mut c = s.client();
    c.hello("carla");
    let got = c.recv_until(|b| contains(b, b"ERROR"), T);
    assert!(
        contains(&got, b":>>ERROR:The lobby is full (2 players)"),
        "{got:?}"
    );
    assert!(c.wait_closed(T));
}

#[test]
fn start_closes_every_member_and_tells_the_rest() {
    let s = Server::start(&[]);
    let mut obs = login(&s, "observer", 5);
    let mut a = login(&s, "alice", 5);
    let mut b = login(&s, "bruno", 4);
    a.send_frame(b"<NEW>Duel<PSWD><COUNT>2<MODS>");
    b.send_frame(b"<JOIN>Duel<PSWD><MODS>");
    b.recv_until(|buf| contains(buf, b":>>MODS:1::"), T);
    quiet(&mut a);
    quiet(&mut obs);
    a.send_frame(b"<READY>Duel");
    b.recv_until(|buf| contains(buf, b"alice:True"), T);
    b.send_frame(b"<READY>Duel");
    let got = String::from_utf8_lossy(&a.recv_until(|buf| contains(buf, b"START"), T)).to_string();
    assert!(
        got.contains(":>>HOST:") && got.find(":>>HOST:") < got.find(":>>START:"),
        "{got}"
    );
    assert!(a.wait_closed(T), "host's lobby socket closes (D8 fix)");
    assert!(b.wait_closed(T), "guest's lobby socket closes");
    obs.expect_messages(&[":>>SESSIONS:0", ":>>USERS:1:observer"], T);
}

#[test]
fn large_lobby_coalesces_list_refreshes_but_delivers_the_latest() {
    let s = Server::start(&["--max-per-ip", "0", "--capacity", "500"]);
    let mut obs = login(&s, "observer", 5);
    let mut others = Vec::new();
    for i in 0..119 {
        others.push(login(&s, &format!("user{i:03}"), 5));
    }
    // every list arrives whole; count them until the latest (120 names) came
    let mut lists = 0;
    loop {
        let got = obs.recv_messages(1, T);
        if got[0].starts_with(":>>USERS:") {
            lists += 1;
            if got[0].starts_with(":>>USERS:120:") {
                break;
            }
        }
    }
    // the first 63 logins are answered exactly like the reference
    assert!(lists >= 63, "{lists}");
    assert!(lists < 119, "refreshes were not coalesced: {lists}");
    let last = quiet(&mut obs);
    assert!(
        !last.contains(":>>USERS:"),
        "a stale list followed the latest: {last}"
    );
}

//! Both kinds of games on one server at the same time, over real TCP against the real binary: a
//! legacy game (a protocol-3 launcher hosting, a protocol-5 launcher joining, then the "Aiya!"
//! pipes of their game processes) and a JSON game (VCMI 1.5+ accounts, a match server, a
//! proxy-mode pair), both set up before either ends, streams verified both ways; then SIGTERM
//! with both games running.
//!
//! The two lobbies are separate worlds, as the code has them: the legacy lobby's USERS, SESSIONS
//! and "currently playing" count only legacy launchers, rooms and pipes (a 1.1–1.4 launcher can
//! neither chat with nor join a JSON account), and the JSON lobby's activeAccounts and
//! activeGameRooms list only JSON accounts and rooms. The tests check that while both lobbies
//! are populated and both games run.
//!
//! Synchronisation is by waiting for messages and closes (reads with timeouts), never by sleeps.

mod common;
mod json_peer;

use common::{contains, lobby_hello, lossy, split_messages, Client, Server};
use json_peer::{account, pattern, proxied_game_setup, Peer};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use vcmi_proxy::wire::{frame, pipe_hello, ENDIAN_LITTLE};

/// Anything that should happen promptly (debug build, 2 shared cores).
const T: Duration = Duration::from_secs(10);
/// Per-read bound while megabytes move.
const BULK_T: Duration = Duration::from_secs(60);
const MIB: usize = 1024 * 1024;
/// Bytes each legacy pipe sends.
const LEGACY_BULK: usize = 3 * MIB;
/// The JSON game's big frame: several MiB in one frame.
const JSON_BIG: usize = 6 * MIB;
const ROOM: &str = "Mixed";

// ---- legacy launchers and pipes ------------------------------------------------------------

/// Logs a launcher in with `protocol` (3: VCMI 1.1, 5: VCMI 1.4) and returns it with its
/// welcome burst.
fn launcher(server: &Server, user: &str, protocol: u8) -> (Client, String) {
    let version = if protocol == 3 {
        "VCMI 1.1.0"
    } else {
        "VCMI 1.4.5"
    };
    let mut c = server.client();
    c.send_frame(&lobby_hello(user, protocol, Some("utf8"), Some(version)));
    // the welcome line ends the burst: "... currently playing N" (v < 4: then the
    // "Send <HERE>" line)
    let key = b"currently playing ";
    let welcome = c.recv_until(
        |b| {
            if protocol < 4 {
                contains(b, b"in the chat")
            } else {
                b.windows(key.len() + 1)
                    .any(|w| w.starts_with(key) && w[key.len()].is_ascii_digit())
            }
        },
        T,
    );
    let text = lossy(&welcome);
    (c, text)
}

/// The last message of `name` (e.g. ":>>USERS:") in a burst.
fn last_message(burst: &str, name: &str) -> String {
    split_messages(burst)
        .into_iter()
        .rfind(|m| m.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {burst:?}"))
}

/// The number in "currently playing N" of a welcome.
fn playing(welcome: &str) -> usize {
    welcome
        .split("currently playing ")
        .nth(1)
        .and_then(|r| {
            r.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no pipe count in {welcome:?}"))
}

/// A v5 launcher logs in: what the legacy lobby shows a newcomer (USERS, SESSIONS, pipes).
struct LegacyView {
    name: String,
    users: String,
    sessions: String,
    playing: usize,
}

fn legacy_view(server: &Server, watcher: &str) -> LegacyView {
    let (c, welcome) = launcher(server, watcher, 5);
    c.close();
    LegacyView {
        name: watcher.to_string(),
        users: last_message(&welcome, ":>>USERS:"),
        sessions: last_message(&welcome, ":>>SESSIONS:"),
        playing: playing(&welcome),
    }
}

/// Waits (one fresh login per try, bounded) until the legacy lobby counts `n` pipes.
fn wait_playing(server: &Server, n: usize, tag: &str) -> LegacyView {
    let deadline = Instant::now() + T;
    for i in 0.. {
        let view = legacy_view(server, &format!("{tag}{i}"));
        if view.playing == n {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "the legacy lobby counts {} pipes, not {n}, after {T:?}",
            view.playing
        );
    }
    unreachable!()
}

/// The host (protocol 3) creates the room.
fn create_room(host: &mut Client) {
    host.send_frame(format!("<NEW>{ROOM}<PSWD><COUNT>2<MODS>").as_bytes());
    host.recv_until(|b| contains(b, format!(":>>CREATED:{ROOM}").as_bytes()), T);
}

/// The guest (protocol 5) joins the host's room, both READY: the host's HOST and START, the
/// guest's START, and both lobby sockets closed. (HOST uuid, guest's START uuid).
fn join_and_start(host: &mut Client, guest: &mut Client) -> (String, String) {
    guest.send_frame(format!("<JOIN>{ROOM}<PSWD><MODS>").as_bytes());
    guest.recv_until(|b| contains(b, format!(":>>JOIN:{ROOM}:").as_bytes()), T);
    host.send_frame(format!("<READY>{ROOM}").as_bytes());
    guest.send_frame(format!("<READY>{ROOM}").as_bytes());
    let mut starts = Vec::new();
    for (who, c) in [("host", &mut *host), ("guest", &mut *guest)] {
        assert!(c.wait_closed(T), "{who}'s lobby socket closes after START");
        let msgs = split_messages(&lossy(c.pending()));
        let start = msgs
            .last()
            .and_then(|m| m.strip_prefix(":>>START:"))
            .unwrap_or_else(|| panic!("{who}: START comes last: {msgs:?}"))
            .to_string();
        let hosts: Vec<&String> = msgs.iter().filter(|m| m.starts_with(":>>HOST:")).collect();
        starts.push((start, hosts.first().map(|h| h.to_string())));
    }
    let host_msg = starts[0].1.clone().expect("the host gets HOST");
    assert!(starts[1].1.is_none(), "the guest gets no HOST");
    let (uuid, remote) = host_msg[":>>HOST:".len()..]
        .split_once(':')
        .expect("HOST:{uuid}:{n}");
    assert_eq!(remote, "1", "one remote player");
    assert_eq!(uuid.len(), 36, "{uuid:?}");
    (uuid.to_string(), starts[1].0.clone())
}

/// A game process's pipe: connected, handshake sent in one write.
struct Pipe {
    stream: TcpStream,
    hello: Vec<u8>,
    name: &'static str,
}

impl Pipe {
    /// `app_name` as the game process of that launcher's version sends it.
    fn open(server: &Server, app_name: &str, uuid: &str, name: &'static str) -> Pipe {
        let mut stream = TcpStream::connect_timeout(&server.addr(), T).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(T)).unwrap();
        let hello = pipe_hello(app_name, uuid, ENDIAN_LITTLE);
        stream.write_all(&hello).expect("send the pipe handshake");
        Pipe {
            stream,
            hello,
            name,
        }
    }

    /// Its own handshake comes back once paired (PROTOCOL.md §10.5).
    fn expect_echo(&mut self) {
        let mut got = vec![0u8; self.hello.len()];
        self.stream
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{}: no echo: {e}", self.name));
        assert!(got == self.hello, "{}: echo {:?}", self.name, lossy(&got));
    }
}

/// Sends `data` then FIN on a clone of `from`.
fn send_then_fin(from: &TcpStream, data: Vec<u8>, what: String) -> JoinHandle<Result<(), String>> {
    let mut w = from.try_clone().expect("clone");
    w.set_write_timeout(Some(BULK_T)).unwrap();
    thread::spawn(move || {
        for chunk in data.chunks(64 * 1024) {
            w.write_all(chunk)
                .map_err(|e| format!("{what}: write failed: {e}"))?;
        }
        w.shutdown(Shutdown::Write)
            .map_err(|e| format!("{what}: shutdown: {e}"))
    })
}

/// Reads everything up to EOF on a clone of `to` and compares it with `want`.
fn recv_until_eof(to: &TcpStream, want: Vec<u8>, what: String) -> JoinHandle<Result<(), String>> {
    let mut r = to.try_clone().expect("clone");
    r.set_read_timeout(Some(BULK_T)).unwrap();
    thread::spawn(move || {
        let mut got = Vec::with_capacity(want.len());
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!(
                        "{what}: read failed after {} bytes: {e}",
                        got.len()
                    ))
                }
            }
        }
        if got == want {
            return Ok(());
        }
        let at = got.iter().zip(&want).position(|(a, b)| a != b);
        Err(format!(
            "{what}: {} bytes, {} expected, first difference at {at:?}",
            got.len(),
            want.len()
        ))
    })
}

// ---- JSON ------------------------------------------------------------------------------------

/// Display names in an activeAccounts message.
fn display_names(active_accounts: &Value) -> Vec<String> {
    let mut names: Vec<String> = active_accounts["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| a["displayName"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

/// A JSON account logs in: the activeAccounts and activeGameRooms it got at login.
fn json_view(addr: std::net::SocketAddr, name: &str) -> (Peer, Value, Value) {
    let (mut p, _, _) = account(addr, name);
    let last = |p: &Peer, ty: &str| {
        p.skipped
            .iter()
            .rev()
            .find(|m| m["type"] == ty)
            .cloned()
            .unwrap_or_else(|| panic!("no {ty} at login: {:?}", p.skipped))
    };
    let accounts = last(&p, "activeAccounts");
    let rooms = last(&p, "activeGameRooms");
    p.skipped.clear();
    (p, accounts, rooms)
}

/// Writes frames (heartbeats in between, which the relay consumes) on a clone of `from`.
fn send_frames(from: &TcpStream, frames: Vec<Vec<u8>>) -> JoinHandle<Result<(), String>> {
    let mut w = from.try_clone().expect("clone");
    w.set_write_timeout(Some(BULK_T)).unwrap();
    thread::spawn(move || {
        for f in frames {
            w.write_all(&[0, 0, 0, 0])
                .and_then(|()| w.write_all(&frame(&f)))
                .map_err(|e| format!("JSON frame write failed: {e}"))?;
        }
        Ok(())
    })
}

/// Reads `want.len()` non-empty frames from `peer` and compares each.
fn expect_frames(peer: &mut Peer, want: &[Vec<u8>], what: &str) {
    peer.s.set_read_timeout(Some(BULK_T)).unwrap();
    for (i, w) in want.iter().enumerate() {
        let got = peer.payload();
        assert!(
            got == *w,
            "{what}: frame {i} differs ({} bytes, {} expected)",
            got.len(),
            w.len()
        );
    }
    peer.s.set_read_timeout(Some(T)).unwrap();
}

/// The game frames of one direction: small, several MiB, small.
fn game_frames(seed: u8) -> Vec<Vec<u8>> {
    vec![
        pattern(seed, 100),
        pattern(seed.wrapping_add(1), JSON_BIG),
        pattern(seed.wrapping_add(2), 3),
    ]
}

fn join_all(handles: Vec<JoinHandle<Result<(), String>>>) {
    let errors: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
        .filter_map(Result::err)
        .collect();
    assert!(errors.is_empty(), "transfer errors:\n{}", errors.join("\n"));
}

// ---- the tests -----------------------------------------------------------------------------

#[test]
fn a_legacy_game_and_a_json_game_run_side_by_side() {
    let s = Server::start(&["--flood-rate", "0"]);

    // both lobbies populated: two launchers with a room, two JSON accounts with a room and a
    // proxy pair
    let (mut old3, _) = launcher(&s, "oldHost3", 3);
    let (mut new5, _) = launcher(&s, "newGuest5", 5);
    create_room(&mut old3);
    let (mut ps, mut pc, setup) = proxied_game_setup(s.addr(), "mx");
    // the guest's proxy half sends first: once it arrives, the pair is complete
    pc.send_payload(b"hello from the guest");
    assert_eq!(ps.payload(), b"hello from the guest");

    // each lobby shows its own users and rooms only
    let view = legacy_view(&s, "legacyWatcher");
    assert_eq!(view.users, ":>>USERS:3:oldHost3:newGuest5:legacyWatcher");
    assert_eq!(view.sessions, format!(":>>SESSIONS:1:{ROOM}:1:2:False"));
    assert_eq!(view.playing, 0, "JSON proxy halves are no legacy pipes");
    let (mut json_watcher, accounts, rooms) = json_view(s.addr(), "jsonWatcher");
    assert_eq!(
        display_names(&accounts),
        ["jsonWatcher", "mxGuest", "mxHost"],
        "{accounts}"
    );
    let listed: Vec<&Value> = rooms["gameRooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .collect();
    assert_eq!(listed.len(), 1, "only the JSON room: {rooms}");
    assert_eq!(listed[0]["gameRoomID"], setup.room_id.as_str());
    assert!(!rooms.to_string().contains(ROOM), "{rooms}");

    // the legacy game starts; its pipes pair while the JSON pair is open
    let (host_uuid, guest_uuid) = join_and_start(&mut old3, &mut new5);
    let mut server_pipe = Pipe::open(&s, "VCMI 1.1.0 (server)", &host_uuid, "vcmiserver pipe");
    let mut client_pipe = Pipe::open(&s, "VCMI 1.4.5 (client)", &guest_uuid, "vcmiclient pipe");
    client_pipe.expect_echo();
    server_pipe.expect_echo();

    // both games set up: the legacy lobby counts its two pipes, not the JSON halves
    let view = wait_playing(&s, 2, "countWatcher");
    assert_eq!(view.sessions, ":>>SESSIONS:0");
    json_watcher.fence(); // the JSON lobby serves

    // every stream at once, both ways
    let up = pattern(0x11, LEGACY_BULK);
    let down = pattern(0x22, LEGACY_BULK);
    let (to_server, to_guest) = (game_frames(0x33), game_frames(0x44));
    let mut handles = vec![
        send_then_fin(
            &client_pipe.stream,
            up.clone(),
            "vcmiclient -> vcmiserver".into(),
        ),
        recv_until_eof(&server_pipe.stream, up, "vcmiserver <- vcmiclient".into()),
        send_then_fin(
            &server_pipe.stream,
            down.clone(),
            "vcmiserver -> vcmiclient".into(),
        ),
        recv_until_eof(&client_pipe.stream, down, "vcmiclient <- vcmiserver".into()),
    ];
    handles.push(send_frames(&pc.s, to_server.clone()));
    handles.push(send_frames(&ps.s, to_guest.clone()));
    expect_frames(&mut ps, &to_server, "guest -> match server");
    expect_frames(&mut pc, &to_guest, "match server -> guest");
    // the legacy streams end with EOF after their last byte (the game ends cleanly)
    join_all(handles);

    // the JSON game ends: the guest's half closes, the match server's half is closed after it
    drop(pc);
    assert!(
        ps.closed(),
        "the match server's half closes with the guest's"
    );
    drop(setup.keep);

    // the server still takes both kinds; the legacy pipes are gone
    let view = wait_playing(&s, 0, "afterWatcher");
    // (earlier watchers may still be listed: their closes and this login race)
    assert!(
        view.users.starts_with(":>>USERS:") && view.users.ends_with(&format!(":{}", view.name)),
        "{}",
        view.users
    );
    for json_name in ["mx", "jsonWatcher", "lateComer"] {
        assert!(!view.users.contains(json_name), "{}", view.users);
    }
    let (_late, accounts, _) = json_view(s.addr(), "lateComer");
    let names = display_names(&accounts);
    assert!(names.contains(&"lateComer".to_string()), "{accounts}");
    // (the game's accounts may still be listed: their closes and this login race)
    for name in &names {
        assert!(
            ["jsonWatcher", "lateComer", "mxHost", "mxGuest"].contains(&name.as_str()),
            "{name} is no JSON account: {accounts}"
        );
    }
    json_watcher.fence();
    let log = s.log_text();
    assert!(!log.contains("internal error"), "{log}");
}

#[test]
fn sigterm_drains_legacy_pipes_and_json_proxy_pairs_alike() {
    let mut s = Server::start(&["--flood-rate", "0", "--shutdown-grace", "30"]);
    // a JSON game, relaying
    let (mut ps, mut pc, setup) = proxied_game_setup(s.addr(), "st");
    pc.send_payload(b"ready");
    assert_eq!(ps.payload(), b"ready");
    // a legacy game, relaying
    let (mut host, _) = launcher(&s, "termHost3", 3);
    let (mut guest, _) = launcher(&s, "termGuest5", 5);
    create_room(&mut host);
    let (host_uuid, guest_uuid) = join_and_start(&mut host, &mut guest);
    let mut server_pipe = Pipe::open(&s, "VCMI 1.1.0 (server)", &host_uuid, "vcmiserver pipe");
    let mut client_pipe = Pipe::open(&s, "VCMI 1.4.5 (client)", &guest_uuid, "vcmiclient pipe");
    client_pipe.expect_echo();
    server_pipe.expect_echo();
    // lobby clients of both kinds
    let (mut legacy_by, _) = launcher(&s, "bystander", 5);
    let (mut json_by, _, _) = account(s.addr(), "stBystander");
    json_by.fence();

    s.signal("TERM");
    // the lobbies close: the launcher with the notice, the JSON accounts and the match
    // server's control connection without one (the protocol has none)
    legacy_by.recv_until(|b| contains(b, b"The server is shutting down"), T);
    assert!(
        legacy_by.wait_closed(T),
        "the legacy lobby client is closed"
    );
    assert!(json_by.closed(), "the JSON lobby client is closed");
    let mut keep = setup.keep;
    for (i, p) in keep.iter_mut().enumerate() {
        assert!(
            p.closed(),
            "JSON lobby connection {i} of the game is closed"
        );
    }
    // both games go on: a frame each way on the JSON pair, bytes each way on the pipes
    let big = pattern(5, 2 * MIB);
    let w = send_frames(&ps.s, vec![big.clone()]);
    pc.s.set_read_timeout(Some(BULK_T)).unwrap();
    assert!(
        pc.payload() == big,
        "match server -> guest during the grace"
    );
    join_all(vec![w]);
    pc.send_payload(b"still here");
    assert_eq!(ps.payload(), b"still here");
    for (mut a, mut b) in [
        (&server_pipe.stream, &client_pipe.stream),
        (&client_pipe.stream, &server_pipe.stream),
    ] {
        a.write_all(b"turn").expect("pipe write");
        let mut got = [0u8; 4];
        b.read_exact(&mut got).expect("pipe read during the grace");
        assert_eq!(&got, b"turn");
    }
    assert!(
        s.wait_exit(Duration::from_millis(200)).is_none(),
        "two games keep it up"
    );

    // the JSON game ends first: the server waits for the legacy one
    drop(pc);
    assert!(
        ps.closed(),
        "the match server's half closes with the guest's"
    );
    assert!(
        s.wait_exit(Duration::from_millis(200)).is_none(),
        "the legacy game keeps it up"
    );
    server_pipe.stream.shutdown(Shutdown::Write).unwrap();
    client_pipe.stream.shutdown(Shutdown::Write).unwrap();
    let ended = Instant::now();
    let status = s
        .wait_exit(T)
        .expect("the server exits once both games ended");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        ended.elapsed() < Duration::from_secs(5),
        "not the 30 s grace"
    );
    let log = s.log_text();
    assert!(log.contains("every game ended, exiting"), "{log}");
}

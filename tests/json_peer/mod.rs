//! A blocking JSON lobby peer (VCMI 1.5+) for hand-written tests (`mod json_peer;`, beside
//! `mod common;`): accounts, a match server with a room, and a paired proxy game. Shared by
//! `json_lobby.rs`, `mixed_games.rs` and `operators.rs`. The conformance replay has its own
//! channel-based connections (`json_common`).

// Every integration test is its own crate and uses a different subset of these helpers.
#![allow(dead_code)]

use crate::common::Server;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Read timeout of every peer: one expected message (or several MiB of a relayed frame).
pub const WAIT: Duration = Duration::from_secs(10);

/// A blocking JSON lobby peer: 4-byte LE size + payload frames; empty frames are counted.
pub struct Peer {
    pub s: TcpStream,
    pub heartbeats: usize,
    /// Messages `until` passed over, oldest first.
    pub skipped: Vec<Value>,
}

impl Peer {
    pub fn connect(addr: SocketAddr) -> Peer {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        Peer {
            s,
            heartbeats: 0,
            skipped: Vec::new(),
        }
    }

    pub fn send_payload(&mut self, payload: &[u8]) {
        self.s
            .write_all(&vcmi_proxy::wire::frame(payload))
            .expect("send");
    }

    pub fn send(&mut self, v: Value) {
        self.send_payload(v.to_string().as_bytes());
    }

    /// The next frame, empty ones included; None at EOF.
    pub fn frame(&mut self) -> Option<Vec<u8>> {
        let mut h = [0u8; 4];
        self.s.read_exact(&mut h).ok()?;
        let mut p = vec![0u8; u32::from_le_bytes(h) as usize];
        self.s.read_exact(&mut p).ok()?;
        Some(p)
    }

    /// The next non-empty frame (heartbeats counted and skipped).
    pub fn payload(&mut self) -> Vec<u8> {
        loop {
            let f = self.frame().expect("a frame, not EOF/timeout");
            if f.is_empty() {
                self.heartbeats += 1;
            } else {
                return f;
            }
        }
    }

    pub fn msg(&mut self) -> Value {
        serde_json::from_slice(&self.payload()).expect("JSON from the server")
    }

    /// Messages until one of type `ty` (returned).
    pub fn until(&mut self, ty: &str) -> Value {
        loop {
            let m = self.msg();
            if m["type"] == ty {
                return m;
            }
            self.skipped.push(m);
        }
    }

    /// Reads to the end of the stream (frames skipped): true once the server closed it, false
    /// when nothing arrived for `WAIT` (the read timeout) while it stayed open.
    pub fn closed(&mut self) -> bool {
        loop {
            let mut h = [0u8; 4];
            match self.s.read(&mut h[..1]) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true, // reset
            }
            if self.s.read_exact(&mut h[1..]).is_err() {
                return true;
            }
            let mut p = vec![0u8; u32::from_le_bytes(h) as usize];
            if self.s.read_exact(&mut p).is_err() {
                return true;
            }
            if p.is_empty() {
                self.heartbeats += 1;
            }
        }
    }

    /// Register `name`: (accountID, cookie).
    pub fn register(&mut self, name: &str) -> (String, String) {
        self.send(json!({"type":"clientRegister","displayName":name,"language":"english","version":"1.7.5"}));
        let m = self.until("accountCreated");
        (
            m["accountID"].as_str().unwrap().into(),
            m["accountCookie"].as_str().unwrap().into(),
        )
    }

    pub fn login(&mut self, id: &str, cookie: &str) {
        self.send(
            json!({"type":"clientLogin","accountID":id,"accountCookie":cookie,
            "language":"english","version":"1.7.5","languageRooms":["fence"]}),
        );
        self.until("clientLoginSuccess");
        self.until("matchesHistory");
    }

    /// Round trip: an empty history of the unused channel `fence`.
    pub fn fence(&mut self) {
        self.send(
            json!({"type":"requestChatHistory","channelType":"global","channelName":"fence"}),
        );
        loop {
            let m = self.until("chatHistory");
            if m["channelName"] == "fence" {
                return;
            }
        }
    }
}

/// A registered and logged-in account: (peer, accountID, cookie).
pub fn account(addr: SocketAddr, name: &str) -> (Peer, String, String) {
    let mut p = Peer::connect(addr);
    let (id, cookie) = p.register(name);
    p.login(&id, &cookie);
    (p, id, cookie)
}

pub fn db_args(dir: &std::path::Path) -> String {
    dir.join("vcmiLobby.db").to_string_lossy().into_owned()
}

pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vcmi-json-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A server on the database in `dir`, flood control off, then `extra` arguments.
pub fn server(dir: &std::path::Path, extra: &[&str]) -> Server {
    let db = db_args(dir);
    let mut args = vec!["--db", db.as_str(), "--flood-rate", "0"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// What [`proxied_game`] set up besides the pair.
pub struct GameSetup {
    /// The host's account connection, the match server's control connection, the guest's
    /// account connection (kept alive: dropping the control connection ends the room).
    pub keep: Vec<Peer>,
    pub room_id: String,
    /// Cookies and IDs, for tests that check they are never disclosed.
    pub secrets: Vec<String>,
}

/// A host with its match server and a public room of `player_limit` 2, a guest in it, and a
/// paired proxy: (PS = match-server half, PC = guest half, the rest). Waits for the guest's
/// proxyMode joinRoomSuccess, so the pair is complete once the first relayed frame arrives.
pub fn proxied_game_setup(addr: SocketAddr, tag: &str) -> (Peer, Peer, GameSetup) {
    let (mut h, hid, hcookie) = account(addr, &format!("{tag}Host"));
    let room = format!(
        "00000000-0000-4000-8000-{:012}",
        tag.len() * 1000 + tag.as_bytes()[0] as usize
    );
    let mut ctl = Peer::connect(addr);
    ctl.send(json!({"type":"serverLogin","gameRoomID":room,"accountID":hid,"accountCookie":hcookie,"version":"1.7.5","mods":null}));
    ctl.until("serverLoginSuccess");
    h.send(
        json!({"type":"activateGameRoom","hostAccountID":hid,"roomType":"public","playerLimit":2}),
    );
    h.until("joinRoomSuccess");
    let (mut g, gid, gcookie) = account(addr, &format!("{tag}Guest"));
    g.send(json!({"type":"joinGameRoom","gameRoomID":room}));
    ctl.until("accountJoinsRoom");
    let mut ps = Peer::connect(addr);
    ps.send(json!({"type":"serverProxyLogin","gameRoomID":room,"guestAccountID":gid,"accountCookie":hcookie}));
    loop {
        let m = g.until("joinRoomSuccess");
        if m["proxyMode"] == true {
            break;
        }
    }
    let mut pc = Peer::connect(addr);
    pc.send(json!({"type":"clientProxyLogin","accountID":gid,"accountCookie":gcookie,"gameRoomID":room}));
    let setup = GameSetup {
        keep: vec![h, ctl, g],
        room_id: room,
        secrets: vec![hid, hcookie, gid, gcookie],
    };
    (ps, pc, setup)
}

/// [`proxied_game_setup`] for tests that only keep the connections alive.
pub fn proxied_game(addr: SocketAddr, tag: &str) -> (Peer, Peer, Vec<Peer>) {
    let (ps, pc, setup) = proxied_game_setup(addr, tag);
    (ps, pc, setup.keep)
}

/// `len` bytes of a pseudo-random pattern (different per `seed`).
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect()
}

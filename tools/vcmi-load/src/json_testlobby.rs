//! Tests of the `json-*` modes end to end against a minimal in-process JSON lobby that answers
//! the way the reference does for the requests the tool sends (LOBBY-JSON.md §1.5, §1.10), so
//! `cargo test` covers the drivers without the oracle. One thread per connection; everything the
//! tool does not send is out of scope here.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::json_proto::{self as jp, FrameBuf, Msg};
use crate::Ctx;

type Out = Arc<Mutex<TcpStream>>;

#[derive(Default)]
struct Lobby {
    next_id: u64,
    /// account id → (cookie, name)
    accounts: HashMap<String, (String, String)>,
    /// logged-in account id → its lobby connection
    online: HashMap<String, Out>,
    /// room id → (match-server control connection, host account id)
    rooms: HashMap<String, (Out, String)>,
    /// (guest id, room) → the match server's proxy connection, awaiting the guest
    awaiting: HashMap<(String, String), TcpStream>,
}

fn send(to: &Out, msg: &Value) {
    // pretty-printed, like the reference's replies
    let text = serde_json::to_string_pretty(msg).unwrap_or_default();
    let mut f = Vec::new();
    jp::push_frame(&mut f, text.as_bytes());
    let _ = to.lock().unwrap().write_all(&f);
}

/// Starts the fake lobby on an ephemeral loopback port.
fn start() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let lobby = Arc::new(Mutex::new(Lobby::default()));
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let lobby = lobby.clone();
            std::thread::spawn(move || serve(s, &lobby));
        }
    });
    addr
}

fn serve(mut s: TcpStream, lobby: &Mutex<Lobby>) {
    let out: Out = Arc::new(Mutex::new(s.try_clone().unwrap()));
    let mut fb = FrameBuf::default();
    let mut buf = vec![0u8; 64 << 10];
    let mut me: Option<String> = None;
    loop {
        while let Ok(Some(p)) = fb.next_payload() {
            let Ok(m) = Msg::parse(p) else { return };
            let s2 = |k: &str| m.str(k).unwrap_or("").to_string();
            let mut l = lobby.lock().unwrap();
            match m.kind.as_str() {
                "clientRegister" => {
                    l.next_id += 1;
                    let (id, cookie) = (format!("id{}", l.next_id), format!("c{}", l.next_id));
                    l.accounts
                        .insert(id.clone(), (cookie.clone(), s2("displayName")));
                    send(
                        &out,
                        &json!({"type":"accountCreated","accountID":id,"accountCookie":cookie}),
                    );
                }
                "clientLogin" => {
                    let id = s2("accountID");
                    let Some((_, name)) = l.accounts.get(&id).cloned() else {
                        return;
                    };
                    l.online.insert(id.clone(), out.clone());
                    me = Some(id);
                    send(
                        &out,
                        &json!({"type":"clientLoginSuccess","accountCookie":s2("accountCookie"),"displayName":name}),
                    );
                    let ch = m.body["languageRooms"][0].as_str().unwrap_or("english");
                    send(
                        &out,
                        &json!({"type":"chatHistory","channelType":"global","channelName":ch,"messages":[]}),
                    );
                    let list: Vec<Value> = l.online.keys().map(|a| json!({"accountID":a,"displayName":l.accounts[a].1,"status":"In Lobby"})).collect();
                    for o in l.online.values() {
                        send(o, &json!({"type":"activeAccounts","accounts":list}));
                    }
                    send(&out, &json!({"type":"activeGameRooms","gameRooms":[]}));
                    send(&out, &json!({"type":"matchesHistory","matchesHistory":[]}));
                }
                "sendChatMessage" => {
                    let from = me.clone().unwrap_or_default();
                    let msg = json!({"type":"chatMessage","messageText":s2("messageText"),"accountID":from,
                        "displayName":"x","channelType":"global","channelName":s2("channelName")});
                    for o in l.online.values() {
                        send(o, &msg);
                    }
                }
                "serverLogin" => {
                    l.rooms
                        .insert(s2("gameRoomID"), (out.clone(), s2("accountID")));
                    send(
                        &out,
                        &json!({"type":"serverLoginSuccess","accountCookie":s2("accountCookie")}),
                    );
                }
                "activateGameRoom" => {
                    let host = s2("hostAccountID");
                    let Some(room) = l.rooms.iter().find(|r| r.1 .1 == host).map(|r| r.0.clone())
                    else {
                        return;
                    };
                    send(
                        &out,
                        &json!({"type":"joinRoomSuccess","gameRoomID":room,"proxyMode":false}),
                    );
                }
                "joinGameRoom" => {
                    let srv = l.rooms[&s2("gameRoomID")].0.clone();
                    send(
                        &srv,
                        &json!({"type":"accountJoinsRoom","accountID":me.clone().unwrap_or_default()}),
                    );
                }
                "serverProxyLogin" => {
                    let (guest, room) = (s2("guestAccountID"), s2("gameRoomID"));
                    let g = l.online[&guest].clone();
                    send(
                        &g,
                        &json!({"type":"joinRoomSuccess","gameRoomID":room,"proxyMode":true}),
                    );
                    l.awaiting.insert((guest, room), s.try_clone().unwrap());
                    return; // this thread stops reading: the guest's thread relays both ways
                }
                "clientProxyLogin" => {
                    let key = (s2("accountID"), s2("gameRoomID"));
                    let Some(mut ps) = l.awaiting.remove(&key) else {
                        return;
                    };
                    drop(l);
                    // the frames that came with the login go first, then raw copies both ways
                    let mut rest = Vec::new();
                    while let Ok(Some(p)) = fb.next_payload() {
                        rest.extend_from_slice(&(p.len() as u32).to_le_bytes());
                        rest.extend_from_slice(p);
                    }
                    let _ = ps.write_all(&rest);
                    let (mut ps_r, mut pc_w) = (ps.try_clone().unwrap(), s.try_clone().unwrap());
                    std::thread::spawn(move || std::io::copy(&mut ps_r, &mut pc_w));
                    let _ = std::io::copy(&mut s, &mut ps);
                    return;
                }
                _ => return,
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => fb.push(&buf[..n]),
        }
    }
}

fn ctx() -> Ctx {
    Ctx {
        deadline: Instant::now() + Duration::from_secs(60),
        started: Instant::now(),
        run_id: "ab12".into(),
        proto: 5,
        vcmi_version: String::new(),
    }
}

#[test]
fn json_relay_and_pingpong_through_the_proxy_procedure() {
    use crate::json_relay::*;
    let addr = start();
    let opts = JsonRelayOpts {
        games: 3,
        bytes: 200_000,
        frame_size: 7_000,
        seed: 9,
        parallel: 2,
        stall: Duration::from_secs(10),
        channel: "english".into(),
    };
    let r = run_json_relay(JsonTarget::Proxy(addr), &opts, &ctx()).unwrap();
    let line = r.json.render();
    assert!(r.ok, "{line}");
    assert!(line.contains("\"streams_complete\":6"), "{line}");
    let p = JsonPingOpts {
        count: 30,
        size: 100,
        warmup: 2,
        seed: 1,
        stall: Duration::from_secs(10),
        channel: "english".into(),
    };
    let r = run_json_pingpong(JsonTarget::Proxy(addr), &p, &ctx()).unwrap();
    assert!(r.ok, "{}", r.json.render());
}

#[test]
fn json_lobby_logs_in_and_accounts_for_every_delivery() {
    use crate::json_lobby::*;
    let addr = start();
    let opts = JsonLobbyOpts {
        users: 12,
        rate: 60.0,
        duration: 0.5,
        window: 4,
        drain: 5.0,
        channel: "german".into(),
        sources: Vec::new(),
    };
    let r = run_json_lobby(addr, &opts, &ctx()).unwrap();
    let line = r.json.render();
    assert!(r.ok, "{line}");
    // 30 messages to each of the 12 accounts
    assert!(line.contains("\"deliveries_received\":360"), "{line}");
    assert!(line.contains("\"lost\":0"), "{line}");
}

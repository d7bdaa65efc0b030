//! Operator features over real TCP (issue 10): the admin endpoint, PROXY
//! protocol headers on the game port, bans and MOTD with SIGHUP reload,
//! IPv6 and several `--bind`s, and `--log-dir -`.

mod common;
mod json_peer;

use common::admin::{admin_server, get, http_raw, metric, read_response};
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn admin_routes_answer_and_refuse() {
    let (_server, admin) = admin_server(&[]);
    let (status, head, body) = get(admin, "/metrics");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(head.contains("Connection: close"), "{head}");
    assert!(body.contains("# TYPE vcmiproxy_connections_accepted_total counter"));
    assert_eq!(
        get(admin, "/healthz"),
        (200, get(admin, "/healthz").1, "ok\n".into())
    );
    let (status, head, body) = get(admin, "/api/v1/status?x=1");
    assert_eq!(status, 200);
    assert!(head.contains("application/json"), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["users"]["total"], 0);
    assert_eq!(get(admin, "/nope").0, 404);
    let (status, head, _) = http_raw(
        admin,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET"), "{head}");
    assert_eq!(http_raw(admin, b"HELLO\x01\r\n\r\n").0, 400);
    // a head that never ends: 400 once it passes the limit
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() < 9000 {
        big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert_eq!(http_raw(admin, &big).0, 400);
}

#[test]
fn admin_request_split_byte_by_byte() {
    let (_server, admin) = admin_server(&[]);
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" {
        s.write_all(&[*b]).unwrap();
    }
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

#[test]
fn slow_admin_request_times_out_with_400() {
    let (_server, admin) = admin_server(&["--admin-timeout", "1"]);
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let t0 = Instant::now();
    s.write_all(b"GET /metr").unwrap();
    let (status, _, _) = read_response(&mut s);
    let took = t0.elapsed();
    assert_eq!(status, 400);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // a client that finishes in time is answered
    assert_eq!(get(admin, "/healthz").0, 200);
}

#[test]
fn metrics_and_status_move_after_a_login() {
    let (server, admin) = admin_server(&[]);
    let before = get(admin, "/metrics").2;
    let accepted = metric(&before, "vcmiproxy_connections_accepted_total");
    assert!(!before.contains("vcmiproxy_users{protocol=\"legacy-5\"}"));
    let mut a = login(&server, "alice");
    a.send_frame(b"<NEW>Duel<PSWD>secret<COUNT>2<MODS>");
    a.recv_until(|b| contains(b, b"Duel"), WAIT);
    let after = get(admin, "/metrics").2;
    assert_eq!(
        metric(&after, "vcmiproxy_connections_accepted_total"),
        accepted + 1.0
    );
    assert_eq!(
        metric(&after, "vcmiproxy_users{protocol=\"legacy-5\"}"),
        1.0
    );
    assert_eq!(metric(&after, "vcmiproxy_connections{kind=\"lobby\"}"), 1.0);
    assert_eq!(metric(&after, "vcmiproxy_rooms_created_total"), 1.0);
    assert!(metric(&after, "vcmiproxy_lobby_sent_bytes_total") > 0.0);
    assert!(metric(&after, "vcmiproxy_resident_memory_bytes") > 0.0);
    let status: serde_json::Value = serde_json::from_str(&get(admin, "/api/v1/status").2).unwrap();
    assert_eq!(status["users"]["total"], 1);
    assert_eq!(status["users"]["by_protocol"]["legacy-5"], 1);
    assert_eq!(
        status["rooms"],
        serde_json::json!([{"name": "Duel", "players": 1, "capacity": 2,
                            "password": true, "started": false}])
    );
    assert!(!status.to_string().contains("secret"));
    assert!(!status.to_string().contains("127.0.0.1"));
}

/// `promtool check metrics` on a scrape, when promtool is installed (it is not a build
/// dependency: without it the test says so and relies on its own checks of the body).
fn promtool_check(body: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return eprintln!("promtool not run ({e}): exposition not linted"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_json_lobby_shows_in_status_and_metrics() {
    use json_peer::{account, proxied_game_setup, Peer};
    use serde_json::json;
    let (server, admin) = admin_server(&["--flood-rate", "0"]);
    let before = get(admin, "/metrics").2;
    assert_eq!(metric(&before, "vcmiproxy_json_accounts_online"), 0.0);
    assert_eq!(
        metric(&before, "vcmiproxy_json_rooms{state=\"public\"}"),
        0.0
    );
    // a JSON game relaying, a public room with a description, an idle room, a chat line, and
    // a legacy user beside them
    let (mut ps, mut pc, setup) = proxied_game_setup(server.addr(), "op");
    pc.send_payload(b"first game frame");
    assert_eq!(ps.payload(), b"first game frame");
    let (mut watcher, wid, wcookie) = account(server.addr(), "opWatcher");
    let mut keep = setup.keep;
    keep[1].send(json!({"type":"changeRoomDescription","description":"Duel on Arrogance"}));
    watcher.until("updateGameRoom");
    let mut idle = Peer::connect(server.addr());
    idle.send(
        json!({"type":"serverLogin","gameRoomID":"00000000-0000-4000-8000-000000000999",
        "accountID":wid,"accountCookie":wcookie,"version":"1.7.5","mods":null}),
    );
    idle.until("serverLoginSuccess");
    watcher.send(json!({"type":"sendChatMessage","channelType":"global","channelName":"english","messageText":"gl hf"}));
    watcher.until("chatMessage");
    let _legacy = login(&server, "alice");

    let body = get(admin, "/api/v1/status").2;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["users"]["by_protocol"]["json"], 3, "{body}");
    assert_eq!(status["users"]["by_protocol"]["legacy-5"], 1, "{body}");
    assert_eq!(status["users"]["total"], 4, "{body}");
    assert_eq!(
        status["json"],
        json!({
            "accounts_online": 3,
            "rooms": [
                {"name": "", "state": "idle", "players": 0, "player_limit": 8, "private": false},
                {"name": "Duel on Arrogance", "state": "public", "players": 2, "player_limit": 2,
                 "private": false},
            ],
            "proxy_pairs": 1,
        }),
        "{body}"
    );
    let mut secrets = setup.secrets.clone();
    secrets.extend([wid, wcookie, setup.room_id.clone(), "127.0.0.1".into()]);
    secrets.push("00000000-0000-4000-8000-000000000999".into());
    for secret in &secrets {
        assert!(!body.contains(secret.as_str()), "{secret} in {body}");
    }

    let m = get(admin, "/metrics").2;
    for (name, value) in [
        ("vcmiproxy_users{protocol=\"json\"}", 3.0),
        ("vcmiproxy_connections{kind=\"json\"}", 7.0),
        ("vcmiproxy_json_connections{kind=\"lobby\"}", 5.0),
        ("vcmiproxy_json_connections{kind=\"relayed\"}", 2.0),
        ("vcmiproxy_json_accounts_online", 3.0),
        ("vcmiproxy_json_rooms{state=\"idle\"}", 1.0),
        ("vcmiproxy_json_rooms{state=\"public\"}", 1.0),
        ("vcmiproxy_json_rooms{state=\"private\"}", 0.0),
        ("vcmiproxy_json_rooms{state=\"busy\"}", 0.0),
        ("vcmiproxy_json_proxy_pairs", 1.0),
        ("vcmiproxy_json_registrations_total", 3.0),
        ("vcmiproxy_json_logins_total", 3.0),
        ("vcmiproxy_json_chat_messages_total", 1.0),
        ("vcmiproxy_json_rooms_created_total", 2.0),
        ("vcmiproxy_json_proxy_pairs_created_total", 1.0),
        ("vcmiproxy_json_relayed_frames_total", 1.0),
        ("vcmiproxy_json_store_chat_message_seconds_count", 1.0),
    ] {
        assert_eq!(metric(&m, name), value, "{name} in\n{m}");
    }
    assert!(metric(&m, "vcmiproxy_json_store_request_seconds_count") >= 8.0);
    assert!(metric(&m, "vcmiproxy_json_store_request_seconds_sum") > 0.0);
    assert!(m.contains("# TYPE vcmiproxy_json_store_request_seconds histogram"));
    assert!(m.contains("# HELP vcmiproxy_json_logins_total "));
    promtool_check(&m);

    // the game ends: no pair any more, its frame still counted
    drop(pc);
    assert!(ps.closed());
    let m = get(admin, "/metrics").2;
    assert_eq!(metric(&m, "vcmiproxy_json_proxy_pairs"), 0.0);
    assert_eq!(metric(&m, "vcmiproxy_json_relayed_frames_total"), 1.0);
    assert_eq!(
        metric(&m, "vcmiproxy_json_connections{kind=\"relayed\"}"),
        0.0
    );
    promtool_check(&m);
}

#[test]
fn lobby_http_api_as_vcmilobby() {
    let db = std::env::temp_dir().join(format!("vcmi-ops-api-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let (_server, admin) = admin_server(&["--db", db.to_str().unwrap()]);
    let (status, head, body) = get(admin, "/api/v1/stats");
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("application/json"));
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["server"], "VCMI Lobby");
    assert_eq!(stats["onlinePlayersCount"]["current"], 0);
    assert_eq!(get(admin, "/api/v1/stats?x=1").0, 404);
    let chats: serde_json::Value =
        serde_json::from_str(&get(admin, "/api/v1/chats?channelName=russian").2).unwrap();
    assert_eq!(
        (chats["channelName"].clone(), chats["count"].clone()),
        ("russian".into(), 0.into())
    );
    let rooms: serde_json::Value =
        serde_json::from_str(&get(admin, "/api/v1/rooms?hours=2&limit=5").2).unwrap();
    assert_eq!(
        (rooms["hours"].clone(), rooms["limit"].clone()),
        (2.into(), 5.into())
    );
    let (status, _, body) = get(admin, "/api/v1/rooms?limit=0");
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"error":"Parameter 'limit' must be between 1 and 250"}"#
    );
    let (status, _, body) = get(admin, "/api/v1/whatever");
    assert_eq!(status, 404);
    assert!(
        body.contains("The requested endpoint does not exist"),
        "{body}"
    );
    let _ = std::fs::remove_file(&db);
}

// ---- PROXY protocol ---------------------------------------------------------------

fn v2_tcp4(src: [u8; 4], src_port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&5002u16.to_be_bytes());
    h
}

fn v2_tcp6(src: [u8; 16], src_port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x21, 0x00, 0x24]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[0; 15]);
    h.push(1);
    h.extend_from_slice(&src_port.to_be_bytes());
    h.extend_from_slice(&5002u16.to_be_bytes());
    h
}

/// A connection whose first bytes are `header` and a login as `user`.
fn login_behind(server: &Server, header: &[u8], user: &str, byte_by_byte: bool) -> Client {
    let mut c = server.client();
    let mut all = header.to_vec();
    all.extend_from_slice(&frame(&lobby_hello(user, 5, Some("utf8"), Some("1.4.5"))));
    if byte_by_byte {
        for b in &all {
            c.send_raw(&[*b]);
        }
    } else {
        c.send_raw(&all);
    }
    c
}

/// Waits for the welcome line (panics with what arrived if it does not).
fn logged_in(c: &mut Client) -> bool {
    let got = c.recv_until(|b| contains(b, b"currently playing"), WAIT);
    contains(&got, b"currently playing")
}

#[test]
fn proxy_v1_and_v2_from_a_trusted_source() {
    let server = Server::start(&["--proxy-protocol-from", "127.0.0.0/8"]);
    let mut a = login_behind(
        &server,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 5002\r\n",
        "viaone",
        false,
    );
    assert!(logged_in(&mut a), "{}", lossy(a.pending()));
    let mut b = login_behind(&server, &v2_tcp4([198, 51, 100, 9], 40000), "viatwo", true);
    assert!(logged_in(&mut b), "{}", lossy(b.pending()));
    let mut ip6 = [0u8; 16];
    ip6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    ip6[15] = 7;
    let mut c = login_behind(&server, &v2_tcp6(ip6, 40001), "viasix", false);
    assert!(logged_in(&mut c), "{}", lossy(c.pending()));
    let log = server
        .wait_log(WAIT, |l| l.contains("[2001:db8::7]:40001 (PROXY header)"))
        .unwrap_or_else(|| server.log_text());
    assert!(log.contains("is 203.0.113.7:51234 (PROXY header)"), "{log}");
    assert!(
        log.contains("is 198.51.100.9:40000 (PROXY header)"),
        "{log}"
    );
    assert!(
        log.contains("is [2001:db8::7]:40001 (PROXY header)"),
        "{log}"
    );
}

#[test]
fn malformed_or_missing_proxy_header_is_closed() {
    let (server, admin) = admin_server(&["--proxy-protocol-from", "127.0.0.1"]);
    let mut bad = login_behind(&server, b"PROXY TCP4 not-an-address\r\n", "nobody", false);
    assert!(bad.wait_closed(WAIT));
    assert!(!contains(bad.pending(), b"currently playing"));
    // a trusted source that sends the game protocol at once
    let mut none = server.client();
    none.hello("direct");
    assert!(none.wait_closed(WAIT));
    assert!(none.pending().is_empty(), "{}", lossy(none.pending()));
    let body = get(admin, "/metrics").2;
    assert_eq!(
        metric(&body, "vcmiproxy_drops_total{reason=\"proxy-header\"}"),
        2.0
    );
}

#[test]
fn proxy_header_from_an_untrusted_source_is_ordinary_input() {
    let server = Server::start(&["--proxy-protocol-from", "10.0.0.0/8"]);
    let mut c = login_behind(
        &server,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 5002\r\n",
        "spoofer",
        false,
    );
    assert!(c.wait_closed(WAIT));
    // read as a frame length ("PROX"): far too large, refused as such
    assert!(
        contains(c.pending(), b":>>ERROR:Frame too large"),
        "{}",
        lossy(c.pending())
    );
    assert!(!server.log_text().contains("PROXY header"));
}

#[test]
fn per_ip_limit_applies_to_the_proxy_source() {
    let server = Server::start(&["--proxy-protocol-from", "127.0.0.1", "--max-per-ip", "1"]);
    let mut first = login_behind(&server, &v2_tcp4([198, 51, 100, 1], 1000), "first", false);
    assert!(logged_in(&mut first));
    let mut again = login_behind(&server, &v2_tcp4([198, 51, 100, 1], 1001), "again", false);
    assert!(again.wait_closed(WAIT));
    assert!(!contains(again.pending(), b"currently playing"));
    // the balancer's own address is not what is limited
    let mut other = login_behind(&server, &v2_tcp4([198, 51, 100, 2], 1002), "other", false);
    assert!(logged_in(&mut other), "{}", lossy(other.pending()));
}

// ---- bans and MOTD --------------------------------------------------------------

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vcmi-ops-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bans_and_motd_reload_on_sighup() {
    let dir = scratch("bans");
    let (bans, motd) = (dir.join("bans.txt"), dir.join("motd.txt"));
    std::fs::write(&bans, "# nobody yet\n198.51.100.0/24\n").unwrap();
    std::fs::write(&motd, "Welcome to the test\ntry :>>START:x\n").unwrap();
    let server = Server::start(&[
        "--ban-file",
        bans.to_str().unwrap(),
        "--motd-file",
        motd.to_str().unwrap(),
    ]);
    let mut a = server.client();
    a.hello("alice");
    let got = a.recv_until(|b| contains(b, b"try "), WAIT);
    assert!(
        contains(&got, b":>>MSG:System:Welcome to the test"),
        "{}",
        lossy(&got)
    );
    assert!(!contains(&got, b":>>START"), "{}", lossy(&got));
    // a VCMI 1.5+ account of the name to be banned, registered before the ban
    let (id, cookie) = json_peer::Peer::connect(server.addr()).register("Griefer");

    std::fs::write(&bans, "name:GRIEFER # case-insensitive\n").unwrap();
    std::fs::write(&motd, "Second edition\n").unwrap();
    server.signal("HUP");
    server
        .wait_log(WAIT, |l| {
            l.contains("message of the day") && l.contains("reloaded: 1 lines")
        })
        .expect("reload logged");
    let mut g = server.client();
    g.hello("griefer");
    assert!(g.wait_closed(WAIT));
    assert!(
        contains(g.pending(), b":>>ERROR:"),
        "{}",
        lossy(g.pending())
    );
    assert!(!contains(g.pending(), b"currently playing"));
    // the name ban holds for the JSON lobby too: a reason, then the close
    let mut j = json_peer::Peer::connect(server.addr());
    j.send(
        serde_json::json!({"type":"clientLogin","accountID":id,"accountCookie":cookie,
        "language":"english","version":"1.6.5"}),
    );
    let refused = j.msg();
    assert_eq!(
        (refused["type"].as_str(), refused["reason"].as_str()),
        (
            Some("operationFailed"),
            Some(vcmi_proxy::json::lobby::BANNED)
        ),
        "{refused}"
    );
    assert!(j.closed(), "a banned account's connection is closed");
    let mut b = server.client();
    b.hello("bob");
    let got = b.recv_until(|x| contains(x, b"Second edition"), WAIT);
    assert!(
        contains(&got, b":>>MSG:System:Second edition"),
        "{}",
        lossy(&got)
    );

    // a broken file keeps the list it had and names the line
    std::fs::write(&bans, "# fine\nnot an entry\n").unwrap();
    server.signal("HUP");
    let log = server
        .wait_log(WAIT, |l| l.contains("keeping the previous list"))
        .expect("error logged");
    assert!(log.contains("line 2"), "{log}");
    let mut g = server.client();
    g.hello("Griefer");
    assert!(g.wait_closed(WAIT));

    // the address itself: closed at accept, before any byte
    std::fs::write(&bans, "127.0.0.1\n").unwrap();
    server.signal("HUP");
    // the first reload above logged "1 entries" too: wait for this one's line
    server
        .wait_log(WAIT, |l| l.matches("reloaded: 1 entries").count() == 2)
        .expect("reload logged");
    let mut c = server.client();
    assert!(c.wait_closed(WAIT));
    assert!(c.pending().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- IPv6 and listeners --------------------------------------------------------

#[test]
fn two_binds_share_one_port() {
    let server = Server::start(&["--bind", "::1"]);
    let out = server.stdout_text();
    let deadline = Instant::now() + WAIT;
    let mut out = out;
    while !out.contains("[::1]") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        out = server.stdout_text();
    }
    assert!(
        out.contains(&format!("listening on [::1]:{}", server.port())),
        "{out}"
    );
    let mut v6 = Client::connect(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], server.port())));
    v6.hello("sixer");
    assert!(logged_in(&mut v6));
    let _v4 = login(&server, "fourer");
    let log = server.wait_log(WAIT, |l| l.contains("[::1]:")).unwrap();
    assert!(log.contains("autorized as sixer"), "{log}");
}

/// `--bind ::` alone, `--log-dir -`: one dual-stack socket, IPv4 clients
/// shown and limited as IPv4, the log on stderr and no file.
#[test]
fn dual_stack_bind_and_log_to_stderr() {
    let dir = scratch("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vcmi-proxy"))
        .args([
            "--bind",
            "::",
            "--port",
            "0",
            "--log-dir",
            "-",
            "--max-per-ip",
            "1",
        ])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("listening on [::]:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    let mut v4 = Client::connect(SocketAddr::from(([127, 0, 0, 1], port)));
    v4.hello("fourer");
    assert!(logged_in(&mut v4));
    // the limit counts 127.0.0.1 as itself: a second v4 connection is
    // refused, a ::1 one is not
    let mut v4b = Client::connect(SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(v4b.wait_closed(WAIT));
    let mut v6 = Client::connect(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port)));
    v6.hello("sixer");
    assert!(logged_in(&mut v6));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = child.wait();
    assert!(stderr.contains("- INFO - [+] 127.0.0.1:"), "{stderr}");
    assert!(!stderr.contains("::ffff:"), "{stderr}");
    assert!(stderr.contains("- INFO - [+] [::1]:"), "{stderr}");
    assert!(!dir.join("proxyServer.log").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- relay figures ---------------------------------------------------------------

/// A two-player legacy game started and both of its pipes paired (each
/// got its echo): the game is running.
fn running_game(server: &Server) -> (TcpStream, TcpStream) {
    let mut host = login(server, "hoster");
    let mut guest = login(server, "guester");
    host.send_frame(b"<NEW>Game<PSWD><COUNT>2<MODS>");
    host.recv_until(|b| contains(b, b":>>CREATED:Game"), WAIT);
    guest.send_frame(b"<JOIN>Game<PSWD><MODS>");
    guest.recv_until(|b| contains(b, b":>>JOIN:Game:guester:"), WAIT);
    host.send_frame(b"<READY>Game");
    guest.send_frame(b"<READY>Game");
    assert!(host.wait_closed(WAIT) && guest.wait_closed(WAIT));
    let uuid_after = |text: &[u8], tag: &str| -> String {
        let text = lossy(text);
        let at = text
            .find(tag)
            .unwrap_or_else(|| panic!("no {tag} in {text}"));
        text[at + tag.len()..at + tag.len() + 36].to_string()
    };
    let host_uuid = uuid_after(host.pending(), ":>>HOST:");
    let guest_uuid = uuid_after(guest.pending(), ":>>START:");
    let hello_s = pipe_hello("server", &host_uuid, None, ENDIAN_LITTLE);
    let hello_c = pipe_hello("client", &guest_uuid, None, ENDIAN_LITTLE);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let mut c = TcpStream::connect(server.addr()).unwrap();
    for (stream, hello) in [(&mut s, &hello_s), (&mut c, &hello_c)] {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(hello).unwrap();
    }
    for (stream, hello) in [(&mut s, &hello_s), (&mut c, &hello_c)] {
        let mut echo = vec![0; hello.len()];
        stream.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, hello);
    }
    (s, c)
}

/// Both pipes pair, then end; the scrape counts the pair and the session's
/// duration.
#[test]
fn a_relayed_game_shows_in_metrics() {
    let (server, admin) = admin_server(&[]);
    let (s, c) = running_game(&server);
    drop(s);
    drop(c);
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let body = get(admin, "/metrics").2;
        if metric(&body, "vcmiproxy_relay_session_duration_seconds_count") >= 1.0 {
            break body;
        }
        assert!(Instant::now() < deadline, "no session observed:\n{body}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        metric(&body, "vcmiproxy_relay_session_duration_seconds_count"),
        1.0
    );
    assert_eq!(metric(&body, "vcmiproxy_pipes_paired_total"), 1.0);
    assert_eq!(metric(&body, "vcmiproxy_relay_sessions_created_total"), 1.0);
    assert!(metric(&body, "vcmiproxy_starts_total") >= 1.0);
}

#[test]
fn a_bad_ban_file_stops_the_start_with_its_line() {
    let dir = scratch("badstart");
    let bans = dir.join("bans.txt");
    std::fs::write(&bans, "192.0.2.1\n\nname:\n").unwrap();
    let err = Server::try_start(&["--ban-file", bans.to_str().unwrap()])
        .err()
        .expect("refused to start");
    assert!(err.contains("line 3"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn healthz_turns_503_when_shutdown_begins() {
    let (server, admin) = admin_server(&[]);
    // a running game keeps the server up through its shutdown grace
    let _game = running_game(&server);
    assert_eq!(
        get(admin, "/healthz"),
        (200, get(admin, "/healthz").1, "ok\n".into())
    );
    server.signal("TERM");
    server
        .wait_log(WAIT, |l| l.contains("stop requested"))
        .expect("shutdown logged");
    let (status, _, body) = get(admin, "/healthz");
    assert_eq!((status, body.as_str()), (503, "shutting down\n"));
    let metrics = get(admin, "/metrics").2;
    assert_eq!(metric(&metrics, "vcmiproxy_accepting"), 0.0);
}

#[test]
fn motd_is_sent_in_each_users_encoding() {
    let dir = scratch("motd1251");
    let motd = dir.join("motd.txt");
    std::fs::write(&motd, "Привет, игроки\n").unwrap();
    let server = Server::start(&["--motd-file", motd.to_str().unwrap()]);
    let mut ru = server.client();
    ru.send_frame(&lobby_hello("ivan", 5, Some("cp1251"), Some("1.4.5")));
    let (want, _, _) = encoding_rs::WINDOWS_1251.encode(":>>MSG:System:Привет, игроки");
    let got = ru.recv_until(|b| contains(b, &want), WAIT);
    assert!(contains(&got, &want), "{}", lossy(&got));
    let mut en = server.client();
    en.hello("john");
    let got = en.recv_until(|b| contains(b, "Привет, игроки".as_bytes()), WAIT);
    assert!(contains(&got, ":>>MSG:System:Привет, игроки".as_bytes()));
    let _ = std::fs::remove_dir_all(&dir);
}

//! Hostile clients, round 2 (issue 9): attacks from many source addresses (127.0.x.y stand in
//! for a botnet) that once held the server's resources for ever. Each test has a *bystander*,
//! an ordinary logged-in launcher that chats on a thread throughout the attack; its worst
//! round trip is printed (the bound asserted is generous, 1 s, because the machine running the
//! tests is shared; the figure printed is the one to look at). Each test also prints the
//! server's RSS before, at the peak of and after the attack, and ends by checking that the
//! server is back to zero state: a `[stats]` line with no connection, user, room or session.
//!
//! Run one with its figures: `cargo test --test hostile2 -- --nocapture <name>`.

mod common;

use common::admin::{admin_server, get, metric};
use common::{contains, frame, lobby_hello, lossy, pipe_hello, Client, RssSampler, Server};
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Anything that should happen promptly (debug build, 2 cores, tests in parallel).
const T: Duration = Duration::from_secs(10);
/// The bystander's worst round trip asserted (the goal is 100 ms; see the module comment).
const BYSTANDER_BOUND: Duration = Duration::from_secs(1);
const MIB: u64 = 1024;

/// The attacks run one at a time (the other tests of this file may run beside them): each
/// bystander measures its own attack, not three at once on a shared 2-core machine.
static ATTACK: Mutex<()> = Mutex::new(());

fn one_attack_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ATTACK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Source address number `n` of the botnet: 127.0.(n / 250 + 10).(n % 250 + 1).
fn bot(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        (n / 250 + 10) as u8,
        (n % 250 + 1) as u8,
    ))
}

/// A connection to `server` from the source address `from`.
fn connect_from(server: SocketAddr, from: IpAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::new(from, 0).into())
        .expect("bind source");
    s.connect(&server.into()).expect("connect");
    let s: TcpStream = s.into();
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Whether the server closed `s` within `wait` (EOF or reset); what it sent before is skipped.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 65536];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        s.set_read_timeout(Some(deadline - now)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// A logged-in launcher chatting on a thread: `<MSG>pingN.` every 20 ms, each waiting for its
/// own line back. `stop` returns the worst round trip and the number of pings.
struct Bystander {
    stop: Arc<AtomicBool>,
    worst: Arc<Mutex<(Duration, usize)>>,
    handle: Option<thread::JoinHandle<Client>>,
}

impl Bystander {
    fn start(server: &Server) -> Bystander {
        let mut c = server.client();
        c.hello("bystander");
        c.recv_until(|b| contains(b, b"currently playing"), T);
        let stop = Arc::new(AtomicBool::new(false));
        let worst = Arc::new(Mutex::new((Duration::ZERO, 0)));
        let (flag, w) = (Arc::clone(&stop), Arc::clone(&worst));
        let handle = thread::spawn(move || {
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                n += 1;
                let want = format!(":>>MSGCH:bystander:global:ping{n}.");
                let start = Instant::now();
                c.send_frame(format!("<MSG>ping{n}.").as_bytes());
                c.recv_until(|b| contains(b, want.as_bytes()), T);
                let took = start.elapsed();
                let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
                w.0 = w.0.max(took);
                w.1 += 1;
                drop(w);
                // a person types a line now and then, not in a loop (and the flood limit agrees)
                thread::sleep(Duration::from_millis(200));
            }
            c
        });
        Bystander {
            stop,
            worst,
            handle: Some(handle),
        }
    }

    /// Stops chatting; asserts it was served throughout and returns the worst round trip.
    fn stop(mut self, what: &str) -> Duration {
        // an attack the server shrugs off quickly may end before three pings: let it finish them
        // (still during the attack, which lasts until the caller drops its connections)
        let deadline = Instant::now() + T;
        while self.worst.lock().unwrap_or_else(|p| p.into_inner()).1 < 3
            && Instant::now() < deadline
            && !self.handle.as_ref().is_some_and(|h| h.is_finished())
        {
            thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Relaxed);
        let c = self
            .handle
            .take()
            .expect("running")
            .join()
            .unwrap_or_else(|_| panic!("the bystander was not served while {what}"));
        c.close();
        let (worst, pings) = *self.worst.lock().unwrap_or_else(|p| p.into_inner());
        eprintln!("[{what}] bystander: {pings} chat round trips, worst {worst:?}");
        assert!(pings >= 3, "too few round trips ({pings}) to judge");
        assert!(
            worst < BYSTANDER_BOUND,
            "the bystander waited {worst:?} while {what}"
        );
        worst
    }
}

/// Waits for a `[stats]` line (the test servers print one a second) saying that nothing is
/// left: no connection, user, room or session.
fn assert_zero_state(s: &Server) {
    let seen = s.log_text().lines().count();
    let clean = |log: &str| {
        log.lines().skip(seen).any(|l| {
            l.contains(
                "[stats] connections 0 (lobby 0, pipes 0, other 0), users 0, rooms 0, sessions 0,",
            )
        })
    };
    let log = s.wait_log(Duration::from_secs(15), clean);
    assert!(
        log.is_some(),
        "the server did not return to zero state; last stats: {:?}",
        s.log_text().lines().rfind(|l| l.contains("[stats]"))
    );
}

/// After an attack, ordinary life goes on: a protocol-2 host logs in, starts a room alone, its
/// game server and game client pipes pair and relay 256 KiB each way, then everything closes.
fn ordinary_game(s: &Server, name: &str) {
    let mut host = s.client();
    host.send_frame(&lobby_hello(name, 2, Some("utf8"), None));
    host.recv_until(|b| contains(b, b"currently playing"), T);
    host.send_frame(format!("<NEW>{name}<PSWD><COUNT>2<MODS>").as_bytes());
    host.send_frame(format!("<READY>{name}").as_bytes());
    let got = lossy(&host.recv_until(|b| contains(b, b":>>START:"), T));
    let uuid = |tag: &str| {
        got.split(tag)
            .nth(1)
            .and_then(|r| r.split(':').next())
            .map(|u| u.chars().take(36).collect::<String>())
            .expect("uuid")
    };
    let mut server_pipe = Client::connect(s.addr());
    server_pipe.send_raw(&pipe_hello("server", &uuid(":>>HOST:"), None, &[1]));
    let mut client_pipe = Client::connect(s.addr());
    client_pipe.send_raw(&pipe_hello("client", &uuid(":>>START:"), None, &[1]));
    relay_256k(&server_pipe, &mut client_pipe);
    relay_256k(&client_pipe, &mut server_pipe);
    server_pipe.close();
    client_pipe.close();
    host.close();
}

/// Writes 256 KiB through `from` and checks they all arrive at `to`, intact and in order (after
/// `to`'s own handshake echo, the first time).
fn relay_256k(from: &Client, to: &mut Client) {
    let data: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let tail = data[data.len() - 4096..].to_vec();
    let mut w = from.stream().try_clone().expect("clone");
    let writer = thread::spawn(move || w.write_all(&data));
    let got = to.recv_until(|got| got.len() >= 256 * 1024 && got.ends_with(&tail), T);
    writer.join().expect("writer").expect("write");
    assert!(
        got.len() < 256 * 1024 + 200,
        "only the echo besides: {}",
        got.len()
    );
}

fn rss(s: &Server) -> u64 {
    s.rss_kib().expect("the server is alive")
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

// ---- 400 connections that send a lobby header and nothing else ------------------------------

#[test]
fn header_only_connections_are_closed_at_the_login_timeout() {
    let _attack = one_attack_at_a_time();
    // the healthcheck is on (10 s) and must not cover for a connection that never logs in
    let s = Server::start(&[
        "--session-grace",
        "2",
        "--login-timeout",
        "2",
        "--healthcheck",
        "10",
        "--stats-interval",
        "1",
    ]);
    let by = Bystander::start(&s);
    let before = rss(&s);
    let sampler = RssSampler::start(s.pid());
    let header = frame(&common::lobby_hello_payload(5, Some("utf8"), b""));
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..400)
        .map(|i| {
            // 8 per address from 50 addresses
            let mut c = connect_from(s.addr(), bot(i / 8));
            c.write_all(&header).expect("header");
            c
        })
        .collect();
    let mut closed = 0;
    for c in &mut idle {
        if closed_within(c, T) {
            closed += 1;
        }
    }
    let took = started.elapsed();
    let peak = sampler.stop();
    let worst = by.stop("400 header-only connections wait");
    let after = rss(&s);
    eprintln!(
        "[header-only] {closed} of 400 closed after {took:?}; rss before {before} KiB, peak \
         {peak} KiB, after {after} KiB; bystander worst {worst:?}"
    );
    assert_eq!(closed, 400, "every header-only connection is closed");
    assert!(
        took >= Duration::from_secs(2),
        "not before the login timeout: {took:?}"
    );
    let log = s.log_text();
    assert_eq!(count(&log, "disconnected: not logged in within 2s"), 400);
    assert!(
        peak < before + 16 * MIB,
        "peak {peak} KiB from {before} KiB"
    );
    drop(idle);
    ordinary_game(&s, "afterwards");
    assert_zero_state(&s);
}

// ---- 3,000 logged-in connections parking 60 KiB of a 64 KiB frame ----------------------------

#[test]
fn parked_partial_frames_are_shed_under_the_memory_budget() {
    let _attack = one_attack_at_a_time();
    const BUDGET_MIB: u64 = 32;
    const PARKERS: usize = 3000;
    let budget = (BUDGET_MIB * 1024 * 1024).to_string();
    let (s, admin) = admin_server(&[
        "--memory-budget",
        &budget,
        "--session-grace",
        "2",
        "--capacity",
        "4000",
        "--flood-rate",
        "0",
        "--stats-interval",
        "1",
    ]);
    let by = Bystander::start(&s);
    let before = rss(&s);
    let sampler = RssSampler::start(s.pid());
    // a VCMI 1.1 launcher (protocol 1) logs in, then sends 60 KiB of a 64 KiB frame
    let mut parker = Vec::with_capacity(PARKERS);
    for i in 0..PARKERS {
        let mut bytes = frame(&lobby_hello(&format!("parker{i}"), 1, Some("utf8"), None));
        bytes.extend_from_slice(&(64u32 * 1024).to_le_bytes());
        bytes.extend_from_slice(&[b'x'; 60 * 1024]);
        // 25 per address from 120 addresses
        let mut c = connect_from(s.addr(), bot(i / 25));
        c.set_write_timeout(Some(T)).expect("timeout");
        c.write_all(&bytes).expect("park");
        parker.push(c);
    }
    let parked_at = Instant::now();
    // the server sheds down to its budget: wait until the log says it has
    let log = s.wait_log(T, |log| {
        count(log, "memory budget exceeded: held") >= PARKERS / 2
    });
    let half_shed_after = parked_at.elapsed();
    let peak = sampler.stop();
    let worst = by.stop("3000 connections park 60 KiB frames");
    drop(parker);
    ordinary_game(&s, "afterwards");
    assert_zero_state(&s);
    // the log is complete now (every shed happened before the zero state)
    let shed = count(&s.log_text(), "memory budget exceeded: held");
    let after = rss(&s);
    eprintln!(
        "[parked frames] {shed} of {PARKERS} shed (half of them {half_shed_after:?} after the \
         last was parked); rss before {before} KiB, peak {peak} KiB, after {after} KiB; budget \
         {BUDGET_MIB} MiB; bystander worst {worst:?}"
    );
    assert!(log.is_some(), "the server did not shed: {shed} shed");
    // every shed is counted in the statistics too
    let stats = s.log_text();
    let stats = stats
        .lines()
        .rfind(|l| l.contains("[stats]"))
        .expect("a stats line");
    assert!(
        stats.contains(&format!("memory-shed {shed},")),
        "{shed} sheds logged; {stats}"
    );
    // ... and in /metrics, as drops for the memory budget
    let (_, _, scrape) = get(admin, "/metrics");
    assert_eq!(
        metric(&scrape, "vcmiproxy_drops_total{reason=\"memory-budget\"}"),
        shed as f64
    );
    // what 3,000 parked frames would take is about 180 MiB; the budget holds it to 32 MiB,
    // plus a fixed overhead for 3,000 connections' own state and the allocator's slack
    assert!(
        peak < before + (BUDGET_MIB + 32) * MIB,
        "peak {peak} KiB from {before} KiB with a {BUDGET_MIB} MiB budget"
    );
}

// ---- sessions started alone, again and again -------------------------------------------------

/// A protocol-2 launcher from `from` logs in as `name`, creates a room and starts it alone (its
/// READY starts the room). Returns what it was sent after the READY.
fn start_alone(server: SocketAddr, from: IpAddr, name: &str) -> String {
    let mut c = connect_from(server, from);
    c.write_all(&frame(&lobby_hello(name, 2, Some("utf8"), None)))
        .expect("hello");
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let mut read_until = |c: &mut TcpStream, got: &mut Vec<u8>, want: &[&[u8]]| {
        let deadline = Instant::now() + T;
        while !want.iter().any(|w| contains(got, w)) {
            assert!(Instant::now() < deadline, "no {want:?}: {}", lossy(got));
            c.set_read_timeout(Some(T)).expect("timeout");
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    read_until(&mut c, &mut got, &[b"currently playing"]);
    got.clear();
    c.write_all(&frame(b"<NEW>solo<PSWD><COUNT>2<MODS>"))
        .expect("new");
    c.write_all(&frame(b"<READY>solo")).expect("ready");
    read_until(&mut c, &mut got, &[b":>>START:", b":>>ERROR:"]);
    lossy(&got)
}

#[test]
fn sessions_started_alone_are_capped_per_address_and_in_all() {
    let _attack = one_attack_at_a_time();
    // capacity 50: at most 200 live sessions in all, 8 per address
    let s = Server::start(&[
        "--pipe-wait",
        "3",
        "--session-grace",
        "3",
        "--stats-interval",
        "1",
    ]);
    let by = Bystander::start(&s);
    let before = rss(&s);
    let sampler = RssSampler::start(s.pid());
    let addr = s.addr();
    let started = Instant::now();
    // 299 addresses x 10 starts = 2,990, on 4 threads
    let results: Vec<(usize, usize, usize)> = (0..4)
        .map(|t| {
            thread::spawn(move || {
                let (mut ok, mut per_ip, mut full) = (0, 0, 0);
                for a in (t..299).step_by(4) {
                    for k in 0..10 {
                        let got = start_alone(addr, bot(a), &format!("solo{a}x{k}"));
                        if got.contains(":>>START:") {
                            ok += 1;
                        } else if got.contains(":>>ERROR:Too many games (8)") {
                            per_ip += 1;
                        } else if got
                            .contains(":>>ERROR:The server already runs its maximum of 200")
                        {
                            full += 1;
                        } else {
                            panic!("unexpected answer: {got}");
                        }
                    }
                }
                (ok, per_ip, full)
            })
        })
        .map(|h| h.join().expect("a starter thread panicked"))
        .collect();
    let took = started.elapsed();
    let peak = sampler.stop();
    let worst = by.stop("2,990 games are started alone");
    let (ok, per_ip, full) = results
        .iter()
        .fold((0, 0, 0), |a, r| (a.0 + r.0, a.1 + r.1, a.2 + r.2));
    let after = rss(&s);
    eprintln!(
        "[sessions] 2990 starts in {took:?}: {ok} started, {per_ip} refused by the per-address \
         cap, {full} by the global cap; rss before {before} KiB, peak {peak} KiB, after {after} \
         KiB; bystander worst {worst:?}"
    );
    assert_eq!(ok + per_ip + full, 2990);
    // a session lives 3 s without pipes: some expire during the run and make room again, so
    // the exact split depends on the speed of the run; the caps themselves do not
    assert!(ok >= 200, "the first 200 start: {ok}");
    assert!(
        per_ip > 0 && full > 0,
        "both caps were met: {per_ip} / {full}"
    );
    let log = s.log_text();
    assert_eq!(count(&log, "start refused for"), per_ip + full);
    assert!(
        peak < before + 32 * MIB,
        "peak {peak} KiB from {before} KiB"
    );
    // unused sessions are forgotten after --pipe-wait
    assert_zero_state(&s);
    ordinary_game(&s, "afterwards");
    assert_zero_state(&s);
}

// ---- one slow frame, one lonely pipe ----------------------------------------------------------

#[test]
fn a_frame_not_finished_in_time_closes_its_connection() {
    let s = Server::start(&["--frame-timeout", "2", "--healthcheck", "0"]);
    let mut c = s.client();
    c.hello("slowbody");
    c.recv_until(|b| contains(b, b"currently playing"), T);
    let started = Instant::now();
    // a frame of 100 bytes, of which 10 arrive; more trickles in, but never the end
    c.send_raw(&[100, 0, 0, 0]);
    c.send_raw(b"<MSG>hello");
    let mut other = s.client();
    other.hello("finisher");
    other.recv_until(|b| contains(b, b"currently playing"), T);
    assert!(c.wait_closed(T), "closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "not before the timeout: {took:?}"
    );
    let log = s
        .wait_log(T, |l| l.contains("disconnected: frame incomplete after 2s"))
        .expect("the reason is logged");
    assert_eq!(count(&log, "frame incomplete"), 1, "only the slow one");
}

#[test]
fn a_registered_pipe_without_a_partner_is_closed_after_pipe_wait() {
    let s = Server::start(&[
        "--pipe-wait",
        "2",
        "--session-grace",
        "2",
        "--stats-interval",
        "1",
    ]);
    let mut host = s.client();
    host.send_frame(&lobby_hello("lonelyhost", 2, Some("utf8"), None));
    host.recv_until(|b| contains(b, b"currently playing"), T);
    host.send_frame(b"<NEW>lonely<PSWD><COUNT>2<MODS>");
    host.send_frame(b"<READY>lonely");
    let got = lossy(&host.recv_until(|b| contains(b, b":>>HOST:"), T));
    let uuid = got
        .split(":>>HOST:")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .expect("host uuid")
        .to_string();
    let mut pipe = Client::connect(s.addr());
    pipe.send_raw(&pipe_hello("server", &uuid, None, &[1]));
    let started = Instant::now();
    assert!(pipe.wait_closed(T), "closed");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    s.wait_log(T, |l| l.contains("disconnected: no partner pipe within 2s"))
        .expect("the reason is logged");
    assert_zero_state(&s);
}

// ---- a paused game pipe whose source resets ---------------------------------------------------

#[test]
fn a_pipe_that_resets_while_paused_is_noticed_before_its_partner_drains() {
    let s = Server::start(&[
        "--pipe-timeout",
        "2",
        "--session-grace",
        "2",
        "--stats-interval",
        "1",
    ]);
    // a protocol-2 host starts alone: its game server and its own game client pair
    let mut host = s.client();
    host.send_frame(&lobby_hello("pausedhost", 2, Some("utf8"), None));
    host.recv_until(|b| contains(b, b"currently playing"), T);
    host.send_frame(b"<NEW>paused<PSWD><COUNT>2<MODS>");
    host.send_frame(b"<READY>paused");
    let got = lossy(&host.recv_until(|b| contains(b, b":>>START:"), T));
    let field = |tag: &str| {
        got.split(tag)
            .nth(1)
            .and_then(|r| r.split(':').next())
            .map(|u| {
                u.trim_end_matches(|c: char| !c.is_ascii_hexdigit())
                    .to_string()
            })
            .expect("uuid")
    };
    let (host_uuid, start_uuid) = (field(":>>HOST:"), field(":>>START:"));
    let mut source = Client::connect(s.addr());
    source.send_raw(&pipe_hello("server", &host_uuid, None, &[1]));
    let sink = Client::connect(s.addr());
    let mut sink_raw = sink.stream().try_clone().expect("clone");
    sink_raw
        .write_all(&pipe_hello("client", &start_uuid, None, &[1]))
        .expect("sink hello");
    source.recv_until(|b| contains(b, b"Aiya!"), T); // paired: its echo is back
                                                     // the source writes until everything is full: the sink never reads
    let mut w = source.stream().try_clone().expect("clone");
    w.set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    while let Ok(n) = w.write(&chunk) {
        sent += n;
    }
    // the relay is paused now; the source resets its connection
    let sock = socket2::SockRef::from(source.stream());
    sock.set_linger(Some(Duration::ZERO)).expect("linger 0");
    let before_close = Instant::now();
    drop(w);
    source.close();
    let log = s
        .wait_log(T, |l| l.contains("while paused"))
        .unwrap_or_else(|| panic!("the reset was not noticed:\n{}", s.log_text()));
    eprintln!(
        "[paused reset] {sent} bytes sent before the pause; noticed within {:?}",
        before_close.elapsed()
    );
    assert!(log.contains("pipe ended"), "{log}");
    drop(sink);
    drop(sink_raw);
    assert_zero_state(&s);
}

#[test]
fn the_per_address_session_cap_holds_on_its_own() {
    // capacity 1000: 4,000 sessions in all, so only the per-address cap (8) can refuse here;
    // sessions live 120 s without pipes, longer than this test
    let s = Server::start(&["--capacity", "1000"]);
    let addr = s.addr();
    let (mut ok, mut refused) = (0, 0);
    for a in 0..20 {
        for k in 0..10 {
            let got = start_alone(addr, bot(1000 + a), &format!("cap{a}x{k}"));
            if got.contains(":>>START:") {
                ok += 1;
            } else {
                assert!(
                    got.contains(":>>ERROR:Too many games (8) were started from your address"),
                    "{got}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!((ok, refused), (20 * 8, 20 * 2));
    let log = s
        .wait_log(T, |l| count(l, "start refused for") == 40)
        .expect("each refusal is logged");
    assert!(
        log.contains("Too many games (8)"),
        "the reason is in the log"
    );
}

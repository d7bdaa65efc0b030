//! Hostile clients against the real binary: every test has a *bystander*, an ordinary logged-in
//! launcher, that must keep being served — it chats `<MSG>pingN.` and must get its own line back
//! within [`BOUND`] — while an offender does something nasty and is dropped for the stated
//! reason (the `:>>ERROR:` text it is sent, the connection closing, and/or the reason in
//! `proxyServer.log`: `[-] ADDR disconnected: REASON`).
//!
//! Memory: the cases where a client could make the server buffer (a 4 GiB length prefix, a
//! client that never reads) print the server's VmRSS before, at the peak during, and after,
//! and assert the peak stays bounded.
//!
//! All connections come from 127.0.0.1, so tests with many clients pass `--max-per-ip 0`.
//!
//! The tests after the `regressions` marker each reproduce a defect this suite found and that was
//! fixed: a waiting pipe never noticed closing, a lobby-wide slow-consumer drop caused by output
//! queued within one loop turn, `<MODS>` amplification, shutdown held by unpairable pipes.

mod common;

use common::{
    contains, frame, lobby_hello, login, lossy, pipe_hello, split_messages, Client, RssSampler,
    Server,
};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Anything that should happen promptly (debug build, 2 cores, tests in parallel).
const T: Duration = Duration::from_secs(5);
/// How fast the bystander's own chat line must come back.
const BOUND: Duration = Duration::from_millis(100);
/// Tries per check: a loaded CI machine may deschedule the test thread once or twice, the server
/// must still answer one try within [`BOUND`].
const TRIES: usize = 5;
/// Most the server's RSS may grow while under attack.
const RSS_SLACK_KIB: u64 = 64 * 1024;
const MIB: usize = 1024 * 1024;

/// `[-] ADDR disconnected: REASON` of the log line about the connection from `addr`.
fn disconnect_reason(log: &str, addr: SocketAddr) -> Option<String> {
    let prefix = format!("[-] {addr} disconnected: ");
    log.lines()
        .find_map(|l| l.split_once(&prefix).map(|(_, r)| r.trim().to_string()))
}

/// Waits until the log says why `addr` was disconnected; panics after `T`.
fn wait_reason(server: &Server, addr: SocketAddr) -> String {
    let log = server
        .wait_log(T, |log| disconnect_reason(log, addr).is_some())
        .unwrap_or_else(|| {
            panic!(
                "no disconnect line for {addr} in the log:\n{}",
                server.log_text()
            )
        });
    disconnect_reason(&log, addr).expect("checked")
}

fn local_addr(c: &Client) -> SocketAddr {
    c.stream().local_addr().expect("local addr")
}

fn rss(server: &Server) -> u64 {
    server.rss_kib().expect("the server process is alive")
}

/// An ordinary launcher that must keep being served. Everything it receives is kept in
/// `history`, so messages that arrive while waiting for a ping are not lost to later checks.
struct Bystander {
    c: Client,
    name: String,
    n: u32,
    history: String,
    /// Best latency of every check, for the report.
    served: Vec<Duration>,
}

impl Bystander {
    fn new(server: &Server) -> Bystander {
        Self::named(server, "bystander")
    }

    fn named(server: &Server, name: &str) -> Bystander {
        let mut c = server.client();
        c.hello(name);
        let welcome = c.recv_until(|b| contains(b, b"currently playing"), T);
        Bystander {
            c,
            name: name.to_string(),
            n: 0,
            history: lossy(&welcome),
            served: Vec::new(),
        }
    }

    /// One chat round trip: `<MSG>pingN.` until its own `:>>MSGCH:` line is back.
    fn ping_once(&mut self) -> Duration {
        self.n += 1;
        let text = format!("ping{}.", self.n);
        let want = format!(":>>MSGCH:{}:global:{text}", self.name);
        let start = Instant::now();
        self.c.send_frame(format!("<MSG>{text}").as_bytes());
        let got = self.c.recv_until(|b| contains(b, want.as_bytes()), T);
        let took = start.elapsed();
        self.history.push_str(&lossy(&got));
        took
    }

    /// Asserts the lobby answers this launcher within [`BOUND`] (best of [`TRIES`]).
    fn assert_served(&mut self, while_: &str) -> Duration {
        let mut tries = Vec::new();
        for _ in 0..TRIES {
            let took = self.ping_once();
            tries.push(took);
            if took <= BOUND {
                self.served.push(took);
                return took;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("the bystander was not served within {BOUND:?} while {while_}: {tries:?}");
    }

    /// Reads for `quiet` more and appends to the history.
    fn absorb(&mut self, quiet: Duration) {
        let got = self.c.recv_quiet(quiet, T);
        self.history.push_str(&lossy(&got));
    }

    /// Waits until the history contains `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + T;
        while !self.history.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the bystander never got {needle:?}; history: {:?}",
                self.history
            );
            self.absorb(Duration::from_millis(50));
        }
    }

    fn report(&self) -> String {
        let worst = self.served.iter().max().copied().unwrap_or_default();
        format!(
            "bystander served {} checks, slowest {:?}",
            self.served.len(),
            worst
        )
    }
}

/// Writes `total` bytes of junk through a second handle of `c`'s socket on a thread, ignoring
/// errors (the server hangs up on purpose). Returns how many bytes the kernel took.
fn push_junk(c: &Client, head: &[u8], total: usize) -> thread::JoinHandle<usize> {
    let mut s = c.stream().try_clone().expect("clone stream");
    let head = head.to_vec();
    thread::spawn(move || {
        let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
        if s.write_all(&head).is_err() {
            return 0;
        }
        let chunk = vec![b'A'; 64 * 1024];
        let mut sent = head.len();
        while sent < total {
            match s.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sent += n,
            }
        }
        sent
    })
}

// ---- length prefixes --------------------------------------------------------------------------

#[test]
fn four_gib_length_prefix_is_refused_without_buffering() {
    let s = Server::start(&["--max-per-ip", "0"]);
    let mut by = Bystander::new(&s);
    by.assert_served("nothing happens yet");
    let before = rss(&s);
    let sampler = RssSampler::start(s.pid());
    let prefix = [0xFFu8; 4];
    let error = ":>>ERROR:Frame too large (4294967295 bytes)";

    // (a) as the very first frame, followed by as much junk as the server takes
    let mut first = s.client();
    let first_addr = local_addr(&first);
    let junk = push_junk(&first, &prefix, 16 * MIB);
    let got = first.recv_until(|b| contains(b, error.as_bytes()), T);
    assert_eq!(lossy(&got), error, "exactly the error, nothing else");
    assert!(first.wait_closed(T), "closed after the error");
    let taken = junk.join().expect("junk writer");
    by.assert_served("a 4 GiB prefix arrives");

    // (b) from a logged-in launcher, mid-session
    let mut user = login(&s, "prefixer");
    let user_addr = local_addr(&user);
    let junk = push_junk(&user, &prefix, 16 * MIB);
    user.recv_until(|b| contains(b, error.as_bytes()), T);
    assert!(user.wait_closed(T), "closed after the error");
    junk.join().expect("junk writer");
    // the lobby learns the user is gone like after any disconnect
    by.wait_for(":>>USERS:1:bystander");
    by.assert_served("a logged-in user sent a 4 GiB prefix");

    // (c) eight at once, each pushing up to 8 MiB after the prefix
    let mut many: Vec<(Client, thread::JoinHandle<usize>)> = (0..8)
        .map(|_| {
            let c = s.client();
            let j = push_junk(&c, &prefix, 8 * MIB);
            (c, j)
        })
        .collect();
    by.assert_served("eight 4 GiB prefixes arrive at once");
    for (c, j) in many.iter_mut() {
        assert!(c.wait_closed(T), "every prefixer is closed");
        let _ = j;
    }
    for (_, j) in many {
        j.join().expect("junk writer");
    }
    let peak = sampler.stop();
    by.assert_served("after the prefixers");
    let after = rss(&s);

    let reason = wait_reason(&s, first_addr);
    assert_eq!(
        reason, "frame of 4294967295 bytes exceeds max-frame 65536",
        "log reason"
    );
    assert_eq!(
        wait_reason(&s, user_addr),
        "frame of 4294967295 bytes exceeds max-frame 65536"
    );
    eprintln!(
        "[rss] 4 GiB prefix: before {before} KiB, peak {peak} KiB, after {after} KiB \
         (first prefixer managed to write {taken} bytes); {}",
        by.report()
    );
    assert!(
        peak <= before + RSS_SLACK_KIB,
        "RSS grew from {before} to {peak} KiB"
    );
}

#[test]
fn login_trickled_one_byte_per_100ms_still_logs_in() {
    let s = Server::start(&[]);
    let mut by = Bystander::new(&s);
    let mut slow = s.client();
    let hello = frame(&lobby_hello(
        "trickler",
        5,
        Some("utf8"),
        Some("VCMI 1.4.5"),
    ));
    let start = Instant::now();
    for (i, byte) in hello.iter().enumerate() {
        let t0 = Instant::now();
        slow.send_raw(&[*byte]);
        if i % 5 == 4 {
            by.assert_served("a login trickles in");
        }
        let spent = t0.elapsed();
        if spent < Duration::from_millis(100) {
            thread::sleep(Duration::from_millis(100) - spent);
        }
    }
    let welcome = slow.recv_until(|b| contains(b, b"currently playing"), T);
    let took = start.elapsed();
    assert!(
        lossy(&welcome).contains(":>>MSG:System:Here available 1 users"),
        "{}",
        lossy(&welcome)
    );
    by.wait_for(":>>USERS:2:bystander:trickler");
    by.assert_served("after the trickled login");
    eprintln!(
        "trickle: {} bytes over {took:?}, logged in; {}",
        hello.len(),
        by.report()
    );
    assert!(took >= Duration::from_secs(3), "it really trickled");
}

#[test]
fn slowloris_connections_are_closed_after_the_first_frame_timeout() {
    let s = Server::start(&["--first-frame-timeout", "1"]);
    let mut by = Bystander::new(&s);
    let start = Instant::now();
    // silent, half a length prefix, a prefix with part of its payload
    let mut silent: Vec<Client> = (0..4).map(|_| s.client()).collect();
    let mut half = s.client();
    half.send_raw(&[40, 0]);
    let mut partial = s.client();
    partial.send_raw(&[40, 0, 0, 0, 5, 4, b'u', b't']);
    let addrs: Vec<SocketAddr> = silent
        .iter()
        .chain([&half, &partial])
        .map(local_addr)
        .collect();
    by.assert_served("slowloris connections hang around");
    for c in silent.iter_mut().chain([&mut half, &mut partial]) {
        assert!(c.wait_closed(T), "a slowloris connection is closed");
        assert!(c.pending().is_empty(), "and is sent nothing");
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed only after the timeout, not {took:?}"
    );
    for a in addrs {
        assert_eq!(wait_reason(&s, a), "no complete first frame in time");
    }
    // the bystander logged in long ago: the timeout is for first frames only
    thread::sleep(Duration::from_millis(300));
    by.assert_served("the slowloris connections were closed");
    eprintln!("slowloris: 6 closed after {took:?}; {}", by.report());
}

// ---- a client that never reads -------------------------------------------------------------

/// Reads a socket on a thread until told to stop, noting which of `needles` went by.
struct Drain {
    seen: Arc<Mutex<Vec<bool>>>,
    bytes: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Drain {
    fn start(stream: TcpStream, needles: &[&str]) -> Drain {
        let needles: Vec<Vec<u8>> = needles.iter().map(|n| n.as_bytes().to_vec()).collect();
        let seen = Arc::new(Mutex::new(vec![false; needles.len()]));
        let bytes = Arc::new(Mutex::new(0u64));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, bytes2, stop2) = (seen.clone(), bytes.clone(), stop.clone());
        let keep = needles.iter().map(Vec::len).max().unwrap_or(1);
        let handle = thread::spawn(move || {
            let mut s = stream;
            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            let mut carry: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 256 * 1024];
            while !stop2.load(Ordering::Relaxed) {
                match s.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        *bytes2.lock().unwrap() += n as u64;
                        carry.extend_from_slice(&chunk[..n]);
                        let mut seen = seen2.lock().unwrap();
                        for (i, needle) in needles.iter().enumerate() {
                            if !seen[i] && contains(&carry, needle) {
                                seen[i] = true;
                            }
                        }
                        let cut = carry.len().saturating_sub(keep);
                        carry.drain(..cut);
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
        });
        Drain {
            seen,
            bytes,
            stop,
            handle: Some(handle),
        }
    }

    fn seen(&self, i: usize) -> bool {
        self.seen.lock().unwrap()[i]
    }

    fn bytes(&self) -> u64 {
        *self.bytes.lock().unwrap()
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn client_that_never_reads_is_dropped_as_slow_consumer() {
    let s = Server::start(&["--max-output", "65536", "--flood-rate", "0"]);
    let mut by = Bystander::new(&s);
    // a room of three chatters and one member who stops reading after joining
    let mut host = login(&s, "chatA");
    host.send_frame(b"<NEW>Chatroom<PSWD><COUNT>4<MODS>");
    host.recv_until(|b| contains(b, b":>>CREATED:Chatroom"), T);
    let mut chatters = vec![host];
    for name in ["chatB", "chatC"] {
        let mut c = login(&s, name);
        c.send_frame(b"<JOIN>Chatroom<PSWD><MODS>");
        let joined = format!(":>>JOIN:Chatroom:{name}");
        c.recv_until(|b| contains(b, joined.as_bytes()), T);
        chatters.push(c);
    }
    let mut sluggard = login(&s, "sluggard");
    let sluggard_addr = local_addr(&sluggard);
    sluggard.send_frame(b"<JOIN>Chatroom<PSWD><MODS>");
    sluggard.recv_until(|b| contains(b, b":>>JOIN:Chatroom:sluggard"), T);
    // from here on the sluggard reads nothing
    let needles = [
        ":>>KICK:Chatroom:sluggard",
        ":>>STATUS:3:chatA:False:chatB:False:chatC:False",
        "[[after]]",
    ];
    let drains: Vec<Drain> = chatters
        .iter()
        .map(|c| Drain::start(c.stream().try_clone().expect("clone"), &needles))
        .collect();
    for c in chatters.iter_mut() {
        c.send_frame(b"<CHANNEL>room");
    }
    by.assert_served("the room is set up");

    let before = rss(&s);
    let sampler = RssSampler::start(s.pid());
    // 16 kB lines, paced by what chatA (a fast reader) has received, so that at most a few
    // lines are queued per loop turn: a queue only ever grows for the one who does not read
    let big = "x".repeat(16_000);
    let names = ["chatA", "chatB", "chatC"];
    let mut expected_at_a = 0u64;
    let started = Instant::now();
    let mut rounds = 0;
    let mut dropped = None;
    while dropped.is_none() {
        assert!(
            rounds < 3000 && started.elapsed() < Duration::from_secs(40),
            "the sluggard was not dropped after {rounds} rounds ({:?}); log:\n{}",
            started.elapsed(),
            s.log_text()
        );
        for (i, c) in chatters.iter_mut().enumerate() {
            let text = format!("r{rounds}c{i} {big}");
            expected_at_a += format!(":>>MSGCH:{}:room:{text}", names[i]).len() as u64;
            c.send_frame(format!("<MSG>{text}").as_bytes());
        }
        let deadline = Instant::now() + T;
        while drains[0].bytes() < expected_at_a {
            assert!(
                Instant::now() < deadline,
                "chatA stopped receiving the room's lines; log:\n{}",
                s.log_text()
            );
            thread::sleep(Duration::from_millis(1));
        }
        rounds += 1;
        if rounds % 10 == 0 {
            by.assert_served("a room chats big messages at a client that never reads");
        }
        dropped = disconnect_reason(&s.log_text(), sluggard_addr);
    }
    let took = started.elapsed();
    let peak = sampler.stop();
    assert_eq!(
        dropped.as_deref(),
        Some("slow consumer: unsent output over the cap")
    );
    // the room goes on without the sluggard
    chatters[0].send_frame(b"<MSG>[[after]]");
    let deadline = Instant::now() + T;
    while !drains.iter().all(|d| (0..3).all(|i| d.seen(i))) {
        assert!(
            Instant::now() < deadline,
            "every chatter sees the KICK, the new STATUS and the next line: {:?}",
            drains
                .iter()
                .map(|d| (0..3).map(|i| d.seen(i)).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(20));
    }
    // the lobby learns it too
    by.wait_for(":>>USERS:4:bystander:chatA:chatB:chatC");
    by.assert_served("the sluggard was dropped");
    let after = rss(&s);
    // the sluggard's socket ends after what the kernel had buffered for it
    assert!(
        sluggard.wait_closed(T),
        "the sluggard's connection is closed"
    );
    let relayed: u64 = drains.iter().map(Drain::bytes).sum();
    eprintln!(
        "[rss] never-reading client: before {before} KiB, peak {peak} KiB, after {after} KiB; \
         dropped after {rounds} rounds of 3 x 16 kB ({took:?}), chatters read {relayed} bytes; {}",
        by.report()
    );
    assert!(
        peak <= before + RSS_SLACK_KIB,
        "RSS grew from {before} to {peak} KiB"
    );
}

// ---- flood control ------------------------------------------------------------------------

const FLOOD_NOTICE: &str = ":>>ERROR:You are sending too fast. Some of your messages were dropped";

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn ten_thousand_commands_in_one_frame() {
    let s = Server::start(&["--stats-interval", "1"]);
    let mut by = Bystander::new(&s);
    let mut spammer = login(&s, "spammer");
    by.wait_for(":>>USERS:2:bystander:spammer");
    let payload = "<MSG>k".repeat(10_000);
    assert!(payload.len() <= 65536);
    let start = Instant::now();
    spammer.send_frame(payload.as_bytes());
    let got = spammer.recv_until(|b| contains(b, FLOOD_NOTICE.as_bytes()), T);
    let answered = start.elapsed();
    by.assert_served("10,000 commands arrived in one frame");
    let rest = spammer.recv_quiet(Duration::from_millis(300), T);
    let text = lossy(&got) + &lossy(&rest);
    let passed = count(&text, ":>>MSGCH:spammer:global:k");
    assert!(
        (1..=10).contains(&passed),
        "a burst's worth passes, not {passed}: {text:?}"
    );
    assert_eq!(count(&text, FLOOD_NOTICE), 1, "one notice: {text:?}");
    by.absorb(Duration::from_millis(200));
    assert_eq!(
        count(&by.history, ":>>MSGCH:spammer:global:k"),
        passed,
        "the bystander saw exactly the lines that passed"
    );
    // the spammer is not disconnected and may chat again once the bucket refilled
    thread::sleep(Duration::from_millis(1200));
    spammer.send_frame(b"<MSG>sorry");
    spammer.recv_until(|b| contains(b, b":>>MSGCH:spammer:global:sorry"), T);
    let stats = s
        .wait_log(T, |l| l.contains("[stats]") && l.contains("flood 1,"))
        .expect("the flood drop is counted in the stats");
    assert!(stats.contains("[!] flood from client"));
    eprintln!(
        "10k commands: {passed} passed, 1 notice after {answered:?}; {}",
        by.report()
    );
}

#[test]
fn chat_flood_gets_one_notice_then_passes_again_after_refill() {
    let s = Server::start(&[]);
    let mut by = Bystander::new(&s);
    let mut flooder = login(&s, "flooder");
    by.wait_for(":>>USERS:2:bystander:flooder");
    // 30 frames in one write: no time for the bucket to refill in between
    let burst = |tag: &str| -> Vec<u8> {
        (0..30)
            .flat_map(|i| frame(format!("<MSG>{tag}{i}.").as_bytes()))
            .collect()
    };
    flooder.send_raw(&burst("a"));
    let got = flooder.recv_until(|b| contains(b, FLOOD_NOTICE.as_bytes()), T);
    let rest = flooder.recv_quiet(Duration::from_millis(300), T);
    let text = lossy(&got) + &lossy(&rest);
    let passed = count(&text, ":>>MSGCH:flooder:global:a");
    assert!((8..=10).contains(&passed), "{passed} passed: {text:?}");
    assert_eq!(count(&text, FLOOD_NOTICE), 1, "one notice per burst");
    by.assert_served("a chat flood");
    // refilled: lines pass again, no notice
    thread::sleep(Duration::from_millis(2100));
    for i in 0..3 {
        flooder.send_frame(format!("<MSG>b{i}.").as_bytes());
    }
    let got = flooder.recv_until(|b| contains(b, b":>>MSGCH:flooder:global:b2."), T);
    let rest = flooder.recv_quiet(Duration::from_millis(200), T);
    let text = lossy(&got) + &lossy(&rest);
    assert_eq!(count(&text, ":>>MSGCH:flooder:global:b"), 3, "{text:?}");
    assert_eq!(count(&text, FLOOD_NOTICE), 0, "{text:?}");
    // a new burst after lines passed gets a new notice
    flooder.send_raw(&burst("c"));
    let got = flooder.recv_until(|b| contains(b, FLOOD_NOTICE.as_bytes()), T);
    let rest = flooder.recv_quiet(Duration::from_millis(300), T);
    let text = lossy(&got) + &lossy(&rest);
    assert_eq!(count(&text, FLOOD_NOTICE), 1, "{text:?}");
    by.assert_served("a second chat flood");
    by.absorb(Duration::from_millis(100));
    assert!(by.history.contains(":>>MSGCH:flooder:global:b2."));
    assert_eq!(
        count(&by.history, FLOOD_NOTICE),
        0,
        "notices go to the flooder only"
    );
    eprintln!(
        "chat flood: {passed} of 30 passed, one notice; {}",
        by.report()
    );
}

// ---- injection ------------------------------------------------------------------------------

#[test]
fn chat_cannot_inject_start() {
    let s = Server::start(&[]);
    let mut by = Bystander::new(&s);
    let mut evil = login(&s, "mallory");
    by.wait_for(":>>USERS:2:bystander:mallory");
    let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
    evil.send_frame(format!("<MSG>:>>START:{uuid}").as_bytes());
    evil.send_frame(format!("<MSG>gg:>>HOST:{uuid}:1:>>START:{uuid}").as_bytes());
    by.assert_served("chat with :>>START: goes by");
    let msgs = split_messages(&by.history);
    assert!(
        msgs.iter()
            .all(|m| !m.starts_with(":>>START") && !m.starts_with(":>>HOST")),
        "{msgs:?}"
    );
    assert!(
        by.history
            .contains(&format!(":>>MSGCH:mallory:global:: >>START:{uuid}")),
        "{:?}",
        by.history
    );
    assert!(by.history.contains(&format!(
        ":>>MSGCH:mallory:global:gg: >>HOST:{uuid}:1: >>START:{uuid}"
    )));
    // the bystander is still in the lobby: no START closed it
    by.assert_served("after the injection attempts");
    let own = lossy(&evil.recv_quiet(Duration::from_millis(100), T));
    assert!(!split_messages(&own)
        .iter()
        .any(|m| m.starts_with(":>>START")));
}

// ---- capacity and connection caps ------------------------------------------------------------

#[test]
fn login_beyond_capacity_is_refused() {
    let s = Server::start(&["--capacity", "3"]);
    let mut by = Bystander::new(&s);
    let _two = login(&s, "second");
    let third = login(&s, "third");
    let mut extra = s.client();
    let extra_addr = local_addr(&extra);
    extra.hello("fourth");
    let want = ":>>ERROR:The lobby is full (3 players). Please try again later";
    let got = extra.recv_until(|b| contains(b, want.as_bytes()), T);
    assert!(extra.wait_closed(T), "refused logins are closed");
    assert_eq!(
        lossy(&got) + &lossy(extra.pending()),
        want,
        "only the error"
    );
    assert_eq!(wait_reason(&s, extra_addr), "lobby full");
    by.assert_served("a login was refused");
    by.absorb(Duration::from_millis(100));
    assert!(
        !by.history.contains("fourth"),
        "the refused user never appears"
    );
    // a place frees up: the next login works
    third.close();
    by.wait_for(":>>USERS:2:bystander:second");
    let mut again = s.client();
    again.hello("fourth");
    again.recv_until(|b| contains(b, b"currently playing"), T);
    by.assert_served("the lobby is full again");
}

#[test]
fn connections_beyond_max_connections_wait_until_one_closes() {
    let s = Server::start(&["--max-connections", "16", "--max-per-ip", "0"]);
    let mut by = Bystander::new(&s);
    let mut fillers: Vec<Client> = (0..15).map(|i| login(&s, &format!("filler{i}"))).collect();
    // the 17th connection: the kernel completes it, the server does not accept it
    let mut extra = s.client();
    extra.hello("latecomer");
    let waited = Instant::now();
    let early = extra.recv_quiet(Duration::from_millis(1000), Duration::from_millis(1000));
    assert!(
        early.is_empty() && !extra.is_closed(),
        "not served while the cap is reached: {:?}",
        lossy(&early)
    );
    by.assert_served("the connection cap is reached");
    s.wait_log(T, |l| {
        l.contains("accepting paused (max-connections reached)")
    })
    .expect("the pause is logged");
    // one closes: the latecomer is accepted and its waiting login answered
    fillers.pop().expect("a filler").close();
    let welcome = extra.recv_until(|b| contains(b, b"currently playing"), T);
    let served_after = waited.elapsed();
    assert!(lossy(&welcome).contains(":>>SESSIONS:0"));
    by.assert_served("the latecomer was let in");
    s.wait_log(T, |l| l.contains("accepting resumed"))
        .expect("the resume is logged");
    eprintln!(
        "max-connections: latecomer waited {served_after:?} in the backlog; {}",
        by.report()
    );
}

#[test]
fn connections_beyond_the_per_ip_cap_are_closed() {
    let s = Server::start(&["--max-per-ip", "4", "--stats-interval", "1"]);
    let mut by = Bystander::new(&s);
    let mut others: Vec<Client> = (0..3).map(|i| login(&s, &format!("same{i}"))).collect();
    let mut fifth = s.client();
    assert!(
        fifth.wait_closed(T),
        "the fifth connection is closed at once"
    );
    assert!(fifth.pending().is_empty(), "without a word");
    by.assert_served("a connection over the per-IP cap was refused");
    s.wait_log(Duration::from_secs(5), |l| {
        l.lines()
            .any(|l| l.contains("[stats]") && l.contains("per-ip 1,"))
    })
    .expect("the refusal is counted");
    // a slot frees up: a new connection from the same address is served
    others.pop().expect("one").close();
    by.wait_for(":>>USERS:3:bystander:same0:same1");
    let _again = login(&s, "same3");
    by.assert_served("the freed slot was reused");
}

// ---- signals ----------------------------------------------------------------------------------

/// Starts a room of `host` and `guest` and returns (HOST uuid, guest's START uuid).
fn start_game(s: &Server, host: &str, guest: &str) -> (String, String) {
    let mut h = login(s, host);
    h.send_frame(b"<NEW>Duel<PSWD><COUNT>2<MODS>");
    h.recv_until(|b| contains(b, b":>>CREATED:Duel"), T);
    let mut g = login(s, guest);
    g.send_frame(b"<JOIN>Duel<PSWD><MODS>");
    let joined = format!(":>>JOIN:Duel:{guest}");
    g.recv_until(|b| contains(b, joined.as_bytes()), T);
    h.send_frame(b"<READY>Duel");
    g.send_frame(b"<READY>Duel");
    assert!(h.wait_closed(T) && g.wait_closed(T), "closed at START");
    let field = |c: &Client, tag: &str| -> String {
        let text = lossy(c.pending());
        let m = split_messages(&text)
            .into_iter()
            .find(|m| m.starts_with(tag))
            .unwrap_or_else(|| panic!("no {tag} in {text:?}"));
        m[tag.len()..].split(':').next().unwrap_or("").to_string()
    };
    (field(&h, ":>>HOST:"), field(&g, ":>>START:"))
}

/// A paired pipe: (server side, client side), both past their handshake echo.
fn open_pair(s: &Server, host_uuid: &str, guest_uuid: &str) -> (Client, Client) {
    let server_hello = pipe_hello("server", host_uuid, None, b"\x01");
    let client_hello = pipe_hello("client", guest_uuid, None, b"\x01");
    let mut server_side = s.client();
    server_side.send_raw(&server_hello);
    let mut client_side = s.client();
    client_side.send_raw(&client_hello);
    let echo = client_side.recv_until(|b| b.len() >= client_hello.len(), T);
    assert_eq!(echo, client_hello, "the client side gets its own handshake");
    let echo = server_side.recv_until(|b| b.len() >= server_hello.len(), T);
    assert_eq!(echo, server_hello, "the server side gets its own handshake");
    (server_side, client_side)
}

/// Sends `data` from `a` and returns how long it took to arrive at `b`.
fn relay_once(a: &mut Client, b: &mut Client, data: &[u8]) -> Duration {
    let start = Instant::now();
    a.send_raw(data);
    let got = b.recv_until(|buf| buf.len() >= data.len(), T);
    let took = start.elapsed();
    assert_eq!(got, data, "relayed unchanged");
    took
}

/// Asserts the pair relays both ways within [`BOUND`] (best of [`TRIES`]).
fn assert_relaying(a: &mut Client, b: &mut Client, while_: &str) -> Duration {
    let mut tries = Vec::new();
    for i in 0..TRIES {
        let msg = format!("game-bytes-{i}");
        let there = relay_once(a, b, msg.as_bytes());
        let back = relay_once(b, a, msg.as_bytes());
        tries.push(there.max(back));
        if there.max(back) <= BOUND {
            return there.max(back);
        }
    }
    panic!("the game pipe did not relay within {BOUND:?} while {while_}: {tries:?}");
}

const SHUTDOWN_NOTICE: &str = ":>>MSG:System:The server is shutting down. Please reconnect later";

#[test]
fn sigterm_closes_the_lobby_but_lets_running_games_finish() {
    let mut s = Server::start(&["--shutdown-grace", "30"]);
    let mut by = Bystander::new(&s);
    let (host_uuid, guest_uuid) = start_game(&s, "hoster", "guest");
    let (mut sv, mut cl) = open_pair(&s, &host_uuid, &guest_uuid);
    assert_relaying(&mut sv, &mut cl, "the game runs");
    by.assert_served("a game runs");
    let mut anonymous = s.client(); // connected, never logged in
    let anonymous_addr = local_addr(&anonymous);

    s.signal("TERM");
    by.wait_for(SHUTDOWN_NOTICE);
    assert!(by.c.wait_closed(T), "the lobby user is closed");
    assert!(anonymous.wait_closed(T), "a connection without login too");
    assert!(anonymous.pending().is_empty(), "which gets no notice");
    assert!(
        by.history.ends_with(SHUTDOWN_NOTICE),
        "the notice is the last thing: {:?}",
        by.history
    );
    assert_eq!(wait_reason(&s, anonymous_addr), "server shutting down");
    // the game goes on
    let during = assert_relaying(&mut sv, &mut cl, "the server is shutting down");
    assert!(
        s.wait_exit(Duration::from_millis(300)).is_none(),
        "still running"
    );
    // the game ends: both sides say goodbye
    sv.stream().shutdown(Shutdown::Write).expect("shutdown");
    cl.stream().shutdown(Shutdown::Write).expect("shutdown");
    assert!(sv.wait_closed(T) && cl.wait_closed(T));
    let status = s
        .wait_exit(T)
        .expect("the server exits once the game ended");
    assert_eq!(status.code(), Some(0), "{status}");
    let log = s.log_text();
    assert!(log.contains("stop requested"), "{log}");
    assert!(log.contains("every game ended, exiting"), "{log}");
    eprintln!("sigterm: pipe relayed in {during:?} during shutdown, exit status 0");
}

#[test]
fn second_stop_signal_exits_at_once() {
    let mut s = Server::start(&["--shutdown-grace", "30"]);
    let mut by = Bystander::new(&s);
    let (host_uuid, guest_uuid) = start_game(&s, "hoster", "guest");
    let (mut sv, mut cl) = open_pair(&s, &host_uuid, &guest_uuid);
    by.assert_served("a game runs");
    s.signal("INT");
    by.wait_for(SHUTDOWN_NOTICE);
    assert_relaying(&mut sv, &mut cl, "the first signal came");
    let start = Instant::now();
    s.signal("TERM");
    let status = s.wait_exit(T).expect("the second signal ends the server");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(sv.wait_closed(T) && cl.wait_closed(T), "the pipes are gone");
    assert!(s.log_text().contains("second stop signal"));
}

#[test]
fn sighup_reopens_the_log_file() {
    let s = Server::start(&[]);
    let mut by = Bystander::new(&s);
    let log = s.log_dir().join("proxyServer.log");
    let rotated = s.log_dir().join("proxyServer.log.1");
    std::fs::rename(&log, &rotated).expect("rotate the log");
    s.signal("HUP");
    s.wait_log(T, |l| l.contains("log files reopened"))
        .expect("a new proxyServer.log with the reopen line");
    let newcomer = login(&s, "newcomer");
    let newcomer_addr = local_addr(&newcomer);
    by.assert_served("the logs were reopened");
    let connected = format!("[+] {newcomer_addr} connected.");
    s.wait_log(T, |l| l.contains(&connected))
        .expect("new lines go to the new file");
    let old = std::fs::read_to_string(&rotated).expect("rotated log");
    assert!(
        old.contains("[+] 127.0.0.1:"),
        "the old file kept the old lines"
    );
    assert!(!old.contains(&connected), "and gets no new ones");
    assert!(!old.contains("log files reopened"));
}

// ---- regressions ------------------------------------------------------------------------------------

/// A game pipe still waiting for its partner when SIGTERM comes can never be paired any more
/// (nothing new is accepted). It was kept like a running game: once the real games ended the
/// server did not exit but waited out the whole --shutdown-grace. Now it is closed with the
/// lobby connections.
#[test]
fn shutdown_does_not_wait_for_pipes_that_can_never_pair() {
    let mut s = Server::start(&["--shutdown-grace", "5"]);
    let mut by = Bystander::new(&s);
    let (host_uuid, guest_uuid) = start_game(&s, "hoster", "guest");
    let (mut sv, mut cl) = open_pair(&s, &host_uuid, &guest_uuid);
    // a second vcmiserver connection of the same game, waiting for a second remote player
    let mut waiting = s.client();
    waiting.send_raw(&pipe_hello("server", &host_uuid, None, b"\x01"));
    by.assert_served("a game runs and a pipe waits");
    let registered = format!("server pipe {} registered", local_addr(&waiting));
    s.wait_log(T, |l| l.contains(&registered))
        .expect("the waiting pipe is registered");
    s.signal("TERM");
    by.wait_for(SHUTDOWN_NOTICE);
    assert_relaying(&mut sv, &mut cl, "the server is shutting down");
    sv.stream().shutdown(Shutdown::Write).expect("shutdown");
    cl.stream().shutdown(Shutdown::Write).expect("shutdown");
    assert!(sv.wait_closed(T) && cl.wait_closed(T));
    let ended = Instant::now();
    let status = s.wait_exit(Duration::from_secs(8));
    let took = ended.elapsed();
    let waiting_closed = waiting.wait_closed(Duration::from_millis(10));
    assert!(status.is_some(), "the server did not exit at all");
    assert!(
        took < Duration::from_secs(3),
        "the server exited {took:?} after the last game ended (shutdown grace 5 s): the \
         never-paired waiting pipe held it (closed by then: {waiting_closed})"
    );
}

/// A registered game pipe with no partner yet keeps what it sends in a bounded buffer (256 KiB).
/// The defect: once that buffer was full the server stopped reading the socket (it dropped it
/// from the poll set altogether, as nothing was queued for it either), so when the game process
/// then went away the server never noticed: the connection stayed open for good, held its
/// session alive (session grace never started) and counted against max-connections and the
/// per-IP cap. Now a pipe that fills the buffer is closed.
#[test]
fn waiting_pipe_that_filled_its_buffer_and_left_is_closed() {
    let s = Server::start(&["--stats-interval", "1", "--session-grace", "1"]);
    let mut by = Bystander::new(&s);
    let (_host_uuid, guest_uuid) = start_game(&s, "hoster", "guest");
    let mut pipe = s.client();
    let pipe_addr = local_addr(&pipe);
    pipe.send_raw(&pipe_hello("client", &guest_uuid, None, b"\x01"));
    let registered = format!("client pipe {pipe_addr} registered");
    s.wait_log(T, |l| l.contains(&registered))
        .expect("the pipe is registered and waits for its partner");
    // early bytes before any partner came: more than the server keeps
    let junk = push_junk(&pipe, b"", 512 * 1024);
    let taken = junk.join().expect("writer");
    by.assert_served("a waiting pipe was filled");
    pipe.close();
    by.assert_served("the pipe left");
    let gone = s.wait_log(Duration::from_secs(5), |l| {
        disconnect_reason(l, pipe_addr).is_some()
    });
    let stats = s
        .log_text()
        .lines()
        .rfind(|l| l.contains("[stats]"))
        .unwrap_or("")
        .to_string();
    assert!(
        gone.is_some(),
        "the server never noticed that the waiting pipe {pipe_addr} closed (it had taken {taken} \
         bytes); latest stats: {stats}"
    );
}

/// The slow-consumer cap counted output queued during one event-loop turn, before the server
/// had even tried to write it. Twenty users (one IP, within the default per-IP cap and the
/// default flood limits: one chat line each) whose maximal 64 KiB chat lines arrive together put
/// 20 x 64 KiB = 1.3 MB into the queue of *every* lobby user in the same turn, over the default
/// --max-output of 1 MiB, so every logged-in user was dropped as a "slow consumer", including a
/// bystander that reads everything at once. Now the cap is checked after the turn's write
/// attempt, and the bystander gets all twenty lines.
#[test]
fn simultaneous_big_chat_lines_do_not_drop_a_reading_bystander() {
    let s = Server::start(&[]);
    let mut by = Bystander::new(&s);
    let by_addr = local_addr(&by.c);
    let mut attackers: Vec<Client> = (0..20).map(|i| login(&s, &format!("big{i}"))).collect();
    by.wait_for(":>>USERS:21:");
    by.assert_served("twenty users logged in");
    // each sends all but the last byte of a maximal chat frame: buffered, no output yet
    let line = frame(format!("<MSG>{}", "y".repeat(65536 - 5)).as_bytes());
    for a in attackers.iter_mut() {
        a.send_raw(&line[..line.len() - 1]);
    }
    // a round trip through the loop after those writes returned: epoll reports the attackers'
    // sockets no later than the bystander's, so their partial frames are read and buffered
    by.ping_once();
    // the bystander drains its socket all the time from now on
    let heads: Vec<String> = (0..20)
        .map(|i| format!(":>>MSGCH:big{i}:global:yy"))
        .collect();
    let heads_ref: Vec<&str> = heads.iter().map(String::as_str).collect();
    let reader = Drain::start(by.c.stream().try_clone().expect("clone"), &heads_ref);
    for a in attackers.iter_mut() {
        a.send_raw(&line[line.len() - 1..]);
    }
    // every line is there once all twenty heads and their bytes came
    let want: u64 = (0..20)
        .map(|i| (format!(":>>MSGCH:big{i}:global:").len() + 65536 - 5) as u64)
        .sum();
    let all_seen = |r: &Drain| (0..20).all(|i| r.seen(i));
    let start = Instant::now();
    while !(all_seen(&reader) && reader.bytes() >= want) && start.elapsed() < T {
        thread::sleep(Duration::from_millis(10));
    }
    let received = reader.bytes();
    let missing: Vec<usize> = (0..20).filter(|&i| !reader.seen(i)).collect();
    drop(reader);
    let log = s.log_text();
    let drops: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("slow consumer"))
        .collect();
    assert_eq!(
        disconnect_reason(&log, by_addr),
        None,
        "a bystander that reads everything at once was dropped (it had read {received} bytes \
         of the 20 x 64 KiB lines); {} users dropped as slow consumers:\n{}",
        drops.len(),
        drops.join("\n")
    );
    assert!(
        missing.is_empty() && received >= want,
        "the bystander got {received} of {want} bytes within {T:?}; lines missing from: \
         {missing:?}"
    );
    by.assert_served("twenty big chat lines arrived at once");
}

/// `<MODS>` costs no flood token and answers the sender with the room's whole mod list. A host
/// whose room remembers one long mod name (30 kB, set in the room-creation frame) then sends
/// one frame of 10,000 `<MODS>` (60 kB): the server used to build 10,000 copies of the list,
/// 300 MB, before it looked at the sender's output queue, and stopped serving everybody while
/// doing so. Now memory stays bounded and the bystander is served.
#[test]
fn one_frame_of_mods_requests_cannot_balloon_memory() {
    let s = Server::start(&[]);
    let mut by = Bystander::new(&s);
    let mut host = login(&s, "modder");
    let host_addr = local_addr(&host);
    let long_mod = "m".repeat(30_000);
    host.send_frame(format!("<NEW>Modroom<PSWD><COUNT>2<MODS>{long_mod}&1.0").as_bytes());
    host.recv_until(|b| contains(b, b":>>MODSOTHER:modder:1:"), T);
    by.assert_served("a room with a long mod list exists");
    let before = rss(&s);
    let sampler = RssSampler::start(s.pid());
    // the host stops reading and asks for the list 10,000 times in one frame
    host.send_frame("<MODS>".repeat(10_000).as_bytes());
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(3) {
        let took = by.ping_once();
        worst = worst.max(took);
        // below the default flood rate (5/s), or the bystander floods
        thread::sleep(Duration::from_millis(250));
    }
    let peak = sampler.stop();
    let after = rss(&s);
    let reason = disconnect_reason(&s.log_text(), host_addr);
    eprintln!(
        "[rss] 10,000 MODS in one frame: before {before} KiB, peak {peak} KiB, after {after} \
         KiB; bystander's slowest ping {worst:?}; host: {reason:?}"
    );
    assert!(
        peak <= before + RSS_SLACK_KIB,
        "one 60 kB frame made the server's RSS grow from {before} to {peak} KiB (host \
         disconnected: {reason:?})"
    );
    by.assert_served("10,000 MODS requests came in one frame");
    assert!(
        worst <= Duration::from_millis(500),
        "the lobby stalled for {worst:?} on one frame"
    );
}

/// A connection being closed (here: by the shutdown) whose peer never takes
/// its last output is let go after a linger, instead of holding the socket
/// and, at shutdown, the whole process until the grace period ends.
#[test]
fn a_closing_client_that_never_reads_is_let_go() {
    let mut s = Server::start(&[
        "--shutdown-grace",
        "120",
        "--flood-rate",
        "0",
        "--max-frame",
        "200000",
        "--max-output",
        "268435456",
    ]);
    let deaf = login(&s, "deaf"); // never reads again
    let deaf_addr = local_addr(&deaf);
    let mut talker = login(&s, "talker");
    // far more than loopback socket buffers hold, so output stays queued
    let line = format!("<MSG>{}", "x".repeat(100_000));
    let fill = Instant::now();
    for _ in 0..200 {
        talker.send_frame(line.as_bytes());
        talker.recv_until(|b| b.ends_with(b"xxxx"), T);
    }
    eprintln!("filled in {:?}", fill.elapsed());
    let start = Instant::now();
    s.signal("TERM");
    let status = s
        .wait_exit(Duration::from_secs(30))
        .expect("the server exits after the linger, long before the 120 s grace");
    assert_eq!(status.code(), Some(0), "{status}");
    let took = start.elapsed();
    eprintln!("a closing client that never reads: the server exited {took:?} after SIGTERM");
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "it waited for the output, for the 10 s linger only: {took:?}"
    );
    assert_eq!(wait_reason(&s, deaf_addr), "server shutting down");
    drop(deaf);
}

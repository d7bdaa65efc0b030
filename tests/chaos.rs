//! A bounded chaos run against the real binary: a few hundred simulated clients on several
//! threads log in with random protocols, chat, create/join/leave rooms, ready up, kick, switch
//! modes and channels, send garbage and partial frames, start games, open game pipes with correct
//! and wrong uuids and push random traffic through them, and disconnect abruptly (also with
//! unread data, which makes the kernel answer with RST). Every loop is bounded by a count and by
//! time; the whole test stays well under a minute.
//!
//! Afterwards everything is closed and the server must come back to a clean state: a `[stats]`
//! line reporting `connections 0 (...), users 0, rooms 0, sessions 0`, its RSS back within a few
//! MiB of what it was at the start, and a fresh client can still log in. "The start" is the
//! settled RSS after a shorter warm-up round of the same chaos (which must end clean too): the
//! allocator keeps part of the first burst's memory cached, which is not a leak; a leak would
//! show as growth from the warm-up to the main round. The cold figure is printed as well.
//!
//! The random generator is a seeded splitmix64 written here (no `rand` crate); set
//! `CHAOS_SEED=<n>` to replay another run.
//!
//! A game pipe waiting for its partner is sent at most 128 KiB: one that fills its 256 KiB buffer
//! of bytes held for the partner is closed by design ("too much data before a partner pipe
//! came", checked by `waiting_pipe_that_filled_its_buffer_and_left_is_closed` in
//! tests/hostile.rs), which the random traffic need not repeat. Paired pipes get arbitrary
//! amounts.

mod common;

use common::{frame, lobby_hello, pipe_hello, RssSampler, Server};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long the clients run wild: a warm-up round, then the measured one.
const WARMUP_TIME: Duration = Duration::from_secs(6);
const CHAOS_TIME: Duration = Duration::from_secs(15);
/// Simulated client threads, and connection slots per thread.
const THREADS: usize = 8;
const SLOTS: usize = 40;
/// Most actions per thread (the time bound usually ends the run first).
const MAX_STEPS: usize = 40_000;
/// How long the server may take to forget everything once all clients are gone.
const SETTLE: Duration = Duration::from_secs(10);
/// RSS after the main round may exceed RSS after the warm-up round by at most this.
const RSS_MARGIN_KIB: u64 = 8 * 1024;
/// Most bytes sent on a pipe that has not been paired (see the module comment).
const WAITING_PIPE_CAP: usize = 128 * 1024;

// ---- a small seeded generator -----------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `pct` percent.
    fn pct(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Between `lo` and `hi` random bytes.
    fn junk(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let n = self.range(lo, hi);
        self.bytes(n)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }

    fn text(&mut self, n: usize) -> String {
        const PIECES: &[&str] = &[
            "gg",
            " ",
            "hello",
            ":",
            ">",
            ":>>",
            ":>>START:",
            "ÿ",
            "Привет",
            "🙂",
            "\n",
            "%",
            "&",
            ";",
            "wp",
            "0",
            "room",
            "global",
            "<",
            "<MSG>",
            "<HERE>",
            "\u{0}",
        ];
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(PIECES[self.below(PIECES.len())]);
        }
        s
    }
}

// ---- what the clients share -------------------------------------------------------------------

#[derive(Default)]
struct Shared {
    rooms: Mutex<Vec<String>>,
    users: Mutex<Vec<String>>,
    /// (uuid, is the HOST uuid) from HOST/START messages.
    uuids: Mutex<Vec<(String, bool)>>,
    connects: AtomicU64,
    logins: AtomicU64,
    hosts: AtomicU64,
    starts: AtomicU64,
    pipes: AtomicU64,
    pairs: AtomicU64,
    pipe_bytes_sent: AtomicU64,
    pipe_bytes_received: AtomicU64,
    abrupt: AtomicU64,
    closed_by_server: AtomicU64,
    garbage: AtomicU64,
    games_tried: AtomicU64,
}

fn remember(list: &Mutex<Vec<String>>, item: &str) {
    let mut l = list.lock().unwrap();
    if !l.iter().any(|x| x == item) {
        if l.len() >= 64 {
            l.remove(0);
        }
        l.push(item.to_string());
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

// ---- one simulated connection -------------------------------------------------------------------

enum Kind {
    Lobby {
        name: String,
        room: Option<String>,
    },
    Pipe {
        /// Length of our handshake: the echo of that many bytes means we are paired.
        hello_len: usize,
        received: usize,
        sent: usize,
    },
    /// Garbage, partial frames, silence.
    Other,
}

struct Sim {
    stream: TcpStream,
    kind: Kind,
    /// Lobby text not parsed yet (the last message may be incomplete).
    carry: String,
    closed: bool,
}

impl Sim {
    fn connect(addr: SocketAddr, kind: Kind, shared: &Shared) -> Option<Sim> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream.set_nonblocking(true).ok()?;
        let _ = stream.set_nodelay(true);
        bump(&shared.connects);
        Some(Sim {
            stream,
            kind,
            carry: String::new(),
            closed: false,
        })
    }

    /// Writes everything, retrying a full socket for at most 300 ms; false if that failed.
    fn send(&mut self, mut data: &[u8]) -> bool {
        let deadline = Instant::now() + Duration::from_millis(300);
        while !data.is_empty() {
            match self.stream.write(data) {
                Ok(0) => return self.fail(),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return self.fail();
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.fail(),
            }
        }
        true
    }

    fn fail(&mut self) -> bool {
        self.closed = true;
        false
    }

    /// Reads what is there (bounded) and learns from it.
    fn pump(&mut self, shared: &Shared) {
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..32 {
            if self.closed {
                break;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    bump(&shared.closed_by_server);
                }
                Ok(n) => self.absorb(&buf[..n], shared),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    bump(&shared.closed_by_server);
                }
            }
        }
        if self.closed {
            self.parse(shared, true);
        }
    }

    fn absorb(&mut self, data: &[u8], shared: &Shared) {
        match &mut self.kind {
            Kind::Lobby { .. } => {
                self.carry.push_str(&String::from_utf8_lossy(data));
                self.parse(shared, false);
            }
            Kind::Pipe {
                hello_len,
                received,
                ..
            } => {
                let before = *received;
                *received += data.len();
                if before < *hello_len && *received >= *hello_len {
                    bump(&shared.pairs);
                }
                shared
                    .pipe_bytes_received
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            Kind::Other => {}
        }
    }

    /// Acts on the complete lobby messages (all of them at the end of the stream).
    fn parse(&mut self, shared: &Shared, all: bool) {
        let Kind::Lobby { name, room } = &mut self.kind else {
            return;
        };
        let text = std::mem::take(&mut self.carry);
        let mut msgs: Vec<&str> = text.split(":>>").filter(|m| !m.is_empty()).collect();
        if !all {
            // the last one may continue in the next read
            if let Some(last) = msgs.pop() {
                self.carry = format!(":>>{last}");
            }
        }
        for m in msgs {
            let f: Vec<&str> = m.split(':').collect();
            match f.as_slice() {
                ["HOST", uuid, ..] => {
                    bump(&shared.hosts);
                    shared.uuids.lock().unwrap().push((uuid.to_string(), true));
                }
                ["START", uuid, ..] => {
                    bump(&shared.starts);
                    shared.uuids.lock().unwrap().push((uuid.to_string(), false));
                }
                ["SESSIONS", _, rest @ ..] => {
                    for r in rest.chunks(4) {
                        if r.len() == 4 {
                            remember(&shared.rooms, r[0]);
                        }
                    }
                }
                ["JOIN", r, who] if who == name => *room = Some(r.to_string()),
                ["KICK", _, who] if who == name => *room = None,
                ["USERS", _, rest @ ..] => {
                    for u in rest.iter().filter(|u| !u.is_empty()).take(8) {
                        remember(&shared.users, u);
                    }
                }
                _ => {}
            }
        }
        if self.carry.len() > 256 * 1024 {
            self.carry.clear(); // a huge chat line: nothing to learn from it
        }
    }

    /// Ends the connection one of several ways.
    fn finish(mut self, rng: &mut Rng, shared: &Shared) {
        match rng.below(4) {
            // abrupt, leaving whatever the server sent unread (RST if anything is pending)
            0 | 1 => bump(&shared.abrupt),
            2 => {
                let _ = self.stream.shutdown(Shutdown::Both);
            }
            _ => {
                self.pump(shared);
                let _ = self.stream.shutdown(Shutdown::Write);
            }
        }
    }
}

// ---- the actions ------------------------------------------------------------------------------

fn user_name(rng: &mut Rng, t: usize, k: usize, shared: &Shared) -> String {
    match rng.below(20) {
        0 => "ab".into(),
        1 => "System".into(),
        2 => "bad name".into(),
        3 => format!("Ünï{t}x{k}"),
        4 => shared
            .users
            .lock()
            .unwrap()
            .first()
            .cloned()
            .unwrap_or_else(|| "dup".into()),
        _ => format!("c{t}x{k}"),
    }
}

fn new_lobby(addr: SocketAddr, rng: &mut Rng, t: usize, k: usize, shared: &Shared) -> Option<Sim> {
    let name = user_name(rng, t, k, shared);
    let mut sim = Sim::connect(
        addr,
        Kind::Lobby {
            name: name.clone(),
            room: None,
        },
        shared,
    )?;
    let protocol = [3u8, 4, 5][rng.below(3)];
    let hello = frame(&lobby_hello(
        &name,
        protocol,
        Some("utf8"),
        Some("VCMI 1.4.5"),
    ));
    if rng.pct(15) {
        // in two pieces
        let cut = rng.range(1, hello.len() - 1);
        sim.send(&hello[..cut]);
        thread::sleep(Duration::from_millis(rng.below(5) as u64));
        sim.send(&hello[cut..]);
    } else {
        sim.send(&hello);
    }
    bump(&shared.logins);
    Some(sim)
}

fn new_pipe(addr: SocketAddr, rng: &mut Rng, shared: &Shared) -> Option<Sim> {
    let known = {
        let u = shared.uuids.lock().unwrap();
        rng.pick(&u).cloned()
    };
    let (uuid, host) = match known {
        Some((u, h)) if rng.pct(80) => (u, h),
        Some((u, h)) => (u, !h), // the wrong role
        None => ("0f8fad5b-d9cb-469f-a165-70867728950e".to_string(), false),
    };
    let role = if host { "server" } else { "client" };
    let hello = pipe_hello(role, &uuid, None, b"\x01");
    let mut sim = Sim::connect(
        addr,
        Kind::Pipe {
            hello_len: hello.len(),
            received: 0,
            sent: 0,
        },
        shared,
    )?;
    bump(&shared.pipes);
    if rng.pct(20) {
        for piece in hello.chunks(rng.range(1, 20)) {
            if !sim.send(piece) {
                break;
            }
        }
    } else {
        sim.send(&hello);
    }
    Some(sim)
}

fn new_other(addr: SocketAddr, rng: &mut Rng, shared: &Shared) -> Option<Sim> {
    let mut sim = Sim::connect(addr, Kind::Other, shared)?;
    bump(&shared.garbage);
    match rng.below(6) {
        0 => {
            let junk = rng.junk(1, 300);
            sim.send(&junk);
        }
        1 => {
            // a frame of random bytes: a lobby header with random values
            let junk = rng.junk(1, 200);
            sim.send(&frame(&junk));
        }
        2 => {
            sim.send(&[0, 0, 0, 0]); // the empty frame reads as EOF
        }
        3 => {
            let hello = frame(&lobby_hello("partial", 5, Some("utf8"), None));
            let cut = rng.range(1, hello.len() - 1);
            sim.send(&hello[..cut]);
        }
        4 => {
            sim.send(&[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]);
        }
        _ => {} // silence
    }
    Some(sim)
}

/// One random lobby command (or garbage) from a logged-in-or-not launcher.
fn lobby_action(sim: &mut Sim, rng: &mut Rng, t: usize, k: usize, shared: &Shared) {
    let room = match &sim.kind {
        Kind::Lobby { room, .. } => room.clone(),
        _ => None,
    };
    let known_room = {
        let r = shared.rooms.lock().unwrap();
        rng.pick(&r).cloned()
    }
    .unwrap_or_else(|| "nowhere".into());
    let some_user = {
        let u = shared.users.lock().unwrap();
        rng.pick(&u).cloned()
    }
    .unwrap_or_else(|| "nobody".into());
    let my_room = room.unwrap_or_else(|| known_room.clone());
    let payload: Vec<u8> = match rng.below(20) {
        0..=4 => {
            let n = rng.range(0, 12);
            format!("<MSG>{}", rng.text(n)).into_bytes()
        }
        5 => format!("<MSG>{}", "z".repeat(rng.range(100, 60_000))).into_bytes(),
        6 => format!(
            "<NEW>r{t}y{k}<PSWD>{}<COUNT>{}<MODS>",
            if rng.pct(30) { "pw" } else { "" },
            ["2", "3", "8", "1", "9", "x", " +2 "][rng.below(7)]
        )
        .into_bytes(),
        7 | 8 => format!(
            "<JOIN>{known_room}<PSWD>{}<MODS>",
            if rng.pct(20) { "pw" } else { "" }
        )
        .into_bytes(),
        9 => format!("<LEAVE>{my_room}").into_bytes(),
        10 | 11 => format!("<READY>{my_room}").into_bytes(),
        12 => format!("<KICK>{some_user}").into_bytes(),
        13 => format!("<HOSTMODE>{}", ["0", "1", "7", "x"][rng.below(4)]).into_bytes(),
        14 => format!("<CHANNEL>{}", ["room", "global", "lobby"][rng.below(3)]).into_bytes(),
        15 => [
            "<HERE>",
            "<ROOT>users",
            "<ALIVE>",
            "<FORCESTART>x",
            "<VER>9",
        ][rng.below(5)]
        .as_bytes()
        .to_vec(),
        16 => {
            let n = rng.range(1, 500);
            rng.bytes(n)
        }
        17 => {
            // several commands in one frame
            let n = rng.range(2, 50);
            (0..n)
                .map(|i| format!("<MSG>m{i}<HERE>"))
                .collect::<String>()
                .into_bytes()
        }
        18 => {
            // a length prefix promising more than what follows: the next frames get swallowed
            let mut f = frame(&rng.junk(10, 100));
            f.truncate(rng.range(1, f.len() - 1));
            sim.send(&f);
            return;
        }
        _ => {
            sim.send(&[0xFF, 0xFF, 0xFF, 0x7F]);
            return;
        }
    };
    if payload.len() <= 65536 {
        sim.send(&frame(&payload));
    }
}

fn pipe_action(sim: &mut Sim, rng: &mut Rng, shared: &Shared) {
    let Kind::Pipe {
        hello_len,
        received,
        sent,
    } = &mut sim.kind
    else {
        return;
    };
    let paired = *received >= *hello_len;
    let room = if paired {
        usize::MAX
    } else {
        WAITING_PIPE_CAP.saturating_sub(*sent)
    };
    let n = rng.range(1, 64 * 1024).min(room);
    if n == 0 {
        return;
    }
    *sent += n;
    shared
        .pipe_bytes_sent
        .fetch_add(n as u64, Ordering::Relaxed);
    let data = rng.bytes(n);
    sim.send(&data);
    if rng.pct(5) {
        let _ = sim.stream.shutdown(Shutdown::Write);
    }
}

/// Two of this thread's launchers start a game, step by step, if the others let them.
fn try_game(
    slots: &mut [Option<Sim>],
    addr: SocketAddr,
    rng: &mut Rng,
    t: usize,
    k: usize,
    shared: &Shared,
) {
    let free: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_none()).collect();
    if free.len() < 2 {
        return;
    }
    bump(&shared.games_tried);
    let (hi, gi) = (free[0], free[1]);
    let room = format!("g{t}y{k}");
    let mut host = match new_lobby_named(addr, &format!("h{t}x{k}"), shared) {
        Some(s) => s,
        None => return,
    };
    let mut guest = match new_lobby_named(addr, &format!("g{t}x{k}"), shared) {
        Some(s) => s,
        None => return,
    };
    host.send(&frame(
        format!("<NEW>{room}<PSWD><COUNT>2<MODS>").as_bytes(),
    ));
    wait_for(&mut host, shared, |s| in_room(s, &room));
    guest.send(&frame(format!("<JOIN>{room}<PSWD><MODS>").as_bytes()));
    wait_for(&mut guest, shared, |s| in_room(s, &room));
    host.send(&frame(format!("<READY>{room}").as_bytes()));
    guest.send(&frame(format!("<READY>{room}").as_bytes()));
    if rng.pct(70) {
        wait_for(&mut host, shared, |s| s.closed);
        wait_for(&mut guest, shared, |s| s.closed);
    }
    slots[hi] = Some(host);
    slots[gi] = Some(guest);
}

fn new_lobby_named(addr: SocketAddr, name: &str, shared: &Shared) -> Option<Sim> {
    let mut sim = Sim::connect(
        addr,
        Kind::Lobby {
            name: name.to_string(),
            room: None,
        },
        shared,
    )?;
    sim.send(&frame(&lobby_hello(
        name,
        5,
        Some("utf8"),
        Some("VCMI 1.4.5"),
    )));
    bump(&shared.logins);
    Some(sim)
}

fn in_room(s: &Sim, room: &str) -> bool {
    matches!(&s.kind, Kind::Lobby { room: Some(r), .. } if r == room)
}

/// Pumps `sim` until `done` or 500 ms passed.
fn wait_for(sim: &mut Sim, shared: &Shared, done: impl Fn(&Sim) -> bool) {
    let deadline = Instant::now() + Duration::from_millis(500);
    while !done(sim) && !sim.closed && Instant::now() < deadline {
        sim.pump(shared);
        thread::sleep(Duration::from_millis(2));
    }
}

fn run_thread(t: usize, seed: u64, addr: SocketAddr, until: Instant, shared: Arc<Shared>) -> usize {
    let mut rng = Rng(seed ^ (t as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut slots: Vec<Option<Sim>> = (0..SLOTS).map(|_| None).collect();
    let mut steps = 0;
    while steps < MAX_STEPS && Instant::now() < until {
        steps += 1;
        let k = steps;
        if rng.pct(1) {
            try_game(&mut slots, addr, &mut rng, t, k, &shared);
            continue;
        }
        let i = rng.below(SLOTS);
        match slots[i].take() {
            None => {
                slots[i] = match rng.below(20) {
                    0..=11 => new_lobby(addr, &mut rng, t, k, &shared),
                    12..=15 => new_pipe(addr, &mut rng, &shared),
                    _ => new_other(addr, &mut rng, &shared),
                };
            }
            Some(mut sim) => {
                sim.pump(&shared);
                if sim.closed || rng.pct(4) {
                    sim.finish(&mut rng, &shared);
                } else {
                    match sim.kind {
                        Kind::Lobby { .. } => lobby_action(&mut sim, &mut rng, t, k, &shared),
                        Kind::Pipe { .. } => pipe_action(&mut sim, &mut rng, &shared),
                        Kind::Other => {}
                    }
                    slots[i] = Some(sim);
                }
            }
        }
        // everybody reads now and then; some never get to before they are dropped
        if steps % 8 == 0 {
            for sim in slots.iter_mut().flatten() {
                if rng.pct(70) {
                    sim.pump(&shared);
                }
            }
        }
    }
    for sim in slots.into_iter().flatten() {
        sim.finish(&mut rng, &shared);
    }
    steps
}

/// The numbers of the last `[stats]` line.
fn last_stats(log: &str) -> Option<String> {
    log.lines()
        .rfind(|l| l.contains("[stats]"))
        .map(|l| l.split_once("[stats] ").map_or(l, |(_, r)| r).to_string())
}

fn clean(stats: &str) -> bool {
    stats.starts_with("connections 0 (lobby 0, pipes 0, other 0), users 0, rooms 0, sessions 0,")
}

/// Runs `THREADS` chaos threads for `time`, then waits for a clean `[stats]` line. Returns
/// (actions, peak RSS in KiB during the run, the clean stats line, RSS after settling).
fn chaos_round(
    s: &Server,
    seed: u64,
    time: Duration,
    shared: &Arc<Shared>,
) -> (usize, u64, String, u64) {
    let addr = s.addr();
    let sampler = RssSampler::start(s.pid());
    let started = Instant::now();
    let until = started + time;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let shared = Arc::clone(shared);
            thread::spawn(move || run_thread(t, seed, addr, until, shared))
        })
        .collect();
    let steps: usize = handles
        .into_iter()
        .map(|h| h.join().expect("a chaos thread panicked"))
        .sum();
    let peak = sampler.stop();
    assert!(
        s.rss_kib().is_some(),
        "the server died during the chaos; stderr:\n{}",
        s.stderr_text()
    );
    // everything is closed: the server must forget it all. Only stats lines written after the
    // clients were gone count.
    let seen_lines = s.log_text().lines().count();
    let log = s.wait_log(SETTLE, |log| {
        let fresh: Vec<&str> = log.lines().skip(seen_lines).collect();
        last_stats(&fresh.join("\n")).is_some_and(|l| clean(&l))
    });
    let stats = last_stats(&s.log_text()).unwrap_or_default();
    assert!(
        log.is_some(),
        "no clean [stats] line within {SETTLE:?} after the clients left; last: {stats}"
    );
    let rss_after = s.rss_kib().expect("server alive");
    (steps, peak, stats, rss_after)
}

fn report(shared: &Shared) -> String {
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    format!(
        "{} connections, {} logins, {} games tried, {} HOST + {} START seen, {} pipes \
         ({} paired), pipe bytes sent {} / received {}, {} abrupt closes, {} closed by the \
         server, {} garbage connections",
        n(&shared.connects),
        n(&shared.logins),
        n(&shared.games_tried),
        n(&shared.hosts),
        n(&shared.starts),
        n(&shared.pipes),
        n(&shared.pairs),
        n(&shared.pipe_bytes_sent),
        n(&shared.pipe_bytes_received),
        n(&shared.abrupt),
        n(&shared.closed_by_server),
        n(&shared.garbage),
    )
}

#[test]
fn chaos_leaves_a_clean_and_working_server() {
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_1234_ABCD_0042);
    let s = Server::start(&[
        "--max-per-ip",
        "0",
        "--capacity",
        "1000",
        "--session-grace",
        "1",
        "--stats-interval",
        "1",
        "--flood-rate",
        "0",
        "--healthcheck",
        "0",
    ]);
    // a moment for the server to settle, then its cold baseline
    thread::sleep(Duration::from_millis(200));
    let rss_cold = s.rss_kib().expect("server alive");

    // a warm-up round: the allocator keeps some of what the first burst of connections used
    // (glibc raises its mmap threshold after freeing the 256 KiB relay buffers, so later ones
    // come from the heap and are cached), which is not a leak. Its settled RSS is the baseline
    // the main round must come back to.
    let warm = Arc::new(Shared::default());
    let (warm_steps, warm_peak, _, rss_start) = chaos_round(&s, seed, WARMUP_TIME, &warm);
    eprintln!(
        "[chaos] warm-up: {warm_steps} actions; {}; rss cold {rss_cold} KiB, peak {warm_peak} \
         KiB, settled {rss_start} KiB",
        report(&warm)
    );

    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let (steps, peak, stats, rss_after) =
        chaos_round(&s, seed.rotate_left(17), CHAOS_TIME, &shared);
    eprintln!(
        "[chaos] seed {seed}: {steps} actions on {THREADS} threads in {:?}; {}",
        started.elapsed(),
        report(&shared)
    );
    eprintln!(
        "[chaos] rss: start {rss_start} KiB (cold {rss_cold} KiB), peak {peak} KiB, after \
         {rss_after} KiB; last stats: {stats}"
    );
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    assert!(
        n(&shared.hosts) > 0 && n(&shared.pairs) > 0,
        "the run started games and paired pipes"
    );

    // still alive and serving
    let mut fresh = s.client();
    fresh.hello("afterwards");
    let welcome = fresh.recv_until(
        |b| b.windows(17).any(|w| w == b"currently playing"),
        Duration::from_secs(5),
    );
    let welcome = String::from_utf8_lossy(&welcome);
    assert!(
        welcome.contains(":>>SESSIONS:0") && welcome.contains("Here available 0 users"),
        "{welcome}"
    );
    assert!(
        rss_after <= rss_start + RSS_MARGIN_KIB,
        "RSS did not come back: start {rss_start} KiB, peak {peak} KiB, after {rss_after} KiB"
    );
}

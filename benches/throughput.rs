//! Throughput benchmarks of the hot paths, from the wire inwards:
//!
//! 1. `frame_decode`: a realistic stream of lobby frames through
//!    [`FrameDecoder`], whole and split at pre-computed random points.
//! 2. `command_parse`: [`Commands`] over the decoded frame texts and over
//!    frames of 10,000 commands.
//! 3. `format_encode`: building SESSIONS (50 rooms), USERS (1,000 names) and
//!    chat lines, encoded with [`Charset`] UTF-8 (a borrow) and cp1251.
//! 4. `broadcast_10k`: one chat line to 10,000 logged-in clients through the
//!    real [`Lobby`], turned into per-recipient [`OutQueue`]s the way
//!    `Server::apply_outbox` does. A counting global allocator reports the
//!    allocations of one such broadcast (printed once, outside measurement).
//! 5. `relay`: [`RelayBuf`] moving 64 MiB from a slice (and from loopback
//!    TCP) to a sink.
//!
//! All inputs are generated deterministically (xorshift64, fixed seeds), so
//! runs are comparable. Run with `cargo bench --bench throughput`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use vcmi_proxy::config::Config;
use vcmi_proxy::conn::{OutQueue, RelayBuf};
use vcmi_proxy::frame::FrameDecoder;
use vcmi_proxy::legacy::charset::message_bytes;
use vcmi_proxy::legacy::charset::Charset;
use vcmi_proxy::legacy::lobby::{ClientId, Commands, Lobby, LobbyConfig, Outbox, ServerCounters};
use vcmi_proxy::wire;
use vcmi_proxy::wire::frame as encode;

// ---- counting allocator ---------------------------------------------------

/// `System`, counting calls. The counters are relaxed atomics on an
/// uncontended line: a few nanoseconds per allocation, for every bench alike.
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static REALLOCS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
static ALLOC_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(layout.size(), Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(layout.size(), Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREES.fetch_add(1, Relaxed);
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(new_size.saturating_sub(layout.size()), Relaxed);
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Debug, Clone, Copy)]
struct AllocSnapshot {
    allocs: usize,
    reallocs: usize,
    frees: usize,
    bytes: usize,
}

impl AllocSnapshot {
    fn now() -> Self {
        AllocSnapshot {
            allocs: ALLOCS.load(Relaxed),
            reallocs: REALLOCS.load(Relaxed),
            frees: FREES.load(Relaxed),
            bytes: ALLOC_BYTES.load(Relaxed),
        }
    }

    fn since(self, before: AllocSnapshot) -> AllocSnapshot {
        AllocSnapshot {
            allocs: self.allocs - before.allocs,
            reallocs: self.reallocs - before.reallocs,
            frees: self.frees - before.frees,
            bytes: self.bytes - before.bytes,
        }
    }
}

// ---- deterministic input ----------------------------------------------------

/// xorshift64: tiny, deterministic, good enough to vary test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

const ASCII_WORDS: &[&str] = &[
    "gg", "hi", "anyone", "play", "jebus", "xl", "map", "random", "ok", "wait", "ready", "brb",
    "lol", "template", "balance", "mods", "hota", "version", "1.4.5", "castle", "necro",
    "fortress", "inferno", "tower", "rampart", "please", "join", "host", "lag", "again",
];
const CYRILLIC_WORDS: &[&str] = &[
    "привет",
    "кто",
    "играть",
    "карта",
    "джебус",
    "готов",
    "ждём",
    "норм",
    "шаблон",
    "рандом",
    "замок",
    "некрополис",
    "башня",
    "давай",
    "спасибо",
    "ок",
    "сейчас",
    "зайду",
    "хост",
    "лагает",
];
const ASCII_NAMES: &[&str] = &[
    "alice",
    "bob",
    "Kirill",
    "NecroLord",
    "jebus_king",
    "Sandro",
    "Gelu",
    "xeon",
    "Orrin",
    "Tarnum",
    "Crag-Hack",
    "Mutare",
];
const CYRILLIC_NAMES: &[&str] = &[
    "Игрок",
    "Некромант",
    "Рыцарь",
    "Варвар",
    "Маг",
    "Кирилл",
    "Дракон",
    "Соловей",
];
const ROOM_WORDS: &[&str] = &[
    "Room",
    "Jebus",
    "XL",
    "Комната",
    "Турнир",
    "2v2",
    "Duel",
    "Игра",
    "Outcast",
    "Rumble",
];
const MODS: &[&str] = &[
    "ai-tweaks&0.9",
    "hd-graphics&2.1",
    "hota&1.7.1",
    "russian-translation&1.4.5",
    "tournament-of-maps&1.0",
    "vcmi-extras&3.3.9",
    "wake-of-gods&1.4.0",
];
const VERSIONS: &[&str] = &[
    "VCMI 1.4.5",
    "VCMI 1.4.2",
    "VCMI 1.3.2",
    "VCMI 1.2.1",
    "VCMI 1.1.0",
];

fn username(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!("{}{}", rng.pick(ASCII_NAMES), rng.below(10_000)),
        1 => format!("{}_{}", rng.pick(CYRILLIC_NAMES), rng.below(1_000)),
        _ => format!("xX_{}_Xx", rng.pick(ASCII_NAMES)),
    }
}

fn room_name(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(ROOM_WORDS), rng.below(100))
}

fn mods(rng: &mut Rng) -> String {
    let chosen: Vec<&str> = MODS.iter().copied().filter(|_| rng.chance(35)).collect();
    chosen.join(";")
}

fn version(rng: &mut Rng) -> String {
    let base = rng.pick(VERSIONS);
    if rng.chance(50) {
        let sha: String = (0..40)
            .map(|_| char::from(b"0123456789abcdef"[rng.below(16)]))
            .collect();
        format!("{base}.{sha}")
    } else {
        base.to_string()
    }
}

/// A chat line: mostly a few words, sometimes a long paste; ~40% of lines
/// mostly Cyrillic, the odd emoji (which cp1251 cannot represent).
fn chat_text(rng: &mut Rng) -> String {
    let words = if rng.below(50) == 0 {
        rng.range(50, 400)
    } else {
        rng.range(1, 12)
    };
    let cyrillic = rng.chance(40);
    let mut s = String::new();
    for w in 0..words {
        if w > 0 {
            s.push(' ');
        }
        if rng.below(100) == 0 {
            s.push('😀');
        } else if rng.chance(if cyrillic { 85 } else { 8 }) {
            s.push_str(rng.pick(CYRILLIC_WORDS));
        } else {
            s.push_str(rng.pick(ASCII_WORDS));
        }
    }
    if rng.chance(20) {
        s.push_str(if cyrillic { "!" } else { "?" });
    }
    s
}

fn password(rng: &mut Rng) -> String {
    if rng.chance(70) {
        String::new()
    } else {
        format!("{}{}", rng.pick(ASCII_WORDS), rng.below(100))
    }
}

/// The payload of one frame a real launcher could send (PROTOCOL.md §5.2).
fn frame_payload(rng: &mut Rng) -> Vec<u8> {
    let roll = rng.below(100);
    let text = match roll {
        0..=4 => {
            // connect: header + GREETINGS + VER, protocol mostly 5 (1.4)
            let proto = [5u8, 5, 5, 4, 3][rng.below(5)];
            let (user, version) = (username(rng), version(rng));
            return wire::lobby_hello(&user, proto, Some("utf8"), Some(&version));
        }
        5..=69 => format!("<MSG>{}", chat_text(rng)),
        70..=74 => format!(
            "<NEW>{}<PSWD>{}<COUNT>{}<MODS>{}",
            room_name(rng),
            password(rng),
            rng.range(2, 8),
            mods(rng)
        ),
        75..=81 => format!(
            "<JOIN>{}<PSWD>{}<MODS>{}",
            room_name(rng),
            password(rng),
            mods(rng)
        ),
        82..=89 => format!("<READY>{}", room_name(rng)),
        90..=92 => format!("<LEAVE>{}", room_name(rng)),
        93..=96 => "<ALIVE>".to_string(),
        97..=98 => format!("<CHANNEL>{}", ["global", "room"][rng.below(2)]),
        _ => format!("<HOSTMODE>{}", rng.below(2)),
    };
    text.into_bytes()
}

const N_FRAMES: usize = 20_000;
/// The server's default frame cap (config `max-frame`).
const MAX_FRAME: usize = 64 * 1024;

struct Corpus {
    payloads: Vec<Vec<u8>>,
    stream: Vec<u8>,
}

fn corpus() -> Corpus {
    let mut rng = Rng::new(0x5eed_1ab5_c0de_f00d);
    let payloads: Vec<Vec<u8>> = (0..N_FRAMES).map(|_| frame_payload(&mut rng)).collect();
    let mut stream = Vec::new();
    for p in &payloads {
        stream.extend_from_slice(&encode(p));
    }
    Corpus { payloads, stream }
}

/// Chunk boundaries of `len` bytes, chunk sizes uniform in `lo..=hi`.
fn split_points(len: usize, lo: usize, hi: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut at = 0;
    while at < len {
        let end = (at + rng.range(lo, hi)).min(len);
        out.push((at, end));
        at = end;
    }
    out
}

/// Feeds `chunks` of `stream` to a fresh decoder, draining frames after each.
/// Returns (frames, payload bytes).
fn decode_stream(stream: &[u8], chunks: &[(usize, usize)], utf8: bool) -> (usize, usize) {
    let mut d = FrameDecoder::new(MAX_FRAME);
    let mut frames = 0;
    let mut bytes = 0;
    for &(a, b) in chunks {
        d.extend(&stream[a..b]);
        while let Some(f) = d.next_frame().expect("no frame over the cap") {
            frames += 1;
            if utf8 {
                bytes += black_box(Charset::UTF8.decode(&f)).len();
            } else {
                bytes += black_box(&f).len();
            }
        }
    }
    assert_eq!(d.buffered(), 0);
    (frames, bytes)
}

// ---- 1. frame decoding ------------------------------------------------------

fn frame_decoding(c: &mut Criterion) {
    let Corpus { payloads, stream } = corpus();
    let payload_bytes: usize = payloads.iter().map(Vec::len).sum();
    let whole = vec![(0, stream.len())];
    let mss = split_points(stream.len(), 1, 2 * 1460, 0xa11ce);
    let tiny = split_points(stream.len(), 1, 16, 0xb0b);
    let frames_per_chunk = |chunks: &[(usize, usize)]| N_FRAMES as f64 / chunks.len() as f64;
    eprintln!(
        "frame_decode corpus: {N_FRAMES} frames, {} stream bytes ({payload_bytes} payload), \
         {} MSS-ish chunks ({:.2} frames/chunk), {} tiny chunks",
        stream.len(),
        mss.len(),
        frames_per_chunk(&mss),
        tiny.len()
    );
    for chunks in [&whole, &mss, &tiny] {
        assert_eq!(
            decode_stream(&stream, chunks, false),
            (N_FRAMES, payload_bytes)
        );
    }

    let mut g = c.benchmark_group("frame_decode");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("unsplit", |b| {
        b.iter(|| decode_stream(black_box(&stream), &whole, false))
    });
    g.bench_function("split_1..2920", |b| {
        b.iter(|| decode_stream(black_box(&stream), &mss, false))
    });
    g.bench_function("split_1..16", |b| {
        b.iter(|| decode_stream(black_box(&stream), &tiny, false))
    });
    g.bench_function("unsplit+utf8_decode", |b| {
        b.iter(|| decode_stream(black_box(&stream), &whole, true))
    });
    g.finish();
}

// ---- 2. command parsing -----------------------------------------------------

fn count_commands(texts: &[String]) -> usize {
    let mut n = 0;
    for t in texts {
        for cmd in Commands::new(t) {
            if let Ok(cmd) = black_box(cmd) {
                n += 1;
                black_box(cmd.tag.len() + cmd.value.len());
            }
        }
    }
    n
}

fn command_parsing(c: &mut Criterion) {
    let Corpus { payloads, .. } = corpus();
    let texts: Vec<String> = payloads
        .iter()
        .map(|p| Charset::UTF8.decode(p).into_owned())
        .collect();
    let mixed_cmds = count_commands(&texts);
    let errors = texts
        .iter()
        .flat_map(|t| Commands::new(t))
        .filter(Result::is_err)
        .count();
    assert_eq!(errors, 0);

    // 10,000 commands in one frame: `<HERE>` x 10,000 is 60,000 bytes, under
    // the default 64 KiB cap; the mixed one (~90 KB) needs max-frame raised.
    let here = vec!["<HERE>".repeat(10_000)];
    let mut rng = Rng::new(42);
    let mut mixed = String::new();
    for _ in 0..10_000 {
        match rng.below(4) {
            0 => mixed.push_str("<HERE>"),
            1 => mixed.push_str("<ALIVE>"),
            2 => {
                mixed.push_str("<MSG>");
                mixed.push_str(rng.pick(CYRILLIC_WORDS));
            }
            _ => {
                mixed.push_str("<READY>");
                mixed.push_str(&room_name(&mut rng));
            }
        }
    }
    let mixed = vec![mixed];
    assert_eq!(count_commands(&here), 10_000);
    assert_eq!(count_commands(&mixed), 10_000);
    eprintln!(
        "command_parse: {} frames with {mixed_cmds} commands; 10k frames of {} and {} bytes",
        texts.len(),
        here[0].len(),
        mixed[0].len()
    );

    let mut g = c.benchmark_group("command_parse");
    g.throughput(Throughput::Elements(mixed_cmds as u64));
    g.bench_function("corpus_frames", |b| {
        b.iter(|| count_commands(black_box(&texts)))
    });
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("10k_HERE_frame", |b| {
        b.iter(|| count_commands(black_box(&here)))
    });
    g.bench_function("10k_mixed_frame", |b| {
        b.iter(|| count_commands(black_box(&mixed)))
    });
    g.finish();
}

// ---- 3. message formatting with encoding -----------------------------------

/// What `send_chat` builds for a protocol-5 recipient (private in the lobby,
/// but a single `format!`).
fn chat_msgs(lines: &[(String, String)]) -> Vec<String> {
    lines
        .iter()
        .map(|(user, text)| format!(":>>MSGCH:{user}:global:{text}"))
        .collect()
}

fn unique_names(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match rng.below(5) {
            0 | 1 => format!("{}_{i}", rng.pick(CYRILLIC_NAMES)),
            _ => format!("{}{i}", rng.pick(ASCII_NAMES)),
        })
        .collect()
}

/// Users 0..50 each host a room (2..8 seats, 30% with a password); users
/// from 50 on fill some of the seats, so SESSIONS shows varied counts.
fn open_rooms(lobby: &mut Lobby, rng: &mut Rng, rooms: usize) {
    let mut outbox = Outbox::new();
    let now = Instant::now();
    let mut next_guest = rooms;
    for host in 0..rooms {
        let name = format!("{} {host}", rng.pick(ROOM_WORDS));
        let pw = if rng.chance(30) { "secret" } else { "" };
        let seats = rng.range(2, 8);
        let frame = format!("<NEW>{name}<PSWD>{pw}<COUNT>{seats}<MODS>{}", mods(rng));
        lobby.handle_frame(host, &frame, now, &ServerCounters::ZERO, &mut outbox);
        for _ in 0..rng.below(seats) {
            let frame = format!("<JOIN>{name}<PSWD>{pw}<MODS>");
            lobby.handle_frame(next_guest, &frame, now, &ServerCounters::ZERO, &mut outbox);
            next_guest += 1;
        }
        outbox.clear();
    }
    assert_eq!(lobby.rooms(), rooms);
}

fn format_encode(c: &mut Criterion) {
    let mut rng = Rng::new(0xf0f0_1234);
    let names = unique_names(&mut rng, 1_000);
    let (mut lobby, mut outbox) = logged_in_lobby(&names, 5);
    open_rooms(&mut lobby, &mut rng, 50);
    let lines: Vec<(String, String)> = (0..1_000)
        .map(|_| (username(&mut rng), chat_text(&mut rng)))
        .collect();
    let cp1251 = Charset::from_name("cp1251").expect("cp1251 is known");
    let utf8 = Charset::UTF8;

    let sessions = lobby.sessions_msg();
    let users = lobby.users_msg();
    assert!(sessions.starts_with(":>>SESSIONS:50:"));
    assert!(users.starts_with(":>>USERS:1000:"));
    let sessions_len = sessions.len();
    let users_len = users.len();
    let chat_len: usize = chat_msgs(&lines).iter().map(String::len).sum();
    eprintln!(
        "format_encode: SESSIONS(50 rooms) {sessions_len} B, USERS(1000) {users_len} B, \
         1000 chat lines {chat_len} B (UTF-8); cp1251 sizes {} / {} / {} B",
        cp1251.encode(&sessions).len(),
        cp1251.encode(&users).len(),
        chat_msgs(&lines)
            .iter()
            .map(|m| cp1251.encode(m).len())
            .sum::<usize>()
    );

    let mut g = c.benchmark_group("format_encode");
    // Bytes = the UTF-8 size of the text, so all variants compare directly.
    g.throughput(Throughput::Bytes(sessions_len as u64));
    g.bench_function("sessions50/format_only", |b| {
        b.iter(|| black_box(&lobby).sessions_msg())
    });
    for (label, cs) in [("utf8", utf8), ("cp1251", cp1251)] {
        g.bench_function(format!("sessions50/{label}"), |b| {
            b.iter(|| {
                let m = black_box(&lobby).sessions_msg();
                black_box(cs.encode(&m)).len()
            })
        });
    }
    g.throughput(Throughput::Bytes(users_len as u64));
    g.bench_function("users1000/format_only", |b| {
        b.iter(|| black_box(&lobby).users_msg())
    });
    for (label, cs) in [("utf8", utf8), ("cp1251", cp1251)] {
        g.bench_function(format!("users1000/{label}"), |b| {
            b.iter(|| {
                let m = black_box(&lobby).users_msg();
                black_box(cs.encode(&m)).len()
            })
        });
    }
    g.throughput(Throughput::Bytes(chat_len as u64));
    g.bench_function("chat1000/format_only", |b| {
        b.iter(|| chat_msgs(black_box(&lines)))
    });
    for (label, cs) in [("utf8", utf8), ("cp1251", cp1251)] {
        g.bench_function(format!("chat1000/{label}"), |b| {
            b.iter(|| {
                let mut n = 0;
                for (user, text) in black_box(&lines) {
                    let m = format!(":>>MSGCH:{user}:global:{text}");
                    n += black_box(cs.encode(&m)).len();
                }
                n
            })
        });
    }

    // The whole USERS path: in a lobby this large `<HERE>` from a protocol-5
    // client owes him the list (coalesced by the event loop, issue 9), which
    // the loop then builds over the lobby's 1,000 users.
    let now = Instant::now();
    lobby.handle_frame(999, "<HERE>", now, &ServerCounters::ZERO, &mut outbox);
    assert!(outbox.texts().is_empty());
    assert_eq!(
        outbox.owed(),
        &[(999, vcmi_proxy::legacy::lobby::List::Users)]
    );
    outbox.clear();
    assert_eq!(lobby.users_msg(), users);
    g.throughput(Throughput::Bytes(users_len as u64));
    g.bench_function("users1000/lobby_HERE", |b| {
        b.iter(|| {
            lobby.handle_frame(
                999,
                black_box("<HERE>"),
                now,
                &ServerCounters::ZERO,
                &mut outbox,
            );
            outbox.clear();
            black_box(lobby.users_msg())
        })
    });
    g.finish();
}

// ---- 4. broadcast to 10,000 -------------------------------------------------

const RECIPIENTS: usize = 10_000;

/// A lobby with `names.len()` clients (ids 0..n) registered and logged in
/// with the given protocol, flood control off. The outbox comes back empty.
fn logged_in_lobby(names: &[String], protocol: u8) -> (Lobby, Outbox) {
    let mut lobby = Lobby::new(LobbyConfig {
        capacity: names.len() + 1,
        flood_rate: 0,
        flood_burst: 10,
    });
    let mut outbox = Outbox::new();
    let now = Instant::now();
    for (id, name) in names.iter().enumerate() {
        lobby.register(id, protocol);
        let login = wire::lobby_hello(name, protocol, Some("utf8"), Some("VCMI 1.4.5"));
        let login = String::from_utf8(login).expect("an ASCII protocol byte and UTF-8 text");
        lobby.handle_frame(id, &login, now, &ServerCounters::ZERO, &mut outbox);
        // each login floods USERS to everybody so far: drop it at once
        outbox.clear();
    }
    assert_eq!(lobby.users(), names.len());
    (lobby, outbox)
}

/// The event loop's side of a broadcast, as far as `Server::apply_outbox`
/// goes for deliveries (the socket writes that follow are not included).
struct Sink {
    /// `Config::max_output`, the slow-consumer cap.
    max_output: usize,
    charsets: Vec<Charset>,
    dirty: Vec<ClientId>,
    refresh_due: Vec<ClientId>,
}

impl Sink {
    fn new(_lobby: &Lobby, charsets: Vec<Charset>) -> Self {
        Sink {
            max_output: Config::default().max_output,
            charsets,
            dirty: Vec::new(),
            refresh_due: Vec::new(),
        }
    }

    /// One shared `Bytes` per text for UTF-8 recipients (cloned per
    /// delivery), a fresh encoding for the others, pushed to the recipient's
    /// queue; slow consumers and dirty marks noted. Returns the number of
    /// slow consumers.
    fn apply(&mut self, out: &Outbox, queues: &mut [OutQueue]) -> usize {
        let mut utf8: Vec<Option<Bytes>> = vec![None; out.texts().len()];
        let mut slow = Vec::new();
        for &(to, i) in out.deliveries() {
            let charset = self.charsets[to];
            let q = &mut queues[to];
            let text = &out.texts()[i as usize];
            q.push(message_bytes(charset, text, &mut utf8[i as usize]));
            if q.len() > self.max_output {
                slow.push(to);
            }
            self.dirty.push(to);
        }
        // large lobbies: lists are owed, the server sends the latest later
        self.refresh_due
            .extend(out.owed().iter().map(|(to, _)| *to));
        slow.sort_unstable();
        slow.dedup();
        slow.len()
    }

    fn clear(&mut self) {
        self.dirty.clear();
        self.refresh_due.clear();
    }
}

fn fresh_queues() -> Vec<OutQueue> {
    (0..RECIPIENTS).map(|_| OutQueue::default()).collect()
}

fn broadcast(c: &mut Criterion) {
    let names: Vec<String> = (0..RECIPIENTS).map(|i| format!("user{i:05}")).collect();
    let t = Instant::now();
    let (mut lobby, mut outbox) = logged_in_lobby(&names, 5);
    eprintln!(
        "broadcast_10k: {RECIPIENTS} protocol-5 logins took {:.2?} (setup)",
        t.elapsed()
    );
    let cp1251 = Charset::from_name("cp1251").expect("cp1251 is known");
    let mut utf8_all = Sink::new(&lobby, vec![Charset::UTF8; RECIPIENTS]);
    // every tenth recipient declared cp1251 (no real launcher does)
    let mut mixed = Sink::new(
        &lobby,
        (0..RECIPIENTS)
            .map(|i| if i % 10 == 9 { cp1251 } else { Charset::UTF8 })
            .collect(),
    );
    let sender: ClientId = 0;
    let now = Instant::now();

    // correctness, and warm the outbox / dirty capacity as the server's are
    let mut queues = fresh_queues();
    lobby.handle_frame(
        sender,
        "<MSG>hello",
        now,
        &ServerCounters::ZERO,
        &mut outbox,
    );
    assert_eq!(outbox.deliveries().len(), RECIPIENTS);
    assert_eq!(
        outbox.received_by(9_999),
        vec![":>>MSGCH:user00000:global:hello"]
    );
    assert_eq!(utf8_all.apply(&outbox, &mut queues), 0);
    assert!(queues.iter().all(|q| q.len() == 31));
    outbox.clear();
    utf8_all.clear();
    drop(queues);

    // allocations of one steady-state broadcast, into idle (empty) queues
    let mut queues = fresh_queues();
    let a0 = AllocSnapshot::now();
    lobby.handle_frame(
        sender,
        "<MSG>hello",
        now,
        &ServerCounters::ZERO,
        &mut outbox,
    );
    let a1 = AllocSnapshot::now();
    utf8_all.apply(&outbox, &mut queues);
    let a2 = AllocSnapshot::now();
    outbox.clear();
    utf8_all.clear();
    let a3 = AllocSnapshot::now();
    drop(queues);
    let a4 = AllocSnapshot::now();
    let (lobby_a, apply_a, total) = (a1.since(a0), a2.since(a1), a3.since(a0));
    eprintln!(
        "broadcast_10k allocations for one <MSG>hello to {RECIPIENTS} recipients (UTF-8):\n  \
         lobby.handle_frame: {} allocs + {} reallocs, {} frees, {} B\n  \
         apply_outbox (Bytes + OutQueue pushes): {} allocs + {} reallocs, {} B\n  \
         total: {} allocs + {} reallocs ({} B); freeing the {RECIPIENTS} queues afterwards: {} frees",
        lobby_a.allocs,
        lobby_a.reallocs,
        lobby_a.frees,
        lobby_a.bytes,
        apply_a.allocs,
        apply_a.reallocs,
        apply_a.bytes,
        total.allocs,
        total.reallocs,
        total.bytes,
        a4.since(a3).frees,
    );

    let mut g = c.benchmark_group("broadcast_10k");
    g.throughput(Throughput::Elements(RECIPIENTS as u64));
    g.bench_function("lobby_only", |b| {
        b.iter(|| {
            lobby.handle_frame(
                sender,
                black_box("<MSG>hello"),
                now,
                &ServerCounters::ZERO,
                &mut outbox,
            );
            let n = outbox.deliveries().len();
            outbox.clear();
            n
        })
    });
    for (label, sink) in [
        ("lobby+queues_utf8", &mut utf8_all),
        ("lobby+queues_10pct_cp1251", &mut mixed),
    ] {
        g.bench_function(label, |b| {
            // idle connections hold no queue memory (OutQueue drops it once
            // flushed), so every iteration starts from fresh, empty queues
            b.iter_batched(
                fresh_queues,
                |mut queues| {
                    lobby.handle_frame(
                        sender,
                        black_box("<MSG>hello"),
                        now,
                        &ServerCounters::ZERO,
                        &mut outbox,
                    );
                    sink.apply(&outbox, &mut queues);
                    outbox.clear();
                    sink.clear();
                    queues
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

// ---- 5. relay copy path -----------------------------------------------------

const RELAY_TOTAL: usize = 64 * 1024 * 1024;

/// A `Vec` sink that keeps only the last write (a copy, like a socket's).
struct LastWrite(Vec<u8>);

impl Write for LastWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.clear();
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink taking at most `n` bytes a call, like a socket whose send buffer
/// keeps filling up.
struct Capped(usize);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.0);
        black_box(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Moves everything from `src` through `buf` into `dst`, one read then one
/// write per round, as the event loop does for a ready pair.
fn relay_all(buf: &mut RelayBuf, mut src: &[u8], dst: &mut impl Write) -> usize {
    let mut moved = 0;
    while !src.is_empty() || !buf.is_empty() {
        if !src.is_empty() {
            match buf.read_from(&mut src) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {} // full
                Err(e) => panic!("{e}"),
            }
        }
        moved += buf.write_to(dst).expect("sink write");
    }
    moved
}

/// Reads exactly `total` bytes from `src` through `buf` into `dst`.
fn relay_exact(buf: &mut RelayBuf, src: &mut impl Read, dst: &mut impl Write, total: usize) {
    let mut read = 0;
    while read < total || !buf.is_empty() {
        if read < total {
            match buf.read_from(src) {
                Ok(0) => panic!("early EOF after {read} bytes"),
                Ok(n) => read += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        while !buf.is_empty() {
            buf.write_to(dst).expect("sink write");
        }
    }
    assert_eq!(read, total);
}

/// A connected loopback pair: (client side, accepted side).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let a = TcpStream::connect(l.local_addr().expect("local addr")).expect("connect");
    let (b, _) = l.accept().expect("accept");
    a.set_nodelay(true).ok();
    b.set_nodelay(true).ok();
    (a, b)
}

/// A thread writing `RELAY_TOTAL` bytes to `sock` each time it is told to.
fn writer_thread(mut sock: TcpStream) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let h = thread::spawn(move || {
        let mut chunk = vec![0u8; 1024 * 1024];
        let mut rng = Rng::new(7);
        chunk.iter_mut().for_each(|b| *b = rng.next() as u8);
        while rx.recv().is_ok() {
            for _ in 0..RELAY_TOTAL / chunk.len() {
                sock.write_all(&chunk).expect("writer");
            }
        }
    });
    (tx, h)
}

fn relay(c: &mut Criterion) {
    let mut data = vec![0u8; RELAY_TOTAL];
    let mut rng = Rng::new(99);
    for w in data.chunks_mut(8) {
        w.copy_from_slice(&rng.next().to_le_bytes()[..w.len()]);
    }
    let mut buf = RelayBuf::default();
    assert_eq!(relay_all(&mut buf, &data, &mut io::sink()), RELAY_TOTAL);

    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Bytes(RELAY_TOTAL as u64));
    g.bench_function("slice_to_io_sink", |b| {
        b.iter(|| relay_all(&mut buf, black_box(&data), &mut io::sink()))
    });
    let mut last = LastWrite(Vec::with_capacity(vcmi_proxy::conn::RELAY_BUF));
    g.bench_function("slice_to_vec", |b| {
        b.iter(|| relay_all(&mut buf, black_box(&data), &mut last))
    });
    g.bench_function("slice_to_sink_64k_writes", |b| {
        b.iter(|| relay_all(&mut buf, black_box(&data), &mut Capped(64 * 1024)))
    });

    // loopback TCP: writer thread -> socket -> RelayBuf -> io::sink
    let (a, mut a_in) = tcp_pair();
    let (tx, writer) = writer_thread(a);
    g.bench_function("tcp_to_io_sink", |b| {
        b.iter(|| {
            tx.send(()).expect("writer alive");
            relay_exact(&mut buf, &mut a_in, &mut io::sink(), RELAY_TOTAL);
        })
    });

    // two hops, like a relayed pair: writer -> socket -> RelayBuf -> socket
    // -> drain thread (three threads on however many cores there are)
    let (mut b_out, mut b_in) = tcp_pair();
    let drain = thread::spawn(move || {
        let mut sink = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match b_in.read(&mut sink) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("{e}"),
            }
        }
    });
    g.bench_function("tcp_to_tcp", |b| {
        b.iter(|| {
            tx.send(()).expect("writer alive");
            relay_exact(&mut buf, &mut a_in, &mut b_out, RELAY_TOTAL);
        })
    });
    g.finish();

    drop(tx);
    writer.join().expect("writer thread");
    b_out.shutdown(std::net::Shutdown::Write).ok();
    let drained = drain.join().expect("drain thread");
    assert_eq!(drained % RELAY_TOTAL as u64, 0);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = frame_decoding, command_parsing, format_encode, broadcast, relay
}
criterion_main!(benches);

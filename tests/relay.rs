//! Game pipes over real TCP (PROTOCOL.md §8.3–§8.5, §10): a room starts in the lobby, the
//! host's vcmiserver pipes (HOST uuid) and the guests' vcmiclient pipes (their START uuids) open
//! with the exact bytes VCMI sends, each side gets its own handshake back (D26), and then bytes
//! are relayed losslessly in both directions, with half-close, reset propagation, back-pressure,
//! handshake timeouts and session expiry.
//!
//! Synchronisation is done with reads that have timeouts (an echo arriving, a connection
//! closing, a write timing out) and with the server's own pipe count, never with sleeps that hope
//! the server got somewhere. Two places look at the clock on purpose and say why where they do:
//! session expiry is time-based behaviour (`sessions_are_forgotten_after_the_grace`), and "the
//! kernel acknowledged our bytes" has no blocking call (`wait_all_acked` polls /proc/net/tcp).

mod common;

use common::{
    contains, frame, login, lossy, pipe_hello, split_messages, Client, Server, ENDIAN_LITTLE,
};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Wait for anything that should happen promptly.
const T: Duration = Duration::from_secs(5);
/// Per-read/-write bound during bulk transfers (debug build, 2 cores, tests in parallel).
const BULK_T: Duration = Duration::from_secs(30);
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Bytes each side of every pair sends in the full-flow tests.
const BULK: usize = 4 * MIB;
/// The room every test starts.
const ROOM: &str = "Arena";
/// A well-formed uuid no session knows (checked against the game's uuids before use).
const STRANGER_UUID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

// ---- lobby: start a room ------------------------------------------------------------------

/// The uuids a started room hands out (§8.3).
struct Game {
    /// From `:>>HOST:{uuid}:{n-1}`, presented by every vcmiserver pipe.
    host_uuid: String,
    /// From `:>>START:{uuid}`, one per member, host first.
    starts: Vec<String>,
}

impl Game {
    /// The START uuids of the guests, i.e. of the remote vcmiclients.
    fn guests(&self) -> &[String] {
        &self.starts[1..]
    }

    fn all_uuids(&self) -> Vec<&str> {
        let mut v = vec![self.host_uuid.as_str()];
        v.extend(self.starts.iter().map(String::as_str));
        v
    }
}

/// Lowercase `8-4-4-4-12` hex of a version-4 uuid, as Python's `str(uuid.uuid4())`.
fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// Distinguishes the lobby logins of [`wait_pipes_counted`] (names must be unique among open
/// lobby connections, and the server may not have seen a previous watcher's close yet).
static WATCHERS: AtomicUsize = AtomicUsize::new(0);

/// Waits until the server counts at least `n` game pipes: "currently playing n" in the welcome
/// of a fresh lobby login. The count goes up when the server reads a pipe's first frame, and a
/// handshake written in one piece is processed in that same read; so once a pipe is counted,
/// its handshake is done and it is registered (or refused). Polls with one login per try.
fn wait_pipes_counted(server: &Server, n: usize) {
    let deadline = Instant::now() + T;
    loop {
        let mut c = server.client();
        c.hello(&format!(
            "watcher{}",
            WATCHERS.fetch_add(1, Ordering::Relaxed)
        ));
        let key = b"currently playing ";
        let welcome = c.recv_until(
            |b| {
                b.windows(key.len() + 1)
                    .any(|w| w.starts_with(key) && w[key.len()].is_ascii_digit())
            },
            T,
        );
        c.close();
        let text = lossy(&welcome);
        let count: usize = text
            .split("currently playing ")
            .nth(1)
            .map(|r| {
                r.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("no pipe count in the welcome: {text:?}"));
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server counts {count} pipes, not {n}, after {T:?}"
        );
    }
}

/// Runs the lobby part of a game of `players` protocol-5 launchers: the first creates the room
/// `<NEW>room<PSWD><COUNT>n<MODS>`, the others join one after another, then everybody sends
/// `<READY>room`. Checks what §8.3 says arrives (host: HOST then START, guests: START; all
/// lobby sockets closed) and returns the uuids.
fn start_game(server: &Server, players: usize) -> Game {
    assert!((2..=8).contains(&players), "rooms hold 2..8 players");
    let names: Vec<String> = (0..players).map(|i| format!("player{i}")).collect();
    let mut members: Vec<Client> = names.iter().map(|n| login(server, n)).collect();
    members[0].send_frame(format!("<NEW>{ROOM}<PSWD><COUNT>{players}<MODS>").as_bytes());
    let created = format!(":>>CREATED:{ROOM}");
    members[0].recv_until(|b| contains(b, created.as_bytes()), T);
    // one JOIN at a time: a READY before everybody joined would start a smaller game
    for (member, name) in members.iter_mut().zip(&names).skip(1) {
        member.send_frame(format!("<JOIN>{ROOM}<PSWD><MODS>").as_bytes());
        let joined = format!(":>>JOIN:{ROOM}:{name}:");
        member.recv_until(|b| contains(b, joined.as_bytes()), T);
    }
    for member in members.iter_mut() {
        member.send_frame(format!("<READY>{ROOM}").as_bytes());
    }

    let mut host_uuid = None;
    let mut starts = Vec::new();
    for (i, (member, name)) in members.iter_mut().zip(&names).enumerate() {
        assert!(
            member.wait_closed(T),
            "{name}'s lobby socket is closed after START; received: {:?}",
            lossy(member.pending())
        );
        let text = lossy(member.pending());
        let msgs = split_messages(&text);
        let last = msgs.last().map(String::as_str).unwrap_or("");
        let start = last
            .strip_prefix(":>>START:")
            .unwrap_or_else(|| panic!("{name}: the last message is START; got {msgs:?}"));
        assert!(is_uuid_v4(start), "{name}: START uuid {start:?}");
        let hosts: Vec<&String> = msgs.iter().filter(|m| m.starts_with(":>>HOST:")).collect();
        if i == 0 {
            assert_eq!(hosts.len(), 1, "the host gets exactly one HOST: {msgs:?}");
            assert_eq!(
                msgs.get(msgs.len().wrapping_sub(2)),
                Some(hosts[0]),
                "HOST comes right before START: {msgs:?}"
            );
            let (uuid, count) = hosts[0][":>>HOST:".len()..]
                .split_once(':')
                .unwrap_or_else(|| panic!("HOST has uuid and count: {:?}", hosts[0]));
            assert!(is_uuid_v4(uuid), "HOST uuid {uuid:?}");
            assert_eq!(
                count,
                (players - 1).to_string(),
                "HOST announces the number of remote players"
            );
            host_uuid = Some(uuid.to_string());
        } else {
            assert!(hosts.is_empty(), "{name} is no host: {msgs:?}");
        }
        starts.push(start.to_string());
    }
    let game = Game {
        host_uuid: host_uuid.expect("the host got HOST"),
        starts,
    };
    let mut all = game.all_uuids();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), players + 1, "every uuid is fresh");
    game
}

// ---- pipes -----------------------------------------------------------------------------------

/// One game-process connection.
struct Pipe {
    stream: TcpStream,
    /// What it sent to open the pipe; the echo it must get back (D26).
    hello: Vec<u8>,
    name: String,
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect_timeout(&server.addr(), T).expect("connect to the server");
    s.set_nodelay(true).expect("set TCP_NODELAY");
    s.set_read_timeout(Some(T)).expect("set read timeout");
    s.set_write_timeout(Some(T)).expect("set write timeout");
    s
}

impl Pipe {
    /// Connects as VCMI does: `VCMI 1.4.5 (<role>)`, the uuid, endianness byte 01.
    fn new(server: &Server, role: &str, uuid: &str, name: &str) -> Pipe {
        Pipe {
            stream: connect(server),
            hello: pipe_hello(role, uuid, None, ENDIAN_LITTLE),
            name: name.to_string(),
        }
    }

    /// Connects and sends the whole handshake in one write.
    fn open(server: &Server, role: &str, uuid: &str, name: &str) -> Pipe {
        let mut p = Pipe::new(server, role, uuid, name);
        let hello = p.hello.clone();
        p.send(&hello);
        p
    }

    fn send(&mut self, data: &[u8]) {
        self.stream
            .write_all(data)
            .unwrap_or_else(|e| panic!("{}: write of {} bytes: {e}", self.name, data.len()));
    }

    /// Reads exactly its own handshake bytes back.
    fn expect_echo(&mut self) {
        let got = read_exactly(&mut self.stream, self.hello.len(), &self.name);
        assert!(
            got == self.hello,
            "{}: expected its own handshake back\n got: {:?}\nwant: {:?}",
            self.name,
            lossy(&got),
            lossy(&self.hello)
        );
    }

    fn expect_bytes(&mut self, want: &[u8]) {
        let got = read_exactly(&mut self.stream, want.len(), &self.name);
        assert!(
            got == want,
            "{}: unexpected bytes\n got: {:?}\nwant: {:?}",
            self.name,
            lossy(&got),
            lossy(want)
        );
    }

    fn shutdown_write(&self) {
        self.stream
            .shutdown(Shutdown::Write)
            .unwrap_or_else(|e| panic!("{}: shutdown(Write): {e}", self.name));
    }

    fn clone_stream(&self) -> TcpStream {
        self.stream.try_clone().expect("clone a pipe socket")
    }
}

/// Reads exactly `n` bytes (within the socket's read timeout per read); panics on EOF or error.
fn read_exactly(stream: &mut TcpStream, n: usize, what: &str) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match stream.read(&mut buf[got..]) {
            Ok(0) => panic!(
                "{what}: EOF after {got} of {n} bytes: {:?}",
                lossy(&buf[..got])
            ),
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "{what}: read failed after {got} of {n} bytes ({e}): {:?}",
                lossy(&buf[..got])
            ),
        }
    }
    buf
}

/// What the next read on a socket brings.
enum Next {
    /// Clean end of stream (FIN).
    Eof,
    /// The connection was reset (or another error ended it).
    Reset(io::ErrorKind),
    /// Bytes arrived (they are consumed).
    Data(Vec<u8>),
    /// Nothing within the wait.
    Nothing,
}

impl Next {
    fn describe(&self) -> String {
        match self {
            Next::Eof => "EOF".into(),
            Next::Reset(kind) => format!("connection ended with {kind:?}"),
            Next::Data(d) => format!("bytes {:?}", lossy(d)),
            Next::Nothing => "nothing".into(),
        }
    }
}

fn next_event(stream: &mut TcpStream, wait: Duration) -> Next {
    stream
        .set_read_timeout(Some(wait))
        .expect("set read timeout");
    let mut buf = [0u8; 4096];
    let r = loop {
        match stream.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    };
    stream.set_read_timeout(Some(T)).expect("set read timeout");
    match r {
        Ok(0) => Next::Eof,
        Ok(n) => Next::Data(buf[..n].to_vec()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Next::Nothing
        }
        Err(e) => Next::Reset(e.kind()),
    }
}

/// The server shut down its write side (or closed) cleanly, with nothing more to read.
fn expect_eof(stream: &mut TcpStream, what: &str) {
    match next_event(stream, T) {
        Next::Eof => {}
        other => panic!("{what}: expected EOF, got {}", other.describe()),
    }
}

/// The server closed the connection (FIN or reset) without sending anything.
fn expect_closed(stream: &mut TcpStream, what: &str) {
    match next_event(stream, T) {
        Next::Eof | Next::Reset(_) => {}
        Next::Data(d) => panic!("{what}: expected a close, got bytes {:?}", lossy(&d)),
        Next::Nothing => panic!("{what}: still open after {T:?}"),
    }
}

/// Nothing arrives and the connection stays open for `wait`.
fn expect_silent_open(stream: &mut TcpStream, wait: Duration, what: &str) {
    match next_event(stream, wait) {
        Next::Nothing => {}
        other => panic!(
            "{what}: expected an open, silent connection; got {}",
            other.describe()
        ),
    }
}

/// Index of the first of `pipes` with bytes to read, waiting up to `timeout` (a bounded poll
/// over the candidates: peeks with short read timeouts, nothing is consumed).
fn first_with_data(pipes: &[Pipe], timeout: Duration) -> Option<usize> {
    let deadline = Instant::now() + timeout;
    let mut one = [0u8; 1];
    let found = 'poll: loop {
        for (i, p) in pipes.iter().enumerate() {
            p.stream
                .set_read_timeout(Some(Duration::from_millis(10)))
                .expect("set read timeout");
            match p.stream.peek(&mut one) {
                Ok(0) => panic!("{}: closed while waiting for its partner", p.name),
                Ok(_) => break 'poll Some(i),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => panic!("{}: {e} while waiting for its partner", p.name),
            }
        }
        if Instant::now() >= deadline {
            break None;
        }
    };
    for p in pipes {
        p.stream
            .set_read_timeout(Some(T))
            .expect("set read timeout");
    }
    found
}

/// The host's vcmiserver pipe, then the first guest's vcmiclient pipe; both get their echo.
fn pair(server: &Server, game: &Game) -> (Pipe, Pipe) {
    let mut s = Pipe::open(server, "server", &game.host_uuid, "server pipe");
    let mut c = Pipe::open(server, "client", &game.guests()[0], "client pipe");
    c.expect_echo();
    s.expect_echo();
    (s, c)
}

/// Ends a pair cleanly: both FIN, both see EOF with nothing unread before it.
fn close_pair(a: &mut Pipe, b: &mut Pipe) {
    a.shutdown_write();
    b.shutdown_write();
    expect_eof(&mut a.stream, &a.name);
    expect_eof(&mut b.stream, &b.name);
}

// ---- pseudo-random payloads -------------------------------------------------------------------

/// splitmix64 of (`seed`, `block`).
fn mix(seed: u64, block: u64) -> u64 {
    let mut z = seed ^ block.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Bytes `offset..offset + out.len()` of the pseudo-random stream `seed`: byte `i` is byte
/// `i % 8` of `mix(seed, i / 8)`, so any range can be produced or checked on its own.
fn fill(seed: u64, offset: u64, out: &mut [u8]) {
    // an unaligned head, then whole words (the tests run unoptimised: keep the loop simple)
    let head = ((8 - offset % 8) % 8).min(out.len() as u64) as usize;
    if head > 0 {
        let word = mix(seed, offset / 8).to_le_bytes();
        let start = (offset % 8) as usize;
        out[..head].copy_from_slice(&word[start..start + head]);
    }
    let mut block = (offset + head as u64) / 8;
    let mut words = out[head..].chunks_exact_mut(8);
    for w in &mut words {
        w.copy_from_slice(&mix(seed, block).to_le_bytes());
        block += 1;
    }
    let tail = words.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&mix(seed, block).to_le_bytes()[..n]);
}

fn stream_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(seed, 0, &mut v);
    v
}

/// The checker relies on it: any split of a stream produces the same bytes.
#[test]
fn payload_ranges_match_the_whole_stream() {
    let whole = stream_bytes(42, 1000);
    assert_ne!(
        whole,
        stream_bytes(43, 1000),
        "seeds give different streams"
    );
    for cut in [0usize, 1, 3, 7, 8, 9, 15, 500, 999, 1000] {
        for len in [0usize, 1, 5, 8, 13] {
            let len = len.min(1000 - cut);
            let mut part = vec![0u8; len];
            fill(42, cut as u64, &mut part);
            assert_eq!(part, whole[cut..cut + len], "offset {cut}, length {len}");
        }
    }
}

const CHUNK: usize = 64 * KIB;

/// Writes `len` bytes of stream `seed`, then shuts the write side down (FIN).
fn send_stream(stream: &mut TcpStream, seed: u64, len: usize, what: &str) -> Result<(), String> {
    let mut chunk = vec![0u8; CHUNK];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(CHUNK);
        fill(seed, off as u64, &mut chunk[..n]);
        stream
            .write_all(&chunk[..n])
            .map_err(|e| format!("{what}: write failed after {off} of {len} bytes: {e}"))?;
        off += n;
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("{what}: shutdown(Write): {e}"))
}

/// Reads exactly `len` bytes and checks each against stream `seed`.
fn recv_stream(stream: &mut TcpStream, seed: u64, len: usize, what: &str) -> Result<(), String> {
    let mut buf = vec![0u8; CHUNK];
    let mut want = vec![0u8; CHUNK];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(CHUNK);
        let got = match stream.read(&mut buf[..n]) {
            Ok(0) => return Err(format!("{what}: EOF after {off} of {len} bytes")),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(format!(
                    "{what}: read failed after {off} of {len} bytes: {e}"
                ))
            }
        };
        fill(seed, off as u64, &mut want[..got]);
        if buf[..got] != want[..got] {
            let i = (0..got).find(|&i| buf[i] != want[i]).unwrap_or(0);
            return Err(format!(
                "{what}: byte {} of {len} is {:#04x}, expected {:#04x}",
                off + i,
                buf[i],
                want[i]
            ));
        }
        off += got;
    }
    Ok(())
}

/// Reads stream `seed` of `len` bytes, then requires EOF right after it.
fn recv_stream_then_eof(
    stream: &mut TcpStream,
    seed: u64,
    len: usize,
    what: &str,
) -> Result<(), String> {
    recv_stream(stream, seed, len, what)?;
    let mut extra = [0u8; 4096];
    match stream.read(&mut extra) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("{what}: {n} bytes after the expected {len}")),
        Err(e) => Err(format!("{what}: expected EOF after {len} bytes, got {e}")),
    }
}

/// Both sides at once: each sends `len` bytes of its own stream then FIN (writer thread), and
/// reads the other's stream, checking every byte and EOF right after it (reader thread).
fn bulk_both_ways(
    a: &Pipe,
    b: &Pipe,
    len: usize,
    seeds: (u64, u64),
) -> Vec<JoinHandle<Result<(), String>>> {
    for p in [a, b] {
        p.stream.set_read_timeout(Some(BULK_T)).expect("timeout");
        p.stream.set_write_timeout(Some(BULK_T)).expect("timeout");
    }
    let mut handles = Vec::new();
    for (from, to, seed) in [(a, b, seeds.0), (b, a, seeds.1)] {
        let mut w = from.clone_stream();
        let mut r = to.clone_stream();
        let wname = format!("{} sending", from.name);
        let rname = format!("{} receiving from {}", to.name, from.name);
        handles.push(thread::spawn(move || {
            send_stream(&mut w, seed, len, &wname)
        }));
        handles.push(thread::spawn(move || {
            recv_stream_then_eof(&mut r, seed, len, &rname)
        }));
    }
    handles
}

/// A transfer thread's outcome (a panic counts as an error).
fn join(h: JoinHandle<Result<(), String>>) -> Result<(), String> {
    h.join()
        .unwrap_or_else(|_| Err("a transfer thread panicked".to_string()))
}

/// Panics with every error at once (a stalled relay shows on both ends).
fn assert_all_ok(results: Vec<Result<(), String>>) {
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(errors.is_empty(), "transfer errors:\n{}", errors.join("\n"));
}

fn join_all(handles: Vec<JoinHandle<Result<(), String>>>) {
    assert_all_ok(handles.into_iter().map(join).collect());
}

// ---- kernel and process observations ------------------------------------------------------------

/// `VmRSS` of a process in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// `ip:port` as `/proc/net/tcp` prints it (the address word in host byte order).
fn proc_net_addr(a: std::net::SocketAddr) -> String {
    match a {
        std::net::SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(v4.ip().octets()),
            v4.port()
        ),
        std::net::SocketAddr::V6(_) => panic!("the tests use 127.0.0.1"),
    }
}

/// Bytes `stream` has queued for sending that the server's kernel has not acknowledged yet
/// (`tx_queue` of its `/proc/net/tcp` line).
fn unacked_bytes(stream: &TcpStream) -> u64 {
    let local = proc_net_addr(stream.local_addr().expect("local addr"));
    let remote = proc_net_addr(stream.peer_addr().expect("peer addr"));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 4 && f[1] == local && f[2] == remote {
            let tx = f[4].split(':').next().unwrap_or("");
            return u64::from_str_radix(tx, 16).expect("hex tx_queue");
        }
    }
    panic!("socket {local} -> {remote} not in /proc/net/tcp");
}

/// Waits until every byte written to `stream` was acknowledged by the server's kernel. There is
/// no blocking call for this, so it polls the kernel's table every few milliseconds, bounded.
fn wait_all_acked(stream: &TcpStream, what: &str) {
    let deadline = Instant::now() + T;
    loop {
        let left = unacked_bytes(stream);
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {left} bytes still unacknowledged after {T:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

// ---- full flow ------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// The host's vcmiserver pipes connect and wait, then the clients arrive.
    ServersFirst,
    /// The guests' vcmiclients connect and wait, then the vcmiserver opens its pipes.
    ClientsFirst,
}

/// Lobby → HOST/START → every pipe with the exact VCMI handshake, one side waiting, the other
/// side arriving one pipe at a time → each side gets exactly its own handshake back → `BULK`
/// bytes both ways on every pair at once, checked byte for byte, then EOF on every side.
fn full_game(players: usize, order: Order) {
    let server = Server::start(&[]);
    let game = start_game(&server, players);
    let remote = players - 1;
    let servers: Vec<(&str, String, String)> = (0..remote)
        .map(|k| {
            (
                "server",
                game.host_uuid.clone(),
                format!("server pipe #{k}"),
            )
        })
        .collect();
    let clients: Vec<(&str, String, String)> = game
        .guests()
        .iter()
        .enumerate()
        .map(|(k, u)| {
            (
                "client",
                u.clone(),
                format!("client pipe of player{}", k + 1),
            )
        })
        .collect();
    let (early, late) = match order {
        Order::ServersFirst => (servers, clients),
        Order::ClientsFirst => (clients, servers),
    };
    // The waiting side registers one pipe after the other (each counted by the server before
    // the next connects), so their arrival order is known.
    let mut waiting = Vec::new();
    for (k, (role, uuid, name)) in early.iter().enumerate() {
        waiting.push(Pipe::open(&server, role, uuid, name));
        wait_pipes_counted(&server, k + 1);
    }

    // Newcomers arrive one at a time, each after the previous pair completed, as vcmiserver
    // does (§8.4). Each newcomer's partner is learnt from who gets an echo, and must be the
    // oldest waiting pipe (FIFO, §10.4).
    let mut pairs = Vec::new();
    for (role, uuid, name) in &late {
        let mut newcomer = Pipe::open(&server, role, uuid, name);
        newcomer.expect_echo();
        let i = first_with_data(&waiting, T).unwrap_or_else(|| {
            panic!("{name} got its echo but no waiting pipe got one within {T:?}")
        });
        assert_eq!(
            i, 0,
            "{name} was paired with {}, not with the oldest waiting pipe {}",
            waiting[i].name, waiting[0].name
        );
        let mut partner = waiting.remove(i);
        partner.expect_echo();
        pairs.push((partner, newcomer));
    }
    assert!(waiting.is_empty());
    assert_eq!(pairs.len(), remote);

    let mut handles = Vec::new();
    for (i, (a, b)) in pairs.iter().enumerate() {
        let seed = 0x5EED_0000 + 2 * i as u64;
        handles.extend(bulk_both_ways(a, b, BULK, (seed, seed + 1)));
    }
    join_all(handles);
}

#[test]
fn full_flow_2_players_servers_first() {
    full_game(2, Order::ServersFirst);
}

#[test]
fn full_flow_2_players_clients_first() {
    full_game(2, Order::ClientsFirst);
}

#[test]
fn full_flow_3_players_servers_first() {
    full_game(3, Order::ServersFirst);
}

#[test]
fn full_flow_3_players_clients_first() {
    full_game(3, Order::ClientsFirst);
}

#[test]
fn full_flow_8_players_servers_first() {
    full_game(8, Order::ServersFirst);
}

#[test]
fn full_flow_8_players_clients_first() {
    full_game(8, Order::ClientsFirst);
}

// ---- bytes sent before the partner exists (D27 fix) ---------------------------------------------

/// `(role, uuid, name)` of the early and the late side of a 2-player game.
fn sides(game: &Game, early_role: &str) -> [(&'static str, String, &'static str); 2] {
    let server = ("server", game.host_uuid.clone(), "server pipe");
    let client = ("client", game.guests()[0].clone(), "client pipe");
    if early_role == "server" {
        [server, client]
    } else {
        [client, server]
    }
}

/// The early side writes several chunks after its handshake while alone; the late side writes
/// its handshake and more bytes in one write. Each side gets its own echo, then exactly what
/// the other sent, in order; nothing else (EOF right after).
fn early_bytes(early_role: &str) {
    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    let [(er, eu, en), (lr, lu, ln)] = sides(&game, early_role);

    let mut early = Pipe::open(&server, er, &eu, en);
    let chunks: [Vec<u8>; 3] = [
        b"first early chunk|".to_vec(),
        stream_bytes(0xEA71, 3000),
        b"|last early chunk".to_vec(),
    ];
    for c in &chunks {
        early.send(c);
    }
    let early_sent = chunks.concat();
    wait_pipes_counted(&server, 1);

    let mut late = Pipe::new(&server, lr, &lu, ln);
    let late_sent = [
        b"late bytes in the endianness byte's write|".as_slice(),
        &stream_bytes(0x1A7E, 2000),
    ]
    .concat();
    let first_write = [late.hello.clone(), late_sent.clone()].concat();
    late.send(&first_write);

    late.expect_echo();
    late.expect_bytes(&early_sent);
    early.expect_echo();
    early.expect_bytes(&late_sent);
    close_pair(&mut early, &mut late);
}

#[test]
fn early_client_bytes_reach_the_server_after_its_echo() {
    early_bytes("client");
}

#[test]
fn early_server_bytes_reach_the_client_after_its_echo() {
    early_bytes("server");
}

/// The waiting side writes its handshake and 200 KiB in a single write: the server reads the
/// handshake together with the first of these bytes and more keep coming in the same burst
/// (many read chunks), all of which must reach the partner in order. (200 KiB stays below the
/// 256 KiB a waiting pipe may buffer: the server closes a waiting pipe that fills it.)
#[test]
fn early_bytes_in_the_handshake_write_beyond_a_read_chunk_all_arrive() {
    const LEN: usize = 200 * KIB;
    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    let mut early = Pipe::new(&server, "client", &game.guests()[0], "client pipe");
    let first_write = [early.hello.clone(), stream_bytes(0xB16, LEN)].concat();
    let mut w = early.clone_stream();
    // on a thread: the write may block until the server has taken the bytes
    let writer = thread::spawn(move || {
        w.write_all(&first_write)
            .map_err(|e| format!("early side's single write: {e}"))
    });
    // the server has read the handshake (and with it the first bytes after it) while alone
    wait_pipes_counted(&server, 1);
    let mut late = Pipe::open(&server, "server", &game.host_uuid, "server pipe");
    late.expect_echo();
    let got = recv_stream(
        &mut late.stream,
        0xB16,
        LEN,
        "server pipe reading early bytes",
    );
    assert_all_ok(vec![got, join(writer)]);
    early.expect_echo();
    close_pair(&mut early, &mut late);
}

/// The late side writes its handshake and 1 MiB in a single write while its partner reads:
/// everything after the endianness byte reaches the partner, in order.
#[test]
fn late_side_bytes_in_the_handshake_write_all_arrive() {
    const LEN: usize = MIB;
    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    let mut early = Pipe::open(&server, "server", &game.host_uuid, "server pipe");
    wait_pipes_counted(&server, 1);
    let mut late = Pipe::new(&server, "client", &game.guests()[0], "client pipe");
    let first_write = [late.hello.clone(), stream_bytes(0x1A7E, LEN)].concat();
    let mut w = late.clone_stream();
    let writer = thread::spawn(move || {
        w.write_all(&first_write)
            .map_err(|e| format!("late side's single write: {e}"))
    });
    early.expect_echo();
    early
        .stream
        .set_read_timeout(Some(BULK_T))
        .expect("timeout");
    let got = recv_stream(&mut early.stream, 0x1A7E, LEN, "server pipe reading");
    assert_all_ok(vec![got, join(writer)]);
    late.expect_echo();
    close_pair(&mut early, &mut late);
}

// ---- handshake segmentation ---------------------------------------------------------------------

/// A few bytes each way and a clean close prove the pair works.
fn ping_pong(a: &mut Pipe, b: &mut Pipe) {
    let to_b = format!("hello from {}", a.name).into_bytes();
    let to_a = format!("hello from {}", b.name).into_bytes();
    a.send(&to_b);
    b.send(&to_a);
    b.expect_bytes(&to_b);
    a.expect_bytes(&to_a);
    close_pair(a, b);
}

#[test]
fn handshakes_split_byte_by_byte() {
    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    let mut s = Pipe::new(&server, "server", &game.host_uuid, "server pipe");
    let mut c = Pipe::new(&server, "client", &game.guests()[0], "client pipe");
    // one write per byte (TCP_NODELAY), the endianness byte alone at the end
    for p in [&mut s, &mut c] {
        let hello = p.hello.clone();
        for b in &hello {
            p.send(std::slice::from_ref(b));
        }
    }
    c.expect_echo();
    s.expect_echo();
    ping_pong(&mut s, &mut c);
}

#[test]
fn handshakes_in_one_segment_each() {
    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    // Pipe::open writes the three frames and the endianness byte in one write
    let mut c = Pipe::open(&server, "client", &game.guests()[0], "client pipe");
    let mut s = Pipe::open(&server, "server", &game.host_uuid, "server pipe");
    s.expect_echo();
    c.expect_echo();
    ping_pong(&mut c, &mut s);
}

// ---- refusals and timeouts ----------------------------------------------------------------------

#[test]
fn unknown_uuid_and_wrong_role_are_closed_right_after_the_endianness_byte() {
    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    assert!(!game.all_uuids().contains(&STRANGER_UUID));
    let probes = [
        ("client", STRANGER_UUID, "client pipe with an unknown uuid"),
        ("server", STRANGER_UUID, "server pipe with an unknown uuid"),
        (
            "client",
            game.host_uuid.as_str(),
            "client pipe with the HOST uuid",
        ),
        (
            "server",
            game.guests()[0].as_str(),
            "server pipe with a guest's START uuid",
        ),
        (
            "server",
            game.starts[0].as_str(),
            "server pipe with the host's START uuid",
        ),
    ];
    let mut pipes: Vec<Pipe> = probes
        .iter()
        .map(|(role, uuid, name)| Pipe::new(&server, role, uuid, name))
        .collect();
    // everything but the endianness byte: the server must wait for it
    for p in &mut pipes {
        let frames = p.hello[..p.hello.len() - 1].to_vec();
        p.send(&frames);
    }
    for p in &mut pipes {
        expect_silent_open(&mut p.stream, Duration::from_millis(50), &p.name);
    }
    for p in &mut pipes {
        p.send(ENDIAN_LITTLE);
    }
    for p in &mut pipes {
        expect_closed(&mut p.stream, &p.name);
    }

    // the refusals left the session intact: the right uuids in the right roles pair, and the
    // host's unused START uuid is a valid client uuid too (§10.4)
    let (mut s, mut c) = pair(&server, &game);
    ping_pong(&mut s, &mut c);
    let mut s = Pipe::open(&server, "server", &game.host_uuid, "second server pipe");
    let mut h = Pipe::open(
        &server,
        "client",
        &game.starts[0],
        "client pipe with host's START",
    );
    h.expect_echo();
    s.expect_echo();
    ping_pong(&mut s, &mut h);
}

#[test]
fn garbage_after_aiya_is_closed_without_waiting_for_the_timeout() {
    // the default 30 s pipe timeout: a close within T is a refusal, not the timeout
    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    let aiya = frame(b"Aiya!\n");
    let too_many: Vec<u8> = (0..6)
        .flat_map(|i| frame(format!("frame {i} has neither (type) nor uuid").as_bytes()))
        .collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "name frame that is not UTF-8",
            [aiya.clone(), frame(b"VCMI \xff\xfe\xfd (client)")].concat(),
        ),
        (
            "length prefix of 4 GiB",
            [aiya.clone(), b"\xff\xff\xff\xffjunk".to_vec()].concat(),
        ),
        (
            "frame after frame without a uuid",
            [aiya.clone(), too_many].concat(),
        ),
        (
            "a 60 KiB handshake frame",
            [aiya.clone(), frame(&vec![b'x'; 60 * KIB])].concat(),
        ),
        (
            "(observer) with a valid uuid",
            pipe_hello(
                "observer",
                &game.guests()[0],
                Some("VCMI 1.4.5 (observer)"),
                ENDIAN_LITTLE,
            ),
        ),
    ];
    let mut pipes: Vec<(TcpStream, &str)> = cases
        .iter()
        .map(|(name, bytes)| {
            let mut s = connect(&server);
            s.write_all(bytes)
                .unwrap_or_else(|e| panic!("{name}: write: {e}"));
            (s, *name)
        })
        .collect();
    for (s, name) in &mut pipes {
        expect_closed(s, name);
    }
}

#[test]
fn incomplete_handshakes_time_out() {
    let server = Server::start(&["--pipe-timeout", "1"]);
    let game = start_game(&server, 2);
    let timeout = Duration::from_secs(1);
    // registered and waiting: no longer subject to the handshake timeout
    let mut waiting = Pipe::open(&server, "server", &game.host_uuid, "waiting server pipe");

    let guest = &game.guests()[0];
    let full = pipe_hello("client", guest, None, ENDIAN_LITTLE);
    let aiya = frame(b"Aiya!\n");
    let name = frame(b"VCMI 1.4.5 (client)");
    let uuid = frame(guest.as_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("only Aiya!", aiya.clone()),
        ("Aiya! and the name", [aiya.clone(), name.clone()].concat()),
        (
            "everything but the endianness byte",
            full[..full.len() - 1].to_vec(),
        ),
        (
            "half of the uuid frame",
            [aiya.clone(), name.clone(), uuid[..20].to_vec()].concat(),
        ),
        (
            "uuid before the name (never authenticates, D31)",
            [
                aiya.clone(),
                uuid.clone(),
                name.clone(),
                ENDIAN_LITTLE.to_vec(),
            ]
            .concat(),
        ),
    ];
    let mut pipes: Vec<(TcpStream, &str, Instant)> = cases
        .iter()
        .map(|(what, bytes)| {
            let mut s = connect(&server);
            let sent = Instant::now();
            s.write_all(bytes)
                .unwrap_or_else(|e| panic!("{what}: write: {e}"));
            (s, *what, sent)
        })
        .collect();
    for (s, what, sent) in &mut pipes {
        expect_closed(s, what);
        // the server started the clock when it received the bytes, after `sent`
        let took = sent.elapsed();
        assert!(
            took >= timeout,
            "{what}: closed after {took:?}, before the 1 s pipe timeout"
        );
    }

    // every timer of the waiting pipe is due by now: it is still open and pairs normally
    expect_silent_open(
        &mut waiting.stream,
        Duration::from_millis(50),
        "registered pipe after the handshake timeout",
    );
    let mut c = Pipe::open(&server, "client", guest, "client pipe");
    c.expect_echo();
    waiting.expect_echo();
    ping_pong(&mut waiting, &mut c);
}

// ---- half-close and resets ----------------------------------------------------------------------

/// One side sends A then FIN: the other receives all of A then EOF, and can still send B the
/// other way, which arrives completely before its own FIN.
fn half_close(fin_role: &str) {
    const A: usize = 300 * KIB;
    const B: usize = 200 * KIB;
    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    let (s, c) = pair(&server, &game);
    let (mut fin, mut other) = if fin_role == "server" { (s, c) } else { (c, s) };
    for p in [&fin, &other] {
        p.stream.set_read_timeout(Some(BULK_T)).expect("timeout");
    }

    let mut w = fin.clone_stream();
    let name = format!("{} sending then FIN", fin.name);
    let writer = thread::spawn(move || send_stream(&mut w, 0xA, A, &name));
    let got = recv_stream_then_eof(&mut other.stream, 0xA, A, &other.name);
    assert_all_ok(vec![got, join(writer)]);

    let mut w = other.clone_stream();
    let name = format!("{} sending after EOF", other.name);
    let writer = thread::spawn(move || send_stream(&mut w, 0xB, B, &name));
    let got = recv_stream_then_eof(&mut fin.stream, 0xB, B, &fin.name);
    assert_all_ok(vec![got, join(writer)]);
}

#[test]
fn fin_from_the_server_side_is_passed_on_after_its_data() {
    half_close("server");
}

#[test]
fn fin_from_the_client_side_is_passed_on_after_its_data() {
    half_close("client");
}

/// The late side writes its handshake, some bytes and FIN at once (it has nothing more to say
/// but still listens): it gets its echo and the partner's reply; the partner gets the bytes,
/// then EOF.
#[test]
fn fin_right_behind_the_late_handshake_is_a_half_close() {
    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    let mut early = Pipe::open(&server, "server", &game.host_uuid, "server pipe");
    wait_pipes_counted(&server, 1);
    let mut late = Pipe::new(&server, "client", &game.guests()[0], "client pipe");
    let said = b"last words before FIN".to_vec();
    let first_write = [late.hello.clone(), said.clone()].concat();
    late.send(&first_write);
    late.shutdown_write();

    early.expect_echo();
    early.expect_bytes(&said);
    expect_eof(&mut early.stream, "server pipe after the client's FIN");
    late.expect_echo();
    let reply = b"the server pipe still answers".to_vec();
    early.send(&reply);
    late.expect_bytes(&reply);
    early.shutdown_write();
    expect_eof(&mut late.stream, "client pipe after the server's FIN");
}

/// One side writes P and is then closed abruptly (unread input makes Linux send RST): the other
/// side, which was not reading meanwhile, still receives all of P and is then closed (D28).
fn reset(reset_role: &str) {
    const P: usize = 200 * KIB; // < the 256 KiB relay buffer: the server takes all of it
    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    let s = Pipe::open(&server, "server", &game.host_uuid, "server pipe");
    let c = Pipe::open(&server, "client", &game.guests()[0], "client pipe");
    let (mut rst, mut other) = if reset_role == "server" {
        (s, c)
    } else {
        (c, s)
    };
    other.expect_echo();
    // `rst` leaves its echo unread, so closing it resets the connection
    let mut one = [0u8; 1];
    let n = rst
        .stream
        .peek(&mut one)
        .unwrap_or_else(|e| panic!("{}: no echo to leave unread: {e}", rst.name));
    assert_eq!(n, 1, "{}: closed instead of echoing", rst.name);

    let payload = stream_bytes(0x7E5E7, P);
    rst.send(&payload);
    // a reset discards what the kernel has not delivered yet; wait until it has
    wait_all_acked(&rst.stream, &rst.name);
    drop(rst);

    other
        .stream
        .set_read_timeout(Some(BULK_T))
        .expect("timeout");
    recv_stream(&mut other.stream, 0x7E5E7, P, &other.name).unwrap_or_else(|e| panic!("{e}"));
    expect_closed(&mut other.stream, "the partner of a reset pipe");
}

#[test]
fn reset_of_the_server_side_closes_the_client_after_flushing() {
    reset("server");
}

#[test]
fn reset_of_the_client_side_closes_the_server_after_flushing() {
    reset("client");
}

// ---- back-pressure ----------------------------------------------------------------------------

/// The client pipe stops reading while the server pipe pushes 64 MiB: once the bounded relay
/// buffer and the kernels' socket buffers are full the sender's writes block (detected by a
/// write timeout), the server's memory stays flat, and when the receiver reads again every byte
/// arrives intact.
#[test]
fn a_receiver_that_stops_reading_throttles_the_sender_losslessly() {
    const TOTAL: usize = 64 * MIB;
    const SEED: u64 = 0xBAC4;
    /// A write that makes no progress for this long counts as blocked.
    const STALL: Duration = Duration::from_millis(300);
    /// Allowed growth of the server's resident memory while the sender is blocked.
    const RSS_BOUND_KIB: u64 = 16 * 1024;

    let server = Server::start(&[]);
    let game = start_game(&server, 2);
    let (s, mut c) = pair(&server, &game);
    let rss_before = vm_rss_kib(server.pid());

    let mut w = s.clone_stream();
    w.set_write_timeout(Some(STALL)).expect("write timeout");
    // the writer reports how much it had written each time a write timed out
    let (stalls_tx, stalls) = mpsc::channel::<usize>();
    let writer = thread::spawn(move || -> Result<(), String> {
        let give_up = Instant::now() + 2 * BULK_T;
        let mut chunk = vec![0u8; CHUNK];
        let mut off = 0;
        while off < TOTAL {
            let n = (TOTAL - off).min(CHUNK);
            fill(SEED, off as u64, &mut chunk[..n]);
            let mut done = 0;
            while done < n {
                match w.write(&chunk[done..n]) {
                    Ok(0) => return Err(format!("write returned 0 after {}", off + done)),
                    Ok(k) => done += k,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        let _ = stalls_tx.send(off + done);
                        if Instant::now() > give_up {
                            return Err(format!("sender stuck at {} bytes", off + done));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("write failed after {}: {e}", off + done)),
                }
            }
            off += n;
        }
        w.shutdown(Shutdown::Write)
            .map_err(|e| format!("shutdown(Write): {e}"))
    });

    let blocked_at = stalls.recv_timeout(BULK_T).unwrap_or_else(|_| {
        panic!("the sender never blocked although the receiver read nothing of {TOTAL} bytes")
    });
    let rss_blocked = vm_rss_kib(server.pid());
    // still blocked a stall period later; memory still flat
    let still_at = stalls
        .recv_timeout(BULK_T)
        .expect("the sender stays blocked while the receiver does not read");
    let rss_still = vm_rss_kib(server.pid());
    for (when, rss) in [("blocked", rss_blocked), ("still blocked", rss_still)] {
        assert!(
            rss <= rss_before + RSS_BOUND_KIB,
            "server RSS grew from {rss_before} KiB to {rss} KiB while the sender was {when} \
             (after {blocked_at}..{still_at} of {TOTAL} bytes)"
        );
    }
    assert!(blocked_at < TOTAL && still_at < TOTAL);

    c.stream.set_read_timeout(Some(BULK_T)).expect("timeout");
    let got = recv_stream_then_eof(&mut c.stream, SEED, TOTAL, "client pipe reading late");
    assert_all_ok(vec![got, join(writer)]);
}

// ---- session expiry ---------------------------------------------------------------------------

/// A full handshake with `uuid` as `role` is refused (closed without an echo).
fn expect_refused(server: &Server, role: &str, uuid: &str, what: &str) {
    let mut p = Pipe::open(server, role, uuid, what);
    expect_closed(&mut p.stream, what);
}

#[test]
fn sessions_are_forgotten_after_the_grace() {
    const GRACE: Duration = Duration::from_secs(1);
    /// Slack for the server's timer and the test's own scheduling.
    const MARGIN: Duration = Duration::from_millis(500);
    let server = Server::start(&["--session-grace", "1"]);

    let game = start_game(&server, 2);
    let (mut s, mut c) = pair(&server, &game);
    close_pair(&mut s, &mut c);
    // within the grace the session is still there: the same uuids pair again
    let (mut s, mut c) = pair(&server, &game);
    close_pair(&mut s, &mut c);
    // the server closed both before we saw their EOFs: the grace runs from no later than now
    let last_pipe_closed = Instant::now();

    // a second game whose pipes never come (D30 fix): forgotten `grace` after its start
    let unused = start_game(&server, 2);
    let unused_started = Instant::now();

    // Expiry is time-based behaviour, so the test waits for the deadline itself. It cannot poll
    // instead: a probe that is accepted registers a pipe and restarts the grace when it closes.
    let due = (last_pipe_closed.max(unused_started)) + GRACE + MARGIN;
    thread::sleep(due.saturating_duration_since(Instant::now()));

    expect_refused(
        &server,
        "client",
        &game.guests()[0],
        "guest uuid of an expired session",
    );
    expect_refused(
        &server,
        "server",
        &game.host_uuid,
        "HOST uuid of an expired session",
    );
    expect_refused(
        &server,
        "client",
        &unused.guests()[0],
        "guest uuid of an unused session",
    );
    expect_refused(
        &server,
        "server",
        &unused.host_uuid,
        "HOST uuid of an unused session",
    );
}

//! Setting up JSON-lobby games for `json-relay` and `json-pingpong`: a small blocking lobby
//! client, the full proxy-mode procedure of LOBBY-JSON.md §1.10 per game, the `--direct`
//! baseline pair, and the keeper thread that holds the lobby connections while games run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use serde_json::Value;

use crate::errors::io_error_text;
use crate::json_proto::{self as jp, Account, FrameBuf, Msg};
use crate::setup::{connect, remaining};
use crate::Ctx;

/// A lobby connection driven step by step (register, log in, wait for one reply type).
pub struct JsonConn {
    pub stream: TcpStream,
    buf: FrameBuf,
    /// Who this is, for error texts ("game 3 guest").
    who: String,
    deadline: Instant,
}

impl JsonConn {
    pub fn connect(addr: SocketAddr, who: String, deadline: Instant) -> Result<Self, String> {
        let stream = connect(addr, deadline).map_err(|e| format!("{who}: {e}"))?;
        Ok(JsonConn {
            stream,
            buf: FrameBuf::default(),
            who,
            deadline,
        })
    }

    pub fn send(&mut self, msg: &Value) -> Result<(), String> {
        self.send_raw(&jp::message_frame(msg))
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("{}: send: {}", self.who, io_error_text(&e)))
    }

    /// Reads until a message of type `kind` arrives, skipping every other type (broadcasts such
    /// as activeAccounts arrive at any time). `operationFailed` fails the wait.
    pub fn wait(&mut self, kind: &str) -> Result<Msg, String> {
        let mut rbuf = vec![0u8; 64 << 10];
        loop {
            while let Some(p) = self
                .buf
                .next_payload()
                .map_err(|e| format!("{}: {e}", self.who))?
            {
                match jp::sniff_type(p) {
                    Some(t) if t != kind && t != "operationFailed" => continue,
                    _ => {}
                }
                let m = Msg::parse(p).map_err(|e| format!("{}: {e}", self.who))?;
                if let Some(f) = m.failure() {
                    return Err(format!("{}: {f} while waiting for {kind}", self.who));
                }
                if m.kind == kind {
                    return Ok(m);
                }
            }
            let rem = remaining(self.deadline)
                .map_err(|e| format!("{}: waiting for {kind}: {e}", self.who))?;
            self.stream
                .set_read_timeout(Some(rem))
                .map_err(|e| e.to_string())?;
            match self.stream.read(&mut rbuf) {
                Ok(0) => {
                    return Err(format!(
                        "{}: connection closed by the server while waiting for {kind}",
                        self.who
                    ))
                }
                Ok(n) => self.buf.push(&rbuf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!(
                        "{}: waiting for {kind}: {}",
                        self.who,
                        io_error_text(&e)
                    ))
                }
            }
        }
    }

    /// clientRegister → accountCreated, then clientLogin on the same socket, as the real client
    /// does (§1.3), up to the last message of the login sequence, matchesHistory (§1.5 item 2).
    pub fn register_and_login(&mut self, name: &str, channel: &str) -> Result<Account, String> {
        self.send(&jp::client_register(name))?;
        let account = self.wait("accountCreated")?.account()?;
        self.send(&jp::client_login(&account, channel))?;
        self.wait("clientLoginSuccess")?;
        self.wait("matchesHistory")?;
        Ok(account)
    }
}

/// Writes one frame with `write_all`.
pub fn write_frame(s: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let mut f = Vec::with_capacity(4 + payload.len());
    jp::push_frame(&mut f, payload);
    s.write_all(&f)
}

/// Reads the next non-empty frame exactly (no read-ahead, so the stream can be handed to the
/// bulk reader afterwards), skipping heartbeats.
pub fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    loop {
        let mut h = [0u8; 4];
        s.read_exact(&mut h)?;
        let n = u32::from_le_bytes(h) as usize;
        if n == 0 {
            continue;
        }
        if n > jp::MAX_FRAME {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {n} bytes announced"),
            ));
        }
        let mut p = vec![0u8; n];
        s.read_exact(&mut p)?;
        return Ok(p);
    }
}

/// One set-up game: the two relayed game connections and the lobby connections that must stay
/// open while it runs (host, guest, match-server control; empty for `--direct`).
pub struct Game {
    /// The match server's proxy connection (PS in §1.10).
    pub server: TcpStream,
    /// The guest's proxy connection (PC).
    pub client: TcpStream,
    pub lobby: Vec<TcpStream>,
}

fn expect_room(m: &Msg, room: &str, proxy: bool) -> Result<(), String> {
    let got_proxy = m.body.get("proxyMode").and_then(Value::as_bool);
    if m.str("gameRoomID") != Some(room) || got_proxy != Some(proxy) {
        return Err(format!(
            "joinRoomSuccess for the wrong room or mode: {} (expected room {room}, proxyMode {proxy})",
            m.body
        ));
    }
    Ok(())
}

/// The whole proxy-mode procedure of §1.10 for game `g`, ending with both hello frames relayed.
pub fn proxy_game(addr: SocketAddr, ctx: &Ctx, channel: &str, g: usize) -> Result<Game, String> {
    let dl = ctx.deadline;
    let room = uuid::Uuid::new_v4().to_string();
    let mut host = JsonConn::connect(addr, format!("game {g} host"), dl)?;
    let host_acc = host.register_and_login(&jp::account_name(&ctx.run_id, 'h', g), channel)?;

    // the host's vcmiserver: control connection
    let mut srv = JsonConn::connect(addr, format!("game {g} match server"), dl)?;
    srv.send(&jp::server_login(&room, &host_acc))?;
    srv.wait("serverLoginSuccess")?;

    host.send(&jp::activate_game_room(&host_acc.id))?;
    expect_room(&host.wait("joinRoomSuccess")?, &room, false)?;

    let mut guest = JsonConn::connect(addr, format!("game {g} guest"), dl)?;
    let guest_acc = guest.register_and_login(&jp::account_name(&ctx.run_id, 'g', g), channel)?;
    guest.send(&jp::join_game_room(&room))?;
    let joined = srv.wait("accountJoinsRoom")?;
    if joined.str("accountID") != Some(guest_acc.id.as_str()) {
        return Err(format!(
            "game {g}: accountJoinsRoom names {:?}, not the guest",
            joined.str("accountID")
        ));
    }

    // the match server's proxy connection for this guest
    let mut ps = JsonConn::connect(addr, format!("game {g} match-server proxy"), dl)?;
    ps.send(&jp::server_proxy_login(
        &room,
        &guest_acc.id,
        &host_acc.cookie,
    ))?;
    expect_room(&guest.wait("joinRoomSuccess")?, &room, true)?;

    // the guest's game connection: clientProxyLogin and the first game frame in one write
    let mut pc = JsonConn::connect(addr, format!("game {g} guest proxy"), dl)?;
    let mut first = jp::message_frame(&jp::client_proxy_login(&guest_acc, &room));
    jp::push_frame(&mut first, &jp::hello_frame(g, true));
    pc.send_raw(&first)?;

    let (mut server, mut client) = (ps.stream, pc.stream);
    let got = read_frame(&mut server).map_err(|e| {
        format!(
            "game {g}: match-server proxy connection: waiting for the guest's first game frame \
             (the pairing): {}",
            io_error_text(&e)
        )
    })?;
    check_hello(&got, &jp::hello_frame(g, true), g, "guest → match server")?;
    write_frame(&mut server, &jp::hello_frame(g, false))
        .map_err(|e| format!("game {g}: match-server proxy: {}", io_error_text(&e)))?;
    let got = read_frame(&mut client).map_err(|e| {
        format!(
            "game {g}: guest proxy connection: waiting for the match server's first game frame: {}",
            io_error_text(&e)
        )
    })?;
    check_hello(&got, &jp::hello_frame(g, false), g, "match server → guest")?;
    Ok(Game {
        server,
        client,
        lobby: vec![host.stream, guest.stream, srv.stream],
    })
}

fn check_hello(got: &[u8], want: &[u8], g: usize, way: &str) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let hint = match Msg::parse(got) {
        Ok(m) => format!(" (a lobby message: {})", m.body),
        Err(_) => String::new(),
    };
    Err(format!(
        "game {g}: first relayed frame {way} differs from what was sent{hint}"
    ))
}

/// Sets up `n` games through the lobby, at most `parallel` at once; or `n` direct loopback pairs.
pub fn setup_games(
    proxy: Option<SocketAddr>,
    n: usize,
    parallel: usize,
    channel: &str,
    ctx: &Ctx,
) -> Result<Vec<Game>, String> {
    let Some(addr) = proxy else {
        return direct_pairs(n, ctx);
    };
    let longest = jp::account_name(&ctx.run_id, 'g', n.saturating_sub(1));
    if !jp::valid_account_name(&longest) {
        return Err(format!(
            "generated account name {longest:?} breaks the lobby's name rules"
        ));
    }
    let mut games = Vec::with_capacity(n);
    let par = parallel.max(1);
    for base in (0..n).step_by(par) {
        let batch = par.min(n - base);
        let results: Vec<Result<Game, String>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..batch)
                .map(|k| sc.spawn(move || proxy_game(addr, ctx, channel, base + k)))
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("setup thread panicked".into()))
                })
                .collect()
        });
        for r in results {
            games.push(r.map_err(|e| format!("game setup: {e}"))?);
        }
    }
    Ok(games)
}

/// `--direct`: each pair is a loopback connection to the tool's own listener (no relay at all),
/// carrying exactly the same frames as a relayed game.
fn direct_pairs(n: usize, ctx: &Ctx) -> Result<Vec<Game>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("listen: {e}"))?;
    let at = listener.local_addr().map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let client = connect(at, ctx.deadline)?;
        let (server, _) = listener
            .accept()
            .map_err(|e| format!("accept: {}", io_error_text(&e)))?;
        crate::setup::prepare(&server, ctx.deadline)?;
        out.push(Game {
            server,
            client,
            lobby: Vec::new(),
        });
    }
    Ok(out)
}

/// Holds the lobby connections of running games on one thread: reads and discards what the
/// lobby sends (room broadcasts, heartbeats), so nothing piles up in the server's queues, and
/// sends a heartbeat every 10 s like a real client. Counts connections the server closed.
pub struct LobbyKeeper {
    stop: Arc<AtomicBool>,
    closed: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LobbyKeeper {
    pub fn start(conns: Vec<TcpStream>) -> Result<LobbyKeeper, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicU64::new(0));
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let mut socks = Vec::with_capacity(conns.len());
        for (i, s) in conns.into_iter().enumerate() {
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            let mut m = mio::net::TcpStream::from_std(s);
            poll.registry()
                .register(&mut m, Token(i), Interest::READABLE)
                .map_err(|e| format!("register: {e}"))?;
            socks.push(Some(m));
        }
        let (st, cl) = (stop.clone(), closed.clone());
        let thread = std::thread::Builder::new()
            .name("lobby-keeper".into())
            .spawn(move || keep(poll, socks, &st, &cl))
            .map_err(|e| format!("cannot start thread: {e}"))?;
        Ok(LobbyKeeper {
            stop,
            closed,
            thread: Some(thread),
        })
    }

    /// Stops the thread (closing the lobby connections) and returns how many the server closed.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.closed.load(Ordering::Relaxed)
    }
}

fn keep(
    mut poll: Poll,
    mut socks: Vec<Option<mio::net::TcpStream>>,
    stop: &AtomicBool,
    closed: &AtomicU64,
) {
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 64 << 10];
    let mut next_beat = Instant::now() + jp::HEARTBEAT_EVERY;
    while !stop.load(Ordering::Relaxed) {
        if poll
            .poll(&mut events, Some(Duration::from_millis(50)))
            .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(s) = socks.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let gone = loop {
                match s.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break true,
                }
            };
            if gone {
                closed.fetch_add(1, Ordering::Relaxed);
                socks[i] = None;
            }
        }
        if Instant::now() >= next_beat {
            next_beat += jp::HEARTBEAT_EVERY;
            for s in socks.iter_mut().flatten() {
                // 4 bytes into an otherwise idle socket: never blocks in practice; a short write
                // would only corrupt a connection the server is closing anyway.
                let _ = s.write(&jp::HEARTBEAT);
            }
        }
    }
}

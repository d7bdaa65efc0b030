//! The event loop: one `mio::Poll`, one thread, every connection a slab
//! entry. It turns readiness into reads and writes, feeds frames to the
//! lobby rules or the pipe handshake, copies relay bytes, and fires timers.
//!
//! Each loop turn: poll (timeout = nearest deadline), service the sockets
//! that reported readiness, service the ones left with unread input by the
//! per-event read budget, fire due timers, then flush every connection that
//! got output during the turn and register its interest from its state.

use crate::config::Config;
use crate::conn::{interrupted, would_block, Conn, LobbyConn, PipeHalf, RelayBuf, State};
use crate::handshake::{is_pipe_frame, parse_lobby_header, PipeStep, Role};
use crate::lobby::{CloseReason, Lobby, LobbyConfig, Outbox, LARGE_LOBBY};
use crate::relay::{Placement, Relay, SessionId};
use crate::timers::{Timer, Timers};
use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);

/// Reads per readiness event before other connections get their turn; a
/// flooding client cannot starve the rest.
const READ_BUDGET: usize = 16;
/// Scratch read size for lobby and handshake sockets.
const READ_CHUNK: usize = 16 * 1024;
/// Distinct addresses remembered for the `uniques` statistic; past this it
/// stops growing (an IPv6 scan must not grow memory without bound).
const MAX_TRACKED_IPS: usize = 1_000_000;

/// Counters for operators, beyond the lobby's ROOT statistics.
#[derive(Debug, Default, Clone)]
pub struct ServerStats {
    pub accepted: u64,
    pub relayed_bytes: u64,
    /// Bytes of lobby messages written to sockets.
    pub lobby_bytes_out: u64,
    pub drop_frame_too_big: u64,
    pub drop_slow_consumer: u64,
    pub drop_timeout: u64,
    pub drop_bad_handshake: u64,
    pub drop_per_ip: u64,
    pub accept_pauses: u64,
}

pub struct Server {
    poll: Poll,
    listener: TcpListener,
    local: SocketAddr,
    conns: Slab<Conn>,
    pub lobby: Lobby,
    pub relay: Relay,
    timers: Timers,
    cfg: Config,
    out: Outbox,
    /// Connections with output or a state change to act on this turn.
    dirty: Vec<usize>,
    /// Connections with unread input left by the read budget.
    again: Vec<usize>,
    /// Connections owed a coalesced list refresh (large lobbies).
    refresh_due: Vec<usize>,
    scratch: Vec<u8>,
    next_serial: u64,
    seen_ips: HashSet<IpAddr>,
    per_ip: HashMap<IpAddr, u32>,
    max_connections: usize,
    accept_paused: bool,
    signals: Option<Signals>,
    /// Set by the first SIGTERM/SIGINT: stop accepting, let games drain.
    shutting_down: bool,
    exit: bool,
    pub stats: ServerStats,
}

/// Why a connection ends, for the log and the counters.
fn eof_reason(e: Option<&io::Error>) -> String {
    match e {
        None => "closed by peer".into(),
        Some(e) => format!("connection error: {e}"),
    }
}

impl Server {
    /// Binds the listener. Nothing is accepted before [`Server::run`].
    pub fn bind(cfg: Config) -> io::Result<Server> {
        let addr = SocketAddr::new(cfg.bind, cfg.port);
        let mut listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let max_connections = cfg.max_connections.unwrap_or_else(|| {
            // keep room for the listener, poll, log files and accept slack
            let n = crate::sys::raise_nofile_limit() as usize;
            n.saturating_sub((n / 20).max(32)).max(16)
        });
        Ok(Server {
            poll,
            listener,
            local,
            conns: Slab::new(),
            lobby: Lobby::new(LobbyConfig {
                capacity: cfg.capacity,
                flood_rate: cfg.flood_rate,
                flood_burst: cfg.flood_burst,
            }),
            relay: Relay::new(),
            timers: Timers::new(),
            cfg,
            out: Outbox::new(),
            dirty: Vec::new(),
            again: Vec::new(),
            refresh_due: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            next_serial: 0,
            seen_ips: HashSet::new(),
            per_ip: HashMap::new(),
            max_connections,
            accept_paused: false,
            signals: None,
            shutting_down: false,
            exit: false,
            stats: ServerStats::default(),
        })
    }

    /// Handles SIGTERM/SIGINT (graceful stop) and SIGHUP (reopen logs)
    /// inside the loop.
    pub fn install_signals(&mut self) -> io::Result<()> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Open connections of every kind.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Runs until an unrecoverable poll error.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        if let Some(every) = self.cfg.stats_interval {
            self.timers.schedule(Instant::now() + every, Timer::Stats);
        }
        while !self.exit {
            let timeout = if !self.again.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.timers
                    .next_deadline()
                    .map(|at| at.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if interrupted(&e) {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    self.accept_all();
                    continue;
                }
                if ev.token() == SIGNALS {
                    self.on_signals();
                    continue;
                }
                let key = ev.token().0;
                let Some(c) = self.conns.get_mut(key) else {
                    continue; // closed earlier in this turn
                };
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    c.readable = true;
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    c.writable = true;
                }
                self.service(key);
            }
            for key in std::mem::take(&mut self.again) {
                self.service(key);
            }
            self.fire_timers();
            self.deliver_refreshes();
            self.flush_dirty();
            if self.shutting_down && self.conns.is_empty() {
                log::info!("[!] every game ended, exiting");
                self.exit = true;
            }
        }
        self.log_stats();
        Ok(())
    }

    fn on_signals(&mut self) {
        let pending: Vec<i32> = match self.signals.as_mut() {
            Some(s) => s.pending().collect(),
            None => return,
        };
        for sig in pending {
            match sig {
                SIGHUP => crate::logging::reopen(),
                _ if self.shutting_down => {
                    log::warn!("[!] second stop signal: exiting now");
                    self.exit = true;
                }
                _ => self.begin_shutdown(),
            }
        }
    }

    /// First SIGTERM/SIGINT: stop accepting, tell the lobby, close every
    /// connection but running game pipes, which get `shutdown_grace` to end.
    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        let grace = self.cfg.shutdown_grace;
        log::warn!(
            "[!] stop requested: no new connections, games may run {}s more",
            grace.as_secs()
        );
        let _ = self.poll.registry().deregister(&mut self.listener);
        let notice = ":>>MSG:System:The server is shutting down. Please reconnect later";
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let authed = self.lobby.is_authed(key);
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            match &c.state {
                State::Pipe(_) => continue,
                State::Lobby(l) if authed => {
                    let bytes = l.charset.encode(notice).into_owned();
                    c.out.push(Bytes::from(bytes));
                }
                _ => {}
            }
            // no lobby cleanup: nobody is left to be told about it
            c.state = State::Closing;
            c.close_reason = Some("server shutting down".into());
            self.dirty.push(key);
        }
        self.timers
            .schedule(Instant::now() + grace, Timer::Shutdown);
    }

    /// One line for operators: what is open now and what was refused.
    fn log_stats(&self) {
        let (mut lobby, mut pipes, mut other) = (0, 0, 0);
        for (_, c) in self.conns.iter() {
            match c.state {
                State::Lobby(_) => lobby += 1,
                State::Pipe(_) | State::PipeHandshake(_) => pipes += 1,
                _ => other += 1,
            }
        }
        let st = &self.stats;
        let ls = &self.lobby.stats;
        log::info!(
            "[stats] connections {} (lobby {lobby}, pipes {pipes}, other {other}), users {}, rooms {}, \
             sessions {}, relayed {} bytes, lobby sent {} bytes, accepted {}, uniques {}, users ever {}, rooms ever {}, \
             starts {}, drops: frame-too-big {}, slow-consumer {}, timeout {}, flood {}, \
             bad-handshake {}, per-ip {}, capacity {}, accept pauses {}, rss {} KiB",
            self.conns.len(),
            self.lobby.users(),
            self.lobby.rooms(),
            self.relay.sessions(),
            st.relayed_bytes,
            st.lobby_bytes_out,
            st.accepted,
            ls.uniques,
            ls.users.len(),
            ls.rooms,
            ls.sessions,
            st.drop_frame_too_big,
            st.drop_slow_consumer,
            st.drop_timeout,
            ls.flood_drops,
            st.drop_bad_handshake,
            st.drop_per_ip,
            ls.capacity_refusals,
            st.accept_pauses,
            crate::sys::rss_bytes().unwrap_or(0) / 1024,
        );
    }

    // ---- accepting ----------------------------------------------------------

    fn accept_all(&mut self) {
        loop {
            if self.conns.len() >= self.max_connections {
                self.pause_accept("max-connections reached");
                return;
            }
            match self.listener.accept() {
                Ok((stream, addr)) => self.add_conn(stream, addr),
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // EMFILE/ENFILE and friends: spinning on accept would
                    // burn a core; wait for a close or a retry timer
                    log::error!("[!] accept failed: {e}");
                    self.pause_accept("accept failed");
                    self.timers
                        .schedule(Instant::now() + Duration::from_secs(1), Timer::AcceptRetry);
                    return;
                }
            }
        }
    }

    /// The accept gate: the listener is taken out of the poll set, so
    /// pending connections wait in the kernel's backlog.
    fn pause_accept(&mut self, why: &str) {
        if self.accept_paused || self.shutting_down {
            return;
        }
        self.accept_paused = true;
        self.stats.accept_pauses += 1;
        let _ = self.poll.registry().deregister(&mut self.listener);
        log::warn!(
            "[!] accepting paused ({why}): {} connections open",
            self.conns.len()
        );
    }

    fn resume_accept(&mut self) {
        if !self.accept_paused || self.shutting_down || self.conns.len() >= self.max_connections {
            return;
        }
        match self
            .poll
            .registry()
            .register(&mut self.listener, LISTENER, Interest::READABLE)
        {
            Ok(()) => {
                self.accept_paused = false;
                log::info!(
                    "[!] accepting resumed: {} connections open",
                    self.conns.len()
                );
            }
            Err(e) => log::error!("[!] cannot resume accepting: {e}"),
        }
    }

    fn add_conn(&mut self, mut stream: TcpStream, addr: SocketAddr) {
        let ip = addr.ip();
        if self.cfg.max_per_ip > 0 {
            let n = self.per_ip.entry(ip).or_insert(0);
            if *n as usize >= self.cfg.max_per_ip {
                self.stats.drop_per_ip += 1;
                log::debug!("[!] {addr} refused: {} connections from {ip}", *n);
                return; // dropping the stream closes it
            }
            *n += 1;
        }
        let _ = stream.set_nodelay(true);
        let _ = crate::sys::set_keepalive(&stream, 30, 10);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            log::error!("[!] cannot register {addr}: {e}");
            self.release_ip(ip);
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut conn = Conn::new(stream, addr, serial, self.cfg.max_frame);
        conn.interest = Some(Interest::READABLE);
        conn.writable = true; // a fresh socket has room; epoll says otherwise
        let at = Instant::now() + self.cfg.first_frame_timeout;
        conn.deadline = Some(at);
        entry.insert(conn);
        self.timers.schedule(at, Timer::Conn { key, serial });
        self.stats.accepted += 1;
        self.lobby.stats.logins += 1;
        if self.seen_ips.len() < MAX_TRACKED_IPS && self.seen_ips.insert(ip) {
            self.lobby.stats.uniques += 1;
        }
        log::info!("[+] {addr} connected.");
    }

    fn release_ip(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    // ---- servicing a readiness event --------------------------------------

    fn service(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        match &c.state {
            State::Pipe(p) => match p.peer {
                Some(peer) => self.relay_service(key, peer),
                None => self.waiting_pipe_service(key),
            },
            _ => self.stream_service(key),
        }
        self.mark_dirty(key);
    }

    fn mark_dirty(&mut self, key: usize) {
        self.dirty.push(key);
    }

    /// Lobby, new and handshaking connections: read frames and act on them.
    fn stream_service(&mut self, key: usize) {
        for _ in 0..READ_BUDGET {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            if !c.readable || matches!(c.state, State::Closing) {
                return;
            }
            let mut buf = std::mem::take(&mut self.scratch);
            let r = c.stream.read(&mut buf);
            if let Ok(n @ 1..) = r {
                self.on_bytes(key, &buf[..n]);
            }
            self.scratch = buf;
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            match r {
                Ok(0) => {
                    self.close(key, eof_reason(None));
                    return;
                }
                Ok(_) if matches!(c.state, State::Pipe(_)) => {
                    // the handshake just finished: what follows is relay
                    // traffic (FIN included), read by the pipe's own service
                    self.again.push(key);
                    return;
                }
                Ok(_) => {}
                Err(e) if would_block(&e) => {
                    c.readable = false;
                    if let Some(c) = self.conns.get_mut(key) {
                        c.decoder.shrink_if_empty();
                    }
                    return;
                }
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    self.close(key, eof_reason(Some(&e)));
                    return;
                }
            }
        }
        // budget used up with input left: come back next turn
        self.again.push(key);
    }

    fn on_bytes(&mut self, key: usize, data: &[u8]) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if let State::PipeHandshake(hs) = &c.state {
            if hs.uuid.is_some() {
                let (byte, rest) = (data[0], data[1..].to_vec());
                self.finish_pipe_handshake(key, byte, rest);
                return;
            }
        }
        c.decoder.extend(data);
        self.process_frames(key);
    }

    fn process_frames(&mut self, key: usize) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            match &c.state {
                State::New | State::Lobby(_) => {}
                State::PipeHandshake(hs) => {
                    if hs.uuid.is_some() {
                        // the endianness byte follows the uuid frame unframed
                        if c.decoder.buffered() == 0 {
                            return;
                        }
                        let mut rest = c.decoder.take_rest();
                        let byte = rest[0];
                        let early = rest.split_off(1).to_vec();
                        self.finish_pipe_handshake(key, byte, early);
                        return;
                    }
                }
                _ => return,
            }
            match c.decoder.next_frame() {
                Ok(Some(frame)) => self.on_frame(key, frame),
                Ok(None) => return,
                Err(len) => {
                    self.stats.drop_frame_too_big += 1;
                    let why = format!(
                        "frame of {len} bytes exceeds max-frame {}",
                        self.cfg.max_frame
                    );
                    self.refuse(key, &format!("Frame too large ({len} bytes)"), why);
                    return;
                }
            }
        }
    }

    fn on_frame(&mut self, key: usize, frame: Bytes) {
        let now = Instant::now();
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if frame.is_empty() {
            // D14, replicated: the reference reads an empty frame as EOF
            self.close(key, "empty frame".into());
            return;
        }
        match &mut c.state {
            State::New => {
                if is_pipe_frame(&frame) {
                    c.state = State::PipeHandshake(Box::default());
                    let at = now + self.cfg.pipe_timeout;
                    c.deadline = Some(at);
                    let serial = c.serial;
                    self.timers.schedule(at, Timer::Conn { key, serial });
                    c.counted_pipe = true;
                    self.lobby.pipes_open += 1;
                    self.on_pipe_frame(key, &frame);
                    return;
                }
                match parse_lobby_header(&frame) {
                    Err(e) => {
                        self.stats.drop_bad_handshake += 1;
                        self.refuse(key, &e, format!("bad lobby header: {e}"));
                    }
                    Ok(h) => {
                        c.state = State::Lobby(LobbyConn {
                            charset: h.charset,
                            last_seen: now,
                            health_sent: false,
                            owe_users: false,
                            owe_sessions: false,
                            last_refresh: None,
                            refresh_timer: false,
                        });
                        c.deadline = None;
                        if let Some(hc) = self.cfg.healthcheck {
                            self.set_deadline(key, now + hc);
                        }
                        self.lobby.register(key, h.protocol);
                        self.lobby_frame(key, &frame);
                    }
                }
            }
            State::Lobby(l) => {
                l.last_seen = now;
                l.health_sent = false;
                self.lobby_frame(key, &frame);
            }
            State::PipeHandshake(_) => self.on_pipe_frame(key, &frame),
            _ => {}
        }
    }

    fn lobby_frame(&mut self, key: usize, frame: &[u8]) {
        let Some(Conn {
            state: State::Lobby(l),
            ..
        }) = self.conns.get(key)
        else {
            return;
        };
        let text = l.charset.decode(frame);
        self.lobby
            .handle_frame(key, &text, Instant::now(), &mut self.out);
        self.apply_outbox();
    }

    /// Sends `:>>ERROR:{text}` and closes once it is flushed.
    fn refuse(&mut self, key: usize, text: &str, why: String) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        log::warn!("[!] {} refused: {why}", c.addr);
        if !c.is_pipe() {
            let charset = match &c.state {
                State::Lobby(l) => l.charset,
                _ => crate::charset::Charset::UTF8,
            };
            let msg = format!(":>>ERROR:{text}");
            c.out.push(Bytes::from(charset.encode(&msg).into_owned()));
        }
        self.begin_closing(key, why);
    }

    /// Leaves whatever state the connection was in (with its cleanup) and
    /// closes it once its output is flushed.
    fn begin_closing(&mut self, key: usize, why: String) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let old = std::mem::replace(&mut c.state, State::Closing);
        c.close_reason = Some(why);
        c.deadline = None;
        self.leave_state(key, old);
        self.mark_dirty(key);
    }

    // ---- lobby output ---------------------------------------------------------

    /// Turns the lobby's effects into queued bytes and state changes.
    fn apply_outbox(&mut self) {
        while !self.out.is_empty() {
            let mut out = std::mem::take(&mut self.out);
            let mut utf8: Vec<Option<Bytes>> = vec![None; out.texts().len()];
            let mut slow = Vec::new();
            let large = self.lobby.users() >= LARGE_LOBBY;
            for &(to, i) in out.deliveries() {
                let Some(c) = self.conns.get_mut(to) else {
                    continue;
                };
                let State::Lobby(l) = &mut c.state else {
                    continue;
                };
                let charset = l.charset;
                let text = &out.texts()[i as usize];
                if large {
                    // launchers replace the whole list on each of these, so
                    // only the latest matters: owe it instead of queueing
                    let users = text.starts_with(":>>USERS:");
                    if users || text.starts_with(":>>SESSIONS:") {
                        l.owe_users |= users;
                        l.owe_sessions |= !users;
                        self.refresh_due.push(to);
                        continue;
                    }
                }
                let bytes = if charset.is_utf8() {
                    utf8[i as usize]
                        .get_or_insert_with(|| Bytes::copy_from_slice(text.as_bytes()))
                        .clone()
                } else {
                    Bytes::from(charset.encode(text).into_owned())
                };
                c.out.push(bytes);
                if c.out.len() > self.cfg.max_output {
                    slow.push(to);
                }
                self.dirty.push(to);
            }
            for (id, reason) in out.closes().to_vec() {
                let Some(c) = self.conns.get_mut(id) else {
                    continue;
                };
                // the lobby already unregistered it: just close
                c.state = State::Closing;
                c.close_reason = Some(match reason {
                    CloseReason::Started => "game started".into(),
                    CloseReason::Dropped(w) | CloseReason::Refused(w) => w,
                });
                self.dirty.push(id);
            }
            let now = Instant::now();
            for s in out.take_started() {
                let (sid, at) = self.relay.add_session(s, now, self.cfg.session_grace);
                self.timers.schedule(at, Timer::Session(sid));
            }
            out.clear();
            self.out = out;
            slow.sort_unstable();
            slow.dedup();
            for id in slow {
                if self
                    .conns
                    .get(id)
                    .is_some_and(|c| c.out.len() > self.cfg.max_output)
                {
                    self.stats.drop_slow_consumer += 1;
                    self.close(id, "slow consumer: unsent output over the cap".into());
                }
            }
        }
    }

    /// Seconds between two list refreshes to one client in a large lobby.
    /// One per second up to 500 users, then longer in proportion, so the
    /// bytes all refreshes cost per second grow with N, not N².
    fn refresh_interval(&self) -> Duration {
        let n = self.lobby.users() as u64;
        Duration::from_millis((n * 2).max(1000))
    }

    /// Queues the latest USERS/SESSIONS for clients owed one, at most one
    /// per interval each, and only once what they were sent before is
    /// written out (a slow reader gets fewer refreshes, never a backlog).
    fn deliver_refreshes(&mut self) {
        if self.refresh_due.is_empty() {
            return;
        }
        let now = Instant::now();
        let interval = self.refresh_interval();
        let mut due = std::mem::take(&mut self.refresh_due);
        due.sort_unstable();
        due.dedup();
        let (mut users, mut sessions): (Option<String>, Option<String>) = (None, None);
        let (mut users_b, mut sessions_b): (Option<Bytes>, Option<Bytes>) = (None, None);
        for key in due {
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            let serial = c.serial;
            // what was queued before (an earlier list, say) is still unsent
            let busy = c.out.len() >= self.cfg.max_output / 4;
            let State::Lobby(l) = &mut c.state else {
                continue;
            };
            if !(l.owe_users || l.owe_sessions) {
                continue;
            }
            let next = l.last_refresh.map_or(now, |t| t + interval);
            if busy || next > now {
                if !l.refresh_timer {
                    l.refresh_timer = true;
                    let at = next.max(now + Duration::from_millis(100));
                    self.timers.schedule(at, Timer::Refresh { key, serial });
                }
                continue;
            }
            l.last_refresh = Some(now);
            let charset = l.charset;
            let encode = |text: &str, cache: &mut Option<Bytes>| {
                if charset.is_utf8() {
                    cache
                        .get_or_insert_with(|| Bytes::copy_from_slice(text.as_bytes()))
                        .clone()
                } else {
                    Bytes::from(charset.encode(text).into_owned())
                }
            };
            if std::mem::take(&mut l.owe_sessions) {
                let t = sessions.get_or_insert_with(|| self.lobby.sessions_msg());
                c.out.push(encode(t, &mut sessions_b));
            }
            let State::Lobby(l) = &mut c.state else {
                continue;
            };
            if std::mem::take(&mut l.owe_users) {
                let t = users.get_or_insert_with(|| self.lobby.users_msg());
                c.out.push(encode(t, &mut users_b));
            }
            self.dirty.push(key);
        }
    }

    // ---- game pipes -------------------------------------------------------------

    fn on_pipe_frame(&mut self, key: usize, frame: &[u8]) {
        let Some(Conn {
            state: State::PipeHandshake(hs),
            ..
        }) = self.conns.get_mut(key)
        else {
            return;
        };
        if let PipeStep::Reject(why) = hs.push_frame(frame) {
            self.stats.drop_bad_handshake += 1;
            self.close(key, why);
        }
    }

    fn finish_pipe_handshake(&mut self, key: usize, byte: u8, early: Vec<u8>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let State::PipeHandshake(mut hs) = std::mem::replace(&mut c.state, State::Closing) else {
            return;
        };
        hs.push_endian_byte(byte);
        let uuid = hs.uuid.clone().unwrap_or_default();
        let Some(role) = hs.role() else {
            let t = hs.app_type().unwrap_or("").to_string();
            c.state = State::PipeHandshake(hs);
            self.stats.drop_bad_handshake += 1;
            self.close(key, format!("pipe of unknown type ({t}) for {uuid}"));
            return;
        };
        let Some(place) = self.relay.register(&uuid, role, key) else {
            c.state = State::PipeHandshake(hs);
            self.stats.drop_bad_handshake += 1;
            self.close(key, format!("pipe with unknown uuid {uuid} as {role:?}"));
            return;
        };
        c.deadline = None;
        let session = match place {
            Placement::Waiting(s) | Placement::Paired { session: s, .. } => s,
        };
        c.pipe_session = Some(session);
        let mut half = PipeHalf {
            session,
            role,
            peer: None,
            replay: std::mem::take(&mut hs.replay),
            early: RelayBuf::default(),
            read_closed: false,
            write_shut: false,
            bytes_in: 0,
            bytes_out: 0,
            since: Instant::now(),
        };
        log::info!(
            "[S {}] {} pipe {} registered",
            self.relay.session_name(session),
            if role == Role::Server {
                "server"
            } else {
                "client"
            },
            c.addr
        );
        match place {
            Placement::Waiting(_) => {
                if !early.is_empty() {
                    half.early.push(&early);
                }
                c.state = State::Pipe(Box::new(half));
            }
            Placement::Paired { early: e, .. } => {
                half.peer = Some(e);
                c.relay_out.push(&half.replay);
                c.state = State::Pipe(Box::new(half));
                self.pair(e, key, early);
            }
        }
        self.mark_dirty(key);
    }

    /// Completes a pair: each side gets its own handshake back (D26), then
    /// what the other side sent before pairing (D27 fix), then live bytes.
    fn pair(&mut self, e: usize, l: usize, l_early: Vec<u8>) {
        let Some((ec, lc)) = self.conns.get2_mut(e, l) else {
            return;
        };
        let Some(ep) = ec.pipe_mut() else {
            return;
        };
        ep.peer = Some(l);
        let e_early = std::mem::take(&mut ep.early);
        let replay = std::mem::take(&mut ep.replay);
        ec.relay_out.push(&replay);
        if !l_early.is_empty() {
            ec.relay_out.push(&l_early);
        }
        if !e_early.is_empty() {
            lc.relay_out.push(e_early.as_slice());
        }
        if let Some(lp) = lc.pipe_mut() {
            lp.replay = Vec::new();
        }
        log::info!("[+] pipes {} and {} paired", ec.addr, lc.addr);
        self.mark_dirty(e);
        self.relay_service(l, e);
    }

    /// A registered pipe without a partner: keep what it sends (bounded).
    fn waiting_pipe_service(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Some(p) = (match &mut c.state {
            State::Pipe(p) => Some(p),
            _ => None,
        }) else {
            return;
        };
        while c.readable && !p.read_closed && p.early.free() > 0 {
            match p.early.read_from(&mut c.stream) {
                Ok(0) => {
                    self.close(key, "waiting pipe closed by peer".into());
                    return;
                }
                Ok(n) => p.bytes_in += n as u64,
                Err(e) if would_block(&e) => c.readable = false,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    self.close(key, eof_reason(Some(&e)));
                    return;
                }
            }
        }
    }

    /// Moves bytes both ways between a paired `a` and `b`.
    fn relay_service(&mut self, a: usize, b: usize) {
        if let Err((side, e)) = self.pump(a, b).and_then(|()| self.pump(b, a)) {
            let other = if side == a { b } else { a };
            self.close(side, eof_reason(Some(&e)));
            self.abandon_peer(other);
            return;
        }
        self.check_pair_done(a, b);
        self.mark_dirty(a);
        self.mark_dirty(b);
    }

    /// Copies `src` → `dst` until neither side can make progress or the
    /// budget is spent. An error names the side it happened on.
    fn pump(&mut self, src: usize, dst: usize) -> Result<(), (usize, io::Error)> {
        let Some((s, d)) = self.conns.get2_mut(src, dst) else {
            return Ok(());
        };
        let mut moved = 0u64;
        for _ in 0..READ_BUDGET {
            let mut progress = false;
            if d.writable && !d.relay_out.is_empty() {
                match d.relay_out.write_to(&mut d.stream) {
                    Ok(n) => {
                        progress = true;
                        if let Some(p) = d.pipe_mut() {
                            p.bytes_out += n as u64;
                        }
                    }
                    Err(e) if would_block(&e) => d.writable = false,
                    Err(e) if interrupted(&e) => progress = true,
                    Err(e) => return Err((dst, e)),
                }
            }
            let State::Pipe(sp) = &mut s.state else {
                break;
            };
            if s.readable && !sp.read_closed && d.relay_out.free() > 0 {
                match d.relay_out.read_from(&mut s.stream) {
                    Ok(0) => {
                        sp.read_closed = true;
                        progress = true;
                        // a player whose game closed is no longer "playing",
                        // even while its socket waits for the other side
                        if std::mem::take(&mut s.counted_pipe) {
                            self.lobby.pipes_open = self.lobby.pipes_open.saturating_sub(1);
                        }
                    }
                    Ok(n) => {
                        sp.bytes_in += n as u64;
                        moved += n as u64;
                        progress = true;
                    }
                    Err(e) if would_block(&e) => s.readable = false,
                    Err(e) if interrupted(&e) => progress = true,
                    Err(e) => return Err((src, e)),
                }
            }
            if !progress {
                break;
            }
        }
        self.stats.relayed_bytes += moved;
        // the source said FIN and all it sent is delivered: pass the FIN on
        let read_closed = s.pipe().is_some_and(|p| p.read_closed);
        if read_closed && d.relay_out.is_empty() {
            if let Some(dp) = d.pipe_mut() {
                if !dp.write_shut {
                    dp.write_shut = true;
                    if let Err(e) = d.stream.shutdown(Shutdown::Write) {
                        if e.kind() != io::ErrorKind::NotConnected {
                            return Err((dst, e));
                        }
                    }
                }
            }
        }
        // the budget ran out with work left in this direction: edge-
        // triggered readiness will not be reported again, so come back
        let can_read =
            s.readable && s.pipe().is_some_and(|p| !p.read_closed) && d.relay_out.free() > 0;
        let can_write = d.writable && !d.relay_out.is_empty();
        let more = can_read || can_write;
        if more {
            self.again.push(src);
        }
        Ok(())
    }

    /// Both directions finished (FIN each way, everything delivered).
    fn check_pair_done(&mut self, a: usize, b: usize) {
        let done = |c: Option<&Conn>| {
            c.and_then(|c| c.pipe())
                .is_some_and(|p| p.read_closed && p.write_shut)
        };
        if done(self.conns.get(a)) && done(self.conns.get(b)) {
            self.close(a, "game pipe finished".into());
            self.close(b, "game pipe finished".into());
        }
    }

    /// The partner of `key` is gone: flush what is buffered for it, then
    /// close it (D28 propagate: the host's vcmiserver sees the player leave).
    fn abandon_peer(&mut self, key: usize) {
        if self.conns.contains(key) {
            self.begin_closing(key, "partner pipe closed".into());
        }
    }

    // ---- closing ------------------------------------------------------------------

    /// Cleanup for the state a connection leaves (lobby, pipe accounting).
    fn leave_state(&mut self, key: usize, old: State) {
        match old {
            State::Lobby(_) => {
                self.lobby.disconnect(key, &mut self.out);
                self.apply_outbox();
            }
            State::Pipe(p) => {
                if let Some(peer) = p.peer {
                    if let Some(pc) = self.conns.get_mut(peer) {
                        if let Some(pp) = pc.pipe_mut() {
                            pp.peer = None;
                        }
                    }
                    self.abandon_peer(peer);
                }
                log::info!(
                    "[S {}] pipe ended after {:.1}s: {} bytes in, {} bytes out",
                    self.relay.session_name(p.session),
                    p.since.elapsed().as_secs_f64(),
                    p.bytes_in,
                    p.bytes_out
                );
            }
            _ => {}
        }
    }

    /// Closes now, without flushing (errors, EOF, drops).
    fn close(&mut self, key: usize, why: String) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let old = std::mem::replace(&mut c.state, State::Closing);
        if c.close_reason.is_none() {
            c.close_reason = Some(why);
        }
        self.leave_state(key, old);
        self.finish_close(key);
    }

    /// Removes the connection for good. Its write side is shut first so what
    /// was flushed arrives before the FIN, and unread input is drained so the
    /// kernel sends FIN rather than RST.
    fn finish_close(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        let mut c = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(Shutdown::Write);
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match c.stream.read(&mut sink) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
        if c.counted_pipe {
            self.lobby.pipes_open = self.lobby.pipes_open.saturating_sub(1);
        }
        if let Some(sid) = c.pipe_session {
            self.pipe_released(sid, key);
        }
        log::info!(
            "[-] {} disconnected: {}",
            c.addr,
            c.close_reason.as_deref().unwrap_or("closed")
        );
        if self.cfg.max_per_ip > 0 {
            self.release_ip(c.addr.ip());
        }
        self.resume_accept();
    }

    fn pipe_released(&mut self, sid: SessionId, key: usize) {
        if let Some(at) = self
            .relay
            .pipe_closed(sid, key, Instant::now(), self.cfg.session_grace)
        {
            self.timers.schedule(at, Timer::Session(sid));
        }
    }

    // ---- timers -------------------------------------------------------------------

    fn set_deadline(&mut self, key: usize, at: Instant) {
        if let Some(c) = self.conns.get_mut(key) {
            c.deadline = Some(at);
            let serial = c.serial;
            self.timers.schedule(at, Timer::Conn { key, serial });
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some((at, t)) = self.timers.pop_due(now) {
            match t {
                Timer::Session(sid) => {
                    self.relay.expire(sid, now);
                }
                Timer::Stats => {
                    self.log_stats();
                    if let Some(every) = self.cfg.stats_interval {
                        self.timers.schedule(now + every, Timer::Stats);
                    }
                }
                Timer::AcceptRetry => self.resume_accept(),
                Timer::Refresh { key, serial } => {
                    if let Some(c) = self.conns.get_mut(key) {
                        if let (true, State::Lobby(l)) = (c.serial == serial, &mut c.state) {
                            l.refresh_timer = false;
                            self.refresh_due.push(key);
                        }
                    }
                }
                Timer::Shutdown => {
                    log::warn!("[!] shutdown grace over: exiting with games still running");
                    self.exit = true;
                }
                Timer::Conn { key, serial } => {
                    let Some(c) = self.conns.get(key) else {
                        continue;
                    };
                    if c.serial != serial || c.deadline != Some(at) {
                        continue; // superseded
                    }
                    self.conn_deadline(key, now);
                }
            }
        }
    }

    fn conn_deadline(&mut self, key: usize, now: Instant) {
        let asked = self.lobby.is_authed(key) && self.lobby.protocol(key) >= Some(4);
        let period = self.cfg.healthcheck;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let l = match &mut c.state {
            State::New => {
                self.stats.drop_timeout += 1;
                return self.close(key, "no complete first frame in time".into());
            }
            State::PipeHandshake(_) => {
                self.stats.drop_timeout += 1;
                return self.close(key, "pipe handshake timed out".into());
            }
            State::Lobby(l) => l,
            _ => return,
        };
        let Some(period) = period else {
            return;
        };
        if !asked {
            // VCMI 1.1 cannot answer HEALTH; TCP keepalive covers it
            return self.set_deadline(key, now + period);
        }
        let silent = now.saturating_duration_since(l.last_seen);
        if l.health_sent && silent >= 2 * period {
            self.stats.drop_timeout += 1;
            self.close(
                key,
                format!("no answer to healthcheck for {}s", silent.as_secs()),
            );
        } else if !l.health_sent && silent >= period {
            l.health_sent = true;
            let at = l.last_seen + 2 * period;
            c.out.push(Bytes::from_static(b":>>HEALTH:"));
            self.set_deadline(key, at);
            self.mark_dirty(key);
        } else {
            let at = l.last_seen + if l.health_sent { 2 * period } else { period };
            self.set_deadline(key, at);
        }
    }

    // ---- flushing and interest ---------------------------------------------------

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &key in &dirty {
            self.flush(key);
        }
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty; // keep the allocation
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        // paired pipes write in pump(); here only lobby queues and pipes
        // being closed after their partner left
        let paired = c.pipe().is_some_and(|p| p.peer.is_some());
        let mut failed = None;
        while !paired && c.writable && c.has_output() {
            let lobby = !c.out.is_empty();
            let r = if lobby {
                c.out.write_to(&mut c.stream)
            } else {
                c.relay_out.write_to(&mut c.stream)
            };
            match r {
                Ok(n) if lobby => self.stats.lobby_bytes_out += n as u64,
                Ok(_) => {}
                Err(e) if would_block(&e) => c.writable = false,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            return self.close(key, eof_reason(Some(&e)));
        }
        if matches!(c.state, State::Closing) && !c.has_output() {
            return self.finish_close(key);
        }
        self.update_interest(key);
    }

    /// Registers exactly what the state wants: READABLE unless paused or
    /// closing, WRITABLE only with output pending.
    fn update_interest(&mut self, key: usize) {
        let wants_read = match self.conns.get(key).map(|c| &c.state) {
            None => return,
            Some(State::Closing) => false,
            Some(State::Pipe(p)) => {
                !p.read_closed
                    && match p.peer {
                        None => p.early.free() > 0,
                        Some(peer) => self
                            .conns
                            .get(peer)
                            .is_some_and(|pc| pc.relay_out.is_empty() || pc.relay_out.can_resume()),
                    }
            }
            Some(_) => true,
        };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let want = match (wants_read, c.has_output()) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        if want == c.interest {
            return;
        }
        let r = match (c.interest, want) {
            (_, None) => self.poll.registry().deregister(&mut c.stream),
            (None, Some(i)) => self.poll.registry().register(&mut c.stream, Token(key), i),
            (Some(_), Some(i)) => self
                .poll
                .registry()
                .reregister(&mut c.stream, Token(key), i),
        };
        c.interest = want;
        if let Err(e) = r {
            self.close(key, format!("poll registration failed: {e}"));
        } else if wants_read && c.readable {
            // resumed after a pause with input already waiting
            self.again.push(key);
        }
    }
}

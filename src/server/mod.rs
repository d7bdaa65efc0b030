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
use crate::lobby::{CloseReason, List, Lobby, LobbyConfig, Outbox, ServerCounters};
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
/// How long a connection being closed may take to accept its last output.
const CLOSE_LINGER: Duration = Duration::from_secs(10);

mod deadlines;
mod frames;
mod pipes;

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
    /// Connection counts the lobby reports (welcome line, ROOT).
    counters: ServerCounters,
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
            counters: ServerCounters::default(),
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
                // running games drain; pipes that can no longer pair do not
                State::Pipe(p) if p.peer.is_some() => continue,
                State::Lobby(l) if authed => {
                    let bytes = l.charset.encode(notice).into_owned();
                    c.out.push(Bytes::from(bytes));
                }
                _ => {}
            }
            // no lobby cleanup: nobody is left to be told about it
            c.state = State::Closing;
            c.deadline = None; // flush() sets the closing linger
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
            self.counters.uniques,
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
        self.counters.logins += 1;
        if self.seen_ips.len() < MAX_TRACKED_IPS && self.seen_ips.insert(ip) {
            self.counters.uniques += 1;
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
            self.counters.pipes_open = self.counters.pipes_open.saturating_sub(1);
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
        if matches!(c.state, State::Lobby(_)) && c.out.len() > self.cfg.max_output {
            // it could not take this turn's output: a client that does not
            // read is dropped rather than buffered for without bound
            self.stats.drop_slow_consumer += 1;
            return self.close(key, "slow consumer: unsent output over the cap".into());
        }
        if matches!(c.state, State::Closing) {
            if !c.has_output() {
                return self.finish_close(key);
            }
            if c.deadline.is_none() {
                // a closing peer that never takes its last output must not
                // hold its socket for ever
                self.set_deadline(key, Instant::now() + CLOSE_LINGER);
            }
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

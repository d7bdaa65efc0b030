//! The event loop: one `mio::Poll`, one thread, every connection a slab
//! entry. It turns readiness into reads and writes, hands frames to the glue
//! of the connection's protocol kind, and fires timers.
//!
//! Files: this one holds the loop, signals and shutdown; shared glue is in
//! `accept` (accept gate, per-IP cap), `dispatch` (reading frames, the first
//! frame's verdict, routing), `close` (the one close path), `output` (flush,
//! interest) and `deadlines` (timers); each protocol kind has its own glue:
//! `legacy_lobby` (launchers) and `legacy_pipe` (game pipes); the JSON lobby
//! (VCMI 1.5+) has `json_lobby` and its game relay `json_relay`. Operators'
//! features: `operators` (listeners, bans, MOTD, SIGHUP reload, the
//! metrics snapshot), `admin` (admin HTTP connections) and `proxy_header`
//! (PROXY protocol on the game port).
//!
//! Each loop turn: poll (timeout = nearest deadline), service the sockets
//! that reported readiness, service the ones left with unread input by the
//! per-event read budget, fire due timers, then flush every connection that
//! got output during the turn and register its interest from its state.

use crate::config::Config;
use crate::conn::{interrupted, would_block, Conn, State};
use crate::legacy::lobby::{Lobby, LobbyConfig, Outbox, ServerCounters};
use crate::legacy::relay::Relay;
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

use close::Cleanup;

mod accept;
mod admin;
mod close;
mod deadlines;
mod dispatch;
mod json_lobby;
mod json_relay;
mod legacy_lobby;
mod legacy_pipe;
mod operators;
mod output;
mod proxy_header;
mod shedding;

/// Counters for operators, beyond the lobby's ROOT statistics. The ones
/// ROOT also prints (connections, uniques, pipes open) are kept in
/// [`ServerCounters`] and handed to the lobby with each frame.
#[derive(Debug, Default, Clone)]
struct ServerStats {
    accepted: u64,
    relayed_bytes: u64,
    /// Bytes of lobby messages written to sockets.
    lobby_bytes_out: u64,
    drop_frame_too_big: u64,
    drop_slow_consumer: u64,
    drop_timeout: u64,
    drop_bad_handshake: u64,
    drop_per_ip: u64,
    accept_pauses: u64,
}

pub struct Server {
    poll: Poll,
    /// Game listeners, one per `--bind` (tokens: `operators::game_token`).
    listeners: Vec<TcpListener>,
    local: SocketAddr,
    conns: Slab<Conn>,
    /// The rules of the legacy kinds (`legacy_lobby`, `legacy_pipe`).
    legacy: LegacyRules,
    /// The JSON lobby kind's rules (`json_lobby`, `json_relay`).
    json: json_lobby::JsonRules,
    /// Connection counts the lobby reports (welcome line, ROOT).
    counters: ServerCounters,
    timers: Timers,
    cfg: Config,
    /// Connections with output or a state change to act on this turn.
    dirty: Vec<usize>,
    /// Connections with unread input left by the read budget.
    again: Vec<usize>,
    scratch: Vec<u8>,
    /// The JSON game relay's read buffer, `RELAY_BUF` once the first pair
    /// runs: a read may fill the peer's whole relay buffer in one call, as
    /// the legacy pump's direct reads do (16 KiB reads cost 16× the calls).
    relay_scratch: Vec<u8>,
    next_serial: u64,
    seen_ips: HashSet<IpAddr>,
    per_ip: HashMap<IpAddr, u32>,
    max_connections: usize,
    accept_paused: bool,
    signals: Option<Signals>,
    /// Set by the first SIGTERM/SIGINT: stop accepting, let games drain.
    shutting_down: bool,
    exit: bool,
    stats: ServerStats,
    /// What peers make the server hold (`--memory-budget`).
    budget: crate::budget::Budget,
    /// Admin listeners, bans, MOTD, metrics (`operators`).
    ops: operators::Operators,
}

/// The legacy kinds' rules, free of sockets: the lobby, the started sessions
/// their game pipes pair in, and the glue's work in progress for them.
struct LegacyRules {
    lobby: Lobby,
    relay: Relay,
    /// The lobby's effects of the current call, turned into bytes by
    /// `legacy_lobby::apply_outbox`.
    out: Outbox,
    /// Connections owed a coalesced list refresh (large lobbies).
    refresh_due: Vec<usize>,
    /// The pending large-lobby refresh round.
    round: legacy_lobby::RefreshRound,
    /// Address of the client whose frame the lobby is handling: a session
    /// it starts counts against that address's cap.
    frame_from: Option<IpAddr>,
}

/// Why a connection ends, for the log and the counters.
fn eof_reason(e: Option<&io::Error>) -> String {
    match e {
        None => "closed by peer".into(),
        Some(e) => format!("connection error: {e}"),
    }
}

impl Server {
    /// Binds the listeners; `store` holds the JSON lobby's accounts, chat
    /// and rooms (its stale state is cleaned here, §1.12). Nothing is
    /// accepted before [`Server::run`].
    pub fn bind(cfg: Config, store: Box<dyn crate::json::store::LobbyStore>) -> io::Result<Server> {
        let poll = Poll::new()?;
        let cfg_budget = cfg.memory_budget;
        let (listeners, admin) = operators::bind_all(&cfg, &poll)?;
        let local = listeners[0].local_addr()?;
        let (ops, motd) = operators::Operators::new(&cfg, admin)?;
        let mut lobby = Lobby::new(LobbyConfig {
            capacity: cfg.capacity,
            flood_rate: cfg.flood_rate,
            flood_burst: cfg.flood_burst,
        });
        lobby.bans = ops.bans.clone();
        lobby.motd = motd;
        let mut json = json_lobby::JsonRules::new(store, &cfg);
        json.lobby.bans = ops.bans.clone();
        let max_connections = cfg.max_connections.unwrap_or_else(|| {
            // keep room for the listener, poll, log files and accept slack
            let n = crate::sys::raise_nofile_limit() as usize;
            n.saturating_sub((n / 20).max(32)).max(16)
        });
        Ok(Server {
            poll,
            listeners,
            local,
            conns: Slab::new(),
            counters: ServerCounters::default(),
            legacy: LegacyRules {
                lobby,
                relay: Relay::new(),
                out: Outbox::new(),
                refresh_due: Vec::new(),
                round: Default::default(),
                frame_from: None,
            },
            json,
            timers: Timers::new(),
            cfg,
            dirty: Vec::new(),
            again: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            relay_scratch: Vec::new(),
            next_serial: 0,
            seen_ips: HashSet::new(),
            per_ip: HashMap::new(),
            max_connections,
            accept_paused: false,
            signals: None,
            shutting_down: false,
            exit: false,
            stats: ServerStats::default(),
            budget: crate::budget::Budget::new(cfg_budget),
            ops,
        })
    }

    /// Handles SIGTERM/SIGINT (graceful stop) and SIGHUP (reopen logs,
    /// re-read the ban and MOTD files) inside the loop.
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

    /// Runs until an unrecoverable poll error.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        if let Some(every) = self.cfg.stats_interval {
            self.timers.schedule(Instant::now() + every, Timer::Stats);
        }
        self.timers.schedule(
            Instant::now() + self.cfg.json_heartbeat,
            Timer::JsonHeartbeat,
        );
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
                if let Some(i) = operators::game_listener_of(ev.token()) {
                    self.accept_all(i);
                    continue;
                }
                if let Some(i) = operators::admin_listener_of(ev.token()) {
                    self.admin_accept(i);
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
                if ev.is_read_closed() || ev.is_error() {
                    match &c.state {
                        State::Pipe(_) => self.pipe_hangup(key, ev.is_error()),
                        State::Json(j) if j.relay.is_some() => {
                            self.json_relay_hangup(key, ev.is_error())
                        }
                        _ => {}
                    }
                }
                self.service(key);
            }
            for key in std::mem::take(&mut self.again) {
                self.service(key);
            }
            self.fire_timers();
            self.deliver_refreshes();
            self.flush_dirty();
            self.shed_over_budget();
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
                SIGHUP => {
                    crate::logging::reopen();
                    self.reload_operator_files();
                }
                _ if self.shutting_down => {
                    log::warn!("[!] second stop signal: exiting now");
                    self.exit = true;
                }
                _ => self.begin_shutdown(),
            }
        }
    }

    /// First SIGTERM/SIGINT: stop accepting, tell the lobby, close every
    /// connection but running games (paired legacy pipes and JSON proxy
    /// pairs), which get `shutdown_grace` to end.
    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        let grace = self.cfg.shutdown_grace;
        log::warn!(
            "[!] stop requested: no new connections, games may run {}s more",
            grace.as_secs()
        );
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(l);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            // running games drain; pipes that can no longer pair do not
            if self.drains_at_shutdown(key) {
                continue;
            }
            let lobby = self
                .conns
                .get(key)
                .is_some_and(|c| matches!(c.state, State::Lobby(_)));
            let cleanup = if lobby {
                self.lobby_shutdown_notice(key);
                // nobody is left to be told about a client leaving
                Cleanup::AlreadyDone
            } else {
                // a pipe still leaves its session and the playing count
                Cleanup::Run
            };
            self.begin_closing(key, "server shutting down".into(), cleanup);
        }
        self.timers
            .schedule(Instant::now() + grace, Timer::Shutdown);
    }

    /// A running game's connection, relayed through the shutdown grace: a
    /// paired legacy pipe, or a half of a JSON proxy pair (its lobby side,
    /// the accounts and the match server's control connection, is closed;
    /// the rules never close a pair for that, only for its own halves).
    fn drains_at_shutdown(&self, key: usize) -> bool {
        self.is_running_game(key) || self.is_json_relayed(key)
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
        let ls = &self.legacy.lobby.stats;
        log::info!(
            "[stats] connections {} (lobby {lobby}, pipes {pipes}, other {other}), users {}, rooms {}, \
             sessions {}, relayed {} bytes, lobby sent {} bytes, accepted {}, uniques {}, users ever {}, rooms ever {}, \
             starts {}, drops: frame-too-big {}, slow-consumer {}, timeout {}, flood {}, \
             bad-handshake {}, per-ip {}, capacity {}, accept pauses {}, memory-shed {}, \
             sessions-refused {}, held by peers {} KiB, rss {} KiB",
            self.conns.len(),
            self.legacy.lobby.users(),
            self.legacy.lobby.rooms(),
            self.legacy.relay.sessions(),
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
            self.budget.sheds,
            ls.start_refusals,
            self.budget.total() / 1024,
            crate::sys::rss_bytes().unwrap_or(0) / 1024,
        );
        self.log_json_stats();
    }

    // ---- servicing a readiness event --------------------------------------

    fn service(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        match &c.state {
            State::Pipe(_) => self.pipe_service(key),
            State::Admin(_) => self.admin_service(key),
            State::Json(j) if j.relay.is_some() => self.json_relay_service(key),
            State::New
            | State::Lobby(_)
            | State::PipeHandshake(_)
            | State::Json(_)
            | State::Closing => self.stream_service(key),
        }
        self.mark_dirty(key);
    }

    fn mark_dirty(&mut self, key: usize) {
        self.dirty.push(key);
    }
}

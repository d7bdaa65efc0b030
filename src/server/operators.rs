//! Operator features in the loop (issue 10): the listeners (several game
//! ports, dual-stack `::`, the admin ports), bans at accept, the ban and
//! MOTD files and their SIGHUP reload, and the snapshot `/metrics` and
//! `/api/v1/status` are built from. The rules are in `crate::ops`; the
//! admin connections are in `admin`, PROXY headers in `proxy_header`.

use super::*;
use crate::json::sqlite::SqliteStore;
use crate::ops::bans::BanList;
use crate::ops::lobby_api::ApiCache;
use crate::ops::metrics::SessionDurations;
use crate::ops::motd::Motd;
use crate::ops::status::{Counters, StatusSnapshot};
use std::collections::BTreeMap;

/// Game listeners take the tokens just below `SIGNALS`, admin listeners
/// the ones below `ADMIN_TOKENS_FROM` (slab keys never get this high).
const GAME_TOKENS_FROM: usize = usize::MAX - 2;
const ADMIN_TOKENS_FROM: usize = usize::MAX - 1024;
/// Most listeners of each kind (far more than anybody binds).
pub(super) const MAX_LISTENERS: usize = 512;

pub(super) fn game_token(i: usize) -> Token {
    Token(GAME_TOKENS_FROM - i)
}

pub(super) fn admin_token(i: usize) -> Token {
    Token(ADMIN_TOKENS_FROM - i)
}

/// Which game listener (index) a token is, if any.
pub(super) fn game_listener_of(token: Token) -> Option<usize> {
    let i = GAME_TOKENS_FROM.checked_sub(token.0)?;
    (i < MAX_LISTENERS).then_some(i)
}

pub(super) fn admin_listener_of(token: Token) -> Option<usize> {
    let i = ADMIN_TOKENS_FROM.checked_sub(token.0)?;
    (i < MAX_LISTENERS).then_some(i)
}

/// A non-blocking listening socket. An IPv6 one is dual-stack (IPv4
/// clients arrive as v4-mapped addresses) unless `v6_only`: then an IPv4
/// socket on the same port can coexist.
pub(super) fn bind_listener(addr: SocketAddr, v6_only: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(v6_only)?;
    }
    // as mio's own bind: a restarted server must not wait for TIME_WAIT
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Binds every `--bind` address on one port (the first one's when port 0
/// picks it) and every `--admin-listen` address.
pub(super) fn bind_all(
    cfg: &Config,
    poll: &Poll,
) -> io::Result<(Vec<TcpListener>, Vec<TcpListener>)> {
    let ips = if cfg.binds.is_empty() {
        vec![cfg.bind]
    } else {
        cfg.binds.clone()
    };
    let v6_only = ips.iter().any(IpAddr::is_ipv4);
    let mut port = cfg.port;
    let mut game = Vec::new();
    for (i, ip) in ips.iter().take(MAX_LISTENERS).enumerate() {
        let mut l = bind_listener(SocketAddr::new(*ip, port), v6_only)?;
        port = l.local_addr()?.port();
        poll.registry()
            .register(&mut l, game_token(i), Interest::READABLE)?;
        game.push(l);
    }
    let v6_only = cfg.admin_listen.iter().any(SocketAddr::is_ipv4);
    let mut admin = Vec::new();
    for (i, addr) in cfg.admin_listen.iter().take(MAX_LISTENERS).enumerate() {
        let mut l = bind_listener(*addr, v6_only)
            .map_err(|e| io::Error::new(e.kind(), format!("admin-listen {addr}: {e}")))?;
        poll.registry()
            .register(&mut l, admin_token(i), Interest::READABLE)?;
        admin.push(l);
    }
    Ok((game, admin))
}

/// The operators' state of the loop.
pub(super) struct Operators {
    /// Admin listeners; they keep accepting while the server shuts down
    /// (`/healthz` then says 503).
    pub admin: Vec<TcpListener>,
    pub bans: BanList,
    pub durations: SessionDurations,
    pub started: Instant,
    pub started_unix: i64,
    pub drop_banned: u64,
    pub drop_proxy_header: u64,
    pub pipes_paired: u64,
    pub sessions_created: u64,
    pub sessions_expired: u64,
    /// The lobby database for the HTTP API, opened at the first API
    /// request (a second connection beside the JSON lobby's; WAL).
    pub api_store: Option<SqliteStore>,
    pub api_cache: ApiCache,
    /// `lobbyStartTime`, formatted once.
    pub api_start_time: Option<String>,
}

impl Operators {
    /// Reads the ban and MOTD files; at start a bad file is an error.
    pub fn new(cfg: &Config, admin: Vec<TcpListener>) -> io::Result<(Operators, Motd)> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        let bans = match &cfg.ban_file {
            Some(path) => {
                BanList::load(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?
            }
            None => BanList::default(),
        };
        let motd = match &cfg.motd_file {
            Some(path) => {
                Motd::load(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?
            }
            None => Motd::default(),
        };
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let ops = Operators {
            admin,
            bans,
            durations: SessionDurations::new(),
            started: Instant::now(),
            started_unix,
            drop_banned: 0,
            drop_proxy_header: 0,
            pipes_paired: 0,
            sessions_created: 0,
            sessions_expired: 0,
            api_store: None,
            api_cache: ApiCache::default(),
            api_start_time: None,
        };
        Ok((ops, motd))
    }
}

impl Server {
    /// The admin listeners' addresses (their ports, when 0 was asked).
    pub fn admin_addrs(&self) -> Vec<SocketAddr> {
        self.ops
            .admin
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Every game listener's address.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Refuses a banned address at accept (or after its PROXY header).
    pub(super) fn is_banned(&mut self, addr: SocketAddr) -> bool {
        if !self.ops.bans.is_banned_ip(addr.ip()) {
            return false;
        }
        self.ops.drop_banned += 1;
        log::info!("[!] {addr} refused: banned address");
        true
    }

    /// SIGHUP: re-reads the ban and MOTD files; a file that fails keeps the
    /// previous list (the error names the line).
    pub(super) fn reload_operator_files(&mut self) {
        if let Some(path) = &self.cfg.ban_file {
            match BanList::load(path) {
                Ok(bans) => {
                    log::info!(
                        "[!] ban list {} reloaded: {} entries",
                        path.display(),
                        bans.len()
                    );
                    self.legacy.lobby.bans = bans.clone();
                    self.json.lobby.bans = bans.clone();
                    self.ops.bans = bans;
                }
                Err(e) => log::error!(
                    "[!] ban list {}: {e}; keeping the previous list",
                    path.display()
                ),
            }
        }
        if let Some(path) = &self.cfg.motd_file {
            match Motd::load(path) {
                Ok(motd) => {
                    log::info!(
                        "[!] message of the day {} reloaded: {} lines",
                        path.display(),
                        motd.lines().len()
                    );
                    self.legacy.lobby.motd = motd;
                }
                Err(e) => log::error!(
                    "[!] message of the day {}: {e}; keeping the previous one",
                    path.display()
                ),
            }
        }
    }

    /// The figures of the `[stats]` line and more, for the admin endpoint.
    pub(super) fn status_snapshot(&self) -> StatusSnapshot {
        let mut kinds: BTreeMap<&str, u64> = ["lobby", "pipe", "json", "admin", "other"]
            .into_iter()
            .map(|k| (k, 0))
            .collect();
        for (_, c) in self.conns.iter() {
            let kind = match c.state {
                State::Lobby(_) => "lobby",
                State::Pipe(_) | State::PipeHandshake(_) => "pipe",
                State::Admin(_) => "admin",
                State::Json(_) => "json",
                _ => "other",
            };
            *kinds.entry(kind).or_insert(0) += 1;
        }
        let json = self.json_status();
        let st = &self.stats;
        let ls = &self.legacy.lobby.stats;
        let drops = [
            ("frame-too-big", st.drop_frame_too_big),
            ("slow-consumer", st.drop_slow_consumer),
            ("timeout", st.drop_timeout),
            ("flood", ls.flood_drops),
            ("bad-handshake", st.drop_bad_handshake),
            ("per-ip", st.drop_per_ip),
            ("capacity", ls.capacity_refusals),
            ("banned", self.ops.drop_banned + ls.banned_names),
            ("proxy-header", self.ops.drop_proxy_header),
            ("memory-budget", self.budget.sheds),
        ];
        StatusSnapshot {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime: self.ops.started.elapsed(),
            accepting: !self.shutting_down,
            users_by_protocol: self
                .legacy
                .lobby
                .users_by_protocol()
                .into_iter()
                .map(|(v, n)| (format!("legacy-{v}"), n))
                .chain([("json".to_string(), json.accounts_online)])
                .collect(),
            rooms: self.legacy.lobby.room_summaries(),
            sessions_in_play: self.legacy.relay.sessions() as u64,
            counters: Counters {
                connections_by_kind: kinds.into_iter().map(|(k, n)| (k.into(), n)).collect(),
                rss_bytes: crate::sys::rss_bytes().unwrap_or(0),
                accepted: st.accepted,
                unique_addresses: self.counters.uniques,
                logins: self.counters.logins,
                distinct_users: ls.users.len() as u64,
                rooms_created: ls.rooms,
                starts: ls.sessions,
                relay_sessions_created: self.ops.sessions_created,
                relay_sessions_expired: self.ops.sessions_expired,
                pipes_paired: self.ops.pipes_paired,
                relayed_bytes: st.relayed_bytes,
                lobby_sent_bytes: st.lobby_bytes_out,
                drops_by_reason: drops.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
                accept_pauses: st.accept_pauses,
            },
            json,
        }
    }
}

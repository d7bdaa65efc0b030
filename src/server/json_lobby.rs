//! JSON lobby connections (VCMI 1.5+, LOBBY-JSON.md §1): the first frame's
//! verdict into `State::Json`, each frame through `parse_request` into the
//! rules (`json::lobby`), the rules' outbox into framed bytes, closes and
//! proxy pairs, our heartbeat round (one timer for every JSON connection),
//! the login timeout, and `on_disconnect` exactly once per connection (from
//! `close::leave_state`, however it ended).
//!
//! The relay of a paired proxy connection is `json_relay`.

use super::close::Cleanup;
use super::*;
use crate::json::conn::{JsonConn, RelayHalf};
use crate::json::lobby::{Action, CloseReason, JsonLobby, JsonLobbyConfig, JsonOutbox, Now};
use crate::json::parse::parse_request;
use crate::json::request::Request;
use crate::json::store::{LobbyStore, RoomStatus};
use crate::json::timed_store::{LatencyHistogram, StoreClock, TimedStore};
use crate::ops::status::{JsonCounters, JsonRoomStatus, JsonStatus};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

/// Our own heartbeat: an empty frame (§1.1).
const HEARTBEAT: Bytes = Bytes::from_static(&[0, 0, 0, 0]);

/// The JSON kind's rules and the glue's work in progress for them.
pub(super) struct JsonRules {
    pub(super) lobby: JsonLobby,
    /// The rules' effects of the current call (`apply_json_outbox`).
    out: JsonOutbox,
    /// Origin of the rules' monotonic milliseconds.
    origin: Instant,
    /// Store time of the current request (the store is wrapped in a
    /// `TimedStore` feeding it).
    store_clock: Rc<StoreClock>,
    /// Store time per sendChatMessage, and per request of any type.
    pub(super) chat_store: LatencyHistogram,
    pub(super) request_store: LatencyHistogram,
    /// Frames passed through proxy pairs, and heartbeats they dropped.
    pub(super) relayed_frames: u64,
    pub(super) relayed_heartbeats: u64,
}

impl JsonRules {
    /// Builds the rules on `store` (cleaning its stale state, §1.12).
    pub(super) fn new(store: Box<dyn LobbyStore>, cfg: &Config) -> JsonRules {
        let store_clock = Rc::new(StoreClock::default());
        let timed = TimedStore::new(store, Rc::clone(&store_clock));
        let lobby_cfg = JsonLobbyConfig {
            // the legacy flood settings apply to JSON chat too (issue 12)
            chat_rate: cfg.flood_rate,
            chat_burst: cfg.flood_burst,
            ..JsonLobbyConfig::default()
        };
        let lobby = JsonLobby::new(lobby_cfg, Box::new(timed));
        store_clock.take(); // start-up reads are not per-message time
        JsonRules {
            lobby,
            out: JsonOutbox::new(),
            origin: Instant::now(),
            store_clock,
            chat_store: LatencyHistogram::default(),
            request_store: LatencyHistogram::default(),
            relayed_frames: 0,
            relayed_heartbeats: 0,
        }
    }

    fn now(&self) -> Now {
        Now::system(self.origin)
    }
}

/// A connection's JSON state, if it is one.
pub(super) fn json_conn(c: &Conn) -> Option<&JsonConn> {
    match &c.state {
        State::Json(j) => Some(j),
        _ => None,
    }
}

pub(super) fn json_conn_mut(c: &mut Conn) -> Option<&mut JsonConn> {
    match &mut c.state {
        State::Json(j) => Some(j),
        _ => None,
    }
}

fn close_text(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Unauthenticated => "JSON: invalid or unauthorised message before login",
        CloseReason::Evicted => "JSON: account logged in on another connection",
        CloseReason::ProxyLoginFailed => "JSON: clientProxyLogin refused",
        CloseReason::ProxyPeerGone => "JSON: the other half of the game proxy closed",
        CloseReason::Banned => "JSON: banned name",
    }
}

impl Server {
    /// The first frame starts with `{`: a VCMI 1.5+ peer. It has until the
    /// login timeout to log in (clientLogin, serverLogin or a proxy login).
    pub(super) fn start_json(&mut self, key: usize, frame: &[u8]) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.state = State::Json(Box::default());
        c.decoder.set_max_frame(self.cfg.max_frame_json);
        log::info!("[+] {} JSON lobby peer", c.addr);
        // `--login-timeout`, as for a launcher; logging in clears it
        self.set_deadline(key, Instant::now() + self.cfg.login_timeout);
        self.json_frame(key, frame);
    }

    /// One non-empty frame of a JSON connection in the lobby.
    pub(super) fn json_frame(&mut self, key: usize, frame: &[u8]) {
        match self.conns.get_mut(key).and_then(json_conn_mut) {
            Some(j) if j.relay.is_none() => j.frames_in += 1,
            _ => return,
        }
        let parsed = parse_request(frame);
        let chat = matches!(parsed, Ok(Request::SendChatMessage { .. }));
        let now = self.json.now();
        self.json.store_clock.take();
        let rules = &mut self.json.lobby;
        let out = &mut self.json.out;
        // A bug in the rules costs one connection, not the server.
        let ok = std::panic::catch_unwind(AssertUnwindSafe(|| match parsed {
            Ok(request) => rules.on_request(key, request, now, out),
            Err(invalid) => {
                log::debug!("JSON conn {key}: invalid message: {}", invalid.0);
                rules.on_invalid(key, out)
            }
        }));
        let spent = self.json.store_clock.take();
        self.json.request_store.record(spent);
        if chat {
            self.json.chat_store.record(spent);
        }
        if ok.is_err() {
            log::error!("[!] internal error on a JSON frame from conn {key}");
            self.begin_closing(key, "internal error".into(), Cleanup::Run);
        }
        self.apply_json_outbox();
    }

    /// A JSON connection leaves its state (any close): the rules forget it
    /// (§1.11) and their effects are applied.
    pub(super) fn json_left(&mut self, key: usize, j: JsonConn) {
        if let Some(r) = &j.relay {
            log::info!(
                "[-] JSON proxy half {key} (peer {}): {} bytes in, {} frames, {} heartbeats dropped",
                r.peer,
                r.bytes_in,
                r.streamer.frames,
                r.streamer.heartbeats
            );
            self.json.relayed_frames += r.streamer.frames;
            self.json.relayed_heartbeats += r.streamer.heartbeats;
        }
        let now = self.json.now();
        let rules = &mut self.json.lobby;
        let out = &mut self.json.out;
        let ok = std::panic::catch_unwind(AssertUnwindSafe(|| rules.on_disconnect(key, now, out)));
        if ok.is_err() {
            log::error!("[!] internal error on the disconnect of JSON conn {key}");
        }
        self.apply_json_outbox();
    }

    /// Applies the rules' actions in order. Closing a connection runs its
    /// `on_disconnect`, whose effects are applied by a nested call.
    fn apply_json_outbox(&mut self) {
        while !self.json.out.is_empty() {
            let actions: Vec<Action> = self.json.out.drain().collect();
            // one framed buffer per distinct payload: a broadcast's Sends
            // come in a row and share it
            let mut framed: Option<(Bytes, Bytes)> = None;
            let mut slow = Vec::new();
            for action in actions {
                match action {
                    Action::Send { to, payload } => {
                        let bytes = match &framed {
                            Some((p, f))
                                if p.as_ptr() == payload.as_ptr() && p.len() == payload.len() =>
                            {
                                f.clone()
                            }
                            _ => {
                                let f = Bytes::from(crate::wire::frame(&payload));
                                framed = Some((payload, f.clone()));
                                f
                            }
                        };
                        let Some(c) = self.conns.get_mut(to) else {
                            continue;
                        };
                        if json_conn(c).is_none_or(|j| j.relay.is_some()) {
                            continue; // closing, or a proxy half: not for lobby messages
                        }
                        c.out.push(bytes);
                        // the cap proper is checked after the write attempt
                        // (`output::flush`); this is the backstop of one turn
                        if c.out.len() > 8 * self.cfg.max_output {
                            slow.push(to);
                        }
                        self.dirty.push(to);
                    }
                    Action::Close { conn, reason } => {
                        self.begin_closing(conn, close_text(reason).into(), Cleanup::Run)
                    }
                    Action::Pair { server, client } => self.json_pair(server, client),
                }
            }
            self.drop_slow_consumers(slow);
        }
    }

    /// Pair{server, client} (§1.10): both halves stop going to the rules;
    /// what each still holds unparsed in its decoder (the guest's game
    /// frames right behind clientProxyLogin) is the first relayed traffic.
    fn json_pair(&mut self, server: usize, client: usize) {
        let max = self.cfg.max_frame_game;
        for (a, b) in [(server, client), (client, server)] {
            let Some(c) = self.conns.get_mut(a) else {
                continue;
            };
            if let Some(j) = json_conn_mut(c) {
                j.relay = Some(RelayHalf::new(b, max));
                c.deadline = None; // logged in: no login timeout any more
            }
        }
        log::info!("[+] JSON proxy pair: match server {server} <-> guest {client}");
        for (src, dst) in [(client, server), (server, client)] {
            let Some((s, d)) = self.conns.get2_mut(src, dst) else {
                continue;
            };
            let early = s.decoder.take_rest();
            let Some(r) = json_conn_mut(s).and_then(|j| j.relay.as_mut()) else {
                continue;
            };
            r.bytes_in += early.len() as u64;
            if let Err(len) = r.streamer.feed(&early, &mut d.relay_out) {
                self.stats.drop_frame_too_big += 1;
                self.close(
                    src,
                    format!("game frame of {len} bytes over max-frame-game"),
                );
            }
        }
        for key in [server, client] {
            self.again.push(key);
            self.mark_dirty(key);
        }
    }

    /// One round of our heartbeat to every JSON connection (§1.1), then the
    /// next round is scheduled: one timer for all of them. A proxy half
    /// gets it only between two relayed frames (else this round skips it).
    pub(super) fn json_heartbeat_round(&mut self, now: Instant) {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| json_conn(c).is_some())
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            let peer = self
                .conns
                .get(key)
                .and_then(json_conn)
                .and_then(|j| j.peer());
            match peer {
                None => {
                    if let Some(c) = self.conns.get_mut(key) {
                        c.out.push(HEARTBEAT);
                        self.dirty.push(key);
                    }
                }
                Some(peer) => {
                    let at_boundary = self
                        .conns
                        .get(peer)
                        .and_then(json_conn)
                        .and_then(|j| j.relay.as_ref())
                        .is_none_or(|r| r.streamer.at_boundary());
                    if let (true, Some(c)) = (at_boundary, self.conns.get_mut(key)) {
                        c.relay_out.push(&HEARTBEAT);
                        self.again.push(key); // its pump writes it
                    }
                }
            }
        }
        self.timers
            .schedule(now + self.cfg.json_heartbeat, Timer::JsonHeartbeat);
    }

    /// The login timeout passed: a JSON connection that has not logged in
    /// is closed.
    pub(super) fn json_login_deadline(&mut self, key: usize) {
        if self.json.lobby.is_logged_in(key) {
            return;
        }
        self.stats.drop_timeout += 1;
        if let Some(c) = self.conns.get(key) {
            log::info!(
                "[!] {} (JSON) did not log in within the login timeout",
                c.addr
            );
        }
        let secs = self.cfg.login_timeout.as_secs();
        self.close(key, format!("JSON: not logged in within {secs}s"));
    }

    /// The JSON lobby's part of the admin snapshot: no IDs, cookies or
    /// addresses (`ops::status`).
    pub(super) fn json_status(&self) -> JsonStatus {
        let (mut lobby_connections, mut relayed_connections) = (0, 0);
        let (mut relayed_frames, mut relayed_heartbeats) =
            (self.json.relayed_frames, self.json.relayed_heartbeats);
        for (_, c) in self.conns.iter() {
            match json_conn(c).map(|j| j.relay.as_ref()) {
                Some(Some(r)) => {
                    relayed_connections += 1;
                    // the live pairs' frames so far, as the log line counts
                    // them once the pair ends
                    relayed_frames += r.streamer.frames;
                    relayed_heartbeats += r.streamer.heartbeats;
                }
                Some(None) => lobby_connections += 1,
                None => {}
            }
        }
        let mut rooms: Vec<JsonRoomStatus> = self
            .json
            .lobby
            .rooms()
            .map(|room| JsonRoomStatus {
                name: room.description.clone(),
                state: room.status.as_str(),
                players: room.participants.len() as u32,
                player_limit: room.player_limit,
                private: room.status == RoomStatus::Private,
            })
            .collect();
        // the rules keep rooms in a hash map: a stable order for readers
        rooms.sort_by(|a, b| (a.state, &a.name).cmp(&(b.state, &b.name)));
        let st = self.json.lobby.stats();
        JsonStatus {
            accounts_online: self.json.lobby.accounts_online().count() as u64,
            rooms,
            // both halves of a pair are relayed connections
            proxy_pairs: relayed_connections / 2,
            lobby_connections,
            relayed_connections,
            counters: JsonCounters {
                lobby: st.clone(),
                relayed_frames,
                relayed_heartbeats,
            },
            store_request: self.json.request_store.clone(),
            store_chat: self.json.chat_store.clone(),
        }
    }

    /// The JSON part of the statistics line.
    pub(super) fn log_json_stats(&self) {
        let (mut lobby, mut relayed) = (0, 0);
        for (_, c) in self.conns.iter() {
            match json_conn(c).map(|j| j.relay.is_some()) {
                Some(true) => relayed += 1,
                Some(false) => lobby += 1,
                None => {}
            }
        }
        let st = self.json.lobby.stats();
        let (chat, all) = (&self.json.chat_store, &self.json.request_store);
        log::info!(
            "[stats json] connections {lobby} lobby, {relayed} relayed; accounts online {}, rooms {}; \
             registrations {}, logins {}, chat messages {}, flood drops {}, proxy pairs {}, \
             relayed frames {}, heartbeats dropped {}; store time per chat message \
             (n {}): p50 <{}us p99 <{}us max {}us; per request (n {}): p99 <{}us max {}us",
            self.json.lobby.accounts_online().count(),
            self.json.lobby.rooms().count(),
            st.registrations,
            st.logins,
            st.chat_messages,
            st.flood_drops,
            st.proxy_pairs,
            self.json.relayed_frames,
            self.json.relayed_heartbeats,
            chat.count(),
            chat.quantile_us(0.5),
            chat.quantile_us(0.99),
            chat.max().as_micros(),
            all.count(),
            all.quantile_us(0.99),
            all.max().as_micros(),
        );
    }
}

//! Legacy lobby connections: their frames into the lobby rules, the rules'
//! output into queued bytes (with large-lobby list coalescing), refusals and
//! the healthcheck.

use super::close::Cleanup;
use super::*;
use crate::legacy::charset::{message_bytes, Charset};
use crate::legacy::handshake::LobbyHeader;
use crate::legacy::lobby::{CloseReason, List};
use crate::legacy::lobby_conn::LobbyConn;
use std::panic::AssertUnwindSafe;

/// How long a large lobby must at least be free of list changes before a
/// refresh round runs (a quarter of the refresh interval when longer, so a
/// storm's stragglers — SYNs retried after 1 s — still fall in the same
/// round; always bounded by the interval itself).
const ROUND_QUIET: Duration = Duration::from_millis(250);

/// The large-lobby refresh round: which lists changed for everyone since
/// the last round, and when.
///
/// LIFECYCLE: idle ──a list changes──▶ pending (timer set) ──timer, quiet
/// or an interval passed──▶ recipients owed, `last` = now ──▶ idle
#[derive(Debug, Default)]
pub(super) struct RefreshRound {
    /// Per [`List`]: changed since the last round.
    owed: [bool; 2],
    /// A `Timer::RefreshRound` is pending.
    timer: bool,
    /// The first and the latest change since the last round.
    since: Option<Instant>,
    latest: Option<Instant>,
    /// When the last round ran.
    last: Option<Instant>,
}

/// Flags `list` as owed on a connection; true when it must be queued (it
/// was owed nothing, so it is neither queued nor waiting for a timer).
fn flag_owed(l: &mut LobbyConn, list: List) -> bool {
    let queued = l.owe_users || l.owe_sessions;
    match list {
        List::Users => l.owe_users = true,
        List::Sessions => l.owe_sessions = true,
    }
    !queued
}

impl Server {
    /// The first frame is a valid lobby header: register the client and let
    /// the rules read the rest of the frame (its first commands).
    pub(super) fn start_lobby(&mut self, key: usize, header: LobbyHeader, frame: &[u8]) {
        let now = Instant::now();
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.state = State::Lobby(LobbyConn::new(header.charset, now));
        // the login deadline; once logged in, the healthcheck takes over
        // when it fires (`conn_deadline`), never before
        self.set_deadline(key, now + self.cfg.login_timeout);
        self.legacy.lobby.register(key, header.protocol);
        self.lobby_frame(key, frame);
    }

    pub(super) fn lobby_frame(&mut self, key: usize, frame: &[u8]) {
        let Some(Conn {
            state: State::Lobby(l),
            addr,
            ..
        }) = self.conns.get_mut(key)
        else {
            return;
        };
        // any frame is a sign of life for the healthcheck
        l.last_seen = Instant::now();
        l.health_sent = false;
        let text = l.charset.decode(frame);
        let ip = addr.ip();
        self.legacy.frame_from = Some(ip);
        let refusal = self.start_refusal(ip);
        self.legacy.lobby.set_start_gate(refusal);
        let lobby = &mut self.legacy.lobby;
        let out = &mut self.legacy.out;
        let counters = &self.counters;
        // A bug in the rules must cost one client, not every player's
        // session: the panic is contained, logged, and that client dropped.
        let ok = std::panic::catch_unwind(AssertUnwindSafe(|| {
            lobby.handle_frame(key, &text, Instant::now(), counters, out)
        }));
        if ok.is_err() {
            log::error!("[!] internal error on a frame from client {key}: {text:?}");
            let lobby = &mut self.legacy.lobby;
            let out = &mut self.legacy.out;
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| lobby.disconnect(key, out)));
            self.begin_closing(key, "internal error".into(), Cleanup::AlreadyDone);
        }
        self.apply_outbox();
        self.legacy.frame_from = None;
    }

    /// Why a frame from `ip` may not start a game now (the session caps),
    /// in words for the players.
    fn start_refusal(&self, ip: IpAddr) -> Option<String> {
        let relay = &self.legacy.relay;
        let all = self.cfg.max_sessions();
        if relay.sessions() >= all {
            return Some(format!(
                "The server already runs its maximum of {all} games. Please try again later"
            ));
        }
        let mine = self.cfg.max_sessions_per_ip;
        if relay.sessions_of(ip) >= mine {
            return Some(format!(
                "Too many games ({mine}) were started from your address and are still open. \
                 Please wait until one of them ends"
            ));
        }
        None
    }

    /// Sends `:>>ERROR:{text}` (to a lobby or still unclassified connection)
    /// and closes once it is flushed.
    pub(super) fn refuse(&mut self, key: usize, text: &str, why: String) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        log::warn!("[!] {} refused: {why}", c.addr);
        let charset = match &c.state {
            State::Lobby(l) => Some(l.charset),
            State::New => Some(Charset::UTF8),
            // a game process would take the text for game data
            State::PipeHandshake(_)
            | State::Pipe(_)
            | State::Admin(_)
            | State::Json(_)
            | State::Closing => None,
        };
        if let Some(charset) = charset {
            let msg = format!(":>>ERROR:{text}");
            c.out.push(Bytes::from(charset.encode(&msg).into_owned()));
        }
        self.begin_closing(key, why, Cleanup::Run);
    }

    /// The server is stopping: a logged-in launcher is told so before its
    /// connection closes.
    pub(super) fn lobby_shutdown_notice(&mut self, key: usize) {
        let notice = ":>>MSG:System:The server is shutting down. Please reconnect later";
        let authed = self.legacy.lobby.is_authed(key);
        if let Some(Conn {
            state: State::Lobby(l),
            out,
            ..
        }) = self.conns.get_mut(key)
        {
            if authed {
                out.push(Bytes::from(l.charset.encode(notice).into_owned()));
            }
        }
    }

    /// A lobby connection closes: the rules forget the client and tell the
    /// others (USERS, a host's room closing, ...).
    pub(super) fn lobby_left(&mut self, key: usize) {
        self.legacy.lobby.disconnect(key, &mut self.legacy.out);
        self.apply_outbox();
    }

    // ---- lobby output ---------------------------------------------------------

    /// Turns the lobby's effects into queued bytes and state changes.
    pub(super) fn apply_outbox(&mut self) {
        while !self.legacy.out.is_empty() {
            let mut out = std::mem::take(&mut self.legacy.out);
            let mut utf8: Vec<Option<Bytes>> = vec![None; out.texts().len()];
            let mut slow = Vec::new();
            for &(to, i) in out.deliveries() {
                let Some(c) = self.conns.get_mut(to) else {
                    continue;
                };
                let State::Lobby(l) = &mut c.state else {
                    continue;
                };
                let charset = l.charset;
                let text = &out.texts()[i as usize];
                c.out
                    .push(message_bytes(charset, text, &mut utf8[i as usize]));
                // the cap proper is checked after this turn's write attempt
                // (flush): a burst that a reading client takes at once must
                // not drop it. This is only the backstop within one turn.
                if c.out.len() > 8 * self.cfg.max_output {
                    slow.push(to);
                }
                self.dirty.push(to);
            }
            // launchers replace the whole list on each USERS/SESSIONS, so
            // in a large lobby only the latest matters: owe it
            for &(to, list) in out.owed() {
                self.owe_list(to, list);
            }
            let now = Instant::now();
            for list in out.owed_to_everyone() {
                self.owe_round(list, now);
            }
            for (id, reason) in out.closes().to_vec() {
                let why = match reason {
                    CloseReason::Started => "game started".into(),
                    CloseReason::Dropped(w) | CloseReason::Refused(w) => w,
                };
                // the lobby already unregistered it: just close
                self.begin_closing(id, why, Cleanup::AlreadyDone);
            }
            let now = Instant::now();
            let owner = self.legacy.frame_from.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            // neither limit is exceeded: a short grace shortens the first
            // wait too
            let first_pipe_wait = self.cfg.pipe_wait.min(self.cfg.session_grace);
            for s in out.take_started() {
                let (sid, at) = self
                    .legacy
                    .relay
                    .add_session(s, owner, now, first_pipe_wait);
                self.timers.schedule(at, Timer::Session(sid));
                self.ops.sessions_created += 1;
            }
            out.clear();
            self.legacy.out = out;
            slow.sort_unstable();
            slow.dedup();
            self.drop_slow_consumers(slow);
        }
    }

    /// Seconds between two refresh rounds in a large lobby. One per second
    /// up to 500 users, then longer in proportion, so the bytes all
    /// refreshes cost per second grow with N, not N².
    pub(super) fn refresh_interval(&self) -> Duration {
        let n = self.legacy.lobby.connections() as u64;
        Duration::from_millis((n * 2).max(1000))
    }

    /// `list` is owed to one client: flagged on its connection, and queued
    /// unless it is queued already or waits for a timer (so the due queue
    /// holds each client at most once).
    fn owe_list(&mut self, key: usize, list: List) {
        let Some(Conn {
            state: State::Lobby(l),
            ..
        }) = self.conns.get_mut(key)
        else {
            return;
        };
        if flag_owed(l, list) {
            self.legacy.refresh_due.push(key);
        }
    }

    /// `list` changed for everyone (a login, a logout, a room event in a
    /// large lobby): O(1), the round timer delivers it.
    fn owe_round(&mut self, list: List, now: Instant) {
        let r = &mut self.legacy.round;
        r.owed[list as usize] = true;
        r.latest = Some(now);
        r.since.get_or_insert(now);
        if !r.timer {
            r.timer = true;
            let at = self.round_time(now);
            self.timers.schedule(at, Timer::RefreshRound);
        }
    }

    /// When the pending round may run: once the lobby is quiet for
    /// [`ROUND_QUIET`] or a quarter interval (a burst of logins costs one round, not one each), but
    /// no later than an interval after the first change, and never sooner
    /// than an interval after the previous round.
    fn round_time(&self, now: Instant) -> Instant {
        let r = &self.legacy.round;
        let interval = self.refresh_interval();
        let since = r.since.unwrap_or(now);
        let quiet = ROUND_QUIET.max(interval / 4);
        let settled = (r.latest.unwrap_or(now) + quiet).min(since + interval);
        let spaced = r.last.map_or(now, |t| t + interval);
        settled.max(spaced)
    }

    /// The round timer fired: owe the changed lists to their recipients,
    /// walking the lobby once per round (the lists' bytes are O(N) per
    /// recipient anyway); `deliver_refreshes` sends them in this turn.
    pub(super) fn refresh_round(&mut self, now: Instant) {
        self.legacy.round.timer = false;
        if self.legacy.round.owed == [false; 2] {
            return;
        }
        let at = self.round_time(now);
        if at > now {
            self.legacy.round.timer = true;
            return self.timers.schedule(at, Timer::RefreshRound);
        }
        let r = &mut self.legacy.round;
        let owed = std::mem::take(&mut r.owed);
        r.since = None;
        r.last = Some(now);
        for list in [List::Users, List::Sessions] {
            if !owed[list as usize] {
                continue;
            }
            for key in self.legacy.lobby.list_recipients(list) {
                let Some(Conn {
                    state: State::Lobby(l),
                    ..
                }) = self.conns.get_mut(key)
                else {
                    continue;
                };
                if flag_owed(l, list) {
                    self.legacy.refresh_due.push(key);
                }
            }
        }
    }

    /// Queues the latest USERS/SESSIONS for clients owed one, each list
    /// built once per call and shared, and only once what a client was sent
    /// before is written out (a slow reader gets fewer refreshes, never a
    /// backlog). Rounds are rate-limited as a whole, so no per-client limit.
    pub(super) fn deliver_refreshes(&mut self) {
        if self.legacy.refresh_due.is_empty() {
            return;
        }
        let now = Instant::now();
        let due = std::mem::take(&mut self.legacy.refresh_due);
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
            if !(l.owe_users || l.owe_sessions) || l.refresh_timer {
                continue;
            }
            if busy {
                l.refresh_timer = true;
                let at = now + Duration::from_millis(100);
                self.timers.schedule(at, Timer::Refresh { key, serial });
                continue;
            }
            let charset = l.charset;
            if std::mem::take(&mut l.owe_sessions) {
                let t = sessions.get_or_insert_with(|| self.legacy.lobby.sessions_msg());
                c.out.push(message_bytes(charset, t, &mut sessions_b));
            }
            let State::Lobby(l) = &mut c.state else {
                continue;
            };
            if std::mem::take(&mut l.owe_users) {
                let t = users.get_or_insert_with(|| self.legacy.lobby.users_msg());
                c.out.push(message_bytes(charset, t, &mut users_b));
            }
            self.dirty.push(key);
        }
    }

    // ---- healthcheck -------------------------------------------------------------

    /// The healthcheck (PROTOCOL.md §11): a VCMI 1.2+ launcher silent for the
    /// period is sent `:>>HEALTH:`, and dropped when silent twice as long.
    pub(super) fn lobby_healthcheck(&mut self, key: usize, now: Instant) {
        let asked = self.legacy.lobby.is_health_checked(key);
        let period = self.cfg.healthcheck;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let State::Lobby(l) = &mut c.state else {
            return;
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
}

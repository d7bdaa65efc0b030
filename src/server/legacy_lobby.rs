//! Legacy lobby connections: their frames into the lobby rules, the rules'
//! output into queued bytes (with large-lobby list coalescing), refusals and
//! the healthcheck.

use super::close::Cleanup;
use super::*;
use crate::legacy::charset::{message_bytes, Charset};
use crate::legacy::handshake::LobbyHeader;
use crate::legacy::lobby_conn::LobbyConn;
use crate::lobby::{CloseReason, List};
use std::panic::AssertUnwindSafe;

impl Server {
    /// The first frame is a valid lobby header: register the client and let
    /// the rules read the rest of the frame (its first commands).
    pub(super) fn start_lobby(&mut self, key: usize, header: LobbyHeader, frame: &[u8]) {
        let now = Instant::now();
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.state = State::Lobby(LobbyConn::new(header.charset, now));
        c.deadline = None;
        if let Some(hc) = self.cfg.healthcheck {
            self.set_deadline(key, now + hc);
        }
        self.legacy.lobby.register(key, header.protocol);
        self.lobby_frame(key, frame);
    }

    pub(super) fn lobby_frame(&mut self, key: usize, frame: &[u8]) {
        let Some(Conn {
            state: State::Lobby(l),
            ..
        }) = self.conns.get_mut(key)
        else {
            return;
        };
        // any frame is a sign of life for the healthcheck
        l.last_seen = Instant::now();
        l.health_sent = false;
        let text = l.charset.decode(frame);
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
            State::PipeHandshake(_) | State::Pipe(_) | State::Json(_) | State::Closing => None,
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
                if let Some(Conn {
                    state: State::Lobby(l),
                    ..
                }) = self.conns.get_mut(to)
                {
                    match list {
                        List::Users => l.owe_users = true,
                        List::Sessions => l.owe_sessions = true,
                    }
                    self.legacy.refresh_due.push(to);
                }
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
            for s in out.take_started() {
                let (sid, at) = self
                    .legacy
                    .relay
                    .add_session(s, now, self.cfg.session_grace);
                self.timers.schedule(at, Timer::Session(sid));
            }
            out.clear();
            self.legacy.out = out;
            slow.sort_unstable();
            slow.dedup();
            for id in slow {
                if self
                    .conns
                    .get(id)
                    .is_some_and(|c| c.out.len() > 8 * self.cfg.max_output)
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
    pub(super) fn refresh_interval(&self) -> Duration {
        let n = self.legacy.lobby.users() as u64;
        Duration::from_millis((n * 2).max(1000))
    }

    /// Queues the latest USERS/SESSIONS for clients owed one, at most one
    /// per interval each, and only once what they were sent before is
    /// written out (a slow reader gets fewer refreshes, never a backlog).
    pub(super) fn deliver_refreshes(&mut self) {
        if self.legacy.refresh_due.is_empty() {
            return;
        }
        let now = Instant::now();
        let interval = self.refresh_interval();
        let mut due = std::mem::take(&mut self.legacy.refresh_due);
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

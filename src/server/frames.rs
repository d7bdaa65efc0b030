//! Lobby and handshaking connections: reading frames, classifying the first
//! one, feeding the lobby rules, and turning their output into queued bytes
//! (with large-lobby list coalescing).

use super::*;
use crate::charset::message_bytes;
use std::panic::AssertUnwindSafe;

impl Server {
    /// Lobby, new and handshaking connections: read frames and act on them.
    pub(super) fn stream_service(&mut self, key: usize) {
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
                    c.decoder.shrink_if_empty();
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

    pub(super) fn on_bytes(&mut self, key: usize, data: &[u8]) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.decoder.extend(data);
        self.process_frames(key);
    }

    pub(super) fn process_frames(&mut self, key: usize) {
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

    pub(super) fn on_frame(&mut self, key: usize, frame: Bytes) {
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
                    self.counters.pipes_open += 1;
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

    pub(super) fn lobby_frame(&mut self, key: usize, frame: &[u8]) {
        let Some(Conn {
            state: State::Lobby(l),
            ..
        }) = self.conns.get(key)
        else {
            return;
        };
        let text = l.charset.decode(frame);
        let lobby = &mut self.lobby;
        let counters = &self.counters;
        let out = &mut self.out;
        // A bug in the rules must cost one client, not every player's
        // session: the panic is contained, logged, and that client dropped.
        let ok = std::panic::catch_unwind(AssertUnwindSafe(|| {
            lobby.handle_frame(key, &text, Instant::now(), counters, out)
        }));
        if ok.is_err() {
            log::error!("[!] internal error on a frame from client {key}: {text:?}");
            let lobby = &mut self.lobby;
            let out = &mut self.out;
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| lobby.disconnect(key, out)));
            if let Some(c) = self.conns.get_mut(key) {
                c.state = State::Closing; // the lobby already let go of it
                c.close_reason = Some("internal error".into());
                self.dirty.push(key);
            }
        }
        self.apply_outbox();
    }

    /// Sends `:>>ERROR:{text}` and closes once it is flushed.
    pub(super) fn refuse(&mut self, key: usize, text: &str, why: String) {
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
    pub(super) fn begin_closing(&mut self, key: usize, why: String) {
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
    pub(super) fn apply_outbox(&mut self) {
        while !self.out.is_empty() {
            let mut out = std::mem::take(&mut self.out);
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
                    self.refresh_due.push(to);
                }
            }
            for (id, reason) in out.closes().to_vec() {
                let Some(c) = self.conns.get_mut(id) else {
                    continue;
                };
                // the lobby already unregistered it: just close
                c.state = State::Closing;
                c.deadline = None; // flush() sets the closing linger
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
        let n = self.lobby.users() as u64;
        Duration::from_millis((n * 2).max(1000))
    }

    /// Queues the latest USERS/SESSIONS for clients owed one, at most one
    /// per interval each, and only once what they were sent before is
    /// written out (a slow reader gets fewer refreshes, never a backlog).
    pub(super) fn deliver_refreshes(&mut self) {
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
            if std::mem::take(&mut l.owe_sessions) {
                let t = sessions.get_or_insert_with(|| self.lobby.sessions_msg());
                c.out.push(message_bytes(charset, t, &mut sessions_b));
            }
            let State::Lobby(l) = &mut c.state else {
                continue;
            };
            if std::mem::take(&mut l.owe_users) {
                let t = users.get_or_insert_with(|| self.lobby.users_msg());
                c.out.push(message_bytes(charset, t, &mut users_b));
            }
            self.dirty.push(key);
        }
    }
}

//! Timers of the loop: first-frame, login, partial-frame and handshake
//! timeouts, the healthcheck, unpaired pipes, session expiry, statistics,
//! accept retries and the shutdown grace.

use super::*;

impl Server {
    // ---- timers -------------------------------------------------------------------

    pub(super) fn set_deadline(&mut self, key: usize, at: Instant) {
        if let Some(c) = self.conns.get_mut(key) {
            c.deadline = Some(at);
            let serial = c.serial;
            self.timers.schedule(at, Timer::Conn { key, serial });
        }
    }

    pub(super) fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some((at, t)) = self.timers.pop_due(now) {
            match t {
                Timer::Session(sid) => {
                    if self.legacy.relay.expire(sid, now) {
                        self.ops.sessions_expired += 1;
                    }
                }
                Timer::Stats => {
                    crate::sys::release_free_memory();
                    self.log_stats();
                    if let Some(every) = self.cfg.stats_interval {
                        self.timers.schedule(now + every, Timer::Stats);
                    }
                }
                Timer::AcceptRetry => self.resume_accept(),
                Timer::Frame { key, serial } => self.frame_deadline(key, serial, now),
                Timer::JsonHeartbeat => self.json_heartbeat_round(now),
                Timer::Refresh { key, serial } => {
                    if let Some(c) = self.conns.get_mut(key) {
                        if let (true, State::Lobby(l)) = (c.serial == serial, &mut c.state) {
                            l.refresh_timer = false;
                            self.legacy.refresh_due.push(key);
                        }
                    }
                }
                Timer::RefreshRound => self.refresh_round(now),
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

    /// A connection's own deadline passed: what it means depends on its
    /// state.
    pub(super) fn conn_deadline(&mut self, key: usize, now: Instant) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        match &c.state {
            State::New => {
                self.stats.drop_timeout += 1;
                self.close(key, "no complete first frame in time".into());
            }
            State::PipeHandshake(_) => {
                self.stats.drop_timeout += 1;
                self.close(key, "pipe handshake timed out".into());
            }
            State::Closing => {
                self.stats.drop_timeout += 1;
                self.finish_close(key);
            }
            State::Lobby(_) if !self.legacy.lobby.is_authed(key) => {
                self.stats.drop_timeout += 1;
                log::info!("[!] {} did not log in within the login timeout", c.addr);
                self.close(
                    key,
                    format!("not logged in within {}s", self.cfg.login_timeout.as_secs()),
                );
            }
            State::Lobby(_) => self.lobby_healthcheck(key, now),
            State::Admin(_) => self.admin_timed_out(key),
            State::Json(j) if j.relay.is_some() => self.json_relay_deadline(key),
            State::Json(_) => self.json_login_deadline(key),
            State::Pipe(_) => self.pipe_deadline(key),
        }
    }

    /// A framed connection has an incomplete frame buffered: its
    /// `--frame-timeout` runs from now (its first byte came in this read).
    pub(super) fn partial_frame_started(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.decoder.buffered() == 0 {
            c.frame_started = None;
            return;
        }
        if c.frame_started.is_some() {
            return;
        }
        let now = Instant::now();
        c.frame_started = Some(now);
        if !std::mem::replace(&mut c.frame_timer, true) {
            let serial = c.serial;
            self.timers
                .schedule(now + self.cfg.frame_timeout, Timer::Frame { key, serial });
        }
    }

    /// The frame timer of a connection fired: close it if the frame it is
    /// receiving started too long ago, else wait for that frame's deadline
    /// (one timer per connection, whatever the number of frames).
    fn frame_deadline(&mut self, key: usize, serial: u64, now: Instant) {
        let timeout = self.cfg.frame_timeout;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.serial != serial {
            return;
        }
        c.frame_timer = false;
        // a JSON relay half streams frames without buffering them whole
        let framed = match &c.state {
            State::New | State::Lobby(_) | State::PipeHandshake(_) => true,
            State::Json(j) => j.relay.is_none(),
            State::Pipe(_) | State::Admin(_) | State::Closing => false,
        };
        match c.frame_started {
            Some(t) if framed && t + timeout <= now => {
                self.stats.drop_timeout += 1;
                let held = c.decoder.buffered();
                log::info!(
                    "[!] {} sent {held} bytes of a frame and not the rest within {}s",
                    c.addr,
                    timeout.as_secs()
                );
                self.close(
                    key,
                    format!("frame incomplete after {}s", timeout.as_secs()),
                );
            }
            Some(t) if framed => {
                c.frame_timer = true;
                self.timers
                    .schedule(t + timeout, Timer::Frame { key, serial });
            }
            _ => {}
        }
    }
}

//! Timers of the loop: first-frame and handshake timeouts, the healthcheck,
//! session expiry, statistics, accept retries and the shutdown grace.

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
                    self.legacy.relay.expire(sid, now);
                }
                Timer::Stats => {
                    crate::sys::release_free_memory();
                    self.log_stats();
                    if let Some(every) = self.cfg.stats_interval {
                        self.timers.schedule(now + every, Timer::Stats);
                    }
                }
                Timer::AcceptRetry => self.resume_accept(),
                Timer::JsonHeartbeat => self.json_heartbeat_round(now),
                Timer::Refresh { key, serial } => {
                    if let Some(c) = self.conns.get_mut(key) {
                        if let (true, State::Lobby(l)) = (c.serial == serial, &mut c.state) {
                            l.refresh_timer = false;
                            self.legacy.refresh_due.push(key);
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
            State::Lobby(_) => self.lobby_healthcheck(key, now),
            State::Json(_) => self.json_login_deadline(key),
            State::Pipe(_) => {}
        }
    }
}

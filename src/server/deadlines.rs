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
                    self.relay.expire(sid, now);
                }
                Timer::Stats => {
                    crate::sys::release_free_memory();
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

    pub(super) fn conn_deadline(&mut self, key: usize, now: Instant) {
        let asked = self.lobby.is_health_checked(key);
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
            State::Closing => {
                self.stats.drop_timeout += 1;
                return self.finish_close(key);
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
}

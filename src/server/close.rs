//! The close path of every connection kind.

use super::*;

impl Server {
    // ---- closing ------------------------------------------------------------------

    /// Cleanup for the state a connection leaves (lobby, pipe accounting).
    pub(super) fn leave_state(&mut self, key: usize, old: State) {
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
    pub(super) fn close(&mut self, key: usize, why: String) {
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
    pub(super) fn finish_close(&mut self, key: usize) {
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
            self.lobby.pipes_open = self.lobby.pipes_open.saturating_sub(1);
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

    pub(super) fn pipe_released(&mut self, sid: SessionId, key: usize) {
        if let Some(at) = self
            .relay
            .pipe_closed(sid, key, Instant::now(), self.cfg.session_grace)
        {
            self.timers.schedule(at, Timer::Session(sid));
        }
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
}

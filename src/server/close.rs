//! The close path, one for every connection kind.
//!
//! LIFECYCLE of a close
//! ```text
//!   any state ──begin_closing──▶ Closing ──output flushed, or linger over──▶ finish_close (removed)
//!        │  (leaves its state: the kind's cleanup runs once, here)
//!        └──────── close = begin_closing + finish_close at once (errors, EOF, drops)
//! ```
//! `Closing` is terminal: a second request keeps the first reason and the
//! running linger; `close` only cuts the flush short.

use super::*;

/// Whether the protocol rules still hold on to a connection being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cleanup {
    /// Tell them (the lobby forgets the client and tells the others; a pipe
    /// lets its partner go and leaves its session).
    Run,
    /// They let go already (the lobby asked for this close), or nobody is
    /// left to be told (shutdown).
    AlreadyDone,
}

impl Server {
    /// The one way into `Closing`: leaves the current state (running its
    /// cleanup when asked), records why, and lets `output::flush` close the
    /// socket once its queued output is written (bounded by the linger).
    pub(super) fn begin_closing(&mut self, key: usize, why: String, cleanup: Cleanup) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if matches!(c.state, State::Closing) {
            return self.mark_dirty(key);
        }
        let old = std::mem::replace(&mut c.state, State::Closing);
        c.close_reason = Some(why);
        c.deadline = None; // flush() sets the closing linger
        if cleanup == Cleanup::Run {
            self.leave_state(key, old);
        }
        self.mark_dirty(key);
    }

    /// Closes now, without flushing (errors, EOF, drops).
    pub(super) fn close(&mut self, key: usize, why: String) {
        self.begin_closing(key, why, Cleanup::Run);
        self.finish_close(key);
    }

    /// Each kind's cleanup for the state a connection leaves.
    fn leave_state(&mut self, key: usize, old: State) {
        match old {
            State::Lobby(_) => self.lobby_left(key),
            State::PipeHandshake(_) => self.pipe_handshake_left(),
            State::Pipe(half) => self.pipe_left(key, *half),
            State::Json(j) => self.json_left(key, *j),
            State::New | State::Admin(_) | State::Closing => {}
        }
    }

    /// Removes the connection for good. Its write side is shut first so what
    /// was flushed arrives before the FIN, and unread input is drained so the
    /// kernel sends FIN rather than RST.
    pub(super) fn finish_close(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        let mut c = self.conns.remove(key);
        self.budget.release(&mut c.charged);
        let _ = self.poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(Shutdown::Write);
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match c.stream.read(&mut sink) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
        let why = c.close_reason.as_deref().unwrap_or("closed");
        let level = if why.starts_with(super::admin::ADMIN_CLOSE) {
            log::Level::Debug
        } else {
            log::Level::Info
        };
        log::log!(level, "[-] {} disconnected: {why}", c.addr);
        if c.ip_slot {
            self.release_ip(c.addr.ip());
        }
        self.resume_accept();
    }

    /// epoll reported a hang-up or an error on a relay source that is
    /// paused (its partner's buffer is full, so it is not being read; both
    /// relays keep READABLE registered while paused for this). An error
    /// closes it at once: its bytes are lost anyway, and its partner follows
    /// after flushing. A FIN gives the partner `--pipe-timeout` to take what
    /// is buffered for it; `paused_source_timed_out` then closes it. `what`
    /// names the kind in the log ("pipe", "game proxy half").
    pub(super) fn paused_source_hung_up(&mut self, key: usize, error: bool, what: &str) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if error {
            let why = match c.stream.take_error().ok().flatten() {
                Some(e) => format!("{what}: connection error while paused: {e}"),
                None => format!("{what}: connection error while paused"),
            };
            return self.close(key, why);
        }
        if c.deadline.is_none() {
            log::info!(
                "[!] {what} {} closed while its partner's buffer is full; {}s for the partner to drain",
                c.addr,
                self.cfg.pipe_timeout.as_secs()
            );
            let at = Instant::now() + self.cfg.pipe_timeout;
            self.set_deadline(key, at);
        }
    }

    /// The deadline `paused_source_hung_up` set: closes the source if it is
    /// still paused (its partner did not drain in time). One that resumed
    /// reads its last bytes and its end on its own.
    pub(super) fn paused_source_timed_out(&mut self, key: usize, still_paused: bool, what: &str) {
        if let Some(c) = self.conns.get_mut(key) {
            c.deadline = None; // fired; a later hang-up may set it again
        }
        if !still_paused {
            return;
        }
        self.stats.drop_timeout += 1;
        let secs = self.cfg.pipe_timeout.as_secs();
        self.close(
            key,
            format!("{what} closed while paused; its partner did not drain in {secs}s"),
        );
    }
}

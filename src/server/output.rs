//! Writing queued output and registering each socket's interest from its
//! state (WRITABLE only with output pending, READABLE unless paused).

use super::*;

impl Server {
    // ---- flushing and interest ---------------------------------------------------

    pub(super) fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &key in &dirty {
            self.flush(key);
            self.recharge(key);
        }
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty; // keep the allocation
        }
    }

    pub(super) fn flush(&mut self, key: usize) {
        // paired pipes write in their pump; here lobby queues and pipes
        // being closed after their partner left
        let pumped = self.is_running_game(key) || self.is_json_relayed(key);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let mut failed = None;
        while !pumped && c.writable && c.has_output() {
            let lobby = !c.out.is_empty();
            let r = if lobby {
                c.out.write_to(&mut c.stream)
            } else {
                c.relay_out.write_to(&mut c.stream)
            };
            match r {
                Ok(n) if lobby => self.stats.lobby_bytes_out += n as u64,
                Ok(_) => {}
                Err(e) if would_block(&e) => c.writable = false,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            return self.close(key, eof_reason(Some(&e)));
        }
        // a JSON lobby peer too; a paired proxy half is not capped but
        // paused (back-pressure: its peer's reads stop)
        let capped = match &c.state {
            State::Lobby(_) => true,
            State::Json(j) => j.relay.is_none(),
            _ => false,
        };
        if capped && c.out.len() > self.cfg.max_output {
            // it could not take this turn's output: a client that does not
            // read is dropped rather than buffered for without bound
            self.stats.drop_slow_consumer += 1;
            return self.close(key, "slow consumer: unsent output over the cap".into());
        }
        if matches!(c.state, State::Closing) {
            if !c.has_output() {
                return self.finish_close(key);
            }
            if c.deadline.is_none() {
                // a closing peer that never takes its last output must not
                // hold its socket for ever
                self.set_deadline(key, Instant::now() + CLOSE_LINGER);
            }
        }
        self.update_interest(key);
    }

    /// Registers exactly what the state wants: READABLE unless closing (a
    /// paused pipe keeps it, so its hang-up is seen while paused; edge-
    /// triggered, it costs nothing while unread), WRITABLE only with output
    /// pending.
    pub(super) fn update_interest(&mut self, key: usize) {
        let (wants_read, listens) = match self.conns.get(key).map(|c| &c.state) {
            None => return,
            Some(State::Closing) => (false, false),
            Some(State::Pipe(_)) => (self.pipe_wants_read(key), self.pipe_read_open(key)),
            // a paused JSON relay half keeps READABLE too (its hang-up is
            // seen while paused: `json_relay_hangup`)
            Some(State::Json(j)) if j.relay.is_some() => (self.json_relay_wants_read(key), true),
            Some(_) => (true, true),
        };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if wants_read && c.readable {
            // resumed after a pause with input already waiting
            self.again.push(key);
        }
        let want = match (listens, c.has_output()) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        if want == c.interest {
            return;
        }
        let r = match (c.interest, want) {
            (_, None) => self.poll.registry().deregister(&mut c.stream),
            (None, Some(i)) => self.poll.registry().register(&mut c.stream, Token(key), i),
            (Some(_), Some(i)) => self
                .poll
                .registry()
                .reregister(&mut c.stream, Token(key), i),
        };
        c.interest = want;
        if let Err(e) = r {
            self.close(key, format!("poll registration failed: {e}"));
        }
    }

    /// The backstop within a turn: of `ids` (recipients just handed
    /// output), drops those holding over 8 × `--max-output` unsent (the
    /// plain cap is checked after each turn's write attempt).
    pub(super) fn drop_slow_consumers(&mut self, ids: impl IntoIterator<Item = usize>) {
        for id in ids {
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

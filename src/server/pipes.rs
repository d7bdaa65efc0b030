//! Game pipes: finishing the handshake, pairing with the partner (echo and
//! early bytes), and the relay pump with its back-pressure and half-close.

use super::*;

impl Server {
    // ---- game pipes -------------------------------------------------------------

    pub(super) fn on_pipe_frame(&mut self, key: usize, frame: &[u8]) {
        let Some(Conn {
            state: State::PipeHandshake(hs),
            ..
        }) = self.conns.get_mut(key)
        else {
            return;
        };
        if let PipeStep::Reject(why) = hs.push_frame(frame) {
            self.stats.drop_bad_handshake += 1;
            self.close(key, why);
        }
    }

    pub(super) fn finish_pipe_handshake(&mut self, key: usize, byte: u8, early: Vec<u8>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let State::PipeHandshake(mut hs) = std::mem::replace(&mut c.state, State::Closing) else {
            return;
        };
        hs.push_endian_byte(byte);
        let uuid = hs.uuid.clone().unwrap_or_default();
        let Some(role) = hs.role() else {
            let t = hs.app_type().unwrap_or("").to_string();
            self.stats.drop_bad_handshake += 1;
            self.close(key, format!("pipe of unknown type ({t}) for {uuid}"));
            return;
        };
        let Some(place) = self.relay.register(&uuid, role, key) else {
            self.stats.drop_bad_handshake += 1;
            self.close(key, format!("pipe with unknown uuid {uuid} as {role:?}"));
            return;
        };
        c.deadline = None;
        let session = match place {
            Placement::Waiting(s) | Placement::Paired { session: s, .. } => s,
        };
        c.pipe_session = Some(session);
        let mut half = PipeHalf {
            session,
            role,
            peer: None,
            replay: std::mem::take(&mut hs.replay),
            early: RelayBuf::default(),
            read_closed: false,
            write_shut: false,
            bytes_in: early.len() as u64,
            bytes_out: 0,
            since: Instant::now(),
        };
        log::info!(
            "[S {}] {} pipe {} registered",
            self.relay.session_name(session),
            if role == Role::Server {
                "server"
            } else {
                "client"
            },
            c.addr
        );
        match place {
            Placement::Waiting(_) => {
                if !early.is_empty() {
                    half.early.push(&early);
                }
                c.state = State::Pipe(Box::new(half));
            }
            Placement::Paired { early: e, .. } => {
                half.peer = Some(e);
                c.relay_out.push(&half.replay);
                c.state = State::Pipe(Box::new(half));
                self.pair(e, key, early);
            }
        }
        self.mark_dirty(key);
    }

    /// Completes a pair: each side gets its own handshake back (D26), then
    /// what the other side sent before pairing (D27 fix), then live bytes.
    pub(super) fn pair(&mut self, e: usize, l: usize, l_early: Vec<u8>) {
        let Some((ec, lc)) = self.conns.get2_mut(e, l) else {
            return;
        };
        let Some(ep) = ec.pipe_mut() else {
            return;
        };
        ep.peer = Some(l);
        let e_early = std::mem::take(&mut ep.early);
        let replay = std::mem::take(&mut ep.replay);
        ec.relay_out.push(&replay);
        if !l_early.is_empty() {
            ec.relay_out.push(&l_early);
        }
        if !e_early.is_empty() {
            lc.relay_out.push(e_early.as_slice());
        }
        if let Some(lp) = lc.pipe_mut() {
            lp.replay = Vec::new();
        }
        log::info!("[+] pipes {} and {} paired", ec.addr, lc.addr);
        self.mark_dirty(e);
        self.relay_service(l, e);
    }

    /// A registered pipe without a partner: keep what it sends (bounded).
    pub(super) fn waiting_pipe_service(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Some(p) = (match &mut c.state {
            State::Pipe(p) => Some(p),
            _ => None,
        }) else {
            return;
        };
        while c.readable && !p.read_closed && p.early.free() > 0 {
            match p.early.read_from(&mut c.stream) {
                Ok(0) => {
                    self.close(key, "waiting pipe closed by peer".into());
                    return;
                }
                Ok(n) => p.bytes_in += n as u64,
                Err(e) if would_block(&e) => c.readable = false,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    self.close(key, eof_reason(Some(&e)));
                    return;
                }
            }
        }
        if p.early.free() == 0 {
            // real games send nothing before they read their partner's
            // handshake; a pipe that filled its buffer is not one of them,
            // and unread it would hide its own close from us
            self.close(key, "too much data before a partner pipe came".into());
        }
    }

    /// Moves bytes both ways between a paired `a` and `b`.
    pub(super) fn relay_service(&mut self, a: usize, b: usize) {
        if let Err((side, e)) = self.pump(a, b).and_then(|()| self.pump(b, a)) {
            let other = if side == a { b } else { a };
            self.close(side, eof_reason(Some(&e)));
            self.abandon_peer(other);
            return;
        }
        self.check_pair_done(a, b);
        self.mark_dirty(a);
        self.mark_dirty(b);
    }

    /// Copies `src` → `dst` until neither side can make progress or the
    /// budget is spent. An error names the side it happened on.
    pub(super) fn pump(&mut self, src: usize, dst: usize) -> Result<(), (usize, io::Error)> {
        let Some((s, d)) = self.conns.get2_mut(src, dst) else {
            return Ok(());
        };
        let mut moved = 0u64;
        for _ in 0..READ_BUDGET {
            let mut progress = false;
            if d.writable && !d.relay_out.is_empty() {
                match d.relay_out.write_to(&mut d.stream) {
                    Ok(n) => {
                        progress = true;
                        if let Some(p) = d.pipe_mut() {
                            p.bytes_out += n as u64;
                        }
                    }
                    Err(e) if would_block(&e) => d.writable = false,
                    Err(e) if interrupted(&e) => progress = true,
                    Err(e) => return Err((dst, e)),
                }
            }
            let State::Pipe(sp) = &mut s.state else {
                break;
            };
            if s.readable && !sp.read_closed && d.relay_out.free() > 0 {
                match d.relay_out.read_from(&mut s.stream) {
                    Ok(0) => {
                        sp.read_closed = true;
                        progress = true;
                        // a player whose game closed is no longer "playing",
                        // even while its socket waits for the other side
                        if std::mem::take(&mut s.counted_pipe) {
                            self.counters.pipes_open = self.counters.pipes_open.saturating_sub(1);
                        }
                    }
                    Ok(n) => {
                        sp.bytes_in += n as u64;
                        moved += n as u64;
                        progress = true;
                    }
                    Err(e) if would_block(&e) => s.readable = false,
                    Err(e) if interrupted(&e) => progress = true,
                    Err(e) => return Err((src, e)),
                }
            }
            if !progress {
                break;
            }
        }
        self.stats.relayed_bytes += moved;
        // the source said FIN and all it sent is delivered: pass the FIN on
        let read_closed = s.pipe().is_some_and(|p| p.read_closed);
        if read_closed && d.relay_out.is_empty() {
            if let Some(dp) = d.pipe_mut() {
                if !dp.write_shut {
                    dp.write_shut = true;
                    if let Err(e) = d.stream.shutdown(Shutdown::Write) {
                        if e.kind() != io::ErrorKind::NotConnected {
                            return Err((dst, e));
                        }
                    }
                }
            }
        }
        // the budget ran out with work left in this direction: edge-
        // triggered readiness will not be reported again, so come back
        let can_read =
            s.readable && s.pipe().is_some_and(|p| !p.read_closed) && d.relay_out.free() > 0;
        let can_write = d.writable && !d.relay_out.is_empty();
        let more = can_read || can_write;
        if more {
            self.again.push(src);
        }
        Ok(())
    }

    /// Both directions finished (FIN each way, everything delivered).
    pub(super) fn check_pair_done(&mut self, a: usize, b: usize) {
        let done = |c: Option<&Conn>| {
            c.and_then(|c| c.pipe())
                .is_some_and(|p| p.read_closed && p.write_shut)
        };
        if done(self.conns.get(a)) && done(self.conns.get(b)) {
            self.close(a, "game pipe finished".into());
            self.close(b, "game pipe finished".into());
        }
    }

    /// The partner of `key` is gone: flush what is buffered for it, then
    /// close it (D28 propagate: the host's vcmiserver sees the player leave).
    pub(super) fn abandon_peer(&mut self, key: usize) {
        if self.conns.contains(key) {
            self.begin_closing(key, "partner pipe closed".into());
        }
    }
}

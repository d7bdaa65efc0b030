//! Legacy game pipes: the handshake (frames, then one raw endianness byte),
//! pairing with the partner (echo, then the bytes held for it), and the relay
//! pump with its back-pressure and half-close.

use super::close::Cleanup;
use super::*;
use crate::buffers::RelayBuf;
use crate::legacy::handshake::{PipeStep, Role};
use crate::legacy::pipe_half::{HalfClose, PipeHalf};
use crate::legacy::relay::Placement;

/// The pipe half of a connection, if it is one.
fn half(c: &Conn) -> Option<&PipeHalf> {
    match &c.state {
        State::Pipe(p) => Some(p),
        _ => None,
    }
}

fn half_mut(c: &mut Conn) -> Option<&mut PipeHalf> {
    match &mut c.state {
        State::Pipe(p) => Some(p),
        _ => None,
    }
}

impl Server {
    /// Readiness on a registered pipe: relay if paired, else hold its bytes.
    pub(super) fn pipe_service(&mut self, key: usize) {
        match self.conns.get(key).and_then(half).map(|p| p.peer) {
            Some(Some(peer)) => self.relay_service(key, peer),
            Some(None) => self.waiting_pipe_service(key),
            None => {}
        }
    }

    /// A paired pipe: a game is running through it (its pump writes for it).
    pub(super) fn is_running_game(&self, key: usize) -> bool {
        self.conns
            .get(key)
            .and_then(half)
            .is_some_and(|p| p.peer.is_some())
    }

    /// Back-pressure: read a pipe only while its read side is open and what
    /// it sends has somewhere to go (its own buffer while it waits, its
    /// partner's once paired, resumed when a quarter of that is free).
    pub(super) fn pipe_wants_read(&self, key: usize) -> bool {
        let Some(p) = self.conns.get(key).and_then(half) else {
            return false;
        };
        p.half_close.read_open()
            && match p.peer {
                None => p.pending.free() > 0,
                Some(peer) => self
                    .conns
                    .get(peer)
                    .is_some_and(|pc| pc.relay_out.is_empty() || pc.relay_out.can_resume()),
            }
    }

    /// Whether the pipe's peer may still send (its read side is open).
    pub(super) fn pipe_read_open(&self, key: usize) -> bool {
        self.conns
            .get(key)
            .and_then(half)
            .is_some_and(|p| p.half_close.read_open())
    }

    /// epoll reported a hang-up or an error on a pipe. Read normally it is
    /// seen by the next read; a paused source (its partner's buffer is full)
    /// is not read, so `paused_source_hung_up` handles it.
    pub(super) fn pipe_hangup(&mut self, key: usize, error: bool) {
        let paired = self.is_running_game(key);
        if !paired || self.pipe_wants_read(key) || !self.pipe_read_open(key) {
            return; // it will be read, or it was already seen closing
        }
        self.paused_source_hung_up(key, error, "pipe");
    }

    /// A pipe's own deadline: an unpaired one waited `--pipe-wait` for its
    /// partner; a paired one closed while paused and its partner did not
    /// drain in time.
    pub(super) fn pipe_deadline(&mut self, key: usize) {
        let paused = !self.pipe_wants_read(key) && self.pipe_read_open(key);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.deadline = None;
        let Some(p) = half(c) else {
            return;
        };
        match p.peer {
            None => {
                self.stats.drop_timeout += 1;
                let why = format!("no partner pipe within {}s", self.cfg.pipe_wait.as_secs());
                self.close(key, why);
            }
            Some(_) => self.paused_source_timed_out(key, paused, "pipe"),
        }
    }

    /// The first frame said `Aiya!`: a game process presents itself.
    pub(super) fn start_pipe(&mut self, key: usize, frame: &[u8]) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.state = State::PipeHandshake(Box::default());
        // counted in "currently playing" from here (D34); the cleanup of
        // the pipe states takes it back
        self.counters.pipes_open += 1;
        self.set_deadline(key, Instant::now() + self.cfg.pipe_timeout);
        self.pipe_handshake_frame(key, frame);
    }

    pub(super) fn pipe_handshake_frame(&mut self, key: usize, frame: &[u8]) {
        let Some(Conn {
            state: State::PipeHandshake(hs),
            ..
        }) = self.conns.get_mut(key)
        else {
            return;
        };
        match hs.push_frame(frame) {
            PipeStep::More => {}
            // the frame loop hands over the raw byte: `take_endian_byte`
            PipeStep::NeedEndianByte => {}
            PipeStep::Reject(why) => {
                self.stats.drop_bad_handshake += 1;
                self.close(key, why);
            }
        }
    }

    /// The uuid frame came: the next byte is the raw endianness byte, and
    /// whatever follows it is already relay traffic.
    pub(super) fn take_endian_byte(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.decoder.buffered() == 0 {
            return;
        }
        let mut rest = c.decoder.take_rest();
        let byte = rest[0];
        let after = rest.split_off(1).to_vec();
        self.finish_pipe_handshake(key, byte, after);
    }

    /// The handshake is complete: register with the session its uuid names,
    /// then wait for a partner or pair with the one waiting. `after` is what
    /// came right behind the endianness byte (relay traffic already).
    fn finish_pipe_handshake(&mut self, key: usize, byte: u8, after: Vec<u8>) {
        let Some(Conn {
            state: State::PipeHandshake(hs),
            ..
        }) = self.conns.get_mut(key)
        else {
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
        let Some(place) = self.legacy.relay.register(&uuid, role, key) else {
            self.stats.drop_bad_handshake += 1;
            self.close(key, format!("pipe with unknown uuid {uuid} as {role:?}"));
            return;
        };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let State::PipeHandshake(hs) = std::mem::replace(&mut c.state, State::New) else {
            return;
        };
        c.deadline = None;
        let session = match place {
            Placement::Waiting(s) | Placement::Paired { session: s, .. } => s,
        };
        let mut half = PipeHalf {
            session,
            peer: None,
            echo: hs.replay,
            pending: RelayBuf::default(),
            half_close: HalfClose::Normal,
            playing: true,
            bytes_in: after.len() as u64,
            bytes_out: 0,
            since: Instant::now(),
        };
        log::info!(
            "[S {}] {} pipe {} registered",
            self.legacy.relay.session_name(session),
            if role == Role::Server {
                "server"
            } else {
                "client"
            },
            c.addr
        );
        match place {
            Placement::Waiting(_) => {
                if !after.is_empty() {
                    half.pending.push(&after);
                }
                c.state = State::Pipe(Box::new(half));
                // a partner that never comes must not hold it for ever
                self.set_deadline(key, Instant::now() + self.cfg.pipe_wait);
            }
            Placement::Paired { waiting, .. } => {
                half.peer = Some(waiting);
                c.relay_out.push(&std::mem::take(&mut half.echo));
                c.state = State::Pipe(Box::new(half));
                self.pair(waiting, key, after);
            }
        }
        self.mark_dirty(key);
    }

    /// Completes a pair: each side gets its own handshake back (the echo,
    /// D26), then what the other side sent before pairing (D27 fix), then
    /// live bytes. `arriving` has its echo queued already; `arriving_sent` is
    /// what it sent behind its handshake.
    fn pair(&mut self, waiting: usize, arriving: usize, arriving_sent: Vec<u8>) {
        let Some((wc, ac)) = self.conns.get2_mut(waiting, arriving) else {
            return;
        };
        let Some(wp) = half_mut(wc) else {
            return;
        };
        wp.peer = Some(arriving);
        let pending = std::mem::take(&mut wp.pending);
        let echo = std::mem::take(&mut wp.echo);
        wc.deadline = None; // its wait for a partner is over
        wc.relay_out.push(&echo);
        if !arriving_sent.is_empty() {
            wc.relay_out.push(&arriving_sent);
        }
        if !pending.is_empty() {
            ac.relay_out.push(pending.as_slice());
        }
        log::info!("[+] pipes {} and {} paired", wc.addr, ac.addr);
        self.ops.pipes_paired += 1;
        self.mark_dirty(waiting);
        self.relay_service(arriving, waiting);
    }

    /// A registered pipe without a partner: hold what it sends (bounded).
    pub(super) fn waiting_pipe_service(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let State::Pipe(p) = &mut c.state else {
            return;
        };
        while c.readable && p.pending.free() > 0 {
            match p.pending.read_from(&mut c.stream) {
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
        if p.pending.free() == 0 {
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
                        if let Some(p) = half_mut(d) {
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
            if s.readable && sp.half_close.read_open() && d.relay_out.free() > 0 {
                match d.relay_out.read_from(&mut s.stream) {
                    Ok(0) => {
                        sp.half_close = sp.half_close.read_closed();
                        progress = true;
                        // a player whose game closed is no longer "playing",
                        // even while its socket waits for the other side
                        if std::mem::take(&mut sp.playing) {
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
        let read_closed = half(s).is_some_and(|p| !p.half_close.read_open());
        if read_closed && d.relay_out.is_empty() {
            if let Some(dp) = half_mut(d) {
                if dp.half_close.write_open() {
                    dp.half_close = dp.half_close.write_shut();
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
        let can_read = s.readable
            && half(s).is_some_and(|p| p.half_close.read_open())
            && d.relay_out.free() > 0;
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
            c.and_then(|c| half(c))
                .is_some_and(|p| p.half_close == HalfClose::Closed)
        };
        if done(self.conns.get(a)) && done(self.conns.get(b)) {
            self.close(a, "game pipe finished".into());
            self.close(b, "game pipe finished".into());
        }
    }

    /// The partner of `key` is gone: flush what is buffered for it, then
    /// close it (D28 propagate: the host's vcmiserver sees the player leave).
    pub(super) fn abandon_peer(&mut self, key: usize) {
        self.begin_closing(key, "partner pipe closed".into(), Cleanup::Run);
    }

    // ---- cleanup when a pipe closes ------------------------------------------------

    /// A game process left during its handshake: it no longer counts as
    /// playing.
    pub(super) fn pipe_handshake_left(&mut self) {
        self.counters.pipes_open = self.counters.pipes_open.saturating_sub(1);
    }

    /// A registered pipe closes: its partner is let go (D28 propagate), its
    /// session may start its grace period, and it no longer counts as playing.
    pub(super) fn pipe_left(&mut self, key: usize, half: PipeHalf) {
        if let Some(peer) = half.peer {
            // the first of a pair to end ends its relay session
            self.ops.durations.observe(half.since.elapsed());
            if let Some(pp) = self.conns.get_mut(peer).and_then(|pc| half_mut(pc)) {
                pp.peer = None;
            }
            self.abandon_peer(peer);
        }
        if half.playing {
            self.counters.pipes_open = self.counters.pipes_open.saturating_sub(1);
        }
        let sid = half.session;
        if let Some(at) =
            self.legacy
                .relay
                .pipe_closed(sid, key, Instant::now(), self.cfg.session_grace)
        {
            self.timers.schedule(at, Timer::Session(sid));
        }
        log::info!(
            "[S {}] pipe ended after {:.1}s: {} bytes in, {} bytes out",
            self.legacy.relay.session_name(sid),
            half.since.elapsed().as_secs_f64(),
            half.bytes_in,
            half.bytes_out
        );
    }
}

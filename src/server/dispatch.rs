//! Framed connections: reading frames, the first frame's verdict (one arm
//! per protocol kind) and routing every later frame to its kind's glue.

use super::*;
use crate::classify::{classify, FirstFrame};

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
                // a flood of partial frames is caught read by read
                self.recharge(key);
                self.shed_over_budget();
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
                Ok(_) if matches!(&c.state, State::Json(j) if j.relay.is_some()) => {
                    // paired as a game proxy half: its pump reads from now on
                    self.again.push(key);
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
        if c.proxy_header.is_some() {
            return self.proxy_header_bytes(key, data);
        }
        c.decoder.extend(data);
        self.process_frames(key);
    }

    pub(super) fn process_frames(&mut self, key: usize) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            match &c.state {
                State::PipeHandshake(hs) if hs.awaits_endian_byte() => {
                    // the endianness byte follows the uuid frame unframed
                    return self.take_endian_byte(key);
                }
                State::Json(j) if j.relay.is_some() => return, // relayed now
                State::New | State::Lobby(_) | State::PipeHandshake(_) | State::Json(_) => {}
                State::Pipe(_) | State::Admin(_) | State::Closing => return,
            }
            match c.decoder.next_frame() {
                Ok(Some(frame)) => {
                    c.frame_started = None;
                    self.on_frame(key, frame)
                }
                Ok(None) => return self.partial_frame_started(key),
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
        let Some(c) = self.conns.get(key) else {
            return;
        };
        if frame.is_empty() {
            if matches!(c.state, State::New | State::Json(_)) {
                // a heartbeat (LOBBY-JSON.md §1.1): before the first non-empty
                // frame it leaves the connection unclassified (a JSON peer may
                // start with them), from a JSON peer it is swallowed
                return;
            }
            // D14, replicated: the legacy reference reads an empty frame from
            // a launcher or a pipe as EOF.
            self.close(key, "empty frame".into());
            return;
        }
        match &c.state {
            State::New => self.on_first_frame(key, &frame),
            State::Lobby(_) => self.lobby_frame(key, &frame),
            State::PipeHandshake(_) => self.pipe_handshake_frame(key, &frame),
            State::Json(_) => self.json_frame(key, &frame),
            State::Pipe(_) | State::Admin(_) | State::Closing => {}
        }
    }

    /// The seam: the first non-empty frame says which kind serves the
    /// connection from now on (`crate::classify`).
    fn on_first_frame(&mut self, key: usize, frame: &[u8]) {
        match classify(frame) {
            FirstFrame::LegacyLobby(header) => self.start_lobby(key, header, frame),
            FirstFrame::LegacyPipe => self.start_pipe(key, frame),
            FirstFrame::JsonPeer => self.start_json(key, frame),
            FirstFrame::Invalid(reason) => {
                self.stats.drop_bad_handshake += 1;
                self.refuse(key, &reason, format!("bad lobby header: {reason}"));
            }
        }
    }
}

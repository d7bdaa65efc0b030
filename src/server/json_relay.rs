//! The proxy-mode game relay of the JSON lobby (LOBBY-JSON.md §1.10): after
//! the rules' `Pair`, each non-empty frame one half sends is re-sent to the
//! other with the same payload, streamed through a `json::conn::FrameStreamer`
//! into the peer's bounded `RelayBuf` (never a whole frame in memory; up to
//! `--max-frame-game`), heartbeats consumed per hop. Flow control is the
//! legacy relay's: read a half only while its peer's buffer has room, resume
//! once a quarter is free; the pump writes paired halves (`output::flush`
//! leaves them alone). Teardown: a half that ends is closed at once, and the
//! rules close its peer after flushing (`json_lobby::json_left`).

use super::json_lobby::json_conn;
use super::*;

/// Why a pump stopped a pair.
struct PumpEnd {
    side: usize,
    why: String,
    too_big: bool,
}

impl Server {
    /// The other half of a paired JSON connection.
    fn json_peer(&self, key: usize) -> Option<usize> {
        self.conns
            .get(key)
            .and_then(json_conn)
            .and_then(|j| j.peer())
    }

    /// A paired half (or its peer) is ready: move bytes both ways.
    pub(super) fn json_relay_service(&mut self, key: usize) {
        let Some(peer) = self.json_peer(key) else {
            return;
        };
        let mut scratch = std::mem::take(&mut self.relay_scratch);
        scratch.resize(crate::buffers::RELAY_BUF, 0);
        let r = self
            .json_pump(key, peer, &mut scratch)
            .and_then(|()| self.json_pump(peer, key, &mut scratch));
        self.relay_scratch = scratch;
        if let Err(end) = r {
            if end.too_big {
                self.stats.drop_frame_too_big += 1;
            }
            // its rules' disconnect closes the other half after flushing
            self.close(end.side, end.why);
            return;
        }
        self.mark_dirty(key);
        self.mark_dirty(peer);
    }

    /// Whether a paired half may be read: its peer's buffer has room (or,
    /// after a pause, a quarter of it).
    pub(super) fn json_relay_wants_read(&self, key: usize) -> bool {
        let Some(peer) = self.json_peer(key) else {
            return false;
        };
        self.conns
            .get(peer)
            .is_some_and(|pc| pc.relay_out.is_empty() || pc.relay_out.can_resume())
    }

    /// epoll reported a hang-up or an error on a paired half. Read normally
    /// it is seen by the next read; a paused half (its peer's buffer is
    /// full) is not read, so `paused_source_hung_up` handles it, as for a
    /// legacy pipe.
    pub(super) fn json_relay_hangup(&mut self, key: usize, error: bool) {
        if !self.json_relay_wants_read(key) {
            self.paused_source_hung_up(key, error, "game proxy half");
        }
    }

    /// The deadline a paused half's FIN set (`paused_source_hung_up`).
    pub(super) fn json_relay_deadline(&mut self, key: usize) {
        let paused = !self.json_relay_wants_read(key);
        self.paused_source_timed_out(key, paused, "game proxy half");
    }

    /// Whether the pump writes this connection (a paired, not closing half).
    pub(super) fn is_json_relayed(&self, key: usize) -> bool {
        self.conns
            .get(key)
            .and_then(json_conn)
            .is_some_and(|j| j.relay.is_some())
    }

    /// Writes what `dst` has queued, reads `src` into `dst`'s buffer, until
    /// neither makes progress or the budget is spent.
    fn json_pump(&mut self, src: usize, dst: usize, scratch: &mut [u8]) -> Result<(), PumpEnd> {
        let Some((s, d)) = self.conns.get2_mut(src, dst) else {
            return Ok(());
        };
        let end = |side: usize, why: String| PumpEnd {
            side,
            why,
            too_big: false,
        };
        let mut moved = 0u64;
        for _ in 0..READ_BUDGET {
            let mut progress = false;
            if d.writable && d.has_output() {
                // lobby messages queued before pairing go first
                let r = if d.out.is_empty() {
                    d.relay_out.write_to(&mut d.stream)
                } else {
                    d.out.write_to(&mut d.stream)
                };
                match r {
                    Ok(_) => progress = true,
                    Err(e) if would_block(&e) => d.writable = false,
                    Err(e) if interrupted(&e) => progress = true,
                    Err(e) => return Err(end(dst, eof_reason(Some(&e)))),
                }
            }
            let State::Json(sj) = &mut s.state else {
                break;
            };
            let Some(half) = sj.relay.as_mut() else {
                break;
            };
            let room = d.relay_out.free().min(scratch.len());
            if s.readable && room > 0 {
                match s.stream.read(&mut scratch[..room]) {
                    Ok(0) => return Err(end(src, "game proxy half closed by peer".into())),
                    Ok(n) => {
                        half.bytes_in += n as u64;
                        moved += n as u64;
                        progress = true;
                        if let Err(len) = half.streamer.feed(&scratch[..n], &mut d.relay_out) {
                            return Err(PumpEnd {
                                side: src,
                                why: format!("game frame of {len} bytes over max-frame-game"),
                                too_big: true,
                            });
                        }
                    }
                    Err(e) if would_block(&e) => s.readable = false,
                    Err(e) if interrupted(&e) => progress = true,
                    Err(e) => return Err(end(src, eof_reason(Some(&e)))),
                }
            }
            if !progress {
                break;
            }
        }
        self.stats.relayed_bytes += moved;
        // the budget ran out with work left: edge-triggered readiness will
        // not be reported again, so come back next turn
        let can_read = s.readable && d.relay_out.free() > 0;
        let can_write = d.writable && d.has_output();
        if can_read || can_write {
            self.again.push(src);
        }
        Ok(())
    }
}

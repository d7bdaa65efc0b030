//! The per-connection state of a JSON peer (`conn::State::Json`) and the
//! incremental frame parser of the proxy-mode game relay (LOBBY-JSON.md
//! §1.1, §1.10). Socket-free; the glue is `server::json_lobby` and
//! `server::json_relay`.
//!
//! LIFECYCLE
//! ```text
//!   (first frame `{`) ──▶ lobby: frames ─▶ parse_request ─▶ JsonLobby rules
//!        │                 (login timeout until clientLogin / serverLogin /
//!        │                  a proxy login; our heartbeat every period)
//!        └── rules' Pair{server, client} ──▶ relayed: bytes ─▶ FrameStreamer ─▶ peer's RelayBuf
//!                                             (never back to the rules; heartbeats dropped
//!                                              per hop, ours only at frame boundaries)
//!   either ──close──▶ conn::State::Closing (on_disconnect once; a relayed side closes its peer)
//! ```

use crate::buffers::RelayBuf;
use crate::frame::HEADER_LEN;

/// A JSON connection: in the lobby, or one half of a proxy pair.
#[derive(Debug, Default)]
pub struct JsonConn {
    /// Set once the rules paired it (§1.10): from then on its bytes are
    /// relayed, not parsed.
    pub relay: Option<RelayHalf>,
    /// Frames parsed for this connection (lobby side), for the log.
    pub frames_in: u64,
}

impl JsonConn {
    /// The partner connection, if paired.
    pub fn peer(&self) -> Option<usize> {
        self.relay.as_ref().map(|r| r.peer)
    }
}

/// One half of a proxy pair: who gets what this connection sends, and
/// where the parser stands in its byte stream.
#[derive(Debug)]
pub struct RelayHalf {
    pub peer: usize,
    /// Parses what this connection sends (its bytes go to the peer).
    pub streamer: FrameStreamer,
    pub bytes_in: u64,
}

impl RelayHalf {
    pub fn new(peer: usize, max_frame: usize) -> Self {
        RelayHalf {
            peer,
            streamer: FrameStreamer::new(max_frame),
            bytes_in: 0,
        }
    }
}

/// Streams frames from one byte stream into another without holding a
/// whole frame: a header is passed on once complete (empty frames, i.e.
/// heartbeats, are dropped), then payload bytes as they arrive. Every byte
/// written corresponds to a byte read, so reading at most `free()` of the
/// destination never overfills it.
#[derive(Debug)]
pub struct FrameStreamer {
    header: [u8; HEADER_LEN],
    have: usize,
    /// Payload bytes of the current frame still to pass on.
    remaining: u64,
    max_frame: usize,
    /// Frames passed on (non-empty) and heartbeats dropped.
    pub frames: u64,
    pub heartbeats: u64,
}

impl FrameStreamer {
    pub fn new(max_frame: usize) -> Self {
        FrameStreamer {
            header: [0; HEADER_LEN],
            have: 0,
            remaining: 0,
            max_frame,
            frames: 0,
            heartbeats: 0,
        }
    }

    /// Whether the output stream is between two frames, where a heartbeat
    /// of our own may go (a partial header is not passed on yet).
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// Passes `input` on to `out`. `Err(len)`: a header announced more than
    /// the maximum; the stream cannot go on.
    pub fn feed(&mut self, mut input: &[u8], out: &mut RelayBuf) -> Result<(), u64> {
        while !input.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining.min(input.len() as u64)) as usize;
                out.push(&input[..n]);
                self.remaining -= n as u64;
                input = &input[n..];
                continue;
            }
            let n = (HEADER_LEN - self.have).min(input.len());
            self.header[self.have..self.have + n].copy_from_slice(&input[..n]);
            self.have += n;
            input = &input[n..];
            if self.have < HEADER_LEN {
                break;
            }
            self.have = 0;
            let len = u32::from_le_bytes(self.header) as u64;
            if len == 0 {
                self.heartbeats += 1; // consumed on this hop (§1.1)
                continue;
            }
            if len > self.max_frame as u64 {
                return Err(len);
            }
            self.frames += 1;
            out.push(&self.header);
            self.remaining = len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame as encode;

    fn run(chunks: &[&[u8]], max: usize) -> (Vec<u8>, Result<(), u64>, FrameStreamer) {
        let mut s = FrameStreamer::new(max);
        let mut out = RelayBuf::default();
        let mut r = Ok(());
        for c in chunks {
            r = s.feed(c, &mut out);
            if r.is_err() {
                break;
            }
        }
        (out.as_slice().to_vec(), r, s)
    }

    #[test]
    fn frames_pass_heartbeats_drop_whatever_the_split() {
        let mut input = encode(b"");
        input.extend(encode(b"hello"));
        input.extend(encode(b""));
        input.extend(encode(b""));
        input.extend(encode(&[7u8; 1000]));
        let mut want = encode(b"hello");
        want.extend(encode(&[7u8; 1000]));
        let (whole, r, s) = run(&[&input], 4096);
        assert_eq!(r, Ok(()));
        assert_eq!(whole, want);
        assert_eq!((s.frames, s.heartbeats), (2, 3));
        assert!(s.at_boundary());
        for cut in [1, 2, 3, 5, 7, 13] {
            let chunks: Vec<&[u8]> = input.chunks(cut).collect();
            assert_eq!(run(&chunks, 4096).0, want, "chunks of {cut}");
        }
    }

    #[test]
    fn mid_frame_is_not_a_boundary() {
        let f = encode(b"abcdef");
        let mut s = FrameStreamer::new(100);
        let mut out = RelayBuf::default();
        s.feed(&f[..2], &mut out).unwrap();
        assert!(s.at_boundary(), "a partial header is not passed on yet");
        assert!(out.is_empty());
        s.feed(&f[2..7], &mut out).unwrap();
        assert!(!s.at_boundary());
        s.feed(&f[7..], &mut out).unwrap();
        assert!(s.at_boundary());
        assert_eq!(out.as_slice(), &f[..]);
    }

    #[test]
    fn oversized_header_stops_the_stream() {
        let (out, r, _) = run(&[&encode(b"ok"), &[0xFF, 0xFF, 0xFF, 0xFF, 1]], 100);
        assert_eq!(r, Err(u32::MAX as u64));
        assert_eq!(out, encode(b"ok"));
        // exactly the maximum passes
        assert_eq!(run(&[&encode(&[1; 100])], 100).1, Ok(()));
    }
}

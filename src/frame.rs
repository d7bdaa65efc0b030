//! The client-to-server frame codec: a 4-byte little-endian length, then that
//! many payload bytes (PROTOCOL.md §2.1).
//!
//! Decoding is two-step, as in mini-redis: [`FrameDecoder::check`] tells
//! whether a whole frame is buffered without touching the payload, and only
//! then [`FrameDecoder::next_frame`] splits it off. The decoder never reserves
//! room for a frame it has not received: memory grows with the bytes that
//! actually arrived, never with what a length prefix claims, so a hostile
//! `FF FF FF FF` prefix costs nothing but the 4 bytes themselves.

use bytes::{Buf, Bytes, BytesMut};

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// What the buffered bytes hold, as far as framing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not a whole frame yet; `needed` more bytes would complete at least the
    /// next step (header or payload).
    Incomplete { needed: usize },
    /// A whole frame of `len` payload bytes is buffered.
    Ready { len: usize },
    /// The length prefix announces more than the configured maximum.
    TooLarge { len: u64 },
}

/// Reassembles frames from arbitrarily split reads.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: usize,
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// Changes the largest frame accepted (a connection classified as a
    /// JSON peer takes `--max-frame-json` from its second frame on).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// Appends received bytes.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes of memory the buffer holds (for the memory budget).
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Looks at the buffer without consuming anything.
    pub fn check(&self) -> Check {
        if self.buf.len() < HEADER_LEN {
            return Check::Incomplete {
                needed: HEADER_LEN - self.buf.len(),
            };
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as u64;
        if len > self.max_frame as u64 {
            return Check::TooLarge { len };
        }
        let len = len as usize;
        let have = self.buf.len() - HEADER_LEN;
        if have < len {
            Check::Incomplete { needed: len - have }
        } else {
            Check::Ready { len }
        }
    }

    /// Splits off the next whole frame's payload, if one is buffered.
    /// Returns `Err(len)` when the next prefix exceeds the maximum; the
    /// connection cannot be resynchronised after that and must be closed.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, u64> {
        match self.check() {
            Check::Incomplete { .. } => Ok(None),
            Check::TooLarge { len } => Err(len),
            Check::Ready { len } => {
                self.buf.advance(HEADER_LEN);
                Ok(Some(self.buf.split_to(len).freeze()))
            }
        }
    }

    /// Takes every buffered byte, framed or not. Used when a pipe switches
    /// from frames to raw relaying after its handshake.
    pub fn take_rest(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }

    /// Releases the buffer's memory once it is empty, so an idle connection
    /// holds no read buffer.
    pub fn shrink_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame as encode;

    #[test]
    fn whole_and_split_frames_decode_alike() {
        let mut stream = encode(b"<MSG>hi");
        stream.extend(encode(b""));
        stream.extend(encode(b"<HERE>"));
        let mut whole = FrameDecoder::new(1024);
        whole.extend(&stream);
        let mut frames = Vec::new();
        while let Some(f) = whole.next_frame().unwrap() {
            frames.push(f);
        }
        assert_eq!(frames, vec![&b"<MSG>hi"[..], &b""[..], &b"<HERE>"[..]]);

        let mut split = FrameDecoder::new(1024);
        let mut again = Vec::new();
        for b in &stream {
            split.extend(std::slice::from_ref(b));
            while let Some(f) = split.next_frame().unwrap() {
                again.push(f);
            }
        }
        assert_eq!(frames, again);
        assert_eq!(split.buffered(), 0);
    }

    #[test]
    fn oversized_prefix_is_refused_before_any_payload() {
        let mut d = FrameDecoder::new(64 * 1024);
        d.extend(&[0xFF, 0xFF, 0xFF, 0xFF, b'x']);
        assert_eq!(
            d.check(),
            Check::TooLarge {
                len: u32::MAX as u64
            }
        );
        assert_eq!(d.next_frame(), Err(u32::MAX as u64));
        // nothing was reserved for the announced 4 GiB
        assert!(d.buf.capacity() < 1024);
    }

    #[test]
    fn incomplete_reports_what_is_missing() {
        let mut d = FrameDecoder::new(100);
        d.extend(&[5, 0]);
        assert_eq!(d.check(), Check::Incomplete { needed: 2 });
        d.extend(&[0, 0, b'a']);
        assert_eq!(d.check(), Check::Incomplete { needed: 4 });
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn frame_at_exactly_the_limit_is_accepted() {
        let mut d = FrameDecoder::new(3);
        d.extend(&encode(b"abc"));
        assert_eq!(d.next_frame().unwrap().as_deref(), Some(&b"abc"[..]));
        d.extend(&encode(b"abcd"));
        assert_eq!(d.next_frame(), Err(4));
    }
}

//! One side of a legacy game pipe once its handshake is done, and the
//! half-close state of its socket.
//!
//! LIFECYCLE of a pipe half (the connection before it: `PipeHandshake`)
//! ```text
//!   handshake done ──▶ waiting (peer None; what it sends is held in `pending`;
//!                          │ closed if no partner comes within `--pipe-wait`)
//!                          │ a partner registers
//!                          ▼
//!                      paired (peer Some): gets its own handshake back (the
//!                      echo, D26), then the partner's pending bytes, then live
//!                      relay traffic; its half-close state runs as below.
//!                      Paused (its partner's buffer full) it is still watched:
//!                      a reset closes it, a FIN gives the partner
//!                      `--pipe-timeout` to drain
//!                          │ both directions Closed, an error, or the partner left
//!                          ▼
//!                      Closing (flushes what is buffered for it, then FIN)
//! ```
//! LIFECYCLE of the half-close state ([`HalfClose`], sozu's naming: what is
//! still *open* on this socket)
//! ```text
//!   Normal ──this side sent FIN──▶ WriteOpen ──its partner's FIN passed on──▶ Closed
//!      └──its partner's FIN passed on──▶ ReadOpen ──this side sent FIN──▶ Closed
//! ```

use crate::buffers::RelayBuf;
use crate::legacy::relay::SessionId;
use std::time::Instant;

/// Which directions of a paired pipe's socket are still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HalfClose {
    /// Both: reading from it and writing to it.
    #[default]
    Normal,
    /// Only reading: its partner's FIN was passed on (our write side is shut).
    ReadOpen,
    /// Only writing: it sent FIN, nothing more will be read from it.
    WriteOpen,
    /// Neither: both FINs went through.
    Closed,
}

impl HalfClose {
    pub fn read_open(self) -> bool {
        matches!(self, HalfClose::Normal | HalfClose::ReadOpen)
    }

    pub fn write_open(self) -> bool {
        matches!(self, HalfClose::Normal | HalfClose::WriteOpen)
    }

    /// This side sent FIN (a read returned 0).
    pub fn read_closed(self) -> Self {
        match self {
            HalfClose::Normal | HalfClose::WriteOpen => HalfClose::WriteOpen,
            HalfClose::ReadOpen | HalfClose::Closed => HalfClose::Closed,
        }
    }

    /// Our write side towards it was shut (its partner's FIN passed on).
    pub fn write_shut(self) -> Self {
        match self {
            HalfClose::Normal | HalfClose::ReadOpen => HalfClose::ReadOpen,
            HalfClose::WriteOpen | HalfClose::Closed => HalfClose::Closed,
        }
    }
}

/// One side of a relayed pair.
#[derive(Debug)]
pub struct PipeHalf {
    /// The session it registered in; left when the half closes.
    pub session: SessionId,
    /// The partner's slab key once paired.
    pub peer: Option<usize>,
    /// This side's own handshake, echoed back to it at pairing (D26).
    pub echo: Vec<u8>,
    /// Bytes this side sent before it had a partner, forwarded after the
    /// partner's echo (D27 fix). Reading stops when it is full.
    pub pending: RelayBuf,
    pub half_close: HalfClose,
    /// Counted in "currently playing" until its game ends its stream.
    pub playing: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub since: Instant,
}

#[cfg(test)]
mod tests {
    use super::HalfClose::*;

    #[test]
    fn half_close_reaches_closed_from_either_side_first() {
        assert_eq!(Normal.read_closed(), WriteOpen);
        assert_eq!(Normal.write_shut(), ReadOpen);
        assert_eq!(WriteOpen.write_shut(), Closed);
        assert_eq!(ReadOpen.read_closed(), Closed);
        assert_eq!(Closed.read_closed(), Closed);
        assert!(Normal.read_open() && Normal.write_open());
        assert!(!WriteOpen.read_open() && WriteOpen.write_open());
        assert!(ReadOpen.read_open() && !ReadOpen.write_open());
        assert!(!Closed.read_open() && !Closed.write_open());
    }
}

//! One side of a legacy game pipe once its handshake is done.

use crate::buffers::RelayBuf;
use crate::legacy::handshake::Role;
use crate::legacy::relay::SessionId;
use std::time::Instant;

/// One side of a relayed pair.
#[derive(Debug)]
pub struct PipeHalf {
    pub session: SessionId,
    pub role: Role,
    /// The partner's slab key once paired.
    pub peer: Option<usize>,
    /// This side's own handshake, echoed back to it at pairing (D26).
    pub replay: Vec<u8>,
    /// Bytes this side sent before it had a partner, forwarded after the
    /// partner's echo (D27 fix). Reading stops when it is full.
    pub early: RelayBuf,
    /// This side sent FIN: nothing more will be read from it.
    pub read_closed: bool,
    /// We shut down this side's write direction (its partner sent FIN).
    pub write_shut: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub since: Instant,
}

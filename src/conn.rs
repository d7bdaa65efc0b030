//! One TCP connection: its socket, buffers, readiness and protocol state.
//!
//! LIFECYCLE
//! ```text
//!   accepted ──first frame──▶ Lobby ──START / error / EOF──▶ closed
//!      │                         (flushes its queue, then FIN)
//!      └── `Aiya!` ──▶ PipeHandshake ──uuid + 1 byte──▶ Pipe (waiting)
//!                         │ unknown uuid / timeout            │ partner arrives
//!                         ▼                                    ▼
//!                       closed                          Pipe (paired) ──▶ half-closed ──▶ closed
//! ```
//! Readiness as epoll reported it (`readable`, `writable`) is kept apart from
//! what the state wants (`wants_read`, pending output); the event loop acts
//! on their intersection and registers interest from the latter, so
//! WRITABLE is asked for only while output is pending and READABLE is
//! dropped while a relay peer cannot take more (back-pressure).

use crate::charset::Charset;
use crate::frame::FrameDecoder;
use crate::handshake::{PipeHandshake, Role};
use crate::relay::SessionId;
use bytes::Bytes;
use mio::net::TcpStream;
use mio::Interest;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// Bytes one relay direction may hold before the source stops being read.
/// 256 KiB keeps a fast loopback pair busy while bounding a stalled pair's
/// cost; reading resumes once a quarter of it is free again.
pub const RELAY_BUF: usize = 256 * 1024;
pub const RELAY_RESUME: usize = RELAY_BUF / 4;

/// Per-connection protocol state.
#[derive(Debug)]
pub enum State {
    /// Accepted; its first complete frame decides what it is.
    New,
    /// A launcher (registered with the lobby under this connection's key).
    Lobby(LobbyConn),
    /// A game process presenting itself; boxed, it is short-lived.
    PipeHandshake(Box<PipeHandshake>),
    /// A game pipe, waiting for or relaying to its partner.
    Pipe(Box<PipeHalf>),
    /// Finished: flush what is queued, then close.
    Closing,
}

#[derive(Debug)]
pub struct LobbyConn {
    pub charset: Charset,
    /// Last inbound frame, for the healthcheck.
    pub last_seen: Instant,
    /// `:>>HEALTH:` sent and not answered yet.
    pub health_sent: bool,
    /// Large-lobby list refreshes owed to this client (coalesced).
    pub owe_users: bool,
    pub owe_sessions: bool,
    /// When the last list refresh was queued, for the rate limit.
    pub last_refresh: Option<Instant>,
    /// A refresh timer is pending for this client.
    pub refresh_timer: bool,
}

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

/// A bounded byte buffer for one relay direction: read straight from the
/// source socket into it, written straight from it to the destination.
#[derive(Debug, Default)]
pub struct RelayBuf {
    data: Vec<u8>,
    head: usize,
    tail: usize,
}

impl RelayBuf {
    pub fn len(&self) -> usize {
        self.tail - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Room left before the high-water mark.
    pub fn free(&self) -> usize {
        RELAY_BUF.saturating_sub(self.len())
    }

    /// Whether the source may be read again after a pause.
    pub fn can_resume(&self) -> bool {
        self.free() >= RELAY_RESUME
    }

    /// Makes contiguous room at the end, allocating on first use so idle
    /// pipes hold no buffer.
    fn make_room(&mut self) {
        if self.data.is_empty() {
            self.data = vec![0; RELAY_BUF];
        }
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        } else if self.tail == self.data.len() && self.head > 0 {
            self.data.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
    }

    /// Appends bytes (echo and early data; may exceed the mark slightly).
    pub fn push(&mut self, bytes: &[u8]) {
        self.make_room();
        if self.data.len() - self.tail < bytes.len() {
            self.data.resize(self.tail + bytes.len(), 0);
        }
        self.data[self.tail..self.tail + bytes.len()].copy_from_slice(bytes);
        self.tail += bytes.len();
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.data[self.head..self.tail]
    }

    /// One read from `src` into the free space. `Ok(0)` is EOF.
    pub fn read_from(&mut self, src: &mut impl Read) -> io::Result<usize> {
        self.make_room();
        let end = (self.head + RELAY_BUF).min(self.data.len());
        if self.tail >= end {
            return Err(io::ErrorKind::WouldBlock.into()); // full: caller pauses
        }
        let n = src.read(&mut self.data[self.tail..end])?;
        self.tail += n;
        Ok(n)
    }

    /// One write of buffered bytes to `dst`.
    pub fn write_to(&mut self, dst: &mut impl Write) -> io::Result<usize> {
        let n = dst.write(&self.data[self.head..self.tail])?;
        self.head += n;
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
        Ok(n)
    }
}

/// Ordered queue of whole lobby messages. Messages are shared `Bytes`, so a
/// broadcast is one buffer referenced from every recipient's queue.
#[derive(Debug, Default)]
pub struct OutQueue {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl OutQueue {
    pub fn push(&mut self, b: Bytes) {
        self.len += b.len();
        self.chunks.push_back(b);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One vectored write of as many queued messages as fit.
    pub fn write_to(&mut self, dst: &mut impl Write) -> io::Result<usize> {
        let slices: Vec<IoSlice<'_>> = self
            .chunks
            .iter()
            .take(64)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut n = dst.write_vectored(&slices)?;
        let written = n;
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front_mut().expect("wrote no more than queued");
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                let _ = front.split_to(n);
                n = 0;
            }
        }
        // a burst's big queue is freed once drained; a small one is kept, so
        // a broadcast costs one shared buffer, not one queue allocation per
        // recipient (at ~128 bytes per idle connection)
        if self.chunks.is_empty() && self.chunks.capacity() > 8 {
            self.chunks = VecDeque::new();
        }
        Ok(written)
    }
}

/// A connection slot in the event loop's slab.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    /// Unique over the server's life; slab keys are reused, serials are not.
    pub serial: u64,
    pub state: State,
    pub decoder: FrameDecoder,
    pub out: OutQueue,
    /// Bytes for this connection when it is a paired pipe.
    pub relay_out: RelayBuf,
    /// Readiness last reported by epoll and not yet used up.
    pub readable: bool,
    pub writable: bool,
    /// What is registered with the poller.
    pub interest: Option<Interest>,
    /// Deadline of the current state (first frame, handshake, healthcheck).
    pub deadline: Option<Instant>,
    pub close_reason: Option<String>,
    /// Counted in "currently playing" since its first frame said `Aiya!`.
    pub counted_pipe: bool,
    /// The session it registered in, released when the socket closes.
    pub pipe_session: Option<SessionId>,
}

impl Conn {
    pub fn new(stream: TcpStream, addr: SocketAddr, serial: u64, max_frame: usize) -> Self {
        Conn {
            stream,
            addr,
            serial,
            state: State::New,
            decoder: FrameDecoder::new(max_frame),
            out: OutQueue::default(),
            relay_out: RelayBuf::default(),
            readable: false,
            writable: false,
            interest: None,
            deadline: None,
            close_reason: None,
            counted_pipe: false,
            pipe_session: None,
        }
    }

    pub fn is_pipe(&self) -> bool {
        matches!(self.state, State::PipeHandshake(_) | State::Pipe(_))
    }

    pub fn pipe(&self) -> Option<&PipeHalf> {
        match &self.state {
            State::Pipe(p) => Some(p),
            _ => None,
        }
    }

    pub fn pipe_mut(&mut self) -> Option<&mut PipeHalf> {
        match &mut self.state {
            State::Pipe(p) => Some(p),
            _ => None,
        }
    }

    /// Output waiting for the socket.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.relay_out.is_empty()
    }
}

/// Errors that mean "try again later", not "the peer is gone".
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_buf_is_bounded_and_ordered() {
        let mut b = RelayBuf::default();
        let mut src: &[u8] = &[7u8; RELAY_BUF + 10];
        let mut total = 0;
        loop {
            match b.read_from(&mut src) {
                Ok(n) => total += n,
                Err(e) if would_block(&e) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(total, RELAY_BUF);
        assert_eq!(b.free(), 0);
        let mut sink = Vec::new();
        b.write_to(&mut sink).unwrap();
        assert_eq!(sink.len(), RELAY_BUF);
        assert!(b.is_empty());
        b.push(b"abc");
        b.push(b"def");
        assert_eq!(b.as_slice(), b"abcdef");
    }

    #[test]
    fn out_queue_partial_writes_keep_order() {
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(3);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b":>>A:1"));
        q.push(Bytes::from_static(b":>>B:2"));
        let mut t = Trickle(Vec::new());
        while !q.is_empty() {
            q.write_to(&mut t).unwrap();
        }
        assert_eq!(t.0, b":>>A:1:>>B:2");
    }
}

#[cfg(test)]
mod size_tests {
    /// Idle connections must stay small (issue: ≤ 2 KiB user space each).
    #[test]
    fn connection_state_is_compact() {
        let conn = std::mem::size_of::<super::Conn>();
        eprintln!("Conn: {conn} bytes");
        assert!(conn <= 512, "Conn grew to {conn} bytes");
    }
}

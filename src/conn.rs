//! One TCP connection: its socket, buffers, readiness, and the state of
//! whichever protocol kind serves it. The state types of each kind live in
//! that kind's modules (`legacy::lobby_conn`, `legacy::pipe_half`, ...).
//!
//! LIFECYCLE
//! ```text
//!   New ──first non-empty frame: crate::classify──┬─ legacy header ──▶ Lobby ──START / error / EOF──┐
//!    │ (no frame in time, empty frame,            ├─ `Aiya!` ──▶ PipeHandshake ──uuid + 1 byte──▶ Pipe
//!    │  refused header)                           │     (unknown uuid / timeout)      (waiting, paired,
//!    ▼                                            │                                    half-closed) │
//!   Closing ◀─────────────────────────────────────┴────────────────────────────────────────────────┘
//!     (server::close: the kind's cleanup once, then flush what is queued, then FIN and removal)
//! ```
//! A kind added later (the JSON lobby) is one more arm out of `New` and one
//! more variant of [`State`]. Admin HTTP clients (`--admin-listen`) come
//! from their own listeners straight into `Admin` (one request, one answer,
//! then `Closing`; `server::admin`). A connection from a
//! `--proxy-protocol-from` source stays `New` with `proxy_header` set until
//! its PROXY header is read (`server::proxy_header`).
//! The JSON lobby (first frame `{`) is one more arm out of `New`:
//! [`State::Json`], its own LIFECYCLE in `json::conn`. Empty frames before the
//! first non-empty one are heartbeats and leave a connection `New`.
//!
//! Readiness as epoll reported it (`readable`, `writable`) is kept apart from
//! what the state wants (`wants_read`, pending output); the event loop acts
//! on their intersection and registers interest from the latter, so
//! WRITABLE is asked for only while output is pending and READABLE is
//! dropped while a relay peer cannot take more (back-pressure).

use crate::frame::FrameDecoder;
use crate::json::conn::JsonConn;
use crate::legacy::handshake::PipeHandshake;
use crate::legacy::lobby_conn::LobbyConn;
use crate::legacy::pipe_half::PipeHalf;
use mio::net::TcpStream;
use mio::Interest;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

// The buffers' old home, still imported from here by the benches.
pub use crate::buffers::{OutQueue, RelayBuf, RELAY_BUF, RELAY_RESUME};

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
    /// An admin HTTP client (`--admin-listen`): one request, one answer.
    Admin(Box<crate::ops::admin_http::AdminConn>),
    /// A VCMI 1.5+ peer of the JSON lobby, or a proxy half relaying a game
    /// (`json::conn`); boxed to keep idle connections small.
    Json(Box<JsonConn>),
    /// Finished: its kind's cleanup has run; flush what is queued, then
    /// close (`server::close`).
    Closing,
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
    /// Why it is closing, for the disconnect log line (the first reason wins).
    pub close_reason: Option<String>,
    /// When the first byte of the frame being received arrived (framed
    /// kinds); `--frame-timeout` runs from it.
    pub frame_started: Option<Instant>,
    /// A `Timer::Frame` is pending for this connection (one at a time).
    pub frame_timer: bool,
    /// What the memory budget has charged to this connection
    /// (`crate::budget`).
    pub charged: crate::budget::Charge,
    /// It holds a `--max-per-ip` slot under `addr`'s IP (released at close).
    pub ip_slot: bool,
    /// From a `--proxy-protocol-from` source: the PROXY header's bytes so
    /// far; `None` once it is read (or for anybody else).
    pub proxy_header: Option<Box<Vec<u8>>>,
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
            frame_started: None,
            frame_timer: false,
            charged: crate::budget::Charge::default(),
            ip_slot: false,
            proxy_header: None,
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
mod size_tests {
    /// Idle connections must stay small (issue: ≤ 2 KiB user space each).
    #[test]
    fn connection_state_is_compact() {
        let conn = std::mem::size_of::<super::Conn>();
        eprintln!("Conn: {conn} bytes");
        assert!(conn <= 512, "Conn grew to {conn} bytes");
    }
}

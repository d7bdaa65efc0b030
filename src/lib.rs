//! vcmi-proxy: the lobby and game relay server for VCMI 1.1–1.4 online play,
//! wire-compatible with the original Python `proxy-server`.
//!
//! Layout, from the wire inwards:
//! - [`server`]: the event loop. One `mio::Poll` on one thread, every socket a
//!   slab entry; it dispatches readiness, runs timers and owns all state.
//!   Its submodules hold the frame path into the lobby (`frames`), the relay
//!   pump (`pipes`) and the timers (`deadlines`).
//! - [`conn`]: one connection: socket, read and write buffers, readiness, and
//!   its state (handshake, lobby client, pipe half).
//! - [`frame`]: the length-prefixed frame codec (check, then parse).
//! - [`handshake`]: the first frame's verdict (lobby header or game pipe) and
//!   the pipe handshake of VCMI's game processes.
//! - [`lobby`]: the lobby rules, pure and socket-free.
//! - [`relay`]: started sessions and pipe pairing.
//! - [`timers`]: deadlines that set the poll timeout.
//! - [`config`], [`logging`]: command line and log files.
//! - [`charset`], [`text`]: encodings and Python-compatible text rules.
//! - [`sys`]: socket options and limits std does not expose.

pub mod charset;
pub mod config;
pub mod conn;
pub mod frame;
pub mod handshake;
pub mod lobby;
pub mod logging;
pub mod ops;
pub mod relay;
pub mod server;
pub mod sys;
pub mod text;
pub mod timers;

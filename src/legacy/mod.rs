//! The VCMI 1.1–1.4 protocols (PROTOCOL.md): the `<TAG>value` lobby of the
//! launchers and the raw "Aiya!" game pipes between vcmiclient and vcmiserver.
//!
//! Socket-free rules and per-connection state types; the server glue that
//! drives them is `server::legacy_lobby` and `server::legacy_pipe`.
//!
//! - [`lobby`]: the lobby rules (users, chat, rooms, ready and start), split
//!   by command family.
//! - [`handshake`]: the lobby header of a launcher's first frame and the pipe
//!   handshake of a game process.
//! - [`lobby_conn`]: what the loop keeps per lobby connection (encoding,
//!   healthcheck, owed list refreshes).
//! - [`pipe_half`]: one side of a game pipe, with its half-close state.
//! - [`relay`]: started sessions and pipe pairing.
//! - [`charset`], [`text`]: the launchers' encodings and Python-compatible
//!   text rules.

pub mod charset;
pub mod handshake;
pub mod lobby;
pub mod lobby_conn;
pub mod pipe_half;
pub mod relay;
pub mod text;

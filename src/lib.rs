//! vcmi-proxy: the lobby and game relay server for VCMI online play: for
//! 1.1–1.4 wire-compatible with the original Python `proxy-server`, and on
//! the same port the VCMI 1.5+ JSON lobby of VCMI's own `vcmilobby`.
//!
//! Layout, from the wire inwards:
//! - [`server`]: the event loop. One `mio::Poll` on one thread, every socket a
//!   slab entry; it dispatches readiness, runs timers and owns all state. Its
//!   submodules: shared `accept`, `dispatch` (frames and the first-frame
//!   verdict), `close`, `output`, `deadlines`; per protocol kind the glue
//!   `legacy_lobby`, `legacy_pipe`, `json_lobby` and `json_relay`; the
//!   operators' `operators`, `admin`, `proxy_header` and `shedding`.
//! - [`classify`]: the first frame's verdict, the one seam between protocol
//!   kinds.
//! - [`conn`]: one connection: socket, buffers, readiness, and which kind's
//!   state it is in.
//! - [`buffers`]: the message queue and the relay byte buffer.
//! - [`frame`]: the length-prefixed frame codec (check, then parse).
//! - [`legacy`]: the VCMI 1.1–1.4 protocols' rules and state: handshakes,
//!   pipe pairing, charsets, text rules, and `legacy::lobby`, the lobby
//!   rules, pure and socket-free.
//! - [`json`]: the VCMI 1.5+ JSON lobby: parser, requests, rules, SQLite store.
//! - [`ops`]: operators' features, socket-free: admin HTTP, metrics, status,
//!   PROXY protocol, bans, MOTD, vcmilobby's HTTP API.
//! - [`budget`]: the global memory budget.
//! - [`wire`]: what clients send, as bytes (tests, benches, fuzz, vcmi-load).
//! - [`timers`]: deadlines that set the poll timeout.
//! - [`token_bucket`]: the flood-control bucket of both lobbies.
//! - [`config`], [`logging`]: command line and log files.
//! - [`sys`]: socket options and limits std does not expose.

pub mod budget;
pub mod buffers;
pub mod classify;
pub mod config;
pub mod conn;
pub mod frame;
pub mod json;
pub mod legacy;
pub mod logging;
pub mod ops;
pub mod server;
pub mod sys;
pub mod timers;
pub mod token_bucket;

// Old paths of the legacy modules, still used by `lobby` (`crate::legacy::text`),
// the benches, fuzz targets and property tests. Drop once those import from
// `legacy::` (after the lobby moves under it).
pub use legacy::{charset, handshake, relay, text};
pub mod wire;

//! The VCMI 1.5+ JSON lobby protocol (LOBBY-JSON.md §1), served on the same
//! port as the legacy lobby (issue 12). Socket-free pieces, from the wire
//! inwards:
//! - [`parse`]: a frame payload to a validated [`request::Request`]
//!   (VCMI's strict JSON dialect + the lobbyProtocol schemas);
//! - [`request`]: the requests the lobby rules consume (shared contract);
//! - [`store`]: what the rules need from persistent storage (shared
//!   contract);
//! - [`sqlite`]: that storage on vcmilobby's own SQLite schema
//!   (`lobby.sql`), so an existing vcmiLobby.db can be taken over, plus the
//!   queries behind the HTTP API (§1.13).

pub mod parse;
// The two contract files are kept byte-identical to the shared contract
// (notes/contract/), which is not laid out the way rustfmt would.
#[rustfmt::skip]
pub mod request;
pub mod sqlite;
#[rustfmt::skip]
pub mod store;

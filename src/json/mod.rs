//! The VCMI 1.5+ JSON lobby (LOBBY-JSON.md §1): what 1.5+ game clients and
//! match servers (vcmiserver) speak, served on the same port as the legacy
//! lobby.
//!
//! From the wire inwards:
//! - [`parse`]: a frame payload to a validated [`request::Request`]
//!   (VCMI's strict JSON dialect + the lobbyProtocol schemas).
//! - [`request`]: the validated incoming messages (the parser's output).
//! - [`lobby`]: the rules, socket-free: accounts, chat, rooms, match servers,
//!   proxy pairing, presence. Input is a [`request::Request`] from a
//!   connection id, output is a [`lobby::JsonOutbox`] of payloads to send,
//!   connections to close and proxy pairs to forward between.
//! - [`writer`]: outgoing messages to frame payloads, never with a `\u`
//!   escape (VCMI's parser cannot read them, §1.2).
//! - [`store`]: what the rules persist, as a trait; [`sqlite`] implements it
//!   on vcmilobby's own schema (`lobby.sql`), so an existing vcmiLobby.db can
//!   be taken over, plus the queries behind the HTTP API (§1.13).

pub mod conn;
pub mod lobby;
pub mod parse;
pub mod request;
pub mod sqlite;
pub mod store;
pub mod timed_store;
pub mod writer;

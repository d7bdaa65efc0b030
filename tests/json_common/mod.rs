//! Support of the JSON-lobby conformance replay (`tests/json_conformance.rs`): the transcript files,
//! the matcher of expected messages, and blocking connections whose reader threads turn the byte
//! stream into frames on a channel. Only `std` and serde_json.

pub mod conn;
pub mod matcher;
pub mod transcript;

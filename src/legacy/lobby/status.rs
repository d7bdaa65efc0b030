//! Read-only views of the lobby for the admin endpoint (`/metrics`,
//! `/api/v1/status`): counts and room summaries, never a password or an
//! address.

use super::Lobby;
use crate::ops::status::RoomStatus;
use std::collections::BTreeMap;

impl Lobby {
    /// Logged-in users by protocol version (1..=5).
    pub fn users_by_protocol(&self) -> BTreeMap<u8, u64> {
        let mut by = BTreeMap::new();
        for (_, c) in self.clients.authed() {
            *by.entry(c.protocol().version()).or_insert(0) += 1;
        }
        by
    }

    /// The rooms waiting in the lobby (a started room leaves the table and
    /// is counted as a relay session instead).
    pub fn room_summaries(&self) -> Vec<RoomStatus> {
        self.rooms
            .iter()
            .map(|r| RoomStatus {
                name: r.name().to_string(),
                players: r.player_count() as u32,
                capacity: r.total,
                password: r.protected,
                started: false,
            })
            .collect()
    }
}

//! What the admin endpoint reports: a snapshot the server fills when a
//! request needs it (it owns every counter; this module owns none), and the
//! public `/api/v1/status` JSON built from it.
//!
//! The JSON is meant for a public status page: room names and counts only,
//! never a password, an address or a user name; for the JSON lobby (VCMI
//! 1.5+) never an account or room ID or a cookie either (a room's "name" is
//! the description its host set).

use crate::json::timed_store::LatencyHistogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The server's state and counters at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusSnapshot {
    /// `env!("CARGO_PKG_VERSION")`, normally.
    pub version: String,
    pub uptime: Duration,
    /// The loop accepts connections: `/healthz` is 200, else 503 (set to
    /// false once shutdown starts).
    pub accepting: bool,
    /// Logged-in users by protocol label ("1.1", "1.2", ..., "json"); the
    /// server chooses the labels, each appears once.
    pub users_by_protocol: Vec<(String, u64)>,
    /// Rooms in the lobby and started games still tracked as rooms.
    pub rooms: Vec<RoomStatus>,
    /// Started games whose relay session is alive.
    pub sessions_in_play: u64,
    pub counters: Counters,
    /// The JSON lobby's side (its accounts are also in `users_by_protocol`
    /// as "json").
    pub json: JsonStatus,
}

/// The JSON lobby (VCMI 1.5+) now and since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonStatus {
    pub accounts_online: u64,
    /// Live rooms (idle, public, private, busy).
    pub rooms: Vec<JsonRoomStatus>,
    /// Proxy pairs relaying a game now.
    pub proxy_pairs: u64,
    /// Open JSON connections in the lobby (accounts, match servers, not yet
    /// logged in) and relayed (proxy halves).
    pub lobby_connections: u64,
    pub relayed_connections: u64,
    pub counters: JsonCounters,
    /// Store time per request of any type, and per sendChatMessage.
    pub store_request: LatencyHistogram,
    pub store_chat: LatencyHistogram,
}

/// One JSON lobby room, as the public may see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JsonRoomStatus {
    /// The description its host set (VCMI lists rooms by it and the host).
    pub name: String,
    /// "idle", "public", "private" or "busy".
    pub state: &'static str,
    pub players: u32,
    pub player_limit: i64,
    /// Joined by invitation only.
    pub private: bool,
}

/// The JSON lobby's cumulative counts: the rules' and the relay's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonCounters {
    pub lobby: crate::json::lobby::JsonLobbyStats,
    /// Frames passed through proxy pairs (live and ended), heartbeats
    /// they consumed.
    pub relayed_frames: u64,
    pub relayed_heartbeats: u64,
}

/// One room, as the public may see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoomStatus {
    pub name: String,
    pub players: u32,
    pub capacity: u32,
    /// The room has a password (never the password itself).
    pub password: bool,
    pub started: bool,
}

/// Every figure of the server's `[stats]` log line, for `/metrics`.
/// Cumulative counts only grow; the others are values now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Open connections by kind: today "lobby", "pipe" (pipes, handshaking
    /// or paired) and "other" (first frame not yet seen, closing); the glue
    /// may add kinds (e.g. "json", "admin").
    pub connections_by_kind: Vec<(String, u64)>,
    /// Resident memory of the process (`sys::rss_bytes`).
    pub rss_bytes: u64,
    /// Connections accepted (`ServerStats::accepted`).
    pub accepted: u64,
    /// Distinct client addresses ever seen (`legacy::lobby::Stats::uniques`).
    pub unique_addresses: u64,
    /// ROOT's `logins`, which the reference counts per connection
    /// (`legacy::lobby::Stats::logins`).
    pub logins: u64,
    /// Distinct user names ever logged in (`legacy::lobby::Stats::users.len()`).
    pub distinct_users: u64,
    /// Rooms ever created (`legacy::lobby::Stats::rooms`).
    pub rooms_created: u64,
    /// Game starts (`legacy::lobby::Stats::sessions`, ROOT's `sessions`).
    pub starts: u64,
    /// Relay sessions created and expired unused (`relay::RelayStats`).
    pub relay_sessions_created: u64,
    pub relay_sessions_expired: u64,
    /// Game pipes paired (`relay::RelayStats::pairs`).
    pub pipes_paired: u64,
    /// Bytes moved between paired pipes (`ServerStats::relayed_bytes`).
    pub relayed_bytes: u64,
    /// Bytes of lobby messages written (`ServerStats::lobby_bytes_out`).
    pub lobby_sent_bytes: u64,
    /// Connections dropped or refused, by reason: today "frame-too-big",
    /// "slow-consumer", "timeout", "flood", "bad-handshake", "per-ip",
    /// "capacity"; after the glue also "banned", "proxy-header".
    pub drops_by_reason: Vec<(String, u64)>,
    /// Times accepting paused (max connections, descriptors exhausted).
    pub accept_pauses: u64,
}

impl StatusSnapshot {
    /// Logged-in users, all protocols.
    pub fn users(&self) -> u64 {
        self.users_by_protocol.iter().map(|(_, n)| n).sum()
    }

    /// The `/api/v1/status` body.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Users<'a> {
            total: u64,
            by_protocol: BTreeMap<&'a str, u64>,
        }
        #[derive(Serialize)]
        struct Json<'a> {
            accounts_online: u64,
            rooms: &'a [JsonRoomStatus],
            proxy_pairs: u64,
        }
        #[derive(Serialize)]
        struct Status<'a> {
            version: &'a str,
            uptime_seconds: u64,
            users: Users<'a>,
            rooms: &'a [RoomStatus],
            sessions_in_play: u64,
            json: Json<'a>,
        }
        let mut by_protocol = BTreeMap::new();
        for (label, n) in &self.users_by_protocol {
            *by_protocol.entry(label.as_str()).or_insert(0) += n;
        }
        let status = Status {
            version: &self.version,
            uptime_seconds: self.uptime.as_secs(),
            users: Users {
                total: self.users(),
                by_protocol,
            },
            rooms: &self.rooms,
            sessions_in_play: self.sessions_in_play,
            json: Json {
                accounts_online: self.json.accounts_online,
                rooms: &self.json.rooms,
                proxy_pairs: self.json.proxy_pairs,
            },
        };
        // serializing plain strings and numbers into a String cannot fail
        serde_json::to_string(&status).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot with something in every field, shared by the tests of
    /// the modules that render it.
    pub(crate) fn sample() -> StatusSnapshot {
        let kv = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Vec<_>>()
        };
        StatusSnapshot {
            version: "0.1.0".into(),
            uptime: Duration::from_millis(93_700),
            accepting: true,
            users_by_protocol: kv(&[("1.1", 1), ("1.4", 2)]),
            rooms: vec![
                RoomStatus {
                    name: "Duel \"quoted\" \u{e9}".into(),
                    players: 1,
                    capacity: 2,
                    password: true,
                    started: false,
                },
                RoomStatus {
                    name: "fours".into(),
                    players: 4,
                    capacity: 4,
                    password: false,
                    started: true,
                },
            ],
            sessions_in_play: 1,
            counters: Counters {
                connections_by_kind: kv(&[("lobby", 3), ("pipe", 2), ("other", 1)]),
                rss_bytes: 5 << 20,
                accepted: 40,
                unique_addresses: 7,
                logins: 40,
                distinct_users: 9,
                rooms_created: 5,
                starts: 2,
                relay_sessions_created: 2,
                relay_sessions_expired: 1,
                pipes_paired: 3,
                relayed_bytes: 123_456,
                lobby_sent_bytes: 9_876,
                drops_by_reason: kv(&[("timeout", 2), ("flood", 1), ("per-ip", 0)]),
                accept_pauses: 1,
            },
            json: JsonStatus {
                accounts_online: 3,
                rooms: vec![
                    JsonRoomStatus {
                        name: "2v2 XL".into(),
                        state: "public",
                        players: 2,
                        player_limit: 4,
                        private: false,
                    },
                    JsonRoomStatus {
                        name: String::new(),
                        state: "idle",
                        players: 0,
                        player_limit: 8,
                        private: false,
                    },
                ],
                proxy_pairs: 1,
                lobby_connections: 4,
                relayed_connections: 2,
                counters: JsonCounters {
                    lobby: crate::json::lobby::JsonLobbyStats {
                        registrations: 5,
                        logins: 6,
                        login_failures: 1,
                        evictions: 0,
                        chat_messages: 7,
                        flood_drops: 2,
                        rooms_created: 3,
                        proxy_pairs: 2,
                    },
                    relayed_frames: 11,
                    relayed_heartbeats: 4,
                },
                store_request: store_times(&[30, 30, 900, 40_000]),
                store_chat: store_times(&[900]),
            },
        }
    }

    fn store_times(micros: &[u64]) -> LatencyHistogram {
        let mut h = LatencyHistogram::default();
        for us in micros {
            h.record(Duration::from_micros(*us));
        }
        h
    }

    #[test]
    fn json_has_the_public_fields_only() {
        let json: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": "0.1.0",
                "uptime_seconds": 93,
                "users": {"total": 3, "by_protocol": {"1.1": 1, "1.4": 2}},
                "rooms": [
                    {"name": "Duel \"quoted\" \u{e9}", "players": 1, "capacity": 2,
                     "password": true, "started": false},
                    {"name": "fours", "players": 4, "capacity": 4,
                     "password": false, "started": true},
                ],
                "sessions_in_play": 1,
                "json": {
                    "accounts_online": 3,
                    "rooms": [
                        {"name": "2v2 XL", "state": "public", "players": 2,
                         "player_limit": 4, "private": false},
                        {"name": "", "state": "idle", "players": 0,
                         "player_limit": 8, "private": false},
                    ],
                    "proxy_pairs": 1,
                },
            })
        );
    }

    #[test]
    fn an_empty_server() {
        let json: serde_json::Value =
            serde_json::from_str(&StatusSnapshot::default().to_json()).unwrap();
        assert_eq!(json["users"]["total"], 0);
        assert_eq!(json["rooms"], serde_json::json!([]));
        assert_eq!(
            json["json"],
            serde_json::json!({"accounts_online": 0, "rooms": [], "proxy_pairs": 0})
        );
    }
}

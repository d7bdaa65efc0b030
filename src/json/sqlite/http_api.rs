//! The database side of vcmilobby's HTTP API (LOBBY-JSON.md §1.13,
//! `LobbyHttpApi.cpp`): the three JSON bodies, built from the same queries
//! as the reference. Routing, parameter checks (400s), the 30 s cache and
//! the HTTP framing belong to the server glue.
//!
//! Times are formatted like the reference's `formatTimestamp`: local time,
//! `%Y-%m-%dT%H:%M:%S%z` (e.g. `2026-11-29T07:05:09+0100`). SQLite does the
//! local-time conversion (it uses the same C library call), so no date
//! crate is needed.

#[cfg(test)]
mod tests;

use rusqlite::params;
use serde_json::{json, Value};

use super::{age_of, logged, SqliteStore};
use crate::json::store::RoomStatus;

/// Columns giving a timestamp's local time and UTC offset in minutes.
macro_rules! local_time_of {
    ($time:literal) => {
        concat!(
            "strftime('%Y-%m-%dT%H:%M:%S', ",
            $time,
            ", 'localtime'), CAST(round((julianday(",
            $time,
            ", 'localtime') - julianday(",
            $time,
            ")) * 1440) AS INTEGER)"
        )
    };
}

/// `2026-11-29T07:05:09` and +60 -> `2026-11-29T07:05:09+0100`.
pub(super) fn with_offset(local: &str, offset_minutes: i64) -> String {
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let minutes = offset_minutes.abs();
    format!("{local}{sign}{:02}{:02}", minutes / 60, minutes % 60)
}

impl SqliteStore {
    /// `unix_seconds` as the reference formats `lobbyStartTime`.
    pub fn local_timestamp(&mut self, unix_seconds: i64) -> String {
        let result = self
            .conn
            .prepare_cached(concat!(
                "SELECT ",
                local_time_of!("datetime(?1, 'unixepoch')")
            ))
            .and_then(|mut statement| {
                statement.query_row([unix_seconds], |row| {
                    Ok(with_offset(
                        &row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        row.get::<_, Option<i64>>(1)?.unwrap_or_default(),
                    ))
                })
            });
        logged("local_timestamp", result).unwrap_or_default()
    }

    /// The `/api/v1/stats` body. `lobby_start_time`: when the server started,
    /// already formatted (see [`SqliteStore::local_timestamp`]).
    pub fn api_stats(&mut self, lobby_start_time: &str) -> Value {
        let online_players: Vec<String> = self.strings(
            "api_stats online",
            "SELECT displayName FROM accounts WHERE online = 1",
        );
        let logins = self.window_counts(
            "api_stats logins",
            "SELECT COUNT(*), SUM(lastLoginTime >= datetime('now', '-1 hours')), \
             SUM(lastLoginTime >= datetime('now', '-24 hours')), SUM(lastLoginTime >= datetime('now', '-168 hours')), \
             SUM(lastLoginTime >= datetime('now', '-720 hours')), SUM(lastLoginTime >= datetime('now', '-8760 hours')) \
             FROM accounts",
        );
        let registered = self.window_counts(
            "api_stats registrations",
            "SELECT COUNT(*), 0, SUM(creationTime >= datetime('now', '-24 hours')), \
             SUM(creationTime >= datetime('now', '-168 hours')), SUM(creationTime >= datetime('now', '-720 hours')), \
             SUM(creationTime >= datetime('now', '-8760 hours')) FROM accounts",
        );
        let closed = self.window_counts(
            "api_stats closed games",
            "SELECT COUNT(*), 0, SUM(creationTime >= datetime('now', '-24 hours')), \
             SUM(creationTime >= datetime('now', '-168 hours')), SUM(creationTime >= datetime('now', '-720 hours')), \
             SUM(creationTime >= datetime('now', '-8760 hours')) FROM gameRooms WHERE status = 5",
        );
        let active = self.window_counts(
            "api_stats active rooms",
            "SELECT 0, SUM(status = 1), SUM(status = 2), SUM(status = 3), 0, 0 FROM gameRooms \
             WHERE status >= 1 AND status <= 3",
        );
        let [_, public, private, busy, _, _] = active;
        json!({
            "onlinePlayersCount": {
                "current": online_players.len(),
                "lastHour": logins[1],
                "lastDay": logins[2],
                "lastWeek": logins[3],
                "lastMonth": logins[4],
                "lastYear": logins[5],
            },
            "onlinePlayers": online_players,
            "registeredPlayersCount": {
                "total": registered[0],
                "lastDay": registered[2],
                "lastWeek": registered[3],
                "lastMonth": registered[4],
                "lastYear": registered[5],
            },
            "gameCount": {
                "current": busy,
                "total": closed[0],
                "lastDay": closed[2],
                "lastWeek": closed[3],
                "lastMonth": closed[4],
                "lastYear": closed[5],
            },
            "lobbyCount": {
                "current": public + private,
                "public": public,
                "private": private,
            },
            "lobbyStartTime": lobby_start_time,
            "server": "VCMI Lobby",
            "apiVersion": "1.0",
        })
    }

    /// The `/api/v1/chats?channelName=` body: the global channel's last 100
    /// messages of the last 18 h, **newest first** (unlike chatHistory).
    pub fn api_chats(&mut self, channel_name: &str) -> Value {
        let result = self
            .conn
            .prepare_cached(concat!(
                "SELECT displayName, messageText, ",
                age_of!("cm.creationTime"),
                " AS secondsElapsed, ",
                local_time_of!("cm.creationTime"),
                " FROM chatMessages cm LEFT JOIN accounts a ON a.accountID = cm.senderName \
                 WHERE secondsElapsed < 60*60*18 AND channelType = 'global' AND channelName = ?1 \
                 ORDER BY cm.creationTime DESC, cm.id DESC LIMIT 100"
            ))
            .and_then(|mut statement| {
                statement
                    .query_map([channel_name], |row| {
                        Ok(json!({
                            "displayName": row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                            "messageText": row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                            "ageSeconds": row.get::<_, Option<i64>>(2)?.unwrap_or_default(),
                            "timestamp": with_offset(
                                &row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                                row.get::<_, Option<i64>>(4)?.unwrap_or_default(),
                            ),
                        }))
                    })?
                    .collect::<rusqlite::Result<Vec<Value>>>()
            });
        let messages = logged("api_chats", result).unwrap_or_default();
        json!({ "channelName": channel_name, "count": messages.len(), "messages": messages })
    }

    /// The `/api/v1/rooms?hours=&limit=` body: rooms of every status created
    /// less than `hours` hours ago (`-1`: all), newest first, at most
    /// `limit`. The caller has checked the parameters (limit 1..=250).
    pub fn api_rooms(&mut self, hours: i64, limit: i64) -> Value {
        let result = self
            .conn
            .prepare_cached(concat!(
                "SELECT roomID, description, version, status, playerLimit, ",
                age_of!("gr.creationTime"),
                ", ",
                local_time_of!("gr.creationTime"),
                " FROM gameRooms gr WHERE (?1 = -1 OR ",
                age_of!("gr.creationTime"),
                " < ?1 * 3600) ORDER BY gr.creationTime DESC, gr.id DESC LIMIT ?2"
            ))
            .and_then(|mut statement| {
                statement
                    .query_map(params![hours, limit], |row| {
                        let status = row.get::<_, Option<i64>>(3)?.and_then(RoomStatus::from_i64);
                        let room = json!({
                            "description": row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                            "version": row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                            "status": status.map_or("", RoomStatus::as_str),
                            "playerLimit": row.get::<_, Option<i64>>(4)?.unwrap_or_default(),
                            "ageSeconds": row.get::<_, Option<i64>>(5)?.unwrap_or_default(),
                            "createdAt": with_offset(
                                &row.get::<_, Option<String>>(6)?.unwrap_or_default(),
                                row.get::<_, Option<i64>>(7)?.unwrap_or_default(),
                            ),
                        });
                        Ok((row.get::<_, Option<String>>(0)?.unwrap_or_default(), room))
                    })?
                    .collect::<rusqlite::Result<Vec<(String, Value)>>>()
            });
        let rooms = logged("api_rooms", result).unwrap_or_default();
        let rooms: Vec<Value> = rooms
            .into_iter()
            .map(|(room_id, mut room)| {
                let mods = self.room_mods(&room_id);
                if !mods.is_empty() {
                    room["mods"] = Value::Array(mods);
                }
                room
            })
            .collect();
        json!({ "hours": hours, "limit": limit, "count": rooms.len(), "rooms": rooms })
    }

    /// A room's mods as the reference's `LobbyGameRoomMod::toJson` writes
    /// them, its `parent` quirk included (`"hota.sub"` -> `".sub"`).
    fn room_mods(&mut self, room_id: &str) -> Vec<Value> {
        let result = self
            .conn
            .prepare_cached(
                "SELECT modID, modName, modVersion FROM gameRoomMods WHERE roomID = ?1 ORDER BY id",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([room_id], |row| {
                        let mod_id = row.get::<_, Option<String>>(0)?.unwrap_or_default();
                        let mut entry = json!({
                            "modId": mod_id,
                            "name": row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                            "version": row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        });
                        if let Some(dot) = mod_id.find('.') {
                            entry["parent"] = Value::String(mod_id[dot..].to_string());
                        }
                        Ok(entry)
                    })?
                    .collect::<rusqlite::Result<Vec<Value>>>()
            });
        logged("room_mods", result).unwrap_or_default()
    }

    fn strings(&mut self, what: &str, sql: &str) -> Vec<String> {
        let result = self.conn.prepare_cached(sql).and_then(|mut statement| {
            statement
                .query_map([], |row| {
                    Ok(row.get::<_, Option<String>>(0)?.unwrap_or_default())
                })?
                .collect()
        });
        logged(what, result).unwrap_or_default()
    }

    /// One row of six counts (`SUM` over no rows is NULL: 0).
    fn window_counts(&mut self, what: &str, sql: &str) -> [i64; 6] {
        let result = self.conn.prepare_cached(sql).and_then(|mut statement| {
            statement.query_row([], |row| {
                let mut counts = [0i64; 6];
                for (column, count) in counts.iter_mut().enumerate() {
                    *count = row.get::<_, Option<i64>>(column)?.unwrap_or_default();
                }
                Ok(counts)
            })
        });
        logged(what, result).unwrap_or_default()
    }
}

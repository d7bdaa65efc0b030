//! [`LobbyStore`] on SQLite, in vcmilobby's own database format
//! (LOBBY-JSON.md §1.12), so an operator can point us at an existing
//! `vcmiLobby.db` and keep every account, cookie, chat line and match.
//!
//! Schema: `lobby.sql` beside this file is a byte-identical copy of
//! vcmilobby's `config/lobby.sql` (GPL, like VCMI and us). A file without
//! our tables gets it verbatim, so the result matches
//! `sqlite3 vcmiLobby.db < lobby.sql` exactly. A file that already has them
//! is kept and only completed, never altered destructively: the tables and
//! indexes of lobby.sql are created `IF NOT EXISTS` (a 1.5.0–1.7.3 database
//! lacks `gameRoomMods`; its `gameRooms.mods` column stays and is ignored)
//! and `gameRooms.version` is added if missing (a database 1.5.0 created).
//!
//! Semantics follow the reference's statements (`LobbyDatabase.cpp`):
//! times are SQLite's `CURRENT_TIMESTAMP` (UTC text, second resolution) and
//! ages are computed in SQL; display names are joined from `accounts` (""
//! when the account row is missing). Where the reference leaves the order
//! of same-second rows to chance, we add `id` as a tie-break so the order
//! is insertion order.
//!
//! Connection settings: WAL journal (readers never block the writer;
//! commits are appends), `synchronous=NORMAL` (durable at checkpoints; a
//! power cut may lose the last commits, never corrupt the file), busy
//! timeout 5 s like the reference (someone may run `sqlite3` on the file).
//!
//! Errors: the trait has no `Result` (see `store`): a failing statement is
//! logged with `log::warn!` and the call returns empty/does nothing.

mod http_api;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection};

use super::request::{ChannelType, ModInfo};
use super::store::{AccountRecord, ChatRecord, LobbyStore, MatchRecord, RoomStatus};

/// vcmilobby's schema, verbatim.
const LOBBY_SQL: &str = include_str!("lobby.sql");

/// The reference's busy timeout (`sqliteBusyTimeout`).
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// The tables lobby.sql creates.
const TABLES: [&str; 7] = [
    "accounts",
    "accountCookies",
    "chatMessages",
    "gameRooms",
    "gameRoomMods",
    "gameRoomPlayers",
    "gameRoomInvites",
];

/// Seconds since a row's `creationTime`, as the reference computes it.
macro_rules! age_of {
    ($column:literal) => {
        concat!(
            "strftime('%s', CURRENT_TIMESTAMP) - strftime('%s', ",
            $column,
            ")"
        )
    };
}
use age_of;

/// The lobby's persistent store on one SQLite connection.
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and brings its
    /// schema up to date as described in the module doc. Does not clear
    /// stale state: that is [`LobbyStore::clear_stale_state`], called by the
    /// rules at start.
    pub fn open(path: impl AsRef<Path>) -> rusqlite::Result<SqliteStore> {
        SqliteStore::set_up(Connection::open(path)?)
    }

    /// A private in-memory database with the same schema (tests).
    pub fn open_in_memory() -> rusqlite::Result<SqliteStore> {
        SqliteStore::set_up(Connection::open_in_memory()?)
    }

    fn set_up(conn: Connection) -> rusqlite::Result<SqliteStore> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Room for every statement of this module and the HTTP API (about
        // 25), so none is ever evicted and prepared again.
        conn.set_prepared_statement_cache_capacity(64);
        // An in-memory database answers "memory": nothing to check.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let store = SqliteStore { conn };
        store.ensure_schema()?;
        Ok(store)
    }

    fn ensure_schema(&self) -> rusqlite::Result<()> {
        let existing: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            TABLES,
            |row| row.get(0),
        )?;
        if existing == 0 {
            return self
                .conn
                .execute_batch(&format!("BEGIN; {LOBBY_SQL} COMMIT;"));
        }
        let completion = LOBBY_SQL
            .replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ")
            .replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ");
        self.conn
            .execute_batch(&format!("BEGIN; {completion} COMMIT;"))?;
        let has_version: bool = self.conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('gameRooms') WHERE name = 'version'",
            [],
            |row| row.get(0),
        )?;
        if !has_version {
            self.conn
                .execute_batch("ALTER TABLE gameRooms ADD COLUMN version TEXT")?;
        }
        Ok(())
    }

    /// Whether some account already has this display name, compared like
    /// the reference (`COLLATE NOCASE`: ASCII case-insensitive).
    pub fn display_name_taken(&mut self, display_name: &str) -> bool {
        let result = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) > 0 FROM accounts WHERE displayName = ?1 COLLATE NOCASE",
            )
            .and_then(|mut statement| statement.query_row([display_name], |row| row.get(0)));
        logged("display_name_taken", result).unwrap_or(false)
    }

    /// Runs one write statement; failures are logged.
    fn write(&mut self, what: &str, sql: &str, values: impl rusqlite::Params) {
        let result = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(values));
        logged(what, result);
    }

    fn chat(
        &mut self,
        what: &str,
        sql: &str,
        channel: ChannelType,
        channel_name: &str,
    ) -> Vec<ChatRecord> {
        let result = self.conn.prepare_cached(sql).and_then(|mut statement| {
            statement
                .query_map(params![channel.as_str(), channel_name], |row| {
                    Ok(ChatRecord {
                        account_id: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        display_name: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        message_text: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        age_seconds: row.get::<_, Option<i64>>(3)?.unwrap_or_default(),
                    })
                })?
                .collect()
        });
        logged(what, result).unwrap_or_default()
    }

    /// (accountID, displayName) of a room's participants, in insertion order.
    fn participants(&mut self, room_id: &str) -> rusqlite::Result<Vec<(String, String)>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT grp.accountID, a.displayName FROM gameRoomPlayers grp \
             LEFT JOIN accounts a ON a.accountID = grp.accountID \
             WHERE grp.roomID = ?1 ORDER BY grp.id",
        )?;
        let rows = statement.query_map([room_id], |row| {
            Ok((
                row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            ))
        })?;
        rows.collect()
    }
}

/// Logs a failed statement; the caller falls back to an empty result.
fn logged<T>(what: &str, result: rusqlite::Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            log::warn!("lobby database: {what} failed: {err}");
            None
        }
    }
}

impl LobbyStore for SqliteStore {
    fn clear_stale_state(&mut self) {
        let result = self.conn.execute_batch(
            "BEGIN; \
             UPDATE accounts SET online = 0 WHERE online <> 0; \
             UPDATE gameRooms SET status = 4 WHERE status IN (0, 1, 2); \
             UPDATE gameRooms SET status = 5 WHERE status = 3; \
             COMMIT;",
        );
        if logged("clear_stale_state", result).is_none() {
            // Leave no transaction open behind a failed statement.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn load_accounts(&mut self) -> Vec<AccountRecord> {
        let result = self
            .conn
            .prepare_cached(
                "SELECT a.accountID, a.displayName, c.cookieUUID FROM accounts a \
                 LEFT JOIN accountCookies c ON c.accountID = a.accountID \
                 ORDER BY a.id, c.id",
            )
            .and_then(|mut statement| {
                let rows = statement.query_map([], |row| {
                    Ok((
                        row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        row.get::<_, Option<String>>(2)?,
                    ))
                })?;
                // Rows arrive grouped by account row; the reference has no
                // UNIQUE constraint, so a repeated accountID is merged into
                // its first record (cookie lookups are by accountID anyway).
                let mut accounts: Vec<AccountRecord> = Vec::new();
                let mut index = std::collections::HashMap::new();
                for row in rows {
                    let (account_id, display_name, cookie) = row?;
                    let at = *index.entry(account_id.clone()).or_insert_with(|| {
                        accounts.push(AccountRecord {
                            account_id,
                            display_name,
                            cookies: Vec::new(),
                        });
                        accounts.len() - 1
                    });
                    if let Some(cookie) = cookie {
                        if !accounts[at].cookies.contains(&cookie) {
                            accounts[at].cookies.push(cookie);
                        }
                    }
                }
                Ok(accounts)
            });
        logged("load_accounts", result).unwrap_or_default()
    }

    fn insert_account(&mut self, account_id: &str, display_name: &str, cookie: &str) {
        let result = self.conn.transaction().and_then(|tx| {
            tx.prepare_cached(
                "INSERT INTO accounts(accountID, displayName, online) VALUES(?1, ?2, 0)",
            )?
            .execute([account_id, display_name])?;
            tx.prepare_cached("INSERT INTO accountCookies(accountID, cookieUUID) VALUES(?1, ?2)")?
                .execute([account_id, cookie])?;
            tx.commit()
        });
        logged("insert_account", result);
    }

    fn set_online(&mut self, account_id: &str, online: bool) {
        if online {
            self.write(
                "set_online",
                "UPDATE accounts SET online = 1, lastLoginTime = CURRENT_TIMESTAMP WHERE accountID = ?1",
                [account_id],
            );
        } else {
            self.write(
                "set_online",
                "UPDATE accounts SET online = 0 WHERE accountID = ?1",
                [account_id],
            );
        }
    }

    fn insert_chat(
        &mut self,
        sender_id: &str,
        channel: ChannelType,
        channel_name: &str,
        text: &str,
    ) {
        self.write(
            "insert_chat",
            "INSERT INTO chatMessages(senderName, messageText, channelType, channelName) VALUES(?1, ?2, ?3, ?4)",
            [sender_id, text, channel.as_str(), channel_name],
        );
    }

    fn recent_chat(&mut self, channel: ChannelType, channel_name: &str) -> Vec<ChatRecord> {
        // The newest 100 within 18 h, then oldest first.
        let mut records = self.chat(
            "recent_chat",
            concat!(
                "SELECT senderName, displayName, messageText, ",
                age_of!("cm.creationTime"),
                " AS secondsElapsed FROM chatMessages cm LEFT JOIN accounts a ON a.accountID = cm.senderName \
                 WHERE secondsElapsed < 60*60*18 AND channelType = ?1 AND channelName = ?2 \
                 ORDER BY cm.creationTime DESC, cm.id DESC LIMIT 100"
            ),
            channel,
            channel_name,
        );
        records.reverse();
        records
    }

    fn full_chat(&mut self, channel: ChannelType, channel_name: &str) -> Vec<ChatRecord> {
        self.chat(
            "full_chat",
            concat!(
                "SELECT senderName, displayName, messageText, ",
                age_of!("cm.creationTime"),
                " FROM chatMessages cm LEFT JOIN accounts a ON a.accountID = cm.senderName \
                 WHERE channelType = ?1 AND channelName = ?2 ORDER BY cm.creationTime, cm.id"
            ),
            channel,
            channel_name,
        )
    }

    fn insert_room(
        &mut self,
        room_id: &str,
        host_account_id: &str,
        version: &str,
        mods: &[ModInfo],
    ) {
        let result = self.conn.transaction().and_then(|tx| {
            tx.prepare_cached(
                "INSERT INTO gameRooms(roomID, hostAccountID, status, playerLimit, version) VALUES(?1, ?2, 0, 8, ?3)",
            )?
            .execute([room_id, host_account_id, version])?;
            {
                let mut insert_mod = tx.prepare_cached(
                    "INSERT INTO gameRoomMods(roomID, modID, modName, modVersion) VALUES(?1, ?2, ?3, ?4)",
                )?;
                for info in mods {
                    insert_mod.execute([room_id, &info.mod_id, &info.name, &info.version])?;
                }
            }
            tx.commit()
        });
        logged("insert_room", result);
    }

    fn set_room_status(&mut self, room_id: &str, status: RoomStatus) {
        self.write(
            "set_room_status",
            "UPDATE gameRooms SET status = ?1 WHERE roomID = ?2",
            params![status as i64, room_id],
        );
    }

    fn set_room_player_limit(&mut self, room_id: &str, player_limit: i64) {
        self.write(
            "set_room_player_limit",
            "UPDATE gameRooms SET playerLimit = ?1 WHERE roomID = ?2",
            params![player_limit, room_id],
        );
    }

    fn set_room_description(&mut self, room_id: &str, description: &str) {
        self.write(
            "set_room_description",
            "UPDATE gameRooms SET description = ?1 WHERE roomID = ?2",
            [description, room_id],
        );
    }

    fn insert_participant(&mut self, room_id: &str, account_id: &str) {
        self.write(
            "insert_participant",
            "INSERT INTO gameRoomPlayers(roomID, accountID) VALUES(?1, ?2)",
            [room_id, account_id],
        );
    }

    fn delete_participant(&mut self, room_id: &str, account_id: &str) {
        self.write(
            "delete_participant",
            "DELETE FROM gameRoomPlayers WHERE roomID = ?1 AND accountID = ?2",
            [room_id, account_id],
        );
    }

    fn insert_invite(&mut self, room_id: &str, account_id: &str) {
        self.write(
            "insert_invite",
            "INSERT INTO gameRoomInvites(roomID, accountID) VALUES(?1, ?2)",
            [room_id, account_id],
        );
    }

    fn matches_history(&mut self, account_id: &str) -> Vec<MatchRecord> {
        let rooms = self
            .conn
            .prepare_cached(concat!(
                "SELECT gr.roomID, gr.hostAccountID, a.displayName, gr.description, gr.playerLimit, ",
                age_of!("gr.creationTime"),
                " AS secondsElapsed FROM gameRoomPlayers grp \
                 JOIN gameRooms gr ON gr.roomID = grp.roomID \
                 LEFT JOIN accounts a ON a.accountID = gr.hostAccountID \
                 WHERE grp.accountID = ?1 AND gr.status = 5 \
                 ORDER BY secondsElapsed ASC, gr.id DESC"
            ))
            .and_then(|mut statement| {
                statement
                    .query_map([account_id], |row| {
                        Ok(MatchRecord {
                            game_room_id: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                            host_account_id: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                            host_display_name: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                            description: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                            player_limit: row.get::<_, Option<i64>>(4)?.unwrap_or_default(),
                            age_seconds: row.get::<_, Option<i64>>(5)?.unwrap_or_default(),
                            participants: Vec::new(),
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
            });
        let Some(mut rooms) = logged("matches_history", rooms) else {
            return Vec::new();
        };
        for room in &mut rooms {
            let participants = self.participants(&room.game_room_id);
            room.participants =
                logged("matches_history participants", participants).unwrap_or_default();
        }
        rooms
    }
}

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use rusqlite::Connection;

use super::*;

/// A fresh database file path under the temp dir, removed on drop.
pub(super) struct TempDb(PathBuf);

impl TempDb {
    fn new(tag: &str) -> TempDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "vcmi-proxy-{tag}-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        TempDb::remove_files(&path);
        TempDb(path)
    }

    fn remove_files(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        TempDb::remove_files(&self.0);
    }
}

/// vcmilobby 1.5.1–1.7.3's `createTables()` + `upgradeDatabase()`
/// (LOBBY-JSON.md §1.12): no gameRoomMods, a `mods` JSON text column.
const SCHEMA_1_7_3: &str = "
    CREATE TABLE IF NOT EXISTS chatMessages (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, senderName TEXT,
        channelType TEXT, channelName TEXT, messageText TEXT,
        creationTime TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);
    CREATE TABLE IF NOT EXISTS gameRoomPlayers (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, roomID TEXT, accountID TEXT);
    CREATE TABLE IF NOT EXISTS gameRooms (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, roomID TEXT, hostAccountID TEXT,
        description TEXT NOT NULL DEFAULT '', status INTEGER NOT NULL DEFAULT 0, playerLimit INTEGER NOT NULL,
        creationTime TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);
    CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, accountID TEXT, displayName TEXT,
        online INTEGER NOT NULL, lastLoginTime TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL,
        creationTime TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);
    CREATE TABLE IF NOT EXISTS accountCookies (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, accountID TEXT,
        cookieUUID TEXT, creationTime TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);
    CREATE TABLE IF NOT EXISTS gameRoomInvites (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, roomID TEXT, accountID TEXT);
";
const UPGRADE_1_5_1: &str = "
    ALTER TABLE gameRooms ADD COLUMN mods TEXT DEFAULT '{}';
    ALTER TABLE gameRooms ADD COLUMN version TEXT;
    PRAGMA user_version = 10501;
";

pub(super) fn store() -> SqliteStore {
    match SqliteStore::open_in_memory() {
        Ok(store) => store,
        Err(err) => panic!("in-memory store: {err}"),
    }
}

pub(super) fn open(path: &std::path::Path) -> SqliteStore {
    match SqliteStore::open(path) {
        Ok(store) => store,
        Err(err) => panic!("open {}: {err}", path.display()),
    }
}

pub(super) fn count(store: &SqliteStore, sql: &str) -> i64 {
    store.conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

fn schema_of(conn: &Connection) -> Vec<(String, String)> {
    let mut statement = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn texts(records: &[ChatRecord]) -> Vec<&str> {
    records.iter().map(|r| r.message_text.as_str()).collect()
}

/// A mod and its submod, as a match server sends them.
pub(crate) fn hota_mods() -> [ModInfo; 2] {
    [
        ModInfo {
            mod_id: "hota".into(),
            name: "HotA".into(),
            parent: None,
            version: "1.7".into(),
        },
        ModInfo {
            mod_id: "hota.sub".into(),
            name: "Sub".into(),
            parent: Some("hota".into()),
            version: "1".into(),
        },
    ]
}

#[test]
fn a_new_file_gets_exactly_lobby_sql() {
    let ours = TempDb::new("fresh");
    let reference = TempDb::new("reference");
    drop(open(&ours.0));
    // What the reference's setup.sh does (`sqlite3 db < lobby.sql`).
    let conn = Connection::open(&reference.0).unwrap();
    conn.execute_batch(LOBBY_SQL).unwrap();
    let reopened = Connection::open(&ours.0).unwrap();
    assert_eq!(schema_of(&reopened), schema_of(&conn));
    assert_eq!(schema_of(&conn).len(), 7 + 15, "7 tables and 15 indexes");
    let mode: String = reopened
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn an_existing_lobby_sql_database_is_kept_with_its_data() {
    let db = TempDb::new("existing");
    {
        let conn = Connection::open(&db.0).unwrap();
        conn.execute_batch(LOBBY_SQL).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts(accountID, displayName, online) VALUES('a1', 'Alice', 1);
             INSERT INTO accountCookies(accountID, cookieUUID) VALUES('a1', 'c1');",
        )
        .unwrap();
    }
    let before = schema_of(&Connection::open(&db.0).unwrap());
    let mut store = open(&db.0);
    assert_eq!(schema_of(&store.conn), before, "no schema change");
    assert_eq!(
        store.load_accounts(),
        vec![AccountRecord {
            account_id: "a1".into(),
            display_name: "Alice".into(),
            cookies: vec!["c1".into()]
        }]
    );
}

#[test]
fn a_1_7_3_database_gains_the_mods_table_and_keeps_everything() {
    let db = TempDb::new("old");
    {
        let conn = Connection::open(&db.0).unwrap();
        conn.execute_batch(SCHEMA_1_7_3).unwrap();
        conn.execute_batch(UPGRADE_1_5_1).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts(accountID, displayName, online) VALUES('a1', 'Alice', 0);
             INSERT INTO accountCookies(accountID, cookieUUID) VALUES('a1', 'c1');
             INSERT INTO gameRooms(roomID, hostAccountID, status, playerLimit, version, mods)
                 VALUES('old-room', 'a1', 5, 4, '1.6.8', '[{\"modId\":\"hota\"}]');
             INSERT INTO gameRoomPlayers(roomID, accountID) VALUES('old-room', 'a1');
             INSERT INTO chatMessages(senderName, messageText, channelType, channelName)
                 VALUES('a1', 'old hello', 'global', 'english');",
        )
        .unwrap();
    }
    let mut store = open(&db.0);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'gameRoomMods'"
        ),
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'idx_gameRoomMods_roomID'"
        ),
        1
    );
    let old_mods: String = store
        .conn
        .query_row(
            "SELECT mods FROM gameRooms WHERE roomID = 'old-room'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        old_mods, "[{\"modId\":\"hota\"}]",
        "old column and data untouched"
    );
    assert_eq!(store.load_accounts().len(), 1);
    assert_eq!(
        texts(&store.recent_chat(ChannelType::Global, "english")),
        ["old hello"]
    );
    assert_eq!(store.matches_history("a1")[0].game_room_id, "old-room");
    // New rooms work on the old table (its mods column takes its default).
    let hota = ModInfo {
        mod_id: "hota".into(),
        name: "HotA".into(),
        parent: None,
        version: "1.7".into(),
    };
    store.insert_room("new-room", "a1", "1.7.5", std::slice::from_ref(&hota));
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM gameRooms WHERE roomID = 'new-room' AND mods = '{}'"
        ),
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM gameRoomMods WHERE roomID = 'new-room'"
        ),
        1
    );
}

#[test]
fn a_1_5_0_database_without_a_version_column_gets_one() {
    let db = TempDb::new("v150");
    {
        let conn = Connection::open(&db.0).unwrap();
        conn.execute_batch(SCHEMA_1_7_3).unwrap();
        conn.execute_batch("INSERT INTO gameRooms(roomID, hostAccountID, status, playerLimit) VALUES('r0', 'a', 1, 8)")
            .unwrap();
    }
    let mut store = open(&db.0);
    store.insert_room("r1", "a", "1.5.0", &[]);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM gameRooms WHERE version = '1.5.0'"
        ),
        1
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM gameRooms"), 2);
}

#[test]
fn everything_persists_across_reopen() {
    let db = TempDb::new("persist");
    {
        let mut store = open(&db.0);
        store.insert_account("a1", "Alice", "c1");
        store.insert_chat("a1", ChannelType::Global, "english", "hello");
        store.insert_room("r1", "a1", "1.7.5", &[]);
        store.insert_participant("r1", "a1");
        store.set_room_status("r1", RoomStatus::Closed);
    }
    let mut store = open(&db.0);
    assert_eq!(store.load_accounts()[0].cookies, ["c1"]);
    assert_eq!(
        texts(&store.full_chat(ChannelType::Global, "english")),
        ["hello"]
    );
    assert_eq!(store.matches_history("a1").len(), 1);
}

#[test]
fn accounts_cookies_and_online_state() {
    let mut store = store();
    assert!(store.load_accounts().is_empty());
    store.insert_account("a1", "Alice", "c1");
    store.insert_account("a2", "Bob", "c2");
    // A second cookie row (the reference accepts any stored cookie).
    store
        .conn
        .execute(
            "INSERT INTO accountCookies(accountID, cookieUUID) VALUES('a1', 'c1b')",
            [],
        )
        .unwrap();
    let accounts = store.load_accounts();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0].cookies, ["c1", "c1b"]);
    assert_eq!(accounts[1].display_name, "Bob");
    assert_eq!(
        count(&store, "SELECT online FROM accounts WHERE accountID = 'a1'"),
        0
    );

    store
        .conn
        .execute(
            "UPDATE accounts SET lastLoginTime = '2000-01-01 00:00:00'",
            [],
        )
        .unwrap();
    store.set_online("a1", true);
    assert_eq!(
        count(&store, "SELECT online FROM accounts WHERE accountID = 'a1'"),
        1
    );
    assert_eq!(
        count(&store, "SELECT strftime('%s','now') - strftime('%s', lastLoginTime) < 5 FROM accounts WHERE accountID = 'a1'"),
        1,
        "login time set to now"
    );
    assert_eq!(
        count(
            &store,
            "SELECT lastLoginTime = '2000-01-01 00:00:00' FROM accounts WHERE accountID = 'a2'"
        ),
        1
    );
    store.set_online("a1", false);
    assert_eq!(
        count(&store, "SELECT online FROM accounts WHERE accountID = 'a1'"),
        0
    );
}

#[test]
fn display_names_compare_case_insensitively() {
    let mut store = store();
    store.insert_account("a1", "Alice", "c1");
    assert!(store.display_name_taken("alice"));
    assert!(store.display_name_taken("ALICE"));
    assert!(!store.display_name_taken("Alice2"));
}

#[test]
fn stale_state_is_cleared_like_the_reference_at_start() {
    let mut store = store();
    store.insert_account("a1", "Alice", "c1");
    store.set_online("a1", true);
    for (room, status) in [
        ("idle", RoomStatus::Idle),
        ("public", RoomStatus::Public),
        ("private", RoomStatus::Private),
        ("busy", RoomStatus::Busy),
        ("cancelled", RoomStatus::Cancelled),
        ("closed", RoomStatus::Closed),
    ] {
        store.insert_room(room, "a1", "1.7.5", &[]);
        store.set_room_status(room, status);
    }
    store.clear_stale_state();
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM accounts WHERE online <> 0"),
        0
    );
    let status_of = |room: &str| {
        count(
            &store,
            &format!("SELECT status FROM gameRooms WHERE roomID = '{room}'"),
        )
    };
    assert_eq!(
        ["idle", "public", "private", "busy", "cancelled", "closed"].map(status_of),
        [4, 4, 4, 5, 4, 5]
    );
}

/// Inserts a chat line with a creation time `seconds_ago` in the past.
pub(super) fn insert_old_chat(store: &SqliteStore, channel: &str, text: &str, seconds_ago: i64) {
    store
        .conn
        .execute(
            "INSERT INTO chatMessages(senderName, messageText, channelType, channelName, creationTime)
             VALUES('a1', ?1, 'global', ?2, datetime('now', ?3))",
            rusqlite::params![text, channel, format!("-{seconds_ago} seconds")],
        )
        .unwrap();
}

#[test]
fn recent_chat_is_the_last_18_hours_oldest_first() {
    let mut store = store();
    store.insert_account("a1", "Alice", "c1");
    insert_old_chat(&store, "english", "too old", 18 * 3600 + 5);
    insert_old_chat(&store, "english", "just inside", 18 * 3600 - 5);
    insert_old_chat(&store, "english", "an hour ago", 3600);
    store.insert_chat("a1", ChannelType::Global, "english", "now");
    store.insert_chat("a1", ChannelType::Global, "german", "other channel");
    store.insert_chat("a1", ChannelType::Match, "english", "other type");
    let recent = store.recent_chat(ChannelType::Global, "english");
    assert_eq!(texts(&recent), ["just inside", "an hour ago", "now"]);
    assert_eq!(recent[0].account_id, "a1");
    assert_eq!(recent[0].display_name, "Alice");
    assert!(
        (18 * 3600 - 7..18 * 3600 - 3).contains(&recent[0].age_seconds),
        "{}",
        recent[0].age_seconds
    );
    assert!((3598..3603).contains(&recent[1].age_seconds));
    assert!(recent[2].age_seconds <= 2);
    // The full history has no window.
    assert_eq!(store.full_chat(ChannelType::Global, "english").len(), 4);
}

#[test]
fn recent_chat_is_the_newest_100_in_insertion_order() {
    let mut store = store();
    for n in 0..105 {
        store.insert_chat("a1", ChannelType::Global, "english", &format!("m{n}"));
    }
    let recent = store.recent_chat(ChannelType::Global, "english");
    assert_eq!(recent.len(), 100);
    assert_eq!(recent[0].message_text, "m5");
    assert_eq!(recent[99].message_text, "m104");
    // A sender without an account row has an empty display name.
    assert_eq!(recent[0].display_name, "");
    let full = store.full_chat(ChannelType::Global, "english");
    assert_eq!(full.len(), 105);
    assert_eq!(full[0].message_text, "m0");
}

#[test]
fn chat_text_is_stored_verbatim() {
    let mut store = store();
    let text = "a\nb\t{c} \u{7f} ż \u{1F600} '); DROP TABLE accounts; --";
    store.insert_chat("a1", ChannelType::Player, "a1_a2", text);
    assert_eq!(
        store.full_chat(ChannelType::Player, "a1_a2")[0].message_text,
        text
    );
    assert_eq!(
        count(&store, "SELECT channelType = 'player' FROM chatMessages"),
        1
    );
}

#[test]
fn rooms_participants_invites_and_matches_history() {
    let mut store = store();
    store.insert_account("host", "Hostess", "c");
    store.insert_account("guest", "Guest", "c");
    let mods = hota_mods();
    store.insert_room("r1", "host", "1.7.5", &mods);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM gameRooms WHERE roomID='r1' AND status=0 AND playerLimit=8 AND version='1.7.5'"),
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM gameRoomMods WHERE roomID='r1' AND modName IN ('HotA','Sub')"
        ),
        2
    );
    store.set_room_status("r1", RoomStatus::Public);
    store.set_room_player_limit("r1", 3);
    store.set_room_description("r1", "Arrogance");
    store.insert_participant("r1", "host");
    store.insert_participant("r1", "guest");
    store.insert_invite("r1", "guest");
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM gameRoomInvites WHERE roomID='r1' AND accountID='guest'"
        ),
        1
    );
    assert!(store.matches_history("guest").is_empty(), "not closed yet");

    store.delete_participant("r1", "guest");
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM gameRoomPlayers WHERE roomID='r1'"
        ),
        1
    );
    store.insert_participant("r1", "guest");

    // An older closed room, and one the guest did not play in.
    store.insert_room("r0", "host", "1.7.5", &[]);
    store
        .conn
        .execute(
            "UPDATE gameRooms SET creationTime = datetime('now', '-2 hours') WHERE roomID = 'r0'",
            [],
        )
        .unwrap();
    store.insert_participant("r0", "guest");
    store.set_room_status("r0", RoomStatus::Closed);
    store.insert_room("r2", "host", "1.7.5", &[]);
    store.insert_participant("r2", "host");
    store.set_room_status("r2", RoomStatus::Closed);

    store.set_room_status("r1", RoomStatus::Closed);
    let history = store.matches_history("guest");
    assert_eq!(
        history
            .iter()
            .map(|m| m.game_room_id.as_str())
            .collect::<Vec<_>>(),
        ["r1", "r0"]
    );
    let newest = &history[0];
    assert_eq!(newest.host_account_id, "host");
    assert_eq!(newest.host_display_name, "Hostess");
    assert_eq!(newest.description, "Arrogance");
    assert_eq!(newest.player_limit, 3);
    assert!(newest.age_seconds <= 2);
    assert!((7195..7205).contains(&history[1].age_seconds));
    assert_eq!(
        newest.participants,
        [
            ("host".to_string(), "Hostess".to_string()),
            ("guest".to_string(), "Guest".to_string())
        ]
    );
    assert_eq!(store.matches_history("host").len(), 2);
    assert!(store.matches_history("nobody").is_empty());
}

#[test]
fn statement_errors_are_logged_and_yield_empty_results() {
    let mut store = store();
    store.insert_account("a1", "Alice", "c1");
    store
        .conn
        .execute_batch("DROP TABLE chatMessages; DROP TABLE gameRoomPlayers")
        .unwrap();
    store.insert_chat("a1", ChannelType::Global, "english", "lost");
    assert!(store.recent_chat(ChannelType::Global, "english").is_empty());
    assert!(store.full_chat(ChannelType::Global, "english").is_empty());
    assert!(store.matches_history("a1").is_empty());
    assert_eq!(store.api_chats("english")["count"], 0);
    // The rest still works.
    assert_eq!(store.load_accounts().len(), 1);
}

/// Latency of one chat insert (a commit) in WAL mode on a file database.
/// Run (LTO off only to build faster; SQLite itself is C either way):
/// `CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
///  cargo test --release --lib insert_chat_timing -- --ignored --nocapture`
/// The rare multi-millisecond maximum is SQLite's automatic WAL checkpoint
/// (every ~1000 pages), the only fsync with `synchronous=NORMAL`.
#[test]
#[ignore = "measurement: prints insert_chat latency on a WAL file database"]
fn insert_chat_timing() {
    let db = TempDb::new("timing");
    let mut store = open(&db.0);
    store.insert_account("a1", "Alice", "c1");
    let text = "A typical chat line of about sixty characters, like most are.";
    let mut nanos: Vec<u128> = (0..10_000)
        .map(|n| {
            let channel = if n % 10 == 0 { "german" } else { "english" };
            let start = Instant::now();
            store.insert_chat("a1", ChannelType::Global, channel, text);
            start.elapsed().as_nanos()
        })
        .collect();
    assert_eq!(count(&store, "SELECT COUNT(*) FROM chatMessages"), 10_000);
    nanos.sort_unstable();
    let at = |q: f64| nanos[((nanos.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    println!(
        "insert_chat, 10000 inserts, WAL + synchronous=NORMAL, file {}: median {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us",
        db.0.display(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

//! Accounts: registration, login and the one-session-per-account rule
//! (LOBBY-JSON.md §1.5 items 1–2, §1.7, §1.9). The account directory lives
//! in memory (loaded once at start); the store only records changes.

use super::messages::Outgoing;
use super::{CloseReason, ConnId, JsonLobby, JsonOutbox, Now, Role, Session};
use crate::json::store::AccountRecord;
use std::collections::{HashMap, HashSet};

/// One registered account.
#[derive(Debug, Clone)]
pub struct Account {
    pub account_id: String,
    pub display_name: String,
    cookies: Vec<String>,
    /// Registration order (load order for stored accounts).
    seq: u64,
    /// The connection it is logged in on.
    session: Option<ConnId>,
}

impl Account {
    pub fn is_online(&self) -> bool {
        self.session.is_some()
    }

    pub fn session(&self) -> Option<ConnId> {
        self.session
    }

    pub(super) fn clear_session(&mut self) {
        self.session = None;
    }

    /// Whether `cookie` is one of the account's (the reference accepts any
    /// stored one; cookies never expire).
    pub(super) fn has_cookie(&self, cookie: &str) -> bool {
        self.cookies.iter().any(|c| c == cookie)
    }
}

/// Every account, by ID, plus the case-folded names for the uniqueness test.
#[derive(Debug, Default)]
pub(super) struct Directory {
    by_id: HashMap<String, Account>,
    /// ASCII-lowercased display names (SQLite's NOCASE folds ASCII only).
    names: HashSet<String>,
    next_seq: u64,
}

impl Directory {
    pub(super) fn load(records: Vec<AccountRecord>) -> Self {
        let mut dir = Self::default();
        for r in records {
            dir.insert(r.account_id, r.display_name, r.cookies);
        }
        dir
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn get(&self, id: &str) -> Option<&Account> {
        self.by_id.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Account> {
        self.by_id.get_mut(id)
    }

    /// Display name, "" for an unknown ID (cannot happen for IDs the rules
    /// took from logins, but a stored room may name a deleted account).
    pub(super) fn name(&self, id: &str) -> &str {
        self.by_id.get(id).map_or("", |a| a.display_name.as_str())
    }

    pub(super) fn name_taken(&self, name: &str) -> bool {
        self.names.contains(&name.to_ascii_lowercase())
    }

    /// The connection of an account that is logged in.
    pub(super) fn session_of(&self, id: &str) -> Option<ConnId> {
        self.by_id.get(id).and_then(|a| a.session)
    }

    pub(super) fn seq(&self, id: &str) -> u64 {
        self.by_id.get(id).map_or(u64::MAX, |a| a.seq)
    }

    fn insert(&mut self, account_id: String, display_name: String, cookies: Vec<String>) {
        self.names.insert(display_name.to_ascii_lowercase());
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(
            account_id.clone(),
            Account {
                account_id,
                display_name,
                cookies,
                seq,
                session: None,
            },
        );
    }
}

/// `LobbyServer::isAccountNameValid`: 4 to 20 bytes, each an ASCII letter or
/// digit (`std::isalnum` in the C locale).
pub(super) fn is_valid_account_name(name: &str) -> bool {
    (4..=20).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether a clientLogin `version` is 1.7.4 or later, i.e. the client
/// handles updateGameRoom (§1.14). Unparsable versions count as older:
/// activeGameRooms serves every client.
pub(super) fn handles_room_updates(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| {
        let digits = p.bytes().take_while(u8::is_ascii_digit).count();
        p[..digits].parse::<u64>().ok()
    });
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return false;
    };
    let patch = parts.next().flatten().unwrap_or(0);
    (major, minor, patch) >= (1, 7, 4)
}

/// The fields of a clientLogin.
pub(super) struct Login {
    pub account_id: String,
    pub account_cookie: String,
    pub language: String,
    pub version: String,
    pub language_rooms: Option<Vec<String>>,
}

impl JsonLobby {
    /// clientRegister (§1.5 item 1). The connection stays unauthenticated.
    pub(super) fn register(&mut self, conn: ConnId, display_name: &str, out: &mut JsonOutbox) {
        if !is_valid_account_name(display_name) {
            return fail(conn, "Illegal account name", out);
        }
        if self.accounts.name_taken(display_name) {
            return fail(conn, "Account name already in use", out);
        }
        let account_id = uuid::Uuid::new_v4().to_string();
        let cookie = uuid::Uuid::new_v4().to_string();
        self.store
            .insert_account(&account_id, display_name, &cookie);
        self.accounts.insert(
            account_id.clone(),
            display_name.to_string(),
            vec![cookie.clone()],
        );
        self.stats.registrations += 1;
        log::info!("JSON conn {conn}: account {display_name} ({account_id}) registered");
        out.send(
            conn,
            &Outgoing::AccountCreated {
                account_id: &account_id,
                account_cookie: &cookie,
            },
        );
    }

    /// clientLogin (§1.5 item 2, §1.9).
    pub(super) fn login(&mut self, conn: ConnId, login: Login, now: Now, out: &mut JsonOutbox) {
        let id = login.account_id.as_str();
        let Some(account) = self.accounts.get_mut(id) else {
            self.stats.login_failures += 1;
            return fail(conn, "Account not found", out);
        };
        if !account.has_cookie(&login.account_cookie) {
            self.stats.login_failures += 1;
            return fail(conn, "Authentication failure", out);
        }
        if self.bans.is_banned_name(&account.display_name) {
            // as a launcher's banned name: a reason the player can read
            // (the client shows operationFailed in its login window, §1.6),
            // then the connection is closed
            self.stats.login_failures += 1;
            log::info!("JSON conn {conn}: {} is banned", account.display_name);
            fail(conn, BANNED, out);
            return self.close(conn, CloseReason::Banned, out);
        }
        let old = account.session.replace(conn);
        let display_name = account.display_name.clone();
        self.store.set_online(id, true);
        if let Some(old) = old.filter(|&old| old != conn) {
            // §1.9, decided: the old connection loses its role now, so its
            // disconnect (which follows the close) changes nothing.
            self.logged_in.remove(&old);
            self.stats.evictions += 1;
            log::info!("JSON conn {old}: {display_name} logged in again on {conn}, closing");
            self.close(old, CloseReason::Evicted, out);
        }
        let room_updates = handles_room_updates(&login.version);
        self.set_role(
            conn,
            Role::Account(Session {
                account_id: login.account_id.clone(),
                version: login.version.clone(),
                room_updates,
            }),
        );
        self.logged_in.insert(conn);
        self.stats.logins += 1;
        log::info!(
            "JSON conn {conn}: {display_name} ({id}) logged in, version {:?}",
            login.version
        );

        out.send(
            conn,
            &Outgoing::ClientLoginSuccess {
                account_cookie: &login.account_cookie,
                display_name: &display_name,
            },
        );
        let rooms: Vec<&str> = match &login.language_rooms {
            Some(list) if !list.is_empty() => list
                .iter()
                .take(self.cfg.max_language_rooms)
                .map(String::as_str)
                .collect(),
            _ if login.language == "english" => vec!["english"],
            _ => vec!["english", login.language.as_str()],
        };
        for language in rooms {
            self.send_global_history(conn, language, now, out);
        }
        self.broadcast_active_accounts(out);
        let payload = self.active_rooms_payload(now);
        out.send_shared([conn], &payload);
        self.send_matches_history(conn, id, now, out);
    }
}

/// operationFailed with one of the reference's reasons (§1.6).
/// What a banned account is told at login.
pub const BANNED: &str = "You are banned from this lobby";

pub(super) fn fail(conn: ConnId, reason: &str, out: &mut JsonOutbox) {
    out.send(conn, &Outgoing::OperationFailed { reason });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for ok in ["abcd", "Ab12", "a2345678901234567890", "1234"] {
            assert!(is_valid_account_name(ok), "{ok}");
        }
        for bad in [
            "abc",
            "a23456789012345678901",
            "ab cd",
            "ab_cd",
            "abcé",
            "",
            "ab-c",
        ] {
            assert!(!is_valid_account_name(bad), "{bad}");
        }
    }

    #[test]
    fn versions_handling_room_updates() {
        for v in ["1.7.4", "1.7.5", "1.8.0", "2.0", "1.7.10", "1.7.4-dev"] {
            assert!(handles_room_updates(v), "{v}");
        }
        for v in ["1.7.3", "1.5.0", "1.6.8", "", "x", "1", "1.6.9.9"] {
            assert!(!handles_room_updates(v), "{v}");
        }
    }
}

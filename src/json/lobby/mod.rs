//! The JSON lobby rules (LOBBY-JSON.md §1.3–§1.11, HEAD = 1.7.4+ semantics):
//! accounts, chat, rooms and invites, match servers and proxy pairing,
//! presence. A plain struct mutated without locks, with no sockets and no
//! clock of its own: the server glue hands it each validated [`Request`]
//! with the connection's slab key and a [`Now`], and applies the
//! [`JsonOutbox`] it fills. Persistence goes through [`LobbyStore`]; every
//! read a message needs is served from memory, so a chat line costs one
//! store write and no read.
//!
//! Files, one family each: `accounts` (register, login, one session per
//! account), `chat` (channels, history, flood control), `rooms` (activate,
//! join, invite, room lists), `servers` (match servers, proxy pairing),
//! `presence` (activeAccounts, disconnects), `messages` (outgoing types),
//! `outbox`, `config` (limits, languages, [`Now`]), `memstore` (an
//! in-memory store for tests and benches), `tests` (one file per family).
//!
//! # LIFECYCLE
//!
//! A JSON connection (role checked in this order on every request, §1.3):
//! - *unauthenticated* (not in `conns`, or registered only): may send
//!   clientRegister (stays unauthenticated), clientLogin, serverLogin,
//!   clientProxyLogin, serverProxyLogin; anything else, or an invalid frame,
//!   closes it.
//! - clientLogin → *account*: chat, history, activate/join a room, invite.
//!   Ends at disconnect or when a newer login of the same account evicts it
//!   (the evicted connection becomes *closing* at once, §1.9).
//! - serverLogin → *room control* of the room it created: description,
//!   gameStarted, leaveGameRoom. Its disconnect ends the room.
//! - serverProxyLogin → still unauthenticated, but *awaiting a proxy*: an
//!   entry waits for the guest. The guest's clientProxyLogin on a new
//!   connection pairs the two: both become *proxied* and the glue forwards
//!   between them (no more requests reach the rules). Either side's
//!   disconnect closes the other.
//! - Any role → *closing* when the rules emit a `Close` for it: later
//!   requests (frames read in the same batch) are ignored and its
//!   `on_disconnect` changes nothing. The glue calls `on_disconnect` once
//!   for every connection it gave the rules, however it ended.
//!
//! A room (exists while its control connection lives; [`RoomStatus`]):
//! serverLogin → *idle* → activateGameRoom → *public*/*private* (guests
//! join, invites) → gameStarted → *busy*; control disconnect → *closed* if
//! it was busy (participants get matchesHistory), else *cancelled*. Ended
//! rooms leave memory except their participant list (for match chat),
//! bounded by [`JsonLobbyConfig::ended_rooms_cap`].
//!
//! # Decisions on reference quirks (§1.15) and other deliberate differences
//!
//! - §1.9 re-login: the older connection is closed and loses its account
//!   role at once, so its disconnect does not mark the account offline or broadcast;
//!   the new session stays in activeAccounts (reference: it disappears).
//! - §1.11 step 5: activeAccounts + activeGameRooms are broadcast on a
//!   disconnect only when an account went offline or a room ended. The
//!   reference broadcasts on every disconnect, so a port scan or each proxy
//!   leg costs every player two full lists; nothing in them changed.
//! - §1.5 item 4 activateGameRoom: `hostAccountID` must be the sender's own
//!   account (else "Failed to find idle server to join!"), the newest idle
//!   room of that host is taken, and an absent `playerLimit` means 8 (the
//!   reference's 0 made the room permanently full).
//! - §1.5 item 6 serverProxyLogin: the room must be live, the guest one of
//!   its participants (besides being online), and `accountCookie` a cookie
//!   of the room's host (a real vcmiserver sends its host's cookie here);
//!   else "Invalid credentials". The reference checks none of these (its
//!   FIXME), so anyone who read a room ID and a guest ID from
//!   activeGameRooms could pose as the match server to that guest.
//! - §1.11/§1.5 item 13 leaveGameRoom for an account not in the room: no
//!   reply (the reference sends operationFailed, which shuts the real
//!   vcmiserver and its game down). operationFailed reaches a match server
//!   only for a serverLogin with bad credentials (as in the reference) and
//!   on a proxy connection (serverProxyLogin, as in the reference).
//! - §1.5 item 3 serverLogin for a room ID that is already live: "Invalid
//!   credentials" (the reference inserts a duplicate row; a real vcmiserver
//!   uses a fresh UUID, so only a crafted peer sees this).
//! - §1.14/§2 description changes: clients that sent a clientLogin
//!   `version` of 1.7.4 or later get `updateGameRoom`, all others (1.5.0 to
//!   1.7.3 and unparsable versions) `activeGameRooms`, which they do handle.
//!   An idle room's description change is sent to nobody (§1.15 last item:
//!   1.7.4+ clients would list the idle room); activation lists it.
//! - §1.15 participants stay in their room when their account disconnects
//!   (a proxied game may go on). A reconnected player may re-join the same
//!   public/private room: joinGameRoom on the room it is already in repeats
//!   the join (accountJoinsRoom to the match server, which then opens a new
//!   proxy connection) without a second participant row, provided it is not
//!   the host and has no live proxy pair into that room (else, and for any
//!   other active room, "Player already in the room!" as in the reference).
//! - §1.4/§1.12 mods: `name` is the name the match server sent (the
//!   reference writes "" after reading a wrong key) and `parent` is the mod
//!   ID before its last `.` (the reference writes ".sub"); clients only
//!   display them. `participants`, `invited` and `mods` are omitted when
//!   empty, as in the reference (clients read a missing list as empty).
//! - §1.7 chat: the sanitised text decides only emptiness; the original text
//!   is stored and broadcast, as in the reference (clients depend on it).
//!   Characters at or above U+40000 give "String contains invalid
//!   characters!" (the reference's UTF-8 check), should the parser let them
//!   through.
//! - Flood control (not in the reference, §1.7 "no rate limit"):
//!   sendChatMessage, requestChatHistory and clientRegister take a token
//!   from a per-connection bucket ([`JsonLobbyConfig::chat_rate`] per second,
//!   [`JsonLobbyConfig::chat_burst`]). Excess requests are dropped silently
//!   and counted: clients only ever show operationFailed in the login window
//!   (§1.6), so a reply would inform nobody and cost bandwidth.
//! - §1.5 item 2 chatHistory at login: at most
//!   [`JsonLobbyConfig::max_language_rooms`] entries of `languageRooms` are
//!   answered; a language this lobby does not accept gets an empty history
//!   without a store read (no one can post there). Global history is served
//!   from an in-memory ring per language (loaded from the store on first
//!   use), also bounded in bytes ([`JsonLobbyConfig::history_bytes`]).
//! - §1.2 output: compact JSON, no `\u` escapes (see [`crate::json::writer`]);
//!   a backslash is always escaped (VCMI leaves `\n` typed in chat as an
//!   escape, turning it into a newline at the reader).
//! - Match chat access after a room ended needs its participant list, kept
//!   for rooms ended since start and for the closed rooms of every account
//!   that logged in (from matchesHistory); a room cancelled before a restart
//!   is no longer accessible (its chat was never delivered anyway).

mod accounts;
mod chat;
mod config;
pub mod memstore;
pub mod messages;
mod outbox;
mod presence;
mod rooms;
mod servers;

#[cfg(test)]
mod tests;

pub use accounts::{Account, BANNED};
pub use config::{JsonLobbyConfig, Now, HEAD_LANGUAGES};
pub use outbox::{Action, CloseReason, JsonOutbox};
pub use rooms::Room;

use crate::json::request::Request;
use crate::json::store::{LobbyStore, RoomStatus};
use chat::{GlobalChat, TokenBucket};
use std::collections::{BTreeSet, HashMap};

/// The server glue's handle for a connection (its slab key).
pub type ConnId = usize;

/// Cumulative counters, for logs and the status API.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JsonLobbyStats {
    pub registrations: u64,
    pub logins: u64,
    pub login_failures: u64,
    pub evictions: u64,
    pub chat_messages: u64,
    /// Requests dropped by flood control.
    pub flood_drops: u64,
    pub rooms_created: u64,
    pub proxy_pairs: u64,
}

/// A logged-in client session.
#[derive(Debug, Clone)]
struct Session {
    account_id: String,
    /// clientLogin's `version` (the reference discards it).
    version: String,
    /// 1.7.4+: understands updateGameRoom.
    room_updates: bool,
}

#[derive(Debug, Clone)]
enum Role {
    Unauthenticated,
    Account(Session),
    /// Control connection of this room.
    RoomControl(String),
    /// Paired with this connection; the glue forwards.
    Proxied(ConnId),
    /// The rules asked the glue to close it: whatever still arrives from
    /// it (frames read in the same batch) is ignored, and its disconnect
    /// changes nothing.
    Closing,
}

/// What the rules know about a connection they have seen.
#[derive(Debug)]
struct Conn {
    role: Role,
    flood: TokenBucket,
}

/// The JSON lobby: all in-memory state plus the store.
pub struct JsonLobby {
    cfg: JsonLobbyConfig,
    store: Box<dyn LobbyStore>,
    accounts: accounts::Directory,
    conns: HashMap<ConnId, Conn>,
    /// Account connections, ordered so broadcasts are deterministic.
    logged_in: BTreeSet<ConnId>,
    rooms: rooms::Rooms,
    ended: rooms::EndedRooms,
    chat: GlobalChat,
    awaiting: Vec<servers::AwaitingProxy>,
    /// Live proxy pairs: match-server half → (guest account, room).
    proxies: HashMap<ConnId, (String, String)>,
    stats: JsonLobbyStats,
    /// `--ban-file`: its `name:` entries refuse a clientLogin (the server
    /// replaces it on SIGHUP).
    pub bans: crate::ops::bans::BanList,
}

impl JsonLobby {
    /// Cleans stale state (§1.12 startup) and loads the account directory.
    pub fn new(cfg: JsonLobbyConfig, mut store: Box<dyn LobbyStore>) -> Self {
        store.clear_stale_state();
        let accounts = accounts::Directory::load(store.load_accounts());
        log::info!("JSON lobby: {} accounts loaded", accounts.len());
        Self {
            ended: rooms::EndedRooms::new(cfg.ended_rooms_cap),
            cfg,
            store,
            accounts,
            conns: HashMap::new(),
            logged_in: BTreeSet::new(),
            rooms: rooms::Rooms::default(),
            chat: GlobalChat::default(),
            awaiting: Vec::new(),
            proxies: HashMap::new(),
            stats: JsonLobbyStats::default(),
            bans: Default::default(),
        }
    }

    /// One validated request from `conn`, dispatched by the connection's
    /// role (§1.3).
    pub fn on_request(&mut self, conn: ConnId, req: Request, now: Now, out: &mut JsonOutbox) {
        match self.conns.get(&conn).map(|c| &c.role) {
            Some(Role::Proxied(peer)) => {
                // The glue forwards a proxied connection's frames itself.
                log::warn!("JSON conn {conn}: request on a connection proxied to {peer}, ignored");
            }
            Some(Role::Closing) => {}
            Some(Role::Account(session)) => {
                let session = session.clone();
                self.account_request(conn, session, req, now, out);
            }
            Some(Role::RoomControl(room_id)) => {
                let room_id = room_id.clone();
                self.room_control_request(conn, room_id, req, now, out);
            }
            Some(Role::Unauthenticated) | None => self.unauthenticated_request(conn, req, now, out),
        }
    }

    /// A frame from `conn` that failed parsing or validation (§1.2): an
    /// unauthenticated connection is closed, any other ignores it.
    pub fn on_invalid(&mut self, conn: ConnId, out: &mut JsonOutbox) {
        match self.conns.get(&conn).map(|c| &c.role) {
            Some(Role::Unauthenticated) | None => {
                log::info!("JSON conn {conn}: invalid message before login, closing");
                self.close(conn, CloseReason::Unauthenticated, out);
            }
            Some(_) => log::debug!("JSON conn {conn}: invalid message ignored"),
        }
    }

    fn account_request(
        &mut self,
        conn: ConnId,
        session: Session,
        req: Request,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        let me = session.account_id.as_str();
        match req {
            Request::SendChatMessage {
                message_text,
                channel_type,
                channel_name,
            } => {
                if self.take_flood_token(conn, now) {
                    self.send_chat(
                        conn,
                        me,
                        &message_text,
                        channel_type,
                        &channel_name,
                        now,
                        out,
                    );
                }
            }
            Request::RequestChatHistory {
                channel_type,
                channel_name,
            } => {
                if self.take_flood_token(conn, now) {
                    self.chat_history(conn, me, channel_type, &channel_name, now, out);
                }
            }
            Request::ActivateGameRoom {
                host_account_id,
                room_type,
                player_limit,
            } => self.activate_room(
                conn,
                me,
                &host_account_id,
                room_type,
                player_limit,
                now,
                out,
            ),
            Request::JoinGameRoom { game_room_id } => {
                self.join_room(conn, me, &game_room_id, now, out)
            }
            Request::SendInvite { account_id } => self.send_invite(conn, me, &account_id, now, out),
            other => log::warn!(
                "JSON conn {conn} ({me}): Unknown message type {:?} for an account, ignored",
                other.type_name()
            ),
        }
    }

    fn room_control_request(
        &mut self,
        conn: ConnId,
        room_id: String,
        req: Request,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        match req {
            Request::ChangeRoomDescription { description } => {
                self.change_description(&room_id, description, now, out)
            }
            Request::GameStarted => self.game_started(&room_id, now, out),
            Request::LeaveGameRoom { account_id } => {
                self.leave_room(&room_id, &account_id, now, out)
            }
            other => log::warn!(
                "JSON conn {conn} (room {room_id}): Unknown message type {:?} for a room, ignored",
                other.type_name()
            ),
        }
    }

    fn unauthenticated_request(
        &mut self,
        conn: ConnId,
        req: Request,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        match req {
            Request::ClientRegister { display_name, .. } => {
                if self.take_flood_token(conn, now) {
                    self.register(conn, &display_name, out);
                }
            }
            Request::ClientLogin {
                account_id,
                account_cookie,
                language,
                version,
                language_rooms,
            } => self.login(
                conn,
                accounts::Login {
                    account_id,
                    account_cookie,
                    language,
                    version,
                    language_rooms,
                },
                now,
                out,
            ),
            Request::ServerLogin {
                game_room_id,
                account_id,
                account_cookie,
                version,
                mods,
            } => self.server_login(
                conn,
                servers::ServerLogin {
                    game_room_id,
                    account_id,
                    account_cookie,
                    version,
                    mods: mods.unwrap_or_default(),
                },
                now,
                out,
            ),
            Request::ServerProxyLogin {
                game_room_id,
                guest_account_id,
                account_cookie,
            } => {
                self.server_proxy_login(conn, game_room_id, guest_account_id, &account_cookie, out)
            }
            Request::ClientProxyLogin {
                account_id,
                account_cookie,
                game_room_id,
            } => self.client_proxy_login(conn, &account_id, &account_cookie, &game_room_id, out),
            other => {
                log::info!(
                    "JSON conn {conn}: {:?} before login, closing",
                    other.type_name()
                );
                self.close(conn, CloseReason::Unauthenticated, out);
            }
        }
    }

    /// The connection's record, created unauthenticated on first use.
    fn conn_mut(&mut self, conn: ConnId) -> &mut Conn {
        self.conns.entry(conn).or_insert_with(|| Conn {
            role: Role::Unauthenticated,
            flood: TokenBucket::default(),
        })
    }

    /// Gives `conn` a role. A connection that takes any role stops waiting
    /// as the match-server half of a proxy, so no entry can pair a
    /// connection that is already an account, a room or a proxy half.
    fn set_role(&mut self, conn: ConnId, role: Role) {
        self.forget_awaiting(conn);
        self.conn_mut(conn).role = role;
    }

    /// Asks the glue to close `conn`; from now on the rules ignore it.
    fn close(&mut self, conn: ConnId, reason: CloseReason, out: &mut JsonOutbox) {
        self.set_role(conn, Role::Closing);
        out.close(conn, reason);
    }

    /// The account logged in on `conn`, if any.
    fn session(&self, conn: ConnId) -> Option<&Session> {
        match self.conns.get(&conn).map(|c| &c.role) {
            Some(Role::Account(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether `conn` completed a login of any kind: an account
    /// (clientLogin), a room's control connection (serverLogin), a proxy
    /// half (paired, or a match server's serverProxyLogin awaiting its
    /// guest). The glue's login timeout closes connections that never do.
    pub fn is_logged_in(&self, conn: ConnId) -> bool {
        match self.conns.get(&conn).map(|c| &c.role) {
            Some(Role::Account(_) | Role::RoomControl(_) | Role::Proxied(_)) => true,
            Some(Role::Unauthenticated) => self.awaiting.iter().any(|a| a.server == conn),
            Some(Role::Closing) | None => false,
        }
    }

    pub fn config(&self) -> &JsonLobbyConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &JsonLobbyStats {
        &self.stats
    }

    /// Logged-in accounts as `(accountID, displayName)`, in registration
    /// order (the activeAccounts order).
    pub fn accounts_online(&self) -> impl Iterator<Item = (&str, &str)> {
        self.online_accounts()
            .into_iter()
            .map(|a| (a.account_id.as_str(), a.display_name.as_str()))
    }

    /// Live rooms (idle, public, private, busy), in no particular order.
    pub fn rooms(&self) -> impl Iterator<Item = &Room> {
        self.rooms.iter()
    }

    /// The account and client version logged in on `conn`.
    pub fn session_of(&self, conn: ConnId) -> Option<(&str, &str)> {
        self.session(conn)
            .map(|s| (s.account_id.as_str(), s.version.as_str()))
    }

    /// An account's record (display name etc.).
    pub fn account(&self, account_id: &str) -> Option<&Account> {
        self.accounts.get(account_id)
    }

    /// Status of a live room.
    pub fn room_status(&self, room_id: &str) -> Option<RoomStatus> {
        self.rooms.get(room_id).map(|r| r.status)
    }
}

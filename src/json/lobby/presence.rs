//! Presence: who is online, and what a disconnect changes (LOBBY-JSON.md
//! §1.11, run for every connection the glue closes or loses).

use super::accounts::Account;
use super::messages::{OnlineAccount, Outgoing};
use super::{CloseReason, ConnId, JsonLobby, JsonOutbox, Now, Role};

impl JsonLobby {
    /// Logged-in accounts in registration order.
    pub(super) fn online_accounts(&self) -> Vec<&Account> {
        let mut online: Vec<&Account> = self
            .logged_in
            .iter()
            .filter_map(|&c| self.session(c))
            .filter_map(|s| self.accounts.get(&s.account_id))
            .collect();
        online.sort_by_key(|a| self.accounts.seq(&a.account_id));
        online
    }

    /// → everyone: activeAccounts.
    pub(super) fn broadcast_active_accounts(&self, out: &mut JsonOutbox) {
        let accounts = self
            .online_accounts()
            .into_iter()
            .map(|a| OnlineAccount {
                account_id: &a.account_id,
                display_name: &a.display_name,
                status: "In Lobby",
            })
            .collect();
        out.broadcast(
            self.logged_in.iter().copied(),
            &Outgoing::ActiveAccounts { accounts },
        );
    }

    /// The connection is gone, whoever closed it. The glue calls this once
    /// per connection, including those the rules asked to close. Steps in
    /// the reference's order (§1.11); the closing broadcasts only when an
    /// account went offline or a room ended (decided, see the module doc).
    pub fn on_disconnect(&mut self, conn: ConnId, now: Now, out: &mut JsonOutbox) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        let mut changed = false;
        match state.role {
            // 1. The account goes offline; it stays in its rooms.
            Role::Account(session) => {
                self.logged_in.remove(&conn);
                let id = session.account_id;
                if let Some(account) = self.accounts.get_mut(&id) {
                    if account.session() == Some(conn) {
                        account.clear_session();
                        self.store.set_online(&id, false);
                        log::info!(
                            "JSON conn {conn}: {} ({id}) logged out",
                            account.display_name
                        );
                        changed = true;
                    }
                }
            }
            // 2. The room ends.
            Role::RoomControl(room_id) => {
                self.end_room(&room_id, now, out);
                changed = true;
            }
            // 4. The other half of the pair is closed too.
            Role::Proxied(peer) => {
                self.proxies.remove(&conn);
                self.proxies.remove(&peer);
                if matches!(self.conns.get(&peer).map(|c| &c.role), Some(Role::Proxied(p)) if *p == conn)
                {
                    log::info!("JSON proxy: conn {conn} closed, closing its peer {peer}");
                    self.close(peer, CloseReason::ProxyPeerGone, out);
                }
            }
            Role::Unauthenticated | Role::Closing => {}
        }
        // 3. Waiting proxy entries of this connection.
        self.forget_awaiting(conn);
        // 5.
        if changed {
            self.broadcast_active_accounts(out);
            self.broadcast_active_rooms(now, out);
        }
    }
}

//! Logging in: GREETINGS (§6.1) and VER (§6.2).

use super::clients::Channel;
use super::{ClientId, CloseReason, Flow, List, Lobby, Outbox, ServerCounters, LARGE_LOBBY};
use crate::legacy::text::is_valid_username;
use std::time::Instant;

/// Names remembered for the `users` statistic before it stops growing.
const MAX_TRACKED_NAMES: usize = 1_000_000;

fn name_hash(name: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(name)
}

impl Lobby {
    pub(super) fn greetings(
        &mut self,
        id: ClientId,
        name: &str,
        counters: &ServerCounters,
        out: &mut Outbox,
    ) -> Flow {
        let Some(c) = self.clients.get(id) else {
            return Flow::Gone;
        };
        if c.is_authed() {
            out.send(id, ":>>ERROR:User already authorized".into());
            log::error!("[!] greetings from authorised user {}", c.name());
            return Flow::Abort;
        }
        let protocol = c.protocol();
        let error = if name.chars().count() < 3 {
            Some(format!("Too short username {name}"))
        } else if matches!(name, "System" | "all" | "room") {
            Some(format!("Username {name} is reserved by system"))
        } else if !is_valid_username(name) {
            Some("Invalid username".to_string())
        } else if self.clients.by_name(name).is_some() {
            Some(format!(
                "Can't connect with the name {name}. This login is already occpupied"
            ))
        } else {
            None
        };
        if let Some(e) = error {
            log::warn!("[!] client {id} refused as {name:?}: {e}");
            out.send(id, format!(":>>ERROR:{e}"));
            return Flow::Abort;
        }
        if self.bans.is_banned_name(name) {
            self.stats.banned_names += 1;
            log::warn!("[!] client {id} refused as {name}: banned name");
            out.send(id, ":>>ERROR:You are banned from this server".into());
            self.disconnect(id, out);
            out.close(id, CloseReason::Refused("banned name".into()));
            return Flow::Gone;
        }
        let authed = self.clients.authed_count();
        if authed >= self.config.capacity {
            self.stats.capacity_refusals += 1;
            log::warn!("[!] client {id} refused as {name}: lobby full ({authed} users)");
            out.send(
                id,
                format!(
                    ":>>ERROR:The lobby is full ({} players). Please try again later",
                    self.config.capacity
                ),
            );
            self.disconnect(id, out);
            out.close(id, CloseReason::Refused("lobby full".into()));
            return Flow::Gone;
        }

        // The reference names the newcomer in the USERS it sends to the
        // others before it counts him as logged in: name first, login after.
        self.clients.set_name(id, name);
        if self.stats.users.len() < MAX_TRACKED_NAMES {
            self.stats.users.insert(name_hash(name));
        }
        if authed < LARGE_LOBBY {
            // not the newcomer: he is not logged in yet
            let old: Vec<_> = self
                .clients
                .authed()
                .filter(|(_, c)| !c.protocol().gets_user_list())
                .map(|(i, _)| i)
                .collect();
            out.broadcast(old, format!(":>>MSG:System:{name} is here"));
        }
        if self.is_large() {
            // O(1): the event loop refreshes everyone once per round
            out.owe_everyone(List::Users);
        } else {
            let new: Vec<_> = self
                .clients
                .all()
                .filter(|(_, c)| c.protocol().gets_user_list())
                .map(|(i, _)| i)
                .collect();
            self.send_list(new, List::Users, out);
        }
        self.clients.log_in(id);
        if let Some(c) = self.clients.get_mut(id) {
            c.channel = Channel::Global;
        }
        self.send_list(vec![id], List::Sessions, out);
        if protocol.gets_user_list() {
            self.send_list(vec![id], List::Users, out);
        }
        let mut welcome = format!(
            ":>>MSG:System:Here available {} users, currently playing {}",
            self.clients.authed_count().saturating_sub(1),
            counters.pipes_open
        );
        if !protocol.gets_user_list() {
            welcome.push_str("\n Send <HERE> to see people names in the chat");
        }
        out.send(id, welcome);
        for line in self.motd.lines() {
            out.send(id, format!(":>>MSG:System:{line}"));
        }
        log::info!(
            "[*] client {id} autorized as {name} (protocol {})",
            protocol.version()
        );
        Flow::Continue
    }

    pub(super) fn version(&mut self, id: ClientId, version: &str, now: Instant) -> Flow {
        let changed = self.clients.get(id).is_some_and(|c| c.version != version);
        if changed && self.may_log(id, now) {
            log::info!("[*] User {} has version {version}", self.clients.name(id));
        }
        if let Some(c) = self.clients.get_mut(id) {
            c.version = version.to_string();
        }
        Flow::Continue
    }
}

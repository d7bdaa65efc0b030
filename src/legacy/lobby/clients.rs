//! The client directory: every lobby connection, its registration order,
//! and the index of logged-in names.
//!
//! [`Clients`] keeps four things that must agree — the clients by id, their
//! registration order (USERS lists them in it), the logged-in names (unique,
//! for GREETINGS and `@name`), and how many are logged in (capacity, large
//! lobby) — and only its own methods change them, so they cannot drift.

use super::flood::TokenBucket;
use super::{ClientId, Protocol};
use std::collections::{BTreeMap, HashMap};

/// Chat channel of a protocol-5 client (§6.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Global,
    Room,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Global => "global",
            Channel::Room => "room",
        }
    }
}

/// One lobby connection's state (§16.2). Identity (protocol, name, logged
/// in) belongs to the directory; the rest the rules change freely.
#[derive(Debug)]
pub(super) struct Client {
    /// Registration order; USERS lists clients in this order.
    seq: u64,
    protocol: Protocol,
    authed: bool,
    name: String,
    pub version: String,
    /// Set by NEW and JOIN; a JOIN without PSWD leaves it set without
    /// membership ("half-joined"). Every room member has it set.
    pub joined: bool,
    /// The room NEW or JOIN named (kept after leaving; only `joined` says
    /// whether it still applies).
    pub room: String,
    pub ready: bool,
    pub channel: Channel,
    pub flood: TokenBucket,
    /// Rate limit of the log lines its free commands write.
    pub log_lines: TokenBucket,
}

impl Client {
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn is_authed(&self) -> bool {
        self.authed
    }

    /// The login name; before GREETINGS succeeds, empty (or the name being
    /// logged in with, see [`Clients::set_name`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `room` is the room this client joined (or half-joined).
    pub fn is_joined_to(&self, room: &str) -> bool {
        self.joined && self.room == room
    }
}

#[derive(Debug, Default)]
pub(super) struct Clients {
    by_id: HashMap<ClientId, Client>,
    /// Registration order → client.
    order: BTreeMap<u64, ClientId>,
    next_seq: u64,
    /// Logged-in names → client; exactly the logged-in clients' names.
    names: HashMap<String, ClientId>,
    /// Logged-in clients; always `names.len()`.
    authed: usize,
}

impl Clients {
    /// Adds a connection that is not logged in yet. A second registration of
    /// a live id is refused (`false`): the event loop registers a
    /// connection once, and forgets it (disconnect) before reusing its key.
    pub fn register(&mut self, id: ClientId, protocol: Protocol) -> bool {
        if self.by_id.contains_key(&id) {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, id);
        self.by_id.insert(
            id,
            Client {
                seq,
                protocol,
                authed: false,
                name: String::new(),
                version: String::new(),
                joined: false,
                room: String::new(),
                ready: false,
                channel: Channel::Global,
                flood: TokenBucket::default(),
                log_lines: TokenBucket::default(),
            },
        );
        true
    }

    /// Forgets a client (and its name, if logged in).
    pub fn remove(&mut self, id: ClientId) -> Option<Client> {
        let c = self.by_id.remove(&id)?;
        self.order.remove(&c.seq);
        if c.authed {
            self.names.remove(&c.name);
            self.authed -= 1;
        }
        Some(c)
    }

    /// Names a client that is not logged in yet. The reference shows the
    /// newcomer's name in the USERS it sends just before the login completes,
    /// so naming and [`Clients::log_in`] are two steps. Refused once logged in
    /// (the name index would go stale).
    pub fn set_name(&mut self, id: ClientId, name: &str) -> bool {
        match self.by_id.get_mut(&id) {
            Some(c) if !c.authed => {
                c.name = name.to_string();
                true
            }
            _ => false,
        }
    }

    /// Logs a client in under the name it was given by `set_name`. Refused
    /// when already logged in or when another client holds that name.
    pub fn log_in(&mut self, id: ClientId) -> bool {
        let Some(c) = self.by_id.get_mut(&id) else {
            return false;
        };
        if c.authed || self.names.contains_key(&c.name) {
            return false;
        }
        c.authed = true;
        self.names.insert(c.name.clone(), id);
        self.authed += 1;
        true
    }

    pub fn get(&self, id: ClientId) -> Option<&Client> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        self.by_id.get_mut(&id)
    }

    pub fn contains(&self, id: ClientId) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Lobby connections, logged in or not.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Logged-in clients.
    pub fn authed_count(&self) -> usize {
        self.authed
    }

    /// The logged-in client with this name.
    pub fn by_name(&self, name: &str) -> Option<ClientId> {
        self.names.get(name).copied()
    }

    /// A client's name; empty for an unknown id.
    pub fn name(&self, id: ClientId) -> &str {
        self.by_id.get(&id).map_or("", |c| c.name.as_str())
    }

    pub fn protocol(&self, id: ClientId) -> Option<Protocol> {
        self.by_id.get(&id).map(|c| c.protocol)
    }

    /// Every lobby connection, logged in or not, in registration order (the
    /// reference's S-filter; D33 replicated).
    pub fn all(&self) -> impl Iterator<Item = (ClientId, &Client)> + '_ {
        self.order
            .values()
            .filter_map(|id| self.by_id.get(id).map(|c| (*id, c)))
    }

    /// Logged-in lobby connections in registration order (the B-filter).
    pub fn authed(&self) -> impl Iterator<Item = (ClientId, &Client)> + '_ {
        self.all().filter(|(_, c)| c.authed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(d: &Clients) {
        assert_eq!(d.order.len(), d.by_id.len());
        assert_eq!(d.all().count(), d.len());
        assert_eq!(d.authed, d.names.len());
        let scanned = d.by_id.values().filter(|c| c.authed).count();
        assert_eq!(scanned, d.authed_count());
        for (name, id) in &d.names {
            let c = d.get(*id).unwrap();
            assert!(c.is_authed());
            assert_eq!(c.name(), name);
        }
    }

    fn login(d: &mut Clients, id: ClientId, name: &str) -> bool {
        d.set_name(id, name) && d.log_in(id)
    }

    #[test]
    fn registration_order_survives_removals() {
        let mut d = Clients::default();
        for id in [7, 3, 9, 1] {
            assert!(d.register(id, Protocol::new(5)));
        }
        assert!(
            !d.register(3, Protocol::new(1)),
            "a live id is not re-registered"
        );
        assert_eq!(d.protocol(3), Some(Protocol::new(5)));
        d.remove(9);
        assert!(d.register(9, Protocol::new(4)));
        let ids: Vec<_> = d.all().map(|(id, _)| id).collect();
        assert_eq!(ids, [7, 3, 1, 9]);
        check(&d);
    }

    #[test]
    fn names_are_unique_and_follow_logins() {
        let mut d = Clients::default();
        d.register(1, Protocol::new(5));
        d.register(2, Protocol::new(3));
        assert!(login(&mut d, 1, "alice"));
        assert!(!d.set_name(1, "mallory"), "a logged-in name is fixed");
        assert!(!d.log_in(1), "twice");
        assert!(d.set_name(2, "alice"));
        assert!(!d.log_in(2), "name taken");
        assert_eq!(d.by_name("alice"), Some(1));
        assert_eq!(d.authed_count(), 1);
        check(&d);
        d.remove(1);
        assert_eq!(d.by_name("alice"), None);
        assert!(d.log_in(2));
        assert_eq!(d.by_name("alice"), Some(2));
        let authed: Vec<_> = d.authed().map(|(id, _)| id).collect();
        assert_eq!(authed, [2]);
        check(&d);
    }

    #[test]
    fn removing_unknown_or_unauthed_clients_keeps_counts() {
        let mut d = Clients::default();
        assert!(d.remove(4).is_none());
        d.register(4, Protocol::new(4));
        d.set_name(4, "bob");
        let c = d.remove(4).unwrap();
        assert_eq!(c.name(), "bob");
        assert_eq!((d.len(), d.authed_count()), (0, 0));
        assert_eq!(d.name(4), "");
        check(&d);
    }
}

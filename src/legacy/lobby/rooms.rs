//! The room table: rooms in creation order (SESSIONS lists them in it) with
//! an index by name.
//!
//! LIFECYCLE of a room
//! ```text
//!   NEW ──▶ created: host only, total 1 (looks full, so nobody can JOIN)
//!             │ COUNT 2..=8                 │ COUNT not 2..=8,
//!             ▼                             ▼ host LEAVE, host gone
//!           open ──host LEAVE, host gone──▶ destroyed: each member gets KICK
//!             │ ▲  guests JOIN+PSWD, LEAVE,            and is back in the lobby
//!             └─┘  are kicked, disconnect
//!   created / open ──all ready (≥ 2), FORCESTART, host READY before v3──▶ started:
//!             out of the table; its members leave the lobby for game pipes
//! ```
//! A room always has its host; guests come and go. [`Rooms`] keeps the
//! table and the name index in step, and [`Room`] keeps its name and host
//! fixed, so the rules look rooms up by key or name and get an `Option`,
//! never a panic.

use super::ClientId;
use std::collections::{BTreeMap, HashMap};

/// A room's key in the table: creation order.
pub(super) type RoomKey = u64;

/// Distinct mods a room remembers; real mod lists are well below this.
const MAX_ROOM_MODS: usize = 512;
/// ... and their total text, which every MODS answer repeats.
const MAX_ROOM_MODS_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub(super) struct Room {
    name: String,
    host: ClientId,
    /// Members other than the host, in joining order.
    guests: Vec<ClientId>,
    /// 1 until COUNT arrives, which makes the room look full.
    pub total: u32,
    pub password: String,
    pub protected: bool,
    /// Insertion-ordered; later values for a name overwrite in place.
    mods: Vec<(String, String)>,
    pub gamemode: String,
}

impl Room {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn host(&self) -> ClientId {
        self.host
    }

    pub fn guests(&self) -> &[ClientId] {
        &self.guests
    }

    /// Members, host first.
    pub fn players(&self) -> impl Iterator<Item = ClientId> + '_ {
        std::iter::once(self.host).chain(self.guests.iter().copied())
    }

    pub fn player_count(&self) -> usize {
        1 + self.guests.len()
    }

    pub fn is_member(&self, id: ClientId) -> bool {
        self.host == id || self.guests.contains(&id)
    }

    pub fn is_full(&self) -> bool {
        self.player_count() >= self.total as usize
    }

    /// Adds a guest; refused (`false`) for a member.
    pub fn add_guest(&mut self, id: ClientId) -> bool {
        if self.is_member(id) {
            return false;
        }
        self.guests.push(id);
        true
    }

    /// Removes a guest; the host cannot be removed (a room without its host
    /// is destroyed instead). Tells nobody: the caller sends the KICK.
    pub fn remove_guest(&mut self, id: ClientId) -> bool {
        let before = self.guests.len();
        self.guests.retain(|g| *g != id);
        self.guests.len() != before
    }

    pub fn mods(&self) -> &[(String, String)] {
        &self.mods
    }

    /// Merges `name&version` items into the room's mods. Mods are never
    /// cleared (D9), so they are capped: a host repeating MODS cannot grow
    /// the room without bound; a known name still gets its new version.
    pub fn merge_mods(&mut self, items: &[&str]) {
        for &item in items {
            let (name, version) = item.split_once('&').unwrap_or((item, ""));
            let full = self.mods.len() >= MAX_ROOM_MODS
                || self
                    .mods
                    .iter()
                    .map(|(n, v)| n.len() + v.len())
                    .sum::<usize>()
                    + item.len()
                    > MAX_ROOM_MODS_BYTES;
            match self.mods.iter_mut().find(|(n, _)| n == name) {
                Some(m) => m.1 = version.to_string(),
                None if full => {}
                None => self.mods.push((name.to_string(), version.to_string())),
            }
        }
    }
}

/// A room name already in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NameTaken;

#[derive(Debug, Default)]
pub(super) struct Rooms {
    by_key: BTreeMap<RoomKey, Room>,
    /// Exactly the names of the rooms in `by_key`.
    by_name: HashMap<String, RoomKey>,
    next_key: RoomKey,
}

impl Rooms {
    /// A new room with `host` as its only member, not open yet (total 1).
    pub fn create(&mut self, name: &str, host: ClientId) -> Result<RoomKey, NameTaken> {
        if self.by_name.contains_key(name) {
            return Err(NameTaken);
        }
        let key = self.next_key;
        self.next_key += 1;
        self.by_key.insert(
            key,
            Room {
                name: name.to_string(),
                host,
                guests: Vec::new(),
                total: 1,
                password: String::new(),
                protected: false,
                mods: Vec::new(),
                gamemode: "0".into(),
            },
        );
        self.by_name.insert(name.to_string(), key);
        Ok(key)
    }

    /// Takes a room out of the table (destroyed or started).
    pub fn remove(&mut self, key: RoomKey) -> Option<Room> {
        let room = self.by_key.remove(&key)?;
        self.by_name.remove(&room.name);
        Some(room)
    }

    pub fn get(&self, key: RoomKey) -> Option<&Room> {
        self.by_key.get(&key)
    }

    pub fn get_mut(&mut self, key: RoomKey) -> Option<&mut Room> {
        self.by_key.get_mut(&key)
    }

    pub fn key_of(&self, name: &str) -> Option<RoomKey> {
        self.by_name.get(name).copied()
    }

    pub fn by_name(&self, name: &str) -> Option<&Room> {
        self.get(self.key_of(name)?)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Rooms in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &Room> + '_ {
        self.by_key.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(r: &Rooms) {
        assert_eq!(r.by_key.len(), r.by_name.len());
        for (key, room) in &r.by_key {
            assert_eq!(r.key_of(room.name()), Some(*key));
            assert!(room.is_member(room.host()));
            assert!(!room.guests().contains(&room.host()));
        }
    }

    #[test]
    fn table_and_name_index_agree() {
        let mut r = Rooms::default();
        let a = r.create("Alpha", 1).unwrap();
        let b = r.create("Beta", 2).unwrap();
        assert_eq!(r.create("Alpha", 3), Err(NameTaken));
        assert_eq!(r.len(), 2);
        check(&r);
        let names: Vec<_> = r.iter().map(Room::name).collect();
        assert_eq!(names, ["Alpha", "Beta"]);
        assert_eq!(r.remove(a).map(|room| room.host()), Some(1));
        assert!(r.remove(a).is_none());
        assert!(r.get(a).is_none() && r.key_of("Alpha").is_none());
        // the name is free again and the new room sorts after Beta
        let c = r.create("Alpha", 3).unwrap();
        assert!(c > b);
        let names: Vec<_> = r.iter().map(Room::name).collect();
        assert_eq!(names, ["Beta", "Alpha"]);
        check(&r);
    }

    #[test]
    fn host_stays_and_guests_are_unique() {
        let mut r = Rooms::default();
        let key = r.create("Den", 1).unwrap();
        let room = r.get_mut(key).unwrap();
        assert!(room.is_full(), "a new room looks full until COUNT");
        room.total = 3;
        assert!(room.add_guest(2));
        assert!(!room.add_guest(2) && !room.add_guest(1));
        assert!(room.add_guest(3));
        assert!(room.is_full());
        assert_eq!(room.players().collect::<Vec<_>>(), [1, 2, 3]);
        assert!(!room.remove_guest(1), "the host is not a guest");
        assert!(room.remove_guest(2));
        assert!(!room.remove_guest(2));
        assert_eq!(room.players().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(room.player_count(), 2);
        check(&r);
    }

    #[test]
    fn mods_overwrite_in_place_and_stay_bounded() {
        let mut r = Rooms::default();
        let key = r.create("Den", 1).unwrap();
        let room = r.get_mut(key).unwrap();
        room.merge_mods(&["a&1", "b&2", "a&3", "c"]);
        assert_eq!(
            room.mods(),
            [
                ("a".to_string(), "3".to_string()),
                ("b".into(), "2".into()),
                ("c".into(), "".into())
            ]
        );
        let many: Vec<String> = (0..2 * MAX_ROOM_MODS).map(|i| format!("m{i}&1")).collect();
        let items: Vec<&str> = many.iter().map(String::as_str).collect();
        room.merge_mods(&items);
        assert!(room.mods().len() <= MAX_ROOM_MODS);
        let big = "x".repeat(MAX_ROOM_MODS_BYTES);
        room.merge_mods(&[&big]);
        assert!(room.mods().iter().all(|(n, _)| n != &big));
    }
}

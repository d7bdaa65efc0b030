//! Started games and their pipes (PROTOCOL.md §10.4, §10.8).
//!
//! A started room leaves a session: the HOST uuid the host's vcmiserver
//! presents on each of its connections, and one START uuid per player for
//! the remote vcmiclients. Pipes are paired first come, first served: a
//! client pipe takes the oldest waiting server pipe of its session and vice
//! versa. The byte copying itself lives in `server::legacy_pipe`; this module
//! is the bookkeeping, free of sockets so its rules can be tested directly.
//!
//! A pair lives until either side leaves; the survivor is shut down too
//! (D28 propagate), so a pair is never re-formed around a live stream and
//! nothing stale is replayed into it (D29).

use crate::legacy::handshake::Role;
use crate::legacy::lobby::StartedSession;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The event loop's handle for a pipe connection (its slab key).
pub type PipeId = usize;
pub type SessionId = u64;

#[derive(Debug)]
struct Session {
    name: String,
    host_uuid: String,
    client_uuids: Vec<String>,
    waiting: [VecDeque<PipeId>; 2],
    /// Registered pipes, waiting or paired.
    pipes: usize,
    /// When the session is forgotten unless a pipe registers first.
    expires: Option<Instant>,
    /// The address whose START made it (the per-address cap counts it).
    owner: IpAddr,
}

/// Where a pipe that finished its handshake goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// No partner yet; it waits in its session.
    Waiting(SessionId),
    /// Paired with `waiting`, the partner that registered first.
    Paired { session: SessionId, waiting: PipeId },
}

#[derive(Debug, Default)]
pub struct Relay {
    sessions: HashMap<SessionId, Session>,
    by_uuid: HashMap<String, (SessionId, Role)>,
    next_id: SessionId,
    /// Live sessions per owner address.
    per_owner: HashMap<IpAddr, usize>,
}

fn slot(role: Role) -> usize {
    match role {
        Role::Server => 0,
        Role::Client => 1,
    }
}

impl Relay {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Live sessions started from `owner`.
    pub fn sessions_of(&self, owner: IpAddr) -> usize {
        self.per_owner.get(&owner).copied().unwrap_or(0)
    }

    /// Records a started room, counted against `owner`. Returns its id and
    /// the deadline by which its first pipe must arrive (`--pipe-wait`; D30
    /// fix: sessions nobody uses are forgotten too).
    pub fn add_session(
        &mut self,
        s: StartedSession,
        owner: IpAddr,
        now: Instant,
        wait: Duration,
    ) -> (SessionId, Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let expires = now + wait;
        *self.per_owner.entry(owner).or_insert(0) += 1;
        self.by_uuid.insert(s.host_uuid.clone(), (id, Role::Server));
        for u in &s.client_uuids {
            self.by_uuid.insert(u.clone(), (id, Role::Client));
        }
        self.sessions.insert(
            id,
            Session {
                name: s.name,
                host_uuid: s.host_uuid,
                client_uuids: s.client_uuids,
                waiting: Default::default(),
                pipes: 0,
                expires: Some(expires),
                owner,
            },
        );
        (id, expires)
    }

    /// Name of a session, for logs.
    pub fn session_name(&self, id: SessionId) -> &str {
        self.sessions.get(&id).map_or("?", |s| s.name.as_str())
    }

    /// Places a pipe whose handshake named `uuid` with `role`. `None` when no
    /// session knows that uuid for that role.
    pub fn register(&mut self, uuid: &str, role: Role, pipe: PipeId) -> Option<Placement> {
        let &(sid, expected) = self.by_uuid.get(uuid)?;
        if expected != role {
            return None;
        }
        let s = self.sessions.get_mut(&sid)?;
        s.pipes += 1;
        s.expires = None;
        let other = match role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        };
        match s.waiting[slot(other)].pop_front() {
            Some(waiting) => Some(Placement::Paired {
                session: sid,
                waiting,
            }),
            None => {
                s.waiting[slot(role)].push_back(pipe);
                Some(Placement::Waiting(sid))
            }
        }
    }

    /// A registered pipe closed. Returns the session's expiry deadline when
    /// it was the last pipe.
    pub fn pipe_closed(
        &mut self,
        sid: SessionId,
        pipe: PipeId,
        now: Instant,
        grace: Duration,
    ) -> Option<Instant> {
        let s = self.sessions.get_mut(&sid)?;
        for q in &mut s.waiting {
            q.retain(|p| *p != pipe);
        }
        s.pipes = s.pipes.saturating_sub(1);
        if s.pipes == 0 {
            let at = now + grace;
            s.expires = Some(at);
            return Some(at);
        }
        None
    }

    /// Forgets the session if its deadline passed with no pipe. Returns
    /// whether it was forgotten.
    pub fn expire(&mut self, sid: SessionId, now: Instant) -> bool {
        let Some(s) = self.sessions.get(&sid) else {
            return false;
        };
        if s.pipes > 0 || s.expires.is_none_or(|at| at > now) {
            return false;
        }
        let s = self.sessions.remove(&sid).expect("checked above");
        self.by_uuid.remove(&s.host_uuid);
        for u in &s.client_uuids {
            self.by_uuid.remove(u);
        }
        if let Some(n) = self.per_owner.get_mut(&s.owner) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&s.owner);
            }
        }
        log::info!("[S {}] session forgotten", s.name);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(r: &mut Relay, now: Instant) -> SessionId {
        r.add_session(
            StartedSession {
                name: "Duel".into(),
                host_uuid: "H".into(),
                client_uuids: vec!["A".into(), "B".into(), "C".into()],
            },
            IpAddr::from([127, 0, 0, 1]),
            now,
            Duration::from_secs(10),
        )
        .0
    }

    #[test]
    fn pairs_first_come_first_served_in_both_orders() {
        let now = Instant::now();
        let mut r = Relay::new();
        let s = session(&mut r, now);
        assert_eq!(
            r.register("B", Role::Client, 1),
            Some(Placement::Waiting(s))
        );
        assert_eq!(
            r.register("C", Role::Client, 2),
            Some(Placement::Waiting(s))
        );
        assert_eq!(
            r.register("H", Role::Server, 3),
            Some(Placement::Paired {
                session: s,
                waiting: 1
            })
        );
        assert_eq!(
            r.register("H", Role::Server, 4),
            Some(Placement::Paired {
                session: s,
                waiting: 2
            })
        );
        assert_eq!(
            r.register("H", Role::Server, 5),
            Some(Placement::Waiting(s))
        );
        assert_eq!(
            r.register("A", Role::Client, 6),
            Some(Placement::Paired {
                session: s,
                waiting: 5
            })
        );
    }

    #[test]
    fn wrong_role_and_unknown_uuid_are_refused() {
        let now = Instant::now();
        let mut r = Relay::new();
        session(&mut r, now);
        assert_eq!(r.register("H", Role::Client, 1), None);
        assert_eq!(r.register("A", Role::Server, 1), None);
        assert_eq!(r.register("nope", Role::Client, 1), None);
    }

    #[test]
    fn sessions_expire_only_without_pipes() {
        let now = Instant::now();
        let mut r = Relay::new();
        let s = session(&mut r, now);
        let later = now + Duration::from_secs(11);
        r.register("A", Role::Client, 1);
        assert!(!r.expire(s, later));
        let at = r.pipe_closed(s, 1, later, Duration::from_secs(10)).unwrap();
        assert!(!r.expire(s, later));
        assert_eq!(r.sessions_of(IpAddr::from([127, 0, 0, 1])), 1);
        assert!(r.expire(s, at));
        assert_eq!(r.sessions(), 0);
        assert_eq!(r.sessions_of(IpAddr::from([127, 0, 0, 1])), 0);
        assert_eq!(r.register("A", Role::Client, 2), None);
    }

    #[test]
    fn unused_sessions_expire_from_creation() {
        let now = Instant::now();
        let mut r = Relay::new();
        let s = session(&mut r, now);
        assert!(!r.expire(s, now + Duration::from_secs(9)));
        assert!(r.expire(s, now + Duration::from_secs(10)));
    }
}

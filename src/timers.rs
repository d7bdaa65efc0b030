//! Deadlines for connections and sessions. The nearest one is the poll
//! timeout, so nothing ticks and no thread sleeps (the reference busy-waited
//! a whole core for its healthcheck, D24).
//!
//! Entries are never removed when their deadline changes: each fired entry is
//! checked against its owner's current state (lazy deletion), which keeps
//! every operation O(log n).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A connection (slab key, serial against slot reuse) should be looked
    /// at: first-frame or pipe handshake timeout, healthcheck.
    Conn { key: usize, serial: u64 },
    /// A started session may have expired.
    Session(u64),
    /// A coalesced USERS/SESSIONS refresh may be due for a connection.
    Refresh { key: usize, serial: u64 },
    /// A large-lobby refresh round may be due.
    RefreshRound,
    /// The frame a connection is receiving may have taken too long.
    Frame { key: usize, serial: u64 },
    /// Time for the periodic statistics line.
    Stats,
    /// Accepting was paused by an accept error; try again.
    AcceptRetry,
    /// The shutdown grace is over.
    Shutdown,
    /// One round of our own empty frame to every JSON connection (§1.1).
    JsonHeartbeat,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
}

impl Timers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn schedule(&mut self, at: Instant, t: Timer) {
        self.heap.push(Reverse((at, t)));
    }

    /// The nearest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns one entry due at `now`, with its deadline (owners
    /// compare it with their current one to skip superseded entries).
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Timer)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order() {
        let now = Instant::now();
        let mut t = Timers::new();
        t.schedule(now + Duration::from_secs(2), Timer::Session(2));
        t.schedule(now + Duration::from_secs(1), Timer::Session(1));
        t.schedule(
            now + Duration::from_secs(3),
            Timer::Conn { key: 0, serial: 9 },
        );
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(1)));
        assert_eq!(t.pop_due(now), None);
        let later = now + Duration::from_secs(2);
        assert_eq!(t.pop_due(later).map(|e| e.1), Some(Timer::Session(1)));
        assert_eq!(t.pop_due(later).map(|e| e.1), Some(Timer::Session(2)));
        assert_eq!(t.pop_due(later), None);
        assert_eq!(t.heap.len(), 1);
    }
}

//! The global memory budget (`--memory-budget`): one account for every byte
//! a peer can make the server hold, whatever kind of connection it is —
//! partial input frames, queued lobby output, relay buffers, a waiting pipe's
//! early bytes.
//!
//! Accounting is exact by construction: each connection carries the
//! [`Charge`] the budget last recorded for it, and [`Budget::set`] moves the
//! total by the difference between what it holds now and that charge, so
//! the total is always the sum of the charges and cannot drift. A connection
//! leaving releases its charge ([`Budget::release`]).
//!
//! When the total passes the limit, [`victims`] picks whom to drop: the
//! largest holders first, until the total is back under the low-water mark
//! (7/8 of the limit, so one shedding pass buys room for many reads rather
//! than one). A paired relay is only chosen when dropping everything else is
//! not enough: a relay that is merely slow is already throttled by
//! back-pressure (its source is not read while its partner's buffer is
//! full), so its charge is bounded, and it is a running game.
//!
//! What a new connection kind must do to be accounted (the JSON kind, say):
//! 1. add what its state holds to `server::shedding::held` (one arm);
//! 2. mark its connection dirty whenever those buffers change — the flush at
//!    the end of the loop turn re-charges every dirty connection, and
//!    `close::finish_close` releases the charge;
//! 3. say in `server::shedding::holder_kind` whether it is a paired relay.
//!
//! The policy is pure (no sockets, no clock) and unit-tested here; the glue
//! that measures connections and closes the victims is `server::shedding`.

/// Bytes currently charged to one holder (one connection).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Charge(usize);

impl Charge {
    pub fn bytes(self) -> usize {
        self.0
    }
}

/// The account of everything peers make the server hold.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    total: usize,
    /// Holders dropped to stay within the limit, ever.
    pub sheds: u64,
}

impl Budget {
    pub fn new(limit: usize) -> Self {
        Budget {
            limit,
            total: 0,
            sheds: 0,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sum of every holder's charge.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Records that a holder now holds `held` bytes.
    pub fn set(&mut self, charge: &mut Charge, held: usize) {
        // exact: the total moves by exactly the change of this charge
        self.total = self.total - charge.0 + held;
        charge.0 = held;
    }

    /// The holder is gone: its charge is given back.
    pub fn release(&mut self, charge: &mut Charge) {
        self.set(charge, 0);
    }

    /// Whether the limit is exceeded.
    pub fn is_over(&self) -> bool {
        self.total > self.limit
    }

    /// Bytes to free to get back to the low-water mark (0 when not over).
    pub fn excess(&self) -> usize {
        if !self.is_over() {
            return 0;
        }
        self.total - self.low_water()
    }

    /// What shedding aims for: 7/8 of the limit.
    pub fn low_water(&self) -> usize {
        self.limit - self.limit / 8
    }
}

/// What a holder is, as far as the shedding order goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HolderKind {
    /// Anything a peer can grow on purpose: partial frames, lobby queues,
    /// a waiting pipe's early bytes, a connection being closed.
    Plain,
    /// A paired game pipe: bounded by back-pressure, shed last.
    PairedRelay,
}

/// One candidate for shedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub key: usize,
    pub held: usize,
    pub kind: HolderKind,
}

/// Whom to drop to free `excess` bytes: plain holders before paired relays,
/// the largest first in each group; holders of nothing are never chosen.
/// Fewer than needed when even all of them would not free enough.
pub fn victims(mut holders: Vec<Holder>, excess: usize) -> Vec<Holder> {
    if excess == 0 {
        return Vec::new();
    }
    holders.retain(|h| h.held > 0);
    holders.sort_unstable_by(|a, b| a.kind.cmp(&b.kind).then(b.held.cmp(&a.held)));
    let mut freed = 0;
    let mut out = Vec::new();
    for h in holders {
        if freed >= excess {
            break;
        }
        freed += h.held;
        out.push(h);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(key: usize, held: usize) -> Holder {
        Holder {
            key,
            held,
            kind: HolderKind::Plain,
        }
    }

    #[test]
    fn accounting_is_exact_through_growth_shrink_and_release() {
        let mut b = Budget::new(1000);
        let (mut x, mut y) = (Charge::default(), Charge::default());
        b.set(&mut x, 300);
        b.set(&mut y, 500);
        assert_eq!(b.total(), 800);
        b.set(&mut x, 600);
        assert!(b.is_over());
        assert_eq!(b.excess(), 1100 - 875);
        b.set(&mut y, 100);
        assert_eq!(b.total(), 700);
        assert!(!b.is_over());
        assert_eq!(b.excess(), 0);
        b.release(&mut x);
        b.release(&mut y);
        assert_eq!(b.total(), 0);
        assert_eq!((x.bytes(), y.bytes()), (0, 0));
        // releasing twice gives back nothing more
        b.release(&mut x);
        assert_eq!(b.total(), 0);
    }

    #[test]
    fn largest_plain_holders_go_first_until_enough_is_freed() {
        let holders = vec![plain(1, 10), plain(2, 50), plain(3, 30), plain(4, 0)];
        let keys = |v: Vec<Holder>| v.into_iter().map(|h| h.key).collect::<Vec<_>>();
        assert_eq!(keys(victims(holders.clone(), 40)), vec![2]);
        assert_eq!(keys(victims(holders.clone(), 51)), vec![2, 3]);
        assert_eq!(keys(victims(holders.clone(), 1000)), vec![2, 3, 1]);
        assert!(victims(holders, 0).is_empty());
    }

    #[test]
    fn paired_relays_are_shed_only_when_the_rest_is_not_enough() {
        let relay = Holder {
            key: 9,
            held: 500,
            kind: HolderKind::PairedRelay,
        };
        let holders = vec![relay, plain(1, 20), plain(2, 40)];
        let keys = |v: Vec<Holder>| v.into_iter().map(|h| h.key).collect::<Vec<_>>();
        assert_eq!(keys(victims(holders.clone(), 50)), vec![2, 1]);
        assert_eq!(keys(victims(holders, 100)), vec![2, 1, 9]);
    }
}

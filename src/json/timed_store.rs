//! Time spent in the store, measured from the loop's side: [`TimedStore`]
//! wraps any [`LobbyStore`] and adds each call's duration to a shared
//! [`StoreClock`]; the glue reads and resets it around each request and
//! files the sum in a [`LatencyHistogram`] (issue 12: the p99 time the
//! loop spends in SQLite per chat message). One `Instant::now()` pair per
//! store call: tens of nanoseconds against microseconds of SQLite.

use super::request::{ChannelType, ModInfo};
use super::store::{AccountRecord, ChatRecord, LobbyStore, MatchRecord, RoomStatus};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Store time accumulated since the last [`StoreClock::take`].
#[derive(Debug, Default)]
pub struct StoreClock {
    busy: Cell<Duration>,
}

impl StoreClock {
    /// The time accumulated so far, resetting it to zero.
    pub fn take(&self) -> Duration {
        self.busy.replace(Duration::ZERO)
    }

    fn add(&self, d: Duration) {
        self.busy.set(self.busy.get() + d);
    }
}

/// A store whose every call is timed into a [`StoreClock`].
pub struct TimedStore {
    inner: Box<dyn LobbyStore>,
    clock: Rc<StoreClock>,
}

impl TimedStore {
    pub fn new(inner: Box<dyn LobbyStore>, clock: Rc<StoreClock>) -> Self {
        TimedStore { inner, clock }
    }

    fn timed<T>(&mut self, f: impl FnOnce(&mut dyn LobbyStore) -> T) -> T {
        let start = Instant::now();
        let r = f(self.inner.as_mut());
        self.clock.add(start.elapsed());
        r
    }
}

impl LobbyStore for TimedStore {
    fn clear_stale_state(&mut self) {
        self.timed(|s| s.clear_stale_state())
    }
    fn load_accounts(&mut self) -> Vec<AccountRecord> {
        self.timed(|s| s.load_accounts())
    }
    fn insert_account(&mut self, account_id: &str, display_name: &str, cookie: &str) {
        self.timed(|s| s.insert_account(account_id, display_name, cookie))
    }
    fn set_online(&mut self, account_id: &str, online: bool) {
        self.timed(|s| s.set_online(account_id, online))
    }
    fn insert_chat(&mut self, sender: &str, channel: ChannelType, name: &str, text: &str) {
        self.timed(|s| s.insert_chat(sender, channel, name, text))
    }
    fn recent_chat(&mut self, channel: ChannelType, name: &str) -> Vec<ChatRecord> {
        self.timed(|s| s.recent_chat(channel, name))
    }
    fn full_chat(&mut self, channel: ChannelType, name: &str) -> Vec<ChatRecord> {
        self.timed(|s| s.full_chat(channel, name))
    }
    fn insert_room(&mut self, room_id: &str, host: &str, version: &str, mods: &[ModInfo]) {
        self.timed(|s| s.insert_room(room_id, host, version, mods))
    }
    fn set_room_status(&mut self, room_id: &str, status: RoomStatus) {
        self.timed(|s| s.set_room_status(room_id, status))
    }
    fn set_room_player_limit(&mut self, room_id: &str, player_limit: i64) {
        self.timed(|s| s.set_room_player_limit(room_id, player_limit))
    }
    fn set_room_description(&mut self, room_id: &str, description: &str) {
        self.timed(|s| s.set_room_description(room_id, description))
    }
    fn insert_participant(&mut self, room_id: &str, account_id: &str) {
        self.timed(|s| s.insert_participant(room_id, account_id))
    }
    fn delete_participant(&mut self, room_id: &str, account_id: &str) {
        self.timed(|s| s.delete_participant(room_id, account_id))
    }
    fn insert_invite(&mut self, room_id: &str, account_id: &str) {
        self.timed(|s| s.insert_invite(room_id, account_id))
    }
    fn matches_history(&mut self, account_id: &str) -> Vec<MatchRecord> {
        self.timed(|s| s.matches_history(account_id))
    }
}

/// Durations in power-of-two microsecond buckets (bucket i holds values
/// below 2^i µs, the last one everything above): constant memory,
/// percentiles within a factor of two, plus the exact maximum and sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: [u64; LatencyHistogram::BUCKETS],
    count: u64,
    max: Duration,
    sum: Duration,
}

impl LatencyHistogram {
    pub const BUCKETS: usize = 32;

    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros() as u64;
        let i = (64 - us.leading_zeros() as usize).min(Self::BUCKETS - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(d);
        self.sum = self.sum.saturating_add(d);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// All recorded durations added up (for a Prometheus `_sum`).
    pub fn sum(&self) -> Duration {
        self.sum
    }

    /// Values per bucket, not cumulative: bucket i below 2^i µs (the last
    /// one unbounded).
    pub fn buckets(&self) -> &[u64; Self::BUCKETS] {
        &self.buckets
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// Upper bound of the bucket holding the `q` quantile (0 < q ≤ 1), in
    /// microseconds; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank && self.count > 0 {
                return 1u64 << i;
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_bound_the_values() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile_us(0.99), 0);
        for _ in 0..98 {
            h.record(Duration::from_micros(10)); // bucket < 16 µs
        }
        h.record(Duration::from_micros(300)); // < 512 µs
        h.record(Duration::from_micros(5000)); // < 8192 µs
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile_us(0.5), 16);
        assert_eq!(h.quantile_us(0.99), 512);
        assert_eq!(h.quantile_us(1.0), 8192);
        assert_eq!(h.max(), Duration::from_micros(5000));
        assert_eq!(h.sum(), Duration::from_micros(98 * 10 + 300 + 5000));
        assert_eq!(h.buckets().iter().sum::<u64>(), 100);
        assert_eq!(
            (h.buckets()[4], h.buckets()[9], h.buckets()[13]),
            (98, 1, 1)
        );
    }

    #[test]
    fn the_clock_sums_and_resets() {
        let clock = Rc::new(StoreClock::default());
        let mut store = TimedStore::new(
            Box::new(crate::json::lobby::memstore::MemStore::default()),
            Rc::clone(&clock),
        );
        store.insert_account("a", "alice", "c");
        store.set_online("a", true);
        let first = clock.take();
        assert!(first > Duration::ZERO);
        assert_eq!(clock.take(), Duration::ZERO);
    }
}

//! The token bucket behind both lobbies' flood control (the legacy lobby's
//! commands and log lines, the JSON lobby's chat, history and registration
//! requests). Each costly request takes a token; tokens come back at `rate`
//! per second up to `burst`; a new bucket starts with a full burst.
//!
//! Generic over the clock because the legacy rules take an [`Instant`] and
//! the JSON rules, which have no clock of their own, a millisecond count.

use std::time::Instant;

/// A point in time a bucket can measure from.
pub trait Moment: Copy {
    /// Seconds from `earlier` to `self` (0 if `earlier` is later).
    fn seconds_since(self, earlier: Self) -> f64;
}

impl Moment for Instant {
    fn seconds_since(self, earlier: Self) -> f64 {
        self.saturating_duration_since(earlier).as_secs_f64()
    }
}

/// Milliseconds of a monotonic clock (the JSON lobby's `Now::mono_ms`).
impl Moment for u64 {
    fn seconds_since(self, earlier: Self) -> f64 {
        self.saturating_sub(earlier) as f64 / 1000.0
    }
}

#[derive(Debug, Clone)]
pub struct TokenBucket<T> {
    tokens: f64,
    at: Option<T>,
    /// A drop was already reported in the current burst (the owner sets it
    /// when it reports one; a token taken clears it).
    pub warned: bool,
}

impl<T> Default for TokenBucket<T> {
    fn default() -> Self {
        TokenBucket {
            tokens: 0.0,
            at: None,
            warned: false,
        }
    }
}

impl<T: Moment> TokenBucket<T> {
    /// Takes a token if one is there; `rate` 0 turns the bucket off.
    pub fn take(&mut self, now: T, rate: u32, burst: u32) -> bool {
        if rate == 0 {
            return true;
        }
        self.tokens = match self.at {
            None => burst as f64,
            Some(at) => (self.tokens + now.seconds_since(at) * rate as f64).min(burst as f64),
        };
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.warned = false;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_rate_up_to_burst() {
        let mut b = TokenBucket::default();
        let t0 = Instant::now();
        let taken = (0..20).filter(|_| b.take(t0, 5, 10)).count();
        assert_eq!(taken, 10, "a full burst at first");
        let t1 = t0 + Duration::from_secs(1);
        let taken = (0..20).filter(|_| b.take(t1, 5, 10)).count();
        assert_eq!(taken, 5, "rate tokens a second later");
        let t2 = t1 + Duration::from_secs(60);
        let taken = (0..20).filter(|_| b.take(t2, 5, 10)).count();
        assert_eq!(taken, 10, "never more than the burst");
        assert!((0..100).all(|_| b.take(t2, 0, 10)), "rate 0 is off");
    }

    #[test]
    fn millisecond_clock_refills_at_rate() {
        let mut b = TokenBucket::<u64>::default();
        for _ in 0..3 {
            assert!(b.take(0, 2, 3));
        }
        assert!(!b.take(0, 2, 3));
        assert!(!b.take(400, 2, 3));
        assert!(b.take(500, 2, 3));
        assert!(!b.take(500, 2, 3));
        assert!(b.take(100_000, 0, 0), "rate 0 is off");
    }

    #[test]
    fn a_clock_that_goes_back_adds_nothing() {
        let mut b = TokenBucket::<u64>::default();
        assert!(b.take(1_000, 1, 1));
        assert!(!b.take(0, 1, 1));
    }
}

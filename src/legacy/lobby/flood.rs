//! Flood control: a token bucket per client. Each chat or room command takes
//! a token; tokens come back at `rate` per second up to `burst`. Generous
//! enough that no human using a launcher ever meets it; a script that does
//! loses the excess commands and hears about it once per burst.

use super::{ClientId, Lobby, Outbox};
use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub(super) struct TokenBucket {
    tokens: f64,
    at: Option<Instant>,
    /// A drop was already reported in the current burst.
    warned: bool,
}

impl TokenBucket {
    /// Takes a token if one is there; `rate` 0 turns the bucket off.
    fn take(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let elapsed = self.at.map_or(f64::INFINITY, |at| {
            now.saturating_duration_since(at).as_secs_f64()
        });
        self.tokens = (self.tokens + elapsed * rate as f64).min(burst as f64);
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

/// Commands that cost a flood token: what a person does with a click or a
/// chat line, and MODS, whose answer lists every mod of the room. The values
/// that follow in the same frame (VER, PSWD, COUNT), ALIVE and ROOT (a
/// one-line answer, used by operators' scripts) are free; VER and ROOT write
/// a log line, which [`Lobby::may_log`] rate-limits instead.
fn costs_token(tag: &str) -> bool {
    matches!(
        tag,
        "GREETINGS"
            | "MSG"
            | "NEW"
            | "JOIN"
            | "LEAVE"
            | "READY"
            | "KICK"
            | "FORCESTART"
            | "HOSTMODE"
            | "CHANNEL"
            | "HERE"
            | "MODS"
    )
}

/// Log lines a client's free commands (VER, ROOT) may write: a burst of
/// this many, then this many per second. A frame of ten thousand ROOTs is
/// answered, but writes at most the burst to the log.
const LOG_BURST: u32 = 20;
const LOG_RATE: u32 = 2;

impl Lobby {
    /// Whether a log line about the client's command may be written now
    /// (per-client rate limit of log lines; the command itself still runs).
    pub(super) fn may_log(&mut self, id: ClientId, now: Instant) -> bool {
        self.clients
            .get_mut(id)
            .is_some_and(|c| c.log_lines.take(now, LOG_RATE, LOG_BURST))
    }

    /// Whether the client may run a command with this tag now. A refused
    /// command is counted, and the first refusal of a burst tells the
    /// client; the caller drops the rest of the frame.
    pub(super) fn flood_allows(
        &mut self,
        id: ClientId,
        tag: &str,
        now: Instant,
        out: &mut Outbox,
    ) -> bool {
        if !costs_token(tag) {
            return true;
        }
        let (rate, burst) = (self.config.flood_rate, self.config.flood_burst);
        let Some(c) = self.clients.get_mut(id) else {
            return false;
        };
        if c.flood.take(now, rate, burst) {
            return true;
        }
        self.stats.flood_drops += 1;
        if !std::mem::replace(&mut c.flood.warned, true) {
            log::warn!(
                "[!] flood from client {id} ({}): commands dropped",
                c.name()
            );
            out.send(
                id,
                ":>>ERROR:You are sending too fast. Some of your messages were dropped".into(),
            );
        }
        false
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
}

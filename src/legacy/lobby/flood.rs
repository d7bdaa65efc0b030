//! Flood control: a token bucket per client. Each chat or room command takes
//! a token; tokens come back at `rate` per second up to `burst`. Generous
//! enough that no human using a launcher ever meets it; a script that does
//! loses the excess commands and hears about it once per burst.

use super::{ClientId, Lobby, Outbox};
use std::time::Instant;

/// A client's bucket (commands, and log lines apart), on the loop's clock.
pub(super) type TokenBucket = crate::token_bucket::TokenBucket<Instant>;

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

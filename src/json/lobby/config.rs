//! The JSON lobby's configuration and its notion of time.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The time of an event: wall clock for ages (`ageSeconds`), monotonic
/// milliseconds for flood control. Injected so tests control time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Unix time in seconds.
    pub unix_secs: i64,
    /// Milliseconds on a monotonic clock with any origin.
    pub mono_ms: u64,
}

impl Now {
    pub fn new(unix_secs: i64, mono_ms: u64) -> Self {
        Self { unix_secs, mono_ms }
    }

    /// The system clocks; `origin` is any fixed instant (e.g. process start).
    pub fn system(origin: Instant) -> Self {
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mono_ms = Instant::now().saturating_duration_since(origin).as_millis() as u64;
        Self { unix_secs, mono_ms }
    }
}

/// Languages of the global chat channels at HEAD (develop), §1.7: the
/// 1.5.0–1.6.8 list, 1.7.0's and 1.7.2's additions, tchinese and lithuanian.
pub const HEAD_LANGUAGES: &[&str] = &[
    "czech",
    "chinese",
    "english",
    "finnish",
    "french",
    "german",
    "hungarian",
    "italian",
    "korean",
    "polish",
    "portuguese",
    "russian",
    "spanish",
    "swedish",
    "turkish",
    "ukrainian",
    "vietnamese",
    "belarusian",
    "bulgarian",
    "greek",
    "japanese",
    "norwegian",
    "romanian",
    "dutch",
    "filipino",
    "latvian",
    "serbian",
    "tchinese",
    "lithuanian",
];

#[derive(Debug, Clone)]
pub struct JsonLobbyConfig {
    /// Accepted global channel names (case-sensitive).
    pub languages: Vec<String>,
    /// Flood control: tokens per second for chat, history requests and
    /// registrations (0 = off) ...
    pub chat_rate: u32,
    /// ... and the burst a connection may spend at once.
    pub chat_burst: u32,
    /// Global chat history: messages per language (reference: 100) ...
    pub history_messages: usize,
    /// ... no older than this (reference: 18 h) ...
    pub history_max_age_secs: i64,
    /// ... and at most this many bytes of text per language in memory
    /// (older lines are dropped first; the reference has no such bound).
    pub history_bytes: usize,
    /// languageRooms entries answered at login.
    pub max_language_rooms: usize,
    /// Ended rooms whose participants are remembered for match chat.
    pub ended_rooms_cap: usize,
}

impl Default for JsonLobbyConfig {
    fn default() -> Self {
        Self {
            languages: HEAD_LANGUAGES.iter().map(|l| l.to_string()).collect(),
            chat_rate: 5,
            chat_burst: 10,
            history_messages: 100,
            history_max_age_secs: 18 * 60 * 60,
            history_bytes: 256 * 1024,
            max_language_rooms: 64,
            ended_rooms_cap: 100_000,
        }
    }
}

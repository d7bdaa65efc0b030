//! vcmilobby's read-only HTTP API (LOBBY-JSON.md §1.13) on the admin
//! listener: its routing rules, parameters, 400 texts and 30 s caching, so a
//! status page written for VCMI's lobby works unchanged. The bodies come
//! from the lobby database (`SqliteStore::api_stats/api_chats/api_rooms`).
//!
//! Routing as the reference's `handleRequest`: exactly `/api/v1/stats` (a
//! query string makes it 404), anything starting with `/api/v1/chats` or
//! `/api/v1/rooms`; another `/api/...` path gets the reference's JSON 404.
//! Unlike the reference, only GET is answered (the admin listener's rule).
//! Query parameters are read without percent-decoding, integers as
//! `std::stoi` reads them (`12abc` is 12).
//!
//! Deliberate difference: a cached `/rooms` answer is reused for the same
//! `hours` and `limit` only (the reference also serves a smaller request
//! from a larger cached one; the bodies are the same either way).

use crate::json::sqlite::SqliteStore;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an answer is reused, as the reference.
pub const CACHE_FOR: Duration = Duration::from_secs(30);
/// Channels whose `/chats` answer is cached at once; beyond it the cache is
/// cleared (a scan of channel names must not grow memory).
const MAX_CACHED: usize = 64;

/// A request for the lobby API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRequest {
    Stats,
    Chats { channel: String },
    Rooms { hours: i64, limit: i64 },
}

/// What a path and query ask of the lobby API: `None` when the path is not
/// the API's (the admin listener's own routes); `Some(Err((status, body)))`
/// for a 400 or the JSON 404.
pub fn route(path: &str, query: Option<&str>) -> Option<Result<ApiRequest, (u16, Value)>> {
    if path == "/api/v1/status" || !path.starts_with("/api/") {
        return None;
    }
    Some(if path == "/api/v1/stats" && query.is_none() {
        Ok(ApiRequest::Stats)
    } else if path.starts_with("/api/v1/chats") {
        let channel = parameter(query, "channelName").unwrap_or("english");
        Ok(ApiRequest::Chats {
            channel: channel.to_string(),
        })
    } else if path.starts_with("/api/v1/rooms") {
        rooms_parameters(query)
    } else {
        Err((
            404,
            json!({"error": "Not Found", "message": "The requested endpoint does not exist"}),
        ))
    })
}

fn bad(text: &str) -> (u16, Value) {
    (400, json!({ "error": text }))
}

fn rooms_parameters(query: Option<&str>) -> Result<ApiRequest, (u16, Value)> {
    let hours = match parameter(query, "hours") {
        None => -1,
        Some(text) => match stoi(text) {
            Ok(h) => h,
            Err(StoiError::Invalid) => return Err(bad("Parameter 'hours' must be an integer")),
            Err(StoiError::OutOfRange) => return Err(bad("Parameter 'hours' is out of range")),
        },
    };
    let limit = match parameter(query, "limit") {
        None => 50,
        Some(text) => match stoi(text) {
            Ok(l) if (1..=250).contains(&l) => l,
            Ok(_) | Err(StoiError::OutOfRange) => {
                return Err(bad("Parameter 'limit' must be between 1 and 250"))
            }
            Err(StoiError::Invalid) => return Err(bad("Parameter 'limit' must be an integer")),
        },
    };
    Ok(ApiRequest::Rooms { hours, limit })
}

/// The value of `name` in `a=1&b=2`, undecoded; an empty value counts as
/// absent (the reference then uses its default).
fn parameter<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoiError {
    Invalid,
    OutOfRange,
}

/// `std::stoi`: leading white space, a sign, digits; what follows is
/// ignored; no digit is invalid; beyond `i32` is out of range.
fn stoi(text: &str) -> Result<i64, StoiError> {
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(StoiError::Invalid);
    }
    let magnitude: i64 = t[..digits].parse().map_err(|_| StoiError::OutOfRange)?;
    let value = if negative { -magnitude } else { magnitude };
    if i32::try_from(value).is_err() {
        return Err(StoiError::OutOfRange);
    }
    Ok(value)
}

/// The answers of the last 30 s.
#[derive(Debug, Default)]
pub struct ApiCache {
    stats: Option<(Instant, Value)>,
    chats: HashMap<String, (Instant, Value)>,
    rooms: HashMap<(i64, i64), (Instant, Value)>,
}

impl ApiCache {
    /// The body for `request`, from the cache when fresh, else from the
    /// database. `start_time`: the server's start, as `lobbyStartTime`
    /// shows it.
    pub fn answer(
        &mut self,
        request: &ApiRequest,
        store: &mut SqliteStore,
        start_time: &str,
        now: Instant,
    ) -> Value {
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < CACHE_FOR;
        match request {
            ApiRequest::Stats => match &self.stats {
                Some((at, v)) if fresh(at) => v.clone(),
                _ => {
                    let v = store.api_stats(start_time);
                    self.stats = Some((now, v.clone()));
                    v
                }
            },
            ApiRequest::Chats { channel } => match self.chats.get(channel) {
                Some((at, v)) if fresh(at) => v.clone(),
                _ => {
                    let v = store.api_chats(channel);
                    if self.chats.len() >= MAX_CACHED {
                        self.chats.clear();
                    }
                    self.chats.insert(channel.clone(), (now, v.clone()));
                    v
                }
            },
            ApiRequest::Rooms { hours, limit } => match self.rooms.get(&(*hours, *limit)) {
                Some((at, v)) if fresh(at) => v.clone(),
                _ => {
                    let v = store.api_rooms(*hours, *limit);
                    if self.rooms.len() >= MAX_CACHED {
                        self.rooms.clear();
                    }
                    self.rooms.insert((*hours, *limit), (now, v.clone()));
                    v
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(path: &str, query: Option<&str>) -> (u16, Value) {
        route(path, query).unwrap().unwrap_err()
    }

    #[test]
    fn routing_follows_the_reference() {
        assert_eq!(route("/metrics", None), None);
        assert_eq!(route("/api/v1/status", None), None);
        assert_eq!(route("/api/v1/stats", None), Some(Ok(ApiRequest::Stats)));
        assert_eq!(err("/api/v1/stats", Some("x=1")).0, 404);
        assert_eq!(err("/api/v1/nope", None).1["error"], "Not Found");
        assert_eq!(
            route("/api/v1/chatsANY", Some("channelName=russian")),
            Some(Ok(ApiRequest::Chats {
                channel: "russian".into()
            }))
        );
        assert_eq!(
            route("/api/v1/chats", Some("channelName=a%20b")),
            Some(Ok(ApiRequest::Chats {
                channel: "a%20b".into()
            }))
        );
        assert_eq!(
            route("/api/v1/chats", None),
            Some(Ok(ApiRequest::Chats {
                channel: "english".into()
            }))
        );
        assert_eq!(
            route("/api/v1/rooms", None),
            Some(Ok(ApiRequest::Rooms {
                hours: -1,
                limit: 50
            }))
        );
        assert_eq!(
            route("/api/v1/rooms", Some("hours=12abc&limit=250")),
            Some(Ok(ApiRequest::Rooms {
                hours: 12,
                limit: 250
            }))
        );
    }

    #[test]
    fn bad_parameters_get_the_reference_texts() {
        for (query, text) in [
            ("hours=x", "Parameter 'hours' must be an integer"),
            ("hours=99999999999", "Parameter 'hours' is out of range"),
            ("limit=0", "Parameter 'limit' must be between 1 and 250"),
            ("limit=251", "Parameter 'limit' must be between 1 and 250"),
            ("limit=abc", "Parameter 'limit' must be an integer"),
        ] {
            assert_eq!(
                err("/api/v1/rooms", Some(query)),
                (400, json!({ "error": text })),
                "{query}"
            );
        }
    }

    #[test]
    fn answers_are_cached_for_30_seconds() {
        let mut store = SqliteStore::open_in_memory().unwrap();
        let mut cache = ApiCache::default();
        let t0 = Instant::now();
        let req = ApiRequest::Stats;
        let first = cache.answer(&req, &mut store, "start", t0);
        assert_eq!(first["lobbyStartTime"], "start");
        let again = cache.answer(&req, &mut store, "later", t0 + Duration::from_secs(29));
        assert_eq!(again["lobbyStartTime"], "start");
        let expired = cache.answer(&req, &mut store, "later", t0 + CACHE_FOR);
        assert_eq!(expired["lobbyStartTime"], "later");
    }
}

//! Chat: global (per language), match and player channels, history, and
//! flood control (LOBBY-JSON.md §1.5 items 8–9, §1.7).
//!
//! Global history is answered from an in-memory ring per accepted language,
//! loaded from the store the first time the language is used; a posted line
//! costs one store write and no read. Match and player histories are rare
//! (a click in the client) and read the store.

use super::accounts::fail;
use super::messages::{ChatLine, Outgoing};
use super::{ConnId, JsonLobby, JsonOutbox, Now};
use crate::json::request::ChannelType;
use crate::json::store::{ChatRecord, RoomStatus};
use std::collections::{HashMap, VecDeque};

/// A connection's flood bucket, on the rules' millisecond clock
/// (`Now::mono_ms`).
pub(super) type TokenBucket = crate::token_bucket::TokenBucket<u64>;

/// One global chat line kept in memory.
#[derive(Debug, Clone)]
struct Line {
    account_id: String,
    display_name: String,
    text: String,
    at_unix: i64,
}

/// The recent lines of one language, oldest first.
#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<Line>,
    bytes: usize,
}

/// Rings of the accepted languages that were used since start.
#[derive(Debug, Default)]
pub(super) struct GlobalChat {
    rings: HashMap<String, Ring>,
}

/// `sanitizeChatMessage(text).empty()`: the reference removes bytes
/// 0x00–0x1F, `{` and `}`, then trims spaces.
pub(super) fn has_no_printable(text: &str) -> bool {
    text.bytes().all(|b| b <= 0x20 || b == b'{' || b == b'}')
}

/// `TextOperations::isValidUnicodeString` refuses lead bytes above 0xF0,
/// i.e. code points from U+40000 on.
fn has_invalid_characters(text: &str) -> bool {
    text.chars().any(|c| c as u32 >= 0x40000)
}

/// Key of a player-to-player channel in the store: `min_max` of the IDs.
fn player_channel_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}_{b}")
    } else {
        format!("{b}_{a}")
    }
}

fn history_lines(records: &[ChatRecord]) -> Vec<ChatLine<'_>> {
    records
        .iter()
        .map(|r| ChatLine {
            account_id: &r.account_id,
            display_name: &r.display_name,
            message_text: &r.message_text,
            age_seconds: r.age_seconds,
        })
        .collect()
}

impl JsonLobby {
    /// Flood control for `conn`; false = drop the request silently.
    pub(super) fn take_flood_token(&mut self, conn: ConnId, now: Now) -> bool {
        let (rate, burst) = (self.cfg.chat_rate, self.cfg.chat_burst);
        let c = self.conn_mut(conn);
        if c.flood.take(now.mono_ms, rate, burst) {
            return true;
        }
        let first = !std::mem::replace(&mut c.flood.warned, true);
        self.stats.flood_drops += 1;
        if first {
            log::warn!("JSON conn {conn}: flood, requests dropped");
        }
        false
    }

    fn accepts_language(&self, language: &str) -> bool {
        self.cfg.languages.iter().any(|l| l == language)
    }

    /// The ring of an accepted language, loaded from the store on first use.
    fn ring(&mut self, language: &str, now: Now) -> &mut Ring {
        let store = &mut self.store;
        let ring = self
            .chat
            .rings
            .entry(language.to_string())
            .or_insert_with(|| {
                let mut ring = Ring::default();
                for r in store.recent_chat(ChannelType::Global, language) {
                    ring.bytes += r.message_text.len();
                    ring.lines.push_back(Line {
                        account_id: r.account_id,
                        display_name: r.display_name,
                        text: r.message_text,
                        at_unix: now.unix_secs - r.age_seconds,
                    });
                }
                ring
            });
        let (max_lines, max_bytes) = (self.cfg.history_messages, self.cfg.history_bytes);
        while ring.lines.len() > max_lines || (ring.bytes > max_bytes && ring.lines.len() > 1) {
            if let Some(old) = ring.lines.pop_front() {
                ring.bytes -= old.text.len();
            }
        }
        ring
    }

    /// chatHistory of a global channel: the ring's lines younger than the
    /// age limit; an empty history for a language this lobby does not accept.
    pub(super) fn send_global_history(
        &mut self,
        conn: ConnId,
        language: &str,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        let max_age = self.cfg.history_max_age_secs;
        let messages = if self.accepts_language(language) {
            let ring = self.ring(language, now);
            ring.lines
                .iter()
                .map(|l| ChatLine {
                    account_id: &l.account_id,
                    display_name: &l.display_name,
                    message_text: &l.text,
                    age_seconds: (now.unix_secs - l.at_unix).max(0),
                })
                .filter(|l| l.age_seconds < max_age)
                .collect()
        } else {
            Vec::new()
        };
        out.send(
            conn,
            &Outgoing::ChatHistory {
                channel_type: ChannelType::Global.as_str(),
                channel_name: language,
                messages,
            },
        );
    }

    /// sendChatMessage (§1.5 item 8).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_chat(
        &mut self,
        conn: ConnId,
        sender: &str,
        text: &str,
        channel: ChannelType,
        channel_name: &str,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        if has_invalid_characters(text) {
            return fail(conn, "String contains invalid characters!", out);
        }
        if has_no_printable(text) {
            return fail(conn, "No printable characters in sent message!", out);
        }
        let sender_name = self.accounts.name(sender).to_string();
        let message = |channel_name: &str| {
            crate::json::writer::to_payload(&Outgoing::ChatMessage {
                message_text: text,
                account_id: sender,
                display_name: &sender_name,
                channel_type: channel.as_str(),
                channel_name,
            })
        };
        match channel {
            ChannelType::Global => {
                if !self.accepts_language(channel_name) {
                    return fail(conn, "Unknown language!", out);
                }
                // The ring is loaded (on first use) before the line is stored.
                self.ring(channel_name, now);
                self.store.insert_chat(sender, channel, channel_name, text);
                let ring = self.ring(channel_name, now);
                ring.bytes += text.len();
                ring.lines.push_back(Line {
                    account_id: sender.to_string(),
                    display_name: sender_name.clone(),
                    text: text.to_string(),
                    at_unix: now.unix_secs,
                });
                // Trims the ring to its bounds.
                self.ring(channel_name, now);
                out.send_shared(self.logged_in.iter().copied(), &message(channel_name));
            }
            ChannelType::Match => {
                let Some(status) = self.match_channel_status(sender, channel_name) else {
                    return fail(conn, "Can not access room you are not part of!", out);
                };
                self.store.insert_chat(sender, channel, channel_name, text);
                // Live games chat through the match server; the lobby
                // delivers only in rooms whose game is over.
                if status == RoomStatus::Closed {
                    let to: Vec<ConnId> = self
                        .ended
                        .participants(channel_name)
                        .iter()
                        .filter_map(|p| self.accounts.session_of(p))
                        .collect();
                    out.send_shared(to, &message(channel_name));
                }
            }
            ChannelType::Player => {
                let Some(receiver) = self.accounts.get(channel_name) else {
                    return fail(conn, "Such player does not exists!", out);
                };
                let receiver_conn = receiver.session();
                let key = player_channel_key(sender, channel_name);
                self.store.insert_chat(sender, channel, &key, text);
                out.send_shared([conn], &message(channel_name));
                if channel_name != sender {
                    if let Some(to) = receiver_conn {
                        out.send_shared([to], &message(sender));
                    }
                }
            }
        }
        self.stats.chat_messages += 1;
    }

    /// requestChatHistory (§1.5 item 9).
    pub(super) fn chat_history(
        &mut self,
        conn: ConnId,
        requester: &str,
        channel: ChannelType,
        channel_name: &str,
        now: Now,
        out: &mut JsonOutbox,
    ) {
        let records = match channel {
            ChannelType::Global => return self.send_global_history(conn, channel_name, now, out),
            ChannelType::Match => {
                if self.match_channel_status(requester, channel_name).is_none() {
                    return fail(conn, "Can not access room you are not part of!", out);
                }
                self.store.full_chat(channel, channel_name)
            }
            ChannelType::Player => {
                if self.accounts.get(channel_name).is_none() {
                    return fail(conn, "Such player does not exists!", out);
                }
                let key = player_channel_key(requester, channel_name);
                self.store.full_chat(channel, &key)
            }
        };
        out.send(
            conn,
            &Outgoing::ChatHistory {
                channel_type: channel.as_str(),
                channel_name,
                messages: history_lines(&records),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_decides_emptiness_only() {
        for empty in ["", " ", "{}", " { } ", "\t\n", "\u{1}\u{1f}{"] {
            assert!(has_no_printable(empty), "{empty:?}");
        }
        for text in ["a", " {a} ", "é", "😀", "\u{7f}"] {
            assert!(!has_no_printable(text), "{text:?}");
        }
    }

    #[test]
    fn invalid_characters_from_u40000() {
        assert!(!has_invalid_characters("😀 \u{3ffff}"));
        assert!(has_invalid_characters("a\u{40000}"));
        assert!(has_invalid_characters("\u{10ffff}"));
    }

    #[test]
    fn player_keys_are_ordered() {
        assert_eq!(player_channel_key("b", "a"), "a_b");
        assert_eq!(player_channel_key("a", "b"), "a_b");
    }
}

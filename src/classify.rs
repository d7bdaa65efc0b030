//! The protocol seam: what a connection is, decided from its first complete
//! non-empty frame. Every kind the server speaks has one variant here; the
//! event loop (`server::dispatch`) turns the verdict into that kind's state.
//!
//! Adding a kind (the JSON lobby is next): a variant of [`FirstFrame`] and its
//! test in [`classify`], a `State` variant (`conn.rs`) holding the kind's
//! connection state, a socket-free rules module, a glue file under
//! `src/server/`, and its arm in `server::dispatch::on_first_frame`. The
//! other `match`es on `State` are exhaustive, so the compiler then names each
//! place the kind must answer with a one-line call into its glue: routing a
//! frame (`dispatch`), readiness (`server::service`), its deadline
//! (`deadlines`), its cleanup on close (`close::leave_state`), a refusal
//! (`legacy_lobby::refuse`, which sends nothing to other kinds). The legacy
//! modules and their glue are not touched.
//!
//! Order of the tests, and why:
//! 1. A legacy lobby header that parses wins over JSON: a legacy header starts
//!    with a protocol byte 1–5 and a length byte, which JSON counts as
//!    whitespace, so `\x05\x00{…` is a (strange but valid) legacy greeting and
//!    must stay one.
//! 2. JSON: first byte after an optional UTF-8 BOM and whitespace (any byte
//!    ≤ 0x20, as the reference parser skips them, LOBBY-JSON.md §1.2, §6) is
//!    `{`. Tested before `Aiya!` because a JSON login may carry that word in
//!    a name; a legacy pipe's first frame (`Aiya!\n`) never starts with `{`.
//! 3. `Aiya!` anywhere: a legacy game pipe (PROTOCOL.md §3; D32, replicated:
//!    a lobby greeting naming the user `Aiya!` is taken for a pipe too).
//! 4. Anything else is a refused legacy greeting, with the reason the legacy
//!    header parser gives (the text of its `:>>ERROR:`).
//!
//! Empty frames never reach [`classify`]: what an empty *first* frame means is
//! the caller's decision (today: disconnect, D14; see `server::dispatch`).

use crate::legacy::handshake::{is_pipe_frame, parse_lobby_header, LobbyHeader};

/// What a first frame says the connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstFrame {
    /// A VCMI 1.1–1.4 launcher: protocol byte and encoding (PROTOCOL.md §4).
    LegacyLobby(LobbyHeader),
    /// A VCMI 1.1–1.4 game process opening a pipe (PROTOCOL.md §10).
    LegacyPipe,
    /// A VCMI 1.5+ peer speaking the JSON lobby protocol (LOBBY-JSON.md).
    JsonPeer,
    /// None of them: the reason, worded as the legacy `:>>ERROR:` text.
    Invalid(String),
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Classifies the first complete non-empty frame payload.
pub fn classify(payload: &[u8]) -> FirstFrame {
    let legacy = parse_lobby_header(payload);
    if let Ok(header) = legacy {
        if !is_pipe_frame(payload) {
            return FirstFrame::LegacyLobby(header);
        }
    }
    if is_json_start(payload) && legacy.is_err() {
        return FirstFrame::JsonPeer;
    }
    if is_pipe_frame(payload) {
        return FirstFrame::LegacyPipe;
    }
    match legacy {
        Ok(header) => FirstFrame::LegacyLobby(header),
        Err(reason) => FirstFrame::Invalid(reason),
    }
}

/// First byte after an optional BOM and whitespace (≤ 0x20) is `{`.
fn is_json_start(payload: &[u8]) -> bool {
    let body = payload.strip_prefix(UTF8_BOM).unwrap_or(payload);
    body.iter().find(|b| **b > 0x20) == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::charset::Charset;

    fn lobby(protocol: u8) -> FirstFrame {
        FirstFrame::LegacyLobby(LobbyHeader {
            protocol,
            charset: Charset::UTF8,
        })
    }

    #[test]
    fn legacy_greetings_and_pipes() {
        assert_eq!(classify(b"\x05\x04utf8<GREETINGS>alice"), lobby(5));
        assert_eq!(classify(b"\x01\x00<GREETINGS>bob"), lobby(1));
        assert_eq!(classify(b"Aiya!\n"), FirstFrame::LegacyPipe);
        // D32, replicated: a user called Aiya! is taken for a pipe
        assert_eq!(
            classify(b"\x05\x04utf8<GREETINGS>Aiya!"),
            FirstFrame::LegacyPipe
        );
        // a valid header stays legacy even where JSON would see `{`
        assert_eq!(classify(b"\x05\x00{<GREETINGS>x"), lobby(5));
    }

    #[test]
    fn json_peers() {
        assert_eq!(classify(br#"{"type":"clientLogin"}"#), FirstFrame::JsonPeer);
        assert_eq!(classify(b"\xEF\xBB\xBF{}"), FirstFrame::JsonPeer);
        assert_eq!(classify(b" \t\r\n\x00\x1f{}"), FirstFrame::JsonPeer);
        assert_eq!(classify(b"\xEF\xBB\xBF \n{"), FirstFrame::JsonPeer);
        assert_eq!(
            classify(br#"{"type":"clientLogin","displayName":"Aiya!"}"#),
            FirstFrame::JsonPeer
        );
        // a BOM only counts at the very start
        assert!(matches!(
            classify(b" \xEF\xBB\xBF{"),
            FirstFrame::Invalid(_)
        ));
        assert!(matches!(classify(b"[1]"), FirstFrame::Invalid(_)));
    }

    #[test]
    fn everything_else_is_refused_with_the_legacy_reason() {
        assert_eq!(
            classify(b"\x05"),
            FirstFrame::Invalid("Too short username".into())
        );
        match classify(b"\x09\x04utf8") {
            FirstFrame::Invalid(why) => assert!(why.contains("protocol incompatibility")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(b"\x05\x32utf8"),
            FirstFrame::Invalid("Protocol error or incorrect encoding".into())
        );
    }

    /// The seam in use: a kind added beside the real ones needs a verdict of
    /// its own and one arm in the caller's match; the legacy parsers and the
    /// other kinds are left as they are. `PING` stands in for a new protocol.
    #[test]
    fn a_new_kind_plugs_in_without_touching_the_others() {
        #[derive(Debug, PartialEq)]
        enum Served {
            Legacy,
            Pipe,
            Json,
            Ping,
            Refused,
        }
        fn classify_with_ping(payload: &[u8]) -> Served {
            if payload.starts_with(b"PING") {
                return Served::Ping; // the new kind's own test comes first
            }
            match classify(payload) {
                FirstFrame::LegacyLobby(_) => Served::Legacy,
                FirstFrame::LegacyPipe => Served::Pipe,
                FirstFrame::JsonPeer => Served::Json,
                FirstFrame::Invalid(_) => Served::Refused,
            }
        }
        assert_eq!(classify_with_ping(b"PING 1"), Served::Ping);
        assert_eq!(classify_with_ping(b"\x05\x04utf8<G>a"), Served::Legacy);
        assert_eq!(classify_with_ping(b"Aiya!\n"), Served::Pipe);
        assert_eq!(classify_with_ping(b"{}"), Served::Json);
        assert_eq!(classify_with_ping(b"\x00"), Served::Refused);
    }
}

//! The legacy first frames: a launcher's lobby header (PROTOCOL.md §4) and the
//! handshake of a VCMI game process opening a pipe (§10.1–§10.3). Which of
//! them (or another kind) a connection is, is `crate::classify`'s verdict.

use crate::legacy::charset::Charset;

/// `Aiya!` anywhere in a first frame makes it a pipe (§3; see `crate::classify`).
pub fn is_pipe_frame(payload: &[u8]) -> bool {
    payload.windows(5).any(|w| w == b"Aiya!")
}

/// A valid lobby header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LobbyHeader {
    pub protocol: u8,
    pub charset: Charset,
}

/// Parses the header of a lobby connection's first frame. The errors are the
/// texts the reference prepared but never sent (D1); we send them and close.
pub fn parse_lobby_header(payload: &[u8]) -> Result<LobbyHeader, String> {
    if payload.len() < 2 {
        return Err("Too short username".into());
    }
    let protocol = payload[0];
    if !(1..=5).contains(&protocol) {
        return Err("Cannot connect to remote server due to protocol incompatibility".into());
    }
    let len = payload[1] as usize;
    if len == 0 {
        return Ok(LobbyHeader {
            protocol,
            charset: Charset::UTF8,
        });
    }
    if payload.len() < 2 + len {
        return Err("Protocol error or incorrect encoding".into());
    }
    let name = String::from_utf8_lossy(&payload[2..2 + len]);
    match Charset::from_name(&name) {
        Some(charset) => Ok(LobbyHeader { protocol, charset }),
        None => Err(format!("Unsupported encoding {}", name.replace(':', " "))),
    }
}

/// The role a game process announces in its application name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The host's vcmiserver, presenting the HOST uuid.
    Server,
    /// A remote player's vcmiclient, presenting its START uuid.
    Client,
}

/// Limits on what an unauthenticated pipe may send before we give up on it
/// (D31 fix, with the handshake timeout). Real handshakes are three frames
/// of well under 100 bytes each.
pub const MAX_PIPE_FRAMES: usize = 4;
pub const MAX_PIPE_HANDSHAKE: usize = 4096;

/// Reassembles a pipe's handshake exactly as the reference recognises it.
///
/// LIFECYCLE (the connection is in `State::PipeHandshake` meanwhile)
/// ```text
///   frames: More ──a `(type)` frame seen, then a uuid-shaped frame──▶ NeedEndianByte
///     │ more than 4 frames / 4 KiB, not UTF-8: Reject       │ (awaits_endian_byte: the
///     │ no uuid within --pipe-timeout: closed by the loop   │  next raw byte, unframed)
///     ▼                                                     ▼
///   closed                             push_endian_byte: role + uuid go to relay::register
/// ```
#[derive(Debug, Default, Clone)]
pub struct PipeHandshake {
    /// Every frame re-framed, then the endianness byte: replayed to this
    /// side when its pair forms (the D26 echo).
    pub replay: Vec<u8>,
    /// The last `(word)` seen in a frame.
    app_type: Option<String>,
    frames: usize,
    /// Set once a uuid frame follows a typed name; the raw byte is next.
    pub uuid: Option<String>,
}

/// Outcome of feeding one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipeStep {
    /// Keep reading frames.
    More,
    /// The uuid frame arrived; exactly one raw byte follows.
    NeedEndianByte,
    /// Not a handshake we can accept: close, for this reason.
    Reject(String),
}

impl PipeHandshake {
    /// Feeds one frame received before authentication (§10.3 steps 1–3).
    pub fn push_frame(&mut self, payload: &[u8]) -> PipeStep {
        self.frames += 1;
        if self.frames > MAX_PIPE_FRAMES
            || self.replay.len() + 4 + payload.len() > MAX_PIPE_HANDSHAKE
        {
            return PipeStep::Reject("pipe handshake too long".into());
        }
        self.replay
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.replay.extend_from_slice(payload);
        if let Some(t) = find_app_type(payload) {
            self.app_type = Some(t);
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            return PipeStep::Reject("pipe handshake frame is not UTF-8".into());
        };
        if self.app_type.is_some() && contains_uuid_shape(text) {
            self.uuid = Some(text.to_string());
            return PipeStep::NeedEndianByte;
        }
        PipeStep::More
    }

    /// [`PipeStep::NeedEndianByte`] was returned: the next byte on the wire is
    /// the raw endianness byte, not a frame.
    pub fn awaits_endian_byte(&self) -> bool {
        self.uuid.is_some()
    }

    /// Appends the endianness byte (its value is never checked).
    pub fn push_endian_byte(&mut self, b: u8) {
        self.replay.push(b);
    }

    /// The announced role; `(observer)` and friends have none.
    pub fn role(&self) -> Option<Role> {
        match self.app_type.as_deref() {
            Some("server") => Some(Role::Server),
            Some("client") => Some(Role::Client),
            _ => None,
        }
    }

    pub fn app_type(&self) -> Option<&str> {
        self.app_type.as_deref()
    }
}

/// First `(` + ASCII word characters + `)` in the frame.
fn find_app_type(payload: &[u8]) -> Option<String> {
    let mut i = 0;
    while i < payload.len() {
        if payload[i] == b'(' {
            let rest = &payload[i + 1..];
            let n = rest
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            if n > 0 && rest.get(n) == Some(&b')') {
                return Some(String::from_utf8_lossy(&rest[..n]).into_owned());
            }
        }
        i += 1;
    }
    None
}

/// `\w{8}-\w{4}-\w{4}-\w{4}-\w{12}` anywhere in the text (Unicode `\w`).
fn contains_uuid_shape(text: &str) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let chars: Vec<char> = text.chars().collect();
    'start: for s in 0..chars.len() {
        let mut i = s;
        for (g, &n) in GROUPS.iter().enumerate() {
            if g > 0 {
                if chars.get(i) != Some(&'-') {
                    continue 'start;
                }
                i += 1;
            }
            for _ in 0..n {
                match chars.get(i) {
                    Some(c) if crate::legacy::text::is_word_char(*c) => i += 1,
                    _ => continue 'start,
                }
            }
        }
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lobby_headers() {
        let h = parse_lobby_header(b"\x05\x04utf8<GREETINGS>alice").unwrap();
        assert_eq!((h.protocol, h.charset), (5, Charset::UTF8));
        let h = parse_lobby_header(b"\x03\x00<GREETINGS>bob").unwrap();
        assert_eq!(h.charset, Charset::UTF8);
        assert_eq!(
            parse_lobby_header(b"\x05\x06cp1251<G")
                .unwrap()
                .charset
                .name(),
            "windows-1251"
        );
        assert_eq!(
            parse_lobby_header(b"\x05").unwrap_err(),
            "Too short username"
        );
        assert!(parse_lobby_header(b"\x06\x04utf8")
            .unwrap_err()
            .contains("protocol incompatibility"));
        assert!(parse_lobby_header(b"\x00\x04utf8").is_err());
        assert_eq!(
            parse_lobby_header(b"\x05\x32utf8").unwrap_err(),
            "Protocol error or incorrect encoding"
        );
        assert!(parse_lobby_header(b"\x05\x07klingon<G")
            .unwrap_err()
            .contains("klingon"));
    }

    #[test]
    fn real_game_handshake() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let mut h = PipeHandshake::default();
        assert!(is_pipe_frame(b"Aiya!\n"));
        assert_eq!(h.push_frame(b"Aiya!\n"), PipeStep::More);
        assert_eq!(h.push_frame(b"VCMI 1.4.0 (client)"), PipeStep::More);
        assert_eq!(h.push_frame(uuid.as_bytes()), PipeStep::NeedEndianByte);
        h.push_endian_byte(1);
        assert_eq!(h.role(), Some(Role::Client));
        assert_eq!(h.uuid.as_deref(), Some(uuid));
        assert_eq!(h.replay.len(), 74);
        assert_eq!(&h.replay[..10], b"\x06\x00\x00\x00Aiya!\n");
    }

    #[test]
    fn uuid_before_name_or_untyped_keeps_waiting_then_gives_up() {
        let mut h = PipeHandshake::default();
        h.push_frame(b"Aiya!\n");
        assert_eq!(
            h.push_frame(b"0f8fad5b-d9cb-469f-a165-70867728950e"),
            PipeStep::More
        );
        assert_eq!(h.push_frame(b"no type here"), PipeStep::More);
        assert_eq!(h.push_frame(b"x"), PipeStep::More);
        assert!(matches!(h.push_frame(b"y"), PipeStep::Reject(_)));
        let mut h = PipeHandshake::default();
        h.push_frame(b"Aiya!\n");
        h.push_frame(b"VCMI (observer)");
        assert_eq!(
            h.push_frame(b"0f8fad5b-d9cb-469f-a165-70867728950e"),
            PipeStep::NeedEndianByte
        );
        assert_eq!(h.role(), None);
        assert!(matches!(
            PipeHandshake::default().push_frame(b"\xff(client)"),
            PipeStep::Reject(_)
        ));
    }
}

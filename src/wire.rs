//! What VCMI clients send, as bytes: the builders the integration tests, the benches, the fuzz
//! targets and the load tool (`tools/vcmi-load`) share, so that all of them speak exactly one
//! version of the wire format (PROTOCOL.md §2, §4.1, §10.1; the same bytes as `vcmiproto.py`).
//!
//! The server itself never builds these: it only reads them (see [`crate::frame`] and
//! [`crate::legacy::handshake`]). The builders panic only on sizes no caller can mean (a payload over
//! 4 GiB, an encoding name over 255 bytes); nothing here parses peer input.

/// The first frame of a VCMI game process on a pipe.
pub const PIPE_GREETING: &[u8] = b"Aiya!\n";

/// The endianness flag a game process sends raw after its uuid (little endian).
pub const ENDIAN_LITTLE: &[u8] = b"\x01";

/// The prefix of every server-to-lobby message (replies are not framed, §2.2).
pub const MESSAGE_PREFIX: &str = ":>>";

/// `payload` with its 4-byte little-endian length prefix (every client-to-server frame).
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payload.len());
    push_frame(&mut out, payload);
    out
}

/// Append `payload` as one frame to `out`.
pub fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("frame payload larger than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Payload (unframed) of the launcher's first lobby frame:
/// `[protocol][len][encoding name]<GREETINGS>user<VER>version`, text in UTF-8.
/// `encoding_name` `None` sends a zero length byte and no name; `version` `None` leaves `<VER>`
/// out. For a body in another encoding use [`lobby_hello_payload`].
pub fn lobby_hello(
    user: &str,
    protocol: u8,
    encoding_name: Option<&str>,
    version: Option<&str>,
) -> Vec<u8> {
    let mut text = format!("<GREETINGS>{user}");
    if let Some(v) = version {
        text.push_str("<VER>");
        text.push_str(v);
    }
    lobby_hello_payload(protocol, encoding_name, text.as_bytes())
}

/// `[protocol][len][encoding name]` followed by an already encoded `body`.
pub fn lobby_hello_payload(protocol: u8, encoding_name: Option<&str>, body: &[u8]) -> Vec<u8> {
    let name = encoding_name.unwrap_or("").as_bytes();
    let len = u8::try_from(name.len()).expect("encoding name longer than 255 bytes");
    let mut out = Vec::with_capacity(2 + name.len() + body.len());
    out.push(protocol);
    out.push(len);
    out.extend_from_slice(name);
    out.extend_from_slice(body);
    out
}

/// Everything a VCMI game process writes to open a pipe: the frames `Aiya!\n`, its application
/// name (e.g. `VCMI 1.4.5 (server)`) and the session uuid, then the raw endianness byte(s).
pub fn pipe_hello(app_name: &str, uuid: &str, endian: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + PIPE_GREETING.len() + app_name.len() + uuid.len());
    push_frame(&mut out, PIPE_GREETING);
    push_frame(&mut out, app_name.as_bytes());
    push_frame(&mut out, uuid.as_bytes());
    out.extend_from_slice(endian);
    out
}

/// Split server-to-lobby text on `:>>`; every item keeps its prefix. Text before the first `:>>`
/// (a correct server never sends any) is an item of its own.
pub fn split_messages(text: &str) -> Vec<String> {
    let mut parts = text.split(MESSAGE_PREFIX);
    let mut out = Vec::new();
    if let Some(first) = parts.next() {
        if !first.is_empty() {
            out.push(first.to_string());
        }
    }
    out.extend(parts.map(|p| format!("{MESSAGE_PREFIX}{p}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_a_little_endian_length() {
        assert_eq!(frame(b"abc"), [3, 0, 0, 0, b'a', b'b', b'c']);
        assert_eq!(frame(b""), [0, 0, 0, 0]);
        // PROTOCOL.md §5.2 example
        assert_eq!(
            &frame(b"<NEW>Room1<PSWD><COUNT>2<MODS>")[..4],
            &[0x1E, 0, 0, 0]
        );
    }

    #[test]
    fn lobby_hello_matches_the_spec_example() {
        // §4.1: VCMI 1.4 launcher, user alice, "VCMI 1.4.0"
        let f = frame(&lobby_hello("alice", 5, Some("utf8"), Some("VCMI 1.4.0")));
        let mut expect = vec![0x25, 0, 0, 0, 5, 4];
        expect.extend_from_slice(b"utf8<GREETINGS>alice<VER>VCMI 1.4.0");
        assert_eq!(f, expect);
        assert_eq!(lobby_hello("bob", 3, None, None), b"\x03\x00<GREETINGS>bob");
    }

    #[test]
    fn pipe_hello_matches_the_spec_example() {
        // §10.1: 74 bytes for a vcmiclient without git version
        let h = pipe_hello(
            "VCMI 1.4.0 (client)",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            ENDIAN_LITTLE,
        );
        assert_eq!(h.len(), 74);
        assert_eq!(&h[..10], &[6, 0, 0, 0, b'A', b'i', b'y', b'a', b'!', b'\n']);
        assert_eq!(&h[10..14], &[0x13, 0, 0, 0]);
        assert_eq!(&h[33..37], &[0x24, 0, 0, 0]);
        assert_eq!(h[73], 1);
    }

    #[test]
    fn messages_split_on_the_prefix() {
        assert_eq!(
            split_messages(":>>USERS:1:a:>>MSG:System:x:y"),
            [":>>USERS:1:a", ":>>MSG:System:x:y"]
        );
        assert_eq!(split_messages("junk:>>HEALTH:"), ["junk", ":>>HEALTH:"]);
        assert!(split_messages("").is_empty());
    }
}

//! The VCMI 1.5+ JSON lobby wire format as the load tool speaks it (LOBBY-JSON.md §1.1, §1.4):
//! frames (4-byte little-endian size, then the payload; size 0 is a heartbeat), the client and
//! match-server messages the `json-*` modes send, and the few facts they read from replies.
//!
//! Everything here is pure (no sockets), so it is unit-tested below.

use serde_json::{json, Value};

/// The reference's maximum frame payload (`messageMaxSize`, §1.1); larger sizes are a protocol
/// error from a well-behaved server.
pub const MAX_FRAME: usize = 64 << 20;

/// The version string the tool reports in clientRegister/clientLogin/serverLogin (the lobby
/// ignores it for clients and stores it for rooms, §2).
pub const LOBBY_VERSION: &str = "1.7.5";

/// An empty frame: the heartbeat every VCMI peer sends every 10 s (§1.1).
pub const HEARTBEAT: [u8; 4] = [0; 4];

/// How often the tool sends its own heartbeat on long-lived connections, like real peers.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Appends one frame (header + payload) to `out`.
pub fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let n = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(payload);
}

/// One JSON message as a frame. serde_json writes no `\u` escape for the ASCII the tool sends
/// (it only escapes control characters), which the reference's strict parser requires (§1.2).
pub fn message_frame(msg: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    push_frame(&mut out, msg.to_string().as_bytes());
    out
}

// ---- client and match-server messages (§1.4) ----

pub fn client_register(name: &str) -> Value {
    json!({"type": "clientRegister", "displayName": name, "language": "english",
           "version": LOBBY_VERSION})
}

/// `languageRooms` is what 1.6.4+ clients always send (§1.14); the lobby answers with one
/// chatHistory per entry.
pub fn client_login(account: &Account, channel: &str) -> Value {
    json!({"type": "clientLogin", "accountID": account.id, "accountCookie": account.cookie,
           "language": "english", "version": LOBBY_VERSION, "languageRooms": [channel]})
}

pub fn send_chat(channel: &str, text: &str) -> Value {
    json!({"type": "sendChatMessage", "messageText": text, "channelType": "global",
           "channelName": channel})
}

/// A real vcmiserver sends `"mods": null` when no gameplay mod is active (§0 item 6).
pub fn server_login(room: &str, host: &Account) -> Value {
    json!({"type": "serverLogin", "gameRoomID": room, "accountID": host.id,
           "accountCookie": host.cookie, "version": LOBBY_VERSION, "mods": null})
}

pub fn activate_game_room(host_id: &str) -> Value {
    json!({"type": "activateGameRoom", "hostAccountID": host_id, "roomType": "public",
           "playerLimit": 2})
}

pub fn join_game_room(room: &str) -> Value {
    json!({"type": "joinGameRoom", "gameRoomID": room})
}

/// The match server's cookie here is the HOST's, as the real vcmiserver sends it (§1.10 step 6).
pub fn server_proxy_login(room: &str, guest_id: &str, host_cookie: &str) -> Value {
    json!({"type": "serverProxyLogin", "gameRoomID": room, "guestAccountID": guest_id,
           "accountCookie": host_cookie})
}

pub fn client_proxy_login(guest: &Account, room: &str) -> Value {
    json!({"type": "clientProxyLogin", "accountID": guest.id, "accountCookie": guest.cookie,
           "gameRoomID": room})
}

// ---- names and accounts ----

/// Account names must be 4-20 ASCII alphanumerics, unique case-insensitively (§1.7). The run id
/// is lowercase hex and `role` a non-hex letter, so names of different runs never collide.
pub fn account_name(run: &str, role: char, index: usize) -> String {
    format!("j{run}{role}{index}")
}

pub fn valid_account_name(name: &str) -> bool {
    (4..=20).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Credentials from `accountCreated`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub cookie: String,
}

// ---- reading replies ----

/// The `type` of a lobby message without parsing the whole payload: the login of every account
/// broadcasts an `activeAccounts` list to all (§1.5 item 2), so U logins deliver O(U²) bytes of
/// lists the tool never needs. Looks for the first `"type"` key (followed by `:`); messages of
/// this protocol only have `type` at the top level, and a `"type"` inside a string value would be
/// escaped (`\"type\"`). `None` when not found: the caller then parses the payload.
pub fn sniff_type(payload: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"type\"";
    let mut from = 0;
    while let Some(at) = find(&payload[from..], KEY) {
        let mut i = from + at + KEY.len();
        i += skip_ws(&payload[i..]);
        if payload.get(i) == Some(&b':') {
            i += 1;
            i += skip_ws(&payload[i..]);
            if payload.get(i) != Some(&b'"') {
                return None;
            }
            let start = i + 1;
            let len = payload[start..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\')?;
            if payload[start + len] == b'\\' {
                return None;
            }
            return std::str::from_utf8(&payload[start..start + len]).ok();
        }
        from = from + at + 1;
    }
    None
}

fn skip_ws(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_whitespace()).count()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A parsed lobby message: its type and the whole object.
pub struct Msg {
    pub kind: String,
    pub body: Value,
}

impl Msg {
    pub fn parse(payload: &[u8]) -> Result<Msg, String> {
        let body: Value = serde_json::from_slice(payload).map_err(|e| {
            let head = String::from_utf8_lossy(&payload[..payload.len().min(80)]).into_owned();
            format!("unparsable lobby message ({e}): {head:?}")
        })?;
        let kind = body
            .get("type")
            .and_then(Value::as_str)
            .ok_or("lobby message without a string \"type\"")?
            .to_string();
        Ok(Msg { kind, body })
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    pub fn account(&self) -> Result<Account, String> {
        match (self.str("accountID"), self.str("accountCookie")) {
            (Some(id), Some(cookie)) => Ok(Account {
                id: id.to_string(),
                cookie: cookie.to_string(),
            }),
            _ => Err(format!("{} without accountID/accountCookie", self.kind)),
        }
    }

    /// `operationFailed` as an error text.
    pub fn failure(&self) -> Option<String> {
        (self.kind == "operationFailed").then(|| {
            format!(
                "operationFailed {:?}",
                self.str("reason").unwrap_or("(no reason)")
            )
        })
    }
}

/// Reassembles whole frames from a byte stream (lobby messages are small and parsed whole).
/// Heartbeats are counted and dropped.
#[derive(Default)]
pub struct FrameBuf {
    buf: Vec<u8>,
    pos: usize,
    pub heartbeats: u64,
}

impl FrameBuf {
    pub fn push(&mut self, data: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 20) && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete non-empty payload; an error for a size above [`MAX_FRAME`].
    pub fn next_payload(&mut self) -> Result<Option<&[u8]>, String> {
        loop {
            let rest = &self.buf[self.pos..];
            if rest.len() < 4 {
                return Ok(None);
            }
            let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if n > MAX_FRAME {
                return Err(format!("frame of {n} bytes announced (limit {MAX_FRAME})"));
            }
            if n == 0 {
                self.heartbeats += 1;
                self.pos += 4;
                continue;
            }
            if rest.len() < 4 + n {
                return Ok(None);
            }
            let start = self.pos + 4;
            self.pos = start + n;
            return Ok(Some(&self.buf[start..start + n]));
        }
    }
}

/// What a [`FrameScanner`] sees in a stream of game frames.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan<'a> {
    Heartbeat,
    /// A non-empty frame starts with this payload size.
    Start(usize),
    /// Payload bytes of the current frame (large frames come in many pieces, never buffered).
    Bytes(&'a [u8]),
    /// The current frame is complete.
    End,
}

/// Streams frames without buffering payloads, so the relay reader can verify an 8 MiB frame
/// as it arrives.
#[derive(Default)]
pub struct FrameScanner {
    header: [u8; 4],
    have: usize,
    /// Payload bytes still to come in the current frame.
    left: usize,
}

impl FrameScanner {
    /// Feeds `data`, calling `on` for each event; stops early (returning the error) when `on`
    /// fails.
    pub fn feed<E>(
        &mut self,
        mut data: &[u8],
        mut on: impl FnMut(Scan) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            if self.left > 0 {
                let k = self.left.min(data.len());
                on(Scan::Bytes(&data[..k]))?;
                self.left -= k;
                data = &data[k..];
                if self.left == 0 {
                    on(Scan::End)?;
                }
                continue;
            }
            let k = (4 - self.have).min(data.len());
            self.header[self.have..self.have + k].copy_from_slice(&data[..k]);
            self.have += k;
            data = &data[k..];
            if self.have == 4 {
                self.have = 0;
                let n = u32::from_le_bytes(self.header) as usize;
                if n == 0 {
                    on(Scan::Heartbeat)?;
                } else {
                    self.left = n;
                    on(Scan::Start(n))?;
                }
            }
        }
        Ok(())
    }

    /// Whether the scanner stands at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && self.left == 0
    }
}

/// Payload sizes of a stream of `total` bytes in frames of `frame_size` (the last one shorter).
pub fn frame_len(total: u64, frame_size: usize, sent: u64) -> usize {
    (frame_size as u64).min(total - sent) as usize
}

/// The first game frame each side of a relayed game sends, before the bulk data: the guest's
/// follows its clientProxyLogin at once (§1.10 step 8) and proves the pairing; the match
/// server's answer proves the way back. Starts with 0xFF, so it can never be mistaken for JSON.
pub fn hello_frame(game: usize, from_guest: bool) -> Vec<u8> {
    let dir = if from_guest { "c2s" } else { "s2c" };
    let mut p = vec![0xFF];
    p.extend_from_slice(format!("vcmi-load hello {dir} game {game}").as_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc() -> Account {
        Account {
            id: "id-1".into(),
            cookie: "c-1".into(),
        }
    }

    #[test]
    fn frames_are_le_size_then_payload() {
        let f = message_frame(&join_game_room("r"));
        let n = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(n, f.len() - 4);
        let v: Value = serde_json::from_slice(&f[4..]).unwrap();
        assert_eq!(v, json!({"type": "joinGameRoom", "gameRoomID": "r"}));
        let mut out = Vec::new();
        push_frame(&mut out, b"");
        assert_eq!(out, HEARTBEAT);
    }

    #[test]
    fn builders_match_the_schemas() {
        let a = acc();
        assert_eq!(
            client_login(&a, "english"),
            json!({"type":"clientLogin","accountID":"id-1","accountCookie":"c-1",
                   "language":"english","version":"1.7.5","languageRooms":["english"]})
        );
        assert_eq!(
            server_login("room", &a),
            json!({"type":"serverLogin","gameRoomID":"room","accountID":"id-1",
                   "accountCookie":"c-1","version":"1.7.5","mods":null})
        );
        // `"mods": null` must survive serialisation (a real match server sends it)
        assert!(message_frame(&server_login("room", &a))
            .windows(12)
            .any(|w| w == b"\"mods\":null,"));
        assert_eq!(
            server_proxy_login("room", "guest", "hostcookie"),
            json!({"type":"serverProxyLogin","gameRoomID":"room","guestAccountID":"guest",
                   "accountCookie":"hostcookie"})
        );
        assert_eq!(
            activate_game_room("h")["playerLimit"],
            json!(2),
            "a missing limit makes the room permanently full on the reference"
        );
        assert_eq!(client_proxy_login(&a, "room")["gameRoomID"], "room");
        assert_eq!(client_register("abcd")["displayName"], "abcd");
        let chat = message_frame(&send_chat("english", "lt.ab.1.2#"));
        assert!(!chat.windows(2).any(|w| w == b"\\u"), "no \\u escapes");
    }

    #[test]
    fn names_are_valid_and_distinct_across_runs() {
        let n = account_name("4d2a1f3", 'u', 999_999);
        assert!(valid_account_name(&n), "{n}");
        assert!(valid_account_name(&account_name(
            "400000ffff",
            'g',
            999_999
        )));
        // run "ab" user 12 vs run "ab1" user 2: the role letter is not hex, so they differ
        assert_ne!(account_name("ab", 'u', 12), account_name("ab1", 'u', 2));
        assert!(!valid_account_name("abc"));
        assert!(!valid_account_name("abc-d"));
        assert!(!valid_account_name(&"a".repeat(21)));
    }

    #[test]
    fn sniffs_the_type_of_pretty_printed_replies() {
        let pretty = b"{\n\t\"accounts\" : [\n\t\t{\n\t\t\t\"accountID\" : \"x\"\n\t\t}\n\t],\n\t\"type\" : \"activeAccounts\"\n}";
        assert_eq!(sniff_type(pretty), Some("activeAccounts"));
        assert_eq!(
            sniff_type(br#"{"type":"chatMessage"}"#),
            Some("chatMessage")
        );
        // a "type" inside a value is escaped and is skipped
        let tricky = br#"{"messageText":"\"type\" : \"x\"","type":"chatMessage"}"#;
        assert_eq!(sniff_type(tricky), Some("chatMessage"));
        // a string "type" that is a value, not a key
        assert_eq!(sniff_type(br#"{"a":"type","type":"b"}"#), Some("b"));
        assert_eq!(sniff_type(br#"{"type":1}"#), None);
        assert_eq!(sniff_type(br#"{"x":1}"#), None);
        assert_eq!(sniff_type(br#"{"type":"a\"b"}"#), None);
    }

    #[test]
    fn parses_messages_and_failures() {
        let m = Msg::parse(b"{\n\t\"accountCookie\" : \"c\",\n\t\"accountID\" : \"i\",\n\t\"type\" : \"accountCreated\"\n}").unwrap();
        assert_eq!(m.kind, "accountCreated");
        assert_eq!(
            m.account().unwrap(),
            Account {
                id: "i".into(),
                cookie: "c".into()
            }
        );
        assert!(m.failure().is_none());
        let f =
            Msg::parse(br#"{"type":"operationFailed","reason":"Room is already full!"}"#).unwrap();
        assert_eq!(
            f.failure().unwrap(),
            "operationFailed \"Room is already full!\""
        );
        assert!(f.account().is_err());
        assert!(Msg::parse(b"{").is_err());
        assert!(Msg::parse(br#"{"type":3}"#).is_err());
    }

    #[test]
    fn frame_buf_reassembles_and_skips_heartbeats() {
        let mut wire = Vec::new();
        push_frame(&mut wire, b"");
        push_frame(&mut wire, b"{\"a\":1}");
        push_frame(&mut wire, b"");
        push_frame(&mut wire, b"xy");
        let mut fb = FrameBuf::default();
        let mut got = Vec::new();
        for b in &wire {
            fb.push(std::slice::from_ref(b));
            while let Some(p) = fb.next_payload().unwrap() {
                got.push(p.to_vec());
            }
        }
        assert_eq!(got, vec![b"{\"a\":1}".to_vec(), b"xy".to_vec()]);
        assert_eq!(fb.heartbeats, 2);
        let mut fb = FrameBuf::default();
        fb.push(&((MAX_FRAME as u32) + 1).to_le_bytes());
        assert!(fb.next_payload().is_err());
    }

    #[test]
    fn scanner_streams_frames_in_any_split() {
        let mut wire = Vec::new();
        push_frame(&mut wire, b"hello");
        push_frame(&mut wire, b"");
        push_frame(&mut wire, b"abc");
        for split in 1..wire.len() {
            let mut sc = FrameScanner::default();
            let mut events = Vec::new();
            let mut payload = Vec::new();
            for part in wire.chunks(split) {
                sc.feed(part, |e| {
                    match e {
                        Scan::Bytes(b) => payload.extend_from_slice(b),
                        Scan::Start(n) => events.push(format!("start{n}")),
                        Scan::End => events.push("end".into()),
                        Scan::Heartbeat => events.push("hb".into()),
                    }
                    Ok::<(), ()>(())
                })
                .unwrap();
            }
            assert_eq!(
                events,
                ["start5", "end", "hb", "start3", "end"],
                "split {split}"
            );
            assert_eq!(payload, b"helloabc");
            assert!(sc.at_boundary());
        }
        // the callback's error stops the scan
        let mut sc = FrameScanner::default();
        assert_eq!(sc.feed(&wire, |_| Err("stop")), Err("stop"));
    }

    #[test]
    fn frame_lengths_cover_the_total() {
        assert_eq!(frame_len(10, 4, 0), 4);
        assert_eq!(frame_len(10, 4, 8), 2);
        let (mut sent, mut n) = (0u64, 0);
        while sent < 100 {
            sent += frame_len(100, 7, sent) as u64;
            n += 1;
        }
        assert_eq!((sent, n), (100, 15));
        assert_ne!(hello_frame(1, true), hello_frame(1, false));
        assert_eq!(hello_frame(3, true)[0], 0xFF);
    }
}

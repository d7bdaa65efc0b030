//! Wire-format helpers: request frames, the pipe handshake, and the splitter for the proxy's
//! unframed `:>>NAME:arg…` lobby replies (PROTOCOL.md §2, §4, §7, §10). The bytes themselves come
//! from the library's `wire` module, shared with the tests.

use vcmi_proxy::wire;

/// Upper bound for one buffered reply we keep. Real replies are at most a few hundred KiB (USERS
/// with thousands of names); anything bigger means the peer is not speaking the lobby protocol.
pub const MAX_KEPT_MESSAGE: usize = 64 << 20;

const SEP: &[u8] = wire::MESSAGE_PREFIX.as_bytes();

pub use vcmi_proxy::wire::frame;

/// First frame of a lobby connection: `[version][4]"utf8"<GREETINGS>user<VER>version` (§4.1).
pub fn login_frame(proto: u8, user: &str, vcmi_version: &str) -> Vec<u8> {
    frame(&wire::lobby_hello(
        user,
        proto,
        Some("utf8"),
        Some(vcmi_version),
    ))
}

/// What a VCMI game sends first on a pipe (§10.1): three serialized strings and one raw
/// endianness byte. `app` is the full application name, e.g. `VCMI 1.4.5 (server)`.
pub fn pipe_handshake(app: &str, uuid: &str) -> Vec<u8> {
    wire::pipe_hello(app, uuid, wire::ENDIAN_LITTLE)
}

/// Lower-case or upper-case hyphenated 8-4-4-4-12 hex uuid, exactly 36 bytes.
pub fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `HOST:{uuid}:{n}` → (uuid, n).
pub fn parse_host(msg: &[u8]) -> Option<(String, u32)> {
    let rest = msg.strip_prefix(b"HOST:")?;
    if rest.len() < 38 || !is_uuid(&rest[..36]) || rest[36] != b':' {
        return None;
    }
    let n = std::str::from_utf8(&rest[37..]).ok()?.parse().ok()?;
    Some((String::from_utf8_lossy(&rest[..36]).into_owned(), n))
}

/// `START:{uuid}` → uuid.
pub fn parse_start(msg: &[u8]) -> Option<String> {
    let rest = msg.strip_prefix(b"START:")?;
    is_uuid(rest).then(|| String::from_utf8_lossy(rest).into_owned())
}

/// A chat line: `MSGCH:user:channel:text` (senders with protocol ≥ 5) or `MSG:user:text`
/// (§6.3). Returns (user, text); the text keeps any further colons.
pub fn parse_chat(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    if let Some(rest) = msg.strip_prefix(b"MSGCH:") {
        let mut it = rest.splitn(3, |&c| c == b':');
        let user = it.next()?;
        let _channel = it.next()?;
        let text = it.next()?;
        Some((user, text))
    } else if let Some(rest) = msg.strip_prefix(b"MSG:") {
        let mut it = rest.splitn(2, |&c| c == b':');
        let user = it.next()?;
        let text = it.next()?;
        Some((user, text))
    } else {
        None
    }
}

/// Chat text used by the lobby mode: `lt.{run}.{seq}.{send_us}#`. It contains no `:` or `<` (both
/// would be eaten by the lobby syntax) and ends with `#`, so a reply that ends the read buffer can be
/// recognised as complete without waiting for the next `:>>`.
pub fn probe_text(run: &str, seq: u64, send_us: u64) -> String {
    format!("lt.{run}.{seq}.{send_us}#")
}

/// Inverse of [`probe_text`], only for probes of this run (other runs on the same server are
/// ignored). Returns (seq, send_us).
pub fn parse_probe(text: &[u8], run: &str) -> Option<(u64, u64)> {
    let body = text.strip_prefix(b"lt.")?.strip_suffix(b"#")?;
    let body = body.strip_prefix(run.as_bytes())?.strip_prefix(b".")?;
    let s = std::str::from_utf8(body).ok()?;
    let (seq, ts) = s.split_once('.')?;
    Some((seq.parse().ok()?, ts.parse().ok()?))
}

/// The name of a reply (text up to the first `:`), if the name is complete.
pub fn message_name(msg: &[u8]) -> Option<&[u8]> {
    msg.iter().position(|&c| c == b':').map(|i| &msg[..i])
}

#[derive(Debug, PartialEq, Eq)]
pub enum SplitError {
    /// Data did not start with `:>>` where a reply must begin.
    NotAReply(Vec<u8>),
    /// A kept reply grew beyond [`MAX_KEPT_MESSAGE`].
    TooLong,
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::NotAReply(b) => {
                write!(
                    f,
                    "lobby protocol error: reply does not start with ':>>': {:?}",
                    String::from_utf8_lossy(b)
                )
            }
            SplitError::TooLong => write!(
                f,
                "lobby protocol error: reply longer than {MAX_KEPT_MESSAGE} bytes"
            ),
        }
    }
}

/// Reassembles the proxy's raw reply stream into messages.
///
/// Replies have no framing (§2.2): a message ends only where the next `:>>` begins. So a message is
/// *complete* once the following `:>>` has arrived; the last message of the buffer (the *tail*) may
/// still be growing, and callers decide from its content whether it is complete (e.g. a 36-char
/// uuid after `START:`), or treat it as complete at end of stream.
///
/// An optional `keep` filter drops uninteresting replies (USERS lists grow with every login and are
/// sent to every user) while scanning, so memory per connection stays small.
pub struct Splitter {
    buf: Vec<u8>,
    /// Start of the unconsumed data in `buf` (consumed bytes are compacted away on `push`).
    start: usize,
    /// Offset (relative to `start`) up to which the current message has been searched for `:>>`.
    scanned: usize,
    /// The current message is being discarded (its `:>>` is already consumed).
    skipping: bool,
    keep: Option<fn(&[u8]) -> bool>,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

/// Index of the first `needle` byte in `hay`, a word at a time (memchr is not a dependency;
/// USERS lists for thousands of users are scanned on every login, so this loop is hot).
fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(needle));
    let mut i = 0;
    while i + 8 <= hay.len() {
        let word = u64::from_le_bytes(hay[i..i + 8].try_into().expect("8 bytes"));
        let x = word ^ pattern;
        // classic "has zero byte" test; exact when non-zero, then locate the byte
        if (x.wrapping_sub(LO) & !x & HI) != 0 {
            break;
        }
        i += 8;
    }
    hay[i..].iter().position(|&c| c == needle).map(|p| i + p)
}

/// Start of the first `:>>` at or after `from`. It looks for `>` rather than `:` because `:`
/// separates every field while `>` is rare in replies.
fn find_sep(data: &[u8], from: usize) -> Option<usize> {
    let mut j = from + 1; // position of the first '>' of a candidate
    while j + 1 < data.len() {
        let p = find_byte(&data[j..data.len() - 1], b'>')?;
        j += p;
        if data[j - 1] == b':' && data[j + 1] == b'>' {
            return Some(j - 1);
        }
        j += 1;
    }
    None
}

impl Splitter {
    pub fn new() -> Self {
        Splitter {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            skipping: false,
            keep: None,
        }
    }

    /// Splitter that silently discards replies whose name fails `keep`.
    pub fn with_filter(keep: fn(&[u8]) -> bool) -> Self {
        Splitter {
            keep: Some(keep),
            ..Self::new()
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > (256 << 10) {
            // a big reply passed through; don't keep its buffer for the connection's lifetime
            self.buf = Vec::new();
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes currently buffered (tests check that filtered replies are not kept).
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Next complete reply, without its `:>>` prefix.
    pub fn next_complete(&mut self) -> Result<Option<&[u8]>, SplitError> {
        loop {
            let data = &self.buf[self.start..];
            if self.skipping {
                match find_sep(data, 0) {
                    Some(i) => {
                        self.start += i;
                        self.skipping = false;
                        self.scanned = 0;
                        continue;
                    }
                    None => {
                        // keep up to 2 bytes: they may be the beginning of a `:>>` split by TCP
                        let keep = data.len().min(2);
                        self.start = self.buf.len() - keep;
                        return Ok(None);
                    }
                }
            }
            if data.len() < SEP.len() {
                if !SEP.starts_with(data) {
                    return Err(SplitError::NotAReply(data.to_vec()));
                }
                return Ok(None);
            }
            if &data[..3] != SEP {
                return Err(SplitError::NotAReply(data[..data.len().min(64)].to_vec()));
            }
            if let Some(keep) = self.keep {
                if let Some(name) = message_name(&data[3..]) {
                    if !keep(name) {
                        self.start += 3;
                        self.skipping = true;
                        continue;
                    }
                }
            }
            let from = self.scanned.max(3);
            match find_sep(data, from) {
                Some(i) => {
                    let (a, b) = (self.start + 3, self.start + i);
                    self.start += i;
                    self.scanned = 0;
                    return Ok(Some(&self.buf[a..b]));
                }
                None => {
                    if data.len() > MAX_KEPT_MESSAGE {
                        return Err(SplitError::TooLong);
                    }
                    // the last 2 bytes may start a `:>>` completed by the next read
                    self.scanned = data.len().saturating_sub(2).max(3);
                    return Ok(None);
                }
            }
        }
    }

    /// The last, possibly incomplete reply (without `:>>`). Call after `next_complete` returned
    /// `None`. Replies being discarded by the filter are never returned.
    pub fn tail(&self) -> Option<&[u8]> {
        if self.skipping {
            return None;
        }
        let data = &self.buf[self.start..];
        (data.len() >= 3 && &data[..3] == SEP).then(|| &data[3..])
    }

    /// Declares the tail complete and drops it (the next byte must start a new `:>>`).
    pub fn consume_tail(&mut self) {
        self.start = self.buf.len();
        self.scanned = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut Splitter) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(m) = s.next_complete().unwrap() {
            v.push(String::from_utf8(m.to_vec()).unwrap());
        }
        v
    }

    #[test]
    fn login_frame_matches_spec_example() {
        // §4.1: VCMI 1.4 launcher, user alice, "VCMI 1.4.0"
        let f = login_frame(5, "alice", "VCMI 1.4.0");
        let mut expect = vec![0x25, 0, 0, 0, 5, 4];
        expect.extend_from_slice(b"utf8<GREETINGS>alice<VER>VCMI 1.4.0");
        assert_eq!(f, expect);
    }

    #[test]
    fn uuid_and_replies() {
        let u = "47aff2ce-2731-49b5-9092-52dfecb6f335";
        assert!(is_uuid(u.as_bytes()));
        assert!(!is_uuid(&u.as_bytes()[..35]));
        assert!(!is_uuid(u.replace('-', "x").as_bytes()));
        assert_eq!(
            parse_host(format!("HOST:{u}:1").as_bytes()),
            Some((u.to_string(), 1))
        );
        assert_eq!(parse_host(format!("HOST:{u}:").as_bytes()), None);
        assert_eq!(parse_host(format!("HOST:{u}").as_bytes()), None);
        assert_eq!(
            parse_start(format!("START:{u}").as_bytes()),
            Some(u.to_string())
        );
        assert_eq!(parse_start(format!("START:{}", &u[..20]).as_bytes()), None);
        assert_eq!(parse_start(b"STATUS:1:a:True"), None);
    }

    #[test]
    fn chat_parsing() {
        assert_eq!(
            parse_chat(b"MSGCH:bob:room:hi room"),
            Some((&b"bob"[..], &b"hi room"[..]))
        );
        assert_eq!(
            parse_chat(b"MSGCH:bob:global:"),
            Some((&b"bob"[..], &b""[..]))
        );
        assert_eq!(
            parse_chat(b"MSG:System:a:b"),
            Some((&b"System"[..], &b"a:b"[..]))
        );
        assert_eq!(parse_chat(b"MSGCH:bob"), None);
        assert_eq!(parse_chat(b"MODS:1::"), None);
        let t = probe_text("ab12", 7, 123456);
        assert_eq!(t, "lt.ab12.7.123456#");
        assert_eq!(parse_probe(t.as_bytes(), "ab12"), Some((7, 123456)));
        assert_eq!(parse_probe(t.as_bytes(), "ab1"), None);
        assert_eq!(parse_probe(b"lt.ab12.7.12", "ab12"), None);
        assert_eq!(parse_probe(b"hello", "ab12"), None);
    }

    #[test]
    fn splits_spec_example_in_one_chunk() {
        let mut s = Splitter::new();
        s.push(b":>>USERS:1:alice:>>SESSIONS:0:>>USERS:1:alice:>>MSG:System:Here available 0 users, currently playing 0");
        assert_eq!(
            drain(&mut s),
            vec!["USERS:1:alice", "SESSIONS:0", "USERS:1:alice"]
        );
        assert_eq!(
            s.tail(),
            Some(&b"MSG:System:Here available 0 users, currently playing 0"[..])
        );
        s.consume_tail();
        assert_eq!(s.tail(), None);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn empty_fields_and_trailing_colons() {
        let mut s = Splitter::new();
        s.push(b":>>MODS:1:::>>MODSOTHER:alice:1::>>HEALTH::>>X");
        assert_eq!(
            drain(&mut s),
            vec!["MODS:1::", "MODSOTHER:alice:1:", "HEALTH:"]
        );
        assert_eq!(s.tail(), Some(&b"X"[..]));
    }

    #[test]
    fn any_chunking_gives_same_messages() {
        let stream: &[u8] = b":>>CREATED:Room1:>>JOIN:Room1:alice:>>STATUS:1:alice:False:>>SESSIONS:1:Room1:1:2:False:>>MSG:System:You are in the room chat.:>>MODS:1:::>>MODSOTHER:alice:1::>>END:";
        let mut whole = Splitter::new();
        whole.push(stream);
        let expect = drain(&mut whole);
        assert_eq!(expect.len(), 7);
        for step in 1..=stream.len() {
            let mut s = Splitter::new();
            let mut got = Vec::new();
            for c in stream.chunks(step) {
                s.push(c);
                got.extend(drain(&mut s));
            }
            assert_eq!(got, expect, "chunk size {step}");
            assert_eq!(s.tail(), Some(&b"END:"[..]));
        }
    }

    #[test]
    fn filter_discards_without_buffering() {
        fn keep(name: &[u8]) -> bool {
            name != b"USERS"
        }
        let mut big = b":>>USERS:5000".to_vec();
        for i in 0..5000 {
            big.extend_from_slice(format!(":user{i}").as_bytes());
        }
        let mut stream = b":>>SESSIONS:0".to_vec();
        stream.extend_from_slice(&big);
        stream.extend_from_slice(b":>>MSG:System:hi:>>USERS:1:x:>>START:abc");
        for step in [1usize, 2, 3, 5, 100, 4096, stream.len()] {
            let mut s = Splitter::with_filter(keep);
            let mut got = Vec::new();
            let mut max_buf = 0;
            for c in stream.chunks(step) {
                s.push(c);
                max_buf = max_buf.max(s.buffered());
                got.extend(drain(&mut s));
            }
            assert_eq!(got, vec!["SESSIONS:0", "MSG:System:hi"], "step {step}");
            assert_eq!(s.tail(), Some(&b"START:abc"[..]));
            if step < 100 {
                assert!(max_buf < 200, "buffered {max_buf} with step {step}");
            }
        }
    }

    #[test]
    fn filtered_tail_is_hidden() {
        let mut s = Splitter::with_filter(|n| n != b"USERS");
        s.push(b":>>USERS:2:a:b");
        assert_eq!(drain(&mut s), Vec::<String>::new());
        assert_eq!(s.tail(), None);
        s.push(b":>>MSG:x:y");
        assert_eq!(drain(&mut s), Vec::<String>::new());
        assert_eq!(s.tail(), Some(&b"MSG:x:y"[..]));
    }

    #[test]
    fn rejects_garbage() {
        let mut s = Splitter::new();
        s.push(b"hello");
        assert!(matches!(s.next_complete(), Err(SplitError::NotAReply(_))));
        let mut s = Splitter::new();
        s.push(b":x");
        assert!(s.next_complete().is_err());
        let mut s = Splitter::new();
        s.push(b":>");
        assert_eq!(s.next_complete(), Ok(None));
        assert_eq!(s.tail(), None);
    }

    #[test]
    fn byte_and_separator_search() {
        for len in 0..40 {
            for pos in 0..len {
                let mut v = vec![b'a'; len];
                v[pos] = b'>';
                assert_eq!(find_byte(&v, b'>'), Some(pos), "len {len} pos {pos}");
                v[pos] = 0xbe; // differs from '>' only in the high bit
                assert_eq!(find_byte(&v, b'>'), None);
            }
        }
        assert_eq!(find_sep(b":>>A:>>B", 3), Some(4));
        assert_eq!(find_sep(b":>>A:>>B", 0), Some(0));
        assert_eq!(find_sep(b":>>A>>:>:>>", 3), Some(8));
        assert_eq!(find_sep(b":>>A:>", 3), None);
        assert_eq!(find_sep(b"", 0), None);
        assert_eq!(find_sep(b":>", 0), None);
    }

    #[test]
    fn names() {
        assert_eq!(message_name(b"USERS:1:a"), Some(&b"USERS"[..]));
        assert_eq!(message_name(b"USER"), None);
    }
}

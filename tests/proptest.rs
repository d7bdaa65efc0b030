//! Property tests for the parts that take bytes from strangers: the frame
//! decoder (PROTOCOL.md §2.1), the command splitter (§5.1), the first-frame
//! parsers (§4, §10.3) and the lobby rules driven by arbitrary command
//! sequences (§6–§8). Everything goes through the public API only.

use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use vcmi_proxy::frame::{Check, FrameDecoder, HEADER_LEN};
use vcmi_proxy::legacy::handshake::{
    is_pipe_frame, parse_lobby_header, PipeHandshake, PipeStep, MAX_PIPE_FRAMES, MAX_PIPE_HANDSHAKE,
};
use vcmi_proxy::legacy::lobby::{
    CloseReason, Commands, Lobby, LobbyConfig, Malformed, Outbox, Protocol, ServerCounters,
};
use vcmi_proxy::wire::frame as encode;

// ---- helpers ------------------------------------------------------------------------------

/// Turns arbitrary indices into sorted, distinct cut points strictly inside `0..len`.
fn cut_points(len: usize, cuts: &[Index]) -> Vec<usize> {
    let mut at: Vec<usize> = if len == 0 {
        Vec::new()
    } else {
        cuts.iter()
            .map(|i| i.index(len))
            .filter(|&p| p > 0)
            .collect()
    };
    at.sort_unstable();
    at.dedup();
    at
}

/// Splits `stream` into chunks: at the cut points, or byte by byte.
fn chunks<'a>(stream: &'a [u8], cuts: &[Index], bytewise: bool) -> Vec<&'a [u8]> {
    if bytewise {
        return stream.chunks(1).collect();
    }
    let mut out = Vec::new();
    let mut from = 0;
    for p in cut_points(stream.len(), cuts) {
        out.push(&stream[from..p]);
        from = p;
    }
    out.push(&stream[from..]);
    out
}

/// What an independent reading of §2.1 says one stream of bytes decodes to:
/// the frames before the stop, how many bytes they used, and the length of an
/// oversized prefix that stopped decoding, if any.
fn reference_frames(stream: &[u8], max: usize) -> (Vec<&[u8]>, usize, Option<u64>) {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        let Some(head) = stream.get(at..at + 4) else {
            return (frames, at, None);
        };
        let len = u32::from_le_bytes(head.try_into().unwrap()) as u64;
        if len > max as u64 {
            return (frames, at, Some(len));
        }
        let Some(payload) = stream.get(at + 4..at + 4 + len as usize) else {
            return (frames, at, None);
        };
        frames.push(payload);
        at += 4 + len as usize;
    }
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        2 => prop::collection::vec(any::<u8>(), 0..8),
        4 => prop::collection::vec(any::<u8>(), 0..2000),
    ]
}

// ---- frame decoder ------------------------------------------------------------------------

proptest! {
    /// Frames split anywhere by TCP decode to exactly the payloads, in order;
    /// the decoder holds exactly the bytes given and not yet returned, and
    /// never asks for more bytes than the stream still has.
    #[test]
    fn frames_survive_any_split(
        payloads in prop::collection::vec(payload(), 0..12),
        cuts in prop::collection::vec(any::<Index>(), 0..40),
        bytewise in prop::bool::weighted(0.1),
        slack in prop_oneof![Just(0usize), Just(1), 0usize..100_000],
    ) {
        // the limit is at least the largest payload, sometimes exactly it
        let max = payloads.iter().map(Vec::len).max().unwrap_or(0) + slack;
        let stream: Vec<u8> = payloads.iter().flat_map(|p| encode(p)).collect();
        let mut d = FrameDecoder::new(max);
        let mut got: Vec<Vec<u8>> = Vec::new();
        let (mut given, mut returned) = (0usize, 0usize);
        for chunk in chunks(&stream, &cuts, bytewise) {
            d.extend(chunk);
            given += chunk.len();
            loop {
                let before = d.buffered();
                match d.next_frame() {
                    Ok(Some(f)) => {
                        prop_assert!(f.len() <= max);
                        prop_assert_eq!(d.buffered(), before - HEADER_LEN - f.len());
                        returned += HEADER_LEN + f.len();
                        got.push(f.to_vec());
                    }
                    Ok(None) => {
                        prop_assert_eq!(d.buffered(), before, "Ok(None) consumed bytes");
                        break;
                    }
                    Err(len) => prop_assert!(false, "valid stream reported Err({})", len),
                }
            }
            prop_assert_eq!(d.buffered(), given - returned);
            match d.check() {
                Check::Incomplete { needed } => {
                    prop_assert!(needed >= 1);
                    let left = stream.len() - given;
                    prop_assert!(left == 0 || needed <= left,
                        "asks for {} bytes, only {} left", needed, left);
                }
                other => prop_assert!(false, "check() after draining: {:?}", other),
            }
        }
        prop_assert_eq!(&got, &payloads);
        prop_assert_eq!(d.buffered(), 0);
    }

    /// An oversized length prefix is reported as `Err(len)` as soon as its 4
    /// bytes are in, never earlier, after every frame before it was returned,
    /// and again on every later call, without consuming anything.
    #[test]
    fn oversized_prefix_is_refused_where_it_stands(
        good in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
        max in 300usize..100_000,
        over in any::<u32>(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
        cuts in prop::collection::vec(any::<Index>(), 0..20),
        bytewise in prop::bool::weighted(0.1),
    ) {
        let bad_len = (max as u64 + 1) + u64::from(over) % (u64::from(u32::MAX) - max as u64);
        prop_assume!(bad_len <= u64::from(u32::MAX));
        let mut stream: Vec<u8> = good.iter().flat_map(|p| encode(p)).collect();
        let bad_at = stream.len();
        stream.extend_from_slice(&(bad_len as u32).to_le_bytes());
        stream.extend_from_slice(&tail);

        let mut d = FrameDecoder::new(max);
        let mut got = Vec::new();
        let mut given = 0;
        let mut refused = None;
        'feed: for chunk in chunks(&stream, &cuts, bytewise) {
            d.extend(chunk);
            given += chunk.len();
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => got.push(f.to_vec()),
                    Ok(None) => {
                        prop_assert!(given < bad_at + HEADER_LEN,
                            "oversized prefix fully buffered but not reported");
                        break;
                    }
                    Err(len) => {
                        prop_assert!(
                            given >= bad_at + HEADER_LEN,
                            "refused before the prefix arrived"
                        );
                        refused = Some(len);
                        break 'feed;
                    }
                }
            }
        }
        prop_assert_eq!(refused, Some(bad_len));
        prop_assert_eq!(&got, &good);
        // nothing of the bad frame was consumed, and the verdict is stable
        prop_assert_eq!(d.buffered(), given - bad_at);
        prop_assert_eq!(d.check(), Check::TooLarge { len: bad_len });
        prop_assert_eq!(d.next_frame(), Err(bad_len));
        prop_assert_eq!(d.buffered(), given - bad_at);
        prop_assert_eq!(&d.take_rest()[..], &stream[bad_at..given]);
        prop_assert_eq!(d.buffered(), 0);
    }

    /// Arbitrary bytes, arbitrarily split, with small limits: no panic, no
    /// frame over the limit, frames equal to an independent decoding of the
    /// whole stream, and `take_rest` hands back exactly the unreturned bytes.
    #[test]
    fn garbage_never_panics_or_overreads(
        stream in prop::collection::vec(any::<u8>(), 0..4096),
        small in prop::collection::vec(0u8..4, 0..64),
        max in prop_oneof![0usize..8, 0usize..600, Just(usize::MAX)],
        cuts in prop::collection::vec(any::<Index>(), 0..40),
        bytewise in prop::bool::weighted(0.1),
        stop_early in prop::option::of(any::<Index>()),
    ) {
        // small length bytes make short frames likely even in random data
        let stream: Vec<u8> = small.iter().copied().chain(stream).collect();
        let (want, want_used, want_err) = reference_frames(&stream, max);
        let mut d = FrameDecoder::new(max);
        let mut got = Vec::new();
        let (mut given, mut returned) = (0, 0);
        let mut err = None;
        let limit = stop_early.map_or(stream.len(), |i| i.index(stream.len() + 1));
        for chunk in chunks(&stream[..limit], &cuts, bytewise) {
            d.extend(chunk);
            given += chunk.len();
            while err.is_none() {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        prop_assert!(f.len() <= max);
                        returned += HEADER_LEN + f.len();
                        got.push(f);
                    }
                    Ok(None) => break,
                    Err(len) => {
                        prop_assert!(len > max as u64);
                        err = Some(len);
                    }
                }
            }
            prop_assert_eq!(d.buffered(), given - returned);
        }
        prop_assert!(got.len() <= want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(&g[..], *w);
        }
        if limit == stream.len() {
            prop_assert_eq!(got.len(), want.len());
            prop_assert_eq!(returned, want_used);
            prop_assert_eq!(err, want_err);
        }
        d.shrink_if_empty();
        prop_assert_eq!(&d.take_rest()[..], &stream[returned..given]);
        prop_assert_eq!(d.buffered(), 0);
        d.shrink_if_empty();
        prop_assert_eq!(d.next_frame(), Ok(None));
    }
}

// ---- command parser -----------------------------------------------------------------------

type Parsed = Vec<Result<(String, String), Malformed>>;

fn parse(text: &str) -> Parsed {
    Commands::new(text)
        .map(|r| r.map(|c| (c.tag.to_string(), c.value.to_string())))
        .collect()
}

/// PROTOCOL.md §5.1 read literally, one step at a time (ABORT is the lobby's
/// business, not the splitter's).
fn reference_commands(text: &str) -> Parsed {
    let mut out = Vec::new();
    let mut t = text;
    loop {
        // 1. the first `<`; nothing after it, or none at all: incorrect
        let Some((_ignored, after)) = t.split_once('<') else {
            out.push(Err(Malformed::NoTag));
            return out;
        };
        if after.is_empty() {
            out.push(Err(Malformed::NoTag));
            return out;
        }
        // 2. the first `>` after it; none, or an empty tag: incorrect
        let Some((tag, rest)) = after.split_once('>') else {
            out.push(Err(Malformed::BadTag));
            return out;
        };
        if tag.is_empty() {
            out.push(Err(Malformed::BadTag));
            return out;
        }
        // 3./4. the value runs to the next `<` or the end
        let (value, remainder) = match rest.find('<') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        out.push(Ok((tag.to_string(), value.to_string())));
        // 6. go on with the remainder starting at the next `<`, if any
        if remainder.is_empty() {
            return out;
        }
        t = remainder;
    }
}

/// Text heavy in the characters that matter to the splitter, plus multibyte
/// characters of every UTF-8 length.
fn command_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => Just("<".to_string()),
        3 => Just(">".to_string()),
        1 => Just("<>".to_string()),
        1 => Just("<<".to_string()),
        2 => one_of(&["MSG", "GREETINGS", "NEW", "HERE", "VER"]),
        2 => one_of(&["é", "ж", "中", "名前", "🎉", "\u{0}", "\n", ":", ":>>", " "]),
        3 => "[a-z]{0,4}",
        1 => any::<char>().prop_map(String::from),
    ];
    prop_oneof![
        3 => prop::collection::vec(piece, 0..40).prop_map(|v| v.concat()),
        1 => any::<String>(),
        1 => ".{0,64}",
    ]
}

proptest! {
    /// No panics; tags non-empty without `>`; values without `<`; at most one
    /// error and only last; the iterator stays finished; output equals the
    /// independent §5.1 reference.
    #[test]
    fn commands_match_reference(text in command_text()) {
        let mut it = Commands::new(&text);
        let mut got: Parsed = Vec::new();
        for r in it.by_ref() {
            prop_assert!(got.last().is_none_or(|l| l.is_ok()), "item after an error");
            match r {
                Ok(c) => {
                    prop_assert!(!c.tag.is_empty());
                    prop_assert!(!c.tag.contains('>'), "tag {:?}", c.tag);
                    prop_assert!(!c.value.contains('<'), "value {:?}", c.value);
                    got.push(Ok((c.tag.to_string(), c.value.to_string())));
                }
                Err(e) => got.push(Err(e)),
            }
            prop_assert!(got.len() <= text.matches('<').count() + 1);
        }
        prop_assert!(it.next().is_none(), "not fused");
        prop_assert!(it.next().is_none(), "not fused");
        prop_assert_eq!(&got, &reference_commands(&text));
    }

    /// The commands, written back as `<tag>value`, are a contiguous piece of
    /// the input starting at its first `<`, and what follows that piece is
    /// exactly what the error (if any) complains about.
    #[test]
    fn commands_reconstruct_the_input(text in command_text()) {
        let got = parse(&text);
        let rebuilt: String = got
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|(t, v)| format!("<{t}>{v}"))
            .collect();
        let start = text.find('<').unwrap_or(text.len());
        let from_first = &text[start..];
        prop_assert!(
            from_first.starts_with(&rebuilt),
            "{:?} not a prefix of {:?}",
            rebuilt,
            from_first
        );
        let rest = &from_first[rebuilt.len()..];
        match got.last() {
            None => prop_assert!(false, "no item at all"),
            Some(Ok(_)) => prop_assert_eq!(rest, ""),
            Some(Err(Malformed::NoTag)) => {
                if rebuilt.is_empty() {
                    prop_assert!(rest.is_empty() || rest == "<");
                } else {
                    prop_assert_eq!(rest, "<");
                }
            }
            Some(Err(Malformed::BadTag)) => {
                prop_assert!(
                    rest.starts_with("<>") || (rest.starts_with('<') && !rest.contains('>')),
                    "BadTag for {:?}",
                    rest
                );
            }
        }
    }

    /// Re-serialising the commands and parsing again gives the same commands.
    #[test]
    fn commands_reserialise_idempotently(text in command_text()) {
        let ok: Vec<(String, String)> = parse(&text).into_iter().filter_map(Result::ok).collect();
        let again: String = ok.iter().map(|(t, v)| format!("<{t}>{v}")).collect();
        let reparsed = parse(&again);
        if ok.is_empty() {
            prop_assert_eq!(reparsed, vec![Err(Malformed::NoTag)]);
        } else {
            let ok2: Parsed = ok.into_iter().map(Ok).collect();
            prop_assert_eq!(reparsed, ok2);
        }
    }
}

// ---- first frames: lobby header and pipe handshake ---------------------------------------

proptest! {
    /// The lobby header parser accepts exactly the §4.3 layouts it can read
    /// and never panics.
    #[test]
    fn lobby_header_never_panics(payload in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        (0u8..7, 0u8..12, "[a-zA-Z0-9 _-]{0,12}", ".{0,20}").prop_map(|(v, l, name, rest)| {
            let mut p = vec![v, l];
            p.extend_from_slice(name.as_bytes());
            p.extend_from_slice(rest.as_bytes());
            p
        }),
    ]) {
        match parse_lobby_header(&payload) {
            Ok(h) => {
                prop_assert!((1..=5).contains(&h.protocol));
                prop_assert_eq!(h.protocol, payload[0]);
                prop_assert!(payload.len() >= 2 + payload[1] as usize);
            }
            Err(e) => {
                prop_assert!(!e.is_empty());
                // sent as `:>>ERROR:{e}`: no field separator may leak in
                prop_assert!(!e.contains(':'), "{:?}", e);
            }
        }
    }

    /// Any frames fed to a pipe handshake: no panic, the replay is exactly the
    /// re-framed input, and it gives up after MAX_PIPE_FRAMES frames or
    /// MAX_PIPE_HANDSHAKE bytes.
    #[test]
    fn pipe_handshake_never_panics(frames in prop::collection::vec(prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        Just(b"Aiya!\n".to_vec()),
        one_of(&["VCMI 1.4.0 (client)", "VCMI (server)", "(observer)", "()", "(a b)"])
            .prop_map(String::into_bytes),
        "[0-9a-fé_-]{0,40}".prop_map(String::into_bytes),
        Just(b"0f8fad5b-d9cb-469f-a165-70867728950e".to_vec()),
        Just(vec![b'x'; 3000]),
    ], 0..8)) {
        let mut h = PipeHandshake::default();
        let mut replay = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let _ = is_pipe_frame(f);
            let step = h.push_frame(f);
            if i >= MAX_PIPE_FRAMES || replay.len() + 4 + f.len() > MAX_PIPE_HANDSHAKE {
                prop_assert!(matches!(step, PipeStep::Reject(_)), "{:?}", step);
                break;
            }
            replay.extend_from_slice(&encode(f));
            prop_assert_eq!(&h.replay, &replay);
            prop_assert!(h.replay.len() <= MAX_PIPE_HANDSHAKE);
            match step {
                PipeStep::NeedEndianByte => {
                    prop_assert!(h.uuid.is_some() && h.app_type().is_some());
                    break;
                }
                PipeStep::Reject(_) => {
                    prop_assert!(std::str::from_utf8(f).is_err());
                    break;
                }
                PipeStep::More => {}
            }
        }
    }
}

// ---- lobby rules --------------------------------------------------------------------------

/// Connection ids the lobby sees (slab keys; reused after a close).
const IDS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    /// A connection's first frame showed a lobby header.
    Register {
        id: usize,
        protocol: u8,
    },
    Frame {
        id: usize,
        text: String,
    },
    /// EOF or error on the connection.
    Disconnect {
        id: usize,
    },
    /// Time passes (flood control).
    Wait {
        ms: u64,
    },
}

fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        "[<>a-zA-Z:@&; ]{0,12}",
        ".{0,8}",
        Just(":>>START:x".to_string()),
        Just(">>START:x".to_string()),
    ]
}

fn one_of(v: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(v).prop_map(String::from)
}

fn users() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => one_of(&["alice", "bruno", "carla", "dmitri", "eve", "frank", "Иван", "abc\n"]),
        1 => one_of(&["al", "System", "all", "room", "a b", "x:y", ""]),
        1 => junk(),
    ]
}

fn rooms() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => one_of(&["Den", "Room1"]),
        2 => one_of(&["Room2", "Комната"]),
        1 => one_of(&["ab", "a:b", " sp", "", "x:>>y", ">>START"]),
        1 => junk(),
    ]
}

fn values_for(tag: &'static str) -> BoxedStrategy<String> {
    match tag {
        "GREETINGS" | "KICK" => users().boxed(),
        "MSG" => prop_oneof![
            4 => junk(),
            1 => users().prop_map(|u| format!("@{u} hi")),
            1 => Just("@all everyone".to_string()),
        ]
        .boxed(),
        "NEW" | "JOIN" | "LEAVE" | "READY" | "FORCESTART" => rooms().boxed(),
        "PSWD" => prop_oneof![4 => one_of(&["", "pw", "secret"]), 1 => junk()].boxed(),
        "COUNT" => prop_oneof![
            4 => one_of(&["2", "3", "8"]),
            1 => one_of(&["1", "9", "-2", " 4 ", "+3", "٣", "x", "", "99999999999999999999"]),
        ]
        .boxed(),
        "MODS" => prop_oneof![4 => one_of(&["", "a&1", "a&1;b&2", "b&3;a"]), 1 => junk()].boxed(),
        "VER" => one_of(&["VCMI 1.4.0", "VCMI 1.3.2", "VCMI 1.4.0.7fc60a0", ""]).boxed(),
        "CHANNEL" => prop_oneof![4 => one_of(&["global", "room"]), 1 => junk()].boxed(),
        "HOSTMODE" => one_of(&["0", "1", "x", " 1", ""]).boxed(),
        "ROOT" => one_of(&["users", "rooms", "sessions", "logins", "x"]).boxed(),
        _ => junk().boxed(),
    }
}

fn command() -> impl Strategy<Value = String> {
    let tag = prop::sample::select(vec![
        "GREETINGS",
        "VER",
        "MSG",
        "NEW",
        "PSWD",
        "COUNT",
        "JOIN",
        "MODS",
        "LEAVE",
        "CHANNEL",
        "HOSTMODE",
        "KICK",
        "READY",
        "FORCESTART",
        "HERE",
        "ROOT",
        "ALIVE",
        "USER",
        "msg",
    ]);
    prop_oneof![
        12 => tag.prop_flat_map(|t| values_for(t).prop_map(move |v| format!("<{t}>{v}"))),
        1 => junk(),
    ]
}

/// Frames real launchers send (§5.2) with random fields, or random commands.
fn frame_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (users(), prop::option::of(Just("\u{5}\u{4}utf8")))
            .prop_map(|(u, h)| format!("{}<GREETINGS>{u}<VER>VCMI 1.4.0", h.unwrap_or(""))),
        3 => (rooms(), values_for("PSWD"), values_for("COUNT"), values_for("MODS"))
            .prop_map(|(r, p, c, m)| format!("<NEW>{r}<PSWD>{p}<COUNT>{c}<MODS>{m}")),
        3 => (rooms(), values_for("PSWD"), values_for("MODS"))
            .prop_map(|(r, p, m)| format!("<JOIN>{r}<PSWD>{p}<MODS>{m}")),
        2 => (rooms(), values_for("PSWD")).prop_map(|(r, p)| format!("<JOIN>{r}<PSWD>{p}")),
        3 => values_for("PSWD").prop_map(|p| format!("<PSWD>{p}")),
        3 => rooms().prop_map(|r| format!("<READY>{r}")),
        1 => rooms().prop_map(|r| format!("<LEAVE>{r}")),
        6 => prop::collection::vec(command(), 1..5).prop_map(|v| v.concat()),
        1 => junk(),
    ]
}

/// Mostly the first three connections, so that they meet in rooms.
fn id() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..3, 1 => 0..IDS]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (id(), prop_oneof![4 => 3u8..=5, 1 => 1u8..=2])
            .prop_map(|(id, protocol)| Op::Register { id, protocol }),
        12 => (id(), frame_text()).prop_map(|(id, text)| Op::Frame { id, text }),
        2 => id().prop_map(|id| Op::Disconnect { id }),
        1 => (0u64..3000).prop_map(|ms| Op::Wait { ms }),
    ]
}

fn config() -> impl Strategy<Value = LobbyConfig> {
    (
        prop_oneof![Just(50usize), 1usize..=IDS],
        prop_oneof![Just(0u32), Just(5)],
    )
        .prop_map(|(capacity, flood_rate)| LobbyConfig {
            capacity,
            flood_rate,
            flood_burst: 10,
        })
}

/// Checks what must hold after every step. `model` holds the connections
/// the event loop believes are lobby clients (with their protocol).
fn check_step(
    lobby: &Lobby,
    model: &mut BTreeMap<usize, u8>,
    out: &Outbox,
    actor: Option<usize>,
) -> Result<(), TestCaseError> {
    // a close is only ever asked for a client the lobby already forgot
    for (id, reason) in out.closes() {
        prop_assert!(
            !lobby.is_registered(*id),
            "close {:?} of a registered client {}",
            reason,
            id
        );
        prop_assert!(
            model.contains_key(id),
            "close of a connection that was never a client: {}",
            id
        );
        if let CloseReason::Refused(_) = reason {
            prop_assert_eq!(Some(*id), actor);
        }
    }
    // messages go to clients, or to those closed in this very step
    for (to, i) in out.deliveries() {
        prop_assert!(
            lobby.is_registered(*to) || out.closes().iter().any(|(c, _)| c == to),
            "message to a non-client {}: {:?}",
            to,
            out.texts()[*i as usize]
        );
    }
    // every message is one the launcher can parse (§2.2): `:>>NAME:` ...
    for (to, i) in out.deliveries() {
        let t = &out.texts()[*i as usize];
        prop_assert!(
            t.starts_with(":>>") && t[3..].contains(':'),
            "malformed {:?}",
            t
        );
        // ... and cannot smuggle a second one to anybody, the sender included (D42)
        prop_assert!(!t[3..].contains(":>>"), "injected into {}: {:?}", to, t);
    }
    for (id, _) in out.closes() {
        model.remove(id);
    }
    let mut authed = 0;
    for id in 0..IDS {
        prop_assert_eq!(
            lobby.is_registered(id),
            model.contains_key(&id),
            "client {} registered={} but the event loop thinks otherwise",
            id,
            lobby.is_registered(id)
        );
        prop_assert_eq!(
            lobby.protocol(id).map(Protocol::version),
            model.get(&id).copied()
        );
        if lobby.is_authed(id) {
            prop_assert!(lobby.is_registered(id));
            authed += 1;
        }
    }
    prop_assert_eq!(lobby.connections(), model.len());
    prop_assert_eq!(lobby.users(), authed);
    prop_assert!(lobby.users() <= lobby.connections());
    // every room has a distinct logged-in host
    prop_assert!(
        lobby.rooms() <= lobby.users(),
        "{} rooms, {} users",
        lobby.rooms(),
        lobby.users()
    );
    Ok(())
}

/// Runs `ops` against a fresh lobby, checking the invariants after each.
fn run_lobby(config: LobbyConfig, ops: &[Op]) -> Result<(), TestCaseError> {
    let capacity = config.capacity;
    let mut lobby = Lobby::new(config);
    let mut model = BTreeMap::new();
    let mut out = Outbox::new();
    let mut now = Instant::now();
    for op in ops {
        out.clear();
        let mut actor = None;
        match op {
            Op::Register { id, protocol } => {
                // the event loop registers a connection once, when its first
                // frame arrives; the slab key may be reused after a close
                if !model.contains_key(id) {
                    lobby.register(*id, *protocol);
                    model.insert(*id, *protocol);
                }
            }
            Op::Frame { id, text } => {
                if model.contains_key(id) {
                    actor = Some(*id);
                    lobby.handle_frame(*id, text, now, &ServerCounters::ZERO, &mut out);
                }
            }
            Op::Disconnect { id } => {
                lobby.disconnect(*id, &mut out);
                prop_assert!(out.closes().is_empty());
                model.remove(id);
            }
            Op::Wait { ms } => now += Duration::from_millis(*ms),
        }
        check_step(&lobby, &mut model, &out, actor)?;
        prop_assert!(lobby.users() <= capacity);
        // the event loop's own disconnect for the closed ones is a no-op
        let closed: Vec<usize> = out.closes().iter().map(|(id, _)| *id).collect();
        out.clear();
        for id in closed {
            lobby.disconnect(id, &mut out);
            prop_assert!(
                out.is_empty(),
                "disconnect after close sent {:?}",
                out.texts()
            );
        }
    }
    // everybody leaves: nothing may linger
    for id in 0..IDS {
        out.clear();
        lobby.disconnect(id, &mut out);
        model.remove(&id);
        check_step(&lobby, &mut model, &out, None)?;
    }
    prop_assert_eq!(lobby.users(), 0);
    prop_assert_eq!(lobby.connections(), 0);
    prop_assert_eq!(lobby.rooms(), 0);
    Ok(())
}

/// The lobby needs longer sequences to reach its corners than the other
/// properties: 1024 cases (about 6 s in a debug build) unless PROPTEST_CASES
/// says otherwise.
fn lobby_config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 1024;
    }
    config
}

proptest! {
    #![proptest_config(lobby_config())]

    /// Random traffic, after a random number of launchers logged in the
    /// usual way (so that most commands come from users who may act).
    #[test]
    fn lobby_survives_any_command_sequence(
        config in config(),
        logged_in in prop::collection::vec(3u8..=5, 0..=IDS),
        ops in prop::collection::vec(op(), 0..100),
    ) {
        let names = ["alice", "bruno", "carla", "dmitri", "eve", "frank"];
        let mut all: Vec<Op> = Vec::new();
        for (id, &protocol) in logged_in.iter().enumerate() {
            all.push(Op::Register { id, protocol });
            all.push(Op::Frame {
                id,
                text: format!(
                    "{}\u{4}utf8<GREETINGS>{}<VER>VCMI 1.4.0",
                    char::from(protocol),
                    names[id]
                ),
            });
        }
        all.extend(ops);
        run_lobby(config, &all)?;
    }
}

//! One test per acceptance rule, each with both sides of its boundary.

use proptest::prelude::*;

use super::value::{self, Value};
use super::*;

fn accepts(payload: &[u8]) -> Request {
    match parse_request(payload) {
        Ok(request) => request,
        Err(Invalid(why)) => panic!("refused {:?}: {why}", String::from_utf8_lossy(payload)),
    }
}

fn refuses(payload: &[u8]) {
    if let Ok(request) = parse_request(payload) {
        panic!(
            "accepted {:?} as {request:?}",
            String::from_utf8_lossy(payload)
        );
    }
}

/// A message with no schema: only the JSON rules apply.
fn unknown(json: &str) -> Vec<u8> {
    format!(r#"{{"type":"x-test",{json}}}"#).into_bytes()
}

fn read(text: &str) -> Result<Value, String> {
    value::read(text.as_bytes(), value::LOBBY_MESSAGE)
}

const JOIN: &str = r#"{"type":"joinGameRoom","gameRoomID":"r1"}"#;

#[test]
fn a_plain_message_becomes_its_request() {
    assert_eq!(
        accepts(JOIN.as_bytes()),
        Request::JoinGameRoom {
            game_room_id: "r1".into()
        }
    );
}

// ---- encoding ----

#[test]
fn utf8_bom_at_the_start_is_skipped_but_nowhere_else() {
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(JOIN.as_bytes());
    accepts(&with_bom);
    let mut two_boms = b"\xEF\xBB\xBF".to_vec();
    two_boms.extend_from_slice(&with_bom);
    refuses(&two_boms);
    refuses(&[b" \xEF\xBB\xBF".as_slice(), JOIN.as_bytes()].concat());
}

#[test]
fn utf8_up_to_u3ffff_passes_and_above_or_malformed_is_refused() {
    // U+1F600 (F0 9F 98 80) and U+3FFFF (F0 BF BF BF) pass: lead byte F0.
    accepts("{\"type\":\"sendInvite\",\"accountID\":\"\u{1F600}\"}".as_bytes());
    accepts("{\"type\":\"sendInvite\",\"accountID\":\"\u{3FFFF}\"}".as_bytes());
    // U+40000 (F1 80 80 80) and U+10FFFF (F4 8F BF BF): refused like VCMI.
    refuses("{\"type\":\"sendInvite\",\"accountID\":\"\u{40000}\"}".as_bytes());
    refuses("{\"type\":\"sendInvite\",\"accountID\":\"\u{10FFFF}\"}".as_bytes());
    // Malformed UTF-8: lone continuation, truncated sequence, overlong "/",
    // a UTF-16 surrogate, a bare 0xFF (the reference passes the overlong
    // and the surrogate; we refuse them, see value::check_encoding).
    for bad in [&b"\x80"[..], b"\xC3", b"\xC0\xAF", b"\xED\xA0\x80", b"\xFF"] {
        let payload = [
            br#"{"type":"sendInvite","accountID":""#.as_slice(),
            bad,
            br#""}"#,
        ]
        .concat();
        refuses(&payload);
    }
    // Invalid UTF-8 outside strings too.
    refuses(&[JOIN.as_bytes(), b" \xFF"].concat());
}

// ---- whitespace, comments, trailing bytes ----

#[test]
fn every_byte_up_to_0x20_is_whitespace_outside_strings() {
    for ws in 0u8..=0x20 {
        let payload = format!("{c}{{{c}\"type\"{c}:{c}\"x-test\"{c}}}{c}", c = ws as char);
        accepts(payload.as_bytes());
    }
    // 0x21 is not, and neither is 0x7F.
    refuses(b"!{\"type\":\"x-test\"}");
    refuses(b"\x7F{\"type\":\"x-test\"}");
}

#[test]
fn comments_are_refused() {
    refuses(&unknown("\"a\":1 // note\n"));
    refuses(&unknown("\"a\":1 /* note */"));
    refuses(&[JOIN.as_bytes(), b"//"].concat());
    refuses(&[JOIN.as_bytes(), b"/"].concat());
}

#[test]
fn anything_but_whitespace_after_the_value_is_refused() {
    accepts(&[JOIN.as_bytes(), b" \t\r\n\0"].concat());
    refuses(&[JOIN.as_bytes(), b"x"].concat());
    refuses(&[JOIN.as_bytes(), JOIN.as_bytes()].concat());
    refuses(&[JOIN.as_bytes(), b"}"].concat());
}

#[test]
fn empty_or_blank_payloads_are_refused() {
    refuses(b"");
    refuses(b"   ");
    refuses(b"\xEF\xBB\xBF");
}

// ---- JSON5-only syntax ----

#[test]
fn json5_syntax_is_refused() {
    refuses(b"{'type':'x-test'}");
    refuses(b"{\"type\":'x-test'}");
    refuses(b"{type:\"x-test\"}");
    refuses(&unknown("\"a\":+1"));
    refuses(&unknown("\"a\":[1,]"));
    refuses(&[&JOIN.as_bytes()[..JOIN.len() - 1], b",}"].concat());
    refuses(&unknown("\"a\":[,1]"));
    refuses(&unknown("\"a\":{,}"));
    refuses(&unknown("\"a\":Infinity"));
    refuses(&unknown("\"a\":0x10"));
}

#[test]
fn missing_commas_and_colons_are_refused() {
    refuses(&unknown("\"a\":[1 2]"));
    refuses(&unknown("\"a\":1 \"b\":2"));
    refuses(&unknown("\"a\" 1"));
    refuses(b"{\"type\":\"x-test\"");
    refuses(b"{\"type\":\"x-test\",");
}

// ---- numbers ----

#[test]
fn numbers_follow_vcmis_grammar() {
    assert_eq!(read("7"), Ok(Value::Integer(7)));
    assert_eq!(read("-7"), Ok(Value::Integer(-7)));
    assert_eq!(read("007"), Ok(Value::Integer(7)), "leading zeros pass");
    assert_eq!(read("1.5"), Ok(Value::Float(1.5)));
    assert_eq!(read("-1.5"), Ok(Value::Float(-1.5)));
    assert_eq!(
        read(".5"),
        Ok(Value::Float(0.5)),
        "a leading '.' passes in VCMI's JSON mode"
    );
    assert_eq!(read("-.5"), Ok(Value::Float(-0.5)));
    assert_eq!(read("1e2"), Ok(Value::Float(100.0)));
    assert_eq!(read("1e+2"), Ok(Value::Float(100.0)));
    assert_eq!(read("1e-2"), Ok(Value::Float(1.0 * 10f64.powf(-2.0))));
    assert_eq!(read("2.5e1"), Ok(Value::Float(25.0)));
    for bad in [
        "+1", "-", "-x", "1.", "1.e5", ".", ".e1", "1e", "1e+", "1E5", "--1", "1.2.3", "0x1",
    ] {
        assert!(read(bad).is_err(), "{bad} must be refused");
    }
    // Integer part wraps like the reference's signed 64-bit accumulator.
    assert_eq!(read("9223372036854775807"), Ok(Value::Integer(i64::MAX)));
    assert_eq!(read("9223372036854775808"), Ok(Value::Integer(i64::MIN)));
    assert_eq!(read("18446744073709551617"), Ok(Value::Integer(1)));
    // 0 x inf.
    assert!(matches!(read("0e999"), Ok(Value::Float(f)) if f.is_nan()));
}

#[test]
fn literals_must_be_whole_words() {
    assert_eq!(read("null"), Ok(Value::Null));
    assert_eq!(read("true"), Ok(Value::Bool(true)));
    assert_eq!(read("false"), Ok(Value::Bool(false)));
    for bad in ["nul", "nullx", "null1", "True", "fals", "none"] {
        assert!(read(bad).is_err(), "{bad} must be refused");
    }
}

// ---- strings ----

#[test]
fn the_eight_escapes_pass_and_nothing_else() {
    assert_eq!(
        read(r#""\"\\\/\b\f\n\r\t""#),
        Ok(Value::String("\"\\/\u{8}\u{c}\n\r\t".into()))
    );
    for bad in [
        r#""\u0041""#,
        r#""\a""#,
        r#""\'""#,
        r#""\x41""#,
        r#""\0""#,
        "\"\\\n\"",
        "\"\\",
    ] {
        assert!(read(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn raw_control_bytes_in_strings_are_refused_but_0x7f_and_up_pass() {
    for raw in 0u8..0x20 {
        let text = [b"\"a".as_slice(), &[raw], b"b\""].concat();
        assert!(
            value::read(&text, value::LOBBY_MESSAGE).is_err(),
            "raw {raw:#04x}"
        );
    }
    assert_eq!(read("\"a b\""), Ok(Value::String("a b".into())));
    assert_eq!(read("\"a\u{7f}b\""), Ok(Value::String("a\u{7f}b".into())));
    assert!(read("\"abc").is_err(), "unterminated");
}

// ---- keys ----

#[test]
fn duplicate_keys_are_refused() {
    refuses(&unknown("\"a\":1,\"a\":1"));
    accepts(&unknown("\"a\":1,\"A\":1"));
    refuses(br#"{"type":"joinGameRoom","gameRoomID":"r1","gameRoomID":"r2"}"#);
}

#[test]
fn override_flag_is_stripped_and_other_flags_are_refused() {
    assert_eq!(
        accepts(br#"{"type#override":"joinGameRoom","gameRoomID#override#override":"r1"}"#),
        Request::JoinGameRoom {
            game_room_id: "r1".into()
        }
    );
    // Stripping happens before the duplicate check.
    refuses(br#"{"type":"joinGameRoom","gameRoomID":"r1","gameRoomID#override":"r2"}"#);
    refuses(&unknown("\"a#other\":1"));
    refuses(&unknown("\"a#\":1"));
    refuses(&unknown("\"a#override#x\":1"));
    refuses(&unknown("\"a#Override\":1"));
    // "#override" alone is the empty key.
    accepts(&unknown("\"#override\":1"));
    refuses(&unknown("\"#override\":1,\"\":2"));
}

// ---- nesting depth ----

#[test]
fn five_nested_containers_pass_and_six_are_refused() {
    // Root object = level 1; the reference checks currentDepth > 4 before
    // entering, so a container with 5 enclosing ones is the first refused.
    accepts(&unknown("\"a\":[[[[]]]]")); // 1 + 4 = 5 levels
    refuses(&unknown("\"a\":[[[[[]]]]]")); // 6 levels
    accepts(&unknown("\"a\":{\"b\":{\"c\":{\"d\":{}}}}"));
    refuses(&unknown("\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{}}}}}"));
    // Empty or not: the check runs before the contents are read.
    refuses(&unknown("\"a\":[[[[[1]]]]]"));
    // Deep nesting far beyond the limit costs one early refusal, no stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    refuses(deep.as_bytes());
}

// ---- message type ----

#[test]
fn type_must_be_a_non_empty_string() {
    refuses(b"{}");
    refuses(b"{\"type\":\"\"}");
    refuses(b"{\"type\":null}");
    refuses(b"{\"type\":1}");
    refuses(b"{\"type\":[\"joinGameRoom\"]}");
    refuses(b"[{\"type\":\"x-test\"}]");
    refuses(b"\"x-test\"");
    assert_eq!(
        accepts(b"{\"type\":\"x\"}"),
        Request::Unknown {
            type_name: "x".into()
        }
    );
}

#[test]
fn unknown_types_pass_with_any_members() {
    assert_eq!(
        accepts(&unknown("\"anything\":[1,{\"b\":null}],\"c\":-.5")),
        Request::Unknown {
            type_name: "x-test".into()
        }
    );
}

#[test]
fn a_different_case_of_a_known_type_fails_that_schemas_const() {
    refuses(br#"{"type":"JOINGAMEROOM","gameRoomID":"r1"}"#);
    refuses(br#"{"type":"joinGameRoom#","gameRoomID":"r1"}"#);
    // A pointer to nothing is the null schema: passes, and is unknown.
    assert_eq!(
        accepts(br#"{"type":"joinGameRoom#/nothing"}"#),
        Request::Unknown {
            type_name: "joinGameRoom#/nothing".into()
        }
    );
    refuses(br#"{"type":"joinGameRoom#/properties/type"}"#);
    // The reference throws on this pointer and the exception ends the
    // whole server (seen on the oracle); we just refuse the message.
    refuses(br#"{"type":"joinGameRoom#/required/x"}"#);
}

// ---- schema semantics ----

#[test]
fn additional_properties_are_refused() {
    refuses(br#"{"type":"joinGameRoom","gameRoomID":"r1","extra":1}"#);
    refuses(br#"{"type":"joinGameRoom","gameRoomID":"r1","extra":null}"#);
    refuses(br#"{"type":"gameStarted","x":1}"#);
    assert_eq!(accepts(br#"{"type":"gameStarted"}"#), Request::GameStarted);
}

#[test]
fn required_members_must_be_present_and_not_null() {
    refuses(br#"{"type":"joinGameRoom"}"#);
    refuses(br#"{"type":"joinGameRoom","gameRoomID":null}"#);
    accepts(br#"{"type":"joinGameRoom","gameRoomID":""}"#);
}

#[test]
fn member_types_are_checked_and_null_passes_optional_ones() {
    refuses(br#"{"type":"joinGameRoom","gameRoomID":1}"#);
    refuses(br#"{"type":"joinGameRoom","gameRoomID":true}"#);
    refuses(br#"{"type":"joinGameRoom","gameRoomID":["r1"]}"#);
    refuses(br#"{"type":"joinGameRoom","gameRoomID":{}}"#);
    let login = |rooms: &str| {
        format!(
            r#"{{"type":"clientLogin","accountID":"a","accountCookie":"c","language":"english","version":"1.7.5"{rooms}}}"#
        )
    };
    let Request::ClientLogin { language_rooms, .. } = accepts(login("").as_bytes()) else {
        panic!()
    };
    assert_eq!(language_rooms, None);
    let Request::ClientLogin { language_rooms, .. } =
        accepts(login(r#","languageRooms":null"#).as_bytes())
    else {
        panic!()
    };
    assert_eq!(language_rooms, None);
    let Request::ClientLogin { language_rooms, .. } =
        accepts(login(r#","languageRooms":["german",null]"#).as_bytes())
    else {
        panic!()
    };
    assert_eq!(
        language_rooms,
        Some(vec!["german".to_string(), String::new()])
    );
    refuses(login(r#","languageRooms":"german""#).as_bytes());
    refuses(login(r#","languageRooms":[1]"#).as_bytes());
}

#[test]
fn enums_are_enforced_exactly() {
    let chat = |channel: &str| {
        format!(
            r#"{{"type":"sendChatMessage","messageText":"hi","channelType":{channel},"channelName":"english"}}"#
        )
    };
    for (wire, channel) in [
        ("global", ChannelType::Global),
        ("match", ChannelType::Match),
        ("player", ChannelType::Player),
    ] {
        let Request::SendChatMessage { channel_type, .. } =
            accepts(chat(&format!("\"{wire}\"")).as_bytes())
        else {
            panic!()
        };
        assert_eq!(channel_type, channel);
    }
    for bad in ["\"Global\"", "\"lobby\"", "\"\"", "null", "1"] {
        refuses(chat(bad).as_bytes());
    }
    refuses(br#"{"type":"requestChatHistory","channelType":"room","channelName":"x"}"#);
}

fn activate(limit: &str) -> Result<Request, Invalid> {
    parse_request(
        format!(r#"{{"type":"activateGameRoom","hostAccountID":"h","roomType":"public"{limit}}}"#)
            .as_bytes(),
    )
}

fn limit_of(request: Result<Request, Invalid>) -> Option<i64> {
    match request {
        Ok(Request::ActivateGameRoom { player_limit, .. }) => player_limit,
        other => panic!("{other:?}"),
    }
}

#[test]
fn player_limit_is_a_number_from_1_to_8() {
    assert_eq!(limit_of(activate("")), None);
    assert_eq!(limit_of(activate(r#","playerLimit":null"#)), None);
    assert_eq!(limit_of(activate(r#","playerLimit":1"#)), Some(1));
    assert_eq!(limit_of(activate(r#","playerLimit":8"#)), Some(8));
    assert_eq!(limit_of(activate(r#","playerLimit":8.0"#)), Some(8));
    assert_eq!(
        limit_of(activate(r#","playerLimit":7.9"#)),
        Some(7),
        "floats truncate"
    );
    assert_eq!(limit_of(activate(r#","playerLimit":1.0"#)), Some(1));
    assert_eq!(limit_of(activate(r#","playerLimit":0.8e1"#)), Some(8));
    for bad in [
        "0", "9", "-1", "0.99", "8.01", "1e999", "-1e999", "\"4\"", "true", "[4]",
    ] {
        assert!(
            activate(&format!(r#","playerLimit":{bad}"#)).is_err(),
            "{bad}"
        );
    }
    // Wrapped integer part: 2^64 + 4 reads as 4.
    assert_eq!(
        limit_of(activate(r#","playerLimit":18446744073709551620"#)),
        Some(4)
    );
    // NaN passes minimum and maximum and ends up as limit 0, as the
    // reference does (checked against the oracle).
    assert_eq!(limit_of(activate(r#","playerLimit":0e999"#)), Some(0));
    // Also checked against the oracle: .5e1 -> 5, 004 -> 4, 4E0 refused.
    assert_eq!(limit_of(activate(r#","playerLimit":.5e1"#)), Some(5));
    assert_eq!(limit_of(activate(r#","playerLimit":004"#)), Some(4));
    assert!(activate(r#","playerLimit":4E0"#).is_err());
}

#[test]
fn room_type_enum() {
    assert!(matches!(
        parse_request(br#"{"type":"activateGameRoom","hostAccountID":"h","roomType":"private"}"#),
        Ok(Request::ActivateGameRoom {
            room_type: RoomType::Private,
            ..
        })
    ));
    refuses(br#"{"type":"activateGameRoom","hostAccountID":"h","roomType":"hidden"}"#);
    refuses(br#"{"type":"activateGameRoom","hostAccountID":"h"}"#);
}

fn server_login(mods: &str) -> Vec<u8> {
    format!(r#"{{"type":"serverLogin","gameRoomID":"g","accountID":"a","accountCookie":"c","version":"1.7.5"{mods}}}"#)
        .into_bytes()
}

fn mods_of(payload: &[u8]) -> Option<Vec<ModInfo>> {
    match accepts(payload) {
        Request::ServerLogin { mods, .. } => mods,
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_login_mods_null_absent_or_a_list() {
    assert_eq!(mods_of(&server_login("")), None);
    assert_eq!(mods_of(&server_login(r#","mods":null"#)), None);
    assert_eq!(mods_of(&server_login(r#","mods":[]"#)), Some(vec![]));
    let mods = mods_of(&server_login(
        r#","mods":[{"modId":"hota","name":"HotA","version":"1.7"},{"modId":"hota.sub","name":"S","parent":"hota","version":"1"}]"#,
    ))
    .unwrap();
    assert_eq!(
        mods,
        vec![
            ModInfo {
                mod_id: "hota".into(),
                name: "HotA".into(),
                parent: None,
                version: "1.7".into()
            },
            ModInfo {
                mod_id: "hota.sub".into(),
                name: "S".into(),
                parent: Some("hota".into()),
                version: "1".into()
            },
        ]
    );
    // A null item passes the item schema (null passes "type": "object").
    assert_eq!(
        mods_of(&server_login(r#","mods":[null]"#)),
        Some(vec![ModInfo {
            mod_id: String::new(),
            name: String::new(),
            parent: None,
            version: String::new()
        }])
    );
    refuses(&server_login(r#","mods":[{"modId":"m","version":"1"}]"#));
    refuses(&server_login(
        r#","mods":[{"modId":"m","name":"n","version":"1","x":1}]"#,
    ));
    refuses(&server_login(
        r#","mods":[{"modId":"m","name":"n","version":1}]"#,
    ));
    refuses(&server_login(
        r#","mods":[{"modId":"m","name":"n","version":"1","parent":2}]"#,
    ));
    refuses(&server_login(r#","mods":{}"#));
    refuses(&server_login(r#","mods":["m"]"#));
}

#[test]
fn every_client_and_server_request_type_parses() {
    let cases: [(&str, Request); 13] = [
        (
            r#"{"type":"clientRegister","displayName":"Alice","language":"english","version":"1.7.5"}"#,
            Request::ClientRegister {
                display_name: "Alice".into(),
                language: "english".into(),
                version: "1.7.5".into(),
            },
        ),
        (
            r#"{"type":"clientLogin","accountID":"a","accountCookie":"c","language":"german","version":"1.6.3"}"#,
            Request::ClientLogin {
                account_id: "a".into(),
                account_cookie: "c".into(),
                language: "german".into(),
                version: "1.6.3".into(),
                language_rooms: None,
            },
        ),
        (
            r#"{"type":"clientProxyLogin","accountID":"a","accountCookie":"c","gameRoomID":"g"}"#,
            Request::ClientProxyLogin {
                account_id: "a".into(),
                account_cookie: "c".into(),
                game_room_id: "g".into(),
            },
        ),
        (
            r#"{"type":"sendChatMessage","messageText":"hi","channelType":"player","channelName":"b"}"#,
            Request::SendChatMessage {
                message_text: "hi".into(),
                channel_type: ChannelType::Player,
                channel_name: "b".into(),
            },
        ),
        (
            r#"{"type":"requestChatHistory","channelType":"match","channelName":"g"}"#,
            Request::RequestChatHistory {
                channel_type: ChannelType::Match,
                channel_name: "g".into(),
            },
        ),
        (
            r#"{"type":"activateGameRoom","hostAccountID":"h","roomType":"public","playerLimit":4}"#,
            Request::ActivateGameRoom {
                host_account_id: "h".into(),
                room_type: RoomType::Public,
                player_limit: Some(4),
            },
        ),
        (
            r#"{"type":"joinGameRoom","gameRoomID":"g"}"#,
            Request::JoinGameRoom {
                game_room_id: "g".into(),
            },
        ),
        (
            r#"{"type":"sendInvite","accountID":"b"}"#,
            Request::SendInvite {
                account_id: "b".into(),
            },
        ),
        (
            r#"{"type":"serverLogin","gameRoomID":"g","accountID":"a","accountCookie":"c","version":"1.7.5","mods":null}"#,
            Request::ServerLogin {
                game_room_id: "g".into(),
                account_id: "a".into(),
                account_cookie: "c".into(),
                version: "1.7.5".into(),
                mods: None,
            },
        ),
        (
            r#"{"type":"serverProxyLogin","gameRoomID":"g","guestAccountID":"b","accountCookie":"c"}"#,
            Request::ServerProxyLogin {
                game_room_id: "g".into(),
                guest_account_id: "b".into(),
                account_cookie: "c".into(),
            },
        ),
        (
            r#"{"type":"changeRoomDescription","description":"Arrogance"}"#,
            Request::ChangeRoomDescription {
                description: "Arrogance".into(),
            },
        ),
        (r#"{"type":"gameStarted"}"#, Request::GameStarted),
        (
            r#"{"type":"leaveGameRoom","accountID":"b"}"#,
            Request::LeaveGameRoom {
                account_id: "b".into(),
            },
        ),
    ];
    for (payload, expected) in cases {
        let request = accepts(payload.as_bytes());
        assert_eq!(request.type_name(), expected.type_name());
        assert_eq!(request, expected);
    }
}

#[test]
fn a_lobby_to_client_type_is_validated_then_unknown() {
    let chat = r#"{"type":"chatMessage","messageText":"m","accountID":"a","displayName":"A","channelType":"global","channelName":"english"}"#;
    assert_eq!(
        accepts(chat.as_bytes()),
        Request::Unknown {
            type_name: "chatMessage".into()
        }
    );
    refuses(br#"{"type":"chatMessage","messageText":"m"}"#);
    refuses(br#"{"type":"operationFailed","reason":"x","extra":1}"#);
    assert!(matches!(
        parse_request(br#"{"type":"operationFailed","reason":"x"}"#),
        Ok(Request::Unknown { .. })
    ));
}

#[test]
fn message_text_keeps_escaped_and_raw_characters() {
    let Request::SendChatMessage { message_text, .. } = accepts(
        "{\"type\":\"sendChatMessage\",\"messageText\":\"a\\nb\\t{c}\u{7f} ż\",\"channelType\":\"global\",\"channelName\":\"polish\"}"
            .as_bytes(),
    ) else {
        panic!()
    };
    assert_eq!(message_text, "a\nb\t{c}\u{7f} ż");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_request(&bytes);
    }

    /// Random bytes spliced into a valid message: exercises the paths past
    /// the first byte far more than pure noise does.
    #[test]
    fn mutated_messages_never_panic(
        at in 0usize..120,
        insert in proptest::collection::vec(
            prop_oneof![Just(b'{'), Just(b'['), Just(b'"'), Just(b'\\'), Just(b'#'), Just(b','), Just(b'.'),
                        Just(b'e'), Just(b'-'), Just(b'0'), Just(0xF0u8), Just(0x80u8), any::<u8>()],
            0..12),
    ) {
        let base = br#"{"type":"serverLogin","gameRoomID":"g","accountID":"a","accountCookie":"c","version":"1","mods":[{"modId":"m","name":"n","version":"1"}]}"#;
        let at = at.min(base.len());
        let bytes = [&base[..at], insert.as_slice(), &base[at..]].concat();
        let _ = parse_request(&bytes);
    }
}

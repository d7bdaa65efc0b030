//! One test per acceptance rule, each with both sides of its boundary:
//! the JSON dialect in `json_rules`, types and schemas here.

mod json_rules;

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

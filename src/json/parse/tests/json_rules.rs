//! VCMI's strict JSON dialect as the lobby applies it (LOBBY-JSON.md §1.2),
//! through the whole `parse_request` pipeline where a message is needed.

use super::*;

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

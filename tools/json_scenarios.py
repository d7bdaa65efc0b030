"""The JSON-lobby conformance scenarios of the lobby side (issue 12), played by record_json_scenarios.py.

Rules that keep scenarios independent on one long-running oracle:
- every scenario uses its own account names (a short tag + a role);
- logins use languageRooms ["fence"] (a channel nobody can write to) unless a scenario tests the
  login histories; global chat uses a language no other scenario writes to, and `english` is never
  written to, so a default login always sees an empty english history;
- room ids are fresh UUIDs per run (`S.room()`).
"""

from record_json_scenarios import S, VERSION

BAD_ID = "00000000-0000-4000-8000-000000000000"
INVALID_CREDENTIALS = {"type": "operationFailed", "reason": "Invalid credentials"}


def reg_msg(name):
    return {"type": "clientRegister", "displayName": name, "language": "english", "version": VERSION}


def name_rules():
    s = S("register_name_rules",
          "clientRegister name rules: 4..20 ASCII alphanumerics; case-insensitive uniqueness. operationFailed "
          "never closes the connection; a registering connection stays unauthenticated and can log in next.",
          ["1.5.1", "1.6", "1.7"])
    s.connect("A")
    for bad in ["nr3", "nrTwentyOneCharsName1", "nr-abc", "nr abc", "nr_abc", "nr\u00e9abc", "", "nr4\u263a"]:
        s.send("A", reg_msg(bad))
        s.recv("A", "operationFailed")
    acc4, cookie4 = s.register("A", "nr4a", connect=False)
    s.register("A", "nrTwentyCharsName012", connect=False)
    s.register("A", "1234", connect=False)
    for dup in ["NR4A", "nr4a", "Nr4A"]:
        s.send("A", reg_msg(dup))
        s.recv("A", "operationFailed")
    s.login("A", acc4, cookie4)
    return s


def login_default():
    s = S("login_default_english",
          "clientLogin without languageRooms and language english: exactly clientLoginSuccess, chatHistory "
          "english, activeAccounts, activeGameRooms, matchesHistory.", ["1.5.2"])
    acc, cookie = s.register("A", "ldAlice")
    s.login("A", acc, cookie)
    s.sync("A")
    return s


def login_language_no_rooms():
    s = S("login_language_without_rooms",
          "clientLogin language czech, languageRooms absent: histories english then czech.", ["1.5.2"])
    acc, cookie = s.register("A", "lnAlice")
    s.login("A", acc, cookie, language="czech")
    return s


def login_rooms_empty():
    s = S("login_language_rooms_empty",
          "clientLogin language finnish, languageRooms []: treated like absent (english, finnish).", ["1.5.2"])
    acc, cookie = s.register("A", "leAlice")
    s.login("A", acc, cookie, language="finnish", rooms=[], histories=2)
    return s


def login_rooms_several():
    s = S("login_language_rooms_several",
          "clientLogin languageRooms [hungarian, italian, notALanguage, english]: one chatHistory per entry in the "
          "given order, names not validated; language is then ignored.", ["1.5.2"])
    acc, cookie = s.register("A", "lsAlice")
    s.login("A", acc, cookie, language="german", rooms=["hungarian", "italian", "notALanguage", "english"])
    return s


def login_failures():
    s = S("login_failures",
          "clientLogin unknown account -> Account not found, wrong cookie -> Authentication failure; the "
          "connection stays open and a correct login then succeeds on it.", ["1.5.2", "1.6"])
    acc, cookie = s.register("A", "lfAlice")
    s.send("A", {"type": "clientLogin", "accountID": BAD_ID, "accountCookie": BAD_ID, "language": "english",
                 "version": VERSION})
    s.recv("A", "operationFailed")
    s.send("A", {"type": "clientLogin", "accountID": acc, "accountCookie": BAD_ID, "language": "english",
                 "version": VERSION})
    s.recv("A", "operationFailed")
    s.send("A", {"type": "clientLogin", "accountID": acc, "accountCookie": acc, "language": "english",
                 "version": VERSION})
    s.recv("A", "operationFailed")
    s.login("A", acc, cookie, rooms=["fence"])
    return s


def chat_global():
    s = S("chat_global_languages",
          "Global chat on several languages reaches everyone logged in; unknown or wrongly-cased language -> "
          "Unknown language!; text empty after sanitising (control chars, braces, spaces) -> No printable "
          "characters in sent message!; requestChatHistory global; a later login gets the multi-language history.",
          ["1.5.8", "1.5.9", "1.7"])
    s.user("A", "cgAlice")
    s.user("B", "cgBob")
    s.sync("A")
    s.chat("A", "global", "polish", "hello polish")
    s.recv("A", "chatMessage")
    s.recv("B", "chatMessage")
    s.chat("B", "global", "portuguese", "ola")
    s.recv("B", "chatMessage")
    s.recv("A", "chatMessage")
    s.chat("A", "global", "polish", "second")
    s.recv("A", "chatMessage")
    s.recv("B", "chatMessage")
    for bad in ["klingon", "Polish", "", "fence"]:
        s.chat("A", "global", bad, "lost")
        s.recv("A", "operationFailed")
    for empty in ["", "   ", "{}", " { } ", "\t\n\r", "{\n}"]:
        s.chat("A", "global", "polish", empty)
        s.recv("A", "operationFailed")
    s.sync("B")
    s.history("A", "global", "polish")
    s.recv("A", "chatHistory")
    s.history("A", "global", "portuguese")
    s.recv("A", "chatHistory")
    s.history("A", "global", "klingon")
    s.recv("A", "chatHistory")
    acc, cookie = s.register("C", "cgCarol")
    s.login("C", acc, cookie, rooms=["polish", "portuguese", "fence"])
    s.sync("A", "B")
    return s


def chat_text():
    s = S("chat_text_escapes",
          "Chat text round trip: braces, newline, quote, backslash, the two characters backslash-n (the reference "
          "writes them unescaped, so clients read a newline: §1.2), backslash-u as text (written as an escaped "
          "backslash, never a \\u escape), \\/, non-ASCII, emoji, DEL. Raw text is stored and broadcast "
          "(§1.7: sanitising only decides emptiness).", ["1.2", "1.7"])
    s.user("A", "ctAlice")
    texts = ["a{b}c", "line1\nline2", "say \"hi\"", "back\\slash", "a\\nb", "tab\\t", "x\\u0041", "end\\",
             "\u00e9t\u00e9 \u0436 \u4e2d", "smile \U0001F600", "del\u007f", "{hi}", " padded "]
    for t in texts:
        s.chat("A", "global", "russian", t)
        s.recv("A", "chatMessage")
    s.send_text("A", '{"type":"sendChatMessage","channelType":"global","channelName":"russian",'
                     '"messageText":"slash\\/ok"}')
    s.recv("A", "chatMessage")
    s.history("A", "global", "russian")
    s.recv("A", "chatHistory")
    return s


def chat_utf8():
    s = S("chat_utf8_edges",
          "Chat text bytes at the edges of the reference's UTF-8 check (§1.7): lead bytes above 0xF0 (U+40000 and "
          "up) and a lone continuation byte are invalid input (no reply); U+3FFFF and U+10000 pass.",
          ["1.2", "1.7"])
    s.user("A", "cuAlice")
    def chat_bytes(raw, deliberate=None):
        s.send_hex("A", b'{"type":"sendChatMessage","channelType":"global","channelName":"turkish","messageText":"a'
                   + raw + b'"}', deliberate=deliberate)
    for raw in [b"\xf1\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\x80", b"\xff"]:
        chat_bytes(raw)
        s.sync("A")
    for raw in [b"\xf0\xbf\xbf\xbf", b"\xf0\x90\x80\x80"]:
        chat_bytes(raw)
        s.recv("A", "chatMessage")
    s.history("A", "global", "turkish")
    s.recv("A", "chatHistory")
    return s


def chat_utf8_lenient():
    s = S("chat_utf8_surrogate_overlong",
          "DELIBERATE DIFFERENCE (§1.7 UTF-8 check, §1.15): the reference accepts UTF-16 surrogates (ED A0 80) and "
          "overlong forms (C0 AF) in chat text and broadcasts them, i.e. sends invalid UTF-8 to every client. We "
          "reject them like any invalid UTF-8 (§1.2: no reply on a logged-in connection, nothing stored). The "
          "oracle is not sent these frames while recording; replaying against the oracle skips this file.",
          ["1.2", "1.7", "1.15"])
    s.user("A", "cvAlice")
    why = "§1.7: invalid UTF-8 (surrogates, overlong forms) is rejected, the reference broadcasts it."
    for raw in [b"\xed\xa0\x80", b"\xc0\xaf"]:
        s.send_hex("A", b'{"type":"sendChatMessage","channelType":"global","channelName":"ukrainian",'
                        b'"messageText":"a' + raw + b'"}', deliberate=why)
        s.sync("A")
    s.history("A", "global", "ukrainian")
    s.recv("A", "chatHistory")
    return s


def chat_player():
    s = S("chat_player_channel",
          "Player channel: to self (one copy), to another (sender gets channelName=receiver, receiver gets "
          "channelName=sender), to an unknown account -> Such player does not exists!; requestChatHistory player "
          "for the pair, for self, for an unknown account; an offline receiver's message is stored.",
          ["1.5.8", "1.5.9"])
    a, _ = s.user("A", "cpAlice")
    b, _ = s.user("B", "cpBob")
    s.sync("A")
    s.chat("A", "player", a, "note to self")
    s.recv("A", "chatMessage")
    s.chat("A", "player", b, "hi bob")
    s.recv("A", "chatMessage")
    s.recv("B", "chatMessage")
    s.chat("B", "player", a, "hi alice")
    s.recv("B", "chatMessage")
    s.recv("A", "chatMessage")
    s.chat("A", "player", BAD_ID, "nobody")
    s.recv("A", "operationFailed")
    s.history("A", "player", b)
    s.recv("A", "chatHistory")
    s.history("B", "player", a)
    s.recv("B", "chatHistory")
    s.history("A", "player", a)
    s.recv("A", "chatHistory")
    s.history("A", "player", BAD_ID)
    s.recv("A", "operationFailed")
    s.close("B")
    s.recv("A", "activeAccounts", "activeGameRooms")
    s.chat("A", "player", b, "are you there")
    s.recv("A", "chatMessage")
    s.sync("A")
    return s


def relogin():
    s = S("relogin_eviction",
          "A second clientLogin of the same account on a new connection closes the old connection without a "
          "message; records what follows (§1.9 quirk: the old connection's disconnect marks the account offline "
          "while the new session lives on).", ["1.5.2", "1.9"])
    s.user("O", "reObserver")
    acc, cookie = s.register("A", "reAlice")
    s.login("A", acc, cookie, rooms=["fence"])
    s.sync("O")
    s.connect("A2")
    s.login("A2", acc, cookie, rooms=["fence"])
    s.expect_closed("A")
    s.sync("O", "A2")
    s.chat("A2", "global", "spanish", "still here")
    s.recv("A2", "chatMessage")
    s.recv("O", "chatMessage")
    s.sync("O", "A2")
    return s


# Invalid inputs: (label, text) sent as one frame. All must be rejected by the strict parser or the
# schema (§1.2). bytes values are sent as raw payload bytes.
def invalid_inputs(acc="${acc1}", cookie="${cookie1}"):
    login = ('"accountID":"%s","accountCookie":"%s","language":"english","version":"1.7.5"' % (acc, cookie))
    return [
        ("malformed", '{"type":"clientRegister",'),
        ("not_json", "hello"),
        ("u_escape", '{"type":"clientRegister","displayName":"ab\\u0063d","language":"english","version":"1"}'),
        ("trailing_comma", '{"type":"clientLogin",%s,}' % login),
        ("depth5", '{"type":"clientLogin",%s,"x":{"a":{"b":{"c":1}}}}' % login),
        ("depth6", '{"type":"clientLogin",%s,"x":{"a":{"b":{"c":{"d":1}}}}}' % login),
        ("duplicate_key", '{"type":"clientLogin",%s,"language":"german"}' % login),
        ("unknown_type", '{"type":"frobnicate"}'),
        ("no_type", '{"displayName":"x"}'),
        ("type_not_string", '{"type":5}'),
        ("wrong_field_type", '{"type":"clientLogin","accountID":5,"accountCookie":"%s","language":"english",'
                             '"version":"1.7.5"}' % cookie),
        ("extra_field", '{"type":"clientLogin",%s,"extra":1}' % login),
        ("missing_required", '{"type":"clientLogin","accountID":"%s","language":"english","version":"1"}' % acc),
        ("null_required", '{"type":"clientLogin","accountID":"%s","accountCookie":null,"language":"english",'
                          '"version":"1"}' % acc),
        ("rooms_not_strings", '{"type":"clientLogin",%s,"languageRooms":[1]}' % login),
        ("comment", '{"type":"clientLogin",%s /* c */}' % login),
        ("single_quotes", "{'type':'clientLogin'}"),
        ("trailing_bytes", '{"type":"clientLogin",%s} x' % login),
        ("raw_newline_in_string", '{"type":"clientLogin",%s,"languageRooms":["a\nb"]}' % login),
        ("array_root", '["clientLogin"]'),
        ("invalid_utf8", b'{"type":"clientLogin",' + login.encode() + b',"languageRooms":["\xff"]}'),
        ("unknown_flag_key", '{"type#frob":"clientLogin",%s}' % login),
    ]


def starts_with_brace(text):
    """Whether a first frame is JSON by our classification (issue 12): after an optional BOM, the
    first byte that is not JSON whitespace is `{`."""
    data = text if isinstance(text, bytes) else text.encode()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.lstrip(b" \t\r\n").startswith(b"{")


def invalid_before_login():
    s = S("invalid_before_login",
          "Every invalid first message that starts with `{` on an unauthenticated connection: no reply, the "
          "connection is closed (§1.2, §1.3). Includes depth 5 and 6 (both rejected: depth 5 parses but no schema "
          "allows nesting, depth 6 fails the parser), and account-only requests before login. The last "
          "connections show that a BOM prefix, JSON whitespace around the object and a `type#override` key are "
          "accepted. First frames that do not start with `{`: first_frame_not_json.", ["1.2", "1.3"])
    acc, cookie = s.register("R", "ibAlice")
    s.close("R")
    for label, text in invalid_inputs():
        if not starts_with_brace(text):
            continue
        c = f"bad_{label}"
        s.connect(c)
        if isinstance(text, bytes):
            s.send_hex(c, text)
        else:
            s.send_text(c, text)
        s.expect_closed(c)
    for label, msg in [("chat_before_login", {"type": "sendChatMessage", "channelType": "global",
                                              "channelName": "english", "messageText": "x"}),
                       ("history_before_login", {"type": "requestChatHistory", "channelType": "global",
                                                 "channelName": "english"}),
                       ("game_started_before_login", {"type": "gameStarted"}),
                       ("success_type_from_client", {"type": "clientLoginSuccess", "accountCookie": "x",
                                                     "displayName": "y"})]:
        s.connect(label)
        s.send(label, msg)
        s.expect_closed(label)
    s.connect("bom")
    s.send_hex("bom", b"\xef\xbb\xbf" + b'{"type":"clientRegister","displayName":"ibBom","language":"english",'
                                        b'"version":"1.7.5"}')
    s.recv("bom", "accountCreated")
    s.connect("ws")
    s.send_text("ws", ' \n\t{"type":"clientLogin","accountID":"${acc1}","accountCookie":"${cookie1}",'
                      '"language":"english","version":"1.7.5","languageRooms":["fence"]}\r\n')
    s.recv("ws", "clientLoginSuccess", "chatHistory", "activeAccounts", "activeGameRooms", "matchesHistory")
    s.connect("override")
    s.send_text("override", '{"type#override":"clientRegister","displayName":"ibOverride","language":"english",'
                            '"version":"1.7.5"}')
    s.recv("override", "accountCreated")
    s.sync("ws")
    return s


def first_frame_not_json():
    s = S("first_frame_not_json",
          "The reference's answer to first frames that do not start with `{` (after a BOM and JSON whitespace): "
          "closed without a reply (also a first header above 64 MiB), except that it also skips control bytes "
          "<= 0x20 before the object (§1.2), so 01 1F 20 {...} is a valid clientRegister there. On our port "
          "such frames belong to the legacy protocol (issue 12 classification, LOBBY-JSON.md §6), which answers "
          "with its own error line: oracle only.",
          ["1.2", "6"])
    s.oracle_only = ("§6 / issue 12 classification: on vcmi-proxy's shared port a first frame whose first "
                     "non-whitespace byte is not `{` is a legacy launcher's")
    for label, text in invalid_inputs():
        if starts_with_brace(text):
            continue
        c = f"bad_{label}"
        s.connect(c)
        s.send_hex(c, text if isinstance(text, bytes) else text.encode())
        s.expect_closed(c)
    s.connect("binary")
    s.send_hex("binary", bytes(range(16)))
    s.expect_closed("binary")
    s.connect("huge_header")
    s.send_raw("huge_header", (64 * 1024 * 1024 + 1).to_bytes(4, "little"))
    s.expect_closed("huge_header")
    s.connect("ctl_del")
    s.send_hex("ctl_del", b"\x01\x1f\x7f" + b'{"type":"clientRegister","displayName":"ffCtlDel",'
                                            b'"language":"english","version":"1.7.5"}')
    s.expect_closed("ctl_del")
    s.connect("ctl")
    s.send_hex("ctl", b"\x01\x1f " + b'{"type":"clientRegister","displayName":"ffCtl","language":"english",'
                                     b'"version":"1.7.5"}')
    s.recv("ctl", "accountCreated")
    return s


def invalid_after_login():
    s = S("invalid_after_login",
          "Every invalid message on a logged-in account connection is ignored: no reply, the connection stays "
          "(the fence request after each proves nothing came in between). Also ignored: a second clientLogin, "
          "clientRegister, serverLogin and room-connection messages on an account connection.", ["1.2", "1.3"])
    s.user("A", "iaAlice")
    for label, text in invalid_inputs():
        if isinstance(text, bytes):
            s.send_hex("A", text)
        else:
            s.send_text("A", text)
        s.sync("A")
    s.send_hex("A", bytes(range(16)))
    s.sync("A")
    s.send("A", {"type": "clientLogin", "accountID": "$acc1", "accountCookie": "$cookie1", "language": "english",
                 "version": VERSION})
    s.sync("A")
    s.send("A", reg_msg("iaOther"))
    s.sync("A")
    s.send("A", {"type": "serverLogin", "gameRoomID": s.room(), "accountID": "$acc1", "accountCookie": "$cookie1",
                 "version": VERSION, "mods": None})
    s.sync("A")
    s.send("A", {"type": "gameStarted"})
    s.sync("A")
    s.send("A", {"type": "changeRoomDescription", "description": "x"})
    s.sync("A")
    s.send("A", {"type": "sendChatMessage", "channelType": "nowhere", "channelName": "english",
                 "messageText": "x"})
    s.sync("A")
    s.send("A", {"type": "activateGameRoom", "hostAccountID": "$acc1", "roomType": "public", "playerLimit": 9})
    s.sync("A")
    s.send("A", {"type": "activateGameRoom", "hostAccountID": "$acc1", "roomType": "public", "playerLimit": 0})
    s.sync("A")
    s.send("A", {"type": "activateGameRoom", "hostAccountID": "$acc1", "roomType": "secret", "playerLimit": 2})
    s.sync("A")
    s.send_raw("A", b"\x00\x00\x00\x00" * 3)
    s.sync("A")
    # Accepted after login too: a BOM prefix, whitespace around the object, `type#override`.
    s.send_hex("A", b"\xef\xbb\xbf" + b'{"type":"requestChatHistory","channelType":"global","channelName":"bom"}')
    s.recv("A", "chatHistory")
    s.send_text("A", ' {"type#override":"requestChatHistory","channelType":"global","channelName":"ovr"}\n')
    s.recv("A", "chatHistory")
    s.send("A", {"type": "sendChatMessage", "channelType": "match", "channelName": BAD_ID, "messageText": "x"})
    s.recv("A", "operationFailed")
    s.history("A", "match", BAD_ID)
    s.recv("A", "operationFailed")
    return s


def heartbeats():
    s = S("heartbeats_before_first_message",
          "Empty frames before the first JSON frame leave the connection unclassified; between messages they are "
          "swallowed (§1.1).", ["1.1"])
    s.connect("A")
    s.send_raw("A", b"\x00\x00\x00\x00" * 4)
    acc, cookie = s.register("A", "hbAlice", connect=False)
    s.send_raw("A", b"\x00\x00\x00\x00")
    s.login("A", acc, cookie, rooms=["fence"])
    s.send_raw("A", b"\x00\x00\x00\x00")
    s.sync("A")
    return s


def disconnect_broadcasts():
    s = S("disconnect_broadcasts",
          "§1.11: every close of a JSON connection (registered but not logged in, closed for an invalid first "
          "message, a logged-in account) sends activeAccounts then activeGameRooms to everyone logged in. A "
          "connection that never sent a frame: disconnect_broadcast_unclassified.",
          ["1.11"])
    s.user("O", "dbObserver")
    s.register("R", "dbRegistered")
    s.close("R")
    s.recv("O", "activeAccounts", "activeGameRooms")
    s.connect("bad")
    s.send_text("bad", '{"type":"nonsense"}')
    s.expect_closed("bad")
    s.recv("O", "activeAccounts", "activeGameRooms")
    s.user("L", "dbLogged")
    s.recv("O", "activeAccounts")
    s.close("L")
    s.recv("O", "activeAccounts", "activeGameRooms")
    s.sync("O")
    return s


def oversized_frames():
    s = S("oversized_frame_header",
          "A frame header announcing more than 64 MiB drops the connection without a reply, on a JSON connection "
          "before login (after a clientRegister) and after (§1.1); everyone logged in gets the disconnect "
          "broadcasts. As a connection's very first frame: first_frame_not_json. 64 MiB itself is allowed (not "
          "tested: our lobby limit is smaller on purpose, issue 12 --max-frame-json).", ["1.1", "1.11"])
    s.user("O", "ofObserver")
    s.register("U", "ofRegistered")
    s.send_raw("U", (64 * 1024 * 1024 + 1).to_bytes(4, "little"))
    s.expect_closed("U")
    s.recv("O", "activeAccounts", "activeGameRooms")
    s.user("A", "ofAlice")
    s.recv("O", "activeAccounts")
    s.send_raw("A", (0xFFFFFFFF).to_bytes(4, "little"))
    s.expect_closed("A")
    s.recv("O", "activeAccounts", "activeGameRooms")
    return s


def disconnect_unclassified():
    s = S("disconnect_broadcast_unclassified",
          "§1.11: the reference broadcasts activeAccounts and activeGameRooms to everyone even when a connection "
          "that never sent a frame closes (a port scanner), or one that sent only heartbeats. On our shared port "
          "such a connection is not classified yet (issue 12): whether it counts as a JSON peer here is a "
          "decision for the JSON front-end (if not, mark this transcript oracle_only).", ["1.11", "6"])
    s.user("O", "duObserver")
    s.connect("bare")
    s.close("bare")
    s.recv("O", "activeAccounts", "activeGameRooms")
    s.connect("hb")
    s.send_raw("hb", b"\x00\x00\x00\x00")
    s.close("hb")
    s.recv("O", "activeAccounts", "activeGameRooms")
    return s


def lobby_scenarios():
    return [name_rules(), login_default(), login_language_no_rooms(), login_rooms_empty(), login_rooms_several(),
            login_failures(), oversized_frames(), chat_global(), chat_text(), chat_utf8(), chat_utf8_lenient(),
            chat_player(), relogin(), invalid_before_login(), first_frame_not_json(), invalid_after_login(),
            heartbeats(), disconnect_broadcasts(), disconnect_unclassified()]

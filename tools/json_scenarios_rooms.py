"""The JSON-lobby conformance scenarios of match servers, rooms, invites and the proxy relay (issue 13),
played by record_json_scenarios.py. Same independence rules as json_scenarios.py."""

from json_scenarios import BAD_ID, INVALID_CREDENTIALS
from record_json_scenarios import S, VERSION


def host_with_room(s, tag, room_type="public", limit=2, mods=None, with_mods=True, observers=()):
    """Host H logged in, match server S logged in for room, room activated. Returns (room, host acc, cookie)."""
    room = s.room()
    h, hc = s.user("H", tag + "Host")
    for o in observers:
        s.recv(o, "activeAccounts")
    s.server_login("S", room, h, hc, mods=mods, with_mods=with_mods)
    msg = {"type": "activateGameRoom", "hostAccountID": h, "roomType": room_type}
    if limit is not None:
        msg["playerLimit"] = limit
    s.send("H", msg)
    s.recv("H", "activeGameRooms", "joinRoomSuccess")
    for o in observers:
        s.recv(o, "activeGameRooms")
    return room, h, hc


def server_login():
    s = S("server_login",
          "serverLogin: valid with mods null, with a mods list, without mods; invalid cookie and unknown account -> "
          "Invalid credentials (connection stays open); no broadcast at HEAD (observer sees nothing). An idle "
          "room is not listed; activating shows the mods (HEAD bugs: name \"\", parent from the id's suffix).",
          ["1.5.3", "1.12"])
    s.user("O", "slObserver")
    h, hc = s.user("H", "slHost")
    s.sync("O")
    r1, r2, r3 = s.room(), s.room(), s.room()
    s.server_login("S1", r1, h, hc, mods=None)
    mods = [{"modId": "hota", "name": "Horn of the Abyss", "version": "1.7.0"},
            {"modId": "hota.sub", "name": "Sub", "parent": "hota", "version": "1.0"}]
    s.server_login("S2", r2, h, hc, mods=mods)
    s.server_login("S3", r3, h, hc, with_mods=False)
    s.connect("bad")
    s.send("bad", {"type": "serverLogin", "gameRoomID": s.room(), "accountID": h, "accountCookie": BAD_ID,
                   "version": VERSION, "mods": None})
    s.recv("bad", "operationFailed")
    s.send("bad", {"type": "serverLogin", "gameRoomID": s.room(), "accountID": BAD_ID, "accountCookie": hc,
                   "version": VERSION, "mods": None})
    s.recv("bad", "operationFailed")
    s.sync("O", "H")
    s.close("S1")
    s.close("S3")
    s.recv("O", "activeAccounts", "activeGameRooms", "activeAccounts", "activeGameRooms")
    s.sync("H")
    s.send("H", {"type": "activateGameRoom", "hostAccountID": h, "roomType": "public", "playerLimit": 3})
    s.recv("H", "activeGameRooms", "joinRoomSuccess")
    s.recv("O", "activeGameRooms")
    s.sync("O", "H")
    return s


def activate():
    s = S("activate_game_room",
          "activateGameRoom public (limit 3), private, playerLimit absent (-> 0, permanently full); again while in "
          "an active room -> Player already in the room!; no idle room for hostAccountID -> Failed to find idle "
          "server to join!; hostAccountID of another account's idle room is accepted (§1.15 quirk).",
          ["1.5.4", "1.15"])
    s.user("O", "acObserver")
    room, h, hc = host_with_room(s, "acPub", "public", 3, observers=["O"])
    s.send("H", {"type": "activateGameRoom", "hostAccountID": h, "roomType": "private", "playerLimit": 2})
    s.recv("H", "operationFailed")
    s.user("P", "acPriv")
    s.recv("O", "activeAccounts")
    s.recv("H", "activeAccounts")
    p = "$acc3"
    s.send("P", {"type": "activateGameRoom", "hostAccountID": p, "roomType": "private", "playerLimit": 2})
    s.recv("P", "operationFailed")
    r2 = s.room()
    s.server_login("SP", r2, p, "$cookie3")
    s.send("P", {"type": "activateGameRoom", "hostAccountID": p, "roomType": "private", "playerLimit": 2})
    s.recv("P", "activeGameRooms", "joinRoomSuccess")
    s.recv("O", "activeGameRooms")
    s.recv("H", "activeGameRooms")
    s.user("N", "acNoLimit")
    s.sync("O", "H", "P")
    r3 = s.room()
    s.server_login("SN", r3, "$acc4", "$cookie4")
    s.send("N", {"type": "activateGameRoom", "hostAccountID": "$acc4", "roomType": "public"})
    s.recv("N", "activeGameRooms", "joinRoomSuccess")
    s.sync("O", "H", "P", "N")
    # Q activates the idle room of another host (Z) by naming Z's account.
    s.user("Z", "acOwner")
    s.user("Q", "acThief")
    s.sync("O")
    r4 = s.room()
    s.server_login("SZ", r4, "$acc5", "$cookie5")
    s.send("Q", {"type": "activateGameRoom", "hostAccountID": "$acc5", "roomType": "public", "playerLimit": 4})
    s.recv("Q", "activeGameRooms", "joinRoomSuccess")
    s.sync("O", "H", "P", "N", "Z", "Q")
    return s


def join_checks():
    s = S("join_game_room_checks",
          "joinGameRoom checks in order: already in an active room, no connected room, room not accepting (idle), "
          "private without invite, full; earlier checks win when several apply. Success: accountJoinsRoom to the "
          "match server, activeGameRooms to everyone, no reply to the joiner.", ["1.5.5"])
    room, h, hc = host_with_room(s, "jcPub", "public", 2)
    s.user("G", "jcGuest")
    s.recv("H", "activeAccounts")
    s.send("H", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("H", "operationFailed")
    s.send("G", {"type": "joinGameRoom", "gameRoomID": BAD_ID})
    s.recv("G", "operationFailed")
    # idle room of account I
    s.user("I", "jcIdle")
    s.sync("H", "G")
    idle = s.room()
    s.server_login("SI", idle, "$acc3", "$cookie3")
    s.send("G", {"type": "joinGameRoom", "gameRoomID": idle})
    s.recv("G", "operationFailed")
    # private room of account V, limit 1 (full and private)
    s.user("V", "jcPrivate")
    s.sync("H", "G", "I")
    priv = s.room()
    s.server_login("SV", priv, "$acc4", "$cookie4")
    s.send("V", {"type": "activateGameRoom", "hostAccountID": "$acc4", "roomType": "private", "playerLimit": 1})
    s.recv("V", "activeGameRooms", "joinRoomSuccess")
    s.sync("H", "G", "I")
    s.send("G", {"type": "joinGameRoom", "gameRoomID": priv})
    s.recv("G", "operationFailed")
    # public room of account F with limit 1 (full)
    s.user("F", "jcFull")
    s.sync("H", "G", "I", "V")
    full = s.room()
    s.server_login("SF", full, "$acc5", "$cookie5")
    s.send("F", {"type": "activateGameRoom", "hostAccountID": "$acc5", "roomType": "public", "playerLimit": 1})
    s.recv("F", "activeGameRooms", "joinRoomSuccess")
    s.sync("H", "G", "I", "V")
    s.send("G", {"type": "joinGameRoom", "gameRoomID": full})
    s.recv("G", "operationFailed")
    # success
    s.send("G", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("S", "accountJoinsRoom")
    s.sync("G", "H", "I", "V", "F")
    # now G is in a room: every other failure is masked by "already in the room"
    for target in [BAD_ID, idle, priv, full, room]:
        s.send("G", {"type": "joinGameRoom", "gameRoomID": target})
        s.recv("G", "operationFailed")
    # the room is full now (limit 2)
    s.send("I", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("I", "operationFailed")
    s.sync("G", "H", "I")
    return s


def invites():
    s = S("send_invite_checks",
          "sendInvite checks in order: target offline or unknown, sender in no active room, target already in a "
          "room, already invited. Success: inviteReceived to the target, activeGameRooms (with invited) to "
          "everyone; the invitee joins the private room with joinGameRoom.", ["1.5.10", "1.5.5"])
    room, h, hc = host_with_room(s, "siPriv", "private", 3)
    s.user("T", "siTarget")
    s.user("X", "siOther")
    s.sync("H", "T")
    s.send("X", {"type": "sendInvite", "accountID": BAD_ID})
    s.recv("X", "operationFailed")
    s.send("X", {"type": "sendInvite", "accountID": "$acc2"})
    s.recv("X", "operationFailed")
    s.send("H", {"type": "sendInvite", "accountID": BAD_ID})
    s.recv("H", "operationFailed")
    s.send("H", {"type": "sendInvite", "accountID": h})
    s.recv("H", "operationFailed")
    s.send("H", {"type": "sendInvite", "accountID": "$acc2"})
    s.recv("T", "inviteReceived", "activeGameRooms")
    s.sync("H", "X")
    s.send("H", {"type": "sendInvite", "accountID": "$acc2"})
    s.recv("H", "operationFailed")
    s.send("T", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("S", "accountJoinsRoom")
    s.sync("T", "H", "X")
    s.send("H", {"type": "sendInvite", "accountID": "$acc2"})
    s.recv("H", "operationFailed")
    # an offline target (registered, not logged in)
    acc, _ = s.register("R", "siOffline")
    s.close("R")
    s.sync("H", "T", "X")
    s.send("H", {"type": "sendInvite", "accountID": acc})
    s.recv("H", "operationFailed")
    s.sync("H", "T", "X")
    return s


def room_lifecycle():
    s = S("room_description_start_leave",
          "changeRoomDescription -> updateGameRoom to everyone (also for an idle room); gameStarted -> status busy "
          "in activeGameRooms; leaveGameRoom for a participant -> activeGameRooms; leaveGameRoom for an account "
          "not in the room -> operationFailed to the match server; account-only messages on the room connection "
          "are ignored.", ["1.5.11", "1.5.12", "1.5.13"])
    s.user("O", "rlObserver")
    idle = s.room()
    s.user("I", "rlIdle")
    s.sync("O")
    s.server_login("SI", idle, "$acc2", "$cookie2")
    s.send("SI", {"type": "changeRoomDescription", "description": "Idle map"})
    s.recv("O", "updateGameRoom")
    s.recv("I", "updateGameRoom")
    s.sync("O", "I")
    room = s.room()
    s.user("H", "rlHost")
    s.sync("O", "I")
    s.server_login("S", room, "$acc3", "$cookie3")
    s.send("H", {"type": "activateGameRoom", "hostAccountID": "$acc3", "roomType": "public", "playerLimit": 4})
    s.recv("H", "activeGameRooms", "joinRoomSuccess")
    s.sync("O", "I")
    s.send("O", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("S", "accountJoinsRoom")
    s.sync("O", "H", "I")
    s.send("S", {"type": "changeRoomDescription", "description": "Map: \"Arrogance\" {XL} \u00e9"})
    s.recv("O", "updateGameRoom")
    s.recv("H", "updateGameRoom")
    s.recv("I", "updateGameRoom")
    s.send("S", {"type": "leaveGameRoom", "accountID": "$acc2"})
    s.recv("S", "operationFailed")
    s.sync("O", "H", "I")
    s.send("S", {"type": "sendChatMessage", "channelType": "global", "channelName": "swedish", "messageText": "x"})
    s.send("S", {"type": "leaveGameRoom", "accountID": "$acc1"})
    s.recv("O", "activeGameRooms")
    s.recv("H", "activeGameRooms")
    s.recv("I", "activeGameRooms")
    s.send("O", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("S", "accountJoinsRoom")
    s.sync("O", "H", "I")
    s.send("S", {"type": "gameStarted"})
    s.recv("O", "activeGameRooms")
    s.recv("H", "activeGameRooms")
    s.recv("I", "activeGameRooms")
    s.send("S", {"type": "changeRoomDescription", "description": "In game"})
    s.recv("O", "updateGameRoom")
    s.recv("H", "updateGameRoom")
    s.recv("I", "updateGameRoom")
    s.send("I", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("I", "operationFailed")
    s.send("S", {"type": "joinGameRoom", "gameRoomID": idle})
    s.send("S", {"type": "serverLogin", "gameRoomID": idle, "accountID": "$acc3", "accountCookie": "$cookie3",
                 "version": VERSION, "mods": None})
    s.send("S", {"type": "changeRoomDescription", "description": "after ignored"})
    s.recv("O", "updateGameRoom")
    s.sync("O", "H", "I")
    return s


def host_disconnect_open():
    s = S("host_disconnect_open_room",
          "The match server's control connection closes while the room is public: the room is cancelled, "
          "participants get no matchesHistory; everyone gets activeAccounts then activeGameRooms.", ["1.11"])
    room, h, hc = host_with_room(s, "hoOpen", "public", 3)
    s.user("G", "hoGuest")
    s.recv("H", "activeAccounts")
    s.send("G", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("S", "accountJoinsRoom")
    s.sync("G", "H")
    s.close("S")
    s.recv("H", "activeAccounts", "activeGameRooms")
    s.recv("G", "activeAccounts", "activeGameRooms")
    s.sync("H", "G")
    s.send("G", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("G", "operationFailed")
    return s


def host_disconnect_busy():
    s = S("host_disconnect_busy_room",
          "The control connection closes after gameStarted: the room is closed, each logged-in participant gets "
          "matchesHistory, then everyone activeAccounts and activeGameRooms. Match chat in a closed room is "
          "delivered to its logged-in participants; requestChatHistory match for participant and outsider.",
          ["1.11", "1.5.8", "1.5.9"])
    room, h, hc = host_with_room(s, "hbBusy", "public", 3)
    s.user("G", "hbGuest")
    s.recv("H", "activeAccounts")
    s.send("G", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("S", "accountJoinsRoom")
    s.user("X", "hbOutsider")
    s.sync("G", "H")
    s.chat("H", "match", room, "during lobby")
    s.chat("X", "match", room, "intruder")
    s.recv("X", "operationFailed")
    s.sync("H", "G")
    s.send("S", {"type": "gameStarted"})
    s.recv("H", "activeGameRooms")
    s.recv("G", "activeGameRooms")
    s.recv("X", "activeGameRooms")
    s.close("S")
    s.recv("H", "matchesHistory", "activeAccounts", "activeGameRooms")
    s.recv("G", "matchesHistory", "activeAccounts", "activeGameRooms")
    s.recv("X", "activeAccounts", "activeGameRooms")
    s.sync("H", "G", "X")
    s.chat("G", "match", room, "gg")
    s.recv("G", "chatMessage")
    s.recv("H", "chatMessage")
    s.history("H", "match", room)
    s.recv("H", "chatHistory")
    s.history("X", "match", room)
    s.recv("X", "operationFailed")
    s.sync("H", "G", "X")
    # A participant logging in later sees the match in matchesHistory.
    s.close("G")
    s.recv("H", "activeAccounts", "activeGameRooms")
    s.recv("X", "activeAccounts", "activeGameRooms")
    s.connect("G2")
    s.login("G2", "$acc2", "$cookie2", rooms=["fence"])
    s.sync("H", "X")
    return s


def guest_disconnect():
    s = S("guest_disconnect",
          "A guest's lobby connection closes while in a room: broadcasts to everyone; the guest stays a "
          "participant (§1.15 quirk), so after logging in again it gets Player already in the room!.",
          ["1.11", "1.15"])
    room, h, hc = host_with_room(s, "gdRoom", "public", 3)
    s.user("G", "gdGuest")
    s.recv("H", "activeAccounts")
    s.send("G", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("S", "accountJoinsRoom")
    s.sync("G", "H")
    s.close("G")
    s.recv("H", "activeAccounts", "activeGameRooms")
    s.connect("G2")
    s.login("G2", "$acc2", "$cookie2", rooms=["fence"])
    s.recv("H", "activeAccounts")
    s.send("G2", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("G2", "operationFailed")
    s.sync("G2", "H")
    return s


def proxy_setup(s, tag):
    room, h, hc = host_with_room(s, tag, "public", 2)
    s.user("G", tag + "Guest")
    s.recv("H", "activeAccounts")
    s.send("G", {"type": "joinGameRoom", "gameRoomID": room})
    s.recv("S", "accountJoinsRoom")
    s.sync("G", "H")
    s.connect("PS")
    s.send("PS", {"type": "serverProxyLogin", "gameRoomID": room, "guestAccountID": "$acc2",
                  "accountCookie": hc})
    s.recv("G", "joinRoomSuccess")
    s.connect("PC")
    s.send("PC", {"type": "clientProxyLogin", "accountID": "$acc2", "accountCookie": "$cookie2", "gameRoomID": room})
    return room


def proxy_relay():
    s = S("proxy_relay",
          "Proxy mode (§1.10): serverProxyLogin -> joinRoomSuccess{proxyMode:true} to the guest; clientProxyLogin "
          "followed at once by game frames; frames forwarded both ways unchanged (also JSON text, never parsed), "
          "an 8 MiB frame intact, heartbeats consumed per hop; closing the guest side closes the server side, and "
          "each leg's close broadcasts to everyone.", ["1.10", "1.11"])
    proxy_setup(s, "prRelay")
    s.send_game("PC", 1, 300)
    s.send_game("PC", 2, 1)
    s.expect_game("PS", 1, 300)
    s.expect_game("PS", 2, 1)
    s.send_game("PS", 3, 70000)
    s.expect_game("PC", 3, 70000)
    s.send_raw("PC", b"\x00\x00\x00\x00" * 50)
    s.send_game("PC", 4, 8 * 1024 * 1024)
    s.expect_game("PS", 4, 8 * 1024 * 1024)
    s.check_no_forwarded_heartbeats("PS")
    s.send_raw("PS", b"\x00\x00\x00\x00" * 50)
    s.send_game("PS", 5, 8 * 1024 * 1024)
    s.expect_game("PC", 5, 8 * 1024 * 1024)
    s.check_no_forwarded_heartbeats("PC")
    s.send_text("PC", '{"type":"clientLogin"}')
    s.expect_bytes("PS", b'{"type":"clientLogin"}')
    s.send_hex("PS", b"not json \xff")
    s.expect_bytes("PC", b"not json \xff")
    s.sync("H", "G")
    s.close("PC")
    s.expect_closed("PS")
    s.recv("H", "activeAccounts", "activeGameRooms", "activeAccounts", "activeGameRooms")
    s.recv("G", "activeAccounts", "activeGameRooms", "activeAccounts", "activeGameRooms")
    s.sync("H", "G")
    return s


def proxy_server_side_close():
    s = S("proxy_close_server_side",
          "Closing the match server's control connection leaves the proxy pair working; closing the match "
          "server's proxy connection then closes the guest's; frames sent before the close arrive.",
          ["1.10", "1.11"])
    proxy_setup(s, "pcClose")
    s.send_game("PC", 10, 1000)
    s.expect_game("PS", 10, 1000)
    # The control connection's close does not end the pair (§1.10 Teardown).
    s.sync("H", "G")
    s.close("S")
    s.recv("H", "activeAccounts", "activeGameRooms")
    s.recv("G", "activeAccounts", "activeGameRooms")
    s.send_game("PS", 11, 5000)
    s.expect_game("PC", 11, 5000)
    s.sync("H", "G")
    s.close("PS")
    s.expect_closed("PC")
    s.recv("H", "activeAccounts", "activeGameRooms", "activeAccounts", "activeGameRooms")
    s.sync("H")
    return s


def proxy_failures():
    s = S("proxy_login_failures",
          "clientProxyLogin with a bad cookie -> operationFailed Invalid credentials then closed; without an "
          "awaiting entry -> the same; serverProxyLogin for a guest not logged in -> Invalid credentials, not "
          "closed; a non-JSON frame on an unpaired serverProxyLogin connection closes it.", ["1.5.6", "1.5.7"])
    room = proxy_setup(s, "pfFail")
    s.send_game("PC", 20, 64)
    s.expect_game("PS", 20, 64)
    s.connect("BAD")
    s.send("BAD", {"type": "clientProxyLogin", "accountID": "$acc2", "accountCookie": BAD_ID, "gameRoomID": room})
    s.expect_closed("BAD", optional_before=[INVALID_CREDENTIALS])
    s.recv("H", "activeAccounts", "activeGameRooms")
    s.connect("NOENTRY")
    s.send("NOENTRY", {"type": "clientProxyLogin", "accountID": "$acc1", "accountCookie": "$cookie1",
                       "gameRoomID": room})
    s.expect_closed("NOENTRY", optional_before=[INVALID_CREDENTIALS])
    s.recv("H", "activeAccounts", "activeGameRooms")
    s.connect("OFF")
    s.send("OFF", {"type": "serverProxyLogin", "gameRoomID": room, "guestAccountID": BAD_ID,
                   "accountCookie": "$cookie1"})
    s.recv("OFF", "operationFailed")
    s.send("OFF", {"type": "serverProxyLogin", "gameRoomID": room, "guestAccountID": BAD_ID,
                   "accountCookie": "$cookie1"})
    s.recv("OFF", "operationFailed")
    s.sync("G")
    s.connect("PS2")
    s.send("PS2", {"type": "serverProxyLogin", "gameRoomID": room, "guestAccountID": "$acc2",
                   "accountCookie": "x"})
    s.recv("G", "joinRoomSuccess")
    s.send_hex("PS2", b"\x01\x02binary")
    s.expect_closed("PS2")
    s.recv("H", "activeAccounts", "activeGameRooms")
    s.sync("H", "G")
    return s


def room_scenarios():
    return [server_login(), activate(), join_checks(), invites(), room_lifecycle(), host_disconnect_open(),
            host_disconnect_busy(), guest_disconnect(), proxy_relay(), proxy_server_side_close(), proxy_failures()]

#!/usr/bin/env python3
"""Derives the transcripts of OUR behaviour for the room, match-server and proxy scenarios whose
deliberate differences from the reference are more than dropped broadcasts (decided in
src/json/lobby/mod.rs, "Decisions on reference quirks"; § numbers are LOBBY-JSON.md's):

    python3 tools/json_ours_rooms.py [NAME...]     (default: all six below)

Each derivation starts from the reference transcript NAME.json and changes exactly the steps a
deliberate difference touches, asserting that every changed step is what the reference recorded
(a re-recording that moved things fails here instead of deriving nonsense). Messages that are new
in our transcript are built from the reference's own messages (the same room object with the one
field the difference changes) or from the spec's sequences (§1.5), never from our server's output.
Extra steps at the end show each difference where the reference's steps alone would not (a room
with an absent playerLimit is joinable, the room another account tried to take is still its
owner's, ...). Every connection then syncs, as the recorder does at a scenario's end.

Writes NAME_ours.json (`differs_from_oracle`) and appends "; ours: NAME_ours" to NAME.json's
`oracle_only`. Review the diff of each pair (README "Our behaviour where it deliberately differs").
"""
import copy
import json
import os
import sys

DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "json_conformance")
VERSION = "1.7.5"
BAD_ID = "00000000-0000-4000-8000-000000000000"
FENCE = {"type": "requestChatHistory", "channelType": "global", "channelName": "fence"}
FENCE_REPLY = {"channelName": "fence", "channelType": "global", "messages": [], "type": "chatHistory"}
INVALID_CREDENTIALS = {"reason": "Invalid credentials", "type": "operationFailed"}
ALREADY_IN_ROOM = {"reason": "Player already in the room!", "type": "operationFailed"}

NO_IDLE_BROADCAST = ("§1.11 step 5: activeAccounts/activeGameRooms are broadcast on a disconnect only when "
                     "an account went offline or a room ended (the reference broadcasts on every close)")


class DeriveError(Exception):
    pass


def expect(conn, msg):
    return {"op": "expect", "conn": conn, "msg": msg}


def send(conn, obj):
    return {"op": "send", "conn": conn, "json": obj}


def fence(conn):
    return [send(conn, dict(FENCE)), expect(conn, dict(FENCE_REPLY))]


def room_list(rooms):
    return {"gameRooms": copy.deepcopy(rooms), "type": "activeGameRooms"}


def rooms_in(msg):
    """Every room object of an expected message (activeGameRooms, updateGameRoom, matchesHistory)."""
    if msg.get("type") == "activeGameRooms":
        return msg["gameRooms"]
    if msg.get("type") == "updateGameRoom":
        return [msg["room"]]
    if msg.get("type") == "matchesHistory":
        return msg["matchesHistory"]
    return []


class Derivation:
    """The reference's steps, edited by index (removals, replacements, insertions before or after a
    step); `steps()` lays them out. Indices always refer to the reference transcript."""

    def __init__(self, name):
        self.name = name
        self.path = os.path.join(DIR, name + ".json")
        self.t = json.load(open(self.path, encoding="utf-8"))
        self.ref = copy.deepcopy(self.t["steps"])
        self.removed = set()
        self.replaced = {}
        self.before = {}
        self.after = {}
        self.appended = []
        self.reasons = []
        self.extra_generate = []

    # -- finding reference steps ------------------------------------------------------------------

    def find(self, pred, start=0, what="step"):
        for i in range(start, len(self.ref)):
            if i not in self.removed and pred(self.ref[i]):
                return i
        raise DeriveError(f"{self.name}: no {what} from step {start}")

    def find_send(self, conn, start=0, **fields):
        def pred(s):
            j = s.get("json")
            return (s["op"] == "send" and s["conn"] == conn and isinstance(j, dict)
                    and all(j.get(k) == v for k, v in fields.items()))
        return self.find(pred, start, f"send on {conn} {fields}")

    def next_expect(self, conn, start, msg_type=None):
        """The next expect on `conn` from `start` (not already removed); its type must be `msg_type`."""
        i = self.find(lambda s: s["op"] == "expect" and s["conn"] == conn, start, f"expect on {conn}")
        got = self.ref[i]["msg"].get("type")
        if msg_type is not None and got != msg_type:
            raise DeriveError(f"{self.name} step {i}: expected a {msg_type} on {conn}, the reference has {got}")
        return i

    def conn_of_type(self, msg_type):
        """Connections that received a message of this type (e.g. clientLoginSuccess: accounts)."""
        return [s["conn"] for s in self.ref if s["op"] == "expect" and s["msg"].get("type") == msg_type]

    # -- edits ------------------------------------------------------------------------------------

    def remove(self, i, want=None):
        if want is not None and self.ref[i].get("msg") != want:
            raise DeriveError(f"{self.name} step {i}: {self.ref[i]} is not {want}")
        self.removed.add(i)

    def replace(self, i, steps):
        self.replaced[i] = steps

    def insert_before(self, i, steps):
        self.before.setdefault(i, []).extend(steps)

    def insert_after(self, i, steps):
        self.after.setdefault(i, []).extend(steps)

    def deliver(self, conn, start, msg):
        """`msg` reaches `conn` as a result of something done just before reference step `start`:
        it comes before whatever `conn` receives next in the reference (one stream per connection,
        in order), or at the end if nothing follows."""
        try:
            i = self.next_expect(conn, start)
        except DeriveError:
            self.appended.append(expect(conn, msg))
            return
        self.insert_before(i, [expect(conn, msg)])

    def edit_rooms(self, start, room_id, fn):
        """Applies `fn` to every object of room `room_id` in the reference's messages from `start`."""
        n = 0
        for s in self.ref[start:]:
            if s["op"] == "expect":
                for r in rooms_in(s["msg"]):
                    if r.get("gameRoomID") == room_id:
                        fn(r)
                        n += 1
        if n == 0:
            raise DeriveError(f"{self.name}: room {room_id} never listed after step {start}")
        return n

    def rooms_seen_by(self, conn, before):
        """The room list `conn` holds just before reference step `before`: its last activeGameRooms,
        updated by the updateGameRoom messages after it (as a client applies them)."""
        rooms = None
        for s in self.ref[:before]:
            if s["op"] != "expect" or s["conn"] != conn:
                continue
            m = s["msg"]
            if m.get("type") == "activeGameRooms":
                rooms = copy.deepcopy(m["gameRooms"])
            elif m.get("type") == "updateGameRoom" and rooms is not None:
                rooms = [copy.deepcopy(m["room"]) if r["gameRoomID"] == m["room"]["gameRoomID"] else r
                         for r in rooms]
        if rooms is None:
            raise DeriveError(f"{self.name}: {conn} has no room list before step {before}")
        return rooms

    def account_names(self):
        """Account variable -> display name, from the reference's clientLoginSuccess replies."""
        names = {}
        for i, s in enumerate(self.ref):
            if s["op"] == "send" and isinstance(s.get("json"), dict) and s["json"].get("type") == "clientLogin":
                reply = self.ref[self.next_expect(s["conn"], i + 1, "clientLoginSuccess")]["msg"]
                names[s["json"]["accountID"]] = reply["displayName"]
        return names

    def drop_idle_close_broadcasts(self):
        """§1.11 step 5 (as tools/json_ours_no_idle_broadcast.py, but per connection): the close of a
        connection that never logged in as an account or a room owes every logged-in connection one
        activeAccounts + activeGameRooms pair in the reference; the next such pair each of them
        receives is dropped. Run before any other edit."""
        logged, accounts, owed = set(), set(), {}
        dropped = 0
        for i, s in enumerate(self.ref):
            op, c = s["op"], s["conn"]
            if op in ("close", "expect_closed"):
                accounts.discard(c)
                if c not in logged:
                    for a in accounts:
                        owed[a] = owed.get(a, 0) + 1
                logged.discard(c)
            elif op == "expect":
                t = s["msg"].get("type")
                if t in ("clientLoginSuccess", "serverLoginSuccess"):
                    logged.add(c)
                    if t == "clientLoginSuccess":
                        accounts.add(c)
                elif t == "activeAccounts" and owed.get(c, 0) > 0 and i not in self.removed:
                    j = self.next_expect(c, i + 1, "activeGameRooms")
                    self.removed.update((i, j))
                    owed[c] -= 1
                    dropped += 1
        left = {c: n for c, n in owed.items() if n}
        if left:
            raise DeriveError(f"{self.name}: broadcast pairs owed but never recorded: {left}")
        if dropped:
            self.reasons.append(NO_IDLE_BROADCAST)
        return dropped

    # -- output -----------------------------------------------------------------------------------

    def steps(self):
        out = []
        for i, s in enumerate(self.ref):
            out += self.before.get(i, [])
            if i in self.replaced:
                out += self.replaced[i]
            elif i not in self.removed:
                out.append(s)
            out += self.after.get(i, [])
        return out + self.appended

    def sync_all(self):
        """As the recorder's end of scenario: a fence on every account connection still open."""
        open_accounts = []
        for s in self.steps():
            c = s["conn"]
            if s["op"] == "expect" and s["msg"].get("type") == "clientLoginSuccess" and c not in open_accounts:
                open_accounts.append(c)
            elif s["op"] in ("close", "expect_closed") and c in open_accounts:
                open_accounts.remove(c)
        for c in open_accounts:
            self.appended += fence(c)

    def write(self, extra_note):
        reason = "; ".join(self.reasons)
        ours = dict(self.t)
        ours.pop("oracle_only", None)
        ours["name"] = self.name + "_ours"
        ours["note"] = self.t["note"] + " OUR behaviour: " + extra_note
        ours["generate"] = self.t["generate"] + self.extra_generate
        ours["steps"] = self.steps()
        ours["differs_from_oracle"] = reason
        with open(os.path.join(DIR, self.name + "_ours.json"), "w", encoding="utf-8") as f:
            json.dump(ours, f, indent=1, ensure_ascii=False)
            f.write("\n")
        self.t["oracle_only"] = reason + "; ours: " + self.name + "_ours"
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump(self.t, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"{self.name}_ours: {len(self.ref)} reference steps -> {len(ours['steps'])}")


# -- the scenarios ----------------------------------------------------------------------------------

REJOIN = ("§1.15 (participants stay): a participant that is not the host and has no live proxy pair into "
          "its public/private room may send joinGameRoom for it again: the join is repeated "
          "(accountJoinsRoom to the match server, activeGameRooms to everyone, no second participant "
          "entry); with a live pair, or for any other room, \"Player already in the room!\" as in the "
          "reference")


def guest_disconnect():
    d = Derivation("guest_disconnect")
    d.reasons.append(REJOIN)
    join = d.find_send("G2", type="joinGameRoom", gameRoomID="$room1")
    refused = d.next_expect("G2", join + 1, "operationFailed")
    if d.ref[refused]["msg"] != ALREADY_IN_ROOM:
        raise DeriveError("guest_disconnect: the reference's re-join reply moved")
    rooms = d.rooms_seen_by("G2", join)  # unchanged by the re-join: no second participant entry
    d.replace(refused, [expect("S", {"accountID": "$acc2", "type": "accountJoinsRoom"})])
    for c in ("G2", "H"):
        d.deliver(c, refused + 1, room_list(rooms))
    # The match server opens the guest's proxy connection again (§1.10 steps 6-9); once the pair is
    # live, joinGameRoom for the room is refused as in the reference.
    d.appended += [
        {"op": "connect", "conn": "PS"},
        send("PS", {"type": "serverProxyLogin", "gameRoomID": "$room1", "guestAccountID": "$acc2",
                    "accountCookie": "$cookie1"}),
        expect("G2", {"gameRoomID": "$room1", "proxyMode": True, "type": "joinRoomSuccess"}),
        {"op": "connect", "conn": "PC"},
        send("PC", {"type": "clientProxyLogin", "accountID": "$acc2", "accountCookie": "$cookie2",
                    "gameRoomID": "$room1"}),
        {"op": "send_game", "conn": "PC", "seed": 40, "size": 100},
        {"op": "expect_game", "conn": "PS", "seed": 40, "size": 100},
        send("G2", {"type": "joinGameRoom", "gameRoomID": "$room1"}),
        expect("G2", dict(ALREADY_IN_ROOM)),
    ]
    d.sync_all()
    d.write("the reconnected guest's joinGameRoom repeats the join (the match server gets accountJoinsRoom "
            "again, everyone an unchanged activeGameRooms, no reply to the joiner; §1.15); extra steps: the match "
            "server's serverProxyLogin reaches the guest and pairs with its clientProxyLogin, after which "
            "joinGameRoom for the room gets \"Player already in the room!\" (live proxy pair).")


def join_game_room_checks():
    d = Derivation("join_game_room_checks")
    d.reasons.append(REJOIN)
    # The last joinGameRoom of the room G is in (after the four masked failures).
    masked = d.find_send("G", type="joinGameRoom", gameRoomID="$room4",
                         start=d.find_send("G", type="joinGameRoom", gameRoomID=BAD_ID,
                                           start=d.find_send("G", type="joinGameRoom", gameRoomID="$room1")))
    join = d.find_send("G", type="joinGameRoom", gameRoomID="$room1", start=masked)
    refused = d.next_expect("G", join + 1, "operationFailed")
    if d.ref[refused]["msg"] != ALREADY_IN_ROOM:
        raise DeriveError("join_game_room_checks: the reference's re-join reply moved")
    rooms = d.rooms_seen_by("G", join)
    d.replace(refused, [expect("S", {"accountID": "$acc2", "type": "accountJoinsRoom"})])
    for c in ("G", "H", "I", "V", "F"):
        d.deliver(c, refused + 1, room_list(rooms))
    d.write("G, a participant of room1 without a proxy pair, re-joins it: accountJoinsRoom to its match "
            "server and an unchanged activeGameRooms to everyone instead of \"Player already in the room!\" "
            "(§1.15); the room stays full for I (no second participant entry).")


def activate_game_room():
    d = Derivation("activate_game_room")
    d.reasons.append("§1.5 item 4 / §1.15: activateGameRoom takes an idle room of the sender's own account "
                     "only (hostAccountID naming another account: \"Failed to find idle server to join!\"), "
                     "and an absent playerLimit means 8 (the reference trusts hostAccountID and stores 0, a "
                     "room nobody can join)")
    names = d.account_names()
    # playerLimit absent -> 8 in every later object of that room.
    no_limit = d.find_send("N", type="activateGameRoom", hostAccountID="$acc4")
    if "playerLimit" in d.ref[no_limit]["json"]:
        raise DeriveError("activate_game_room: N's activateGameRoom has a playerLimit")

    def limit_8(r):
        if r["playerLimit"] != 0:
            raise DeriveError(f"activate_game_room: room3 listed with playerLimit {r['playerLimit']}")
        r["playerLimit"] = 8
    d.edit_rooms(no_limit, "$room3", limit_8)
    # Q names Z's account: refused; nothing is broadcast, room4 stays idle (unlisted).
    theft = d.find_send("Q", type="activateGameRoom", hostAccountID="$acc5")
    listed = d.next_expect("Q", theft + 1, "activeGameRooms")
    stolen = copy.deepcopy(next(r for r in d.ref[listed]["msg"]["gameRooms"] if r["gameRoomID"] == "$room4"))
    d.replace(listed, [expect("Q", {"reason": "Failed to find idle server to join!", "type": "operationFailed"})])
    d.remove(d.next_expect("Q", listed + 1, "joinRoomSuccess"))
    for c in ("O", "H", "P", "N", "Z"):
        # (earlier activeAccounts may still be unread on c: the first room list after the theft)
        i = d.find(lambda s: s["op"] == "expect" and s["conn"] == c and s["msg"]["type"] == "activeGameRooms",
                   theft + 1, f"activeGameRooms on {c}")
        if not any(r["gameRoomID"] == "$room4" for r in d.ref[i]["msg"]["gameRooms"]):
            raise DeriveError(f"activate_game_room step {i}: not the broadcast of room4's activation")
        d.remove(i)
    everyone = ("O", "H", "P", "N", "Z", "Q")
    rooms = d.rooms_seen_by("O", len(d.ref))
    rooms = [r for r in rooms if r["gameRoomID"] != "$room4"]
    # Extra 1: Z activates its own idle room4 (the same room object, Z as its only participant).
    own = copy.deepcopy(stolen)
    own["participants"] = [{"accountID": "$acc5", "displayName": names["$acc5"]}]
    rooms_z = rooms + [own]
    steps = [send("Z", {"type": "activateGameRoom", "hostAccountID": "$acc5", "roomType": "public",
                        "playerLimit": stolen["playerLimit"]}),
             expect("Z", room_list(rooms_z)),
             expect("Z", {"gameRoomID": "$room4", "proxyMode": False, "type": "joinRoomSuccess"})]
    # Extra 2: Q joins room3, whose playerLimit was absent (§1.5 item 5; the reference's 0 gives
    # "Room is already full!").
    rooms_q = copy.deepcopy(rooms_z)
    for r in rooms_q:
        if r["gameRoomID"] == "$room3":
            r["participants"].append({"accountID": "$acc6", "displayName": names["$acc6"]})
    steps += [send("Q", {"type": "joinGameRoom", "gameRoomID": "$room3"}),
              expect("SN", {"accountID": "$acc6", "type": "accountJoinsRoom"})]
    for c in everyone:
        steps.append(send(c, dict(FENCE)))
        if c != "Z":
            steps.append(expect(c, room_list(rooms_z)))
        steps += [expect(c, room_list(rooms_q)), expect(c, dict(FENCE_REPLY))]
    d.appended += steps
    d.sync_all()
    d.write("N's room (playerLimit absent) is listed with playerLimit 8; Q naming Z's account gets \"Failed to "
            "find idle server to join!\" and nothing is broadcast (§1.5 item 4, §1.15); extra steps: Z then "
            "activates its own room4, and Q joins N's room (the reference's limit 0 would refuse it as full).")


def server_login():
    d = Derivation("server_login")
    d.reasons.append("§1.4/§1.12: room mods keep the name the match server sent and parent = the mod ID "
                     "before its last dot (the reference writes \"\" and \".sub\" after reading the wrong "
                     "key and the wrong end of the ID)")
    names = d.account_names()

    def our_mods(sent):
        out = []
        for m in sent:
            mod = {"modId": m["modId"], "name": m["name"], "version": m["version"]}
            if "." in m["modId"]:
                mod["parent"] = m["modId"].rsplit(".", 1)[0]
                if m.get("parent", mod["parent"]) != mod["parent"]:
                    raise DeriveError(f"server_login: sent parent {m['parent']} is not {mod['parent']}")
            out.append(mod)
        return out

    login = d.find_send("S2", type="serverLogin")
    mods = our_mods(d.ref[login]["json"]["mods"])

    def fix(r):
        if len(r["mods"]) != len(mods):
            raise DeriveError("server_login: mods list length")
        r["mods"] = copy.deepcopy(mods)
    d.edit_rooms(login, "$room2", fix)
    # Extra: a submod of a submod, sent without `parent` (parent "wog.sub"; the reference: ".sub.deep").
    deep = [{"modId": "wog.sub.deep", "name": "Deep submod", "version": "2.0"}]
    d.extra_generate.append("room6")
    rooms = d.rooms_seen_by("O", len(d.ref))
    room6 = {"ageSeconds": "$int", "description": "", "gameRoomID": "$room6",
             "hostAccountDisplayName": names["$acc1"], "hostAccountID": "$acc1", "mods": our_mods(deep),
             "participants": [{"accountID": "$acc1", "displayName": names["$acc1"]}], "playerLimit": 2,
             "status": "private", "version": VERSION}
    rooms.append(room6)
    d.appended += [
        {"op": "connect", "conn": "S4"},
        send("S4", {"type": "serverLogin", "gameRoomID": "$room6", "accountID": "$acc1",
                    "accountCookie": "$cookie1", "version": VERSION, "mods": deep}),
        expect("S4", {"accountCookie": "$cookie1", "type": "serverLoginSuccess"}),
        send("O", {"type": "activateGameRoom", "hostAccountID": "$acc1", "roomType": "private", "playerLimit": 2}),
        expect("O", room_list(rooms)),
        expect("O", {"gameRoomID": "$room6", "proxyMode": False, "type": "joinRoomSuccess"}),
        send("H", dict(FENCE)),
        expect("H", room_list(rooms)),
        expect("H", dict(FENCE_REPLY)),
    ]
    d.sync_all()
    d.write("room2's mods carry the names sent and parent \"hota\" for hota.sub (§1.4/§1.12); extra steps: a "
            "room whose mod wog.sub.deep came without parent lists parent \"wog.sub\".")


def room_description_start_leave():
    d = Derivation("room_description_start_leave")
    d.reasons.append("§1.14/§1.15: an idle room's description change is sent to nobody (1.7.4+ clients would "
                     "list the idle room); activation lists it with that description")
    d.reasons.append("§1.5 item 13 / §1.11: leaveGameRoom for an account not in the room gets no reply (the "
                     "reference's operationFailed shuts the real vcmiserver down)")
    names = d.account_names()
    idle = d.find_send("SI", type="changeRoomDescription", description="Idle map")
    idle_room = None
    for c in ("O", "I"):
        i = d.next_expect(c, idle + 1, "updateGameRoom")
        idle_room = copy.deepcopy(d.ref[i]["msg"]["room"])
        if idle_room["status"] != "idle":
            raise DeriveError("room_description_start_leave: not the idle room's update")
        d.remove(i)
    leave = d.find_send("S", type="leaveGameRoom", accountID="$acc2")
    d.remove(d.next_expect("S", leave + 1, "operationFailed"),
             {"reason": "You are not in the room!", "type": "operationFailed"})
    # Extra: I activates its idle room; the list shows the description it never broadcast.
    rooms = d.rooms_seen_by("O", len(d.ref))
    room1 = idle_room
    room1.update(status="public", playerLimit=2,
                 participants=[{"accountID": "$acc2", "displayName": names["$acc2"]}])
    rooms.append(room1)
    d.appended += [
        send("I", {"type": "activateGameRoom", "hostAccountID": "$acc2", "roomType": "public", "playerLimit": 2}),
        expect("I", room_list(rooms)),
        expect("I", {"gameRoomID": "$room1", "proxyMode": False, "type": "joinRoomSuccess"}),
    ]
    for c in ("O", "H"):
        d.appended += [send(c, dict(FENCE)), expect(c, room_list(rooms)), expect(c, dict(FENCE_REPLY))]
    d.sync_all()
    d.write("the idle room's \"Idle map\" reaches nobody, and leaveGameRoom for rlIdle (not in the room) gets no "
            "reply; extra steps: rlIdle activates its room, listed with the description \"Idle map\".")


def proxy_login_failures():
    d = Derivation("proxy_login_failures")
    d.drop_idle_close_broadcasts()
    d.reasons.insert(0, "§1.5 item 6: serverProxyLogin needs a live room, a guest that is online and one of "
                        "its participants, and a cookie of the room's host, else \"Invalid credentials\" (the "
                        "reference checks only that the guest is online: cookie \"x\" is accepted)")
    names = d.account_names()
    ps2 = d.find_send("PS2", type="serverProxyLogin", accountCookie="x")
    d.remove(d.next_expect("G", ps2 + 1, "joinRoomSuccess"))
    # Extra: an online account that is not in the room (X), logged in before PS2 connects.
    connect_ps2 = d.find(lambda s: s["op"] == "connect" and s["conn"] == "PS2", what="connect PS2")
    rooms = d.rooms_seen_by("G", connect_ps2)
    accounts = [{"accountID": a, "displayName": n, "status": "In Lobby"} for a, n in names.items()]
    accounts.append({"accountID": "$acc3", "displayName": "pfFailOther", "status": "In Lobby"})
    online = {"accounts": accounts, "type": "activeAccounts"}
    register = [
        {"op": "connect", "conn": "X"},
        send("X", {"type": "clientRegister", "displayName": "pfFailOther", "language": "english", "version": VERSION}),
        expect("X", {"accountCookie": "$cookie3", "accountID": "$acc3", "type": "accountCreated"}),
        send("X", {"type": "clientLogin", "accountID": "$acc3", "accountCookie": "$cookie3", "language": "english",
                   "version": VERSION, "languageRooms": ["fence"]}),
        expect("X", {"accountCookie": "$cookie3", "displayName": "pfFailOther", "type": "clientLoginSuccess"}),
        expect("X", dict(FENCE_REPLY)),
        expect("X", copy.deepcopy(online)),
        expect("X", room_list(rooms)),
        expect("X", {"matchesHistory": [], "type": "matchesHistory"}),
    ]
    for c in ("H", "G"):
        register += [send(c, dict(FENCE)), expect(c, copy.deepcopy(online)), expect(c, dict(FENCE_REPLY))]
    d.insert_before(connect_ps2, register)
    # PS2: cookie "x" refused; so are the host's cookie for a room that is not live and for an online
    # account that is not a participant. Nobody else hears of them; the non-JSON frame then closes PS2.
    d.insert_after(ps2, [
        expect("PS2", dict(INVALID_CREDENTIALS)),
        send("PS2", {"type": "serverProxyLogin", "gameRoomID": BAD_ID, "guestAccountID": "$acc2",
                     "accountCookie": "$cookie1"}),
        expect("PS2", dict(INVALID_CREDENTIALS)),
        send("PS2", {"type": "serverProxyLogin", "gameRoomID": "$room1", "guestAccountID": "$acc3",
                     "accountCookie": "$cookie1"}),
        expect("PS2", dict(INVALID_CREDENTIALS)),
    ])
    d.sync_all()
    d.write("PS2's serverProxyLogin with cookie \"x\" gets \"Invalid credentials\" and the guest hears nothing "
            "(§1.5 item 6); closes of connections that never logged in broadcast nothing (§1.11 step 5); extra "
            "steps: the host's own cookie is refused too for a room that is not live and for an online account "
            "(pfFailOther) that is not a participant.")


DERIVATIONS = {f.__name__: f for f in (guest_disconnect, join_game_room_checks, activate_game_room, server_login,
                                       room_description_start_leave, proxy_login_failures)}

if __name__ == "__main__":
    for n in sys.argv[1:] or list(DERIVATIONS):
        try:
            DERIVATIONS[n]()
        except DeriveError as e:
            print(f"FAIL {e}", file=sys.stderr)
            sys.exit(1)

#!/usr/bin/env python3
"""Derives the transcript of OUR behaviour from an oracle transcript for one deliberate difference,
LOBBY-JSON.md §1.11 step 5 (decided in src/json/lobby/mod.rs): activeAccounts + activeGameRooms are
broadcast on a disconnect only when an account went offline or a room ended. The reference
broadcasts on every close, so after the close of a connection that never logged in as an account
(clientLogin) nor as a room (serverLogin) - a bare or heartbeat-only connection, a registered-only
one, a proxy leg, a refused proxy login - the expected broadcast pair is dropped here.

    python3 tools/json_ours_no_idle_broadcast.py NAME...   (in tests/json_conformance/)

Writes NAME_ours.json (`differs_from_oracle`) and marks NAME.json `oracle_only`. Review the diff:
only broadcast pairs may disappear."""
import json
import os
import sys

DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "json_conformance")
REASON = ("§1.11 step 5: activeAccounts/activeGameRooms are broadcast on a disconnect only when an "
          "account went offline or a room ended (the reference broadcasts on every close)")
BROADCASTS = ("activeAccounts", "activeGameRooms")


def derive(name):
    path = os.path.join(DIR, name + ".json")
    t = json.load(open(path, encoding="utf-8"))
    logged = set()   # conns that logged in as an account or a room
    steps = t["steps"]
    out = []
    dropping = False
    for st in steps:
        op, c = st["op"], st["conn"]
        if op == "send" and isinstance(st.get("json"), dict) and st["json"].get("type") in ("clientLogin", "serverLogin"):
            logged.add(c)
        if op in ("close", "expect_closed"):
            # a closed account/room connection broadcasts as in the reference
            dropping = c not in logged
            out.append(st)
            continue
        if dropping and op == "expect" and st["msg"].get("type") in BROADCASTS:
            continue
        fence = op == "send" and isinstance(st.get("json"), dict) and st["json"].get("type") == "requestChatHistory"
        if op != "expect" and not fence:
            dropping = False
        out.append(st)
    ours = dict(t)
    ours["name"] = name + "_ours"
    ours["note"] = t["note"] + " OUR behaviour: " + REASON + "."
    ours["differs_from_oracle"] = REASON
    ours.pop("oracle_only", None)
    ours["steps"] = out
    with open(os.path.join(DIR, name + "_ours.json"), "w", encoding="utf-8") as f:
        json.dump(ours, f, indent=1, ensure_ascii=False)
        f.write("\n")
    t["oracle_only"] = REASON + "; ours: " + name + "_ours"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(t, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{name}: {len(steps) - len(out)} broadcast expectations dropped")


if __name__ == "__main__":
    for n in sys.argv[1:]:
        derive(n)

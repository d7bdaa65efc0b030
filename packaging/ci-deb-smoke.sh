#!/usr/bin/env bash
# Smoke test of the .deb, for CI: install it with dpkg, start
# /usr/bin/vcmi-proxy with the systemd unit's arguments (without systemd),
# log a VCMI 1.4 launcher and a VCMI 1.5+ account in, scrape /metrics and /healthz, stop the
# server, remove the package. Exits non-zero on any failure.
#
#   packaging/ci-deb-smoke.sh [PATH.deb]      (default: the newest from `make deb`)
#
# Runs as root (dpkg). Needs python3; uses promtool on the scrape if present.
#
# SMOKE_ARGS="..." replaces the packaged arguments (e.g. to try an older
# build); SMOKE_NO_ADMIN=1 skips the admin endpoint checks.
set -euo pipefail

deb=${1:-$(ls -t target/debian/vcmi-proxy_*_amd64.deb 2>/dev/null | head -n1)}
[ -n "$deb" ] && [ -f "$deb" ] || { echo "smoke: no .deb (run make deb first)" >&2; exit 1; }

work=$(mktemp -d)
pid=""
installed=""
cleanup() {
    status=$?
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    if [ -n "$installed" ]; then dpkg -r vcmi-proxy >/dev/null 2>&1 || true; fi
    if [ "$status" -ne 0 ]; then
        echo "smoke: FAILED; server stdout and stderr follow" >&2
        cat "$work/stdout" "$work/stderr" >&2 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
fail() { echo "smoke: $*" >&2; exit 1; }

# 1. install ------------------------------------------------------------------
dpkg -i "$deb"
installed=1
[ -x /usr/bin/vcmi-proxy ] || fail "/usr/bin/vcmi-proxy not installed"
[ -f /lib/systemd/system/vcmi-proxy.service ] || fail "unit not installed"
[ -f /etc/default/vcmi-proxy ] || fail "/etc/default/vcmi-proxy not installed"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/vcmi-proxy.service || fail "systemd-analyze verify"
fi

# 2. the unit's arguments, as systemd expands $VCMI_PROXY_ARGS (split on
# whitespace), on free ports and with the database in a scratch directory
# (no systemd here to make /var/lib/vcmi-proxy)
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
game_port=$(free_port)
admin_port=$(free_port)
# shellcheck disable=SC1091
. /etc/default/vcmi-proxy
args=${SMOKE_ARGS:-$VCMI_PROXY_ARGS}
args=$(printf '%s\n' "$args" | sed -E \
    -e "s/--port [0-9]+/--port $game_port/" \
    -e "s/--admin-listen ([^ ]+):[0-9]+/--admin-listen \\1:$admin_port/" \
    -e "s#--db [^ ]+#--db $work/vcmiLobby.db#")
echo "smoke: /usr/bin/vcmi-proxy $args"

# 3. start, wait for "listening" --------------------------------------------
cd "$work"
# shellcheck disable=SC2086 # word splitting is what systemd does
/usr/bin/vcmi-proxy $args >"$work/stdout" 2>"$work/stderr" &
pid=$!
for _ in $(seq 100); do
    grep -q listening "$work/stdout" "$work/stderr" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || fail "server exited at start"
    sleep 0.1
done
grep -q listening "$work/stdout" "$work/stderr" || fail "no 'listening' within 10 s"

# 4. a VCMI 1.4 launcher logs in; then /metrics and /healthz -----------------
SMOKE_GAME_PORT=$game_port SMOKE_ADMIN_PORT=$admin_port SMOKE_NO_ADMIN=${SMOKE_NO_ADMIN:-} \
python3 - <<'PY'
import os, socket, sys, time, urllib.request

game = int(os.environ["SMOKE_GAME_PORT"])
admin = int(os.environ["SMOKE_ADMIN_PORT"])

def fail(msg):
    print("smoke: " + msg, file=sys.stderr)
    sys.exit(1)

# the launcher's first frame (PROTOCOL.md 4.1): length, protocol 5, "utf8",
# <GREETINGS>name<VER>version
payload = bytes([5, 4]) + b"utf8" + b"<GREETINGS>debsmoke<VER>VCMI 1.4.0"
lobby = socket.create_connection(("127.0.0.1", game), timeout=5)
lobby.sendall(len(payload).to_bytes(4, "little") + payload)
got = b""
deadline = time.monotonic() + 5
while b"debsmoke" not in got or b":>>USERS:" not in got:
    if time.monotonic() > deadline:
        fail("no USERS listing debsmoke after login; got %r" % got[:200])
    chunk = lobby.recv(4096)
    if not chunk:
        fail("server closed the lobby connection; got %r" % got[:200])
    got += chunk
print("smoke: logged in, server said %r" % got[:80])

# a VCMI 1.5+ client (LOBBY-JSON.md 1.5): register, then log in; the account
# is written to the SQLite database (bundled in the static binary)
import json
def jframe(obj):
    b = json.dumps(obj).encode()
    return len(b).to_bytes(4, "little") + b
def jrecv(sock, want, deadline):
    buf = b""
    while True:
        while len(buf) >= 4:
            n = int.from_bytes(buf[:4], "little")
            if len(buf) < 4 + n:
                break
            msg, buf = buf[4:4 + n], buf[4 + n:]
            if n and json.loads(msg).get("type") == want:
                return json.loads(msg)
        if time.monotonic() > deadline:
            fail("no %s from the JSON lobby" % want)
        chunk = sock.recv(65536)
        if not chunk:
            fail("the JSON lobby closed before %s" % want)
        buf += chunk
deadline = time.monotonic() + 5
reg = socket.create_connection(("127.0.0.1", game), timeout=5)
reg.sendall(jframe({"type": "clientRegister", "displayName": "debsmoke5",
                    "language": "english", "version": "1.6.5"}))
acc = jrecv(reg, "accountCreated", deadline)
reg.close()
json_lobby = socket.create_connection(("127.0.0.1", game), timeout=5)
json_lobby.sendall(jframe({"type": "clientLogin", "accountID": acc["accountID"],
                           "accountCookie": acc["accountCookie"],
                           "language": "english", "version": "1.6.5"}))
jrecv(json_lobby, "matchesHistory", deadline)
print("smoke: a VCMI 1.5+ account registered and logged in")

if os.environ.get("SMOKE_NO_ADMIN"):
    print("smoke: admin endpoint skipped (SMOKE_NO_ADMIN)")
    sys.exit(0)

def get(path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (admin, path), timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()

status, ctype, body = get("/metrics")
if status != 200 or not ctype.startswith("text/plain"):
    fail("/metrics: %s %s" % (status, ctype))
for needle in ("# TYPE vcmiproxy_connections_accepted_total counter",
               "vcmiproxy_users{", "vcmiproxy_relay_session_duration_seconds_bucket",
               "vcmiproxy_json_accounts_online 1"):
    if needle not in body:
        fail("/metrics lacks %r" % needle)
accepted = [l for l in body.splitlines() if l.startswith("vcmiproxy_connections_accepted_total ")]
if not accepted or float(accepted[0].split()[1]) < 1:
    fail("/metrics does not count the login connection: %r" % accepted)
with open("metrics.txt", "w") as f:
    f.write(body)
status, _, body = get("/healthz")
if (status, body) != (200, "ok\n"):
    fail("/healthz: %s %r" % (status, body))
status, _, _ = get("/nope")
if status != 404:
    fail("/nope: %s" % status)
lobby.close()
print("smoke: /metrics, /healthz and 404 answered")
PY
if [ -f "$work/metrics.txt" ] && command -v promtool >/dev/null; then
    promtool check metrics <"$work/metrics.txt" || fail "promtool check metrics"
    echo "smoke: promtool check metrics: clean"
fi
# --log-dir -: the log goes to stderr
if [ -z "${SMOKE_ARGS:-}" ]; then
    grep -q "connected" "$work/stderr" || fail "no log line on stderr with --log-dir -"
fi

# 5. stop (SIGTERM: no game running, so it exits at once) --------------------
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "server still running 10 s after SIGTERM"
wait "$pid" || fail "server exited with status $?"
pid=""

# 6. remove ---------------------------------------------------------------------
dpkg -r vcmi-proxy
installed=""
[ ! -e /usr/bin/vcmi-proxy ] || fail "/usr/bin/vcmi-proxy left after dpkg -r"
echo "smoke: deb installed, started, logged in, stopped, removed: ok"

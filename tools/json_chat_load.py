#!/usr/bin/env python3
"""JSON lobby chat load (until vcmi-load has a JSON mode): U accounts register and log in, each
sends R chat lines per second on the global `german` channel for T seconds while every client reads
everything. Reports login rate, delivery latency percentiles (send -> arrival at every other client)
and loss. The server's own figure, the store time per chat message, is in its `[stats json]` line.

    python3 tools/json_chat_load.py HOST:PORT [--users 50] [--rate 10] [--seconds 10]
"""
import argparse, json, socket, struct, threading, time


def frame(obj):
    b = json.dumps(obj).encode()
    return struct.pack("<I", len(b)) + b


class Peer:
    def __init__(self, addr):
        self.s = socket.create_connection(addr)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, obj):
        self.s.sendall(frame(obj))

    def recv(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack("<I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    p, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    if n:
                        return json.loads(p)
                    continue
            d = self.s.recv(1 << 16)
            if not d:
                return None
            self.buf += d

    def until(self, ty):
        while True:
            m = self.recv()
            if m is None or m.get("type") == ty:
                return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    addr = (host, int(port))
    tag = "%x" % (int(time.time() * 1000) % 0xFFFFFF)
    peers = []
    t0 = time.time()
    for i in range(a.users):
        p = Peer(addr)
        p.send({"type": "clientRegister", "displayName": f"ld{tag}u{i}", "language": "english", "version": "1.7.5"})
        m = p.until("accountCreated")
        p.send({"type": "clientLogin", "accountID": m["accountID"], "accountCookie": m["accountCookie"],
                "language": "english", "version": "1.7.5", "languageRooms": ["fence"]})
        p.until("matchesHistory")
        peers.append(p)
    login_secs = time.time() - t0
    lat, got = [], [0]
    lock = threading.Lock()
    total = int(a.users * a.rate * a.seconds)
    expected = total * a.users
    done = threading.Event()

    def reader(p):
        while not done.is_set():
            m = p.recv()
            if m is None:
                return
            if m.get("type") == "chatMessage" and m.get("channelName") == "german":
                sent = float(m["messageText"].split()[1])
                with lock:
                    lat.append(time.time() - sent)
                    got[0] += 1

    def writer(p):
        n = int(a.rate * a.seconds)
        start = time.time()
        for k in range(n):
            at = start + k / a.rate
            d = at - time.time()
            if d > 0:
                time.sleep(d)  # pacing the load, not synchronisation
            p.send({"type": "sendChatMessage", "channelType": "global", "channelName": "german",
                    "messageText": f"x {time.time():.6f}"})

    rs = [threading.Thread(target=reader, args=(p,), daemon=True) for p in peers]
    ws = [threading.Thread(target=writer, args=(p,)) for p in peers]
    for t in rs + ws:
        t.start()
    for t in ws:
        t.join()
    deadline = time.time() + 15
    while time.time() < deadline and got[0] < expected:
        time.sleep(0.05)
    done.set()
    lat.sort()
    q = lambda x: lat[min(len(lat) - 1, int(len(lat) * x))] * 1000 if lat else float("nan")
    print(f"users {a.users}, logins {a.users / login_secs:.0f}/s, chat sent {total} "
          f"({total / a.seconds:.0f}/s), deliveries {got[0]}/{expected} (loss {expected - got[0]}), "
          f"latency ms p50 {q(0.5):.1f} p99 {q(0.99):.1f} max {q(1.0):.1f}")


if __name__ == "__main__":
    main()

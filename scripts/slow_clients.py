#!/usr/bin/env python3
"""Slow clients against `switchyard serve` (issue 10 item 6): N connections each send
half a request head and stop; the server's RSS is read before they open, while they
are held, and after they are closed (by the server's header-read timeout, or by this
script after HOLD seconds). Loopback only; bounded in count and time.

Usage: slow_clients.py BIN [--connections 1500] [--hold 5] [--header-timeout 10]
Prints one JSON line: {"connections", "rss_mb": {"before", "held", "after"}, "closed_by_server"}.
"""
import argparse, base64, json, os, socket, subprocess, sys, tempfile, time

def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--connections", type=int, default=1500)
    ap.add_argument("--hold", type=float, default=5.0, help="seconds the connections are held before the check")
    ap.add_argument("--header-timeout", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=12.0, help="seconds after the close before RSS is read again")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="slow-")
    env = dict(os.environ, SWITCHYARD_MASTER_KEY=base64.b64encode(os.urandom(32)).decode(), SWITCHYARD_LOG="warn")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    db = "sqlite://" + os.path.join(tmp, "sy.db")
    p = subprocess.Popen([a.bin, "serve", "--listen", f"127.0.0.1:{port}", "--database", db,
                          "--header-read-timeout", str(a.header_timeout)],
                         env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.3).close(); break
            except OSError:
                time.sleep(0.1)
        # Warm up: a few whole requests, so the baseline includes a served connection.
        for _ in range(20):
            c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); c.recv(4096); c.close()
        time.sleep(1)
        before = rss_mb(p.pid)
        conns = []
        for i in range(a.connections):
            c = socket.create_connection(("127.0.0.1", port))
            # Half a head: a request line and some headers, never the blank line.
            c.sendall(b"GET /elements/api-v2/elements HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 2000 + b"\r\nX-More: ")
            conns.append(c)
        time.sleep(min(a.hold, a.header_timeout * 0.8))
        held = rss_mb(p.pid)
        # Wait for the server to cut them off (or give up and close them ourselves).
        closed = 0
        end = time.time() + a.header_timeout + 5
        for c in conns:
            c.settimeout(max(0.01, end - time.time()))
            try:
                if c.recv(1) == b"":
                    closed += 1
            except (socket.timeout, OSError):
                pass
            c.close()
        time.sleep(a.settle)
        after = rss_mb(p.pid)
        print(json.dumps({"connections": a.connections, "rss_mb": {"before": round(before, 1), "held": round(held, 1), "after": round(after, 1)},
                          "closed_by_server": closed}))
    finally:
        p.terminate(); p.wait(10)

if __name__ == "__main__":
    sys.exit(main())

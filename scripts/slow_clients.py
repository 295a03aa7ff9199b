#!/usr/bin/env python3
"""Slow clients against `switchyard serve` (issue 10 item 6). Two kinds:
  head:   N connections each send half a request head and stop (the header-read timeout);
  reader: N connections, each with a 4 KiB receive buffer, pipeline REQUESTS asks for the
          API's OpenAPI document and never read an answer (the write timeout).
The server's RSS is read before they open, while they are held, and after the server
has had its limit plus 5 s to close them (then this script closes what is left and waits
SETTLE seconds); the server's open sockets are counted at the same moments.
Loopback only; bounded in count and time.

Usage: slow_clients.py BIN [--kind head|reader] [--connections 1500] [--hold 5]
                           [--header-timeout 10] [--write-timeout 60] [--requests 80] [--check-after S]
Prints one JSON line: {"kind", "connections", "rss_mb": {"before", "held", "after"},
"server_sockets": {"before", "held", "after_limit"}, "closed_by_server"}.
"""
import argparse, base64, json, os, socket, subprocess, sys, tempfile, time

def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

def sockets(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--connections", type=int, default=1500)
    ap.add_argument("--hold", type=float, default=5.0, help="seconds the connections are held before the check")
    ap.add_argument("--header-timeout", type=float, default=10.0)
    ap.add_argument("--write-timeout", type=float, default=60.0)
    ap.add_argument("--kind", choices=["head", "reader"], default="head")
    ap.add_argument("--requests", type=int, default=80, help="pipelined asks per reader connection")
    ap.add_argument("--check-after", type=float, default=None, help="seconds from opening to the sockets count (default: the limit + 5)")
    ap.add_argument("--settle", type=float, default=12.0, help="seconds after the close before RSS is read again")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="slow-")
    env = dict(os.environ, SWITCHYARD_MASTER_KEY=base64.b64encode(os.urandom(32)).decode(), SWITCHYARD_LOG="warn")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    db = "sqlite://" + os.path.join(tmp, "sy.db")
    p = subprocess.Popen([a.bin, "serve", "--listen", f"127.0.0.1:{port}", "--database", db,
                          "--header-read-timeout", str(a.header_timeout), "--write-timeout", str(a.write_timeout)],
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
        before, sockets_before = rss_mb(p.pid), sockets(p.pid)
        conns = []
        asks = b"GET /elements/api-v2/docs HTTP/1.1\r\nHost: x\r\n\r\n" * a.requests
        for i in range(a.connections):
            if a.kind == "head":
                c = socket.create_connection(("127.0.0.1", port))
                # Half a head: a request line and some headers, never the blank line.
                c.sendall(b"GET /elements/api-v2/elements HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 2000 + b"\r\nX-More: ")
            else:
                c = socket.socket()
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                c.connect(("127.0.0.1", port))
                c.setblocking(False)
                try:
                    c.send(asks)  # as much as the server takes; it stops reading once it cannot write
                except BlockingIOError:
                    pass
            conns.append(c)
        limit = a.header_timeout if a.kind == "head" else a.write_timeout
        time.sleep(min(a.hold, limit * 0.8))
        held, sockets_held = rss_mb(p.pid), sockets(p.pid)
        # Give the server its limit to cut them off, then close what is left ourselves.
        check_after = a.check_after if a.check_after is not None else limit + 5
        time.sleep(max(0.0, check_after - min(a.hold, limit * 0.8)))
        sockets_after_limit = sockets(p.pid)
        closed = 0
        for c in conns:
            c.setblocking(False)
            try:
                while c.recv(65536):
                    pass
                closed += 1  # end of stream: the server closed it
            except BlockingIOError:
                pass
            except OSError:
                closed += 1  # reset by the server
            c.close()
        time.sleep(a.settle)
        after = rss_mb(p.pid)
        print(json.dumps({"kind": a.kind, "connections": a.connections,
                          "rss_mb": {"before": round(before, 1), "held": round(held, 1), "after": round(after, 1)},
                          "server_sockets": {"before": sockets_before, "held": sockets_held, "after_limit": sockets_after_limit},
                          "closed_by_server": closed}))
    finally:
        p.terminate(); p.wait(10)

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""What a transformation costs a hub list (issue 14): Switchyard's CPU per call for
`GET /hubs/ecommerce/myOrder?pageSize=50` (a common resource mapping ten fields of
BigCommerce orders: plain, nested, indexed-free, a date, a decimal string as a number)
beside the vendor-named `GET /hubs/ecommerce/orders?pageSize=50`, in one run, measured
as ../shared/bench/hop_cost.py measures a hop: wrk load, the server process's
utime+stime from /proc divided by the requests served. Rounds alternate the two calls;
the medians and their ratio are printed (target: myOrder <= 1.10x orders).

Usage: transform_cost.py BIN [--seconds 8] [--conns 32] [--rounds 3]
Needs wrk (apt-get install -y wrk). Loopback only; run on a release build and a quiet machine.
"""
import argparse, base64, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request


# The sandbox and port helpers hop_callgrind.py already has (run from this directory).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hop_callgrind import free_port, read_json, wait_port  # noqa: E402


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, auth, seconds, conns):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-H", f"Authorization: {auth}", url],
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, total, int(bad.group(1)) if bad else 0


def call(method, url, auth, body=None):
    data = json.dumps(body).encode() if body is not None else None
    rq = urllib.request.Request(url, data=data, method=method, headers={"Authorization": auth, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(rq))


MY_ORDER = {"vendorName": "orders", "fields": [
    {"path": "id", "type": "string", "vendorPath": "id"},
    {"path": "customerId", "type": "string", "vendorPath": "customer_id"},
    {"path": "status", "type": "string", "vendorPath": "status"},
    {"path": "total", "type": "number", "vendorPath": "total_inc_tax"},
    {"path": "tax", "type": "number", "vendorPath": "total_tax"},
    {"path": "currency", "type": "string", "vendorPath": "currency_code"},
    {"path": "modified", "type": "date", "vendorPath": "date_modified"},
    {"path": "billing.email", "type": "string", "vendorPath": "billing_address.email"},
    {"path": "billing.city", "type": "string", "vendorPath": "billing_address.city"},
    {"path": "items", "type": "number", "vendorPath": "items_total"}]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin"); ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--conns", type=int, default=32); ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")
    a.bin = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="transform-cost-")
    env = dict(os.environ, SWITCHYARD_MASTER_KEY=base64.b64encode(os.urandom(32)).decode(),
               SWITCHYARD_OUTBOUND_ALLOW="127.0.0.0/8", SWITCHYARD_LOG="warn")
    procs = []
    try:
        sim = subprocess.Popen([a.bin, "sandbox", "--json"], env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(sim)
        sb = (read_json(sim) or sys.exit("the sandbox printed no JSON line"))["bigcommerce"]
        db = "sqlite://" + os.path.join(tmp, "sy.db")
        init = subprocess.run([a.bin, "init", "--json", "--database", db], env=env, cwd=tmp, capture_output=True, text=True)
        auth = [json.loads(l) for l in init.stdout.splitlines() if l.startswith("{")][0]["authorization"]
        port = free_port()
        sy = subprocess.Popen([a.bin, "serve", "--listen", f"127.0.0.1:{port}", "--database", db], env=env, cwd=tmp,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "serve.log"), "w"))
        procs.append(sy)
        assert wait_port(port), "serve never opened its port"
        api = f"http://127.0.0.1:{port}/elements/api-v2"
        made = call("POST", f"{api}/instances", auth, {"element": {"key": "bigcommerce"}, "name": "bench", "configuration": {
            "username": sb["username"], "password": sb["apiToken"], "store.url": sb["storeUrl"]}})
        call("POST", f"{api}/organizations/elements/bigcommerce/transformations/myOrder", auth, MY_ORDER)
        element = f"{auth}, Element {made['token']}"
        sample = call("GET", f"{api}/hubs/ecommerce/myOrder?pageSize=2", element)
        print(f"a mapped record: {json.dumps(sample[0])}")
        urls = {"orders": f"{api}/hubs/ecommerce/orders?pageSize=50", "myOrder": f"{api}/hubs/ecommerce/myOrder?pageSize=50"}
        res = {name: [] for name in urls}
        for _ in range(a.rounds):
            for name, url in urls.items():
                c0 = cpu_s(sy.pid)
                rps, total, bad = wrk(url, element, a.seconds, a.conns)
                c1 = cpu_s(sy.pid)
                res[name].append(dict(rps=rps, cpu_us=1e6 * (c1 - c0) / max(total, 1), bad=bad))
        med = lambda xs: sorted(xs)[len(xs) // 2]
        print(f"| call (pageSize=50, {a.conns} clients) | req/s | Switchyard CPU us/call | non-2xx | rounds (CPU us) |")
        print("|---|---:|---:|---:|---|")
        for name, rows in res.items():
            each = ", ".join("%.0f" % r["cpu_us"] for r in rows)
            print(f"| {name} | {med([r['rps'] for r in rows]):.0f} | {med([r['cpu_us'] for r in rows]):.0f} | "
                  f"{sum(r['bad'] for r in rows)} | {each} |")
        ratio = med([r["cpu_us"] for r in res["myOrder"]]) / med([r["cpu_us"] for r in res["orders"]])
        print(f"myOrder / orders CPU per call: {ratio:.2f}x (target <= 1.10x)")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try: p.wait(5)
                except subprocess.TimeoutExpired: p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

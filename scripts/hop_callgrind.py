#!/usr/bin/env python3
"""Instructions per request of one proxy hop, counted by valgrind's callgrind (issue 11):
the same calls as ../shared/bench/hop_cost.py (a BigCommerce `orders/{id}` and a
50-order list), through nginx (a plain keep-alive reverse proxy) and through a
Switchyard hub, each hop process under callgrind. Instruction counts do not depend on
the machine's load, so they back hop_cost.py's CPU ratios on a shared machine.

For each hop and call: WARM requests, counters zeroed, N requests on one keep-alive
connection, counters dumped; instructions / N is the figure. With --annotate, the top
symbols of Switchyard's `orders/{id}` profile are printed (callgrind_annotate).

Usage: hop_callgrind.py BIN [--requests 500] [--warm 100] [--annotate 15] [--keep DIR]
Needs nginx and valgrind (apt-get install -y nginx-light valgrind). Loopback only.
"""
import argparse, base64, glob, http.client, json, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.request


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_port(port, t=120):
    d = time.time() + t
    while time.time() < d:
        try:
            socket.create_connection(("127.0.0.1", port), 0.3).close(); return True
        except OSError:
            time.sleep(0.2)
    return False


def read_json(p, t=30):
    fd = p.stdout.fileno(); os.set_blocking(fd, False); buf = b""; d = time.time() + t
    while time.time() < d:
        try:
            c = os.read(fd, 65536)
        except BlockingIOError:
            c = None
        if c:
            buf += c
            for line in buf.decode(errors="replace").splitlines():
                if line.strip().startswith("{"):
                    try: return json.loads(line)
                    except ValueError: pass
        time.sleep(0.05)
    return None


def hop_env():
    """The environment every hop script runs Switchyard with: a fresh master key,
    loopback vendors allowed, quiet logs."""
    return dict(os.environ, SWITCHYARD_MASTER_KEY=base64.b64encode(os.urandom(32)).decode(),
                SWITCHYARD_OUTBOUND_ALLOW="127.0.0.0/8", SWITCHYARD_LOG="warn")


def start_bigcommerce(bin_, env, tmp):
    """`BIN sandbox --json` in `tmp`: (process, the BigCommerce sandbox's JSON, its
    origin `http://127.0.0.1:PORT`, its port, the store's path, a Basic header)."""
    p = subprocess.Popen([bin_, "sandbox", "--json"], env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sb = read_json(p)["bigcommerce"]
    m = re.match(r"(http://127\.0\.0\.1:(\d+))(/.*)", sb["storeUrl"])
    basic = "Basic " + base64.b64encode(f"{sb['username']}:{sb['apiToken']}".encode()).decode()
    return p, sb, m.group(1), int(m.group(2)), m.group(3), basic


def nginx_conf(tmp, sim_port, port):
    """nginx as ../shared/bench/hop_cost.py runs it (a plain keep-alive reverse proxy,
    one worker), without a master process so that its CPU is one process's."""
    conf = os.path.join(tmp, "nginx.conf")
    open(conf, "w").write(f"""worker_processes 1; daemon off; master_process off; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err warn;
events {{ worker_connections 1024; }}
http {{ access_log off; upstream sim {{ server 127.0.0.1:{sim_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://sim; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_set_header Host $host; proxy_buffering off; }} }} }}""")
    return conf


def start_switchyard(bin_, env, tmp, sb, wrap=()):
    """`BIN init` then `BIN serve` on a fresh SQLite database in `tmp` (the command
    prefixed by `wrap`, e.g. valgrind), and a BigCommerce instance on the sandbox
    `sb`: (process, port, the hub caller's headers)."""
    db = "sqlite://" + os.path.join(tmp, "sy.db")
    init = subprocess.run([bin_, "init", "--json", "--database", db], env=env, cwd=tmp, capture_output=True, text=True)
    auth = [json.loads(l) for l in init.stdout.splitlines() if l.startswith("{")][0]["authorization"]
    port = free_port()
    p = subprocess.Popen([*wrap, bin_, "serve", "--listen", f"127.0.0.1:{port}", "--database", db], env=env, cwd=tmp,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "serve.log"), "w"))
    assert wait_port(port), f"serve on port {port} never opened"
    body = json.dumps({"element": {"key": "bigcommerce"}, "name": "bench", "configuration": {
        "username": sb["username"], "password": sb["apiToken"], "store.url": sb["storeUrl"]}}).encode()
    rq = urllib.request.Request(f"http://127.0.0.1:{port}/elements/api-v2/instances", data=body, method="POST",
                                headers={"Authorization": auth, "Content-Type": "application/json"})
    tok = json.load(urllib.request.urlopen(rq, timeout=120))["token"]
    return p, port, {"Authorization": f"{auth}, Element {tok}"}


def drive(port, path, headers, n):
    """n GETs on one keep-alive connection; every answer must be 200."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n):
        c.request("GET", path, headers=headers)
        r = c.getresponse(); r.read()
        if r.status != 200:
            sys.exit(f"GET {path} on :{port} answered {r.status}")
    c.close()


def total_ir(prefix):
    """The summed Ir of the dumps whose names start with `prefix`."""
    total = 0
    for f in glob.glob(prefix + "*"):
        for line in open(f, errors="replace"):
            if line.startswith("summary:") or line.startswith("totals:"):
                total += int(line.split()[1])
                break
    return total


def measure(pid, out_file, port, path, headers, warm, n, keep_as):
    """Instructions per request; the dump is kept as `keep_as` (for callgrind_annotate)."""
    drive(port, path, headers, warm)
    for f in glob.glob(out_file + ".*"):
        os.remove(f)
    subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True)
    drive(port, path, headers, n)
    subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True)
    time.sleep(1)
    per_request = total_ir(out_file + ".") / n
    dumps = glob.glob(out_file + ".*")
    if dumps:
        os.replace(max(dumps, key=os.path.getmtime), keep_as)
    return per_request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--warm", type=int, default=100)
    ap.add_argument("--annotate", type=int, default=0, help="print this many top symbols of Switchyard's orders/{id}")
    ap.add_argument("--keep", default=".", help="directory for the profiles (nginx-*.cg, switchyard-*.cg)")
    a = ap.parse_args()
    for tool in ("nginx", "valgrind", "callgrind_control"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install -y nginx-light valgrind")
    a.bin = os.path.abspath(a.bin)
    a.keep = os.path.abspath(a.keep)
    os.makedirs(a.keep, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="hopcg-")
    env = hop_env()
    procs = []
    try:
        p_sim, sb, _, sim_port, store_path, basic = start_bigcommerce(a.bin, env, tmp)
        procs.append(p_sim)
        ng_port = free_port()
        conf = nginx_conf(tmp, sim_port, ng_port)
        ng_out = os.path.join(tmp, "cg.nginx")
        p_ng = subprocess.Popen(["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no", f"--callgrind-out-file={ng_out}", "nginx", "-c", conf, "-p", tmp],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p_ng)

        for port in (sim_port, ng_port):
            assert wait_port(port), f"port {port} never opened"
        sy_out = os.path.join(tmp, "cg.switchyard")
        p_sy, sy_port, elem = start_switchyard(a.bin, env, tmp, sb, ["valgrind", "--tool=callgrind", "--compress-strings=no",
                                                                    "--compress-pos=no", f"--callgrind-out-file={sy_out}"])
        procs.append(p_sy)
        cases = [
            ("orders/{id}", f"{store_path}/orders/150", "/elements/api-v2/hubs/ecommerce/orders/150"),
            ("orders?50", f"{store_path}/orders?page=1&limit=50", "/elements/api-v2/hubs/ecommerce/orders?pageSize=50"),
        ]
        rows = []
        for name, vendor_path, hub_path in cases:
            slug = re.sub(r"\W+", "-", name).strip("-")
            ng = measure(p_ng.pid, ng_out, ng_port, vendor_path, {"Authorization": basic}, a.warm, a.requests, f"{a.keep}/nginx-{slug}.cg")
            sy = measure(p_sy.pid, sy_out, sy_port, hub_path, elem, a.warm, a.requests, f"{a.keep}/switchyard-{slug}.cg")
            rows.append((name, ng, sy))
            if a.annotate and name == "orders/{id}":
                # Dumps carry whole names (--compress-strings=no), so each reads alone.
                dump = f"{a.keep}/switchyard-{slug}.cg"
                ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", dump],
                                     capture_output=True, text=True).stdout
                lines = [l for l in ann.splitlines() if re.match(r"\s*[\d,]+ \(", l)]
                print(f"Switchyard orders/{{id}}, top symbols (self instructions over {a.requests} requests):")
                for l in lines[1:a.annotate + 1]:
                    print("  " + l.strip()[:170])
        print("| call | nginx instr/req | Switchyard instr/req | ratio |")
        print("|---|---:|---:|---:|")
        for name, ng, sy in rows:
            print(f"| {name} | {ng:,.0f} | {sy:,.0f} | {sy / ng:.2f}x |")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try: p.wait(20)
            except subprocess.TimeoutExpired: p.kill()


if __name__ == "__main__":
    sys.exit(main())

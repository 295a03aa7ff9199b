#!/usr/bin/env python3
"""How much of a hub hop's CPU is the HTTP stack's own (issue 11): the BigCommerce
simulator's `orders/{id}` through nginx (a plain keep-alive reverse proxy), through the
bare proxies of `crates/server/examples/bare_hop.rs` (hyper's server and client alone,
hyper's server with reqwest's client, and axum + reqwest), doing nothing but forward, and through a Switchyard hub.
Each is driven by wrk in turn (as ../shared/bench/hop_cost.py does); the figure is the
hop process's CPU time (utime + stime from /proc) per request, and its req/s.

Usage: hop_floor.py BIN BARE_HOP [--seconds 5] [--rounds 3] [--conns 1,32]
  BIN       target/release/switchyard
  BARE_HOP  target/release/examples/bare_hop
            (cargo build --release -p switchyard-server --example bare_hop)
nginx is configured as ../shared/bench/hop_cost.py configures it (one worker, nginx's
default of 1,000 requests per keep-alive connection; no master process here, so its CPU
is one process's), so its figures compare with that script's; the Rust hops run tokio's default two workers on two cores.
Needs nginx and wrk (apt-get install -y nginx-light wrk). Loopback only.
"""
import argparse, os, re, shutil, signal, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hop_callgrind import free_port, hop_env, nginx_conf, start_bigcommerce, start_switchyard, wait_port  # noqa: E402


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, headers, seconds, conns):
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True).stdout
    rps, total = re.search(r"Requests/sec:\s+([\d.]+)", out), re.search(r"(\d+) requests in", out)
    if "Non-2xx" in out or "Socket errors" in out or not rps or not total:
        sys.exit(f"wrk against {url} did not run cleanly:\n{out}")
    return float(rps.group(1)), int(total.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin"); ap.add_argument("bare_hop")
    ap.add_argument("--seconds", type=int, default=5); ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", default="1,32")
    a = ap.parse_args()
    a.bin, a.bare_hop = os.path.abspath(a.bin), os.path.abspath(a.bare_hop)
    # `kill` or `timeout` end the run through the same clean-up as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install -y nginx-light wrk")
    tmp = tempfile.mkdtemp(prefix="hopfloor-")
    env = hop_env()
    procs = []
    try:
        p_sim, sb, sim_origin, sim_port, store_path, basic = start_bigcommerce(a.bin, env, tmp)
        procs.append(p_sim)
        basic = {"Authorization": basic}

        hops = {}
        port = free_port()
        conf = nginx_conf(tmp, sim_port, port)
        p = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p); hops["nginx"] = (p, f"http://127.0.0.1:{port}{store_path}/orders/150", basic)
        for stack in ("hyper", "hyper-reqwest", "axum"):
            port = free_port()
            p = subprocess.Popen([a.bare_hop, "--listen", f"127.0.0.1:{port}", "--upstream", sim_origin, "--stack", stack],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p); hops[f"bare {stack}"] = (p, f"http://127.0.0.1:{port}{store_path}/orders/150", basic)

        for _, url, _ in hops.values():
            assert wait_port(int(url.split(":")[2].split("/")[0])), f"{url} never opened"
        p, port, elem = start_switchyard(a.bin, env, tmp, sb)
        procs.append(p)
        hops["switchyard"] = (p, f"http://127.0.0.1:{port}/elements/api-v2/hubs/ecommerce/orders/150", elem)

        results = {}
        for _ in range(a.rounds):
            for conns in [int(c) for c in a.conns.split(",")]:
                for name, (proc, url, headers) in hops.items():
                    before = cpu_seconds(proc.pid)
                    rps, total = wrk(url, headers, a.seconds, conns)
                    cpu_us = 1e6 * (cpu_seconds(proc.pid) - before) / max(total, 1)
                    results.setdefault((conns, name), []).append((rps, cpu_us))
        median = lambda xs: sorted(xs)[len(xs) // 2]
        print(f"orders/{{id}}, {a.rounds} rounds of {a.seconds} s, medians")
        print("| clients | hop | req/s | CPU µs/req | CPU ÷ nginx | req/s ÷ nginx |")
        print("|---:|---|---:|---:|---:|---:|")
        for conns in [int(c) for c in a.conns.split(",")]:
            ng_rps = median([r for r, _ in results[(conns, "nginx")]])
            ng_cpu = median([c for _, c in results[(conns, "nginx")]])
            for name in hops:
                rps = median([r for r, _ in results[(conns, name)]])
                cpu = median([c for _, c in results[(conns, name)]])
                print(f"| {conns} | {name} | {rps:,.0f} | {cpu:.0f} | {cpu / ng_cpu:.2f}x | {rps / ng_rps:.2f} |")
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

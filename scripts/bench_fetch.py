#!/usr/bin/env python3
"""Fetch throughput between two auditnet daemons on loopback, for
docs/benchmarks.md (issue 3), with its yardsticks in the same run:

  iperf3, one TCP stream on 127.0.0.1   (the ceiling)
  dd if=FILE of=OUT bs=1M conv=fsync    (the disk's fsync'd write speed)
  auditnet add -Q FILE, fresh repo      (the store's own add throughput)
  auditnet cat CID > /dev/null          (verified, streamed, not stored; goal >= 400 MB/s over TCP)
  auditnet pin add CID                  (fetched, verified, stored, fsync'd; goal >= 0.8x dd)
  auditnet get CID -o OUT               (pin add, then written out and fsync'd: two writes)

over TCP and over QUIC: one provider (an agency daemon listening on both)
and two auditor daemons, one that can reach it over TCP only and one over
QUIC only. The runs are interleaved so the ratios hold on a noisy machine.

With --kubo PATH (an ipfs binary you built; none is downloaded or built
here), two kubo daemons on 127.0.0.1, connected directly over TCP with
routing off, are measured in the same interleaved runs:

  ipfs cat CID > /dev/null              (bitswap, the reference users would pick)
  ipfs pin add CID                      (bitswap with parallel wants, into the blockstore)

Usage: scripts/bench_fetch.py [--size-mib 256] [--runs 5] [--dir DIR] [--kubo PATH]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd, stdout=subprocess.DEVNULL, env=None):
    start = time.perf_counter()
    p = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr.decode()}")
    return elapsed


def out(cmd, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr.decode()}")
    return p.stdout.decode().strip()


def wait_for(path, seconds=30):
    deadline = time.time() + seconds
    while not os.path.exists(path):
        if time.time() > deadline:
            sys.exit(f"timed out waiting for {path}")
        time.sleep(0.05)


def iperf(port, size):
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            p = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", str(size), "-J"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
            if p.returncode == 0:
                res = json.loads(p.stdout)
                return res["end"]["sum_received"]["bits_per_second"] / 8
            time.sleep(0.05)
    finally:
        server.wait(timeout=10)
    sys.exit("iperf3 failed")


def start_kubo(ipfs, work, port, data, daemons):
    """Two kubo daemons, A holding data, B connected to A over TCP; returns
    (B's environment, the CID)."""
    envs, ids = [], []
    for i in range(2):
        path = os.path.join(work, f"kubo{i}")
        shutil.rmtree(path, ignore_errors=True)
        env = dict(os.environ, IPFS_PATH=path)
        out([ipfs, "init"], env=env)
        for key, val in (("Addresses.Swarm", [f"/ip4/127.0.0.1/tcp/{port + i}"]),
                         ("Addresses.API", f"/ip4/127.0.0.1/tcp/{port + 10 + i}"),
                         ("Addresses.Gateway", f"/ip4/127.0.0.1/tcp/{port + 20 + i}"),
                         ("Bootstrap", []), ("Routing.Type", "none"), ("AutoConf.Enabled", False),
                         ("Discovery.MDNS.Enabled", False)):
            out([ipfs, "config", "--json", key, json.dumps(val)], env=env)
        ids.append(json.loads(out([ipfs, "config", "show"], env=env))["Identity"]["PeerID"])
        log = open(os.path.join(work, f"kubo{i}.log"), "w")
        daemons.append(subprocess.Popen([ipfs, "daemon"], env=env, stdout=log, stderr=log))
        wait_for(os.path.join(path, "api"))
        envs.append(env)
    kcid = out([ipfs, "add", "--cid-version=1", "-Q", data], env=envs[0])
    out([ipfs, "swarm", "connect", f"/ip4/127.0.0.1/tcp/{port}/p2p/{ids[0]}"], env=envs[1])
    return envs[1], kcid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--base-port", type=int, default=24100)
    ap.add_argument("--kubo", default=None)
    args = ap.parse_args()

    work = args.dir or tempfile.mkdtemp(prefix="auditnet-fetch-bench-")
    os.makedirs(work, exist_ok=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    an = os.path.join(work, "auditnet")
    subprocess.run(["go", "build", "-o", an, "./cmd/auditnet"], cwd=root, check=True)
    size = args.size_mib << 20
    data = os.path.join(work, "data")
    with open(data, "wb") as f:
        f.write(os.urandom(size))

    p = args.base_port
    nodes = {
        "prov": ("agency", [f"/ip4/127.0.0.1/tcp/{p}", f"/ip4/127.0.0.1/udp/{p}/quic-v1"], p + 10),
        "tcp": ("auditor", [f"/ip4/127.0.0.1/tcp/{p + 1}"], p + 11),
        "quic": ("auditor", [f"/ip4/127.0.0.1/udp/{p + 2}/quic-v1"], p + 12),
    }
    repos, ids = {}, {}
    for name, (role, listen, api) in nodes.items():
        repo = os.path.join(work, name)
        shutil.rmtree(repo, ignore_errors=True)
        cmd = [an, "--repo", repo, "init", "--role", role, "--api", f"127.0.0.1:{api}"]
        for l in listen:
            cmd += ["--listen", l]
        out(cmd)
        repos[name] = repo
        ids[name] = out([an, "--repo", repo, "config", "Identity.PeerID"])
    for name, repo in repos.items():
        out([an, "--repo", repo, "config", "--json", "Members", json.dumps([i for n, i in ids.items() if n != name])])
    out([an, "--repo", repos["tcp"], "config", "--json", "Bootstrap", json.dumps([f"/ip4/127.0.0.1/tcp/{p}/p2p/{ids['prov']}"])])
    out([an, "--repo", repos["quic"], "config", "--json", "Bootstrap", json.dumps([f"/ip4/127.0.0.1/udp/{p}/quic-v1/p2p/{ids['prov']}"])])
    daemons = []
    kubo = None
    if args.kubo:
        kubo = start_kubo(args.kubo, work, p + 30, data, daemons)
    try:
        for name in ("prov", "tcp", "quic"):
            log = open(os.path.join(work, name + ".log"), "w")
            daemons.append(subprocess.Popen([an, "--repo", repos[name], "daemon"], stdout=log, stderr=log))
            wait_for(os.path.join(repos[name], "api"))
        cid = out([an, "--repo", repos["prov"], "add", "-Q", data])
        for name in ("tcp", "quic"):
            deadline = time.time() + 30
            while ids["prov"] not in out([an, "--repo", repos[name], "providers", cid]):
                if time.time() > deadline:
                    sys.exit(f"{name}: provider not found")
                time.sleep(0.1)
        subprocess.run(["cat", data], stdout=subprocess.DEVNULL, check=True)

        keys = ["iperf3", "dd", "add", "cat-tcp", "pin-tcp", "get-tcp", "cat-quic", "pin-quic", "get-quic"]
        if kubo:
            keys += ["kubo-cat-tcp", "kubo-pin-tcp"]
        t = {k: [] for k in keys}
        ddout, getout, fresh = os.path.join(work, "dd.out"), os.path.join(work, "get.out"), os.path.join(work, "fresh")
        for i in range(args.runs):
            t["iperf3"].append(size / iperf(p + 20, size))
            for f in (ddout,):
                if os.path.exists(f):
                    os.remove(f)
            subprocess.run(["sync"], check=True)
            t["dd"].append(timed(["dd", f"if={data}", f"of={ddout}", "bs=1M", "conv=fsync"]))
            os.remove(ddout)
            shutil.rmtree(fresh, ignore_errors=True)
            out([an, "--repo", fresh, "init"])
            subprocess.run(["sync"], check=True)
            t["add"].append(timed([an, "--repo", fresh, "add", "-Q", data]))
            shutil.rmtree(fresh)
            for name in ("tcp", "quic"):
                repo = repos[name]
                t["cat-" + name].append(timed([an, "--repo", repo, "cat", cid]))
                subprocess.run(["sync"], check=True)
                t["pin-" + name].append(timed([an, "--repo", repo, "pin", "add", cid]))
                out([an, "--repo", repo, "pin", "rm", cid])
                out([an, "--repo", repo, "repo", "gc"])
                subprocess.run(["sync"], check=True)
                t["get-" + name].append(timed([an, "--repo", repo, "get", cid, "-o", getout]))
                os.remove(getout)
                out([an, "--repo", repo, "pin", "rm", cid])
                out([an, "--repo", repo, "repo", "gc"])
            if kubo:
                env_b, kcid = kubo
                t["kubo-cat-tcp"].append(timed([args.kubo, "cat", kcid], env=env_b))
                out([args.kubo, "repo", "gc"], env=env_b)  # cat keeps the blocks it fetched
                subprocess.run(["sync"], check=True)
                t["kubo-pin-tcp"].append(timed([args.kubo, "pin", "add", kcid], env=env_b))
                out([args.kubo, "pin", "rm", kcid], env=env_b)
                out([args.kubo, "repo", "gc"], env=env_b)
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr)
    finally:
        for d in daemons:
            d.send_signal(signal.SIGTERM)
        for d in daemons:
            d.wait(timeout=30)

    mb = size / 1e6
    med = {k: statistics.median(v) for k, v in t.items()}
    print(f"{args.size_mib} MiB, {args.runs} interleaved runs, median seconds and MB/s (min-max MB/s)")
    print("| what | median s | MB/s | range MB/s | vs dd conv=fsync |")
    print("|---|---|---|---|---|")
    for k, v in t.items():
        print(f"| {k} | {med[k]:.3f} | {mb / med[k]:.0f} | {mb / max(v):.0f}-{mb / min(v):.0f} | {med['dd'] / med[k]:.2f}x |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Idle memory of an auditnet daemon with 20 peers connected, for
docs/benchmarks.md (issue 3).

Starts 21 daemons on 127.0.0.1 (one agency measured, 20 peers: agencies in
DHT server mode), all members of each other, the peers bootstrapping from
the measured one; waits until it has 20 peers and then --settle seconds,
and reports its resident memory (VmRSS) and peak (VmHWM) from /proc.

Usage: scripts/bench_idle.py [--peers 20] [--settle 30] [--dir DIR]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def out(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr.decode()}")
    return p.stdout.decode().strip()


def mem(pid):
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = int(v.split()[0]) / 1024
    return vals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", type=int, default=20)
    ap.add_argument("--settle", type=int, default=30)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--base-port", type=int, default=25100)
    args = ap.parse_args()
    work = args.dir or tempfile.mkdtemp(prefix="auditnet-idle-bench-")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    an = os.path.join(work, "auditnet")
    subprocess.run(["go", "build", "-o", an, "./cmd/auditnet"], cwd=root, check=True)
    n = args.peers + 1
    repos, ids = [], []
    for i in range(n):
        repo = os.path.join(work, f"node{i}")
        shutil.rmtree(repo, ignore_errors=True)
        port = args.base_port + i
        out([an, "--repo", repo, "init", "--listen", f"/ip4/127.0.0.1/tcp/{port}", "--api", f"127.0.0.1:{port + 1000}"])
        repos.append(repo)
        ids.append(out([an, "--repo", repo, "config", "Identity.PeerID"]))
    for i, repo in enumerate(repos):
        out([an, "--repo", repo, "config", "--json", "Members", json.dumps(ids)])
        if i > 0:
            out([an, "--repo", repo, "config", "--json", "Bootstrap", json.dumps([f"/ip4/127.0.0.1/tcp/{args.base_port}/p2p/{ids[0]}"])])
    daemons = []
    try:
        for repo in repos:
            daemons.append(subprocess.Popen([an, "--repo", repo, "daemon"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            while not os.path.exists(os.path.join(repo, "api")):
                time.sleep(0.05)
        deadline = time.time() + 60
        while True:
            peers = json.loads(out([an, "--repo", repos[0], "swarm", "peers", "--json"]) or "[]")
            if len({p["Peer"] for p in peers}) >= args.peers:
                break
            if time.time() > deadline:
                sys.exit(f"only {len(peers)} peers connected")
            time.sleep(0.2)
        time.sleep(args.settle)
        peers = json.loads(out([an, "--repo", repos[0], "swarm", "peers", "--json"]) or "[]")
        m = mem(daemons[0].pid)
        others = sorted(mem(d.pid)["VmRSS"] for d in daemons[1:])
        print(f"measured daemon: {len({p['Peer'] for p in peers})} peers connected, idle {args.settle} s: "
              f"VmRSS {m['VmRSS']:.1f} MiB, VmHWM {m['VmHWM']:.1f} MiB; "
              f"the {args.peers} peers: median VmRSS {others[len(others) // 2]:.1f} MiB")
    finally:
        for d in daemons:
            d.send_signal(signal.SIGTERM)
        for d in daemons:
            d.wait(timeout=30)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The chain's figures for docs/benchmarks.md (issue 5), on a network of
daemons on 127.0.0.1 that `auditnet testnet` writes:

  - the signature-verification ceiling of this machine, measured in the
    same run (`auditnet bench verify`): 2 cores / (validators x signatures
    per tx x verify cost), for single and for batch verification;
  - committed txs/s and commit latency p50/p99 at each rate of a ladder,
    for single-signature Anchor transactions and for the realistic mix
    (`auditnet bench chain`), each rate on a fresh testnet so that no run
    inherits the state of the one before;
  - the same rate held over consecutive runs on one chain, with the
    validators' CPU time per committed tx, to show how the figures move as
    the chain's state grows;
  - view-change time after the leader is killed (p50, max) with the
    default timeouts;
  - catch-up speed (blocks/s) of a validator restarted after the chain
    moved on without it;
  - bytes on disk per committed tx (store, WAL, index) at one tx per block
    and at saturation, and that an idle chain does not grow.

Usage: scripts/bench_chain.py [--validators 4] [--rates 500,1000,2000,...]
       [--mixes anchor,mix] [--duration 10] [--sustained-rate 5000]
       [--sustained-runs 6] [--skip ladder,sustained,viewchange,catchup,disk]
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
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(out):
    subprocess.run(["go", "build", "-o", out, "./cmd/auditnet"], cwd=ROOT, check=True)
    return out


class Net:
    """A testnet of daemons, started and stopped by name."""

    def __init__(self, binary, validators, followers, base_port, workdir):
        self.bin = binary
        self.dir = os.path.join(workdir, "tn")
        subprocess.run([binary, "testnet", "--dir", self.dir, "--validators", str(validators),
                        "--followers", str(followers), "--base-port", str(base_port)],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(self.dir, "testnet.json")) as f:
            self.meta = json.load(f)
        self.nodes = {n["Name"]: n for n in self.meta["Nodes"]}
        self.procs = {}

    def start(self, name):
        n = self.nodes[name]
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        self.procs[name] = subprocess.Popen([self.bin, "--repo", n["Dir"], "daemon"], stdout=log, stderr=log)
        self.wait(lambda: os.path.exists(os.path.join(n["Dir"], "api")), 30, name + " up")

    def start_all(self):
        for name in self.nodes:
            self.start(name)

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs.pop(name)
        p.send_signal(sig)
        p.wait(30)
        api = os.path.join(self.nodes[name]["Dir"], "api")
        if os.path.exists(api):
            os.remove(api)

    def stop_all(self):
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def api(self, name, path):
        n = self.nodes[name]
        with open(os.path.join(n["Dir"], "api.token")) as f:
            token = f.read().strip()
        req = urllib.request.Request("http://" + n["API"] + path, headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def status(self, name):
        return self.api(name, "/api/v0/chain/status")

    def validators(self):
        return [n for n in self.nodes if self.nodes[n]["Validator"]]

    def name_of(self, peer):
        return next(n for n in self.nodes if self.nodes[n]["PeerID"] == peer)

    @staticmethod
    def wait(cond, within, what):
        deadline = time.time() + within
        while not cond():
            if time.time() > deadline:
                raise SystemExit("timed out waiting for " + what)
            time.sleep(0.01)

    def bench(self, rate, duration, mix):
        out = subprocess.run([self.bin, "bench", "chain", "--testnet", self.dir, "--rate", str(rate),
                              "--duration", "%ds" % duration, "--mix", mix, "--json"],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def disk(self, name):
        total = 0
        for part in ("store", "wal", "index"):
            for dirpath, _, files in os.walk(os.path.join(self.nodes[name]["Dir"], "chain", part)):
                total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        return total


def fresh_net(binary, validators, base_port, workdir, name):
    """A new testnet in its own directory, started, with a quorum."""
    d = os.path.join(workdir, name)
    os.makedirs(d)
    net = Net(binary, validators, 0, base_port, d)
    net.start_all()
    net.wait(lambda: net.status(net.validators()[0])["HasQuorum"], 30, "a quorum")
    return net


def ladder(binary, validators, base_port, workdir, mixes, rates, duration):
    rows = []
    for mix in mixes:
        for rate in rates:
            net = fresh_net(binary, validators, base_port, workdir, "ladder-%s-%d" % (mix, rate))
            try:
                net.bench(200, 2, mix)  # connections up, keys expanded
                r = net.bench(rate, duration, mix)
            finally:
                net.stop_all()
                shutil.rmtree(os.path.join(workdir, "ladder-%s-%d" % (mix, rate)), ignore_errors=True)
            rows.append(r)
            print("  %-6s %6d txs/s offered: %7.0f committed, busy %6d, p50 %7.1f ms, p99 %7.1f ms" % (
                mix, rate, r["TxsPerSec"], r["Busy"], r["LatencyP50Ms"], r["LatencyP99Ms"]), flush=True)
    return rows


def cpu_seconds(pid):
    """User and system CPU time of a process, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sustained(net, rate, runs, duration, mix):
    """The same offered rate, run after run on one chain: committed txs/s
    and the validators' CPU time per committed tx as the state grows."""
    rows = []
    for i in range(runs):
        before = sum(cpu_seconds(p.pid) for p in net.procs.values())
        r = net.bench(rate, duration, mix)
        used = sum(cpu_seconds(p.pid) for p in net.procs.values()) - before
        st = net.status(net.validators()[0])
        r["ValidatorCPUMicrosPerTx"] = used / max(1, r["Committed"]) * 1e6
        r["HeightAfter"] = st["Height"]
        r["ViewAfter"] = st["View"]
        rows.append(r)
        print("  run %d at %d offered: %7.0f committed, busy %6d, p50 %6.1f ms, p99 %7.1f ms, %4.0f us of validator CPU per tx, height %d, view %d" % (
            i + 1, rate, r["TxsPerSec"], r["Busy"], r["LatencyP50Ms"], r["LatencyP99Ms"], r["ValidatorCPUMicrosPerTx"], st["Height"], st["View"]), flush=True)
    return rows


def view_change(net, runs):
    """Kill the leader, time until a validator still up commits the next
    block (the chain is kept busy by a light bench), restart it."""
    times, steady = [], []
    for _ in range(runs):
        first = net.validators()[0]
        leader = net.name_of(net.status(first)["Leader"])
        watcher = next(v for v in net.validators() if v != leader)
        load = subprocess.Popen([net.bin, "bench", "chain", "--testnet", net.dir, "--rate", "200",
                                 "--duration", "15s", "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        net.wait(lambda: net.status(watcher)["Mempool"] > 0 or net.status(watcher)["Height"] > 0, 10, "load")
        h0 = net.status(watcher)["Height"]
        net.wait(lambda: net.status(watcher)["Height"] > h0, 10, "a commit before the kill")
        h0 = net.status(watcher)["Height"]
        t0 = time.time()
        net.kill(leader)
        net.wait(lambda: net.status(watcher)["Height"] > h0 + 1, 60, "a commit after the leader was killed")
        times.append(time.time() - t0)
        # A first commit can be followed by a stall (a round that fails
        # for want of a lagging validator's vote): also time ten blocks.
        net.wait(lambda: net.status(watcher)["Height"] > h0 + 10, 60, "ten commits after the leader was killed")
        steady.append(time.time() - t0)
        load.wait()
        net.start(leader)
        def back():
            a, b = net.status(leader), net.status(watcher)
            return a["Lag"] == 0 and a["Height"] >= b["Height"] - 1 and a["View"] == b["View"] and not a["ViewChanging"]
        try:
            net.wait(back, 60, "the old leader to catch up and rejoin the view")
        except SystemExit:
            for n in (leader, watcher):
                st = net.status(n)
                print("  %s: height %d view %d changing %s lag %d known %d" % (
                    n, st["Height"], st["View"], st["ViewChanging"], st["Lag"], st["KnownHeight"]), flush=True)
            raise
        print("  view change after killing %s: %.0f ms (ten blocks: %.0f ms)" % (leader, times[-1] * 1000, steady[-1] * 1000), flush=True)
    return times, steady


def catch_up(net, blocks):
    """Stop one validator, let the chain make `blocks` blocks, restart it,
    and time its catch-up."""
    vals = net.validators()
    victim, watcher = vals[-1], vals[0]
    net.kill(victim, signal.SIGTERM)
    h0 = net.status(watcher)["Height"]
    while net.status(watcher)["Height"] < h0 + blocks:
        net.bench(300, 5, "anchor")
    target = net.status(watcher)["Height"]
    t0 = time.time()
    net.start(victim)
    start_h = net.status(victim)["Height"]
    net.wait(lambda: net.status(victim)["Height"] >= target, 300, "catch-up")
    dt = time.time() - t0
    rate = (target - start_h) / dt
    print("  %s caught up %d blocks in %.2f s: %.0f blocks/s (including its start)" % (victim, target - start_h, dt, rate), flush=True)
    return {"Blocks": target - start_h, "Seconds": dt, "BlocksPerSec": rate}


def disk(net):
    v = net.validators()[0]
    before, h0 = net.disk(v), net.status(v)["Height"]
    # One tx per block: submit and wait, one at a time.
    n = 400
    net.bench(20, n // 20, "anchor")
    h1 = net.status(v)["Height"]
    slow = net.disk(v) - before
    committed = h1 - h0
    # Saturation.
    before2 = net.disk(v)
    r = net.bench(4000, 10, "anchor")
    sat = net.disk(v) - before2
    # Idle: once the backlog has committed, no growth in blocks.
    net.wait(lambda: all(net.status(x)["Mempool"] == 0 for x in net.validators()), 120, "the mempools to empty")
    time.sleep(1)
    h2 = net.status(v)["Height"]
    time.sleep(10)
    h3 = net.status(v)["Height"]
    out = {"SlowBlocks": committed, "SlowBytesPerTx": slow / max(1, n), "SaturationTxs": r["Committed"],
           "SaturationBytesPerTx": sat / max(1, r["Committed"]), "IdleBlocksIn10s": h3 - h2}
    print("  bytes on disk per tx: %.0f at ~1 tx per block (%d blocks for %d txs), %.0f at saturation (%d txs); idle for 10 s: %d blocks" % (
        out["SlowBytesPerTx"], committed, n, out["SaturationBytesPerTx"], r["Committed"], out["IdleBlocksIn10s"]), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--rates", default="500,1000,2000,3000,4000,5000,6000,8000")
    ap.add_argument("--mixes", default="anchor,mix")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--sustained-rate", type=int, default=5000)
    ap.add_argument("--sustained-runs", type=int, default=6)
    ap.add_argument("--viewchanges", type=int, default=5)
    ap.add_argument("--catchup-blocks", type=int, default=300)
    ap.add_argument("--skip", default="")
    ap.add_argument("--base-port", type=int, default=4600)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    work = tempfile.mkdtemp(prefix="auditnet-chainbench-")
    binary = build(os.path.join(work, "auditnet"))
    print("machine: %d cores; %d validators" % (os.cpu_count(), args.validators))
    v = json.loads(subprocess.run([binary, "bench", "verify", "--validators", str(args.validators), "--json"],
                                  check=True, capture_output=True, text=True).stdout)
    print("  verify %.1f us single, %.1f us per signature in batches of 1000 -> ceiling %.0f txs/s single, %.0f batch" % (
        v["SingleMicros"], v["BatchMicros"], v["CeilingSingle"], v["CeilingBatch"]), flush=True)
    result = {"Validators": args.validators, "Verify": v}
    net = None
    try:
        if "ladder" not in skip:
            result["Ladder"] = ladder(binary, args.validators, args.base_port, work, args.mixes.split(","),
                                      [int(r) for r in args.rates.split(",")], args.duration)
        if "sustained" not in skip:
            net = fresh_net(binary, args.validators, args.base_port, work, "sustained")
            result["Sustained"] = sustained(net, args.sustained_rate, args.sustained_runs, args.duration, "anchor")
            net.stop_all()
            shutil.rmtree(os.path.join(work, "sustained"), ignore_errors=True)
        if not {"disk", "viewchange", "catchup"} <= skip:
            net = fresh_net(binary, args.validators, args.base_port, work, "faults")
            if "disk" not in skip:
                result["Disk"] = disk(net)
            if "viewchange" not in skip:
                t, ten = view_change(net, args.viewchanges)
                result["ViewChange"] = {"Runs": t, "P50": statistics.median(t), "Max": max(t),
                                        "TenBlocks": ten, "TenBlocksP50": statistics.median(ten), "TenBlocksMax": max(ten)}
                print("  view change: p50 %.0f ms, max %.0f ms; ten blocks after the kill: p50 %.0f ms, max %.0f ms" % (
                    statistics.median(t) * 1000, max(t) * 1000, statistics.median(ten) * 1000, max(ten) * 1000))
            if "catchup" not in skip:
                result["CatchUp"] = catch_up(net, args.catchup_blocks)
    finally:
        if net is not None:
            net.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept", work)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

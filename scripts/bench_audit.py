#!/usr/bin/env python3
"""The audit network's figures for docs/benchmarks.md (issue 6), on the
default testnet as daemons on 127.0.0.1 (4 validators: datacenter,
office-1, office-2, agency-1; agency-2 and auditor-1 follow the chain):

  - anchor latency: `add` of a small file through an agency's daemon until
    the anchor has committed, p50/p99, on the follower agency and on the
    validator agency;
  - access-event overhead: `cat` of a 1 MiB dataset by the auditor, strict
    (access request on the chain, fetch, acknowledgement, Served) against
    the same fetch between two daemons that run no chain, same run;
  - the data center's bytes per anchored dataset and per access event
    (request + served), store, WAL and index together, one at a time;
  - the same per access event under load: `bench chain --mix access`, a
    request and its Served for each event, live and after the data
    center's daemon restarted (its database journal become tables);
  - a real 10,000-event workload: the auditor's daemon fetches small
    datasets 10,000 times (each a request, a fetch, an acknowledgement and
    a Served), while the agencies also hold larger datasets; the ratio of
    the data center's disk to the data the agencies hold after it.

Usage: scripts/bench_audit.py [--adds 100] [--cats 20] [--events 10000]
                              [--load-events 10000] [--threads 8]
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_chain  # noqa: E402


def call(node_dir, api, method, path, body=None, timeout=120):
    with open(os.path.join(node_dir, "api.token")) as f:
        token = f.read().strip()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://" + api + path, data=data, method=method,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise SystemExit("%s %s: HTTP %d: %s" % (method, path, e.code, e.read().decode(errors="replace").strip()))


def add(node, path, policy):
    """An add through the daemon; the NDJSON stream's result."""
    raw = call(node["Dir"], node["API"], "POST", "/api/v0/add", {"Paths": [path], "Policy": policy})
    for line in raw.decode().splitlines():
        ev = json.loads(line)
        if ev.get("Error"):
            raise SystemExit("add: " + ev["Error"])
        if "Result" in ev:
            return ev["Result"]
    raise SystemExit("add: no result")


def cid_of(root):
    """A root's CID as the API's JSON spells it (a DAG-JSON link)."""
    c = root["Cid"]
    return c["/"] if isinstance(c, dict) else c


def cat(node, ref):
    return call(node["Dir"], node["API"], "GET", "/api/v0/cat?" + urllib.parse.urlencode({"arg": ref, "purpose": "bench"}))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except FileNotFoundError:
                pass
    return total


def chain_bytes(node):
    return du(os.path.join(node["Dir"], "chain"))


def chain_parts(node):
    return {part: du(os.path.join(node["Dir"], "chain", part)) for part in ("store", "wal", "index")}


def served_count(dc, auditor):
    """The Served events of an auditor on the data center's trail."""
    q = {"kind": "served", "auditor": auditor, "limit": "100000"}
    return len(json.loads(call(dc["Dir"], dc["API"], "GET", "/api/v0/log?" + urllib.parse.urlencode(q)))["Events"])


def plain_pair(binary, work, base):
    """An agency and an auditor that run no chain (the network layer only),
    as the README's 'without a chain' section sets them up."""
    dirs = {n: os.path.join(work, "plain", n) for n in ("agency", "auditor")}
    ports = {"agency": base, "auditor": base + 1}
    for n, d in dirs.items():
        subprocess.run([binary, "--repo", d, "init", "--role", n, "--listen", "/ip4/127.0.0.1/tcp/%d" % ports[n],
                        "--api", "127.0.0.1:%d" % (ports[n] + 100)], check=True, stdout=subprocess.DEVNULL)
    ids = {n: subprocess.run([binary, "--repo", d, "config", "Identity.PeerID"], check=True, capture_output=True,
                             text=True).stdout.strip() for n, d in dirs.items()}
    subprocess.run([binary, "--repo", dirs["agency"], "config", "--json", "Members", json.dumps([ids["auditor"]])], check=True)
    subprocess.run([binary, "--repo", dirs["auditor"], "config", "--json", "Members", json.dumps([ids["agency"]])], check=True)
    subprocess.run([binary, "--repo", dirs["auditor"], "config", "--json", "Bootstrap",
                    json.dumps(["/ip4/127.0.0.1/tcp/%d/p2p/%s" % (ports["agency"], ids["agency"])])], check=True)
    procs = []
    for n, d in dirs.items():
        procs.append(subprocess.Popen([binary, "--repo", d, "daemon"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        bench_chain.Net.wait(lambda: os.path.exists(os.path.join(d, "api")), 30, n + " up")
    nodes = {n: {"Dir": d, "API": "127.0.0.1:%d" % (ports[n] + 100)} for n, d in dirs.items()}
    return nodes, procs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--adds", type=int, default=100)
    ap.add_argument("--cats", type=int, default=20)
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--load-events", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--held-mib", type=int, default=512, help="data the agencies hold besides what is fetched")
    ap.add_argument("--base-port", type=int, default=4700)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="auditnet-auditbench-")
    binary = bench_chain.build(os.path.join(work, "auditnet"))
    print("machine: %d cores" % os.cpu_count(), flush=True)
    tn = os.path.join(work, "tn")
    subprocess.run([binary, "testnet", "--dir", tn, "--validators", "4", "--agencies", "2", "--auditors", "1",
                    "--base-port", str(args.base_port)], check=True, stdout=subprocess.DEVNULL)
    meta = json.load(open(os.path.join(tn, "testnet.json")))
    nodes = {n["Name"]: n for n in meta["Nodes"]}
    procs = []
    plain_procs = []
    result = {}
    try:
        for n in nodes.values():
            log = open(os.path.join(tn, n["Name"] + ".log"), "ab")
            procs.append(subprocess.Popen([binary, "--repo", n["Dir"], "daemon"], stdout=log, stderr=log))
            bench_chain.Net.wait(lambda: os.path.exists(os.path.join(n["Dir"], "api")), 30, n["Name"] + " up")

        def status(name):
            return json.loads(call(nodes[name]["Dir"], nodes[name]["API"], "GET", "/api/v0/chain/status"))
        bench_chain.Net.wait(lambda: all(status(n)["HasQuorum"] for n in nodes), 60, "a quorum")
        dc = nodes["datacenter"]
        files = os.path.join(work, "files")
        os.makedirs(files)

        # Anchor latency, and the data center's bytes per anchor.
        before = chain_bytes(dc)
        for agency in ("agency-2", "agency-1"):
            times = []
            for i in range(args.adds):
                p = os.path.join(files, "%s-%d.txt" % (agency, i))
                with open(p, "w") as f:
                    f.write("record %d of %s, %s\n" % (i, agency, os.urandom(8).hex()) * 16)
                t0 = time.time()
                r = add(nodes[agency], p, "restricted")
                times.append((time.time() - t0) * 1000)
                assert r["Roots"][0]["Anchor"]["Height"] > 0
            role = "follower" if agency == "agency-2" else "validator"
            result["AnchorLatency_" + role] = {"p50": pct(times, 50), "p99": pct(times, 99), "n": len(times)}
            print("  anchor latency (%s agency): p50 %.1f ms, p99 %.1f ms over %d adds" % (role, pct(times, 50), pct(times, 99), len(times)), flush=True)
        time.sleep(1)  # the store and index write behind the core
        anchors = 2 * args.adds
        per_anchor = (chain_bytes(dc) - before) / anchors
        result["DCBytesPerAnchor"] = per_anchor
        print("  data center: %.0f bytes per anchored dataset (one per block)" % per_anchor, flush=True)

        # Access-event overhead: strict cat of 1 MiB against a plain one.
        mib = os.path.join(files, "one-mib.bin")
        with open(mib, "wb") as f:
            f.write(os.urandom(1 << 20))
        root = cid_of(add(nodes["agency-2"], mib, "open")["Roots"][0])
        time.sleep(1)
        before = chain_bytes(dc)
        strict = []
        for _ in range(args.cats):
            t0 = time.time()
            body = cat(nodes["auditor-1"], root)
            strict.append((time.time() - t0) * 1000)
            assert len(body) == 1 << 20
        # The Served records commit after the acknowledgements.
        def served():
            evs = json.loads(call(dc["Dir"], dc["API"], "GET", "/api/v0/log?" + urllib.parse.urlencode({"dataset": root, "kind": "served"})))["Events"]
            return len(evs) >= args.cats
        bench_chain.Net.wait(served, 60, "the services to be recorded")
        time.sleep(1)
        per_access = (chain_bytes(dc) - before) / args.cats
        plain_nodes, plain_procs = plain_pair(binary, work, args.base_port + 50)
        proot = cid_of(add(plain_nodes["agency"], mib, "")["Roots"][0])
        bench_chain.Net.wait(lambda: len(json.loads(call(plain_nodes["auditor"]["Dir"], plain_nodes["auditor"]["API"], "GET",
                                                             "/api/v0/providers?arg=" + proot))["Providers"]) > 0, 60, "the plain provider")
        plain = []
        for _ in range(args.cats):
            t0 = time.time()
            body = cat(plain_nodes["auditor"], proot)
            plain.append((time.time() - t0) * 1000)
            assert len(body) == 1 << 20
        result["CatStrictMs"] = {"p50": pct(strict, 50), "p99": pct(strict, 99)}
        result["CatPlainMs"] = {"p50": pct(plain, 50), "p99": pct(plain, 99)}
        result["DCBytesPerAccessEvent"] = per_access
        print("  cat of 1 MiB: strict (request on the chain, fetch, ack, Served) p50 %.1f ms, p99 %.1f ms; without a chain p50 %.1f ms, p99 %.1f ms" % (
            pct(strict, 50), pct(strict, 99), pct(plain, 50), pct(plain, 99)), flush=True)
        print("  data center: %.0f bytes per access event (request + served), one at a time" % per_access, flush=True)

        def restart_dc():
            i = list(nodes).index("datacenter")
            procs[i].terminate()
            procs[i].wait(60)
            log = open(os.path.join(tn, "datacenter.log"), "ab")
            procs[i] = subprocess.Popen([binary, "--repo", dc["Dir"], "daemon"], stdout=log, stderr=log)
            bench_chain.Net.wait(lambda: os.path.exists(os.path.join(dc["Dir"], "api")), 30, "datacenter up")
            bench_chain.Net.wait(lambda: status("datacenter")["HasQuorum"], 60, "datacenter in quorum")

        # Access events under load: requests and their Served, from the
        # bench's keys, at load_rate events/s.
        restart_dc()
        before, parts0 = chain_bytes(dc), chain_parts(dc)
        load_rate = 500
        out = subprocess.run([binary, "bench", "chain", "--testnet", tn, "--rate", str(load_rate), "--duration", "%ds" % (args.load_events // load_rate),
                              "--mix", "access", "--json"], check=True, capture_output=True, text=True).stdout
        b = json.loads(out)
        time.sleep(2)
        live = chain_bytes(dc) - before
        live_parts = {k: (v - parts0[k]) / max(1, b["Served"]) for k, v in chain_parts(dc).items()}
        restart_dc()
        settled = chain_bytes(dc) - before
        settled_parts = {k: (v - parts0[k]) / max(1, b["Served"]) for k, v in chain_parts(dc).items()}
        result["AccessLoad"] = {"Events": b["Served"], "Txs": b["Committed"], "Blocks": b["Blocks"], "Rate": load_rate,
                                "LiveBytesPerEvent": live / max(1, b["Served"]), "LiveByPart": live_parts,
                                "RestartedBytesPerEvent": settled / max(1, b["Served"]), "RestartedByPart": settled_parts}
        print("  access events under load (%d events, request + Served, %d txs in %d blocks at %d events/s): data center %.0f bytes per event live "
              "(store %.0f, WAL %.0f, index %.0f), %.0f after a restart (store %.0f, WAL %.0f, index %.0f)" % (
                  b["Served"], b["Committed"], b["Blocks"], load_rate, live / max(1, b["Served"]), live_parts["store"], live_parts["wal"], live_parts["index"],
                  settled / max(1, b["Served"]), settled_parts["store"], settled_parts["wal"], settled_parts["index"]), flush=True)

        # The real workload: the agencies hold larger datasets; the auditor
        # fetches small ones, each fetch a whole access event.
        for i in range(args.held_mib // 16):
            p = os.path.join(files, "held-%d.bin" % i)
            with open(p, "wb") as f:
                f.write(os.urandom(16 << 20))
            add(nodes["agency-1" if i % 2 else "agency-2"], p, "restricted")
            os.remove(p)
        auditor_id = json.loads(call(nodes["auditor-1"]["Dir"], nodes["auditor-1"]["API"], "GET", "/api/v0/id"))["ID"]
        small = []
        for i in range(40):
            agency = "agency-1" if i % 2 else "agency-2"
            p = os.path.join(files, "small-%d.bin" % i)
            with open(p, "wb") as f:
                f.write(os.urandom(64 << 10))
            root = cid_of(add(nodes[agency], p, "restricted")["Roots"][0])
            call(nodes[agency]["Dir"], nodes[agency]["API"], "POST", "/api/v0/grant", {"Dataset": root, "Auditor": auditor_id})
            small.append(root)
        restart_dc()
        before = chain_bytes(dc)
        served0 = served_count(dc, auditor_id)
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(args.threads) as ex:
            sizes = list(ex.map(lambda i: len(cat(nodes["auditor-1"], small[i % len(small)])), range(args.events)))
        took = time.time() - t0
        assert all(n == 64 << 10 for n in sizes)
        deadline = time.time() + 120
        while served_count(dc, auditor_id) - served0 < args.events:
            if time.time() > deadline:
                raise SystemExit("timed out waiting for every service to be recorded")
            time.sleep(0.5)
        time.sleep(2)
        live = chain_bytes(dc) - before
        restart_dc()
        grown = chain_bytes(dc) - before
        held = sum(du(os.path.join(nodes[a]["Dir"], "blocks")) for a in ("agency-1", "agency-2"))
        center = du(os.path.join(dc["Dir"], "chain")) + du(os.path.join(dc["Dir"], "blocks")) + du(os.path.join(dc["Dir"], "dht"))
        result["Workload"] = {"Events": args.events, "Seconds": took, "LiveBytesPerEvent": live / args.events,
                              "RestartedBytesPerEvent": grown / args.events, "DataCenterBytes": center, "AgencyBytes": held}
        print("  real workload: %d fetches (%d threads) in %.0f s, %.0f events/s; data center %.0f bytes per event live, %.0f after a restart" % (
            args.events, args.threads, took, args.events / took, live / args.events, grown / args.events), flush=True)
        print("  the data center's node stores %d bytes; the agencies hold %d bytes of data (ratio %.4f)" % (center, held, center / max(1, held)), flush=True)
    finally:
        for p in procs + plain_procs:
            p.terminate()
        for p in procs + plain_procs:
            p.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Whole-command timings for docs/benchmarks.md.

Times auditnet's CLI on one random file beside the yardsticks of the storage
issue, all in the same run, interleaved, so the ratios hold on a noisy
machine:

  openssl dgst -sha256 FILE            (hashing yardstick, a whole process)
  dd if=FILE of=OUT bs=1M conv=fsync   (the disk's fsync'd write speed)
  auditnet add -Q --only-hash FILE     (goal: >= 1.5x openssl)
  auditnet add -Q FILE, fresh repo     (goal: >= 0.8x dd conv=fsync)
  auditnet cat CID > /dev/null         (goal: >= 1.0x openssl)

then peak RSS of `auditnet add` of a 1 GiB file (goal: < 150 MiB) and the
store's size on disk after adding random data (goal: < 1.05x the data).

Usage: scripts/bench_cli.py [--size-mib 256] [--runs 7] [--dir DIR]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(cmd, stdout=subprocess.DEVNULL, env=None):
    """Runs cmd, returns (seconds, peak RSS KiB, stdout text)."""
    wrapped = ["/usr/bin/time", "-f", "%M"] + cmd
    start = time.perf_counter()
    p = subprocess.run(wrapped, stdout=subprocess.PIPE if stdout is None else stdout,
                       stderr=subprocess.PIPE, env=env, check=False)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr.decode()}")
    rss = int(p.stderr.decode().strip().splitlines()[-1])
    out = p.stdout.decode() if stdout is None else ""
    return elapsed, rss, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--skip-1gib", action="store_true")
    args = ap.parse_args()

    work = args.dir or tempfile.mkdtemp(prefix="auditnet-bench-")
    os.makedirs(work, exist_ok=True)
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = os.path.join(work, "auditnet")
    subprocess.run(["go", "build", "-o", binary, "./cmd/auditnet"], cwd=repo_root, check=True)
    data = os.path.join(work, "data")
    size = args.size_mib << 20
    with open(data, "wb") as f:
        f.write(os.urandom(size))
    subprocess.run(["cat", data], stdout=subprocess.DEVNULL, check=True)  # into the page cache

    times = {k: [] for k in ("openssl", "dd", "only-hash", "add", "cat")}
    rss = {k: 0 for k in times}
    repo = os.path.join(work, "repo")
    out = os.path.join(work, "dd.out")
    for i in range(args.runs):
        t, r, _ = run(["openssl", "dgst", "-sha256", data])
        times["openssl"].append(t)
        rss["openssl"] = max(rss["openssl"], r)

        t, r, _ = run([binary, "add", "-Q", "--only-hash", data])
        times["only-hash"].append(t)
        rss["only-hash"] = max(rss["only-hash"], r)

        if os.path.exists(out):
            os.remove(out)
        subprocess.run(["sync"], check=True)
        t, r, _ = run(["dd", f"if={data}", f"of={out}", "bs=1M", "conv=fsync"])
        times["dd"].append(t)
        os.remove(out)

        shutil.rmtree(repo, ignore_errors=True)
        subprocess.run([binary, "--repo", repo, "init"], stdout=subprocess.DEVNULL, check=True)
        subprocess.run(["sync"], check=True)
        t, r, cid = run([binary, "--repo", repo, "add", "-Q", data], stdout=None)
        times["add"].append(t)
        rss["add"] = max(rss["add"], r)
        cid = cid.strip()

        t, r, _ = run([binary, "--repo", repo, "cat", cid])
        times["cat"].append(t)
        rss["cat"] = max(rss["cat"], r)
        print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()), flush=True)

    stat = subprocess.run([binary, "--repo", repo, "repo", "stat", "--json"], capture_output=True, check=True)
    import json
    disk = json.loads(stat.stdout)["disk_bytes"]

    med = {k: statistics.median(v) for k, v in times.items()}
    mbps = {k: size / med[k] / 1e6 for k in med}
    print()
    print(f"machine: {os.cpu_count()} cores; file: {args.size_mib} MiB random; {args.runs} runs, medians")
    print(f"{'command':<12} {'median s':>9} {'MB/s':>8} {'vs openssl':>11} {'vs dd':>7} {'peak RSS':>9}")
    for k in ("openssl", "dd", "only-hash", "add", "cat"):
        print(f"{k:<12} {med[k]:>9.3f} {mbps[k]:>8.0f} {mbps[k] / mbps['openssl']:>10.2f}x "
              f"{mbps[k] / mbps['dd']:>6.2f}x {rss[k] / 1024:>7.1f}MiB")
    # The disk's speed drifts within a run; the ratio of add to dd taken
    # round by round (each pair measured back to back) is the steadier one.
    pair = [d / a for d, a in zip(times["dd"], times["add"])]
    print(f"add vs dd, per round: {' '.join(f'{x:.2f}' for x in pair)}; median {statistics.median(pair):.2f}x")
    print(f"store on disk after add: {disk} bytes for {size} bytes of data = {disk / size:.4f}x")

    # GC reclaim: add a second file, unpin it, collect; the disk should be
    # back under 1.05x the live data.
    other = os.path.join(work, "other")
    with open(other, "wb") as f:
        f.write(os.urandom(size))
    cid2 = subprocess.run([binary, "--repo", repo, "add", "-Q", other], capture_output=True, check=True).stdout.decode().strip()
    before = json.loads(subprocess.run([binary, "--repo", repo, "repo", "stat", "--json"], capture_output=True, check=True).stdout)["disk_bytes"]
    subprocess.run([binary, "--repo", repo, "pin", "rm", cid2], stdout=subprocess.DEVNULL, check=True)
    t, r, gcout = run([binary, "--repo", repo, "repo", "gc"], stdout=None)
    after = json.loads(subprocess.run([binary, "--repo", repo, "repo", "stat", "--json"], capture_output=True, check=True).stdout)["disk_bytes"]
    print(f"gc: disk {before} -> {after} bytes for {size} live = {after / size:.4f}x in {t:.2f}s ({gcout.strip()})")
    os.remove(other)

    if not args.skip_1gib:
        big = os.path.join(work, "data1g")
        with open(big, "wb") as f:
            for _ in range(16):
                f.write(os.urandom(64 << 20))
        shutil.rmtree(repo, ignore_errors=True)
        subprocess.run([binary, "--repo", repo, "init"], stdout=subprocess.DEVNULL, check=True)
        t, r, _ = run([binary, "--repo", repo, "add", "-Q", big], stdout=None)
        print(f"add of a 1 GiB file: {t:.2f}s, peak RSS {r / 1024:.1f} MiB")
        os.remove(big)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A/B of two auditnet binaries on the chain bench: round after round,
each binary gets a fresh 4-validator testnet on 127.0.0.1 and the same
offered rate for several consecutive 10 s runs on that one chain (the
`sustained` series of bench_chain.py). Alternating the binaries in every
round spreads the machine's drift over both. Prints committed txs/s and the
validators' CPU time per committed tx of every run.

Usage: scripts/ab_chain.py OLD_BINARY NEW_BINARY [--rate 6000] [--rounds 3] [--runs 3]
(build each with `go build -o PATH ./cmd/auditnet` at the commit to compare)
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_chain  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs=2)
    ap.add_argument("--rate", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--base-port", type=int, default=19400)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ab-chain-")
    results = {b: [] for b in args.binaries}
    try:
        for i in range(args.rounds):
            for b in args.binaries:
                name = "round%d-%s" % (i, os.path.basename(b))
                print("%s, round %d:" % (b, i + 1), flush=True)
                net = bench_chain.fresh_net(os.path.abspath(b), 4, args.base_port, work, name)
                try:
                    net.bench(200, 2, "anchor")  # connections up, keys expanded
                    rows = bench_chain.sustained(net, args.rate, args.runs, 10, "anchor")
                finally:
                    net.stop_all()
                    shutil.rmtree(os.path.join(work, name), ignore_errors=True)
                results[b].append([{"TxsPerSec": round(r["TxsPerSec"]),
                                    "ValidatorCPUMicrosPerTx": round(r["ValidatorCPUMicrosPerTx"])} for r in rows])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Benchmark: medians of several net_bench runs (bench/net_bench.c).

Build it first: cmake --build BUILD --target net_bench (a Release build
without sanitizers gives the meaningful figures).

Usage: bench/net_bench.py [--runs N] [--seconds S] [--entries N] BINARY...
Several binaries (e.g. before and after a change) are run alternately, so
that the machine's load drifts over both alike.
"""
import argparse
import json
import statistics
import subprocess


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seconds", default="3")
    p.add_argument("--entries", default="1000")
    p.add_argument("binaries", nargs="+")
    a = p.parse_args()
    results = {b: [] for b in a.binaries}
    for _ in range(a.runs):
        for b in a.binaries:
            out = subprocess.run([b, "--seconds", a.seconds, "--entries", a.entries],
                                 check=True, capture_output=True, text=True, timeout=300)
            results[b].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for b, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(json.dumps({"binary": b, "runs": len(runs), **med}))


if __name__ == "__main__":
    main()

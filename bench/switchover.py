#!/usr/bin/python3
"""Benchmark: a planned switchover (efm promote -switchover) with real PostgreSQL
servers and agents.

A master, two streaming standbys and a witness on 127.0.0.2-5.  A client writes to
whichever server takes writes, without pause; efm promote CLUSTER -switchover -node
<standby> is run, then the same back to the first master.  Printed per timing set
(median of --runs switchovers, and the spread), in seconds:
  write     from the command to the first write acknowledged by the new master
  pause     the longest time the client saw no acknowledged write (the old master's
            last write to the new master's first)
  command   how long efm promote took, until it printed the new status
  lost      acknowledged writes missing on the new master afterwards (must be 0)
Figures, not pass/fail.  Timing sets as in bench/failover.py.

Usage: bench/switchover.py [--build DIR] [--runs N] [--timings fast,default]
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from failover import start_cluster  # noqa: E402


def switch(agent, cluster, target, writer):
    t0 = time.monotonic()
    r = agent.efm("promote", cluster.name, "-switchover", "-node", target.host, timeout=300)
    t_cmd = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"switchover failed: {r.stdout}\n{r.stderr}")
    harness.wait_for(lambda: any(t > t0 and h == target.host for t, h in writer.acked), 60,
                     "a write on the new master", interval=0.01)
    acks = [(t, h) for t, h in writer.acked if t > t0 - 1]
    first_new = min(t for t, h in acks if h == target.host and t > t0)
    gaps = [b[0] - a[0] for a, b in zip(acks, acks[1:])]
    return {"write": first_new - t0, "pause": max(gaps) if gaps else float("nan"),
            "command": t_cmd}


def one_set(timing, runs):
    c = harness.Cluster("bench")
    results = []
    try:
        m, servers, agents, writer = start_cluster(c, timing)
        current = m
        for i in range(runs):
            target = servers[1] if current is m else m
            results.append(switch(agents[3], c, target, writer))
            old, current = current, target

            def streams():
                rows = old.sql("SELECT status, sender_host FROM pg_stat_wal_receiver")
                return bool(rows) and rows[0] == ("streaming", current.host)
            harness.wait_for(streams, 60, "the old master streaming from the new one")
            time.sleep(1)
        writer.stop = True
        writer.join()
        # every acknowledged write is on the last master
        n_acked = len(writer.acked)
        n_have = current.sql("SELECT count(*) FROM w")[0][0]
        for r in results:
            r["lost"] = max(n_acked - n_have, 0)
        return results
    finally:
        c.teardown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(harness.ROOT, "build"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timings", default="fast,default")
    args = ap.parse_args()
    harness.EFMD = os.path.join(args.build, "efmd")
    harness.EFM = os.path.join(args.build, "efm")
    print(f"{'timings':9} {'write':>7} {'pause':>7} {'command':>8} {'lost':>5}  "
          f"(median of {args.runs} switchovers, min-max; seconds)")
    for timing in args.timings.split(","):
        runs = one_set(timing, args.runs)
        cells = []
        for k in ("write", "pause", "command"):
            v = [r[k] for r in runs]
            cells.append(f"{statistics.median(v):7.2f} ({min(v):.2f}-{max(v):.2f})")
        print(f"{timing:9} " + "  ".join(cells) + f"  lost {runs[-1]['lost']}")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Benchmark: one agent watching a real master database.

Prints the agent's resident memory and CPU use while idle, and the time of
`efm cluster-status-json` (median of 20 runs).  Figures, not pass/fail.

Usage: bench/agent_idle.py [--build DIR] [--seconds N] [--runs N]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
import harness  # noqa: E402


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rollup_kb(pid, key):
    """A field of /proc/PID/smaps_rollup: Pss, Private_Dirty, Private_Clean..."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(harness.ROOT, "build"))
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    harness.EFMD = os.path.join(args.build, "efmd")
    harness.EFM = os.path.join(args.build, "efm")

    c = harness.Cluster("bench")
    try:
        c.master("127.0.0.2")
        # The default timings of the guide: one check every 10 s.
        a = c.agent("127.0.0.2", local_period=10, local_timeout=60, local_timeout_final=10,
                    remote_timeout=10, efm_loglevel="INFO").start()
        pid = a.proc.pid
        hz = os.sysconf("SC_CLK_TCK")
        rss, cpu, private = [], [], []
        for _ in range(args.runs):
            t0, c0 = time.monotonic(), cpu_ticks(pid)
            time.sleep(args.seconds)
            used = (cpu_ticks(pid) - c0) / hz
            cpu.append(100.0 * used / (time.monotonic() - t0))
            rss.append(rss_kb(pid))
            private.append(rollup_kb(pid, "Private_Dirty") + rollup_kb(pid, "Private_Clean"))
        calls = []
        for _ in range(20):
            t0 = time.monotonic()
            r = subprocess.run([harness.EFM, "cluster-status-json", "bench"], env=a.env(),
                               capture_output=True)
            calls.append((time.monotonic() - t0) * 1000)
            assert r.stdout, r.stderr
        print(f"agent RSS idle:              {statistics.median(rss) / 1024:.1f} MB "
              f"(median of {args.runs})")
        print(f"agent private memory idle:   {statistics.median(private) / 1024:.1f} MB "
              "(RSS less shared library pages)")
        print(f"agent CPU idle:              {statistics.median(cpu):.3f} % of a core "
              f"(median of {args.runs} x {args.seconds} s)")
        print(f"efm cluster-status-json:     {statistics.median(calls):.1f} ms (median of 20)")
    finally:
        c.teardown()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Benchmark: automatic failover with real PostgreSQL servers and agents.

A master, two streaming standbys and a witness on 127.0.0.2-5.  A client writes to
the master without pause; then either the master's postmaster is killed (kill -9),
or its whole "host" is (the master agent and the postmaster, killed together).
Printed per case (median of --runs runs, and the spread), in seconds from the kill:
  detected   the coordinator's first decision about the lost master
  promoted   the candidate's database answered pg_promote()
  write      the first write acknowledged by the new master
  window     the new master's first write minus the old master's last one: the
             time no database took writes; it must never be negative (that would
             be two masters taking writes at once)
Figures, not pass/fail.  Two timing sets: the guide's defaults and the fastest this
project considers safe (node.timeout 2 s, one check a second, a kept connection).

Usage: bench/failover.py [--build DIR] [--runs N] [--cases fast-db,fast-host,...]
"""
import argparse
import datetime
import os
import signal
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
import harness  # noqa: E402

TIMINGS = {
    # The guide's defaults: checks every 10 s, node timeout 5 s x 8.
    "default": {"local_period": 10, "local_timeout": 60, "local_timeout_final": 10,
                "remote_timeout": 10, "db_reuse_connection_count": 0},
    "fast": {"local_period": 1, "local_timeout": 4, "local_timeout_final": 2,
             "remote_timeout": 2, "node_timeout": 2, "db_reuse_connection_count": 100},
}


class Writer(threading.Thread):
    """Writes a row every few ms to whichever server takes writes; keeps the times."""

    def __init__(self, servers):
        super().__init__(daemon=True)
        self.servers, self.stop, self.acked = servers, False, []  # (time, host)

    def run(self):
        conns = {}
        while not self.stop:
            for s in self.servers:
                try:
                    c = conns.get(s.host)
                    if c is None:
                        c = s.connect()
                        c.autocommit = True
                        conns[s.host] = c
                    with c.cursor() as cur:
                        cur.execute("INSERT INTO w VALUES (now())")
                    self.acked.append((time.monotonic(), s.host))
                except Exception:
                    conns.pop(s.host, None)
            time.sleep(0.002)


def decision_time(agents, t_kill_wall):
    """Seconds from the kill to the first failover decision logged after it."""
    for a in agents:
        path = os.path.join(a.dir, "ts.log")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                if "failover: WATCHING -> confirm" in line:
                    t = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
                    d = t.timestamp() - t_kill_wall
                    if d >= 0:
                        return d
    return float("nan")


def start_cluster(c, timing):
    """A master, two standbys and a witness with their agents, up and the master
    recorded, a client writing: (master, servers, agents, writer)."""
    h = c.hosts
    m = c.master(h[0])
    servers = [m, c.standby(m, h[1]), c.standby(m, h[2])]
    hosts = h[:4]
    listed = [f"{x}:{c.bind_port}" for x in hosts]
    agents = []
    for x in hosts:
        extra = {"is_witness": "true"} if x == hosts[3] else {}
        a = c.agent(x, efm_loglevel="INFO", **TIMINGS[timing], **extra)
        a.nodes = listed
        a.write_config()
        agents.append(a)
    for a in agents:
        a.start(wait=False)

    def ready():
        st = agents[0].status()[0]
        return (st.get("failover", {}).get("master") and len(st["nodes"]) == len(hosts)
                and all(n["agent"] == "UP" for n in st["nodes"].values()))
    harness.wait_for(ready, 180, "every agent up and the master recorded")
    m.sql("CREATE TABLE w (at timestamptz)")
    writer = Writer(servers)
    writer.start()
    time.sleep(1)
    return m, servers, agents, writer


def one_run(build, case):
    timing, what = case.split("-")
    c = harness.Cluster("bench")
    try:
        m, servers, agents, writer = start_cluster(c, timing)
        t_kill, t_wall = time.monotonic(), time.time()
        if what == "host":
            agents[0].proc.kill()
        os.kill(m.postmaster_pid(), signal.SIGKILL)
        m.running = False

        def promoted():
            for s in servers[1:]:
                try:
                    if s.sql("SELECT pg_is_in_recovery()")[0][0] is False:
                        return time.monotonic()
                except Exception:
                    pass
            return None
        t_prom = harness.wait_for(promoted, 180, "a promotion", interval=0.01)
        harness.wait_for(lambda: any(t > t_kill and hst != m.host for t, hst in writer.acked),
                         60, "a write on the new master", interval=0.01)
        writer.stop = True
        writer.join()
        old = [t for t, hst in writer.acked if hst == m.host]
        new = [t for t, hst in writer.acked if hst != m.host]
        return {"detected": decision_time(agents, t_wall), "promoted": t_prom - t_kill,
                "write": min(new) - t_kill, "window": min(new) - max(old),
                "old_after_new": sum(1 for t in old if t >= min(new))}
    finally:
        c.teardown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(harness.ROOT, "build"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cases", default="fast-db,fast-host,default-db,default-host")
    args = ap.parse_args()
    # Agents log to files with millisecond stamps, for the detection figure.
    wrapper = os.path.join("/tmp", f"efmd-bench-{os.getpid()}")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec {args.build}/efmd --log-file \"$EFM_STATE_DIR/../ts.log\" "
                "\"$@\"\n")
    os.chmod(wrapper, 0o755)
    harness.EFMD, harness.EFM = wrapper, os.path.join(args.build, "efm")
    try:
        print(f"{'case':14} {'detected':>9} {'promoted':>9} {'write':>9} {'window':>9}  "
              f"(median of {args.runs}, min-max; seconds from the kill)")
        for case in args.cases.split(","):
            runs = [one_run(args.build, case) for _ in range(args.runs)]
            cells = []
            for k in ("detected", "promoted", "write", "window"):
                v = [r[k] for r in runs]
                cells.append(f"{statistics.median(v):9.2f}")
            spread = ", ".join(f"{min(r['write'] for r in runs):.2f}-"
                               f"{max(r['write'] for r in runs):.2f}" for _ in [0])
            bad = sum(r["old_after_new"] for r in runs)
            print(f"{case:14} {' '.join(cells)}  write {spread}; "
                  f"old-master writes after the new master's first: {bad}")
    finally:
        os.unlink(wrapper)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Benchmark: status requests and reloads against a real three-agent cluster.

A master, a standby (real PostgreSQL, streaming replication) and a witness.
Prints:
  - cluster-status-json requests per second one agent answers to clients
    asking as fast as they can (median of several runs), and the new
    connections the databases saw meanwhile (status answers from heartbeats
    and the monitor, so these stay near zero whatever the load);
  - the same while the standby's agent is stopped (SIGSTOP), so its row can
    only be filled by querying its database: one probe round per
    local.period, shared by every request waiting;
  - the agent's RSS at rest, after 10,000 status requests and after 10,000
    SIGHUP reloads (each one waited for in the log): growth is a leak.
Figures, not pass/fail.

Usage: bench/status_load.py [--build DIR] [--seconds N] [--runs N] [--clients N]
                            [--requests N] [--reloads N]
"""
import argparse
import json
import multiprocessing
import os
import signal
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
import harness  # noqa: E402

M, S, W = "127.0.0.2", "127.0.0.3", "127.0.0.4"
REQUEST = json.dumps({"command": "cluster-status-json", "args": []}).encode() + b"\n"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ask(path):
    """One request; returns the reply (a busy refusal is a reply too)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(path)
        s.sendall(REQUEST)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        return {"busy": True}
    finally:
        s.close()
    return json.loads(data)


def client(path, until, out):
    """Asks for the status until `until` (monotonic); counts answers and busy refusals."""
    ok = busy = 0
    while time.monotonic() < until:
        r = ask(path)
        if r.get("ok"):
            ok += 1
        else:
            busy += 1
    out.put((ok, busy))


def load(path, clients, seconds):
    """clients processes asking for seconds; returns (answers/s, busy refusals/s)."""
    out = multiprocessing.Queue()
    until = time.monotonic() + seconds
    procs = [multiprocessing.Process(target=client, args=(path, until, out))
             for _ in range(clients)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    took = time.monotonic() - t0
    return sum(r[0] for r in results) / took, sum(r[1] for r in results) / took


def sessions(pg):
    return int(pg.sql("SELECT sum(sessions) FROM pg_stat_database")[0][0])


def measure(agent, servers, clients, seconds, runs):
    """Median answers/s over runs, and new database sessions per second (counting excluded)."""
    rates, news = [], {h: [] for h in servers}
    for _ in range(runs):
        before = {h: sessions(pg) for h, pg in servers.items()}
        t0 = time.monotonic()
        rate, _ = load(agent.socket, clients, seconds)
        took = time.monotonic() - t0
        rates.append(rate)
        for h, pg in servers.items():
            news[h].append((sessions(pg) - before[h] - 1) / took)
    return statistics.median(rates), {h: statistics.median(v) for h, v in news.items()}


class LogCounter:
    """Counts a phrase in a growing log, reading only what was added."""

    def __init__(self, path, phrase):
        self.f = open(path, errors="replace")
        self.phrase = phrase
        self.count = 0
        self.tail = ""

    def poll(self):
        text = self.tail + self.f.read()
        lines = text.split("\n")
        self.tail = lines.pop()
        self.count += sum(self.phrase in line for line in lines)
        return self.count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(harness.ROOT, "build"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--reloads", type=int, default=10000)
    args = ap.parse_args()
    harness.EFMD = os.path.join(args.build, "efmd")
    harness.EFM = os.path.join(args.build, "efm")

    c = harness.Cluster("bench")
    try:
        m = c.master(M)
        s = c.standby(m, S)
        servers = {M: m, S: s}
        listed = [f"{h}:{c.bind_port}" for h in (M, S, W)]
        agents = {}
        for h in (M, S, W):
            extra = {"is_witness": "true"} if h == W else {}
            # The guide's timings; the monitors keep their connection, so new
            # sessions are the status's doing.
            a = c.agent(h, local_period=10, local_timeout=60, local_timeout_final=10,
                        remote_timeout=10, efm_loglevel="INFO", node_timeout=40,
                        db_reuse_connection_count=1000000, **extra)
            a.nodes = listed
            a.write_config()
            agents[h] = a
        for a in agents.values():
            a.start(wait=False)
        a = agents[M]
        full = {M: ("Master", "UP", "UP"), S: ("Standby", "UP", "UP"),
                W: ("Witness", "UP", "UNKNOWN")}
        harness.wait_for(lambda: {h: (n["type"], n["agent"], n["db"])
                                  for h, n in a.status()[0]["nodes"].items()} == full,
                         90, "the cluster to form")
        pid = a.proc.pid

        rate, new = measure(a, servers, args.clients, args.seconds, args.runs)
        print(f"cluster-status-json, all rows fresh:  {rate:8.0f} requests/s "
              f"({args.clients} clients, median of {args.runs} x {args.seconds} s); "
              "new database sessions/s: "
              + ", ".join(f"{h} {v:.2f}" for h, v in new.items()))

        agents[S].proc.send_signal(signal.SIGSTOP)
        try:
            # Its last heartbeat is stale after local.period + 2 s.
            time.sleep(10 + 2 + 1)
            rate, new = measure(a, servers, args.clients, args.seconds, args.runs)
            print(f"cluster-status-json, standby probed:  {rate:8.0f} requests/s "
                  f"(its agent stopped; local.period 10 s); new database sessions/s: "
                  + ", ".join(f"{h} {v:.2f}" for h, v in new.items()))
        finally:
            agents[S].proc.send_signal(signal.SIGCONT)

        # Memory: status requests, then reloads, each after a warm-up.
        for _ in range(200):
            ask(a.socket)
        rest = rss_kb(pid)
        done = 0
        while done < args.requests:
            if ask(a.socket).get("ok"):
                done += 1
        after_status = rss_kb(pid)
        reloads = LogCounter(a.logfile, "configuration reloaded")
        reloads.poll()
        seen = reloads.count
        t0 = time.monotonic()
        for i in range(args.reloads):
            a.proc.send_signal(signal.SIGHUP)
            # Signals coalesce: wait for each reload before the next.
            deadline = time.monotonic() + 10
            while reloads.poll() < seen + i + 1:
                if time.monotonic() > deadline:
                    raise AssertionError(f"reload {i + 1} not logged")
                time.sleep(0.001)
        reload_s = time.monotonic() - t0
        after_reloads = rss_kb(pid)
        print(f"agent RSS at rest:                    {rest / 1024:8.1f} MB")
        print(f"agent RSS after {args.requests} status requests: {after_status / 1024:6.1f} MB "
              f"({(after_status - rest) / 1024:+.1f} MB)")
        print(f"agent RSS after {args.reloads} SIGHUP reloads:  {after_reloads / 1024:6.1f} MB "
              f"({(after_reloads - after_status) / 1024:+.1f} MB; {reload_s:.0f} s)")
    finally:
        c.teardown()


if __name__ == "__main__":
    main()

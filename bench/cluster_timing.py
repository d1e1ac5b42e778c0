#!/usr/bin/python3
"""Benchmark: cluster timings and idle cost (figures, not pass/fail).

  - leader failover: kill -9 the leader's agent, time until another agent
    applies a command (a new leader committed it);
  - partition (network namespaces): isolate one agent, time until it reports
    that it is in the minority; heal, time until every agent sees all UP;
  - idle: RSS and CPU of the busiest agent of a 3- and a 9-node cluster.
Medians of --runs runs, for the node timeouts given (default: 3 s and the
default 40 s).

Usage: bench/cluster_timing.py [--build DIR] [--runs N] [--timeouts 3,40]
                               [--idle-seconds N] [--idle-nodes 3,9] [--skip-timing]
"""
import argparse
import json
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test",
                                "integration"))
import harness  # noqa: E402

def up_count(a):
    r = a.efm("cluster-status-json", a.cluster.name, timeout=20)
    if not r.stdout.strip():
        return 0
    return sum(1 for n in json.loads(r.stdout)["nodes"].values() if n["agent"] == "UP")


def leader(agents):
    best = None
    for a in agents:
        log = a.read_log()
        i = log.rfind("this agent is now the cluster leader")
        if i >= 0 and (best is None or i > 0):
            tail = log[i:]
            if "lost contact" not in tail:
                best = a
    return best


def failover_once(node_timeout):
    c = harness.Cluster()
    try:
        agents = start_n(c, 3, node_timeout)
        lead = leader(agents)
        rest = [a for a in agents if a is not lead]
        t0 = time.monotonic()
        lead.stop(signal.SIGKILL)
        harness.wait_for(lambda: rest[0].efm("add-node", c.name, "127.0.0.9",
                                             timeout=30).returncode == 0,
                         120, "new leader", interval=0.05)
        return time.monotonic() - t0
    finally:
        c.teardown()


def start_n(c, n, node_timeout):
    """A master, a standby and n-2 witnesses on 127.0.0.2.. (n <= 20)."""
    hosts = [f"127.0.0.{2 + i}" for i in range(n)]
    m = c.master(hosts[0])
    c.standby(m, hosts[1])
    listed = [f"{h}:{c.bind_port}" for h in hosts]
    agents = []
    for i, h in enumerate(hosts):
        extra = {"is_witness": "true"} if i >= 2 else {}
        # The guide's default database checks (every 10 s): the test harness's
        # 1 s checks with a fresh SCRAM login each would dominate the idle cost.
        a = c.agent(h, node_timeout=node_timeout, efm_loglevel="INFO", local_period=10,
                    local_timeout=60, local_timeout_final=10, **extra)
        a.nodes = listed
        a.write_config()
        agents.append(a)
    for a in agents:
        a.start(wait=False)
    for a in agents:
        harness.wait_for(lambda: up_count(a) == n, 120, f"{n}-node cluster formed")
    return agents


def idle_once(seconds, n, node_timeout):
    c = harness.Cluster()
    try:
        agents = start_n(c, n, node_timeout)
        time.sleep(2)
        tick = os.sysconf("SC_CLK_TCK")

        def cpu(pid):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        before = [cpu(a.proc.pid) for a in agents]
        time.sleep(seconds)
        after = [cpu(a.proc.pid) for a in agents]
        rss = []
        for a in agents:
            with open(f"/proc/{a.proc.pid}/status") as f:
                rss += [int(line.split()[1]) for line in f if line.startswith("VmRSS:")]
        return max(rss), max((b - a) / seconds * 100 for a, b in zip(before, after))
    finally:
        c.teardown()


def partition_once(node_timeout):
    import netns
    with netns.make_net(3) as net:
        c = netns.NsCluster(net)
        try:
            m = c.master(0)
            c.standby(m, 1)
            listed = [f"{net.addr(i)}:{c.bind_port}" for i in range(3)]
            agents = []
            for i in range(3):
                extra = {"is_witness": "true"} if i == 2 else {}
                a = c.agent(i, node_timeout=node_timeout, efm_loglevel="INFO", **extra)
                a.nodes = listed
                a.write_config()
                agents.append(a)
            for a in agents:
                a.start(wait=False)
            for a in agents:
                harness.wait_for(lambda: up_count(a) == 3, 60, "cluster formed")

            def minority(a):
                r = a.efm("cluster-status-json", c.name, timeout=20)
                return r.stdout.strip() and any(
                    "minority" in m for m in json.loads(r.stdout).get("messages", []))

            # The agent logs the change at once; the status would add the
            # remote.timeout of its database probes to the measurement.
            lost = "lost contact with the majority"
            back = "in the majority: the leader is"
            w = agents[2]
            n_lost, n_back = w.read_log().count(lost), w.read_log().count(back)
            t0 = time.monotonic()
            net.partition([[0, 1], [2]])
            harness.wait_for(lambda: w.read_log().count(lost) > n_lost, 120, "minority",
                             interval=0.02)
            knew = time.monotonic() - t0
            assert minority(w)
            t1 = time.monotonic()
            net.heal_all()
            harness.wait_for(lambda: w.read_log().count(back) > n_back, 120, "healed",
                             interval=0.02)
            return knew, time.monotonic() - t1
        finally:
            c.teardown()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.environ.get("EFM_BUILD_DIR", "build"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeouts", default="3,40")
    p.add_argument("--idle-seconds", type=int, default=20)
    p.add_argument("--idle-nodes", default="3,9")
    p.add_argument("--skip-timing", action="store_true", help="only the idle figures")
    args = p.parse_args()
    os.environ["EFM_BUILD_DIR"] = os.path.abspath(args.build)
    harness.EFMD = os.path.join(os.environ["EFM_BUILD_DIR"], "efmd")
    harness.EFM = os.path.join(os.environ["EFM_BUILD_DIR"], "efm")
    for t in (int(x) for x in args.timeouts.split(",")) if not args.skip_timing else ():
        fo = [failover_once(t) for _ in range(args.runs)]
        print(f"node.timeout={t}s: leader killed -> new leader applies a command: "
              f"median {statistics.median(fo):.2f}s ({', '.join(f'{x:.2f}' for x in fo)})")
        parts = [partition_once(t) for _ in range(args.runs)]
        print(f"node.timeout={t}s: partition -> minority knows: median "
              f"{statistics.median(k for k, _ in parts):.2f}s; heal -> rejoined: median "
              f"{statistics.median(h for _, h in parts):.2f}s")
    for n in (int(x) for x in args.idle_nodes.split(",")):
        for t in (int(x) for x in args.timeouts.split(",")):
            idle = [idle_once(args.idle_seconds, n, t) for _ in range(args.runs)]
            print(f"{n}-node cluster idle, node.timeout={t}s: max agent RSS median "
                  f"{statistics.median(r for r, _ in idle) / 1024:.1f} MB, max agent CPU "
                  f"median {statistics.median(c for _, c in idle):.2f}% of a core")

if __name__ == "__main__":
    main()

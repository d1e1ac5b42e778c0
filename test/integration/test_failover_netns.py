"""The safety rule in network namespaces: a master cut off from the majority stops
taking writes before the majority promotes a standby -- when its link is cut both
ways, and when only what it sends is lost (it still hears the leader)."""
import json
import os
import signal
import time

import psycopg2

from harness import SUPERPASS, wait_for
from netns import ip, net, ns_cluster  # noqa: F401 (fixtures)

NODE_TIMEOUT = 3


def build(ns_cluster):
    """Host 0 master, host 1 standby, host 2 witness."""
    m = ns_cluster.master(0)
    s = ns_cluster.standby(m, 1)
    listed = [f"{ns_cluster.net.addr(i)}:{ns_cluster.bind_port}" for i in range(3)]
    agents = []
    for i in range(3):
        extra = {"is_witness": "true"} if i == 2 else {}
        a = ns_cluster.agent(i, node_timeout=NODE_TIMEOUT, db_reuse_connection_count=100,
                             **extra)
        a.nodes = listed
        a.write_config()
        agents.append(a)
    for a in agents:
        a.start(wait=False)

    def ready():
        r = agents[1].efm("cluster-status-json", ns_cluster.name, timeout=20)
        if r.returncode not in (0, 1) or not r.stdout.strip():
            return False
        st = json.loads(r.stdout)
        return (st.get("failover", {}).get("master", "").startswith(ns_cluster.net.addr(0)) and
                all(n["agent"] == "UP" for n in st["nodes"].values()) and len(st["nodes"]) == 3)
    wait_for(ready, 60, "every agent up and the master recorded")
    m.sql("CREATE TABLE t (x int)", local=True)
    return m, s, agents


def takes_writes(server):
    """The server answers on its Unix socket and is not in recovery."""
    try:
        return server.sql("SELECT pg_is_in_recovery()", local=True)[0][0] is False
    except Exception:
        return False


def watch_until_promoted(m, s, deadline_s=60):
    """Poll both servers; return (when the old master stopped taking writes, when the
    standby started), each from now.  Both must happen before the deadline."""
    t0 = time.monotonic()
    stopped = promoted = None
    while time.monotonic() - t0 < deadline_s and (stopped is None or promoted is None):
        now = time.monotonic() - t0
        if stopped is None and not takes_writes(m):
            stopped = now
        if promoted is None and takes_writes(s):
            promoted = now
        time.sleep(0.05)
    assert stopped is not None, "the isolated master kept taking writes"
    assert promoted is not None, "the standby was not promoted"
    return stopped, promoted


def test_isolated_master_stops_before_the_standby_is_promoted(net, ns_cluster):
    m, s, agents = build(ns_cluster)
    net.isolate(0)
    stopped, promoted = watch_until_promoted(m, s)
    assert stopped < promoted, f"master stopped at {stopped:.2f}s, standby at {promoted:.2f}s"
    log = agents[0].read_log()
    assert "no two-way contact with the cluster leader" in log, log
    print(f"old master stopped {stopped:.2f}s, standby promoted {promoted:.2f}s after the cut")


def test_master_whose_packets_are_lost_stops_before_the_standby_is_promoted(net, ns_cluster):
    m, s, agents = build(ns_cluster)
    # Only what the master sends to its peers is lost: blackhole routes in its namespace.
    # It still receives everything they send, the leader's heartbeats included.
    for i in (1, 2):
        ip("route", "add", "blackhole", f"{net.addr(i)}/32", ns=net.ns[0])
    try:
        stopped, promoted = watch_until_promoted(m, s)
    finally:
        for i in (1, 2):
            ip("route", "del", "blackhole", f"{net.addr(i)}/32", ns=net.ns[0], check=False)
    assert stopped < promoted, f"master stopped at {stopped:.2f}s, standby at {promoted:.2f}s"
    print(f"old master stopped {stopped:.2f}s, standby promoted {promoted:.2f}s after the cut")


def test_vip_follows_the_master(net, ns_cluster):
    vip = net.vip()
    props = {"virtualIp": vip, "virtualIp.interface": f"{net.dev}:1",
             "virtualIp.netmask": "255.255.255.0",
             "pingServerCommand": "/bin/ping -q -c1 -w1"}
    conf = "listen_addresses = '*'"
    m = ns_cluster.master(0, conf=conf)
    s = ns_cluster.standby(m, 1, conf=conf)
    listed = [f"{net.addr(i)}:{ns_cluster.bind_port}" for i in range(3)]
    agents = []
    for i in range(3):
        extra = {"is_witness": "true"} if i == 2 else dict(props)
        a = ns_cluster.agent(i, node_timeout=NODE_TIMEOUT, db_reuse_connection_count=100,
                             **extra)
        a.nodes = listed
        a.write_config()
        agents.append(a)
    for a in agents:
        a.start(wait=False)
    # The master's agent takes the VIP once the cluster records it as the master.
    wait_for(lambda: net.has_addr(0, vip), 60, "the VIP on the master")
    assert not net.has_addr(1, vip)
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False
    wait_for(lambda: net.has_addr(1, vip) and not net.has_addr(0, vip), 60,
             "the VIP moved to the new master")
    # A client that only knows the VIP reaches the new master.

    def through_vip():
        with psycopg2.connect(host=vip, port=s.port, user="postgres", password=SUPERPASS,
                              dbname="postgres", connect_timeout=3) as c:
            with c.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery(), inet_server_addr()")
                return cur.fetchone()
    row = wait_for(through_vip, 30, "a connection through the VIP")
    assert row[0] is False and str(row[1]) == vip, row

"""The network-namespace harness itself: links, partitions, addresses,
PostgreSQL and an agent inside namespaces, and a clean teardown."""
import errno
import os
import signal
import subprocess
import time

import pytest

from harness import wait_for
from netns import (Net, ip, link_list, make_net, net, netns_list, ns_cluster,  # noqa: F401
                   pick_subnet)


def matrix(net, ports):
    """reach[a][b]: whether host a opens a TCP connection to host b."""
    return [[net.tcp_ok(a, b, ports[b]) for b in range(net.n)] for a in range(net.n)]


def listeners(net):
    return [net.listen(i)[1] for i in range(net.n)]


def leftovers(tag):
    return ([n for n in netns_list() if tag in n], [n for n in link_list() if tag in n])


def test_hosts_reach_each_other_and_nothing_else(net):
    ports = listeners(net)
    assert matrix(net, ports) == [[True] * net.n] * net.n
    assert all(net.tcp_ok(None, b, ports[b]) for b in range(net.n)), "controller"
    for i in range(net.n):
        # lo is up (PostgreSQL needs it) and the only route is the subnet's.
        s, port = net.listen(i, addr="127.0.0.1")
        assert net.tcp_ok(i, "127.0.0.1", port)
        routes = net.run(i, ["ip", "-4", "route", "show", "table", "all"]).stdout
        assert "default" not in routes, routes
        assert net.has_addr(i, net.addr(i))
    # Off the subnet there is no route at all: a connection fails at once.
    s = net.socket(0)
    assert s.connect_ex(("8.8.8.8", 53)) == errno.ENETUNREACH
    s.close()
    for name in net.bridges.values():
        with open(f"/proc/sys/net/ipv4/conf/{name}/forwarding") as f:
            assert f.read().strip() == "0"


def test_isolate_and_heal(net):
    ports = listeners(net)
    net.isolate(1)
    t = time.monotonic()
    assert not net.tcp_ok(0, 1, ports[1], timeout=0.5)
    assert time.monotonic() - t < 1.5, "a cut-off connect must fail quickly"
    assert not net.tcp_ok(1, 2, ports[2])
    assert net.tcp_ok(0, 2, ports[2]) and net.tcp_ok(2, 0, ports[0])
    assert net.tcp_ok(None, 1, ports[1]), "the controller keeps reaching an isolated host"
    net.heal(1)
    wait_for(lambda: net.tcp_ok(0, 1, ports[1]) and net.tcp_ok(1, 2, ports[2]), 1,
             "host 1 reachable again right after heal")


def test_hard_isolate_cuts_the_controller_too(net):
    ports = listeners(net)
    net.isolate(2, hard=True)
    assert not net.tcp_ok(None, 2, ports[2])
    assert not net.tcp_ok(0, 2, ports[2])
    assert net.tcp_ok(0, 1, ports[1])
    net.heal(2)
    wait_for(lambda: net.tcp_ok(None, 2, ports[2]) and net.tcp_ok(0, 2, ports[2]), 1,
             "host 2 reachable again right after heal")


def test_partition_and_heal_all(net):
    ports = listeners(net)
    # Traffic first, so every host has ARP entries the partition must defeat.
    assert matrix(net, ports) == [[True] * 3] * 3
    net.partition([[0, 1], [2]])
    want = [[True, True, False], [True, True, False], [False, False, True]]
    assert matrix(net, ports) == want
    assert [[net.connected(a, b) for b in range(3)] for a in range(3)] == want
    assert all(net.tcp_ok(None, b, ports[b]) for b in range(3)), "controller"
    net.partition([[0], [1, 2]])
    assert matrix(net, ports) == [[True, False, False], [False, True, True],
                                  [False, True, True]]
    net.heal_all()
    wait_for(lambda: matrix(net, ports) == [[True] * 3] * 3, 1, "full mesh after heal_all")


def test_virtual_ip_moves_between_hosts(net):
    vip = net.vip()
    assert not net.has_addr(1, vip)
    net.add_addr(1, vip)
    assert net.has_addr(1, vip) and not net.has_addr(2, vip)
    _, p1 = net.listen(1, addr=vip)
    assert net.tcp_ok(0, vip, p1) and net.tcp_ok(None, vip, p1)
    net.del_addr(1, vip)
    assert not net.has_addr(1, vip)
    net.add_addr(2, vip)
    _, p2 = net.listen(2, addr=vip)
    assert net.tcp_ok(0, vip, p2), "the VIP answers from its new host at once"
    assert not net.tcp_ok(0, vip, p1)


def test_streaming_replication_across_namespaces(ns_cluster, net):
    fast = "wal_sender_timeout = 2s\n"
    m = ns_cluster.master(0, conf=fast)
    s = ns_cluster.standby(m, 1, conf="wal_receiver_timeout = 2s\n"
                           "wal_retrieve_retry_interval = 500ms\n")
    m.sql("CREATE TABLE t (i int)")
    m.sql("INSERT INTO t VALUES (1)")
    wait_for(lambda: s.sql("SELECT count(*) FROM t")[0][0] == 1, 10, "row on the standby")

    def receiver():
        rows = s.sql("SELECT status, sender_host FROM pg_stat_wal_receiver")
        return rows[0] if rows else None

    assert wait_for(receiver, 10, "walreceiver") == ("streaming", m.host)
    net.partition([[0], [1, 2]])
    wait_for(lambda: receiver() is None or receiver()[0] != "streaming", 10,
             "walreceiver to notice the partition")
    m.sql("INSERT INTO t VALUES (2)")
    time.sleep(0.5)  # let a replication attempt run into the partition
    assert s.sql("SELECT count(*) FROM t")[0][0] == 1, "WAL crossed a partition"
    net.heal_all()
    wait_for(lambda: s.sql("SELECT count(*) FROM t")[0][0] == 2, 15,
             "replication to resume after heal")
    # The Unix socket works whatever the network does.
    net.isolate(1, hard=True)
    assert s.sql("SELECT pg_is_in_recovery()", local=True) == [(True,)]


def test_agent_runs_in_its_namespace(ns_cluster, net):
    ns_cluster.master(0)
    a = ns_cluster.agent(0).start()
    n = a.node_status()
    assert n.get("healthy") is True, n
    assert n.get("type") == "Master", n
    which = subprocess.run(["ip", "netns", "identify", str(a.proc.pid)], capture_output=True,
                           text=True).stdout.strip()
    assert which == net.ns[0]


def test_teardown_removes_everything_even_after_failure():
    with pytest.raises(RuntimeError, match="test failed"):
        with make_net(2) as n:
            tag = n.tag
            n.partition([[0], [1]])   # an extra segment bridge to remove too
            sleeper = subprocess.Popen(n.exec_prefix(1) + ["sleep", "300"])
            assert leftovers(tag) != ([], [])
            raise RuntimeError("test failed")
    assert leftovers(tag) == ([], [])
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert pick_subnet() == n.subnet, "the controller address is gone"
    assert not [r for r in ip("-4", "route").splitlines() if r.startswith(str(n.subnet))]


def dead_pid():
    pid = 0x3ff000 + os.getpid() % 0xfff
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        pid += 1


def test_leftovers_of_a_crashed_run_are_removed():
    tag = f"{dead_pid():06x}abc"
    ns, bridge, veth = f"efm-{tag}-0", f"efb{tag}", f"efv{tag}0"
    ip("netns", "add", ns)
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", veth, "master", bridge)
        ip("link", "add", f"efb{tag}s1", "type", "bridge")
        orphan = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "300"])
        wait_for(lambda: ip("netns", "pids", ns).split(), 5, "the orphan to start")
        with make_net(1) as n:
            assert leftovers(tag) == ([], [])
            assert orphan.wait(timeout=5) == -signal.SIGKILL
            assert n.tcp_ok(None, 0, n.listen(0)[1])
    finally:
        ip("netns", "del", ns, check=False)
        for name in (veth, f"efb{tag}s1", bridge):
            ip("link", "del", name, check=False)


def test_one_net_at_a_time(net):
    with pytest.raises(RuntimeError, match="one Net"):
        Net(1).setup()
    assert net.tcp_ok(None, 0, net.listen(0)[1])

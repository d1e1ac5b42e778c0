"""Network partitions between agents in network namespaces: the minority
knows it is in the minority, the majority keeps working, and a healed node
rejoins within seconds."""
import json
import time

import pytest

from harness import wait_for
from netns import net, ns_cluster  # noqa: F401 (fixtures)

NODE_TIMEOUT = 3


def messages(agent):
    r = agent.efm("cluster-status-json", agent.cluster.name, timeout=20)
    return json.loads(r.stdout).get("messages", []) if r.stdout.strip() else []


def in_minority(agent):
    return any("minority" in m for m in messages(agent))


def ups(agent):
    r = agent.efm("cluster-status-json", agent.cluster.name, timeout=20)
    if not r.stdout.strip():
        return set()
    st = json.loads(r.stdout)
    return {h for h, n in st["nodes"].items() if n["agent"] == "UP"}


def build(ns_cluster, n_db, n_total):
    """Host 0 master, 1..n_db-1 standbys, the rest witnesses; all listed everywhere."""
    m = ns_cluster.master(0)
    for i in range(1, n_db):
        ns_cluster.standby(m, i)
    listed = [f"{ns_cluster.net.addr(i)}:{ns_cluster.bind_port}" for i in range(n_total)]
    agents = []
    for i in range(n_total):
        extra = {"is_witness": "true"} if i >= n_db else {}
        a = ns_cluster.agent(i, node_timeout=NODE_TIMEOUT, **extra)
        a.nodes = listed
        a.write_config()
        agents.append(a)
    for a in agents:
        a.start(wait=False)
    everyone = {ns_cluster.net.addr(i) for i in range(n_total)}
    for a in agents:
        wait_for(lambda: ups(a) == everyone, 40, f"{a.host} to see every member UP")
    return agents, everyone


def test_isolated_node_knows_and_rejoins(net, ns_cluster):
    agents, everyone = build(ns_cluster, 2, 3)
    t0 = time.monotonic()
    net.partition([[0, 1], [2]])
    wait_for(lambda: in_minority(agents[2]), 10, "the isolated witness to know")
    knew = time.monotonic() - t0
    assert not in_minority(agents[0]) and not in_minority(agents[1])
    # The majority still applies commands.
    r = agents[0].efm("add-node", ns_cluster.name, "192.0.2.99")
    assert r.returncode == 0, r.stderr
    # A command on the minority side fails clearly and quickly.
    t1 = time.monotonic()
    r = agents[2].efm("add-node", ns_cluster.name, "192.0.2.98")
    assert r.returncode != 0 and "leader" in r.stderr, r.stderr
    assert time.monotonic() - t1 < 12
    net.heal_all()
    t2 = time.monotonic()
    for a in agents:
        wait_for(lambda: ups(a) == everyone and not in_minority(a), 20, f"{a.host} healed")
    healed = time.monotonic() - t2
    assert healed < 10, f"rejoined after {healed:.1f}s"
    print(f"minority knew after {knew:.1f}s, rejoined {healed:.1f}s after healing")


@pytest.mark.parametrize("net", [5], indirect=True)
def test_five_nodes_split_two_three(net, ns_cluster):
    agents, everyone = build(ns_cluster, 2, 5)
    net.partition([[0, 1], [2, 3, 4]])
    for a in agents[:2]:
        wait_for(lambda: in_minority(a), 10, f"{a.host} to know it is in the minority")
    # The majority side elects a leader of its own if the old one is cut off.
    for a in agents[2:]:
        wait_for(lambda: not in_minority(a), 10, f"{a.host} to be in the majority")
    r = agents[3].efm("add-node", ns_cluster.name, "192.0.2.99")
    assert r.returncode == 0, r.stderr
    r = agents[0].efm("add-node", ns_cluster.name, "192.0.2.98")
    assert r.returncode != 0
    net.heal_all()
    for a in agents:
        wait_for(lambda: ups(a) == everyone and not in_minority(a), 30, f"{a.host} healed")


def bootstraps(agents):
    return sum(a.read_log().count("bootstrapped a new cluster") for a in agents)


def test_partial_connectivity_at_first_start_forms_one_cluster(net, ns_cluster):  # noqa: F811
    # Hosts 0 and 1 cannot reach each other, both reach 2: without votes, 0
    # and 1 could each find a "majority" with 2's answer and bootstrap twice.
    def cut(i, j, op):
        net.run(i, ["ip", "route", op, "blackhole", f"{net.addr(j)}/32"])
        net.run(j, ["ip", "route", op, "blackhole", f"{net.addr(i)}/32"])

    cut(0, 1, "add")
    listed = [f"{net.addr(i)}:{ns_cluster.bind_port}" for i in range(3)]
    agents = []
    for i in range(3):
        a = ns_cluster.agent(i, node_timeout=NODE_TIMEOUT, is_witness="true")
        a.nodes = listed
        a.write_config()
        agents.append(a)
    for a in agents:
        a.start(wait=False)
    wait_for(lambda: bootstraps(agents) >= 1, 40, "a cluster to be started")
    # Votes are held for at least 10 s: watch past that for a second bootstrap.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert bootstraps(agents) == 1, "two clusters were bootstrapped"
        time.sleep(0.5)
    cut(0, 1, "del")
    everyone = {net.addr(i) for i in range(3)}
    for a in agents:
        wait_for(lambda: ups(a) == everyone, 60, f"{a.host} to see every member UP")
    assert bootstraps(agents) == 1

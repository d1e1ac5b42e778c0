"""Agents forming a cluster on 127.0.0.x: bootstrap in any order, join, leave,
crashes, node management commands, a forged peer, stop-cluster."""
import itertools
import json
import os
import signal
import socket
import time

import pytest

from harness import wait_for

M, S, W, X = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
NODE_TIMEOUT = 3


def addr(cluster, host):
    return f"{host}:{cluster.bind_port}"


def nodes_file(agent):
    with open(os.path.join(agent.config_dir, f"{agent.cluster.name}.nodes")) as f:
        return set(f.read().split())


def members(agent):
    st, _ = agent.status()
    return st


def three(cluster, hosts=(M, S, W)):
    """Master, standby and witness agents (not started), each listing all three."""
    m = cluster.master(M)
    cluster.standby(m, S)
    listed = [addr(cluster, h) for h in hosts]
    agents = {}
    for h in hosts:
        extra = {"is_witness": "true"} if h == W else {}
        a = cluster.agent(h, node_timeout=NODE_TIMEOUT, **extra)
        a.nodes = listed
        a.write_config()
        agents[h] = a
    return agents


def view(agent):
    """host -> (type, agent, db) as this agent reports them."""
    try:
        st, _ = agent.status()
    except (ValueError, json.JSONDecodeError):
        return {}
    return {h: (n["type"], n["agent"], n["db"]) for h, n in st["nodes"].items()}


def all_see(agents, expect, timeout=30):
    """Wait until every agent reports exactly `expect` (host -> (type, agent, db))."""
    for a in agents:
        wait_for(lambda: view(a) == expect, timeout, f"{a.host} to see {expect}")


FULL = {M: ("Master", "UP", "UP"), S: ("Standby", "UP", "UP"), W: ("Witness", "UP", "UNKNOWN")}


def bootstraps(agents):
    return sum(a.read_log().count("bootstrapped a new cluster") for a in agents)


def test_three_agents_started_together_form_one_cluster(cluster):
    ag = three(cluster)
    for a in ag.values():
        a.start(wait=False)
    for a in ag.values():
        wait_for(lambda: a.node_status().get("healthy"), 30, f"{a.host} healthy")
    all_see(ag.values(), FULL)
    assert bootstraps(ag.values()) == 1
    want = {addr(cluster, h) for h in (M, S, W)}
    for a in ag.values():
        wait_for(lambda: nodes_file(a) == want, 10, f"{a.host} .nodes rewritten")
        st = members(a)
        assert sorted(st["allowednodes"]) == sorted([M, S, W])
        assert st["failoverpriority"] == [S]
    text = ag[W].efm("cluster-status", cluster.name)
    assert "Witness" in text.stdout and "Standby" in text.stdout, text.stdout


@pytest.mark.parametrize("order", list(itertools.permutations((M, S, W))))
def test_three_agents_started_in_order(cluster, order):
    ag = three(cluster)
    for h in order:
        ag[h].start()  # each one healthy before the next starts
    all_see(ag.values(), FULL)
    assert bootstraps(ag.values()) == 1


def started_three(cluster):
    ag = three(cluster)
    for a in ag.values():
        a.start(wait=False)
    for a in ag.values():
        wait_for(lambda: a.node_status().get("healthy"), 30, f"{a.host} healthy")
    all_see(ag.values(), FULL)
    return ag


def leader_of(agents):
    for a in agents:
        if "this agent is now the cluster leader" in a.read_log():
            last = a.read_log().rsplit("this agent is now the cluster leader", 1)[1]
            if "stopping" not in last:
                return a
    return None


def test_add_node_with_priority_then_start_and_refusal(cluster):
    ag = started_three(cluster)
    m = cluster.servers[0]
    # A node outside the allowed list is refused and exits with its own code.
    s2 = cluster.standby(m, X)
    x = cluster.agent(X, node_timeout=NODE_TIMEOUT)
    x.nodes = [addr(cluster, M)]
    x.write_config()
    x.start(wait=False)
    assert x.wait_exit(30) == 77, x.read_log()
    assert "refused" in x.read_log()
    assert any("refusing to admit agent" in a.read_log() for a in ag.values())
    # add-node on a follower (the witness), with priority 1.
    r = ag[W].efm("add-node", cluster.name, X, "1")
    assert r.returncode == 0, r.stderr
    # M may be a follower that applies the committed entry a moment later.
    st = wait_for(lambda: (lambda s: s if s["failoverpriority"][:1] == [X] else None)(
        members(ag[M])), 10, "the new priority on the master's node")
    assert X in st["allowednodes"]
    x2 = cluster.agent(X, name="5b", node_timeout=NODE_TIMEOUT)
    x2.nodes = [addr(cluster, M)]
    x2.write_config()
    x2.start()
    expect = dict(FULL, **{X: ("Standby", "UP", "UP")})
    all_see(list(ag.values()) + [x2], expect)
    assert members(ag[S])["failoverpriority"] == [X, S]
    for a in ag.values():
        wait_for(lambda: addr(cluster, X) in nodes_file(a), 10, ".nodes lists the 4th node")
    # set-priority and remove-node
    r = ag[S].efm("set-priority", cluster.name, S, "1")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: members(ag[W])["failoverpriority"] == [S, X], 10, "priority moved")
    r = ag[M].efm("remove-node", cluster.name, X)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: X not in members(ag[W])["allowednodes"], 10, "X disallowed")


def test_graceful_stop_of_standby_and_leader(cluster):
    ag = started_three(cluster)
    assert ag[S].stop() == 0
    rest = [ag[M], ag[W]]
    all_see(rest, {M: FULL[M], W: FULL[W]}, timeout=15)
    for a in rest:
        wait_for(lambda: nodes_file(a) == {addr(cluster, M), addr(cluster, W)}, 10,
                 ".nodes without the standby")
    assert not os.listdir(os.path.join(ag[S].state_dir, cluster.name, "raft"))
    # Two voters now: the status says there is no failover protection.
    assert any("Only two agents vote" in m for m in members(ag[M])["messages"])
    # Start the standby again: it joins back.
    ag[S].start()
    all_see(ag.values(), FULL)
    lead = leader_of(ag.values())
    assert lead is not None
    t0 = time.monotonic()
    assert lead.stop() == 0
    assert time.monotonic() - t0 < 8
    rest = [a for a in ag.values() if a is not lead]
    expect = {h: v for h, v in FULL.items() if h != lead.host}
    all_see(rest, expect, timeout=15)
    r = rest[0].efm("add-node", cluster.name, X)
    assert r.returncode == 0, r.stderr


def test_kill_follower_and_leader(cluster):
    ag = started_three(cluster)
    lead = leader_of(ag.values())
    follower = next(a for a in ag.values() if a is not lead and a.host != M) \
        if lead.host == M else next(a for a in ag.values() if a is not lead)
    follower.stop(signal.SIGKILL)
    others = [a for a in ag.values() if a is not follower]
    down = dict(FULL)
    down[follower.host] = (FULL[follower.host][0], "DOWN", "UNKNOWN")
    t0 = time.monotonic()
    wait_for(lambda: view(others[0]).get(follower.host, (None, None))[1] == "DOWN", 15,
             "follower shown DOWN")
    took = time.monotonic() - t0
    assert took >= NODE_TIMEOUT - 1.5, f"DOWN after only {took:.1f}s"
    # Removed after the node timeout (2x): gone from status and .nodes.
    expect = {h: v for h, v in FULL.items() if h != follower.host}
    all_see(others, expect, timeout=20)
    for a in others:
        wait_for(lambda: addr(cluster, follower.host) not in nodes_file(a), 10, ".nodes")
    # Restart it: it joins again.
    follower.start()
    all_see(ag.values(), FULL)
    # Now kill the leader: a new leader is elected and the command path works.
    lead = leader_of(ag.values())
    lead.stop(signal.SIGKILL)
    others = [a for a in ag.values() if a is not lead]
    wait_for(lambda: others[0].efm("add-node", cluster.name, X).returncode == 0, 20,
             "a new leader applies commands")
    expect = {h: v for h, v in FULL.items() if h != lead.host}
    all_see(others, expect, timeout=20)


def test_forged_peers_do_not_disturb(cluster):
    ag = started_three(cluster)
    port = cluster.bind_port
    junk = [os.urandom(600), b"EFMA\x01\x02" + b"\x00" * 8 + b"\xff\xff",
            b"\xff\xff\xff\xff" * 10, b"EFMA" + os.urandom(100)]
    for payload in junk * 3:
        s = socket.create_connection((M, port), timeout=2)
        try:
            s.sendall(payload)
            time.sleep(0.05)
        except OSError:
            pass
        s.close()
    all_see(ag.values(), FULL, timeout=10)
    assert "handshake" in ag[M].read_log() or "refus" in ag[M].read_log()
    r = ag[S].efm("add-node", cluster.name, X)
    assert r.returncode == 0, r.stderr


def test_stop_cluster_and_restart(cluster):
    ag = started_three(cluster)
    before = {h: nodes_file(a) for h, a in ag.items()}
    r = ag[S].efm("stop-cluster", cluster.name)
    assert r.returncode == 0, r.stderr
    for a in ag.values():
        assert a.wait_exit(15) == 0
    assert {h: nodes_file(a) for h, a in ag.items()} == before
    for a in ag.values():
        a.start(wait=False)
    for a in ag.values():
        wait_for(lambda: a.node_status().get("healthy"), 30, f"{a.host} healthy")
    all_see(ag.values(), FULL)
    assert bootstraps(ag.values()) == 1, "the cluster resumed, no new bootstrap"


def test_command_without_leader_fails_fast(cluster):
    ag = started_three(cluster)
    ag[M].stop(signal.SIGKILL)
    ag[S].stop(signal.SIGKILL)
    wait_for(lambda: any("minority" in m for m in members(ag[W])["messages"]), 15,
             "the witness to know it is in the minority")
    t0 = time.monotonic()
    r = ag[W].efm("add-node", cluster.name, X)
    assert r.returncode != 0
    assert time.monotonic() - t0 < 12
    assert "leader" in r.stderr, r.stderr
    st = members(ag[W])
    assert any("minority" in m for m in st["messages"]), st["messages"]

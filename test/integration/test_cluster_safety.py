"""Safety of the cluster layer: a refused agent never votes and is not re-proposed
every tick, .nodes follows the applied state (log replay, snapshot restore), and a
stalled event loop is noticed."""
import os
import signal
import time

from harness import wait_for
from test_cluster import FULL, M, NODE_TIMEOUT, S, W, X, addr, all_see, bootstraps, \
    started_three, three, view


def nodes_path(agent):
    return os.path.join(agent.config_dir, f"{agent.cluster.name}.nodes")


def nodes_text(agent):
    with open(nodes_path(agent)) as f:
        return f.read()


def logs(agents):
    return "".join(a.read_log() for a in agents)


def test_refused_master_never_votes_and_backs_off(cluster):
    """A fourth node running its own master database is allowed, but the
    cluster already records a master: its join is refused before it is made a
    voter, and its report is re-sent with a growing delay, warned about once."""
    ag = started_three(cluster)
    r = ag[S].efm("add-node", cluster.name, X)
    assert r.returncode == 0, r.stderr
    cluster.master(X)  # a second, unrelated master database
    x = cluster.agent(X, node_timeout=NODE_TIMEOUT)
    x.nodes = [addr(cluster, M)]
    x.write_config()
    x.start(wait=False)
    xa = addr(cluster, X)
    wait_for(lambda: "already the master" in logs(ag.values()), 30, "the refusal")
    assert f"agent {xa} is now a voting member" not in logs(ag.values())
    # Three refusals in a row: 1 s, then 2 s, then 4 s between them.
    wait_for(lambda: "next report in 4 s" in x.read_log(), 40, "the refused agent to back off")
    assert not x.exited(), x.read_log()[-3000:]
    assert f"agent {xa} is now a voting member" not in logs(ag.values())
    # The leader warned once for the whole episode, the agent too.
    warned = logs(ag.values()).count(f"refusing the report of agent {xa}")
    assert warned == 1, warned
    assert x.read_log().count("the leader refuses this agent's report") == 1
    # The three members never counted X: every view is still the same three.
    for a in ag.values():
        assert view(a) == FULL
    # X going away costs nothing: it was never a voter.
    x.stop(signal.SIGKILL)
    r = ag[W].efm("add-node", cluster.name, "127.0.0.6")
    assert r.returncode == 0, r.stderr


def test_nodes_file_untouched_by_a_restart(cluster):
    """Replaying the log on restart rewrites nothing: .nodes already holds the state."""
    ag = started_three(cluster)
    want = " ".join(sorted(addr(cluster, h) for h in (M, S, W)))
    for a in ag.values():
        wait_for(lambda: " ".join(sorted(nodes_text(a).split())) == want, 10, ".nodes")
    r = ag[S].efm("stop-cluster", cluster.name)
    assert r.returncode == 0, r.stderr
    for a in ag.values():
        assert a.wait_exit(15) == 0
    # A rewrite makes a new file with the current time; this one is dated 2001.
    old = 1000000000
    for a in ag.values():
        os.utime(nodes_path(a), (old, old))
    for a in ag.values():
        a.start(wait=False)
    for a in ag.values():
        wait_for(lambda: view(a) == FULL, 30, f"{a.host} to see the cluster again")
    for h, a in ag.items():
        assert os.stat(nodes_path(a)).st_mtime == old, f"{h}: .nodes was rewritten"
        assert "cluster acctg: " + nodes_path(a) + " now lists" not in \
            a.read_log().rsplit("listening (raft id", 1)[1]


def test_nodes_file_written_after_a_snapshot_restore(cluster):
    """When the member entries are compacted into a snapshot, a restart restores
    the state from it; .nodes must still come out of that state."""
    ag = started_three(cluster)
    order = nodes_text(ag[M])
    # Enough entries after the joins for them to end up in a snapshot
    # (raftio.c: every 64 entries, 32 kept).
    for i in range(110):
        r = ag[M].efm("set-priority", cluster.name, S, "1")  # ALREADY: still an entry
        assert r.returncode == 0, r.stderr
    r = ag[S].efm("stop-cluster", cluster.name)
    assert r.returncode == 0, r.stderr
    for a in ag.values():
        assert a.wait_exit(15) == 0
    # Same hosts, another order: the agents still find each other, but the
    # file no longer holds what the state says.
    shuffled = " ".join(reversed(order.split())) + "\n"
    assert shuffled != order
    for a in ag.values():
        with open(nodes_path(a), "w") as f:
            f.write(shuffled)
        a.start(wait=False)
    for a in ag.values():
        wait_for(lambda: view(a) == FULL, 30, f"{a.host} to see the cluster again")
    for a in ag.values():
        log = a.read_log().rsplit("listening (raft id", 1)[1]
        assert "state restored from a snapshot" in log, "the test needs a snapshot"
        wait_for(lambda: nodes_text(a) == order, 10, f"{a.host}: .nodes rewritten")


def test_loop_stall_is_noticed(cluster):
    """An agent whose loop could not run for longer than a quarter of the node
    timeout says so when it runs again."""
    cluster.master(M)
    a = cluster.agent(M, node_timeout=NODE_TIMEOUT)
    a.nodes = [addr(cluster, M)]
    a.write_config()
    a.start()
    assert "event loop was stalled" not in a.read_log()
    a.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.5)  # the stall itself (T/4 = 0.75 s)
    finally:
        a.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: "event loop was stalled" in a.read_log(), 10, "the stall warning")
    line = next(ln for ln in a.read_log().splitlines() if "event loop was stalled" in ln)
    assert "WARNING" in line, line


def test_master_following_another_leader_keeps_its_lease(cluster):
    """A master agent that joins a cluster led by another agent proves its
    two-way contact with a majority of the voters (heartbeat echoes), so it
    never fences itself for isolation while nothing is cut."""
    ag = three(cluster)
    ag[S].start(wait=False)
    ag[W].start(wait=False)
    wait_for(lambda: bootstraps([ag[S], ag[W]]) == 1, 30, "S and W to form the cluster")
    ag[M].start(wait=False)
    wait_for(lambda: "two-way contact with a majority" in ag[M].read_log(), 20,
             "the master's lease")
    all_see(ag.values(), FULL)
    assert "fencing the local database" not in ag[M].read_log()

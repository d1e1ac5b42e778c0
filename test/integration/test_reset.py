"""reset-members after a lost quorum, its refusal on a healthy cluster, and a
node joining after many entries (through a Raft snapshot)."""
import signal
import subprocess
import time

from harness import EFM, wait_for
from test_cluster import FULL, M, NODE_TIMEOUT, S, W, X, addr, leader_of, members, \
    nodes_file, started_three, three, view

Y = "127.0.0.6"


def minority(agent):
    st = members(agent)
    return any("minority" in m for m in st["messages"])


def no_asan(agents):
    for a in agents:
        log = a.read_log()
        assert "AddressSanitizer" not in log and "runtime error:" not in log, log[-3000:]


def test_reset_members_after_two_of_three_crash(cluster):
    ag = started_three(cluster)
    # Kill two at once, well before the node timeout removes them.
    ag[M].stop(signal.SIGKILL)
    ag[S].stop(signal.SIGKILL)
    w = ag[W]
    wait_for(lambda: minority(w), 10, "the survivor to know it is in the minority")
    r = w.efm("add-node", cluster.name, X)
    assert r.returncode != 0 and "leader" in r.stderr, (r.returncode, r.stderr)
    # Still lost after well over the node timeout: nobody may remove anybody.
    time.sleep(NODE_TIMEOUT)
    assert minority(w)
    r = w.efm("reset-members", cluster.name, "--yes")
    assert r.returncode == 0, r.stderr
    assert addr(cluster, W) in r.stdout and "voting set" in r.stdout, r.stdout
    wait_for(lambda: view(w) == {W: FULL[W]}, 20, "the survivor alone in the status")
    wait_for(lambda: not minority(w), 10, "the survivor leads")
    wait_for(lambda: nodes_file(w) == {addr(cluster, W)}, 10, ".nodes without the dead")
    r = w.efm("add-node", cluster.name, X)
    assert r.returncode == 0, r.stderr
    assert X in members(w)["allowednodes"]
    log = w.read_log()
    for step in ("reset-members requested", "probe of", "the new voting set is",
                 "consensus module restarted", "left out by reset-members"):
        assert step in log, step
    # A member left out that comes back later rejoins the rebuilt cluster.
    ag[M].start()
    both = {M: FULL[M], W: FULL[W]}
    for a in (w, ag[M]):
        wait_for(lambda: view(a) == both, 30, f"{a.host} to see the master back")
    wait_for(lambda: nodes_file(w) == {addr(cluster, M), addr(cluster, W)}, 10, ".nodes")
    no_asan([w, ag[M]])


def test_reset_members_refused_on_healthy_cluster(cluster):
    ag = started_three(cluster)
    before = {h: (view(a), nodes_file(a), members(a)["allowednodes"]) for h, a in ag.items()}
    r = ag[S].efm("reset-members", cluster.name, "--yes")
    assert r.returncode != 0
    assert "refused" in r.stderr and "quorum is not lost" in r.stderr, r.stderr
    time.sleep(1)
    after = {h: (view(a), nodes_file(a), members(a)["allowednodes"]) for h, a in ag.items()}
    assert after == before
    assert "reset-members refused" in ag[S].read_log()
    assert not any("consensus module restarted" in a.read_log() for a in ag.values())
    # Without --yes and without a terminal the client refuses to ask.
    r = ag[S].efm("reset-members", cluster.name)
    assert r.returncode != 0 and "--yes" in r.stderr, r.stderr
    no_asan(ag.values())


def test_reset_members_two_survivors_of_four(cluster):
    ag = three(cluster)
    m = cluster.servers[0]
    cluster.standby(m, X)
    x = cluster.agent(X, node_timeout=NODE_TIMEOUT)
    x.nodes = [addr(cluster, h) for h in (M, S, W, X)]
    x.write_config()
    for a in ag.values():
        a.nodes = x.nodes
        a.write_config()
        a.start(wait=False)
    x.start(wait=False)
    allx = list(ag.values()) + [x]
    full4 = dict(FULL, **{X: ("Standby", "UP", "UP")})
    for a in allx:
        wait_for(lambda: view(a) == full4, 40, f"{a.host} to see four")
    ag[M].stop(signal.SIGKILL)
    ag[S].stop(signal.SIGKILL)
    survivors = [ag[W], x]
    for a in survivors:
        wait_for(lambda: minority(a), 10, f"{a.host} in the minority")
    r = x.efm("reset-members", cluster.name, "--yes")
    assert r.returncode == 0, r.stderr
    assert addr(cluster, W) in r.stdout and addr(cluster, X) in r.stdout, r.stdout
    expect = {W: FULL[W], X: ("Standby", "UP", "UP")}
    for a in survivors:
        wait_for(lambda: view(a) == expect, 20, f"{a.host} to see the two survivors")
        wait_for(lambda: nodes_file(a) == {addr(cluster, W), addr(cluster, X)}, 10, ".nodes")
    assert "forces the voting set" in ag[W].read_log()
    r = ag[W].efm("add-node", cluster.name, Y)
    assert r.returncode == 0, r.stderr
    no_asan(survivors)


def test_reset_members_phase_one_alone_restarts_nothing(cluster):
    """A participant that does not answer the prepare (phase 1) aborts the
    reset: no agent restarts its consensus module, even the one that gets
    the proposal late, and every agent keeps the old four-member voting set."""
    ag = three(cluster)
    m = cluster.servers[0]
    cluster.standby(m, X)
    x = cluster.agent(X, node_timeout=NODE_TIMEOUT)
    x.nodes = [addr(cluster, h) for h in (M, S, W, X)]
    x.write_config()
    for a in ag.values():
        a.nodes = x.nodes
        a.write_config()
        a.start(wait=False)
    x.start(wait=False)
    allx = list(ag.values()) + [x]
    full4 = dict(FULL, **{X: ("Standby", "UP", "UP")})
    for a in allx:
        wait_for(lambda: view(a) == full4, 40, f"{a.host} to see four")
    # Frozen, not killed: their sockets still accept, so each probe of them
    # hangs for the whole call bound, which leaves time to freeze W after it
    # answered its own probe.
    ag[M].proc.send_signal(signal.SIGSTOP)
    ag[S].proc.send_signal(signal.SIGSTOP)
    w = ag[W]
    for a in (w, x):
        wait_for(lambda: minority(a), 10, f"{a.host} in the minority")
    probed = "asks whether this agent runs without a leader"
    assert probed not in w.read_log()
    op = subprocess.Popen([EFM, "reset-members", cluster.name, "--yes"], env=x.env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: probed in w.read_log(), 5, "W to answer the probe")
        time.sleep(0.3)  # let the answer leave W before freezing it
        w.proc.send_signal(signal.SIGSTOP)
        out, err = op.communicate(timeout=40)
    finally:
        w.proc.send_signal(signal.SIGCONT)
        if op.poll() is None:
            op.kill()
    assert op.returncode != 0, out
    assert "refused" in err and addr(cluster, W) in err and "did not answer" in err, err
    assert "Nothing was restarted" in err, err
    xlog = x.read_log()
    for step in ("proposing the new voting set to " + addr(cluster, W),
                 "did not answer the prepare", "telling " + addr(cluster, W) + " to drop",
                 "aborted before any restart"):
        assert step in xlog, step
    assert "sending the commit" not in xlog
    # W may still read the stale proposal once thawed: it only prepares it,
    # then drops it on the abort or when it expires.
    time.sleep(12)  # past the 10 s a prepared set is held
    wlog = w.read_log()
    if "proposes the voting set" in wlog:
        assert "expired after" in wlog or "aborted reset" in wlog, wlog[-3000:]
    for a in (w, x):
        log = a.read_log()
        assert "stopping the consensus module" not in log, a.host
        assert "consensus module restarted" not in log, a.host
        assert "commits reset" not in log, a.host
        assert minority(a), a.host
    # Every agent kept the old configuration: thawing the other two brings
    # the four-member cluster back as it was.
    ag[M].proc.send_signal(signal.SIGCONT)
    ag[S].proc.send_signal(signal.SIGCONT)
    for a in allx:
        wait_for(lambda: view(a) == full4, 40, f"{a.host} to see four again")
        wait_for(lambda: not minority(a), 20, f"{a.host} back in the majority")
    no_asan(allx)


def test_node_joins_after_many_entries_through_a_snapshot(cluster):
    """raftio.c snapshots every 64 entries and keeps 32: after 200 commands a
    new member cannot be sent the log from the start and gets a snapshot.
    (The threshold is low on purpose, so no test knob is needed.)"""
    ag = started_three(cluster)
    # The allowed list holds at most 64 hosts: add 50, move priorities around,
    # remove half of them again (205 commands).
    dummies = [f"10.9.0.{i + 1}" for i in range(50)]
    for d in dummies:
        r = ag[S].efm("add-node", cluster.name, d)
        assert r.returncode == 0, r.stderr
    for i in range(130):
        r = ag[M].efm("set-priority", cluster.name, dummies[i % 50], str(i % 7 + 1))
        assert r.returncode == 0, r.stderr
    for d in dummies[::2]:
        r = ag[W].efm("remove-node", cluster.name, d)
        assert r.returncode == 0, r.stderr
    r = ag[W].efm("add-node", cluster.name, X, "2")
    assert r.returncode == 0, r.stderr
    # M may be a follower that applies the last committed entries a moment later.
    ref = wait_for(lambda: (lambda st: st if len(st["allowednodes"]) == 3 + 25 + 1 else None)(
        members(ag[M])), 10, "every command applied on the master's node")
    assert len(ref["failoverpriority"]) > 2
    m = cluster.servers[0]
    cluster.standby(m, X)
    x = cluster.agent(X, node_timeout=NODE_TIMEOUT)
    x.nodes = [addr(cluster, M)]
    x.write_config()
    x.start()
    expect = dict(FULL, **{X: ("Standby", "UP", "UP")})
    wait_for(lambda: view(x) == expect, 30, "the new node to see every member")
    st = members(x)
    assert sorted(st["allowednodes"]) == sorted(ref["allowednodes"])
    assert st["failoverpriority"] == ref["failoverpriority"]
    assert "state restored from a snapshot" in x.read_log()
    no_asan(list(ag.values()) + [x])


Z = "127.0.0.7"


def raft(agent):
    return agent.node_status().get("raft", {})


def test_reset_members_survivors_with_different_logs_end_equal(cluster):
    """Five voters; an entry reaches every agent but one follower, down
    meanwhile (short); the leader and two more die.  The short survivor coordinates
    the reset: the long one's log must win and the short one must end with
    the very same applied state, the lost entry included."""
    ag = three(cluster)
    hosts = (M, S, W, X, Z)
    listed = [addr(cluster, h) for h in hosts]
    for h in (X, Z):
        ag[h] = cluster.agent(h, node_timeout=NODE_TIMEOUT, is_witness="true")
    for a in ag.values():
        a.nodes = listed
        a.write_config()
        a.start(wait=False)
    full5 = dict(FULL, **{X: ("Witness", "UP", "UNKNOWN"), Z: ("Witness", "UP", "UNKNOWN")})
    for a in ag.values():
        wait_for(lambda: view(a) == full5, 40, f"{a.host} to see five")
    leader = wait_for(lambda: leader_of(ag.values()), 10, "a leader")
    # Two witnesses survive: no database changes role while the others are gone.
    followers = [h for h in (W, X, Z) if ag[h] is not leader]
    short, long_ = ag[followers[0]], ag[followers[1]]
    doomed = [a for a in ag.values() if a not in (short, long_)]
    # Killed, not frozen: a frozen agent still finds the entry in its socket
    # buffer when thawed.  Back before the leader could remove it (2 T).
    short.stop(signal.SIGKILL)
    r = long_.efm("add-node", cluster.name, "10.9.0.1")
    assert r.returncode == 0, r.stderr
    for a in [long_] + doomed:
        wait_for(lambda: "10.9.0.1" in members(a)["allowednodes"], 10,
                 f"{a.host} to apply the entry")
    for a in doomed:
        a.stop(signal.SIGKILL)
    short.start(wait=False)
    wait_for(lambda: minority(long_), 10, f"{long_.host} in the minority")
    wait_for(lambda: "resuming the saved cluster state" in short.read_log() and
             short.node_status(), 20, f"{short.host} back with its log")
    before = {a.host: raft(a) for a in (short, long_)}
    assert (before[long_.host]["last_term"], before[long_.host]["last_index"]) > \
        (before[short.host]["last_term"], before[short.host]["last_index"]), before
    r = short.efm("reset-members", cluster.name, "--yes")
    assert r.returncode == 0, r.stderr
    assert f"{addr(cluster, long_.host)}, whose log is the most up to date" in r.stdout, r.stdout
    expect = {short.host: full5[short.host], long_.host: full5[long_.host]}
    for a in (short, long_):
        wait_for(lambda: view(a) == expect, 30, f"{a.host} to see the two survivors")
    wait_for(lambda: "10.9.0.1" in members(short)["allowednodes"], 20,
             "the short survivor to have the entry only the long one had")

    def same():
        got = [raft(a) for a in (short, long_)]
        return got if all(g["configured"] and g["applied_index"] == g["last_index"]
                          for g in got) and \
            len({(g["state_digest"], g["last_index"], g["last_term"]) for g in got}) == 1 \
            else None
    final = wait_for(same, 20, "both survivors to hold the same log and state")
    assert final[0]["state_digest"], final
    assert "forcing the new configuration" in long_.read_log()
    assert "local log discarded" in short.read_log()
    # Both vote again; the source alone could commit without the other.
    for a in (short, long_):
        wait_for(lambda: raft(a)["voter"] and raft(a)["voters"] == 2, 20,
                 f"{a.host} to count two voters, itself one of them")
    r = long_.efm("add-node", cluster.name, Y)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: Y in members(short)["allowednodes"], 10, "the pair to commit")
    no_asan([short, long_])

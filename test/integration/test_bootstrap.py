"""Bootstrap votes: one .nodes set never gives rise to two clusters, whatever
the order in which its agents start, stop and are heard from."""
import contextlib
import signal
import subprocess

from harness import wait_for
from test_cluster import FULL, M, S, W, addr, all_see, bootstraps, three


@contextlib.contextmanager
def dropped(src, dst, port):
    """Drop every packet from src to dst:port on the loopback interface, so that
    src cannot open a connection to dst's peer port while dst's connections to
    src (and src's answers on them) still go through."""
    def tc(*args, check=True):
        return subprocess.run(["tc"] + list(args), check=check, capture_output=True)

    # This kernel has no drop action: the matching packets go to a class whose
    # queue is a black hole, everything else to a class that passes it all.
    tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10")
    try:
        for cls in ("1:10", "1:20"):
            tc("class", "add", "dev", "lo", "parent", "1:", "classid", cls, "htb",
               "rate", "10gbit")
        tc("qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "blackhole")
        tc("filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1",
           "u32", "match", "ip", "src", f"{src}/32", "match", "ip", "dst", f"{dst}/32",
           "match", "ip", "dport", str(port), "0xffff", "classid", "1:20")
        yield
    finally:
        tc("qdisc", "del", "dev", "lo", "root", check=False)


def m_starts_with_ws_vote_then_dies(cluster, m, w):
    """M starts a cluster with W's vote while W cannot reach M, and is killed."""
    with dropped(W, M, cluster.bind_port):
        m.start(wait=False)
        w.start(wait=False)
        wait_for(lambda: "bootstrapped a new cluster" in m.read_log(), 30,
                 f"{M} to start a cluster with {W}'s vote")
        m.stop(signal.SIGKILL)


def s_asks_for_votes(s, rounds):
    """Wait until S has ended `rounds` discovery rounds short of a majority, or
    has started a cluster."""
    wait_for(lambda: "bootstrapped a new cluster" in s.read_log()
             or s.read_log().count("waiting for a majority") >= rounds,
             60, f"{S} to go on asking for votes")


def test_a_vote_stays_with_an_agent_that_may_have_started_a_cluster(cluster):
    """M (the lowest address) starts with W's vote while W cannot reach it, and
    dies before W hears that it started a cluster. W must not give the same
    vote to S later: M's cluster still exists on M's disk, and a second one
    formed by S and W would never merge with it."""
    ag = three(cluster)
    m, s, w = ag[M], ag[S], ag[W]
    m_starts_with_ws_vote_then_dies(cluster, m, w)
    # W never joined M's cluster: its joins could not reach M.
    assert "starting to join it" not in w.read_log()
    s.start(wait=False)
    # S asks for W's vote every discovery round (half a second here); wait past
    # the time a vote used to be held (ten seconds), or until S starts a cluster.
    s_asks_for_votes(s, rounds=30)
    assert "bootstrapped a new cluster" not in s.read_log(), \
        f"{S} started a second cluster with the vote {W} had given to {M}"
    m.start(wait=False)
    all_see(ag.values(), FULL)
    assert bootstraps(ag.values()) == 1


def test_a_vote_given_before_a_restart_is_kept(cluster):
    """An agent restarted after giving its vote away still holds nothing to give:
    W votes for M, is restarted while M is down, and S (M still down) gets no
    vote from it; M comes back and the three form one cluster."""
    ag = three(cluster)
    m, s, w = ag[M], ag[S], ag[W]
    m_starts_with_ws_vote_then_dies(cluster, m, w)
    w.stop()
    w.start(wait=False)
    wait_for(lambda: w.read_log().count("listening (raft id") == 2, 30, f"{W} to listen again")
    s.start(wait=False)
    s_asks_for_votes(s, rounds=10)
    assert "bootstrapped a new cluster" not in s.read_log(), \
        f"{S} started a second cluster with the vote {W} had given to {M} before restarting"
    assert f"gave its bootstrap vote to {addr(cluster, M)} before it stopped" in w.read_log()
    m.start(wait=False)
    all_see(ag.values(), FULL)
    assert bootstraps(ag.values()) == 1

"""Automatic failover on 127.0.0.x with real PostgreSQL servers, real agents and a
real SMTP server: who is master afterwards, that exactly one database takes writes,
that the other standby streams from the new master, the scripts that ran and the
mail the operator got -- and the cases where nothing may be promoted."""
import os
import re
import signal
import time

import pytest

from harness import wait_for
from sinks import SmtpSink

NODE_TIMEOUT = 3


@pytest.fixture
def smtp():
    s = SmtpSink().start()
    try:
        yield s
    finally:
        s.stop()


def addr(cluster, host):
    return f"{host}:{cluster.bind_port}"


def write_script(cluster, name, body):
    """A script that appends its event to cluster.base/events, then runs body."""
    path = os.path.join(cluster.base, name)
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\necho \"{name} $EFM_EVENT $EFM_NODE\" >> {cluster.base}/events\n"
                f"{body}\n")
    os.chmod(path, 0o755)
    return path


def events(cluster):
    try:
        with open(os.path.join(cluster.base, "events")) as f:
            return f.read().split("\n")
    except FileNotFoundError:
        return []


def in_recovery(server):
    return server.sql("SELECT pg_is_in_recovery()")[0][0]


def takes_writes(server):
    try:
        return in_recovery(server) is False
    except Exception:
        return False


def build(cluster, smtp, witness=True, standbys=2, master_conf="", **props):
    """Master on hosts[0], standbys after it, a witness last; all agents started."""
    h = cluster.hosts
    m = cluster.master(h[0], master_conf)
    servers = [m] + [cluster.standby(m, h[1 + i]) for i in range(standbys)]
    hosts = [s.host for s in servers] + ([h[1 + standbys]] if witness else [])
    listed = [addr(cluster, x) for x in hosts]
    agents = []
    for x in hosts:
        extra = {"is_witness": "true"} if witness and x == hosts[-1] else {}
        extra.update(props)
        a = cluster.agent(x, node_timeout=NODE_TIMEOUT, notification_smtp_url=smtp.url,
                          db_reuse_connection_count=100, **extra)
        a.nodes = listed
        a.write_config()
        agents.append(a)
    for a in agents:
        a.start(wait=False)

    def ready():
        st, _ = agents[0].status()
        return (st.get("failover", {}).get("master") == addr(cluster, h[0]) and
                len(st["nodes"]) == len(hosts) and
                all(n["agent"] == "UP" for n in st["nodes"].values()))
    wait_for(ready, 60, "every agent up and the master recorded")
    m.sql("CREATE TABLE t (x int)")
    m.sql("INSERT INTO t VALUES (1)")
    return servers, agents


def status(agent):
    st, _ = agent.status()
    return st


def test_master_database_killed_promotes_the_standby_and_the_other_follows(cluster, smtp):
    fence = write_script(cluster, "fence", "exit 0")
    post = write_script(cluster, "post", "exit 0")
    (m, s1, s2), agents = build(cluster, smtp, **{"script.fence": fence,
                                                 "script.post.promotion": post})
    for s in (s1, s2):
        wait_for(lambda: s.sql("SELECT count(*) FROM t")[0][0] == 1, 20, "replicated")
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False
    new = wait_for(lambda: next((s for s in (s1, s2) if takes_writes(s)), None), 30,
                   "a standby promoted")
    other = s2 if new is s1 else s1
    new.sql("INSERT INTO t VALUES (2)")
    wait_for(lambda: other.sql("SELECT count(*) FROM t")[0][0] == 2, 30,
             "the other standby streams from the new master")
    assert in_recovery(other)
    rows = other.sql("SELECT sender_host FROM pg_stat_wal_receiver")
    assert rows and rows[0][0] == new.host, rows
    # The old master is fenced: stopped, and marked so a restart makes it a standby.
    assert os.path.exists(os.path.join(m.datadir, "standby.signal"))
    done = wait_for(lambda: (lambda f: f if f["phase"] == "DONE" else None)(
        status(agents[1])["failover"]), 30, "the promotion done")
    assert done["candidate"] == addr(cluster, new.host)
    assert done["master"] == addr(cluster, new.host)
    st = status(agents[3])
    masters = [h for h, n in st["nodes"].items() if n["type"] == "Master"]
    wait_for(lambda: [h for h, n in status(agents[3])["nodes"].items()
                      if n["type"] == "Master"] == [new.host], 20,
             "exactly the new master shown as Master")
    # Scripts ran on the new master, fence first.
    ev = [e for e in events(cluster) if e]
    assert ev == [f"fence fence {new.host}", f"post post.promotion {new.host}"], ev
    for subject in ("Promotion started", "Failover completed", "being fenced",
                    "Fence script ran", "Post-promotion script ran"):
        wait_for(lambda: smtp.find(subject), 20, f"mail {subject!r}")
    assert new.host in smtp.find("Failover completed")[0]["body"]


def test_master_agent_killed_with_its_database_up_promotes_nothing(cluster, smtp):
    (m, s1, s2), agents = build(cluster, smtp)
    agents[0].stop(signal.SIGKILL)
    wait_for(lambda: smtp.find("master agent has left"), 30, "the master-left mail")
    # Well past the node timeout and the checks that follow it.
    deadline = time.monotonic() + NODE_TIMEOUT + 8
    while time.monotonic() < deadline:
        assert takes_writes(m)
        assert in_recovery(s1) and in_recovery(s2)
        time.sleep(0.5)
    assert status(agents[1])["failover"]["phase"] == "NONE"
    assert not smtp.find("Promotion started")
    assert not os.path.exists(os.path.join(m.datadir, "standby.signal"))


def test_auto_failover_off_asks_the_operator(cluster, smtp):
    (m, s1, s2), agents = build(cluster, smtp, auto_failover="false")
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False
    wait_for(lambda: smtp.find("Manual failover may be needed"), 30, "the manual-failover mail")
    time.sleep(2)  # a promotion would have started by now (it takes under a second)
    assert in_recovery(s1) and in_recovery(s2)
    assert status(agents[1])["failover"]["phase"] == "NONE"


def test_failing_fence_script_stops_the_promotion(cluster, smtp):
    fence = write_script(cluster, "fence", "exit 3")
    (m, s1, s2), agents = build(cluster, smtp, **{"script.fence": fence})
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False
    mail = wait_for(lambda: smtp.find("Fence script failed"), 30, "the fence-failed mail")[0]
    assert "exit code 3" in mail["body"], mail["body"]
    wait_for(lambda: status(agents[1])["failover"]["phase"] == "ABORTED", 20, "aborted")
    assert in_recovery(s1) and in_recovery(s2)


def test_standbys_cut_off_from_the_ping_server_promote_nobody_until_it_answers(cluster,
                                                                                smtp):
    cut = os.path.join(cluster.base, "cut-off")
    ping = write_script(cluster, "ping", f"test ! -e {cut}")
    (m, s1, s2), agents = build(cluster, smtp, pingServerIp="127.0.0.1",
                                pingServerCommand=ping)
    open(cut, "w").close()
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False
    mail = wait_for(lambda: smtp.find("Promotion refused: the standby seems cut off"), 30,
                    "the cut-off mail")[0]
    assert "127.0.0.1" in mail["body"], mail["body"]
    assert in_recovery(s1) and in_recovery(s2)
    # Once the ping server answers again, the next attempt promotes.
    os.unlink(cut)
    wait_for(lambda: next((s for s in (s1, s2) if takes_writes(s)), None), 60,
             "a standby promoted")


def test_candidate_lost_during_the_promotion_the_other_standby_is_promoted(cluster, smtp):
    go = os.path.join(cluster.base, "go")
    # The fence script runs on the candidate just before it promotes: hold it there.
    fence = write_script(cluster, "fence",
                         f"for i in $(seq 300); do test -e {go} && exit 0; sleep 0.1; done")
    (m, s1, s2), agents = build(cluster, smtp, **{"script.fence": fence})
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False
    wait_for(lambda: any(e.startswith("fence ") for e in events(cluster)), 30,
             "the candidate's fence script")
    host = events(cluster)[0].split()[-1]
    first, other = (s1, s2) if host == s1.host else (s2, s1)
    assert host == first.host, events(cluster)
    os.kill(first.postmaster_pid(), signal.SIGKILL)
    first.running = False
    open(go, "w").close()
    wait_for(lambda: takes_writes(other), 60, "the other standby promoted")
    f = status(agents[3])["failover"]
    assert f["serial"] >= 2 and f["candidate"] == addr(cluster, other.host), f


def test_master_host_lost_is_failed_over_after_the_node_timeout(cluster, smtp):
    (m, s1, s2), agents = build(cluster, smtp)
    t0 = time.monotonic()
    agents[0].stop(signal.SIGKILL)
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False
    new = wait_for(lambda: next((s for s in (s1, s2) if takes_writes(s)), None), 30,
                   "a standby promoted")
    # Not before the master agent was silent for the node timeout (its last heartbeat
    # may precede the kill by one heartbeat interval, T/6).
    assert time.monotonic() - t0 >= NODE_TIMEOUT * 5 / 6
    wait_for(lambda: [h for h, n in status(agents[3])["nodes"].items()
                      if n["type"] == "Master"] == [new.host], 20,
             "the new master alone shown as Master")


def test_two_voters_fail_over_a_database_failure(cluster, smtp):
    (m, s1), agents = build(cluster, smtp, witness=False, standbys=1)
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False
    wait_for(lambda: takes_writes(s1), 30, "the standby promoted")


def test_lost_standby_and_witness_are_reported(cluster, smtp):
    (m, s1, s2), agents = build(cluster, smtp)
    agents[2].stop(signal.SIGKILL)   # s2's agent; its database keeps running
    wait_for(lambda: smtp.find("Standby agent lost"), 30, "the standby-agent mail")
    # Four voters: the witness may go only once the lost standby left the voting set
    # (after twice the node timeout), or the rest would be no majority.
    wait_for(lambda: len(status(agents[0])["nodes"]) == 3, 30, "the lost standby removed")
    agents[3].stop(signal.SIGKILL)   # the witness
    wait_for(lambda: smtp.find("Witness lost"), 30, "the witness mail")
    assert takes_writes(m) and in_recovery(s1) and in_recovery(s2)


def test_coordinator_killed_mid_promotion_is_resumed_by_the_next(cluster, smtp):
    """The witness leads (the lowest address bootstraps the cluster); it is killed while
    the candidate runs a slow fence script.  The next leader resumes the promotion from
    its committed phase: one promotion, the fence script run once, the other standby
    following."""
    fence = write_script(cluster, "fence", "sleep 3")
    h = cluster.hosts
    w_host, m_host, s1_host, s2_host = h[0], h[1], h[2], h[3]
    m = cluster.master(m_host)
    s1, s2 = cluster.standby(m, s1_host), cluster.standby(m, s2_host)
    hosts = [w_host, m_host, s1_host, s2_host]
    listed = [addr(cluster, x) for x in hosts]
    agents = {}
    for x in hosts:
        extra = {"is_witness": "true"} if x == w_host else {"script.fence": fence}
        a = cluster.agent(x, node_timeout=NODE_TIMEOUT, notification_smtp_url=smtp.url,
                          db_reuse_connection_count=100, **extra)
        a.nodes = listed
        a.write_config()
        agents[x] = a
    for a in agents.values():
        a.start(wait=False)
    wait_for(lambda: status(agents[s1_host]).get("failover", {}).get("master") ==
             addr(cluster, m_host) and len(status(agents[s1_host])["nodes"]) == 4,
             60, "every agent up and the master recorded")
    assert "this agent is now the cluster leader" in agents[w_host].read_log()
    m.sql("CREATE TABLE t (x int)")
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False
    wait_for(lambda: status(agents[s1_host])["failover"]["phase"] == "PROMOTING", 30,
             "the promotion in its PROMOTING phase")
    agents[w_host].stop(signal.SIGKILL)
    new = wait_for(lambda: next((s for s in (s1, s2) if takes_writes(s)), None), 60,
                   "a standby promoted")
    other = s2 if new is s1 else s1
    wait_for(lambda: (lambda f: f if f["phase"] == "DONE" else None)(
        status(agents[other.host])["failover"]), 60, "the promotion done")
    f = status(agents[other.host])["failover"]
    assert f["serial"] == 1 and f["candidate"] == addr(cluster, new.host), f
    new.sql("INSERT INTO t VALUES (1)")
    wait_for(lambda: other.sql("SELECT count(*) FROM t")[0][0] == 1, 30,
             "the other standby follows")
    fences = [e for e in events(cluster) if e.startswith("fence ")]
    assert fences == [f"fence fence {new.host}"], fences


@pytest.mark.parametrize("stopped_for", [NODE_TIMEOUT + 1.5, 2 * NODE_TIMEOUT + 3])
def test_master_agent_stopped_then_continued_acts_on_no_stale_belief(cluster, smtp,
                                                                     stopped_for):
    """SIGSTOP the master agent beyond the node timeout (and beyond its removal from the
    voting set), its database up: nothing is promoted; continued, the agent does not
    fence the database on the stale time it wakes up with."""
    (m, s1, s2), agents = build(cluster, smtp)
    agents[0].proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: smtp.find("master agent has left"), 30, "the master-left mail")
        deadline = time.monotonic() + stopped_for
        while time.monotonic() < deadline:
            assert takes_writes(m) and in_recovery(s1) and in_recovery(s2)
            time.sleep(0.3)
    finally:
        agents[0].proc.send_signal(signal.SIGCONT)
    wait_for(lambda: status(agents[0])["nodes"][m.host]["agent"] == "UP", 30,
             "the master agent back")
    deadline = time.monotonic() + 2 * NODE_TIMEOUT
    while time.monotonic() < deadline:
        assert takes_writes(m) and in_recovery(s1) and in_recovery(s2)
        time.sleep(0.3)
    assert "fencing the local database" not in agents[0].read_log()
    assert status(agents[1])["failover"]["phase"] == "NONE"


def behind(standby, lsn):
    """Bytes the standby's received WAL is behind lsn (0 when it has all of it)."""
    return standby.sql(f"SELECT greatest(pg_wal_lsn_diff('{lsn}', "
                       "coalesce(pg_last_wal_receive_lsn(), '0/0')), 0)")[0][0]


def test_lagging_priority_standby_loses_to_the_up_to_date_one(cluster, smtp):
    (m, s1, s2), agents = build(cluster, smtp)
    r = agents[0].efm("set-priority", cluster.name, s1.host, "1")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: status(agents[2]).get("failoverpriority", [])[:1] == [s1.host], 20,
             "s1 first in the failover priority")
    # s1 stops receiving WAL before the last writes are made ...
    # (a port nothing listens on: the other fields stay for the re-pointing to keep)
    conninfo = s1.sql("SHOW primary_conninfo")[0][0]
    dead = re.sub(r"\bport=\S+", "port=1", conninfo)
    assert dead != conninfo, conninfo
    s1.sql("ALTER SYSTEM SET primary_conninfo = '%s'" % dead.replace("'", "''"))
    s1.sql("SELECT pg_reload_conf()")
    wait_for(lambda: not s1.sql("SELECT count(*) FROM pg_stat_wal_receiver")[0][0], 30,
             "s1's WAL receiver to stop")
    m.sql("CREATE TABLE lag AS SELECT g AS n FROM generate_series(1, 2000) g")
    target = m.sql("SELECT pg_current_wal_lsn()")[0][0]
    wait_for(lambda: behind(s2, target) == 0, 30, "s2 to receive the writes")
    assert behind(s1, target) > 0
    # ... so the up-to-date s2 wins although s1 comes first in the priority list.
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False
    wait_for(lambda: takes_writes(s2), 30, "s2 promoted")
    assert in_recovery(s1)
    # The laggard is re-pointed at s2 and gets what it missed.
    wait_for(lambda: s1.sql("SELECT count(*) FROM pg_class WHERE relname = 'lag'")[0][0], 30,
             "s1 to catch up from the new master")
    assert s1.sql("SELECT count(*) FROM lag")[0][0] == 2000

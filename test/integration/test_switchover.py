"""efm promote -switchover: a planned change of master with real PostgreSQL servers
and agents.  A client writes throughout; every write the old master acknowledged is
on the new one, the old master streams from the new one, and the switch back works.
A switchover whose step fails before the promotion leaves the old master running."""
import os
import re
import threading
import time

from harness import wait_for
from test_failover_scenarios import addr, build, events, in_recovery, smtp, status, \
    takes_writes, write_script

__all__ = ["smtp"]  # the fixture, used by name


class Writer(threading.Thread):
    """Inserts 1, 2, 3... into t(x) on whichever server takes writes; keeps what was
    acknowledged, and the longest time without an acknowledged write."""

    def __init__(self, servers):
        super().__init__(daemon=True)
        self.servers = servers
        self.acked = []
        self.stop_now = threading.Event()
        self.longest_pause = 0.0

    def run(self):
        n, last = 0, time.monotonic()
        while not self.stop_now.is_set():
            for s in self.servers:
                try:
                    conn = s.connect()
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        while not self.stop_now.is_set():
                            cur.execute("INSERT INTO t VALUES (%s)", (n + 1,))
                            n += 1
                            self.acked.append(n)
                            now = time.monotonic()
                            self.longest_pause = max(self.longest_pause, now - last)
                            last = now
                            time.sleep(0.01)
                    conn.close()
                except Exception:
                    time.sleep(0.02)

    def stop(self):
        self.stop_now.set()
        self.join(10)


def streams_from(server, master):
    rows = server.sql("SELECT status, sender_host FROM pg_stat_wal_receiver")
    return bool(rows) and rows[0] == ("streaming", master.host)


def switchover(agent, cluster, target):
    r = agent.efm("promote", cluster.name, "-switchover", "-node", target.host, timeout=180)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "phase DONE" in r.stdout, r.stdout
    assert re.search(rf"Master\s+{re.escape(target.host)}\s", r.stdout), r.stdout
    return r


def test_switchover_keeps_every_write_and_switches_back(cluster, smtp):
    (m, s1, s2), agents = build(cluster, smtp)
    writer = Writer([m, s1, s2])
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) > 20, 20, "the client writing")
        switchover(agents[2], cluster, s1)
        assert takes_writes(s1) and in_recovery(m) and in_recovery(s2)
        wait_for(lambda: len(writer.acked) > 0 and
                 s1.sql("SELECT max(x) FROM t")[0][0] >= writer.acked[-1], 20,
                 "the client writing on the new master")
        acked = list(writer.acked)
    finally:
        writer.stop()
    # Every acknowledged write is on the new master (no lost write), once.
    have = {r[0] for r in s1.sql("SELECT x FROM t")}
    missing = [x for x in acked if x not in have]
    assert not missing, missing[:10]
    # The old master and the other standby stream from the new master.
    wait_for(lambda: streams_from(m, s1), 30, "the old master streaming from the new one")
    wait_for(lambda: streams_from(s2, s1), 30, "the other standby streaming from the new one")
    roles = {m.host: "Standby", s1.host: "Master", s2.host: "Standby",
             cluster.hosts[3]: "Witness"}
    seen = {}

    def shown():
        seen.update({h: n["type"] for h, n in status(agents[3])["nodes"].items()})
        return seen == roles
    try:
        wait_for(shown, 30, f"the roles in the status to be {roles}")
    except AssertionError as e:
        raise AssertionError(f"{e}; seen {seen}") from None
    assert status(agents[3])["failover"]["master"] == addr(cluster, s1.host)
    # The priority list: the new master leaves it, the old one joins it as a standby.
    wait_for(lambda: sorted(status(agents[3])["failoverpriority"]) ==
             sorted([m.host, s2.host]), 30, "the priority list updated")
    # And back.
    switchover(agents[1], cluster, m)
    assert takes_writes(m) and in_recovery(s1) and in_recovery(s2)
    m.sql("INSERT INTO t VALUES (-1)")
    wait_for(lambda: streams_from(s1, m) and streams_from(s2, m), 30,
             "both standbys streaming from the first master again")
    wait_for(lambda: s1.sql("SELECT count(*) FROM t WHERE x = -1")[0][0] == 1, 20,
             "the old master replicating the new write")
    assert not os.path.exists(os.path.join(m.datadir, "standby.signal"))


def test_switchover_that_fails_before_the_promotion_leaves_the_master_running(cluster,
                                                                               smtp):
    fence = write_script(cluster, "fence", "exit 3")
    (m, s1, s2), agents = build(cluster, smtp, **{"script.fence": fence})
    r = agents[1].efm("promote", cluster.name, "-switchover", "-node", s2.host, timeout=180)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "phase ABORTED" in r.stdout and "fence script failed" in r.stderr, \
        (r.stdout, r.stderr)
    assert [e for e in events(cluster) if e] == [f"fence fence {s2.host}"]
    # The old master runs as the master again and is watched as one.
    assert takes_writes(m) and in_recovery(s1) and in_recovery(s2)
    m.sql("INSERT INTO t VALUES (2)")
    wait_for(lambda: s2.sql("SELECT count(*) FROM t")[0][0] == 2, 20, "replication going on")
    wait_for(lambda: status(agents[3])["nodes"][m.host]["type"] == "Master", 30,
             "the old master's agent a Master again")
    assert status(agents[3])["failover"]["master"] == addr(cluster, m.host)
    # A switchover needs a running master; a failover replaces a failed one.
    r = agents[1].efm("promote", cluster.name, "-switchover", "-node", "127.0.0.250")
    assert r.returncode == 1 and "not a member" in r.stderr, r.stderr

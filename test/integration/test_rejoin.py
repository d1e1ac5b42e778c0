"""efm rejoin: a failed-over old master comes back as a standby of the new master,
with real PostgreSQL servers and agents -- rewound with pg_rewind when it took writes
the new master never saw, as it is when it did not, and refused with a clear reason
when its data directory cannot be rewound."""
import re

from harness import wait_for
from test_failover_scenarios import addr, build, in_recovery, smtp, status, takes_writes

__all__ = ["smtp"]  # the fixture, used by name

# pg_rewind reads the old master's WAL back to the last checkpoint both share
HINTS = "wal_log_hints = on\nwal_keep_size = 256MB\n"


def streams_from(server, master):
    rows = server.sql("SELECT status, sender_host FROM pg_stat_wal_receiver")
    return bool(rows) and rows[0] == ("streaming", master.host)


def fail_over(cluster, m, standbys, agents):
    """Crash the master's database; return the standby promoted.  pg_ctl -m immediate
    leaves the data directory as a crash does (no shutdown checkpoint) but removes the
    lock files: where init does not reap a killed postmaster (a container), its stale
    socket lock would stop any restart."""
    m.stop("immediate")
    new = wait_for(lambda: next((s for s in standbys if takes_writes(s)), None), 30,
                   "a standby promoted")
    wait_for(lambda: status(agents[-1])["failover"]["phase"] == "DONE", 30, "the failover done")
    wait_for(lambda: status(agents[-1])["nodes"][m.host]["type"] == "Idle", 30,
             "the old master's agent Idle")
    return new


def cut_replication(standby):
    """The standby stops receiving WAL (its primary_conninfo names a dead port)."""
    conninfo = standby.sql("SHOW primary_conninfo")[0][0]
    standby.sql("ALTER SYSTEM SET primary_conninfo = '%s'" %
                re.sub(r"\bport=\S+", "port=1", conninfo).replace("'", "''"))
    standby.sql("SELECT pg_reload_conf()")
    wait_for(lambda: not standby.sql("SELECT count(*) FROM pg_stat_wal_receiver")[0][0], 30,
             "the WAL receiver to stop")


def rejoin_ok(cluster, m, new, agents):
    r = agents[0].efm("rejoin", cluster.name, timeout=300)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert re.search(rf"Standby\s+{re.escape(m.host)}\s", r.stdout), r.stdout
    m.running = True
    assert in_recovery(m)
    wait_for(lambda: streams_from(m, new), 30, "the old master streaming from the new one")
    new.sql("INSERT INTO t VALUES (100)")
    wait_for(lambda: m.sql("SELECT count(*) FROM t WHERE x = 100")[0][0] == 1, 30,
             "the old master replicating the new master's writes")
    wait_for(lambda: status(agents[-1])["nodes"][m.host]["type"] == "Standby", 30,
             "the old master's agent a Standby")
    assert status(agents[-1])["failover"]["master"] == addr(cluster, new.host)
    return r


def test_rejoin_rewinds_an_old_master_that_took_extra_writes(cluster, smtp):
    (m, s1), agents = build(cluster, smtp, standbys=1, master_conf=HINTS)
    wait_for(lambda: s1.sql("SELECT count(*) FROM t")[0][0] == 1, 20, "replicated")
    cut_replication(s1)
    m.sql("INSERT INTO t SELECT g FROM generate_series(10, 19) g")  # never reach s1
    new = fail_over(cluster, m, [s1], agents)
    assert new is s1
    r = rejoin_ok(cluster, m, s1, agents)
    assert "rewound" in r.stdout, r.stdout
    # The old master's writes the new master never had are gone.
    assert m.sql("SELECT count(*) FROM t WHERE x BETWEEN 10 AND 19")[0][0] == 0
    # Nothing left to rejoin now.
    r = agents[0].efm("rejoin", cluster.name)
    assert r.returncode == 1 and "nothing to rejoin" in r.stderr, r.stderr


def test_rejoin_of_an_old_master_that_did_not_diverge(cluster, smtp):
    (m, s1, s2), agents = build(cluster, smtp, master_conf=HINTS)
    for s in (s1, s2):
        wait_for(lambda: s.sql("SELECT count(*) FROM t")[0][0] == 1, 20, "replicated")
    new = fail_over(cluster, m, [s1, s2], agents)
    rejoin_ok(cluster, m, new, agents)
    assert m.sql("SELECT count(*) FROM t WHERE x = 1")[0][0] == 1


def test_rejoin_refuses_what_cannot_be_rewound_and_a_running_master(cluster, smtp):
    (m, s1), agents = build(cluster, smtp, standbys=1)  # wal_log_hints off, no checksums
    r = agents[0].efm("rejoin", cluster.name)
    assert r.returncode == 1 and "nothing to rejoin: this agent is a Master" in r.stderr, \
        r.stderr
    new = fail_over(cluster, m, [s1], agents)
    r = agents[0].efm("rejoin", cluster.name, timeout=300)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "wal_log_hints" in r.stderr and "pg_basebackup" in r.stderr, r.stderr
    assert not takes_writes(m) and takes_writes(new)
    assert status(agents[-1])["nodes"][m.host]["type"] == "Idle"

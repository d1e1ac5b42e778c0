"""efm promote: a manual failover with real PostgreSQL servers and agents -- with
auto.failover=false after the master database died, its refusal while the master
database answers, and a candidate behind the master's last known position that is
promoted only once the operator accepts the loss (--yes)."""
import os
import re
import signal
import subprocess

from harness import EFM, wait_for
from test_failover_scenarios import addr, build, in_recovery, smtp, status, takes_writes

__all__ = ["smtp"]  # the fixture, used by name


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def on_terminal(agent, answer, *args):
    """Runs efm with a terminal as its stdin, answer already typed."""
    master, slave = os.openpty()
    try:
        os.write(master, answer.encode())
        return subprocess.run([EFM] + list(args), env=agent.env(), stdin=slave,
                              capture_output=True, text=True, timeout=120)
    finally:
        os.close(master)
        os.close(slave)


def kill_db(server):
    os.kill(server.postmaster_pid(), signal.SIGKILL)
    server.running = False


def test_promote_with_auto_failover_off_after_the_master_database_died(cluster, smtp):
    (m, s1, s2), agents = build(cluster, smtp, auto_failover="false")
    for s in (s1, s2):
        wait_for(lambda: s.sql("SELECT count(*) FROM t")[0][0] == 1, 20, "replicated")
    kill_db(m)
    wait_for(lambda: smtp.find("Manual failover may be needed"), 30, "the manual-failover mail")
    assert in_recovery(s1) and in_recovery(s2)
    # Asked on a standby's agent, whichever agent leads.
    r = agents[2].efm("promote", cluster.name)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "started" in r.stdout and "phase DONE" in r.stdout, r.stdout
    new = next(s for s in (s1, s2) if takes_writes(s))
    other = s2 if new is s1 else s1
    assert f"promotion 1 of {addr(cluster, new.host)}" in r.stdout, r.stdout
    # It ends with the new status: the new master is shown as such.
    assert re.search(rf"Master\s+{re.escape(new.host)}\s", r.stdout), r.stdout
    assert in_recovery(other)
    new.sql("INSERT INTO t VALUES (2)")
    wait_for(lambda: other.sql("SELECT count(*) FROM t")[0][0] == 2, 30,
             "the other standby streams from the new master")
    assert os.path.exists(os.path.join(m.datadir, "standby.signal"))
    assert status(agents[3])["failover"]["master"] == addr(cluster, new.host)
    # A second request has no failed master to replace: the new one runs.
    r = agents[1].efm("promote", cluster.name)
    assert r.returncode == 1 and "running" in r.stderr, (r.stdout, r.stderr)


def test_promote_is_refused_while_the_master_database_answers(cluster, smtp):
    (m, s1, s2), agents = build(cluster, smtp, auto_failover="false")
    r = agents[1].efm("promote", cluster.name)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "switchover" in r.stderr and "two masters" in r.stderr, r.stderr
    # The master agent alive but silent about its database: the agents still reach it.
    agents[0].stop(signal.SIGKILL)
    wait_for(lambda: smtp.find("master agent has left"), 30, "the master-left mail")
    r = agents[1].efm("promote", cluster.name)
    assert r.returncode == 1 and "reached" in r.stderr, (r.stdout, r.stderr)
    assert takes_writes(m) and in_recovery(s1) and in_recovery(s2)
    assert not smtp.find("Promotion started")
    # Bad arguments are refused before anything is asked.
    r = agents[1].efm("promote", cluster.name, "--now")
    assert r.returncode == 2 and "--now" in r.stderr, r.stderr
    r = agents[1].efm("promote", cluster.name, "-node", "127.0.0.250")
    assert r.returncode == 1 and "not a member" in r.stderr, r.stderr


def test_promote_of_a_standby_behind_the_master_needs_yes(cluster, smtp):
    (m, s1), agents = build(cluster, smtp, standbys=1, auto_failover="false")
    # s1 stops receiving WAL (a port nothing listens on) before the last writes.
    conninfo = s1.sql("SHOW primary_conninfo")[0][0]
    dead = re.sub(r"\bport=\S+", "port=1", conninfo)
    s1.sql("ALTER SYSTEM SET primary_conninfo = '%s'" % dead.replace("'", "''"))
    s1.sql("SELECT pg_reload_conf()")
    wait_for(lambda: not s1.sql("SELECT count(*) FROM pg_stat_wal_receiver")[0][0], 30,
             "s1's WAL receiver to stop")
    m.sql("CREATE TABLE lost AS SELECT g AS n FROM generate_series(1, 2000) g")
    target = lsn(m.sql("SELECT pg_current_wal_lsn()")[0][0])

    def knows(agent):
        x = status(agent)["nodes"].get(m.host, {}).get("xlog", "")
        return "/" in x and lsn(x) >= target
    wait_for(lambda: all(knows(a) for a in agents[1:]), 30,
             "every agent to have heard the master's last position")
    kill_db(m)
    wait_for(lambda: smtp.find("Manual failover may be needed"), 30, "the manual-failover mail")
    # Not a terminal: refused, saying by how much and what to do.
    r = agents[1].efm("promote", cluster.name)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "bytes behind" in r.stderr and "--yes" in r.stderr, r.stderr
    assert in_recovery(s1)
    # On a terminal it asks; "n" promotes nothing.
    r = on_terminal(agents[1], "n\n", "promote", cluster.name)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "bytes behind" in r.stdout and "Promote it anyway?" in r.stdout, r.stdout
    assert "cancelled" in r.stderr, r.stderr
    assert in_recovery(s1)
    r = agents[1].efm("promote", cluster.name, "--yes")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "phase DONE" in r.stdout, r.stdout
    assert takes_writes(s1)
    assert not s1.sql("SELECT count(*) FROM pg_class WHERE relname = 'lost'")[0][0]

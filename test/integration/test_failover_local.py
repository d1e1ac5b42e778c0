"""The node-local failover actions (src/failover/fo_local.h) on real servers.

Each test runs build/fo_action, which reads a configuration as efmd does and
runs one action on a uv loop, against real PostgreSQL servers (promote,
fence, follow), real programs (ping, scripts) and, for the virtual IP, a
network namespace.  The database user is not a superuser: it holds only the
grants fo_local.h lists, so the tests also prove those are enough.
"""
import os
import pwd
import signal
import stat
import subprocess
import time

import psycopg2.extensions
import pytest

from harness import BUILD, PGBIN, Cluster, as_postgres, wait_for
from netns import net, ns_cluster  # noqa: F401  (fixtures)

FO = os.path.join(BUILD, "fo_action")

GRANTS = [
    "GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO efm",
    "GRANT EXECUTE ON FUNCTION pg_catalog.pg_wal_replay_resume() TO efm",
    "GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO efm",
    "GRANT pg_read_all_settings, pg_read_all_stats TO efm",
    "GRANT ALTER SYSTEM ON PARAMETER primary_conninfo TO efm",
]


class Outcome:
    def __init__(self, proc):
        self.rc = proc.returncode
        lines = proc.stdout.splitlines()
        self.first = lines[0] if lines else ""
        self.detail = self.first.split(": ", 1)[1] if ": " in self.first else self.first
        self.output = "\n".join(ln[2:] for ln in lines[1:] if ln.startswith("| "))
        self.stderr = proc.stderr

    def __repr__(self):
        return f"rc={self.rc} {self.first!r} stderr={self.stderr[-2000:]!r}"


def fo(agent, *args, timeout=30, prefix=(), env=None, extra=()):
    """Run one action with agent's configuration; the driver must end on its own."""
    cmd = list(prefix) + [FO, "--config-dir", agent.config_dir, "--timeout", str(timeout),
                          *extra, agent.cluster.name, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30,
                       env=env or dict(os.environ))
    out = Outcome(p)
    bad = [ln for ln in p.stderr.splitlines() if any(m in ln for m in Cluster.SANITIZER_MARKS)]
    assert not bad, out
    assert out.rc in (0, 1, 3), out   # 2: usage/config, 4: callback or loop misuse
    return out


def config_agent(cluster, host, drop=(), **props):
    """An agent's configuration directory (the agent itself is never started), without
    the harness's keys named in drop."""
    p = cluster.props(host)
    for key in drop:
        p.pop(key, None)
    p.update(props)
    return cluster.agent(host, props=p)


def master_with_grants(cluster, host):
    m = cluster.master(host)
    for g in GRANTS:
        m.sql(g)
    return m


def in_recovery(server):
    return server.sql("SELECT pg_is_in_recovery()")[0][0]


def receiver(server):
    rows = server.sql("SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver")
    return rows[0] if rows else None


def caught_up(standby, lsn):
    return standby.sql(f"SELECT pg_last_wal_receive_lsn() >= '{lsn}'::pg_lsn")[0][0]


# --- promote ----------------------------------------------------------------

def test_promote_standby_then_again(cluster):
    h = cluster.hosts
    m = master_with_grants(cluster, h[0])
    s = cluster.standby(m, h[1])
    a = config_agent(cluster, h[1])
    assert in_recovery(s)

    r = fo(a, "promote")
    assert r.rc == 0 and r.detail.startswith("pg_promote() returned true after "), r
    assert not in_recovery(s)
    s.sql("CREATE TABLE written_after_promotion (x int)")
    s.sql("INSERT INTO written_after_promotion VALUES (1)")

    r = fo(a, "promote")
    assert r.rc == 0 and r.detail == "already a master", r


def test_promote_resumes_paused_replay(cluster):
    h = cluster.hosts
    m = master_with_grants(cluster, h[0])
    s = cluster.standby(m, h[1])
    a = config_agent(cluster, h[1])
    s.sql("SELECT pg_wal_replay_pause()")
    wait_for(lambda: s.sql("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused", 20,
             "replay to pause")
    m.sql("CREATE TABLE written_while_paused (x int)")
    lsn = m.sql("SELECT pg_current_wal_lsn()")[0][0]
    wait_for(lambda: caught_up(s, lsn), 20, "the standby to receive the new table")
    assert s.sql("SELECT to_regclass('written_while_paused')")[0][0] is None

    r = fo(a, "promote")
    assert r.rc == 0 and "paused replay resumed first" in r.detail, r
    assert not in_recovery(s)
    assert s.sql("SELECT to_regclass('written_while_paused')")[0][0] is not None


def test_promote_refused_without_the_grant(cluster):
    h = cluster.hosts
    m = cluster.master(h[0])
    m.sql("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) FROM efm")
    cluster.standby(m, h[1])          # efm holds no grant on pg_promote
    a = config_agent(cluster, h[1])
    r = fo(a, "promote")
    assert r.rc == 1 and "pg_promote() failed" in r.detail, r
    assert "permission denied" in r.detail, r


def test_promote_bounded_by_timeout_on_a_hung_server(cluster):
    h = cluster.hosts
    m = master_with_grants(cluster, h[0])
    s = cluster.standby(m, h[1])
    a = config_agent(cluster, h[1])
    s.sigstop()
    try:
        t0 = time.monotonic()
        r = fo(a, "promote", timeout=3)
        took = time.monotonic() - t0
        # Cancelled while connecting: no callback, and nothing left on the loop.
        c = fo(a, "promote", timeout=10, extra=("--cancel-after", "300"))
    finally:
        s.cont()
    assert r.rc == 1 and "timed out" in r.detail, r
    assert took < 3 + 5, took
    assert c.rc == 3 and c.first == "cancelled", c
    assert in_recovery(s)


# --- fence ------------------------------------------------------------------

def test_fence_running_master_then_again(cluster):
    h = cluster.hosts
    m = cluster.master(h[0])
    a = config_agent(cluster, h[0], **{"db.recovery.conf.dir": m.datadir, "db.bin": PGBIN})
    signal_file = os.path.join(m.datadir, "standby.signal")
    assert not os.path.exists(signal_file)

    r = fo(a, "fence")
    assert r.rc == 0, r
    assert "server stopped (immediate)" in r.detail and "standby.signal created" in r.detail, r
    m.running = False
    status = as_postgres([f"{PGBIN}/pg_ctl", "status", "-D", m.datadir], check=False)
    assert status.returncode == 3, status.stdout
    st = os.stat(signal_file)
    assert pwd.getpwuid(st.st_uid).pw_name == "postgres"
    assert stat.S_IMODE(st.st_mode) == 0o600

    r = fo(a, "fence")
    assert r.rc == 0, r
    assert "server already stopped" in r.detail and "already present" in r.detail, r

    # The point of it: started again, the old master comes back as a standby.
    m.start()
    assert in_recovery(m)


def test_fence_refuses_without_the_properties(cluster):
    h = cluster.hosts
    m = cluster.master(h[0])
    fencing = ("db.bin", "db.recovery.conf.dir", "db.service.owner")
    a = config_agent(cluster, h[0], drop=fencing, **{"db.bin": PGBIN})
    # The agent's start-up checks refuse such a configuration outright...
    p = subprocess.run([FO, "--config-dir", a.config_dir, cluster.name, "fence"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "db.recovery.conf.dir: required" in p.stderr, p.stderr
    # ...and the action checks again for itself.
    r = fo(a, "fence", extra=("--checks", "parse"))
    assert r.rc == 1 and "db.recovery.conf.dir" in r.detail and "not set" in r.detail, r

    b = config_agent(cluster, h[1], drop=fencing, **{"db.recovery.conf.dir": m.datadir})
    r = fo(b, "fence", extra=("--checks", "parse"))
    assert r.rc == 1 and "db.bin" in r.detail and "not set" in r.detail, r

    c = config_agent(cluster, h[2], **{"db.recovery.conf.dir": m.datadir, "db.bin": PGBIN,
                                       "db.service.owner": "no-such-user-efm"})
    r = fo(c, "fence")
    assert r.rc == 1 and "db.service.owner no-such-user-efm" in r.detail, r
    # None of them touched the server.
    assert not in_recovery(m)
    assert not os.path.exists(os.path.join(m.datadir, "standby.signal"))


# --- follow -----------------------------------------------------------------

def test_follow_new_master(cluster):
    h = cluster.hosts
    port = cluster.db_port
    m = master_with_grants(cluster, h[0])
    s1 = cluster.standby(m, h[1])
    s2 = cluster.standby(m, h[2])
    a1 = config_agent(cluster, h[1])
    a2 = config_agent(cluster, h[2])

    # A field the re-pointing must keep, with a quote to prove the quoting.
    old = s2.sql("SHOW primary_conninfo")[0][0]
    s2.sql("ALTER SYSTEM SET primary_conninfo = "
           + psycopg2.extensions.QuotedString(old + r" application_name='s2 it\'s'").getquoted()
           .decode())
    s2.sql("SELECT pg_reload_conf()")
    wait_for(lambda: (receiver(s2) or ("",))[0] == "streaming"
             and m.sql("SELECT count(*) FROM pg_stat_replication "
                       "WHERE application_name = 's2 it''s'")[0][0] == 1,
             30, "s2 to stream under its new application_name")

    # The master goes away; both standbys hold all it wrote (its shutdown checkpoint).
    lsn = m.sql("SELECT pg_current_wal_lsn()")[0][0]
    m.stop()
    wait_for(lambda: caught_up(s1, lsn) and caught_up(s2, lsn), 20, "standbys to catch up")

    r = fo(a1, "promote")
    assert r.rc == 0, r
    r = fo(a2, "follow", h[1], str(port))
    assert r.rc == 0 and r.detail.startswith(f"streaming from {h[1]}:{port}"), r
    assert "primary_conninfo changed" in r.detail, r
    assert receiver(s2) == ("streaming", h[1], port)

    s1.sql("CREATE TABLE after_follow (x text)")
    s1.sql("INSERT INTO after_follow VALUES ('from s1')")
    wait_for(lambda: s2.sql("SELECT to_regclass('after_follow') IS NOT NULL")[0][0]
             and s2.sql("SELECT x FROM after_follow") == [("from s1",)], 30,
             "s1's row to reach s2")

    info = psycopg2.extensions.parse_dsn(s2.sql("SHOW primary_conninfo")[0][0])
    assert info["host"] == h[1] and info["port"] == str(port), info
    assert info["user"] == "postgres" and info["application_name"] == "s2 it's", info
    old_info = psycopg2.extensions.parse_dsn(old)
    for k, v in old_info.items():
        if k not in ("host", "port"):
            assert info.get(k) == v, (k, info, old_info)

    r = fo(a2, "follow", h[1], str(port))
    assert r.rc == 0 and r.detail == f"already streaming from {h[1]}:{port}", r

    # A master cannot follow anyone.
    r = fo(a1, "follow", h[2], str(port))
    assert r.rc == 1 and "not a standby" in r.detail, r


def test_follow_times_out_when_nothing_answers(cluster):
    h = cluster.hosts
    m = master_with_grants(cluster, h[0])
    s = cluster.standby(m, h[1])
    a = config_agent(cluster, h[1])
    t0 = time.monotonic()
    r = fo(a, "follow", h[3], str(cluster.db_port), timeout=3)
    assert r.rc == 1 and f"not streaming from {h[3]}" in r.detail, r
    assert time.monotonic() - t0 < 3 + 5
    # The setting was written even so: a master appearing there later is followed.
    info = psycopg2.extensions.parse_dsn(s.sql("SHOW primary_conninfo")[0][0])
    assert info["host"] == h[3]


# --- ping -------------------------------------------------------------------

def test_ping(cluster):
    h = cluster.hosts
    a = config_agent(cluster, h[0])
    r = fo(a, "ping")
    assert r.rc == 0 and r.detail == "no ping server configured", r

    r = fo(a, "ping", "127.0.0.1")
    assert r.rc == 0 and r.detail.startswith("127.0.0.1 answers"), r

    b = config_agent(cluster, h[1], pingServerIp="127.0.0.1",
                     pingServerCommand="/bin/ping -q -c1 -w2")
    r = fo(b, "ping")
    assert r.rc == 0 and r.detail == "127.0.0.1 answers (/bin/ping)", r

    c = config_agent(cluster, h[2], pingServerCommand="/nonexistent/ping -c1")
    r = fo(c, "ping", "127.0.0.1")
    assert r.rc == 1 and "/nonexistent/ping" in r.detail, r
    assert "could not be started: no such file or directory" in r.detail, r

    d = config_agent(cluster, h[3], pingServerCommand="/bin/false")
    r = fo(d, "ping", "127.0.0.1")
    assert r.rc == 1 and r.detail == "127.0.0.1 does not answer (/bin/false: exit code 1)", r

    r = fo(a, "ping", "-f")
    assert r.rc == 1 and "not an address" in r.detail, r


# --- scripts ----------------------------------------------------------------

def write_script(cluster, name, body):
    path = os.path.join(cluster.base, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


def test_script_env_output_exit_and_cancel(cluster):
    h = cluster.hosts
    a = config_agent(cluster, h[0], **{"script.timeout": 20})
    path = write_script(cluster, "fence.sh",
                        'echo "cluster=$EFM_CLUSTER node=$EFM_NODE event=$EFM_EVENT '
                        'extra=$EFM_NEW_MASTER"\necho oops >&2\nexit 3\n')
    r = fo(a, "script", "script.fence", path, "EFM_NEW_MASTER=10.0.0.9")
    assert r.rc == 1 and r.detail == f"script.fence {path}: exit code 3", r
    assert (f"cluster={cluster.name} node={h[0]} event=fence extra=10.0.0.9" in r.output), r
    assert "oops" in r.output

    r = fo(a, "script", "script.post.promotion", "")
    assert r.rc == 0 and r.detail == "script.post.promotion not set", r

    ok = write_script(cluster, "ok.sh", "echo fine\n")
    r = fo(a, "script", "script.post.promotion", ok)
    assert r.rc == 0 and r.output == "fine", r

    # Cancelled: the callback never runs and the script's process group is killed.
    pidfile = os.path.join(cluster.base, "sleeper.pid")
    sleeper = write_script(cluster, "sleep.sh", f"echo $$ > {pidfile}\nexec sleep 60\n")
    r = fo(a, "script", "script.master.isolated", sleeper, extra=("--cancel-after", "500"))
    assert r.rc == 3 and r.first == "cancelled", r
    pid = int(open(pidfile).read())

    def gone():
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
    wait_for(gone, 10, "the cancelled script to be killed")


# --- virtual IP -------------------------------------------------------------

def test_vip_assign_release_idempotent(ns_cluster, net):  # noqa: F811
    vip = net.vip()
    a = ns_cluster.agent(0, props=dict(ns_cluster.props(0), **{
        "virtualIp": vip, "virtualIp.interface": f"{net.dev}:1",
        "virtualIp.netmask": "255.255.255.0"}))
    ns = net.exec_prefix(0)

    r = fo(a, "vip-assign", prefix=ns)
    assert r.rc == 0 and f"assign {vip}/24 on {net.dev}:1" in r.detail, r
    assert f"{os.path.join(BUILD, 'efm_address')}" in r.stderr, r   # found next to the program
    assert net.has_addr(0, vip) and not net.has_addr(1, vip)
    r = fo(a, "vip-assign", prefix=ns)
    assert r.rc == 0 and "already" in r.detail, r
    assert net.has_addr(0, vip)

    r = fo(a, "vip-release", prefix=ns)
    assert r.rc == 0 and not net.has_addr(0, vip), r
    r = fo(a, "vip-release", prefix=ns)
    assert r.rc == 0 and not net.has_addr(0, vip), r

    env = dict(os.environ, EFM_ADDRESS_TOOL="/nonexistent/efm_address")
    r = fo(a, "vip-assign", prefix=ns, env=env)
    assert r.rc == 1 and "/nonexistent/efm_address" in r.detail, r
    assert not net.has_addr(0, vip)

    b = ns_cluster.agent(1)
    r = fo(b, "vip-assign", prefix=net.exec_prefix(1))
    assert r.rc == 0 and r.detail == "no virtual IP configured", r

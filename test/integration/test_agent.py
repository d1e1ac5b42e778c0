"""One agent watching its local database (real PostgreSQL, real efmd)."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from harness import EFM, EFMD, wait_for

M, S, W = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def node(status, host):
    return status["nodes"][host]


def test_master_agent_reports_role_and_wal(cluster):
    pg = cluster.master(M)
    # The status reports the monitor's latest check, so at least this position.
    before = lsn(pg.sql("SELECT pg_current_wal_lsn()")[0][0])
    a = cluster.agent(M).start()
    st, code = a.status()
    n = node(st, M)
    assert (n["type"], n["agent"], n["db"]) == ("Master", "UP", "UP")
    assert lsn(n["xlog"]) >= before
    assert st["allowednodes"] == [M]
    assert st["failoverpriority"] == []
    assert code != 0, "a cluster without a standby is not healthy"
    text = a.efm("cluster-status", cluster.name)
    assert text.returncode == code
    assert f"Cluster Status: {cluster.name}" in text.stdout
    assert re.search(rf"Master\s+{re.escape(M)}\s+UP\s+UP", text.stdout), text.stdout
    assert "Master agent started" in a.read_log()


def test_standby_agent_reports_role_and_wal(cluster):
    m = cluster.master(M)
    m.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS i")
    s = cluster.standby(m, S)
    a = cluster.agent(S).start()
    master_lsn = lsn(m.sql("SELECT pg_current_wal_lsn()")[0][0])

    def caught_up():
        n = node(a.status()[0], S)
        return n["xlog"] and lsn(n["xlog"]) >= master_lsn and n

    n = wait_for(caught_up, 20, "standby xlog to reach the master's position")
    assert (n["type"], n["db"]) == ("Standby", "UP")
    st = a.status()[0]
    assert st["failoverpriority"] == [S]
    assert "Standby agent started" in a.read_log()


def test_database_stop_declared_failed_in_time(cluster):
    pg = cluster.master(M)
    a = cluster.agent(M).start()
    stopped = time.monotonic()
    pg.stop()
    # local.period 1 + local.timeout 4 + local.timeout.final 2, plus a margin
    # for the check in flight when the server went away.
    limit = 1 + 4 + 2 + 2
    wait_for(lambda: a.node_status().get("failed"), limit + 5, "database failure")
    took = time.monotonic() - stopped
    assert took <= limit, f"failure declared after {took:.1f}s, limit {limit}s"
    assert took >= 3, f"failure declared after only {took:.1f}s: local.timeout not honoured"
    n = a.node_status()
    assert (n["type"], n["db"]) == ("Idle", "DOWN")
    log = a.read_log()
    assert "final check" in log and "declared failed" in log


def test_hung_postmaster_detected_and_agent_still_answers(cluster):
    pg = cluster.master(M)
    a = cluster.agent(M).start()
    pg.sigstop()
    stopped = time.monotonic()
    try:
        # The agent must keep answering while its checks hang.
        while not a.node_status().get("failed"):
            t0 = time.monotonic()
            r = a.efm("node-status-json", cluster.name, timeout=10)
            assert time.monotonic() - t0 < 5, "the agent stalled while the database hung"
            assert r.stdout, r.stderr
            assert time.monotonic() - stopped < 15, "hung database not declared failed"
            time.sleep(0.2)
        took = time.monotonic() - stopped
        assert took <= 1 + 4 + 2 + 2, f"declared after {took:.1f}s"
        t0 = time.monotonic()
        r = a.efm("cluster-status-json", cluster.name, timeout=20)
        # The direct query is bounded by remote.timeout (3 s).
        assert time.monotonic() - t0 < 3 + 2
        n = json.loads(r.stdout)["nodes"][M]
        assert n["type"] == "Idle" and n["xlog"] == "UNKNOWN"
    finally:
        pg.cont()


def test_second_agent_for_the_cluster_refused(cluster):
    cluster.master(M)
    a = cluster.agent(M).start()
    r = subprocess.run([EFMD, cluster.name], env=a.env(), capture_output=True, text=True,
                       timeout=20)
    assert r.returncode != 0
    assert f"pid {a.proc.pid}" in r.stderr, r.stderr
    assert a.node_status()["healthy"]


def test_sigterm_stops_cleanly_and_releases_everything(cluster):
    cluster.master(M)
    a = cluster.agent(M).start()
    assert os.path.exists(a.socket)
    assert a.stop() == 0
    assert not os.path.exists(a.socket)
    assert not os.path.exists(os.path.join(a.run_dir, f"{cluster.name}.lock"))
    assert "Master agent stopped" in a.read_log()
    # and it can start again
    a.start()


def test_witness_needs_no_database(cluster):
    a = cluster.agent(W, props={"bind.address": f"{W}:{cluster.bind_port}",
                                "is.witness": "true", "local.period": 1}).start()
    n = a.node_status()
    assert n["type"] == "Witness" and n["healthy"]


def test_unreachable_database_at_start_exits(cluster):
    a = cluster.agent(M)  # no server on M
    a.start(wait=False)
    assert a.wait_exit(30) != 0
    assert "unable to connect" in a.read_log().lower()


def test_wrong_password_reported(cluster):
    cluster.master(M)
    a = cluster.agent(M, db_password_encrypted=cluster.encrypt("not the password"))
    a.start(wait=False)
    assert a.wait_exit(30) != 0
    assert "password" in a.read_log().lower()


def test_password_of_another_cluster_refused(cluster):
    cluster.master(M)
    a = cluster.agent(M, db_password_encrypted=cluster.encrypt(cluster="sales"))
    a.start(wait=False)
    assert a.wait_exit(30) != 0
    log = a.read_log()
    assert "db.password.encrypted" in log and "cluster" in log


def test_reuse_connection_count(cluster):
    cluster.master(M)
    fresh = cluster.agent(M, name="fresh", db_reuse_connection_count=0).start()
    wait_for(lambda: fresh.node_status()["checks"] >= 4, 15, "four checks")
    n = fresh.node_status()
    assert n["connections"] >= n["checks"]
    fresh.stop()
    reuse = cluster.agent(M, name="reuse", db_reuse_connection_count=5).start()
    wait_for(lambda: reuse.node_status()["checks"] >= 10, 20, "ten checks")
    n = reuse.node_status()
    assert n["connections"] <= n["checks"] // 5 + 1, n


def test_bad_configuration_refused_with_file_line_and_key(cluster):
    a = cluster.agent(M)
    path = a.write_config("".join(f"{k}={v}\n" for k, v in a.props.items())
                          + "auto.failvoer=true\n")
    r = subprocess.run([EFMD, cluster.name], env=a.env(), capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 78
    line = len(a.props) + 1
    assert f"{path}:{line}" in r.stderr and "auto.failvoer" in r.stderr, r.stderr
    assert "auto.failover" in r.stderr, "no suggestion given"
    pc = a.efm("prop-check", cluster.name)
    assert pc.returncode != 0 and "auto.failvoer" in pc.stdout + pc.stderr


def test_sighup_reload_changes_log_level(cluster):
    cluster.master(M)
    a = cluster.agent(M).start()
    a.props["efm.loglevel"] = "WARNING"
    a.write_config()
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "efm.loglevel FINE -> WARNING" in a.read_log(), 10, "reload logged")
    assert a.node_status()["healthy"]


def test_jdbc_ssl_requires_ssl(cluster):
    pg = cluster.master(M)
    a = cluster.agent(M, name="nossl", jdbc_ssl="true")
    a.start(wait=False)
    assert a.wait_exit(30) != 0, "connected without SSL although jdbc.ssl=true"
    assert "ssl" in a.read_log().lower()
    # With a certificate the same settings connect, and the session is encrypted.
    key, crt = (os.path.join(pg.datadir, f) for f in ("server.key", "server.crt"))
    subprocess.run(["openssl", "req", "-new", "-x509", "-nodes", "-days", "1", "-subj",
                    "/CN=efm-test", "-keyout", key, "-out", crt], check=True,
                   capture_output=True)
    for f in (key, crt):
        os.chmod(f, 0o600)
        subprocess.run(["chown", "postgres:postgres", f], check=True)
    pg.sql("ALTER SYSTEM SET ssl = on")
    pg.sql("SELECT pg_reload_conf()")
    # A kept connection (reuse count) can be inspected in pg_stat_ssl.
    b = cluster.agent(M, name="ssl", jdbc_ssl="true", db_reuse_connection_count=1000).start()
    assert b.node_status()["healthy"]
    q = ("SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s "
         "JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'efm'")
    enc, total = wait_for(lambda: (lambda r: r if r[1] >= 1 else None)(pg.sql(q)[0]), 10,
                          "the agent's connection")
    assert enc == total, f"{total - enc} of the agent's connections are not encrypted"


def test_resume_after_the_database_is_back(cluster):
    pg = cluster.master(M)
    a = cluster.agent(M).start()
    r = a.efm("resume", cluster.name)
    assert r.returncode != 0 and "nothing to resume" in r.stderr, r.stderr
    pg.stop()
    wait_for(lambda: a.node_status().get("failed"), 15, "database failure")
    r = a.efm("resume", cluster.name)
    assert r.returncode != 0 and "does not answer" in r.stderr, r.stderr
    assert a.node_status()["type"] == "Idle"
    pg.start()
    r = a.efm("resume", cluster.name)
    assert r.returncode == 0, r.stderr
    assert "Master" in r.stdout
    n = a.node_status()
    assert n["type"] == "Master" and not n["failed"] and n["healthy"]
    # and the watch works again: a second failure is declared too
    pg.stop()
    wait_for(lambda: a.node_status().get("failed"), 15, "second database failure")
    assert a.read_log().count("database failure") >= 2


def test_status_probes_the_local_database_at_db_host(cluster):
    """db.host differs from the bind address: the status asks db.host.

    The database listens only on 127.0.0.2 while the agent binds 127.0.0.5;
    probing the bind address would report a healthy database as down.
    """
    cluster.master(M)
    agent_host = "127.0.0.5"
    a = cluster.agent(agent_host, **{"db.host": M}).start()
    n = wait_for(lambda: node(a.status()[0], agent_host), 20, "the master's row")
    assert (n["type"], n["db"]) == ("Master", "UP"), n
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", n["xlog"]), n


def test_stop_right_after_the_first_bootstrap_does_not_wedge(cluster):
    """SIGTERM during the first start of a one-member cluster (around its
    bootstrap and the seeding of its allowed list) must not leave a cluster
    that refuses its only member on every later start."""
    cluster.master(M)
    a = cluster.agent(M)
    for delay_ms in (50, 80, 110, 140, 170, 200):
        shutil.rmtree(a.state_dir)
        os.makedirs(a.state_dir)
        a.start(wait=False)
        time.sleep(delay_ms / 1000)  # the fault's timing, not a wait for a condition
        a.stop()
        mark = len(a.read_log())
        a.start(wait=False)
        wait_for(lambda: M in a.status()[0]["nodes"] and
                 "refusing to admit" not in a.read_log()[mark:], 20,
                 f"SIGTERM after {delay_ms} ms: the restarted agent to be its cluster's member")
        a.stop()

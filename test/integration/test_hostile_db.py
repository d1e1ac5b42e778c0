"""A healthy database that other clients crowd, or that really goes away.

The failure detector must tell "the server answered but will not serve the
check" (too many clients) from evidence that the database is gone (a
shutdown in progress), and say in the log which it saw.
"""
import threading
import time

import psycopg2

from harness import wait_for

M = "127.0.0.2"


class Crowd:
    """Idle superuser sessions that take every connection slot and keep taking freed ones."""

    def __init__(self, pg):
        self.pg = pg
        self.conns = []
        self.refusals = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _grab(self):
        while not self.stop.is_set():
            try:
                self.conns.append(self.pg.connect())
            except psycopg2.OperationalError as e:
                if "too many clients" not in str(e):
                    raise
                self.refusals += 1
                return

    def _run(self):
        # A slot the agent frees after its check is taken again at once.
        while not self.stop.is_set():
            self._grab()
            self.stop.wait(0.02)

    def __enter__(self):
        self._grab()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        for c in self.conns:
            c.close()


def test_full_connection_slots_are_not_a_database_failure(cluster):
    pg = cluster.master(M)
    # Five slots, one of them kept for superusers; the agent connects anew for every check.
    pg.sql("ALTER SYSTEM SET max_connections = 5")
    pg.sql("ALTER SYSTEM SET superuser_reserved_connections = 1")
    pg.stop()
    pg.start()
    a = cluster.agent(M, db_reuse_connection_count=0).start()
    checks = a.node_status()["checks"]
    cfg = a.props
    window = cfg["local.period"] + cfg["local.timeout"] + cfg["local.timeout.final"]

    with Crowd(pg) as crowd:
        assert len(crowd.conns) == 5, "the crowd did not take every slot"
        # Well past local.timeout + local.timeout.final: the old detector had declared
        # the master failed by then.
        deadline = time.monotonic() + 2 * window + 2
        while time.monotonic() < deadline:
            n = a.node_status()
            assert not n["failed"], a.read_log()[-3000:]
            assert n["type"] == "Master", n
            time.sleep(0.5)
        assert crowd.refusals > 0
        log = a.read_log()
        assert "53300" in log, log[-3000:]
        finals = [l for l in log.splitlines()
                  if "final check" in l and "alive but cannot be checked" in l]
        assert finals, log[-3000:]
        assert "WARNING" in finals[0] and "not declared failed" in finals[0], finals[0]
        # Said once per episode at WARNING (one failed check, one final check), not at every
        # check: the rest goes to FINE.
        loud = [l for l in log.splitlines() if "WARNING" in l and "cannot be checked" in l]
        assert len(loud) <= 2, loud

    # The crowd leaves: checks succeed again and the node is healthy.
    wait_for(lambda: a.node_status()["checks"] > checks + 1 and a.node_status()["healthy"], 15,
             "checks to succeed after the crowd left")
    assert "database declared failed" not in a.read_log()


def test_a_shutdown_in_progress_is_a_failure(cluster):
    pg = cluster.master(M)
    a = cluster.agent(M, db_reuse_connection_count=0).start()
    # A smart shutdown waits for this session; meanwhile new connections are refused
    # with "the database system is shutting down", which is evidence, not busyness.
    holder = pg.connect()
    try:
        stopper = threading.Thread(
            target=lambda: pg.stop(mode="smart"), daemon=True)
        stopper.start()
        wait_for(lambda: a.node_status().get("failed"), 1 + 4 + 2 + 8, "failure declared")
        log = a.read_log()
        assert "57P03" in log and "shutting down" in log, log[-3000:]
        assert "evidence" in log, log[-3000:]
    finally:
        holder.close()
        stopper.join(60)

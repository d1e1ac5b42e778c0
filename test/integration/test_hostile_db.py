"""A healthy database that other clients crowd, or that really goes away.

The failure detector must tell "the server answered but will not serve the
check" (too many clients) from evidence that the database is gone (a
shutdown in progress), and say in the log which it saw.
"""
import json
import signal
import socket
import threading
import time

import psycopg2

from harness import wait_for

M, S = "127.0.0.2", "127.0.0.3"


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


def sessions(pg):
    """Client sessions the server has seen so far (this query's own included)."""
    return pg.sql("SELECT sum(sessions) FROM pg_stat_database")[0][0]


def status_request(path):
    """One cluster-status-json request, asked again while the agent answers busy (as efm does)."""
    request = json.dumps({"command": "cluster-status-json", "args": []}).encode() + b"\n"
    deadline = time.monotonic() + 60
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        try:
            s.connect(path)
            s.sendall(request)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            data = b'{"busy": true}'
        finally:
            s.close()
        reply = json.loads(data)
        if not reply.get("busy") or time.monotonic() > deadline:
            return reply
        time.sleep(0.01)


def status_flood(agent, n):
    """n cluster-status-json requests at once on agent's socket; returns the replies."""
    replies = []
    go = threading.Barrier(n)

    def one():
        go.wait()
        replies.append(status_request(agent.socket))

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return replies


def test_status_floods_cost_the_databases_a_probe_round_per_period(cluster):
    """Hundreds of cluster-status requests at once cost each database at most
    one connection per agent and local.period: status answers from the
    heartbeats and the monitor, and a row only a direct query can tell about
    (here a standby whose agent went silent) is probed once for every request
    waiting on it."""
    m = cluster.master(M)
    s = cluster.standby(m, S)
    listed = [f"{h}:{cluster.bind_port}" for h in (M, S)]
    agents = {}
    for h in (M, S):
        # The monitors keep their connection, so new sessions are the status's doing.
        a = cluster.agent(h, node_timeout=20, db_reuse_connection_count=1000000)
        a.nodes = listed
        a.write_config()
        agents[h] = a
    for a in agents.values():
        a.start(wait=False)
    for a in agents.values():
        wait_for(lambda: {h: (n["type"], n["agent"], n["db"])
                          for h, n in a.status()[0]["nodes"].items()}
                 == {M: ("Master", "UP", "UP"), S: ("Standby", "UP", "UP")}, 60,
                 f"{a.host} to see the cluster")
    servers = {M: m, S: s}

    def flood(targets, per_agent, secs):
        """Waves of per_agent requests at once on each target agent for secs seconds."""
        before = {h: sessions(pg) for h, pg in servers.items()}
        started = time.monotonic()
        results = {h: [] for h in targets}
        while time.monotonic() - started < secs:
            threads = [threading.Thread(target=lambda h=h: results[h].extend(
                status_flood(agents[h], per_agent))) for h in targets]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
        took = time.monotonic() - started
        # A session is counted when it ends: the first count's, not the second's.
        new = {h: sessions(pg) - before[h] - 1 for h, pg in servers.items()}
        return results, new, took

    # Everything is fresh: no request needs a database at all.
    results, new, took = flood((M, S), 300, 3)
    for h, replies in results.items():
        assert len(replies) >= 300
        for r in replies:
            assert r["ok"], r
            assert set(r["status"]["nodes"]) == {M, S}, r
            assert all(n["xlog"] not in ("", "UNKNOWN") for n in r["status"]["nodes"].values()), r
    rounds = 2 * (int(took) + 2)  # two agents, one round a second at most, both ends
    print(f"\n{sum(map(len, results.values()))} status requests in {took:.1f}s cost {new} "
          "new sessions")
    assert all(v <= rounds for v in new.values()), (new, took)

    # The standby's agent goes silent: its row needs a query of its database,
    # one per round, shared by all the requests waiting.
    agents[S].proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: agents[M].status() and "status probe round" in agents[M].read_log(), 30,
                 "the master's agent to query the standby directly")
        rounds_before = agents[M].read_log().count("status probe round")
        results, new, took = flood((M,), 300, 4)
        rounds = agents[M].read_log().count("status probe round") - rounds_before
        for r in results[M]:
            assert r["ok"], r
            n = r["status"]["nodes"][S]
            assert n["xlog"] not in ("", "UNKNOWN"), n
        print(f"{len(results[M])} status requests needing a probe in {took:.1f}s cost {new} "
              f"new sessions ({rounds} log lines of probe rounds)")
        assert rounds > 0, "no probe round: the standby's row was not queried"
        assert 0 < new[S] <= int(took) + 2, (new, took)
        assert new[M] <= 2, (new, took)
    finally:
        agents[S].proc.send_signal(signal.SIGCONT)
    for h, a in agents.items():
        n = a.node_status()
        assert not n["failed"] and n["type"] in ("Master", "Standby"), n
        assert "database declared failed" not in a.read_log()

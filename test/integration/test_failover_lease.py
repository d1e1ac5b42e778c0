"""The master's side of the safety rule, on 127.0.0.x: a healthy master keeps its
database whichever agent leads the cluster (the two-way lease is renewed through the
leader's echoes of its heartbeats), and a crashed postmaster is seen at once through
the monitor's kept connection, not at the next local.period."""
import os
import signal
import time

from harness import wait_for

NODE_TIMEOUT = 3


def addr(cluster, host):
    return f"{host}:{cluster.bind_port}"


def leader_of(agents):
    """The agent whose log says it leads (the last one to say so)."""
    leads = [a for a in agents if "this agent is now the cluster leader" in a.read_log()]
    return leads[-1] if len(leads) == 1 else None


def test_master_that_does_not_lead_keeps_its_database(cluster):
    # Bootstrap goes to the lowest address, so the master gets the highest one.
    s_host, w_host, m_host = cluster.hosts[0], cluster.hosts[1], cluster.hosts[2]
    m = cluster.master(m_host)
    cluster.standby(m, s_host)
    listed = [addr(cluster, h) for h in (s_host, w_host, m_host)]
    agents = []
    for h in (s_host, w_host, m_host):
        extra = {"is_witness": "true"} if h == w_host else {}
        a = cluster.agent(h, node_timeout=NODE_TIMEOUT, **extra)
        a.nodes = listed
        a.write_config()
        agents.append(a)
    for a in agents:
        a.start(wait=False)
    master_agent = agents[2]
    wait_for(lambda: (lambda st: st.get("failover", {}).get("master") == addr(cluster, m_host)
                      and all(n["agent"] == "UP" for n in st["nodes"].values())
                      and len(st["nodes"]) == 3)(master_agent.status()[0]),
             60, "three members up and the master recorded")
    leader = wait_for(lambda: leader_of(agents), 10, "one leader")
    assert leader is not master_agent, "the test needs a master that does not lead"
    # Well beyond the isolation time (T/2) and T + T/2, the grace of a joining master.
    deadline = time.monotonic() + 4 * NODE_TIMEOUT
    while time.monotonic() < deadline:
        assert m.sql("SELECT pg_is_in_recovery()")[0][0] is False
        time.sleep(0.5)
    log = master_agent.read_log()
    assert "fencing the local database" not in log, log
    st, _ = master_agent.status()
    assert st["failover"]["phase"] == "NONE", st["failover"]
    assert st["nodes"][m_host]["type"] == "Master", st["nodes"]


def test_crashed_postmaster_is_seen_at_once_through_the_kept_connection(cluster):
    m = cluster.master(cluster.hosts[0])
    # A long period: only the kept connection's closing can tell the agent in time.
    a = cluster.agent(cluster.hosts[0], db_reuse_connection_count=1000, local_period=30,
                      local_timeout=60, local_timeout_final=5).start()
    wait_for(lambda: a.node_status().get("checks", 0) >= 1, 20, "a first check")
    before = a.node_status()["checks"]
    t0 = time.monotonic()
    os.kill(m.postmaster_pid(), signal.SIGKILL)
    m.running = False

    def seen_down():
        st, _ = a.status()
        return st["nodes"][cluster.hosts[0]]["db"] == "DOWN"
    wait_for(seen_down, 10, "the database reported down")
    elapsed = time.monotonic() - t0
    assert elapsed < 5, f"took {elapsed:.1f} s with local.period=30"
    assert "closed by the server" in a.read_log()
    assert a.node_status()["checks"] == before  # no periodic check ran meanwhile

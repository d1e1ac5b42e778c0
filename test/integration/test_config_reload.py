"""Reloading the configuration (SIGHUP) many times keeps the agent's memory flat."""
import os
import signal
import time

from harness import wait_for

W = "127.0.0.4"
RELOADED = "configuration reloaded from"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def hup(agent, n):
    """Send n SIGHUPs and wait until the agent has handled every one it received.

    Signals sent faster than the agent handles them may merge, so the
    number of reloads is counted from the log, not assumed.
    """
    before = agent.read_log().count(RELOADED)
    for _ in range(n):
        agent.proc.send_signal(signal.SIGHUP)
        time.sleep(0.002)

    def settled():
        c = agent.read_log().count(RELOADED)
        time.sleep(0.5)
        return c if agent.read_log().count(RELOADED) == c else None

    return wait_for(settled, 120, "the reloads to finish") - before


def test_many_reloads_do_not_grow_memory(cluster):
    # Long values make each configuration weigh some 12 kB, so a kept one shows.
    long = "x" * 4000
    a = cluster.agent(W, props={"bind.address": f"{W}:{cluster.bind_port}",
                                "is.witness": "true",
                                "notification.smtp.user": long,
                                "db.service.owner": long,
                                "pingServerCommand": "/bin/true " + long})
    # Under AddressSanitizer freed memory waits in a quarantine before reuse,
    # which would look like growth: measure with the quarantine off.
    env = a.env()
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + \
        "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    a.env = lambda: env
    a.start()

    assert hup(a, 300) >= 100  # warm up: the allocator reaches its working size
    base = rss_kb(a.proc.pid)
    done = hup(a, 1500)
    grown = rss_kb(a.proc.pid) - base
    assert done >= 500, f"only {done} reloads were handled"
    # Each kept configuration would add 12 kB or more: 500 of them 6 MB.
    assert grown < 2048, f"RSS grew {grown} kB over {done} reloads ({grown / done:.1f} kB each)"
    assert a.node_status()["healthy"]
    assert a.stop() == 0

import os

import pytest

from harness import EFM, EFMD, Cluster


def pytest_sessionstart(session):
    for prog in (EFMD, EFM):
        if not os.access(prog, os.X_OK):
            raise pytest.UsageError(f"{prog} is not built (set EFM_BUILD_DIR)")


LOG_TAIL = 6        # lines of each agent's log shown when a test fails
LOG_WARNINGS = 8    # and its last warnings before those


def agent_log_digest(cluster):
    """The end of every agent's log and its last warnings: what a failed test's
    report shows, so that a failure in CI can be understood from its output."""
    out = []
    for a in cluster.agents:
        try:
            lines = a.read_log().splitlines()
        except OSError:
            continue
        tail = lines[-LOG_TAIL:]
        warned = [x for x in lines[:-LOG_TAIL]
                  if x.lstrip("<0123456789>").startswith(("WARNING", "SEVERE"))]
        out.append(f"--- agent {a.name} ({a.host}): {len(lines)} lines")
        out.extend(x[:220] for x in warned[-LOG_WARNINGS:])
        if warned:
            out.append("    ...")
        out.extend(x[:220] for x in tail)
    return "\n".join(out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    for name in ("cluster", "ns_cluster"):
        c = item.funcargs.get(name) if hasattr(item, "funcargs") else None
        if c is not None and getattr(c, "agents", None):
            rep.sections.append(("agent logs", agent_log_digest(c)))


@pytest.fixture
def cluster():
    c = Cluster()
    try:
        yield c
    finally:
        reports = c.teardown()
    # A sanitizer fault in an agent fails the test even if its checks passed.
    if reports:
        pytest.fail("sanitizer reports in agent logs:\n" + "\n".join(reports[:20]))

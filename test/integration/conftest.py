import os

import pytest

from harness import EFM, EFMD, Cluster


def pytest_sessionstart(session):
    for prog in (EFMD, EFM):
        if not os.access(prog, os.X_OK):
            raise pytest.UsageError(f"{prog} is not built (set EFM_BUILD_DIR)")


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

"""prop-check and the agent's start-up judge a configuration alike.

Every configuration the agent refuses at start must be reported by
`efm prop-check`, and the agent refuses it at once with exit code 78
(EX_CONFIG), before it touches the database or the network.  No database
is needed: each of these refusals comes first.
"""
import os
import subprocess
import time

import pytest

from harness import EFMD

M, W = "127.0.0.2", "127.0.0.4"
EX_CONFIG = 78


def start_refused(agent, cluster):
    """Run efmd in the foreground; returns (exit code, stderr, seconds taken)."""
    t0 = time.monotonic()
    r = subprocess.run([EFMD, cluster.name], env=agent.env(), capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stderr, time.monotonic() - t0


def script(agent, name, mode=0o755):
    path = os.path.join(agent.dir, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(path, mode)
    return path


def cases(cluster, a):
    """(name, overrides, fragments every report must contain)."""
    return [
        ("missing script", {"script.fence": os.path.join(a.dir, "no-such-script")},
         ["script.fence", "No such file or directory"]),
        ("script is a directory", {"script.post.promotion": a.dir},
         ["script.post.promotion", "not a regular file"]),
        ("script writable by others",
         {"script.db.failure": script(a, "loose", 0o777)},
         ["script.db.failure", "writable"]),
        ("password of another cluster",
         {"db.password.encrypted": cluster.encrypt(cluster="sales")},
         ["db.password.encrypted", "cannot decrypt"]),
        ("missing peer key file", {"peer.key.file": os.path.join(a.dir, "no-such-key")},
         ["peer.key.file", "No such file or directory"]),
        ("peer key file is a directory", {"peer.key.file": a.dir},
         ["peer.key.file", "not a regular file"]),
        ("unspecified bind address", {"bind.address": f"0.0.0.0:{cluster.bind_port}"},
         ["bind.address", "unspecified address"]),
        ("node timeout below the floor", {"node.timeout": 1},
         ["node.timeout", "isolated master"]),
        ("no pg_ctl where db.bin says", {"db.bin": a.dir},
         ["db.bin", "pg_ctl"]),
        ("data directory missing", {"db.recovery.conf.dir": os.path.join(a.dir, "nowhere")},
         ["db.recovery.conf.dir", "No such file or directory"]),
        ("ping command missing with a ping server",
         {"pingServerIp": "192.0.2.1", "pingServerCommand": "/nonexistent/ping -c1"},
         ["pingServerCommand", "/nonexistent/ping"]),
    ]


def test_prop_check_reports_what_the_agent_refuses(cluster):
    a = cluster.agent(M)
    base = dict(a.props)
    # A good configuration with a good script passes both (prop-check says so).
    a.props = dict(base, **{"script.fence": script(a, "fence")})
    a.write_config()
    pc = a.efm("prop-check", cluster.name)
    assert pc.returncode == 0 and "No problems found" in pc.stdout, pc.stdout + pc.stderr

    for name, overrides, wants in cases(cluster, a):
        a.props = dict(base, **overrides)
        a.write_config()
        pc = a.efm("prop-check", cluster.name)
        report = pc.stdout + pc.stderr
        assert pc.returncode != 0 and "No problems found" not in report, \
            f"{name}: prop-check passed it:\n{report}"
        for w in wants:
            assert w in report, f"{name}: prop-check does not say {w!r}:\n{report}"

        code, err, took = start_refused(a, cluster)
        assert code == EX_CONFIG, f"{name}: efmd exited {code} after {took:.1f}s:\n{err}"
        for w in wants:
            assert w in err, f"{name}: efmd does not say {w!r}:\n{err}"
        # Refused before anything starts: no mail retries, no connection attempts.
        assert took < 3, f"{name}: refused only after {took:.1f}s"
        assert "prop-check" in err


def test_witness_password_must_decrypt(cluster):
    """A witness's password keys the peer authentication: an undecryptable one is refused."""
    a = cluster.agent(W, props={"bind.address": f"{W}:{cluster.bind_port}",
                                "is.witness": "true",
                                "db.password.encrypted": cluster.encrypt(cluster="sales")})
    pc = a.efm("prop-check", cluster.name)
    assert pc.returncode != 0 and "db.password.encrypted" in pc.stdout, pc.stdout
    code, err, _ = start_refused(a, cluster)
    assert code == EX_CONFIG and "db.password.encrypted" in err, err


@pytest.mark.parametrize("ending", ["\r", "\r\n", "\n"])
def test_line_endings(cluster, ending):
    """CR-only, CRLF and LF files are read alike: every key is seen."""
    a = cluster.agent(W, props={"bind.address": f"{W}:{cluster.bind_port}",
                                "is.witness": "true", "auto.failvoer": "true"})
    a.write_config(ending.join(f"{k}={v}" for k, v in a.props.items()) + ending)
    pc = a.efm("prop-check", cluster.name)
    # The misspelt key is the last line: it is reported on line 3, not swallowed.
    assert pc.returncode != 0 and ".properties:3: auto.failvoer" in pc.stdout, pc.stdout

"""The efm client: exit codes, help, permissions, local commands."""
import json
import os
import subprocess
import time

from harness import EFM, run

M = "127.0.0.2"


def efm(*args, env=None, user=None):
    cmd = [EFM] + list(args)
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30)


def test_help_and_version():
    r = efm("--help")
    assert r.returncode == 0 and "cluster-status" in r.stdout
    r = efm("--version")
    assert r.returncode == 0 and r.stdout.startswith("efm ")
    r = efm("cluster-status", "--help")
    assert r.returncode == 0


def test_unknown_command_is_usage_error():
    r = efm("frobnicate", "acctg")
    assert r.returncode == 2 and "usage" in r.stderr.lower()
    r = efm()
    assert r.returncode == 2


def test_no_agent_fails_fast_with_socket_path(tmp_path):
    env = dict(os.environ, EFM_RUN_DIR=str(tmp_path))
    t0 = time.monotonic()
    r = efm("cluster-status", "acctg", env=env)
    assert time.monotonic() - t0 < 1.0
    assert r.returncode == 1
    assert str(tmp_path / "acctg.sock") in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_mutating_command_refused_for_other_user(cluster):
    cluster.master(M)
    a = cluster.agent(M).start()
    r = a.efm("promote", cluster.name, user="nobody")
    assert r.returncode != 0
    assert "permission" in (r.stdout + r.stderr).lower() or "not allowed" in (r.stdout + r.stderr).lower()
    assert "nobody" in a.read_log() or "uid 65534" in a.read_log()
    # status is open to anybody who can reach the socket
    r = a.efm("cluster-status-json", cluster.name, user="nobody")
    assert json.loads(r.stdout)["nodes"][M]["type"] == "Master"
    # root is allowed through to the command itself, which refuses: the master runs
    # (either recorded already, "two masters", or a moment after start, not recorded
    # yet while its agent reports it running).
    r = a.efm("promote", cluster.name)
    assert r.returncode == 1 and "efm promote:" in r.stderr, r.stderr
    assert "two masters" in r.stderr or "reports a running master" in r.stderr, r.stderr


def test_encrypt_dialogue_from_stdin(tmp_path):
    env = dict(os.environ)
    env.pop("EFM_PASSWORD", None)
    r = subprocess.run([EFM, "encrypt", "acctg"], input="s3cret\ns3cret\n", text=True,
                       capture_output=True, env=env, timeout=10)
    assert r.returncode == 0, r.stderr
    assert "db.password.encrypted=" in r.stdout
    r = subprocess.run([EFM, "encrypt", "acctg"], input="s3cret\nother\n", text=True,
                       capture_output=True, env=env, timeout=10)
    assert r.returncode != 0


def test_prop_check_reports_and_exit_codes(cluster):
    a = cluster.agent(M)
    r = a.efm("prop-check", cluster.name)
    assert r.returncode == 0, r.stdout + r.stderr
    for label in ("Binding address:", "Cluster name:", "Network adapters:"):
        assert label in r.stdout
    assert "127.0.0.1" in r.stdout  # lo's address among the adapters
    a.write_config("bind.address=127.0.0.2\n")
    r = a.efm("prop-check", cluster.name)
    assert r.returncode != 0
    assert "bind.address" in r.stdout + r.stderr

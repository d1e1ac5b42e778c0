"""The agent's locks: one agent per run directory and per state directory,
and a clear refusal when a lock path holds something that is not a lock file.
Witness agents: no database is needed to take or to be refused a lock.
"""
import os
import subprocess

import pytest

from harness import EFMD

W1, W2 = "127.0.0.4", "127.0.0.5"
EX_TEMPFAIL = 75   # another agent holds the lock
EX_CANTCREAT = 73  # the lock path is unusable


def witness(cluster, host, name):
    return cluster.agent(host, name=name, props={"bind.address": f"{host}:{cluster.bind_port}",
                                                 "is.witness": "true"})


def run_refused(agent, cluster):
    """Start efmd expecting a refusal; a start that goes on is killed and fails the test."""
    p = subprocess.Popen([EFMD, cluster.name], env=agent.env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"efmd was not refused:\n{err}")
    return p.returncode, err


def test_second_agent_on_the_same_state_directory_refused(cluster):
    a = witness(cluster, W1, "a").start()
    # Another run directory and another address, but a's Raft state.
    b = witness(cluster, W2, "b")
    b.state_dir = a.state_dir
    code, err = run_refused(b, cluster)
    assert code == EX_TEMPFAIL, err
    assert f"pid {a.proc.pid}" in err and a.state_dir in err, err
    assert a.node_status()["healthy"]
    # Once a has stopped, b may use the directory.
    assert a.stop() == 0
    b.start()
    assert b.node_status()["healthy"]


def make_directory(path):
    os.mkdir(path)


def make_fifo(path):
    os.mkfifo(path)


def make_symlink(path):
    target = path + ".target"
    with open(target, "w") as f:
        f.write("precious\n")
    os.symlink(target, path)


def make_hard_link(path):
    other = path + ".other"
    with open(other, "w") as f:
        f.write("precious\n")
    os.link(other, path)


@pytest.mark.parametrize("where", ["run", "state"])
@pytest.mark.parametrize("make, says", [
    (make_directory, "is a directory"),
    (make_fifo, "is a FIFO"),
    (make_symlink, "is a symbolic link"),
    (make_hard_link, "hard links"),
])
def test_unusable_lock_path_named(cluster, where, make, says):
    a = witness(cluster, W1, "a")
    if where == "run":
        path = os.path.join(a.run_dir, f"{cluster.name}.lock")
    else:
        os.makedirs(os.path.join(a.state_dir, cluster.name), exist_ok=True)
        path = os.path.join(a.state_dir, cluster.name, "efmd.lock")
    make(path)
    code, err = run_refused(a, cluster)
    assert code == EX_CANTCREAT, f"exit {code}:\n{err}"
    assert path in err and says in err, err
    assert "another agent" not in err, err
    # Nothing was followed or truncated.
    for other in (path + ".target", path + ".other"):
        if os.path.exists(other):
            with open(other) as f:
                assert f.read() == "precious\n"

"""Local users and stray clients against a real agent's admin socket.

Whatever arrives on the socket (idle connections by the hundred, a storm of
connect/close, raw requests with hostile arguments) must neither fail the
healthy database nor lock the operator out.
"""
import json
import socket

from harness import wait_for

M = "127.0.0.2"


def raw_request(path, obj):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    s.sendall(json.dumps(obj).encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data)


def test_hostile_arguments_refused_by_the_agent(cluster):
    cluster.master(M)
    a = cluster.agent(M).start()
    wait_for(lambda: a.status()[0]["allowednodes"], 20, "the cluster to form")
    cases = [
        ("add-node", ["%n%n%n%s%s"], "ADDRESS"),
        ("add-node", ["10.0.0.9", "99999999999999"], "PRIORITY"),
        ("add-node", ["10.0.0.9", "-1"], "PRIORITY"),
        ("add-node", ["10.0.0.9", "1x"], "PRIORITY"),
        ("set-priority", ["10.0.0.9", "4294967297"], "PRIORITY"),
        ("set-priority", ["10.0.0.9"], "PRIORITY"),
        ("remove-node", ["a b"], "ADDRESS"),
        ("remove-node", ["\u001b[31mred"], "ADDRESS"),
        ("add-node", ["10.0.0.9", "1", "extra"], "too many"),
        ("add-node", [7], "ADDRESS"),
        ("promote", ["--now"], "unexpected"),
        ("stop-cluster", ["x"], "too many"),
    ]
    for command, args, word in cases:
        r = raw_request(a.socket, {"command": command, "args": args})
        assert r["ok"] is False, (command, args, r)
        assert word in r["error"], (command, args, r)
        assert "\u001b" not in r["error"]
    st = a.status()[0]
    assert st["allowednodes"] == [M], st
    assert st["failoverpriority"] == [], st
    # A well-formed request still works.
    r = raw_request(a.socket, {"command": "add-node", "args": ["10.0.0.9", "1"]})
    assert r["ok"] is True, r
    assert "10.0.0.9" in a.status()[0]["allowednodes"]
    # The client applies the same checks before asking.
    r = a.efm("add-node", cluster.name, "10.0.0.8", "99999999999999")
    assert r.returncode == 2 and "PRIORITY" in r.stderr, r.stderr

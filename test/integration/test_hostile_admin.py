"""Local users and stray clients against a real agent's admin socket.

Whatever arrives on the socket (idle connections by the hundred, a storm of
connect/close, raw requests with hostile arguments) must neither fail the
healthy database nor lock the operator out.
"""
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time

from harness import EFMD, wait_for

M = "127.0.0.2"

# Runs as an unprivileged user: keep up to `want` idle connections open on the
# socket for `secs` seconds, opening new ones as the agent closes or refuses
# them.  Prints what happened as one JSON object.
FLOOD = r"""
import json, select, socket, sys, time
path, want, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
held, refused, closed_idle, peak, busy_text, errors = {}, 0, 0, 0, "", 0
end = time.monotonic() + secs
while time.monotonic() < end:
    while len(held) < want:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except (BlockingIOError, ConnectionRefusedError, OSError):
            s.close()
            errors += 1
            break
        held[s.fileno()] = s
    peak = max(peak, len(held))
    r, _, _ = select.select(list(held.values()), [], [], 0.02)
    for s in r:
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if b"busy" in data:
            refused += 1
            busy_text = data.decode(errors="replace").strip()
        else:
            closed_idle += 1
        del held[s.fileno()]
        s.close()
# Connections still open at the end were accepted and held: served.
print(json.dumps({"peak_open": peak, "refused_busy": refused, "closed_idle": closed_idle,
                  "open_at_end": len(held), "connect_errors": errors, "busy_text": busy_text}))
"""


def start_with_nofile(agent, nofile):
    """Start the agent with RLIMIT_NOFILE soft = hard = nofile, as a tight host would."""
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    agent.log = open(agent.logfile, "ab")
    agent.proc = subprocess.Popen([EFMD, agent.cluster.name], env=agent.env(), stdout=agent.log,
                                  stderr=subprocess.STDOUT, preexec_fn=limit)
    wait_for(lambda: agent.node_status().get("healthy") or agent.exited(), 30,
             f"agent {agent.name} to become healthy")
    assert not agent.exited(), agent.read_log()
    return agent


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_idle_connection_flood_does_not_fail_the_database(cluster):
    cluster.master(M)
    nofile = 128
    a = start_with_nofile(cluster.agent(M, db_reuse_connection_count=0), nofile)
    base_fds = open_fds(a.proc.pid)
    window = 1 + 4 + 2  # local.period + local.timeout + local.timeout.final
    secs = 2 * window + 2
    flood = subprocess.Popen(
        [sys.executable, "-c", FLOOD, a.socket, str(3 * nofile), str(secs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, user="nobody", group="nogroup")
    try:
        started = time.monotonic()
        answered = 0
        peak_fds = 0
        while time.monotonic() - started < secs - 1:
            n = a.node_status()
            assert n, "node-status-json got no answer during the flood"
            assert not n["failed"], a.read_log()[-4000:]
            r = a.efm("cluster-status", cluster.name, timeout=20)
            assert "Cluster Status" in r.stdout, r.stderr
            answered += 1
            peak_fds = max(peak_fds, open_fds(a.proc.pid))
            time.sleep(0.5)
        out, err = flood.communicate(timeout=secs + 30)
    finally:
        if flood.poll() is None:
            flood.kill()
    stats = json.loads(out)
    print(f"\nflood against RLIMIT_NOFILE={nofile}: agent descriptors {base_fds} at rest, "
          f"{peak_fds} at most during the flood; {stats}; "
          f"cluster-status answered {answered} times during it")
    assert stats["refused_busy"] > 0, stats
    assert "busy" in stats["busy_text"] and '"ok":false' in stats["busy_text"]
    # The cap leaves room: the agent stayed well clear of its descriptor limit.
    assert peak_fds < nofile - 32, peak_fds
    n = a.node_status()
    assert n["healthy"] and not n["failed"] and n["type"] == "Master", n
    log = a.read_log()
    assert "database declared failed" not in log
    assert "Too many open files" not in log
    # One line per idle client closed would be hundreds; the log summarises instead.
    assert log.count("no request within") < 20, log.count("no request within")


def test_connect_close_storm_does_not_lock_out_the_cli(cluster):
    cluster.master(M)
    a = cluster.agent(M).start()
    stop = threading.Event()

    def storm():
        while not stop.is_set():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(a.socket)
            except OSError:
                pass
            s.close()

    threads = [threading.Thread(target=storm, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    failures = []
    try:
        for _ in range(10):
            r = a.efm("node-status-json", cluster.name, timeout=30)
            if r.returncode != 0:
                failures.append(r.stderr.strip())
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not failures, f"{len(failures)} of 10 commands failed: {failures[:3]}"


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

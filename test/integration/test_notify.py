"""Notifications through real transports: SMTP (aiosmtpd), a webhook, a script."""
import json
import os
import stat
import time

import pytest

from harness import wait_for
from sinks import SmtpSink, WebhookSink

M = "127.0.0.2"


@pytest.fixture
def smtp():
    s = SmtpSink().start()
    try:
        yield s
    finally:
        s.stop()


def write_script(cluster, name, text):
    path = os.path.join(cluster.base, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def test_database_failure_mail(cluster, smtp):
    pg = cluster.master(M)
    a = cluster.agent(M, notification_smtp_url=smtp.url,
                      user_email="dba@example.com, ops@example.com").start()
    started = wait_for(lambda: smtp.find("Master agent started"), 20, "start-up mail")[0]
    assert sorted(started["rcpt"]) == ["dba@example.com", "ops@example.com"]
    pg.stop()
    mail = wait_for(lambda: smtp.find("database failure"), 30, "database failure mail")[0]
    assert "SEVERE" in mail["subject"] or "SEVERE" in mail["body"]
    assert cluster.name in mail["subject"]
    body = mail["body"]
    assert M in body and cluster.name in body and "postgres" in body
    # the same event is in the status messages
    msgs = a.status()[0]["messages"]
    assert any("database failure" in m for m in msgs), msgs


def test_mail_retried_when_smtp_server_comes_back(cluster):
    sink = SmtpSink()  # its port is chosen, nothing listens yet
    pg = cluster.master(M)
    a = cluster.agent(M, notification_smtp_url=sink.url).start()
    pg.stop()
    wait_for(lambda: a.node_status().get("failed"), 20, "database failure")
    # The agent keeps answering while its mail cannot be delivered.
    for _ in range(5):
        t0 = time.monotonic()
        assert a.node_status()["type"] == "Idle"
        assert time.monotonic() - t0 < 2
        time.sleep(0.2)
    sink.start()
    try:
        wait_for(lambda: sink.find("database failure"), 90, "the retried mail")
    finally:
        sink.stop()


def test_webhook_and_notification_script(cluster):
    hook = WebhookSink()
    try:
        out = os.path.join(cluster.base, "notified")
        script = write_script(cluster, "notify.sh",
                              "#!/bin/sh\nprintf '%s\\n' \"$1\" \"$2\" >> " + out + "\n"
                              "env | grep -c '^EFM_CLUSTER=' >> " + out + "\n")
        pg = cluster.master(M)
        cluster.agent(M, notification_webhook_url=hook.url, script_notification=script,
                      notification_smtp_url="smtp://127.0.0.1:9").start()
        ev = wait_for(lambda: [e for e in hook.events
                               if e["json"].get("event") == "agent.started.master"],
                      20, "start-up webhook")[0]
        assert ev["type"].startswith("application/json")
        assert ev["json"]["cluster"] == cluster.name and ev["json"]["severity"] == "INFO"
        pg.stop()
        wait_for(lambda: [e for e in hook.events if e["json"].get("event") == "db.failure"],
                 30, "failure webhook")
        lines = wait_for(lambda: os.path.exists(out) and open(out).read().splitlines(), 20,
                         "notification script output")
        assert "INFO" in lines and "1" in lines
        wait_for(lambda: "SEVERE" in open(out).read().splitlines(), 20, "SEVERE script call")
    finally:
        hook.stop()


def test_db_failure_script_runs_and_reports(cluster, smtp):
    marker = os.path.join(cluster.base, "dbfail-ran")
    script = write_script(cluster, "dbfail.sh",
                          f"#!/bin/sh\necho ran-for-$EFM_CLUSTER > {marker}\necho done-output\n")
    pg = cluster.master(M)
    cluster.agent(M, notification_smtp_url=smtp.url, script_db_failure=script).start()
    pg.stop()
    wait_for(lambda: os.path.exists(marker), 30, "db failure script")
    assert open(marker).read().strip() == f"ran-for-{cluster.name}"
    mail = wait_for(lambda: smtp.find("Database-failure script ran"), 30, "script mail")[0]
    assert "done-output" in mail["body"]


def test_failing_db_failure_script_is_severe(cluster, smtp):
    script = write_script(cluster, "dbfail.sh", "#!/bin/sh\necho broken >&2\nexit 3\n")
    pg = cluster.master(M)
    cluster.agent(M, notification_smtp_url=smtp.url, script_db_failure=script).start()
    pg.stop()
    mail = wait_for(lambda: smtp.find("Database-failure script failed"), 30, "failure mail")[0]
    assert "3" in mail["body"] and "broken" in mail["body"]


def test_unsafe_script_refused_at_start(cluster):
    script = write_script(cluster, "dbfail.sh", "#!/bin/sh\nexit 0\n")
    os.chmod(script, 0o775)  # group-writable
    cluster.master(M)
    a = cluster.agent(M, script_db_failure=script)
    a.start(wait=False)
    assert a.wait_exit(30) != 0
    assert "script.db.failure" in a.read_log() and "writable" in a.read_log()


def test_removed_lock_file_notified(cluster):
    cluster.master(M)
    a = cluster.agent(M).start()
    os.unlink(os.path.join(a.run_dir, f"{cluster.name}.lock"))
    wait_for(lambda: any("Lock file" in m for m in a.status()[0]["messages"]), 15,
             "lock removal notification")
    assert "lock.removed" in a.read_log() or "Lock file" in a.read_log()


def test_silent_smtp_server_does_not_stall_the_agent(cluster):
    # A server that accepts connections and never says a word: the worst case
    # for a mail transport, which must not hold up monitoring or the admin socket.
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        pg = cluster.master(M)
        a = cluster.agent(M, notification_smtp_url=f"smtp://127.0.0.1:{port}").start()
        pg.stop()
        t0 = time.monotonic()
        wait_for(lambda: a.node_status().get("failed"), 20, "database failure")
        assert time.monotonic() - t0 < 1 + 4 + 2 + 3
        for _ in range(10):
            t1 = time.monotonic()
            assert a.node_status()["type"] == "Idle"
            assert time.monotonic() - t1 < 2, "the admin socket stalled behind the mail"
        t2 = time.monotonic()
        assert a.stop() == 0
        assert time.monotonic() - t2 < 15, "stopping waited on the silent mail server"
    finally:
        silent.close()

"""Test harness: real PostgreSQL servers and real efm agents on 127.0.0.x.

Every host is a loopback address (127.0.0.N); each runs its own PostgreSQL
(listening only on that address, the same port everywhere, as db.port must be
equal on all nodes) and its own agent with private config/state/run dirs.
Everything started here is registered with the Cluster object and torn down
by it, whatever the test's outcome.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("EFM_BUILD_DIR", os.path.join(ROOT, "build"))
EFMD = os.path.join(BUILD, "efmd")
EFM = os.path.join(BUILD, "efm")
PGBIN = os.environ.get("EFM_PGBIN", "/usr/lib/postgresql/15/bin")
SUPERPASS = "superpass"
EFMPASS = "efm-pass word"   # a space, to prove nothing is passed through a shell


FAILOVER_GRANTS = (
    "GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer), pg_wal_replay_resume() TO efm",
    "GRANT pg_read_all_settings, pg_read_all_stats TO efm",
    "GRANT ALTER SYSTEM ON PARAMETER primary_conninfo TO efm",
    "GRANT EXECUTE ON FUNCTION pg_reload_conf() TO efm",
    "GRANT pg_checkpoint TO efm",
)


def wait_for(cond, timeout, what, interval=0.1):
    """Poll cond() until it returns a true value; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # the condition may race with start-up
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def free_port(hosts):
    """A TCP port free on every host address given."""
    for _ in range(200):
        port = random.randint(20000, 40000)
        ok = True
        for h in hosts:
            s = socket.socket()
            try:
                s.bind((h, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise RuntimeError("no free port")


def run(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def as_postgres(cmd, **kw):
    return run(["runuser", "-u", "postgres", "--"] + cmd, **kw)


class PgServer:
    def __init__(self, cluster, host, port, name):
        self.cluster, self.host, self.port, self.name = cluster, host, port, name
        self.datadir = os.path.join(cluster.base, f"pg-{name}")
        self.logfile = os.path.join(self.datadir, "server.log")
        self.running = False
        self.stopped_signal = False

    def _make_datadir(self):
        # The socket lives outside the data directory, or pg_basebackup would
        # copy the master's socket lock file into the standby.
        self.sockdir = self.datadir + "-sock"
        for d in (self.datadir, self.sockdir):
            os.mkdir(d, 0o700)
            shutil.chown(d, "postgres", "postgres")

    def _conf(self, extra=""):
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write(
                f"\nlisten_addresses = '{self.host}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.sockdir}'\n"
                "wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\n"
                "fsync = off\nlog_min_messages = warning\n" + extra)

    def init_master(self, conf=""):
        pwfile = os.path.join(self.cluster.base, "pwfile")
        with open(pwfile, "w") as f:
            f.write(SUPERPASS + "\n")
        os.chmod(pwfile, 0o644)
        self._make_datadir()
        as_postgres([f"{PGBIN}/initdb", "-D", self.datadir, "-U", "postgres",
                     "--auth-local=trust", "--auth-host=scram-sha-256",
                     f"--pwfile={pwfile}", "-N"])
        self._conf(conf)
        with open(os.path.join(self.datadir, "pg_hba.conf"), "a") as f:
            f.write("host replication all 127.0.0.0/8 scram-sha-256\n")
        self.start()
        self.sql(f"CREATE ROLE efm LOGIN PASSWORD '{EFMPASS}'")
        # What the agents need to promote and re-point standbys without being superuser
        # (src/failover/fo_local.h lists the same grants for operators).
        for grant in FAILOVER_GRANTS:
            self.sql(grant)
        return self

    def init_standby(self, master):
        env = dict(os.environ, PGPASSWORD=SUPERPASS)
        self._make_datadir()
        as_postgres([f"{PGBIN}/pg_basebackup", "-h", master.host, "-p", str(master.port),
                     "-U", "postgres", "-D", self.datadir, "-R", "-X", "stream", "-c", "fast"],
                    env=env)
        self._conf()
        self.start()
        return self

    def start(self):
        as_postgres([f"{PGBIN}/pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60",
                     "start"])
        self.running = True

    def stop(self, mode="fast"):
        if self.stopped_signal:
            self.cont()
        as_postgres([f"{PGBIN}/pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "60",
                     "stop"], check=False)
        self.running = False

    def postmaster_pid(self):
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            return int(f.readline())

    def sigstop(self):
        os.kill(self.postmaster_pid(), signal.SIGSTOP)
        self.stopped_signal = True

    def cont(self):
        os.kill(self.postmaster_pid(), signal.SIGCONT)
        self.stopped_signal = False

    def connect(self, user="postgres", password=SUPERPASS):
        return psycopg2.connect(host=self.host, port=self.port, user=user, password=password,
                                dbname="postgres", connect_timeout=5)

    def sql(self, query):
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()


class Agent:
    def __init__(self, cluster, host, name, props):
        self.cluster, self.host, self.name = cluster, host, name
        self.dir = os.path.join(cluster.base, f"agent-{name}")
        self.config_dir = os.path.join(self.dir, "etc")
        self.state_dir = os.path.join(self.dir, "lib")
        self.run_dir = os.path.join(self.dir, "run")
        self.logfile = os.path.join(self.dir, "efmd.log")
        for d in (self.config_dir, self.state_dir, self.run_dir):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.chmod(self.run_dir, 0o755)
        self.props = props
        self.nodes = []
        self.proc = None
        self.write_config()

    @property
    def socket(self):
        return os.path.join(self.run_dir, f"{self.cluster.name}.sock")

    def write_config(self, text=None):
        path = os.path.join(self.config_dir, f"{self.cluster.name}.properties")
        if text is None:
            text = "".join(f"{k}={v}\n" for k, v in self.props.items())
        with open(path, "w") as f:
            f.write(text)
        with open(os.path.join(self.config_dir, f"{self.cluster.name}.nodes"), "w") as f:
            f.write(" ".join(self.nodes) + "\n")
        return path

    def env(self):
        return dict(os.environ, EFM_CONFIG_DIR=self.config_dir, EFM_STATE_DIR=self.state_dir,
                    EFM_RUN_DIR=self.run_dir)

    def start(self, wait=True):
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen([EFMD, self.cluster.name], env=self.env(),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            wait_for(lambda: self.node_status().get("healthy") or self.exited(), 30,
                     f"agent {self.name} to become healthy")
            assert not self.exited(), self.read_log()
        return self

    def exited(self):
        return self.proc is not None and self.proc.poll() is not None

    def wait_exit(self, timeout=30):
        return self.proc.wait(timeout=timeout)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"agent {self.name} did not stop on {sig}")
        return self.proc.returncode if self.proc else None

    def read_log(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def efm(self, *args, user=None, timeout=60, env=None):
        cmd = [EFM] + list(args)
        if user is not None:
            # The build tree may not be reachable by other users: run a copy.
            copy = os.path.join(self.cluster.base, "efm")
            if not os.path.exists(copy):
                shutil.copy(EFM, copy)
            cmd = ["runuser", "-u", user, "--", copy] + list(args)
        # stdin is never a terminal: commands that would ask must be told --yes
        return subprocess.run(cmd, env=env or self.env(), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def node_status(self):
        r = self.efm("node-status-json", self.cluster.name, timeout=10)
        if not r.stdout.strip():
            return {}
        return json.loads(r.stdout)

    def status(self):
        r = self.efm("cluster-status-json", self.cluster.name)
        return json.loads(r.stdout), r.returncode


class Cluster:
    """One efm cluster under test: its hosts, servers and agents."""

    def __init__(self, name="acctg"):
        self.name = name
        self.base = tempfile.mkdtemp(prefix="efmtest-", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.servers = []
        self.agents = []
        self.hosts = [f"127.0.0.{n}" for n in range(2, 10)]
        self.db_port = free_port(self.hosts)
        self.bind_port = free_port(self.hosts)

    def encrypt(self, password=EFMPASS, cluster=None):
        env = dict(os.environ, EFM_PASSWORD=password)
        r = run([EFM, "encrypt", cluster or self.name], env=env)
        for line in r.stdout.splitlines():
            if line.startswith("db.password.encrypted="):
                return line.split("=", 1)[1].strip()
        raise AssertionError(f"no encrypted password in: {r.stdout!r}")

    def master(self, host, conf=""):
        s = PgServer(self, host, self.db_port, f"m{host.rsplit('.', 1)[1]}")
        self.servers.append(s)
        return s.init_master(conf)

    def standby(self, master, host):
        s = PgServer(self, host, self.db_port, f"s{host.rsplit('.', 1)[1]}")
        self.servers.append(s)
        return s.init_standby(master)

    def data_dir(self, host):
        """The data directory of the server on host, or an empty stand-in when there is none
        (db.recovery.conf.dir must name a directory on every database node)."""
        for s in self.servers:
            if s.host == host:
                return s.datadir
        path = os.path.join(self.base, f"no-server-{host}")
        os.makedirs(path, exist_ok=True)
        return path

    def props(self, host, **overrides):
        p = {
            "db.user": "efm",
            "db.password.encrypted": self.encrypt(),
            "db.port": self.db_port,
            "db.database": "postgres",
            "bind.address": f"{host}:{self.bind_port}",
            "user.email": "dba@example.com",
            "local.period": 1,
            "local.timeout": 4,
            "local.timeout.final": 2,
            "remote.timeout": 3,
            "efm.loglevel": "FINE",
            "db.bin": PGBIN,
            "db.recovery.conf.dir": self.data_dir(host),
            "db.service.owner": "postgres",
        }
        for k, v in overrides.items():
            p[k.replace("_", ".")] = v
        return p

    def agent(self, host, name=None, props=None, **overrides):
        a = Agent(self, host, name or host.rsplit(".", 1)[1], props or self.props(host, **overrides))
        self.agents.append(a)
        return a

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

    def sanitizer_reports(self):
        """Lines of the agents' logs where ASan, LSan or UBSan reported a fault."""
        found = []
        for a in self.agents:
            if os.path.exists(a.logfile):
                for line in a.read_log().splitlines():
                    if any(m in line for m in self.SANITIZER_MARKS):
                        found.append(f"agent {a.name}: {line.strip()}")
        return found

    def teardown(self):
        """Stop everything; returns the sanitizer reports found in the agents' logs."""
        for a in self.agents:
            try:
                a.stop(signal.SIGKILL, timeout=10)
            except Exception:
                pass
        reports = self.sanitizer_reports()
        for s in self.servers:
            try:
                s.stop(mode="immediate")
            except Exception:
                pass
        if os.environ.get("EFM_KEEP_TEST_DIRS") is None:
            shutil.rmtree(self.base, ignore_errors=True)
        return reports

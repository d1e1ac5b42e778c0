"""Test harness: hosts in Linux network namespaces joined by a bridge.

Each host i is a network namespace `efm-<tag>-<i>` whose interface `eth0` is
one end of a veth pair; the other end (`efv<tag><i>`) is a port of the
bridge `efb<tag>` in the root namespace.  Hosts get addresses in a reserved
documentation subnet (TEST-NET-1 192.0.2.0/24, or TEST-NET-2/-3 when the
machine already uses that range), host i at .(10+i).  The bridge carries .1,
so the test process (the "controller", in the root namespace) can reach
every host.  Nothing is routed anywhere else: hosts have no default route,
the bridges do not forward, and there is no NAT.

Partitions move a host's bridge-side veth onto another bridge (a "segment"):
hosts on different segments cannot exchange a frame, while hosts on the same
segment can.  Every segment bridge has the same MAC address as the main one
and the controller keeps a /32 route to each host on its current segment, so
the controller still reaches every host during a partition (like a separate
management network).  `isolate(i, hard=True)` instead takes the host's link
down: then nothing, not even the controller, reaches it over TCP (its
PostgreSQL stays reachable through its Unix socket, see NsPgServer.sql).

Names carry the creating process's pid, and a lock file serialises test
runs, so the leftovers of a crashed run are recognised and removed by the
next one.  `make_net(n)` and the `net` / `ns_cluster` pytest fixtures tear
everything down whatever the test's outcome.
"""
import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import psycopg2
import pytest

from harness import EFM, EFMD, PGBIN, SUPERPASS, Agent, Cluster, PgServer, wait_for

LOCKFILE = "/run/lock/efm-netns.lock"
SUBNETS = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
NS_DEV = "eth0"             # the veth end inside every namespace
CLONE_NEWNET = 0x40000000
NS_RE = re.compile(r"^efm-[0-9a-f]{9}-\d+$")
LINK_RE = re.compile(r"^ef[bv][0-9a-f]{9}(s?\d+)?$")

_libc = ctypes.CDLL(None, use_errno=True)
_active = None              # the one Net alive in this process (they share a subnet)


def ip(*args, check=True, ns=None):
    """Run `ip ARGS` (in namespace ns when given); return stdout."""
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout


def ip_json(*args, ns=None):
    """Run `ip -j ARGS` and decode its output ([] when empty)."""
    out = ip("-j", *args, ns=ns, check=False)
    return json.loads(out) if out.strip() else []


def _write_sysctl(path, value):
    """Set one /proc/sys knob if it exists (some devices lack IPv6 config)."""
    try:
        with open(path, "w") as f:
            f.write(value)
    except FileNotFoundError:
        pass


def _quiet_link(name):
    """Keep a root-namespace device of ours off IPv6 and out of IP forwarding."""
    _write_sysctl(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "1")
    _write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/forwarding", "0")


def netns_list():
    """Names of all named network namespaces."""
    return [e["name"] for e in ip_json("netns", "list")]


def link_list():
    """Names of all links in the root namespace."""
    return [e["ifname"] for e in ip_json("link", "show")]


def kill_ns_processes(ns, timeout=10):
    """SIGKILL every process in namespace ns and wait until none is left."""
    def pids():
        out = ip("netns", "pids", ns, check=False)
        return [int(p) for p in out.split()]

    def gone():
        left = pids()
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        return not left

    wait_for(gone, timeout, f"processes in namespace {ns} to die")


def delete_ns(ns):
    """Kill what runs in namespace ns, then delete it (and so its veth ends)."""
    kill_ns_processes(ns)
    ip("netns", "del", ns, check=False)


def cleanup_leftovers():
    """Remove every efm-* namespace and efb/efv* link: callers hold the lock,
    so these can only be remains of earlier runs that did not tear down."""
    for ns in netns_list():
        if NS_RE.match(ns):
            delete_ns(ns)
    names = [n for n in link_list() if LINK_RE.match(n)]
    for n in sorted(names, key=lambda n: n.startswith("efb")):  # ports first
        ip("link", "del", n, check=False)


def pick_subnet():
    """The first reserved subnet the root namespace neither routes nor uses."""
    forced = os.environ.get("EFM_NETNS_SUBNET")
    if forced:
        return ipaddress.ip_network(forced)
    used = []
    for r in ip_json("-4", "route", "show", "table", "all"):
        dst = r.get("dst", "")
        if dst and dst != "default" and dst[0].isdigit():
            used.append(ipaddress.ip_network(dst, strict=False))
        if r.get("gateway"):
            used.append(ipaddress.ip_network(r["gateway"]))
    for link in ip_json("-4", "addr", "show"):
        for a in link.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    for cand in SUBNETS:
        net = ipaddress.ip_network(cand)
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"every test subnet {SUBNETS} is in use; set EFM_NETNS_SUBNET")


def _in_netns(path, fn):
    """Call fn() in a thread that has joined the network namespace at path."""
    out = {}

    def body():
        fd = os.open(path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            out["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            out["error"] = e
        finally:
            os.close(fd)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


class Net:
    """N hosts in namespaces on one bridge; see the module docstring."""

    def __init__(self, n, lock_timeout=600):
        assert 1 <= n <= 80, "host addresses are .10 to .89"
        self.n = n
        self.tag = f"{os.getpid():06x}{random.randrange(4096):03x}"
        self.bridge = f"efb{self.tag}"
        self.ns = [f"efm-{self.tag}-{i}" for i in range(n)]
        self.veth = [f"efv{self.tag}{i}" for i in range(n)]
        self.dev = NS_DEV
        self.mac = "02:ef:%02x:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(4))
        self.segment = [0] * n      # segment (bridge) of each host, 0 = main
        self.down = set()           # hosts whose link is down (hard isolation)
        self.bridges = {}           # segment number -> bridge name, as created
        self.extra_addrs = [set() for _ in range(n)]
        self.procs = []
        self.sockets = []
        self._lockf = None
        self.lock_timeout = lock_timeout

    # --- set-up and teardown ---------------------------------------------

    def _lock(self):
        """Take the machine-wide lock: runs share the subnet and the names' prefix."""
        global _active
        if _active is not None:
            raise RuntimeError("only one Net per process at a time")
        os.makedirs(os.path.dirname(LOCKFILE), exist_ok=True)
        self._lockf = open(LOCKFILE, "w")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lockf.close()
                    raise RuntimeError(f"{LOCKFILE} held by another test run")
                time.sleep(0.2)
        _active = self

    def setup(self):
        """Create the bridge and the hosts."""
        self._lock()
        cleanup_leftovers()
        self.subnet = pick_subnet()
        self.controller = str(self.subnet[1])
        self._bridge(0)
        ip("addr", "add", f"{self.controller}/{self.subnet.prefixlen}", "dev", self.bridge)
        for i in range(self.n):
            self._host(i)
        return self

    def _bridge(self, seg):
        """The bridge of segment seg, created on first use."""
        if seg in self.bridges:
            return self.bridges[seg]
        name = self.bridge if seg == 0 else f"{self.bridge}s{seg}"
        # Every segment shares the MAC so hosts' ARP entries for the controller
        # stay valid when they move; an explicit MAC also stops the bridge from
        # taking a port's, which would change as ports come and go.
        ip("link", "add", name, "address", self.mac, "type", "bridge", "stp_state", "0",
           "forward_delay", "0", "nf_call_iptables", "0", "nf_call_ip6tables", "0",
           "nf_call_arptables", "0")
        self.bridges[seg] = name
        _quiet_link(name)
        ip("link", "set", name, "up")
        return name

    def _host(self, i):
        """Create namespace i with its veth on the main bridge and its address."""
        ns, veth = self.ns[i], self.veth[i]
        ip("netns", "add", ns)
        ip("link", "add", veth, "type", "veth", "peer", "name", NS_DEV, "netns", ns)
        _quiet_link(veth)
        ip("link", "set", veth, "master", self.bridge, "up")
        ip("addr", "add", f"{self.addr(i)}/{self.subnet.prefixlen}", "dev", NS_DEV, ns=ns)
        ip("link", "set", NS_DEV, "up", ns=ns)
        ip("link", "set", "lo", "up", ns=ns)

    def teardown(self):
        """Remove everything this Net made, whatever state it is in."""
        global _active
        errors = []
        for s in self.sockets:
            s.close()
        for ns in self.ns:
            try:
                if ns in netns_list():
                    delete_ns(ns)
            except Exception as e:
                errors.append(e)
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.kill()
                p.wait(timeout=5)
        for veth in self.veth:
            if veth in link_list():
                ip("link", "del", veth, check=False)
        for name in self.bridges.values():
            ip("link", "del", name, check=False)
        if self._lockf is not None:
            self._lockf.close()     # releases the lock
            self._lockf = None
        if _active is self:
            _active = None
        if errors:
            raise errors[0]

    # --- addresses and commands ------------------------------------------

    def addr(self, i):
        """Host i's own address."""
        return str(self.subnet[10 + i])

    def vip(self, k=100):
        """A spare address of the test subnet, for virtual-IP tests."""
        return str(self.subnet[k])

    @property
    def cidr(self):
        return str(self.subnet)

    def exec_prefix(self, i):
        """argv prefix running a command inside namespace i."""
        return ["ip", "netns", "exec", self.ns[i]]

    def run(self, i, argv, check=True, timeout=60, **kw):
        """subprocess.run argv in namespace i (text output captured by default)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.exec_prefix(i) + list(argv), check=check, timeout=timeout,
                              **kw)

    def popen(self, i, argv, **kw):
        """subprocess.Popen argv in namespace i; killed at teardown."""
        p = subprocess.Popen(self.exec_prefix(i) + list(argv), **kw)
        self.procs.append(p)
        return p

    def socket(self, i, family=socket.AF_INET, type=socket.SOCK_STREAM):
        """A socket living in namespace i (i None: the root namespace)."""
        if i is None:
            return socket.socket(family, type)
        return _in_netns(f"/run/netns/{self.ns[i]}", lambda: socket.socket(family, type))

    def listen(self, i, port=0, addr=None):
        """A listening TCP socket in namespace i on addr (default its own);
        returns (socket, port).  Closed at teardown."""
        s = self.socket(i)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr or self.addr(i), port))
        s.listen(64)
        self.sockets.append(s)
        return s, s.getsockname()[1]

    def tcp_ok(self, src, dst, port, timeout=0.5):
        """Whether a TCP connection from host src (None: the controller) to
        dst (host index or address) is established within timeout."""
        addr = self.addr(dst) if isinstance(dst, int) else dst
        s = self.socket(src)
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    # --- partitions ---------------------------------------------------------

    def _move(self, i, seg):
        """Attach host i's bridge-side veth to segment seg's bridge."""
        ip("link", "set", self.veth[i], "master", self._bridge(seg))
        if seg == 0:
            ip("route", "del", f"{self.addr(i)}/32", check=False)
        else:
            ip("route", "replace", f"{self.addr(i)}/32", "dev", self.bridges[seg], "src",
               self.controller)
        self.segment[i] = seg

    def _set_link(self, i, up):
        """Bring host i's bridge-side veth up or down (hard isolation)."""
        ip("link", "set", self.veth[i], "up" if up else "down")
        (self.down.discard if up else self.down.add)(i)

    def _fresh_segment(self, taken):
        """The lowest segment number not in taken."""
        seg = 1
        while seg in taken:
            seg += 1
        return seg

    def isolate(self, i, hard=False):
        """Cut host i off from every other host.  hard: take its link down,
        so the controller cannot reach it over TCP either."""
        if hard:
            self._set_link(i, False)
            return
        others = {self.segment[j] for j in range(self.n) if j != i}
        if self.segment[i] == 0 or self.segment[i] in others:
            self._move(i, self._fresh_segment(others | {0}))

    def _forget_neighbours(self):
        """Drop every host's and the controller's ARP entries: an entry left
        INCOMPLETE or FAILED by a partition would delay traffic by up to a
        second of ARP retransmission; a fresh lookup answers at once."""
        for ns in self.ns:
            ip("neigh", "flush", "dev", NS_DEV, ns=ns, check=False)
        for name in self.bridges.values():
            ip("neigh", "flush", "dev", name, check=False)

    def _heal(self, i):
        """heal(i) without the neighbour flush, for heal_all to batch it."""
        if self.segment[i] != 0:
            self._move(i, 0)
        if i in self.down:
            self._set_link(i, True)

    def heal(self, i):
        """Put host i back on the main segment with its link up."""
        self._heal(i)
        self._forget_neighbours()

    def partition(self, groups):
        """Split hosts into groups that reach each other only within a group;
        the first group stays on the main segment, unlisted hosts are isolated."""
        seen = [i for g in groups for i in g]
        assert len(seen) == len(set(seen)), f"a host is in two groups: {groups}"
        assert all(0 <= i < self.n for i in seen), f"no such host in {groups}"
        plan = {}
        for k, g in enumerate(groups):
            for i in g:
                plan[i] = k
        seg = len(groups)
        for i in range(self.n):
            if i not in plan:
                plan[i] = seg
                seg += 1
        for i in range(self.n):
            if self.segment[i] != plan[i]:
                self._move(i, plan[i])
            if i in self.down:
                self._set_link(i, True)
        self._forget_neighbours()

    def heal_all(self):
        """Every host back on the main segment with its link up."""
        for i in range(self.n):
            self._heal(i)
        self._forget_neighbours()

    def connected(self, i, j):
        """Whether hosts i and j can reach each other in the current layout."""
        return (self.segment[i] == self.segment[j] and i not in self.down
                and j not in self.down)

    # --- extra addresses (virtual IPs) ------------------------------------

    def _spec(self, addr):
        return addr if "/" in addr else f"{addr}/{self.subnet.prefixlen}"

    def _flush_neigh(self, addr):
        """Forget addr's MAC everywhere: it may now answer from another host."""
        a = addr.split("/")[0]
        for ns in self.ns:
            ip("neigh", "flush", "to", a, ns=ns, check=False)
        ip("neigh", "flush", "to", a, check=False)

    def add_addr(self, i, addr):
        """Add an address (default prefix: the subnet's) to host i's eth0."""
        ip("addr", "add", self._spec(addr), "dev", NS_DEV, ns=self.ns[i])
        self.extra_addrs[i].add(addr.split("/")[0])
        self._flush_neigh(addr)

    def del_addr(self, i, addr):
        """Remove an address added with add_addr from host i."""
        ip("addr", "del", self._spec(addr), "dev", NS_DEV, ns=self.ns[i])
        self.extra_addrs[i].discard(addr.split("/")[0])
        self._flush_neigh(addr)

    def has_addr(self, i, addr):
        """Whether host i's eth0 carries addr."""
        want = addr.split("/")[0]
        for link in ip_json("-4", "addr", "show", "dev", NS_DEV, ns=self.ns[i]):
            if any(a.get("local") == want for a in link.get("addr_info", [])):
                return True
        return False


@contextlib.contextmanager
def make_net(n=3):
    """A set-up Net of n hosts, torn down on exit whatever happens."""
    net = Net(n)
    try:
        yield net.setup()
    finally:
        net.teardown()


class NsPgServer(PgServer):
    """A PostgreSQL server running in host i's namespace, on its address."""

    def __init__(self, cluster, index, name, conf=""):
        net = cluster.net
        super().__init__(cluster, net.addr(index), cluster.db_port, name)
        self.net, self.index = net, index
        self.extra_conf = conf if not conf or conf.endswith("\n") else conf + "\n"

    def _as_postgres(self, argv, **kw):
        """Run argv as postgres inside this server's namespace."""
        check = kw.pop("check", True)
        r = subprocess.run(
            self.net.exec_prefix(self.index) + ["runuser", "-u", "postgres", "--"] + argv,
            capture_output=True, text=True, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"{argv[0]} failed in {self.net.ns[self.index]}: {r.stderr}")
        return r

    def _conf(self, extra=""):
        super()._conf(extra + self.extra_conf)
        with open(os.path.join(self.datadir, "pg_hba.conf"), "a") as f:
            f.write(f"host all all {self.net.cidr} scram-sha-256\n"
                    f"host replication all {self.net.cidr} scram-sha-256\n")

    def init_standby(self, master):
        env = dict(os.environ, PGPASSWORD=SUPERPASS)
        self._make_datadir()
        # connect_timeout ends up in primary_conninfo: a walreceiver retrying
        # across a partition then gives up quickly instead of hanging in SYN.
        conninfo = (f"host={master.host} port={master.port} user=postgres "
                    "connect_timeout=2")
        self._as_postgres([f"{PGBIN}/pg_basebackup", "-d", conninfo, "-D", self.datadir, "-R",
                           "-X", "stream", "-c", "fast"], env=env)
        self._conf()
        self.start()
        return self

    def start(self):
        self._as_postgres([f"{PGBIN}/pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w",
                           "-t", "60", "start"])
        self.running = True

    def connect(self, user="postgres", password=SUPERPASS, local=False):
        """A connection over TCP from the controller, or (local) over the Unix
        socket, which works whatever the network does."""
        host = self.sockdir if local else self.host
        return psycopg2.connect(host=host, port=self.port, user=user, password=password,
                                dbname="postgres", connect_timeout=5)

    def sql(self, query, local=False):
        conn = self.connect(local=local)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()


class NsAgent(Agent):
    """An efmd agent (and its efm client commands) in host i's namespace."""

    def __init__(self, cluster, index, name, props):
        self.net, self.index = cluster.net, index
        super().__init__(cluster, cluster.net.addr(index), name, props)

    def start(self, wait=True):
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(self.net.exec_prefix(self.index) + [EFMD, self.cluster.name],
                                     env=self.env(), stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            wait_for(lambda: self.node_status().get("healthy") or self.exited(), 30,
                     f"agent {self.name} to become healthy")
            assert not self.exited(), self.read_log()
        return self

    def efm(self, *args, user=None, timeout=60, env=None):
        cmd = [EFM] + list(args)
        if user is not None:
            copy = os.path.join(self.cluster.base, "efm")
            if not os.path.exists(copy):
                shutil.copy(EFM, copy)
            cmd = ["runuser", "-u", user, "--", copy] + list(args)
        return subprocess.run(self.net.exec_prefix(self.index) + cmd, env=env or self.env(),
                              capture_output=True, text=True, timeout=timeout)


class NsCluster(Cluster):
    """An efm cluster whose hosts are the namespaces of a Net.  Each host has
    its own port space, so the ports are the efm defaults everywhere."""

    def __init__(self, net, name="acctg"):
        super().__init__(name)
        self.net = net
        self.hosts = [net.addr(i) for i in range(net.n)]
        self.db_port = 5432
        self.bind_port = 7800

    def master(self, i, conf=""):
        s = NsPgServer(self, i, f"m{i}", conf)
        self.servers.append(s)
        return s.init_master()

    def standby(self, master, i, conf=""):
        s = NsPgServer(self, i, f"s{i}", conf)
        self.servers.append(s)
        return s.init_standby(master)

    def props(self, i, **overrides):
        return super().props(self.net.addr(i), **overrides)

    def agent(self, i, name=None, props=None, **overrides):
        a = NsAgent(self, i, name or str(i), props or self.props(i, **overrides))
        self.agents.append(a)
        return a


@pytest.fixture
def net(request):
    """A Net of 3 hosts (parametrize indirectly for another count)."""
    with make_net(getattr(request, "param", 3)) as n:
        yield n


@pytest.fixture
def ns_cluster(net):
    """An NsCluster on the `net` fixture, torn down before the network."""
    c = NsCluster(net)
    try:
        yield c
    finally:
        reports = c.teardown()
    if reports:
        pytest.fail("sanitizer reports in agent logs:\n" + "\n".join(reports[:20]))

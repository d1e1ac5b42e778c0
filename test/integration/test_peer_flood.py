"""Hostile input on the peer port of real agents: strangers holding the
handshake slots open must not keep a restarted member out of the cluster."""
import selectors
import socket
import threading

from harness import wait_for
from test_cluster import FULL, M, S, W, all_see, started_three, view

# Stranger addresses: 40 of them, each under the per-address share of slots,
# together more than the 64 slots of an agent.
STRANGERS = [f"127.0.0.{n}" for n in range(200, 240)]
PER_TARGET = 80


class SlowFlood:
    """Keeps PER_TARGET unauthenticated connections open to each target, each
    having sent the first byte of a HELLO and nothing after; whatever the
    agent closes is opened again at once, for as long as the flood runs."""

    def __init__(self, targets, per_target=PER_TARGET, sources=STRANGERS):
        self.slots = [(t, sources[i % len(sources)]) for t in targets for i in range(per_target)]
        self.sel = selectors.DefaultSelector()
        self.stopping = threading.Event()
        self.opened = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, slot):
        (host, port), src = self.slots[slot]
        s = socket.socket()
        try:
            s.bind((src, 0))
            s.settimeout(0.5)
            s.connect((host, port))
            s.sendall(b"E")
        except OSError:
            s.close()
            return False
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, slot)
        self.opened += 1
        return True

    def _run(self):
        closed = list(range(len(self.slots)))
        while not self.stopping.is_set():
            closed = [slot for slot in closed if not self._open(slot)]
            for key, _ in self.sel.select(timeout=0.05):
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(key.fileobj)
                    key.fileobj.close()
                    closed.append(key.data)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join(10)


def test_restarted_member_rejoins_during_a_handshake_flood(cluster):
    ag = started_three(cluster)
    targets = [(h, cluster.bind_port) for h in (M, S, W)]
    flood = SlowFlood(targets).start()
    try:
        # The strangers hold every slot (refusals show the agents are full).
        wait_for(lambda: "too many handshakes in progress" in ag[M].read_log(), 15,
                 "the master agent to refuse strangers")
        # Links that were up before the flood stay up.
        all_see(ag.values(), FULL, timeout=10)
        # A member stopped and started again gets back in while the flood goes on.
        assert ag[S].stop() == 0
        wait_for(lambda: S not in view(ag[M]), 20, "the standby to leave")
        ag[S].start(wait=False)
        all_see(ag.values(), FULL, timeout=30)
        # The flood was still on, and reopening what the agents closed.
        assert flood.thread.is_alive() and flood.opened > 3 * PER_TARGET
    finally:
        flood.stop()

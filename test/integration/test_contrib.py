"""contrib/efm_address: the VIP helper, inside a test namespace."""
import os

from harness import ROOT
from netns import net  # noqa: F401  (fixture)

SCRIPT = os.path.join(ROOT, "contrib", "efm_address")


def test_efm_address_assign_release_idempotent(net):  # noqa: F811
    vip = net.vip()
    label = f"{net.dev}:1"
    r = net.run(0, [SCRIPT, "assign", label, vip, "255.255.255.0"])
    assert r.returncode == 0, r.stderr
    assert net.has_addr(0, vip)
    assert not net.has_addr(1, vip)
    shown = net.run(0, ["ip", "-o", "addr", "show", "dev", net.dev]).stdout
    assert f"{vip}/24" in shown and label in shown
    # again: nothing changes, still success
    assert net.run(0, [SCRIPT, "assign", label, vip, "24"]).returncode == 0
    assert net.has_addr(0, vip)
    assert net.run(0, [SCRIPT, "release", label, vip]).returncode == 0
    assert not net.has_addr(0, vip)
    assert net.run(0, [SCRIPT, "release", label, vip]).returncode == 0
    bad = net.run(0, [SCRIPT, "assign", label, vip, "255.0.255.0"], check=False)
    assert bad.returncode == 2 and not net.has_addr(0, vip)
    assert net.run(0, [SCRIPT, "frob"], check=False).returncode == 2

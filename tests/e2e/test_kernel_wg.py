"""The kernel module's WireGuard driven by the same agent as wireguard-go (BRIEF
section 2: "kernel module or wireguard-go").  Not part of `make test`: it needs a
kernel with the WireGuard module, which this project's CI machines lack, and a
test that cannot run there would only ever be reported as skipped.  Run it
where the module exists:

    make test-kernel-wg                     # meson test --suite e2e-kernel-wg
    python3 tests/e2e/run_e2e.py --build-dir build test_kernel_wg

A small mesh (tests/e2e/relaylab.py) of five peers, two of them (fc2, sy2) on
kernel WireGuard links and the others on wireguard-go, so that kernel x
wireguard-go pairs occur on direct and on relayed paths:

    fc1, fc2     each behind its own full-cone NAT
    pr           behind a port-restricted NAT
    sy1, sy2     each behind its own symmetric NAT

Without the module (or root, tools, binaries) the test is skipped, and
run_e2e.py then exits 77 so that meson, and CI's count, show a skip.
"""

import os
import shutil
import sys
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import natlab as N  # noqa: E402
import relaylab as R  # noqa: E402
from timing import timed  # noqa: E402

BUILD_DIR = os.environ.get("RELAY_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))

SPEC = [("fc1", N.FULL_CONE), ("fc2", N.FULL_CONE), ("pr", N.PORT_RESTRICTED),
        ("sy1", N.SYMMETRIC), ("sy2", N.SYMMETRIC)]
KERNEL_WG_PEERS = ("fc2", "sy2")


def _skip_reason():
    reason = N.unavailable_reason()
    if reason:
        return reason
    missing = R.Binaries(BUILD_DIR).missing()
    if missing:
        return "not built: " + ", ".join(missing)
    tools = [t for t in ("wireguard-go", "wg", "ping") if shutil.which(t) is None]
    if tools:
        return "missing tools: " + ", ".join(tools)
    if not N.kernel_wireguard_available():
        return "this kernel has no WireGuard module"
    return None


SKIP_REASON = _skip_reason()


@unittest.skipIf(SKIP_REASON, SKIP_REASON or "")
class KernelWireGuardTest(unittest.TestCase):
    lab: N.Lab
    mesh: R.Mesh

    @classmethod
    def setUpClass(cls):
        cls.lab = N.Lab()
        try:
            cls.mesh = R.Mesh(cls.lab, R.Binaries(BUILD_DIR), SPEC, kernel_wg=KERNEL_WG_PEERS)
            cls.a = cls.mesh.agents
            cls.mesh.start()
            cls.mesh.wait_connected(timeout=40)
            sys.stderr.write("\n" + cls.mesh.report() + "\n")
        except BaseException:
            sys.stderr.write(R.all_logs(cls.lab))
            cls.lab.teardown()
            raise

    @classmethod
    def tearDownClass(cls):
        keep = os.environ.get("RELAY_E2E_LOGS")
        if keep:
            R.copy_logs(cls.lab, keep)
        cls.lab.teardown()

    @timed
    def test_kernel_wireguard_peers_work_with_the_same_agent(self):
        """The KERNEL_WG_PEERS run the kernel module's WireGuard (no wireguard-go
        process, a link of kind wireguard); every pair, mixed ones included,
        reached its expected path (BRIEF section 6) and pings cross."""
        for name in KERNEL_WG_PEERS:
            agent = self.a[name]
            self.assertIsNone(agent.wg.proc, name)
            link = agent.host.run(["ip", "-d", "link", "show", agent.wg.name]).stdout
            self.assertIn("wireguard", link, f"{name}: {link}")
        mixed = [(a, b) for a, b in self.mesh.pairs()
                 if (a in KERNEL_WG_PEERS) != (b in KERNEL_WG_PEERS)]
        self.assertEqual({self.mesh.expected_path(a, b) for a, b in mixed}, {"direct", "relayed"},
                         "mixed pairs on both kinds of path")
        for a, b in self.mesh.pairs():
            self.assertEqual(self.mesh.paths.get(R.pair_name(a, b)),
                             (self.mesh.expected_path(a, b),) * 2, f"{a}-{b}\n{self.mesh.report()}")
            p = self.a[a].ping(self.a[b], count=3, interval=0.05, check=False)
            self.assertEqual(R.ping_received(p), 3, f"ping {a} -> {b}: {p.stdout} {p.stderr}")


if __name__ == "__main__":
    unittest.main()

"""End-to-end tests of the product in the NAT lab (BRIEF sections 2, 5, 6, 8).

One mesh, built once for the whole class (tests/e2e/relaylab.py):

    relay node   relay-dataplane (DPDK net_af_packet on dp0, --no-huge) and
                 relay-control (management address 203.0.113.2)
    fc1, fc2     each behind its own full-cone NAT
    ar1, ar2     each behind its own address-restricted NAT
    pr           behind a port-restricted NAT
    sy1, sy2     each behind its own symmetric NAT
    s1, s2       together behind one port-restricted NAT

Every peer runs relay-peer and wireguard-go (the kernel module's WireGuard
with the same agent is tests/e2e/test_kernel_wg.py, run on request only).
Every WireGuard interface has all the others as peers, so relay-peer connects all 36 pairs at once.  Every cell
of the BRIEF section 6 table occurs (pr x pr is pr-s1 and pr-s2).  The routers
of fc1 and ar1 drop each other's UDP from the start: a pair the table calls
direct whose punch cannot work (the fallback test).

Run as root from the repository root (tests/e2e/run_e2e.py does, for make test):

    RELAY_BUILD_DIR=build python3 -m unittest tests/e2e/test_product.py -v

Results (time to connect per pair, promotion, renumbering) are printed and written as
JSON to $RELAY_E2E_RESULTS (default <build>/test-results/e2e-results.json).
Set RELAY_E2E_LOGS=DIR to keep every process's log (the lab's are deleted at
teardown; on a failure their tails are printed).
"""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import natlab as N  # noqa: E402
from timing import save_results, timed  # noqa: E402
import relaylab as R  # noqa: E402

BUILD_DIR = os.environ.get("RELAY_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
RESULTS = os.environ.get("RELAY_E2E_RESULTS",
                         os.path.join(BUILD_DIR, "test-results", "e2e-results.json"))

SPEC = [("fc1", N.FULL_CONE), ("fc2", N.FULL_CONE),
        ("ar1", N.ADDRESS_RESTRICTED), ("ar2", N.ADDRESS_RESTRICTED),
        ("pr", N.PORT_RESTRICTED), ("sy1", N.SYMMETRIC), ("sy2", N.SYMMETRIC)]
SHARED = {"rsh": ["s1", "s2"]}
BLOCKED = [("fc1", "ar1")]

PINGS = 20  # per pair and check

SKIP_REASON = N.unavailable_reason()
if SKIP_REASON is None:
    missing = R.Binaries(BUILD_DIR).missing()
    if missing:
        SKIP_REASON = "not built: " + ", ".join(missing)
    else:
        tools = [t for t in ("wireguard-go", "wg", "tcpdump", "iperf3", "ping")
                 if shutil.which(t) is None]
        if tools:
            SKIP_REASON = "missing tools: " + ", ".join(tools)



def pcap_packets(path: str):
    """(link-layer frame bytes) of each packet of a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, off = [], 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        out.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return out


def udp_port_of(frame: bytes):
    """(src ip, src port, dst ip, dst port) of an untagged Ethernet/IPv4/UDP frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0f) * 4
    ip = frame[14:]
    udp = ip[ihl:]
    src = ".".join(str(b) for b in ip[12:16])
    dst = ".".join(str(b) for b in ip[16:20])
    return src, struct.unpack(">H", udp[0:2])[0], dst, struct.unpack(">H", udp[2:4])[0]


@unittest.skipIf(SKIP_REASON, SKIP_REASON or "")
class ProductMeshTest(unittest.TestCase):
    """The product end to end in one NAT lab (tests are ordered by name)."""

    lab: N.Lab
    mesh: R.Mesh

    @classmethod
    def setUpClass(cls):
        cls.lab = N.Lab()
        try:
            cls.mesh = R.Mesh(cls.lab, R.Binaries(BUILD_DIR), SPEC, shared=SHARED, blocked=BLOCKED)
            cls.node = cls.mesh.node
            cls.a = cls.mesh.agents
            cls.mesh.start()
            cls.connected = cls.mesh.wait_connected(timeout=40)
            sys.stderr.write("\n" + cls.mesh.report() + "\n")
            save_results(RESULTS, "time_to_connect_s", {
                p: {"path": "/".join(cls.mesh.paths[p]), "seconds": round(t, 2)}
                for p, t in cls.mesh.ttc.items()})
        except BaseException:
            sys.stderr.write(R.all_logs(cls.lab))
            cls.lab.teardown()
            raise
        cls.failed = False

    @classmethod
    def tearDownClass(cls):
        if cls.failed:
            sys.stderr.write("\n" + R.all_logs(cls.lab, tail=80) + "\n")
        keep = os.environ.get("RELAY_E2E_LOGS")   # a directory to keep every log in
        if keep:
            R.copy_logs(cls.lab, keep)
        cls.lab.teardown()

    def run(self, result=None):
        before = (len(result.failures), len(result.errors)) if result is not None else None
        result = super().run(result)
        if before is not None and (len(result.failures), len(result.errors)) != before:
            type(self).failed = True   # print the processes' logs at the end
        return result

    # -- helpers -------------------------------------------------------------
    def assert_path(self, a: str, b: str, path: str):
        pa = self.a[a].peer_status(self.a[b]) or {}
        pb = self.a[b].peer_status(self.a[a]) or {}
        self.assertEqual((pa.get("path"), pb.get("path")), (path, path),
                         f"{a}-{b}: {pa} / {pb}")
        return pa, pb

    def wait_path(self, a: str, b: str, path: str, timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            pa = self.a[a].peer_status(self.a[b]) or {}
            pb = self.a[b].peer_status(self.a[a]) or {}
            if pa.get("path") == pb.get("path") == path:
                return time.monotonic() - t0
            time.sleep(0.1)
        self.fail(f"{a}-{b} not {path} after {timeout}s: "
                  f"{self.a[a].peer_status(self.a[b])} / {self.a[b].peer_status(self.a[a])}")

    def ping_ok(self, a: str, b: str, count: int = PINGS, interval: float = 0.01, **kw):
        p = self.a[a].ping(self.a[b], count=count, interval=interval, check=False, **kw)
        got = R.ping_received(p)
        self.assertEqual(got, count, f"ping {a} -> {b}: {p.stdout} {p.stderr}")

    def dp_counters(self):
        m = self.node.dataplane_metrics()
        return (int(m.get("relay_dataplane_forwarded_packets_total", 0)),
                int(m.get('relay_dataplane_rx_packets_total{port="lab0"}', 0)))

    def session_rx(self, a: str, b: str):
        s = self.node.session_of(self.a[a].key, self.a[b].key)
        self.assertIsNotNone(s, f"no relay session for {a}-{b}")
        by_key = {side["wg_key"]: side for side in s["sides"]}
        return s, by_key[self.a[a].key], by_key[self.a[b].key]

    # -- tests -------------------------------------------------------------------
    @timed
    def test_1_every_pair_connects_by_its_expected_path(self):
        """BRIEF section 6 for all 36 pairs: both agents report the expected path,
        and a ping crosses the tunnel both ways."""
        bad = [f"{a}-{b}: expected {self.mesh.expected_path(a, b)}, got "
               f"{'/'.join(self.mesh.paths.get(R.pair_name(a, b), ('?', '?')))}"
               for a, b in self.mesh.pairs()
               if self.mesh.paths.get(R.pair_name(a, b)) != (self.mesh.expected_path(a, b),) * 2]
        self.assertEqual(bad, [], "\n" + self.mesh.report())
        for a, b in self.mesh.pairs():
            self.ping_ok(a, b, count=3, interval=0.05)
            self.ping_ok(b, a, count=3, interval=0.05)

    @timed
    def test_2_direct_pairs_send_nothing_through_the_data_plane(self):
        """A direct pair has no relay session, WireGuard points at the other peer's
        address, and while it sends PINGS pings each way the data plane neither
        receives nor forwards them: its rx and forwarded counters grow by less than
        half of what the pair's pings alone would add (2 x PINGS).  The rest of the
        growth is the relayed pairs' keepalives (one per side every 5 s)."""
        relay_ip = self.node.relay_ip
        worst = 0
        for a, b in self.mesh.pairs():
            if self.mesh.expected_path(a, b) != "direct":
                continue
            pa, pb = self.assert_path(a, b, "direct")
            self.assertFalse(pa["endpoint"].startswith(relay_ip + ":"), pa)
            self.assertFalse(pb["endpoint"].startswith(relay_ip + ":"), pb)
            self.assertIsNone(self.node.session_of(self.a[a].key, self.a[b].key),
                              f"{a}-{b} is direct but holds a relay session")
            f0, r0 = self.dp_counters()
            self.ping_ok(a, b)
            f1, r1 = self.dp_counters()
            worst = max(worst, f1 - f0, r1 - r0)
            self.assertLess(f1 - f0, PINGS, f"{a}-{b}: data plane forwarded {f1 - f0} packets")
            self.assertLess(r1 - r0, PINGS, f"{a}-{b}: data plane received {r1 - r0} packets")
        sys.stderr.write(f"(most data-plane packets during one direct burst of "
                         f"{2 * PINGS}: {worst}) ")

    @timed
    def test_3_relayed_pairs_send_everything_through_the_data_plane(self):
        """A relayed pair: both agents point WireGuard at the relay session's address,
        the data plane latched both sides at the peers' public addresses, and each
        side's counters in the session grow by at least the pings it sent."""
        relay_ip = self.node.relay_ip
        for a, b in self.mesh.pairs():
            if self.mesh.expected_path(a, b) != "relayed":
                continue
            pa, pb = self.assert_path(a, b, "relayed")
            s, sa, sb = self.session_rx(a, b)
            self.assertEqual(pa["endpoint"], s["relay"])
            self.assertEqual(pb["endpoint"], s["relay"])
            self.assertTrue(s["relay"].startswith(relay_ip + ":"), s)
            self.assertTrue(sa["latched"] and sb["latched"], s)
            self.assertEqual(sa["endpoint"].split(":")[0], self.a[a].host.public_ip, s)
            self.assertEqual(sb["endpoint"].split(":")[0], self.a[b].host.public_ip, s)
            wg_ep = self.a[a].wg.endpoints()[self.a[b].key]
            self.assertEqual(wg_ep, s["relay"], f"{a}'s WireGuard endpoint for {b}")
            self.ping_ok(a, b)
            _, sa2, sb2 = self.session_rx(a, b)
            self.assertGreaterEqual(sa2["rx_packets"] - sa["rx_packets"], PINGS, (sa, sa2))
            self.assertGreaterEqual(sb2["rx_packets"] - sb["rx_packets"], PINGS, (sb, sb2))
            self.assertGreaterEqual(sa2["tx_packets"] - sa["tx_packets"], PINGS, (sa, sa2))
            self.assertGreaterEqual(sb2["tx_packets"] - sb["tx_packets"], PINGS, (sb, sb2))

    @timed
    def test_4_a_blocked_punch_falls_back_to_the_relay(self):
        """fc1 and ar1 (full cone x address-restricted: direct by the table) behind
        routers that drop each other's UDP: control had them punch (both are cone),
        the punch failed (direct_failed reported) and they are relayed."""
        a, b = BLOCKED[0]
        peers = {p["wg_key"]: p for p in self.node.peers()}
        self.assertEqual(peers[self.a[a].key]["nat_class"], "cone")
        self.assertEqual(peers[self.a[b].key]["nat_class"], "cone")
        self.assertEqual(self.a[a].host.router.blocked(), [self.a[b].host.public_ip])
        self.assert_path(a, b, "relayed")
        self.session_rx(a, b)
        m = self.node.control_metrics()
        self.assertGreaterEqual(
            m.get('relay_control_punch_outcomes_total{outcome="direct_failed"}', 0), 1, m)
        self.ping_ok(a, b)
        self.ping_ok(b, a)

    @timed
    def test_5_the_relay_never_sees_plaintext(self):
        """sy1 pings sy2 through the relay with a 16-byte pattern while tcpdump
        captures the relay node's data-plane link (the veth's bridge end: both
        directions; DPDK's af_packet transmits bypass the taps of dp0 itself) and
        dp0 inside the relay namespace.  The link capture holds both legs of every
        ping, neither capture holds the pattern, and a capture on sy1's own
        WireGuard interface does (it is really sent)."""
        a, b = "sy1", "sy2"
        s, _, _ = self.session_rx(a, b)
        relay_port = int(s["relay"].split(":")[1])
        pattern = "c0ffee0ddba11fee5eed1e55deadbeef"
        needle = bytes.fromhex(pattern)
        dp = self.node.relay.dataplane
        captures = {  # name -> (namespace, interface, filter)
            "link": (dp.peer_ns, dp.peer_name, "udp"),
            "dp0": (dp.ns, dp.name, "udp"),
            "tunnel": (self.a[a].host, self.a[a].wg.name, "icmp"),
        }
        files, procs = {}, []
        for name, (ns, ifname, flt) in captures.items():
            files[name] = os.path.join(self.lab.tmpdir, f"capture-{name}.pcap")
            procs.append(ns.popen(["tcpdump", "-i", ifname, "-n", "-U", "-s", "0", "-w",
                                   files[name], flt],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 5
        while not all(os.path.exists(f) for f in files.values()):
            self.assertLess(time.monotonic(), deadline, "tcpdump did not start")
            time.sleep(0.05)
        time.sleep(0.5)
        self.ping_ok(a, b, size=1000, pattern=pattern)
        time.sleep(0.3)
        for p in procs:
            self.lab._stop_proc(p)
        data = {}
        for name, f in files.items():
            with open(f, "rb") as fh:
                data[name] = fh.read()
        relayed = [u for u in map(udp_port_of, pcap_packets(files["link"]))
                   if u and (u[1] == relay_port or u[3] == relay_port)]
        to_relay = [u for u in relayed if u[3] == relay_port]
        from_relay = [u for u in relayed if u[1] == relay_port]
        self.assertGreaterEqual(len(to_relay), 2 * PINGS, "datagrams to the relay")
        self.assertGreaterEqual(len(from_relay), 2 * PINGS, "datagrams the relay forwarded")
        self.assertIn(needle, data["tunnel"], "the pattern is in the tunnel's plaintext")
        self.assertNotIn(needle, data["link"], "plaintext seen on the relay's link")
        self.assertNotIn(needle, data["dp0"], "plaintext seen on the relay's dp0")
        sys.stderr.write(f"({len(to_relay)} datagrams in, {len(from_relay)} out, "
                         f"pattern absent) ")

    def iperf(self, a: str, b: str, seconds: int = 2) -> dict:
        """iperf3 TCP from A to B over the tunnel: iperf3's JSON report ("end")."""
        server = self.a[b].host.popen(["iperf3", "-s", "-1", "-B", self.a[b].tunnel_ip],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):
                r = self.a[a].host.run(["iperf3", "-c", self.a[b].tunnel_ip, "-t", str(seconds),
                                        "-J"], check=False, timeout=seconds + 20)
                try:
                    out = json.loads(r.stdout)
                except ValueError:
                    out = {"error": r.stdout[-500:] + r.stderr}
                if r.returncode == 0 and out.get("end", {}).get("sum_received", {}).get("bytes"):
                    return out["end"]
                if "refused" not in str(out.get("error", "")):
                    self.fail(f"iperf3 {a} -> {b} ({r.returncode}): {str(out)[-800:]}")
                time.sleep(0.1)   # the server is not listening yet
            self.fail("iperf3 server never listened")
        finally:
            self.lab._stop_proc(server)

    @timed
    def test_6_iperf3_crosses_the_direct_and_the_relayed_path(self):
        """A TCP transfer (iperf3, 2 s) completes through a direct pair (pr -> s2)
        and through a relayed pair (pr -> sy2), and every byte of the relayed one
        crossed the data plane: the session's counter of what pr sent grew by at
        least what the server received.  How fast each is, and their ratio, is a
        benchmark (perf/e2e_iperf.py), not a test."""
        direct_pair, relayed_pair = ("pr", "s2"), ("pr", "sy2")
        self.assert_path(*direct_pair, "direct")
        self.assert_path(*relayed_pair, "relayed")
        direct = self.iperf(*direct_pair)
        self.assertGreater(direct["sum_received"]["bytes"], 0, direct)
        self.assert_path(*direct_pair, "direct")
        _, before, _ = self.session_rx(*relayed_pair)
        relayed = self.iperf(*relayed_pair)
        _, after, _ = self.session_rx(*relayed_pair)
        received = relayed["sum_received"]["bytes"]
        self.assertGreater(received, 0, relayed)
        self.assertGreaterEqual(after["rx_bytes"] - before["rx_bytes"], received, (before, after))
        sys.stderr.write(f"(direct {direct['sum_received']['bytes']} B, relayed {received} B, "
                         f"{after['rx_bytes'] - before['rx_bytes']} B through the relay) ")

    @timed
    def test_7_promotion_when_a_symmetric_nat_becomes_port_preserving(self):
        """sy1's router turns from symmetric into port-restricted (port-preserving)
        while sy1 is relayed to pr, s1 and s2.  relay-peer notices its new address
        and registers again, control classifies it port_restricted and has the pairs
        punch: they go direct and their relay sessions are released.  sy1-sy2
        (port-restricted x symmetric) stays relayed and works."""
        promoted = [("sy1", "pr"), ("sy1", "s1"), ("sy1", "s2")]
        sessions = {}
        for a, b in promoted:
            self.assert_path(a, b, "relayed")
            sessions[(a, b)] = self.session_rx(a, b)[0]["id"]
        released0 = self.node.control_metrics().get(
            'relay_control_relay_releases_total{reason="direct"}', 0)
        t0 = time.monotonic()
        self.a["sy1"].host.router.set_class(N.PORT_RESTRICTED)
        figures = {}
        for a, b in promoted:
            self.wait_path(a, b, "direct", timeout=40)
            figures[f"{a}-{b}"] = round(time.monotonic() - t0, 2)
        # The pairs may go direct on control's first trial (sy1's keepalives showed the
        # new mapping), before sy1's agent has registered again and relearnt its class.
        deadline = time.monotonic() + 10
        while self.a["sy1"].status()["nat_class"] != "port_restricted":
            self.assertLess(time.monotonic(), deadline, self.a["sy1"].status())
            time.sleep(0.1)
        live = {s["id"] for s in self.node.sessions()}
        for pair, sid in sessions.items():
            self.assertNotIn(sid, live, f"session of {pair} not released")
        released = self.node.control_metrics().get(
            'relay_control_relay_releases_total{reason="direct"}', 0)
        self.assertGreaterEqual(released - released0, len(promoted))
        for a, b in promoted:
            pa, _ = self.assert_path(a, b, "direct")
            self.assertFalse(pa["endpoint"].startswith(self.node.relay_ip + ":"), pa)
            self.ping_ok(a, b)
        # The pair that must stay relayed re-latched sy1's new address.
        self.assert_path("sy1", "sy2", "relayed")
        p = self.a["sy1"].ping(self.a["sy2"], count=3, interval=0.2, deadline=25, check=False)
        self.assertGreater(R.ping_received(p), 0, p.stdout)
        sys.stderr.write(f"(direct after {figures} s) ")
        save_results(RESULTS, "promotion_s", figures)

    @timed
    def test_9_a_renumbered_host_registers_again_at_once(self):
        """pr's host gets a new LAN address (a DHCP renewal, or a move to another
        network).  Its NAT may well keep the same public address, so no keepalive
        need show it; relay-peer hears of it from rtnetlink, registers again with its
        new local address, and makes WireGuard send from the new address at once
        (wireguard-go alone would keep the vanished source for ~15 s).  Its direct
        pair (pr-fc1) and relayed pair (pr-sy2) keep working: pings sent every
        0.2 s across the change get through again, and the longest silence of each
        is recorded."""
        pr = self.a["pr"]
        host = pr.host
        old = host.address
        new = str(host.router.lan_net.network_address + 77)

        def control_locals():
            for p in self.node.peers():
                if p["wg_key"] == pr.key:
                    return [a.split(":")[0] for a in p["local_addresses"]]
            return []

        self.assertIn(old, control_locals())
        pings = {other: host.popen(["ping", "-D", "-n", "-i", "0.2", "-c", "100", "-W", "1",
                                    self.a[other].tunnel_ip], stdout=subprocess.PIPE, text=True)
                 for other in ("fc1", "sy2")}
        try:
            time.sleep(2)
            t0, wall0 = time.monotonic(), time.time()
            host.ip("addr", "del", f"{old}/24", "dev", "eth0")
            host.ip("addr", "add", f"{new}/24", "dev", "eth0")
            host.ip("route", "replace", "default", "via", host.router.lan_ip, "dev", "eth0")
            host.address = new
            while new not in control_locals():
                self.assertLess(time.monotonic() - t0, 10, f"control still has {control_locals()}")
                time.sleep(0.05)
            seconds = round(time.monotonic() - t0, 2)
            self.assertNotIn(old, control_locals())
            for other, path in (("fc1", "direct"), ("sy2", "relayed")):
                self.wait_path("pr", other, path, timeout=30)
            time.sleep(3)
        finally:
            for p in pings.values():
                p.send_signal(signal.SIGINT)
        silence = {}
        for other, p in pings.items():
            out = p.communicate(timeout=10)[0]
            stamps = [float(l.split("]")[0][1:]) for l in out.splitlines() if "bytes from" in l]
            after = [t for t in stamps if t > wall0]
            self.assertTrue(after, f"pr -> {other}: no reply after the change\n{out}")
            before = [t for t in stamps if t <= wall0]
            last = before[-1] if before else wall0
            silence[other] = round(max(b - a for a, b in zip([last] + after, after)), 2)
        sys.stderr.write(f"(registered again after {seconds} s; longest silence {silence} s) ")
        save_results(RESULTS, "renumbered", {"registered_again_s": seconds, "longest_silence_s": silence})

    @timed
    def test_9b_peers_added_to_running_agents_are_picked_up(self):
        """A new peer ("late", behind its own full-cone NAT) starts its agent with no
        WireGuard peers; then fc1 and late are configured on each other's interfaces
        (`wg set`, as an operator would) while both agents run.  Both agents pick the
        new peer up and connect it directly; once fc1's interface drops it again,
        fc1's agent forgets it."""
        router = self.lab.add_nat("rlate", N.FULL_CONE)
        late = R.PeerAgent(self.lab, self.node, self.lab.add_peer("late", router), "100.64.0.50")
        late.start()
        fc1 = self.a["fc1"]

        def ready():
            try:
                st = late.status()
            except OSError:
                return False   # its status socket is not up yet
            return st.get("registered") and st.get("nat_class") != "unknown"

        deadline = time.monotonic() + 15
        while not ready():
            self.assertLess(time.monotonic(), deadline, "late never registered")
            time.sleep(0.1)
        self.assertEqual(late.status()["peers"], [])
        t0 = time.monotonic()
        fc1.add_wg_peer(late)
        late.add_wg_peer(fc1)
        self.a["late"] = late
        try:
            seconds = self.wait_path("fc1", "late", "direct", timeout=40)
            self.ping_ok("late", "fc1")
            self.ping_ok("fc1", "late")
            fc1.wg.remove_peer(late.key)
            deadline = time.monotonic() + 5
            while fc1.peer_status(late) is not None:
                self.assertLess(time.monotonic(), deadline, "fc1's agent still lists late")
                time.sleep(0.1)
        finally:
            del self.a["late"]
            late.stop()
        sys.stderr.write(f"(late peer direct after {round(seconds, 2)} s) ")
        save_results(RESULTS, "added_later_direct_s", round(seconds, 2))


if __name__ == "__main__":
    unittest.main()


# A child process that builds a small product lab (the relay node and two peers,
# every process running), prints its pid and the pids of the lab's processes as
# one JSON line, then either fails with an exception or waits to be interrupted.
CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {here!r})
import natlab as N, relaylab as R
lab = N.Lab()
mesh = R.Mesh(lab, R.Binaries({build!r}), [("fc", N.FULL_CONE), ("sy", N.SYMMETRIC)])
mesh.start()
mesh.wait_connected(timeout=20)
print(json.dumps({{"pid": os.getpid(), "tag": lab.tag,
                  "pids": [p.pid for p in lab.processes if p.poll() is None]}}), flush=True)
if {mode!r} == "fail":
    raise RuntimeError("a test failed")   # no teardown by the test: atexit does it
time.sleep(600)
"""


@unittest.skipIf(SKIP_REASON, SKIP_REASON or "")
class ProductTeardownTest(unittest.TestCase):
    """Teardown of a lab running the whole product leaves no namespace, interface,
    process, WireGuard socket or DPDK directory behind, also when the test fails
    (an uncaught exception) or is interrupted (SIGINT, and a second signal while
    the teardown runs, as Ctrl-C plus a supervisor's SIGTERM would give)."""

    def run_child(self, mode: str, signals=()):
        code = CHILD.format(here=HERE, build=os.path.abspath(BUILD_DIR), mode=mode)
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            line = child.stdout.readline()
            if not line:
                child.wait(60)
                self.fail("child failed: " + child.stderr.read()[-3000:])
            info = json.loads(line)
            self.assertGreaterEqual(len(info["pids"]), 6, info)  # dataplane, control, 2 x (wg, peer)
            for i, sig in enumerate(signals):
                if i:
                    time.sleep(0.05)   # the next signal lands while the teardown runs
                os.kill(child.pid, sig)
            child.wait(60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
            child.stderr.close()
        return info, child.returncode

    def assert_nothing_left(self, info):
        tag = info["tag"]
        self.assertEqual([n for n in N.list_netns() if n.startswith(tag + "-")], [])
        self.assertEqual([f for f in os.listdir(N.WG_SOCKET_DIR) if f.startswith(tag)]
                         if os.path.isdir(N.WG_SOCKET_DIR) else [], [])
        self.assertEqual([f for f in os.listdir(N.DPDK_RUNTIME_DIR) if f.startswith(tag)]
                         if os.path.isdir(N.DPDK_RUNTIME_DIR) else [], [])
        links = N._run(["ip", "-o", "link", "show"]).stdout
        self.assertNotIn(tag, links)
        alive = [p for p in info["pids"] if os.path.exists(f"/proc/{p}")]
        self.assertEqual(alive, [], "lab processes still running")

    @timed
    def test_teardown_after_a_failure(self):
        info, rc = self.run_child("fail")
        self.assertNotEqual(rc, 0)
        self.assert_nothing_left(info)

    @timed
    def test_teardown_when_interrupted_twice(self):
        info, rc = self.run_child("wait", signals=(signal.SIGINT, signal.SIGTERM))
        self.assertNotEqual(rc, 0)
        self.assert_nothing_left(info)

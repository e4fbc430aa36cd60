"""Self-test of the NAT lab (tests/e2e/natlab.py).

Run as root from the repository root:

    python3 -m unittest tests/e2e/test_natlab.py -v

It proves that each NAT class maps and filters as specified, that plain UDP
hole punching succeeds exactly where BRIEF section 6 says "direct", that
peers behind one NAT reach each other on their LAN, that wireguard-go peers
connect through the lab, and that teardown leaves nothing behind (also after
an exception, SIGTERM, or a crash followed by cleanup_stale()).
"""

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import natlab as N  # noqa: E402
from timing import timed  # noqa: E402

FC, AR, PR, SYM = N.FULL_CONE, N.ADDRESS_RESTRICTED, N.PORT_RESTRICTED, N.SYMMETRIC
SHORT = {FC: "fc", AR: "ar", PR: "pr", SYM: "sym"}

# BRIEF section 6: which pairs connect directly (the table is symmetric).
RELAYED = {frozenset({PR, SYM}), frozenset({SYM})}


def expected_direct(c1: str, c2: str) -> bool:
    return frozenset({c1, c2}) not in RELAYED


# Public addresses of the probe servers.
S1, S2, S3 = "203.0.113.201", "203.0.113.202", "203.0.113.203"

SKIP_REASON = N.unavailable_reason()


class _Ports:
    """Fresh local ports, so that no test sees another one's conntrack state."""
    def __init__(self, start=41000):
        self.n = start
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            self.n += 1
            return self.n


def drain(sock, timeout=0.3):
    """Every datagram that arrives within TIMEOUT of the previous one."""
    got = []
    while True:
        r = N.recv_any(sock, timeout)
        if r is None:
            return got
        got.append(r)


def lab_leftovers(lab_tag: str, wg_names, procs):
    """What a torn-down lab left: its namespaces, sockets, live processes."""
    ns = [n for n in N.list_netns() if n.startswith(lab_tag + "-")]
    socks = [s for s in wg_names if os.path.exists(os.path.join(N.WG_SOCKET_DIR, s + ".sock"))]
    live = [p.pid for p in procs if p.poll() is None]
    # Any process whose command line names one of the lab's WireGuard interfaces.
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if any(w.encode() in cmd for w in wg_names):
            live.append(int(pid))
    return ns, socks, live


@unittest.skipIf(SKIP_REASON, SKIP_REASON)
class NatLabTest(unittest.TestCase):
    """One lab for the NAT behaviour tests (built once: ~2 s)."""

    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        cls.lab = N.Lab()
        lab = cls.lab
        try:
            cls.pub = lab.add_public_host("pub", [S1, S2, S3])
            cls.relay = lab.add_relay()
            # Two routers of each class (side a and side b), one inside host each.
            cls.side = {"a": {}, "b": {}}
            for c in N.NAT_CLASSES:
                for s in ("a", "b"):
                    r = lab.add_nat(f"{s}-{SHORT[c]}-nat", c)
                    cls.side[s][c] = lab.add_peer(f"{s}-{SHORT[c]}", r)
            cls.shared = lab.add_shared_nat("shared-nat", ["s1", "s2"], PR)
            cls.reflectors = [N.Reflector(cls.pub, S1, 3478), N.Reflector(cls.pub, S1, 3479),
                              N.Reflector(cls.pub, S2, 3478)]
            # Unsolicited senders: same IP as the first server, other port; another IP.
            cls.same_ip_other_port = cls.pub.socket(bind=(S1, 3480))
            cls.other_ip = cls.pub.socket(bind=(S3, 3478))
        except BaseException:
            lab.teardown()
            raise
        cls.ports = _Ports()
        sys.stderr.write(f"\n[lab of {len(lab.namespaces)} namespaces built in "
                         f"{time.monotonic() - t0:.2f}s] ")

    @classmethod
    def tearDownClass(cls):
        for r in getattr(cls, "reflectors", []):
            r.close()
        for name in ("same_ip_other_port", "other_ip"):
            if hasattr(cls, name):
                getattr(cls, name).close()
        tag = cls.lab.tag
        cls.lab.teardown()
        assert not [n for n in N.list_netns() if n.startswith(tag + "-")]

    def host_socket(self, host):
        s = host.socket(bind=("0.0.0.0", self.ports.next()))
        self.addCleanup(s.close)
        return s

    # ------------------------------------------------------------------
    @timed
    def test_1_nat_classes_map_and_filter_as_specified(self):
        """Mapping (EIM or not), port preservation and filtering of each class."""
        spec = {
            #      EIM    port kept  same IP other port  other IP
            FC:  (True,  True,      True,               True),
            AR:  (True,  True,      True,               False),
            PR:  (True,  True,      False,              False),
            SYM: (False, False,     False,              False),
        }
        for c, (eim, kept, from_same_ip, from_other_ip) in spec.items():
            with self.subTest(nat_class=c):
                h = self.side["a"][c]
                h.router.reset_state()
                # Mapping: one socket to three servers (two ports of S1, and S2).
                s = self.host_socket(h)
                local_port = s.getsockname()[1]
                seen = [N.reflexive_address(s, r.addr) for r in self.reflectors]
                self.assertTrue(all(ip == h.router.public_ip for ip, _ in seen), seen)
                ports = {p for _, p in seen}
                if eim:
                    self.assertEqual(len(ports), 1, f"{c}: mapping must be endpoint-independent: {seen}")
                else:
                    self.assertEqual(len(ports), 3, f"{c}: a new mapping per destination: {seen}")
                if kept:
                    self.assertEqual(ports, {local_port}, f"{c}: port must be preserved")
                else:
                    self.assertNotIn(local_port, ports, f"{c}: port must not be preserved")

                # Filtering: a fresh socket talks to S1:3478 only; then packets
                # arrive from (a) S1:3480, (b) S3:3478, (c) S1:3478 itself.
                s = self.host_socket(h)
                mapped = N.reflexive_address(s, self.reflectors[0].addr)
                self.same_ip_other_port.sendto(b"same-ip-other-port", mapped)
                self.other_ip.sendto(b"other-ip", mapped)
                self.reflectors[0].sock.sendto(b"contacted", mapped)
                got = {data for data, _ in drain(s)}
                self.assertIn(b"contacted", got, f"{c}: the contacted server must get through")
                self.assertEqual(b"same-ip-other-port" in got, from_same_ip,
                                 f"{c}: packet from the same IP, other port: got {got}")
                self.assertEqual(b"other-ip" in got, from_other_ip,
                                 f"{c}: packet from another IP: got {got}")

                # A port with no mapping never reaches the host, whatever the class.
                never_used = self.ports.next()
                listener = self.host_socket(h)  # bound, but it never sent anything
                listener_port = listener.getsockname()[1]
                for port in (never_used, listener_port):
                    self.other_ip.sendto(b"unmapped", (h.router.public_ip, port))
                self.assertEqual(drain(listener, 0.2), [], f"{c}: unmapped port reached the host")

    # ------------------------------------------------------------------
    @timed
    def test_2_udp_hole_punching_matches_the_brief_table(self):
        """Plain UDP punching (WireGuard-style roaming) between every pair of classes."""
        results = {}
        pairs = [(c1, c2) for i, c1 in enumerate(N.NAT_CLASSES) for c2 in N.NAT_CLASSES[i:]]
        for c1, c2 in pairs:
            a, b = self.side["a"][c1], self.side["b"][c2]
            a.router.reset_state()
            b.router.reset_state()
            sa, sb = self.host_socket(a), self.host_socket(b)
            # Rendezvous: each learns its reflexive address from the probe server.
            ma = N.reflexive_address(sa, self.reflectors[0].addr)
            mb = N.reflexive_address(sb, self.reflectors[0].addr)
            r = N.udp_punch(sa, mb, sb, ma, timeout=2.0)
            results[(c1, c2)] = r
        lines = ["", f"{'A':>20} {'B':>20}  expected  got      time"]
        bad = []
        for (c1, c2), r in results.items():
            exp = expected_direct(c1, c2)
            got = "direct" if r.direct else f"relayed (A got: {r.a_got}, B got: {r.b_got})"
            lines.append(f"{c1:>20} {c2:>20}  {'direct' if exp else 'relayed':8}  {got}  {r.seconds:.2f}s")
            if r.direct != exp:
                bad.append((c1, c2))
        sys.stderr.write("\n".join(lines) + "\n")
        self.assertEqual(bad, [], "pairs that disagree with the brief's table")

    # ------------------------------------------------------------------
    @timed
    def test_3_hosts_behind_one_nat_reach_each_other_on_the_lan(self):
        s1, s2 = self.shared.hosts
        a, b = self.host_socket(s1), self.host_socket(s2)
        a.sendto(b"hello s2", (s2.address, b.getsockname()[1]))
        data, src = N.recv_any(b, 1.0) or (None, None)
        self.assertEqual(data, b"hello s2")
        self.assertEqual(src, (s1.address, a.getsockname()[1]))  # no NAT on the LAN
        b.sendto(b"hello s1", src)
        data, src = N.recv_any(a, 1.0) or (None, None)
        self.assertEqual((data, src), (b"hello s1", (s2.address, b.getsockname()[1])))
        s1.run(["ping", "-c", "1", "-W", "1", s2.address])
        # Both share the router's public address; the same local port to the
        # same server cannot map twice, so the second host gets another port.
        port = self.ports.next()
        x = s1.socket(bind=("0.0.0.0", port))
        y = s2.socket(bind=("0.0.0.0", port))
        self.addCleanup(x.close)
        self.addCleanup(y.close)
        mx = N.reflexive_address(x, self.reflectors[0].addr)
        my = N.reflexive_address(y, self.reflectors[0].addr)
        self.assertEqual(mx, (self.shared.public_ip, port))
        self.assertEqual(my[0], self.shared.public_ip)
        self.assertNotEqual(my[1], port)
        # ...and keeps that other port to every destination (endpoint-independent
        # even when the port could not be preserved).
        self.assertEqual(N.reflexive_address(y, self.reflectors[2].addr), my)

    # ------------------------------------------------------------------
    @timed
    def test_4_block_punch_forces_failure_and_unblock_restores(self):
        a, b = self.side["a"][PR], self.side["b"][PR]

        def punch():
            a.router.reset_state()
            b.router.reset_state()
            sa, sb = self.host_socket(a), self.host_socket(b)
            ma = N.reflexive_address(sa, self.reflectors[0].addr)
            mb = N.reflexive_address(sb, self.reflectors[0].addr)
            return N.udp_punch(sa, mb, sb, ma, timeout=1.5)

        self.lab.block_punch(a.router, b.router)
        try:
            self.assertEqual(a.router.blocked(), [b.router.public_ip])
            r = punch()
            self.assertFalse(r.a_got or r.b_got, r)
            # The relay and the servers are still reachable.
            a.run(["ping", "-c", "1", "-W", "1", self.relay.mgmt_ip])
        finally:
            self.lab.unblock_punch(a.router, b.router)
        self.assertEqual(a.router.blocked(), [])
        self.assertTrue(punch().direct)

    # ------------------------------------------------------------------
    @timed
    def test_5_class_change_at_run_time(self):
        """symmetric -> port_restricted: existing flows keep their old binding
        until conntrack is flushed; set_class(flush=True) does that."""
        h = self.lab.add_peer("promo", self.lab.add_nat("promo-nat", SYM))
        r = h.router
        s = self.host_socket(h)
        port = s.getsockname()[1]
        before = [N.reflexive_address(s, x.addr) for x in self.reflectors[:2]]
        self.assertNotEqual(before[0][1], before[1][1])
        r.set_class(PR, flush=False)
        kept = [N.reflexive_address(s, x.addr) for x in self.reflectors[:2]]
        self.assertEqual(kept, before, "without a flush, live flows keep their random ports")
        # A new flow from the same inside ip:port does not get its own port
        # back either: plain masquerade (not fully-random) first looks for an
        # existing binding of that source (nf_nat's "bysource" table) and
        # reuses it -- which is what makes Linux NAT endpoint-independent.
        new = N.reflexive_address(s, self.reflectors[2].addr)
        self.assertIn(new[1], {p for _, p in before}, "a new flow reuses a live binding")
        fresh = self.host_socket(h)
        self.assertEqual(N.reflexive_address(fresh, self.reflectors[2].addr)[1],
                         fresh.getsockname()[1], "a new source follows the new class")
        r.set_class(SYM, flush=True)
        r.set_class(PR, flush=True)
        after = [N.reflexive_address(s, x.addr) for x in self.reflectors]
        self.assertEqual({p for _, p in after}, {port}, after)
        self.assertEqual(r.nat_class, N.PORT_RESTRICTED)
        self.assertNotIn("fully-random", r.nft_list())

    # ------------------------------------------------------------------
    @timed
    def test_6_relay_node_has_a_dataplane_veth_without_kernel_ip(self):
        relay = self.relay
        ns = relay.ns
        self.assertEqual(ns.addresses(relay.mgmt.name), [f"{N.RELAY_MGMT_IP}/24"])
        self.assertEqual(ns.addresses(relay.dataplane.name), [])
        self.assertEqual(relay.af_packet_vdev(), "net_af_packet0,iface=dp0")
        h = self.side["a"][PR]
        h.run(["ping", "-c", "1", "-W", "1", relay.mgmt_ip])  # control's address, through NAT

        # Play data plane on dp0 with a raw AF_PACKET socket: answer ARP for the
        # data-plane address, then receive a UDP datagram a peer sends to it.
        raw = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003),
                        bind=(relay.dataplane.name, 0))
        self.addCleanup(raw.close)
        my_mac = bytes.fromhex(relay.dataplane.mac.replace(":", ""))
        my_ip = socket.inet_aton(relay.dataplane_ip)
        s = self.host_socket(h)
        got_udp = []

        def dataplane():
            raw.settimeout(0.1)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not got_udp:
                try:
                    frame = raw.recv(2048)
                except socket.timeout:
                    continue
                etype = struct.unpack("!H", frame[12:14])[0]
                if etype == 0x0806 and frame[20:22] == b"\x00\x01" and frame[38:42] == my_ip:
                    sha, spa = frame[22:28], frame[28:32]
                    reply = (sha + my_mac + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x02" +
                             my_mac + my_ip + sha + spa)
                    raw.send(reply)
                elif etype == 0x0800 and frame[30:34] == my_ip and frame[23] == 17:
                    got_udp.append(frame[14:])

        t = threading.Thread(target=dataplane)
        t.start()
        for _ in range(10):
            s.sendto(b"to the data plane", (relay.dataplane_ip, 4000))
            time.sleep(0.1)
            if got_udp:
                break
        t.join()
        self.assertTrue(got_udp, "no UDP datagram reached dp0")
        ip = got_udp[0]
        ihl = (ip[0] & 0x0F) * 4
        self.assertEqual(ip[12:16], socket.inet_aton(h.router.public_ip))  # NATed source
        self.assertEqual(ip[ihl + 8:ihl + 8 + 17], b"to the data plane")
        # The UDP checksum is complete (veth TX checksum offload is off).
        udp = ip[ihl:ihl + struct.unpack("!H", ip[ihl + 4:ihl + 6])[0]]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
        data = pseudo + udp + (b"\0" if len(udp) % 2 else b"")
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        self.assertEqual(total, 0xFFFF, "UDP checksum does not verify")

    # ------------------------------------------------------------------
    @timed
    def test_7_conntrack_udp_timeouts_are_per_namespace(self):
        r1, r2 = self.side["a"][PR].router, self.side["b"][PR].router
        self.assertEqual(r1.udp_conntrack_timeouts(), {"unreplied": 30, "stream": 120})
        r1.set_udp_conntrack_timeouts(unreplied=10, stream=20)
        try:
            self.assertEqual(r1.udp_conntrack_timeouts(), {"unreplied": 10, "stream": 20})
            self.assertEqual(r2.udp_conntrack_timeouts(), {"unreplied": 30, "stream": 120})
        finally:
            r1.set_udp_conntrack_timeouts(unreplied=30, stream=120)


@unittest.skipIf(SKIP_REASON, SKIP_REASON)
class WireGuardTest(unittest.TestCase):
    @timed
    def test_wireguard_go_peers_behind_full_cone_nats(self):
        with N.Lab() as lab:
            ra, rb = lab.add_nat("wg-a-nat", FC), lab.add_nat("wg-b-nat", FC)
            a, b = lab.add_peer("wg-a", ra), lab.add_peer("wg-b", rb)
            wa = lab.wireguard(a, "100.64.0.1/24", listen_port=51820)
            wb = lab.wireguard(b, "100.64.0.2/24", listen_port=51820)
            self.assertNotEqual(wa.name, wb.name)
            # The tun device lives in the peer's namespace, not in ours.
            self.assertTrue(a.addresses(wa.name))
            self.assertFalse(os.path.exists(f"/sys/class/net/{wa.name}"))
            wa.set_peer(wb.public_key, endpoint=f"{rb.public_ip}:{wb.listen_port}",
                        allowed_ips=["100.64.0.2/32"], persistent_keepalive=1)
            wb.set_peer(wa.public_key, endpoint=f"{ra.public_ip}:{wa.listen_port}",
                        allowed_ips=["100.64.0.1/32"], persistent_keepalive=1)
            a.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", wb.tunnel_ip])
            self.assertGreater(wa.latest_handshakes()[wb.public_key], 0)
            self.assertGreater(wb.latest_handshakes()[wa.public_key], 0)
            self.assertIn("latest handshake", wa.show())
            # Each side talks to the other's public mapping (ports preserved).
            self.assertEqual(wa.endpoints()[wb.public_key], f"{rb.public_ip}:51820")
            self.assertEqual(wb.endpoints()[wa.public_key], f"{ra.public_ip}:51820")
            tag, names, procs = lab.tag, [w.name for w in lab.wg_interfaces], list(lab.processes)
        self.assertEqual(lab_leftovers(tag, names, procs), ([], [], []))


CHILD = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    sys.path.insert(0, {here!r})
    import natlab as N
    lab = N.Lab(prefix=sys.argv[2])
    h = lab.add_peer("c", lab.add_nat("c-nat", N.PORT_RESTRICTED))
    wg = lab.wireguard(h, "100.64.1.1/24")
    p = h.popen(["sleep", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(lab.tag, wg.name, wg.proc.pid, p.pid, flush=True)
    if sys.argv[1] == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
""")


@unittest.skipIf(SKIP_REASON, SKIP_REASON)
class TeardownTest(unittest.TestCase):
    @timed
    def test_teardown_after_an_exception_in_the_with_block(self):
        with self.assertRaises(ZeroDivisionError):
            with N.Lab() as lab:
                h = lab.add_peer("x", lab.add_nat("x-nat", SYM))
                wg = lab.wireguard(h, "100.64.2.1/24")
                h.popen(["sleep", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.assertTrue(os.path.exists(wg.socket_path))
                tag, names, procs = lab.tag, [wg.name], lab.processes
                1 / 0
        self.assertEqual(lab_leftovers(tag, names, procs), ([], [], []))
        self.assertFalse(os.path.exists(lab.tmpdir))

    # The crash test uses its own prefix, so that a concurrent run's Lab()
    # (which cleans stale "rlab-" leftovers) cannot clean up before it looks.
    CRASH_PREFIX = "rlabt-"

    def _child(self, mode, prefix=N.DEFAULT_PREFIX):
        """Start a child process that builds a lab; return what it built."""
        err = tempfile.TemporaryFile(mode="w+")
        self.addCleanup(err.close)
        p = subprocess.Popen([sys.executable, "-c", CHILD.format(here=HERE), mode, prefix],
                             stdout=subprocess.PIPE, stderr=err, text=True)
        self.child_err = err

        def cleanup():
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            N.cleanup_stale(prefix)  # whatever a failed test left behind
        self.addCleanup(cleanup)
        ready, _, _ = select.select([p.stdout], [], [], 30)
        line = p.stdout.readline() if ready else ""
        if len(line.split()) != 4:
            self.fail(f"child did not start its lab: {line!r}\n{self.child_stderr()}")
        tag, wg_name, wg_pid, sleep_pid = line.split()
        self.assertTrue(os.path.exists(f"/run/netns/{tag}-c"))
        return p, tag, wg_name, int(wg_pid), int(sleep_pid)

    def child_stderr(self):
        self.child_err.seek(0)
        return "child stderr:\n" + self.child_err.read()

    def wait_child(self, p, timeout=20):
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"child still running after {timeout}s\n{self.child_stderr()}")

    @staticmethod
    def _gone(pid, timeout=3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        return True  # a zombie: dead, waiting for its reaper
            except FileNotFoundError:
                return True
            time.sleep(0.05)
        return False

    @timed
    def test_teardown_on_sigterm(self):
        p, tag, wg_name, wg_pid, sleep_pid = self._child("term")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_child(p), -signal.SIGTERM, self.child_stderr())
        self.assertEqual([n for n in N.list_netns() if n.startswith(tag + "-")], [])
        self.assertFalse(os.path.exists(os.path.join(N.WG_SOCKET_DIR, wg_name + ".sock")))
        self.assertTrue(self._gone(wg_pid) and self._gone(sleep_pid))

    @timed
    def test_cleanup_stale_after_a_crash(self):
        p, tag, wg_name, wg_pid, sleep_pid = self._child("crash", self.CRASH_PREFIX)
        self.assertEqual(self.wait_child(p), -signal.SIGKILL, self.child_stderr())
        # A crashed run leaves everything behind...
        self.assertTrue(os.path.exists(f"/run/netns/{tag}-c"))
        self.assertFalse(self._gone(wg_pid, 0.1))
        # ...which cleanup_stale() removes, without touching a live lab.
        with N.Lab(prefix=self.CRASH_PREFIX, clean_stale=False) as live:
            live.add_namespace("keep")
            removed = N.cleanup_stale(self.CRASH_PREFIX)
            self.assertTrue(os.path.exists(f"/run/netns/{live.tag}-keep"))
        self.assertIn(f"{tag}-c", removed)
        self.assertEqual([n for n in N.list_netns() if n.startswith(tag + "-")], [])
        self.assertFalse(os.path.exists(os.path.join(N.WG_SOCKET_DIR, wg_name + ".sock")))
        self.assertTrue(self._gone(wg_pid) and self._gone(sleep_pid))


if __name__ == "__main__":
    unittest.main(verbosity=2)

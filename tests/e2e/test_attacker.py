"""An attacker on the lab's internet while the real peers connect (issue 9, "Proven in
the lab").

The attacker host (natlab.Lab.add_attacker: 203.0.113.66 and .67 on the bridge, and
every address of 198.51.100.0/24 routed to it) knows every peer's WireGuard public key,
the server's public key and the node's addresses, holds no secret and sees no traffic
but what reaches its own addresses.  While the three peers start and connect

    fc  full cone         fc-pr direct, fc-sy direct
    pr  port-restricted   pr-sy relayed (BRIEF section 6)
    sy  symmetric

it runs, at once, until the pairs have connected and at least FLOOD_MIN_S have passed:

    hijack          (attacker.py, from 203.0.113.66) every 50 ms, to every relay port of
                    the configured range (all RELAY_PORTS, 200), an initiation "from pr"
                    (mac1 under sy's key) and one "from sy"; every initiation the relay
                    forwards to it is answered with a response whose mac1 and receiver
                    index are right, from where it arrived;
    session flood   (relay-attack, from all of 198.51.100.0/24) SESSION_FLOOD_PPS to every
                    relay port in turn: initiations with a wrong mac1, junk responses, junk
                    data, datagrams of random length, and initiations whose mac1 verifies
                    under pr's or sy's key;
    control flood   (relay-attack, from all of 198.51.100.0/24) registers, each sealed
                    correctly to the server's key under a fresh X25519 key, with a
                    well-formed token of the lab's network and a made-up MAC, as fast as
                    the tool goes;

then replays every control datagram pr's agent (and WireGuard's probe) sent, captured
on pr's router's WAN side (the harness captures; the attacker host cannot), once from
203.0.113.67 and once from the original source address and port (raw socket).

The tests check what the issue promises: the pairs reached their expected paths within
the lab's usual connect deadline (relaylab.Mesh.wait_connected's 40 s) and pings cross;
no packet from the data plane's address ever reached the attacker; control's replies to
the attacker are no larger than its requests, and no replayed message was answered or
changed anything; control kept answering the registered peers; the node's memory grew by
a bounded amount.

    RELAY_BUILD_DIR=build python3 -m unittest tests/e2e/test_attacker.py -v
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import attacker as A  # noqa: E402
import natlab as N  # noqa: E402
import relaylab as R  # noqa: E402
from timing import save_results, timed  # noqa: E402

BUILD_DIR = os.environ.get("RELAY_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
RESULTS = os.environ.get("RELAY_E2E_RESULTS",
                         os.path.join(BUILD_DIR, "test-results", "e2e-results.json"))
ATTACK_TOOL = os.path.join(os.path.abspath(BUILD_DIR), "tests", "e2e", "relay-attack")

SPEC = [("fc", N.FULL_CONE), ("pr", N.PORT_RESTRICTED), ("sy", N.SYMMETRIC)]
TARGET = ("pr", "sy")            # the relayed pair the hijacker races
CONNECT_TIMEOUT_S = 40           # the lab's usual deadline (relaylab.Mesh.wait_connected)
FLOOD_MIN_S = 20                 # the floods last at least this long
FLOOD_MAX_S = 120                # ... and are stopped by the test long before this
HIJACK_INTERVAL_MS = 50
SESSION_FLOOD_PPS = 10000        # 50 per relay port and second: the old per-session budget
# The node's memory may grow by this much while it is attacked (VmRSS, per process,
# measured after a first use of every interface the test reads, so that their first
# allocations are in the baseline).  The bound is a constant because every structure
# an attack can fill must be bounded by design, not by the attack's volume: the
# per-source rate limiters (254 flood sources, a few hundred bytes each), the state of
# the three real peers and their one relay session, the data plane's session table and
# mbuf pool (preallocated and initialised at start).  State kept per unauthenticated
# message grows with the flood instead: the old replay cache stored every opened
# envelope's nonce (~95 bytes each: 7 MiB for 77 000 registers), which passes 1 MiB
# after ~11 000 registers, a few seconds of the flood.
RSS_GROWTH_BOUND_KIB = {"relay-control": 1024, "relay-dataplane": 4096}

SKIP_REASON = N.unavailable_reason()
if SKIP_REASON is None:
    missing = R.Binaries(BUILD_DIR).missing() + \
        ([] if os.access(ATTACK_TOOL, os.X_OK) else [ATTACK_TOOL])
    if missing:
        SKIP_REASON = "not built: " + ", ".join(missing)
    else:
        tools = [t for t in ("wireguard-go", "wg", "tcpdump", "ping") if shutil.which(t) is None]
        if tools:
            SKIP_REASON = "missing tools: " + ", ".join(tools)



def rss_kib(proc: subprocess.Popen, name: str) -> int:
    """VmRSS of PROC (`ip netns exec` execs the program: the pid is the program's)."""
    with open(f"/proc/{proc.pid}/comm") as f:
        comm = f.read().strip()
    if comm != name[:15]:
        raise AssertionError(f"pid {proc.pid} is {comm!r}, not {name}")
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {name}")


def open_envelopes(agent: R.PeerAgent, server_key: str, payloads) -> list:
    """Opens AGENT's control traffic with its secret key (`relay-attack open`): per
    payload (direction "request"/"reply", message type, request id), or ("unreadable",
    why, None) for what is no envelope of it (WireGuard's probe initiations)."""
    out = subprocess.run([ATTACK_TOOL, "open", "--agent-key",
                          os.path.join(agent.dir, "agent.key"), "--server-key", server_key],
                         input="".join(p.hex() + "\n" for p in payloads),
                         capture_output=True, text=True, check=True, timeout=30).stdout
    rows = []
    for line in out.splitlines():
        f = line.split()
        rows.append((f[0], f[1], int(f[2]) if len(f) > 2 else None))
    if len(rows) != len(payloads):
        raise AssertionError(f"relay-attack open: {len(rows)} lines for {len(payloads)}: {out}")
    return rows


def stun_request() -> bytes:
    """A 64-byte STUN Binding request (header, PADDING, no FINGERPRINT): answered with
    52 bytes (docs/PROTOCOL.md, "No amplification")."""
    return (b"\x00\x01\x00\x2c\x21\x12\xa4\x42" + os.urandom(12) +
            b"\x00\x26\x00\x28" + bytes(40))


@unittest.skipIf(SKIP_REASON, SKIP_REASON or "")
class AttackerTest(unittest.TestCase):
    """The attacks run once, in setUpClass; each test checks one promise."""

    @classmethod
    def setUpClass(cls):
        cls.lab = N.Lab()
        cls.failed = False
        try:
            cls._attack()
        except BaseException:
            sys.stderr.write(R.all_logs(cls.lab))
            cls.lab.teardown()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.failed:
            sys.stderr.write("\n" + R.all_logs(cls.lab, tail=60) + "\n")
        keep = os.environ.get("RELAY_E2E_LOGS")
        if keep:
            R.copy_logs(cls.lab, keep)
        cls.lab.teardown()

    def run(self, result=None):
        before = (len(result.failures), len(result.errors)) if result is not None else None
        result = super().run(result)
        if before is not None and (len(result.failures), len(result.errors)) != before:
            type(self).failed = True
        return result

    # -- the attack ----------------------------------------------------------------
    @classmethod
    def _attack(cls):
        lab = cls.lab
        cls.mesh = mesh = R.Mesh(lab, R.Binaries(BUILD_DIR), SPEC)
        cls.node = node = mesh.node
        cls.a = agents = mesh.agents
        cls.att = att = lab.add_attacker()
        cls.own_ip, cls.replay_ip = att.ips[0], att.ips[1]
        pr_router = agents["pr"].host.router
        # Everything that reaches the attacker (headers and the first payload bytes), and
        # pr's control traffic as its router's WAN side sees it (the replay's material).
        cls.to_attacker = N.Capture(
            lab.internet, att.veth.peer_name,
            f"ip and (dst net {att.sources} or dst host {cls.own_ip} or dst host {cls.replay_ip})",
            "attacker-in", snaplen=96)
        cls.pr_control = N.Capture(pr_router, pr_router.wan_if,
                                   f"udp and host {node.mgmt_ip}", "pr-control")
        cls.canary = [cls._stun_canary()]
        # Every interface the test reads, once, before the baseline.
        node.control_metrics(), node.dataplane_metrics(), node.peers(), node.sessions()
        cls.rss_before = cls._rss()

        floods = {
            "control": [ATTACK_TOOL, "control-flood", "--server", node.mgmt_ip,
                        "--ports", ",".join(map(str, R.CONTROL_PORTS)),
                        "--server-key", node.server_public_key, "--network", R.NETWORK,
                        "--sources", att.sources, "--seconds", str(FLOOD_MAX_S)],
            "session": [ATTACK_TOOL, "session-flood", "--target", node.relay_ip,
                        "--ports", f"{R.RELAY_PORTS[0]}-{R.RELAY_PORTS[1]}",
                        "--sources", att.sources, "--rate", str(SESSION_FLOOD_PPS),
                        "--seconds", str(FLOOD_MAX_S),
                        "--mac1-key", agents[TARGET[0]].key, "--mac1-key", agents[TARGET[1]].key],
            "hijack": [sys.executable, os.path.join(HERE, "attacker.py"), "hijack",
                       "--relay", node.relay_ip,
                       "--ports", f"{R.RELAY_PORTS[0]}-{R.RELAY_PORTS[1]}",
                       "--key-a", agents[TARGET[0]].key, "--key-b", agents[TARGET[1]].key,
                       "--bind", cls.own_ip, "--seconds", str(FLOOD_MAX_S),
                       "--interval-ms", str(HIJACK_INTERVAL_MS)],
        }
        procs = {name: att.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for name, argv in floods.items()}
        flood_start = time.monotonic()
        keepalives0 = node.control_metrics().get(
            'relay_control_messages_total{type="keepalive"}', 0)
        sampler = _LastSeenSampler(node, {n: a.key for n, a in agents.items()})
        sampler.start()

        mesh.start()
        cls.connected = mesh.wait_connected(timeout=CONNECT_TIMEOUT_S)
        cls.connect_report = mesh.report()
        sys.stderr.write("\n" + cls.connect_report + "\n")
        while time.monotonic() - flood_start < FLOOD_MIN_S:
            time.sleep(0.2)
        cls.flooded_for = time.monotonic() - flood_start
        cls.still_running = {n: p.poll() is None for n, p in procs.items()}
        sampler.stop()
        cls.last_seen_max = sampler.max_last_seen
        cls.keepalives_during = node.control_metrics().get(
            'relay_control_messages_total{type="keepalive"}', 0) - keepalives0
        cls.attacks = {}
        for name, p in procs.items():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
            out, err = p.communicate(timeout=15)
            try:
                cls.attacks[name] = json.loads(out.decode().strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise N.LabError(f"{name} attack failed ({p.returncode}): {out!r} {err!r}")
        cls.rss_after = cls._rss()
        sys.stderr.write(json.dumps({k: {f: v for f, v in r.items()
                                         if f not in ("forwarded_initiations", "received")}
                                     for k, r in cls.attacks.items()}) + "\n")

        cls._replay(pr_router)
        cls.canary.append(cls._stun_canary())
        time.sleep(1.0)   # any late answer to a replay
        cls.to_attacker.stop()
        cls.pr_control.stop()
        cls.paths_after = mesh.poll_paths()
        save_results(RESULTS, "attacker", {
            "connected": cls.connected, "time_to_connect_s": {
                p: round(t, 2) for p, t in mesh.ttc.items()},
            "flooded_for_s": round(cls.flooded_for, 1),
            "attacks": {k: {f: v for f, v in r.items() if f != "forwarded_initiations"}
                        for k, r in cls.attacks.items()},
            "rss_kib": {"before": cls.rss_before, "after": cls.rss_after},
            "pr_requests_control_never_answered": cls.unanswered_requests})

    @classmethod
    def _rss(cls):
        return {"relay-control": rss_kib(cls.node.control_proc, "relay-control"),
                "relay-dataplane": rss_kib(cls.node.dataplane_proc, "relay-dataplane")}

    @classmethod
    def _stun_canary(cls) -> bool:
        """A STUN request from the attacker's own address, which control answers: shows
        that the capture of what reaches the attacker sees control's answers."""
        s = cls.att.socket(bind=(cls.own_ip, 0))
        try:
            for _ in range(3):
                s.sendto(stun_request(), (cls.node.mgmt_ip, R.CONTROL_PORTS[0]))
                if N.recv_any(s, 1.0):
                    return True
            return False
        finally:
            s.close()

    @classmethod
    def _replay(cls, pr_router):
        """The datagrams pr's side sent to control so far and control took in, replayed
        from the attacker's second address and then from their original source
        (spoofed).  Taken in: the requests it answered, and WireGuard's probe
        initiations once control has observed pr's WireGuard port (the probe key is
        spent then).  A request that never reached control (its socket overflowed under
        the flood) is not a replay: delivered later it is its first copy, and it is
        counted apart (unanswered_requests)."""
        node = cls.node
        cls.pr_before = cls._control_record("pr")
        packets = N.read_pcap(cls.pr_control.path)
        sent = [p for p in packets if p.src == pr_router.public_ip and
                p.dst == node.mgmt_ip and p.payload]
        back = [p for p in packets if p.src == node.mgmt_ip and p.dst == pr_router.public_ip]
        sent_rows = open_envelopes(cls.a["pr"], node.server_public_key,
                                   [p.payload for p in sent])
        answered = {rid for d, _, rid in open_envelopes(cls.a["pr"], node.server_public_key,
                                                        [p.payload for p in back])
                    if d == "reply" and rid}
        material, cls.unanswered_requests = [], []
        for p, (d, t, rid) in zip(sent, sent_rows):
            if d == "request" and rid in answered:
                material.append(p)
            elif d == "request":
                cls.unanswered_requests.append((t, rid))
            elif cls.pr_before.get("wg_reflexive"):
                material.append(p)
        cls.replayed = material
        cls.replay_time = time.time()
        # What reaches the node's management interface from pr's router's address or the
        # replay address: shows that both replays arrived (by the attacker's MAC).
        arrived = N.Capture(node.relay.ns, node.relay.mgmt.name,
                            f"udp and dst host {node.mgmt_ip} and (src host "
                            f"{pr_router.public_ip} or src host {cls.replay_ip})",
                            "replays-at-node")
        replayed0 = node.control_metrics()
        own = cls.att.socket(bind=(cls.replay_ip, 0))
        raw = cls.att.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        try:
            A.replay_from(own, [(p.payload, (p.dst, p.dport)) for p in material])
            time.sleep(0.5)
            A.replay_spoofed(raw, [(p.payload, (p.src, p.sport), (p.dst, p.dport))
                                   for p in material])
        finally:
            own.close()
            raw.close()
        time.sleep(1.0)
        cls.pr_after = cls._control_record("pr")
        mac = bytes.fromhex(cls.att.veth.mac.replace(":", ""))
        at_node = [p for p in arrived.stop().packets() if p.frame[6:12] == mac]
        cls.replays_arrived = {
            "from_replay_address": sum(p.src == cls.replay_ip for p in at_node),
            "from_original_source": sum(p.src == pr_router.public_ip for p in at_node)}
        m = node.control_metrics()
        cls.rejected_during_replay = {
            k: m[k] - replayed0.get(k, 0) for k in m
            if k.startswith("relay_control_rejected_messages_total") and
            m[k] != replayed0.get(k, 0)}

    @classmethod
    def _control_record(cls, name: str) -> dict:
        key = cls.a[name].key
        for p in cls.node.peers():
            if p["wg_key"] == key:
                return p
        return {}

    # -- helpers ------------------------------------------------------------------------
    def ping_ok(self, a: str, b: str, count: int = 5):
        p = self.a[a].ping(self.a[b], count=count, interval=0.05, check=False)
        self.assertEqual(R.ping_received(p), count, f"ping {a} -> {b}: {p.stdout} {p.stderr}")

    # -- the promises -------------------------------------------------------------------
    @timed
    def test_1_pairs_reach_their_expected_paths_under_attack(self):
        """Every pair showed its expected path on both sides within the lab's connect
        deadline while the attacks ran, still does after them, and pings cross."""
        self.assertTrue(self.connected, "not every pair connected within "
                        f"{CONNECT_TIMEOUT_S} s under attack:\n{self.connect_report}")
        self.assertTrue(all(self.still_running.values()),
                        f"an attack ended before the pairs connected: {self.still_running}")
        for a, b in self.mesh.pairs():
            want = self.mesh.expected_path(a, b)
            self.assertEqual(self.paths_after[R.pair_name(a, b)], (want, want),
                             f"{a}-{b} after the attacks")
        for a, b in self.mesh.pairs():
            self.ping_ok(a, b)
            self.ping_ok(b, a)

    @timed
    def test_2_no_packet_from_the_data_plane_reaches_the_attacker(self):
        """Nothing the data plane sends may reach the attacker: it answers only ICMP echo
        (the attacker sends none) and bind requests that verify under a session's secret
        (the attacker has none; these sessions are WireGuard-latched), so anything else
        from its address is traffic it forwarded to the attacker, a hijacked session's or
        a reflected flood's."""
        relay_ip = self.node.relay_ip
        got = [p for p in self.to_attacker.packets() if p.src == relay_ip]
        summary = {}
        for p in got:
            to = "the hijacker" if p.dst == self.own_ip else \
                "the replay address" if p.dst == self.replay_ip else "flood sources"
            kind = f"from port {p.sport} to {to}: WireGuard type {p.payload[:1].hex()}, " \
                   f"{p.ip_len - 28} bytes"
            summary[kind] = summary.get(kind, 0) + 1
        hijack = self.attacks["hijack"]
        self.assertEqual(len(got), 0, f"{len(got)} packets from the data plane reached the "
                         f"attacker: {json.dumps(summary, indent=1)}\n"
                         f"the hijacker answered {hijack['initiations_answered']} initiations "
                         f"forwarded to it, the first: {hijack['forwarded_initiations'][:5]}")
        self.assertEqual(self.attacks["session"]["received"], 0, self.attacks["session"])

    @timed
    def test_3_control_replies_to_the_attacker_are_no_larger_than_its_requests(self):
        """Control answered the STUN canaries (so the capture sees its answers), answered
        no replayed message at the replay address, and each reply to a flood source is no
        larger than the flood's requests."""
        self.assertEqual(self.canary, [True, True], "control did not answer the STUN canary")
        mgmt = self.node.mgmt_ip
        from_control = [p for p in self.to_attacker.packets() if p.src == mgmt]
        canary = [p for p in from_control if p.dst == self.own_ip]
        self.assertGreaterEqual(len(canary), 2, "the canaries' answers are not in the capture")
        self.assertTrue(all(p.ip_len - 28 <= len(stun_request()) for p in canary))
        self.assertEqual([p for p in from_control if p.dst == self.replay_ip], [],
                         "control answered a replayed message")
        flood = self.attacks["control"]
        replies = [p for p in from_control if p.dst not in (self.own_ip, self.replay_ip)]
        larger = [p.ip_len - 28 for p in replies if p.ip_len - 28 > flood["request_bytes"]]
        self.assertEqual(larger, [], f"replies larger than the {flood['request_bytes']}-byte "
                         "requests")
        sys.stderr.write(f"(control flood: {flood['sent']} registers in {flood['seconds']} s "
                         f"= {flood['per_s']}/s from {flood['sources']} sources, "
                         f"{flood['keys']} keys; {len(replies)} replies captured) ")

    @timed
    def test_4_control_kept_answering_the_registered_peers(self):
        """While the floods ran, control heard from every registered peer at least once
        per two keepalive intervals (an agent sends one every interval), and counted
        their keepalives."""
        interval = self.node.keepalive_interval_s
        self.assertEqual(sorted(self.last_seen_max), sorted(self.a),
                         "a peer never registered during the floods")
        late = {n: s for n, s in self.last_seen_max.items() if s >= 2 * interval}
        self.assertEqual(late, {}, f"peers silent for 2 keepalive intervals ({2 * interval} s) "
                         "or more while the floods ran, as control's admin socket saw them")
        self.assertGreaterEqual(self.keepalives_during, len(self.a),
                                "control accepted no keepalive of some peer during the floods")
        sys.stderr.write(f"(longest silence per peer {self.last_seen_max} s; pr's requests "
                         f"control never answered: {self.unanswered_requests}) ")

    @timed
    def test_5_the_node_memory_stays_bounded(self):
        """VmRSS of relay-control and relay-dataplane after the attacks exceeds that
        before by at most RSS_GROWTH_BOUND_KIB (see there for why)."""
        growth = {n: self.rss_after[n] - self.rss_before[n] for n in self.rss_before}
        sys.stderr.write(f"(VmRSS growth KiB {growth}; before {self.rss_before}) ")
        for name, bound in RSS_GROWTH_BOUND_KIB.items():
            self.assertLessEqual(growth[name], bound,
                                 f"{name} grew by {growth[name]} KiB under attack "
                                 f"(before {self.rss_before[name]} KiB, after "
                                 f"{self.rss_after[name]} KiB; flood: "
                                 f"{self.attacks['control']['sent']} registers, "
                                 f"{self.attacks['session']['sent']} session datagrams)")

    @timed
    def test_6_replayed_control_messages_are_refused(self):
        """Every control datagram pr's side had sent and control had taken in (captured
        at pr's router; _replay says which), replayed from another address and from its
        own: none is answered (no reply carries a replayed request's id after the replay,
        none reaches the replay address) and pr's record at control does not change."""
        n = len(self.replayed)
        self.assertEqual(self.replays_arrived, {"from_replay_address": n,
                                                "from_original_source": n},
                         "the replays did not all reach the node")
        opened = open_envelopes(self.a["pr"], self.node.server_public_key,
                                [p.payload for p in self.replayed])
        replayed_ids = {rid for d, _, rid in opened if d == "request" and rid}
        types = sorted({t for d, t, _ in opened if d == "request"})
        self.assertIn("register", types, f"no register among the replayed messages: {opened}")
        self.assertGreaterEqual(len(replayed_ids), 3, opened)
        router_ip = self.a["pr"].host.router.public_ip
        later = [p for p in self.pr_control.packets()
                 if p.src == self.node.mgmt_ip and p.dst == router_ip and
                 p.time >= self.replay_time - 0.05]
        answers = open_envelopes(self.a["pr"], self.node.server_public_key,
                                 [p.payload for p in later])
        to_replays = [(t, rid) for d, t, rid in answers if d == "reply" and rid in replayed_ids]
        self.assertEqual(to_replays, [], "control answered replayed requests")
        keep = ("nat_class", "reflexive", "wg_reflexive", "local_addresses", "relay_sessions")
        self.assertEqual({k: self.pr_after.get(k) for k in keep},
                         {k: self.pr_before.get(k) for k in keep},
                         "the replays changed pr's record at control")
        sys.stderr.write(f"({n} datagrams replayed twice: {types}; control counted "
                         f"{self.rejected_during_replay}; not replayed, as control never "
                         f"answered them: {self.unanswered_requests}) ")


class _LastSeenSampler(threading.Thread):
    """Reads control's peers once a second: the largest last_seen_s of each of KEYS
    (by name) once it has registered."""

    def __init__(self, node: R.RelayNodeProcs, keys: dict):
        super().__init__(daemon=True, name="last-seen")
        self.node, self.keys = node, keys
        self.max_last_seen: dict = {}
        self._stop_event = threading.Event()

    def run(self):
        by_key = {k: n for n, k in self.keys.items()}
        while not self._stop_event.wait(1.0):
            try:
                peers = self.node.peers()
            except (OSError, ValueError, KeyError):
                continue
            for p in peers:
                name = by_key.get(p["wg_key"])
                if name:
                    self.max_last_seen[name] = max(self.max_last_seen.get(name, 0),
                                                   p["last_seen_s"])

    def stop(self):
        self._stop_event.set()
        self.join()


if __name__ == "__main__":
    unittest.main()

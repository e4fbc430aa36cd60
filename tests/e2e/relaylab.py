"""relaylab: the product (relay-dataplane, relay-control, relay-peer with
wireguard-go) running in a natlab.Lab.

    with natlab.Lab() as lab:
        node = RelayNodeProcs(lab, Binaries("build"), lab.add_relay())
        node.start()                               # data plane + control, waits until both are up
        r = lab.add_nat("r1", natlab.FULL_CONE)
        a = PeerAgent(lab, node, lab.add_peer("a", r), "100.64.0.1")
        ...                                        # a.wg.set_peer(...) for every other peer
        a.start()                                  # relay-peer run
        a.status()                                 # relay-peer's status socket (JSON)

Every process is started through the lab (Namespace.popen), so lab teardown
(also on SIGINT/SIGTERM, an exception or interpreter exit) ends it.  Each
process writes its output to a log file in the lab's temp directory;
`logs()` gathers them for a failure message.  Python standard library only.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from typing import Dict, List, Optional

import natlab as N

NETWORK = "e2e"
CONTROL_PORTS = (3478, 3479)
DATAPLANE_METRICS = "127.0.0.1:9477"   # inside the relay namespace
CONTROL_METRICS = "127.0.0.1:9478"
RELAY_PORTS = (40000, 40199)
# The data plane's address is configured /28 (203.0.113.0-15: the gateway, the
# management address and the relay address), so that the NAT routers' public
# addresses (203.0.113.100 and up) are off-link for it and reached through the
# gateway, as peers on the internet are.  (With /24 every router would be an on-link
# neighbour the data plane resolves on first use, holding the packet meanwhile: that
# case is tests/integration's FirstPacketToAnUnresolvedOnLinkPeerArrives.)
# The internet namespace routes (ip_forward) between the relay and the routers.
DATAPLANE_PREFIX_LEN = 28


class Binaries:
    """Paths of the product's programs in a meson build directory."""

    def __init__(self, build_dir: str):
        self.build_dir = os.path.abspath(build_dir)
        self.relay = os.path.join(self.build_dir, "relay", "relay")
        self.dataplane = os.path.join(self.build_dir, "dataplane", "relay-dataplane")
        self.control = os.path.join(self.build_dir, "control", "relay-control")
        self.peer = os.path.join(self.build_dir, "peer", "relay-peer")

    def missing(self) -> List[str]:
        return [p for p in (self.relay, self.dataplane, self.control, self.peer)
                if not os.access(p, os.X_OK)]


def json_socket_call(path: str, request: dict, timeout: float = 3.0) -> dict:
    """One request/reply on an AF_UNIX SOCK_SEQPACKET JSON socket (docs/PROTOCOL.md)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.settimeout(timeout)
        s.connect(path)
        s.send(json.dumps(request).encode())
        return json.loads(s.recv(1 << 20).decode())
    finally:
        s.close()


def parse_metrics(text: str) -> Dict[str, float]:
    """Prometheus text format -> {'name{labels}': value} (and 'name' for unlabelled)."""
    out: Dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"(\S+?(?:\{[^}]*\})?)\s+(\S+)", line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def _log_path(lab: N.Lab, name: str) -> str:
    return os.path.join(lab.tmpdir, name + ".log")


_T0 = time.monotonic()


def popen_logged(ns: N.Namespace, argv, name: str, env: Optional[dict] = None) -> subprocess.Popen:
    """Start ARGV in NS (through the lab: teardown ends it) with its output written,
    line by line with the seconds since this module was loaded, to <tmpdir>/NAME.log."""
    proc = ns.popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = open(_log_path(ns.lab, name), "w")

    def pump():
        with log, proc.stdout:
            for raw in iter(proc.stdout.readline, b""):
                log.write(f"[{time.monotonic() - _T0:8.3f}] {raw.decode(errors='replace')}")
                log.flush()
    threading.Thread(target=pump, daemon=True, name=f"log-{name}").start()
    return proc


class RelayNodeProcs:
    """relay-dataplane (DPDK net_af_packet on the relay namespace's dp0, --no-huge)
    and relay-control (kernel sockets on the management address) of one node."""

    def __init__(self, lab: N.Lab, bins: Binaries, relay: N.RelayNode,
                 keepalive_interval_s: int = 5, peer_timeout_s: int = 15,
                 promotion_interval_s: int = 600, punch_deadline_ms: int = 2500):
        self.lab = lab
        self.bins = bins
        self.relay = relay
        self.dir = os.path.join(lab.tmpdir, "node")
        os.makedirs(self.dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "relay.yaml")
        self.key_file = os.path.join(self.dir, "control.key")
        self.ipc_socket = os.path.join(self.dir, "dataplane.sock")
        self.admin_socket = os.path.join(self.dir, "control.sock")
        # DPDK's runtime directory (/var/run/dpdk/<prefix>) goes with the lab.
        self.file_prefix = lab.dpdk_file_prefix("dp")
        self.secret = base64.b64encode(os.urandom(32)).decode()
        self.keepalive_interval_s = keepalive_interval_s
        self.peer_timeout_s = peer_timeout_s
        self.promotion_interval_s = promotion_interval_s
        self.punch_deadline_ms = punch_deadline_ms
        self.dataplane_proc: Optional[subprocess.Popen] = None
        self.control_proc: Optional[subprocess.Popen] = None
        self.server_public_key = ""

    @property
    def relay_ip(self) -> str:
        return self.relay.dataplane_ip

    @property
    def mgmt_ip(self) -> str:
        return self.relay.mgmt_ip

    def config_text(self) -> str:
        return f"""node:
  name: e2e
dataplane:
  eal:
    lcores: "0-1"
    lcore_cpus: "0-1"
    main_lcore: 0
    hugepages: false
    memory_mb: 512
    file_prefix: {self.file_prefix}
    pci: false
    vdevs: ["{self.relay.af_packet_vdev()}"]
  workers: [1]
  idle_sleep_max_us: 1000
  ipc_socket: {self.ipc_socket}
  metrics_listen: {DATAPLANE_METRICS}
  ports:
    - name: lab0
      device: net_af_packet0
      addresses: [{self.relay.dataplane_ip}/{DATAPLANE_PREFIX_LEN}]
      gateway: {self.relay.gateway}
control:
  listen_address: {self.relay.mgmt_ip}
  ports: [{CONTROL_PORTS[0]}, {CONTROL_PORTS[1]}]
  key_file: {self.key_file}
  admin_socket: {self.admin_socket}
  metrics_listen: {CONTROL_METRICS}
  keepalive_interval_s: {self.keepalive_interval_s}
  peer_timeout_s: {self.peer_timeout_s}
  punch_lead_ms: 150
  punch_deadline_ms: {self.punch_deadline_ms}
  promotion_interval_s: {self.promotion_interval_s}
  relay:
    address: {self.relay.dataplane_ip}
    ports: {RELAY_PORTS[0]}-{RELAY_PORTS[1]}
    idle_timeout_s: 180
  networks:
    - name: {NETWORK}
      secrets: [{{id: 1, secret: "{self.secret}"}}]
"""

    def start(self, timeout: float = 30) -> None:
        inet = self.lab.internet
        inet.sysctl("net.ipv4.ip_forward", 1)
        for conf in ("all", "default", "br0"):
            inet.sysctl(f"net.ipv4.conf.{conf}.send_redirects", 0)
        with open(self.config_path, "w") as f:
            f.write(self.config_text())
        os.chmod(self.config_path, 0o600)
        out = N._run([self.bins.relay, "keygen", self.key_file])
        self.server_public_key = out.stdout.strip().split()[-1]
        N._run([self.bins.relay, "check-config", self.config_path])
        env: dict = {}
        self.dataplane_proc = self._popen("relay-dataplane", self.bins.dataplane, env)
        self._wait(lambda: os.path.exists(self.ipc_socket), self.dataplane_proc,
                   "relay-dataplane", timeout)
        self.control_proc = self._popen("relay-control", self.bins.control, env)

        def up():
            if not os.path.exists(self.admin_socket):
                return False
            try:
                return bool(self.admin({"command": "status"}).get("dataplane_up"))
            except OSError:
                return False
        self._wait(up, self.control_proc, "relay-control", timeout)

    def _popen(self, name: str, binary: str, env: dict) -> subprocess.Popen:
        return popen_logged(self.relay.ns, [binary, "--config", self.config_path], name, env)

    def _wait(self, ready, proc: subprocess.Popen, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise N.LabError(f"{name} exited ({proc.returncode}):\n" + self.lab_log(name))
            if time.monotonic() > deadline:
                raise N.LabError(f"{name} not up after {timeout}s:\n" + self.lab_log(name))
            time.sleep(0.1)

    def lab_log(self, name: str) -> str:
        try:
            with open(_log_path(self.lab, name)) as f:
                return f.read()
        except OSError:
            return ""

    # -- what the node says -------------------------------------------------
    def token(self, ttl: str = "2h") -> str:
        return N._run([self.bins.relay, "token", self.config_path, "--network", NETWORK,
                       "--ttl", ttl]).stdout.strip()

    def admin(self, request: dict) -> dict:
        return json_socket_call(self.admin_socket, request)

    def sessions(self) -> List[dict]:
        out, offset = [], 0
        while True:
            r = self.admin({"command": "sessions", "offset": offset, "limit": 200})
            out += r["sessions"]
            offset += len(r["sessions"])
            if not r["sessions"] or offset >= r["total"]:
                return out

    def peers(self) -> List[dict]:
        return self.admin({"command": "peers", "offset": 0, "limit": 200})["peers"]

    def session_of(self, key_a: str, key_b: str) -> Optional[dict]:
        for s in self.sessions():
            keys = {side["wg_key"] for side in s["sides"]}
            if keys == {key_a, key_b}:
                return s
        return None

    def _metrics(self, listen: str) -> Dict[str, float]:
        def fetch():
            with urllib.request.urlopen(f"http://{listen}/metrics", timeout=3) as r:
                return r.read().decode()
        return parse_metrics(self.relay.ns.call(fetch))

    def dataplane_metrics(self) -> Dict[str, float]:
        return self._metrics(DATAPLANE_METRICS)

    def control_metrics(self) -> Dict[str, float]:
        return self._metrics(CONTROL_METRICS)

    def forwarded_packets(self) -> int:
        return int(self.dataplane_metrics().get("relay_dataplane_forwarded_packets_total", 0))


class PeerAgent:
    """One peer: wireguard-go (tunnel address TUNNEL_IP/24) and relay-peer in HOST."""

    def __init__(self, lab: N.Lab, node: RelayNodeProcs, host: N.Host, tunnel_ip: str,
                 name: Optional[str] = None, listen_port: int = 51820,
                 persistent_keepalive_s: int = 5, kernel_wg: bool = False):
        self.lab = lab
        self.node = node
        self.host = host
        self.name = name or host.short
        self.tunnel_ip = tunnel_ip
        self.persistent_keepalive_s = persistent_keepalive_s
        self.kernel_wg = kernel_wg   # the kernel module's WireGuard instead of wireguard-go
        self.wg = lab.wireguard(host, f"{tunnel_ip}/24", listen_port=listen_port,
                                kernel=kernel_wg)
        self.dir = os.path.join(lab.tmpdir, f"peer-{self.name}")
        os.makedirs(self.dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "relay-peer.yaml")
        self.status_socket = os.path.join(self.dir, "status.sock")
        self.proc: Optional[subprocess.Popen] = None
        self.started_at: Optional[float] = None   # time.monotonic() of start()

    @property
    def key(self) -> str:
        return self.wg.public_key

    def add_wg_peer(self, other: "PeerAgent") -> None:
        """Tell WireGuard about OTHER (allowed IPs its tunnel address, no endpoint):
        relay-peer finds the endpoint."""
        self.wg.set_peer(other.key, allowed_ips=[f"{other.tunnel_ip}/32"])

    def config_text(self) -> str:
        return f"""interface: {self.wg.name}
key_file: {os.path.join(self.dir, 'agent.key')}
control:
  address: {self.node.mgmt_ip}
  ports: [{CONTROL_PORTS[0]}, {CONTROL_PORTS[1]}]
  server_public_key: {self.node.server_public_key}
token: {self.node.token()}
status_socket: {self.status_socket}
persistent_keepalive_s: {self.persistent_keepalive_s}
"""

    def start(self) -> None:
        with open(self.config_path, "w") as f:
            f.write(self.config_text())
        self.started_at = time.monotonic()
        self.proc = popen_logged(self.host, [self.node.bins.peer, "run", "--config",
                                             self.config_path], f"relay-peer-{self.name}")

    def stop(self) -> None:
        if self.proc:
            self.lab._stop_proc(self.proc)

    def log(self) -> str:
        try:
            with open(_log_path(self.lab, f"relay-peer-{self.name}")) as f:
                return f.read()
        except OSError:
            return ""

    def status(self) -> dict:
        return json_socket_call(self.status_socket, {"command": "status"})

    def status_text(self) -> str:
        """`relay-peer status --config FILE` (the human table)."""
        return self.host.run([self.node.bins.peer, "status", "--config", self.config_path],
                             check=False).stdout

    def peer_status(self, other: "PeerAgent") -> Optional[dict]:
        try:
            st = self.status()
        except OSError:
            return None
        for p in st.get("peers", []):
            if p["peer"] == other.key:
                return p
        return None

    def ping(self, other: "PeerAgent", count: int = 5, interval: float = 0.2,
             size: int = 56, pattern: Optional[str] = None, deadline: float = 10,
             check: bool = True) -> subprocess.CompletedProcess:
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-s", str(size),
                "-W", "1", "-w", str(int(deadline)), other.tunnel_ip]
        if pattern:
            argv[1:1] = ["-p", pattern]
        return self.host.run(argv, check=check, timeout=deadline + 5)


def ping_received(p: subprocess.CompletedProcess) -> int:
    m = re.search(r"(\d+) received", p.stdout)
    return int(m.group(1)) if m else 0


def all_logs(lab: N.Lab, tail: int = 60) -> str:
    """The last TAIL lines of every process log in the lab's temp directory."""
    parts = []
    try:
        names = sorted(f for f in os.listdir(lab.tmpdir) if f.endswith(".log"))
    except OSError:
        return ""
    for f in names:
        try:
            with open(os.path.join(lab.tmpdir, f), errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        # wireguard-go prints a boxed banner and nothing else unless it fails.
        lines = [l for l in lines if not re.match(r"\s*[\u2500-\u257f]", l)]
        if not lines:
            continue
        parts.append(f"==== {f} (last {min(tail, len(lines))} of {len(lines)} lines)\n" +
                     "\n".join(lines[-tail:]))
    return "\n".join(parts)


# --------------------------------------------------------------------------
# A mesh: one relay node, peers behind NATs of given classes, every peer's
# WireGuard configured with every other peer (allowed IPs only, no endpoint).

# BRIEF section 6: the pairs of NAT classes that need the relay.
RELAYED_CLASSES = (frozenset({N.PORT_RESTRICTED, N.SYMMETRIC}), frozenset({N.SYMMETRIC}))


def pair_name(a: str, b: str) -> str:
    return f"{a}-{b}"


class Mesh:
    """SPEC: [(peer name, NAT class)]; peers named in SHARED = {router name: [peer
    names], ...} sit together behind one port-restricted NAT of that name instead.
    BLOCKED: pairs of peer names whose routers drop each other's UDP (lab.block_punch).
    KERNEL_WG: names of peers whose WireGuard is the kernel module's (the rest run
    wireguard-go)."""

    def __init__(self, lab: N.Lab, bins: Binaries, spec, shared=None, blocked=(),
                 kernel_wg=(), **node_kw):
        self.lab = lab
        self.node = RelayNodeProcs(lab, bins, lab.add_relay(), **node_kw)
        self.agents: Dict[str, PeerAgent] = {}
        self.classes: Dict[str, str] = {}
        self.blocked = [frozenset(p) for p in blocked]
        self.node.start()
        n = 0
        for name, nat_class in spec:
            n += 1
            router = lab.add_nat("r" + name, nat_class)
            self.agents[name] = PeerAgent(lab, self.node, lab.add_peer(name, router),
                                          f"100.64.0.{n}", kernel_wg=name in kernel_wg)
            self.classes[name] = nat_class
        for router_name, names in (shared or {}).items():
            router = lab.add_shared_nat(router_name, names)
            for host in router.hosts:
                n += 1
                self.agents[host.short] = PeerAgent(lab, self.node, host, f"100.64.0.{n}",
                                                    kernel_wg=host.short in kernel_wg)
                self.classes[host.short] = N.PORT_RESTRICTED
        for a in self.agents.values():
            for b in self.agents.values():
                if a is not b:
                    a.add_wg_peer(b)
        for pair in self.blocked:
            x, y = sorted(pair)
            lab.block_punch(self.agents[x].host.router, self.agents[y].host.router)
        self.started_at = 0.0
        self.ttc: Dict[str, float] = {}        # pair -> seconds from start to its final path
        self.paths: Dict[str, tuple] = {}      # pair -> (path seen by a, path seen by b)

    def pairs(self) -> List[tuple]:
        names = list(self.agents)
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]

    def same_nat(self, a: str, b: str) -> bool:
        return self.agents[a].host.router is self.agents[b].host.router

    def expected_path(self, a: str, b: str) -> str:
        """BRIEF section 6; peers behind one NAT connect over their local addresses;
        a blocked pair falls back to the relay."""
        if self.same_nat(a, b):
            return "direct"
        if frozenset({a, b}) in self.blocked:
            return "relayed"
        cls = frozenset({self.classes[a], self.classes[b]})
        return "relayed" if cls in RELAYED_CLASSES else "direct"

    def start(self) -> None:
        self.started_at = time.monotonic()
        for a in self.agents.values():
            a.start()

    def poll_paths(self) -> Dict[str, tuple]:
        """pair -> (a's path to b, b's path to a) now."""
        def status(agent: PeerAgent) -> dict:
            try:
                return agent.status()
            except (OSError, ValueError):
                return {"peers": []}
        # All at once: each agent answers from its loop, up to ~20 ms later.
        with concurrent.futures.ThreadPoolExecutor(len(self.agents)) as pool:
            statuses = dict(zip(self.agents, pool.map(status, self.agents.values())))
        views: Dict[str, Dict[str, str]] = {}
        for name, st in statuses.items():
            by_key = {p["peer"]: p["path"] for p in st.get("peers", [])}
            views[name] = {other: by_key.get(o.key, "unknown")
                           for other, o in self.agents.items() if other != name}
        return {pair_name(a, b): (views[a][b], views[b][a]) for a, b in self.pairs()}

    def wait_connected(self, timeout: float = 40, settle: float = 1.0) -> bool:
        """Polls every peer's status until every pair shows its expected path on both
        sides (or TIMEOUT).  Records, per pair, the time from start to the moment it
        entered the state it ends in (self.ttc) and that state (self.paths)."""
        entered: Dict[str, float] = {}
        last: Dict[str, tuple] = {}
        deadline = self.started_at + timeout
        all_ok_since = None
        while True:
            now = time.monotonic()
            paths = self.poll_paths()
            for pair, state in paths.items():
                if last.get(pair) != state:
                    last[pair] = state
                    entered[pair] = now
            ok = all(paths[pair_name(a, b)] == (self.expected_path(a, b),) * 2
                     for a, b in self.pairs())
            if ok and all_ok_since is None:
                all_ok_since = now
            if not ok:
                all_ok_since = None
            if (all_ok_since is not None and now - all_ok_since >= settle) or now > deadline:
                break
            time.sleep(0.05)
        self.paths = last
        self.ttc = {pair: entered[pair] - self.started_at for pair in last}
        return all_ok_since is not None

    def report(self) -> str:
        lines = [f"{'pair':10} {'classes':36} {'expected':8} {'got':17} {'time to connect'}"]
        for a, b in self.pairs():
            p = pair_name(a, b)
            cls = f"{self.classes[a]} x {self.classes[b]}"
            if self.same_nat(a, b):
                cls += " (same NAT)"
            if frozenset({a, b}) in self.blocked:
                cls += " (blocked)"
            got = "/".join(self.paths.get(p, ("?", "?")))
            lines.append(f"{p:10} {cls:36} {self.expected_path(a, b):8} {got:17} "
                         f"{self.ttc.get(p, float('nan')):6.2f} s")
        return "\n".join(lines)


def copy_logs(lab: N.Lab, directory: str) -> None:
    """Copy the lab's process logs (and captures) into DIRECTORY."""
    os.makedirs(directory, exist_ok=True)
    for f in os.listdir(lab.tmpdir):
        if f.endswith((".log", ".pcap")):
            shutil.copy(os.path.join(lab.tmpdir, f), directory)

"""natlab: a network-namespace NAT lab for the relay node's end-to-end tests.

Everything runs as root with iproute2 (`ip netns`, veth, bridge), nftables
(`nft`) and conntrack-tools (`conntrack`).  Python standard library only.

Topology (see README.md for the picture)::

    internet namespace: bridge "br0", 203.0.113.1/24 (the "gateway")
      |-- relay node namespace: mgmt0 203.0.113.2/24 (kernel IP, control process)
      |                         dp0   (no kernel IP; DPDK net_af_packet owns it)
      |-- public host namespaces (probe/STUN servers, coturn, ...)
      |-- NAT router namespaces: wan0 203.0.113.x/24, bridge lan0 10.N.0.1/24
             |-- inside host namespaces: eth0 10.N.0.k/24, default via 10.N.0.1

The lab has no link to the machine's own network: traffic can only reach
hosts the lab created.

Typical use::

    with natlab.Lab() as lab:
        stun = lab.add_public_host("stun", ["203.0.113.201"])
        r1 = lab.add_nat("r1", natlab.FULL_CONE)
        a = lab.add_peer("a", r1)
        proc = a.popen(["relay-peer", ...])      # killed at teardown
        wg = lab.wireguard(a, "100.64.0.1/24")

Names: every namespace is "<prefix><pid>-<name>" (prefix "rlab-" by default)
and every WireGuard interface "<prefix><pid>w<n>", so that labs of concurrent
runs never collide and `cleanup_stale()` can recognise the leftovers of a run
whose process is gone, and only those.
"""

from __future__ import annotations

import atexit
import ctypes
import ipaddress
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence

# --------------------------------------------------------------------------
# Constants

FULL_CONE = "full_cone"                      # EIM + endpoint-independent filtering
ADDRESS_RESTRICTED = "address_restricted"    # EIM + address-dependent filtering
PORT_RESTRICTED = "port_restricted"          # EIM + address-and-port-dependent filtering
SYMMETRIC = "symmetric"                      # endpoint-dependent mapping (random port per flow)
NAT_CLASSES = (FULL_CONE, ADDRESS_RESTRICTED, PORT_RESTRICTED, SYMMETRIC)

DEFAULT_PREFIX = "rlab-"
PUBLIC_NET = ipaddress.ip_network("203.0.113.0/24")
GATEWAY_IP = "203.0.113.1"          # the bridge's own address in the internet namespace
RELAY_MGMT_IP = "203.0.113.2"       # default management (control process) address
RELAY_DATAPLANE_IP = "203.0.113.10"  # default data-plane address (owned by DPDK, not the kernel)
WG_SOCKET_DIR = "/var/run/wireguard"
# The attacker host (Lab.add_attacker): its own addresses on the bridge, and a second
# documentation prefix (RFC 5737 TEST-NET-2) it may send from at will, for floods "from
# many sources".  Nothing else in the lab uses either.
ATTACKER_IPS = ("203.0.113.66", "203.0.113.67")
ATTACKER_SOURCES = "198.51.100.0/24"
# DPDK keeps a runtime directory per --file-prefix here (as root; XDG_RUNTIME_DIR is
# ignored then), and leaves it behind.  A lab's DPDK processes should use a file
# prefix starting with "<lab.tag>-" (Lab.dpdk_file_prefix()): teardown and
# cleanup_stale() then remove their directories.
DPDK_RUNTIME_DIR = "/var/run/dpdk"
WG_ENV = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}

# nftables: the names of the lab's own tables inside a router namespace.
NAT_TABLE = "rlab_nat"        # class dependent, replaced by Router.set_class()
FILTER_TABLE = "rlab_filter"  # class independent firewall
BLOCK_TABLE = "rlab_block"    # "drop the punch" switch (raw prerouting, before conntrack)

# Lifetime of a full-cone / address-restricted mapping in the dynamic sets,
# refreshed by every outbound packet (like conntrack's assured UDP timeout).
CONE_MAPPING_TIMEOUT_S = 120

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# Small helpers

def _run(argv: Sequence[str], check: bool = True, input: Optional[str] = None,
         timeout: float = 30, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    p = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise LabError(f"command failed ({p.returncode}): {' '.join(argv)}\n"
                       f"stdout: {p.stdout.strip()}\nstderr: {p.stderr.strip()}")
    return p


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_after_prefix(name: str, prefix: str) -> Optional[int]:
    if not name.startswith(prefix):
        return None
    m = re.match(r"(\d+)", name[len(prefix):])
    return int(m.group(1)) if m else None


def _bridge_mac(n: int) -> str:
    """A fixed MAC for bridge number N (0 = the internet's br0, N = router N's lan0).

    A bridge without an address of its own takes the lowest MAC of its ports and
    changes it when a port with a lower one joins: neighbours that learnt the old
    one by ARP (the data plane caches its gateway's MAC for minutes) then send
    into the void."""
    return "02:00:5e:%02x:%02x:01" % (n >> 8 & 0xff, n & 0xff)


def list_netns() -> List[str]:
    """Names of all named network namespaces (/run/netns)."""
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def require_tools() -> None:
    """Raise LabError naming every missing tool the lab needs."""
    missing = [t for t in ("ip", "nft", "conntrack", "ethtool") if shutil.which(t) is None]
    if missing:
        raise LabError("natlab needs: " + ", ".join(missing) +
                       " (Debian packages iproute2, nftables, conntrack, ethtool)")
    if os.geteuid() != 0:
        raise LabError("natlab needs root")


def unavailable_reason() -> Optional[str]:
    """Why no lab can be built here ("needs root", the missing tools), or None: what a
    test module skips its lab tests for."""
    if os.geteuid() != 0:
        return "needs root"
    try:
        require_tools()
    except LabError as e:
        return str(e)
    return None


# --------------------------------------------------------------------------
# Namespaces

class Namespace:
    """A network namespace created by the lab."""

    def __init__(self, lab: "Lab", name: str, short: str):
        self.lab = lab
        self.name = name      # full name, e.g. "rlab-1234-r1"
        self.short = short    # the lab-local name, e.g. "r1"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- commands ---------------------------------------------------------
    def argv(self, argv: Sequence[str]) -> List[str]:
        """The argv that runs ARGV inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], check: bool = True, input: Optional[str] = None,
            timeout: float = 30, env: Optional[dict] = None) -> subprocess.CompletedProcess:
        """Run a command inside the namespace and wait for it (text output)."""
        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update(env)
        return _run(self.argv(argv), check=check, input=input, timeout=timeout, env=full_env)

    def popen(self, argv: Sequence[str], env: Optional[dict] = None, **kwargs) -> subprocess.Popen:
        """Start a process inside the namespace; the lab kills it at teardown.

        The process gets its own session (process group), so teardown also ends
        its children.  kwargs go to subprocess.Popen (stdout, stderr, ...)."""
        return self.lab._popen(self, argv, env=env, **kwargs)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run(["ip", "-n", self.name, *args], check=check)

    def nft(self, script: str) -> subprocess.CompletedProcess:
        """Apply an nft script (`nft -f -`) in this namespace."""
        return self.run(["nft", "-f", "-"], input=script)

    def nft_list(self) -> str:
        return self.run(["nft", "list", "ruleset"]).stdout

    # -- in-process access ------------------------------------------------
    def call(self, fn: Callable, *args, **kwargs):
        """Call FN in a short-lived thread that has entered this namespace.

        Sockets created there stay in this namespace for their whole life,
        and can then be used from any thread."""
        result: dict = {}

        def body():
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _libc.setns(fd, _CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns {self.name}: {os.strerror(err)}")
                finally:
                    os.close(fd)
                result["value"] = fn(*args, **kwargs)
            except BaseException as e:  # re-raised in the caller's thread
                result["error"] = e

        t = threading.Thread(target=body, name=f"netns-{self.short}")
        t.start()
        t.join()
        if "error" in result:
            raise result["error"]
        return result["value"]

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM,
               proto: int = 0, bind: Optional[tuple] = None) -> socket.socket:
        """A socket that lives in this namespace (optionally bound)."""
        def make():
            s = socket.socket(family, type, proto)
            if bind is not None:
                s.bind(bind)
            return s
        return self.call(make)

    # -- sysctl / conntrack ------------------------------------------------
    def sysctl(self, key: str, value=None) -> str:
        """Read (value None) or write a sysctl of this namespace."""
        path = "/proc/sys/" + key.replace(".", "/")

        def rw():
            if value is not None:
                with open(path, "w") as f:
                    f.write(str(value))
            with open(path) as f:
                return f.read().strip()
        return self.call(rw)

    def udp_conntrack_timeouts(self) -> Dict[str, int]:
        """{'unreplied': s, 'stream': s} of this namespace (defaults 30 and 120)."""
        return {"unreplied": int(self.sysctl("net.netfilter.nf_conntrack_udp_timeout")),
                "stream": int(self.sysctl("net.netfilter.nf_conntrack_udp_timeout_stream"))}

    def set_udp_conntrack_timeouts(self, unreplied: Optional[int] = None,
                                   stream: Optional[int] = None) -> None:
        """Set nf_conntrack_udp_timeout (unreplied) / _stream (assured) here only."""
        if unreplied is not None:
            self.sysctl("net.netfilter.nf_conntrack_udp_timeout", unreplied)
        if stream is not None:
            self.sysctl("net.netfilter.nf_conntrack_udp_timeout_stream", stream)

    def flush_conntrack(self) -> None:
        """Forget every connection-tracking entry (and so every NAT binding) here."""
        # conntrack -F exits 1 when the table was already empty on some versions.
        self.run(["conntrack", "-F"], check=False)

    def conntrack_entries(self, proto: str = "udp") -> List[str]:
        p = self.run(["conntrack", "-L", "-p", proto], check=False)
        return [l for l in p.stdout.splitlines() if l.strip()]

    def addresses(self, ifname: str) -> List[str]:
        out = self.ip("-4", "-o", "addr", "show", "dev", ifname).stdout
        return re.findall(r"inet (\S+)", out)

    def mac(self, ifname: str) -> str:
        out = self.ip("-o", "link", "show", "dev", ifname).stdout
        m = re.search(r"link/ether (\S+)", out)
        return m.group(1) if m else ""


@dataclass
class Veth:
    """One veth end inside a lab namespace, attached to a bridge."""
    ns: Namespace
    name: str                     # interface name inside ns
    peer_name: str                # the bridge-side end's name
    peer_ns: Namespace
    ip: Optional[str] = None      # "a.b.c.d/len" or None when the kernel has no IP on it
    mac: str = ""

    @property
    def address(self) -> Optional[str]:
        return self.ip.split("/")[0] if self.ip else None


class PublicHost(Namespace):
    """A host on "the internet" bridge with one or more public addresses."""
    ips: List[str]
    veth: Veth
    sources: Optional[str] = None   # Lab.add_attacker: a prefix it may send from too


class Host(Namespace):
    """An inside host behind a NAT router."""
    address: str     # LAN address, e.g. "10.3.0.2"
    router: "Router"
    veth: Veth

    @property
    def public_ip(self) -> str:
        return self.router.public_ip


@dataclass
class RelayNode:
    """The relay node's namespace: a kernel-IP management veth for the control
    process and a veth without kernel IP for the DPDK data plane."""
    ns: Namespace
    mgmt: Veth                    # kernel IP, e.g. 203.0.113.2/24
    dataplane: Veth               # no kernel IP, no kernel ARP: DPDK net_af_packet owns it
    dataplane_ip: str             # the address the data plane should claim (not configured in the kernel)
    gateway: str = GATEWAY_IP
    prefix_len: int = PUBLIC_NET.prefixlen

    @property
    def mgmt_ip(self) -> str:
        return self.mgmt.address  # type: ignore[return-value]

    def af_packet_vdev(self, vdev_name: str = "net_af_packet0") -> str:
        """The DPDK --vdev argument for the data-plane veth."""
        return f"{vdev_name},iface={self.dataplane.name}"


# --------------------------------------------------------------------------
# NAT rules

def nat_ruleset(nat_class: str, wan: str = "wan0") -> str:
    """The class-dependent nft table (table ip rlab_nat) of a router.

    All classes map with `masquerade`: Linux keeps the inside source port when
    the resulting tuple is unique, which gives a port-preserving,
    endpoint-independent mapping; `fully-random` picks a new random port per
    conntrack entry, i.e. per destination: a symmetric NAT.

    Filtering of the inbound side: with no dnat rule, only packets matching an
    existing conntrack entry (the exact remote ip:port the inside host sent to)
    come in: port-restricted.  full_cone and address_restricted add
    endpoint-independent / address-dependent filtering with two dynamic sets
    that the outbound path keeps up to date (after source NAT, from the
    conntrack tuples):
        @cone    external port -> inside ip . inside port
        @contact external port . remote ip   (address_restricted only)
    and a prerouting dnat of new inbound UDP on a mapped port to the inside
    endpoint (for any source, or only from a contacted remote IP).
    """
    if nat_class not in NAT_CLASSES:
        raise ValueError(f"unknown NAT class {nat_class!r}; one of {NAT_CLASSES}")
    masq = "masquerade fully-random" if nat_class == SYMMETRIC else "masquerade"
    lines = [f"table ip {NAT_TABLE} {{"]
    if nat_class in (FULL_CONE, ADDRESS_RESTRICTED):
        t = CONE_MAPPING_TIMEOUT_S
        lines += [
            "  map cone { type inet_service : ipv4_addr . inet_service; "
            f"flags dynamic,timeout; timeout {t}s; }}",
        ]
        if nat_class == ADDRESS_RESTRICTED:
            lines += [
                "  set contact { type inet_service . ipv4_addr; "
                f"flags dynamic,timeout; timeout {t}s; }}",
            ]
    lines += ["  chain prerouting {",
              "    type nat hook prerouting priority dstnat; policy accept;"]
    if nat_class == FULL_CONE:
        lines.append(f'    iifname "{wan}" meta l4proto udp dnat ip to udp dport map @cone')
    elif nat_class == ADDRESS_RESTRICTED:
        lines.append(f'    iifname "{wan}" meta l4proto udp udp dport . ip saddr @contact '
                     "dnat ip to udp dport map @cone")
    lines += ["  }",
              "  chain postrouting {",
              "    type nat hook postrouting priority srcnat; policy accept;",
              f'    oifname "{wan}" {masq}',
              "  }"]
    if nat_class in (FULL_CONE, ADDRESS_RESTRICTED):
        # priority 200: after srcnat (100), so the conntrack reply tuple holds the
        # external port.  Only flows the inside host started (original direction).
        lines += ["  chain track {",
                  "    type filter hook postrouting priority 200; policy accept;",
                  f'    oifname "{wan}" meta l4proto udp ct direction original ct status snat '
                  "update @cone { ct reply proto-dst : ct original ip saddr . ct original proto-src }"]
        if nat_class == ADDRESS_RESTRICTED:
            lines.append(f'    oifname "{wan}" meta l4proto udp ct direction original ct status snat '
                         "update @contact { ct reply proto-dst . ip daddr }")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def filter_ruleset(wan: str = "wan0", lan: str = "lan0") -> str:
    """The class-independent firewall of a router (table inet rlab_filter).

    Unsolicited inbound is dropped, as a home router's firewall does: in the
    forward chain (anything not established/related and not dnat-ed by the
    cone rules) and in the input chain (new packets to the router's own
    public address that no mapping claims).  Dropped packets never create a
    conntrack entry, so a peer's early punch packet cannot clash with the
    inside host's own later packet to that peer (which would then leave on a
    random new port)."""
    return f"""table inet {FILTER_TABLE} {{
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname "{lan}" oifname "{wan}" accept
    iifname "{wan}" oifname "{lan}" ct status dnat accept
    counter drop
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "{wan}" ct state established,related accept
    iifname "{wan}" icmp type echo-request accept
    iifname "{wan}" counter drop
  }}
}}
"""


def block_ruleset(wan: str = "wan0") -> str:
    """table ip rlab_block: drop inbound UDP from listed sources before conntrack."""
    return f"""table ip {BLOCK_TABLE} {{
  set blocked {{ type ipv4_addr; }}
  chain prerouting {{
    type filter hook prerouting priority raw; policy accept;
    iifname "{wan}" meta l4proto udp ip saddr @blocked counter drop
  }}
}}
"""


class Router(Namespace):
    """A NAT router: wan0 on the internet bridge, bridge lan0 for its inside hosts."""
    public_ip: str
    lan_net: ipaddress.IPv4Network
    lan_ip: str
    nat_class: str
    wan: Veth
    hosts: List[Host]
    wan_if = "wan0"
    lan_if = "lan0"

    def set_class(self, nat_class: str, flush: bool = True) -> None:
        """Replace the NAT class at run time.

        flush=True also flushes conntrack: a NAT binding lives in its conntrack
        entry, so without it every existing flow keeps the mapping of the old
        class (e.g. its fully-random port) for as long as it keeps sending
        (30 s unreplied / 120 s assured idle timeout)."""
        script = f"delete table ip {NAT_TABLE}\n" + nat_ruleset(nat_class, self.wan_if)
        self.nft(script)
        self.nat_class = nat_class
        if flush:
            self.flush_conntrack()

    def reset_state(self) -> None:
        """Forget all mappings: conntrack entries and the cone sets."""
        if self.nat_class in (FULL_CONE, ADDRESS_RESTRICTED):
            script = f"flush map ip {NAT_TABLE} cone\n"
            if self.nat_class == ADDRESS_RESTRICTED:
                script += f"flush set ip {NAT_TABLE} contact\n"
            self.nft(script)
        self.flush_conntrack()

    def block_udp_from(self, *ips: str) -> None:
        """Drop inbound UDP from these source addresses (before conntrack)."""
        for ip in ips:
            self.run(["nft", "add", "element", "ip", BLOCK_TABLE, "blocked", "{", ip, "}"])

    def unblock_udp_from(self, *ips: str) -> None:
        for ip in ips:
            self.run(["nft", "delete", "element", "ip", BLOCK_TABLE, "blocked", "{", ip, "}"],
                     check=False)

    def blocked(self) -> List[str]:
        out = self.run(["nft", "list", "set", "ip", BLOCK_TABLE, "blocked"]).stdout
        m = re.search(r"elements = \{([^}]*)\}", out)
        return [e.strip() for e in m.group(1).split(",")] if m else []

    def cone_mappings(self) -> str:
        if self.nat_class not in (FULL_CONE, ADDRESS_RESTRICTED):
            return ""
        return self.run(["nft", "list", "map", "ip", NAT_TABLE, "cone"]).stdout


# --------------------------------------------------------------------------
# WireGuard (wireguard-go, or the kernel module where the kernel has it)

_kernel_wireguard: Optional[bool] = None


def kernel_wireguard_available() -> bool:
    """Whether this kernel can make a WireGuard link (tried once, in a throw-away
    namespace so that nothing of the host's is touched)."""
    global _kernel_wireguard
    if _kernel_wireguard is None:
        ns = f"{DEFAULT_PREFIX}{os.getpid()}-kwgprobe"
        _run(["ip", "netns", "add", ns], check=False)
        try:
            p = _run(["ip", "-n", ns, "link", "add", "wgprobe", "type", "wireguard"], check=False)
            _kernel_wireguard = p.returncode == 0
        finally:
            _run(["ip", "netns", "del", ns], check=False)
    return _kernel_wireguard


class WgInterface:
    """A WireGuard interface in a lab namespace: wireguard-go (PROC is its process)
    or the kernel module (PROC is None; deleting the namespace deletes the link).
    Both are driven by the same wg(8) calls."""

    def __init__(self, lab: "Lab", ns: Namespace, name: str, private_key: str,
                 public_key: str, listen_port: int, address: Optional[str],
                 proc: Optional[subprocess.Popen]):
        self.lab = lab
        self.ns = ns
        self.name = name
        self.private_key = private_key
        self.public_key = public_key
        self.listen_port = listen_port
        self.address = address          # "100.64.0.N/24" or None
        self.proc = proc

    def __repr__(self) -> str:
        return f"<WgInterface {self.name} in {self.ns.name} port {self.listen_port}>"

    @property
    def socket_path(self) -> str:
        return os.path.join(WG_SOCKET_DIR, self.name + ".sock")

    @property
    def tunnel_ip(self) -> Optional[str]:
        return self.address.split("/")[0] if self.address else None

    def wg(self, *args: str, input: Optional[str] = None) -> str:
        return self.ns.run(["wg", *args], input=input).stdout

    def set_peer(self, public_key: str, endpoint: Optional[str] = None,
                 allowed_ips: Iterable[str] = (), persistent_keepalive: Optional[int] = None,
                 preshared_key: Optional[str] = None) -> None:
        """`wg set IF peer KEY ...`: add a peer or change it (endpoint, keepalive)."""
        argv = ["set", self.name, "peer", public_key]
        if endpoint:
            argv += ["endpoint", endpoint]
        ips = list(allowed_ips)
        if ips:
            argv += ["allowed-ips", ",".join(ips)]
        if persistent_keepalive is not None:
            argv += ["persistent-keepalive", str(persistent_keepalive)]
        inp = None
        if preshared_key:
            argv += ["preshared-key", "/dev/stdin"]
            inp = preshared_key + "\n"
        self.wg(*argv, input=inp)

    add_peer = set_peer

    def remove_peer(self, public_key: str) -> None:
        self.wg("set", self.name, "peer", public_key, "remove")

    def latest_handshakes(self) -> Dict[str, int]:
        """{peer public key: unix time of the last handshake (0 = never)}."""
        out = self.wg("show", self.name, "latest-handshakes")
        res = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:
                res[parts[0]] = int(parts[1])
        return res

    def endpoints(self) -> Dict[str, str]:
        out = self.wg("show", self.name, "endpoints")
        return {p[0]: p[1] for p in (l.split() for l in out.splitlines()) if len(p) == 2}

    def show(self) -> str:
        return self.wg("show", self.name)

    def wait_handshake(self, public_key: str, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.latest_handshakes().get(public_key, 0) > 0:
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        self.lab._stop_proc(self.proc)
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass


def wg_genkey() -> str:
    return _run(["wg", "genkey"]).stdout.strip()


def wg_pubkey(private_key: str) -> str:
    return _run(["wg", "pubkey"], input=private_key + "\n").stdout.strip()


# --------------------------------------------------------------------------
# The lab

_live_labs: "List[Lab]" = []
_live_lock = threading.RLock()
_handlers_installed = False
_previous_handlers: dict = {}
_teardowns_running = 0        # teardowns in progress in this process
_handling_signal = False      # _on_signal is tearing down
_deferred_signals: List[int] = []


def _teardown_all() -> None:
    with _live_lock:
        # Only the process that built a lab tears it down (not a forked child).
        labs = [lab for lab in _live_labs if lab.pid == os.getpid()]
    for lab in labs:
        try:
            lab.teardown()
        except Exception:
            pass


def _on_signal(signum, frame):
    global _handling_signal
    if _teardowns_running or _handling_signal:
        # A second signal (Ctrl-C reaches the whole process group; a supervisor may add
        # its own SIGTERM) while a teardown runs: dying now would leave half the lab
        # behind.  The teardown finishes first; then the signal takes effect.
        _deferred_signals.append(signum)
        return
    if _live_labs and all(lab.pid != os.getpid() for lab in _live_labs):
        pass  # a forked child that inherited the handler: leave the parent's labs alone
    else:
        _handling_signal = True
        try:
            _teardown_all()
        finally:
            _handling_signal = False
            # This signal's own effect below covers repeats of it; another one (SIGTERM
            # after an ignored SIGINT, say) is delivered again once this one is handled.
            others = [s for s in _deferred_signals if s != signum]
            _deferred_signals.clear()
        if others and _previous_handlers.get(signum) == signal.SIG_IGN:
            os.kill(os.getpid(), others[0])
    prev = _previous_handlers.get(signum)
    if callable(prev):
        prev(signum, frame)
    elif prev == signal.SIG_IGN:
        return
    else:  # SIG_DFL (or unknown): die of the same signal
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_teardown_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        _previous_handlers[sig] = signal.getsignal(sig)
        signal.signal(sig, _on_signal)


class Lab:
    """The NAT lab.  A context manager: teardown runs on exit, on SIGINT/SIGTERM
    and at interpreter exit."""

    def __init__(self, prefix: str = DEFAULT_PREFIX, clean_stale: bool = True,
                 handle_signals: bool = True):
        require_tools()
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,5}", prefix):
            raise ValueError("prefix: 1-6 characters [a-z0-9-], starting with a letter")
        self.prefix = prefix
        self.pid = os.getpid()
        self.tag = f"{prefix}{self.pid}"       # common start of every name
        if len(self.tag) + 2 > 15:
            raise ValueError("prefix too long for interface names")
        self.namespaces: List[Namespace] = []
        self.processes: List[subprocess.Popen] = []
        self.wg_interfaces: List[WgInterface] = []
        self.routers: List[Router] = []
        self._wg_names: List[str] = []
        self._torn_down = False
        self._lock = threading.RLock()
        self._bridge_port_seq = 0
        self._public_used = {GATEWAY_IP}
        self._router_seq = 0
        self._wg_seq = 0
        self.tmpdir = tempfile.mkdtemp(prefix=f"{self.tag}-")
        if clean_stale:
            cleanup_stale(prefix)
        with _live_lock:
            _live_labs.append(self)
        if handle_signals:
            _install_handlers()
        try:
            self.internet = self._new_ns("inet", Namespace)
            self.internet.ip("link", "add", "br0", "address", _bridge_mac(0), "type", "bridge",
                             "stp_state", "0", "forward_delay", "0")
            self.internet.ip("addr", "add", f"{GATEWAY_IP}/{PUBLIC_NET.prefixlen}", "dev", "br0")
            self.internet.ip("link", "set", "br0", "up")
        except BaseException:
            self.teardown()
            raise

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    # -- naming / allocation -------------------------------------------------
    def ns_name(self, short: str) -> str:
        return f"{self.tag}-{short}"

    def alloc_public_ip(self, start: int = 20) -> str:
        """The next free address of 203.0.113.0/24 from host number START up."""
        for n in range(start, 255):
            ip = str(PUBLIC_NET.network_address + n)
            if ip not in self._public_used:
                self._public_used.add(ip)
                return ip
        raise LabError("public addresses exhausted")

    def _claim_public(self, ip: str) -> str:
        if ipaddress.ip_address(ip) not in PUBLIC_NET:
            raise ValueError(f"{ip} is not in {PUBLIC_NET}")
        if ip in self._public_used:
            raise ValueError(f"{ip} already used in this lab")
        self._public_used.add(ip)
        return ip

    def _new_ns(self, short: str, cls):
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", short):
            raise ValueError(f"bad namespace name {short!r}")
        name = self.ns_name(short)
        if any(n.name == name for n in self.namespaces):
            raise ValueError(f"namespace {short!r} exists already")
        ns = cls(self, name, short)
        with self._lock:
            if self._torn_down:
                raise LabError("lab is torn down")
            self.namespaces.append(ns)   # recorded before creation: teardown sees it
        _run(["ip", "netns", "add", name])
        # Quiet, deterministic namespaces: no IPv6 (no DAD, no router
        # solicitations on the wire), bridged frames bypass netfilter (the
        # kernel here has br_netfilter with bridge-nf-call-iptables=1 in every
        # new namespace), loopback up.
        ns.run(["sh", "-c",
                "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1;"
                "for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e $f ] && echo 0 > $f; done;"
                "ip link set lo up"])
        return ns

    def _veth_to_bridge(self, ns: Namespace, ifname: str, ip: Optional[str],
                        bridge_ns: Namespace, bridge: str) -> Veth:
        self._bridge_port_seq += 1
        peer = f"p{self._bridge_port_seq}-{ns.short}"[:15]
        _run(["ip", "link", "add", ifname, "netns", ns.name, "type", "veth",
              "peer", "name", peer, "netns", bridge_ns.name])
        bridge_ns.ip("link", "set", peer, "master", bridge)
        # TX checksum offload off on both ends: otherwise packets leave with a
        # partial checksum that a DPDK net_af_packet port sees as wrong.
        ns.run(["ethtool", "-K", ifname, "tx", "off"])
        bridge_ns.run(["ethtool", "-K", peer, "tx", "off"])
        if ip:
            ns.ip("addr", "add", ip, "dev", ifname)
        else:
            # No kernel address: the kernel must not answer ARP on it either.
            ns.ip("link", "set", ifname, "arp", "off")
        bridge_ns.ip("link", "set", peer, "up")
        ns.ip("link", "set", ifname, "up")
        return Veth(ns=ns, name=ifname, peer_name=peer, peer_ns=bridge_ns, ip=ip,
                    mac=ns.mac(ifname))

    # -- building blocks -------------------------------------------------------
    def add_namespace(self, name: str) -> Namespace:
        """An empty namespace (loopback up) to build on."""
        return self._new_ns(name, Namespace)

    def attach(self, ns: Namespace, ifname: str, ip: Optional[str] = None,
               default_route: bool = False) -> Veth:
        """A veth end named IFNAME in NS attached to the internet bridge.

        ip: "203.0.113.x" or "203.0.113.x/24" for a kernel address, or None for
        a veth the kernel holds no address on (and does not ARP on): the hook
        for a DPDK net_af_packet data plane."""
        cidr = None
        if ip:
            addr = ip.split("/")[0]
            self._claim_public(addr)
            cidr = ip if "/" in ip else f"{ip}/{PUBLIC_NET.prefixlen}"
        v = self._veth_to_bridge(ns, ifname, cidr, self.internet, "br0")
        if default_route and ip:
            ns.ip("route", "replace", "default", "via", GATEWAY_IP, "dev", ifname)
        return v

    def add_public_host(self, name: str, ips: Optional[Sequence[str]] = None,
                        ifname: str = "eth0") -> PublicHost:
        """A host on the internet with one veth carrying every address in IPS."""
        ips = list(ips) if ips else [self.alloc_public_ip(200)]
        h = self._new_ns(name, PublicHost)
        h.veth = self.attach(h, ifname, ips[0], default_route=True)
        for extra in ips[1:]:
            self._claim_public(extra)
            h.ip("addr", "add", f"{extra}/{PUBLIC_NET.prefixlen}", "dev", ifname)
        h.ips = ips
        return h

    def add_attacker(self, name: str = "attacker", ips: Sequence[str] = ATTACKER_IPS,
                     sources: str = ATTACKER_SOURCES) -> PublicHost:
        """A host on the internet that may also send from any address of SOURCES (a
        prefix outside the bridge's /24): the prefix is local to it (an AnyIP route on
        lo, so a socket binds to any of its addresses) and the internet namespace routes
        it to the host's first address, so answers to those sources come back to it.
        Its own addresses are IPS (on eth0, as add_public_host)."""
        net = ipaddress.ip_network(sources)
        if net.overlaps(PUBLIC_NET):
            raise ValueError(f"{sources} overlaps the bridge's {PUBLIC_NET}")
        h = self.add_public_host(name, list(ips))
        h.ip("route", "add", "local", str(net), "dev", "lo")
        self.internet.ip("route", "add", str(net), "via", h.ips[0], "dev", "br0")
        h.sources = str(net)
        return h

    def add_relay(self, name: str = "relay", mgmt_ip: str = RELAY_MGMT_IP,
                  dataplane_ip: str = RELAY_DATAPLANE_IP, mgmt_if: str = "mgmt0",
                  dataplane_if: str = "dp0") -> RelayNode:
        """The relay node's namespace: MGMT_IF with MGMT_IP (kernel), and
        DATAPLANE_IF without kernel IP for DPDK (DATAPLANE_IP is reserved for it).

        arp_ignore=1 in this namespace, so the kernel answers ARP for the
        management address only on the management veth."""
        ns = self._new_ns(name, Namespace)
        ns.sysctl("net.ipv4.conf.all.arp_ignore", 1)
        ns.sysctl("net.ipv4.conf.all.arp_announce", 2)
        mgmt = self.attach(ns, mgmt_if, mgmt_ip, default_route=True)
        self._claim_public(dataplane_ip)
        dp = self.attach(ns, dataplane_if, None)
        return RelayNode(ns=ns, mgmt=mgmt, dataplane=dp, dataplane_ip=dataplane_ip)

    def add_nat(self, name: str, nat_class: str, public_ip: Optional[str] = None,
                udp_timeouts: Optional[Dict[str, int]] = None) -> Router:
        """A NAT router of NAT_CLASS with a public address on the bridge and an
        empty LAN 10.N.0.0/24 (N = 1, 2, ...; the router is 10.N.0.1)."""
        if nat_class not in NAT_CLASSES:
            raise ValueError(f"unknown NAT class {nat_class!r}")
        self._router_seq += 1
        n = self._router_seq
        if n > 250:
            raise LabError("too many routers")
        r = self._new_ns(name, Router)
        r.public_ip = public_ip or self.alloc_public_ip(100)
        r.lan_net = ipaddress.ip_network(f"10.{n}.0.0/24")
        r.lan_ip = f"10.{n}.0.1"
        r.nat_class = nat_class
        r.hosts = []
        r._host_seq = 1
        if public_ip:
            self._claim_public(public_ip)
        r.wan = self._veth_to_bridge(r, r.wan_if, f"{r.public_ip}/{PUBLIC_NET.prefixlen}",
                                     self.internet, "br0")
        r.ip("link", "add", r.lan_if, "address", _bridge_mac(n), "type", "bridge",
             "stp_state", "0", "forward_delay", "0")
        r.ip("addr", "add", f"{r.lan_ip}/24", "dev", r.lan_if)
        r.ip("link", "set", r.lan_if, "up")
        r.ip("route", "replace", "default", "via", GATEWAY_IP, "dev", r.wan_if)
        r.sysctl("net.ipv4.ip_forward", 1)
        r.nft(nat_ruleset(nat_class, r.wan_if) + filter_ruleset(r.wan_if, r.lan_if) +
              block_ruleset(r.wan_if))
        if udp_timeouts:
            r.set_udp_conntrack_timeouts(**udp_timeouts)
        self.routers.append(r)
        return r

    def add_peer(self, name: str, router: Router, ip: Optional[str] = None) -> Host:
        """An inside host on ROUTER's LAN (10.N.0.2, .3, ...), default route via the router."""
        router._host_seq += 1
        addr = ip or str(router.lan_net.network_address + router._host_seq)
        h = self._new_ns(name, Host)
        h.address = addr
        h.router = router
        h.veth = self._veth_to_bridge(h, "eth0", f"{addr}/24", router, router.lan_if)
        h.ip("route", "replace", "default", "via", router.lan_ip, "dev", "eth0")
        router.hosts.append(h)
        return h

    def add_shared_nat(self, name: str, peers: Sequence[str],
                       nat_class: str = PORT_RESTRICTED) -> Router:
        """One router with several inside hosts on one LAN."""
        r = self.add_nat(name, nat_class)
        for p in peers:
            self.add_peer(p, r)
        return r

    def block_punch(self, a: Router, b: Router) -> None:
        """Make routers A and B drop every UDP packet from each other's public
        address: a direct path between their peers can never form, while both
        still reach the relay."""
        a.block_udp_from(b.public_ip)
        b.block_udp_from(a.public_ip)

    def unblock_punch(self, a: Router, b: Router) -> None:
        a.unblock_udp_from(b.public_ip)
        b.unblock_udp_from(a.public_ip)

    # -- processes ---------------------------------------------------------
    def _popen(self, ns: Namespace, argv: Sequence[str], env: Optional[dict] = None,
               **kwargs) -> subprocess.Popen:
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        with self._lock:
            if self._torn_down:
                raise LabError("lab is torn down")
            p = subprocess.Popen(ns.argv(argv), env=full_env, start_new_session=True, **kwargs)
            self.processes.append(p)
        return p

    def _stop_proc(self, p: subprocess.Popen, grace: float = 2.0) -> None:
        self._stop_procs([p], grace)

    @staticmethod
    def _stop_procs(procs: Sequence[subprocess.Popen], grace: float = 2.0) -> None:
        live = [p for p in procs if p.poll() is None]
        for p in live:
            try:
                os.killpg(p.pid, signal.SIGTERM)   # its own session: pgid == pid
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for p in live:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in procs:
            # Children of the process may outlive it; end the group either way.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(2)
            except subprocess.TimeoutExpired:
                pass

    # -- WireGuard ---------------------------------------------------------
    def wireguard(self, ns: Namespace, address: Optional[str] = None, listen_port: int = 51820,
                  private_key: Optional[str] = None, ifname: Optional[str] = None,
                  mtu: Optional[int] = None, timeout: float = 5,
                  kernel: bool = False) -> WgInterface:
        """Make a WireGuard interface in NS (wireguard-go, or with KERNEL the kernel
        module's link), give it a private key (generated if None), LISTEN_PORT and the
        tunnel ADDRESS ("100.64.0.N/24"), and bring it up.  Peers are added with
        WgInterface.set_peer()."""
        self._wg_seq += 1
        name = ifname or f"{self.tag}w{self._wg_seq}"
        if len(name) > 15:
            raise ValueError(f"interface name {name!r} too long")
        proc: Optional[subprocess.Popen] = None
        if kernel:
            if not kernel_wireguard_available():
                raise LabError("this kernel has no WireGuard module")
            ns.ip("link", "add", name, "type", "wireguard")
        else:
            proc = self._start_wireguard_go(ns, name, timeout)
        priv = private_key or wg_genkey()
        pub = wg_pubkey(priv)
        ns.run(["wg", "set", name, "private-key", "/dev/stdin", "listen-port", str(listen_port)],
               input=priv + "\n")
        if address:
            ns.ip("addr", "add", address, "dev", name)
        if mtu:
            ns.ip("link", "set", name, "mtu", str(mtu))
        ns.ip("link", "set", name, "up")
        wg = WgInterface(self, ns, name, priv, pub, listen_port, address, proc)
        self.wg_interfaces.append(wg)
        return wg

    def _start_wireguard_go(self, ns: Namespace, name: str, timeout: float) -> subprocess.Popen:
        sock = os.path.join(WG_SOCKET_DIR, name + ".sock")
        if os.path.exists(sock):
            raise LabError(f"{sock} exists: another wireguard-go uses the name {name}")
        self._wg_names.append(name)
        log = open(os.path.join(self.tmpdir, f"{name}.log"), "w")
        proc = self._popen(ns, ["wireguard-go", "-f", name], env=WG_ENV,
                           stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while not os.path.exists(sock):
            if proc.poll() is not None:
                raise LabError(f"wireguard-go {name} exited ({proc.returncode}): " +
                               open(os.path.join(self.tmpdir, f"{name}.log")).read())
            if time.monotonic() > deadline:
                raise LabError(f"wireguard-go {name}: no control socket after {timeout}s")
            time.sleep(0.02)
        return proc

    # -- teardown ----------------------------------------------------------
    def teardown(self) -> None:
        """Kill the lab's processes, delete its namespaces (and so its veths),
        remove its WireGuard sockets and temp files.  Idempotent."""
        global _teardowns_running
        with self._lock:
            if self._torn_down or os.getpid() != self.pid:
                return
            self._torn_down = True
            with _live_lock:
                _teardowns_running += 1
        try:
            self._stop_procs(self.processes)
            for ns in reversed(self.namespaces):
                if os.path.exists(f"/run/netns/{ns.name}"):
                    # Anything still inside (started by hand through `ip netns
                    # exec` from a lab process) is ours too.
                    _kill_ns_pids(ns.name)
                    _run(["ip", "netns", "del", ns.name], check=False)
            for name in self._wg_names:
                try:
                    os.unlink(os.path.join(WG_SOCKET_DIR, name + ".sock"))
                except FileNotFoundError:
                    pass
            _remove_dpdk_dirs(self.tag)
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        finally:
            with _live_lock:
                if self in _live_labs:
                    _live_labs.remove(self)
            with _live_lock:
                _teardowns_running -= 1
            if _deferred_signals and not _teardowns_running and not _handling_signal:
                signum = _deferred_signals[0]
                _deferred_signals.clear()
                os.kill(os.getpid(), signum)   # now it may take effect

    def dpdk_file_prefix(self, name: str = "dp") -> str:
        """A DPDK --file-prefix whose runtime directory teardown removes."""
        return f"{self.tag}-{name}"


def _remove_dpdk_dirs(tag: str) -> List[str]:
    """Remove DPDK runtime directories <DPDK_RUNTIME_DIR>/<tag>-*."""
    removed = []
    try:
        names = os.listdir(DPDK_RUNTIME_DIR)
    except FileNotFoundError:
        return removed
    for f in names:
        if f.startswith(tag + "-"):
            shutil.rmtree(os.path.join(DPDK_RUNTIME_DIR, f), ignore_errors=True)
            removed.append(os.path.join(DPDK_RUNTIME_DIR, f))
    return removed


def _kill_ns_pids(ns_name: str) -> List[int]:
    p = _run(["ip", "netns", "pids", ns_name], check=False)
    pids = [int(x) for x in p.stdout.split() if x.isdigit() and int(x) != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if pids:
        time.sleep(0.1)
    return pids


def cleanup_stale(prefix: str = DEFAULT_PREFIX) -> List[str]:
    """Remove what a crashed lab run left behind: namespaces "<prefix><pid>-*",
    WireGuard sockets "<prefix><pid>w*.sock" and DPDK runtime directories
    "<prefix><pid>-*" whose PID no longer runs,
    after killing the processes still inside those namespaces.  Labs of live
    processes (a concurrent run) and anything not named so are left alone.
    Returns what it removed."""
    removed = []
    for name in list_netns():
        pid = _pid_after_prefix(name, prefix)
        if pid is None or not name[len(prefix):].startswith(f"{pid}-") or _pid_alive(pid):
            continue
        _kill_ns_pids(name)
        _run(["ip", "netns", "del", name], check=False)
        removed.append(name)
    try:
        socks = os.listdir(WG_SOCKET_DIR)
    except FileNotFoundError:
        socks = []
    for f in socks:
        pid = _pid_after_prefix(f, prefix)
        if pid is None or not re.fullmatch(re.escape(prefix) + r"\d+w\d+\.sock", f) or _pid_alive(pid):
            continue
        try:
            os.unlink(os.path.join(WG_SOCKET_DIR, f))
            removed.append(os.path.join(WG_SOCKET_DIR, f))
        except FileNotFoundError:
            pass
    try:
        dpdk = os.listdir(DPDK_RUNTIME_DIR)
    except FileNotFoundError:
        dpdk = []
    for f in dpdk:
        pid = _pid_after_prefix(f, prefix)
        if pid is None or not f[len(prefix):].startswith(f"{pid}-") or _pid_alive(pid):
            continue
        shutil.rmtree(os.path.join(DPDK_RUNTIME_DIR, f), ignore_errors=True)
        removed.append(os.path.join(DPDK_RUNTIME_DIR, f))
    tmp = tempfile.gettempdir()
    for f in os.listdir(tmp):
        pid = _pid_after_prefix(f, prefix)
        if pid is None or not f[len(prefix):].startswith(f"{pid}-") or _pid_alive(pid):
            continue
        shutil.rmtree(os.path.join(tmp, f), ignore_errors=True)
        removed.append(os.path.join(tmp, f))
    return removed


# --------------------------------------------------------------------------
# UDP helpers for tests (plain sockets, no external tools)

class Reflector:
    """A UDP server in a namespace that answers every datagram with the
    source address it saw ("ip:port"), like a STUN Binding response."""

    def __init__(self, ns: Namespace, ip: str, port: int):
        self.ns = ns
        self.addr = (ip, port)
        self.sock = ns.socket(bind=(ip, port))
        self.sock.settimeout(0.2)
        self.seen: List[tuple] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"reflector-{ip}:{port}")
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                data, src = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            self.seen.append(src)
            try:
                self.sock.sendto(f"{src[0]}:{src[1]}".encode(), src)
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


def reflexive_address(sock: socket.socket, server: tuple, timeout: float = 1.0,
                      tries: int = 3) -> tuple:
    """Ask a Reflector at SERVER which ip:port SOCK's packets come from."""
    old = sock.gettimeout()
    sock.settimeout(timeout / tries)
    try:
        for _ in range(tries):
            sock.sendto(b"probe", server)
            try:
                while True:
                    data, src = sock.recvfrom(2048)
                    if src == server:
                        ip, port = data.decode().rsplit(":", 1)
                        return ip, int(port)
            except socket.timeout:
                continue
        raise LabError(f"no answer from reflector {server}")
    finally:
        sock.settimeout(old)


@dataclass
class PunchResult:
    a_got: bool
    b_got: bool
    a_from: Optional[tuple] = None   # where A's first packet from B came from
    b_from: Optional[tuple] = None
    seconds: float = 0.0

    @property
    def direct(self) -> bool:
        return self.a_got and self.b_got


def udp_punch(sock_a: socket.socket, target_a: tuple, sock_b: socket.socket,
              target_b: tuple, timeout: float = 2.0, interval: float = 0.05) -> PunchResult:
    """Simultaneous UDP hole punch between two sockets, WireGuard-style.

    Each side sends to the other's advertised address every INTERVAL; when it
    receives a packet from the other side it replies to *that packet's source*
    from then on (WireGuard roams to the source of an authenticated packet;
    here "authenticated" = the payload names the other side).  Success when
    both sides received at least one packet from the other within TIMEOUT."""
    got = {"a": None, "b": None}
    start = time.monotonic()
    deadline = start + timeout
    done = threading.Event()

    def side(me: str, other: str, sock: socket.socket, target: tuple):
        sock.settimeout(interval)
        tgt = target
        last_send = 0.0
        while time.monotonic() < deadline and not done.is_set():
            now = time.monotonic()
            if now - last_send >= interval:
                try:
                    sock.sendto(f"punch {me}".encode(), tgt)
                except OSError:
                    pass
                last_send = now
            try:
                data, src = sock.recvfrom(2048)
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                continue
            if data == f"punch {other}".encode():
                if got[me] is None:
                    got[me] = src
                tgt = src  # roam
                try:
                    sock.sendto(f"punch {me}".encode(), tgt)
                except OSError:
                    pass
                if got[other] is not None:
                    done.set()
        # keep answering briefly so the other side sees our reply
        if got[me] is not None:
            try:
                sock.sendto(f"punch {me}".encode(), tgt)
            except OSError:
                pass

    ta = threading.Thread(target=side, args=("a", "b", sock_a, target_a))
    tb = threading.Thread(target=side, args=("b", "a", sock_b, target_b))
    ta.start(); tb.start(); ta.join(); tb.join()
    return PunchResult(a_got=got["a"] is not None, b_got=got["b"] is not None,
                       a_from=got["a"], b_from=got["b"], seconds=time.monotonic() - start)


def recv_any(sock: socket.socket, timeout: float) -> Optional[tuple]:
    """(data, source) of the first datagram within TIMEOUT, else None."""
    sock.settimeout(timeout)
    try:
        return sock.recvfrom(2048)
    except socket.timeout:
        return None


# --------------------------------------------------------------------------
# Packet captures (tcpdump) for tests

class Capture:
    """tcpdump -i IFNAME in NS with the BPF FILTER, written to <lab tmpdir>/NAME.pcap;
    started by the constructor (it returns once tcpdump has opened the file), ended by
    stop() or lab teardown.  SNAPLEN 0 keeps whole packets."""

    def __init__(self, ns: Namespace, ifname: str, bpf: str, name: str, snaplen: int = 0,
                 timeout: float = 5.0):
        self.ns = ns
        self.path = os.path.join(ns.lab.tmpdir, f"{name}.pcap")
        self.proc = ns.popen(["tcpdump", "-i", ifname, "-n", "-U", "-s", str(snaplen), "-w",
                              self.path, bpf],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.path):
            if self.proc.poll() is not None:
                raise LabError(f"tcpdump {name} exited: {self.proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise LabError(f"tcpdump {name} did not start within {timeout}s")
            time.sleep(0.05)
        time.sleep(0.3)   # the file exists before the filter is attached

    def stop(self) -> "Capture":
        self.ns.lab._stop_proc(self.proc)
        return self

    def packets(self) -> List["Packet"]:
        return read_pcap(self.path)


@dataclass
class Packet:
    """One captured Ethernet frame; the IPv4/UDP fields when it is one (else None)."""
    time: float
    frame: bytes
    src: Optional[str] = None
    dst: Optional[str] = None
    proto: Optional[int] = None
    ip_len: int = 0                  # IPv4 total length
    sport: Optional[int] = None      # UDP
    dport: Optional[int] = None
    payload: bytes = b""            # UDP payload (as far as captured)


def read_pcap(path: str) -> List[Packet]:
    """The frames of a classic pcap file (Ethernet link type), IPv4/UDP decoded."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        pkt = Packet(time=sec + frac / (1e9 if nano else 1e6), frame=frame)
        if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
            ip = frame[14:]
            ihl = (ip[0] & 0x0f) * 4
            pkt.src = socket.inet_ntoa(ip[12:16])
            pkt.dst = socket.inet_ntoa(ip[16:20])
            pkt.proto = ip[9]
            pkt.ip_len = struct.unpack(">H", ip[2:4])[0]
            if pkt.proto == 17 and len(ip) >= ihl + 8:
                pkt.sport, pkt.dport = struct.unpack(">HH", ip[ihl:ihl + 4])
                pkt.payload = ip[ihl + 8:pkt.ip_len]
        out.append(pkt)
    return out

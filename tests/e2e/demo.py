#!/usr/bin/env python3
"""make demo: the relay node and three peers behind NATs of different classes.

    sudo make demo          (or: sudo python3 tests/e2e/demo.py --build-dir build)

Builds a NAT lab (tests/e2e/natlab.py) with the relay node (relay-dataplane on
DPDK net_af_packet, relay-control) and three peers, each running wireguard-go
and relay-peer behind its own NAT router:

    a  full cone          a-b: direct   (full cone x port-restricted)
    b  port-restricted    b-c: relayed  (port-restricted x symmetric, BRIEF section 6)
    c  symmetric          a-c: direct   (full cone x symmetric)

It shows `relay-peer status` of every peer, the relay's sessions, and the data
plane's counters while a direct and a relayed pair ping each other, then tears
the lab down (also on Ctrl-C or an error).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import natlab as N  # noqa: E402
import relaylab as R  # noqa: E402

PINGS = 10


def say(text: str = "") -> None:
    print(text, flush=True)


def step(text: str) -> None:
    say(f"\n=== {text}")


def main() -> int:
    ap = argparse.ArgumentParser(description="the relay node's demo in a NAT lab")
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "..", "build"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        say("demo: needs root (network namespaces, nftables, DPDK): sudo make demo")
        return 1
    N.require_tools()
    bins = R.Binaries(args.build_dir)
    if bins.missing():
        say("demo: not built: " + ", ".join(bins.missing()) + " (make build)")
        return 1

    with N.Lab() as lab:
        step("Relay node: relay-dataplane (DPDK net_af_packet on dp0, --no-huge) and relay-control")
        mesh = R.Mesh(lab, bins, [("a", N.FULL_CONE), ("b", N.PORT_RESTRICTED),
                                  ("c", N.SYMMETRIC)])
        node = mesh.node
        say(f"data plane: relay address {node.relay_ip}, {node.relay.af_packet_vdev()}")
        say(f"control:    {node.mgmt_ip} ports {R.CONTROL_PORTS[0]},{R.CONTROL_PORTS[1]}, "
            f"server key {node.server_public_key}")
        for name, agent in mesh.agents.items():
            r = agent.host.router
            say(f"peer {name}: {agent.host.address} behind {r.nat_class} NAT {r.public_ip}, "
                f"tunnel {agent.tunnel_ip}, WireGuard {agent.wg.name}")

        step("Starting relay-peer on every peer; waiting until every pair is connected")
        mesh.start()
        if not mesh.wait_connected(timeout=40):
            say("not every pair connected:\n" + mesh.report() + "\n" + R.all_logs(lab))
            return 1
        say(mesh.report())

        for name, agent in mesh.agents.items():
            step(f"relay-peer status on {name}")
            say(agent.status_text().rstrip())

        step("relay sessions (control's admin socket; counters from the data plane)")
        say(N._run([bins.relay, "sessions", "--socket", node.admin_socket],
                   check=False).stdout.rstrip())

        a, b, c = (mesh.agents[n] for n in "abc")
        for (x, y) in ((a, b), (b, c)):
            path = mesh.expected_path(x.name, y.name)
            step(f"{PINGS} pings {x.name} -> {y.name} over the tunnel ({path})")
            before = node.dataplane_metrics()
            p = x.ping(y, count=PINGS, interval=0.05, check=False)
            after = node.dataplane_metrics()
            say(p.stdout.strip().splitlines()[-2] if p.stdout.strip() else p.stderr)
            for metric in ("relay_dataplane_forwarded_packets_total",
                           'relay_dataplane_rx_packets_total{port="lab0"}'):
                say(f"  {metric}: {int(before.get(metric, 0))} -> {int(after.get(metric, 0))} "
                    f"(+{int(after.get(metric, 0) - before.get(metric, 0))})")
            if path == "direct":
                say(f"  direct: the pings ({2 * PINGS} packets) never reach the data plane; "
                    "what it counts meanwhile is the relayed pair's keepalives")
            else:
                say(f"  relayed: every ping and its reply ({2 * PINGS} packets) crossed the "
                    "data plane")

        step("relay sessions after the pings")
        say(N._run([bins.relay, "sessions", "--socket", node.admin_socket],
                   check=False).stdout.rstrip())
        step("Tearing the lab down")
    left = [n for n in N.list_netns() if n.startswith(lab.tag + "-")]
    say("done: " + ("nothing left behind" if not left else f"left: {left}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""End-to-end throughput through WireGuard, direct against relayed, in the NAT
lab of tests/e2e: the figure that used to be an assertion of the e2e tests.

    sudo python3 perf/e2e_iperf.py --build-dir build [--seconds 4] [--rounds 2]
                                   [--check [--min-ratio 0.8]]

The lab (tests/e2e/relaylab.py Mesh): the relay node and three peers running
relay-peer and wireguard-go, each behind its own NAT:

    pr    port-restricted (the iperf3 client)
    pr2   port-restricted: pr -> pr2 goes direct (BRIEF section 6)
    sy    symmetric:       pr -> sy is relayed through the data plane

Both servers sit behind masquerading NATs of the same cost (the cone NATs'
per-packet set updates would burden one path).  iperf3 (TCP) runs
`--rounds` times on each path, alternating, `--seconds` each; the best of each
path is compared, within this one run (BRIEF section 8: ratios, not absolute
figures, on a shared machine).  Prints one JSON object on stdout:

    {"benchmark": "e2e_iperf3", "direct_bps": ..., "relayed_bps": ...,
     "ratio": relayed/direct, "runs_bps": {"direct": [...], "relayed": [...]},
     "seconds": 4, "rounds": 2, "min_ratio": 0.8, "target_met": true}

Exit status: 0; with --check, 1 when the ratio is below --min-ratio; 2 when
the lab cannot run (not root, tools or binaries missing) or a transfer fails.
"""

import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "..", "tests", "e2e")
sys.path.insert(0, E2E)
sys.dont_write_bytecode = True

import natlab as N  # noqa: E402
import relaylab as R  # noqa: E402

SPEC = [("pr", N.PORT_RESTRICTED), ("pr2", N.PORT_RESTRICTED), ("sy", N.SYMMETRIC)]
DIRECT, RELAYED = ("pr", "pr2"), ("pr", "sy")


def iperf(lab: N.Lab, client: R.PeerAgent, server: R.PeerAgent, seconds: int) -> float:
    """Bits per second the server received in one iperf3 TCP run over the tunnel."""
    srv = server.host.popen(["iperf3", "-s", "-1", "-B", server.tunnel_ip],
                            stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
    try:
        for _ in range(50):
            r = client.host.run(["iperf3", "-c", server.tunnel_ip, "-t", str(seconds), "-J"],
                                check=False, timeout=seconds + 20)
            try:
                out = json.loads(r.stdout)
            except ValueError:
                out = {"error": r.stdout[-500:] + r.stderr}
            bps = out.get("end", {}).get("sum_received", {}).get("bits_per_second")
            if r.returncode == 0 and bps:
                return bps
            if "refused" not in str(out.get("error", "")):
                raise RuntimeError(f"iperf3 failed ({r.returncode}): {str(out)[-800:]}")
            time.sleep(0.1)   # the server is not listening yet
        raise RuntimeError("the iperf3 server never listened")
    finally:
        lab._stop_proc(srv)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--seconds", type=int, default=4, help="seconds per iperf3 run")
    ap.add_argument("--rounds", type=int, default=2, help="runs per path, alternating")
    ap.add_argument("--min-ratio", type=float, default=0.8, help="target: relayed/direct")
    ap.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = ap.parse_args()

    reason = N.unavailable_reason()
    build = os.path.abspath(args.build_dir)
    if reason is None and R.Binaries(build).missing():
        reason = "not built: " + ", ".join(R.Binaries(build).missing())
    if reason is None:
        tools = [t for t in ("wireguard-go", "wg", "iperf3") if shutil.which(t) is None]
        reason = "missing tools: " + ", ".join(tools) if tools else None
    if reason:
        print(f"e2e_iperf: cannot run: {reason}", file=sys.stderr)
        return 2

    with N.Lab() as lab:
        mesh = R.Mesh(lab, R.Binaries(build), SPEC)
        mesh.start()
        mesh.wait_connected(timeout=40)
        for pair, path in ((DIRECT, "direct"), (RELAYED, "relayed")):
            got = mesh.paths.get(R.pair_name(*pair))
            if got != (path, path):
                print(f"e2e_iperf: {pair} is {got}, not {path}\n{mesh.report()}", file=sys.stderr)
                return 2
        a = mesh.agents
        runs = {"direct": [], "relayed": []}
        try:
            for _ in range(args.rounds):
                runs["direct"].append(iperf(lab, a[DIRECT[0]], a[DIRECT[1]], args.seconds))
                runs["relayed"].append(iperf(lab, a[RELAYED[0]], a[RELAYED[1]], args.seconds))
        except RuntimeError as e:
            print(f"e2e_iperf: {e}\n{R.all_logs(lab, tail=40)}", file=sys.stderr)
            return 2
    direct, relayed = max(runs["direct"]), max(runs["relayed"])
    ratio = relayed / direct
    print(json.dumps({"benchmark": "e2e_iperf3",
                      "direct_pair": "-".join(DIRECT), "relayed_pair": "-".join(RELAYED),
                      "direct_bps": round(direct), "relayed_bps": round(relayed),
                      "ratio": round(ratio, 3),
                      "runs_bps": {k: [round(v) for v in vs] for k, vs in runs.items()},
                      "seconds": args.seconds, "rounds": args.rounds,
                      "min_ratio": args.min_ratio, "target_met": ratio >= args.min_ratio}))
    return 1 if args.check and ratio < args.min_ratio else 0


if __name__ == "__main__":
    sys.exit(main())

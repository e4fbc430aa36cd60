// Why the data plane dropped a packet: the one list of reasons.  Each entry
// is (name, what it means, what an operator should check).  The name is the
// `reason` label of relay_dataplane_drops_total; the enum, the label, the
// metric's series and the table in docs/OPERATIONS.md ("Troubleshooting by
// drop reason", checked by tests/fixtures against this list) all come from
// here.  A new reason is one new X(...) line, and the doc row the test asks for.
#pragma once

#include <cstdint>
#include <string>

// clang-format off
#define RELAY_DP_DROP_REASONS(X) \
    X(malformed_ethernet,\
      "Frame shorter than an Ethernet header, or a truncated VLAN tag.",\
      "A faulty host or NIC on the link; should stay near zero.") \
    X(vlan_mismatch,\
      "A tag that is not the port's VLAN, a tagged frame on an untagged port, or an untagged one on a VLAN port.",\
      "`ports[].vlan` against the switch port (access vs trunk, native VLAN).") \
    X(unsupported_ethertype,\
      "Neither IPv4 nor ARP: IPv6, LLDP, spanning tree...",\
      "Normal background. Large amounts: a broadcast-heavy segment; the relay speaks IPv4 only.") \
    X(malformed_arp,\
      "ARP with wrong sizes, hardware or protocol type, or operation.",\
      "A broken host on the link.") \
    X(arp_not_ours,\
      "ARP request for an address that is not ours.",\
      "Normal on a shared segment. Many: a large broadcast domain; put the relay on its own VLAN.") \
    X(arp_consumed,\
      "ARP reply or announcement: learnt if useful, not forwarded.",\
      "Normal; not a problem.") \
    X(malformed_ipv4,\
      "Bad version, header length, total length or header checksum.",\
      "The sender's checksum offload (on veth links turn TX offload off with ethtool), truncated frames, MTU mismatch.") \
    X(ip_options,\
      "IPv4 header with options.",\
      "Normal background in small amounts; peers' traffic never has options.") \
    X(fragment,\
      "An IPv4 fragment (relayed traffic is never reassembled).",\
      "Peers send packets larger than the path MTU: lower the WireGuard interface MTU (1420 or less), check `ports[].mtu` and the links.") \
    X(not_ours,\
      "IPv4 destination is not one of our addresses.",\
      "The switch floods unicast to us (MAC table), a router sends us traffic for other addresses, or an address is missing from `ports[].addresses`.") \
    X(ttl_expired,\
      "TTL 0 on arrival.",\
      "A routing loop or a broken sender upstream.") \
    X(bad_source,\
      "Source address zero, loopback, multicast or broadcast, or UDP source port 0.",\
      "Spoofed or broken traffic; nothing legitimate looks like this.") \
    X(unsupported_protocol,\
      "Neither UDP nor ICMP (e.g. TCP).",\
      "Normal background (scanners); only UDP is relayed.") \
    X(unsupported_icmp,\
      "ICMP other than echo request (unreachables, echo replies...).",\
      "Normal in small amounts: e.g. port unreachables from a peer whose NAT mapping closed. The relay sends no ICMP errors itself.") \
    X(malformed_icmp,\
      "ICMP too short or with a bad checksum.",\
      "A broken or hostile sender.") \
    X(malformed_udp,\
      "UDP length inconsistent with the IP length, or shorter than 8.",\
      "A broken sender, or truncation on the path.") \
    X(no_session,\
      "UDP to a relay address and port with no session.",\
      "Peers using a session that was released or expired; the data plane restarted and control has not programmed it again yet; scans. Compare with control's allocations.") \
    X(session_expired,\
      "The session was idle past its timeout and is about to be removed.",\
      "Peers resuming after a pause longer than the session's `idle_timeout_s`: their keepalives must come more often (WireGuard `persistent-keepalive` 25 s).") \
    X(not_latched,\
      "From a source that is not a confirmed endpoint, or to a side not latched yet.",\
      "A few are normal (data racing the first handshake). Many: peers that never complete the handshake through the relay (keys or endpoints wrong), or spoofing/hijack attempts.") \
    X(latch_refused,\
      "Handshake or bind that failed verification: mac1 or bind MAC wrong (mac1 is tried only for the sides the source is expected from), a latched source speaking for the other side, a response answering no pending initiation, or a replay of the initiation that established the current latch.",\
      "The public keys or bind secret control programmed against the peers' own, the allowed source prefixes. Per session: the `latch_refused` counters of `list_sessions`.") \
    X(malformed_handshake,\
      "WireGuard message of a wrong length or unknown type, or a bind packet with a wrong version or fields.",\
      "A non-WireGuard application on a `wireguard` session (the session should use the `bind` policy), or junk aimed at session ports.") \
    X(rate_limited,\
      "Over the session's packet or byte bucket, the ICMP budget (1000/s, burst 100 per worker), a source address's budget of handshakes or binds on a session (10/s, burst 10, checked before the MAC), or the session's budget of verified handshakes (50/s, burst 20).",\
      "Session limits too low for legitimate traffic (control sets them), or a flood of pings or handshakes (then the limit is doing its job).") \
    X(no_neighbour,\
      "No way to the next hop: its MAC did not resolve. A packet whose next hop (on-link peer or gateway) is unresolved is first held while the data plane asks by ARP (once a second); it is dropped here when nobody answered within 3 s, when a 5th packet for the same next hop pushes out the oldest, when 256 packets are held already, or when the worker's ring to the service thread is full. Also an off-link destination on a port without `gateway`. Compare with `relay_dataplane_neighbour_held_total`.",\
      "The port's `gateway`, VLAN and cabling; that the router (or the on-link peer) answers ARP requests from the relay address.") \
    X(wrong_shard,\
      "A packet for another worker's session could not be handed over: that worker's ring was full.",\
      "An overloaded worker (busy ratio near 1), or no RSS on the NIC so one queue gets everything: check \"with RSS\" in the start-up log, add workers.") \
    X(tx_full,\
      "The TX queue did not take the packet.",\
      "The link is slower than the traffic, link down or flapping, too few `tx_descriptors`.") \
    X(not_our_mac,\
      "Ethernet destination is another host's unicast MAC (the port is promiscuous when `ports[].mac` is set).",\
      "A switch flooding unknown unicast (MAC table ageing, asymmetric paths), a hub or a mirror port. Many: keep the relay's MAC known to the switch (it answers ARP and sends traffic), or give the relay its own VLAN.") \
    X(multicast_destination,\
      "Ethernet destination is multicast, or broadcast for anything but ARP.",\
      "Normal background (LLDP, spanning tree, IPv6 neighbour discovery, mDNS, DHCP). Large amounts: a broadcast-heavy segment; give the relay its own VLAN.") \
    X(bad_source_mac,\
      "Ethernet source is broadcast, multicast, all zero, or the port's own MAC.",\
      "The port's own MAC: a loop (the relay's frames come back: a bridged or looped link) or another device with the same MAC. Otherwise forged or broken frames; nothing legitimate looks like this.") \
    X(martian_source,\
      "IPv4 source is one of the node's own addresses, or the network or broadcast address of a configured subnet (prefixes up to /30).",\
      "Spoofing (a forged source to make the relay answer itself or a whole subnet), a loop, or another host configured with the relay's address.") \
    X(arp_bad_sender,\
      "ARP whose sender MAC is broadcast, multicast or zero, or whose sender address is broadcast, multicast, loopback, a configured subnet's network or broadcast address, or 0.0.0.0 in a reply. Never answered, never learnt.",\
      "Forged or broken ARP on the link; nothing legitimate looks like this.") \
    X(arp_conflict,\
      "ARP from another host whose sender address is one of ours (an announcement, a request or a reply): an address conflict (RFC 5227). Never answered, never learnt.",\
      "Another host configured with a relay address (check `ports[].addresses` against the network's address plan), or someone trying to take the address over. The relay keeps answering requests for it.") \
    X(over_mtu,\
      "Frame larger than the port's MTU (`ports[].mtu`) plus its Ethernet header and VLAN tag.",\
      "A sender or link with a larger MTU than `ports[].mtu`: make them agree (the relay never fragments).") \
    X(unexpected_source,\
      "Handshake or bind from a source the session does not expect for any side it could speak for (outside the side's allowed prefix, or not its allowed port); dropped before any MAC is computed, never forwarded.",\
      "Normal under attack (forged handshakes). For real peers: control programs each side's expected source from the peer's registration; a peer whose NAT changed its public address or port must re-register (the agent does so when its addresses change).") \
    X(candidates_busy,\
      "WireGuard initiation from a new source while every candidate slot of its side (3) holds an initiation forwarded less than 5 s ago that awaits its answer.",\
      "Normal in small amounts while several sources race for a side; many: forged initiations from addresses the session allows (a wide `allowed_source`).")
// clang-format on

namespace relay::dp {

enum class DropReason : uint8_t {
    none = 0,
#define RELAY_DP_DROP_ENUM(name, meaning, check) name,
    RELAY_DP_DROP_REASONS(RELAY_DP_DROP_ENUM)
#undef RELAY_DP_DROP_ENUM
        count_  // number of reasons; keep last
};

constexpr unsigned kDropReasonCount = static_cast<unsigned>(DropReason::count_);

struct DropReasonInfo {
    const char* name;     // Prometheus label value ("malformed_ipv4", ...)
    const char* meaning;  // what it means (docs/OPERATIONS.md, second column)
    const char* check;    // what to check (third column)
};

// Index by DropReason; [0] is `none`.
inline constexpr DropReasonInfo kDropReasons[kDropReasonCount] = {
    {"none", "", ""},
#define RELAY_DP_DROP_INFO(name, meaning, check) {#name, meaning, check},
    RELAY_DP_DROP_REASONS(RELAY_DP_DROP_INFO)
#undef RELAY_DP_DROP_INFO
};

inline const char* drop_reason_name(DropReason r) {
    const unsigned i = static_cast<unsigned>(r);
    return i < kDropReasonCount ? kDropReasons[i].name : "unknown";
}

// The row of docs/OPERATIONS.md's drop reason table for `r`.
std::string drop_reason_doc_row(DropReason r);

}  // namespace relay::dp

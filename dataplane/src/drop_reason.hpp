// Why the data plane dropped a packet.  Every drop is counted under one of
// these; the names are the `reason` label of relay_dataplane_drops_total.
#pragma once

#include <cstdint>

namespace relay::dp {

enum class DropReason : uint8_t {
    none = 0,
    malformed_ethernet,  // shorter than an Ethernet header, or a truncated VLAN tag
    vlan_mismatch,       // 802.1Q tag that is not the port's VLAN (or tagged on an untagged port)
    unsupported_ethertype,  // neither IPv4 nor ARP
    malformed_arp,          // wrong sizes or hardware/protocol types
    arp_not_ours,           // ARP request for an address we do not own
    arp_consumed,           // ARP reply or announcement: learned, not forwarded
    malformed_ipv4,         // version, header length, total length or checksum wrong
    ip_options,             // IPv4 options are not handled
    fragment,               // any fragment
    not_ours,               // IPv4 destination is not one of our addresses
    ttl_expired,            // TTL 0 on arrival
    bad_source,             // source address zero, loopback, multicast or broadcast, or UDP port 0
    unsupported_protocol,   // neither UDP nor ICMP
    unsupported_icmp,       // ICMP other than echo request
    malformed_icmp,
    malformed_udp,        // UDP length inconsistent with the IP length, or shorter than 8
    no_session,           // no session on (destination address, destination port)
    session_expired,      // session idle past its timeout
    not_latched,          // from an unknown source, or to a side that is not latched
    latch_refused,        // handshake or bind that failed verification or the source prefix
    malformed_handshake,  // WireGuard or bind message with a wrong length or type
    rate_limited,         // over the session's packet or byte bucket
    no_neighbour,         // next hop's MAC did not resolve (a held packet given up), or no gateway
    wrong_shard,          // handed to another worker but its ring was full
    tx_full,              // the TX queue did not take the packet
    count_                // number of reasons; keep last
};

constexpr unsigned kDropReasonCount = static_cast<unsigned>(DropReason::count_);

// Prometheus label value ("malformed_ipv4", ...).
const char* drop_reason_name(DropReason r);

}  // namespace relay::dp

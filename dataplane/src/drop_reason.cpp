#include "drop_reason.hpp"

namespace relay::dp {

const char* drop_reason_name(DropReason r) {
    switch (r) {
        case DropReason::none:
            return "none";
        case DropReason::malformed_ethernet:
            return "malformed_ethernet";
        case DropReason::vlan_mismatch:
            return "vlan_mismatch";
        case DropReason::unsupported_ethertype:
            return "unsupported_ethertype";
        case DropReason::malformed_arp:
            return "malformed_arp";
        case DropReason::arp_not_ours:
            return "arp_not_ours";
        case DropReason::arp_consumed:
            return "arp_consumed";
        case DropReason::malformed_ipv4:
            return "malformed_ipv4";
        case DropReason::ip_options:
            return "ip_options";
        case DropReason::fragment:
            return "fragment";
        case DropReason::not_ours:
            return "not_ours";
        case DropReason::ttl_expired:
            return "ttl_expired";
        case DropReason::bad_source:
            return "bad_source";
        case DropReason::unsupported_protocol:
            return "unsupported_protocol";
        case DropReason::unsupported_icmp:
            return "unsupported_icmp";
        case DropReason::malformed_icmp:
            return "malformed_icmp";
        case DropReason::malformed_udp:
            return "malformed_udp";
        case DropReason::no_session:
            return "no_session";
        case DropReason::session_expired:
            return "session_expired";
        case DropReason::not_latched:
            return "not_latched";
        case DropReason::latch_refused:
            return "latch_refused";
        case DropReason::malformed_handshake:
            return "malformed_handshake";
        case DropReason::rate_limited:
            return "rate_limited";
        case DropReason::no_neighbour:
            return "no_neighbour";
        case DropReason::wrong_shard:
            return "wrong_shard";
        case DropReason::tx_full:
            return "tx_full";
        case DropReason::count_:
            break;
    }
    return "unknown";
}

}  // namespace relay::dp

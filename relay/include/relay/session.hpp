// What a relay session is, as the control process asks the data plane for it
// and as the data plane reports it back.  Shared by the IPC codec, the data
// plane and (later) control.
#pragma once

#include <array>
#include <cstdint>

#include "relay/net.hpp"

namespace relay {

using PublicKey = std::array<uint8_t, 32>;   // WireGuard (X25519) public key
using BindSecret = std::array<uint8_t, 32>;  // per-session key for the bind policy

enum class LatchPolicy : uint8_t {
    wireguard = 1,  // latch from WireGuard handshakes whose mac1 verifies (BRIEF §2)
    bind = 2,       // latch from a bind packet MACed with the session secret
};

// Rates are per direction (each side's traffic has its own buckets); 0 = unlimited.
struct SessionLimits {
    uint64_t packets_per_s = 0;
    uint64_t bytes_per_s = 0;
    uint32_t burst_packets = 0;  // bucket depth; 0 = one second's worth
    uint32_t burst_bytes = 0;    // bucket depth; 0 = one second's worth
    bool operator==(const SessionLimits&) const = default;
};

struct SideSpec {
    PublicKey public_key{};       // used by the wireguard policy (mac1 key of this side)
    Ipv4Prefix allowed_source{};  // len 0 = any source
    uint16_t allowed_port = 0;    // 0 = any source port; else only this one (a NAT that maps
                                  // endpoint-independently keeps the port control observed)
    bool operator==(const SideSpec&) const = default;
};

struct SessionSpec {
    uint64_t id = 0;          // chosen by control, unique on the node, never 0
    Ipv4 relay_ip = 0;        // one of the data plane's configured addresses
    uint16_t relay_port = 0;  // 1..65535
    LatchPolicy policy = LatchPolicy::wireguard;
    std::array<SideSpec, 2> sides{};  // side 0 = "A", side 1 = "B"
    BindSecret bind_secret{};         // used by the bind policy
    SessionLimits limits{};
    uint32_t idle_timeout_s = 180;  // 1..86400
    bool operator==(const SessionSpec&) const = default;
};

// What may change on a live session without re-latching.
struct SessionUpdate {
    uint64_t id = 0;
    SessionLimits limits{};
    std::array<Ipv4Prefix, 2> allowed_source{};
    std::array<uint16_t, 2> allowed_port{};  // 0 = any
    uint32_t idle_timeout_s = 180;
    bool operator==(const SessionUpdate&) const = default;
};

struct SideStats {
    SocketAddress endpoint{};  // confirmed (latched) endpoint; valid when latched
    bool latched = false;
    SocketAddress candidate{};  // pending candidate; valid when has_candidate
    bool has_candidate = false;
    uint64_t rx_packets = 0;  // received from this side (accepted)
    uint64_t rx_bytes = 0;
    uint64_t tx_packets = 0;  // forwarded to this side
    uint64_t tx_bytes = 0;
    uint64_t dropped_packets = 0;  // from this side's sources, any reason
    uint64_t rate_limited_packets = 0;
    uint64_t latches = 0;  // confirmations (first latch and roams)
    uint64_t latch_refused = 0;
    bool operator==(const SideStats&) const = default;
};

struct SessionStats {
    SessionSpec spec{};
    std::array<SideStats, 2> sides{};
    uint64_t idle_ms = 0;  // since last accepted packet (or since creation)
    uint64_t age_ms = 0;   // since creation
    bool operator==(const SessionStats&) const = default;
};

}  // namespace relay

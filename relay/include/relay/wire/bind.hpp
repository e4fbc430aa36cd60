// The bind packet of the `bind` latch policy (BRIEF §2, docs/PROTOCOL.md):
// a generic UDP application proves it belongs to a session by sending, from
// the address it will use, a MAC over the session id and that address as the
// relay observes it, keyed with the per-session secret control gave it.  The
// relay answers with an ack of the same size (never larger: no amplification)
// and never forwards a bind packet.
//
//   offset size field
//   0      4    magic "RLYB" (request) / "RLYA" (ack)
//   4      1    version (1)
//   5      1    side (0 = A, 1 = B)
//   6      1    status (ack only: 0 latched, 1 stale counter; 0 in requests)
//   7      1    reserved, 0
//   8      8    session id, little endian
//   16     8    counter, little endian: must grow for every new bind of a side
//   24     16   MAC = BLAKE2b-128(key = session secret,
//                   bytes 0..23 || observed IPv4 (4, BE) || observed port (2, BE))
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "relay/net.hpp"
#include "relay/session.hpp"

namespace relay::wire::bind {

constexpr size_t kLen = 40;
constexpr size_t kCoveredLen = 24;
constexpr size_t kMacOffset = 24;
constexpr uint8_t kVersion = 1;
constexpr std::array<uint8_t, 4> kRequestMagic = {'R', 'L', 'Y', 'B'};
constexpr std::array<uint8_t, 4> kAckMagic = {'R', 'L', 'Y', 'A'};
constexpr uint8_t kStatusLatched = 0;
constexpr uint8_t kStatusStale = 1;

using Mac = std::array<uint8_t, 16>;

// MAC over the first 24 bytes of `packet` and the observed address.
Mac compute_mac(const BindSecret& secret, const uint8_t* packet, SocketAddress observed);
bool verify_mac(const BindSecret& secret, const uint8_t* packet, SocketAddress observed);

// Builds a request (for peers and tests).
std::array<uint8_t, kLen> make_request(const BindSecret& secret, uint64_t session_id, uint8_t side,
                                       uint64_t counter, SocketAddress observed);

// Turns a verified request (in place) into its ack with `status`.
void make_ack(uint8_t* packet, const BindSecret& secret, uint8_t status, SocketAddress observed);

}  // namespace relay::wire::bind

#include "relay/wire/bind.hpp"

#include <sodium.h>

#include <cstring>

#include "relay/wire/headers.hpp"

namespace relay::wire::bind {

Mac compute_mac(const BindSecret& secret, const uint8_t* packet, SocketAddress observed) {
    uint8_t covered[kCoveredLen + 6];
    std::memcpy(covered, packet, kCoveredLen);
    store_be32(covered + kCoveredLen, observed.ip);
    store_be16(covered + kCoveredLen + 4, observed.port);
    Mac mac{};
    crypto_generichash(mac.data(), mac.size(), covered, sizeof covered, secret.data(),
                       secret.size());
    return mac;
}

bool verify_mac(const BindSecret& secret, const uint8_t* packet, SocketAddress observed) {
    Mac mac = compute_mac(secret, packet, observed);
    return sodium_memcmp(mac.data(), packet + kMacOffset, mac.size()) == 0;
}

std::array<uint8_t, kLen> make_request(const BindSecret& secret, uint64_t session_id, uint8_t side,
                                       uint64_t counter, SocketAddress observed) {
    std::array<uint8_t, kLen> p{};
    std::memcpy(p.data(), kRequestMagic.data(), 4);
    p[4] = kVersion;
    p[5] = side;
    store_le64(p.data() + 8, session_id);
    store_le64(p.data() + 16, counter);
    Mac mac = compute_mac(secret, p.data(), observed);
    std::memcpy(p.data() + kMacOffset, mac.data(), mac.size());
    return p;
}

void make_ack(uint8_t* packet, const BindSecret& secret, uint8_t status, SocketAddress observed) {
    std::memcpy(packet, kAckMagic.data(), 4);
    packet[6] = status;
    Mac mac = compute_mac(secret, packet, observed);
    std::memcpy(packet + kMacOffset, mac.data(), mac.size());
}

}  // namespace relay::wire::bind

// Internet checksum helpers (RFC 1071) and incremental update (RFC 1624).
// Forwarding only rewrites addresses and ports, so it adjusts the existing
// checksums instead of recomputing them over the payload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace relay::dp {

// One's-complement sum of 16-bit big-endian words, not yet folded.
inline uint32_t checksum_partial(const uint8_t* data, size_t len, uint32_t sum = 0) {
    size_t i = 0;
    for (; i + 1 < len; i += 2) sum += uint32_t{data[i]} << 8 | data[i + 1];
    if (i < len) sum += uint32_t{data[i]} << 8;
    return sum;
}

inline uint16_t checksum_fold(uint32_t sum) {
    sum = (sum & 0xffff) + (sum >> 16);  // two folds take any 32-bit sum to 16 bits
    sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// True when a 20-byte IPv4 header's checksum verifies.  Sums native-order
// 32-bit words: the one's-complement sum does not depend on byte order
// (RFC 1071 §2), and an all-ones result is the same in either order.
inline bool ipv4_header_checksum_ok(const uint8_t* ip) {
    uint32_t w[5];
    std::memcpy(w, ip, sizeof w);
    uint64_t sum = uint64_t{w[0]} + w[1] + w[2] + w[3] + w[4];
    sum = (sum & 0xffffffffu) + (sum >> 32);
    sum = (sum & 0xffffffffu) + (sum >> 32);
    return checksum_fold(static_cast<uint32_t>(sum)) == 0xffff;
}

// The value to store in a checksum field.
inline uint16_t checksum_finish(uint32_t sum) {
    return static_cast<uint16_t>(~checksum_fold(sum));
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').  `delta` accumulates ~m + m' for
// every changed 16-bit word (see checksum_delta32/16).
inline uint16_t checksum_adjust(uint16_t old_checksum, uint32_t delta) {
    uint32_t sum = static_cast<uint16_t>(~old_checksum) + delta;
    return static_cast<uint16_t>(~checksum_fold(sum));
}

inline uint32_t checksum_delta16(uint16_t old_value, uint16_t new_value) {
    return static_cast<uint16_t>(~old_value) + uint32_t{new_value};
}

inline uint32_t checksum_delta32(uint32_t old_value, uint32_t new_value) {
    return checksum_delta16(static_cast<uint16_t>(old_value >> 16),
                            static_cast<uint16_t>(new_value >> 16)) +
           checksum_delta16(static_cast<uint16_t>(old_value), static_cast<uint16_t>(new_value));
}

}  // namespace relay::dp

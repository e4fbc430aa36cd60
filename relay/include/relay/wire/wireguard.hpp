// WireGuard message layouts (whitepaper §5.4), as far as a relay needs them:
// the type, the sender/receiver indexes and the position of mac1.
#pragma once

#include <cstddef>
#include <cstdint>

namespace relay::wire::wg {

constexpr uint32_t kTypeInitiation = 1;
constexpr uint32_t kTypeResponse = 2;
constexpr uint32_t kTypeCookieReply = 3;
constexpr uint32_t kTypeData = 4;

constexpr size_t kInitiationLen = 148;
constexpr size_t kResponseLen = 92;
constexpr size_t kCookieReplyLen = 64;
constexpr size_t kDataMinLen = 32;  // header 16 + empty payload's 16-byte tag (a keepalive)

constexpr size_t kMacLen = 16;
// Offsets inside the UDP payload.
constexpr size_t kSenderIndex = 4;            // initiation and response
constexpr size_t kResponseReceiverIndex = 8;  // response
constexpr size_t kInitiationMac1 = 116;       // mac1 covers bytes [0, 116)
constexpr size_t kResponseMac1 = 60;          // mac1 covers bytes [0, 60)

}  // namespace relay::wire::wg

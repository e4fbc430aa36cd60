// libFuzzer target: the bind packet of the `bind` latch policy (relay/wire/bind.hpp).
// Input: observed address (ip u32be, port u16be), then the 40-byte packet (zero-padded).
// The secret is the fixture tables' (tests/fixtures: bytes 0xb0..0xcf).
// Checked: a fuzzed packet verifies only if it carries the MAC make_request would give
// it (the bytes are rebuilt and compared); the ack of a verified packet is the same size,
// verifies for the same address only, and does not verify as a request.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "fuzz_check.hpp"
#include "relay/wire/bind.hpp"
#include "relay/wire/headers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace relay;
    using namespace relay::wire;
    BindSecret secret;
    for (size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<uint8_t>(0xb0 + i);

    uint8_t buf[6 + bind::kLen] = {};
    std::memcpy(buf, data, std::min(size, sizeof buf));
    const SocketAddress observed{load_be32(buf), load_be16(buf + 4)};
    uint8_t* packet = buf + 6;

    const bool ok = bind::verify_mac(secret, packet, observed);
    const bind::Mac expected = bind::compute_mac(secret, packet, observed);
    FUZZ_CHECK(ok == std::equal(expected.begin(), expected.end(), packet + bind::kMacOffset),
               "verify_mac disagrees with compute_mac");

    // A request built from the same fields verifies, and its MAC binds the address.
    const auto request = bind::make_request(secret, load_le64(packet + 8), packet[5] & 1,
                                            load_le64(packet + 16), observed);
    FUZZ_CHECK(bind::verify_mac(secret, request.data(), observed), "a made request fails");
    SocketAddress elsewhere = observed;
    elsewhere.port ^= 1;
    FUZZ_CHECK(!bind::verify_mac(secret, request.data(), elsewhere),
               "a request verifies for another port");

    if (!ok) return 0;
    uint8_t ack[bind::kLen];
    std::memcpy(ack, packet, bind::kLen);
    bind::make_ack(ack, secret, bind::kStatusLatched, observed);
    FUZZ_CHECK(std::memcmp(ack, bind::kAckMagic.data(), 4) == 0, "an ack without its magic");
    FUZZ_CHECK(bind::verify_mac(secret, ack, observed), "an ack that does not verify");
    FUZZ_CHECK(!bind::verify_mac(secret, ack, elsewhere), "an ack that verifies elsewhere");
    FUZZ_CHECK(
        std::memcmp(ack, packet, 4) != 0 || std::memcmp(packet, bind::kAckMagic.data(), 4) == 0,
        "an ack that is still a request");
    return 0;
}

// mac1 against an independent implementation: the expected values were
// computed with Python's hashlib.blake2s (a separate BLAKE2s code base):
//   key = blake2s(b"mac1----" + bytes(range(1, 33))).digest()
//   mac = blake2s(bytes((i*7+3) & 0xff for i in range(116)), key=key, digest_size=16).digest()
// Captured WireGuard handshakes are checked in the data-plane fixtures.
#include <gtest/gtest.h>

#include <vector>

#include "relay/crypto/mac1.hpp"

namespace {

std::vector<uint8_t> from_hex(const char* hex) {
    std::vector<uint8_t> out;
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2)
        out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex + i, 2), nullptr, 16)));
    return out;
}

relay::PublicKey test_public_key() {
    relay::PublicKey k;
    for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i + 1);
    return k;
}

std::vector<uint8_t> test_message() {
    std::vector<uint8_t> msg(148);
    for (size_t i = 0; i < 116; ++i) msg[i] = static_cast<uint8_t>((i * 7 + 3) & 0xff);
    return msg;
}

}  // namespace

TEST(Mac1, KeyDerivationMatchesIndependentBlake2s) {
    auto key = relay::crypto::mac1_key_for(test_public_key());
    auto expected = from_hex("121b33018813efaa1d3128cdec1392897828e98831f01822c250ddfdf7090183");
    EXPECT_EQ(std::vector<uint8_t>(key.begin(), key.end()), expected);
}

TEST(Mac1, MacMatchesIndependentBlake2s) {
    relay::crypto::Mac1 mac1;
    auto msg = test_message();
    auto mac = mac1.compute(relay::crypto::mac1_key_for(test_public_key()),
                            std::span<const uint8_t>(msg).first(116));
    EXPECT_EQ(std::vector<uint8_t>(mac.begin(), mac.end()),
              from_hex("2902e97104d59ef400e37122c90e13f0"));
}

TEST(Mac1, VerifyAcceptsTheRightMacAndRejectsAnyFlippedBit) {
    relay::crypto::Mac1 mac1;
    auto key = relay::crypto::mac1_key_for(test_public_key());
    auto msg = test_message();
    auto mac = mac1.compute(key, std::span<const uint8_t>(msg).first(116));
    std::copy(mac.begin(), mac.end(), msg.begin() + 116);
    EXPECT_TRUE(mac1.verify(key, msg, 116));
    for (size_t bit = 0; bit < 132 * 8; ++bit) {  // covered bytes and mac1 itself
        auto bad = msg;
        bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
        EXPECT_FALSE(mac1.verify(key, bad, 116)) << "bit " << bit;
    }
    auto other_key = key;
    other_key[0] ^= 1;
    EXPECT_FALSE(mac1.verify(other_key, msg, 116));
}

TEST(Mac1, VerifyRejectsAMessageTooShortForItsMac) {
    relay::crypto::Mac1 mac1;
    auto key = relay::crypto::mac1_key_for(test_public_key());
    std::vector<uint8_t> msg(120);
    EXPECT_FALSE(mac1.verify(key, msg, 116));
}

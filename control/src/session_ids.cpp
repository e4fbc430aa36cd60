#include "session_ids.hpp"

#include <sodium.h>

#include <array>
#include <cstring>

namespace relay::control {

namespace {

constexpr char kKeyContext[] = "relay-control session-id tag key v1";

}  // namespace

SessionIds::SessionIds(const SecretKey& server_secret,
                       const std::vector<std::string>& network_names) {
    if (sodium_init() < 0) {
        // No random source: the process could not seal a message either.  Deterministic
        // but still keyed tags; the low bits start at 1.
        next_low_ = 1;
    } else {
        next_low_ = randombytes_random();
    }
    // key = BLAKE2b-256(context) keyed with the server's secret key: a key of its own for
    // this one purpose, which reveals nothing of the secret.
    std::array<uint8_t, crypto_generichash_KEYBYTES> key{};
    crypto_generichash(key.data(), key.size(), reinterpret_cast<const uint8_t*>(kKeyContext),
                       sizeof kKeyContext - 1, server_secret.data(), server_secret.size());
    for (size_t n = 0; n < network_names.size(); ++n) {
        std::array<uint8_t, crypto_generichash_BYTES_MIN> mac{};
        crypto_generichash(mac.data(), mac.size(),
                           reinterpret_cast<const uint8_t*>(network_names[n].data()),
                           network_names[n].size(), key.data(), key.size());
        uint32_t tag;
        std::memcpy(&tag, mac.data(), sizeof tag);
        tags_.push_back(tag);
        if (!network_by_tag_.emplace(tag, n).second) ambiguous_.insert(tag);
    }
    sodium_memzero(key.data(), key.size());
}

std::optional<size_t> SessionIds::network_of(uint64_t id) const {
    const auto tag = static_cast<uint32_t>(id >> 32);
    if (ambiguous_.count(tag)) return std::nullopt;
    const auto it = network_by_tag_.find(tag);
    if (it == network_by_tag_.end()) return std::nullopt;
    return it->second;
}

}  // namespace relay::control

// WireGuard's mac1 with OpenSSL's BLAKE2s:
//   key  = BLAKE2s-256("mac1----" || receiver public key)
//   mac1 = BLAKE2s-128 keyed with key, over the message bytes before mac1.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "relay/session.hpp"

namespace relay::crypto {

using Mac1Key = std::array<uint8_t, 32>;
using Mac = std::array<uint8_t, 16>;

// Derives the mac1 key of a receiver (done once per session side, off the hot path).
Mac1Key mac1_key_for(const PublicKey& receiver_public_key);

// Computes and checks mac1.  Holds one OpenSSL MAC context that it re-keys
// for every message, so steady-state use does not allocate.  Not thread-safe:
// one per thread (each data-plane worker owns one).
class Mac1 {
  public:
    Mac1();
    ~Mac1();
    Mac1(const Mac1&) = delete;
    Mac1& operator=(const Mac1&) = delete;

    Mac compute(const Mac1Key& key, std::span<const uint8_t> covered);
    // `message` is the whole WireGuard message; `mac1_offset` where mac1 starts.
    bool verify(const Mac1Key& key, std::span<const uint8_t> message, size_t mac1_offset);

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace relay::crypto

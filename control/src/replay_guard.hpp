// Rejects control messages outside the clock window and messages seen before
// (BRIEF §5).  A nonce is remembered for twice the window, so that any copy still
// inside the window is caught; memory is bounded by max_entries (when full, new
// messages are refused rather than forgetting nonces, which would let replays in).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <unordered_set>

#include "relay/control/envelope.hpp"

namespace relay::control {

class ReplayGuard {
  public:
    enum class Verdict { fresh, stale, replayed, full };

    ReplayGuard(uint64_t window_ms, size_t max_entries);

    // Checks timestamp and nonce; remembers the nonce if fresh.
    Verdict check(const Nonce& nonce, uint64_t timestamp_ms, uint64_t now_ms);
    size_t size() const { return seen_.size(); }

  private:
    struct NonceHash {
        size_t operator()(const Nonce& n) const;
    };
    void expire(uint64_t now_ms);

    uint64_t window_ms_;
    size_t max_entries_;
    std::unordered_set<Nonce, NonceHash> seen_;
    std::deque<std::pair<uint64_t, Nonce>> by_expiry_;  // ascending expiry
};

const char* to_string(ReplayGuard::Verdict v);

}  // namespace relay::control

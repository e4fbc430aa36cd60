// The one budget for work done for senders control does not know (key agreements for
// unknown agent keys, mac1 checks of WireGuard probe initiations), shared fairly
// between sources.
//
// A plain global bucket lets a flood from a few hundred addresses take every token,
// so that a real agent registering during the flood waits, on average, as many
// seconds as the flood is times the budget (BRIEF §9: every unauthenticated cost
// bounded per source and in total, and nobody locked out).  So the budget has two
// halves:
//   - `fresh`: only for a source (per kind of work) that has not been served within
//     the last `fresh_window_ms`.  A flood from S addresses can use at most S
//     tokens of it per window, so while S < (per_s / 2) × window (1 500 addresses at
//     the default 100/s and 30 s) a newcomer always finds a token;
//   - `shared`: the rest, for anyone, first come first served.
// Memory: one entry per source served from the fresh half within the window, so at
// most (per_s / 2) × window + burst entries (and never more than `max_sources`).
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>

#include "relay/net.hpp"
#include "token_bucket.hpp"

namespace relay::control {

class UnauthenticatedBudget {
  public:
    // Kinds of work, each with its own freshness: an agent's register and its WireGuard
    // probe come from the same public address moments apart.
    enum class Kind : uint8_t { key_agreement = 0, probe_check = 1 };
    enum class Verdict : uint8_t { fresh, shared, refused };

    static constexpr uint64_t kDefaultFreshWindowMs = 30'000;

    UnauthenticatedBudget(double per_s, uint64_t fresh_window_ms = kDefaultFreshWindowMs,
                          size_t max_sources = 65536);

    // Takes `cost` tokens for `source`: from the fresh half if the source was not
    // served (for this kind) within the window and the fresh half has them, else
    // from the shared half.
    Verdict take(Ipv4 source, Kind kind, uint64_t now_ms, double cost = 1.0);

    size_t tracked_sources() const { return served_.size(); }

  private:
    static uint64_t key_of(Ipv4 source, Kind kind) {
        return (static_cast<uint64_t>(kind) << 32) | source;
    }
    void expire(uint64_t now_ms);

    TokenBucket fresh_;
    TokenBucket shared_;
    uint64_t window_ms_;
    size_t max_sources_;
    std::unordered_map<uint64_t, uint64_t> served_;    // key -> when served from `fresh`
    std::deque<std::pair<uint64_t, uint64_t>> order_;  // (when, key), ascending
};

const char* to_string(UnauthenticatedBudget::Verdict v);

}  // namespace relay::control

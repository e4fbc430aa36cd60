// Replay protection of one sender's sealed messages (BRIEF §5): a message is fresh when
// its timestamp is within the window of the server's wall clock and its nonce was not
// seen.  One guard per authorised sender (ControlCore keeps one per registered peer, and
// one per network for registrations), so nothing an unauthorised sender does is stored,
// and no sender can fill another's guard.
//
// Memory is bounded without ever forgetting a nonce that could still be replayed: a
// guard remembers a floor, the newest timestamp it let go of, and refuses every message
// at or below it (`too_old`).  A nonce is let go of when its timestamp falls out of the
// window (a copy is stale then anyway; the floor keeps it refused even if the wall clock
// steps back), or, when the guard is full, the oldest one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <unordered_set>

#include "relay/control/envelope.hpp"

namespace relay::control {

class ReplayGuard {
  public:
    enum class Verdict { fresh, stale, replayed, too_old };

    ReplayGuard() = default;
    ReplayGuard(uint64_t window_ms, size_t capacity);

    // Checks timestamp and nonce against `wall_now_ms`; remembers the nonce if fresh.
    Verdict check(const Nonce& nonce, uint64_t timestamp_ms, uint64_t wall_now_ms);
    size_t size() const { return seen_.size(); }
    uint64_t floor() const { return floor_; }

  private:
    struct NonceHash {
        size_t operator()(const Nonce& n) const;
    };
    void let_go(std::multimap<uint64_t, Nonce>::iterator it);

    uint64_t window_ms_ = 0;
    size_t capacity_ = 0;
    uint64_t floor_ = 0;  // every timestamp <= floor_ is refused (0: none yet)
    bool has_floor_ = false;
    std::unordered_set<Nonce, NonceHash> seen_;
    std::multimap<uint64_t, Nonce> by_timestamp_;
};

const char* to_string(ReplayGuard::Verdict v);

}  // namespace relay::control

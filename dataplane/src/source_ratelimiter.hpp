// Per-source budget for work an unauthenticated sender can cause (handshake
// and bind MAC checks), in the spirit of WireGuard's own ratelimiter: a token
// bucket per (source IPv4 address, session), in a table of fixed size that is
// allocated once, owned by one worker and never locked or grown.
//
// The table is set-associative: a key hashes (with a per-table random seed,
// so a sender cannot aim at one set) to a set of four entries that share one
// cache line.  A key that is not in its set takes the entry whose bucket is
// the fullest (the smallest GCRA timestamp): an entry at rest is as good as a
// fresh one, so a flood of new source addresses never locks a real peer out;
// at worst it makes the limiter forget a source, which then starts again with
// a full bucket.  What the limiter cannot bound is work caused from forged
// source addresses (each new address is a new bucket); the expected-source
// check before it and a MAC check per packet at most bound that
// (docs/OPERATIONS.md, Security properties).
#pragma once

#include <cstdint>
#include <memory>

#include "rate_limiter.hpp"
#include "relay/net.hpp"

namespace relay::dp {

// The budget of one source address on one session: MAC checks a second and burst.
// WireGuard sends an initiation at most every 5 s and a response per initiation;
// a NAT may put both peers of a session behind one address.
constexpr uint64_t kHandshakesPerSourcePerSecond = 10;
constexpr uint64_t kHandshakeSourceBurst = 10;
// Table size per worker: 4096 sets of 4 entries (256 KiB).
constexpr uint32_t kHandshakeSourceSets = 4096;

class SourceRateLimiter {
  public:
    static constexpr unsigned kWays = 4;

    // sets: a power of two.  seed: hash key (any value; random in production).
    SourceRateLimiter(uint32_t sets, uint64_t rate, uint64_t burst, uint64_t tsc_hz, uint64_t seed)
        : sets_(std::make_unique<Set[]>(sets)), mask_(sets - 1), seed_(seed) {
        limit_.configure(rate, burst, tsc_hz);
    }

    // Takes one token of `ip`'s bucket on `scope` (the session's slot).
    // `ip` is never 0 (the processor drops such sources before).
    bool allow(Ipv4 ip, uint32_t scope, uint64_t now) {
        const uint64_t key = uint64_t{ip} << 32 | scope;
        Set& set = sets_[mix(key ^ seed_) & mask_];
        Entry* victim = &set.entry[0];
        for (Entry& e : set.entry) {
            if (e.ip == ip && e.scope == scope) return limit_.take(e.tat, now, 1);
            // Free entries have tat 0, so they are the first victims.
            if (e.tat < victim->tat) victim = &e;
        }
        *victim = Entry{ip, scope, 0};
        return limit_.take(victim->tat, now, 1);
    }

    uint32_t capacity() const { return (mask_ + 1) * kWays; }

  private:
    struct Entry {
        Ipv4 ip = 0;  // 0 = free
        uint32_t scope = 0;
        uint64_t tat = 0;  // GCRA state (TSC)
    };
    struct alignas(64) Set {
        Entry entry[kWays];
    };
    static_assert(sizeof(Set) == 64, "a set is one cache line");

    // SplitMix64's finalizer: every key bit reaches every hash bit.
    static uint64_t mix(uint64_t x) {
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        return x ^ (x >> 31);
    }

    std::unique_ptr<Set[]> sets_;
    uint32_t mask_;
    uint64_t seed_;
    GcraLimit limit_;
};

}  // namespace relay::dp

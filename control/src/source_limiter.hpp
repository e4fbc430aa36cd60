// Per-source-IP token buckets for traffic control has not authenticated yet (STUN,
// envelopes it cannot open, registrations), so that one source cannot make it burn
// CPU or send replies at will.  Memory is bounded: when the table is full, sources
// not in it share one overflow bucket.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "relay/net.hpp"

namespace relay::control {

class SourceLimiter {
  public:
    // `per_s` tokens a second per source, bucket depth = per_s (one second's worth).
    SourceLimiter(uint32_t per_s, size_t max_sources = 65536);

    bool allow(Ipv4 source, uint64_t now_ms);
    size_t sources() const { return buckets_.size(); }

  private:
    struct Bucket {
        double tokens = 0;
        uint64_t last_ms = 0;
    };
    bool take(Bucket& b, uint64_t now_ms);
    void sweep(uint64_t now_ms);

    double per_s_;
    size_t max_sources_;
    std::unordered_map<Ipv4, Bucket> buckets_;
    Bucket overflow_;
    uint64_t last_sweep_ms_ = 0;
};

}  // namespace relay::control

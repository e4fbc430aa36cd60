// Token bucket in its GCRA form ("virtual scheduling", ITU-T I.371): one
// timestamp per bucket and no division on the hot path.  Each packet moves the
// theoretical arrival time (tat) forward by its cost; a packet conforms while
// tat stays within `tolerance` of now.  Equivalent to a bucket of depth
// tolerance/cost that refills at 1/cost tokens per cycle.
//
// The limit (GcraLimit) and the state (a tat) are separate so that a
// session's two directions share one limit and the state stays small.
#pragma once

#include <cstdint>

namespace relay::dp {

struct GcraLimit {
    static constexpr unsigned kFrac = 16;  // fraction bits of cost_fp

    uint64_t cost_fp = 0;    // TSC cycles per token << kFrac; 0 = unlimited
    uint64_t tolerance = 0;  // burst depth in TSC cycles

    bool unlimited() const { return cost_fp == 0; }

    // rate: tokens per second; burst: tokens (0 = one second's worth).
    void configure(uint64_t rate, uint64_t burst, uint64_t tsc_hz) {
        if (rate == 0) {
            cost_fp = 0;
            tolerance = 0;
            return;
        }
        if (burst == 0) burst = rate;
        const unsigned __int128 cost =
            ((static_cast<unsigned __int128>(tsc_hz) << kFrac) + rate - 1) / rate;
        cost_fp = cost == 0 ? 1 : static_cast<uint64_t>(cost);
        // A depth beyond 2^62 cycles (years) is as good as unlimited.
        const unsigned __int128 depth = (cost * burst) >> kFrac;
        tolerance = depth > (uint64_t{1} << 62) ? uint64_t{1} << 62 : static_cast<uint64_t>(depth);
    }

    // Cost of `units` tokens in cycles.  units * cost_fp fits 64 bits for any
    // rate of at least one token per second and units below 65536.
    uint64_t cost(uint64_t units) const { return (units * cost_fp) >> kFrac; }

    // Takes `units` tokens against `tat` if they conform.  now: TSC cycles.
    bool take(uint64_t& tat, uint64_t now, uint64_t units) const {
        if (unlimited()) return true;
        const uint64_t t = tat > now ? tat : now;
        const uint64_t next = t + cost(units);
        if (next - now > tolerance) return false;
        tat = next;
        return true;
    }

    // Would `units` conform? (does not take them)
    bool conforms(uint64_t tat, uint64_t now, uint64_t units) const {
        if (unlimited()) return true;
        const uint64_t t = tat > now ? tat : now;
        return t + cost(units) - now <= tolerance;
    }
};

// A limit with its own state, for budgets that are not per direction.
struct Gcra {
    GcraLimit limit;
    uint64_t tat = 0;

    void configure(uint64_t rate, uint64_t burst, uint64_t tsc_hz) {
        limit.configure(rate, burst, tsc_hz);
        tat = 0;
    }
    bool take(uint64_t now, uint64_t units) { return limit.take(tat, now, units); }
};

}  // namespace relay::dp

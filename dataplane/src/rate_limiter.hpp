// Token bucket in its GCRA form ("virtual scheduling", ITU-T I.371): one
// timestamp per bucket and no division on the hot path.  Each packet moves the
// theoretical arrival time (tat) forward by its cost; a packet conforms while
// tat stays within `tolerance` of now.  Equivalent to a bucket of depth
// tolerance/cost that refills at 1/cost tokens per cycle.
#pragma once

#include <cstdint>

namespace relay::dp {

struct Gcra {
    // Fixed point with kFrac fraction bits, in 128 bits so that neither a TSC
    // that has counted for years nor a large burst can overflow.
    using Fixed = unsigned __int128;
    static constexpr unsigned kFrac = 16;

    Fixed tat = 0;            // theoretical arrival time, TSC cycles
    Fixed cost_per_unit = 0;  // cycles per token; 0 = unlimited
    Fixed tolerance = 0;      // burst depth in cycles

    // rate: tokens per second; burst: tokens (0 = one second's worth).
    void configure(uint64_t rate, uint64_t burst, uint64_t tsc_hz) {
        if (rate == 0) {
            cost_per_unit = 0;
            return;
        }
        if (burst == 0) burst = rate;
        cost_per_unit = ((Fixed{tsc_hz} << kFrac) + rate - 1) / rate;
        if (cost_per_unit == 0) cost_per_unit = 1;
        tolerance = cost_per_unit * burst;
        tat = 0;
    }

    // Takes `units` tokens if they conform.  now: TSC cycles.
    bool take(uint64_t now, uint64_t units) {
        if (cost_per_unit == 0) return true;
        const Fixed now_fp = Fixed{now} << kFrac;
        const Fixed t = tat > now_fp ? tat : now_fp;
        const Fixed next = t + units * cost_per_unit;
        if (next - now_fp > tolerance) return false;
        tat = next;
        return true;
    }
};

}  // namespace relay::dp

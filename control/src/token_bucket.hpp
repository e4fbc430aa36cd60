// A token bucket on control's monotonic clock (milliseconds): `per_s` tokens a second up
// to `depth`, starting full.  Used for the global budget of unauthenticated work and for
// each registered peer's request limits (control_core.cpp).
#pragma once

#include <algorithm>
#include <cstdint>

namespace relay::control {

class TokenBucket {
  public:
    TokenBucket() = default;
    TokenBucket(double per_s, double depth) : per_s_(per_s), depth_(depth), tokens_(depth) {}

    // Takes `cost` tokens if there are that many.  A clock that went back refills nothing.
    bool take(uint64_t now_ms, double cost = 1.0) {
        if (now_ms > last_ms_) {
            tokens_ = std::min(depth_,
                               tokens_ + per_s_ * static_cast<double>(now_ms - last_ms_) / 1000.0);
            last_ms_ = now_ms;
        }
        if (tokens_ < cost) return false;
        tokens_ -= cost;
        return true;
    }

  private:
    double per_s_ = 0;
    double depth_ = 0;
    double tokens_ = 0;
    uint64_t last_ms_ = 0;
};

}  // namespace relay::control

#include "source_limiter.hpp"

#include <algorithm>

namespace relay::control {

SourceLimiter::SourceLimiter(uint32_t per_s, size_t max_sources)
    : per_s_(per_s), max_sources_(max_sources) {
    overflow_.tokens = per_s_;
}

bool SourceLimiter::take(Bucket& b, uint64_t now_ms) {
    if (now_ms > b.last_ms) {
        b.tokens =
            std::min(per_s_, b.tokens + per_s_ * static_cast<double>(now_ms - b.last_ms) / 1000.0);
        b.last_ms = now_ms;
    }
    if (b.tokens < 1.0) return false;
    b.tokens -= 1.0;
    return true;
}

void SourceLimiter::sweep(uint64_t now_ms) {
    // A bucket idle for more than a second is full again: forgetting it changes nothing.
    for (auto it = buckets_.begin(); it != buckets_.end();) {
        it = now_ms - it->second.last_ms > 1000 ? buckets_.erase(it) : std::next(it);
    }
    last_sweep_ms_ = now_ms;
}

bool SourceLimiter::allow(Ipv4 source, uint64_t now_ms) {
    if (per_s_ <= 0) return false;
    auto it = buckets_.find(source);
    if (it == buckets_.end()) {
        if (buckets_.size() >= max_sources_ && now_ms - last_sweep_ms_ >= 1000) sweep(now_ms);
        if (buckets_.size() >= max_sources_) return take(overflow_, now_ms);
        it = buckets_.emplace(source, Bucket{per_s_, now_ms}).first;
    }
    return take(it->second, now_ms);
}

}  // namespace relay::control

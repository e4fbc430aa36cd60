#include "replay_guard.hpp"

#include <cstring>

namespace relay::control {

size_t ReplayGuard::NonceHash::operator()(const Nonce& n) const {
    // Nonces are random: any 8 of their bytes are a good hash.
    uint64_t h;
    std::memcpy(&h, n.data(), sizeof h);
    return static_cast<size_t>(h);
}

ReplayGuard::ReplayGuard(uint64_t window_ms, size_t capacity)
    : window_ms_(window_ms), capacity_(capacity == 0 ? 1 : capacity) {}

void ReplayGuard::let_go(std::multimap<uint64_t, Nonce>::iterator it) {
    if (!has_floor_ || it->first > floor_) floor_ = it->first;
    has_floor_ = true;
    seen_.erase(it->second);
    by_timestamp_.erase(it);
}

ReplayGuard::Verdict ReplayGuard::check(const Nonce& nonce, uint64_t timestamp_ms,
                                        uint64_t wall_now_ms) {
    const uint64_t skew =
        timestamp_ms > wall_now_ms ? timestamp_ms - wall_now_ms : wall_now_ms - timestamp_ms;
    if (skew > window_ms_) return Verdict::stale;
    // Out of the window: a copy of these is stale now (and below the floor afterwards).
    while (!by_timestamp_.empty() && by_timestamp_.begin()->first + window_ms_ < wall_now_ms)
        let_go(by_timestamp_.begin());
    if (has_floor_ && timestamp_ms <= floor_) return Verdict::too_old;
    if (seen_.count(nonce)) return Verdict::replayed;
    if (seen_.size() >= capacity_) {
        let_go(by_timestamp_.begin());
        if (timestamp_ms <= floor_) return Verdict::too_old;
    }
    seen_.insert(nonce);
    by_timestamp_.emplace(timestamp_ms, nonce);
    return Verdict::fresh;
}

const char* to_string(ReplayGuard::Verdict v) {
    switch (v) {
        case ReplayGuard::Verdict::fresh:
            return "fresh";
        case ReplayGuard::Verdict::stale:
            return "stale_timestamp";
        case ReplayGuard::Verdict::replayed:
            return "replayed";
        case ReplayGuard::Verdict::too_old:
            return "older_than_replay_window";
    }
    return "unknown";
}

}  // namespace relay::control

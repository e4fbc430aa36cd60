#include "replay_guard.hpp"

#include <cstring>

namespace relay::control {

size_t ReplayGuard::NonceHash::operator()(const Nonce& n) const {
    // Nonces are random: any 8 of their bytes are a good hash.
    uint64_t h;
    std::memcpy(&h, n.data(), sizeof h);
    return static_cast<size_t>(h);
}

ReplayGuard::ReplayGuard(uint64_t window_ms, size_t max_entries)
    : window_ms_(window_ms), max_entries_(max_entries) {}

void ReplayGuard::expire(uint64_t now_ms) {
    while (!by_expiry_.empty() && by_expiry_.front().first <= now_ms) {
        seen_.erase(by_expiry_.front().second);
        by_expiry_.pop_front();
    }
}

ReplayGuard::Verdict ReplayGuard::check(const Nonce& nonce, uint64_t timestamp_ms,
                                        uint64_t now_ms) {
    const uint64_t skew = timestamp_ms > now_ms ? timestamp_ms - now_ms : now_ms - timestamp_ms;
    if (skew > window_ms_) return Verdict::stale;
    expire(now_ms);
    if (seen_.count(nonce)) return Verdict::replayed;
    if (seen_.size() >= max_entries_) return Verdict::full;
    seen_.insert(nonce);
    // A copy is refused as stale once its timestamp is older than the window; until then
    // (at most timestamp + window, which is at most now + 2 windows) the nonce must be kept.
    by_expiry_.emplace_back(now_ms + 2 * window_ms_, nonce);
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
        case ReplayGuard::Verdict::full:
            return "replay_cache_full";
    }
    return "unknown";
}

}  // namespace relay::control

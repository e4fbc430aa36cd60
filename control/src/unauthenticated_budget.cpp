#include "unauthenticated_budget.hpp"

#include <algorithm>

namespace relay::control {

UnauthenticatedBudget::UnauthenticatedBudget(double per_s, uint64_t fresh_window_ms,
                                             size_t max_sources)
    : fresh_(per_s / 2, std::max(1.0, per_s / 20)),
      shared_(per_s / 2, std::max(1.0, per_s / 20)),
      window_ms_(fresh_window_ms),
      max_sources_(max_sources) {}

void UnauthenticatedBudget::expire(uint64_t now_ms) {
    while (!order_.empty() && order_.front().first + window_ms_ <= now_ms) {
        auto it = served_.find(order_.front().second);
        // Only the entry's latest serving counts (a key served again is queued again).
        if (it != served_.end() && it->second == order_.front().first) served_.erase(it);
        order_.pop_front();
    }
}

UnauthenticatedBudget::Verdict UnauthenticatedBudget::take(Ipv4 source, Kind kind, uint64_t now_ms,
                                                           double cost) {
    expire(now_ms);
    const uint64_t key = key_of(source, kind);
    const bool is_fresh = !served_.count(key) && served_.size() < max_sources_;
    if (is_fresh && fresh_.take(now_ms, cost)) {
        served_[key] = now_ms;
        order_.emplace_back(now_ms, key);
        return Verdict::fresh;
    }
    return shared_.take(now_ms, cost) ? Verdict::shared : Verdict::refused;
}

const char* to_string(UnauthenticatedBudget::Verdict v) {
    switch (v) {
        case UnauthenticatedBudget::Verdict::fresh:
            return "fresh";
        case UnauthenticatedBudget::Verdict::shared:
            return "shared";
        case UnauthenticatedBudget::Verdict::refused:
            return "refused";
    }
    return "unknown";
}

}  // namespace relay::control

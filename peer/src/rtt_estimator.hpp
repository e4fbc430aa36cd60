// The agent's round trip to control, from keepalives and their answers, in
// microseconds.  Control shortens this peer's fire delay by half of it so that both
// punches leave together (docs/PROTOCOL.md, "Punch"): a lab or LAN has round trips
// well under a millisecond, so whole milliseconds would read 0.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>

namespace relay::peer {

class RttEstimator {
  public:
    using Clock = std::chrono::steady_clock;

    // A keepalive with this request id left now (or at `at`).
    void sent(uint32_t request_id, Clock::time_point at = Clock::now()) {
        sent_[request_id] = at;
        // Answers lost on the way leave entries behind: keep the newest few.
        while (sent_.size() > kOutstanding) sent_.erase(sent_.begin());
    }
    // The answer to `request_id` arrived (now, or at `at`); unknown ids are ignored.
    // Smoothed as TCP does (RFC 6298: 7/8 old + 1/8 sample); the first sample is taken whole.
    void answered(uint32_t request_id, Clock::time_point at = Clock::now()) {
        const auto it = sent_.find(request_id);
        if (it == sent_.end()) return;
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(at - it->second);
        sent_.erase(it);
        const uint64_t sample = us.count() < 0 ? 0 : static_cast<uint64_t>(us.count());
        const uint64_t next =
            smoothed_us_ == 0 ? sample : (7 * uint64_t{smoothed_us_} + sample) / 8;
        smoothed_us_ = static_cast<uint32_t>(next > UINT32_MAX ? UINT32_MAX : next);
    }
    // A first figure from elsewhere (the registration's round trip), if none yet.
    void seed(uint32_t us) {
        if (smoothed_us_ == 0) smoothed_us_ = us;
    }
    uint32_t us() const { return smoothed_us_; }  // 0 = not known yet
    size_t outstanding() const { return sent_.size(); }

    static constexpr size_t kOutstanding = 16;

  private:
    std::map<uint32_t, Clock::time_point> sent_;
    uint32_t smoothed_us_ = 0;
};

}  // namespace relay::peer

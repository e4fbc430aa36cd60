#include "rtt_estimator.hpp"

#include <gtest/gtest.h>

namespace relay::peer {
namespace {

using namespace std::chrono_literals;
using Clock = RttEstimator::Clock;

TEST(RttEstimator, UnknownUntilTheFirstAnswer) {
    RttEstimator rtt;
    const auto t0 = Clock::now();
    rtt.sent(1, t0);
    EXPECT_EQ(rtt.us(), 0u);
    rtt.answered(1, t0 + 300us);
    EXPECT_EQ(rtt.us(), 300u);  // sub-millisecond round trips are kept, not rounded to 0
}

TEST(RttEstimator, SmoothsLaterSamplesBySevenEighths) {
    RttEstimator rtt;
    const auto t0 = Clock::now();
    rtt.sent(1, t0);
    rtt.answered(1, t0 + 800us);
    rtt.sent(2, t0);
    rtt.answered(2, t0 + 1600us);
    EXPECT_EQ(rtt.us(), (7 * 800 + 1600) / 8);
}

TEST(RttEstimator, IgnoresUnknownAndRepeatedAnswers) {
    RttEstimator rtt;
    const auto t0 = Clock::now();
    rtt.sent(5, t0);
    rtt.answered(6, t0 + 10ms);  // never sent
    EXPECT_EQ(rtt.us(), 0u);
    rtt.answered(5, t0 + 2ms);
    rtt.answered(5, t0 + 90ms);  // a duplicate answer is not a second sample
    EXPECT_EQ(rtt.us(), 2000u);
}

TEST(RttEstimator, ForgetsTheOldestOutstandingRequests) {
    RttEstimator rtt;
    const auto t0 = Clock::now();
    for (uint32_t id = 1; id <= RttEstimator::kOutstanding + 4; ++id) rtt.sent(id, t0);
    EXPECT_EQ(rtt.outstanding(), RttEstimator::kOutstanding);
    rtt.answered(1, t0 + 1ms);  // dropped: too old
    EXPECT_EQ(rtt.us(), 0u);
    rtt.answered(RttEstimator::kOutstanding + 4, t0 + 1ms);
    EXPECT_EQ(rtt.us(), 1000u);
}

TEST(RttEstimator, SeedOnlyWhenUnknown) {
    RttEstimator rtt;
    rtt.seed(4000);
    EXPECT_EQ(rtt.us(), 4000u);
    rtt.seed(9000);
    EXPECT_EQ(rtt.us(), 4000u);
}

TEST(RttEstimator, ClockGoingBackwardsCountsAsZero) {
    RttEstimator rtt;
    const auto t0 = Clock::now();
    rtt.sent(1, t0);
    rtt.answered(1, t0 - 5ms);
    EXPECT_EQ(rtt.us(), 0u);
}

}  // namespace
}  // namespace relay::peer

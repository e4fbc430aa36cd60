// One sender's replay guard (control/src/replay_guard.hpp): bounded, and never lets a copy
// in, whatever the order of messages, its capacity, or a step of the wall clock.
#include <gtest/gtest.h>

#include "replay_guard.hpp"

using namespace relay::control;

namespace {
constexpr uint64_t kWindow = 30'000;
constexpr uint64_t kNow = 1'700'000'000'000ULL;

Nonce nonce(uint32_t n) {
    Nonce x{};
    for (size_t i = 0; i < 4; ++i) x[i] = static_cast<uint8_t>(n >> (8 * i));
    x[10] = 0x5a;
    return x;
}
using V = ReplayGuard::Verdict;
}  // namespace

TEST(ReplayGuard, FreshThenReplayedThenStale) {
    ReplayGuard g(kWindow, 16);
    EXPECT_EQ(g.check(nonce(1), kNow, kNow), V::fresh);
    EXPECT_EQ(g.check(nonce(1), kNow, kNow + 5), V::replayed);
    EXPECT_EQ(g.check(nonce(2), kNow - kWindow - 1, kNow), V::stale);
    EXPECT_EQ(g.check(nonce(3), kNow + kWindow + 1, kNow), V::stale);
    EXPECT_EQ(g.check(nonce(4), kNow + kWindow, kNow), V::fresh) << "the window's edge is in";
}

TEST(ReplayGuard, FullGuardLetsGoOfTheOldestAndRefusesAtOrBelowIt) {
    ReplayGuard g(kWindow, 4);
    for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(g.check(nonce(i), kNow + i, kNow), V::fresh);
    EXPECT_EQ(g.check(nonce(10), kNow + 10, kNow), V::fresh);  // nonce 0 let go of
    EXPECT_EQ(g.size(), 4u);
    EXPECT_EQ(g.check(nonce(0), kNow + 0, kNow), V::too_old) << "a copy of what it let go";
    EXPECT_EQ(g.check(nonce(99), kNow + 0, kNow), V::too_old);
    EXPECT_EQ(g.check(nonce(1), kNow + 1, kNow), V::replayed) << "still remembered";
    EXPECT_EQ(g.check(nonce(11), kNow + 11, kNow), V::fresh);
    EXPECT_LE(g.size(), 4u);
}

TEST(ReplayGuard, ExpiredNoncesStayRefusedWhenTheWallClockStepsBack) {
    ReplayGuard g(kWindow, 16);
    EXPECT_EQ(g.check(nonce(1), kNow, kNow), V::fresh);
    // 31 s later it is out of the window and let go of (memory is bounded by time too)...
    EXPECT_EQ(g.check(nonce(2), kNow + 31'000, kNow + 31'000), V::fresh);
    EXPECT_EQ(g.size(), 1u);
    // ...and the wall clock steps back 31 s: the copy is inside the window again, but
    // below the floor.
    EXPECT_EQ(g.check(nonce(1), kNow, kNow), V::too_old);
}

TEST(ReplayGuard, ManyMessagesStayBounded) {
    ReplayGuard g(kWindow, 256);
    for (uint32_t i = 0; i < 100'000; ++i)
        ASSERT_EQ(g.check(nonce(i), kNow + i, kNow + i), V::fresh) << i;
    EXPECT_LE(g.size(), 256u);
}

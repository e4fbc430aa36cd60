// Clocks: every timeout of control runs on the monotonic clock; the wall clock only judges
// what the protocol carries (message timestamps, token expiry).  A wall-clock step (NTP
// setting a clock that was a day off) must forget no peer and release no session.
#include <gtest/gtest.h>

#include "core_harness.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

constexpr int64_t kDayMs = 86'400'000;

}  // namespace

TEST(Clock, WallStepForwardForgetsNoPeerAndReleasesNoSession) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    const uint64_t session = h.relayed_pair(a, b);
    ASSERT_TRUE(h.dataplane.has(session));

    h.wall_step = kDayMs;  // the wall clock jumps a day ahead; 100 ms pass
    h.now += 100;
    h.tick();
    EXPECT_EQ(h.core->peers().size(), 2u) << "a wall-clock step is no silence";
    EXPECT_TRUE(h.dataplane.has(session));
    EXPECT_TRUE(h.dataplane.removed.empty());

    // The peers (whose clocks were right all along) go on as before.
    EXPECT_TRUE(std::holds_alternative<Status>(h.request(a, 0, Keepalive{}).body));
    Outbox out;
    const Message m = h.request(b, 0, Connect{a.wg.public_key, false}, &out);
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(m.body));
    const auto offers = a.notifications<RelayOffer>(out);
    ASSERT_EQ(offers.size(), 1u);
    EXPECT_EQ(offers[0].session_id, session);

    // Silence is still measured: 75 s of monotonic time without a word forgets them.
    h.now += 75'001;
    h.tick();
    EXPECT_TRUE(h.core->peers().empty());
    EXPECT_FALSE(h.dataplane.has(session));
}

TEST(Clock, WallStepBackwardKeepsTimeoutsRunning) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    const uint64_t session = h.relayed_pair(a, b);
    h.wall_step = -kDayMs;
    h.now += 75'001;
    h.tick();
    EXPECT_TRUE(h.core->peers().empty()) << "a step back does not extend a timeout";
    EXPECT_FALSE(h.dataplane.has(session));
}

TEST(Clock, WallStepDoesNotReleaseAdoptedSessionsEarly) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    const uint64_t session = h.relayed_pair(a, b);
    h.restart_control();
    h.core->adopt(*h.dataplane.list_sessions(), h.now);
    h.wall_step = kDayMs;
    h.now += 1'000;
    h.tick();
    EXPECT_TRUE(h.dataplane.has(session)) << "its peers have 75 s to come back";
    a.token = h.token("alpha");  // their tokens were issued by the clock a day behind
    b.token = h.token("alpha");
    h.register_and_classify(a);
    h.register_and_classify(b);
    h.tick();
    EXPECT_FALSE(h.core->allocations().at(session).adopted);
}

TEST(Clock, PendingAttemptsSurviveAWallStep) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    const Message m = h.request(a, 0, Connect{b.wg.public_key, false});
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(m.body));
    const uint64_t attempt = std::get<ConnectAck>(m.body).attempt_id;
    h.wall_step = kDayMs;
    h.now += 100;
    h.tick();
    EXPECT_EQ(h.core->pending_attempts(), 1u);
    EXPECT_TRUE(std::holds_alternative<Ok>(
        h.request(b, 0, ResultReport{attempt, a.wg.public_key, Outcome::relayed_ok, 10}).body));
}

// Per-peer request limits (issue 9, "Control"): a registered agent, however busy, spends
// only its own limits: requests a second, connects a second, attempts held.
#include <gtest/gtest.h>

#include "core_harness.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

ErrorCode error_code(const Message& m) {
    const auto* e = std::get_if<Error>(&m.body);
    EXPECT_NE(e, nullptr) << "expected an Error, got " << to_string(type_of(m.body));
    return e ? e->code : ErrorCode::internal;
}

}  // namespace

TEST(PeerLimits, RequestsPerSecondPerPeer) {
    Harness h([](Config& c) { c.control.limits.requests_per_s_per_peer = 10; });
    TestPeer p = h.make_peer("alpha"), q = h.make_peer("alpha");
    h.register_peer(p);
    h.register_peer(q);
    for (int i = 0; i < 10; ++i)
        EXPECT_TRUE(std::holds_alternative<Status>(h.request(p, 0, Keepalive{}).body)) << i;
    size_t sent = 0;
    Outbox out = h.send(p, 0, Keepalive{}, std::nullopt, &sent);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_LE(out[0].bytes.size(), sent);
    EXPECT_EQ(error_code(*p.open(out[0].bytes)), ErrorCode::rate_limited);
    EXPECT_EQ(h.rejected("peer_rate_limited"), 1);
    // Another peer is not limited by p, even from p's address.
    EXPECT_TRUE(std::holds_alternative<Status>(h.request(q, 0, Keepalive{}).body));
    // 100 ms later: one token back.
    h.now += 100;
    EXPECT_TRUE(std::holds_alternative<Status>(h.request(p, 0, Keepalive{}).body));
    EXPECT_EQ(error_code(h.request(p, 0, Keepalive{})), ErrorCode::rate_limited);
}

TEST(PeerLimits, ConnectsPerSecondPerPeer) {
    Harness h([](Config& c) {
        c.control.limits.connects_per_s_per_peer = 3;
        c.control.limits.sessions_per_peer = 16;
    });
    TestPeer a = h.make_peer("alpha");
    h.register_and_classify(a);
    std::vector<TestPeer> others;
    for (int i = 0; i < 4; ++i) {
        others.push_back(h.make_peer("alpha"));
        h.register_and_classify(others.back());
    }
    for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(std::holds_alternative<ConnectAck>(
            h.request(a, 0, Connect{others[i].wg.public_key}).body));
    EXPECT_EQ(error_code(h.request(a, 0, Connect{others[3].wg.public_key})),
              ErrorCode::rate_limited);
    EXPECT_EQ(h.rejected("peer_connects_limited"), 1);
    // Keepalives are not connects.
    EXPECT_TRUE(std::holds_alternative<Status>(h.request(a, 0, Keepalive{}).body));
    // Others connect as before.
    EXPECT_TRUE(std::holds_alternative<ConnectAck>(
        h.request(others[3], 0, Connect{others[2].wg.public_key}).body));
}

TEST(PeerLimits, AttemptsHeldPerPeerAreBounded) {
    Harness h([](Config& c) {
        c.control.limits.connects_per_s_per_peer = 1000;
        c.control.limits.requests_per_s_per_peer = 1000;
    });
    TestPeer a = h.make_peer("alpha"), b = h.make_peer("alpha"), c = h.make_peer("alpha");
    h.register_and_classify(a);
    h.register_and_classify(b);
    h.register_and_classify(c);
    uint64_t first = 0;
    for (int i = 0; i < 200; ++i) {
        const Message m = h.request(a, 0, Connect{b.wg.public_key});
        ASSERT_TRUE(std::holds_alternative<ConnectAck>(m.body));
        if (i == 0) first = std::get<ConnectAck>(m.body).attempt_id;
        h.now += 5;
    }
    EXPECT_EQ(h.core->pending_attempts(), 64u) << "a's oldest attempts gave way";
    // The oldest is gone; c's connect is not refused for a's.
    const Message r = h.request(b, 0, ResultReport{first, a.wg.public_key, Outcome::direct_ok, 1});
    EXPECT_EQ(error_code(r), ErrorCode::unknown_attempt);
    EXPECT_TRUE(std::holds_alternative<ConnectAck>(h.request(c, 0, Connect{b.wg.public_key}).body));
    EXPECT_EQ(h.core->pending_attempts(), 65u);
}

// A registered agent that roams registers again: limited as itself, not by its new
// address's budget for new registrations (which others behind that address may spend).
TEST(PeerLimits, ReRegistrationIsNotLimitedBySourceRegistrations) {
    Harness h;
    const Ipv4 nat = ip4(203, 0, 113, 210);
    std::vector<TestPeer> behind;
    for (uint16_t i = 0; i < 5; ++i) {
        behind.push_back(h.make_peer("alpha", Mapping::endpoint_independent,
                                     SocketAddress{nat, static_cast<uint16_t>(2000 + i)}));
        h.register_peer(behind.back());  // spends the address's 5 registrations a second
    }
    TestPeer roamer = h.make_peer("alpha");
    h.register_peer(roamer);
    roamer.source = {SocketAddress{nat, 3000}, SocketAddress{nat, 3000}};
    h.register_peer(roamer);
    EXPECT_EQ(h.peer_state(roamer)->notify_to, (SocketAddress{nat, 3000}));
}

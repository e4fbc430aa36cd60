// Limits (BRIEF §5 "bounded memory", per-source rate limits) and the states in which control
// must refuse a relay allocation: peers per network and per node, registrations per source,
// relay sessions per peer, the relay port range, draining, and a data plane that fails.
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

TestPeer symmetric_peer(Harness& h, const std::string& network = "alpha") {
    TestPeer p = h.make_peer(network, Mapping::symmetric);
    h.register_and_classify(p);
    EXPECT_EQ(h.nat_class(p), NatClass::symmetric);
    return p;
}

TestPeer cone_like_peer(Harness& h, const std::string& network = "alpha") {
    TestPeer p = h.make_peer(network, Mapping::endpoint_independent);
    h.register_and_classify(p);
    EXPECT_EQ(h.nat_class(p), NatClass::port_restricted);
    return p;
}

Message connect(Harness& h, TestPeer& from, const TestPeer& to, Outbox* out = nullptr,
                bool force_relay = false) {
    return h.request(from, 0, Connect{to.wg.public_key, force_relay}, out);
}

}  // namespace

TEST(Limits, NetworkMaxPeers) {
    Harness h;
    std::vector<TestPeer> beta;
    for (int i = 0; i < 3; ++i) {
        beta.push_back(h.make_peer("beta"));
        h.register_peer(beta.back());
    }
    TestPeer fourth = h.make_peer("beta");
    size_t sent = 0;
    Outbox out = h.send(fourth, 0, fourth.register_body(), std::nullopt, &sent);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_LE(out[0].bytes.size(), sent);
    EXPECT_EQ(error_code(*fourth.open(out[0].bytes)), ErrorCode::peer_limit);
    EXPECT_EQ(h.peer_state(fourth), nullptr);
    EXPECT_EQ(h.metric("relay_control_registrations_total", {{"result", "peer_limit"}}), 1);

    // Other networks are not affected, and a registered peer may register again.
    TestPeer alpha = h.make_peer("alpha");
    h.register_peer(alpha);
    h.register_peer(beta[0]);

    // One leaves: the fourth gets in.
    EXPECT_TRUE(std::holds_alternative<Ok>(h.request(beta[1], 0, Deregister{}).body));
    h.register_peer(fourth);
}

TEST(Limits, NodeMaxPeers) {
    Harness h([](Config& c) { c.control.limits.max_peers = 2; });
    TestPeer a = h.make_peer("alpha");
    TestPeer b = h.make_peer("beta");
    TestPeer c = h.make_peer("alpha");
    h.register_peer(a);
    h.register_peer(b);
    EXPECT_EQ(error_code(h.request(c, 0, c.register_body())), ErrorCode::peer_limit);
    EXPECT_EQ(h.core->peers().size(), 2u);
}

TEST(Limits, RegistrationsPerSecondPerSource) {
    Harness h;
    const Ipv4 shared_ip = ip4(203, 0, 113, 200);
    std::vector<TestPeer> peers;
    for (uint16_t i = 0; i < 7; ++i)
        peers.push_back(h.make_peer("alpha", Mapping::endpoint_independent,
                                    SocketAddress{shared_ip, static_cast<uint16_t>(1000 + i)}));
    for (size_t i = 0; i < 5; ++i) h.register_peer(peers[i]);

    size_t sent = 0;
    Outbox out = h.send(peers[5], 0, peers[5].register_body(), std::nullopt, &sent);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_LE(out[0].bytes.size(), sent);
    EXPECT_EQ(error_code(*peers[5].open(out[0].bytes)), ErrorCode::rate_limited);
    EXPECT_EQ(h.peer_state(peers[5]), nullptr);

    // Another source is not limited by this one.
    TestPeer elsewhere = h.make_peer("alpha");
    h.register_peer(elsewhere);

    // 200 ms later: one token back (5 a second).
    h.now += 200;
    h.register_peer(peers[5]);
    EXPECT_EQ(error_code(h.request(peers[6], 0, peers[6].register_body())),
              ErrorCode::rate_limited);
    h.now += 1000;
    h.register_peer(peers[6]);
}

TEST(Limits, SessionsPerPeer) {
    Harness h;
    TestPeer a = symmetric_peer(h);
    TestPeer b = symmetric_peer(h);
    TestPeer c = symmetric_peer(h);
    TestPeer d = symmetric_peer(h);
    EXPECT_TRUE(std::holds_alternative<ConnectAck>(connect(h, a, b).body));
    EXPECT_TRUE(std::holds_alternative<ConnectAck>(connect(h, a, c).body));
    EXPECT_EQ(error_code(connect(h, a, d)), ErrorCode::session_limit);
    EXPECT_EQ(error_code(connect(h, d, a)), ErrorCode::session_limit) << "a is full either way";
    EXPECT_EQ(h.dataplane.sessions.size(), 2u);
    EXPECT_EQ(h.peer_state(a)->sessions.size(), 2u);
    EXPECT_TRUE(h.peer_state(d)->sessions.empty());
    EXPECT_EQ(h.core->pending_attempts(), 2u) << "a refused connect leaves no attempt behind";
    // Connecting again to a pair that has its session is not a new session.
    Outbox out;
    Message m = connect(h, b, a, &out);
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(m.body));
    EXPECT_TRUE(std::get<ConnectAck>(m.body).relayed);
    EXPECT_EQ(h.dataplane.sessions.size(), 2u);
}

TEST(Limits, RelayPortRangeExhausted) {
    Harness h([](Config& c) { c.control.relay.port_max = c.control.relay.port_min; });
    TestPeer a = symmetric_peer(h), b = symmetric_peer(h);
    TestPeer c = symmetric_peer(h), d = symmetric_peer(h);
    Message m = connect(h, a, b);
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(m.body));
    ASSERT_EQ(h.dataplane.sessions.size(), 1u);
    const SessionSpec first = h.dataplane.sessions.begin()->second;
    EXPECT_EQ(first.relay_port, kRelayPortMin);

    EXPECT_EQ(error_code(connect(h, c, d)), ErrorCode::no_relay_ports);
    EXPECT_EQ(h.dataplane.sessions.size(), 1u);

    // a releases its session: the port is free again.
    EXPECT_TRUE(std::holds_alternative<Ok>(h.request(a, 0, Release{first.id}).body));
    EXPECT_TRUE(h.dataplane.sessions.empty());
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(connect(h, c, d).body));
    ASSERT_EQ(h.dataplane.sessions.size(), 1u);
    EXPECT_EQ(h.dataplane.sessions.begin()->second.relay_port, kRelayPortMin);
}

TEST(Limits, DrainingRefusesNewRelaysButStillPunches) {
    Harness h;
    TestPeer s1 = symmetric_peer(h), s2 = symmetric_peer(h);
    TestPeer c1 = cone_like_peer(h), c2 = cone_like_peer(h);
    TestPeer s3 = symmetric_peer(h), s4 = symmetric_peer(h);
    // A session allocated before the drain is still offered while draining.
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(connect(h, s3, s4).body));
    const uint64_t before = h.dataplane.sessions.begin()->first;

    h.core->set_draining(true);
    EXPECT_TRUE(h.core->draining());
    EXPECT_EQ(h.metric("relay_control_draining"), 1);

    Outbox out;
    EXPECT_EQ(error_code(connect(h, s1, s2, &out)), ErrorCode::draining);
    EXPECT_TRUE(s2.received(out).empty()) << "nothing for the other side either";
    EXPECT_EQ(error_code(connect(h, c1, c2, nullptr, true)), ErrorCode::draining)
        << "force_relay needs a relay";

    Message m = connect(h, c1, c2, &out);
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(m.body));
    EXPECT_FALSE(std::get<ConnectAck>(m.body).relayed);
    EXPECT_EQ(c1.notifications<Punch>(out).size(), 1u);
    EXPECT_EQ(c2.notifications<Punch>(out).size(), 1u);

    m = connect(h, s4, s3, &out);
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(m.body));
    EXPECT_TRUE(std::get<ConnectAck>(m.body).relayed);
    auto offers = s3.notifications<RelayOffer>(out);
    ASSERT_EQ(offers.size(), 1u);
    EXPECT_EQ(offers[0].session_id, before);
    EXPECT_EQ(h.dataplane.sessions.size(), 1u);

    h.core->set_draining(false);
    EXPECT_TRUE(std::holds_alternative<ConnectAck>(connect(h, s1, s2).body));
    EXPECT_EQ(h.dataplane.sessions.size(), 2u);
}

TEST(Limits, DataplaneUnavailableGivesThePortBack) {
    Harness h([](Config& c) { c.control.relay.port_max = c.control.relay.port_min; });
    TestPeer a = symmetric_peer(h), b = symmetric_peer(h);
    h.dataplane.unavailable = true;
    EXPECT_EQ(error_code(connect(h, a, b)), ErrorCode::dataplane_unavailable);
    EXPECT_TRUE(h.core->allocations().empty());
    EXPECT_TRUE(h.peer_state(a)->sessions.empty());

    h.dataplane.refuse_adds = ipc::Status::table_full;
    h.dataplane.unavailable = false;
    EXPECT_EQ(error_code(connect(h, a, b)), ErrorCode::internal);
    EXPECT_TRUE(h.core->allocations().empty());

    // Back: the only port was given back both times.
    h.dataplane.refuse_adds.reset();
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(connect(h, a, b).body));
    ASSERT_EQ(h.dataplane.sessions.size(), 1u);
    EXPECT_EQ(h.dataplane.sessions.begin()->second.relay_port, kRelayPortMin);
}

TEST(Limits, NoRelayAddressUntilTheDataplaneNamesOne) {
    Harness h([](Config& c) { c.control.relay.relay_address = 0; });
    TestPeer a = symmetric_peer(h), b = symmetric_peer(h);
    EXPECT_EQ(error_code(connect(h, a, b)), ErrorCode::dataplane_unavailable);
    h.core->set_relay_address(ip4(198, 51, 100, 20));
    Outbox out;
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(connect(h, a, b, &out).body));
    auto offers = b.notifications<RelayOffer>(out);
    ASSERT_EQ(offers.size(), 1u);
    EXPECT_EQ(offers[0].relay.ip, ip4(198, 51, 100, 20));
}

// Restarts (BRIEF §3): the data plane is the source of truth for live sessions.  A new
// control adopts them, hands them back to their peers when both return, and releases them
// when they do not; a restarted data plane is programmed again; sessions the data plane
// expired are forgotten.
#include <gtest/gtest.h>

#include "core_harness.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

std::vector<SessionStats> live(FakeDataplane& dp) {
    return *dp.list_sessions();
}

SessionSpec foreign_spec(uint64_t id, uint16_t port) {
    SessionSpec s;
    s.id = id;
    s.relay_ip = kRelayAddress;
    s.relay_port = port;
    s.sides[0].public_key = generate_key_pair().public_key;
    s.sides[1].public_key = generate_key_pair().public_key;
    return s;
}

}  // namespace

TEST(Restart, AdoptedSessionGoesBackToItsPeers) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    const uint64_t session = h.relayed_pair(a, b);
    const SessionSpec spec = h.dataplane.sessions.at(session);

    h.now += 5'000;
    h.restart_control();
    EXPECT_TRUE(h.core->peers().empty());
    h.core->adopt(live(h.dataplane), h.now);
    ASSERT_EQ(h.core->allocations().size(), 1u);
    const Allocation& adopted = h.core->allocations().at(session);
    EXPECT_TRUE(adopted.adopted);
    EXPECT_EQ(adopted.spec, spec);
    EXPECT_EQ(adopted.release_deadline_ms, h.now + 75'000);
    EXPECT_EQ(h.metric("relay_control_relay_sessions"), 1);
    EXPECT_EQ(h.dataplane.removed.size(), 0u) << "adopting changes nothing in the data plane";

    // The peers find out (not_registered) and register again.
    EXPECT_EQ(std::get<Error>(h.request(a, 0, Keepalive{}).body).code, ErrorCode::not_registered);
    h.now += 1'000;
    h.register_and_classify(a);
    h.tick();
    EXPECT_TRUE(h.core->allocations().at(session).adopted) << "b is not back yet";
    h.register_and_classify(b);
    h.tick();
    EXPECT_FALSE(h.core->allocations().at(session).adopted);
    EXPECT_EQ(h.core->allocations().at(session).network, kAlpha);
    EXPECT_EQ(h.peer_state(a)->sessions, std::set<uint64_t>{session});
    EXPECT_EQ(h.peer_state(b)->sessions, std::set<uint64_t>{session});

    // A connect reuses it.
    Outbox out;
    const Message m = h.request(b, 0, Connect{a.wg.public_key, false}, &out);
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(m.body));
    EXPECT_TRUE(std::get<ConnectAck>(m.body).relayed);
    const auto offers = a.notifications<RelayOffer>(out);
    ASSERT_EQ(offers.size(), 1u);
    EXPECT_EQ(offers[0].session_id, session);
    EXPECT_EQ(offers[0].relay, (SocketAddress{spec.relay_ip, spec.relay_port}));
    EXPECT_EQ(offers[0].side, 0) << "a is side 0 of the session it had before the restart";
    EXPECT_EQ(h.dataplane.added.size(), 1u) << "no second session";

    // And it survives the adopted deadline: it is theirs now.
    h.now += 80'000;
    h.request(a, 0, Keepalive{});
    h.request(b, 0, Keepalive{});
    h.tick();
    EXPECT_TRUE(h.dataplane.has(session));
}

// A connect right after both peers registered again (before any tick) finds the adopted
// session: no second session for the pair.
TEST(Restart, ConnectBeforeTheNextTickReusesTheAdoptedSession) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    const uint64_t session = h.relayed_pair(a, b);
    h.restart_control();
    h.core->adopt(live(h.dataplane), h.now);
    h.register_and_classify(a);
    h.register_and_classify(b);
    EXPECT_FALSE(h.core->allocations().at(session).adopted);
    Outbox out;
    const Message m = h.request(a, 0, Connect{b.wg.public_key, false}, &out);
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(m.body));
    const auto offers = b.notifications<RelayOffer>(out);
    ASSERT_EQ(offers.size(), 1u);
    EXPECT_EQ(offers[0].session_id, session);
    EXPECT_EQ(h.dataplane.added.size(), 1u) << "no second session";
}

TEST(Restart, AdoptedSessionOfPeersThatDoNotComeBackIsReleased) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    const uint64_t session = h.relayed_pair(a, b);
    h.restart_control();
    const uint64_t adopted_at = h.now;
    h.core->adopt(live(h.dataplane), adopted_at);

    h.register_and_classify(a);  // only a comes back
    h.now = adopted_at + 74'999;
    h.request(a, 0, Keepalive{});
    h.tick();
    EXPECT_TRUE(h.dataplane.has(session));
    h.now = adopted_at + 75'000;
    h.tick();
    EXPECT_FALSE(h.dataplane.has(session));
    EXPECT_TRUE(h.core->allocations().empty());
    EXPECT_EQ(h.metric("relay_control_relay_releases_total", {{"reason", "peers_not_back"}}), 1);
    EXPECT_EQ(h.metric("relay_control_relay_sessions"), 0);
}

TEST(Restart, AdoptedPortsAreReserved) {
    Harness h;
    // The data plane holds sessions on every port of the range but one.
    for (uint16_t port = kRelayPortMin; port < kRelayPortMax; ++port)
        ASSERT_FALSE(h.dataplane.add_session(foreign_spec(1000 + port, port)));
    h.core->adopt(live(h.dataplane), h.now);
    EXPECT_EQ(h.core->allocations().size(), 9u);

    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    TestPeer c = h.symmetric_peer(), d = h.symmetric_peer();
    const uint64_t session = h.relayed_pair(a, b);
    const SessionSpec& spec = h.dataplane.sessions.at(session);
    EXPECT_EQ(spec.relay_port, kRelayPortMax) << "the only port not taken";
    for (uint16_t port = kRelayPortMin; port < kRelayPortMax; ++port)
        EXPECT_NE(session, uint64_t{1000} + port) << "session ids do not meet adopted ones";

    const Message m = h.request(c, 0, Connect{d.wg.public_key, false});
    ASSERT_TRUE(std::holds_alternative<Error>(m.body));
    EXPECT_EQ(std::get<Error>(m.body).code, ErrorCode::no_relay_ports);
}

TEST(Restart, AdoptIsIdempotent) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    const uint64_t session = h.relayed_pair(a, b);
    h.core->adopt(live(h.dataplane), h.now);  // already ours: not adopted again
    EXPECT_FALSE(h.core->allocations().at(session).adopted);
    EXPECT_EQ(h.core->allocations().size(), 1u);
}

TEST(Restart, ReprogramAddsEveryAllocationToAFreshDataplane) {
    Harness h;
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    TestPeer c = h.symmetric_peer(), d = h.symmetric_peer();
    h.relayed_pair(a, b);
    h.relayed_pair(c, d);
    h.relayed_pair(a, c);
    const std::map<uint64_t, SessionSpec> before = h.dataplane.sessions;
    ASSERT_EQ(before.size(), 3u);

    h.dataplane.restart();
    EXPECT_EQ(h.core->reprogram(), 0u);
    EXPECT_EQ(h.dataplane.sessions, before);
    EXPECT_EQ(h.metric("relay_control_dataplane_reprograms_total"), 1);

    // Sessions it still has ("exists") are not failures; an unreachable data plane is.
    EXPECT_EQ(h.core->reprogram(), 0u);
    h.dataplane.unavailable = true;
    EXPECT_EQ(h.core->reprogram(), 3u);
    h.dataplane.unavailable = false;
    h.dataplane.refuse_adds = ipc::Status::table_full;
    EXPECT_EQ(h.core->reprogram(), 3u);
}

TEST(Restart, ReprogramAlsoCoversAdoptedSessions) {
    Harness h;
    ASSERT_FALSE(h.dataplane.add_session(foreign_spec(77, kRelayPortMin)));
    h.core->adopt(live(h.dataplane), h.now);
    const auto before = h.dataplane.sessions;
    h.dataplane.restart();
    EXPECT_EQ(h.core->reprogram(), 0u);
    EXPECT_EQ(h.dataplane.sessions, before);
}

TEST(Restart, ReconcileForgetsWhatTheDataplaneExpired) {
    Harness h([](Config& c) { c.control.relay.port_max = c.control.relay.port_min + 1; });
    TestPeer a = h.symmetric_peer(), b = h.symmetric_peer();
    TestPeer c = h.symmetric_peer(), d = h.symmetric_peer();
    const uint64_t ab = h.relayed_pair(a, b);
    const uint64_t cd = h.relayed_pair(c, d);
    // The data plane's idle timeout removed a-b's session.
    h.dataplane.sessions.erase(ab);
    h.core->reconcile(live(h.dataplane), h.now);
    EXPECT_EQ(h.core->allocations().count(ab), 0u);
    EXPECT_EQ(h.core->allocations().count(cd), 1u);
    EXPECT_TRUE(h.peer_state(a)->sessions.empty());
    EXPECT_TRUE(h.peer_state(b)->sessions.empty());
    EXPECT_EQ(h.peer_state(c)->sessions, std::set<uint64_t>{cd});
    EXPECT_EQ(h.metric("relay_control_relay_releases_total", {{"reason", "dataplane_expired"}}), 1);
    EXPECT_EQ(h.metric("relay_control_relay_sessions"), 1);
    // Its port is free again, and a new connect gets a new session.
    const uint64_t again = h.relayed_pair(a, b);
    EXPECT_NE(again, ab);
    EXPECT_TRUE(h.dataplane.has(again));
    EXPECT_TRUE(h.dataplane.has(cd));
}

// Tenant isolation after a restart: an adopted session belongs to the network that
// allocated it.  Peers of another network that register the very same WireGuard keys
// can neither claim it, nor be offered it, nor release it.
TEST(Restart, AdoptedSessionStaysWithItsNetwork) {
    Harness h;
    TestPeer a = h.symmetric_peer("alpha"), b = h.symmetric_peer("alpha");
    const uint64_t session = h.relayed_pair(a, b);
    const SessionSpec spec = h.dataplane.sessions.at(session);
    h.restart_control();
    h.core->adopt(live(h.dataplane), h.now);

    // Beta's peers hold the same WireGuard keys (public: anyone can name them).
    TestPeer c = h.make_peer("beta", Mapping::symmetric);
    TestPeer d = h.make_peer("beta", Mapping::symmetric);
    c.wg = a.wg;
    d.wg = b.wg;
    h.register_and_classify(c);
    h.register_and_classify(d);
    h.tick();
    EXPECT_TRUE(h.core->allocations().at(session).adopted) << "not claimed by beta";
    EXPECT_TRUE(h.peer_state(c)->sessions.empty());
    EXPECT_TRUE(h.peer_state(d)->sessions.empty());

    // Beta cannot release it, and a connect of beta's pair gets a session of its own.
    const Message r = h.request(c, 0, Release{session});
    ASSERT_TRUE(std::holds_alternative<Error>(r.body));
    EXPECT_EQ(std::get<Error>(r.body).code, ErrorCode::unknown_session);
    EXPECT_TRUE(h.dataplane.has(session));
    Outbox out;
    ASSERT_TRUE(
        std::holds_alternative<ConnectAck>(h.request(c, 0, Connect{d.wg.public_key}, &out).body));
    const auto offers = d.notifications<RelayOffer>(out);
    ASSERT_EQ(offers.size(), 1u);
    EXPECT_NE(offers[0].session_id, session);
    EXPECT_NE(offers[0].relay.port, spec.relay_port);

    // Alpha's peers come back: it is theirs.
    h.register_and_classify(a);
    h.register_and_classify(b);
    h.tick();
    ASSERT_EQ(h.core->allocations().count(session), 1u);
    EXPECT_FALSE(h.core->allocations().at(session).adopted);
    EXPECT_EQ(h.core->allocations().at(session).network, kAlpha);
    out.clear();
    ASSERT_TRUE(
        std::holds_alternative<ConnectAck>(h.request(a, 0, Connect{b.wg.public_key}, &out).body));
    const auto again = b.notifications<RelayOffer>(out);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].session_id, session);
}

// The adopted session of a network whose peers do not come back is released at the
// deadline even though another network's peers with the same keys are active.
TEST(Restart, AnotherNetworksPeersDoNotKeepAnAdoptedSession) {
    Harness h;
    TestPeer a = h.symmetric_peer("alpha"), b = h.symmetric_peer("alpha");
    const uint64_t session = h.relayed_pair(a, b);
    h.restart_control();
    const uint64_t adopted_at = h.now;
    h.core->adopt(live(h.dataplane), adopted_at);
    TestPeer c = h.make_peer("beta", Mapping::symmetric);
    TestPeer d = h.make_peer("beta", Mapping::symmetric);
    c.wg = a.wg;
    d.wg = b.wg;
    h.register_and_classify(c);
    h.register_and_classify(d);
    h.now = adopted_at + 75'000;
    h.request(c, 0, Keepalive{});
    h.request(d, 0, Keepalive{});
    h.tick();
    EXPECT_FALSE(h.dataplane.has(session));
    EXPECT_EQ(h.metric("relay_control_relay_releases_total", {{"reason", "peers_not_back"}}), 1);
}

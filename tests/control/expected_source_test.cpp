// Expected sources (issue 9, "Session latching", control's half): a relay session's side
// expects its peer where control observed that peer's authenticated registration: the
// public IP of its WireGuard port always, and the port too where its NAT maps
// endpoint-independently and WireGuard's port was observed.  When the peer registers
// again or its observation changes (roaming), the data plane is told (update_session).
#include <gtest/gtest.h>

#include "core_harness.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

// WireGuard's probe initiation from `source`: control learns the WireGuard port's mapping.
void observe_wireguard(Harness& h, const TestPeer& p, SocketAddress source) {
    EXPECT_TRUE(h.deliver(0, source, wireguard_initiation(p.probe.public_key)).empty());
    ASSERT_TRUE(h.peer_state(p)->wg_reflexive.has_value());
    EXPECT_EQ(*h.peer_state(p)->wg_reflexive, source);
}

const SideSpec& side_of(const FakeDataplane& dp, uint64_t id, size_t side) {
    return dp.sessions.at(id).sides[side];
}

// control.relay.pin_source_port: true (off by default, see DefaultExpectsTheIpOnly).
void pin_ports(Config& c) {
    c.control.relay.pin_source_port = true;
}

Ipv4Prefix host(Ipv4 ip) {
    return Ipv4Prefix{ip, 32};
}

}  // namespace

TEST(ExpectedSource, UnobservedWireGuardPortExpectsTheRegistrationsIpOnAnyPort) {
    Harness h;
    TestPeer a = h.make_peer("alpha", Mapping::symmetric);
    TestPeer b = h.make_peer("alpha", Mapping::endpoint_independent);
    h.register_and_classify(a);
    h.register_and_classify(b);
    const uint64_t id = h.relayed_pair(a, b, true);
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_source, host(a.source[0].ip));
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_port, 0);
    EXPECT_EQ(side_of(h.dataplane, id, 1).allowed_source, host(b.source[0].ip));
    EXPECT_EQ(side_of(h.dataplane, id, 1).allowed_port, 0) << "WireGuard's port not observed";
}

TEST(ExpectedSource, EndpointIndependentNatWithObservedPortExpectsIpAndPort) {
    Harness h(pin_ports);
    TestPeer a = h.make_peer("alpha", Mapping::endpoint_independent);  // port-restricted
    TestPeer b = h.make_peer("alpha", Mapping::symmetric);
    h.register_and_classify(a);
    h.register_and_classify(b);
    ASSERT_EQ(h.nat_class(a), NatClass::port_restricted);
    ASSERT_EQ(h.nat_class(b), NatClass::symmetric);
    // WireGuard's own ports, as their NATs map them (another IP of a's NAT pool for a).
    const SocketAddress a_wg{ip4(203, 0, 113, 201), a.wg_listen_port};
    const SocketAddress b_wg{b.source[0].ip, b.wg_listen_port};
    observe_wireguard(h, a, a_wg);
    observe_wireguard(h, b, b_wg);
    const uint64_t id = h.relayed_pair(a, b, true);
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_source, host(a_wg.ip));
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_port, a_wg.port);
    EXPECT_EQ(side_of(h.dataplane, id, 1).allowed_source, host(b_wg.ip));
    EXPECT_EQ(side_of(h.dataplane, id, 1).allowed_port, 0)
        << "a symmetric NAT maps WireGuard's port anew towards the relay";
    EXPECT_TRUE(h.dataplane.updates.empty()) << "programmed right the first time";
}

// A NAT classified endpoint-independent from the agent's socket may still have given
// WireGuard's socket another port (a clash with an older mapping of the same port, as
// Linux's masquerade does after the host changed its LAN address): the port is pinned
// only where it shows the NAT kept WireGuard's own listen port, which it then keeps
// towards every destination.  Else the data plane would refuse WireGuard's packets to the
// relay, whose mapping control never saw (tests/e2e test_9 found it).
TEST(ExpectedSource, PortIsPinnedOnlyWhereTheNatPreservedWireGuardsPort) {
    Harness h(pin_ports);
    TestPeer a = h.make_peer("alpha", Mapping::endpoint_independent);
    TestPeer b = h.make_peer("alpha", Mapping::endpoint_independent);
    h.register_and_classify(a);
    h.register_and_classify(b);
    ASSERT_EQ(h.nat_class(a), NatClass::port_restricted);
    observe_wireguard(h, a, {a.source[0].ip, static_cast<uint16_t>(a.wg_listen_port + 7)});
    observe_wireguard(h, b, {b.source[0].ip, b.wg_listen_port});
    const uint64_t id = h.relayed_pair(a, b, true);
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_source, host(a.source[0].ip));
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_port, 0) << "WireGuard's port not preserved";
    EXPECT_EQ(side_of(h.dataplane, id, 1).allowed_port, b.wg_listen_port);
}

TEST(ExpectedSource, ObservationAfterAllocationUpdatesTheSession) {
    Harness h(pin_ports);
    TestPeer a = h.make_peer("alpha", Mapping::endpoint_independent);
    TestPeer b = h.make_peer("alpha", Mapping::endpoint_independent);
    h.register_and_classify(a);
    h.register_and_classify(b);
    const uint64_t id = h.relayed_pair(a, b, true);
    ASSERT_EQ(side_of(h.dataplane, id, 1).allowed_port, 0);
    const SocketAddress b_wg{b.source[0].ip, b.wg_listen_port};
    observe_wireguard(h, b, b_wg);
    ASSERT_EQ(h.dataplane.updates.size(), 1u);
    const SessionUpdate& u = h.dataplane.updates.back();
    EXPECT_EQ(u.id, id);
    EXPECT_EQ(u.allowed_source[1], host(b_wg.ip));
    EXPECT_EQ(u.allowed_port[1], b_wg.port);
    EXPECT_EQ(u.allowed_source[0], host(a.source[0].ip)) << "the other side as it was";
    EXPECT_EQ(u.allowed_port[0], 0);
    EXPECT_EQ(u.idle_timeout_s, h.dataplane.sessions.at(id).idle_timeout_s);
    EXPECT_EQ(h.metric("relay_control_session_updates_total", {{"result", "ok"}}), 1);
    // Nothing changed: no second update.
    h.request(b, 0, Keepalive{});
    EXPECT_EQ(h.dataplane.updates.size(), 1u);
}

TEST(ExpectedSource, RoamingPeerRegistersAgainAndTheSessionFollows) {
    Harness h(pin_ports);
    TestPeer a = h.make_peer("alpha", Mapping::endpoint_independent);
    TestPeer b = h.make_peer("alpha", Mapping::endpoint_independent);
    h.register_and_classify(a);
    h.register_and_classify(b);
    observe_wireguard(h, a, {a.source[0].ip, a.wg_listen_port});
    const uint64_t id = h.relayed_pair(a, b, true);
    ASSERT_EQ(side_of(h.dataplane, id, 0).allowed_port, a.wg_listen_port);

    // a moves to another network: it registers again from there.
    const SocketAddress moved{ip4(198, 18, 7, 7), 33000};
    a.source = {moved, moved};
    a.probe = generate_key_pair();
    h.register_peer(a);
    ASSERT_FALSE(h.dataplane.updates.empty());
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_source, host(moved.ip));
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_port, 0) << "its new WireGuard port not seen";
    EXPECT_EQ(h.core->allocations().at(id).spec, h.dataplane.sessions.at(id));

    // Classified and observed again: the port too.
    ASSERT_TRUE(std::holds_alternative<Status>(h.request(a, 1, Keepalive{}).body));
    observe_wireguard(h, a, {moved.ip, a.wg_listen_port});
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_source, host(moved.ip));
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_port, a.wg_listen_port);
    EXPECT_EQ(h.core->allocations().at(id).spec, h.dataplane.sessions.at(id));
}

TEST(ExpectedSource, KeepaliveFromANewMappingForgetsTheObservedPort) {
    Harness h;
    TestPeer a = h.make_peer("alpha", Mapping::endpoint_independent);
    TestPeer b = h.make_peer("alpha", Mapping::endpoint_independent);
    h.register_and_classify(a);
    h.register_and_classify(b);
    observe_wireguard(h, a, {a.source[0].ip, a.wg_listen_port});
    const uint64_t id = h.relayed_pair(a, b, true);
    // Its NAT gave it a new public address: the WireGuard port's mapping is void.
    const SocketAddress moved{ip4(198, 18, 9, 9), 34000};
    ASSERT_TRUE(std::holds_alternative<Status>(h.request(a, 0, Keepalive{}, nullptr).body));
    Outbox out = h.send(a, 0, Keepalive{}, moved);
    ASSERT_EQ(a.received(out).size(), 1u);
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_source, host(moved.ip));
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_port, 0);
}

TEST(ExpectedSource, AnUpdateTheDataplaneMissedIsSentAgain) {
    Harness h(pin_ports);
    TestPeer a = h.make_peer("alpha", Mapping::endpoint_independent);
    TestPeer b = h.make_peer("alpha", Mapping::endpoint_independent);
    h.register_and_classify(a);
    h.register_and_classify(b);
    const uint64_t id = h.relayed_pair(a, b, true);
    h.dataplane.unavailable = true;
    observe_wireguard(h, b, {b.source[0].ip, b.wg_listen_port});
    EXPECT_TRUE(h.dataplane.updates.empty());
    EXPECT_EQ(
        h.metric("relay_control_session_updates_total", {{"result", "dataplane_unavailable"}}), 1);
    EXPECT_EQ(h.core->allocations().at(id).spec.sides[1].allowed_port, b.wg_listen_port)
        << "kept as what the data plane should have";
    h.now += 1000;
    h.tick();  // still down: tried, failed
    h.dataplane.unavailable = false;
    h.now += 1000;
    h.tick();
    ASSERT_EQ(h.dataplane.updates.size(), 1u);
    EXPECT_EQ(side_of(h.dataplane, id, 1).allowed_port, b.wg_listen_port);
    h.now += 1000;
    h.tick();
    EXPECT_EQ(h.dataplane.updates.size(), 1u) << "sent once";
}

TEST(ExpectedSource, ReprogrammedSessionsCarryTheLatestSources) {
    Harness h(pin_ports);
    TestPeer a = h.make_peer("alpha", Mapping::endpoint_independent);
    TestPeer b = h.make_peer("alpha", Mapping::endpoint_independent);
    h.register_and_classify(a);
    h.register_and_classify(b);
    const uint64_t id = h.relayed_pair(a, b, true);
    observe_wireguard(h, b, {b.source[0].ip, b.wg_listen_port});
    h.dataplane.restart();
    EXPECT_EQ(h.core->reprogram(), 0u);
    EXPECT_EQ(side_of(h.dataplane, id, 1).allowed_port, b.wg_listen_port);
    EXPECT_EQ(side_of(h.dataplane, id, 1).allowed_source, host(b.source[0].ip));
}

TEST(ExpectedSource, ClaimedAdoptedSessionLearnsWhereItsPeersAreNow) {
    Harness h;
    TestPeer a = h.make_peer("alpha", Mapping::symmetric);
    TestPeer b = h.make_peer("alpha", Mapping::symmetric);
    h.register_and_classify(a);
    h.register_and_classify(b);
    const uint64_t id = h.relayed_pair(a, b, true);
    h.restart_control();
    h.core->adopt(*h.dataplane.list_sessions(), h.now);
    // b comes back from another address.
    const SocketAddress moved{ip4(198, 18, 3, 3), 35000};
    b.source = {moved, SocketAddress{moved.ip, static_cast<uint16_t>(moved.port + 1)}};
    h.register_and_classify(a);
    h.register_and_classify(b);
    EXPECT_FALSE(h.core->allocations().at(id).adopted);
    EXPECT_EQ(side_of(h.dataplane, id, 1).allowed_source, host(moved.ip));
    EXPECT_EQ(side_of(h.dataplane, id, 0).allowed_source, host(a.source[0].ip));
}

// By default a side expects its peer's public IP only, on any port: after the host changed
// its LAN address, Linux's masquerade gave WireGuard's socket another port towards the
// relay than towards control's probe port, and a pinned port locked the pair out
// (tests/e2e test_9: no reply after the change).
TEST(ExpectedSource, DefaultExpectsTheIpOnly) {
    Harness h;
    ASSERT_FALSE(h.config.control.relay.pin_source_port);
    TestPeer a = h.make_peer("alpha", Mapping::endpoint_independent);
    TestPeer b = h.make_peer("alpha", Mapping::endpoint_independent);
    h.register_and_classify(a);
    h.register_and_classify(b);
    observe_wireguard(h, a, {a.source[0].ip, a.wg_listen_port});
    observe_wireguard(h, b, {b.source[0].ip, b.wg_listen_port});
    const uint64_t id = h.relayed_pair(a, b, true);
    for (size_t side : {0, 1}) {
        EXPECT_EQ(side_of(h.dataplane, id, side).allowed_port, 0);
        EXPECT_EQ(side_of(h.dataplane, id, side).allowed_source.len, 32);
    }
}

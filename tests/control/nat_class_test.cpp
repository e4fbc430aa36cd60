// NAT classification through the protocol: keepalives on both control ports (mapping), the
// filtering probe answered from the other port, the probe's reported result, and the
// WireGuard port's reflexive address learned from a handshake initiation (BRIEF §2).
#include <gtest/gtest.h>

#include "core_harness.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

Status status_of(const Message& m) {
    const auto* s = std::get_if<Status>(&m.body);
    EXPECT_NE(s, nullptr) << "expected Status, got " << to_string(type_of(m.body));
    return s ? *s : Status{};
}

}  // namespace

TEST(NatClass, KeepalivesOnBothPortsTable) {
    struct Case {
        const char* name;
        Mapping mapping;
        bool keepalive_on_port1;
        NatClass expected;
    } cases[] = {
        {"one port only", Mapping::endpoint_independent, false, NatClass::unknown},
        {"same source on both ports", Mapping::endpoint_independent, true,
         NatClass::port_restricted},
        {"other source port on port 1", Mapping::symmetric, true, NatClass::symmetric},
        {"no NAT (reflexive is local)", Mapping::none, true, NatClass::open},
        {"no NAT, one port only", Mapping::none, false, NatClass::unknown},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        Harness h;
        TestPeer p = h.make_peer("alpha", c.mapping);
        h.register_peer(p);
        Status s = status_of(h.request(p, 0, Keepalive{}));
        EXPECT_EQ(s.reflexive, p.source[0]);
        EXPECT_EQ(s.server_port, 3478);
        if (c.keepalive_on_port1) {
            Outbox out;
            s = status_of(h.request(p, 1, Keepalive{}, &out));
            ASSERT_EQ(out.size(), 1u);
            EXPECT_EQ(out[0].port_index, 1);
            EXPECT_EQ(out[0].to, p.source[1]);
            EXPECT_EQ(s.reflexive, p.source[1]);
            EXPECT_EQ(s.server_port, 3479);
            // The reply to the keepalive that completed the observation already has the class.
            EXPECT_EQ(s.nat_class, c.expected);
        }
        EXPECT_EQ(h.nat_class(p), c.expected) << to_string(h.nat_class(p));
        // The class in a Status is the one known when it was sent.
        EXPECT_EQ(status_of(h.request(p, 0, Keepalive{})).nat_class, c.expected);
    }
}

TEST(NatClass, OtherAddressOnPort1IsSymmetric) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    p.source[1].ip = ip4(203, 0, 113, 250);  // a NAT with an address pool
    h.register_and_classify(p);
    EXPECT_EQ(h.nat_class(p), NatClass::symmetric);
}

TEST(NatClass, MappingChangeReclassifies) {
    Harness h;
    TestPeer p = h.make_peer("alpha", Mapping::symmetric);
    h.register_and_classify(p);
    ASSERT_EQ(h.nat_class(p), NatClass::symmetric);
    // It moved behind an endpoint-independent NAT: both ports see one source again.
    const SocketAddress moved{ip4(203, 0, 113, 240), 7000};
    p.source = {moved, moved};
    h.request(p, 0, Keepalive{});
    EXPECT_EQ(h.nat_class(p), NatClass::symmetric) << "port 1 still has the old source";
    h.request(p, 1, Keepalive{});
    EXPECT_EQ(h.nat_class(p), NatClass::port_restricted);
    EXPECT_EQ(h.peer_state(p)->notify_to, moved);
}

TEST(NatClass, ReRegistrationStartsTheObservationAfresh) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_and_classify(p);
    ASSERT_EQ(h.nat_class(p), NatClass::port_restricted);
    h.register_peer(p);
    EXPECT_EQ(h.nat_class(p), NatClass::unknown);
    EXPECT_FALSE(h.peer_state(p)->observation.seen_on_port[1].has_value());
}

TEST(NatClass, RoundTripFromKeepalivesIsKept) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);
    h.request(p, 0, Keepalive{35'000, false, false, false});
    EXPECT_EQ(h.peer_state(p)->rtt_us, 35'000u);
    h.request(p, 0, Keepalive{0, false, false, false});
    EXPECT_EQ(h.peer_state(p)->rtt_us, 35'000u) << "0 means not measured, not zero";
}

// The filtering probe: the agent sends a keepalive from a fresh socket asking for the
// answer from the other port.  The answer leaves from the other port to that socket, and
// the fresh socket's mapping is not the agent's: the observation does not change.
TEST(NatClass, FilteringProbeAnsweredFromTheOtherPort) {
    for (uint8_t port : {0, 1}) {
        SCOPED_TRACE(int{port});
        Harness h;
        TestPeer p = h.make_peer("alpha");
        h.register_and_classify(p);
        const NatObservation before = h.peer_state(p)->observation;
        const SocketAddress notify_before = h.peer_state(p)->notify_to;

        const SocketAddress fresh{p.source[0].ip, 61111};
        Outbox out = h.send(p, port, Keepalive{0, true, false, false}, fresh);
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(out[0].port_index, port ^ 1);
        EXPECT_EQ(out[0].to, fresh);
        auto m = p.open(out[0].bytes);
        ASSERT_TRUE(m);
        Status s = status_of(*m);
        EXPECT_EQ(s.reflexive, fresh);
        EXPECT_EQ(s.server_port, h.config.control.ports[port ^ 1]);

        const Peer* after = h.peer_state(p);
        EXPECT_EQ(after->observation.seen_on_port[0], before.seen_on_port[0]);
        EXPECT_EQ(after->observation.seen_on_port[1], before.seen_on_port[1]);
        EXPECT_EQ(after->notify_to, notify_before);
        EXPECT_EQ(after->nat_class, NatClass::port_restricted);
    }
}

TEST(NatClass, ProbeResultDecidesConeOrPortRestricted) {
    ASSERT_TRUE(codec_has_probe_bits()) << "the Keepalive codec must carry probe_done and "
                                           "probe_reply_seen (flags bits 1 and 2)";
    struct Case {
        const char* name;
        bool probe_done, reply_seen;
        NatClass expected;
    } cases[] = {
        {"probe answered", true, true, NatClass::cone},
        {"probe lost", true, false, NatClass::port_restricted},
        {"no probe yet", false, false, NatClass::port_restricted},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        Harness h;
        TestPeer p = h.make_peer("alpha");
        h.register_and_classify(p);
        Status s = status_of(h.request(p, 0, Keepalive{1000, false, c.probe_done, c.reply_seen}));
        EXPECT_EQ(h.nat_class(p), c.expected);
        EXPECT_EQ(s.nat_class, c.expected);
    }
    // A symmetric NAT stays symmetric whatever the probe says.
    Harness h;
    TestPeer p = h.make_peer("alpha", Mapping::symmetric);
    h.register_and_classify(p);
    h.request(p, 0, Keepalive{0, false, true, true});
    EXPECT_EQ(h.nat_class(p), NatClass::symmetric);
}

TEST(WireGuardObservation, InitiationWithTheProbeKeysMac1SetsTheReflexiveAddress) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_and_classify(p);
    EXPECT_EQ(status_of(h.request(p, 0, Keepalive{})).wg_reflexive, SocketAddress{});

    const SocketAddress wg_source{p.source[0].ip, 45678};
    const auto initiation = wireguard_initiation(p.probe.public_key);
    ASSERT_EQ(initiation.size(), 148u);
    EXPECT_TRUE(h.deliver(0, wg_source, initiation).empty()) << "never answered";
    ASSERT_TRUE(h.peer_state(p)->wg_reflexive.has_value());
    EXPECT_EQ(*h.peer_state(p)->wg_reflexive, wg_source);
    EXPECT_EQ(h.metric("relay_control_wireguard_observations_total"), 1);
    EXPECT_EQ(status_of(h.request(p, 0, Keepalive{})).wg_reflexive, wg_source);

    // The probe key was used up: a replayed initiation from elsewhere changes nothing.
    EXPECT_TRUE(h.deliver(0, {ip4(198, 18, 0, 9), 1}, initiation).empty());
    EXPECT_EQ(*h.peer_state(p)->wg_reflexive, wg_source);
    EXPECT_EQ(h.rejected("wireguard_unknown_probe"), 1);
}

TEST(WireGuardObservation, WrongMac1OrNoProbeIsIgnored) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);
    const SocketAddress wg_source{p.source[0].ip, 45678};
    // mac1 keyed for another key (its WireGuard key, say), or a corrupted one.
    EXPECT_TRUE(h.deliver(0, wg_source, wireguard_initiation(p.wg.public_key)).empty());
    auto corrupted = wireguard_initiation(p.probe.public_key);
    corrupted[20] ^= 1;
    EXPECT_TRUE(h.deliver(0, wg_source, corrupted).empty());
    EXPECT_FALSE(h.peer_state(p)->wg_reflexive.has_value());
    EXPECT_EQ(h.rejected("wireguard_unknown_probe"), 2);

    // A peer that registered no probe key is never matched.
    TestPeer q = h.make_peer("alpha");
    q.send_probe_key = false;
    h.register_peer(q);
    EXPECT_TRUE(h.deliver(0, q.source[0], wireguard_initiation(q.probe.public_key)).empty());
    EXPECT_FALSE(h.peer_state(q)->wg_reflexive.has_value());
}

TEST(WireGuardObservation, ProbeKeyExpires) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);
    h.now += 61'000;               // probe keys live 60 s
    h.request(p, 0, Keepalive{});  // the peer itself stays
    h.tick();
    EXPECT_TRUE(h.deliver(0, p.source[0], wireguard_initiation(p.probe.public_key)).empty());
    ASSERT_NE(h.peer_state(p), nullptr);
    EXPECT_FALSE(h.peer_state(p)->wg_reflexive.has_value());
}

TEST(NatClass, PeersGaugeByClass) {
    Harness h;
    TestPeer a = h.make_peer("alpha", Mapping::symmetric);
    TestPeer b = h.make_peer("alpha", Mapping::symmetric);
    TestPeer c = h.make_peer("beta", Mapping::endpoint_independent);
    TestPeer d = h.make_peer("beta", Mapping::endpoint_independent);
    h.register_and_classify(a);
    h.register_and_classify(b);
    h.register_and_classify(c);
    h.register_peer(d);
    h.now += 1000;
    h.tick();
    EXPECT_EQ(h.metric("relay_control_peers", {{"nat_class", "symmetric"}}), 2);
    EXPECT_EQ(h.metric("relay_control_peers", {{"nat_class", "port_restricted"}}), 1);
    EXPECT_EQ(h.metric("relay_control_peers", {{"nat_class", "unknown"}}), 1);
    EXPECT_EQ(h.metric("relay_control_peers", {{"nat_class", "cone"}}), 0);
}

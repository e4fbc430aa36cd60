// Rendezvous (BRIEF §5, §6): connect decides punch or relay from the pair's classes, sends
// both peers each other's candidates and fire delays, allocates and offers relay sessions,
// and follows results, releases and peer timeouts.  Networks never meet.  Promotion of a
// relayed pair back to direct.
#include <gtest/gtest.h>

#include <algorithm>

#include "core_harness.hpp"
#include "nat_policy.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

ErrorCode error_code(const Message& m) {
    const auto* e = std::get_if<Error>(&m.body);
    EXPECT_NE(e, nullptr) << "expected an Error, got " << to_string(type_of(m.body));
    return e ? e->code : ErrorCode::internal;
}

ConnectAck ack_of(const Message& m) {
    const auto* a = std::get_if<ConnectAck>(&m.body);
    EXPECT_NE(a, nullptr) << "expected ConnectAck, got " << to_string(type_of(m.body))
                          << (std::holds_alternative<Error>(m.body)
                                  ? std::string(" ") + to_string(std::get<Error>(m.body).code)
                                  : std::string());
    return a ? *a : ConnectAck{};
}

TestPeer classified(Harness& h, Mapping mapping, uint32_t rtt_us = 0,
                    const std::string& network = "alpha") {
    TestPeer p = h.make_peer(network, mapping);
    h.register_and_classify(p, rtt_us);
    return p;
}

Message connect(Harness& h, TestPeer& from, const TestPeer& to, Outbox* out = nullptr,
                bool force_relay = false) {
    return h.request(from, 0, Connect{to.wg.public_key, force_relay}, out);
}

Message result(Harness& h, TestPeer& from, uint64_t attempt, const TestPeer& other, Outcome o,
               Outbox* out = nullptr) {
    return h.request(from, 0, ResultReport{attempt, other.wg.public_key, o, 100}, out);
}

Candidate reflexive(const TestPeer& p) {
    return {{p.source[0].ip, p.wg_listen_port}, CandidateKind::reflexive};
}

// A relayed pair: a and b symmetric, connected.  Returns the session id.
uint64_t relayed_pair(Harness& h, TestPeer& a, TestPeer& b) {
    Outbox out;
    const ConnectAck ack = ack_of(connect(h, a, b, &out));
    EXPECT_TRUE(ack.relayed);
    auto offers = a.notifications<RelayOffer>(out);
    EXPECT_EQ(offers.size(), 1u);
    return offers.empty() ? 0 : offers[0].session_id;
}

}  // namespace

TEST(Rendezvous, PunchablePairGetsPunchesWithCandidatesAndFireDelays) {
    Harness h;
    TestPeer a = classified(h, Mapping::endpoint_independent, 20'000);
    TestPeer b = classified(h, Mapping::endpoint_independent, 200'000);
    ASSERT_TRUE(can_punch(h.nat_class(a), h.nat_class(b)));

    Outbox out;
    const ConnectAck ack = ack_of(connect(h, a, b, &out));
    EXPECT_FALSE(ack.relayed);
    EXPECT_NE(ack.attempt_id, 0u);
    EXPECT_EQ(h.core->pending_attempts(), 1u);
    EXPECT_TRUE(h.dataplane.added.empty());

    // Notifications go to each peer's port-0 source from port 0.
    for (const TestPeer* p : {&a, &b}) {
        auto got = p->received(out);
        size_t punches = 0;
        for (const Received& r : got) {
            if (!std::holds_alternative<Punch>(r.message.body)) continue;
            ++punches;
            EXPECT_EQ(r.to, p->source[0]);
            EXPECT_EQ(r.port_index, 0);
            EXPECT_EQ(r.message.request_id, 0u);
        }
        EXPECT_EQ(punches, 1u);
    }
    const Punch to_a = a.notifications<Punch>(out).at(0);
    const Punch to_b = b.notifications<Punch>(out).at(0);
    EXPECT_EQ(to_a.attempt_id, ack.attempt_id);
    EXPECT_EQ(to_b.attempt_id, ack.attempt_id);
    EXPECT_EQ(to_a.peer, b.wg.public_key);
    EXPECT_EQ(to_b.peer, a.wg.public_key);
    EXPECT_EQ(to_a.candidates, std::vector<Candidate>{reflexive(b)});
    EXPECT_EQ(to_b.candidates, std::vector<Candidate>{reflexive(a)});
    EXPECT_EQ(to_a.deadline_ms, 2500u);
    EXPECT_EQ(to_b.deadline_ms, 2500u);
    // a hears it after 10 ms, b after 100 ms: both fire 250 ms after control sent them.
    const FireDelays d = fire_delays(20'000, 200'000, 150);
    EXPECT_EQ(to_a.fire_delay_ms, d.a_ms);
    EXPECT_EQ(to_b.fire_delay_ms, d.b_ms);
    EXPECT_EQ(to_a.fire_delay_ms, 240u);
    EXPECT_EQ(to_b.fire_delay_ms, 150u);
    EXPECT_EQ(h.metric("relay_control_connects_total", {{"decision", "punch"}}), 1);
}

TEST(Rendezvous, ObservedWireGuardPortIsTheReflexiveCandidate) {
    Harness h;
    TestPeer a = classified(h, Mapping::endpoint_independent);
    TestPeer b = classified(h, Mapping::endpoint_independent);
    // b's NAT does not preserve WireGuard's port: control saw its initiation from 61000.
    const SocketAddress b_wg{b.source[0].ip, 61000};
    EXPECT_TRUE(h.deliver(1, b_wg, wireguard_initiation(b.probe.public_key)).empty());

    Outbox out;
    ack_of(connect(h, a, b, &out));
    EXPECT_EQ(a.notifications<Punch>(out).at(0).candidates,
              (std::vector<Candidate>{{b_wg, CandidateKind::reflexive}}));
    EXPECT_EQ(b.notifications<Punch>(out).at(0).candidates, std::vector<Candidate>{reflexive(a)});
}

TEST(Rendezvous, SamePublicAddressGetsLocalCandidatesFirst) {
    Harness h;
    const Ipv4 nat = ip4(203, 0, 113, 150);
    TestPeer a = h.make_peer("alpha", Mapping::endpoint_independent, SocketAddress{nat, 1111});
    TestPeer b = h.make_peer("alpha", Mapping::endpoint_independent, SocketAddress{nat, 2222});
    a.local_addresses = {{ip4(192, 168, 7, 2), 1111}, {ip4(10, 9, 0, 2), 1111}};
    b.local_addresses = {{ip4(192, 168, 7, 3), 2222}};
    h.register_and_classify(a);
    h.register_and_classify(b);

    Outbox out;
    ack_of(connect(h, a, b, &out));
    const std::vector<Candidate> for_b_about_a = {
        {{ip4(192, 168, 7, 2), a.wg_listen_port}, CandidateKind::local},
        {{ip4(10, 9, 0, 2), a.wg_listen_port}, CandidateKind::local},
        reflexive(a),
    };
    const std::vector<Candidate> for_a_about_b = {
        {{ip4(192, 168, 7, 3), b.wg_listen_port}, CandidateKind::local},
        reflexive(b),
    };
    EXPECT_EQ(b.notifications<Punch>(out).at(0).candidates, for_b_about_a);
    EXPECT_EQ(a.notifications<Punch>(out).at(0).candidates, for_a_about_b);
}

TEST(Rendezvous, AtMostMaxCandidates) {
    Harness h;
    const Ipv4 nat = ip4(203, 0, 113, 151);
    TestPeer a = h.make_peer("alpha", Mapping::endpoint_independent, SocketAddress{nat, 1111});
    TestPeer b = h.make_peer("alpha", Mapping::endpoint_independent, SocketAddress{nat, 2222});
    a.local_addresses.clear();
    for (uint8_t i = 0; i < kMaxLocalAddresses; ++i)
        a.local_addresses.push_back({ip4(10, 0, i, 1), 1111});
    h.register_and_classify(a);
    h.register_and_classify(b);
    Outbox out;
    ack_of(connect(h, b, a, &out));
    const auto c = b.notifications<Punch>(out).at(0).candidates;
    ASSERT_EQ(c.size(), kMaxCandidates);
    EXPECT_EQ(c.back(), reflexive(a)) << "the reflexive candidate is never cut";
    for (size_t i = 0; i + 1 < c.size(); ++i) EXPECT_EQ(c[i].kind, CandidateKind::local);
}

TEST(Rendezvous, SymmetricPairGetsARelaySession) {
    Harness h;
    TestPeer a = classified(h, Mapping::symmetric);
    TestPeer b = classified(h, Mapping::symmetric);
    Outbox out;
    const ConnectAck ack = ack_of(connect(h, a, b, &out));
    EXPECT_TRUE(ack.relayed);
    EXPECT_TRUE(a.notifications<Punch>(out).empty());

    ASSERT_EQ(h.dataplane.sessions.size(), 1u);
    const SessionSpec spec = h.dataplane.sessions.begin()->second;
    EXPECT_NE(spec.id, 0u);
    EXPECT_EQ(spec.relay_ip, kRelayAddress);
    EXPECT_GE(spec.relay_port, kRelayPortMin);
    EXPECT_LE(spec.relay_port, kRelayPortMax);
    EXPECT_EQ(spec.policy, LatchPolicy::wireguard);
    EXPECT_EQ(spec.sides[0].public_key, a.wg.public_key) << "side 0 is the one that asked";
    EXPECT_EQ(spec.sides[1].public_key, b.wg.public_key);
    EXPECT_EQ(spec.idle_timeout_s, 180u);
    EXPECT_EQ(spec.limits.packets_per_s, 1000u);
    EXPECT_EQ(spec.limits.bytes_per_s, 1'000'000u);

    const auto to_a = a.notifications<RelayOffer>(out);
    const auto to_b = b.notifications<RelayOffer>(out);
    ASSERT_EQ(to_a.size(), 1u);
    ASSERT_EQ(to_b.size(), 1u);
    for (const RelayOffer& o : {to_a[0], to_b[0]}) {
        EXPECT_EQ(o.attempt_id, ack.attempt_id);
        EXPECT_EQ(o.session_id, spec.id);
        EXPECT_EQ(o.relay, (SocketAddress{spec.relay_ip, spec.relay_port}));
        EXPECT_EQ(o.policy, LatchPolicy::wireguard);
        EXPECT_EQ(o.idle_timeout_s, 180u);
        EXPECT_EQ(o.bind_secret, BindSecret{});
    }
    EXPECT_EQ(to_a[0].side, 0);
    EXPECT_EQ(to_b[0].side, 1);
    EXPECT_EQ(to_a[0].peer, b.wg.public_key);
    EXPECT_EQ(to_b[0].peer, a.wg.public_key);
    EXPECT_EQ(spec.sides[to_a[0].side].public_key, a.wg.public_key);
    EXPECT_EQ(spec.sides[to_b[0].side].public_key, b.wg.public_key);

    EXPECT_EQ(h.peer_state(a)->sessions, std::set<uint64_t>{spec.id});
    EXPECT_EQ(h.peer_state(b)->sessions, std::set<uint64_t>{spec.id});
    EXPECT_EQ(h.metric("relay_control_relay_allocations_total"), 1);
    EXPECT_EQ(h.metric("relay_control_relay_sessions"), 1);
    EXPECT_EQ(h.metric("relay_control_connects_total", {{"decision", "relay"}}), 1);

    // The other way round: the same session, b keeps side 1.
    out.clear();
    ack_of(connect(h, b, a, &out));
    EXPECT_EQ(h.dataplane.added.size(), 1u);
    EXPECT_EQ(b.notifications<RelayOffer>(out).at(0).side, 1);
    EXPECT_EQ(a.notifications<RelayOffer>(out).at(0).side, 0);
    EXPECT_EQ(a.notifications<RelayOffer>(out).at(0).session_id, spec.id);
}

// The decision through the core, for every pair of classes a peer can show with plain
// keepalives (cone needs the probe bits, covered when the codec carries them).
TEST(Rendezvous, DecisionFollowsCanPunchForObservableClasses) {
    struct Kind {
        NatClass cls;
        Mapping mapping;
        bool classify;
    } kinds[] = {
        {NatClass::unknown, Mapping::endpoint_independent, false},
        {NatClass::open, Mapping::none, true},
        {NatClass::port_restricted, Mapping::endpoint_independent, true},
        {NatClass::symmetric, Mapping::symmetric, true},
    };
    for (const Kind& x : kinds) {
        for (const Kind& y : kinds) {
            SCOPED_TRACE(std::string(to_string(x.cls)) + " -> " + to_string(y.cls));
            Harness h;
            TestPeer a = h.make_peer("alpha", x.mapping);
            TestPeer b = h.make_peer("alpha", y.mapping);
            x.classify ? h.register_and_classify(a) : h.register_peer(a);
            y.classify ? h.register_and_classify(b) : h.register_peer(b);
            ASSERT_EQ(h.nat_class(a), x.cls);
            ASSERT_EQ(h.nat_class(b), y.cls);
            Outbox out;
            const ConnectAck ack = ack_of(connect(h, a, b, &out));
            EXPECT_EQ(ack.relayed, !can_punch(x.cls, y.cls));
            EXPECT_EQ(b.notifications<Punch>(out).size(), ack.relayed ? 0u : 1u);
            EXPECT_EQ(b.notifications<RelayOffer>(out).size(), ack.relayed ? 1u : 0u);
            EXPECT_EQ(h.dataplane.sessions.size(), ack.relayed ? 1u : 0u);
        }
    }
}

// Peers that start together: a port-restricted peer asks to connect while its partner,
// behind a symmetric NAT, has registered but is not classified yet (unknown is tried as
// port-restricted: a punch).  As soon as the partner's class is known the punch cannot
// work, and both get the relay offer at once instead of after the punch deadline.  A
// pair the known classes let punch keeps punching.
TEST(Rendezvous, APunchDecidedOnAnUnknownClassIsRelayedOnceTheClassIsKnown) {
    for (const bool cone : {false, true}) {
        SCOPED_TRACE(cone ? "cone x symmetric" : "port-restricted x symmetric");
        Harness h;
        TestPeer a = classified(h, Mapping::endpoint_independent);
        if (cone) h.request(a, 0, Keepalive{0, false, true, true});
        TestPeer b = h.make_peer("alpha", Mapping::symmetric);
        h.register_peer(b);
        ASSERT_EQ(h.nat_class(a), cone ? NatClass::cone : NatClass::port_restricted);
        ASSERT_EQ(h.nat_class(b), NatClass::unknown);
        Outbox out;
        const ConnectAck ack = ack_of(connect(h, a, b, &out));
        ASSERT_FALSE(ack.relayed);
        ASSERT_EQ(b.notifications<Punch>(out).size(), 1u);
        h.request(b, 1, Keepalive{0, false, false, false}, &out);  // another source: symmetric
        ASSERT_EQ(h.nat_class(b), NatClass::symmetric);
        const auto offers_a = a.notifications<RelayOffer>(out);
        const auto offers_b = b.notifications<RelayOffer>(out);
        EXPECT_EQ(offers_a.size(), cone ? 0u : 1u);
        EXPECT_EQ(offers_b.size(), cone ? 0u : 1u);
        EXPECT_EQ(h.dataplane.sessions.size(), cone ? 0u : 1u);
        if (!cone && !offers_a.empty()) {
            EXPECT_EQ(offers_a[0].attempt_id, ack.attempt_id);
        }
    }
}

TEST(Rendezvous, ConePeersPunchEvenWithASymmetricOne) {
    ASSERT_TRUE(codec_has_probe_bits()) << "the Keepalive codec must carry probe_done and "
                                           "probe_reply_seen (flags bits 1 and 2)";
    Harness h;
    TestPeer a = classified(h, Mapping::endpoint_independent);
    TestPeer b = classified(h, Mapping::endpoint_independent);
    TestPeer s = classified(h, Mapping::symmetric);
    for (TestPeer* p : {&a, &b}) h.request(*p, 0, Keepalive{0, false, true, true});
    ASSERT_EQ(h.nat_class(a), NatClass::cone);
    ASSERT_EQ(h.nat_class(b), NatClass::cone);
    EXPECT_FALSE(ack_of(connect(h, a, b)).relayed);
    EXPECT_FALSE(ack_of(connect(h, s, a)).relayed);
}

TEST(Rendezvous, ForceRelay) {
    Harness h;
    TestPeer a = classified(h, Mapping::endpoint_independent);
    TestPeer b = classified(h, Mapping::endpoint_independent);
    Outbox out;
    EXPECT_TRUE(ack_of(connect(h, a, b, &out, true)).relayed);
    EXPECT_TRUE(a.notifications<Punch>(out).empty());
    EXPECT_EQ(b.notifications<RelayOffer>(out).size(), 1u);
    EXPECT_EQ(h.dataplane.sessions.size(), 1u);
    // Once a pair has a relay session, a plain connect is answered with it too.
    out.clear();
    EXPECT_TRUE(ack_of(connect(h, b, a, &out)).relayed);
    EXPECT_EQ(h.dataplane.added.size(), 1u);
}

TEST(Rendezvous, NetworksNeverMeet) {
    Harness h;
    TestPeer alpha = classified(h, Mapping::symmetric, 0, "alpha");
    TestPeer beta = classified(h, Mapping::symmetric, 0, "beta");
    TestPeer beta2 = classified(h, Mapping::symmetric, 0, "beta");
    Outbox out;
    const Message cross = connect(h, beta, alpha, &out);
    EXPECT_EQ(error_code(cross), ErrorCode::unknown_peer);
    EXPECT_TRUE(alpha.received(out).empty()) << "alpha learns nothing";
    const size_t cross_size = out.at(0).bytes.size();

    TestPeer nobody = h.make_peer("beta");  // never registered
    out.clear();
    const Message missing = connect(h, beta, nobody, &out);
    EXPECT_EQ(std::get<Error>(missing.body), std::get<Error>(cross.body))
        << "another network's peer looks exactly like one that does not exist";
    EXPECT_EQ(out.at(0).bytes.size(), cross_size);

    EXPECT_EQ(error_code(connect(h, beta, beta)), ErrorCode::unknown_peer) << "not itself";
    EXPECT_TRUE(h.dataplane.sessions.empty());
    EXPECT_EQ(h.core->pending_attempts(), 0u);
    EXPECT_TRUE(ack_of(connect(h, beta, beta2)).relayed);
}

TEST(Rendezvous, AttemptsOfAnotherNetworkOrPairAreUnknown) {
    Harness h;
    TestPeer a = classified(h, Mapping::endpoint_independent, 0, "alpha");
    TestPeer b = classified(h, Mapping::endpoint_independent, 0, "alpha");
    TestPeer c = classified(h, Mapping::endpoint_independent, 0, "alpha");
    TestPeer x = classified(h, Mapping::endpoint_independent, 0, "beta");
    const uint64_t attempt = ack_of(connect(h, a, b)).attempt_id;
    for (const Outcome o : {Outcome::direct_ok, Outcome::direct_failed, Outcome::relayed_ok}) {
        EXPECT_EQ(error_code(result(h, x, attempt, a, o)), ErrorCode::unknown_attempt);
        EXPECT_EQ(error_code(result(h, c, attempt, a, o)), ErrorCode::unknown_attempt);
        EXPECT_EQ(error_code(result(h, a, attempt + 1000, b, o)), ErrorCode::unknown_attempt);
    }
    EXPECT_TRUE(h.dataplane.sessions.empty()) << "no relay for a stranger's direct_failed";
    EXPECT_TRUE(std::holds_alternative<Ok>(result(h, b, attempt, a, Outcome::direct_ok).body));
}

TEST(Rendezvous, DirectFailedGetsARelayOffer) {
    Harness h;
    TestPeer a = classified(h, Mapping::endpoint_independent);
    TestPeer b = classified(h, Mapping::endpoint_independent);
    const uint64_t attempt = ack_of(connect(h, a, b)).attempt_id;
    Outbox out;
    EXPECT_TRUE(
        std::holds_alternative<Ok>(result(h, b, attempt, a, Outcome::direct_failed, &out).body));
    ASSERT_EQ(h.dataplane.sessions.size(), 1u);
    const SessionSpec spec = h.dataplane.sessions.begin()->second;
    const auto to_a = a.notifications<RelayOffer>(out);
    const auto to_b = b.notifications<RelayOffer>(out);
    ASSERT_EQ(to_a.size(), 1u);
    ASSERT_EQ(to_b.size(), 1u);
    EXPECT_EQ(to_a[0].attempt_id, attempt);
    EXPECT_EQ(to_a[0].session_id, spec.id);
    EXPECT_EQ(to_b[0].session_id, spec.id);
    EXPECT_NE(to_a[0].side, to_b[0].side);
    EXPECT_EQ(spec.sides[to_a[0].side].public_key, a.wg.public_key);
    EXPECT_EQ(spec.sides[to_b[0].side].public_key, b.wg.public_key);
    EXPECT_EQ(h.metric("relay_control_punch_outcomes_total", {{"outcome", "direct_failed"}}), 1);

    // a reports the same failure: still one session.
    result(h, a, attempt, b, Outcome::direct_failed);
    EXPECT_EQ(h.dataplane.added.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<Ok>(result(h, a, attempt, b, Outcome::relayed_ok).body));
    EXPECT_EQ(h.metric("relay_control_time_to_connect_seconds", {{"path", "relayed"}}), 1);
}

TEST(Rendezvous, DirectOkOnARelayedPairReleasesItsSession) {
    Harness h;
    TestPeer a = classified(h, Mapping::endpoint_independent);
    TestPeer b = classified(h, Mapping::endpoint_independent);
    Outbox out;
    const uint64_t attempt = ack_of(connect(h, a, b, &out, true)).attempt_id;
    const uint64_t session = a.notifications<RelayOffer>(out).at(0).session_id;
    ASSERT_TRUE(h.dataplane.has(session));
    EXPECT_TRUE(std::holds_alternative<Ok>(result(h, a, attempt, b, Outcome::direct_ok).body));
    EXPECT_FALSE(h.dataplane.has(session));
    EXPECT_EQ(h.dataplane.removed, std::vector<uint64_t>{session});
    EXPECT_TRUE(h.core->allocations().empty());
    EXPECT_TRUE(h.peer_state(a)->sessions.empty());
    EXPECT_TRUE(h.peer_state(b)->sessions.empty());
    EXPECT_EQ(h.metric("relay_control_relay_releases_total", {{"reason", "direct"}}), 1);
    EXPECT_EQ(h.metric("relay_control_relay_sessions"), 0);
    EXPECT_EQ(h.metric("relay_control_time_to_connect_seconds", {{"path", "direct"}}), 1);
}

TEST(Rendezvous, ReleaseBySideOnly) {
    Harness h;
    TestPeer a = classified(h, Mapping::symmetric);
    TestPeer b = classified(h, Mapping::symmetric);
    TestPeer c = classified(h, Mapping::symmetric);
    const uint64_t session = relayed_pair(h, a, b);
    EXPECT_EQ(error_code(h.request(c, 0, Release{session})), ErrorCode::unknown_session);
    EXPECT_TRUE(h.dataplane.has(session));
    EXPECT_EQ(error_code(h.request(a, 0, Release{session + 1})), ErrorCode::unknown_session);

    EXPECT_TRUE(std::holds_alternative<Ok>(h.request(b, 0, Release{session}).body));
    EXPECT_FALSE(h.dataplane.has(session));
    EXPECT_TRUE(h.peer_state(a)->sessions.empty());
    EXPECT_EQ(error_code(h.request(a, 0, Release{session})), ErrorCode::unknown_session)
        << "already released";
    EXPECT_EQ(h.metric("relay_control_relay_releases_total", {{"reason", "peer_request"}}), 1);
}

TEST(Rendezvous, PeerTimeoutForgetsThePeerAndItsSessions) {
    Harness h;
    TestPeer a = classified(h, Mapping::symmetric);
    TestPeer b = classified(h, Mapping::symmetric);
    const uint64_t session = relayed_pair(h, a, b);

    h.now += 60'000;
    h.request(b, 0, Keepalive{});  // b keeps itself alive, a is silent
    h.now = kStartMs + 75'000;
    h.tick();
    EXPECT_NE(h.peer_state(a), nullptr) << "exactly the timeout is not yet beyond it";
    h.now += 1;
    h.tick();
    EXPECT_EQ(h.peer_state(a), nullptr);
    ASSERT_NE(h.peer_state(b), nullptr);
    EXPECT_FALSE(h.dataplane.has(session));
    EXPECT_TRUE(h.peer_state(b)->sessions.empty());
    EXPECT_EQ(h.metric("relay_control_relay_releases_total", {{"reason", "peer_timeout"}}), 1);
    // a must register again, and b cannot reach it meanwhile.
    EXPECT_EQ(error_code(h.request(a, 0, Keepalive{})), ErrorCode::not_registered);
    EXPECT_EQ(error_code(connect(h, b, a)), ErrorCode::unknown_peer);
}

// The server's clock is the wall clock: a step back (NTP) must not look like a long silence.
TEST(Rendezvous, ClockStepBackDoesNotExpirePeers) {
    Harness h;
    TestPeer a = classified(h, Mapping::symmetric);
    TestPeer b = classified(h, Mapping::symmetric);
    const uint64_t session = relayed_pair(h, a, b);
    h.now -= 2'000;
    h.tick();
    EXPECT_NE(h.peer_state(a), nullptr);
    EXPECT_NE(h.peer_state(b), nullptr);
    EXPECT_TRUE(h.dataplane.has(session));
    EXPECT_EQ(h.core->pending_attempts(), 1u);
}

TEST(Rendezvous, DeregisterReleasesItsSessions) {
    Harness h;
    TestPeer a = classified(h, Mapping::symmetric);
    TestPeer b = classified(h, Mapping::symmetric);
    const uint64_t session = relayed_pair(h, a, b);
    EXPECT_TRUE(std::holds_alternative<Ok>(h.request(a, 0, Deregister{}).body));
    EXPECT_FALSE(h.dataplane.has(session));
    EXPECT_TRUE(h.peer_state(b)->sessions.empty());
}

// A new WireGuard key makes the relay sessions keyed by the old one useless (the data plane
// latches by mac1 with it): they are released, and do not count against the peer's limit.
TEST(Rendezvous, NewWireGuardKeyReleasesTheOldKeysSessions) {
    Harness h;
    TestPeer a = classified(h, Mapping::symmetric);
    TestPeer b = classified(h, Mapping::symmetric);
    TestPeer c = classified(h, Mapping::symmetric);
    const uint64_t session = relayed_pair(h, a, b);
    a.wg = generate_key_pair();
    h.register_and_classify(a);
    EXPECT_FALSE(h.dataplane.has(session));
    EXPECT_TRUE(h.peer_state(a)->sessions.empty());
    EXPECT_TRUE(h.peer_state(b)->sessions.empty());
    // Two new sessions fit in a's limit of two.
    EXPECT_TRUE(ack_of(connect(h, a, b)).relayed);
    EXPECT_TRUE(ack_of(connect(h, a, c)).relayed);
    EXPECT_EQ(h.dataplane.sessions.size(), 2u);
}

TEST(Rendezvous, AttemptsExpire) {
    Harness h;
    TestPeer a = classified(h, Mapping::endpoint_independent);
    TestPeer b = classified(h, Mapping::endpoint_independent);
    const uint64_t attempt = ack_of(connect(h, a, b)).attempt_id;
    for (int i = 0; i < 3; ++i) {  // keep both peers alive for 121 s
        h.now += 40'334;
        h.request(a, 0, Keepalive{});
        h.request(b, 0, Keepalive{});
        h.tick();
    }
    EXPECT_EQ(h.core->pending_attempts(), 0u);
    EXPECT_EQ(error_code(result(h, a, attempt, b, Outcome::direct_failed)),
              ErrorCode::unknown_attempt);
}

// ---------------------------------------------------------------- promotion

TEST(Promotion, ClassChangeTriesDirectAtOnce) {
    Harness h;
    TestPeer a = classified(h, Mapping::symmetric);
    TestPeer b = classified(h, Mapping::endpoint_independent);
    const ConnectAck first = ack_of(connect(h, a, b));
    ASSERT_TRUE(first.relayed) << "symmetric x port-restricted is relayed";
    const uint64_t session = h.dataplane.sessions.begin()->first;

    // a's network changed: its keepalives now show one source on both ports.
    const SocketAddress moved{ip4(203, 0, 113, 222), 9000};
    a.source = {moved, moved};
    Outbox out;
    h.request(a, 0, Keepalive{}, &out);
    EXPECT_TRUE(a.notifications<Punch>(out).empty()) << "still symmetric after one port";
    out.clear();
    h.now += 1000;
    h.request(a, 1, Keepalive{}, &out);
    ASSERT_EQ(h.nat_class(a), NatClass::port_restricted);
    const auto to_a = a.notifications<Punch>(out);
    const auto to_b = b.notifications<Punch>(out);
    ASSERT_EQ(to_a.size(), 1u);
    ASSERT_EQ(to_b.size(), 1u);
    const uint64_t trial = to_a[0].attempt_id;
    EXPECT_NE(trial, first.attempt_id);
    EXPECT_EQ(to_b[0].attempt_id, trial);
    EXPECT_EQ(to_b[0].candidates,
              (std::vector<Candidate>{{{moved.ip, a.wg_listen_port}, CandidateKind::reflexive}}));
    EXPECT_EQ(to_b[0].peer, a.wg.public_key);
    EXPECT_EQ(to_a[0].peer, b.wg.public_key);
    EXPECT_TRUE(h.dataplane.has(session)) << "the relay stays until direct works";
    EXPECT_EQ(h.metric("relay_control_connects_total", {{"decision", "promotion_trial"}}), 1);

    // Direct works: the relay session goes.
    EXPECT_TRUE(std::holds_alternative<Ok>(result(h, b, trial, a, Outcome::direct_ok).body));
    EXPECT_FALSE(h.dataplane.has(session));
    EXPECT_TRUE(h.peer_state(a)->sessions.empty());
    EXPECT_TRUE(h.peer_state(b)->sessions.empty());
}

TEST(Promotion, FailedTrialKeepsTheSession) {
    Harness h;
    TestPeer a = classified(h, Mapping::symmetric);
    TestPeer b = classified(h, Mapping::endpoint_independent);
    ack_of(connect(h, a, b));
    const uint64_t session = h.dataplane.sessions.begin()->first;
    a.source = {a.source[0], a.source[0]};
    Outbox out;
    h.request(a, 1, Keepalive{}, &out);
    const auto punches = a.notifications<Punch>(out);
    ASSERT_EQ(punches.size(), 1u);

    out.clear();
    const Message m = result(h, a, punches[0].attempt_id, b, Outcome::direct_failed, &out);
    EXPECT_TRUE(std::holds_alternative<Ok>(m.body));
    EXPECT_TRUE(h.dataplane.has(session));
    EXPECT_EQ(h.dataplane.added.size(), 1u);
    EXPECT_TRUE(a.notifications<RelayOffer>(out).empty())
        << "they go back to the session they have";
    EXPECT_TRUE(b.notifications<RelayOffer>(out).empty());
    EXPECT_EQ(h.peer_state(a)->sessions, std::set<uint64_t>{session});
}

TEST(Promotion, PeriodicTrialForAPunchablePair) {
    Harness h;
    TestPeer a = classified(h, Mapping::endpoint_independent);
    TestPeer b = classified(h, Mapping::endpoint_independent);
    TestPeer s1 = classified(h, Mapping::symmetric);
    TestPeer s2 = classified(h, Mapping::symmetric);
    ASSERT_TRUE(ack_of(connect(h, a, b, nullptr, true)).relayed);
    ASSERT_TRUE(ack_of(connect(h, s1, s2)).relayed);
    auto keep_alive = [&] {
        for (TestPeer* p : {&a, &b, &s1, &s2}) h.request(*p, 0, Keepalive{});
    };

    h.now += 59'999;
    keep_alive();
    EXPECT_TRUE(h.tick().empty());
    h.now += 1;
    Outbox out = h.tick();
    ASSERT_EQ(a.notifications<Punch>(out).size(), 1u);
    ASSERT_EQ(b.notifications<Punch>(out).size(), 1u);
    EXPECT_TRUE(s1.received(out).empty()) << "a symmetric pair never tries";
    EXPECT_TRUE(s2.received(out).empty());
    EXPECT_EQ(out.size(), 2u);
    h.now += 1000;
    EXPECT_TRUE(h.tick().empty()) << "one trial per interval";
    h.now += 59'000;
    keep_alive();
    EXPECT_EQ(h.tick().size(), 2u);
}

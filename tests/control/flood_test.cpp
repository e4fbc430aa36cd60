// Lockout (issue 9, "Control"): whoever can send from many addresses may make control
// work for them, but never at the expense of the peers it already serves.  A flood of
// sealed messages under self-made keys from many sources (each within its per-source
// rate) must leave registered peers answered, and the work it causes is bounded by one
// global budget.
#include <gtest/gtest.h>

#include "core_harness.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

// An attacker: self-made keys (never registered, never authorised) and many addresses.
struct Flooder {
    explicit Flooder(const PublicKey& server, size_t keys) {
        for (size_t i = 0; i < keys; ++i) {
            const KeyPair k = generate_key_pair();
            agents.push_back(k);
            shared.push_back(*shared_key(server, k.secret_key));
        }
    }
    std::vector<uint8_t> datagram(size_t i, uint64_t wall_ms) const {
        const size_t k = i % agents.size();
        return seal_request(agents[k].public_key, shared[k],
                            encode(Message{wall_ms, static_cast<uint32_t>(i + 1), Keepalive{}}));
    }
    std::vector<KeyPair> agents;
    std::vector<SharedKey> shared;
};

SocketAddress flood_source(size_t s) {
    return {ip4(10, 66, static_cast<uint8_t>(s >> 8), static_cast<uint8_t>(s)),
            static_cast<uint16_t>(30000 + s)};
}

}  // namespace

// ~20 000 sealed messages a second (1 000 sources, each at the per-source limit of 20/s)
// for 55 s: more than a million messages within one replay window.
TEST(Flood, RegisteredPeersKeepWorkingDuringAFloodOfSelfMadeKeys) {
    Harness h;
    TestPeer a = h.make_peer("alpha", Mapping::symmetric);
    TestPeer b = h.make_peer("alpha", Mapping::symmetric);
    h.register_and_classify(a);
    h.register_and_classify(b);

    const Flooder flood(h.server.public_key, 256);
    constexpr size_t kSources = 1000;
    constexpr size_t kPerSourcePerSecond = 20;  // make_config's per-source limit
    constexpr size_t kSeconds = 55;
    size_t sent = 0, answered = 0;
    for (size_t second = 0; second < kSeconds; ++second) {
        for (size_t s = 0; s < kSources; ++s) {
            for (size_t j = 0; j < kPerSourcePerSecond; ++j) {
                const auto d = flood.datagram(sent++, h.wall());
                answered += h.deliver(static_cast<uint8_t>(j & 1), flood_source(s), d).size();
            }
        }
        h.now += 1000;
        if (second % 20 == 19) {  // the registered peers' keepalives go on meanwhile
            EXPECT_TRUE(std::holds_alternative<Status>(h.request(a, 0, Keepalive{}).body));
            EXPECT_TRUE(std::holds_alternative<Status>(h.request(b, 0, Keepalive{}).body));
        }
        h.tick();
    }
    ASSERT_GT(sent, size_t{1} << 20);

    // Registered peers: keepalive and connect answered.
    const Message k = h.request(a, 0, Keepalive{});
    ASSERT_TRUE(std::holds_alternative<Status>(k.body)) << to_string(type_of(k.body));
    Outbox out;
    const Message c = h.request(a, 0, Connect{b.wg.public_key, false}, &out);
    ASSERT_TRUE(std::holds_alternative<ConnectAck>(c.body)) << to_string(type_of(c.body));
    EXPECT_EQ(b.notifications<RelayOffer>(out).size(), 1u);
    EXPECT_EQ(h.core->peers().size(), 2u);

    // The flood's key agreements were bounded by the global budget, not by the number of
    // its sources.
    const double budget = h.config.control.limits.unauthenticated_per_s;
    EXPECT_LE(h.metric("relay_control_key_agreements_total"), budget * (kSeconds + 1));
    EXPECT_GT(h.rejected("unauthenticated_budget"), 0);
    EXPECT_GT(answered, 0u) << "those that got through are told not_registered";
}

// The budget is global: many sources, each well within its own limit, together get no
// more key agreements than the budget allows; a second later there is budget again.
TEST(Flood, UnauthenticatedWorkHasOneGlobalBudget) {
    Harness h([](Config& c) { c.control.limits.unauthenticated_per_s = 100; });
    const Flooder flood(h.server.public_key, 1000);  // a fresh key each time
    size_t answered = 0;
    for (size_t s = 0; s < 500; ++s)
        answered += h.deliver(0, flood_source(s), flood.datagram(s, h.wall())).size();
    const size_t burst = answered;
    EXPECT_GE(burst, 1u);
    EXPECT_LE(burst, 10u) << "at most a tenth of a second's budget at once";
    EXPECT_EQ(h.rejected("unauthenticated_budget"), 500.0 - burst);
    EXPECT_EQ(h.metric("relay_control_key_agreements_total"), burst);

    h.now += 1000;
    answered = 0;
    for (size_t s = 500; s < 1000; ++s)
        answered += h.deliver(0, flood_source(s), flood.datagram(s, h.wall())).size();
    EXPECT_GE(answered, 1u);
    EXPECT_LE(answered, 10u);

    // A registered peer costs no key agreement: answered with the budget spent.
    TestPeer p = h.make_peer("alpha");
    h.now += 1000;
    h.register_peer(p);
    for (size_t s = 0; s < 500; ++s) h.deliver(0, flood_source(s), flood.datagram(s, h.wall()));
    EXPECT_TRUE(std::holds_alternative<Status>(h.request(p, 0, Keepalive{}).body));
}

// WireGuard initiations cost a mac1 check per pending probe key: the same budget.
TEST(Flood, WireGuardProbeChecksShareTheBudget) {
    Harness h([](Config& c) { c.control.limits.unauthenticated_per_s = 50; });
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);  // a pending probe key
    const auto junk = wireguard_initiation(generate_key_pair().public_key);
    for (size_t s = 0; s < 200; ++s) h.deliver(0, flood_source(s), junk);
    // A tenth of a second's budget (2.5 in each half), less the one p's registration
    // took from the fresh half: one more from the fresh half, two from the shared one.
    EXPECT_EQ(h.rejected("wireguard_unknown_probe"), 3);
    EXPECT_EQ(h.rejected("unauthenticated_budget"), 197);
    // The budget refills: the real probe is observed.
    h.now += 1000;
    const SocketAddress wg{p.source[0].ip, 61000};
    h.deliver(0, wg, wireguard_initiation(p.probe.public_key));
    ASSERT_TRUE(h.peer_state(p)->wg_reflexive.has_value());
    EXPECT_EQ(*h.peer_state(p)->wg_reflexive, wg);
}

// An agent control has forgotten (a control restart) hears not_registered, then
// registers: one key agreement for both, so that coming back costs the budget once.
TEST(Flood, RegisteringAfterNotRegisteredCostsNoSecondKeyAgreement) {
    // Depth 1 in each half of the budget.
    Harness h([](Config& c) { c.control.limits.unauthenticated_per_s = 10; });
    TestPeer p = h.make_peer("alpha");
    const Message m = h.request(p, 0, Keepalive{});  // the fresh half's token
    ASSERT_TRUE(std::holds_alternative<Error>(m.body));
    EXPECT_EQ(std::get<Error>(m.body).code, ErrorCode::not_registered);
    // No time passed: that half is empty, yet the registration gets through.
    h.register_peer(p);
    EXPECT_EQ(h.rejected("unauthenticated_budget"), 0);
    // Other unknown senders at the same instant: one gets the shared half's token, the
    // next finds the budget spent.
    TestPeer q = h.make_peer("alpha");
    EXPECT_EQ(q.received(h.send(q, 0, q.register_body())).size(), 1u);
    TestPeer r = h.make_peer("alpha");
    EXPECT_TRUE(h.send(r, 0, r.register_body()).empty());
    EXPECT_EQ(h.rejected("unauthenticated_budget"), 1);
}

// The kept key buys one more message, not a stream of them: a flood that re-uses its keys
// gets no more answers than the budget pays for.
TEST(Flood, AProvenKeyIsKeptForOneMoreMessageOnly) {
    // Depth 1 in each half of the budget.
    Harness h([](Config& c) { c.control.limits.unauthenticated_per_s = 10; });
    TestPeer x = h.make_peer("alpha");
    EXPECT_EQ(x.received(h.send(x, 0, Keepalive{})).size(), 1u);  // key agreement (fresh)
    EXPECT_EQ(x.received(h.send(x, 0, Keepalive{})).size(), 1u);  // the kept key
    EXPECT_EQ(x.received(h.send(x, 0, Keepalive{})).size(), 1u);  // key agreement (shared)
    EXPECT_EQ(x.received(h.send(x, 0, Keepalive{})).size(), 1u);  // the kept key
    EXPECT_TRUE(h.send(x, 0, Keepalive{}).empty()) << "the budget is spent";
    EXPECT_EQ(h.metric("relay_control_key_agreements_total"), 2);
    EXPECT_EQ(h.rejected("unauthenticated_budget"), 1);
}

// The lab's attack (tests/e2e/test_attacker.py): a few hundred addresses, each at its
// per-source limit, keep the budget spent.  An agent that registers during that flood
// must still get in at once, not after as many tries as the flood outnumbers it: half of
// the budget is kept for sources not served lately (unauthenticated_budget.hpp).
TEST(Flood, AnAgentRegisteringDuringAFloodFromManySourcesGetsInAtOnce) {
    Harness h([](Config& c) { c.control.limits.unauthenticated_per_s = 100; });
    const Flooder flood(h.server.public_key, 512);
    constexpr size_t kSources = 254;
    constexpr size_t kPerSourcePerSecond = 20;  // make_config's per-source limit
    size_t sent = 0;
    auto flood_for = [&](size_t ms) {  // every source at its limit, in 10 ms steps
        for (size_t step = 0; step < ms / 10; ++step) {
            for (size_t s = 0; s < kSources; ++s)
                if ((step + s) % (100 / kPerSourcePerSecond) == 0)
                    h.deliver(0, flood_source(s), flood.datagram(sent++, h.wall()));
            h.now += 10;
        }
    };
    flood_for(10'000);  // every flood source has been served at least once by now
    ASSERT_GT(h.rejected("unauthenticated_budget"), 40'000);

    // New agents, each from an address of its own, register while the flood goes on: the
    // flood has spent every token of the last 10 ms before each of them asks.
    for (int i = 0; i < 5; ++i) {
        TestPeer p = h.make_peer("alpha");
        flood_for(1000);
        for (size_t s = 0; s < kSources; ++s)  // the same instant: the flood comes first
            h.deliver(0, flood_source(s), flood.datagram(sent++, h.wall()));
        const std::vector<Received> got = p.received(h.send(p, 0, p.register_body()));
        ASSERT_EQ(got.size(), 1u) << "agent " << i << " got no answer during the flood";
        ASSERT_TRUE(std::holds_alternative<Registered>(got[0].message.body))
            << "agent " << i << ": " << to_string(type_of(got[0].message.body));
    }
    // And the flood's own work stayed within the budget.
    EXPECT_LE(h.metric("relay_control_key_agreements_total"), 100.0 * 16 + 10);
}

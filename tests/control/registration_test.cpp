// Registration and the envelope checks in front of it (BRIEF §5): network tokens (expiry,
// secrets, rotation), static allow-lists, the server key, replays, the clock window, and
// no reply to an unregistered sender larger than its request.
#include <gtest/gtest.h>

#include "core_harness.hpp"
#include "relay/control/credentials.hpp"
#include "relay/wire/stun.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

const Error* error_of(const Message& m) {
    return std::get_if<Error>(&m.body);
}

}  // namespace

TEST(Registration, ValidTokenRegistersWithTheSourceAsReflexiveAddress) {
    Harness h;
    TestPeer a = h.make_peer("alpha");
    size_t sent = 0;
    Outbox out = h.send(a, 0, a.register_body(), std::nullopt, &sent);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].port_index, 0);
    EXPECT_EQ(out[0].to, a.source[0]);
    EXPECT_LE(out[0].bytes.size(), sent);
    auto m = a.open(out[0].bytes);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->request_id, 1u);
    EXPECT_EQ(m->timestamp_ms, h.now);
    ASSERT_TRUE(std::holds_alternative<Registered>(m->body));
    const auto& r = std::get<Registered>(m->body);
    EXPECT_EQ(r.reflexive, a.source[0]);
    EXPECT_EQ(r.keepalive_interval_s, 20);
    EXPECT_EQ(r.peer_timeout_s, 75);

    const Peer* p = h.peer_state(a);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->network, kAlpha);
    EXPECT_EQ(p->wg_key, a.wg.public_key);
    EXPECT_EQ(p->wg_listen_port, a.wg_listen_port);
    EXPECT_EQ(p->notify_to, a.source[0]);
    EXPECT_EQ(p->nat_class, NatClass::unknown) << "one control port seen so far";
    EXPECT_EQ(h.metric("relay_control_registrations_total", {{"result", "ok"}}), 1);
    EXPECT_EQ(h.metric("relay_control_messages_total", {{"type", "register"}}), 1);
}

TEST(Registration, ReplyLeavesFromThePortItCameIn) {
    Harness h;
    TestPeer a = h.make_peer("alpha");
    Outbox out = h.send(a, 1, a.register_body());
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].port_index, 1);
    EXPECT_EQ(out[0].to, a.source[1]);
    auto m = a.open(out[0].bytes);
    ASSERT_TRUE(m && std::holds_alternative<Registered>(m->body));
}

TEST(Registration, EachNetworkByItsOwnToken) {
    Harness h;
    TestPeer a = h.make_peer("alpha");
    TestPeer b = h.make_peer("beta");
    h.register_peer(a);
    h.register_peer(b);
    ASSERT_NE(h.peer_state(a), nullptr);
    ASSERT_NE(h.peer_state(b), nullptr);
    EXPECT_EQ(h.peer_state(a)->network, kAlpha);
    EXPECT_EQ(h.peer_state(b)->network, kBeta);
}

TEST(Registration, AllowListedAgentWithoutToken) {
    Harness h;
    TestPeer listed(h.server.public_key, {ip4(203, 0, 113, 77), 3000},
                    Mapping::endpoint_independent, "", h.listed_agent);
    h.register_peer(listed);
    ASSERT_NE(h.peer_state(listed), nullptr);
    EXPECT_EQ(h.peer_state(listed)->network, kListed);
}

namespace {

struct RefusalCase {
    const char* name;
    std::string token;
    ErrorCode expected;
};

std::string tampered(std::string token) {
    // A character in the middle of the MAC, changed to another base64url character.
    const size_t i = kTokenPrefix.size() + 50;
    token.at(i) = token[i] == 'A' ? 'B' : 'A';
    return token;
}

std::string with_other_networks_secret(const Harness& h) {
    const uint64_t exp = h.now / 1000 + 3600;
    return issue_token(TokenClaims{"alpha", 1, exp}, secret_of("beta", 1));
}

}  // namespace

// Every refusal: one Error with the right code, no peer state, never larger than the request.
TEST(Registration, RefusalsTable) {
    Harness h;
    const uint64_t now_s = h.now / 1000;
    const RefusalCase cases[] = {
        {"expired (expiry == now)", h.token("alpha", 1, now_s), ErrorCode::token_expired},
        {"expired an hour ago", h.token("beta", 1, now_s - 3600), ErrorCode::token_expired},
        {"another network's secret", with_other_networks_secret(h), ErrorCode::bad_token},
        {"tampered", tampered(h.token("alpha")), ErrorCode::bad_token},
        {"retired secret", h.token("alpha", 2, now_s + 3600), ErrorCode::bad_token},
        {"retired secret, expired", h.token("alpha", 2, now_s - 10), ErrorCode::bad_token},
        {"unknown secret id",
         issue_token(TokenClaims{"alpha", 7, now_s + 3600}, secret_of("alpha", 1)),
         ErrorCode::bad_token},
        {"unknown network",
         issue_token(TokenClaims{"gamma", 1, now_s + 3600}, secret_of("alpha", 1)),
         ErrorCode::unknown_network},
        {"not a token", "hello", ErrorCode::bad_token},
        {"prefix only", std::string(kTokenPrefix), ErrorCode::bad_token},
        {"empty token, not allow-listed", "", ErrorCode::not_allowed},
        {"longest token", std::string(kMaxTokenLen, 'x'), ErrorCode::bad_token},
    };
    for (const RefusalCase& c : cases) {
        SCOPED_TRACE(c.name);
        TestPeer p = h.make_peer("alpha");
        p.token = c.token;
        size_t sent = 0;
        const double before =
            h.metric("relay_control_registrations_total", {{"result", to_string(c.expected)}});
        Outbox out = h.send(p, 0, p.register_body(), std::nullopt, &sent);
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(out[0].to, p.source[0]);
        EXPECT_LE(out[0].bytes.size(), sent) << "amplification";
        auto m = p.open(out[0].bytes);
        ASSERT_TRUE(m);
        EXPECT_EQ(m->request_id, 1u);
        const Error* e = error_of(*m);
        ASSERT_NE(e, nullptr) << to_string(type_of(m->body));
        EXPECT_EQ(e->code, c.expected) << to_string(e->code);
        EXPECT_EQ(h.peer_state(p), nullptr);
        EXPECT_EQ(
            h.metric("relay_control_registrations_total", {{"result", to_string(c.expected)}}),
            before + 1);
    }
    EXPECT_TRUE(h.core->peers().empty());
}

TEST(Registration, TokenValidUntilItsExpirySecond) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    p.token = h.token("alpha", 1, h.now / 1000 + 1);
    h.register_peer(p);
    EXPECT_NE(h.peer_state(p), nullptr);
}

TEST(Registration, WrongServerKeyGetsNoReply) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    // Sealed to another server's public key: control cannot open it.
    const KeyPair other_server = generate_key_pair();
    p.shared = *shared_key(other_server.public_key, p.agent.secret_key);
    Outbox out = h.send(p, 0, p.register_body());
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(h.rejected("auth_failed"), 1);
    EXPECT_TRUE(h.core->peers().empty());
}

TEST(Registration, ReplayedDatagramGetsNoSecondReply) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    const auto datagram = p.seal(p.register_body(), h.now);
    EXPECT_EQ(h.deliver(0, p.source[0], datagram).size(), 1u);
    EXPECT_TRUE(h.deliver(0, p.source[0], datagram).empty());
    h.now += 1000;  // still inside the window
    EXPECT_TRUE(h.deliver(1, p.source[1], datagram).empty());
    // From another address: the attacker's copy, same verdict.
    EXPECT_TRUE(h.deliver(0, {ip4(198, 18, 0, 1), 999}, datagram).empty());
    EXPECT_EQ(h.rejected("replayed"), 3);
    EXPECT_EQ(h.metric("relay_control_registrations_total", {{"result", "ok"}}), 1);
}

// A registration that never arrived (lost under a flood, or held back) is fresh to the
// nonce check.  Delivered late, after a newer one, from anywhere (the lab's attacker
// replays it from its own address), it must not reset the peer's observations nor move
// where its relay sessions expect it (tests/e2e test_attacker found both).
TEST(Registration, AnOlderRegistrationDeliveredLateIsRefused) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    const auto lost = p.seal(p.register_body(), h.wall());
    h.now += 100;
    ASSERT_EQ(h.deliver(0, p.source[0], p.seal(p.register_body(), h.wall())).size(), 1u);
    const SocketAddress notify_before = h.peer_state(p)->notify_to;
    h.now += 100;
    EXPECT_TRUE(h.deliver(0, {ip4(198, 18, 0, 1), 999}, lost).empty());
    EXPECT_TRUE(h.deliver(0, p.source[0], lost).empty());
    EXPECT_EQ(h.rejected("older_registration"), 1);
    EXPECT_EQ(h.rejected("replayed"), 1);  // its nonce is kept from the first copy
    EXPECT_EQ(h.peer_state(p)->notify_to, notify_before);
    EXPECT_EQ(h.metric("relay_control_registrations_total", {{"result", "ok"}}), 1);
    // A newer one still registers again (roaming).
    h.now += 100;
    EXPECT_EQ(h.deliver(0, p.source[0], p.seal(p.register_body(), h.wall())).size(), 1u);
    EXPECT_EQ(h.metric("relay_control_registrations_total", {{"result", "ok"}}), 2);
}

TEST(Registration, ReplayedKeepaliveOfARegisteredPeerIsDropped) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);
    const auto keepalive = p.seal(Keepalive{}, h.now);
    EXPECT_EQ(h.deliver(0, p.source[0], keepalive).size(), 1u);
    EXPECT_TRUE(h.deliver(0, p.source[0], keepalive).empty());
    EXPECT_EQ(h.rejected("replayed"), 1);
}

TEST(Registration, TimestampOutsideTheWindowGetsNoReply) {
    Harness h;
    const uint64_t window = 30'000;
    struct Case {
        const char* name;
        int64_t skew_ms;
        bool accepted;
    } cases[] = {
        {"31 s old", -31'000, false},
        {"31 s ahead", 31'000, false},
        {"an hour old", -3'600'000, false},
        {"one ms past the window", -int64_t(window) - 1, false},
        {"at the window's edge", -int64_t(window), true},
        {"29 s ahead", 29'000, true},
        {"now", 0, true},
    };
    double stale = 0;
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        TestPeer p = h.make_peer("alpha");
        const auto datagram = p.seal(
            p.register_body(), static_cast<uint64_t>(static_cast<int64_t>(h.now) + c.skew_ms));
        Outbox out = h.deliver(0, p.source[0], datagram);
        EXPECT_EQ(out.size(), c.accepted ? 1u : 0u);
        EXPECT_EQ(h.peer_state(p) != nullptr, c.accepted);
        if (!c.accepted) ++stale;
        EXPECT_EQ(h.rejected("stale_timestamp"), stale);
    }
}

// Requests other than register, from a sender that is not registered: not_registered,
// never larger than the request.
TEST(Registration, OtherRequestsBeforeRegisterGetNotRegistered) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    const Body bodies[] = {Keepalive{1000, false, false, false}, Connect{p.wg.public_key, false},
                           ResultReport{1, p.wg.public_key, Outcome::direct_ok, 10}, Release{42},
                           Deregister{}};
    for (const Body& body : bodies) {
        SCOPED_TRACE(to_string(type_of(body)));
        size_t sent = 0;
        Outbox out = h.send(p, 0, body, std::nullopt, &sent);
        ASSERT_EQ(out.size(), 1u);
        EXPECT_LE(out[0].bytes.size(), sent) << "amplification";
        auto m = p.open(out[0].bytes);
        ASSERT_TRUE(m);
        const Error* e = error_of(*m);
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(e->code, ErrorCode::not_registered);
    }
    EXPECT_EQ(h.rejected("not_registered"), 5);
    EXPECT_TRUE(h.core->peers().empty());
}

// Plaintext that does not decode, sealed by a sender control does not know: the Error reply
// is cut so that it never outgrows the request, down to an empty plaintext.
TEST(Registration, MalformedPlaintextReplyNeverLargerThanTheRequest) {
    // Each is an unknown sender's key agreement: room for all of them in the global budget
    // (tests/control/flood_test.cpp tests the budget).
    Harness h([](Config& c) { c.control.limits.unauthenticated_per_s = 100000; });
    TestPeer p = h.make_peer("alpha");
    size_t replies = 0;
    for (size_t len = 0; len <= 40; ++len) {
        SCOPED_TRACE(len);
        std::vector<uint8_t> plain(len, 0xEE);
        if (len > 0) plain[0] = static_cast<uint8_t>(MessageType::register_peer);
        // The current time where the header's timestamp goes (a stale one gets no reply).
        for (size_t k = 0; k < 8 && 1 + k < len; ++k)
            plain[1 + k] = static_cast<uint8_t>(h.now >> (56 - 8 * k));
        const auto datagram = seal_request(p.agent.public_key, p.shared, plain);
        // A fresh source each time: unopened envelopes are rate-limited per source.
        Outbox out = h.deliver(0, {ip4(100, 64, 0, static_cast<uint8_t>(len)), 5000}, datagram);
        ASSERT_LE(out.size(), 1u);
        for (const OutDatagram& d : out) {
            EXPECT_LE(d.bytes.size(), datagram.size());
            auto m = p.open(d.bytes);
            ASSERT_TRUE(m);
            const Error* e = error_of(*m);
            ASSERT_NE(e, nullptr);
            EXPECT_EQ(e->code, ErrorCode::malformed);
        }
        replies += out.size();
    }
    EXPECT_GT(replies, 30u);
    EXPECT_EQ(h.rejected("malformed"), static_cast<double>(replies)) << "each counted once";
}

TEST(Registration, UnopenedEnvelopesAreRateLimitedPerSource) {
    Harness h;
    const KeyPair other_server = generate_key_pair();
    const SocketAddress from{ip4(203, 0, 113, 66), 4000};
    for (int i = 0; i < 25; ++i) {
        TestPeer p(h.server.public_key, from, Mapping::endpoint_independent, h.token("alpha"));
        p.shared = *shared_key(other_server.public_key, p.agent.secret_key);
        EXPECT_TRUE(h.send(p, 0, p.register_body()).empty());
    }
    EXPECT_EQ(h.rejected("auth_failed"), 20);  // unauthenticated_per_s_per_source
    EXPECT_EQ(h.rejected("rate_limited"), 5);
    // A registered peer's requests are not unauthenticated traffic: not limited by it.
    TestPeer q = h.make_peer("alpha", Mapping::endpoint_independent, SocketAddress{from.ip, 4001});
    h.now += 1000;
    h.register_peer(q);
    for (int i = 0; i < 30; ++i) h.request(q, 0, Keepalive{});
}

// Types only control sends are not requests: a registered peer sending one gets nothing.
TEST(Registration, ReplyTypesFromAPeerAreIgnored) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);
    const Body bodies[] = {Registered{},
                           Status{},
                           ConnectAck{1, false},
                           Ok{},
                           Error{ErrorCode::internal, "x"},
                           Punch{1, p.wg.public_key, 0, 0, {}},
                           RelayOffer{1, 2, p.wg.public_key, {}, LatchPolicy::wireguard, 0, {}, 1}};
    for (const Body& body : bodies) {
        SCOPED_TRACE(to_string(type_of(body)));
        EXPECT_TRUE(h.send(p, 0, body).empty());
    }
    EXPECT_EQ(h.rejected("unexpected_type"), 7);
    EXPECT_NE(h.peer_state(p), nullptr);
}

TEST(Registration, ReRegistrationKeepsOnePeer) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);
    h.now += 1000;
    p.source[0].port = 30000;  // its NAT gave it a new mapping
    h.register_peer(p);
    EXPECT_EQ(h.core->peers().size(), 1u);
    EXPECT_EQ(h.peer_state(p)->notify_to, p.source[0]);
    EXPECT_EQ(h.metric("relay_control_registrations_total", {{"result", "ok"}}), 2);
}

TEST(Registration, WireGuardKeyOfAnotherAgentIsRefused) {
    Harness h;
    TestPeer a = h.make_peer("alpha");
    TestPeer thief = h.make_peer("alpha");
    thief.wg = a.wg;
    h.register_peer(a);
    Message m = h.request(thief, 0, thief.register_body());
    const Error* e = error_of(m);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->code, ErrorCode::not_allowed);
    EXPECT_EQ(h.peer_state(thief), nullptr);
    // The same key in another network names another peer: no conflict.
    TestPeer other = h.make_peer("beta");
    other.wg = a.wg;
    h.register_peer(other);
}

TEST(Registration, DeregisterForgetsThePeer) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);
    Message m = h.request(p, 0, Deregister{});
    EXPECT_TRUE(std::holds_alternative<Ok>(m.body));
    EXPECT_EQ(h.peer_state(p), nullptr);
    m = h.request(p, 0, Keepalive{});
    ASSERT_NE(error_of(m), nullptr);
    EXPECT_EQ(error_of(m)->code, ErrorCode::not_registered);
}

TEST(Registration, ChangingNetworkMovesThePeer) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);
    p.token = h.token("beta");
    h.register_peer(p);
    ASSERT_NE(h.peer_state(p), nullptr);
    EXPECT_EQ(h.peer_state(p)->network, kBeta);
    EXPECT_EQ(h.core->peers().size(), 1u);
    // alpha's count went down: alpha can take its 8 peers again.
    for (int i = 0; i < 8; ++i) {
        TestPeer q = h.make_peer("alpha");
        h.register_peer(q);
    }
}

TEST(Stun, BindingRequestAnsweredWithTheSourceAndNoLarger) {
    Harness h;
    const SocketAddress from{ip4(203, 0, 113, 99), 34567};
    for (size_t len : {20u, 28u, 64u, 100u}) {
        SCOPED_TRACE(len);
        wire::stun::TransactionId t{};
        t[0] = static_cast<uint8_t>(len);
        std::vector<uint8_t> request = wire::stun::make_binding_request(t, len);
        if (len == 20) request.resize(20), request[2] = request[3] = 0;  // a bare header
        Outbox out = h.deliver(1, from, request);
        ASSERT_EQ(out.size(), 1u) << "a bare 20-byte request (coturn's) must be answered too";
        EXPECT_EQ(out[0].port_index, 1);
        EXPECT_EQ(out[0].to, from);
        EXPECT_LE(out[0].bytes.size(), std::max<size_t>(request.size(), 32));
        auto mapped = wire::stun::parse_binding_success(out[0].bytes, t);
        ASSERT_TRUE(mapped);
        EXPECT_EQ(*mapped, from);
    }
}

TEST(Stun, RateLimitedPerSource) {
    Harness h;
    const SocketAddress from{ip4(203, 0, 113, 98), 34567};
    wire::stun::TransactionId t{};
    const auto request = wire::stun::make_binding_request(t, 64);
    size_t answered = 0;
    for (int i = 0; i < 30; ++i) answered += h.deliver(0, from, request).size();
    EXPECT_EQ(answered, 20u);  // unauthenticated_per_s_per_source
    EXPECT_EQ(h.rejected("rate_limited"), 10);
    // Another source has its own bucket; a second later the first one has refilled.
    EXPECT_EQ(h.deliver(0, {ip4(203, 0, 113, 97), 1}, request).size(), 1u);
    h.now += 1000;
    EXPECT_EQ(h.deliver(0, from, request).size(), 1u);
}

// Replay state lives with authorised senders: a copy of a registration made after its
// agent was forgotten is still refused (the network keeps admitted registrations' nonces).
TEST(Registration, CopyOfARegistrationAfterDeregisterIsRefused) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    const auto registration = p.seal(p.register_body(), h.wall());
    ASSERT_EQ(h.deliver(0, p.source[0], registration).size(), 1u);
    ASSERT_TRUE(std::holds_alternative<Ok>(h.request(p, 0, Deregister{}).body));
    ASSERT_EQ(h.peer_state(p), nullptr);
    h.now += 5'000;
    // The attacker's copy, from its own address: no reply, no peer registered there.
    EXPECT_TRUE(h.deliver(0, {ip4(198, 18, 0, 1), 999}, registration).empty());
    EXPECT_EQ(h.peer_state(p), nullptr);
    EXPECT_EQ(h.rejected("replayed"), 1);
}

// Moving to another network keeps the agent's replay guard: a copy of a message it sent in
// the old network is not fresh in the new one.
TEST(Registration, ChangingNetworkKeepsTheReplayGuard) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);
    const auto keepalive = p.seal(Keepalive{}, h.wall());
    ASSERT_EQ(h.deliver(0, p.source[0], keepalive).size(), 1u);
    p.token = h.token("beta");
    h.register_peer(p);
    ASSERT_EQ(h.peer_state(p)->network, kBeta);
    EXPECT_TRUE(h.deliver(0, p.source[0], keepalive).empty());
    EXPECT_EQ(h.rejected("replayed"), 1);
}

// A sender nobody authorised stores nothing: its messages leave no trace in any guard,
// and it cannot fill the registered peers' guards.
TEST(Registration, UnauthorisedSendersStoreNoReplayState) {
    Harness h([](Config& c) { c.control.limits.unauthenticated_per_s = 100000; });
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);
    for (int i = 0; i < 200; ++i) {
        TestPeer x(h.server.public_key, {ip4(100, 64, 1, static_cast<uint8_t>(i)), 4000},
                   Mapping::endpoint_independent, "rly1.not-a-token");
        h.send(x, 0, x.register_body());  // refused: malformed token
        h.send(x, 0, Keepalive{});        // refused: not registered
    }
    EXPECT_EQ(h.peer_state(p)->replay.size(), 1u) << "only p's own registration";
    EXPECT_TRUE(std::holds_alternative<Status>(h.request(p, 0, Keepalive{}).body));
}

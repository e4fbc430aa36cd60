// Whatever arrives on the control ports, the core never crashes and never answers what it
// could not authenticate (BRIEF §5: no amplification, no oracle): random bytes, random
// envelopes, every truncation and every bit flip of a valid sealed request.  Deterministic
// (fixed seeds); the sanitizer build runs it too.
#include <gtest/gtest.h>

#include <random>

#include "core_harness.hpp"
#include "relay/wire/stun.hpp"

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

namespace {

// A fresh source per datagram, so that the per-source limits do not hide the deeper paths.
SocketAddress source_for(size_t i) {
    return {ip4(10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8),
                static_cast<uint8_t>(i)),
            static_cast<uint16_t>(1024 + i % 50000)};
}

}  // namespace

TEST(Robustness, RandomBytesNeverAnswered) {
    Harness h;
    std::mt19937 rng(1);
    std::uniform_int_distribution<size_t> len(0, 1500);
    std::uniform_int_distribution<int> byte(0, 255);
    for (size_t i = 0; i < 3000; ++i) {
        std::vector<uint8_t> d(i < 200 ? i : len(rng));
        for (auto& b : d) b = static_cast<uint8_t>(byte(rng));
        // Some with the first bytes of each protocol, to get past the dispatch.
        if (i % 4 == 1 && d.size() >= 6)
            std::copy(kEnvelopeMagic.begin(), kEnvelopeMagic.end(), d.begin()), d[4] = 1, d[5] = 1;
        if (i % 4 == 2 && d.size() >= 4) d[0] = 1, d[1] = d[2] = d[3] = 0;
        if (i % 4 == 3 && d.size() >= 8)
            d[0] = 0, d[1] = 1, d[4] = 0x21, d[5] = 0x12, d[6] = 0xA4, d[7] = 0x42;
        Outbox out = h.deliver(static_cast<uint8_t>(i & 1), source_for(i), d);
        ASSERT_TRUE(out.empty()) << "answered random datagram #" << i << " of " << d.size()
                                 << " bytes";
        h.now += 1;
    }
    EXPECT_TRUE(h.core->peers().empty());
    EXPECT_GT(h.rejected("auth_failed") + h.rejected("bad_key"), 0);
}

TEST(Robustness, RandomWireGuardSizedInitiationsNeverAnswered) {
    Harness h;
    TestPeer p = h.make_peer("alpha");
    h.register_peer(p);  // a pending probe key to compare against
    std::mt19937 rng(2);
    for (size_t i = 0; i < 300; ++i) {
        std::vector<uint8_t> d(148);
        for (auto& b : d) b = static_cast<uint8_t>(rng());
        d[0] = 1, d[1] = d[2] = d[3] = 0;
        EXPECT_TRUE(h.deliver(0, source_for(i), d).empty());
    }
    EXPECT_FALSE(h.peer_state(p)->wg_reflexive.has_value());
}

TEST(Robustness, EveryTruncationOfASealedRegisterIsDropped) {
    // Room in the global budget of key agreements for every one (flood_test.cpp tests it).
    Harness h([](Config& c) { c.control.limits.unauthenticated_per_s = 100000; });
    TestPeer p = h.make_peer("alpha");
    const auto datagram = p.seal(p.register_body(), h.now);
    for (size_t n = 0; n < datagram.size(); ++n) {
        Outbox out = h.deliver(0, source_for(n), std::span<const uint8_t>(datagram.data(), n));
        ASSERT_TRUE(out.empty()) << "answered a truncation to " << n << " bytes";
    }
    // With bytes appended it does not open either.
    auto longer = datagram;
    longer.push_back(0);
    EXPECT_TRUE(h.deliver(0, p.source[0], longer).empty());
    EXPECT_TRUE(h.core->peers().empty());
    // None of them burned the nonce: the whole datagram still registers.
    EXPECT_EQ(h.deliver(0, p.source[0], datagram).size(), 1u);
    EXPECT_NE(h.peer_state(p), nullptr);
}

TEST(Robustness, EveryBitFlipOfASealedRegisterIsDropped) {
    // Room in the global budget of key agreements for every one (flood_test.cpp tests it).
    Harness h([](Config& c) { c.control.limits.unauthenticated_per_s = 100000; });
    TestPeer p = h.make_peer("alpha");
    const auto datagram = p.seal(p.register_body(), h.now);
    size_t i = 0;
    for (size_t byte = 0; byte < datagram.size(); ++byte) {
        for (int bit = 0; bit < 8; ++bit, ++i) {
            auto d = datagram;
            d[byte] ^= static_cast<uint8_t>(1 << bit);
            Outbox out = h.deliver(0, source_for(i), d);
            ASSERT_TRUE(out.empty()) << "answered a flip of bit " << bit << " of byte " << byte;
        }
    }
    EXPECT_TRUE(h.core->peers().empty());
    EXPECT_EQ(h.deliver(0, p.source[0], datagram).size(), 1u);
}

// Plaintext garbage sealed by a registered peer: at most one reply (an Error), to the
// sender, that it can open; the peer's state survives.
TEST(Robustness, SealedGarbageFromARegisteredPeer) {
    Harness h;
    TestPeer p = h.make_peer("alpha", Mapping::symmetric);
    h.register_and_classify(p);
    TestPeer q = h.make_peer("alpha", Mapping::symmetric);
    h.register_and_classify(q);
    std::mt19937 rng(3);
    std::uniform_int_distribution<size_t> len(0, kMaxPlainLen + 20);
    for (size_t i = 0; i < 2000; ++i) {
        std::vector<uint8_t> plain(len(rng));
        for (auto& b : plain) b = static_cast<uint8_t>(rng());
        if (plain.size() >= kPlainHeaderLen) {
            // A plausible header half of the time: a request type and the current time.
            if (i % 2 == 0) {
                plain[0] = static_cast<uint8_t>(1 + i % 6);
                for (int k = 0; k < 8; ++k)
                    plain[1 + k] = static_cast<uint8_t>(h.now >> (56 - 8 * k));
            }
        }
        const auto datagram = seal_request(p.agent.public_key, p.shared, plain);
        Outbox out = h.deliver(0, p.source[0], datagram);
        ASSERT_LE(out.size(), 1u + 4u);  // a reply, plus notifications if it decoded as a request
        for (const OutDatagram& d : out) {
            EXPECT_TRUE(p.open(d.bytes) || q.open(d.bytes)) << "sent something nobody can open";
        }
        h.now += 3;
    }
    ASSERT_NE(h.peer_state(q), nullptr);
}

// A malformed request from a key holder is answered once: a copy of it (same nonce) is a
// replay, whether its header was whole (its timestamp is checked) or cut short.
TEST(Robustness, ACopyOfAMalformedRequestGetsNoSecondReply) {
    Harness h;
    TestPeer p = h.make_peer("alpha", Mapping::symmetric);
    h.register_and_classify(p);
    std::vector<uint8_t> whole_header(kPlainHeaderLen + 5, 0xee);  // unknown type 0xee
    for (int k = 0; k < 8; ++k) whole_header[1 + k] = static_cast<uint8_t>(h.now >> (56 - 8 * k));
    const std::vector<uint8_t> cut_header{1, 2, 3};
    for (const auto& plain : {whole_header, cut_header}) {
        const auto datagram = seal_request(p.agent.public_key, p.shared, plain);
        const double replayed = h.rejected("replayed");
        Outbox first = h.deliver(0, p.source[0], datagram);
        ASSERT_EQ(first.size(), 1u);
        auto reply = p.open(first[0].bytes);
        ASSERT_TRUE(reply);
        ASSERT_TRUE(std::holds_alternative<Error>(reply->body));
        EXPECT_EQ(std::get<Error>(reply->body).code, ErrorCode::malformed);
        h.now += 10;
        EXPECT_TRUE(h.deliver(0, p.source[0], datagram).empty());
        EXPECT_EQ(h.rejected("replayed"), replayed + 1);
    }
    // A malformed request whose header carries a stale timestamp is not answered at all.
    std::vector<uint8_t> stale(kPlainHeaderLen + 5, 0xee);
    const uint64_t old = h.now - 10 * 60 * 1000;
    for (int k = 0; k < 8; ++k) stale[1 + k] = static_cast<uint8_t>(old >> (56 - 8 * k));
    EXPECT_TRUE(
        h.deliver(0, p.source[0], seal_request(p.agent.public_key, p.shared, stale)).empty());
}

TEST(Robustness, StunLookalikesNeverAmplify) {
    Harness h;
    std::mt19937 rng(4);
    for (size_t i = 0; i < 2000; ++i) {
        wire::stun::TransactionId t{};
        for (auto& b : t) b = static_cast<uint8_t>(rng());
        auto d = wire::stun::make_binding_request(t, 28 + 4 * (i % 40));
        // Damage a byte after the header half of the time.
        if (i % 2 && d.size() > 20)
            d[20 + rng() % (d.size() - 20)] ^= static_cast<uint8_t>(1 + rng() % 255);
        Outbox out = h.deliver(0, source_for(i), d);
        ASSERT_LE(out.size(), 1u);
        for (const OutDatagram& o : out) EXPECT_LE(o.bytes.size(), std::max<size_t>(d.size(), 32));
    }
}

// The sealed envelope (relay/control/envelope.hpp): round trips both ways, and every
// way a datagram can be wrong (tampered bits, truncation, length, header fields, keys)
// ends in an error, never in a crash or in accepted plaintext; and sender keys that
// X25519 would confuse with a real one are refused.
#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>
#include <string>
#include <vector>

#include "relay/control/envelope.hpp"

using namespace relay::control;

namespace {

std::vector<uint8_t> bytes(const std::string& s) {
    return std::vector<uint8_t>(s.begin(), s.end());
}

relay::PublicKey from_hex(const char* hex) {
    relay::PublicKey k{};
    for (size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<uint8_t>(std::stoi(std::string(hex + 2 * i, 2), nullptr, 16));
    return k;
}

std::string key_to_hex(const relay::PublicKey& k) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (uint8_t b : k) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

// A peer and a server with their shared key computed on both sides.
struct Pair {
    KeyPair peer = generate_key_pair();
    KeyPair server = generate_key_pair();
    SharedKey peer_side = *shared_key(server.public_key, peer.secret_key);
    SharedKey server_side = *shared_key(peer.public_key, server.secret_key);
};

}  // namespace

TEST(Envelope, SharedKeyIsTheSameOnBothSides) {
    Pair p;
    EXPECT_EQ(p.peer_side, p.server_side);
    EXPECT_EQ(public_key_of(p.peer.secret_key), p.peer.public_key);
    EXPECT_NE(p.peer.public_key, p.server.public_key);
}

TEST(Envelope, RequestRoundTrip) {
    Pair p;
    const auto plain = bytes("register: hello control");
    const auto sealed = seal_request(p.peer.public_key, p.peer_side, plain);
    ASSERT_EQ(sealed.size(), kRequestOverhead + plain.size());
    EXPECT_EQ(std::memcmp(sealed.data(), "RLYC", 4), 0);
    EXPECT_EQ(sealed[4], kEnvelopeVersion);
    EXPECT_EQ(sealed[5], kToServer);
    EXPECT_TRUE(looks_like_envelope(sealed));

    auto header = peek_request(sealed);
    ASSERT_TRUE(header.ok()) << to_string(header.error());
    EXPECT_EQ(header->sender, p.peer.public_key);
    EXPECT_EQ(std::memcmp(header->nonce.data(), sealed.data() + 38, kNonceLen), 0);

    // The server computes the key from the sender found in the header.
    auto key = shared_key(header->sender, p.server.secret_key);
    ASSERT_TRUE(key.has_value());
    auto opened = open_request(sealed, *key);
    ASSERT_TRUE(opened.ok()) << to_string(opened.error());
    EXPECT_EQ(*opened, plain);
}

TEST(Envelope, ReplyRoundTrip) {
    Pair p;
    const auto plain = bytes("reply: welcome");
    const auto sealed = seal_reply(p.server_side, plain);
    ASSERT_EQ(sealed.size(), kReplyOverhead + plain.size());
    EXPECT_EQ(sealed[5], kToPeer);
    auto opened = open_reply(sealed, p.peer_side);
    ASSERT_TRUE(opened.ok()) << to_string(opened.error());
    EXPECT_EQ(*opened, plain);
    auto nonce = reply_nonce(sealed);
    ASSERT_TRUE(nonce.has_value());
    EXPECT_EQ(std::memcmp(nonce->data(), sealed.data() + 6, kNonceLen), 0);
}

TEST(Envelope, EmptyPlaintextRoundTrips) {
    Pair p;
    const auto req = seal_request(p.peer.public_key, p.peer_side, {});
    EXPECT_EQ(req.size(), kRequestOverhead);
    auto opened = open_request(req, p.server_side);
    ASSERT_TRUE(opened.ok());
    EXPECT_TRUE(opened->empty());
    const auto rep = seal_reply(p.server_side, {});
    EXPECT_EQ(rep.size(), kReplyOverhead);
    EXPECT_TRUE(open_reply(rep, p.peer_side).ok());
}

TEST(Envelope, LargestEnvelopeIsAccepted) {
    Pair p;
    const std::vector<uint8_t> req_plain(kMaxEnvelopeLen - kRequestOverhead, 0xab);
    const auto req = seal_request(p.peer.public_key, p.peer_side, req_plain);
    ASSERT_EQ(req.size(), kMaxEnvelopeLen);
    EXPECT_TRUE(open_request(req, p.server_side).ok());
    const std::vector<uint8_t> rep_plain(kMaxEnvelopeLen - kReplyOverhead, 0xcd);
    const auto rep = seal_reply(p.server_side, rep_plain);
    ASSERT_EQ(rep.size(), kMaxEnvelopeLen);
    EXPECT_TRUE(open_reply(rep, p.peer_side).ok());
}

TEST(Envelope, EverySealUsesAFreshNonce) {
    Pair p;
    const auto plain = bytes("same message");
    const auto a = seal_request(p.peer.public_key, p.peer_side, plain);
    const auto b = seal_request(p.peer.public_key, p.peer_side, plain);
    EXPECT_NE(peek_request(a)->nonce, peek_request(b)->nonce);
    EXPECT_NE(a, b);
    EXPECT_NE(*reply_nonce(seal_reply(p.server_side, plain)),
              *reply_nonce(seal_reply(p.server_side, plain)));
}

TEST(Envelope, WrongServerKeyFailsAuthentication) {
    Pair p;
    const KeyPair other_server = generate_key_pair();
    // The peer sealed for `other_server`; the real server cannot open it.
    const SharedKey wrong = *shared_key(other_server.public_key, p.peer.secret_key);
    const auto sealed = seal_request(p.peer.public_key, wrong, bytes("hello"));
    ASSERT_TRUE(peek_request(sealed).ok());
    auto opened = open_request(sealed, p.server_side);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error(), EnvelopeError::auth_failed);

    // And a reply under another key is refused by the peer.
    auto reply = open_reply(seal_reply(wrong, bytes("x")), p.peer_side);
    ASSERT_FALSE(reply.ok());
    EXPECT_EQ(reply.error(), EnvelopeError::auth_failed);
}

TEST(Envelope, ClaimingAnotherSendersKeyFailsAuthentication) {
    // A sender that writes someone else's public key in the header: the server computes
    // the key for that claimed sender, and the MAC does not verify.
    Pair p;
    const KeyPair victim = generate_key_pair();
    const auto sealed = seal_request(victim.public_key, p.peer_side, bytes("i am the victim"));
    auto key = shared_key(peek_request(sealed)->sender, p.server.secret_key);
    ASSERT_TRUE(key.has_value());
    auto opened = open_request(sealed, *key);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error(), EnvelopeError::auth_failed);
}

TEST(Envelope, EverySingleBitFlipOfARequestIsRejected) {
    Pair p;
    const auto sealed = seal_request(p.peer.public_key, p.peer_side, bytes("connect to peer B"));
    for (size_t byte = 0; byte < sealed.size(); ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
            auto d = sealed;
            d[byte] ^= static_cast<uint8_t>(1u << bit);
            // What the server does: peek, compute the key for the claimed sender, open.
            auto header = peek_request(d);
            if (!header.ok()) {
                EXPECT_NE(header.error(), EnvelopeError::auth_failed);
                continue;
            }
            auto key = shared_key(header->sender, p.server.secret_key);
            if (!key) continue;  // a flipped sender key is mostly invalid: refused as bad_key
            auto opened = open_request(d, *key);
            ASSERT_FALSE(opened.ok()) << "byte " << byte << " bit " << bit;
            EXPECT_EQ(opened.error(), EnvelopeError::auth_failed);
            // (The real sender's cached key would open a request whose sender field alone
            // was changed: that field is not MACed.  The server never does that: it picks
            // the key by the sender field.)
        }
    }
}

TEST(Envelope, EverySingleBitFlipOfAReplyIsRejected) {
    Pair p;
    const auto sealed = seal_reply(p.server_side, bytes("peer B is at 203.0.113.7:51820"));
    for (size_t byte = 0; byte < sealed.size(); ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
            auto d = sealed;
            d[byte] ^= static_cast<uint8_t>(1u << bit);
            EXPECT_FALSE(open_reply(d, p.peer_side).ok()) << "byte " << byte << " bit " << bit;
        }
    }
}

TEST(Envelope, HeaderFlipsGiveHeaderErrors) {
    Pair p;
    const auto sealed = seal_request(p.peer.public_key, p.peer_side, bytes("x"));
    auto d = sealed;
    d[0] ^= 1;
    EXPECT_EQ(peek_request(d).error(), EnvelopeError::bad_magic);
    EXPECT_FALSE(looks_like_envelope(d));
    d = sealed;
    d[4] = 2;
    EXPECT_EQ(peek_request(d).error(), EnvelopeError::bad_version);
    EXPECT_EQ(open_request(d, p.server_side).error(), EnvelopeError::bad_version);
    d = sealed;
    d[4] = 0;
    EXPECT_EQ(peek_request(d).error(), EnvelopeError::bad_version);
}

TEST(Envelope, TruncationAtEveryLengthIsRejected) {
    Pair p;
    const auto req = seal_request(p.peer.public_key, p.peer_side, bytes("a request body"));
    for (size_t len = 0; len < req.size(); ++len) {
        std::span<const uint8_t> cut(req.data(), len);
        auto header = peek_request(cut);
        auto opened = open_request(cut, p.server_side);
        ASSERT_FALSE(opened.ok()) << len;
        if (len < kRequestOverhead) {
            EXPECT_EQ(opened.error(), EnvelopeError::too_short) << len;
            EXPECT_EQ(header.error(), EnvelopeError::too_short) << len;
        } else {
            // Long enough to look complete: only the MAC can tell.
            EXPECT_EQ(opened.error(), EnvelopeError::auth_failed) << len;
        }
    }
    const auto rep = seal_reply(p.server_side, bytes("a reply body"));
    for (size_t len = 0; len < rep.size(); ++len) {
        std::span<const uint8_t> cut(rep.data(), len);
        auto opened = open_reply(cut, p.peer_side);
        ASSERT_FALSE(opened.ok()) << len;
        EXPECT_EQ(opened.error(),
                  len < kReplyOverhead ? EnvelopeError::too_short : EnvelopeError::auth_failed)
            << len;
        EXPECT_EQ(reply_nonce(cut).has_value(), len >= kReplyOverhead) << len;
    }
    EXPECT_FALSE(looks_like_envelope(std::span<const uint8_t>(req.data(), 5)));
    EXPECT_TRUE(looks_like_envelope(std::span<const uint8_t>(req.data(), 6)));
}

TEST(Envelope, TooLongIsRejected) {
    Pair p;
    const std::vector<uint8_t> plain(kMaxEnvelopeLen - kRequestOverhead + 1, 0x11);
    const auto req = seal_request(p.peer.public_key, p.peer_side, plain);
    ASSERT_EQ(req.size(), kMaxEnvelopeLen + 1);
    EXPECT_EQ(peek_request(req).error(), EnvelopeError::too_long);
    EXPECT_EQ(open_request(req, p.server_side).error(), EnvelopeError::too_long);

    const std::vector<uint8_t> rplain(kMaxEnvelopeLen - kReplyOverhead + 1, 0x22);
    const auto rep = seal_reply(p.server_side, rplain);
    EXPECT_EQ(open_reply(rep, p.peer_side).error(), EnvelopeError::too_long);
    EXPECT_FALSE(reply_nonce(rep).has_value());

    // Far too long, too: the length is checked before anything is copied.
    std::vector<uint8_t> huge(65536, 0);
    std::memcpy(huge.data(), "RLYC\x01\x01", 6);
    EXPECT_EQ(peek_request(huge).error(), EnvelopeError::too_long);
}

TEST(Envelope, WrongDirectionIsRejected) {
    Pair p;
    // A reply fed to the server, and a request fed to the peer.
    const auto rep = seal_reply(p.server_side, std::vector<uint8_t>(64, 1));
    EXPECT_EQ(peek_request(rep).error(), EnvelopeError::wrong_direction);
    EXPECT_EQ(open_request(rep, p.server_side).error(), EnvelopeError::wrong_direction);
    const auto req = seal_request(p.peer.public_key, p.peer_side, bytes("x"));
    EXPECT_EQ(open_reply(req, p.peer_side).error(), EnvelopeError::wrong_direction);
    EXPECT_FALSE(reply_nonce(req).has_value());
    // Direction 0 and 3 are nobody's.
    for (uint8_t dir : {uint8_t{0}, uint8_t{3}, uint8_t{255}}) {
        auto d = req;
        d[5] = dir;
        EXPECT_EQ(peek_request(d).error(), EnvelopeError::wrong_direction);
        EXPECT_EQ(open_reply(d, p.peer_side).error(), EnvelopeError::wrong_direction);
    }
    // A short reply sent to the server is reported as what it is, not as too_short.
    const auto short_rep = seal_reply(p.server_side, {});
    ASSERT_LT(short_rep.size(), kRequestOverhead);
    EXPECT_EQ(peek_request(short_rep).error(), EnvelopeError::wrong_direction);
}

TEST(Envelope, WrongVersionIsRejected) {
    Pair p;
    auto rep = seal_reply(p.server_side, bytes("x"));
    rep[4] = kEnvelopeVersion + 1;
    EXPECT_EQ(open_reply(rep, p.peer_side).error(), EnvelopeError::bad_version);
    auto req = seal_request(p.peer.public_key, p.peer_side, bytes("x"));
    req[4] = kEnvelopeVersion + 1;
    EXPECT_EQ(open_request(req, p.server_side).error(), EnvelopeError::bad_version);
}

TEST(Envelope, DegeneratePublicKeyIsRefused) {
    const KeyPair server = generate_key_pair();
    const relay::PublicKey zero{};
    EXPECT_FALSE(shared_key(zero, server.secret_key).has_value());
    // Another small-order point: 1 (u = 1 has order 4 on Curve25519).
    relay::PublicKey one{};
    one[0] = 1;
    EXPECT_FALSE(shared_key(one, server.secret_key).has_value());

    // A request that claims the all-zero key is refused before any key is computed.
    const SharedKey some_key{};
    const auto sealed = seal_request(zero, some_key, bytes("x"));
    auto header = peek_request(sealed);
    ASSERT_FALSE(header.ok());
    EXPECT_EQ(header.error(), EnvelopeError::bad_key);
}

TEST(Envelope, MalleatedSenderKeysAreRefused) {
    // Secret bytes 0..31; its public key is what `wg pubkey` prints (credentials_test).
    SecretKey peer_secret{};
    for (size_t i = 0; i < 32; ++i) peer_secret[i] = static_cast<uint8_t>(i);
    const relay::PublicKey real = public_key_of(peer_secret);
    ASSERT_EQ(key_to_hex(real), "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f");
    // Variants that X25519 treats as the same key, computed in Python 3
    // (p = 2**255 - 19, u = int.from_bytes(real, "little")):
    //   top bit: (u + 2**255).to_bytes(32, "little")
    //   order 2: pow(u, p - 2, p).to_bytes(32, "little"), the u of P + (0, 0)
    //   u + p for the base point u = 9: (9 + p).to_bytes(32, "little")
    const relay::PublicKey top_bit =
        from_hex("8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e213828df");
    const relay::PublicKey torsion =
        from_hex("5be15c7f1c5a05ccaf6c1d2c913baf3f4fcc7db06d9bca9f941d2a6ad1bc690d");
    const relay::PublicKey nine_plus_p =
        from_hex("f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");

    const KeyPair server = generate_key_pair();
    // Why they must be refused: raw crypto_box_beforenm gives the real key's shared key.
    SharedKey real_k{}, variant_k{};
    ASSERT_EQ(crypto_box_beforenm(real_k.data(), real.data(), server.secret_key.data()), 0);
    for (const auto& v : {top_bit, torsion}) {
        ASSERT_EQ(crypto_box_beforenm(variant_k.data(), v.data(), server.secret_key.data()), 0);
        EXPECT_EQ(variant_k, real_k);
    }

    EXPECT_TRUE(valid_public_key(real));
    EXPECT_TRUE(shared_key(real, server.secret_key).has_value());
    for (const auto& v : {top_bit, torsion, nine_plus_p}) {
        EXPECT_FALSE(valid_public_key(v)) << key_to_hex(v);
        EXPECT_FALSE(shared_key(v, server.secret_key).has_value()) << key_to_hex(v);
    }

    // A captured request replayed under a variant sender key: refused before opening.
    const auto sealed = seal_request(real, real_k, bytes("register"));
    ASSERT_TRUE(open_request(sealed, *shared_key(real, server.secret_key)).ok());
    auto d = sealed;
    std::memcpy(d.data() + 6, top_bit.data(), 32);
    EXPECT_EQ(peek_request(d).error(), EnvelopeError::bad_key);
    std::memcpy(d.data() + 6, nine_plus_p.data(), 32);
    EXPECT_EQ(peek_request(d).error(), EnvelopeError::bad_key);
    std::memcpy(d.data() + 6, torsion.data(), 32);
    auto header = peek_request(d);
    ASSERT_TRUE(header.ok());  // canonical: only the subgroup check can tell
    EXPECT_FALSE(shared_key(header->sender, server.secret_key).has_value());
}

TEST(Envelope, HonestKeysAreValid) {
    for (int i = 0; i < 200; ++i) {
        const KeyPair kp = generate_key_pair();
        ASSERT_TRUE(valid_public_key(kp.public_key)) << key_to_hex(kp.public_key);
    }
    // The base point, u = 9, generates the prime-order subgroup.
    relay::PublicKey nine{};
    nine[0] = 9;
    EXPECT_TRUE(valid_public_key(nine));
    // A point on the twist (u = 2 is not on Curve25519), and u = p - 1 (no Edwards form).
    relay::PublicKey two{};
    two[0] = 2;
    EXPECT_FALSE(valid_public_key(two));
    const relay::PublicKey minus_one =
        from_hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    EXPECT_FALSE(valid_public_key(minus_one));
}

TEST(Envelope, GarbageNeverOpens) {
    Pair p;
    // Deterministic pseudo-random datagrams with a valid header.
    uint32_t x = 12345;
    for (int i = 0; i < 2000; ++i) {
        std::vector<uint8_t> d(kRequestOverhead + (i % 200));
        for (auto& b : d) {
            x = x * 1103515245u + 12345u;
            b = static_cast<uint8_t>(x >> 16);
        }
        std::memcpy(d.data(), "RLYC\x01\x01", 6);
        EXPECT_FALSE(open_request(d, p.server_side).ok());
        d[5] = kToPeer;
        EXPECT_FALSE(open_reply(d, p.peer_side).ok());
    }
}

TEST(Envelope, ErrorNames) {
    EXPECT_STREQ(to_string(EnvelopeError::too_short), "too_short");
    EXPECT_STREQ(to_string(EnvelopeError::bad_magic), "bad_magic");
    EXPECT_STREQ(to_string(EnvelopeError::bad_version), "bad_version");
    EXPECT_STREQ(to_string(EnvelopeError::wrong_direction), "wrong_direction");
    EXPECT_STREQ(to_string(EnvelopeError::too_long), "too_long");
    EXPECT_STREQ(to_string(EnvelopeError::bad_key), "bad_key");
    EXPECT_STREQ(to_string(EnvelopeError::auth_failed), "auth_failed");
}

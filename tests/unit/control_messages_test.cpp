// The plaintext control-message codec: round trips of every type, the documented layout
// (golden bytes written from docs/PROTOCOL.md by hand), and that no byte sequence (truncated,
// extended, bit-flipped, out of range) gets past the decoder unchecked or makes it read
// outside its span.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "relay/control/messages.hpp"

namespace relay::control {
namespace {

using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------- samples

PublicKey key_filled_from(uint8_t first) {
    PublicKey k{};
    for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(first + 7 * i);
    return k;
}

std::vector<SocketAddress> local_addresses(size_t n) {
    std::vector<SocketAddress> v;
    for (size_t i = 0; i < n; ++i) {
        v.push_back({0xc0a80100u + static_cast<uint32_t>(i), static_cast<uint16_t>(51820 + i)});
    }
    return v;
}

std::vector<Candidate> candidates(size_t n) {
    std::vector<Candidate> v;
    for (size_t i = 0; i < n; ++i) {
        v.push_back({{0xcb007100u + static_cast<uint32_t>(i), static_cast<uint16_t>(40000 + i)},
                     i == 0 ? CandidateKind::reflexive : CandidateKind::local});
    }
    return v;
}

// One representative message per row, with its encoded length written out from the layout
// in docs/PROTOCOL.md (13-byte header + body), so that the table checks the sizes too.
struct Sample {
    std::string name;
    Message message;
    size_t encoded_len;
};

std::vector<Sample> samples() {
    RegisterPeer reg;
    reg.token = "net1.0123456789abcdef";
    reg.wg_public_key = key_filled_from(1);
    reg.wg_listen_port = 51820;
    reg.probe_key = key_filled_from(100);
    reg.agent_port = 3478;
    reg.local_addresses = local_addresses(2);

    RegisterPeer reg_minimal;  // allow-list network: no token, no probe key, no local address
    reg_minimal.wg_public_key = key_filled_from(2);

    RegisterPeer reg_max;
    reg_max.token = std::string(kMaxTokenLen, 't');
    reg_max.wg_public_key = key_filled_from(3);
    reg_max.wg_listen_port = 65535;
    reg_max.probe_key = key_filled_from(4);
    reg_max.agent_port = 65535;
    reg_max.local_addresses = local_addresses(kMaxLocalAddresses);

    Status status;
    status.reflexive = {0xcb007105, 40000};
    status.nat_class = NatClass::port_restricted;
    status.wg_reflexive = {0xcb007105, 51820};
    status.server_port = 3479;

    RelayOffer offer_bind;
    offer_bind.attempt_id = 0x0102030405060708;
    offer_bind.session_id = 0x1112131415161718;
    offer_bind.peer = key_filled_from(50);
    offer_bind.relay = {0xc633640a, 20001};
    offer_bind.policy = LatchPolicy::bind;
    offer_bind.side = 1;
    offer_bind.bind_secret = key_filled_from(99);
    offer_bind.idle_timeout_s = 180;

    RelayOffer offer_wg = offer_bind;
    offer_wg.policy = LatchPolicy::wireguard;
    offer_wg.side = 0;
    offer_wg.bind_secret = {};
    offer_wg.idle_timeout_s = 0xffffffff;

    return {
        {"register", {1700000000000, 1, reg}, 13 + 71 + 21 + 2 * 6},
        {"register_minimal", {1, 0xffffffff, reg_minimal}, 13 + 71},
        {"register_max", {~0ull, 7, reg_max}, 13 + 71 + 256 + 8 * 6},
        {"keepalive", {1700000000001, 2, Keepalive{25000, true}}, 13 + 5},
        {"keepalive_zero", {0, 0, Keepalive{}}, 13 + 5},
        {"keepalive_probe_result", {5, 3, Keepalive{100, false, true, true}}, 13 + 5},
        {"keepalive_probe_missed", {5, 4, Keepalive{100, false, true, false}}, 13 + 5},
        {"connect", {3, 3, Connect{key_filled_from(9), true}}, 13 + 33},
        {"connect_plain", {4, 4, Connect{key_filled_from(10), false}}, 13 + 33},
        {"result",
         {5, 5, ResultReport{~0ull, key_filled_from(11), Outcome::direct_failed, 5000}},
         13 + 45},
        {"result_relayed",
         {5, 6, ResultReport{1, key_filled_from(12), Outcome::relay_failed, 0}},
         13 + 45},
        {"release", {6, 7, Release{0x8000000000000001}}, 13 + 8},
        {"deregister", {7, 8, Deregister{}}, 13},
        {"registered", {8, 1, Registered{{0xcb007105, 40000}, 25, 120}}, 13 + 10},
        {"status", {9, 2, status}, 13 + 15},
        {"status_unobserved", {9, 3, Status{{1, 1}, NatClass::unknown, {0, 0}, 3478}}, 13 + 15},
        {"connect_ack", {10, 3, ConnectAck{0xfedcba9876543210, true}}, 13 + 9},
        {"connect_ack_direct", {10, 4, ConnectAck{1, false}}, 13 + 9},
        {"ok", {11, 7, Ok{}}, 13},
        {"error", {12, 9, Error{ErrorCode::unknown_peer, "no such peer"}}, 13 + 3 + 12},
        {"error_empty_text", {12, 10, Error{ErrorCode::malformed, ""}}, 13 + 3},
        {"error_max_text",
         {12, 11, Error{ErrorCode::internal, std::string(kMaxErrorText, 'e')}},
         13 + 3 + 120},
        {"punch", {13, 0, Punch{42, key_filled_from(20), 150, 5000, candidates(3)}}, 13 + 49 + 21},
        {"punch_no_candidates", {13, 0, Punch{43, key_filled_from(21), 0, 0, {}}}, 13 + 49},
        {"punch_max",
         {13, 0, Punch{~0ull, key_filled_from(22), ~0u, ~0u, candidates(kMaxCandidates)}},
         13 + 49 + 9 * 7},
        {"relay_offer_bind", {14, 0, offer_bind}, 13 + 92},
        {"relay_offer_wireguard", {14, 0, offer_wg}, 13 + 92},
    };
}

Sample sample(const std::string& name) {
    for (Sample& s : samples()) {
        if (s.name == name) return s;
    }
    throw std::logic_error("no sample " + name);
}

Bytes encoded(const std::string& name) {
    return encode(sample(name).message);
}

// Decodes a private copy of exactly `bytes`, so that AddressSanitizer sees any read past it.
Result<Message, DecodeError> decode_copy(const Bytes& bytes) {
    Bytes copy(bytes);
    return decode(copy);
}

void expect_rejected(const Bytes& bytes, DecodeError expected, const std::string& what) {
    auto decoded = decode_copy(bytes);
    ASSERT_FALSE(decoded.ok()) << what << ": expected " << to_string(expected);
    EXPECT_EQ(decoded.error(), expected)
        << what << ": got " << to_string(decoded.error()) << ", expected " << to_string(expected);
}

void put_be16(Bytes& b, size_t at, uint16_t v) {
    b.at(at) = static_cast<uint8_t>(v >> 8);
    b.at(at + 1) = static_cast<uint8_t>(v);
}

// ---------------------------------------------------------------- per-sample properties

class ControlMessageSample : public testing::TestWithParam<Sample> {};

TEST_P(ControlMessageSample, RoundTripsWithTheDocumentedLength) {
    const Sample& s = GetParam();
    Bytes bytes = encode(s.message);
    EXPECT_EQ(bytes.size(), s.encoded_len);
    ASSERT_GE(bytes.size(), kPlainHeaderLen);
    EXPECT_EQ(bytes[0], static_cast<uint8_t>(type_of(s.message.body)));
    EXPECT_LE(bytes.size(), kMaxPlainLen);

    auto decoded = decode_copy(bytes);
    ASSERT_TRUE(decoded.ok()) << to_string(decoded.error());
    EXPECT_EQ(*decoded, s.message);
    EXPECT_EQ(encode(*decoded), bytes);
}

TEST_P(ControlMessageSample, EveryTruncationIsTruncated) {
    Bytes bytes = encode(GetParam().message);
    for (size_t n = 0; n < bytes.size(); ++n) {
        Bytes cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        expect_rejected(cut, DecodeError::truncated, "first " + std::to_string(n) + " bytes");
    }
}

// The timestamp is read from any plaintext whose header reaches it, decodable or not.
TEST_P(ControlMessageSample, TimestampPeeksFromEveryCutThatHoldsIt) {
    Bytes bytes = encode(GetParam().message);
    for (size_t n = 0; n <= bytes.size(); ++n) {
        Bytes cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        const auto t = peek_timestamp(cut);
        if (n < 1 + 8) {
            EXPECT_FALSE(t) << n << " bytes";
        } else {
            ASSERT_TRUE(t) << n << " bytes";
            EXPECT_EQ(*t, GetParam().message.timestamp_ms) << n << " bytes";
        }
    }
}

TEST_P(ControlMessageSample, TrailingBytesAreRejected) {
    Bytes bytes = encode(GetParam().message);
    for (uint8_t extra : {0x00, 0x01, 0xff}) {
        Bytes longer = bytes;
        longer.push_back(extra);
        expect_rejected(longer, DecodeError::trailing_bytes, "one extra byte");
    }
    Bytes doubled = bytes;
    doubled.insert(doubled.end(), bytes.begin(), bytes.end());
    expect_rejected(doubled, DecodeError::trailing_bytes, "the message twice");
}

// Every single-bit change either decodes to a message whose encoding is exactly the changed
// bytes (the encoding is unique: no bit is ignored) or is rejected.  Never a crash.
TEST_P(ControlMessageSample, EveryBitFlipDecodesCanonicallyOrIsRejected) {
    const Bytes bytes = encode(GetParam().message);
    size_t accepted = 0;
    for (size_t i = 0; i < bytes.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            Bytes flipped = bytes;
            flipped[i] ^= static_cast<uint8_t>(1u << bit);
            auto decoded = decode_copy(flipped);
            if (!decoded.ok()) continue;
            ++accepted;
            EXPECT_EQ(encode(*decoded), flipped) << "byte " << i << " bit " << bit;
        }
    }
    // The timestamp alone has 64 bits any value of which is valid.
    EXPECT_GE(accepted, 64u);
}

INSTANTIATE_TEST_SUITE_P(ControlMessage, ControlMessageSample, testing::ValuesIn(samples()),
                         [](const testing::TestParamInfo<Sample>& info) {
                             return info.param.name;
                         });

// ---------------------------------------------------------------- coverage and sizes

TEST(ControlMessageCodec, SamplesCoverEveryType) {
    std::set<MessageType> seen;
    for (const Sample& s : samples()) seen.insert(type_of(s.message.body));
    EXPECT_EQ(seen.size(), std::variant_size_v<Body>);
}

TEST(ControlMessageCodec, BodySizeConstantsMatchTheDocumentedLayout) {
    EXPECT_EQ(kPlainHeaderLen, 13u);
    EXPECT_EQ(kRegisterPeerMinBodyLen, 71u);
    EXPECT_EQ(kRegisterPeerMaxBodyLen, 375u);
    EXPECT_EQ(kKeepaliveBodyLen, 5u);
    EXPECT_EQ(kConnectBodyLen, 33u);
    EXPECT_EQ(kResultReportBodyLen, 45u);
    EXPECT_EQ(kReleaseBodyLen, 8u);
    EXPECT_EQ(kRegisteredBodyLen, 10u);
    EXPECT_EQ(kStatusBodyLen, 15u);
    EXPECT_EQ(kConnectAckBodyLen, 9u);
    EXPECT_EQ(kErrorMinBodyLen, 3u);
    EXPECT_EQ(kErrorMaxBodyLen, 123u);
    EXPECT_EQ(kPunchMinBodyLen, 49u);
    EXPECT_EQ(kPunchMaxBodyLen, 112u);
    EXPECT_EQ(kRelayOfferBodyLen, 92u);
    EXPECT_EQ(kMaxPlainLen, 388u);
    EXPECT_EQ(encoded("register_max").size(), kMaxPlainLen);
}

// ---------------------------------------------------------------- golden bytes

// Written out by hand from the Keepalive table in docs/PROTOCOL.md.
TEST(ControlMessageGolden, Keepalive) {
    const Bytes golden = {
        0x02,                                            // type keepalive
        0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b,  // timestamp_ms 1700000000123
        0x0a, 0x0b, 0x0c, 0x0d,                          // request_id
        0x00, 0x00, 0x61, 0xa8,                          // rtt_us 25000
        0x01,                                            // flags: reply_from_other_port
    };
    Message m{1700000000123, 0x0a0b0c0d, Keepalive{25000, true}};
    EXPECT_EQ(encode(m), golden);
    auto decoded = decode_copy(golden);
    ASSERT_TRUE(decoded.ok()) << to_string(decoded.error());
    EXPECT_EQ(*decoded, m);
}

// Written out by hand from the Punch table in docs/PROTOCOL.md.
TEST(ControlMessageGolden, Punch) {
    Bytes golden = {
        0x90,                                            // type punch
        0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b,  // timestamp_ms 1700000000123
        0x00, 0x00, 0x00, 0x00,                          // request_id 0 (notification)
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,  // attempt_id
    };
    for (int i = 0; i < 32; ++i) golden.push_back(static_cast<uint8_t>(0xa0 + i));  // peer
    const Bytes rest = {
        0x00, 0x00, 0x00, 0x96,                    // fire_delay_ms 150
        0x00, 0x00, 0x13, 0x88,                    // deadline_ms 5000
        0x02,                                      // candidate count
        0xcb, 0x00, 0x71, 0x05, 0xca, 0x6c, 0x01,  // 203.0.113.5:51820 reflexive
        0xc0, 0xa8, 0x01, 0x14, 0xca, 0x6c, 0x02,  // 192.168.1.20:51820 local
    };
    golden.insert(golden.end(), rest.begin(), rest.end());

    Punch p;
    p.attempt_id = 0x1122334455667788;
    for (int i = 0; i < 32; ++i) p.peer[i] = static_cast<uint8_t>(0xa0 + i);
    p.fire_delay_ms = 150;
    p.deadline_ms = 5000;
    p.candidates = {{{0xcb007105, 51820}, CandidateKind::reflexive},
                    {{0xc0a80114, 51820}, CandidateKind::local}};
    Message m{1700000000123, 0, p};
    EXPECT_EQ(golden.size(), 13u + 49 + 2 * 7);
    EXPECT_EQ(encode(m), golden);
    auto decoded = decode_copy(golden);
    ASSERT_TRUE(decoded.ok()) << to_string(decoded.error());
    EXPECT_EQ(*decoded, m);
}

// Written out by hand from the Error table in docs/PROTOCOL.md.
TEST(ControlMessageGolden, Error) {
    const Bytes golden = {
        0xff,                                            // type error
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  // timestamp_ms 1
        0x00, 0x00, 0x00, 0x07,                          // request_id 7
        0x00, 0x02,                                      // code bad_token
        0x03, 'b',  'a',  'd',                           // text "bad"
    };
    Message m{1, 7, Error{ErrorCode::bad_token, "bad"}};
    EXPECT_EQ(encode(m), golden);
    auto decoded = decode_copy(golden);
    ASSERT_TRUE(decoded.ok()) << to_string(decoded.error());
    EXPECT_EQ(*decoded, m);
}

// ---------------------------------------------------------------- rejections

// Offsets from docs/PROTOCOL.md, counted from the start of the plaintext.
constexpr size_t kBody = kPlainHeaderLen;

TEST(ControlMessageReject, UnknownTypes) {
    std::set<uint8_t> known;
    for (const Sample& s : samples()) known.insert(static_cast<uint8_t>(type_of(s.message.body)));
    for (int type = 0; type < 256; ++type) {
        if (known.count(static_cast<uint8_t>(type)) != 0) continue;
        Bytes header(kPlainHeaderLen, 0);
        header[0] = static_cast<uint8_t>(type);
        expect_rejected(header, DecodeError::unknown_type, "type " + std::to_string(type));
        Bytes with_body = header;
        with_body.resize(64, 0x01);
        expect_rejected(with_body, DecodeError::unknown_type, "type " + std::to_string(type));
    }
    // Cut inside the header: truncated whatever the type byte says.
    expect_rejected({0x00}, DecodeError::truncated, "1 byte, unknown type");
    expect_rejected(Bytes(kPlainHeaderLen - 1, 0x77), DecodeError::truncated, "12 bytes");
}

TEST(ControlMessageReject, ZeroKeysWhereForbidden) {
    {
        RegisterPeer r = std::get<RegisterPeer>(sample("register").message.body);
        r.wg_public_key = {};
        expect_rejected(encode({1, 1, r}), DecodeError::bad_value, "register wg_public_key 0");
        r.wg_public_key[31] = 1;  // any nonzero byte makes it a key
        EXPECT_TRUE(decode_copy(encode({1, 1, r})).ok());
        r.probe_key = {};  // zero probe key = none: allowed
        EXPECT_TRUE(decode_copy(encode({1, 1, r})).ok());
    }
    expect_rejected(encode({1, 1, Connect{PublicKey{}, false}}), DecodeError::bad_value,
                    "connect peer 0");
    expect_rejected(encode({1, 1, Release{0}}), DecodeError::bad_value, "release session 0");
}

TEST(ControlMessageReject, ReservedFlagBits) {
    for (int bit = 1; bit < 8; ++bit) {
        // Keepalive bits 1 (probe_done) and 2 (probe_reply_seen) are defined; bit 2 alone
        // (a result without a probe) is refused.
        Bytes k = encoded("keepalive");
        k.at(kBody + 4) |= static_cast<uint8_t>(1u << bit);
        if (bit != 1)
            expect_rejected(k, DecodeError::bad_value,
                            "keepalive flags bit " + std::to_string(bit));
        Bytes c = encoded("connect_plain");
        c.at(kBody + 32) |= static_cast<uint8_t>(1u << bit);
        expect_rejected(c, DecodeError::bad_value, "connect flags bit " + std::to_string(bit));
    }
}

TEST(ControlMessageReject, BadEnumValues) {
    struct Case {
        const char* sample;
        size_t offset;
        std::vector<uint8_t> bad;
        std::vector<uint8_t> good;
    };
    const std::vector<Case> cases = {
        {"result", kBody + 40, {0, 5, 0xff}, {1, 2, 3, 4}},       // outcome
        {"status", kBody + 6, {5, 0x80, 0xff}, {0, 1, 2, 3, 4}},  // nat_class
        {"connect_ack", kBody + 8, {2, 0xff}, {0, 1}},            // relayed (bool)
        {"punch", kBody + 49 + 6, {0, 3, 0xff}, {1, 2}},          // candidates[0].kind
        {"punch", kBody + 49 + 2 * 7 + 6, {0, 3}, {1, 2}},        // candidates[2].kind
        {"relay_offer_bind", kBody + 54, {0, 3, 0xff}, {1, 2}},   // policy
        {"relay_offer_bind", kBody + 55, {2, 0xff}, {0, 1}},      // side
    };
    for (const Case& c : cases) {
        for (uint8_t v : c.bad) {
            Bytes b = encoded(c.sample);
            b.at(c.offset) = v;
            expect_rejected(b, DecodeError::bad_value,
                            std::string(c.sample) + " byte " + std::to_string(c.offset) + " = " +
                                std::to_string(v));
        }
        for (uint8_t v : c.good) {
            Bytes b = encoded(c.sample);
            b.at(c.offset) = v;
            auto decoded = decode_copy(b);
            ASSERT_TRUE(decoded.ok()) << c.sample << " byte " << c.offset << " = " << int{v};
            EXPECT_EQ(encode(*decoded), b);
        }
    }
    // Error code: u16, 1..16.
    for (uint16_t code : {0, 17, 0x0100, 0xffff}) {
        Bytes b = encoded("error");
        put_be16(b, kBody, code);
        expect_rejected(b, DecodeError::bad_value, "error code " + std::to_string(code));
    }
    for (uint16_t code = 1; code <= 16; ++code) {
        Bytes b = encoded("error");
        put_be16(b, kBody, code);
        auto decoded = decode_copy(b);
        ASSERT_TRUE(decoded.ok()) << "error code " << code;
        EXPECT_EQ(static_cast<uint16_t>(std::get<Error>(decoded->body).code), code);
    }
}

TEST(ControlMessageReject, OversizedLengthsAndCounts) {
    // Token length: u16 at the start of the body, at most 256.
    for (uint16_t len : {257, 0x1000, 0xffff}) {
        Bytes b = encoded("register_minimal");
        put_be16(b, kBody, len);
        expect_rejected(b, DecodeError::oversized, "token length " + std::to_string(len));
    }
    {
        // 256 is fine on its own: with no token bytes behind it the message is merely short.
        Bytes b = encoded("register_minimal");
        put_be16(b, kBody, 256);
        expect_rejected(b, DecodeError::truncated, "token length 256 without the token");
    }
    // Local address count: u8 after token, key, port, probe key, agent port.
    for (uint8_t count : {9, 100, 255}) {
        Bytes b = encoded("register_max");
        b.at(kBody + 2 + kMaxTokenLen + 68) = count;
        expect_rejected(b, DecodeError::oversized, "address count " + std::to_string(count));
    }
    // Error text length: u8 after the code, at most 120; checked before the text is read.
    for (uint8_t len : {121, 200, 255}) {
        Bytes b = encoded("error_max_text");
        b.at(kBody + 2) = len;
        b.resize(kBody + 3 + len, 'x');
        expect_rejected(b, DecodeError::oversized, "error text length " + std::to_string(len));
    }
    // Candidate count: u8 at body offset 48, at most 9.
    for (uint8_t count : {10, 255}) {
        Bytes b = encoded("punch_max");
        b.at(kBody + 48) = count;
        expect_rejected(b, DecodeError::oversized, "candidate count " + std::to_string(count));
    }
}

TEST(ControlMessageReject, CountsThatClaimMoreThanIsThere) {
    Bytes reg = encoded("register");
    reg.at(reg.size() - 2 * 6 - 1) = 3;  // says 3 addresses, carries 2
    expect_rejected(reg, DecodeError::truncated, "address count 3 of 2");
    reg.at(reg.size() - 2 * 6 - 1) = 1;  // says 1, carries 2
    expect_rejected(reg, DecodeError::trailing_bytes, "address count 1 of 2");

    Bytes punch = encoded("punch");
    punch.at(kBody + 48) = 4;
    expect_rejected(punch, DecodeError::truncated, "candidate count 4 of 3");

    Bytes err = encoded("error");
    err.at(kBody + 2) = 13;  // "no such peer" is 12 bytes
    expect_rejected(err, DecodeError::truncated, "error text length 13 of 12");
    err.at(kBody + 2) = 11;
    expect_rejected(err, DecodeError::trailing_bytes, "error text length 11 of 12");
}

// Deterministic random damage to every sample (a few bytes overwritten, the length changed)
// and plain random bytes: nothing crashes, and whatever decodes re-encodes to the same bytes.
TEST(ControlMessageReject, RandomDamageNeverCrashes) {
    const std::vector<Sample> all = samples();
    std::mt19937 rng(20240601);
    auto below = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    size_t accepted = 0;
    for (int i = 0; i < 50000; ++i) {
        Bytes b;
        if (i % 10 == 0) {
            b.resize(below(kMaxPlainLen + 8));
        } else {
            b = encode(all[below(all.size())].message);
            const size_t writes = 1 + below(4);
            for (size_t w = 0; w < writes; ++w)
                b[below(b.size())] = static_cast<uint8_t>(below(256));
            if (below(4) == 0) b.resize(below(b.size() + 8));
        }
        if (i % 10 == 0) {
            for (uint8_t& x : b) x = static_cast<uint8_t>(below(256));
        }
        auto decoded = decode_copy(b);
        if (!decoded.ok()) continue;
        ++accepted;
        EXPECT_EQ(encode(*decoded), b);
    }
    EXPECT_GT(accepted, 0u);  // damage confined to free fields (timestamps, ports) decodes
}

// ---------------------------------------------------------------- encoder limits

TEST(ControlMessageEncode, RefusesMoreEntriesThanTheFormatAllows) {
    RegisterPeer r = std::get<RegisterPeer>(sample("register_max").message.body);
    r.local_addresses.push_back({1, 2});
    EXPECT_THROW(encode({1, 1, r}), std::invalid_argument);

    RegisterPeer t = std::get<RegisterPeer>(sample("register").message.body);
    t.token = std::string(kMaxTokenLen + 1, 't');
    EXPECT_THROW(encode({1, 1, t}), std::invalid_argument);

    Punch p = std::get<Punch>(sample("punch_max").message.body);
    p.candidates.push_back({{1, 2}, CandidateKind::local});
    EXPECT_THROW(encode({1, 0, p}), std::invalid_argument);
}

TEST(ControlMessageEncode, CutsLongErrorText) {
    Bytes b = encode({1, 1, Error{ErrorCode::internal, std::string(500, 'x')}});
    EXPECT_EQ(b.size(), kPlainHeaderLen + kErrorMaxBodyLen);
    auto decoded = decode_copy(b);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(std::get<Error>(decoded->body).text, std::string(kMaxErrorText, 'x'));
}

TEST(ControlMessageEncode, CutsErrorTextAtACharacterBoundary) {
    // 119 ASCII bytes, then a 2-byte "é": byte 120 would split it, so it goes entirely.
    std::string text = std::string(119, 'a') + "\xc3\xa9" + "tail";
    auto decoded = decode_copy(encode({1, 1, Error{ErrorCode::internal, text}}));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(std::get<Error>(decoded->body).text, std::string(119, 'a'));

    // Exactly at the boundary: the character fits and is kept.
    text = std::string(118, 'a') + "\xc3\xa9" + "tail";
    decoded = decode_copy(encode({1, 1, Error{ErrorCode::internal, text}}));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(std::get<Error>(decoded->body).text, std::string(118, 'a') + "\xc3\xa9");
}

// ---------------------------------------------------------------- names

bool is_snake_case(const std::string& s) {
    if (s.empty() || s.front() == '_' || s.back() == '_') return false;
    for (char c : s) {
        if (!(std::islower(static_cast<unsigned char>(c)) || c == '_')) return false;
    }
    return true;
}

template <typename E>
void expect_names(const std::vector<E>& values) {
    std::set<std::string> names;
    for (E v : values) {
        std::string name = to_string(v);
        EXPECT_TRUE(is_snake_case(name)) << name;
        EXPECT_NE(name, "invalid");
        names.insert(name);
    }
    EXPECT_EQ(names.size(), values.size()) << "names are not unique";
}

TEST(ControlMessageNames, EveryEnumHasAStableSnakeCaseName) {
    std::vector<MessageType> types;
    for (const Sample& s : samples()) {
        MessageType t = type_of(s.message.body);
        if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
    }
    expect_names(types);
    expect_names<NatClass>({NatClass::unknown, NatClass::open, NatClass::cone,
                            NatClass::port_restricted, NatClass::symmetric});
    std::vector<ErrorCode> codes;
    for (uint16_t c = 1; c <= 16; ++c) codes.push_back(static_cast<ErrorCode>(c));
    expect_names(codes);
    expect_names<CandidateKind>({CandidateKind::reflexive, CandidateKind::local});
    expect_names<Outcome>(
        {Outcome::direct_ok, Outcome::direct_failed, Outcome::relayed_ok, Outcome::relay_failed});
    expect_names<DecodeError>({DecodeError::truncated, DecodeError::unknown_type,
                               DecodeError::trailing_bytes, DecodeError::bad_value,
                               DecodeError::oversized});

    // Label values in metrics and CLI output: these exact strings.
    EXPECT_STREQ(to_string(MessageType::register_peer), "register");
    EXPECT_STREQ(to_string(MessageType::result), "result");
    EXPECT_STREQ(to_string(MessageType::connect_ack), "connect_ack");
    EXPECT_STREQ(to_string(MessageType::relay_offer), "relay_offer");
    EXPECT_STREQ(to_string(NatClass::port_restricted), "port_restricted");
    EXPECT_STREQ(to_string(ErrorCode::bad_token), "bad_token");
    EXPECT_STREQ(to_string(ErrorCode::dataplane_unavailable), "dataplane_unavailable");
    EXPECT_STREQ(to_string(Outcome::direct_failed), "direct_failed");
    EXPECT_STREQ(to_string(CandidateKind::local), "local");
    EXPECT_STREQ(to_string(DecodeError::trailing_bytes), "trailing_bytes");

    // A value outside the enum (from a cast) gets a name that is none of the real ones.
    EXPECT_STREQ(to_string(static_cast<MessageType>(0x7f)), "invalid");
    EXPECT_STREQ(to_string(static_cast<NatClass>(9)), "invalid");
    EXPECT_STREQ(to_string(static_cast<ErrorCode>(0)), "invalid");
}

}  // namespace
}  // namespace relay::control

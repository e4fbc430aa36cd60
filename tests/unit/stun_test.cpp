// STUN Binding codec (relay/wire/stun.hpp): tables of input bytes and expected results,
// truncations and bit flips of valid messages, the size policy, the RFC 5769 test vectors,
// and coturn's turnutils_stunclient against a responder that uses the codec.
//
// Test messages are assembled here by MessageBuilder, whose FINGERPRINT uses a bitwise
// CRC-32 independent of the codec's table.  The known-answer vectors were computed with
// Python's zlib.crc32 and struct; the RFC 5769 vectors are copied from the RFC (their
// FINGERPRINTs verify, so the transcription is exact).
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "relay/wire/stun.hpp"

extern char** environ;

namespace relay::wire::stun {

// gtest prints the reason's name on failure (found by argument-dependent lookup).
inline void PrintTo(ParseError e, std::ostream* os) {
    *os << to_string(e);
}

namespace {

using Bytes = std::vector<uint8_t>;

Bytes from_hex(const char* hex) {
    Bytes out;
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2)
        out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex + i, 2), nullptr, 16)));
    return out;
}

std::string to_hex(const Bytes& bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (uint8_t b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

TransactionId test_tx() {
    TransactionId tx;
    for (size_t i = 0; i < tx.size(); ++i) tx[i] = static_cast<uint8_t>(i + 1);
    return tx;
}

// Bit by bit, unlike the codec's table: an independent check of its FINGERPRINT.
uint32_t bitwise_crc32(const Bytes& bytes, size_t len) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; ++i) {
        c ^= bytes[i];
        for (int bit = 0; bit < 8; ++bit) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

void put16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, uint32_t v) {
    put16(b, static_cast<uint16_t>(v >> 16));
    put16(b, static_cast<uint16_t>(v));
}

// Assembles a STUN message attribute by attribute, with the header length computed (or
// forced) and an optional FINGERPRINT.
class MessageBuilder {
  public:
    explicit MessageBuilder(uint16_t type, TransactionId tx = test_tx()) : type_(type), tx_(tx) {}

    MessageBuilder& cookie(uint32_t c) {
        cookie_ = c;
        return *this;
    }
    // A value of `value.size()` bytes, zero-padded to 4.
    MessageBuilder& attr(uint16_t type, const Bytes& value) {
        return attr_with_length(type, static_cast<uint16_t>(value.size()), value);
    }
    // Declared length and actual value bytes disagree on purpose (no padding added).
    MessageBuilder& attr_with_length(uint16_t type, uint16_t declared, Bytes value) {
        put16(body_, type);
        put16(body_, declared);
        if (declared == value.size()) value.resize((value.size() + 3) / 4 * 4, 0);
        body_.insert(body_.end(), value.begin(), value.end());
        return *this;
    }
    MessageBuilder& address(uint16_t type, uint32_t ip, uint16_t port, bool xored) {
        Bytes v = {0, 0x01};
        put16(v, xored ? static_cast<uint16_t>(port ^ 0x2112) : port);
        put32(v, xored ? ip ^ kMagicCookie : ip);
        return attr(type, v);
    }
    MessageBuilder& fingerprint() {
        fingerprint_ = true;
        return *this;
    }
    MessageBuilder& length(uint16_t forced) {
        length_ = forced;
        return *this;
    }

    Bytes build() const {
        Bytes m;
        put16(m, type_);
        size_t length = body_.size() + (fingerprint_ ? 8 : 0);
        put16(m, length_ ? *length_ : static_cast<uint16_t>(length));
        put32(m, cookie_);
        m.insert(m.end(), tx_.begin(), tx_.end());
        m.insert(m.end(), body_.begin(), body_.end());
        if (fingerprint_) {
            uint32_t crc = bitwise_crc32(m, m.size()) ^ 0x5354554Eu;
            put16(m, 0x8028);
            put16(m, 4);
            put32(m, crc);
        }
        return m;
    }

  private:
    uint16_t type_;
    TransactionId tx_;
    uint32_t cookie_ = kMagicCookie;
    Bytes body_;
    bool fingerprint_ = false;
    std::optional<uint16_t> length_;
};

Bytes bytes_of(size_t n, uint8_t fill = 0) {
    return Bytes(n, fill);
}

constexpr uint32_t kTestIp = 0xC0000201;  // 192.0.2.1
constexpr uint16_t kTestPort = 32853;
const SocketAddress kObserved{kTestIp, kTestPort};

// RFC 5769 §2.1: a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
// MESSAGE-INTEGRITY, FINGERPRINT.
const char* kRfc5769Request =
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149a"
    "eaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf";
// RFC 5769 §2.2: the IPv4 Binding success: SOFTWARE, XOR-MAPPED-ADDRESS 192.0.2.1:32853,
// MESSAGE-INTEGRITY, FINGERPRINT.
const char* kRfc5769Ipv4Response =
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f722000200008"
    "0001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96";
const TransactionId kRfc5769Tx = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                  0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

// Python: header(0x0101, tx 01..0c) + XOR-MAPPED-ADDRESS + MAPPED-ADDRESS (192.0.2.1:32853)
// + SOFTWARE "p2p-relay" + FINGERPRINT (zlib.crc32 ^ 0x5354554e).
const char* kKnownResponse68 =
    "010100302112a4420102030405060708090a0b0c002000080001a147e112a643000100080001805"
    "5c0000201802200097032702d72656c617900000080280004d1505f68";
const char* kKnownResponse32 = "0101000c2112a4420102030405060708090a0b0c002000080001a147e112a643";
// Python: header(0x0001, tx 01..0c) + PADDING (32 zero bytes) + FINGERPRINT.
const char* kKnownRequest64 =
    "0001002c2112a4420102030405060708090a0b0c0026002000000000000000000000000000000000"
    "0000000000000000000000000000000080280004a601903a";

std::string describe(const Result<BindingRequest, ParseError>& r) {
    return r ? std::string("ok") : to_string(r.error());
}
std::string describe(const Result<SocketAddress, ParseError>& r) {
    return r ? "ok " + format_socket_address(*r) : std::string(to_string(r.error()));
}

// Offsets at which a message's attributes start, plus its end (test-side walk of a message
// known to be valid).
std::vector<size_t> attribute_boundaries(const Bytes& m) {
    std::vector<size_t> out;
    size_t offset = kHeaderLen;
    while (offset < m.size()) {
        out.push_back(offset);
        size_t len = size_t{m[offset + 2]} << 8 | m[offset + 3];
        offset += 4 + (len + 3) / 4 * 4;
    }
    out.push_back(offset);
    return out;
}

}  // namespace

// ---------------------------------------------------------------- request parsing

TEST(StunRequest, TableOfInputsAndVerdicts) {
    struct Case {
        const char* name;
        Bytes datagram;
        std::optional<ParseError> expected;  // nullopt: accepted
    };
    const Bytes one_word = {0, 0, 0, 1};
    std::vector<Case> cases = {
        {"bare header (turnutils_stunclient)", MessageBuilder(0x0001).build(), std::nullopt},
        {"our own request", make_binding_request(test_tx()), std::nullopt},
        {"RFC 5769 sample request", from_hex(kRfc5769Request), std::nullopt},
        {"fingerprint only", MessageBuilder(0x0001).fingerprint().build(), std::nullopt},
        {"empty datagram", Bytes{}, ParseError::too_short},
        {"19 bytes", bytes_of(19), ParseError::too_short},
        {"top bit set", MessageBuilder(0x8001).build(), ParseError::not_stun},
        {"second bit set", MessageBuilder(0x4001).build(), ParseError::not_stun},
        {"wrong cookie", MessageBuilder(0x0001).cookie(0x2112A443).build(), ParseError::not_stun},
        {"RFC 3489 (no cookie)", MessageBuilder(0x0001).cookie(0).build(), ParseError::not_stun},
        {"zeros", bytes_of(20), ParseError::not_stun},
        {"length 4, no body", MessageBuilder(0x0001).length(4).build(), ParseError::bad_length},
        {"length not a multiple of 4",
         [] {
             Bytes m = MessageBuilder(0x0001).length(3).build();
             m.resize(23);
             return m;
         }(),
         ParseError::bad_length},
        {"trailing bytes after the message",
         [] {
             Bytes m = MessageBuilder(0x0001).build();
             m.resize(24);
             return m;
         }(),
         ParseError::bad_length},
        {"length 0xfffc, 20-byte datagram", MessageBuilder(0x0001).length(0xFFFC).build(),
         ParseError::bad_length},
        {"consistent but larger than 1500 bytes",
         MessageBuilder(0x0001).attr(0x0026, bytes_of(1480)).build(), ParseError::bad_length},
        {"exactly 1500 bytes", MessageBuilder(0x0001).attr(0x0026, bytes_of(1476)).build(),
         std::nullopt},
        {"Binding success", MessageBuilder(0x0101).build(), ParseError::not_binding_request},
        {"Binding error response", MessageBuilder(0x0111).build(), ParseError::not_binding_request},
        {"Binding indication", MessageBuilder(0x0011).build(), ParseError::not_binding_request},
        {"Allocate request (TURN)", MessageBuilder(0x0003).build(),
         ParseError::not_binding_request},
        {"Refresh request (TURN)", MessageBuilder(0x0004).build(), ParseError::not_binding_request},
        {"attribute value runs past the end",
         MessageBuilder(0x0001).attr_with_length(0x8022, 8, one_word).build(),
         ParseError::bad_attribute},
        {"attribute padding runs past the end",
         MessageBuilder(0x0001).attr_with_length(0x8022, 5, one_word).build(),
         ParseError::bad_attribute},
        {"attribute length 0xffff",
         MessageBuilder(0x0001).attr_with_length(0x8022, 0xFFFF, {}).build(),
         ParseError::bad_attribute},
        {"odd-length SOFTWARE, padded",
         MessageBuilder(0x0001).attr(0x8022, {'a', 'b', 'c'}).build(), std::nullopt},
        {"wrong fingerprint",
         [] {
             Bytes m = MessageBuilder(0x0001).attr(0x8022, {'x'}).fingerprint().build();
             m.back() ^= 0x01;
             return m;
         }(),
         ParseError::bad_fingerprint},
        {"fingerprint not last",
         [] {
             // A correct FINGERPRINT followed by SOFTWARE, the header length covering both.
             Bytes m = MessageBuilder(0x0001).fingerprint().build();
             m[3] += 8;
             uint32_t crc = bitwise_crc32(m, 20) ^ 0x5354554Eu;
             m[24] = static_cast<uint8_t>(crc >> 24);
             m[25] = static_cast<uint8_t>(crc >> 16);
             m[26] = static_cast<uint8_t>(crc >> 8);
             m[27] = static_cast<uint8_t>(crc);
             Bytes software = {0x80, 0x22, 0x00, 0x04, 'a', 'b', 'c', 'd'};
             m.insert(m.end(), software.begin(), software.end());
             return m;
         }(),
         ParseError::bad_fingerprint},
        {"fingerprint of 8 bytes", MessageBuilder(0x0001).attr(0x8028, bytes_of(8)).build(),
         ParseError::bad_fingerprint},
        {"unknown required 0x0002 (RFC 3489 RESPONSE-ADDRESS)",
         MessageBuilder(0x0001).attr(0x0002, bytes_of(8)).build(),
         ParseError::unknown_required_attribute},
        {"unknown required 0x7fff", MessageBuilder(0x0001).attr(0x7FFF, {}).fingerprint().build(),
         ParseError::unknown_required_attribute},
        {"unknown optional 0x8fff", MessageBuilder(0x0001).attr(0x8FFF, bytes_of(3)).build(),
         std::nullopt},
        {"unknown optional 0xffff", MessageBuilder(0x0001).attr(0xFFFF, {}).fingerprint().build(),
         std::nullopt},
        {"SOFTWARE, CHANGE-REQUEST, RESPONSE-PORT, PADDING",
         MessageBuilder(0x0001)
             .attr(0x8022, {'c', 'l', 'i'})
             .attr(0x0003, {0, 0, 0, 6})
             .attr(0x0027, {0x12, 0x34, 0, 0})
             .attr(0x0026, bytes_of(100))
             .fingerprint()
             .build(),
         std::nullopt},
        {"USERNAME, MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 (not checked)",
         MessageBuilder(0x0001)
             .attr(0x0006, {'u', 's', 'e', 'r'})
             .attr(0x0008, bytes_of(20))
             .attr(0x001C, bytes_of(32))
             .fingerprint()
             .build(),
         std::nullopt},
        {"unknown required after MESSAGE-INTEGRITY is ignored (RFC 8489 §14.5)",
         MessageBuilder(0x0001).attr(0x0008, bytes_of(20)).attr(0x0002, bytes_of(8)).build(),
         std::nullopt},
        {"wrong fingerprint after MESSAGE-INTEGRITY",
         [] {
             Bytes m = MessageBuilder(0x0001).attr(0x0008, bytes_of(20)).fingerprint().build();
             m.back() ^= 0x80;
             return m;
         }(),
         ParseError::bad_fingerprint},
        {"attribute past the end after MESSAGE-INTEGRITY",
         MessageBuilder(0x0001)
             .attr(0x0008, bytes_of(20))
             .attr_with_length(0x8022, 12, one_word)
             .build(),
         ParseError::bad_attribute},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = parse_binding_request(c.datagram);
        if (!c.expected) {
            ASSERT_TRUE(r.ok()) << describe(r);
            EXPECT_EQ(r->length, c.datagram.size());
            EXPECT_TRUE(
                std::equal(r->transaction.begin(), r->transaction.end(), c.datagram.begin() + 8));
        } else {
            ASSERT_FALSE(r.ok());
            EXPECT_STREQ(to_string(r.error()), to_string(*c.expected));
        }
    }
}

TEST(StunRequest, RoundTripAtEverySize) {
    for (size_t min_len : {0, 1, 20, 27, 28, 29, 31, 32, 33, 64, 68, 100, 1499, 1500, 1501, 9000}) {
        SCOPED_TRACE("min_len " + std::to_string(min_len));
        Bytes m = make_binding_request(test_tx(), min_len);
        size_t expected = std::clamp<size_t>((min_len + 3) / 4 * 4, 28, kMaxMessageLen);
        EXPECT_EQ(m.size(), expected);
        EXPECT_TRUE(looks_like_stun(m));
        // FINGERPRINT last, PADDING (if any) before it.
        EXPECT_EQ(m[m.size() - 8], 0x80);
        EXPECT_EQ(m[m.size() - 7], 0x28);
        if (m.size() > 28) {
            EXPECT_EQ((uint16_t(m[20]) << 8) | m[21], 0x0026);
        }
        EXPECT_EQ(bitwise_crc32(m, m.size() - 8) ^ 0x5354554Eu,
                  uint32_t{m[m.size() - 4]} << 24 | uint32_t{m[m.size() - 3]} << 16 |
                      uint32_t{m[m.size() - 2]} << 8 | m[m.size() - 1]);
        auto r = parse_binding_request(m);
        ASSERT_TRUE(r.ok()) << describe(r);
        EXPECT_EQ(r->transaction, test_tx());
        EXPECT_EQ(r->length, m.size());
    }
}

TEST(StunRequest, KnownAnswer) {
    EXPECT_EQ(to_hex(make_binding_request(test_tx(), 64)), kKnownRequest64);
    EXPECT_EQ(to_hex(make_binding_request(test_tx())), kKnownRequest64);  // default 64
}

TEST(StunRequest, EveryTruncationIsRejected) {
    for (const Bytes& valid : {make_binding_request(test_tx(), 64), from_hex(kRfc5769Request)}) {
        ASSERT_TRUE(parse_binding_request(valid).ok());
        // Cut short: the header's length no longer matches.
        for (size_t n = 0; n < valid.size(); ++n) {
            SCOPED_TRACE("cut at " + std::to_string(n));
            Bytes cut(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(n));
            auto r = parse_binding_request(cut);
            ASSERT_FALSE(r.ok());
            EXPECT_EQ(r.error(), n < kHeaderLen ? ParseError::too_short : ParseError::bad_length);
        }
        // Cut short with the header's length fixed up, so that the attribute walk meets the
        // cut: only a cut between attributes leaves a valid (shorter) message.
        auto boundaries = attribute_boundaries(valid);
        for (size_t n = kHeaderLen; n < valid.size(); n += 4) {
            SCOPED_TRACE("cut and fixed up at " + std::to_string(n));
            Bytes cut(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(n));
            cut[2] = static_cast<uint8_t>((n - kHeaderLen) >> 8);
            cut[3] = static_cast<uint8_t>(n - kHeaderLen);
            auto r = parse_binding_request(cut);
            bool at_boundary =
                std::find(boundaries.begin(), boundaries.end(), n) != boundaries.end();
            if (at_boundary) {
                EXPECT_TRUE(r.ok()) << describe(r);
            } else {
                ASSERT_FALSE(r.ok());
                EXPECT_EQ(r.error(), ParseError::bad_attribute);
            }
        }
    }
}

TEST(StunRequest, EverySingleBitFlipParsesOrIsRejected) {
    for (const Bytes& valid : {make_binding_request(test_tx(), 64), from_hex(kRfc5769Request),
                               MessageBuilder(0x0001).build()}) {
        bool has_fingerprint = valid.size() >= 28 && valid[valid.size() - 8] == 0x80 &&
                               valid[valid.size() - 7] == 0x28;
        size_t accepted = 0;
        for (size_t bit = 0; bit < valid.size() * 8; ++bit) {
            SCOPED_TRACE("bit " + std::to_string(bit));
            Bytes m = valid;
            size_t byte = bit / 8;
            m[byte] ^= static_cast<uint8_t>(1u << (bit % 8));
            auto r = parse_binding_request(m);
            if (r.ok()) {
                ++accepted;
                EXPECT_EQ(r->length, m.size());
                EXPECT_TRUE(
                    std::equal(r->transaction.begin(), r->transaction.end(), m.begin() + 8));
            }
            // The header is checked field by field, or (transaction id) by the FINGERPRINT.
            if (byte < 8 || (has_fingerprint && byte < kHeaderLen)) {
                EXPECT_FALSE(r.ok());
            }
            // The FINGERPRINT value itself.
            if (has_fingerprint && byte >= valid.size() - 4) {
                ASSERT_FALSE(r.ok());
                EXPECT_EQ(r.error(), ParseError::bad_fingerprint);
            }
        }
        // Most flips are caught; the rest turn a valid message into another valid one (a
        // flipped transaction id without FINGERPRINT, FINGERPRINT's type turned into an
        // optional one, an attribute length that swallows the FINGERPRINT).
        if (has_fingerprint) {
            EXPECT_LT(accepted, valid.size() * 8 / 4);
        }
    }
}

// ---------------------------------------------------------------- response building

TEST(StunResponse, KnownAnswer) {
    auto full = make_binding_success(test_tx(), kObserved, 1500);
    ASSERT_TRUE(full);
    EXPECT_EQ(to_hex(*full), kKnownResponse68);
    auto minimal = make_binding_success(test_tx(), kObserved, 32);
    ASSERT_TRUE(minimal);
    EXPECT_EQ(to_hex(*minimal), kKnownResponse32);
}

TEST(StunResponse, RoundTripGivesTheAddressBack) {
    for (SocketAddress a : {kObserved, SocketAddress{0, 0}, SocketAddress{0xFFFFFFFF, 65535},
                            SocketAddress{0x7F000001, 3478}, SocketAddress{0x2112A442, 0x2112}}) {
        SCOPED_TRACE(format_socket_address(a));
        for (size_t max_len : {32, 40, 52, 68, 1500}) {
            auto m = make_binding_success(test_tx(), a, max_len);
            ASSERT_TRUE(m);
            EXPECT_TRUE(looks_like_stun(*m));
            auto r = parse_binding_success(*m, test_tx());
            ASSERT_TRUE(r.ok()) << describe(r);
            EXPECT_EQ(*r, a);
        }
    }
}

TEST(StunResponse, SizeAndContentForEveryBudget) {
    for (size_t max_len = 0; max_len <= 100; ++max_len) {
        SCOPED_TRACE("max_len " + std::to_string(max_len));
        auto m = make_binding_success(test_tx(), kObserved, max_len);
        if (max_len < kMinResponseLen) {
            EXPECT_FALSE(m);
            continue;
        }
        ASSERT_TRUE(m);
        size_t expected = max_len >= 68 ? 68 : max_len >= 52 ? 52 : max_len >= 40 ? 40 : 32;
        EXPECT_EQ(m->size(), expected);
        EXPECT_LE(m->size(), max_len);
        // Attribute types in wire order.
        std::vector<uint16_t> types;
        for (size_t offset : attribute_boundaries(*m)) {
            if (offset < m->size()) types.push_back(uint16_t((*m)[offset] << 8 | (*m)[offset + 1]));
        }
        std::vector<uint16_t> expected_types = {0x0020};
        if (expected >= 52) expected_types.push_back(0x0001);
        if (expected >= 68) expected_types.push_back(0x8022);
        if (expected >= 40) expected_types.push_back(0x8028);
        EXPECT_EQ(types, expected_types);
        auto r = parse_binding_success(*m, test_tx());
        ASSERT_TRUE(r.ok()) << describe(r);
        EXPECT_EQ(*r, kObserved);
    }
}

// BRIEF §5: no reply to an unauthenticated request is larger than the request.  STUN sizes
// are multiples of 4, from 20 (a bare header) up.
TEST(StunSizePolicy, ResponseNeverLargerThanRequestExceptTheMinimalAnswer) {
    for (size_t n = 20; n <= 100; n += 4) {
        SCOPED_TRACE("request of " + std::to_string(n) + " bytes");
        Bytes request = n == 20   ? MessageBuilder(0x0001).build()
                        : n == 24 ? MessageBuilder(0x0001).attr(0x0026, {}).build()
                                  : make_binding_request(test_tx(), n);
        ASSERT_EQ(request.size(), n);
        auto parsed = parse_binding_request(request);
        ASSERT_TRUE(parsed.ok()) << describe(parsed);
        ASSERT_EQ(parsed->length, n);

        // The codec with the strict budget: never larger, XOR-MAPPED-ADDRESS when 32 fit.
        auto strict = make_binding_success(parsed->transaction, kObserved, parsed->length);
        EXPECT_EQ(strict.has_value(), n >= kMinResponseLen);
        if (strict) {
            EXPECT_LE(strict->size(), n);
            auto r = parse_binding_success(*strict, test_tx());
            ASSERT_TRUE(r.ok()) << describe(r);
            EXPECT_EQ(*r, kObserved);
        }

        // The policy the control process applies: the same, except that 20..28-byte
        // requests get the 32-byte minimal answer.
        size_t limit = response_size_limit(*parsed);
        EXPECT_EQ(limit, std::max(n, kMinResponseLen));
        auto answer = make_binding_success(parsed->transaction, kObserved, limit);
        ASSERT_TRUE(answer);
        EXPECT_LE(answer->size(), std::max(n, kMinResponseLen));
        if (n >= kMinResponseLen) {
            EXPECT_LE(answer->size(), n);
        }
        auto r = parse_binding_success(*answer, test_tx());
        ASSERT_TRUE(r.ok()) << describe(r);
        EXPECT_EQ(*r, kObserved);
    }
}

// ---------------------------------------------------------------- response parsing

TEST(StunResponse, TableOfInputsAndVerdicts) {
    const uint32_t other_ip = 0x0A000001;
    struct Case {
        const char* name;
        Bytes datagram;
        Result<SocketAddress, ParseError> expected;
    };
    TransactionId other_tx = test_tx();
    other_tx[11] ^= 0xFF;
    Bytes ipv6_xor = {0, 0x02, 0x12, 0x34};
    ipv6_xor.resize(20, 0xAB);
    std::vector<Case> cases = {
        {"ours, full", *make_binding_success(test_tx(), kObserved, 68), kObserved},
        {"XOR-MAPPED-ADDRESS wins over MAPPED-ADDRESS",
         MessageBuilder(0x0101)
             .address(0x0001, other_ip, 1, false)
             .address(0x0020, kTestIp, kTestPort, true)
             .build(),
         kObserved},
        {"MAPPED-ADDRESS alone",
         MessageBuilder(0x0101).address(0x0001, kTestIp, kTestPort, false).fingerprint().build(),
         kObserved},
        {"first XOR-MAPPED-ADDRESS wins",
         MessageBuilder(0x0101)
             .address(0x0020, kTestIp, kTestPort, true)
             .address(0x0020, other_ip, 1, true)
             .build(),
         kObserved},
        {"IPv6 XOR-MAPPED-ADDRESS skipped, IPv4 MAPPED-ADDRESS used",
         MessageBuilder(0x0101)
             .attr(0x0020, ipv6_xor)
             .address(0x0001, kTestIp, kTestPort, false)
             .build(),
         kObserved},
        {"IPv6 only", MessageBuilder(0x0101).attr(0x0020, ipv6_xor).build(),
         Unexpected{ParseError::no_mapped_address}},
        {"no attributes", MessageBuilder(0x0101).build(),
         Unexpected{ParseError::no_mapped_address}},
        {"SOFTWARE only", MessageBuilder(0x0101).attr(0x8022, {'s'}).fingerprint().build(),
         Unexpected{ParseError::no_mapped_address}},
        {"XOR-MAPPED-ADDRESS after MESSAGE-INTEGRITY is ignored",
         MessageBuilder(0x0101)
             .attr(0x0008, bytes_of(20))
             .address(0x0020, kTestIp, kTestPort, true)
             .build(),
         Unexpected{ParseError::no_mapped_address}},
        {"XOR-MAPPED-ADDRESS of 4 bytes", MessageBuilder(0x0101).attr(0x0020, {0, 1, 0, 0}).build(),
         Unexpected{ParseError::bad_attribute}},
        {"XOR-MAPPED-ADDRESS of 2 bytes", MessageBuilder(0x0101).attr(0x0020, {0, 1}).build(),
         Unexpected{ParseError::bad_attribute}},
        {"XOR-MAPPED-ADDRESS family 3",
         MessageBuilder(0x0101).attr(0x0020, {0, 3, 0, 0, 0, 0, 0, 0}).build(),
         Unexpected{ParseError::bad_attribute}},
        {"IPv4 family with 20 bytes",
         [] {
             Bytes v = {0, 1};
             v.resize(20, 0);
             return MessageBuilder(0x0101).attr(0x0020, v).build();
         }(),
         Unexpected{ParseError::bad_attribute}},
        {"address runs past the end",
         MessageBuilder(0x0101).attr_with_length(0x0020, 8, {0, 1, 0, 0}).build(),
         Unexpected{ParseError::bad_attribute}},
        {"wrong transaction",
         MessageBuilder(0x0101, other_tx).address(0x0020, kTestIp, kTestPort, true).build(),
         Unexpected{ParseError::wrong_transaction}},
        {"a request", MessageBuilder(0x0001).address(0x0020, kTestIp, kTestPort, true).build(),
         Unexpected{ParseError::not_binding_success}},
        {"an error response", MessageBuilder(0x0111).attr(0x0009, {0, 0, 4, 20, 'x'}).build(),
         Unexpected{ParseError::not_binding_success}},
        {"Allocate success (TURN)",
         MessageBuilder(0x0103).address(0x0020, kTestIp, kTestPort, true).build(),
         Unexpected{ParseError::not_binding_success}},
        {"unknown required attribute",
         MessageBuilder(0x0101)
             .address(0x0020, kTestIp, kTestPort, true)
             .attr(0x0002, bytes_of(8))
             .build(),
         Unexpected{ParseError::unknown_required_attribute}},
        {"wrong fingerprint",
         [] {
             Bytes m = *make_binding_success(test_tx(), kObserved, 40);
             m[m.size() - 2] ^= 0x10;
             return m;
         }(),
         Unexpected{ParseError::bad_fingerprint}},
        {"bad cookie",
         MessageBuilder(0x0101).cookie(1).address(0x0020, kTestIp, kTestPort, true).build(),
         Unexpected{ParseError::not_stun}},
        {"length mismatch",
         MessageBuilder(0x0101).length(16).address(0x0020, kTestIp, kTestPort, true).build(),
         Unexpected{ParseError::bad_length}},
        {"short", bytes_of(12), Unexpected{ParseError::too_short}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = parse_binding_success(c.datagram, test_tx());
        EXPECT_EQ(describe(r), describe(c.expected));
    }
}

TEST(StunResponse, EveryTruncationIsRejected) {
    for (size_t max_len : {32, 68}) {
        Bytes valid = *make_binding_success(test_tx(), kObserved, max_len);
        for (size_t n = 0; n < valid.size(); ++n) {
            SCOPED_TRACE("cut at " + std::to_string(n));
            Bytes cut(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(n));
            auto r = parse_binding_success(cut, test_tx());
            ASSERT_FALSE(r.ok());
            EXPECT_EQ(r.error(), n < kHeaderLen ? ParseError::too_short : ParseError::bad_length);
        }
        auto boundaries = attribute_boundaries(valid);
        for (size_t n = kHeaderLen; n < valid.size(); n += 4) {
            SCOPED_TRACE("cut and fixed up at " + std::to_string(n));
            Bytes cut(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(n));
            cut[3] = static_cast<uint8_t>(n - kHeaderLen);
            auto r = parse_binding_success(cut, test_tx());
            ASSERT_FALSE(r.ok() &&
                         std::find(boundaries.begin(), boundaries.end(), n) == boundaries.end());
            if (n == kHeaderLen) {
                EXPECT_EQ(describe(r), "no_mapped_address");
            }
        }
    }
}

TEST(StunResponse, EverySingleBitFlipParsesOrIsRejected) {
    for (const Bytes& valid :
         {*make_binding_success(test_tx(), kObserved, 68), from_hex(kRfc5769Ipv4Response)}) {
        const TransactionId& tx = valid.size() == 68 ? test_tx() : kRfc5769Tx;
        for (size_t bit = 0; bit < valid.size() * 8; ++bit) {
            SCOPED_TRACE("bit " + std::to_string(bit));
            Bytes m = valid;
            m[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
            auto r = parse_binding_success(m, tx);
            // Both carry a FINGERPRINT over all that precedes it: any flip before it is
            // caught unless it changes the structure (a length swallowing the FINGERPRINT).
            if (bit / 8 < kHeaderLen) {
                EXPECT_FALSE(r.ok()) << describe(r);
            }
            if (r.ok()) {
                EXPECT_EQ(*r, kObserved);
            }
        }
    }
}

// ---------------------------------------------------------------- RFC 5769 vectors

TEST(StunRfc5769, SampleRequestIsAccepted) {
    auto r = parse_binding_request(from_hex(kRfc5769Request));
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r->transaction, kRfc5769Tx);
    EXPECT_EQ(r->length, 108u);
}

TEST(StunRfc5769, SampleIpv4ResponseDecodes) {
    // SOFTWARE, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY (skipped: we do no STUN
    // authentication), FINGERPRINT (checked).
    auto r = parse_binding_success(from_hex(kRfc5769Ipv4Response), kRfc5769Tx);
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(format_socket_address(*r), "192.0.2.1:32853");
    EXPECT_EQ(describe(parse_binding_success(from_hex(kRfc5769Ipv4Response), test_tx())),
              "wrong_transaction");
}

// ---------------------------------------------------------------- misc

TEST(StunLooksLikeStun, Table) {
    Bytes stun = make_binding_request(test_tx(), 40);
    Bytes wrong_length = stun;
    wrong_length[3] += 4;
    Bytes envelope = {'R', 'L', 'Y', 'C'};
    envelope.resize(64, 0);
    Bytes wireguard = {1, 0, 0, 0};
    wireguard.resize(148, 0);
    EXPECT_TRUE(looks_like_stun(stun));
    EXPECT_TRUE(looks_like_stun(MessageBuilder(0x0101).build()));
    EXPECT_FALSE(looks_like_stun(Bytes(stun.begin(), stun.begin() + 19)));
    EXPECT_FALSE(looks_like_stun(wrong_length));
    EXPECT_FALSE(looks_like_stun(MessageBuilder(0x0001).cookie(0).build()));
    EXPECT_FALSE(looks_like_stun(envelope));
    EXPECT_FALSE(looks_like_stun(wireguard));
}

TEST(StunParseError, NamesAreDistinctLabels) {
    std::vector<std::string> names;
    for (int i = 0; i <= static_cast<int>(ParseError::no_mapped_address); ++i) {
        std::string name = to_string(static_cast<ParseError>(i));
        EXPECT_NE(name, "unknown");
        EXPECT_EQ(std::find(names.begin(), names.end(), name), names.end()) << name;
        names.push_back(name);
    }
}

// ---------------------------------------------------------------- coturn interop

namespace {

// Answers Binding requests on 127.0.0.1 with the codec and the control process's size
// policy (response_size_limit), from its own thread, until destroyed.
class Responder {
  public:
    Responder() {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            ::close(fd_);
            throw std::runtime_error("bind: " + std::string(std::strerror(errno)));
        }
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~Responder() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }

    uint16_t port() const { return port_; }

    struct Exchange {
        SocketAddress from;
        size_t request_len = 0;
        std::string verdict;  // "answered" or the parse error
        size_t response_len = 0;
    };
    std::vector<Exchange> exchanges() {
        std::lock_guard lock(mutex_);
        return exchanges_;
    }

  private:
    void run() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            uint8_t buf[2048];
            sockaddr_in from{};
            socklen_t from_len = sizeof from;
            ssize_t n =
                ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
            if (n < 0) continue;
            Exchange x;
            x.from = {ntohl(from.sin_addr.s_addr), ntohs(from.sin_port)};
            x.request_len = static_cast<size_t>(n);
            auto request = parse_binding_request(std::span<const uint8_t>(buf, x.request_len));
            std::optional<std::vector<uint8_t>> response;
            if (!request) {
                x.verdict = to_string(request.error());
            } else if ((response = make_binding_success(request->transaction, x.from,
                                                        response_size_limit(*request)))) {
                x.verdict = "answered";
                x.response_len = response->size();
            } else {
                x.verdict = "too small to answer";
            }
            {
                // Recorded before the answer leaves: the client exits as soon as it has it.
                std::lock_guard lock(mutex_);
                exchanges_.push_back(x);
            }
            if (response) {
                ::sendto(fd_, response->data(), response->size(), 0,
                         reinterpret_cast<sockaddr*>(&from), from_len);
            }
        }
    }

    int fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::mutex mutex_;
    std::vector<Exchange> exchanges_;
};

std::optional<std::string> find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
        size_t end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        std::string candidate = dirs.substr(start, end - start) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        start = end + 1;
    }
    return std::nullopt;
}

struct ProgramRun {
    bool finished = false;  // false: killed at the deadline
    int status = 0;
    std::string output;  // stdout and stderr
};

// Runs argv[0] with stdout+stderr captured; kills it (by its pid) if it is still running
// after `deadline`: turnutils_stunclient waits for its answer forever.
ProgramRun run_program(const std::vector<std::string>& args, std::chrono::milliseconds deadline) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    if (rc != 0) {
        ::close(pipe_fds[0]);
        throw std::runtime_error("posix_spawn " + args[0] + ": " + std::strerror(rc));
    }

    ProgramRun run;
    auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{pipe_fds[0], POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char buf[4096];
        ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
        if (n <= 0) {
            run.finished = true;  // EOF: the program exited (or closed its output)
            break;
        }
        run.output.append(buf, static_cast<size_t>(n));
    }
    ::close(pipe_fds[0]);
    if (!run.finished) ::kill(pid, SIGKILL);
    ::waitpid(pid, &run.status, 0);
    return run;
}

}  // namespace

// BRIEF §7: coturn's turnutils_stunclient must read the right address from our server.
// Its Binding request (coturn 4.6.1, default options) is a bare 20-byte header, so it is
// answered by the 32-byte minimal response that response_size_limit allows.
TEST(StunTurnutils, StunclientPrintsTheMappedAddress) {
    auto program = find_program("turnutils_stunclient");
    ASSERT_TRUE(program) << "turnutils_stunclient is not installed (Debian package coturn); "
                            "this interoperability test needs it, and CI installs it";
    Responder responder;
    ProgramRun run = run_program({*program, "-p", std::to_string(responder.port()), "127.0.0.1"},
                                 std::chrono::seconds(10));
    SCOPED_TRACE("turnutils_stunclient output:\n" + run.output);
    ASSERT_TRUE(run.finished) << "turnutils_stunclient got no usable answer within 10 s";
    EXPECT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0);

    auto exchanges = responder.exchanges();
    ASSERT_EQ(exchanges.size(), 1u);
    const auto& x = exchanges[0];
    EXPECT_EQ(x.verdict, "answered");
    EXPECT_EQ(x.request_len, 20u);  // if coturn changes this, docs/PROTOCOL.md needs a look
    EXPECT_EQ(x.response_len, 32u);
    EXPECT_EQ(x.from.ip, 0x7F000001u);

    // "0: : IPv4. UDP reflexive addr: 127.0.0.1:40123"
    std::smatch match;
    std::regex pattern("UDP reflexive addr: *([0-9.]+:[0-9]+)");
    ASSERT_TRUE(std::regex_search(run.output, match, pattern));
    auto printed = parse_socket_address(match[1].str());
    ASSERT_TRUE(printed) << match[1].str();
    EXPECT_EQ(*printed, x.from) << "printed " << match[1].str() << ", request came from "
                                << format_socket_address(x.from);
}

}  // namespace relay::wire::stun

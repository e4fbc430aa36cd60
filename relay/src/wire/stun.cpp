// STUN Binding codec (RFC 8489), IPv4 only.  Layout and policy: docs/PROTOCOL.md, section
// "STUN Binding on the control ports".  Every length read from the wire is compared with what
// is left of the span before it is used, so no input can make the parser read past it.
#include "relay/wire/stun.hpp"

#include <algorithm>
#include <cstring>

#include "relay/wire/headers.hpp"

namespace relay::wire::stun {
namespace {

// ---------------------------------------------------------------- attribute types

// RFC 8489 §18.3.
constexpr uint16_t kAttrMappedAddress = 0x0001;
constexpr uint16_t kAttrUsername = 0x0006;
constexpr uint16_t kAttrMessageIntegrity = 0x0008;
constexpr uint16_t kAttrErrorCode = 0x0009;
constexpr uint16_t kAttrUnknownAttributes = 0x000A;
constexpr uint16_t kAttrRealm = 0x0014;
constexpr uint16_t kAttrNonce = 0x0015;
constexpr uint16_t kAttrMessageIntegritySha256 = 0x001C;
constexpr uint16_t kAttrPasswordAlgorithm = 0x001D;
constexpr uint16_t kAttrUserhash = 0x001E;
constexpr uint16_t kAttrXorMappedAddress = 0x0020;
constexpr uint16_t kAttrSoftware = 0x8022;
constexpr uint16_t kAttrFingerprint = 0x8028;
// RFC 5780 (NAT behaviour discovery).
constexpr uint16_t kAttrChangeRequest = 0x0003;
constexpr uint16_t kAttrPadding = 0x0026;
constexpr uint16_t kAttrResponsePort = 0x0027;
// RFC 8445 (ICE connectivity checks are Binding requests).
constexpr uint16_t kAttrPriority = 0x0024;
constexpr uint16_t kAttrUseCandidate = 0x0025;

constexpr uint32_t kFingerprintXor = 0x5354554E;  // "STUN"
constexpr uint8_t kFamilyIpv4 = 0x01;
constexpr uint8_t kFamilyIpv6 = 0x02;
constexpr size_t kAttrHeaderLen = 4;
constexpr size_t kAddressAttrLen = kAttrHeaderLen + 8;  // IPv4 (X)MAPPED-ADDRESS
constexpr size_t kFingerprintAttrLen = kAttrHeaderLen + 4;

// Comprehension-required types (< 0x8000) we understand, so that a request carrying one is
// not refused.  None of them changes our answer: we do no STUN authentication (USERNAME,
// MESSAGE-INTEGRITY* are neither checked nor answered), we always answer the source address
// (RESPONSE-PORT would aim the reply elsewhere: a reflection tool), we serve no RFC 5780
// alternate address (CHANGE-REQUEST; our responses carry no OTHER-ADDRESS, which tells an
// RFC 5780 client so), and PADDING only makes a request big enough to be answered.  The
// response-only types are listed because the client side meets them, and because a request
// carrying one is odd but harmless.
bool is_known_required(uint16_t type) {
    switch (type) {
        case kAttrMappedAddress:
        case kAttrChangeRequest:
        case kAttrUsername:
        case kAttrMessageIntegrity:
        case kAttrErrorCode:
        case kAttrUnknownAttributes:
        case kAttrRealm:
        case kAttrNonce:
        case kAttrMessageIntegritySha256:
        case kAttrPasswordAlgorithm:
        case kAttrUserhash:
        case kAttrXorMappedAddress:
        case kAttrPriority:
        case kAttrUseCandidate:
        case kAttrPadding:
        case kAttrResponsePort:
            return true;
        default:
            return false;
    }
}

// ---------------------------------------------------------------- CRC-32 (FINGERPRINT)

// The CRC-32 of ISO 3309 / zlib (reflected polynomial 0xEDB88320), as RFC 8489 §14.7 asks.
// A 1 KiB table built at compile time; no dependency for ten lines.
constexpr std::array<uint32_t, 256> make_crc_table() {
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        table[i] = c;
    }
    return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

uint32_t crc32(std::span<const uint8_t> bytes) {
    uint32_t c = 0xFFFFFFFFu;
    for (uint8_t b : bytes) c = kCrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t fingerprint_of(std::span<const uint8_t> covered) {
    return crc32(covered) ^ kFingerprintXor;
}

constexpr size_t padded(size_t len) {
    return (len + 3) & ~size_t{3};
}

// ---------------------------------------------------------------- parsing

// Header checks shared by both directions.  On success the datagram is exactly one
// message: 20-byte header + `length` bytes of attributes, length a multiple of 4.
std::optional<ParseError> check_header(std::span<const uint8_t> datagram) {
    if (datagram.size() < kHeaderLen) return ParseError::too_short;
    const uint8_t* p = datagram.data();
    if ((p[0] & 0xC0) != 0 || load_be32(p + 4) != kMagicCookie) return ParseError::not_stun;
    size_t length = load_be16(p + 2);
    if (datagram.size() > kMaxMessageLen || length % 4 != 0 ||
        length != datagram.size() - kHeaderLen) {
        return ParseError::bad_length;
    }
    return std::nullopt;
}

// Walks the attributes of a message that passed check_header and calls
// `visit(type, value)` for each one that counts; `visit` returns an error to stop.
// Enforced here, for both directions:
//  - every attribute (4-byte header, value, padding to 4) lies inside the message;
//  - FINGERPRINT, if present, is 4 bytes, the last attribute, and matches;
//  - an unknown comprehension-required type rejects the message;
//  - after MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count: the rest
//    is skipped unseen, unknown types included (RFC 8489 §14.5).
template <typename Visit>
std::optional<ParseError> walk_attributes(std::span<const uint8_t> message, Visit&& visit) {
    const uint8_t* p = message.data();
    const size_t end = message.size();
    size_t offset = kHeaderLen;
    bool after_integrity = false;
    while (offset < end) {
        if (end - offset < kAttrHeaderLen) return ParseError::bad_attribute;
        uint16_t type = load_be16(p + offset);
        size_t len = load_be16(p + offset + 2);
        size_t value_offset = offset + kAttrHeaderLen;
        if (padded(len) > end - value_offset) return ParseError::bad_attribute;
        size_t next = value_offset + padded(len);

        if (type == kAttrFingerprint) {
            if (len != 4 || next != end) return ParseError::bad_fingerprint;
            if (load_be32(p + value_offset) != fingerprint_of(message.first(offset))) {
                return ParseError::bad_fingerprint;
            }
        } else if (!after_integrity || type == kAttrMessageIntegritySha256) {
            if (type < 0x8000 && !is_known_required(type)) {
                return ParseError::unknown_required_attribute;
            }
            if (auto e = visit(type, message.subspan(value_offset, len))) return e;
            if (type == kAttrMessageIntegrity) after_integrity = true;
        }
        offset = next;
    }
    return std::nullopt;
}

// The IPv4 address of a MAPPED-ADDRESS or XOR-MAPPED-ADDRESS value: nullopt for IPv6 (we
// cannot use it, but it is well formed), an error if malformed.
Result<std::optional<SocketAddress>, ParseError> read_address(std::span<const uint8_t> value,
                                                              bool xored) {
    // Byte 0 is reserved (RFC 8489 §14.1: ignored on receipt).
    if (value.size() < 4) return Unexpected{ParseError::bad_attribute};
    uint8_t family = value[1];
    if (family == kFamilyIpv6) {
        if (value.size() != 20) return Unexpected{ParseError::bad_attribute};
        return std::optional<SocketAddress>{};
    }
    if (family != kFamilyIpv4 || value.size() != 8) return Unexpected{ParseError::bad_attribute};
    SocketAddress a;
    a.port = load_be16(value.data() + 2);
    a.ip = load_be32(value.data() + 4);
    if (xored) {
        a.port ^= static_cast<uint16_t>(kMagicCookie >> 16);
        a.ip ^= kMagicCookie;
    }
    return std::optional<SocketAddress>{a};
}

// ---------------------------------------------------------------- building

void put_attr_header(std::vector<uint8_t>& m, uint16_t type, uint16_t len) {
    size_t at = m.size();
    m.resize(at + kAttrHeaderLen);
    store_be16(m.data() + at, type);
    store_be16(m.data() + at + 2, len);
}

void put_address(std::vector<uint8_t>& m, uint16_t type, SocketAddress a, bool xored) {
    put_attr_header(m, type, 8);
    uint16_t port = xored ? static_cast<uint16_t>(a.port ^ (kMagicCookie >> 16)) : a.port;
    uint32_t ip = xored ? a.ip ^ kMagicCookie : a.ip;
    size_t at = m.size();
    m.resize(at + 8);
    m[at] = 0;  // reserved
    m[at + 1] = kFamilyIpv4;
    store_be16(m.data() + at + 2, port);
    store_be32(m.data() + at + 4, ip);
}

std::vector<uint8_t> start_message(uint16_t type, const TransactionId& transaction,
                                   size_t total_len) {
    std::vector<uint8_t> m(kHeaderLen);
    m.reserve(total_len);
    store_be16(m.data(), type);
    // The length counts every attribute, FINGERPRINT included, before the FINGERPRINT is
    // computed: the CRC covers this header as sent.
    store_be16(m.data() + 2, static_cast<uint16_t>(total_len - kHeaderLen));
    store_be32(m.data() + 4, kMagicCookie);
    std::memcpy(m.data() + 8, transaction.data(), transaction.size());
    return m;
}

void put_fingerprint(std::vector<uint8_t>& m) {
    uint32_t fp = fingerprint_of(m);
    put_attr_header(m, kAttrFingerprint, 4);
    size_t at = m.size();
    m.resize(at + 4);
    store_be32(m.data() + at, fp);
}

}  // namespace

const char* to_string(ParseError e) {
    switch (e) {
        case ParseError::too_short:
            return "too_short";
        case ParseError::not_stun:
            return "not_stun";
        case ParseError::bad_length:
            return "bad_length";
        case ParseError::not_binding_request:
            return "not_binding_request";
        case ParseError::bad_attribute:
            return "bad_attribute";
        case ParseError::bad_fingerprint:
            return "bad_fingerprint";
        case ParseError::unknown_required_attribute:
            return "unknown_required_attribute";
        case ParseError::not_binding_success:
            return "not_binding_success";
        case ParseError::wrong_transaction:
            return "wrong_transaction";
        case ParseError::no_mapped_address:
            return "no_mapped_address";
    }
    return "unknown";
}

bool looks_like_stun(std::span<const uint8_t> datagram) {
    if (datagram.size() < kHeaderLen) return false;
    const uint8_t* p = datagram.data();
    size_t length = load_be16(p + 2);
    return (p[0] & 0xC0) == 0 && load_be32(p + 4) == kMagicCookie && length % 4 == 0 &&
           length == datagram.size() - kHeaderLen;
}

Result<BindingRequest, ParseError> parse_binding_request(std::span<const uint8_t> datagram) {
    if (auto e = check_header(datagram)) return Unexpected{*e};
    // The whole type field: Binding method with class request.  Indications (0x0011) get no
    // answer by definition, responses are not for a server.
    if (load_be16(datagram.data()) != kBindingRequest) {
        return Unexpected{ParseError::not_binding_request};
    }
    // No attribute changes the answer (see is_known_required); the walk only validates.
    auto ignore = [](uint16_t, std::span<const uint8_t>) -> std::optional<ParseError> {
        return std::nullopt;
    };
    if (auto e = walk_attributes(datagram, ignore)) return Unexpected{*e};

    BindingRequest request;
    std::memcpy(request.transaction.data(), datagram.data() + 8, request.transaction.size());
    request.length = datagram.size();
    return request;
}

size_t response_size_limit(const BindingRequest& request) {
    return std::max(request.length, kMinResponseLen);
}

std::optional<std::vector<uint8_t>> make_binding_success(const TransactionId& transaction,
                                                         SocketAddress observed, size_t max_len) {
    if (max_len < kMinResponseLen) return std::nullopt;
    // What fits is decided by priority: FINGERPRINT first (a client that shares its socket
    // with other protocols, like the peer agent with WireGuard, tells STUN apart by it), then
    // MAPPED-ADDRESS (for clients that only read that one), then SOFTWARE (informational).
    static constexpr size_t kSoftwareLen = sizeof(kSoftware) - 1;
    static constexpr size_t kSoftwareAttrLen = kAttrHeaderLen + padded(kSoftwareLen);
    size_t total = kMinResponseLen;
    bool fingerprint = total + kFingerprintAttrLen <= max_len;
    if (fingerprint) total += kFingerprintAttrLen;
    bool mapped = total + kAddressAttrLen <= max_len;
    if (mapped) total += kAddressAttrLen;
    bool software = total + kSoftwareAttrLen <= max_len;
    if (software) total += kSoftwareAttrLen;

    std::vector<uint8_t> m = start_message(kBindingSuccess, transaction, total);
    put_address(m, kAttrXorMappedAddress, observed, true);
    if (mapped) put_address(m, kAttrMappedAddress, observed, false);
    if (software) {
        put_attr_header(m, kAttrSoftware, static_cast<uint16_t>(kSoftwareLen));
        m.insert(m.end(), kSoftware, kSoftware + kSoftwareLen);
        m.resize(m.size() + padded(kSoftwareLen) - kSoftwareLen, 0);
    }
    if (fingerprint) put_fingerprint(m);
    return m;
}

std::vector<uint8_t> make_binding_request(const TransactionId& transaction, size_t min_len) {
    constexpr size_t kBareLen = kHeaderLen + kFingerprintAttrLen;  // 28
    size_t total = std::clamp(padded(std::min(min_len, kMaxMessageLen)), kBareLen, kMaxMessageLen);
    std::vector<uint8_t> m = start_message(kBindingRequest, transaction, total);
    if (total > kBareLen) {
        // total and kBareLen are multiples of 4, so the PADDING attribute (4-byte header,
        // zero-filled value) takes the difference exactly.
        size_t value_len = total - kBareLen - kAttrHeaderLen;
        put_attr_header(m, kAttrPadding, static_cast<uint16_t>(value_len));
        m.resize(m.size() + value_len, 0);
    }
    put_fingerprint(m);
    return m;
}

Result<SocketAddress, ParseError> parse_binding_success(std::span<const uint8_t> datagram,
                                                        const TransactionId& transaction) {
    if (auto e = check_header(datagram)) return Unexpected{*e};
    if (load_be16(datagram.data()) != kBindingSuccess) {
        return Unexpected{ParseError::not_binding_success};
    }
    if (!std::equal(transaction.begin(), transaction.end(), datagram.begin() + 8)) {
        return Unexpected{ParseError::wrong_transaction};
    }
    // The first IPv4 XOR-MAPPED-ADDRESS wins wherever it is.  MAPPED-ADDRESS is only the
    // fallback: NAT ALGs rewrite addresses they find in payloads, which is why RFC 8489
    // §14.2 has servers send the XORed form.
    std::optional<SocketAddress> xor_mapped;
    std::optional<SocketAddress> mapped;
    auto collect = [&](uint16_t type, std::span<const uint8_t> value) -> std::optional<ParseError> {
        if (type != kAttrXorMappedAddress && type != kAttrMappedAddress) return std::nullopt;
        bool xored = type == kAttrXorMappedAddress;
        auto address = read_address(value, xored);
        if (!address) return address.error();
        std::optional<SocketAddress>& slot = xored ? xor_mapped : mapped;
        if (!slot) slot = *address;
        return std::nullopt;
    };
    if (auto e = walk_attributes(datagram, collect)) return Unexpected{*e};
    if (xor_mapped) return *xor_mapped;
    if (mapped) return *mapped;
    return Unexpected{ParseError::no_mapped_address};
}

}  // namespace relay::wire::stun

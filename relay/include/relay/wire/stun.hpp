// STUN Binding (RFC 8489) as the control process serves it and the peer agent
// uses it: parse a Binding request, build the success response carrying
// XOR-MAPPED-ADDRESS, and parse such a response (client side).  IPv4 only.
// Parsing never trusts a length; a rejected message yields a reason.
// Byte layout and policy: docs/PROTOCOL.md, "STUN Binding on the control ports".
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "relay/net.hpp"
#include "relay/result.hpp"

namespace relay::wire::stun {

constexpr uint32_t kMagicCookie = 0x2112A442;
constexpr size_t kHeaderLen = 20;
constexpr uint16_t kBindingRequest = 0x0001;
constexpr uint16_t kBindingSuccess = 0x0101;
constexpr size_t kMaxMessageLen = 1500;  // larger datagrams are not STUN we answer

// Header + XOR-MAPPED-ADDRESS: the smallest useful Binding success response.
constexpr size_t kMinResponseLen = 32;
// The SOFTWARE value of our responses.
constexpr char kSoftware[] = "p2p-relay";

using TransactionId = std::array<uint8_t, 12>;

// Cheap test on the first bytes: top two bits 0, length a multiple of 4 matching the
// datagram, magic cookie present.  Used to tell STUN from the product's messages.
bool looks_like_stun(std::span<const uint8_t> datagram);

enum class ParseError {
    too_short,   // fewer than 20 bytes
    not_stun,    // top bits or magic cookie wrong
    bad_length,  // header length disagrees with the datagram, or not a multiple of 4,
                 // or the datagram is larger than kMaxMessageLen
    not_binding_request,
    bad_attribute,    // an attribute runs past the end of the message, or an address
                      // attribute is malformed (client side)
    bad_fingerprint,  // FINGERPRINT present but wrong, not 4 bytes, or not the last attribute
    // A comprehension-required attribute we do not know (RFC 8489 §7.3.1).
    unknown_required_attribute,
    // Client side only (parse_binding_success):
    not_binding_success,  // any other class or method (error responses included)
    wrong_transaction,    // not the transaction we asked about
    no_mapped_address,    // neither an IPv4 XOR-MAPPED-ADDRESS nor an IPv4 MAPPED-ADDRESS
};
// The enumerator's name ("bad_fingerprint"): usable as a metric label.
const char* to_string(ParseError e);

struct BindingRequest {
    TransactionId transaction{};
    size_t length = 0;  // datagram size, for the no-amplification rule
};

Result<BindingRequest, ParseError> parse_binding_request(std::span<const uint8_t> datagram);

// The size budget of the response to `request` (BRIEF §5, no amplification):
// request.length, except that a request shorter than kMinResponseLen (20..28 bytes) may get
// the 32-byte minimal response.  That exception exists because common clients (coturn's
// turnutils_stunclient, and any RFC 8489 client that sends no attributes) send a bare
// 20-byte header, and no Binding success response that carries an address is smaller than
// 32 bytes.  It grows such a reply by at most 12 bytes, never in proportion to anything.
// docs/PROTOCOL.md explains the figures.
size_t response_size_limit(const BindingRequest& request);

// The success response to `request`, seen from `observed`, no larger than `max_len`:
// XOR-MAPPED-ADDRESS always (32 bytes in all); then, as the budget allows and in this order
// of priority, FINGERPRINT (+8), MAPPED-ADDRESS (+12) and SOFTWARE (+16).  On the wire they
// appear as XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, SOFTWARE, FINGERPRINT, so the sizes are
// 32, 40, 52 or 68 bytes.  Returns std::nullopt if even the minimal response does not fit
// in max_len (the caller then counts a drop instead of amplifying).
std::optional<std::vector<uint8_t>> make_binding_success(const TransactionId& transaction,
                                                         SocketAddress observed, size_t max_len);

// Client side: a Binding request (with a FINGERPRINT and PADDING to `min_len` bytes so
// that a server that refuses to amplify can answer it in full).  The size is min_len rounded
// up to a multiple of 4, at least 28 (header + FINGERPRINT) and at most kMaxMessageLen.
std::vector<uint8_t> make_binding_request(const TransactionId& transaction, size_t min_len = 64);

// Client side: the XOR-MAPPED-ADDRESS (or else MAPPED-ADDRESS) of a Binding success
// response with the given transaction id.
Result<SocketAddress, ParseError> parse_binding_success(std::span<const uint8_t> datagram,
                                                        const TransactionId& transaction);

}  // namespace relay::wire::stun

// The product's own control messages between a peer (relay-peer, or any client
// built on peer/'s library) and relay-control, in plaintext form, and their
// codec.  On the wire every message travels sealed in an envelope
// (envelope.hpp); docs/PROTOCOL.md has every byte.
//
// Plaintext layout (all integers big endian):
//   0   1  type (MessageType)
//   1   8  timestamp, Unix milliseconds (sender's clock)
//   9   4  request id (a request's id is echoed by its reply; 0 in notifications)
//   13  .. body, by type
// Decoding never trusts a length and rejects trailing bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "relay/net.hpp"
#include "relay/result.hpp"
#include "relay/session.hpp"

namespace relay::control {

constexpr size_t kPlainHeaderLen = 13;
constexpr size_t kMaxTokenLen = 256;
constexpr size_t kMaxLocalAddresses = 8;
constexpr size_t kMaxCandidates = 9;  // one reflexive plus the local ones
constexpr size_t kMaxErrorText = 120;

// Body sizes by type (docs/PROTOCOL.md), for callers that budget datagrams: a reply must
// never be larger than what it answers when amplification matters.
constexpr size_t kAddressLen = 6;                                    // ipv4 u32 + port u16
constexpr size_t kCandidateLen = 7;                                  // address + kind u8
constexpr size_t kRegisterPeerMinBodyLen = 2 + 32 + 2 + 32 + 2 + 1;  // 71: empty token, no address
constexpr size_t kRegisterPeerMaxBodyLen =
    kRegisterPeerMinBodyLen + kMaxTokenLen + kMaxLocalAddresses * kAddressLen;  // 375
constexpr size_t kKeepaliveBodyLen = 4 + 1;
constexpr size_t kConnectBodyLen = 32 + 1;
constexpr size_t kResultReportBodyLen = 8 + 32 + 1 + 4;
constexpr size_t kReleaseBodyLen = 8;
constexpr size_t kRegisteredBodyLen = kAddressLen + 2 + 2;
constexpr size_t kStatusBodyLen = kAddressLen + 1 + kAddressLen + 2;
constexpr size_t kConnectAckBodyLen = 8 + 1;
constexpr size_t kErrorMinBodyLen = 2 + 1;
constexpr size_t kErrorMaxBodyLen = kErrorMinBodyLen + kMaxErrorText;
constexpr size_t kPunchMinBodyLen = 8 + 32 + 4 + 4 + 1;  // 49: no candidate
constexpr size_t kPunchMaxBodyLen = kPunchMinBodyLen + kMaxCandidates * kCandidateLen;  // 112
constexpr size_t kRelayOfferBodyLen = 8 + 8 + 32 + kAddressLen + 1 + 1 + 32 + 4;        // 92
// The largest plaintext of any type (a RegisterPeer with everything at its maximum).
constexpr size_t kMaxPlainLen = kPlainHeaderLen + kRegisterPeerMaxBodyLen;  // 388

enum class MessageType : uint8_t {
    // peer -> control (requests)
    register_peer = 0x01,
    keepalive = 0x02,
    connect = 0x03,
    result = 0x04,
    release = 0x05,
    deregister = 0x06,
    // control -> peer (replies to requests)
    registered = 0x81,
    status = 0x82,
    connect_ack = 0x83,
    ok = 0x84,
    error = 0xFF,
    // control -> peer (notifications, request id 0)
    punch = 0x90,
    relay_offer = 0x91,
};
const char* to_string(MessageType t);

enum class NatClass : uint8_t {
    unknown = 0,
    open = 1,             // no NAT: the reflexive address is a local one
    cone = 2,             // endpoint-independent mapping and filtering not port-dependent
                          // (BRIEF §6 "full cone" and "restricted" behave alike)
    port_restricted = 3,  // endpoint-independent mapping, port-dependent filtering
    symmetric = 4,        // endpoint-dependent mapping
};
const char* to_string(NatClass c);

enum class ErrorCode : uint16_t {
    malformed = 1,
    bad_token = 2,  // token does not verify under any active secret of its network
    token_expired = 3,
    unknown_network = 4,
    not_allowed = 5,     // static allow-list refuses this key
    not_registered = 6,  // register first (also after a control restart)
    unknown_peer = 7,    // no such peer in your network
    peer_limit = 8,      // network has its maximum of peers
    session_limit = 9,   // peer has its maximum of relay sessions
    rate_limited = 10,
    draining = 11,  // node accepts no new relay allocations
    no_relay_ports = 12,
    dataplane_unavailable = 13,
    unknown_attempt = 14,
    unknown_session = 15,
    internal = 16,
};
const char* to_string(ErrorCode c);

enum class CandidateKind : uint8_t { reflexive = 1, local = 2 };
const char* to_string(CandidateKind k);
struct Candidate {
    SocketAddress address{};
    CandidateKind kind = CandidateKind::reflexive;
    bool operator==(const Candidate&) const = default;
};

enum class Outcome : uint8_t {
    direct_ok = 1,      // a fresh handshake over the direct path
    direct_failed = 2,  // no handshake before the deadline: please relay
    relayed_ok = 3,     // handshake through the relay session
    relay_failed = 4,
};
const char* to_string(Outcome o);

// ---- requests (peer -> control)
struct RegisterPeer {
    std::string token;            // network credential (token.hpp), or empty with an allow-list
    PublicKey wg_public_key{};    // the WireGuard interface's key: how other peers name it
    uint16_t wg_listen_port = 0;  // WireGuard's UDP port
    PublicKey probe_key{};        // throw-away WG peer key for reflexive-port observation; 0 = none
    uint16_t agent_port = 0;      // the agent's own UDP socket's local port (port preservation)
    std::vector<SocketAddress> local_addresses;  // at most kMaxLocalAddresses
    bool operator==(const RegisterPeer&) const = default;
};
struct Keepalive {
    uint32_t rtt_us = 0;  // the agent's smoothed round trip to control; 0 = not known yet
    bool reply_from_other_port = false;  // filtering probe: answer from the other STUN port
    // The filtering probe's result, reported by later keepalives: the agent sent a probe
    // from a fresh socket and did (or did not) receive the answer from the other port.
    bool probe_done = false;
    bool probe_reply_seen = false;
    bool operator==(const Keepalive&) const = default;
};
struct Connect {
    PublicKey peer{};  // WireGuard key of the peer to reach (same network)
    bool force_relay = false;
    bool operator==(const Connect&) const = default;
};
struct ResultReport {
    uint64_t attempt_id = 0;
    PublicKey peer{};
    Outcome outcome = Outcome::direct_ok;
    uint32_t elapsed_ms = 0;
    bool operator==(const ResultReport&) const = default;
};
struct Release {
    uint64_t session_id = 0;
    bool operator==(const Release&) const = default;
};
struct Deregister {
    bool operator==(const Deregister&) const = default;
};

// ---- replies (control -> peer)
struct Registered {
    SocketAddress reflexive{};  // source of this request as control saw it
    uint16_t keepalive_interval_s = 0;
    uint16_t peer_timeout_s = 0;
    bool operator==(const Registered&) const = default;
};
struct Status {
    SocketAddress reflexive{};  // source of this keepalive as control saw it
    NatClass nat_class = NatClass::unknown;
    SocketAddress wg_reflexive{};  // WireGuard port's reflexive address; 0:0 = not observed
    uint16_t server_port = 0;      // the control port that answered (3478 or 3479)
    bool operator==(const Status&) const = default;
};
struct ConnectAck {
    uint64_t attempt_id = 0;
    bool relayed = false;  // true: a relay offer follows; false: punches follow
    bool operator==(const ConnectAck&) const = default;
};
struct Ok {
    bool operator==(const Ok&) const = default;
};
struct Error {
    ErrorCode code = ErrorCode::internal;
    std::string text;  // at most kMaxErrorText bytes
    bool operator==(const Error&) const = default;
};

// ---- notifications (control -> peer)
struct Punch {
    uint64_t attempt_id = 0;
    PublicKey peer{};
    uint32_t fire_delay_ms = 0;  // from receipt: fire then, so both first packets cross
    uint32_t deadline_ms = 0;    // report direct_failed if no handshake this long after firing
    std::vector<Candidate> candidates;  // at most kMaxCandidates, best first
    bool operator==(const Punch&) const = default;
};
struct RelayOffer {
    uint64_t attempt_id = 0;
    uint64_t session_id = 0;
    PublicKey peer{};
    SocketAddress relay{};  // point WireGuard's peer endpoint here
    LatchPolicy policy = LatchPolicy::wireguard;
    uint8_t side = 0;          // 0 = A, 1 = B (the bind policy's side byte)
    BindSecret bind_secret{};  // zero unless policy == bind
    uint32_t idle_timeout_s = 0;
    bool operator==(const RelayOffer&) const = default;
};

using Body = std::variant<RegisterPeer, Keepalive, Connect, ResultReport, Release, Deregister,
                          Registered, Status, ConnectAck, Ok, Error, Punch, RelayOffer>;

struct Message {
    uint64_t timestamp_ms = 0;
    uint32_t request_id = 0;
    Body body;
    bool operator==(const Message&) const = default;
};

MessageType type_of(const Body& b);

enum class DecodeError {
    truncated,  // ends inside the header or a field
    unknown_type,
    trailing_bytes,  // bytes left after the body
    bad_value,       // a field out of range (enum value, reserved flag bit, bool, zero key...)
    oversized,       // a length or count field over its maximum
};
const char* to_string(DecodeError e);

// Throws std::invalid_argument for a token longer than kMaxTokenLen or more than
// kMaxLocalAddresses / kMaxCandidates entries (a caller bug).  Cuts an Error's text to at
// most kMaxErrorText bytes, at a UTF-8 character boundary.  Other fields are written as
// given, so that decode(encode(m)) rejects what the other side would reject.
std::vector<uint8_t> encode(const Message& m);
// Never reads outside `plaintext`.  Checks in wire order and reports the first failure.
Result<Message, DecodeError> decode(std::span<const uint8_t> plaintext);
// The header's timestamp of a plaintext that may not decode as a whole (so that its
// freshness can still be judged); nullopt when the plaintext stops before it.
std::optional<uint64_t> peek_timestamp(std::span<const uint8_t> plaintext);

}  // namespace relay::control

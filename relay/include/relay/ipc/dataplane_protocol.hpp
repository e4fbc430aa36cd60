// Messages between relay-control (client) and relay-dataplane (server) on the
// data plane's Unix SOCK_SEQPACKET socket: one request datagram, one response
// datagram.  Versioned; every byte is documented in docs/PROTOCOL.md.
// Decoding never trusts a length: a malformed message yields an error value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "relay/result.hpp"
#include "relay/session.hpp"

namespace relay::ipc {

constexpr uint32_t kMagic = 0x52444950;  // "RDIP" in the first four bytes (big endian on the wire)
constexpr uint16_t kVersion = 2;  // 2: allowed_port per side
constexpr size_t kMaxMessageBytes = 65536;
constexpr uint32_t kMaxListPage = 128;  // sessions per list reply
// The data plane waits at most this long for a worker before it answers
// `busy` (the change still happens; the request may be retried: every request
// is idempotent by session id).  Clients wait longer than this for a reply.
constexpr int kWorkerWaitMs = 250;

enum class MsgType : uint16_t {
    health = 1,
    add_session = 2,
    update_session = 3,
    remove_session = 4,
    get_session = 5,
    list_sessions = 6,
};

enum class Status : uint16_t {
    ok = 0,
    malformed = 1,  // the request could not be decoded
    unsupported_version = 2,
    unknown_type = 3,
    invalid_argument = 4,  // decoded, but a field is out of range
    exists = 5,            // session id or (relay ip, port) already in use
    not_found = 6,
    table_full = 7,
    unknown_address = 8,  // relay_ip is not one of the data plane's addresses
    busy = 9,             // a worker did not answer in time
    internal = 10,
};
const char* to_string(Status s);
const char* to_string(MsgType t);

struct HealthRequest {
    bool operator==(const HealthRequest&) const = default;
};
struct AddSessionRequest {
    SessionSpec spec;
    bool operator==(const AddSessionRequest&) const = default;
};
struct UpdateSessionRequest {
    SessionUpdate update;
    bool operator==(const UpdateSessionRequest&) const = default;
};
struct RemoveSessionRequest {
    uint64_t id = 0;
    bool operator==(const RemoveSessionRequest&) const = default;
};
struct GetSessionRequest {
    uint64_t id = 0;
    bool operator==(const GetSessionRequest&) const = default;
};
// Sessions with id > after_id, ascending by id, at most max_count (1..kMaxListPage).
struct ListSessionsRequest {
    uint64_t after_id = 0;
    uint32_t max_count = kMaxListPage;
    bool operator==(const ListSessionsRequest&) const = default;
};

using RequestBody = std::variant<HealthRequest, AddSessionRequest, UpdateSessionRequest,
                                 RemoveSessionRequest, GetSessionRequest, ListSessionsRequest>;

struct Request {
    uint32_t request_id = 0;  // echoed in the response
    RequestBody body;
    bool operator==(const Request&) const = default;
};

struct HealthReply {
    uint64_t instance_id = 0;  // random per data-plane start: a change means it restarted
    uint64_t uptime_ms = 0;
    uint32_t workers = 0;
    uint32_t ports = 0;
    uint32_t sessions = 0;
    uint32_t max_sessions = 0;
    std::vector<Ipv4> relay_addresses;  // at most 64
    bool operator==(const HealthReply&) const = default;
};
struct EmptyReply {
    bool operator==(const EmptyReply&) const = default;
};
struct SessionReply {
    SessionStats session;
    bool operator==(const SessionReply&) const = default;
};
struct ListSessionsReply {
    std::vector<SessionStats> sessions;  // at most kMaxListPage
    bool more = false;                   // true when sessions with higher ids remain
    bool operator==(const ListSessionsReply&) const = default;
};

using ResponseBody = std::variant<EmptyReply, HealthReply, SessionReply, ListSessionsReply>;

struct Response {
    uint32_t request_id = 0;
    MsgType type = MsgType::health;  // type of the request answered
    Status status = Status::ok;
    std::string error;  // human-readable when status != ok (at most 1024 bytes)
    ResponseBody body;  // EmptyReply unless status == ok and the type has a body
    bool operator==(const Response&) const = default;
};

struct DecodeError {
    Status status = Status::malformed;
    uint32_t request_id = 0;  // when the header was readable, so the error reply can echo it
    MsgType type = MsgType::health;
    std::string message;  // names the field that was wrong
};

std::vector<uint8_t> encode(const Request& r);
std::vector<uint8_t> encode(const Response& r);
Result<Request, DecodeError> decode_request(std::span<const uint8_t> bytes);
Result<Response, DecodeError> decode_response(std::span<const uint8_t> bytes);

MsgType type_of(const RequestBody& b);

// ---- Wire layout (docs/PROTOCOL.md has the byte tables) ----

// Header: magic u32, version u16, type u16, flags u16, request_id u32, body_length u32,
// and in responses status u16.  All integers big endian.
constexpr size_t kRequestHeaderBytes = 18;
constexpr size_t kResponseHeaderBytes = 20;
// magic, version, type, flags and request_id keep their offsets in every version, so that a
// reply to an undecodable (or unsupported-version) request can still echo the id and type.
constexpr size_t kEchoableHeaderBytes = 14;
constexpr uint16_t kFlagResponse = 0x0001;  // the only flag bit; set in responses only

constexpr size_t kMaxErrorBytes = 1024;    // Response::error; encode() cuts longer text
constexpr size_t kMaxRelayAddresses = 64;  // HealthReply::relay_addresses
constexpr uint32_t kMaxIdleTimeoutS = 86400;
constexpr size_t kSessionSpecBytes = 153;   // one SessionSpec on the wire
constexpr size_t kSessionUpdateBytes = 50;  // one SessionUpdate on the wire
constexpr size_t kSessionStatsBytes = 325;  // one SessionStats on the wire

// Largest possible response: a full list page with a maximal error text.
constexpr size_t kMaxListReplyBytes =
    kResponseHeaderBytes + 2 + kMaxErrorBytes + 3 + kMaxListPage * kSessionStatsBytes;
static_assert(kMaxListReplyBytes <= kMaxMessageBytes, "a full list page must fit one datagram");

// The id and type of a message whose magic is right and whose first kEchoableHeaderBytes are
// present; std::nullopt otherwise.  The type is the raw value (it may be unknown).
struct HeaderEcho {
    uint32_t request_id = 0;
    MsgType type = MsgType{0};
};
std::optional<HeaderEcho> peek_header(std::span<const uint8_t> bytes);

// The error reply to a request that could not be decoded: echoes its id and type (0 and type 0
// when its header was unreadable), carries the decoder's status and message.
Response error_response(const DecodeError& e);

}  // namespace relay::ipc

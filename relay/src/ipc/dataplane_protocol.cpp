// Binary codec of the data-plane IPC protocol.  Layout: docs/PROTOCOL.md, section
// "Data-plane control socket".  Every integer is big endian; every field is read through
// ByteReader, which checks the length before each read, so no input can make the decoder read
// past the span.  Encoders write through ByteWriter field by field (no struct copies).
#include "relay/ipc/dataplane_protocol.hpp"

#include <algorithm>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>

namespace relay::ipc {
namespace {

// ---------------------------------------------------------------- errors

// Thrown by the reader and the validators below, caught at the top of decode_*() and turned
// into a DecodeError.  Never leaves this file.
struct DecodeFailure {
    Status status;
    std::string message;
};

[[noreturn]] void fail(Status status, std::string message) {
    throw DecodeFailure{status, std::move(message)};
}

std::string field_name(std::string_view prefix, std::string_view field) {
    std::string name(prefix);
    if (!name.empty()) name += '.';
    name += field;
    return name;
}

// ---------------------------------------------------------------- writer

class ByteWriter {
  public:
    void u8(uint8_t v) { bytes_.push_back(v); }
    void u16(uint16_t v) {
        u8(static_cast<uint8_t>(v >> 8));
        u8(static_cast<uint8_t>(v));
    }
    void u32(uint32_t v) {
        u16(static_cast<uint16_t>(v >> 16));
        u16(static_cast<uint16_t>(v));
    }
    void u64(uint64_t v) {
        u32(static_cast<uint32_t>(v >> 32));
        u32(static_cast<uint32_t>(v));
    }
    void boolean(bool v) { u8(v ? 1 : 0); }
    void bytes(std::span<const uint8_t> b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }

    size_t size() const { return bytes_.size(); }
    void patch_u32(size_t offset, uint32_t v) {
        for (int i = 0; i < 4; ++i) bytes_.at(offset + i) = static_cast<uint8_t>(v >> (24 - 8 * i));
    }
    std::vector<uint8_t> take() && { return std::move(bytes_); }

  private:
    std::vector<uint8_t> bytes_;
};

// ---------------------------------------------------------------- reader

// Reads big-endian fields from a span; a read past the end fails with the field's name.
class ByteReader {
  public:
    explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

    uint8_t u8(std::string_view field) { return take(1, field)[0]; }
    uint16_t u16(std::string_view field) {
        auto p = take(2, field);
        return static_cast<uint16_t>(p[0] << 8 | p[1]);
    }
    uint32_t u32(std::string_view field) {
        auto p = take(4, field);
        return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
    }
    uint64_t u64(std::string_view field) {
        uint64_t high = u32(field);
        return high << 32 | u32(field);
    }
    bool boolean(std::string_view field) {
        uint8_t v = u8(field);
        if (v > 1) {
            fail(Status::malformed,
                 std::string(field) + ": boolean must be 0 or 1, got " + std::to_string(v));
        }
        return v == 1;
    }
    template <size_t N>
    void bytes(std::array<uint8_t, N>& out, std::string_view field) {
        auto p = take(N, field);
        std::copy(p.begin(), p.end(), out.begin());
    }
    std::span<const uint8_t> take(size_t n, std::string_view field) {
        if (n > remaining()) {
            fail(Status::malformed, std::string(field) + ": truncated (needs " + std::to_string(n) +
                                        " bytes at offset " + std::to_string(pos_) + ", " +
                                        std::to_string(remaining()) + " left)");
        }
        auto part = bytes_.subspan(pos_, n);
        pos_ += n;
        return part;
    }

    size_t remaining() const { return bytes_.size() - pos_; }
    std::span<const uint8_t> rest() const { return bytes_.subspan(pos_); }
    void expect_end(std::string_view what) const {
        if (remaining() != 0) {
            fail(Status::malformed,
                 std::string(what) + ": " + std::to_string(remaining()) + " trailing bytes");
        }
    }

  private:
    std::span<const uint8_t> bytes_;
    size_t pos_ = 0;
};

// ---------------------------------------------------------------- shared pieces

constexpr uint16_t kMaxMsgType = static_cast<uint16_t>(MsgType::list_sessions);
constexpr uint16_t kMaxStatus = static_cast<uint16_t>(Status::internal);

bool is_known_type(uint16_t t) {
    return t >= 1 && t <= kMaxMsgType;
}

// Which reply body an ok response to each request type carries.
enum class ReplyKind { empty, health, session, list };
ReplyKind reply_kind(MsgType t) {
    switch (t) {
        case MsgType::health:
            return ReplyKind::health;
        case MsgType::get_session:
            return ReplyKind::session;
        case MsgType::list_sessions:
            return ReplyKind::list;
        default:
            return ReplyKind::empty;
    }
}

// Writes the header with a zero body length; returns the offset to patch it at.
size_t write_header(ByteWriter& w, MsgType type, uint16_t flags, uint32_t request_id) {
    w.u32(kMagic);
    w.u16(kVersion);
    w.u16(static_cast<uint16_t>(type));
    w.u16(flags);
    w.u32(request_id);
    size_t body_length_offset = w.size();
    w.u32(0);
    return body_length_offset;
}

// ---- SessionLimits (24 bytes), Ipv4Prefix (5 bytes), SocketAddress (6 bytes)

void write_limits(ByteWriter& w, const SessionLimits& l) {
    w.u64(l.packets_per_s);
    w.u64(l.bytes_per_s);
    w.u32(l.burst_packets);
    w.u32(l.burst_bytes);
}
SessionLimits read_limits(ByteReader& r, std::string_view prefix) {
    SessionLimits l;
    l.packets_per_s = r.u64(field_name(prefix, "packets_per_s"));
    l.bytes_per_s = r.u64(field_name(prefix, "bytes_per_s"));
    l.burst_packets = r.u32(field_name(prefix, "burst_packets"));
    l.burst_bytes = r.u32(field_name(prefix, "burst_bytes"));
    return l;
}

void write_prefix(ByteWriter& w, const Ipv4Prefix& p) {
    w.u32(p.addr);
    w.u8(p.len);
}
Ipv4Prefix read_prefix(ByteReader& r, std::string_view prefix) {
    Ipv4Prefix p;
    p.addr = r.u32(field_name(prefix, "addr"));
    std::string len_field = field_name(prefix, "len");
    uint8_t len = r.u8(len_field);
    if (len > 32) {
        fail(Status::invalid_argument,
             len_field + ": prefix length must be 0..32, got " + std::to_string(len));
    }
    p.len = len;
    return p;
}

void write_address(ByteWriter& w, const SocketAddress& a) {
    w.u32(a.ip);
    w.u16(a.port);
}
SocketAddress read_address(ByteReader& r, std::string_view prefix) {
    SocketAddress a;
    a.ip = r.u32(field_name(prefix, "ip"));
    a.port = r.u16(field_name(prefix, "port"));
    return a;
}

// ---- semantic checks shared by several messages

uint64_t read_session_id(ByteReader& r, std::string_view prefix) {
    std::string field = field_name(prefix, "id");
    uint64_t id = r.u64(field);
    if (id == 0) fail(Status::invalid_argument, field + ": session id 0 is reserved");
    return id;
}

uint32_t read_idle_timeout(ByteReader& r, std::string_view prefix) {
    std::string field = field_name(prefix, "idle_timeout_s");
    uint32_t idle = r.u32(field);
    if (idle < 1 || idle > kMaxIdleTimeoutS) {
        fail(Status::invalid_argument, field + ": must be 1.." + std::to_string(kMaxIdleTimeoutS) +
                                           ", got " + std::to_string(idle));
    }
    return idle;
}

// ---- SessionSpec (kSessionSpecBytes)

void write_spec(ByteWriter& w, const SessionSpec& s) {
    w.u64(s.id);
    w.u32(s.relay_ip);
    w.u16(s.relay_port);
    w.u8(static_cast<uint8_t>(s.policy));
    for (const SideSpec& side : s.sides) {
        w.bytes(side.public_key);
        write_prefix(w, side.allowed_source);
        w.u16(side.allowed_port);
    }
    w.bytes(s.bind_secret);
    write_limits(w, s.limits);
    w.u32(s.idle_timeout_s);
}

SessionSpec read_spec(ByteReader& r, std::string_view prefix) {
    SessionSpec s;
    s.id = read_session_id(r, prefix);
    s.relay_ip = r.u32(field_name(prefix, "relay_ip"));
    std::string port_field = field_name(prefix, "relay_port");
    s.relay_port = r.u16(port_field);
    if (s.relay_port == 0) fail(Status::invalid_argument, port_field + ": must be 1..65535, got 0");
    std::string policy_field = field_name(prefix, "policy");
    uint8_t policy = r.u8(policy_field);
    if (policy != static_cast<uint8_t>(LatchPolicy::wireguard) &&
        policy != static_cast<uint8_t>(LatchPolicy::bind)) {
        fail(Status::invalid_argument,
             policy_field + ": latch policy must be 1 (wireguard) or 2 (bind), got " +
                 std::to_string(policy));
    }
    s.policy = static_cast<LatchPolicy>(policy);
    for (size_t i = 0; i < s.sides.size(); ++i) {
        std::string side = field_name(prefix, "sides[" + std::to_string(i) + "]");
        r.bytes(s.sides[i].public_key, field_name(side, "public_key"));
        s.sides[i].allowed_source = read_prefix(r, field_name(side, "allowed_source"));
        s.sides[i].allowed_port = r.u16(field_name(side, "allowed_port"));
    }
    r.bytes(s.bind_secret, field_name(prefix, "bind_secret"));
    s.limits = read_limits(r, field_name(prefix, "limits"));
    s.idle_timeout_s = read_idle_timeout(r, prefix);
    return s;
}

// ---- SessionUpdate (kSessionUpdateBytes)

void write_update(ByteWriter& w, const SessionUpdate& u) {
    w.u64(u.id);
    write_limits(w, u.limits);
    for (size_t i = 0; i < u.allowed_source.size(); ++i) {
        write_prefix(w, u.allowed_source[i]);
        w.u16(u.allowed_port[i]);
    }
    w.u32(u.idle_timeout_s);
}

SessionUpdate read_update(ByteReader& r, std::string_view prefix) {
    SessionUpdate u;
    u.id = read_session_id(r, prefix);
    u.limits = read_limits(r, field_name(prefix, "limits"));
    for (size_t i = 0; i < u.allowed_source.size(); ++i) {
        u.allowed_source[i] =
            read_prefix(r, field_name(prefix, "allowed_source[" + std::to_string(i) + "]"));
        u.allowed_port[i] = r.u16(field_name(prefix, "allowed_port[" + std::to_string(i) + "]"));
    }
    u.idle_timeout_s = read_idle_timeout(r, prefix);
    return u;
}

// ---- SessionStats (kSessionStatsBytes)

void write_stats(ByteWriter& w, const SessionStats& s) {
    const size_t start = w.size();
    write_spec(w, s.spec);
    for (const SideStats& side : s.sides) {
        write_address(w, side.endpoint);
        w.boolean(side.latched);
        write_address(w, side.candidate);
        w.boolean(side.has_candidate);
        w.u64(side.rx_packets);
        w.u64(side.rx_bytes);
        w.u64(side.tx_packets);
        w.u64(side.tx_bytes);
        w.u64(side.dropped_packets);
        w.u64(side.rate_limited_packets);
        w.u64(side.latches);
        w.u64(side.latch_refused);
    }
    w.u64(s.idle_ms);
    w.u64(s.age_ms);
    // The size guarantee (kMaxListReplyBytes) rests on this constant: keep them in step.
    if (w.size() - start != kSessionStatsBytes) {
        throw std::logic_error("ipc: SessionStats encoding is not kSessionStatsBytes long");
    }
}

SessionStats read_stats(ByteReader& r, std::string_view prefix) {
    SessionStats s;
    s.spec = read_spec(r, field_name(prefix, "spec"));
    for (size_t i = 0; i < s.sides.size(); ++i) {
        std::string p = field_name(prefix, "sides[" + std::to_string(i) + "]");
        SideStats& side = s.sides[i];
        side.endpoint = read_address(r, field_name(p, "endpoint"));
        side.latched = r.boolean(field_name(p, "latched"));
        side.candidate = read_address(r, field_name(p, "candidate"));
        side.has_candidate = r.boolean(field_name(p, "has_candidate"));
        side.rx_packets = r.u64(field_name(p, "rx_packets"));
        side.rx_bytes = r.u64(field_name(p, "rx_bytes"));
        side.tx_packets = r.u64(field_name(p, "tx_packets"));
        side.tx_bytes = r.u64(field_name(p, "tx_bytes"));
        side.dropped_packets = r.u64(field_name(p, "dropped_packets"));
        side.rate_limited_packets = r.u64(field_name(p, "rate_limited_packets"));
        side.latches = r.u64(field_name(p, "latches"));
        side.latch_refused = r.u64(field_name(p, "latch_refused"));
    }
    s.idle_ms = r.u64(field_name(prefix, "idle_ms"));
    s.age_ms = r.u64(field_name(prefix, "age_ms"));
    return s;
}

// ---- reply bodies

void write_reply(ByteWriter& w, const HealthReply& h) {
    if (h.relay_addresses.size() > kMaxRelayAddresses) {
        throw std::length_error("ipc: HealthReply has more than kMaxRelayAddresses addresses");
    }
    w.u64(h.instance_id);
    w.u64(h.uptime_ms);
    w.u32(h.workers);
    w.u32(h.ports);
    w.u32(h.sessions);
    w.u32(h.max_sessions);
    w.u16(static_cast<uint16_t>(h.relay_addresses.size()));
    for (Ipv4 a : h.relay_addresses) w.u32(a);
}

HealthReply read_health_reply(ByteReader& r) {
    HealthReply h;
    h.instance_id = r.u64("health.instance_id");
    h.uptime_ms = r.u64("health.uptime_ms");
    h.workers = r.u32("health.workers");
    h.ports = r.u32("health.ports");
    h.sessions = r.u32("health.sessions");
    h.max_sessions = r.u32("health.max_sessions");
    uint16_t count = r.u16("health.address_count");
    if (count > kMaxRelayAddresses) {
        fail(Status::invalid_argument, "health.address_count: at most " +
                                           std::to_string(kMaxRelayAddresses) + ", got " +
                                           std::to_string(count));
    }
    h.relay_addresses.reserve(count);
    for (uint16_t i = 0; i < count; ++i) {
        h.relay_addresses.push_back(r.u32("health.relay_addresses[" + std::to_string(i) + "]"));
    }
    return h;
}

void write_reply(ByteWriter& w, const ListSessionsReply& l) {
    if (l.sessions.size() > kMaxListPage) {
        throw std::length_error("ipc: ListSessionsReply has more than kMaxListPage sessions");
    }
    w.u16(static_cast<uint16_t>(l.sessions.size()));
    w.boolean(l.more);
    for (const SessionStats& s : l.sessions) write_stats(w, s);
}

ListSessionsReply read_list_reply(ByteReader& r) {
    ListSessionsReply l;
    uint16_t count = r.u16("list.count");
    if (count > kMaxListPage) {
        fail(Status::invalid_argument, "list.count: at most " + std::to_string(kMaxListPage) +
                                           ", got " + std::to_string(count));
    }
    l.more = r.boolean("list.more");
    l.sessions.reserve(count);
    for (uint16_t i = 0; i < count; ++i) {
        l.sessions.push_back(read_stats(r, "list.sessions[" + std::to_string(i) + "]"));
    }
    return l;
}

// ---- header decoding shared by requests and responses

struct Header {
    MsgType type{};  // raw value; may be unknown
    uint32_t request_id = 0;
    Status status = Status::ok;  // responses only
};

// Reads and checks the header.  Fills `echo` as soon as the id and type are known, so that the
// caller can put them in the DecodeError.  Leaves `r` at the start of the body, whose length has
// been checked against the header.
Header read_header(ByteReader& r, bool is_response, HeaderEcho& echo) {
    Header h;
    uint32_t magic = r.u32("header.magic");
    if (magic != kMagic) fail(Status::malformed, "header.magic: not \"RDIP\"");
    uint16_t version = r.u16("header.version");
    uint16_t type = r.u16("header.type");
    uint16_t flags = r.u16("header.flags");
    h.request_id = r.u32("header.request_id");
    h.type = static_cast<MsgType>(type);
    echo = HeaderEcho{h.request_id, h.type};

    if (version != kVersion) {
        fail(Status::unsupported_version, "header.version: unsupported version " +
                                              std::to_string(version) + " (this side speaks " +
                                              std::to_string(kVersion) + ")");
    }
    if (!is_response && !is_known_type(type)) {
        fail(Status::unknown_type, "header.type: unknown message type " + std::to_string(type));
    }
    const uint16_t expected_flags = is_response ? kFlagResponse : 0;
    if (flags != expected_flags) {
        fail(Status::malformed, "header.flags: expected " + std::to_string(expected_flags) +
                                    ", got " + std::to_string(flags));
    }
    uint32_t body_length = r.u32("header.body_length");
    if (is_response) {
        uint16_t status = r.u16("header.status");
        if (status > kMaxStatus) {
            fail(Status::invalid_argument,
                 "header.status: unknown status " + std::to_string(status));
        }
        h.status = static_cast<Status>(status);
        // An error reply echoes whatever type the request had, known or not.
        if (h.status == Status::ok && !is_known_type(type)) {
            fail(Status::unknown_type, "header.type: unknown message type " + std::to_string(type));
        }
    }
    if (body_length != r.remaining()) {
        fail(Status::malformed, "header.body_length: says " + std::to_string(body_length) +
                                    " bytes, the message has " + std::to_string(r.remaining()));
    }
    return h;
}

void check_total_size(std::span<const uint8_t> bytes) {
    if (bytes.size() > kMaxMessageBytes) {
        fail(Status::malformed, "message: " + std::to_string(bytes.size()) +
                                    " bytes, larger than " + std::to_string(kMaxMessageBytes));
    }
}

RequestBody read_request_body(ByteReader& r, MsgType type) {
    switch (type) {
        case MsgType::health:
            return HealthRequest{};
        case MsgType::add_session:
            return AddSessionRequest{read_spec(r, "add_session.spec")};
        case MsgType::update_session:
            return UpdateSessionRequest{read_update(r, "update_session.update")};
        case MsgType::remove_session:
            return RemoveSessionRequest{read_session_id(r, "remove_session")};
        case MsgType::get_session:
            return GetSessionRequest{read_session_id(r, "get_session")};
        case MsgType::list_sessions: {
            ListSessionsRequest l;
            l.after_id = r.u64("list_sessions.after_id");
            l.max_count = r.u32("list_sessions.max_count");
            if (l.max_count < 1 || l.max_count > kMaxListPage) {
                fail(Status::invalid_argument, "list_sessions.max_count: must be 1.." +
                                                   std::to_string(kMaxListPage) + ", got " +
                                                   std::to_string(l.max_count));
            }
            return l;
        }
    }
    fail(Status::unknown_type, "header.type: unknown message type");  // checked in read_header
}

template <typename... Fs>
struct Overloaded : Fs... {
    using Fs::operator()...;
};
template <typename... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace

// ---------------------------------------------------------------- public API

const char* to_string(Status s) {
    switch (s) {
        case Status::ok:
            return "ok";
        case Status::malformed:
            return "malformed";
        case Status::unsupported_version:
            return "unsupported_version";
        case Status::unknown_type:
            return "unknown_type";
        case Status::invalid_argument:
            return "invalid_argument";
        case Status::exists:
            return "exists";
        case Status::not_found:
            return "not_found";
        case Status::table_full:
            return "table_full";
        case Status::unknown_address:
            return "unknown_address";
        case Status::busy:
            return "busy";
        case Status::internal:
            return "internal";
    }
    return "unknown";
}

const char* to_string(MsgType t) {
    switch (t) {
        case MsgType::health:
            return "health";
        case MsgType::add_session:
            return "add_session";
        case MsgType::update_session:
            return "update_session";
        case MsgType::remove_session:
            return "remove_session";
        case MsgType::get_session:
            return "get_session";
        case MsgType::list_sessions:
            return "list_sessions";
    }
    return "unknown";
}

MsgType type_of(const RequestBody& b) {
    return std::visit(Overloaded{
                          [](const HealthRequest&) { return MsgType::health; },
                          [](const AddSessionRequest&) { return MsgType::add_session; },
                          [](const UpdateSessionRequest&) { return MsgType::update_session; },
                          [](const RemoveSessionRequest&) { return MsgType::remove_session; },
                          [](const GetSessionRequest&) { return MsgType::get_session; },
                          [](const ListSessionsRequest&) { return MsgType::list_sessions; },
                      },
                      b);
}

std::vector<uint8_t> encode(const Request& r) {
    ByteWriter w;
    size_t body_length_offset = write_header(w, type_of(r.body), 0, r.request_id);
    std::visit(Overloaded{
                   [](const HealthRequest&) {},
                   [&](const AddSessionRequest& a) { write_spec(w, a.spec); },
                   [&](const UpdateSessionRequest& u) { write_update(w, u.update); },
                   [&](const RemoveSessionRequest& x) { w.u64(x.id); },
                   [&](const GetSessionRequest& g) { w.u64(g.id); },
                   [&](const ListSessionsRequest& l) {
                       w.u64(l.after_id);
                       w.u32(l.max_count);
                   },
               },
               r.body);
    w.patch_u32(body_length_offset, static_cast<uint32_t>(w.size() - kRequestHeaderBytes));
    return std::move(w).take();
}

std::vector<uint8_t> encode(const Response& r) {
    ByteWriter w;
    size_t body_length_offset = write_header(w, r.type, kFlagResponse, r.request_id);
    w.u16(static_cast<uint16_t>(r.status));
    // Human-readable only: cut rather than fail, so that an error can always be reported.
    size_t error_length = std::min(r.error.size(), kMaxErrorBytes);
    w.u16(static_cast<uint16_t>(error_length));
    for (size_t i = 0; i < error_length; ++i) w.u8(static_cast<uint8_t>(r.error[i]));

    if (r.status == Status::ok) {
        if (!is_known_type(static_cast<uint16_t>(r.type))) {
            throw std::invalid_argument("ipc: ok response with an unknown message type");
        }
        const ReplyKind expected = reply_kind(r.type);
        std::visit(
            Overloaded{
                [&](const EmptyReply&) {
                    if (expected != ReplyKind::empty) {
                        throw std::invalid_argument(std::string("ipc: ok ") + to_string(r.type) +
                                                    " response needs a reply body");
                    }
                },
                [&](const auto& reply) {
                    using T = std::decay_t<decltype(reply)>;
                    constexpr ReplyKind kind = std::is_same_v<T, HealthReply> ? ReplyKind::health
                                               : std::is_same_v<T, SessionReply>
                                                   ? ReplyKind::session
                                                   : ReplyKind::list;
                    if (kind != expected) {
                        throw std::invalid_argument(
                            std::string("ipc: reply body does not match the ") + to_string(r.type) +
                            " request");
                    }
                    if constexpr (std::is_same_v<T, SessionReply>) {
                        write_stats(w, reply.session);
                    } else {
                        write_reply(w, reply);
                    }
                },
            },
            r.body);
    }
    w.patch_u32(body_length_offset, static_cast<uint32_t>(w.size() - kResponseHeaderBytes));
    return std::move(w).take();
}

Result<Request, DecodeError> decode_request(std::span<const uint8_t> bytes) {
    HeaderEcho echo;
    try {
        ByteReader r(bytes);
        Header h = read_header(r, /*is_response=*/false, echo);
        check_total_size(bytes);
        Request req;
        req.request_id = h.request_id;
        req.body = read_request_body(r, h.type);
        r.expect_end(std::string(to_string(h.type)) + " body");
        return req;
    } catch (DecodeFailure& f) {
        return Unexpected{DecodeError{f.status, echo.request_id, echo.type, std::move(f.message)}};
    }
}

Result<Response, DecodeError> decode_response(std::span<const uint8_t> bytes) {
    HeaderEcho echo;
    try {
        ByteReader r(bytes);
        Header h = read_header(r, /*is_response=*/true, echo);
        check_total_size(bytes);
        Response resp;
        resp.request_id = h.request_id;
        resp.type = h.type;
        resp.status = h.status;
        uint16_t error_length = r.u16("error_length");
        if (error_length > kMaxErrorBytes) {
            fail(Status::invalid_argument, "error_length: at most " +
                                               std::to_string(kMaxErrorBytes) + ", got " +
                                               std::to_string(error_length));
        }
        auto error = r.take(error_length, "error");
        resp.error.assign(error.begin(), error.end());
        if (h.status == Status::ok) {
            switch (reply_kind(h.type)) {
                case ReplyKind::empty:
                    resp.body = EmptyReply{};
                    break;
                case ReplyKind::health:
                    resp.body = read_health_reply(r);
                    break;
                case ReplyKind::session:
                    resp.body = SessionReply{read_stats(r, "session")};
                    break;
                case ReplyKind::list:
                    resp.body = read_list_reply(r);
                    break;
            }
        }
        r.expect_end(std::string(to_string(h.type)) + " response body");
        return resp;
    } catch (DecodeFailure& f) {
        return Unexpected{DecodeError{f.status, echo.request_id, echo.type, std::move(f.message)}};
    }
}

std::optional<HeaderEcho> peek_header(std::span<const uint8_t> bytes) {
    if (bytes.size() < kEchoableHeaderBytes) return std::nullopt;
    ByteReader r(bytes);
    if (r.u32("magic") != kMagic) return std::nullopt;
    r.u16("version");
    uint16_t type = r.u16("type");
    r.u16("flags");
    return HeaderEcho{r.u32("request_id"), static_cast<MsgType>(type)};
}

Response error_response(const DecodeError& e) {
    Response r;
    r.request_id = e.request_id;
    r.type = e.type;
    r.status = e.status == Status::ok ? Status::internal : e.status;
    r.error = e.message;
    r.body = EmptyReply{};
    return r;
}

}  // namespace relay::ipc

// Codec of the plaintext control messages.  Layout: docs/PROTOCOL.md, section "Control
// messages (plaintext)".  Every integer is big endian; every field is read through Reader,
// which checks the length before each read, so no input can make the decoder read past the
// span.  Encoders write field by field through Writer (no struct copies), and decode stores
// every bit it accepts, so that encode(decode(bytes)) == bytes for every accepted input: a
// message has exactly one encoding.
#include "relay/control/messages.hpp"

#include <algorithm>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace relay::control {
namespace {

// ---------------------------------------------------------------- errors

// Thrown by the reader and the field checks below, caught in decode() and turned into its
// DecodeError.  Never leaves this file.
struct DecodeFailure {
    DecodeError error;
};

[[noreturn]] void fail(DecodeError e) {
    throw DecodeFailure{e};
}

// ---------------------------------------------------------------- writer

class Writer {
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
    void text(std::string_view t) {
        for (char c : t) u8(static_cast<uint8_t>(c));
    }
    void address(const SocketAddress& a) {
        u32(a.ip);
        u16(a.port);
    }

    std::vector<uint8_t> take() && { return std::move(bytes_); }

  private:
    std::vector<uint8_t> bytes_;
};

// ---------------------------------------------------------------- reader

// Reads big-endian fields from a span; any read past the end fails with `truncated`.
class Reader {
  public:
    explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

    uint8_t u8() { return take(1)[0]; }
    uint16_t u16() {
        auto p = take(2);
        return static_cast<uint16_t>(p[0] << 8 | p[1]);
    }
    uint32_t u32() {
        auto p = take(4);
        return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
    }
    uint64_t u64() {
        uint64_t high = u32();
        return high << 32 | u32();
    }
    bool boolean() {
        uint8_t v = u8();
        if (v > 1) fail(DecodeError::bad_value);
        return v == 1;
    }
    template <size_t N>
    void bytes(std::array<uint8_t, N>& out) {
        auto p = take(N);
        std::copy(p.begin(), p.end(), out.begin());
    }
    std::string text(size_t n) {
        auto p = take(n);
        return std::string(p.begin(), p.end());
    }
    SocketAddress address() {
        SocketAddress a;
        a.ip = u32();
        a.port = u16();
        return a;
    }
    std::span<const uint8_t> take(size_t n) {
        if (n > remaining()) fail(DecodeError::truncated);
        auto part = bytes_.subspan(pos_, n);
        pos_ += n;
        return part;
    }

    size_t remaining() const { return bytes_.size() - pos_; }
    void expect_end() const {
        if (remaining() != 0) fail(DecodeError::trailing_bytes);
    }

  private:
    std::span<const uint8_t> bytes_;
    size_t pos_ = 0;
};

// ---------------------------------------------------------------- field checks

bool is_zero(const PublicKey& k) {
    return std::all_of(k.begin(), k.end(), [](uint8_t b) { return b == 0; });
}

// A key that names a peer: the zero key names nobody.
PublicKey read_nonzero_key(Reader& r) {
    PublicKey k{};
    r.bytes(k);
    if (is_zero(k)) fail(DecodeError::bad_value);
    return k;
}

// A flags byte whose only defined bit is bit 0: any other bit is reserved, and rejecting it
// (rather than ignoring it) keeps the encoding unique and leaves the bits free to mean
// something later.
bool read_flag_bit0(Reader& r) {
    uint8_t flags = r.u8();
    if ((flags & ~uint8_t{1}) != 0) fail(DecodeError::bad_value);
    return (flags & 1) != 0;
}

// A count or length byte/word, checked against its maximum before anything is reserved or
// read for it.
size_t read_count_u8(Reader& r, size_t max) {
    size_t n = r.u8();
    if (n > max) fail(DecodeError::oversized);
    return n;
}
size_t read_length_u16(Reader& r, size_t max) {
    size_t n = r.u16();
    if (n > max) fail(DecodeError::oversized);
    return n;
}

uint8_t read_enum_u8(Reader& r, uint8_t lo, uint8_t hi) {
    uint8_t v = r.u8();
    if (v < lo || v > hi) fail(DecodeError::bad_value);
    return v;
}

constexpr uint8_t kMaxNatClass = static_cast<uint8_t>(NatClass::symmetric);
constexpr uint8_t kMinOutcome = static_cast<uint8_t>(Outcome::direct_ok);
constexpr uint8_t kMaxOutcome = static_cast<uint8_t>(Outcome::relay_failed);
constexpr uint8_t kMinCandidateKind = static_cast<uint8_t>(CandidateKind::reflexive);
constexpr uint8_t kMaxCandidateKind = static_cast<uint8_t>(CandidateKind::local);
constexpr uint8_t kMinLatchPolicy = static_cast<uint8_t>(LatchPolicy::wireguard);
constexpr uint8_t kMaxLatchPolicy = static_cast<uint8_t>(LatchPolicy::bind);
constexpr uint16_t kMinErrorCode = static_cast<uint16_t>(ErrorCode::malformed);
constexpr uint16_t kMaxErrorCode = static_cast<uint16_t>(ErrorCode::internal);

// The longest prefix of `text` that fits in `max` bytes and does not end inside a UTF-8
// sequence: the text is for people (logs, CLI), so a cut must not leave half a character.
std::string_view cut_text(std::string_view text, size_t max) {
    if (text.size() <= max) return text;
    size_t n = max;
    // Back off over continuation bytes (10xxxxxx) to the start of the character at `n`.
    while (n > 0 && (static_cast<uint8_t>(text[n]) & 0xC0) == 0x80) --n;
    return text.substr(0, n);
}

// ---------------------------------------------------------------- bodies: encode

void write_body(Writer& w, const RegisterPeer& m) {
    if (m.token.size() > kMaxTokenLen) {
        throw std::invalid_argument("control: RegisterPeer token longer than kMaxTokenLen");
    }
    if (m.local_addresses.size() > kMaxLocalAddresses) {
        throw std::invalid_argument("control: RegisterPeer has more than kMaxLocalAddresses");
    }
    w.u16(static_cast<uint16_t>(m.token.size()));
    w.text(m.token);
    w.bytes(m.wg_public_key);
    w.u16(m.wg_listen_port);
    w.bytes(m.probe_key);
    w.u16(m.agent_port);
    w.u8(static_cast<uint8_t>(m.local_addresses.size()));
    for (const SocketAddress& a : m.local_addresses) w.address(a);
}
void write_body(Writer& w, const Keepalive& m) {
    w.u32(m.rtt_us);
    w.u8(static_cast<uint8_t>((m.reply_from_other_port ? 1 : 0) | (m.probe_done ? 2 : 0) |
                              (m.probe_reply_seen ? 4 : 0)));
}
void write_body(Writer& w, const Connect& m) {
    w.bytes(m.peer);
    w.u8(m.force_relay ? 1 : 0);
}
void write_body(Writer& w, const ResultReport& m) {
    w.u64(m.attempt_id);
    w.bytes(m.peer);
    w.u8(static_cast<uint8_t>(m.outcome));
    w.u32(m.elapsed_ms);
}
void write_body(Writer& w, const Release& m) {
    w.u64(m.session_id);
}
void write_body(Writer&, const Deregister&) {}
void write_body(Writer& w, const Registered& m) {
    w.address(m.reflexive);
    w.u16(m.keepalive_interval_s);
    w.u16(m.peer_timeout_s);
}
void write_body(Writer& w, const Status& m) {
    w.address(m.reflexive);
    w.u8(static_cast<uint8_t>(m.nat_class));
    w.address(m.wg_reflexive);
    w.u16(m.server_port);
}
void write_body(Writer& w, const ConnectAck& m) {
    w.u64(m.attempt_id);
    w.boolean(m.relayed);
}
void write_body(Writer&, const Ok&) {}
void write_body(Writer& w, const Error& m) {
    // Text for people: cut rather than fail, so that an error can always be reported.
    std::string_view text = cut_text(m.text, kMaxErrorText);
    w.u16(static_cast<uint16_t>(m.code));
    w.u8(static_cast<uint8_t>(text.size()));
    w.text(text);
}
void write_body(Writer& w, const Punch& m) {
    if (m.candidates.size() > kMaxCandidates) {
        throw std::invalid_argument("control: Punch has more than kMaxCandidates candidates");
    }
    w.u64(m.attempt_id);
    w.bytes(m.peer);
    w.u32(m.fire_delay_ms);
    w.u32(m.deadline_ms);
    w.u8(static_cast<uint8_t>(m.candidates.size()));
    for (const Candidate& c : m.candidates) {
        w.address(c.address);
        w.u8(static_cast<uint8_t>(c.kind));
    }
}
void write_body(Writer& w, const RelayOffer& m) {
    w.u64(m.attempt_id);
    w.u64(m.session_id);
    w.bytes(m.peer);
    w.address(m.relay);
    w.u8(static_cast<uint8_t>(m.policy));
    w.u8(m.side);
    w.bytes(m.bind_secret);
    w.u32(m.idle_timeout_s);
}

// ---------------------------------------------------------------- bodies: decode

RegisterPeer read_register_peer(Reader& r) {
    RegisterPeer m;
    m.token = r.text(read_length_u16(r, kMaxTokenLen));
    m.wg_public_key = read_nonzero_key(r);
    m.wg_listen_port = r.u16();
    r.bytes(m.probe_key);  // all zero = no probe key
    m.agent_port = r.u16();
    size_t count = read_count_u8(r, kMaxLocalAddresses);
    m.local_addresses.reserve(count);
    for (size_t i = 0; i < count; ++i) m.local_addresses.push_back(r.address());
    return m;
}
Keepalive read_keepalive(Reader& r) {
    Keepalive m;
    m.rtt_us = r.u32();
    // Bit 0 asks for the filtering probe; bits 1 and 2 report its result.  A result
    // without the probe done (bit 2 without bit 1) is meaningless; bits 3..7 are reserved.
    const uint8_t flags = r.u8();
    if ((flags & ~uint8_t{7}) != 0 || (flags & 6) == 4) fail(DecodeError::bad_value);
    m.reply_from_other_port = (flags & 1) != 0;
    m.probe_done = (flags & 2) != 0;
    m.probe_reply_seen = (flags & 4) != 0;
    return m;
}
Connect read_connect(Reader& r) {
    Connect m;
    m.peer = read_nonzero_key(r);
    m.force_relay = read_flag_bit0(r);
    return m;
}
ResultReport read_result(Reader& r) {
    ResultReport m;
    m.attempt_id = r.u64();
    r.bytes(m.peer);
    m.outcome = static_cast<Outcome>(read_enum_u8(r, kMinOutcome, kMaxOutcome));
    m.elapsed_ms = r.u32();
    return m;
}
Release read_release(Reader& r) {
    Release m;
    m.session_id = r.u64();
    if (m.session_id == 0) fail(DecodeError::bad_value);  // 0 is never a session id
    return m;
}
Registered read_registered(Reader& r) {
    Registered m;
    m.reflexive = r.address();
    m.keepalive_interval_s = r.u16();
    m.peer_timeout_s = r.u16();
    return m;
}
Status read_status(Reader& r) {
    Status m;
    m.reflexive = r.address();
    m.nat_class = static_cast<NatClass>(read_enum_u8(r, 0, kMaxNatClass));
    m.wg_reflexive = r.address();
    m.server_port = r.u16();
    return m;
}
ConnectAck read_connect_ack(Reader& r) {
    ConnectAck m;
    m.attempt_id = r.u64();
    m.relayed = r.boolean();
    return m;
}
Error read_error(Reader& r) {
    Error m;
    uint16_t code = r.u16();
    if (code < kMinErrorCode || code > kMaxErrorCode) fail(DecodeError::bad_value);
    m.code = static_cast<ErrorCode>(code);
    m.text = r.text(read_count_u8(r, kMaxErrorText));
    return m;
}
Punch read_punch(Reader& r) {
    Punch m;
    m.attempt_id = r.u64();
    r.bytes(m.peer);
    m.fire_delay_ms = r.u32();
    m.deadline_ms = r.u32();
    size_t count = read_count_u8(r, kMaxCandidates);
    m.candidates.reserve(count);
    for (size_t i = 0; i < count; ++i) {
        Candidate c;
        c.address = r.address();
        c.kind = static_cast<CandidateKind>(read_enum_u8(r, kMinCandidateKind, kMaxCandidateKind));
        m.candidates.push_back(c);
    }
    return m;
}
RelayOffer read_relay_offer(Reader& r) {
    RelayOffer m;
    m.attempt_id = r.u64();
    m.session_id = r.u64();
    r.bytes(m.peer);
    m.relay = r.address();
    m.policy = static_cast<LatchPolicy>(read_enum_u8(r, kMinLatchPolicy, kMaxLatchPolicy));
    m.side = read_enum_u8(r, 0, 1);
    r.bytes(m.bind_secret);
    m.idle_timeout_s = r.u32();
    return m;
}

Body read_body(Reader& r, uint8_t type) {
    switch (static_cast<MessageType>(type)) {
        case MessageType::register_peer:
            return read_register_peer(r);
        case MessageType::keepalive:
            return read_keepalive(r);
        case MessageType::connect:
            return read_connect(r);
        case MessageType::result:
            return read_result(r);
        case MessageType::release:
            return read_release(r);
        case MessageType::deregister:
            return Deregister{};
        case MessageType::registered:
            return read_registered(r);
        case MessageType::status:
            return read_status(r);
        case MessageType::connect_ack:
            return read_connect_ack(r);
        case MessageType::ok:
            return Ok{};
        case MessageType::error:
            return read_error(r);
        case MessageType::punch:
            return read_punch(r);
        case MessageType::relay_offer:
            return read_relay_offer(r);
    }
    fail(DecodeError::unknown_type);
}

template <typename... Fs>
struct Overloaded : Fs... {
    using Fs::operator()...;
};
template <typename... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace

// ---------------------------------------------------------------- names

const char* to_string(MessageType t) {
    switch (t) {
        case MessageType::register_peer:
            return "register";
        case MessageType::keepalive:
            return "keepalive";
        case MessageType::connect:
            return "connect";
        case MessageType::result:
            return "result";
        case MessageType::release:
            return "release";
        case MessageType::deregister:
            return "deregister";
        case MessageType::registered:
            return "registered";
        case MessageType::status:
            return "status";
        case MessageType::connect_ack:
            return "connect_ack";
        case MessageType::ok:
            return "ok";
        case MessageType::error:
            return "error";
        case MessageType::punch:
            return "punch";
        case MessageType::relay_offer:
            return "relay_offer";
    }
    return "invalid";
}

const char* to_string(NatClass c) {
    switch (c) {
        case NatClass::unknown:
            return "unknown";
        case NatClass::open:
            return "open";
        case NatClass::cone:
            return "cone";
        case NatClass::port_restricted:
            return "port_restricted";
        case NatClass::symmetric:
            return "symmetric";
    }
    return "invalid";
}

const char* to_string(ErrorCode c) {
    switch (c) {
        case ErrorCode::malformed:
            return "malformed";
        case ErrorCode::bad_token:
            return "bad_token";
        case ErrorCode::token_expired:
            return "token_expired";
        case ErrorCode::unknown_network:
            return "unknown_network";
        case ErrorCode::not_allowed:
            return "not_allowed";
        case ErrorCode::not_registered:
            return "not_registered";
        case ErrorCode::unknown_peer:
            return "unknown_peer";
        case ErrorCode::peer_limit:
            return "peer_limit";
        case ErrorCode::session_limit:
            return "session_limit";
        case ErrorCode::rate_limited:
            return "rate_limited";
        case ErrorCode::draining:
            return "draining";
        case ErrorCode::no_relay_ports:
            return "no_relay_ports";
        case ErrorCode::dataplane_unavailable:
            return "dataplane_unavailable";
        case ErrorCode::unknown_attempt:
            return "unknown_attempt";
        case ErrorCode::unknown_session:
            return "unknown_session";
        case ErrorCode::internal:
            return "internal";
    }
    return "invalid";
}

const char* to_string(CandidateKind k) {
    switch (k) {
        case CandidateKind::reflexive:
            return "reflexive";
        case CandidateKind::local:
            return "local";
    }
    return "invalid";
}

const char* to_string(Outcome o) {
    switch (o) {
        case Outcome::direct_ok:
            return "direct_ok";
        case Outcome::direct_failed:
            return "direct_failed";
        case Outcome::relayed_ok:
            return "relayed_ok";
        case Outcome::relay_failed:
            return "relay_failed";
    }
    return "invalid";
}

const char* to_string(DecodeError e) {
    switch (e) {
        case DecodeError::truncated:
            return "truncated";
        case DecodeError::unknown_type:
            return "unknown_type";
        case DecodeError::trailing_bytes:
            return "trailing_bytes";
        case DecodeError::bad_value:
            return "bad_value";
        case DecodeError::oversized:
            return "oversized";
    }
    return "invalid";
}

// ---------------------------------------------------------------- codec

MessageType type_of(const Body& b) {
    return std::visit(Overloaded{
                          [](const RegisterPeer&) { return MessageType::register_peer; },
                          [](const Keepalive&) { return MessageType::keepalive; },
                          [](const Connect&) { return MessageType::connect; },
                          [](const ResultReport&) { return MessageType::result; },
                          [](const Release&) { return MessageType::release; },
                          [](const Deregister&) { return MessageType::deregister; },
                          [](const Registered&) { return MessageType::registered; },
                          [](const Status&) { return MessageType::status; },
                          [](const ConnectAck&) { return MessageType::connect_ack; },
                          [](const Ok&) { return MessageType::ok; },
                          [](const Error&) { return MessageType::error; },
                          [](const Punch&) { return MessageType::punch; },
                          [](const RelayOffer&) { return MessageType::relay_offer; },
                      },
                      b);
}

std::vector<uint8_t> encode(const Message& m) {
    Writer w;
    w.u8(static_cast<uint8_t>(type_of(m.body)));
    w.u64(m.timestamp_ms);
    w.u32(m.request_id);
    std::visit([&](const auto& body) { write_body(w, body); }, m.body);
    return std::move(w).take();
}

std::optional<uint64_t> peek_timestamp(std::span<const uint8_t> plaintext) {
    try {
        Reader r(plaintext);
        r.u8();  // type
        return r.u64();
    } catch (const DecodeFailure&) {
        return std::nullopt;
    }
}

Result<Message, DecodeError> decode(std::span<const uint8_t> plaintext) {
    try {
        Reader r(plaintext);
        // The whole header is read before the type is judged, so that a message cut inside
        // the header is `truncated` whatever its first byte.
        uint8_t type = r.u8();
        Message m;
        m.timestamp_ms = r.u64();
        m.request_id = r.u32();
        m.body = read_body(r, type);
        r.expect_end();
        return m;
    } catch (const DecodeFailure& f) {
        return Unexpected{f.error};
    }
}

}  // namespace relay::control

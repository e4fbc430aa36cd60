// The data-plane IPC codec: round trips, the documented layout, and that no byte sequence
// (truncated, bit-flipped, out of range) gets past the decoder unchecked.
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "relay/ipc/dataplane_protocol.hpp"

namespace relay::ipc {
namespace {

using Bytes = std::vector<uint8_t>;

// Offsets of header fields that the tests patch (docs/PROTOCOL.md, header table).
constexpr size_t kVersionAt = 4, kTypeAt = 6, kFlagsAt = 8, kBodyLengthAt = 14;

PublicKey key_filled_from(uint8_t first) {
    PublicKey k{};
    for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(first + 7 * i);
    return k;
}

SessionSpec sample_spec(uint64_t id = 0x0102030405060708) {
    SessionSpec s;
    s.id = id;
    s.relay_ip = 0xc633640a;  // 198.51.100.10
    s.relay_port = 51820;
    s.policy = LatchPolicy::bind;
    s.sides[0].public_key = key_filled_from(1);
    s.sides[0].allowed_source = {0xcb007100, 24};  // 203.0.113.0/24
    s.sides[1].public_key = key_filled_from(200);
    s.sides[0].allowed_port = 40000;
    s.sides[1].allowed_source = {0x0a000001, 32};
    s.sides[1].allowed_port = 0xfffe;
    s.bind_secret = key_filled_from(99);
    s.limits = {1'000'000, 0xfedcba9876543210, 4096, 0x80000001};
    s.idle_timeout_s = 86400;
    return s;
}

SessionStats sample_stats(uint64_t id = 42) {
    SessionStats st;
    st.spec = sample_spec(id);
    st.sides[0] = {{0xcb007105, 40000}, true, {0xcb007106, 40001}, true, 1, 2, 3, 4, 5, 6, 7, 8};
    st.sides[1] = {
        {0xc6336401, 65535}, false, {0, 0}, false, ~0ull, 1ull << 40, 9, 10, 11, 12, 13, 14};
    st.idle_ms = 123456789;
    st.age_ms = 0x1122334455667788;
    return st;
}

std::vector<Request> sample_requests() {
    SessionUpdate update;
    update.id = 77;
    update.limits = {10, 20, 30, 40};
    update.allowed_source = {Ipv4Prefix{0xc0a80000, 16}, Ipv4Prefix{0, 0}};
    update.allowed_port = {51820, 0};
    update.idle_timeout_s = 1;
    return {
        {1, HealthRequest{}},
        {0xdeadbeef, AddSessionRequest{sample_spec()}},
        {3, UpdateSessionRequest{update}},
        {4, RemoveSessionRequest{~0ull}},
        {5, GetSessionRequest{9}},
        {0xffffffff, ListSessionsRequest{1000, 128}},
    };
}

std::vector<Response> sample_responses() {
    HealthReply health{0xabcdef0123456789, 3600000, 2, 1, 17, 65536, {0xc633640a, 0xc633640b}};
    ListSessionsReply list{{sample_stats(10), sample_stats(11)}, true};
    return {
        {1, MsgType::health, Status::ok, "", health},
        {2, MsgType::add_session, Status::ok, "", EmptyReply{}},
        {3, MsgType::update_session, Status::ok, "", EmptyReply{}},
        {4, MsgType::remove_session, Status::ok, "", EmptyReply{}},
        {5, MsgType::get_session, Status::ok, "", SessionReply{sample_stats()}},
        {6, MsgType::list_sessions, Status::ok, "", list},
        {7, MsgType::list_sessions, Status::ok, "", ListSessionsReply{}},
        {8, MsgType::add_session, Status::exists, "session 8 exists", EmptyReply{}},
        {9, MsgType::get_session, Status::not_found, "no session 9", EmptyReply{}},
        {10, MsgType{99}, Status::unknown_type, "header.type: unknown message type 99", {}},
    };
}

void put_be16(Bytes& b, size_t at, uint16_t v) {
    b.at(at) = static_cast<uint8_t>(v >> 8);
    b.at(at + 1) = static_cast<uint8_t>(v);
}
void put_be32(Bytes& b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b.at(at + i) = static_cast<uint8_t>(v >> (24 - 8 * i));
}
uint32_t get_be32(const Bytes& b, size_t at) {
    return uint32_t{b.at(at)} << 24 | uint32_t{b.at(at + 1)} << 16 | uint32_t{b.at(at + 2)} << 8 |
           b.at(at + 3);
}

void expect_request_rejected(const Bytes& bytes, Status status, const std::string& field) {
    auto decoded = decode_request(bytes);
    ASSERT_FALSE(decoded.ok()) << "expected rejection naming " << field;
    EXPECT_EQ(decoded.error().status, status)
        << to_string(decoded.error().status) << ": " << decoded.error().message;
    EXPECT_NE(decoded.error().message.find(field), std::string::npos)
        << "message \"" << decoded.error().message << "\" does not name " << field;
}

void expect_response_rejected(const Bytes& bytes, Status status, const std::string& field) {
    auto decoded = decode_response(bytes);
    ASSERT_FALSE(decoded.ok()) << "expected rejection naming " << field;
    EXPECT_EQ(decoded.error().status, status)
        << to_string(decoded.error().status) << ": " << decoded.error().message;
    EXPECT_NE(decoded.error().message.find(field), std::string::npos)
        << "message \"" << decoded.error().message << "\" does not name " << field;
}

Bytes encoded_add(const SessionSpec& spec, uint32_t request_id = 5) {
    return encode(Request{request_id, AddSessionRequest{spec}});
}

// ---------------------------------------------------------------- round trips and layout

TEST(IpcProtocol, EveryRequestRoundTrips) {
    for (const Request& request : sample_requests()) {
        Bytes bytes = encode(request);
        auto decoded = decode_request(bytes);
        ASSERT_TRUE(decoded.ok()) << to_string(type_of(request.body)) << ": "
                                  << decoded.error().message;
        EXPECT_EQ(*decoded, request) << to_string(type_of(request.body));
    }
}

TEST(IpcProtocol, EveryResponseRoundTrips) {
    for (const Response& response : sample_responses()) {
        Bytes bytes = encode(response);
        auto decoded = decode_response(bytes);
        ASSERT_TRUE(decoded.ok()) << to_string(response.type) << ": " << decoded.error().message;
        EXPECT_EQ(*decoded, response) << to_string(response.type);
    }
}

TEST(IpcProtocol, HeaderLayoutIsAsDocumented) {
    // Both examples of docs/PROTOCOL.md, byte for byte.
    Bytes request = encode(Request{0x01020304, GetSessionRequest{0x1122334455667788}});
    const Bytes expected_request = {'R',  'D',  'I',  'P',  0,    2,    0,    5,   0,
                                    0,    1,    2,    3,    4,    0,    0,    0,   8,
                                    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    EXPECT_EQ(request, expected_request);

    Bytes response =
        encode(Response{7, MsgType::get_session, Status::not_found, "no such session", {}});
    Bytes expected_response = {'R', 'D', 'I', 'P', 0, 2, 0,    5, 0, 1, 0,
                               0,   0,   7,   0,   0, 0, 0x11, 0, 6, 0, 0x0f};
    for (char c : std::string("no such session")) expected_response.push_back(c);
    EXPECT_EQ(response, expected_response);
}

TEST(IpcProtocol, EncodedSizesMatchTheDocumentedConstants) {
    EXPECT_EQ(encode(Request{1, HealthRequest{}}).size(), kRequestHeaderBytes);
    EXPECT_EQ(encode(Request{1, AddSessionRequest{sample_spec()}}).size(),
              kRequestHeaderBytes + kSessionSpecBytes);
    EXPECT_EQ(encode(Request{1, UpdateSessionRequest{SessionUpdate{1}}}).size(),
              kRequestHeaderBytes + kSessionUpdateBytes);
    EXPECT_EQ(encode(Request{1, ListSessionsRequest{}}).size(), kRequestHeaderBytes + 12);
    EXPECT_EQ(encode(Response{1, MsgType::get_session, Status::ok, "", SessionReply{}}).size(),
              kResponseHeaderBytes + 2 + kSessionStatsBytes);
}

TEST(IpcProtocol, FullListPageFitsOneDatagram) {
    ListSessionsReply page;
    for (uint64_t id = 1; id <= kMaxListPage; ++id) page.sessions.push_back(sample_stats(id));
    page.more = true;
    Response response{12, MsgType::list_sessions, Status::ok, std::string(kMaxErrorBytes, 'e'),
                      page};
    Bytes bytes = encode(response);
    EXPECT_EQ(bytes.size(), kMaxListReplyBytes);
    EXPECT_LE(bytes.size(), kMaxMessageBytes);
    auto decoded = decode_response(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(*decoded, response);
}

TEST(IpcProtocol, EncodeRefusesWhatCannotBeDecoded) {
    ListSessionsReply too_long;
    too_long.sessions.resize(kMaxListPage + 1);
    EXPECT_THROW(encode(Response{1, MsgType::list_sessions, Status::ok, "", too_long}),
                 std::length_error);
    HealthReply too_many_addresses;
    too_many_addresses.relay_addresses.resize(kMaxRelayAddresses + 1);
    EXPECT_THROW(encode(Response{1, MsgType::health, Status::ok, "", too_many_addresses}),
                 std::length_error);
    // A body that does not belong to the request type.
    EXPECT_THROW(encode(Response{1, MsgType::get_session, Status::ok, "", EmptyReply{}}),
                 std::invalid_argument);
    EXPECT_THROW(encode(Response{1, MsgType::add_session, Status::ok, "", HealthReply{}}),
                 std::invalid_argument);
    EXPECT_THROW(encode(Response{1, MsgType{99}, Status::ok, "", EmptyReply{}}),
                 std::invalid_argument);
}

TEST(IpcProtocol, LongErrorTextIsCutToTheMaximum) {
    Response response{1, MsgType::health, Status::internal, std::string(5000, 'x'), {}};
    auto decoded = decode_response(encode(response));
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(decoded->error, std::string(kMaxErrorBytes, 'x'));
}

TEST(IpcProtocol, BoundaryValuesAreAccepted) {
    SessionSpec spec = sample_spec();
    spec.idle_timeout_s = 1;
    spec.relay_port = 65535;
    spec.policy = LatchPolicy::wireguard;
    spec.sides[0].allowed_source.len = 0;
    spec.sides[1].allowed_source.len = 32;
    EXPECT_TRUE(decode_request(encoded_add(spec)).ok());
    spec.idle_timeout_s = kMaxIdleTimeoutS;
    EXPECT_TRUE(decode_request(encoded_add(spec)).ok());
    EXPECT_TRUE(decode_request(encode(Request{1, ListSessionsRequest{0, 1}})).ok());
    EXPECT_TRUE(decode_request(encode(Request{1, ListSessionsRequest{0, kMaxListPage}})).ok());
}

TEST(IpcProtocol, TypeOfAndToStringNameEveryValue) {
    const std::vector<std::pair<RequestBody, std::string>> bodies = {
        {HealthRequest{}, "health"},
        {AddSessionRequest{}, "add_session"},
        {UpdateSessionRequest{}, "update_session"},
        {RemoveSessionRequest{}, "remove_session"},
        {GetSessionRequest{}, "get_session"},
        {ListSessionsRequest{}, "list_sessions"},
    };
    for (const auto& [body, name] : bodies) EXPECT_EQ(to_string(type_of(body)), name);
    EXPECT_STREQ(to_string(MsgType{99}), "unknown");
    EXPECT_STREQ(to_string(Status::ok), "ok");
    EXPECT_STREQ(to_string(Status::unknown_address), "unknown_address");
    EXPECT_STREQ(to_string(Status::internal), "internal");
    EXPECT_STREQ(to_string(Status{200}), "unknown");
}

// ---------------------------------------------------------------- robustness

std::vector<Bytes> every_sample_message() {
    std::vector<Bytes> all;
    for (const Request& r : sample_requests()) all.push_back(encode(r));
    for (const Response& r : sample_responses()) all.push_back(encode(r));
    return all;
}

TEST(IpcProtocol, EveryTruncationIsRejected) {
    for (const Bytes& message : every_sample_message()) {
        for (size_t length = 0; length < message.size(); ++length) {
            // A copy of exactly `length` bytes, so that a read past it is caught by ASan.
            Bytes prefix(message.begin(), message.begin() + static_cast<ptrdiff_t>(length));
            EXPECT_FALSE(decode_request(prefix).ok()) << "length " << length;
            EXPECT_FALSE(decode_response(prefix).ok()) << "length " << length;
        }
    }
}

TEST(IpcProtocol, EveryBitFlipDecodesCanonicallyOrIsRejected) {
    size_t decoded_count = 0, rejected_count = 0;
    for (const Bytes& message : every_sample_message()) {
        for (size_t bit = 0; bit < message.size() * 8; ++bit) {
            Bytes flipped = message;
            flipped[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
            // Whatever decodes must be the one encoding of what it decoded to: the format has no
            // slack (padding, loose booleans, ignored flags) for a flipped bit to hide in.
            if (auto request = decode_request(flipped); request.ok()) {
                EXPECT_EQ(encode(*request), flipped) << "bit " << bit;
                ++decoded_count;
            } else {
                EXPECT_FALSE(request.error().message.empty());
                ++rejected_count;
            }
            if (auto response = decode_response(flipped); response.ok()) {
                EXPECT_EQ(encode(*response), flipped) << "bit " << bit;
                ++decoded_count;
            } else {
                EXPECT_FALSE(response.error().message.empty());
                ++rejected_count;
            }
        }
    }
    EXPECT_GT(decoded_count, 0u);  // flips in counters and keys decode to other values
    EXPECT_GT(rejected_count, 0u);
}

// ---------------------------------------------------------------- specific rejections

TEST(IpcProtocol, RejectsBadMagicWithoutEchoing) {
    Bytes bytes = encode(Request{33, HealthRequest{}});
    bytes[0] = 'X';
    expect_request_rejected(bytes, Status::malformed, "magic");
    EXPECT_EQ(decode_request(bytes).error().request_id, 0u);
    EXPECT_EQ(decode_request(bytes).error().type, MsgType{0});
    expect_request_rejected({'R', 'D'}, Status::malformed, "magic");
    expect_request_rejected({}, Status::malformed, "magic");
}

TEST(IpcProtocol, RejectsVersion3AndEchoesIdAndType) {
    Bytes bytes = encode(Request{0x0a0b0c0d, GetSessionRequest{1}});
    put_be16(bytes, kVersionAt, 3);
    expect_request_rejected(bytes, Status::unsupported_version, "version");
    auto error = decode_request(bytes).error();
    EXPECT_EQ(error.request_id, 0x0a0b0c0du);
    EXPECT_EQ(error.type, MsgType::get_session);
    // A future version's header may be longer: the echo needs only the first 14 bytes.
    Bytes short_future(bytes.begin(), bytes.begin() + kEchoableHeaderBytes);
    expect_request_rejected(short_future, Status::unsupported_version, "version");
    EXPECT_EQ(decode_request(short_future).error().request_id, 0x0a0b0c0du);
}

TEST(IpcProtocol, RejectsUnknownType99AndEchoesIt) {
    Bytes bytes = encode(Request{17, HealthRequest{}});
    put_be16(bytes, kTypeAt, 99);
    expect_request_rejected(bytes, Status::unknown_type, "type");
    auto error = decode_request(bytes).error();
    EXPECT_EQ(error.request_id, 17u);
    EXPECT_EQ(error.type, MsgType{99});
    put_be16(bytes, kTypeAt, 0);
    expect_request_rejected(bytes, Status::unknown_type, "type");
}

TEST(IpcProtocol, ErrorResponseEchoesTheDecodeError) {
    Bytes bytes = encode(Request{17, HealthRequest{}});
    put_be16(bytes, kTypeAt, 99);
    Response reply = error_response(decode_request(bytes).error());
    EXPECT_EQ(reply.request_id, 17u);
    EXPECT_EQ(reply.type, MsgType{99});
    EXPECT_EQ(reply.status, Status::unknown_type);
    EXPECT_NE(reply.error.find("type"), std::string::npos);
    // The client can decode it although the type is not one it knows.
    auto decoded = decode_response(encode(reply));
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(*decoded, reply);
}

TEST(IpcProtocol, RejectsWrongFlags) {
    Bytes request = encode(Request{1, HealthRequest{}});
    put_be16(request, kFlagsAt, kFlagResponse);
    expect_request_rejected(request, Status::malformed, "flags");
    put_be16(request, kFlagsAt, 0x8000);
    expect_request_rejected(request, Status::malformed, "flags");

    Bytes response = encode(Response{1, MsgType::add_session, Status::ok, "", {}});
    put_be16(response, kFlagsAt, 0);
    expect_response_rejected(response, Status::malformed, "flags");
    // A request is never taken for a response, nor the other way round.
    expect_response_rejected(encode(Request{1, HealthRequest{}}), Status::malformed, "flags");
    expect_request_rejected(encode(Response{1, MsgType::health, Status::busy, "", {}}),
                            Status::malformed, "flags");
}

TEST(IpcProtocol, RejectsLatchPolicy3) {
    SessionSpec spec = sample_spec();
    spec.policy = static_cast<LatchPolicy>(3);
    expect_request_rejected(encoded_add(spec), Status::invalid_argument, "policy");
    spec.policy = static_cast<LatchPolicy>(0);
    expect_request_rejected(encoded_add(spec), Status::invalid_argument, "policy");
}

TEST(IpcProtocol, RejectsPrefixLength33) {
    SessionSpec spec = sample_spec();
    spec.sides[1].allowed_source.len = 33;
    expect_request_rejected(encoded_add(spec), Status::invalid_argument,
                            "sides[1].allowed_source.len");
    SessionUpdate update{1};
    update.allowed_source[0].len = 33;
    expect_request_rejected(encode(Request{1, UpdateSessionRequest{update}}),
                            Status::invalid_argument, "allowed_source[0].len");
}

TEST(IpcProtocol, RejectsRelayPort0) {
    SessionSpec spec = sample_spec();
    spec.relay_port = 0;
    expect_request_rejected(encoded_add(spec), Status::invalid_argument, "relay_port");
}

TEST(IpcProtocol, RejectsSessionId0) {
    expect_request_rejected(encoded_add(sample_spec(0)), Status::invalid_argument, "spec.id");
    expect_request_rejected(encode(Request{1, UpdateSessionRequest{SessionUpdate{0}}}),
                            Status::invalid_argument, "update.id");
    expect_request_rejected(encode(Request{1, RemoveSessionRequest{0}}), Status::invalid_argument,
                            "remove_session.id");
    expect_request_rejected(encode(Request{1, GetSessionRequest{0}}), Status::invalid_argument,
                            "get_session.id");
    // A reported session is a valid spec too.
    Response reply{1, MsgType::get_session, Status::ok, "", SessionReply{sample_stats(0)}};
    expect_response_rejected(encode(reply), Status::invalid_argument, "session.spec.id");
}

TEST(IpcProtocol, RejectsIdleTimeout0And86401) {
    for (uint32_t idle : {0u, 86401u, 0xffffffffu}) {
        SessionSpec spec = sample_spec();
        spec.idle_timeout_s = idle;
        expect_request_rejected(encoded_add(spec), Status::invalid_argument, "idle_timeout_s");
        SessionUpdate update{1};
        update.idle_timeout_s = idle;
        expect_request_rejected(encode(Request{1, UpdateSessionRequest{update}}),
                                Status::invalid_argument, "update.idle_timeout_s");
    }
}

TEST(IpcProtocol, RejectsListMaxCount0And129) {
    for (uint32_t max_count : {0u, kMaxListPage + 1, 0xffffffffu}) {
        expect_request_rejected(encode(Request{1, ListSessionsRequest{0, max_count}}),
                                Status::invalid_argument, "max_count");
    }
}

TEST(IpcProtocol, RejectsTrailingByte) {
    for (const Request& request : sample_requests()) {
        Bytes bytes = encode(request);
        bytes.push_back(0);
        put_be32(bytes, kBodyLengthAt, get_be32(bytes, kBodyLengthAt) + 1);  // an honest length
        expect_request_rejected(bytes, Status::malformed, "trailing");
    }
    Bytes response = encode(Response{1, MsgType::remove_session, Status::ok, "", {}});
    response.push_back(0);
    put_be32(response, kBodyLengthAt, get_be32(response, kBodyLengthAt) + 1);
    expect_response_rejected(response, Status::malformed, "trailing");
}

TEST(IpcProtocol, RejectsLyingBodyLength) {
    Bytes bytes = encode(Request{1, AddSessionRequest{sample_spec()}});
    const uint32_t honest = get_be32(bytes, kBodyLengthAt);
    for (uint32_t lie : {honest - 1, honest + 1, 0u, 0xffffffffu}) {
        put_be32(bytes, kBodyLengthAt, lie);
        expect_request_rejected(bytes, Status::malformed, "body_length");
        EXPECT_EQ(decode_request(bytes).error().request_id, 1u);
        EXPECT_EQ(decode_request(bytes).error().type, MsgType::add_session);
    }
    // A body length that agrees with a body too short for the type: a truncated field.
    Bytes short_body(bytes.begin(), bytes.begin() + kRequestHeaderBytes + 20);
    put_be32(short_body, kBodyLengthAt, 20);
    expect_request_rejected(short_body, Status::malformed, "add_session.spec.sides[0].public_key");
}

TEST(IpcProtocol, RejectsMessagesLargerThanTheMaximum) {
    Bytes bytes = encode(Request{1, HealthRequest{}});
    bytes.resize(kMaxMessageBytes + 1);
    put_be32(bytes, kBodyLengthAt, static_cast<uint32_t>(bytes.size() - kRequestHeaderBytes));
    expect_request_rejected(bytes, Status::malformed, "larger than 65536");
}

TEST(IpcProtocol, RejectsCountsAboveTheirMaxima) {
    // The count is checked before anything is read or allocated for it.
    HealthReply health;
    health.relay_addresses.resize(kMaxRelayAddresses);
    Bytes bytes = encode(Response{1, MsgType::health, Status::ok, "", health});
    const size_t count_at = kResponseHeaderBytes + 2 + 32;
    put_be16(bytes, count_at, kMaxRelayAddresses + 1);
    expect_response_rejected(bytes, Status::invalid_argument, "address_count");

    bytes = encode(Response{1, MsgType::list_sessions, Status::ok, "", ListSessionsReply{}});
    put_be16(bytes, kResponseHeaderBytes + 2, kMaxListPage + 1);
    expect_response_rejected(bytes, Status::invalid_argument, "list.count");

    bytes = encode(Response{1, MsgType::health, Status::internal, "", {}});
    put_be16(bytes, kResponseHeaderBytes, kMaxErrorBytes + 1);
    expect_response_rejected(bytes, Status::invalid_argument, "error_length");
}

TEST(IpcProtocol, RejectsResponseFieldsOutOfRange) {
    Bytes bytes = encode(Response{1, MsgType::add_session, Status::ok, "", {}});
    put_be16(bytes, kResponseHeaderBytes - 2, 11);  // status
    expect_response_rejected(bytes, Status::invalid_argument, "status");

    // An ok reply must be to a known type (only error replies echo unknown ones).
    bytes = encode(Response{1, MsgType::add_session, Status::ok, "", {}});
    put_be16(bytes, kTypeAt, 99);
    expect_response_rejected(bytes, Status::unknown_type, "type");

    // Booleans are 0 or 1.
    bytes = encode(Response{1, MsgType::list_sessions, Status::ok, "", ListSessionsReply{}});
    bytes[kResponseHeaderBytes + 2 + 2] = 2;
    expect_response_rejected(bytes, Status::malformed, "list.more");

    // Version of a response.
    bytes = encode(Response{1, MsgType::add_session, Status::ok, "", {}});
    put_be16(bytes, kVersionAt, 3);
    expect_response_rejected(bytes, Status::unsupported_version, "version");
}

TEST(IpcProtocol, PeekHeaderNeedsMagicAndFourteenBytes) {
    Bytes bytes = encode(Request{0x55667788, RemoveSessionRequest{3}});
    auto echo = peek_header(bytes);
    ASSERT_TRUE(echo.has_value());
    EXPECT_EQ(echo->request_id, 0x55667788u);
    EXPECT_EQ(echo->type, MsgType::remove_session);
    EXPECT_FALSE(peek_header(std::span(bytes).first(kEchoableHeaderBytes - 1)).has_value());
    EXPECT_TRUE(peek_header(std::span(bytes).first(kEchoableHeaderBytes)).has_value());
    bytes[3] = 'Q';
    EXPECT_FALSE(peek_header(bytes).has_value());
}

}  // namespace
}  // namespace relay::ipc

// libFuzzer target: the control <-> data plane IPC codec (relay/ipc/dataplane_protocol.hpp).
// The data plane decodes whatever reaches its socket; control decodes the replies.
// Checked: decoding never crashes or over-reads; whatever decodes encodes back to the
// same bytes (the codec accepts one encoding of each message) and decodes again to an
// equal message; the error reply to an undecodable request fits one datagram.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "relay/ipc/dataplane_protocol.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
    std::fprintf(stderr, "INVARIANT VIOLATED: %s\n", what);
    std::abort();
}

template <typename Decoded>
void round_trip(const Decoded& m, std::span<const uint8_t> in,
                bool (*again)(const std::vector<uint8_t>&, const Decoded&)) {
    const std::vector<uint8_t> bytes = relay::ipc::encode(m);
    if (bytes.size() > relay::ipc::kMaxMessageBytes)
        violated("an accepted message re-encodes larger than a datagram");
    if (!std::equal(bytes.begin(), bytes.end(), in.begin(), in.end()))
        violated("an accepted message re-encodes to other bytes");
    if (!again(bytes, m)) violated("a re-encoded message does not decode to the same message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace relay::ipc;
    const std::span<const uint8_t> in(data, size);

    auto request = decode_request(in);
    if (request) {
        round_trip<Request>(*request, in, [](const std::vector<uint8_t>& b, const Request& m) {
            auto d = decode_request(b);
            return d && *d == m;
        });
    } else {
        const Response reply = error_response(request.error());
        if (encode(reply).size() > kMaxMessageBytes)
            violated("an error reply larger than a datagram");
    }

    auto response = decode_response(in);
    if (response) {
        round_trip<Response>(*response, in, [](const std::vector<uint8_t>& b, const Response& m) {
            auto d = decode_response(b);
            return d && *d == m;
        });
    }
    return 0;
}

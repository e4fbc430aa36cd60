// libFuzzer target: STUN (relay/wire/stun.hpp), the server side relay-control runs on
// every datagram to its ports and the client side relay-peer runs on answers.
// Checked: no crash or over-read; a request that parses gets a response within
// response_size_limit (never more than the request, but for the documented 32-byte
// minimum), which the client side parses back to the observed address; looks_like_stun
// holds for every request that parses.
#include <algorithm>
#include <cstdint>
#include <span>

#include "fuzz_check.hpp"
#include "relay/wire/stun.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace relay;
    using namespace relay::wire::stun;
    const std::span<const uint8_t> in(data, size);

    TransactionId asked{};
    if (size >= kHeaderLen) std::copy(data + 8, data + 20, asked.begin());
    (void)parse_binding_success(in, asked);

    auto request = parse_binding_request(in);
    if (!request) return 0;
    FUZZ_CHECK(looks_like_stun(in), "a parsed request fails looks_like_stun");
    FUZZ_CHECK(request->length == size, "the parsed length is not the datagram's");
    FUZZ_CHECK(std::equal(asked.begin(), asked.end(), request->transaction.begin()),
               "the transaction id is not the header's");
    const size_t limit = response_size_limit(*request);
    FUZZ_CHECK(limit <= std::max(size, kMinResponseLen), "a response budget above the request");
    // The observed address comes from the last bytes, so the fuzzer varies it too.
    SocketAddress observed{0xc6336401, 3478};
    if (size >= 6) {
        observed.ip = uint32_t{data[size - 6]} << 24 | uint32_t{data[size - 5]} << 16 |
                      uint32_t{data[size - 4]} << 8 | data[size - 3];
        observed.port = static_cast<uint16_t>(data[size - 2] << 8 | data[size - 1]);
    }
    auto response = make_binding_success(request->transaction, observed, limit);
    FUZZ_CHECK(response.has_value(), "no response within the budget of a valid request");
    FUZZ_CHECK(response->size() <= limit, "a response over its budget");
    auto seen = parse_binding_success(*response, request->transaction);
    FUZZ_CHECK(seen && *seen == observed, "our own response does not parse back");
    return 0;
}

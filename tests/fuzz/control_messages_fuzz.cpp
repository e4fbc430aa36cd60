// libFuzzer target: the plaintext codec of the control messages
// (relay/control/messages.hpp), which relay-control runs on every opened request and
// relay-peer on every opened reply.  Checked: decoding never crashes, over-reads or
// throws; whatever decodes encodes back to the same bytes (one encoding per message),
// within kMaxPlainLen, and peek_timestamp agrees with the decoded header.
#include <algorithm>
#include <cstdint>
#include <span>

#include "fuzz_check.hpp"
#include "relay/control/messages.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace relay::control;
    const std::span<const uint8_t> in(data, size);
    const std::optional<uint64_t> timestamp = peek_timestamp(in);
    auto m = decode(in);
    if (!m) {
        FUZZ_CHECK(to_string(m.error()) != nullptr, "a decode error without a name");
        return 0;
    }
    FUZZ_CHECK(timestamp && *timestamp == m->timestamp_ms,
               "peek_timestamp disagrees with the decoded timestamp");
    FUZZ_CHECK(size <= kMaxPlainLen, "a message larger than kMaxPlainLen decoded");
    const std::vector<uint8_t> again = encode(*m);  // throws only on a caller bug
    FUZZ_CHECK(std::equal(again.begin(), again.end(), in.begin(), in.end()),
               "a decoded message encodes to other bytes");
    return 0;
}

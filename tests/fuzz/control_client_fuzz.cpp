// libFuzzer target: relay-peer's control client (relay/peer/control_client.hpp),
// ControlClient::open, through which every datagram from the server passes (receive()
// reads the socket and hands the bytes to it).  Keys are fixed (fuzz_keys.hpp), so
// that the input can hold plaintexts the target seals as the server would.
//
// Input: records  ctl:u8 len:u16le bytes[len], each one datagram:
//   ctl & 1: the bytes are a plaintext, sealed as a reply by the server (else sent as is)
//   ctl & 2: with ctl & 1: the plaintext's timestamp is set to now first
//   ctl & 4: the previous datagram again instead (a replay)
// Checked: no crash; what opens equals decoding the opened envelope; a notification
// opens only with a fresh timestamp, and never twice.
#include <cstdint>
#include <cstring>
#include <set>
#include <span>
#include <vector>

#include "fuzz_check.hpp"
#include "fuzz_keys.hpp"
#include "relay/control/envelope.hpp"
#include "relay/control/messages.hpp"
#include "relay/peer/control_client.hpp"
#include "relay/wire/headers.hpp"

namespace {

using namespace relay;
using namespace relay::control;
using relay::fuzz::agent_keys;
using relay::fuzz::agent_server_key;
using relay::fuzz::server_keys;

constexpr size_t kMaxDatagrams = 32;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    peer::ControlEndpoint server;
    server.address = 0x7f000001;
    server.server_key = server_keys().public_key;
    auto client = peer::ControlClient::open(agent_keys(), server, {0x7f000001, 0});
    FUZZ_CHECK(client.ok(), "cannot open the control client");

    std::vector<uint8_t> previous;
    std::set<std::vector<uint8_t>> notifications_opened;
    size_t at = 0;
    for (size_t n = 0; n < kMaxDatagrams && at + 3 <= size; ++n) {
        const uint8_t ctl = data[at];
        size_t len = static_cast<size_t>(data[at + 1]) | static_cast<size_t>(data[at + 2]) << 8;
        at += 3;
        len = std::min(len, size - at);
        std::vector<uint8_t> bytes(data + at, data + at + len);
        at += len;

        std::vector<uint8_t> datagram;
        if (ctl & 4) {
            datagram = previous;
        } else if (ctl & 1) {
            if ((ctl & 2) && bytes.size() >= kPlainHeaderLen) {
                uint8_t now[8];
                const uint64_t ms = peer::unix_ms_now();
                for (int i = 0; i < 8; ++i) now[i] = static_cast<uint8_t>(ms >> (56 - 8 * i));
                std::memcpy(bytes.data() + 1, now, 8);
            }
            datagram = seal_reply(agent_server_key(), bytes);
        } else {
            datagram = std::move(bytes);
        }
        previous = datagram;

        auto m = client->open(datagram);
        if (!m) continue;
        auto plain = open_reply(datagram, agent_server_key());
        FUZZ_CHECK(plain.ok(), "the client accepted what does not open");
        auto decoded = decode(*plain);
        FUZZ_CHECK(decoded && *decoded == *m, "the client's message is not the decoded plaintext");
        if (m->request_id == 0) {
            const uint64_t now = peer::unix_ms_now();
            const uint64_t skew =
                m->timestamp_ms > now ? m->timestamp_ms - now : now - m->timestamp_ms;
            FUZZ_CHECK(skew <= 31'000, "a notification with a stale timestamp opened");
            FUZZ_CHECK(notifications_opened.insert(datagram).second,
                       "the same notification opened twice");
        }
    }
    return 0;
}

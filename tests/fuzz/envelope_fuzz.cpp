// libFuzzer target: the sealed envelope (relay/control/envelope.hpp) as relay-control
// opens requests and relay-peer opens replies, with fixed keys (fuzz_keys.hpp).
// The first byte picks what the rest is:
//   0: a datagram to the server: peek the sender, derive its shared key, open, decode
//   1: a datagram to the agent: open it as a reply, read its nonce, decode
//   2: a plaintext, sealed as a request by the agent, then opened by the server as above
//   3: a plaintext, sealed as a reply by the server, then opened by the agent
// Modes 2 and 3 reach the inner decoder with any plaintext (a MAC cannot be forged).
// Checked: no crash; opening what was sealed gives the plaintext back (when the sealed
// datagram is within kMaxEnvelopeLen, else it is refused as too_long); a datagram that
// opens has a well-formed header by peek_request / reply_nonce too.
#include <algorithm>
#include <cstdint>
#include <span>

#include "fuzz_check.hpp"
#include "fuzz_keys.hpp"
#include "relay/control/envelope.hpp"
#include "relay/control/messages.hpp"

namespace {

using namespace relay;
using namespace relay::control;
using relay::fuzz::agent_keys;
using relay::fuzz::agent_server_key;
using relay::fuzz::server_keys;

// What relay-control does with a datagram that looks like an envelope.
std::optional<std::vector<uint8_t>> server_opens(std::span<const uint8_t> datagram) {
    auto header = peek_request(datagram);
    if (!header) return std::nullopt;
    std::optional<SharedKey> key;
    if (header->sender == agent_keys().public_key)
        key = agent_server_key();
    else
        key = shared_key(header->sender, server_keys().secret_key);
    if (!key) return std::nullopt;
    auto plain = open_request(datagram, *key);
    if (!plain) return std::nullopt;
    FUZZ_CHECK(datagram.size() <= kMaxEnvelopeLen, "an envelope over kMaxEnvelopeLen opened");
    FUZZ_CHECK(plain->size() + kRequestOverhead == datagram.size(),
               "an opened request's plaintext has the wrong size");
    (void)decode(*plain);
    return std::move(*plain);
}

std::optional<std::vector<uint8_t>> agent_opens(std::span<const uint8_t> datagram) {
    auto plain = open_reply(datagram, agent_server_key());
    if (!plain) return std::nullopt;
    FUZZ_CHECK(reply_nonce(datagram).has_value(), "an opened reply without a readable nonce");
    FUZZ_CHECK(datagram.size() <= kMaxEnvelopeLen, "an envelope over kMaxEnvelopeLen opened");
    (void)decode(*plain);
    return std::move(*plain);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::span<const uint8_t> rest(data + 1, size - 1);
    switch (data[0] & 3) {
        case 0:
            (void)looks_like_envelope(rest);
            server_opens(rest);
            break;
        case 1:
            (void)reply_nonce(rest);
            agent_opens(rest);
            break;
        case 2: {
            const auto sealed = seal_request(agent_keys().public_key, agent_server_key(), rest);
            FUZZ_CHECK(looks_like_envelope(sealed), "a sealed request does not look like one");
            const auto opened = server_opens(sealed);
            FUZZ_CHECK(opened.has_value() == (sealed.size() <= kMaxEnvelopeLen),
                       "a sealed request did not open (or opened while too long)");
            if (opened)
                FUZZ_CHECK(std::equal(opened->begin(), opened->end(), rest.begin(), rest.end()),
                           "a request opened to another plaintext");
            break;
        }
        case 3: {
            const auto sealed = seal_reply(agent_server_key(), rest);
            const auto opened = agent_opens(sealed);
            FUZZ_CHECK(opened.has_value() == (sealed.size() <= kMaxEnvelopeLen),
                       "a sealed reply did not open (or opened while too long)");
            if (opened)
                FUZZ_CHECK(std::equal(opened->begin(), opened->end(), rest.begin(), rest.end()),
                           "a reply opened to another plaintext");
            break;
        }
    }
    return 0;
}

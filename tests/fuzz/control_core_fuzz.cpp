// libFuzzer target: relay-control's protocol core (control/src/control_core.hpp), which
// gets every datagram that reaches the control ports: STUN, WireGuard probes and sealed
// messages.  It runs on the control tests' harness (tests/control/core_harness.hpp) with
// fixed keys: peers A and B registered in network "alpha", and a stranger with a key of
// its own (no registration unless the input registers it).
//
// Input: records  ctl:u8 len:u16le bytes[len], each one datagram:
//   ctl & 0x01: to control port 1 (else 0)
//   ctl & 0x06: from (0) A's source, (1) B's source, (2) 198.18.0.66:6666, (3) 198.18.0.67:7777
//   ctl & 0x18: the bytes are (0) the datagram itself, else a plaintext sealed by
//               (1) A, (2) B, (3) the stranger
//   ctl & 0x20: with a plaintext: its timestamp set to now first
//   ctl & 0x40: one second passes first;  ctl & 0x80: the timers run after it
// Checked: no crash; a datagram nobody could have sealed (raw bytes, or sealed by a key
// that is not registered) is answered only to its source, with no more bytes than it had
// (32 for a STUN request shorter than that: the documented minimum response).
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "core_harness.hpp"
#include "fuzz_check.hpp"
#include "fuzz_keys.hpp"
#include "relay/wire/stun.hpp"

namespace {

using namespace relay;
using namespace relay::control;
using namespace relay::control::testing;

constexpr size_t kMaxDatagrams = 32;
constexpr SocketAddress kStrangers[2] = {{ip4(198, 18, 0, 66), 6666}, {ip4(198, 18, 0, 67), 7777}};

// The fixed cast: server keys from fuzz_keys.hpp, peers' keys from fixed seeds.
struct Cast {
    Harness h;
    TestPeer a, b, stranger;

    static TestPeer peer(Harness& h, uint8_t seed, SocketAddress source) {
        TestPeer p(h.server.public_key, source, Mapping::endpoint_independent, h.token("alpha"),
                   fuzz::key_pair_from(seed));
        p.wg = fuzz::key_pair_from(seed + 1);
        p.probe = fuzz::key_pair_from(seed + 2);
        return p;
    }
    static Harness& fixed(Harness& h) {
        h.server = fuzz::server_keys();
        h.restart_control();
        return h;
    }
    Cast()
        : a(peer(fixed(h), 0x0a, {ip4(203, 0, 113, 10), 20020})),
          b(peer(h, 0x0b, {ip4(203, 0, 113, 11), 20022})),
          stranger(peer(h, 0x0c, kStrangers[0])) {
        h.register_peer(a);
        h.register_peer(b);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Cast cast;
    Harness& h = cast.h;
    size_t at = 0;
    for (size_t n = 0; n < kMaxDatagrams && at + 3 <= size; ++n) {
        const uint8_t ctl = data[at];
        size_t len = static_cast<size_t>(data[at + 1]) | static_cast<size_t>(data[at + 2]) << 8;
        at += 3;
        len = std::min(len, size - at);
        std::vector<uint8_t> bytes(data + at, data + at + len);
        at += len;

        if (ctl & 0x40) h.now += 1000;
        const uint8_t port = ctl & 1;
        const int who = (ctl >> 1) & 3;
        const SocketAddress from = who == 0   ? cast.a.source[port]
                                   : who == 1 ? cast.b.source[port]
                                              : kStrangers[who - 2];
        const int sealer = (ctl >> 3) & 3;
        std::vector<uint8_t> datagram;
        bool authenticated = false;
        if (sealer == 0) {
            datagram = std::move(bytes);
        } else {
            TestPeer& p = sealer == 1 ? cast.a : sealer == 2 ? cast.b : cast.stranger;
            if ((ctl & 0x20) && bytes.size() >= kPlainHeaderLen)
                for (int i = 0; i < 8; ++i)
                    bytes[1 + i] = static_cast<uint8_t>(h.now >> (56 - 8 * i));
            datagram = seal_request(p.agent.public_key, p.shared, bytes);
            authenticated = h.core->peers().count(p.agent.public_key) != 0;
        }

        Outbox out = h.deliver(port, from, datagram);
        if (!authenticated) {
            size_t to_source = 0;
            for (const OutDatagram& d : out) {
                FUZZ_CHECK(d.to == from, "an unauthenticated datagram made control send elsewhere");
                to_source += d.bytes.size();
            }
            const size_t budget = std::max(datagram.size(), wire::stun::looks_like_stun(datagram)
                                                                ? wire::stun::kMinResponseLen
                                                                : size_t{0});
            FUZZ_CHECK(to_source <= budget,
                       "an unauthenticated datagram got more bytes back than it had");
        }
        if (ctl & 0x80) h.tick();
    }
    return 0;
}

// libFuzzer target: parsing `wg show IF dump` (peer/src/wg_interface.hpp,
// parse_wg_dump), whose endpoints are whatever addresses WireGuard last heard from.
// Checked: no crash; a parsed state, printed again as wg prints it, parses to the same
// state; every peer's key text decodes to its key.
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "relay/control/credentials.hpp"
#include "wg_interface.hpp"

namespace {

using namespace relay;
using namespace relay::peer;

std::string render(const WgState& s) {
    std::string out = "(hidden)\t" + control::key_to_base64(s.public_key) + "\t" +
                      std::to_string(s.listen_port) + "\toff\n";
    for (const WgPeer& p : s.peers) {
        out += p.key_text + "\t(none)\t" +
               (p.endpoint ? format_socket_address(*p.endpoint) : std::string("(none)")) + "\t" +
               (p.allowed_ips.empty() ? std::string("(none)") : p.allowed_ips) + "\t" +
               std::to_string(p.latest_handshake_s) + "\t" + std::to_string(p.rx_bytes) + "\t0\t" +
               (p.persistent_keepalive_s ? std::to_string(p.persistent_keepalive_s) : "off") + "\n";
    }
    return out;
}

bool same(const WgState& a, const WgState& b) {
    if (a.public_key != b.public_key || a.listen_port != b.listen_port ||
        a.peers.size() != b.peers.size())
        return false;
    for (size_t i = 0; i < a.peers.size(); ++i) {
        const WgPeer &x = a.peers[i], &y = b.peers[i];
        if (x.key != y.key || x.key_text != y.key_text || x.endpoint != y.endpoint ||
            x.allowed_ips != y.allowed_ips || x.latest_handshake_s != y.latest_handshake_s ||
            x.rx_bytes != y.rx_bytes || x.persistent_keepalive_s != y.persistent_keepalive_s)
            return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    auto state = parse_wg_dump(text);
    if (!state) return 0;
    for (const WgPeer& p : state->peers) {
        auto key = control::key_from_base64(p.key_text);
        FUZZ_CHECK(key && *key == p.key, "a peer's key text does not decode to its key");
    }
    auto again = parse_wg_dump(render(*state));
    FUZZ_CHECK(again && same(*state, *again), "a parsed dump printed again parses differently");
    return 0;
}

// The WireGuard interface the agent drives, through wg(8) only (so the same calls work
// with the kernel module and with wireguard-go): `wg show IF dump` to read it, `wg set`
// to change a peer.  Errors carry wg's own message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/net.hpp"
#include "relay/result.hpp"
#include "relay/session.hpp"

namespace relay::peer {

struct WgPeer {
    PublicKey key{};
    std::string key_text;  // base64, as wg prints it
    std::optional<SocketAddress> endpoint;
    std::string allowed_ips;          // comma-separated, as wg prints it ("(none)" -> "")
    uint64_t latest_handshake_s = 0;  // Unix seconds; 0 = never
    uint64_t rx_bytes = 0;            // received from it, handshake messages included
    uint32_t persistent_keepalive_s = 0;
};

struct WgState {
    PublicKey public_key{};
    uint16_t listen_port = 0;
    std::vector<WgPeer> peers;
};

// Parses `wg show IF dump` output (for tests too).
Result<WgState, std::string> parse_wg_dump(const std::string& text);

class WgInterface {
  public:
    WgInterface(std::string name, std::string wg_program = "wg")
        : name_(std::move(name)), wg_(std::move(wg_program)) {}

    Result<WgState, std::string> read() const;
    // Points a peer at `endpoint` with a keepalive; allowed_ips empty = leave them as they are.
    Result<bool, std::string> set_endpoint(const std::string& key_text, SocketAddress endpoint,
                                           uint32_t keepalive_s,
                                           const std::string& allowed_ips = "") const;
    // Removes a peer and adds it back (same allowed IPs) at a new endpoint: WireGuard then
    // forgets its session and handshakes afresh, which is what moves a relay latch.
    // Without an endpoint (and so with keepalives off) WireGuard sends nothing to it yet,
    // but answers an initiation from it (and roams to that initiation's source).
    Result<bool, std::string> reset_peer(const WgPeer& peer,
                                         std::optional<SocketAddress> endpoint = std::nullopt,
                                         uint32_t keepalive_s = 0) const;
    Result<bool, std::string> remove_peer(const std::string& key_text) const;
    const std::string& name() const { return name_; }

  private:
    Result<std::string, std::string> wg(const std::vector<std::string>& args) const;
    // `wg set IF ARGS...`
    Result<bool, std::string> set(std::vector<std::string> args) const;
    // `peer KEY [endpoint IP:PORT persistent-keepalive N|off] [allowed-ips LIST]`
    static std::vector<std::string> peer_args(const std::string& key_text,
                                              std::optional<SocketAddress> endpoint,
                                              uint32_t keepalive_s, const std::string& allowed_ips);
    std::string name_;
    std::string wg_;
};

}  // namespace relay::peer

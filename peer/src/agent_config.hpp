// relay-peer's YAML config (docs/OPERATIONS.md, "The peer agent").  Unknown keys and bad
// values are errors naming the key.
#pragma once

#include <stdexcept>
#include <string>

#include "relay/peer/control_client.hpp"

namespace relay::peer {

struct AgentConfig {
    std::string interface;                // the WireGuard interface it drives
    std::string key_file;                 // the agent's X25519 key (created, mode 0600, if missing)
    ControlEndpoint control;              // address, ports, server_public_key
    std::string token;                    // network credential (or from token_file)
    std::string status_socket;            // default /run/relay-peer/<interface>.sock
    uint32_t persistent_keepalive_s = 5;  // on connected peers: inside any NAT's timeout
    std::string wg_program = "wg";
};

class AgentConfigError : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

AgentConfig load_agent_config(const std::string& path);
AgentConfig parse_agent_config(const std::string& yaml_text, const std::string& source);

}  // namespace relay::peer

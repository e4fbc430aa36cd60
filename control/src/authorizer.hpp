// Decides which network a registering peer belongs to (BRIEF §5): a network token that
// verifies under an active secret of its network, or, without a token, the agent's key
// on a network's static allow-list.
#pragma once

#include <cstddef>
#include <string>

#include "relay/config.hpp"
#include "relay/control/messages.hpp"
#include "relay/result.hpp"
#include "relay/session.hpp"

namespace relay::control {

class Authorizer {
  public:
    explicit Authorizer(const std::vector<NetworkConfig>& networks) : networks_(networks) {}

    // The index of the peer's network in the config, or why it is refused.
    Result<size_t, ErrorCode> authorize(const std::string& token, const PublicKey& agent_key,
                                        uint64_t now_unix_s) const;

  private:
    const std::vector<NetworkConfig>& networks_;
};

}  // namespace relay::control

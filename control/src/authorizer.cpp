#include "authorizer.hpp"

#include <algorithm>

#include "relay/control/credentials.hpp"

namespace relay::control {

Result<size_t, ErrorCode> Authorizer::authorize(const std::string& token,
                                                const PublicKey& agent_key,
                                                uint64_t now_unix_s) const {
    if (token.empty()) {
        for (size_t i = 0; i < networks_.size(); ++i) {
            const auto& allowed = networks_[i].allowed_peers;
            if (std::find(allowed.begin(), allowed.end(), agent_key) != allowed.end()) return i;
        }
        return Unexpected{ErrorCode::not_allowed};
    }
    auto claims = parse_token(token);
    if (!claims) return Unexpected{ErrorCode::bad_token};
    for (size_t i = 0; i < networks_.size(); ++i) {
        const NetworkConfig& network = networks_[i];
        if (network.name != claims->network) continue;
        for (const NetworkSecretConfig& secret : network.secrets) {
            if (secret.id != claims->secret_id) continue;
            // A retired secret's tokens are refused like forged ones: rotation is done.
            if (secret.retired) return Unexpected{ErrorCode::bad_token};
            auto verified = verify_token(token, secret.value, now_unix_s);
            if (verified) return i;
            return Unexpected{verified.error() == TokenError::expired ? ErrorCode::token_expired
                                                                      : ErrorCode::bad_token};
        }
        return Unexpected{ErrorCode::bad_token};
    }
    return Unexpected{ErrorCode::unknown_network};
}

}  // namespace relay::control

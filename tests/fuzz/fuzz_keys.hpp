// Fixed key pairs of the control-protocol fuzz targets (envelope, control client) and
// of the seed generator, so that committed seeds stay openable.  Made from fixed
// secrets, never used anywhere else.
#pragma once

#include "relay/control/envelope.hpp"

namespace relay::fuzz {

inline control::KeyPair key_pair_from(uint8_t seed) {
    control::KeyPair k;
    for (size_t i = 0; i < k.secret_key.size(); ++i)
        k.secret_key[i] = static_cast<uint8_t>(seed + 7 * i);
    k.public_key = control::public_key_of(k.secret_key);
    return k;
}

inline const control::KeyPair& server_keys() {
    static const control::KeyPair k = key_pair_from(0x51);
    return k;
}
inline const control::KeyPair& agent_keys() {
    static const control::KeyPair k = key_pair_from(0xa9);
    return k;
}
// The shared key of agent and server (the same from either side).
inline const control::SharedKey& agent_server_key() {
    static const control::SharedKey k =
        *control::shared_key(server_keys().public_key, agent_keys().secret_key);
    return k;
}

}  // namespace relay::fuzz

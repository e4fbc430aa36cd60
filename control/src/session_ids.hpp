// Relay session ids that name their network (tenant isolation across control restarts).
//
// The data plane stores no network: after a control restart, the sessions read back
// (ControlCore::adopt) must still belong to the network that allocated them, or a peer
// of another network that registers the same (public) WireGuard keys could claim them.
// So an id carries its network: the high 32 bits are a tag, the first 4 bytes of a
// keyed BLAKE2b of the network's name under a key derived from the server's secret key
// (nobody else can compute a network's tag, and ids of two nodes differ); the low 32
// bits count from a random start.  Two networks whose tags collide (chance about
// n^2 / 2^33 for n networks) share an ambiguous tag: sessions read back with it belong
// to no network and are released when their adoption deadline passes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "relay/control/envelope.hpp"

namespace relay::control {

class SessionIds {
  public:
    SessionIds(const SecretKey& server_secret, const std::vector<std::string>& network_names);

    // A new id for `network` (index into the names), never 0, never one `in_use` holds.
    template <typename InUse>
    uint64_t next(size_t network, const InUse& in_use) {
        for (;;) {
            const uint64_t id = uint64_t{tags_[network]} << 32 | next_low_++;
            if (id != 0 && !in_use(id)) return id;
        }
    }
    // The network an id was made for; nullopt when its tag is no network's (a session of
    // an older control, a renamed network) or is ambiguous.
    std::optional<size_t> network_of(uint64_t id) const;
    uint32_t tag(size_t network) const { return tags_[network]; }
    // Networks whose tags collide with another's (for the start-up log).
    const std::unordered_set<uint32_t>& ambiguous() const { return ambiguous_; }

  private:
    std::vector<uint32_t> tags_;
    std::unordered_map<uint32_t, size_t> network_by_tag_;
    std::unordered_set<uint32_t> ambiguous_;
    uint32_t next_low_;
};

}  // namespace relay::control

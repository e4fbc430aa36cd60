// The pool of relay ports control hands out ([port_min, port_max] of the config).
// Ports taken by sessions read back from the data plane are marked used.
//
// A new session's port is drawn uniformly at random (libsodium randombytes_uniform) from
// the free ones, so that nobody can predict the port of the next session and race its
// peers to it.  O(1): the free ports are kept in a dense array with each port's position.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace relay::control {

class RelayPorts {
  public:
    RelayPorts(uint16_t min, uint16_t max);

    std::optional<uint16_t> take();  // a random free port; nullopt when none is free
    bool take_specific(uint16_t port);
    void give_back(uint16_t port);
    size_t free_count() const { return free_.size(); }
    size_t size() const { return position_.size(); }

  private:
    static constexpr uint32_t kUsed = UINT32_MAX;
    bool in_range(uint16_t port) const {
        return port >= min_ && static_cast<size_t>(port - min_) < position_.size();
    }
    void remove_free(uint32_t offset);

    uint16_t min_;
    std::vector<uint32_t> position_;  // per port offset: its index in free_, or kUsed
    std::vector<uint32_t> free_;      // offsets of the free ports, in no order
};

}  // namespace relay::control

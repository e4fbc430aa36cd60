// The pool of relay ports control hands out ([port_min, port_max] of the config).
// Ports taken by sessions read back from the data plane are marked used.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace relay::control {

class RelayPorts {
  public:
    RelayPorts(uint16_t min, uint16_t max);

    std::optional<uint16_t> take();  // lowest-numbered free port after the last one taken
    bool take_specific(uint16_t port);
    void give_back(uint16_t port);
    size_t free_count() const { return free_; }

  private:
    uint16_t min_;
    std::vector<bool> used_;
    size_t free_;
    size_t cursor_ = 0;  // round-robin, so a port just released is not reused at once
};

}  // namespace relay::control
